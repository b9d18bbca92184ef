//! The IsoCrates document store: documents and their versions, the wikilink graph, users and
//! their grants, over SQLite or PostgreSQL chosen by the database URL.
//!
//! [`Storage`] is the handle every other crate holds. Each concern lives in its own module:
//! [`users`] (accounts and grants), [`documents`] (documents and versions), [`links`]
//! (wikilinks and dependencies), [`permission`] (the rule that decides access) and [`ids`]
//! (the derived ids and the normalisation behind them) and [`search`] (full-text search).

pub mod audit;
pub mod deliveries;
pub mod documents;
pub mod embeddings;
pub mod folders;
pub mod ids;
pub mod links;
pub mod permission;
pub mod personal;
mod pgvector;
pub mod proposals;
pub mod repositories;
pub mod revocations;
pub mod search;
pub mod users;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

pub use isocrates_db::{Backend, Db, Timestamp};
pub use permission::{Action, Grant, Role, check_permission};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The thing asked for does not exist (or is in the trash where that matters).
    #[error("{what} not found: {id}")]
    NotFound {
        /// What kind of thing: `document`, `user`, `version`.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// A rule of the store was broken; `field` names the offending input.
    #[error("{message}")]
    Validation {
        /// The input field at fault.
        field: String,
        /// A sentence for the caller.
        message: String,
    },
    /// An optimistic-lock mismatch or a uniqueness clash.
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this (registration is closed to non-admins once a user exists).
    #[error("{0}")]
    Forbidden(String),
    /// A manual dependency would point a document at itself.
    #[error("a document cannot depend on itself")]
    SelfDependency,
    /// A manual dependency would close a cycle.
    #[error("the dependency would create a cycle")]
    CircularDependency,
    /// The database URL or another setting is unusable.
    #[error("{0}")]
    Config(String),
    /// The database cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<isocrates_db::Error> for Error {
    fn from(e: isocrates_db::Error) -> Error {
        match e {
            isocrates_db::Error::Config(m) => Error::Config(m),
            isocrates_db::Error::Unavailable(m) => Error::Unavailable(m),
            isocrates_db::Error::Database(e) => Error::Database(e),
        }
    }
}

impl Error {
    pub(crate) fn not_found(what: &'static str, id: impl Into<String>) -> Error {
        Error::NotFound { what, id: id.into() }
    }

    pub(crate) fn validation(field: &str, message: impl Into<String>) -> Error {
        Error::Validation { field: field.to_string(), message: message.into() }
    }

    /// The name of the unique constraint this error violated, when it is one. Both backends
    /// report it differently; callers match on the constraint, never on message text.
    pub(crate) fn unique_violation(&self) -> Option<String> {
        let Error::Database(sqlx::Error::Database(db)) = self else {
            return None;
        };
        if !db.is_unique_violation() {
            return None;
        }
        // PostgreSQL names the constraint; SQLite names the columns in its message.
        Some(db.constraint().map(str::to_string).unwrap_or_else(|| db.message().to_string()))
    }
}

/// The handle on the store, cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    db: Db,
    /// Whether pgvector ranks similar documents (see the `pgvector` module).
    vector_index: Arc<pgvector::VectorIndex>,
    /// The vector sizes whose pgvector index is known to exist.
    indexed_sizes: Arc<Mutex<HashSet<i64>>>,
}

impl Storage {
    /// Connects to `url` (`sqlite://file.db`, created if missing, or `postgres://...`).
    /// Migrations are not applied; call [`Storage::migrate`].
    pub async fn connect(url: &str) -> Result<Storage, Error> {
        Ok(Storage {
            db: Db::connect(url).await?,
            vector_index: Arc::default(),
            indexed_sizes: Arc::default(),
        })
    }

    /// Connects to `url` and applies every pending migration.
    pub async fn open(url: &str) -> Result<Storage, Error> {
        let storage = Storage::connect(url).await?;
        storage.migrate().await?;
        Ok(storage)
    }

    /// The database itself, for the components that keep their own tables in it (the
    /// workflow engine).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Applies the embedded migrations of this backend, logging one line per migration
    /// applied. Other components (apalis) share SQLite's `_sqlx_migrations` table, so
    /// migrations recorded there but unknown here are ignored.
    pub async fn migrate(&self) -> Result<Vec<i64>, Error> {
        let mut migrator = match self.db {
            Db::Sqlite(_) => sqlx::migrate!("../migrations/sqlite"),
            Db::Postgres(_) => sqlx::migrate!("../migrations/postgres"),
        };
        migrator.set_ignore_missing(true);

        let before = self.applied_migrations().await?;
        match &self.db {
            Db::Sqlite(pool) => migrator.run(pool).await?,
            Db::Postgres(pool) => migrator.run(pool).await?,
        }
        let mut applied = Vec::new();
        for migration in migrator.iter().filter(|m| !before.contains(&m.version)) {
            tracing::info!(
                migration.version = migration.version,
                migration.description = %migration.description,
                "applied migration"
            );
            applied.push(migration.version);
        }
        if applied.is_empty() {
            tracing::info!(db.backend = self.backend().name(), "database schema is up to date");
        }
        self.set_up_pgvector().await?;
        Ok(applied)
    }

    async fn applied_migrations(&self) -> Result<HashSet<i64>, Error> {
        #[derive(sqlx::FromRow)]
        struct Applied {
            version: i64,
        }
        let exists: Option<Applied> = match self.db {
            Db::Sqlite(_) => {
                self.db
                    .fetch_optional(
                        "SELECT 1 AS version FROM sqlite_master \
                         WHERE type = 'table' AND name = '_sqlx_migrations'",
                        vec![],
                    )
                    .await?
            }
            Db::Postgres(_) => {
                self.db
                    .fetch_optional(
                        "SELECT 1::BIGINT AS version FROM information_schema.tables \
                         WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
                        vec![],
                    )
                    .await?
            }
        };
        if exists.is_none() {
            return Ok(HashSet::new());
        }
        let rows: Vec<Applied> =
            self.db.fetch_all("SELECT version FROM _sqlx_migrations", vec![]).await?;
        Ok(rows.into_iter().map(|r| r.version).collect())
    }

    /// Checks that the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), Error> {
        #[derive(sqlx::FromRow)]
        struct One {
            one: i64,
        }
        let row: Option<One> =
            self.db.fetch_optional("SELECT CAST(1 AS BIGINT) AS one", vec![]).await?;
        match row {
            Some(One { one: 1 }) => Ok(()),
            _ => Err(Error::Unavailable("the database answered an unexpected row".to_string())),
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.db.close().await;
    }
}
