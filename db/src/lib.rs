//! One connection pool over SQLite or PostgreSQL, and the few query primitives that the
//! document store and the workflow engine use, so that every SQL statement is written once
//! and runs on both backends.
//!
//! Statements use `$1`, `$2`, ... placeholders, which both SQLite and PostgreSQL accept.
//! Values travel as [`Arg`]s, bound per backend; rows decode through `sqlx::FromRow`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, FromRow, Postgres, Sqlite, Transaction};

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database URL is unusable.
    #[error("{0}")]
    Config(String),
    /// The database cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file in WAL mode.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The name `/health` reports: `sqlite` or `postgresql`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }
}

/// A pool of connections to one of the two supported databases.
#[derive(Clone)]
pub enum Db {
    /// SQLite pool.
    Sqlite(SqlitePool),
    /// PostgreSQL pool.
    Postgres(PgPool),
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Db({})", self.backend().name())
    }
}

/// Runs `sql` with `args` on the backend `$target` holds, each arm naming its executor (a
/// pool or an open transaction). `execute` answers the rows touched; `rows fetch_all` and
/// `rows fetch_optional` decode rows. The one place the two backends' query types meet.
macro_rules! run_query {
    (execute, $target:expr, $sql:expr, $args:expr, $sp:pat => $se:expr, $pp:pat => $pe:expr) => {{
        let sql: Sql = $sql.into();
        match $target {
            $sp => bind_sqlite(sqlx::query(sql.safe()), $args).execute($se).await?.rows_affected(),
            $pp => bind_pg(sqlx::query(sql.safe()), $args).execute($pe).await?.rows_affected(),
        }
    }};
    (rows $finish:ident, $target:expr, $sql:expr, $args:expr, $sp:pat => $se:expr, $pp:pat => $pe:expr) => {{
        let sql: Sql = $sql.into();
        match $target {
            $sp => bind_sqlite_as(sqlx::query_as(sql.safe()), $args).$finish($se).await?,
            $pp => bind_pg_as(sqlx::query_as(sql.safe()), $args).$finish($pe).await?,
        }
    }};
}

/// How long a writer waits for SQLite's lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Db {
    /// Opens a pool for `url`: `sqlite://path` (created if missing) or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Db, Error> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| Error::Config(format!("DATABASE_URL is not a valid SQLite URL: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await
                .map_err(|e| Error::Unavailable(format!("cannot open {url}: {e}")))?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(|e| Error::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
            Ok(Db::Postgres(pool))
        } else {
            Err(Error::Config("DATABASE_URL must start with sqlite:// or postgres://".to_string()))
        }
    }

    /// The backend behind this pool.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Starts a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`):
    /// every transaction here writes, and a deferred one that upgrades later can fail with
    /// "database is locked" without waiting for the busy timeout.
    pub async fn begin(&self) -> Result<Tx, Error> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Runs a statement and returns the number of rows it touched.
    pub async fn execute(&self, sql: impl Into<Sql>, args: Args) -> Result<u64, Error> {
        Ok(
            run_query!(execute, self, sql, args, Db::Sqlite(pool) => pool, Db::Postgres(pool) => pool),
        )
    }

    /// Runs a query and decodes every row.
    pub async fn fetch_all<T: Row>(
        &self,
        sql: impl Into<Sql>,
        args: Args,
    ) -> Result<Vec<T>, Error> {
        Ok(
            run_query!(rows fetch_all, self, sql, args, Db::Sqlite(pool) => pool, Db::Postgres(pool) => pool),
        )
    }

    /// Runs a query and decodes its first row, if any.
    pub async fn fetch_optional<T: Row>(
        &self,
        sql: impl Into<Sql>,
        args: Args,
    ) -> Result<Option<T>, Error> {
        Ok(
            run_query!(rows fetch_optional, self, sql, args, Db::Sqlite(pool) => pool, Db::Postgres(pool) => pool),
        )
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// An open transaction on either backend.
pub enum Tx {
    /// On SQLite.
    Sqlite(Transaction<'static, Sqlite>),
    /// On PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    /// Runs a statement and returns the number of rows it touched.
    pub async fn execute(&mut self, sql: impl Into<Sql>, args: Args) -> Result<u64, Error> {
        Ok(
            run_query!(execute, self, sql, args, Tx::Sqlite(tx) => &mut **tx, Tx::Postgres(tx) => &mut **tx),
        )
    }

    /// Runs a query and decodes every row.
    pub async fn fetch_all<T: Row>(
        &mut self,
        sql: impl Into<Sql>,
        args: Args,
    ) -> Result<Vec<T>, Error> {
        Ok(
            run_query!(rows fetch_all, self, sql, args, Tx::Sqlite(tx) => &mut **tx, Tx::Postgres(tx) => &mut **tx),
        )
    }

    /// Runs a query and decodes its first row, if any.
    pub async fn fetch_optional<T: Row>(
        &mut self,
        sql: impl Into<Sql>,
        args: Args,
    ) -> Result<Option<T>, Error> {
        Ok(
            run_query!(rows fetch_optional, self, sql, args, Tx::Sqlite(tx) => &mut **tx, Tx::Postgres(tx) => &mut **tx),
        )
    }

    /// Serialises the transactions that redraw wikilink edges. SQLite's `BEGIN IMMEDIATE`
    /// already admits one writer at a time; on PostgreSQL two saves that repair each other's
    /// links would otherwise lock edges in opposite orders (a deadlock) or interleave their
    /// redraws, and two manual edges could close a cycle between them.
    pub async fn lock_links(&mut self) -> Result<(), Error> {
        self.advisory_lock(7263001).await
    }

    /// Serialises the transactions that let model calls through a budget, so that two
    /// workers cannot both spend the same room left under a cap. SQLite's `BEGIN
    /// IMMEDIATE` already admits one writer at a time.
    pub async fn lock_spending(&mut self) -> Result<(), Error> {
        self.advisory_lock(7263002).await
    }

    /// Takes PostgreSQL's transaction-scoped advisory lock `key`; nothing on SQLite.
    async fn advisory_lock(&mut self, key: i64) -> Result<(), Error> {
        if let Tx::Postgres(tx) = self {
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(key).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// A row type that decodes from both backends; `#[derive(sqlx::FromRow)]` provides it.
pub trait Row: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

impl<T> Row for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{}

/// The text of a statement: a literal, or one assembled from literal fragments by the stores.
pub struct Sql(std::borrow::Cow<'static, str>);

impl Sql {
    fn safe(self) -> AssertSqlSafe<std::borrow::Cow<'static, str>> {
        // Every statement is built from literals in this crate; values always travel as
        // bound arguments, never inside the text.
        AssertSqlSafe(self.0)
    }
}

impl From<&'static str> for Sql {
    fn from(s: &'static str) -> Sql {
        Sql(s.into())
    }
}

impl From<String> for Sql {
    fn from(s: String) -> Sql {
        Sql(s.into())
    }
}

/// One bound value.
#[derive(Debug, Clone)]
pub enum Arg {
    /// Text, or NULL.
    Text(Option<String>),
    /// A 64-bit integer, or NULL.
    Int(Option<i64>),
    /// A boolean, or NULL.
    Bool(Option<bool>),
    /// A double-precision number.
    Float(f64),
    /// A time, or NULL.
    Time(Option<Timestamp>),
    /// A JSON document, or NULL.
    Json(Option<serde_json::Value>),
    /// Bytes (`BLOB` on SQLite, `BYTEA` on PostgreSQL).
    Bytes(Vec<u8>),
}

/// The bound values of one statement, in placeholder order.
pub type Args = Vec<Arg>;

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(Some(v.to_string()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        Arg::Text(v.map(str::to_string))
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(Some(v))
    }
}
impl From<f64> for Arg {
    fn from(v: f64) -> Arg {
        Arg::Float(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Arg {
        Arg::Bool(Some(v))
    }
}
impl From<Timestamp> for Arg {
    fn from(v: Timestamp) -> Arg {
        Arg::Time(Some(v))
    }
}
impl From<Option<Timestamp>> for Arg {
    fn from(v: Option<Timestamp>) -> Arg {
        Arg::Time(v)
    }
}
impl From<serde_json::Value> for Arg {
    fn from(v: serde_json::Value) -> Arg {
        Arg::Json(Some(v))
    }
}
impl From<Option<serde_json::Value>> for Arg {
    fn from(v: Option<serde_json::Value>) -> Arg {
        Arg::Json(v)
    }
}

/// Builds an [`Args`] list from values that convert into [`Arg`].
#[macro_export]
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::Arg::from($value)),*]
    };
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;
type SqliteQueryAs<'q, T> = sqlx::query::QueryAs<'q, Sqlite, T, sqlx::sqlite::SqliteArguments>;
type PgQueryAs<'q, T> = sqlx::query::QueryAs<'q, Postgres, T, sqlx::postgres::PgArguments>;

/// Binds every argument of `args` on a query builder, in order. SQLite stores times as
/// fixed-width RFC 3339 text so that they sort as text; PostgreSQL as `timestamptz`.
macro_rules! bind_each {
    ($query:expr, $args:expr, sqlite) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Float(v) => q.bind(v),
                Arg::Time(v) => q.bind(v.map(|t| t.to_string())),
                Arg::Json(v) => q.bind(v.map(|j| j.to_string())),
                Arg::Bytes(v) => q.bind(v),
            };
        }
        q
    }};
    ($query:expr, $args:expr, postgres) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Float(v) => q.bind(v),
                Arg::Time(v) => q.bind(v.map(|t| t.0)),
                Arg::Json(v) => q.bind(v.map(sqlx::types::Json)),
                Arg::Bytes(v) => q.bind(v),
            };
        }
        q
    }};
}

fn bind_sqlite(q: SqliteQuery<'_>, args: Args) -> SqliteQuery<'_> {
    bind_each!(q, args, sqlite)
}

fn bind_pg(q: PgQuery<'_>, args: Args) -> PgQuery<'_> {
    bind_each!(q, args, postgres)
}

fn bind_sqlite_as<T>(q: SqliteQueryAs<'_, T>, args: Args) -> SqliteQueryAs<'_, T> {
    bind_each!(q, args, sqlite)
}

fn bind_pg_as<T>(q: PgQueryAs<'_, T>, args: Args) -> PgQueryAs<'_, T> {
    bind_each!(q, args, postgres)
}

/// A point in time, UTC, with microsecond precision (what PostgreSQL keeps), shown as
/// RFC 3339 with a `Z`: `2026-12-03T19:31:37.370847Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// The current time, cut to microseconds.
    pub fn now() -> Timestamp {
        Timestamp::from(Utc::now())
    }

    /// The time `wait` after now, at most a century ahead: a four-digit year, which
    /// SQLite's text timestamps need to sort.
    pub fn from_now(wait: std::time::Duration) -> Timestamp {
        let century = chrono::Duration::days(36_525);
        let wait = chrono::Duration::from_std(wait).unwrap_or(century).min(century);
        Timestamp::from(Utc::now() + wait)
    }

    /// The time `age` before now.
    pub fn ago(age: std::time::Duration) -> Timestamp {
        let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        Timestamp::from(Utc::now().checked_sub_signed(age).unwrap_or(DateTime::<Utc>::MIN_UTC))
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Timestamp {
        let micros = t.timestamp_micros();
        Timestamp(DateTime::from_timestamp_micros(micros).unwrap_or(t))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| Timestamp::from(t.with_timezone(&Utc)))
            .map_err(serde::de::Error::custom)
    }
}

impl sqlx::Type<Sqlite> for Timestamp {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
        <String as sqlx::Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Sqlite> for Timestamp {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<Sqlite>>::decode(value)?;
        Ok(Timestamp::from(DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc)))
    }
}

impl sqlx::Type<Postgres> for Timestamp {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <DateTime<Utc> as sqlx::Type<Postgres>>::type_info()
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for Timestamp {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Timestamp(<DateTime<Utc> as sqlx::Decode<Postgres>>::decode(value)?))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .examples([serde_json::json!("2026-12-03T19:31:37.370847Z")])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Timestamp {}

/// Assembles a statement with numbered placeholders from literal fragments.
pub struct QueryBuilder {
    sql: String,
    args: Args,
}

impl QueryBuilder {
    /// A statement starting with `start`.
    pub fn new(start: &'static str) -> QueryBuilder {
        QueryBuilder { sql: start.to_string(), args: Vec::new() }
    }

    /// Appends literal SQL.
    pub fn push(&mut self, fragment: &'static str) -> &mut Self {
        self.sql.push_str(fragment);
        self
    }

    /// Appends a number as literal SQL, where the planner must see the value itself (a
    /// partial index whose condition names it, say). Numbers carry no SQL.
    pub fn push_int(&mut self, n: i64) -> &mut Self {
        self.sql.push_str(&n.to_string());
        self
    }

    /// Binds a value and appends its placeholder.
    pub fn bind(&mut self, value: impl Into<Arg>) -> &mut Self {
        self.args.push(value.into());
        self.sql.push_str(&format!("${}", self.args.len()));
        self
    }

    /// Appends `(column = $n OR substr(column, 1, length($n) + 1) = $n || '/')`: true when
    /// `column` is `prefix` or lies below it on a segment boundary. An empty prefix matches
    /// every path.
    pub fn path_under(&mut self, column: &'static str, prefix: &str) -> &mut Self {
        if prefix.is_empty() {
            return self.push("1 = 1");
        }
        self.args.push(Arg::from(prefix));
        let n = self.args.len();
        self.sql.push_str(&format!(
            "({column} = ${n} OR substr({column}, 1, length(${n}) + 1) = ${n} || '/')"
        ));
        self
    }

    /// The statement and its arguments.
    pub fn finish(self) -> (Sql, Args) {
        (Sql(self.sql.into()), self.args)
    }
}
