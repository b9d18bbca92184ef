//! What a caller without a token sees: with auth on, nothing of any document (empty lists
//! and 404s), unless reads are public; with auth off, everything, as a development admin.

use axum::http::StatusCode;
use isocrates_testkit::{TestApp, on_both_backends};
use serde_json::json;

async fn seed(app: &TestApp, admin: &str) -> String {
    let created = app
        .post(
            "/api/docs",
            Some(admin),
            json!({"title": "Secret Plan", "path": "internal", "content": "see [[Other]]"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    app.post(
        "/api/docs",
        Some(admin),
        json!({"title": "Other", "path": "internal", "content": "x"}),
    )
    .await;
    created.body["id"].as_str().unwrap().to_string()
}

on_both_backends! {
    async fn without_a_token_reads_are_empty_and_writes_401(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let id = seed(&app, &admin).await;

        for path in ["/api/docs", "/api/dependencies"] {
            let answer = app.get(path, None).await;
            assert_eq!(answer.status, StatusCode::OK, "{path}");
            assert_eq!(answer.body, json!([]), "{path}");
        }
        for path in [
            format!("/api/docs/{id}"),
            format!("/api/docs/{id}/versions"),
            format!("/api/docs/{id}/versions/latest"),
            format!("/api/docs/{id}/dependencies"),
            format!("/api/docs/{id}/broken-links"),
            "/api/docs/resolve/?target=Secret%20Plan".to_string(),
        ] {
            let answer = app.get(&path, None).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {:?}", answer.body);
            assert!(answer.body.get("content").is_none());
        }
        let write = app.post("/api/docs", None, json!({"title": "x", "content": "y"})).await;
        assert_eq!(write.status, StatusCode::UNAUTHORIZED);
        assert_eq!(write.body["error"], "UNAUTHORIZED");
        assert_eq!(app.delete(&format!("/api/docs/{id}"), None).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.get("/api/docs/trash", None).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.get("/api/auth/me", None).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn a_bad_token_is_401_even_on_reads(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let id = seed(&app, &admin).await;
        for header in ["garbage", "Bearer", "Bearer ", "Basic abc"] {
            let req = axum::http::Request::builder()
                .uri("/api/docs")
                .header("authorization", header)
                .body(axum::body::Body::empty())
                .unwrap();
            let answer = app.send(req).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{header}");
        }
        for token in ["not.a.token", "abc", &format!("{admin}x")] {
            assert_eq!(app.get("/api/docs", Some(token)).await.status, StatusCode::UNAUTHORIZED);
            assert_eq!(app.get(&format!("/api/docs/{id}"), Some(token)).await.status, StatusCode::UNAUTHORIZED);
        }
        // A token signed with another secret is refused too.
        let other = TestApp::with_config(isocrates_testkit::TestDb::sqlite().await, |c| {
            c.jwt_secret = "another-secret-another-secret-another".to_string().into();
        }).await;
        let foreign = other.admin_token().await;
        assert_eq!(app.get("/api/docs", Some(&foreign)).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn public_read_opens_reads_but_not_writes(db) {
        let app = TestApp::with_config(db, |c| c.public_read = true).await;
        let admin = app.admin_token().await;
        let id = seed(&app, &admin).await;
        assert_eq!(app.get(&format!("/api/docs/{id}"), None).await.status, StatusCode::OK);
        assert_eq!(app.get("/api/docs", None).await.body.as_array().unwrap().len(), 2);
        assert_eq!(app.post("/api/docs", None, json!({"title": "x", "content": "y"})).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn with_auth_off_everything_is_allowed(db) {
        let app = TestApp::new(db, false).await;
        let created = app.post("/api/docs", None, json!({"title": "Open", "content": "x"})).await;
        assert_eq!(created.status, StatusCode::CREATED);
        let id = created.body["id"].as_str().unwrap();
        assert_eq!(app.get(&format!("/api/docs/{id}"), None).await.status, StatusCode::OK);
        assert_eq!(app.get("/api/auth/me", None).await.body["user"]["role"], "admin");
        assert_eq!(app.delete(&format!("/api/docs/{id}/permanent"), None).await.status, StatusCode::NO_CONTENT);
        // A token, when sent, still has to be valid.
        assert_eq!(app.get("/api/docs", Some("junk")).await.status, StatusCode::UNAUTHORIZED);
    }
}
