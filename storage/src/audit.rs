//! The audit log: who did what to which target, kept for operators.

use serde_json::Value;

use crate::{Error, Storage, Timestamp};
use isocrates_db::args;

/// One entry to record.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    /// The user who acted, when known.
    pub actor_id: Option<String>,
    /// What happened, dotted: `auth.login`, `document.update`.
    pub action: &'static str,
    /// The id acted on.
    pub target: Option<String>,
    /// Anything else worth keeping; never a secret.
    pub details: Option<Value>,
    /// The request it came from.
    pub request_id: Option<String>,
}

/// A recorded entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRecord {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor_id: Option<String>,
    /// What.
    pub action: String,
    /// To what.
    pub target: Option<String>,
}

impl Storage {
    /// Appends an entry to the audit log.
    pub async fn audit(&self, entry: AuditEntry) -> Result<(), Error> {
        self.db
            .execute(
                "INSERT INTO audit_log (at, actor_id, action, target, details, request_id) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                args![
                    Timestamp::now(),
                    entry.actor_id,
                    entry.action,
                    entry.target,
                    entry.details,
                    entry.request_id
                ],
            )
            .await?;
        Ok(())
    }

    /// Deletes the entries older than `cutoff`; answers how many.
    pub async fn purge_audit(&self, cutoff: Timestamp) -> Result<u64, Error> {
        Ok(self.db.execute("DELETE FROM audit_log WHERE at < $1", args![cutoff]).await?)
    }

    /// The newest entries first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRecord>, Error> {
        Ok(self
            .db
            .fetch_all(
                "SELECT at, actor_id, action, target FROM audit_log ORDER BY id DESC LIMIT $1",
                args![limit],
            )
            .await?)
    }
}
