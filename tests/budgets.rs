//! Estimates and budgets against a counting model server: a local server that speaks
//! OpenAI's chat completions and reports the tokens of each call as OpenAI's `cl100k_base`
//! tokenizer counts them, so the estimate (which has no tokenizer) is checked against real
//! counts. Its planner plans as the planner prompt asks (an overview, a getting-started
//! page, an architecture page and one page per module), and its writer answers each page
//! with a page of typical length built from the page's source excerpts.
//!
//! The runs go through the API with auth on and a worker, on both backends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use isocrates_engine::Engine;
use isocrates_testkit::{
    TestApp, TestDb, chat_completion, git, model_docgen, on_both_backends, serve_on_loopback, shop,
    write_file, written_page_title,
};
use isocrates_workflows::pipeline::budget::Budgets;
use isocrates_workflows::pipeline::{self, Docgen};
use serde_json::{Value, json};

/// OpenAI's tokenizer of the GPT-4 family.
fn bpe() -> &'static tiktoken_rs::CoreBPE {
    static BPE: OnceLock<tiktoken_rs::CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::cl100k_base().expect("the vocabulary ships with the crate"))
}

fn count(text: &str) -> u64 {
    bpe().encode_ordinary(text).len() as u64
}

/// One call the server answered.
#[derive(Debug, Clone)]
struct Seen {
    /// The page written, or `None` for the planner.
    page: Option<String>,
    tokens_in: u64,
    tokens_out: u64,
}

impl Seen {
    /// Its cost at the test model's prices: 1 and 2 dollars per million tokens.
    fn cost(&self) -> f64 {
        (self.tokens_in as f64 + 2.0 * self.tokens_out as f64) / 1_000_000.0
    }
}

#[derive(Default)]
struct Counting {
    calls: Mutex<Vec<Seen>>,
    /// Writer calls being answered now, and the most there were at once.
    writing: AtomicUsize,
    most_at_once: AtomicUsize,
}

impl Counting {
    fn seen(&self) -> Vec<Seen> {
        self.calls.lock().unwrap().clone()
    }

    /// The pages written, in the order their calls came.
    fn pages(&self) -> Vec<String> {
        self.seen().into_iter().filter_map(|s| s.page).collect()
    }
}

async fn counting_server() -> (String, Arc<Counting>) {
    let counting = Arc::new(Counting::default());
    let seen = counting.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |body: axum::Json<Value>| {
            let counting = seen.clone();
            async move {
                let system = body["messages"][0]["content"].as_str().unwrap_or_default();
                let prompt = body["messages"][1]["content"].as_str().unwrap_or_default();
                // As OpenAI counts a chat: 3 tokens to prime the answer, and each message
                // its text and 4 more for its role and delimiters.
                let tokens_in = 3 + (4 + count(system)) + (4 + count(prompt));
                let planner = system.contains("editor of a technical wiki");
                let (answer, page) = if planner {
                    (plan_for(prompt), None)
                } else {
                    // As a model takes a while, so that pages written at once overlap.
                    let now = counting.writing.fetch_add(1, Ordering::SeqCst) + 1;
                    counting.most_at_once.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    counting.writing.fetch_sub(1, Ordering::SeqCst);
                    let title = written_page_title(prompt);
                    (page_for(&title, prompt), Some(title))
                };
                let tokens_out = count(&answer);
                counting.calls.lock().unwrap().push(Seen { page, tokens_in, tokens_out });
                axum::Json(chat_completion(&answer, tokens_in, tokens_out))
            }
        }),
    );
    (format!("{}/v1", serve_on_loopback(app).await), counting)
}

/// The plan the planner prompt asks for, from the modules it lists: an overview and a
/// getting-started page on the README and manifests, an architecture page on each
/// module's first files, and a page per module on its files.
fn plan_for(prompt: &str) -> String {
    let mut modules: Vec<(String, Vec<String>)> = Vec::new();
    for line in prompt.lines() {
        let path = |l: &str| l.split('`').nth(1).map(str::to_string);
        if let Some(rest) = line.strip_prefix("- `") {
            let name = rest.split(" (").nth(1).and_then(|r| r.split([',', ')']).next());
            modules.push((name.unwrap_or("root").to_string(), Vec::new()));
        } else if line.starts_with("  - `")
            && let (Some(file), Some(module)) = (path(line), modules.last_mut())
        {
            module.1.push(file);
        }
    }
    let all: Vec<&String> = modules.iter().flat_map(|(_, files)| files).collect();
    let readme: Vec<&String> = all
        .iter()
        .copied()
        .filter(|f| f.ends_with("README.md") || f.ends_with(".toml") || f.ends_with(".json"))
        .collect();
    let firsts: Vec<&String> = modules.iter().filter_map(|(_, files)| files.first()).collect();
    let page = |title: &str, doc_type: &str, path: &str, files: &[&String]| {
        json!({
            "title": title, "doc_type": doc_type, "path": path,
            "description": format!("About {title}."), "sections": ["Purpose", "How it works"],
            "source_files": files.iter().take(8).collect::<Vec<_>>(), "links_out": ["Shop Overview"],
        })
    };
    let mut pages = vec![
        page("Shop Overview", "overview", "", &readme),
        page("Getting Started", "guide", "", &readme),
        page("Shop Architecture", "architecture", "", &firsts),
    ];
    for (name, files) in &modules {
        let files: Vec<&String> = files.iter().collect();
        if !files.is_empty() {
            pages.push(page(&format!("The {name} module"), "module", "modules", &files));
        }
    }
    json!({"summary": "An online shop.", "pages": pages}).to_string()
}

/// A page of typical length: an introduction, then for each source excerpt a section that
/// explains it and quotes its first lines, then a diagram.
fn page_for(title: &str, prompt: &str) -> String {
    let mut page = format!(
        "{title} describes one part of the shop: what it is for, how its pieces fit \
         together and where a new engineer should start reading. Each section below \
         follows one source file, quoting the lines that matter and saying why they are \
         there, so that the code can be read with the page open beside it.\n\n"
    );
    for source in prompt.split("\n### `").skip(1) {
        let path = source.split('`').next().unwrap_or_default();
        let code: Vec<&str> =
            source.lines().skip(3).take_while(|l| !l.starts_with("```")).take(8).collect();
        page.push_str(&format!(
            "## {path}\n\n`{path}` is where this part of the shop keeps the code shown \
             below. It is small on purpose: the types it declares are used by the other \
             modules, which rely on their fields staying stable, and the functions beside \
             them are the only way those modules create or change them. When you change \
             it, run the tests of every module that imports it, since a renamed field \
             breaks them at compile time rather than at run time.\n\n```\n{}\n```\n\n\
             Read it together with the pages of the modules that call it; the links at \
             the end of this page lead there.\n\n",
            code.join("\n")
        ));
    }
    page.push_str(
        "```mermaid\nflowchart LR\n    caller[Callers] --> part[This part]\n    part --> store[Storage]\n```\n\n\
         See [[Shop Overview]] for the whole picture.\n",
    );
    page
}

/// A repository of one small crate, much cheaper to document than the shop.
fn tiny(dir: &std::path::Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    write_file(dir, "README.md", "# Tiny\n\nAdds one.\n");
    write_file(dir, "Cargo.toml", "[package]\nname = \"tiny\"\n");
    write_file(dir, "src/lib.rs", "/// Adds one.\npub fn inc(x: u32) -> u32 {\n    x + 1\n}\n");
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "tiny"]);
}

/// The API over `db` whose runs call the counting server at `url`, with `budgets`, four
/// pages written at once (each asked for at most 1,500 tokens, more than the counting
/// server's pages take), and no worker yet.
async fn app(db: TestDb, repos: &std::path::Path, url: &str, budgets: Budgets) -> TestApp {
    let docgen = capped(&db.storage, repos, url, budgets);
    TestApp::with_docgen(db, docgen, |_| {}).await
}

fn capped(
    storage: &isocrates_storage::Storage,
    repos: &std::path::Path,
    url: &str,
    budgets: Budgets,
) -> Docgen {
    let mut docgen = model_docgen(storage, repos, url);
    docgen.settings.budgets = budgets;
    docgen.settings.write_concurrency = 4;
    docgen.settings.max_page_tokens = 1_500;
    docgen
}

/// A worker on `engine` until the sender is dropped or sent to; join the handle to know
/// it stopped.
fn worker(
    engine: &Engine,
    name: &str,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = engine.worker(name, 2).heartbeat(Duration::from_secs(2));
    let handle = tokio::spawn(async move {
        worker
            .run(async move {
                let _ = stopped.await;
            })
            .await
            .expect("the worker runs");
    });
    (stop, handle)
}

/// Starts a job of `repo` and waits for it to stop moving.
async fn run(app: &TestApp, token: &str, repo: &str, force: bool) -> Value {
    let started =
        app.post("/api/jobs", Some(token), json!({"repo_url": repo, "force": force})).await;
    assert_eq!(started.status, 201, "{:?}", started.body);
    settle(app, token, started.body["id"].as_str().unwrap()).await
}

/// Waits until the job `id` is neither queued nor running.
async fn settle(app: &TestApp, token: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let job = app.get(&format!("/api/jobs/{id}"), Some(token)).await.body;
        if !matches!(job["status"].as_str(), Some("queued" | "running")) {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "the job is stuck: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn estimate(app: &TestApp, token: &str, repo: &str) -> Value {
    let answer =
        app.post("/api/jobs", Some(token), json!({"repo_url": repo, "dry_run": true})).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["dry_run"], true);
    answer.body
}

/// What a run of `repo` is estimated to cost, asked of an API of its own, uncapped, so that
/// the estimate counts nothing the test's runs spend.
async fn estimated_cost(repos: &std::path::Path, url: &str, repo: &str) -> f64 {
    let probe = app(TestDb::sqlite().await, repos, url, Budgets::default()).await;
    let admin = probe.admin_token().await;
    estimate(&probe, &admin, repo).await["cost_usd"].as_f64().unwrap()
}

/// The web page's jobs view, as a browser signed in with `token` gets it.
async fn jobs_page(app: &TestApp, token: &str) -> String {
    let request = axum::http::Request::builder()
        .uri("/jobs")
        .header("accept", "text/html")
        .header("cookie", format!("isocrates_session={token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let page = app.send(request).await;
    assert_eq!(page.status, 200, "{}", page.text);
    page.text
}

/// How far `estimated` is from `actual`, as a share of `actual`.
fn off_by(estimated: u64, actual: u64) -> f64 {
    (estimated as f64 - actual as f64).abs() / actual as f64
}

fn tokens(value: &Value, field: &str) -> u64 {
    value[field].as_u64().unwrap_or_else(|| panic!("{field} in {value}"))
}

on_both_backends! {
    async fn a_dry_run_lists_the_pages_and_refuses_what_a_run_would(db) {
        let (origin, repos) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        shop(origin.path());
        let repo = origin.path().to_str().unwrap().to_string();
        let mut docgen = isocrates_testkit::test_docgen(&db.storage, repos.path());
        docgen.settings.budgets = Budgets { per_run_usd: Some(1.0), per_month_usd: Some(5.0), ..Budgets::default() };
        let app = TestApp::with_docgen(db, docgen, |_| {}).await;
        let admin = app.admin_token().await;

        // The static provider writes pages from the analysis: no model, no cost.
        let estimate = estimate(&app, &admin, &repo).await;
        assert_eq!(estimate["calls_planner"], false);
        assert_eq!(estimate["tiers"], json!([]));
        assert_eq!((estimate["tokens_in"].as_u64(), estimate["cost_usd"].as_f64()), (Some(0), Some(0.0)));
        let pages = estimate["pages"].as_array().unwrap();
        assert!(pages.len() >= 5 && pages.iter().all(|p| p["tokens_out_from"] == "static"), "{estimate}");
        let caps: Vec<&str> = estimate["budgets"].as_array().unwrap().iter().map(|b| b["variable"].as_str().unwrap()).collect();
        assert_eq!(caps, ["LLM_BUDGET_USD_PER_RUN", "LLM_BUDGET_USD_PER_MONTH"]);
        assert_eq!(estimate["within_budgets"], true);
        assert!(app.get("/api/jobs", Some(&admin)).await.body.as_array().unwrap().is_empty(), "no job was started");

        // Bad input is refused as a run would be, in the envelope.
        let missing = app.post("/api/jobs", Some(&admin), json!({"repo_url": "/no/such/repository", "dry_run": true})).await;
        assert_eq!(missing.status, 400, "{:?}", missing.body);
        assert_eq!(missing.body["details"]["field"], "repo_url");
        assert!(missing.body["message"].as_str().unwrap().contains("/no/such/repository"), "{:?}", missing.body);
        let anonymous = app.post("/api/jobs", None, json!({"repo_url": repo, "dry_run": true})).await;
        assert_eq!(anonymous.status, 401);
        let (viewer_id, viewer) = app.user(&admin, "viewer@example.com").await;
        app.grant(&admin, &viewer_id, "", "viewer").await;
        let refused = app.post("/api/jobs", Some(&viewer), json!({"repo_url": repo, "dry_run": true})).await;
        assert_eq!(refused.status, 403, "estimating is for those who may start the run: {:?}", refused.body);
        // An editor may estimate, without learning what every repository spent this month.
        let (editor_id, editor) = app.user(&admin, "editor@example.com").await;
        app.grant(&admin, &editor_id, "", "editor").await;
        let theirs = super::estimate(&app, &editor, &repo).await;
        let caps: Vec<&str> = theirs["budgets"].as_array().unwrap().iter().map(|b| b["variable"].as_str().unwrap()).collect();
        assert_eq!(caps, ["LLM_BUDGET_USD_PER_RUN"], "{theirs}");
        assert_eq!(theirs["within_budgets"], true, "decided by the caps they are shown");
    }

    async fn an_estimate_is_within_a_quarter_of_the_tokens_the_run_then_uses(db) {
        let (origin, repos) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        shop(origin.path());
        let repo = origin.path().to_str().unwrap().to_string();
        let (url, counting) = counting_server().await;
        let app = app(db, repos.path(), &url, Budgets::default()).await;
        let admin = app.admin_token().await;
        let _worker = worker(&app.engine, "estimates");

        // A first run: the plan is the one made from the analysis, standing in for the
        // planner's; no page has been written before.
        let first = estimate(&app, &admin, &repo).await;
        assert!(counting.seen().is_empty(), "an estimate calls no model");
        assert_eq!(first["calls_planner"], true);
        assert_eq!(first["tiers"].as_array().unwrap().len(), 2, "{first}");
        assert!(first["pages"].as_array().unwrap().len() >= 5, "{first}");
        let listed = app.get("/api/repositories", Some(&admin)).await;
        assert_eq!(listed.body.as_array().map(Vec::len), Some(0), "an estimate tracks no repository: {:?}", listed.body);
        let job = run(&app, &admin, &repo, false).await;
        assert_eq!(job["status"], "completed", "{job}");
        let (used_in, used_out) = (tokens(&job, "tokens_in"), tokens(&job, "tokens_out"));
        let (guess_in, guess_out) = (tokens(&first, "tokens_in"), tokens(&first, "tokens_out"));
        assert!(off_by(guess_in, used_in) <= 0.25, "tokens in: estimated {guess_in}, used {used_in}");
        assert!(
            off_by(guess_in + guess_out, used_in + used_out) <= 0.25,
            "all tokens: estimated {}, used {}", guess_in + guess_out, used_in + used_out
        );
        let cost = first["cost_usd"].as_f64().unwrap();
        let expected = (guess_in as f64 + 2.0 * guess_out as f64) / 1e6;
        assert!((cost - expected).abs() < 1e-9, "priced at LLM_PRICES: {cost} vs {expected}");

        // A change to one source file: the estimate names the page it rewrites, and its
        // answer is estimated at what the model wrote for it last time.
        write_file(origin.path(), "core/src/cart.rs", "/// A cart, now with a total.\npub struct Cart {\n    pub id: u64,\n    pub total: u64,\n}\n");
        git(origin.path(), &["commit", "-q", "-am", "totals"]);
        let second = estimate(&app, &admin, &repo).await;
        assert_eq!(second["calls_planner"], false, "{second}");
        assert_eq!(second["planned_by"], "previous_run");
        let pages: Vec<&str> = second["pages"].as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap()).collect();
        assert!(pages.iter().all(|p| p.contains("core") || p.contains("Architecture")), "{pages:?}");
        assert!(second["pages"].as_array().unwrap().iter().all(|p| p["tokens_out_from"] == "previous_version"), "{second}");
        let before = counting.pages().len();
        let job = run(&app, &admin, &repo, false).await;
        assert_eq!(job["status"], "completed", "{job}");
        let written: Vec<String> = counting.pages()[before..].to_vec();
        let mut planned: Vec<String> = pages.iter().map(|p| p.to_string()).collect();
        let mut written_sorted = written.clone();
        planned.sort();
        written_sorted.sort();
        assert_eq!(written_sorted, planned, "the estimate named the pages the run wrote");
        let (used_in, used_out) = (tokens(&job, "tokens_in"), tokens(&job, "tokens_out"));
        let (guess_in, guess_out) = (tokens(&second, "tokens_in"), tokens(&second, "tokens_out"));
        assert!(off_by(guess_in, used_in) <= 0.25, "tokens in: estimated {guess_in}, used {used_in}");
        assert!(off_by(guess_out, used_out) <= 0.25, "tokens out: estimated {guess_out}, used {used_out}");
    }

    async fn a_capped_run_pauses_then_resumes_without_rewriting_a_page(db) {
        let (origin, repos) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        shop(origin.path());
        let repo = origin.path().to_str().unwrap().to_string();
        let (url, counting) = counting_server().await;
        let storage = db.storage.clone();
        // Capped at 60% of what the run is estimated to cost: room for a few pages at once.
        let estimated = estimated_cost(repos.path(), &url, &repo).await;
        let cap = estimated * 0.6;
        let budgets = Budgets { per_run_usd: Some(cap), ..Budgets::default() };
        let app = app(db, repos.path(), &url, budgets).await;
        let admin = app.admin_token().await;
        let (stop, handle) = worker(&app.engine, "capped");

        let paused = run(&app, &admin, &repo, false).await;
        assert_eq!(paused["status"], "paused", "{paused}");
        let reason = paused["error_message"].as_str().unwrap();
        assert!(reason.contains("LLM_BUDGET_USD_PER_RUN"), "the cap is named: {reason}");
        assert_eq!(paused["current_step"], "write", "{paused}");
        let seen = counting.seen();
        let dearest = seen.iter().filter(|s| s.page.is_some()).map(Seen::cost).fold(0.0, f64::max);
        let spent = paused["cost_usd"].as_f64().unwrap();
        let paid: f64 = seen.iter().map(Seen::cost).sum();
        assert!((spent - paid).abs() < 1e-9, "the job counts every call: {spent} vs {paid}");
        assert!(spent <= cap + dearest, "spent {spent}, cap {cap}, one page {dearest}");
        assert!(spent >= cap, "a run pauses once its spending reaches the cap, not before: spent {spent}, cap {cap}");
        let before = counting.pages();
        assert!(!before.is_empty(), "pages were written before the cap");
        assert!(counting.most_at_once.load(Ordering::SeqCst) >= 2, "pages were written at once below the cap");
        assert!(paused["documents_written"] == 0, "nothing is published while paused");
        let spending = paused["spending"].as_array().unwrap();
        assert_eq!(spending.len(), 1, "{paused}");
        assert_eq!(spending[0]["model"], "test-model");
        let page = jobs_page(&app, &admin).await;
        assert!(page.contains("per run</span>") && page.contains("test-model"), "the jobs view shows the cap and the spending: {page}");

        // The operator raises the cap: a worker with the new configuration takes over.
        let _ = stop.send(());
        handle.await.unwrap();
        let raised = capped(&storage, repos.path(), &url, Budgets { per_run_usd: Some(estimated * 10.0), ..Budgets::default() });
        let engine = Engine::new(storage.db().clone(), vec![pipeline::workflow(Arc::new(raised))]).await.unwrap();
        let _worker = worker(&engine, "raised");
        let resumed = app.post(&format!("/api/jobs/{}/retry", paused["id"].as_str().unwrap()), Some(&admin), Value::Null).await;
        assert_eq!(resumed.status, 200, "{:?}", resumed.body);
        let done = settle(&app, &admin, paused["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "completed", "{done}");

        let pages = counting.pages();
        let mut once: BTreeMap<&str, usize> = BTreeMap::new();
        for page in &pages {
            *once.entry(page.as_str()).or_default() += 1;
        }
        assert!(once.values().all(|n| *n == 1), "every page is written once: {once:?}");
        assert_eq!(&pages[..before.len()], &before[..], "the pages written before the pause were kept");
        assert_eq!(done["documents_written"].as_u64(), Some(pages.len() as u64), "{done}");
        let planner_calls = counting.seen().iter().filter(|s| s.page.is_none()).count();
        assert_eq!(planner_calls, 1, "the plan is not paid twice");
        let total: f64 = counting.seen().iter().map(Seen::cost).sum();
        assert!((done["cost_usd"].as_f64().unwrap() - total).abs() < 1e-9);
    }

    async fn a_monthly_cap_holds_across_runs_on_two_workers(db) {
        let (repos, first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        shop(first_dir.path());
        shop(second_dir.path());
        let (first_repo, second_repo) = (first_dir.path().to_str().unwrap().to_string(), second_dir.path().to_str().unwrap().to_string());
        let (url, counting) = counting_server().await;
        let storage = db.storage.clone();
        // The two repositories together may spend half what one of them is estimated to.
        let cap = estimated_cost(repos.path(), &url, &first_repo).await * 0.5;
        let budgets = Budgets { per_month_usd: Some(cap), ..Budgets::default() };
        let app = app(db, repos.path(), &url, budgets).await;
        let admin = app.admin_token().await;
        // Two workers, as on two machines: each its own engine over the same database, each
        // free to take either run's steps.
        let elsewhere = Engine::new(storage.db().clone(), vec![pipeline::workflow(Arc::new(capped(&storage, repos.path(), &url, budgets)))]).await.unwrap();
        let _here = worker(&app.engine, "here");
        let _there = worker(&elsewhere, "there");

        let mut ids = Vec::new();
        for repo in [&first_repo, &second_repo] {
            let started = app.post("/api/jobs", Some(&admin), json!({"repo_url": repo})).await;
            assert_eq!(started.status, 201, "{:?}", started.body);
            ids.push(started.body["id"].as_str().unwrap().to_string());
        }
        for id in &ids {
            let job = settle(&app, &admin, id).await;
            assert_eq!(job["status"], "paused", "{job}");
            assert!(job["error_message"].as_str().unwrap().contains("LLM_BUDGET_USD_PER_MONTH"), "{job}");
        }
        let seen = counting.seen();
        let paid: f64 = seen.iter().map(Seen::cost).sum();
        let dearest = seen.iter().map(Seen::cost).fold(0.0, f64::max);
        assert!(paid >= cap, "the runs pause once the month reaches the cap: paid {paid}, cap {cap}");
        assert!(paid <= cap + dearest, "together the runs pass the cap by one call at most: paid {paid}, cap {cap}, one call {dearest}");
    }

    async fn monthly_caps_count_earlier_runs_per_repository_and_in_all(db) {
        let (repos, shop_dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        shop(shop_dir.path());
        tiny(other_dir.path());
        let (shop_repo, other_repo) = (shop_dir.path().to_str().unwrap().to_string(), other_dir.path().to_str().unwrap().to_string());
        let (url, counting) = counting_server().await;
        let storage = db.storage.clone();
        let app = app(db, repos.path(), &url, Budgets::default()).await;
        let admin = app.admin_token().await;
        let (stop, handle) = worker(&app.engine, "uncapped");
        let first = run(&app, &admin, &shop_repo, false).await;
        assert_eq!(first["status"], "completed", "{first}");
        let spent = first["cost_usd"].as_f64().unwrap();
        let _ = stop.send(());
        handle.await.unwrap();

        // Each repository may spend a little less than the shop already has this month.
        let per_repo = Budgets { per_repo_month_usd: Some(spent * 0.99), ..Budgets::default() };
        let engine = Engine::new(storage.db().clone(), vec![pipeline::workflow(Arc::new(capped(&storage, repos.path(), &url, per_repo)))]).await.unwrap();
        let (stop, handle) = worker(&engine, "per-repository");
        let calls = counting.seen().len();
        let forced = run(&app, &admin, &shop_repo, true).await;
        assert_eq!(forced["status"], "paused", "{forced}");
        assert!(forced["error_message"].as_str().unwrap().contains("LLM_BUDGET_USD_PER_REPO_PER_MONTH"), "{forced}");
        assert_eq!(forced["current_step"], "plan", "paused before the planner: {forced}");
        assert_eq!(counting.seen().len(), calls, "no call past the repository's cap");
        let other = run(&app, &admin, &other_repo, false).await;
        assert_eq!(other["status"], "completed", "another repository has its own cap: {other}");
        let _ = stop.send(());
        handle.await.unwrap();

        // Every repository together may spend no more than the shop alone did.
        let in_all = Budgets { per_month_usd: Some(spent), ..Budgets::default() };
        let engine = Engine::new(storage.db().clone(), vec![pipeline::workflow(Arc::new(capped(&storage, repos.path(), &url, in_all)))]).await.unwrap();
        let _worker = worker(&engine, "monthly");
        let calls = counting.seen().len();
        let third = run(&app, &admin, &other_repo, true).await;
        assert_eq!(third["status"], "paused", "{third}");
        assert!(third["error_message"].as_str().unwrap().contains("LLM_BUDGET_USD_PER_MONTH"), "{third}");
        assert_eq!(counting.seen().len(), calls, "no call past the monthly cap");

        // The spending by month and repository adds up the jobs.
        let jobs = app.get("/api/jobs?limit=10", Some(&admin)).await.body;
        let total: f64 = jobs.as_array().unwrap().iter().map(|j| j["cost_usd"].as_f64().unwrap()).sum();
        let spending = app.get("/api/jobs/spending", Some(&admin)).await;
        assert_eq!(spending.status, 200, "{:?}", spending.body);
        let months = spending.body["months"].as_array().unwrap();
        assert_eq!(months.len(), 1, "{}", spending.body);
        assert!((months[0]["cost_usd"].as_f64().unwrap() - total).abs() < 1e-9, "{}", spending.body);
        assert_eq!(months[0]["models"][0]["model"], "test-model");
        let repositories = spending.body["repositories"].as_array().unwrap();
        assert_eq!(repositories.len(), 2, "{}", spending.body);
        assert!(spending.body["all_repositories"].as_bool().unwrap());

        // A viewer granted one repository's folder sees that repository's spending only.
        let (viewer_id, viewer) = app.user(&admin, "viewer@example.com").await;
        let folder = shop_repo.rsplit('/').next().unwrap();
        app.grant(&admin, &viewer_id, folder, "viewer").await;
        let seen = app.get("/api/jobs/spending", Some(&viewer)).await.body;
        let repositories = seen["repositories"].as_array().unwrap();
        assert_eq!(repositories.len(), 1, "{seen}");
        assert_eq!(repositories[0]["repo_url"], shop_repo.as_str());
        assert_eq!(seen["all_repositories"], false);
        assert!(!seen.to_string().contains(&other_repo), "{seen}");
        let shop_cost = repositories[0]["cost_usd"].as_f64().unwrap();
        assert!((seen["months"][0]["cost_usd"].as_f64().unwrap() - shop_cost).abs() < 1e-9);

        // The web page's jobs view shows the same spending, each visitor within their grants.
        let month = months[0]["month"].as_str().unwrap();
        let theirs = jobs_page(&app, &viewer).await;
        assert!(theirs.contains("Model spending") && theirs.contains("test-model"), "{theirs}");
        assert!(theirs.contains(month) && theirs.contains(shop_repo.as_str()), "{theirs}");
        assert!(theirs.contains("over the repositories you may read"), "{theirs}");
        assert!(!theirs.contains(&other_repo), "{theirs}");
        let all = jobs_page(&app, &admin).await;
        assert!(all.contains(shop_repo.as_str()) && all.contains(other_repo.as_str()), "{all}");
        assert!(!all.contains("over the repositories you may read"), "{all}");

        let metrics = app.get("/metrics", None).await.text;
        assert!(metrics.contains("isocrates_llm_month_cost_usd{provider=\"openai-compatible\",model=\"test-model\"}"), "{metrics}");
        assert!(!metrics.contains(&shop_repo) && !metrics.contains(&other_repo), "no repository is named to anonymous callers");
    }
}

/// The estimate against OpenAI's tokenizer on the kinds of text prompts carry: this
/// repository's prose, Rust, JavaScript, HTML templates and prompt templates.
#[test]
fn token_estimates_stay_near_a_real_tokenizer() {
    let root = env!("CARGO_MANIFEST_DIR");
    let files = [
        "README.md",
        "ARCHITECTURE.md",
        "docs/DEPLOYING.md",
        "src/main.rs",
        "src/config.rs",
        "workflows/src/pipeline/mod.rs",
        "workflows/src/analyze/mod.rs",
        "api/src/routes/jobs.rs",
        "api/web/static/app.js",
        "api/web/templates/jobs.html",
        "prompts/writer.j2",
        "prompts/planner.j2",
    ];
    let (mut estimated, mut counted) = (0, 0);
    for file in files {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        let (guess, real) = (isocrates_providers::tokens::estimate(&text), count(&text));
        assert!(off_by(guess, real) <= 0.15, "{file}: estimated {guess}, cl100k counts {real}");
        estimated += guess;
        counted += real;
    }
    assert!(off_by(estimated, counted) <= 0.03, "in all: estimated {estimated}, cl100k {counted}");
}
