//! Read-mostly queries for the operator commands: `status`, `history`, `retry`. Kept apart from
//! `db.rs`, which holds what the worker and the enqueue path need.

use chrono::{DateTime, Utc};
use schemas::job::{Action, JobStatus, Outcome};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::db::DbError;

/// One row of `service_state`: what `status` prints.
#[derive(Clone, Debug)]
pub struct ServiceState {
    pub service: String,
    /// `in_sync`, `drifted` or `error`.
    pub last_status: String,
    pub last_summary: Option<String>,
    pub last_job: Option<Uuid>,
    pub last_check_at: Option<DateTime<Utc>>,
    pub last_change_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

pub async fn service_states(pool: &PgPool) -> Result<Vec<ServiceState>, DbError> {
    let rows = sqlx::query(
        "select service, last_status, last_summary, last_job, last_check_at, last_change_at, updated_at
         from service_state order by service",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ServiceState {
                service: row.try_get("service")?,
                last_status: row.try_get("last_status")?,
                last_summary: row.try_get("last_summary")?,
                last_job: row.try_get("last_job")?,
                last_check_at: row.try_get("last_check_at")?,
                last_change_at: row.try_get("last_change_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        })
        .collect()
}

/// The most recent sweep that ended: what `status` and the status page show for the sweep.
#[derive(Clone, Debug)]
pub struct LastSweep {
    pub id: Uuid,
    pub status: JobStatus,
    pub outcome: Option<Outcome>,
    pub last_error: Option<String>,
    pub finished_at: DateTime<Utc>,
    /// How long its last attempt ran.
    pub duration_ms: Option<i32>,
}

impl LastSweep {
    /// green (every service checked, none red), red (some drifted) or error (the sweep failed,
    /// or a service's check did).
    pub fn result(&self) -> &'static str {
        match &self.outcome {
            Some(Outcome::Swept { sweep }) if sweep.errors > 0 => "error",
            Some(Outcome::Swept { sweep }) if sweep.drifted > 0 => "red",
            Some(Outcome::Swept { .. }) => "green",
            _ => "error",
        }
    }

    /// What it found, or why it failed.
    pub fn summary(&self) -> String {
        match &self.outcome {
            Some(Outcome::Swept { sweep }) => sweep.line(),
            Some(Outcome::Failed { reason, .. }) => format!("failed: {reason}"),
            _ => format!(
                "ended {}: {}",
                self.status.as_str(),
                self.last_error.as_deref().unwrap_or("no outcome")
            ),
        }
    }
}

pub async fn last_sweep(pool: &PgPool) -> Result<Option<LastSweep>, DbError> {
    let row = sqlx::query(
        "select j.id, j.status, j.outcome, j.last_error, j.finished_at,
                (select a.duration_ms from attempts a where a.job_id = j.id
                 order by a.attempt desc limit 1) as duration_ms
         from jobs j
         where j.action = 'sweep' and j.status in ('succeeded', 'failed', 'dead')
           and j.finished_at is not null
         order by j.finished_at desc limit 1",
    )
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        let id: Uuid = row.try_get("id")?;
        let status: String = row.try_get("status")?;
        let outcome: Option<serde_json::Value> = row.try_get("outcome")?;
        Ok(LastSweep {
            id,
            status: JobStatus::parse(&status).ok_or(DbError::Corrupt(id, "status"))?,
            outcome: outcome.and_then(|v| serde_json::from_value(v).ok()),
            last_error: row.try_get("last_error")?,
            finished_at: row.try_get("finished_at")?,
            duration_ms: row.try_get("duration_ms")?,
        })
    })
    .transpose()
}

/// For each service red now, how many of its latest sweep checks in a row were red: drift that
/// outlives several sweeps is what an alert should page on, not one red check.
pub async fn red_sweeps(pool: &PgPool) -> Result<Vec<(String, i64)>, DbError> {
    let rows = sqlx::query(
        "select j.service, count(*) as n from jobs j
         where j.action = 'check' and j.trigger = 'cron' and j.outcome->>'kind' = 'drifted'
           and j.created_at > coalesce((
               select max(k.created_at) from jobs k
               where k.service = j.service and k.action = 'check' and k.trigger = 'cron'
                 and coalesce(k.outcome->>'kind', '') <> 'drifted'), '-infinity')
         group by j.service order by j.service",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("service")?, row.try_get("n")?)))
        .collect()
}

/// How many jobs are in each status, and how many dead jobs no `retry` took up yet.
pub async fn job_counts(pool: &PgPool) -> Result<(Vec<(String, i64)>, i64), DbError> {
    let rows =
        sqlx::query("select status, count(*) as n from jobs group by status order by status")
            .fetch_all(pool)
            .await?;
    let counts = rows
        .iter()
        .map(|row| Ok((row.try_get("status")?, row.try_get("n")?)))
        .collect::<Result<Vec<_>, DbError>>()?;
    let unretried: i64 = sqlx::query_scalar(
        "select count(*) from jobs j where j.status = 'dead'
           and not exists (select 1 from jobs r where r.trigger_ref = 'retry:' || j.id::text)",
    )
    .fetch_one(pool)
    .await?;
    Ok((counts, unretried))
}

/// A job as `history` shows it, with its attempts (oldest first).
#[derive(Clone, Debug)]
pub struct JobHistory {
    pub id: Uuid,
    pub action: Action,
    pub trigger: String,
    pub trigger_ref: Option<String>,
    pub status: JobStatus,
    pub attempts: Vec<AttemptRow>,
    pub last_error: Option<String>,
    pub outcome: Option<Outcome>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct AttemptRow {
    pub attempt: i32,
    pub worker: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// in_sync | drifted | updated | unchanged | failed | retry | running, or abandoned
    /// (its worker died; closed when the job was claimed again)
    pub outcome: String,
    /// The attempt's outcome as recorded (secret-free: reports only say that a secret differs).
    pub detail: Option<Outcome>,
    pub duration_ms: Option<i32>,
}

/// The service's most recent jobs, newest first, each with its attempts.
pub async fn history(pool: &PgPool, service: &str, limit: i64) -> Result<Vec<JobHistory>, DbError> {
    let rows = sqlx::query(
        "select id, action, trigger, trigger_ref, status, last_error, outcome, created_at, finished_at
         from jobs where service = $1 order by created_at desc, id limit $2",
    )
    .bind(service)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: Uuid = row.try_get("id")?;
        let action: String = row.try_get("action")?;
        let status: String = row.try_get("status")?;
        let outcome: Option<serde_json::Value> = row.try_get("outcome")?;
        jobs.push(JobHistory {
            id,
            action: Action::parse(&action).ok_or(DbError::Corrupt(id, "action"))?,
            trigger: row.try_get("trigger")?,
            trigger_ref: row.try_get("trigger_ref")?,
            status: JobStatus::parse(&status).ok_or(DbError::Corrupt(id, "status"))?,
            attempts: Vec::new(),
            last_error: row.try_get("last_error")?,
            // An outcome this version cannot read is shown as absent, not an error: history
            // must stay readable across upgrades.
            outcome: outcome.and_then(|v| serde_json::from_value(v).ok()),
            created_at: row.try_get("created_at")?,
            finished_at: row.try_get("finished_at")?,
        });
    }
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let attempts = sqlx::query(
        "select job_id, attempt, worker, started_at, finished_at, outcome, detail, duration_ms
         from attempts where job_id = any($1) order by job_id, attempt",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    for row in &attempts {
        let job_id: Uuid = row.try_get("job_id")?;
        let detail: Option<serde_json::Value> = row.try_get("detail")?;
        let attempt = AttemptRow {
            attempt: row.try_get("attempt")?,
            worker: row.try_get("worker")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            outcome: row.try_get("outcome")?,
            detail: detail.and_then(|v| serde_json::from_value(v).ok()),
            duration_ms: row.try_get("duration_ms")?,
        };
        if let Some(job) = jobs.iter_mut().find(|j| j.id == job_id) {
            job.attempts.push(attempt);
        }
    }
    Ok(jobs)
}

/// A terminal job that `retry` may re-enqueue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retryable {
    pub id: Uuid,
    pub service: String,
    pub action: Action,
    pub status: JobStatus,
    /// Why it failed, as recorded.
    pub last_error: Option<String>,
}

fn retryable(row: &sqlx::postgres::PgRow) -> Result<Retryable, DbError> {
    let id: Uuid = row.try_get("id")?;
    let action: String = row.try_get("action")?;
    let status: String = row.try_get("status")?;
    Ok(Retryable {
        id,
        service: row.try_get("service")?,
        action: Action::parse(&action).ok_or(DbError::Corrupt(id, "action"))?,
        status: JobStatus::parse(&status).ok_or(DbError::Corrupt(id, "status"))?,
        last_error: row.try_get("last_error")?,
    })
}

/// Jobs in one of `statuses` that no later job retried yet (no job has `trigger_ref =
/// retry:<id>`), oldest first: running `retry --dead` twice re-enqueues each job once.
pub async fn not_yet_retried(
    pool: &PgPool,
    statuses: &[JobStatus],
) -> Result<Vec<Retryable>, DbError> {
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let rows = sqlx::query(
        "select j.id, j.service, j.action, j.status, j.last_error from jobs j
         where j.status = any($1)
           and not exists (select 1 from jobs r where r.trigger_ref = 'retry:' || j.id::text)
         order by j.created_at, j.id",
    )
    .bind(&statuses)
    .fetch_all(pool)
    .await?;
    rows.iter().map(retryable).collect()
}

/// One job by id, for `retry <id>`.
pub async fn retryable_job(pool: &PgPool, id: Uuid) -> Result<Option<Retryable>, DbError> {
    let row = sqlx::query("select id, service, action, status, last_error from jobs where id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(retryable).transpose()
}

/// Delete finished jobs (succeeded, failed, dead) beyond the newest `keep` per service; their
/// attempts go with them (`on delete cascade`). Jobs still queued, running or retrying are never
/// touched and do not count towards `keep`. Returns how many jobs were deleted.
pub async fn prune_history(pool: &PgPool, keep: i64) -> Result<u64, DbError> {
    let done = sqlx::query(
        "delete from jobs where id in (
             select id from (
                 select id, row_number() over (partition by service order by created_at desc, id) as n
                 from jobs where status in ('succeeded', 'failed', 'dead')
             ) ranked where n > $1
         )",
    )
    .bind(keep.max(1))
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
