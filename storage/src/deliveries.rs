//! Webhook deliveries: the job each delivery started, so that a delivery the sender
//! repeats (GitHub redelivers on a timeout, or an operator presses "Redeliver") returns the
//! job it started instead of starting another.

use crate::{Error, Storage, Timestamp};
use isocrates_db::args;

#[derive(sqlx::FromRow)]
struct RunId {
    run_id: String,
}

impl Storage {
    /// The job a delivery started, if it was seen before.
    pub async fn delivery_run(&self, delivery_id: &str) -> Result<Option<String>, Error> {
        let row: Option<RunId> = self
            .db
            .fetch_optional(
                "SELECT run_id FROM webhook_deliveries WHERE delivery_id = $1",
                args![delivery_id],
            )
            .await?;
        Ok(row.map(|r| r.run_id))
    }

    /// Records the job a delivery started; when two copies of one delivery race, the first
    /// recorded wins and is returned.
    pub async fn record_delivery(&self, delivery_id: &str, run_id: &str) -> Result<String, Error> {
        self.db
            .execute(
                "INSERT INTO webhook_deliveries (delivery_id, run_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (delivery_id) DO NOTHING",
                args![delivery_id, run_id, Timestamp::now()],
            )
            .await?;
        Ok(self.delivery_run(delivery_id).await?.unwrap_or_else(|| run_id.to_string()))
    }
}
