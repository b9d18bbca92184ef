//! Similar documents by embedding: `GET /api/docs/similar/` (to a text),
//! `GET /api/docs/{doc_id}/similar` (to a document) and `POST /api/docs/reindex` (embed
//! every document again). With embeddings off the lists are empty and reindexing says so.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use isocrates_storage::Action;
use isocrates_storage::embeddings::{Similar, embedding_text};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{AdminUser, MaybeUser};
use crate::error::Error;
use crate::extract::{Path, Query, bounded};
use crate::routes::audit;

/// The handlers of this module, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(similar_to_text, similar_to_document, reindex))]
pub(crate) struct Api;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/docs/similar", get(similar_to_text))
        .route("/api/docs/{doc_id}/similar", get(similar_to_document))
        .route("/api/docs/reindex", post(reindex))
}

#[derive(Serialize, utoipa::ToSchema)]
struct SimilarOut {
    id: String,
    title: String,
    path: String,
    description: Option<String>,
    similarity_score: f32,
}

impl From<Similar> for SimilarOut {
    fn from(s: Similar) -> SimilarOut {
        SimilarOut {
            id: s.id,
            title: s.title,
            path: s.path,
            description: s.description,
            similarity_score: s.score,
        }
    }
}

fn five() -> i64 {
    5
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TextQuery {
    /// The text to find documents like.
    text: String,
    /// Documents at most.
    #[serde(default = "five")]
    #[param(minimum = 1, maximum = 20, default = 5)]
    limit: i64,
}

/// A failed embedding call means no similar documents, never a failed request.
fn embedding_failed(error: &impl std::fmt::Display) -> axum::Json<Vec<SimilarOut>> {
    tracing::warn!(%error, "the embedding server failed; answering no similar documents");
    axum::Json(Vec::new())
}

/// The readable documents most like a text; none when embeddings are off.
#[utoipa::path(get, path = "/api/docs/similar", tag = "search", params(TextQuery),
    responses((status = 200, description = "Most alike first", body = Vec<SimilarOut>)))]
async fn similar_to_text(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Query(q): Query<TextQuery>,
) -> Result<axum::Json<Vec<SimilarOut>>, Error> {
    let limit = bounded("limit", q.limit, 1, 20)? as usize;
    let text = q.text.trim();
    if text.is_empty() || text.chars().count() > 8_000 {
        return Err(Error::invalid("text", "text must be 1 to 8000 characters"));
    }
    let Some(embedder) = &state.assistant().embedder else { return Ok(axum::Json(Vec::new())) };
    let vector = match embedder.embed(&[text.to_string()]).await {
        Ok(mut v) => v.remove(0),
        Err(e) => return Ok(embedding_failed(&e)),
    };
    let found =
        state.storage().similar(&vector, embedder.model(), &caller.scope(), None, limit).await?;
    Ok(axum::Json(found.into_iter().map(SimilarOut::from).collect()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LimitQuery {
    /// Documents at most.
    #[serde(default = "five")]
    #[param(minimum = 1, maximum = 20, default = 5)]
    limit: i64,
}

/// The readable documents most like this one.
#[utoipa::path(get, path = "/api/docs/{doc_id}/similar", tag = "search", params(crate::openapi::DocId, LimitQuery),
    responses((status = 200, description = "Most alike first", body = Vec<SimilarOut>)))]
async fn similar_to_document(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<axum::Json<Vec<SimilarOut>>, Error> {
    let limit = bounded("limit", q.limit, 1, 20)? as usize;
    let doc = super::docs::readable(&state, &caller, &id).await?;
    debug_assert!(caller.can(&doc.path, Action::Read));
    let Some(embedder) = &state.assistant().embedder else { return Ok(axum::Json(Vec::new())) };
    let vector = match state.storage().embedding(&doc.id, embedder.model()).await? {
        Some(vector) => vector,
        // Not indexed yet: embedded now, for this answer only.
        None => {
            let text = embedding_text(&doc.title, doc.description.as_deref(), &doc.content);
            match embedder.embed(&[text]).await {
                Ok(mut v) => v.remove(0),
                Err(e) => return Ok(embedding_failed(&e)),
            }
        }
    };
    let found = state
        .storage()
        .similar(&vector, embedder.model(), &caller.scope(), Some(&doc.id), limit)
        .await?;
    Ok(axum::Json(found.into_iter().map(SimilarOut::from).collect()))
}

/// Embeds every document again (admin).
#[utoipa::path(post, path = "/api/docs/reindex", tag = "search",
    responses((status = 200, description = "How many were embedded", body = crate::openapi::shapes::Reembedded)))]
async fn reindex(
    State(state): State<AppState>,
    AdminUser(caller): AdminUser,
) -> Result<axum::Json<Value>, Error> {
    let Some(embedder) = &state.assistant().embedder else {
        return Ok(axum::Json(json!({
            "reindexed": 0,
            "model": null,
            "message": "embeddings are off: set EMBEDDING_PROVIDER and EMBEDDING_MODEL",
        })));
    };
    state.storage().unindex_all().await?;
    let (reindexed, outcome) =
        crate::embeddings::index_pending(state.storage(), embedder, usize::MAX).await;
    audit(&state, &caller, "docs.reindex", "", json!({"reindexed": reindexed})).await;
    let mut answer = json!({"reindexed": reindexed, "model": embedder.model()});
    if let Err(error) = outcome {
        tracing::warn!(%error, reindexed, "reindexing stopped early");
        answer["message"] = json!(format!(
            "stopped after {reindexed} documents: {error}; the rest are embedded in the background"
        ));
    }
    Ok(axum::Json(answer))
}
