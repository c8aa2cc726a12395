//! authentik down for longer than the retry budget: the jobs end `dead` with the reason, and
//! `pma-sso retry --dead` brings them back once authentik answers again. authentik is taken
//! away through the test kit's TCP fault proxy; the worker runs in this process with a small
//! budget, the CLI as the operator runs it.

use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use schemas::job::{Action, Trigger};
use testkit::FaultProxy;
use testkit::pg::TestDb;
use tokio_util::sync::CancellationToken;
use worker::pipeline::client::JobClient;
use worker::pipeline::worker::{Health, Worker};
use worker::pipeline::{PipelineSettings, db};

use crate::cli::{TOKEN, copy_package};
use crate::status::delete_queues;

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
    let dir = tempfile::tempdir().expect("tmp");
    for s in services {
        copy_package(s, dir.path());
    }
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "DOMAIN=example.org\nAUTHENTIK_URL=http://{}\nAUTHENTIK_TOKEN={TOKEN}\nPMA_SSO_EXEC_RUNNER=true\n",
            proxy.addr()
        ),
    )
    .expect("env");
    let test_db = TestDb::new().await;
    let env: Vec<(&str, String)> = vec![
        ("DATABASE_URL", test_db.url.clone()),
        ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
        (
            "PMA_SSO_QUEUE_PREFIX",
            format!("pma-sso-dead-{}", uuid::Uuid::new_v4().simple()),
        ),
        ("PMA_SSO_QUEUE_EXPIRES", "600s".into()),
        ("PMA_SSO_DELAY_TIERS", "100ms,300ms".into()),
        // The budget: three attempts a few hundred milliseconds apart.
        ("PMA_SSO_MAX_ATTEMPTS", "3".into()),
        ("PMA_SSO_RETRY_BASE", "100ms".into()),
        ("PMA_SSO_RETRY_CAP", "300ms".into()),
        ("PMA_SSO_HTTP_TIMEOUT_SECS", "1".into()),
        ("PMA_SSO_LOG", "error".into()),
    ];
    let lookup = |key: &str| env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
    let mut pipeline = PipelineSettings::from_lookup(&lookup).expect("settings");
    pipeline.http_addr = None;
    let pool = db::connect(&pipeline.database_url, pipeline.concurrency)
        .await
        .expect("db");
    db::migrate(&pool).await.expect("migrate");
    let env_file = dir.path().join(".env").display().to_string();
    let flow = worker::Settings::from_lookup(&|key| match key {
        "PMA_SSO_ENV_FILE" => Some(env_file.clone()),
        other => lookup(other),
    })
    .expect("flow settings");
    let worker = Arc::new(Worker {
        ctx: Arc::new(worker::Context::new(flow).expect("ctx")),
        db: pool.clone(),
        topology: pipeline.topology(),
        settings: pipeline.clone(),
        health: Arc::new(Health::default()),
    });
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));
    let client = JobClient::connect(&pipeline).await.expect("client");

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
    let dead = wait_statuses(&pool, &ids, "dead").await;
    for row in &dead {
        assert_eq!(row.attempts, 3, "{}: the whole budget is used", row.service);
        let reason = row.last_error.as_deref().unwrap_or("");
        assert!(
            reason.contains("authentik") && reason.contains("request failed"),
            "{}: the reason names what was unreachable: {reason}",
            row.service
        );
    }
    assert_eq!(sim.applications().len(), 0);

    // authentik is back; the operator revives the dead jobs.
    proxy.set_refuse(false);
    let pma = |args: &'static [&'static str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"));
        cmd.args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PMA_SSO_ENV_FILE", dir.path().join(".env"));
        for (k, v) in &env {
            cmd.env(k, v);
        }
        async move {
            let Output {
                status,
                stdout,
                stderr,
            } = cmd.output().await.expect("run pma-sso");
            let err = String::from_utf8_lossy(&stderr);
            assert!(!err.contains("panicked"), "{err}");
            (
                status.code().expect("exit code"),
                String::from_utf8_lossy(&stdout).into_owned(),
            )
        }
    };
    let (code, out) = pma(&["retry", "--dead"]).await;
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
    wait_statuses(&pool, &revived, "succeeded").await;
    for s in services {
        let apps = sim.applications().iter().filter(|a| a["slug"] == s).count();
        assert_eq!(apps, 1, "{s}");
    }
    let (code, out) = pma(&["retry", "--dead"]).await;
    assert_eq!((code, out.as_str()), (0, "nothing to retry\n"));

    client.close().await;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), running).await;
    delete_queues(&pipeline).await;
}
