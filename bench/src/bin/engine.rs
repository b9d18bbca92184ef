//! Throughput and pickup latency of the workflow engine, on SQLite and on PostgreSQL, beside
//! the raw rate at which the same database claims and completes rows.
//!
//! ```text
//! cargo run -p isocrates-bench --bin engine -- [--runs 200] [--concurrency 4] [--backends sqlite,postgres]
//! ```
//!
//! - engine: `--runs` runs of a workflow of five no-op steps are queued, then one worker
//!   with `--concurrency` slots runs them all; steps per second is five times the runs over
//!   the time from the worker's start to the last run's end.
//! - raw SQL: as many rows as steps, each claimed (`UPDATE ... RETURNING`) and completed in
//!   its own transaction by `--concurrency` tasks on the same pool.
//! - apalis alone: as many tasks through apalis with a handler that does nothing.
//! - pickup: with the worker idle, the delay from `submit` to the first step's start, over
//!   20 runs submitted one after another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use isocrates_db::{Db, args};
use isocrates_engine::{Engine, NewRun, RunStatus, StepOutcome, Workflow};
use isocrates_testkit::TestDb;
use serde_json::json;
use tokio::sync::{Mutex, oneshot};

struct Options {
    runs: usize,
    concurrency: usize,
    backends: Vec<String>,
}

fn options() -> anyhow::Result<Options> {
    let mut opts =
        Options { runs: 200, concurrency: 4, backends: vec!["sqlite".into(), "postgres".into()] };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => opts.runs = value()?.parse().context("--runs takes a number")?,
            "--concurrency" => {
                opts.concurrency = value()?.parse().context("--concurrency takes a number")?
            }
            "--backends" => opts.backends = value()?.split(',').map(str::to_string).collect(),
            other => bail!("unknown option {other}: use --runs, --concurrency or --backends"),
        }
    }
    Ok(opts)
}

const STEPS: usize = 5;

/// Five no-op steps; the first one reports when it started, for the pickup measurement.
fn noop(started: Arc<Mutex<Vec<(String, Instant)>>>) -> Workflow {
    let mut wf = Workflow::new("noop");
    for i in 0..STEPS {
        let started = started.clone();
        wf = wf.step(format!("step-{i}"), move |ctx| {
            let started = started.clone();
            async move {
                if i == 0 {
                    started.lock().await.push((ctx.run_id.clone(), Instant::now()));
                }
                Ok(StepOutcome::Done(json!({})))
            }
        });
    }
    wf
}

fn new_run() -> NewRun {
    NewRun {
        workflow: "noop".into(),
        input: json!({}),
        dedup_key: None,
        concurrency_key: None,
        trigger: "manual".into(),
    }
}

fn start_worker(engine: &Engine, concurrency: usize) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = engine.worker("bench", concurrency);
    tokio::spawn(async move {
        let _ = worker
            .run(async move {
                let _ = stopped.await;
            })
            .await;
    });
    stop
}

#[derive(sqlx::FromRow)]
struct Count {
    n: i64,
}

/// Completed runs, counted with one cheap query so that watching disturbs the run little.
async fn completed(db: &Db) -> anyhow::Result<usize> {
    let row: Option<Count> = db
        .fetch_optional("SELECT count(*) AS n FROM runs WHERE status = 'completed'", vec![])
        .await?;
    Ok(row.map_or(0, |c| usize::try_from(c.n).unwrap_or_default()))
}

async fn engine_rate(db: &TestDb, opts: &Options) -> anyhow::Result<f64> {
    let engine = Engine::new(Db::connect(&db.url).await?, vec![noop(Arc::default())]).await?;
    let watch = Db::connect(&db.url).await?;
    for _ in 0..opts.runs {
        engine.submit(new_run()).await?;
    }
    let started = Instant::now();
    let stop = start_worker(&engine, opts.concurrency);
    while completed(&watch).await? < opts.runs {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the runs did not finish within 10 minutes");
        }
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    Ok((opts.runs * STEPS) as f64 / elapsed.as_secs_f64())
}

#[derive(sqlx::FromRow)]
struct Claimed {
    id: i64,
}

async fn raw_rate(db: &TestDb, opts: &Options) -> anyhow::Result<f64> {
    let pool = Db::connect(&db.url).await?;
    pool.execute("CREATE TABLE bench_claims (id BIGINT PRIMARY KEY, status TEXT NOT NULL)", vec![])
        .await?;
    let rows = opts.runs * STEPS;
    for id in 0..rows {
        pool.execute(
            "INSERT INTO bench_claims (id, status) VALUES ($1, 'queued')",
            args![id as i64],
        )
        .await?;
    }
    let claim = match pool {
        Db::Sqlite(_) => {
            "UPDATE bench_claims SET status = 'running' WHERE id = \
             (SELECT id FROM bench_claims WHERE status = 'queued' ORDER BY id LIMIT 1) RETURNING id"
        }
        Db::Postgres(_) => {
            "UPDATE bench_claims SET status = 'running' WHERE id = \
             (SELECT id FROM bench_claims WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING id"
        }
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..opts.concurrency {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(Claimed { id }) = pool.fetch_optional::<Claimed>(claim, vec![]).await?
                else {
                    return anyhow::Ok(());
                };
                pool.execute("UPDATE bench_claims SET status = 'done' WHERE id = $1", args![id])
                    .await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

/// The same number of tasks through apalis alone, with a handler that does nothing: the
/// ceiling the queue itself sets.
async fn apalis_rate(db: &TestDb, opts: &Options) -> anyhow::Result<f64> {
    use apalis::prelude::*;
    let pool = Db::connect(&db.url).await?;
    let tasks = opts.runs * STEPS;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = done.clone();
    let handler = move |_n: u64| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<(), std::io::Error>(())
        }
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let stop_signal = async move {
        let _ = stopped.await;
        Ok::<(), std::io::Error>(())
    };
    let started = match &pool {
        Db::Sqlite(p) => {
            let mut m = apalis_sqlite::SqliteStorage::<()>::migrations();
            m.set_ignore_missing(true);
            m.run(p).await?;
            let mut storage = apalis_sqlite::SqliteStorage::<u64>::new(p)
                .with_config(apalis_sqlite::Config::default().queue("bench-raw"));
            for n in 0..tasks as u64 {
                storage.push(n).await?;
            }
            let started = Instant::now();
            let worker = WorkerBuilder::new("bench-raw")
                .backend(storage.poll_with_interval(Duration::from_millis(100)))
                .concurrency(opts.concurrency)
                .build(handler);
            tokio::spawn(worker.run_until(stop_signal));
            started
        }
        Db::Postgres(p) => {
            apalis_postgres::PostgresStorage::setup(p).await?;
            let mut storage = apalis_postgres::PostgresStorage::<u64>::new(p)
                .with_config(apalis_postgres::Config::default().queue("bench-raw"));
            for n in 0..tasks as u64 {
                storage.push(n).await?;
            }
            let started = Instant::now();
            let worker = WorkerBuilder::new("bench-raw")
                .backend(storage.poll_with_interval(Duration::from_millis(100)))
                .concurrency(opts.concurrency)
                .build(handler);
            tokio::spawn(worker.run_until(stop_signal));
            started
        }
    };
    while done.load(std::sync::atomic::Ordering::SeqCst) < tasks {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rate = tasks as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(());
    Ok(rate)
}

async fn pickup(db: &TestDb) -> anyhow::Result<(f64, f64)> {
    let started = Arc::new(Mutex::new(Vec::new()));
    let engine = Engine::new(Db::connect(&db.url).await?, vec![noop(started.clone())]).await?;
    let stop = start_worker(&engine, 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut delays = Vec::new();
    for _ in 0..20 {
        let submitted = Instant::now();
        let id = engine.submit(new_run()).await?.run.id;
        loop {
            let seen = started.lock().await.iter().find(|(r, _)| r == &id).map(|(_, t)| *t);
            if let Some(at) = seen {
                delays.push(at.duration_since(submitted).as_secs_f64() * 1000.0);
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Let the run finish so the next pickup finds the worker idle.
        while engine.run(&id).await?.status != RunStatus::Completed {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let _ = stop.send(());
    delays.sort_by(f64::total_cmp);
    Ok((delays[delays.len() / 2], delays[delays.len() - 1]))
}

#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = options()?;
    println!(
        "{} runs of {STEPS} no-op steps, concurrency {}, {} cores",
        opts.runs,
        opts.concurrency,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "| backend | engine steps/s | apalis alone tasks/s | raw claim+complete/s | engine/raw \
         | pickup p50 ms | pickup max ms |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for backend in &opts.backends {
        let fresh = || async {
            match backend.as_str() {
                "sqlite" => Ok(TestDb::sqlite().await),
                "postgres" => Ok(TestDb::postgres().await),
                other => bail!("unknown backend {other}: use sqlite or postgres"),
            }
        };
        let engine = engine_rate(&fresh().await?, &opts).await?;
        let raw = raw_rate(&fresh().await?, &opts).await?;
        let queue = apalis_rate(&fresh().await?, &opts).await?;
        let (p50, max) = pickup(&fresh().await?).await?;
        println!(
            "| {backend} | {engine:.0} | {queue:.0} | {raw:.0} | {:.2} | {p50:.1} | {max:.1} |",
            engine / raw
        );
    }
    Ok(())
}
