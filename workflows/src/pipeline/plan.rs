//! The blueprint of a repository's wiki: which pages it has, what each covers and which
//! source files its writer reads. The planner model proposes one against a JSON schema;
//! what it answers is checked and cleaned here (known files only, unique titles, at most
//! `max_pages`), and when it cannot give a usable answer the plan is built from the
//! analysis alone.

use std::collections::BTreeSet;

use isocrates_storage::links::title_key;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::analyze::{Analysis, Module};

/// One planned page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPage {
    /// Its title, unique in the repository's wiki.
    pub title: String,
    /// Its folder below the repository's folder (`""` for the folder itself).
    #[serde(default)]
    pub path: String,
    /// Its kind: `overview`, `guide`, `architecture`, `module`, `api`, ...
    #[serde(default)]
    pub doc_type: String,
    /// What it covers, in a sentence or two.
    #[serde(default)]
    pub description: String,
    /// The sections it should have.
    #[serde(default)]
    pub sections: Vec<String>,
    /// The files its writer reads.
    #[serde(default)]
    pub source_files: Vec<String>,
    /// The titles of the pages it links to.
    #[serde(default)]
    pub links_out: Vec<String>,
    /// The title this page had before, when the plan renames a page.
    #[serde(default)]
    pub replaces_title: Option<String>,
}

/// Who made a blueprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlannedBy {
    /// The planner model.
    Planner,
    /// The analysis alone: no model, or none that answered usably.
    Analysis,
    /// The pages published before, kept because no structure changed.
    PreviousRun,
}

/// The plan of a run: the checkpoint of the `plan` step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blueprint {
    /// What the repository is, in a sentence or two.
    pub summary: String,
    /// Every page of the wiki.
    pub pages: Vec<PlannedPage>,
    /// Who made it.
    pub planned_by: PlannedBy,
    /// The titles of the pages this run writes; the others stay as published.
    pub write: Vec<String>,
    /// Why the plan is not the planner's, when it is not.
    pub note: Option<String>,
}

/// The JSON schema the planner answers.
pub fn schema() -> Value {
    let text = json!({"type": "string"});
    let list = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "type": "object",
        "required": ["summary", "pages"],
        "properties": {
            "summary": text,
            "pages": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["title", "doc_type", "description", "source_files"],
                    "properties": {
                        "title": text,
                        "path": text,
                        "doc_type": {"type": "string", "enum": ["overview", "guide", "architecture", "module", "api", "reference", "concept"]},
                        "description": text,
                        "sections": list,
                        "source_files": list,
                        "links_out": list,
                        "replaces_title": {"type": ["string", "null"]},
                    },
                },
            },
        },
    })
}

/// Reads and cleans the planner's answer: pages keep only source files the analysis has,
/// lose `/` in titles, drop duplicates and pages left without sources, and stop at
/// `max_pages`. An answer with no usable page is an error the model is shown.
pub fn from_answer(
    answer: &Value,
    analysis: &Analysis,
    max_pages: usize,
) -> Result<(String, Vec<PlannedPage>), String> {
    let summary = answer["summary"].as_str().unwrap_or_default().trim().to_string();
    let raw: Vec<PlannedPage> = serde_json::from_value(answer["pages"].clone()).map_err(|e| {
        format!("`pages` must be a list of pages with a title and source files: {e}")
    })?;
    let known: BTreeSet<&str> = analysis.files.iter().map(|f| f.path.as_str()).collect();
    let mut titles = BTreeSet::new();
    let mut pages = Vec::new();
    let mut problems = Vec::new();
    for mut page in raw {
        page.title = clean_title(&page.title);
        if page.title.is_empty() || !titles.insert(title_key(&page.title)) {
            continue;
        }
        let before = page.source_files.len();
        page.source_files.retain(|f| known.contains(f.trim_start_matches("./")));
        for file in &mut page.source_files {
            *file = file.trim_start_matches("./").to_string();
        }
        page.source_files.dedup();
        if page.source_files.is_empty() {
            problems.push(format!(
                "the page \"{}\" names {before} source files, none of which is in the repository",
                page.title
            ));
            continue;
        }
        page.path = clean_path(&page.path);
        page.doc_type = page.doc_type.trim().to_ascii_lowercase();
        clamp(&mut page);
        pages.push(page);
        if pages.len() == max_pages {
            break;
        }
    }
    if pages.is_empty() {
        let why = problems.first().cloned().unwrap_or_else(|| "the plan has no pages".to_string());
        return Err(format!("no usable page: {why}; use the file paths exactly as listed"));
    }
    let planned: BTreeSet<String> = pages.iter().map(|p| title_key(&p.title)).collect();
    for page in &mut pages {
        page.links_out
            .retain(|t| planned.contains(&title_key(t)) && title_key(t) != title_key(&page.title));
    }
    Ok((summary, pages))
}

/// A title as a document may carry it: no `/` or control characters, no surrounding
/// space, at most 200 characters; empty when nothing is left.
pub fn clean_title(title: &str) -> String {
    let printable: String = title
        .chars()
        .map(|c| {
            if c == '/' {
                '-'
            } else if c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect();
    printable.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect()
}

/// Bounds the free-text fields of a planned page to what the document store takes.
fn clamp(page: &mut PlannedPage) {
    page.description =
        page.description.chars().filter(|c| !c.is_control() || *c == '\n').take(1000).collect();
    page.doc_type = page
        .doc_type
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(40)
        .collect();
}

/// A folder below the repository's: lower-case segments of letters, digits, `-` and `_`.
fn clean_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            segment
                .trim()
                .to_ascii_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
                .collect::<String>()
                .trim_matches('-')
                .to_string()
        })
        .filter(|s| !s.is_empty() && s != "..")
        .take(3)
        .collect::<Vec<_>>()
        .join("/")
}

/// The most files a page built from the analysis reads.
const MAX_SOURCES: usize = 12;

/// The plan built from the analysis alone: an overview, a getting-started page, the
/// architecture, one page per module (or per area in a large repository) and an API
/// reference when the code exposes one.
pub fn from_analysis(
    repo_name: &str,
    analysis: &Analysis,
    max_pages: usize,
) -> (String, Vec<PlannedPage>) {
    let name = display_name(repo_name);
    let readme: Vec<String> = analysis
        .files
        .iter()
        .filter(|f| f.path.to_ascii_lowercase().starts_with("readme"))
        .map(|f| f.path.clone())
        .collect();
    let manifests: Vec<String> = analysis
        .modules
        .iter()
        .filter_map(|m| m.manifest.as_ref().map(|file| join(&m.path, file)))
        .filter(|p| analysis.file(p).is_some())
        .collect();
    let entries = analysis.entry_points.clone();
    let busiest =
        busiest_files(analysis, analysis.source_files().map(|f| f.path.as_str()).collect());

    let overview_title = format!("{name} Overview");
    let start_title = format!("Getting Started with {name}");
    let architecture_title = format!("{name} Architecture");
    let api_title = format!("{name} API Reference");
    let mut pages = Vec::new();
    let first = |lists: &[&[String]], n: usize| -> Vec<String> {
        let mut seen = BTreeSet::new();
        lists
            .iter()
            .flat_map(|l| l.iter())
            .filter(|p| seen.insert((*p).clone()))
            .take(n)
            .cloned()
            .collect()
    };
    pages.push(PlannedPage {
        title: overview_title.clone(),
        path: String::new(),
        doc_type: "overview".into(),
        description: format!("What {name} is for, what it is made of and where to read on."),
        sections: vec!["Purpose".into(), "Modules".into(), "Where to start".into()],
        source_files: first(&[&readme, &manifests, &entries, &busiest], 8),
        links_out: Vec::new(),
        replaces_title: None,
    });
    pages.push(PlannedPage {
        title: start_title.clone(),
        path: String::new(),
        doc_type: "guide".into(),
        description: format!("How to build, run and test {name}."),
        sections: vec!["Requirements".into(), "Build".into(), "Run".into(), "Test".into()],
        source_files: first(&[&readme, &manifests, &entries], 8),
        links_out: vec![overview_title.clone()],
        replaces_title: None,
    });
    pages.push(PlannedPage {
        title: architecture_title.clone(),
        path: String::new(),
        doc_type: "architecture".into(),
        description: format!("How the parts of {name} fit together and depend on each other."),
        sections: vec!["Components".into(), "Dependencies".into(), "Entry points".into()],
        source_files: first(&[&manifests, &entries, &busiest], MAX_SOURCES),
        links_out: vec![overview_title.clone()],
        replaces_title: None,
    });

    let mut taken: BTreeSet<String> = pages.iter().map(|p| title_key(&p.title)).collect();
    let mut unique = |title: String, path: &str| {
        let title = if taken.contains(&title_key(&title)) && !path.is_empty() {
            format!("{title} ({path})")
        } else {
            title
        };
        taken.insert(title_key(&title));
        title
    };
    let mut module_pages = Vec::new();
    if analysis.areas.is_empty() {
        for module in
            analysis.modules.iter().filter(|m| m.files.iter().any(|f| is_source(analysis, f)))
        {
            let title = unique(module_title(module, repo_name), &module.path);
            let files = busiest_files(analysis, module.files.iter().map(String::as_str).collect());
            module_pages.push((
                module.path.clone(),
                PlannedPage {
                    title,
                    path: "modules".into(),
                    doc_type: "module".into(),
                    description: module.description.clone().unwrap_or_else(|| {
                        format!("What the {} module does and the API it offers.", module.name)
                    }),
                    sections: vec!["Purpose".into(), "Public API".into(), "How it is used".into()],
                    source_files: first(
                        &[
                            &module
                                .manifest
                                .iter()
                                .map(|m| join(&module.path, m))
                                .collect::<Vec<_>>(),
                            &files,
                        ],
                        MAX_SOURCES,
                    ),
                    links_out: vec![architecture_title.clone()],
                    replaces_title: None,
                },
            ));
        }
        // Links follow the import graph.
        let titles: Vec<(String, String)> =
            module_pages.iter().map(|(path, p)| (path.clone(), p.title.clone())).collect();
        for (path, page) in &mut module_pages {
            let module =
                analysis.modules.iter().find(|m| &m.path == path).expect("a module per page");
            for dependency in &module.depends_on {
                if let Some((_, title)) = titles.iter().find(|(p, _)| p == dependency) {
                    page.links_out.push(title.clone());
                }
            }
        }
    } else {
        for area in &analysis.areas {
            let files: Vec<&str> = analysis
                .modules
                .iter()
                .filter(|m| area.modules.contains(&m.path))
                .flat_map(|m| m.files.iter().map(String::as_str))
                .collect();
            if !files.iter().any(|f| is_source(analysis, f)) {
                continue;
            }
            let title = unique(display_name(&area.name), &area.name);
            module_pages.push((
                area.name.clone(),
                PlannedPage {
                    title,
                    path: "modules".into(),
                    doc_type: "module".into(),
                    description: format!(
                        "The {} modules under {}/ and what each offers.",
                        area.modules.len(),
                        area.name
                    ),
                    sections: vec!["Modules".into(), "Public API".into()],
                    source_files: busiest_files(analysis, files)
                        .into_iter()
                        .take(MAX_SOURCES)
                        .collect(),
                    links_out: vec![architecture_title.clone()],
                    replaces_title: None,
                },
            ));
        }
    }
    pages.extend(module_pages.into_iter().map(|(_, p)| p));

    let public: Vec<String> = busiest_files(
        analysis,
        analysis
            .source_files()
            .filter(|f| f.symbols.iter().any(|s| s.public))
            .map(|f| f.path.as_str())
            .collect(),
    );
    if !public.is_empty() {
        pages.push(PlannedPage {
            title: unique(api_title, ""),
            path: String::new(),
            doc_type: "api".into(),
            description: format!("The public types and functions of {name}, file by file."),
            sections: vec!["Types".into(), "Functions".into()],
            source_files: public.into_iter().take(MAX_SOURCES).collect(),
            links_out: vec![overview_title.clone()],
            replaces_title: None,
        });
    }
    pages.retain(|p| !p.source_files.is_empty());
    pages.truncate(max_pages.max(1));
    let kept: BTreeSet<String> = pages.iter().map(|p| title_key(&p.title)).collect();
    let others: Vec<String> = pages.iter().skip(1).map(|p| p.title.clone()).collect();
    if let Some(overview) = pages.first_mut() {
        overview.links_out = others;
    }
    for page in &mut pages {
        page.links_out.retain(|t| kept.contains(&title_key(t)));
        page.links_out.dedup();
    }
    let summary =
        analysis.modules.iter().find_map(|m| m.description.clone()).unwrap_or_else(|| {
            format!("{name}: {} files in {} modules.", analysis.files.len(), analysis.modules.len())
        });
    (summary, pages)
}

fn is_source(analysis: &Analysis, path: &str) -> bool {
    analysis.file(path).is_some_and(|f| f.language.is_some())
}

/// `files` ordered by how much they declare publicly, then by size: the ones a reader of
/// the module meets first.
fn busiest_files(analysis: &Analysis, files: Vec<&str>) -> Vec<String> {
    let mut scored: Vec<(usize, u64, &str)> = files
        .into_iter()
        .filter_map(|path| analysis.file(path))
        .filter(|f| f.language.is_some())
        .map(|f| (f.symbols.iter().filter(|s| s.public).count(), f.size, f.path.as_str()))
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(b.2)));
    scored.into_iter().map(|(_, _, p)| p.to_string()).collect()
}

fn module_title(module: &Module, repo_name: &str) -> String {
    let name = clean_title(&module.name);
    if module.path.is_empty() && (module.name == repo_name || name.is_empty()) {
        format!("{} Core", display_name(repo_name))
    } else if name.is_empty() {
        // A manifest with an empty or unprintable name: the module's folder names it.
        clean_title(module.path.rsplit('/').next().unwrap_or(&module.path))
    } else {
        name
    }
}

/// A name as a title shows it: `billing-core` stays, `widgets` becomes `Widgets`.
pub fn display_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Repository".to_string(),
    }
}

fn join(folder: &str, file: &str) -> String {
    if folder.is_empty() { file.to_string() } else { format!("{folder}/{file}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::{SourceFile, analyze};

    fn sample() -> Analysis {
        let file = |path: &str, content: &str| SourceFile {
            path: path.into(),
            size: content.len() as u64,
            content: Some(content.as_bytes().to_vec()),
        };
        analyze(
            "shop",
            vec![
                file("README.md", "# Shop\n"),
                file("Cargo.toml", "[workspace]\n"),
                file(
                    "core/Cargo.toml",
                    "[package]\nname = \"shop-core\"\ndescription = \"Carts.\"\n",
                ),
                file("core/src/lib.rs", "pub struct Cart;\npub fn total() {}\n"),
                file("cli/Cargo.toml", "[package]\nname = \"shop-cli\"\n"),
                file("cli/src/main.rs", "use shop_core::Cart;\nfn main() {}\n"),
            ],
        )
    }

    #[test]
    fn the_analysis_plan_covers_overview_start_architecture_modules_and_api() {
        let (summary, pages) = from_analysis("shop", &sample(), 20);
        let titles: Vec<&str> = pages.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "Shop Overview",
                "Getting Started with Shop",
                "Shop Architecture",
                "shop-cli",
                "shop-core",
                "Shop API Reference"
            ]
        );
        assert_eq!(summary, "Carts.");
        let cli = &pages[3];
        assert_eq!(cli.links_out, ["Shop Architecture", "shop-core"], "links follow imports");
        assert!(cli.source_files.contains(&"cli/src/main.rs".to_string()));
        assert_eq!(pages[0].links_out.len(), 5, "the overview links every page");
        assert!(pages.iter().all(|p| !p.source_files.is_empty()));
        assert_eq!(from_analysis("shop", &sample(), 2).1.len(), 2);
    }

    #[test]
    fn a_planner_answer_keeps_only_known_files_unique_titles_and_planned_links() {
        let answer = json!({
            "summary": "A shop.",
            "pages": [
                {"title": "Carts / Totals", "doc_type": "Module", "description": "d", "path": "Modules/../Core", "source_files": ["./core/src/lib.rs", "missing.rs"], "links_out": ["Nowhere", "Cli"]},
                {"title": "carts - totals", "doc_type": "module", "description": "duplicate", "source_files": ["core/src/lib.rs"]},
                {"title": "Ghost", "doc_type": "module", "description": "d", "source_files": ["ghost.rs"]},
                {"title": "Cli", "doc_type": "module", "description": "d", "source_files": ["cli/src/main.rs"]},
            ],
        });
        let (summary, pages) = from_answer(&answer, &sample(), 10).unwrap();
        assert_eq!(summary, "A shop.");
        let titles: Vec<&str> = pages.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(titles, ["Carts - Totals", "Cli"]);
        assert_eq!(pages[0].source_files, ["core/src/lib.rs"]);
        assert_eq!(pages[0].path, "modules/core");
        assert_eq!(pages[0].doc_type, "module");
        assert_eq!(pages[0].links_out, ["Cli"]);

        let useless = json!({"summary": "", "pages": [{"title": "X", "doc_type": "module", "description": "", "source_files": ["nope.rs"]}]});
        let error = from_answer(&useless, &sample(), 10).unwrap_err();
        assert!(error.contains("exactly as listed"), "{error}");
        assert!(from_answer(&json!({"pages": "Overview"}), &sample(), 10).is_err());
    }
}
