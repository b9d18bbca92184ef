//! What the API enforces before it is exposed, over a real HTTP server on loopback: the
//! rate limit per client (and whom `X-Forwarded-For` is believed from), CORS for the listed
//! origins only, and never handing out its own database file.

use isocrates_api::rate_limit::parse_trusted_proxies;
use isocrates_testkit::{TestApp, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const PAGE: &str = "https://docs.example.com";

async fn app(per_minute: u32, trusted: &str, origins: &[&str]) -> (TestApp, String) {
    let trusted = parse_trusted_proxies(trusted).unwrap();
    let origins: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
    let app = TestApp::with_config(TestDb::sqlite().await, move |c| {
        c.rate_limit.per_minute = per_minute;
        c.rate_limit.trusted_proxies = trusted;
        c.cors_origins = origins;
    })
    .await;
    let url = app.serve().await;
    (app, url)
}

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

/// Checks a 429 and answers its `Retry-After`.
async fn limited(response: reqwest::Response) -> u64 {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("x-request-id"));
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "RATE_LIMITED");
    assert_eq!(body["details"]["retry_after"], retry);
    assert!(retry >= 1);
    retry
}

#[tokio::test]
async fn past_the_limit_a_client_waits_and_others_do_not() {
    let (_app, url) = app(3, "", &[]).await;
    let docs = format!("{url}/api/docs");
    for _ in 0..3 {
        assert_eq!(get(&docs, &[]).await.status(), StatusCode::OK);
    }
    // At 3 a minute a token comes back every 20 s.
    let retry = limited(get(&docs, &[]).await).await;
    assert!(retry <= 20, "{retry}");
    // Naming another client is not believed from a peer that is no trusted proxy.
    limited(get(&docs, &[("x-forwarded-for", "198.51.100.7")]).await).await;
    // The probes are never limited.
    for path in ["/", "/health", "/health/deep"] {
        assert_eq!(get(&format!("{url}{path}"), &[]).await.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let (_app, url) = app(2, "127.0.0.0/8", &[]).await;
    let docs = format!("{url}/api/docs");
    let alice = [("x-forwarded-for", "198.51.100.1, 127.0.0.1")];
    let bob = [("x-forwarded-for", "198.51.100.2")];
    for _ in 0..2 {
        assert_eq!(get(&docs, &alice).await.status(), StatusCode::OK);
    }
    limited(get(&docs, &alice).await).await;
    assert_eq!(get(&docs, &bob).await.status(), StatusCode::OK);
    // The proxy's own requests are a client of their own.
    assert_eq!(get(&docs, &[]).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn preflights_do_not_count_and_a_429_still_carries_cors_headers() {
    let (_app, url) = app(2, "", &[PAGE]).await;
    let docs = format!("{url}/api/docs");
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let preflight = client
            .request(Method::OPTIONS, &docs)
            .header("origin", PAGE)
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success(), "{}", preflight.status());
        let h = preflight.headers();
        assert_eq!(h["access-control-allow-origin"], PAGE);
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert!(h["access-control-allow-methods"].to_str().unwrap().contains("PUT"));
        let allowed = h["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
        assert!(allowed.contains("authorization") && allowed.contains("x-request-id"));
    }
    for _ in 0..2 {
        assert_eq!(get(&docs, &[("origin", PAGE)]).await.status(), StatusCode::OK);
    }
    let refused = get(&docs, &[("origin", PAGE)]).await;
    assert_eq!(refused.headers()["access-control-allow-origin"], PAGE);
    let exposed = refused.headers()["access-control-expose-headers"].to_str().unwrap();
    assert!(exposed.contains("x-request-id") && exposed.contains("retry-after"), "{exposed}");
    limited(refused).await;
}

#[tokio::test]
async fn only_listed_origins_get_cors_headers() {
    let (_app, url) = app(0, "", &[PAGE]).await;
    let health = format!("{url}/health");
    let listed = get(&health, &[("origin", PAGE)]).await;
    assert_eq!(listed.headers()["access-control-allow-origin"], PAGE);
    let other = get(&health, &[("origin", "https://evil.example")]).await;
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    let preflight = reqwest::Client::new()
        .request(Method::OPTIONS, format!("{url}/api/docs"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "DELETE")
        .send()
        .await
        .unwrap();
    assert!(!preflight.headers().contains_key("access-control-allow-origin"));
    // With no origin listed, no page elsewhere may call at all.
    let (_app, url) = app(0, "", &[]).await;
    let none = get(&format!("{url}/health"), &[("origin", PAGE)]).await;
    assert!(!none.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn limiting_off_never_answers_429() {
    let (_app, url) = app(0, "", &[]).await;
    for _ in 0..100 {
        assert_eq!(get(&format!("{url}/api/docs"), &[]).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn the_database_file_is_never_served() {
    let (app, url) = app(0, "", &[]).await;
    let file = app.db.url.trim_start_matches("sqlite://").to_string();
    let name = std::path::Path::new(&file).file_name().unwrap().to_str().unwrap().to_string();
    for path in [
        format!("/{name}"),
        format!("/{name}-wal"),
        format!("/static/../{name}"),
        format!("/%2e%2e/{name}"),
        format!("/{}", file.trim_start_matches('/')),
        format!("/api/docs/..%2f..%2f{name}"),
    ] {
        let response = get(&format!("{url}{path}"), &[]).await;
        assert!(
            response.status() == StatusCode::NOT_FOUND || response.status().is_client_error(),
            "{path}: {}",
            response.status()
        );
        let body = response.bytes().await.unwrap();
        assert!(!body.windows(15).any(|w| w == b"SQLite format 3"), "{path} served the database");
    }
}

#[tokio::test]
async fn the_audit_log_keeps_what_an_operator_reviews_until_its_retention() {
    let app = TestApp::with_config(TestDb::sqlite().await, |_| {}).await;
    let admin = app.admin_token().await;
    let (dev_id, _) = app.user(&admin, "dev@example.com").await;
    let wrong = serde_json::json!({"email": "dev@example.com", "password": "not-the-password"});
    assert_eq!(app.post("/api/auth/login", None, wrong).await.status, StatusCode::UNAUTHORIZED);
    let role = serde_json::json!({"role": "editor"});
    let role_path = format!("/api/auth/users/{dev_id}/role");
    assert_eq!(app.put(&role_path, Some(&admin), role).await.status, StatusCode::OK);
    let grants = format!("/api/auth/users/{dev_id}/grants");
    let grant = serde_json::json!({"path_prefix": "team", "role": "editor"});
    assert_eq!(app.post(&grants, Some(&admin), grant).await.status, StatusCode::CREATED);
    let revoke = app.delete(&format!("{grants}/team"), Some(&admin)).await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);
    let doc = serde_json::json!({"title": "Audited", "path": "team", "content": "one"});
    let created = app.post("/api/docs", Some(&admin), doc).await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let edit = serde_json::json!({"content": "two"});
    app.put(&format!("/api/docs/{id}"), Some(&admin), edit).await;
    app.delete(&format!("/api/docs/{id}"), Some(&admin)).await;
    app.post(&format!("/api/docs/{id}/restore"), Some(&admin), serde_json::json!({})).await;
    let job = serde_json::json!({"repo_url": "https://github.com/acme/widgets"});
    let job = app.post("/api/jobs", Some(&admin), job).await;
    assert_eq!(job.status, StatusCode::CREATED, "{}", job.body);
    let job_id = job.body["id"].as_str().unwrap();
    let cancelled =
        app.post(&format!("/api/jobs/{job_id}/cancel"), Some(&admin), serde_json::json!({})).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    let retried =
        app.post(&format!("/api/jobs/{job_id}/retry"), Some(&admin), serde_json::json!({})).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);

    let log = app.db.storage.audit_log(100).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|r| r.action.as_str()).collect();
    for action in [
        "auth.register",
        "auth.login",
        "auth.login_failed",
        "user.role",
        "grant.add",
        "grant.revoke",
        "document.create",
        "document.update",
        "document.delete",
        "document.restore",
        "job.create",
        "job.cancel",
        "job.retry",
    ] {
        assert!(actions.contains(&action), "{action} is not audited: {actions:?}");
    }
    let role_row = log.iter().find(|r| r.action == "user.role").unwrap();
    assert!(role_row.actor_id.is_some(), "the admin who changed the role is named");
    assert_eq!(role_row.target.as_deref(), Some(dev_id.as_str()));

    // The purge keeps what is younger than the cutoff and removes what is older.
    let an_hour_ago = isocrates_storage::Timestamp::ago(std::time::Duration::from_secs(3600));
    assert_eq!(app.db.storage.purge_audit(an_hour_ago).await.unwrap(), 0);
    let later = isocrates_storage::Timestamp(chrono_later());
    assert_eq!(app.db.storage.purge_audit(later).await.unwrap(), log.len() as u64);
    assert!(app.db.storage.audit_log(10).await.unwrap().is_empty());
}

/// A minute from now.
fn chrono_later() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::minutes(1)
}
