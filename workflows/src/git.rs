//! Where a run's source comes from: a repository URL checked against the configuration,
//! fetched with `gix` into a cache under `REPOS_DIR`, and read as the files of one commit.
//!
//! Nothing is checked out. A clone is a bare repository, fetched shallow at the commit a run
//! documents, at `REPOS_DIR/<repository>/<commit>.git`; files are read from its object
//! database. So a path in the repository can never write outside `REPOS_DIR`, whatever it
//! holds, and a worker that resumes a run on another machine fetches the same commit again.
//! A clone is made in a temporary folder beside its final place and renamed into it once
//! complete, so a crash leaves no half clone behind to be trusted.
//!
//! Everything here blocks (gix's network client is blocking): call it from
//! `tokio::task::spawn_blocking`.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where repositories may come from and how big they may be.
#[derive(Debug, Clone)]
pub struct GitConfig {
    /// `REPOS_DIR`: the folder that holds every clone.
    pub repos_dir: PathBuf,
    /// `ALLOWED_GIT_HOSTS`: the hosts https URLs may name.
    pub allowed_hosts: Vec<String>,
    /// `ALLOW_LOCAL_REPOS`: whether a local path may be documented.
    pub allow_local: bool,
    /// `GITHUB_TOKEN`: sent to github.com only, for private repositories.
    pub github_token: Option<SecretString>,
    /// `MAX_REPO_BYTES`: the most bytes of files one commit may hold.
    pub max_repo_bytes: u64,
    /// `MAX_FILE_BYTES`: files larger than this are listed but never read.
    pub max_file_bytes: u64,
}

/// The hosts allowed when `ALLOWED_GIT_HOSTS` is not set.
pub const DEFAULT_HOSTS: [&str; 3] = ["github.com", "gitlab.com", "bitbucket.org"];

impl GitConfig {
    /// The defaults, with clones under `repos_dir`.
    pub fn new(repos_dir: impl Into<PathBuf>) -> GitConfig {
        GitConfig {
            repos_dir: repos_dir.into(),
            allowed_hosts: DEFAULT_HOSTS.iter().map(|h| h.to_string()).collect(),
            allow_local: false,
            github_token: None,
            max_repo_bytes: 512 * 1024 * 1024,
            max_file_bytes: 1024 * 1024,
        }
    }
}

/// Why a repository cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    /// The URL or path is refused by the configuration.
    #[error("{0}")]
    NotAllowed(String),
    /// There is no such repository, or no such commit in it.
    #[error("{0}")]
    NotFound(String),
    /// The repository has no commit.
    #[error("the repository {0} has no commits yet: push a commit, then run again")]
    Empty(String),
    /// The commit holds more than `MAX_REPO_BYTES`.
    #[error(
        "the repository holds {bytes} bytes of files at this commit, more than MAX_REPO_BYTES \
         ({limit}): raise MAX_REPO_BYTES to document it"
    )]
    TooLarge {
        /// Bytes of files at the commit.
        bytes: u64,
        /// `MAX_REPO_BYTES`.
        limit: u64,
    },
    /// Fetching failed in a way that may pass (the network, the server).
    #[error("fetching {url} failed: {message}")]
    Fetch {
        /// The repository.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The local cache under `REPOS_DIR` is unusable.
    #[error("the clone cache under REPOS_DIR failed: {0}")]
    Cache(String),
}

impl GitError {
    /// Whether trying again later can help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, GitError::Fetch { .. } | GitError::Cache(_))
    }
}

/// A repository a run may read: an https URL on an allowed host, or a local path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An https URL.
    Remote(String),
    /// A folder on this machine holding a git repository.
    Local(PathBuf),
}

impl Source {
    /// Checks `url` against `config`: https on an allowed host, without credentials or
    /// `..`; or, when local repositories are allowed, an absolute path to a git repository.
    pub fn parse(url: &str, config: &GitConfig) -> Result<Source, GitError> {
        let url = url.trim();
        let refuse = |why: String| Err(GitError::NotAllowed(why));
        if let Some(rest) = url.strip_prefix("https://") {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if authority.contains('@') {
                return refuse(format!(
                    "{url}: credentials do not belong in a repository URL; set GITHUB_TOKEN for \
                     private GitHub repositories"
                ));
            }
            let host = authority.split(':').next().unwrap_or_default().to_ascii_lowercase();
            if !config.allowed_hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(&host)) {
                return refuse(format!(
                    "{url}: the host {host} is not in ALLOWED_GIT_HOSTS ({}); add it there to \
                     document its repositories",
                    config.allowed_hosts.join(", ")
                ));
            }
            let path = &rest[authority.len()..];
            if path.split('/').any(|segment| segment == ".." || segment == ".") {
                return refuse(format!("{url}: a repository URL may not contain . or .. segments"));
            }
            if path.trim_matches('/').split('/').filter(|s| !s.is_empty()).count() < 2 {
                return refuse(format!(
                    "{url}: name a repository, such as https://{host}/owner/name"
                ));
            }
            return Ok(Source::Remote(url.to_string()));
        }
        if url.contains("://") || url.starts_with("git@") {
            let scheme = url.split("://").next().filter(|_| url.contains("://")).unwrap_or("ssh");
            return refuse(format!(
                "{url}: only https URLs are fetched (not {scheme}); use the repository's https \
                 URL{}",
                if scheme == "file" { ", or a plain path with ALLOW_LOCAL_REPOS=true" } else { "" }
            ));
        }
        if !config.allow_local {
            return refuse(format!(
                "{url}: local paths are only read with ALLOW_LOCAL_REPOS=true; use an https URL"
            ));
        }
        let path = Path::new(url);
        if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
            return refuse(format!(
                "{url}: a local repository must be an absolute path without .."
            ));
        }
        if !path.is_dir() {
            return Err(GitError::NotFound(format!("{url}: no such folder")));
        }
        if gix::open(path).is_err() {
            return Err(GitError::NotFound(format!("{url}: not a git repository")));
        }
        Ok(Source::Local(path.to_path_buf()))
    }

    /// How it is named in messages.
    pub fn display(&self) -> String {
        match self {
            Source::Remote(url) => url.clone(),
            Source::Local(path) => path.display().to_string(),
        }
    }
}

/// One file of a commit, as the clone checkpoint records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its path in the repository, with `/` separators.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its content, in hex; none for a file over `MAX_FILE_BYTES`.
    pub sha256: Option<String>,
}

/// The paths two commits differ in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathChanges {
    /// Every path added, changed or removed, sorted.
    pub paths: Vec<String>,
    /// The paths among them that the older commit did not have, sorted.
    pub added: Vec<String>,
}

/// A commit of a repository, fetched and ready to read.
#[derive(Debug)]
pub struct Snapshot {
    repo: gix::Repository,
    /// The commit, in full hex.
    pub commit: String,
    /// The branch the repository's HEAD names, when the server said.
    pub default_branch: Option<String>,
    max_file_bytes: u64,
}

impl Snapshot {
    /// Fetches `revision` of `source` into the cache, or opens the clone already there: a
    /// full commit id, a full branch name such as `refs/heads/main`, or HEAD when `None`.
    pub fn fetch(
        source: &Source,
        revision: Option<&str>,
        config: &GitConfig,
        interrupt: &AtomicBool,
    ) -> Result<Snapshot, GitError> {
        let folder = config.repos_dir.join(cache_name(source));
        std::fs::create_dir_all(&folder)
            .map_err(|e| GitError::Cache(format!("cannot create {}: {e}", folder.display())))?;
        let commit = revision;
        if let Some(commit) = commit.filter(|r| !r.starts_with("refs/")) {
            let cached = folder.join(format!("{commit}.git"));
            if let Some(snapshot) = open_cached(&cached, commit, config) {
                return Ok(snapshot);
            }
        }
        let temporary = folder.join(format!(".fetching-{}", ulid::Ulid::generate()));
        let result = clone_into(source, commit, config, &temporary, interrupt);
        let (commit_id, default_branch) = match result {
            Ok(found) => found,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&temporary);
                return Err(error);
            }
        };
        let target = folder.join(format!("{commit_id}.git"));
        if target.exists() {
            let _ = std::fs::remove_dir_all(&temporary);
        } else if let Err(e) = std::fs::rename(&temporary, &target) {
            let _ = std::fs::remove_dir_all(&temporary);
            return Err(GitError::Cache(format!(
                "cannot move the clone to {}: {e}",
                target.display()
            )));
        }
        prune(&folder, &target);
        let mut snapshot = open_cached(&target, &commit_id, config).ok_or_else(|| {
            GitError::Cache(format!("the clone at {} cannot be opened", target.display()))
        })?;
        snapshot.default_branch = default_branch;
        Ok(snapshot)
    }

    /// Every regular file of the commit (no symlinks or submodules), sorted by path, with
    /// its size and, when it is not too large, its SHA-256.
    pub fn files(&self) -> Result<Vec<FileEntry>, GitError> {
        let mut files = Vec::new();
        for (path, id) in self.blobs()? {
            let size = self
                .repo
                .find_header(id)
                .map_err(|e| GitError::Cache(format!("reading {path}: {e}")))?
                .size();
            let sha256 = if size <= self.max_file_bytes {
                let blob = self
                    .repo
                    .find_object(id)
                    .map_err(|e| GitError::Cache(format!("reading {path}: {e}")))?;
                Some(hex::encode(Sha256::digest(&blob.data)))
            } else {
                None
            };
            files.push(FileEntry { path, size, sha256 });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// The paths whose content differs between `older` and this commit. Blob ids are
    /// compared, so no file is read.
    pub fn changed_since(&self, older: &Snapshot) -> Result<PathChanges, GitError> {
        let before: std::collections::BTreeMap<String, gix::ObjectId> =
            older.blobs()?.into_iter().collect();
        let after: std::collections::BTreeMap<String, gix::ObjectId> =
            self.blobs()?.into_iter().collect();
        let mut changes = PathChanges::default();
        for (path, id) in &after {
            match before.get(path) {
                None => {
                    changes.paths.push(path.clone());
                    changes.added.push(path.clone());
                }
                Some(old) if old != id => changes.paths.push(path.clone()),
                Some(_) => {}
            }
        }
        changes.paths.extend(before.keys().filter(|path| !after.contains_key(*path)).cloned());
        changes.paths.sort();
        Ok(changes)
    }

    /// The content of the file at `path`, when the commit has it and it is not over
    /// `MAX_FILE_BYTES`.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let commit = self.repo.find_commit(self.commit_id().ok()?).ok()?;
        let tree = commit.tree().ok()?;
        let entry = tree.lookup_entry_by_path(path).ok()??;
        if !matches!(entry.mode().kind(), EntryKind::Blob | EntryKind::BlobExecutable) {
            return None;
        }
        let id = entry.object_id();
        if self.repo.find_header(id).ok()?.size() > self.max_file_bytes {
            return None;
        }
        Some(self.repo.find_object(id).ok()?.detach().data)
    }

    fn commit_id(&self) -> Result<gix::ObjectId, GitError> {
        gix::ObjectId::from_hex(self.commit.as_bytes())
            .map_err(|e| GitError::Cache(format!("{}: {e}", self.commit)))
    }

    fn blobs(&self) -> Result<Vec<(String, gix::ObjectId)>, GitError> {
        let broken =
            |e: &dyn std::fmt::Display| GitError::Cache(format!("reading the commit: {e}"));
        let commit = self.repo.find_commit(self.commit_id()?).map_err(|e| broken(&e))?;
        let tree = commit.tree().map_err(|e| broken(&e))?;
        let entries = tree.traverse().breadthfirst.files().map_err(|e| broken(&e))?;
        Ok(entries
            .into_iter()
            .filter(|e| matches!(e.mode.kind(), EntryKind::Blob | EntryKind::BlobExecutable))
            .map(|e| (e.filepath.to_str_lossy().into_owned(), e.oid))
            .collect())
    }
}

/// Opens the clone at `path` when it holds `commit`.
fn open_cached(path: &Path, commit: &str, config: &GitConfig) -> Option<Snapshot> {
    let repo = gix::open(path).ok()?;
    let id = gix::ObjectId::from_hex(commit.as_bytes()).ok()?;
    repo.find_commit(id).ok()?;
    // Used now: the newest by date is what `prune` keeps besides the clone it just made.
    let _ = std::fs::File::open(path).and_then(|f| f.set_modified(std::time::SystemTime::now()));
    Some(Snapshot {
        repo,
        commit: commit.to_string(),
        default_branch: None,
        max_file_bytes: config.max_file_bytes,
    })
}

/// Clones `commit` (or HEAD) of `source` shallowly into `path`, bare; returns the commit
/// and the default branch. The size limit is checked once the pack is fetched, on the
/// sizes the object database knows, before any file is read.
///
/// FIXME: the pack is downloaded whole before `MAX_REPO_BYTES` is checked, so a huge
/// repository costs its download and disk first; counting received bytes through gix's
/// progress and setting the interrupt flag past the limit would stop it early.
fn clone_into(
    source: &Source,
    commit: Option<&str>,
    config: &GitConfig,
    path: &Path,
    interrupt: &AtomicBool,
) -> Result<(String, Option<String>), GitError> {
    let shown = source.display();
    let fetch_failed = |message: String| GitError::Fetch { url: shown.clone(), message };
    let url = match source {
        Source::Remote(url) => url.clone(),
        Source::Local(dir) => dir.display().to_string(),
    };
    let mut prepare = gix::prepare_clone_bare(url.as_str(), path)
        .map_err(|e| GitError::Cache(format!("cannot prepare {}: {e}", path.display())))?
        .with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(1.try_into().expect("1 > 0")))
        .with_revision(Some(commit.unwrap_or("HEAD")))
        .map_err(|e| GitError::NotFound(format!("{shown}: {commit:?} is not a commit: {e}")))?;
    if let (Some(token), Source::Remote(url)) = (&config.github_token, source)
        && host_of(url) == "github.com"
    {
        let credentials = basic_auth("x-access-token", token.expose_secret());
        prepare = prepare.with_in_memory_config_overrides([format!(
            "http.extraHeader=Authorization: Basic {credentials}"
        )]);
    }
    let (repo, outcome) = prepare.fetch_only(gix::progress::Discard, interrupt).map_err(|e| {
        let message = error_chain(&e);
        if message.contains("requested revision") {
            // The server has no such commit; asked for HEAD, it has no commit at all.
            match commit {
                Some(branch) if branch.starts_with("refs/heads/") => GitError::NotFound(format!(
                    "{shown}: there is no branch {}; change the repository's tracked branch",
                    &branch["refs/heads/".len()..]
                )),
                Some(commit) => GitError::NotFound(format!(
                    "{shown}: the commit {commit} is not in the repository"
                )),
                None => GitError::Empty(shown.clone()),
            }
        } else if looks_missing(&message) {
            match commit {
                Some(commit) => GitError::NotFound(format!(
                    "{shown}: the repository or its commit {commit} cannot be found ({message})"
                )),
                None => GitError::NotFound(format!("{shown}: no such repository ({message})")),
            }
        } else if looks_empty(&message) {
            GitError::Empty(shown.clone())
        } else {
            fetch_failed(message)
        }
    })?;
    let default_branch = outcome.ref_map.remote_refs.iter().find_map(|r| match r {
        gix::protocol::handshake::Ref::Symbolic { full_ref_name, target, .. }
            if full_ref_name == "HEAD" =>
        {
            Some(target.to_str_lossy().trim_start_matches("refs/heads/").to_string())
        }
        _ => None,
    });
    let head = repo.head_id().map_err(|_| GitError::Empty(shown.clone()))?.detach();
    let commit_id = head.to_hex().to_string();
    // The limit is checked on the sizes the object database knows.
    let snapshot = Snapshot {
        repo,
        commit: commit_id.clone(),
        default_branch: None,
        max_file_bytes: config.max_file_bytes,
    };
    let mut bytes = 0u64;
    for (path, id) in snapshot.blobs()? {
        bytes += snapshot
            .repo
            .find_header(id)
            .map_err(|e| GitError::Cache(format!("reading {path}: {e}")))?
            .size();
        if bytes > config.max_repo_bytes {
            return Err(GitError::TooLarge { bytes, limit: config.max_repo_bytes });
        }
    }
    Ok((commit_id, default_branch))
}

/// The cache folder of `source`: its name, made safe, and a hash of its full spelling, so
/// that no URL or path can name a folder outside `REPOS_DIR`.
fn cache_name(source: &Source) -> String {
    let spelled = source.display();
    let name = spelled
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .take(48)
        .collect();
    let hash = hex::encode(&Sha256::digest(spelled.as_bytes())[..6]);
    format!("{}-{hash}", if safe.is_empty() { "repository" } else { &safe })
}

/// Keeps the newest clones of a repository: `keep` and the one before it. A fetch left
/// half done by a crash is removed once it is an hour old, when no live fetch can own it.
fn prune(folder: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else { return };
    let dated: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p != keep)
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let (abandoned, dated): (Vec<_>, Vec<_>) = dated.into_iter().partition(|(modified, p)| {
        *modified < hour_ago
            && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".fetching-"))
    });
    for (_, path) in abandoned {
        let _ = std::fs::remove_dir_all(path);
    }
    let mut clones: Vec<(std::time::SystemTime, PathBuf)> =
        dated.into_iter().filter(|(_, p)| p.extension().is_some_and(|ext| ext == "git")).collect();
    clones.sort();
    clones.reverse();
    for (_, old) in clones.into_iter().skip(1) {
        let _ = std::fs::remove_dir_all(old);
    }
}

fn host_of(url: &str) -> String {
    url.trim_start_matches("https://")
        .split(['/', ':'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = inner.source();
    }
    message
}

fn looks_missing(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "not found",
        "404",
        "does not appear to be a git repository",
        "not our ref",
        "no such",
        "could not read from remote",
    ]
    .iter()
    .any(|sign| lower.contains(sign))
}

fn looks_empty(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("unborn") || lower.contains("empty") || lower.contains("no refs")
}

/// `user:password` in base64, for a basic `Authorization` header.
fn basic_auth(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GitConfig {
        GitConfig::new("/tmp/unused")
    }

    #[test]
    fn https_urls_on_allowed_hosts_pass_and_others_say_why_not() {
        let ok = Source::parse("https://github.com/acme/widgets", &config()).unwrap();
        assert_eq!(ok, Source::Remote("https://github.com/acme/widgets".into()));
        for (url, says) in [
            ("https://evil.example/acme/widgets", "ALLOWED_GIT_HOSTS"),
            ("http://github.com/acme/widgets", "only https"),
            ("git@github.com:acme/widgets.git", "only https"),
            ("file:///srv/repo", "ALLOW_LOCAL_REPOS"),
            ("https://user:pw@github.com/acme/widgets", "GITHUB_TOKEN"),
            ("https://github.com/acme/../etc", ".."),
            ("https://github.com/acme", "name a repository"),
            ("/srv/repo", "ALLOW_LOCAL_REPOS=true"),
        ] {
            let error = Source::parse(url, &config()).unwrap_err();
            assert!(matches!(error, GitError::NotAllowed(_)), "{url}: {error:?}");
            assert!(error.to_string().contains(says), "{url}: {error}");
        }
    }

    #[test]
    fn local_paths_must_be_absolute_without_parent_steps() {
        let local = GitConfig { allow_local: true, ..config() };
        for path in ["relative/repo", "/srv/../etc"] {
            let error = Source::parse(path, &local).unwrap_err();
            assert!(error.to_string().contains("absolute path without .."), "{error}");
        }
        let missing = Source::parse("/no/such/folder/anywhere", &local).unwrap_err();
        assert!(matches!(missing, GitError::NotFound(_)));
    }

    #[test]
    fn cache_folders_are_named_safely() {
        let name = cache_name(&Source::Remote("https://github.com/acme/Wid..gets.git".into()));
        assert!(name.starts_with("Wid--gets-"), "{name}");
        assert!(!name.contains('/') && !name.contains(".."));
        assert_ne!(name, cache_name(&Source::Remote("https://gitlab.com/acme/Wid..gets".into())));
    }

    #[test]
    fn basic_auth_is_base64() {
        assert_eq!(basic_auth("x-access-token", "abc"), "eC1hY2Nlc3MtdG9rZW46YWJj");
        assert_eq!(basic_auth("a", "b"), "YTpi");
    }
}
