//! The line diff between two versions of a document, as rows a template lays out.

use serde::Serialize;
use similar::{ChangeTag, TextDiff};

/// One row of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// `same`, `added`, `removed`, or `fold` for unchanged lines left out.
    pub kind: &'static str,
    /// The line's number in the older text, when it is there.
    pub old: Option<usize>,
    /// The line's number in the newer text, when it is there.
    pub new: Option<usize>,
    /// The line, without its line break.
    pub text: String,
}

/// Lines of unchanged text kept around each change; longer runs are folded.
const CONTEXT: usize = 3;

/// The rows that turn `old` into `new`, with unchanged runs longer than twice the
/// context folded into one `fold` row.
pub fn lines(old: &str, new: &str) -> Vec<Row> {
    let diff = TextDiff::from_lines(old, new);
    let mut rows = Vec::new();
    for group in diff.grouped_ops(CONTEXT) {
        // Between two groups, the lines neither shows.
        if !rows.is_empty() {
            rows.push(Row { kind: "fold", old: None, new: None, text: String::new() });
        }
        for op in group {
            for change in diff.iter_changes(&op) {
                let kind = match change.tag() {
                    ChangeTag::Equal => "same",
                    ChangeTag::Insert => "added",
                    ChangeTag::Delete => "removed",
                };
                rows.push(Row {
                    kind,
                    old: change.old_index().map(|i| i + 1),
                    new: change.new_index().map(|i| i + 1),
                    text: change.value().trim_end_matches(['\n', '\r']).to_string(),
                });
            }
        }
    }
    rows
}

/// How many lines `rows` add and remove.
pub fn counts(rows: &[Row]) -> (usize, usize) {
    let added = rows.iter().filter(|r| r.kind == "added").count();
    let removed = rows.iter().filter(|r| r.kind == "removed").count();
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_lines_are_marked_with_their_numbers() {
        let rows = lines("a\nb\nc\n", "a\nB\nc\nd\n");
        let shown: Vec<(&str, Option<usize>, Option<usize>, &str)> =
            rows.iter().map(|r| (r.kind, r.old, r.new, r.text.as_str())).collect();
        assert_eq!(
            shown,
            vec![
                ("same", Some(1), Some(1), "a"),
                ("removed", Some(2), None, "b"),
                ("added", None, Some(2), "B"),
                ("same", Some(3), Some(3), "c"),
                ("added", None, Some(4), "d"),
            ]
        );
        assert_eq!(counts(&rows), (2, 1));
    }

    #[test]
    fn long_unchanged_runs_are_folded_and_equal_texts_have_no_rows() {
        let old: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        let new = old.replace("line 2\n", "line two\n").replace("line 39\n", "line thirty-nine\n");
        let rows = lines(&old, &new);
        assert_eq!(rows.iter().filter(|r| r.kind == "fold").count(), 1);
        assert!(rows.len() < 20, "{rows:?}");
        assert!(lines(&old, &old).is_empty());
    }
}
