//! `/`, `/health` and `/health/deep`: what the service is and whether it works. The web
//! page answers `/` to a browser and hands other clients to [`root`].

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::AppState;

/// The version reported by the service.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/deep", get(deep))
        .route("/metrics", get(crate::metrics::metrics))
        .route("/openapi.json", get(crate::openapi::openapi_json))
}

/// The handlers of this module, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(root, health, deep, crate::metrics::metrics, crate::openapi::openapi_json))]
pub(crate) struct Api;

/// What the service is.
#[utoipa::path(
    get,
    path = "/",
    tag = "service",
    responses((status = 200, description = "The service", body = crate::openapi::shapes::ServiceInfo))
)]
pub(crate) async fn root() -> Json<Value> {
    Json(json!({ "name": "IsoCrates API", "version": VERSION, "status": "running" }))
}

/// A worker counts as alive when it reported within this long (it reports every few
/// seconds).
const WORKER_ALIVE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Always 200: the body says whether the database answers.
#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    responses((status = 200, description = "Healthy or degraded", body = crate::openapi::shapes::Health))
)]
async fn health(State(state): State<AppState>) -> Json<Value> {
    let storage = state.storage();
    let count = storage.document_count().await;
    let queue = state.engine().queue_health(WORKER_ALIVE_WITHIN).await;
    if let Err(e) = &queue {
        tracing::warn!(error = %e, "health check: the queue cannot be read");
    }
    let ok = count.is_ok() && queue.is_ok();
    let queue = queue.unwrap_or_default();
    Json(json!({
        "status": if ok { "healthy" } else { "degraded" },
        "database": if ok { "connected" } else { "error" },
        "db": if ok { "ok" } else { "error" },
        "db_backend": storage.backend().name(),
        "version": VERSION,
        "uptime_seconds": state.uptime_seconds(),
        "document_count": count.unwrap_or(0),
        "workers": queue.workers,
        "queue": {
            "queued": queue.queued,
            "running": queue.running,
            "paused": queue.paused,
            "failed": queue.failed,
        },
    }))
}

/// Each component's state; costs no LLM tokens.
#[utoipa::path(
    get,
    path = "/health/deep",
    tag = "service",
    responses((status = 200, description = "Each component", body = crate::openapi::shapes::DeepHealth))
)]
async fn deep(State(state): State<AppState>) -> Json<Value> {
    let database = match state.storage().ping().await {
        Ok(()) => json!({ "status": "ok" }),
        Err(e) => {
            tracing::warn!(error = %e, "deep health check: database does not answer");
            json!({ "status": "error", "detail": "the database does not answer" })
        }
    };
    let queue = match state.engine().queue_health(WORKER_ALIVE_WITHIN).await {
        Ok(q) if q.workers == 0 => json!({
            "status": "degraded",
            "detail": "no worker is running: queued jobs wait until one starts (isocrates worker, or serve without WORKERS=0)",
            "queued": q.queued,
            "running": q.running,
            "workers": 0,
        }),
        Ok(q) => {
            json!({ "status": "ok", "queued": q.queued, "running": q.running, "workers": q.workers })
        }
        Err(e) => {
            tracing::warn!(error = %e, "deep health check: the queue cannot be read");
            json!({ "status": "error", "detail": "the job queue cannot be read" })
        }
    };
    let healthy = database["status"] == "ok" && queue["status"] == "ok";
    Json(json!({
        "status": if healthy { "healthy" } else { "degraded" },
        "components": {
            "database": database,
            "providers": providers(&state),
            "queue": queue,
        },
    }))
}

/// The writer model as configured: no request is sent, so checking costs nothing.
fn providers(state: &AppState) -> Value {
    match &state.assistant().model {
        Some(llm) => {
            let provider = llm.provider();
            json!({
                "status": "ok",
                "detail": format!("{} model {}", provider.kind().as_str(), provider.model()),
            })
        }
        None => json!({
            "status": "not_configured",
            "detail": "no model is configured (LLM_PROVIDER is static): pages are written without one",
        }),
    }
}
