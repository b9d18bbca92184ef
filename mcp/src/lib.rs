//! `isocrates mcp`: a Model Context Protocol server that lets AI coding tools read and
//! write the documentation. It is a client of a running IsoCrates API ([`api`]), called
//! with a bearer token, so every answer is what that token may see. Served over stdio
//! ([`serve_stdio`]) or streamable HTTP ([`http_router`]), built with `rmcp`.
//!
//! Every tool answers text for a model to read. A failure (an unknown document, a refused
//! write, the API out of reach) is a tool error with a sentence, never a protocol error.

pub mod api;

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

pub use api::{ApiClient, ApiError};

/// What a tool answers: text, or a tool error with a sentence.
type Answer = Result<CallToolResult, ErrorData>;

fn text(body: String) -> Answer {
    Ok(CallToolResult::success(vec![ContentBlock::text(body)]))
}

fn failed(message: impl Into<String>) -> Answer {
    Ok(CallToolResult::error(vec![ContentBlock::text(message.into())]))
}

/// Arguments naming one document.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DocumentArgs {
    /// The document's title (as a wikilink names it) or its id (`doc-...`).
    pub document: String,
}

/// Arguments of `search_docs`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchArgs {
    /// Words to find; every word must appear (as a word or the start of one).
    pub query: String,
    /// How many hits, 1 to 50 (10 by default).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only documents under this path, such as `backend/api`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Only documents with any of these keywords.
    #[serde(default)]
    pub keywords: Option<Vec<String>>,
}

/// Arguments of `list_documents`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListArgs {
    /// Only documents under this path, such as `backend`; everything by default.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// How many, 1 to 200 (50 by default).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Arguments of `similar_documents`: a document, or a text.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SimilarArgs {
    /// The document (title or id) to find neighbours of.
    #[serde(default)]
    pub document: Option<String>,
    /// Or a text to find documents close to.
    #[serde(default)]
    pub text: Option<String>,
    /// How many, 1 to 20 (5 by default).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Arguments of `ask_docs`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AskArgs {
    /// The question, up to 500 characters.
    pub question: String,
    /// How many documents the answer may draw on, 1 to 10 (5 by default).
    #[serde(default)]
    pub top_k: Option<u32>,
}

/// Arguments of `create_document`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateArgs {
    /// The title, unique within its path; no `/`.
    pub title: String,
    /// The folder path, such as `backend/api`; empty for the top level.
    #[serde(default)]
    pub path: String,
    /// The page, in markdown; `[[Other Title]]` links another document.
    pub content: String,
    /// One sentence saying what the page is about.
    #[serde(default)]
    pub description: Option<String>,
    /// Keywords to find it by.
    #[serde(default)]
    pub keywords: Option<Vec<String>>,
}

/// Arguments of `update_document`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateArgs {
    /// The document's title or id.
    pub document: String,
    /// The whole new page, in markdown.
    pub content: String,
    /// A new description, when it changes.
    #[serde(default)]
    pub description: Option<String>,
    /// The version the new text was written from, as `get_document` showed it: when
    /// someone saved a newer one since, nothing is changed and the tool says so. Left out,
    /// the page is replaced whatever happened to it.
    #[serde(default)]
    pub version: Option<i64>,
}

/// The MCP server's tools, over one API client.
#[derive(Clone)]
pub struct Docs {
    api: Arc<ApiClient>,
    tool_router: ToolRouter<Docs>,
}

impl std::fmt::Debug for Docs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Docs").field("api", &self.api).finish_non_exhaustive()
    }
}

fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name].as_str().unwrap_or_default()
}

/// A search snippet without the store's `<mark>` tags.
fn plain(snippet: &str) -> String {
    snippet.replace("<mark>", "").replace("</mark>", "")
}

#[tool_router]
impl Docs {
    /// The tools over `api`.
    pub fn new(api: ApiClient) -> Docs {
        Docs { api: Arc::new(api), tool_router: Docs::tool_router() }
    }

    /// The document `value` names, as the token may read it: by id when it has the shape
    /// of one (`doc-...`), else by title (or repository name) as a wikilink resolves;
    /// each way tried after the other only when it finds nothing. `None` when neither
    /// finds a document.
    async fn find(&self, value: &str) -> Result<Option<Value>, ApiError> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        if value.starts_with("doc-") {
            if let Some(doc) = self.by_id(value).await? {
                return Ok(Some(doc));
            }
            return self.by_title(value).await;
        }
        match self.by_title(value).await? {
            Some(doc) => Ok(Some(doc)),
            None => self.by_id(value).await,
        }
    }

    /// The document with the id `id`, when the token may read it.
    async fn by_id(&self, id: &str) -> Result<Option<Value>, ApiError> {
        match self.api.get(&format!("/api/docs/{}", api::encode(id)), &[]).await {
            Ok(doc) => Ok(Some(doc)),
            Err(ApiError { status: Some(404 | 422), .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The document the title `title` resolves to, when the token may read one.
    async fn by_title(&self, title: &str) -> Result<Option<Value>, ApiError> {
        match self.api.get("/api/docs/resolve/", &[("target", title.to_string())]).await {
            Ok(found) => match field(&found, "doc_id") {
                "" => Ok(None),
                id => self.by_id(id).await,
            },
            // Not found, or not a title at all (too long, say).
            Err(ApiError { status: Some(404 | 400 | 422), .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Docs::find`], or the tool error saying it found nothing.
    async fn document(&self, value: &str) -> Result<Value, CallToolResult> {
        match self.find(value).await {
            Ok(Some(doc)) => Ok(doc),
            Ok(None) => Err(CallToolResult::error(vec![ContentBlock::text(format!(
                "No document you may read has the title or id \"{}\". Try search_docs to find it.",
                value.trim()
            ))])),
            Err(e) => Err(CallToolResult::error(vec![ContentBlock::text(e.message)])),
        }
    }

    #[tool(
        description = "Search the documentation by words. Answers the matching documents (title, path, id, a snippet around the match), best first. Use get_document with a hit's id to read it."
    )]
    async fn search_docs(&self, Parameters(args): Parameters<SearchArgs>) -> Answer {
        if args.query.trim().is_empty() {
            return failed("Give the words to search for in `query`.");
        }
        let mut query = vec![
            ("q", args.query.trim().to_string()),
            ("limit", args.limit.unwrap_or(10).clamp(1, 50).to_string()),
        ];
        if let Some(prefix) = args.path_prefix.filter(|p| !p.trim().is_empty()) {
            query.push(("path_prefix", prefix));
        }
        if let Some(keywords) = args.keywords.filter(|k| !k.is_empty()) {
            query.push(("keywords", keywords.join(",")));
        }
        let hits = match self.api.get("/api/docs/search/", &query).await {
            Ok(hits) => hits,
            Err(e) => return failed(e.message),
        };
        let hits = hits.as_array().cloned().unwrap_or_default();
        if hits.is_empty() {
            return text(format!("No document matches \"{}\".", args.query.trim()));
        }
        let mut out = format!("{} documents match \"{}\":\n", hits.len(), args.query.trim());
        for hit in &hits {
            let snippet = match field(hit, "snippet") {
                "" => field(hit, "content_preview").to_string(),
                s => plain(s),
            };
            out.push_str(&format!(
                "\n- {} (path: {}, id: {})\n  {}\n",
                field(hit, "title"),
                field(hit, "path"),
                field(hit, "id"),
                snippet.replace('\n', " ")
            ));
        }
        text(out)
    }

    #[tool(
        description = "Read one document, whole: its markdown, with its path, id, type, keywords, description and when it was last updated. Accepts a title or an id."
    )]
    async fn get_document(&self, Parameters(args): Parameters<DocumentArgs>) -> Answer {
        let doc = match self.document(&args.document).await {
            Ok(doc) => doc,
            Err(refused) => return Ok(refused),
        };
        let keywords: Vec<&str> =
            doc["keywords"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let mut out = format!(
            "# {}\n\nid: {}\npath: {}\ntype: {}\nversion: {}\nupdated: {}\n",
            field(&doc, "title"),
            field(&doc, "id"),
            field(&doc, "path"),
            field(&doc, "doc_type"),
            doc["version"],
            field(&doc, "updated_at"),
        );
        if !keywords.is_empty() {
            out.push_str(&format!("keywords: {}\n", keywords.join(", ")));
        }
        if !field(&doc, "description").is_empty() {
            out.push_str(&format!("description: {}\n", field(&doc, "description")));
        }
        out.push_str("\n---\n\n");
        out.push_str(field(&doc, "content"));
        text(out)
    }

    #[tool(
        description = "List the documents under a path (or all), by path then title: title, path, id, last update and description."
    )]
    async fn list_documents(&self, Parameters(args): Parameters<ListArgs>) -> Answer {
        let mut query = vec![("limit", args.limit.unwrap_or(50).clamp(1, 200).to_string())];
        if let Some(prefix) = args.path_prefix.as_ref().filter(|p| !p.trim().is_empty()) {
            query.push(("path_prefix", prefix.trim().to_string()));
        }
        let docs = match self.api.get("/api/docs", &query).await {
            Ok(docs) => docs.as_array().cloned().unwrap_or_default(),
            Err(e) => return failed(e.message),
        };
        let under = args.path_prefix.as_deref().map(str::trim).filter(|p| !p.is_empty());
        if docs.is_empty() {
            return text(match under {
                Some(prefix) => format!("No document you may read is under {prefix}."),
                None => "There is no document you may read.".to_string(),
            });
        }
        let mut out = format!("{} documents:\n", docs.len());
        for doc in &docs {
            let updated: String = field(doc, "updated_at").chars().take(10).collect();
            out.push_str(&format!(
                "\n- {} (path: {}, id: {}, updated {updated})",
                field(doc, "title"),
                field(doc, "path"),
                field(doc, "id")
            ));
            if !field(doc, "description").is_empty() {
                out.push_str(&format!(": {}", field(doc, "description")));
            }
        }
        text(out)
    }

    #[tool(
        description = "The documents one document links to ([[wikilinks]] and other edges) and the documents that link to it, with their titles and ids. Accepts a title or an id."
    )]
    async fn related_documents(&self, Parameters(args): Parameters<DocumentArgs>) -> Answer {
        let doc = match self.document(&args.document).await {
            Ok(doc) => doc,
            Err(refused) => return Ok(refused),
        };
        let id = field(&doc, "id").to_string();
        let edges = match self
            .api
            .get(&format!("/api/docs/{}/dependencies", api::encode(&id)), &[])
            .await
        {
            Ok(edges) => edges,
            Err(e) => return failed(e.message),
        };
        let ends = |side: &str, end: &str| -> Vec<String> {
            edges[side]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e[end].as_str().map(str::to_string))
                .collect()
        };
        let (out_ids, in_ids) = (ends("outgoing", "to_doc_id"), ends("incoming", "from_doc_id"));
        let mut all: Vec<String> = out_ids.iter().chain(&in_ids).cloned().collect();
        all.sort();
        all.dedup();
        let titles = if all.is_empty() {
            json!({})
        } else {
            match self.api.post_read("/api/docs/batch-titles", &json!({ "doc_ids": all })).await {
                Ok(titles) => titles,
                Err(e) => return failed(e.message),
            }
        };
        let list = |ids: &[String]| -> String {
            if ids.is_empty() {
                return "  (none)\n".to_string();
            }
            ids.iter()
                .map(|id| format!("  - {} (id: {id})\n", titles[id].as_str().unwrap_or(id)))
                .collect()
        };
        text(format!(
            "\"{}\" links to:\n{}\nLinked from:\n{}",
            field(&doc, "title"),
            list(&out_ids),
            list(&in_ids)
        ))
    }

    #[tool(
        description = "Documents whose meaning is close to a document (give `document`, a title or id) or to a text (give `text`), with a similarity score. Needs embeddings turned on in IsoCrates."
    )]
    async fn similar_documents(&self, Parameters(args): Parameters<SimilarArgs>) -> Answer {
        let limit = args.limit.unwrap_or(5).clamp(1, 20).to_string();
        let found = match (&args.document, &args.text) {
            (Some(document), _) if !document.trim().is_empty() => {
                let doc = match self.document(document).await {
                    Ok(doc) => doc,
                    Err(refused) => return Ok(refused),
                };
                let path = format!("/api/docs/{}/similar", api::encode(field(&doc, "id")));
                self.api.get(&path, &[("limit", limit)]).await
            }
            (_, Some(text)) if !text.trim().is_empty() => {
                self.api
                    .get(
                        "/api/docs/similar/",
                        &[("text", text.trim().to_string()), ("limit", limit)],
                    )
                    .await
            }
            _ => return failed("Give either `document` (a title or id) or `text`."),
        };
        let found = match found {
            Ok(found) => found.as_array().cloned().unwrap_or_default(),
            Err(e) => return failed(e.message),
        };
        if found.is_empty() {
            return text(
                "No similar documents. (Similarity needs embeddings: IsoCrates runs with \
                 EMBEDDING_PROVIDER set.)"
                    .to_string(),
            );
        }
        let mut out = String::from("Similar documents:\n");
        for hit in &found {
            out.push_str(&format!(
                "\n- {} (path: {}, id: {}, similarity {:.2})",
                field(hit, "title"),
                field(hit, "path"),
                field(hit, "id"),
                hit["similarity_score"].as_f64().unwrap_or_default()
            ));
        }
        text(out)
    }

    #[tool(
        description = "Where a document came from: who or what wrote its latest version and when, the repository commit, the models, and the source files it was written from. Accepts a title or an id."
    )]
    async fn document_sources(&self, Parameters(args): Parameters<DocumentArgs>) -> Answer {
        let doc = match self.document(&args.document).await {
            Ok(doc) => doc,
            Err(refused) => return Ok(refused),
        };
        let path = format!("/api/docs/{}/versions", api::encode(field(&doc, "id")));
        let versions = match self.api.get(&path, &[("limit", "50".to_string())]).await {
            Ok(versions) => versions.as_array().cloned().unwrap_or_default(),
            Err(e) => return failed(e.message),
        };
        let Some(latest) = versions.first() else {
            return failed(format!("\"{}\" has no version yet.", field(&doc, "title")));
        };
        let mut out = format!(
            "\"{}\" (id: {})\nlatest version: by {}, {}\n",
            field(&doc, "title"),
            field(&doc, "id"),
            field(latest, "author_type"),
            field(latest, "created_at")
        );
        // What it was generated from is the newest generated version's; a person's edit
        // since keeps that origin.
        let generated = versions.iter().find(|v| field(v, "author_type") == "ai");
        let meta = match generated {
            Some(version) if !std::ptr::eq(version, latest) => {
                out.push_str(&format!("last generated: {}\n", field(version, "created_at")));
                &version["author_metadata"]
            }
            Some(version) => &version["author_metadata"],
            None => &latest["author_metadata"],
        };
        for (label, key) in [
            ("repository", "repo_url"),
            ("commit", "repo_commit_sha"),
            ("provider", "provider"),
            ("planner model", "planner_model"),
            ("writer model", "writer_model"),
            ("job", "run_id"),
            ("written through", "source"),
        ] {
            let value = if key == "repo_url" { field(&doc, key) } else { field(meta, key) };
            if !value.is_empty() {
                out.push_str(&format!("{label}: {value}\n"));
            }
        }
        let files: Vec<&str> = meta["source_files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if files.is_empty() {
            out.push_str("source files: none recorded\n");
        } else {
            out.push_str("source files:\n");
            for file in files {
                match meta["source_hashes"][file].as_str() {
                    Some(hash) => out.push_str(&format!("  - {file} ({hash})\n")),
                    None => out.push_str(&format!("  - {file}\n")),
                }
            }
        }
        text(out)
    }

    #[tool(
        description = "Ask a question of the documentation: answers from the documents the token may read, naming the documents it drew on."
    )]
    async fn ask_docs(&self, Parameters(args): Parameters<AskArgs>) -> Answer {
        let question = args.question.trim();
        if question.is_empty() || question.chars().count() > 500 {
            return failed("Ask a question of 1 to 500 characters.");
        }
        let body = json!({ "question": question, "top_k": args.top_k.unwrap_or(5).clamp(1, 10) });
        let answer = match self.api.post("/api/docs/ask/", &body).await {
            Ok(answer) => answer,
            Err(e) => return failed(e.message),
        };
        let mut out = field(&answer, "answer").to_string();
        let sources: Vec<String> = answer["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| format!("- {} (path: {})", field(s, "title"), field(s, "path")))
            .collect();
        if !sources.is_empty() {
            out.push_str(&format!("\n\nSources:\n{}", sources.join("\n")));
        }
        if !field(&answer, "model").is_empty() {
            out.push_str(&format!("\n\n(answered by {})", field(&answer, "model")));
        }
        text(out)
    }

    #[tool(
        description = "Write a new document (as a person's edit, which later generations will not overwrite). A document with the same path and title is updated instead."
    )]
    async fn create_document(&self, Parameters(args): Parameters<CreateArgs>) -> Answer {
        let mut body = json!({
            "title": args.title,
            "path": args.path,
            "content": args.content,
            "author_type": "human",
            "author_metadata": {"source": "mcp"},
        });
        if let Some(description) = args.description {
            body["description"] = json!(description);
        }
        if let Some(keywords) = args.keywords {
            body["keywords"] = json!(keywords);
        }
        match self.api.post("/api/docs", &body).await {
            Ok(doc) => text(format!(
                "Saved \"{}\" at {} (id: {}, version {}).",
                field(&doc, "title"),
                if field(&doc, "path").is_empty() { "the top level" } else { field(&doc, "path") },
                field(&doc, "id"),
                doc["version"]
            )),
            Err(e) => failed(e.message),
        }
    }

    #[tool(
        description = "Replace a document's markdown (as a person's edit, kept as a new version). Accepts a title or an id. Pass the `version` get_document showed, so that a newer edit by someone else is never overwritten."
    )]
    async fn update_document(&self, Parameters(args): Parameters<UpdateArgs>) -> Answer {
        let doc = match self.document(&args.document).await {
            Ok(doc) => doc,
            Err(refused) => return Ok(refused),
        };
        let mut body = json!({
            "content": args.content,
            "author_type": "human",
            "author_metadata": {"source": "mcp"},
        });
        if let Some(description) = args.description {
            body["description"] = json!(description);
        }
        if let Some(version) = args.version {
            body["version"] = json!(version);
        }
        let path = format!("/api/docs/{}", api::encode(field(&doc, "id")));
        match self.api.put(&path, &body).await {
            Ok(saved) => text(format!(
                "Updated \"{}\" (id: {}) to version {}.",
                field(&saved, "title"),
                field(&saved, "id"),
                saved["version"]
            )),
            Err(ApiError { status: Some(409), .. }) => failed(format!(
                "\"{}\" changed since you read it: it is at version {} now. Read it again with \
                 get_document, apply your change to that text, and update with its version.",
                field(&doc, "title"),
                doc["version"]
            )),
            Err(e) => failed(e.message),
        }
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "isocrates",
    instructions = "The technical documentation of this organisation's repositories, as IsoCrates keeps it. Search it, read documents by title or id, follow their links, see where a page came from, ask it questions, and write or update pages."
)]
impl ServerHandler for Docs {}

/// Serves `docs` over standard input and output until the client closes them.
pub async fn serve_stdio(docs: Docs) -> Result<(), String> {
    let running = docs
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("the MCP session could not start: {e}"))?;
    running.waiting().await.map_err(|e| format!("the MCP session failed: {e}"))?;
    Ok(())
}

/// The streamable-HTTP endpoint of `docs` at `/mcp`, for clients that connect over the
/// network; requests must name one of `allowed_hosts` (the loopback names by default).
pub fn http_router(docs: Docs, allowed_hosts: Vec<String>) -> axum::Router {
    let mut config = StreamableHttpServerConfig::default();
    if !allowed_hosts.is_empty() {
        config = config.with_allowed_hosts(allowed_hosts);
    }
    let service: StreamableHttpService<Docs, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(docs.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    axum::Router::new().nest_service("/mcp", service)
}
