//! `/api/personal`: the caller's own tree of folders and references to documents. Every
//! call needs a signed-in user (with auth off, the development admin) and acts on that
//! user's items only; another user's item is a 403. A reference needs read access to its document, and the tree hides references to
//! documents the user can no longer read.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use isocrates_storage::Timestamp;
use isocrates_storage::personal::{PersonalFolder, PersonalNode, PersonalRef};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{AuthUser, Caller};
use crate::error::Error;
use crate::extract::{Json, Path, Query};

/// The handlers of this module, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(tree, create_folder, delete_folder, move_folder, add_ref, delete_ref, move_ref))]
pub(crate) struct Api;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/personal/tree", get(tree))
        .route("/api/personal/folders", post(create_folder))
        .route("/api/personal/folders/{folder_id}", delete(delete_folder))
        .route("/api/personal/folders/{folder_id}/move", put(move_folder))
        .route("/api/personal/folders/{folder_id}/refs", post(add_ref))
        .route("/api/personal/refs/{ref_id}", delete(delete_ref))
        .route("/api/personal/refs/{ref_id}/move", put(move_ref))
}

/// The signed-in user's id. With `AUTH_ENABLED=false` a caller without a token is the
/// development admin, whose tree belongs to a service user made for it on first use.
async fn owner(state: &AppState, caller: &Caller) -> Result<String, Error> {
    if let Some(id) = caller.user_id() {
        return Ok(id);
    }
    if !state.config().auth_enabled {
        return Ok(state.storage().service_user(DEVELOPMENT_USER, "").await?.id);
    }
    Err(Error::Unauthorized("a personal tree needs a signed-in user".into()))
}

/// The service user that owns the development admin's personal tree.
const DEVELOPMENT_USER: &str = "development";

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct NodeOut {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    folder_id: String,
    document_id: Option<String>,
    ref_id: Option<String>,
    #[schema(no_recursion)]
    children: Vec<NodeOut>,
}

impl From<PersonalNode> for NodeOut {
    fn from(n: PersonalNode) -> NodeOut {
        NodeOut {
            kind: if n.is_folder { "folder" } else { "document" },
            id: n.id,
            name: n.name,
            folder_id: n.folder_id,
            document_id: n.document_id,
            ref_id: n.ref_id,
            children: n.children.into_iter().map(NodeOut::from).collect(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct FolderOut {
    folder_id: String,
    user_id: String,
    name: String,
    parent_id: Option<String>,
    sort_order: i64,
    created_at: Timestamp,
}

impl From<PersonalFolder> for FolderOut {
    fn from(f: PersonalFolder) -> FolderOut {
        FolderOut {
            folder_id: f.folder_id,
            user_id: f.user_id,
            name: f.name,
            parent_id: f.parent_id,
            sort_order: f.sort_order,
            created_at: f.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct RefOut {
    ref_id: String,
    user_id: String,
    folder_id: String,
    document_id: String,
    sort_order: i64,
    created_at: Timestamp,
}

impl From<PersonalRef> for RefOut {
    fn from(r: PersonalRef) -> RefOut {
        RefOut {
            ref_id: r.ref_id,
            user_id: r.user_id,
            folder_id: r.folder_id,
            document_id: r.document_id,
            sort_order: r.sort_order,
            created_at: r.created_at,
        }
    }
}

#[utoipa::path(get, path = "/api/personal/tree", tag = "personal",
    responses((status = 200, description = "The caller's folders and references", body = Vec<NodeOut>)))]
async fn tree(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<axum::Json<Vec<NodeOut>>, Error> {
    let user = owner(&state, &caller).await?;
    let nodes = state.storage().personal_tree(&user, &caller.scope()).await?;
    Ok(axum::Json(nodes.into_iter().map(NodeOut::from).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CreateBody {
    name: String,
    #[serde(default)]
    parent_id: Option<String>,
}

#[utoipa::path(post, path = "/api/personal/folders", tag = "personal", request_body = CreateBody,
    responses((status = 201, description = "The folder", body = FolderOut)))]
async fn create_folder(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Json(body): Json<CreateBody>,
) -> Result<Response, Error> {
    let user = owner(&state, &caller).await?;
    let parent = body.parent_id.filter(|p| !p.is_empty());
    let folder =
        state.storage().create_personal_folder(&user, &body.name, parent.as_deref()).await?;
    Ok((StatusCode::CREATED, axum::Json(FolderOut::from(folder))).into_response())
}

#[utoipa::path(delete, path = "/api/personal/folders/{folder_id}", tag = "personal", params(("folder_id" = String, Path, description = "One of the caller's personal folders")),
    responses((status = 204, description = "The folder and what it held are gone")))]
async fn delete_folder(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    let user = owner(&state, &caller).await?;
    state.storage().delete_personal_folder(&user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct MoveBody {
    #[serde(default)]
    parent_id: Option<String>,
}

#[utoipa::path(put, path = "/api/personal/folders/{folder_id}/move", tag = "personal", params(("folder_id" = String, Path, description = "One of the caller's personal folders")), request_body = MoveBody,
    responses((status = 200, description = "The folder under its new parent", body = FolderOut)))]
async fn move_folder(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    Json(body): Json<MoveBody>,
) -> Result<axum::Json<FolderOut>, Error> {
    let user = owner(&state, &caller).await?;
    let parent = body.parent_id.filter(|p| !p.is_empty());
    let folder = state.storage().move_personal_folder(&user, &id, parent.as_deref()).await?;
    Ok(axum::Json(FolderOut::from(folder)))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RefBody {
    document_id: String,
}

#[utoipa::path(post, path = "/api/personal/folders/{folder_id}/refs", tag = "personal", params(("folder_id" = String, Path, description = "One of the caller's personal folders")), request_body = RefBody,
    responses((status = 201, description = "The reference (the same one when asked again)", body = RefOut)))]
async fn add_ref(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(folder_id): Path<String>,
    Json(body): Json<RefBody>,
) -> Result<Response, Error> {
    let user = owner(&state, &caller).await?;
    // The folder first, so another user's folder is a 403 whatever the document.
    state.storage().personal_folder(&user, &folder_id).await?;
    let doc = super::docs::readable(&state, &caller, &body.document_id).await?;
    // Idempotent: asked again, the reference already there is the answer, with the same
    // status.
    let (reference, _) = state.storage().add_personal_ref(&user, &folder_id, &doc.id).await?;
    Ok((StatusCode::CREATED, axum::Json(RefOut::from(reference))).into_response())
}

#[utoipa::path(delete, path = "/api/personal/refs/{ref_id}", tag = "personal", params(("ref_id" = String, Path, description = "One of the caller's references")),
    responses((status = 204, description = "The reference is gone")))]
async fn delete_ref(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    let user = owner(&state, &caller).await?;
    state.storage().delete_personal_ref(&user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct MoveRefQuery {
    target_folder_id: String,
}

#[utoipa::path(put, path = "/api/personal/refs/{ref_id}/move", tag = "personal", params(("ref_id" = String, Path, description = "One of the caller's references"), MoveRefQuery),
    responses((status = 200, description = "The reference in its new folder", body = RefOut)))]
async fn move_ref(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    Query(q): Query<MoveRefQuery>,
) -> Result<axum::Json<RefOut>, Error> {
    let user = owner(&state, &caller).await?;
    let reference = state.storage().move_personal_ref(&user, &id, &q.target_folder_id).await?;
    Ok(axum::Json(RefOut::from(reference)))
}
