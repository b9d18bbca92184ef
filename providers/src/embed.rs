//! Embeddings: a vector of each text, for finding documents that are alike. Chosen by
//! `EMBEDDING_PROVIDER` (`openai`, `openai-compatible` or `ollama`; unset: none) and
//! `EMBEDDING_MODEL`, spoken over each provider's own wire format: OpenAI's `/embeddings`
//! or Ollama's `/api/embed`. Failures are the [`CallError`]s of chat calls.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::CallError;
use crate::http::{HttpFailure, transport_error};

/// The wire format of an embedding server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingKind {
    /// OpenAI's API, or any server that speaks it.
    OpenAi,
    /// Ollama's native API.
    Ollama,
}

/// How embeddings are made.
#[derive(Debug, Clone)]
pub struct EmbeddingConfig {
    /// The wire format.
    pub kind: EmbeddingKind,
    /// The server's root (`https://api.openai.com/v1`, `http://localhost:11434`).
    pub base_url: String,
    /// `EMBEDDING_MODEL`.
    pub model: String,
    /// The key, sent as a bearer token.
    pub api_key: Option<SecretString>,
    /// The variable the key came from, for messages.
    pub key_variable: String,
    /// How long one request may take.
    pub timeout: Duration,
}

/// Reads the `EMBEDDING_*` variables; `None` when embeddings are off. The key and base URL
/// default to the `LLM_*` ones when the provider is the same kind.
pub fn from_vars(
    vars: &HashMap<String, String>,
    secret: impl Fn(&str) -> Result<Option<SecretString>, String>,
) -> Result<Option<EmbeddingConfig>, String> {
    let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let provider = match get("EMBEDDING_PROVIDER") {
        None | Some("none") | Some("off") => return Ok(None),
        Some(p) => p,
    };
    let (kind, default_url) = match provider {
        "openai" => (EmbeddingKind::OpenAi, Some("https://api.openai.com/v1")),
        "openai-compatible" => (EmbeddingKind::OpenAi, None),
        "ollama" => (EmbeddingKind::Ollama, Some("http://localhost:11434")),
        other => {
            return Err(format!(
                "EMBEDDING_PROVIDER must be openai, openai-compatible, ollama or none (got \"{other}\")"
            ));
        }
    };
    let model = get("EMBEDDING_MODEL")
        .ok_or_else(|| {
            format!(
                "EMBEDDING_MODEL must name the embedding model of EMBEDDING_PROVIDER={provider}"
            )
        })?
        .to_string();
    let same_as_llm = get("LLM_PROVIDER") == Some(provider);
    let base_url = get("EMBEDDING_BASE_URL")
        .or_else(|| same_as_llm.then(|| get("LLM_BASE_URL")).flatten())
        .or(default_url)
        .ok_or_else(|| {
            "EMBEDDING_BASE_URL must name the server for EMBEDDING_PROVIDER=openai-compatible"
                .to_string()
        })?
        .trim_end_matches('/')
        .to_string();
    let (api_key, key_variable) = match secret("EMBEDDING_API_KEY")? {
        Some(key) => (Some(key), "EMBEDDING_API_KEY"),
        None if same_as_llm || provider == "openai" => (secret("LLM_API_KEY")?, "LLM_API_KEY"),
        None => (None, "EMBEDDING_API_KEY"),
    };
    if provider == "openai" && api_key.is_none() {
        return Err("EMBEDDING_PROVIDER=openai needs EMBEDDING_API_KEY (or LLM_API_KEY)".into());
    }
    let timeout = match get("EMBEDDING_TIMEOUT_SECONDS") {
        None => Duration::from_secs(60),
        Some(v) => {
            Duration::from_secs(v.parse::<u64>().ok().filter(|s| *s > 0).ok_or_else(|| {
                format!("EMBEDDING_TIMEOUT_SECONDS must be a number of seconds (got \"{v}\")")
            })?)
        }
    };
    Ok(Some(EmbeddingConfig {
        kind,
        base_url,
        model,
        api_key,
        key_variable: key_variable.to_string(),
        timeout,
    }))
}

/// A client of an embedding server.
#[derive(Debug, Clone)]
pub struct Embedder {
    config: EmbeddingConfig,
    http: reqwest::Client,
}

impl Embedder {
    /// A client for `config`.
    pub fn new(config: EmbeddingConfig) -> Result<Embedder, String> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Embedder { config, http })
    }

    /// The model's name, as stored beside each vector.
    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// One vector per text, in order.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, CallError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (url, body) = match self.config.kind {
            EmbeddingKind::OpenAi => (
                format!("{}/embeddings", self.config.base_url),
                json!({"model": self.config.model, "input": texts}),
            ),
            EmbeddingKind::Ollama => (
                format!("{}/api/embed", self.config.base_url),
                json!({"model": self.config.model, "input": texts}),
            ),
        };
        let mut request = self.http.post(url).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let timeout = self.config.timeout;
        let response = request.send().await.map_err(|e| transport_error(&e, timeout))?;
        if !response.status().is_success() {
            return Err(HttpFailure::read(response)
                .await
                .into_error(&self.config.key_variable, timeout));
        }
        let answer: Value = response.json().await.map_err(|e| transport_error(&e, timeout))?;
        let vectors = match self.config.kind {
            // OpenAI may answer out of order: each item says its index.
            EmbeddingKind::OpenAi => {
                let mut items: Vec<(u64, Vec<f32>)> = answer["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|item| (item["index"].as_u64().unwrap_or(0), floats(&item["embedding"])))
                    .collect();
                items.sort_by_key(|(index, _)| *index);
                items.into_iter().map(|(_, v)| v).collect::<Vec<_>>()
            }
            EmbeddingKind::Ollama => {
                answer["embeddings"].as_array().into_iter().flatten().map(floats).collect()
            }
        };
        if vectors.len() != texts.len() || vectors.iter().any(Vec::is_empty) {
            return Err(CallError::Malformed(format!(
                "the embedding server gave {} vectors for {} texts",
                vectors.len(),
                texts.len()
            )));
        }
        Ok(vectors)
    }
}

fn floats(value: &Value) -> Vec<f32> {
    value.as_array().into_iter().flatten().filter_map(Value::as_f64).map(|f| f as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn read(pairs: &[(&str, &str)]) -> Result<Option<EmbeddingConfig>, String> {
        let v = vars(pairs);
        from_vars(&v, |n| Ok(v.get(n).cloned().map(SecretString::from)))
    }

    #[test]
    fn embeddings_are_off_unless_a_provider_and_model_are_named() {
        assert!(read(&[]).unwrap().is_none());
        assert!(read(&[("EMBEDDING_PROVIDER", "none")]).unwrap().is_none());
        let e = read(&[("EMBEDDING_PROVIDER", "ollama")]).unwrap_err();
        assert!(e.contains("EMBEDDING_MODEL"), "{e}");
        let e = read(&[("EMBEDDING_PROVIDER", "gemini"), ("EMBEDDING_MODEL", "m")]).unwrap_err();
        assert!(e.contains("EMBEDDING_PROVIDER"), "{e}");
        let e = read(&[("EMBEDDING_PROVIDER", "openai"), ("EMBEDDING_MODEL", "m")]).unwrap_err();
        assert!(e.contains("EMBEDDING_API_KEY"), "{e}");
        let o = read(&[("EMBEDDING_PROVIDER", "ollama"), ("EMBEDDING_MODEL", "nomic")])
            .unwrap()
            .unwrap();
        assert_eq!(
            (o.kind, o.base_url.as_str()),
            (EmbeddingKind::Ollama, "http://localhost:11434")
        );
        let shared = read(&[
            ("LLM_PROVIDER", "openai-compatible"),
            ("LLM_BASE_URL", "http://127.0.0.1:9/v1/"),
            ("LLM_API_KEY", "k"),
            ("EMBEDDING_PROVIDER", "openai-compatible"),
            ("EMBEDDING_MODEL", "e"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            shared.base_url, "http://127.0.0.1:9/v1",
            "the LLM server when it is the same kind"
        );
        assert_eq!(shared.key_variable, "LLM_API_KEY");
    }
}
