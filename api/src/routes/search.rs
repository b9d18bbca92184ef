//! `GET /api/docs/search/`: full-text search over the documents the caller may read, fused
//! with the nearest documents by embedding when embeddings are on.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use isocrates_storage::Timestamp;
use isocrates_storage::search::SearchQuery;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::MaybeUser;
use crate::error::Error;
use crate::extract::{Query, bounded};
use crate::model::DocumentListItem;

/// The handlers of this module, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(search))]
pub(crate) struct Api;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/docs/search", get(search))
}

/// The embedding of a search's text, when the embedding server answers in time: a failed
/// or slow one means full text alone, never a failed or stalled search.
async fn query_vector(
    embedder: &isocrates_providers::embed::Embedder,
    text: &str,
) -> Option<Vec<f32>> {
    let embedded =
        tokio::time::timeout(QUERY_EMBEDDING_TIMEOUT, embedder.embed(&[text.to_string()])).await;
    match embedded {
        Ok(Ok(mut vectors)) => Some(vectors.remove(0)),
        Ok(Err(error)) => {
            tracing::warn!(%error, "the embedding server failed; searching full text only");
            None
        }
        Err(_) => {
            tracing::warn!("the embedding server was slow; searching full text only");
            None
        }
    }
}

/// How long a search waits for its query's embedding before answering from full text.
const QUERY_EMBEDDING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The longest query accepted.
const MAX_QUERY: usize = 1000;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchParams {
    /// The words searched: plain words are prefix terms joined by AND; `"a phrase"`,
    /// `-word` and `a OR b` are understood; anything else is searched as words.
    #[param(min_length = 1, max_length = 1000)]
    q: String,
    /// Hits at most.
    #[serde(default = "twenty")]
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: i64,
    /// Only documents at or below this folder.
    path_prefix: Option<String>,
    /// Only documents with any of these keywords, comma separated.
    keywords: Option<String>,
    /// Only documents changed on or after this day (`2026-12-03`) or time (RFC 3339).
    date_from: Option<String>,
    /// Only documents changed on or before this day or time.
    date_to: Option<String>,
}

fn twenty() -> i64 {
    20
}

/// One hit as the contract shows it: the document's list fields, its rank and a snippet.
#[derive(Serialize, utoipa::ToSchema)]
struct Hit {
    #[serde(flatten)]
    item: DocumentListItem,
    /// Higher is better.
    rank: f64,
    /// Text around the hits, each marked with `<mark>`.
    snippet: String,
}

/// Parses `2026-12-03` (the start or, with `end_of_day`, the end of that day) or a full
/// RFC 3339 time.
fn parse_date(field: &str, value: &str, end_of_day: bool) -> Result<Timestamp, Error> {
    let value = value.trim();
    let invalid = || {
        Error::invalid(
            field,
            "use a date such as 2026-12-03 or an RFC 3339 time, in the years 1 to 9999",
        )
    };
    // Years outside 1..=9999 do not fit PostgreSQL's range or SQLite's fixed-width text.
    let in_range = |t: &DateTime<Utc>| (1..=9999).contains(&chrono::Datelike::year(t));
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        let t = t.with_timezone(&Utc);
        return if in_range(&t) { Ok(Timestamp::from(t)) } else { Err(invalid()) };
    }
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| invalid())?;
    if !(1..=9999).contains(&chrono::Datelike::year(&day)) {
        return Err(invalid());
    }
    let time = if end_of_day {
        NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap_or_default()
    } else {
        NaiveTime::MIN
    };
    Ok(Timestamp::from(day.and_time(time).and_utc()))
}

/// Full-text search over the documents the caller may read, fused with the nearest by
/// embedding when embeddings are on.
#[utoipa::path(get, path = "/api/docs/search", tag = "search", params(SearchParams),
    responses((status = 200, description = "The hits, best first", body = Vec<Hit>)))]
async fn search(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Query(p): Query<SearchParams>,
) -> Result<axum::Json<Vec<Hit>>, Error> {
    let length = p.q.chars().count();
    if p.q.trim().is_empty() || length > MAX_QUERY {
        return Err(Error::invalid("q", format!("must be 1 to {MAX_QUERY} characters")));
    }
    let query = SearchQuery {
        limit: bounded("limit", p.limit, 1, 100)?,
        path_prefix: p.path_prefix.filter(|s| !s.trim().is_empty()),
        keywords: p
            .keywords
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .take(50)
            .collect(),
        date_from: p.date_from.as_deref().map(|d| parse_date("date_from", d, false)).transpose()?,
        date_to: p.date_to.as_deref().map(|d| parse_date("date_to", d, true)).transpose()?,
        scope: caller.scope(),
        text: p.q,
    };
    let embedder = state.assistant().embedder.as_deref();
    let hits = match embedder {
        Some(embedder) => match query_vector(embedder, &query.text).await {
            Some(vector) => {
                state.storage().hybrid_search(&query, &vector, embedder.model()).await?
            }
            None => state.storage().search(&query).await?,
        },
        None => state.storage().search(&query).await?,
    };
    Ok(axum::Json(
        hits.into_iter()
            .map(|h| Hit {
                item: DocumentListItem::from(h.document),
                rank: h.rank,
                snippet: h.snippet,
            })
            .collect(),
    ))
}
