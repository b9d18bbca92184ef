//! `/api/jobs` over the engine and a real worker, on SQLite and on PostgreSQL: jobs are
//! created, deduplicated, superseded, listed with filters and a cursor, shown with their
//! step history, retried and cancelled; bad input answers in the error envelope; grants
//! decide who sees and steers which job.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use isocrates_engine::core::RetryPolicy;
use isocrates_engine::{Spender, StepError, StepOutcome, Usage, Workflow};
use isocrates_testkit::{Answer, TestApp, TestDb, on_both_backends};
use isocrates_workflows::STEPS;
use isocrates_workflows::docgen::WORKFLOW;
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

const REPO: &str = "https://github.com/acme/widgets";

/// What the test workflow's steps do, set by each test.
#[derive(Default)]
struct Script {
    /// How many times `analyze` fails (retryably) before it succeeds.
    analyze_failures: AtomicUsize,
    /// `write` fails for good while this holds a message.
    write_fails: Mutex<Option<String>>,
    /// `plan` waits for this before it ends, when set.
    plan_gate: Mutex<Option<Arc<Notify>>>,
    /// Counts the runs of each step.
    runs: Mutex<Vec<String>>,
}

impl Script {
    fn ran(&self, step: &str) -> usize {
        self.runs.lock().unwrap().iter().filter(|s| *s == step).count()
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(50),
        jitter: 0.0,
    }
}

/// A `docgen` workflow with the real step names, whose steps do what `script` says.
fn workflow(script: &Arc<Script>) -> Workflow {
    STEPS.iter().fold(Workflow::new(WORKFLOW), |workflow, &name| {
        let script = script.clone();
        workflow.step_with(name, fast(), Duration::from_secs(10), move |ctx| {
            let script = script.clone();
            async move {
                script.runs.lock().unwrap().push(name.to_string());
                match name {
                    "clone" => {
                        return Ok(StepOutcome::Done(
                            json!({"commit_sha": "0123abcd0123abcd", "summary": "cloned"}),
                        ));
                    }
                    "analyze" => {
                        let left = script.analyze_failures.load(Ordering::SeqCst);
                        if left > 0 {
                            script.analyze_failures.store(left - 1, Ordering::SeqCst);
                            return Err(StepError::retryable(format!(
                                "provider answered 503 ({left} left)"
                            )));
                        }
                    }
                    "plan" => {
                        let gate = script.plan_gate.lock().unwrap().clone();
                        if let Some(gate) = gate {
                            gate.notified().await;
                        }
                    }
                    "write" => {
                        let by = Spender { provider: "openai".into(), model: "gpt-test".into() };
                        let usage = Usage { tokens_in: 1200, tokens_out: 300, cost_usd: 0.25 };
                        ctx.add_model_usage(by, usage).await?;
                        if let Some(message) = script.write_fails.lock().unwrap().clone() {
                            return Err(StepError::permanent(message));
                        }
                    }
                    "publish" => {
                        return Ok(StepOutcome::Done(
                            json!({"documents_written": 4, "documents_skipped": 2}),
                        ));
                    }
                    _ => {}
                }
                Ok(StepOutcome::Done(json!({ "summary": format!("{name} done") })))
            }
        })
    })
}

/// A test app whose engine runs the scripted workflow, and a worker that stops on drop.
struct Jobs {
    app: TestApp,
    script: Arc<Script>,
    _stop: Option<oneshot::Sender<()>>,
}

impl Jobs {
    async fn new(db: TestDb) -> Jobs {
        let script = Arc::new(Script::default());
        let app = TestApp::with_workflows(db, vec![workflow(&script)], |_| {}).await;
        Jobs { app, script, _stop: None }
    }

    fn start_worker(&mut self) {
        let (stop, stopped) = oneshot::channel::<()>();
        let worker = self.app.engine.worker("test", 2).heartbeat(Duration::from_secs(2));
        tokio::spawn(async move {
            let _ = worker
                .run(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        self._stop = Some(stop);
    }

    /// Polls the job until `done` holds of it.
    async fn wait(&self, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let job = self.app.get(&format!("/api/jobs/{id}"), Some(token)).await.body;
            if done(&job) {
                return job;
            }
            assert!(tokio::time::Instant::now() < deadline, "job never got there: {job}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn create(&self, token: &str, body: Value) -> Answer {
        self.app.post("/api/jobs", Some(token), body).await
    }
}

fn status_is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |job| job["status"] == status
}

fn step<'a>(job: &'a Value, name: &str) -> &'a Value {
    job["steps"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()
}

on_both_backends! {
    async fn a_job_is_created_once_per_repository_and_commit(db) {
        let jobs = Jobs::new(db).await;
        let admin = jobs.app.admin_token().await;

        let first = jobs.create(&admin, json!({"repo_url": "https://GitHub.com/acme/widgets.git/"})).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
        let job = &first.body;
        assert_eq!(job["repo_url"], REPO);
        assert_eq!(job["status"], "queued");
        assert_eq!(job["trigger"], "manual");
        assert_eq!(job["retry_count"], 0);
        assert!(job["commit_sha"].is_null());
        assert!(job["started_at"].is_null() && job["completed_at"].is_null());
        assert_eq!(job["current_step"], "clone");
        let names: Vec<&str> = job["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, STEPS);
        assert!(job["steps"].as_array().unwrap().iter().all(|s| s["status"] == "pending" && s["attempts"] == 0));
        for field in ["tokens_in", "tokens_out", "documents_written", "documents_skipped"] {
            assert_eq!(job[field], 0, "{field}");
        }

        // The same repository and commit while the job is queued: the same job.
        let again = jobs.create(&admin, json!({"repo_url": REPO})).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.body["id"], job["id"]);

        // A newer commit supersedes the queued job.
        let newer = jobs.create(&admin, json!({"repo_url": REPO, "commit_sha": "ABCDEF0123ABCDEF0123ABCDEF0123ABCDEF0123"})).await;
        assert_eq!(newer.status, StatusCode::CREATED);
        assert_eq!(newer.body["commit_sha"], "abcdef0123abcdef0123abcdef0123abcdef0123");
        let old = jobs.app.get(&format!("/api/jobs/{}", job["id"].as_str().unwrap()), Some(&admin)).await.body;
        assert_eq!(old["status"], "cancelled");
        assert!(old["error_message"].as_str().unwrap().contains(newer.body["id"].as_str().unwrap()), "{old}");
        assert!(!old["completed_at"].is_null());
    }

    async fn jobs_are_listed_newest_first_with_filters_and_a_cursor(db) {
        let jobs = Jobs::new(db).await;
        let admin = jobs.app.admin_token().await;
        let mut ids = Vec::new();
        for repo in ["https://github.com/acme/one", "https://github.com/acme/two", "https://github.com/acme/three"] {
            ids.push(jobs.create(&admin, json!({"repo_url": repo})).await.body["id"].as_str().unwrap().to_string());
        }
        jobs.create(&admin, json!({"repo_url": "https://github.com/acme/two", "commit_sha": "beefbeefbeefbeefbeefbeefbeefbeefbeefbeef"})).await;

        let all = jobs.app.get("/api/jobs", Some(&admin)).await;
        assert_eq!(all.status, StatusCode::OK);
        let listed: Vec<&str> = all.body.as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
        assert_eq!(listed.len(), 4);
        assert_eq!(&listed[1..], [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()], "newest first");

        let two = jobs.app.get("/api/jobs?repo_url=https://github.com/acme/two.git", Some(&admin)).await.body;
        assert_eq!(two.as_array().unwrap().len(), 2);
        let cancelled = jobs.app.get("/api/jobs?status=cancelled", Some(&admin)).await.body;
        assert_eq!(cancelled.as_array().unwrap().len(), 1);
        assert_eq!(cancelled[0]["id"], ids[1].as_str());

        let page = jobs.app.get("/api/jobs?limit=2", Some(&admin)).await.body;
        assert_eq!(page.as_array().unwrap().len(), 2);
        let cursor = page[1]["id"].as_str().unwrap();
        let next = jobs.app.get(&format!("/api/jobs?limit=2&before={cursor}"), Some(&admin)).await.body;
        let next: Vec<&str> = next.as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
        assert_eq!(next, [ids[1].as_str(), ids[0].as_str()]);

        for bad in ["/api/jobs?limit=0", "/api/jobs?limit=101", "/api/jobs?status=sleeping"] {
            let answer = jobs.app.get(bad, Some(&admin)).await;
            assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
            assert_eq!(answer.body["error"], "INVALID_REQUEST");
        }
    }

    async fn a_step_that_fails_twice_then_succeeds_shows_three_attempts(db) {
        let mut jobs = Jobs::new(db).await;
        jobs.script.analyze_failures.store(2, Ordering::SeqCst);
        jobs.start_worker();
        let admin = jobs.app.admin_token().await;
        let id = jobs.create(&admin, json!({"repo_url": REPO})).await.body["id"].as_str().unwrap().to_string();

        let job = jobs.wait(&admin, &id, status_is("completed")).await;
        assert!(job["error_message"].is_null());
        assert!(!job["started_at"].is_null() && !job["completed_at"].is_null());
        assert_eq!(job["commit_sha"], "0123abcd0123abcd", "the commit the clone found");
        assert_eq!(job["documents_written"], 4);
        assert_eq!(job["documents_skipped"], 2);
        assert_eq!(job["tokens_in"], 1200);
        assert_eq!(job["tokens_out"], 300);
        assert_eq!(job["cost_usd"], 0.25);
        assert_eq!(
            job["spending"],
            json!([{"provider": "openai", "model": "gpt-test", "calls": 1, "tokens_in": 1200, "tokens_out": 300, "cost_usd": 0.25}]),
            "the job's spending by model"
        );
        let spending = jobs.app.get("/api/jobs/spending?months=2", Some(&admin)).await;
        assert_eq!(spending.status, StatusCode::OK, "{:?}", spending.body);
        let month = &spending.body["months"][0];
        assert_eq!((month["calls"].as_i64(), month["cost_usd"].as_f64()), (Some(1), Some(0.25)), "{}", spending.body);
        assert_eq!(spending.body["repositories"][0]["repo_url"], REPO);
        assert_eq!(spending.body["budgets"]["per_run_usd"], Value::Null, "no cap is set");
        let months = jobs.app.get("/api/jobs/spending?months=0", Some(&admin)).await;
        assert_eq!(months.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", months.body);
        // This engine runs a scripted workflow: there is nothing to estimate with.
        let dry = jobs.create(&admin, json!({"repo_url": REPO, "dry_run": true})).await;
        assert_eq!(dry.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", dry.body);
        assert_eq!(dry.body["error"], "UNAVAILABLE");

        let analyze = step(&job, "analyze");
        assert_eq!(analyze["attempts"], 3);
        assert_eq!(analyze["status"], "succeeded");
        let history = analyze["history"].as_array().unwrap();
        assert_eq!(history[0]["status"], "failed");
        assert_eq!(history[0]["error"], "provider answered 503 (2 left)");
        assert_eq!(history[1]["error"], "provider answered 503 (1 left)");
        assert!(history[2]["error"].is_null());
        assert_eq!(step(&job, "clone")["attempts"], 1);
        assert_eq!(step(&job, "clone")["output_summary"], "cloned");
        assert_eq!(jobs.script.ran("clone"), 1, "the earlier step ran once");
        assert_eq!(jobs.script.ran("analyze"), 3);

        // The same run, as Prometheus scrapes it (no token needed).
        let metrics = jobs.app.get("/metrics", None).await;
        assert_eq!(metrics.status, StatusCode::OK);
        assert!(metrics.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
        for line in [
            "isocrates_runs{status=\"completed\"} 1",
            "isocrates_run_steps{status=\"failed\"} 2",
            "isocrates_llm_calls_total{provider=\"openai\",model=\"gpt-test\"} 1",
            "isocrates_llm_tokens_total{provider=\"openai\",model=\"gpt-test\",direction=\"in\"} 1200",
            "isocrates_llm_tokens_total{provider=\"openai\",model=\"gpt-test\",direction=\"out\"} 300",
            "isocrates_llm_cost_usd_total{provider=\"openai\",model=\"gpt-test\"} 0.25",
            "isocrates_http_requests_total{method=\"POST\",route=\"/api/jobs\",status=\"201\"} 1",
            "isocrates_http_request_duration_seconds_count{route=\"/api/jobs/{job_id}\"}",
            "# TYPE isocrates_http_request_duration_seconds histogram",
        ] {
            assert!(metrics.text.lines().any(|l| l.starts_with(line)), "{line} missing from:\n{}", metrics.text);
        }
    }

    async fn a_permanent_failure_ends_the_job_and_a_retry_from_a_step_reuses_earlier_work(db) {
        let mut jobs = Jobs::new(db).await;
        *jobs.script.write_fails.lock().unwrap() = Some("the plan names no pages: fix the planner prompt".to_string());
        jobs.start_worker();
        let admin = jobs.app.admin_token().await;
        let id = jobs.create(&admin, json!({"repo_url": REPO})).await.body["id"].as_str().unwrap().to_string();

        let failed = jobs.wait(&admin, &id, status_is("failed")).await;
        assert_eq!(failed["error_message"], "the plan names no pages: fix the planner prompt");
        assert_eq!(failed["current_step"], "write");
        assert_eq!(step(&failed, "write")["attempts"], 1, "a permanent error is not retried");
        assert_eq!(failed["tokens_in"], 1200, "what the failed step paid for is shown");

        let unknown = jobs.app.post(&format!("/api/jobs/{id}/retry"), Some(&admin), json!({"from_step": "deploy"})).await;
        assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
        assert_eq!(unknown.body["error"], "VALIDATION_ERROR");
        assert_eq!(unknown.body["details"]["field"], "from_step");
        assert!(unknown.body["message"].as_str().unwrap().contains("clone, analyze"), "{}", unknown.body);

        *jobs.script.write_fails.lock().unwrap() = None;
        let retried = jobs.app.post(&format!("/api/jobs/{id}/retry"), Some(&admin), json!({"from_step": "plan"})).await;
        assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
        assert_eq!(retried.body["retry_count"], 1);
        let done = jobs.wait(&admin, &id, status_is("completed")).await;
        assert!(done["error_message"].is_null());
        assert_eq!(jobs.script.ran("clone"), 1);
        assert_eq!(jobs.script.ran("analyze"), 1);
        assert_eq!(jobs.script.ran("plan"), 2, "plan ran again");
        assert_eq!(jobs.script.ran("write"), 2);
        assert_eq!(done["tokens_in"], 2400, "both write attempts were paid for");

        // A completed job is not live, but it has nothing left to resume either.
        let cancel = jobs.app.post(&format!("/api/jobs/{id}/cancel"), Some(&admin), json!({})).await;
        assert_eq!(cancel.status, StatusCode::CONFLICT);
        assert_eq!(cancel.body["error"], "CONFLICT");
    }

    async fn running_and_queued_jobs_are_cancelled_and_a_live_job_is_not_retried(db) {
        let mut jobs = Jobs::new(db).await;
        let gate = Arc::new(Notify::new());
        *jobs.script.plan_gate.lock().unwrap() = Some(gate.clone());
        let admin = jobs.app.admin_token().await;

        // Queued: cancelled at once, and never starts.
        let queued = jobs.create(&admin, json!({"repo_url": "https://github.com/acme/queued"})).await.body["id"].as_str().unwrap().to_string();
        let cancelled = jobs.app.post(&format!("/api/jobs/{queued}/cancel"), Some(&admin), Value::Null).await;
        assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
        assert_eq!(cancelled.body["status"], "cancelled");

        jobs.start_worker();
        let id = jobs.create(&admin, json!({"repo_url": REPO})).await.body["id"].as_str().unwrap().to_string();
        let running = jobs.wait(&admin, &id, |j| j["status"] == "running" && j["current_step"] == "plan").await;
        assert_eq!(step(&running, "plan")["status"], "running");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while jobs.script.ran("plan") == 0 {
            assert!(tokio::time::Instant::now() < deadline, "plan never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let retry = jobs.app.post(&format!("/api/jobs/{id}/retry"), Some(&admin), Value::Null).await;
        assert_eq!(retry.status, StatusCode::CONFLICT);
        assert_eq!(retry.body["error"], "CONFLICT");
        assert!(retry.body["message"].as_str().unwrap().contains("running"), "{}", retry.body);

        let cancel = jobs.app.post(&format!("/api/jobs/{id}/cancel"), Some(&admin), Value::Null).await;
        assert_eq!(cancel.status, StatusCode::OK);
        gate.notify_one();
        let stopped = jobs.wait(&admin, &id, status_is("cancelled")).await;
        assert_eq!(jobs.script.ran("write"), 0, "it stopped at the step boundary");
        assert_eq!(step(&stopped, "plan")["status"], "succeeded", "the step in flight finished");
        assert_eq!(jobs.script.ran("clone"), 1, "the queued job that was cancelled never started");
    }

    async fn bad_job_requests_answer_in_the_envelope(db) {
        let jobs = Jobs::new(db).await;
        let admin = jobs.app.admin_token().await;
        for path in ["/api/jobs/01nope", "/api/jobs/01nope/"] {
            let missing = jobs.app.get(path, Some(&admin)).await;
            assert_eq!(missing.status, StatusCode::NOT_FOUND);
            assert_eq!(missing.body["error"], "NOT_FOUND");
            assert_eq!(missing.body["details"]["id"], "01nope");
        }
        for action in ["retry", "cancel"] {
            let missing = jobs.app.post(&format!("/api/jobs/01nope/{action}"), Some(&admin), json!({})).await;
            assert_eq!(missing.status, StatusCode::NOT_FOUND, "{action}");
        }
        for (body, field) in [
            (json!({"repo_url": "github.com/acme/widgets"}), "repo_url"),
            (json!({"repo_url": ""}), "repo_url"),
            (json!({"repo_url": REPO, "commit_sha": "not a sha"}), "commit_sha"),
        ] {
            let answer = jobs.create(&admin, body).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
            assert_eq!(answer.body["details"]["field"], field);
        }
        let missing_field = jobs.create(&admin, json!({"force": true})).await;
        assert_eq!(missing_field.status, StatusCode::UNPROCESSABLE_ENTITY);
        let no_token = jobs.app.post("/api/jobs", None, json!({"repo_url": REPO})).await;
        assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
        assert!(jobs.app.get("/api/jobs", Some(&admin)).await.body.as_array().unwrap().is_empty(), "nothing was created");
    }

    async fn grants_decide_who_sees_and_steers_a_job(db) {
        let jobs = Jobs::new(db).await;
        let admin = jobs.app.admin_token().await;
        let widgets = jobs.create(&admin, json!({"repo_url": REPO})).await.body["id"].as_str().unwrap().to_string();
        let secret = jobs.create(&admin, json!({"repo_url": "https://github.com/acme/secret"})).await.body["id"].as_str().unwrap().to_string();

        let (viewer_id, viewer) = jobs.app.user(&admin, "viewer@example.com").await;
        jobs.app.grant(&admin, &viewer_id, "widgets", "viewer").await;
        let listed = jobs.app.get("/api/jobs", Some(&viewer)).await.body;
        let listed: Vec<&str> = listed.as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
        assert_eq!(listed, [widgets.as_str()], "only the repository the viewer may read");
        assert_eq!(jobs.app.get(&format!("/api/jobs/{secret}"), Some(&viewer)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(jobs.app.get(&format!("/api/jobs/{widgets}"), Some(&viewer)).await.status, StatusCode::OK);
        assert_eq!(jobs.app.post(&format!("/api/jobs/{widgets}/cancel"), Some(&viewer), Value::Null).await.status, StatusCode::FORBIDDEN);
        assert_eq!(jobs.create(&viewer, json!({"repo_url": REPO, "force": true})).await.status, StatusCode::FORBIDDEN);

        // With a limit of one, skipping the job the viewer may not see still fills the page.
        let one = jobs.app.get("/api/jobs?limit=1", Some(&viewer)).await.body;
        assert_eq!(one[0]["id"], widgets.as_str());

        let (editor_id, editor) = jobs.app.user(&admin, "editor@example.com").await;
        jobs.app.put(&format!("/api/auth/users/{editor_id}/role"), Some(&admin), json!({"role": "editor"})).await;
        jobs.app.grant(&admin, &editor_id, "widgets", "editor").await;
        let cancel = jobs.app.post(&format!("/api/jobs/{widgets}/cancel"), Some(&editor), Value::Null).await;
        assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.body);
        assert_eq!(jobs.app.post(&format!("/api/jobs/{secret}/cancel"), Some(&editor), Value::Null).await.status, StatusCode::NOT_FOUND);

        // Without a token and without public reads, no job is listed.
        assert!(jobs.app.get("/api/jobs", None).await.body.as_array().unwrap().is_empty());
    }
}
