//! Which provider and model each tier uses, read from the `LLM_*` variables: one provider
//! for both tiers (`LLM_PROVIDER`, `LLM_BASE_URL`, `LLM_API_KEY`, `LLM_MODEL`), each
//! overridable per tier (`LLM_PLANNER_MODEL`, `LLM_WRITER_BASE_URL`, ...).

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;

use crate::Tier;

/// The kinds of backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// OpenAI's API.
    OpenAi,
    /// OpenRouter, which speaks OpenAI's API and reports each call's cost.
    OpenRouter,
    /// Any server that speaks OpenAI's chat completions (vLLM, LM Studio, llama.cpp, ...).
    OpenAiCompatible,
    /// Ollama's native API.
    Ollama,
    /// No model: pages are built from the analysis alone.
    Static,
}

impl Kind {
    /// Parses `LLM_PROVIDER`.
    pub fn parse(name: &str) -> Option<Kind> {
        match name.trim().to_ascii_lowercase().as_str() {
            "openai" => Some(Kind::OpenAi),
            "openrouter" => Some(Kind::OpenRouter),
            "openai-compatible" | "openai_compatible" | "compatible" => {
                Some(Kind::OpenAiCompatible)
            }
            "ollama" => Some(Kind::Ollama),
            "static" | "none" => Some(Kind::Static),
            _ => None,
        }
    }

    /// The name configuration uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OpenAi => "openai",
            Kind::OpenRouter => "openrouter",
            Kind::OpenAiCompatible => "openai-compatible",
            Kind::Ollama => "ollama",
            Kind::Static => "static",
        }
    }

    /// The base URL used when none is configured.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Kind::OpenAi => Some("https://api.openai.com/v1"),
            Kind::OpenRouter => Some("https://openrouter.ai/api/v1"),
            Kind::Ollama => Some("http://localhost:11434"),
            Kind::OpenAiCompatible | Kind::Static => None,
        }
    }

    /// Whether calls need a key.
    pub fn needs_key(self) -> bool {
        matches!(self, Kind::OpenAi | Kind::OpenRouter)
    }
}

/// What a model costs, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Per million tokens sent.
    pub input_per_million: f64,
    /// Per million tokens received.
    pub output_per_million: f64,
}

impl Prices {
    /// The cost of a call.
    pub fn cost(&self, usage: crate::Usage) -> f64 {
        (usage.input_tokens as f64 * self.input_per_million
            + usage.output_tokens as f64 * self.output_per_million)
            / 1_000_000.0
    }
}

/// The provider and model of one tier.
#[derive(Debug, Clone)]
pub struct TierConfig {
    /// The tier.
    pub tier: Tier,
    /// The backend.
    pub kind: Kind,
    /// The model; empty for `static`.
    pub model: String,
    /// Where the backend answers.
    pub base_url: String,
    /// The key, when there is one.
    pub api_key: Option<SecretString>,
    /// The variable the key came from (or should come from), for error messages.
    pub key_variable: String,
    /// The model's prices, when configured.
    pub prices: Option<Prices>,
}

/// Everything about models the configuration says.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// The planner tier.
    pub planner: TierConfig,
    /// The writer tier.
    pub writer: TierConfig,
    /// `LLM_TIMEOUT_SECONDS`: how long one request may take (120 s by default).
    pub timeout: Duration,
    /// `LLM_MAX_CONCURRENCY`: requests in flight per provider (4 by default).
    pub max_concurrency: usize,
}

/// Reads the `LLM_*` variables. `secret(NAME)` reads `NAME` or the file `NAME_FILE` names.
pub fn from_vars(
    vars: &HashMap<String, String>,
    secret: impl Fn(&str) -> Result<Option<SecretString>, String>,
) -> Result<LlmConfig, String> {
    let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let api_key = secret("LLM_API_KEY")?;
    let openrouter_key = secret("OPENROUTER_API_KEY")?;
    let kind = match get("LLM_PROVIDER") {
        Some(name) => Kind::parse(name).ok_or_else(|| {
            format!(
                "LLM_PROVIDER must be openai, openrouter, openai-compatible, ollama or static \
                 (got \"{name}\")"
            )
        })?,
        None if api_key.is_some() || openrouter_key.is_some() => {
            let variable = if api_key.is_some() { "LLM_API_KEY" } else { "OPENROUTER_API_KEY" };
            return Err(format!(
                "{variable} is set but LLM_PROVIDER is not: set LLM_PROVIDER to openai, \
                 openrouter, openai-compatible or ollama"
            ));
        }
        None => Kind::Static,
    };
    // OpenRouter's own key goes to OpenRouter only, never to another server.
    let shared_key = match api_key {
        Some(key) => Some((key, "LLM_API_KEY".to_string())),
        None if kind == Kind::OpenRouter => {
            openrouter_key.map(|k| (k, "OPENROUTER_API_KEY".to_string()))
        }
        None => None,
    };
    let timeout = match get("LLM_TIMEOUT_SECONDS") {
        None => Duration::from_secs(120),
        Some(v) => {
            Duration::from_secs(v.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
                format!("LLM_TIMEOUT_SECONDS must be a number of seconds above 0 (got \"{v}\")")
            })?)
        }
    };
    let max_concurrency = match get("LLM_MAX_CONCURRENCY") {
        None => 4,
        Some(v) => {
            v.parse::<usize>().ok().filter(|&n| (1..=256).contains(&n)).ok_or_else(|| {
                format!("LLM_MAX_CONCURRENCY must be a number from 1 to 256 (got \"{v}\")")
            })?
        }
    };
    let prices = parse_prices(get("LLM_PRICES"))?;
    let tier = |tier: Tier| -> Result<TierConfig, String> {
        let upper = tier.as_str().to_ascii_uppercase();
        let own = |what: &str| get(&format!("LLM_{upper}_{what}")).map(str::to_string);
        let (api_key, key_variable) = match secret(&format!("LLM_{upper}_API_KEY"))? {
            Some(key) => (Some(key), format!("LLM_{upper}_API_KEY")),
            None => match &shared_key {
                Some((key, variable)) => (Some(key.clone()), variable.clone()),
                None => (None, "LLM_API_KEY".to_string()),
            },
        };
        let model =
            own("MODEL").or_else(|| get("LLM_MODEL").map(str::to_string)).unwrap_or_default();
        let base_url = own("BASE_URL")
            .or_else(|| get("LLM_BASE_URL").map(str::to_string))
            .or_else(|| kind.default_base_url().map(str::to_string))
            .unwrap_or_default();
        if kind != Kind::Static {
            if model.is_empty() {
                return Err(format!(
                    "LLM_PROVIDER={} needs a model: set LLM_MODEL (or LLM_{upper}_MODEL)",
                    kind.as_str()
                ));
            }
            if base_url.is_empty() {
                return Err(format!(
                    "LLM_PROVIDER={} needs a server: set LLM_BASE_URL (or LLM_{upper}_BASE_URL)",
                    kind.as_str()
                ));
            }
            if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                return Err(format!(
                    "LLM_BASE_URL must be an http or https URL (got \"{base_url}\")"
                ));
            }
            if kind.needs_key() && api_key.is_none() {
                return Err(format!(
                    "LLM_PROVIDER={} needs a key: set LLM_API_KEY (or LLM_API_KEY_FILE)",
                    kind.as_str()
                ));
            }
        }
        let prices = prices.get(&model).copied();
        Ok(TierConfig { tier, kind, model, base_url, api_key, key_variable, prices })
    };
    Ok(LlmConfig {
        planner: tier(Tier::Planner)?,
        writer: tier(Tier::Writer)?,
        timeout,
        max_concurrency,
    })
}

/// Parses `LLM_PRICES`: `model=input/output` pairs, comma separated, in US dollars per
/// million tokens (`gpt-4o-mini=0.15/0.6`).
fn parse_prices(value: Option<&str>) -> Result<HashMap<String, Prices>, String> {
    let mut prices = HashMap::new();
    let Some(value) = value else { return Ok(prices) };
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = pair.rsplit_once('=').and_then(|(model, price)| {
            let (input, output) = price.split_once('/')?;
            let input = input.trim().parse::<f64>().ok().filter(|p| *p >= 0.0)?;
            let output = output.trim().parse::<f64>().ok().filter(|p| *p >= 0.0)?;
            Some((
                model.trim().to_string(),
                Prices { input_per_million: input, output_per_million: output },
            ))
        });
        let (model, price) = parsed.ok_or_else(|| {
            format!(
                "LLM_PRICES must list model=input/output in dollars per million tokens, such as \
                 gpt-4o-mini=0.15/0.6 (got \"{pair}\")"
            )
        })?;
        prices.insert(model, price);
    }
    Ok(prices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn read(vars: &[(&str, &str)]) -> Result<LlmConfig, String> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = map.clone();
        from_vars(&map, move |name| Ok(lookup.get(name).map(|v| SecretString::from(v.clone()))))
    }

    #[test]
    fn nothing_configured_is_the_static_provider() {
        let config = read(&[]).unwrap();
        assert_eq!(config.planner.kind, Kind::Static);
        assert_eq!(config.writer.kind, Kind::Static);
    }

    #[test]
    fn a_key_without_a_provider_says_which_variable_to_set() {
        let error = read(&[("LLM_API_KEY", "sk-1")]).unwrap_err();
        assert!(error.contains("LLM_PROVIDER"), "{error}");
        assert!(!error.contains("sk-1"), "never the key itself");
    }

    #[test]
    fn tiers_share_the_provider_and_override_their_own_parts() {
        let config = read(&[
            ("LLM_PROVIDER", "openrouter"),
            ("LLM_API_KEY", "sk-shared"),
            ("LLM_MODEL", "small"),
            ("LLM_PLANNER_MODEL", "large"),
            ("LLM_WRITER_API_KEY", "sk-writer"),
            ("LLM_PRICES", "large=3/15, small=0.15/0.6"),
        ])
        .unwrap();
        assert_eq!(config.planner.model, "large");
        assert_eq!(config.writer.model, "small");
        assert_eq!(config.planner.base_url, "https://openrouter.ai/api/v1");
        assert_eq!(config.planner.api_key.as_ref().unwrap().expose_secret(), "sk-shared");
        assert_eq!(config.writer.key_variable, "LLM_WRITER_API_KEY");
        let cost = config
            .planner
            .prices
            .unwrap()
            .cost(crate::Usage { input_tokens: 1_000_000, output_tokens: 100_000 });
        assert!((cost - 4.5).abs() < 1e-9);
    }

    #[test]
    fn the_openrouter_key_goes_to_openrouter_only() {
        let routed = read(&[
            ("LLM_PROVIDER", "openrouter"),
            ("OPENROUTER_API_KEY", "sk-or"),
            ("LLM_MODEL", "m"),
        ])
        .unwrap();
        assert_eq!(routed.writer.api_key.as_ref().unwrap().expose_secret(), "sk-or");
        assert_eq!(routed.writer.key_variable, "OPENROUTER_API_KEY");
        let local = read(&[
            ("LLM_PROVIDER", "ollama"),
            ("OPENROUTER_API_KEY", "sk-or"),
            ("LLM_MODEL", "m"),
        ])
        .unwrap();
        assert!(local.writer.api_key.is_none(), "not sent to another server");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (vars, variable) in [
            (vec![("LLM_PROVIDER", "gemini")], "LLM_PROVIDER"),
            (vec![("LLM_PROVIDER", "openai"), ("LLM_API_KEY", "k")], "LLM_MODEL"),
            (vec![("LLM_PROVIDER", "openai"), ("LLM_MODEL", "m")], "LLM_API_KEY"),
            (vec![("LLM_PROVIDER", "openai-compatible"), ("LLM_MODEL", "m")], "LLM_BASE_URL"),
            (vec![("LLM_TIMEOUT_SECONDS", "soon")], "LLM_TIMEOUT_SECONDS"),
            (vec![("LLM_MAX_CONCURRENCY", "0")], "LLM_MAX_CONCURRENCY"),
            (vec![("LLM_PRICES", "gpt=cheap")], "LLM_PRICES"),
        ] {
            let error = read(&vars).unwrap_err();
            assert!(error.contains(variable), "{vars:?}: {error}");
        }
    }
}
