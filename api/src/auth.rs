//! Authentication: argon2id password hashes, HS256 tokens, and the extractors that turn a
//! request into a [`Caller`]. The user's role and grants are read from the database on
//! every request, so a deactivated user's token stops working at once.
//!
//! A token comes as `Authorization: Bearer`, or, for the web page, in the HttpOnly
//! [`SESSION_COOKIE`]. A request that changes something on the strength of the cookie
//! alone must also carry [`CSRF_HEADER`] with the session's [`TokenKeys::csrf`] token,
//! which a page of another site cannot read or compute.

use std::sync::LazyLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderName, Method};
use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use isocrates_storage::documents::ReadScope;
use isocrates_storage::users::User;
use isocrates_storage::{Action, Grant, Role, check_permission};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::AppState;
use crate::error::Error;
use crate::middleware::RequestId;

/// The issuer claim of every token.
pub const ISSUER: &str = "isocrates";
/// How long a login token lasts.
pub const LOGIN_TOKEN_HOURS: i64 = 24;
/// The cookie that carries a web session's token.
pub const SESSION_COOKIE: &str = "isocrates_session";
/// The header in which a page sends its session's CSRF token.
pub static CSRF_HEADER: HeaderName = HeaderName::from_static("x-csrf-token");

/// The claims of an IsoCrates token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The user's role when the token was issued (informational; the database decides).
    pub role: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Always [`ISSUER`].
    pub iss: String,
    /// The token's own id, by which signing out revokes it; empty in tokens issued before
    /// tokens had one.
    #[serde(default)]
    pub jti: String,
}

/// Signs and checks tokens with the configured secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// The key of CSRF tokens, derived from the JWT secret so that it is never the same
    /// bytes.
    csrf_key: Vec<u8>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    /// Keys from the JWT secret; an empty secret is refused.
    pub fn new(secret: &SecretString) -> Result<TokenKeys, String> {
        let bytes = secret.expose_secret().as_bytes();
        let encoding =
            EncodingKey::from_secret(bytes).map_err(|e| format!("JWT_SECRET_KEY: {e}"))?;
        let decoding =
            DecodingKey::from_secret(bytes).map_err(|e| format!("JWT_SECRET_KEY: {e}"))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        validation.leeway = 30;
        let csrf_key = {
            let mut mac = Hmac::<Sha256>::new_from_slice(bytes)
                .map_err(|e| format!("JWT_SECRET_KEY: {e}"))?;
            mac.update(b"isocrates csrf key");
            mac.finalize().into_bytes().to_vec()
        };
        Ok(TokenKeys { encoding, decoding, validation, csrf_key })
    }

    /// The CSRF token of the web session whose token is `session`: the first 128 bits of
    /// an HMAC of it, in hex. Stateless: the same session always has the same one.
    pub fn csrf(&self, session: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.csrf_key).expect("HMAC takes keys of any size");
        mac.update(session.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Whether `given` is the CSRF token of `session`, compared in constant time.
    pub fn csrf_matches(&self, session: &str, given: &str) -> bool {
        let Ok(given) = hex::decode(given) else {
            return false;
        };
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.csrf_key).expect("HMAC takes keys of any size");
        mac.update(session.as_bytes());
        given.len() == 16 && mac.verify_truncated_left(&given).is_ok()
    }

    /// A token for `user` that lasts `hours`.
    pub fn issue(&self, user: &User, hours: i64) -> Result<String, Error> {
        let iat = Utc::now().timestamp();
        let claims = Claims {
            sub: user.id.clone(),
            role: user.role.as_str().to_string(),
            iat,
            exp: iat + hours * 3600,
            iss: ISSUER.to_string(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("signing a token: {e}")))
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Result<Claims, Error> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    Error::Unauthorized("the token has expired: log in again".to_string())
                }
                _ => Error::Unauthorized("the token is invalid".to_string()),
            })
    }
}

/// Revokes `token` (a valid one; anything else is left alone), so that it stops working
/// before it expires: what signing out of the web page does.
pub async fn revoke(state: &AppState, token: &str) -> Result<(), Error> {
    let Ok(claims) = state.keys().verify(token) else {
        return Ok(());
    };
    if claims.jti.is_empty() {
        return Ok(());
    }
    let expires = chrono::DateTime::<Utc>::from_timestamp(claims.exp, 0).unwrap_or_else(Utc::now);
    state.storage().revoke_token(&claims.jti, expires.into()).await?;
    Ok(())
}

/// The longest life of a service token, in hours (ten years).
pub const MAX_TOKEN_HOURS: i64 = 87_600;

/// Creates (or reuses, by subject) a service user with an editor grant on `path_prefix`
/// and signs a token for it that lasts `hours`. Only the `service` role is minted.
pub async fn mint_service_token(
    storage: &isocrates_storage::Storage,
    keys: &TokenKeys,
    subject: &str,
    role: &str,
    hours: i64,
    path_prefix: &str,
) -> Result<(User, String), Error> {
    if Role::parse(role, "role")? != Role::Service {
        return Err(Error::validation("role", "tokens are minted for the service role only"));
    }
    if !(1..=MAX_TOKEN_HOURS).contains(&hours) {
        return Err(Error::validation(
            "expires_hours",
            format!("expires_hours must be 1 to {MAX_TOKEN_HOURS}"),
        ));
    }
    let user = storage.service_user(subject, path_prefix).await?;
    let token = keys.issue(&user, hours)?;
    Ok((user, token))
}

/// Hashes a password with argon2id and a fresh salt. Slow on purpose: call it off the
/// async threads.
pub fn hash_password(password: &str) -> Result<String, Error> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches the stored PHC `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
}

/// A hash that matches no password, checked when the email is unknown so that a login
/// takes as long for a missing account as for a wrong password.
pub static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("not a password anyone has").unwrap_or_default());

/// Who is asking, as far as permissions go.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated user; `None` for an anonymous caller or development mode.
    pub user: Option<User>,
    /// The grants that decide access.
    pub grants: Vec<Grant>,
    /// The global role, when there is one.
    pub role: Option<Role>,
    /// The id of the request, for audit rows.
    pub request_id: Option<String>,
}

impl Caller {
    fn from_user(user: User) -> Caller {
        Caller {
            grants: user.grants.clone(),
            role: Some(user.role),
            user: Some(user),
            request_id: None,
        }
    }

    /// With auth off and no token: everything allowed, as an admin with a root grant.
    fn development() -> Caller {
        Caller {
            user: None,
            grants: vec![Grant::root(Role::Admin)],
            role: Some(Role::Admin),
            request_id: None,
        }
    }

    /// With auth on and no token: no grants, or a root viewer grant when reads are public.
    pub(crate) fn anonymous(public_read: bool) -> Caller {
        let grants = if public_read { vec![Grant::root(Role::Viewer)] } else { vec![] };
        Caller { user: None, grants, role: None, request_id: None }
    }

    /// The user id, for audit rows.
    pub fn user_id(&self) -> Option<String> {
        self.user.as_ref().map(|u| u.id.clone())
    }

    /// Whether the caller holds the global admin role.
    pub fn is_admin(&self) -> bool {
        self.role == Some(Role::Admin)
    }

    /// Whether the caller may do `action` on `path`.
    pub fn can(&self, path: &str, action: Action) -> bool {
        check_permission(&self.grants, path, action)
    }

    /// Refuses a caller who is not an admin.
    pub fn require_admin(&self) -> Result<(), Error> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Error::Forbidden("this is for admins".to_string()))
        }
    }

    /// `Ok` when the caller may do `action` on `path`, else 403.
    pub fn require(&self, path: &str, action: Action) -> Result<(), Error> {
        if self.can(path, action) {
            Ok(())
        } else {
            let verb = match action {
                Action::Read => "read",
                Action::Edit => "edit",
                Action::Delete => "delete",
                Action::Admin => "administer",
            };
            let shown = if path.is_empty() { "the top level" } else { path };
            Err(Error::Forbidden(format!("you may not {verb} documents under {shown}")))
        }
    }

    /// The paths this caller may read.
    pub fn scope(&self) -> ReadScope {
        ReadScope::of(&self.grants)
    }
}

/// The bearer token of a request, if it carries one. A malformed header is a 401.
fn bearer(parts: &Parts) -> Result<Option<&str>, Error> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Error::Unauthorized("the Authorization header is not text".to_string()))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(Error::Unauthorized("use Authorization: Bearer <token>".to_string())),
    }
}

/// The web session token of a request: the value of its [`SESSION_COOKIE`], if any.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value)
}

/// The token a request authenticates with: its bearer token, else its session cookie. A
/// request that writes with the cookie alone must carry the session's CSRF token.
fn credential<'a>(parts: &'a Parts, keys: &TokenKeys) -> Result<Option<&'a str>, Error> {
    if let Some(token) = bearer(parts)? {
        return Ok(Some(token));
    }
    let Some(session) = session_cookie(&parts.headers) else {
        return Ok(None);
    };
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let given = parts.headers.get(&CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !given.is_some_and(|given| keys.csrf_matches(session, given)) {
            return Err(Error::Forbidden(
                "a change made with a session cookie needs the page's X-CSRF-Token header"
                    .to_string(),
            ));
        }
    }
    Ok(Some(session))
}

async fn caller_for_token(state: &AppState, token: &str) -> Result<Caller, Error> {
    let claims = state.keys().verify(token)?;
    if !claims.jti.is_empty() && state.storage().token_revoked(&claims.jti).await? {
        return Err(Error::Unauthorized("this session was signed out: sign in again".to_string()));
    }
    let user = state.storage().user(&claims.sub).await?;
    match user {
        Some(user) if user.is_active => Ok(Caller::from_user(user)),
        Some(_) => Err(Error::Unauthorized("this account is deactivated".to_string())),
        None => Err(Error::Unauthorized("the token's user no longer exists".to_string())),
    }
}

/// The caller a web page already identified, carried on the page's in-process API calls
/// so that each is not authenticated again. Only the web page puts it on a request: a
/// client cannot, as extensions never come from the network.
#[derive(Debug, Clone)]
pub(crate) struct Identified(pub Caller);

/// A caller whose token is optional: without one it reads as anonymous (or, with auth
/// off, as the development admin). A token that is present but bad is a 401.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Caller);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if let Some(Identified(caller)) = parts.extensions.get::<Identified>() {
            return Ok(MaybeUser(identify(caller.clone(), parts)));
        }
        let caller = match credential(parts, state.keys())? {
            Some(token) => caller_for_token(state, token).await?,
            None if !state.config().auth_enabled => Caller::development(),
            None => Caller::anonymous(state.config().public_read),
        };
        Ok(MaybeUser(identify(caller, parts)))
    }
}

/// A caller that must present a valid token (when auth is on).
#[derive(Debug, Clone)]
pub struct AuthUser(pub Caller);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let identified = parts.extensions.get::<Identified>().map(|i| i.0.clone());
        let caller = match identified {
            // Signed in, or with auth off: as a token would have made them.
            Some(caller) if caller.user.is_some() || !state.config().auth_enabled => Some(caller),
            // An anonymous visitor, as a request without a token.
            Some(_) => None,
            None => match credential(parts, state.keys())? {
                Some(token) => Some(caller_for_token(state, token).await?),
                None if !state.config().auth_enabled => Some(Caller::development()),
                None => None,
            },
        };
        let caller = match caller {
            Some(caller) => caller,
            None => {
                return Err(Error::Unauthorized(
                    "this endpoint needs a token: send Authorization: Bearer <token>".to_string(),
                ));
            }
        };
        Ok(AuthUser(identify(caller, parts)))
    }
}

/// A caller with the global admin role.
#[derive(Debug, Clone)]
pub struct AdminUser(pub Caller);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let AuthUser(caller) = AuthUser::from_request_parts(parts, state).await?;
        if caller.is_admin() {
            Ok(AdminUser(caller))
        } else {
            Err(Error::Forbidden("this endpoint is for admins".to_string()))
        }
    }
}

/// Names the caller on the request's span, so the request log line carries it, and gives
/// the caller the request's id.
fn identify(mut caller: Caller, parts: &Parts) -> Caller {
    if let Some(user) = &caller.user {
        tracing::Span::current().record("user.id", user.id.as_str());
    }
    caller.request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
    caller
}
