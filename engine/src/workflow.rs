//! How a workflow is defined: a name and an ordered list of named steps, each an async
//! function from a [`StepContext`] to a JSON output, with its retry policy and timeout.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::core::{FailureKind, RetryPolicy};
use crate::store::{Spender, Spent, Usage};

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
    /// What the run and this month have spent.
    fn spent(&self, run_id: &str) -> ItemFuture<Spent>;
}

/// The item store of a step run outside any run: it records nothing.
struct Detached;

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
    fn spent(&self, _: &str) -> ItemFuture<Spent> {
        Box::pin(async { Ok(Spent::default()) })
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
            items: Arc::new(Detached),
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

    /// What the run has spent so far, and what this month has in all and on the runs that
    /// share the run's concurrency key: what a step checks a budget against. Nothing for a
    /// [detached](StepContext::detached) context.
    pub async fn spent(&self) -> Result<Spent, StepError> {
        self.items.spent(&self.run_id).await
    }

    /// The output of the earlier step `name`.
    pub fn output(&self, name: &str) -> Option<&Value> {
        self.outputs.get(name)
    }
}
