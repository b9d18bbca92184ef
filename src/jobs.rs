//! `isocrates jobs list|show|retry|cancel`: the operator's view of documentation jobs,
//! straight from the database, in the same shape as the jobs API (`--json`) or as text.

#![allow(clippy::print_stdout)]

use anyhow::Context;
use clap::Subcommand;
use isocrates_api::model::JobOut;
use isocrates_engine::{Engine, Run, RunStatus};
use isocrates_workflows::docgen;

/// The subcommands of `isocrates jobs`.
#[derive(Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only the jobs of this repository.
        #[arg(long)]
        repo_url: Option<String>,
        /// Only jobs in this state: queued, running, paused, completed, failed, cancelled,
        /// skipped.
        #[arg(long)]
        status: Option<String>,
        /// How many jobs to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Only jobs older than the job with this id (to page through).
        #[arg(long)]
        before: Option<String>,
        /// Print the jobs as the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one job with its step history.
    Show {
        /// The job's id.
        id: String,
        /// Print the job as the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a failed, cancelled or paused job again, from where it stopped or from a step.
    Retry {
        /// The job's id.
        id: String,
        /// The step to start from; later checkpoints are discarded, earlier ones reused.
        #[arg(long)]
        from_step: Option<String>,
    },
    /// Cancel a job: a queued one never starts, a running one stops at its next boundary.
    Cancel {
        /// The job's id.
        id: String,
    },
}

/// Runs one `jobs` subcommand.
pub async fn run(engine: &Engine, command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::List { repo_url, status, limit, before, json } => {
            if !(1..=1000).contains(&limit) {
                anyhow::bail!("--limit must be between 1 and 1000 (got {limit})");
            }
            let status = status.as_deref().map(parse_status).transpose()?;
            let filter = docgen::run_filter(repo_url.as_deref(), status, before, limit)
                .map_err(|m| anyhow::anyhow!("--repo-url: {m}"))?;
            let runs = engine.runs(&filter).await.context("listing the jobs")?;
            let jobs = JobOut::load_many(engine, &runs).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else {
                print_list(&jobs);
            }
        }
        JobsCommand::Show { id, json } => {
            let job = JobOut::load(engine, &find(engine, &id).await?).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                print_job(&job);
            }
        }
        JobsCommand::Retry { id, from_step } => {
            let run = engine.retry(&id, from_step.as_deref()).await.map_err(explain)?;
            println!("job {} queued again (retry {})", run.id, run.retry_count);
        }
        JobsCommand::Cancel { id } => {
            let run = engine.cancel(&id).await.map_err(explain)?;
            let state = if run.status == RunStatus::Cancelled {
                "cancelled"
            } else {
                "stops at its next step boundary"
            };
            println!("job {} {state}", run.id);
        }
    }
    Ok(())
}

fn parse_status(name: &str) -> anyhow::Result<RunStatus> {
    serde_json::from_value(serde_json::Value::String(name.to_ascii_lowercase())).map_err(|_| {
        anyhow::anyhow!(
            "--status {name} is not a job state: use queued, running, paused, completed, \
             failed, cancelled or skipped"
        )
    })
}

async fn find(engine: &Engine, id: &str) -> anyhow::Result<Run> {
    engine.run(id).await.map_err(explain)
}

/// Turns an engine error into the one line an operator reads.
fn explain(e: isocrates_engine::Error) -> anyhow::Error {
    match e {
        isocrates_engine::Error::NotFound(id) => {
            anyhow::anyhow!("job {id} not found: `isocrates jobs list` shows the jobs")
        }
        isocrates_engine::Error::Refused(refusal) => anyhow::anyhow!("{refusal}"),
        other => anyhow::Error::new(other),
    }
}

fn short(sha: Option<&str>) -> &str {
    sha.map_or("-", |s| &s[..s.len().min(10)])
}

fn when(t: Option<isocrates_storage::Timestamp>) -> String {
    t.map_or_else(
        || "-".to_string(),
        |t| t.to_string().chars().take(19).collect::<String>().replace('T', " "),
    )
}

fn print_list(jobs: &[JobOut]) {
    if jobs.is_empty() {
        println!("no jobs");
        return;
    }
    println!(
        "{:<26}  {:<9}  {:<8}  {:<11}  {:<10}  {:<19}  REPOSITORY",
        "ID", "STATUS", "TRIGGER", "STEP", "COMMIT", "CREATED"
    );
    for job in jobs {
        println!(
            "{:<26}  {:<9}  {:<8}  {:<11}  {:<10}  {:<19}  {}",
            job.id,
            job.status,
            job.trigger,
            job.current_step.as_deref().unwrap_or("-"),
            short(job.commit_sha.as_deref()),
            when(Some(job.created_at)),
            job.repo_url
        );
    }
}

fn print_job(job: &JobOut) {
    println!("job {} ({}, {})", job.id, job.trigger, job.repo_url);
    let at = job.current_step.as_deref().unwrap_or("-");
    println!("status:  {} (step {at})", job.status);
    if let Some(error) = &job.error_message {
        println!("message: {error}");
    }
    println!("commit:  {}", job.commit_sha.as_deref().unwrap_or("(not known yet)"));
    println!(
        "times:   created {}, started {}, ended {}",
        when(Some(job.created_at)),
        when(job.started_at),
        when(job.completed_at)
    );
    println!(
        "spent:   {} tokens in, {} out, ${:.4}; {} documents written, {} left as they were",
        job.tokens_in, job.tokens_out, job.cost_usd, job.documents_written, job.documents_skipped
    );
    if job.retry_count > 0 {
        println!("retried: {} times", job.retry_count);
    }
    println!("steps:");
    for step in &job.steps {
        let summary = step.output_summary.as_deref().map(|s| format!("  {s}")).unwrap_or_default();
        println!("  {:<12} {:<11} {} attempt(s){summary}", step.name, step.status, step.attempts);
        for attempt in &step.history {
            let error = attempt.error.as_deref().map(|e| format!("  {e}")).unwrap_or_default();
            println!(
                "      #{} {:<11} {}{error}",
                attempt.attempt,
                attempt.status,
                when(Some(attempt.started_at))
            );
        }
    }
}
