//! Personal trees: each user's own folders, holding references to documents. Every call
//! names the user it acts for, and an item of another user is [`Error::Forbidden`], so one
//! user never reads or changes another's tree. Whether the user may read a referenced
//! document is the caller's to check with the user's grants; the tree itself hides
//! references to documents outside the read scope it is given, or in the trash.

use std::collections::BTreeMap;

use crate::documents::ReadScope;
use crate::{Error, Storage, Timestamp};
use isocrates_db::args;

/// The longest personal folder name.
const MAX_NAME: usize = 200;

/// A folder of a personal tree.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PersonalFolder {
    /// Its id.
    pub folder_id: String,
    /// Whose it is.
    pub user_id: String,
    /// Its name, unique among its siblings.
    pub name: String,
    /// The folder holding it; `None` at the top.
    pub parent_id: Option<String>,
    /// Its place among its siblings.
    pub sort_order: i64,
    /// When it was made.
    pub created_at: Timestamp,
}

/// A reference to a document in a personal folder.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PersonalRef {
    /// Its id.
    pub ref_id: String,
    /// Whose it is.
    pub user_id: String,
    /// The folder holding it.
    pub folder_id: String,
    /// The document it points at.
    pub document_id: String,
    /// Its place among its siblings.
    pub sort_order: i64,
    /// When it was made.
    pub created_at: Timestamp,
}

/// A node of a personal tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalNode {
    /// The folder's or the reference's id.
    pub id: String,
    /// The folder's name, or the document's title.
    pub name: String,
    /// Whether it is a folder (else a reference).
    pub is_folder: bool,
    /// The folder, or the folder holding the reference.
    pub folder_id: String,
    /// The referenced document.
    pub document_id: Option<String>,
    /// The reference.
    pub ref_id: Option<String>,
    /// Subfolders by order then name, then references by order then title.
    pub children: Vec<PersonalNode>,
}

#[derive(sqlx::FromRow)]
struct RefRow {
    ref_id: String,
    folder_id: String,
    document_id: String,
    sort_order: i64,
    title: String,
    path: String,
}

const FOLDER_COLUMNS: &str = "folder_id, user_id, name, parent_id, sort_order, created_at";
const REF_COLUMNS: &str = "ref_id, user_id, folder_id, document_id, sort_order, created_at";

fn check_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::validation("name", "name must not be empty"));
    }
    if name.contains('/') {
        return Err(Error::validation("name", "name may not contain /"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(Error::validation(
            "name",
            format!("name is longer than {MAX_NAME} characters"),
        ));
    }
    Ok(name.to_string())
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

impl Storage {
    /// `user`'s folder `id`: 404 when there is none, 403 when it is another user's.
    pub async fn personal_folder(&self, user: &str, id: &str) -> Result<PersonalFolder, Error> {
        let sql = format!("SELECT {FOLDER_COLUMNS} FROM personal_folders WHERE folder_id = $1");
        match self.db.fetch_optional::<PersonalFolder>(sql, args![id]).await? {
            Some(folder) if folder.user_id == user => Ok(folder),
            Some(_) => Err(Error::Forbidden("that folder is another user's".into())),
            None => Err(Error::not_found("personal folder", id)),
        }
    }

    async fn personal_ref(&self, user: &str, id: &str) -> Result<PersonalRef, Error> {
        let sql = format!("SELECT {REF_COLUMNS} FROM personal_refs WHERE ref_id = $1");
        match self.db.fetch_optional::<PersonalRef>(sql, args![id]).await? {
            Some(found) if found.user_id == user => Ok(found),
            Some(_) => Err(Error::Forbidden("that reference is another user's".into())),
            None => Err(Error::not_found("personal reference", id)),
        }
    }

    async fn sibling_named(
        &self,
        user: &str,
        parent: Option<&str>,
        name: &str,
    ) -> Result<bool, Error> {
        #[derive(sqlx::FromRow)]
        struct Found {
            #[allow(dead_code)]
            folder_id: String,
        }
        let found: Option<Found> = self
            .db
            .fetch_optional(
                "SELECT folder_id FROM personal_folders WHERE user_id = $1 \
                 AND coalesce(parent_id, '') = $2 AND name = $3",
                args![user, parent.unwrap_or_default(), name],
            )
            .await?;
        Ok(found.is_some())
    }

    /// Makes a folder in `user`'s tree, under `parent` (another of theirs) or at the top.
    pub async fn create_personal_folder(
        &self,
        user: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<PersonalFolder, Error> {
        let name = check_name(name)?;
        if let Some(parent) = parent {
            self.personal_folder(user, parent).await?;
        }
        if self.sibling_named(user, parent, &name).await? {
            return Err(Error::Conflict(format!("a folder named {name} is there already")));
        }
        let id = new_id("pf");
        let inserted = self
            .db
            .execute(
                "INSERT INTO personal_folders (folder_id, user_id, name, parent_id, sort_order, created_at) \
                 VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT DO NOTHING",
                args![&id, user, &name, parent.map(str::to_string), Timestamp::now()],
            )
            .await?;
        if inserted == 0 {
            return Err(Error::Conflict(format!("a folder named {name} is there already")));
        }
        self.personal_folder(user, &id).await
    }

    /// Deletes `user`'s folder with everything in it.
    pub async fn delete_personal_folder(&self, user: &str, id: &str) -> Result<(), Error> {
        self.personal_folder(user, id).await?;
        // Deepest first, each folder's references before it, in one transaction: the
        // schema's cascades would do the same, but this way does not depend on them.
        let mut tx = self.db.begin().await?;
        let mut pending = vec![id.to_string()];
        let mut all = Vec::new();
        while let Some(folder) = pending.pop() {
            #[derive(sqlx::FromRow)]
            struct Child {
                folder_id: String,
            }
            let children: Vec<Child> = tx
                .fetch_all(
                    "SELECT folder_id FROM personal_folders WHERE parent_id = $1",
                    args![&folder],
                )
                .await?;
            pending.extend(children.into_iter().map(|c| c.folder_id));
            all.push(folder);
        }
        for folder in all.iter().rev() {
            tx.execute("DELETE FROM personal_refs WHERE folder_id = $1", args![folder]).await?;
            tx.execute("DELETE FROM personal_folders WHERE folder_id = $1", args![folder]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Moves `user`'s folder under `parent` (another of theirs), or to the top.
    pub async fn move_personal_folder(
        &self,
        user: &str,
        id: &str,
        parent: Option<&str>,
    ) -> Result<PersonalFolder, Error> {
        let folder = self.personal_folder(user, id).await?;
        if let Some(parent) = parent {
            // Walking up from the new parent must never meet the folder itself.
            let mut at = Some(self.personal_folder(user, parent).await?);
            while let Some(step) = at {
                if step.folder_id == folder.folder_id {
                    return Err(Error::validation(
                        "parent_id",
                        "a folder cannot move into itself or one of its subfolders",
                    ));
                }
                at = match step.parent_id {
                    Some(up) => Some(self.personal_folder(user, &up).await?),
                    None => None,
                };
            }
        }
        if folder.parent_id.as_deref() == parent {
            return Ok(folder);
        }
        if self.sibling_named(user, parent, &folder.name).await? {
            return Err(Error::Conflict(format!(
                "a folder named {} is there already",
                folder.name
            )));
        }
        self.db
            .execute(
                "UPDATE personal_folders SET parent_id = $1 WHERE folder_id = $2",
                args![parent.map(str::to_string), id],
            )
            .await?;
        self.personal_folder(user, id).await
    }

    /// Puts a reference to `document` in `user`'s folder; the one there already when it
    /// exists. The caller checks that the user may read the document.
    pub async fn add_personal_ref(
        &self,
        user: &str,
        folder: &str,
        document: &str,
    ) -> Result<(PersonalRef, bool), Error> {
        self.personal_folder(user, folder).await?;
        let inserted = self
            .db
            .execute(
                "INSERT INTO personal_refs (ref_id, user_id, folder_id, document_id, sort_order, created_at) \
                 VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT (folder_id, document_id) DO NOTHING",
                args![new_id("pr"), user, folder, document, Timestamp::now()],
            )
            .await?;
        let sql = format!(
            "SELECT {REF_COLUMNS} FROM personal_refs WHERE folder_id = $1 AND document_id = $2"
        );
        let found = self
            .db
            .fetch_optional::<PersonalRef>(sql, args![folder, document])
            .await?
            .ok_or_else(|| Error::not_found("personal reference", document))?;
        Ok((found, inserted == 1))
    }

    /// Removes `user`'s reference.
    pub async fn delete_personal_ref(&self, user: &str, id: &str) -> Result<(), Error> {
        self.personal_ref(user, id).await?;
        self.db.execute("DELETE FROM personal_refs WHERE ref_id = $1", args![id]).await?;
        Ok(())
    }

    /// Moves `user`'s reference into another of their folders; when that folder holds the
    /// document already, the reference there is the answer and this one goes.
    pub async fn move_personal_ref(
        &self,
        user: &str,
        id: &str,
        target: &str,
    ) -> Result<PersonalRef, Error> {
        let moving = self.personal_ref(user, id).await?;
        self.personal_folder(user, target).await?;
        if moving.folder_id == target {
            return Ok(moving);
        }
        let (there, _) = self.add_personal_ref(user, target, &moving.document_id).await?;
        self.db.execute("DELETE FROM personal_refs WHERE ref_id = $1", args![id]).await?;
        Ok(there)
    }

    /// `user`'s tree; references to documents outside `scope` or in the trash are left out.
    pub async fn personal_tree(
        &self,
        user: &str,
        scope: &ReadScope,
    ) -> Result<Vec<PersonalNode>, Error> {
        let sql = format!(
            "SELECT {FOLDER_COLUMNS} FROM personal_folders WHERE user_id = $1 ORDER BY sort_order, name"
        );
        let folders: Vec<PersonalFolder> = self.db.fetch_all(sql, args![user]).await?;
        let refs: Vec<RefRow> = self
            .db
            .fetch_all(
                "SELECT r.ref_id, r.folder_id, r.document_id, r.sort_order, d.title, d.path \
                 FROM personal_refs r JOIN documents d ON d.id = r.document_id \
                 WHERE r.user_id = $1 AND d.deleted_at IS NULL ORDER BY r.sort_order, d.title",
                args![user],
            )
            .await?;
        let mut children: BTreeMap<Option<String>, Vec<PersonalFolder>> = BTreeMap::new();
        for folder in folders {
            children.entry(folder.parent_id.clone()).or_default().push(folder);
        }
        let mut held: BTreeMap<String, Vec<RefRow>> = BTreeMap::new();
        for r in refs.into_iter().filter(|r| scope.allows(&r.path)) {
            held.entry(r.folder_id.clone()).or_default().push(r);
        }
        Ok(personal_nodes(None, &mut children, &mut held))
    }
}

fn personal_nodes(
    parent: Option<String>,
    children: &mut BTreeMap<Option<String>, Vec<PersonalFolder>>,
    held: &mut BTreeMap<String, Vec<RefRow>>,
) -> Vec<PersonalNode> {
    let folders = children.remove(&parent).unwrap_or_default();
    let mut out = Vec::with_capacity(folders.len());
    for folder in folders {
        let mut nodes = personal_nodes(Some(folder.folder_id.clone()), children, held);
        let mut refs = held.remove(&folder.folder_id).unwrap_or_default();
        refs.sort_by(|a, b| (a.sort_order, &a.title).cmp(&(b.sort_order, &b.title)));
        nodes.extend(refs.into_iter().map(|r| PersonalNode {
            id: r.ref_id.clone(),
            name: r.title,
            is_folder: false,
            folder_id: r.folder_id,
            document_id: Some(r.document_id),
            ref_id: Some(r.ref_id),
            children: Vec::new(),
        }));
        out.push(PersonalNode {
            id: folder.folder_id.clone(),
            name: folder.name,
            is_folder: true,
            folder_id: folder.folder_id,
            document_id: None,
            ref_id: None,
            children: nodes,
        });
    }
    out
}
