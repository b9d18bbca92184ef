//! OpenAI's chat completions, through `async-openai` with a base URL: OpenAI itself,
//! OpenRouter (which also reports each call's cost) and any compatible server.
//!
//! The HTTP exchange goes through a service of ours, so that a failure keeps its status,
//! its `Retry-After` and its body, which decide whether and when to try again.

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::{CallError, CallFuture, Kind, Provider, Reply, Request, TierConfig, Usage};

/// A failed HTTP exchange, carried through `async-openai` to [`call`](Provider::call).
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}")]
struct HttpFailure {
    status: u16,
    retry_after: Option<Duration>,
    body: String,
}

/// An OpenAI-compatible chat model.
#[derive(Debug)]
pub struct OpenAiChat {
    kind: Kind,
    model: String,
    key_variable: String,
    timeout: Duration,
    client: Client<OpenAIConfig>,
}

impl OpenAiChat {
    /// A client for `tier`'s model, giving up on a request after `timeout`.
    pub fn new(tier: &TierConfig, timeout: Duration) -> Result<OpenAiChat, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let service = tower::service_fn(move |factory: HttpRequestFactory| {
            let http = http.clone();
            async move {
                let request = factory.build().await?;
                let response = http.execute(request).await.map_err(OpenAIError::Reqwest)?;
                if response.status().is_success() {
                    return Ok(response);
                }
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                let body = response.text().await.unwrap_or_default();
                Err(OpenAIError::Boxed(Box::new(HttpFailure { status, retry_after, body })))
            }
        });
        let key = tier.api_key.as_ref().map(|k| k.expose_secret().to_string()).unwrap_or_default();
        let config = OpenAIConfig::new()
            .with_api_base(tier.base_url.trim_end_matches('/'))
            .with_api_key(key);
        Ok(OpenAiChat {
            kind: tier.kind,
            model: tier.model.clone(),
            key_variable: tier.key_variable.clone(),
            timeout,
            client: Client::with_config(config).with_http_service(service),
        })
    }

    fn body(&self, request: &Request) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.prompt},
            ],
            "stream": false,
        });
        if let Some(max) = request.max_tokens {
            body["max_tokens"] = json!(max);
        }
        if let Some((name, schema)) = &request.schema {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": false},
            });
        }
        if self.kind == Kind::OpenRouter {
            // Asks OpenRouter to report the call's cost in `usage`.
            body["usage"] = json!({"include": true});
        }
        body
    }

    fn failure(&self, error: OpenAIError) -> CallError {
        match error {
            OpenAIError::Boxed(boxed) => match boxed.downcast::<HttpFailure>() {
                Ok(failure) => self.http_failure(*failure),
                Err(other) => CallError::Connection(other.to_string()),
            },
            OpenAIError::Reqwest(e) if e.is_timeout() => CallError::Timeout(self.timeout.as_secs()),
            OpenAIError::Reqwest(e) if e.is_decode() || e.is_body() => {
                CallError::Malformed(e.to_string())
            }
            OpenAIError::Reqwest(e) => CallError::Connection(e.to_string()),
            OpenAIError::JSONDeserialize(e, body) => {
                CallError::Malformed(format!("{e}; the answer began: {}", start_of(&body)))
            }
            other => CallError::Connection(other.to_string()),
        }
    }

    fn http_failure(&self, failure: HttpFailure) -> CallError {
        let message = error_message(&failure.body);
        match failure.status {
            401 | 403 => CallError::Unauthorized {
                status: failure.status,
                key_variable: self.key_variable.clone(),
                message,
            },
            408 => CallError::Timeout(self.timeout.as_secs()),
            429 => CallError::RateLimited { retry_after: failure.retry_after, message },
            status @ 500..=599 => {
                CallError::Server { status, retry_after: failure.retry_after, message }
            }
            status => CallError::Rejected { status, message },
        }
    }
}

impl Provider for OpenAiChat {
    fn kind(&self) -> Kind {
        self.kind
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn enforces_schema(&self) -> bool {
        true
    }

    fn call<'a>(&'a self, request: &'a Request) -> CallFuture<'a> {
        Box::pin(async move {
            let answer: Value = self
                .client
                .chat()
                .create_byot(self.body(request))
                .await
                .map_err(|e| self.failure(e))?;
            reply_of(&answer, &self.model)
        })
    }
}

/// Reads a chat completion: the first choice's text, the model, the tokens and, when the
/// provider reports it, the cost.
fn reply_of(answer: &Value, asked: &str) -> Result<Reply, CallError> {
    let text = answer["choices"][0]["message"]["content"].as_str().ok_or_else(|| {
        CallError::Malformed(format!(
            "no choices[0].message.content in the answer: {}",
            start_of(&answer.to_string())
        ))
    })?;
    let usage = &answer["usage"];
    Ok(Reply {
        text: text.to_string(),
        model: answer["model"].as_str().unwrap_or(asked).to_string(),
        usage: Usage {
            input_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
            output_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
        },
        reported_cost_usd: usage["cost"].as_f64(),
    })
}

/// `Retry-After` as seconds (the form model APIs send; an HTTP date is not waited for).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds = value.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0)?;
    Some(Duration::from_secs_f64(seconds.min(3600.0)))
}

/// The `error.message` of an OpenAI-style error body, else the start of the body.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| start_of(body))
}

/// The first 200 characters of a text, for messages.
fn start_of(text: &str) -> String {
    let mut start: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        start.push('…');
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn a_completion_gives_text_tokens_and_cost() {
        let answer = json!({
            "model": "m-2024",
            "choices": [{"message": {"role": "assistant", "content": "hello"}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "cost": 0.0012},
        });
        let reply = reply_of(&answer, "m").unwrap();
        assert_eq!(reply.text, "hello");
        assert_eq!(reply.model, "m-2024");
        assert_eq!(reply.usage, Usage { input_tokens: 12, output_tokens: 3 });
        assert_eq!(reply.reported_cost_usd, Some(0.0012));
        assert!(matches!(reply_of(&json!({"choices": []}), "m"), Err(CallError::Malformed(_))));
    }
}
