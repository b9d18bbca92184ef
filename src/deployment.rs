//! The deployment files held to the binary, since Docker does not run where the tests do:
//! each service of `docker-compose.yml` that runs IsoCrates starts with the configuration
//! it passes (production refusals included), sets only variables the binary reads, names
//! only secret files that are mounted, and publishes no port but the API's on loopback;
//! the `Dockerfile` runs as a user without privileges on the port the API listens on; and
//! neither `.env` nor `secrets/` can be committed.

use std::collections::HashMap;
use std::path::Path;

use serde_yaml::Value;

use crate::config::Config;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let mut value: Value = serde_yaml::from_str(&text).unwrap();
    // Resolves `<<: *anchor` merges, as Compose does.
    value.apply_merge().unwrap();
    value
}

/// The variable names the binary's configuration code reads, taken from its source: every
/// quoted upper-case name in the modules that read the environment.
fn names_the_binary_reads() -> Vec<String> {
    let sources = [
        include_str!("config.rs"),
        include_str!("../providers/src/config.rs"),
        include_str!("../providers/src/embed.rs"),
    ];
    let mut names = Vec::new();
    for source in sources {
        for piece in source.split('"').skip(1).step_by(2) {
            let is_name = piece.len() > 2
                && piece.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && piece.contains('_')
                || ["HOST", "PORT", "WORKERS", "ENVIRONMENT"].contains(&piece);
            if is_name {
                names.push(piece.to_string());
            }
        }
    }
    names
}

/// `${NAME:-default}` and `${NAME:?message}` as Compose resolves them with no `.env`.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map(|e| start + e).expect("a closed ${...}");
        let inner = &rest[start + 2..end];
        if let Some((_, default)) = inner.split_once(":-") {
            out.push_str(default);
        } else {
            panic!("{value}: a variable without a default needs a .env to start");
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("a scalar, not {other:?}"),
    }
}

fn list(v: &Value) -> Vec<String> {
    v.as_sequence().map(|s| s.iter().map(text).collect()).unwrap_or_default()
}

/// What each secret file holds in the test: values of the shape the comments make.
fn secret_content(name: &str) -> &'static str {
    match name {
        "database_url" => "sqlite://compose-test.db",
        "llm_api_key" => "sk-test-0123456789abcdef",
        _ => "8c1f4e9a2b7d3065e1c9a4f7b2d80e36c5a1f9e47b3d2086",
    }
}

/// The `ENV` of the Dockerfile's last stage, continuation lines joined.
fn image_env() -> HashMap<String, String> {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap().to_string();
    let mut env = HashMap::new();
    let mut lines = runtime.lines();
    while let Some(line) = lines.next() {
        let Some(mut instruction) = line.strip_prefix("ENV ").map(str::to_string) else {
            continue;
        };
        while instruction.ends_with('\\') {
            instruction.pop();
            instruction.push(' ');
            instruction.push_str(lines.next().unwrap_or_default());
        }
        for pair in instruction.split_whitespace() {
            if let Some((k, v)) = pair.split_once('=') {
                env.insert(k.to_string(), v.to_string());
            }
        }
    }
    env
}

#[test]
fn every_isocrates_service_starts_with_what_compose_passes() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    let declared: Vec<String> = compose["secrets"].as_mapping().unwrap().keys().map(text).collect();
    let known = names_the_binary_reads();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (name, service) in services {
        let name = text(name);
        if service["entrypoint"] != Value::Sequence(vec![Value::from("isocrates")]) {
            continue;
        }
        checked += 1;
        let mounted = list(&service["secrets"]);
        for secret in &mounted {
            assert!(declared.contains(secret), "{name} mounts {secret}, which is not declared");
        }
        // The container's environment: the image's, then the service's over it.
        let mut vars: HashMap<String, String> = image_env();
        for (key, value) in service["environment"].as_mapping().unwrap() {
            let (key, value) = (text(key), interpolate(&text(value)));
            let base = key.strip_suffix("_FILE").unwrap_or(&key);
            assert!(
                known.iter().any(|k| k == &key || k == base),
                "{name} sets {key}, which IsoCrates does not read"
            );
            let value = match value.strip_prefix("/run/secrets/") {
                Some(secret) => {
                    assert!(
                        mounted.iter().any(|m| m == secret),
                        "{name}: {key} names {secret}, which is not mounted"
                    );
                    let path = dir.path().join(secret);
                    std::fs::write(&path, secret_content(secret)).unwrap();
                    path.display().to_string()
                }
                None => value,
            };
            vars.insert(key, value);
        }
        assert_eq!(vars.get("ENVIRONMENT").map(String::as_str), Some("production"), "{name}");
        // A named volume takes the owner of the folder it is mounted on, so each must exist
        // in the image, where the user owns it.
        let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
        for volume in list(&service["volumes"]) {
            let target = volume.split(':').nth(1).unwrap();
            assert!(
                dockerfile.contains(&format!("mkdir -p {target}")),
                "{name} mounts {target}, which the image does not create for its user"
            );
        }
        let config = Config::from_vars(&vars).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(config.auth_enabled && config.production, "{name}");
        assert!(config.webhook_secret.is_some(), "{name}: auth on needs the webhook secret");
        let command = list(&service["command"]);
        match command.first().map(String::as_str) {
            Some("serve") => {
                // Loopback only, and the container port is the one the API listens on.
                let ports = list(&service["ports"]);
                assert_eq!(ports, [format!("127.0.0.1:{}:{}", config.port, config.port)], "{name}");
                assert_eq!(config.host, "0.0.0.0", "{name} must listen beyond the container");
            }
            Some("worker") => {
                assert!(service.get("ports").is_none(), "{name}: workers publish no port");
            }
            other => panic!("{name} runs {other:?}"),
        }
    }
    assert_eq!(checked, 2, "the api and the worker services");

    // Nothing else publishes a port; the database is healthy before the others start.
    for (name, service) in services {
        let name = text(name);
        if name != "api" {
            assert!(service.get("ports").is_none(), "{name} publishes a port");
        }
    }
    // Only the network's gateway, where the host's proxy arrives, is a trusted proxy.
    let gateway = text(&compose["networks"]["default"]["ipam"]["config"][0]["gateway"]);
    let api_env = &services[&Value::from("api")]["environment"];
    assert_eq!(interpolate(&text(&api_env["TRUSTED_PROXIES"])), gateway);
    let db = &services[&Value::from("db")];
    assert!(db.get("healthcheck").is_some());
    assert!(list(&db["volumes"]).iter().any(|v| v.starts_with("pgdata:")));
    assert_eq!(list(&services[&Value::from("ollama")]["profiles"]), ["ollama"]);
}

#[test]
fn the_image_runs_unprivileged_on_the_port_the_api_listens_on() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let stages = dockerfile.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "a build stage and a run stage");
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap();
    let user = runtime.lines().find_map(|l| l.strip_prefix("USER ")).expect("a USER line");
    assert!(!user.starts_with("root") && !user.starts_with("0"), "runs as {user}");
    let vars = image_env();
    let config = Config::from_vars(&vars).unwrap();
    assert!(runtime.contains(&format!("EXPOSE {}", config.port)), "EXPOSE {}", config.port);
    assert_eq!(config.host, "0.0.0.0");
    let ignored = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for never in [".env", "secrets", "*.db", "target"] {
        assert!(ignored.lines().any(|l| l.trim() == never), ".dockerignore lacks {never}");
    }
}

#[test]
fn secrets_and_the_env_file_are_never_committed() {
    let ignored = std::fs::read_to_string(root().join(".gitignore")).unwrap();
    for never in [".env", "secrets/", "*.db"] {
        assert!(ignored.lines().any(|l| l.trim() == never), ".gitignore lacks {never}");
    }
    // And none is in the repository now.
    let tracked = std::process::Command::new("git")
        .args(["ls-files", "--", ".env", "secrets", "*.db"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(tracked.status.success());
    assert!(tracked.stdout.is_empty(), "committed: {}", String::from_utf8_lossy(&tracked.stdout));
}
