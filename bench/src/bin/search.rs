//! Full-text search latency over a large wiki, on SQLite (FTS5) and PostgreSQL (`tsvector`
//! with a GIN index): p50 and p99 of `Storage::search`, the query behind
//! `GET /api/docs/search/`, with every grant and filter applied inside the query.
//!
//! ```text
//! cargo run --release -p isocrates-bench --bin search -- [--documents 100000] [--queries 400] [--backends sqlite,postgres]
//! ```
//!
//! The documents are generated from a fixed vocabulary with a skewed word frequency (a
//! few common words, many rare ones), in 40 top folders, and inserted in bulk. Queries are
//! one or two words, drawn from the common, middling and rare ranges alike, asked once as
//! an admin (no grant filter) and once as a reader of four of the folders.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use isocrates_db::{Arg, Timestamp};
use isocrates_storage::documents::ReadScope;
use isocrates_storage::search::SearchQuery;
use isocrates_testkit::TestDb;

/// Rows per bulk insert.
const BATCH: usize = 400;
/// Distinct words in the generated documents.
const VOCABULARY: usize = 5_000;
/// Top folders.
const FOLDERS: usize = 40;

struct Options {
    documents: usize,
    queries: usize,
    backends: Vec<String>,
}

fn options() -> anyhow::Result<Options> {
    let mut opts = Options {
        documents: 100_000,
        queries: 400,
        backends: vec!["sqlite".into(), "postgres".into()],
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--documents" => opts.documents = value()?.parse().context("--documents")?,
            "--queries" => opts.queries = value()?.parse().context("--queries")?,
            "--backends" => opts.backends = value()?.split(',').map(str::to_string).collect(),
            other => bail!(
                "unknown option {other}: use --documents N, --queries N, --backends sqlite,postgres"
            ),
        }
    }
    Ok(opts)
}

/// A small deterministic generator, so every run searches the same wiki.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// A word index skewed to the small ones: about a third of draws fall in the first 1%.
    fn word(&mut self) -> usize {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((VOCABULARY as f64).powf(u) as usize).saturating_sub(1).min(VOCABULARY - 1)
    }
}

/// The vocabulary's word `i`: pronounceable, distinct, no stop words.
fn word(i: usize) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "zu", "gan", "del", "tor", "mex",
        "qui", "bro",
    ];
    let mut n = i + 16;
    let mut out = String::new();
    while n > 0 {
        out.push_str(SYLLABLES[n % 16]);
        n /= 16;
    }
    out
}

fn sentence(rng: &mut Lcg, words: usize) -> String {
    (0..words).map(|_| word(rng.word())).collect::<Vec<_>>().join(" ")
}

async fn fill(db: &TestDb, documents: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut rng = Lcg(42);
    let now = Timestamp::now();
    let mut made = 0;
    while made < documents {
        let rows = BATCH.min(documents - made);
        let mut sql = String::from(
            "INSERT INTO documents (id, repo_url, repo_name, path, title, title_key, repo_key, content, \
             doc_type, keywords, description, created_at, updated_at, generation_count, version, \
             deleted_at, is_indexed) VALUES ",
        );
        let mut args: Vec<Arg> = Vec::with_capacity(rows * 9);
        for r in 0..rows {
            let n = made + r;
            let folder = format!("team-{}", n % FOLDERS);
            let path = format!("{folder}/area-{}", (n / FOLDERS) % 25);
            let title = format!("{} {n}", sentence(&mut rng, 3));
            let content = (0..6).map(|_| sentence(&mut rng, 40)).collect::<Vec<_>>().join(".\n\n");
            let description = sentence(&mut rng, 12);
            let base = args.len();
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, NULL, ${}, ${}, ${}, ${}, ${}, ${}, 'guide', '[]', ${}, ${}, ${}, 1, 1, NULL, FALSE)",
                base + 1, base + 2, base + 3, base + 4, base + 5, base + 2, base + 6, base + 7, base + 8, base + 8
            ));
            args.push(Arg::from(format!("doc-bench-{n}")));
            args.push(Arg::from(folder.clone()));
            args.push(Arg::from(path));
            args.push(Arg::from(title.clone()));
            args.push(Arg::from(title.to_lowercase()));
            args.push(Arg::from(content));
            args.push(Arg::from(description));
            args.push(Arg::from(now));
        }
        db.storage.db().execute(sql, args).await.context("inserting documents")?;
        made += rows;
    }
    Ok(started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn millis(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

// A benchmark's report is its output.
#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = options()?;
    println!(
        "| backend | documents | insert | scope | queries | p50 ms | p99 ms | max ms | hits/query |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for backend in &opts.backends {
        let db = match backend.as_str() {
            "sqlite" => TestDb::sqlite().await,
            "postgres" => TestDb::postgres().await,
            other => bail!("unknown backend {other}: use sqlite or postgres"),
        };
        let filled = fill(&db, opts.documents).await?;
        if backend == "postgres" {
            db.storage.db().execute("ANALYZE documents", Vec::new()).await?;
        }
        let mut rng = Lcg(7);
        let texts: Vec<String> = (0..opts.queries)
            .map(|i| {
                // Common, middling and rare words in turn; every other query has two.
                let pick = |rng: &mut Lcg| match i % 3 {
                    0 => word((rng.next() % 20) as usize),
                    1 => word(20 + (rng.next() % 400) as usize),
                    _ => word(420 + (rng.next() % (VOCABULARY as u64 - 420)) as usize),
                };
                if i % 2 == 0 {
                    pick(&mut rng)
                } else {
                    format!("{} {}", pick(&mut rng), pick(&mut rng))
                }
            })
            .collect();
        let reader = ReadScope::Under((0..4).map(|f| format!("team-{f}")).collect());
        for (name, scope) in [("all", ReadScope::All), ("4 of 40 folders", reader)] {
            let mut latencies = Vec::with_capacity(texts.len());
            let mut hits = 0usize;
            for text in &texts {
                let query = SearchQuery {
                    text: text.clone(),
                    limit: 20,
                    path_prefix: None,
                    keywords: Vec::new(),
                    date_from: None,
                    date_to: None,
                    scope: scope.clone(),
                };
                let started = Instant::now();
                hits += db.storage.search(&query).await?.len();
                latencies.push(started.elapsed());
            }
            latencies.sort();
            println!(
                "| {backend} | {} | {:.1} s | {name} | {} | {} | {} | {} | {:.1} |",
                opts.documents,
                filled.as_secs_f64(),
                texts.len(),
                millis(percentile(&latencies, 0.5)),
                millis(percentile(&latencies, 0.99)),
                millis(*latencies.last().unwrap()),
                hits as f64 / texts.len() as f64
            );
        }
    }
    Ok(())
}
