//! GitHub's REST API, through octocrab, for repositories on github.com when `GITHUB_TOKEN`
//! is set: a repository's default branch and privacy, and the paths changed between two
//! commits.
//!
//! Git alone answers both questions too, more slowly: the clone finds the default branch in
//! the server's HEAD, and the changed paths by fetching the older commit as well. So every
//! answer here is an optimisation with a fallback, and a failed call is logged by the
//! caller and never fails a run.

use std::time::Duration;

use octocrab::Octocrab;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::git::PathChanges;

/// Where GitHub's API is reached when `GITHUB_API_URL` is not set.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// GitHub lists at most this many files in a comparison; a longer list may be short.
const MAX_COMPARED_FILES: usize = 300;

/// A client of GitHub's API, authenticated with `GITHUB_TOKEN`.
#[derive(Clone)]
pub struct GitHub {
    client: Octocrab,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub").finish_non_exhaustive()
    }
}

/// What GitHub says of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFacts {
    /// The branch its HEAD names.
    pub default_branch: Option<String>,
    /// Whether only its members can read it.
    pub private: Option<bool>,
}

/// Why GitHub did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitHubError {
    /// GitHub refused the token.
    #[error("GitHub refused GITHUB_TOKEN ({status}): {message}; check the token and its scopes")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// GitHub's message.
        message: String,
    },
    /// No such repository or commit, or none the token can see.
    #[error("GitHub knows no {what}, or GITHUB_TOKEN cannot read it")]
    NotFound {
        /// What was asked for.
        what: String,
    },
    /// Anything else: the network, a server error, an answer that could not be read.
    #[error("GitHub's API failed: {0}")]
    Failed(String),
}

/// The part of a comparison IsoCrates reads.
#[derive(Debug, Deserialize)]
struct Comparison {
    /// `ahead`, `identical`, `behind` or `diverged`.
    #[serde(default)]
    status: String,
    #[serde(default)]
    files: Option<Vec<ComparedFile>>,
}

#[derive(Debug, Deserialize)]
struct ComparedFile {
    filename: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    previous_filename: Option<String>,
}

impl GitHub {
    /// A client of the API at `api_url` (`https://api.github.com`, or a stand-in).
    pub fn new(token: &SecretString, api_url: &str) -> Result<GitHub, String> {
        let client = Octocrab::builder()
            .personal_token(token.expose_secret().to_string())
            .base_uri(api_url)
            .map_err(|e| format!("GITHUB_API_URL {api_url:?} is not a URL: {e}"))?
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::Simple(2))
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| format!("the GitHub client cannot start: {e}"))?;
        Ok(GitHub { client })
    }

    /// The owner and name of a repository on github.com, from its normalised URL.
    pub fn repo_of(repo_url: &str) -> Option<(&str, &str)> {
        let rest = repo_url.strip_prefix("https://github.com/")?;
        let mut parts = rest.trim_end_matches('/').split('/');
        let owner = parts.next().filter(|p| !p.is_empty())?;
        let name = parts.next().filter(|p| !p.is_empty())?;
        let name = name.strip_suffix(".git").unwrap_or(name);
        parts.next().is_none().then_some((owner, name))
    }

    /// The repository's default branch and privacy.
    pub async fn repository(&self, owner: &str, name: &str) -> Result<RepoFacts, GitHubError> {
        let repo = self
            .client
            .repos(owner, name)
            .get()
            .await
            .map_err(|e| failure(e, &format!("repository {owner}/{name}")))?;
        Ok(RepoFacts { default_branch: repo.default_branch, private: repo.private })
    }

    /// The paths added, changed, removed or renamed (both names) between `base` and
    /// `head`; `None` when GitHub's list may be short, or when `head` does not descend
    /// from `base` (a forced push), where GitHub compares with their merge base instead.
    pub async fn changed_paths(
        &self,
        owner: &str,
        name: &str,
        base: &str,
        head: &str,
    ) -> Result<Option<PathChanges>, GitHubError> {
        let route = format!("/repos/{owner}/{name}/compare/{base}...{head}");
        let comparison: Comparison = self.client.get(&route, None::<&()>).await.map_err(|e| {
            failure(e, &format!("comparison of {base} and {head} in {owner}/{name}"))
        })?;
        // GitHub compares `head` with the merge base: only when `base` is that merge base
        // (head is ahead of it, or the same) are the files those between the two commits.
        if !matches!(comparison.status.as_str(), "ahead" | "identical") {
            return Ok(None);
        }
        let Some(files) = comparison.files else { return Ok(None) };
        if files.len() >= MAX_COMPARED_FILES {
            return Ok(None);
        }
        let mut changes = PathChanges::default();
        for file in files {
            if matches!(file.status.as_str(), "added" | "renamed" | "copied") {
                changes.added.push(file.filename.clone());
            }
            changes.paths.push(file.filename);
            changes.paths.extend(file.previous_filename);
        }
        for list in [&mut changes.paths, &mut changes.added] {
            list.sort();
            list.dedup();
        }
        Ok(Some(changes))
    }
}

fn failure(error: octocrab::Error, what: &str) -> GitHubError {
    match error {
        octocrab::Error::GitHub { source, .. } => match source.status_code.as_u16() {
            404 | 422 => GitHubError::NotFound { what: what.to_string() },
            status @ (401 | 403) => GitHubError::Refused { status, message: source.message },
            status => GitHubError::Failed(format!("{status} for the {what}: {}", source.message)),
        },
        other => GitHubError::Failed(format!("asking for the {what}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_github_repositories_have_an_owner_and_a_name() {
        assert_eq!(GitHub::repo_of("https://github.com/acme/shop"), Some(("acme", "shop")));
        assert_eq!(GitHub::repo_of("https://github.com/acme/shop.git"), Some(("acme", "shop")));
        assert_eq!(GitHub::repo_of("https://gitlab.com/acme/shop"), None);
        assert_eq!(GitHub::repo_of("https://github.com/acme"), None);
        assert_eq!(GitHub::repo_of("https://github.com/acme/shop/tree/main"), None);
        assert_eq!(GitHub::repo_of("/srv/git/shop"), None);
    }
}
