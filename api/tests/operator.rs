//! An operator's first set-up, step by step, as the deployment guide shows it: the first
//! user becomes the admin, the admin registers and grants others, and grants decide what
//! each may read and write.

use axum::http::StatusCode;
use isocrates_testkit::{TestApp, on_both_backends};
use serde_json::json;

/// Sends the registrations concurrently.
async fn futures_join(
    app: &TestApp,
    bodies: [serde_json::Value; 4],
) -> Vec<isocrates_testkit::Answer> {
    let [a, b, c, d] = bodies;
    let (a, b, c, d) = tokio::join!(
        app.post("/api/auth/register", None, a),
        app.post("/api/auth/register", None, b),
        app.post("/api/auth/register", None, c),
        app.post("/api/auth/register", None, d),
    );
    vec![a, b, c, d]
}

fn page(title: &str, path: &str) -> serde_json::Value {
    json!({"title": title, "path": path, "content": format!("# {title}")})
}

on_both_backends! {
    async fn operator_setup_walkthrough(db) {
        let app = TestApp::new(db, true).await;

        // 1. The first registration makes the admin, with a root admin grant.
        let first = app
            .post("/api/auth/register", None, json!({"email": "Ops@Example.com", "password": "s3cret-pass", "display_name": "Ops"}))
            .await;
        assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
        assert_eq!(first.body["role"], "admin");
        assert_eq!(first.body["email"], "ops@example.com");
        assert_eq!(first.body["grants"], json!([{"path_prefix": "", "role": "admin"}]));

        // 2. Log in.
        let admin = app.login("ops@example.com", "s3cret-pass").await;
        let me = app.get("/api/auth/me", Some(&admin)).await;
        assert_eq!(me.body["user"]["role"], "admin");

        // 3. A second registration needs the admin's token.
        let body = json!({"email": "dev@example.com", "password": "dev-password", "display_name": "Dev"});
        let anonymous = app.post("/api/auth/register", None, body.clone()).await;
        assert_eq!(anonymous.status, StatusCode::FORBIDDEN);
        assert_eq!(anonymous.body["error"], "FORBIDDEN");
        let dev = app.post("/api/auth/register", Some(&admin), body).await;
        assert_eq!(dev.status, StatusCode::CREATED);
        assert_eq!(dev.body["role"], "viewer");
        assert_eq!(dev.body["grants"], json!([]));
        let dev_id = dev.body["user_id"].as_str().unwrap().to_string();
        let dev_token = app.login("dev@example.com", "dev-password").await;

        // 4. Grant backend-product-a as editor.
        let grant = app
            .post(&format!("/api/auth/users/{dev_id}/grants"), Some(&admin), json!({"path_prefix": "/backend-product-a/", "role": "editor"}))
            .await;
        assert_eq!(grant.status, StatusCode::CREATED);
        assert_eq!(grant.body, json!({"path_prefix": "backend-product-a", "role": "editor"}));

        // 5. The editor creates and edits under that path...
        let created = app.post("/api/docs", Some(&dev_token), page("API", "backend-product-a/guides")).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let id = created.body["id"].as_str().unwrap().to_string();
        let edited = app
            .put(&format!("/api/docs/{id}"), Some(&dev_token), json!({"content": "edited", "author_type": "human"}))
            .await;
        assert_eq!(edited.status, StatusCode::OK);
        assert_eq!(edited.body["content"], "edited");

        // ...and nowhere else: not a sibling path, not a prefix look-alike.
        for path in ["backend-product-b", "backend-product-ab", ""] {
            let denied = app.post("/api/docs", Some(&dev_token), page("X", path)).await;
            assert_eq!(denied.status, StatusCode::FORBIDDEN, "{path}");
        }
        let elsewhere = app.post("/api/docs", Some(&admin), page("Other", "frontend")).await;
        let other_id = elsewhere.body["id"].as_str().unwrap().to_string();
        let read_elsewhere = app.get(&format!("/api/docs/{other_id}"), Some(&dev_token)).await;
        assert_eq!(read_elsewhere.status, StatusCode::NOT_FOUND);
        let edit_elsewhere = app.put(&format!("/api/docs/{other_id}"), Some(&dev_token), json!({"content": "x"})).await;
        assert_eq!(edit_elsewhere.status, StatusCode::NOT_FOUND);

        // 6. A viewer grant reads and never writes.
        let (viewer_id, viewer) = app.user(&admin, "viewer@example.com").await;
        app.grant(&admin, &viewer_id, "backend-product-a", "viewer").await;
        let read = app.get(&format!("/api/docs/{id}"), Some(&viewer)).await;
        assert_eq!(read.status, StatusCode::OK);
        let listed = app.get("/api/docs", Some(&viewer)).await;
        assert_eq!(listed.body.as_array().unwrap().len(), 1);
        for answer in [
            app.post("/api/docs", Some(&viewer), page("V", "backend-product-a")).await,
            app.put(&format!("/api/docs/{id}"), Some(&viewer), json!({"content": "v"})).await,
            app.put(&format!("/api/docs/{id}/move"), Some(&viewer), json!({"target_path": "backend-product-a/x"})).await,
            app.delete(&format!("/api/docs/{id}"), Some(&viewer)).await,
        ] {
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{:?}", answer.body);
        }

        // 7. Overlapping grants: the longest prefix wins, so broad read and narrow write
        // combine for one user.
        let (mixed_id, mixed) = app.user(&admin, "mixed@example.com").await;
        app.grant(&admin, &mixed_id, "", "viewer").await;
        app.grant(&admin, &mixed_id, "backend-product-a/guides", "editor").await;
        assert_eq!(app.get(&format!("/api/docs/{other_id}"), Some(&mixed)).await.status, StatusCode::OK);
        assert_eq!(app.put(&format!("/api/docs/{other_id}"), Some(&mixed), json!({"content": "no"})).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.put(&format!("/api/docs/{id}"), Some(&mixed), json!({"content": "yes"})).await.status, StatusCode::OK);
        // And the other way round: broad write, narrow read-only.
        app.grant(&admin, &mixed_id, "", "editor").await;
        app.grant(&admin, &mixed_id, "frontend", "viewer").await;
        assert_eq!(app.put(&format!("/api/docs/{other_id}"), Some(&mixed), json!({"content": "no"})).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.post("/api/docs", Some(&mixed), page("Anywhere", "ops")).await.status, StatusCode::CREATED);

        // The admin sees everyone, in creation order.
        let users = app.get("/api/auth/users", Some(&admin)).await;
        let emails: Vec<_> = users.body.as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap().to_string()).collect();
        assert_eq!(emails, ["ops@example.com", "dev@example.com", "viewer@example.com", "mixed@example.com"]);
        assert_eq!(app.get("/api/auth/users", Some(&dev_token)).await.status, StatusCode::FORBIDDEN);
    }

    async fn roles_grants_and_deactivation_take_effect_at_once(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let (id, token) = app.user(&admin, "u@example.com").await;
        app.grant(&admin, &id, "team", "editor").await;
        assert_eq!(app.post("/api/docs", Some(&token), page("T", "team")).await.status, StatusCode::CREATED);

        // Revoking the grant stops writes on the next request, with the same token.
        let revoke = app.delete(&format!("/api/auth/users/{id}/grants/team"), Some(&admin)).await;
        assert_eq!(revoke.status, StatusCode::NO_CONTENT);
        assert_eq!(app.delete(&format!("/api/auth/users/{id}/grants/team"), Some(&admin)).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.post("/api/docs", Some(&token), page("T2", "team")).await.status, StatusCode::FORBIDDEN);

        // The root grant is revoked by an empty remainder.
        app.grant(&admin, &id, "", "viewer").await;
        assert_eq!(app.delete(&format!("/api/auth/users/{id}/grants/"), Some(&admin)).await.status, StatusCode::NO_CONTENT);
        let me = app.get("/api/auth/me", Some(&token)).await;
        assert_eq!(me.body["user"]["grants"], json!([]));

        // Role changes are checked.
        let promoted = app.put(&format!("/api/auth/users/{id}/role"), Some(&admin), json!({"role": "admin"})).await;
        assert_eq!(promoted.body["role"], "admin");
        assert_eq!(app.get("/api/auth/users", Some(&token)).await.status, StatusCode::OK);
        let bad = app.put(&format!("/api/auth/users/{id}/role"), Some(&admin), json!({"role": "owner"})).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad.body["error"], "VALIDATION_ERROR");
        assert_eq!(bad.body["details"]["field"], "role");
        let unknown = app.put("/api/auth/users/nobody/role", Some(&admin), json!({"role": "viewer"})).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        let unknown_grant = app.post("/api/auth/users/nobody/grants", Some(&admin), json!({})).await;
        assert_eq!(unknown_grant.status, StatusCode::NOT_FOUND);

        // A deactivated user's token stops working at once, and it cannot log in again.
        let off = app.put(&format!("/api/auth/users/{id}/deactivate"), Some(&admin), json!({})).await;
        assert_eq!(off.body["is_active"], false);
        assert_eq!(app.get("/api/auth/me", Some(&token)).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.get("/api/docs", Some(&token)).await.status, StatusCode::UNAUTHORIZED);
        let login = app.post("/api/auth/login", None, json!({"email": "u@example.com", "password": "user-password"})).await;
        assert_eq!(login.status, StatusCode::UNAUTHORIZED);
    }

    async fn two_first_registrations_at_once_make_one_admin(db) {
        let app = TestApp::new(db, true).await;
        let body = |i: usize| json!({"email": format!("first{i}@example.com"), "password": "first-password", "display_name": "First"});
        let answers = futures_join(&app, [body(0), body(1), body(2), body(3)]).await;
        let created: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::CREATED).collect();
        assert_eq!(created.len(), 1, "{answers:?}");
        assert_eq!(created[0].body["role"], "admin");
        assert!(answers.iter().all(|a| a.status == StatusCode::CREATED || a.status == StatusCode::FORBIDDEN));
    }

    async fn login_failures_say_the_same_thing(db) {
        let app = TestApp::new(db, true).await;
        app.admin_token().await;
        let wrong_password = app.post("/api/auth/login", None, json!({"email": "admin@example.com", "password": "nope-nope"})).await;
        let wrong_email = app.post("/api/auth/login", None, json!({"email": "who@example.com", "password": "admin-password"})).await;
        for answer in [&wrong_password, &wrong_email] {
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
            assert_eq!(answer.body["message"], "Invalid email or password");
            assert_eq!(answer.body["detail"], "Invalid email or password");
        }
        let short = app.post("/api/auth/register", None, json!({"email": "x@example.com", "password": "short", "display_name": "X"})).await;
        assert_eq!(short.status, StatusCode::FORBIDDEN, "registration is closed before the password is judged: {:?}", short.body);
    }

    async fn service_tokens_write_and_delete_only_ai_pages(db) {
        let app = TestApp::new(db, true).await;
        let admin = app.admin_token().await;
        let minted = app.post("/api/auth/tokens", Some(&admin), json!({"subject": "doc-agent", "role": "service", "expires_hours": 2})).await;
        assert_eq!(minted.status, StatusCode::CREATED, "{:?}", minted.body);
        let service = minted.body["token"].as_str().unwrap().to_string();
        assert!(minted.body["user_id"].is_string());

        let ai = app.post("/api/docs", Some(&service), json!({"title": "Gen", "content": "x", "author_type": "ai"})).await;
        assert_eq!(ai.status, StatusCode::CREATED);
        let human = app.post("/api/docs", Some(&admin), json!({"title": "Hand", "content": "x", "author_type": "human"})).await;
        let ai_id = ai.body["id"].as_str().unwrap();
        let human_id = human.body["id"].as_str().unwrap();
        assert_eq!(app.delete(&format!("/api/docs/{human_id}"), Some(&service)).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.delete(&format!("/api/docs/{ai_id}"), Some(&service)).await.status, StatusCode::NO_CONTENT);

        let non_admin = app.user(&admin, "n@example.com").await.1;
        assert_eq!(app.post("/api/auth/tokens", Some(&non_admin), json!({"subject": "x"})).await.status, StatusCode::FORBIDDEN);
        let bad_role = app.post("/api/auth/tokens", Some(&admin), json!({"subject": "x", "role": "admin"})).await;
        assert_eq!(bad_role.status, StatusCode::BAD_REQUEST);
        let bad_hours = app.post("/api/auth/tokens", Some(&admin), json!({"subject": "x", "expires_hours": 0})).await;
        assert_eq!(bad_hours.body["details"]["field"], "expires_hours");
    }
}
