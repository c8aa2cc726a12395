//! `pma-sso-worker` started before `pma-sso init` (a fresh compose stack): no token yet.

use std::time::{Duration, Instant};

use super::harness::sigterm_exits_zero;

/// Without `AUTHENTIK_TOKEN` the worker must not exit (compose would restart it in a loop): it
/// answers `/healthz`, is not ready with `/readyz` naming the command to run, keeps waiting,
/// and stops cleanly on SIGTERM.
#[tokio::test]
async fn worker_without_a_token_waits_alive_and_not_ready_naming_init() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join(".env"),
        "DOMAIN=example.org\nAUTHENTIK_URL=http://127.0.0.1:9\nAUTHENTIK_TOKEN=\n",
    )
    .expect("env");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso-worker"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PMA_SSO_ENV_FILE", dir.path().join(".env"))
        .env("PMA_SSO_WORKER_HTTP", format!("127.0.0.1:{port}"))
        .env("PMA_SSO_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .expect("spawn worker");
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let health = loop {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the worker never answered /healthz"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    let body = ready.text().await.expect("body");
    assert!(body.contains("AUTHENTIK_TOKEN is not set"), "{body}");
    assert!(body.contains("pma-sso init"), "{body}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the worker exited"
    );
    sigterm_exits_zero(
        &mut child,
        Duration::from_secs(10),
        "the waiting worker ignored SIGTERM",
    )
    .await;
}
