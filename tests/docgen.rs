//! The documentation workflow end to end, on a real git repository made here (about fifty
//! files in five languages), through a real worker over apalis, against a local server
//! that speaks OpenAI's chat completions (or no model at all), on SQLite and PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use isocrates_engine::{Engine, Run, RunStatus};
use isocrates_storage::Storage;
use isocrates_storage::documents::{
    Author, AuthorType, ContentUpdate, Document, ListFilter, ReadScope,
};
use isocrates_storage::links::{parse_wikilinks, title_key};
use isocrates_testkit::{
    chat_completion, git, model_docgen, on_both_backends, serve_on_loopback, shop, test_docgen,
    write_file, written_page_title,
};
use isocrates_workflows::docgen::{DocgenInput, Trigger};
use isocrates_workflows::pipeline::{self, Docgen};
use serde_json::{Value, json};

/// What the model server was asked, by kind.
#[derive(Default)]
struct Calls {
    planner: AtomicUsize,
    writer: AtomicUsize,
    /// The page each writer call was for.
    pages: Mutex<Vec<String>>,
}

impl Calls {
    fn planner(&self) -> usize {
        self.planner.load(Ordering::SeqCst)
    }
    fn writer(&self) -> usize {
        self.writer.load(Ordering::SeqCst)
    }
}

/// How the planner answers.
#[derive(Clone, Copy, PartialEq)]
enum Planner {
    /// With a plan of the shop's modules.
    Plan,
    /// With prose, every time.
    Garbage,
    /// With the plan, but the writer refuses every page after the first.
    PlanThenRefuse,
}

/// A local server speaking OpenAI's chat completions: the planner gets a plan of the shop,
/// a writer a page that links to two planned titles and one that does not exist.
async fn model_server(planner: Planner) -> (String, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let seen = calls.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |body: axum::Json<Value>| {
            let calls = seen.clone();
            async move {
                let system = body["messages"][0]["content"].as_str().unwrap_or_default().to_string();
                let prompt = body["messages"][1]["content"].as_str().unwrap_or_default().to_string();
                let text = if system.contains("editor of a technical wiki") {
                    calls.planner.fetch_add(1, Ordering::SeqCst);
                    match planner {
                        Planner::Plan | Planner::PlanThenRefuse => plan_answer(),
                        Planner::Garbage => "I think the wiki should be lovely.".to_string(),
                    }
                } else {
                    let n = calls.writer.fetch_add(1, Ordering::SeqCst);
                    if planner == Planner::PlanThenRefuse && n > 0 {
                        let refusal = json!({"error": {"message": "this page is too long for the model", "type": "invalid_request_error"}});
                        return (axum::http::StatusCode::BAD_REQUEST, axum::Json(refusal));
                    }
                    let page = written_page_title(&prompt);
                    calls.pages.lock().unwrap().push(page.clone());
                    page_answer(&system, &page)
                };
                (axum::http::StatusCode::OK, axum::Json(chat_completion(&text, 100, 40)))
            }
        }),
    );
    (format!("{}/v1", serve_on_loopback(app).await), calls)
}

fn plan_answer() -> String {
    let page = |title: &str, doc_type: &str, path: &str, files: &[&str], links: &[&str]| {
        json!({
            "title": title, "doc_type": doc_type, "path": path,
            "description": format!("About {title}."), "sections": ["Purpose"],
            "source_files": files, "links_out": links,
        })
    };
    let plan = json!({
        "summary": "An online shop.",
        "pages": [
            page("Shop Overview", "overview", "", &["README.md", "Cargo.toml"], &["Core Library", "Storefront"]),
            page("Core Library", "module", "modules", &["core/src/lib.rs", "core/src/cart.rs", "core/src/price.rs"], &["Shop Overview"]),
            page("Command Line", "module", "modules", &["cli/src/main.rs", "cli/src/args.rs"], &["Core Library"]),
            page("Sales Reports", "module", "modules", &["tools/main.py", "tools/reports/report0.py"], &[]),
            page("Storefront", "module", "modules", &["web/src/index.ts", "web/src/api.ts"], &[]),
            page("Store Service", "module", "modules", &["svc/main.go", "svc/store/open.go"], &[]),
            page("Java Utilities", "module", "modules", &["lib/src/main/java/com/shop/Util0.java", "no/such/File.java"], &[]),
        ],
    });
    format!("Here is the plan:\n```json\n{plan}\n```")
}

/// A page body: a wikilink to the first two titles the writer may use, one to a page that
/// does not exist, and a diagram.
fn page_answer(system: &str, page: &str) -> String {
    let titles: Vec<&str> = system
        .lines()
        .skip_while(|l| !l.contains("Only these titles exist"))
        .skip(1)
        .take_while(|l| l.starts_with("- "))
        .map(|l| l.trim_start_matches("- ").split(':').next().unwrap_or_default())
        .collect();
    let links: Vec<String> = titles.iter().take(2).map(|t| format!("[[{t}]]")).collect();
    format!(
        "# {page}\n\n{page} explains its part of the shop. See {} and [[Imaginary Page]].\n\n```mermaid\nflowchart LR\n    a[\"{page}\"] --> b[Shop]\n```\n",
        links.join(" and ")
    )
}

/// The shop, published once by a run against the model server.
struct Published {
    origin: tempfile::TempDir,
    _repos: tempfile::TempDir,
    calls: Arc<Calls>,
    harness: Harness,
}

async fn published_shop(storage: &Storage) -> Published {
    let (origin, repos) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    shop(origin.path());
    let (url, calls) = model_server(Planner::Plan).await;
    let harness = Harness::start(model_docgen(storage, repos.path(), &url)).await;
    let run = harness.run(origin.path().to_str().unwrap(), false).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    Published { origin, _repos: repos, calls, harness }
}

/// An engine running the documentation workflow over `docgen`, with a worker.
struct Harness {
    engine: Engine,
    storage: Storage,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Harness {
    async fn start(docgen: Docgen) -> Harness {
        let storage = docgen.storage.clone();
        let engine = Engine::new(storage.db().clone(), vec![pipeline::workflow(Arc::new(docgen))])
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = engine.worker("docgen-test", 2).heartbeat(Duration::from_secs(2));
        tokio::spawn(worker.run(async move {
            let _ = stopped.await;
        }));
        Harness { engine, storage, stop: Some(stop) }
    }

    /// Runs the workflow on `repo` to its end.
    async fn run(&self, repo: &str, force: bool) -> Run {
        let input = DocgenInput {
            repo_url: repo.to_string(),
            commit_sha: None,
            force,
            changed_paths: None,
            added_paths: Vec::new(),
            base_commit: None,
        };
        let run = self.engine.submit(input.into_run(Trigger::Manual)).await.unwrap().run;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let now = self.engine.run(&run.id).await.unwrap();
            if !matches!(now.status, RunStatus::Queued | RunStatus::Running) {
                return now;
            }
            assert!(tokio::time::Instant::now() < deadline, "run stuck at {:?}", now.status);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs the periodic refresh of every tracked repository, and waits for its one run.
    async fn refresh(&self) -> Run {
        let started =
            isocrates_workflows::docgen::refresh_all(&self.engine, &self.storage).await.unwrap();
        assert_eq!(started, 1);
        let filter = isocrates_engine::RunFilter { limit: 1, ..Default::default() };
        let id = self.engine.runs(&filter).await.unwrap().remove(0).id;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let now = self.engine.run(&id).await.unwrap();
            if now.status.is_terminal() {
                return now;
            }
            assert!(tokio::time::Instant::now() < deadline, "refresh stuck at {:?}", now.status);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn pages(&self, repo: &str) -> Vec<Document> {
        let filter = ListFilter {
            skip: 0,
            limit: 1000,
            path_prefix: None,
            repo_url: Some(repo.to_string()),
            scope: ReadScope::All,
        };
        self.storage.documents(&filter).await.unwrap()
    }

    async fn publish_output(&self, run: &Run) -> Value {
        self.checkpoint(run, "publish").await
    }

    async fn checkpoint(&self, run: &Run, step: &str) -> Value {
        self.engine
            .checkpoints(std::slice::from_ref(run), step)
            .await
            .unwrap()
            .remove(&run.id)
            .unwrap_or_default()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Every page's wikilinks resolve to another page of the wiki, and its sources exist.
fn assert_linked_wiki(pages: &[Document], repo: &Path) {
    let titles: BTreeSet<String> = pages.iter().map(|p| title_key(&p.title)).collect();
    for page in pages {
        for link in parse_wikilinks(&page.content) {
            assert!(
                titles.contains(&title_key(&link.target)),
                "{}: [[{}]] leads nowhere",
                page.title,
                link.target
            );
        }
        assert!(page.content.contains("## Sources"), "{}", page.title);
        let sources: Vec<&str> =
            page.content.lines().filter_map(|l| l.strip_prefix("| `")?.split('`').next()).collect();
        assert!(!sources.is_empty(), "{} names its sources", page.title);
        for source in sources {
            assert!(
                repo.join(source).is_file(),
                "{}: {source} is not in the repository",
                page.title
            );
        }
    }
}

on_both_backends! {
    async fn a_run_against_a_model_publishes_a_linked_wiki_with_provenance(db) {
        let (origin, repos) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let head = shop(origin.path());
        let (url, calls) = model_server(Planner::Plan).await;
        let harness = Harness::start(model_docgen(&db.storage, repos.path(), &url)).await;
        let repo = origin.path().to_str().unwrap();

        let run = harness.run(repo, false).await;
        assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
        let pages = harness.pages(repo).await;
        let titles: BTreeSet<&str> = pages.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(titles.len(), 7, "{titles:?}");
        assert_eq!(calls.planner(), 1);
        assert_eq!(calls.writer(), 7, "one writer call per page");
        assert_linked_wiki(&pages, origin.path());
        let core = pages.iter().find(|p| p.title == "Core Library").unwrap();
        assert!(core.content.contains("and Imaginary Page."), "an unknown link is plain text: {}", core.content);
        assert!(core.content.starts_with("Core Library explains"), "the repeated title heading is dropped: {}", core.content);
        assert!(core.content.contains("```mermaid"), "a diagram that parses stays");
        assert_eq!(core.path, format!("{}/modules", repo.rsplit('/').next().unwrap()));

        for page in &pages {
            let version = &harness.storage.versions(&page.id, 0, 1).await.unwrap()[0];
            assert_eq!(version.author_type, "ai");
            let meta = version.author_metadata.as_ref().unwrap();
            assert_eq!(meta["repo_commit_sha"], head.as_str(), "{}", page.title);
            assert_eq!(meta["run_id"], run.id.as_str());
            assert_eq!(meta["writer_model"], "test-model");
            assert_eq!(meta["tokens_in"], 100);
            let hashes = meta["source_hashes"].as_object().unwrap();
            assert!(!hashes.is_empty() && hashes.values().all(|h| h.as_str().unwrap().len() == 16));
        }
        let java = pages.iter().find(|p| p.title == "Java Utilities").unwrap();
        assert!(!java.content.contains("no/such/File.java"), "a file the repository lacks is dropped");
        assert_eq!(run.usage.tokens_in, 800, "one planner call and seven pages");
        assert_eq!(run.usage.tokens_out, 320);
        let published = harness.publish_output(&run).await;
        assert_eq!(published["documents_written"], 7);
        assert_eq!(published["planned_by"], "planner");
    }

    async fn the_same_commit_again_costs_nothing_and_a_changed_file_rewrites_only_its_pages(db) {
        let Published { origin, _repos, calls, harness } = published_shop(&db.storage).await;
        let repo = origin.path().to_str().unwrap();
        let (planned, written) = (calls.planner(), calls.writer());

        let again = harness.run(repo, false).await;
        assert_eq!(again.status, RunStatus::Skipped, "{:?}", again.error);
        assert!(again.error.as_deref().unwrap_or_default().contains("already published"), "{:?}", again.error);
        assert_eq!((calls.planner(), calls.writer()), (planned, written), "no model call");
        assert_eq!(again.usage.tokens_in, 0);

        // core/src/cart.rs is a source of "Core Library" only.
        write_file(origin.path(), "core/src/cart.rs", "/// A cart, now with a total.\npub struct Cart {\n    pub id: u64,\n}\n");
        git(origin.path(), &["commit", "-q", "-am", "totals"]);
        calls.pages.lock().unwrap().clear();
        let changed = harness.run(repo, false).await;
        assert_eq!(changed.status, RunStatus::Completed, "{:?}", changed.error);
        assert_eq!(calls.planner(), planned, "the published pages are the plan");
        assert_eq!(calls.pages.lock().unwrap().clone(), ["Core Library"]);
        let published = harness.publish_output(&changed).await;
        assert_eq!((published["documents_written"].as_u64(), published["documents_skipped"].as_u64()), (Some(1), Some(6)));

        // A change to no page's source is skipped before any model call.
        write_file(origin.path(), "tools/reports/report5.py", "def report5(rows):\n    return 5\n");
        git(origin.path(), &["commit", "-q", "-am", "report five"]);
        let untouched = harness.run(repo, false).await;
        assert_eq!(untouched.status, RunStatus::Skipped);
        assert!(untouched.error.as_deref().unwrap_or_default().contains("no source file of a published page"));
        assert_eq!(calls.writer(), written + 1);
    }

    async fn a_file_added_beside_documented_ones_joins_their_page(db) {
        let Published { origin, _repos, calls, harness } = published_shop(&db.storage).await;
        let repo = origin.path().to_str().unwrap();
        let planned = calls.planner();

        // Two new files in folders the wiki covers, in a commit no push described: the run
        // compares the two commits' trees itself.
        write_file(origin.path(), "svc/store/close.go", "package store\n\n// Close closes the store.\nfunc Close() {}\n");
        write_file(origin.path(), "core/src/rules/rule6.rs", "/// Rule 6.\npub fn rule6(total: u64) -> u64 { total + 6 }\n");
        git(origin.path(), &["add", "."]);
        git(origin.path(), &["commit", "-q", "-m", "close and rule six"]);
        calls.pages.lock().unwrap().clear();
        let grown = harness.run(repo, false).await;
        assert_eq!(grown.status, RunStatus::Completed, "{:?}", grown.error);
        let early = harness.checkpoint(&grown, "check_early").await;
        assert_eq!(early["changes"]["from"], "clone");
        assert_eq!(early["changes"]["paths"], json!(["core/src/rules/rule6.rs", "svc/store/close.go"]));
        assert_eq!(calls.planner(), planned, "no new plan for files in known modules");
        let mut rewritten = calls.pages.lock().unwrap().clone();
        rewritten.sort();
        assert_eq!(rewritten, ["Core Library", "Store Service"], "only the pages beside the new files");
        let pages = harness.pages(repo).await;
        for (title, file) in [("Store Service", "svc/store/close.go"), ("Core Library", "core/src/rules/rule6.rs")] {
            let page = pages.iter().find(|p| p.title == title).unwrap();
            let latest = &harness.storage.versions(&page.id, 0, 1).await.unwrap()[0];
            let sources = &latest.author_metadata.as_ref().unwrap()["source_files"];
            assert!(sources.as_array().unwrap().iter().any(|s| s == file), "{title}: {sources}");
        }

        // The new file is now a source like the others: changing it rewrites its page.
        write_file(origin.path(), "svc/store/close.go", "package store\n\n// Close closes the store for good.\nfunc Close() {}\n");
        git(origin.path(), &["commit", "-q", "-am", "close for good"]);
        calls.pages.lock().unwrap().clear();
        let changed = harness.run(repo, false).await;
        assert_eq!(changed.status, RunStatus::Completed, "{:?}", changed.error);
        assert_eq!(calls.pages.lock().unwrap().clone(), ["Store Service"]);
    }

    async fn a_page_moved_to_another_folder_is_updated_where_it_is(db) {
        let Published { origin, _repos, harness, .. } = published_shop(&db.storage).await;
        let repo = origin.path().to_str().unwrap();
        let before = harness.pages(repo).await;
        let core = before.iter().find(|p| p.title == "Core Library").unwrap();
        harness.storage.move_document(&core.id, "handbook/libraries").await.unwrap();

        write_file(origin.path(), "core/src/cart.rs", "/// A cart, now with a total.\npub struct Cart {\n    pub id: u64,\n}\n");
        git(origin.path(), &["commit", "-q", "-am", "totals"]);
        let changed = harness.run(repo, false).await;
        assert_eq!(changed.status, RunStatus::Completed, "{:?}", changed.error);
        let after = harness.pages(repo).await;
        assert_eq!(after.len(), before.len(), "no second Core Library: {:?}", after.iter().map(|p| (&p.title, &p.path)).collect::<Vec<_>>());
        let moved = harness.storage.document(&core.id).await.unwrap().unwrap();
        assert_eq!(moved.path, "handbook/libraries", "the page stays where it was moved");
        assert!(moved.content.contains("Core Library explains its part"), "{}", moved.content);
        let latest = &harness.storage.versions(&core.id, 0, 1).await.unwrap()[0];
        assert_eq!(latest.author_metadata.as_ref().unwrap()["run_id"], changed.id.as_str());
    }

    async fn the_refresh_documents_the_branch_an_admin_chose(db) {
        let (origin, repos) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        shop(origin.path());
        let harness = Harness::start(test_docgen(&db.storage, repos.path())).await;
        let repo = origin.path().to_str().unwrap();
        assert_eq!(harness.run(repo, false).await.status, RunStatus::Completed);
        git(origin.path(), &["checkout", "-q", "-b", "develop"]);
        write_file(origin.path(), "core/src/cart.rs", "/// A cart on develop.\npub struct Cart;\n");
        git(origin.path(), &["commit", "-q", "-am", "develop work"]);
        let develop = git(origin.path(), &["rev-parse", "HEAD"]);
        git(origin.path(), &["checkout", "-q", "main"]);

        let row = harness.storage.repository(repo).await.unwrap().unwrap();
        harness.storage.change_repository(&row.id, Some(Some("develop".into()))).await.unwrap();
        let run = harness.refresh().await;
        assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
        let cloned = harness.checkpoint(&run, "clone").await;
        assert_eq!(cloned["commit_sha"], develop.as_str(), "the tracked branch, not HEAD");
        assert_eq!(harness.storage.repository(repo).await.unwrap().unwrap().last_commit.as_deref(), Some(develop.as_str()));

        harness.storage.change_repository(&row.id, Some(Some("gone".into()))).await.unwrap();
        let missing = harness.refresh().await;
        assert_eq!(missing.status, RunStatus::Failed);
        let error = missing.error.unwrap_or_default();
        assert!(error.contains("no branch gone") && error.contains("tracked branch"), "{error}");
    }

    async fn a_page_a_person_edited_survives_the_next_run(db) {
        let Published { origin, _repos, harness, .. } = published_shop(&db.storage).await;
        let repo = origin.path().to_str().unwrap();
        let core = harness.pages(repo).await.into_iter().find(|p| p.title == "Core Library").unwrap();
        let human = "# Core Library\n\nWritten by a person who knows better.\n";
        harness
            .storage
            .update_content(&core.id, ContentUpdate {
                content: human.into(),
                description: None,
                author: Author { author_type: AuthorType::Human, metadata: Some(json!({"source": "web"})) },
                expected_version: None,
            })
            .await
            .unwrap();

        let forced = harness.run(repo, true).await;
        assert_eq!(forced.status, RunStatus::Completed, "{:?}", forced.error);
        let after = harness.storage.document(&core.id).await.unwrap().unwrap();
        assert_eq!(after.content, human, "the person's text stays");
        let published = harness.publish_output(&forced).await;
        assert_eq!(published["kept_for_people"], json!(["Core Library"]));
        assert_eq!(published["documents_written"], 6);
        assert_eq!(published["proposals"], 1);
        let proposals = harness.storage.proposals(&core.id).await.unwrap();
        assert_eq!(proposals.len(), 1, "the AI text waits beside the page");
        assert!(proposals[0].content.contains("Core Library explains its part"), "{}", proposals[0].content);
        assert_eq!(proposals[0].author_metadata.as_ref().unwrap()["run_id"], forced.id.as_str());
    }

    async fn without_a_model_the_analysis_alone_makes_a_linked_wiki(db) {
        let (origin, repos) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        shop(origin.path());
        let harness = Harness::start(test_docgen(&db.storage, repos.path())).await;
        let repo = origin.path().to_str().unwrap();
        let run = harness.run(repo, false).await;
        assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
        let pages = harness.pages(repo).await;
        assert_linked_wiki(&pages, origin.path());
        let by_title: BTreeMap<&str, &Document> = pages.iter().map(|p| (p.title.as_str(), p)).collect();
        let name = repo_title(repo);
        let overview = by_title[format!("{name} Overview").as_str()];
        assert!(overview.content.contains("Sells widgets online."), "{}", overview.content);
        assert!(overview.content.contains("[[shop-core]]"), "{}", overview.content);
        let architecture = by_title[format!("{name} Architecture").as_str()];
        assert!(architecture.content.contains("```mermaid\nflowchart LR"), "{}", architecture.content);
        let core = by_title["shop-core"];
        assert!(core.content.contains("`Cart::new`") && core.content.contains("Makes one."), "{}", core.content);
        assert!(by_title.contains_key("shop-web") && by_title.contains_key("svc") && by_title.contains_key("shop-lib"), "{:?}", by_title.keys());
        assert!(pages.iter().all(|p| !p.content.contains("left-pad")), "vendored code is left out");
        assert_eq!(run.usage.tokens_in, 0);
        let version = &harness.storage.versions(&overview.id, 0, 1).await.unwrap()[0];
        assert_eq!(version.author_metadata.as_ref().unwrap()["model"], "static");

        // A new module gets a page; the pages of modules that did not change stay.
        write_file(origin.path(), "extra/Cargo.toml", "[package]\nname = \"shop-extra\"\n");
        write_file(origin.path(), "extra/src/lib.rs", "/// Extras.\npub fn extra() {}\n");
        git(origin.path(), &["add", "."]);
        git(origin.path(), &["commit", "-q", "-m", "extras"]);
        let grown = harness.run(repo, false).await;
        assert_eq!(grown.status, RunStatus::Completed, "{:?}", grown.error);
        let pages = harness.pages(repo).await;
        assert!(pages.iter().any(|p| p.title == "shop-extra"), "a page for the new module");
        let core = pages.iter().find(|p| p.title == "shop-core").unwrap();
        assert_eq!(harness.storage.versions(&core.id, 0, 10).await.unwrap().len(), 1, "shop-core was not rewritten");
        assert_linked_wiki(&pages, origin.path());
    }

    async fn bad_input_ends_in_a_clear_state_and_publishes_nothing(db) {
        let repos = tempfile::tempdir().unwrap();
        let harness = Harness::start(test_docgen(&db.storage, repos.path())).await;
        for (repo, says) in [
            ("https://evil.example/acme/widgets", "ALLOWED_GIT_HOSTS"),
            ("file:///etc", "only https"),
            ("/srv/../etc", "without .."),
            ("/no/such/repository", "no such folder"),
        ] {
            let run = harness.run(repo, false).await;
            assert_eq!(run.status, RunStatus::Failed, "{repo}");
            assert!(run.error.as_deref().unwrap_or_default().contains(says), "{repo}: {:?}", run.error);
            assert_eq!(run.attempt, 1, "{repo}: not retried");
        }
        let empty = tempfile::tempdir().unwrap();
        git(empty.path(), &["init", "-q", "-b", "main"]);
        let run = harness.run(empty.path().to_str().unwrap(), false).await;
        assert_eq!(run.status, RunStatus::Failed);
        assert!(run.error.as_deref().unwrap_or_default().contains("no commits"), "{:?}", run.error);

        let binary = tempfile::tempdir().unwrap();
        git(binary.path(), &["init", "-q", "-b", "main"]);
        std::fs::write(binary.path().join("photo.jpg"), [0xff, 0xd8, 0, 1]).unwrap();
        std::fs::write(binary.path().join("blob.bin"), [0, 1, 2, 3]).unwrap();
        git(binary.path(), &["add", "."]);
        git(binary.path(), &["commit", "-q", "-m", "binaries"]);
        let run = harness.run(binary.path().to_str().unwrap(), false).await;
        assert_eq!(run.status, RunStatus::Skipped);
        assert!(run.error.as_deref().unwrap_or_default().contains("nothing to document"), "{:?}", run.error);
        let filter = ListFilter { skip: 0, limit: 10, path_prefix: None, repo_url: None, scope: ReadScope::All };
        assert!(harness.storage.documents(&filter).await.unwrap().is_empty(), "nothing published");
    }

    async fn a_run_that_writes_fewer_than_half_its_pages_publishes_none(db) {
        let (origin, repos) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        shop(origin.path());
        let (url, calls) = model_server(Planner::PlanThenRefuse).await;
        let harness = Harness::start(model_docgen(&db.storage, repos.path(), &url)).await;
        let repo = origin.path().to_str().unwrap();
        let run = harness.run(repo, false).await;
        assert_eq!(run.status, RunStatus::Failed);
        let error = run.error.unwrap_or_default();
        assert!(error.contains("only 1 of 7 pages were written") && error.contains("nothing was published"), "{error}");
        assert!(error.contains("too long for the model"), "the provider's reason: {error}");
        assert_eq!(calls.writer(), 7, "a refused page is not asked again");
        assert!(harness.pages(repo).await.is_empty(), "nothing published half way");
    }

    async fn a_planner_that_answers_garbage_every_time_gives_way_to_the_analysis(db) {
        let (origin, repos) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        shop(origin.path());
        let (url, calls) = model_server(Planner::Garbage).await;
        let harness = Harness::start(model_docgen(&db.storage, repos.path(), &url)).await;
        let repo = origin.path().to_str().unwrap();
        let run = harness.run(repo, false).await;
        assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
        assert_eq!(calls.planner(), 3, "asked three times");
        let published = harness.publish_output(&run).await;
        assert_eq!(published["planned_by"], "analysis");
        assert!(published["note"].as_str().unwrap().contains("after 3 tries"), "{published}");
        let pages = harness.pages(repo).await;
        assert!(pages.len() >= 5);
        assert_linked_wiki(&pages, origin.path());
    }
}

/// The title a repository's name gets in its pages.
fn repo_title(repo: &str) -> String {
    isocrates_workflows::pipeline::plan::display_name(repo.rsplit('/').next().unwrap())
}
