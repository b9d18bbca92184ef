//! `POST /api/webhooks/github`: a push to a repository's branch starts a documentation
//! job for its head commit, with the paths the push changed.
//!
//! The raw body is checked against `X-Hub-Signature-256` (HMAC-SHA256 with
//! `GITHUB_WEBHOOK_SECRET`, compared in constant time) before anything else is read.
//! Pings are answered, other events, deleted refs, tags and branches other than the
//! repository's tracked one (the branch an admin set, else GitHub's default) are ignored
//! with a 200 that says why, and a redelivery of the same `X-GitHub-Delivery` answers the
//! job the first delivery started. The push's `before` travels with its paths, which a
//! run trusts only when it is the commit last published.

use std::collections::BTreeSet;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use isocrates_workflows::docgen::{self, DocgenInput, Trigger};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::AppState;
use crate::error::Error;
use crate::extract::RawBody;

/// GitHub leaves the commit list out past this many commits: the clone works out the
/// changed paths instead.
const MAX_LISTED_COMMITS: usize = 2048;

/// The handlers of this module, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(github))]
pub(crate) struct Api;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/webhooks/github", post(github))
}

/// The answer to a delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Delivered {
    /// `ok` (a ping), `ignored` or `queued`.
    status: &'static str,
    /// The job started, or found, for the push.
    job_id: Option<String>,
    /// What was done, for the delivery log on GitHub.
    message: String,
}

fn ignored(message: impl Into<String>) -> axum::Json<Delivered> {
    axum::Json(Delivered { status: "ignored", job_id: None, message: message.into() })
}

/// A delivery from GitHub, verified against `X-Hub-Signature-256` first.
#[utoipa::path(post, path = "/api/webhooks/github", tag = "webhooks",
    params(
        ("X-GitHub-Event" = String, Header, description = "`push` or `ping`; other events are ignored"),
        ("X-Hub-Signature-256" = String, Header, description = "`sha256=` and the hex HMAC-SHA256 of the body"),
        ("X-GitHub-Delivery" = Option<String>, Header, description = "The delivery's id; a redelivery answers its first job"),
    ),
    request_body(content = Object, description = "GitHub's push (or ping) payload"),
    responses((status = 200, description = "Queued, answered or ignored, and why", body = Delivered)))]
async fn github(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<axum::Json<Delivered>, Error> {
    verify(&state, &headers, &body)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let event = header("x-github-event").unwrap_or_default();
    if event == "ping" {
        return Ok(axum::Json(Delivered {
            status: "ok",
            job_id: None,
            message: "pong: the webhook reaches IsoCrates".into(),
        }));
    }
    if event != "push" {
        return Ok(ignored(format!("the {event:?} event does not change documentation")));
    }
    let push = match read_push(&body)? {
        PushEvent::Push(push) => push,
        PushEvent::Ignored(why) => return Ok(ignored(why)),
    };
    // The branch an admin set for the repository, else the one GitHub calls its default.
    let row = state.storage().repository(&push.repo_url).await?;
    let tracked = row
        .as_ref()
        .and_then(|r| r.branch.clone())
        .or_else(|| push.default_branch.clone())
        .unwrap_or_else(|| "main".to_string());
    if push.branch != tracked {
        return Ok(ignored(format!("{} is not the tracked branch {tracked}", push.branch)));
    }
    let Push { repo_url, commit_sha, changed_paths, added_paths, base_commit, .. } = push;
    let commit = commit_sha.clone().unwrap_or_default();

    let delivery = header("x-github-delivery").filter(|d| !d.is_empty()).map(str::to_string);
    if let Some(delivery) = &delivery
        && let Some(run_id) = state.storage().delivery_run(delivery).await?
    {
        return Ok(axum::Json(Delivered {
            status: "queued",
            job_id: Some(run_id),
            message: "this delivery was received before: the job it started".into(),
        }));
    }
    let input = DocgenInput {
        repo_url: repo_url.clone(),
        commit_sha,
        force: false,
        changed_paths,
        added_paths,
        base_commit,
    };
    let submitted = state.engine().submit(input.into_run(Trigger::Webhook)).await?;
    let mut job_id = submitted.run.id.clone();
    if let Some(delivery) = &delivery {
        job_id = state.storage().record_delivery(delivery, &job_id).await?;
    }
    if submitted.created {
        super::record(
            &state,
            None,
            delivery.clone(),
            "job.create",
            &job_id,
            json!({"trigger": "webhook", "repo_url": repo_url, "commit_sha": commit}),
        )
        .await;
    }
    let short: String = commit.chars().take(12).collect();
    let message = if submitted.created {
        format!("queued a documentation job for {repo_url} at {short}")
    } else {
        format!("a job for {repo_url} at {short} is already queued or running")
    };
    Ok(axum::Json(Delivered { status: "queued", job_id: Some(job_id), message }))
}

/// Checks `X-Hub-Signature-256` against the raw body, in constant time.
fn verify(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), Error> {
    let Some(secret) = &state.config().webhook_secret else {
        return Err(Error::Unauthorized(
            "webhooks are refused: GITHUB_WEBHOOK_SECRET is not set on the server".into(),
        ));
    };
    let header = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    check_signature(secret.expose_secret().as_bytes(), header, body)
}

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`, compared
/// in constant time.
pub fn check_signature(secret: &[u8], header: Option<&str>, body: &[u8]) -> Result<(), Error> {
    let signature = header
        .and_then(|v| v.trim().strip_prefix("sha256="))
        .and_then(|hex| hex::decode(hex).ok())
        .ok_or_else(|| {
            Error::Unauthorized("the delivery carries no X-Hub-Signature-256: sha256=<hex>".into())
        })?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .map_err(|_| Error::Internal("the webhook secret cannot key an HMAC".into()))?;
    mac.update(body);
    mac.verify_slice(&signature).map_err(|_| {
        Error::Unauthorized(
            "the signature does not match the body: check GITHUB_WEBHOOK_SECRET on both sides"
                .into(),
        )
    })
}

/// What a push delivery asks, read from its body alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// A push to a branch, to document if it is the tracked one.
    Push(Push),
    /// Nothing to document, and why: a deletion, a tag.
    Ignored(String),
}

/// A push to a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The branch pushed to.
    pub branch: String,
    /// The repository, normalised.
    pub repo_url: String,
    /// The branch GitHub calls the repository's default.
    pub default_branch: Option<String>,
    /// The head commit, normalised.
    pub commit_sha: Option<String>,
    /// The paths the push's commits touched, when the list is complete.
    pub changed_paths: Option<Vec<String>>,
    /// The paths they added.
    pub added_paths: Vec<String>,
    /// The commit the push started from, unless the branch is new.
    pub base_commit: Option<String>,
}

/// Reads a `push` delivery's body: what it pushed, or why it changes nothing. A body that
/// is not JSON or names no usable repository or commit is a 400 naming the field.
pub fn read_push(body: &[u8]) -> Result<PushEvent, Error> {
    let payload: Value = serde_json::from_slice(body)
        .map_err(|e| Error::validation("body", format!("the body is not valid JSON: {e}")))?;
    let git_ref = payload["ref"].as_str().unwrap_or_default();
    let after = payload["after"].as_str().unwrap_or_default();
    let deleted = payload["deleted"].as_bool().unwrap_or(false)
        || (!after.is_empty() && after.bytes().all(|b| b == b'0'));
    if deleted {
        return Ok(PushEvent::Ignored(format!("{git_ref} was deleted: nothing to document")));
    }
    let Some(branch) = git_ref.strip_prefix("refs/heads/") else {
        return Ok(PushEvent::Ignored(format!("{git_ref} is not a branch")));
    };
    let repository = &payload["repository"];
    let raw_url = repository["clone_url"]
        .as_str()
        .or_else(|| repository["html_url"].as_str())
        .ok_or_else(|| Error::validation("repository.clone_url", "the push names no repository"))?;
    let repo_url = docgen::normalize_repo_url(raw_url)
        .map_err(|m| Error::validation("repository.clone_url", m))?;
    let default_branch = repository["default_branch"]
        .as_str()
        .or_else(|| repository["master_branch"].as_str())
        .map(str::to_string);
    let commit = payload["head_commit"]["id"].as_str().unwrap_or(after);
    let commit_sha = docgen::normalize_commit_sha(Some(commit))
        .map_err(|m| Error::validation("head_commit.id", m))?;
    let (changed_paths, added_paths) = match changed_paths(&payload) {
        Some((paths, added)) => (Some(paths), added),
        None => (None, Vec::new()),
    };
    // A new branch starts from no commit: GitHub sends zeros.
    let base_commit = docgen::normalize_commit_sha(payload["before"].as_str())
        .ok()
        .flatten()
        .filter(|sha| !sha.bytes().all(|b| b == b'0'));
    Ok(PushEvent::Push(Push {
        branch: branch.to_string(),
        repo_url,
        default_branch,
        commit_sha,
        changed_paths,
        added_paths,
        base_commit,
    }))
}

/// Every path the push's commits added, changed or removed, and those they added; `None`
/// when the list may be incomplete (a forced push, or more commits than GitHub lists), so
/// that the run compares the commits itself.
fn changed_paths(payload: &Value) -> Option<(Vec<String>, Vec<String>)> {
    let commits = payload["commits"].as_array()?;
    if payload["forced"].as_bool().unwrap_or(false)
        || commits.is_empty()
        || commits.len() >= MAX_LISTED_COMMITS
    {
        return None;
    }
    let (mut paths, mut added) = (BTreeSet::new(), BTreeSet::new());
    for commit in commits {
        for list in ["added", "modified", "removed"] {
            for path in commit[list].as_array().into_iter().flatten().filter_map(Value::as_str) {
                paths.insert(path.to_string());
                match list {
                    "added" => added.insert(path.to_string()),
                    "removed" => added.remove(path),
                    _ => false,
                };
            }
        }
    }
    Some((paths.into_iter().collect(), added.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_changed_paths_are_those_of_every_commit_unless_the_list_may_be_short() {
        let push = json!({"commits": [
            {"added": ["a.rs"], "modified": ["b.rs"], "removed": []},
            {"added": [], "modified": ["b.rs", "c.rs"], "removed": ["d.rs"]},
        ]});
        let (paths, added) = changed_paths(&push).unwrap();
        assert_eq!(paths, ["a.rs", "b.rs", "c.rs", "d.rs"]);
        assert_eq!(added, ["a.rs"]);
        let forced = json!({"forced": true, "commits": [{"added": ["a.rs"]}]});
        assert_eq!(changed_paths(&forced), None);
        assert_eq!(changed_paths(&json!({"commits": []})), None);
    }
}
