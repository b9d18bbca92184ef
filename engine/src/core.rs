//! The decision core of the engine: given a workflow's definition, a run's state and one
//! event, what the run becomes and what must happen next. No I/O, no clock, no randomness
//! (the jitter sample is an input), so every rule is tested by feeding events.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::RunStatus;

/// How a step is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub max_attempts: u32,
    /// The delay before the second attempt.
    pub base_delay: Duration,
    /// The longest delay between attempts.
    pub max_delay: Duration,
    /// The share of each delay drawn at random, from 0 (none) to 1 (all of it).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(300),
            jitter: 0.5,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> RetryPolicy {
        RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }
    }

    /// The delay before attempt `next` (2 for the first retry): exponential from
    /// `base_delay`, capped at `max_delay`, with its `jitter` share scaled by `sample`
    /// (a number in `0..1`).
    pub fn delay_before(&self, next: u32, sample: f64) -> Duration {
        let exponent = next.saturating_sub(2).min(30);
        let full = self.base_delay.saturating_mul(1u32 << exponent).min(self.max_delay);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let kept = 1.0 - jitter + jitter * sample.clamp(0.0, 1.0);
        full.mul_f64(kept)
    }
}

/// Whether a failure is worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// A timeout, a rate limit, a 5xx, a dropped connection: try again.
    Retryable,
    /// Bad configuration, a missing repository, an invalid plan: trying again cannot help.
    Permanent,
}

/// A run as the core needs to see it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    /// Its status.
    pub status: RunStatus,
    /// The index of the step it is at (the next to run, or the one running).
    pub current_step: usize,
    /// The attempt of that step that is running or was last tried.
    pub attempt: u32,
    /// An operator asked to cancel it.
    pub cancel_requested: bool,
}

/// Something that happened to a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A worker picked up step `step`, attempt `attempt`.
    StepStarted {
        /// Index of the step.
        step: usize,
        /// Its attempt number, from 1.
        attempt: u32,
    },
    /// The step finished and its checkpoint is written.
    StepSucceeded {
        /// Index of the step.
        step: usize,
    },
    /// The step failed.
    StepFailed {
        /// Index of the step.
        step: usize,
        /// Whether to try again.
        kind: FailureKind,
        /// What went wrong, for the operator.
        message: String,
    },
    /// The step asked the run to wait for an operator (a budget reached, say).
    StepPaused {
        /// Index of the step.
        step: usize,
        /// Why, for the operator.
        reason: String,
    },
    /// The step found there is nothing to do: the run ends as skipped.
    StepSkippedRun {
        /// Index of the step.
        step: usize,
        /// Why.
        reason: String,
    },
    /// The step stopped because cancellation was requested.
    StepCancelled {
        /// Index of the step.
        step: usize,
    },
    /// An operator asked to cancel the run.
    CancelRequested {
        /// Why, for the record.
        reason: String,
    },
    /// An operator asked to run again a failed, cancelled or paused run, at `from_step` or
    /// where it stopped.
    RetryRequested {
        /// The step to start from; `None` for the step where it stopped.
        from_step: Option<usize>,
    },
}

/// What the engine must do after an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Schedule step `step`, attempt `attempt`, after `delay`.
    ScheduleStep {
        /// Index of the step.
        step: usize,
        /// Attempt number, from 1.
        attempt: u32,
        /// How long to wait first.
        delay: Duration,
    },
    /// Throw away the checkpoints of step `step` and every later step.
    DiscardCheckpointsFrom {
        /// Index of the first step to forget.
        step: usize,
    },
    /// Ask the running step to stop at its next boundary.
    SignalCancel,
    /// Log a retry at `warn` with its cause.
    LogRetry {
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        message: String,
    },
}

/// The outcome of one event: the run's new state, why it ended if it did, and the actions.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The run after the event.
    pub run: RunView,
    /// The error or reason recorded on the run, when the event sets one.
    pub message: Option<String>,
    /// What to do, in order.
    pub actions: Vec<Action>,
}

/// Why an event does not apply to a run in its state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The run is live (queued or running), so it cannot be retried.
    #[error("the run is {0}; only a failed, cancelled or paused run can be retried")]
    Live(RunStatus),
    /// The run has ended, so it cannot be cancelled.
    #[error("the run has already ended as {0}")]
    Ended(RunStatus),
    /// The named step is not part of the workflow.
    #[error("the workflow has no step {0}")]
    UnknownStep(usize),
    /// A retry from a step after the one the run stopped at, whose earlier steps never ran.
    #[error("the run stopped at step {current}; it cannot be retried from the later step {step}")]
    NotReached {
        /// The step asked for.
        step: usize,
        /// Where the run stopped.
        current: usize,
    },
    /// The event is about another step than the run's current one (a stale task).
    #[error("step {got} is not the run's current step {current}")]
    NotCurrent {
        /// The step the event names.
        got: usize,
        /// The run's current step.
        current: usize,
    },
}

/// Applies `event` to `run`, a run of a workflow with `steps` steps whose step `i` has
/// policy `policy(i)`. `jitter` is a sample in `0..1` for the retry delay.
pub fn decide(
    steps: usize,
    policy: impl Fn(usize) -> RetryPolicy,
    run: &RunView,
    event: Event,
    jitter: f64,
) -> Result<Decision, Refusal> {
    let mut next = run.clone();
    let mut actions = Vec::new();
    let mut message = None;
    let step_event = |step: usize| -> Result<(), Refusal> {
        if step != run.current_step {
            return Err(Refusal::NotCurrent { got: step, current: run.current_step });
        }
        if run.status.is_terminal() || run.status == RunStatus::Paused {
            return Err(Refusal::Ended(run.status));
        }
        Ok(())
    };
    match event {
        Event::StepStarted { step, attempt } => {
            step_event(step)?;
            next.status = RunStatus::Running;
            next.attempt = attempt;
        }
        Event::StepSucceeded { step } => {
            step_event(step)?;
            if step + 1 >= steps {
                next.status = RunStatus::Completed;
            } else if run.cancel_requested {
                next.status = RunStatus::Cancelled;
                message = Some("cancelled by an operator".to_string());
            } else {
                next.current_step = step + 1;
                next.attempt = 1;
                next.status = RunStatus::Running;
                actions.push(Action::ScheduleStep {
                    step: step + 1,
                    attempt: 1,
                    delay: Duration::ZERO,
                });
            }
        }
        Event::StepFailed { step, kind, message: error } => {
            step_event(step)?;
            let policy = policy(step);
            if run.cancel_requested {
                next.status = RunStatus::Cancelled;
                message = Some("cancelled by an operator".to_string());
            } else if kind == FailureKind::Retryable && run.attempt < policy.max_attempts {
                let attempt = run.attempt + 1;
                actions.push(Action::LogRetry { attempt: run.attempt, message: error });
                actions.push(Action::ScheduleStep {
                    step,
                    attempt,
                    delay: policy.delay_before(attempt, jitter),
                });
                next.attempt = attempt;
                next.status = RunStatus::Running;
            } else {
                next.status = RunStatus::Failed;
                message = Some(error);
            }
        }
        Event::StepPaused { step, reason } => {
            step_event(step)?;
            // A cancel asked for while the step ran wins: a paused run would come back.
            if run.cancel_requested {
                next.status = RunStatus::Cancelled;
                message = Some("cancelled by an operator".to_string());
            } else {
                next.status = RunStatus::Paused;
                message = Some(reason);
            }
        }
        Event::StepSkippedRun { step, reason } => {
            step_event(step)?;
            next.status = RunStatus::Skipped;
            message = Some(reason);
        }
        Event::StepCancelled { step } => {
            step_event(step)?;
            next.status = RunStatus::Cancelled;
            message = Some("cancelled by an operator".to_string());
        }
        Event::CancelRequested { reason } => match run.status {
            RunStatus::Queued | RunStatus::Paused => {
                next.status = RunStatus::Cancelled;
                message = Some(reason);
            }
            RunStatus::Running => {
                next.cancel_requested = true;
                actions.push(Action::SignalCancel);
            }
            ended => return Err(Refusal::Ended(ended)),
        },
        Event::RetryRequested { from_step } => {
            if !matches!(run.status, RunStatus::Failed | RunStatus::Cancelled | RunStatus::Paused) {
                return Err(Refusal::Live(run.status));
            }
            let step = from_step.unwrap_or(run.current_step);
            if step >= steps {
                return Err(Refusal::UnknownStep(step));
            }
            if step > run.current_step {
                return Err(Refusal::NotReached { step, current: run.current_step });
            }
            next.status = RunStatus::Queued;
            next.current_step = step;
            next.attempt = 1;
            next.cancel_requested = false;
            // Redoing a named step forgets its items too; resuming where the run stopped
            // keeps the items that step finished.
            let discard_from = if from_step.is_some() { step } else { step + 1 };
            actions.push(Action::DiscardCheckpointsFrom { step: discard_from });
            actions.push(Action::ScheduleStep { step, attempt: 1, delay: Duration::ZERO });
        }
    }
    Ok(Decision { run: next, message, actions })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: usize = 3;

    fn policy(_: usize) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            jitter: 0.0,
        }
    }

    fn queued() -> RunView {
        RunView { status: RunStatus::Queued, current_step: 0, attempt: 1, cancel_requested: false }
    }

    /// Feeds events in order and returns the final decision.
    fn feed(mut run: RunView, events: Vec<Event>) -> (RunView, Vec<Decision>) {
        let mut decisions = Vec::new();
        for event in events {
            let d = decide(STEPS, policy, &run, event, 0.5).expect("event applies");
            run = d.run.clone();
            decisions.push(d);
        }
        (run, decisions)
    }

    fn failed(step: usize, kind: FailureKind) -> Event {
        Event::StepFailed { step, kind, message: format!("boom at {step}") }
    }

    #[test]
    fn steps_run_in_order_to_completion() {
        let (run, decisions) = feed(
            queued(),
            vec![
                Event::StepStarted { step: 0, attempt: 1 },
                Event::StepSucceeded { step: 0 },
                Event::StepStarted { step: 1, attempt: 1 },
                Event::StepSucceeded { step: 1 },
                Event::StepStarted { step: 2, attempt: 1 },
                Event::StepSucceeded { step: 2 },
            ],
        );
        assert_eq!(run.status, RunStatus::Completed);
        assert_eq!(
            decisions[1].actions,
            vec![Action::ScheduleStep { step: 1, attempt: 1, delay: Duration::ZERO }]
        );
        assert!(decisions[5].actions.is_empty());
    }

    #[test]
    fn a_retryable_failure_retries_with_backoff_then_succeeds() {
        let (run, decisions) = feed(
            queued(),
            vec![
                Event::StepStarted { step: 0, attempt: 1 },
                failed(0, FailureKind::Retryable),
                Event::StepStarted { step: 0, attempt: 2 },
                failed(0, FailureKind::Retryable),
                Event::StepStarted { step: 0, attempt: 3 },
                Event::StepSucceeded { step: 0 },
            ],
        );
        assert_eq!(run.status, RunStatus::Running);
        assert_eq!(run.current_step, 1);
        assert_eq!(
            decisions[1].actions[1],
            Action::ScheduleStep { step: 0, attempt: 2, delay: Duration::from_secs(1) }
        );
        assert_eq!(
            decisions[3].actions[1],
            Action::ScheduleStep { step: 0, attempt: 3, delay: Duration::from_secs(2) }
        );
        assert!(matches!(decisions[1].actions[0], Action::LogRetry { attempt: 1, .. }));
    }

    #[test]
    fn retries_stop_at_the_policy_limit() {
        let (run, decisions) = feed(
            queued(),
            vec![
                Event::StepStarted { step: 0, attempt: 1 },
                failed(0, FailureKind::Retryable),
                Event::StepStarted { step: 0, attempt: 2 },
                failed(0, FailureKind::Retryable),
                Event::StepStarted { step: 0, attempt: 3 },
                failed(0, FailureKind::Retryable),
            ],
        );
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(decisions[5].message.as_deref(), Some("boom at 0"));
        assert!(decisions[5].actions.is_empty());
    }

    #[test]
    fn a_permanent_failure_fails_the_run_at_once() {
        let (run, decisions) = feed(
            queued(),
            vec![Event::StepStarted { step: 0, attempt: 1 }, failed(0, FailureKind::Permanent)],
        );
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(decisions[1].message.as_deref(), Some("boom at 0"));
        assert!(decisions[1].actions.is_empty());
    }

    #[test]
    fn cancelling_a_queued_run_ends_it_and_a_running_one_at_its_boundary() {
        let d =
            decide(STEPS, policy, &queued(), Event::CancelRequested { reason: "r".into() }, 0.0)
                .unwrap();
        assert_eq!(d.run.status, RunStatus::Cancelled);
        assert_eq!(d.message.as_deref(), Some("r"));

        let (run, decisions) = feed(
            queued(),
            vec![
                Event::StepStarted { step: 0, attempt: 1 },
                Event::CancelRequested { reason: "stop".into() },
                Event::StepSucceeded { step: 0 },
            ],
        );
        assert_eq!(decisions[1].actions, vec![Action::SignalCancel]);
        assert_eq!(run.status, RunStatus::Cancelled);
        assert!(decisions[2].actions.is_empty(), "no next step after a cancel");

        let (run, _) = feed(
            queued(),
            vec![
                Event::StepStarted { step: 0, attempt: 1 },
                Event::CancelRequested { reason: "stop".into() },
                Event::StepCancelled { step: 0 },
            ],
        );
        assert_eq!(run.status, RunStatus::Cancelled);
    }

    #[test]
    fn ended_runs_cannot_be_cancelled_and_live_runs_cannot_be_retried() {
        let done = RunView { status: RunStatus::Completed, ..queued() };
        let refused =
            decide(STEPS, policy, &done, Event::CancelRequested { reason: "x".into() }, 0.0);
        assert_eq!(refused, Err(Refusal::Ended(RunStatus::Completed)));
        let running = RunView { status: RunStatus::Running, ..queued() };
        let refused =
            decide(STEPS, policy, &running, Event::RetryRequested { from_step: None }, 0.0);
        assert_eq!(refused, Err(Refusal::Live(RunStatus::Running)));
    }

    #[test]
    fn retry_resumes_where_it_stopped_or_from_a_named_step() {
        let failed_at_2 = RunView { status: RunStatus::Failed, current_step: 2, ..queued() };
        let d = decide(STEPS, policy, &failed_at_2, Event::RetryRequested { from_step: None }, 0.0)
            .unwrap();
        assert_eq!(d.run.status, RunStatus::Queued);
        assert_eq!(
            d.actions,
            vec![
                Action::DiscardCheckpointsFrom { step: 3 },
                Action::ScheduleStep { step: 2, attempt: 1, delay: Duration::ZERO },
            ]
        );
        let d =
            decide(STEPS, policy, &failed_at_2, Event::RetryRequested { from_step: Some(1) }, 0.0)
                .unwrap();
        assert_eq!(d.run.current_step, 1);
        assert_eq!(d.actions[0], Action::DiscardCheckpointsFrom { step: 1 });
        let unknown =
            decide(STEPS, policy, &failed_at_2, Event::RetryRequested { from_step: Some(9) }, 0.0);
        assert_eq!(unknown, Err(Refusal::UnknownStep(9)));
        let failed_at_1 = RunView { status: RunStatus::Failed, current_step: 1, ..queued() };
        let ahead =
            decide(STEPS, policy, &failed_at_1, Event::RetryRequested { from_step: Some(2) }, 0.0);
        assert_eq!(ahead, Err(Refusal::NotReached { step: 2, current: 1 }));
    }

    #[test]
    fn a_step_can_pause_the_run_and_a_retry_resumes_it() {
        let (run, decisions) = feed(
            queued(),
            vec![
                Event::StepStarted { step: 0, attempt: 1 },
                Event::StepSucceeded { step: 0 },
                Event::StepStarted { step: 1, attempt: 1 },
                Event::StepPaused { step: 1, reason: "budget reached".into() },
                Event::RetryRequested { from_step: None },
            ],
        );
        assert_eq!(decisions[3].run.status, RunStatus::Paused);
        assert_eq!(decisions[3].message.as_deref(), Some("budget reached"));
        assert_eq!(run.status, RunStatus::Queued);
        assert_eq!(run.current_step, 1);

        let (run, _) = feed(
            queued(),
            vec![
                Event::StepStarted { step: 0, attempt: 1 },
                Event::CancelRequested { reason: "stop".into() },
                Event::StepPaused { step: 0, reason: "budget reached".into() },
            ],
        );
        assert_eq!(run.status, RunStatus::Cancelled, "a cancel asked for while it ran wins");
    }

    #[test]
    fn a_step_can_end_the_run_as_skipped() {
        let (run, _) = feed(
            queued(),
            vec![
                Event::StepStarted { step: 0, attempt: 1 },
                Event::StepSkippedRun { step: 0, reason: "nothing changed".into() },
            ],
        );
        assert_eq!(run.status, RunStatus::Skipped);
    }

    #[test]
    fn stale_events_for_another_step_are_refused() {
        let at_1 = RunView { status: RunStatus::Running, current_step: 1, ..queued() };
        let stale = decide(STEPS, policy, &at_1, Event::StepSucceeded { step: 0 }, 0.0);
        assert_eq!(stale, Err(Refusal::NotCurrent { got: 0, current: 1 }));
    }

    #[test]
    fn backoff_grows_exponentially_caps_and_jitters_within_bounds() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(20),
            jitter: 0.5,
        };
        assert_eq!(p.delay_before(2, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay_before(3, 1.0), Duration::from_secs(4));
        assert_eq!(p.delay_before(4, 1.0), Duration::from_secs(8));
        assert_eq!(p.delay_before(9, 1.0), Duration::from_secs(20));
        assert_eq!(
            p.delay_before(3, 0.0),
            Duration::from_secs(2),
            "half of it may be jittered away"
        );
        assert_eq!(p.delay_before(40, 0.5), Duration::from_secs(15));
    }
}
