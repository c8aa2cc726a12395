//! PostgreSQL: the source of truth for jobs, attempts and per-service state.

use std::time::Duration;

use chrono::{DateTime, Utc};
use schemas::job::{Action, JobStatus, Outcome, Trigger};
use schemas::outcome::State;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use uuid::Uuid;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("applying migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("job {0} has an unreadable {1}")]
    Corrupt(Uuid, &'static str),
}

/// Connect a pool sized for `concurrency` flows: each holds connections for its locks, plus
/// connections for outcome writes, the relay and the CLI's waits.
pub async fn connect(url: &str, concurrency: u32) -> Result<PgPool, DbError> {
    let options: PgConnectOptions = url.parse()?;
    let pool = PgPoolOptions::new()
        // Per flow: its service lock (and for proxy services the outpost lock) plus writes.
        .max_connections(concurrency * 3 + 4)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Apply pending migrations. sqlx serialises concurrent runs with an advisory lock, so any
/// number of processes may call this at start-up.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

#[derive(Clone, Debug)]
pub struct JobRow {
    pub id: Uuid,
    pub service: String,
    pub action: Action,
    pub status: JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub outcome: Option<Outcome>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

fn job_from_row(row: &sqlx::postgres::PgRow) -> Result<JobRow, DbError> {
    let id: Uuid = row.try_get("id")?;
    let action: String = row.try_get("action")?;
    let status: String = row.try_get("status")?;
    let outcome: Option<serde_json::Value> = row.try_get("outcome")?;
    Ok(JobRow {
        id,
        service: row.try_get("service")?,
        action: Action::parse(&action).ok_or(DbError::Corrupt(id, "action"))?,
        status: JobStatus::parse(&status).ok_or(DbError::Corrupt(id, "status"))?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        last_error: row.try_get("last_error")?,
        outcome: match outcome {
            None => None,
            Some(v) => {
                Some(serde_json::from_value(v).map_err(|_| DbError::Corrupt(id, "outcome"))?)
            }
        },
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

pub async fn job(pool: &PgPool, id: Uuid) -> Result<Option<JobRow>, DbError> {
    let row = sqlx::query(
        "select id, service, action, status, attempts, max_attempts, last_error, outcome, created_at, finished_at
         from jobs where id = $1",
    )
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(job_from_row).transpose()
}

pub async fn jobs(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<JobRow>, DbError> {
    let rows = sqlx::query(
        "select id, service, action, status, attempts, max_attempts, last_error, outcome, created_at, finished_at
         from jobs where id = any($1)",
    )
        .bind(ids)
        .fetch_all(pool)
        .await?;
    rows.iter().map(job_from_row).collect()
}

/// Insert a queued job, or return the one already waiting for the same service and action.
/// Coalescing rides on the partial unique index, not on lock-then-check.
pub async fn insert_or_coalesce(
    pool: &PgPool,
    service: &str,
    action: Action,
    trigger: Trigger,
    trigger_ref: Option<&str>,
    max_attempts: u32,
    lease: Duration,
) -> Result<(Uuid, bool), DbError> {
    loop {
        let id = Uuid::new_v4();
        let inserted = sqlx::query(
            "insert into jobs (id, service, action, trigger, trigger_ref, status, max_attempts, lease_until)
             values ($1, $2, $3, $4, $5, 'queued', $6, now() + $7 * interval '1 millisecond')
             on conflict (service, action) where status = 'queued' do nothing
             returning id",
        )
        .bind(id)
        .bind(service)
        .bind(action.as_str())
        .bind(trigger.as_str())
        .bind(trigger_ref)
        .bind(max_attempts as i32)
        .bind(lease.as_millis() as f64)
        .fetch_optional(pool)
        .await?;
        if inserted.is_some() {
            return Ok((id, false));
        }
        // A git job that waits takes the newer commit: it reconciles the manifest as that
        // commit holds it, and an older commit must not win over a newer one.
        if trigger == Trigger::Git {
            sqlx::query(
                "update jobs set trigger_ref = $3
                 where service = $1 and action = $2 and status = 'queued' and trigger = 'git'",
            )
            .bind(service)
            .bind(action.as_str())
            .bind(trigger_ref)
            .execute(pool)
            .await?;
        }
        let existing: Option<Uuid> = sqlx::query_scalar(
            "select id from jobs where service = $1 and action = $2 and status = 'queued'",
        )
        .bind(service)
        .bind(action.as_str())
        .fetch_optional(pool)
        .await?;
        // The waiting job may have started between the two statements: then insert again.
        if let Some(existing) = existing {
            return Ok((existing, true));
        }
    }
}

/// The commit a git-triggered job reconciles (see [`crate::committed`]); `None` for any other
/// trigger.
pub async fn git_commit(pool: &PgPool, id: Uuid) -> Result<Option<String>, DbError> {
    let trigger_ref: Option<Option<String>> =
        sqlx::query_scalar("select trigger_ref from jobs where id = $1 and trigger = 'git'")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(trigger_ref
        .flatten()
        .as_deref()
        .and_then(crate::committed::commit_of)
        .map(str::to_owned))
}

pub async fn mark_published(pool: &PgPool, id: Uuid) -> Result<(), DbError> {
    sqlx::query("update jobs set published_at = now() where id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Claim the job for a new attempt. Returns the attempt number, or `None` when the row is
/// already terminal (another worker finished it).
pub async fn start_attempt(
    pool: &PgPool,
    id: Uuid,
    worker: &str,
    lease: Duration,
) -> Result<Option<i32>, DbError> {
    let mut tx = pool.begin().await?;
    let attempt: Option<i32> = sqlx::query_scalar(
        "update jobs set status = 'running', attempts = attempts + 1, updated_at = now(),
                lease_until = now() + $2 * interval '1 millisecond', not_before = null
         where id = $1 and status not in ('succeeded', 'failed', 'dead')
         returning attempts",
    )
    .bind(id)
    .bind(lease.as_millis() as f64)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(attempt) = attempt {
        sqlx::query("insert into attempts (job_id, attempt, worker) values ($1, $2, $3)")
            .bind(id)
            .bind(attempt)
            .bind(worker)
            .execute(&mut *tx)
            .await?;
        // As in `lock_and_claim`: an attempt still open under the lock was abandoned.
        sqlx::query(
            "update attempts set outcome = 'abandoned', finished_at = now(),
                    detail = jsonb_build_object('kind', 'failed', 'transient', true,
                        'reason', format('abandoned: worker %s stopped before finishing it; attempt %s was claimed by %s',
                                         worker, $2::int, $3::text))
             where job_id = $1 and attempt < $2 and finished_at is null",
        )
        .bind(id)
        .bind(attempt)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(attempt)
}

/// What [`lock_and_claim`] did: whether the connection now holds the service's advisory lock,
/// and the claimed job (status `running`, `attempts` = this attempt's number).
pub struct Claim {
    pub locked: bool,
    pub job: Option<JobRow>,
}

/// The worker's fast path, in one statement (one round trip, one commit) on the connection
/// that will hold the lock: take the session-level advisory lock `lock_key`, then claim job `id`
/// for a new attempt (row update + attempt row) and return the row as claimed.
///
/// The lock is only taken when the row (in the statement's snapshot) belongs to `service` and is
/// not terminal; otherwise nothing happens and the caller reads the row to find out why. The
/// claim itself re-checks the row after the lock wait (an `update` re-evaluates its condition on
/// the newest committed version), so a job another worker finished while this one waited is
/// not claimed — `locked` is then true with no job, and the caller must release the lock.
///
/// The commit does not wait for its WAL flush (`synchronous_commit = off` for this transaction
/// only). A PostgreSQL crash can then lose the claim — at most an attempt count; the job runs
/// again, as it would after any crash before its outcome. The outcome commit, which waits for
/// its flush, makes every earlier commit durable with it.
///
/// On an error the connection may hold the lock: the caller must close it, not return it to
/// the pool.
pub async fn lock_and_claim(
    conn: &mut sqlx::PgConnection,
    lock_key: &str,
    id: Uuid,
    service: &str,
    worker: &str,
    lease: Duration,
) -> Result<Claim, DbError> {
    let row = sqlx::query(
        "with cfg as (select set_config('synchronous_commit', 'off', true) as v),
         cur as (
            select id from jobs
            where id = $1 and service = $2 and status not in ('succeeded', 'failed', 'dead')
         ),
         lock as (
            select pg_advisory_lock(hashtextextended($3, 0)) from cur cross join cfg
         ),
         claimed as (
            update jobs set status = 'running', attempts = attempts + 1,
                   updated_at = clock_timestamp(),
                   lease_until = clock_timestamp() + $5 * interval '1 millisecond',
                   not_before = null
            where id = $1 and status not in ('succeeded', 'failed', 'dead')
              and exists (select 1 from lock)
            returning id, service, action, status, attempts, max_attempts, last_error, outcome,
                      created_at, finished_at
         ),
         attempt as (
            -- clock_timestamp(): now() is when the statement began, before the lock wait.
            insert into attempts (job_id, attempt, worker, started_at)
            select id, attempts, $4, clock_timestamp() from claimed
         ),
         abandoned as (
            -- Under the service lock no other attempt of this job can be running: one still
            -- open belonged to a worker that died. Close it, naming who held it.
            update attempts a set outcome = 'abandoned', finished_at = clock_timestamp(),
                   detail = jsonb_build_object('kind', 'failed', 'transient', true,
                       'reason', format('abandoned: worker %s stopped before finishing it; attempt %s was claimed by %s',
                                        a.worker, c.attempts, $4::text))
            from claimed c
            where a.job_id = c.id and a.attempt < c.attempts and a.finished_at is null
         )
         select l.n as locked, c.*
         from (select count(*) as n from lock) l left join claimed c on true",
    )
    .bind(id)
    .bind(service)
    .bind(lock_key)
    .bind(worker)
    .bind(lease.as_millis() as f64)
    .fetch_one(&mut *conn)
    .await?;
    let locked: i64 = row.try_get("locked")?;
    let claimed: Option<Uuid> = row.try_get("id")?;
    Ok(Claim {
        locked: locked > 0,
        job: match claimed {
            Some(_) => Some(job_from_row(&row)?),
            None => None,
        },
    })
}

/// How an attempt ended, as the worker records it.
pub enum Finish<'a> {
    Succeeded(&'a Outcome),
    Failed(&'a Outcome),
    Dead(&'a Outcome),
    Retry {
        outcome: &'a Outcome,
        after: Duration,
        lease: Duration,
    },
}

/// Record an attempt's end, the job's new status and the service's state in one transaction,
/// and notify waiting CLIs.
pub async fn finish_attempt(
    pool: &PgPool,
    job: &JobRow,
    attempt: i32,
    duration: Duration,
    finish: Finish<'_>,
) -> Result<(), DbError> {
    let (status, outcome, attempt_label) = match &finish {
        Finish::Succeeded(o) => ("succeeded", *o, o.label()),
        Finish::Failed(o) => ("failed", *o, "failed"),
        Finish::Dead(o) => ("dead", *o, "failed"),
        Finish::Retry { outcome, .. } => ("retrying", *outcome, "retry"),
    };
    let last_error = match outcome {
        Outcome::Failed { reason, .. } => Some(reason.clone()),
        _ => None,
    };
    let outcome_json =
        serde_json::to_value(outcome).map_err(|_| DbError::Corrupt(job.id, "outcome"))?;
    // A retry sleeps until `not_before` and keeps a lease past it; a terminal status clears
    // both (null arithmetic) and sets `finished_at`.
    let (retry_after, retry_lease) = match &finish {
        Finish::Retry { after, lease, .. } => (
            Some(after.as_millis() as f64),
            Some(lease.as_millis() as f64),
        ),
        _ => (None, None),
    };
    // A sweep's own row covers every service; each service's state comes from its check row,
    // and `status` reads the last sweep from its job row. A failed sweep is no service's state
    // either: an error kept there outlived every later successful sweep.
    let state = match (job.action, outcome) {
        (Action::Sweep, _) | (_, Outcome::Swept { .. }) => None,
        _ => Some(ServiceStateRow::of(&job.service, job.id, outcome)?),
    };
    let state = state.as_ref();
    // One statement, so one round trip and one commit (waiting for its WAL flush): the job's
    // status, the attempt, the service's state and the notification land together or not at all.
    sqlx::query(
        "with job as (
            update jobs set status = $2, last_error = $3, outcome = $4, updated_at = now(),
                   finished_at = case when $5::float8 is null then now() end,
                   not_before = now() + $5::float8 * interval '1 millisecond',
                   lease_until = now() + ($5::float8 + $6::float8) * interval '1 millisecond'
            where id = $1
         ),
         attempt as (
            update attempts set finished_at = now(), outcome = $7, detail = $4, duration_ms = $8
            where job_id = $1 and attempt = $9
         ),
         abandoned as (
            -- The claim closes an abandoned attempt, but its snapshot predates its lock wait:
            -- an attempt claimed (then killed) during that wait is only seen here.
            update attempts a set outcome = 'abandoned', finished_at = now(),
                   detail = jsonb_build_object('kind', 'failed', 'transient', true,
                       'reason', format('abandoned: worker %s stopped before finishing it; attempt %s was claimed by %s',
                                        a.worker, $9::int, cur.worker))
            from attempts cur
            where cur.job_id = $1 and cur.attempt = $9
              and a.job_id = $1 and a.attempt < $9 and a.finished_at is null
         ),
         state as (
            insert into service_state (service, last_status, last_summary, last_job,
                                       last_check_at, last_change_at, authentik_ids, updated_at)
            select $10, $11, $12, $1, case when $13 then now() end, case when $14 then now() end,
                   coalesce($15, '{}'::jsonb), now()
            where $16
            on conflict (service) do update set
               last_status = excluded.last_status, last_summary = excluded.last_summary,
               last_job = excluded.last_job,
               authentik_ids = coalesce($15, service_state.authentik_ids),
               last_check_at = coalesce(excluded.last_check_at, service_state.last_check_at),
               last_change_at = coalesce(excluded.last_change_at, service_state.last_change_at),
               updated_at = now()
         )
         select pg_notify('pma_sso_jobs', $1::text)",
    )
    .bind(job.id)
    .bind(status)
    .bind(&last_error)
    .bind(&outcome_json)
    .bind(retry_after)
    .bind(retry_lease)
    .bind(attempt_label)
    .bind(duration.as_millis().min(i32::MAX as u128) as i32)
    .bind(attempt)
    .bind(&job.service)
    .bind(state.map_or("in_sync", |s| s.status))
    .bind(state.map(|s| s.summary.as_str()))
    .bind(state.is_some_and(|s| s.checked))
    .bind(state.is_some_and(|s| s.changed))
    .bind(state.and_then(|s| s.objects.as_ref()))
    .bind(state.is_some())
    .execute(pool)
    .await?;
    Ok(())
}

/// The `service_state` values one outcome leads to.
struct ServiceStateRow {
    status: &'static str,
    summary: String,
    checked: bool,
    changed: bool,
    objects: Option<serde_json::Value>,
}

impl ServiceStateRow {
    fn of(service: &str, job_id: Uuid, outcome: &Outcome) -> Result<ServiceStateRow, DbError> {
        let objects = match outcome {
            Outcome::InSync { report } | Outcome::Drifted { report }
                if !report.objects.is_empty() =>
            {
                Some(
                    serde_json::to_value(&report.objects)
                        .map_err(|_| DbError::Corrupt(job_id, "objects"))?,
                )
            }
            _ => None,
        };
        let (status, summary, checked, changed) = match outcome {
            // A verify whose probes could not all be made proves nothing: not green.
            Outcome::InSync { report } if report.state() == State::Unverified => {
                ("unverified", report.line(), true, false)
            }
            Outcome::InSync { report } => ("in_sync", report.line(), true, false),
            Outcome::Drifted { report } => ("drifted", report.line(), true, false),
            Outcome::Applied { applied } => (
                "in_sync",
                applied.line(service, "?"),
                false,
                !applied.actions.is_empty(),
            ),
            Outcome::Failed { reason, .. } => ("error", reason.clone(), false, false),
            Outcome::Swept { sweep } => ("in_sync", sweep.line(), false, false),
            // A rotation changed the secret and then probed the login path.
            Outcome::Rotated { verified, .. } if verified.in_sync() => {
                ("in_sync", verified.line(), true, true)
            }
            Outcome::Rotated { verified, .. } => ("drifted", verified.line(), true, true),
        };
        Ok(ServiceStateRow {
            status,
            summary,
            checked,
            changed,
            objects,
        })
    }
}

/// Upsert what `status` reads for one service after one of its jobs ended: its last result,
/// and the authentik object ids a check saw (kept when this outcome carries none).
pub async fn record_service_state(
    conn: &mut sqlx::PgConnection,
    service: &str,
    job_id: Uuid,
    outcome: &Outcome,
) -> Result<(), DbError> {
    let state = ServiceStateRow::of(service, job_id, outcome)?;
    sqlx::query(
        "insert into service_state (service, last_status, last_summary, last_job, last_check_at, last_change_at, authentik_ids, updated_at)
         values ($1, $2, $3, $4, case when $5 then now() end, case when $6 then now() end, coalesce($7, '{}'::jsonb), now())
         on conflict (service) do update set
            last_status = excluded.last_status, last_summary = excluded.last_summary,
            last_job = excluded.last_job,
            authentik_ids = coalesce($7, service_state.authentik_ids),
            last_check_at = coalesce(excluded.last_check_at, service_state.last_check_at),
            last_change_at = coalesce(excluded.last_change_at, service_state.last_change_at),
            updated_at = now()",
    )
    .bind(service)
    .bind(state.status)
    .bind(&state.summary)
    .bind(job_id)
    .bind(state.checked)
    .bind(state.changed)
    .bind(&state.objects)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Non-terminal jobs whose lease ran out: their message may be gone. Claims them for another
/// lease so concurrent relays do not republish the same job.
pub async fn claim_expired(
    pool: &PgPool,
    lease: Duration,
    limit: i64,
) -> Result<Vec<(Uuid, String, Action)>, DbError> {
    let rows = sqlx::query(
        "update jobs set lease_until = now() + $1 * interval '1 millisecond'
         where id in (
            select id from jobs
            where status in ('queued', 'running', 'retrying') and lease_until < now()
            order by created_at limit $2
            for update skip locked)
         returning id, service, action",
    )
    .bind(lease.as_millis() as f64)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let id: Uuid = row.try_get("id")?;
            let action: String = row.try_get("action")?;
            Ok((
                id,
                row.try_get("service")?,
                Action::parse(&action).ok_or(DbError::Corrupt(id, "action"))?,
            ))
        })
        .collect()
}

pub async fn ping(pool: &PgPool) -> Result<(), DbError> {
    sqlx::query("select 1").execute(pool).await?;
    Ok(())
}
