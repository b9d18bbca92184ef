//! What a run would write and cost, worked out without calling a model: the dry run behind
//! `isocrates generate --estimate` and `POST /api/jobs` with `dry_run`.
//!
//! The estimate fetches the commit and runs the run's own `analyze`, `check_early` and
//! `plan` steps outside any run (nothing is recorded, no repository is tracked), with the
//! plan made from the analysis where the run would ask the planner. It then builds each
//! page's writer prompt as the `write` step would and counts its tokens
//! ([`isocrates_providers::tokens`]). A page's answer is estimated at what the model wrote
//! for its latest version, else at the average of the repository's pages, else at
//! [`DEFAULT_PAGE_TOKENS`].

use std::collections::BTreeMap;
use std::sync::Arc;

use isocrates_engine::{Spent, StepContext, StepError, StepOutcome};
use isocrates_providers::{Llm, Tier, Usage, tokens};
use serde::Serialize;
use serde_json::Value;

use super::budget::BudgetState;
use super::plan::{Blueprint, PlannedBy};
use super::{
    CloneOutput, Docgen, EarlyCheck, Models, analyze_step, check_early, fetch_commit, plan_step,
    planner_request, snapshot_of, storage_failure, writer_request,
};
use crate::analyze::Analysis;
use crate::docgen::{DocgenInput, repo_folder};

/// The answer a page is estimated at when nothing better is known: a page of a few
/// sections, about 900 words.
pub const DEFAULT_PAGE_TOKENS: u64 = 1_200;

/// What a run would write and cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// The repository.
    pub repo_url: String,
    /// The commit the run would document.
    pub commit_sha: String,
    /// Why the run would write nothing, when it would not.
    pub skipped: Option<String>,
    /// Where the pages come from: `previous_run` (the published pages, kept as the plan)
    /// or `analysis` (the plan made without a planner, standing in for the planner's).
    pub planned_by: Option<String>,
    /// Whether the run would call the planner.
    pub calls_planner: bool,
    /// The pages the run would write.
    pub pages: Vec<PageEstimate>,
    /// Calls, tokens and cost of each model tier the run would call.
    pub tiers: Vec<TierEstimate>,
    /// Tokens sent, over every call.
    pub tokens_in: u64,
    /// Tokens received, over every call.
    pub tokens_out: u64,
    /// The cost at the configured prices, in US dollars.
    pub cost_usd: f64,
    /// Whether every model the run would call has a price: when not, `cost_usd` counts
    /// only the priced ones.
    pub priced: bool,
    /// The caps that are set, with what they count already (a new run has spent nothing).
    pub budgets: Vec<BudgetState>,
    /// Whether the estimated cost fits in every cap.
    pub within_budgets: bool,
}

/// One page the run would write.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PageEstimate {
    /// Its title.
    pub title: String,
    /// Its folder below the repository's.
    pub path: String,
    /// Its kind.
    pub doc_type: String,
    /// Tokens of its writer prompt.
    pub tokens_in: u64,
    /// Tokens of its answer, estimated.
    pub tokens_out: u64,
    /// What writing it would cost.
    pub cost_usd: f64,
    /// Where the answer's estimate comes from: `previous_version`, `repository_average`,
    /// `default`, or `static` (no model writes it).
    pub tokens_out_from: String,
}

/// What one model tier would be called for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierEstimate {
    /// `planner` or `writer`.
    pub tier: String,
    /// The provider's kind.
    pub provider: String,
    /// The model.
    pub model: String,
    /// Calls.
    pub calls: u64,
    /// Tokens sent.
    pub tokens_in: u64,
    /// Tokens received, estimated.
    pub tokens_out: u64,
    /// The cost at its prices.
    pub cost_usd: f64,
    /// Whether the model has a price.
    pub priced: bool,
}

impl TierEstimate {
    fn new(tier: Tier, model: &Llm) -> TierEstimate {
        TierEstimate {
            tier: tier.as_str().to_string(),
            provider: model.provider().kind().as_str().to_string(),
            model: model.provider().model().to_string(),
            calls: 0,
            tokens_in: 0,
            tokens_out: 0,
            cost_usd: 0.0,
            priced: model.prices().is_some(),
        }
    }

    /// Adds one call; answers its cost.
    fn add(&mut self, model: &Llm, tokens_in: u64, tokens_out: u64) -> f64 {
        let usage = Usage { input_tokens: tokens_in, output_tokens: tokens_out };
        let cost = model.prices().map_or(0.0, |p| p.cost(usage));
        self.calls += 1;
        self.tokens_in += tokens_in;
        self.tokens_out += tokens_out;
        self.cost_usd += cost;
        cost
    }
}

/// Why a run could not be estimated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EstimateError {
    /// The configuration refuses the repository, or it or its commit does not exist.
    #[error("{0}")]
    Refused(String),
    /// The repository's host or the clone cache failed; trying again may pass.
    #[error("{0}")]
    Unavailable(String),
    /// A step of the run failed: the database, a prompt.
    #[error("{0}")]
    Failed(String),
}

impl From<StepError> for EstimateError {
    fn from(error: StepError) -> EstimateError {
        EstimateError::Failed(error.to_string())
    }
}

/// Estimates a run of `input` over `d`, beside what this month has `spent` already (in
/// all, and on the repository). Fails as the run's steps would: a repository that cannot
/// be fetched, a prompt that does not render.
pub async fn estimate(
    d: Arc<Docgen>,
    input: &DocgenInput,
    spent: Spent,
) -> Result<Estimate, EstimateError> {
    let (commit_sha, default_branch, files) = match fetch_commit(&d, input).await? {
        Ok(fetched) => fetched,
        Err(error) if error.is_retryable() => {
            return Err(EstimateError::Unavailable(error.to_string()));
        }
        Err(error) => return Err(EstimateError::Refused(error.to_string())),
    };
    // The repository is not tracked by an estimate: its folder is the one it has, or
    // would have.
    let folder = match d.storage.repository(&input.repo_url).await.map_err(storage_failure)? {
        Some(known) => known.folder,
        None => repo_folder(&input.repo_url),
    };
    let cloned = CloneOutput { commit_sha: commit_sha.clone(), default_branch, files, folder };
    let run_input = serde_json::to_value(input)
        .map_err(|e| EstimateError::Failed(format!("the run's input: {e}")))?;
    let mut outputs = BTreeMap::new();
    outputs.insert("clone".to_string(), to_value(&cloned)?);
    let ctx = |outputs: &BTreeMap<String, Value>| {
        StepContext::detached("estimate", run_input.clone(), outputs.clone())
    };
    let mut estimate = Estimate {
        repo_url: input.repo_url.clone(),
        commit_sha,
        skipped: None,
        planned_by: None,
        calls_planner: false,
        pages: Vec::new(),
        tiers: Vec::new(),
        tokens_in: 0,
        tokens_out: 0,
        cost_usd: 0.0,
        priced: true,
        budgets: Vec::new(),
        within_budgets: true,
    };

    // The run's own steps, up to its plan; the planner is left out.
    let planless =
        Arc::new(Docgen { models: Models { planner: None, ..d.models.clone() }, ..(*d).clone() });
    let steps = ["analyze", "check_early", "plan"];
    for name in steps {
        let context = ctx(&outputs);
        let outcome = match name {
            "analyze" => analyze_step(d.clone(), context).await?,
            "check_early" => check_early(d.clone(), context).await?,
            _ => plan_step(planless.clone(), context).await?,
        };
        match outcome {
            StepOutcome::Done(value) => {
                outputs.insert(name.to_string(), value);
            }
            StepOutcome::SkipRun(reason) | StepOutcome::Pause(reason) => {
                estimate.skipped = Some(reason);
                return Ok(finish(estimate, &d, spent));
            }
        }
    }
    let analysis: Analysis = checkpoint(&outputs, "analyze")?;
    let early: EarlyCheck = checkpoint(&outputs, "check_early")?;
    let blueprint: Blueprint = checkpoint(&outputs, "plan")?;
    estimate.planned_by = Some(
        match blueprint.planned_by {
            PlannedBy::PreviousRun => "previous_run",
            _ => "analysis",
        }
        .to_string(),
    );

    if let Some(planner) = &d.models.planner
        && blueprint.planned_by != PlannedBy::PreviousRun
    {
        let request = planner_request(&d, input, &cloned, &analysis, &early)?;
        // The planner answers with a plan much like the one made from the analysis.
        let answer = serde_json::to_string(&blueprint.pages).unwrap_or_default();
        let mut tier = TierEstimate::new(Tier::Planner, planner);
        tier.add(planner, tokens::estimate_request(&request), tokens::estimate(&answer));
        estimate.calls_planner = true;
        estimate.tiers.push(tier);
    }

    let to_write = blueprint.pages.iter().filter(|p| blueprint.write.contains(&p.title));
    let Some(writer) = &d.models.writer else {
        estimate.pages = to_write
            .map(|page| PageEstimate {
                title: page.title.clone(),
                path: page.path.clone(),
                doc_type: page.doc_type.clone(),
                tokens_in: 0,
                tokens_out: 0,
                cost_usd: 0.0,
                tokens_out_from: "static".into(),
            })
            .collect();
        return Ok(finish(estimate, &d, spent));
    };
    let (snapshot, _) = snapshot_of(&d, &ctx(&outputs)).await?;
    let answers = Answers::of(&early, d.settings.max_page_tokens);
    let mut tier = TierEstimate::new(Tier::Writer, writer);
    for page in to_write {
        let request =
            writer_request(&d, page, &blueprint, &analysis, &snapshot, input, &cloned.commit_sha)?;
        let tokens_in = tokens::estimate_request(&request);
        let (tokens_out, from) = answers.of_page(&page.title);
        let cost_usd = tier.add(writer, tokens_in, tokens_out);
        estimate.pages.push(PageEstimate {
            title: page.title.clone(),
            path: page.path.clone(),
            doc_type: page.doc_type.clone(),
            tokens_in,
            tokens_out,
            cost_usd,
            tokens_out_from: from.to_string(),
        });
    }
    if tier.calls > 0 {
        estimate.tiers.push(tier);
    }
    Ok(finish(estimate, &d, spent))
}

/// The estimate with its totals and where it stands against the caps.
fn finish(mut estimate: Estimate, d: &Docgen, spent: Spent) -> Estimate {
    estimate.tokens_in = estimate.tiers.iter().map(|t| t.tokens_in).sum();
    estimate.tokens_out = estimate.tiers.iter().map(|t| t.tokens_out).sum();
    estimate.cost_usd = estimate.tiers.iter().map(|t| t.cost_usd).sum();
    estimate.priced = estimate.tiers.iter().all(|t| t.priced);
    // A new run has spent nothing of its own.
    let spent = Spent { run_usd: 0.0, ..spent };
    estimate.budgets = d.settings.budgets.states(&spent);
    estimate.within_budgets =
        estimate.budgets.iter().all(|b| b.spent_usd + estimate.cost_usd <= b.limit_usd);
    estimate
}

/// What pages' answers are estimated at, from the published pages of the repository.
struct Answers {
    by_title: BTreeMap<String, u64>,
    average: Option<u64>,
    most: u64,
}

impl Answers {
    fn of(early: &EarlyCheck, max_page_tokens: u32) -> Answers {
        let by_title: BTreeMap<String, u64> = early
            .published
            .iter()
            .filter_map(|p| Some((isocrates_storage::links::title_key(&p.title), p.tokens_out?)))
            .collect();
        let average =
            (!by_title.is_empty()).then(|| by_title.values().sum::<u64>() / by_title.len() as u64);
        Answers { by_title, average, most: u64::from(max_page_tokens) }
    }

    /// The answer of the page titled `title`, and where the figure comes from.
    fn of_page(&self, title: &str) -> (u64, &'static str) {
        let key = isocrates_storage::links::title_key(title);
        let (tokens, from) = match (self.by_title.get(&key), self.average) {
            (Some(tokens), _) => (*tokens, "previous_version"),
            (None, Some(average)) => (average, "repository_average"),
            (None, None) => (DEFAULT_PAGE_TOKENS, "default"),
        };
        (tokens.min(self.most), from)
    }
}

fn to_value(value: &impl Serialize) -> Result<Value, EstimateError> {
    serde_json::to_value(value).map_err(|e| EstimateError::Failed(format!("a checkpoint: {e}")))
}

fn checkpoint<T: serde::de::DeserializeOwned>(
    outputs: &BTreeMap<String, Value>,
    step: &str,
) -> Result<T, EstimateError> {
    let value = outputs.get(step).cloned().unwrap_or_default();
    serde_json::from_value(value)
        .map_err(|e| EstimateError::Failed(format!("the {step} step's checkpoint: {e}")))
}
