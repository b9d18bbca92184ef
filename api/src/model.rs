//! The JSON shapes of the contract, built from the store's types.

use isocrates_storage::Timestamp;
use isocrates_storage::documents::{Document, PREVIEW_CHARS, Version};
use isocrates_storage::links::Dependency;
use isocrates_storage::users::User;
use serde::Serialize;
use serde_json::Value;

/// A grant as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GrantOut {
    /// The prefix.
    pub path_prefix: String,
    /// The role.
    pub role: &'static str,
}

/// `User` of the contract.
#[derive(Debug, Clone, Serialize)]
pub struct UserOut {
    /// Id.
    pub user_id: String,
    /// Shown name.
    pub display_name: String,
    /// Email.
    pub email: String,
    /// Global role.
    pub role: &'static str,
    /// Active or deactivated.
    pub is_active: bool,
    /// Grants.
    pub grants: Vec<GrantOut>,
}

impl From<&User> for UserOut {
    fn from(u: &User) -> UserOut {
        UserOut {
            user_id: u.id.clone(),
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            role: u.role.as_str(),
            is_active: u.is_active,
            grants: u
                .grants
                .iter()
                .map(|g| GrantOut { path_prefix: g.path_prefix.clone(), role: g.role.as_str() })
                .collect(),
        }
    }
}

/// `Document` of the contract: a [`DocumentListItem`] with its content, repository URL and
/// creation time.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentOut {
    /// The fields lists show.
    #[serde(flatten)]
    pub item: DocumentListItem,
    /// Repository URL.
    pub repo_url: Option<String>,
    /// Markdown.
    pub content: String,
    /// Created.
    pub created_at: Timestamp,
}

impl From<Document> for DocumentOut {
    fn from(mut d: Document) -> DocumentOut {
        let content = std::mem::take(&mut d.content);
        let repo_url = d.repo_url.take();
        let created_at = d.created_at;
        let mut item = DocumentListItem::from(d);
        item.content_preview = content.chars().take(PREVIEW_CHARS).collect();
        DocumentOut { item, repo_url, content, created_at }
    }
}

/// `DocumentListItem`: a document without `content`, `repo_url` and `created_at`.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentListItem {
    /// Id.
    pub id: String,
    /// Repository name.
    pub repo_name: Option<String>,
    /// Folder.
    pub path: String,
    /// Title.
    pub title: String,
    /// Kind of page.
    pub doc_type: String,
    /// Keywords.
    pub keywords: Vec<String>,
    /// Description.
    pub description: Option<String>,
    /// First 500 characters of the content.
    pub content_preview: String,
    /// Last changed.
    pub updated_at: Timestamp,
    /// Versions written.
    pub generation_count: i64,
    /// Optimistic-lock counter.
    pub version: i64,
    /// When trashed.
    pub deleted_at: Option<Timestamp>,
    /// Whether search indexed it.
    pub is_indexed: bool,
}

impl From<Document> for DocumentListItem {
    fn from(d: Document) -> DocumentListItem {
        DocumentListItem {
            content_preview: d.content_preview(),
            id: d.id,
            repo_name: d.repo_name,
            path: d.path,
            title: d.title,
            doc_type: d.doc_type,
            keywords: d.keywords,
            description: d.description,
            updated_at: d.updated_at,
            generation_count: d.generation_count,
            version: d.version,
            deleted_at: d.deleted_at,
            is_indexed: d.is_indexed,
        }
    }
}

/// `Version` of the contract.
#[derive(Debug, Clone, Serialize)]
pub struct VersionOut {
    /// Id.
    pub version_id: String,
    /// Document.
    pub doc_id: String,
    /// Content.
    pub content: String,
    /// SHA-256 of the content.
    pub content_hash: String,
    /// `ai`, `human` or `system`.
    pub author_type: String,
    /// Provenance.
    pub author_metadata: Option<Value>,
    /// Written.
    pub created_at: Timestamp,
}

impl From<Version> for VersionOut {
    fn from(v: Version) -> VersionOut {
        VersionOut {
            version_id: v.version_id,
            doc_id: v.doc_id,
            content: v.content,
            content_hash: v.content_hash,
            author_type: v.author_type,
            author_metadata: v.author_metadata,
            created_at: v.created_at,
        }
    }
}

/// `Dependency` of the contract.
#[derive(Debug, Clone, Serialize)]
pub struct DependencyOut {
    /// Id.
    pub id: String,
    /// From.
    pub from_doc_id: String,
    /// To.
    pub to_doc_id: String,
    /// Type.
    pub link_type: String,
    /// Shown text.
    pub link_text: Option<String>,
    /// Section.
    pub section: Option<String>,
    /// Drawn.
    pub created_at: Timestamp,
}

impl From<Dependency> for DependencyOut {
    fn from(d: Dependency) -> DependencyOut {
        DependencyOut {
            id: d.id,
            from_doc_id: d.from_doc_id,
            to_doc_id: d.to_doc_id,
            link_type: d.link_type,
            link_text: d.link_text,
            section: d.section,
            created_at: d.created_at,
        }
    }
}
