//! `serve`'s listeners bound every connection: a head that never completes, a kept-alive
//! connection that sends nothing and a body that never arrives are all closed at their
//! timeouts, and over the connection cap new clients wait their turn instead of being lost.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::post;
use producer::serve::limits::{self, ConnectionLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Bounds a hang; not a timing target.
const BOUND: Duration = Duration::from_secs(10);

/// Reads a whole body as the webhook does; 408 when the body timed out.
async fn read_body(body: Body) -> (StatusCode, String) {
    match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) => (StatusCode::OK, format!("{} bytes", bytes.len())),
        Err(e) if limits::is_body_timeout(&e) => (StatusCode::REQUEST_TIMEOUT, e.to_string()),
        Err(e) => (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
    }
}

async fn start(limits: ConnectionLimits) -> (std::net::SocketAddr, CancellationToken) {
    let app = Router::new().route("/", post(read_body));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    tokio::spawn(limits::serve(listener, app, limits, stop.clone()));
    (addr, stop)
}

/// Waits (at most [`BOUND`]) until the server closes `conn`; returns what it sent first.
async fn closed_by_server(conn: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(BOUND, conn.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open for {BOUND:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&seen).into_owned(),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed_while_a_real_request_still_gets_through() {
    let (addr, stop) = start(ConnectionLimits {
        header_timeout: Duration::from_millis(400),
        body_timeout: Duration::from_millis(400),
        max_connections: 6,
    })
    .await;
    // Every slot taken by a client that never finishes: half a head, nothing at all, a body
    // that stops part way.
    let mut slow = Vec::new();
    for i in 0..6 {
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        match i % 3 {
            0 => conn
                .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-")
                .await
                .expect("write"),
            1 => {}
            _ => conn
                .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
                .await
                .expect("write"),
        }
        slow.push((i % 3, conn));
    }
    // A real client, over the cap: it waits for a slot and is served once the slow ones go.
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/"))
        .body("{\"ok\":true}")
        .timeout(BOUND)
        .send()
        .await
        .expect("a legitimate request is served");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("text"), "11 bytes");
    for (kind, mut conn) in slow {
        let answer = closed_by_server(&mut conn).await;
        if kind == 2 {
            assert!(
                answer.starts_with("HTTP/1.1 408"),
                "a stalled body gets 408: {answer:?}"
            );
        }
    }
    stop.cancel();
}

#[tokio::test]
async fn a_kept_alive_connection_left_idle_is_closed_after_the_header_timeout() {
    let (addr, stop) = start(ConnectionLimits {
        header_timeout: Duration::from_millis(300),
        ..ConnectionLimits::default()
    })
    .await;
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .expect("write");
    // The answer comes, then nothing more is sent: the server closes the idle connection.
    let seen = closed_by_server(&mut conn).await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen:?}");
    stop.cancel();
}

#[test]
fn connection_limits_are_read_from_settings_and_bad_values_are_named() {
    let defaults = ConnectionLimits::from_lookup(&|_| None).expect("defaults");
    assert_eq!(defaults, ConnectionLimits::default());
    let set = ConnectionLimits::from_lookup(&|k| match k {
        "PMA_SSO_HTTP_HEADER_TIMEOUT" => Some("5s".into()),
        "PMA_SSO_HTTP_BODY_TIMEOUT" => Some("20s".into()),
        "PMA_SSO_HTTP_MAX_CONNECTIONS" => Some("64".into()),
        _ => None,
    })
    .expect("valid");
    assert_eq!(
        (set.header_timeout, set.body_timeout, set.max_connections),
        (Duration::from_secs(5), Duration::from_secs(20), 64)
    );
    for (key, value) in [
        ("PMA_SSO_HTTP_HEADER_TIMEOUT", "0s"),
        ("PMA_SSO_HTTP_BODY_TIMEOUT", "soon"),
        ("PMA_SSO_HTTP_MAX_CONNECTIONS", "0"),
    ] {
        let err = ConnectionLimits::from_lookup(&|k| (k == key).then(|| value.to_owned()))
            .expect_err("refused");
        assert!(err.contains(key) && err.contains(value), "{err}");
    }
}
