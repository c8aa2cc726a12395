//! `pma-sso serve`: the long-running side of the triggers.
//!
//! - the authentik webhook receiver (`POST /webhooks/authentik`, [`webhook`]),
//! - the cron sweep, enqueued by whichever `serve` holds the leader lock ([`leader`]),
//! - the relay, so jobs whose publish failed reach the queue even when only `serve` runs,
//! - the spool replay: requests a git hook spooled while the database was down are recorded
//!   on every relay pass ([`Serve::spawn_spool_replay`]),
//! - the status page on a listener of its own ([`status_page`]).
//!
//! Everything stops on the injected shutdown token; in-flight webhook requests finish first.

pub mod event;
pub mod leader;
pub mod limits;
pub mod mapping;
pub mod metrics;
pub mod refusals;
pub mod repr;
pub mod retention;
pub mod signals;
pub mod status_page;
pub mod webhook;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use croner::Cron;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use worker::pipeline::PipelineSettings;
use worker::pipeline::client::JobClient;
use worker::pipeline::relay::Relay;

/// Default: every 15 minutes.
pub const DEFAULT_SWEEP_CRON: &str = "*/15 * * * *";

/// `serve`'s own settings (the pipeline's come from [`PipelineSettings`]).
#[derive(Clone, Debug)]
pub struct ServeSettings {
    /// `PMA_SSO_WEBHOOK_ADDR`, default `0.0.0.0:8080`: authentik reaches it from another
    /// container, so it listens beyond loopback.
    pub webhook_addr: SocketAddr,
    /// `PMA_SSO_WEBHOOK_SECRET`: required, there is no unauthenticated mode.
    pub webhook_secret: SecretString,
    /// `PMA_SSO_AUTHENTIK_USER`: pma-sso's own account; when unset, `serve` asks authentik
    /// who `AUTHENTIK_TOKEN` belongs to.
    pub own_user: Option<String>,
    /// `PMA_SSO_SWEEP_CRON` (5 fields, or 6 with seconds).
    pub sweep_cron: Cron,
    /// `PMA_SSO_LEADER_RETRY`, default 15s: how often a follower tries to lead.
    pub leader_retry: Duration,
    /// `PMA_SSO_STATUS_ADDR`, default `127.0.0.1:8081`; loopback only unless a token is set.
    pub status_addr: SocketAddr,
    /// `PMA_SSO_STATUS_TOKEN`: when set, the status page wants `Authorization: Bearer <token>`.
    pub status_token: Option<SecretString>,
    /// `PMA_SSO_RETENTION_KEEP`, default 200: finished jobs kept per service.
    pub retention_keep: i64,
    /// Timeouts and the connection cap of both listeners ([`limits`]).
    pub limits: limits::ConnectionLimits,
}

impl ServeSettings {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<ServeSettings, String> {
        let webhook_addr = webhook_addr(get)?;
        let webhook_secret = get("PMA_SSO_WEBHOOK_SECRET")
            .filter(|s| !s.trim().is_empty())
            .map(SecretString::from)
            .ok_or_else(|| {
                "PMA_SSO_WEBHOOK_SECRET is not set (in the environment or in .env): the webhook \
                 refuses to run without its shared secret; set PMA_SSO_WEBHOOK_URL (serve then \
                 installs the webhook) or run `pma-sso webhook install --url …`, which create one"
                    .to_owned()
            })?;
        let cron_text = get("PMA_SSO_SWEEP_CRON").unwrap_or_else(|| DEFAULT_SWEEP_CRON.into());
        let sweep_cron = parse_cron(&cron_text)?;
        let leader_retry = match get("PMA_SSO_LEADER_RETRY") {
            None => Duration::from_secs(15),
            Some(v) => worker::pipeline::parse_duration(&v).ok_or_else(|| {
                "PMA_SSO_LEADER_RETRY is invalid: expected a duration such as 15s".to_owned()
            })?,
        };
        let (status_addr, status_token) = status_page::settings(get)?;
        let retention_keep = retention::keep_from(get)?;
        Ok(ServeSettings {
            limits: limits::ConnectionLimits::from_lookup(get)?,
            retention_keep,
            status_addr,
            status_token,
            webhook_addr,
            webhook_secret,
            own_user: get("PMA_SSO_AUTHENTIK_USER").filter(|u| !u.is_empty()),
            sweep_cron,
            leader_retry,
        })
    }
}

/// `PMA_SSO_WEBHOOK_ADDR`, default `0.0.0.0:8080`.
pub fn webhook_addr(get: &dyn Fn(&str) -> Option<String>) -> Result<SocketAddr, String> {
    match get("PMA_SSO_WEBHOOK_ADDR") {
        None => Ok(SocketAddr::from(([0, 0, 0, 0], 8080))),
        Some(v) => v
            .parse()
            .map_err(|_| format!("PMA_SSO_WEBHOOK_ADDR is invalid: expected host:port, got `{v}`")),
    }
}

/// A cron expression of 5 fields, or 6 with seconds first.
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(text)
        .map_err(|e| format!("PMA_SSO_SWEEP_CRON is invalid (`{text}`): {e}"))
}

/// Everything `serve` runs, built by the command (or a test).
pub struct Serve {
    pub settings: ServeSettings,
    pub pipeline: PipelineSettings,
    pub packages_dir: PathBuf,
    /// pma-sso's state directory, where the git hooks' spool lives.
    pub state_dir: PathBuf,
    /// Resolved before start-up: configured, or the token's own username.
    pub own_user: Option<String>,
    pub jobs: Arc<JobClient>,
}

impl Serve {
    /// Bind the webhook listener; fails early (before anything else starts) when the address
    /// is taken.
    pub async fn bind(&self) -> std::io::Result<tokio::net::TcpListener> {
        tokio::net::TcpListener::bind(self.settings.webhook_addr).await
    }

    /// Bind the status page's listener.
    pub async fn bind_status(&self) -> std::io::Result<tokio::net::TcpListener> {
        tokio::net::TcpListener::bind(self.settings.status_addr).await
    }

    /// Replay the git hooks' spool on every relay pass: a commit made while the database was
    /// down reaches the queue once it is back, with no manual step.
    pub fn spawn_spool_replay(&self, shutdown: &CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(worker::pipeline::spool::run(
            worker::pipeline::spool::Spool::in_state_dir(&self.state_dir),
            self.jobs.db.clone(),
            self.pipeline.retry.max_attempts,
            self.pipeline.relay_interval,
            shutdown.clone(),
        ))
    }

    /// Run until `shutdown`: webhook server, status page, sweep leader, relay.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        status_listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        // Install the metrics recorder before anything records, or early counts are lost.
        let _ = worker::pipeline::http::metrics_handle();
        let relay = Relay {
            db: self.jobs.db.clone(),
            amqp_url: self.pipeline.amqp_url.clone(),
            topology: self.pipeline.topology(),
            lease: self.pipeline.lease,
            interval: self.pipeline.relay_interval,
        };
        let relay = tokio::spawn(relay.run(shutdown.clone()));
        let spool = self.spawn_spool_replay(&shutdown);
        let leader = leader::Leader {
            database_url: self.pipeline.database_url.clone(),
            cron: self.settings.sweep_cron.clone(),
            retry: self.settings.leader_retry,
            jobs: self.jobs.clone(),
        };
        let leader = tokio::spawn(leader.run(shutdown.clone()));
        let retention = tokio::spawn(retention::run(
            self.jobs.db.clone(),
            self.settings.retention_keep,
            retention::INTERVAL,
            shutdown.clone(),
        ));
        let status = status_page::router(Arc::new(status_page::StatusPage {
            db: self.jobs.db.clone(),
            packages_dir: self.packages_dir.clone(),
            token: self.settings.status_token.clone(),
            broker: Some(self.jobs.clone()),
            sweep_cron: Some(self.settings.sweep_cron.clone()),
        }));
        let stop = shutdown.clone();
        let status_limits = self.settings.limits.clone();
        let status = tokio::spawn(async move {
            let served = limits::serve(status_listener, status, status_limits, stop).await;
            if let Err(e) = served {
                tracing::error!(error = %e, "status page stopped");
            }
        });
        let app = webhook::router(Arc::new(webhook::Webhook {
            secret: self.settings.webhook_secret.clone(),
            own_user: self.own_user.clone(),
            packages_dir: self.packages_dir.clone(),
            jobs: self.jobs.clone(),
        }))
        .merge(health_router(self.jobs.db.clone()));
        let stop = shutdown.clone();
        let served = limits::serve(listener, app, self.settings.limits.clone(), stop).await;
        // The server may end on its own (an accept error): stop the rest with it.
        shutdown.cancel();
        let _ = relay.await;
        let _ = spool.await;
        let _ = leader.await;
        let _ = status.await;
        let _ = retention.await;
        served
    }
}

/// `/healthz` (the process is alive) and `/readyz` (its database answers), on the webhook's
/// listener: the one address every deployment reaches, with no token in front.
pub fn health_router(db: sqlx::PgPool) -> axum::Router {
    use axum::http::StatusCode;
    axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let db = db.clone();
                async move {
                    let ping = sqlx::query_scalar::<_, i32>("select 1").fetch_one(&db);
                    match tokio::time::timeout(Duration::from_secs(5), ping).await {
                        Ok(Ok(_)) => (StatusCode::OK, "database: up\n".to_owned()),
                        Ok(Err(e)) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("database: down ({e})\n"),
                        ),
                        Err(_) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "database: down (no answer within 5s)\n".to_owned(),
                        ),
                    }
                }
            }),
        )
}
