//! A headless Chromium driven over the W3C WebDriver protocol, for the web page's end-to-end
//! tests: Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`; `CHROMIUM` and `CHROMEDRIVER` name others). The protocol is a
//! handful of JSON calls, so it is spoken here directly over reqwest.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

/// The key W3C WebDriver names elements by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a wait for the page lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running chromedriver and one browser session in it. Dropping it ends both.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    url: String,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

/// One element of the page.
#[derive(Debug, Clone)]
pub struct Element {
    id: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile, window 1280×900;
    /// screenshots go to `shots`. Panics, naming the packages to install, when either
    /// program is missing.
    pub async fn start(shots: &Path) -> Browser {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let chromedriver =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        for program in [&chromium, &chromedriver] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: install Debian's chromium and chromium-driver \
                 (apt-get install chromium chromium-driver), as scripts/test does"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ready = http.get(format!("{url}/status")).send().await;
            if let Ok(r) = ready
                && r.status().is_success()
            {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "chromedriver never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("a browser profile");
        // The flags keep Chromium off the network it cannot reach here, and out of the
        // sandbox it cannot make as root.
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "unhandledPromptBehavior": "ignore",
                "goog:chromeOptions": {"binary": chromium, "args": args},
            }}
        });
        let answer = http
            .post(format!("{url}/session"))
            .body(capabilities.to_string())
            .send()
            .await
            .expect("a browser session");
        let answer: Value = serde_json::from_str(&answer.text().await.unwrap_or_default())
            .expect("chromedriver answers JSON");
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {answer}"))
            .to_string();
        std::fs::create_dir_all(shots).expect("the screenshot folder");
        Browser { driver, http, session, url, _profile: profile, shots: shots.to_path_buf() }
    }

    /// One WebDriver command: its `value`, or the protocol's error as `Err`.
    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let url = format!("{}/session/{}{path}", self.url, self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json").body(body.to_string());
        }
        let answer = request.send().await.map_err(|e| json!({"error": e.to_string()}))?;
        let ok = answer.status().is_success();
        let value: Value =
            serde_json::from_str(&answer.text().await.unwrap_or_default()).unwrap_or(Value::Null);
        if ok { Ok(value["value"].clone()) } else { Err(value["value"].clone()) }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body))
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path} failed: {e}"))
    }

    /// Opens `url`.
    pub async fn open(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// The address of the page shown.
    pub async fn current_url(&self) -> String {
        let value = self.command(reqwest::Method::GET, "/url", None).await.unwrap_or_default();
        value.as_str().unwrap_or_default().to_string()
    }

    /// The first element that matches `css` now, if any.
    pub async fn find_now(&self, css: &str) -> Option<Element> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .ok()?;
        found[ELEMENT].as_str().map(|id| Element { id: id.to_string() })
    }

    /// Every element that matches `css` now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self.post("/elements", json!({"using": "css selector", "value": css})).await;
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str())
            .map(|id| Element { id: id.to_string() })
            .collect()
    }

    /// The first element that matches `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(element) = self.find_now(css).await {
                return element;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nothing matches {css} on {}",
                self.current_url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the script `condition` (a function body returning a boolean) holds.
    pub async fn wait_for(&self, what: &str, condition: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if self.run(condition, json!([])).await == Value::Bool(true) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what} on {}",
                self.current_url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` (a function body) in the page with `args`; its return value.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args})).await
    }

    /// Runs `script` (a function body that calls its last argument with its result) in the
    /// page with `args`, for work that waits, such as a `fetch`.
    pub async fn run_async(&self, script: &str, args: Value) -> Value {
        self.post("/execute/async", json!({"script": script, "args": args})).await
    }

    /// Presses and releases `key` (a WebDriver key code such as `\u{E004}`, Tab) on
    /// whatever has the focus.
    pub async fn press(&self, key: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}
        ]}]});
        self.post("/actions", actions).await;
    }

    /// Resizes the window to `width` × `height` CSS pixels.
    pub async fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height})).await;
    }

    /// Clicks `element`.
    pub async fn click(&self, element: &Element) {
        self.post(&format!("/element/{}/click", element.id), json!({})).await;
    }

    /// Types `text` into `element`.
    pub async fn type_into(&self, element: &Element, text: &str) {
        self.post(&format!("/element/{}/value", element.id), json!({ "text": text })).await;
    }

    /// Empties the field `element`.
    pub async fn clear(&self, element: &Element) {
        self.post(&format!("/element/{}/clear", element.id), json!({})).await;
    }

    /// The text `element` shows.
    pub async fn text(&self, element: &Element) -> String {
        let value = self
            .command(reqwest::Method::GET, &format!("/element/{}/text", element.id), None)
            .await;
        value.ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }

    /// The text of the whole page.
    pub async fn page_text(&self) -> String {
        let body = self.find("body").await;
        self.text(&body).await
    }

    /// The text of an open alert, confirm or prompt, if one is open.
    pub async fn dialog(&self) -> Option<String> {
        let value = self.command(reqwest::Method::GET, "/alert/text", None).await.ok()?;
        value.as_str().map(str::to_string)
    }

    /// Accepts the open confirm dialog.
    pub async fn accept_dialog(&self) {
        self.post("/alert/accept", json!({})).await;
    }

    /// Saves a screenshot of the page as `<name>.png` in the screenshot folder.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let value =
            self.command(reqwest::Method::GET, "/screenshot", None).await.expect("a screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap_or_default())
            .expect("the screenshot is base64");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot is saved");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session quits Chromium; chromedriver is then killed.
        let url = format!("{}/session/{}", self.url, self.session);
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    let _ = reqwest::Client::new().delete(url).send().await;
                });
            }
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
