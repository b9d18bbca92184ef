//! Proposals: AI text kept beside a page whose latest version a person wrote. The
//! documentation workflow never overwrites such a page; it proposes, and a person accepts
//! the proposal (which becomes the page's next version) or dismisses it. A new proposal
//! for a page supersedes the open one before it.

use serde_json::Value;
use sqlx::types::Json;

use crate::documents::{Author, AuthorType, ContentUpdate, Document};
use crate::{Error, Storage, Timestamp};
use isocrates_db::args;

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalStatus {
    /// Waiting for a person.
    Open,
    /// A person made it the page's content.
    Accepted,
    /// A person turned it down.
    Dismissed,
    /// A newer proposal for the page replaced it.
    Superseded,
}

impl ProposalStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalStatus::Open => "open",
            ProposalStatus::Accepted => "accepted",
            ProposalStatus::Dismissed => "dismissed",
            ProposalStatus::Superseded => "superseded",
        }
    }

    fn parse(name: &str) -> ProposalStatus {
        match name {
            "accepted" => ProposalStatus::Accepted,
            "dismissed" => ProposalStatus::Dismissed,
            "superseded" => ProposalStatus::Superseded,
            _ => ProposalStatus::Open,
        }
    }
}

/// One proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// Its id.
    pub id: String,
    /// The page it is for.
    pub doc_id: String,
    /// The proposed markdown.
    pub content: String,
    /// The proposed description.
    pub description: Option<String>,
    /// Its provenance, as an AI version carries it.
    pub author_metadata: Option<Value>,
    /// Where it stands.
    pub status: ProposalStatus,
    /// When it was made.
    pub created_at: Timestamp,
    /// When a person decided on it.
    pub decided_at: Option<Timestamp>,
    /// Who decided.
    pub decided_by: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ProposalRow {
    id: String,
    doc_id: String,
    content: String,
    description: Option<String>,
    author_metadata: Option<Json<Value>>,
    status: String,
    created_at: Timestamp,
    decided_at: Option<Timestamp>,
    decided_by: Option<String>,
}

impl From<ProposalRow> for Proposal {
    fn from(r: ProposalRow) -> Proposal {
        Proposal {
            id: r.id,
            doc_id: r.doc_id,
            content: r.content,
            description: r.description,
            author_metadata: r.author_metadata.map(|j| j.0),
            status: ProposalStatus::parse(&r.status),
            created_at: r.created_at,
            decided_at: r.decided_at,
            decided_by: r.decided_by,
        }
    }
}

const COLUMNS: &str =
    "id, doc_id, content, description, author_metadata, status, created_at, decided_at, decided_by";

impl Storage {
    /// Keeps `content` beside the page `doc_id` for a person to accept or dismiss; an open
    /// proposal before it is superseded.
    pub async fn propose(
        &self,
        doc_id: &str,
        content: &str,
        description: Option<&str>,
        metadata: Option<Value>,
    ) -> Result<Proposal, Error> {
        #[derive(sqlx::FromRow)]
        struct Id {
            #[allow(dead_code)]
            id: String,
        }
        let mut tx = self.db.begin().await?;
        let document: Option<Id> =
            tx.fetch_optional("SELECT id FROM documents WHERE id = $1", args![doc_id]).await?;
        if document.is_none() {
            return Err(Error::not_found("document", doc_id));
        }
        tx.execute(
            "UPDATE proposals SET status = 'superseded' WHERE doc_id = $1 AND status = 'open'",
            args![doc_id],
        )
        .await?;
        let id = uuid::Uuid::now_v7().to_string();
        tx.execute(
            "INSERT INTO proposals (id, doc_id, content, description, author_metadata, status, \
             created_at) VALUES ($1, $2, $3, $4, $5, 'open', $6)",
            args![
                &id,
                doc_id,
                content,
                description.map(str::to_string),
                metadata,
                Timestamp::now()
            ],
        )
        .await?;
        tx.commit().await?;
        self.proposal(doc_id, &id).await?.ok_or_else(|| Error::not_found("proposal", id))
    }

    /// The proposals of a page, newest first.
    pub async fn proposals(&self, doc_id: &str) -> Result<Vec<Proposal>, Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM proposals WHERE doc_id = $1 ORDER BY created_at DESC, id DESC"
        );
        let rows: Vec<ProposalRow> = self.db.fetch_all(sql, args![doc_id]).await?;
        Ok(rows.into_iter().map(Proposal::from).collect())
    }

    /// One proposal of a page.
    pub async fn proposal(&self, doc_id: &str, id: &str) -> Result<Option<Proposal>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM proposals WHERE doc_id = $1 AND id = $2");
        Ok(self.db.fetch_optional::<ProposalRow>(sql, args![doc_id, id]).await?.map(Proposal::from))
    }

    /// Makes an open proposal the page's next version (an AI version, with the proposal's
    /// provenance and who accepted it), and marks it accepted.
    pub async fn accept_proposal(
        &self,
        doc_id: &str,
        id: &str,
        user_id: &str,
    ) -> Result<(Document, Proposal), Error> {
        let proposal = self.open_proposal(doc_id, id).await?;
        let mut metadata =
            proposal.author_metadata.clone().unwrap_or_else(|| serde_json::json!({}));
        if let Some(fields) = metadata.as_object_mut() {
            fields.insert("accepted_by".into(), Value::String(user_id.to_string()));
            fields.insert("proposal_id".into(), Value::String(id.to_string()));
        }
        let doc = self
            .update_content(
                doc_id,
                ContentUpdate {
                    content: proposal.content.clone(),
                    description: proposal.description.clone(),
                    author: Author { author_type: AuthorType::Ai, metadata: Some(metadata) },
                    expected_version: None,
                },
            )
            .await?;
        let decided = self.decide(doc_id, id, ProposalStatus::Accepted, user_id).await?;
        Ok((doc, decided))
    }

    /// Turns an open proposal down.
    pub async fn dismiss_proposal(
        &self,
        doc_id: &str,
        id: &str,
        user_id: &str,
    ) -> Result<Proposal, Error> {
        self.open_proposal(doc_id, id).await?;
        self.decide(doc_id, id, ProposalStatus::Dismissed, user_id).await
    }

    async fn open_proposal(&self, doc_id: &str, id: &str) -> Result<Proposal, Error> {
        let proposal =
            self.proposal(doc_id, id).await?.ok_or_else(|| Error::not_found("proposal", id))?;
        if proposal.status != ProposalStatus::Open {
            return Err(Error::Conflict(format!(
                "proposal {id} is {}, not open: only an open proposal can be decided",
                proposal.status.as_str()
            )));
        }
        Ok(proposal)
    }

    async fn decide(
        &self,
        doc_id: &str,
        id: &str,
        status: ProposalStatus,
        user_id: &str,
    ) -> Result<Proposal, Error> {
        let decided = self
            .db
            .execute(
                "UPDATE proposals SET status = $1, decided_at = $2, decided_by = $3 \
                 WHERE doc_id = $4 AND id = $5 AND status = 'open'",
                args![status.as_str(), Timestamp::now(), user_id, doc_id, id],
            )
            .await?;
        if decided == 0 {
            return Err(Error::Conflict(format!(
                "proposal {id} was decided or superseded meanwhile: reload the page's proposals"
            )));
        }
        self.proposal(doc_id, id).await?.ok_or_else(|| Error::not_found("proposal", id))
    }
}
