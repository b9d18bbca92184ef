//! The document endpoints: upsert by derived id, versions, optimistic locking, moves,
//! keywords, the trash, and the wikilink graph as clients see it.

use axum::http::StatusCode;
use isocrates_testkit::{TestApp, on_both_backends};
use serde_json::{Value, json};

fn id_of(answer: &isocrates_testkit::Answer) -> String {
    answer.body["id"].as_str().unwrap_or_else(|| panic!("no id in {:?}", answer.body)).to_string()
}

on_both_backends! {
    async fn upsert_answers_201_then_200_with_versions(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let body = json!({
            "title": "Getting Started", "path": "acme/app", "content": "v1",
            "repo_url": "https://github.com/acme/app.git", "doc_type": "guide",
            "keywords": ["setup", "setup", " install "], "description": "How to start",
            "author_type": "ai",
            "author_metadata": {"generator": "isocrates", "repo_commit_sha": "abc123", "source_files": ["README.md"]}
        });
        let created = app.post("/api/docs", Some(&admin), body.clone()).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let id = id_of(&created);
        let generated = app.post("/api/docs/generate-id", None, json!({"repo_url": "https://github.com/acme/app/", "path": "/acme//app/", "title": "Getting Started", "doc_type": "guide"})).await;
        assert_eq!(generated.body["doc_id"], id.as_str(), "generate-id normalises like the upsert");
        assert_eq!(created.body["keywords"], json!(["setup", "install"]));
        assert_eq!(created.body["repo_url"], "https://github.com/acme/app");
        assert_eq!(created.body["repo_name"], "acme");
        assert_eq!(created.body["content_preview"], "v1");
        assert_eq!(created.body["generation_count"], 1);
        for field in ["created_at", "updated_at"] {
            let t = created.body[field].as_str().unwrap();
            assert!(t.ends_with('Z') && t.len() == 27, "{field} = {t}");
        }

        let mut again = body.clone();
        again["content"] = json!("v2");
        again["author_type"] = json!("human");
        again["author_metadata"] = json!({"source": "mcp"});
        let updated = app.post("/api/docs", Some(&admin), again).await;
        assert_eq!(updated.status, StatusCode::OK);
        assert_eq!(id_of(&updated), id);
        assert_eq!(updated.body["generation_count"], 2);

        let versions = app.get(&format!("/api/docs/{id}/versions"), None).await;
        assert_eq!(versions.status, StatusCode::NOT_FOUND, "no token, auth on: 404");
        let versions = app.get(&format!("/api/docs/{id}/versions"), Some(&admin)).await;
        let list = versions.body.as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["author_type"], "human");
        assert_eq!(list[1]["author_metadata"]["repo_commit_sha"], "abc123");
        let latest = app.get(&format!("/api/docs/{id}/versions/latest"), Some(&admin)).await;
        assert_eq!(latest.body["content"], "v2");
        let version_id = list[1]["version_id"].as_str().unwrap();
        let one = app.get(&format!("/api/docs/{id}/versions/{version_id}"), Some(&admin)).await;
        assert_eq!(one.body["content"], "v1");
        let missing = app.get(&format!("/api/docs/{id}/versions/nope"), Some(&admin)).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        let paged = app.get(&format!("/api/docs/{id}/versions?skip=1&limit=1"), Some(&admin)).await;
        assert_eq!(paged.body[0]["content"], "v1");
    }

    async fn stale_version_is_409_and_keeps_the_content(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let created = app.post("/api/docs", Some(&admin), json!({"title": "Page", "content": "v1"})).await;
        let id = id_of(&created);
        let version = created.body["version"].as_i64().unwrap();
        let ok = app.put(&format!("/api/docs/{id}"), Some(&admin), json!({"content": "mine", "version": version, "author_type": "human"})).await;
        assert_eq!(ok.status, StatusCode::OK);
        let stale = app.put(&format!("/api/docs/{id}"), Some(&admin), json!({"content": "theirs", "version": version})).await;
        assert_eq!(stale.status, StatusCode::CONFLICT);
        assert_eq!(stale.body["error"], "CONFLICT");
        let now = app.get(&format!("/api/docs/{id}"), Some(&admin)).await;
        assert_eq!(now.body["content"], "mine");
        // Clients that send no version (the MCP server, the agent) always land.
        let blind = app.put(&format!("/api/docs/{id}"), Some(&admin), json!({"content": "agent"})).await;
        assert_eq!(blind.status, StatusCode::OK);
    }

    async fn move_keywords_and_repo_keep_the_id(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let id = id_of(&app.post("/api/docs", Some(&admin), json!({"title": "Page", "path": "old", "content": "x"})).await);
        let moved = app.put(&format!("/api/docs/{id}/move"), Some(&admin), json!({"target_path": "new/place"})).await;
        assert_eq!(moved.status, StatusCode::OK);
        assert_eq!(id_of(&moved), id);
        assert_eq!(moved.body["path"], "new/place");
        assert_eq!(moved.body["repo_name"], "new");
        let versions_before = app.get(&format!("/api/docs/{id}/versions"), Some(&admin)).await.body.as_array().unwrap().len();
        let tagged = app.put(&format!("/api/docs/{id}/keywords"), Some(&admin), json!({"keywords": ["a", "b"]})).await;
        assert_eq!(tagged.body["keywords"], json!(["a", "b"]));
        let versions_after = app.get(&format!("/api/docs/{id}/versions"), Some(&admin)).await.body.as_array().unwrap().len();
        assert_eq!(versions_before, versions_after, "keywords write no version");
        let repo = app.put(&format!("/api/docs/{id}/repo"), Some(&admin), json!({"repo_url": "https://gitlab.com/x/y.git"})).await;
        assert_eq!(repo.body["repo_url"], "https://gitlab.com/x/y");
        let cleared = app.put(&format!("/api/docs/{id}/repo"), Some(&admin), json!({"repo_url": ""})).await;
        assert_eq!(cleared.body["repo_url"], Value::Null);
    }

    async fn a_moved_document_cannot_be_rewritten_through_its_old_path(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let (uid, editor) = app.user(&admin, "e@example.com").await;
        app.grant(&admin, &uid, "public", "editor").await;
        let id = id_of(&app.post("/api/docs", Some(&admin), json!({"title": "Plan", "path": "public", "content": "original"})).await);
        app.put(&format!("/api/docs/{id}/move"), Some(&admin), json!({"target_path": "secret"})).await;
        let hijack = app.post("/api/docs", Some(&editor), json!({"title": "Plan", "path": "public", "content": "hijack"})).await;
        assert_eq!(hijack.status, StatusCode::FORBIDDEN, "{:?}", hijack.body);
        assert_eq!(app.get(&format!("/api/docs/{id}"), Some(&admin)).await.body["content"], "original");
    }

    async fn moving_needs_edit_on_both_paths(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let (uid, user) = app.user(&admin, "e@example.com").await;
        app.grant(&admin, &uid, "mine", "editor").await;
        app.grant(&admin, &uid, "theirs", "viewer").await;
        let id = id_of(&app.post("/api/docs", Some(&user), json!({"title": "P", "path": "mine", "content": "x"})).await);
        let out = app.put(&format!("/api/docs/{id}/move"), Some(&user), json!({"target_path": "theirs"})).await;
        assert_eq!(out.status, StatusCode::FORBIDDEN);
        let inside = app.put(&format!("/api/docs/{id}/move"), Some(&user), json!({"target_path": "mine/sub"})).await;
        assert_eq!(inside.status, StatusCode::OK);
    }

    async fn trash_restore_and_permanent_delete(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let id = id_of(&app.post("/api/docs", Some(&admin), json!({"title": "Page", "path": "p", "content": "x"})).await);
        assert_eq!(app.delete(&format!("/api/docs/{id}"), Some(&admin)).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.delete(&format!("/api/docs/{id}"), Some(&admin)).await.status, StatusCode::NO_CONTENT, "idempotent");
        let gone = app.get(&format!("/api/docs/{id}"), Some(&admin)).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        assert_eq!(gone.body["error"], "DOCUMENT_NOT_FOUND");
        assert_eq!(gone.body["details"]["doc_id"], id.as_str());
        let trash = app.get("/api/docs/trash", Some(&admin)).await;
        assert_eq!(trash.body.as_array().unwrap().len(), 1);
        assert!(trash.body[0]["deleted_at"].is_string());

        let restored = app.post(&format!("/api/docs/{id}/restore"), Some(&admin), json!({})).await;
        assert_eq!(restored.status, StatusCode::OK);
        assert_eq!(restored.body["deleted_at"], Value::Null);
        assert!(app.get("/api/docs/trash", Some(&admin)).await.body.as_array().unwrap().is_empty());

        let (_, editor) = app.user(&admin, "e@example.com").await;
        assert_eq!(app.delete(&format!("/api/docs/{id}/permanent"), Some(&editor)).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.delete(&format!("/api/docs/{id}/permanent"), Some(&admin)).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.post(&format!("/api/docs/{id}/restore"), Some(&admin), json!({})).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.delete(&format!("/api/docs/{id}"), Some(&admin)).await.status, StatusCode::NOT_FOUND);
    }

    async fn upserting_a_trashed_id_restores_it(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let body = json!({"title": "Page", "content": "old"});
        let id = id_of(&app.post("/api/docs", Some(&admin), body).await);
        app.delete(&format!("/api/docs/{id}"), Some(&admin)).await;
        let back = app.post("/api/docs", Some(&admin), json!({"title": "Page", "content": "new"})).await;
        assert_eq!(back.status, StatusCode::OK);
        assert_eq!(back.body["content"], "new");
        assert_eq!(app.get(&format!("/api/docs/{id}"), Some(&admin)).await.status, StatusCode::OK);
    }

    async fn lists_are_stable_and_filtered(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        for (title, path, repo) in [("B", "r/a", "https://github.com/o/r"), ("A", "r/a", "https://github.com/o/r"), ("C", "s", "")] {
            app.post("/api/docs", Some(&admin), json!({"title": title, "path": path, "repo_url": repo, "content": "x".repeat(600)})).await;
        }
        let all = app.get("/api/docs?limit=1000", Some(&admin)).await;
        let items = all.body.as_array().unwrap();
        let titles: Vec<_> = items.iter().map(|d| d["title"].as_str().unwrap()).collect();
        assert_eq!(titles, ["A", "B", "C"]);
        assert!(items[0].get("content").is_none() && items[0].get("repo_url").is_none());
        assert_eq!(items[0]["content_preview"].as_str().unwrap().chars().count(), 500);
        let by_repo = app.get("/api/docs?repo_url=https://github.com/o/r.git&limit=100", Some(&admin)).await;
        assert_eq!(by_repo.body.as_array().unwrap().len(), 2);
        let by_prefix = app.get("/api/docs?path_prefix=s", Some(&admin)).await;
        assert_eq!(by_prefix.body[0]["title"], "C");
        let page = app.get("/api/docs?skip=1&limit=1", Some(&admin)).await;
        assert_eq!(page.body[0]["title"], "B");
        for bad in ["limit=0", "limit=1001", "skip=-1", "limit=ten"] {
            let answer = app.get(&format!("/api/docs?{bad}"), Some(&admin)).await;
            assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
            assert_eq!(answer.body["error"], "INVALID_REQUEST");
        }
    }

    async fn wikilinks_become_the_dependency_graph(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let overview = id_of(&app.post("/api/docs", Some(&admin), json!({"title": "Overview", "path": "p", "content": "## Start\nRead [[Pre-commit Hooks|the hooks]] and [[Missing Page]]."})).await);
        let broken = app.get(&format!("/api/docs/{overview}/broken-links"), Some(&admin)).await;
        assert_eq!(broken.body, json!([
            {"target": "Missing Page", "resolved": false, "resolved_doc_id": null},
            {"target": "Pre-commit Hooks", "resolved": false, "resolved_doc_id": null},
        ]));

        // The target appears later: the waiting link is repaired.
        let hooks = id_of(&app.post("/api/docs", Some(&admin), json!({"title": "pre commit hooks", "path": "p", "content": "x"})).await);
        let deps = app.get(&format!("/api/docs/{overview}/dependencies"), Some(&admin)).await;
        assert_eq!(deps.body["outgoing"][0]["to_doc_id"], hooks.as_str());
        assert_eq!(deps.body["outgoing"][0]["link_text"], "the hooks");
        assert_eq!(deps.body["outgoing"][0]["section"], "Start");
        let back = app.get(&format!("/api/docs/{hooks}/dependencies"), Some(&admin)).await;
        assert_eq!(back.body["incoming"][0]["from_doc_id"], overview.as_str());
        let resolved = app.get("/api/docs/resolve/?target=pre-commit-hooks", Some(&admin)).await;
        assert_eq!(resolved.body, json!({"target": "pre-commit-hooks", "doc_id": hooks}));
        let resolved = app.get("/api/docs/resolve?target=nothing", Some(&admin)).await;
        assert_eq!(resolved.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get("/api/dependencies", Some(&admin)).await.body.as_array().unwrap().len(), 1);

        // A reader without access to the target sees the link as unresolved.
        let (uid, reader) = app.user(&admin, "r@example.com").await;
        app.grant(&admin, &uid, "p", "viewer").await;
        app.put(&format!("/api/docs/{hooks}/move"), Some(&admin), json!({"target_path": "private"})).await;
        let seen = app.get(&format!("/api/docs/{overview}/broken-links"), Some(&reader)).await;
        assert_eq!(seen.body[1]["resolved"], false);
        let deps = app.get(&format!("/api/docs/{overview}/dependencies"), Some(&reader)).await;
        assert_eq!(deps.body["outgoing"], json!([]));
        assert_eq!(app.get("/api/dependencies", Some(&reader)).await.body, json!([]));

        // Manual edges: self and cycles are refused.
        let other = id_of(&app.post("/api/docs", Some(&admin), json!({"title": "Other", "path": "p", "content": ""})).await);
        let edge = |from: &str, to: &str| json!({"from_doc_id": from, "to_doc_id": to, "link_type": "depends_on"});
        let self_edge = app.post(&format!("/api/docs/{other}/dependencies"), Some(&admin), edge(&other, &other)).await;
        assert_eq!(self_edge.body["error"], "SELF_DEPENDENCY");
        let first = app.post(&format!("/api/docs/{other}/dependencies"), Some(&admin), edge(&other, &overview)).await;
        assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
        let cycle = app.post(&format!("/api/docs/{overview}/dependencies"), Some(&admin), edge(&overview, &other)).await;
        assert_eq!(cycle.status, StatusCode::BAD_REQUEST);
        assert_eq!(cycle.body["error"], "CIRCULAR_DEPENDENCY");
        let viewer_edge = app.post(&format!("/api/docs/{overview}/dependencies"), Some(&reader), edge(&overview, &other)).await;
        assert_eq!(viewer_edge.status, StatusCode::FORBIDDEN);

        let reindex = app.post("/api/dependencies/reindex", Some(&admin), json!({})).await;
        assert_eq!(reindex.body["documents_processed"], 3);
        assert_eq!(app.post("/api/dependencies/reindex", Some(&reader), json!({})).await.status, StatusCode::FORBIDDEN);
    }
    async fn recent_lists_newest_changes_first(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let mut ids = Vec::new();
        for title in ["One", "Two", "Three"] {
            ids.push(id_of(&app.post("/api/docs", Some(&admin), json!({"title": title, "content": "x"})).await));
        }
        app.put(&format!("/api/docs/{}", ids[0]), Some(&admin), json!({"content": "touched"})).await;
        let recent = app.get("/api/docs/recent?limit=2", Some(&admin)).await;
        let titles: Vec<_> = recent.body.as_array().unwrap().iter().map(|d| d["title"].as_str().unwrap()).collect();
        assert_eq!(titles, ["One", "Three"]);
        assert_eq!(app.get("/api/docs/recent", None).await.body, json!([]));
        assert_eq!(app.get("/api/docs/recent?limit=101", Some(&admin)).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn batch_titles_answer_only_readable_ids(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let open = id_of(&app.post("/api/docs", Some(&admin), json!({"title": "Open", "path": "pub", "content": "x"})).await);
        let closed = id_of(&app.post("/api/docs", Some(&admin), json!({"title": "Closed", "path": "priv", "content": "x"})).await);
        let (uid, reader) = app.user(&admin, "r@example.com").await;
        app.grant(&admin, &uid, "pub", "viewer").await;
        let answer = app.post("/api/docs/batch-titles", Some(&reader), json!({"doc_ids": [open, closed, "doc-missing"]})).await;
        assert_eq!(answer.body, json!({ open.clone(): "Open" }));
        let many: Vec<String> = (0..150).map(|i| format!("doc-{i}")).chain([open.clone()]).collect();
        let capped = app.post("/api/docs/batch-titles", Some(&admin), json!({"doc_ids": many})).await;
        assert_eq!(capped.body, json!({}), "only the first 100 ids are looked up");
    }

    async fn batch_operations_check_each_document(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let (uid, editor) = app.user(&admin, "e@example.com").await;
        app.grant(&admin, &uid, "team", "editor").await;
        let mine = id_of(&app.post("/api/docs", Some(&admin), json!({"title": "Mine", "path": "team", "content": "x", "keywords": ["a"]})).await);
        let other = id_of(&app.post("/api/docs", Some(&admin), json!({"title": "Other", "path": "elsewhere", "content": "x"})).await);

        let add = app.post("/api/docs/batch", Some(&editor), json!({"operation": "add_keywords", "doc_ids": [mine, other], "params": {"keywords": ["b"]}})).await;
        assert_eq!(add.body["total"], 2);
        assert_eq!(add.body["succeeded"], 1);
        assert_eq!(add.body["failed"], 1);
        assert_eq!(add.body["errors"][0]["doc_id"], other.as_str());
        assert_eq!(app.get(&format!("/api/docs/{mine}"), Some(&admin)).await.body["keywords"], json!(["a", "b"]));
        let remove = app.post("/api/docs/batch", Some(&editor), json!({"operation": "remove_keywords", "doc_ids": [mine], "params": {"keywords": ["a"]}})).await;
        assert_eq!(remove.body["succeeded"], 1);
        assert_eq!(app.get(&format!("/api/docs/{mine}"), Some(&admin)).await.body["keywords"], json!(["b"]));

        let moved = app.post("/api/docs/batch", Some(&editor), json!({"operation": "move", "doc_ids": [mine], "params": {"target_path": "outside"}})).await;
        assert_eq!(moved.body["failed"], 1, "the move target needs edit too");
        let moved = app.post("/api/docs/batch", Some(&editor), json!({"operation": "move", "doc_ids": [mine], "params": {"target_path": "team/sub"}})).await;
        assert_eq!(moved.body["succeeded"], 1);

        let deleted = app.post("/api/docs/batch", Some(&editor), json!({"operation": "delete", "doc_ids": [mine, other, "doc-missing"]})).await;
        assert_eq!(deleted.body["succeeded"], 1);
        assert_eq!(deleted.body["failed"], 2);
        assert_eq!(app.get(&format!("/api/docs/{mine}"), Some(&admin)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&format!("/api/docs/{other}"), Some(&admin)).await.status, StatusCode::OK);

        let unknown = app.post("/api/docs/batch", Some(&editor), json!({"operation": "explode", "doc_ids": []})).await;
        assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
        let no_target = app.post("/api/docs/batch", Some(&editor), json!({"operation": "move", "doc_ids": [mine]})).await;
        assert_eq!(no_target.status, StatusCode::BAD_REQUEST);
        assert_eq!(app.post("/api/docs/batch", None, json!({"operation": "delete", "doc_ids": []})).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn a_person_sees_accepts_and_dismisses_what_the_workflow_proposed(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let (viewer_id, viewer) = app.user(&admin, "viewer@example.com").await;
        app.grant(&admin, &viewer_id, "shop", "viewer").await;
        let (editor_id, editor) = app.user(&admin, "editor@example.com").await;
        app.grant(&admin, &editor_id, "shop", "editor").await;
        let created = app.post("/api/docs", Some(&admin), json!({"title": "Core", "path": "shop", "content": "By a person.", "author_type": "human"})).await;
        let id = id_of(&created);
        let proposal = app.db.storage.propose(&id, "By the workflow.", Some("Proposed."), Some(json!({"generator": "isocrates", "run_id": "r1"}))).await.unwrap();

        let listed = app.get(&format!("/api/docs/{id}/proposals"), Some(&viewer)).await;
        assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
        assert_eq!(listed.body[0]["id"], proposal.id.as_str());
        assert_eq!(listed.body[0]["status"], "open");
        assert_eq!(listed.body[0]["author_metadata"]["run_id"], "r1");

        let accept = format!("/api/docs/{id}/proposals/{}/accept", proposal.id);
        assert_eq!(app.post(&accept, Some(&viewer), json!({})).await.status, StatusCode::FORBIDDEN);
        let accepted = app.post(&accept, Some(&editor), json!({})).await;
        assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.body);
        assert_eq!(accepted.body["document"]["content"], "By the workflow.");
        assert_eq!(accepted.body["proposal"]["status"], "accepted");
        assert_eq!(accepted.body["proposal"]["decided_by"], editor_id.as_str());
        let latest = app.get(&format!("/api/docs/{id}/versions/latest"), Some(&viewer)).await;
        assert_eq!(latest.body["author_type"], "ai");
        assert_eq!(latest.body["author_metadata"]["accepted_by"], editor_id.as_str());
        let again = app.post(&accept, Some(&editor), json!({})).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);

        let next = app.db.storage.propose(&id, "Another try.", None, None).await.unwrap();
        let dismissed = app.post(&format!("/api/docs/{id}/proposals/{}/dismiss", next.id), Some(&editor), json!({})).await;
        assert_eq!(dismissed.body["status"], "dismissed");
        assert_eq!(app.get(&format!("/api/docs/{id}"), Some(&viewer)).await.body["content"], "By the workflow.");
        let missing = app.post(&format!("/api/docs/{id}/proposals/nope/dismiss"), Some(&editor), json!({})).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{:?}", missing.body);
        assert_eq!(missing.body["error"], "NOT_FOUND", "the envelope of every error: {:?}", missing.body);
    }
}
