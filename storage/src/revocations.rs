//! Tokens ended before their expiry: signing out of the web page revokes the session's
//! token, so a copy of it stops working at once. A row is kept only until the token would
//! have expired anyway, then purged.

use isocrates_db::args;

use crate::{Error, Storage, Timestamp};

#[derive(sqlx::FromRow)]
struct Found {
    #[allow(dead_code)]
    token_id: String,
}

impl Storage {
    /// Revokes the token `token_id`, which expires at `expires_at`. Revoking twice is fine.
    pub async fn revoke_token(&self, token_id: &str, expires_at: Timestamp) -> Result<(), Error> {
        self.db
            .execute(
                "INSERT INTO revoked_tokens (token_id, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (token_id) DO NOTHING",
                args![token_id, expires_at],
            )
            .await?;
        Ok(())
    }

    /// Whether the token `token_id` was revoked.
    pub async fn token_revoked(&self, token_id: &str) -> Result<bool, Error> {
        let found: Option<Found> = self
            .db
            .fetch_optional(
                "SELECT token_id FROM revoked_tokens WHERE token_id = $1",
                args![token_id],
            )
            .await?;
        Ok(found.is_some())
    }

    /// Forgets the revocations of tokens that expired before `now`; answers how many.
    pub async fn purge_revoked_tokens(&self, now: Timestamp) -> Result<u64, Error> {
        Ok(self.db.execute("DELETE FROM revoked_tokens WHERE expires_at < $1", args![now]).await?)
    }
}
