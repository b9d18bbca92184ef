//! Caps on what a run's model calls may cost: per run, per month in all, and per month for
//! each repository (`LLM_BUDGET_USD_PER_RUN`, `LLM_BUDGET_USD_PER_MONTH`,
//! `LLM_BUDGET_USD_PER_REPO_PER_MONTH`).
//!
//! A step asks the [`Gate`] before each call. The gate compares what the database says
//! was spent (by the run, and this month) plus what calls already under way in this step
//! may still cost, against each cap: while every cap has room, the call goes ahead with
//! its worst cost reserved until it is paid; once one is reached, the step pauses the run
//! with a message naming the cap. Calls run at once therefore never carry a run past a
//! cap by more than one call.

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
    reserved: Mutex<f64>,
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
            *reserved = (*reserved - self.cost).max(0.0);
        }
    }
}

impl Gate {
    /// A gate over `budgets` with nothing reserved.
    pub fn new(budgets: Budgets) -> Gate {
        Gate { budgets, reserved: Mutex::new(0.0) }
    }

    /// Lets a call of worst cost `cost` through while every cap has room, reserving the
    /// cost; answers why not (naming the cap) once one is reached.
    pub async fn admit(
        &self,
        ctx: &StepContext,
        cost: f64,
    ) -> Result<Result<Pass<'_>, String>, StepError> {
        if !self.budgets.any() {
            return Ok(Ok(Pass { gate: self, cost: 0.0 }));
        }
        let spent = ctx.spent().await?;
        let mut reserved = self.reserved.lock().map_err(|_| {
            StepError::retryable("the budget's reservations were lost to a panic".to_string())
        })?;
        let pending = *reserved;
        for state in self.budgets.states(&spent) {
            if state.spent_usd + pending >= state.limit_usd {
                return Ok(Err(reached(&state, pending)));
            }
        }
        *reserved += cost;
        Ok(Ok(Pass { gate: self, cost }))
    }
}

/// Why the run stops at the cap of `state`.
fn reached(state: &BudgetState, pending: f64) -> String {
    let what = match state.variable {
        "LLM_BUDGET_USD_PER_RUN" => "this run has spent",
        "LLM_BUDGET_USD_PER_MONTH" => "this month's runs have spent",
        _ => "this month's runs of the repository have spent",
    };
    let under_way = if pending > 0.0 {
        format!(" (with up to ${pending:.4} more on calls under way)")
    } else {
        String::new()
    };
    format!(
        "the budget {}=${} is reached: {what} ${:.4}{under_way}; raise it and retry the job to \
         go on from here, or cancel it",
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
        let message = reached(&state, 0.0);
        assert!(
            message.starts_with(
                "the budget LLM_BUDGET_USD_PER_RUN=$0.5 is reached: this run has spent $0.5100"
            ),
            "{message}"
        );
        assert!(message.contains("retry the job"), "{message}");
    }

    #[tokio::test]
    async fn calls_under_way_count_until_their_pass_is_dropped() {
        let ctx = StepContext::detached("run", serde_json::Value::Null, Default::default());
        let gate = Gate::new(Budgets { per_run_usd: Some(1.0), ..Default::default() });
        let first = gate.admit(&ctx, 0.6).await.unwrap().expect("room for the first");
        let second = gate.admit(&ctx, 0.6).await.unwrap().expect("0.6 of 1.0 reserved: room");
        let third = gate.admit(&ctx, 0.6).await.unwrap();
        assert!(third.unwrap_err().contains("up to $1.2000 more"));
        drop((first, second));
        assert!(gate.admit(&ctx, 0.6).await.unwrap().is_ok(), "the reservations are released");
    }
}
