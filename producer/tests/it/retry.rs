//! `retry` on real PostgreSQL: a dead job gets a new job for the same service and action.

use std::time::Duration;

use schemas::job::{Action, Outcome, Trigger};
use sqlx::Row;
use worker::pipeline::db::{self, Finish};

use crate::status::Harness;

/// A job that ran out of attempts, recorded as the worker would.
async fn dead_job(h: &Harness, service: &str) -> uuid::Uuid {
    ended_job(h, service, Action::Check, "authentik unreachable", true).await
}

/// A job that ended with `reason`: dead after its attempts, or failed at once.
async fn ended_job(
    h: &Harness,
    service: &str,
    action: Action,
    reason: &str,
    dead: bool,
) -> uuid::Uuid {
    let (id, _) = db::insert_or_coalesce(
        &h.pool,
        service,
        action,
        Trigger::Webhook,
        None,
        1,
        Duration::from_secs(600),
    )
    .await
    .expect("insert");
    let attempt = db::start_attempt(&h.pool, id, "test", Duration::from_secs(600))
        .await
        .expect("start")
        .expect("claimed");
    let job = db::job(&h.pool, id).await.expect("read").expect("row");
    let outcome = Outcome::Failed {
        reason: reason.into(),
        transient: dead,
    };
    db::finish_attempt(
        &h.pool,
        &job,
        attempt,
        Duration::from_millis(5),
        if dead {
            Finish::Dead(&outcome)
        } else {
            Finish::Failed(&outcome)
        },
    )
    .await
    .expect("finish");
    id
}

#[tokio::test]
async fn retry_dead_enqueues_a_new_job_once_and_a_single_job_by_id() {
    let h = Harness::start(&["grafana"]).await;
    let old = dead_job(&h, "grafana").await;

    let (code, out) = h.pma(&["retry", "--dead"]).await;
    assert_eq!(code, 0, "{out}");
    let new: uuid::Uuid = out
        .trim()
        .rsplit("→ job ")
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("new id in {out:?}"));
    assert!(out.contains(&format!("job {old} →")), "{out}");
    let row = sqlx::query("select service, action, trigger, trigger_ref from jobs where id = $1")
        .bind(new)
        .fetch_one(&h.pool)
        .await
        .expect("new row");
    assert_eq!(row.get::<String, _>("service"), "grafana");
    assert_eq!(row.get::<String, _>("action"), "check");
    assert_eq!(row.get::<String, _>("trigger"), "cli");
    assert_eq!(
        row.get::<Option<String>, _>("trigger_ref"),
        Some(format!("retry:{old}"))
    );
    // The worker runs it: a check of an unadded service drifts, and the job succeeds.
    let status: String = async {
        loop {
            let s: String = sqlx::query_scalar("select status from jobs where id = $1")
                .bind(new)
                .fetch_one(&h.pool)
                .await
                .expect("status");
            if s == "succeeded" || s == "failed" || s == "dead" {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    .await;
    assert_eq!(status, "succeeded");

    let (code, out) = h.pma(&["retry", "--dead"]).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "nothing to retry\n"),
        "retried once only"
    );

    let (code, out) = h.pma(&["retry", &new.to_string()]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("is succeeded; only dead or failed jobs are retried"),
        "{out}"
    );

    let old_again = dead_job(&h, "grafana").await;
    let (code, out) = h.pma(&["retry", &old_again.to_string()]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("job {old_again} → job ")), "{out}");
    let jobs: i64 = sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(&h.pool)
        .await
        .expect("count");
    assert_eq!(jobs, 4, "two dead jobs and one retry of each");
    h.finish().await;
}

#[tokio::test]
async fn retry_failed_skips_what_retrying_cannot_fix_says_why_and_all_forces_it() {
    let h = Harness::start(&["grafana", "redmine"]).await;
    let gone = ended_job(&h, "vikunja", Action::Check, "no manifest", false).await;
    let invalid = ended_job(&h, "redmine", Action::Fix, "bad manifest", false).await;
    std::fs::write(
        h.dir.path().join("packages/redmine/manifest.yaml"),
        "name: redmine\nsso: {type: nope}\n",
    )
    .expect("break the manifest");
    let refused = ended_job(
        &h,
        "grafana",
        Action::Add,
        "creating provider `pma-sso-grafana`: /providers/oauth2/: authentik rejected the request: name: provider with this name already exists",
        false,
    )
    .await;
    let worth_it = ended_job(
        &h,
        "grafana",
        Action::Check,
        "reading authentik: /core/applications/: authentik server error (HTTP 503)",
        false,
    )
    .await;

    let (code, out) = h.pma(&["retry", "--failed"]).await;
    assert_eq!(code, 0, "{out}");
    let skipped = |id: uuid::Uuid| {
        out.lines()
            .find(|l| l.contains(&format!("(job {id})")))
            .unwrap_or_else(|| panic!("no line for {id}: {out}"))
            .to_owned()
    };
    let line = skipped(gone);
    assert!(
        line.starts_with("skipped failed check for vikunja"),
        "{line}"
    );
    assert!(line.contains(": no manifest ("), "{line}");
    assert!(line.contains("--all retries it anyway"), "{line}");
    assert!(skipped(invalid).contains(": invalid manifest: "), "{out}");
    assert!(
        skipped(refused).contains(": authentik refused the request as invalid ("),
        "{out}"
    );
    assert!(out.contains(&format!("job {worth_it} → job ")), "{out}");
    assert_eq!(out.lines().count(), 4, "{out}");
    let retried: i64 =
        sqlx::query_scalar("select count(*) from jobs where trigger_ref like 'retry:%'")
            .fetch_one(&h.pool)
            .await
            .expect("count");
    assert_eq!(retried, 1);

    let (code, out) = h.pma(&["retry", "--failed", "--all"]).await;
    assert_eq!(code, 0, "{out}");
    for id in [gone, invalid, refused] {
        assert!(out.contains(&format!("job {id} → job ")), "{out}");
    }
    h.finish().await;
}
