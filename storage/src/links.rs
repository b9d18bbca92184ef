//! Wikilinks and the dependency graph. `[[Target]]` and `[[Target|text]]` in a document's
//! content become `wikilink` edges to the document the target resolves to; every link is
//! also kept unresolved, so that a target created, renamed or restored later repairs the
//! links that wait for it. Manual edges of other types are added through the API.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::documents::{Document, ReadScope};
use crate::{Error, Storage, Timestamp};
use isocrates_db::{Tx, args};

/// The link type of edges drawn from `[[wikilinks]]`.
pub const WIKILINK: &str = "wikilink";

/// One `[[wikilink]]` found in markdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WikiLink {
    /// The text before `|`, trimmed.
    pub target: String,
    /// The text after `|`, when given.
    pub text: Option<String>,
    /// The heading the link sits under, if any.
    pub section: Option<String>,
}

/// An edge of the dependency graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// Its id.
    pub id: String,
    /// The document that links.
    pub from_doc_id: String,
    /// The document linked to.
    pub to_doc_id: String,
    /// `wikilink`, or the type of a manual edge.
    pub link_type: String,
    /// The link's shown text (or its target).
    pub link_text: Option<String>,
    /// The heading it sits under.
    pub section: Option<String>,
    /// When the edge was drawn.
    pub created_at: Timestamp,
}

/// A manual edge to add.
#[derive(Debug, Clone)]
pub struct NewDependency {
    /// The document that depends.
    pub from_doc_id: String,
    /// The document depended on.
    pub to_doc_id: String,
    /// The edge's type; `wikilink` edges may form cycles, other types may not.
    pub link_type: String,
    /// Shown text.
    pub link_text: Option<String>,
    /// Section.
    pub section: Option<String>,
}

/// Whether one link of a document resolves for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    /// The link's target as written.
    pub target: String,
    /// Whether it resolves to a readable, active document.
    pub resolved: bool,
    /// That document.
    pub resolved_doc_id: Option<String>,
}

/// The key links and titles are compared by when no exact match exists: lower case, hyphens
/// read as spaces, runs of white space folded.
pub fn title_key(text: &str) -> String {
    text.to_lowercase().replace('-', " ").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a target points outside IsoCrates.
pub fn is_external(target: &str) -> bool {
    let lower = target.to_ascii_lowercase();
    ["http://", "https://", "ftp://"].iter().any(|scheme| lower.starts_with(scheme))
}

/// Every internal wikilink in `markdown`, in order. Links inside fenced code blocks and
/// inline code spans are text, not links.
pub fn parse_wikilinks(markdown: &str) -> Vec<WikiLink> {
    let mut links = Vec::new();
    let mut section: Option<String> = None;
    let mut fence: Option<&str> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if let Some(marker) = fence {
            if trimmed.starts_with(marker) {
                fence = None;
            }
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = Some(&trimmed[..3]);
            continue;
        }
        if let Some(heading) = heading_text(trimmed) {
            section = Some(heading);
        }
        scan_line(line, &section, &mut links);
    }
    links
}

fn heading_text(line: &str) -> Option<String> {
    let hashes = line.chars().take_while(|&c| c == '#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &line[hashes..];
    if !rest.starts_with(' ') {
        return None;
    }
    let text = rest.trim().trim_end_matches('#').trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn scan_line(line: &str, section: &Option<String>, links: &mut Vec<WikiLink>) {
    let mut rest = line;
    while let Some(start) = rest.find(['[', '`']) {
        let after = &rest[start..];
        if after.starts_with('`') {
            // Skip an inline code span: up to the matching run of backticks.
            let ticks = after.chars().take_while(|&c| c == '`').count();
            let closing = "`".repeat(ticks);
            match after[ticks..].find(&closing) {
                Some(end) => rest = &after[ticks + end + ticks..],
                None => return,
            }
            continue;
        }
        if !after.starts_with("[[") {
            rest = &after[1..];
            continue;
        }
        let inner_start = &after[2..];
        let Some(end) = inner_start.find("]]") else {
            return;
        };
        let inner = &inner_start[..end];
        rest = &inner_start[end + 2..];
        if inner.contains('[') || inner.contains(']') {
            continue;
        }
        let (target, text) = match inner.split_once('|') {
            Some((t, s)) => (t.trim(), Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            None => (inner.trim(), None),
        };
        if target.is_empty() || is_external(target) {
            continue;
        }
        links.push(WikiLink { target: target.to_string(), text, section: section.clone() });
    }
}

/// A document a target might resolve to.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Candidate {
    id: String,
    title: String,
    repo_name: Option<String>,
    repo_url: Option<String>,
    path: String,
}

/// Picks what `target` resolves to: exact title, then title without regard to case, then
/// exact repository name, then repository name without regard to case; only when none of
/// those match, hyphens and spaces count as equal. Ties go to the document in the source's
/// repository, then the shortest path, then the smallest id.
fn pick<'a>(
    target: &str,
    candidates: &'a [Candidate],
    source_repo: Option<&str>,
) -> Option<&'a Candidate> {
    let lower = target.to_lowercase();
    let key = title_key(target);
    let tier = |c: &Candidate| -> Option<u8> {
        let repo = c.repo_name.as_deref();
        if c.title == target {
            Some(0)
        } else if c.title.to_lowercase() == lower {
            Some(1)
        } else if repo == Some(target) {
            Some(2)
        } else if repo.map(str::to_lowercase).as_deref() == Some(lower.as_str()) {
            Some(3)
        } else if title_key(&c.title) == key {
            Some(4)
        } else if repo.map(title_key).as_deref() == Some(key.as_str()) {
            Some(5)
        } else {
            None
        }
    };
    candidates
        .iter()
        .filter_map(|c| tier(c).map(|t| (t, c)))
        .min_by(|(ta, a), (tb, b)| {
            let same_repo =
                |c: &Candidate| source_repo.is_some() && c.repo_url.as_deref() == source_repo;
            ta.cmp(tb)
                .then_with(|| same_repo(b).cmp(&same_repo(a)))
                .then_with(|| a.path.len().cmp(&b.path.len()))
                .then_with(|| a.id.cmp(&b.id))
        })
        .map(|(_, c)| c)
}

const CANDIDATES_SQL: &str = "SELECT id, title, repo_name, repo_url, path FROM documents \
     WHERE deleted_at IS NULL AND (title_key = $1 OR repo_key = $1)";

#[derive(sqlx::FromRow)]
struct LinkRow {
    target: String,
    link_text: Option<String>,
    section: Option<String>,
}

/// Re-reads a document's wikilinks from its content and redraws its `wikilink` edges.
pub(crate) async fn replace_outgoing(tx: &mut Tx, doc: &Document) -> Result<(), Error> {
    tx.execute("DELETE FROM wikilinks WHERE doc_id = $1", args![&doc.id]).await?;
    for (position, link) in parse_wikilinks(&doc.content).into_iter().enumerate() {
        tx.execute(
            "INSERT INTO wikilinks (doc_id, position, target, target_key, link_text, section) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            args![
                &doc.id,
                position as i64,
                &link.target,
                title_key(&link.target),
                link.text.clone().unwrap_or_else(|| link.target.clone()),
                link.section,
            ],
        )
        .await?;
    }
    redraw_edges(tx, &doc.id, doc.repo_url.as_deref()).await
}

async fn redraw_edges(tx: &mut Tx, doc_id: &str, source_repo: Option<&str>) -> Result<(), Error> {
    tx.execute(
        "DELETE FROM dependencies WHERE from_doc_id = $1 AND link_type = $2 AND manual = FALSE",
        args![doc_id, WIKILINK],
    )
    .await?;
    let links: Vec<LinkRow> = tx
        .fetch_all(
            "SELECT target, link_text, section FROM wikilinks WHERE doc_id = $1 ORDER BY position",
            args![doc_id],
        )
        .await?;
    let mut cache: HashMap<String, Vec<Candidate>> = HashMap::new();
    let now = Timestamp::now();
    for link in links {
        let key = title_key(&link.target);
        if !cache.contains_key(&key) {
            let found: Vec<Candidate> = tx.fetch_all(CANDIDATES_SQL, args![&key]).await?;
            cache.insert(key.clone(), found);
        }
        let Some(to) = pick(&link.target, &cache[&key], source_repo) else {
            continue;
        };
        if to.id == doc_id {
            continue;
        }
        tx.execute(
            "INSERT INTO dependencies (id, from_doc_id, to_doc_id, link_type, link_text, section, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (from_doc_id, to_doc_id, link_type) DO NOTHING",
            args![
                uuid::Uuid::now_v7().to_string(),
                doc_id,
                &to.id,
                WIKILINK,
                link.link_text,
                link.section,
                now
            ],
        )
        .await?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct SourceRow {
    id: String,
    repo_url: Option<String>,
}

/// Redraws the edges of every active document holding a link whose key is in `keys`: what
/// they resolve to may have changed.
pub(crate) async fn repair(tx: &mut Tx, keys: &[String]) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for key in keys.iter().filter(|k| seen.insert(k.as_str())) {
        let sources: Vec<SourceRow> = tx
            .fetch_all(
                "SELECT DISTINCT d.id, d.repo_url FROM wikilinks w JOIN documents d ON d.id = w.doc_id \
                 WHERE w.target_key = $1 AND d.deleted_at IS NULL ORDER BY d.id",
                args![key],
            )
            .await?;
        for source in sources {
            redraw_edges(tx, &source.id, source.repo_url.as_deref()).await?;
        }
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct EdgeRow {
    id: String,
    from_doc_id: String,
    to_doc_id: String,
    link_type: String,
    link_text: Option<String>,
    section: Option<String>,
    created_at: Timestamp,
    other_path: String,
}

impl EdgeRow {
    fn into_dependency(self) -> Dependency {
        Dependency {
            id: self.id,
            from_doc_id: self.from_doc_id,
            to_doc_id: self.to_doc_id,
            link_type: self.link_type,
            link_text: self.link_text,
            section: self.section,
            created_at: self.created_at,
        }
    }
}

const EDGE_COLUMNS: &str =
    "e.id, e.from_doc_id, e.to_doc_id, e.link_type, e.link_text, e.section, e.created_at";

/// The longest link type accepted.
const MAX_LINK_TYPE: usize = 50;

impl Storage {
    /// The active document, readable in `scope`, that `target` resolves to.
    pub async fn resolve_link(
        &self,
        target: &str,
        scope: &ReadScope,
    ) -> Result<Option<String>, Error> {
        let target = target.trim();
        if target.is_empty() {
            return Ok(None);
        }
        let candidates: Vec<Candidate> =
            self.db.fetch_all(CANDIDATES_SQL, args![title_key(target)]).await?;
        let readable: Vec<Candidate> =
            candidates.into_iter().filter(|c| scope.allows(&c.path)).collect();
        Ok(pick(target, &readable, None).map(|c| c.id.clone()))
    }

    /// A document's edges out and in, keeping only those whose other end is active and in
    /// `scope`.
    pub async fn dependencies_of(
        &self,
        doc_id: &str,
        scope: &ReadScope,
    ) -> Result<(Vec<Dependency>, Vec<Dependency>), Error> {
        let outgoing: Vec<EdgeRow> = self
            .db
            .fetch_all(
                format!(
                    "SELECT {EDGE_COLUMNS}, d.path AS other_path FROM dependencies e \
                     JOIN documents d ON d.id = e.to_doc_id \
                     WHERE e.from_doc_id = $1 AND d.deleted_at IS NULL ORDER BY e.created_at, e.id"
                ),
                args![doc_id],
            )
            .await?;
        let incoming: Vec<EdgeRow> = self
            .db
            .fetch_all(
                format!(
                    "SELECT {EDGE_COLUMNS}, d.path AS other_path FROM dependencies e \
                     JOIN documents d ON d.id = e.from_doc_id \
                     WHERE e.to_doc_id = $1 AND d.deleted_at IS NULL ORDER BY e.created_at, e.id"
                ),
                args![doc_id],
            )
            .await?;
        let keep = |rows: Vec<EdgeRow>| -> Vec<Dependency> {
            rows.into_iter()
                .filter(|r| scope.allows(&r.other_path))
                .map(EdgeRow::into_dependency)
                .collect()
        };
        Ok((keep(outgoing), keep(incoming)))
    }

    /// Every edge between two active documents in `scope`.
    pub async fn all_dependencies(&self, scope: &ReadScope) -> Result<Vec<Dependency>, Error> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            edge: EdgeRow,
            from_path: String,
        }
        let rows: Vec<Row> = self
            .db
            .fetch_all(
                format!(
                    "SELECT {EDGE_COLUMNS}, t.path AS other_path, f.path AS from_path \
                     FROM dependencies e \
                     JOIN documents f ON f.id = e.from_doc_id \
                     JOIN documents t ON t.id = e.to_doc_id \
                     WHERE f.deleted_at IS NULL AND t.deleted_at IS NULL \
                     ORDER BY e.created_at, e.id"
                ),
                vec![],
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter(|r| scope.allows(&r.from_path) && scope.allows(&r.edge.other_path))
            .map(|r| r.edge.into_dependency())
            .collect())
    }

    /// Adds a manual edge, which saving the document never removes. An edge to itself is refused; an edge of a type other than
    /// `wikilink` that would close a cycle among such edges is refused. Adding an edge that
    /// exists returns it.
    pub async fn add_dependency(&self, new: NewDependency) -> Result<Dependency, Error> {
        let link_type = new.link_type.trim().to_string();
        if link_type.is_empty()
            || link_type.len() > MAX_LINK_TYPE
            || !link_type.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::validation(
                "link_type",
                format!("link_type must be 1 to {MAX_LINK_TYPE} letters, digits, '-' or '_'"),
            ));
        }
        if new.from_doc_id == new.to_doc_id {
            return Err(Error::SelfDependency);
        }
        let mut tx = self.db.begin().await?;
        tx.lock_links().await?;
        for id in [&new.from_doc_id, &new.to_doc_id] {
            let doc = crate::documents::load(&mut tx, id).await?;
            if doc.is_none_or(|d| d.deleted_at.is_some()) {
                return Err(Error::not_found("document", id.as_str()));
            }
        }
        if link_type != WIKILINK {
            #[derive(sqlx::FromRow)]
            struct Pair {
                from_doc_id: String,
                to_doc_id: String,
            }
            let edges: Vec<Pair> = tx
                .fetch_all(
                    "SELECT from_doc_id, to_doc_id FROM dependencies WHERE link_type <> $1",
                    args![WIKILINK],
                )
                .await?;
            let mut graph: HashMap<&str, Vec<&str>> = HashMap::new();
            for e in &edges {
                graph.entry(e.from_doc_id.as_str()).or_default().push(e.to_doc_id.as_str());
            }
            if reaches(&graph, &new.to_doc_id, &new.from_doc_id) {
                return Err(Error::CircularDependency);
            }
        }
        tx.execute(
            "INSERT INTO dependencies (id, from_doc_id, to_doc_id, link_type, link_text, section, \
             created_at, manual) VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE) \
             ON CONFLICT (from_doc_id, to_doc_id, link_type) DO NOTHING",
            args![
                uuid::Uuid::now_v7().to_string(),
                &new.from_doc_id,
                &new.to_doc_id,
                &link_type,
                new.link_text,
                new.section,
                Timestamp::now()
            ],
        )
        .await?;
        let row: Option<EdgeRow> = tx
            .fetch_optional(
                format!(
                    "SELECT {EDGE_COLUMNS}, '' AS other_path FROM dependencies e \
                     WHERE e.from_doc_id = $1 AND e.to_doc_id = $2 AND e.link_type = $3"
                ),
                args![&new.from_doc_id, &new.to_doc_id, &link_type],
            )
            .await?;
        tx.commit().await?;
        row.map(EdgeRow::into_dependency)
            .ok_or_else(|| Error::not_found("dependency", new.from_doc_id))
    }

    /// Re-reads the wikilinks of every active document and redraws all `wikilink` edges.
    /// Returns the documents processed and the `wikilink` edges that exist afterwards.
    pub async fn reindex_dependencies(&self) -> Result<(i64, i64), Error> {
        #[derive(sqlx::FromRow)]
        struct Id {
            id: String,
        }
        #[derive(sqlx::FromRow)]
        struct Count {
            n: i64,
        }
        let ids: Vec<Id> = self
            .db
            .fetch_all("SELECT id FROM documents WHERE deleted_at IS NULL ORDER BY id", vec![])
            .await?;
        // One short transaction per document, so other writers are never held up long.
        for Id { id } in &ids {
            let mut tx = self.db.begin().await?;
            tx.lock_links().await?;
            if let Some(doc) = crate::documents::load(&mut tx, id).await? {
                replace_outgoing(&mut tx, &doc).await?;
            }
            tx.commit().await?;
        }
        let edges: Option<Count> = self
            .db
            .fetch_optional(
                "SELECT count(*) AS n FROM dependencies WHERE link_type = $1",
                args![WIKILINK],
            )
            .await?;
        Ok((ids.len() as i64, edges.map_or(0, |c| c.n)))
    }

    /// Each distinct link target of a document and whether it resolves, for the caller,
    /// to an active document; sorted by target.
    pub async fn link_status(
        &self,
        doc_id: &str,
        scope: &ReadScope,
    ) -> Result<Vec<LinkStatus>, Error> {
        let links: Vec<LinkRow> = self
            .db
            .fetch_all(
                "SELECT target, link_text, section FROM wikilinks WHERE doc_id = $1",
                args![doc_id],
            )
            .await?;
        let mut targets: Vec<String> = links.into_iter().map(|l| l.target).collect();
        targets.sort();
        targets.dedup();
        let mut out = Vec::with_capacity(targets.len());
        for target in targets {
            let resolved = self.resolve_link(&target, scope).await?;
            out.push(LinkStatus {
                target,
                resolved: resolved.is_some(),
                resolved_doc_id: resolved,
            });
        }
        Ok(out)
    }
}

fn reaches(graph: &HashMap<&str, Vec<&str>>, from: &str, to: &str) -> bool {
    let mut queue = VecDeque::from([from]);
    let mut seen = HashSet::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            return true;
        }
        for &next in graph.get(node).into_iter().flatten() {
            if seen.insert(next) {
                queue.push_back(next);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(
        id: &str,
        title: &str,
        repo_name: Option<&str>,
        repo: Option<&str>,
        path: &str,
    ) -> Candidate {
        Candidate {
            id: id.to_string(),
            title: title.to_string(),
            repo_name: repo_name.map(str::to_string),
            repo_url: repo.map(str::to_string),
            path: path.to_string(),
        }
    }

    #[test]
    fn links_are_parsed_with_text_and_section() {
        let md = "# Intro\nSee [[Setup]] and [[ API Guide | the API ]].\n## Next\n[[https://x.io]] [[]]\n\
                  ```\n[[In Code]]\n```\nInline `[[Code Span]]` but [[After]]";
        let links = parse_wikilinks(md);
        let got: Vec<_> = links
            .iter()
            .map(|l| (l.target.as_str(), l.text.as_deref(), l.section.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("Setup", None, Some("Intro")),
                ("API Guide", Some("the API"), Some("Intro")),
                ("After", None, Some("Next")),
            ]
        );
    }

    #[test]
    fn resolution_prefers_exact_then_case_then_repo_then_hyphens() {
        let all = [
            candidate("d1", "pre commit hooks", None, None, "a"),
            candidate("d2", "Pre-commit Hooks", None, None, "a"),
            candidate("d3", "Other", Some("pre-commit-hooks"), None, "a"),
        ];
        assert_eq!(pick("Pre-commit Hooks", &all, None).unwrap().id, "d2");
        assert_eq!(pick("pre-commit hooks", &all, None).unwrap().id, "d2");
        assert_eq!(pick("pre-commit-hooks", &all, None).unwrap().id, "d3");
        assert_eq!(pick("PRE COMMIT HOOKS", &all, None).unwrap().id, "d1");
        let hyphen_only = [candidate("d2", "Pre-commit Hooks", None, None, "a")];
        assert_eq!(pick("pre-commit-hooks", &hyphen_only, None).unwrap().id, "d2");
        assert!(pick("Missing", &all, None).is_none());
    }

    #[test]
    fn ties_go_to_same_repo_then_short_path_then_small_id() {
        let all = [
            candidate("b", "Setup", None, Some("r2"), "x"),
            candidate("a", "Setup", None, Some("r2"), "x/longer"),
            candidate("c", "Setup", None, Some("r1"), "x/y/z"),
        ];
        assert_eq!(pick("Setup", &all, Some("r1")).unwrap().id, "c");
        assert_eq!(pick("Setup", &all, Some("r2")).unwrap().id, "b");
        let same = [candidate("z", "S", None, None, "p"), candidate("y", "S", None, None, "p")];
        assert_eq!(pick("S", &same, None).unwrap().id, "y");
    }

    #[test]
    fn cycles_are_found() {
        let graph = HashMap::from([("a", vec!["b"]), ("b", vec!["c"])]);
        assert!(reaches(&graph, "a", "c"));
        assert!(!reaches(&graph, "c", "a"));
    }
}
