//! The `isocrates` binary as an operator runs it: `serve` on a real port with its embedded
//! worker, `worker`, `jobs`, `migrate`, `token create`, and configuration errors that stop
//! start-up with one line.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use isocrates_testkit::on_both_backends;
use serde_json::{Value, json};

const SECRET: &str = "cli-test-secret-cli-test-secret-0123456789";

fn isocrates(dir: &Path, db_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_isocrates"));
    cmd.current_dir(dir)
        .env_clear()
        .env("DATABASE_URL", db_url)
        .env("JWT_SECRET_KEY", SECRET)
        .env("GITHUB_WEBHOOK_SECRET", "cli-webhook-secret")
        .env("LOG_LEVEL", "info")
        // github.com is refused, so a job for it fails at once and for good; local
        // repositories made by the tests are documented.
        .env("ALLOWED_GIT_HOSTS", "gitlab.com")
        .env("ALLOW_LOCAL_REPOS", "true");
    cmd
}

/// A git repository with a README and one Rust file; returns its path.
fn small_repository(dir: &Path) -> String {
    let git = |args: &[&str]| isocrates_testkit::git(dir, args);
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), "# Tiny\n\nA tiny crate.\n").unwrap();
    std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"tiny\"\n").unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), "/// Adds one.\npub fn inc(x: u32) -> u32 { x + 1 }\n")
        .unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "tiny"]);
    dir.to_str().unwrap().to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `isocrates serve`, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(dir: &Path, db_url: &str) -> Server {
        Server::start_with(dir, db_url, &[])
    }

    fn start_with(dir: &Path, db_url: &str, env: &[(&str, &str)]) -> Server {
        Server::start_logging(dir, db_url, env, Stdio::null())
    }

    /// [`Server::start_with`], its log (standard error) going to `log`.
    fn start_logging(dir: &Path, db_url: &str, env: &[(&str, &str)], log: Stdio) -> Server {
        let port = free_port();
        let child = isocrates(dir, db_url)
            .envs(env.iter().copied())
            .arg("serve")
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start isocrates serve");
        let server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if server.try_call("GET", "/health", None, None).is_some() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("isocrates serve did not answer /health within 30 s");
    }

    fn try_call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Option<(u16, Value)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).ok()?;
        let text = String::from_utf8_lossy(&raw);
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let (head, payload) = text.split_once("\r\n\r\n")?;
        let payload = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            dechunk(payload)
        } else {
            payload.to_string()
        };
        Some((status, serde_json::from_str(&payload).unwrap_or(Value::Null)))
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.try_call(method, path, token, body.as_ref())
            .unwrap_or_else(|| panic!("{method} {path} got no answer"))
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// Polls `GET /api/jobs/{id}` until its status is `status`.
fn wait_for_status(server: &Server, token: &str, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, job) = server.call("GET", &format!("/api/jobs/{id}"), Some(token), None);
        if job["status"] == status {
            return job;
        }
        assert!(Instant::now() < deadline, "the job never became {status}: {job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn admin_token(server: &Server) -> String {
    let admin = json!({"email": "admin@example.com", "password": "admin-password", "display_name": "Admin"});
    assert_eq!(server.call("POST", "/api/auth/register", None, Some(admin)).0, 201);
    let (_, login) = server.call(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"email": "admin@example.com", "password": "admin-password"})),
    );
    login["token"].as_str().unwrap().to_string()
}

on_both_backends! {
    async fn serve_answers_an_operator_setup_over_http(db) {
        let dir = tempfile::tempdir().unwrap();
        let url = db.url.clone();
        let dir_path = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let server = Server::start(&dir_path, &url);
            let (status, health) = server.call("GET", "/health", None, None);
            assert_eq!(status, 200);
            assert_eq!(health["status"], "healthy");

            let (status, _) = server.call("POST", "/api/auth/register", None, Some(json!({"email": "admin@example.com", "password": "admin-password", "display_name": "Admin"})));
            assert_eq!(status, 201);
            let (status, login) = server.call("POST", "/api/auth/login", None, Some(json!({"email": "admin@example.com", "password": "admin-password"})));
            assert_eq!(status, 200);
            let admin = login["token"].as_str().unwrap().to_string();

            let second = json!({"email": "dev@example.com", "password": "dev-password", "display_name": "Dev"});
            assert_eq!(server.call("POST", "/api/auth/register", None, Some(second.clone())).0, 403);
            let (status, dev) = server.call("POST", "/api/auth/register", Some(&admin), Some(second));
            assert_eq!(status, 201);
            let dev_id = dev["user_id"].as_str().unwrap();
            let grant = json!({"path_prefix": "backend-product-a", "role": "editor"});
            assert_eq!(server.call("POST", &format!("/api/auth/users/{dev_id}/grants"), Some(&admin), Some(grant)).0, 201);
            let (_, login) = server.call("POST", "/api/auth/login", None, Some(json!({"email": "dev@example.com", "password": "dev-password"})));
            let dev_token = login["token"].as_str().unwrap().to_string();
            let (status, doc) = server.call("POST", "/api/docs", Some(&dev_token), Some(json!({"title": "API", "path": "backend-product-a", "content": "x"})));
            assert_eq!(status, 201);
            let id = doc["id"].as_str().unwrap();
            assert_eq!(server.call("PUT", &format!("/api/docs/{id}"), Some(&dev_token), Some(json!({"content": "y"}))).0, 200);
            assert_eq!(server.call("POST", "/api/docs", Some(&dev_token), Some(json!({"title": "No", "path": "elsewhere", "content": "x"}))).0, 403);
            assert_eq!(server.call("GET", &format!("/api/docs/{id}"), None, None).0, 404);
        })
        .await
        .unwrap();
    }

    async fn token_create_mints_a_token_the_server_accepts(db) {
        let dir = tempfile::tempdir().unwrap();
        let url = db.url.clone();
        let dir_path = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let output = isocrates(&dir_path, &url)
                .args(["token", "create", "--subject", "doc-agent", "--role", "service"])
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", stderr(&output));
            let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
            assert_eq!(token.split('.').count(), 3, "a JWT on stdout");

            let server = Server::start(&dir_path, &url);
            let (status, me) = server.call("GET", "/api/auth/me", Some(&token), None);
            assert_eq!(status, 200);
            assert_eq!(me["user"]["role"], "service");
            let (status, _) = server.call("POST", "/api/docs", Some(&token), Some(json!({"title": "Generated", "content": "x"})));
            assert_eq!(status, 201);
        })
        .await
        .unwrap();
    }
    async fn serve_runs_jobs_on_its_embedded_worker_and_jobs_commands_steer_them(db) {
        let dir = tempfile::tempdir().unwrap();
        let url = db.url.clone();
        let dir_path = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let server = Server::start(&dir_path, &url);
            let admin = admin_token(&server);
            let (status, job) = server.call("POST", "/api/jobs", Some(&admin), Some(json!({"repo_url": "https://github.com/acme/widgets"})));
            assert_eq!(status, 201, "{job}");
            let id = job["id"].as_str().unwrap().to_string();
            // github.com is not an allowed host here: the embedded worker runs the job, which
            // fails at once with a message that says so.
            let failed = wait_for_status(&server, &admin, &id, "failed");
            assert!(failed["error_message"].as_str().unwrap().contains("ALLOWED_GIT_HOSTS"), "{failed}");
            let (_, health) = server.call("GET", "/health", None, None);
            assert!(health["workers"].as_u64().unwrap() >= 1, "{health}");
            assert_eq!(health["queue"]["failed"], 1);

            let jobs = |args: &[&str]| isocrates(&dir_path, &url).env_remove("LOG_LEVEL").arg("jobs").args(args).output().unwrap();
            let list = jobs(&["list"]);
            assert!(list.status.success(), "{}", stderr(&list));
            let text = stdout(&list);
            assert!(text.contains(&id) && text.contains("failed") && text.contains("https://github.com/acme/widgets"), "{text}");

            let show = jobs(&["show", &id]);
            assert!(show.status.success(), "{}", stderr(&show));
            let text = stdout(&show);
            assert!(text.contains("clone") && text.contains("publish") && text.contains("ALLOWED_GIT_HOSTS"), "{text}");
            let as_json: Value = serde_json::from_slice(&jobs(&["show", &id, "--json"]).stdout).unwrap();
            assert_eq!(as_json["id"], id.as_str());
            assert_eq!(as_json["steps"][0]["attempts"], 1);

            for (args, expected) in [
                (vec!["show", "01nope"], "not found"),
                (vec!["retry", &id, "--from-step", "deploy"], "clone, analyze"),
                (vec!["cancel", &id], "already ended"),
                (vec!["list", "--status", "sleeping"], "--status"),
            ] {
                let output = jobs(&args);
                assert_eq!(output.status.code(), Some(1), "{args:?}");
                let text = stderr(&output);
                assert_eq!(text.trim().lines().count(), 1, "{text}");
                assert!(text.starts_with("error:") && text.contains(expected), "{args:?}: {text}");
            }

            let retry = jobs(&["retry", &id]);
            assert!(retry.status.success(), "{}", stderr(&retry));
            let again = wait_for_status(&server, &admin, &id, "failed");
            assert_eq!(again["retry_count"], 1);
            assert_eq!(again["steps"][0]["attempts"], 2);

            // A repository it may read is documented by the same worker.
            let origin = tempfile::tempdir().unwrap();
            let repo = small_repository(origin.path());
            let (status, job) = server.call("POST", "/api/jobs", Some(&admin), Some(json!({"repo_url": repo})));
            assert_eq!(status, 201, "{job}");
            let done = wait_for_status(&server, &admin, job["id"].as_str().unwrap(), "completed");
            assert!(done["documents_written"].as_u64().unwrap() >= 3, "{done}");
            assert!(done["commit_sha"].as_str().is_some_and(|c| c.len() == 40), "{done}");
        })
        .await
        .unwrap();
    }

    async fn with_workers_0_jobs_wait_for_an_isocrates_worker(db) {
        let dir = tempfile::tempdir().unwrap();
        let url = db.url.clone();
        let dir_path = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let server = Server::start_with(&dir_path, &url, &[("WORKERS", "0")]);
            let admin = admin_token(&server);
            let (_, job) = server.call("POST", "/api/jobs", Some(&admin), Some(json!({"repo_url": "https://github.com/acme/widgets"})));
            let id = job["id"].as_str().unwrap().to_string();
            std::thread::sleep(Duration::from_millis(1500));
            let (_, waiting) = server.call("GET", &format!("/api/jobs/{id}"), Some(&admin), None);
            assert_eq!(waiting["status"], "queued", "no worker has run it");
            let (_, health) = server.call("GET", "/health", None, None);
            assert_eq!(health["workers"], 0);
            let (_, deep) = server.call("GET", "/health/deep", None, None);
            assert_eq!(deep["components"]["queue"]["status"], "degraded");

            let log_path = dir_path.join("worker.log");
            let mut worker = isocrates(&dir_path, &url)
                .env("LOG_FORMAT", "json")
                .arg("worker")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log_path).unwrap())
                .spawn()
                .unwrap();
            let failed = wait_for_status(&server, &admin, &id, "failed");
            let _ = worker.kill();
            let _ = worker.wait();
            assert_eq!(failed["steps"][0]["status"], "failed");

            // The worker's log tells the run's story: started at info, failed in one error
            // line, each carrying the run's id.
            let log = std::fs::read_to_string(&log_path).unwrap();
            let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
            let of_run = |message: &str| -> Vec<&Value> {
                lines.iter().filter(|l| l["message"] == message && l["run.id"] == id.as_str()).collect()
            };
            let started = of_run("run started");
            assert_eq!(started.len(), 1, "{log}");
            assert_eq!(started[0]["level"], "INFO");
            let failures = of_run("run failed");
            assert_eq!(failures.len(), 1, "{log}");
            assert_eq!(failures[0]["level"], "ERROR");
            assert!(failures[0]["error"].as_str().unwrap().contains("ALLOWED_GIT_HOSTS"));
            assert!(!log.contains(SECRET), "no secret in the logs");

            let refused = isocrates(&dir_path, &url).env("WORKERS", "0").arg("worker").output().unwrap();
            assert_eq!(refused.status.code(), Some(1));
            assert!(stderr(&refused).contains("WORKERS"), "{}", stderr(&refused));
        })
        .await
        .unwrap();
    }
}

#[test]
fn json_logs_carry_the_request_id_user_route_status_and_latency_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let server = Server::start_logging(
        dir.path(),
        "sqlite://logs.db",
        &[("LOG_FORMAT", "json")],
        Stdio::from(log),
    );
    let token = admin_token(&server);
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        stream,
        "GET /api/docs?limit=5 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nX-Request-ID: trace-me-42\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("x-request-id: trace-me-42"), "{answer}");
    drop(server);

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let line = lines
        .iter()
        .find(|l| l["span"]["request.id"] == "trace-me-42" && l["message"] == "request finished")
        .unwrap_or_else(|| panic!("no line for the request in:\n{text}"));
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["span"]["http.route"], "/api/docs");
    assert_eq!(line["span"]["http.method"], "GET");
    assert_eq!(line["http.status"], 200);
    assert!(line["latency_ms"].as_f64().is_some(), "{line}");
    assert!(line["span"]["user.id"].as_str().is_some_and(|id| !id.is_empty()), "{line}");
    for secret in [SECRET, "admin-password", "cli-webhook-secret", token.as_str()] {
        assert!(!text.contains(secret), "a secret reached the log");
    }
}

#[test]
fn migrate_logs_each_migration_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let first = isocrates(dir.path(), &url).arg("migrate").output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    assert_eq!(
        stderr(&first).matches("applied migration").count(),
        migrations,
        "{}",
        stderr(&first)
    );
    let second = isocrates(dir.path(), &url).arg("migrate").output().unwrap();
    assert!(second.status.success());
    assert!(!stderr(&second).contains("applied migration"));
    assert!(stderr(&second).contains("up to date"));
}

#[test]
fn bad_configuration_stops_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in
        [("PORT", "eighty"), ("AUTH_ENABLED", "perhaps"), ("DATABASE_URL", "mysql://x")]
    {
        let output =
            isocrates(dir.path(), "sqlite://x.db").env(name, value).arg("serve").output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}");
        let text = stderr(&output);
        assert_eq!(text.trim().lines().count(), 1, "{text}");
        assert!(text.contains(name), "{text}");
    }
    let production = isocrates(dir.path(), "sqlite://x.db")
        .env("ENVIRONMENT", "production")
        .env("JWT_SECRET_KEY", "short")
        .env("AUTH_ENABLED", "false")
        .env_remove("GITHUB_WEBHOOK_SECRET")
        .env("CORS_ALLOWED_ORIGINS", "https://docs.example.com,http://localhost:3000")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(production.status.code(), Some(2));
    let text = stderr(&production);
    assert_eq!(text.trim().lines().count(), 1, "every refusal in one line: {text}");
    for name in ["AUTH_ENABLED", "JWT_SECRET_KEY", "GITHUB_WEBHOOK_SECRET", "localhost:3000"] {
        assert!(text.contains(name), "{name}: {text}");
    }
    let any_origin = isocrates(dir.path(), "sqlite://x.db")
        .env("CORS_ALLOWED_ORIGINS", "*")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(any_origin.status.code(), Some(2));
    assert!(stderr(&any_origin).contains("CORS_ALLOWED_ORIGINS"), "{}", stderr(&any_origin));

    let unsigned = isocrates(dir.path(), "sqlite://x.db")
        .env_remove("GITHUB_WEBHOOK_SECRET")
        .env("PORT", free_port().to_string())
        .arg("serve")
        .output()
        .unwrap();
    assert!(!unsigned.status.success(), "serve with auth on refuses an empty webhook secret");
    let line =
        stderr(&unsigned).lines().find(|l| l.starts_with("error:")).unwrap_or_default().to_string();
    assert!(line.contains("GITHUB_WEBHOOK_SECRET"), "{}", stderr(&unsigned));
}

#[test]
fn a_malformed_env_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "PORT=8001\nthis line is not an assignment\n").unwrap();
    let output = isocrates(dir.path(), "sqlite://x.db").arg("migrate").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains(".env") && text.trim().lines().count() == 1, "{text}");
}

#[test]
fn token_create_without_a_secret_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let output = isocrates(dir.path(), &url)
        .env_remove("JWT_SECRET_KEY")
        .args(["token", "create", "--subject", "x"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.lines().any(|l| l.starts_with("error:") && l.contains("JWT_SECRET_KEY")),
        "{text}"
    );
}

/// A local server speaking OpenAI's chat completions, answering `status` with a completion
/// (200) or an error; returns its `/v1` base URL.
async fn fake_openai(status: u16) -> String {
    use axum::response::IntoResponse;
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || async move {
            let status = axum::http::StatusCode::from_u16(status).unwrap();
            if status.is_success() {
                axum::Json(json!({
                    "model": "fake-model-1",
                    "choices": [{"message": {"role": "assistant", "content": "ok"}}],
                    "usage": {"prompt_tokens": 9, "completion_tokens": 1},
                }))
                .into_response()
            } else {
                (status, axum::Json(json!({"error": {"message": "Incorrect API key provided"}})))
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_check_sends_one_request_per_tier_and_names_the_key_on_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let good = fake_openai(200).await;
    let refused = fake_openai(401).await;
    let dir_path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let check = |base: &str| {
            isocrates(&dir_path, &url)
                .env_remove("LOG_LEVEL")
                .env("LLM_PROVIDER", "openai-compatible")
                .env("LLM_BASE_URL", base)
                .env("LLM_MODEL", "fake-model")
                .env("LLM_API_KEY", "sk-secret-value")
                .args(["providers", "check"])
                .output()
                .unwrap()
        };
        let ok = check(&good);
        assert!(ok.status.success(), "{}", stderr(&ok));
        let text = stdout(&ok);
        for tier in ["planner", "writer"] {
            let line =
                text.lines().find(|l| l.starts_with(tier)).unwrap_or_else(|| panic!("{text}"));
            assert!(line.contains("fake-model-1") && line.contains("9 tokens in, 1 out"), "{line}");
        }

        let bad = check(&refused);
        assert_eq!(bad.status.code(), Some(1));
        let text = stdout(&bad);
        assert!(text.contains("401") && text.contains("LLM_API_KEY"), "{text}");
        assert!(!text.contains("sk-secret-value") && !stderr(&bad).contains("sk-secret-value"));
        assert_eq!(stderr(&bad).trim().lines().count(), 1, "{}", stderr(&bad));

        let no_provider =
            isocrates(&dir_path, &url).env("LLM_API_KEY", "sk-x").arg("serve").output().unwrap();
        assert_eq!(no_provider.status.code(), Some(2));
        let text = stderr(&no_provider);
        assert!(
            text.contains("LLM_PROVIDER") && text.contains("LLM_API_KEY") && !text.contains("sk-x"),
            "{text}"
        );
    })
    .await
    .unwrap();
}

/// A `PROMPTS_DIR` holding one writer template, whose fifth line prints `expression`.
fn prompts_dir(expression: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let writer = format!(
        "{{% block system %}}\nWrite plainly.\n{{% endblock %}}\n{{% block prompt %}}\nPage: {{{{ {expression} }}}}\n{{% endblock %}}\n"
    );
    std::fs::write(dir.path().join("writer.j2"), writer).unwrap();
    dir
}

#[test]
fn a_broken_template_stops_start_up_naming_file_line_and_variable() {
    let dir = tempfile::tempdir().unwrap();
    let prompts = prompts_dir("page.titel");
    for command in ["serve", "worker"] {
        let output = isocrates(dir.path(), "sqlite://never-opened.db")
            .env("PROMPTS_DIR", prompts.path())
            .env("PORT", free_port().to_string())
            .arg(command)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{command} refused to start");
        let text = stderr(&output);
        let line = text.lines().find(|l| l.starts_with("error:")).expect(&text);
        let file = prompts.path().join("writer.j2").display().to_string();
        assert!(line.contains(&file), "{command}: {line}");
        assert!(line.contains("line 5") && line.contains("`page.titel`"), "{command}: {line}");
        assert!(!dir.path().join("never-opened.db").exists(), "stopped before the database");
    }
}

#[test]
fn prompts_check_and_render_show_what_a_model_receives() {
    let dir = tempfile::tempdir().unwrap();
    let built_in =
        isocrates(dir.path(), "sqlite://x.db").args(["prompts", "check"]).output().unwrap();
    assert!(built_in.status.success(), "{}", stderr(&built_in));
    for name in ["planner", "writer", "ask", "summarise"] {
        assert!(stdout(&built_in).contains(&format!("{name}: ok")), "{}", stdout(&built_in));
    }

    let edited = prompts_dir("page.title");
    let check = isocrates(dir.path(), "sqlite://x.db")
        .env("PROMPTS_DIR", edited.path())
        .args(["prompts", "check"])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(stdout(&check).contains("from PROMPTS_DIR:"), "{}", stdout(&check));
    let render = isocrates(dir.path(), "sqlite://x.db")
        .env("PROMPTS_DIR", edited.path())
        .args(["prompts", "render", "writer"])
        .output()
        .unwrap();
    assert!(render.status.success(), "{}", stderr(&render));
    let shown = stdout(&render);
    assert!(shown.contains("Write plainly.") && shown.contains("Page: Invoices"), "{shown}");
    let planner = isocrates(dir.path(), "sqlite://x.db")
        .env("PROMPTS_DIR", edited.path())
        .args(["prompts", "render", "planner"])
        .output()
        .unwrap();
    assert!(stdout(&planner).contains("billing"), "the built-in planner, with sample data");

    let broken = prompts_dir("page.titel");
    let check = isocrates(dir.path(), "sqlite://x.db")
        .env("PROMPTS_DIR", broken.path())
        .args(["prompts", "check"])
        .output()
        .unwrap();
    assert!(!check.status.success());
    assert!(stdout(&check).contains("line 5: unknown variable `page.titel`"), "{}", stdout(&check));
    let unknown = isocrates(dir.path(), "sqlite://x.db")
        .args(["prompts", "render", "poem"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("planner, writer, ask, summarise"), "{}", stderr(&unknown));
}

#[test]
fn generate_documents_a_repository_and_writes_a_wiki_that_mdbook_reads() {
    let (dir, origin) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let repo = small_repository(origin.path());
    let url = format!("sqlite://{}", dir.path().join("gen.db").display());
    let out = dir.path().join("wiki");
    let first = isocrates(dir.path(), &url)
        .env_remove("LOG_LEVEL")
        .env("ALLOW_LOCAL_REPOS", "false")
        .args(["generate", &repo, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    let said = stdout(&first);
    assert!(
        said.contains(&format!("documented {repo}")) && said.contains("pages written"),
        "{said}"
    );
    let summary = std::fs::read_to_string(out.join("SUMMARY.md")).unwrap();
    let files: Vec<&str> =
        summary.lines().filter_map(|l| l.split("](").nth(1)?.strip_suffix(')')).collect();
    assert!(files.len() >= 3, "{summary}");
    for file in &files {
        let page =
            std::fs::read_to_string(out.join(file)).unwrap_or_else(|_| panic!("{file} is written"));
        assert!(!page.contains("[["), "wikilinks become markdown links: {page}");
        let folder = out.join(file).parent().unwrap().to_path_buf();
        for link in page
            .split("](")
            .skip(1)
            .filter_map(|rest| rest.split(')').next())
            .filter(|l| l.ends_with(".md"))
        {
            assert!(folder.join(link).is_file(), "{file} links to {link}, which exists");
        }
    }

    let again = isocrates(dir.path(), &url)
        .env_remove("LOG_LEVEL")
        .args(["generate", &repo])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("nothing to do") && stdout(&again).contains("already published"),
        "{}",
        stdout(&again)
    );

    let refused = isocrates(dir.path(), &url)
        .env_remove("LOG_LEVEL")
        .args(["generate", "https://github.com/acme/widgets"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let text = stderr(&refused);
    assert!(text.trim().lines().count() == 1 && text.contains("ALLOWED_GIT_HOSTS"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_pauses_at_a_budget_and_resumes_the_paused_run_once_it_is_raised() {
    let (dir, origin) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let repo = small_repository(origin.path());
    let url = format!("sqlite://{}", dir.path().join("budget.db").display());
    let model = fake_openai(200).await;
    let dir_path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        // A dollar a token: each call of the fake model (10 tokens) costs $10, and the
        // planner, whose answer is no plan, is asked three times.
        let generate = |cap: &str| {
            isocrates(&dir_path, &url)
                .env_remove("LOG_LEVEL")
                .env("LLM_PROVIDER", "openai-compatible")
                .env("LLM_BASE_URL", &model)
                .env("LLM_MODEL", "fake-model")
                .env("LLM_PRICES", "fake-model=1000000/1000000")
                .env("LLM_BUDGET_USD_PER_RUN", cap)
                .args(["generate", &repo])
                .output()
                .unwrap()
        };
        let paused = generate("35");
        assert_eq!(paused.status.code(), Some(1), "{}", stdout(&paused));
        let said = stderr(&paused);
        let error =
            said.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("{said}"));
        assert!(
            error.contains("paused with 1 of") && error.contains("LLM_BUDGET_USD_PER_RUN=$35"),
            "{error}"
        );
        assert!(error.contains("the same isocrates generate resumes it"), "{error}");

        let resumed = generate("1000");
        assert!(resumed.status.success(), "{}", stderr(&resumed));
        let said = stdout(&resumed);
        assert!(
            said.contains("resuming the paused run")
                && said.contains(&format!("documented {repo}")),
            "{said}"
        );

        let jobs = isocrates(&dir_path, &url).args(["jobs", "list", "--json"]).output().unwrap();
        let jobs: Value = serde_json::from_str(&stdout(&jobs)).unwrap();
        let jobs = jobs.as_array().unwrap();
        assert_eq!(jobs.len(), 1, "the paused run was resumed, not started again: {jobs:?}");
        assert_eq!(jobs[0]["status"], "completed");
        let pages = jobs[0]["documents_written"].as_u64().unwrap();
        let calls = jobs[0]["spending"][0]["calls"].as_u64().unwrap();
        assert_eq!(calls, 3 + pages, "three planner tries and one call a page, none twice");
    })
    .await
    .unwrap();
}

#[test]
fn generate_estimate_prices_the_pages_without_reaching_the_model() {
    let (dir, origin) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let repo = small_repository(origin.path());
    let url = format!("sqlite://{}", dir.path().join("estimate.db").display());
    // Nothing listens on the model's address: an estimate that called it would fail.
    let model = [
        ("LLM_PROVIDER", "openai-compatible"),
        ("LLM_BASE_URL", "http://127.0.0.1:9/v1"),
        ("LLM_MODEL", "priced-model"),
        ("LLM_PRICES", "priced-model=3/15"),
        ("LLM_BUDGET_USD_PER_RUN", "0.001"),
    ];
    let estimate = isocrates(dir.path(), &url)
        .env_remove("LOG_LEVEL")
        .envs(model)
        .args(["generate", &repo, "--estimate"])
        .output()
        .unwrap();
    assert!(estimate.status.success(), "{}", stderr(&estimate));
    let said = stdout(&estimate);
    assert!(said.contains(&format!("a run of {repo}")) && said.contains("would write"), "{said}");
    assert!(said.contains("planner (openai-compatible priced-model): 1 calls"), "{said}");
    assert!(said.contains("writer (openai-compatible priced-model)"), "{said}");
    assert!(
        said.contains("budget LLM_BUDGET_USD_PER_RUN=$0.001") && said.contains("would pause"),
        "{said}"
    );

    let json = isocrates(dir.path(), &url)
        .env_remove("LOG_LEVEL")
        .envs(model)
        .args(["generate", &repo, "--estimate", "--json"])
        .output()
        .unwrap();
    assert!(json.status.success(), "{}", stderr(&json));
    let estimate: Value = serde_json::from_str(&stdout(&json)).unwrap();
    let pages = estimate["pages"].as_array().unwrap();
    assert!(pages.len() >= 3, "{estimate}");
    let sum: f64 = pages.iter().map(|p| p["cost_usd"].as_f64().unwrap()).sum();
    let cost = estimate["cost_usd"].as_f64().unwrap();
    assert!(cost > sum && sum > 0.0, "pages and the planner are priced: {estimate}");
    assert_eq!(estimate["within_budgets"], false);

    // Nothing was started or tracked.
    let jobs = isocrates(dir.path(), &url).args(["jobs", "list"]).output().unwrap();
    assert!(jobs.status.success(), "{}", stderr(&jobs));
    assert_eq!(stdout(&jobs).trim(), "no jobs");
}

#[test]
fn generate_documents_this_very_repository_sensibly() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("self.db").display());
    let out = dir.path().join("wiki");
    let here = env!("CARGO_MANIFEST_DIR");
    let output = isocrates(dir.path(), &url)
        .env_remove("LOG_LEVEL")
        .args(["generate", here, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = std::fs::read_to_string(out.join("SUMMARY.md")).unwrap();
    for crate_name in [
        "isocrates-engine",
        "isocrates-storage",
        "isocrates-providers",
        "isocrates-workflows",
        "isocrates-api",
    ] {
        assert!(summary.contains(&format!("[{crate_name}]")), "a page per crate: {summary}");
    }
    let overview = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with("-overview.md"))
        .expect("an overview page");
    let text = std::fs::read_to_string(overview.path()).unwrap();
    assert!(
        text.contains("writes and maintains the technical documentation"),
        "the README's purpose: {text}"
    );
    let engine = std::fs::read_to_string(out.join("modules/isocrates-engine.md")).unwrap();
    assert!(engine.contains("`Engine::submit`"), "the engine's public API: {engine}");
}
