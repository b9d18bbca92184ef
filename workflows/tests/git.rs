//! Fetching real git repositories made in temporary folders: the commit asked for or the
//! tip, the files with their hashes, the cache that serves a resumed run without the
//! origin, and the clear errors of an empty repository, a missing commit and a repository
//! over the size limit.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use isocrates_workflows::git::{GitConfig, GitError, PathChanges, Snapshot, Source};

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// A repository with two commits; returns the first and the second.
fn repository(dir: &Path) -> (String, String) {
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("README.md"), "# Widgets\n").unwrap();
    std::fs::write(dir.join("src/lib.rs"), "pub fn one() -> u32 { 1 }\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "first"]);
    let first = git(dir, &["rev-parse", "HEAD"]);
    std::fs::write(dir.join("src/lib.rs"), "pub fn two() -> u32 { 2 }\n").unwrap();
    git(dir, &["commit", "-q", "-am", "second"]);
    (first, git(dir, &["rev-parse", "HEAD"]))
}

fn local(repos: &Path) -> GitConfig {
    GitConfig { allow_local: true, ..GitConfig::new(repos) }
}

fn fetch(source: &Source, commit: Option<&str>, config: &GitConfig) -> Result<Snapshot, GitError> {
    Snapshot::fetch(source, commit, config, &AtomicBool::new(false))
}

#[test]
fn the_tip_is_fetched_with_its_files_and_their_hashes() {
    let (origin, repos) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, second) = repository(origin.path());
    let config = local(repos.path());
    let source = Source::parse(origin.path().to_str().unwrap(), &config).unwrap();
    let snapshot = fetch(&source, None, &config).unwrap();
    assert_eq!(snapshot.commit, second);
    assert_eq!(snapshot.default_branch.as_deref(), Some("main"));
    let files = snapshot.files().unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["README.md", "src/lib.rs"]);
    let expected = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"# Widgets\n"));
    assert_eq!(files[0].sha256.as_deref(), Some(expected.as_str()));
    assert_eq!(files[0].size, 10);
    assert_eq!(snapshot.read("src/lib.rs").unwrap(), b"pub fn two() -> u32 { 2 }\n");
    assert_eq!(snapshot.read("src/missing.rs"), None);
    assert!(std::fs::read_dir(repos.path()).unwrap().count() == 1, "one folder per repository");
}

#[test]
fn an_older_commit_is_fetched_by_its_id_and_then_served_from_the_cache() {
    let (origin, repos) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, _) = repository(origin.path());
    let config = local(repos.path());
    let source = Source::parse(origin.path().to_str().unwrap(), &config).unwrap();
    let snapshot = fetch(&source, Some(&first), &config).unwrap();
    assert_eq!(snapshot.commit, first);
    assert_eq!(snapshot.read("src/lib.rs").unwrap(), b"pub fn one() -> u32 { 1 }\n");

    // A resumed run reads the same commit without reaching the origin.
    std::fs::remove_dir_all(origin.path().join(".git")).unwrap();
    let again = fetch(&source, Some(&first), &config).unwrap();
    assert_eq!(again.read("README.md").unwrap(), b"# Widgets\n");
}

#[test]
fn an_empty_repository_and_a_missing_commit_say_so() {
    let (origin, repos) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    git(origin.path(), &["init", "-q", "-b", "main"]);
    let config = local(repos.path());
    let source = Source::parse(origin.path().to_str().unwrap(), &config).unwrap();
    let empty = fetch(&source, None, &config).unwrap_err();
    assert!(matches!(empty, GitError::Empty(_)), "{empty:?}");
    assert!(!empty.is_retryable());

    repository(origin.path());
    let missing =
        fetch(&source, Some("0123456789abcdef0123456789abcdef01234567"), &config).unwrap_err();
    assert!(matches!(missing, GitError::NotFound(_)), "{missing:?}");
    let leftovers: Vec<_> =
        std::fs::read_dir(repos.path().read_dir().unwrap().next().unwrap().unwrap().path())
            .unwrap()
            .collect();
    assert!(leftovers.is_empty(), "a failed fetch leaves nothing behind: {leftovers:?}");
}

#[test]
fn a_repository_over_the_size_limit_is_refused_and_large_files_are_not_read() {
    let (origin, repos) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    repository(origin.path());
    std::fs::write(origin.path().join("big.bin"), vec![7u8; 4096]).unwrap();
    git(origin.path(), &["add", "."]);
    git(origin.path(), &["commit", "-q", "-m", "big"]);
    let source_config = local(repos.path());
    let source = Source::parse(origin.path().to_str().unwrap(), &source_config).unwrap();

    let tight = GitConfig { max_repo_bytes: 1000, ..local(repos.path()) };
    let error = fetch(&source, None, &tight).unwrap_err();
    assert!(matches!(error, GitError::TooLarge { limit: 1000, .. }), "{error:?}");
    assert!(error.to_string().contains("MAX_REPO_BYTES"));

    let small_files = GitConfig { max_file_bytes: 1024, ..local(repos.path()) };
    let snapshot = fetch(&source, None, &small_files).unwrap();
    let big = snapshot.files().unwrap().into_iter().find(|f| f.path == "big.bin").unwrap();
    assert_eq!((big.size, big.sha256), (4096, None));
    assert_eq!(snapshot.read("big.bin"), None);
}

#[test]
fn the_paths_changed_between_two_commits_come_from_their_trees() {
    let (origin, repos) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, _) = repository(origin.path());
    std::fs::write(origin.path().join("src/new.rs"), "pub fn three() {}\n").unwrap();
    git(origin.path(), &["rm", "-q", "README.md"]);
    git(origin.path(), &["add", "."]);
    git(origin.path(), &["commit", "-q", "-m", "third"]);
    let config = local(repos.path());
    let source = Source::parse(origin.path().to_str().unwrap(), &config).unwrap();
    let old = fetch(&source, Some(&first), &config).unwrap();
    let new = fetch(&source, None, &config).unwrap();
    let changes = new.changed_since(&old).unwrap();
    assert_eq!(changes.paths, ["README.md", "src/lib.rs", "src/new.rs"]);
    assert_eq!(changes.added, ["src/new.rs"]);
    assert_eq!(new.changed_since(&new).unwrap(), PathChanges::default());
}

#[test]
fn a_branch_is_fetched_by_its_name_and_a_missing_one_is_named() {
    let (origin, repos) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, second) = repository(origin.path());
    git(origin.path(), &["checkout", "-q", "-b", "develop"]);
    std::fs::write(origin.path().join("src/lib.rs"), "pub fn dev() {}\n").unwrap();
    git(origin.path(), &["commit", "-q", "-am", "on develop"]);
    let develop = git(origin.path(), &["rev-parse", "HEAD"]);
    git(origin.path(), &["checkout", "-q", "main"]);
    let config = local(repos.path());
    let source = Source::parse(origin.path().to_str().unwrap(), &config).unwrap();
    assert_eq!(fetch(&source, None, &config).unwrap().commit, second, "HEAD is main");
    let branch = fetch(&source, Some("refs/heads/develop"), &config).unwrap();
    assert_eq!(branch.commit, develop);
    assert_eq!(branch.read("src/lib.rs").unwrap(), b"pub fn dev() {}\n");
    let missing = fetch(&source, Some("refs/heads/nope"), &config).unwrap_err();
    assert!(matches!(missing, GitError::NotFound(_)), "{missing:?}");
    assert!(missing.to_string().contains("no branch nope"), "{missing}");
}
