//! The text of one page: the excerpts its writer reads, fitted to a token budget; the
//! page built from the analysis alone when no model is configured; and what every page
//! goes through before it is kept: wikilinks only to planned titles, mermaid blocks that
//! parse, no title heading, and a table of its sources.

use std::collections::BTreeSet;
use std::fmt::Write;

use isocrates_storage::links::title_key;

use crate::analyze::{Analysis, FileFacts, Language, SymbolKind};
use crate::prompts::SourceExcerpt;

use super::plan::{Blueprint, PlannedPage};

/// Bytes per token, for budgets.
const BYTES_PER_TOKEN: usize = 4;

/// Fits the files of a page into `budget_tokens`: every file gets an equal share, and
/// what a short file leaves is shared among the longer ones. A cut falls at a line end.
pub fn excerpts(
    page: &PlannedPage,
    analysis: &Analysis,
    read: impl Fn(&str) -> Option<Vec<u8>>,
    budget_tokens: usize,
) -> Vec<SourceExcerpt> {
    let texts: Vec<(String, String)> = page
        .source_files
        .iter()
        .filter_map(|path| Some((path.clone(), String::from_utf8(read(path)?).ok()?)))
        .collect();
    let mut budget = budget_tokens * BYTES_PER_TOKEN;
    let mut shares = vec![0usize; texts.len()];
    let mut open: Vec<usize> = (0..texts.len()).collect();
    // Hand out equal shares; files that need less give the rest back to the others.
    while !open.is_empty() && budget > 0 {
        let share = budget / open.len();
        if share == 0 {
            break;
        }
        let mut still_open = Vec::new();
        for &i in &open {
            let need = texts[i].1.len() - shares[i];
            let given = need.min(share);
            shares[i] += given;
            budget -= given;
            if shares[i] < texts[i].1.len() {
                still_open.push(i);
            }
        }
        if still_open.len() == open.len() {
            break;
        }
        open = still_open;
    }
    texts
        .into_iter()
        .zip(shares)
        .map(|((path, text), share)| {
            let truncated = share < text.len();
            let excerpt = if truncated { cut_at_line(&text, share) } else { text };
            let language = analysis
                .file(&path)
                .and_then(|f| f.language)
                .map(Language::fence)
                .unwrap_or_else(|| fence_of(&path));
            SourceExcerpt::new(&path, language, excerpt, truncated)
        })
        .collect()
}

fn fence_of(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).as_deref() {
        Some("md") => "markdown",
        Some("toml") => "toml",
        Some("json") => "json",
        Some("yaml" | "yml") => "yaml",
        Some("xml") => "xml",
        Some("sh") => "sh",
        _ => "text",
    }
}

fn cut_at_line(text: &str, max: usize) -> String {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let end = text[..end].rfind('\n').map(|i| i + 1).unwrap_or(end);
    text[..end].to_string()
}

/// What a kept page's text went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Wikilinks to titles the plan does not have, made plain text.
    pub links_removed: usize,
    /// Mermaid blocks that do not parse, shown as plain code instead.
    pub diagrams_fixed: usize,
}

/// Makes a model's (or the analysis') text a page: the answer unwrapped from a markdown
/// fence and without a heading repeating the title, wikilinks only to `titles`, mermaid
/// blocks checked, and the sources table appended.
pub fn finish(
    text: &str,
    page: &PlannedPage,
    titles: &BTreeSet<String>,
    analysis: &Analysis,
) -> (String, Cleaned) {
    let mut cleaned = Cleaned::default();
    let mut body = unwrap_fence(text.trim()).to_string();
    if let Some(first) = body.lines().next()
        && first.starts_with("# ")
        && title_key(first.trim_start_matches('#')) == title_key(&page.title)
    {
        body = body[first.len()..].trim_start().to_string();
    }
    let (linked, removed) = keep_links(&body, titles, &page.title);
    cleaned.links_removed = removed;
    let (checked, fixed) = check_diagrams(&linked);
    cleaned.diagrams_fixed = fixed;
    let mut out = checked.trim_end().to_string();
    out.push_str("\n\n## Sources\n\n| File | Lines |\n| --- | --- |\n");
    for path in &page.source_files {
        let lines = analysis.file(path).map(|f| f.lines).unwrap_or(0);
        let _ = writeln!(out, "| `{path}` | {lines} |");
    }
    (out, cleaned)
}

/// The answer without the ```` ```markdown ```` fence some models wrap it in.
fn unwrap_fence(text: &str) -> &str {
    for opening in ["```markdown\n", "```md\n", "```\n"] {
        if let Some(inner) = text.strip_prefix(opening).and_then(|t| t.strip_suffix("```"))
            && inner.matches("```").count().is_multiple_of(2)
        {
            return inner.trim();
        }
    }
    text
}

/// Keeps `[[Title]]` and `[[Title|text]]` whose title is planned (and is not the page
/// itself); the others become their text.
fn keep_links(text: &str, titles: &BTreeSet<String>, own: &str) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut removed = 0;
    let mut rest = text;
    while let Some(start) = rest.find("[[") {
        let Some(len) = rest[start + 2..].find("]]") else { break };
        let inner = &rest[start + 2..start + 2 + len];
        out.push_str(&rest[..start]);
        let (target, shown) = inner.split_once('|').unwrap_or((inner, inner));
        let key = title_key(target.trim());
        if titles.contains(&key) && key != title_key(own) && !inner.contains('\n') {
            out.push_str(&rest[start..start + 2 + len + 2]);
        } else {
            out.push_str(shown.trim());
            removed += 1;
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    (out, removed)
}

/// The diagram types a mermaid block may start with.
const DIAGRAMS: [&str; 14] = [
    "flowchart",
    "graph",
    "sequenceDiagram",
    "classDiagram",
    "stateDiagram",
    "stateDiagram-v2",
    "erDiagram",
    "gantt",
    "pie",
    "journey",
    "mindmap",
    "timeline",
    "gitGraph",
    "quadrantChart",
];

/// Shows mermaid blocks that would not render (an unknown diagram type, unbalanced
/// brackets or quotes) as plain code.
fn check_diagrams(text: &str) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut fixed = 0;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() != "```mermaid" {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut body = Vec::new();
        for inner in lines.by_ref() {
            if inner.trim() == "```" {
                break;
            }
            body.push(inner);
        }
        let ok = diagram_parses(&body);
        if !ok {
            fixed += 1;
        }
        out.push_str(if ok { "```mermaid\n" } else { "```text\n" });
        for inner in body {
            out.push_str(inner);
            out.push('\n');
        }
        out.push_str("```\n");
    }
    (out, fixed)
}

fn diagram_parses(body: &[&str]) -> bool {
    let Some(first) = body.iter().map(|l| l.trim()).find(|l| !l.is_empty() && !l.starts_with("%%"))
    else {
        return false;
    };
    let kind = first.split_whitespace().next().unwrap_or_default();
    if !DIAGRAMS.contains(&kind) {
        return false;
    }
    let text = body.join("\n");
    if !text.matches('"').count().is_multiple_of(2) {
        return false;
    }
    let mut stack = Vec::new();
    let mut in_quote = false;
    for c in text.chars() {
        match c {
            '"' => in_quote = !in_quote,
            _ if in_quote => {}
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(open) {
                    return false;
                }
            }
            _ => {}
        }
    }
    stack.is_empty()
}

/// A page from the analysis alone, for the static provider.
pub fn static_page(page: &PlannedPage, blueprint: &Blueprint, analysis: &Analysis) -> String {
    let link = |title: &str| format!("[[{title}]]");
    let module_page = |module_path: &str| -> Option<&PlannedPage> {
        blueprint.pages.iter().find(|p| {
            p.doc_type == "module"
                && analysis.modules.iter().any(|m| {
                    m.path == module_path && m.files.iter().any(|f| p.source_files.contains(f))
                })
        })
    };
    let mut out = String::new();
    match page.doc_type.as_str() {
        "overview" => {
            let _ = writeln!(out, "{}\n", page.description);
            if let Some(readme) = &analysis.readme {
                let intro: String = readme
                    .lines()
                    .skip_while(|l| l.starts_with("# ") || l.trim().is_empty())
                    .take_while(|l| !l.starts_with("## "))
                    .collect::<Vec<_>>()
                    .join("\n");
                if !intro.trim().is_empty() {
                    let _ = writeln!(out, "## Purpose\n\n{}\n", intro.trim());
                }
            }
            let languages: Vec<String> = analysis
                .languages()
                .iter()
                .map(|(l, n)| format!("{} ({n} files)", l.name()))
                .collect();
            if !languages.is_empty() {
                let _ = writeln!(out, "Written in {}.\n", languages.join(", "));
            }
            out.push_str("## Modules\n\n| Module | Folder | What it is |\n| --- | --- | --- |\n");
            for module in &analysis.modules {
                let name = module_page(&module.path)
                    .map(|p| link(&p.title))
                    .unwrap_or_else(|| module.name.clone());
                let folder = if module.path.is_empty() {
                    "(root)".to_string()
                } else {
                    format!("`{}`", module.path)
                };
                let _ = writeln!(
                    out,
                    "| {name} | {folder} | {} |",
                    module.description.as_deref().unwrap_or("")
                );
            }
            out.push_str("\n## Where to start\n\n");
            for other in blueprint.pages.iter().filter(|p| p.title != page.title) {
                let _ = writeln!(out, "- {}: {}", link(&other.title), other.description);
            }
        }
        "guide" => {
            let _ = writeln!(out, "{}\n", page.description);
            let sections = analysis.readme.as_deref().map(readme_sections).unwrap_or_default();
            if sections.is_empty() {
                out.push_str("## Build\n\n");
                for module in analysis.modules.iter().filter(|m| m.manifest.is_some()) {
                    let folder =
                        if module.path.is_empty() { ".".to_string() } else { module.path.clone() };
                    let command = match module.manifest.as_deref() {
                        Some("Cargo.toml") => "cargo build",
                        Some("package.json") => "npm install && npm run build",
                        Some("go.mod") => "go build ./...",
                        Some("pyproject.toml" | "setup.py") => "pip install -e .",
                        Some("pom.xml") => "mvn package",
                        _ => "gradle build",
                    };
                    let _ = writeln!(out, "- `{}` in `{folder}`: `{command}`", module.name);
                }
            } else {
                for section in sections {
                    let _ = writeln!(out, "{section}\n");
                }
            }
            if !analysis.entry_points.is_empty() {
                out.push_str("\n## Programs\n\n");
                for entry in &analysis.entry_points {
                    let _ = writeln!(out, "- `{entry}`");
                }
            }
        }
        "architecture" => {
            let _ = writeln!(out, "{}\n\n## Components\n", page.description);
            let modules = &analysis.modules;
            if modules.len() > 1 {
                out.push_str("```mermaid\nflowchart LR\n");
                for (i, module) in modules.iter().enumerate() {
                    let _ = writeln!(out, "    m{i}[\"{}\"]", module.name.replace('"', "'"));
                }
                for (i, module) in modules.iter().enumerate() {
                    for dependency in &module.depends_on {
                        if let Some(j) = modules.iter().position(|m| &m.path == dependency) {
                            let _ = writeln!(out, "    m{i} --> m{j}");
                        }
                    }
                }
                out.push_str("```\n\n");
            }
            out.push_str("| Module | Depends on | Files |\n| --- | --- | --- |\n");
            for module in modules {
                let name = module_page(&module.path)
                    .map(|p| link(&p.title))
                    .unwrap_or_else(|| module.name.clone());
                let depends: Vec<String> = module
                    .depends_on
                    .iter()
                    .filter_map(|d| modules.iter().find(|m| &m.path == d))
                    .map(|m| {
                        module_page(&m.path)
                            .map(|p| link(&p.title))
                            .unwrap_or_else(|| m.name.clone())
                    })
                    .collect();
                let _ =
                    writeln!(out, "| {name} | {} | {} |", depends.join(", "), module.files.len());
            }
            if !analysis.entry_points.is_empty() {
                out.push_str("\n## Entry points\n\n");
                for entry in &analysis.entry_points {
                    let _ = writeln!(out, "- `{entry}`");
                }
            }
        }
        _ => {
            let _ = writeln!(out, "{}\n", page.description);
            let files: Vec<&FileFacts> =
                page.source_files.iter().filter_map(|p| analysis.file(p)).collect();
            out.push_str("## Files\n\n| File | Language | Lines |\n| --- | --- | --- |\n");
            for file in &files {
                let language = file.language.map(Language::name).unwrap_or("text");
                let _ = writeln!(out, "| `{}` | {language} | {} |", file.path, file.lines);
            }
            out.push_str("\n## Public API\n");
            for file in files.iter().filter(|f| f.symbols.iter().any(|s| s.public)) {
                let _ = writeln!(out, "\n### `{}`\n", file.path);
                for symbol in file.symbols.iter().filter(|s| s.public) {
                    let kind = match symbol.kind {
                        SymbolKind::Function => "function",
                        SymbolKind::Method => "method",
                        SymbolKind::Struct => "struct",
                        SymbolKind::Enum => "enum",
                        SymbolKind::Class => "class",
                        SymbolKind::Interface => "interface",
                        SymbolKind::Type => "type",
                        SymbolKind::Module => "module",
                    };
                    let doc = symbol
                        .doc
                        .as_deref()
                        .and_then(|d| d.lines().next())
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "- `{}` ({kind}, lines {}-{}){doc}",
                        symbol.name, symbol.start_line, symbol.end_line
                    );
                }
            }
            let links: Vec<String> = page.links_out.iter().map(|t| link(t)).collect();
            if !links.is_empty() {
                let _ = writeln!(out, "\n## See also\n\n{}", links.join(", "));
            }
        }
    }
    out
}

/// The README's sections on getting the code to run, by their headings.
fn readme_sections(readme: &str) -> Vec<String> {
    let wanted = [
        "install",
        "getting started",
        "quick start",
        "quickstart",
        "usage",
        "build",
        "run",
        "setup",
        "test",
    ];
    let mut sections = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        if line.starts_with("## ") {
            if let Some(done) = current.take() {
                sections.push(done);
            }
            let heading = line.trim_start_matches('#').trim().to_ascii_lowercase();
            if wanted.iter().any(|w| heading.contains(w)) {
                current = Some(format!("{line}\n"));
            }
        } else if let Some(section) = current.as_mut() {
            section.push_str(line);
            section.push('\n');
        }
    }
    sections.extend(current);
    sections.into_iter().map(|s| s.trim().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::{SourceFile, analyze};

    fn page(files: &[&str]) -> PlannedPage {
        PlannedPage {
            title: "Carts".into(),
            path: String::new(),
            doc_type: "module".into(),
            description: "Carts.".into(),
            sections: vec![],
            source_files: files.iter().map(|f| f.to_string()).collect(),
            links_out: vec![],
            replaces_title: None,
        }
    }

    fn analysis() -> Analysis {
        analyze(
            "shop",
            vec![SourceFile {
                path: "a.rs".into(),
                size: 24,
                content: Some(b"pub fn a() {}\nfn b() {}\n".to_vec()),
            }],
        )
    }

    #[test]
    fn links_to_unplanned_titles_become_text_and_broken_diagrams_plain_code() {
        let titles: BTreeSet<String> = ["carts", "orders"].iter().map(|t| t.to_string()).collect();
        let text = "```markdown\n# Carts\n\nSee [[Orders]], [[Payments|the payments]] and [[carts]].\n\n```mermaid\nflowchart LR\n  a[Cart] --> b[Order\n```\n\n```mermaid\ngraph TD\n  a --> b\n```\n```";
        let (out, cleaned) = finish(text, &page(&["a.rs"]), &titles, &analysis());
        assert!(out.starts_with("See [[Orders]], the payments and carts."), "{out}");
        assert_eq!(cleaned, Cleaned { links_removed: 2, diagrams_fixed: 1 });
        assert!(out.contains("```text\nflowchart LR"), "{out}");
        assert!(out.contains("```mermaid\ngraph TD"), "{out}");
        assert!(
            out.ends_with("## Sources\n\n| File | Lines |\n| --- | --- |\n| `a.rs` | 3 |\n"),
            "{out}"
        );
    }

    #[test]
    fn excerpts_share_the_budget_and_cut_at_a_line_end() {
        let long = "line\n".repeat(100);
        let short = "tiny\n".to_string();
        let read = |path: &str| match path {
            "long.rs" => Some(long.clone().into_bytes()),
            "short.rs" => Some(short.clone().into_bytes()),
            _ => None,
        };
        let shown = excerpts(&page(&["long.rs", "short.rs", "gone.rs"]), &analysis(), read, 50);
        assert_eq!(shown.len(), 2, "a file that cannot be read is left out");
        assert_eq!(shown[1].excerpt, short);
        assert!(!shown[1].truncated);
        assert!(shown[0].truncated);
        assert!(shown[0].excerpt.len() <= 200 - short.len() && shown[0].excerpt.ends_with('\n'));
        assert_eq!(shown[0].excerpt.len(), 195, "what the short file left goes to the long one");
    }
}
