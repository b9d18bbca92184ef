//! Caps on what a run's model calls may cost: per run, per month in all, and per month for
//! each repository (`LLM_BUDGET_USD_PER_RUN`, `LLM_BUDGET_USD_PER_MONTH`,
//! `LLM_BUDGET_USD_PER_REPO_PER_MONTH`).
//!
//! A step asks the [`Gate`] before each call, one call at a time. Once what the database
//! says was spent (by the run, this month in all, this month on the repository) reaches a
//! cap, the step pauses the run with a message naming it. Below every cap, a call goes
//! ahead with its worst cost reserved until what it spent is recorded, unless the calls
//! already under way in this step may reach a cap: it then waits for one of them to end
//! and looks again. So the calls of one step never carry it past a cap by more than one
//! call, and reservations alone never pause a run.
//!
//! FIXME: reservations live in the step's memory. Runs of different repositories at the
//! same moment (on one worker or many) each see the month's recorded spending and none of
//! the others' calls under way, so together they may pass `LLM_BUDGET_USD_PER_MONTH` by
//! the room that was left, once per run, and a call each. Reservations kept in the
//! database with an expiry, counted by `StepContext::spent`, would hold the monthly cap
//! across runs.

use std::sync::Mutex;

use isocrates_engine::{Spent, StepContext, StepError};
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
}

/// What the calls of one step may still cost while they run.
#[derive(Debug)]
pub struct Gate {
    budgets: Budgets,
    /// The worst cost of the calls let through whose spending is not recorded yet, and
    /// how many they are.
    reserved: Mutex<(f64, usize)>,
    /// Held while a call is admitted, so admissions see each other.
    admitting: tokio::sync::Mutex<()>,
    /// Signalled when a call's reservation is released.
    released: tokio::sync::Notify,
}

/// A call let through, whose worst cost stays reserved until it is dropped: drop it once
/// what the call spent is recorded.
#[derive(Debug)]
pub struct Pass<'a> {
    gate: &'a Gate,
    cost: f64,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if let Ok(mut reserved) = self.gate.reserved.lock() {
            reserved.1 = reserved.1.saturating_sub(1);
            // The sum starts again from nothing, so rounding cannot leave a reservation.
            reserved.0 = if reserved.1 == 0 { 0.0 } else { (reserved.0 - self.cost).max(0.0) };
        }
        self.gate.released.notify_waiters();
    }
}

impl Gate {
    /// A gate over `budgets` with nothing reserved.
    pub fn new(budgets: Budgets) -> Gate {
        Gate {
            budgets,
            reserved: Mutex::new((0.0, 0)),
            admitting: tokio::sync::Mutex::new(()),
            released: tokio::sync::Notify::new(),
        }
    }

    /// The worst cost of the calls under way, and how many they are.
    fn reserved(&self) -> (f64, usize) {
        self.reserved.lock().map_or((0.0, 0), |r| *r)
    }

    /// Lets a call of worst cost `cost` through, reserving the cost, once every cap has
    /// room for it beside the calls under way (waiting for them when it has not);
    /// answers why not, naming the cap, once what was spent reaches one.
    pub async fn admit(
        &self,
        ctx: &StepContext,
        cost: f64,
    ) -> Result<Result<Pass<'_>, String>, StepError> {
        if !self.budgets.any() {
            return Ok(Ok(Pass { gate: self, cost: 0.0 }));
        }
        let _admitting = self.admitting.lock().await;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            // The reservations first, then the spending: a call that ends in between has
            // its spending recorded before its reservation goes, so it is counted once or
            // twice, never missed.
            let (pending, under_way) = self.reserved();
            let spent = ctx.spent().await?;
            let states = self.budgets.states(&spent);
            if let Some(state) = states.iter().find(|s| s.spent_usd >= s.limit_usd) {
                return Ok(Err(reached(state)));
            }
            let crowded = states.iter().any(|s| s.spent_usd + pending >= s.limit_usd);
            if !crowded || under_way == 0 {
                if let Ok(mut reserved) = self.reserved.lock() {
                    reserved.0 += cost;
                    reserved.1 += 1;
                }
                return Ok(Ok(Pass { gate: self, cost }));
            }
            // The calls under way may reach a cap: wait for one to end, then look again.
            released.await;
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
        // A detached context has spent nothing: only the reservations are in the way.
        let ctx = StepContext::detached("run", serde_json::Value::Null, Default::default());
        let gate = Gate::new(Budgets { per_run_usd: Some(1.0), ..Default::default() });
        let first = gate.admit(&ctx, 0.6).await.unwrap().expect("room for the first");
        let second = gate.admit(&ctx, 0.6).await.unwrap().expect("0.6 of 1.0 reserved: room");
        let third = gate.admit(&ctx, 0.6);
        tokio::pin!(third);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), &mut third).await;
        assert!(waited.is_err(), "1.2 reserved of 1.0: the third call waits");
        drop(first);
        // The same call, woken by the end of the first.
        let woken = tokio::time::timeout(std::time::Duration::from_secs(5), third).await;
        assert!(woken.expect("woken when a call ended").unwrap().is_ok(), "then goes ahead");
        drop(second);
    }

    #[tokio::test]
    async fn nothing_under_way_lets_one_call_through_below_the_cap() {
        let ctx = StepContext::detached("run", serde_json::Value::Null, Default::default());
        let gate = Gate::new(Budgets { per_month_usd: Some(0.01), ..Default::default() });
        let pass = gate.admit(&ctx, 5.0).await.unwrap();
        assert!(pass.is_ok(), "a call dearer than the cap still goes when nothing is spent");
        let zero = Gate::new(Budgets { per_run_usd: Some(0.0), ..Default::default() });
        let refused = zero.admit(&ctx, 0.1).await.unwrap().unwrap_err();
        assert!(refused.contains("LLM_BUDGET_USD_PER_RUN=$0 is reached"), "{refused}");
    }
}
