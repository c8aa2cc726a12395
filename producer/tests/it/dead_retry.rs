//! authentik down for longer than the retry budget: the jobs end `dead` with the reason, and
//! `pma-sso retry --dead` brings them back once authentik answers again. authentik is taken
//! away through the test kit's TCP fault proxy; the worker runs in this process with a small
//! budget, the CLI as the operator runs it.

use std::time::Duration;

use schemas::job::{Action, Trigger};
use testkit::FaultProxy;
use worker::pipeline::client::JobClient;
use worker::pipeline::db;

use crate::cli::TOKEN;
use crate::status::{Harness, Options};

/// Bounds a hang; not a timing target.
const WAIT: Duration = Duration::from_secs(60);

async fn wait_statuses(pool: &sqlx::PgPool, ids: &[uuid::Uuid], want: &str) -> Vec<db::JobRow> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows = db::jobs(pool, ids).await.expect("rows");
        if rows.len() == ids.len() && rows.iter().all(|r| r.status.is_terminal()) {
            for r in &rows {
                assert_eq!(
                    r.status.as_str(),
                    want,
                    "{} {}: {:?}",
                    r.service,
                    r.action,
                    r.last_error
                );
            }
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs not {want} after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn authentik_down_past_the_retry_budget_kills_jobs_and_retry_dead_revives_them() {
    let services = ["grafana", "linkding"];
    let sim = testkit::AuthentikSim::new(TOKEN).start().await;
    let proxy = FaultProxy::start(sim.addr()).await.expect("proxy");
    let dot_env = format!("AUTHENTIK_URL=http://{}\n", proxy.addr());
    let h = Harness::with(
        sim,
        &services,
        Options {
            dot_env,
            queue_tag: "dead",
            env: vec![
                ("PMA_SSO_DELAY_TIERS", "100ms,300ms".into()),
                // The budget: three attempts a few hundred milliseconds apart.
                ("PMA_SSO_MAX_ATTEMPTS", "3".into()),
                ("PMA_SSO_RETRY_BASE", "100ms".into()),
                ("PMA_SSO_RETRY_CAP", "300ms".into()),
                ("PMA_SSO_HTTP_TIMEOUT_SECS", "1".into()),
            ],
        },
    )
    .await;
    let client = JobClient::connect(&h.pipeline).await.expect("client");

    // authentik goes away: connections are accepted and closed at once.
    proxy.set_refuse(true);
    proxy.cut_all();
    let mut ids = Vec::new();
    for s in services {
        ids.push(
            client
                .enqueue(s, Action::Add, Trigger::Cli, None)
                .await
                .expect("enqueue")
                .id,
        );
    }
    let dead = wait_statuses(&h.pool, &ids, "dead").await;
    for row in &dead {
        assert_eq!(row.attempts, 3, "{}: the whole budget is used", row.service);
        let reason = row.last_error.as_deref().unwrap_or("");
        assert!(
            reason.contains("authentik") && reason.contains("request failed"),
            "{}: the reason names what was unreachable: {reason}",
            row.service
        );
    }
    assert_eq!(h.sim.applications().len(), 0);

    // authentik is back; the operator revives the dead jobs.
    proxy.set_refuse(false);
    let (code, out) = h.pma(&["retry", "--dead"]).await;
    assert_eq!(code, 0, "{out}");
    let revived: Vec<uuid::Uuid> = out
        .lines()
        .filter_map(|l| l.rsplit("→ job ").next()?.parse().ok())
        .collect();
    assert_eq!(revived.len(), 2, "{out}");
    for (old, s) in ids.iter().zip(services) {
        assert!(
            out.contains(&format!("retried dead add for {s}: job {old} → job ")),
            "{out}"
        );
    }
    wait_statuses(&h.pool, &revived, "succeeded").await;
    for s in services {
        let apps = h
            .sim
            .applications()
            .iter()
            .filter(|a| a["slug"] == s)
            .count();
        assert_eq!(apps, 1, "{s}");
    }
    let (code, out) = h.pma(&["retry", "--dead"]).await;
    assert_eq!((code, out.as_str()), (0, "nothing to retry\n"));

    client.close().await;
    h.finish().await;
}
