//! The worker's own small HTTP surface: `/healthz` (the process is alive), `/readyz` (database
//! and broker reachable, authentik token accepted) and `/metrics` (Prometheus).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use super::worker::Health;

/// The process-wide metrics recorder (installed once; later calls reuse it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests): then ours only renders empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub fn router(health: Arc<Health>) -> Router {
    let metrics = metrics_handle();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let health = health.clone();
                async move {
                    let db = health.database.load(Ordering::Relaxed);
                    let broker = health.broker.load(Ordering::Relaxed);
                    let authentik = health.authentik.load(Ordering::Relaxed);
                    let problem = health
                        .authentik_problem
                        .lock()
                        .ok()
                        .and_then(|p| p.clone())
                        .map(|p| format!(" ({p})"))
                        .unwrap_or_default();
                    let body = format!(
                        "database: {}\nbroker: {}\nauthentik: {}{problem}\n",
                        up(db),
                        up(broker),
                        up(authentik)
                    );
                    if db && broker && authentik {
                        (StatusCode::OK, body)
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, body)
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.render() }
            }),
        )
}

fn up(ok: bool) -> &'static str {
    if ok { "up" } else { "down" }
}

pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "health and metrics listening");
    serve_on(listener, health, shutdown).await
}

pub async fn serve_on(
    listener: tokio::net::TcpListener,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(health))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
