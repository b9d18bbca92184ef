//! A worker process for the engine's own tests of what only real processes show: a worker
//! killed with `kill -9` in the middle of a step, and several workers sharing one database.
//! It runs the `testbed` workflow until killed, and appends a line to `TESTBED_LOG` each time
//! a step or an item actually executes, so a test can count executions across processes.
//!
//! ```text
//! DATABASE_URL=... TESTBED_LOG=/tmp/log TESTBED_ITEMS=12 TESTBED_ITEM_MS=150 isocrates-engine-testbed
//! ```

use std::io::Write;
use std::time::Duration;

use isocrates_db::Db;
use isocrates_engine::core::RetryPolicy;
use isocrates_engine::{Engine, StepOutcome, Workflow};
use serde_json::json;

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Appends one line to the execution log; the file is opened per line so that a killed
/// process never leaves a partial buffer behind, and the line goes out in one write, so
/// that two processes appending at once cannot interleave their lines (`writeln!` on a
/// file may write the text and the newline separately).
fn record(path: &str, line: &str) {
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}

/// The workflow the tests submit: a step, a step that fans out over items, a step.
fn testbed(log: String, items: usize, item_ms: u64) -> Workflow {
    let policy = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(50),
        ..RetryPolicy::default()
    };
    let timeout = Duration::from_secs(120);
    let (l1, l2, l3) = (log.clone(), log.clone(), log);
    Workflow::new("testbed")
        .step_with("prepare", policy, timeout, move |ctx| {
            let log = l1.clone();
            async move {
                record(&log, &format!("{} prepare", ctx.run_id));
                Ok(StepOutcome::Done(json!({"items": items})))
            }
        })
        .step_with("fanout", policy, timeout, move |ctx| {
            let log = l2.clone();
            async move {
                for i in 0..items {
                    let key = format!("item-{i}");
                    let (log, run_id, line_key) = (log.clone(), ctx.run_id.clone(), key.clone());
                    ctx.item(&key, || async move {
                        tokio::time::sleep(Duration::from_millis(item_ms)).await;
                        record(&log, &format!("{run_id} {line_key}"));
                        Ok(json!(i))
                    })
                    .await?;
                }
                Ok(StepOutcome::Done(json!({"summary": format!("{items} items")})))
            }
        })
        .step_with("finish", policy, timeout, move |ctx| {
            let log = l3.clone();
            async move {
                record(&log, &format!("{} finish", ctx.run_id));
                Ok(StepOutcome::Done(json!({})))
            }
        })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url =
        std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL must name the test database")?;
    let log = var("TESTBED_LOG", "testbed.log");
    let items: usize = var("TESTBED_ITEMS", "12").parse()?;
    let item_ms: u64 = var("TESTBED_ITEM_MS", "100").parse()?;
    let concurrency: usize = var("TESTBED_CONCURRENCY", "2").parse()?;
    let db = Db::connect(&url).await?;
    let engine = Engine::new(db, vec![testbed(log, items, item_ms)]).await?;
    let worker = engine.worker("testbed", concurrency).heartbeat(Duration::from_secs(1));
    worker.run(std::future::pending()).await?;
    Ok(())
}
