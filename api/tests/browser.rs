//! The web page in a real browser: headless Chromium over WebDriver, against the server on
//! a loopback port with auth on and a worker running the documentation workflow (static
//! provider) on local git repositories. One screenshot per page is kept under
//! `<target>/tmp/screenshots/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use isocrates_testkit::webdriver::Browser;
use isocrates_testkit::{TestApp, TestDb, git};
use serde_json::json;

/// Where the screenshots go: the target folder's scratch space, outside the clone.
fn shots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
}

/// A git repository with a little Rust crate in it, at `dir`.
fn make_repository(dir: &Path) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.email", "dev@example.com"]);
    git(dir, &["config", "user.name", "Dev"]);
    std::fs::write(dir.join("README.md"), "# Shop\n\nSells things.\n").unwrap();
    std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"shop\"\nversion = \"0.1.0\"\n")
        .unwrap();
    std::fs::write(dir.join("src/lib.rs"), "//! Carts.\n\n/// A cart.\npub struct Cart;\n")
        .unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "first"]);
}

/// A worker for the app's engine, stopped when the returned sender drops.
fn start_worker(app: &TestApp) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = app.engine.worker("browser-test", 2).heartbeat(Duration::from_secs(2));
    tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    stop
}

async fn sign_in(browser: &Browser, base: &str, email: &str, password: &str) {
    browser.open(&format!("{base}/login")).await;
    browser.type_into(&browser.find("#email").await, email).await;
    browser.type_into(&browser.find("#password").await, password).await;
    browser.click(&browser.find("form button[type=submit]").await).await;
    browser.find("#who").await;
}

async fn sign_out(browser: &Browser) {
    browser.click(&browser.find(".who button").await).await;
    browser.find("#email").await;
}

/// Waits for the page at a path ending with `suffix`.
async fn wait_for_path(browser: &Browser, suffix: &str) {
    let script = format!("return location.pathname.endsWith({});", json!(suffix));
    browser.wait_for(&format!("the page {suffix}"), &script).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_reads_edits_and_operates_through_the_web_page() {
    let app = TestApp::new(TestDb::sqlite().await, true).await;
    let _worker = start_worker(&app);
    let base = app.serve().await;
    let browser = Browser::start(&shots()).await;

    // First run: the setup screen makes the admin, who is signed in at once.
    browser.open(&format!("{base}/")).await;
    wait_for_path(&browser, "/setup").await;
    browser.screenshot("01-setup").await;
    browser.type_into(&browser.find("#display_name").await, "Ada Admin").await;
    browser.type_into(&browser.find("#email").await, "ada@example.com").await;
    browser.type_into(&browser.find("#password").await, "ada-password").await;
    browser.click(&browser.find("form button[type=submit]").await).await;
    let who = browser.find("#who").await;
    assert!(browser.text(&who).await.contains("Ada Admin"));

    // Documents to read, made through the API.
    let admin = app.login("ada@example.com", "ada-password").await;
    let overview = "# Overview\n\nThe shop is deployed as the [[Deploy Guide]] says; [[Nowhere]] is not written yet.\n\n\
        | part | language |\n|---|---|\n| core | Rust |\n\n```rust\nfn main() {}\n```\n\n\
        ```mermaid\ngraph TD; Web-->Core; Core-->Database;\n```\n";
    let overview_id = app
        .post("/api/docs", Some(&admin), json!({"title": "Overview", "path": "team/shop", "content": overview,
            "description": "The shop at a glance", "keywords": ["shop"], "author_type": "ai",
            "author_metadata": {"repo_commit_sha": "0123456789abcdef", "writer_model": "test-writer", "source_files": ["src/lib.rs"]}}))
        .await
        .body["id"].as_str().unwrap().to_string();
    let guide_id = app
        .post("/api/docs", Some(&admin), json!({"title": "Deploy Guide", "path": "team/shop", "content": "# Deploy Guide\n\nRun the release pipeline, then watch the dashboards.\n", "author_type": "human"}))
        .await
        .body["id"].as_str().unwrap().to_string();
    app.post("/api/docs", Some(&admin), json!({"title": "Payroll", "path": "secret/hr", "content": "Salaries.", "author_type": "human"})).await;

    // Sign out and in again.
    sign_out(&browser).await;
    browser.screenshot("02-sign-in").await;
    sign_in(&browser, &base, "ada@example.com", "ada-password").await;
    browser.screenshot("03-home").await;

    // Open a document from the tree.
    browser.click(&browser.find("details[data-path='team'] > summary").await).await;
    browser.click(&browser.find("details[data-path='team/shop'] > summary").await).await;
    let link =
        browser.find(&format!("nav[aria-label=Documents] a[href$='/d/{overview_id}']")).await;
    browser.click(&link).await;
    wait_for_path(&browser, &format!("/d/{overview_id}")).await;
    assert_eq!(browser.text(&browser.find("#doc-title").await).await, "Overview");
    browser.find("#content table").await;
    // The mermaid diagram is drawn, and the broken link is marked.
    browser.find("#content pre.mermaid svg").await;
    let broken = browser.find("#content .wikilink.broken").await;
    assert_eq!(browser.text(&broken).await, "Nowhere");
    let text = browser.page_text().await;
    for fact in
        ["The shop at a glance", "0123456789ab", "test-writer", "src/lib.rs", "Deploy Guide"]
    {
        assert!(text.contains(fact), "the document page lacks {fact}");
    }
    browser.screenshot("04-document").await;

    // Follow the wikilink.
    browser.click(&browser.find("#content a.wikilink").await).await;
    wait_for_path(&browser, &format!("/d/{guide_id}")).await;
    assert_eq!(browser.text(&browser.find("#doc-title").await).await, "Deploy Guide");
    assert!(browser.page_text().await.contains("Overview"), "the link in is listed");

    // Search as one types, then open a hit.
    browser.open(&format!("{base}/search")).await;
    browser.type_into(&browser.find("#q").await, "dashboards").await;
    let hit = browser.find("#results a.hit").await;
    assert_eq!(browser.text(&hit).await, "Deploy Guide");
    assert!(
        browser
            .text(&browser.find("#results .snippet mark").await)
            .await
            .to_lowercase()
            .starts_with("dashboard")
    );
    browser.screenshot("05-search").await;
    browser.click(&hit).await;
    wait_for_path(&browser, &format!("/d/{guide_id}")).await;

    // Edit with a preview, and save a human version.
    browser.click(&browser.find("#edit-link").await).await;
    let content = browser.find("#content").await;
    browser.clear(&content).await;
    browser.type_into(&content, "# Deploy Guide\n\nRun the **release pipeline** twice.\n").await;
    browser.wait_for("the preview", "return !!document.querySelector('#preview strong');").await;
    browser.screenshot("06-edit").await;
    browser.click(&browser.find("#editor button[type=submit]").await).await;
    wait_for_path(&browser, &format!("/d/{guide_id}")).await;
    browser
        .wait_for(
            "the saved text",
            "return document.querySelector('#content strong')?.textContent === 'release pipeline';",
        )
        .await;

    // A stale edit shows the conflict and keeps the draft.
    browser.click(&browser.find("#edit-link").await).await;
    let content = browser.find("#content").await;
    app.put(
        &format!("/api/docs/{guide_id}"),
        Some(&admin),
        json!({"content": "# Deploy Guide\n\nSomeone else's words.\n", "author_type": "human"}),
    )
    .await;
    browser.type_into(&content, "My draft line.\n").await;
    browser.click(&browser.find("#editor button[type=submit]").await).await;
    browser.find(".conflict:not([hidden])").await;
    let draft = browser.run("return document.getElementById('content').value;", json!([])).await;
    assert!(draft.as_str().unwrap().contains("My draft line."), "the draft is kept: {draft}");
    browser.screenshot("07-conflict").await;
    browser.click(&browser.find("[data-overwrite]").await).await;
    wait_for_path(&browser, &format!("/d/{guide_id}")).await;
    assert!(browser.page_text().await.contains("My draft line."));

    // The history holds the new versions; their diff shows what changed.
    browser.click(&browser.find("a[href$='/history']").await).await;
    let rows = browser.find_all("form.history tbody tr").await;
    assert_eq!(rows.len(), 4, "created, edited, changed elsewhere, saved over");
    browser.screenshot("08-history").await;
    browser.click(&browser.find("form.history button[type=submit]").await).await;
    browser.find("table.diff tr.added").await;
    let added = browser.run("return [...document.querySelectorAll('table.diff tr.added code')].map(c => c.textContent);", json!([])).await;
    assert!(added.to_string().contains("My draft line."), "{added}");
    browser.screenshot("09-diff").await;

    // A run on a local repository, watched to the end on its page.
    let repos = tempfile::tempdir().unwrap();
    let shop_repo = repos.path().join("shop");
    make_repository(&shop_repo);
    browser.open(&format!("{base}/jobs")).await;
    browser.type_into(&browser.find("#repo_url").await, shop_repo.to_str().unwrap()).await;
    browser.click(&browser.find("#run-form button[type=submit]").await).await;
    browser.wait_for("the job page", "return location.pathname.includes('/jobs/');").await;
    browser
        .wait_for(
            "the job to complete",
            "return document.getElementById('job-status')?.textContent === 'completed';",
        )
        .await;
    let progress = browser.text(&browser.find(".job-status").await).await;
    assert!(progress.contains("7 of 7 steps done"), "{progress}");
    assert!(browser.page_text().await.contains("Pages written"));
    browser.screenshot("10-job").await;
    browser.open(&format!("{base}/jobs")).await;
    browser.find("table.jobs .status.completed").await;
    browser.screenshot("11-jobs").await;

    // A run that fails, retried once its repository exists.
    let later = repos.path().join("later");
    browser.type_into(&browser.find("#repo_url").await, later.to_str().unwrap()).await;
    browser.click(&browser.find("#run-form button[type=submit]").await).await;
    browser
        .wait_for(
            "the job to fail",
            "return document.getElementById('job-status')?.textContent === 'failed';",
        )
        .await;
    assert!(browser.text(&browser.find("#job-error").await).await.contains("no such folder"));
    browser.screenshot("12-failed-job").await;
    make_repository(&later);
    browser.click(&browser.find("#retry-form button[type=submit]").await).await;
    browser
        .wait_for(
            "the retried job to complete",
            "return document.getElementById('job-status')?.textContent === 'completed';",
        )
        .await;
    browser.screenshot("13-retried-job").await;

    // Trash and restore.
    browser.open(&format!("{base}/d/{guide_id}")).await;
    browser.click(&browser.find("button.danger[data-method=DELETE]").await).await;
    assert!(browser.dialog().await.unwrap_or_default().contains("trash"));
    browser.accept_dialog().await;
    wait_for_path(&browser, "/trash").await;
    browser.screenshot("14-trash").await;
    browser.click(&browser.find("button[aria-label='Restore Deploy Guide']").await).await;
    wait_for_path(&browser, &format!("/d/{guide_id}")).await;

    // A personal folder holding a reference to the guide.
    browser.open(&format!("{base}/personal")).await;
    browser.type_into(&browser.find("#folder-name").await, "Favourites").await;
    browser.click(&browser.find("#new-folder button[type=submit]").await).await;
    browser
        .wait_for(
            "the new folder",
            "return document.querySelector('.personal')?.textContent.includes('Favourites');",
        )
        .await;
    browser.open(&format!("{base}/d/{guide_id}")).await;
    browser.click(&browser.find("form.add-ref button[type=submit]").await).await;
    browser
        .wait_for("the reference", &format!("return !!document.querySelector(\"nav[aria-label='My pages'] a[href$='/d/{guide_id}']\");"))
        .await;
    browser.screenshot("15-personal").await;

    // Admin: a new user, given a viewer grant on the team's folder.
    browser.open(&format!("{base}/admin")).await;
    browser.type_into(&browser.find("#new-name").await, "Vic Viewer").await;
    browser.type_into(&browser.find("#new-email").await, "vic@example.com").await;
    browser.type_into(&browser.find("#new-password").await, "vic-password").await;
    browser.click(&browser.find("#new-user button[type=submit]").await).await;
    browser
        .wait_for("the new user", "return document.body.textContent.includes('vic@example.com');")
        .await;
    let vic = app
        .db
        .storage
        .users()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.email == "vic@example.com")
        .unwrap();
    browser.type_into(&browser.find(&format!("#prefix-{}", vic.id)).await, "team").await;
    browser
        .click(&browser.find(&format!("#user-{} form[data-api$='/grants'] button", vic.id)).await)
        .await;
    browser
        .wait_for(
            "the grant",
            &format!(
                "return document.querySelector('#user-{} .grants')?.textContent.includes('team');",
                vic.id
            ),
        )
        .await;
    browser.screenshot("16-admin").await;
    sign_out(&browser).await;

    // The viewer reads, sees no edit control and nothing outside the grant.
    sign_in(&browser, &base, "vic@example.com", "vic-password").await;
    browser.open(&format!("{base}/d/{guide_id}")).await;
    browser.find("#doc-title").await;
    assert!(browser.find_now("#edit-link").await.is_none(), "a viewer is shown no edit link");
    assert!(browser.find_now("button[data-method=DELETE]").await.is_none());
    let text = browser.page_text().await;
    assert!(!text.contains("Payroll") && !text.contains("secret"), "the tree shows only the grant");
    browser.screenshot("17-viewer").await;
    browser.open(&format!("{base}/d/{guide_id}/edit")).await;
    assert!(browser.page_text().await.contains("not edit it"));
    let refused = browser
        .run_async(
            "const done = arguments[arguments.length - 1]; fetch(arguments[0], {method: 'PUT', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': document.body.dataset.csrf}, body: JSON.stringify({content: 'vandalised', author_type: 'human'})}).then(r => done(r.status));",
            json!([format!("{base}/api/docs/{guide_id}")]),
        )
        .await;
    assert_eq!(refused, json!(403), "the server refuses the viewer's edit");

    // From the keyboard, the first Tab reaches the link that skips to the content.
    browser.open(&format!("{base}/d/{guide_id}")).await;
    browser.find("#doc-title").await;
    browser.press("\u{E004}").await;
    let focused = browser.run("return document.activeElement.className;", json!([])).await;
    assert_eq!(focused, json!("skip"), "the skip link comes first");
    browser.press("\u{E007}").await;
    browser
        .wait_for("the skip to the content", "return document.activeElement.id === 'main';")
        .await;

    // On a phone's width, nothing scrolls sideways and the tree folds away.
    browser.resize(390, 844).await;
    browser.open(&format!("{base}/d/{guide_id}")).await;
    browser.find("#doc-title").await;
    let overflow = browser
        .run(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            json!([]),
        )
        .await;
    assert_eq!(overflow, json!(0), "the page fits a phone's width");
    let fold = browser.find(".browse > summary").await;
    assert!(browser.run("return getComputedStyle(document.querySelector('.browse > summary')).display !== 'none';", json!([])).await == json!(true));
    assert_eq!(
        browser.run("return document.querySelector('details.browse').open;", json!([])).await,
        json!(false)
    );
    browser.click(&fold).await;
    browser.find(&format!("nav[aria-label=Documents] a[href$='/d/{guide_id}']")).await;
    browser.screenshot("18-phone").await;
    browser.resize(1280, 900).await;

    browser.open(&format!("{base}/")).await;
    sign_out(&browser).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_document_runs_no_script() {
    let app = TestApp::new(TestDb::sqlite().await, true).await;
    let admin = app.admin_token().await;
    let hostile = "# Hostile\n\n<script>window.pwned = 1; alert('script tag')</script>\n\n\
        <img src=\"x\" onerror=\"window.pwned = 2; alert('onerror')\">\n\n\
        <a href=\"#\" onmouseover=\"window.pwned = 3\" id=\"hover\">hover me</a>\n\n\
        [a javascript link](javascript:window.pwned=4;alert('link'))\n\n\
        [[x\" onclick=\"window.pwned=5]]\n\n\
        <iframe src=\"javascript:alert('frame')\"></iframe>\n\n\
        ![img](javascript:alert('img'))\n\n\
        ```mermaid\ngraph TD; A[\"<img src=x onerror=alert('mermaid')>\"]-->B;\n```\n";
    let id = app
        .post(
            "/api/docs",
            Some(&admin),
            json!({"title": "Hostile", "path": "team", "content": hostile, "author_type": "human"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let base = app.serve().await;
    let browser = Browser::start(&shots()).await;
    browser.open(&format!("{base}/login")).await;
    browser.type_into(&browser.find("#email").await, "admin@example.com").await;
    browser.type_into(&browser.find("#password").await, "admin-password").await;
    browser.click(&browser.find("form button[type=submit]").await).await;
    browser.find("#who").await;

    browser.open(&format!("{base}/d/{id}")).await;
    browser.find("#content").await;
    // Give anything that would run the chance to, hover and click included.
    browser.find("#content pre.mermaid svg").await;
    for link in browser.find_all("#content a, #content span").await {
        browser.click(&link).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(browser.dialog().await, None, "no script opened a dialog");
    let pwned =
        browser.run("return window.pwned === undefined ? null : window.pwned;", json!([])).await;
    assert_eq!(pwned, serde_json::Value::Null, "no script of the document ran");
    let text = browser.page_text().await;
    assert!(text.contains("<script>window.pwned = 1"), "the script is shown as text");
    let active = "#content script, #content iframe, #content img[src^='javascript:'], #content [onerror], \
                  #content [onclick], #content [onmouseover], #content a[href^='javascript:'], \
                  #content a[href^='JavaScript:']";
    assert_eq!(
        browser.find_all(active).await.len(),
        0,
        "no element of the document can run script"
    );
    browser.screenshot("19-hostile-document").await;
}
