//! Outages of one process's broker or database connection, through the test kit's TCP fault
//! proxy (the shared servers stay up for the tests running beside these), and a worker process
//! killed mid-job.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use schemas::job::Action;
use testkit::{FaultProxy, Faults};
use tokio_util::sync::CancellationToken;
use worker::pipeline::db;

use super::harness::{Pipeline, assert_all_succeeded, sigterm_exits_zero};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_broker_connection_cut_mid_stream_loses_no_job() {
    let services = ["grafana", "redmine", "linkding", "n8n", "superset"];
    let p = Pipeline::new(&services).await;
    p.platform.sim.set_faults(Faults {
        latency: Duration::from_millis(40),
        ..Faults::default()
    });
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], 5672)))
        .await
        .expect("proxy");
    let mut settings = p.settings.clone();
    settings.amqp_url = format!("amqp://guest:guest@{}/%2f", proxy.addr());
    let worker = p.worker(settings);
    let token = CancellationToken::new();
    let running = tokio::spawn(worker.run(token.clone()));

    let mut ids = Vec::new();
    for s in services {
        for action in [Action::Add, Action::Check] {
            ids.push(p.enqueue(s, action).await.id);
        }
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        proxy.cut_all();
    }
    let rows = p
        .client
        .wait(&ids, WAIT, WAIT)
        .await
        .expect("every job finished");
    assert_all_succeeded(&rows);
    for s in services {
        assert_eq!(p.platform.apps_with_slug(s), 1, "{s}");
    }
    assert!(proxy.accepted() >= 2, "the worker reconnected");
    token.cancel();
    let _ = running.await;
}

#[tokio::test]
async fn while_the_database_is_unreachable_the_worker_stops_instead_of_burning_attempts() {
    let mut p = Pipeline::new(&["grafana", "redmine"]).await;
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], 5432)))
        .await
        .expect("proxy");
    let url =
        p.db.url
            .replacen("127.0.0.1:5432", &proxy.addr().to_string(), 1);
    let pool = db::connect(&url, 2).await.expect("pool via proxy");
    let mut worker = Arc::try_unwrap(p.worker(p.settings.clone()))
        .ok()
        .expect("unique");
    worker.db = pool;
    let worker = Arc::new(worker);
    let token = CancellationToken::new();
    let running = tokio::spawn(worker.clone().run(token.clone()));

    proxy.set_refuse(true);
    proxy.cut_all();
    let a = p.enqueue("grafana", Action::Add).await;
    let b = p.enqueue("redmine", Action::Add).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let attempts: i64 = sqlx::query_scalar("select count(*) from attempts")
        .fetch_one(&p.pool)
        .await
        .expect("count");
    assert_eq!(
        attempts, 0,
        "attempts were burnt while the database was down"
    );
    assert!(
        !worker
            .health
            .database
            .load(std::sync::atomic::Ordering::Relaxed)
    );

    proxy.set_refuse(false);
    let rows = p
        .client
        .wait(&[a.id, b.id], WAIT, WAIT)
        .await
        .expect("finished after the outage");
    for row in rows {
        assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.last_error);
        assert_eq!(row.attempts, 1);
    }
    token.cancel();
    let _ = running.await;
    p.stop_workers().await;
}

#[tokio::test]
async fn a_worker_killed_mid_job_leaves_a_job_another_worker_completes() {
    let mut p = Pipeline::new(&["mattermost"]).await;
    p.platform.sim.set_faults(Faults {
        latency: Duration::from_millis(250),
        ..Faults::default()
    });
    let mut child = p.spawn_worker_process();
    let job = p.enqueue("mattermost", Action::Add).await;
    p.wait_status(job.id, "running", WAIT).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;

    p.platform.sim.set_faults(Faults::default());
    p.start_worker();
    let row = p.finished(job.id, WAIT).await;
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.last_error);
    assert_eq!(row.attempts, 2, "the killed attempt counts");
    assert_eq!(p.platform.apps_with_slug("mattermost"), 1);
    assert_eq!(p.platform.providers_named("pma-sso-mattermost"), 1);
    let mappings = p
        .platform
        .sim
        .scope_mappings()
        .into_iter()
        .filter(|m| m["name"] == "mattermost-id")
        .count();
    assert_eq!(mappings, 1);
    p.stop_workers().await;
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_job_finish_and_the_worker_exits_zero() {
    let mut p = Pipeline::new(&["grafana"]).await;
    p.platform.sim.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
    let mut child = p.spawn_worker_process();
    let job = p.enqueue("grafana", Action::Add).await;
    p.wait_status(job.id, "running", WAIT).await;
    sigterm_exits_zero(&mut child, Duration::from_secs(10), "exited within 10 s").await;
    let row = db::job(&p.pool, job.id).await.expect("db").expect("row");
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.last_error);
    assert_eq!(row.attempts, 1);
    p.stop_workers().await;
}

/// A database that accepts TCP but never answers holds a connect attempt for the pool's whole
/// acquire timeout; SIGTERM must end the worker without waiting for it.
#[tokio::test]
async fn sigterm_while_the_database_hangs_at_start_up_exits_at_once() {
    let p = Pipeline::new(&["grafana"]).await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let mut child = p
        .worker_process_command()
        .env("DATABASE_URL", format!("postgres://postgres@{addr}/test"))
        .spawn()
        .expect("spawn worker");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the worker waits for the database"
    );
    // Bounds a hang (the pool's acquire timeout is 10 s); not a timing assertion.
    sigterm_exits_zero(
        &mut child,
        Duration::from_secs(5),
        "exited while still connecting",
    )
    .await;
    held.abort();
}

#[tokio::test]
async fn health_readiness_and_metrics_answer_over_http() {
    let mut p = Pipeline::new(&["grafana"]).await;
    let worker = p.worker(p.settings.clone());
    let health = worker.health.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let server = tokio::spawn(worker::pipeline::http::serve_on(
        listener,
        health.clone(),
        stop.clone(),
    ));
    let get = |path: &str| reqwest::get(format!("http://{addr}{path}"));
    assert_eq!(get("/healthz").await.expect("healthz").status(), 200);
    let not_ready = get("/readyz").await.expect("readyz");
    assert_eq!(not_ready.status(), 503);
    assert_eq!(
        not_ready.text().await.expect("body"),
        "database: down\nbroker: down\nauthentik: down\n"
    );

    let running = tokio::spawn(worker.clone().run(stop.clone()));
    let job = p.enqueue("grafana", Action::Add).await;
    p.client
        .wait(&[job.id], WAIT, WAIT)
        .await
        .expect("finished");
    let ready = get("/readyz").await.expect("readyz");
    assert_eq!(ready.status(), 200);
    let metrics = get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains("pma_sso_jobs_total{action=\"add\",outcome=\"updated\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pma_sso_job_duration_seconds"),
        "{metrics}"
    );
    stop.cancel();
    let _ = running.await;
    let _ = server.await;
    p.stop_workers().await;
}

#[tokio::test]
async fn a_rejected_authentik_token_turns_readiness_red_and_jobs_fail_at_once() {
    let mut p = Pipeline::new(&["grafana"]).await;
    let mut flow = p.platform.ctx.settings.clone();
    flow.authentik_token = secrecy::SecretString::from("expired-token-0b1d".to_owned());
    let mut worker = Arc::try_unwrap(p.worker(p.settings.clone()))
        .ok()
        .expect("unique");
    worker.ctx = Arc::new(worker::Context::new(flow).expect("ctx"));
    let worker = Arc::new(worker);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let server = tokio::spawn(worker::pipeline::http::serve_on(
        listener,
        worker.health.clone(),
        stop.clone(),
    ));
    let running = tokio::spawn(worker.clone().run(stop.clone()));
    let job = p.enqueue("grafana", Action::Check).await;
    let row = p.finished(job.id, WAIT).await;
    assert_eq!(
        row.status.as_str(),
        "failed",
        "a rejected token is not retried"
    );
    assert_eq!(row.attempts, 1);
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or("")
            .contains("Token invalid/expired"),
        "{:?}",
        row.last_error
    );
    let ready = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    let body = ready.text().await.expect("body");
    assert!(
        body.contains("authentik: down (token invalid or expired)"),
        "{body}"
    );
    assert!(!body.contains("expired-token-0b1d"));
    let state: String =
        sqlx::query_scalar("select last_summary from service_state where service = 'grafana'")
            .fetch_one(&p.pool)
            .await
            .expect("state");
    assert!(
        state.contains("check AUTHENTIK_TOKEN"),
        "status shows the reason: {state}"
    );
    stop.cancel();
    let _ = running.await;
    let _ = server.await;
    p.stop_workers().await;
}
