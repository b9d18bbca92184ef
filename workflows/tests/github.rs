//! The GitHub client against a local server that answers as GitHub's REST API does: the
//! repository's facts, a comparison, a comparison too long to trust, and refusals.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use isocrates_workflows::github::{GitHub, GitHubError, RepoFacts};
use secrecy::SecretString;
use serde_json::{Value, json};

const TOKEN: &str = "ghp_test_token";

/// What the stand-in saw: the `Authorization` header of each request.
type Seen = Arc<Mutex<Vec<String>>>;

fn refused(headers: &HeaderMap) -> Option<Response> {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    (bearer != format!("Bearer {TOKEN}")).then(|| {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})),
        )
            .into_response()
    })
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"})),
    )
        .into_response()
}

async fn repository(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    seen.lock().unwrap().push(
        headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().into(),
    );
    if let Some(refusal) = refused(&headers) {
        return refusal;
    }
    if name != "shop" {
        return not_found();
    }
    Json(json!({
        "id": 1296269,
        "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
        "name": name,
        "full_name": format!("{owner}/{name}"),
        "private": true,
        "owner": {"login": owner, "id": 1, "node_id": "MDQ6VXNlcjE=", "avatar_url": "https://github.com/images/error/octocat_happy.gif", "gravatar_id": "", "url": format!("https://api.github.com/users/{owner}"), "html_url": format!("https://github.com/{owner}"), "followers_url": "https://api.github.com/users/octocat/followers", "following_url": "https://api.github.com/users/octocat/following{/other_user}", "gists_url": "https://api.github.com/users/octocat/gists{/gist_id}", "starred_url": "https://api.github.com/users/octocat/starred{/owner}{/repo}", "subscriptions_url": "https://api.github.com/users/octocat/subscriptions", "organizations_url": "https://api.github.com/users/octocat/orgs", "repos_url": "https://api.github.com/users/octocat/repos", "events_url": "https://api.github.com/users/octocat/events{/privacy}", "received_events_url": "https://api.github.com/users/octocat/received_events", "type": "User", "site_admin": false},
        "html_url": format!("https://github.com/{owner}/{name}"),
        "description": "A shop",
        "fork": false,
        "url": format!("https://api.github.com/repos/{owner}/{name}"),
        "clone_url": format!("https://github.com/{owner}/{name}.git"),
        "default_branch": "trunk",
        "visibility": "private",
        "pushed_at": "2026-12-01T10:00:00Z",
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2026-12-01T10:00:00Z"
    }))
    .into_response()
}

async fn compare(
    headers: HeaderMap,
    Path((_owner, name, range)): Path<(String, String, String)>,
) -> Response {
    if let Some(refusal) = refused(&headers) {
        return refusal;
    }
    let Some((base, head)) = range.split_once("...") else { return not_found() };
    if base == "gone" {
        return not_found();
    }
    if head == "huge" {
        let files: Vec<Value> = (0..300)
            .map(|i| json!({"sha": "abc", "filename": format!("src/f{i}.rs"), "status": "modified", "additions": 1, "deletions": 0, "changes": 1}))
            .collect();
        return Json(json!({"status": "ahead", "ahead_by": 3000, "behind_by": 0, "total_commits": 3000, "files": files})).into_response();
    }
    if name != "shop" {
        return not_found();
    }
    Json(json!({
        "url": "https://api.github.com/repos/acme/shop/compare/a...b",
        "status": if head == "forced" { "diverged" } else { "ahead" },
        "ahead_by": 2,
        "behind_by": if head == "forced" { 1 } else { 0 },
        "total_commits": 2,
        "commits": [],
        "files": [
            {"sha": "bbcd538c8e72b8c175046e27cc8f907076331401", "filename": "src/cart.rs", "status": "modified", "additions": 10, "deletions": 2, "changes": 12},
            {"sha": "bbcd538c8e72b8c175046e27cc8f907076331402", "filename": "src/pay/mod.rs", "previous_filename": "src/payment.rs", "status": "renamed", "additions": 0, "deletions": 0, "changes": 0},
            {"sha": "bbcd538c8e72b8c175046e27cc8f907076331403", "filename": "README.md", "status": "removed", "additions": 0, "deletions": 40, "changes": 40}
        ]
    }))
    .into_response()
}

async fn stand_in() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/repos/{owner}/{name}", get(repository))
        .route("/repos/{owner}/{name}/compare/{range}", get(compare))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn client(url: &str, token: &str) -> GitHub {
    GitHub::new(&SecretString::from(token.to_string()), url).unwrap()
}

#[tokio::test]
async fn the_repository_says_its_default_branch_and_privacy_to_the_token() {
    let (url, seen) = stand_in().await;
    let facts = client(&url, TOKEN).repository("acme", "shop").await.unwrap();
    assert_eq!(facts, RepoFacts { default_branch: Some("trunk".into()), private: Some(true) });
    assert_eq!(seen.lock().unwrap().as_slice(), [format!("Bearer {TOKEN}")]);
}

#[tokio::test]
async fn an_unknown_repository_and_a_refused_token_say_which() {
    let (url, _) = stand_in().await;
    let missing = client(&url, TOKEN).repository("acme", "nothing").await.unwrap_err();
    assert!(matches!(missing, GitHubError::NotFound { .. }), "{missing:?}");
    assert!(missing.to_string().contains("acme/nothing"), "{missing}");
    let refused = client(&url, "ghp_wrong").repository("acme", "shop").await.unwrap_err();
    assert!(matches!(refused, GitHubError::Refused { status: 401, .. }), "{refused:?}");
    assert!(refused.to_string().contains("GITHUB_TOKEN"), "{refused}");
}

#[tokio::test]
async fn a_comparison_lists_every_path_it_touched_with_both_names_of_a_rename() {
    let (url, _) = stand_in().await;
    let paths = client(&url, TOKEN).changed_paths("acme", "shop", "a1", "b2").await.unwrap();
    let paths = paths.unwrap();
    assert_eq!(
        paths.paths,
        ["README.md", "src/cart.rs", "src/pay/mod.rs", "src/payment.rs"],
        "removed, modified and both sides of the rename"
    );
    assert_eq!(paths.added, ["src/pay/mod.rs"], "a renamed file is new where it now is");
}

#[tokio::test]
async fn a_comparison_as_long_as_github_lists_or_of_a_forced_push_is_not_trusted() {
    let (url, _) = stand_in().await;
    let paths = client(&url, TOKEN).changed_paths("acme", "shop", "a1", "huge").await.unwrap();
    assert_eq!(paths, None, "300 files may be the first 300 of more");
    let forced = client(&url, TOKEN).changed_paths("acme", "shop", "a1", "forced").await.unwrap();
    assert_eq!(forced, None, "after a forced push GitHub compares with the merge base");
    let gone = client(&url, TOKEN).changed_paths("acme", "shop", "gone", "b2").await.unwrap_err();
    assert!(matches!(gone, GitHubError::NotFound { .. }), "a force-pushed-away base: {gone:?}");
}

#[tokio::test]
async fn an_unreachable_api_is_a_failure_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = client(&url, TOKEN).repository("acme", "shop").await.unwrap_err();
    assert!(matches!(error, GitHubError::Failed(_)), "{error:?}");
}
