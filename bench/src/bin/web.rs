//! How long the web page's pages take on the server with a 1,000-document tree: p50, p99
//! and the slowest of each page, handled in-process (the whole router: session, the API
//! calls the page makes, the template), on SQLite and PostgreSQL.
//!
//! ```text
//! cargo run -p isocrates-bench --bin web -- [--documents 1000] [--rounds 200] [--backends sqlite,postgres]
//! ```
//!
//! The documents sit in 10 top folders of 10 subfolders each, with wikilinks between them,
//! a table and a code block. Every page's sidebar holds the whole tree, so each
//! page renders all 1,000 tree nodes. The visitor is the admin (who sees everything).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use isocrates_testkit::{TestApp, TestDb};
use serde_json::json;

struct Options {
    documents: usize,
    rounds: usize,
    backends: Vec<String>,
}

fn options() -> anyhow::Result<Options> {
    let mut opts = Options {
        documents: 1_000,
        rounds: 200,
        backends: vec!["sqlite".into(), "postgres".into()],
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--documents" => opts.documents = value()?.parse().context("--documents")?,
            "--rounds" => opts.rounds = value()?.parse().context("--rounds")?,
            "--backends" => opts.backends = value()?.split(',').map(str::to_string).collect(),
            other => bail!(
                "unknown option {other}: use --documents N, --rounds N, --backends sqlite,postgres"
            ),
        }
    }
    Ok(opts)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn seed(app: &TestApp, token: &str, documents: usize) -> anyhow::Result<String> {
    let mut first = String::new();
    for i in 0..documents {
        let folder = format!("area-{}/part-{}", i % 10, (i / 10) % 10);
        let content = format!(
            "# Page {i}\n\nThis page describes component {i}. It calls [[Page {}]] and [[Page {}]].\n\n\
             | field | meaning |\n|---|---|\n| id | the key |\n| name | shown |\n\n\
             ```rust\nfn component_{i}() -> u32 {{ {i} }}\n```\n\nMore prose about deployment and tokens.\n",
            (i + 1) % documents,
            (i + 7) % documents
        );
        let body = json!({"title": format!("Page {i}"), "path": folder, "content": content,
            "description": format!("Component {i}"), "keywords": ["component"], "author_type": "ai"});
        let made = app.post("/api/docs", Some(token), body).await;
        if !made.status.is_success() {
            bail!("seeding failed: {:?}", made.body);
        }
        if i == 0 {
            first = made.body["id"].as_str().unwrap_or_default().to_string();
        }
    }
    // A second version of the first page, so its history and diff have two.
    app.put(
        &format!("/api/docs/{first}"),
        Some(token),
        json!({"content": "# Page 0\n\nRewritten.\n", "author_type": "human"}),
    )
    .await;
    Ok(first)
}

/// Seeds one backend and prints the table of its pages (a benchmark's report is its
/// output).
#[allow(clippy::print_stdout)]
async fn run(backend: &str, opts: &Options) -> anyhow::Result<()> {
    let db = match backend {
        "sqlite" => TestDb::sqlite().await,
        "postgres" => TestDb::postgres().await,
        other => bail!("unknown backend {other}: use sqlite or postgres"),
    };
    let app = TestApp::new(db, true).await;
    let token = app.admin_token().await;
    let started = Instant::now();
    let first = seed(&app, &token, opts.documents).await?;
    println!(
        "\n{backend}: {} documents seeded in {:.1} s",
        opts.documents,
        started.elapsed().as_secs_f64()
    );
    let pages = [
        ("GET /api/tree, for comparison", "/api/tree".to_string()),
        ("home", "/".to_string()),
        ("document", format!("/d/{first}")),
        ("edit", format!("/d/{first}/edit")),
        ("history", format!("/d/{first}/history")),
        ("diff", format!("/d/{first}/diff")),
        ("search", "/search?q=deployment".to_string()),
        ("search, as typed", "/search?q=deploy&partial=1".to_string()),
        ("jobs", "/jobs".to_string()),
        ("trash", "/trash".to_string()),
        ("admin", "/admin".to_string()),
    ];
    println!("| page | bytes | p50 | p99 | slowest |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, path) in pages {
        let mut times = Vec::with_capacity(opts.rounds);
        let mut bytes = 0;
        for _ in 0..opts.rounds {
            let req = Request::builder()
                .uri(&path)
                .header(header::ACCEPT, "text/html")
                .header(header::COOKIE, format!("isocrates_session={token}"))
                .body(Body::empty())?;
            let started = Instant::now();
            let answer = app.send(req).await;
            times.push(started.elapsed());
            if answer.status != StatusCode::OK {
                bail!("{path} answered {}: {}", answer.status, answer.text);
            }
            bytes = answer.text.len();
        }
        times.sort();
        println!(
            "| {name} | {bytes} | {} | {} | {} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().unwrap_or(&Duration::ZERO))
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = options()?;
    for backend in &opts.backends {
        run(backend, &opts).await?;
    }
    Ok(())
}
