//! Full-text search over title, description, path and content: FTS5 on SQLite, a weighted
//! `tsvector` on PostgreSQL. A query is parsed here, never by the database, so no input can
//! make it fail: plain words are prefix terms joined by AND, `"quoted words"` are phrases,
//! `OR` separates alternatives and a leading `-` excludes a term. Grants and filters apply
//! inside the query; snippets are HTML-escaped with hits wrapped in `<mark>`.

use std::collections::HashMap;

use crate::documents::{Document, ReadScope};
use crate::{Error, Storage, Timestamp};
use isocrates_db::{Db, QueryBuilder};

/// A search request.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// What the user typed.
    pub text: String,
    /// The most hits to return.
    pub limit: i64,
    /// Only documents at or below this path.
    pub path_prefix: Option<String>,
    /// Only documents with any of these keywords.
    pub keywords: Vec<String>,
    /// Only documents changed at or after this time.
    pub date_from: Option<Timestamp>,
    /// Only documents changed at or before this time.
    pub date_to: Option<Timestamp>,
    /// What the caller may read.
    pub scope: ReadScope,
}

/// One hit.
#[derive(Debug, Clone)]
pub struct SearchHit {
    /// The document.
    pub document: Document,
    /// Relevance; higher is better.
    pub rank: f64,
    /// A short excerpt, HTML-escaped, with hits in `<mark>`.
    pub snippet: String,
}

/// A term of a parsed query: one or more tokens that must appear together, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    tokens: Vec<String>,
    negated: bool,
}

/// Alternatives (joined by OR) of terms that must all match (joined by AND).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    groups: Vec<Vec<Term>>,
}

/// The tokens of a piece of text as both indexes see them: runs of letters and digits,
/// lower-cased.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The longest query text considered; the rest is ignored.
const MAX_QUERY_CHARS: usize = 1000;
/// The most terms a query keeps.
const MAX_TERMS: usize = 32;

fn parse(text: &str) -> Parsed {
    let text: String = text.chars().take(MAX_QUERY_CHARS).collect();
    // Unbalanced quotes mean the query cannot parse: read it as plain words.
    let quotes_balanced = text.matches('"').count().is_multiple_of(2);
    let mut pieces: Vec<(String, bool)> = Vec::new(); // (text, quoted)
    if quotes_balanced {
        for (i, part) in text.split('"').enumerate() {
            if i % 2 == 1 {
                pieces.push((part.to_string(), true));
            } else {
                pieces.extend(part.split_whitespace().map(|w| (w.to_string(), false)));
            }
        }
    } else {
        pieces.extend(text.split_whitespace().map(|w| (w.replace('"', " "), false)));
    }

    let mut groups = vec![Vec::new()];
    let mut negate_next = false;
    let mut count = 0;
    for (piece, quoted) in pieces {
        if !quoted && piece == "OR" {
            groups.push(Vec::new());
            continue;
        }
        if !quoted && piece == "-" {
            negate_next = true;
            continue;
        }
        let (negated, body) = match piece.strip_prefix('-') {
            Some(rest) if !quoted && !rest.is_empty() => (true, rest.to_string()),
            _ => (std::mem::take(&mut negate_next), piece),
        };
        let toks = tokens(&body);
        if toks.is_empty() || count >= MAX_TERMS {
            continue;
        }
        count += 1;
        if let Some(group) = groups.last_mut() {
            group.push(Term { tokens: toks, negated });
        }
    }
    // A group of exclusions alone would match everything not excluded: drop it.
    groups.retain(|g| g.iter().any(|t| !t.negated));
    Parsed { groups }
}

/// The FTS5 expression of a parsed query, or `None` when it has no term.
fn fts5_expression(parsed: &Parsed) -> Option<String> {
    let term = |t: &Term| {
        let quoted: Vec<String> = t.tokens.iter().map(|tok| format!("\"{tok}\"")).collect();
        format!("({}*)", quoted.join(" + "))
    };
    let groups: Vec<String> = parsed
        .groups
        .iter()
        .map(|g| {
            let positive: Vec<String> = g.iter().filter(|t| !t.negated).map(term).collect();
            let mut expr = format!("({})", positive.join(" AND "));
            for negative in g.iter().filter(|t| t.negated) {
                expr = format!("({expr} NOT {})", term(negative));
            }
            expr
        })
        .collect();
    (!groups.is_empty()).then(|| groups.join(" OR "))
}

/// The `to_tsquery` text of a parsed query, or `None` when it has no term.
fn tsquery_expression(parsed: &Parsed) -> Option<String> {
    let term = |t: &Term| {
        let last = t.tokens.len() - 1;
        let parts: Vec<String> = t
            .tokens
            .iter()
            .enumerate()
            .map(|(i, tok)| if i == last { format!("'{tok}':*") } else { format!("'{tok}'") })
            .collect();
        let phrase = format!("({})", parts.join(" <-> "));
        if t.negated { format!("!{phrase}") } else { phrase }
    };
    let groups: Vec<String> = parsed
        .groups
        .iter()
        .map(|g| format!("({})", g.iter().map(term).collect::<Vec<_>>().join(" & ")))
        .collect();
    (!groups.is_empty()).then(|| groups.join(" | "))
}

/// Markers the databases put around hits: control characters, which no stored title,
/// description, path or content may hold, so they cannot come from the text itself.
const HIT_START: &str = "\u{1}";
const HIT_END: &str = "\u{2}";

/// Escapes a snippet for HTML and turns the hit markers into `<mark>` elements.
fn render_snippet(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 16);
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\u{1}' => out.push_str("<mark>"),
            '\u{2}' => out.push_str("</mark>"),
            c => out.push(c),
        }
    }
    out
}

#[derive(sqlx::FromRow)]
struct HitRow {
    #[sqlx(flatten)]
    doc: crate::documents::DocumentRow,
    score: f64,
    snippet: Option<String>,
}

const HIT_COLUMNS: &str = "d.id, d.repo_url, d.repo_name, d.path, d.title, d.content, d.doc_type, \
     d.keywords, d.description, d.created_at, d.updated_at, d.generation_count, d.version, \
     d.deleted_at, d.is_indexed";

impl Storage {
    /// Searches active documents in the caller's scope, best first.
    ///
    /// FIXME: a word found in most of the wiki makes both databases rank every match to
    /// return `limit` (p99 0.3 s on SQLite, 0.7 s on PostgreSQL at 100,000 documents, see
    /// BENCHMARKS.md); ranking a bounded candidate set per common term, or a RUM index on
    /// PostgreSQL, would bound it.
    pub async fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>, Error> {
        let parsed = parse(&query.text);
        let mut q = match &self.db {
            Db::Sqlite(_) => {
                let Some(expr) = fts5_expression(&parsed) else { return Ok(Vec::new()) };
                let mut q = QueryBuilder::new("SELECT ");
                q.push(HIT_COLUMNS)
                    .push(", -bm25(documents_fts, 10.0, 4.0, 2.0, 1.0) AS score, snippet(documents_fts, -1, ")
                    .bind(HIT_START)
                    .push(", ")
                    .bind(HIT_END)
                    .push(", '…', 24) AS snippet FROM documents_fts JOIN documents d ON d.seq = documents_fts.rowid WHERE documents_fts MATCH ")
                    .bind(expr);
                q
            }
            Db::Postgres(_) => {
                let Some(expr) = tsquery_expression(&parsed) else { return Ok(Vec::new()) };
                let mut q = QueryBuilder::new("SELECT ");
                q.push(HIT_COLUMNS)
                    .push(", CAST(ts_rank(d.search_vector, q) AS DOUBLE PRECISION) AS score, ts_headline('simple', d.title || ' ' || coalesce(d.description, '') || ' ' || d.content, q, ")
                    .bind(format!("StartSel={HIT_START}, StopSel={HIT_END}, MaxWords=30, MinWords=12, MaxFragments=2, FragmentDelimiter=\" … \""))
                    .push(") AS snippet FROM documents d, to_tsquery('simple', ")
                    .bind(expr)
                    .push(") q WHERE d.search_vector @@ q");
                q
            }
        };
        q.push(" AND d.deleted_at IS NULL");
        if let Some(prefix) = &query.path_prefix {
            q.push(" AND ")
                .path_under("d.path", &crate::documents::check_path("path_prefix", prefix)?);
        }
        if !query.keywords.is_empty() {
            q.push(" AND EXISTS (SELECT 1 FROM ");
            q.push(match self.db {
                Db::Sqlite(_) => "json_each(d.keywords) AS k",
                Db::Postgres(_) => "jsonb_array_elements_text(d.keywords) AS k(value)",
            });
            q.push(" WHERE k.value IN (");
            for (i, keyword) in query.keywords.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.bind(keyword.as_str());
            }
            q.push("))");
        }
        if let Some(from) = query.date_from {
            q.push(" AND d.updated_at >= ").bind(from);
        }
        if let Some(to) = query.date_to {
            q.push(" AND d.updated_at <= ").bind(to);
        }
        query.scope.restrict(&mut q, "d.path");
        q.push(" ORDER BY score DESC, d.id LIMIT ").bind(query.limit);
        let (sql, args) = q.finish();
        let rows: Vec<HitRow> = self.db.fetch_all(sql, args).await?;
        Ok(rows
            .into_iter()
            .map(|r| SearchHit {
                snippet: render_snippet(r.snippet.as_deref().unwrap_or_default()),
                rank: r.score,
                document: Document::from(r.doc),
            })
            .collect())
    }
}

/// The constant of Reciprocal Rank Fusion: a hit at rank r in a list adds 1 / (K + r).
const RRF_K: f64 = 60.0;

impl Storage {
    /// [`Storage::search`] fused with the documents nearest `vector` (by `model`), by
    /// Reciprocal Rank Fusion: each list gives 1 / (60 + rank) to its hits, and the sums
    /// rank the answer. Vector hits obey the same filters and scope; their snippet is the
    /// start of the document.
    pub async fn hybrid_search(
        &self,
        query: &SearchQuery,
        vector: &[f32],
        model: &str,
    ) -> Result<Vec<SearchHit>, Error> {
        // A query full text finds nothing for (only exclusions, say) finds nothing here.
        if fts5_expression(&parse(&query.text)).is_none() {
            return Ok(Vec::new());
        }
        let depth = (query.limit * 2).clamp(10, 200);
        let wide = SearchQuery { limit: depth, ..query.clone() };
        let text_hits = self.search(&wide).await?;
        // With filters, more of the nearest documents are read, so that enough are left
        // once the filters are applied.
        let filtered = query.path_prefix.is_some()
            || !query.keywords.is_empty()
            || query.date_from.is_some()
            || query.date_to.is_some();
        let wanted = if filtered { depth as usize * 20 } else { depth as usize };
        let near = self.similar(vector, model, &query.scope, None, wanted).await?;
        let ids: Vec<String> = near.iter().map(|n| n.id.clone()).collect();
        let mut near_docs: HashMap<String, Document> = self
            .documents_by_id(&ids, &query.scope)
            .await?
            .into_iter()
            .filter(|d| passes(query, d))
            .map(|d| (d.id.clone(), d))
            .collect();
        let mut fused: HashMap<String, (f64, SearchHit)> = HashMap::new();
        for (rank, hit) in text_hits.into_iter().enumerate() {
            let score = 1.0 / (RRF_K + rank as f64 + 1.0);
            fused.insert(hit.document.id.clone(), (score, hit));
        }
        let mut rank = 0;
        for n in near {
            if rank >= depth {
                break;
            }
            let Some(doc) = near_docs.remove(&n.id) else { continue };
            rank += 1;
            let score = 1.0 / (RRF_K + rank as f64);
            fused.entry(doc.id.clone()).and_modify(|(s, _)| *s += score).or_insert_with(|| {
                let start: String = doc
                    .content
                    .chars()
                    .filter(|c| !matches!(c, '\u{1}' | '\u{2}'))
                    .take(200)
                    .collect();
                let hit = SearchHit { snippet: render_snippet(&start), rank: 0.0, document: doc };
                (score, hit)
            });
        }
        let mut hits: Vec<SearchHit> = fused
            .into_values()
            .map(|(score, mut hit)| {
                hit.rank = score;
                hit
            })
            .collect();
        hits.sort_by(|a, b| {
            b.rank.total_cmp(&a.rank).then_with(|| a.document.id.cmp(&b.document.id))
        });
        hits.truncate(query.limit.max(0) as usize);
        Ok(hits)
    }
}

/// Whether `doc` meets the query's filters other than its text and scope.
fn passes(query: &SearchQuery, doc: &Document) -> bool {
    let prefix = query.path_prefix.as_deref().map(crate::ids::normalize_path);
    prefix.is_none_or(|p| crate::permission::covers(&p, &doc.path))
        && (query.keywords.is_empty() || doc.keywords.iter().any(|k| query.keywords.contains(k)))
        && query.date_from.is_none_or(|from| doc.updated_at >= from)
        && query.date_to.is_none_or(|to| doc.updated_at <= to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fts(text: &str) -> Option<String> {
        fts5_expression(&parse(text))
    }

    fn ts(text: &str) -> Option<String> {
        tsquery_expression(&parse(text))
    }

    #[test]
    fn plain_words_are_prefix_terms_joined_by_and() {
        assert_eq!(fts("Setup guide").as_deref(), Some("((\"setup\"*) AND (\"guide\"*))"));
        assert_eq!(ts("Setup guide").as_deref(), Some("(('setup':*) & ('guide':*))"));
    }

    #[test]
    fn phrases_alternatives_and_exclusions() {
        assert_eq!(
            ts("\"quick start\" OR intro -draft").as_deref(),
            Some("(('quick' <-> 'start':*)) | (('intro':*) & !('draft':*))")
        );
        assert_eq!(fts("intro -draft").as_deref(), Some("(((\"intro\"*)) NOT (\"draft\"*))"));
        assert_eq!(ts("pre-commit").as_deref(), Some("(('pre' <-> 'commit':*))"));
    }

    #[test]
    fn what_cannot_parse_is_read_as_plain_words() {
        assert_eq!(ts("\"unbalanced quote").as_deref(), Some("(('unbalanced':*) & ('quote':*))"));
        for junk in ["", "   ", "!!! ***", "-only", "OR OR", "( ) : ^ \\", "'", "NEAR(a b)"] {
            let expr = fts(junk);
            if let Some(e) = &expr {
                assert!(!e.contains('\'') && !e.contains('\\'), "{junk}: {e}");
            }
        }
        assert_eq!(ts("it's"), Some("(('it' <-> 's':*))".to_string()));
        assert!(fts("-only").is_none());
    }

    #[test]
    fn snippets_are_escaped_and_marked() {
        let raw = format!("<script>x</script> {HIT_START}hit{HIT_END} & more");
        assert_eq!(
            render_snippet(&raw),
            "&lt;script&gt;x&lt;/script&gt; <mark>hit</mark> &amp; more"
        );
    }
}
