//! `/`, `/health` and `/health/deep`: what the service is and whether it works.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::AppState;

/// The version reported by the service.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route("/health/deep", get(deep))
}

async fn root() -> Json<Value> {
    Json(json!({ "name": "IsoCrates API", "version": VERSION, "status": "running" }))
}

/// Always 200: the body says whether the database answers.
async fn health(State(state): State<AppState>) -> Json<Value> {
    let storage = state.storage();
    let count = storage.document_count().await;
    let ok = count.is_ok();
    // FIXME: workers and queue are reported as idle until the workflow engine exists; the
    // engine's run table will supply the real counts.
    Json(json!({
        "status": if ok { "healthy" } else { "degraded" },
        "database": if ok { "connected" } else { "error" },
        "db": if ok { "ok" } else { "error" },
        "db_backend": storage.backend().name(),
        "version": VERSION,
        "uptime_seconds": state.uptime_seconds(),
        "document_count": count.unwrap_or(0),
        "workers": 0,
        "queue": { "queued": 0, "running": 0, "failed": 0 },
    }))
}

/// Each component's state; costs no LLM tokens.
async fn deep(State(state): State<AppState>) -> Json<Value> {
    let database = match state.storage().ping().await {
        Ok(()) => json!({ "status": "ok" }),
        Err(e) => {
            tracing::warn!(error = %e, "deep health check: database does not answer");
            json!({ "status": "error", "detail": "the database does not answer" })
        }
    };
    let healthy = database["status"] == "ok";
    Json(json!({
        "status": if healthy { "healthy" } else { "degraded" },
        "components": {
            "database": database,
            "providers": { "status": "not_configured", "detail": "no LLM provider is wired into this build yet" },
            "queue": { "status": "not_configured", "detail": "no workflow engine is wired into this build yet" },
        },
    }))
}
