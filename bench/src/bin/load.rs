//! Many clients at once: 500 keep-alive connections for 60 s against the whole API with
//! auth and the rate limit on, on SQLite and on PostgreSQL. Each connection is a client of
//! its own (its `X-Forwarded-For`, from a trusted proxy), except one in ten, which together
//! are one noisy client past its limit; all mix reads, searches, lists, edits and new
//! documents. The only refusal allowed is 429; any other failure (a 5xx,
//! SQLite's "database is locked", a dropped connection) is counted and fails the run.
//!
//! ```text
//! cargo run -p isocrates-bench --bin load -- [--seconds 60] [--connections 500] [--per-minute 600] [--backends sqlite,postgres]
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use isocrates_api::{ApiConfig, AppState, RateLimitConfig};
use isocrates_storage::documents::{Author, AuthorType, NewDocument, Upserted};
use isocrates_storage::users::NewUser;
use isocrates_testkit::TestDb;
use tokio::net::TcpListener;

/// Documents in the store before the load starts.
const DOCUMENTS: usize = 2_000;

struct Options {
    seconds: u64,
    connections: usize,
    per_minute: u32,
    backends: Vec<String>,
}

fn options() -> anyhow::Result<Options> {
    let mut opts = Options {
        seconds: 60,
        connections: 500,
        per_minute: 600,
        backends: vec!["sqlite".into(), "postgres".into()],
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => opts.seconds = value()?.parse().context("--seconds")?,
            "--connections" => opts.connections = value()?.parse().context("--connections")?,
            "--per-minute" => opts.per_minute = value()?.parse().context("--per-minute")?,
            "--backends" => opts.backends = value()?.split(',').map(str::to_string).collect(),
            other => bail!(
                "unknown option {other}: use --seconds, --connections, --per-minute or --backends"
            ),
        }
    }
    Ok(opts)
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    /// Of the successful requests alone.
    ok_latencies_us: Vec<u32>,
    ok: usize,
    limited: usize,
    failed: usize,
    locked: usize,
    first_failure: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.ok_latencies_us.extend(other.ok_latencies_us);
        self.ok += other.ok;
        self.limited += other.limited;
        self.failed += other.failed;
        self.locked += other.locked;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }
}

/// The `p`th percentile of sorted latencies, in milliseconds.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank]) / 1000.0
}

/// A small deterministic generator per connection.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

fn page(i: usize) -> NewDocument {
    NewDocument {
        title: format!("Page {i}"),
        content: format!("# Page {i}\n\n{}\n\nSee [[Page {}]].", "Some text. ".repeat(100), i + 1),
        path: format!("team-{}/area-{}", i % 10, i % 7),
        repo_url: None,
        repo_name: None,
        doc_type: "guide".into(),
        keywords: vec!["bench".into()],
        description: Some(format!("Page number {i}")),
        author: Author { author_type: AuthorType::Human, metadata: None },
    }
}

/// The app over `db` with auth and the rate limit on, trusting loopback as its proxy;
/// answers its address, an admin token and the document ids.
async fn serve(db: &TestDb, per_minute: u32) -> anyhow::Result<(SocketAddr, String, Vec<String>)> {
    let storage = db.storage.clone();
    let password_hash =
        isocrates_api::auth::hash_password("bench-password").map_err(|e| anyhow::anyhow!("{e}"))?;
    let admin = storage
        .register(
            NewUser {
                email: "load@example.com".into(),
                display_name: "Load".into(),
                password_hash,
            },
            false,
        )
        .await?;
    let mut ids = Vec::with_capacity(DOCUMENTS);
    for i in 0..DOCUMENTS {
        let (Upserted::Created(d) | Upserted::Updated(d)) =
            storage.upsert_document(page(i), |_| true).await?;
        ids.push(d.id);
    }
    let config = ApiConfig {
        auth_enabled: true,
        public_read: false,
        jwt_secret: "load-secret-load-secret-load-secret-0123".to_string().into(),
        max_body_bytes: isocrates_api::DEFAULT_MAX_BODY_BYTES,
        webhook_secret: None,
        rate_limit: RateLimitConfig {
            per_minute,
            trusted_proxies: isocrates_api::rate_limit::parse_trusted_proxies("127.0.0.1")
                .map_err(anyhow::Error::msg)?,
        },
        cors_origins: Vec::new(),
        web: Default::default(),
    };
    let engine = isocrates_engine::Engine::new(storage.db().clone(), Vec::new()).await?;
    let state = AppState::new(storage, engine, config).map_err(anyhow::Error::msg)?;
    let token = state.keys().issue(&admin, 2).map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        SocketAddr,
    >(isocrates_api::app(state));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, token, ids))
}

/// One request of the mix: mostly reads, then searches, lists, edits and new pages.
fn next_request(
    rng: &mut Rng,
    n: usize,
    ids: &[String],
    client: usize,
) -> (hyper::Method, String, Option<String>) {
    let id = &ids[rng.below(ids.len())];
    match rng.below(100) {
        0..=59 => (hyper::Method::GET, format!("/api/docs/{id}"), None),
        60..=74 => {
            let words = ["page", "text", "number", "some", "area"];
            (
                hyper::Method::GET,
                format!("/api/docs/search/?q={}&limit=10", words[rng.below(5)]),
                None,
            )
        }
        75..=84 => (hyper::Method::GET, "/api/docs?limit=20".to_string(), None),
        85..=94 => {
            let body = serde_json::json!({"content": format!("# Edited\n\nBy client {client}, edit {n}.")});
            (hyper::Method::PUT, format!("/api/docs/{id}"), Some(body.to_string()))
        }
        _ => {
            let body = serde_json::json!({
                "title": format!("Load page {client}-{n}"),
                "path": format!("load/client-{}", client % 20),
                "content": "A page written under load. See [[Page 1]].",
            });
            (hyper::Method::POST, "/api/docs".to_string(), Some(body.to_string()))
        }
    }
}

async fn client(
    addr: SocketAddr,
    token: Arc<String>,
    ids: Arc<Vec<String>>,
    index: usize,
    deadline: Instant,
) -> anyhow::Result<Tally> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    // One connection in ten belongs to one noisy client, which the limit must slow down.
    let forwarded = if index.is_multiple_of(10) {
        "10.255.255.255".to_string()
    } else {
        format!("10.{}.{}.{}", index / 65_536 % 256, index / 256 % 256, index % 256)
    };
    let mut rng = Rng(index as u64 + 1);
    let mut tally = Tally::default();
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let (method, path, body) = next_request(&mut rng, n, &ids, index);
        let mut req = Request::builder()
            .method(method)
            .uri(path.as_str())
            .header("host", "load")
            .header("authorization", format!("Bearer {token}"))
            .header("x-forwarded-for", forwarded.as_str());
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let sent = Instant::now();
        if sender.ready().await.is_err() {
            tally.failed += 1;
            tally.first_failure.get_or_insert_with(|| "the connection closed".into());
            break;
        }
        let response = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                tally.failed += 1;
                tally.first_failure.get_or_insert_with(|| format!("{path}: {e}"));
                break;
            }
        };
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let latency = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        tally.latencies_us.push(latency);
        if status.is_success() {
            tally.ok += 1;
            tally.ok_latencies_us.push(latency);
        } else if status == hyper::StatusCode::TOO_MANY_REQUESTS {
            tally.limited += 1;
        } else {
            tally.failed += 1;
            let text = String::from_utf8_lossy(&bytes);
            if text.contains("database is locked") {
                tally.locked += 1;
            }
            tally.first_failure.get_or_insert_with(|| format!("{path}: {status} {text}"));
        }
    }
    Ok(tally)
}

// A benchmark's report is its output.
#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = options()?;
    println!(
        "{} connections for {} s, {} requests per minute per client, {} cores",
        opts.connections,
        opts.seconds,
        opts.per_minute,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "| backend | requests | requests/s | 2xx | 429 | other failures | \"database is locked\" | 2xx p50 ms | 2xx p99 ms | all p99 ms | max ms |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut broken = Vec::new();
    for backend in &opts.backends {
        let db = match backend.as_str() {
            "sqlite" => TestDb::sqlite().await,
            "postgres" => TestDb::postgres().await,
            other => bail!("unknown backend {other}: use sqlite or postgres"),
        };
        let (addr, token, ids) = serve(&db, opts.per_minute).await?;
        let (token, ids) = (Arc::new(token), Arc::new(ids));
        let started = Instant::now();
        let deadline = started + Duration::from_secs(opts.seconds);
        let tasks: Vec<_> = (0..opts.connections)
            .map(|i| tokio::spawn(client(addr, token.clone(), ids.clone(), i, deadline)))
            .collect();
        let mut tally = Tally::default();
        for task in tasks {
            match task.await? {
                Ok(t) => tally.merge(t),
                Err(e) => {
                    tally.failed += 1;
                    tally.first_failure.get_or_insert_with(|| e.to_string());
                }
            }
        }
        let elapsed = started.elapsed();
        tally.latencies_us.sort_unstable();
        tally.ok_latencies_us.sort_unstable();
        let requests = tally.latencies_us.len();
        println!(
            "| {backend} | {requests} | {:.0} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            requests as f64 / elapsed.as_secs_f64(),
            tally.ok,
            tally.limited,
            tally.failed,
            tally.locked,
            percentile(&tally.ok_latencies_us, 50.0),
            percentile(&tally.ok_latencies_us, 99.0),
            percentile(&tally.latencies_us, 99.0),
            percentile(&tally.latencies_us, 100.0)
        );
        if tally.failed > 0 {
            broken.push(format!(
                "{backend}: {} failures, the first: {}",
                tally.failed,
                tally.first_failure.unwrap_or_default()
            ));
        }
    }
    if !broken.is_empty() {
        bail!("{}", broken.join("; "));
    }
    Ok(())
}
