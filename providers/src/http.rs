//! What every HTTP provider does with a failed exchange: its status, its `Retry-After` and
//! its body decide whether and when the call is tried again.

use std::time::Duration;

use serde_json::Value;

use crate::CallError;

/// A failed HTTP exchange, as the provider answered it.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}")]
pub(crate) struct HttpFailure {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) body: String,
}

impl HttpFailure {
    /// Reads the status, `Retry-After` and body of a response that is not a success.
    pub(crate) async fn read(response: reqwest::Response) -> HttpFailure {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response.text().await.unwrap_or_default();
        HttpFailure { status, retry_after, body }
    }

    /// What the failure means for the call: a refused key names `key_variable`; rate limits
    /// and server errors keep the delay the provider asked for.
    pub(crate) fn into_error(self, key_variable: &str, timeout: Duration) -> CallError {
        let message = error_message(&self.body);
        match self.status {
            401 | 403 => CallError::Unauthorized {
                status: self.status,
                key_variable: key_variable.to_string(),
                message,
            },
            408 => CallError::Timeout(timeout.as_secs()),
            429 => CallError::RateLimited { retry_after: self.retry_after, message },
            status @ 500..=599 => {
                CallError::Server { status, retry_after: self.retry_after, message }
            }
            status => CallError::Rejected { status, message },
        }
    }
}

/// What a transport error means for the call.
pub(crate) fn transport_error(error: &reqwest::Error, timeout: Duration) -> CallError {
    if error.is_timeout() {
        CallError::Timeout(timeout.as_secs())
    } else if error.is_decode() || error.is_body() {
        CallError::Malformed(error.to_string())
    } else {
        CallError::Connection(error.to_string())
    }
}

/// `Retry-After` as seconds (the form model APIs send; an HTTP date is not waited for).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds = value.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0)?;
    Some(Duration::from_secs_f64(seconds.min(3600.0)))
}

/// The message of an error body: OpenAI's `error.message`, Ollama's `error`, else the
/// start of the body.
pub(crate) fn error_message(body: &str) -> String {
    let parsed = serde_json::from_str::<Value>(body).ok();
    let said = parsed.as_ref().and_then(|v| match &v["error"] {
        Value::String(message) => Some(message.clone()),
        error => error["message"].as_str().map(str::to_string),
    });
    said.unwrap_or_else(|| start_of(body))
}

/// The first 200 characters of a text, for messages.
pub(crate) fn start_of(text: &str) -> String {
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
    fn error_bodies_of_both_formats_give_their_message() {
        assert_eq!(error_message(r#"{"error": {"message": "bad key"}}"#), "bad key");
        assert_eq!(error_message(r#"{"error": "model 'x' not found"}"#), "model 'x' not found");
        assert_eq!(error_message("<html>502</html>"), "<html>502</html>");
    }

    #[test]
    fn statuses_decide_what_a_failure_is() {
        let failure = |status| HttpFailure { status, retry_after: None, body: String::new() };
        let timeout = Duration::from_secs(9);
        assert!(matches!(
            failure(401).into_error("LLM_API_KEY", timeout),
            CallError::Unauthorized { .. }
        ));
        assert!(matches!(failure(429).into_error("K", timeout), CallError::RateLimited { .. }));
        assert!(matches!(failure(503).into_error("K", timeout), CallError::Server { .. }));
        assert!(matches!(failure(404).into_error("K", timeout), CallError::Rejected { .. }));
        assert!(matches!(failure(408).into_error("K", timeout), CallError::Timeout(9)));
    }
}
