//! Configuration from the environment (and a `.env` file), read and validated once at
//! start. A bad value stops start-up with one line naming the variable and the fix.

use std::collections::HashMap;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

/// The shortest JWT secret accepted in production, in bytes.
pub const MIN_JWT_SECRET: usize = 32;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything the binary reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: `sqlite://isocrates.db` by default.
    pub database_url: String,
    /// `HOST`: the address to listen on.
    pub host: String,
    /// `PORT`: 8000 by default.
    pub port: u16,
    /// `AUTH_ENABLED`: on by default; off means every request acts as an admin.
    pub auth_enabled: bool,
    /// `PUBLIC_READ`: with auth on, callers without a token may read everything.
    pub public_read: bool,
    /// `JWT_SECRET_KEY` or the file `JWT_SECRET_KEY_FILE` names; `None` when unset.
    pub jwt_secret: Option<SecretString>,
    /// `ENVIRONMENT`: `development` (default) or `production`.
    pub production: bool,
    /// `LOG_LEVEL`: a tracing filter; unset, long-running commands log at `info` and
    /// one-shot commands at `warn`.
    pub log_level: Option<String>,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `MAX_BODY_BYTES`: the largest request body, 5 MiB by default.
    pub max_body_bytes: usize,
    /// `WORKERS`: how many steps a worker runs at once (2 by default); 0 makes `serve`
    /// run no embedded worker.
    pub workers: usize,
    /// The `LLM_*` variables: the provider and model of each tier.
    pub llm: isocrates_providers::LlmConfig,
    /// `PROMPTS_DIR`: a folder of templates that replace the built-in ones.
    pub prompts_dir: Option<PathBuf>,
    /// `REPOS_DIR`, `ALLOWED_GIT_HOSTS`, `ALLOW_LOCAL_REPOS`, `GITHUB_TOKEN`,
    /// `MAX_REPO_BYTES` and `MAX_FILE_BYTES`: where repositories come from.
    pub git: isocrates_workflows::git::GitConfig,
    /// `GITHUB_API_URL`: where GitHub's API is asked, when `GITHUB_TOKEN` is set
    /// (`https://api.github.com` by default).
    pub github_api_url: String,
    /// `MAX_PAGES`: the most pages a repository's wiki gets (16 by default).
    pub max_pages: usize,
    /// `GITHUB_WEBHOOK_SECRET` or the file `GITHUB_WEBHOOK_SECRET_FILE` names.
    pub webhook_secret: Option<SecretString>,
    /// `DAILY_REFRESH_INTERVAL`: how often `serve` documents the head of every tracked
    /// repository (24 h by default; `0` or `off` never).
    pub refresh_interval: Option<std::time::Duration>,
    /// The `EMBEDDING_*` variables: the model that embeds documents; `None` turns
    /// similar documents and hybrid search off.
    pub embeddings: Option<isocrates_providers::embed::EmbeddingConfig>,
    /// `TRASH_RETENTION_DAYS`: how long a trashed document stays restorable before `serve`
    /// purges it (30 days by default; `0` keeps the trash forever).
    pub trash_retention: Option<std::time::Duration>,
    /// `AUDIT_RETENTION_DAYS`: how long audit rows are kept before `serve` deletes them
    /// (365 days by default; `0` keeps them forever).
    pub audit_retention: Option<std::time::Duration>,
    /// `RATE_LIMIT_PER_MINUTE` (60 by default; 0 off) and `TRUSTED_PROXIES`.
    pub rate_limit: isocrates_api::RateLimitConfig,
    /// `CORS_ALLOWED_ORIGINS`: the origins browser pages may call the API from.
    pub cors_origins: Vec<String>,
    /// `BASE_PATH`: the path the service answers under behind a proxy (`/docs`), or `""`.
    pub base_path: String,
    /// `LLM_BUDGET_USD_PER_RUN`, `LLM_BUDGET_USD_PER_MONTH` and
    /// `LLM_BUDGET_USD_PER_REPO_PER_MONTH`: caps on what the models may cost; none by
    /// default.
    pub budgets: isocrates_workflows::pipeline::budget::Budgets,
}

/// The default of `WORKERS`.
pub const DEFAULT_WORKERS: usize = 2;

/// The values of the environment, as a map so tests can supply their own.
pub type Vars = HashMap<String, String>;

/// The process environment, after loading `.env` from the working folder if there is one.
/// Variables already set win over the file; a `.env` that cannot be parsed is an error.
pub fn environment() -> Result<Vars, String> {
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(e) if e.not_found() => {}
        Err(e) => return Err(format!(".env cannot be read: {e}; fix the line or remove the file")),
    }
    Ok(std::env::vars().collect())
}

fn get<'a>(vars: &'a Vars, name: &str) -> Option<&'a str> {
    vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// A cap in US dollars, such as `25` or `0.50`; unset is no cap.
fn dollars(vars: &Vars, name: &str) -> Result<Option<f64>, String> {
    let Some(value) = get(vars, name) else { return Ok(None) };
    let amount = value.trim_start_matches('$');
    amount.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0).map(Some).ok_or_else(|| {
        format!(
            "{name} must be an amount of US dollars, such as 25 or 0.50, or unset for no cap \
             (got \"{value}\")"
        )
    })
}

/// The budgets, refused when a model they would count has no price: before a call, a run
/// holds its worst cost at the model's prices (OpenRouter reports a call's cost only
/// once it is made), and an unpriced model's calls would count nothing.
fn budgets(
    vars: &Vars,
    llm: &isocrates_providers::LlmConfig,
) -> Result<isocrates_workflows::pipeline::budget::Budgets, String> {
    let budgets = isocrates_workflows::pipeline::budget::Budgets {
        per_run_usd: dollars(vars, "LLM_BUDGET_USD_PER_RUN")?,
        per_month_usd: dollars(vars, "LLM_BUDGET_USD_PER_MONTH")?,
        per_repo_month_usd: dollars(vars, "LLM_BUDGET_USD_PER_REPO_PER_MONTH")?,
    };
    if budgets.any() {
        use isocrates_providers::Kind;
        for tier in [&llm.planner, &llm.writer] {
            if tier.prices.is_none() && tier.kind != Kind::Static {
                return Err(format!(
                    "an LLM_BUDGET_USD_* cap is set but the {} model {} has no price, so its \
                     calls cannot be held to it: add it to LLM_PRICES as \
                     {}=input/output dollars per million tokens",
                    tier.tier.as_str(),
                    tier.model,
                    tier.model
                ));
            }
        }
    }
    Ok(budgets)
}

fn flag(vars: &Vars, name: &str, default: bool) -> Result<bool, String> {
    match get(vars, name).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(format!("{name} must be true or false (got \"{other}\")")),
    }
}

/// `DAILY_REFRESH_INTERVAL`: seconds, or a number with `s`, `m`, `h` or `d`; `0` or
/// `off` turns the refresh off.
fn refresh_interval(value: Option<&str>) -> Result<Option<std::time::Duration>, String> {
    let Some(value) = value.map(str::to_ascii_lowercase) else {
        return Ok(Some(std::time::Duration::from_secs(24 * 3600)));
    };
    if value == "off" || value == "0" {
        return Ok(None);
    }
    let (number, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => value.split_at(at),
        None => (value.as_str(), "s"),
    };
    let seconds = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    number
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0 && seconds > 0)
        .map(|n| Some(std::time::Duration::from_secs(n * seconds)))
        .ok_or_else(|| {
            format!(
                "DAILY_REFRESH_INTERVAL must be a duration such as 24h, 90m or 3600, or off (got \"{value}\")"
            )
        })
}

/// A retention in days (`default` when unset); `0` keeps forever (`None`).
fn retention_days(
    vars: &Vars,
    name: &str,
    default: u64,
) -> Result<Option<std::time::Duration>, String> {
    let days = match get(vars, name) {
        None => default,
        Some(v) => v.parse::<u64>().ok().filter(|d| *d <= 36_500).ok_or_else(|| {
            format!("{name} must be a number of days from 0 (keep forever) to 36500 (got \"{v}\")")
        })?,
    };
    Ok((days > 0).then(|| std::time::Duration::from_secs(days * 86_400)))
}

/// A size in bytes, at least 1024.
fn bytes(vars: &Vars, name: &str, default: u64) -> Result<u64, String> {
    match get(vars, name) {
        None => Ok(default),
        Some(v) => v.parse::<u64>().ok().filter(|&n| n >= 1024).ok_or_else(|| {
            format!("{name} must be a number of bytes, at least 1024 (got \"{v}\")")
        }),
    }
}

/// Reads a secret from `NAME` or from the file `NAME_FILE` names (as Docker secrets are
/// mounted); both set is an error.
pub fn secret(vars: &Vars, name: &str) -> Result<Option<SecretString>, String> {
    let file_var = format!("{name}_FILE");
    match (get(vars, name), get(vars, &file_var)) {
        (Some(_), Some(_)) => Err(format!("set either {name} or {file_var}, not both")),
        (Some(value), None) => Ok(Some(SecretString::from(value.to_string()))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{file_var} names {path}, which cannot be read: {e}"))?;
            let text = text.trim();
            if text.is_empty() {
                return Err(format!("{file_var} names {path}, which is empty"));
            }
            Ok(Some(SecretString::from(text.to_string())))
        }
        (None, None) => Ok(None),
    }
}

impl Config {
    /// Reads and validates the configuration from `vars`.
    pub fn from_vars(vars: &Vars) -> Result<Config, String> {
        let production = match get(vars, "ENVIRONMENT").map(str::to_ascii_lowercase).as_deref() {
            None | Some("development" | "dev" | "test") => false,
            Some("production" | "prod") => true,
            Some(other) => {
                return Err(format!(
                    "ENVIRONMENT must be development or production (got \"{other}\")"
                ));
            }
        };
        let port =
            match get(vars, "PORT") {
                None => 8000,
                Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| {
                    format!("PORT must be a number from 1 to 65535 (got \"{p}\")")
                })?,
            };
        let log_format = match get(vars, "LOG_FORMAT").map(str::to_ascii_lowercase).as_deref() {
            None | Some("text" | "pretty") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(format!("LOG_FORMAT must be text or json (got \"{other}\")"));
            }
        };
        let max_body_bytes = match get(vars, "MAX_BODY_BYTES") {
            None => isocrates_api::DEFAULT_MAX_BODY_BYTES,
            Some(v) => v.parse::<usize>().ok().filter(|&n| n >= 1024).ok_or_else(|| {
                format!("MAX_BODY_BYTES must be a number of bytes, at least 1024 (got \"{v}\")")
            })?,
        };
        let workers = match get(vars, "WORKERS") {
            None => DEFAULT_WORKERS,
            Some(v) => v.parse::<usize>().ok().filter(|&n| n <= 256).ok_or_else(|| {
                format!("WORKERS must be a number from 0 (no embedded worker) to 256 (got \"{v}\")")
            })?,
        };
        // The URL carries the database password, so it is a secret like the others.
        let database_url = secret(vars, "DATABASE_URL")?
            .map_or_else(|| "sqlite://isocrates.db".to_string(), |s| s.expose_secret().to_string());
        if !["sqlite:", "postgres://", "postgresql://"].iter().any(|p| database_url.starts_with(p))
        {
            return Err(
                "DATABASE_URL must start with sqlite:// or postgres:// (for example sqlite://isocrates.db)"
                    .to_string(),
            );
        }
        let prompts_dir = match get(vars, "PROMPTS_DIR") {
            None => None,
            Some(dir) if std::path::Path::new(dir).is_dir() => Some(PathBuf::from(dir)),
            Some(dir) => {
                return Err(format!(
                    "PROMPTS_DIR names {dir}, which is not a folder: point it at a folder of \
                     .j2 templates, or unset it to use the built-in ones"
                ));
            }
        };
        let mut git =
            isocrates_workflows::git::GitConfig::new(get(vars, "REPOS_DIR").unwrap_or("repos"));
        if let Some(hosts) = get(vars, "ALLOWED_GIT_HOSTS") {
            git.allowed_hosts = hosts
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect();
            if git.allowed_hosts.iter().any(|h| h == "*" || h.contains('/')) {
                return Err(format!(
                    "ALLOWED_GIT_HOSTS must list host names such as github.com,git.example.com (got \"{hosts}\")"
                ));
            }
        }
        git.allow_local = flag(vars, "ALLOW_LOCAL_REPOS", false)?;
        git.github_token = secret(vars, "GITHUB_TOKEN")?;
        git.max_repo_bytes = bytes(vars, "MAX_REPO_BYTES", git.max_repo_bytes)?;
        git.max_file_bytes = bytes(vars, "MAX_FILE_BYTES", git.max_file_bytes)?;
        let github_api_url = get(vars, "GITHUB_API_URL")
            .unwrap_or(isocrates_workflows::github::DEFAULT_API_URL)
            .trim_end_matches('/')
            .to_string();
        // The token goes wherever this points: plain http only to this machine.
        let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"].iter().any(|l| {
            github_api_url
                .strip_prefix(l)
                .is_some_and(|r| r.is_empty() || r.starts_with([':', '/']))
        });
        if !github_api_url.starts_with("https://") && !loopback {
            return Err(format!(
                "GITHUB_API_URL must be an https URL such as https://api.github.com (plain http only on loopback; got \"{github_api_url}\")"
            ));
        }
        let max_pages = match get(vars, "MAX_PAGES") {
            None => 16,
            Some(v) => {
                v.parse::<usize>().ok().filter(|n| (1..=200).contains(n)).ok_or_else(|| {
                    format!("MAX_PAGES must be a number from 1 to 200 (got \"{v}\")")
                })?
            }
        };
        let rate_limit = isocrates_api::RateLimitConfig {
            per_minute: match get(vars, "RATE_LIMIT_PER_MINUTE") {
                None => isocrates_api::rate_limit::DEFAULT_PER_MINUTE,
                Some(v) => v.parse::<u32>().ok().filter(|n| *n <= 1_000_000).ok_or_else(|| {
                    format!(
                        "RATE_LIMIT_PER_MINUTE must be a number of requests from 0 (off) to 1000000 (got \"{v}\")"
                    )
                })?,
            },
            trusted_proxies: isocrates_api::rate_limit::parse_trusted_proxies(
                get(vars, "TRUSTED_PROXIES").unwrap_or(""),
            )?,
        };
        let llm = isocrates_providers::config::from_vars(vars, |name| secret(vars, name))?;
        let budgets = budgets(vars, &llm)?;
        let config = Config {
            database_url,
            host: get(vars, "HOST").unwrap_or("127.0.0.1").to_string(),
            port,
            auth_enabled: flag(vars, "AUTH_ENABLED", true)?,
            public_read: flag(vars, "PUBLIC_READ", false)?,
            jwt_secret: secret(vars, "JWT_SECRET_KEY")?,
            production,
            log_level: get(vars, "LOG_LEVEL").map(str::to_string),
            log_format,
            max_body_bytes,
            workers,
            llm,
            prompts_dir,
            git,
            github_api_url,
            max_pages,
            webhook_secret: secret(vars, "GITHUB_WEBHOOK_SECRET")?,
            refresh_interval: refresh_interval(get(vars, "DAILY_REFRESH_INTERVAL"))?,
            embeddings: isocrates_providers::embed::from_vars(vars, |name| secret(vars, name))?,
            trash_retention: retention_days(vars, "TRASH_RETENTION_DAYS", 30)?,
            audit_retention: retention_days(vars, "AUDIT_RETENTION_DAYS", 365)?,
            rate_limit,
            cors_origins: cors_origins(get(vars, "CORS_ALLOWED_ORIGINS").unwrap_or(""))?,
            base_path: isocrates_api::web::base_path(get(vars, "BASE_PATH").unwrap_or(""))?,
            budgets,
        };
        config.check_production()?;
        Ok(config)
    }

    /// With `ENVIRONMENT=production`, refuses what is unsafe to expose, all at once.
    fn check_production(&self) -> Result<(), String> {
        if !self.production {
            return Ok(());
        }
        let mut problems = Vec::new();
        if !self.auth_enabled {
            problems.push("AUTH_ENABLED must be true".to_string());
        }
        match &self.jwt_secret {
            None => problems.push(format!(
                "JWT_SECRET_KEY (or JWT_SECRET_KEY_FILE) must be set to a random secret of at least {MIN_JWT_SECRET} bytes"
            )),
            Some(s) if s.expose_secret().len() < MIN_JWT_SECRET => problems.push(format!(
                "JWT_SECRET_KEY must be at least {MIN_JWT_SECRET} bytes (generate one with: openssl rand -hex 32)"
            )),
            Some(s) if !looks_random(s.expose_secret()) => problems.push(
                "JWT_SECRET_KEY must be a random secret, not an example or a repeated pattern \
                 (generate one with: openssl rand -hex 32)"
                    .to_string(),
            ),
            Some(_) => {}
        }
        if self.webhook_secret.is_none() {
            problems.push(
                "GITHUB_WEBHOOK_SECRET (or GITHUB_WEBHOOK_SECRET_FILE) must be set to the secret \
                 GitHub signs webhook deliveries with"
                    .to_string(),
            );
        }
        let local: Vec<&str> =
            self.cors_origins.iter().map(String::as_str).filter(|o| is_local_origin(o)).collect();
        if !local.is_empty() {
            problems.push(format!(
                "CORS_ALLOWED_ORIGINS must list only the real origins of your pages, not {}",
                local.join(", ")
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("ENVIRONMENT=production refuses to start: {}", problems.join("; ")))
        }
    }

    /// The address to listen on.
    pub fn listen_addr(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Secrets shown in examples, which a deployment must not keep.
const EXAMPLE_SECRETS: [&str; 6] =
    ["change-me", "changeme", "secret", "your-secret-key", "jwt-secret", "development"];

/// Whether `secret` could have come from a random generator: not an example value, and
/// not a short pattern repeated (a random 32 bytes, even in hex, uses a dozen symbols).
fn looks_random(secret: &str) -> bool {
    let lower = secret.to_ascii_lowercase();
    if EXAMPLE_SECRETS.iter().any(|e| lower.contains(e)) {
        return false;
    }
    let distinct: std::collections::HashSet<char> = secret.chars().collect();
    distinct.len() >= 10
}

/// Reads `CORS_ALLOWED_ORIGINS`: origins such as `https://docs.example.com`, comma
/// separated. `*` is refused whatever the environment: credentials are allowed, so every
/// origin must be named.
fn cors_origins(value: &str) -> Result<Vec<String>, String> {
    let mut origins = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item.contains('*') {
            return Err(format!(
                "CORS_ALLOWED_ORIGINS must name each origin, such as https://docs.example.com; \
                 \"*\" would let any site call the API with its users' credentials (got \"{item}\")"
            ));
        }
        let origin = item.trim_end_matches('/').to_ascii_lowercase();
        let host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
        let valid = host.is_some_and(|h| {
            !h.is_empty()
                && !h.contains(['/', '?', '#', '@', ' '])
                && axum::http::HeaderValue::from_str(&origin).is_ok()
        });
        if !valid {
            return Err(format!(
                "CORS_ALLOWED_ORIGINS must list origins as scheme://host[:port], such as \
                 https://docs.example.com (got \"{item}\")"
            ));
        }
        origins.push(origin);
    }
    Ok(origins)
}

/// Whether `origin` is a page on the machine itself, which production has no use for.
fn is_local_origin(origin: &str) -> bool {
    let host = origin.split_once("://").map_or(origin, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split_once(']').map_or(host, |(h, _)| h).trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or(host)
    };
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "0.0.0.0"
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_serve_sqlite_on_port_8000_with_auth() {
        let c = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(c.database_url, "sqlite://isocrates.db");
        assert_eq!(c.port, 8000);
        assert!(c.auth_enabled);
        assert!(!c.public_read);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.workers, DEFAULT_WORKERS);
        assert_eq!(Config::from_vars(&vars(&[("WORKERS", "0")])).unwrap().workers, 0);
        assert_eq!(c.trash_retention.map(|d| d.as_secs()), Some(30 * 86_400));
        assert_eq!(c.rate_limit.per_minute, 60);
        assert!(c.rate_limit.trusted_proxies.is_empty() && c.cors_origins.is_empty());
        let forever = Config::from_vars(&vars(&[("TRASH_RETENTION_DAYS", "0")])).unwrap();
        assert_eq!(forever.trash_retention, None);
        assert_eq!(c.audit_retention.map(|d| d.as_secs()), Some(365 * 86_400));
    }

    #[test]
    fn the_refresh_interval_reads_durations_and_off() {
        let of = |v| refresh_interval(Some(v)).unwrap().map(|d| d.as_secs());
        assert_eq!(refresh_interval(None).unwrap().map(|d| d.as_secs()), Some(86_400));
        assert_eq!(of("90m"), Some(5400));
        assert_eq!(of("3600"), Some(3600));
        assert_eq!(of("2d"), Some(172_800));
        assert_eq!(of("off"), None);
        assert!(refresh_interval(Some("-1h")).is_err());
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("PORT", "eighty"),
            ("PORT", "0"),
            ("AUTH_ENABLED", "maybe"),
            ("LOG_FORMAT", "xml"),
            ("ENVIRONMENT", "staging"),
            ("DATABASE_URL", "mysql://x"),
            ("MAX_BODY_BYTES", "-1"),
            ("WORKERS", "many"),
            ("WORKERS", "-1"),
            ("LLM_PROVIDER", "gemini"),
            ("PROMPTS_DIR", "/no/such/folder"),
            ("ALLOWED_GIT_HOSTS", "*"),
            ("ALLOW_LOCAL_REPOS", "sometimes"),
            ("MAX_REPO_BYTES", "a lot"),
            ("MAX_PAGES", "0"),
            ("DAILY_REFRESH_INTERVAL", "often"),
            ("GITHUB_API_URL", "api.github.com"),
            ("TRASH_RETENTION_DAYS", "a month"),
            ("AUDIT_RETENTION_DAYS", "-1"),
            ("EMBEDDING_PROVIDER", "word2vec"),
            ("GITHUB_API_URL", "http://ghe.example.com"),
            ("GITHUB_API_URL", "http://127.0.0.1.example.com"),
            ("LLM_API_KEY", "sk-without-a-provider"),
            ("RATE_LIMIT_PER_MINUTE", "lots"),
            ("RATE_LIMIT_PER_MINUTE", "-5"),
            ("TRUSTED_PROXIES", "the proxy"),
            ("CORS_ALLOWED_ORIGINS", "*"),
            ("CORS_ALLOWED_ORIGINS", "https://*.example.com"),
            ("CORS_ALLOWED_ORIGINS", "docs.example.com"),
            ("CORS_ALLOWED_ORIGINS", "https://docs.example.com/app"),
        ] {
            let err = Config::from_vars(&vars(&[(name, value)])).unwrap_err();
            assert!(err.contains(name), "{err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn production_refuses_unsafe_settings_all_together() {
        let err = Config::from_vars(&vars(&[
            ("ENVIRONMENT", "production"),
            ("AUTH_ENABLED", "false"),
            ("JWT_SECRET_KEY", "short"),
        ]))
        .unwrap_err();
        assert!(err.contains("AUTH_ENABLED") && err.contains("JWT_SECRET_KEY"), "{err}");
        assert!(err.contains("GITHUB_WEBHOOK_SECRET"), "{err}");
        assert!(!err.contains('\n'));
        let random = "3f9a1c7e5b2d8046af19c3e7d5b2084f6a1c9e3d7b5f2086";
        let ok = Config::from_vars(&vars(&[
            ("ENVIRONMENT", "production"),
            ("JWT_SECRET_KEY", random),
            ("GITHUB_WEBHOOK_SECRET", "whsec"),
            ("CORS_ALLOWED_ORIGINS", "https://docs.example.com"),
        ]));
        assert!(ok.is_ok(), "{ok:?}");
        for (name, value) in [
            ("JWT_SECRET_KEY", "k".repeat(40)),
            ("JWT_SECRET_KEY", "change-me-change-me-change-me-change-me".to_string()),
            ("JWT_SECRET_KEY", "abababababababababababababababababab".to_string()),
            ("CORS_ALLOWED_ORIGINS", "https://docs.example.com,http://localhost:3000".to_string()),
            ("CORS_ALLOWED_ORIGINS", "http://127.0.0.1:8080".to_string()),
            ("CORS_ALLOWED_ORIGINS", "http://[::1]:8080".to_string()),
        ] {
            let mut v = vars(&[
                ("ENVIRONMENT", "production"),
                ("JWT_SECRET_KEY", random),
                ("GITHUB_WEBHOOK_SECRET", "whsec"),
            ]);
            v.insert(name.to_string(), value.clone());
            let err = Config::from_vars(&v).unwrap_err();
            assert!(err.contains(name), "{value}: {err}");
        }
        // Development allows a local page.
        let dev = vars(&[("CORS_ALLOWED_ORIGINS", "http://localhost:3000")]);
        assert_eq!(Config::from_vars(&dev).unwrap().cors_origins, ["http://localhost:3000"]);
    }

    #[test]
    fn budgets_read_dollars_and_need_priced_models() {
        let none = Config::from_vars(&vars(&[])).unwrap().budgets;
        assert!(!none.any());
        let capped = Config::from_vars(&vars(&[
            ("LLM_BUDGET_USD_PER_RUN", "0.50"),
            ("LLM_BUDGET_USD_PER_MONTH", "$25"),
            ("LLM_BUDGET_USD_PER_REPO_PER_MONTH", "0"),
        ]))
        .unwrap()
        .budgets;
        assert_eq!(
            (capped.per_run_usd, capped.per_month_usd, capped.per_repo_month_usd),
            (Some(0.5), Some(25.0), Some(0.0))
        );
        for (name, value) in
            [("LLM_BUDGET_USD_PER_RUN", "-1"), ("LLM_BUDGET_USD_PER_MONTH", "lots")]
        {
            let err = Config::from_vars(&vars(&[(name, value)])).unwrap_err();
            assert!(err.contains(name), "{err}");
        }
        let model =
            [("LLM_PROVIDER", "ollama"), ("LLM_MODEL", "llama3"), ("LLM_BUDGET_USD_PER_RUN", "1")];
        let err = Config::from_vars(&vars(&model)).unwrap_err();
        assert!(err.contains("LLM_PRICES") && err.contains("llama3"), "{err}");
        let priced = [&model[..], &[("LLM_PRICES", "llama3=0.1/0.2")]].concat();
        assert!(Config::from_vars(&vars(&priced)).is_ok());
    }

    #[test]
    fn secrets_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt");
        std::fs::write(&path, "from-a-file\n").unwrap();
        let c =
            Config::from_vars(&vars(&[("JWT_SECRET_KEY_FILE", path.to_str().unwrap())])).unwrap();
        assert_eq!(c.jwt_secret.unwrap().expose_secret(), "from-a-file");
        let both = vars(&[("JWT_SECRET_KEY", "a"), ("JWT_SECRET_KEY_FILE", "/x")]);
        assert!(Config::from_vars(&both).unwrap_err().contains("JWT_SECRET_KEY_FILE"));
        let missing = vars(&[("JWT_SECRET_KEY_FILE", "/nonexistent/secret")]);
        assert!(Config::from_vars(&missing).unwrap_err().contains("JWT_SECRET_KEY_FILE"));
    }
}
