//! The pages: each reads what it shows from the API, as the visitor, and renders a
//! template.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use isocrates_storage::Action;
use serde_json::{Map, Value, json};

use super::{Failure, Session, SignedOut, diff, markdown, render};
use crate::AppState;
use crate::extract::{Path, RawBody};

type Page = Result<Response, Failure>;

/// Renders `name` with `context`.
fn page(name: &str, context: Map<String, Value>) -> Page {
    render(name, &Value::Object(context)).map(IntoResponse::into_response)
}

/// `value` percent-encoded for a query string or a path segment.
fn encode(value: &str) -> String {
    super::percent_encode(value)
}

/// The query of a request as a map (the last value of a repeated key wins).
fn query(uri: &axum::http::Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect()
}

/// The fields of a form body.
fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// `/`: the home page to a browser; the API's description to a client that wants JSON.
pub(crate) async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Result<Session, Failure>,
) -> Response {
    if !super::wants_html(&headers) {
        return crate::routes::service::root().await.into_response();
    }
    let base = state.config().web.base_path.clone();
    let session = match session {
        Ok(session) => session,
        Err(failure) => return failure.into_response(),
    };
    if state.config().auth_enabled && !session.signed_in() {
        match state.storage().has_users().await {
            Ok(false) => return Redirect::to(&format!("{base}/setup")).into_response(),
            Ok(true) if !state.config().public_read => {
                return Redirect::to(&format!("{base}/login")).into_response();
            }
            Ok(true) => {}
            Err(e) => return stored(&base, e).into_response(),
        }
    }
    let shown = async {
        let mut context = session.frame("home", "Documentation").await?;
        context.insert("recent".into(), session.get("/api/docs/recent?limit=20").await?);
        page("home.html", context)
    };
    shown.await.unwrap_or_else(IntoResponse::into_response)
}

/// The page to go to after signing in: `next` when it is a path of this site (printable
/// ASCII without spaces or backslashes, under the base, not `//`, not the sign-in page
/// itself), else home. Browsers drop tabs and line breaks inside an address, so anything
/// but printable ASCII is refused rather than cleaned.
fn after_sign_in(base: &str, next: Option<&String>) -> String {
    let home = format!("{base}/");
    let Some(next) = next else {
        return home;
    };
    let printable = next.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'\\');
    let rest = next.strip_prefix(base).unwrap_or_default();
    let local = rest.starts_with('/') && !rest.starts_with("//");
    let login = rest == "/login" || rest.starts_with("/login?");
    if printable && local && !login { next.clone() } else { home }
}

/// Refuses a form posted from another site. A browser says where a request comes from in
/// `Sec-Fetch-Site`; one too old for that names the page's origin in `Origin`, whose host
/// must be this one (as the proxy forwards it in `X-Forwarded-Host`, or `Host`).
fn same_origin(headers: &HeaderMap, base: &str) -> Result<(), Failure> {
    let refused =
        || Failure::page(base, StatusCode::FORBIDDEN, "this form was sent from another site");
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return if matches!(site, "same-origin" | "none") { Ok(()) } else { Err(refused()) };
    }
    let Some(origin) = text(header::ORIGIN) else {
        return Ok(());
    };
    let host = text(header::HeaderName::from_static("x-forwarded-host"))
        .or_else(|| text(header::HOST))
        .unwrap_or_default();
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    if origin_host.eq_ignore_ascii_case(host) { Ok(()) } else { Err(refused()) }
}

/// `GET /login`.
pub(crate) async fn login_form(session: Session, uri: axum::http::Uri) -> Page {
    let q = query(&uri);
    let mut context = session.bare("login", "Sign in");
    context.insert("next".into(), json!(q.get("next").cloned().unwrap_or_default()));
    page("login.html", context)
}

/// `POST /login`: checks the password through the API and starts a session.
pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    SignedOut(session): SignedOut,
    RawBody(body): RawBody,
) -> Page {
    same_origin(&headers, &session.base)?;
    let fields = form(&body);
    let email = fields.get("email").cloned().unwrap_or_default();
    let password = fields.get("password").cloned().unwrap_or_default();
    let (status, answer) = session
        .web
        .call(
            &session,
            Method::POST,
            "/api/auth/login",
            Some(&json!({"email": email, "password": password})),
        )
        .await?;
    if !status.is_success() {
        let mut context = session.bare("login", "Sign in");
        context.insert("error".into(), answer["message"].clone());
        context.insert("email".into(), json!(email));
        context.insert("next".into(), json!(fields.get("next").cloned().unwrap_or_default()));
        let mut response = page("login.html", context)?;
        *response.status_mut() = status;
        return Ok(response);
    }
    // Signing in again, as someone else say, ends the session the browser held.
    if let Some(old) = crate::auth::session_cookie(&headers) {
        crate::auth::revoke(&state, old).await.map_err(|e| stored_api(&session.base, e))?;
    }
    let token = answer["token"].as_str().unwrap_or_default();
    signed_in(&state, token, &after_sign_in(&session.base, fields.get("next")))
}

/// A redirect to `to` that starts a session holding `token`.
fn signed_in(state: &AppState, token: &str, to: &str) -> Page {
    let mut response = Redirect::to(to).into_response();
    let cookie = super::session_cookie(&state.config().web, token);
    let cookie = HeaderValue::from_str(&cookie).map_err(|e| {
        Failure::page("", StatusCode::INTERNAL_SERVER_ERROR, format!("the session cookie: {e}"))
    })?;
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// `POST /logout`: ends the session, when the form carries its CSRF token.
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Page {
    let base = state.config().web.base_path.clone();
    same_origin(&headers, &base)?;
    let mut response = Redirect::to(&format!("{base}/login")).into_response();
    // Only a session's own form ends it; without a cookie there is nothing to end.
    if let Some(token) = crate::auth::session_cookie(&headers) {
        let fields = form(&body);
        let given = fields.get("csrf").map(String::as_str).unwrap_or_default();
        if !state.keys().csrf_matches(token, given) {
            return Err(Failure::page(
                &base,
                StatusCode::FORBIDDEN,
                "this sign-out form is stale: reload the page",
            ));
        }
        // The token itself ends too, so a copy of the cookie is worth nothing.
        crate::auth::revoke(&state, token)
            .await
            .map_err(|e| Failure::page(&base, e.status(), e.to_string()))?;
        if let Ok(clear) = HeaderValue::from_str(&super::clear_cookie(&base)) {
            response.headers_mut().insert(header::SET_COOKIE, clear);
        }
    }
    Ok(response)
}

/// `GET /setup`: the first run's form that creates the admin.
pub(crate) async fn setup_form(
    State(state): State<AppState>,
    SignedOut(session): SignedOut,
) -> Page {
    if state.storage().has_users().await.map_err(|e| stored(&session.base, e))? {
        return Ok(Redirect::to(&format!("{}/login", session.base)).into_response());
    }
    page("setup.html", session.bare("setup", "Create the first admin"))
}

/// `POST /setup`: registers the first user (the API makes them admin) and signs them in.
pub(crate) async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    SignedOut(session): SignedOut,
    RawBody(body): RawBody,
) -> Page {
    same_origin(&headers, &session.base)?;
    let fields = form(&body);
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let new = json!({
        "email": field("email"),
        "password": field("password"),
        "display_name": field("display_name"),
    });
    let (status, answer) =
        session.web.call(&session, Method::POST, "/api/auth/register", Some(&new)).await?;
    if !status.is_success() {
        if status == StatusCode::FORBIDDEN {
            // Someone else was first.
            return Ok(Redirect::to(&format!("{}/login", session.base)).into_response());
        }
        let mut context = session.bare("setup", "Create the first admin");
        context.insert("error".into(), answer["message"].clone());
        context.insert("email".into(), json!(field("email")));
        context.insert("display_name".into(), json!(field("display_name")));
        let mut response = page("setup.html", context)?;
        *response.status_mut() = status;
        return Ok(response);
    }
    let credentials = json!({"email": field("email"), "password": field("password")});
    let answer = session.call(Method::POST, "/api/auth/login", Some(&credentials)).await?;
    signed_in(&state, answer["token"].as_str().unwrap_or_default(), &format!("{}/", session.base))
}

/// The documents a page's wikilinks resolve to, by target, from the API's `broken-links`
/// answer for it.
fn resolutions(targets: &Value) -> HashMap<String, String> {
    targets
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((t["target"].as_str()?.to_string(), t["resolved_doc_id"].as_str()?.to_string()))
        })
        .collect()
}

/// Where each wikilink goes: an external target as it is, a resolved one to its page.
fn hrefs<'a>(
    base: &'a str,
    resolved: &'a HashMap<String, String>,
) -> impl Fn(&str) -> Option<String> + 'a {
    move |target: &str| {
        if isocrates_storage::links::is_external(target) {
            return Some(target.to_string());
        }
        resolved.get(target).map(|id| format!("{base}/d/{}", encode(id)))
    }
}

/// What the visitor may do with a document at `path`.
fn abilities(session: &Session, path: &str) -> Value {
    json!({
        "edit": session.caller.can(path, Action::Edit),
        "delete": session.caller.can(path, Action::Delete),
    })
}

/// `GET /d/{doc_id}`: a document, rendered, with its provenance and links.
pub(crate) async fn document(session: Session, Path(doc_id): Path<String>) -> Page {
    let id = encode(&doc_id);
    let doc = session.get(&format!("/api/docs/{id}")).await?;
    let latest = session.get(&format!("/api/docs/{id}/versions/latest")).await.ok();
    let targets = session.get(&format!("/api/docs/{id}/broken-links")).await?;
    let links = session.get(&format!("/api/docs/{id}/dependencies")).await?;
    let proposals = session.get(&format!("/api/docs/{id}/proposals")).await.unwrap_or(Value::Null);

    let resolved = resolutions(&targets);
    let href = hrefs(&session.base, &resolved);
    let rendered = markdown::render(doc["content"].as_str().unwrap_or_default(), &href);

    // The titles of the documents at the other end of each link.
    let mut ends: Vec<String> = Vec::new();
    for (side, end) in [("outgoing", "to_doc_id"), ("incoming", "from_doc_id")] {
        for edge in links[side].as_array().into_iter().flatten() {
            if let Some(id) = edge[end].as_str() {
                ends.push(id.to_string());
            }
        }
    }
    ends.sort();
    ends.dedup();
    let titles = if ends.is_empty() {
        json!({})
    } else {
        session
            .call(Method::POST, "/api/docs/batch-titles", Some(&json!({ "doc_ids": ends })))
            .await?
    };
    let pending: Vec<Value> = proposals
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["status"] == "open")
        .map(|p| {
            let mut p = p.clone();
            let shown = markdown::render(p["content"].as_str().unwrap_or_default(), &href);
            p["html"] = json!(shown.html);
            p
        })
        .collect();

    let path = doc["path"].as_str().unwrap_or_default().to_string();
    let title = doc["title"].as_str().unwrap_or_default().to_string();
    let mut context = session.frame("docs", &title).await?;
    context.insert("open_folders".into(), json!(ancestors(&path)));
    context.insert("abilities".into(), abilities(&session, &path));
    context.insert("doc".into(), doc);
    context.insert("content_html".into(), json!(rendered.html));
    context.insert("has_mermaid".into(), json!(rendered.has_mermaid));
    // Metadata is whatever its writer sent: only a list of strings is shown as sources.
    let sources: Vec<&str> = latest
        .as_ref()
        .and_then(|v| v["author_metadata"]["source_files"].as_array())
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    context.insert("sources".into(), json!(sources));
    context.insert("latest".into(), latest.clone().unwrap_or(Value::Null));
    context.insert("links".into(), links);
    context.insert("titles".into(), titles);
    context.insert("targets".into(), targets);
    context.insert("proposals".into(), json!(pending));
    page("document.html", context)
}

/// The folders that hold `path`, outermost first (`a`, `a/b` for `a/b`), which the tree
/// shows open; a document with no path sits in the tree's `Uncategorized` folder.
fn ancestors(path: &str) -> Vec<String> {
    if path.is_empty() {
        return vec!["Uncategorized".to_string()];
    }
    let parts: Vec<&str> = path.split('/').collect();
    (1..=parts.len()).map(|n| parts[..n].join("/")).collect()
}

/// An API error as a page.
fn stored_api(base: &str, e: crate::Error) -> Failure {
    Failure::page(base, e.status(), e.to_string())
}

/// A storage error as a page.
fn stored(base: &str, e: isocrates_storage::Error) -> Failure {
    stored_api(base, crate::Error::from(e))
}

/// `GET /d/{doc_id}/edit`: the editor, for those who may edit.
pub(crate) async fn edit(session: Session, Path(doc_id): Path<String>) -> Page {
    let doc = session.get(&format!("/api/docs/{}", encode(&doc_id))).await?;
    let path = doc["path"].as_str().unwrap_or_default();
    if !session.caller.can(path, Action::Edit) {
        return Err(session.failure(
            if session.signed_in() { StatusCode::FORBIDDEN } else { StatusCode::UNAUTHORIZED },
            "you may read this document but not edit it",
        ));
    }
    let title = format!("Edit {}", doc["title"].as_str().unwrap_or_default());
    let targets = session.get(&format!("/api/docs/{}/broken-links", encode(&doc_id))).await?;
    let resolved = resolutions(&targets);
    let rendered = markdown::render(
        doc["content"].as_str().unwrap_or_default(),
        &hrefs(&session.base, &resolved),
    );
    let mut context = session.frame("docs", &title).await?;
    context.insert("doc".into(), doc);
    context.insert("preview_html".into(), json!(rendered.html));
    page("edit.html", context)
}

/// The most distinct wikilinks a preview resolves; the rest show as broken until saved.
const MAX_PREVIEW_LINKS: usize = 200;

/// `POST /preview`: the page's markdown draft, rendered as the document would be.
pub(crate) async fn preview(
    State(state): State<AppState>,
    session: Session,
    RawBody(body): RawBody,
) -> Page {
    if !session.signed_in() && session.state.config().auth_enabled {
        return Err(Failure::SignIn { base: session.base.clone(), next: session.here.clone() });
    }
    let text = String::from_utf8_lossy(&body);
    let scope = session.caller.scope();
    // Each distinct wikilink is resolved once, among the documents the visitor may read.
    let mut resolved = HashMap::new();
    let mut asked = std::collections::HashSet::new();
    for link in isocrates_storage::links::parse_wikilinks(&text) {
        let target = link.target;
        if !asked.insert(target.clone()) {
            continue;
        }
        if asked.len() > MAX_PREVIEW_LINKS {
            break;
        }
        if let Some(id) = state
            .storage()
            .resolve_link(&target, &scope)
            .await
            .map_err(|e| stored(&session.base, e))?
        {
            resolved.insert(target, id);
        }
    }
    let base = session.base.clone();
    let rendered = markdown::render(&text, &hrefs(&base, &resolved));
    Ok(axum::response::Html(rendered.html).into_response())
}

/// `GET /d/{doc_id}/history`: the versions, to compare any two.
pub(crate) async fn history(session: Session, Path(doc_id): Path<String>) -> Page {
    let id = encode(&doc_id);
    let doc = session.get(&format!("/api/docs/{id}")).await?;
    let versions = session.get(&format!("/api/docs/{id}/versions?limit=200")).await?;
    let title = format!("History of {}", doc["title"].as_str().unwrap_or_default());
    let mut context = session.frame("docs", &title).await?;
    context.insert("doc".into(), doc);
    context.insert("versions".into(), versions);
    page("history.html", context)
}

/// `GET /d/{doc_id}/diff?from=&to=`: what changed between two versions (by default, the
/// last change).
pub(crate) async fn diff(
    session: Session,
    Path(doc_id): Path<String>,
    uri: axum::http::Uri,
) -> Page {
    let id = encode(&doc_id);
    let q = query(&uri);
    let doc = session.get(&format!("/api/docs/{id}")).await?;
    let versions = session.get(&format!("/api/docs/{id}/versions?limit=200")).await?;
    let list = versions.as_array().cloned().unwrap_or_default();
    let pick = |key: &str, default: usize| -> Result<Value, Failure> {
        match q.get(key).filter(|v| !v.is_empty()) {
            Some(wanted) => {
                list.iter().find(|v| v["version_id"] == wanted.as_str()).cloned().ok_or_else(|| {
                    session.failure(
                        StatusCode::NOT_FOUND,
                        format!("this document has no version {wanted}"),
                    )
                })
            }
            None => Ok(list.get(default).or(list.last()).cloned().unwrap_or(Value::Null)),
        }
    };
    let newer = pick("to", 0)?;
    let older = pick("from", 1)?;
    let rows = diff::lines(
        older["content"].as_str().unwrap_or_default(),
        newer["content"].as_str().unwrap_or_default(),
    );
    let (added, removed) = diff::counts(&rows);
    let title = format!("Changes to {}", doc["title"].as_str().unwrap_or_default());
    let mut context = session.frame("docs", &title).await?;
    context.insert("doc".into(), doc);
    context.insert("versions".into(), versions.clone());
    context.insert("older".into(), older);
    context.insert("newer".into(), newer);
    context.insert("rows".into(), json!(rows));
    context.insert("added".into(), json!(added));
    context.insert("removed".into(), json!(removed));
    page("diff.html", context)
}

/// The search filters a page passes on to the API.
const SEARCH_FILTERS: [&str; 4] = ["path_prefix", "keywords", "date_from", "date_to"];

/// `GET /search`: search with the API's filters; `?partial=1` answers the results alone,
/// for searching as one types.
pub(crate) async fn search(session: Session, uri: axum::http::Uri) -> Page {
    let q = query(&uri);
    let text = q.get("q").map(|s| s.trim().to_string()).unwrap_or_default();
    let mut form = Map::new();
    form.insert("q".into(), json!(text));
    let mut api = format!("/api/docs/search?limit=50&q={}", encode(&text));
    for filter in SEARCH_FILTERS {
        let value = q.get(filter).map(|s| s.trim().to_string()).unwrap_or_default();
        if !value.is_empty() {
            api.push_str(&format!("&{filter}={}", encode(&value)));
        }
        form.insert(filter.into(), json!(value));
    }
    let (hits, error) = if text.is_empty() {
        (Value::Null, Value::Null)
    } else {
        match session.get(&api).await {
            Ok(hits) => (hits, Value::Null),
            // A filter the API refuses is said beside the form, not as an error page.
            Err(Failure::Page { status, message, .. }) if status.is_client_error() => {
                (Value::Null, json!(message))
            }
            Err(failure) => return Err(failure),
        }
    };
    let hits: Vec<Value> = hits
        .as_array()
        .into_iter()
        .flatten()
        .map(|hit| {
            let mut hit = hit.clone();
            hit["snippet_html"] =
                json!(markdown::snippet(hit["snippet"].as_str().unwrap_or_default()));
            hit
        })
        .collect();
    let mut context = if session.partial {
        session.bare("search", "Search")
    } else {
        session.frame("search", "Search").await?
    };
    context.insert("form".into(), Value::Object(form));
    context.insert("hits".into(), json!(hits));
    context.insert("searched".into(), json!(!text.is_empty()));
    context.insert("error".into(), error);
    page(if session.partial { "search_results.html" } else { "search.html" }, context)
}

/// `GET /trash`: trashed documents the visitor may restore.
pub(crate) async fn trash(session: Session) -> Page {
    let trashed = session.get("/api/docs/trash?limit=200").await?;
    let mut context = session.frame("trash", "Trash").await?;
    context.insert("trashed".into(), trashed);
    page("trash.html", context)
}

/// Whether the visitor may start, retry and cancel jobs at all: an admin, or an editor of
/// some folder (the API then checks the repository's folder).
fn steers(session: &Session) -> bool {
    use isocrates_storage::Role;
    session.caller.is_admin()
        || session.caller.grants.iter().any(|g| matches!(g.role, Role::Admin | Role::Editor))
}

/// Whether a job may still change.
fn is_live(job: &Value) -> bool {
    matches!(job["status"].as_str(), Some("queued" | "running"))
}

/// `GET /jobs`: the documentation runs, refreshed while one is live.
pub(crate) async fn jobs(session: Session, uri: axum::http::Uri) -> Page {
    let q = query(&uri);
    let status = q.get("status").cloned().unwrap_or_default();
    let mut api = "/api/jobs?limit=50".to_string();
    if !status.is_empty() {
        api.push_str(&format!("&status={}", encode(&status)));
    }
    let jobs = session.get(&api).await?;
    let live = jobs.as_array().into_iter().flatten().any(is_live);
    let mut context = if session.partial {
        session.bare("jobs", "Jobs")
    } else {
        session.frame("jobs", "Jobs").await?
    };
    if !session.partial {
        context.insert("spending".into(), session.get("/api/jobs/spending?months=3").await?);
    }
    context.insert("jobs".into(), jobs);
    context.insert("live".into(), json!(live));
    context.insert("status".into(), json!(status));
    context.insert("can_run".into(), json!(steers(&session)));
    page(if session.partial { "jobs_table.html" } else { "jobs.html" }, context)
}

/// `GET /jobs/{job_id}`: one run, its steps and errors, live while it runs.
pub(crate) async fn job(session: Session, Path(job_id): Path<String>) -> Page {
    let job = session.get(&format!("/api/jobs/{}", encode(&job_id))).await?;
    let live = is_live(&job);
    let steers = steers(&session);
    let title = format!("Job {}", job["id"].as_str().unwrap_or_default());
    let mut context = if session.partial {
        session.bare("jobs", &title)
    } else {
        session.frame("jobs", &title).await?
    };
    context.insert("job".into(), job);
    context.insert("live".into(), json!(live));
    context.insert("can_steer".into(), json!(steers));
    page(if session.partial { "job_live.html" } else { "job.html" }, context)
}

/// `GET /personal`: the visitor's own folders and references.
pub(crate) async fn personal(session: Session) -> Page {
    if !session.signed_in() {
        return Err(Failure::SignIn { base: session.base.clone(), next: session.here.clone() });
    }
    let context = session.frame("personal", "My pages").await?;
    page("personal.html", context)
}

/// `GET /admin`: users, roles, grants, service tokens and tracked repositories.
pub(crate) async fn admin(session: Session) -> Page {
    if !session.caller.is_admin() {
        if !session.signed_in() && session.state.config().auth_enabled {
            return Err(Failure::SignIn { base: session.base.clone(), next: session.here.clone() });
        }
        return Err(session.failure(StatusCode::FORBIDDEN, "this page is for admins"));
    }
    let users = session.get("/api/auth/users").await?;
    let repositories = session.get("/api/repositories").await?;
    let mut context = session.frame("admin", "Administration").await?;
    context.insert("users".into(), users);
    context.insert("repositories".into(), repositories);
    context.insert("roles".into(), json!(["admin", "editor", "viewer", "service"]));
    page("admin.html", context)
}
