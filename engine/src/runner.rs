//! The engine over apalis: [`Engine`] submits, inspects, retries and cancels runs; each
//! step of a run is one apalis task on the `isocrates-steps` queue, and the worker that
//! executes it commits the step's checkpoint, the run's new state and the task of the next
//! step in one transaction. A worker that dies mid-step leaves its task to apalis'
//! heartbeat recovery; the next worker finds the attempt interrupted and runs it again,
//! reusing every item checkpoint already written.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use futures::FutureExt;
use isocrates_db::{Db, Timestamp, Tx, args};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::RunStatus;
use crate::core::{self, Action, Event, FailureKind, Refusal};
use crate::store::{self, ModelSpend, Run, Spender, StepRecord, Usage};
use crate::workflow::{
    Admit, ItemFuture, ItemStore, StepContext, StepError, StepOutcome, Workflow,
};

/// The apalis queue of step tasks.
pub const QUEUE: &str = "isocrates-steps";

/// How long a step runs before its start is written down: steps shorter than this cost
/// no write at their start.
const START_RECORD_DELAY: Duration = Duration::from_millis(250);

/// How many times apalis hands out one task again after its worker died.
const TASK_MAX_ATTEMPTS: usize = 10;

/// What can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No run has this id.
    #[error("run not found: {0}")]
    NotFound(String),
    /// No workflow is registered under this name.
    #[error("unknown workflow {0}")]
    UnknownWorkflow(String),
    /// The workflow has no step of this name.
    #[error("the workflow has no step named {name}; its steps are {}", known.join(", "))]
    UnknownStep {
        /// The name asked for.
        name: String,
        /// The workflow's steps, in order.
        known: Vec<String>,
    },
    /// The operation does not apply to the run in its state.
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// The database failed.
    #[error("{0}")]
    Db(#[from] isocrates_db::Error),
    /// The task queue failed.
    #[error("task queue: {0}")]
    Queue(String),
    /// A schedule is unusable.
    #[error("{0}")]
    Schedule(String),
}

/// The payload of one step task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTask {
    /// The run.
    pub run_id: String,
    /// The step's index.
    pub step: usize,
    /// The attempt the task is for.
    pub attempt: u32,
    /// Matches the run's token only for the task that may continue it.
    pub token: String,
}

/// A run to start.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The workflow's name.
    pub workflow: String,
    /// Its input.
    pub input: Value,
    /// While a run with this key is queued or running, submitting returns it.
    pub dedup_key: Option<String>,
    /// At most one run with this key runs at once; a newer queued run supersedes older
    /// queued ones.
    pub concurrency_key: Option<String>,
    /// What started it.
    pub trigger: String,
}

/// The answer to a submission.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The run.
    pub run: Run,
    /// False when an existing run with the same dedup key was returned.
    pub created: bool,
}

/// Filters of a run listing.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this workflow.
    pub workflow: Option<String>,
    /// Only this status.
    pub status: Option<RunStatus>,
    /// Only this concurrency key.
    pub concurrency_key: Option<String>,
    /// Only runs created before the run with this id (a cursor).
    pub before: Option<String>,
    /// The most runs returned.
    pub limit: i64,
}

/// How many runs and step attempts are in each status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Runs by status (`queued`, `running`, `succeeded`, ...).
    pub runs: Vec<(String, u64)>,
    /// Step attempts by status.
    pub steps: Vec<(String, u64)>,
}

/// The state of the queue, for health checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueHealth {
    /// Runs waiting to start or to continue.
    pub queued: u64,
    /// Runs a worker is executing.
    pub running: u64,
    /// Runs waiting for an operator.
    pub paused: u64,
    /// Runs that failed (and were not retried).
    pub failed: u64,
    /// Workers that reported being alive recently.
    pub workers: u64,
}

/// Counts of what this process's engine saw happen, for `/metrics`: runs by the state they
/// entered, step attempts by how they ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Runs that entered each state (`queued`, `running`, `completed`, ...).
    pub runs: BTreeMap<String, u64>,
    /// Step attempts by outcome (`succeeded`, `failed`, `interrupted`, ...).
    pub steps: BTreeMap<String, u64>,
}

struct Inner {
    db: Db,
    counters: std::sync::Mutex<Counters>,
    workflows: HashMap<String, Arc<Workflow>>,
    /// One sender per worker of this process: a push made here wakes them at once, instead
    /// of at their next poll.
    wakers: std::sync::Mutex<Vec<futures::channel::mpsc::UnboundedSender<()>>>,
}

/// The engine's handle: cheap to clone, shared by the API and the workers.
#[derive(Clone)]
pub struct Engine(Arc<Inner>);

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("workflows", &self.0.workflows.keys()).finish()
    }
}

/// A new run id: a ULID, increasing within this process even inside one millisecond, so
/// that listing runs by id lists them in the order they were created.
fn run_id() -> String {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let id = match generator.generate() {
        Ok(id) => id,
        // 2^80 ids in one millisecond: start over from a random one.
        Err(overflow) => overflow.commit_overflow_random(),
    };
    id.to_string().to_lowercase()
}

fn jitter() -> f64 {
    // The sub-second part of the clock is random enough to spread retries apart.
    f64::from(chrono::Utc::now().timestamp_subsec_nanos()) / 1e9
}

impl Engine {
    /// An engine over `db` running `workflows`. The engine's tables come with the
    /// workspace's migrations; apalis' own are applied here.
    pub async fn new(db: Db, workflows: Vec<Workflow>) -> Result<Engine, Error> {
        match &db {
            Db::Sqlite(pool) => {
                let mut migrator = apalis_sqlite::SqliteStorage::<()>::migrations();
                // Our migrations share `_sqlx_migrations` with apalis' on SQLite.
                migrator.set_ignore_missing(true);
                migrator.run(pool).await.map_err(|e| Error::Queue(e.to_string()))?;
            }
            Db::Postgres(pool) => {
                apalis_postgres::PostgresStorage::setup(pool)
                    .await
                    .map_err(|e| Error::Queue(e.to_string()))?;
            }
        }
        let workflows = workflows.into_iter().map(|w| (w.name.clone(), Arc::new(w))).collect();
        Ok(Engine(Arc::new(Inner {
            db,
            counters: std::sync::Mutex::default(),
            workflows,
            wakers: std::sync::Mutex::default(),
        })))
    }

    /// What this process's engine has counted since it started.
    pub fn counters(&self) -> Counters {
        self.0.counters.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn count_run(&self, status: RunStatus) {
        if let Ok(mut c) = self.0.counters.lock() {
            *c.runs.entry(store::status_name(status).to_string()).or_default() += 1;
        }
    }

    fn count_step(&self, outcome: &str) {
        if let Ok(mut c) = self.0.counters.lock() {
            *c.steps.entry(outcome.to_string()).or_default() += 1;
        }
    }

    /// Wakes this process's workers after a commit that may have pushed a task.
    fn wake(&self) {
        if let Ok(mut wakers) = self.0.wakers.lock() {
            wakers.retain(|w| w.unbounded_send(()).is_ok());
        }
    }

    fn workflow(&self, name: &str) -> Result<Arc<Workflow>, Error> {
        self.0.workflows.get(name).cloned().ok_or_else(|| Error::UnknownWorkflow(name.to_string()))
    }

    /// Starts a run, or returns the live run with the same dedup key. A queued run with
    /// the same concurrency key is superseded (cancelled, saying by which run); the new run
    /// starts at once unless another run with its key is running, in which case it starts
    /// when that one ends.
    pub async fn submit(&self, new: NewRun) -> Result<Submitted, Error> {
        let mut tx = self.0.db.begin().await?;
        let submitted = self.submit_in(&mut tx, new).await?;
        tx.commit().await?;
        self.after_submit(&submitted);
        Ok(submitted)
    }

    fn after_submit(&self, submitted: &Submitted) {
        if submitted.created {
            self.wake();
            self.count_run(RunStatus::Queued);
            let run = &submitted.run;
            tracing::info!(run.id = %run.id, workflow = %run.workflow, trigger = %run.trigger, "run queued");
        }
    }

    async fn submit_in(&self, tx: &mut Tx, new: NewRun) -> Result<Submitted, Error> {
        let workflow = self.workflow(&new.workflow)?;
        lock_keys(tx, &[new.dedup_key.as_deref(), new.concurrency_key.as_deref()]).await?;
        if let Some(key) = &new.dedup_key {
            let sql = format!(
                "SELECT {} FROM runs WHERE dedup_key = $1 AND status IN ('queued', 'running') \
                 ORDER BY created_at DESC LIMIT 1",
                store::RUN_COLUMNS
            );
            if let Some(row) = tx.fetch_optional::<store::RunRow>(sql, args![key]).await? {
                return Ok(Submitted { run: Run::from(row), created: false });
            }
        }
        let id = run_id();
        let now = Timestamp::now();
        tx.execute(
            "INSERT INTO runs (id, workflow, input, dedup_key, concurrency_key, status, \
             current_step, attempt, cancel_requested, trigger, retry_count, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'queued', 0, 1, FALSE, $6, 0, $7, $7)",
            args![&id, &workflow.name, new.input.clone(), new.dedup_key.clone(), new.concurrency_key.clone(), &new.trigger, now],
        )
        .await?;
        if let Some(key) = &new.concurrency_key {
            let reason = format!("superseded by the newer run {id}");
            tx.execute(
                "UPDATE runs SET status = 'cancelled', error = $1, finished_at = $2, updated_at = $2 \
                 WHERE concurrency_key = $3 AND status = 'queued' AND id <> $4",
                args![reason, now, key, &id],
            )
            .await?;
        }
        let key_busy = match &new.concurrency_key {
            Some(key) => running_with_key(tx, key, &id).await?,
            None => false,
        };
        if !key_busy {
            push_step(tx, &id, 0, 1, Duration::ZERO).await?;
        }
        let run = store::load_run(tx, &id).await?.ok_or_else(|| Error::NotFound(id))?;
        Ok(Submitted { run, created: true })
    }

    /// Starts the run of tick `tick` of the schedule `schedule`, unless a run for that
    /// tick exists already (another process running the same schedule started it).
    pub async fn submit_tick(
        &self,
        schedule: &str,
        tick: u64,
        new: NewRun,
    ) -> Result<Option<Submitted>, Error> {
        let mut tx = self.0.db.begin().await?;
        let submitted = self.submit_in(&mut tx, new).await?;
        let claimed = tx
            .execute(
                "INSERT INTO schedule_ticks (schedule, tick, run_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (schedule, tick) DO NOTHING",
                args![schedule, i64::try_from(tick).unwrap_or(i64::MAX), &submitted.run.id],
            )
            .await?;
        if claimed == 0 {
            // Dropping the transaction rolls the new run back.
            return Ok(None);
        }
        tx.commit().await?;
        self.after_submit(&submitted);
        Ok(Some(submitted))
    }

    /// Runs the schedule `name` until `shutdown`: at every tick of the cron expression
    /// `cron` (with seconds: `0 0 3 * * *` is daily at 03:00 UTC), `make(tick)` gives the
    /// run to start. Several processes may run the same schedule; each tick starts one run.
    pub async fn run_schedule(
        &self,
        name: &str,
        cron: &str,
        make: impl Fn(u64) -> NewRun + Send + Sync + 'static,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let schedule = <cron::Schedule as std::str::FromStr>::from_str(cron).map_err(|e| {
            Error::Schedule(format!("schedule {name}: '{cron}' is not a cron expression: {e}"))
        })?;
        let engine = self.clone();
        let schedule_name = name.to_string();
        let make = Arc::new(make);
        let handler = move |tick: apalis_cron::Tick| {
            let (engine, name, make) = (engine.clone(), schedule_name.clone(), make.clone());
            async move {
                let at = tick.get_timestamp();
                match engine.submit_tick(&name, at, make(at)).await {
                    Ok(Some(s)) => {
                        tracing::info!(schedule = %name, run.id = %s.run.id, "scheduled run started")
                    }
                    Ok(None) => {
                        tracing::debug!(schedule = %name, tick = at, "tick already started elsewhere")
                    }
                    Err(e) => {
                        tracing::warn!(schedule = %name, error = %e, "scheduled run could not start")
                    }
                }
                Ok::<(), Error>(())
            }
        };
        let worker_name =
            format!("schedule-{name}-{}", ulid::Ulid::generate().to_string().to_lowercase());
        let worker = WorkerBuilder::new(worker_name.as_str())
            .backend(apalis_cron::CronScheduler::new(schedule))
            .build(handler);
        let stop = async move {
            shutdown.await;
            Ok::<(), std::io::Error>(())
        };
        worker.run_until(stop).await.map_err(|e| Error::Queue(e.to_string()))
    }

    /// A run.
    pub async fn run(&self, id: &str) -> Result<Run, Error> {
        store::get_run(&self.0.db, id).await?.ok_or_else(|| Error::NotFound(id.to_string()))
    }

    /// The attempts of a run's steps, in the order they ran.
    pub async fn steps(&self, id: &str) -> Result<Vec<StepRecord>, Error> {
        let mut by_run = store::steps_of(&self.0.db, &[id.to_string()]).await?;
        Ok(by_run.remove(id).unwrap_or_default())
    }

    /// The attempts of the steps of each of `run_ids`, in one query.
    pub async fn steps_of_runs(
        &self,
        run_ids: &[String],
    ) -> Result<HashMap<String, Vec<StepRecord>>, Error> {
        Ok(store::steps_of(&self.0.db, run_ids).await?)
    }

    /// The checkpoints of the step named `step` of each of `runs` that finished it, by run
    /// id, in one query.
    pub async fn checkpoints(
        &self,
        runs: &[Run],
        step: &str,
    ) -> Result<HashMap<String, Value>, Error> {
        let mut index_of = HashMap::new();
        for run in runs {
            let workflow = self.workflow(&run.workflow)?;
            if let Some(index) = workflow.step_index(step) {
                index_of.insert(run.id.clone(), index);
            }
        }
        let ids: Vec<String> = index_of.keys().cloned().collect();
        let mut indexes: Vec<usize> = index_of.values().copied().collect();
        indexes.sort_unstable();
        indexes.dedup();
        let found = store::checkpoints_of(&self.0.db, &ids, &indexes).await?;
        Ok(found
            .into_iter()
            .filter(|((id, index), _)| index_of.get(id) == Some(index))
            .map(|((id, _), output)| (id, output))
            .collect())
    }

    /// How many items of the step named `step` the run has recorded: the pages a write
    /// step has finished, say, while it runs.
    pub async fn items_done(&self, run: &Run, step: &str) -> Result<u64, Error> {
        let index =
            self.workflow(&run.workflow)?.step_index(step).ok_or_else(|| Error::UnknownStep {
                name: step.to_string(),
                known: self.step_names(&run.workflow).unwrap_or_default(),
            })?;
        Ok(store::count_items(&self.0.db, &run.id, index).await?)
    }

    /// How many runs wait, run and failed, and how many workers (of any process) reported
    /// being alive within the last `alive_within`.
    pub async fn queue_health(&self, alive_within: Duration) -> Result<QueueHealth, Error> {
        #[derive(sqlx::FromRow)]
        struct ByStatus {
            status: String,
            n: i64,
        }
        let rows: Vec<ByStatus> = self
            .0
            .db
            .fetch_all(
                "SELECT status, count(*) AS n FROM runs \
                 WHERE status IN ('queued', 'running', 'paused', 'failed') GROUP BY status",
                vec![],
            )
            .await?;
        let mut health = QueueHealth::default();
        for row in rows {
            let n = u64::try_from(row.n).unwrap_or_default();
            match row.status.as_str() {
                "queued" => health.queued = n,
                "running" => health.running = n,
                "paused" => health.paused = n,
                _ => health.failed = n,
            }
        }
        let seconds = i64::try_from(alive_within.as_secs()).unwrap_or(i64::MAX);
        // apalis' own table of workers, which each worker touches at every heartbeat.
        let sql = match &self.0.db {
            Db::Sqlite(_) => {
                "SELECT count(*) AS n FROM Workers WHERE worker_type = $1 \
                 AND last_seen >= CAST(strftime('%s', 'now') AS INTEGER) - $2"
            }
            Db::Postgres(_) => {
                "SELECT count(*) AS n FROM apalis.workers WHERE worker_type = $1 \
                 AND last_seen >= now() - $2 * interval '1 second'"
            }
        };
        let alive: Option<CountRow> = self.0.db.fetch_optional(sql, args![QUEUE, seconds]).await?;
        health.workers = alive.map_or(0, |r| u64::try_from(r.n).unwrap_or_default());
        Ok(health)
    }

    /// How many runs and how many step attempts are in each status, for the metrics.
    pub async fn status_counts(&self) -> Result<StatusCounts, Error> {
        #[derive(sqlx::FromRow)]
        struct ByStatus {
            status: String,
            n: i64,
        }
        let count = |rows: Vec<ByStatus>| {
            rows.into_iter().map(|r| (r.status, u64::try_from(r.n).unwrap_or_default())).collect()
        };
        let runs: Vec<ByStatus> = self
            .0
            .db
            .fetch_all("SELECT status, count(*) AS n FROM runs GROUP BY status", vec![])
            .await?;
        let steps: Vec<ByStatus> = self
            .0
            .db
            .fetch_all("SELECT status, count(*) AS n FROM run_steps GROUP BY status", vec![])
            .await?;
        Ok(StatusCounts { runs: count(runs), steps: count(steps) })
    }

    /// What every model spent over all runs, by provider and model.
    pub async fn spend_by_model(&self) -> Result<Vec<ModelSpend>, Error> {
        Ok(store::spend_by_model(&self.0.db).await?)
    }

    /// The spending of the months from `since` (`YYYY-MM`, UTC) on, by month, concurrency
    /// key, provider and model, newest month first.
    pub async fn spending_since(&self, since: &str) -> Result<Vec<store::SpendLine>, Error> {
        Ok(store::spending_since(&self.0.db, since).await?)
    }

    /// What this month has spent in all and on the runs of concurrency key `key`: what a
    /// new run's budget would count.
    pub async fn spent_this_month(&self, key: &str) -> Result<store::Spent, Error> {
        Ok(store::month_spent(&self.0.db, key).await?)
    }

    /// What each model spent on each of `run_ids`, in one query.
    pub async fn spend_of_runs(
        &self,
        run_ids: &[String],
    ) -> Result<HashMap<String, Vec<ModelSpend>>, Error> {
        Ok(store::spend_of_runs(&self.0.db, run_ids).await?)
    }

    /// The names of a workflow's steps.
    pub fn step_names(&self, workflow: &str) -> Result<Vec<String>, Error> {
        Ok(self.workflow(workflow)?.steps.iter().map(|s| s.name.clone()).collect())
    }

    /// Runs newest first.
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>, Error> {
        let mut q = isocrates_db::QueryBuilder::new("SELECT ");
        q.push(store::RUN_COLUMNS).push(" FROM runs WHERE 1 = 1");
        if let Some(w) = &filter.workflow {
            q.push(" AND workflow = ").bind(w.as_str());
        }
        if let Some(s) = filter.status {
            q.push(" AND status = ").bind(store::status_name(s));
        }
        if let Some(k) = &filter.concurrency_key {
            q.push(" AND concurrency_key = ").bind(k.as_str());
        }
        if let Some(before) = &filter.before {
            q.push(" AND id < ").bind(before.as_str());
        }
        q.push(" ORDER BY id DESC LIMIT ").bind(filter.limit);
        let (sql, args) = q.finish();
        let rows: Vec<store::RunRow> = self.0.db.fetch_all(sql, args).await?;
        Ok(rows.into_iter().map(Run::from).collect())
    }

    /// Cancels a run: a queued or paused run at once, a running run at its next step or
    /// item boundary.
    pub async fn cancel(&self, id: &str) -> Result<Run, Error> {
        let mut tx = self.0.db.begin().await?;
        let run = self.locked_run(&mut tx, id).await?;
        let workflow = self.workflow(&run.workflow)?;
        let event = Event::CancelRequested { reason: "cancelled by an operator".to_string() };
        self.apply(&mut tx, &workflow, run, event).await?;
        tx.commit().await?;
        self.wake();
        self.run(id).await
    }

    /// Runs again a failed, cancelled or paused run from `from_step` (a step name) or from
    /// where it stopped, reusing the checkpoints of every earlier step.
    pub async fn retry(&self, id: &str, from_step: Option<&str>) -> Result<Run, Error> {
        let mut tx = self.0.db.begin().await?;
        let mut run = self.locked_run(&mut tx, id).await?;
        let workflow = self.workflow(&run.workflow)?;
        let from = match from_step {
            Some(name) => {
                Some(workflow.step_index(name).ok_or_else(|| unknown_step(&workflow, name))?)
            }
            None => None,
        };
        run.retry_count += 1;
        run.finished_at = None;
        self.apply(&mut tx, &workflow, run, Event::RetryRequested { from_step: from }).await?;
        tx.commit().await?;
        self.wake();
        tracing::info!(run.id = %id, from_step = from_step.unwrap_or("(where it stopped)"), "run retried");
        self.run(id).await
    }

    /// Loads a run inside `tx` after taking the locks of its keys.
    async fn locked_run(&self, tx: &mut Tx, id: &str) -> Result<Run, Error> {
        let run = store::load_run(tx, id).await?.ok_or_else(|| Error::NotFound(id.to_string()))?;
        if run.dedup_key.is_none() && run.concurrency_key.is_none() {
            return Ok(run);
        }
        lock_keys(tx, &[run.dedup_key.as_deref(), run.concurrency_key.as_deref()]).await?;
        // Read again under the lock: another transaction may have changed it meanwhile.
        store::load_run(tx, id).await?.ok_or_else(|| Error::NotFound(id.to_string()))
    }

    /// Applies an event to a run inside `tx`: the core decides, this carries it out.
    async fn apply(
        &self,
        tx: &mut Tx,
        workflow: &Workflow,
        mut run: Run,
        event: Event,
    ) -> Result<Run, Error> {
        let steps = workflow.steps.len();
        let decision =
            core::decide(steps, |i| workflow.steps[i].policy, &run.view(), event, jitter())?;
        let was = run.status;
        run.status = decision.run.status;
        run.current_step = decision.run.current_step;
        run.attempt = decision.run.attempt;
        run.cancel_requested = decision.run.cancel_requested;
        if let Some(message) = decision.message {
            run.error = Some(message);
        } else if run.status == RunStatus::Queued || run.status == RunStatus::Completed {
            run.error = None;
        }
        if run.status.is_terminal() && run.finished_at.is_none() {
            run.finished_at = Some(Timestamp::now());
        }
        for action in &decision.actions {
            match action {
                Action::ScheduleStep { step, attempt, delay } => {
                    let free = match &run.concurrency_key {
                        Some(key) if run.status == RunStatus::Queued => {
                            !running_with_key(tx, key, &run.id).await?
                        }
                        _ => true,
                    };
                    if free {
                        // `save_run` below writes the new token with the rest of the run.
                        run.task_token =
                            Some(push_task(tx, &run.id, *step, *attempt, *delay).await?);
                    }
                }
                Action::DiscardCheckpointsFrom { step } => {
                    store::discard_from(tx, &run.id, *step).await?
                }
                Action::SignalCancel => {}
                Action::LogRetry { attempt, message } => tracing::warn!(
                    run.id = %run.id,
                    step = %workflow.steps[run.current_step].name,
                    attempt,
                    error = %message,
                    "step failed; retrying"
                ),
            }
        }
        store::save_run(tx, &run).await?;
        if run.status.is_terminal() || run.status == RunStatus::Paused {
            // No step of the run will make a model call: a worker that died during one
            // left its hold behind.
            store::drop_holds(tx, &run.id).await?;
        }
        if was != run.status {
            // Counted before the commit: a rollback overcounts by one, which a counter of
            // events may.
            self.count_run(run.status);
            log_transition(workflow, &run);
            if (run.status.is_terminal() || run.status == RunStatus::Paused)
                && let Some(key) = &run.concurrency_key
            {
                dispatch_waiting(tx, key).await?;
            }
        }
        Ok(run)
    }

    /// Executes one step task; called by the worker for every task it takes. `delivery`
    /// counts how many times the queue handed this task out, from 1: a later delivery
    /// means an earlier one never finished (its worker died, or the engine failed).
    pub async fn execute(
        &self,
        task: StepTask,
        delivery: usize,
        worker: &str,
    ) -> Result<(), Error> {
        let Some(run) = store::get_run(&self.0.db, &task.run_id).await? else {
            return Ok(());
        };
        if !is_current(&run, &task) {
            tracing::debug!(run.id = %run.id, step = task.step, "stale step task ignored");
            return Ok(());
        }
        let workflow = self.workflow(&run.workflow)?;
        let started_at = Timestamp::now();
        let (run, start_recorder) =
            if delivery <= 1 && run.status == RunStatus::Running && !run.cancel_requested {
                // The common case, a step after the one that just finished: the run's state
                // does not change, and nothing is written before the step runs. A step that
                // lasts has its start recorded shortly after it began, for operators.
                let step = (task.step, workflow.steps[task.step].name.as_str());
                let recorder = self.record_start_later(&run, step, started_at, worker);
                (run, Some(recorder))
            } else {
                match self.start_slow(&task, delivery > 1, worker, &workflow).await? {
                    Some(run) => (run, None),
                    None => return Ok(()),
                }
            };

        // Run the step, outside any transaction.
        let step = &workflow.steps[task.step];
        let names: Vec<&str> = workflow.steps.iter().map(|s| s.name.as_str()).collect();
        let outputs: BTreeMap<String, Value> = if task.step == 0 {
            BTreeMap::new()
        } else {
            store::outputs_before(&self.0.db, &run.id, task.step)
                .await?
                .into_iter()
                .map(|(i, v)| (names[i].to_string(), v))
                .collect()
        };
        let ctx = StepContext {
            run_id: run.id.clone(),
            input: run.input.clone(),
            outputs,
            attempt: run.attempt,
            items: Arc::new(Items(self.0.db.clone())),
            step_index: task.step,
        };
        let span =
            tracing::info_span!("step", run.id = %run.id, step = %step.name, attempt = run.attempt);
        let outcome = {
            let fut = std::panic::AssertUnwindSafe((step.run)(ctx)).catch_unwind();
            match tokio::time::timeout(step.timeout, tracing::Instrument::instrument(fut, span))
                .await
            {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(StepError::permanent(format!("step {} panicked", step.name))),
                Err(_) => Err(StepError::retryable(format!(
                    "step {} timed out after {} s",
                    step.name,
                    step.timeout.as_secs()
                ))),
            }
        };

        if let Some(recorder) = start_recorder {
            recorder.abort();
        }

        // Finish: record the attempt and the checkpoint, decide, continue, in one go.
        let mut tx = self.0.db.begin().await?;
        let now = match self.locked_run(&mut tx, &run.id).await {
            Ok(now) => now,
            Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if now.task_token != run.task_token || now.attempt != run.attempt {
            // An operator retried or cancelled the run while the step ran, or another
            // delivery took the step over: this outcome is not the run's any more.
            tracing::debug!(run.id = %run.id, step = %step.name, "outcome of a superseded attempt dropped");
            return Ok(());
        }
        let (status, error, summary, event) = match &outcome {
            Ok(StepOutcome::Done(output)) => {
                store::save_checkpoint(&mut tx, &run.id, task.step, output).await?;
                (
                    "succeeded",
                    None,
                    Some(summarise(output)),
                    Event::StepSucceeded { step: task.step },
                )
            }
            Ok(StepOutcome::SkipRun(reason)) => (
                "skipped",
                None,
                Some(reason.clone()),
                Event::StepSkippedRun { step: task.step, reason: reason.clone() },
            ),
            Ok(StepOutcome::Pause(reason)) => (
                "paused",
                None,
                Some(reason.clone()),
                Event::StepPaused { step: task.step, reason: reason.clone() },
            ),
            Err(StepError::Cancelled) => {
                ("cancelled", None, None, Event::StepCancelled { step: task.step })
            }
            Err(StepError::Failed { kind, message }) => (
                "failed",
                Some(message.clone()),
                None,
                Event::StepFailed { step: task.step, kind: *kind, message: message.clone() },
            ),
        };
        // The attempt's row may exist already (its start was recorded) or not.
        tx.execute(
            "INSERT INTO run_steps (run_id, round, step_index, step, attempt, status, started_at, \
             finished_at, error, output_summary, worker) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (run_id, round, step_index, attempt) DO UPDATE SET \
             status = excluded.status, finished_at = excluded.finished_at, \
             error = excluded.error, output_summary = excluded.output_summary",
            args![
                &run.id,
                run.retry_count,
                task.step as i64,
                &step.name,
                i64::from(run.attempt),
                status,
                started_at,
                Timestamp::now(),
                error,
                summary,
                worker
            ],
        )
        .await?;
        // The step's model calls are over, whether their holds were released or not.
        store::drop_holds(&mut tx, &run.id).await?;
        match self.apply(&mut tx, &workflow, now, event).await {
            Ok(_) | Err(Error::Refused(_)) => {}
            Err(e) => return Err(e),
        }
        tx.commit().await?;
        self.wake();
        self.count_step(status);
        Ok(())
    }

    /// Records, after [`START_RECORD_DELAY`], that an attempt of `step` started at
    /// `started_at`, unless the returned task is aborted first (the step ended; its end
    /// writes the whole row). What operators see of a step that runs for a while; a row
    /// already written by the end is left alone.
    fn record_start_later(
        &self,
        run: &Run,
        (step, name): (usize, &str),
        started_at: Timestamp,
        worker: &str,
    ) -> tokio::task::JoinHandle<()> {
        let db = self.0.db.clone();
        let (run_id, round, attempt, name, worker) =
            (run.id.clone(), run.retry_count, run.attempt, name.to_string(), worker.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(START_RECORD_DELAY).await;
            let written = db
                .execute(
                    "INSERT INTO run_steps (run_id, round, step_index, step, attempt, status, \
                     started_at, worker) VALUES ($1, $2, $3, $4, $5, 'running', $6, $7) \
                     ON CONFLICT (run_id, round, step_index, attempt) DO NOTHING",
                    args![
                        &run_id,
                        round,
                        step as i64,
                        name,
                        i64::from(attempt),
                        started_at,
                        worker
                    ],
                )
                .await;
            if let Err(e) = written {
                tracing::debug!(run.id = %run_id, error = %e, "the start of a step was not recorded");
            }
        })
    }

    /// Starts a step whose run changes state (its first step, a retry after a delay, a
    /// resumed run) or whose task was delivered before: under the run's lock, closes the
    /// attempt an earlier delivery left open, moves the run to `running` and writes the
    /// attempt's row. `None` when the task turned out to be stale.
    async fn start_slow(
        &self,
        task: &StepTask,
        redelivered: bool,
        worker: &str,
        workflow: &Workflow,
    ) -> Result<Option<Run>, Error> {
        let mut tx = self.0.db.begin().await?;
        let mut run = match self.locked_run(&mut tx, &task.run_id).await {
            Ok(run) => run,
            Err(Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        if !is_current(&run, task) {
            return Ok(None);
        }
        if run.cancel_requested {
            // Asked to stop between steps: the step does not start.
            self.apply(&mut tx, workflow, run, Event::StepCancelled { step: task.step }).await?;
            tx.commit().await?;
            return Ok(None);
        }
        if run.status == RunStatus::Queued
            && let Some(key) = run.concurrency_key.clone()
            && running_with_key(&mut tx, &key, &run.id).await?
        {
            // Another run of the key started first: this one waits for it to end, when
            // `dispatch_waiting` pushes it again.
            run.task_token = None;
            store::save_run(&mut tx, &run).await?;
            tx.commit().await?;
            tracing::debug!(run.id = %run.id, "run waits for the running run of its key");
            return Ok(None);
        }
        let now = Timestamp::now();
        let mut interrupted = tx
            .execute(
                "UPDATE run_steps SET status = 'interrupted', finished_at = $1, \
                 error = 'the worker stopped while running this step' \
                 WHERE run_id = $2 AND step_index = $3 AND attempt = $4 AND round = $5 \
                 AND status = 'running'",
                args![now, &run.id, task.step as i64, i64::from(run.attempt), run.retry_count],
            )
            .await?
            > 0;
        if redelivered && !interrupted {
            // The earlier delivery stopped before its start was recorded (or the record was
            // lost with the worker): count it all the same.
            tx.execute(
                "INSERT INTO run_steps (run_id, round, step_index, step, attempt, status, \
                 started_at, finished_at, error) VALUES ($1, $2, $3, $4, $5, 'interrupted', $6, $6, \
                 'the worker stopped while running this step') ON CONFLICT DO NOTHING",
                args![
                    &run.id,
                    run.retry_count,
                    task.step as i64,
                    &workflow.steps[task.step].name,
                    i64::from(run.attempt),
                    now
                ],
            )
            .await?;
            interrupted = true;
        }
        if interrupted {
            // The interrupted attempt counts; this one is the next.
            self.count_step("interrupted");
            run.attempt += 1;
            tracing::warn!(run.id = %run.id, step = %workflow.steps[task.step].name, "resuming a step whose worker stopped");
        }
        if run.started_at.is_none() {
            run.started_at = Some(now);
        }
        let event = Event::StepStarted { step: task.step, attempt: run.attempt };
        let run = self.apply(&mut tx, workflow, run, event).await?;
        insert_attempt(&mut tx, &run, (task.step, &workflow.steps[task.step].name), worker).await?;
        // One attempt of a run's step runs at a time: what an earlier attempt held for its
        // model calls is not under way any more.
        // FIXME: a worker that missed its heartbeats but still runs the earlier attempt goes
        // on calling, and its calls stop counting against the budgets. Holds tagged with
        // their worker, dropped here only when that worker's heartbeat is stale, would keep
        // them.
        store::drop_holds(&mut tx, &run.id).await?;
        tx.commit().await?;
        Ok(Some(run))
    }

    /// A worker that takes step tasks from the queue, `concurrency` at a time.
    pub fn worker(&self, name: &str, concurrency: usize) -> Worker {
        Worker {
            engine: self.clone(),
            name: name.to_string(),
            concurrency: concurrency.max(1),
            heartbeat: Duration::from_secs(5),
        }
    }
}

/// Executes step tasks until shut down.
#[derive(Debug)]
pub struct Worker {
    engine: Engine,
    name: String,
    concurrency: usize,
    heartbeat: Duration,
}

impl Worker {
    /// Sets how often the worker reports it is alive; a worker silent for two intervals is
    /// taken for dead and its tasks go to others.
    pub fn heartbeat(mut self, interval: Duration) -> Worker {
        self.heartbeat = interval;
        self
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let name = format!("{}-{}", self.name, ulid::Ulid::generate().to_string().to_lowercase());
        tracing::info!(worker = %name, concurrency = self.concurrency, "worker started");
        let engine = self.engine.clone();
        let handler_name = name.clone();
        let handler = move |task: StepTask, delivery: Attempt| {
            let engine = engine.clone();
            let worker = handler_name.clone();
            async move {
                let result = engine.execute(task, delivery.current(), &worker).await;
                if let Err(e) = &result {
                    tracing::error!(error = %e, "step task failed inside the engine");
                }
                result
            }
        };
        let (waker, woken) = futures::channel::mpsc::unbounded::<()>();
        if let Ok(mut wakers) = self.engine.0.wakers.lock() {
            wakers.push(waker);
        }
        // Pushes from this process wake the worker at once; on PostgreSQL so do pushes from
        // other processes (LISTEN/NOTIFY); the interval covers the rest (SQLite across
        // processes, and any wake-up lost).
        let poll = Duration::from_millis(500);
        let stop = async move {
            shutdown.await;
            Ok::<(), std::io::Error>(())
        };
        // The two storages share no trait for their configuration, so one macro states it
        // once for both.
        macro_rules! run_on {
            ($config:ty, $storage:expr) => {{
                // A worker takes no more tasks than it can start: tasks it fetched but
                // cannot run yet would wait while another worker idles.
                let config = <$config>::default()
                    .queue(QUEUE)
                    .batch_size(self.concurrency)
                    .heartbeat_interval(self.heartbeat)
                    .missed_heartbeats(2);
                WorkerBuilder::new(name.as_str())
                    .backend($storage(config))
                    .concurrency(self.concurrency)
                    .build(handler)
                    .run_until(stop)
                    .await
                    .map_err(|e| Error::Queue(e.to_string()))?
            }};
        }
        match &self.engine.0.db {
            Db::Sqlite(pool) => {
                let strategy = Strategy::new().stream(woken).interval(poll);
                run_on!(apalis_sqlite::Config, |config| {
                    apalis_sqlite::SqliteStorage::<StepTask>::new(pool)
                        .with_config(config)
                        .poll_with_strategy(strategy)
                })
            }
            Db::Postgres(pool) => {
                let notified = apalis_postgres::Pubsub::new(pool.clone(), QUEUE.to_string());
                let wakes = futures::stream::select(
                    futures::StreamExt::map(woken, |()| ()),
                    futures::StreamExt::map(notified, |_| ()),
                );
                let strategy = Strategy::new().stream(wakes).interval(poll);
                run_on!(apalis_postgres::Config, |config| {
                    apalis_postgres::PostgresStorage::<StepTask>::new(pool)
                        .with_config(config)
                        .poll_with_strategy(strategy)
                })
            }
        }
        tracing::info!(worker = %name, "worker stopped");
        Ok(())
    }
}

fn unknown_step(workflow: &Workflow, name: &str) -> Error {
    Error::UnknownStep {
        name: name.to_string(),
        known: workflow.steps.iter().map(|s| s.name.clone()).collect(),
    }
}

/// Whether `task` is the one task that may continue `run`.
fn is_current(run: &Run, task: &StepTask) -> bool {
    // The attempt may have moved on since the task was pushed: a delivery that found the
    // previous one interrupted counts the next attempt under the same token.
    run.current_step == task.step
        && run.task_token.as_deref() == Some(task.token.as_str())
        && !run.status.is_terminal()
        && run.status != RunStatus::Paused
}

/// Writes the `running` row of `run`'s current attempt of step `step`, named `name`.
async fn insert_attempt(
    tx: &mut Tx,
    run: &Run,
    (step, name): (usize, &str),
    worker: &str,
) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO run_steps (run_id, round, step_index, step, attempt, status, started_at, \
         worker) VALUES ($1, $2, $3, $4, $5, 'running', $6, $7)",
        args![
            &run.id,
            run.retry_count,
            step as i64,
            name,
            i64::from(run.attempt),
            Timestamp::now(),
            worker
        ],
    )
    .await?;
    Ok(())
}

/// Item checkpoints and the cancel flag, for step contexts.
struct Items(Db);

impl ItemStore for Items {
    fn load(&self, run_id: &str, step: usize, key: &str) -> ItemFuture<Option<Value>> {
        let (db, run_id, key) = (self.0.clone(), run_id.to_string(), key.to_string());
        Box::pin(
            async move { store::load_item(&db, &run_id, step, &key).await.map_err(db_failure) },
        )
    }

    fn save(&self, run_id: &str, step: usize, key: &str, output: &Value) -> ItemFuture<()> {
        let (db, run_id, key, output) =
            (self.0.clone(), run_id.to_string(), key.to_string(), output.clone());
        Box::pin(async move {
            store::save_item(&db, &run_id, step, &key, &output).await.map_err(db_failure)
        })
    }

    fn cancelled(&self, run_id: &str) -> ItemFuture<bool> {
        let (db, run_id) = (self.0.clone(), run_id.to_string());
        Box::pin(async move { store::cancel_requested(&db, &run_id).await.map_err(db_failure) })
    }

    fn add_usage(&self, run_id: &str, by: Spender, usage: Usage) -> ItemFuture<()> {
        let (db, run_id) = (self.0.clone(), run_id.to_string());
        Box::pin(
            async move { store::add_usage(&db, &run_id, &by, usage).await.map_err(db_failure) },
        )
    }

    fn hold(
        &self,
        run_id: &str,
        cost_usd: f64,
        ttl: Duration,
        admit: Admit,
    ) -> ItemFuture<(store::Spent, store::Held, Option<String>)> {
        let (db, run_id) = (self.0.clone(), run_id.to_string());
        let expires = Timestamp::from_now(ttl);
        Box::pin(async move {
            store::hold(&db, &run_id, cost_usd, expires, admit).await.map_err(db_failure)
        })
    }

    fn release(&self, hold_id: &str) -> ItemFuture<()> {
        let (db, id) = (self.0.clone(), hold_id.to_string());
        Box::pin(async move { store::release(&db, &id).await.map_err(db_failure) })
    }
}

fn db_failure(e: isocrates_db::Error) -> StepError {
    StepError::Failed { kind: FailureKind::Retryable, message: format!("checkpoint store: {e}") }
}

/// One line describing a step's output, for the step history.
fn summarise(output: &Value) -> String {
    match output {
        Value::Object(map) if map.contains_key("summary") => {
            map["summary"].as_str().map_or_else(|| map["summary"].to_string(), str::to_string)
        }
        other => {
            let text = other.to_string();
            if text.chars().count() > 200 {
                format!("{}…", text.chars().take(200).collect::<String>())
            } else {
                text
            }
        }
    }
}

fn log_transition(workflow: &Workflow, run: &Run) {
    let step = workflow.steps.get(run.current_step).map_or("", |s| s.name.as_str());
    match run.status {
        RunStatus::Running => tracing::info!(
            run.id = %run.id, workflow = %workflow.name, step, attempt = run.attempt,
            trigger = %run.trigger, "run started"
        ),
        RunStatus::Failed => tracing::error!(
            run.id = %run.id, workflow = %workflow.name, step, error = run.error.as_deref().unwrap_or(""),
            "run failed"
        ),
        status => tracing::info!(
            run.id = %run.id, workflow = %workflow.name, step, status = store::status_name(status),
            reason = run.error.as_deref().unwrap_or(""), "run {}", store::status_name(status)
        ),
    }
}

/// Serialises the transactions that decide, for the same keys, which run is live and which
/// may run (SQLite's `BEGIN IMMEDIATE` already does). Runs without keys take no lock, so
/// they never wait for each other.
async fn lock_keys(tx: &mut Tx, keys: &[Option<&str>]) -> Result<(), Error> {
    let Tx::Postgres(t) = tx else { return Ok(()) };
    let mut keys: Vec<&str> = keys.iter().flatten().copied().collect();
    // Always in the same order, so two transactions never wait on each other in a circle.
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7263002))")
            .bind(key)
            .execute(&mut **t)
            .await
            .map_err(isocrates_db::Error::from)?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct CountRow {
    n: i64,
}

async fn running_with_key(tx: &mut Tx, key: &str, except: &str) -> Result<bool, Error> {
    let row: Option<CountRow> = tx
        .fetch_optional(
            "SELECT count(*) AS n FROM runs WHERE concurrency_key = $1 AND status = 'running' AND id <> $2",
            args![key, except],
        )
        .await?;
    Ok(row.is_some_and(|r| r.n > 0))
}

/// Starts the newest queued run of `key` that waits for the key to be free.
async fn dispatch_waiting(tx: &mut Tx, key: &str) -> Result<(), Error> {
    #[derive(sqlx::FromRow)]
    struct Waiting {
        id: String,
        current_step: i64,
        attempt: i64,
    }
    let waiting: Option<Waiting> = tx
        .fetch_optional(
            "SELECT id, current_step, attempt FROM runs WHERE concurrency_key = $1 AND status = 'queued' \
             ORDER BY created_at DESC LIMIT 1",
            args![key],
        )
        .await?;
    if let Some(w) = waiting {
        if running_with_key(tx, key, &w.id).await? {
            return Ok(());
        }
        let step = usize::try_from(w.current_step).unwrap_or_default();
        let attempt = u32::try_from(w.attempt).unwrap_or(1);
        push_step(tx, &w.id, step, attempt, Duration::ZERO).await?;
    }
    Ok(())
}

/// Pushes the task of step `step`, attempt `attempt`, of run `run_id` inside `tx`, so it
/// exists exactly when the transaction commits, and makes it the one task that may continue
/// the run. Returns its token.
async fn push_step(
    tx: &mut Tx,
    run_id: &str,
    step: usize,
    attempt: u32,
    delay: Duration,
) -> Result<String, Error> {
    let token = push_task(tx, run_id, step, attempt, delay).await?;
    tx.execute("UPDATE runs SET task_token = $1 WHERE id = $2", args![&token, run_id]).await?;
    Ok(token)
}

/// Pushes the task of step `step`, attempt `attempt`, of run `run_id` inside `tx`, and
/// returns the token that makes it the run's current task once the run records it.
async fn push_task(
    tx: &mut Tx,
    run_id: &str,
    step: usize,
    attempt: u32,
    delay: Duration,
) -> Result<String, Error> {
    let token = ulid::Ulid::generate().to_string();
    let task = StepTask { run_id: run_id.to_string(), step, attempt, token: token.clone() };
    let bytes = serde_json::to_vec(&task).map_err(|e| Error::Queue(e.to_string()))?;
    let task = TaskBuilder::new(bytes).max_attempts(TASK_MAX_ATTEMPTS).run_after(delay).build();
    match tx {
        Tx::Sqlite(t) => apalis_sqlite::queries::push_tasks(&mut **t, QUEUE, &[task])
            .await
            .map_err(|e| Error::Queue(e.to_string()))?,
        Tx::Postgres(t) => apalis_postgres::queries::push_tasks(&mut **t, QUEUE, vec![task])
            .await
            .map_err(|e| Error::Queue(e.to_string()))?,
    }
    Ok(token)
}
