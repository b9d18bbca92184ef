//! `/`, `/health` and `/health/deep`, and trailing slashes.

use axum::http::StatusCode;
use isocrates_testkit::{TestApp, on_both_backends};
use serde_json::json;

on_both_backends! {
    async fn service_endpoints_describe_the_service(db) {
        let backend = db.storage.backend().name();
        let app = TestApp::new(db, true).await;
        let root = app.get("/", None).await;
        assert_eq!(root.body["name"], "IsoCrates API");
        assert_eq!(root.body["status"], "running");

        let admin = app.admin_token().await;
        app.post("/api/docs", Some(&admin), json!({"title": "A", "content": "x"})).await;
        let health = app.get("/health", None).await;
        assert_eq!(health.status, StatusCode::OK);
        assert_eq!(health.body["status"], "healthy");
        assert_eq!(health.body["database"], "connected");
        assert_eq!(health.body["db"], "ok");
        assert_eq!(health.body["db_backend"], backend);
        assert_eq!(health.body["document_count"], 1);
        assert!(health.body["uptime_seconds"].is_u64());
        assert!(health.body["queue"]["queued"].is_u64());
        assert!(!health.body.to_string().contains("postgres://"), "never shows credentials");

        let deep = app.get("/health/deep", None).await;
        assert_eq!(deep.body["components"]["database"]["status"], "ok");
        assert_eq!(deep.body["components"]["providers"]["status"], "not_configured");
    }

    async fn trailing_slashes_are_optional(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        for path in ["/api/docs", "/api/docs/", "/health/", "/api/auth/me/"] {
            assert_eq!(app.get(path, Some(&admin)).await.status, StatusCode::OK, "{path}");
        }
        let id = app.post("/api/docs/", Some(&admin), json!({"title": "T", "content": "x"})).await.body["id"].clone();
        let generated = app.post("/api/docs/generate-id/", None, json!({"title": "T"})).await;
        assert_eq!(generated.body["doc_id"], id);
    }

    async fn a_database_outage_degrades_health_without_failing_it(db) {
        let storage = db.storage.clone();
        let app = TestApp::new(db, true).await;
        storage.close().await;
        let health = app.get("/health", None).await;
        assert_eq!(health.status, StatusCode::OK);
        assert_eq!(health.body["status"], "degraded");
        assert_eq!(health.body["database"], "error");
        let deep = app.get("/health/deep", None).await;
        assert_eq!(deep.body["components"]["database"]["status"], "error");
        let docs = app.get("/api/docs", None).await;
        assert_eq!(docs.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(docs.body["error"], "INTERNAL_ERROR");
        assert!(!docs.body["message"].as_str().unwrap().contains("pool"), "no internal text leaks");
    }
}
