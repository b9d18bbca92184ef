//! Every provider behind [`Llm`], each against a local server that speaks its wire format:
//! OpenAI's chat completions (OpenAI, OpenRouter, any compatible server) and Ollama's
//! `/api/chat`. Each scenario runs the same calling code over every format, built from
//! configuration alone: a normal answer with its tokens and cost, a refused key, a rate
//! limit with `Retry-After`, server errors, a timeout, a body that is not JSON, an answer
//! that is not the JSON asked for, and the circuit breaker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use isocrates_providers::guard::{Limits, Llm};
use isocrates_providers::json::{JsonError, complete_json};
use isocrates_providers::{CallError, Kind, LlmConfig, Request, Usage, config};
use secrecy::SecretString;
use serde_json::{Value, json};

/// The wire formats a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Wire {
    OpenAi,
    Ollama,
}

/// Every wire format, each named by the `LLM_PROVIDER` that speaks it.
const WIRES: [(Wire, &str); 2] = [(Wire::OpenAi, "openai-compatible"), (Wire::Ollama, "ollama")];

/// What the fake server answers, written once and sent in the format of the route asked.
#[derive(Clone)]
enum Answer {
    Text(String),
    Fail {
        status: StatusCode,
        message: String,
        retry_after: Option<&'static str>,
    },
    Raw(StatusCode, &'static str),
    /// A text with the cost OpenRouter reports in `usage`.
    Priced(&'static str, f64),
    /// A text whose prompt came from Ollama's cache: Ollama leaves out `prompt_eval_count`.
    Cached(&'static str),
    Late(Duration),
}

fn text(text: &str) -> Answer {
    Answer::Text(text.to_string())
}

fn fail(status: StatusCode, message: &str) -> Answer {
    Answer::Fail { status, message: message.to_string(), retry_after: None }
}

/// What the fake server answers to the n-th request (from 0).
type Script = Arc<dyn Fn(usize) -> Answer + Send + Sync>;

/// A request the fake server received.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Value,
}

struct Fake {
    root: String,
    hits: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Fake {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn request(&self, n: usize) -> Received {
        self.received.lock().unwrap()[n].clone()
    }
}

/// Starts a server on loopback that answers both `/v1/chat/completions` and `/api/chat`.
async fn fake(script: Script) -> Fake {
    let hits = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(Mutex::new(Vec::new()));
    let route = |wire: Wire| {
        let (hits, received, script) = (hits.clone(), received.clone(), script.clone());
        post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let (hits, received, script) = (hits.clone(), received.clone(), script.clone());
            async move {
                let n = hits.fetch_add(1, Ordering::SeqCst);
                received.lock().unwrap().push(Received { headers, body: body.0 });
                let answer = script(n);
                if let Answer::Late(delay) = answer {
                    tokio::time::sleep(delay).await;
                    return respond(wire, Answer::Text("late".into()));
                }
                respond(wire, answer)
            }
        })
    };
    let app = Router::new()
        .route("/v1/chat/completions", route(Wire::OpenAi))
        .route("/api/chat", route(Wire::Ollama));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fake { root, hits, received }
}

/// `answer` in the wire format of `wire`; both report 42 tokens in and 7 out.
fn respond(wire: Wire, answer: Answer) -> Response {
    match (answer, wire) {
        (Answer::Text(content), Wire::OpenAi) => axum::Json(json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "test-model-2024",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
        }))
        .into_response(),
        (Answer::Text(content), Wire::Ollama) => axum::Json(json!({
            "model": "test-model:latest",
            "created_at": "2026-12-04T10:00:00.000000Z",
            "message": {"role": "assistant", "content": content},
            "done": true,
            "done_reason": "stop",
            "total_duration": 5_191_566_416u64,
            "load_duration": 2_154_458,
            "prompt_eval_count": 42,
            "prompt_eval_duration": 383_809_000,
            "eval_count": 7,
            "eval_duration": 4_799_921_000u64,
        }))
        .into_response(),
        (Answer::Fail { status, message, retry_after }, wire) => {
            let body = match wire {
                Wire::OpenAi => {
                    json!({"error": {"message": message, "type": "test", "param": null, "code": null}})
                }
                Wire::Ollama => json!({"error": message}),
            };
            let mut response = (status, axum::Json(body)).into_response();
            if let Some(seconds) = retry_after {
                response.headers_mut().insert("retry-after", seconds.parse().unwrap());
            }
            response
        }
        (Answer::Raw(status, body), _) => (status, body).into_response(),
        (Answer::Cached(content), _) => axum::Json(json!({
            "model": "test-model:latest",
            "created_at": "2026-12-04T10:00:00.000000Z",
            "message": {"role": "assistant", "content": content},
            "done": true,
            "done_reason": "stop",
            "total_duration": 1_000_000,
            "eval_count": 7,
            "eval_duration": 900_000,
        }))
        .into_response(),
        (Answer::Priced(content, cost), _) => axum::Json(json!({
            "model": "openrouter/test-model",
            "choices": [{"message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "cost": cost},
        }))
        .into_response(),
        (Answer::Late(_), _) => unreachable!("answered by the route"),
    }
}

/// The configuration an operator writes for `provider` served by `fake`.
fn configure(provider: &str, fake: &Fake) -> LlmConfig {
    let base_url = match Kind::parse(provider) {
        Some(Kind::Ollama) => fake.root.clone(),
        _ => format!("{}/v1", fake.root),
    };
    let vars: HashMap<String, String> = [
        ("LLM_PROVIDER", provider),
        ("LLM_BASE_URL", base_url.as_str()),
        ("LLM_MODEL", "test-model"),
        ("LLM_API_KEY", "sk-test"),
        ("LLM_PRICES", "test-model=1/2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let secrets = vars.clone();
    config::from_vars(&vars, move |name| Ok(secrets.get(name).cloned().map(SecretString::from)))
        .unwrap()
}

/// Limits with short delays, so the tests are quick.
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

/// The writer tier of `provider`'s configuration, served by `fake`, guarded by `limits`.
fn llm(provider: &str, fake: &Fake, limits: Limits) -> Llm {
    llm_with_http_timeout(provider, fake, limits, limits.timeout)
}

/// [`llm`] whose HTTP client gives up after `http_timeout`, apart from the guard's timeout.
fn llm_with_http_timeout(
    provider: &str,
    fake: &Fake,
    limits: Limits,
    http_timeout: Duration,
) -> Llm {
    let config = configure(provider, fake);
    let backend = isocrates_providers::provider(&config.writer, http_timeout)
        .unwrap()
        .expect("a provider that calls a model");
    Llm::new(backend, limits, config.writer.prices)
}

fn request() -> Request {
    Request::new("You write documentation.", "Describe the module.")
}

#[tokio::test]
async fn a_normal_answer_reports_its_tokens_and_cost() {
    for (wire, provider) in WIRES {
        let fake = fake(Arc::new(|_| text("The module parses input."))).await;
        let llm = llm(provider, &fake, limits());
        let call = llm.complete(&request()).await.unwrap();
        assert_eq!(call.reply.text, "The module parses input.", "{provider}");
        assert!(call.reply.model.starts_with("test-model"), "{provider}: {}", call.reply.model);
        assert_eq!(call.reply.usage, Usage { input_tokens: 42, output_tokens: 7 }, "{provider}");
        assert!((call.cost_usd - (42.0 + 14.0) / 1e6).abs() < 1e-12, "{provider}");
        assert_eq!(call.tries, 1);
        llm.complete(&request()).await.unwrap();
        let (usage, cost) = llm.totals();
        assert_eq!(usage, Usage { input_tokens: 84, output_tokens: 14 }, "{provider}: totals");
        assert!((cost - 2.0 * 56.0 / 1e6).abs() < 1e-12, "{provider}");

        let sent = fake.request(0).body;
        assert_eq!(sent["model"], "test-model", "{provider}");
        assert_eq!(sent["messages"][0]["role"], "system", "{provider}");
        assert_eq!(sent["messages"][1]["content"], "Describe the module.", "{provider}");
        assert_eq!(sent["stream"], false, "{provider}: one answer, not a stream");
        if wire == Wire::Ollama {
            let auth = fake.request(0).headers["authorization"].to_str().unwrap().to_string();
            assert_eq!(auth, "Bearer sk-test", "a configured key reaches a proxied Ollama");
        }
    }
}

#[tokio::test]
async fn a_refused_key_fails_at_once_naming_the_variable() {
    for (_, provider) in WIRES {
        let fake =
            fake(Arc::new(|_| fail(StatusCode::UNAUTHORIZED, "Incorrect API key provided"))).await;
        let error = llm(provider, &fake, limits()).complete(&request()).await.unwrap_err();
        assert!(matches!(error, CallError::Unauthorized { status: 401, .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("LLM_API_KEY") && message.contains("Incorrect API key"),
            "{provider}: {message}"
        );
        assert!(!message.contains("sk-test"), "never the key");
        assert_eq!(fake.hits(), 1, "{provider}: not retried");
    }
}

#[tokio::test]
async fn a_rate_limit_is_retried_after_the_delay_it_names() {
    for (_, provider) in WIRES {
        let fake = fake(Arc::new(|n| {
            if n == 0 {
                Answer::Fail {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    message: "slow down".into(),
                    retry_after: Some("1"),
                }
            } else {
                text("ok")
            }
        }))
        .await;
        let started = Instant::now();
        let call = llm(provider, &fake, limits()).complete(&request()).await.unwrap();
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(950), "{provider}: waited {waited:?}");
        assert_eq!(call.tries, 2, "{provider}");
    }
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_longest_delay_is_returned_for_the_caller_to_schedule() {
    for (_, provider) in WIRES {
        let fake = fake(Arc::new(|_| Answer::Fail {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "quota".into(),
            retry_after: Some("120"),
        }))
        .await;
        let started = Instant::now();
        let error = llm(provider, &fake, limits()).complete(&request()).await.unwrap_err();
        assert_eq!(error.retry_after(), Some(Duration::from_secs(120)), "{provider}: {error:?}");
        assert_eq!(fake.hits(), 1, "{provider}: not tried again before the provider allows");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

#[tokio::test]
async fn ollama_counts_output_tokens_when_the_prompt_came_from_its_cache() {
    let fake = fake(Arc::new(|_| Answer::Cached("again"))).await;
    let call = llm("ollama", &fake, limits()).complete(&request()).await.unwrap();
    assert_eq!(call.reply.text, "again");
    assert_eq!(call.reply.usage, Usage { input_tokens: 0, output_tokens: 7 });
}

#[tokio::test]
async fn server_errors_are_retried_and_the_last_one_is_reported() {
    for (_, provider) in WIRES {
        let flaky = fake(Arc::new(|n| {
            if n < 2 { fail(StatusCode::BAD_GATEWAY, "upstream") } else { text("ok") }
        }))
        .await;
        assert_eq!(llm(provider, &flaky, limits()).complete(&request()).await.unwrap().tries, 3);

        let broken = fake(Arc::new(|_| fail(StatusCode::INTERNAL_SERVER_ERROR, "broken"))).await;
        let error = llm(provider, &broken, limits()).complete(&request()).await.unwrap_err();
        assert!(matches!(error, CallError::Server { status: 500, .. }), "{provider}: {error:?}");
        assert!(error.to_string().contains("broken"), "{provider}: {error}");
        assert_eq!(broken.hits(), 3, "{provider}: one try and two retries");
    }
}

#[tokio::test]
async fn a_slow_server_times_out() {
    for (_, provider) in WIRES {
        let fake = fake(Arc::new(|_| Answer::Late(Duration::from_millis(1500)))).await;
        let quick = Limits { timeout: Duration::from_millis(300), max_retries: 0, ..limits() };
        let started = Instant::now();
        // The HTTP client would wait longer: the guard's own timeout ends the call.
        let llm = llm_with_http_timeout(provider, &fake, quick, Duration::from_secs(30));
        let error = llm.complete(&request()).await.unwrap_err();
        assert!(matches!(error, CallError::Timeout(_)), "{provider}: {error:?}");
        assert!(started.elapsed() < Duration::from_millis(1400), "{provider}: did not wait");
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_malformed_answer() {
    for (_, provider) in WIRES {
        let fake = fake(Arc::new(|_| Answer::Raw(StatusCode::OK, "<html>gateway</html>"))).await;
        let error = llm(provider, &fake, limits()).complete(&request()).await.unwrap_err();
        assert!(matches!(error, CallError::Malformed(_)), "{provider}: {error:?}");
        assert!(error.to_string().contains("<html>"), "{provider}: {error}");
    }
}

#[tokio::test]
async fn an_answer_that_is_not_the_json_asked_for_is_repaired_or_asked_again() {
    let schema = json!({"type": "object", "properties": {"pages": {"type": "array"}}, "required": ["pages"]});
    let check = |v: &Value| {
        if v["pages"].is_array() { Ok(()) } else { Err("`pages` must be a list".to_string()) }
    };
    for (wire, provider) in WIRES {
        // Fenced, with a trailing comma: repaired without asking again.
        let fenced = fake(Arc::new(|_| text("```json\n{\"pages\": [\"Overview\",]}\n```"))).await;
        let (value, calls) = complete_json(
            &llm(provider, &fenced, limits()),
            &request(),
            ("plan", &schema),
            check,
            3,
        )
        .await
        .unwrap();
        assert_eq!(value, json!({"pages": ["Overview"]}), "{provider}");
        assert_eq!(calls.len(), 1, "{provider}");
        let sent = fenced.request(0).body;
        match wire {
            Wire::OpenAi => assert_eq!(sent["response_format"]["type"], "json_schema"),
            Wire::Ollama => assert_eq!(sent["format"], schema, "the schema goes in `format`"),
        }

        // Wrong shape, then right: the second request shows the model its error.
        let reasked = fake(Arc::new(|n| {
            if n == 0 {
                text("{\"pages\": \"Overview\"}")
            } else {
                text("{\"pages\": [\"Overview\"]}")
            }
        }))
        .await;
        let (value, calls) = complete_json(
            &llm(provider, &reasked, limits()),
            &request(),
            ("plan", &schema),
            check,
            3,
        )
        .await
        .unwrap();
        assert_eq!(value["pages"][0], "Overview", "{provider}");
        assert_eq!(calls.len(), 2, "{provider}");
        let second = reasked.request(1).body;
        let prompt = second["messages"][1]["content"].as_str().unwrap();
        assert!(prompt.contains("`pages` must be a list"), "{provider}: {prompt}");

        // Never right: an error that says so, with every call kept for its cost.
        let hopeless = fake(Arc::new(|_| text("I would rather write prose."))).await;
        let (error, calls) = complete_json(
            &llm(provider, &hopeless, limits()),
            &request(),
            ("plan", &schema),
            check,
            3,
        )
        .await
        .unwrap_err();
        assert!(matches!(error, JsonError::Invalid { tries: 3, .. }), "{provider}: {error:?}");
        assert!(error.to_string().contains("after 3 tries"), "{provider}: {error}");
        assert_eq!(calls.len(), 3, "{provider}");
    }
}

#[tokio::test]
async fn the_circuit_opens_after_repeated_failures_and_lets_a_probe_through_after_its_pause() {
    for (_, provider) in WIRES {
        let healthy = Arc::new(AtomicUsize::new(0));
        let flag = healthy.clone();
        let fake = fake(Arc::new(move |_| {
            if flag.load(Ordering::SeqCst) == 1 {
                text("back")
            } else {
                fail(StatusCode::SERVICE_UNAVAILABLE, "down")
            }
        }))
        .await;
        let llm = llm(provider, &fake, Limits { max_retries: 0, ..limits() });
        for _ in 0..3 {
            assert!(matches!(llm.complete(&request()).await, Err(CallError::Server { .. })));
        }
        let before = fake.hits();
        let open = llm.complete(&request()).await.unwrap_err();
        assert!(matches!(open, CallError::CircuitOpen { failures: 3, .. }), "{open:?}");
        assert_eq!(fake.hits(), before, "{provider}: an open circuit sends nothing");

        healthy.store(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(350)).await;
        let probe = llm.complete(&request()).await.unwrap();
        assert_eq!(probe.reply.text, "back", "{provider}: the probe goes through");
        let next = llm.complete(&request()).await.unwrap();
        assert_eq!(next.reply.text, "back", "{provider}: and the circuit is closed");
    }
}

#[tokio::test]
async fn a_failed_probe_opens_the_circuit_again_and_an_abandoned_one_is_replaced() {
    for (_, provider) in WIRES {
        // 0: healthy, 1: down, 2: slow, 3: healthy.
        let mode = Arc::new(AtomicUsize::new(1));
        let flag = mode.clone();
        let fake = fake(Arc::new(move |_| match flag.load(Ordering::SeqCst) {
            1 => fail(StatusCode::SERVICE_UNAVAILABLE, "down"),
            2 => Answer::Late(Duration::from_secs(3)),
            _ => text("back"),
        }))
        .await;
        let limits = Limits { max_retries: 0, timeout: Duration::from_millis(400), ..limits() };
        let llm = llm(provider, &fake, limits);
        for _ in 0..3 {
            assert!(llm.complete(&request()).await.is_err());
        }
        tokio::time::sleep(Duration::from_millis(350)).await;
        let probe = llm.complete(&request()).await.unwrap_err();
        assert!(matches!(probe, CallError::Server { .. }), "{provider}: the probe ran and failed");
        let before = fake.hits();
        assert!(matches!(llm.complete(&request()).await, Err(CallError::CircuitOpen { .. })));
        assert_eq!(fake.hits(), before, "{provider}: open again after the failed probe");

        // A probe whose caller gives up before the answer leaves no lasting block.
        tokio::time::sleep(Duration::from_millis(350)).await;
        mode.store(2, Ordering::SeqCst);
        let abandoned =
            tokio::time::timeout(Duration::from_millis(50), llm.complete(&request())).await;
        assert!(abandoned.is_err(), "the caller stopped waiting");
        assert!(matches!(llm.complete(&request()).await, Err(CallError::CircuitOpen { .. })));
        mode.store(3, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(800)).await;
        let replaced = llm.complete(&request()).await.unwrap();
        assert_eq!(replaced.reply.text, "back", "{provider}: a new probe went through");
    }
}

#[tokio::test]
async fn every_provider_is_chosen_by_configuration_alone() {
    let fake = fake(Arc::new(|_| text("pong"))).await;
    for provider in ["openai", "openrouter", "openai-compatible", "ollama"] {
        let config = configure(provider, &fake);
        let llm = isocrates_providers::build(&config.writer, &config).unwrap().expect(provider);
        assert_eq!(llm.provider().kind().as_str(), provider);
        let call = llm.complete(&request()).await.unwrap();
        assert_eq!(call.reply.text, "pong", "{provider}");
        assert_eq!(call.reply.usage.output_tokens, 7, "{provider}");
    }
    let none = config::from_vars(&HashMap::new(), |_| Ok(None)).unwrap();
    assert!(isocrates_providers::build(&none.writer, &none).unwrap().is_none(), "static");
}

#[tokio::test]
async fn openrouter_names_the_application_and_reports_its_own_cost() {
    let fake = fake(Arc::new(|_| Answer::Priced("ok", 0.0031))).await;
    let call = llm("openrouter", &fake, limits()).complete(&request()).await.unwrap();
    assert_eq!(call.cost_usd, 0.0031, "the reported cost wins over the configured prices");
    let sent = fake.request(0);
    assert_eq!(sent.body["usage"]["include"], true, "the cost is asked for");
    assert_eq!(sent.headers["x-title"], "IsoCrates");
    assert!(sent.headers.contains_key("http-referer"));
}
