//! Embeddings of documents, for finding similar ones: one vector per document, made by
//! the configured model at a known version. A document whose content changes is marked
//! not indexed (`is_indexed`), and the indexer embeds it again; a vector is stored only
//! if the document is still at the version it was made from.
//!
//! Vectors are stored as bytes on both backends. On PostgreSQL with pgvector they are also
//! kept in a `vector` column and ranked there through an HNSW index (the `pgvector`
//! module); elsewhere similarity is computed here, over the vectors in the caller's read
//! scope, which is fine for thousands of documents and slower beyond (see BENCHMARKS.md).

use crate::documents::ReadScope;
use crate::{Error, Storage, Timestamp};
use isocrates_db::{Arg, QueryBuilder, args};

/// The most characters of a document embedded.
const MAX_TEXT: usize = 8_000;

/// A document waiting for its embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its id.
    pub id: String,
    /// The version the text is of.
    pub version: i64,
    /// Its title, description and content, cut to a size a model takes.
    pub text: String,
}

/// A document found alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Similar {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its folder.
    pub path: String,
    /// Its description.
    pub description: Option<String>,
    /// Cosine similarity, from -1 to 1.
    pub score: f32,
}

#[derive(sqlx::FromRow)]
struct PendingRow {
    id: String,
    version: i64,
    title: String,
    description: Option<String>,
    content: String,
}

#[derive(sqlx::FromRow)]
struct VectorRow {
    id: String,
    title: String,
    path: String,
    description: Option<String>,
    vector: Vec<u8>,
}

/// What is embedded of a document: its title, description and content, cut to a size a
/// model takes. Stored vectors and on-the-spot ones are made of the same text.
pub fn embedding_text(title: &str, description: Option<&str>, content: &str) -> String {
    let mut text = title.to_string();
    if let Some(d) = description.filter(|d| !d.is_empty()) {
        text.push_str("\n\n");
        text.push_str(d);
    }
    text.push_str("\n\n");
    text.push_str(content);
    text.chars().take(MAX_TEXT).collect()
}

fn to_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|f| f.to_le_bytes()).collect()
}

pub(crate) fn from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Sorts by score, best first, ties by id, so that every way of ranking answers alike.
pub(crate) fn best_first(found: &mut [Similar]) {
    found.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na.sqrt() * nb.sqrt()) }
}

impl Storage {
    /// Up to `limit` active documents not yet embedded at their current version.
    pub async fn pending_embeddings(&self, limit: i64) -> Result<Vec<Pending>, Error> {
        let rows: Vec<PendingRow> = self
            .db
            .fetch_all(
                "SELECT id, version, title, description, content FROM documents \
                 WHERE deleted_at IS NULL AND is_indexed = FALSE ORDER BY updated_at, id LIMIT $1",
                args![limit],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Pending {
                text: embedding_text(&r.title, r.description.as_deref(), &r.content),
                id: r.id,
                version: r.version,
            })
            .collect())
    }

    /// Stores `vector` of document `id` at `version` made by `model`, and marks it indexed
    /// when it is still at that version; returns whether it was.
    pub async fn store_embedding(
        &self,
        id: &str,
        version: i64,
        model: &str,
        vector: &[f32],
    ) -> Result<bool, Error> {
        let mut tx = self.db.begin().await?;
        let current = tx
            .execute(
                "UPDATE documents SET is_indexed = TRUE WHERE id = $1 AND version = $2 \
                 AND deleted_at IS NULL",
                args![id, version],
            )
            .await?;
        if current == 0 {
            return Ok(false);
        }
        let mut row = args![
            id,
            model,
            vector.len() as i64,
            Arg::Bytes(to_bytes(vector)),
            version,
            Timestamp::now()
        ];
        let pgvector = self.uses_pgvector().await?;
        if pgvector {
            // A vector pgvector cannot read keeps only its bytes (and the column NULL).
            row.push(Arg::Text(crate::pgvector::vector_literal(vector)));
            tx.execute(
                "INSERT INTO embeddings (doc_id, model, dims, vector, version, updated_at, \
                 embedding) VALUES ($1, $2, $3, $4, $5, $6, $7::text::vector) \
                 ON CONFLICT (doc_id) DO UPDATE SET model = excluded.model, \
                 dims = excluded.dims, vector = excluded.vector, version = excluded.version, \
                 updated_at = excluded.updated_at, embedding = excluded.embedding",
                row,
            )
            .await?;
        } else {
            tx.execute(
                "INSERT INTO embeddings (doc_id, model, dims, vector, version, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (doc_id) DO UPDATE SET \
                 model = excluded.model, dims = excluded.dims, vector = excluded.vector, \
                 version = excluded.version, updated_at = excluded.updated_at",
                row,
            )
            .await?;
        }
        tx.commit().await?;
        if pgvector {
            self.ensure_vector_index(vector.len() as i64).await;
        }
        Ok(true)
    }

    /// Sets aside document `id` at `version`, which the embedding server refuses: it is
    /// marked indexed without a vector, so the indexer tries it again only once it changes.
    pub async fn skip_embedding(&self, id: &str, version: i64) -> Result<(), Error> {
        self.db
            .execute(
                "UPDATE documents SET is_indexed = TRUE WHERE id = $1 AND version = $2",
                args![id, version],
            )
            .await?;
        Ok(())
    }

    /// Marks every active document not indexed, so the indexer embeds all again (after
    /// the model changed, say); returns how many.
    pub async fn unindex_all(&self) -> Result<u64, Error> {
        Ok(self
            .db
            .execute("UPDATE documents SET is_indexed = FALSE WHERE deleted_at IS NULL", args![])
            .await?)
    }

    /// The vector of document `id` by `model`, when it has one.
    pub async fn embedding(&self, id: &str, model: &str) -> Result<Option<Vec<f32>>, Error> {
        #[derive(sqlx::FromRow)]
        struct Row {
            vector: Vec<u8>,
        }
        let row: Option<Row> = self
            .db
            .fetch_optional(
                "SELECT vector FROM embeddings WHERE doc_id = $1 AND model = $2",
                args![id, model],
            )
            .await?;
        Ok(row.map(|r| from_bytes(&r.vector)))
    }

    /// The `limit` active documents in `scope` most like `vector` by `model`, best first,
    /// leaving out `except`.
    pub async fn similar(
        &self,
        vector: &[f32],
        model: &str,
        scope: &ReadScope,
        except: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Similar>, Error> {
        if self.uses_pgvector().await?
            && let Some(literal) = crate::pgvector::vector_literal(vector)
        {
            return self
                .similar_by_pgvector(&literal, vector.len(), model, scope, except, limit)
                .await;
        }
        // Vectors of another size come from another model: they are not compared.
        let mut q = QueryBuilder::new(
            "SELECT d.id, d.title, d.path, d.description, e.vector FROM embeddings e \
             JOIN documents d ON d.id = e.doc_id WHERE d.deleted_at IS NULL AND e.dims = ",
        );
        q.bind(vector.len() as i64).push(" AND e.model = ").bind(model);
        scope.restrict(&mut q, "d.path");
        let (sql, qargs) = q.finish();
        let rows: Vec<VectorRow> = self.db.fetch_all(sql, qargs).await?;
        let mut found: Vec<Similar> = rows
            .into_iter()
            .filter(|r| Some(r.id.as_str()) != except)
            .map(|r| Similar {
                score: cosine(vector, &from_bytes(&r.vector)),
                id: r.id,
                title: r.title,
                path: r.path,
                description: r.description,
            })
            .collect();
        best_first(&mut found);
        found.truncate(limit);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_survive_their_bytes() {
        let v = vec![0.5, -1.25, 3.0e-8, f32::MAX];
        assert_eq!(from_bytes(&to_bytes(&v)), v);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-6);
    }
}
