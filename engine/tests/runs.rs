//! Runs of small workflows on a real worker over apalis, on SQLite and on PostgreSQL:
//! retries, permanent failures, item checkpoints, retry from a step, cancellation and
//! supersession by key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use isocrates_db::{Db, Timestamp};
use isocrates_engine::RunStatus;
use isocrates_engine::core::RetryPolicy;
use isocrates_engine::{Engine, Held, NewRun, Run, RunFilter, StepError, StepOutcome, Workflow};
use isocrates_testkit::on_both_backends;
use serde_json::json;
use tokio::sync::{Notify, oneshot};

/// Counts how often each named thing ran.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<String, usize>>>);

impl Calls {
    fn hit(&self, name: &str) -> usize {
        let mut map = self.0.lock().unwrap();
        let n = map.entry(name.to_string()).or_default();
        *n += 1;
        *n
    }
    fn get(&self, name: &str) -> usize {
        self.0.lock().unwrap().get(name).copied().unwrap_or_default()
    }
}

fn fast(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(50),
        jitter: 0.0,
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// An engine and a running worker over the test database; the worker stops on drop.
struct Harness {
    engine: Engine,
    stop: Option<oneshot::Sender<()>>,
}

impl Harness {
    async fn start(url: &str, workflows: Vec<Workflow>) -> Harness {
        let mut h = Harness::idle(url, workflows).await;
        h.start_worker();
        h
    }

    /// An engine with no worker yet: submitted runs wait in the queue.
    async fn idle(url: &str, workflows: Vec<Workflow>) -> Harness {
        let db = Db::connect(url).await.unwrap();
        Harness { engine: Engine::new(db, workflows).await.unwrap(), stop: None }
    }

    fn start_worker(&mut self) {
        let (stop, stopped) = oneshot::channel::<()>();
        let worker = self.engine.worker("test", 4).heartbeat(Duration::from_secs(2));
        tokio::spawn(async move {
            let _ = worker
                .run(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        self.stop = Some(stop);
    }

    async fn submit(&self, workflow: &str, key: Option<&str>) -> Run {
        self.engine
            .submit(NewRun {
                workflow: workflow.to_string(),
                input: json!({"n": 1}),
                dedup_key: None,
                concurrency_key: key.map(str::to_string),
                trigger: "manual".to_string(),
            })
            .await
            .unwrap()
            .run
    }

    /// Waits until the run reaches `status`.
    async fn wait_for(&self, id: &str, status: RunStatus) -> Run {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let run = self.engine.run(id).await.unwrap();
            if run.status == status {
                return run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {id} stuck at {:?}: {:?}",
                run.status,
                run.error
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// How many spending holds there are, of every run.
async fn holds(url: &str) -> i64 {
    #[derive(sqlx::FromRow)]
    struct Count {
        n: i64,
    }
    let db = Db::connect(url).await.unwrap();
    let rows: Vec<Count> = db
        .fetch_all("SELECT CAST(count(*) AS BIGINT) AS n FROM spending_holds", vec![])
        .await
        .unwrap();
    rows[0].n
}

fn flaky(calls: Calls) -> Workflow {
    let (a, b, c) = (calls.clone(), calls.clone(), calls);
    Workflow::new("flaky")
        .step_with("fetch", fast(3), TIMEOUT, move |_| {
            let calls = a.clone();
            async move {
                calls.hit("fetch");
                Ok(StepOutcome::Done(json!({"summary": "fetched", "value": 41})))
            }
        })
        .step_with("compute", fast(3), TIMEOUT, move |ctx| {
            let calls = b.clone();
            async move {
                let n = calls.hit("compute");
                if n < 3 {
                    return Err(StepError::retryable(format!("flaky failure {n}")));
                }
                let value =
                    ctx.output("fetch").and_then(|o| o["value"].as_i64()).unwrap_or_default();
                Ok(StepOutcome::Done(json!({"value": value + 1})))
            }
        })
        .step_with("publish", fast(3), TIMEOUT, move |ctx| {
            let calls = c.clone();
            async move {
                calls.hit("publish");
                assert_eq!(ctx.output("compute").unwrap()["value"], 42);
                Ok(StepOutcome::Done(json!({"summary": "published"})))
            }
        })
}

on_both_backends! {
    async fn a_step_that_fails_twice_then_succeeds_completes_the_run(db) {
        let calls = Calls::default();
        let h = Harness::start(&db.url, vec![flaky(calls.clone())]).await;
        let run = h.submit("flaky", None).await;
        let done = h.wait_for(&run.id, RunStatus::Completed).await;
        assert!(done.finished_at.is_some() && done.error.is_none());
        assert_eq!((calls.get("fetch"), calls.get("compute"), calls.get("publish")), (1, 3, 1));

        let steps = h.engine.steps(&run.id).await.unwrap();
        let history: Vec<_> = steps.iter().map(|s| (s.step.as_str(), s.attempt, s.status.as_str(), s.error.as_deref())).collect();
        assert_eq!(history, [
            ("fetch", 1, "succeeded", None),
            ("compute", 1, "failed", Some("flaky failure 1")),
            ("compute", 2, "failed", Some("flaky failure 2")),
            ("compute", 3, "succeeded", None),
            ("publish", 1, "succeeded", None),
        ]);
        assert_eq!(steps[0].output_summary.as_deref(), Some("fetched"));

        let counters = h.engine.counters();
        assert_eq!(counters.steps.get("succeeded"), Some(&3));
        assert_eq!(counters.steps.get("failed"), Some(&2));
        assert_eq!(counters.runs.get("completed"), Some(&1));
        assert_eq!(counters.runs.get("queued"), Some(&1));
    }

    async fn a_permanent_error_fails_the_run_at_once(db) {
        let calls = Calls::default();
        let c = calls.clone();
        let wf = Workflow::new("broken").step_with("clone", fast(5), TIMEOUT, move |_| {
            let calls = c.clone();
            async move {
                calls.hit("clone");
                Err(StepError::permanent("repository not found: check the URL"))
            }
        });
        let h = Harness::start(&db.url, vec![wf]).await;
        let run = h.submit("broken", None).await;
        let failed = h.wait_for(&run.id, RunStatus::Failed).await;
        assert_eq!(failed.error.as_deref(), Some("repository not found: check the URL"));
        assert_eq!(calls.get("clone"), 1, "never retried");
    }

    async fn finished_items_never_run_again_and_retry_from_a_step_reuses_earlier_ones(db) {
        let calls = Calls::default();
        let fail_publish = Arc::new(AtomicUsize::new(1));
        let (a, b, c, gate) = (calls.clone(), calls.clone(), calls.clone(), fail_publish.clone());
        let wf = Workflow::new("fanout")
            .step_with("plan", fast(1), TIMEOUT, move |_| {
                let calls = a.clone();
                async move {
                    calls.hit("plan");
                    Ok(StepOutcome::Done(json!({"pages": ["p1", "p2", "p3", "p4"]})))
                }
            })
            .step_with("write", fast(3), TIMEOUT, move |ctx| {
                let calls = b.clone();
                async move {
                    let pages: Vec<String> = serde_json::from_value(ctx.output("plan").unwrap()["pages"].clone()).unwrap();
                    let mut written = Vec::new();
                    for page in pages {
                        let calls = calls.clone();
                        let key = page.clone();
                        let out = ctx.item(&key, || async move {
                            let n = calls.hit(&page);
                            // The third page fails on its first try, after two pages were written.
                            if page == "p3" && n == 1 {
                                return Err(StepError::retryable("provider timed out"));
                            }
                            Ok(json!(format!("text of {page}")))
                        }).await?;
                        written.push(out);
                    }
                    Ok(StepOutcome::Done(json!({"written": written.len()})))
                }
            })
            .step_with("publish", fast(1), TIMEOUT, move |_| {
                let calls = c.clone();
                let gate = gate.clone();
                async move {
                    calls.hit("publish");
                    if gate.load(Ordering::SeqCst) == 1 {
                        return Err(StepError::permanent("store refused"));
                    }
                    Ok(StepOutcome::Done(json!({})))
                }
            });
        let h = Harness::start(&db.url, vec![wf]).await;
        let run = h.submit("fanout", None).await;
        h.wait_for(&run.id, RunStatus::Failed).await;
        // p1 and p2 were written once, though the step ran twice.
        assert_eq!((calls.get("p1"), calls.get("p2"), calls.get("p3"), calls.get("p4")), (1, 1, 2, 1));

        // Retry from `write`: its items are discarded and written again; `plan` is reused.
        fail_publish.store(0, Ordering::SeqCst);
        let retried = h.engine.retry(&run.id, Some("write")).await.unwrap();
        assert_eq!(retried.retry_count, 1);
        h.wait_for(&run.id, RunStatus::Completed).await;
        assert_eq!(calls.get("plan"), 1);
        assert_eq!((calls.get("p1"), calls.get("p4")), (2, 2));
        assert_eq!(calls.get("publish"), 2);

        // A plain retry of a completed run is refused; unknown steps are named.
        assert!(h.engine.retry(&run.id, None).await.is_err());
        assert!(matches!(h.engine.retry("nope", None).await, Err(isocrates_engine::Error::NotFound(_))));
    }

    async fn newer_queued_runs_supersede_older_ones_for_a_key(db) {
        let release = Arc::new(Notify::new());
        let gate = release.clone();
        let wf = Workflow::new("repo").step_with("work", fast(1), TIMEOUT, move |ctx| {
            let gate = gate.clone();
            async move {
                if ctx.input["block"].as_bool().unwrap_or(false) {
                    gate.notified().await;
                }
                Ok(StepOutcome::Done(json!({})))
            }
        });
        let h = Harness::start(&db.url, vec![wf]).await;
        let first = h.engine.submit(NewRun {
            workflow: "repo".into(), input: json!({"block": true}), dedup_key: None,
            concurrency_key: Some("github.com/acme/app".into()), trigger: "webhook".into(),
        }).await.unwrap().run;
        h.wait_for(&first.id, RunStatus::Running).await;
        let mut queued = Vec::new();
        for _ in 0..3 {
            queued.push(h.submit("repo", Some("github.com/acme/app")).await);
        }
        // The running run holds the key; of the three queued, only the newest survives.
        for older in &queued[..2] {
            let run = h.engine.run(&older.id).await.unwrap();
            assert_eq!(run.status, RunStatus::Cancelled);
            assert!(run.error.unwrap().starts_with("superseded by the newer run"));
        }
        assert_eq!(h.engine.run(&queued[2].id).await.unwrap().status, RunStatus::Queued);
        release.notify_one();
        h.wait_for(&first.id, RunStatus::Completed).await;
        h.wait_for(&queued[2].id, RunStatus::Completed).await;
        let listed = h.engine.runs(&RunFilter { status: Some(RunStatus::Cancelled), limit: 10, ..RunFilter::default() }).await.unwrap();
        assert_eq!(listed.len(), 2);
    }

    async fn tasks_left_over_from_before_a_cancel_and_retry_do_nothing(db) {
        let calls = Calls::default();
        let c = calls.clone();
        let wf = Workflow::new("once").step("work", move |_| {
            let calls = c.clone();
            async move {
                calls.hit("work");
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(StepOutcome::Done(json!({})))
            }
        });
        let mut h = Harness::idle(&db.url, vec![wf]).await;
        let run = h.submit("once", None).await;
        // The first task is still in the queue when the run is cancelled and retried, which
        // pushes a second task for the same step.
        h.engine.cancel(&run.id).await.unwrap();
        h.engine.retry(&run.id, None).await.unwrap();
        h.start_worker();
        h.wait_for(&run.id, RunStatus::Completed).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(calls.get("work"), 1, "only the retry's task ran the step");
    }

    async fn two_schedulers_start_one_run_per_tick(db) {
        let wf = Workflow::new("tick").step("noop", |_| async { Ok(StepOutcome::Done(json!({}))) });
        let h = Harness::start(&db.url, vec![wf]).await;
        let make = |tick: u64| NewRun {
            workflow: "tick".into(),
            input: json!({"tick": tick}),
            dedup_key: None,
            concurrency_key: None,
            trigger: "schedule".into(),
        };
        // Two schedulers, as two processes would run them, ticking every second.
        let mut stops = Vec::new();
        for _ in 0..2 {
            let (stop, stopped) = oneshot::channel::<()>();
            let engine = h.engine.clone();
            tokio::spawn(async move {
                let done = async move {
                    let _ = stopped.await;
                };
                engine.run_schedule("refresh", "* * * * * *", make, done).await.unwrap();
            });
            stops.push(stop);
        }
        tokio::time::sleep(Duration::from_millis(3500)).await;
        for stop in stops {
            let _ = stop.send(());
        }
        let runs = h.engine.runs(&RunFilter { workflow: Some("tick".into()), limit: 100, ..RunFilter::default() }).await.unwrap();
        let mut ticks: Vec<u64> = runs.iter().map(|r| r.input["tick"].as_u64().unwrap()).collect();
        assert!(ticks.len() >= 2, "{ticks:?}");
        let all = ticks.len();
        ticks.sort_unstable();
        ticks.dedup();
        assert_eq!(ticks.len(), all, "one run per tick, whatever the number of schedulers");
        assert!(runs.iter().all(|r| r.trigger == "schedule"));

        let bad = h.engine.run_schedule("bad", "every day", make, async {}).await;
        assert!(matches!(bad, Err(isocrates_engine::Error::Schedule(m)) if m.contains("every day")));
    }

    async fn cancelling_a_queued_run_and_a_running_run(db) {
        let started = Arc::new(Notify::new());
        let signal = started.clone();
        let wf = Workflow::new("slow")
            .step_with("loop", fast(1), TIMEOUT, move |ctx| {
                let signal = signal.clone();
                async move {
                    for i in 0..200 {
                        ctx.item(&format!("item-{i}"), || async {
                            signal.notify_one();
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok(json!(i))
                        }).await?;
                    }
                    Ok(StepOutcome::Done(json!({})))
                }
            })
            .step("after", |_| async { Ok(StepOutcome::Done(json!({}))) });
        let h = Harness::start(&db.url, vec![wf]).await;
        let running = h.submit("slow", Some("k")).await;
        started.notified().await;
        let waiting = h.submit("slow", Some("k")).await;
        let cancelled = h.engine.cancel(&waiting.id).await.unwrap();
        assert_eq!(cancelled.status, RunStatus::Cancelled);

        let asked = h.engine.cancel(&running.id).await.unwrap();
        assert!(asked.cancel_requested);
        let stopped = h.wait_for(&running.id, RunStatus::Cancelled).await;
        assert_eq!(stopped.current_step, 0, "stopped at an item boundary, before `after`");
        assert!(h.engine.cancel(&running.id).await.is_err(), "an ended run cannot be cancelled");
        let steps = h.engine.steps(&running.id).await.unwrap();
        assert_eq!(steps.last().unwrap().status, "cancelled");
    }

    async fn a_step_that_lasts_shows_as_running_with_its_start_and_a_short_one_writes_once(db) {
        let gate = Arc::new(Notify::new());
        let release = gate.clone();
        let wf = Workflow::new("gated")
            .step("quick", |_| async { Ok(StepOutcome::Done(json!({}))) })
            .step("long", move |_| {
                let gate = release.clone();
                async move {
                    gate.notified().await;
                    Ok(StepOutcome::Done(json!({"summary": "long done"})))
                }
            });
        let h = Harness::start(&db.url, vec![wf]).await;
        let run = h.submit("gated", None).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let long = loop {
            let steps = h.engine.steps(&run.id).await.unwrap();
            if let Some(long) = steps.iter().find(|s| s.step == "long") {
                break long.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "the long step never showed: {steps:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(long.status, "running");
        assert!(long.finished_at.is_none());
        gate.notify_one();
        h.wait_for(&run.id, RunStatus::Completed).await;
        let steps = h.engine.steps(&run.id).await.unwrap();
        let statuses: Vec<(&str, &str)> = steps.iter().map(|s| (s.step.as_str(), s.status.as_str())).collect();
        assert_eq!(statuses, [("quick", "succeeded"), ("long", "succeeded")], "one row per attempt");
        let ended = &steps[1];
        assert_eq!(ended.started_at, long.started_at, "the recorded start is kept");
        assert!(ended.finished_at.is_some_and(|f| f >= ended.started_at));
        assert_eq!(ended.output_summary.as_deref(), Some("long done"));
    }

    async fn a_cancel_during_a_retry_delay_stops_the_run_before_the_step_runs_again(db) {
        let calls = Calls::default();
        let counted = calls.clone();
        // Two seconds: SQLite's queue keeps a task's start time to the second.
        let slow_retry = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(2),
            jitter: 0.0,
        };
        let wf = Workflow::new("backoff")
            .step_with("flaky", slow_retry, TIMEOUT, move |_| {
                let calls = counted.clone();
                async move {
                    calls.hit("flaky");
                    Err(StepError::retryable("provider answered 503"))
                }
            })
            .step("after", |_| async { Ok(StepOutcome::Done(json!({}))) });
        let h = Harness::start(&db.url, vec![wf]).await;
        let run = h.submit("backoff", None).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while calls.get("flaky") == 0 {
            assert!(tokio::time::Instant::now() < deadline, "the step never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The first attempt failed; the second waits for its delay. Cancel now.
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.engine.cancel(&run.id).await.unwrap();
        let stopped = h.wait_for(&run.id, RunStatus::Cancelled).await;
        assert_eq!(stopped.error.as_deref(), Some("cancelled by an operator"));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(calls.get("flaky"), 1, "the delayed attempt never ran");
    }

    async fn holds_count_across_runs_until_released_expired_or_their_step_ends(db) {
        let minute = Duration::from_secs(60);
        let (waiting, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (w, g) = (waiting.clone(), go.clone());
        // Takes three holds and stays in its step: one released, one already expired, and
        // one kept, as a worker that died during its call would leave them.
        // Its step lasts while the other runs come and go: longer than the usual timeout.
        let holder = Workflow::new("holder").step_with("call", fast(1), TIMEOUT * 6, move |ctx| {
            let (waiting, go) = (w.clone(), g.clone());
            async move {
                let released = ctx.hold(1.0, minute, |_, _| true).await?.hold.unwrap();
                released.release().await?;
                std::mem::forget(ctx.hold(2.0, Duration::ZERO, |_, _| true).await?.hold.unwrap());
                std::mem::forget(ctx.hold(4.0, minute, |_, _| true).await?.hold.unwrap());
                waiting.notify_one();
                go.notified().await;
                Ok(StepOutcome::Done(json!({})))
            }
        });
        // Looks once, holding 8 dollars only when nothing else is held.
        let shown: Arc<Mutex<Vec<(Held, bool)>>> = Arc::default();
        let seen = shown.clone();
        let looker = Workflow::new("looker").step_with("look", fast(1), TIMEOUT, move |ctx| {
            let seen = seen.clone();
            async move {
                let holding = ctx.hold(8.0, minute, |_, held| held.month_calls == 0).await?;
                seen.lock().unwrap().push((holding.held, holding.hold.is_some()));
                std::mem::forget(holding.hold);
                Ok(StepOutcome::Done(json!({})))
            }
        });
        let h = Harness::start(&db.url, vec![holder, looker]).await;
        let holding = h.submit("holder", Some("repo-a")).await;
        tokio::time::timeout(TIMEOUT, waiting.notified()).await.expect("the holder holds");

        let look = h.submit("looker", Some("repo-b")).await;
        h.wait_for(&look.id, RunStatus::Completed).await;
        let (held, let_through) = shown.lock().unwrap()[0];
        assert_eq!((held.month_usd, held.month_calls), (4.0, 1), "only the kept hold of another run counts");
        assert_eq!((held.run_usd, held.run_calls, held.key_month_calls), (0.0, 0, 0), "none is this run's or its key's");
        assert!(!let_through, "the caller's rule was applied to what it was shown");

        // The holder's step ends: its kept hold goes with it.
        go.notify_one();
        h.wait_for(&holding.id, RunStatus::Completed).await;
        let again = h.submit("looker", Some("repo-a")).await;
        h.wait_for(&again.id, RunStatus::Completed).await;
        let (held, let_through) = shown.lock().unwrap()[1];
        assert_eq!((held.month_calls, held.month_usd), (0, 0.0), "nothing is held once the steps ended");
        assert!(let_through);
        // The second looker left its hold unreleased too: it went with the step.
        assert_eq!(holds(&db.url).await, 0);
    }

    async fn holds_a_dead_worker_left_go_when_the_run_runs_again_or_is_cancelled(db) {
        let shown: Arc<Mutex<Vec<Held>>> = Arc::default();
        let seen = shown.clone();
        let looker = Workflow::new("looker").step_with("look", fast(1), TIMEOUT, move |ctx| {
            let seen = seen.clone();
            async move {
                let holding = ctx.hold(1.0, Duration::from_secs(60), |_, _| true).await?;
                seen.lock().unwrap().push(holding.held);
                holding.hold.unwrap().release().await?;
                Ok(StepOutcome::Done(json!({})))
            }
        });
        let mut h = Harness::idle(&db.url, vec![looker]).await;
        // Two queued runs, each holding what a call of a worker that died left behind.
        let resumed = h.submit("looker", Some("repo-a")).await;
        let cancelled = h.submit("looker", Some("repo-b")).await;
        let store = Db::connect(&db.url).await.unwrap();
        for run in [&resumed, &cancelled] {
            store.execute(
                "INSERT INTO spending_holds (id, run_id, cost_usd, expires_at) VALUES ($1, $2, $3, $4)",
                isocrates_db::args![format!("left-by-{}", run.id), &run.id, 5.0, Timestamp::from_now(Duration::from_secs(3600))],
            )
            .await
            .unwrap();
        }
        assert_eq!(holds(&db.url).await, 2);
        h.engine.cancel(&cancelled.id).await.unwrap();
        assert_eq!(holds(&db.url).await, 1, "a cancelled run holds nothing");

        h.start_worker();
        h.wait_for(&resumed.id, RunStatus::Completed).await;
        let held = shown.lock().unwrap()[0];
        assert_eq!((held.run_calls, held.month_calls), (0, 0), "the run's step started again without the dead call's hold");
        assert_eq!(holds(&db.url).await, 0);
    }
}
