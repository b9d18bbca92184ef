//! The client of a running IsoCrates API that the tools call, with the caller's bearer
//! token, so every answer respects the token's grants. A request that never reached the
//! API (a refused connection) is retried up to three times; a read is also retried after a
//! timeout or a 5xx, but a write is not, since it may have been done. A 4xx is an
//! [`ApiError`] naming the status and the API's message.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// How many times a failed request is tried again.
const RETRIES: u32 = 3;

/// Why a call of the API failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The answer's status, when there was an answer.
    pub status: Option<u16>,
    /// A sentence for the person or model using the tool.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A client of one IsoCrates API.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<SecretString>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl ApiClient {
    /// A client of the API at `base` (`http://127.0.0.1:8000`), sending `token` when given;
    /// each request may take `timeout`.
    pub fn new(
        base: &str,
        token: Option<SecretString>,
        timeout: Duration,
    ) -> Result<ApiClient, String> {
        let base = base.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "ISOCRATES_API_URL must be the API's http or https address, such as \
                 http://127.0.0.1:8000, not {base:?}"
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("isocrates-mcp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the HTTP client cannot be built: {e}"))?;
        Ok(ApiClient { http, base, token })
    }

    /// The API's address.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path?query`.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiError> {
        self.send(reqwest::Method::GET, path, query, None, true).await
    }

    /// `POST path` with a JSON body that only reads (batch titles), retried as a read.
    pub async fn post_read(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.send(reqwest::Method::POST, path, &[], Some(body), true).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.send(reqwest::Method::POST, path, &[], Some(body), false).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.send(reqwest::Method::PUT, path, &[], Some(body), false).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        reads: bool,
    ) -> Result<Value, ApiError> {
        let mut url = format!("{}{path}", self.base);
        for (i, (key, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(key);
            url.push('=');
            url.push_str(&encode(value));
        }
        let mut attempt = 0;
        loop {
            let mut request = self.http.request(method.clone(), &url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token.expose_secret());
            }
            if let Some(body) = body {
                request = request.header("Content-Type", "application/json").body(body.to_string());
            }
            let retry = attempt < RETRIES;
            match request.send().await {
                Err(e) if retry && (e.is_connect() || (reads && e.is_timeout())) => {}
                Err(e) => {
                    return Err(ApiError {
                        status: None,
                        message: format!(
                            "the IsoCrates API at {} cannot be reached: {e}",
                            self.base
                        ),
                    });
                }
                Ok(answer) if retry && reads && answer.status().is_server_error() => {}
                Ok(answer) => {
                    let status = answer.status();
                    let unreadable = |e: String| ApiError {
                        status: None,
                        message: format!("the IsoCrates API's answer could not be read: {e}"),
                    };
                    let text = answer.text().await.map_err(|e| unreadable(e.to_string()))?;
                    if status.is_success() {
                        if text.trim().is_empty() {
                            return Ok(Value::Null);
                        }
                        return serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()));
                    }
                    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let said = value["message"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| text.chars().take(200).collect());
                    return Err(ApiError {
                        status: Some(status.as_u16()),
                        message: format!("API error: {}: {said}", status.as_u16()),
                    });
                }
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
    }
}

/// `text` percent-encoded for a query value.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_addresses_are_taken() {
        let client = ApiClient::new("http://127.0.0.1:8000/", None, Duration::from_secs(1));
        assert_eq!(client.unwrap().base(), "http://127.0.0.1:8000");
        let refused = ApiClient::new("127.0.0.1:8000", None, Duration::from_secs(1)).unwrap_err();
        assert!(refused.starts_with("ISOCRATES_API_URL must be"), "{refused}");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("a b/ü&x=1"), "a%20b%2F%C3%BC%26x%3D1");
    }
}
