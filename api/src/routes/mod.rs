//! One module per section of the contract; each returns its routes.

pub mod ask;
pub mod docs;
pub mod folders;
pub mod jobs;
pub mod links;
pub mod personal;
pub mod repositories;
pub mod search;
pub mod service;
pub mod similar;
pub mod users;
pub mod webhooks;

use axum::extract::Request;
use isocrates_storage::audit::AuditEntry;
use serde_json::Value;

use crate::AppState;
use crate::auth::Caller;

use crate::error::Error;

/// The answer for a path no route serves.
pub(crate) async fn no_route(req: Request) -> Error {
    Error::NoRoute { method: req.method().to_string(), path: req.uri().path().to_string() }
}

/// The answer for a known path asked with another method.
pub(crate) async fn method_not_allowed(req: Request) -> Error {
    Error::MethodNotAllowed(req.method().to_string())
}

/// Records an audit row for what `caller` did to `target`.
pub(crate) async fn audit(
    state: &AppState,
    caller: &Caller,
    action: &'static str,
    target: &str,
    details: Value,
) {
    record(state, caller.user_id(), caller.request_id.clone(), action, target, details).await;
}

/// Records an audit row; a failure to record is logged, never fatal to the request.
pub(crate) async fn record(
    state: &AppState,
    actor_id: Option<String>,
    request_id: Option<String>,
    action: &'static str,
    target: &str,
    details: Value,
) {
    let entry = AuditEntry {
        actor_id,
        action,
        target: Some(target.to_string()),
        details: (!details.is_null()).then_some(details),
        request_id,
    };
    if let Err(e) = state.storage().audit(entry).await {
        tracing::warn!(error = %e, action, "could not write an audit row");
    }
}
