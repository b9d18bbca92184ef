//! Tracked repositories: one row per repository IsoCrates documents, created by its first
//! run, with the branch its pushes are followed on (none: the repository's default), the
//! folder its pages live under, and the commit last published.

use crate::ids::{normalize_path, short_hash};
use crate::{Error, Storage, Timestamp};
use isocrates_db::args;

/// A tracked repository.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Repository {
    /// A short id derived from the URL.
    pub id: String,
    /// Its URL, normalised.
    pub repo_url: String,
    /// The branch followed; `None` follows the repository's default branch.
    pub branch: Option<String>,
    /// The folder its pages live under.
    pub folder: String,
    /// The default branch, as its last clone found it.
    pub default_branch: Option<String>,
    /// The commit last published.
    pub last_commit: Option<String>,
    /// When its first run started.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl Repository {
    /// The branch whose pushes are documented.
    pub fn tracked_branch(&self) -> Option<&str> {
        self.branch.as_deref().or(self.default_branch.as_deref())
    }
}

const COLUMNS: &str =
    "id, repo_url, branch, folder, default_branch, last_commit, created_at, updated_at";

impl Storage {
    /// The repository's row, created with `folder` when it has none; the default branch is
    /// updated when `default_branch` is known.
    pub async fn track_repository(
        &self,
        repo_url: &str,
        folder: &str,
        default_branch: Option<&str>,
    ) -> Result<Repository, Error> {
        let now = Timestamp::now();
        self.db
            .execute(
                "INSERT INTO repositories (id, repo_url, branch, folder, default_branch, last_commit, \
                 created_at, updated_at) VALUES ($1, $2, NULL, $3, $4, NULL, $5, $5) \
                 ON CONFLICT (repo_url) DO NOTHING",
                args![short_hash(repo_url), repo_url, normalize_path(folder), default_branch.map(str::to_string), now],
            )
            .await?;
        if let Some(branch) = default_branch {
            self.db
                .execute(
                    "UPDATE repositories SET default_branch = $1 WHERE repo_url = $2",
                    args![branch, repo_url],
                )
                .await?;
        }
        self.repository(repo_url).await?.ok_or_else(|| Error::not_found("repository", repo_url))
    }

    /// The row of a repository, if it was ever documented.
    pub async fn repository(&self, repo_url: &str) -> Result<Option<Repository>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM repositories WHERE repo_url = $1");
        Ok(self.db.fetch_optional::<Repository>(sql, args![repo_url]).await?)
    }

    /// Every tracked repository, by URL.
    pub async fn repositories(&self) -> Result<Vec<Repository>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM repositories ORDER BY repo_url");
        Ok(self.db.fetch_all::<Repository>(sql, args![]).await?)
    }

    /// Changes the branch followed by the repository with id `id`; `None` follows its
    /// default branch again.
    pub async fn change_repository(
        &self,
        id: &str,
        branch: Option<Option<String>>,
    ) -> Result<Repository, Error> {
        if let Some(branch) = branch {
            let branch = branch.map(|b| b.trim().to_string()).filter(|b| !b.is_empty());
            let changed = self
                .db
                .execute(
                    "UPDATE repositories SET branch = $1, updated_at = $2 WHERE id = $3",
                    args![branch, Timestamp::now(), id],
                )
                .await?;
            if changed == 0 {
                return Err(Error::not_found("repository", id));
            }
        }
        let sql = format!("SELECT {COLUMNS} FROM repositories WHERE id = $1");
        self.db
            .fetch_optional::<Repository>(sql, args![id])
            .await?
            .ok_or_else(|| Error::not_found("repository", id))
    }

    /// Records the commit a run published.
    pub async fn set_published_commit(&self, repo_url: &str, commit: &str) -> Result<(), Error> {
        self.db
            .execute(
                "UPDATE repositories SET last_commit = $1, updated_at = $2 WHERE repo_url = $3",
                args![commit, Timestamp::now(), repo_url],
            )
            .await?;
        Ok(())
    }
}
