//! Personal trees: each user's own folders and references, never seen or changed by
//! another user, and references only to documents the user may read.

use axum::http::StatusCode;
use isocrates_testkit::{TestApp, on_both_backends};
use serde_json::{Value, json};

async fn folder(app: &TestApp, token: &str, name: &str, parent: Option<&str>) -> String {
    let answer = app
        .post("/api/personal/folders", Some(token), json!({"name": name, "parent_id": parent}))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    answer.body["folder_id"].as_str().unwrap().to_string()
}

async fn doc(app: &TestApp, token: &str, title: &str, path: &str) -> String {
    let answer = app
        .post("/api/docs", Some(token), json!({"title": title, "path": path, "content": "text"}))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    answer.body["id"].as_str().unwrap().to_string()
}

fn names(level: &Value) -> Vec<String> {
    level.as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_string()).collect()
}

on_both_backends! {
    async fn a_personal_tree_holds_folders_and_references_in_order(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let intro = doc(&app, &admin, "Intro", "guides").await;
        let api = doc(&app, &admin, "API", "reference").await;
        let reading = folder(&app, &admin, "Reading", None).await;
        let later = folder(&app, &admin, "Later", Some(&reading)).await;
        let same = app.post("/api/personal/folders", Some(&admin), json!({"name": "Later", "parent_id": reading})).await;
        assert_eq!(same.status, StatusCode::CONFLICT, "{:?}", same.body);
        let slash = app.post("/api/personal/folders", Some(&admin), json!({"name": "a/b"})).await;
        assert_eq!((slash.status, slash.body["details"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("name")));

        let added = app.post(&format!("/api/personal/folders/{reading}/refs"), Some(&admin), json!({"document_id": intro})).await;
        assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.body);
        let again = app.post(&format!("/api/personal/folders/{reading}/refs"), Some(&admin), json!({"document_id": intro})).await;
        assert_eq!((again.status, &again.body["ref_id"]), (StatusCode::CREATED, &added.body["ref_id"]), "idempotent");
        let api_ref = app.post(&format!("/api/personal/folders/{later}/refs"), Some(&admin), json!({"document_id": api})).await;
        assert_eq!(api_ref.status, StatusCode::CREATED);

        let tree = app.get("/api/personal/tree", Some(&admin)).await;
        assert_eq!(tree.status, StatusCode::OK, "{:?}", tree.body);
        assert_eq!(names(&tree.body), ["Reading"]);
        let reading_node = &tree.body[0];
        assert_eq!((reading_node["type"].as_str(), reading_node["folder_id"].as_str()), (Some("folder"), Some(reading.as_str())));
        assert_eq!(names(&reading_node["children"]), ["Later", "Intro"], "subfolders, then references");
        let intro_node = &reading_node["children"][1];
        assert_eq!((intro_node["type"].as_str(), intro_node["document_id"].as_str()), (Some("document"), Some(intro.as_str())));
        assert_eq!(intro_node["ref_id"], added.body["ref_id"]);

        // Moves: a reference to another folder, a folder to the top; never into itself.
        let ref_id = added.body["ref_id"].as_str().unwrap();
        let moved = app.put(&format!("/api/personal/refs/{ref_id}/move?target_folder_id={later}"), Some(&admin), json!({})).await;
        assert_eq!((moved.status, moved.body["folder_id"].as_str()), (StatusCode::OK, Some(later.as_str())), "{:?}", moved.body);
        let cycle = app.put(&format!("/api/personal/folders/{reading}/move"), Some(&admin), json!({"parent_id": later})).await;
        assert_eq!(cycle.status, StatusCode::BAD_REQUEST, "{:?}", cycle.body);
        let itself = app.put(&format!("/api/personal/folders/{reading}/move"), Some(&admin), json!({"parent_id": reading})).await;
        assert_eq!(itself.status, StatusCode::BAD_REQUEST);
        let top = app.put(&format!("/api/personal/folders/{later}/move"), Some(&admin), json!({"parent_id": null})).await;
        assert_eq!((top.status, &top.body["parent_id"]), (StatusCode::OK, &Value::Null));
        let tree = app.get("/api/personal/tree", Some(&admin)).await;
        assert_eq!(names(&tree.body), ["Later", "Reading"]);
        assert_eq!(names(&tree.body[0]["children"]), ["API", "Intro"]);

        // A trashed document leaves the tree; deleting a folder takes its references along.
        assert_eq!(app.delete(&format!("/api/docs/{api}"), Some(&admin)).await.status, StatusCode::NO_CONTENT);
        let tree = app.get("/api/personal/tree", Some(&admin)).await;
        assert_eq!(names(&tree.body[0]["children"]), ["Intro"]);
        assert_eq!(app.delete(&format!("/api/personal/folders/{later}"), Some(&admin)).await.status, StatusCode::NO_CONTENT);
        assert_eq!(names(&app.get("/api/personal/tree", Some(&admin)).await.body), ["Reading"]);
        assert_eq!(app.delete(&format!("/api/personal/refs/{ref_id}"), Some(&admin)).await.status, StatusCode::NOT_FOUND, "gone with its folder");
        assert_eq!(app.get("/api/personal/tree", None).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn one_user_never_sees_or_changes_another_users_tree(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let open = doc(&app, &admin, "Open", "team-a").await;
        let secret = doc(&app, &admin, "Secret", "team-b").await;
        let (alice_id, alice) = app.user(&admin, "alice@example.com").await;
        let (bob_id, bob) = app.user(&admin, "bob@example.com").await;
        app.grant(&admin, &alice_id, "team-a", "viewer").await;
        app.grant(&admin, &bob_id, "team-a", "viewer").await;

        let mine = folder(&app, &alice, "Mine", None).await;
        let added = app.post(&format!("/api/personal/folders/{mine}/refs"), Some(&alice), json!({"document_id": open})).await;
        assert_eq!(added.status, StatusCode::CREATED);
        let ref_id = added.body["ref_id"].as_str().unwrap().to_string();
        // Bob may make a folder of the same name: names are unique per user.
        let bobs = folder(&app, &bob, "Mine", None).await;

        assert_eq!(app.get("/api/personal/tree", Some(&bob)).await.body.as_array().unwrap().len(), 1, "Bob sees his own folder only");
        assert!(!app.get("/api/personal/tree", Some(&bob)).await.body.to_string().contains(&mine));
        for (answer, what) in [
            (app.delete(&format!("/api/personal/folders/{mine}"), Some(&bob)).await, "delete her folder"),
            (app.put(&format!("/api/personal/folders/{mine}/move"), Some(&bob), json!({"parent_id": bobs})).await, "move her folder"),
            (app.put(&format!("/api/personal/folders/{bobs}/move"), Some(&bob), json!({"parent_id": mine})).await, "move into her folder"),
            (app.post(&format!("/api/personal/folders/{mine}/refs"), Some(&bob), json!({"document_id": open})).await, "add to her folder"),
            (app.post("/api/personal/folders", Some(&bob), json!({"name": "Inside", "parent_id": mine})).await, "make a folder in hers"),
            (app.delete(&format!("/api/personal/refs/{ref_id}"), Some(&bob)).await, "delete her reference"),
            (app.put(&format!("/api/personal/refs/{ref_id}/move?target_folder_id={bobs}"), Some(&bob), json!({})).await, "take her reference"),
        ] {
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "Bob may not {what}: {:?}", answer.body);
        }
        let tree = app.get("/api/personal/tree", Some(&alice)).await;
        assert_eq!(names(&tree.body), ["Mine"]);
        assert_eq!(names(&tree.body[0]["children"]), ["Open"], "Alice's tree is as she left it");

        // A reference needs read access to its document, and loses it with the grant.
        let refused = app.post(&format!("/api/personal/folders/{mine}/refs"), Some(&alice), json!({"document_id": secret})).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{:?}", refused.body);
        let admins = folder(&app, &admin, "Everything", None).await;
        app.post(&format!("/api/personal/folders/{admins}/refs"), Some(&admin), json!({"document_id": secret})).await;
        assert_eq!(app.delete(&format!("/api/auth/users/{alice_id}/grants/team-a"), Some(&admin)).await.status, StatusCode::NO_CONTENT);
        let tree = app.get("/api/personal/tree", Some(&alice)).await;
        assert_eq!(names(&tree.body[0]["children"]), Vec::<String>::new(), "no longer readable, no longer shown");
    }

    async fn with_auth_off_the_development_admin_has_a_tree_too(db) {
        let app = TestApp::new(db, false).await;
        let made = app.post("/api/personal/folders", None, json!({"name": "Mine"})).await;
        assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
        let again = app.post("/api/personal/folders", None, json!({"name": "Mine"})).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "the same owner each time");
        assert_eq!(names(&app.get("/api/personal/tree", None).await.body), ["Mine"]);
    }
}
