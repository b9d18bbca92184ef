//! LLM providers behind one trait: a system text and a prompt in, text, token counts and
//! cost out.
//!
//! [`Provider`] is what each backend implements: [`openai`] speaks OpenAI's chat
//! completions (OpenAI, OpenRouter and any compatible server, through `async-openai` with a
//! base URL), and [`ollama`] Ollama's native `/api/chat`. [`guard::Llm`] wraps any provider with what every call needs whatever the
//! backend: bounded concurrency, a request timeout, retries of rate limits and server errors
//! that honour `Retry-After`, a circuit breaker, and the tokens and cost of each call.
//! [`json`] gets structured answers out of models: the schema where the provider takes
//! one, extraction from fenced or loose text, a repair pass, and a re-ask that shows the
//! model its error. [`tokens`] estimates token counts without calling a model.
//!
//! Boundary: this crate knows nothing of storage or workflows, and never logs a key.

pub mod config;
pub mod embed;
pub mod guard;
mod http;
pub mod json;
pub mod ollama;
pub mod openai;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use config::{Kind, LlmConfig, Prices, TierConfig};
pub use guard::{Call, Limits, Llm};

/// The guarded model of one tier: `None` for the static provider, which calls no model.
pub fn build(tier: &TierConfig, config: &LlmConfig) -> Result<Option<Llm>, String> {
    let limits = Limits {
        max_concurrency: config.max_concurrency,
        timeout: config.timeout,
        ..Limits::default()
    };
    Ok(provider(tier, config.timeout)?.map(|p| Llm::new(p, limits, tier.prices)))
}

/// The backend of one tier, unguarded, giving up on a request after `timeout`: `None` for
/// the static provider.
pub fn provider(tier: &TierConfig, timeout: Duration) -> Result<Option<Arc<dyn Provider>>, String> {
    Ok(Some(match tier.kind {
        Kind::Static => return Ok(None),
        Kind::OpenAi | Kind::OpenRouter | Kind::OpenAiCompatible => {
            Arc::new(openai::OpenAiChat::new(tier, timeout)?)
        }
        Kind::Ollama => Arc::new(ollama::OllamaChat::new(tier, timeout)?),
    }))
}

/// The two model tiers a documentation run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Plans the pages of a repository.
    Planner,
    /// Writes one page.
    Writer,
}

impl Tier {
    /// The tier's name, as in `LLM_PLANNER_MODEL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Planner => "planner",
            Tier::Writer => "writer",
        }
    }
}

/// Token counts of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens sent.
    pub input_tokens: u64,
    /// Tokens received.
    pub output_tokens: u64,
}

impl std::ops::Add for Usage {
    type Output = Usage;

    /// The sum of two counts.
    fn add(self, other: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
        }
    }
}

/// One request to a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The instructions.
    pub system: String,
    /// The task and its material.
    pub prompt: String,
    /// The longest answer wanted, in tokens.
    pub max_tokens: Option<u32>,
    /// A JSON schema the answer must follow, with its name, for providers that enforce one.
    pub schema: Option<(String, Value)>,
}

impl Request {
    /// A request of `system` instructions and a `prompt`.
    pub fn new(system: impl Into<String>, prompt: impl Into<String>) -> Request {
        Request { system: system.into(), prompt: prompt.into(), max_tokens: None, schema: None }
    }
}

/// A model's answer to one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The text of the answer.
    pub text: String,
    /// The model that answered, as the provider names it.
    pub model: String,
    /// Its tokens.
    pub usage: Usage,
    /// Its cost as the provider reported it (OpenRouter does), in US dollars.
    pub reported_cost_usd: Option<f64>,
    /// Whether the model stopped at the token limit rather than at the end of its answer.
    pub truncated: bool,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The provider refused the key (401 or 403).
    #[error(
        "the provider refused the credentials ({status}): check {key_variable}; it said: {message}"
    )]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The variable that holds the key.
        key_variable: String,
        /// What the provider said.
        message: String,
    },
    /// Too many requests (429).
    #[error("the provider is rate limiting (429): {message}")]
    RateLimited {
        /// How long the provider asked to wait.
        retry_after: Option<Duration>,
        /// What it said.
        message: String,
    },
    /// The provider failed (5xx).
    #[error("the provider failed ({status}): {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// How long the provider asked to wait, if it did.
        retry_after: Option<Duration>,
        /// What it said.
        message: String,
    },
    /// The provider refused the request itself (another 4xx): retrying cannot help.
    #[error("the provider refused the request ({status}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// No answer within the request timeout.
    #[error("the provider did not answer within {0} s")]
    Timeout(u64),
    /// The provider could not be reached.
    #[error("the provider cannot be reached: {0}")]
    Connection(String),
    /// An answer came, but not in the provider's format.
    #[error("the provider's answer is not in its format: {0}")]
    Malformed(String),
    /// The circuit breaker is open after repeated failures.
    #[error("calls to {provider} are paused for {} s after {failures} failures in a row", wait.as_secs())]
    CircuitOpen {
        /// The provider.
        provider: String,
        /// The failures that opened it.
        failures: u32,
        /// How long until a probe is let through.
        wait: Duration,
    },
    /// This configuration calls no model.
    #[error("the static provider calls no model")]
    NoModel,
}

impl CallError {
    /// Whether trying the same call again can help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CallError::RateLimited { .. }
                | CallError::Server { .. }
                | CallError::Timeout(_)
                | CallError::Connection(_)
                | CallError::Malformed(_)
        )
    }

    /// The delay the provider asked for before the next try.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::RateLimited { retry_after, .. } | CallError::Server { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

/// The future a provider's call returns.
pub type CallFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, CallError>> + Send + 'a>>;

/// One backend that answers requests with one model.
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// Which kind of backend it is.
    fn kind(&self) -> Kind;

    /// The model it asks.
    fn model(&self) -> &str;

    /// Whether it enforces a JSON schema on the answer when the request carries one.
    fn enforces_schema(&self) -> bool;

    /// Sends one request, once.
    fn call<'a>(&'a self, request: &'a Request) -> CallFuture<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_adds_up() {
        let total = Usage { input_tokens: 3, output_tokens: 4 }
            + Usage { input_tokens: 1, output_tokens: 2 };
        assert_eq!(total, Usage { input_tokens: 4, output_tokens: 6 });
    }

    #[test]
    fn only_failures_that_can_pass_are_retried() {
        assert!(CallError::Timeout(5).is_retryable());
        assert!(
            CallError::RateLimited { retry_after: None, message: String::new() }.is_retryable()
        );
        let refused = CallError::Unauthorized {
            status: 401,
            key_variable: "LLM_API_KEY".into(),
            message: "bad key".into(),
        };
        assert!(!refused.is_retryable());
        assert!(refused.to_string().contains("LLM_API_KEY"));
    }
}
