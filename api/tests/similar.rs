//! Embeddings end to end against local servers speaking OpenAI's `/v1/embeddings` and
//! Ollama's `/api/embed`: reindexing, similar documents within the caller's grants, and
//! search that fuses full-text and vector hits; off or failing, nothing breaks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use isocrates_api::Assistant;
use isocrates_providers::embed::{Embedder, EmbeddingConfig, EmbeddingKind};
use isocrates_testkit::{TestApp, TestDb, on_both_backends, serve_on_loopback};
use isocrates_workflows::prompts::Prompts;
use serde_json::{Value, json};

const DIMS: usize = 64;

/// A bag of words hashed into `DIMS` counts: texts that share words point the same way.
fn embed_text(text: &str) -> Vec<f64> {
    let mut v = vec![0.0; DIMS];
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2) {
        let h = word
            .to_lowercase()
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        v[(h % DIMS as u64) as usize] += 1.0;
    }
    v
}

/// An embedding server on `kind`'s wire format; `fail` makes every call a 500. Counts calls.
async fn embedding_server(kind: EmbeddingKind, fail: bool) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let handler = move |body: axum::Json<Value>| {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            if fail {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"error": "out of memory"})),
                );
            }
            let inputs: Vec<String> = match &body["input"] {
                Value::String(s) => vec![s.clone()],
                other => other
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect(),
            };
            if inputs.iter().any(|t| t.contains("unembeddable")) {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": "input is too long for the context"})),
                );
            }
            let vectors: Vec<Vec<f64>> = inputs.iter().map(|t| embed_text(t)).collect();
            let answer = match kind {
                EmbeddingKind::OpenAi => json!({
                    "object": "list",
                    "model": body["model"],
                    // In reverse, as a server may: the index says which is which.
                    "data": vectors.iter().enumerate().rev().map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v})).collect::<Vec<_>>(),
                    "usage": {"prompt_tokens": 5, "total_tokens": 5},
                }),
                EmbeddingKind::Ollama => json!({"model": body["model"], "embeddings": vectors}),
            };
            (StatusCode::OK, axum::Json(answer))
        }
    };
    let path = match kind {
        EmbeddingKind::OpenAi => "/v1/embeddings",
        EmbeddingKind::Ollama => "/api/embed",
    };
    let root =
        serve_on_loopback(axum::Router::new().route(path, axum::routing::post(handler))).await;
    let base = match kind {
        EmbeddingKind::OpenAi => format!("{root}/v1"),
        EmbeddingKind::Ollama => root,
    };
    (base, calls)
}

async fn app_with_embeddings(
    db: TestDb,
    kind: EmbeddingKind,
    fail: bool,
) -> (TestApp, Arc<AtomicUsize>) {
    let (base_url, calls) = embedding_server(kind, fail).await;
    let config = EmbeddingConfig {
        kind,
        base_url,
        model: "test-embed".into(),
        api_key: None,
        key_variable: "EMBEDDING_API_KEY".into(),
        timeout: std::time::Duration::from_secs(5),
    };
    let assistant = Assistant {
        model: None,
        prompts: Arc::new(Prompts::built_in()),
        embedder: Some(Arc::new(Embedder::new(config).unwrap())),
    };
    (TestApp::with_parts(db, Vec::new(), |_| {}, assistant).await, calls)
}

async fn doc(app: &TestApp, token: &str, title: &str, path: &str, content: &str) -> String {
    let answer = app
        .post("/api/docs", Some(token), json!({"title": title, "path": path, "content": content}))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    answer.body["id"].as_str().unwrap().to_string()
}

fn titles(answer: &Value) -> Vec<String> {
    answer
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|h| h["title"].as_str().unwrap().to_string())
        .collect()
}

/// Four documents: two about carts and payments, one about payments only, one unrelated,
/// and one about carts that only admins may read.
async fn seed(app: &TestApp, admin: &str) -> Vec<String> {
    vec![
        doc(
            app,
            admin,
            "Cart Checkout",
            "shop/guides",
            "The cart checkout takes payment cards and wallets.",
        )
        .await,
        doc(
            app,
            admin,
            "Payment Refunds",
            "shop/guides",
            "Payment refunds return cards and wallets their money.",
        )
        .await,
        doc(app, admin, "Holiday Rota", "shop/people", "Who works which holiday weekend.").await,
        doc(
            app,
            admin,
            "Cart Internals",
            "private",
            "The cart checkout database of payment cards.",
        )
        .await,
    ]
}

on_both_backends! {
    async fn similar_documents_come_from_embeddings_within_the_callers_grants(db) {
        let (app, calls) = app_with_embeddings(db, EmbeddingKind::OpenAi, false).await;
        let admin = app.admin_token().await;
        let ids = seed(&app, &admin).await;
        let reindexed = app.post("/api/docs/reindex", Some(&admin), json!({})).await;
        assert_eq!(reindexed.status, StatusCode::OK, "{:?}", reindexed.body);
        assert_eq!((reindexed.body["reindexed"].as_u64(), reindexed.body["model"].as_str()), (Some(4), Some("test-embed")));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "four documents in one batch");

        let near = app.get(&format!("/api/docs/{}/similar?limit=2", ids[0]), Some(&admin)).await;
        assert_eq!(near.status, StatusCode::OK, "{:?}", near.body);
        assert_eq!(titles(&near.body), ["Cart Internals", "Payment Refunds"], "nearest first, never itself");
        let score = near.body[0]["similarity_score"].as_f64().unwrap();
        assert!(score > 0.5 && score <= 1.0, "{score}");
        assert!(near.body[0]["id"].as_str().is_some() && near.body[0]["path"] == "private");

        let (reader_id, reader) = app.user(&admin, "reader@example.com").await;
        app.grant(&admin, &reader_id, "shop", "viewer").await;
        let near = app.get(&format!("/api/docs/{}/similar", ids[0]), Some(&reader)).await;
        assert!(!titles(&near.body).contains(&"Cart Internals".to_string()), "outside the reader's grants: {:?}", near.body);
        let by_text = app.get("/api/docs/similar/?text=refunds%20of%20payment%20wallets&limit=1", Some(&reader)).await;
        assert_eq!(titles(&by_text.body), ["Payment Refunds"]);
        assert_eq!(app.get(&format!("/api/docs/{}/similar", ids[3]), Some(&reader)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.post("/api/docs/reindex", Some(&reader), json!({})).await.status, StatusCode::FORBIDDEN);

        // Search fuses both: "cart payment" matches two documents by their words, and the
        // refunds page (no "cart" in it) joins them by meaning.
        let hits = app.get("/api/docs/search/?q=cart%20payment", Some(&reader)).await;
        assert_eq!(hits.status, StatusCode::OK, "{:?}", hits.body);
        let found = titles(&hits.body);
        assert_eq!(found[0], "Cart Checkout", "{found:?}");
        assert!(found.contains(&"Payment Refunds".to_string()), "a vector hit: {found:?}");
        assert!(!found.contains(&"Cart Internals".to_string()), "grants apply to vector hits too");
        let filtered = app.get("/api/docs/search/?q=cart%20payment&path_prefix=shop/people", Some(&reader)).await;
        assert_eq!(titles(&filtered.body), ["Holiday Rota"], "filters apply to vector hits: {:?}", filtered.body);

        // An edit makes the document wait for a new vector, which the indexer makes.
        let edited = app.put(&format!("/api/docs/{}", ids[2]), Some(&admin), json!({"content": "Payment refunds on holiday weekends."})).await;
        assert_eq!(edited.status, StatusCode::OK);
        let pending = app.db.storage.pending_embeddings(10).await.unwrap();
        assert_eq!(pending.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), [ids[2].as_str()]);
        let embedder = Embedder::new(EmbeddingConfig {
            kind: EmbeddingKind::OpenAi,
            base_url: embedding_server(EmbeddingKind::OpenAi, false).await.0,
            model: "test-embed".into(),
            api_key: None,
            key_variable: "EMBEDDING_API_KEY".into(),
            timeout: std::time::Duration::from_secs(5),
        })
        .unwrap();
        let (stored, outcome) = isocrates_api::embeddings::index_pending(&app.db.storage, &embedder, 100).await;
        assert_eq!((stored, outcome.is_ok()), (1, true));
        assert!(app.db.storage.pending_embeddings(10).await.unwrap().is_empty());
    }

    async fn ollama_embeddings_work_the_same_way(db) {
        let (app, calls) = app_with_embeddings(db, EmbeddingKind::Ollama, false).await;
        let admin = app.admin_token().await;
        let ids = seed(&app, &admin).await;
        assert_eq!(app.post("/api/docs/reindex", Some(&admin), json!({})).await.body["reindexed"], 4);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let near = app.get(&format!("/api/docs/{}/similar?limit=1", ids[1]), Some(&admin)).await;
        assert_eq!(titles(&near.body), ["Cart Checkout"]);

        // A document the server refuses is set aside; the rest of its batch is embedded.
        doc(&app, &admin, "Huge", "shop", "an unembeddable wall of text").await;
        doc(&app, &admin, "Small", "shop", "cart notes").await;
        let reindexed = app.post("/api/docs/reindex", Some(&admin), json!({})).await;
        assert_eq!(reindexed.body["reindexed"], 5, "{:?}", reindexed.body);
        assert!(reindexed.body.get("message").is_none(), "{:?}", reindexed.body);
        assert!(app.db.storage.pending_embeddings(10).await.unwrap().is_empty(), "nothing stuck");
    }

    async fn without_embeddings_or_with_a_failing_server_nothing_breaks(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let ids = seed(&app, &admin).await;
        assert_eq!(app.get(&format!("/api/docs/{}/similar", ids[0]), Some(&admin)).await.body, json!([]));
        assert_eq!(app.get("/api/docs/similar/?text=cart", Some(&admin)).await.body, json!([]));
        let off = app.post("/api/docs/reindex", Some(&admin), json!({})).await;
        assert_eq!((off.status, off.body["reindexed"].as_u64(), &off.body["model"]), (StatusCode::OK, Some(0), &Value::Null));
        let text_only = app.get("/api/docs/search/?q=cart%20payment", Some(&admin)).await;
        let mut found = titles(&text_only.body);
        found.sort();
        assert_eq!(found, ["Cart Checkout", "Cart Internals"], "full text alone: every word must match");
    }

    async fn a_failing_embedding_server_leaves_search_and_similar_working(db) {
        let (app, _) = app_with_embeddings(db, EmbeddingKind::OpenAi, true).await;
        let admin = app.admin_token().await;
        let ids = seed(&app, &admin).await;
        let reindexed = app.post("/api/docs/reindex", Some(&admin), json!({})).await;
        assert_eq!(reindexed.status, StatusCode::OK);
        assert_eq!(reindexed.body["reindexed"], 0);
        assert!(reindexed.body["message"].as_str().unwrap().contains("embedding server failed"), "{:?}", reindexed.body);
        assert_eq!(app.get(&format!("/api/docs/{}/similar", ids[0]), Some(&admin)).await.body, json!([]));
        let hits = app.get("/api/docs/search/?q=cart%20payment", Some(&admin)).await;
        assert_eq!((hits.status, titles(&hits.body).len()), (StatusCode::OK, 2), "full text alone");
    }
}
