//! Request extractors that answer in the error envelope: a JSON body, a query string and
//! path parameters that fail to parse become `INVALID_REQUEST` naming the field, and a body
//! over the limit becomes `PAYLOAD_TOO_LARGE`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{Error, FieldError};

/// A JSON body. Any content type is read as JSON, as clients often omit the header.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// A JSON body that may be left out: an empty body, or `null`, reads as `T::default()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let bytes = read_body(req, state).await?;
        let text = bytes.trim_ascii();
        if text.is_empty() || text == b"null" {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// The raw body, for a handler that must see the exact bytes (a signature covers them);
/// over the limit it is the envelope's 413.
pub struct RawBody(pub Bytes);

impl<S> FromRequest<S> for RawBody
where
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        read_body(req, state).await.map(RawBody)
    }
}

/// The configured body limit, put on each request so errors can name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The whole body, or the envelope's error when it is over the limit or unreadable.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Error> {
    let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
    Bytes::from_request(req, state).await.map_err(|e| body_error(e, limit))
}

fn body_error(e: BytesRejection, limit: usize) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::PayloadTooLarge(limit)
    } else {
        Error::invalid("body", format!("the body could not be read: {e}"))
    }
}

/// Parses JSON, naming the field at fault when the shape is wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::invalid("body", "a JSON body is required"));
    }
    let tree: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid("body", format!("the body is not valid JSON: {e}")))?;
    if let Some(field) = nul_inside(&tree, String::new()) {
        return Err(Error::invalid(&field, "NUL characters are not accepted"));
    }
    let value: Result<T, _> = serde_path_to_error::deserialize(tree);
    value.map_err(|e| {
        let path = e.path().to_string();
        let field = if path.is_empty() || path == "." { "body".to_string() } else { path };
        let message = e.into_inner().to_string();
        Error::InvalidRequest {
            message: format!("{field}: {message}"),
            errors: vec![FieldError { field, message }],
        }
    })
}

/// The path (`body`, `title`, `keywords[1]`) of the first string in `value` that holds a
/// NUL character, which no backend stores.
fn nul_inside(value: &serde_json::Value, at: String) -> Option<String> {
    let here = || if at.is_empty() { "body".to_string() } else { at.clone() };
    match value {
        serde_json::Value::String(s) => s.contains('\0').then(here),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| nul_inside(v, format!("{}[{i}]", here())))
        }
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(here());
            }
            nul_inside(v, if at.is_empty() { k.clone() } else { format!("{at}.{k}") })
        }),
        _ => None,
    }
}

/// A query string.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs = form_urlencoded::parse(query.as_bytes());
        if let Some((key, _)) = pairs.clone().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
            return Err(Error::invalid(&key, "NUL characters are not accepted"));
        }
        let de = serde_urlencoded::Deserializer::new(pairs);
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let field = e.path().to_string();
            let field = if field.is_empty() || field == "." { "query".to_string() } else { field };
            let message = e.into_inner().to_string();
            Error::InvalidRequest {
                message: format!("{field}: {message}"),
                errors: vec![FieldError { field, message }],
            }
        })
    }
}

/// Path parameters.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        if parts.uri.path().to_ascii_lowercase().contains("%00") {
            return Err(Error::invalid("path", "NUL characters are not accepted"));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| Error::invalid("path", e.body_text()))
    }
}

/// Checks that an integer query value lies in `min..=max`.
pub fn bounded(field: &str, value: i64, min: i64, max: i64) -> Result<i64, Error> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(Error::invalid(field, format!("must be between {min} and {max}, got {value}")))
    }
}
