//! The HTTP API of IsoCrates (axum). It is the only crate that knows status codes and JSON
//! shapes: [`error`] holds the one error envelope, [`auth`] the tokens, passwords and the
//! caller extractors, [`model`] the JSON shapes, and [`routes`] one module per section of
//! the contract (service, users and grants, documents, search, wikilinks, jobs). [`web`]
//! is the web page: server-rendered HTML over those same routes, called in-process.

pub mod auth;
pub mod embeddings;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod model;
pub mod openapi;
pub mod rate_limit;
pub mod routes;
pub mod web;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use isocrates_engine::Engine;
use isocrates_storage::Storage;
use secrecy::SecretString;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::normalize_path::NormalizePath;

pub use auth::TokenKeys;
pub use error::Error;
pub use rate_limit::{RateLimitConfig, RateLimiter};

/// The default body limit: 5 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// What the API needs to know of the configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Whether tokens are checked. Off, every request acts as a development admin.
    pub auth_enabled: bool,
    /// With auth on, whether a caller without a token may read everything.
    pub public_read: bool,
    /// The HS256 secret of tokens.
    pub jwt_secret: SecretString,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// `GITHUB_WEBHOOK_SECRET`: the key of webhook signatures; without it deliveries are
    /// refused.
    pub webhook_secret: Option<SecretString>,
    /// `RATE_LIMIT_PER_MINUTE` and `TRUSTED_PROXIES`.
    pub rate_limit: RateLimitConfig,
    /// `CORS_ALLOWED_ORIGINS`: the origins a browser page may call the API from, such as
    /// `https://docs.example.com`; none sends no CORS headers (same origin only).
    pub cors_origins: Vec<String>,
    /// `BASE_PATH` and how the web page's session cookie is set.
    pub web: web::WebConfig,
}

/// What answers questions about the documents (`POST /api/docs/ask/`): the writer model,
/// when one is configured, and the prompt templates.
#[derive(Clone)]
pub struct Assistant {
    /// The model; `None` with the static provider, when asking answers with a sentence.
    pub model: Option<Arc<isocrates_providers::Llm>>,
    /// The checked templates, `ask` among them.
    pub prompts: Arc<isocrates_workflows::prompts::Prompts>,
    /// What embeds documents and queries, when `EMBEDDING_PROVIDER` is set: similar
    /// documents, and search that fuses full-text and vector hits.
    pub embedder: Option<Arc<isocrates_providers::embed::Embedder>>,
}

struct Inner {
    storage: Storage,
    engine: Engine,
    config: ApiConfig,
    keys: TokenKeys,
    started: Instant,
    assistant: Assistant,
    limiter: Option<RateLimiter>,
    metrics: metrics::Metrics,
    docgen: std::sync::OnceLock<Arc<isocrates_workflows::pipeline::Docgen>>,
}

/// The state every handler shares; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// State over `storage` and `engine` with `config`; fails when the JWT secret is
    /// unusable.
    pub fn new(storage: Storage, engine: Engine, config: ApiConfig) -> Result<AppState, String> {
        let assistant = Assistant {
            model: None,
            prompts: Arc::new(isocrates_workflows::prompts::Prompts::built_in()),
            embedder: None,
        };
        AppState::with_assistant(storage, engine, config, assistant)
    }

    /// [`AppState::new`] with the model and prompts that answer questions.
    pub fn with_assistant(
        storage: Storage,
        engine: Engine,
        config: ApiConfig,
        assistant: Assistant,
    ) -> Result<AppState, String> {
        let keys = TokenKeys::new(&config.jwt_secret)?;
        let started = Instant::now();
        let limiter = RateLimiter::new(&config.rate_limit);
        Ok(AppState(Arc::new(Inner {
            storage,
            engine,
            config,
            keys,
            started,
            assistant,
            limiter,
            metrics: metrics::Metrics::default(),
            docgen: std::sync::OnceLock::new(),
        })))
    }

    /// What answers questions.
    pub fn assistant(&self) -> &Assistant {
        &self.0.assistant
    }

    /// Gives the jobs the documentation workflow's parts (its git settings, models,
    /// prompts and budgets), for dry runs and the budgets' figures; a second call changes
    /// nothing.
    pub fn set_docgen(&self, docgen: Arc<isocrates_workflows::pipeline::Docgen>) {
        let _ = self.0.docgen.set(docgen);
    }

    /// The documentation workflow's parts, when given.
    pub fn docgen(&self) -> Option<&Arc<isocrates_workflows::pipeline::Docgen>> {
        self.0.docgen.get()
    }

    /// The workflow engine, for the jobs.
    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }

    /// The document store.
    pub fn storage(&self) -> &Storage {
        &self.0.storage
    }

    /// The configuration.
    pub fn config(&self) -> &ApiConfig {
        &self.0.config
    }

    /// The token keys.
    pub fn keys(&self) -> &TokenKeys {
        &self.0.keys
    }

    /// The rate limiter, when limiting is on.
    pub fn rate_limiter(&self) -> Option<&RateLimiter> {
        self.0.limiter.as_ref()
    }

    /// The request figures of this process.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.0.metrics
    }

    /// Seconds since the state was built.
    pub fn uptime_seconds(&self) -> u64 {
        self.0.started.elapsed().as_secs()
    }
}

/// The routes of the JSON API, with the error envelope for unknown routes, methods,
/// oversized bodies and panics, but none of the outer middleware: what the web page calls
/// in-process.
fn api_routes(extra: Router<AppState>, limit: usize) -> Router<AppState> {
    Router::new()
        .merge(routes::service::routes())
        .merge(routes::users::routes())
        .merge(routes::docs::routes())
        .merge(routes::ask::routes())
        .merge(routes::similar::routes())
        .merge(routes::folders::routes())
        .merge(routes::personal::routes())
        .merge(routes::links::routes())
        .merge(routes::search::routes())
        .merge(routes::jobs::routes())
        .merge(routes::webhooks::routes())
        .merge(routes::repositories::routes())
        .merge(extra)
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::Extension(extract::BodyLimit(limit)))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(middleware::panic_response))
}

/// Every route, the API's and the web page's, with the middleware: from the outside in,
/// the request id and timing, CORS (so that every answer, a 429 too, carries its headers,
/// and preflights are answered before they count), then the rate limit. Under `BASE_PATH`
/// when one is set.
pub fn router(state: AppState) -> Router {
    let limit = state.config().max_body_bytes;
    let cors = cors_layer(&state.config().cors_origins);
    let inner = api_routes(Router::new(), limit).with_state(state.clone());
    let routes = api_routes(web::routes(inner), limit)
        .layer(axum::middleware::from_fn_with_state(state.clone(), rate_limit::rate_limit));
    let routes = match cors {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    let routes = routes
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::request_context))
        .with_state(state.clone());
    match state.config().web.base_path.as_str() {
        "" => routes,
        base => Router::new().nest(base, routes),
    }
}

/// The CORS policy for `origins` (already checked at start-up): credentials allowed, the
/// methods and headers the API uses, and the response headers a page may read.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> =
        origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                middleware::REQUEST_ID.clone(),
            ])
            .expose_headers([
                middleware::REQUEST_ID.clone(),
                middleware::RESPONSE_TIME.clone(),
                header::RETRY_AFTER,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// The service [`app`] builds.
pub type AppService = NormalizePath<Router>;

/// The service to serve: [`router`] behind trailing-slash normalisation, so that
/// `/api/docs/search/` and `/api/docs/search` are one route.
pub fn app(state: AppState) -> AppService {
    NormalizePath::trim_trailing_slash(router(state))
}
