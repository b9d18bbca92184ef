//! Latency of finding similar documents over a large wiki: `Storage::similar`, the query
//! behind `similar/`, `{id}/similar` and the vector half of hybrid search, with the read
//! scope applied. Three ways: SQLite and PostgreSQL without pgvector compare every vector
//! of the scope in IsoCrates; PostgreSQL with pgvector asks its HNSW index, and its answers
//! are checked against the exact neighbours (recall at 10).
//!
//! ```text
//! cargo run -p isocrates-bench --bin similar -- [--documents 100000] [--dims 384] [--queries 100] [--backends sqlite,postgres-plain,pgvector]
//! ```
//!
//! Vectors are drawn around 500 random centres, as the embeddings of a wiki's pages cluster
//! by topic; queries are stored vectors moved a little. `postgres-plain` is a database owned
//! by a role that may not enable pgvector; `pgvector` gains it after the vectors are stored,
//! as a database does when the extension is installed later, so its set-up time includes
//! copying the vectors into the column and building the index.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use isocrates_db::{Arg, Timestamp};
use isocrates_storage::Storage;
use isocrates_storage::documents::ReadScope;
use isocrates_testkit::TestDb;

/// Rows per bulk insert.
const BATCH: usize = 400;
/// Top folders.
const FOLDERS: usize = 40;
/// Topic centres the vectors cluster around.
const CENTRES: usize = 500;
const MODEL: &str = "bench-embedder";

struct Options {
    documents: usize,
    dims: usize,
    queries: usize,
    backends: Vec<String>,
}

fn options() -> anyhow::Result<Options> {
    let mut opts = Options {
        documents: 100_000,
        dims: 384,
        queries: 100,
        backends: vec!["sqlite".into(), "postgres-plain".into(), "pgvector".into()],
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--documents" => opts.documents = value()?.parse().context("--documents")?,
            "--dims" => opts.dims = value()?.parse().context("--dims")?,
            "--queries" => opts.queries = value()?.parse().context("--queries")?,
            "--backends" => opts.backends = value()?.split(',').map(str::to_string).collect(),
            other => bail!(
                "unknown option {other}: use --documents N, --dims N, --queries N, \
                 --backends sqlite,postgres-plain,pgvector"
            ),
        }
    }
    Ok(opts)
}

/// A small deterministic generator, so every run compares the same vectors.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() % 2_000_000) as f32 / 1_000_000.0 - 1.0
    }

    fn vector(&mut self, dims: usize) -> Vec<f32> {
        (0..dims).map(|_| self.unit()).collect()
    }
}

fn nudged(rng: &mut Rng, v: &[f32], by: f32) -> Vec<f32> {
    v.iter().map(|x| x + by * rng.unit()).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn folder(n: usize) -> String {
    format!("team-{}", n % FOLDERS)
}

/// The wiki's vectors, the same on every backend.
fn wiki(documents: usize, dims: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng(42);
    let centres: Vec<Vec<f32>> = (0..CENTRES).map(|_| rng.vector(dims)).collect();
    (0..documents)
        .map(|_| {
            let centre = &centres[(rng.next() as usize) % CENTRES];
            nudged(&mut rng, centre, 0.6)
        })
        .collect()
}

/// Inserts the documents and their vectors in bulk (bytes only, as stored without pgvector).
async fn fill(storage: &Storage, vectors: &[Vec<f32>]) -> anyhow::Result<()> {
    let now = Timestamp::now();
    for (start, chunk) in vectors.chunks(BATCH).enumerate().map(|(i, c)| (i * BATCH, c)) {
        let mut docs = String::from(
            "INSERT INTO documents (id, repo_url, repo_name, path, title, title_key, repo_key, \
             content, doc_type, keywords, description, created_at, updated_at, \
             generation_count, version, deleted_at, is_indexed) VALUES ",
        );
        let mut embeddings = String::from(
            "INSERT INTO embeddings (doc_id, model, dims, vector, version, updated_at) VALUES ",
        );
        let (mut dargs, mut eargs): (Vec<Arg>, Vec<Arg>) = (Vec::new(), Vec::new());
        for (r, vector) in chunk.iter().enumerate() {
            let n = start + r;
            let sep = if r > 0 { ", " } else { "" };
            let b = dargs.len();
            docs.push_str(&format!(
                "{sep}(${}, NULL, ${}, ${}, ${}, ${}, ${}, 'body', 'guide', '[]', NULL, ${}, ${}, \
                 1, 1, NULL, TRUE)",
                b + 1,
                b + 2,
                b + 2,
                b + 3,
                b + 4,
                b + 2,
                b + 5,
                b + 5
            ));
            let id = format!("doc-bench-{n}");
            dargs.push(Arg::from(id.clone()));
            dargs.push(Arg::from(folder(n)));
            dargs.push(Arg::from(format!("Page {n}")));
            dargs.push(Arg::from(format!("page {n}")));
            dargs.push(Arg::from(now));
            let b = eargs.len();
            embeddings.push_str(&format!(
                "{sep}(${}, ${}, ${}, ${}, 1, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            ));
            eargs.push(Arg::from(id));
            eargs.push(Arg::from(MODEL));
            eargs.push(Arg::from(vector.len() as i64));
            eargs.push(Arg::Bytes(vector.iter().flat_map(|f| f.to_le_bytes()).collect()));
            eargs.push(Arg::from(now));
        }
        storage.db().execute(docs, dargs).await.context("inserting documents")?;
        storage.db().execute(embeddings, eargs).await.context("inserting vectors")?;
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn millis(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// The ids of the ten stored vectors nearest `query` within the folders `readable` allows.
fn exact_top10(
    vectors: &[Vec<f32>],
    query: &[f32],
    readable: impl Fn(usize) -> bool,
) -> Vec<String> {
    let mut scored: Vec<(f32, usize)> = vectors
        .iter()
        .enumerate()
        .filter(|(n, _)| readable(*n))
        .map(|(n, v)| (cosine(query, v), n))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.iter().take(10).map(|(_, n)| format!("doc-bench-{n}")).collect()
}

// A benchmark's report is its output.
#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = options()?;
    let vectors = wiki(opts.documents, opts.dims);
    let mut rng = Rng(7);
    let queries: Vec<Vec<f32>> = (0..opts.queries)
        .map(|_| {
            let of = &vectors[(rng.next() as usize) % vectors.len()];
            nudged(&mut rng, of, 0.2)
        })
        .collect();
    let reader_folders = 4;
    let reader = ReadScope::Under((0..reader_folders).map(|f| format!("team-{f}")).collect());
    let truth: Vec<[Vec<String>; 2]> = queries
        .iter()
        .map(|q| {
            [
                exact_top10(&vectors, q, |_| true),
                exact_top10(&vectors, q, |n| n % FOLDERS < reader_folders),
            ]
        })
        .collect();

    println!(
        "| way | documents | dims | set-up | scope | queries | p50 ms | p99 ms | max ms | recall@10 |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for backend in &opts.backends {
        let (db, storage, setup) = match backend.as_str() {
            "sqlite" | "postgres-plain" => {
                let db = if backend == "sqlite" {
                    TestDb::sqlite().await
                } else {
                    TestDb::postgres_as_owner().await
                };
                if db.storage.uses_pgvector().await? {
                    bail!("{backend} must rank without pgvector");
                }
                fill(&db.storage, &vectors).await?;
                let storage = db.storage.clone();
                (db, storage, Duration::ZERO)
            }
            "pgvector" => {
                let db = TestDb::postgres_as_owner().await;
                fill(&db.storage, &vectors).await?;
                let url = db.superuser_url().context("a PostgreSQL database")?;
                // Building the index of 100,000 vectors wants more than the default 64 MB.
                let name = url.rsplit('/').next().unwrap_or_default().to_string();
                db.storage
                    .db()
                    .execute(
                        format!("ALTER DATABASE {name} SET maintenance_work_mem = '1GB'"),
                        Vec::new(),
                    )
                    .await?;
                let started = Instant::now();
                let storage = Storage::open(&url).await?;
                let setup = started.elapsed();
                if !storage.uses_pgvector().await? {
                    bail!(
                        "pgvector could not be enabled: is it installed (scripts/install-pgvector)?"
                    );
                }
                storage.db().execute("ANALYZE", Vec::new()).await?;
                (db, storage, setup)
            }
            other => bail!("unknown backend {other}: use sqlite, postgres-plain or pgvector"),
        };
        for (s, (name, scope)) in
            [("all", ReadScope::All), ("4 of 40 folders", reader.clone())].into_iter().enumerate()
        {
            let mut latencies = Vec::with_capacity(queries.len());
            let mut found_true = 0usize;
            for (q, query) in queries.iter().enumerate() {
                let started = Instant::now();
                let found = storage.similar(query, MODEL, &scope, None, 10).await?;
                latencies.push(started.elapsed());
                found_true += found.iter().filter(|f| truth[q][s].contains(&f.id)).count();
            }
            latencies.sort();
            println!(
                "| {backend} | {} | {} | {:.1} s | {name} | {} | {} | {} | {} | {:.3} |",
                opts.documents,
                opts.dims,
                setup.as_secs_f64(),
                queries.len(),
                millis(percentile(&latencies, 0.5)),
                millis(percentile(&latencies, 0.99)),
                millis(*latencies.last().unwrap()),
                found_true as f64 / (queries.len() * 10) as f64
            );
        }
        drop(storage);
        drop(db);
    }
    Ok(())
}
