//! `kill -9` of an `isocrates worker` in the middle of the write step: the next worker
//! resumes the run, and no page already written is paid for again. The worker is the real
//! binary; the model is a local server speaking OpenAI's chat completions, slow enough to
//! kill the worker between two pages.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use isocrates_engine::{Engine, RunStatus};
use isocrates_testkit::{
    chat_completion, git, on_both_backends, serve_on_loopback, test_docgen, written_page_title,
};
use isocrates_workflows::docgen::{DocgenInput, Trigger};
use isocrates_workflows::pipeline;
use serde_json::{Value, json};

const PAGES: usize = 8;

/// A repository of one file per page to be.
fn repository(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), "# Parts\n").unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    for i in 0..PAGES {
        std::fs::write(
            dir.join(format!("src/part{i}.rs")),
            format!("/// Part {i}.\npub fn part{i}() {{}}\n"),
        )
        .unwrap();
    }
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "parts"]);
}

/// A model that plans one page per part and takes 300 ms to write each; it records the
/// title of every page it is asked to write, in order.
async fn slow_model() -> (String, Arc<Mutex<Vec<String>>>) {
    let written = Arc::new(Mutex::new(Vec::new()));
    let log = written.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |body: axum::Json<Value>| {
            let log = log.clone();
            async move {
                let system = body["messages"][0]["content"].as_str().unwrap_or_default();
                let prompt = body["messages"][1]["content"].as_str().unwrap_or_default();
                let text = if system.contains("editor of a technical wiki") {
                    let pages: Vec<Value> = (0..PAGES)
                        .map(|i| json!({"title": format!("Part {i}"), "doc_type": "module", "description": "A part.", "source_files": [format!("src/part{i}.rs")]}))
                        .collect();
                    json!({"summary": "Parts.", "pages": pages}).to_string()
                } else {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let title = written_page_title(prompt);
                    log.lock().unwrap().push(title.clone());
                    format!("{title} does one thing.")
                };
                axum::Json(chat_completion(&text, 10, 5))
            }
        }),
    );
    (format!("{}/v1", serve_on_loopback(app).await), written)
}

/// An `isocrates worker`, killed when dropped.
struct Worker(Child);

impl Worker {
    fn start(dir: &Path, db_url: &str, model_url: &str) -> Worker {
        let child = Command::new(env!("CARGO_BIN_EXE_isocrates"))
            .current_dir(dir)
            .env_clear()
            .env("DATABASE_URL", db_url)
            .env("LLM_PROVIDER", "openai-compatible")
            .env("LLM_BASE_URL", model_url)
            .env("LLM_MODEL", "test-model")
            .env("LLM_MAX_CONCURRENCY", "1")
            .env("ALLOW_LOCAL_REPOS", "true")
            .env("WORKERS", "1")
            .env("LOG_LEVEL", "warn")
            .arg("worker")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start isocrates worker");
        Worker(child)
    }

    /// `kill -9`: no chance to clean up.
    fn kill(&mut self) {
        self.0.kill().unwrap();
        let _ = self.0.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

on_both_backends! {
    async fn a_worker_killed_while_writing_pays_for_no_written_page_again(db) {
        let (origin, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        repository(origin.path());
        let (model, written) = slow_model().await;
        // This process only submits and watches; the workers run the steps.
        let shape = pipeline::workflow(Arc::new(test_docgen(&db.storage, work.path())));
        let engine = Engine::new(db.storage.db().clone(), vec![shape]).await.unwrap();
        let repo = origin.path().to_str().unwrap().to_string();
        let input = DocgenInput { repo_url: repo.clone(), commit_sha: None, force: false, changed_paths: None, added_paths: Vec::new(), base_commit: None };
        let run = engine.submit(input.into_run(Trigger::Manual)).await.unwrap().run;

        let mut first = Worker::start(work.path(), &db.url, &model);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let recorded = loop {
            let now = engine.run(&run.id).await.unwrap();
            let done = if now.current_step == 4 { engine.items_done(&now, "write").await.unwrap() } else { 0 };
            if done >= 3 {
                break done as usize;
            }
            assert!(tokio::time::Instant::now() < deadline, "three pages were never written: {now:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The job says how far the write step got.
        let job = isocrates_api::model::JobOut::load(&engine, &engine.run(&run.id).await.unwrap()).await.unwrap();
        let progress = job.steps[4].output_summary.clone().unwrap_or_default();
        assert!(progress.ends_with(&format!(" of {PAGES} pages written")), "{progress}");
        first.kill();
        let before_kill = written.lock().unwrap().clone();

        let _second = Worker::start(work.path(), &db.url, &model);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        let finished = loop {
            let now = engine.run(&run.id).await.unwrap();
            if now.status.is_terminal() {
                break now;
            }
            assert!(tokio::time::Instant::now() < deadline, "the run was not resumed: {now:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(finished.status, RunStatus::Completed, "{:?}", finished.error);

        let calls = written.lock().unwrap().clone();
        // Pages are written one at a time, so the first ones asked for are the ones
        // checkpointed before the kill.
        for title in before_kill.iter().take(recorded) {
            assert_eq!(calls.iter().filter(|t| *t == title).count(), 1, "{title} was written again: {calls:?}");
        }
        for i in 0..PAGES {
            assert!(calls.contains(&format!("Part {i}")), "Part {i} was never written: {calls:?}");
        }
        assert!(calls.len() <= PAGES + 1, "at most the page in flight at the kill is paid twice: {calls:?}");
        let job = isocrates_api::model::JobOut::load(&engine, &finished).await.unwrap();
        let summaries: Vec<String> = job.steps.iter().map(|s| s.output_summary.clone().unwrap_or_default()).collect();
        assert!(summaries[0].starts_with("commit ") && summaries[0].ends_with(&format!(": {} files", PAGES + 1)), "{summaries:?}");
        assert_eq!(summaries[4], format!("{PAGES} of {PAGES} pages written, 0 failed"));
        assert!(summaries[6].starts_with(&format!("{PAGES} pages published")), "{summaries:?}");
        let steps = engine.steps(&run.id).await.unwrap();
        let write: Vec<&str> = steps.iter().filter(|s| s.step == "write").map(|s| s.status.as_str()).collect();
        assert_eq!(write, ["interrupted", "succeeded"]);
    }
}
