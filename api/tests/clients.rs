//! The calls of the clients built for IsoCrates, replayed as they make them: the MCP
//! server and the documentation agent. Each answer must carry the fields the client reads,
//! with the types it expects; a missing field or a changed type breaks a client in the
//! field, so each is checked by name.

use axum::http::StatusCode;
use isocrates_testkit::{Answer, TestApp, on_both_backends};
use serde_json::{Value, json};

/// Asserts that `value` has each of `fields` (dotted paths into objects; `[0]` for the
/// first item) and that it is of the kind named: `s` string, `n` number, `o` object,
/// `a` array, `s?` string or null, `o?` object or null.
fn reads(value: &Value, fields: &[(&str, &str)], call: &str) {
    for (path, kind) in fields {
        let mut at = value;
        for part in path.split('.') {
            at = match part.strip_suffix("[0]") {
                Some("") => &at[0],
                Some(name) => &at[name][0],
                None => &at[part],
            };
        }
        let ok = match *kind {
            "s" => at.is_string(),
            "n" => at.is_number(),
            "o" => at.is_object(),
            "a" => at.is_array(),
            "s?" => at.is_string() || at.is_null(),
            "o?" => at.is_object() || at.is_null(),
            other => panic!("unknown kind {other}"),
        };
        assert!(ok, "{call}: {path} should be {kind}, is {at} in {value}");
    }
}

fn ok(answer: &Answer, call: &str) {
    assert!(answer.status.is_success(), "{call}: {} {:?}", answer.status, answer.body);
}

on_both_backends! {
    async fn the_mcp_server_finds_every_call_it_makes(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let token = app.post("/api/auth/tokens", Some(&admin), json!({"subject": "mcp-server"})).await;
        ok(&token, "POST /api/auth/tokens");
        let mcp = token.body["token"].as_str().unwrap().to_string();
        let seed = |title: &str, content: &str| json!({
            "title": title, "path": "acme/guides", "content": content, "repo_url": "https://github.com/acme/app",
            "doc_type": "guide", "keywords": ["setup"], "description": format!("About {title}"),
            "author_type": "ai", "author_metadata": {"generator": "isocrates", "repo_commit_sha": "abc", "planner_model": "p", "writer_model": "w", "source_files": ["README.md"], "source_hashes": {"README.md": "0123456789abcdef"}},
        });
        ok(&app.post("/api/docs", Some(&admin), seed("Getting Started", "Install it, then read [[Configuration]].")).await, "seed");
        ok(&app.post("/api/docs", Some(&admin), seed("Configuration", "Every setting. Back to [[Getting Started]].")).await, "seed");

        let search = app.get("/api/docs/search/?q=install&limit=5&path_prefix=acme&keywords=setup", Some(&mcp)).await;
        ok(&search, "search");
        reads(&search.body, &[("[0].id", "s"), ("[0].title", "s"), ("[0].path", "s"), ("[0].description", "s?"), ("[0].snippet", "s"), ("[0].content_preview", "s"), ("[0].keywords", "a")], "search");
        let id = search.body[0]["id"].as_str().unwrap().to_string();

        let doc = app.get(&format!("/api/docs/{id}"), Some(&mcp)).await;
        ok(&doc, "get");
        reads(&doc.body, &[("id", "s"), ("title", "s"), ("path", "s"), ("content", "s"), ("description", "s?"), ("keywords", "a"), ("updated_at", "s"), ("doc_type", "s")], "get");

        let resolved = app.get("/api/docs/resolve/?target=Configuration", Some(&mcp)).await;
        ok(&resolved, "resolve");
        reads(&resolved.body, &[("doc_id", "s")], "resolve");
        let missing = app.get("/api/docs/resolve/?target=Nothing%20Here", Some(&mcp)).await;
        assert!(missing.status.is_client_error(), "any 4xx means not found: {}", missing.status);

        let list = app.get("/api/docs?limit=50&path_prefix=acme", Some(&mcp)).await;
        ok(&list, "list");
        reads(&list.body, &[("[0].id", "s"), ("[0].title", "s"), ("[0].path", "s"), ("[0].doc_type", "s"), ("[0].updated_at", "s"), ("[0].description", "s?"), ("[0].content_preview", "s")], "list");
        assert!(list.body[0]["updated_at"].as_str().unwrap().len() >= 10, "the first 10 characters are shown");

        let deps = app.get(&format!("/api/docs/{id}/dependencies"), Some(&mcp)).await;
        ok(&deps, "dependencies");
        reads(&deps.body, &[("outgoing[0].to_doc_id", "s"), ("outgoing[0].link_text", "s?"), ("incoming[0].from_doc_id", "s"), ("incoming[0].link_text", "s?")], "dependencies");

        let titles = app.post("/api/docs/batch-titles", Some(&mcp), json!({"doc_ids": [id]})).await;
        ok(&titles, "batch-titles");
        assert!(titles.body[&id].is_string(), "{:?}", titles.body);

        let generated = app.post("/api/docs/generate-id", Some(&mcp), json!({"repo_url": "https://github.com/acme/app", "path": "acme/guides", "title": "Getting Started", "doc_type": "guide"})).await;
        ok(&generated, "generate-id");
        assert_eq!(generated.body["doc_id"], id.as_str(), "the id a client computes is the stored one");

        for path in [format!("/api/docs/{id}/similar?limit=3"), "/api/docs/similar/?text=install&limit=3".to_string()] {
            let similar = app.get(&path, Some(&mcp)).await;
            ok(&similar, &path);
            assert!(similar.body.is_array(), "{path}: {:?}", similar.body);
        }

        let latest = app.get(&format!("/api/docs/{id}/versions/latest"), Some(&mcp)).await;
        ok(&latest, "versions/latest");
        reads(&latest.body, &[("author_type", "s"), ("created_at", "s"), ("author_metadata", "o"), ("author_metadata.generator", "s"), ("author_metadata.repo_commit_sha", "s"), ("author_metadata.planner_model", "s"), ("author_metadata.writer_model", "s"), ("author_metadata.source_files", "a"), ("author_metadata.source_hashes", "o")], "versions/latest");

        let created = app.post("/api/docs", Some(&mcp), json!({"title": "Notes", "path": "acme/notes", "content": "From the editor.", "author_type": "human", "author_metadata": {"source": "mcp"}, "description": "Notes", "keywords": ["notes"]})).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        reads(&created.body, &[("id", "s"), ("title", "s"), ("path", "s"), ("version", "n"), ("description", "s?")], "create");
        let notes = created.body["id"].as_str().unwrap();
        let updated = app.put(&format!("/api/docs/{notes}"), Some(&mcp), json!({"content": "Edited.", "author_type": "human", "author_metadata": {"source": "mcp"}, "description": "Edited notes"})).await;
        ok(&updated, "update");
        reads(&updated.body, &[("id", "s"), ("title", "s"), ("path", "s"), ("version", "n"), ("description", "s?")], "update");
        let by_mcp = app.get(&format!("/api/docs/{notes}/versions/latest"), Some(&mcp)).await;
        assert_eq!((by_mcp.body["author_type"].as_str(), by_mcp.body["author_metadata"]["source"].as_str()), (Some("human"), Some("mcp")));

        let asked = app.post("/api/docs/ask/", Some(&mcp), json!({"question": "How do I install it?", "top_k": 3})).await;
        ok(&asked, "ask");
        reads(&asked.body, &[("answer", "s"), ("sources[0].title", "s"), ("sources[0].path", "s"), ("model", "s?")], "ask");

        let shown = app.get("/api/docs/not-a-document", Some(&mcp)).await;
        assert_eq!(shown.status, StatusCode::NOT_FOUND, "a title falls through to a 404 for the client to show");
        assert!(shown.body["message"].is_string());
    }

    async fn the_documentation_agent_finds_every_call_it_makes(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let token = app.post("/api/auth/tokens", Some(&admin), json!({"subject": "doc-agent"})).await;
        let agent = token.body["token"].as_str().unwrap().to_string();
        ok(&app.get("/health", None).await, "health");

        let generated = app.post("/api/docs/generate-id", Some(&agent), json!({"repo_url": "https://github.com/acme/app.git", "path": "app/api", "title": "API", "doc_type": "api"})).await;
        ok(&generated, "generate-id");
        let id = generated.body["doc_id"].as_str().unwrap().to_string();
        let absent = app.get(&format!("/api/docs/{id}"), Some(&agent)).await;
        assert_eq!(absent.status, StatusCode::NOT_FOUND, "404 means absent");

        let body = json!({
            "repo_url": "https://github.com/acme/app.git", "repo_name": "app", "path": "app/api", "title": "API", "doc_type": "api",
            "content": "# API\n", "description": "The API", "keywords": ["api"], "author_type": "ai",
            "author_metadata": {"repo_commit_sha": "abc123", "source_hashes": {"src/api.rs": "0011223344556677"}},
        });
        let created = app.post("/api/docs", Some(&agent), body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        assert_eq!(created.body["id"], id.as_str());

        let fetched = app.get(&format!("/api/docs/{id}"), Some(&agent)).await;
        reads(&fetched.body, &[("content", "s"), ("title", "s"), ("path", "s"), ("doc_type", "s")], "get");
        ok(&app.put(&format!("/api/docs/{id}"), Some(&agent), json!({"content": "# API\n\nMore.\n"})).await, "update with content only");

        let versions = app.get(&format!("/api/docs/{id}/versions"), Some(&agent)).await;
        ok(&versions, "versions");
        reads(&versions.body, &[("[0].author_type", "s"), ("[0].created_at", "s"), ("[0].author_metadata", "o?")], "versions");
        let oldest = &versions.body[1];
        assert_eq!(oldest["author_metadata"]["repo_commit_sha"], "abc123");
        assert!(oldest["author_metadata"]["source_hashes"].is_object());

        let all = app.get("/api/docs?limit=1000", Some(&agent)).await;
        reads(&all.body, &[("[0].path", "s"), ("[0].title", "s"), ("[0].repo_name", "s?"), ("[0].doc_type", "s")], "list");
        let of_repo = app.get("/api/docs?repo_url=https://github.com/acme/app&limit=100", Some(&agent)).await;
        ok(&of_repo, "list by repository");
        assert_eq!(of_repo.body.as_array().unwrap().len(), 1, "{:?}", of_repo.body);
        reads(&of_repo.body, &[("[0].id", "s"), ("[0].path", "s"), ("[0].title", "s"), ("[0].doc_type", "s")], "list by repository");

        let deleted = app.post("/api/docs/batch", Some(&agent), json!({"operation": "delete", "doc_ids": [id, "doc-missing"]})).await;
        ok(&deleted, "batch delete");
        assert_eq!(deleted.body["succeeded"], 1);
        reads(&deleted.body, &[("errors", "a"), ("errors[0].doc_id", "s"), ("errors[0].error", "s")], "batch delete");
    }
}
