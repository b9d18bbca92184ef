//! `GET /openapi.json`: the OpenAPI 3.1 document of the API, generated from the handlers.
//! Each module of [`crate::routes`] lists its handlers in an `Api` struct next to its
//! router, each handler carries its `#[utoipa::path]` (method, path, parameters, body and
//! answers), and the JSON shapes derive their schemas. Every operation may also answer the
//! one error envelope ([`ErrorBody`]), which is added here to all of them as the `default`
//! answer, with the bearer token as an optional security scheme.
//!
//! Some answers are built with `json!` in their handlers; their shapes are described by the
//! types of [`shapes`], which only document.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, ResponseBuilder, SecurityRequirement};

use crate::routes;

/// The error envelope every failure answers.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The machine-readable code: `VALIDATION_ERROR`, `DOCUMENT_NOT_FOUND`, ...
    pub error: String,
    /// A sentence for a person.
    pub message: String,
    /// More about the error: the field at fault, the id not found, `retry_after`, ...
    pub details: serde_json::Map<String, serde_json::Value>,
    /// `message` again, for clients written against FastAPI's shape.
    pub detail: String,
}

/// The `{doc_id}` of a document's paths, described once for all of them.
#[derive(utoipa::IntoParams)]
#[into_params(names("doc_id"), parameter_in = Path)]
pub(crate) struct DocId(
    /// The document's id.
    #[allow(dead_code)]
    String,
);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "IsoCrates API",
        description = "Documents written and maintained from git repositories: their versions, \
                       the wikilink graph, search, folders, personal trees, generation jobs and \
                       the GitHub webhook. Every error answers `ErrorBody` with `X-Request-ID`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "service", description = "What the service is and whether it works"),
        (name = "auth", description = "Users, roles, grants and tokens"),
        (name = "documents", description = "Documents and their versions, the trash, batch operations"),
        (name = "search", description = "Full-text and hybrid search, similar documents, ask"),
        (name = "wikilinks", description = "Links between documents"),
        (name = "folders", description = "The tree and folder metadata"),
        (name = "personal", description = "Each user's own tree"),
        (name = "jobs", description = "Documentation runs"),
        (name = "repositories", description = "Tracked repositories"),
        (name = "webhooks", description = "Deliveries from GitHub"),
    )
)]
struct Root;

/// The whole document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn build() -> utoipa::openapi::OpenApi {
    let mut doc = Root::openapi();
    for part in [
        routes::service::Api::openapi(),
        routes::users::Api::openapi(),
        routes::docs::Api::openapi(),
        routes::search::Api::openapi(),
        routes::ask::Api::openapi(),
        routes::similar::Api::openapi(),
        routes::links::Api::openapi(),
        routes::folders::Api::openapi(),
        routes::personal::Api::openapi(),
        routes::jobs::Api::openapi(),
        routes::repositories::Api::openapi(),
        routes::webhooks::Api::openapi(),
    ] {
        doc.merge(part);
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("A token from /api/auth/login or /api/auth/tokens"))
                .build(),
        ),
    );
    // A token is optional on most routes: without one a caller reads as an anonymous user.
    doc.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::default(),
    ]);
    let error = ResponseBuilder::new()
        .description("An error, in the one envelope (see `error` for its code)")
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody"))))
                .build(),
        )
        .build();
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            op.responses.responses.entry("default".to_string()).or_insert(RefOr::T(error.clone()));
        }
    }
    doc
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
pub(crate) async fn openapi_json() -> Response {
    axum::Json(document()).into_response()
}

/// The shapes of answers their handlers build with `json!`, for the document only.
pub mod shapes {
    use serde::Serialize;
    use utoipa::ToSchema;

    use crate::model::{DependencyOut, DocumentOut, ProposalOut, UserOut};

    /// `GET /`.
    #[derive(Serialize, ToSchema)]
    pub struct ServiceInfo {
        /// `IsoCrates API`.
        pub name: String,
        /// The running version.
        pub version: String,
        /// `running`.
        pub status: String,
    }

    /// How many runs wait, run and failed.
    #[derive(Serialize, ToSchema)]
    pub struct QueueCounts {
        /// Waiting.
        pub queued: u64,
        /// Running.
        pub running: u64,
        /// Paused, waiting for an operator.
        pub paused: u64,
        /// Failed.
        pub failed: u64,
    }

    /// `GET /health`.
    #[derive(Serialize, ToSchema)]
    pub struct Health {
        /// `healthy` or `degraded`.
        pub status: String,
        /// `connected` or `error`.
        pub database: String,
        /// `ok` or `error`.
        pub db: String,
        /// `sqlite` or `postgresql`.
        pub db_backend: String,
        /// The running version.
        pub version: String,
        /// Seconds since start.
        pub uptime_seconds: u64,
        /// Documents not in the trash.
        pub document_count: i64,
        /// Workers that reported recently.
        pub workers: u64,
        /// The runs by state.
        pub queue: QueueCounts,
    }

    /// One component of `GET /health/deep`.
    #[derive(Serialize, ToSchema)]
    pub struct Component {
        /// `ok`, `degraded`, `error` or `not_configured`.
        pub status: String,
        /// Why, when it is not `ok`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub detail: Option<String>,
        /// The queue only: runs waiting.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub queued: Option<u64>,
        /// The queue only: runs running.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub running: Option<u64>,
        /// The queue only: workers that reported recently.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub workers: Option<u64>,
    }

    /// The components of `GET /health/deep`.
    #[derive(Serialize, ToSchema)]
    pub struct Components {
        /// The database.
        pub database: Component,
        /// The model providers, as configured.
        pub providers: Component,
        /// The job queue and its workers.
        pub queue: Component,
    }

    /// `GET /health/deep`.
    #[derive(Serialize, ToSchema)]
    pub struct DeepHealth {
        /// `healthy` or `degraded`.
        pub status: String,
        /// Each component.
        pub components: Components,
    }

    /// `POST /api/auth/login`.
    #[derive(Serialize, ToSchema)]
    pub struct Login {
        /// A bearer token for 24 hours.
        pub token: String,
        /// Who logged in.
        pub user: UserOut,
    }

    /// `GET /api/auth/me`.
    #[derive(Serialize, ToSchema)]
    pub struct Me {
        /// The caller.
        pub user: UserOut,
    }

    /// `POST /api/auth/tokens`.
    #[derive(Serialize, ToSchema)]
    pub struct ServiceToken {
        /// The bearer token.
        pub token: String,
        /// The service user it acts as.
        pub user_id: String,
    }

    /// `POST /api/docs/generate-id`.
    #[derive(Serialize, ToSchema)]
    pub struct GeneratedId {
        /// The id the document has, or would have.
        pub doc_id: String,
    }

    /// One id a batch operation could not apply to.
    #[derive(Serialize, ToSchema)]
    pub struct BatchError {
        /// The document.
        pub doc_id: String,
        /// Why.
        pub error: String,
    }

    /// `POST /api/docs/batch`.
    #[derive(Serialize, ToSchema)]
    pub struct BatchResult {
        /// Ids asked.
        pub total: u64,
        /// Ids done.
        pub succeeded: u64,
        /// Ids refused.
        pub failed: u64,
        /// Each refusal.
        pub errors: Vec<BatchError>,
    }

    /// `POST /api/docs/{doc_id}/proposals/{proposal_id}/accept`.
    #[derive(Serialize, ToSchema)]
    pub struct Accepted {
        /// The document, now at the proposal's text.
        pub document: DocumentOut,
        /// The proposal, accepted.
        pub proposal: ProposalOut,
    }

    /// `GET /api/docs/resolve`.
    #[derive(Serialize, ToSchema)]
    pub struct Resolved {
        /// The target asked.
        pub target: String,
        /// The document it resolves to.
        pub doc_id: String,
    }

    /// One link of `GET /api/docs/{doc_id}/broken-links`.
    #[derive(Serialize, ToSchema)]
    pub struct LinkStatus {
        /// The target as written.
        pub target: String,
        /// Whether it resolves to a readable document.
        pub resolved: bool,
        /// That document.
        pub resolved_doc_id: Option<String>,
    }

    /// `GET /api/docs/{doc_id}/dependencies`.
    #[derive(Serialize, ToSchema)]
    pub struct Dependencies {
        /// Links from this document.
        pub outgoing: Vec<DependencyOut>,
        /// Links to it.
        pub incoming: Vec<DependencyOut>,
    }

    /// `POST /api/dependencies/reindex`.
    #[derive(Serialize, ToSchema)]
    pub struct Reindexed {
        /// Documents read again.
        pub documents_processed: u64,
        /// Links made.
        pub dependencies_created: u64,
    }

    /// `POST /api/docs/reindex`.
    #[derive(Serialize, ToSchema)]
    pub struct Reembedded {
        /// Documents embedded again.
        pub reindexed: u64,
        /// The embedding model, or null when embeddings are off.
        pub model: Option<String>,
        /// Why it stopped early, or that embeddings are off.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub message: Option<String>,
    }

    /// `PUT /api/repositories/{id}`: what to change; a field left out stays.
    #[derive(Serialize, ToSchema)]
    pub struct RepositoryChange {
        /// The branch to follow; null follows the repository's default branch.
        pub branch: Option<String>,
        /// The folder its pages move to.
        pub folder: Option<String>,
    }

    /// `POST /api/folders/cleanup`.
    #[derive(Serialize, ToSchema)]
    pub struct Cleaned {
        /// Metadata rows deleted.
        pub deleted_count: u64,
    }
}
