//! Ollama's native chat API, `POST /api/chat`, in the wire format of `ollama-rs`.
//!
//! The request is `ollama-rs`'s own type; the answer is read into a type of ours that
//! tolerates the counters Ollama leaves out. The exchange itself goes through
//! our HTTP client rather than `ollama_rs::Ollama`, because that client turns every failed
//! answer into a bare text: the status and `Retry-After` that decide whether and when to
//! try again would be lost, and a refused key could not be told from a missing model.
//!
//! A JSON schema goes in Ollama's `format` field, which constrains the model's output, and
//! the answer's `prompt_eval_count` and `eval_count` are the call's tokens. A key, when one
//! is configured (Ollama behind an authenticating proxy), is sent as a bearer token.

use std::time::Duration;

use ollama_rs::generation::chat::ChatMessage;
use ollama_rs::generation::chat::request::ChatMessageRequest;
use ollama_rs::generation::parameters::FormatType;
use ollama_rs::models::ModelOptions;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::http::{HttpFailure, start_of, transport_error};
use crate::{CallError, CallFuture, Kind, Provider, Reply, Request, TierConfig, Usage};

/// A model served by Ollama.
#[derive(Debug)]
pub struct OllamaChat {
    model: String,
    url: String,
    api_key: Option<SecretString>,
    key_variable: String,
    timeout: Duration,
    http: reqwest::Client,
}

impl OllamaChat {
    /// A client for `tier`'s model, giving up on a request after `timeout`.
    pub fn new(tier: &TierConfig, timeout: Duration) -> Result<OllamaChat, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(OllamaChat {
            model: tier.model.clone(),
            url: format!("{}/api/chat", ollama_root(&tier.base_url)),
            api_key: tier.api_key.clone(),
            key_variable: tier.key_variable.clone(),
            timeout,
            http,
        })
    }

    fn body(&self, request: &Request) -> ChatMessageRequest {
        let messages = vec![
            ChatMessage::system(request.system.clone()),
            ChatMessage::user(request.prompt.clone()),
        ];
        let mut body = ChatMessageRequest::new(self.model.clone(), messages);
        if let Some(max) = request.max_tokens {
            body =
                body.options(ModelOptions::default().num_predict(max.min(i32::MAX as u32) as i32));
        }
        if let Some((_, schema)) = &request.schema {
            // A schema Ollama cannot read as one still asks for JSON.
            let format =
                serde_json::from_value::<FormatType>(schema.clone()).unwrap_or(FormatType::Json);
            body = body.format(format);
        }
        body
    }

    async fn send(&self, request: &Request) -> Result<Reply, CallError> {
        let mut post = self.http.post(&self.url).json(&self.body(request));
        if let Some(key) = &self.api_key {
            post = post.bearer_auth(key.expose_secret());
        }
        let response = post.send().await.map_err(|e| transport_error(&e, self.timeout))?;
        if !response.status().is_success() {
            let failure = HttpFailure::read(response).await;
            return Err(failure.into_error(&self.key_variable, self.timeout));
        }
        let body = response.bytes().await.map_err(|e| transport_error(&e, self.timeout))?;
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| {
            CallError::Malformed(format!(
                "{e}; the answer began: {}",
                start_of(&String::from_utf8_lossy(&body))
            ))
        })?;
        Ok(Reply {
            text: answer.message.content,
            model: answer.model.filter(|m| !m.is_empty()).unwrap_or_else(|| self.model.clone()),
            usage: Usage {
                input_tokens: answer.prompt_eval_count.unwrap_or(0),
                output_tokens: answer.eval_count.unwrap_or(0),
            },
            reported_cost_usd: None,
            truncated: answer.done_reason.as_deref() == Some("length"),
        })
    }
}

/// The parts of Ollama's answer a call uses. `ollama_rs`'s own answer type needs all six
/// counters to read any of them, and Ollama leaves out those that are zero (a prompt served
/// from its cache has no `prompt_eval_count`): read that way, a cached call would count no
/// tokens at all.
#[derive(Debug, Deserialize)]
struct Answer {
    model: Option<String>,
    message: AnswerMessage,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct AnswerMessage {
    #[serde(default)]
    content: String,
}

impl Provider for OllamaChat {
    fn kind(&self) -> Kind {
        Kind::Ollama
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn enforces_schema(&self) -> bool {
        true
    }

    fn call<'a>(&'a self, request: &'a Request) -> CallFuture<'a> {
        Box::pin(self.send(request))
    }
}

/// The server's root from a configured base URL, which operators often give with the
/// `/v1` or `/api` of another client's settings.
fn ollama_root(base_url: &str) -> &str {
    let trimmed = base_url.trim_end_matches('/');
    trimmed
        .strip_suffix("/v1")
        .or_else(|| trimmed.strip_suffix("/api"))
        .unwrap_or(trimmed)
        .trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_found_whatever_suffix_the_url_has() {
        for url in [
            "http://ollama:11434",
            "http://ollama:11434/",
            "http://ollama:11434/v1",
            "http://ollama:11434/api/",
        ] {
            assert_eq!(ollama_root(url), "http://ollama:11434", "{url}");
        }
    }
}
