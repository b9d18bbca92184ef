//! What only real processes show: a worker killed with `kill -9` in the middle of a step
//! that fans out, and two workers sharing one PostgreSQL database. The workers are the
//! `isocrates-engine-testbed` binary; each execution of a step or an item leaves a line in
//! a log file, so executions are counted across processes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use isocrates_db::{Db, args};
use isocrates_engine::{Engine, NewRun, RunStatus, StepOutcome, Workflow};
use isocrates_testkit::{TestDb, on_both_backends};
use serde_json::json;

/// A worker process, killed when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn start(url: &str, log: &Path, items: usize, item_ms: u64) -> WorkerProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_isocrates-engine-testbed"))
            .env("DATABASE_URL", url)
            .env("TESTBED_LOG", log)
            .env("TESTBED_ITEMS", items.to_string())
            .env("TESTBED_ITEM_MS", item_ms.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the testbed worker");
        WorkerProcess(child)
    }

    /// `kill -9`: no chance to clean up.
    fn kill(&mut self) {
        self.0.kill().expect("SIGKILL the worker");
        let _ = self.0.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The testbed workflow's shape, for submitting from this process; the workers run it.
fn shape() -> Workflow {
    let done = |_| async { Ok(StepOutcome::Done(json!({}))) };
    Workflow::new("testbed").step("prepare", done).step("fanout", done).step("finish", done)
}

async fn engine(db: &TestDb) -> Engine {
    Engine::new(Db::connect(&db.url).await.unwrap(), vec![shape()]).await.unwrap()
}

async fn submit(engine: &Engine) -> String {
    let new = NewRun {
        workflow: "testbed".into(),
        input: json!({}),
        dedup_key: None,
        concurrency_key: None,
        trigger: "manual".into(),
    };
    engine.submit(new).await.unwrap().run.id
}

/// Executions per `(run, what)` in the log.
fn executions(log: &Path) -> HashMap<(String, String), usize> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut counts = HashMap::new();
    for line in text.lines() {
        if let Some((run, what)) = line.split_once(' ') {
            *counts.entry((run.to_string(), what.to_string())).or_default() += 1;
        }
    }
    counts
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(sqlx::FromRow)]
struct Key {
    item_key: String,
}

fn log_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("executions.log")
}

on_both_backends! {
    async fn a_worker_killed_mid_fanout_loses_no_finished_item(db) {
        const ITEMS: usize = 12;
        let dir = tempfile::tempdir().unwrap();
        let log = log_path(&dir);
        let engine = engine(&db).await;
        let mut first = WorkerProcess::start(&db.url, &log, ITEMS, 150);
        let run = submit(&engine).await;

        // Let a third of the items finish, then kill the worker without warning.
        wait_until("four items", Duration::from_secs(30), async || {
            executions(&log).keys().filter(|(r, w)| r == &run && w.starts_with("item-")).count() >= 4
        })
        .await;
        first.kill();
        let probe = Db::connect(&db.url).await.unwrap();
        let finished: Vec<Key> = probe
            .fetch_all("SELECT item_key FROM run_items WHERE run_id = $1", args![&run])
            .await
            .unwrap();
        assert!(finished.len() >= 3, "items were checkpointed before the kill");

        // A new worker takes the orphaned step over and finishes the run.
        let _second = WorkerProcess::start(&db.url, &log, ITEMS, 20);
        wait_until("the run to complete", Duration::from_secs(60), async || {
            engine.run(&run).await.unwrap().status == RunStatus::Completed
        })
        .await;

        let counts = executions(&log);
        for Key { item_key } in &finished {
            assert_eq!(counts[&(run.clone(), item_key.clone())], 1, "{item_key} ran again");
        }
        for i in 0..ITEMS {
            assert!(counts.contains_key(&(run.clone(), format!("item-{i}"))), "item-{i} never ran");
        }
        assert_eq!(counts[&(run.clone(), "prepare".to_string())], 1, "steps before the kill ran once");
        assert_eq!(counts[&(run.clone(), "finish".to_string())], 1);
        let steps = engine.steps(&run).await.unwrap();
        let fanout: Vec<_> = steps.iter().filter(|s| s.step == "fanout").map(|s| s.status.as_str()).collect();
        assert_eq!(fanout, ["interrupted", "succeeded"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_postgres_run_every_step_exactly_once() {
    const RUNS: usize = 10;
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let log = log_path(&dir);
    let engine = engine(&db).await;
    let _a = WorkerProcess::start(&db.url, &log, 3, 10);
    let _b = WorkerProcess::start(&db.url, &log, 3, 10);
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(submit(&engine).await);
    }
    wait_until("every run to complete", Duration::from_secs(60), async || {
        for run in &runs {
            if engine.run(run).await.unwrap().status != RunStatus::Completed {
                return false;
            }
        }
        true
    })
    .await;
    let counts = executions(&log);
    for run in &runs {
        for what in ["prepare", "item-0", "item-1", "item-2", "finish"] {
            assert_eq!(counts.get(&(run.clone(), what.to_string())), Some(&1), "{run} {what}");
        }
    }
    assert_eq!(counts.len(), RUNS * 5, "nothing ran that was not asked for");
}
