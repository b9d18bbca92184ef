//! Per-request context: the request id (the client's when it is well formed), a tracing span
//! carrying it, `X-Request-ID` and `X-Response-Time` on every response, and one log line
//! per request, with the cause when it failed inside.

use std::any::Any;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::AppState;
use crate::error::{Error, InternalCause};

/// The request id header.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The handling time header, in milliseconds.
pub static RESPONSE_TIME: HeaderName = HeaderName::from_static("x-response-time");

/// The id of the request being handled, for handlers that record it (audit rows).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Whether a client's request id can be used: 1 to 64 of `[A-Za-z0-9._-]`.
fn acceptable_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub(crate) async fn request_context(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable_request_id(id))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!(
        "request",
        request.id = %request_id,
        http.method = %method,
        http.route = route.as_deref().unwrap_or(path.as_str()),
        user.id = tracing::field::Empty,
    );

    let mut response = next.run(req).instrument(span.clone()).await;

    let elapsed = started.elapsed();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID.clone(), value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("{:.2}", elapsed.as_secs_f64() * 1000.0)) {
        headers.insert(RESPONSE_TIME.clone(), value);
    }
    let status = response.status().as_u16();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    state.metrics().observe(
        method.as_str(),
        route.as_deref().unwrap_or("unmatched"),
        status,
        elapsed,
    );
    span.in_scope(|| {
        if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
            tracing::error!(http.status = status, latency_ms, error = %cause, "request failed");
        } else if status >= 500 {
            tracing::error!(http.status = status, latency_ms, "request failed");
        } else {
            tracing::info!(http.status = status, latency_ms, "request finished");
        }
    });
    response
}

/// Turns a panic in a handler into the 500 envelope; the panic text goes to the log only.
pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a handler panicked".to_string());
    Error::Internal(format!("panic: {text}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::acceptable_request_id;

    #[test]
    fn request_ids_from_clients_are_checked() {
        assert!(acceptable_request_id("abc-123_X.y"));
        assert!(!acceptable_request_id(""));
        assert!(!acceptable_request_id(&"a".repeat(65)));
        assert!(!acceptable_request_id("has space"));
        assert!(!acceptable_request_id("semi;colon"));
    }
}
