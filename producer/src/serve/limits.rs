//! Bounded connections for `serve`'s listeners. `axum::serve` runs hyper without a timer, so a
//! client that sends half a header, or nothing at all, holds its connection (and a file
//! descriptor) forever. Here every connection is bounded:
//!
//! - the request head must arrive within `header_timeout` — hyper starts that clock as soon as
//!   it waits for a head, so it is also the idle keep-alive timeout between requests;
//! - the request body must arrive within `body_timeout` of the head;
//! - at most `max_connections` are open at once: over that, new connections wait in the
//!   listen backlog until a slot frees (slow ones free theirs at their timeouts).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use futures_util::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Settings for every connection `serve` accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `PMA_SSO_HTTP_HEADER_TIMEOUT`, default 10s: a request head (and, between requests on a
    /// kept-alive connection, its first byte) must arrive within this.
    pub header_timeout: Duration,
    /// `PMA_SSO_HTTP_BODY_TIMEOUT`, default 10s: a request body must arrive within this.
    pub body_timeout: Duration,
    /// `PMA_SSO_HTTP_MAX_CONNECTIONS`, default 256, per listener.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }
}

impl ConnectionLimits {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<ConnectionLimits, String> {
        let defaults = ConnectionLimits::default();
        let duration = |key: &str, default: Duration| match get(key) {
            None => Ok(default),
            Some(v) => worker::pipeline::parse_duration(&v)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    format!(
                        "{key} is invalid: expected a duration above zero such as 10s, got `{v}`"
                    )
                }),
        };
        let max_connections = match get("PMA_SSO_HTTP_MAX_CONNECTIONS") {
            None => defaults.max_connections,
            Some(v) => v.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                format!("PMA_SSO_HTTP_MAX_CONNECTIONS is invalid: expected a whole number ≥ 1, got `{v}`")
            })?,
        };
        Ok(ConnectionLimits {
            header_timeout: duration("PMA_SSO_HTTP_HEADER_TIMEOUT", defaults.header_timeout)?,
            body_timeout: duration("PMA_SSO_HTTP_BODY_TIMEOUT", defaults.body_timeout)?,
            max_connections,
        })
    }
}

/// The error a request body reports when it did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// `error` (from reading a body) is a [`BodyTimedOut`], however deeply wrapped.
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// Serve `app` on `listener` under `limits` until `shutdown`; then stop accepting, let the
/// requests in flight finish and close idle connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let body_timeout = limits.body_timeout;
    let app = app.layer(axum::middleware::map_request(move |request: Request| {
        std::future::ready(with_body_deadline(request, body_timeout))
    }));
    let mut connections = JoinSet::new();
    loop {
        // A slot first: over the cap, connections wait in the kernel's backlog, not in ours.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_per_connection(&e) => continue,
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        while connections.try_join_next().is_some() {}
        let service = TowerToHyperService::new(
            app.clone()
                .map_request(|r: Request<hyper::body::Incoming>| r.map(Body::new)),
        );
        let header_timeout = limits.header_timeout;
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended");
                    }
                }
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Errors that end one accepted connection, not the listener.
fn is_per_connection(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
    )
}

/// The request's body fails with [`BodyTimedOut`] once `timeout` has passed.
fn with_body_deadline(request: Request, timeout: Duration) -> Request {
    let deadline = tokio::time::Instant::now() + timeout;
    request.map(|body| {
        let chunks = body.into_data_stream();
        let timed = futures_util::stream::unfold(Some(chunks), move |chunks| async move {
            let mut chunks = chunks?;
            match tokio::time::timeout_at(deadline, chunks.next()).await {
                Ok(Some(chunk)) => Some((chunk, Some(chunks))),
                Ok(None) => None,
                // One error, then the stream ends.
                Err(_) => Some((Err(axum::Error::new(BodyTimedOut(timeout))), None)),
            }
        });
        Body::from_stream(timed.map(|c: Result<Bytes, axum::Error>| c))
    })
}
