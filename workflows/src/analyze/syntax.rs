//! What tree-sitter finds in one source file: its symbols (functions, types, methods, with
//! their lines, doc comments and whether they are public) and its imports.
//!
//! Each language is read by walking its syntax tree and naming the node kinds that declare
//! something; a node kind this code does not know is looked into, never an error, so a
//! newer grammar loses detail rather than files.

use serde::{Deserialize, Serialize};
use tree_sitter::{Node, Parser};

/// The languages read with a grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Rust.
    Rust,
    /// Python.
    Python,
    /// JavaScript, with JSX.
    JavaScript,
    /// TypeScript.
    TypeScript,
    /// TypeScript with JSX.
    Tsx,
    /// Go.
    Go,
    /// Java.
    Java,
}

impl Language {
    /// Every language.
    pub const ALL: [Language; 7] = [
        Language::Rust,
        Language::Python,
        Language::JavaScript,
        Language::TypeScript,
        Language::Tsx,
        Language::Go,
        Language::Java,
    ];

    /// The language of a file, by its extension.
    pub fn of(path: &str) -> Option<Language> {
        let extension = path.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match extension.as_str() {
            "rs" => Language::Rust,
            "py" | "pyi" => Language::Python,
            "js" | "jsx" | "mjs" | "cjs" => Language::JavaScript,
            "ts" | "mts" | "cts" => Language::TypeScript,
            "tsx" => Language::Tsx,
            "go" => Language::Go,
            "java" => Language::Java,
            _ => return None,
        })
    }

    /// Its name for people.
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::JavaScript => "JavaScript",
            Language::TypeScript => "TypeScript",
            Language::Tsx => "TSX",
            Language::Go => "Go",
            Language::Java => "Java",
        }
    }

    /// The name a fenced code block takes.
    pub fn fence(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::JavaScript => "javascript",
            Language::TypeScript => "typescript",
            Language::Tsx => "tsx",
            Language::Go => "go",
            Language::Java => "java",
        }
    }

    fn grammar(self) -> tree_sitter::Language {
        match self {
            Language::Rust => tree_sitter_rust::LANGUAGE.into(),
            Language::Python => tree_sitter_python::LANGUAGE.into(),
            Language::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Language::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Language::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Language::Go => tree_sitter_go::LANGUAGE.into(),
            Language::Java => tree_sitter_java::LANGUAGE.into(),
        }
    }
}

/// What a symbol is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolKind {
    /// A free function.
    Function,
    /// A function of a type.
    Method,
    /// A struct or record.
    Struct,
    /// An enum.
    Enum,
    /// A class.
    Class,
    /// A trait or interface.
    Interface,
    /// A type alias or another named type.
    Type,
    /// A module declared in the file.
    Module,
}

/// One declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symbol {
    /// Its name; a method's is `Type::name` in Rust and `Type.name` elsewhere.
    pub name: String,
    /// What it is.
    pub kind: SymbolKind,
    /// Its first line, from 1.
    pub start_line: u32,
    /// Its last line.
    pub end_line: u32,
    /// Whether other modules can use it.
    pub public: bool,
    /// Its doc comment, without comment markers, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
}

/// What one file declares and imports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outline {
    /// Its declarations, in source order.
    pub symbols: Vec<Symbol>,
    /// What it imports, as written (`std::fmt`, `./util`, `os.path`).
    pub imports: Vec<String>,
    /// The package it declares (Go, Java), when it does.
    pub package: Option<String>,
    /// Whether it starts a program (`fn main`, `if __name__ == "__main__"`, ...).
    pub entry_point: bool,
    /// Whether the parser had to recover from errors.
    pub has_errors: bool,
}

/// A parser for every language, reused across files by one thread.
pub struct Parsers {
    parsers: Vec<(Language, Parser)>,
}

impl Default for Parsers {
    fn default() -> Self {
        Parsers::new()
    }
}

impl Parsers {
    /// A parser per language.
    pub fn new() -> Parsers {
        let parsers = Language::ALL
            .into_iter()
            .map(|language| {
                let mut parser = Parser::new();
                parser.set_language(&language.grammar()).expect("a grammar of a compatible ABI");
                (language, parser)
            })
            .collect();
        Parsers { parsers }
    }

    /// Parses `source` only, as the benchmark's baseline: whether a tree came out.
    pub fn parse_only(&mut self, language: Language, source: &[u8]) -> bool {
        self.parser(language).parse(source, None).is_some()
    }

    /// The outline of `source`, a file in `language`.
    pub fn outline(&mut self, language: Language, source: &[u8]) -> Outline {
        let Some(tree) = self.parser(language).parse(source, None) else {
            return Outline { has_errors: true, ..Outline::default() };
        };
        let root = tree.root_node();
        let mut reader = Reader { language, source, outline: Outline::default(), depth: 0 };
        reader.outline.has_errors = root.has_error();
        reader.walk(root, None);
        if language == Language::Python {
            reader.outline.entry_point |= has_main_guard(source);
        }
        reader.outline
    }

    fn parser(&mut self, language: Language) -> &mut Parser {
        &mut self
            .parsers
            .iter_mut()
            .find(|(l, _)| *l == language)
            .expect("a parser for every language")
            .1
    }
}

struct Reader<'a> {
    language: Language,
    source: &'a [u8],
    outline: Outline,
    /// How many declaration bodies deep the walk is.
    depth: usize,
}

/// How deep declarations are read: real code nests a few levels; a file nested thousands
/// deep (a parser's test fixture) must not exhaust the thread's stack.
const MAX_DEPTH: usize = 48;

impl Reader<'_> {
    fn text(&self, node: Node) -> &str {
        node.utf8_text(self.source).unwrap_or_default()
    }

    fn field(&self, node: Node, name: &str) -> Option<String> {
        node.child_by_field_name(name).map(|n| self.text(n).to_string())
    }

    fn push(&mut self, node: Node, name: String, kind: SymbolKind, public: bool, doc_of: Node) {
        if name.is_empty() {
            return;
        }
        let doc = match self.language {
            Language::Python => python_docstring(node, self.source),
            _ => leading_doc(doc_of, self.source, self.language),
        };
        self.outline.symbols.push(Symbol {
            name,
            kind,
            start_line: node.start_position().row as u32 + 1,
            end_line: node.end_position().row as u32 + 1,
            public,
            doc,
        });
    }

    /// Reads the declarations under `node`; `owner` is the type whose body this is.
    fn walk(&mut self, node: Node, owner: Option<&str>) {
        if self.depth >= MAX_DEPTH {
            return;
        }
        self.depth += 1;
        self.walk_children(node, owner);
        self.depth -= 1;
    }

    fn walk_children(&mut self, node: Node, owner: Option<&str>) {
        let mut cursor = node.walk();
        let children: Vec<Node> = node.named_children(&mut cursor).collect();
        for child in children {
            match self.language {
                Language::Rust => self.rust(child, owner),
                Language::Python => self.python(child, owner, child),
                Language::JavaScript | Language::TypeScript | Language::Tsx => {
                    self.script(child, owner, false, child)
                }
                Language::Go => self.go(child),
                Language::Java => self.java(child, owner),
            }
        }
    }

    fn rust(&mut self, node: Node, owner: Option<&str>) {
        let public = has_child(node, "visibility_modifier");
        let name = self.field(node, "name").unwrap_or_default();
        match node.kind() {
            "function_item" => {
                if owner.is_none() && name == "main" {
                    self.outline.entry_point = true;
                }
                match owner {
                    Some(owner) => self.push(
                        node,
                        format!("{owner}::{name}"),
                        SymbolKind::Method,
                        public,
                        node,
                    ),
                    None => self.push(node, name, SymbolKind::Function, public, node),
                }
            }
            "function_signature_item" => {
                if let Some(owner) = owner {
                    self.push(node, format!("{owner}::{name}"), SymbolKind::Method, true, node);
                }
            }
            "struct_item" | "union_item" => self.push(node, name, SymbolKind::Struct, public, node),
            "enum_item" => self.push(node, name, SymbolKind::Enum, public, node),
            "type_item" => self.push(node, name, SymbolKind::Type, public, node),
            "trait_item" => {
                self.push(node, name.clone(), SymbolKind::Interface, public, node);
                if let Some(body) = node.child_by_field_name("body") {
                    self.walk(body, Some(&name));
                }
            }
            "impl_item" => {
                let ty = self.field(node, "type").unwrap_or_default();
                let ty = ty.split('<').next().unwrap_or_default().trim().to_string();
                if let Some(body) = node.child_by_field_name("body") {
                    self.walk(body, Some(&ty));
                }
            }
            "mod_item" => {
                self.push(node, name, SymbolKind::Module, public, node);
                if let Some(body) = node.child_by_field_name("body") {
                    self.walk(body, None);
                }
            }
            "use_declaration" => {
                if let Some(argument) = node.child_by_field_name("argument") {
                    let path = self.text(argument).to_string();
                    self.outline.imports.push(path);
                }
            }
            "extern_crate_declaration" => {
                if let Some(name) = self.field(node, "name") {
                    self.outline.imports.push(name);
                }
            }
            "declaration_list" | "attribute_item" | "line_comment" | "block_comment" => {}
            _ => {}
        }
    }

    fn python(&mut self, node: Node, owner: Option<&str>, outer: Node) {
        match node.kind() {
            "decorated_definition" => {
                if let Some(definition) = node.child_by_field_name("definition") {
                    self.python(definition, owner, node);
                }
            }
            "function_definition" => {
                let name = self.field(node, "name").unwrap_or_default();
                let public =
                    !name.starts_with('_') || name.starts_with("__") && name.ends_with("__");
                match owner {
                    Some(owner) => self.push(
                        node,
                        format!("{owner}.{name}"),
                        SymbolKind::Method,
                        public,
                        outer,
                    ),
                    None => self.push(node, name, SymbolKind::Function, public, outer),
                }
            }
            "class_definition" => {
                let name = self.field(node, "name").unwrap_or_default();
                let public = !name.starts_with('_');
                self.push(node, name.clone(), SymbolKind::Class, public, outer);
                if let Some(body) = node.child_by_field_name("body") {
                    self.walk(body, Some(&name));
                }
            }
            "import_statement" => {
                let mut cursor = node.walk();
                let names: Vec<String> = node
                    .children_by_field_name("name", &mut cursor)
                    .map(|n| {
                        let n = n.child_by_field_name("name").unwrap_or(n);
                        self.text(n).to_string()
                    })
                    .collect();
                self.outline.imports.extend(names);
            }
            "import_from_statement" => {
                if let Some(module) = self.field(node, "module_name") {
                    self.outline.imports.push(module);
                }
            }
            _ => {}
        }
    }

    fn script(&mut self, node: Node, owner: Option<&str>, exported: bool, outer: Node) {
        let name = || self.field(node, "name").unwrap_or_default();
        match node.kind() {
            "export_statement" => {
                if let Some(declaration) = node.child_by_field_name("declaration") {
                    self.script(declaration, owner, true, node);
                } else if let Some(source) = node.child_by_field_name("source") {
                    let source = unquote(self.text(source));
                    self.outline.imports.push(source);
                }
            }
            "function_declaration" | "generator_function_declaration" => {
                let name = name();
                self.push(node, name, SymbolKind::Function, exported, outer)
            }
            "class_declaration" | "abstract_class_declaration" => {
                let class = name();
                self.push(node, class.clone(), SymbolKind::Class, exported, outer);
                if let Some(body) = node.child_by_field_name("body") {
                    self.walk(body, Some(&class));
                }
            }
            "method_definition" => {
                if let Some(owner) = owner {
                    let method = name();
                    let private = method.starts_with('#')
                        || has_child_text(node, "accessibility_modifier", "private", self.source);
                    self.push(
                        node,
                        format!("{owner}.{method}"),
                        SymbolKind::Method,
                        !private,
                        node,
                    );
                }
            }
            "interface_declaration" => {
                let name = name();
                self.push(node, name, SymbolKind::Interface, exported, outer)
            }
            "type_alias_declaration" => {
                let name = name();
                self.push(node, name, SymbolKind::Type, exported, outer)
            }
            "enum_declaration" => {
                let name = name();
                self.push(node, name, SymbolKind::Enum, exported, outer)
            }
            "lexical_declaration" | "variable_declaration" => {
                // `const handler = () => ...` and `const f = function () {}` are functions.
                let mut cursor = node.walk();
                let declarators: Vec<Node> = node.named_children(&mut cursor).collect();
                for declarator in declarators {
                    let is_function = declarator.child_by_field_name("value").is_some_and(|v| {
                        matches!(v.kind(), "arrow_function" | "function_expression" | "function")
                    });
                    if is_function && let Some(name) = self.field(declarator, "name") {
                        self.push(declarator, name, SymbolKind::Function, exported, outer);
                    }
                }
            }
            "import_statement" => {
                if let Some(source) = node.child_by_field_name("source") {
                    let source = unquote(self.text(source));
                    self.outline.imports.push(source);
                }
            }
            _ => {}
        }
    }

    fn go(&mut self, node: Node) {
        let exported = |name: &str| name.chars().next().is_some_and(char::is_uppercase);
        match node.kind() {
            "package_clause" => {
                let mut cursor = node.walk();
                let name =
                    node.named_children(&mut cursor).next().map(|n| self.text(n).to_string());
                self.outline.package = name;
            }
            "function_declaration" => {
                let name = self.field(node, "name").unwrap_or_default();
                if name == "main" && self.outline.package.as_deref() == Some("main") {
                    self.outline.entry_point = true;
                }
                let public = exported(&name);
                self.push(node, name, SymbolKind::Function, public, node);
            }
            "method_declaration" => {
                let name = self.field(node, "name").unwrap_or_default();
                let receiver = node
                    .child_by_field_name("receiver")
                    .map(|r| {
                        self.text(r)
                            .trim_matches(|c| c == '(' || c == ')')
                            .rsplit([' ', '*'])
                            .next()
                            .unwrap_or_default()
                            .split('[')
                            .next()
                            .unwrap_or_default()
                            .to_string()
                    })
                    .unwrap_or_default();
                let public = exported(&name);
                self.push(node, format!("{receiver}.{name}"), SymbolKind::Method, public, node);
            }
            "type_declaration" => {
                let mut cursor = node.walk();
                let specs: Vec<Node> = node.named_children(&mut cursor).collect();
                for spec in specs
                    .into_iter()
                    .filter(|s| s.kind() == "type_spec" || s.kind() == "type_alias")
                {
                    let name = self.field(spec, "name").unwrap_or_default();
                    let kind = match spec.child_by_field_name("type").map(|t| t.kind()) {
                        Some("struct_type") => SymbolKind::Struct,
                        Some("interface_type") => SymbolKind::Interface,
                        _ => SymbolKind::Type,
                    };
                    let public = exported(&name);
                    self.push(spec, name, kind, public, node);
                }
            }
            "import_declaration" => {
                let mut specs = Vec::new();
                collect_kind(node, "import_spec", &mut specs);
                for spec in specs {
                    if let Some(path) = spec.child_by_field_name("path") {
                        let path = unquote(self.text(path));
                        self.outline.imports.push(path);
                    }
                }
            }
            _ => {}
        }
    }

    fn java(&mut self, node: Node, owner: Option<&str>) {
        let public = node
            .named_children(&mut node.walk())
            .find(|c| c.kind() == "modifiers")
            .is_some_and(|m| self.text(m).split_whitespace().any(|w| w == "public"));
        match node.kind() {
            "package_declaration" => {
                let mut cursor = node.walk();
                let name = node
                    .named_children(&mut cursor)
                    .find(|c| c.kind() != "annotation" && c.kind() != "marker_annotation")
                    .map(|n| self.text(n).to_string());
                self.outline.package = name;
            }
            "import_declaration" => {
                let text = self.text(node);
                let path = text
                    .trim_start_matches("import")
                    .trim()
                    .trim_start_matches("static ")
                    .trim_end_matches(';')
                    .trim()
                    .to_string();
                self.outline.imports.push(path);
            }
            "class_declaration"
            | "interface_declaration"
            | "enum_declaration"
            | "record_declaration"
            | "annotation_type_declaration" => {
                let name = self.field(node, "name").unwrap_or_default();
                let qualified = match owner {
                    Some(owner) => format!("{owner}.{name}"),
                    None => name,
                };
                let kind = match node.kind() {
                    "interface_declaration" | "annotation_type_declaration" => {
                        SymbolKind::Interface
                    }
                    "enum_declaration" => SymbolKind::Enum,
                    "record_declaration" => SymbolKind::Struct,
                    _ => SymbolKind::Class,
                };
                self.push(node, qualified.clone(), kind, public, node);
                if let Some(body) = node.child_by_field_name("body") {
                    self.walk(body, Some(&qualified));
                }
            }
            "method_declaration" | "constructor_declaration" => {
                if let Some(owner) = owner {
                    let name = self.field(node, "name").unwrap_or_default();
                    let text = self.text(node);
                    if name == "main" && text.contains("static") && public {
                        self.outline.entry_point = true;
                    }
                    self.push(node, format!("{owner}.{name}"), SymbolKind::Method, public, node);
                }
            }
            "enum_body_declarations" => self.walk(node, owner),
            _ => {}
        }
    }
}

fn has_child(node: Node, kind: &str) -> bool {
    let mut cursor = node.walk();
    node.children(&mut cursor).any(|c| c.kind() == kind)
}

fn has_child_text(node: Node, kind: &str, text: &str, source: &[u8]) -> bool {
    let mut cursor = node.walk();
    node.children(&mut cursor)
        .any(|c| c.kind() == kind && c.utf8_text(source).is_ok_and(|t| t == text))
}

fn collect_kind<'t>(node: Node<'t>, kind: &str, into: &mut Vec<Node<'t>>) {
    if node.kind() == kind {
        into.push(node);
        return;
    }
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        collect_kind(child, kind, into);
    }
}

fn unquote(text: &str) -> String {
    text.trim_matches(|c| c == '"' || c == '\'' || c == '`').to_string()
}

/// The comment block right above `node` when it is a doc comment of `language`.
fn leading_doc(node: Node, source: &[u8], language: Language) -> Option<String> {
    let mut lines = Vec::new();
    let mut current = node.prev_sibling();
    let mut expected_row = node.start_position().row;
    while let Some(sibling) = current {
        let kind = sibling.kind();
        let is_attribute = kind == "attribute_item";
        if !(kind.contains("comment") || is_attribute) {
            break;
        }
        // A blank line between the comment and the declaration ends the doc.
        if sibling.end_position().row + 1 < expected_row {
            break;
        }
        expected_row = sibling.start_position().row;
        current = sibling.prev_sibling();
        if is_attribute {
            continue;
        }
        let text = sibling.utf8_text(source).unwrap_or_default();
        let doc = match language {
            Language::Rust if text.starts_with("///") && !text.starts_with("////") => {
                Some(text.trim_start_matches("///").trim().to_string())
            }
            Language::Rust if text.starts_with("/**") => Some(strip_block(text)),
            Language::Go => Some(text.trim_start_matches("//").trim().to_string()),
            Language::Java | Language::JavaScript | Language::TypeScript | Language::Tsx
                if text.starts_with("/**") =>
            {
                Some(strip_block(text))
            }
            _ => None,
        };
        match doc {
            Some(doc) => lines.push(doc),
            None => break,
        }
    }
    lines.reverse();
    let doc = lines.join("\n").trim().to_string();
    (!doc.is_empty()).then_some(doc)
}

/// The text of a `/** ... */` comment, without its stars.
fn strip_block(text: &str) -> String {
    let inner = text.trim_start_matches("/**").trim_end_matches("*/");
    inner
        .lines()
        .map(|line| line.trim().trim_start_matches('*').trim())
        .filter(|line| !line.starts_with('@'))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// The docstring of a Python function or class: the string its body starts with.
fn python_docstring(node: Node, source: &[u8]) -> Option<String> {
    let body = node.child_by_field_name("body")?;
    let first = body.named_child(0)?;
    if first.kind() != "expression_statement" {
        return None;
    }
    let string = first.named_child(0).filter(|s| s.kind() == "string")?;
    let text = string.utf8_text(source).ok()?;
    let text =
        text.trim_start_matches(['r', 'u', 'R', 'U']).trim_matches('"').trim_matches('\'').trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn has_main_guard(source: &[u8]) -> bool {
    let text = String::from_utf8_lossy(source);
    text.contains("if __name__ == \"__main__\"") || text.contains("if __name__ == '__main__'")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outline(language: Language, source: &str) -> Outline {
        Parsers::new().outline(language, source.as_bytes())
    }

    fn names(outline: &Outline) -> Vec<(&str, SymbolKind, bool)> {
        outline.symbols.iter().map(|s| (s.name.as_str(), s.kind, s.public)).collect()
    }

    #[test]
    fn rust_items_methods_docs_and_uses() {
        let source = r#"
use std::fmt;
use crate::store::{Store, Key};

/// An invoice.
/// With lines.
#[derive(Debug)]
pub struct Invoice { lines: Vec<u32> }

impl Invoice {
    /// The sum.
    pub fn total(&self) -> u32 { 0 }
    fn helper() {}
}

pub trait Render { fn render(&self) -> String; }

fn main() {}
"#;
        let o = outline(Language::Rust, source);
        assert_eq!(
            names(&o),
            [
                ("Invoice", SymbolKind::Struct, true),
                ("Invoice::total", SymbolKind::Method, true),
                ("Invoice::helper", SymbolKind::Method, false),
                ("Render", SymbolKind::Interface, true),
                ("Render::render", SymbolKind::Method, true),
                ("main", SymbolKind::Function, false),
            ]
        );
        assert_eq!(o.symbols[0].doc.as_deref(), Some("An invoice.\nWith lines."));
        assert_eq!(o.symbols[0].start_line, 8);
        assert_eq!(o.symbols[1].doc.as_deref(), Some("The sum."));
        assert_eq!(o.imports, ["std::fmt", "crate::store::{Store, Key}"]);
        assert!(o.entry_point);
    }

    #[test]
    fn python_classes_methods_docstrings_and_imports() {
        let source = r#"
import os, json as j
from billing.core import Invoice

class Ledger:
    """Keeps the books."""
    def add(self, x):
        return x
    def _private(self):
        pass

@cached
def total(items):
    '''Adds them up.'''
    return sum(items)

if __name__ == "__main__":
    total([])
"#;
        let o = outline(Language::Python, source);
        assert_eq!(
            names(&o),
            [
                ("Ledger", SymbolKind::Class, true),
                ("Ledger.add", SymbolKind::Method, true),
                ("Ledger._private", SymbolKind::Method, false),
                ("total", SymbolKind::Function, true),
            ]
        );
        assert_eq!(o.symbols[0].doc.as_deref(), Some("Keeps the books."));
        assert_eq!(o.symbols[3].doc.as_deref(), Some("Adds them up."));
        assert_eq!(o.imports, ["os", "json", "billing.core"]);
        assert!(o.entry_point);
    }

    #[test]
    fn typescript_exports_classes_and_arrow_functions() {
        let source = r#"
import { api } from "./api";
import React from 'react';

/** Formats a price. */
export function price(n: number): string { return `${n}`; }

export interface Props { id: string }
type Local = number;

export class Cart {
  add(item: string) {}
  private drop() {}
}

export const handler = async () => 1;
"#;
        let o = outline(Language::TypeScript, source);
        assert_eq!(
            names(&o),
            [
                ("price", SymbolKind::Function, true),
                ("Props", SymbolKind::Interface, true),
                ("Local", SymbolKind::Type, false),
                ("Cart", SymbolKind::Class, true),
                ("Cart.add", SymbolKind::Method, true),
                ("Cart.drop", SymbolKind::Method, false),
                ("handler", SymbolKind::Function, true),
            ]
        );
        assert_eq!(o.symbols[0].doc.as_deref(), Some("Formats a price."));
        assert_eq!(o.imports, ["./api", "react"]);
        let tsx = outline(Language::Tsx, "export const App = () => <div>hi</div>;\n");
        assert_eq!(names(&tsx), [("App", SymbolKind::Function, true)]);
        assert!(!tsx.has_errors);
    }

    #[test]
    fn go_types_methods_and_the_main_package() {
        let source = r#"
package main

import (
    "fmt"
    store "example.com/shop/store"
)

// Server answers requests.
type Server struct{}

type Handler interface{ Serve() }

// Start runs it.
func (s *Server) Start() error { return nil }

func main() { fmt.Println() }
"#;
        let o = outline(Language::Go, source);
        assert_eq!(
            names(&o),
            [
                ("Server", SymbolKind::Struct, true),
                ("Handler", SymbolKind::Interface, true),
                ("Server.Start", SymbolKind::Method, true),
                ("main", SymbolKind::Function, false),
            ]
        );
        assert_eq!(o.symbols[0].doc.as_deref(), Some("Server answers requests."));
        assert_eq!(o.symbols[2].doc.as_deref(), Some("Start runs it."));
        assert_eq!(o.imports, ["fmt", "example.com/shop/store"]);
        assert_eq!(o.package.as_deref(), Some("main"));
        assert!(o.entry_point);
    }

    #[test]
    fn java_classes_methods_and_imports() {
        let source = r#"
package com.acme.shop;

import java.util.List;
import static com.acme.util.Strings.join;

/** The shop. */
public class Shop {
    /** Opens it. */
    public void open() {}
    private int count() { return 0; }
    public static void main(String[] args) {}
}
"#;
        let o = outline(Language::Java, source);
        assert_eq!(
            names(&o),
            [
                ("Shop", SymbolKind::Class, true),
                ("Shop.open", SymbolKind::Method, true),
                ("Shop.count", SymbolKind::Method, false),
                ("Shop.main", SymbolKind::Method, true),
            ]
        );
        assert_eq!(o.symbols[0].doc.as_deref(), Some("The shop."));
        assert_eq!(o.symbols[1].doc.as_deref(), Some("Opens it."));
        assert_eq!(o.imports, ["java.util.List", "com.acme.util.Strings.join"]);
        assert_eq!(o.package.as_deref(), Some("com.acme.shop"));
        assert!(o.entry_point);
    }

    #[test]
    fn a_file_nested_thousands_deep_is_read_without_exhausting_the_stack() {
        let source = "mod a {".repeat(6000) + &"}".repeat(6000);
        // A thread with a small stack, like the parse threads'.
        let outline = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || Parsers::new().outline(Language::Rust, source.as_bytes()))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert_eq!(outline.symbols.len(), MAX_DEPTH, "the first levels are read");
    }

    #[test]
    fn languages_are_known_by_extension() {
        assert_eq!(Language::of("src/lib.rs"), Some(Language::Rust));
        assert_eq!(Language::of("web/App.TSX"), Some(Language::Tsx));
        assert_eq!(Language::of("README.md"), None);
        assert_eq!(Language::of("Makefile"), None);
    }
}
