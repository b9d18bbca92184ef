//! pgvector on PostgreSQL, when the server has it: vectors are kept a second time in a
//! `vector` column beside their bytes, and similar documents are ranked by the database
//! through an HNSW index, one per vector size, instead of reading every vector of the scope.
//!
//! Nothing depends on it. [`Storage::migrate`] enables it when the extension is installed
//! on the server and this database user may create it (or someone already did), adds the
//! column, copies the vectors already stored into it and builds the indexes; otherwise
//! similarity is computed by the store from the bytes, as on SQLite, and a line says why.
//! The bytes stay the record either way, so the column can be rebuilt from them at any time:
//! a trigger clears the column when a process without pgvector rewrites a vector, and the
//! next start copies it again.
//!
//! FIXME: the first enabling copies every stored vector and builds the index in one
//! transaction (50 s at 100,000 vectors, see BENCHMARKS.md), while similarity queries wait;
//! copying in batches committed apart and `CREATE INDEX CONCURRENTLY` would avoid the wait.

use std::sync::atomic::{AtomicU8, Ordering};

use isocrates_db::{Db, QueryBuilder, args};

use crate::documents::ReadScope;
use crate::embeddings::{Similar, best_first, from_bytes};
use crate::{Error, Storage};

/// Vectors longer than this are stored in the column but not indexed: pgvector's HNSW
/// index takes at most 2,000 dimensions of `vector`.
const MAX_INDEXED_DIMS: i64 = 2_000;

/// How many stored vectors are copied into the column per statement when it is new.
const BACKFILL_BATCH: i64 = 500;

/// Key of the advisory lock that keeps two processes from setting pgvector up at once.
const SETUP_LOCK: i64 = 0x1500_c7a7_e5e0;

/// Whether this process uses pgvector: not known yet (0, the default), on, or off.
#[derive(Debug, Default)]
pub(crate) struct VectorIndex(AtomicU8);

const ON: u8 = 1;
const OFF: u8 = 2;

impl VectorIndex {
    fn set(&self, on: bool) {
        self.0.store(if on { ON } else { OFF }, Ordering::Relaxed);
    }
}

/// The text form pgvector reads, `[0.5,-1,3]`, or `None` when a value is not finite
/// (pgvector refuses NaN and infinities; such a vector keeps only its bytes).
pub(crate) fn vector_literal(vector: &[f32]) -> Option<String> {
    if vector.is_empty() || !vector.iter().all(|v| v.is_finite()) {
        return None;
    }
    let parts: Vec<String> = vector.iter().map(f32::to_string).collect();
    Some(format!("[{}]", parts.join(",")))
}

#[derive(sqlx::FromRow)]
struct Flag {
    on: bool,
}

/// The oldest pgvector used: 0.8 brought the iterative index scans that keep a filtered
/// query from returning fewer rows than asked.
const OLDEST: (u32, u32) = (0, 8);

/// Whether pgvector `version` (`0.8.0`) is recent enough.
fn recent_enough(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= OLDEST
}

#[derive(sqlx::FromRow)]
struct Installed {
    version: String,
}

/// Whether the `embedding` column exists.
const HAS_COLUMN: &str = "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
     WHERE table_schema = current_schema() AND table_name = 'embeddings' \
     AND column_name = 'embedding') AS on";

/// The version of pgvector created in the database, if any.
const INSTALLED: &str = "SELECT extversion AS version FROM pg_extension WHERE extname = 'vector'";

impl Storage {
    /// Whether similar documents are ranked by pgvector in the database.
    pub async fn uses_pgvector(&self) -> Result<bool, Error> {
        match self.vector_index.0.load(Ordering::Relaxed) {
            ON => return Ok(true),
            OFF => return Ok(false),
            _ => {}
        }
        let on = match &self.db {
            Db::Sqlite(_) => false,
            Db::Postgres(_) => {
                let column: Option<Flag> = self.db.fetch_optional(HAS_COLUMN, args![]).await?;
                let installed: Option<Installed> =
                    self.db.fetch_optional(INSTALLED, args![]).await?;
                column.is_some_and(|f| f.on) && installed.is_some_and(|i| recent_enough(&i.version))
            }
        };
        self.vector_index.set(on);
        Ok(on)
    }

    /// Enables pgvector for this database when the server has it, as explained in the
    /// module documentation; answers whether it is in use. Never fails the start-up for
    /// it: a refusal is logged and the store works without.
    pub(crate) async fn set_up_pgvector(&self) -> Result<bool, Error> {
        if !matches!(self.db, Db::Postgres(_)) {
            self.vector_index.set(false);
            return Ok(false);
        }
        let available: Option<Flag> = self
            .db
            .fetch_optional(
                "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') \
                 AS on",
                args![],
            )
            .await?;
        if !available.is_some_and(|f| f.on) {
            tracing::info!(
                "pgvector is not installed on this PostgreSQL server: similar documents are \
                 ranked by IsoCrates itself, which is slower on large wikis"
            );
            self.vector_index.set(false);
            return Ok(false);
        }
        let on = match self.enable_pgvector().await {
            Ok(copied) => {
                tracing::info!(vectors.copied = copied, "similar documents are ranked by pgvector");
                true
            }
            Err(e @ Error::Config(_)) => {
                tracing::warn!(error = %e, "pgvector is not used: similar documents are ranked by IsoCrates itself");
                false
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "pgvector is installed but could not be enabled in this database: similar \
                     documents are ranked by IsoCrates itself; a superuser can run \
                     `CREATE EXTENSION vector;` in it, then restart IsoCrates"
                );
                false
            }
        };
        self.vector_index.set(on);
        Ok(on)
    }

    /// Creates the extension when missing, the column and the indexes, and copies the
    /// stored vectors into the column, all in one transaction under an advisory lock, so
    /// that processes starting together do it once and a refusal leaves nothing half done.
    /// Answers how many vectors were copied.
    async fn enable_pgvector(&self) -> Result<u64, Error> {
        let mut tx = self.db.begin().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", args![SETUP_LOCK]).await?;
        let mut installed: Option<Installed> = tx.fetch_optional(INSTALLED, args![]).await?;
        if installed.is_none() {
            tx.execute("CREATE EXTENSION IF NOT EXISTS vector", args![]).await?;
            installed = tx.fetch_optional(INSTALLED, args![]).await?;
        }
        let version = installed.map(|i| i.version).unwrap_or_default();
        if !recent_enough(&version) {
            return Err(Error::Config(format!(
                "pgvector {version} is older than {}.{}: install a later one on the server, \
                 then run `ALTER EXTENSION vector UPDATE;` in this database",
                OLDEST.0, OLDEST.1
            )));
        }
        // Checked first: ALTER TABLE locks the table even when it has nothing to do, and
        // every process start comes here.
        if !holds(&mut tx, HAS_COLUMN, args![]).await? {
            tx.execute("ALTER TABLE embeddings ADD COLUMN embedding vector", args![]).await?;
        }
        // A process without pgvector (an older one during an upgrade, say) rewrites a
        // vector without its column: the column is then cleared rather than left stale, and
        // the next start copies it again.
        // Made once, by whoever enables pgvector first (it may be another user than ours).
        let has_function = "SELECT EXISTS (SELECT 1 FROM pg_proc \
                            WHERE proname = 'isocrates_embedding_follows_vector') AS on";
        if !holds(&mut tx, has_function, args![]).await? {
            tx.execute(
                "CREATE FUNCTION isocrates_embedding_follows_vector() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.vector IS DISTINCT FROM OLD.vector \
                 AND NEW.embedding IS NOT DISTINCT FROM OLD.embedding THEN \
                 NEW.embedding := NULL; END IF; RETURN NEW; END $$",
                args![],
            )
            .await?;
        }
        let has_trigger = "SELECT EXISTS (SELECT 1 FROM pg_trigger \
                           WHERE tgname = 'embeddings_vector_changed') AS on";
        if !holds(&mut tx, has_trigger, args![]).await? {
            tx.execute(
                "CREATE TRIGGER embeddings_vector_changed BEFORE UPDATE ON embeddings \
                 FOR EACH ROW EXECUTE FUNCTION isocrates_embedding_follows_vector()",
                args![],
            )
            .await?;
        }

        #[derive(sqlx::FromRow)]
        struct Stored {
            doc_id: String,
            vector: Vec<u8>,
        }
        let mut copied = 0;
        let mut after = String::new();
        loop {
            let batch: Vec<Stored> = tx
                .fetch_all(
                    "SELECT doc_id, vector FROM embeddings WHERE embedding IS NULL \
                     AND doc_id > $1 ORDER BY doc_id LIMIT $2",
                    args![after.as_str(), BACKFILL_BATCH],
                )
                .await?;
            let Some(last) = batch.last() else { break };
            after = last.doc_id.clone();
            for row in &batch {
                if let Some(literal) = vector_literal(&from_bytes(&row.vector)) {
                    tx.execute(
                        "UPDATE embeddings SET embedding = $2::text::vector WHERE doc_id = $1",
                        args![row.doc_id.as_str(), literal],
                    )
                    .await?;
                    copied += 1;
                }
            }
        }

        #[derive(sqlx::FromRow)]
        struct Size {
            dims: i64,
        }
        let sizes: Vec<Size> = tx
            .fetch_all(
                "SELECT DISTINCT dims::BIGINT AS dims FROM embeddings WHERE embedding IS NOT NULL",
                args![],
            )
            .await?;
        let mut built = Vec::new();
        for size in sizes {
            if size.dims <= MAX_INDEXED_DIMS {
                if !index_exists(&mut tx, size.dims).await? {
                    tx.execute(index_statement(size.dims), args![]).await?;
                }
                built.push(size.dims);
            }
        }
        tx.commit().await?;
        self.indexed_sizes.lock().expect("the size set is never poisoned").extend(built);
        Ok(copied)
    }

    /// Builds the index for vectors of `dims` values when it does not exist yet: a new
    /// model brings a new size. A failure only costs speed, so it is logged, not returned.
    pub(crate) async fn ensure_vector_index(&self, dims: i64) {
        if dims > MAX_INDEXED_DIMS || dims <= 0 {
            return;
        }
        let known =
            self.indexed_sizes.lock().expect("the size set is never poisoned").contains(&dims);
        if known {
            return;
        }
        let built = async {
            let mut tx = self.db.begin().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", args![SETUP_LOCK]).await?;
            if !index_exists(&mut tx, dims).await? {
                tx.execute(index_statement(dims), args![]).await?;
            }
            tx.commit().await.map_err(Error::from)
        }
        .await;
        match built {
            Ok(()) => {
                self.indexed_sizes.lock().expect("the size set is never poisoned").insert(dims);
            }
            Err(e) => tracing::warn!(error = %e, dims, "could not build the vector index"),
        }
    }

    /// The `limit` documents in `scope` nearest `vector` by cosine distance, ranked by
    /// pgvector; `literal` is `vector` in pgvector's text form.
    pub(crate) async fn similar_by_pgvector(
        &self,
        literal: &str,
        dims: usize,
        model: &str,
        scope: &ReadScope,
        except: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Similar>, Error> {
        #[derive(sqlx::FromRow)]
        struct Near {
            id: String,
            title: String,
            path: String,
            description: Option<String>,
            distance: Option<f64>,
        }
        // The size and the limit are written into the statement (numbers, never user text):
        // the planner must see the size to match the partial index of that size, and the
        // limit to prefer the index to sorting every row.
        let dims = dims as i64;
        let mut q =
            QueryBuilder::new("SELECT d.id, d.title, d.path, d.description, (e.embedding::vector(");
        q.push_int(dims).push(") <=> ").bind(literal).push("::text::vector(");
        q.push_int(dims).push(
            ")) AS distance FROM embeddings e JOIN documents d ON d.id = e.doc_id WHERE e.dims = ",
        );
        q.push_int(dims).push(" AND e.embedding IS NOT NULL AND vector_dims(e.embedding) = ");
        q.push_int(dims).push(" AND e.model = ").bind(model);
        q.push(" AND d.deleted_at IS NULL AND d.id <> ").bind(except.unwrap_or(""));
        scope.restrict(&mut q, "d.path");
        q.push(" ORDER BY distance LIMIT ").push_int(limit as i64);
        let (sql, qargs) = q.finish();

        let mut tx = self.db.begin().await?;
        // Filters on the scope are applied to what the index returns: an iterative scan goes
        // on reading the index until `limit` rows pass them.
        tx.execute("SET LOCAL hnsw.iterative_scan = relaxed_order", args![]).await?;
        tx.execute(format!("SET LOCAL hnsw.ef_search = {}", limit.clamp(100, 1_000)), args![])
            .await?;
        let rows: Vec<Near> = tx.fetch_all(sql, qargs).await?;
        tx.commit().await?;
        let mut found: Vec<Similar> = rows
            .into_iter()
            .map(|r| Similar {
                // A zero vector has no direction: pgvector answers NaN, counted as unrelated.
                score: r.distance.map_or(0.0, |d| if d.is_nan() { 0.0 } else { (1.0 - d) as f32 }),
                id: r.id,
                title: r.title,
                path: r.path,
                description: r.description,
            })
            .collect();
        // A relaxed scan may return neighbours slightly out of order.
        best_first(&mut found);
        Ok(found)
    }
}

/// Whether the HNSW index of vectors of `dims` values exists. Asked first, since CREATE
/// INDEX IF NOT EXISTS still waits for the table's writers.
async fn index_exists(tx: &mut isocrates_db::Tx, dims: i64) -> Result<bool, Error> {
    let sql = "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() \
               AND indexname = $1) AS on";
    holds(tx, sql, args![format!("embeddings_hnsw_{dims}")]).await
}

/// The answer of `sql`, a `SELECT EXISTS (...) AS on` about the catalog.
async fn holds(
    tx: &mut isocrates_db::Tx,
    sql: &'static str,
    args: isocrates_db::Args,
) -> Result<bool, Error> {
    let found: Option<Flag> = tx.fetch_optional(sql, args).await?;
    Ok(found.is_some_and(|f| f.on))
}

/// The statement building the HNSW index of vectors of `dims` values.
fn index_statement(dims: i64) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS embeddings_hnsw_{dims} ON embeddings \
         USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WHERE dims = {dims}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_before_iterative_scans_are_too_old() {
        assert!(recent_enough("0.8.0"));
        assert!(recent_enough("0.10.1"));
        assert!(recent_enough("1.0"));
        assert!(!recent_enough("0.7.4"));
        assert!(!recent_enough("0.5.0"));
        assert!(!recent_enough(""));
    }

    #[test]
    fn literals_are_what_pgvector_reads() {
        assert_eq!(vector_literal(&[0.5, -1.0, 3.0e-8]).as_deref(), Some("[0.5,-1,0.00000003]"));
        assert_eq!(vector_literal(&[1.0, f32::NAN]), None);
        assert_eq!(vector_literal(&[f32::INFINITY]), None);
        assert_eq!(vector_literal(&[]), None);
    }
}
