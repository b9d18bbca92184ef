//! `POST /api/docs/ask/`: answers from the documents the caller may read, through a local
//! server speaking OpenAI's chat completions; a sentence, never an error, when there is no
//! model or it fails.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use isocrates_testkit::{
    TestApp, TestDb, chat_completion, model_docgen, on_both_backends, serve_on_loopback,
};
use serde_json::{Value, json};

/// A model server that answers every call with `status`, and records each prompt.
async fn model(status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let seen = prompts.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                let prompt = body["messages"][1]["content"].as_str().unwrap_or_default().to_string();
                seen.lock().unwrap().push(prompt);
                let status = StatusCode::from_u16(status).unwrap();
                if status.is_success() {
                    (status, axum::Json(chat_completion("Deploy with `make ship`, as [[Deploying the Shop]] says.", 300, 20)))
                } else {
                    (status, axum::Json(json!({"error": {"message": "invalid api key", "type": "invalid_request_error"}})))
                }
            }
        }),
    );
    (format!("{}/v1", serve_on_loopback(app).await), prompts)
}

async fn app_with_model(db: TestDb, status: u16) -> (TestApp, Arc<Mutex<Vec<String>>>) {
    let (url, prompts) = model(status).await;
    let repos = tempfile::tempdir().unwrap();
    let writer = model_docgen(&db.storage, repos.path(), &url).models.writer;
    (TestApp::with_assistant(db, Vec::new(), |_| {}, writer).await, prompts)
}

async fn seed(app: &TestApp, admin: &str) {
    for (title, path, content) in [
        ("Deploying the Shop", "team-a/ops", "Run make ship to deploy the shop to production."),
        ("Shop Secrets", "team-b/ops", "The deploy key of the shop is kept in the vault."),
        ("Unrelated", "team-a/misc", "Lunch is at noon."),
    ] {
        let answer = app
            .post(
                "/api/docs",
                Some(admin),
                json!({"title": title, "path": path, "content": content}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    }
}

fn titles(answer: &Value) -> Vec<String> {
    let mut titles: Vec<String> = answer["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["title"].as_str().unwrap().to_string())
        .collect();
    titles.sort();
    titles
}

on_both_backends! {
    async fn an_answer_comes_from_the_documents_the_caller_may_read(db) {
        let (app, prompts) = app_with_model(db, 200).await;
        let admin = app.admin_token().await;
        seed(&app, &admin).await;
        let (reader_id, reader) = app.user(&admin, "reader@example.com").await;
        app.grant(&admin, &reader_id, "team-a", "viewer").await;

        let answer = app.post("/api/docs/ask", Some(&reader), json!({"question": "How do I deploy the shop?", "top_k": 5})).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert_eq!(answer.body["answer"], "Deploy with `make ship`, as [[Deploying the Shop]] says.");
        assert_eq!(answer.body["model"], "test-model");
        assert_eq!(titles(&answer.body), ["Deploying the Shop"]);
        let source = &answer.body["sources"][0];
        assert_eq!(source["path"], "team-a/ops");
        assert!(source["id"].as_str().unwrap().starts_with("doc-"));
        let prompt = prompts.lock().unwrap().last().unwrap().clone();
        assert!(prompt.contains("How do I deploy the shop?") && prompt.contains("Run make ship"), "{prompt}");
        assert!(!prompt.contains("vault") && !prompt.contains("Shop Secrets"), "nothing the reader may not read reaches the model: {prompt}");

        // The admin reads both, and top_k bounds the documents given.
        let both = app.post("/api/docs/ask/", Some(&admin), json!({"question": "deploy shop"})).await;
        assert_eq!(titles(&both.body), ["Deploying the Shop", "Shop Secrets"]);
        let one = app.post("/api/docs/ask", Some(&admin), json!({"question": "deploy shop", "top_k": 1})).await;
        assert_eq!(one.body["sources"].as_array().unwrap().len(), 1);

        for bad in [json!({"question": ""}), json!({"question": "x".repeat(501)}), json!({"question": "deploy", "top_k": 11})] {
            let refused = app.post("/api/docs/ask", Some(&admin), bad.clone()).await;
            assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {:?}", refused.body);
        }
    }

    async fn without_a_model_or_with_a_failing_one_the_answer_is_a_sentence(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        seed(&app, &admin).await;
        let answer = app.post("/api/docs/ask", Some(&admin), json!({"question": "How do I deploy the shop?"})).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert!(answer.body["answer"].as_str().unwrap().contains("LLM_PROVIDER"), "{:?}", answer.body);
        assert_eq!(answer.body["model"], Value::Null);
        assert_eq!(titles(&answer.body), ["Deploying the Shop", "Shop Secrets"], "the documents found are still given");
    }

    async fn a_model_that_refuses_gives_a_sentence_not_an_error(db) {
        let (app, prompts) = app_with_model(db, 401).await;
        let admin = app.admin_token().await;
        seed(&app, &admin).await;
        let answer = app.post("/api/docs/ask", Some(&admin), json!({"question": "How do I deploy the shop?"})).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        let text = answer.body["answer"].as_str().unwrap();
        assert!(text.starts_with("The model could not answer"), "{text}");
        assert_eq!(prompts.lock().unwrap().len(), 1, "a refused key is not retried");
        let nothing = app.post("/api/docs/ask", Some(&admin), json!({"question": "zebras"})).await;
        assert!(nothing.body["answer"].as_str().unwrap().starts_with("No document"), "{:?}", nothing.body);
        assert_eq!(prompts.lock().unwrap().len(), 1, "no call without documents");
    }
}
