//! The prompt templates: what each model call of a documentation run (and of `ask`) says.
//!
//! The templates are minijinja files in the repository's `prompts/` folder, compiled into
//! the binary, so it works from any folder; `PROMPTS_DIR` names a folder whose `.j2` files
//! replace the built-in ones of the same name (a file that is not there keeps its
//! default) or add blocks to include. Each [`Template`] has a `system` block and a `prompt`
//! block, and receives one typed context ([`PlannerContext`], [`WriterContext`],
//! [`AskContext`], [`SummariseContext`]): the code decides what data a template gets, the
//! template decides what is said with it.
//!
//! Undefined variables are errors, never empty text. [`Prompts::load`] compiles every file
//! and renders every template once with sample data, so a syntax error or an unknown
//! variable stops start-up with a [`PromptError`] naming the file, the line and the
//! variable, instead of surfacing in the middle of a run. A top-level name a template uses
//! that its context lacks is found even in a branch the sample does not take; a misspelt
//! attribute (`page.titel`) or a name in an included block is found when the sample
//! renders it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use isocrates_providers::Request;
use minijinja::value::Serde;
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};
use serde::Serialize;

/// The built-in templates, by name.
const BUILT_IN: &[(&str, &str)] = &[
    ("planner.j2", include_str!("../../prompts/planner.j2")),
    ("writer.j2", include_str!("../../prompts/writer.j2")),
    ("ask.j2", include_str!("../../prompts/ask.j2")),
    ("summarise.j2", include_str!("../../prompts/summarise.j2")),
    ("blocks/style.j2", include_str!("../../prompts/blocks/style.j2")),
    ("blocks/linking.j2", include_str!("../../prompts/blocks/linking.j2")),
    ("blocks/diagrams.j2", include_str!("../../prompts/blocks/diagrams.j2")),
    ("blocks/sources.j2", include_str!("../../prompts/blocks/sources.j2")),
];

/// How deep `PROMPTS_DIR` is searched for templates.
const MAX_DEPTH: usize = 3;

/// The jobs a model does, one template each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    /// Plans the pages of a repository; answers JSON.
    Planner,
    /// Writes one page in markdown.
    Writer,
    /// Answers a question from documents.
    Ask,
    /// Describes a page in a sentence or two.
    Summarise,
}

impl Template {
    /// Every template.
    pub const ALL: [Template; 4] =
        [Template::Planner, Template::Writer, Template::Ask, Template::Summarise];

    /// Its name, as `isocrates prompts render NAME` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Template::Planner => "planner",
            Template::Writer => "writer",
            Template::Ask => "ask",
            Template::Summarise => "summarise",
        }
    }

    /// Its file in the prompts folder.
    pub fn file(self) -> &'static str {
        match self {
            Template::Planner => "planner.j2",
            Template::Writer => "writer.j2",
            Template::Ask => "ask.j2",
            Template::Summarise => "summarise.j2",
        }
    }

    /// The template called `name`, with or without its `.j2`.
    pub fn parse(name: &str) -> Option<Template> {
        let name = name.trim().trim_end_matches(".j2");
        Template::ALL
            .into_iter()
            .find(|t| t.name() == name || (name == "summarize" && *t == Template::Summarise))
    }

    /// The sample data it is checked with.
    fn sample(self) -> Value {
        match self {
            Template::Planner => Value::from(Serde(PlannerContext::sample())),
            Template::Writer => Value::from(Serde(WriterContext::sample())),
            Template::Ask => Value::from(Serde(AskContext::sample())),
            Template::Summarise => Value::from(Serde(SummariseContext::sample())),
        }
    }
}

/// A template that cannot be loaded or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PromptError {
    /// The file, as the operator finds it: a path under `PROMPTS_DIR`, or the built-in name.
    pub file: String,
    /// The line in that file, from 1, when known.
    pub line: Option<usize>,
    /// The unknown variable, when that is the problem.
    pub variable: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PromptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        match &self.variable {
            Some(variable) => write!(f, ": unknown variable `{variable}` ({})", self.message),
            None => write!(f, ": {}", self.message),
        }
    }
}

/// A rendered template: the two messages of a model call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The instructions.
    pub system: String,
    /// The task and its material.
    pub prompt: String,
}

impl Rendered {
    /// The request of these two messages.
    pub fn into_request(self) -> Request {
        Request::new(self.system, self.prompt)
    }
}

/// Where a template file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    BuiltIn,
    File(PathBuf),
}

/// The loaded and checked templates.
#[derive(Debug)]
pub struct Prompts {
    env: Environment<'static>,
    origins: BTreeMap<String, Origin>,
}

impl Prompts {
    /// The built-in templates, which a test renders on every build.
    pub fn built_in() -> Prompts {
        Prompts::load(None).expect("the built-in prompts compile and render")
    }

    /// Loads the built-in templates, replaced or extended by the `.j2` files under `dir`,
    /// and renders each template once with its sample data. Every problem found is
    /// returned, each naming its file and line.
    pub fn load(dir: Option<&Path>) -> Result<Prompts, Vec<PromptError>> {
        let mut sources: BTreeMap<String, (String, Origin)> = BUILT_IN
            .iter()
            .map(|(name, source)| (name.to_string(), (source.to_string(), Origin::BuiltIn)))
            .collect();
        let mut errors = Vec::new();
        if let Some(dir) = dir {
            read_dir(dir, dir, 0, &mut sources, &mut errors);
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                // An included block ends with its own newline.
                .keep_trailing_newline(true)
                .build()
                .expect("the default delimiters"),
        );
        let mut origins = BTreeMap::new();
        for (name, (source, origin)) in sources {
            origins.insert(name.clone(), origin);
            if let Err(error) = env.add_template_owned(name.clone(), source) {
                errors.push(describe(&origins, &name, &error));
            }
        }
        let prompts = Prompts { env, origins };
        if errors.is_empty() {
            errors.extend(prompts.check());
        }
        // A shared block is rendered by every template that includes it: one report each.
        let mut seen = BTreeSet::new();
        errors.retain(|e| {
            seen.insert((e.file.clone(), e.line, e.message.clone(), e.variable.clone()))
        });
        if errors.is_empty() { Ok(prompts) } else { Err(errors) }
    }

    /// The files taken from `PROMPTS_DIR` rather than the built-in defaults.
    pub fn overrides(&self) -> Vec<&Path> {
        self.origins
            .values()
            .filter_map(|origin| match origin {
                Origin::File(path) => Some(path.as_path()),
                Origin::BuiltIn => None,
            })
            .collect()
    }

    /// Renders every template with its sample data, and looks in each for names that
    /// its context does not have, also in branches the sample does not take.
    fn check(&self) -> Vec<PromptError> {
        let mut errors = Vec::new();
        for template in Template::ALL {
            let sample = template.sample();
            if let Err(error) = self.render(template, sample.clone()) {
                errors.push(error);
                continue;
            }
            errors.extend(self.undeclared(template, &sample));
        }
        errors
    }

    /// The names `template` uses that neither its context nor minijinja defines.
    fn undeclared(&self, template: Template, sample: &Value) -> Vec<PromptError> {
        let Ok(compiled) = self.env.get_template(template.file()) else { return Vec::new() };
        let known: BTreeSet<String> = sample
            .try_iter()
            .into_iter()
            .flatten()
            .filter_map(|key| key.as_str().map(str::to_string))
            .chain(self.env.globals().map(|(name, _)| name.to_string()))
            .collect();
        let source = compiled.source();
        // minijinja scopes `{% set %}` inside `{% if %}` to the branch, rendering does not:
        // a name the template sets anywhere is its own.
        let assigned = assigned_names(source);
        let mut unknown: Vec<String> = compiled
            .undeclared_variables(false)
            .into_iter()
            .filter(|name| !known.contains(name) && !assigned.contains(name))
            .collect();
        unknown.sort();
        unknown
            .into_iter()
            .map(|name| PromptError {
                file: self.display(template.file()),
                line: line_of_word(source, &name),
                message: format!("the {} template receives no such value", template.name()),
                variable: Some(name),
            })
            .collect()
    }

    /// Renders `template` with its sample data, as `isocrates prompts render` shows it.
    pub fn sample(&self, template: Template) -> Result<Rendered, PromptError> {
        self.render(template, template.sample())
    }

    /// The planner's messages for one repository.
    pub fn planner(&self, context: &PlannerContext) -> Result<Rendered, PromptError> {
        self.render(Template::Planner, Value::from(Serde(context)))
    }

    /// The writer's messages for one page.
    pub fn writer(&self, context: &WriterContext) -> Result<Rendered, PromptError> {
        self.render(Template::Writer, Value::from(Serde(context)))
    }

    /// The messages that answer one question.
    pub fn ask(&self, context: &AskContext) -> Result<Rendered, PromptError> {
        self.render(Template::Ask, Value::from(Serde(context)))
    }

    /// The messages that describe one page.
    pub fn summarise(&self, context: &SummariseContext) -> Result<Rendered, PromptError> {
        self.render(Template::Summarise, Value::from(Serde(context)))
    }

    fn render(&self, template: Template, context: Value) -> Result<Rendered, PromptError> {
        let file = template.file();
        let compiled =
            self.env.get_template(file).map_err(|e| describe(&self.origins, file, &e))?;
        let mut captured =
            compiled.render_captured(context).map_err(|e| describe(&self.origins, file, &e))?;
        let mut block = |name: &str| {
            captured.with_state_mut(|state| state.render_block(name)).map_err(|e| {
                if e.kind() == ErrorKind::UnknownBlock {
                    PromptError {
                        file: self.display(file),
                        line: None,
                        variable: None,
                        message: format!(
                            "has no {{% block {name} %}}: each template needs a `system` and \
                             a `prompt` block"
                        ),
                    }
                } else {
                    describe(&self.origins, file, &e)
                }
            })
        };
        let system = block("system")?.trim().to_string();
        let prompt = block("prompt")?.trim().to_string();
        Ok(Rendered { system, prompt })
    }

    fn display(&self, name: &str) -> String {
        display(&self.origins, name)
    }
}

/// How the operator finds the file `name`.
fn display(origins: &BTreeMap<String, Origin>, name: &str) -> String {
    match origins.get(name) {
        Some(Origin::File(path)) => path.display().to_string(),
        _ => format!("prompts/{name} (built in)"),
    }
}

/// A minijinja error as a [`PromptError`] on the file where it happened (an included
/// block, say) rather than the template being rendered.
fn describe(
    origins: &BTreeMap<String, Origin>,
    rendering: &str,
    error: &minijinja::Error,
) -> PromptError {
    // An error in an included file arrives wrapped, once per level of inclusion.
    let mut error = error;
    while error.kind() == ErrorKind::BadInclude {
        match std::error::Error::source(error).and_then(|e| e.downcast_ref::<minijinja::Error>()) {
            Some(inner) => error = inner,
            None => break,
        }
    }
    let file = error.name().unwrap_or(rendering);
    // minijinja names the missing value in backticks ("`page.titel` is undefined"); the
    // span of the expression is the fallback, and is more than the name behind a filter.
    let variable = match error.kind() {
        ErrorKind::UndefinedError => error
            .detail()
            .and_then(|detail| detail.split('`').nth(1))
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .or_else(|| {
                error
                    .template_source()
                    .zip(error.range())
                    .and_then(|(source, range)| source.get(range))
                    .map(|expression| expression.trim().to_string())
            }),
        _ => None,
    };
    let message = match (error.kind(), error.detail()) {
        (ErrorKind::SyntaxError, Some(detail)) => format!("syntax error: {detail}"),
        (ErrorKind::UndefinedError, _) => "the template receives no such value".to_string(),
        (_, Some(detail)) => format!("{}: {detail}", error.kind()),
        (kind, None) => kind.to_string(),
    };
    PromptError { file: display(origins, file), line: error.line(), variable, message }
}

/// The names `{% set NAME = ... %}` and `{% set NAME %}` assign anywhere in `source`.
fn assigned_names(source: &str) -> BTreeSet<String> {
    source
        .split("{%")
        .skip(1)
        .filter_map(|tag| {
            let tag = tag.trim_start_matches(['-', '+']).trim_start();
            let rest = tag.strip_prefix("set")?;
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// The first line of `source` (from 1) where `word` stands as a whole word inside a
/// `{{ ... }}` or `{% ... %}` tag, not in the text around them.
fn line_of_word(source: &str, word: &str) -> Option<usize> {
    let is_name = |c: char| c.is_alphanumeric() || c == '_';
    let mut at = 0;
    while let Some(open) = source[at..].find(['{']).map(|i| i + at) {
        let close = match source[open..].get(..2) {
            Some("{{") => "}}",
            Some("{%") => "%}",
            _ => {
                at = open + 1;
                continue;
            }
        };
        let Some(end) = source[open + 2..].find(close).map(|i| i + open + 2) else { break };
        let tag = &source[open..end];
        for (offset, _) in tag.match_indices(word) {
            let before = tag[..offset].chars().next_back();
            let after = tag[offset + word.len()..].chars().next();
            if !before.is_some_and(is_name) && !after.is_some_and(is_name) {
                return Some(source[..open + offset].matches('\n').count() + 1);
            }
        }
        at = end + 2;
    }
    None
}

/// Adds the `.j2` files under `dir` to `sources`, by their path relative to `root`.
fn read_dir(
    root: &Path,
    dir: &Path,
    depth: usize,
    sources: &mut BTreeMap<String, (String, Origin)>,
    errors: &mut Vec<PromptError>,
) {
    let unreadable = |path: &Path, error: std::io::Error| PromptError {
        file: path.display().to_string(),
        line: None,
        variable: None,
        message: format!("cannot be read: {error}"),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => return errors.push(unreadable(dir, error)),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            if depth < MAX_DEPTH {
                read_dir(root, &path, depth + 1, sources, errors);
            }
            continue;
        }
        if path.extension().is_none_or(|ext| ext != "j2") {
            continue;
        }
        let Ok(relative) = path.strip_prefix(root) else { continue };
        let name = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        match std::fs::read_to_string(&path) {
            Ok(source) => {
                sources.insert(name, (source, Origin::File(path)));
            }
            Err(error) => errors.push(unreadable(&path, error)),
        }
    }
}

/// The repository a run documents.
#[derive(Debug, Clone, Serialize)]
pub struct RepositoryFacts {
    /// Its name (the last part of its URL).
    pub name: String,
    /// Its URL.
    pub url: String,
    /// The commit documented.
    pub commit: String,
    /// What its README says about it, shortened, when it has one.
    pub summary: Option<String>,
}

/// What the analysis found, as the planner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisFacts {
    /// Files analysed.
    pub file_count: usize,
    /// Tokens of source, estimated.
    pub token_estimate: u64,
    /// Languages and their file counts, most files first.
    pub languages: Vec<LanguageCount>,
    /// Paths where the program starts (`src/main.rs`, `cmd/server/main.go`).
    pub entry_points: Vec<String>,
    /// The modules, by their manifests.
    pub modules: Vec<ModuleFacts>,
}

/// One language of a repository.
#[derive(Debug, Clone, Serialize)]
pub struct LanguageCount {
    /// Its name.
    pub name: String,
    /// Files written in it.
    pub files: usize,
}

/// One module of a repository.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleFacts {
    /// Its name, as its manifest gives it.
    pub name: String,
    /// Its folder.
    pub path: String,
    /// The manifest it was found by (`Cargo.toml`), if any.
    pub manifest: Option<String>,
    /// The other modules it imports.
    pub imports: Vec<String>,
    /// Its files.
    pub files: Vec<FileFacts>,
}

/// One file, as the planner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct FileFacts {
    /// Its path in the repository.
    pub path: String,
    /// The names of its main symbols.
    pub symbols: Vec<String>,
}

/// A page the wiki already has.
#[derive(Debug, Clone, Serialize)]
pub struct ExistingPage {
    /// Its title, which the plan keeps.
    pub title: String,
    /// Its folder path.
    pub path: String,
    /// Its kind (`overview`, `module`, ...).
    pub doc_type: String,
}

/// What the `planner` template receives.
#[derive(Debug, Clone, Serialize)]
pub struct PlannerContext {
    /// The repository.
    pub repository: RepositoryFacts,
    /// What the analysis found.
    pub analysis: AnalysisFacts,
    /// The pages published before.
    pub existing_pages: Vec<ExistingPage>,
    /// The most pages the plan may have.
    pub max_pages: usize,
    /// The JSON schema of the answer, as text.
    pub schema: String,
}

/// The plan of the page being written.
#[derive(Debug, Clone, Serialize)]
pub struct PagePlan {
    /// Its title.
    pub title: String,
    /// Its folder path.
    pub path: String,
    /// Its kind.
    pub doc_type: String,
    /// What it covers.
    pub description: String,
    /// The sections the plan asks for.
    pub sections: Vec<String>,
}

/// A page that may be linked to.
#[derive(Debug, Clone, Serialize)]
pub struct PageLink {
    /// Its exact title.
    pub title: String,
    /// What it covers.
    pub description: String,
}

/// The excerpt of one source file given to the writer.
#[derive(Debug, Clone, Serialize)]
pub struct SourceExcerpt {
    /// Its path in the repository.
    pub path: String,
    /// The language, as a fenced block names it (`rust`).
    pub language: String,
    /// The text given.
    pub excerpt: String,
    /// Whether the excerpt is shorter than the file.
    pub truncated: bool,
    /// The backticks that fence it: longer than any run of backticks inside it.
    pub fence: String,
}

impl SourceExcerpt {
    /// The excerpt of `path`, with the fence its text needs.
    pub fn new(path: &str, language: &str, excerpt: String, truncated: bool) -> SourceExcerpt {
        let longest_run = excerpt.split(|c| c != '`').map(str::len).max().unwrap_or(0);
        SourceExcerpt {
            path: path.to_string(),
            language: language.to_string(),
            fence: "`".repeat(longest_run.max(2) + 1),
            excerpt,
            truncated,
        }
    }
}

/// What the `writer` template receives.
#[derive(Debug, Clone, Serialize)]
pub struct WriterContext {
    /// The repository.
    pub repository: RepositoryFacts,
    /// The page to write.
    pub page: PagePlan,
    /// The other pages of the plan, the only link targets.
    pub pages: Vec<PageLink>,
    /// The page's source files.
    pub sources: Vec<SourceExcerpt>,
    /// The most mermaid diagrams the page may have.
    pub max_diagrams: usize,
}

/// A document given to `ask`.
#[derive(Debug, Clone, Serialize)]
pub struct AskDocument {
    /// Its title.
    pub title: String,
    /// Its folder path.
    pub path: String,
    /// The part of its text given.
    pub excerpt: String,
}

/// What the `ask` template receives.
#[derive(Debug, Clone, Serialize)]
pub struct AskContext {
    /// The question.
    pub question: String,
    /// The documents found for it, which the asker may read.
    pub documents: Vec<AskDocument>,
}

/// What the `summarise` template receives.
#[derive(Debug, Clone, Serialize)]
pub struct SummariseContext {
    /// The page's title.
    pub title: String,
    /// Its markdown.
    pub content: String,
    /// The longest description wanted, in words.
    pub max_words: usize,
}

fn sample_repository() -> RepositoryFacts {
    RepositoryFacts {
        name: "billing".into(),
        url: "https://github.com/example/billing".into(),
        commit: "4f3f22d0c1e2a7b9".into(),
        summary: Some("Invoices customers and collects payments.".into()),
    }
}

impl PlannerContext {
    /// The sample the template is checked with.
    pub fn sample() -> PlannerContext {
        PlannerContext {
            repository: sample_repository(),
            analysis: AnalysisFacts {
                file_count: 3,
                token_estimate: 2_400,
                languages: vec![LanguageCount { name: "Rust".into(), files: 3 }],
                entry_points: vec!["src/main.rs".into()],
                modules: vec![ModuleFacts {
                    name: "billing".into(),
                    path: ".".into(),
                    manifest: Some("Cargo.toml".into()),
                    imports: vec!["payments".into()],
                    files: vec![
                        FileFacts { path: "src/main.rs".into(), symbols: vec!["main".into()] },
                        FileFacts {
                            path: "src/invoice.rs".into(),
                            symbols: vec!["Invoice".into(), "Invoice::total".into()],
                        },
                    ],
                }],
            },
            existing_pages: vec![ExistingPage {
                title: "Billing Overview".into(),
                path: "billing".into(),
                doc_type: "overview".into(),
            }],
            max_pages: 8,
            schema: r#"{"type": "object", "required": ["pages"]}"#.into(),
        }
    }
}

impl WriterContext {
    /// The sample the template is checked with.
    pub fn sample() -> WriterContext {
        WriterContext {
            repository: sample_repository(),
            page: PagePlan {
                title: "Invoices".into(),
                path: "billing/modules".into(),
                doc_type: "module".into(),
                description: "How an invoice is built and totalled.".into(),
                sections: vec!["The Invoice type".into(), "Totals and taxes".into()],
            },
            pages: vec![PageLink {
                title: "Billing Overview".into(),
                description: "What the service does.".into(),
            }],
            sources: vec![SourceExcerpt::new(
                "src/invoice.rs",
                "rust",
                "/// ```\n/// let i = Invoice::new();\n/// ```\npub struct Invoice {\n    lines: Vec<Line>,\n}".into(),
                false,
            )],
            max_diagrams: 1,
        }
    }
}

impl AskContext {
    /// The sample the template is checked with.
    pub fn sample() -> AskContext {
        AskContext {
            question: "How are invoices totalled?".into(),
            documents: vec![AskDocument {
                title: "Invoices".into(),
                path: "billing/modules".into(),
                excerpt: "`Invoice::total` adds the lines, then the taxes.".into(),
            }],
        }
    }
}

impl SummariseContext {
    /// The sample the template is checked with.
    pub fn sample() -> SummariseContext {
        SummariseContext {
            title: "Invoices".into(),
            content: "## The Invoice type\n\nAn `Invoice` holds lines...".into(),
            max_words: 40,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_template_renders_both_messages() {
        let prompts = Prompts::built_in();
        for template in Template::ALL {
            let rendered = prompts.sample(template).unwrap();
            assert!(!rendered.system.is_empty(), "{template:?}");
            assert!(!rendered.prompt.is_empty(), "{template:?}");
            for text in [&rendered.system, &rendered.prompt] {
                assert!(!text.contains("{{") && !text.contains("{%"), "{template:?}: {text}");
            }
        }
        assert!(prompts.overrides().is_empty());
    }

    #[test]
    fn the_writer_sees_its_page_sources_and_link_targets() {
        let rendered = Prompts::built_in().writer(&WriterContext::sample()).unwrap();
        assert!(rendered.prompt.contains("Invoices (module)"), "{}", rendered.prompt);
        assert!(
            rendered.prompt.contains("````rust\n/// ```\n"),
            "a fence longer than the excerpt's: {}",
            rendered.prompt
        );
        assert!(rendered.system.contains("- Billing Overview: What the service does."));
        assert!(rendered.system.contains("At most 1 diagram"), "{}", rendered.system);
    }

    #[test]
    fn templates_are_named_with_or_without_their_extension() {
        assert_eq!(Template::parse("writer"), Some(Template::Writer));
        assert_eq!(Template::parse("planner.j2"), Some(Template::Planner));
        assert_eq!(Template::parse("summarize"), Some(Template::Summarise));
        assert_eq!(Template::parse("poem"), None);
    }

    #[test]
    fn a_word_is_found_on_its_line_only_as_a_whole_word_inside_a_tag() {
        let source = "a page\n{{ pages_count }}\n{% if x %}{{ page }}{% endif %}\n";
        assert_eq!(line_of_word(source, "page"), Some(3));
        assert_eq!(line_of_word(source, "missing"), None);
    }

    #[test]
    fn names_set_anywhere_are_the_templates_own() {
        let names = assigned_names(
            "{% if a %}{% set intro = 1 %}{% else %}{%- set intro %}x{% endset %}{% endif %}{% set n2 = 2 %}",
        );
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["intro", "n2"]);
    }
}
