//! `GET /openapi.json` against the router it describes: every route the modules register
//! is in the document with its methods, every documented operation reaches a handler, and
//! every reference resolves.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use isocrates_testkit::{TestApp, TestDb};
use serde_json::Value;

/// `(METHOD, path)` of every route the route modules register with a named handler, read
/// from their source; `{*rest}` is written `{rest}`, as OpenAPI does.
fn registered_routes() -> BTreeSet<(String, String)> {
    let sources = [
        include_str!("../src/routes/ask.rs"),
        include_str!("../src/routes/docs.rs"),
        include_str!("../src/routes/folders.rs"),
        include_str!("../src/routes/jobs.rs"),
        include_str!("../src/routes/links.rs"),
        include_str!("../src/routes/personal.rs"),
        include_str!("../src/routes/repositories.rs"),
        include_str!("../src/routes/search.rs"),
        include_str!("../src/routes/service.rs"),
        include_str!("../src/routes/similar.rs"),
        include_str!("../src/routes/users.rs"),
        include_str!("../src/routes/webhooks.rs"),
    ];
    // `/` is routed by the web page, which answers a client that wants JSON with the
    // service's description.
    let mut routes = BTreeSet::from([("GET".to_string(), "/".to_string())]);
    for source in sources {
        for piece in source.split(".route(").skip(1) {
            let piece = piece.trim_start();
            let Some(rest) = piece.strip_prefix('"') else { continue };
            let (path, handlers) = rest.split_once('"').unwrap();
            // The handlers end where the call does: at the next route, or the router's end.
            let handlers = handlers.split("\n}").next().unwrap();
            let path = path.replace("{*", "{");
            for method in ["get", "post", "put", "delete"] {
                for (i, _) in handlers.match_indices(&format!("{method}(")) {
                    let before = handlers[..i].chars().last();
                    let named = !handlers[i + method.len() + 1..].starts_with('|');
                    // `post(create).get(list)`: a method call at the start or after `.`.
                    if named && matches!(before, Some(',' | '.' | ' ' | '\n')) {
                        routes.insert((method.to_uppercase(), path.clone()));
                    }
                }
            }
        }
    }
    routes
}

async fn document(app: &TestApp) -> Value {
    let answer = app.get("/openapi.json", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.body
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[tokio::test]
async fn every_route_is_documented_with_its_methods() {
    let app = TestApp::new(TestDb::sqlite().await, true).await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "IsoCrates API");
    let registered = registered_routes();
    assert!(registered.len() > 60, "the source scan found {} routes", registered.len());
    let documented = documented(&doc);
    let missing: Vec<_> = registered.difference(&documented).collect();
    assert!(missing.is_empty(), "routes missing from the document: {missing:?}");
    let extra: Vec<_> = documented.difference(&registered).collect();
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
}

#[tokio::test]
async fn every_operation_has_a_success_and_the_error_envelope_and_every_reference_resolves() {
    let app = TestApp::new(TestDb::sqlite().await, true).await;
    let doc = document(&app).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{method} {path} documents no success"
            );
            assert_eq!(
                responses["default"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path}"
            );
            assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{method} {path}");
        }
    }
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "$ref to a missing schema {name}");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

#[tokio::test]
async fn every_documented_operation_reaches_a_handler() {
    let app = TestApp::new(TestDb::sqlite().await, true).await;
    let doc = document(&app).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { "placeholder" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body =
                (method == Method::POST || method == Method::PUT).then(|| serde_json::json!({}));
            let answer = app.call(method.clone(), &concrete, None, body).await;
            assert_ne!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {concrete}");
            let no_route =
                answer.body["message"].as_str().is_some_and(|m| m.starts_with("no route"));
            assert!(!no_route, "{method} {concrete}: {}", answer.body);
        }
    }
}
