//! The durable workflow engine of IsoCrates: it runs any workflow made of named steps,
//! survives crashes, and lets operators see and steer every run.
//!
//! Boundary: this crate knows nothing of documents, HTTP or LLMs. [`core`] holds the
//! decision rules, free of I/O; [`workflow`] how a workflow is defined; [`store`] the run
//! records; [`runner`] the [`Engine`] handle and the apalis [`Worker`] that carry the
//! decisions out.

pub mod core;
pub mod runner;
pub mod store;
pub mod workflow;

pub use runner::{
    Counters, Engine, Error, NewRun, QueueHealth, RunFilter, StatusCounts, StepTask, Submitted,
    Worker,
};
pub use store::{Held, ModelSpend, Run, SpendLine, Spender, Spent, StepRecord, Usage, month_of};
pub use workflow::{Hold, Holding, StepContext, StepError, StepOutcome, Workflow};

use serde::{Deserialize, Serialize};

/// The state of one run of a workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker is executing one of its steps.
    Running,
    /// Stopped at a step boundary until an operator resumes it.
    Paused,
    /// Every step finished.
    Completed,
    /// A step failed for good.
    Failed,
    /// An operator cancelled it.
    Cancelled,
    /// It had nothing to do.
    Skipped,
}

impl RunStatus {
    /// Whether the run can no longer change by itself.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled | RunStatus::Skipped
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(store::status_name(*self))
    }
}

#[cfg(test)]
mod tests {
    use super::RunStatus;

    #[test]
    fn only_finished_states_are_terminal() {
        assert!(RunStatus::Completed.is_terminal());
        assert!(RunStatus::Skipped.is_terminal());
        assert!(!RunStatus::Paused.is_terminal());
        assert!(!RunStatus::Queued.is_terminal());
        assert_eq!(serde_json::to_string(&RunStatus::Cancelled).unwrap(), "\"cancelled\"");
    }
}
