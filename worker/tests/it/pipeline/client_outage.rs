//! The enqueueing side (the CLI, `pma-sso serve`) loses its broker connection — a broker
//! restart, a network cut. A long-lived client must reconnect by itself on its next enqueue,
//! not leave every later job to wait out the relay's lease. The cut goes through the test
//! kit's TCP fault proxy, so the shared broker stays up.

use std::net::SocketAddr;
use std::time::Duration;

use schemas::job::{Action, Trigger};
use testkit::FaultProxy;
use worker::pipeline::client::JobClient;

use super::harness::{Pipeline, wait_terminal};

/// Bounds a hang; far below the lease, which is what a job without a reconnect waits for.
const WAIT: Duration = Duration::from_secs(60);

/// A pipeline with a running worker whose lease is far longer than any wait here (so only the
/// client, never the relay, can deliver a job in time), and a job client that reaches RabbitMQ
/// through a fault proxy.
async fn behind_a_proxy(services: &[&str]) -> (Pipeline, FaultProxy, JobClient) {
    let mut p = Pipeline::with(services, |s| {
        s.lease = Duration::from_secs(600);
    })
    .await;
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], 5672)))
        .await
        .expect("proxy");
    let mut settings = p.settings.clone();
    settings.amqp_url = format!("amqp://guest:guest@{}/%2f", proxy.addr());
    let client = JobClient::connect_with(&settings, p.topology())
        .await
        .expect("client");
    p.start_worker();
    (p, proxy, client)
}

#[tokio::test]
async fn an_enqueue_after_the_broker_connection_died_reconnects_and_publishes() {
    let (mut p, proxy, client) = behind_a_proxy(&["grafana", "linkding"]).await;

    let before = client
        .enqueue("grafana", Action::Check, Trigger::Webhook, None)
        .await
        .expect("enqueue");
    wait_terminal(&p.pool, &[before.id], WAIT).await;

    proxy.cut_all();
    // The client may only notice on its next publish; either way that publish must land.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut after = Vec::new();
    for service in ["linkding", "grafana"] {
        after.push(
            client
                .enqueue(service, Action::Check, Trigger::Webhook, None)
                .await
                .expect("enqueue")
                .id,
        );
    }
    let rows = wait_terminal(&p.pool, &after, WAIT).await;
    for row in &rows {
        assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.last_error);
    }
    // Only the relay sets published_at: these went out through the client's new connection.
    let relayed: i64 = sqlx::query_scalar(
        "select count(*) from jobs where id = any($1) and published_at is not null",
    )
    .bind(&after)
    .fetch_one(&p.pool)
    .await
    .expect("count");
    assert_eq!(relayed, 0, "the relay, not the client, published them");
    assert!(proxy.accepted() >= 2, "the client reconnected");
    client.close().await;
    p.stop_workers().await;
}

#[tokio::test]
async fn a_job_recorded_while_the_broker_was_away_goes_out_with_the_next_enqueue() {
    let (mut p, proxy, client) = behind_a_proxy(&["grafana"]).await;

    // The broker is away: the job is recorded, its publish fails (not an error for the caller).
    proxy.set_refuse(true);
    proxy.cut_all();
    let recorded = client
        .enqueue("grafana", Action::Check, Trigger::Webhook, None)
        .await
        .expect("the row is recorded even without the broker");
    proxy.set_refuse(false);
    // The same request again joins the waiting job; it must not be left waiting for the lease.
    let again = client
        .enqueue("grafana", Action::Check, Trigger::Webhook, None)
        .await
        .expect("enqueue");
    assert!(again.coalesced, "joins the job recorded during the outage");
    assert_eq!(again.id, recorded.id);
    let rows = wait_terminal(&p.pool, &[recorded.id], WAIT).await;
    assert_eq!(
        rows[0].status.as_str(),
        "succeeded",
        "{:?}",
        rows[0].last_error
    );
    client.close().await;
    p.stop_workers().await;
}
