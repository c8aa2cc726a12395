//! The authentik client's global request cap (`PMA_SSO_AUTHENTIK_MAX_CONCURRENCY`) and custom
//! CA bundle (`AUTHENTIK_CA_FILE`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use worker::authentik::{Client, ClientOptions};

/// A loopback authentik that answers `/core/users/me/` slowly and records the most requests it
/// ever had in flight at once: counted by the server, not inferred from timings.
async fn counting_authentik() -> (String, Arc<AtomicUsize>) {
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (n, p) = (now.clone(), peak.clone());
    let app = axum::Router::new().route(
        "/api/v3/core/users/me/",
        axum::routing::get(move || {
            let (now, peak) = (n.clone(), p.clone());
            async move {
                let inside = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(inside, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(60)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                axum::Json(serde_json::json!({"user": {"username": "pma-sso"}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), peak)
}

async fn peak_with(max_concurrency: usize) -> usize {
    let (url, peak) = counting_authentik().await;
    let options = ClientOptions {
        max_concurrency,
        ..ClientOptions::default()
    };
    let client = Client::with_options(
        &url,
        SecretString::from("t"),
        Duration::from_secs(10),
        &options,
    )
    .expect("client");
    let calls: Vec<_> = (0..16)
        .map(|_| {
            // Clones share the cap, as a worker's flows share one Context.
            let client = client.clone();
            tokio::spawn(async move { client.me().await })
        })
        .collect();
    for call in calls {
        call.await.expect("join").expect("me");
    }
    peak.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authentik_client_keeps_at_most_max_concurrency_requests_in_flight() {
    assert_eq!(peak_with(3).await, 3, "capped at 3, and the cap is reached");
    assert_eq!(peak_with(1).await, 1);
    // The counter does see parallel requests when the cap allows them.
    assert!(peak_with(16).await > 3);
}

#[test]
fn client_options_read_the_cap_and_refuse_zero() {
    let opts = ClientOptions::from_lookup(&|_| None).expect("defaults");
    assert_eq!(opts.max_concurrency, 8);
    assert!(opts.ca_file.is_none());
    let opts = ClientOptions::from_lookup(&|k| match k {
        "PMA_SSO_AUTHENTIK_MAX_CONCURRENCY" => Some("2".into()),
        "AUTHENTIK_CA_FILE" => Some("/etc/ca.pem".into()),
        _ => None,
    })
    .expect("set");
    assert_eq!(opts.max_concurrency, 2);
    assert_eq!(
        opts.ca_file.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );
    let err = ClientOptions::from_lookup(&|k| {
        (k == "PMA_SSO_AUTHENTIK_MAX_CONCURRENCY").then(|| "0".into())
    })
    .expect_err("zero");
    assert!(err.contains("PMA_SSO_AUTHENTIK_MAX_CONCURRENCY"), "{err}");
}

fn client_with_ca(path: &std::path::Path) -> Result<Client, String> {
    let options = ClientOptions {
        ca_file: Some(path.to_owned()),
        ..ClientOptions::default()
    };
    Client::with_options(
        "https://authentik.internal",
        SecretString::from("t"),
        Duration::from_secs(5),
        &options,
    )
    .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_custom_ca_bundle_loads_and_an_unreadable_one_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let missing = dir.path().join("no-such-ca.pem");
    let err = client_with_ca(&missing).expect_err("missing file");
    assert!(
        err.contains("AUTHENTIK_CA_FILE")
            && err.contains("no-such-ca.pem")
            && err.contains("cannot read"),
        "{err}"
    );
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").expect("write");
    let err = client_with_ca(&junk).expect_err("junk");
    assert!(
        err.contains("AUTHENTIK_CA_FILE") && err.contains("junk.pem"),
        "{err}"
    );

    let sim = testkit::AuthentikSim::new("t").start().await;
    let pem = sim
        .certificate_pem("authentik Self-signed Certificate")
        .expect("the stand-in's built-in certificate");
    let good = dir.path().join("ca.pem");
    std::fs::write(&good, pem).expect("write");
    client_with_ca(&good).expect("a PEM bundle is accepted");
}
