//! The indexer: embeds the documents whose vector is missing or stale, in batches, for
//! `serve`'s background loop and for `POST /api/docs/reindex`.

use isocrates_providers::CallError;
use isocrates_providers::embed::Embedder;
use isocrates_storage::Storage;

/// Documents embedded per request to the embedding server.
pub const BATCH: i64 = 16;

/// Why indexing stopped.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The embedding server failed.
    #[error("the embedding server failed: {0}")]
    Model(#[from] CallError),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] isocrates_storage::Error),
}

/// Embeds pending documents until none is left or `max` were looked at; returns how many
/// were stored, and the failure that stopped it early, if one did. A document changed
/// while it was embedded is left pending for the next pass.
pub async fn index_pending(
    storage: &Storage,
    embedder: &Embedder,
    max: usize,
) -> (usize, Result<(), IndexError>) {
    let mut stored = 0;
    let outcome = index_into(storage, embedder, max, &mut stored).await;
    (stored, outcome)
}

async fn index_into(
    storage: &Storage,
    embedder: &Embedder,
    max: usize,
    stored: &mut usize,
) -> Result<(), IndexError> {
    let mut seen = 0;
    while seen < max {
        let batch = storage.pending_embeddings((max - seen).min(BATCH as usize) as i64).await?;
        if batch.is_empty() {
            break;
        }
        seen += batch.len();
        let texts: Vec<String> = batch.iter().map(|p| p.text.clone()).collect();
        let vectors: Vec<Option<Vec<f32>>> = match embedder.embed(&texts).await {
            Ok(vectors) => vectors.into_iter().map(Some).collect(),
            // The server refused the batch itself: one text it cannot take must not hold up
            // the others, so each is tried alone and a refused one is set aside.
            Err(CallError::Rejected { .. }) => {
                let mut one_by_one = Vec::with_capacity(batch.len());
                for pending in &batch {
                    match embedder.embed(std::slice::from_ref(&pending.text)).await {
                        Ok(mut v) => one_by_one.push(Some(v.remove(0))),
                        Err(CallError::Rejected { status, message }) => {
                            tracing::warn!(doc.id = %pending.id, status, %message, "the embedding server refuses this document; it is skipped until it changes");
                            storage.skip_embedding(&pending.id, pending.version).await?;
                            one_by_one.push(None);
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                one_by_one
            }
            Err(e) => return Err(e.into()),
        };
        let mut progress = false;
        for (pending, vector) in batch.iter().zip(vectors) {
            let Some(vector) = vector else {
                progress = true;
                continue;
            };
            if storage
                .store_embedding(&pending.id, pending.version, embedder.model(), &vector)
                .await?
            {
                *stored += 1;
                progress = true;
            }
        }
        if !progress {
            // Every document of the batch changed meanwhile: the next pass takes them.
            break;
        }
    }
    Ok(())
}
