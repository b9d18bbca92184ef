//! `isocrates generate <url|path>`: one documentation run in the foreground, with a
//! progress bar of its steps and one of its pages, and a summary at the end; `--out DIR`
//! also writes the wiki as markdown files that mdBook reads. `--estimate` starts no run:
//! it prints the pages a run would write, their tokens and cost, and the budgets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use isocrates_engine::{Engine, RunStatus};
use isocrates_storage::Storage;
use isocrates_storage::documents::Document;
use isocrates_storage::links::title_key;
use isocrates_workflows::STEPS;
use isocrates_workflows::docgen::{self, DocgenInput, Trigger};
use isocrates_workflows::git::{GitConfig, Source};

/// What `generate` was asked.
#[derive(clap::Args)]
pub struct GenerateArgs {
    /// An https URL, or a path to a local git repository (`.` for this one).
    pub target: String,
    /// Also write the wiki here as markdown files, with a SUMMARY.md for mdBook.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Rewrite every page, not only those whose sources changed.
    #[arg(long)]
    pub force: bool,
    /// Start no run: estimate the pages a run would write, their tokens and their cost at
    /// `LLM_PRICES`, without calling a model.
    #[arg(long, conflicts_with = "out")]
    pub estimate: bool,
    /// With `--estimate`, print the estimate as JSON.
    #[arg(long, requires = "estimate")]
    pub json: bool,
}

/// The repository `target` names: a local folder, made absolute, or a URL as given.
pub fn repository(target: &str) -> anyhow::Result<(String, bool)> {
    let path = Path::new(target);
    if !target.contains("://") && path.exists() {
        let absolute = path.canonicalize().with_context(|| format!("{target} cannot be read"))?;
        let root = absolute.ancestors().find(|dir| dir.join(".git").exists()).ok_or_else(|| {
            anyhow::anyhow!(
                "{target} is not inside a git repository: run git init, or name a repository's URL"
            )
        })?;
        return Ok((root.display().to_string(), true));
    }
    Ok((target.to_string(), false))
}

/// Runs one documentation run of `args.target` to its end on `engine`, whose worker the
/// caller runs, and prints what it did.
#[allow(clippy::print_stdout)]
pub async fn run(
    engine: &Engine,
    storage: &Storage,
    git: &GitConfig,
    repo: &str,
    args: &GenerateArgs,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let repo_url = docgen::normalize_repo_url(repo).map_err(anyhow::Error::msg)?;
    // A repository the configuration refuses is said before any run starts.
    Source::parse(&repo_url, git).map_err(anyhow::Error::msg)?;
    let input = DocgenInput::manual(repo_url.clone(), None, args.force);
    // The repository's latest run, when it is a run like this one paused at a budget, is
    // resumed rather than started again, so that the pages it wrote are not paid for
    // twice. An older paused run, or one of another commit, is left to the operator.
    let latest = docgen::run_filter(Some(&repo_url), None, None, 1).map_err(anyhow::Error::msg)?;
    let resumable = engine.runs(&latest).await?.into_iter().next().filter(|run| {
        run.status == RunStatus::Paused
            && !args.force
            && DocgenInput::of(run).as_ref() == Some(&input)
    });
    let id = match resumable {
        Some(run) => {
            println!(
                "resuming the paused run {} ({})",
                run.id,
                run.error.as_deref().unwrap_or("paused")
            );
            engine.retry(&run.id, None).await?.id
        }
        None => engine.submit(input.into_run(Trigger::Manual)).await?.run.id,
    };

    let bars = MultiProgress::new();
    let steps = bars.add(ProgressBar::new(STEPS.len() as u64));
    steps.set_style(
        ProgressStyle::with_template("{prefix:>6} [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    steps.set_prefix("steps");
    let pages = bars.add(ProgressBar::new(0));
    pages.set_style(
        ProgressStyle::with_template("{prefix:>6} [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    pages.set_prefix("pages");

    let run = loop {
        let run = engine.run(&id).await?;
        steps.set_position(run.current_step.min(STEPS.len()) as u64);
        steps.set_message(STEPS.get(run.current_step).copied().unwrap_or("done").to_string());
        if run.current_step >= 4 && pages.length() == Some(0) {
            let plan = engine.checkpoints(std::slice::from_ref(&run), "plan").await?;
            if let Some(plan) = plan.get(&run.id) {
                pages.set_length(plan["write"].as_array().map_or(0, Vec::len) as u64);
            }
        }
        if run.current_step == 4 {
            pages.set_position(engine.items_done(&run, "write").await?);
            pages.set_message("writing");
        }
        if !matches!(run.status, RunStatus::Queued | RunStatus::Running) {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    if run.status == RunStatus::Completed {
        steps.set_position(STEPS.len() as u64);
        pages.set_position(pages.length().unwrap_or(0));
    }
    steps.finish_and_clear();
    pages.finish_and_clear();

    let publish = engine.checkpoints(std::slice::from_ref(&run), "publish").await?;
    let published = publish.get(&run.id).cloned().unwrap_or_default();
    let seconds = started.elapsed().as_secs_f64();
    match run.status {
        RunStatus::Completed => {
            println!(
                "documented {repo_url}: {} pages written, {} left as they were, {} tokens in, {} out, ${:.4}, in {seconds:.1} s",
                published["documents_written"].as_u64().unwrap_or(0),
                published["documents_skipped"].as_u64().unwrap_or(0),
                run.usage.tokens_in,
                run.usage.tokens_out,
                run.usage.cost_usd,
            );
            if let Some(note) = published["note"].as_str() {
                println!("note: {note}");
            }
            if let Some(kept) = published["kept_for_people"].as_array().filter(|k| !k.is_empty()) {
                let titles: Vec<&str> = kept.iter().filter_map(|t| t.as_str()).collect();
                println!("kept as people wrote them: {}", titles.join(", "));
            }
        }
        RunStatus::Skipped => {
            println!("nothing to do for {repo_url}: {}", run.error.as_deref().unwrap_or("skipped"));
        }
        RunStatus::Paused => {
            anyhow::bail!(
                "the run {id} {}; the pages written are kept: once the cap is raised, the same \
                 isocrates generate resumes it (as does isocrates jobs retry {id} where a worker \
                 runs), or isocrates jobs cancel {id} drops it",
                run.error.as_deref().unwrap_or("paused")
            );
        }
        status => {
            anyhow::bail!(
                "the run {id} ended {}: {} (see isocrates jobs show {id})",
                status,
                run.error.as_deref().unwrap_or("no reason recorded")
            );
        }
    }
    if let Some(out) = &args.out {
        let written = export(storage, &repo_url, out).await?;
        println!("wrote {written} pages and SUMMARY.md to {}", out.display());
    }
    Ok(())
}

/// `--estimate`: prints what a run of `repo` would write and cost, with a spinner while the
/// repository is fetched and read.
#[allow(clippy::print_stdout)]
pub async fn estimate(
    engine: &Engine,
    docgen: std::sync::Arc<isocrates_workflows::pipeline::Docgen>,
    repo: &str,
    args: &GenerateArgs,
) -> anyhow::Result<()> {
    let repo_url = docgen::normalize_repo_url(repo).map_err(anyhow::Error::msg)?;
    Source::parse(&repo_url, &docgen.git).map_err(anyhow::Error::msg)?;
    let input = DocgenInput::manual(repo_url.clone(), None, args.force);
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("fetching and reading {repo_url}"));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let spent = engine.spent_this_month(&docgen::repo_key(&repo_url)).await?;
    let result = isocrates_workflows::pipeline::estimate::estimate(docgen, &input, spent).await;
    spinner.finish_and_clear();
    let estimate = result.map_err(|e| anyhow::anyhow!("cannot estimate {repo_url}: {e}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&estimate)?);
        return Ok(());
    }
    print!("{}", render_estimate(&estimate));
    Ok(())
}

/// The estimate as the terminal shows it: one line per page, then the tiers, the total
/// and the budgets.
pub fn render_estimate(e: &isocrates_workflows::pipeline::estimate::Estimate) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let commit: String = e.commit_sha.chars().take(12).collect();
    if let Some(reason) = &e.skipped {
        let _ = writeln!(out, "a run of {} at {commit} would write nothing: {reason}", e.repo_url);
        return out;
    }
    let _ = writeln!(
        out,
        "a run of {} at {commit} would write {} pages{}:",
        e.repo_url,
        e.pages.len(),
        if e.calls_planner {
            " (as planned from the analysis; the planner may choose others)"
        } else {
            ""
        }
    );
    let width = e.pages.iter().map(|p| p.title.chars().count()).max().unwrap_or(0).max(5);
    let _ = writeln!(out, "  {:<width$}  {:>9}  {:>9}  {:>9}", "page", "tokens in", "out", "cost");
    for page in &e.pages {
        let _ = writeln!(
            out,
            "  {:<width$}  {:>9}  {:>9}  {:>9}",
            page.title,
            page.tokens_in,
            page.tokens_out,
            format!("${:.4}", page.cost_usd)
        );
    }
    for tier in &e.tiers {
        let _ = writeln!(
            out,
            "{} ({} {}): {} calls, {} tokens in, about {} out, ${:.4}{}",
            tier.tier,
            tier.provider,
            tier.model,
            tier.calls,
            tier.tokens_in,
            tier.tokens_out,
            tier.cost_usd,
            if tier.priced { "" } else { " (no price in LLM_PRICES)" }
        );
    }
    let _ = writeln!(
        out,
        "total: {} tokens in, about {} out, ${:.4}",
        e.tokens_in, e.tokens_out, e.cost_usd
    );
    for budget in &e.budgets {
        let _ = writeln!(
            out,
            "budget {}=${}: ${:.4} spent, ${:.4} left{}",
            budget.variable,
            budget.limit_usd,
            budget.spent_usd,
            budget.remaining_usd,
            if budget.spent_usd + e.cost_usd > budget.limit_usd {
                ": a run would pause at this cap"
            } else {
                ""
            }
        );
    }
    out
}

/// Writes the repository's pages under `out` as markdown with relative links, and a
/// `SUMMARY.md` listing them for mdBook. Returns how many pages it wrote.
pub async fn export(storage: &Storage, repo_url: &str, out: &Path) -> anyhow::Result<usize> {
    let mut documents = storage.documents_of_repo(repo_url).await?;
    let folder = docgen::repo_folder(repo_url);
    let order = |d: &Document| match d.doc_type.as_str() {
        "overview" => 0,
        "guide" => 1,
        "architecture" => 2,
        "api" | "reference" => 4,
        _ => 3,
    };
    documents.sort_by(|a, b| (order(a), &a.path, &a.title).cmp(&(order(b), &b.path, &b.title)));
    let files: BTreeMap<String, PathBuf> = documents
        .iter()
        .map(|d| {
            let below = d.path.strip_prefix(&folder).unwrap_or(&d.path).trim_matches('/');
            (title_key(&d.title), Path::new(below).join(format!("{}.md", slug(&d.title))))
        })
        .collect();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut summary = String::from("# Summary\n\n");
    let mut section = String::new();
    for doc in &documents {
        let file = &files[&title_key(&doc.title)];
        let here = file.parent().unwrap_or(Path::new(""));
        let text = relink(&doc.content, |target| {
            files.get(&title_key(target)).map(|to| relative(here, to))
        });
        let path = out.join(file);
        std::fs::create_dir_all(path.parent().unwrap_or(out))
            .with_context(|| format!("creating {}", path.display()))?;
        std::fs::write(&path, format!("# {}\n\n{}\n", doc.title, text.trim_end()))
            .with_context(|| format!("writing {}", path.display()))?;
        let part = here.display().to_string();
        if part != section {
            if !part.is_empty() {
                summary.push_str(&format!("\n# {}\n\n", title_case(&part)));
            }
            section = part;
        }
        summary.push_str(&format!("- [{}]({})\n", doc.title, file.display()));
    }
    std::fs::write(out.join("SUMMARY.md"), summary).context("writing SUMMARY.md")?;
    Ok(documents.len())
}

/// `[[Title]]` and `[[Title|text]]` as markdown links where `target` finds the page, plain
/// text where it does not; fenced code is left alone.
fn relink(markdown: &str, target: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if in_fence || !line.contains("[[") {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("[[") {
            let Some(len) = rest[start + 2..].find("]]") else { break };
            let inner = &rest[start + 2..start + 2 + len];
            let (title, shown) = inner.split_once('|').unwrap_or((inner, inner));
            out.push_str(&rest[..start]);
            match target(title.trim()) {
                Some(link) => out.push_str(&format!("[{}]({link})", shown.trim())),
                None => out.push_str(shown.trim()),
            }
            rest = &rest[start + 2 + len + 2..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

/// The path of `to` seen from the folder `from`, both relative to the wiki's root.
fn relative(from: &Path, to: &Path) -> String {
    let depth = from.components().count();
    let mut path = "../".repeat(depth);
    path.push_str(&to.display().to_string());
    path
}

/// A file name for a title: lower case, words joined by `-`.
fn slug(title: &str) -> String {
    let words: Vec<String> = title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    if words.is_empty() { "page".to_string() } else { words.join("-") }
}

fn title_case(folder: &str) -> String {
    let last = folder.rsplit('/').next().unwrap_or(folder);
    let mut chars = last.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wikilinks_become_relative_links_and_unknown_ones_text() {
        let text = "See [[Core]] and [[Gone|the old page]].\n```\n[[Core]]\n```\n";
        let out = relink(text, |t| (t == "Core").then(|| "../modules/core.md".to_string()));
        assert_eq!(out, "See [Core](../modules/core.md) and the old page.\n```\n[[Core]]\n```\n");
        assert_eq!(
            relative(Path::new("modules"), Path::new("shop-overview.md")),
            "../shop-overview.md"
        );
        assert_eq!(relative(Path::new(""), Path::new("modules/core.md")), "modules/core.md");
        assert_eq!(slug("Getting Started with Shop!"), "getting-started-with-shop");
    }
}
