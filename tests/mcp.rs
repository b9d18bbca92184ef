//! `isocrates mcp` driven over stdio by a real MCP client (rmcp's), against a live server
//! on a loopback port with auth on: initialise, list the tools, call each one, and check
//! that a token with a narrow grant gets nothing outside it through any tool.

use std::time::Duration;

use isocrates_testkit::{TestApp, TestDb};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

/// An MCP session with `isocrates mcp` over stdio, calling the API at `base` with `token`.
async fn session(base: &str, token: &str, dir: &std::path::Path) -> RunningService<RoleClient, ()> {
    let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_isocrates")).configure(|c| {
        c.arg("mcp")
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ISOCRATES_API_URL", base)
            .env("ISOCRATES_API_TOKEN", token);
    });
    let (transport, _stderr) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("isocrates mcp starts");
    ().serve(transport).await.expect("the MCP session initialises")
}

/// Calls `tool` with `arguments`; answers its text and whether it is a tool error.
async fn call(
    client: &RunningService<RoleClient, ()>,
    tool: &str,
    arguments: Value,
) -> (String, bool) {
    let arguments = arguments.as_object().cloned().unwrap_or_default();
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
    let result = tokio::time::timeout(Duration::from_secs(30), client.call_tool(params))
        .await
        .expect("the tool answers in time")
        .unwrap_or_else(|e| panic!("{tool} failed at the protocol level: {e}"));
    let text: String =
        result.content.iter().filter_map(|c| c.as_text()).map(|t| t.text.clone()).collect();
    (text, result.is_error == Some(true))
}

async fn post_doc(app: &TestApp, token: &str, body: Value) -> String {
    let made = app.post("/api/docs", Some(token), body).await;
    assert!(made.status.is_success(), "{:?}", made.body);
    made.body["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_answers_through_a_real_mcp_client() {
    let app = TestApp::new(TestDb::sqlite().await, true).await;
    let admin = app.admin_token().await;
    let guide = post_doc(&app, &admin, json!({"title": "Deploy Guide", "path": "team/ops", "content": "# Deploy Guide\n\nRun the release pipeline. See [[Runbook]].\n", "description": "How we ship", "keywords": ["deploy"], "author_type": "ai",
        "author_metadata": {"repo_commit_sha": "abc123def", "writer_model": "test-writer", "source_files": ["ci/release.yml"], "source_hashes": {"ci/release.yml": "0011223344556677"}}})).await;
    let runbook = post_doc(&app, &admin, json!({"title": "Runbook", "path": "team/ops", "content": "# Runbook\n\nRestart the pods.\n", "author_type": "human"})).await;
    let base = app.serve().await;
    let dir = tempfile::tempdir().unwrap();
    // The project an AI tool works in may hold a server's .env: the MCP server ignores it
    // (this one would stop a server from starting, and point the token elsewhere).
    std::fs::write(
        dir.path().join(".env"),
        "ENVIRONMENT=production\nJWT_SECRET_KEY=short\nISOCRATES_API_TOKEN=not-the-token\n",
    )
    .unwrap();
    let client = session(&base, &admin, dir.path()).await;

    let info = client.peer_info().expect("the server introduced itself");
    assert_eq!(info.server_info.as_ref().map(|s| s.name.as_str()), Some("isocrates"));
    let tools = client.list_all_tools().await.expect("the tools are listed");
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ask_docs",
            "create_document",
            "document_sources",
            "get_document",
            "list_documents",
            "related_documents",
            "search_docs",
            "similar_documents",
            "update_document"
        ]
    );
    for tool in &tools {
        assert!(
            tool.description.as_ref().is_some_and(|d| d.len() > 40),
            "{} needs a clear description",
            tool.name
        );
        assert_eq!(tool.input_schema["type"], "object", "{} has a JSON schema", tool.name);
    }
    let search = tools.iter().find(|t| t.name == "search_docs").unwrap();
    assert_eq!(search.input_schema["required"], json!(["query"]));

    let (found, _) = call(&client, "search_docs", json!({"query": "release pipeline"})).await;
    assert!(found.contains("Deploy Guide") && found.contains(&guide), "{found}");
    let (read, _) = call(&client, "get_document", json!({"document": "Deploy Guide"})).await;
    assert!(read.contains("Run the release pipeline") && read.contains("How we ship"), "{read}");
    let (by_id, _) = call(&client, "get_document", json!({"document": runbook})).await;
    assert!(by_id.contains("Restart the pods"), "{by_id}");
    let (listed, _) = call(&client, "list_documents", json!({"path_prefix": "team"})).await;
    assert!(listed.contains("Deploy Guide") && listed.contains("Runbook"), "{listed}");
    let (related, _) =
        call(&client, "related_documents", json!({"document": "Deploy Guide"})).await;
    let (links_to, linked_from) = related.split_once("Linked from:").unwrap();
    assert!(links_to.contains("Runbook") && linked_from.contains("(none)"), "{related}");
    let (sources, _) = call(&client, "document_sources", json!({"document": guide})).await;
    for fact in ["abc123def", "test-writer", "ci/release.yml", "0011223344556677", "by ai"] {
        assert!(sources.contains(fact), "{fact} missing from {sources}");
    }
    let (similar, is_error) = call(&client, "similar_documents", json!({"text": "shipping"})).await;
    assert!(!is_error && similar.contains("EMBEDDING_PROVIDER"), "{similar}");
    let (similar, is_error) =
        call(&client, "similar_documents", json!({"document": "Deploy Guide"})).await;
    assert!(!is_error && similar.contains("No similar documents"), "{similar}");
    let (answer, is_error) =
        call(&client, "ask_docs", json!({"question": "How do we deploy?"})).await;
    assert!(!is_error && !answer.is_empty(), "{answer}");

    let (created, is_error) = call(&client, "create_document", json!({"title": "Postmortem", "path": "team/ops", "content": "# Postmortem\n\nIt broke.\n", "keywords": ["incident"]})).await;
    assert!(!is_error && created.contains("Saved \"Postmortem\""), "{created}");
    let (updated, is_error) = call(&client, "update_document", json!({"document": "Postmortem", "content": "# Postmortem\n\nIt broke, then we fixed it.\n", "version": 1})).await;
    assert!(!is_error && updated.contains("version 2"), "{updated}");
    // Written from a version someone has saved over since: nothing changes.
    let (stale, is_error) = call(
        &client,
        "update_document",
        json!({"document": "Postmortem", "content": "Old words.", "version": 1}),
    )
    .await;
    assert!(is_error && stale.contains("changed since you read it"), "{stale}");
    // A person's edit since the last generation keeps the page's origin in its sources.
    let (edited, _) = call(
        &client,
        "update_document",
        json!({"document": guide, "content": "# Deploy Guide\n\nEdited by hand.\n"}),
    )
    .await;
    assert!(edited.contains("version 2"), "{edited}");
    let (sources, _) = call(&client, "document_sources", json!({"document": "Deploy Guide"})).await;
    assert!(
        sources.contains("by human")
            && sources.contains("last generated")
            && sources.contains("ci/release.yml"),
        "{sources}"
    );
    let listed = app.get("/api/docs?path_prefix=team/ops", Some(&admin)).await.body;
    let postmortem =
        listed.as_array().unwrap().iter().find(|d| d["title"] == "Postmortem").unwrap().clone();
    let versions = app
        .get(&format!("/api/docs/{}/versions", postmortem["id"].as_str().unwrap()), Some(&admin))
        .await
        .body;
    assert_eq!(versions[0]["author_type"], "human", "a tool's write is a person's edit");
    assert_eq!(versions[0]["author_metadata"]["source"], "mcp");

    // Failures are tool errors with a sentence, and the session goes on.
    let (missing, is_error) =
        call(&client, "get_document", json!({"document": "No Such Page"})).await;
    assert!(is_error && missing.contains("No document you may read"), "{missing}");
    let (neither, is_error) = call(&client, "similar_documents", json!({})).await;
    assert!(is_error && neither.contains("Give either"), "{neither}");
    let (bad, is_error) = call(&client, "search_docs", json!({"query": 12})).await;
    assert!(is_error, "{bad}");
    let (still, _) = call(&client, "get_document", json!({"document": "Runbook"})).await;
    assert!(still.contains("Restart the pods"));
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrow_token_gets_nothing_outside_its_grant_through_any_tool() {
    let app = TestApp::new(TestDb::sqlite().await, true).await;
    let admin = app.admin_token().await;
    post_doc(&app, &admin, json!({"title": "Public Guide", "path": "team/docs", "content": "Open words. See [[Salaries]].", "author_type": "human"})).await;
    let secret = post_doc(&app, &admin, json!({"title": "Salaries", "path": "hr/pay", "content": "Secret words: the quokka ledger. See [[Public Guide]].", "description": "Who earns what", "author_type": "human"})).await;
    let (user_id, reader) = app.user(&admin, "reader@example.com").await;
    app.grant(&admin, &user_id, "team", "viewer").await;
    let base = app.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let client = session(&base, &reader, dir.path()).await;

    // What only the hidden document holds (its title is no secret: the readable page links
    // to it); a word the call itself sent may come back in the answer's sentence ("No
    // document ... has the title or id ...") and is not a leak.
    let leaks = |text: &str, sent: &str| {
        ["quokka", "ledger", "Who earns what", "hr/pay", secret.as_str()]
            .into_iter()
            .filter(|w| !sent.contains(w))
            .find(|w| text.contains(w))
            .map(str::to_string)
    };
    let calls = [
        ("search_docs", json!({"query": "words"})),
        ("search_docs", json!({"query": "quokka"})),
        ("list_documents", json!({})),
        ("list_documents", json!({"path_prefix": "hr"})),
        ("get_document", json!({"document": "Salaries"})),
        ("get_document", json!({"document": secret})),
        ("related_documents", json!({"document": "Public Guide"})),
        ("related_documents", json!({"document": "Salaries"})),
        ("document_sources", json!({"document": secret})),
        ("similar_documents", json!({"document": "Salaries"})),
        ("similar_documents", json!({"text": "ledger"})),
        ("ask_docs", json!({"question": "What does the quokka ledger say?"})),
        ("update_document", json!({"document": "Salaries", "content": "changed"})),
        ("update_document", json!({"document": "Public Guide", "content": "changed"})),
        (
            "create_document",
            json!({"title": "Salaries", "path": "hr/pay", "content": "overwritten"}),
        ),
    ];
    for (tool, arguments) in calls {
        let (answer, _) = call(&client, tool, arguments.clone()).await;
        assert_eq!(
            leaks(&answer, &arguments.to_string()),
            None,
            "{tool} {arguments} leaked: {answer}"
        );
    }
    let (open, is_error) = call(&client, "get_document", json!({"document": "Public Guide"})).await;
    assert!(!is_error && open.contains("Open words"), "the grant still reads: {open}");
    let (refused, is_error) =
        call(&client, "update_document", json!({"document": "Public Guide", "content": "changed"}))
            .await;
    assert!(is_error && refused.contains("API error: 403"), "a viewer cannot write: {refused}");
    let kept = app.get(&format!("/api/docs/{secret}"), Some(&admin)).await;
    assert_eq!(kept.body["content"], "Secret words: the quokka ledger. See [[Public Guide]].");
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_http_it_answers_streamable_http_at_mcp_on_its_own_port() {
    let app = TestApp::new(TestDb::sqlite().await, true).await;
    let admin = app.admin_token().await;
    let base = app.serve().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_isocrates"))
        .args(["mcp", "--http", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ISOCRATES_API_URL", &base)
        .env("ISOCRATES_API_TOKEN", &admin)
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}});
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let answer = loop {
        let sent = http
            .post(format!("http://127.0.0.1:{port}/mcp"))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(initialize.to_string())
            .send()
            .await;
        match sent {
            Ok(answer) => break answer,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the MCP server never listened: {e}"),
        }
    };
    assert_eq!(answer.status(), 200);
    assert!(answer.headers().contains_key("mcp-session-id"), "a session is started");
    let body = answer.text().await.unwrap();
    assert!(body.contains("\"serverInfo\"") && body.contains("\"isocrates\""), "{body}");
    // A name it was not told about is refused, against DNS rebinding.
    let foreign = http
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .header("Host", "evil.example")
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(initialize.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    server.kill().await.ok();

    // It acts with its token for whoever reaches it: it will not listen beyond this machine.
    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_isocrates"))
        .args(["mcp", "--http", "0.0.0.0:0"])
        .current_dir(dir.path())
        .env_clear()
        .env("ISOCRATES_API_URL", &base)
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("loopback address only"), "{said}");
}
