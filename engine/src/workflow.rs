//! How a workflow is defined: a name and an ordered list of named steps, each an async
//! function from a [`StepContext`] to a JSON output, with its retry policy and timeout.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::core::{FailureKind, RetryPolicy};
use crate::store::{Held, Spender, Spent, Usage};

/// What a step returns when it ends normally.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// The step finished; its output is the step's checkpoint.
    Done(Value),
    /// There is nothing to do: the run ends as `skipped`.
    SkipRun(String),
    /// The run must wait for an operator (a budget reached): it becomes `paused`.
    Pause(String),
}

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    /// A failure, retryable or permanent, with a message for the operator.
    #[error("{message}")]
    Failed {
        /// Whether trying again can help.
        kind: FailureKind,
        /// What went wrong and, for a permanent error, what to fix.
        message: String,
    },
    /// The run was cancelled and the step stopped at a boundary.
    #[error("cancelled")]
    Cancelled,
}

impl StepError {
    /// A failure worth another attempt.
    pub fn retryable(message: impl Into<String>) -> StepError {
        StepError::Failed { kind: FailureKind::Retryable, message: message.into() }
    }

    /// A failure no retry can fix.
    pub fn permanent(message: impl Into<String>) -> StepError {
        StepError::Failed { kind: FailureKind::Permanent, message: message.into() }
    }
}

/// The future a step returns.
pub type StepFuture = Pin<Box<dyn Future<Output = Result<StepOutcome, StepError>> + Send>>;

/// The function of a step.
pub type StepFn = Arc<dyn Fn(StepContext) -> StepFuture + Send + Sync>;

/// One step of a workflow.
#[derive(Clone)]
pub struct StepDef {
    /// Its name, shown to operators and used by `retry --from-step`.
    pub name: String,
    /// How failures are retried.
    pub policy: RetryPolicy,
    /// How long one attempt may take before it counts as a retryable failure.
    pub timeout: Duration,
    /// What it does.
    pub run: StepFn,
}

impl std::fmt::Debug for StepDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepDef").field("name", &self.name).field("policy", &self.policy).finish()
    }
}

/// A named, ordered list of steps.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// The workflow's name; runs name it.
    pub name: String,
    /// Its steps, in order.
    pub steps: Vec<StepDef>,
}

/// The default timeout of a step.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30 * 60);

impl Workflow {
    /// An empty workflow named `name`.
    pub fn new(name: impl Into<String>) -> Workflow {
        Workflow { name: name.into(), steps: Vec::new() }
    }

    /// Appends a step with the default policy and timeout.
    pub fn step<F, Fut>(self, name: impl Into<String>, f: F) -> Workflow
    where
        F: Fn(StepContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<StepOutcome, StepError>> + Send + 'static,
    {
        self.step_with(name, RetryPolicy::default(), DEFAULT_STEP_TIMEOUT, f)
    }

    /// Appends a step with its own policy and timeout.
    pub fn step_with<F, Fut>(
        mut self,
        name: impl Into<String>,
        policy: RetryPolicy,
        timeout: Duration,
        f: F,
    ) -> Workflow
    where
        F: Fn(StepContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<StepOutcome, StepError>> + Send + 'static,
    {
        let run: StepFn = Arc::new(move |ctx| Box::pin(f(ctx)));
        self.steps.push(StepDef { name: name.into(), policy, timeout, run });
        self
    }

    /// The index of the step named `name`.
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }
}

/// What a step sees of its run.
#[derive(Clone)]
pub struct StepContext {
    /// The run's id.
    pub run_id: String,
    /// The run's input.
    pub input: Value,
    /// The outputs of the steps before this one, by step name.
    pub outputs: BTreeMap<String, Value>,
    /// This attempt's number, from 1.
    pub attempt: u32,
    pub(crate) items: Arc<dyn ItemStore>,
    pub(crate) step_index: usize,
}

impl std::fmt::Debug for StepContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepContext")
            .field("run_id", &self.run_id)
            .field("attempt", &self.attempt)
            .finish()
    }
}

/// Where a step's items are checkpointed; the engine's store implements it.
pub(crate) trait ItemStore: Send + Sync {
    /// The recorded output of an item, if it finished before.
    fn load(&self, run_id: &str, step: usize, key: &str) -> ItemFuture<Option<Value>>;
    /// Records an item's output.
    fn save(&self, run_id: &str, step: usize, key: &str, output: &Value) -> ItemFuture<()>;
    /// Whether the run was asked to stop.
    fn cancelled(&self, run_id: &str) -> ItemFuture<bool>;
    /// Adds to what the run spent, on the line of model `by`.
    fn add_usage(&self, run_id: &str, by: Spender, usage: Usage) -> ItemFuture<()>;
    /// Holds `cost_usd` for one of the run's calls for at most `ttl`, if `admit` agrees;
    /// answers what it was shown, and the hold's id when it was taken.
    fn hold(
        &self,
        run_id: &str,
        cost_usd: f64,
        ttl: Duration,
        admit: Admit,
    ) -> ItemFuture<(Spent, Held, Option<String>)>;
    /// Drops a hold.
    fn release(&self, hold_id: &str) -> ItemFuture<()>;
}

/// Whether a call may be let through, given what was spent and what is held.
pub(crate) type Admit = Box<dyn FnOnce(&Spent, &Held) -> bool + Send>;

/// The item store of a step run outside any run: it records nothing, and keeps its holds
/// in memory, as the only run there is.
#[derive(Default)]
struct Detached {
    holds: std::sync::Mutex<Vec<(String, f64)>>,
}

impl ItemStore for Detached {
    fn load(&self, _: &str, _: usize, _: &str) -> ItemFuture<Option<Value>> {
        Box::pin(async { Ok(None) })
    }
    fn save(&self, _: &str, _: usize, _: &str, _: &Value) -> ItemFuture<()> {
        Box::pin(async { Ok(()) })
    }
    fn cancelled(&self, _: &str) -> ItemFuture<bool> {
        Box::pin(async { Ok(false) })
    }
    fn add_usage(&self, _: &str, _: Spender, _: Usage) -> ItemFuture<()> {
        Box::pin(async { Ok(()) })
    }
    fn hold(
        &self,
        _: &str,
        cost_usd: f64,
        _: Duration,
        admit: Admit,
    ) -> ItemFuture<(Spent, Held, Option<String>)> {
        let mut holds = self.holds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let usd: f64 = holds.iter().map(|(_, cost)| cost).sum();
        let calls = holds.len() as i64;
        let held = Held {
            run_usd: usd,
            run_calls: calls,
            month_usd: usd,
            month_calls: calls,
            key_month_usd: usd,
            key_month_calls: calls,
        };
        let spent = Spent::default();
        let id = admit(&spent, &held).then(|| {
            let id = ulid::Ulid::generate().to_string();
            holds.push((id.clone(), cost_usd));
            id
        });
        Box::pin(async move { Ok((spent, held, id)) })
    }
    fn release(&self, hold_id: &str) -> ItemFuture<()> {
        let mut holds = self.holds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        holds.retain(|(id, _)| id != hold_id);
        Box::pin(async { Ok(()) })
    }
}

/// What a step was shown when it asked to hold spending for a call, and the hold when it
/// was let through.
#[derive(Debug)]
pub struct Holding {
    /// What was recorded as spent.
    pub spent: Spent,
    /// What the calls under way held, before this one.
    pub held: Held,
    /// The hold taken, if the call was let through.
    pub hold: Option<Hold>,
}

/// Spending held for one model call under way, counted by every budget until it is
/// released, a step of its run starts or ends, or it expires. Release it once the call's
/// spending is recorded (or the call was not made); a hold dropped unreleased is released
/// in the background.
pub struct Hold {
    id: String,
    items: Arc<dyn ItemStore>,
    released: bool,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold").field("id", &self.id).finish()
    }
}

impl Hold {
    /// Releases the hold; when that fails, it is tried again in the background.
    pub async fn release(mut self) -> Result<(), StepError> {
        let released = self.items.release(&self.id).await;
        self.released = released.is_ok();
        released
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Outside a runtime the hold lasts until its run's step starts again or it expires.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let release = self.items.release(&self.id);
            runtime.spawn(async move {
                if let Err(error) = release.await {
                    tracing::warn!(%error, "a spending hold was left to expire");
                }
            });
        }
    }
}

/// The future of an item store call.
pub(crate) type ItemFuture<T> = Pin<Box<dyn Future<Output = Result<T, StepError>> + Send>>;

impl StepContext {
    /// A context for running steps outside any run, as a dry run does: `outputs` stand for
    /// the earlier steps' checkpoints, items run every time and nothing is recorded.
    pub fn detached(
        run_id: impl Into<String>,
        input: Value,
        outputs: BTreeMap<String, Value>,
    ) -> StepContext {
        StepContext {
            run_id: run_id.into(),
            input,
            outputs,
            attempt: 1,
            items: Arc::new(Detached::default()),
            step_index: 0,
        }
    }

    /// Runs one item of a step that fans out, at most once per run: an item that finished
    /// before (in an earlier attempt, or before a crash) returns its recorded output
    /// without running again. Cancellation is checked before each item.
    pub async fn item<F, Fut>(&self, key: &str, f: F) -> Result<Value, StepError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value, StepError>>,
    {
        if let Some(done) = self.items.load(&self.run_id, self.step_index, key).await? {
            return Ok(done);
        }
        if self.items.cancelled(&self.run_id).await? {
            return Err(StepError::Cancelled);
        }
        let output = f().await?;
        self.items.save(&self.run_id, self.step_index, key, &output).await?;
        Ok(output)
    }

    /// Whether an operator asked to cancel the run; long steps check it at their own
    /// boundaries.
    pub async fn is_cancelled(&self) -> Result<bool, StepError> {
        self.items.cancelled(&self.run_id).await
    }

    /// Adds what one call of model `by` spent to the run's totals and to that model's line
    /// of the run's spending this month. Call it as soon as the call returns, before its
    /// item is recorded: a run shows what it paid for even when it fails or is cancelled
    /// afterwards.
    pub async fn add_model_usage(&self, by: Spender, usage: Usage) -> Result<(), StepError> {
        self.items.add_usage(&self.run_id, by, usage).await
    }

    /// Holds `cost_usd` of spending for a model call about to be made, for at most `ttl`,
    /// if `admit` lets the call through once shown what was recorded as spent and what the
    /// calls under way in every run hold. Holds are decided one at a time across every
    /// process, so two calls cannot both take the same room under a budget. A hold counts
    /// until it is released, a step of the run starts or ends, the run stops (paused or
    /// ended), or `ttl` passes. A
    /// [detached](StepContext::detached) context holds in memory, beside nothing spent.
    pub async fn hold(
        &self,
        cost_usd: f64,
        ttl: Duration,
        admit: impl FnOnce(&Spent, &Held) -> bool + Send + 'static,
    ) -> Result<Holding, StepError> {
        let (spent, held, id) =
            self.items.hold(&self.run_id, cost_usd, ttl, Box::new(admit)).await?;
        let hold = id.map(|id| Hold { id, items: self.items.clone(), released: false });
        Ok(Holding { spent, held, hold })
    }

    /// The output of the earlier step `name`.
    pub fn output(&self, name: &str) -> Option<&Value> {
        self.outputs.get(name)
    }
}
