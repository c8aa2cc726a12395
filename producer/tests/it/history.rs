//! `history <svc>` on real PostgreSQL: jobs newest first, with their attempts and outcomes.

use crate::status::Harness;

#[tokio::test]
async fn history_lists_recent_jobs_with_trigger_outcome_drift_and_actions() {
    let h = Harness::start(&["grafana"]).await;
    let (code, out) = h.pma(&["check", "grafana"]).await;
    assert_eq!(code, 1, "{out}");
    let (code, out) = h.pma(&["add", "grafana"]).await;
    assert_eq!(code, 0, "{out}");

    let (code, out) = h.pma(&["history", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    let heads: Vec<&str> = out.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(heads.len(), 2, "{out}");
    assert!(
        heads[0].contains("  add cli  succeeded  updated  job "),
        "newest first: {out}"
    );
    assert!(
        heads[1].contains("  check cli  succeeded  drifted  job "),
        "{out}"
    );
    assert!(out.contains("    attempt 1 20"), "{out}");
    assert!(
        out.contains("    did: created provider pma-sso-grafana"),
        "{out}"
    );
    assert!(out.contains("    drift: authentik app missing"), "{out}");
    // Secrets are never in outcomes, so never in history.
    let env = std::fs::read_to_string(h.dir.path().join(".env")).expect("env");
    let secret = env
        .lines()
        .find_map(|l| l.strip_prefix("GRAFANA_SSO_CLIENT_SECRET="))
        .expect("secret stored by add");
    assert!(!out.contains(secret));

    let (code, out) = h.pma(&["history", "grafana", "--limit", "1"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().filter(|l| !l.starts_with(' ')).count(),
        1,
        "{out}"
    );

    let (code, out) = h.pma(&["--json", "history", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    let jobs = crate::output::valid("history", &out);
    assert_eq!(jobs[1]["action"], "check");
    assert_eq!(jobs[1]["trigger"], "cli");
    assert_eq!(jobs[1]["outcome"], "drifted");
    assert_eq!(jobs[1]["attempts"][0]["outcome"], "drifted");
    assert_eq!(jobs[1]["details"][0], "drift: authentik app missing");

    let (code, out) = h.pma(&["history", "redmine"]).await;
    assert_eq!((code, out.as_str()), (0, "redmine: no jobs recorded\n"));
    h.finish().await;
}

#[tokio::test]
async fn history_shows_an_attempt_abandoned_by_a_dead_worker_as_closed_and_names_that_worker() {
    use schemas::job::{Action, JobMessage, Trigger};
    use worker::pipeline::{db, queue};

    let h = Harness::start(&["grafana"]).await;
    let lease = std::time::Duration::from_secs(60);
    let (id, _) = db::insert_or_coalesce(
        &h.pool,
        "grafana",
        Action::Add,
        Trigger::Cli,
        None,
        6,
        lease,
    )
    .await
    .expect("job");
    // A worker claims it and dies before its outcome; the broker hands the message on.
    db::start_attempt(&h.pool, id, "worker-that-died", lease)
        .await
        .expect("claim");
    let conn = queue::connect(&h.pipeline.amqp_url).await.expect("broker");
    let publisher = queue::Publisher::new(&conn).await.expect("publisher");
    let message = serde_json::to_vec(&JobMessage {
        job_id: id.to_string(),
        service: "grafana".parse().expect("name"),
        action: Action::Add,
    })
    .expect("json");
    publisher
        .publish(
            &h.pipeline.topology().work_queue(),
            &message,
            Default::default(),
        )
        .await
        .expect("publish");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let job = db::job(&h.pool, id).await.expect("row").expect("job");
        if job.status.is_terminal() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = conn.close(200, "bye".into()).await;

    let (code, out) = h.pma(&["history", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    let abandoned = out
        .lines()
        .find(|l| l.starts_with("    attempt 1 "))
        .unwrap_or_else(|| panic!("no first attempt: {out}"));
    assert!(
        abandoned.ends_with("on worker-that-died: abandoned"),
        "{out}"
    );
    assert!(
        out.contains("      error: abandoned: worker worker-that-died stopped before finishing it; attempt 2 was claimed by"),
        "{out}"
    );
    assert!(!out.contains(": running"), "{out}");
    h.finish().await;
}
