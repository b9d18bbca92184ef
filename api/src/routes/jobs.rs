//! `/api/jobs`: runs of the documentation workflow, started, listed, inspected, retried
//! and cancelled. Who may see a job follows who may read its repository's folder.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json as JsonOut, Router};
use isocrates_engine::{Run, RunStatus};
use isocrates_storage::permission::{Action, Role};
use isocrates_workflows::docgen::{self, DocgenInput, Trigger};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::{AuthUser, Caller, MaybeUser};
use crate::error::Error;
use crate::extract::{Json, OptionalJson, Path, Query, bounded};
use crate::model::JobOut;

/// The handlers of this module, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, show, retry, cancel))]
pub(crate) struct Api;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/jobs", post(create).get(list))
        .route("/api/jobs/{job_id}", get(show))
        .route("/api/jobs/{job_id}/retry", post(retry))
        .route("/api/jobs/{job_id}/cancel", post(cancel))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CreateJob {
    repo_url: String,
    #[serde(default)]
    force: bool,
    /// Documents this commit rather than the head of the tracked branch.
    #[serde(default)]
    commit_sha: Option<String>,
}

#[utoipa::path(post, path = "/api/jobs", tag = "jobs", request_body = CreateJob,
    responses(
        (status = 201, description = "A new job", body = JobOut),
        (status = 200, description = "The job already queued or running for this repository and commit", body = JobOut),
    ))]
async fn create(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Json(body): Json<CreateJob>,
) -> Result<impl IntoResponse, Error> {
    let repo_url =
        docgen::normalize_repo_url(&body.repo_url).map_err(|m| Error::validation("repo_url", m))?;
    caller.require(&Folders::load(&state).await?.of(&repo_url), Action::Edit)?;
    let commit_sha = docgen::normalize_commit_sha(body.commit_sha.as_deref())
        .map_err(|m| Error::validation("commit_sha", m))?;
    let input = DocgenInput {
        repo_url,
        commit_sha,
        force: body.force,
        changed_paths: None,
        added_paths: Vec::new(),
        base_commit: None,
    };
    let submitted = state.engine().submit(input.into_run(Trigger::Manual)).await?;
    if submitted.created {
        super::audit(
            &state,
            &caller,
            "job.create",
            &submitted.run.id,
            json!({ "force": body.force }),
        )
        .await;
    }
    let status = if submitted.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, JsonOut(job(&state, &submitted.run).await?)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only this repository's jobs.
    repo_url: Option<String>,
    /// Only jobs in this status.
    #[param(value_type = Option<String>, pattern = "^(queued|running|paused|completed|failed|cancelled|skipped)$")]
    status: Option<RunStatus>,
    /// Jobs at most.
    #[serde(default = "ten")]
    #[param(minimum = 1, maximum = 100, default = 10)]
    limit: i64,
    /// The id of the last job of the previous page: the page goes on after it.
    before: Option<String>,
}

fn ten() -> i64 {
    10
}

/// How many pages of runs a listing reads at most while skipping runs the caller may not
/// see, so that a caller with a narrow grant cannot make one request scan the whole table.
const MAX_PAGES_SCANNED: usize = 20;

#[utoipa::path(get, path = "/api/jobs", tag = "jobs", params(ListParams),
    responses((status = 200, description = "Newest first, of repositories the caller may read", body = Vec<JobOut>)))]
async fn list(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Query(params): Query<ListParams>,
) -> Result<JsonOut<Vec<JobOut>>, Error> {
    let limit = bounded("limit", params.limit, 1, 100)?;
    let mut filter =
        docgen::run_filter(params.repo_url.as_deref(), params.status, params.before, limit)
            .map_err(|m| Error::validation("repo_url", m))?;
    let wanted = usize::try_from(limit).unwrap_or_default();
    let folders = Folders::load(&state).await?;
    let mut shown = Vec::with_capacity(wanted);
    for _ in 0..MAX_PAGES_SCANNED {
        let page = state.engine().runs(&filter).await?;
        let last_page = page.len() < wanted;
        filter.before = page.last().map(|r| r.id.clone());
        let visible_runs = page.into_iter().filter(|r| visible(&caller, r, &folders));
        shown.extend(visible_runs.take(wanted - shown.len()));
        if last_page || shown.len() == wanted {
            break;
        }
    }
    let jobs = JobOut::load_many(state.engine(), &shown).await?;
    Ok(JsonOut(jobs))
}

#[utoipa::path(get, path = "/api/jobs/{job_id}", tag = "jobs", params(("job_id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job with its step history", body = JobOut)))]
async fn show(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Path(id): Path<String>,
) -> Result<JsonOut<JobOut>, Error> {
    let run = visible_run(&state, &caller, &id, &Folders::load(&state).await?).await?;
    Ok(JsonOut(job(&state, &run).await?))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct RetryJob {
    /// The step to resume at; by default the one where the run stopped.
    from_step: Option<String>,
}

#[utoipa::path(post, path = "/api/jobs/{job_id}/retry", tag = "jobs", params(("job_id" = String, Path, description = "The job's id")), request_body(content = Option<RetryJob>, description = "Optional"),
    responses((status = 200, description = "The job, resumed", body = JobOut)))]
async fn retry(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RetryJob>,
) -> Result<JsonOut<JobOut>, Error> {
    let run = steerable_run(&state, &caller, &id).await?;
    let from_step = body.from_step.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let run = state.engine().retry(&run.id, from_step).await?;
    super::audit(&state, &caller, "job.retry", &run.id, json!({ "from_step": from_step })).await;
    Ok(JsonOut(job(&state, &run).await?))
}

#[utoipa::path(post, path = "/api/jobs/{job_id}/cancel", tag = "jobs", params(("job_id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job, cancelled or stopping at its next step", body = JobOut)))]
async fn cancel(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<JsonOut<JobOut>, Error> {
    let run = steerable_run(&state, &caller, &id).await?;
    let run = state.engine().cancel(&run.id).await?;
    super::audit(&state, &caller, "job.cancel", &run.id, serde_json::Value::Null).await;
    Ok(JsonOut(job(&state, &run).await?))
}

/// The folder each repository's pages live under: its tracked repository's, else its name.
struct Folders(std::collections::HashMap<String, String>);

impl Folders {
    async fn load(state: &AppState) -> Result<Folders, Error> {
        let rows = state.storage().repositories().await?;
        Ok(Folders(rows.into_iter().map(|r| (r.repo_url, r.folder)).collect()))
    }

    fn of(&self, repo_url: &str) -> String {
        self.0.get(repo_url).cloned().unwrap_or_else(|| docgen::repo_folder(repo_url))
    }
}

/// Whether the caller may see the run: it is a documentation run whose repository's folder
/// the caller may read.
fn visible(caller: &Caller, run: &Run, folders: &Folders) -> bool {
    DocgenInput::of(run).is_some_and(|input| caller.can(&folders.of(&input.repo_url), Action::Read))
}

/// The run, or 404 when it does not exist or the caller may not see it.
async fn visible_run(
    state: &AppState,
    caller: &Caller,
    id: &str,
    folders: &Folders,
) -> Result<Run, Error> {
    let not_found = || Error::NotFound { what: "Job".to_string(), id: id.to_string() };
    let run = match state.engine().run(id).await {
        Ok(run) => run,
        Err(isocrates_engine::Error::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if visible(caller, &run, folders) { Ok(run) } else { Err(not_found()) }
}

/// The run, when the caller is an editor or admin who may edit its repository's folder.
async fn steerable_run(state: &AppState, caller: &Caller, id: &str) -> Result<Run, Error> {
    let folders = Folders::load(state).await?;
    let run = visible_run(state, caller, id, &folders).await?;
    if !matches!(caller.role, Some(Role::Admin | Role::Editor)) {
        return Err(Error::Forbidden(
            "retrying and cancelling jobs is for editors and admins".to_string(),
        ));
    }
    let folder = DocgenInput::of(&run).map(|i| folders.of(&i.repo_url)).unwrap_or_default();
    caller.require(&folder, Action::Edit)?;
    Ok(run)
}

/// The contract's `Job` of a run, with its step history.
async fn job(state: &AppState, run: &Run) -> Result<JobOut, Error> {
    Ok(JobOut::load(state.engine(), run).await?)
}
