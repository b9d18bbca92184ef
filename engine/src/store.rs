//! The engine's records: runs, step attempts, checkpoints and item checkpoints, in the
//! tables of the `engine` migration. Every change of a run's state happens here, inside
//! one transaction with the task that continues it.

use std::collections::HashMap;

use isocrates_db::{Db, Timestamp, Tx, args};
use serde_json::Value;

use crate::RunStatus;
use crate::core::RunView;

/// A run of a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Its id.
    pub id: String,
    /// The workflow it runs.
    pub workflow: String,
    /// Its input.
    pub input: Value,
    /// Runs with this key while one is live are one run.
    pub dedup_key: Option<String>,
    /// At most one run with this key runs at a time.
    pub concurrency_key: Option<String>,
    /// Its state.
    pub status: RunStatus,
    /// The step it is at.
    pub current_step: usize,
    /// The attempt of that step.
    pub attempt: u32,
    /// An operator asked to cancel it.
    pub cancel_requested: bool,
    /// What started it: `manual`, `webhook`, `schedule`.
    pub trigger: String,
    /// Why it failed, was cancelled, skipped or paused.
    pub error: Option<String>,
    /// How many times an operator retried it.
    pub retry_count: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its first step started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// What its steps spent on models.
    pub usage: Usage,
    /// The token of the step task that may continue it.
    pub(crate) task_token: Option<String>,
}

/// What a run's steps spent on models, added up as each call returns.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Tokens sent.
    pub tokens_in: i64,
    /// Tokens received.
    pub tokens_out: i64,
    /// Their cost in US dollars.
    pub cost_usd: f64,
}

impl Run {
    pub(crate) fn view(&self) -> RunView {
        RunView {
            status: self.status,
            current_step: self.current_step,
            attempt: self.attempt,
            cancel_requested: self.cancel_requested,
        }
    }
}

/// One attempt of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// How many operator retries of the run came before this attempt.
    pub round: i64,
    /// The step's position.
    pub step_index: usize,
    /// Its name.
    pub step: String,
    /// The attempt, from 1.
    pub attempt: u32,
    /// `running`, `succeeded`, `failed`, `interrupted`, `cancelled`, `paused`, `skipped`.
    pub status: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// Why it failed.
    pub error: Option<String>,
    /// One line for operators.
    pub output_summary: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    id: String,
    workflow: String,
    input: sqlx::types::Json<Value>,
    dedup_key: Option<String>,
    concurrency_key: Option<String>,
    status: String,
    current_step: i64,
    attempt: i64,
    cancel_requested: bool,
    trigger: String,
    error: Option<String>,
    retry_count: i64,
    created_at: Timestamp,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
    task_token: Option<String>,
    tokens_in: i64,
    tokens_out: i64,
    cost_usd: f64,
}

impl From<RunRow> for Run {
    fn from(r: RunRow) -> Run {
        Run {
            id: r.id,
            workflow: r.workflow,
            input: r.input.0,
            dedup_key: r.dedup_key,
            concurrency_key: r.concurrency_key,
            status: parse_status(&r.status),
            current_step: usize::try_from(r.current_step).unwrap_or_default(),
            attempt: u32::try_from(r.attempt).unwrap_or(1),
            cancel_requested: r.cancel_requested,
            trigger: r.trigger,
            error: r.error,
            retry_count: r.retry_count,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            usage: Usage { tokens_in: r.tokens_in, tokens_out: r.tokens_out, cost_usd: r.cost_usd },
            task_token: r.task_token,
        }
    }
}

/// The stored name of a status.
pub fn status_name(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Queued => "queued",
        RunStatus::Running => "running",
        RunStatus::Paused => "paused",
        RunStatus::Completed => "completed",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "cancelled",
        RunStatus::Skipped => "skipped",
    }
}

/// Parses a stored status name; unknown names read as `failed`, which an operator sees.
pub fn parse_status(name: &str) -> RunStatus {
    match name {
        "queued" => RunStatus::Queued,
        "running" => RunStatus::Running,
        "paused" => RunStatus::Paused,
        "completed" => RunStatus::Completed,
        "cancelled" => RunStatus::Cancelled,
        "skipped" => RunStatus::Skipped,
        _ => RunStatus::Failed,
    }
}

pub(crate) const RUN_COLUMNS: &str = "id, workflow, input, dedup_key, concurrency_key, status, \
     current_step, attempt, cancel_requested, trigger, error, retry_count, created_at, \
     started_at, finished_at, task_token, tokens_in, tokens_out, cost_usd";

/// Loads a run inside a transaction.
pub(crate) async fn load_run(tx: &mut Tx, id: &str) -> Result<Option<Run>, isocrates_db::Error> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
    Ok(tx.fetch_optional::<RunRow>(sql, args![id]).await?.map(Run::from))
}

/// Loads a run.
pub(crate) async fn get_run(db: &Db, id: &str) -> Result<Option<Run>, isocrates_db::Error> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
    Ok(db.fetch_optional::<RunRow>(sql, args![id]).await?.map(Run::from))
}

/// Writes the state fields of `run` back.
pub(crate) async fn save_run(tx: &mut Tx, run: &Run) -> Result<(), isocrates_db::Error> {
    tx.execute(
        "UPDATE runs SET status = $1, current_step = $2, attempt = $3, cancel_requested = $4, \
         error = $5, retry_count = $6, started_at = $7, finished_at = $8, updated_at = $9, \
         task_token = $11 WHERE id = $10",
        args![
            status_name(run.status),
            run.current_step as i64,
            i64::from(run.attempt),
            run.cancel_requested,
            run.error.clone(),
            run.retry_count,
            run.started_at,
            run.finished_at,
            Timestamp::now(),
            &run.id,
            run.task_token.clone()
        ],
    )
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct StepRow {
    run_id: String,
    round: i64,
    step_index: i64,
    step: String,
    attempt: i64,
    status: String,
    started_at: Timestamp,
    finished_at: Option<Timestamp>,
    error: Option<String>,
    output_summary: Option<String>,
}

/// The attempts of the steps of each of `run_ids`, each run's in the order they ran.
pub(crate) async fn steps_of(
    db: &Db,
    run_ids: &[String],
) -> Result<HashMap<String, Vec<StepRecord>>, isocrates_db::Error> {
    let mut by_run: HashMap<String, Vec<StepRecord>> = HashMap::new();
    if run_ids.is_empty() {
        return Ok(by_run);
    }
    let mut q = isocrates_db::QueryBuilder::new(
        "SELECT run_id, round, step_index, step, attempt, status, started_at, finished_at, \
         error, output_summary FROM run_steps WHERE run_id IN (",
    );
    in_list(&mut q, run_ids);
    q.push(") ORDER BY run_id, started_at, round, step_index, attempt");
    let (sql, args) = q.finish();
    let rows: Vec<StepRow> = db.fetch_all(sql, args).await?;
    for r in rows {
        by_run.entry(r.run_id).or_default().push(StepRecord {
            round: r.round,
            step_index: usize::try_from(r.step_index).unwrap_or_default(),
            step: r.step,
            attempt: u32::try_from(r.attempt).unwrap_or(1),
            status: r.status,
            started_at: r.started_at,
            finished_at: r.finished_at,
            error: r.error,
            output_summary: r.output_summary,
        });
    }
    Ok(by_run)
}

/// The checkpoints of each of `run_ids` at any of `steps`, by run and step index.
pub(crate) async fn checkpoints_of(
    db: &Db,
    run_ids: &[String],
    steps: &[usize],
) -> Result<HashMap<(String, usize), Value>, isocrates_db::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        run_id: String,
        step_index: i64,
        output: sqlx::types::Json<Value>,
    }
    if run_ids.is_empty() || steps.is_empty() {
        return Ok(HashMap::new());
    }
    let mut q = isocrates_db::QueryBuilder::new(
        "SELECT run_id, step_index, output FROM run_checkpoints WHERE run_id IN (",
    );
    in_list(&mut q, run_ids);
    q.push(") AND step_index IN (");
    let indexes: Vec<i64> = steps.iter().map(|&s| s as i64).collect();
    in_list(&mut q, &indexes);
    q.push(")");
    let (sql, args) = q.finish();
    let rows: Vec<Row> = db.fetch_all(sql, args).await?;
    Ok(rows
        .into_iter()
        .map(|r| ((r.run_id, usize::try_from(r.step_index).unwrap_or_default()), r.output.0))
        .collect())
}

/// Binds `values` separated by commas, for an `IN (...)` list.
fn in_list<T: Clone + Into<isocrates_db::Arg>>(q: &mut isocrates_db::QueryBuilder, values: &[T]) {
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.bind(value.clone());
    }
}

#[derive(sqlx::FromRow)]
struct OutputRow {
    step_index: i64,
    output: sqlx::types::Json<Value>,
}

/// The checkpoints of the steps before `step`, by index.
pub(crate) async fn outputs_before(
    db: &Db,
    run_id: &str,
    step: usize,
) -> Result<Vec<(usize, Value)>, isocrates_db::Error> {
    let rows: Vec<OutputRow> = db
        .fetch_all(
            "SELECT step_index, output FROM run_checkpoints WHERE run_id = $1 AND step_index < $2 \
             ORDER BY step_index",
            args![run_id, step as i64],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (usize::try_from(r.step_index).unwrap_or_default(), r.output.0))
        .collect())
}

/// Records step `step`'s checkpoint.
pub(crate) async fn save_checkpoint(
    tx: &mut Tx,
    run_id: &str,
    step: usize,
    output: &Value,
) -> Result<(), isocrates_db::Error> {
    tx.execute(
        "INSERT INTO run_checkpoints (run_id, step_index, output, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (run_id, step_index) DO UPDATE SET output = excluded.output, \
         created_at = excluded.created_at",
        args![run_id, step as i64, output.clone(), Timestamp::now()],
    )
    .await?;
    Ok(())
}

/// Forgets the checkpoints (step outputs and items) of step `step` and every later step.
pub(crate) async fn discard_from(
    tx: &mut Tx,
    run_id: &str,
    step: usize,
) -> Result<(), isocrates_db::Error> {
    for sql in [
        "DELETE FROM run_checkpoints WHERE run_id = $1 AND step_index >= $2",
        "DELETE FROM run_items WHERE run_id = $1 AND step_index >= $2",
    ] {
        tx.execute(sql, args![run_id, step as i64]).await?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    output: sqlx::types::Json<Value>,
}

/// The recorded output of one item.
pub(crate) async fn load_item(
    db: &Db,
    run_id: &str,
    step: usize,
    key: &str,
) -> Result<Option<Value>, isocrates_db::Error> {
    let row: Option<ItemRow> = db
        .fetch_optional(
            "SELECT output FROM run_items WHERE run_id = $1 AND step_index = $2 AND item_key = $3",
            args![run_id, step as i64, key],
        )
        .await?;
    Ok(row.map(|r| r.output.0))
}

/// Records one item's output; recording it twice keeps the first.
pub(crate) async fn save_item(
    db: &Db,
    run_id: &str,
    step: usize,
    key: &str,
    output: &Value,
) -> Result<(), isocrates_db::Error> {
    db.execute(
        "INSERT INTO run_items (run_id, step_index, item_key, output, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id, step_index, item_key) DO NOTHING",
        args![run_id, step as i64, key, output.clone(), Timestamp::now()],
    )
    .await?;
    Ok(())
}

/// How many items of a step are recorded.
pub(crate) async fn count_items(
    db: &Db,
    run_id: &str,
    step: usize,
) -> Result<u64, isocrates_db::Error> {
    #[derive(sqlx::FromRow)]
    struct Count {
        n: i64,
    }
    let row: Option<Count> = db
        .fetch_optional(
            "SELECT COUNT(*) AS n FROM run_items WHERE run_id = $1 AND step_index = $2",
            args![run_id, step as i64],
        )
        .await?;
    Ok(row.map_or(0, |c| c.n.max(0) as u64))
}

/// The model behind a call: its provider's kind (`openai`, `ollama`, ...) and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spender {
    /// The provider's kind.
    pub provider: String,
    /// The model, as the provider names it.
    pub model: String,
}

/// What one model spent over many runs.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ModelSpend {
    /// The provider's kind.
    pub provider: String,
    /// The model.
    pub model: String,
    /// Calls answered.
    pub calls: i64,
    /// Tokens sent.
    pub tokens_in: i64,
    /// Tokens received.
    pub tokens_out: i64,
    /// Their cost in US dollars.
    pub cost_usd: f64,
}

/// The calendar month (UTC) of `at`, as spending is kept: `YYYY-MM`.
pub fn month_of(at: &Timestamp) -> String {
    at.0.format("%Y-%m").to_string()
}

/// Adds what one call of model `by` spent to the run's totals and to its line of the run's
/// spending by model and month (the current one); both or neither.
pub(crate) async fn add_usage(
    db: &Db,
    run_id: &str,
    by: &Spender,
    usage: Usage,
) -> Result<(), isocrates_db::Error> {
    let month = month_of(&Timestamp::now());
    let mut tx = db.begin().await?;
    tx.execute(
        "UPDATE runs SET tokens_in = tokens_in + $1, tokens_out = tokens_out + $2, \
         cost_usd = cost_usd + $3 WHERE id = $4",
        args![usage.tokens_in, usage.tokens_out, usage.cost_usd, run_id],
    )
    .await?;
    tx.execute(
        "INSERT INTO run_usage (run_id, month, provider, model, calls, tokens_in, tokens_out, \
         cost_usd) VALUES ($1, $2, $3, $4, 1, $5, $6, $7) \
         ON CONFLICT (run_id, month, provider, model) DO UPDATE SET \
         calls = run_usage.calls + 1, tokens_in = run_usage.tokens_in + excluded.tokens_in, \
         tokens_out = run_usage.tokens_out + excluded.tokens_out, \
         cost_usd = run_usage.cost_usd + excluded.cost_usd",
        args![
            run_id,
            month.as_str(),
            by.provider.as_str(),
            by.model.as_str(),
            usage.tokens_in,
            usage.tokens_out,
            usage.cost_usd
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What every model spent, over all runs, by provider and model.
pub(crate) async fn spend_by_model(db: &Db) -> Result<Vec<ModelSpend>, isocrates_db::Error> {
    db.fetch_all(
        "SELECT provider, model, CAST(sum(calls) AS BIGINT) AS calls, \
         CAST(sum(tokens_in) AS BIGINT) AS tokens_in, \
         CAST(sum(tokens_out) AS BIGINT) AS tokens_out, \
         CAST(sum(cost_usd) AS DOUBLE PRECISION) AS cost_usd \
         FROM run_usage GROUP BY provider, model ORDER BY provider, model",
        args![],
    )
    .await
}

/// What a run has spent, and what has been spent this month (UTC) in all and by the runs
/// that share its concurrency key: what a budget is checked against.
#[derive(Debug, Clone, Copy, Default, PartialEq, sqlx::FromRow)]
pub struct Spent {
    /// By the run, in US dollars.
    pub run_usd: f64,
    /// By every run this month.
    pub month_usd: f64,
    /// By the runs of the run's concurrency key this month (a repository's); 0 for a run
    /// without a key.
    pub key_month_usd: f64,
}

/// What the run `$1` has spent, and this month (`$2`) in all and on the runs of its
/// concurrency key.
const SPENT: &str = "SELECT r.cost_usd AS run_usd, \
     CAST((SELECT COALESCE(sum(m.cost_usd), 0) FROM run_usage m WHERE m.month = $2) \
       AS DOUBLE PRECISION) AS month_usd, \
     CAST((SELECT COALESCE(sum(k.cost_usd), 0) FROM run_usage k \
       JOIN runs o ON o.id = k.run_id \
       WHERE k.month = $2 AND o.concurrency_key = r.concurrency_key) \
       AS DOUBLE PRECISION) AS key_month_usd \
     FROM runs r WHERE r.id = $1";

/// The worst cost of the model calls let through by a budget whose spending is not
/// recorded yet, counted as [`Spent`] counts what was: the run's own, every run's, and
/// those of the runs that share its concurrency key; with how many calls each holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, sqlx::FromRow)]
pub struct Held {
    /// Held by the run, in US dollars.
    pub run_usd: f64,
    /// The run's calls under way.
    pub run_calls: i64,
    /// Held by every run.
    pub month_usd: f64,
    /// Every run's calls under way.
    pub month_calls: i64,
    /// Held by the runs of the run's concurrency key; 0 for a run without a key.
    pub key_month_usd: f64,
    /// Their calls under way.
    pub key_month_calls: i64,
}

/// Holds `cost_usd` for a call of the run `run_id` until `expires`, if `admit` lets it
/// through once shown what was recorded and what is held; answers both, and the hold's id
/// when it was taken. Holds are taken one transaction at a time across every process, and
/// expired ones are dropped first.
pub(crate) async fn hold(
    db: &Db,
    run_id: &str,
    cost_usd: f64,
    expires: Timestamp,
    admit: impl FnOnce(&Spent, &Held) -> bool,
) -> Result<(Spent, Held, Option<String>), isocrates_db::Error> {
    let now = Timestamp::now();
    let month = month_of(&now);
    let mut tx = db.begin().await?;
    tx.lock_spending().await?;
    tx.execute("DELETE FROM spending_holds WHERE expires_at <= $1", args![now]).await?;
    // The holds first, then the spending: on PostgreSQL each statement sees what was
    // committed when it began, and recording a call's spending commits before its hold is
    // released, so a call that ends in between is counted twice, never missed.
    let held: Held = tx
        .fetch_optional(
            "SELECT \
             CAST(COALESCE(sum(CASE WHEN h.run_id = r.id THEN h.cost_usd END), 0) \
               AS DOUBLE PRECISION) AS run_usd, \
             CAST(count(CASE WHEN h.run_id = r.id THEN 1 END) AS BIGINT) AS run_calls, \
             CAST(COALESCE(sum(h.cost_usd), 0) AS DOUBLE PRECISION) AS month_usd, \
             CAST(count(h.id) AS BIGINT) AS month_calls, \
             CAST(COALESCE(sum(CASE WHEN o.concurrency_key = r.concurrency_key \
               THEN h.cost_usd END), 0) AS DOUBLE PRECISION) AS key_month_usd, \
             CAST(count(CASE WHEN o.concurrency_key = r.concurrency_key THEN 1 END) \
               AS BIGINT) AS key_month_calls \
             FROM runs r \
             LEFT JOIN spending_holds h ON TRUE \
             LEFT JOIN runs o ON o.id = h.run_id \
             WHERE r.id = $1",
            args![run_id],
        )
        .await?
        .unwrap_or_default();
    let spent: Spent =
        tx.fetch_optional(SPENT, args![run_id, month.as_str()]).await?.unwrap_or_default();
    let id = if admit(&spent, &held) {
        let id = ulid::Ulid::generate().to_string().to_lowercase();
        tx.execute(
            "INSERT INTO spending_holds (id, run_id, cost_usd, expires_at) \
             VALUES ($1, $2, $3, $4)",
            args![id.as_str(), run_id, cost_usd, expires],
        )
        .await?;
        Some(id)
    } else {
        None
    };
    tx.commit().await?;
    Ok((spent, held, id))
}

/// Drops every hold of the run `run_id`: none of its calls is under way any more.
pub(crate) async fn drop_holds(tx: &mut Tx, run_id: &str) -> Result<(), isocrates_db::Error> {
    tx.execute("DELETE FROM spending_holds WHERE run_id = $1", args![run_id]).await?;
    Ok(())
}

/// Drops the hold `id`, once its call's spending is recorded or the call was not made.
pub(crate) async fn release(db: &Db, id: &str) -> Result<(), isocrates_db::Error> {
    db.execute("DELETE FROM spending_holds WHERE id = $1", args![id]).await?;
    Ok(())
}

/// What this month has spent in all and on the runs of concurrency key `key`, before any
/// run of its own: what a new run's budget would count.
pub(crate) async fn month_spent(db: &Db, key: &str) -> Result<Spent, isocrates_db::Error> {
    let month = month_of(&Timestamp::now());
    let row: Option<Spent> = db
        .fetch_optional(
            "SELECT CAST(0 AS DOUBLE PRECISION) AS run_usd, \
             CAST((SELECT COALESCE(sum(m.cost_usd), 0) FROM run_usage m WHERE m.month = $1) \
               AS DOUBLE PRECISION) AS month_usd, \
             CAST((SELECT COALESCE(sum(k.cost_usd), 0) FROM run_usage k \
               JOIN runs o ON o.id = k.run_id WHERE k.month = $1 AND o.concurrency_key = $2) \
               AS DOUBLE PRECISION) AS key_month_usd",
            args![month.as_str(), key],
        )
        .await?;
    Ok(row.unwrap_or_default())
}

/// One line of spending: what one model spent in one month on the runs of one
/// concurrency key.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SpendLine {
    /// The month, `YYYY-MM` in UTC.
    pub month: String,
    /// The runs' concurrency key (a repository's), if they have one.
    pub key: Option<String>,
    /// The model and what it spent.
    #[sqlx(flatten)]
    pub spend: ModelSpend,
}

/// The spending of the months from `since` (`YYYY-MM`) on, by month, concurrency key,
/// provider and model, newest month first.
pub(crate) async fn spending_since(
    db: &Db,
    since: &str,
) -> Result<Vec<SpendLine>, isocrates_db::Error> {
    db.fetch_all(
        "SELECT u.month, r.concurrency_key AS key, u.provider, u.model, \
         CAST(sum(u.calls) AS BIGINT) AS calls, CAST(sum(u.tokens_in) AS BIGINT) AS tokens_in, \
         CAST(sum(u.tokens_out) AS BIGINT) AS tokens_out, \
         CAST(sum(u.cost_usd) AS DOUBLE PRECISION) AS cost_usd \
         FROM run_usage u JOIN runs r ON r.id = u.run_id WHERE u.month >= $1 \
         GROUP BY u.month, r.concurrency_key, u.provider, u.model \
         ORDER BY u.month DESC, r.concurrency_key, u.provider, u.model",
        args![since],
    )
    .await
}

/// What each model spent on each of the runs `ids`, over every month.
pub(crate) async fn spend_of_runs(
    db: &Db,
    ids: &[String],
) -> Result<HashMap<String, Vec<ModelSpend>>, isocrates_db::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        run_id: String,
        #[sqlx(flatten)]
        spend: ModelSpend,
    }
    let mut by_run: HashMap<String, Vec<ModelSpend>> = HashMap::new();
    if ids.is_empty() {
        return Ok(by_run);
    }
    let mut q = isocrates_db::QueryBuilder::new(
        "SELECT run_id, provider, model, CAST(sum(calls) AS BIGINT) AS calls, \
         CAST(sum(tokens_in) AS BIGINT) AS tokens_in, \
         CAST(sum(tokens_out) AS BIGINT) AS tokens_out, \
         CAST(sum(cost_usd) AS DOUBLE PRECISION) AS cost_usd \
         FROM run_usage WHERE run_id IN (",
    );
    in_list(&mut q, ids);
    q.push(") GROUP BY run_id, provider, model ORDER BY run_id, provider, model");
    let (sql, args) = q.finish();
    let rows: Vec<Row> = db.fetch_all(sql, args).await?;
    for row in rows {
        by_run.entry(row.run_id).or_default().push(row.spend);
    }
    Ok(by_run)
}

#[derive(sqlx::FromRow)]
struct FlagRow {
    cancel_requested: bool,
}

/// Whether the run was asked to stop.
pub(crate) async fn cancel_requested(db: &Db, run_id: &str) -> Result<bool, isocrates_db::Error> {
    let row: Option<FlagRow> =
        db.fetch_optional("SELECT cancel_requested FROM runs WHERE id = $1", args![run_id]).await?;
    Ok(row.is_some_and(|r| r.cancel_requested))
}
