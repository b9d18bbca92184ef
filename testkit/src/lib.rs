//! Test support shared by the crates' test suites: a fresh database per test on SQLite (a
//! file in a temporary folder) or PostgreSQL (a new database on the local server), a macro
//! that runs one suite on both, and an in-process client of the API.
//!
//! PostgreSQL is found at `ISOCRATES_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it is down the PostgreSQL tests
//! fail, saying how to start it; they are never skipped.

pub mod webdriver;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use isocrates_api::{ApiConfig, AppState};
use isocrates_engine::Engine;
use isocrates_storage::Storage;
use isocrates_workflows::git::GitConfig;
use isocrates_workflows::pipeline::{Docgen, Models, Settings};
use isocrates_workflows::prompts::Prompts;
use serde_json::Value;
use sqlx::Connection;
use tower::ServiceExt;

/// The server the PostgreSQL tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("ISOCRATES_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// The secret the test API checks webhook signatures with.
pub const TEST_WEBHOOK_SECRET: &str = "test-webhook-secret";

/// Runs `git ARGS` in `dir` as a fixed author and returns what it printed, trimmed; a
/// failing git fails the test with git's message.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Serves `app` on a free loopback port for the rest of the test; returns
/// `http://127.0.0.1:PORT`.
pub async fn serve_on_loopback(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the test server runs") });
    url
}

/// A chat completion as OpenAI's API answers one, with its token counts.
pub fn chat_completion(text: &str, tokens_in: u64, tokens_out: u64) -> Value {
    serde_json::json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1,
        "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out},
    })
}

/// The title of the page a writer prompt asks for: its first line is `Page: TITLE (TYPE).`
pub fn written_page_title(prompt: &str) -> String {
    let first = prompt.lines().next().unwrap_or_default().trim_start_matches("Page: ");
    first.rsplit_once(" (").map_or(first, |(title, _)| title).to_string()
}

/// Writes `text` to `path` under `dir`, making its folders.
pub fn write_file(dir: &std::path::Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().expect("a file has a folder")).expect("its folder");
    std::fs::write(path, text).expect("the file is written");
}

/// A repository of about fifty files: a Rust workspace of two crates, a Python package, a
/// TypeScript web app, a Go service and a Java library, with a README and the files a
/// real repository carries that are not documentation's business (a lock file, vendored
/// code, an image).
pub fn shop(dir: &std::path::Path) -> String {
    git(dir, &["init", "-q", "-b", "main"]);
    write_file(
        dir,
        "README.md",
        "# Shop\n\nSells widgets online.\n\n## Getting started\n\nRun `cargo build` and `npm start`.\n",
    );
    write_file(dir, "Cargo.toml", "[workspace]\nmembers = [\"core\", \"cli\"]\n");
    write_file(dir, "Cargo.lock", "# generated\n");
    write_file(
        dir,
        "core/Cargo.toml",
        "[package]\nname = \"shop-core\"\ndescription = \"Carts, prices and orders.\"\n",
    );
    write_file(
        dir,
        "core/src/lib.rs",
        "//! The shop's core.\npub mod cart;\npub mod price;\npub mod order;\n",
    );
    for (name, ty) in [("cart", "Cart"), ("price", "Price"), ("order", "Order")] {
        write_file(
            dir,
            &format!("core/src/{name}.rs"),
            &format!(
                "/// A {name}.\npub struct {ty} {{\n    pub id: u64,\n}}\n\nimpl {ty} {{\n    /// Makes one.\n    pub fn new(id: u64) -> {ty} {{ {ty} {{ id }} }}\n}}\n"
            ),
        );
    }
    for i in 0..6 {
        write_file(
            dir,
            &format!("core/src/rules/rule{i}.rs"),
            &format!("/// Rule {i}.\npub fn rule{i}(total: u64) -> u64 {{ total + {i} }}\n"),
        );
    }
    write_file(dir, "cli/Cargo.toml", "[package]\nname = \"shop-cli\"\n");
    write_file(
        dir,
        "cli/src/main.rs",
        "use shop_core::cart::Cart;\n\nfn main() {\n    let _ = Cart::new(1);\n}\n",
    );
    write_file(dir, "cli/src/args.rs", "/// Command-line arguments.\npub struct Args;\n");
    write_file(
        dir,
        "tools/pyproject.toml",
        "[project]\nname = \"shop-tools\"\ndescription = \"Reports on sales.\"\n",
    );
    write_file(dir, "tools/reports/__init__.py", "");
    for i in 0..6 {
        write_file(
            dir,
            &format!("tools/reports/report{i}.py"),
            &format!("def report{i}(rows):\n    \"\"\"Report {i}.\"\"\"\n    return len(rows)\n"),
        );
    }
    write_file(
        dir,
        "tools/main.py",
        "from reports.report0 import report0\n\nif __name__ == \"__main__\":\n    report0([])\n",
    );
    write_file(
        dir,
        "web/package.json",
        r#"{"name": "shop-web", "description": "The storefront.", "main": "src/index.ts"}"#,
    );
    write_file(
        dir,
        "web/src/index.ts",
        "import { api } from './api';\nexport const start = () => api('/');\n",
    );
    write_file(
        dir,
        "web/src/api.ts",
        "/** Calls the shop's API. */\nexport function api(path: string) { return fetch(path); }\n",
    );
    for i in 0..6 {
        write_file(
            dir,
            &format!("web/src/components/Widget{i}.tsx"),
            &format!("export const Widget{i} = () => <div>{i}</div>;\n"),
        );
    }
    write_file(dir, "web/node_modules/left-pad/index.js", "module.exports = () => 1;\n");
    write_file(dir, "svc/go.mod", "module example.com/shop/svc\n\ngo 1.22\n");
    write_file(
        dir,
        "svc/main.go",
        "package main\n\nimport \"example.com/shop/svc/store\"\n\nfunc main() { store.Open() }\n",
    );
    for i in 0..5 {
        write_file(
            dir,
            &format!("svc/store/store{i}.go"),
            &format!("package store\n\n// Open{i} opens store {i}.\nfunc Open{i}() {{}}\n"),
        );
    }
    write_file(
        dir,
        "svc/store/open.go",
        "package store\n\n// Open opens the store.\nfunc Open() {}\n",
    );
    write_file(
        dir,
        "lib/pom.xml",
        "<project><artifactId>shop-lib</artifactId><description>Shared Java code.</description></project>",
    );
    for i in 0..4 {
        write_file(
            dir,
            &format!("lib/src/main/java/com/shop/Util{i}.java"),
            &format!(
                "package com.shop;\n\n/** Util {i}. */\npublic class Util{i} {{\n    public static int twice(int x) {{ return x * 2; }}\n}}\n"
            ),
        );
    }
    std::fs::write(dir.join("logo.png"), [0x89, b'P', b'N', b'G', 0, 0, 1, 2])
        .expect("the test repository is written");
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "the shop"]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A fresh, migrated database that disappears with the value.
pub struct TestDb {
    /// The URL the database answers at.
    pub url: String,
    /// The store over it.
    pub storage: Storage,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    /// A new SQLite file in a temporary folder.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("create a temporary folder");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let storage = Storage::open(&url).await.expect("open a fresh SQLite database");
        TestDb { url, storage, _dir: Some(dir), pg_name: None }
    }

    /// A new database on the local PostgreSQL server.
    pub async fn postgres() -> TestDb {
        let admin = postgres_admin_url();
        let name = format!("isocrates_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn =
            tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(&admin))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_else(|| {
                    panic!(
                        "PostgreSQL is not reachable at {admin}: start it (pg_ctlcluster \
                     --skip-systemctl-redirect $(ls /etc/postgresql) main start) or set \
                     ISOCRATES_TEST_POSTGRES_URL"
                    )
                });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        let _ = conn.close().await;
        let url = replace_database(&admin, &name);
        let storage = Storage::open(&url).await.expect("open the fresh PostgreSQL database");
        TestDb { url, storage, _dir: None, pg_name: Some(name) }
    }
}

/// The role owning the databases of [`TestDb::postgres_as_owner`]: it may log in and
/// owns what it creates, but is no superuser.
const PLAIN_OWNER: &str = "isocrates_test_owner";

impl TestDb {
    /// A new database on the local PostgreSQL server, owned and opened by a role that is no
    /// superuser, as in a deployment where the application's user only owns its database
    /// (the test server trusts local connections, so the role needs no password).
    pub async fn postgres_as_owner() -> TestDb {
        let admin = postgres_admin_url();
        let name = format!("isocrates_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("reach PostgreSQL");
        // Tests run at once: a concurrent creation of the role is as good as our own.
        let role = format!(
            "DO $$ BEGIN CREATE ROLE {PLAIN_OWNER} LOGIN NOSUPERUSER; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        );
        sqlx::query(sqlx::AssertSqlSafe(role)).execute(&mut conn).await.expect("create the role");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name} OWNER {PLAIN_OWNER}")))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        let _ = conn.close().await;
        let url = replace_user(&replace_database(&admin, &name), PLAIN_OWNER);
        let storage = Storage::open(&url).await.expect("open the database as its owner");
        TestDb { url, storage, _dir: None, pg_name: Some(name) }
    }

    /// The URL of this PostgreSQL database for the superuser the tests connect as.
    pub fn superuser_url(&self) -> Option<String> {
        self.pg_name.as_ref().map(|name| replace_database(&postgres_admin_url(), name))
    }
}

/// `url` with its user (and password) replaced by `user`.
fn replace_user(url: &str, user: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let host_start = rest.find('@').map_or(0, |at| at + 1);
    format!("{}{user}@{}", &url[..scheme_end], &rest[host_start..])
}

/// `url` with its database name replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        let admin = postgres_admin_url();
        // Drop runs inside the test's runtime; a thread with its own runtime can block.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// Runs each test once on SQLite and once on PostgreSQL, each with a fresh [`TestDb`].
///
/// ```ignore
/// isocrates_testkit::on_both_backends! {
///     async fn creates_a_document(db) { ... }
/// }
/// ```
#[macro_export]
macro_rules! on_both_backends {
    ($(async fn $name:ident($db:ident) $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $db = $crate::TestDb::sqlite().await;
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $db = $crate::TestDb::postgres().await;
                    $body
                }
            )*
        }
    };
}

/// The JWT secret of test apps.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// The API in-process over a test database, driven request by request.
pub struct TestApp {
    /// The database behind it.
    pub db: TestDb,
    /// The workflow engine behind its jobs.
    pub engine: Engine,
    service: isocrates_api::AppService,
    _repos: tempfile::TempDir,
}

/// The documentation workflow for tests, over `storage`: the static provider, the built-in
/// prompts, local repositories allowed, clones under `repos`.
pub fn test_docgen(storage: &Storage, repos: &std::path::Path) -> Docgen {
    Docgen {
        storage: storage.clone(),
        git: GitConfig { allow_local: true, ..GitConfig::new(repos) },
        models: Models { provider: "static".into(), planner: None, writer: None },
        prompts: Arc::new(Prompts::built_in()),
        settings: Settings::default(),
        github: None,
    }
}

/// The documentation workflow for tests against the model server at `base_url` (OpenAI's
/// chat completions, `/v1` included) for both tiers, priced at 1 and 2 dollars per million
/// tokens in and out; otherwise as [`test_docgen`].
pub fn model_docgen(storage: &Storage, repos: &std::path::Path, base_url: &str) -> Docgen {
    let vars: std::collections::HashMap<String, String> = [
        ("LLM_PROVIDER", "openai-compatible"),
        ("LLM_BASE_URL", base_url),
        ("LLM_MODEL", "test-model"),
        ("LLM_PRICES", "test-model=1/2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let secrets = vars.clone();
    let config = isocrates_providers::config::from_vars(&vars, move |n| {
        Ok(secrets.get(n).cloned().map(secrecy::SecretString::from))
    })
    .expect("the test model configuration is valid");
    let model = |tier| {
        isocrates_providers::build(tier, &config).expect("the test model builds").map(Arc::new)
    };
    Docgen {
        models: Models {
            provider: "openai-compatible".into(),
            planner: model(&config.planner),
            writer: model(&config.writer),
        },
        ..test_docgen(storage, repos)
    }
}

/// One answer of the API.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The body as JSON (`Value::Null` when empty or not JSON).
    pub body: Value,
    /// The body as text (empty when it is not UTF-8).
    pub text: String,
    /// The response headers.
    pub headers: axum::http::HeaderMap,
}

impl TestApp {
    /// The API over `db` with auth on (or off).
    pub async fn new(db: TestDb, auth_enabled: bool) -> TestApp {
        TestApp::with_config(db, |c| c.auth_enabled = auth_enabled).await
    }

    /// The API over `db` with a configuration adjusted by `adjust`.
    pub async fn with_config(db: TestDb, adjust: impl FnOnce(&mut ApiConfig)) -> TestApp {
        let repos = tempfile::tempdir().expect("a folder for clones");
        let docgen = test_docgen(&db.storage, repos.path());
        let mut app = TestApp::with_docgen(db, docgen, adjust).await;
        app._repos = repos;
        app
    }

    /// The API over `db` whose jobs run and estimate the documentation workflow over
    /// `docgen`, with a configuration adjusted by `adjust`. No worker runs until the test
    /// starts one on [`TestApp::engine`].
    pub async fn with_docgen(
        db: TestDb,
        docgen: Docgen,
        adjust: impl FnOnce(&mut ApiConfig),
    ) -> TestApp {
        let docgen = Arc::new(docgen);
        let workflows = vec![isocrates_workflows::pipeline::workflow(docgen.clone())];
        let assistant = isocrates_api::Assistant {
            model: None,
            prompts: Arc::new(Prompts::built_in()),
            embedder: None,
        };
        TestApp::build(db, workflows, adjust, assistant, Some(docgen)).await
    }

    /// The API over `db` whose engine runs `workflows` (a test's own `docgen`, say), with a
    /// configuration adjusted by `adjust`. No worker runs until the test starts one on
    /// [`TestApp::engine`].
    pub async fn with_workflows(
        db: TestDb,
        workflows: Vec<isocrates_engine::Workflow>,
        adjust: impl FnOnce(&mut ApiConfig),
    ) -> TestApp {
        TestApp::with_assistant(db, workflows, adjust, None).await
    }

    /// [`TestApp::with_workflows`] whose questions (`/api/docs/ask/`) go to `model`.
    pub async fn with_assistant(
        db: TestDb,
        workflows: Vec<isocrates_engine::Workflow>,
        adjust: impl FnOnce(&mut ApiConfig),
        model: Option<Arc<isocrates_providers::Llm>>,
    ) -> TestApp {
        let assistant = isocrates_api::Assistant {
            model,
            prompts: Arc::new(Prompts::built_in()),
            embedder: None,
        };
        TestApp::with_parts(db, workflows, adjust, assistant).await
    }

    /// The API over `db` with every part given: the engine's workflows, the configuration
    /// adjusted by `adjust`, and the models that answer questions and embed documents.
    pub async fn with_parts(
        db: TestDb,
        workflows: Vec<isocrates_engine::Workflow>,
        adjust: impl FnOnce(&mut ApiConfig),
        assistant: isocrates_api::Assistant,
    ) -> TestApp {
        TestApp::build(db, workflows, adjust, assistant, None).await
    }

    async fn build(
        db: TestDb,
        workflows: Vec<isocrates_engine::Workflow>,
        adjust: impl FnOnce(&mut ApiConfig),
        assistant: isocrates_api::Assistant,
        docgen: Option<Arc<Docgen>>,
    ) -> TestApp {
        let mut config = ApiConfig {
            auth_enabled: true,
            public_read: false,
            jwt_secret: TEST_JWT_SECRET.to_string().into(),
            max_body_bytes: isocrates_api::DEFAULT_MAX_BODY_BYTES,
            webhook_secret: Some(TEST_WEBHOOK_SECRET.to_string().into()),
            rate_limit: isocrates_api::RateLimitConfig::default(),
            cors_origins: Vec::new(),
            web: Default::default(),
        };
        adjust(&mut config);
        let engine = Engine::new(db.storage.db().clone(), workflows).await.expect("test engine");
        let state = AppState::with_assistant(db.storage.clone(), engine.clone(), config, assistant)
            .expect("test app state");
        if let Some(docgen) = docgen {
            state.set_docgen(docgen);
        }
        let repos = tempfile::tempdir().expect("a folder for clones");
        TestApp { db, engine, service: isocrates_api::app(state), _repos: repos }
    }

    /// Serves the app on a loopback port, as `serve` does (with each peer's address, which
    /// the rate limiter keys on); answers its base URL.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let app = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            std::net::SocketAddr,
        >(self.service.clone());
        tokio::spawn(
            async move { axum::serve(listener, app).await.expect("the test server runs") },
        );
        url
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.call_raw(method, path, token, bytes).await
    }

    /// Sends a request with a raw body.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if !body.is_empty() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        self.send(req.body(Body::from(body)).expect("a valid request")).await
    }

    /// Sends a request built by the caller.
    pub async fn send(&self, req: Request<Body>) -> Answer {
        let response = self.service.clone().oneshot(req).await.expect("the service answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("read the body").to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let text = String::from_utf8(bytes.to_vec()).unwrap_or_default();
        Answer { status, body, text, headers }
    }

    /// GET.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, path, token, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call(Method::PUT, path, token, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::DELETE, path, token, None).await
    }

    /// Registers the first user (who becomes the admin) and returns its token.
    pub async fn admin_token(&self) -> String {
        let body = serde_json::json!({"email": "admin@example.com", "password": "admin-password", "display_name": "Admin"});
        let answer = self.post("/api/auth/register", None, body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        self.login("admin@example.com", "admin-password").await
    }

    /// Registers a user with the admin's token and returns `(user_id, token)`.
    pub async fn user(&self, admin: &str, email: &str) -> (String, String) {
        let body =
            serde_json::json!({"email": email, "password": "user-password", "display_name": email});
        let answer = self.post("/api/auth/register", Some(admin), body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        let id = answer.body["user_id"].as_str().expect("user_id").to_string();
        (id, self.login(email, "user-password").await)
    }

    /// Logs in and returns the token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let body = serde_json::json!({"email": email, "password": password});
        let answer = self.post("/api/auth/login", None, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        answer.body["token"].as_str().expect("token").to_string()
    }

    /// Grants `role` on `prefix` to `user_id`.
    pub async fn grant(&self, admin: &str, user_id: &str, prefix: &str, role: &str) {
        let body = serde_json::json!({"path_prefix": prefix, "role": role});
        let answer =
            self.post(&format!("/api/auth/users/{user_id}/grants"), Some(admin), body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    }
}
