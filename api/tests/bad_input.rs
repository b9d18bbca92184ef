//! Bad input gets a 4xx in the one error envelope, with a request id; never a 500.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use isocrates_testkit::{Answer, TestApp, on_both_backends};
use serde_json::json;

/// Every error carries the envelope and a request id.
fn assert_envelope(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{:?}", answer.body);
    assert_eq!(answer.body["error"], code, "{:?}", answer.body);
    let message = answer.body["message"].as_str().expect("message");
    assert!(!message.is_empty());
    assert_eq!(answer.body["detail"], message);
    assert!(answer.body["details"].is_object());
    assert!(answer.headers.contains_key("x-request-id"));
}

on_both_backends! {
    async fn malformed_bodies_are_422_naming_the_field(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        for raw in ["{", "not json", "[1,2]", "{\"title\": \"a\"} trailing", ""] {
            let answer = app.call_raw(Method::POST, "/api/docs", Some(&admin), raw.as_bytes().to_vec()).await;
            assert_envelope(&answer, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
        }
        let wrong_type = app.post("/api/docs", Some(&admin), json!({"title": 5, "content": "x"})).await;
        assert_envelope(&wrong_type, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
        assert_eq!(wrong_type.body["details"]["errors"][0]["field"], "title");
        let nested = app.post("/api/docs", Some(&admin), json!({"title": "a", "content": "x", "keywords": ["ok", 3]})).await;
        assert_eq!(nested.body["details"]["errors"][0]["field"], "keywords[1]");
        let missing = app.post("/api/docs", Some(&admin), json!({"title": "a"})).await;
        assert_envelope(&missing, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
        assert!(missing.body["message"].as_str().unwrap().contains("content"));
    }

    async fn oversized_bodies_are_413(db) {
        let app = TestApp::with_config(db, |c| c.max_body_bytes = 64 * 1024).await;
        let admin = app.admin_token().await;
        let big = json!({"title": "Big", "content": "x".repeat(100 * 1024)});
        let answer = app.post("/api/docs", Some(&admin), big).await;
        assert_envelope(&answer, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE");
        assert_eq!(answer.body["details"]["max_bytes"], 64 * 1024);
        assert!(app.get("/api/docs", Some(&admin)).await.body.as_array().unwrap().is_empty());
    }

    async fn rules_of_the_service_are_400_naming_the_field(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let cases = [
            (json!({"title": "a", "content": "x", "path": "a/../etc"}), "path"),
            (json!({"title": "a", "content": "x", "path": "./a"}), "path"),
            (json!({"title": "a/b", "content": "x"}), "title"),
            (json!({"title": "  ", "content": "x"}), "title"),
            (json!({"title": "t".repeat(301), "content": "x"}), "title"),
            (json!({"title": "tab\there", "content": "x"}), "title"),
            (json!({"title": "a", "content": "bell\u{7}"}), "content"),
            (json!({"title": "a", "content": "x", "path": "p\u{1b}[31m"}), "path"),
            (json!({"title": "a", "content": "x", "description": "d".repeat(5001)}), "description"),
            (json!({"title": "a", "content": "x", "keywords": ["k".repeat(101)]}), "keywords"),
            (json!({"title": "a", "content": "x", "author_type": "robot"}), "author_type"),
            (json!({"title": "a", "content": "x", "repo_url": "has space"}), "repo_url"),
            (json!({"title": "a", "content": "x", "path": "s".repeat(1001)}), "path"),
        ];
        for (body, field) in cases {
            let answer = app.post("/api/docs", Some(&admin), body.clone()).await;
            assert_envelope(&answer, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
            assert_eq!(answer.body["details"]["field"], field, "{body}");
        }
        let register = [
            (json!({"email": "nope", "password": "long-enough", "display_name": "x"}), "email"),
            (json!({"email": "a@example.com", "password": "short", "display_name": "x"}), "password"),
            (json!({"email": "a@example.com", "password": "long-enough", "display_name": ""}), "display_name"),
            (json!({"email": "admin@example.com", "password": "long-enough", "display_name": "dup"}), "email"),
        ];
        for (body, field) in register {
            let answer = app.post("/api/auth/register", Some(&admin), body).await;
            assert_envelope(&answer, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
            assert_eq!(answer.body["details"]["field"], field);
        }
        let grant = app.post("/api/auth/users/x/grants", Some(&admin), json!({"path_prefix": "../up"})).await;
        assert_eq!(grant.status, StatusCode::BAD_REQUEST);
        let moved = app.put("/api/docs/doc-x/move", Some(&admin), json!({"target_path": 7})).await;
        assert_envelope(&moved, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
    }

    async fn unknown_ids_routes_and_methods_are_404_and_405(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        for path in ["/api/docs/doc-nope", "/api/docs/doc-nope/versions", "/api/docs/doc-nope/dependencies"] {
            assert_envelope(&app.get(path, Some(&admin)).await, StatusCode::NOT_FOUND, "DOCUMENT_NOT_FOUND");
        }
        let put = app.put("/api/docs/doc-nope", Some(&admin), json!({"content": "x"})).await;
        assert_envelope(&put, StatusCode::NOT_FOUND, "DOCUMENT_NOT_FOUND");
        let weird = app.get("/api/docs/%2e%2e%2f%2e%2e%2fetc%2fpasswd", Some(&admin)).await;
        assert_envelope(&weird, StatusCode::NOT_FOUND, "DOCUMENT_NOT_FOUND");
        assert_envelope(&app.get("/api/nothing-here", None).await, StatusCode::NOT_FOUND, "NOT_FOUND");
        let wrong_method = app.call(Method::PATCH, "/api/docs", Some(&admin), None).await;
        assert_envelope(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
        let long_target = app.get(&format!("/api/docs/resolve?target={}", "a".repeat(501)), Some(&admin)).await;
        assert_envelope(&long_target, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
        let no_target = app.get("/api/docs/resolve", Some(&admin)).await;
        assert_envelope(&no_target, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
    }

    async fn nul_characters_are_refused_everywhere(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let answers = [
            app.get("/api/docs/doc%00x", Some(&admin)).await,
            app.get("/api/docs/resolve?target=a%00b", Some(&admin)).await,
            app.get("/api/docs/search?q=x&keywords=%00", Some(&admin)).await,
            app.post("/api/auth/login", None, json!({"email": "a\u{0}@x.io", "password": "whatever1"})).await,
            app.post("/api/docs/batch-titles", Some(&admin), json!({"doc_ids": ["\u{0}"]})).await,
            app.post("/api/docs", Some(&admin), json!({"title": "t", "content": "c", "author_metadata": {"k": "\u{0}"}})).await,
        ];
        for answer in &answers {
            assert_envelope(answer, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
        }
        assert_eq!(answers[5].body["details"]["errors"][0]["field"], "author_metadata.k");
    }

    async fn out_of_range_dates_and_bad_titles_are_refused(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        for date in ["-5000-01-01", "%2B12345-01-01", "10000-01-01"] {
            let answer = app.get(&format!("/api/docs/search?q=x&date_from={date}"), Some(&admin)).await;
            assert_envelope(&answer, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
        }
        let slash = app.post("/api/docs/generate-id", None, json!({"title": "a/b"})).await;
        assert_envelope(&slash, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        let empty = app.post("/api/docs/generate-id", None, json!({"title": "", "doc_type": "api"})).await;
        assert_eq!(empty.status, StatusCode::OK);
    }

    async fn client_request_ids_are_echoed_when_well_formed(db) {
        let app = TestApp::new(db, true).await;
        let send = |id: &str| {
            Request::builder().uri("/api/docs/doc-none").header("x-request-id", id).body(Body::empty()).unwrap()
        };
        let answer = app.send(send("trace-42.a_b")).await;
        assert_eq!(answer.headers["x-request-id"], "trace-42.a_b");
        assert!(answer.headers.contains_key("x-response-time"));
        let answer = app.send(send("bad id with spaces")).await;
        let fresh = answer.headers["x-request-id"].to_str().unwrap();
        assert!(!fresh.is_empty() && fresh != "bad id with spaces");
    }
}
