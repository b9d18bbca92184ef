//! Tracked repositories: one row per repository IsoCrates documents, created by its first
//! run, with the branch its pushes are followed on (none: the repository's default), the
//! folder its pages live under (which an admin may move them out of), the commit last
//! published, and what GitHub's API says of it.

use crate::ids::{normalize_path, short_hash};
use crate::{Error, Storage, Timestamp};
use isocrates_db::{Arg, args};

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
    /// The default branch, as GitHub's API or the last clone found it.
    pub default_branch: Option<String>,
    /// Whether only its members can read it, as GitHub's API last said.
    #[sqlx(rename = "is_private")]
    pub private: Option<bool>,
    /// The commit last published.
    pub last_commit: Option<String>,
    /// When its first run started.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl Repository {
    /// `folder`, normalised, when the repository's pages may move there: a folder, and
    /// not one inside the folder they are in now.
    pub fn check_new_folder(&self, folder: &str) -> Result<String, Error> {
        let target = crate::documents::check_path("folder", folder)?;
        if target.is_empty() {
            return Err(Error::validation(
                "folder",
                "folder must name a folder, such as docs/shop",
            ));
        }
        if target.starts_with(&format!("{}/", self.folder)) {
            return Err(Error::validation(
                "folder",
                format!(
                    "{target} is inside the repository's folder {}: pick a folder outside it",
                    self.folder
                ),
            ));
        }
        Ok(target)
    }

    /// The branch whose pushes are documented.
    pub fn tracked_branch(&self) -> Option<&str> {
        self.branch.as_deref().or(self.default_branch.as_deref())
    }
}

const COLUMNS: &str =
    "id, repo_url, branch, folder, default_branch, is_private, last_commit, created_at, updated_at";

impl Storage {
    /// The repository's row, created with `folder` when it has none; the default branch
    /// and privacy are updated when known.
    pub async fn track_repository(
        &self,
        repo_url: &str,
        folder: &str,
        default_branch: Option<&str>,
        private: Option<bool>,
    ) -> Result<Repository, Error> {
        let now = Timestamp::now();
        self.db
            .execute(
                "INSERT INTO repositories (id, repo_url, branch, folder, default_branch, is_private, \
                 last_commit, created_at, updated_at) VALUES ($1, $2, NULL, $3, $4, $5, NULL, $6, $6) \
                 ON CONFLICT (repo_url) DO UPDATE SET \
                 default_branch = coalesce(excluded.default_branch, repositories.default_branch), \
                 is_private = coalesce(excluded.is_private, repositories.is_private)",
                args![
                    short_hash(repo_url),
                    repo_url,
                    normalize_path(folder),
                    default_branch.map(str::to_string),
                    Arg::Bool(private),
                    now
                ],
            )
            .await?;
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
        self.repository_with_id(id).await
    }

    /// Moves the pages of the repository with id `id` from its folder to `folder`, and
    /// makes `folder` the one its runs publish into. Pages keep their ids and the paths
    /// below the folder; a page a person moved out of the folder stays where it is. The
    /// pages move one by one and the folder changes last, so asking again after a failure
    /// finishes the move.
    pub async fn move_repository(&self, id: &str, folder: &str) -> Result<Repository, Error> {
        let row = self.repository_with_id(id).await?;
        let target = row.check_new_folder(folder)?;
        if row.folder == target {
            return Ok(row);
        }
        for doc in self.documents_of_repo(&row.repo_url).await? {
            let below = if doc.path == row.folder {
                Some("")
            } else {
                doc.path.strip_prefix(&format!("{}/", row.folder))
            };
            let Some(below) = below else { continue };
            let moved = if below.is_empty() { target.clone() } else { format!("{target}/{below}") };
            self.move_document(&doc.id, &moved).await?;
        }
        self.db
            .execute(
                "UPDATE repositories SET folder = $1, updated_at = $2 WHERE id = $3",
                args![&target, Timestamp::now(), id],
            )
            .await?;
        self.repository_with_id(id).await
    }

    /// The row of the repository with id `id`.
    pub async fn repository_with_id(&self, id: &str) -> Result<Repository, Error> {
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
