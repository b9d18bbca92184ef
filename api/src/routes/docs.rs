//! `/api/docs`: documents, their versions, moves, keywords, the trash, and derived ids.
//! Every endpoint asks [`crate::auth::Caller`] (and so `check_permission`) before it
//! reads or writes; a document the caller may not read is a 404, never a 403.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use isocrates_storage::documents::{
    Author, AuthorType, ContentUpdate, Document, ListFilter, NewDocument, Upserted, check_path,
    check_repo_url, check_title,
};
use isocrates_storage::ids::document_id_normalized;
use isocrates_storage::{Action, Role};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{AdminUser, AuthUser, Caller, MaybeUser};
use crate::error::Error;
use crate::extract::{Json, Path, Query, bounded};
use crate::model::{DocumentListItem, DocumentOut, ProposalOut, VersionOut};
use crate::routes::audit;

/// The handlers of this module, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create,
    list,
    trash,
    recent,
    batch,
    batch_titles,
    generate_id,
    show,
    update,
    soft_delete,
    move_doc,
    set_keywords,
    set_repo,
    restore,
    purge,
    versions,
    latest_version,
    version,
    proposals,
    accept_proposal,
    dismiss_proposal
))]
pub(crate) struct Api;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/docs", post(create).get(list))
        .route("/api/docs/trash", get(trash))
        .route("/api/docs/recent", get(recent))
        .route("/api/docs/batch", post(batch))
        .route("/api/docs/batch-titles", post(batch_titles))
        .route("/api/docs/generate-id", post(generate_id))
        .route("/api/docs/{doc_id}", get(show).put(update).delete(soft_delete))
        .route("/api/docs/{doc_id}/move", put(move_doc))
        .route("/api/docs/{doc_id}/keywords", put(set_keywords))
        .route("/api/docs/{doc_id}/repo", put(set_repo))
        .route("/api/docs/{doc_id}/restore", post(restore))
        .route("/api/docs/{doc_id}/permanent", delete(purge))
        .route("/api/docs/{doc_id}/versions", get(versions))
        .route("/api/docs/{doc_id}/versions/latest", get(latest_version))
        .route("/api/docs/{doc_id}/versions/{version_id}", get(version))
        .route("/api/docs/{doc_id}/proposals", get(proposals))
        .route("/api/docs/{doc_id}/proposals/{proposal_id}/accept", post(accept_proposal))
        .route("/api/docs/{doc_id}/proposals/{proposal_id}/dismiss", post(dismiss_proposal))
}

/// The active document `id`, if the caller may read it; otherwise 404.
pub(crate) async fn readable(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Document, Error> {
    match state.storage().document(id).await? {
        Some(doc) if caller.can(&doc.path, Action::Read) => Ok(doc),
        _ => Err(Error::DocumentNotFound(id.to_string())),
    }
}

/// The active document `id` for a change needing `action`: 404 when the caller cannot even
/// read it, 403 when it can read but not change it.
async fn changeable(
    state: &AppState,
    caller: &Caller,
    id: &str,
    action: Action,
) -> Result<Document, Error> {
    let doc = readable(state, caller, id).await?;
    caller.require(&doc.path, action)?;
    Ok(doc)
}

fn author(author_type: &str, metadata: Option<Value>) -> Result<Author, Error> {
    Ok(Author { author_type: AuthorType::parse(author_type)?, metadata })
}

fn ai() -> String {
    "ai".to_string()
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CreateBody {
    title: String,
    content: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    repo_url: Option<String>,
    #[serde(default)]
    repo_name: Option<String>,
    #[serde(default)]
    doc_type: String,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default = "ai")]
    author_type: String,
    #[serde(default)]
    author_metadata: Option<Value>,
}

#[utoipa::path(post, path = "/api/docs", tag = "documents", request_body = CreateBody,
    responses(
        (status = 201, description = "Created", body = DocumentOut),
        (status = 200, description = "The id existed: updated as a new version (restored from the trash if it was there)", body = DocumentOut),
    ))]
async fn create(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Json(body): Json<CreateBody>,
) -> Result<Response, Error> {
    let path = check_path("path", &body.path)?;
    caller.require(&path, Action::Edit)?;
    let new = NewDocument {
        title: body.title,
        content: body.content,
        path,
        repo_url: body.repo_url,
        repo_name: body.repo_name,
        doc_type: body.doc_type,
        keywords: body.keywords,
        description: body.description,
        author: author(&body.author_type, body.author_metadata)?,
    };
    let may_edit = |existing: &str| caller.can(existing, Action::Edit);
    let (status, doc, action) = match state.storage().upsert_document(new, may_edit).await? {
        Upserted::Created(doc) => (StatusCode::CREATED, doc, "document.create"),
        Upserted::Updated(doc) => (StatusCode::OK, doc, "document.update"),
    };
    audit(&state, &caller, action, &doc.id, Value::Null).await;
    Ok((status, axum::Json(DocumentOut::from(doc))).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Documents skipped.
    #[serde(default)]
    #[param(minimum = 0)]
    skip: i64,
    /// Documents at most.
    #[serde(default = "hundred")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: i64,
    path_prefix: Option<String>,
    repo_url: Option<String>,
}

fn hundred() -> i64 {
    100
}

#[utoipa::path(get, path = "/api/docs", tag = "documents", params(ListQuery),
    responses((status = 200, description = "Readable documents by path then title", body = Vec<DocumentListItem>)))]
async fn list(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<DocumentListItem>>, Error> {
    let filter = ListFilter {
        skip: bounded("skip", q.skip, 0, i64::from(i32::MAX))?,
        limit: bounded("limit", q.limit, 1, 1000)?,
        path_prefix: q.path_prefix.filter(|p| !p.trim().is_empty()),
        repo_url: q.repo_url.filter(|u| !u.trim().is_empty()),
        scope: caller.scope(),
    };
    let docs = state.storage().documents(&filter).await?;
    Ok(axum::Json(docs.into_iter().map(DocumentListItem::from).collect()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Documents skipped.
    #[serde(default)]
    #[param(minimum = 0, maximum = 10000)]
    skip: i64,
    /// Documents at most.
    #[serde(default = "hundred")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: i64,
}

/// The most trashed documents looked at for one page of the trash listing.
const TRASH_SCAN: i64 = 10_000;

#[utoipa::path(get, path = "/api/docs/trash", tag = "documents", params(PageQuery),
    responses((status = 200, description = "Trashed documents the caller may delete, newest first", body = Vec<DocumentListItem>)))]
async fn trash(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<Vec<DocumentListItem>>, Error> {
    let skip = bounded("skip", q.skip, 0, TRASH_SCAN)? as usize;
    let limit = bounded("limit", q.limit, 1, 1000)? as usize;
    // The read scope narrows the query; delete rights, which depend on the longest prefix,
    // are then checked per document.
    let docs = state.storage().trashed_documents(&caller.scope(), 0, TRASH_SCAN).await?;
    let page = docs
        .into_iter()
        .filter(|d| caller.can(&d.path, Action::Delete))
        .skip(skip)
        .take(limit)
        .map(DocumentListItem::from)
        .collect();
    Ok(axum::Json(page))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct GenerateIdBody {
    #[serde(default)]
    repo_url: Option<String>,
    #[serde(default)]
    path: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    doc_type: String,
}

#[utoipa::path(post, path = "/api/docs/generate-id", tag = "documents", request_body = GenerateIdBody,
    responses((status = 200, description = "The id a document with these fields has", body = crate::openapi::shapes::GeneratedId)))]
async fn generate_id(Json(body): Json<GenerateIdBody>) -> Result<axum::Json<Value>, Error> {
    let path = check_path("path", &body.path)?;
    let repo_url = check_repo_url(body.repo_url.as_deref())?;
    // An empty title is allowed here (the id then falls back to the type); any other title
    // must be one the upsert would accept.
    if !body.title.trim().is_empty() {
        check_title(&body.title)?;
    }
    let id = document_id_normalized(repo_url.as_deref(), &path, &body.title, &body.doc_type);
    Ok(axum::Json(json!({ "doc_id": id })))
}

#[utoipa::path(get, path = "/api/docs/{doc_id}", tag = "documents", params(crate::openapi::DocId),
    responses((status = 200, description = "The document", body = DocumentOut)))]
async fn show(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Path(doc_id): Path<String>,
) -> Result<axum::Json<DocumentOut>, Error> {
    let doc = readable(&state, &caller, &doc_id).await?;
    Ok(axum::Json(DocumentOut::from(doc)))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct UpdateBody {
    content: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default = "ai")]
    author_type: String,
    #[serde(default)]
    author_metadata: Option<Value>,
    #[serde(default)]
    version: Option<i64>,
}

#[utoipa::path(put, path = "/api/docs/{doc_id}", tag = "documents", params(crate::openapi::DocId), request_body = UpdateBody,
    responses((status = 200, description = "The document at its new version", body = DocumentOut)))]
async fn update(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(doc_id): Path<String>,
    Json(body): Json<UpdateBody>,
) -> Result<axum::Json<DocumentOut>, Error> {
    changeable(&state, &caller, &doc_id, Action::Edit).await?;
    let update = ContentUpdate {
        content: body.content,
        description: body.description,
        author: author(&body.author_type, body.author_metadata)?,
        expected_version: body.version,
    };
    let doc = state.storage().update_content(&doc_id, update).await?;
    audit(&state, &caller, "document.update", &doc.id, Value::Null).await;
    Ok(axum::Json(DocumentOut::from(doc)))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct MoveBody {
    target_path: String,
}

#[utoipa::path(put, path = "/api/docs/{doc_id}/move", tag = "documents", params(crate::openapi::DocId), request_body = MoveBody,
    responses((status = 200, description = "The document in its new folder, with the same id", body = DocumentOut)))]
async fn move_doc(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(doc_id): Path<String>,
    Json(body): Json<MoveBody>,
) -> Result<axum::Json<DocumentOut>, Error> {
    changeable(&state, &caller, &doc_id, Action::Edit).await?;
    let target = check_path("target_path", &body.target_path)?;
    caller.require(&target, Action::Edit)?;
    let doc = state.storage().move_document(&doc_id, &target).await?;
    audit(&state, &caller, "document.move", &doc.id, Value::Null).await;
    Ok(axum::Json(DocumentOut::from(doc)))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct KeywordsBody {
    keywords: Vec<String>,
}

#[utoipa::path(put, path = "/api/docs/{doc_id}/keywords", tag = "documents", params(crate::openapi::DocId), request_body = KeywordsBody,
    responses((status = 200, description = "The document", body = DocumentOut)))]
async fn set_keywords(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(doc_id): Path<String>,
    Json(body): Json<KeywordsBody>,
) -> Result<axum::Json<DocumentOut>, Error> {
    changeable(&state, &caller, &doc_id, Action::Edit).await?;
    let doc = state.storage().set_keywords(&doc_id, body.keywords).await?;
    Ok(axum::Json(DocumentOut::from(doc)))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RepoBody {
    repo_url: String,
}

#[utoipa::path(put, path = "/api/docs/{doc_id}/repo", tag = "documents", params(crate::openapi::DocId), request_body = RepoBody,
    responses((status = 200, description = "The document", body = DocumentOut)))]
async fn set_repo(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(doc_id): Path<String>,
    Json(body): Json<RepoBody>,
) -> Result<axum::Json<DocumentOut>, Error> {
    changeable(&state, &caller, &doc_id, Action::Edit).await?;
    let url = Some(body.repo_url.as_str()).filter(|u| !u.trim().is_empty());
    let doc = state.storage().set_repo_url(&doc_id, url).await?;
    Ok(axum::Json(DocumentOut::from(doc)))
}

/// Checks that the caller may delete or restore `doc`. A service may only touch what a
/// model wrote: its latest version must be AI-authored.
async fn require_delete(state: &AppState, caller: &Caller, doc: &Document) -> Result<(), Error> {
    caller.require(&doc.path, Action::Delete)?;
    if caller.role == Some(Role::Service) {
        let latest = state.storage().versions(&doc.id, 0, 1).await?;
        if latest.first().is_some_and(|v| v.author_type != AuthorType::Ai.as_str()) {
            return Err(Error::Forbidden(
                "a service may delete only documents whose latest version an AI wrote".to_string(),
            ));
        }
    }
    Ok(())
}

/// A document, trashed or not, for the trash operations: 404 unless the caller may read
/// its path.
async fn any_readable(state: &AppState, caller: &Caller, id: &str) -> Result<Document, Error> {
    match state.storage().document_any(id).await? {
        Some(doc) if caller.can(&doc.path, Action::Read) => Ok(doc),
        _ => Err(Error::DocumentNotFound(id.to_string())),
    }
}

#[utoipa::path(delete, path = "/api/docs/{doc_id}", tag = "documents", params(crate::openapi::DocId),
    responses((status = 204, description = "In the trash")))]
async fn soft_delete(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(doc_id): Path<String>,
) -> Result<StatusCode, Error> {
    let doc = any_readable(&state, &caller, &doc_id).await?;
    require_delete(&state, &caller, &doc).await?;
    state.storage().trash_document(&doc_id).await?;
    audit(&state, &caller, "document.delete", &doc_id, Value::Null).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/docs/{doc_id}/restore", tag = "documents", params(crate::openapi::DocId),
    responses((status = 200, description = "The document, out of the trash", body = DocumentOut)))]
async fn restore(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(doc_id): Path<String>,
) -> Result<axum::Json<DocumentOut>, Error> {
    let doc = any_readable(&state, &caller, &doc_id).await?;
    require_delete(&state, &caller, &doc).await?;
    let doc = state.storage().restore_document(&doc_id).await?;
    audit(&state, &caller, "document.restore", &doc_id, Value::Null).await;
    Ok(axum::Json(DocumentOut::from(doc)))
}

#[utoipa::path(delete, path = "/api/docs/{doc_id}/permanent", tag = "documents", params(crate::openapi::DocId),
    responses((status = 204, description = "Gone for good (admin)")))]
async fn purge(
    State(state): State<AppState>,
    AdminUser(caller): AdminUser,
    Path(doc_id): Path<String>,
) -> Result<StatusCode, Error> {
    state.storage().purge_document(&doc_id).await?;
    audit(&state, &caller, "document.purge", &doc_id, Value::Null).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct VersionsQuery {
    /// Versions skipped.
    #[serde(default)]
    #[param(minimum = 0)]
    skip: i64,
    /// Versions at most.
    #[serde(default = "fifty")]
    #[param(minimum = 1, maximum = 200, default = 50)]
    limit: i64,
}

fn fifty() -> i64 {
    50
}

#[utoipa::path(get, path = "/api/docs/{doc_id}/versions", tag = "documents", params(crate::openapi::DocId, VersionsQuery),
    responses((status = 200, description = "Newest first", body = Vec<VersionOut>)))]
async fn versions(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Path(doc_id): Path<String>,
    Query(q): Query<VersionsQuery>,
) -> Result<axum::Json<Vec<VersionOut>>, Error> {
    let skip = bounded("skip", q.skip, 0, i64::from(i32::MAX))?;
    let limit = bounded("limit", q.limit, 1, 200)?;
    readable(&state, &caller, &doc_id).await?;
    let versions = state.storage().versions(&doc_id, skip, limit).await?;
    Ok(axum::Json(versions.into_iter().map(VersionOut::from).collect()))
}

#[utoipa::path(get, path = "/api/docs/{doc_id}/versions/latest", tag = "documents", params(crate::openapi::DocId),
    responses((status = 200, description = "The newest version", body = VersionOut)))]
async fn latest_version(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Path(doc_id): Path<String>,
) -> Result<axum::Json<VersionOut>, Error> {
    readable(&state, &caller, &doc_id).await?;
    let latest = state.storage().versions(&doc_id, 0, 1).await?.into_iter().next();
    latest
        .map(|v| axum::Json(VersionOut::from(v)))
        .ok_or_else(|| Error::NotFound { what: "version".to_string(), id: "latest".to_string() })
}

#[utoipa::path(get, path = "/api/docs/{doc_id}/versions/{version_id}", tag = "documents", params(crate::openapi::DocId, ("version_id" = String, Path, description = "The version's id")),
    responses((status = 200, description = "The version", body = VersionOut)))]
async fn version(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Path((doc_id, version_id)): Path<(String, String)>,
) -> Result<axum::Json<VersionOut>, Error> {
    readable(&state, &caller, &doc_id).await?;
    let version = state.storage().version(&doc_id, &version_id).await?;
    version
        .map(|v| axum::Json(VersionOut::from(v)))
        .ok_or_else(|| Error::NotFound { what: "version".to_string(), id: version_id })
}

#[utoipa::path(get, path = "/api/docs/{doc_id}/proposals", tag = "documents", params(crate::openapi::DocId),
    responses((status = 200, description = "What the model proposed beside a page a person wrote", body = Vec<ProposalOut>)))]
async fn proposals(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Path(doc_id): Path<String>,
) -> Result<axum::Json<Vec<ProposalOut>>, Error> {
    readable(&state, &caller, &doc_id).await?;
    let proposals = state.storage().proposals(&doc_id).await?;
    Ok(axum::Json(proposals.into_iter().map(ProposalOut::from).collect()))
}

#[utoipa::path(post, path = "/api/docs/{doc_id}/proposals/{proposal_id}/accept", tag = "documents", params(crate::openapi::DocId, ("proposal_id" = String, Path, description = "The proposal's id")),
    responses((status = 200, description = "The document at the proposal's text, and the proposal", body = crate::openapi::shapes::Accepted)))]
async fn accept_proposal(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path((doc_id, proposal_id)): Path<(String, String)>,
) -> Result<axum::Json<Value>, Error> {
    changeable(&state, &caller, &doc_id, Action::Edit).await?;
    let who = caller.user_id().unwrap_or_default();
    let (doc, proposal) = state.storage().accept_proposal(&doc_id, &proposal_id, &who).await?;
    audit(
        &state,
        &caller,
        "document.proposal.accept",
        &doc.id,
        serde_json::json!({"proposal_id": proposal.id}),
    )
    .await;
    Ok(axum::Json(serde_json::json!({
        "document": DocumentOut::from(doc),
        "proposal": ProposalOut::from(proposal),
    })))
}

#[utoipa::path(post, path = "/api/docs/{doc_id}/proposals/{proposal_id}/dismiss", tag = "documents", params(crate::openapi::DocId, ("proposal_id" = String, Path, description = "The proposal's id")),
    responses((status = 200, description = "The proposal, dismissed", body = ProposalOut)))]
async fn dismiss_proposal(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path((doc_id, proposal_id)): Path<(String, String)>,
) -> Result<axum::Json<ProposalOut>, Error> {
    changeable(&state, &caller, &doc_id, Action::Edit).await?;
    let who = caller.user_id().unwrap_or_default();
    let proposal = state.storage().dismiss_proposal(&doc_id, &proposal_id, &who).await?;
    audit(
        &state,
        &caller,
        "document.proposal.dismiss",
        &doc_id,
        serde_json::json!({"proposal_id": proposal.id}),
    )
    .await;
    Ok(axum::Json(ProposalOut::from(proposal)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RecentQuery {
    /// Documents at most.
    #[serde(default = "twenty")]
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: i64,
}

fn twenty() -> i64 {
    20
}

#[utoipa::path(get, path = "/api/docs/recent", tag = "documents", params(RecentQuery),
    responses((status = 200, description = "Readable documents, last changed first", body = Vec<DocumentListItem>)))]
async fn recent(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Query(q): Query<RecentQuery>,
) -> Result<axum::Json<Vec<DocumentListItem>>, Error> {
    let limit = bounded("limit", q.limit, 1, 100)?;
    let docs = state.storage().recent_documents(&caller.scope(), limit).await?;
    Ok(axum::Json(docs.into_iter().map(DocumentListItem::from).collect()))
}

/// The most ids one `batch-titles` call looks up.
const BATCH_TITLES: usize = 100;
/// The most ids one batch operation takes.
const MAX_BATCH: usize = 1000;

#[derive(Deserialize, utoipa::ToSchema)]
struct TitlesBody {
    doc_ids: Vec<String>,
}

#[utoipa::path(post, path = "/api/docs/batch-titles", tag = "documents", request_body = TitlesBody,
    responses((status = 200, description = "The title of each readable id (the first 100)", body = std::collections::HashMap<String, String>)))]
async fn batch_titles(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Json(body): Json<TitlesBody>,
) -> Result<axum::Json<serde_json::Map<String, Value>>, Error> {
    let ids: Vec<String> = body.doc_ids.into_iter().take(BATCH_TITLES).collect();
    let docs = state.storage().documents_by_id(&ids, &caller.scope()).await?;
    Ok(axum::Json(docs.into_iter().map(|d| (d.id, Value::String(d.title))).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum BatchOperation {
    Delete,
    Move,
    AddKeywords,
    RemoveKeywords,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct BatchParams {
    #[serde(default)]
    target_path: Option<String>,
    #[serde(default)]
    keywords: Vec<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct BatchBody {
    operation: BatchOperation,
    doc_ids: Vec<String>,
    #[serde(default)]
    params: Option<BatchParams>,
}

/// Applies one operation to many documents, each checked on its own: one that fails is
/// reported and the others go on.
#[utoipa::path(post, path = "/api/docs/batch", tag = "documents", request_body = BatchBody,
    responses((status = 200, description = "What was done to each id", body = crate::openapi::shapes::BatchResult)))]
async fn batch(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Json(body): Json<BatchBody>,
) -> Result<axum::Json<Value>, Error> {
    if body.doc_ids.len() > MAX_BATCH {
        return Err(Error::invalid("doc_ids", format!("at most {MAX_BATCH} ids per batch")));
    }
    let params = body.params.unwrap_or_default();
    let target = match (&body.operation, &params.target_path) {
        (BatchOperation::Move, None) => {
            return Err(Error::validation("params.target_path", "a move needs params.target_path"));
        }
        (BatchOperation::Move, Some(path)) => Some(check_path("params.target_path", path)?),
        _ => None,
    };
    if matches!(body.operation, BatchOperation::AddKeywords | BatchOperation::RemoveKeywords)
        && params.keywords.is_empty()
    {
        return Err(Error::validation("params.keywords", "this operation needs params.keywords"));
    }
    let mut errors = Vec::new();
    let mut succeeded = 0;
    for id in &body.doc_ids {
        let outcome =
            batch_one(&state, &caller, id, &body.operation, target.as_deref(), &params.keywords)
                .await;
        match outcome {
            Ok(()) => succeeded += 1,
            Err(e) => errors.push(json!({ "doc_id": id, "error": e.public_message() })),
        }
    }
    Ok(axum::Json(json!({
        "total": body.doc_ids.len(),
        "succeeded": succeeded,
        "failed": errors.len(),
        "errors": errors,
    })))
}

async fn batch_one(
    state: &AppState,
    caller: &Caller,
    id: &str,
    operation: &BatchOperation,
    target: Option<&str>,
    keywords: &[String],
) -> Result<(), Error> {
    let storage = state.storage();
    match operation {
        BatchOperation::Delete => {
            let doc = any_readable(state, caller, id).await?;
            require_delete(state, caller, &doc).await?;
            storage.trash_document(id).await?;
            audit(state, caller, "document.delete", id, Value::Null).await;
        }
        BatchOperation::Move => {
            let target = target.unwrap_or_default();
            changeable(state, caller, id, Action::Edit).await?;
            caller.require(target, Action::Edit)?;
            storage.move_document(id, target).await?;
            audit(state, caller, "document.move", id, Value::Null).await;
        }
        BatchOperation::AddKeywords | BatchOperation::RemoveKeywords => {
            let doc = changeable(state, caller, id, Action::Edit).await?;
            let mut current = doc.keywords;
            if matches!(operation, BatchOperation::AddKeywords) {
                current.extend(keywords.iter().cloned());
            } else {
                current.retain(|k| !keywords.iter().any(|r| r.trim() == k));
            }
            storage.set_keywords(id, current).await?;
        }
    }
    Ok(())
}
