//! The one error envelope of the API: every failure, from a validation rule to a panic,
//! answers `{error, message, details, detail}` with its status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A field-level problem of a request that did not parse or broke a bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, dotted for nested ones (`params.target_path`); `body` for the whole body.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Every error an endpoint can answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule of the service, on one field.
    #[error("{message}")]
    Validation {
        /// The field at fault.
        field: String,
        /// A sentence for the caller.
        message: String,
    },
    /// A body or query that does not parse or breaks a bound.
    #[error("{message}")]
    InvalidRequest {
        /// Summary.
        message: String,
        /// Each problem.
        errors: Vec<FieldError>,
    },
    /// No token, a bad token, or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// A document that is missing, trashed or unreadable by the caller.
    #[error("Document not found: {0}")]
    DocumentNotFound(String),
    /// Anything else that does not exist.
    #[error("{what} not found: {id}")]
    NotFound {
        /// What kind of thing.
        what: String,
        /// Its id.
        id: String,
    },
    /// No route answers this path.
    #[error("no route for {method} {path}")]
    NoRoute {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
    /// A route exists, but not for this method.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// Optimistic-lock mismatch or uniqueness clash.
    #[error("{0}")]
    Conflict(String),
    /// A manual dependency from a document to itself.
    #[error("a document cannot depend on itself")]
    SelfDependency,
    /// A manual dependency that would close a cycle.
    #[error("the dependency would create a cycle")]
    CircularDependency,
    /// A body over the configured limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The client sent more requests than its rate allows; it may retry after this many
    /// seconds.
    #[error("too many requests: retry in {0} s")]
    RateLimited(u64),
    /// Something the service needs is out of reach for now (a repository's host, say);
    /// the caller may try again.
    #[error("{0}")]
    Unavailable(String),
    /// A failure of ours; the caller sees a generic sentence, the log the cause.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The cause of a 500, kept on the response so the request log can show it once.
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

impl Error {
    /// A validation error on `field`.
    pub fn validation(field: &str, message: impl Into<String>) -> Error {
        Error::Validation { field: field.to_string(), message: message.into() }
    }

    /// An invalid request with one field problem.
    pub fn invalid(field: &str, message: impl Into<String>) -> Error {
        let message = message.into();
        Error::InvalidRequest {
            message: format!("{field}: {message}"),
            errors: vec![FieldError { field: field.to_string(), message }],
        }
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Validation { .. } | Error::SelfDependency | Error::CircularDependency => {
                StatusCode::BAD_REQUEST
            }
            Error::InvalidRequest { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::DocumentNotFound(_) | Error::NotFound { .. } | Error::NoRoute { .. } => {
                StatusCode::NOT_FOUND
            }
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code of the envelope.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation { .. } => "VALIDATION_ERROR",
            Error::InvalidRequest { .. } => "INVALID_REQUEST",
            Error::Unauthorized(_) => "UNAUTHORIZED",
            Error::Forbidden(_) => "FORBIDDEN",
            Error::DocumentNotFound(_) => "DOCUMENT_NOT_FOUND",
            Error::NotFound { .. } | Error::NoRoute { .. } => "NOT_FOUND",
            Error::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            Error::Conflict(_) => "CONFLICT",
            Error::SelfDependency => "SELF_DEPENDENCY",
            Error::CircularDependency => "CIRCULAR_DEPENDENCY",
            Error::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Error::RateLimited(_) => "RATE_LIMITED",
            Error::Unavailable(_) => "UNAVAILABLE",
            Error::Internal(_) => "INTERNAL_ERROR",
        }
    }

    fn details(&self) -> Value {
        match self {
            Error::Validation { field, .. } => json!({ "field": field }),
            Error::InvalidRequest { errors, .. } => json!({
                "errors": errors
                    .iter()
                    .map(|e| json!({ "field": e.field, "message": e.message }))
                    .collect::<Vec<_>>()
            }),
            Error::DocumentNotFound(id) => json!({ "doc_id": id }),
            Error::NotFound { what, id } => json!({ "resource": what, "id": id }),
            Error::PayloadTooLarge(limit) => json!({ "max_bytes": limit }),
            Error::RateLimited(seconds) => json!({ "retry_after": seconds }),
            _ => json!({}),
        }
    }

    /// The message shown to the caller; internal causes never are.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => {
                "An internal error occurred; the request id identifies it in the logs".to_string()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let message = self.public_message();
        let body = json!({
            "error": self.code(),
            "message": message,
            "details": self.details(),
            "detail": message,
        });
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let Error::RateLimited(seconds) = self {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        if let Error::Internal(cause) = self {
            response.extensions_mut().insert(InternalCause(cause));
        }
        response
    }
}

impl From<isocrates_storage::Error> for Error {
    fn from(e: isocrates_storage::Error) -> Error {
        use isocrates_storage::Error as S;
        match e {
            S::NotFound { what: "document", id } => Error::DocumentNotFound(id),
            S::NotFound { what, id } => Error::NotFound { what: what.to_string(), id },
            S::Validation { field, message } => Error::Validation { field, message },
            S::Conflict(message) => Error::Conflict(message),
            S::Forbidden(message) => Error::Forbidden(message),
            S::SelfDependency => Error::SelfDependency,
            S::CircularDependency => Error::CircularDependency,
            other => Error::Internal(format!("{other}")),
        }
    }
}

impl From<isocrates_engine::Error> for Error {
    fn from(e: isocrates_engine::Error) -> Error {
        use isocrates_engine::Error as E;
        match e {
            E::NotFound(id) => Error::NotFound { what: "Job".to_string(), id },
            unknown @ E::UnknownStep { .. } => Error::validation("from_step", unknown.to_string()),
            E::Refused(refusal @ isocrates_engine::core::Refusal::NotReached { .. }) => {
                Error::validation("from_step", refusal.to_string())
            }
            E::Refused(refusal) => Error::Conflict(refusal.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}
