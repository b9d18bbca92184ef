//! Load benchmark of `GET /api/docs/{id}` with auth on, on SQLite and on PostgreSQL, beside a
//! bare axum handler served and measured the same way in the same run.
//!
//! ```text
//! cargo run -p isocrates-bench -- [--seconds 10] [--connections 32] [--backends sqlite,postgres]
//! ```
//!
//! Each target is served on a loopback port in this process; a fixed number of keep-alive
//! HTTP/1.1 connections send requests back to back for the given time after a warm-up, and
//! every latency is kept to compute the percentiles. PostgreSQL comes from
//! `ISOCRATES_TEST_POSTGRES_URL` (default: the local server), in a fresh database.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use isocrates_api::{ApiConfig, AppState};
use isocrates_storage::documents::{Author, AuthorType, NewDocument};
use isocrates_storage::users::NewUser;
use isocrates_testkit::TestDb;
use tokio::net::TcpListener;

/// The documents stored beside the one fetched, so lookups are not on a one-row table.
const BACKGROUND_DOCUMENTS: usize = 2_000;

struct Options {
    seconds: u64,
    connections: usize,
    backends: Vec<String>,
}

fn options() -> anyhow::Result<Options> {
    let mut opts = Options {
        seconds: 10,
        connections: 32,
        backends: vec!["sqlite".into(), "postgres".into()],
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => opts.seconds = value()?.parse().context("--seconds takes a number")?,
            "--connections" => {
                opts.connections = value()?.parse().context("--connections takes a number")?
            }
            "--backends" => opts.backends = value()?.split(',').map(str::to_string).collect(),
            other => bail!("unknown option {other}: use --seconds, --connections or --backends"),
        }
    }
    Ok(opts)
}

/// What one target measured.
struct Measured {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Measured {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        f64::from(self.latencies_us[rank]) / 1000.0
    }

    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

async fn serve(router: Router) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(addr)
}

async fn serve_app(app: isocrates_api::AppService) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let make = axum::ServiceExt::<axum::extract::Request>::into_make_service(app);
        let _ = axum::serve(listener, make).await;
    });
    Ok(addr)
}

/// Drives `connections` keep-alive connections at `path` for `duration`.
async fn load(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let path = path.to_string();
        let token = token.map(str::to_string);
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let mut req = Request::get(path.as_str()).header("host", "bench");
                if let Some(token) = &token {
                    req = req.header("authorization", format!("Bearer {token}"));
                }
                let req = req.body(Empty::<Bytes>::new())?;
                let sent = Instant::now();
                sender.ready().await?;
                let response = sender.send_request(req).await?;
                let ok = response.status().is_success();
                response.into_body().collect().await?;
                latencies.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                if !ok {
                    errors += 1;
                }
            }
            anyhow::Ok((latencies, errors))
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await??;
        latencies_us.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Ok(Measured { requests: latencies_us.len(), errors, elapsed, latencies_us })
}

/// Warms a target up, then measures it.
async fn measure(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    opts: &Options,
) -> anyhow::Result<Measured> {
    load(addr, path, token, opts.connections, Duration::from_secs(2)).await?;
    load(addr, path, token, opts.connections, Duration::from_secs(opts.seconds)).await
}

/// A store with an admin, one document to fetch and others beside it; returns the app's
/// address, the document id and the admin's token.
async fn document_api(db: &TestDb) -> anyhow::Result<(SocketAddr, String, String)> {
    let storage = db.storage.clone();
    let password_hash =
        isocrates_api::auth::hash_password("bench-password").map_err(|e| anyhow::anyhow!("{e}"))?;
    let admin = storage
        .register(
            NewUser {
                email: "bench@example.com".into(),
                display_name: "Bench".into(),
                password_hash,
            },
            false,
        )
        .await?;
    let page = |i: usize| NewDocument {
        title: format!("Page {i}"),
        content: format!("# Page {i}\n\n{}\n\nSee [[Page {}]].", "Some text. ".repeat(150), i + 1),
        path: format!("team-{}/area-{}", i % 10, i % 7),
        repo_url: Some("https://github.com/acme/app".into()),
        repo_name: None,
        doc_type: "guide".into(),
        keywords: vec!["bench".into()],
        description: Some(format!("Page number {i}")),
        author: Author { author_type: AuthorType::Ai, metadata: None },
    };
    let mut target = String::new();
    for i in 0..BACKGROUND_DOCUMENTS {
        let doc = match storage.upsert_document(page(i), |_| true).await? {
            isocrates_storage::documents::Upserted::Created(d)
            | isocrates_storage::documents::Upserted::Updated(d) => d,
        };
        if i == BACKGROUND_DOCUMENTS / 2 {
            target = doc.id;
        }
    }
    let config = ApiConfig {
        auth_enabled: true,
        public_read: false,
        jwt_secret: "bench-secret-bench-secret-bench-secret-01".to_string().into(),
        max_body_bytes: isocrates_api::DEFAULT_MAX_BODY_BYTES,
        webhook_secret: None,
        rate_limit: isocrates_api::RateLimitConfig::default(),
        cors_origins: Vec::new(),
        web: Default::default(),
    };
    let engine = isocrates_engine::Engine::new(storage.db().clone(), Vec::new()).await?;
    let state = AppState::new(storage, engine, config).map_err(anyhow::Error::msg)?;
    let token = state.keys().issue(&admin, 1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let addr = serve_app(isocrates_api::app(state)).await?;
    Ok((addr, target, token))
}

fn row(name: &str, m: &Measured) -> String {
    format!(
        "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} |",
        m.rps(),
        m.percentile(50.0),
        m.percentile(99.0),
        m.percentile(99.9),
        m.requests,
        m.errors
    )
}

#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = options()?;
    println!(
        "{} connections, {} s per target after a 2 s warm-up, {} cores",
        opts.connections,
        opts.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| target | requests/s | p50 ms | p99 ms | p99.9 ms | requests | non-2xx |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");

    let bare =
        Router::new().route("/bare", get(|| async { axum::Json(serde_json::json!({"ok": true})) }));
    let bare_addr = serve(bare).await?;
    let baseline = measure(bare_addr, "/bare", None, &opts).await?;
    println!("{}", row("bare axum handler", &baseline));

    for backend in &opts.backends {
        let db = match backend.as_str() {
            "sqlite" => TestDb::sqlite().await,
            "postgres" => TestDb::postgres().await,
            other => bail!("unknown backend {other}: use sqlite or postgres"),
        };
        let (addr, id, token) = document_api(&db).await?;
        let path = format!("/api/docs/{id}");
        let m = measure(addr, &path, Some(&token), &opts).await?;
        if m.errors > 0 {
            bail!("{backend}: {} of {} requests failed", m.errors, m.requests);
        }
        println!("{}", row(&format!("GET /api/docs/{{id}}, auth on, {backend}"), &m));
    }
    Ok(())
}
