//! The serial scenario: really restart RabbitMQ and PostgreSQL while jobs are in flight. It
//! takes the shared servers away, so it is ignored in the parallel run and `.ci/run` runs it
//! alone (`cargo test -p worker --test it -- --ignored --test-threads=1`).

use std::time::Duration;

use schemas::job::{Action, Trigger};
use testkit::Faults;
use testkit::servers::{Restore, restart_postgres, start_rabbitmq, stop_rabbitmq};

use super::harness::{
    Pipeline, assert_all_succeeded, assert_end_state, generate_services, wait_terminal,
};

#[tokio::test]
#[ignore = "restarts the shared RabbitMQ and PostgreSQL; .ci/run runs it alone"]
async fn real_broker_and_database_restarts_lose_nothing() {
    let _restore = Restore;
    let services = [
        "grafana",
        "redmine",
        "linkding",
        "n8n",
        "superset",
        "mattermost",
    ];
    let mut p = Pipeline::with(&services, |s| {
        s.job_timeout = Duration::from_secs(5);
        s.lease = Duration::from_secs(8);
        s.retry.max_attempts = 10;
    })
    .await;
    p.platform.sim.set_faults(Faults {
        latency: Duration::from_millis(80),
        ..Faults::default()
    });
    p.start_worker();
    let mut ids = Vec::new();
    for s in services {
        for action in [Action::Add, Action::Check, Action::Fix] {
            ids.push(p.enqueue(s, action).await.id);
        }
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_rabbitmq();
    tokio::time::sleep(Duration::from_secs(2)).await;
    start_rabbitmq().await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    restart_postgres().await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        // While PostgreSQL restarts the query itself may fail: count that as still open.
        let open: i64 = sqlx::query_scalar(
            "select count(*) from jobs where status not in ('succeeded', 'failed', 'dead')",
        )
        .fetch_one(&p.pool)
        .await
        .unwrap_or(1);
        if open == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} jobs still open after the restarts"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rows = worker::pipeline::db::jobs(&p.pool, &ids)
        .await
        .expect("rows");
    assert_eq!(rows.len(), ids.len());
    assert_all_succeeded(&rows);
    for s in services {
        assert_eq!(p.platform.apps_with_slug(s), 1, "{s}");
    }
    p.stop_workers().await;
}

/// Enqueue, riding out a database restart (the row is what counts; a failed publish is the
/// relay's to repair).
async fn enqueue_through(p: &Pipeline, service: &str, action: Action) -> uuid::Uuid {
    for _ in 0..240 {
        match p.client.enqueue(service, action, Trigger::Cli, None).await {
            Ok(job) => return job.id,
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    panic!("could not enqueue {action} {service} for a minute");
}

#[tokio::test]
#[ignore = "restarts the shared RabbitMQ and PostgreSQL; .ci/run runs it alone"]
async fn worker_processes_ride_out_real_restarts_with_jobs_in_flight() {
    let _restore = Restore;
    let mut p = Pipeline::with(&["uptime-kuma"], |s| {
        s.job_timeout = Duration::from_secs(5);
        s.lease = Duration::from_secs(8);
        s.relay_interval = Duration::from_millis(500);
        s.retry.max_attempts = 10;
        s.concurrency = 3;
    })
    .await;
    let mut services = vec!["uptime-kuma".to_owned()];
    services.extend(generate_services(&p.platform, 10, 1));
    p.platform.sim.set_faults(Faults {
        latency: Duration::from_millis(60),
        ..Faults::default()
    });
    let mut children: Vec<_> = (0..2).map(|_| p.spawn_worker_process()).collect();
    let mut ids = Vec::new();
    for s in &services {
        ids.push(enqueue_through(&p, s, Action::Add).await);
    }
    p.wait_status(ids[0], "running", Duration::from_secs(30))
        .await;

    // RabbitMQ goes away with jobs running; jobs enqueued meanwhile only have their rows.
    stop_rabbitmq();
    for s in &services {
        ids.push(enqueue_through(&p, s, Action::Check).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    start_rabbitmq().await;
    for s in &services {
        ids.push(enqueue_through(&p, s, Action::Fix).await);
    }

    // PostgreSQL goes away with jobs running.
    tokio::time::sleep(Duration::from_millis(300)).await;
    restart_postgres().await;
    for s in &services {
        ids.push(enqueue_through(&p, s, Action::Check).await);
    }
    let restarted = std::time::Instant::now();

    // Nothing may stay open past the relay's lease (plus the time to run what it republished).
    let rows = wait_terminal(&p.pool, &ids, p.settings.lease * 6).await;
    println!(
        "restarts: enqueues={} jobs={} all terminal {:?} after the last restart (lease {:?})",
        ids.len(),
        rows.len(),
        restarted.elapsed(),
        p.settings.lease
    );
    assert_all_succeeded(&rows);
    for child in &mut children {
        assert!(
            child.try_wait().expect("status").is_none(),
            "a worker process exited instead of reconnecting"
        );
    }
    p.platform.sim.set_faults(Faults::default());
    assert_end_state(&p.platform, &services);
    for mut child in children {
        child.start_kill().expect("SIGKILL");
        let _ = child.wait().await;
    }
    p.stop_workers().await;
}
