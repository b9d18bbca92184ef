//! Caps on what a run's model calls may cost: per run, per month in all, and per month for
//! each repository (`LLM_BUDGET_USD_PER_RUN`, `LLM_BUDGET_USD_PER_MONTH`,
//! `LLM_BUDGET_USD_PER_REPO_PER_MONTH`).
//!
//! A step asks the [`Gate`] before each model call. Once what the database says was spent
//! (by the run, this month in all, this month on the repository) reaches a cap, the step
//! pauses the run with a message naming it. Below every cap, a call goes ahead with its
//! worst cost held in the database until what it spent is recorded, unless the calls
//! already under way may reach a cap: it then waits for one of them to end and looks again.
//! The calls under way are those of every run, on every worker, for the monthly caps, and
//! the run's own for the per-run cap; holds are decided one at a time across processes.
//! So together the calls never carry spending past a cap by more than one call, and holds
//! alone never pause a run.

use std::time::Duration;

use isocrates_engine::{Held, Hold, Spent, StepContext, StepError};
use isocrates_providers::{Llm, Request, Usage, tokens};

/// The caps, in US dollars; `None` is no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budgets {
    /// What one run may spend (`LLM_BUDGET_USD_PER_RUN`).
    pub per_run_usd: Option<f64>,
    /// What every run together may spend in a calendar month, UTC
    /// (`LLM_BUDGET_USD_PER_MONTH`).
    pub per_month_usd: Option<f64>,
    /// What the runs of one repository may spend in a calendar month
    /// (`LLM_BUDGET_USD_PER_REPO_PER_MONTH`).
    pub per_repo_month_usd: Option<f64>,
}

/// One cap and where it stands.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BudgetState {
    /// The variable that sets it.
    pub variable: &'static str,
    /// The cap.
    pub limit_usd: f64,
    /// What it counts so far.
    pub spent_usd: f64,
    /// What is left before it is reached.
    pub remaining_usd: f64,
}

impl Budgets {
    /// Whether any cap is set.
    pub fn any(&self) -> bool {
        self.per_run_usd.is_some()
            || self.per_month_usd.is_some()
            || self.per_repo_month_usd.is_some()
    }

    /// Each set cap beside what `spent` counts against it.
    pub fn states(&self, spent: &Spent) -> Vec<BudgetState> {
        [
            ("LLM_BUDGET_USD_PER_RUN", self.per_run_usd, spent.run_usd),
            ("LLM_BUDGET_USD_PER_MONTH", self.per_month_usd, spent.month_usd),
            ("LLM_BUDGET_USD_PER_REPO_PER_MONTH", self.per_repo_month_usd, spent.key_month_usd),
        ]
        .into_iter()
        .filter_map(|(variable, limit, spent)| {
            let limit_usd = limit?;
            Some(BudgetState {
                variable,
                limit_usd,
                spent_usd: spent,
                remaining_usd: (limit_usd - spent).max(0.0),
            })
        })
        .collect()
    }

    /// Whether a call may go ahead beside what was `spent` and what the calls under way
    /// `held`: no cap is reached, and none may be reached by the calls under way.
    fn admits(&self, spent: &Spent, held: &Held) -> bool {
        let scopes = [
            (self.per_run_usd, spent.run_usd, held.run_usd, held.run_calls),
            (self.per_month_usd, spent.month_usd, held.month_usd, held.month_calls),
            (
                self.per_repo_month_usd,
                spent.key_month_usd,
                held.key_month_usd,
                held.key_month_calls,
            ),
        ];
        scopes.into_iter().all(|(limit, spent, held, calls)| {
            limit.is_none_or(|limit| spent < limit && (calls == 0 || spent + held < limit))
        })
    }
}

/// How soon a call kept waiting by other runs' calls looks again, doubling up to
/// [`LOOK_AT_MOST`]: their ends are seen only in the database.
const LOOK_AGAIN: Duration = Duration::from_millis(250);
const LOOK_AT_MOST: Duration = Duration::from_secs(2);

/// The longest a hold lasts, however slow the model may be.
const LONGEST_HOLD: Duration = Duration::from_secs(24 * 60 * 60);

/// Lets the model calls of one step through the budgets.
#[derive(Debug)]
pub struct Gate {
    budgets: Budgets,
    /// How long a hold may outlive a call that never released it (its worker died).
    ttl: Duration,
    /// Signalled when one of this step's calls releases its hold.
    released: tokio::sync::Notify,
}

/// A call let through, whose worst cost stays held until [`Pass::release`]: release it once
/// what the call spent is recorded. Dropped unreleased, its hold goes in the background.
#[derive(Debug)]
pub struct Pass<'a> {
    gate: &'a Gate,
    hold: Option<Hold>,
}

impl Pass<'_> {
    /// Releases the call's hold, waking the calls of the step that wait for room. A hold
    /// that cannot be released now never fails the paid call: it is tried again in the
    /// background, and goes with the step anyway.
    pub async fn release(mut self) {
        if let Some(hold) = self.hold.take()
            && let Err(error) = hold.release().await
        {
            tracing::warn!(%error, "a spending hold outlives its call for now");
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        drop(self.hold.take());
        self.gate.released.notify_waiters();
    }
}

impl Gate {
    /// A gate over `budgets` whose holds last at most `ttl`: longer than any call may take.
    pub fn new(budgets: Budgets, ttl: Duration) -> Gate {
        Gate { budgets, ttl: ttl.min(LONGEST_HOLD), released: tokio::sync::Notify::new() }
    }

    /// Lets a call of worst cost `cost` through, holding the cost, once every cap has
    /// room for it beside the calls under way (waiting for them when it has not);
    /// answers why not, naming the cap, once what was spent reaches one.
    pub async fn admit(
        &self,
        ctx: &StepContext,
        cost: f64,
    ) -> Result<Result<Pass<'_>, String>, StepError> {
        if !self.budgets.any() {
            return Ok(Ok(Pass { gate: self, hold: None }));
        }
        let mut look_again = LOOK_AGAIN;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let budgets = self.budgets;
            let holding = ctx.hold(cost, self.ttl, move |s, h| budgets.admits(s, h)).await?;
            if let Some(hold) = holding.hold {
                return Ok(Ok(Pass { gate: self, hold: Some(hold) }));
            }
            let states = self.budgets.states(&holding.spent);
            if let Some(state) = states.iter().find(|s| s.spent_usd >= s.limit_usd) {
                return Ok(Err(reached(state)));
            }
            // The calls under way may reach a cap: wait for one of this step's to end, or
            // look again in a moment for the others'.
            tokio::select! {
                () = &mut released => {}
                () = tokio::time::sleep(look_again) => {
                    look_again = (look_again * 2).min(LOOK_AT_MOST);
                }
            }
        }
    }
}

/// Why the run stops at the cap of `state`.
fn reached(state: &BudgetState) -> String {
    let what = match state.variable {
        "LLM_BUDGET_USD_PER_RUN" => "this run has spent",
        "LLM_BUDGET_USD_PER_MONTH" => "this month's runs have spent",
        _ => "this month's runs of the repository have spent",
    };
    format!(
        "the budget {}=${} is reached: {what} ${:.4}; raise it and retry the job to go on \
         from here, or cancel it",
        state.variable,
        trim(state.limit_usd),
        state.spent_usd
    )
}

/// A dollar amount without trailing zeros.
fn trim(usd: f64) -> String {
    let text = format!("{usd:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// How long the hold of `tries` calls to `model` lasts at most: twice the longest they may
/// take, for the wait for a free slot of the model.
pub fn hold_for(model: &Llm, tries: u32) -> Duration {
    model.longest_call().saturating_mul(tries.saturating_mul(2))
}

/// The most a call of `request` to `model` may cost: its prompt's estimated tokens, with a
/// quarter more for the estimate's error, and the whole answer it may give. Nothing for a
/// model without prices (OpenRouter's cost is known only after the call).
pub fn worst_cost(model: &Llm, request: &Request, max_answer_tokens: u32) -> f64 {
    let Some(prices) = model.prices() else { return 0.0 };
    let input = tokens::estimate_request(request);
    prices.cost(Usage {
        input_tokens: input + input / 4,
        output_tokens: u64::from(max_answer_tokens),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn other_runs_calls_crowd_the_monthly_caps_only() {
        let budgets = Budgets {
            per_run_usd: Some(1.0),
            per_month_usd: Some(10.0),
            per_repo_month_usd: Some(5.0),
        };
        let spent = Spent { run_usd: 0.5, month_usd: 8.0, key_month_usd: 3.0 };
        let nothing = Held::default();
        assert!(budgets.admits(&spent, &nothing), "room under every cap");
        // Another repository's calls under way may take the month's last 2 dollars.
        let elsewhere = Held { month_usd: 2.0, month_calls: 3, ..Held::default() };
        assert!(!budgets.admits(&spent, &elsewhere), "waits for them");
        let small = Held { month_usd: 1.5, month_calls: 3, ..Held::default() };
        assert!(budgets.admits(&spent, &small), "room beside them");
        // The same repository's other calls count against its monthly cap.
        let same_repo = Held { key_month_usd: 2.0, key_month_calls: 1, ..small };
        assert!(!budgets.admits(&spent, &same_repo));
        // With nothing under way, one call goes whatever it may cost, below every cap.
        let near = Spent { run_usd: 0.99, month_usd: 9.99, key_month_usd: 4.99 };
        assert!(budgets.admits(&near, &nothing));
        let reached = Spent { month_usd: 10.0, ..near };
        assert!(!budgets.admits(&reached, &nothing), "a reached cap lets nothing through");
    }

    #[test]
    fn only_set_caps_have_a_state() {
        let budgets =
            Budgets { per_run_usd: Some(1.0), per_repo_month_usd: Some(5.0), ..Default::default() };
        let spent = Spent { run_usd: 1.5, month_usd: 9.0, key_month_usd: 2.0 };
        let states = budgets.states(&spent);
        assert_eq!(states.len(), 2);
        assert_eq!((states[0].variable, states[0].remaining_usd), ("LLM_BUDGET_USD_PER_RUN", 0.0));
        assert_eq!(
            (states[1].variable, states[1].remaining_usd),
            ("LLM_BUDGET_USD_PER_REPO_PER_MONTH", 3.0)
        );
        assert!(!Budgets::default().any());
    }

    #[test]
    fn the_message_names_the_cap_and_what_to_do() {
        let state = BudgetState {
            variable: "LLM_BUDGET_USD_PER_RUN",
            limit_usd: 0.5,
            spent_usd: 0.51,
            remaining_usd: 0.0,
        };
        let message = reached(&state);
        assert!(
            message.starts_with(
                "the budget LLM_BUDGET_USD_PER_RUN=$0.5 is reached: this run has spent $0.5100"
            ),
            "{message}"
        );
        assert!(message.contains("retry the job"), "{message}");
    }

    #[tokio::test]
    async fn a_call_waits_while_the_calls_under_way_may_reach_a_cap() {
        // A detached context has spent nothing: only the holds are in the way.
        let ctx = StepContext::detached("run", serde_json::Value::Null, Default::default());
        let gate = Gate::new(Budgets { per_run_usd: Some(1.0), ..Default::default() }, MINUTE);
        let first = gate.admit(&ctx, 0.6).await.unwrap().expect("room for the first");
        let second = gate.admit(&ctx, 0.6).await.unwrap().expect("0.6 of 1.0 held: room");
        let third = gate.admit(&ctx, 0.6);
        tokio::pin!(third);
        let waited = tokio::time::timeout(Duration::from_millis(50), &mut third).await;
        assert!(waited.is_err(), "1.2 held of 1.0: the third call waits");
        first.release().await;
        // The same call, woken by the end of the first.
        let woken = tokio::time::timeout(Duration::from_secs(5), third).await;
        assert!(woken.expect("woken when a call ended").unwrap().is_ok(), "then goes ahead");
        drop(second);
    }

    #[tokio::test]
    async fn nothing_under_way_lets_one_call_through_below_the_cap() {
        let ctx = StepContext::detached("run", serde_json::Value::Null, Default::default());
        let gate = Gate::new(Budgets { per_month_usd: Some(0.01), ..Default::default() }, MINUTE);
        let pass = gate.admit(&ctx, 5.0).await.unwrap();
        assert!(pass.is_ok(), "a call dearer than the cap still goes when nothing is spent");
        let zero = Gate::new(Budgets { per_run_usd: Some(0.0), ..Default::default() }, MINUTE);
        let refused = zero.admit(&ctx, 0.1).await.unwrap().unwrap_err();
        assert!(refused.contains("LLM_BUDGET_USD_PER_RUN=$0 is reached"), "{refused}");
    }
}
