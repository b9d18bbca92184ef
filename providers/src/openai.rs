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

use crate::http::{HttpFailure, start_of, transport_error};
use crate::{CallError, CallFuture, Kind, Provider, Reply, Request, TierConfig, Usage};

/// The address OpenRouter shows as the caller of each request (`HTTP-Referer`).
const OPENROUTER_REFERER: &str = "https://github.com/isocrates/isocrates";

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
        let openrouter = tier.kind == Kind::OpenRouter;
        let service = tower::service_fn(move |factory: HttpRequestFactory| {
            let http = http.clone();
            async move {
                let mut request = factory.build().await?;
                if openrouter {
                    // OpenRouter attributes calls to an application by these two headers.
                    let headers = request.headers_mut();
                    headers.insert("HTTP-Referer", OPENROUTER_REFERER.parse().expect("a header"));
                    headers.insert("X-Title", "IsoCrates".parse().expect("a header"));
                }
                let response = http.execute(request).await.map_err(OpenAIError::Reqwest)?;
                if response.status().is_success() {
                    return Ok(response);
                }
                let failure = HttpFailure::read(response).await;
                Err(OpenAIError::Boxed(Box::new(failure)))
            }
        });
        let key = tier.api_key.as_ref().map(|k| k.expose_secret().to_string()).unwrap_or_default();
        // `OpenAIConfig::new` reads OPENAI_ORG_ID and OPENAI_PROJECT_ID from the environment
        // and would send them to any server; the configuration alone decides here.
        let config = OpenAIConfig::new()
            .with_api_base(tier.base_url.trim_end_matches('/'))
            .with_api_key(key)
            .with_org_id("")
            .with_project_id("");
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
            // OpenAI's reasoning models refuse `max_tokens`; every OpenAI model takes the
            // newer name, which other servers do not all know.
            let field =
                if self.kind == Kind::OpenAi { "max_completion_tokens" } else { "max_tokens" };
            body[field] = json!(max);
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
                Ok(failure) => failure.into_error(&self.key_variable, self.timeout),
                Err(other) => CallError::Connection(other.to_string()),
            },
            OpenAIError::Reqwest(e) => transport_error(&e, self.timeout),
            OpenAIError::JSONDeserialize(e, body) => {
                CallError::Malformed(format!("{e}; the answer began: {}", start_of(&body)))
            }
            other => CallError::Connection(other.to_string()),
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
    let choice = &answer["choices"][0];
    let message = &choice["message"];
    let Some(text) = message["content"].as_str() else {
        // A refusal or a filtered answer is an answer: asking again gives the same.
        if let Some(refusal) = message["refusal"].as_str() {
            return Err(CallError::Rejected {
                status: 200,
                message: format!("the model refused: {refusal}"),
            });
        }
        if choice["finish_reason"] == "content_filter" {
            return Err(CallError::Rejected {
                status: 200,
                message: "the provider's content filter withheld the answer".to_string(),
            });
        }
        return Err(CallError::Malformed(format!(
            "no choices[0].message.content in the answer: {}",
            start_of(&answer.to_string())
        )));
    };
    let usage = &answer["usage"];
    Ok(Reply {
        text: text.to_string(),
        model: answer["model"].as_str().unwrap_or(asked).to_string(),
        usage: Usage {
            input_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
            output_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
        },
        reported_cost_usd: usage["cost"].as_f64(),
        truncated: choice["finish_reason"] == "length",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
