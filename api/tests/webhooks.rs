//! `POST /api/webhooks/github` with the payloads GitHub sends (`tests/fixtures/`, copied
//! from octokit/webhooks), signed with the test secret: the answers of API.md, signatures
//! that do not match, redeliveries, and the jobs a push starts or does not start.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use std::path::Path;
use std::time::Duration;

use isocrates_testkit::{
    TEST_WEBHOOK_SECRET, TestApp, chat_completion, git, model_docgen, on_both_backends,
    serve_on_loopback, written_page_title,
};
use isocrates_workflows::pipeline;
use serde_json::Value;
use sha2::Sha256;
use std::sync::{Arc, Mutex};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/github-webhooks/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delivers `body` as GitHub does, with `signature` (none when `None`).
async fn deliver(
    app: &TestApp,
    event: &str,
    delivery: &str,
    body: Vec<u8>,
    signature: Option<String>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/api/webhooks/github")
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery);
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    let answer = app.send(request.body(Body::from(body)).unwrap()).await;
    (answer.status, answer.body)
}

async fn signed(app: &TestApp, event: &str, delivery: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let signature = sign(TEST_WEBHOOK_SECRET, &body);
    deliver(app, event, delivery, body, Some(signature)).await
}

/// A push of `commit` to `main` of the local repository at `repo`, changing `changed`,
/// shaped like the fixture GitHub sends.
fn local_push(repo: &Path, commit: &str, changed: &[&str]) -> Vec<u8> {
    let mut push: Value =
        serde_json::from_slice(&fixture("push-with-new-branch.payload.json")).unwrap();
    push["ref"] = Value::from("refs/heads/main");
    push["after"] = Value::from(commit);
    push["head_commit"]["id"] = Value::from(commit);
    push["repository"]["clone_url"] = Value::from(repo.to_str().unwrap());
    push["repository"]["default_branch"] = Value::from("main");
    push["commits"] =
        serde_json::json!([{"id": commit, "added": [], "modified": changed, "removed": []}]);
    serde_json::to_vec(&push).unwrap()
}

fn commit_file(repo: &Path, path: &str, text: &str) -> String {
    std::fs::create_dir_all(repo.join(path).parent().unwrap()).unwrap();
    std::fs::write(repo.join(path), text).unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", path]);
    git(repo, &["rev-parse", "HEAD"])
}

async fn wait_until_done(app: &TestApp, id: &str) -> isocrates_engine::Run {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let run = app.engine.run(id).await.unwrap();
        if run.status.is_terminal() {
            return run;
        }
        assert!(tokio::time::Instant::now() < deadline, "the job never ended: {run:?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

async fn job_count(app: &TestApp) -> usize {
    app.engine
        .runs(&isocrates_engine::RunFilter { limit: 100, ..Default::default() })
        .await
        .unwrap()
        .len()
}

on_both_backends! {
    async fn every_fixture_gets_the_answer_of_the_contract(db) {
        let app = TestApp::new(db, true).await;
        let (status, ping) = signed(&app, "ping", "d-ping", fixture("ping-payload.json")).await;
        assert_eq!((status, ping["status"].as_str(), &ping["job_id"]), (StatusCode::OK, Some("ok"), &Value::Null), "{ping}");

        for tag_deletion in ["push-payload.json", "push-1.payload.json", "push-with-organization.payload.json"] {
            let (status, answer) = signed(&app, "push", tag_deletion, fixture(tag_deletion)).await;
            assert_eq!(status, StatusCode::OK, "{tag_deletion}: {answer}");
            assert_eq!(answer["status"], "ignored", "{tag_deletion}: {answer}");
            assert!(answer["message"].as_str().unwrap().contains("deleted"), "{answer}");
        }
        assert_eq!(job_count(&app).await, 0, "a tag deletion creates no job");

        let (status, queued) = signed(&app, "push", "d-push", fixture("push-with-new-branch.payload.json")).await;
        assert_eq!((status, queued["status"].as_str()), (StatusCode::OK, Some("queued")), "{queued}");
        let job_id = queued["job_id"].as_str().unwrap().to_string();
        let token = app.admin_token().await;
        let job = app.get(&format!("/api/jobs/{job_id}"), Some(&token)).await.body;
        assert_eq!(job["repo_url"], "https://github.com/codertocat/hello-world");
        assert_eq!(job["commit_sha"], "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
        assert_eq!(job["trigger"], "webhook");
        let run = app.engine.run(&job_id).await.unwrap();
        assert_eq!(run.input["changed_paths"], serde_json::json!(["README.md"]), "{}", run.input);

        let (_, other) = signed(&app, "issues", "d-issue", b"{}".to_vec()).await;
        assert_eq!(other["status"], "ignored");
    }

    async fn a_signature_that_does_not_match_the_body_is_refused(db) {
        let app = TestApp::new(db, true).await;
        let body = fixture("push-with-new-branch.payload.json");
        let wrong = sign("another-secret", &body);
        let of_another_body = sign(TEST_WEBHOOK_SECRET, b"{\"ref\": \"refs/heads/master\"}");
        for (signature, case) in [
            (Some(wrong), "the wrong secret"),
            (None, "no signature"),
            (Some(of_another_body), "the signature of another body"),
            (Some("sha1=deadbeef".to_string()), "another algorithm"),
            (Some("sha256=not-hex".to_string()), "not hex"),
        ] {
            let (status, answer) = deliver(&app, "push", "d-bad", body.clone(), signature).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {answer}");
            assert_eq!(answer["error"], "UNAUTHORIZED", "{case}");
        }
        assert_eq!(job_count(&app).await, 0, "nothing was queued");
    }

    async fn a_redelivery_answers_the_job_of_the_first_delivery(db) {
        let app = TestApp::new(db, true).await;
        let body = fixture("push-with-new-branch.payload.json");
        let (_, first) = signed(&app, "push", "d-1", body.clone()).await;
        let (_, again) = signed(&app, "push", "d-1", body.clone()).await;
        assert_eq!(first["job_id"], again["job_id"]);
        assert!(again["message"].as_str().unwrap().contains("received before"), "{again}");
        let (_, other_delivery) = signed(&app, "push", "d-2", body).await;
        assert_eq!(first["job_id"], other_delivery["job_id"], "one job per repository and commit");
        assert_eq!(job_count(&app).await, 1);
    }

    async fn bad_json_and_other_branches_say_so(db) {
        let app = TestApp::new(db, true).await;
        let (status, answer) = signed(&app, "push", "d-json", b"{not json".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"], "VALIDATION_ERROR");

        let mut push: Value = serde_json::from_slice(&fixture("push-with-new-branch.payload.json")).unwrap();
        push["ref"] = Value::from("refs/heads/feature");
        let (status, answer) = signed(&app, "push", "d-feature", serde_json::to_vec(&push).unwrap()).await;
        assert_eq!((status, answer["status"].as_str()), (StatusCode::OK, Some("ignored")), "{answer}");
        assert!(answer["message"].as_str().unwrap().contains("not the tracked branch master"), "{answer}");

        let huge = vec![b' '; 6 * 1024 * 1024];
        let (status, answer) = signed(&app, "push", "d-huge", huge).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
        assert_eq!(job_count(&app).await, 0);
    }

    async fn a_push_to_a_local_repository_publishes_and_two_quick_pushes_leave_one_run(db) {
        let app = TestApp::new(db, true).await;
        let origin = tempfile::tempdir().unwrap();
        git(origin.path(), &["init", "-q", "-b", "main"]);
        commit_file(origin.path(), "README.md", "# Tiny\n\nA tiny crate.\n");
        commit_file(origin.path(), "Cargo.toml", "[package]\nname = \"tiny\"\n");
        let first = commit_file(origin.path(), "src/lib.rs", "/// One.\npub fn one() {}\n");

        // Two pushes before any worker runs: the newer supersedes the older.
        let (_, older) = signed(&app, "push", "p-1", local_push(origin.path(), &first, &["src/lib.rs"])).await;
        let second = commit_file(origin.path(), "src/lib.rs", "/// Two.\npub fn two() {}\n");
        let (_, newer) = signed(&app, "push", "p-2", local_push(origin.path(), &second, &["src/lib.rs"])).await;
        assert_ne!(older["job_id"], newer["job_id"]);
        let older_run = app.engine.run(older["job_id"].as_str().unwrap()).await.unwrap();
        assert!(older_run.status.is_terminal(), "the older queued run is superseded: {older_run:?}");

        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = app.engine.worker("webhook-test", 2).heartbeat(Duration::from_secs(2));
        tokio::spawn(worker.run(async move {
            let _ = stopped.await;
        }));
        let run = wait_until_done(&app, newer["job_id"].as_str().unwrap()).await;
        assert_eq!(run.status, isocrates_engine::RunStatus::Completed, "{:?}", run.error);
        let repo_url = origin.path().to_str().unwrap();
        let pages = app.db.storage.documents_of_repo(repo_url).await.unwrap();
        assert!(pages.len() >= 3, "{pages:?}");
        let version = &app.db.storage.versions(&pages[0].id, 0, 1).await.unwrap()[0];
        assert_eq!(version.author_metadata.as_ref().unwrap()["repo_commit_sha"], second.as_str(), "the newer commit is published");

        // The same delivery again is the same job, and does not run again.
        let (_, again) = signed(&app, "push", "p-2", local_push(origin.path(), &second, &["src/lib.rs"])).await;
        assert_eq!(again["job_id"], newer["job_id"]);
        // A push that changes no documented file ends skipped, at no cost.
        let third = commit_file(origin.path(), "notes.txt", "nothing to document\n");
        let (_, untouched) = signed(&app, "push", "p-3", local_push(origin.path(), &third, &["notes.txt"])).await;
        let skipped = wait_until_done(&app, untouched["job_id"].as_str().unwrap()).await;
        assert_eq!(skipped.status, isocrates_engine::RunStatus::Skipped, "{:?}", skipped.error);
        assert_eq!(skipped.usage.tokens_in, 0);

        // The first run made the repository tracked; an admin sees it and may move the
        // branch it follows.
        let admin = app.admin_token().await;
        let tracked = app.get("/api/repositories", Some(&admin)).await;
        assert_eq!(tracked.status, StatusCode::OK, "{:?}", tracked.body);
        let row = tracked.body.as_array().unwrap().iter().find(|r| r["repo_url"] == repo_url).expect("tracked").clone();
        assert_eq!(row["last_commit"], second.as_str());
        assert_eq!(row["tracked_branch"], "main");
        assert_eq!(row["folder"], origin.path().file_name().unwrap().to_str().unwrap());
        let id = row["id"].as_str().unwrap();
        let (_, viewer) = app.user(&admin, "viewer@example.com").await;
        assert_eq!(app.get("/api/repositories", Some(&viewer)).await.status, StatusCode::FORBIDDEN);
        let moved = app.put(&format!("/api/repositories/{id}"), Some(&admin), serde_json::json!({"branch": "release"})).await;
        assert_eq!(moved.body["tracked_branch"], "release", "{:?}", moved.body);
        let fourth = commit_file(origin.path(), "src/lib.rs", "/// Four.\npub fn four() {}\n");
        let (_, on_main) = signed(&app, "push", "p-4", local_push(origin.path(), &fourth, &["src/lib.rs"])).await;
        assert_eq!(on_main["status"], "ignored", "main is no longer followed: {on_main}");
        assert!(on_main["message"].as_str().unwrap().contains("release"), "{on_main}");
        let back = app.put(&format!("/api/repositories/{id}"), Some(&admin), serde_json::json!({"branch": null})).await;
        assert_eq!(back.body["tracked_branch"], "main");

        // Moving the repository's folder moves its pages, ids and all; its next run, from a
        // push that starts at the commit last published, updates them there.
        let before: Vec<String> = app.db.storage.documents_of_repo(repo_url).await.unwrap().into_iter().map(|d| d.id).collect();
        let moved = app.put(&format!("/api/repositories/{id}"), Some(&admin), serde_json::json!({"folder": "handbook/tiny"})).await;
        assert_eq!((moved.status, moved.body["folder"].as_str()), (StatusCode::OK, Some("handbook/tiny")), "{:?}", moved.body);
        let pages = app.db.storage.documents_of_repo(repo_url).await.unwrap();
        assert!(pages.iter().all(|p| p.path == "handbook/tiny" || p.path.starts_with("handbook/tiny/")), "{pages:?}");
        let mut ids: Vec<String> = pages.iter().map(|p| p.id.clone()).collect();
        let mut expected = before.clone();
        ids.sort();
        expected.sort();
        assert_eq!(ids, expected, "the pages keep their ids");
        let fifth = commit_file(origin.path(), "src/lib.rs", "/// Five.\npub fn five() {}\n");
        let mut push: Value = serde_json::from_slice(&local_push(origin.path(), &fifth, &["src/lib.rs"])).unwrap();
        push["before"] = Value::from(second.as_str());
        let (_, after_move) = signed(&app, "push", "p-5", serde_json::to_vec(&push).unwrap()).await;
        let run = wait_until_done(&app, after_move["job_id"].as_str().unwrap()).await;
        assert_eq!(run.status, isocrates_engine::RunStatus::Completed, "{:?}", run.error);
        let early = app.engine.checkpoints(std::slice::from_ref(&run), "check_early").await.unwrap().remove(&run.id).unwrap();
        assert_eq!(early["changes"]["from"], "push", "the push starts at the commit last published: {early}");
        let pages = app.db.storage.documents_of_repo(repo_url).await.unwrap();
        assert_eq!(pages.len(), before.len(), "no page left behind or made twice: {pages:?}");
        assert!(pages.iter().all(|p| p.path.starts_with("handbook/tiny")), "{pages:?}");
        assert!(pages.iter().any(|p| p.content.contains("five")), "{pages:?}");
        let inside = app.put(&format!("/api/repositories/{id}"), Some(&admin), serde_json::json!({"folder": "handbook/tiny/deeper"})).await;
        assert_eq!(inside.status, StatusCode::BAD_REQUEST, "{:?}", inside.body);
        assert_eq!(inside.body["details"]["field"], "folder", "{:?}", inside.body);
        assert_eq!(app.put("/api/repositories/nope", Some(&admin), serde_json::json!({"branch": "x"})).await.status, StatusCode::NOT_FOUND);

        // The periodic refresh runs the head of every tracked repository, once while live.
        let _ = stop.send(());
        let started = isocrates_workflows::docgen::refresh_all(&app.engine, &app.db.storage).await.unwrap();
        assert_eq!(started, 1);
        assert_eq!(isocrates_workflows::docgen::refresh_all(&app.engine, &app.db.storage).await.unwrap(), 0, "deduplicated like any run");
        let refreshes = app.engine.runs(&isocrates_engine::RunFilter { status: Some(isocrates_engine::RunStatus::Queued), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(refreshes.len(), 1);
        assert_eq!(refreshes[0].trigger, "schedule");
    }

    async fn a_push_rewrites_only_the_pages_that_read_what_it_changed(db) {
        // A model server that answers the planner with prose (so the plan comes from the
        // analysis) and counts the pages it is asked to write.
        let written = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = written.clone();
        let model = axum::Router::new().route(
            "/v1/chat/completions",
            axum::routing::post(move |body: axum::Json<Value>| {
                let seen = seen.clone();
                async move {
                    let system = body["messages"][0]["content"].as_str().unwrap_or_default();
                    let prompt = body["messages"][1]["content"].as_str().unwrap_or_default();
                    let text = if system.contains("editor of a technical wiki") {
                        "A lovely wiki, I think.".to_string()
                    } else {
                        let page = written_page_title(prompt);
                        seen.lock().unwrap().push(page.clone());
                        format!("# {page}\n\n{page} is written by the model.\n")
                    };
                    axum::Json(chat_completion(&text, 100, 40))
                }
            }),
        );
        let url = format!("{}/v1", serve_on_loopback(model).await);
        let repos = tempfile::tempdir().unwrap();
        let docgen = model_docgen(&db.storage, repos.path(), &url);
        let app = TestApp::with_workflows(db, vec![pipeline::workflow(Arc::new(docgen))], |_| {}).await;
        let origin = tempfile::tempdir().unwrap();
        git(origin.path(), &["init", "-q", "-b", "main"]);
        commit_file(origin.path(), "README.md", "# Shop\n\nSells things.\n");
        commit_file(origin.path(), "Cargo.toml", "[workspace]\nmembers = [\"core\", \"cli\"]\n");
        commit_file(origin.path(), "core/Cargo.toml", "[package]\nname = \"shop-core\"\n");
        commit_file(origin.path(), "core/src/lib.rs", "/// Carts.\npub mod cart;\n");
        commit_file(origin.path(), "core/src/cart.rs", "/// A cart.\npub struct Cart;\n");
        commit_file(origin.path(), "cli/Cargo.toml", "[package]\nname = \"shop-cli\"\n");
        let first = commit_file(origin.path(), "cli/src/main.rs", "fn main() {}\n");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = app.engine.worker("model-test", 2).heartbeat(Duration::from_secs(2));
        tokio::spawn(worker.run(async move {
            let _ = stopped.await;
        }));

        let (_, queued) = signed(&app, "push", "m-1", local_push(origin.path(), &first, &["cli/src/main.rs"])).await;
        let run = wait_until_done(&app, queued["job_id"].as_str().unwrap()).await;
        assert_eq!(run.status, isocrates_engine::RunStatus::Completed, "{:?}", run.error);
        let repo_url = origin.path().to_str().unwrap();
        let pages = app.db.storage.documents_of_repo(repo_url).await.unwrap();
        let mut readers = Vec::new();
        for page in &pages {
            let latest = &app.db.storage.versions(&page.id, 0, 1).await.unwrap()[0];
            let sources = &latest.author_metadata.as_ref().unwrap()["source_files"];
            if sources.as_array().unwrap().iter().any(|s| s == "core/src/cart.rs") {
                readers.push(page.title.clone());
            }
        }
        readers.sort();
        assert!(!readers.is_empty() && readers.len() < pages.len(), "{readers:?} of {} pages", pages.len());

        written.lock().unwrap().clear();
        let second = commit_file(origin.path(), "core/src/cart.rs", "/// A cart with a total.\npub struct Cart;\n");
        let mut push: Value = serde_json::from_slice(&local_push(origin.path(), &second, &["core/src/cart.rs"])).unwrap();
        push["before"] = Value::from(first.as_str());
        let (_, queued) = signed(&app, "push", "m-2", serde_json::to_vec(&push).unwrap()).await;
        let run = wait_until_done(&app, queued["job_id"].as_str().unwrap()).await;
        assert_eq!(run.status, isocrates_engine::RunStatus::Completed, "{:?}", run.error);
        let mut rewritten = written.lock().unwrap().clone();
        rewritten.sort();
        assert_eq!(rewritten, readers, "the model wrote the pages that read core/src/cart.rs, and no other");
        let early = app.engine.checkpoints(std::slice::from_ref(&run), "check_early").await.unwrap().remove(&run.id).unwrap();
        assert_eq!(early["changes"]["from"], "push", "the push's own list, as it starts at the commit published: {early}");
        assert_eq!(early["changes"]["paths"], serde_json::json!(["core/src/cart.rs"]));
        assert_eq!(run.usage.tokens_in, 100 * readers.len() as i64, "and was paid for those alone");
        let _ = stop.send(());
    }

    async fn two_hundred_deliveries_over_twenty_repositories_publish_every_newest_commit(db) {
        const REPOS: usize = 20;
        const PUSHES: usize = 10;
        let app = TestApp::new(db, true).await;
        let root = tempfile::tempdir().unwrap();
        // Every repository gets its ten commits first; the pushes then arrive in rounds.
        let mut commits: Vec<Vec<String>> = Vec::new();
        for r in 0..REPOS {
            let repo = root.path().join(format!("repo{r}"));
            std::fs::create_dir_all(&repo).unwrap();
            git(&repo, &["init", "-q", "-b", "main"]);
            commit_file(&repo, "Cargo.toml", &format!("[package]\nname = \"repo{r}\"\n"));
            let mut shas = Vec::new();
            for k in 0..PUSHES {
                shas.push(commit_file(&repo, "src/lib.rs", &format!("/// Version {k}.\npub fn v{k}() {{}}\n")));
            }
            commits.push(shas);
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = app.engine.worker("load-test", 2).heartbeat(Duration::from_secs(2));
        tokio::spawn(worker.run(async move {
            let _ = stopped.await;
        }));

        // Ten rounds of twenty pushes, 40 ms apart: the 200 deliveries arrive within a few
        // seconds while the worker runs.
        let mut last_jobs = vec![String::new(); REPOS];
        for k in 0..PUSHES {
            for (r, (shas, last)) in commits.iter().zip(last_jobs.iter_mut()).enumerate() {
                let repo = root.path().join(format!("repo{r}"));
                let body = local_push(&repo, &shas[k], &["src/lib.rs"]);
                let (status, answer) = signed(&app, "push", &format!("load-{r}-{k}"), body).await;
                assert_eq!((status, answer["status"].as_str()), (StatusCode::OK, Some("queued")), "{answer}");
                *last = answer["job_id"].as_str().unwrap().to_string();
            }
            let queued = app
                .engine
                .runs(&isocrates_engine::RunFilter { status: Some(isocrates_engine::RunStatus::Queued), limit: 1000, ..Default::default() })
                .await
                .unwrap();
            let mut per_repo = std::collections::HashMap::new();
            for run in &queued {
                *per_repo.entry(run.concurrency_key.clone()).or_insert(0) += 1;
            }
            assert!(per_repo.values().all(|n| *n <= 1), "at most one queued run per repository: {per_repo:?}");
            tokio::time::sleep(Duration::from_millis(40)).await;
        }

        for (r, job) in last_jobs.iter().enumerate() {
            let run = wait_until_done(&app, job).await;
            assert!(
                matches!(run.status, isocrates_engine::RunStatus::Completed | isocrates_engine::RunStatus::Skipped),
                "repo{r}: {:?} {:?}", run.status, run.error
            );
            let repo = root.path().join(format!("repo{r}"));
            let pages = app.db.storage.documents_of_repo(repo.to_str().unwrap()).await.unwrap();
            let core = pages.iter().find(|p| p.content.contains("src/lib.rs")).expect("a page on src/lib.rs");
            let latest = &app.db.storage.versions(&core.id, 0, 1).await.unwrap()[0];
            assert_eq!(
                latest.author_metadata.as_ref().unwrap()["repo_commit_sha"],
                commits[r][PUSHES - 1].as_str(),
                "repo{r}: the newest commit is published"
            );
        }
        let _ = stop.send(());
    }
}
