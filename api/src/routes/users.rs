//! `/api/auth`: registration, login, the current user, and the admin's users, roles,
//! grants and service tokens.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use isocrates_storage::Role;
use isocrates_storage::users::NewUser;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{AdminUser, AuthUser, Caller, LOGIN_TOKEN_HOURS, MaybeUser};
use crate::error::Error;
use crate::extract::{Json, Path};
use crate::model::{GrantOut, UserOut};
use crate::routes::audit;

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 8;
/// The longest password accepted; it bounds the cost of hashing.
pub const MAX_PASSWORD: usize = 1024;
/// The longest email a login is tried with (the longest an address can be).
const MAX_LOGIN_EMAIL: usize = 254;
/// The life of a service token when none is asked, in hours (one year).
pub const DEFAULT_TOKEN_HOURS: i64 = 8_760;

/// The handlers of this module, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    register,
    login,
    me,
    list_users,
    set_role,
    deactivate,
    add_grant,
    revoke_root_grant,
    revoke_grant,
    create_token
))]
pub(crate) struct Api;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/me", get(me))
        .route("/api/auth/users", get(list_users))
        .route("/api/auth/users/{user_id}/role", put(set_role))
        .route("/api/auth/users/{user_id}/deactivate", put(deactivate))
        .route("/api/auth/users/{user_id}/grants", post(add_grant).delete(revoke_root_grant))
        .route("/api/auth/users/{user_id}/grants/{*path_prefix}", delete(revoke_grant))
        .route("/api/auth/tokens", post(create_token))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RegisterBody {
    email: String,
    password: String,
    display_name: String,
}

fn check_password(password: &str) -> Result<(), Error> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(Error::validation(
            "password",
            format!("password must be at least {MIN_PASSWORD} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD {
        return Err(Error::validation(
            "password",
            format!("password must be at most {MAX_PASSWORD} bytes"),
        ));
    }
    Ok(())
}

async fn hash_off_thread(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || crate::auth::hash_password(&password))
        .await
        .map_err(|e| Error::Internal(format!("password hashing task: {e}")))?
}

#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 201, description = "The new user; the first one is the admin", body = UserOut)))]
async fn register(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Json(body): Json<RegisterBody>,
) -> Result<Response, Error> {
    let storage = state.storage();
    // Refuse early, before judging the input or paying for a hash, when the caller cannot
    // register anyone.
    if !caller.is_admin() && storage.has_users().await? {
        return Err(Error::Forbidden(
            "registration is closed: only an admin can register users".to_string(),
        ));
    }
    check_password(&body.password)?;
    let password_hash = hash_off_thread(body.password).await?;
    let user = storage
        .register(
            NewUser { email: body.email, display_name: body.display_name, password_hash },
            caller.is_admin(),
        )
        .await?;
    audit(&state, &caller, "auth.register", &user.id, json!({ "role": user.role.as_str() })).await;
    Ok((StatusCode::CREATED, axum::Json(UserOut::from(&user))).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
struct LoginBody {
    email: String,
    password: String,
}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, description = "A token and the user", body = crate::openapi::shapes::Login)))]
async fn login(
    State(state): State<AppState>,
    request_id: Option<axum::Extension<crate::middleware::RequestId>>,
    Json(body): Json<LoginBody>,
) -> Result<axum::Json<Value>, Error> {
    let invalid = || Error::Unauthorized("Invalid email or password".to_string());
    // No account has an email or password this long: refused before any work, and before
    // anything reaches the audit log.
    if body.password.len() > MAX_PASSWORD || body.email.len() > MAX_LOGIN_EMAIL {
        return Err(invalid());
    }
    let found = state.storage().user_for_login(&body.email).await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, crate::auth::DUMMY_HASH.clone()),
    };
    let found_id = user.as_ref().map(|u| u.id.clone());
    let password = body.password;
    let matches =
        tokio::task::spawn_blocking(move || crate::auth::verify_password(&password, &hash))
            .await
            .map_err(|e| Error::Internal(format!("password check task: {e}")))?;
    let request_id = request_id.map(|r| r.0.0);
    let Some(user) = user.filter(|_| matches) else {
        // Who was tried is kept, never the password.
        let target = found_id.as_deref().unwrap_or("");
        let details = json!({ "email": body.email, "known_user": found_id.is_some() });
        crate::routes::record(&state, None, request_id, "auth.login_failed", target, details).await;
        return Err(invalid());
    };
    if !user.is_active {
        return Err(Error::Unauthorized("this account is deactivated".to_string()));
    }
    let token = state.keys().issue(&user, LOGIN_TOKEN_HOURS)?;
    let caller_id = Some(user.id.clone());
    crate::routes::record(&state, caller_id, request_id, "auth.login", &user.id, Value::Null).await;
    Ok(axum::Json(json!({ "token": token, "user": UserOut::from(&user) })))
}

#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    responses((status = 200, description = "The caller", body = crate::openapi::shapes::Me)))]
async fn me(AuthUser(caller): AuthUser) -> axum::Json<Value> {
    let user = match &caller.user {
        Some(user) => UserOut::from(user),
        // Auth is off and no token was sent: the development admin.
        None => UserOut {
            user_id: "development".to_string(),
            display_name: "Development admin (auth disabled)".to_string(),
            email: String::new(),
            role: Role::Admin.as_str(),
            is_active: true,
            grants: vec![GrantOut { path_prefix: String::new(), role: Role::Admin.as_str() }],
        },
    };
    axum::Json(json!({ "user": user }))
}

#[utoipa::path(get, path = "/api/auth/users", tag = "auth",
    responses((status = 200, description = "Every user, by creation time", body = Vec<UserOut>)))]
async fn list_users(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
) -> Result<axum::Json<Vec<UserOut>>, Error> {
    let users = state.storage().users().await?;
    Ok(axum::Json(users.iter().map(UserOut::from).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RoleBody {
    role: String,
}

#[utoipa::path(put, path = "/api/auth/users/{user_id}/role", tag = "auth", params(("user_id" = String, Path, description = "The user's id")), request_body = RoleBody,
    responses((status = 200, description = "The user", body = UserOut)))]
async fn set_role(
    State(state): State<AppState>,
    AdminUser(caller): AdminUser,
    Path(user_id): Path<String>,
    Json(body): Json<RoleBody>,
) -> Result<axum::Json<UserOut>, Error> {
    let role = Role::parse(&body.role, "role")?;
    let user = state.storage().set_role(&user_id, role).await?;
    audit(&state, &caller, "user.role", &user.id, json!({ "role": role.as_str() })).await;
    Ok(axum::Json(UserOut::from(&user)))
}

#[utoipa::path(put, path = "/api/auth/users/{user_id}/deactivate", tag = "auth", params(("user_id" = String, Path, description = "The user's id")),
    responses((status = 200, description = "The user, deactivated", body = UserOut)))]
async fn deactivate(
    State(state): State<AppState>,
    AdminUser(caller): AdminUser,
    Path(user_id): Path<String>,
) -> Result<axum::Json<UserOut>, Error> {
    let user = state.storage().deactivate(&user_id).await?;
    audit(&state, &caller, "user.deactivate", &user.id, Value::Null).await;
    Ok(axum::Json(UserOut::from(&user)))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct GrantBody {
    #[serde(default)]
    path_prefix: String,
    #[serde(default = "viewer")]
    role: String,
}

fn viewer() -> String {
    "viewer".to_string()
}

#[utoipa::path(post, path = "/api/auth/users/{user_id}/grants", tag = "auth", params(("user_id" = String, Path, description = "The user's id")), request_body = GrantBody,
    responses((status = 201, description = "The grant", body = GrantOut)))]
async fn add_grant(
    State(state): State<AppState>,
    AdminUser(caller): AdminUser,
    Path(user_id): Path<String>,
    Json(body): Json<GrantBody>,
) -> Result<Response, Error> {
    let role = Role::parse(&body.role, "role")?;
    let grant = state.storage().grant(&user_id, &body.path_prefix, role).await?;
    let details = json!({ "path_prefix": grant.path_prefix, "role": role.as_str() });
    audit(&state, &caller, "grant.add", &user_id, details).await;
    let out = GrantOut { path_prefix: grant.path_prefix, role: grant.role.as_str() };
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

#[utoipa::path(delete, path = "/api/auth/users/{user_id}/grants/{path_prefix}", tag = "auth",
    params(("user_id" = String, Path, description = "The user's id"), ("path_prefix" = String, Path, description = "The prefix, slashes included")),
    responses((status = 204, description = "The grant is gone (or was never there)")))]
async fn revoke_grant(
    State(state): State<AppState>,
    AdminUser(caller): AdminUser,
    Path((user_id, path_prefix)): Path<(String, String)>,
) -> Result<StatusCode, Error> {
    revoke(&state, &caller, &user_id, &path_prefix).await
}

#[utoipa::path(delete, path = "/api/auth/users/{user_id}/grants", tag = "auth", params(("user_id" = String, Path, description = "The user's id")),
    responses((status = 204, description = "The root grant is gone (or was never there)")))]
async fn revoke_root_grant(
    State(state): State<AppState>,
    AdminUser(caller): AdminUser,
    Path(user_id): Path<String>,
) -> Result<StatusCode, Error> {
    revoke(&state, &caller, &user_id, "").await
}

async fn revoke(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
    prefix: &str,
) -> Result<StatusCode, Error> {
    state.storage().revoke(user_id, prefix).await?;
    audit(state, caller, "grant.revoke", user_id, json!({ "path_prefix": prefix })).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct TokenBody {
    subject: String,
    #[serde(default = "service")]
    role: String,
    #[serde(default)]
    expires_hours: Option<i64>,
    /// Where the service may write; everything by default.
    #[serde(default)]
    path_prefix: String,
}

fn service() -> String {
    "service".to_string()
}

#[utoipa::path(post, path = "/api/auth/tokens", tag = "auth", request_body = TokenBody,
    responses((status = 201, description = "A service user and its token", body = crate::openapi::shapes::ServiceToken)))]
async fn create_token(
    State(state): State<AppState>,
    AdminUser(caller): AdminUser,
    Json(body): Json<TokenBody>,
) -> Result<Response, Error> {
    let hours = body.expires_hours.unwrap_or(DEFAULT_TOKEN_HOURS);
    let (user, token) = crate::auth::mint_service_token(
        state.storage(),
        state.keys(),
        &body.subject,
        &body.role,
        hours,
        &body.path_prefix,
    )
    .await?;
    audit(&state, &caller, "token.create", &user.id, json!({ "expires_hours": hours })).await;
    Ok((StatusCode::CREATED, axum::Json(json!({ "token": token, "user_id": user.id })))
        .into_response())
}
