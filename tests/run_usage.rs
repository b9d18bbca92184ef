//! What a run paid for: each model call's tokens and cost, counted by the provider wrapper,
//! add up on the run, on SQLite and on PostgreSQL; a step retried after its pages were
//! written neither calls the model again nor counts those pages twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use isocrates_engine::core::RetryPolicy;
use isocrates_engine::{
    Engine, ModelSpend, NewRun, RunStatus, Spender, StepError, StepOutcome, Usage, Workflow,
};
use isocrates_providers::{Llm, Request, config};
use isocrates_testkit::on_both_backends;
use secrecy::SecretString;
use serde_json::{Value, json};

/// An OpenAI-compatible server whose n-th answer (from 0) costs 100 + n tokens in and
/// 10 + n out; returns its base URL and its count of calls.
async fn counting_model() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |_: axum::Json<Value>| {
            let n = counter.fetch_add(1, Ordering::SeqCst) as u64;
            async move {
                axum::Json(json!({
                    "model": "test-model",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "A page."}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 100 + n, "completion_tokens": 10 + n},
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

/// The writer tier configured as an operator would, at $2 and $8 per million tokens.
fn writer(base_url: &str) -> Llm {
    let vars: HashMap<String, String> = [
        ("LLM_PROVIDER", "openai-compatible"),
        ("LLM_BASE_URL", base_url),
        ("LLM_MODEL", "test-model"),
        ("LLM_PRICES", "test-model=2/8"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let secrets = vars.clone();
    let config =
        config::from_vars(&vars, move |n| Ok(secrets.get(n).cloned().map(SecretString::from)))
            .unwrap();
    isocrates_providers::build(&config.writer, &config).unwrap().expect("a model")
}

/// One step that writes three pages, one model call each, and fails once after them.
fn three_pages(llm: Arc<Llm>, per_call: Arc<Mutex<Vec<(u64, u64, f64)>>>) -> Workflow {
    let attempts = Arc::new(AtomicUsize::new(0));
    let quick = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        jitter: 0.0,
    };
    Workflow::new("pages").step_with("write", quick, Duration::from_secs(30), move |ctx| {
        let (llm, per_call, attempts) = (llm.clone(), per_call.clone(), attempts.clone());
        async move {
            for page in ["Overview", "Architecture", "Reference"] {
                ctx.item(page, || async {
                    let call = llm
                        .complete(&Request::new("Write one page.", page))
                        .await
                        .map_err(|e| StepError::retryable(e.to_string()))?;
                    let usage = call.reply.usage;
                    per_call.lock().unwrap().push((
                        usage.input_tokens,
                        usage.output_tokens,
                        call.cost_usd,
                    ));
                    let by = Spender {
                        provider: call.provider.to_string(),
                        model: call.reply.model.clone(),
                    };
                    ctx.add_model_usage(
                        by,
                        Usage {
                            tokens_in: usage.input_tokens as i64,
                            tokens_out: usage.output_tokens as i64,
                            cost_usd: call.cost_usd,
                        },
                    )
                    .await?;
                    Ok(json!({"title": page, "markdown": call.reply.text}))
                })
                .await?;
            }
            if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(StepError::retryable("the publisher was away"));
            }
            Ok(StepOutcome::Done(json!({"pages": 3})))
        }
    })
}

on_both_backends! {
    async fn the_tokens_and_cost_of_each_call_add_up_on_the_run(db) {
        let (url, calls) = counting_model().await;
        let llm = Arc::new(writer(&url));
        let per_call = Arc::new(Mutex::new(Vec::new()));
        let engine = Engine::new(db.storage.db().clone(), vec![three_pages(llm.clone(), per_call.clone())])
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = engine.worker("usage-test", 2).heartbeat(Duration::from_secs(2));
        tokio::spawn(worker.run(async move { let _ = stopped.await; }));

        let run = engine
            .submit(NewRun {
                workflow: "pages".into(),
                input: json!({}),
                dedup_key: None,
                concurrency_key: None,
                trigger: "manual".into(),
            })
            .await
            .unwrap()
            .run;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let run = loop {
            let now = engine.run(&run.id).await.unwrap();
            if now.status == RunStatus::Completed {
                break now;
            }
            assert!(tokio::time::Instant::now() < deadline, "stuck at {:?}: {:?}", now.status, now.error);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let _ = stop.send(());

        assert_eq!(calls.load(Ordering::SeqCst), 3, "the retry wrote no page again");
        let per_call = per_call.lock().unwrap().clone();
        assert_eq!(per_call, vec![
            (100, 10, (100.0 * 2.0 + 10.0 * 8.0) / 1e6),
            (101, 11, (101.0 * 2.0 + 11.0 * 8.0) / 1e6),
            (102, 12, (102.0 * 2.0 + 12.0 * 8.0) / 1e6),
        ]);
        assert_eq!(run.usage.tokens_in, 303);
        assert_eq!(run.usage.tokens_out, 33);
        let cost: f64 = per_call.iter().map(|c| c.2).sum();
        assert!((run.usage.cost_usd - cost).abs() < 1e-12, "{} != {cost}", run.usage.cost_usd);
        // The same figures by model, for the metrics: one line, the retry counted once.
        let spend = engine.spend_by_model().await.unwrap();
        assert_eq!(spend.len(), 1, "{spend:?}");
        let ModelSpend { provider, model, calls: answered, tokens_in, tokens_out, cost_usd } =
            spend[0].clone();
        assert_eq!((provider.as_str(), model.as_str()), ("openai-compatible", "test-model"));
        assert_eq!((answered, tokens_in, tokens_out), (3, 303, 33));
        assert!((cost_usd - cost).abs() < 1e-12);
        let (totals, total_cost) = llm.totals();
        assert_eq!((totals.input_tokens, totals.output_tokens), (303, 33), "the wrapper agrees");
        assert!((total_cost - cost).abs() < 1e-12);
    }
}
