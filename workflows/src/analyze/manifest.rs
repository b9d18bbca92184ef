//! Modules found by their manifests: a `Cargo.toml` with a package, a `package.json`, a
//! `go.mod`, a `pyproject.toml` or `setup.py`, a `pom.xml` or a Gradle build. Each is read
//! with a few lines of text matching rather than a parser per format: a manifest that does
//! not say its name gives the module its folder's name, never an error.

use serde_json::Value;

/// What a manifest says about its module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The manifest's file name (`Cargo.toml`).
    pub file: &'static str,
    /// The module's name.
    pub name: String,
    /// Its one-line description, when the manifest has one.
    pub description: Option<String>,
    /// The names other code imports it by (`my_crate`, `@acme/ui`, `example.com/shop`).
    pub import_names: Vec<String>,
    /// Files it names as programs (`package.json`'s `main` and `bin`), relative to it.
    pub entry_points: Vec<String>,
}

/// The manifest files, by name.
pub const FILES: [&str; 8] = [
    "Cargo.toml",
    "package.json",
    "go.mod",
    "pyproject.toml",
    "setup.py",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
];

/// Reads the manifest `file` of the folder called `folder`; `None` when it declares no
/// module (a Cargo workspace root without a package, a JSON file that does not parse).
pub fn read(file: &str, folder: &str, text: &str) -> Option<Manifest> {
    let file = FILES.into_iter().find(|f| *f == file)?;
    let mut manifest = Manifest {
        file,
        name: folder.to_string(),
        description: None,
        import_names: Vec::new(),
        entry_points: Vec::new(),
    };
    match file {
        "Cargo.toml" => {
            let package = toml_section(text, "package")?;
            if let Some(name) = toml_value(&package, "name").filter(|n| !n.trim().is_empty()) {
                manifest.name = name;
            }
            manifest.description = toml_value(&package, "description");
            manifest.import_names.push(manifest.name.replace('-', "_"));
        }
        "package.json" => {
            let json: Value = serde_json::from_str(text).ok()?;
            if let Some(name) = json["name"].as_str().filter(|n| !n.trim().is_empty()) {
                manifest.name = name.to_string();
            }
            manifest.description = json["description"].as_str().map(str::to_string);
            manifest.import_names.push(manifest.name.clone());
            if let Some(main) = json["main"].as_str() {
                manifest.entry_points.push(main.trim_start_matches("./").to_string());
            }
            match &json["bin"] {
                Value::String(bin) => {
                    manifest.entry_points.push(bin.trim_start_matches("./").into())
                }
                Value::Object(bins) => manifest.entry_points.extend(
                    bins.values()
                        .filter_map(Value::as_str)
                        .map(|b| b.trim_start_matches("./").into()),
                ),
                _ => {}
            }
        }
        "go.mod" => {
            let path = text
                .lines()
                .find_map(|line| line.trim().strip_prefix("module "))
                .map(|p| p.trim().trim_matches('"').to_string())?;
            manifest.name = path.rsplit('/').next().unwrap_or(&path).to_string();
            manifest.import_names.push(path);
        }
        "pyproject.toml" => {
            let section =
                toml_section(text, "project").or_else(|| toml_section(text, "tool.poetry"));
            if let Some(section) = section {
                if let Some(name) = toml_value(&section, "name").filter(|n| !n.trim().is_empty()) {
                    manifest.name = name;
                }
                manifest.description = toml_value(&section, "description");
            }
            manifest.import_names.push(manifest.name.replace('-', "_").to_ascii_lowercase());
        }
        "setup.py" => {
            if let Some(name) = python_keyword(text, "name").filter(|n| !n.trim().is_empty()) {
                manifest.name = name;
            }
            manifest.description = python_keyword(text, "description");
            manifest.import_names.push(manifest.name.replace('-', "_").to_ascii_lowercase());
        }
        "pom.xml" => {
            let without_parent = match (text.find("<parent>"), text.find("</parent>")) {
                (Some(start), Some(end)) if start < end => {
                    format!("{}{}", &text[..start], &text[end + "</parent>".len()..])
                }
                _ => text.to_string(),
            };
            if let Some(name) = xml_value(&without_parent, "artifactId") {
                manifest.name = name;
            }
            manifest.description = xml_value(&without_parent, "description");
        }
        _ => {}
    }
    manifest.description = manifest
        .description
        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|d| !d.is_empty());
    Some(manifest)
}

/// The lines of a TOML section, up to the next header.
fn toml_section(text: &str, name: &str) -> Option<String> {
    let header = format!("[{name}]");
    let mut lines = text.lines();
    lines.find(|line| line.trim() == header)?;
    Some(
        lines.take_while(|line| !line.trim_start().starts_with('[')).collect::<Vec<_>>().join("\n"),
    )
}

/// The string value of `key` in a TOML section.
fn toml_value(section: &str, key: &str) -> Option<String> {
    section.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        if k.trim() != key {
            return None;
        }
        let v = v.trim();
        let quote = v.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let rest = &v[1..];
        Some(rest[..rest.find(quote)?].to_string())
    })
}

/// The string passed as `key=` in a `setup(...)` call.
fn python_keyword(text: &str, key: &str) -> Option<String> {
    let mut at = 0;
    while let Some(found) = text[at..].find(key) {
        let start = at + found;
        at = start + key.len();
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = text[at..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else { continue };
        let rest = rest.trim_start();
        let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else { continue };
        let rest = &rest[1..];
        return rest.find(quote).map(|end| rest[..end].to_string());
    }
    None
}

/// The text of the first `<tag>` element.
fn xml_value(text: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{tag}>"))? + start;
    Some(text[start..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_packages_are_modules_and_workspace_roots_are_not() {
        let crate_toml = "[package]\nname = \"billing-core\"\ndescription = \"Invoices.\"\n\n[dependencies]\nname = \"not this\"\n";
        let m = read("Cargo.toml", "core", crate_toml).unwrap();
        assert_eq!(
            (m.name.as_str(), m.description.as_deref()),
            ("billing-core", Some("Invoices."))
        );
        assert_eq!(m.import_names, ["billing_core"]);
        assert_eq!(read("Cargo.toml", ".", "[workspace]\nmembers = [\"a\"]\n"), None);
    }

    #[test]
    fn package_json_names_its_programs() {
        let json = r#"{"name": "@acme/cli", "description": "The CLI.", "main": "./lib/index.js", "bin": {"acme": "bin/acme.js"}}"#;
        let m = read("package.json", "cli", json).unwrap();
        assert_eq!(m.name, "@acme/cli");
        let nameless = read("package.json", "web", r#"{"name": ""}"#).unwrap();
        assert_eq!(nameless.name, "web", "an empty name gives the folder's");
        assert_eq!(m.entry_points, ["lib/index.js", "bin/acme.js"]);
        assert_eq!(read("package.json", "x", "{ not json"), None);
    }

    #[test]
    fn go_python_and_maven_names() {
        let go = read("go.mod", "shop", "module example.com/acme/shop\n\ngo 1.22\n").unwrap();
        assert_eq!(
            (go.name.as_str(), go.import_names[0].as_str()),
            ("shop", "example.com/acme/shop")
        );
        let py = read(
            "pyproject.toml",
            "x",
            "[project]\nname = \"Data-Tools\"\ndescription = 'Tools.'\n",
        )
        .unwrap();
        assert_eq!(py.import_names, ["data_tools"]);
        let setup =
            read("setup.py", "x", "setup(\n    name='legacy-pkg',\n    version='1.0',\n)\n")
                .unwrap();
        assert_eq!(setup.name, "legacy-pkg");
        let pom = "<project><parent><artifactId>parent</artifactId></parent><artifactId>shop-api</artifactId><description>\n  The API.\n</description></project>";
        let maven = read("pom.xml", "api", pom).unwrap();
        assert_eq!(
            (maven.name.as_str(), maven.description.as_deref()),
            ("shop-api", Some("The API."))
        );
        assert_eq!(read("build.gradle", "app", "plugins {}").unwrap().name, "app");
    }
}
