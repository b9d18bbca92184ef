//! The steps of a documentation run, each a function of the run's input and the
//! checkpoints of the steps before it:
//!
//! - `clone` fetches the commit (the tracked branch's head when the run names none) and
//!   lists its files with their SHA-256, recording what GitHub's API says of the
//!   repository when a token is set;
//! - `analyze` reads them with tree-sitter ([`crate::analyze`]);
//! - `check_early` reads the published pages of the repository and the paths changed
//!   since the commit last published (from the push, GitHub or the two trees): a commit
//!   already published, or a change that touches no page's sources, ends the run
//!   `skipped` before any model is called, and a source file added beside documented
//!   ones joins their page;
//! - `plan` reuses the published pages when nothing asks for a new plan, and otherwise asks
//!   the planner, falling back to a plan from the analysis;
//! - `write` writes the pages whose sources changed, one checkpointed item per page, so a
//!   retried or resumed run pays for no page twice;
//! - `check_final` keeps every page whose latest version a person wrote;
//! - `publish` stores the rest as AI versions with their provenance, one item per page
//!   (a published page updated by its id, wherever it was moved),
//!   keeps the AI text of the kept pages as proposals beside them, and moves to the trash
//!   the pages the plan dropped, unless a person edited them.
//!
//! Everything the steps need from outside (storage, git settings, models, prompts) is in
//! [`Docgen`].

pub mod budget;
pub mod estimate;
pub mod plan;
pub mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use futures::StreamExt;
use isocrates_engine::{Spender, StepContext, StepError, StepOutcome, Usage, Workflow};
use isocrates_providers::json::{JsonError, complete_json};
use isocrates_providers::{CallError, Llm};
use isocrates_storage::Storage;
use isocrates_storage::documents::{Author, AuthorType, ContentUpdate, NewDocument};
use isocrates_storage::ids::document_id;
use isocrates_storage::links::title_key;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::analyze::{Analysis, SourceFile, analyze};
use crate::docgen::{DocgenInput, WORKFLOW, repo_folder, repo_name};
use crate::git::{FileEntry, GitConfig, GitError, PathChanges, Snapshot, Source};
use crate::github::GitHub;
use crate::prompts::{
    AnalysisFacts, ExistingPage as PromptPage, FileFacts as PromptFile, LanguageCount, ModuleFacts,
    PageLink, PagePlan, PlannerContext, Prompts, RepositoryFacts, WriterContext,
};
use plan::{Blueprint, PlannedBy, PlannedPage};

/// How big a run may make a wiki and how hard it may push the models.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The most pages a plan may have.
    pub max_pages: usize,
    /// Pages written at once.
    pub write_concurrency: usize,
    /// Answers the planner gets before the plan is built from the analysis.
    pub planner_tries: u32,
    /// Tokens of source excerpts a writer call carries.
    pub excerpt_tokens: usize,
    /// The most output tokens of a writer call.
    pub max_page_tokens: u32,
    /// Caps on what the models may cost.
    pub budgets: budget::Budgets,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_pages: 16,
            write_concurrency: 4,
            planner_tries: 3,
            excerpt_tokens: 12_000,
            max_page_tokens: 4_000,
            budgets: budget::Budgets::default(),
        }
    }
}

/// The models of a run: none for the static provider.
#[derive(Debug, Clone, Default)]
pub struct Models {
    /// The provider's name, for provenance (`openai`, `static`, ...).
    pub provider: String,
    /// The planner.
    pub planner: Option<Arc<Llm>>,
    /// The writer.
    pub writer: Option<Arc<Llm>>,
}

/// What the documentation workflow needs from outside.
#[derive(Debug, Clone)]
pub struct Docgen {
    /// Where pages are published.
    pub storage: Storage,
    /// Where repositories come from.
    pub git: GitConfig,
    /// The models.
    pub models: Models,
    /// The prompt templates, checked at start.
    pub prompts: Arc<Prompts>,
    /// Sizes and limits.
    pub settings: Settings,
    /// GitHub's API, when `GITHUB_TOKEN` is set: facts and comparisons that spare a fetch.
    pub github: Option<GitHub>,
}

/// The documentation workflow over `docgen`.
pub fn workflow(docgen: Arc<Docgen>) -> Workflow {
    let d = docgen;
    let (a, b, c, e, f, g, h) =
        (d.clone(), d.clone(), d.clone(), d.clone(), d.clone(), d.clone(), d);
    Workflow::new(WORKFLOW)
        .step("clone", move |ctx| clone_step(a.clone(), ctx))
        .step("analyze", move |ctx| analyze_step(b.clone(), ctx))
        .step("check_early", move |ctx| check_early(c.clone(), ctx))
        .step("plan", move |ctx| plan_step(e.clone(), ctx))
        .step("write", move |ctx| write_step(f.clone(), ctx))
        .step("check_final", move |ctx| check_final(g.clone(), ctx))
        .step("publish", move |ctx| publish(h.clone(), ctx))
}

/// The checkpoint of `clone`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloneOutput {
    /// The commit documented.
    pub commit_sha: String,
    /// The repository's default branch, when the server said.
    pub default_branch: Option<String>,
    /// Every file of the commit.
    pub files: Vec<FileEntry>,
    /// The folder the repository's pages live under, from its tracked repository.
    #[serde(default)]
    pub folder: String,
}

/// A page published before, as the checks and the planner see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its folder below the repository's.
    pub path: String,
    /// Its kind.
    pub doc_type: String,
    /// Its description.
    pub description: String,
    /// Who wrote its latest version: `ai`, `human` or `system`.
    pub latest_author: String,
    /// The source files of its latest AI version, with their hashes (16 hex digits).
    pub source_hashes: BTreeMap<String, String>,
    /// The commit of its latest AI version.
    pub commit_sha: Option<String>,
    /// The modules the repository had when the page was planned.
    #[serde(default)]
    pub planned_modules: Vec<String>,
    /// The tokens the model wrote for its latest AI version, when a model wrote it.
    #[serde(default)]
    pub tokens_out: Option<u64>,
}

/// The checkpoint of `check_early`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EarlyCheck {
    /// The repository's published pages.
    pub published: Vec<Published>,
    /// The commit of the latest published AI version, if any.
    pub last_commit: Option<String>,
    /// The titles of published pages whose sources changed.
    pub stale: Vec<String>,
    /// Modules with source files that no published page reads (new ones): the wiki needs
    /// a new plan to cover them.
    #[serde(default)]
    pub uncovered: Vec<String>,
    /// The paths changed since the commit last published, when known.
    #[serde(default)]
    pub changes: Option<Changes>,
    /// Source files added since the commit last published to a module the wiki covers,
    /// by the title of the page that now reads them.
    #[serde(default)]
    pub added_sources: BTreeMap<String, Vec<String>>,
}

/// The paths changed between the commit last published and the run's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// The commit last published.
    pub since: String,
    /// Who said: `push` (the webhook's commit list), `github` (GitHub's comparison) or
    /// `clone` (the two commits' trees).
    pub from: String,
    /// The paths added, changed or removed that pages read or now take on, sorted.
    pub paths: Vec<String>,
    /// The paths among them that are new, sorted.
    #[serde(default)]
    pub added: Vec<String>,
    /// How many paths changed in all.
    #[serde(default)]
    pub count: usize,
}

/// One written page, as the `write` step records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrittenPage {
    /// Its title.
    pub title: String,
    /// Its markdown, with its sources table.
    pub content: String,
    /// The model that wrote it; `static` for the analysis.
    pub model: String,
    /// Tokens sent.
    pub tokens_in: u64,
    /// Tokens received.
    pub tokens_out: u64,
    /// What it cost.
    pub cost_usd: f64,
    /// Wikilinks made plain text.
    pub links_removed: usize,
    /// Mermaid blocks shown as plain code.
    pub diagrams_fixed: usize,
    /// Whether the model stopped at its token limit.
    pub truncated: bool,
}

/// The checkpoint of `write`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteOutput {
    /// The pages written.
    pub pages: Vec<WrittenPage>,
    /// The pages that could not be written, with why.
    pub failed: Vec<(String, String)>,
}

/// The checkpoint of `check_final`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinalCheck {
    /// Titles of pages to publish.
    pub publish: Vec<String>,
    /// Titles of written pages left alone because a person wrote their latest version.
    pub kept: Vec<String>,
}

fn input(ctx: &StepContext) -> Result<DocgenInput, StepError> {
    serde_json::from_value(ctx.input.clone()).map_err(|e| {
        StepError::permanent(format!("the run's input is not a documentation run's: {e}"))
    })
}

fn output<T: DeserializeOwned>(ctx: &StepContext, step: &str) -> Result<T, StepError> {
    let value = ctx
        .output(step)
        .ok_or_else(|| StepError::permanent(format!("the {step} step left no checkpoint")))?;
    serde_json::from_value(value.clone())
        .map_err(|e| StepError::permanent(format!("the {step} checkpoint cannot be read: {e}")))
}

/// The checkpoint `value`, with the one line the job's step history shows for it.
fn done(value: impl Serialize, summary: String) -> Result<StepOutcome, StepError> {
    let mut value = serde_json::to_value(value)
        .map_err(|e| StepError::permanent(format!("the checkpoint cannot be written: {e}")))?;
    if let Value::Object(fields) = &mut value {
        fields.insert("summary".into(), Value::String(summary));
    }
    Ok(StepOutcome::Done(value))
}

fn git_failure(error: GitError) -> StepError {
    if error.is_retryable() {
        StepError::retryable(error.to_string())
    } else {
        StepError::permanent(error.to_string())
    }
}

/// A store error as a step's failure: a refused value is permanent (another attempt would
/// be refused again), anything else may pass.
fn storage_failure(error: isocrates_storage::Error) -> StepError {
    match error {
        isocrates_storage::Error::Validation { field, message } => {
            StepError::permanent(format!("the document store refused {field}: {message}"))
        }
        other => StepError::retryable(format!("the document store failed: {other}")),
    }
}

/// Runs blocking git work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Result<T, StepError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StepError::retryable(format!("the git task stopped: {e}")))?
        .map_err(git_failure)
}

/// What [`fetch_commit`] found: the commit, the branch the clone found to be the default,
/// and the commit's files; or why git could not say.
type Fetched = Result<(String, Option<String>, Vec<FileEntry>), GitError>;

/// Fetches the commit a run of `input` documents: the one it names, else the head of the
/// tracked branch, else of the default branch. The outer error is the store's or the
/// task's, the inner one git's.
async fn fetch_commit(d: &Docgen, input: &DocgenInput) -> Result<Fetched, StepError> {
    let source = match Source::parse(&input.repo_url, &d.git) {
        Ok(source) => source,
        Err(error) => return Ok(Err(error)),
    };
    let known = d.storage.repository(&input.repo_url).await.map_err(storage_failure)?;
    // A run of no commit in particular documents the head of the tracked branch.
    let revision = input.commit_sha.clone().or_else(|| {
        known.as_ref().and_then(|r| r.branch.as_ref()).map(|b| format!("refs/heads/{b}"))
    });
    let git = d.git.clone();
    tokio::task::spawn_blocking(move || {
        let snapshot =
            Snapshot::fetch(&source, revision.as_deref(), &git, &AtomicBool::new(false))?;
        let files = snapshot.files()?;
        Ok((snapshot.commit.clone(), snapshot.default_branch.clone(), files))
    })
    .await
    .map_err(|e| StepError::retryable(format!("the git task stopped: {e}")))
}

async fn clone_step(d: Arc<Docgen>, ctx: StepContext) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    let (commit_sha, cloned_branch, files) =
        fetch_commit(&d, &input).await?.map_err(git_failure)?;
    tracing::info!(run.id = %ctx.run_id, commit = %commit_sha, files = files.len(), "cloned");
    let facts = github_facts(&d, &input.repo_url, &ctx).await;
    let default_branch = facts.as_ref().and_then(|f| f.default_branch.clone()).or(cloned_branch);
    let tracked = d
        .storage
        .track_repository(
            &input.repo_url,
            &repo_folder(&input.repo_url),
            default_branch.as_deref(),
            facts.and_then(|f| f.private),
        )
        .await
        .map_err(storage_failure)?;
    let folder = tracked.folder;
    let summary =
        format!("commit {}: {} files", &commit_sha[..commit_sha.len().min(12)], files.len());
    done(CloneOutput { commit_sha, default_branch, files, folder }, summary)
}

/// What GitHub's API says of the repository, when it is on github.com and a token is set;
/// a failure is logged and leaves what the clone found.
async fn github_facts(
    d: &Docgen,
    repo_url: &str,
    ctx: &StepContext,
) -> Option<crate::github::RepoFacts> {
    let (github, (owner, name)) = (d.github.as_ref()?, GitHub::repo_of(repo_url)?);
    match github.repository(owner, name).await {
        Ok(facts) => Some(facts),
        Err(error) => {
            tracing::warn!(run.id = %ctx.run_id, %error, "GitHub's API did not describe the repository");
            None
        }
    }
}

/// The snapshot of the run's commit, fetched again if this worker has no clone of it.
async fn snapshot_of(
    d: &Docgen,
    ctx: &StepContext,
) -> Result<(Arc<std::sync::Mutex<Snapshot>>, CloneOutput), StepError> {
    let input = input(ctx)?;
    let cloned: CloneOutput = output(ctx, "clone")?;
    let source = Source::parse(&input.repo_url, &d.git).map_err(git_failure)?;
    let git = d.git.clone();
    let commit = cloned.commit_sha.clone();
    let snapshot =
        blocking(move || Snapshot::fetch(&source, Some(&commit), &git, &AtomicBool::new(false)))
            .await?;
    Ok((Arc::new(std::sync::Mutex::new(snapshot)), cloned))
}

async fn analyze_step(d: Arc<Docgen>, ctx: StepContext) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    let (snapshot, cloned) = snapshot_of(&d, &ctx).await?;
    let name = repo_name(&input.repo_url).to_string();
    let analysis = blocking(move || {
        let snapshot = snapshot.lock().expect("the snapshot is not shared across a panic");
        let files = cloned
            .files
            .iter()
            .map(|f| SourceFile {
                path: f.path.clone(),
                size: f.size,
                content: f.sha256.as_ref().and_then(|_| snapshot.read(&f.path)),
            })
            .collect();
        Ok(analyze(&name, files))
    })
    .await?;
    if analysis.files.is_empty() {
        return Ok(StepOutcome::SkipRun(format!(
            "nothing to document: the commit's {} files are all vendored, generated, binary or \
             too large",
            analysis.skipped.len()
        )));
    }
    tracing::info!(
        run.id = %ctx.run_id,
        files = analysis.files.len(),
        skipped = analysis.skipped.len(),
        modules = analysis.modules.len(),
        "analysed"
    );
    let summary = format!(
        "{} files in {} modules, {} skipped, about {} tokens",
        analysis.files.len(),
        analysis.modules.len(),
        analysis.skipped.len(),
        analysis.token_estimate
    );
    done(analysis, summary)
}

/// The repository's published pages with the provenance of their latest AI version.
async fn published_pages(
    storage: &Storage,
    repo_url: &str,
    folder: &str,
) -> Result<Vec<Published>, StepError> {
    let documents = storage.documents_of_repo(repo_url).await.map_err(storage_failure)?;
    let mut pages = Vec::new();
    for doc in documents {
        let versions = storage.versions(&doc.id, 0, 50).await.map_err(storage_failure)?;
        let latest_author = versions.first().map(|v| v.author_type.clone()).unwrap_or_default();
        let ai = versions.iter().find(|v| {
            v.author_type == "ai"
                && v.author_metadata.as_ref().is_some_and(|m| m["generator"] == "isocrates")
        });
        let Some(ai) = ai else { continue };
        let metadata = ai.author_metadata.clone().unwrap_or_default();
        let source_hashes: BTreeMap<String, String> =
            serde_json::from_value(metadata["source_hashes"].clone()).unwrap_or_default();
        let path = if doc.path == folder {
            String::new()
        } else {
            doc.path.strip_prefix(&format!("{folder}/")).unwrap_or(&doc.path).to_string()
        };
        pages.push(Published {
            id: doc.id,
            title: doc.title,
            path,
            doc_type: doc.doc_type,
            description: doc.description.unwrap_or_default(),
            latest_author,
            source_hashes,
            commit_sha: metadata["repo_commit_sha"].as_str().map(str::to_string),
            planned_modules: serde_json::from_value(metadata["planned_modules"].clone())
                .unwrap_or_default(),
            tokens_out: metadata["tokens_out"].as_u64().filter(|n| *n > 0),
        });
    }
    pages.sort_by(|a, b| a.title.cmp(&b.title));
    Ok(pages)
}

/// The first 16 hex digits of a file's SHA-256, as provenance records it.
fn short(sha256: &str) -> String {
    sha256.chars().take(16).collect()
}

async fn check_early(d: Arc<Docgen>, ctx: StepContext) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    let cloned: CloneOutput = output(&ctx, "clone")?;
    let published =
        published_pages(&d.storage, &input.repo_url, &folder_of(&cloned, &input.repo_url)).await?;
    let tracked = d.storage.repository(&input.repo_url).await.map_err(storage_failure)?;
    let last_commit = tracked.and_then(|r| r.last_commit).or_else(|| {
        // Before a run recorded it, the commit most pages carry is the one last published.
        published
            .iter()
            .filter_map(|p| p.commit_sha.clone())
            .max_by_key(|c| published.iter().filter(|p| p.commit_sha.as_ref() == Some(c)).count())
    });
    let hashes: BTreeMap<&str, String> = cloned
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.sha256.as_deref().map(short).unwrap_or_default()))
        .collect();
    let changes = match &last_commit {
        Some(old) if *old != cloned.commit_sha => {
            changes_since(&d, &ctx, &input, old, &cloned.commit_sha).await?
        }
        _ => None,
    };
    let changed: Option<BTreeSet<&str>> =
        changes.as_ref().map(|c| c.paths.iter().map(String::as_str).collect());
    let analysis: Analysis = output(&ctx, "analyze")?;
    // Every file some published page reads.
    let covered: BTreeSet<&str> =
        published.iter().flat_map(|p| p.source_hashes.keys().map(String::as_str)).collect();
    let added_sources = match &changes {
        Some(changes) => place_added_files(&changes.added, &published, &covered, &analysis),
        None => BTreeMap::new(),
    };
    let stale: Vec<String> = published
        .iter()
        .filter(|page| {
            page.source_hashes.is_empty()
                || added_sources.contains_key(&page.title)
                || page.source_hashes.iter().any(|(path, hash)| {
                    hashes.get(path.as_str()) != Some(hash)
                        || changed.as_ref().is_some_and(|c| c.contains(path.as_str()))
                })
        })
        .map(|p| p.title.clone())
        .collect();
    // A module the wiki was not planned with (a new one) asks for a new plan. Pages
    // published before this was recorded count the modules their sources cover.
    let known: BTreeSet<&str> =
        published.iter().flat_map(|p| p.planned_modules.iter().map(String::as_str)).collect();
    let uncovered: Vec<String> = if published.is_empty() {
        Vec::new()
    } else {
        modules_with_sources(&analysis)
            .into_iter()
            .filter(|m| {
                if known.is_empty() {
                    !m.files.iter().any(|f| covered.contains(f.as_str()))
                } else {
                    !known.contains(m.path.as_str())
                }
            })
            .map(|m| m.path.clone())
            .collect()
    };
    if !input.force && !published.is_empty() {
        let short_commit: String = cloned.commit_sha.chars().take(12).collect();
        if last_commit.as_deref() == Some(cloned.commit_sha.as_str()) {
            return Ok(StepOutcome::SkipRun(format!("commit {short_commit} is already published")));
        }
        if stale.is_empty() && uncovered.is_empty() {
            return Ok(StepOutcome::SkipRun(format!(
                "commit {short_commit} changes no source file of a published page"
            )));
        }
    }
    // The checkpoint keeps the paths that matter to the wiki (`count` keeps how many
    // changed in all).
    let placed: BTreeSet<&str> = added_sources.values().flatten().map(String::as_str).collect();
    let changes = changes.map(|mut c| {
        c.paths.retain(|p| covered.contains(p.as_str()) || placed.contains(p.as_str()));
        c.added.retain(|p| placed.contains(p.as_str()));
        c
    });
    let changed_line = match &changes {
        Some(c) => format!("{} paths changed (from the {}), ", c.count, c.from),
        None => String::new(),
    };
    let summary = format!(
        "{changed_line}{} published pages, {} with changed sources, {} new modules",
        published.len(),
        stale.len(),
        uncovered.len()
    );
    done(EarlyCheck { published, last_commit, stale, uncovered, changes, added_sources }, summary)
}

/// The paths changed between `old` and `new`: the push's list when it starts at `old`,
/// else GitHub's comparison, else the two commits' trees (the older one fetched too, when
/// this worker no longer has it). `None` when none can say, as when `old` was force-pushed
/// away: the file hashes alone then decide what is stale.
async fn changes_since(
    d: &Docgen,
    ctx: &StepContext,
    input: &DocgenInput,
    old: &str,
    new: &str,
) -> Result<Option<Changes>, StepError> {
    let changes = |from: &str, found: PathChanges| Changes {
        since: old.to_string(),
        from: from.to_string(),
        count: found.paths.len(),
        paths: found.paths,
        added: found.added,
    };
    if let Some(paths) = &input.changed_paths
        && input.base_commit.as_deref() == Some(old)
    {
        let pushed = PathChanges { paths: paths.clone(), added: input.added_paths.clone() };
        return Ok(Some(changes("push", pushed)));
    }
    if let (Some(github), Some((owner, name))) = (&d.github, GitHub::repo_of(&input.repo_url)) {
        match github.changed_paths(owner, name, old, new).await {
            Ok(Some(paths)) => return Ok(Some(changes("github", paths))),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(run.id = %ctx.run_id, %error, "GitHub's API did not compare the commits")
            }
        }
    }
    let Ok(source) = Source::parse(&input.repo_url, &d.git) else { return Ok(None) };
    let git = d.git.clone();
    let (old_commit, new_commit) = (old.to_string(), new.to_string());
    let found = tokio::task::spawn_blocking(move || {
        let older = Snapshot::fetch(&source, Some(&old_commit), &git, &AtomicBool::new(false))?;
        let newer = Snapshot::fetch(&source, Some(&new_commit), &git, &AtomicBool::new(false))?;
        newer.changed_since(&older)
    })
    .await
    .map_err(|e| StepError::retryable(format!("the git task stopped: {e}")))?;
    match found {
        Ok(paths) => Ok(Some(changes("clone", paths))),
        // The network or the cache: the step is tried again rather than losing the list.
        Err(error) if error.is_retryable() => Err(git_failure(error)),
        Err(error) => {
            tracing::warn!(run.id = %ctx.run_id, %error, "the commit last published could not be compared; file hashes decide");
            Ok(None)
        }
    }
}

/// The pages that take on the source files `added` to modules the wiki already covers:
/// each file goes to the page reading the files nearest it in the same module (the
/// longest shared folder, then the most files there, then the first title). Files a page
/// reads already (`covered`) stay where they are; files of a module no page reads are
/// left for a new plan.
fn place_added_files(
    added: &[String],
    published: &[Published],
    covered: &BTreeSet<&str>,
    analysis: &Analysis,
) -> BTreeMap<String, Vec<String>> {
    let folder_depth = |a: &str, b: &str| {
        a.split('/')
            .zip(b.split('/'))
            .take(a.matches('/').count().min(b.matches('/').count()))
            .take_while(|(x, y)| x == y)
            .count()
    };
    let mut placed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in added.iter().map(String::as_str).filter(|p| !covered.contains(p)) {
        if analysis.file(path).is_none_or(|f| f.language.is_none()) {
            continue;
        }
        let Some(module) = analysis.modules.iter().find(|m| m.files.iter().any(|f| f == path))
        else {
            continue;
        };
        let best = published
            .iter()
            .filter_map(|page| {
                let near: Vec<usize> = page
                    .source_hashes
                    .keys()
                    .filter(|s| module.files.contains(s))
                    .map(|s| folder_depth(s, path))
                    .collect();
                let depth = *near.iter().max()?;
                let alongside = near.iter().filter(|d| **d == depth).count();
                Some((depth, alongside, std::cmp::Reverse(page.title.as_str())))
            })
            .max();
        if let Some((_, _, std::cmp::Reverse(title))) = best {
            placed.entry(title.to_string()).or_default().push(path.to_string());
        }
    }
    placed
}

/// The modules that hold source files, the ones a wiki must cover.
fn modules_with_sources(analysis: &Analysis) -> Vec<&crate::analyze::Module> {
    analysis
        .modules
        .iter()
        .filter(|m| m.files.iter().any(|f| analysis.file(f).is_some_and(|f| f.language.is_some())))
        .collect()
}

/// Adds what `calls` spent to the run.
async fn spend(ctx: &StepContext, calls: &[isocrates_providers::Call]) -> Result<(), StepError> {
    for call in calls {
        let by = Spender { provider: call.provider.to_string(), model: call.reply.model.clone() };
        let usage = Usage {
            tokens_in: call.reply.usage.input_tokens as i64,
            tokens_out: call.reply.usage.output_tokens as i64,
            cost_usd: call.cost_usd,
        };
        ctx.add_model_usage(by, usage).await?;
    }
    Ok(())
}

fn planner_context(
    repo: RepositoryFacts,
    analysis: &Analysis,
    published: &[Published],
    max_pages: usize,
) -> PlannerContext {
    PlannerContext {
        repository: repo,
        analysis: AnalysisFacts {
            file_count: analysis.files.len(),
            token_estimate: analysis.token_estimate,
            languages: analysis
                .languages()
                .into_iter()
                .map(|(l, n)| LanguageCount { name: l.name().to_string(), files: n })
                .collect(),
            entry_points: analysis.entry_points.clone(),
            modules: analysis
                .modules
                .iter()
                .map(|m| ModuleFacts {
                    name: m.name.clone(),
                    path: if m.path.is_empty() { ".".into() } else { m.path.clone() },
                    manifest: m.manifest.clone(),
                    imports: m
                        .depends_on
                        .iter()
                        .filter_map(|d| {
                            analysis.modules.iter().find(|o| &o.path == d).map(|o| o.name.clone())
                        })
                        .collect(),
                    files: m
                        .files
                        .iter()
                        .filter_map(|f| analysis.file(f))
                        .map(|f| PromptFile {
                            path: f.path.clone(),
                            symbols: f
                                .symbols
                                .iter()
                                .filter(|s| s.public)
                                .take(12)
                                .map(|s| s.name.clone())
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        },
        existing_pages: published
            .iter()
            .map(|p| PromptPage {
                title: p.title.clone(),
                path: p.path.clone(),
                doc_type: p.doc_type.clone(),
            })
            .collect(),
        max_pages,
        schema: serde_json::to_string_pretty(&plan::schema()).unwrap_or_default(),
    }
}

fn repository_facts(input: &DocgenInput, commit: &str, analysis: &Analysis) -> RepositoryFacts {
    RepositoryFacts {
        name: repo_name(&input.repo_url).to_string(),
        url: input.repo_url.clone(),
        commit: commit.to_string(),
        summary: analysis.readme.as_ref().map(|r| r.chars().take(600).collect()),
    }
}

async fn plan_step(d: Arc<Docgen>, ctx: StepContext) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    let cloned: CloneOutput = output(&ctx, "clone")?;
    let analysis: Analysis = output(&ctx, "analyze")?;
    let early: EarlyCheck = output(&ctx, "check_early")?;
    let name = repo_name(&input.repo_url).to_string();
    let max_pages = d.settings.max_pages;

    // The published pages are the plan unless a new one is asked for or a module no page
    // covers appeared: their sources may have changed, not the shape of the wiki.
    if !input.force && !early.published.is_empty() && early.uncovered.is_empty() {
        let known: BTreeSet<&str> = analysis.files.iter().map(|f| f.path.as_str()).collect();
        let pages: Vec<PlannedPage> = early
            .published
            .iter()
            .map(|p| PlannedPage {
                title: p.title.clone(),
                path: p.path.clone(),
                doc_type: p.doc_type.clone(),
                description: p.description.clone(),
                sections: Vec::new(),
                source_files: p
                    .source_hashes
                    .keys()
                    .chain(early.added_sources.get(&p.title).into_iter().flatten())
                    .filter(|f| known.contains(f.as_str()))
                    .cloned()
                    .collect::<BTreeSet<String>>()
                    .into_iter()
                    .collect(),
                links_out: Vec::new(),
                replaces_title: None,
            })
            .filter(|p| !p.source_files.is_empty())
            .collect();
        if !pages.is_empty() {
            let write: Vec<String> = pages
                .iter()
                .filter(|p| early.stale.contains(&p.title))
                .map(|p| p.title.clone())
                .collect();
            let line = format!(
                "{} published pages kept as the plan, {} to rewrite",
                pages.len(),
                write.len()
            );
            return done(
                Blueprint {
                    summary: analysis
                        .readme
                        .clone()
                        .unwrap_or_default()
                        .chars()
                        .take(300)
                        .collect(),
                    pages,
                    planned_by: PlannedBy::PreviousRun,
                    write,
                    note: None,
                },
                line,
            );
        }
    }

    let (summary, mut pages, planned_by, note) = match &d.models.planner {
        None => {
            let (summary, pages) = plan::from_analysis(&name, &analysis, max_pages);
            (summary, pages, PlannedBy::Analysis, None)
        }
        Some(planner) => {
            let request = planner_request(&d, &input, &cloned, &analysis, &early)?;
            // Every try of the planner may be paid for.
            let tries = d.settings.planner_tries.max(1);
            let gate = budget::Gate::new(d.settings.budgets, budget::hold_for(planner, tries));
            let cost =
                f64::from(tries) * budget::worst_cost(planner, &request, PLANNER_ANSWER_TOKENS);
            let pass = match gate.admit(&ctx, cost).await? {
                Ok(pass) => pass,
                Err(reason) => {
                    tracing::warn!(run.id = %ctx.run_id, %reason, "paused before planning");
                    return Ok(StepOutcome::Pause(format!("paused before planning: {reason}")));
                }
            };
            let schema = plan::schema();
            let check = |value: &Value| plan::from_answer(value, &analysis, max_pages).map(|_| ());
            match complete_json(
                planner,
                &request,
                ("blueprint", &schema),
                check,
                d.settings.planner_tries,
            )
            .await
            {
                Ok((value, calls)) => {
                    spend(&ctx, &calls).await?;
                    pass.release().await;
                    let (summary, pages) = plan::from_answer(&value, &analysis, max_pages)
                        .map_err(StepError::permanent)?;
                    (summary, pages, PlannedBy::Planner, None)
                }
                Err((error, calls)) => {
                    spend(&ctx, &calls).await?;
                    pass.release().await;
                    if let JsonError::Call(call) = &error
                        && retry_later(call)
                    {
                        return Err(StepError::retryable(format!("the planner: {call}")));
                    }
                    tracing::warn!(run.id = %ctx.run_id, error = %error, "the planner gave no usable plan; planning from the analysis");
                    let (summary, pages) = plan::from_analysis(&name, &analysis, max_pages);
                    (
                        summary,
                        pages,
                        PlannedBy::Analysis,
                        Some(format!(
                            "the planner gave no usable plan ({error}); the plan was built from the analysis"
                        )),
                    )
                }
            }
        }
    };
    // Published pages keep their titles: a planned page on the same sources takes the old
    // title unless the planner renamed it on purpose.
    let existing: BTreeMap<String, &Published> =
        early.published.iter().map(|p| (title_key(&p.title), p)).collect();
    for page in &mut pages {
        if let Some(old) = &page.replaces_title
            && !existing.contains_key(&title_key(old))
        {
            page.replaces_title = None;
        }
    }
    // A new plan rewrites what is new or changed; a forced run rewrites everything.
    let before: BTreeMap<String, BTreeSet<&str>> = early
        .published
        .iter()
        .map(|p| (title_key(&p.title), p.source_hashes.keys().map(String::as_str).collect()))
        .collect();
    let write: Vec<String> = pages
        .iter()
        .filter(|p| {
            input.force
                || early.stale.contains(&p.title)
                || before.get(&title_key(&p.title)).is_none_or(|sources| {
                    *sources != p.source_files.iter().map(String::as_str).collect::<BTreeSet<_>>()
                })
        })
        .map(|p| p.title.clone())
        .collect();
    let line = match planned_by {
        PlannedBy::Planner => {
            format!("{} pages planned by the planner, {} to write", pages.len(), write.len())
        }
        _ => format!("{} pages planned from the analysis, {} to write", pages.len(), write.len()),
    };
    done(Blueprint { summary, pages, planned_by, write, note }, line)
}

/// The longest answer asked of the planner: a plan of the most pages, with their sources,
/// takes about a quarter of it.
const PLANNER_ANSWER_TOKENS: u32 = 8_000;

/// The planner's messages for a run of `input`.
fn planner_request(
    d: &Docgen,
    input: &DocgenInput,
    cloned: &CloneOutput,
    analysis: &Analysis,
    early: &EarlyCheck,
) -> Result<isocrates_providers::Request, StepError> {
    let repo = repository_facts(input, &cloned.commit_sha, analysis);
    let context = planner_context(repo, analysis, &early.published, d.settings.max_pages);
    let mut request = d
        .prompts
        .planner(&context)
        .map_err(|e| StepError::permanent(format!("the planner prompt: {e}")))?
        .into_request();
    request.max_tokens = Some(PLANNER_ANSWER_TOKENS);
    Ok(request)
}

/// Whether a failed call should fail the step for a later retry rather than fall back:
/// the provider is down or refusing for now, not answering badly.
fn retry_later(error: &CallError) -> bool {
    matches!(
        error,
        CallError::RateLimited { .. }
            | CallError::Server { .. }
            | CallError::Timeout(_)
            | CallError::Connection(_)
            | CallError::CircuitOpen { .. }
    )
}

/// Every title a page may link to: the planned pages and the other published pages of
/// the repository.
fn link_targets(blueprint: &Blueprint, early: &EarlyCheck) -> BTreeSet<String> {
    blueprint
        .pages
        .iter()
        .map(|p| title_key(&p.title))
        .chain(early.published.iter().map(|p| title_key(&p.title)))
        .collect()
}

async fn write_step(d: Arc<Docgen>, ctx: StepContext) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    let analysis: Arc<Analysis> = Arc::new(output(&ctx, "analyze")?);
    let early: EarlyCheck = output(&ctx, "check_early")?;
    let blueprint: Arc<Blueprint> = Arc::new(output(&ctx, "plan")?);
    let titles = Arc::new(link_targets(&blueprint, &early));
    let snapshot = match &d.models.writer {
        Some(_) => Some(snapshot_of(&d, &ctx).await?.0),
        None => None,
    };
    let cloned: CloneOutput = output(&ctx, "clone")?;
    let to_write: Vec<PlannedPage> =
        blueprint.pages.iter().filter(|p| blueprint.write.contains(&p.title)).cloned().collect();
    let total = to_write.len();
    let hold_for = d.models.writer.as_deref().map_or(Duration::ZERO, |w| budget::hold_for(w, 1));
    let budget = Arc::new(PageBudget {
        gate: budget::Gate::new(d.settings.budgets, hold_for),
        paused: std::sync::Mutex::new(None),
    });
    let results: Vec<(String, Result<Value, StepError>)> = futures::stream::iter(to_write)
        .map(|page| {
            let (d, ctx, analysis, blueprint, titles, snapshot, input, commit, budget) = (
                d.clone(),
                ctx.clone(),
                analysis.clone(),
                blueprint.clone(),
                titles.clone(),
                snapshot.clone(),
                input.clone(),
                cloned.commit_sha.clone(),
                budget.clone(),
            );
            async move {
                let key = format!("page:{}", title_key(&page.title));
                let title = page.title.clone();
                let result = ctx
                    .item(&key, || async {
                        let written = write_page(
                            &d, &ctx, &budget, &page, &blueprint, &analysis, &titles, snapshot,
                            &input, &commit,
                        )
                        .await?;
                        serde_json::to_value(written)
                            .map_err(|e| StepError::permanent(e.to_string()))
                    })
                    .await;
                (title, result)
            }
        })
        .buffer_unordered(d.settings.write_concurrency.max(1))
        .collect()
        .await;
    if results.iter().any(|(_, r)| matches!(r, Err(StepError::Cancelled))) {
        return Err(StepError::Cancelled);
    }
    let paused = budget.paused.lock().ok().and_then(|reason| reason.clone());
    if let Some(reason) = paused {
        // Pages written are checkpointed: the run resumes with the others.
        let written = results.iter().filter(|(_, r)| r.is_ok()).count();
        tracing::warn!(run.id = %ctx.run_id, written, total, %reason, "paused at a budget");
        return Ok(StepOutcome::Pause(format!(
            "paused with {written} of {total} pages written: {reason}"
        )));
    }
    let mut pages = Vec::new();
    let mut failed = Vec::new();
    let mut retry: Option<StepError> = None;
    for (title, result) in results {
        match result {
            Ok(value) => pages.push(
                serde_json::from_value::<WrittenPage>(value)
                    .map_err(|e| StepError::permanent(format!("a page's checkpoint: {e}")))?,
            ),
            Err(StepError::Cancelled) => return Err(StepError::Cancelled),
            Err(StepError::Failed {
                kind: isocrates_engine::core::FailureKind::Permanent,
                message,
            }) => failed.push((title, message)),
            Err(error) => retry = Some(error),
        }
    }
    // Pages already written are checkpointed: the retry writes only the others.
    if let Some(error) = retry {
        return Err(error);
    }
    pages.sort_by(|a, b| a.title.cmp(&b.title));
    failed.sort();
    tracing::info!(run.id = %ctx.run_id, written = pages.len(), failed = failed.len(), total, "pages written");
    let summary = format!("{} of {total} pages written, {} failed", pages.len(), failed.len());
    done(WriteOutput { pages, failed }, summary)
}

/// The budget of the pages of one write step: once a cap is reached, the reason, and no
/// page starts after it.
struct PageBudget {
    gate: budget::Gate,
    paused: std::sync::Mutex<Option<String>>,
}

/// What stands in for a page the budget stopped: the step pauses instead.
fn stopped_by_budget() -> StepError {
    StepError::retryable("stopped at a budget".to_string())
}

#[allow(clippy::too_many_arguments)]
async fn write_page(
    d: &Docgen,
    ctx: &StepContext,
    budget: &PageBudget,
    page: &PlannedPage,
    blueprint: &Blueprint,
    analysis: &Analysis,
    titles: &BTreeSet<String>,
    snapshot: Option<Arc<std::sync::Mutex<Snapshot>>>,
    input: &DocgenInput,
    commit: &str,
) -> Result<WrittenPage, StepError> {
    let (Some(writer), Some(snapshot)) = (&d.models.writer, snapshot) else {
        let text = write::static_page(page, blueprint, analysis);
        let (content, cleaned) = write::finish(&text, page, titles, analysis);
        return Ok(WrittenPage {
            title: page.title.clone(),
            content,
            model: "static".into(),
            tokens_in: 0,
            tokens_out: 0,
            cost_usd: 0.0,
            links_removed: cleaned.links_removed,
            diagrams_fixed: cleaned.diagrams_fixed,
            truncated: false,
        });
    };
    if budget.paused.lock().map_or(true, |reason| reason.is_some()) {
        return Err(stopped_by_budget());
    }
    let request = writer_request(d, page, blueprint, analysis, &snapshot, input, commit)?;
    let cost = budget::worst_cost(writer, &request, d.settings.max_page_tokens);
    // The cost is held until what the call spent is recorded.
    let pass = match budget.gate.admit(ctx, cost).await? {
        Ok(pass) => pass,
        Err(reason) => {
            if let Ok(mut paused) = budget.paused.lock() {
                paused.get_or_insert(reason);
            }
            return Err(stopped_by_budget());
        }
    };
    let call = match writer.complete(&request).await {
        Ok(call) => call,
        Err(error) if error.is_retryable() || matches!(error, CallError::CircuitOpen { .. }) => {
            return Err(StepError::retryable(format!("writing \"{}\": {error}", page.title)));
        }
        Err(error) => {
            return Err(StepError::permanent(format!("writing \"{}\": {error}", page.title)));
        }
    };
    spend(ctx, std::slice::from_ref(&call)).await?;
    pass.release().await;
    let (content, cleaned) = write::finish(&call.reply.text, page, titles, analysis);
    Ok(WrittenPage {
        title: page.title.clone(),
        content,
        model: call.reply.model.clone(),
        tokens_in: call.reply.usage.input_tokens,
        tokens_out: call.reply.usage.output_tokens,
        cost_usd: call.cost_usd,
        links_removed: cleaned.links_removed,
        diagrams_fixed: cleaned.diagrams_fixed,
        truncated: call.reply.truncated,
    })
}

/// The writer's messages for `page`, with excerpts of its sources from `snapshot`, asking
/// for at most the configured answer.
fn writer_request(
    d: &Docgen,
    page: &PlannedPage,
    blueprint: &Blueprint,
    analysis: &Analysis,
    snapshot: &std::sync::Mutex<Snapshot>,
    input: &DocgenInput,
    commit: &str,
) -> Result<isocrates_providers::Request, StepError> {
    let sources = {
        let snapshot = snapshot.lock().expect("the snapshot is not shared across a panic");
        write::excerpts(page, analysis, |path| snapshot.read(path), d.settings.excerpt_tokens)
    };
    let others: Vec<PageLink> = blueprint
        .pages
        .iter()
        .filter(|p| p.title != page.title)
        .map(|p| PageLink { title: p.title.clone(), description: p.description.clone() })
        .collect();
    let context = WriterContext {
        repository: repository_facts(input, commit, analysis),
        page: PagePlan {
            title: page.title.clone(),
            path: page.path.clone(),
            doc_type: page.doc_type.clone(),
            description: page.description.clone(),
            sections: page.sections.clone(),
        },
        pages: others,
        sources,
        max_diagrams: if page.doc_type == "architecture" { 2 } else { 1 },
    };
    let mut request = d
        .prompts
        .writer(&context)
        .map_err(|e| StepError::permanent(format!("the writer prompt: {e}")))?
        .into_request();
    request.max_tokens = Some(d.settings.max_page_tokens);
    Ok(request)
}

/// The folder the repository's pages live under, as its clone found it (a checkpoint
/// from before tracked repositories names none: the repository's name).
fn folder_of(cloned: &CloneOutput, repo_url: &str) -> String {
    if cloned.folder.is_empty() { repo_folder(repo_url) } else { cloned.folder.clone() }
}

/// The id of a planned page: the published page of the same title wherever it was moved,
/// else the id its folder and title give a new page.
fn page_id(early: &EarlyCheck, repo_url: &str, folder: &str, plan: &PlannedPage) -> String {
    let key = title_key(&plan.title);
    let renamed = plan.replaces_title.as_deref().map(title_key);
    let found = early.published.iter().find(|p| title_key(&p.title) == key).or_else(|| {
        let renamed = renamed.as_deref()?;
        early.published.iter().find(|p| title_key(&p.title) == renamed)
    });
    found.map_or_else(
        || document_id(Some(repo_url), &page_folder(folder, plan), &plan.title, &plan.doc_type),
        |p| p.id.clone(),
    )
}

/// The folder a planned page is published under.
fn page_folder(folder: &str, page: &PlannedPage) -> String {
    if page.path.is_empty() { folder.to_string() } else { format!("{folder}/{}", page.path) }
}

async fn check_final(d: Arc<Docgen>, ctx: StepContext) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    let cloned: CloneOutput = output(&ctx, "clone")?;
    let folder = folder_of(&cloned, &input.repo_url);
    let blueprint: Blueprint = output(&ctx, "plan")?;
    let written: WriteOutput = output(&ctx, "write")?;
    let early: EarlyCheck = output(&ctx, "check_early")?;
    let mut publish = Vec::new();
    let mut kept = Vec::new();
    for page in &written.pages {
        let Some(plan) = blueprint.pages.iter().find(|p| p.title == page.title) else { continue };
        let id = page_id(&early, &input.repo_url, &folder, plan);
        let latest = d.storage.versions(&id, 0, 1).await.map_err(storage_failure)?;
        if latest.first().is_some_and(|v| v.author_type == AuthorType::Human.as_str()) {
            kept.push(page.title.clone());
        } else {
            publish.push(page.title.clone());
        }
    }
    let summary = format!("{} to publish, {} kept as people wrote them", publish.len(), kept.len());
    done(FinalCheck { publish, kept }, summary)
}

async fn publish(d: Arc<Docgen>, ctx: StepContext) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    let cloned: CloneOutput = output(&ctx, "clone")?;
    let early: EarlyCheck = output(&ctx, "check_early")?;
    let blueprint: Blueprint = output(&ctx, "plan")?;
    let written: WriteOutput = output(&ctx, "write")?;
    let checked: FinalCheck = output(&ctx, "check_final")?;
    let analysis: Analysis = output(&ctx, "analyze")?;
    let planned_modules: Vec<String> =
        modules_with_sources(&analysis).into_iter().map(|m| m.path.clone()).collect();
    let asked = blueprint.write.len();
    if asked > 0 && written.pages.len() * 2 < asked {
        let first = written
            .failed
            .first()
            .map(|(t, e)| format!(": \"{t}\" failed with {e}"))
            .unwrap_or_default();
        return Err(StepError::permanent(format!(
            "only {} of {asked} pages were written{first}; nothing was published",
            written.pages.len()
        )));
    }
    let hashes: BTreeMap<&str, &str> =
        cloned.files.iter().filter_map(|f| Some((f.path.as_str(), f.sha256.as_deref()?))).collect();
    let provider = d.models.provider.clone();
    let planner_model = d.models.planner.as_ref().map(|l| l.provider().model().to_string());
    let writer_model = d.models.writer.as_ref().map(|l| l.provider().model().to_string());
    let folder = folder_of(&cloned, &input.repo_url);
    let repo_folder_name = folder.split('/').next().unwrap_or(&folder).to_string();
    let mut documents_written = 0u64;
    let mut proposals = 0u64;
    for page in &written.pages {
        let Some(plan) = blueprint.pages.iter().find(|p| p.title == page.title) else { continue };
        let source_hashes: BTreeMap<&str, String> = plan
            .source_files
            .iter()
            .filter_map(|f| Some((f.as_str(), short(hashes.get(f.as_str())?))))
            .collect();
        let metadata = json!({
            "generator": "isocrates",
            "repo_commit_sha": cloned.commit_sha,
            "run_id": ctx.run_id,
            "provider": provider,
            "planner_model": planner_model,
            "writer_model": writer_model,
            "model": page.model,
            "planned_by": blueprint.planned_by,
            "planned_modules": planned_modules,
            "source_files": plan.source_files,
            "source_hashes": source_hashes,
            "tokens_in": page.tokens_in,
            "tokens_out": page.tokens_out,
            "cost_usd": page.cost_usd,
        });
        let new = NewDocument {
            title: plan.title.clone(),
            content: page.content.clone(),
            path: page_folder(&folder, plan),
            repo_url: Some(input.repo_url.clone()),
            repo_name: Some(repo_folder_name.clone()),
            doc_type: plan.doc_type.clone(),
            keywords: Vec::new(),
            description: Some(plan.description.clone()).filter(|d| !d.is_empty()),
            author: Author { author_type: AuthorType::Ai, metadata: Some(metadata) },
        };
        let storage = d.storage.clone();
        let id = page_id(&early, &input.repo_url, &folder, plan);
        if checked.kept.contains(&page.title) {
            // A person wrote the page last: the AI text waits beside it as a proposal.
            ctx.item(&format!("propose:{}", title_key(&plan.title)), || async move {
                let proposal = storage
                    .propose(&id, &new.content, new.description.as_deref(), new.author.metadata)
                    .await
                    .map_err(storage_failure)?;
                Ok(json!({"id": proposal.id}))
            })
            .await?;
            proposals += 1;
            continue;
        }
        // A published page is updated where it is, even if someone moved it; a new one, or
        // one trashed since, is stored at its planned folder.
        let update = early.published.iter().any(|p| p.id == id).then(|| ContentUpdate {
            content: new.content.clone(),
            description: new.description.clone(),
            author: new.author.clone(),
            expected_version: None,
        });
        ctx.item(&format!("publish:{}", title_key(&plan.title)), || async move {
            if let Some(update) = update {
                match storage.update_content(&id, update).await {
                    Ok(doc) => return Ok(json!({"id": doc.id})),
                    Err(isocrates_storage::Error::NotFound { .. }) => {}
                    Err(e) => return Err(storage_failure(e)),
                }
            }
            let stored = storage.upsert_document(new, |_| true).await.map_err(storage_failure)?;
            let doc = match stored {
                isocrates_storage::documents::Upserted::Created(doc)
                | isocrates_storage::documents::Upserted::Updated(doc) => doc,
            };
            Ok(json!({"id": doc.id}))
        })
        .await?;
        documents_written += 1;
    }
    // Pages the plan no longer has go to the trash, unless a person wrote their latest
    // version.
    let planned: BTreeSet<String> = blueprint.pages.iter().map(|p| title_key(&p.title)).collect();
    let mut trashed = Vec::new();
    for page in early.published.iter().filter(|p| !planned.contains(&title_key(&p.title))) {
        if page.latest_author == AuthorType::Human.as_str() {
            continue;
        }
        let storage = d.storage.clone();
        let id = page.id.clone();
        ctx.item(&format!("trash:{}", page.id), || async move {
            storage.trash_document(&id).await.map_err(storage_failure)?;
            Ok(json!({"id": id}))
        })
        .await?;
        trashed.push(page.title.clone());
    }
    // The commit counts as published once every page is: a page that failed stays due,
    // and so do the files added for it, which the next run finds again since this commit.
    if written.failed.is_empty() {
        d.storage
            .set_published_commit(&input.repo_url, &cloned.commit_sha)
            .await
            .map_err(storage_failure)?;
    }
    let documents_skipped = (blueprint.pages.len() as u64).saturating_sub(documents_written);
    tracing::info!(
        run.id = %ctx.run_id,
        documents_written,
        documents_skipped,
        trashed = trashed.len(),
        "published"
    );
    let summary = format!(
        "{documents_written} pages published, {documents_skipped} left as they were, {proposals} proposals, {} trashed",
        trashed.len()
    );
    done(
        json!({
            "documents_written": documents_written,
            "documents_skipped": documents_skipped,
            "kept_for_people": checked.kept,
            "proposals": proposals,
            "failed": written.failed,
            "trashed": trashed,
            "planned_by": blueprint.planned_by,
            "note": blueprint.note,
        }),
        summary,
    )
}
