//! The analysis of one commit: what each file declares and imports, the modules its
//! manifests define, how those modules use each other, where programs start, how many
//! tokens the source holds, and, for large repositories, areas of related modules.
//!
//! Vendored folders, lock files, generated, binary and oversized files are listed as
//! skipped with their reason and never parsed. Source files are parsed in parallel, one
//! thread per core, each with its own tree-sitter parsers. The [`Analysis`] is the
//! checkpoint of the `analyze` step: plain data, in a stable order.

pub mod manifest;
pub mod syntax;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

pub use syntax::{Language, Outline, Parsers, Symbol, SymbolKind};

/// More modules than this are grouped into areas.
pub const AREA_THRESHOLD: usize = 12;

/// Folders whose content is someone else's code or a build's output.
const VENDORED: [&str; 20] = [
    ".git",
    "node_modules",
    "vendor",
    "third_party",
    "third-party",
    "bower_components",
    "target",
    "dist",
    "build",
    "out",
    "__pycache__",
    ".venv",
    "venv",
    "site-packages",
    ".next",
    ".nuxt",
    "coverage",
    ".tox",
    "Pods",
    ".gradle",
];

/// Files that record resolved dependencies.
const LOCK_FILES: [&str; 12] = [
    "Cargo.lock",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
    "poetry.lock",
    "Pipfile.lock",
    "uv.lock",
    "go.sum",
    "Gemfile.lock",
    "composer.lock",
    "flake.lock",
];

/// Extensions of files that are not text.
const BINARY_EXTENSIONS: [&str; 36] = [
    "png", "jpg", "jpeg", "gif", "bmp", "ico", "webp", "svgz", "pdf", "zip", "gz", "tgz", "bz2",
    "xz", "7z", "tar", "jar", "war", "class", "so", "dylib", "dll", "exe", "o", "a", "wasm",
    "woff", "woff2", "ttf", "otf", "eot", "mp3", "mp4", "mov", "webm", "pyc",
];

/// One file of the commit, as the analysis receives it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Its path in the repository.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its content; `None` when it is too large to read.
    pub content: Option<Vec<u8>>,
}

/// Why a file was not analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Under a vendored or build folder.
    Vendored,
    /// A lock file.
    Lock,
    /// Generated code.
    Generated,
    /// Not text.
    Binary,
    /// Over `MAX_FILE_BYTES`.
    TooLarge,
}

/// A file the analysis left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Its path.
    pub path: String,
    /// Why.
    pub reason: SkipReason,
}

/// One analysed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFacts {
    /// Its path in the repository.
    pub path: String,
    /// Its language, when a grammar reads it; none for documentation and configuration.
    pub language: Option<Language>,
    /// Its size in bytes.
    pub size: u64,
    /// Its lines.
    pub lines: u32,
    /// Its declarations.
    pub symbols: Vec<Symbol>,
    /// What it imports, as written.
    pub imports: Vec<String>,
    /// The path of the module it belongs to.
    pub module: String,
    /// Whether the parser had to recover from syntax errors.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub has_errors: bool,
}

/// A module: a folder with a manifest, or the repository's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// Its name, as its manifest gives it.
    pub name: String,
    /// Its folder, `""` for the root.
    pub path: String,
    /// The manifest it was found by; none for a root without one.
    pub manifest: Option<String>,
    /// Its description, from the manifest.
    pub description: Option<String>,
    /// Its files.
    pub files: Vec<String>,
    /// The other modules it imports, by path.
    pub depends_on: Vec<String>,
}

/// Related modules, for repositories with many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Area {
    /// The folder that holds them.
    pub name: String,
    /// Their paths.
    pub modules: Vec<String>,
}

/// What the analysis found: the checkpoint of the `analyze` step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analysis {
    /// The analysed files, by path.
    pub files: Vec<FileFacts>,
    /// The files left out, and why.
    pub skipped: Vec<Skipped>,
    /// The modules, by path.
    pub modules: Vec<Module>,
    /// Paths where programs start.
    pub entry_points: Vec<String>,
    /// Tokens of analysed text, estimated at four bytes each.
    pub token_estimate: u64,
    /// Areas of related modules; empty unless there are more than [`AREA_THRESHOLD`].
    pub areas: Vec<Area>,
    /// The start of the root README, when there is one.
    pub readme: Option<String>,
}

impl Analysis {
    /// Files per language, most first.
    pub fn languages(&self) -> Vec<(Language, usize)> {
        let mut counts: BTreeMap<Language, usize> = BTreeMap::new();
        for language in self.files.iter().filter_map(|f| f.language) {
            *counts.entry(language).or_default() += 1;
        }
        let mut counts: Vec<(Language, usize)> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        counts
    }

    /// The file at `path`.
    pub fn file(&self, path: &str) -> Option<&FileFacts> {
        self.files.binary_search_by(|f| f.path.as_str().cmp(path)).ok().map(|i| &self.files[i])
    }

    /// Source files, the ones a grammar read.
    pub fn source_files(&self) -> impl Iterator<Item = &FileFacts> {
        self.files.iter().filter(|f| f.language.is_some())
    }
}

/// The longest README excerpt kept, in bytes.
const README_EXCERPT: usize = 4000;

/// Analyses the files of one commit of the repository `repo_name`.
pub fn analyze(repo_name: &str, files: Vec<SourceFile>) -> Analysis {
    let mut kept = Vec::new();
    let mut skipped = Vec::new();
    for file in files {
        match skip_reason(&file) {
            Some(reason) => skipped.push(Skipped { path: file.path, reason }),
            None => kept.push(file),
        }
    }
    kept.sort_by(|a, b| a.path.cmp(&b.path));
    skipped.sort_by(|a, b| a.path.cmp(&b.path));

    let outlines = parse_all(&kept);
    let readme = kept
        .iter()
        .find(|f| f.path.eq_ignore_ascii_case("readme.md") || f.path.eq_ignore_ascii_case("readme"))
        .and_then(|f| f.content.as_deref())
        .map(|text| excerpt(&String::from_utf8_lossy(text), README_EXCERPT));
    let mut modules = find_modules(repo_name, &kept);
    let mut facts: Vec<FileFacts> = kept
        .iter()
        .zip(outlines)
        .map(|(file, outline)| {
            let outline = outline.unwrap_or_default();
            let lines = file
                .content
                .as_deref()
                .map(|c| c.iter().filter(|b| **b == b'\n').count() as u32 + 1)
                .unwrap_or(0);
            FileFacts {
                path: file.path.clone(),
                language: Language::of(&file.path),
                size: file.size,
                lines,
                symbols: outline.symbols,
                imports: outline.imports,
                module: owner(&modules.roots, &file.path).to_string(),
                has_errors: outline.has_errors,
            }
        })
        .collect();
    facts.sort_by(|a, b| a.path.cmp(&b.path));

    let mut entry_points: BTreeSet<String> = BTreeSet::new();
    for (fact, file) in facts.iter().zip(&kept) {
        let outline_entry = Language::of(&file.path).is_some() && is_entry(fact, file);
        if outline_entry {
            entry_points.insert(fact.path.clone());
        }
    }
    for (root, declared) in &modules.declared_entries {
        for entry in declared {
            let path = join(root, entry);
            if facts.iter().any(|f| f.path == path) {
                entry_points.insert(path);
            }
        }
    }

    let graph = import_graph(&facts, &modules);
    let mut module_list: Vec<Module> = std::mem::take(&mut modules.list);
    for module in &mut module_list {
        module.files =
            facts.iter().filter(|f| f.module == module.path).map(|f| f.path.clone()).collect();
        module.depends_on =
            graph.get(&module.path).map(|d| d.iter().cloned().collect()).unwrap_or_default();
    }
    module_list.retain(|m| !m.files.is_empty() || m.manifest.is_some());
    let areas = areas(&module_list);
    let token_estimate = facts.iter().map(|f| f.size).sum::<u64>() / 4;
    Analysis {
        files: facts,
        skipped,
        modules: module_list,
        entry_points: entry_points.into_iter().collect(),
        token_estimate,
        areas,
        readme,
    }
}

/// Parses every source file, one thread per core; a slot per file, `None` for files no
/// grammar reads.
fn parse_all(files: &[SourceFile]) -> Vec<Option<Outline>> {
    let threads =
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outline>>> = Mutex::new(vec![None; files.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut parsers = Parsers::new();
                let mut done = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(index) else { break };
                    if let (Some(language), Some(content)) =
                        (Language::of(&file.path), &file.content)
                    {
                        done.push((index, parsers.outline(language, content)));
                    }
                }
                let mut results = results.lock().expect("no thread panics while holding it");
                for (index, outline) in done {
                    results[index] = Some(outline);
                }
            });
        }
    });
    results.into_inner().expect("every parser thread finished")
}

/// Why a file is left out, if it is.
fn skip_reason(file: &SourceFile) -> Option<SkipReason> {
    let path = file.path.as_str();
    let mut segments: Vec<&str> = path.split('/').collect();
    let name = segments.pop().unwrap_or_default();
    if segments.iter().any(|s| VENDORED.contains(s)) {
        return Some(SkipReason::Vendored);
    }
    if LOCK_FILES.contains(&name) {
        return Some(SkipReason::Lock);
    }
    let lower = name.to_ascii_lowercase();
    let extension = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    if BINARY_EXTENSIONS.contains(&extension) {
        return Some(SkipReason::Binary);
    }
    let Some(content) = &file.content else { return Some(SkipReason::TooLarge) };
    if content[..content.len().min(8000)].contains(&0) || std::str::from_utf8(content).is_err() {
        return Some(SkipReason::Binary);
    }
    let generated_name = lower.contains(".min.")
        || lower.ends_with(".pb.go")
        || lower.ends_with("_pb2.py")
        || lower.contains(".generated.")
        || lower.contains("_generated.")
        || lower.ends_with(".g.dart")
        || lower.ends_with(".map");
    if generated_name || has_generated_header(content) {
        return Some(SkipReason::Generated);
    }
    None
}

/// Whether the first lines say the file was generated.
fn has_generated_header(content: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&content[..content.len().min(1024)]).to_ascii_lowercase();
    head.lines().take(5).any(|line| {
        line.contains("@generated")
            || (line.contains("code generated") && line.contains("do not edit"))
            || line.contains("auto-generated")
            || line.contains("autogenerated")
    })
}

/// Whether `file` starts a program.
fn is_entry(fact: &FileFacts, file: &SourceFile) -> bool {
    let Some(language) = fact.language else { return false };
    let Some(content) = &file.content else { return false };
    let name = fact.path.rsplit('/').next().unwrap_or_default();
    match language {
        Language::Rust => {
            fact.symbols.iter().any(|s| s.name == "main" && s.kind == SymbolKind::Function)
        }
        Language::Python => name == "__main__.py" || has_main_guard(content),
        Language::Go => {
            fact.symbols.iter().any(|s| s.name == "main" && s.kind == SymbolKind::Function)
                && String::from_utf8_lossy(content).contains("package main")
        }
        Language::Java => {
            fact.symbols.iter().any(|s| s.name.ends_with(".main") && s.kind == SymbolKind::Method)
                && String::from_utf8_lossy(content).contains("static void main")
        }
        Language::JavaScript | Language::TypeScript | Language::Tsx => false,
    }
}

fn has_main_guard(content: &[u8]) -> bool {
    let text = String::from_utf8_lossy(content);
    text.contains("__name__ == \"__main__\"") || text.contains("__name__ == '__main__'")
}

/// The modules, with what is needed to place files in them and resolve imports.
struct Modules {
    list: Vec<Module>,
    /// Module folders, deepest first.
    roots: Vec<String>,
    /// Per module folder, the names it is imported by.
    import_names: BTreeMap<String, Vec<String>>,
    /// Per module folder, the entry points its manifest names.
    declared_entries: BTreeMap<String, Vec<String>>,
}

fn find_modules(repo_name: &str, files: &[SourceFile]) -> Modules {
    let mut by_root: BTreeMap<String, Module> = BTreeMap::new();
    let mut import_names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut declared_entries: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        let (folder, name) = match file.path.rsplit_once('/') {
            Some((folder, name)) => (folder.to_string(), name),
            None => (String::new(), file.path.as_str()),
        };
        if !manifest::FILES.contains(&name)
            || by_root.get(&folder).is_some_and(|m| m.manifest.is_some())
        {
            continue;
        }
        let Some(text) = file.content.as_deref().map(String::from_utf8_lossy) else { continue };
        let folder_name = folder.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or(repo_name);
        let Some(found) = manifest::read(name, folder_name, &text) else { continue };
        import_names
            .entry(folder.clone())
            .or_default()
            .extend(found.import_names.into_iter().filter(|n| !n.is_empty()));
        declared_entries.entry(folder.clone()).or_default().extend(found.entry_points);
        by_root.insert(
            folder.clone(),
            Module {
                name: found.name,
                path: folder,
                manifest: Some(found.file.to_string()),
                description: found.description,
                files: Vec::new(),
                depends_on: Vec::new(),
            },
        );
    }
    by_root.entry(String::new()).or_insert_with(|| Module {
        name: repo_name.to_string(),
        path: String::new(),
        manifest: None,
        description: None,
        files: Vec::new(),
        depends_on: Vec::new(),
    });
    // Python packages (folders with an `__init__.py`) are imported by their folder's name.
    for file in files.iter().filter(|f| f.path.ends_with("/__init__.py")) {
        let folder = file.path.trim_end_matches("/__init__.py");
        let package = folder.rsplit('/').next().unwrap_or(folder).to_string();
        let root = owner_of(by_root.keys(), folder).to_string();
        import_names.entry(root).or_default().push(package);
    }
    let mut roots: Vec<String> = by_root.keys().cloned().collect();
    roots.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    Modules { list: by_root.into_values().collect(), roots, import_names, declared_entries }
}

/// The deepest module folder holding `path`.
fn owner<'a>(roots: &'a [String], path: &str) -> &'a str {
    roots
        .iter()
        .find(|root| root.is_empty() || path.starts_with(&format!("{root}/")))
        .map(String::as_str)
        .unwrap_or("")
}

fn owner_of<'a>(roots: impl Iterator<Item = &'a String>, path: &str) -> &'a str {
    let mut best: &str = "";
    for root in roots {
        if (root.is_empty() || path == root || path.starts_with(&format!("{root}/")))
            && root.len() >= best.len()
        {
            best = root;
        }
    }
    best
}

/// Whether a file holds tests, whose imports (test helpers, fixtures) say nothing of how
/// the modules depend on each other.
fn is_test(path: &str) -> bool {
    let (folders, name) = path.rsplit_once('/').unwrap_or(("", path));
    folders.split('/').any(|f| matches!(f, "tests" | "test" | "__tests__" | "testdata" | "benches"))
        || name.ends_with("_test.go")
        || name.ends_with("_test.py")
        || (name.starts_with("test_") && name.ends_with(".py"))
        || name.contains(".test.")
        || name.contains(".spec.")
        || name.ends_with("Test.java")
}

/// Which module folders each module imports from, tests left out.
fn import_graph(files: &[FileFacts], modules: &Modules) -> BTreeMap<String, BTreeSet<String>> {
    let paths: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    // Every name a module is imported by, to its folder; the first module keeps a shared one.
    let mut by_name: HashMap<&str, &str> = HashMap::new();
    for (root, names) in &modules.import_names {
        for name in names {
            by_name.entry(name.as_str()).or_insert(root.as_str());
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files.iter().filter(|f| !is_test(&f.path)) {
        for import in &file.imports {
            let target = if import.starts_with('.')
                && matches!(
                    file.language,
                    Some(Language::JavaScript | Language::TypeScript | Language::Tsx)
                ) {
                resolve_relative(&file.path, import, &paths)
                    .map(|p| owner(&modules.roots, &p).to_string())
            } else {
                by_import_name(import, &by_name)
            };
            if let Some(target) = target
                && target != file.module
            {
                graph.entry(file.module.clone()).or_default().insert(target);
            }
        }
    }
    graph
}

/// The module an import names: the longest of its prefixes, cut at a `:`, `/` or `.`, that
/// is a module's import name. One lookup per separator, whatever the number of modules.
fn by_import_name(import: &str, by_name: &HashMap<&str, &str>) -> Option<String> {
    let import = import.trim_start_matches("::");
    if let Some(root) = by_name.get(import) {
        return Some(root.to_string());
    }
    import
        .char_indices()
        .rev()
        .filter(|(_, c)| matches!(c, ':' | '/' | '.'))
        .find_map(|(at, _)| by_name.get(&import[..at]))
        .map(|root| root.to_string())
}

/// The file a relative import points at, trying the usual extensions and `index` files.
fn resolve_relative(from: &str, import: &str, paths: &BTreeSet<&str>) -> Option<String> {
    let folder = from.rsplit_once('/').map(|(f, _)| f).unwrap_or("");
    let mut parts: Vec<&str> = folder.split('/').filter(|s| !s.is_empty()).collect();
    for segment in import.split('/') {
        match segment {
            "." | "" => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    let base = parts.join("/");
    let candidates =
        ["", ".ts", ".tsx", ".js", ".jsx", ".mjs", "/index.ts", "/index.tsx", "/index.js"];
    candidates.iter().map(|ext| format!("{base}{ext}")).find(|p| paths.contains(p.as_str()))
}

/// Groups modules by their top folder when there are many.
fn areas(modules: &[Module]) -> Vec<Area> {
    if modules.len() <= AREA_THRESHOLD {
        return Vec::new();
    }
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for module in modules {
        let top = module.path.split('/').next().filter(|s| !s.is_empty()).unwrap_or("(root)");
        groups.entry(top.to_string()).or_default().push(module.path.clone());
    }
    groups.into_iter().map(|(name, modules)| Area { name, modules }).collect()
}

fn join(folder: &str, path: &str) -> String {
    if folder.is_empty() { path.to_string() } else { format!("{folder}/{path}") }
}

/// The first `limit` bytes of `text`, cut at a line end.
fn excerpt(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.trim().to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text[..end].rfind('\n').unwrap_or(end);
    text[..cut].trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            size: content.len() as u64,
            content: Some(content.as_bytes().to_vec()),
        }
    }

    #[test]
    fn vendored_lock_generated_binary_and_large_files_are_skipped_with_their_reason() {
        let analysis = analyze(
            "shop",
            vec![
                file("src/main.rs", "fn main() {}\n"),
                file("node_modules/left-pad/index.js", "module.exports = 1;\n"),
                file("Cargo.lock", "# lock\n"),
                file("api/types.pb.go", "package api\n"),
                file("gen/schema.rs", "// @generated by a tool\npub struct S;\n"),
                file("logo.png", "not really"),
                SourceFile { path: "data.bin".into(), size: 3, content: Some(vec![0, 1, 2]) },
                SourceFile { path: "huge.rs".into(), size: 9_000_000, content: None },
            ],
        );
        let reasons: Vec<(&str, SkipReason)> =
            analysis.skipped.iter().map(|s| (s.path.as_str(), s.reason)).collect();
        assert_eq!(
            reasons,
            [
                ("Cargo.lock", SkipReason::Lock),
                ("api/types.pb.go", SkipReason::Generated),
                ("data.bin", SkipReason::Binary),
                ("gen/schema.rs", SkipReason::Generated),
                ("huge.rs", SkipReason::TooLarge),
                ("logo.png", SkipReason::Binary),
                ("node_modules/left-pad/index.js", SkipReason::Vendored),
            ]
        );
        assert_eq!(analysis.files.len(), 1);
        assert_eq!(analysis.entry_points, ["src/main.rs"]);
    }

    #[test]
    fn modules_come_from_manifests_and_imports_link_them() {
        let analysis = analyze(
            "shop",
            vec![
                file("Cargo.toml", "[workspace]\nmembers = [\"core\", \"cli\"]\n"),
                file("README.md", "# Shop\n\nSells things.\n"),
                file(
                    "core/Cargo.toml",
                    "[package]\nname = \"shop-core\"\ndescription = \"The core.\"\n",
                ),
                file("core/src/lib.rs", "pub struct Cart;\n"),
                file("cli/Cargo.toml", "[package]\nname = \"shop-cli\"\n"),
                file("cli/src/main.rs", "use shop_core::Cart;\nfn main() {}\n"),
                file("web/package.json", r#"{"name": "shop-web", "main": "src/index.ts"}"#),
                file(
                    "web/src/index.ts",
                    "import { api } from './api';\nexport const start = () => api();\n",
                ),
                file("web/src/api.ts", "export function api() {}\n"),
            ],
        );
        let modules: Vec<(&str, &str, Vec<&str>)> = analysis
            .modules
            .iter()
            .map(|m| {
                (
                    m.path.as_str(),
                    m.name.as_str(),
                    m.depends_on.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            modules,
            [
                ("", "shop", vec![]),
                ("cli", "shop-cli", vec!["core"]),
                ("core", "shop-core", vec![]),
                ("web", "shop-web", vec![]),
            ]
        );
        assert_eq!(analysis.modules[2].description.as_deref(), Some("The core."));
        assert_eq!(
            analysis.modules[3].files,
            ["web/package.json", "web/src/api.ts", "web/src/index.ts"]
        );
        assert_eq!(analysis.entry_points, ["cli/src/main.rs", "web/src/index.ts"]);
        assert_eq!(analysis.readme.as_deref(), Some("# Shop\n\nSells things."));
        assert_eq!(analysis.file("core/src/lib.rs").unwrap().symbols[0].name, "Cart");
        assert_eq!(analysis.languages(), [(Language::Rust, 2), (Language::TypeScript, 2)]);
    }

    #[test]
    fn python_and_go_imports_resolve_to_their_modules() {
        let analysis = analyze(
            "mono",
            vec![
                file("tools/pyproject.toml", "[project]\nname = \"tools\"\n"),
                file("tools/ledger/__init__.py", ""),
                file("tools/ledger/books.py", "def add():\n    pass\n"),
                file("app/pyproject.toml", "[project]\nname = \"app\"\n"),
                file(
                    "app/main.py",
                    "from ledger.books import add\nif __name__ == '__main__':\n    add()\n",
                ),
                file("svc/go.mod", "module example.com/mono/svc\n"),
                file("svc/store/store.go", "package store\n\nfunc Open() {}\n"),
                file(
                    "svc/cmd/main.go",
                    "package main\n\nimport \"example.com/mono/svc/store\"\n\nfunc main() { store.Open() }\n",
                ),
                file("gw/go.mod", "module example.com/mono/gw\n"),
                file(
                    "gw/main.go",
                    "package main\n\nimport \"example.com/mono/svc/store\"\n\nfunc main() {}\n",
                ),
            ],
        );
        let depends = |path: &str| {
            analysis.modules.iter().find(|m| m.path == path).unwrap().depends_on.clone()
        };
        assert_eq!(depends("app"), ["tools"]);
        assert_eq!(depends("gw"), ["svc"]);
        assert!(depends("svc").is_empty(), "imports inside a module are not edges");
        assert_eq!(analysis.entry_points, ["app/main.py", "gw/main.go", "svc/cmd/main.go"]);
    }

    #[test]
    fn tests_do_not_make_modules_depend_on_each_other() {
        let analysis = analyze(
            "ws",
            vec![
                file("core/Cargo.toml", "[package]\nname = \"core\"\n"),
                file("core/src/lib.rs", "pub fn f() {}\n"),
                file("core/tests/it.rs", "use testkit::Helper;\n"),
                file("testkit/Cargo.toml", "[package]\nname = \"testkit\"\n"),
                file("testkit/src/lib.rs", "use core::f;\npub struct Helper;\n"),
            ],
        );
        let depends = |path: &str| {
            analysis.modules.iter().find(|m| m.path == path).unwrap().depends_on.clone()
        };
        assert!(depends("core").is_empty(), "{:?}", depends("core"));
        assert_eq!(depends("testkit"), ["core"]);
    }

    #[test]
    fn many_modules_are_grouped_into_areas() {
        let mut files = Vec::new();
        for i in 0..15 {
            let top = if i < 10 { "crates" } else { "services" };
            files.push(file(
                &format!("{top}/m{i}/Cargo.toml"),
                &format!("[package]\nname = \"m{i}\"\n"),
            ));
            files.push(file(&format!("{top}/m{i}/src/lib.rs"), "pub fn f() {}\n"));
        }
        let analysis = analyze("big", files);
        let areas: Vec<(&str, usize)> =
            analysis.areas.iter().map(|a| (a.name.as_str(), a.modules.len())).collect();
        assert_eq!(areas, [("crates", 10), ("services", 5)]);
        // 15 files of 14 bytes and 15 manifests of 22 or 23 bytes, at four bytes a token.
        assert_eq!(analysis.token_estimate, (15 * 14 + 10 * 22 + 5 * 23) / 4);
    }
}
