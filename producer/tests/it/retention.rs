//! History retention on real PostgreSQL: `pma-sso prune-history` keeps the newest N finished
//! jobs per service, deletes the rest with their attempts, and never touches unfinished jobs.

use testkit::pg::TestDb;
use worker::pipeline::{db, queries};

/// `count` finished jobs for `service`, one a minute apart, each with one attempt; returns
/// their ids, newest first.
async fn finished_jobs(
    pool: &sqlx::PgPool,
    service: &str,
    count: i32,
    status: &str,
) -> Vec<uuid::Uuid> {
    let mut ids = Vec::new();
    for i in 0..count {
        let id = uuid::Uuid::new_v4();
        sqlx::query(
            "insert into jobs (id, service, action, trigger, status, max_attempts, created_at)
             values ($1, $2, 'check', 'cli', $3, 6, now() - make_interval(mins => $4))",
        )
        .bind(id)
        .bind(service)
        .bind(status)
        .bind(i)
        .execute(pool)
        .await
        .expect("job");
        sqlx::query("insert into attempts (job_id, attempt, worker) values ($1, 1, 'w')")
            .bind(id)
            .execute(pool)
            .await
            .expect("attempt");
        ids.push(id);
    }
    ids
}

async fn ids(pool: &sqlx::PgPool, service: &str) -> Vec<uuid::Uuid> {
    sqlx::query_scalar("select id from jobs where service = $1 order by created_at desc")
        .bind(service)
        .fetch_all(pool)
        .await
        .expect("ids")
}

#[tokio::test]
async fn prune_history_keeps_the_newest_n_finished_jobs_per_service_and_their_attempts() {
    let test_db = TestDb::new().await;
    let pool = db::connect(&test_db.url, 1).await.expect("db");
    db::migrate(&pool).await.expect("migrate");
    let grafana = finished_jobs(&pool, "grafana", 5, "succeeded").await;
    let redmine = finished_jobs(&pool, "redmine", 2, "dead").await;
    // Older than everything, but unfinished: never pruned.
    let waiting = uuid::Uuid::new_v4();
    sqlx::query(
        "insert into jobs (id, service, action, trigger, status, max_attempts, created_at)
         values ($1, 'grafana', 'fix', 'cli', 'retrying', 6, now() - interval '1 day')",
    )
    .bind(waiting)
    .execute(&pool)
    .await
    .expect("waiting job");

    let deleted = queries::prune_history(&pool, 3).await.expect("prune");
    assert_eq!(deleted, 2);
    let mut want = grafana[..3].to_vec();
    want.push(waiting);
    assert_eq!(ids(&pool, "grafana").await, want);
    assert_eq!(
        ids(&pool, "redmine").await,
        redmine,
        "under the limit: kept"
    );
    let orphaned: i64 = sqlx::query_scalar(
        "select count(*) from attempts a where not exists (select 1 from jobs j where j.id = a.job_id)",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(orphaned, 0);
    let attempts: i64 = sqlx::query_scalar("select count(*) from attempts")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(attempts, 5, "the deleted jobs' attempts went with them");
    assert_eq!(queries::prune_history(&pool, 3).await.expect("again"), 0);

    // The command, with --keep.
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join("packages")).expect("packages");
    std::fs::write(
        dir.path().join(".env"),
        "DOMAIN=example.org\nAUTHENTIK_URL=http://127.0.0.1:9\nAUTHENTIK_TOKEN=t\n",
    )
    .expect("env");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"))
        .args(["prune-history", "--keep", "1"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PMA_SSO_ENV_FILE", dir.path().join(".env"))
        .env("DATABASE_URL", &test_db.url)
        .output()
        .await
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("deleted 3 finished jobs"), "{stdout}");
    assert_eq!(ids(&pool, "grafana").await, vec![grafana[0], waiting]);
    assert_eq!(ids(&pool, "redmine").await, vec![redmine[0]]);
    pool.close().await;
}

#[test]
fn retention_setting_defaults_to_200_and_refuses_zero() {
    use producer::serve::retention::keep_from;
    assert_eq!(keep_from(&|_| None), Ok(200));
    assert_eq!(keep_from(&|_| Some("7".into())), Ok(7));
    assert!(keep_from(&|_| Some("0".into())).is_err());
    assert!(keep_from(&|_| Some("lots".into())).is_err());
}
