//! The web page: HTML rendered on the server (minijinja templates in `api/web/templates`)
//! over the JSON API, which each page calls in-process as the visitor (the caller the
//! page identified rides on the request, so it is not authenticated again), so the page
//! shows exactly what the API would answer them and nothing it would refuse.
//!
//! A visitor signs in with a form that puts their token in an HttpOnly session cookie.
//! What changes data is done by the page's script (`api/web/static/app.js`) calling the
//! JSON API with that cookie and the session's CSRF token. Every page carries a strict
//! Content-Security-Policy: scripts only from this server, no inline script, no plugins,
//! no framing.

mod diff;
pub mod markdown;
mod pages;

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use crate::AppState;
use crate::auth::{Caller, MaybeUser, SESSION_COOKIE};
use crate::error::Error;
use crate::middleware::{REQUEST_ID, RequestId};

/// How the web page is served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebConfig {
    /// `BASE_PATH`: the path the whole service answers under (`/docs`), or `""` at the
    /// root. Links, the cookie's path and the script's calls all carry it.
    pub base_path: String,
    /// Whether the session cookie is marked `Secure` (sent over HTTPS only): in
    /// production, where a TLS proxy fronts the service.
    pub secure_cookies: bool,
}

/// Reads `BASE_PATH`: empty, or a path such as `/docs` (a leading slash, no trailing one,
/// letters, digits and `-._~/` only).
pub fn base_path(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value == "/" {
        return Ok(String::new());
    }
    let trimmed = value.trim_end_matches('/');
    let fine = trimmed.starts_with('/')
        && !trimmed.contains("//")
        && trimmed.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
    if fine {
        Ok(trimmed.to_string())
    } else {
        Err(format!(
            "BASE_PATH must be a path such as /docs (a leading slash, then letters, digits, \
             '-', '.', '_' or '~'), not {value:?}"
        ))
    }
}

/// The Content-Security-Policy of every page. Styles may be inline because the mermaid
/// diagrams style their own SVG; no markup from a document ever reaches the page, so no
/// document can use that.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data: https:; connect-src 'self'; font-src 'self'; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The files the page loads, built into the binary.
const ASSETS: [(&str, &str, &[u8]); 3] = [
    ("app.css", "text/css; charset=utf-8", include_bytes!("../../web/static/app.css")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../web/static/app.js")),
    (
        "vendor/mermaid-12.3.0.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/static/vendor/mermaid-12.3.0.min.js"),
    ),
];

/// The templates, parsed once.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A missing field (a version without metadata, a job not yet started) reads as empty,
    // however deep, instead of failing the page.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    for (name, source) in [
        ("base.html", include_str!("../../web/templates/base.html")),
        ("error.html", include_str!("../../web/templates/error.html")),
        ("login.html", include_str!("../../web/templates/login.html")),
        ("setup.html", include_str!("../../web/templates/setup.html")),
        ("home.html", include_str!("../../web/templates/home.html")),
        ("document.html", include_str!("../../web/templates/document.html")),
        ("edit.html", include_str!("../../web/templates/edit.html")),
        ("history.html", include_str!("../../web/templates/history.html")),
        ("diff.html", include_str!("../../web/templates/diff.html")),
        ("search.html", include_str!("../../web/templates/search.html")),
        ("search_results.html", include_str!("../../web/templates/search_results.html")),
        ("trash.html", include_str!("../../web/templates/trash.html")),
        ("jobs.html", include_str!("../../web/templates/jobs.html")),
        ("jobs_table.html", include_str!("../../web/templates/jobs_table.html")),
        ("job.html", include_str!("../../web/templates/job.html")),
        ("job_live.html", include_str!("../../web/templates/job_live.html")),
        ("personal.html", include_str!("../../web/templates/personal.html")),
        ("admin.html", include_str!("../../web/templates/admin.html")),
    ] {
        env.add_template(name, source).expect("the built-in templates parse");
    }
    // HTML escaping of the five characters that matter, leaving `/` alone so that paths
    // and addresses read as they are.
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(text)
            if !value.is_safe() && matches!(state.auto_escape(), minijinja::AutoEscape::Html) =>
        {
            out.write_str(&markdown::escape_attribute(text)).map_err(minijinja::Error::from)
        }
        _ => minijinja::escape_formatter(out, state, value),
    });
    env.add_filter("urlencode", |value: String| -> String { percent_encode(&value) });
    // The first `n` characters of any value as text: commits and ids come from metadata
    // that callers may fill with anything, so slicing must never fail.
    env.add_filter("short", |value: minijinja::Value, n: usize| -> String {
        let text = match value.as_str() {
            Some(text) => text.to_string(),
            None if value.is_undefined() || value.is_none() => String::new(),
            None => value.to_string(),
        };
        text.chars().take(n).collect()
    });
    env.add_filter("when", |value: Option<String>| -> String {
        // RFC 3339 UTC to "2026-12-03 19:31 UTC".
        match value {
            Some(v) if v.len() >= 16 => format!("{} UTC", v[..16].replace('T', " ")),
            Some(v) => v,
            None => String::new(),
        }
    });
    env
});

/// The web page's routes, which call `api` (the JSON API's routes) in-process.
pub(crate) fn routes(api: Router) -> Router<AppState> {
    let web = Arc::new(Web { api });
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/setup", get(pages::setup_form).post(pages::setup))
        .route("/d/{doc_id}", get(pages::document))
        .route("/d/{doc_id}/edit", get(pages::edit))
        .route("/d/{doc_id}/history", get(pages::history))
        .route("/d/{doc_id}/diff", get(pages::diff))
        .route("/search", get(pages::search))
        .route("/trash", get(pages::trash))
        .route("/jobs", get(pages::jobs))
        .route("/jobs/{job_id}", get(pages::job))
        .route("/personal", get(pages::personal))
        .route("/admin", get(pages::admin))
        .route("/preview", post(pages::preview))
        .route("/static/{*file}", get(asset))
        .layer(axum::Extension(web))
        .layer(axum::middleware::from_fn(security_headers))
}

/// What the pages share: the API they call.
pub(crate) struct Web {
    api: Router,
}

/// Why a page could not be shown.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The visitor must sign in (again): to the sign-in page, then back to `next`.
    SignIn { base: String, next: String },
    /// A page that says what went wrong, with its status; in the visitor's frame (their
    /// name, the links they may follow) when it is known.
    Page {
        base: String,
        status: StatusCode,
        message: String,
        frame: Option<Box<Map<String, Value>>>,
    },
}

impl Failure {
    fn page(base: &str, status: StatusCode, message: impl Into<String>) -> Failure {
        Failure::Page { base: base.to_string(), status, message: message.into(), frame: None }
    }

    /// The API's answer `status` with its envelope `body`.
    fn from_api(session: &Session, status: StatusCode, body: &Value) -> Failure {
        if status == StatusCode::UNAUTHORIZED {
            return Failure::SignIn { base: session.base.clone(), next: session.here.clone() };
        }
        let message = body["message"].as_str().unwrap_or("something went wrong").to_string();
        session.failure(status, message)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::SignIn { base, next } => {
                let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
                let mut response =
                    Redirect::to(&format!("{base}/login?next={next}")).into_response();
                if let Ok(clear) = HeaderValue::from_str(&clear_cookie(&base)) {
                    response.headers_mut().insert(header::SET_COOKIE, clear);
                }
                response
            }
            Failure::Page { base, status, message, frame } => {
                let title = status.canonical_reason().unwrap_or("Error");
                let mut context = frame.map(|f| *f).unwrap_or_default();
                context.insert("base".into(), json!(base));
                context.insert("title".into(), json!(title));
                context.insert("status".into(), json!(status.as_u16()));
                context.insert("message".into(), json!(message));
                match render("error.html", &Value::Object(context)) {
                    Ok(html) => (status, html).into_response(),
                    Err(_) => (status, message).into_response(),
                }
            }
        }
    }
}

/// Renders the template `name` with `context`.
fn render(name: &str, context: &Value) -> Result<axum::response::Html<String>, Failure> {
    let base = context["base"].as_str().unwrap_or_default();
    let failed = |message: &str| Failure::page(base, StatusCode::INTERNAL_SERVER_ERROR, message);
    let template = TEMPLATES.get_template(name).map_err(|e| failed(&e.to_string()))?;
    let context = minijinja::Value::from(minijinja::value::Serde(context));
    template.render(context).map(axum::response::Html).map_err(|e| {
        tracing::error!(template = name, error = %e, detail = ?e, "a page could not be rendered");
        failed("the page could not be rendered")
    })
}

/// Who is looking at a page, and how the page calls the API for them.
pub(crate) struct Session {
    /// Who they are, as the API sees them.
    pub caller: Caller,
    /// The CSRF token of their session, which the page's script sends with changes.
    pub csrf: String,
    /// The base path.
    pub base: String,
    /// The page's path and query, to come back to after signing in.
    pub here: String,
    /// Whether the page was asked for as a fragment (`?partial=1`), for live updates.
    pub partial: bool,
    /// The state, for the configuration.
    pub state: AppState,
    web: Arc<Web>,
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let base = state.config().web.base_path.clone();
        // Where to come back to after signing in: this page, as a page (a fragment asked
        // for by the page's script is not one).
        let query: Vec<(String, String)> =
            form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
                .into_owned()
                .filter(|(k, _)| k != "partial")
                .collect();
        let here = if query.is_empty() {
            format!("{base}{}", parts.uri.path())
        } else {
            let query =
                form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
            format!("{base}{}?{query}", parts.uri.path())
        };
        let web = parts.extensions.get::<Arc<Web>>().cloned().ok_or_else(|| {
            Failure::page(&base, StatusCode::INTERNAL_SERVER_ERROR, "the web page is not set up")
        })?;
        let caller = match MaybeUser::from_request_parts(parts, state).await {
            Ok(MaybeUser(caller)) => caller,
            Err(Error::Unauthorized(_)) => return Err(Failure::SignIn { base, next: here }),
            Err(e) => {
                let status = e.status();
                return Err(Failure::page(&base, status, e.to_string()));
            }
        };
        let csrf = crate::auth::session_cookie(&parts.headers)
            .map(|t| state.keys().csrf(t))
            .unwrap_or_default();
        let partial = parts.uri.query().is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "partial" && v == "1")
        });
        Ok(Session { caller, csrf, base, here, partial, state: state.clone(), web })
    }
}

/// A visitor taken as signed out whatever they carry: the sign-in and first-run forms,
/// which may be posted by someone whose session cookie is still set.
pub(crate) struct SignedOut(pub Session);

impl FromRequestParts<AppState> for SignedOut {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let base = state.config().web.base_path.clone();
        let web = parts.extensions.get::<Arc<Web>>().cloned().ok_or_else(|| {
            Failure::page(&base, StatusCode::INTERNAL_SERVER_ERROR, "the web page is not set up")
        })?;
        let mut caller = Caller::anonymous(false);
        caller.request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
        let here = format!("{base}{}", parts.uri.path());
        Ok(SignedOut(Session {
            caller,
            csrf: String::new(),
            base,
            here,
            partial: false,
            state: state.clone(),
            web,
        }))
    }
}

impl Session {
    /// Calls the API as this visitor: the answer's JSON, or the failure it means.
    pub(crate) async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let (status, value) = self.web.call(self, method, uri, body).await?;
        if status.is_success() { Ok(value) } else { Err(Failure::from_api(self, status, &value)) }
    }

    /// A page saying what went wrong, in this visitor's frame.
    pub(crate) fn failure(&self, status: StatusCode, message: impl Into<String>) -> Failure {
        let title = status.canonical_reason().unwrap_or("Error");
        let frame = Some(Box::new(self.bare("", title)));
        Failure::Page { base: self.base.clone(), status, message: message.into(), frame }
    }

    /// A GET of the API.
    pub(crate) async fn get(&self, uri: &str) -> Result<Value, Failure> {
        self.call(Method::GET, uri, None).await
    }

    /// Whether a user is signed in.
    pub(crate) fn signed_in(&self) -> bool {
        self.caller.user.is_some()
    }

    /// What every page shows: the visitor, the links, the tree of documents, and the
    /// visitor's own tree.
    pub(crate) async fn frame(
        &self,
        nav: &str,
        title: &str,
    ) -> Result<Map<String, Value>, Failure> {
        let tree = self.get("/api/tree").await?;
        let personal = if self.signed_in() {
            self.get("/api/personal/tree").await?
        } else {
            Value::Array(Vec::new())
        };
        let mut frame = self.bare(nav, title);
        frame.insert("tree".into(), tree);
        frame.insert("personal".into(), personal);
        Ok(frame)
    }

    /// [`Session::frame`] without the trees, for fragments and forms.
    pub(crate) fn bare(&self, nav: &str, title: &str) -> Map<String, Value> {
        let user = self.caller.user.as_ref().map(|u| {
            json!({ "display_name": u.display_name, "email": u.email, "role": u.role.as_str() })
        });
        let mut frame = Map::new();
        frame.insert("base".into(), json!(self.base));
        frame.insert("csrf".into(), json!(self.csrf));
        frame.insert("user".into(), user.unwrap_or(Value::Null));
        frame.insert("is_admin".into(), json!(self.caller.is_admin()));
        frame.insert("auth_enabled".into(), json!(self.state.config().auth_enabled));
        frame.insert("nav".into(), json!(nav));
        frame.insert("title".into(), json!(title));
        frame
    }
}

impl Web {
    /// Sends one request to the API's routes, as `session`'s visitor.
    async fn call(
        &self,
        session: &Session,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), Failure> {
        let internal =
            |e: String| Failure::page(&session.base, StatusCode::INTERNAL_SERVER_ERROR, e);
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(id) = &session.caller.request_id {
            req = req.header(&REQUEST_ID, id.as_str());
        }
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut req = req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(bytes))
            .map_err(|e| internal(format!("a request to the API: {e}")))?;
        if let Some(id) = &session.caller.request_id {
            req.extensions_mut().insert(RequestId(id.clone()));
        }
        // The visitor is already known: the API's extractors take them as they are.
        req.extensions_mut().insert(crate::auth::Identified(session.caller.clone()));
        let response = match self.api.clone().oneshot(req).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|e| internal(format!("reading the API's answer: {e}")))?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok((status, value))
    }
}

/// `text` percent-encoded for a path segment or a query value: every byte but the
/// unreserved ones of RFC 3986 as `%XX`.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The `Set-Cookie` value of a new session holding `token`.
fn session_cookie(config: &WebConfig, token: &str) -> String {
    let path = if config.base_path.is_empty() { "/" } else { config.base_path.as_str() };
    let secure = if config.secure_cookies { "; Secure" } else { "" };
    let max_age = crate::auth::LOGIN_TOKEN_HOURS * 3600;
    format!(
        "{SESSION_COOKIE}={token}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    )
}

/// The `Set-Cookie` value that ends a session.
fn clear_cookie(base: &str) -> String {
    let path = if base.is_empty() { "/" } else { base };
    format!("{SESSION_COOKIE}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Lax")
}

/// The security headers of every page: the Content-Security-Policy, no sniffing, no
/// framing, no referrer to other sites; pages (not the built-in files) are never cached.
async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().contains("/static/");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A built-in file.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((name, kind, bytes)) => {
            // The vendored script's name carries its version, so it may be kept for long.
            let cache = if name.starts_with("vendor/") {
                "public, max-age=31536000, immutable"
            } else {
                "public, max-age=300"
            };
            ([(header::CONTENT_TYPE, *kind), (header::CACHE_CONTROL, cache)], Body::from(*bytes))
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// Whether a request asks for a page rather than JSON: its `Accept` names HTML.
pub(crate) fn wants_html(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_are_read_strictly() {
        assert_eq!(base_path("").unwrap(), "");
        assert_eq!(base_path("/").unwrap(), "");
        assert_eq!(base_path("/docs").unwrap(), "/docs");
        assert_eq!(base_path("/docs/").unwrap(), "/docs");
        assert_eq!(base_path("/team/docs").unwrap(), "/team/docs");
        for bad in ["docs", "/do cs", "/docs\"x", "//evil.example", "/a//b", "/a?b"] {
            let e = base_path(bad).unwrap_err();
            assert!(e.starts_with("BASE_PATH must be"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_template_renders_with_an_empty_context() {
        // A template that fails on a missing value would fail a page at the first visitor
        // who lacks it; the frame is the least every page gets.
        let frame = json!({ "base": "/b", "csrf": "", "user": null, "tree": [], "personal": [] });
        for name in TEMPLATES.templates().map(|(name, _)| name) {
            let _ = render(name, &frame).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
    }

    #[test]
    fn session_cookies_are_http_only_scoped_to_the_base_and_secure_in_production() {
        let dev = WebConfig { base_path: String::new(), secure_cookies: false };
        let prod = WebConfig { base_path: "/docs".into(), secure_cookies: true };
        let c = session_cookie(&dev, "tok");
        assert!(c.starts_with("isocrates_session=tok; Path=/;") && c.contains("HttpOnly"), "{c}");
        assert!(!c.contains("Secure"), "{c}");
        let c = session_cookie(&prod, "tok");
        assert!(c.contains("Path=/docs;") && c.ends_with("; Secure"), "{c}");
    }
}
