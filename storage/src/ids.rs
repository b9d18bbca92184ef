//! Normalisation of paths, titles and repository URLs, and the derived document and folder
//! ids, so that a client can compute an id before the document exists.

use sha2::{Digest, Sha256};

/// The first 12 hex digits of the SHA-256 of `text`.
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..6])
}

/// The full SHA-256 of `text`, in hex.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Trims a path, strips `/` at both ends and collapses repeated slashes: ` /a//b/ ` is `a/b`.
pub fn normalize_path(path: &str) -> String {
    path.trim().split('/').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join("/")
}

/// A repository URL without trailing `/` and then without one trailing `.git`.
pub fn normalize_repo_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    url.strip_suffix(".git").unwrap_or(url).to_string()
}

/// The id of a document, derived from where it lives.
///
/// With no repository: `doc-standalone-` + h(full path); otherwise `doc-` + h(repo) + `-` +
/// h(full path). The full path is `path/title`, or just `title` when the path is empty; with
/// neither path nor title the last part is the `doc_type`, or `default`.
pub fn document_id(repo_url: Option<&str>, path: &str, title: &str, doc_type: &str) -> String {
    let repo = repo_url.map(normalize_repo_url);
    document_id_normalized(repo.as_deref(), path, title, doc_type)
}

/// [`document_id`] for a repository URL that is already normalised, so that a URL is
/// normalised exactly once (`r.git.git` loses one `.git`, not two).
pub fn document_id_normalized(
    repo_url: Option<&str>,
    path: &str,
    title: &str,
    doc_type: &str,
) -> String {
    let path = normalize_path(path);
    let title = title.trim();
    let full_path = match (path.is_empty(), title.is_empty()) {
        (true, true) if doc_type.trim().is_empty() => "default".to_string(),
        (true, true) => doc_type.trim().to_string(),
        (true, false) => title.to_string(),
        (false, true) => path,
        (false, false) => format!("{path}/{title}"),
    };
    match repo_url.filter(|u| !u.is_empty()) {
        None => format!("doc-standalone-{}", short_hash(&full_path)),
        Some(repo) => format!("doc-{}-{}", short_hash(repo), short_hash(&full_path)),
    }
}

/// The id of the folder metadata row for `path`.
pub fn folder_id(path: &str) -> String {
    format!("folder-{}", short_hash(&normalize_path(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_trimmed_and_collapsed() {
        assert_eq!(normalize_path(" /backend//api/ "), "backend/api");
        assert_eq!(normalize_path("///"), "");
        assert_eq!(normalize_path("a"), "a");
    }

    #[test]
    fn repo_urls_lose_slash_then_one_git_suffix() {
        assert_eq!(normalize_repo_url("https://github.com/o/r.git/"), "https://github.com/o/r");
        assert_eq!(
            normalize_repo_url("https://github.com/o/r.git.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(normalize_repo_url("https://github.com/o/r"), "https://github.com/o/r");
    }

    #[test]
    fn ids_follow_the_documented_derivation() {
        let expected = format!("doc-standalone-{}", short_hash("guides/Intro"));
        assert_eq!(document_id(None, "/guides/", " Intro ", ""), expected);
        assert_eq!(document_id(Some(""), "guides", "Intro", ""), expected);

        let with_repo = document_id(Some("https://github.com/o/r.git"), "a", "B", "");
        assert_eq!(
            with_repo,
            format!("doc-{}-{}", short_hash("https://github.com/o/r"), short_hash("a/B"))
        );
        assert_eq!(with_repo, document_id(Some("https://github.com/o/r/"), "a//", "B", "x"));
        let twice = document_id(Some("https://github.com/o/r.git.git"), "a", "B", "");
        assert_eq!(
            twice,
            format!("doc-{}-{}", short_hash("https://github.com/o/r.git"), short_hash("a/B"))
        );

        assert_eq!(
            document_id(None, "", "", ""),
            format!("doc-standalone-{}", short_hash("default"))
        );
        assert_eq!(
            document_id(None, "", "", "api"),
            format!("doc-standalone-{}", short_hash("api"))
        );
        assert_eq!(short_hash("x").len(), 12);
    }
}
