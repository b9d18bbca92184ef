//! `/api/jobs`: runs of the documentation workflow, estimated, started, listed, inspected,
//! retried and cancelled, and what the models cost by month and repository. Who may see a
//! job, or a repository's spending, follows who may read its repository's folder.

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
use crate::model::{EstimateOut, JobOut, ModelSpendOut};

/// The handlers of this module, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, spending, show, retry, cancel))]
pub(crate) struct Api;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/jobs", post(create).get(list))
        .route("/api/jobs/spending", get(spending))
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
    /// Estimates the run instead of starting it: the pages it would write, their tokens
    /// and cost, and where the budgets stand. No model is called and nothing is recorded.
    #[serde(default)]
    dry_run: bool,
}

/// What `POST /api/jobs` answers with 200: the job already live, or a dry run's estimate.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
enum Created {
    /// The job already queued or running for this repository and commit.
    Job(Box<JobOut>),
    /// The estimate of a dry run.
    Estimate(Box<EstimateOut>),
}

#[utoipa::path(post, path = "/api/jobs", tag = "jobs", request_body = CreateJob,
    responses(
        (status = 201, description = "A new job", body = JobOut),
        (status = 200, description = "The job already queued or running for this repository and commit, or with `dry_run` the estimate of the run", body = Created),
        (status = 503, description = "A dry run could not reach the repository; try again", body = crate::openapi::ErrorBody),
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
    let input = DocgenInput::manual(repo_url, commit_sha, body.force);
    if body.dry_run {
        let estimate = estimate(&state, &caller, &input).await?;
        return Ok((StatusCode::OK, JsonOut(Created::Estimate(Box::new(estimate)))));
    }
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
    Ok((status, JsonOut(Created::Job(Box::new(job(&state, &submitted.run).await?)))))
}

/// Dry runs at once, across callers: each may fetch a repository and read every file of a
/// commit. A dry run holds its place until its work ends, even once its caller has been
/// answered.
static DRY_RUNS: std::sync::LazyLock<std::sync::Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| std::sync::Arc::new(tokio::sync::Semaphore::new(2)));

/// How long a dry run may take before its caller is answered 503.
const DRY_RUN_SECONDS: u64 = 120;

/// The estimate of a run of `input` for `caller`, beside this month's spending.
async fn estimate(
    state: &AppState,
    caller: &Caller,
    input: &DocgenInput,
) -> Result<EstimateOut, Error> {
    use isocrates_workflows::pipeline::estimate::EstimateError;
    let docgen = state.docgen().cloned().ok_or_else(|| {
        Error::Unavailable("this server runs no documentation workflow to estimate".to_string())
    })?;
    let spent = state.engine().spent_this_month(&docgen::repo_key(&input.repo_url)).await?;
    let wait = std::time::Duration::from_secs(10);
    let Ok(Ok(place)) = tokio::time::timeout(wait, DRY_RUNS.clone().acquire_owned()).await else {
        return Err(Error::Unavailable(
            "two dry runs are under way already; try again in a minute".to_string(),
        ));
    };
    let task_input = input.clone();
    let work = tokio::spawn(async move {
        let _place = place;
        isocrates_workflows::pipeline::estimate::estimate(docgen, &task_input, spent).await
    });
    let limit = std::time::Duration::from_secs(DRY_RUN_SECONDS);
    let estimate = match tokio::time::timeout(limit, work).await {
        Ok(Ok(Ok(estimate))) => estimate,
        Ok(Ok(Err(EstimateError::Refused(message)))) => {
            let about_commit = input.commit_sha.as_ref().is_some_and(|c| message.contains(c));
            let field = if about_commit { "commit_sha" } else { "repo_url" };
            return Err(Error::validation(field, message));
        }
        Ok(Ok(Err(EstimateError::Unavailable(message)))) => {
            return Err(Error::Unavailable(format!("{message}; try again")));
        }
        Ok(Ok(Err(EstimateError::Failed(message)))) => {
            return Err(Error::Internal(format!("estimating {}: {message}", input.repo_url)));
        }
        Ok(Err(stopped)) => {
            return Err(Error::Internal(format!("estimating {}: {stopped}", input.repo_url)));
        }
        Err(_) => {
            return Err(Error::Unavailable(format!(
                "the estimate took longer than {DRY_RUN_SECONDS} s (a large repository, or a \
                 slow host); isocrates generate --estimate has no time limit"
            )));
        }
    };
    let mut out = EstimateOut::from(estimate);
    // What every repository spent this month is for admins, as in /api/jobs/spending.
    if !caller.is_admin() {
        out.budgets.retain(|b| b.variable != "LLM_BUDGET_USD_PER_MONTH");
        out.within_budgets = out.budgets.iter().all(|b| b.spent_usd + out.cost_usd <= b.limit_usd);
    }
    Ok(out)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SpendingParams {
    /// Months to cover, this one included.
    #[serde(default = "three")]
    #[param(minimum = 1, maximum = 24, default = 3)]
    months: i64,
}

fn three() -> i64 {
    3
}

/// What the models cost, month by month and repository by repository, with the caps.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SpendingOut {
    /// The caps configured, in US dollars; `null` is no cap.
    pub budgets: BudgetsOut,
    /// Whether the months count every run: false when the caller may not read every
    /// repository, and the months then add up those it may.
    pub all_repositories: bool,
    /// Each month with spending, newest first.
    pub months: Vec<PeriodSpendOut>,
    /// Each repository's spending in each month, newest month first.
    pub repositories: Vec<PeriodSpendOut>,
}

/// The caps of `LLM_BUDGET_USD_*`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct BudgetsOut {
    /// `LLM_BUDGET_USD_PER_RUN`.
    pub per_run_usd: Option<f64>,
    /// `LLM_BUDGET_USD_PER_MONTH`: every repository together.
    pub per_month_usd: Option<f64>,
    /// `LLM_BUDGET_USD_PER_REPO_PER_MONTH`: each repository.
    pub per_repo_per_month_usd: Option<f64>,
}

/// What was spent in one month, in all or on one repository.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct PeriodSpendOut {
    /// `YYYY-MM`, in UTC.
    pub month: String,
    /// The repository, on a repository's line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    /// Calls answered.
    pub calls: i64,
    /// Tokens sent.
    pub tokens_in: i64,
    /// Tokens received.
    pub tokens_out: i64,
    /// What they cost, in US dollars.
    pub cost_usd: f64,
    /// What the cap leaves this month, on the current month's lines when a cap is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_usd: Option<f64>,
    /// The same by provider and model.
    pub models: Vec<ModelSpendOut>,
}

impl PeriodSpendOut {
    fn new(month: &str, repo_url: Option<String>) -> PeriodSpendOut {
        PeriodSpendOut {
            month: month.to_string(),
            repo_url,
            calls: 0,
            tokens_in: 0,
            tokens_out: 0,
            cost_usd: 0.0,
            remaining_usd: None,
            models: Vec::new(),
        }
    }

    fn add(&mut self, line: &isocrates_engine::SpendLine) {
        let spend = &line.spend;
        self.calls += spend.calls;
        self.tokens_in += spend.tokens_in;
        self.tokens_out += spend.tokens_out;
        self.cost_usd += spend.cost_usd;
        match self
            .models
            .iter_mut()
            .find(|m| m.provider == spend.provider && m.model == spend.model)
        {
            Some(model) => {
                model.calls += spend.calls;
                model.tokens_in += spend.tokens_in;
                model.tokens_out += spend.tokens_out;
                model.cost_usd += spend.cost_usd;
            }
            None => self.models.push(ModelSpendOut::from(spend.clone())),
        }
    }
}

/// The months from `months - 1` before the current one, as `YYYY-MM`.
fn first_month(months: i64) -> String {
    use chrono::Datelike;
    let now = chrono::Utc::now();
    let index = i64::from(now.year()) * 12 + i64::from(now.month0()) - (months - 1);
    format!("{:04}-{:02}", index.div_euclid(12), index.rem_euclid(12) + 1)
}

#[utoipa::path(get, path = "/api/jobs/spending", tag = "jobs", params(SpendingParams),
    responses((status = 200, description = "What the models cost by month and by repository the caller may read, by provider and model, with the caps", body = SpendingOut)))]
async fn spending(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Query(params): Query<SpendingParams>,
) -> Result<JsonOut<SpendingOut>, Error> {
    let months = bounded("months", params.months, 1, 24)?;
    let lines = state.engine().spending_since(&first_month(months)).await?;
    let folders = Folders::load(&state).await?;
    let budgets = state.docgen().map(|d| d.settings.budgets).unwrap_or_default();
    let current = isocrates_engine::month_of(&isocrates_storage::Timestamp::now());
    let mut out = SpendingOut {
        budgets: BudgetsOut {
            per_run_usd: budgets.per_run_usd,
            per_month_usd: budgets.per_month_usd,
            per_repo_per_month_usd: budgets.per_repo_month_usd,
        },
        all_repositories: caller.is_admin(),
        months: Vec::new(),
        repositories: Vec::new(),
    };
    for line in &lines {
        let repo_url = line.key.as_deref().and_then(docgen::repo_of_key);
        let readable = match repo_url {
            Some(url) => caller.can(&folders.of(url), Action::Read),
            None => caller.is_admin(),
        };
        if !readable {
            out.all_repositories = false;
            continue;
        }
        if out.months.last().is_none_or(|m| m.month != line.month) {
            out.months.push(PeriodSpendOut::new(&line.month, None));
        }
        if let Some(month) = out.months.last_mut() {
            month.add(line);
        }
        if let Some(url) = repo_url {
            let found = out
                .repositories
                .iter()
                .position(|r| r.month == line.month && r.repo_url.as_deref() == Some(url));
            let index = found.unwrap_or_else(|| {
                out.repositories.push(PeriodSpendOut::new(&line.month, Some(url.to_string())));
                out.repositories.len() - 1
            });
            out.repositories[index].add(line);
        }
    }
    for month in out.months.iter_mut().filter(|m| m.month == current) {
        if out.all_repositories {
            month.remaining_usd = budgets.per_month_usd.map(|cap| (cap - month.cost_usd).max(0.0));
        }
    }
    for repo in out.repositories.iter_mut().filter(|r| r.month == current) {
        repo.remaining_usd = budgets.per_repo_month_usd.map(|cap| (cap - repo.cost_usd).max(0.0));
    }
    Ok(JsonOut(out))
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
