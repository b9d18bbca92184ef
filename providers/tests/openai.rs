//! The OpenAI-compatible provider behind [`Llm`], against a local server that speaks
//! OpenAI's chat completions: a normal answer with its tokens and cost, a refused key, a
//! rate limit with `Retry-After`, server errors, a timeout, a body that is not JSON, an
//! answer that is not the JSON asked for, and the circuit breaker.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use isocrates_providers::config::{Kind, Prices, TierConfig};
use isocrates_providers::guard::{Limits, Llm};
use isocrates_providers::json::{JsonError, complete_json};
use isocrates_providers::openai::OpenAiChat;
use isocrates_providers::{CallError, Request, Tier, Usage};
use serde_json::{Value, json};

/// What the fake server answers to the n-th request (from 0).
type Script = Arc<dyn Fn(usize, &Value) -> Response + Send + Sync>;

struct Fake {
    url: String,
    hits: Arc<AtomicUsize>,
    bodies: Arc<std::sync::Mutex<Vec<Value>>>,
}

async fn fake(script: Script) -> Fake {
    let hits = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (h, b) = (hits.clone(), bodies.clone());
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |body: axum::Json<Value>| {
            let (h, b, script) = (h.clone(), b.clone(), script.clone());
            async move {
                let n = h.fetch_add(1, Ordering::SeqCst);
                b.lock().unwrap().push(body.0.clone());
                script(n, &body.0)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fake { url, hits, bodies }
}

fn completion(text: &str) -> Response {
    axum::Json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "test-model-2024",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
    }))
    .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(
            json!({"error": {"message": message, "type": "test", "param": null, "code": null}}),
        ),
    )
        .into_response()
}

fn tier(url: &str, kind: Kind) -> TierConfig {
    TierConfig {
        tier: Tier::Writer,
        kind,
        model: "test-model".to_string(),
        base_url: url.to_string(),
        api_key: Some("sk-test".to_string().into()),
        key_variable: "LLM_API_KEY".to_string(),
        prices: Some(Prices { input_per_million: 1.0, output_per_million: 2.0 }),
    }
}

fn limits() -> Limits {
    Limits {
        max_concurrency: 2,
        timeout: Duration::from_secs(2),
        max_retries: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(5),
        breaker_threshold: 3,
        breaker_pause: Duration::from_millis(300),
    }
}

fn llm(fake: &Fake, limits: Limits) -> Llm {
    let t = tier(&fake.url, Kind::OpenAiCompatible);
    let provider = OpenAiChat::new(&t, limits.timeout).unwrap();
    Llm::new(Arc::new(provider), limits, t.prices)
}

fn request() -> Request {
    Request::new("You write documentation.", "Describe the module.")
}

#[tokio::test]
async fn a_normal_answer_reports_its_tokens_and_cost() {
    let fake = fake(Arc::new(|_, _| completion("The module parses input."))).await;
    let llm = llm(&fake, limits());
    let call = llm.complete(&request()).await.unwrap();
    assert_eq!(call.reply.text, "The module parses input.");
    assert_eq!(call.reply.model, "test-model-2024");
    assert_eq!(call.reply.usage, Usage { input_tokens: 42, output_tokens: 7 });
    assert!((call.cost_usd - (42.0 + 14.0) / 1e6).abs() < 1e-12);
    assert_eq!(call.tries, 1);
    llm.complete(&request()).await.unwrap();
    let (usage, cost) = llm.totals();
    assert_eq!(usage, Usage { input_tokens: 84, output_tokens: 14 }, "totals add up");
    assert!((cost - 2.0 * 56.0 / 1e6).abs() < 1e-12);
    let sent = fake.bodies.lock().unwrap()[0].clone();
    assert_eq!(sent["model"], "test-model");
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(sent["messages"][1]["content"], "Describe the module.");
}

#[tokio::test]
async fn a_refused_key_fails_at_once_naming_the_variable() {
    let fake =
        fake(Arc::new(|_, _| error(StatusCode::UNAUTHORIZED, "Incorrect API key provided"))).await;
    let error = llm(&fake, limits()).complete(&request()).await.unwrap_err();
    assert!(matches!(error, CallError::Unauthorized { status: 401, .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("LLM_API_KEY") && message.contains("Incorrect API key"), "{message}");
    assert!(!message.contains("sk-test"), "never the key");
    assert_eq!(fake.hits.load(Ordering::SeqCst), 1, "not retried");
}

#[tokio::test]
async fn a_rate_limit_is_retried_after_the_delay_it_names() {
    let fake = fake(Arc::new(|n, _| {
        if n == 0 {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "slow down");
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            r
        } else {
            completion("ok")
        }
    }))
    .await;
    let started = Instant::now();
    let call = llm(&fake, limits()).complete(&request()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(950), "waited {:?}", started.elapsed());
    assert_eq!(call.tries, 2);
}

#[tokio::test]
async fn server_errors_are_retried_and_the_last_one_is_reported() {
    let fake = fake(Arc::new(|n, _| {
        if n < 2 { error(StatusCode::BAD_GATEWAY, "upstream") } else { completion("ok") }
    }))
    .await;
    assert_eq!(llm(&fake, limits()).complete(&request()).await.unwrap().tries, 3);

    let always = fake_always(StatusCode::INTERNAL_SERVER_ERROR).await;
    let error = llm(&always, limits()).complete(&request()).await.unwrap_err();
    assert!(matches!(error, CallError::Server { status: 500, .. }), "{error:?}");
    assert_eq!(always.hits.load(Ordering::SeqCst), 3, "one try and two retries");
}

async fn fake_always(status: StatusCode) -> Fake {
    fake(Arc::new(move |_, _| error(status, "broken"))).await
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            completion("late")
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let fake = Fake { url, hits: Arc::default(), bodies: Arc::default() };
    let quick = Limits { timeout: Duration::from_millis(300), max_retries: 0, ..limits() };
    let error = llm(&fake, quick).complete(&request()).await.unwrap_err();
    assert!(matches!(error, CallError::Timeout(_)), "{error:?}");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_malformed_answer() {
    let fake =
        fake(Arc::new(|_, _| (StatusCode::OK, "<html>gateway</html>").into_response())).await;
    let error = llm(&fake, limits()).complete(&request()).await.unwrap_err();
    assert!(matches!(error, CallError::Malformed(_)), "{error:?}");
    assert!(error.to_string().contains("<html>"), "{error}");
}

#[tokio::test]
async fn an_answer_that_is_not_the_json_asked_for_is_repaired_or_asked_again() {
    let schema = json!({"type": "object", "required": ["pages"]});
    let check = |v: &Value| {
        if v["pages"].is_array() { Ok(()) } else { Err("`pages` must be a list".to_string()) }
    };

    // Fenced, with a trailing comma: repaired without asking again.
    let fenced =
        fake(Arc::new(|_, _| completion("```json\n{\"pages\": [\"Overview\",]}\n```"))).await;
    let (value, calls) =
        complete_json(&llm(&fenced, limits()), &request(), ("plan", &schema), check, 3)
            .await
            .unwrap();
    assert_eq!(value, json!({"pages": ["Overview"]}));
    assert_eq!(calls.len(), 1);
    let sent = fenced.bodies.lock().unwrap()[0].clone();
    assert_eq!(sent["response_format"]["type"], "json_schema", "the schema is sent");

    // Wrong shape, then right: the second request shows the model its error.
    let reasked = fake(Arc::new(|n, _| {
        if n == 0 {
            completion("{\"pages\": \"Overview\"}")
        } else {
            completion("{\"pages\": [\"Overview\"]}")
        }
    }))
    .await;
    let (value, calls) =
        complete_json(&llm(&reasked, limits()), &request(), ("plan", &schema), check, 3)
            .await
            .unwrap();
    assert_eq!(value["pages"][0], "Overview");
    assert_eq!(calls.len(), 2);
    let second = reasked.bodies.lock().unwrap()[1].clone();
    assert!(second["messages"][1]["content"].as_str().unwrap().contains("`pages` must be a list"));

    // Never right: an error that says so, with every call kept for its cost.
    let hopeless = fake(Arc::new(|_, _| completion("I would rather write prose."))).await;
    let (error, calls) =
        complete_json(&llm(&hopeless, limits()), &request(), ("plan", &schema), check, 3)
            .await
            .unwrap_err();
    assert!(matches!(error, JsonError::Invalid { tries: 3, .. }), "{error:?}");
    assert!(error.to_string().contains("after 3 tries"));
    assert_eq!(calls.len(), 3);
}

#[tokio::test]
async fn the_circuit_opens_after_repeated_failures_and_lets_a_probe_through_after_its_pause() {
    let healthy = Arc::new(AtomicUsize::new(0));
    let flag = healthy.clone();
    let fake = fake(Arc::new(move |_, _| {
        if flag.load(Ordering::SeqCst) == 1 {
            completion("back")
        } else {
            error(StatusCode::SERVICE_UNAVAILABLE, "down")
        }
    }))
    .await;
    let llm = llm(&fake, Limits { max_retries: 0, ..limits() });
    for _ in 0..3 {
        assert!(matches!(llm.complete(&request()).await, Err(CallError::Server { .. })));
    }
    let before = fake.hits.load(Ordering::SeqCst);
    let open = llm.complete(&request()).await.unwrap_err();
    assert!(matches!(open, CallError::CircuitOpen { failures: 3, .. }), "{open:?}");
    assert_eq!(fake.hits.load(Ordering::SeqCst), before, "an open circuit sends nothing");

    healthy.store(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        llm.complete(&request()).await.unwrap().reply.text,
        "back",
        "the probe goes through"
    );
    assert_eq!(
        llm.complete(&request()).await.unwrap().reply.text,
        "back",
        "and the circuit is closed"
    );
}

#[tokio::test]
async fn openrouter_reports_its_own_cost() {
    let fake = fake(Arc::new(|_, body| {
        assert_eq!(body["usage"]["include"], true, "the cost is asked for");
        axum::Json(json!({
            "model": "openrouter/model",
            "choices": [{"message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "cost": 0.0031},
        }))
        .into_response()
    }))
    .await;
    let t = tier(&fake.url, Kind::OpenRouter);
    let llm = Llm::new(
        Arc::new(OpenAiChat::new(&t, Duration::from_secs(2)).unwrap()),
        limits(),
        t.prices,
    );
    let call = llm.complete(&request()).await.unwrap();
    assert_eq!(call.cost_usd, 0.0031, "the reported cost wins over the configured prices");
}
