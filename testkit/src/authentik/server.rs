//! The HTTP side: a loopback listener whose connections can be reset on demand, the request
//! log, and fault injection in front of the API.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use axum::{Json, Router};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::RecordedRequest;
use super::api::ApiResponse;
use super::faults::{Fault, FaultState, Faults, RequestKey};
use super::store::Store;
use super::{protocol, routes};

/// Bodies larger than this are refused; nothing the API takes comes close.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// State shared by the server tasks and the test's [`super::SimHandle`].
#[derive(Debug)]
pub(crate) struct Shared {
    pub token: String,
    pub writes: AtomicUsize,
    store: Mutex<Store>,
    log: Mutex<Vec<RecordedRequest>>,
    violations: Mutex<Vec<String>>,
    faults: Mutex<FaultState>,
}

/// A panic while a lock is held leaves plain data behind, still usable by the next request.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(token: String, faults: Faults) -> Shared {
        Shared {
            token,
            writes: AtomicUsize::new(0),
            store: Mutex::new(Store::seeded()),
            log: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            faults: Mutex::new(FaultState::new(faults)),
        }
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub(crate) fn log(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        lock(&self.log)
    }

    pub(crate) fn violations(&self) -> MutexGuard<'_, Vec<String>> {
        lock(&self.violations)
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = FaultState::new(faults);
    }

    pub(crate) fn count_write(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
}

/// Lets a request handler kill the TCP connection it arrived on.
#[derive(Debug, Clone)]
pub(crate) struct ConnHandle(Arc<AtomicBool>);

impl ConnHandle {
    /// Every later read or write on the connection fails, so hyper drops it without sending
    /// the response; the socket then closes with RST.
    fn reset(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A TCP stream that fails all I/O once its [`ConnHandle`] is reset.
#[derive(Debug)]
pub(crate) struct KillableStream {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

impl KillableStream {
    fn check(&self) -> io::Result<()> {
        if self.killed.load(Ordering::SeqCst) {
            // Zero linger turns the close into an RST, as from a crashed proxy.
            let _ = self.inner.set_zero_linger();
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset by fault injection",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(err) = this.check() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(err) = this.check() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(err) = this.check() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(err) = this.check() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(err) = this.check() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A TCP listener handing out [`KillableStream`]s.
#[derive(Debug)]
pub(crate) struct SimListener(TcpListener);

impl Listener for SimListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((inner, addr)) => {
                    let _ = inner.set_nodelay(true);
                    let stream = KillableStream {
                        inner,
                        killed: Arc::new(AtomicBool::new(false)),
                    };
                    return (stream, addr);
                }
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, SimListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        ConnHandle(Arc::clone(&stream.io().killed))
    }
}

/// Bind and serve until the returned sender fires (or is dropped).
pub(crate) async fn serve(
    bind: SocketAddr,
    shared: Arc<Shared>,
) -> io::Result<(SocketAddr, oneshot::Sender<()>, JoinHandle<()>)> {
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let app = Router::new().fallback(entry).with_state(shared);
    let server = axum::serve(
        SimListener(listener),
        app.into_make_service_with_connect_info::<ConnHandle>(),
    )
    .with_graceful_shutdown(async {
        let _ = rx.await;
    });
    let task = tokio::spawn(async move {
        if let Err(err) = server.await {
            tracing::error!(%err, "authentik stand-in stopped");
        }
    });
    Ok((addr, tx, task))
}

async fn entry(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    // Its own task, so a client that gives up (a timeout fault) cannot cancel a change half
    // way: as on a real server, the request runs to its end and is recorded.
    match tokio::spawn(process(shared, conn, parts, body)).await {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(%err, "request handler panicked");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn recorded_body(body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    Some(
        serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())),
    )
}

async fn process(shared: Arc<Shared>, conn: ConnHandle, parts: Parts, body: Bytes) -> Response {
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();

    let (latency, fault) = lock(&shared.faults).decide(&RequestKey {
        method: method.as_str(),
        path: &path,
        query: &query,
        body: &body,
    });
    let mut record = RecordedRequest {
        method: method.as_str().to_owned(),
        path: path.clone(),
        query: query.clone(),
        body: recorded_body(&body),
        status: 0,
        fault: fault_name(fault),
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = match fault {
        Some(Fault::Reset) => {
            conn.reset();
            tracing::debug!(%method, %path, "fault: connection reset");
            shared.log().push(record);
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        Some(Fault::ServerError(status)) => server_error(status),
        Some(Fault::AfterForwarding(status)) => {
            let handled = answer(&shared, &method, &path, &query, &parts.headers, &body);
            tracing::debug!(%method, %path, handled = handled.status().as_u16(), "fault: answer replaced after forwarding");
            server_error(status)
        }
        Some(Fault::RateLimited { retry_after_secs }) => rate_limited(retry_after_secs),
        Some(Fault::Timeout(delay)) => {
            tokio::time::sleep(delay).await;
            answer(&shared, &method, &path, &query, &parts.headers, &body)
        }
        None => answer(&shared, &method, &path, &query, &parts.headers, &body),
    };
    record.status = response.status().as_u16();
    tracing::debug!(%method, %path, status = record.status, "authentik stand-in answered");
    shared.log().push(record);
    response
}

fn fault_name(fault: Option<Fault>) -> Option<&'static str> {
    Some(match fault? {
        Fault::ServerError(_) => "error",
        Fault::AfterForwarding(_) => "error_after_forwarding",
        Fault::RateLimited { .. } => "rate_limited",
        Fault::Timeout(_) => "timeout",
        Fault::Reset => "reset",
    })
}

/// The protocol endpoints (discovery, JWKS, token, SAML metadata) first, then the API.
fn answer(
    shared: &Shared,
    method: &axum::http::Method,
    path: &str,
    query: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Response {
    let protocol = protocol::handle(&shared.store(), method, path, headers, body);
    protocol
        .unwrap_or_else(|| api_response(routes::handle(shared, method, path, query, headers, body)))
}

fn api_response(answer: ApiResponse) -> Response {
    match answer.body {
        Some(body) => (answer.status, Json(body)).into_response(),
        None => answer.status.into_response(),
    }
}

/// What a client sees from a failing authentik or the proxy in front of it: not JSON.
fn server_error(status: StatusCode) -> Response {
    let body = match status {
        StatusCode::INTERNAL_SERVER_ERROR => {
            "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Server Error (500)</title>\n</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n"
        }
        StatusCode::BAD_GATEWAY => {
            "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
        }
        _ => {
            "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n"
        }
    };
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/html"))],
        body,
    )
        .into_response()
}

/// DRF's throttled answer.
fn rate_limited(retry_after_secs: u64) -> Response {
    let detail =
        format!("Request was throttled. Expected available in {retry_after_secs} seconds.");
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(serde_json::json!({ "detail": detail })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}
