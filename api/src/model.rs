//! The JSON shapes of the contract, built from the store's types.

use isocrates_engine::RunStatus;
use isocrates_storage::Timestamp;
use isocrates_storage::documents::{Document, PREVIEW_CHARS, Version};
use isocrates_storage::links::Dependency;
use isocrates_storage::users::User;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A grant as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GrantOut {
    /// The prefix.
    pub path_prefix: String,
    /// The role.
    pub role: &'static str,
}

/// `User` of the contract.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserOut {
    /// Id.
    pub user_id: String,
    /// Shown name.
    pub display_name: String,
    /// Email.
    pub email: String,
    /// Global role.
    pub role: &'static str,
    /// Active or deactivated.
    pub is_active: bool,
    /// Grants.
    pub grants: Vec<GrantOut>,
}

impl From<&User> for UserOut {
    fn from(u: &User) -> UserOut {
        UserOut {
            user_id: u.id.clone(),
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            role: u.role.as_str(),
            is_active: u.is_active,
            grants: u
                .grants
                .iter()
                .map(|g| GrantOut { path_prefix: g.path_prefix.clone(), role: g.role.as_str() })
                .collect(),
        }
    }
}

/// `Document` of the contract: a [`DocumentListItem`] with its content, repository URL and
/// creation time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocumentOut {
    /// The fields lists show.
    #[serde(flatten)]
    pub item: DocumentListItem,
    /// Repository URL.
    pub repo_url: Option<String>,
    /// Markdown.
    pub content: String,
    /// Created.
    pub created_at: Timestamp,
}

impl From<Document> for DocumentOut {
    fn from(mut d: Document) -> DocumentOut {
        let content = std::mem::take(&mut d.content);
        let repo_url = d.repo_url.take();
        let created_at = d.created_at;
        let mut item = DocumentListItem::from(d);
        item.content_preview = content.chars().take(PREVIEW_CHARS).collect();
        DocumentOut { item, repo_url, content, created_at }
    }
}

/// `DocumentListItem`: a document without `content`, `repo_url` and `created_at`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocumentListItem {
    /// Id.
    pub id: String,
    /// Repository name.
    pub repo_name: Option<String>,
    /// Folder.
    pub path: String,
    /// Title.
    pub title: String,
    /// Kind of page.
    pub doc_type: String,
    /// Keywords.
    pub keywords: Vec<String>,
    /// Description.
    pub description: Option<String>,
    /// First 500 characters of the content.
    pub content_preview: String,
    /// Last changed.
    pub updated_at: Timestamp,
    /// Versions written.
    pub generation_count: i64,
    /// Optimistic-lock counter.
    pub version: i64,
    /// When trashed.
    pub deleted_at: Option<Timestamp>,
    /// Whether search indexed it.
    pub is_indexed: bool,
}

impl From<Document> for DocumentListItem {
    fn from(d: Document) -> DocumentListItem {
        DocumentListItem {
            content_preview: d.content_preview(),
            id: d.id,
            repo_name: d.repo_name,
            path: d.path,
            title: d.title,
            doc_type: d.doc_type,
            keywords: d.keywords,
            description: d.description,
            updated_at: d.updated_at,
            generation_count: d.generation_count,
            version: d.version,
            deleted_at: d.deleted_at,
            is_indexed: d.is_indexed,
        }
    }
}

/// A proposal: AI text waiting beside a page a person wrote last.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProposalOut {
    /// Id.
    pub id: String,
    /// The page.
    pub doc_id: String,
    /// The proposed markdown.
    pub content: String,
    /// The proposed description.
    pub description: Option<String>,
    /// Provenance, as an AI version carries it.
    pub author_metadata: Option<Value>,
    /// `open`, `accepted`, `dismissed` or `superseded`.
    pub status: &'static str,
    /// Made.
    pub created_at: Timestamp,
    /// Decided.
    pub decided_at: Option<Timestamp>,
    /// By whom.
    pub decided_by: Option<String>,
}

impl From<isocrates_storage::proposals::Proposal> for ProposalOut {
    fn from(p: isocrates_storage::proposals::Proposal) -> ProposalOut {
        ProposalOut {
            id: p.id,
            doc_id: p.doc_id,
            content: p.content,
            description: p.description,
            author_metadata: p.author_metadata,
            status: p.status.as_str(),
            created_at: p.created_at,
            decided_at: p.decided_at,
            decided_by: p.decided_by,
        }
    }
}

/// `Version` of the contract.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionOut {
    /// Id.
    pub version_id: String,
    /// Document.
    pub doc_id: String,
    /// Content.
    pub content: String,
    /// SHA-256 of the content.
    pub content_hash: String,
    /// `ai`, `human` or `system`.
    pub author_type: String,
    /// Provenance.
    pub author_metadata: Option<Value>,
    /// Written.
    pub created_at: Timestamp,
}

impl From<Version> for VersionOut {
    fn from(v: Version) -> VersionOut {
        VersionOut {
            version_id: v.version_id,
            doc_id: v.doc_id,
            content: v.content,
            content_hash: v.content_hash,
            author_type: v.author_type,
            author_metadata: v.author_metadata,
            created_at: v.created_at,
        }
    }
}

/// `Dependency` of the contract.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DependencyOut {
    /// Id.
    pub id: String,
    /// From.
    pub from_doc_id: String,
    /// To.
    pub to_doc_id: String,
    /// Type.
    pub link_type: String,
    /// Shown text.
    pub link_text: Option<String>,
    /// Section.
    pub section: Option<String>,
    /// Drawn.
    pub created_at: Timestamp,
}

impl From<Dependency> for DependencyOut {
    fn from(d: Dependency) -> DependencyOut {
        DependencyOut {
            id: d.id,
            from_doc_id: d.from_doc_id,
            to_doc_id: d.to_doc_id,
            link_type: d.link_type,
            link_text: d.link_text,
            section: d.section,
            created_at: d.created_at,
        }
    }
}

/// One attempt of a step, in a job's step history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptOut {
    /// The attempt, from 1 (counted again from 1 after an operator's retry).
    pub attempt: u32,
    /// `running`, `succeeded`, `failed`, `interrupted`, `cancelled`, `paused`, `skipped`.
    pub status: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// Why it failed.
    pub error: Option<String>,
}

/// One step of a job: its latest attempt, and every attempt in `history`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobStepOut {
    /// The step's name.
    pub name: String,
    /// The latest attempt's status; `pending` before the step first ran.
    pub status: String,
    /// How many attempts ran.
    pub attempts: usize,
    /// When the latest attempt started.
    pub started_at: Option<Timestamp>,
    /// When the latest attempt ended.
    pub finished_at: Option<Timestamp>,
    /// The latest attempt's error.
    pub error: Option<String>,
    /// One line about what the step produced.
    pub output_summary: Option<String>,
    /// Every attempt, oldest first.
    pub history: Vec<AttemptOut>,
}

/// `Job` of the contract.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobOut {
    /// Id.
    pub id: String,
    /// The repository.
    pub repo_url: String,
    /// The commit documented, once known.
    pub commit_sha: Option<String>,
    /// `queued`, `running`, `paused`, `completed`, `failed`, `cancelled`, `skipped`.
    pub status: &'static str,
    /// Why it failed, was cancelled, skipped or paused.
    pub error_message: Option<String>,
    /// How many times an operator retried it.
    pub retry_count: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its first step started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub completed_at: Option<Timestamp>,
    /// `webhook`, `manual` or `schedule`.
    pub trigger: String,
    /// The step it is at (or ended at).
    pub current_step: Option<String>,
    /// Its steps in workflow order.
    pub steps: Vec<JobStepOut>,
    /// Tokens sent to models.
    pub tokens_in: i64,
    /// Tokens received from models.
    pub tokens_out: i64,
    /// What the models cost, in US dollars.
    pub cost_usd: f64,
    /// The same, by provider and model.
    pub spending: Vec<ModelSpendOut>,
    /// Pages published.
    pub documents_written: u64,
    /// Pages left as they were.
    pub documents_skipped: u64,
}

/// What one model spent: on a job, in a month, or on a repository in a month.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelSpendOut {
    /// The provider's kind (`openai`, `ollama`, ...).
    pub provider: String,
    /// The model, as the provider names it.
    pub model: String,
    /// Calls answered.
    pub calls: i64,
    /// Tokens sent.
    pub tokens_in: i64,
    /// Tokens received.
    pub tokens_out: i64,
    /// What they cost, in US dollars.
    pub cost_usd: f64,
}

/// A dry run's answer: what a run would write and cost, worked out without a model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EstimateOut {
    /// Always true: nothing was started.
    pub dry_run: bool,
    /// The repository.
    pub repo_url: String,
    /// The commit the run would document.
    pub commit_sha: String,
    /// Why the run would write nothing, when it would not.
    pub skipped: Option<String>,
    /// Where the pages come from: `previous_run` (the published pages) or `analysis`
    /// (the plan made without a planner, standing in for the planner's).
    pub planned_by: Option<String>,
    /// Whether the run would call the planner.
    pub calls_planner: bool,
    /// The pages it would write.
    pub pages: Vec<PageEstimateOut>,
    /// Calls, tokens and cost by model tier.
    pub tiers: Vec<TierEstimateOut>,
    /// Tokens sent, over every call.
    pub tokens_in: u64,
    /// Tokens received, over every call.
    pub tokens_out: u64,
    /// The cost at the configured prices, in US dollars.
    pub cost_usd: f64,
    /// Whether every model called has a price; when not, `cost_usd` counts the priced ones.
    pub priced: bool,
    /// The caps that are set, with what each counts already this month.
    pub budgets: Vec<BudgetStateOut>,
    /// Whether the estimated cost fits in every cap.
    pub within_budgets: bool,
}

/// One page a run would write.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PageEstimateOut {
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
    /// What writing it would cost, in US dollars.
    pub cost_usd: f64,
    /// `previous_version`, `repository_average`, `default`, or `static` (no model).
    pub tokens_out_from: String,
}

/// What one model tier would be called for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TierEstimateOut {
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
    /// The cost at its prices, in US dollars.
    pub cost_usd: f64,
    /// Whether the model has a price.
    pub priced: bool,
}

/// One cap and what it counts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BudgetStateOut {
    /// The variable that sets it.
    pub variable: String,
    /// The cap, in US dollars.
    pub limit_usd: f64,
    /// What it counts already.
    pub spent_usd: f64,
    /// What is left.
    pub remaining_usd: f64,
}

impl From<isocrates_workflows::pipeline::estimate::Estimate> for EstimateOut {
    fn from(e: isocrates_workflows::pipeline::estimate::Estimate) -> EstimateOut {
        EstimateOut {
            dry_run: true,
            repo_url: e.repo_url,
            commit_sha: e.commit_sha,
            skipped: e.skipped,
            planned_by: e.planned_by,
            calls_planner: e.calls_planner,
            pages: e
                .pages
                .into_iter()
                .map(|p| PageEstimateOut {
                    title: p.title,
                    path: p.path,
                    doc_type: p.doc_type,
                    tokens_in: p.tokens_in,
                    tokens_out: p.tokens_out,
                    cost_usd: p.cost_usd,
                    tokens_out_from: p.tokens_out_from,
                })
                .collect(),
            tiers: e
                .tiers
                .into_iter()
                .map(|t| TierEstimateOut {
                    tier: t.tier,
                    provider: t.provider,
                    model: t.model,
                    calls: t.calls,
                    tokens_in: t.tokens_in,
                    tokens_out: t.tokens_out,
                    cost_usd: t.cost_usd,
                    priced: t.priced,
                })
                .collect(),
            tokens_in: e.tokens_in,
            tokens_out: e.tokens_out,
            cost_usd: e.cost_usd,
            priced: e.priced,
            budgets: e
                .budgets
                .into_iter()
                .map(|b| BudgetStateOut {
                    variable: b.variable.to_string(),
                    limit_usd: b.limit_usd,
                    spent_usd: b.spent_usd,
                    remaining_usd: b.remaining_usd,
                })
                .collect(),
            within_budgets: e.within_budgets,
        }
    }
}

impl From<isocrates_engine::ModelSpend> for ModelSpendOut {
    fn from(s: isocrates_engine::ModelSpend) -> ModelSpendOut {
        ModelSpendOut {
            provider: s.provider,
            model: s.model,
            calls: s.calls,
            tokens_in: s.tokens_in,
            tokens_out: s.tokens_out,
            cost_usd: s.cost_usd,
        }
    }
}

impl JobOut {
    /// The job of `run`, read with its step history and facts through `engine`.
    pub async fn load(
        engine: &isocrates_engine::Engine,
        run: &isocrates_engine::Run,
    ) -> Result<JobOut, isocrates_engine::Error> {
        let mut jobs = JobOut::load_many(engine, std::slice::from_ref(run)).await?;
        jobs.pop().ok_or_else(|| isocrates_engine::Error::NotFound(run.id.clone()))
    }

    /// The jobs of `runs`, in their order, with a few queries for all of them.
    pub async fn load_many(
        engine: &isocrates_engine::Engine,
        runs: &[isocrates_engine::Run],
    ) -> Result<Vec<JobOut>, isocrates_engine::Error> {
        let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
        let mut attempts = engine.steps_of_runs(&ids).await?;
        let mut spending = engine.spend_of_runs(&ids).await?;
        let facts = isocrates_workflows::docgen::facts(engine, runs).await?;
        let mut jobs = Vec::with_capacity(runs.len());
        for (run, facts) in runs.iter().zip(facts) {
            let names = engine.step_names(&run.workflow)?;
            let attempts = attempts.remove(&run.id).unwrap_or_default();
            let mut job = JobOut::new(run, &names, &attempts, facts.clone());
            job.spending = spending
                .remove(&run.id)
                .unwrap_or_default()
                .into_iter()
                .map(ModelSpendOut::from)
                .collect();
            // A running step that fans out says how far it got.
            if run.status == RunStatus::Running
                && let Some(name) = names.get(run.current_step)
            {
                let done = engine.items_done(run, name).await?;
                if done > 0
                    && let Some(step) = job.steps.get_mut(run.current_step)
                {
                    step.output_summary = Some(match (name.as_str(), facts.pages_to_write) {
                        ("write", Some(total)) => format!("{done} of {total} pages written"),
                        _ => format!("{done} done so far"),
                    });
                }
            }
            jobs.push(job);
        }
        Ok(jobs)
    }

    /// The job of `run`, whose workflow has the steps `names` and whose attempts are
    /// `attempts` (in the order they ran).
    pub fn new(
        run: &isocrates_engine::Run,
        names: &[String],
        attempts: &[isocrates_engine::StepRecord],
        facts: isocrates_workflows::docgen::RunFacts,
    ) -> JobOut {
        let steps = names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let history: Vec<AttemptOut> = attempts
                    .iter()
                    .filter(|a| a.step_index == index)
                    .map(|a| AttemptOut {
                        attempt: a.attempt,
                        status: a.status.clone(),
                        started_at: a.started_at,
                        finished_at: a.finished_at,
                        error: a.error.clone(),
                    })
                    .collect();
                let latest = attempts.iter().rfind(|a| a.step_index == index);
                // A short step's start is not written down: the run says it is running.
                let unrecorded = run.status == RunStatus::Running
                    && index == run.current_step
                    && !latest
                        .is_some_and(|a| a.round == run.retry_count && a.attempt == run.attempt);
                if unrecorded {
                    return JobStepOut {
                        name: name.clone(),
                        status: "running".to_string(),
                        attempts: history.len() + 1,
                        started_at: None,
                        finished_at: None,
                        error: None,
                        output_summary: None,
                        history,
                    };
                }
                JobStepOut {
                    name: name.clone(),
                    status: latest.map_or_else(|| "pending".to_string(), |a| a.status.clone()),
                    attempts: history.len(),
                    started_at: latest.map(|a| a.started_at),
                    finished_at: latest.and_then(|a| a.finished_at),
                    error: latest.and_then(|a| a.error.clone()),
                    output_summary: latest.and_then(|a| a.output_summary.clone()),
                    history,
                }
            })
            .collect();
        JobOut {
            id: run.id.clone(),
            repo_url: facts.repo_url,
            commit_sha: facts.commit_sha,
            status: isocrates_engine::store::status_name(run.status),
            error_message: run.error.clone(),
            retry_count: run.retry_count,
            created_at: run.created_at,
            started_at: run.started_at,
            completed_at: run.finished_at,
            trigger: run.trigger.clone(),
            current_step: names.get(run.current_step).cloned(),
            steps,
            tokens_in: run.usage.tokens_in,
            tokens_out: run.usage.tokens_out,
            cost_usd: run.usage.cost_usd,
            spending: Vec::new(),
            documents_written: facts.documents_written,
            documents_skipped: facts.documents_skipped,
        }
    }
}
