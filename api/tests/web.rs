//! The web page over HTTP, without a browser: the first-run screen, signing in and out,
//! what each role sees and may do, CSRF on cookie sessions, escaping, the security headers
//! and `BASE_PATH`. The browser itself is driven in `browser.rs`.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use isocrates_testkit::{Answer, TestApp, on_both_backends};
use serde_json::json;

/// A browser's GET of `path`, with the session cookie `token` when given.
async fn page(app: &TestApp, path: &str, token: Option<&str>) -> Answer {
    let mut req = Request::builder().uri(path).header(header::ACCEPT, "text/html,*/*;q=0.8");
    if let Some(token) = token {
        req = req.header(header::COOKIE, format!("theme=dark; isocrates_session={token}"));
    }
    app.send(req.body(Body::empty()).unwrap()).await
}

/// A browser's form POST of `fields` to `path`.
async fn post_form(
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
    cookie: Option<&str>,
) -> Answer {
    let body: String =
        form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(token) = cookie {
        req = req.header(header::COOKIE, format!("isocrates_session={token}"));
    }
    app.send(req.body(Body::from(body)).unwrap()).await
}

/// A call of the JSON API the way the page's script makes it: with the session cookie and,
/// when given, the CSRF header.
async fn scripted(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    csrf: Option<&str>,
    body: serde_json::Value,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, format!("isocrates_session={token}"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(csrf) = csrf {
        req = req.header("x-csrf-token", csrf);
    }
    app.send(req.body(Body::from(body.to_string())).unwrap()).await
}

/// The session token a `Set-Cookie` answer starts.
fn session_of(answer: &Answer) -> String {
    let cookie =
        answer.headers.get(header::SET_COOKIE).expect("a session cookie").to_str().unwrap();
    let value = cookie.strip_prefix("isocrates_session=").expect("the session cookie");
    value.split(';').next().unwrap().to_string()
}

/// The CSRF token a page carries for its script.
fn csrf_of(html: &str) -> String {
    let start = html.find("data-csrf=\"").expect("the page's CSRF token") + "data-csrf=\"".len();
    html[start..start + 32].to_string()
}

fn location(answer: &Answer) -> &str {
    answer.headers.get(header::LOCATION).expect("a redirect").to_str().unwrap()
}

async fn document(app: &TestApp, token: &str, path: &str, title: &str, content: &str) -> String {
    let created = app
        .post(
            "/api/docs",
            Some(token),
            json!({"title": title, "path": path, "content": content, "author_type": "human"}),
        )
        .await;
    assert!(created.status.is_success(), "{:?}", created.body);
    created.body["id"].as_str().unwrap().to_string()
}

on_both_backends! {
    async fn the_first_visit_creates_the_admin_and_signs_them_in(db) {
        let app = TestApp::new(db, true).await;
        let first = page(&app, "/", None).await;
        assert_eq!(first.status, StatusCode::SEE_OTHER);
        assert_eq!(location(&first), "/setup");
        let json = app.get("/", None).await;
        assert_eq!(json.body["name"], "IsoCrates API", "a JSON client still gets the API's description");

        let form = page(&app, "/setup", None).await;
        assert_eq!(form.status, StatusCode::OK);
        assert!(form.text.contains("Create the administrator"), "{}", form.text);
        let short = post_form(&app, "/setup", &[("display_name", "Ada"), ("email", "ada@example.com"), ("password", "short")], None).await;
        assert_eq!(short.status, StatusCode::BAD_REQUEST);
        assert!(short.text.contains("ada@example.com"), "the form keeps what was typed");

        let made = post_form(&app, "/setup", &[("display_name", "Ada"), ("email", "ada@example.com"), ("password", "a-long-password")], None).await;
        assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.text);
        let cookie = made.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().to_string();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
        let token = session_of(&made);
        let home = page(&app, "/", Some(&token)).await;
        assert_eq!(home.status, StatusCode::OK);
        assert!(home.text.contains("Ada") && home.text.contains(">admin<"), "{}", home.text);
        assert!(home.text.contains("/admin"), "the admin sees the admin page's link");

        // Once someone exists the setup screen is gone, for good.
        assert_eq!(location(&page(&app, "/setup", None).await), "/login");
        let again = post_form(&app, "/setup", &[("display_name", "Eve"), ("email", "eve@example.com"), ("password", "a-long-password")], None).await;
        assert_eq!(location(&again), "/login");
        assert_eq!(app.db.storage.users().await.unwrap().len(), 1);
    }

    async fn signing_in_and_out(db) {
        let app = TestApp::new(db, true).await;
        app.admin_token().await;
        assert_eq!(location(&page(&app, "/", None).await), "/login");
        let wrong = post_form(&app, "/login", &[("email", "admin@example.com"), ("password", "nope"), ("next", "")], None).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(wrong.text.contains("Invalid email or password"), "{}", wrong.text);
        assert!(wrong.headers.get(header::SET_COOKIE).is_none());

        let fine = post_form(&app, "/login", &[("email", "admin@example.com"), ("password", "admin-password"), ("next", "/jobs")], None).await;
        assert_eq!(location(&fine), "/jobs", "back to the page that asked for a sign-in");
        for away in ["//evil.example/x", "/\t/evil.example", "https://evil.example/", "/\\evil.example", "/login?next=/x"] {
            let elsewhere = post_form(&app, "/login", &[("email", "admin@example.com"), ("password", "admin-password"), ("next", away)], None).await;
            assert_eq!(location(&elsewhere), "/", "{away:?} is not a page to go back to");
        }
        let guide = post_form(&app, "/login", &[("email", "admin@example.com"), ("password", "admin-password"), ("next", "/d/login-guide")], None).await;
        assert_eq!(location(&guide), "/d/login-guide");
        let token = session_of(&fine);

        // Someone still signed in may sign in again (as someone else, say), which ends the
        // session the browser held.
        let held = app.login("admin@example.com", "admin-password").await;
        let again = post_form(&app, "/login", &[("email", "admin@example.com"), ("password", "admin-password")], Some(&held)).await;
        assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.text);
        assert_eq!(app.get("/api/auth/me", Some(&held)).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.get("/api/auth/me", Some(&session_of(&again))).await.status, StatusCode::OK);

        // Sign out needs the page's CSRF token.
        let home = page(&app, "/", Some(&token)).await;
        let csrf = csrf_of(&home.text);
        let forged = post_form(&app, "/logout", &[("csrf", "0123")], Some(&token)).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        // A form of another site cannot sign anyone out, with or without the cookie.
        let req = Request::builder()
            .method(Method::POST)
            .uri("/logout")
            .header("sec-fetch-site", "cross-site")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::empty())
            .unwrap();
        let cross = app.send(req).await;
        assert_eq!(cross.status, StatusCode::FORBIDDEN);
        assert!(cross.headers.get(header::SET_COOKIE).is_none());
        let out = post_form(&app, "/logout", &[("csrf", &csrf)], Some(&token)).await;
        assert_eq!(location(&out), "/login");
        assert!(out.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().contains("Max-Age=0"));
        // The session's token is over too: a copy of the cookie no longer works, as a
        // cookie or as a bearer token.
        assert_eq!(location(&page(&app, "/trash", Some(&token)).await), "/login?next=%2Ftrash");
        let copied = app.get("/api/auth/me", Some(&token)).await;
        assert_eq!(copied.status, StatusCode::UNAUTHORIZED);
        assert!(copied.body["message"].as_str().unwrap().contains("signed out"), "{:?}", copied.body);
        // A revocation is forgotten once its token has expired, not before.
        let past = isocrates_storage::Timestamp::ago(std::time::Duration::from_secs(7200));
        app.db.storage.revoke_token("expired-token", past).await.unwrap();
        assert!(app.db.storage.token_revoked("expired-token").await.unwrap());
        let purged = app.db.storage.purge_revoked_tokens(isocrates_storage::Timestamp::now()).await.unwrap();
        assert_eq!(purged, 1, "only the expired token's revocation goes");
        assert!(!app.db.storage.token_revoked("expired-token").await.unwrap());
        assert_eq!(app.get("/api/auth/me", Some(&token)).await.status, StatusCode::UNAUTHORIZED, "kept until it expires");

        // A session whose token no longer holds goes back to the sign-in page.
        let stale = page(&app, "/trash", Some("not-a-token")).await;
        assert_eq!(location(&stale), "/login?next=%2Ftrash");
    }

    async fn a_cookie_session_changes_nothing_without_its_csrf_token(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let id = document(&app, &admin, "team", "Page", "v1").await;
        let body = json!({"content": "v2", "author_type": "human"});
        let bare = scripted(&app, Method::PUT, &format!("/api/docs/{id}"), &admin, None, body.clone()).await;
        assert_eq!(bare.status, StatusCode::FORBIDDEN, "{:?}", bare.body);
        assert_eq!(bare.body["error"], "FORBIDDEN");
        let wrong = scripted(&app, Method::PUT, &format!("/api/docs/{id}"), &admin, Some("00000000000000000000000000000000"), body.clone()).await;
        assert_eq!(wrong.status, StatusCode::FORBIDDEN);
        let csrf = csrf_of(&page(&app, "/", Some(&admin)).await.text);
        let fine = scripted(&app, Method::PUT, &format!("/api/docs/{id}"), &admin, Some(&csrf), body).await;
        assert_eq!(fine.status, StatusCode::OK, "{:?}", fine.body);
        assert_eq!(fine.body["content"], "v2");
        // Reads need no token, and bearer clients are not affected.
        let read = scripted(&app, Method::GET, &format!("/api/docs/{id}"), &admin, None, json!(null)).await;
        assert_eq!(read.status, StatusCode::OK);
        let bearer = app.put(&format!("/api/docs/{id}"), Some(&admin), json!({"content": "v3"})).await;
        assert_eq!(bearer.status, StatusCode::OK);
    }

    async fn a_viewer_sees_no_edit_controls_and_is_refused_anyway(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let id = document(&app, &admin, "team", "Runbook", "Restart it.").await;
        let (user_id, viewer) = app.user(&admin, "viewer@example.com").await;
        app.grant(&admin, &user_id, "team", "viewer").await;

        let shown = page(&app, &format!("/d/{id}"), Some(&viewer)).await;
        assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
        assert!(shown.text.contains("Restart it."));
        for control in ["id=\"edit-link\"", "Move to trash", "/edit\""] {
            assert!(!shown.text.contains(control), "a viewer was shown {control}");
        }
        let admin_view = page(&app, &format!("/d/{id}"), Some(&admin)).await;
        assert!(admin_view.text.contains("id=\"edit-link\"") && admin_view.text.contains("Move to trash"));
        // The admin page revokes the root grant at its own route, and others encoded.
        app.grant(&admin, &user_id, "odd prefix", "viewer").await;
        let users = page(&app, "/admin", Some(&admin)).await;
        assert!(users.text.contains("/grants\" data-method=\"DELETE\""), "the root grant's revoke: {}", users.text);
        assert!(users.text.contains("/grants/odd%20prefix\""), "{}", users.text);

        let editor = page(&app, &format!("/d/{id}/edit"), Some(&viewer)).await;
        assert_eq!(editor.status, StatusCode::FORBIDDEN);
        let csrf = csrf_of(&shown.text);
        let put = scripted(&app, Method::PUT, &format!("/api/docs/{id}"), &viewer, Some(&csrf), json!({"content": "Hacked", "author_type": "human"})).await;
        assert_eq!(put.status, StatusCode::FORBIDDEN, "{:?}", put.body);
        let deleted = scripted(&app, Method::DELETE, &format!("/api/docs/{id}"), &viewer, Some(&csrf), json!(null)).await;
        assert_eq!(deleted.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get(&format!("/api/docs/{id}"), Some(&admin)).await.body["content"], "Restart it.");
        assert!(!shown.text.contains("href=\"/admin\""), "nor the admin page");
        assert_eq!(page(&app, "/admin", Some(&viewer)).await.status, StatusCode::FORBIDDEN);
    }

    async fn the_tree_shows_nothing_outside_the_grants(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let mine = document(&app, &admin, "team/api", "Visible Page", "Hello").await;
        let other = document(&app, &admin, "secret/plans", "Hidden Page", "Nope").await;
        let root = document(&app, &admin, "", "Top Secret", "Nope").await;
        let (user_id, viewer) = app.user(&admin, "v@example.com").await;
        app.grant(&admin, &user_id, "team", "viewer").await;

        for path in ["/".to_string(), format!("/d/{mine}"), "/search?q=page".to_string(), "/jobs".to_string()] {
            let shown = page(&app, &path, Some(&viewer)).await;
            assert_eq!(shown.status, StatusCode::OK, "{path}: {}", shown.text);
            assert!(shown.text.contains("Visible Page"), "{path}");
            for hidden in ["Hidden Page", "secret", "Top Secret", "Uncategorized", other.as_str(), root.as_str()] {
                assert!(!shown.text.contains(hidden), "{path} showed {hidden}");
            }
        }
        let refused = page(&app, &format!("/d/{other}"), Some(&viewer)).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND);
        assert!(!refused.text.contains("Nope"));
    }

    async fn script_in_a_document_is_shown_as_text(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let evil = "# Evil\n\n<script>alert(1)</script>\n\n<img src=x onerror=\"alert(2)\">\n\n[click](javascript:alert(3))\n\n[[x\" onmouseover=\"alert(4)]]\n";
        let id = document(&app, &admin, "team", "Evil", evil).await;
        let shown = page(&app, &format!("/d/{id}"), Some(&admin)).await;
        assert_eq!(shown.status, StatusCode::OK);
        let scripts = shown.text.matches("<script").count();
        assert_eq!(scripts, 1, "only the page's own script: {}", shown.text);
        assert!(shown.text.contains("<script src=\"/static/app.js\" defer></script>"));
        assert!(!shown.text.contains("<img"), "no image element at all: the tag is text");
        assert!(!shown.text.contains("javascript:"));
        assert!(shown.text.contains("title=\"No document is called x&quot; onmouseover=&quot;alert(4)\""), "{}", shown.text);
        assert!(shown.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        let csp = shown.headers.get(header::CONTENT_SECURITY_POLICY).unwrap().to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-eval") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.split(';').any(|d| d.contains("script-src") && d.contains("unsafe-inline")), "{csp}");
        assert_eq!(shown.headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
        assert_eq!(shown.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
        // A search snippet is escaped too, its marks aside.
        let hits = page(&app, "/search?q=alert&partial=1", Some(&admin)).await;
        assert!(hits.text.contains("<mark>"), "{}", hits.text);
        assert!(!hits.text.contains("<script>"), "{}", hits.text);
    }

    async fn a_document_page_shows_its_links_provenance_and_rendering(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let target = document(&app, &admin, "team", "Deploy Guide", "How to deploy.").await;
        let body = json!({
            "title": "Overview", "path": "team", "author_type": "ai",
            "content": "See [[Deploy Guide]] and [[Nowhere]].\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```mermaid\ngraph TD; A-->B;\n```\n",
            "description": "The big picture", "keywords": ["intro"],
            "author_metadata": {"repo_commit_sha": "0123456789abcdef", "writer_model": "big-model", "provider": "openai", "source_files": ["src/main.rs"]}
        });
        let id = app.post("/api/docs", Some(&admin), body).await.body["id"].as_str().unwrap().to_string();
        let shown = page(&app, &format!("/d/{id}"), Some(&admin)).await;
        let html = &shown.text;
        assert!(html.contains(&format!("<a class=\"wikilink\" href=\"/d/{target}\">Deploy Guide</a>")), "{html}");
        assert!(html.contains("wikilink broken"), "{html}");
        assert!(html.contains("<table>") && html.contains("<pre class=\"mermaid\">"), "{html}");
        for fact in ["The big picture", "intro", "0123456789ab", "big-model", "openai", "src/main.rs"] {
            assert!(html.contains(fact), "the page lacks {fact}: {html}");
        }
        let back = page(&app, &format!("/d/{target}"), Some(&admin)).await;
        let links_in = back.text.split("<h2>Links in</h2>").nth(1).expect("a Links in section");
        assert!(links_in.contains(&format!("href=\"/d/{id}\">Overview</a>")), "links in: {links_in}");

        // Metadata is whatever its writer sent: odd shapes are left out, never a failure.
        let odd = json!({"title": "Odd", "path": "team", "content": "x", "author_type": "ai",
            "author_metadata": {"repo_commit_sha": 12345, "source_files": "not a list", "run_id": {"a": 1}}});
        let odd = app.post("/api/docs", Some(&admin), odd).await.body["id"].as_str().unwrap().to_string();
        for path in [format!("/d/{odd}"), format!("/d/{odd}/history")] {
            let shown = page(&app, &path, Some(&admin)).await;
            assert_eq!(shown.status, StatusCode::OK, "{path}: {}", shown.text);
        }
    }

    async fn the_preview_renders_a_draft_for_a_session_with_its_token(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let target = document(&app, &admin, "team", "Known", "x").await;
        let csrf = csrf_of(&page(&app, "/", Some(&admin)).await.text);
        let req = |csrf: Option<&str>| {
            let mut req = Request::builder()
                .method(Method::POST)
                .uri("/preview")
                .header(header::COOKIE, format!("isocrates_session={admin}"));
            if let Some(csrf) = csrf {
                req = req.header("x-csrf-token", csrf);
            }
            req.body(Body::from("**bold** [[Known]] <b onclick=x>")).unwrap()
        };
        assert_eq!(app.send(req(None)).await.status, StatusCode::FORBIDDEN);
        let shown = app.send(req(Some(&csrf))).await;
        assert_eq!(shown.status, StatusCode::OK);
        assert!(shown.text.contains("<strong>bold</strong>"), "{}", shown.text);
        assert!(shown.text.contains(&format!("href=\"/d/{target}\"")), "{}", shown.text);
        assert!(shown.text.contains("&lt;b onclick=x&gt;"), "{}", shown.text);
    }

    async fn an_ai_proposal_beside_a_human_page_is_shown_with_its_buttons_to_editors_only(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let id = document(&app, &admin, "team", "Handbook", "Written by people.").await;
        app.db.storage.propose(&id, "Regenerated <b>text</b>.", None, Some(json!({"repo_commit_sha": "feedface00"}))).await.unwrap();
        let (user_id, viewer) = app.user(&admin, "reader@example.com").await;
        app.grant(&admin, &user_id, "team", "viewer").await;

        let shown = page(&app, &format!("/d/{id}"), Some(&admin)).await;
        assert!(shown.text.contains("A regenerated version is proposed"), "{}", shown.text);
        assert!(shown.text.contains("feedface"), "the proposal's commit");
        assert!(shown.text.contains("Regenerated &lt;b&gt;text&lt;/b&gt;."), "the proposal is escaped too");
        assert!(shown.text.contains("/accept\"") && shown.text.contains("/dismiss\""));
        let read = page(&app, &format!("/d/{id}"), Some(&viewer)).await;
        assert!(read.text.contains("A regenerated version is proposed"));
        assert!(!read.text.contains("/accept\"") && !read.text.contains("/dismiss\""), "a viewer cannot decide");

        let proposal = app.db.storage.proposals(&id).await.unwrap().remove(0);
        let csrf = csrf_of(&shown.text);
        let accepted = scripted(&app, Method::POST, &format!("/api/docs/{id}/proposals/{}/accept", proposal.id), &admin, Some(&csrf), json!(null)).await;
        assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.body);
        let after = page(&app, &format!("/d/{id}"), Some(&admin)).await;
        assert!(!after.text.contains("A regenerated version is proposed"));
        assert!(after.text.contains("Regenerated &lt;b&gt;text&lt;/b&gt;."));
    }

    async fn pages_answer_under_a_base_path(db) {
        let app = TestApp::with_config(db, |c| c.web.base_path = "/docs".to_string()).await;
        let admin = app.admin_token_at("/docs").await;
        let id = document_at(&app, "/docs", &admin).await;
        let home = page(&app, "/docs", Some(&admin)).await;
        assert_eq!(home.status, StatusCode::OK, "{}", home.text);
        assert!(home.text.contains("href=\"/docs/static/app.css\"") && home.text.contains("data-base=\"/docs\""), "{}", home.text);
        assert!(home.text.contains(&format!("href=\"/docs/d/{id}\"")), "{}", home.text);
        assert_eq!(location(&page(&app, "/docs/trash", Some("bad")).await), "/docs/login?next=%2Fdocs%2Ftrash");
        let css = page(&app, "/docs/static/app.css", None).await;
        assert_eq!(css.status, StatusCode::OK);
        assert!(css.headers.get(header::CONTENT_TYPE).unwrap().to_str().unwrap().starts_with("text/css"));
        let made = post_form(&app, "/docs/login", &[("email", "admin@example.com"), ("password", "admin-password")], None).await;
        assert_eq!(location(&made), "/docs/");
        assert_eq!(page(&app, "/docs/", Some(&admin)).await.status, StatusCode::OK, "where sign-in leads");
        assert!(made.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().contains("Path=/docs;"));
        assert_eq!(app.get("/api/docs", Some(&admin)).await.status, StatusCode::NOT_FOUND, "nothing outside the base");
    }
}

trait AtBase {
    async fn admin_token_at(&self, base: &str) -> String;
}

impl AtBase for TestApp {
    async fn admin_token_at(&self, base: &str) -> String {
        let body = json!({"email": "admin@example.com", "password": "admin-password", "display_name": "Admin"});
        let made = self.post(&format!("{base}/api/auth/register"), None, body).await;
        assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
        let login = json!({"email": "admin@example.com", "password": "admin-password"});
        self.post(&format!("{base}/api/auth/login"), None, login).await.body["token"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

async fn document_at(app: &TestApp, base: &str, token: &str) -> String {
    let body = json!({"title": "Based", "path": "team", "content": "x", "author_type": "human"});
    let made = app.post(&format!("{base}/api/docs"), Some(token), body).await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    made.body["id"].as_str().unwrap().to_string()
}
