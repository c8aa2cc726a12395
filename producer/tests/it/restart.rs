//! The serial scenario for `pma-sso serve`: really restart RabbitMQ and PostgreSQL while it
//! takes webhooks. Ignored in the parallel run; `.ci/run` runs it alone
//! (`cargo test -p producer --test it -- --ignored --test-threads=1`).

use std::time::{Duration, Instant};

use testkit::servers::{Restore, restart_postgres, start_rabbitmq, stop_rabbitmq};
use tokio::io::AsyncBufReadExt;

use crate::cli::TOKEN;
use crate::status::{Harness, Options};

const SECRET: &str = "s3cret-s3cret";
const LEASE_SECS: u64 = 30;

/// Post one `model_updated` event for Grafana's application until serve answers 200 (it
/// answers 5xx while it cannot record the job), for at most a minute.
async fn post_until_accepted(http: &reqwest::Client, url: &str, n: u32) {
    let body = serde_json::json!({
        "event_uuid": format!("1b2c3d4e-0000-4000-8000-{n:012}"),
        "action": "model_updated", "model_app": "authentik_core", "model_name": "application",
        "model_pk": "00000000000040008000000000000001", "object_name": "Grafana",
        "event_user": "akadmin"});
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        match http
            .post(url)
            .header("X-PMA-SSO-Token", SECRET)
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status() == reqwest::StatusCode::OK => return,
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("serve did not accept webhook {n} within a minute: {last}");
}

async fn succeeded_checks(h: &Harness) -> i64 {
    sqlx::query_scalar(
        "select count(*) from jobs where service = 'grafana' and action = 'check' and status = 'succeeded'",
    )
    .fetch_one(&h.pool)
    .await
    .expect("count checks")
}

/// Post one event and wait until it has led to a succeeded check: a new one, or the queued one
/// it was coalesced into — either way one more than `before`. The bound is shorter than the
/// relay's lease ([`LEASE_SECS`]), so only serve's own publish can have delivered the job: a
/// serve that did not reconnect to the broker would leave it to the relay and fail here.
async fn webhook_leads_to_a_check(h: &Harness, http: &reqwest::Client, url: &str, n: u32) {
    let before = succeeded_checks(h).await;
    post_until_accepted(http, url, n).await;
    let within = Duration::from_secs(LEASE_SECS - 5);
    let deadline = Instant::now() + within;
    while succeeded_checks(h).await <= before {
        assert!(
            Instant::now() < deadline,
            "webhook {n} led to no succeeded check within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "restarts the shared RabbitMQ and PostgreSQL; .ci/run runs it alone"]
async fn serve_rides_out_real_broker_and_database_restarts() {
    let _restore = Restore;
    let sim = testkit::AuthentikSim::new(TOKEN).start().await;
    let dot_env = format!(
        "AUTHENTIK_URL={}\nPMA_SSO_WEBHOOK_SECRET={SECRET}\n",
        sim.base_url()
    );
    let h = Harness::with(
        sim,
        &["grafana"],
        Options {
            dot_env,
            queue_tag: "serve-restart",
            env: vec![
                ("PMA_SSO_JOB_TIMEOUT", "5s".into()),
                ("PMA_SSO_LEASE", format!("{LEASE_SECS}s")),
                ("PMA_SSO_RELAY_INTERVAL", "500ms".into()),
            ],
        },
    )
    .await;
    assert_eq!(h.pma(&["fix", "grafana"]).await.0, 0);
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
        probe.local_addr().expect("addr").port()
    };
    let mut serve = h
        .command(&["serve"])
        .env("PMA_SSO_WEBHOOK_ADDR", format!("127.0.0.1:{port}"))
        .env("PMA_SSO_AUTHENTIK_USER", "pma-sso")
        .env("PMA_SSO_STATUS_ADDR", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("serve");
    let mut banner = String::new();
    let mut stdout = tokio::io::BufReader::new(serve.stdout.take().expect("stdout"));
    tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut banner))
        .await
        .expect("serve starts within 30 s")
        .expect("banner");
    let url = format!("http://127.0.0.1:{port}/webhooks/authentik");
    let http = reqwest::Client::new();
    let within = Duration::from_secs(LEASE_SECS * 3);

    webhook_leads_to_a_check(&h, &http, &url, 1).await;

    // RabbitMQ away: webhooks meanwhile may only get their rows (the relay publishes them).
    stop_rabbitmq();
    let _ = tokio::time::timeout(Duration::from_secs(5), post_until_accepted(&http, &url, 2)).await;
    start_rabbitmq().await;
    webhook_leads_to_a_check(&h, &http, &url, 3).await;

    // PostgreSQL restarted under serve's pool and leader lock.
    restart_postgres().await;
    webhook_leads_to_a_check(&h, &http, &url, 4).await;

    assert!(
        serve.try_wait().expect("status").is_none(),
        "serve exited instead of reconnecting"
    );
    // Nothing stays open: every job serve recorded ends (the relay's lease bounds the wait).
    let deadline = Instant::now() + within;
    loop {
        let open: i64 = sqlx::query_scalar(
            "select count(*) from jobs where status not in ('succeeded', 'failed', 'dead')",
        )
        .fetch_one(&h.pool)
        .await
        .expect("count");
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} jobs still open after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let failed: i64 = sqlx::query_scalar("select count(*) from jobs where status <> 'succeeded'")
        .fetch_one(&h.pool)
        .await
        .expect("count");
    assert_eq!(failed, 0, "every job serve enqueued succeeds");
    let status = testkit::process::sigterm(&mut serve, Duration::from_secs(20)).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "serve stops cleanly"
    );
}
