//! Accounts and their grants: registration (the first user becomes the admin, atomically),
//! lookups for login and for every authenticated request, roles, deactivation and service
//! users for machine tokens.

use crate::ids::normalize_path;
use crate::permission::{Grant, Role};
use crate::{Error, Storage, Timestamp};
use isocrates_db::{Args, Tx, args};

/// An account, with the grants that decide what it may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id, the `sub` of its tokens.
    pub id: String,
    /// Lower-cased email; service users carry a synthetic one.
    pub email: String,
    /// The name shown to people.
    pub display_name: String,
    /// The global role; it matters only for admin endpoints.
    pub role: Role,
    /// A deactivated user's tokens stop working at once.
    pub is_active: bool,
    /// A machine account created for a service token.
    pub is_service: bool,
    /// When the account was created.
    pub created_at: Timestamp,
    /// Its grants, by path prefix.
    pub grants: Vec<Grant>,
}

/// What a registration asks for; the password is already hashed by the caller.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Email as typed; trimmed and lower-cased here.
    pub email: String,
    /// Display name as typed; trimmed here.
    pub display_name: String,
    /// The PHC string of the password hash.
    pub password_hash: String,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    email: String,
    display_name: String,
    role: String,
    is_active: bool,
    is_service: bool,
    created_at: Timestamp,
    password_hash: Option<String>,
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    path_prefix: String,
    role: String,
}

const USER_COLUMNS: &str =
    "id, email, display_name, role, is_active, is_service, created_at, password_hash";

/// The longest email we accept (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;
/// The longest display name or service subject we accept.
const MAX_NAME: usize = 200;
/// The longest grant prefix we accept.
const MAX_PREFIX: usize = 1000;

/// Trims and lower-cases an email, and checks that it has the shape of one.
pub fn normalize_email(email: &str) -> Result<String, Error> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= MAX_EMAIL
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if valid {
        Ok(email)
    } else {
        Err(Error::validation("email", "email must look like name@example.com"))
    }
}

fn check_name(field: &str, name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(Error::validation(
            field,
            format!("{field} must be 1 to {MAX_NAME} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::validation(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(name.to_string())
}

/// Normalises a grant prefix like a document path, refusing `.` and `..` segments.
pub fn normalize_prefix(prefix: &str) -> Result<String, Error> {
    let prefix = normalize_path(prefix);
    if prefix.len() > MAX_PREFIX {
        return Err(Error::validation("path_prefix", "path_prefix is too long"));
    }
    if prefix.split('/').any(|s| s == "." || s == "..") || prefix.chars().any(char::is_control) {
        return Err(Error::validation(
            "path_prefix",
            "path_prefix must not hold '.', '..' or control characters",
        ));
    }
    Ok(prefix)
}

impl UserRow {
    fn into_user(self, grants: Vec<Grant>) -> User {
        User {
            role: Role::parse(&self.role, "role").unwrap_or(Role::Viewer),
            id: self.id,
            email: self.email,
            display_name: self.display_name,
            is_active: self.is_active,
            is_service: self.is_service,
            created_at: self.created_at,
            grants,
        }
    }
}

fn grants_of(rows: Vec<GrantRow>) -> Vec<Grant> {
    rows.into_iter()
        .filter_map(|r| {
            Role::parse(&r.role, "role").ok().map(|role| Grant { path_prefix: r.path_prefix, role })
        })
        .collect()
}

impl Storage {
    /// Registers a user. When no user exists yet this one becomes `admin` with a root admin
    /// grant, whoever asks; the claim is one row keyed on a constant, so of two concurrent
    /// first registrations exactly one wins. Afterwards only an admin (`by_admin`) may
    /// register, and new users are viewers without grants.
    pub async fn register(&self, new: NewUser, by_admin: bool) -> Result<User, Error> {
        let email = normalize_email(&new.email)?;
        let display_name = check_name("display_name", &new.display_name)?;
        let id = uuid::Uuid::now_v7().to_string();
        let now = Timestamp::now();

        let mut tx = self.db.begin().await?;
        let taken = tx
            .fetch_optional::<IdRow>("SELECT id FROM users WHERE email = $1", args![&email])
            .await?;
        if taken.is_some() {
            return Err(Error::validation("email", "a user with this email already exists"));
        }
        // The user row must exist before the bootstrap row references it; a losing first
        // registration rolls both back.
        let insert_user = tx
            .execute(
                "INSERT INTO users (id, email, display_name, password_hash, role, is_active, \
                 is_service, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, TRUE, FALSE, $6, $6)",
                args![&id, &email, &display_name, new.password_hash, Role::Viewer.as_str(), now],
            )
            .await;
        if let Err(e) = insert_user {
            let e = Error::from(e);
            return Err(match e.unique_violation() {
                Some(_) => Error::validation("email", "a user with this email already exists"),
                None => e,
            });
        }
        let first = tx
            .execute(
                "INSERT INTO bootstrap (id, admin_user_id, created_at) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO NOTHING",
                args![&id, now],
            )
            .await?
            == 1;
        if first {
            tx.execute(
                "UPDATE users SET role = $1 WHERE id = $2",
                args![Role::Admin.as_str(), &id],
            )
            .await?;
            upsert_grant(&mut tx, &id, "", Role::Admin).await?;
        } else if !by_admin {
            return Err(Error::Forbidden(
                "registration is closed: only an admin can register users".to_string(),
            ));
        }
        tx.commit().await?;
        self.user(&id).await?.ok_or_else(|| Error::not_found("user", id))
    }

    /// Whether any user exists (registration then needs an admin).
    pub async fn has_users(&self) -> Result<bool, Error> {
        let row: Option<IdRow> =
            self.db.fetch_optional("SELECT admin_user_id AS id FROM bootstrap", vec![]).await?;
        Ok(row.is_some())
    }

    /// A user with its grants, by id. One query: every authenticated request asks it.
    pub async fn user(&self, id: &str) -> Result<Option<User>, Error> {
        #[derive(sqlx::FromRow)]
        struct Joined {
            #[sqlx(flatten)]
            user: UserRow,
            grant_prefix: Option<String>,
            grant_role: Option<String>,
        }
        let rows: Vec<Joined> = self
            .db
            .fetch_all(
                "SELECT u.id, u.email, u.display_name, u.role, u.is_active, u.is_service, \
                 u.created_at, u.password_hash, g.path_prefix AS grant_prefix, g.role AS grant_role \
                 FROM users u LEFT JOIN grants g ON g.user_id = u.id \
                 WHERE u.id = $1 ORDER BY g.path_prefix",
                args![id],
            )
            .await?;
        let mut grants = Vec::new();
        let mut user = None;
        for row in rows {
            if let (Some(path_prefix), Some(role)) = (row.grant_prefix, row.grant_role) {
                grants.push(GrantRow { path_prefix, role });
            }
            user.get_or_insert(row.user);
        }
        Ok(user.map(|u| u.into_user(grants_of(grants))))
    }

    /// A user and its password hash, by email, for login.
    pub async fn user_for_login(&self, email: &str) -> Result<Option<(User, String)>, Error> {
        let email = email.trim().to_lowercase();
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
        let Some(mut row) = self.db.fetch_optional::<UserRow>(sql, args![email]).await? else {
            return Ok(None);
        };
        let Some(hash) = row.password_hash.take() else {
            return Ok(None);
        };
        let grants = self.grants(&row.id).await?;
        Ok(Some((row.into_user(grants), hash)))
    }

    /// Every user, by creation time.
    pub async fn users(&self) -> Result<Vec<User>, Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id");
        let rows: Vec<UserRow> = self.db.fetch_all(sql, vec![]).await?;
        let mut users = Vec::with_capacity(rows.len());
        for row in rows {
            let grants = self.grants(&row.id).await?;
            users.push(row.into_user(grants));
        }
        Ok(users)
    }

    async fn grants(&self, user_id: &str) -> Result<Vec<Grant>, Error> {
        let rows: Vec<GrantRow> = self
            .db
            .fetch_all(
                "SELECT path_prefix, role FROM grants WHERE user_id = $1 ORDER BY path_prefix",
                args![user_id],
            )
            .await?;
        Ok(grants_of(rows))
    }

    /// Changes a user's global role.
    pub async fn set_role(&self, user_id: &str, role: Role) -> Result<User, Error> {
        self.update_user(
            "UPDATE users SET role = $1, updated_at = $2 WHERE id = $3",
            args![role.as_str(), Timestamp::now(), user_id],
            user_id,
        )
        .await
    }

    /// Deactivates a user; its tokens stop working on the next request.
    pub async fn deactivate(&self, user_id: &str) -> Result<User, Error> {
        self.update_user(
            "UPDATE users SET is_active = FALSE, updated_at = $1 WHERE id = $2",
            args![Timestamp::now(), user_id],
            user_id,
        )
        .await
    }

    async fn update_user(
        &self,
        sql: &'static str,
        args: Args,
        user_id: &str,
    ) -> Result<User, Error> {
        if self.db.execute(sql, args).await? == 0 {
            return Err(Error::not_found("user", user_id));
        }
        self.user(user_id).await?.ok_or_else(|| Error::not_found("user", user_id))
    }

    /// Gives `user_id` the role `role` on `path_prefix`, replacing a grant on the same
    /// prefix. Returns the stored grant.
    pub async fn grant(
        &self,
        user_id: &str,
        path_prefix: &str,
        role: Role,
    ) -> Result<Grant, Error> {
        let prefix = normalize_prefix(path_prefix)?;
        if role == Role::Service {
            return Err(Error::validation("role", "a grant's role is admin, editor or viewer"));
        }
        let mut tx = self.db.begin().await?;
        let exists = tx
            .fetch_optional::<IdRow>("SELECT id FROM users WHERE id = $1", args![user_id])
            .await?;
        if exists.is_none() {
            return Err(Error::not_found("user", user_id));
        }
        upsert_grant(&mut tx, user_id, &prefix, role).await?;
        tx.commit().await?;
        Ok(Grant { path_prefix: prefix, role })
    }

    /// Removes the grant on `path_prefix`, if there is one.
    pub async fn revoke(&self, user_id: &str, path_prefix: &str) -> Result<(), Error> {
        let prefix = normalize_prefix(path_prefix)?;
        self.db
            .execute(
                "DELETE FROM grants WHERE user_id = $1 AND path_prefix = $2",
                args![user_id, prefix],
            )
            .await?;
        Ok(())
    }

    /// The service user named `subject`, created on first use, whose grants become exactly
    /// an editor grant on `path_prefix`. Service users have no password; they authenticate
    /// by token only, and a human account never stands in for one.
    pub async fn service_user(&self, subject: &str, path_prefix: &str) -> Result<User, Error> {
        let subject = check_name("subject", subject)?;
        let prefix = normalize_prefix(path_prefix)?;
        let slug: String = subject
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' })
            .collect();
        // No '@': no person can register this address, so it never clashes with one.
        let email = format!("service:{slug}+{}", &crate::ids::short_hash(&subject)[..6]);
        let now = Timestamp::now();
        let mut tx = self.db.begin().await?;
        let existing = tx
            .fetch_optional::<IdRow>(
                "SELECT id FROM users WHERE email = $1 AND is_service = TRUE",
                args![&email],
            )
            .await?;
        let id = match existing {
            Some(row) => row.id,
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                tx.execute(
                    "INSERT INTO users (id, email, display_name, password_hash, role, is_active, \
                     is_service, created_at, updated_at) \
                     VALUES ($1, $2, $3, NULL, $4, TRUE, TRUE, $5, $5)",
                    args![&id, &email, &subject, Role::Service.as_str(), now],
                )
                .await?;
                id
            }
        };
        tx.execute("DELETE FROM grants WHERE user_id = $1", args![&id]).await?;
        upsert_grant(&mut tx, &id, &prefix, Role::Editor).await?;
        tx.commit().await?;
        self.user(&id).await?.ok_or_else(|| Error::not_found("user", id))
    }
}

#[derive(sqlx::FromRow)]
struct IdRow {
    id: String,
}

async fn upsert_grant(tx: &mut Tx, user_id: &str, prefix: &str, role: Role) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO grants (user_id, path_prefix, role, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, path_prefix) DO UPDATE SET role = excluded.role",
        args![user_id, prefix, role.as_str(), Timestamp::now()],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(normalize_email("  Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in ["", "ada", "ada@", "@x.io", "a b@x.io", "a@x", "a@@x.io", "a@.io"] {
            assert!(normalize_email(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn prefixes_refuse_dot_segments() {
        assert_eq!(normalize_prefix("/backend-product-a/").unwrap(), "backend-product-a");
        assert!(normalize_prefix("a/../b").is_err());
        assert_eq!(normalize_prefix("").unwrap(), "");
    }
}
