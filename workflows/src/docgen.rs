//! What a documentation run is to the engine: its input, the keys that deduplicate and
//! serialise runs of one repository, and the facts an operator reads off a run (commit,
//! pages written). The steps themselves are in [`crate::pipeline`].

use isocrates_engine::{Engine, NewRun, Run, RunFilter, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::STEPS;

/// The engine's name of the documentation workflow.
pub const WORKFLOW: &str = "docgen";

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// A GitHub push.
    Webhook,
    /// An operator, through the API or the command line.
    Manual,
    /// A periodic refresh.
    Schedule,
}

impl Trigger {
    /// The name stored on the run and shown in the jobs API.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Webhook => "webhook",
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
        }
    }
}

/// The input of a documentation run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocgenInput {
    /// The repository, as [`normalize_repo_url`] gives it.
    pub repo_url: String,
    /// The commit to document; `None` documents the head of the tracked branch, and the
    /// clone step finds out which commit that is.
    #[serde(default)]
    pub commit_sha: Option<String>,
    /// Rewrite every page, not only those whose sources changed.
    #[serde(default)]
    pub force: bool,
    /// The paths the push changed, when the push said; `None` means the clone works them
    /// out.
    #[serde(default)]
    pub changed_paths: Option<Vec<String>>,
    /// The paths among `changed_paths` that the push added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_paths: Vec<String>,
    /// The commit the push started from: its `changed_paths` are the changes since this
    /// commit, so they are trusted only when it is the one last published.
    #[serde(default)]
    pub base_commit: Option<String>,
}

impl DocgenInput {
    /// A run someone asked for: of `repo_url` at `commit_sha` (the branch head when
    /// `None`), with nothing known of what changed.
    pub fn manual(repo_url: String, commit_sha: Option<String>, force: bool) -> DocgenInput {
        DocgenInput {
            repo_url,
            commit_sha,
            force,
            changed_paths: None,
            added_paths: Vec::new(),
            base_commit: None,
        }
    }

    /// A run of the documentation workflow for this input. Runs for the same repository and
    /// commit are one run while it is live; runs of one repository run one at a time, the
    /// newest queued one superseding older queued ones.
    pub fn into_run(self, trigger: Trigger) -> NewRun {
        let commit = self.commit_sha.as_deref().unwrap_or("HEAD");
        NewRun {
            workflow: WORKFLOW.to_string(),
            dedup_key: Some(format!("{}@{commit}", repo_key(&self.repo_url))),
            concurrency_key: Some(repo_key(&self.repo_url)),
            input: serde_json::to_value(&self).unwrap_or(Value::Null),
            trigger: trigger.as_str().to_string(),
        }
    }

    /// The input of a stored run, if it is one of this workflow's.
    pub fn of(run: &Run) -> Option<DocgenInput> {
        if run.workflow != WORKFLOW {
            return None;
        }
        serde_json::from_value(run.input.clone()).ok()
    }
}

/// The engine's concurrency key of a repository: at most one of its runs runs at a time.
pub fn repo_key(repo_url: &str) -> String {
    format!("{WORKFLOW}:{repo_url}")
}

/// The repository of a run's concurrency key, when it is a documentation run's.
pub fn repo_of_key(key: &str) -> Option<&str> {
    key.strip_prefix(WORKFLOW)?.strip_prefix(':')
}

/// Hosts whose repository paths are case-insensitive.
const CASELESS_HOSTS: [&str; 3] = ["github.com", "gitlab.com", "bitbucket.org"];

/// Checks a repository URL and gives it the one spelling every run of the repository
/// shares: `https://host/owner/name` without a trailing slash or `.git` (lower case on
/// hosts that ignore case), or an absolute local path. Which hosts and whether local paths are allowed is the clone step's policy.
pub fn normalize_repo_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let help = "give an https URL such as https://github.com/owner/repo, or an absolute path \
                to a local repository";
    if trimmed.is_empty() {
        return Err(format!("repo_url is empty: {help}"));
    }
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("repo_url contains spaces or control characters: {help}"));
    }
    let mut url = trimmed.trim_end_matches('/').to_string();
    if let Some(stripped) = url.strip_suffix(".git") {
        url = stripped.trim_end_matches('/').to_string();
    }
    if let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) {
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() || path.is_empty() || host.contains('@') {
            return Err(format!("repo_url {trimmed} names no repository: {help}"));
        }
        let scheme = if url.starts_with("https://") { "https" } else { "http" };
        let host = host.to_ascii_lowercase();
        // These hosts name repositories without regard to case: one spelling per repository.
        let path = if CASELESS_HOSTS.contains(&host.as_str()) {
            path.to_ascii_lowercase()
        } else {
            path.to_string()
        };
        return Ok(format!("{scheme}://{host}/{path}"));
    }
    if let Some(path) = url.strip_prefix("file://") {
        url = path.to_string();
    }
    if url.starts_with('/') && url.len() > 1 {
        return Ok(url);
    }
    Err(format!("repo_url {trimmed} is neither an https URL nor an absolute path: {help}"))
}

/// Checks a commit id and gives it in lower case; an empty one means none.
pub fn normalize_commit_sha(raw: Option<&str>) -> Result<Option<String>, String> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        // A clone fetches a commit by its full id (SHA-1, or SHA-256), never an abbreviation.
        Some(sha) if matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(sha.to_ascii_lowercase()))
        }
        Some(sha) if sha.bytes().all(|b| b.is_ascii_hexdigit()) => Err(format!(
            "commit_sha must be a full commit id of 40 hexadecimal digits (got {} digits): \
             git rev-parse gives it",
            sha.len()
        )),
        Some(_) => Err("commit_sha must be a hexadecimal commit id".to_string()),
    }
}

/// The listing of documentation runs, newest first, optionally of one repository (any
/// spelling of its URL) and in one state.
pub fn run_filter(
    repo_url: Option<&str>,
    status: Option<RunStatus>,
    before: Option<String>,
    limit: i64,
) -> Result<RunFilter, String> {
    let concurrency_key = repo_url.map(normalize_repo_url).transpose()?.map(|url| repo_key(&url));
    Ok(RunFilter { workflow: Some(WORKFLOW.to_string()), status, concurrency_key, before, limit })
}

/// The repository's name: the last segment of its URL or path.
pub fn repo_name(repo_url: &str) -> &str {
    repo_url.rsplit('/').find(|s| !s.is_empty()).unwrap_or(repo_url)
}

/// The folder the pages of a repository live under, which decides who may see and start
/// its runs: the repository's name.
pub fn repo_folder(repo_url: &str) -> String {
    repo_name(repo_url).to_string()
}

/// Starts a run of the head of every tracked repository, as the periodic refresh does;
/// a repository whose run is queued or running already gets no second one. Returns how
/// many runs started.
pub async fn refresh_all(
    engine: &Engine,
    storage: &isocrates_storage::Storage,
) -> Result<usize, String> {
    let repositories = storage.repositories().await.map_err(|e| e.to_string())?;
    let mut started = 0;
    for repository in repositories {
        let input = DocgenInput {
            repo_url: repository.repo_url.clone(),
            commit_sha: None,
            force: false,
            changed_paths: None,
            added_paths: Vec::new(),
            base_commit: None,
        };
        match engine.submit(input.into_run(Trigger::Schedule)).await {
            Ok(submitted) if submitted.created => started += 1,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(repo_url = %repository.repo_url, error = %e, "the refresh of a repository could not start")
            }
        }
    }
    Ok(started)
}

/// What an operator reads off a documentation run besides the engine's own record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFacts {
    /// The repository.
    pub repo_url: String,
    /// The commit documented: the one the run was started for, or the one its clone found.
    pub commit_sha: Option<String>,
    /// Pages published.
    pub documents_written: u64,
    /// Pages left as they were.
    pub documents_skipped: u64,
    /// Pages the plan asked this run to write, once it is planned.
    pub pages_to_write: Option<u64>,
}

/// The field of the clone step's checkpoint naming the commit it checked out.
pub const CLONE_COMMIT_FIELD: &str = "commit_sha";
/// The fields of the publish step's checkpoint counting pages written and left alone.
pub const PUBLISH_COUNT_FIELDS: [&str; 2] = ["documents_written", "documents_skipped"];

/// Reads the facts of each of `runs` from its input and the checkpoints of its clone and
/// publish steps, with one query per step for all of them.
pub async fn facts(
    engine: &Engine,
    runs: &[Run],
) -> Result<Vec<RunFacts>, isocrates_engine::Error> {
    let ours: Vec<Run> =
        runs.iter().filter(|r| r.workflow == WORKFLOW && r.started_at.is_some()).cloned().collect();
    let clones = engine.checkpoints(&ours, STEPS[0]).await?;
    let publishes = engine.checkpoints(&ours, STEPS[STEPS.len() - 1]).await?;
    let plans = engine.checkpoints(&ours, "plan").await?;
    Ok(runs
        .iter()
        .map(|run| {
            let input = DocgenInput::of(run);
            let mut facts = RunFacts {
                repo_url: input.as_ref().map(|i| i.repo_url.clone()).unwrap_or_default(),
                commit_sha: input.and_then(|i| i.commit_sha),
                ..RunFacts::default()
            };
            if facts.commit_sha.is_none() {
                facts.commit_sha = clones
                    .get(&run.id)
                    .and_then(|clone| clone[CLONE_COMMIT_FIELD].as_str())
                    .map(str::to_string);
            }
            facts.pages_to_write = plans
                .get(&run.id)
                .and_then(|plan| plan["write"].as_array())
                .map(|w| w.len() as u64);
            if let Some(publish) = publishes.get(&run.id) {
                let [written, skipped] =
                    PUBLISH_COUNT_FIELDS.map(|f| publish[f].as_u64().unwrap_or(0));
                facts.documents_written = written;
                facts.documents_skipped = skipped;
            }
            facts
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_one_spelling() {
        for raw in [
            "https://github.com/acme/widgets",
            "https://GitHub.com/acme/widgets/",
            "https://github.com/acme/widgets.git",
            " https://github.com/acme/widgets.git/ ",
            "https://github.com/Acme/Widgets",
        ] {
            assert_eq!(normalize_repo_url(raw).unwrap(), "https://github.com/acme/widgets");
        }
        assert_eq!(normalize_repo_url("/srv/git/widgets/").unwrap(), "/srv/git/widgets");
        assert_eq!(normalize_repo_url("file:///srv/git/widgets").unwrap(), "/srv/git/widgets");
    }

    #[test]
    fn urls_that_name_no_repository_are_refused_with_the_fix() {
        for raw in ["", "github.com/acme/widgets", "https://github.com", "relative/path", "/"] {
            let error = normalize_repo_url(raw).unwrap_err();
            assert!(error.contains("https://github.com/owner/repo"), "{raw}: {error}");
        }
        assert!(normalize_repo_url("https://user@github.com/a/b").is_err());
    }

    #[test]
    fn commit_ids_are_hexadecimal_and_lower_case() {
        let full = "ABCDEF0123456789ABCDEF0123456789ABCDEF01";
        assert_eq!(
            normalize_commit_sha(Some(&format!(" {full} "))).unwrap(),
            Some(full.to_ascii_lowercase())
        );
        assert_eq!(normalize_commit_sha(Some("")).unwrap(), None);
        assert!(normalize_commit_sha(Some("not a sha")).is_err());
        let short = normalize_commit_sha(Some("abcdef01")).unwrap_err();
        assert!(
            short.contains("40 hexadecimal digits"),
            "an abbreviation cannot be fetched: {short}"
        );
    }

    #[test]
    fn runs_of_one_repository_share_a_concurrency_key_and_dedup_by_commit() {
        let input = |commit: Option<&str>| DocgenInput {
            repo_url: "https://github.com/acme/widgets".to_string(),
            commit_sha: commit.map(str::to_string),
            force: false,
            changed_paths: None,
            added_paths: Vec::new(),
            base_commit: None,
        };
        let a = input(Some("abc")).into_run(Trigger::Webhook);
        let b = input(Some("def")).into_run(Trigger::Webhook);
        let head = input(None).into_run(Trigger::Manual);
        assert_eq!(a.concurrency_key, b.concurrency_key);
        assert_ne!(a.dedup_key, b.dedup_key);
        assert_eq!(head.dedup_key.as_deref(), Some("docgen:https://github.com/acme/widgets@HEAD"));
        assert_eq!(a.trigger, "webhook");
        assert_eq!(repo_folder("https://github.com/acme/widgets"), "widgets");
    }
}
