//! The tracked repositories, for admins: `GET /api/repositories` lists them with the branch
//! each follows, the folder its pages live under, the commit last published and what
//! GitHub's API says of it; `PUT /api/repositories/{id}` changes the branch it follows
//! (`null`: the repository's default) and moves its pages to another folder, where its
//! later runs update them.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, put};
use isocrates_storage::Timestamp;
use isocrates_storage::repositories::Repository;
use isocrates_workflows::docgen;
use serde::Serialize;
use serde_json::Value;

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::Error;
use crate::extract::Json;

/// The handlers of this module, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, change))]
pub(crate) struct Api;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/repositories", get(list)).route("/api/repositories/{id}", put(change))
}

/// A tracked repository as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct RepositoryOut {
    id: String,
    repo_url: String,
    /// The branch set by an admin; `null` follows the default branch.
    branch: Option<String>,
    /// The branch whose pushes are documented.
    tracked_branch: Option<String>,
    folder: String,
    default_branch: Option<String>,
    /// Whether GitHub says the repository is private; `null` when not asked.
    private: Option<bool>,
    last_commit: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<Repository> for RepositoryOut {
    fn from(r: Repository) -> RepositoryOut {
        RepositoryOut {
            tracked_branch: r.tracked_branch().map(str::to_string),
            id: r.id,
            repo_url: r.repo_url,
            branch: r.branch,
            folder: r.folder,
            default_branch: r.default_branch,
            private: r.private,
            last_commit: r.last_commit,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[utoipa::path(get, path = "/api/repositories", tag = "repositories",
    responses((status = 200, description = "Every tracked repository (admin)", body = Vec<RepositoryOut>)))]
async fn list(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<axum::Json<Vec<RepositoryOut>>, Error> {
    caller.require_admin()?;
    let rows = state.storage().repositories().await?;
    Ok(axum::Json(rows.into_iter().map(RepositoryOut::from).collect()))
}

#[utoipa::path(put, path = "/api/repositories/{id}", tag = "repositories",
    params(("id" = String, Path, description = "The tracked repository's id")),
    request_body = crate::openapi::shapes::RepositoryChange,
    responses((status = 200, description = "The repository, changed (admin)", body = RepositoryOut)))]
async fn change(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<axum::Json<RepositoryOut>, Error> {
    caller.require_admin()?;
    let branch = match body.get("branch") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(b)) => Some(Some(b.clone())),
        Some(_) => return Err(Error::validation("branch", "branch must be a branch name or null")),
    };
    let folder = match body.get("folder") {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) => Some(f.clone()),
        Some(_) => return Err(Error::validation("folder", "folder must be a folder path")),
    };
    if let Some(folder) = &folder {
        // Checked before anything is written, so a refused folder changes nothing.
        let row = state.storage().repository_with_id(&id).await?;
        row.check_new_folder(folder)?;
        // A run publishes new pages into the folder its clone read: moving the pages under
        // a live run would split the wiki between two folders.
        // FIXME: a push that arrives between this check and the move can still clone the
        // old folder and publish a new page there; holding the repository's run slot
        // during the move (an engine lock on its concurrency key) would close the gap.
        let filter =
            docgen::run_filter(Some(&row.repo_url), None, None, 20).map_err(Error::Internal)?;
        let runs = state.engine().runs(&filter).await?;
        if runs.iter().any(|r| !r.status.is_terminal()) {
            return Err(Error::Conflict(format!(
                "a documentation job of {} is queued or running: move its folder once it ends",
                row.repo_url
            )));
        }
    }
    let mut row = state.storage().change_repository(&id, branch).await?;
    if let Some(folder) = folder {
        row = state.storage().move_repository(&id, &folder).await?;
    }
    super::audit(&state, &caller, "repository.change", &row.id, body).await;
    Ok(axum::Json(RepositoryOut::from(row)))
}
