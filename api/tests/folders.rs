//! The tree and the folder endpoints: what each caller sees, folder metadata, and moving or
//! deleting a whole folder with its documents and their links kept consistent.

use axum::http::StatusCode;
use isocrates_testkit::{TestApp, on_both_backends};
use serde_json::{Value, json};

async fn doc(app: &TestApp, token: &str, title: &str, path: &str, content: &str) -> String {
    let body = json!({"title": title, "path": path, "content": content, "doc_type": "guide"});
    let answer = app.post("/api/docs", Some(token), body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    answer.body["id"].as_str().unwrap().to_string()
}

/// The node at `path` of names (folders by name, documents by title), if there is one.
fn node<'a>(tree: &'a Value, names: &[&str]) -> Option<&'a Value> {
    let mut level = tree;
    let mut found = None;
    for name in names {
        found = level.as_array()?.iter().find(|n| n["name"] == *name);
        level = &found?["children"];
    }
    found
}

fn names(level: &Value) -> Vec<String> {
    level.as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_string()).collect()
}

async fn outgoing(app: &TestApp, token: &str, id: &str) -> Vec<String> {
    let deps = app.get(&format!("/api/docs/{id}/dependencies"), Some(token)).await;
    assert_eq!(deps.status, StatusCode::OK, "{:?}", deps.body);
    deps.body["outgoing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["to_doc_id"].as_str().unwrap().to_string())
        .collect()
}

on_both_backends! {
    async fn the_tree_shows_folders_then_documents_and_only_what_a_caller_may_read(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        doc(&app, &admin, "Zeta", "team-a/guides", "z").await;
        doc(&app, &admin, "Alpha", "team-a/guides", "a").await;
        doc(&app, &admin, "Deep", "team-a/guides/advanced", "d").await;
        doc(&app, &admin, "Secret", "team-b", "s").await;
        doc(&app, &admin, "Loose", "", "l").await;
        let repo = json!({"title": "Shop Overview", "path": "shop", "content": "o", "repo_url": "https://github.com/acme/shop"});
        assert_eq!(app.post("/api/docs", Some(&admin), repo).await.status, StatusCode::CREATED);
        let made = app.post("/api/folders/metadata", Some(&admin), json!({"path": "team-a/empty", "description": "Nothing yet", "icon": "box"})).await;
        assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
        app.post("/api/folders/metadata", Some(&admin), json!({"path": "team-b/hidden"})).await;

        let tree = app.get("/api/tree", Some(&admin)).await;
        assert_eq!(tree.status, StatusCode::OK, "{:?}", tree.body);
        assert_eq!(names(&tree.body), ["Uncategorized", "shop", "team-a", "team-b"]);
        let guides = node(&tree.body, &["team-a", "guides"]).unwrap();
        assert_eq!(names(&guides["children"]), ["advanced", "Alpha", "Zeta"], "folders by name, then documents by title");
        assert_eq!(guides["id"], "folder-team-a/guides");
        assert_eq!(guides["type"], "folder");
        let alpha = node(&tree.body, &["team-a", "guides", "Alpha"]).unwrap();
        assert_eq!((alpha["type"].as_str(), alpha["doc_type"].as_str(), alpha["path"].as_str()), (Some("document"), Some("guide"), Some("team-a/guides")));
        assert!(alpha["id"].as_str().unwrap().starts_with("doc-"));
        let empty = node(&tree.body, &["team-a", "empty"]).unwrap();
        assert_eq!((empty["description"].as_str(), empty["icon"].as_str()), (Some("Nothing yet"), Some("box")));
        assert_eq!(node(&tree.body, &["Uncategorized", "Loose"]).unwrap()["path"], "");
        assert_eq!(node(&tree.body, &["shop"]).unwrap()["is_crate"], true, "a repository's folder");
        assert_eq!(node(&tree.body, &["team-a"]).unwrap()["is_crate"], false);

        // A reader of team-a sees team-a only: no node, document or metadata of team-b.
        let (reader_id, reader) = app.user(&admin, "reader@example.com").await;
        app.grant(&admin, &reader_id, "team-a", "viewer").await;
        let tree = app.get("/api/tree", Some(&reader)).await;
        assert_eq!(names(&tree.body), ["team-a"]);
        assert!(!tree.body.to_string().contains("team-b") && !tree.body.to_string().contains("Secret"));
        let folders = app.get("/api/folders/metadata", Some(&reader)).await;
        let paths: Vec<&str> = folders.body.as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
        assert_eq!(paths, ["team-a", "team-a/empty"], "created with its missing ancestor");
        let hidden = app.get("/api/folders/metadata", Some(&admin)).await;
        let hidden_id = hidden.body.as_array().unwrap().iter().find(|f| f["path"] == "team-b/hidden").unwrap()["id"].as_str().unwrap().to_string();
        assert_eq!(app.get(&format!("/api/folders/metadata/{hidden_id}"), Some(&reader)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&format!("/api/folders/metadata/{hidden_id}"), Some(&admin)).await.status, StatusCode::OK);
        assert_eq!(app.get("/api/tree", None).await.body, json!([]), "anonymous callers see nothing without PUBLIC_READ");
    }

    async fn folder_metadata_is_created_once_and_changed_by_editors(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let made = app.post("/api/folders/metadata", Some(&admin), json!({"path": "/guides//setup/", "sort_order": 2})).await;
        assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
        assert_eq!(made.body["path"], "guides/setup");
        assert!(made.body["id"].as_str().unwrap().starts_with("folder-"));
        let again = app.post("/api/folders/metadata", Some(&admin), json!({"path": "guides/setup"})).await;
        assert_eq!((again.status, again.body["error"].as_str()), (StatusCode::CONFLICT, Some("CONFLICT")));
        let icon = app.post("/api/folders/metadata", Some(&admin), json!({"path": "x", "icon": "i".repeat(51)})).await;
        assert_eq!((icon.status, icon.body["details"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("icon")));
        let id = made.body["id"].as_str().unwrap();
        let changed = app.put(&format!("/api/folders/metadata/{id}"), Some(&admin), json!({"description": "How to set up"})).await;
        assert_eq!((changed.body["description"].as_str(), changed.body["sort_order"].as_i64()), (Some("How to set up"), Some(2)));

        let (viewer_id, viewer) = app.user(&admin, "viewer@example.com").await;
        app.grant(&admin, &viewer_id, "guides", "viewer").await;
        assert_eq!(app.put(&format!("/api/folders/metadata/{id}"), Some(&viewer), json!({"icon": "x"})).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.post("/api/folders/metadata", Some(&viewer), json!({"path": "guides/mine"})).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.post("/api/folders/cleanup", Some(&viewer), json!({})).await.status, StatusCode::FORBIDDEN);

        // Cleanup removes the rows with no document and no description.
        doc(&app, &admin, "Kept", "notes", "k").await;
        app.post("/api/folders/metadata", Some(&admin), json!({"path": "notes"})).await;
        app.post("/api/folders/metadata", Some(&admin), json!({"path": "bare"})).await;
        let cleaned = app.post("/api/folders/cleanup", Some(&admin), json!({})).await;
        assert_eq!(cleaned.body["deleted_count"], 2, "bare and guides are gone: {:?}", cleaned.body);
        let left = app.get("/api/folders/metadata", Some(&admin)).await;
        let paths: Vec<&str> = left.body.as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
        assert_eq!(paths, ["notes", "guides/setup"], "by sort_order, then path");
    }

    async fn a_moved_folder_keeps_its_documents_ids_and_links(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let intro = doc(&app, &admin, "Intro", "guides", "See [[Setup]] and [[Reference]].").await;
        let setup = doc(&app, &admin, "Setup", "guides/setup", "Back to [[Intro]].").await;
        let reference = doc(&app, &admin, "Reference", "reference", "r").await;
        app.post("/api/folders/metadata", Some(&admin), json!({"path": "guides/setup", "description": "Setting up"})).await;

        for (source, target, why) in [
            ("guides", "guides", "same paths"),
            ("guides", "guides/setup/deeper", "into its own descendant"),
            ("nowhere", "elsewhere", "a missing source"),
            ("guides", "reference", "a target holding documents"),
        ] {
            let refused = app.put("/api/folders/move", Some(&admin), json!({"source_path": source, "target_path": target})).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{why}: {:?}", refused.body);
        }

        let moved = app.put("/api/folders/move", Some(&admin), json!({"source_path": "guides", "target_path": "handbook/guides"})).await;
        assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
        assert_eq!(moved.body["affected_documents"], 2);
        assert_eq!((moved.body["old_path"].as_str(), moved.body["new_path"].as_str()), (Some("guides"), Some("handbook/guides")));
        assert!(node(&moved.body["tree"], &["handbook", "guides", "setup", "Setup"]).is_some(), "{}", moved.body["tree"]);
        assert!(node(&moved.body["tree"], &["guides"]).is_none());
        let intro_doc = app.get(&format!("/api/docs/{intro}"), Some(&admin)).await;
        assert_eq!(intro_doc.body["path"], "handbook/guides", "the id stays");
        assert_eq!(app.get(&format!("/api/docs/{setup}"), Some(&admin)).await.body["path"], "handbook/guides/setup");
        let mut links = outgoing(&app, &admin, &intro).await;
        links.sort();
        let mut expected = vec![setup.clone(), reference.clone()];
        expected.sort();
        assert_eq!(links, expected, "links still resolve");
        assert_eq!(outgoing(&app, &admin, &setup).await, std::slice::from_ref(&intro));
        let folders = app.get("/api/folders/metadata", Some(&admin)).await;
        let setup_folder = folders.body.as_array().unwrap().iter().find(|f| f["path"] == "handbook/guides/setup").expect("the metadata moved");
        assert_eq!(setup_folder["description"], "Setting up");

        // An editor of handbook only may not move a folder out of it.
        let (editor_id, editor) = app.user(&admin, "editor@example.com").await;
        app.grant(&admin, &editor_id, "handbook", "editor").await;
        let out = app.put("/api/folders/move", Some(&editor), json!({"source_path": "handbook/guides", "target_path": "public"})).await;
        assert_eq!(out.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get(&format!("/api/docs/{intro}"), Some(&admin)).await.body["path"], "handbook/guides");
    }

    async fn deleting_a_folder_lifts_its_contents_or_trashes_them(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let top = doc(&app, &admin, "Top", "docs", "Links to [[Inner]] and [[Leaf]].").await;
        let inner = doc(&app, &admin, "Inner", "docs/area", "i").await;
        let leaf = doc(&app, &admin, "Leaf", "docs/area/sub", "l").await;

        let lifted = app.delete("/api/folders/docs/area?action=move_up", Some(&admin)).await;
        assert_eq!(lifted.status, StatusCode::OK, "{:?}", lifted.body);
        assert_eq!((lifted.body["affected_documents"].as_u64(), lifted.body["new_path"].as_str()), (Some(2), Some("docs")));
        assert_eq!(app.get(&format!("/api/docs/{inner}"), Some(&admin)).await.body["path"], "docs");
        assert_eq!(app.get(&format!("/api/docs/{leaf}"), Some(&admin)).await.body["path"], "docs/sub");
        assert!(node(&lifted.body["tree"], &["docs", "area"]).is_none());
        assert_eq!(outgoing(&app, &admin, &top).await.len(), 2, "links still resolve");

        // A folder may be named like the routes beside it.
        let named = doc(&app, &admin, "Named", "metadata", "n").await;
        let deleted = app.delete("/api/folders/metadata?action=delete_all", Some(&admin)).await;
        assert_eq!((deleted.status, deleted.body["affected_documents"].as_u64()), (StatusCode::OK, Some(1)), "{:?}", deleted.body);
        assert_eq!(app.get(&format!("/api/docs/{named}"), Some(&admin)).await.status, StatusCode::NOT_FOUND);

        let bad = app.delete("/api/folders/docs?action=shred", Some(&admin)).await;
        assert_eq!((bad.status, bad.body["details"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("action")));
        assert_eq!(app.delete("/api/folders/nowhere", Some(&admin)).await.status, StatusCode::NOT_FOUND);

        let (viewer_id, viewer) = app.user(&admin, "viewer@example.com").await;
        app.grant(&admin, &viewer_id, "docs", "viewer").await;
        assert_eq!(app.delete("/api/folders/docs/sub?action=delete_all", Some(&viewer)).await.status, StatusCode::FORBIDDEN);

        let trashed = app.delete("/api/folders/docs/sub?action=delete_all", Some(&admin)).await;
        assert_eq!(trashed.status, StatusCode::OK, "{:?}", trashed.body);
        assert_eq!((trashed.body["affected_documents"].as_u64(), &trashed.body["new_path"]), (Some(1), &Value::Null));
        assert_eq!(app.get(&format!("/api/docs/{leaf}"), Some(&admin)).await.status, StatusCode::NOT_FOUND);
        let trash = app.get("/api/docs/trash", Some(&admin)).await;
        assert!(trash.body.as_array().unwrap().iter().any(|d| d["id"] == leaf.as_str()), "in the trash, restorable");
        assert_eq!(outgoing(&app, &admin, &top).await, std::slice::from_ref(&inner), "no edge to a trashed page");
        let broken = app.get(&format!("/api/docs/{top}/broken-links"), Some(&admin)).await;
        let leaf_link = broken.body.as_array().unwrap().iter().find(|l| l["target"] == "Leaf").unwrap();
        assert_eq!(leaf_link["resolved"], false);
        let restored = app.post(&format!("/api/docs/{leaf}/restore"), Some(&admin), json!({})).await;
        assert_eq!(restored.status, StatusCode::OK);
        assert_eq!(outgoing(&app, &admin, &top).await.len(), 2, "restoring repairs the link");
    }
}
