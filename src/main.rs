//! The `isocrates` binary: parses the command line and the configuration, and wires the
//! crates together. No behaviour lives here beyond that wiring.

mod config;
#[cfg(test)]
mod deployment;
mod generate;
mod jobs;
mod prompts;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use isocrates_api::{ApiConfig, AppState};
use isocrates_engine::Engine;
use isocrates_storage::Storage;
use isocrates_workflows::docgen;
use isocrates_workflows::github::GitHub;
use isocrates_workflows::pipeline::{self, Docgen, Models, Settings};
use isocrates_workflows::prompts::Prompts;
use secrecy::SecretString;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// IsoCrates writes and maintains the technical documentation of git repositories.
#[derive(Parser)]
#[command(name = "isocrates", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API, with an embedded worker unless WORKERS=0.
    Serve,
    /// Run a worker only: it executes the steps of queued jobs (more machines on one
    /// PostgreSQL database each run one).
    Worker,
    /// Document one repository now, in the foreground, with a progress bar.
    Generate(generate::GenerateArgs),
    /// Inspect and steer documentation jobs.
    Jobs {
        #[command(subcommand)]
        command: jobs::JobsCommand,
    },
    /// Check the configured models.
    Providers {
        #[command(subcommand)]
        command: ProvidersCommand,
    },
    /// Check the prompt templates and show what a model receives.
    Prompts {
        #[command(subcommand)]
        command: prompts::PromptsCommand,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Serve the documentation to AI tools over the Model Context Protocol: on standard
    /// input and output, or over streamable HTTP with --http. It calls the API at
    /// ISOCRATES_API_URL with the token ISOCRATES_API_TOKEN, so it sees what the token may.
    Mcp {
        /// Serve streamable HTTP at this address (such as 127.0.0.1:8765), path /mcp,
        /// instead of standard input and output.
        #[arg(long, value_name = "ADDRESS")]
        http: Option<String>,
        /// A host name HTTP clients may reach it by, beyond the loopback ones (repeat for
        /// more), such as the name a proxy forwards.
        #[arg(long = "allowed-host", value_name = "HOST")]
        allowed_hosts: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ProvidersCommand {
    /// Send one tiny request per configured tier and print model, latency and tokens.
    Check,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a service user (or reuse one by subject) and print a token for it.
    Create {
        /// The name of the machine or tool the token is for.
        #[arg(long)]
        subject: String,
        /// The token's role; only `service` is minted.
        #[arg(long, default_value = "service")]
        role: String,
        /// Hours until the token expires.
        #[arg(long, default_value_t = 8760)]
        expires_hours: i64,
        /// Where the service may write; everything by default.
        #[arg(long, default_value = "")]
        path_prefix: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Mcp { http, allowed_hosts } = cli.command {
        return mcp_main(http, allowed_hosts);
    }
    let config = match config::environment().and_then(|vars| Config::from_vars(&vars)) {
        Ok(config) => config,
        Err(message) => {
            report(&format!("configuration error: {message}"));
            return ExitCode::from(2);
        }
    };
    // Commands that print an answer keep their standard error for errors, unless asked.
    let quiet = matches!(
        cli.command,
        Command::Jobs { .. }
            | Command::Generate(_)
            | Command::Token { .. }
            | Command::Providers { .. }
            | Command::Prompts { .. }
    );
    if let Err(message) = init_logging(&config, if quiet { "warn" } else { "info" }) {
        report(&format!("configuration error: {message}"));
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            report(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let serving = matches!(cli.command, Command::Serve | Command::Worker);
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if serving {
                tracing::error!(error = format!("{e:#}"), "isocrates stopped");
            }
            report(&format!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Prints a one-line error for the person at the terminal.
#[allow(clippy::print_stderr)]
fn report(line: &str) {
    eprintln!("{line}");
}

fn init_logging(config: &Config, default_level: &str) -> Result<(), String> {
    let level = config.log_level.as_deref().unwrap_or(default_level);
    // PostgreSQL's notices ("relation already exists, skipping") are not ours to show.
    let level = if level.contains("sqlx") {
        level.to_string()
    } else {
        format!("{level},sqlx::postgres::notice=warn")
    };
    let filter = EnvFilter::try_new(&level).map_err(|e| {
        format!("LOG_LEVEL is not a valid filter such as info or isocrates=debug: {e}")
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Worker => worker(config).await,
        Command::Generate(args) => generate(config, args).await,
        Command::Jobs { command } => {
            // These commands steer runs and execute no step: the built-in prompts do.
            let (storage, engine) = open_engine(&config, Prompts::built_in()).await?;
            let result = jobs::run(&engine, command).await;
            storage.close().await;
            result
        }
        Command::Providers { command: ProvidersCommand::Check } => check_providers(&config).await,
        Command::Prompts { command } => prompts::run(command, &config),
        Command::Migrate => {
            let (storage, _engine) = open_engine(&config, Prompts::built_in()).await?;
            storage.close().await;
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Create { subject, role, expires_hours, path_prefix },
        } => create_token(config, &subject, &role, expires_hours, &path_prefix).await,
        // `main` starts it before any server configuration is read.
        Command::Mcp { .. } => anyhow::bail!("isocrates mcp runs on its own path"),
    }
}

/// `isocrates mcp`. An AI tool starts it inside whatever project it works on, so it reads
/// no `.env` file and none of the server's configuration: only `ISOCRATES_API_URL`,
/// `ISOCRATES_API_TOKEN` (or `_FILE`) and `LOG_LEVEL` from its own environment. A project's
/// `.env` can then neither point the token at another server nor stop it with the
/// server's production checks. Its log goes to standard error, at `warn` by default.
fn mcp_main(http: Option<String>, allowed: Vec<String>) -> ExitCode {
    let vars: config::Vars = std::env::vars().collect();
    let token = match config::secret(&vars, "ISOCRATES_API_TOKEN") {
        Ok(token) => token,
        Err(message) => {
            report(&format!("configuration error: {message}"));
            return ExitCode::from(2);
        }
    };
    let url = vars.get("ISOCRATES_API_URL").map_or("http://127.0.0.1:8000", String::as_str);
    let api = match isocrates_mcp::ApiClient::new(url, token, std::time::Duration::from_secs(120)) {
        Ok(api) => api,
        Err(message) => {
            report(&format!("configuration error: {message}"));
            return ExitCode::from(2);
        }
    };
    let filter = vars.get("LOG_LEVEL").map_or("warn", String::as_str);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            report(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mcp(api, http, allowed)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&format!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// The MCP server over `api`, on stdio or at `http`.
async fn mcp(
    api: isocrates_mcp::ApiClient,
    http: Option<String>,
    allowed: Vec<String>,
) -> anyhow::Result<()> {
    let base = api.base().to_string();
    let docs = isocrates_mcp::Docs::new(api);
    match http {
        None => isocrates_mcp::serve_stdio(docs).await.map_err(anyhow::Error::msg),
        Some(address) => {
            // Whoever reaches the port acts with the token: it listens on this machine
            // only, and the Host check stops pages that rebind a name to it.
            let at: std::net::SocketAddr = address.parse().with_context(|| {
                format!("--http {address}: give an address and port, such as 127.0.0.1:8765")
            })?;
            if !at.ip().is_loopback() {
                anyhow::bail!(
                    "--http {address}: the MCP server acts with its token for whoever reaches                      it, so it listens on a loopback address only (127.0.0.1 or ::1); put an                      authenticating proxy in front of it to reach it from elsewhere"
                );
            }
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("listening on {address} (check --http)"))?;
            let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
            hosts.extend(allowed);
            tracing::info!(%address, api = %base, "the MCP server listens at /mcp");
            let router = isocrates_mcp::http_router(docs, hosts);
            axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await?;
            Ok(())
        }
    }
}

async fn open_storage(config: &Config) -> anyhow::Result<Storage> {
    Storage::open(&config.database_url).await.context("opening the database (check DATABASE_URL)")
}

/// The database with every migration applied, and the engine over it with the
/// documentation workflow, its models and its prompts.
async fn open_engine(config: &Config, prompts: Prompts) -> anyhow::Result<(Storage, Engine)> {
    let (storage, engine, _) = open_docgen(config, prompts).await?;
    Ok((storage, engine))
}

/// [`open_engine`], with the documentation workflow's parts the engine runs.
async fn open_docgen(
    config: &Config,
    prompts: Prompts,
) -> anyhow::Result<(Storage, Engine, Arc<Docgen>)> {
    let storage = open_storage(config).await?;
    let model = |tier| -> anyhow::Result<Option<Arc<isocrates_providers::Llm>>> {
        Ok(isocrates_providers::build(tier, &config.llm).map_err(anyhow::Error::msg)?.map(Arc::new))
    };
    let docgen = Docgen {
        storage: storage.clone(),
        git: config.git.clone(),
        models: Models {
            provider: config.llm.writer.kind.as_str().to_string(),
            planner: model(&config.llm.planner)?,
            writer: model(&config.llm.writer)?,
        },
        prompts: Arc::new(prompts),
        settings: Settings {
            max_pages: config.max_pages,
            write_concurrency: config.llm.max_concurrency,
            budgets: config.budgets,
            ..Settings::default()
        },
        github: config
            .git
            .github_token
            .as_ref()
            .map(|token| GitHub::new(token, &config.github_api_url))
            .transpose()
            .map_err(anyhow::Error::msg)?,
    };
    let docgen = Arc::new(docgen);
    let engine = Engine::new(storage.db().clone(), vec![pipeline::workflow(docgen.clone())])
        .await
        .context("preparing the job queue's tables")?;
    Ok((storage, engine, docgen))
}

/// Runs a worker of `concurrency` steps at once until `shutdown` turns true.
fn spawn_worker(
    engine: &Engine,
    concurrency: usize,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let worker = engine.worker("isocrates", concurrency);
    tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        worker.run(stop).await.context("running the worker")
    })
}

async fn worker(config: Config) -> anyhow::Result<()> {
    if config.workers == 0 {
        anyhow::bail!("WORKERS=0 leaves isocrates worker nothing to run: set WORKERS to 1 or more");
    }
    log_models(&config);
    let prompts = prompts::load(&config)?;
    let (storage, engine) = open_engine(&config, prompts).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let handle = spawn_worker(&engine, config.workers, stopped);
    tracing::info!(
        db.backend = storage.backend().name(),
        concurrency = config.workers,
        "IsoCrates worker running"
    );
    shutdown_signal().await;
    let _ = stop.send(true);
    handle.await.context("the worker task")??;
    storage.close().await;
    Ok(())
}

/// `generate`: one run with an in-process worker. A path on the command line is the
/// operator's own, so local repositories are allowed for it.
async fn generate(mut config: Config, args: generate::GenerateArgs) -> anyhow::Result<()> {
    let (repo, local) = generate::repository(&args.target)?;
    if local {
        config.git.allow_local = true;
    }
    let prompts = prompts::load(&config)?;
    let (storage, engine, docgen) = open_docgen(&config, prompts).await?;
    if args.estimate {
        let result = generate::estimate(&engine, docgen, &repo, &args).await;
        storage.close().await;
        return result;
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let handle = spawn_worker(&engine, config.workers.max(1), stopped);
    let result = generate::run(&engine, &storage, &config.git, &repo, &args).await;
    let _ = stop.send(true);
    handle.await.context("the worker task")??;
    storage.close().await;
    result
}

fn jwt_secret(config: &Config) -> SecretString {
    match &config.jwt_secret {
        Some(secret) => secret.clone(),
        None => {
            tracing::warn!(
                "JWT_SECRET_KEY is not set: using a random key, so tokens stop working when \
                 the server restarts; set JWT_SECRET_KEY to keep them"
            );
            let random =
                format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
            SecretString::from(random)
        }
    }
}

/// Names the provider and model of each tier, never a key.
fn log_models(config: &Config) {
    for tier in [&config.llm.planner, &config.llm.writer] {
        tracing::info!(
            tier = tier.tier.as_str(),
            provider = tier.kind.as_str(),
            model = if tier.model.is_empty() { "(none)" } else { tier.model.as_str() },
            base_url = %tier.base_url,
            "model tier"
        );
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    if config.auth_enabled && config.webhook_secret.is_none() {
        anyhow::bail!(
            "AUTH_ENABLED=true needs GITHUB_WEBHOOK_SECRET (or GITHUB_WEBHOOK_SECRET_FILE): set it \
             to the secret your GitHub webhooks sign with"
        );
    }
    log_models(&config);
    let prompts = prompts::load(&config)?;
    let (storage, engine, docgen) = open_docgen(&config, prompts).await?;
    let api_config = ApiConfig {
        auth_enabled: config.auth_enabled,
        public_read: config.public_read,
        jwt_secret: jwt_secret(&config),
        max_body_bytes: config.max_body_bytes,
        webhook_secret: config.webhook_secret.clone(),
        rate_limit: config.rate_limit.clone(),
        cors_origins: config.cors_origins.clone(),
        web: isocrates_api::web::WebConfig {
            base_path: config.base_path.clone(),
            secure_cookies: config.production,
        },
    };
    let embedder = config
        .embeddings
        .clone()
        .map(isocrates_providers::embed::Embedder::new)
        .transpose()
        .map_err(anyhow::Error::msg)?
        .map(Arc::new);
    let assistant = isocrates_api::Assistant {
        model: isocrates_providers::build(&config.llm.writer, &config.llm)
            .map_err(anyhow::Error::msg)?
            .map(Arc::new),
        prompts: Arc::new(prompts::load(&config)?),
        embedder: embedder.clone(),
    };
    let state = AppState::with_assistant(storage.clone(), engine.clone(), api_config, assistant)
        .map_err(anyhow::Error::msg)?;
    state.set_docgen(docgen);
    let addr = config.listen_addr();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("listening on {addr} (check HOST and PORT)"))?;
    tracing::info!(
        addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or(addr),
        db.backend = storage.backend().name(),
        auth.enabled = config.auth_enabled,
        "IsoCrates API listening"
    );
    if !config.auth_enabled {
        tracing::warn!("AUTH_ENABLED=false: every request acts as an admin; never expose this");
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = if config.workers > 0 {
        Some(spawn_worker(&engine, config.workers, stopped))
    } else {
        tracing::info!("WORKERS=0: no embedded worker; jobs wait for an isocrates worker");
        None
    };
    let refresh = config
        .refresh_interval
        .map(|every| tokio::spawn(refresh_periodically(engine.clone(), storage.clone(), every)));
    let purge = Some(tokio::spawn(purge_periodically(
        storage.clone(),
        config.trash_retention,
        config.audit_retention,
    )));
    let index = embedder.map(|e| tokio::spawn(index_periodically(storage.clone(), e)));
    let app = isocrates_api::app(state);
    // The peer's address is what the rate limiter keys on.
    let app = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        std::net::SocketAddr,
    >(app);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    // The API has drained; now the worker finishes the steps it is running and stops.
    for task in [refresh, purge, index].into_iter().flatten() {
        task.abort();
    }
    let _ = stop.send(true);
    if let Some(worker) = worker {
        worker.await.context("the worker task")??;
    }
    storage.close().await;
    tracing::info!("IsoCrates API stopped");
    Ok(())
}

/// Documents the head of every tracked repository once per `every`, the first time one
/// interval after start; a repository with a live run gets no second one.
async fn refresh_periodically(engine: Engine, storage: Storage, every: std::time::Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match docgen::refresh_all(&engine, &storage).await {
            Ok(started) => tracing::info!(started, "periodic refresh of the tracked repositories"),
            Err(e) => {
                tracing::warn!(error = %e, "the periodic refresh could not list the repositories")
            }
        }
    }
}

/// How often documents waiting for their embedding are looked for.
const INDEX_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Embeds new and changed documents every half minute.
async fn index_periodically(storage: Storage, embedder: Arc<isocrates_providers::embed::Embedder>) {
    let mut ticks = tokio::time::interval(INDEX_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match isocrates_api::embeddings::index_pending(&storage, &embedder, 1_000).await {
            (0, Ok(())) => {}
            (stored, Ok(())) => {
                tracing::info!(stored, model = embedder.model(), "embedded documents")
            }
            (stored, Err(e)) => {
                tracing::warn!(stored, error = %e, "embedding stopped; it resumes in half a minute")
            }
        }
    }
}

/// How often the trash is looked at for documents past their retention.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Purges the documents trashed longer than `trash` ago, the audit rows older than `audit`
/// (either `None`: kept forever) and the revocations of tokens that have expired: at
/// start, then every hour.
async fn purge_periodically(
    storage: Storage,
    trash: Option<std::time::Duration>,
    audit: Option<std::time::Duration>,
) {
    let mut ticks = tokio::time::interval(PURGE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Some(keep) = trash {
            match storage.purge_trash(isocrates_storage::Timestamp::ago(keep)).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged documents past TRASH_RETENTION_DAYS"),
                Err(e) => {
                    tracing::warn!(error = %e, "the trash purge failed; it runs again in an hour")
                }
            }
        }
        // A minute past expiry: tokens are accepted 30 s past it, for clock skew.
        let expired = isocrates_storage::Timestamp::ago(std::time::Duration::from_secs(60));
        match storage.purge_revoked_tokens(expired).await {
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "forgetting expired revoked tokens failed"),
        }
        if let Some(keep) = audit {
            match storage.purge_audit(isocrates_storage::Timestamp::ago(keep)).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged audit rows past AUDIT_RETENTION_DAYS"),
                Err(e) => {
                    tracing::warn!(error = %e, "the audit purge failed; it runs again in an hour")
                }
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// `providers check`: one tiny request per tier, the way an operator tests a new key.
#[allow(clippy::print_stdout)]
async fn check_providers(config: &Config) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for tier in [&config.llm.planner, &config.llm.writer] {
        let name = tier.tier.as_str();
        // One retry and a short timeout: an operator testing a key wants an answer soon.
        let limits = isocrates_providers::Limits {
            max_retries: 1,
            timeout: config.llm.timeout.min(std::time::Duration::from_secs(30)),
            base_delay: std::time::Duration::from_millis(500),
            max_delay: std::time::Duration::from_secs(5),
            ..isocrates_providers::Limits::default()
        };
        let backend = match isocrates_providers::provider(tier, limits.timeout) {
            Ok(Some(backend)) => backend,
            Ok(None) => {
                println!("{name}: static provider, no model to call");
                continue;
            }
            Err(e) => {
                println!("{name}: {} {} cannot be set up: {e}", tier.kind.as_str(), tier.model);
                failed.push(name);
                continue;
            }
        };
        let llm = isocrates_providers::Llm::new(backend, limits, tier.prices);
        let request = isocrates_providers::Request {
            max_tokens: Some(8),
            ..isocrates_providers::Request::new("Answer with one word.", "Say ok.")
        };
        match llm.complete(&request).await {
            Ok(call) => println!(
                "{name}: {} {} answered in {} ms, {} tokens in, {} out, ${:.6}",
                tier.kind.as_str(),
                call.reply.model,
                call.latency.as_millis(),
                call.reply.usage.input_tokens,
                call.reply.usage.output_tokens,
                call.cost_usd
            ),
            Err(e) => {
                println!("{name}: {} {} failed: {e}", tier.kind.as_str(), tier.model);
                failed.push(name);
            }
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("the {} tier could not be reached (see above)", failed.join(" and "));
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn create_token(
    config: Config,
    subject: &str,
    role: &str,
    expires_hours: i64,
    path_prefix: &str,
) -> anyhow::Result<()> {
    let Some(secret) = config.jwt_secret.clone() else {
        anyhow::bail!(
            "JWT_SECRET_KEY is not set: set it to the server's secret so the server accepts the token"
        );
    };
    let keys = isocrates_api::TokenKeys::new(&secret).map_err(anyhow::Error::msg)?;
    let storage = open_storage(&config).await?;
    let minted = isocrates_api::auth::mint_service_token(
        &storage,
        &keys,
        subject,
        role,
        expires_hours,
        path_prefix,
    )
    .await;
    let (_, token) = minted.map_err(|e| anyhow::anyhow!("{e}"))?;
    storage.close().await;
    println!("{token}");
    Ok(())
}
