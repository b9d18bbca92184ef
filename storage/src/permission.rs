//! Roles, grants and [`check_permission`], the one rule that decides what a caller may do
//! with a path.

use serde::{Deserialize, Serialize};

use crate::Error;

/// A role, either global (on a user) or on a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads, edits, deletes and administers.
    Admin,
    /// Reads, edits and deletes.
    Editor,
    /// Reads.
    Viewer,
    /// A machine: writes under its grants and deletes AI-authored documents it is granted.
    Service,
}

impl Role {
    /// The role's name as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
            Role::Service => "service",
        }
    }

    /// Parses a role name; `field` names the field in the error.
    pub fn parse(name: &str, field: &str) -> Result<Role, Error> {
        match name.trim() {
            "admin" => Ok(Role::Admin),
            "editor" => Ok(Role::Editor),
            "viewer" => Ok(Role::Viewer),
            "service" => Ok(Role::Service),
            other => Err(Error::Validation {
                field: field.to_string(),
                message: format!("unknown role '{other}': use admin, editor, viewer or service"),
            }),
        }
    }
}

/// What a caller wants to do with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read a document or folder.
    Read,
    /// Create or change one.
    Edit,
    /// Move one to the trash, restore it, or delete it.
    Delete,
    /// Administer what lives under the path.
    Admin,
}

/// A role on every path at or below `path_prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// A normalised path; `""` covers everything.
    pub path_prefix: String,
    /// What the grant allows.
    pub role: Role,
}

impl Grant {
    /// A grant of `role` on every path.
    pub fn root(role: Role) -> Grant {
        Grant { path_prefix: String::new(), role }
    }
}

/// True when `path` is `prefix` or lies below it on a segment boundary: `a` covers `a` and
/// `a/b`, never `ab`; `""` covers everything.
pub fn covers(prefix: &str, path: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'/')
}

/// The role the caller holds on `path`: that of the grant with the longest covering prefix.
pub fn role_on(grants: &[Grant], path: &str) -> Option<Role> {
    grants
        .iter()
        .filter(|g| covers(&g.path_prefix, path))
        .max_by_key(|g| g.path_prefix.len())
        .map(|g| g.role)
}

/// Whether the grants allow `action` on `path`. The longest matching prefix decides, so a
/// broad viewer grant and a narrow editor grant combine as expected.
pub fn check_permission(grants: &[Grant], path: &str, action: Action) -> bool {
    let Some(role) = role_on(grants, path) else {
        return false;
    };
    matches!(
        (role, action),
        (Role::Admin, _)
            | (Role::Editor | Role::Service, Action::Read | Action::Edit | Action::Delete)
            | (Role::Viewer, Action::Read)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(prefix: &str, role: Role) -> Grant {
        Grant { path_prefix: prefix.to_string(), role }
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(covers("", "anything/at/all"));
        assert!(covers("a", "a"));
        assert!(covers("a", "a/b"));
        assert!(!covers("a", "ab"));
        assert!(!covers("a/b", "a"));
    }

    #[test]
    fn longest_prefix_wins_both_ways() {
        let broad_read_narrow_write = [grant("", Role::Viewer), grant("team/a", Role::Editor)];
        assert!(check_permission(&broad_read_narrow_write, "team/b", Action::Read));
        assert!(!check_permission(&broad_read_narrow_write, "team/b", Action::Edit));
        assert!(check_permission(&broad_read_narrow_write, "team/a/x", Action::Edit));

        let broad_write_narrow_read = [grant("", Role::Editor), grant("secret", Role::Viewer)];
        assert!(!check_permission(&broad_write_narrow_read, "secret/x", Action::Edit));
        assert!(check_permission(&broad_write_narrow_read, "public", Action::Delete));
    }

    #[test]
    fn no_grant_denies_and_roles_allow_their_actions() {
        assert!(!check_permission(&[], "", Action::Read));
        let viewer = [grant("docs", Role::Viewer)];
        assert!(check_permission(&viewer, "docs", Action::Read));
        assert!(!check_permission(&viewer, "docs", Action::Delete));
        assert!(!check_permission(&viewer, "other", Action::Read));
        let editor = [grant("docs", Role::Editor)];
        assert!(!check_permission(&editor, "docs", Action::Admin));
        assert!(check_permission(&[grant("", Role::Admin)], "x", Action::Admin));
    }
}
