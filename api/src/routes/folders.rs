//! `/api/tree` and `/api/folders`: the tree of what the caller may read, folder metadata,
//! and moving or deleting a whole folder. A folder the caller may not read is a 404, as a
//! document is.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use isocrates_storage::Action;
use isocrates_storage::Timestamp;
use isocrates_storage::documents::check_path;
use isocrates_storage::folders::{
    Folder, FolderChange, FolderDelete, FolderUpdate, TreeNode, parent_of, rebase,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::auth::{AdminUser, AuthUser, Caller, MaybeUser};
use crate::error::Error;
use crate::extract::{Json, Path, Query};
use crate::routes::audit;

/// The handlers of this module, for the OpenAPI document. DELETE on the fixed paths
/// (`/api/folders/move`, ...) is DELETE of the folder of that name.
#[derive(utoipa::OpenApi)]
#[openapi(paths(tree, create, list, show, update, move_folder, remove, cleanup))]
pub(crate) struct Api;

pub(crate) fn routes() -> Router<AppState> {
    // A folder may be named like the fixed routes beside it; DELETE on those paths
    // deletes the folder of that name.
    Router::new()
        .route("/api/tree", get(tree))
        .route(
            "/api/folders/metadata",
            post(create).get(list).delete(|s, c, q| remove_named(s, c, "metadata".into(), q)),
        )
        .route(
            "/api/folders/metadata/{folder_id}",
            get(show).put(update).delete(|s, c, Path(rest): Path<String>, q| {
                remove_named(s, c, format!("metadata/{rest}"), q)
            }),
        )
        .route(
            "/api/folders/move",
            put(move_folder).delete(|s, c, q| remove_named(s, c, "move".into(), q)),
        )
        .route(
            "/api/folders/cleanup",
            post(cleanup).delete(|s, c, q| remove_named(s, c, "cleanup".into(), q)),
        )
        .route("/api/folders/{*folder_path}", delete(remove))
}

/// A node of the tree, as the contract shapes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TreeNodeOut {
    id: String,
    name: String,
    /// `folder` or `document`.
    #[serde(rename = "type")]
    kind: &'static str,
    is_crate: bool,
    doc_type: Option<String>,
    path: String,
    description: Option<String>,
    icon: Option<String>,
    #[schema(no_recursion)]
    children: Vec<TreeNodeOut>,
}

impl From<TreeNode> for TreeNodeOut {
    fn from(node: TreeNode) -> TreeNodeOut {
        TreeNodeOut {
            kind: if node.is_folder { "folder" } else { "document" },
            doc_type: (!node.is_folder).then_some(node.doc_type),
            id: node.id,
            name: node.name,
            is_crate: node.is_crate,
            path: node.path,
            description: node.description,
            icon: node.icon,
            children: node.children.into_iter().map(TreeNodeOut::from).collect(),
        }
    }
}

/// A folder's metadata, as the contract shapes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct FolderOut {
    id: String,
    path: String,
    description: Option<String>,
    icon: Option<String>,
    sort_order: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<Folder> for FolderOut {
    fn from(f: Folder) -> FolderOut {
        FolderOut {
            id: f.id,
            path: f.path,
            description: f.description,
            icon: f.icon,
            sort_order: f.sort_order,
            created_at: f.created_at,
            updated_at: f.updated_at,
        }
    }
}

async fn tree_of(state: &AppState, caller: &Caller) -> Result<Vec<TreeNodeOut>, Error> {
    let nodes = state.storage().tree(&caller.scope()).await?;
    Ok(nodes.into_iter().map(TreeNodeOut::from).collect())
}

#[utoipa::path(get, path = "/api/tree", tag = "folders",
    responses((status = 200, description = "Folders by name, then documents by title; only what the caller may read", body = Vec<TreeNodeOut>)))]
async fn tree(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
) -> Result<axum::Json<Vec<TreeNodeOut>>, Error> {
    Ok(axum::Json(tree_of(&state, &caller).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CreateBody {
    path: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    icon: Option<String>,
    #[serde(default)]
    sort_order: i64,
}

#[utoipa::path(post, path = "/api/folders/metadata", tag = "folders", request_body = CreateBody,
    responses((status = 201, description = "The folder, its missing ancestors made too", body = FolderOut)))]
async fn create(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Json(body): Json<CreateBody>,
) -> Result<Response, Error> {
    let path = check_path("path", &body.path)?;
    if path.is_empty() {
        return Err(Error::validation("path", "path must name a folder, such as guides"));
    }
    caller.require(&path, Action::Edit)?;
    let folder =
        state.storage().create_folder(&path, body.description, body.icon, body.sort_order).await?;
    audit(&state, &caller, "folder.create", &folder.path, json!({"id": folder.id})).await;
    Ok((StatusCode::CREATED, axum::Json(FolderOut::from(folder))).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    #[serde(default)]
    path_prefix: Option<String>,
}

#[utoipa::path(get, path = "/api/folders/metadata", tag = "folders", params(ListQuery),
    responses((status = 200, description = "Readable folders, by sort order then path", body = Vec<FolderOut>)))]
async fn list(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<FolderOut>>, Error> {
    let prefix = q.path_prefix.filter(|p| !p.trim().is_empty());
    let folders = state.storage().folders(prefix.as_deref(), &caller.scope()).await?;
    Ok(axum::Json(folders.into_iter().map(FolderOut::from).collect()))
}

/// The folder `id` when the caller may read it; otherwise 404.
async fn readable(state: &AppState, caller: &Caller, id: &str) -> Result<Folder, Error> {
    match state.storage().folder(id).await? {
        Some(folder) if caller.can(&folder.path, Action::Read) => Ok(folder),
        _ => Err(Error::NotFound { what: "folder".into(), id: id.to_string() }),
    }
}

#[utoipa::path(get, path = "/api/folders/metadata/{folder_id}", tag = "folders", params(("folder_id" = String, Path, description = "The folder's id (`folder-` and a hash of its path)")),
    responses((status = 200, description = "The folder", body = FolderOut)))]
async fn show(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Path(id): Path<String>,
) -> Result<axum::Json<FolderOut>, Error> {
    Ok(axum::Json(FolderOut::from(readable(&state, &caller, &id).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct UpdateBody {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    icon: Option<String>,
    #[serde(default)]
    sort_order: Option<i64>,
}

#[utoipa::path(put, path = "/api/folders/metadata/{folder_id}", tag = "folders", params(("folder_id" = String, Path, description = "The folder's id (`folder-` and a hash of its path)")), request_body = UpdateBody,
    responses((status = 200, description = "The folder", body = FolderOut)))]
async fn update(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    Json(body): Json<UpdateBody>,
) -> Result<axum::Json<FolderOut>, Error> {
    let folder = readable(&state, &caller, &id).await?;
    caller.require(&folder.path, Action::Edit)?;
    let update = FolderUpdate {
        description: body.description,
        icon: body.icon,
        sort_order: body.sort_order,
    };
    let folder = state.storage().update_folder(&id, update).await?;
    audit(&state, &caller, "folder.update", &folder.path, json!({"id": folder.id})).await;
    Ok(axum::Json(FolderOut::from(folder)))
}

/// What a folder move or delete answers: what changed, and the caller's tree after it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ChangeOut {
    affected_documents: u64,
    folder_path: String,
    old_path: String,
    new_path: Option<String>,
    tree: Vec<TreeNodeOut>,
}

async fn change_out(
    state: &AppState,
    caller: &Caller,
    change: FolderChange,
) -> Result<axum::Json<ChangeOut>, Error> {
    Ok(axum::Json(ChangeOut {
        affected_documents: change.affected_documents,
        folder_path: change.folder_path,
        old_path: change.old_path,
        new_path: change.new_path,
        tree: tree_of(state, caller).await?,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct MoveBody {
    source_path: String,
    target_path: String,
}

#[utoipa::path(put, path = "/api/folders/move", tag = "folders", request_body = MoveBody,
    responses((status = 200, description = "What moved, and the tree after", body = ChangeOut)))]
async fn move_folder(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Json(body): Json<MoveBody>,
) -> Result<axum::Json<ChangeOut>, Error> {
    let source = check_path("source_path", &body.source_path)?;
    let target = check_path("target_path", &body.target_path)?;
    caller.require(&source, Action::Edit)?;
    caller.require(&target, Action::Edit)?;
    // A deeper grant may give less than the folder's: every document must be movable.
    for path in state.storage().paths_under(&source).await? {
        caller.require(&path, Action::Edit)?;
        caller.require(&rebase(&path, &source, &target).unwrap_or_default(), Action::Edit)?;
    }
    let change = state.storage().move_folder(&source, &target).await?;
    audit(
        &state,
        &caller,
        "folder.move",
        &source,
        json!({"target_path": target, "affected_documents": change.affected_documents}),
    )
    .await;
    change_out(&state, &caller, change).await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DeleteQuery {
    /// `move_up` lifts the folder's contents one level; `delete_all` trashes them.
    #[serde(default = "move_up")]
    #[param(pattern = "^(move_up|delete_all)$", default = "move_up")]
    action: String,
}

fn move_up() -> String {
    "move_up".to_string()
}

#[utoipa::path(delete, path = "/api/folders/{folder_path}", tag = "folders",
    params(("folder_path" = String, Path, description = "The folder, slashes included"), DeleteQuery),
    responses((status = 200, description = "What moved or was trashed, and the tree after", body = ChangeOut)))]
async fn remove(
    state: State<AppState>,
    caller: AuthUser,
    Path(folder_path): Path<String>,
    q: Query<DeleteQuery>,
) -> Result<axum::Json<ChangeOut>, Error> {
    remove_named(state, caller, folder_path, q).await
}

async fn remove_named(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    folder_path: String,
    Query(q): Query<DeleteQuery>,
) -> Result<axum::Json<ChangeOut>, Error> {
    let action = match q.action.as_str() {
        "move_up" => FolderDelete::MoveUp,
        "delete_all" => FolderDelete::DeleteAll,
        other => {
            return Err(Error::validation(
                "action",
                format!("action must be move_up or delete_all (got {other:?})"),
            ));
        }
    };
    let path = check_path("folder_path", &folder_path)?;
    if !caller.can(&path, Action::Read) {
        return Err(Error::NotFound { what: "folder".into(), id: path });
    }
    caller.require(&path, Action::Delete)?;
    // A deeper grant may give less than the folder's: every document must be deletable,
    // and, when the contents move up, movable to where they land.
    let parent = parent_of(&path);
    for doc_path in state.storage().paths_under(&path).await? {
        caller.require(&doc_path, Action::Delete)?;
        if action == FolderDelete::MoveUp {
            caller.require(&rebase(&doc_path, &path, parent).unwrap_or_default(), Action::Edit)?;
        }
    }
    let change = state.storage().delete_folder(&path, action).await?;
    audit(
        &state,
        &caller,
        "folder.delete",
        &path,
        json!({"action": q.action, "affected_documents": change.affected_documents}),
    )
    .await;
    change_out(&state, &caller, change).await
}

#[utoipa::path(post, path = "/api/folders/cleanup", tag = "folders",
    responses((status = 200, description = "Metadata rows with no document under them removed (admin)", body = crate::openapi::shapes::Cleaned)))]
async fn cleanup(
    State(state): State<AppState>,
    AdminUser(caller): AdminUser,
) -> Result<axum::Json<serde_json::Value>, Error> {
    let deleted = state.storage().cleanup_folders().await?;
    audit(&state, &caller, "folder.cleanup", "", json!({"deleted_count": deleted})).await;
    Ok(axum::Json(json!({"deleted_count": deleted})))
}
