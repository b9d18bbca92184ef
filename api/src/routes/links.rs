//! Wikilinks and the dependency graph: resolving a target, a document's links in and out,
//! broken links, manual edges, and re-reading every link.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use isocrates_storage::Action;
use isocrates_storage::links::{NewDependency, WIKILINK};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{AdminUser, AuthUser, MaybeUser};
use crate::error::Error;
use crate::extract::{Json, Path, Query};
use crate::model::DependencyOut;
use crate::routes::docs::readable;

/// The longest wikilink target resolved.
const MAX_TARGET: usize = 500;

/// The handlers of this module, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    resolve,
    broken_links,
    dependencies_of,
    add_dependency,
    all_dependencies,
    reindex
))]
pub(crate) struct Api;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/docs/resolve", get(resolve))
        .route("/api/docs/{doc_id}/broken-links", get(broken_links))
        .route("/api/docs/{doc_id}/dependencies", get(dependencies_of).post(add_dependency))
        .route("/api/dependencies", get(all_dependencies))
        .route("/api/dependencies/reindex", post(reindex))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ResolveQuery {
    /// A wikilink target, as written between `[[` and `]]` (before any `|`).
    #[param(min_length = 1, max_length = 500)]
    target: String,
}

#[utoipa::path(get, path = "/api/docs/resolve", tag = "wikilinks", params(ResolveQuery),
    responses((status = 200, description = "The readable document the target names", body = crate::openapi::shapes::Resolved)))]
async fn resolve(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Query(q): Query<ResolveQuery>,
) -> Result<axum::Json<Value>, Error> {
    let target = q.target.trim();
    if target.is_empty() || target.chars().count() > MAX_TARGET {
        return Err(Error::invalid("target", format!("must be 1 to {MAX_TARGET} characters")));
    }
    match state.storage().resolve_link(target, &caller.scope()).await? {
        Some(doc_id) => Ok(axum::Json(json!({ "target": target, "doc_id": doc_id }))),
        None => Err(Error::NotFound { what: "link target".to_string(), id: target.to_string() }),
    }
}

#[utoipa::path(get, path = "/api/docs/{doc_id}/broken-links", tag = "wikilinks", params(crate::openapi::DocId),
    responses((status = 200, description = "Each link of the document, by target", body = Vec<crate::openapi::shapes::LinkStatus>)))]
async fn broken_links(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Path(doc_id): Path<String>,
) -> Result<axum::Json<Value>, Error> {
    readable(&state, &caller, &doc_id).await?;
    let links = state.storage().link_status(&doc_id, &caller.scope()).await?;
    let out: Vec<Value> = links
        .into_iter()
        .map(|l| json!({ "target": l.target, "resolved": l.resolved, "resolved_doc_id": l.resolved_doc_id }))
        .collect();
    Ok(axum::Json(Value::Array(out)))
}

#[utoipa::path(get, path = "/api/docs/{doc_id}/dependencies", tag = "wikilinks", params(crate::openapi::DocId),
    responses((status = 200, description = "Links out and in, to readable documents", body = crate::openapi::shapes::Dependencies)))]
async fn dependencies_of(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Path(doc_id): Path<String>,
) -> Result<axum::Json<Value>, Error> {
    readable(&state, &caller, &doc_id).await?;
    let (outgoing, incoming) = state.storage().dependencies_of(&doc_id, &caller.scope()).await?;
    let out = |deps: Vec<_>| deps.into_iter().map(DependencyOut::from).collect::<Vec<_>>();
    Ok(axum::Json(json!({ "outgoing": out(outgoing), "incoming": out(incoming) })))
}

fn wikilink() -> String {
    WIKILINK.to_string()
}

#[derive(Deserialize, utoipa::ToSchema)]
struct DependencyBody {
    from_doc_id: String,
    to_doc_id: String,
    #[serde(default = "wikilink")]
    link_type: String,
    #[serde(default)]
    link_text: Option<String>,
    #[serde(default)]
    section: Option<String>,
}

#[utoipa::path(post, path = "/api/docs/{doc_id}/dependencies", tag = "wikilinks", params(crate::openapi::DocId), request_body = DependencyBody,
    responses((status = 201, description = "The edge", body = DependencyOut)))]
async fn add_dependency(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(doc_id): Path<String>,
    Json(body): Json<DependencyBody>,
) -> Result<Response, Error> {
    if body.from_doc_id != doc_id {
        return Err(Error::validation(
            "from_doc_id",
            "from_doc_id must be the document of the path",
        ));
    }
    let from = readable(&state, &caller, &body.from_doc_id).await?;
    caller.require(&from.path, Action::Edit)?;
    readable(&state, &caller, &body.to_doc_id).await?;
    for (field, text) in [("link_text", &body.link_text), ("section", &body.section)] {
        if text
            .as_ref()
            .is_some_and(|t| t.chars().count() > MAX_TARGET || t.chars().any(char::is_control))
        {
            return Err(Error::validation(
                field,
                format!(
                    "{field} must be at most {MAX_TARGET} characters, without control characters"
                ),
            ));
        }
    }
    let dependency = state
        .storage()
        .add_dependency(NewDependency {
            from_doc_id: body.from_doc_id,
            to_doc_id: body.to_doc_id,
            link_type: body.link_type,
            link_text: body.link_text,
            section: body.section,
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(DependencyOut::from(dependency))).into_response())
}

#[utoipa::path(get, path = "/api/dependencies", tag = "wikilinks",
    responses((status = 200, description = "Every edge between readable documents", body = Vec<DependencyOut>)))]
async fn all_dependencies(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
) -> Result<axum::Json<Vec<DependencyOut>>, Error> {
    let deps = state.storage().all_dependencies(&caller.scope()).await?;
    Ok(axum::Json(deps.into_iter().map(DependencyOut::from).collect()))
}

#[utoipa::path(post, path = "/api/dependencies/reindex", tag = "wikilinks",
    responses((status = 200, description = "Every document's links read again (admin)", body = crate::openapi::shapes::Reindexed)))]
async fn reindex(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
) -> Result<axum::Json<Value>, Error> {
    let (documents, dependencies) = state.storage().reindex_dependencies().await?;
    Ok(axum::Json(
        json!({ "documents_processed": documents, "dependencies_created": dependencies }),
    ))
}
