use std::time::Duration;

use schemas::job::{Action, JobMessage, Outcome, Trigger};
use testkit::Faults;

use super::harness::Pipeline;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_job_is_recorded_executed_once_and_its_outcome_kept() {
    let mut p = Pipeline::new(&["grafana"]).await;
    p.start_worker();
    let add = p.enqueue("grafana", Action::Add).await;
    assert!(!add.coalesced);
    let row = p.finished(add.id, WAIT).await;
    assert_eq!(row.status.as_str(), "succeeded");
    assert_eq!(row.attempts, 1);
    let Some(Outcome::Applied { applied }) = &row.outcome else {
        panic!("{:?}", row.outcome)
    };
    assert!(
        applied
            .actions
            .iter()
            .any(|a| a == "created application grafana")
    );
    assert_eq!(p.platform.apps_with_slug("grafana"), 1);

    let check = p.enqueue("grafana", Action::Check).await;
    let row = p.finished(check.id, WAIT).await;
    let Some(Outcome::InSync { report }) = &row.outcome else {
        panic!("{:?}", row.outcome)
    };
    assert_eq!(
        report.line(),
        "✓ grafana (oidc) — authentik app present, redirects match"
    );
    let attempts = p.attempts(check.id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].1, "in_sync");
    let state: (String, String) = sqlx::query_as(
        "select last_status, last_summary from service_state where service = 'grafana'",
    )
    .fetch_one(&p.pool)
    .await
    .expect("state");
    assert_eq!(state.0, "in_sync");
    let ids: serde_json::Value =
        sqlx::query_scalar("select authentik_ids from service_state where service = 'grafana'")
            .fetch_one(&p.pool)
            .await
            .expect("ids");
    let app = p.platform.sim.application("grafana").expect("app");
    let provider = p
        .platform
        .sim
        .provider_by_name("pma-sso-grafana")
        .expect("provider");
    assert_eq!(ids["application"], app["pk"], "{ids}");
    assert_eq!(ids["provider"], provider["pk"].to_string(), "{ids}");
    assert_eq!(
        ids["provider_model"],
        "authentik_providers_oauth2.oauth2provider"
    );
    p.stop_workers().await;
}

#[tokio::test]
async fn a_redelivered_message_of_a_finished_job_is_acked_without_running() {
    let mut p = Pipeline::new(&["redmine"]).await;
    p.start_worker();
    let job = p.enqueue("redmine", Action::Add).await;
    p.client
        .wait(&[job.id], WAIT, WAIT)
        .await
        .expect("finished");
    let requests = p.platform.sim.requests().len();
    let (conn, publisher) = p.publisher().await;
    let body = serde_json::to_vec(&JobMessage {
        job_id: job.id.to_string(),
        service: "redmine".parse().expect("name"),
        action: Action::Add,
    })
    .expect("json");
    publisher
        .publish(&p.topology().work_queue(), &body, Default::default())
        .await
        .expect("publish");
    // A later job proves the duplicate was consumed (one worker, FIFO queue).
    let marker = p.enqueue("redmine", Action::Check).await;
    p.client
        .wait(&[marker.id], WAIT, WAIT)
        .await
        .expect("finished");
    assert_eq!(
        p.attempts(job.id).await.len(),
        1,
        "the finished job ran again"
    );
    let after = p.platform.sim.requests();
    assert!(
        after[requests..].iter().all(|r| r.method == "GET"),
        "the duplicate wrote to authentik"
    );
    let _ = conn.close(200, "bye".into()).await;
    p.stop_workers().await;
}

#[tokio::test]
async fn a_duplicate_enqueue_is_coalesced_into_the_waiting_job() {
    let p = Pipeline::new(&["grafana"]).await;
    let first = p.enqueue("grafana", Action::Fix).await;
    let second = p
        .client
        .enqueue("grafana", Action::Fix, Trigger::Webhook, Some("evt-1"))
        .await
        .expect("enqueue");
    assert_eq!(second.id, first.id);
    assert!(second.coalesced);
    let other = p.enqueue("grafana", Action::Check).await;
    assert_ne!(other.id, first.id, "another action is another job");
    let count: i64 = sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(&p.pool)
        .await
        .expect("count");
    assert_eq!(count, 2);
}

#[tokio::test]
async fn concurrent_duplicate_enqueues_all_get_the_same_id() {
    let p = Pipeline::new(&["grafana"]).await;
    let mut handles = Vec::new();
    for _ in 0..8 {
        let pool = p.pool.clone();
        handles.push(tokio::spawn(async move {
            worker::pipeline::db::insert_or_coalesce(
                &pool,
                "grafana",
                Action::Check,
                Trigger::Cron,
                None,
                3,
                Duration::from_secs(60),
            )
            .await
            .expect("insert")
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for h in handles {
        ids.insert(h.await.expect("join").0);
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[tokio::test]
async fn transient_authentik_faults_are_retried_until_the_job_succeeds() {
    let mut p = Pipeline::new(&["linkding"]).await;
    p.platform.sim.set_faults(Faults {
        error_rate: 1.0,
        seed: 3,
        ..Faults::default()
    });
    p.start_worker();
    let job = p.enqueue("linkding", Action::Add).await;
    p.wait_status(job.id, "retrying", WAIT).await;
    p.platform.sim.set_faults(Faults::default());
    let row = p.finished(job.id, WAIT).await;
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.last_error);
    assert!(row.attempts >= 2);
    let attempts = p.attempts(job.id).await;
    assert_eq!(attempts[0].1, "retry");
    assert_eq!(attempts.last().map(|a| a.1.as_str()), Some("updated"));
    assert_eq!(p.platform.apps_with_slug("linkding"), 1);
    p.stop_workers().await;
}

#[tokio::test]
async fn a_job_failing_forever_ends_dead_after_the_configured_attempts() {
    let mut p = Pipeline::with(&["linkding"], |s| s.retry.max_attempts = 3).await;
    p.platform.sim.set_faults(Faults {
        error_rate: 1.0,
        seed: 9,
        ..Faults::default()
    });
    p.start_worker();
    let job = p.enqueue("linkding", Action::Add).await;
    let row = p.finished(job.id, WAIT).await;
    assert_eq!(row.status.as_str(), "dead");
    assert_eq!(row.attempts, 3);
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or("")
            .contains("server error"),
        "{:?}",
        row.last_error
    );
    let dead = p.drain(&p.topology().dead_queue()).await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .1
            .as_deref()
            .unwrap_or("")
            .contains("authentik server error"),
        "{:?}",
        dead[0].1
    );
    p.stop_workers().await;
}

#[tokio::test]
async fn a_permanent_error_fails_at_once_without_retries() {
    let mut p = Pipeline::new(&["grafana"]).await;
    p.start_worker();
    std::fs::write(
        p.platform.path("packages/grafana/manifest.yaml"),
        "name: grafana\nsso:\n  type: oidc\n  redirect_path: nope\n",
    )
    .expect("break manifest");
    let job = p.enqueue("grafana", Action::Fix).await;
    let row = p.finished(job.id, WAIT).await;
    assert_eq!(row.status.as_str(), "failed");
    assert_eq!(row.attempts, 1);
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or("")
            .contains("sso.redirect_path"),
        "{:?}",
        row.last_error
    );
    p.stop_workers().await;
}

#[tokio::test]
async fn a_malformed_message_is_dead_lettered_with_its_reason() {
    let mut p = Pipeline::new(&["grafana"]).await;
    p.start_worker();
    let (conn, publisher) = p.publisher().await;
    publisher
        .publish(
            &p.topology().work_queue(),
            b"{\"hello\": 1}",
            Default::default(),
        )
        .await
        .expect("publish");
    publisher
        .publish(
            &p.topology().work_queue(),
            b"\xff\xfe not json",
            Default::default(),
        )
        .await
        .expect("publish");
    let job = p.enqueue("grafana", Action::Check).await;
    p.client
        .wait(&[job.id], WAIT, WAIT)
        .await
        .expect("the worker kept going");
    let dead = p.drain(&p.topology().dead_queue()).await;
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter().all(|(_, reason)| reason
            .as_deref()
            .unwrap_or("")
            .starts_with("not a job message")),
        "{dead:?}"
    );
    let _ = conn.close(200, "bye".into()).await;
    p.stop_workers().await;
}

#[tokio::test]
async fn jobs_for_one_service_never_overlap_while_different_services_run_together() {
    let services = ["grafana", "redmine", "linkding", "n8n"];
    let mut p = Pipeline::new(&services).await;
    p.platform.sim.set_faults(Faults {
        latency: Duration::from_millis(60),
        ..Faults::default()
    });
    p.start_worker();
    p.start_worker();
    let mut ids = Vec::new();
    for s in services {
        for action in [Action::Add, Action::Check, Action::Fix] {
            ids.push((s, p.enqueue(s, action).await.id));
        }
    }
    let all: Vec<_> = ids.iter().map(|(_, id)| *id).collect();
    p.client
        .wait(&all, WAIT, Duration::from_secs(90))
        .await
        .expect("finished");
    let mut spans: Vec<(
        &str,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
    )> = Vec::new();
    for (service, id) in &ids {
        for (_, _, start, end) in p.attempts(*id).await {
            spans.push((service, start, end.expect("finished")));
        }
    }
    let mut cross_service_overlap = false;
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            let overlap = a.1 < b.2 && b.1 < a.2;
            if a.0 == b.0 {
                assert!(!overlap, "two {} jobs overlapped: {a:?} {b:?}", a.0);
            } else {
                cross_service_overlap |= overlap;
            }
        }
    }
    assert!(
        cross_service_overlap,
        "different services never ran at the same time"
    );
    p.stop_workers().await;
}

#[tokio::test]
async fn shutdown_finishes_the_in_flight_job() {
    let mut p = Pipeline::new(&["grafana"]).await;
    p.platform.sim.set_faults(Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    });
    let token = p.start_worker();
    let job = p.enqueue("grafana", Action::Add).await;
    p.wait_status(job.id, "running", WAIT).await;
    token.cancel();
    p.stop_workers().await;
    let row = worker::pipeline::db::job(&p.pool, job.id)
        .await
        .expect("db")
        .expect("row");
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.last_error);
}

#[tokio::test]
async fn an_attempt_abandoned_by_a_dead_worker_is_closed_when_the_job_is_claimed_again() {
    let mut p = Pipeline::new(&["redmine"]).await;
    let job = p.enqueue("redmine", Action::Add).await;
    // A worker claims the job and dies before its outcome: its attempt stays open.
    let claimed = worker::pipeline::db::start_attempt(
        &p.pool,
        job.id,
        "worker-that-died",
        Duration::from_secs(60),
    )
    .await
    .expect("claim");
    assert_eq!(claimed, Some(1));
    // The broker redelivers the message to a live worker.
    p.start_worker();
    let row = p.finished(job.id, WAIT).await;
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.last_error);
    assert_eq!(row.attempts, 2);

    let history = worker::pipeline::queries::history(&p.pool, "redmine", 5)
        .await
        .expect("history");
    let attempts = &history[0].attempts;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    let abandoned = &attempts[0];
    assert_eq!(
        (
            abandoned.attempt,
            abandoned.outcome.as_str(),
            abandoned.worker.as_str()
        ),
        (1, "abandoned", "worker-that-died")
    );
    assert!(
        abandoned.finished_at.is_some(),
        "the abandoned attempt has no end"
    );
    match &abandoned.detail {
        Some(Outcome::Failed { reason, .. }) => assert!(
            reason.contains("worker worker-that-died stopped before finishing it")
                && reason.contains(&format!("claimed by {}", p.settings.worker_name)),
            "{reason}"
        ),
        other => panic!("the abandoned attempt says nothing about why: {other:?}"),
    }
    assert_eq!(attempts[1].outcome, "updated");
    p.stop_workers().await;
}

#[tokio::test]
async fn a_starting_worker_records_and_runs_what_a_git_hook_spooled() {
    let p = Pipeline::new(&["grafana"]).await;
    let spool = worker::pipeline::spool::Spool::in_state_dir(&p.platform.ctx.settings.state_dir);
    spool
        .add(&worker::pipeline::spool::Request {
            service: "grafana".into(),
            action: Action::Check,
            trigger: Trigger::Cli,
            trigger_ref: None,
        })
        .expect("spool");
    let mut child = p.spawn_worker_process();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut status = None;
    while tokio::time::Instant::now() < deadline {
        status = sqlx::query_scalar::<_, String>(
            "select status from jobs where service = 'grafana' and action = 'check'",
        )
        .fetch_optional(&p.pool)
        .await
        .expect("jobs");
        if status
            .as_deref()
            .is_some_and(|s| s != "queued" && s != "running")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    super::harness::sigterm_exits_zero(&mut child, Duration::from_secs(15), "worker").await;
    assert_eq!(status.as_deref(), Some("succeeded"), "recorded and run");
    assert!(
        spool.claim().is_empty(),
        "the spool is empty once its request is recorded"
    );
}
