//! Documents and their versions: upsert by derived id, optimistic locking on `version`,
//! moves that keep the id, the trash (soft delete, restore) and permanent deletion. Every
//! change that can alter what a wikilink resolves to repairs the links that depend on it.

use serde_json::Value;
use sqlx::types::Json;

use crate::ids::{document_id_normalized, normalize_path, normalize_repo_url, sha256_hex};
use crate::links::{self, title_key};
use crate::permission::Grant;
use crate::{Error, Storage, Timestamp};
use isocrates_db::{Arg, QueryBuilder, Tx, args};

/// A document as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The derived id (see [`crate::ids::document_id`]).
    pub id: String,
    /// The repository it documents, if any.
    pub repo_url: Option<String>,
    /// A short repository name; wikilinks may target it.
    pub repo_name: Option<String>,
    /// Its folder, normalised; `""` is the top.
    pub path: String,
    /// Its title; with the path and repository it derives the id.
    pub title: String,
    /// Markdown.
    pub content: String,
    /// What kind of page it is (`overview`, `api`, ...), free text.
    pub doc_type: String,
    /// Keywords for search and filters.
    pub keywords: Vec<String>,
    /// One or two sentences.
    pub description: Option<String>,
    /// When it was first stored.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// How many versions of its content were written.
    pub generation_count: i64,
    /// The optimistic-lock counter; it grows on every change.
    pub version: i64,
    /// When it went to the trash, if it is there.
    pub deleted_at: Option<Timestamp>,
    /// Whether search has indexed the current content.
    pub is_indexed: bool,
}

/// The number of characters of `content_preview`.
pub const PREVIEW_CHARS: usize = 500;

impl Document {
    /// The first [`PREVIEW_CHARS`] characters of the content.
    pub fn content_preview(&self) -> String {
        self.content.chars().take(PREVIEW_CHARS).collect()
    }
}

/// Who wrote a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorType {
    /// The documentation workflow or another model.
    Ai,
    /// A person.
    Human,
    /// IsoCrates itself (a restore, a migration).
    System,
}

impl AuthorType {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorType::Ai => "ai",
            AuthorType::Human => "human",
            AuthorType::System => "system",
        }
    }

    /// Parses `ai`, `human` or `system`.
    pub fn parse(name: &str) -> Result<AuthorType, Error> {
        match name {
            "ai" => Ok(AuthorType::Ai),
            "human" => Ok(AuthorType::Human),
            "system" => Ok(AuthorType::System),
            other => Err(Error::validation(
                "author_type",
                format!("unknown author_type '{other}': use ai, human or system"),
            )),
        }
    }
}

/// The author of a change and what they said about it.
#[derive(Debug, Clone)]
pub struct Author {
    /// Who wrote it.
    pub author_type: AuthorType,
    /// Free-form provenance (models, commit, source files for AI versions).
    pub metadata: Option<Value>,
}

/// One stored version of a document's content.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// Its id.
    pub version_id: String,
    /// The document it belongs to.
    pub doc_id: String,
    /// The content as written.
    pub content: String,
    /// SHA-256 of the content, hex.
    pub content_hash: String,
    /// Who wrote it.
    pub author_type: String,
    /// Provenance.
    pub author_metadata: Option<Value>,
    /// When it was written.
    pub created_at: Timestamp,
}

/// A document to create, or to update when its derived id exists.
#[derive(Debug, Clone)]
pub struct NewDocument {
    /// Title; must not contain `/`.
    pub title: String,
    /// Markdown.
    pub content: String,
    /// Folder.
    pub path: String,
    /// Repository URL, if the page documents one.
    pub repo_url: Option<String>,
    /// Repository name; defaults to the first segment of the path.
    pub repo_name: Option<String>,
    /// Kind of page.
    pub doc_type: String,
    /// Keywords.
    pub keywords: Vec<String>,
    /// Description.
    pub description: Option<String>,
    /// Who writes it.
    pub author: Author,
}

/// The outcome of an upsert.
#[derive(Debug, Clone)]
pub enum Upserted {
    /// A new document.
    Created(Document),
    /// An existing id got a new version (and left the trash if it was there).
    Updated(Document),
}

/// A change of content.
#[derive(Debug, Clone)]
pub struct ContentUpdate {
    /// The new markdown.
    pub content: String,
    /// A new description, or `None` to keep the current one.
    pub description: Option<String>,
    /// Who writes it.
    pub author: Author,
    /// The `version` the writer read; a different current version is a conflict.
    pub expected_version: Option<i64>,
}

/// The set of paths a caller may read, for filtering lists inside the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadScope {
    /// Everything.
    All,
    /// Paths at or below any of these prefixes (none: nothing).
    Under(Vec<String>),
}

impl ReadScope {
    /// The scope that `grants` give: every grant's role includes reading.
    pub fn of(grants: &[Grant]) -> ReadScope {
        if grants.iter().any(|g| g.path_prefix.is_empty()) {
            ReadScope::All
        } else {
            ReadScope::Under(grants.iter().map(|g| g.path_prefix.clone()).collect())
        }
    }

    /// Whether `path` is in the scope.
    pub fn allows(&self, path: &str) -> bool {
        match self {
            ReadScope::All => true,
            ReadScope::Under(prefixes) => {
                prefixes.iter().any(|p| crate::permission::covers(p, path))
            }
        }
    }

    /// Appends ` AND (...)` restricting `column` to the scope.
    pub(crate) fn restrict(&self, q: &mut QueryBuilder, column: &'static str) {
        let ReadScope::Under(prefixes) = self else {
            return;
        };
        if prefixes.is_empty() {
            q.push(" AND 1 = 0");
            return;
        }
        q.push(" AND (");
        for (i, prefix) in prefixes.iter().enumerate() {
            if i > 0 {
                q.push(" OR ");
            }
            q.path_under(column, prefix);
        }
        q.push(")");
    }
}

/// Filters of a document listing.
#[derive(Debug, Clone)]
pub struct ListFilter {
    /// Rows to skip.
    pub skip: i64,
    /// Rows to return at most.
    pub limit: i64,
    /// Only documents at or below this path.
    pub path_prefix: Option<String>,
    /// Only documents of this repository.
    pub repo_url: Option<String>,
    /// What the caller may read.
    pub scope: ReadScope,
}

#[derive(sqlx::FromRow)]
pub(crate) struct DocumentRow {
    id: String,
    repo_url: Option<String>,
    repo_name: Option<String>,
    path: String,
    title: String,
    content: String,
    doc_type: String,
    keywords: Json<Vec<String>>,
    description: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    generation_count: i64,
    version: i64,
    deleted_at: Option<Timestamp>,
    is_indexed: bool,
}

impl From<DocumentRow> for Document {
    fn from(r: DocumentRow) -> Document {
        Document {
            id: r.id,
            repo_url: r.repo_url,
            repo_name: r.repo_name,
            path: r.path,
            title: r.title,
            content: r.content,
            doc_type: r.doc_type,
            keywords: r.keywords.0,
            description: r.description,
            created_at: r.created_at,
            updated_at: r.updated_at,
            generation_count: r.generation_count,
            version: r.version,
            deleted_at: r.deleted_at,
            is_indexed: r.is_indexed,
        }
    }
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    version_id: String,
    doc_id: String,
    content: String,
    content_hash: String,
    author_type: String,
    author_metadata: Option<Json<Value>>,
    created_at: Timestamp,
}

impl From<VersionRow> for Version {
    fn from(r: VersionRow) -> Version {
        Version {
            version_id: r.version_id,
            doc_id: r.doc_id,
            content: r.content,
            content_hash: r.content_hash,
            author_type: r.author_type,
            author_metadata: r.author_metadata.map(|j| j.0),
            created_at: r.created_at,
        }
    }
}

const DOC_COLUMNS: &str = "id, repo_url, repo_name, path, title, content, doc_type, keywords, \
     description, created_at, updated_at, generation_count, version, deleted_at, is_indexed";
const VERSION_COLUMNS: &str =
    "version_id, doc_id, content, content_hash, author_type, author_metadata, created_at";

/// Bounds on what a document may hold.
pub mod limits {
    /// Characters of a title.
    pub const TITLE: usize = 300;
    /// Characters of a path.
    pub const PATH: usize = 1000;
    /// Characters of a path segment.
    pub const SEGMENT: usize = 200;
    /// Characters of a description.
    pub const DESCRIPTION: usize = 5000;
    /// Number of keywords.
    pub const KEYWORDS: usize = 50;
    /// Characters of one keyword.
    pub const KEYWORD: usize = 100;
    /// Characters of a repository URL or name.
    pub const REPO: usize = 2000;
    /// Characters of a doc_type.
    pub const DOC_TYPE: usize = 50;
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Normalises and checks a document path: no `.` or `..` segment, no control character.
pub fn check_path(field: &str, path: &str) -> Result<String, Error> {
    let path = normalize_path(path);
    if path.chars().count() > limits::PATH {
        return Err(Error::validation(
            field,
            format!("{field} is longer than {} characters", limits::PATH),
        ));
    }
    for segment in path.split('/') {
        if segment == "." || segment == ".." {
            return Err(Error::validation(
                field,
                format!("{field} must not contain '.' or '..' segments"),
            ));
        }
        if segment.chars().count() > limits::SEGMENT {
            return Err(Error::validation(
                field,
                format!("a segment of {field} is longer than {} characters", limits::SEGMENT),
            ));
        }
    }
    if has_control(&path) {
        return Err(Error::validation(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(path)
}

/// Trims and checks a title: not empty, no `/`, no control character, within bounds.
pub fn check_title(title: &str) -> Result<String, Error> {
    let title = title.trim();
    if title.is_empty() {
        return Err(Error::validation("title", "title must not be empty"));
    }
    if title.chars().count() > limits::TITLE {
        return Err(Error::validation(
            "title",
            format!("title is longer than {} characters", limits::TITLE),
        ));
    }
    if title.contains('/') {
        return Err(Error::validation("title", "title must not contain '/'"));
    }
    if has_control(title) {
        return Err(Error::validation("title", "title must not contain control characters"));
    }
    Ok(title.to_string())
}

fn check_text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, Error> {
    let Some(value) = value else { return Ok(None) };
    if value.chars().count() > max {
        return Err(Error::validation(field, format!("{field} is longer than {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(Error::validation(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(Some(value))
}

/// Checks content: any text but NUL and other control characters than tab and line breaks.
fn check_content(content: &str) -> Result<(), Error> {
    if content.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(Error::validation("content", "content must not contain control characters"));
    }
    Ok(())
}

/// Trims keywords, drops empty and repeated ones, and checks their bounds.
pub fn check_keywords(keywords: Vec<String>) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    for keyword in keywords {
        let keyword = keyword.trim().to_string();
        if keyword.is_empty() || out.contains(&keyword) {
            continue;
        }
        if keyword.chars().count() > limits::KEYWORD || has_control(&keyword) {
            return Err(Error::validation(
                "keywords",
                format!(
                    "a keyword must be at most {} characters, without control characters",
                    limits::KEYWORD
                ),
            ));
        }
        out.push(keyword);
    }
    if out.len() > limits::KEYWORDS {
        return Err(Error::validation(
            "keywords",
            format!("at most {} keywords", limits::KEYWORDS),
        ));
    }
    Ok(out)
}

/// Normalises a repository URL; `None` or blank means none.
pub fn check_repo_url(url: Option<&str>) -> Result<Option<String>, Error> {
    let Some(url) = url.map(normalize_repo_url).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if url.chars().count() > limits::REPO
        || url.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Error::validation(
            "repo_url",
            "repo_url must be a URL without spaces or control characters",
        ));
    }
    Ok(Some(url))
}

fn first_segment(path: &str) -> Option<String> {
    path.split('/').next().filter(|s| !s.is_empty()).map(str::to_string)
}

impl Storage {
    /// Creates the document, or writes a new version of it when its derived id exists (also
    /// in the trash, which it then leaves). Content and description change; keywords, type
    /// and repository name change when given.
    ///
    /// A document keeps its id when it moves, so the id of a new path can belong to a
    /// document living elsewhere: `may_edit` is asked about the path the document is at now,
    /// inside the transaction, and a refusal writes nothing.
    pub async fn upsert_document(
        &self,
        new: NewDocument,
        may_edit: impl Fn(&str) -> bool,
    ) -> Result<Upserted, Error> {
        let title = check_title(&new.title)?;
        let path = check_path("path", &new.path)?;
        let repo_url = check_repo_url(new.repo_url.as_deref())?;
        let given_repo_name =
            check_text("repo_name", new.repo_name.map(|n| n.trim().to_string()), limits::REPO)?
                .filter(|n| !n.is_empty());
        let repo_name = given_repo_name.clone().or_else(|| first_segment(&path));
        let doc_type =
            check_text("doc_type", Some(new.doc_type.trim().to_string()), limits::DOC_TYPE)?
                .unwrap_or_default();
        let description = check_text("description", new.description, limits::DESCRIPTION)?;
        let keywords = check_keywords(new.keywords)?;
        check_content(&new.content)?;
        let id = document_id_normalized(repo_url.as_deref(), &path, &title, &doc_type);
        let now = Timestamp::now();

        let mut tx = self.db.begin().await?;
        tx.lock_links().await?;
        if let Some(existing) = load(&mut tx, &id).await?
            && !may_edit(&existing.path)
        {
            return Err(Error::Forbidden(format!(
                "document {id} lives under {}, which you may not edit",
                existing.path
            )));
        }
        let inserted = tx
            .execute(
                "INSERT INTO documents (id, repo_url, repo_name, path, title, title_key, repo_key, \
                 content, doc_type, keywords, description, created_at, updated_at, \
                 generation_count, version, deleted_at, is_indexed) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 1, 1, NULL, FALSE) \
                 ON CONFLICT (id) DO NOTHING",
                args![
                    &id,
                    repo_url.clone(),
                    repo_name.clone(),
                    &path,
                    &title,
                    title_key(&title),
                    repo_name.as_deref().map(title_key),
                    &new.content,
                    &doc_type,
                    serde_json::json!(keywords),
                    description.clone(),
                    now
                ],
            )
            .await?
            == 1;
        let previous_key = if inserted {
            None
        } else {
            let before =
                load(&mut tx, &id).await?.ok_or_else(|| Error::not_found("document", &id))?;
            tx.execute(
                "UPDATE documents SET content = $1, description = coalesce($2, description), \
                 keywords = CASE WHEN $3 THEN $4 ELSE keywords END, \
                 doc_type = CASE WHEN $5 = '' THEN doc_type ELSE $5 END, \
                 repo_name = coalesce($6, repo_name), repo_key = coalesce($7, repo_key), \
                 updated_at = $8, deleted_at = NULL, is_indexed = FALSE, \
                 generation_count = generation_count + 1, version = version + 1 WHERE id = $9",
                args![
                    &new.content,
                    description,
                    !keywords.is_empty(),
                    serde_json::json!(keywords),
                    &doc_type,
                    given_repo_name.clone(),
                    given_repo_name.as_deref().map(title_key),
                    now,
                    &id
                ],
            )
            .await?;
            Some(before)
        };
        let doc = load(&mut tx, &id).await?.ok_or_else(|| Error::not_found("document", &id))?;
        insert_version(&mut tx, &doc, &new.author).await?;
        links::replace_outgoing(&mut tx, &doc).await?;
        // A new document, a restored one or a new repository name can become the target of
        // links that were waiting for it.
        let mut keys = vec![title_key(&doc.title)];
        keys.extend(doc.repo_name.as_deref().map(title_key));
        if let Some(before) = &previous_key {
            keys.extend(before.repo_name.as_deref().map(title_key));
        }
        links::repair(&mut tx, &keys).await?;
        tx.commit().await?;
        Ok(if inserted { Upserted::Created(doc) } else { Upserted::Updated(doc) })
    }

    /// Every active document of a repository, however many: the pages a documentation run
    /// works on.
    pub async fn documents_of_repo(&self, repo_url: &str) -> Result<Vec<Document>, Error> {
        let repo = check_repo_url(Some(repo_url))?.unwrap_or_default();
        let mut q = QueryBuilder::new("SELECT ");
        q.push(DOC_COLUMNS)
            .push(" FROM documents WHERE deleted_at IS NULL AND repo_url = ")
            .bind(repo);
        q.push(" ORDER BY path, title");
        self.fetch_documents(q).await
    }

    /// An active (not trashed) document.
    pub async fn document(&self, id: &str) -> Result<Option<Document>, Error> {
        let sql =
            format!("SELECT {DOC_COLUMNS} FROM documents WHERE id = $1 AND deleted_at IS NULL");
        Ok(self.db.fetch_optional::<DocumentRow>(sql, args![id]).await?.map(Document::from))
    }

    /// A document whether or not it is in the trash.
    pub async fn document_any(&self, id: &str) -> Result<Option<Document>, Error> {
        let sql = format!("SELECT {DOC_COLUMNS} FROM documents WHERE id = $1");
        Ok(self.db.fetch_optional::<DocumentRow>(sql, args![id]).await?.map(Document::from))
    }

    /// Active documents in the scope, ordered by path, title and id so pages are stable.
    pub async fn documents(&self, filter: &ListFilter) -> Result<Vec<Document>, Error> {
        let mut q = QueryBuilder::new("SELECT ");
        q.push(DOC_COLUMNS).push(" FROM documents WHERE deleted_at IS NULL");
        if let Some(prefix) = &filter.path_prefix {
            q.push(" AND ").path_under("path", &check_path("path_prefix", prefix)?);
        }
        if let Some(repo) = &filter.repo_url {
            q.push(" AND repo_url = ").bind(normalize_repo_url(repo));
        }
        filter.scope.restrict(&mut q, "path");
        q.push(" ORDER BY path, title, id LIMIT ")
            .bind(filter.limit)
            .push(" OFFSET ")
            .bind(filter.skip);
        self.fetch_documents(q).await
    }

    /// Active documents in the scope, most recently changed first.
    pub async fn recent_documents(
        &self,
        scope: &ReadScope,
        limit: i64,
    ) -> Result<Vec<Document>, Error> {
        let mut q = QueryBuilder::new("SELECT ");
        q.push(DOC_COLUMNS).push(" FROM documents WHERE deleted_at IS NULL");
        scope.restrict(&mut q, "path");
        q.push(" ORDER BY updated_at DESC, id LIMIT ").bind(limit);
        self.fetch_documents(q).await
    }

    /// The active documents among `ids` that are in the scope, without their content.
    pub async fn documents_by_id(
        &self,
        ids: &[String],
        scope: &ReadScope,
    ) -> Result<Vec<Document>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::new("SELECT ");
        q.push(DOC_COLUMNS).push(" FROM documents WHERE deleted_at IS NULL AND id IN (");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.bind(id.as_str());
        }
        q.push(")");
        scope.restrict(&mut q, "path");
        q.push(" ORDER BY id");
        self.fetch_documents(q).await
    }

    /// The number of active documents.
    pub async fn document_count(&self) -> Result<i64, Error> {
        #[derive(sqlx::FromRow)]
        struct Count {
            n: i64,
        }
        let row: Option<Count> = self
            .db
            .fetch_optional("SELECT count(*) AS n FROM documents WHERE deleted_at IS NULL", vec![])
            .await?;
        Ok(row.map_or(0, |c| c.n))
    }

    /// Writes new content as a new version. With `expected_version`, a document that changed
    /// since the writer read it is a [`Error::Conflict`] and nothing is written.
    pub async fn update_content(&self, id: &str, update: ContentUpdate) -> Result<Document, Error> {
        check_content(&update.content)?;
        let description = check_text("description", update.description, limits::DESCRIPTION)?;
        let mut tx = self.db.begin().await?;
        tx.lock_links().await?;
        let changed = tx
            .execute(
                "UPDATE documents SET content = $1, description = coalesce($2, description), \
                 updated_at = $3, is_indexed = FALSE, generation_count = generation_count + 1, \
                 version = version + 1 \
                 WHERE id = $4 AND deleted_at IS NULL AND ($5 IS NULL OR version = $5)",
                args![
                    &update.content,
                    description,
                    Timestamp::now(),
                    id,
                    Arg::Int(update.expected_version)
                ],
            )
            .await?;
        let doc = load(&mut tx, id).await?.filter(|d| d.deleted_at.is_none());
        let Some(doc) = doc else {
            return Err(Error::not_found("document", id));
        };
        if changed == 0 {
            return Err(Error::Conflict(format!(
                "document {id} is at version {}, not {}: reload it and apply your change again",
                doc.version,
                update.expected_version.unwrap_or_default()
            )));
        }
        insert_version(&mut tx, &doc, &update.author).await?;
        links::replace_outgoing(&mut tx, &doc).await?;
        tx.commit().await?;
        Ok(doc)
    }

    /// Moves a document to another folder; its id stays, its repository name becomes the
    /// first segment of the target.
    pub async fn move_document(&self, id: &str, target_path: &str) -> Result<Document, Error> {
        let target = check_path("target_path", target_path)?;
        let repo_name = first_segment(&target);
        let mut tx = self.db.begin().await?;
        tx.lock_links().await?;
        let before = load(&mut tx, id).await?.filter(|d| d.deleted_at.is_none());
        let Some(before) = before else {
            return Err(Error::not_found("document", id));
        };
        tx.execute(
            "UPDATE documents SET path = $1, repo_name = $2, repo_key = $3, updated_at = $4, \
             version = version + 1 WHERE id = $5",
            args![
                &target,
                repo_name.clone(),
                repo_name.as_deref().map(title_key),
                Timestamp::now(),
                id
            ],
        )
        .await?;
        let doc = load(&mut tx, id).await?.ok_or_else(|| Error::not_found("document", id))?;
        let mut keys = vec![title_key(&doc.title)];
        keys.extend(doc.repo_name.as_deref().map(title_key));
        keys.extend(before.repo_name.as_deref().map(title_key));
        links::repair(&mut tx, &keys).await?;
        tx.commit().await?;
        Ok(doc)
    }

    /// Replaces a document's keywords; no new version of its content is written.
    pub async fn set_keywords(&self, id: &str, keywords: Vec<String>) -> Result<Document, Error> {
        let keywords = check_keywords(keywords)?;
        self.update_active(
            id,
            "UPDATE documents SET keywords = $1, updated_at = $2, version = version + 1 \
             WHERE id = $3 AND deleted_at IS NULL",
            args![serde_json::json!(keywords), Timestamp::now(), id],
        )
        .await
    }

    /// Sets or clears (`None`) the repository URL. Links that break ties by repository
    /// are redrawn.
    pub async fn set_repo_url(&self, id: &str, repo_url: Option<&str>) -> Result<Document, Error> {
        let repo_url = check_repo_url(repo_url)?;
        self.update_relinked(
            id,
            "UPDATE documents SET repo_url = $1, updated_at = $2, version = version + 1 \
             WHERE id = $3 AND deleted_at IS NULL",
            args![repo_url, Timestamp::now(), id],
        )
        .await
    }

    async fn fetch_documents(&self, q: QueryBuilder) -> Result<Vec<Document>, Error> {
        let (sql, args) = q.finish();
        let rows: Vec<DocumentRow> = self.db.fetch_all(sql, args).await?;
        Ok(rows.into_iter().map(Document::from).collect())
    }

    async fn update_active(
        &self,
        id: &str,
        sql: &'static str,
        args: isocrates_db::Args,
    ) -> Result<Document, Error> {
        if self.db.execute(sql, args).await? == 0 {
            return Err(Error::not_found("document", id));
        }
        self.document(id).await?.ok_or_else(|| Error::not_found("document", id))
    }

    /// Moves a document to the trash; trashing a trashed document changes nothing.
    pub async fn trash_document(&self, id: &str) -> Result<(), Error> {
        let mut tx = self.db.begin().await?;
        tx.lock_links().await?;
        let Some(doc) = load(&mut tx, id).await? else {
            return Err(Error::not_found("document", id));
        };
        if doc.deleted_at.is_some() {
            return Ok(());
        }
        let now = Timestamp::now();
        tx.execute(
            "UPDATE documents SET deleted_at = $1, updated_at = $1, version = version + 1 WHERE id = $2",
            args![now, id],
        )
        .await?;
        links::repair(&mut tx, &doc_keys(&doc)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes a document out of the trash.
    pub async fn restore_document(&self, id: &str) -> Result<Document, Error> {
        self.update_relinked(
            id,
            "UPDATE documents SET deleted_at = NULL, updated_at = $1, version = version + 1 \
             WHERE id = $2",
            args![Timestamp::now(), id],
        )
        .await
    }

    /// Runs `sql`, which must change the row of document `id`, then redraws the document's
    /// links and those that may now resolve differently, in one transaction.
    async fn update_relinked(
        &self,
        id: &str,
        sql: &'static str,
        args: isocrates_db::Args,
    ) -> Result<Document, Error> {
        let mut tx = self.db.begin().await?;
        tx.lock_links().await?;
        if tx.execute(sql, args).await? == 0 {
            return Err(Error::not_found("document", id));
        }
        let doc = load(&mut tx, id).await?.ok_or_else(|| Error::not_found("document", id))?;
        links::replace_outgoing(&mut tx, &doc).await?;
        links::repair(&mut tx, &doc_keys(&doc)).await?;
        tx.commit().await?;
        Ok(doc)
    }

    /// Deletes a document, its versions and its edges for good.
    pub async fn purge_document(&self, id: &str) -> Result<(), Error> {
        if self.purge(id, None).await? { Ok(()) } else { Err(Error::not_found("document", id)) }
    }

    /// Purges `id`, when `trashed_before` is given only if it was trashed before then;
    /// returns whether it went.
    async fn purge(&self, id: &str, trashed_before: Option<&Timestamp>) -> Result<bool, Error> {
        let mut tx = self.db.begin().await?;
        tx.lock_links().await?;
        let Some(doc) = load(&mut tx, id).await? else {
            return Ok(false);
        };
        if let Some(cutoff) = trashed_before
            && doc.deleted_at.as_ref().is_none_or(|at| at >= cutoff)
        {
            return Ok(false);
        }
        // Children first, so both backends agree whatever their foreign-key settings.
        for sql in [
            "DELETE FROM versions WHERE doc_id = $1",
            "DELETE FROM wikilinks WHERE doc_id = $1",
            "DELETE FROM dependencies WHERE from_doc_id = $1 OR to_doc_id = $1",
            "DELETE FROM personal_refs WHERE document_id = $1",
            "DELETE FROM proposals WHERE doc_id = $1",
            "DELETE FROM embeddings WHERE doc_id = $1",
            "DELETE FROM documents WHERE id = $1",
        ] {
            tx.execute(sql, args![id]).await?;
        }
        links::repair(&mut tx, &doc_keys(&doc)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Purges every document trashed before `cutoff`, as the scheduled purge does after
    /// `TRASH_RETENTION_DAYS`; returns how many went. Each goes in its own transaction, so
    /// a failure leaves the rest for the next purge.
    pub async fn purge_trash(&self, cutoff: Timestamp) -> Result<u64, Error> {
        #[derive(sqlx::FromRow)]
        struct Trashed {
            id: String,
        }
        let old: Vec<Trashed> = self
            .db
            .fetch_all(
                "SELECT id FROM documents WHERE deleted_at IS NOT NULL AND deleted_at < $1 ORDER BY id",
                args![cutoff],
            )
            .await?;
        let mut purged = 0;
        for doc in old {
            // One restored or purged by someone else meanwhile is left alone.
            if self.purge(&doc.id, Some(&cutoff)).await? {
                purged += 1;
            }
        }
        Ok(purged)
    }

    /// Trashed documents in the scope, newest deletion first.
    pub async fn trashed_documents(
        &self,
        scope: &ReadScope,
        skip: i64,
        limit: i64,
    ) -> Result<Vec<Document>, Error> {
        let mut q = QueryBuilder::new("SELECT ");
        q.push(DOC_COLUMNS).push(" FROM documents WHERE deleted_at IS NOT NULL");
        scope.restrict(&mut q, "path");
        q.push(" ORDER BY deleted_at DESC, id LIMIT ").bind(limit).push(" OFFSET ").bind(skip);
        self.fetch_documents(q).await
    }

    /// Versions of a document, newest first.
    pub async fn versions(
        &self,
        doc_id: &str,
        skip: i64,
        limit: i64,
    ) -> Result<Vec<Version>, Error> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE doc_id = $1 \
             ORDER BY number DESC LIMIT $2 OFFSET $3"
        );
        let rows: Vec<VersionRow> = self.db.fetch_all(sql, args![doc_id, limit, skip]).await?;
        Ok(rows.into_iter().map(Version::from).collect())
    }

    /// One version of a document.
    pub async fn version(&self, doc_id: &str, version_id: &str) -> Result<Option<Version>, Error> {
        let sql =
            format!("SELECT {VERSION_COLUMNS} FROM versions WHERE doc_id = $1 AND version_id = $2");
        Ok(self
            .db
            .fetch_optional::<VersionRow>(sql, args![doc_id, version_id])
            .await?
            .map(Version::from))
    }
}

/// The wikilink keys a document answers to: its title and its repository name.
fn doc_keys(doc: &Document) -> Vec<String> {
    let mut keys = vec![title_key(&doc.title)];
    keys.extend(doc.repo_name.as_deref().map(title_key));
    keys
}

pub(crate) async fn load(tx: &mut Tx, id: &str) -> Result<Option<Document>, Error> {
    let sql = format!("SELECT {DOC_COLUMNS} FROM documents WHERE id = $1");
    Ok(tx.fetch_optional::<DocumentRow>(sql, args![id]).await?.map(Document::from))
}

async fn insert_version(tx: &mut Tx, doc: &Document, author: &Author) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO versions (version_id, doc_id, number, content, content_hash, author_type, \
         author_metadata, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            uuid::Uuid::now_v7().to_string(),
            &doc.id,
            doc.version,
            &doc.content,
            sha256_hex(&doc.content),
            author.author_type.as_str(),
            author.metadata.clone(),
            doc.updated_at
        ],
    )
    .await?;
    Ok(())
}
