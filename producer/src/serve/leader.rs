//! The cron sweep, led by one `serve` at a time.
//!
//! Leadership is a PostgreSQL session advisory lock held on a dedicated connection (not a
//! pool connection, which could be handed to someone else while holding it): it lasts exactly
//! as long as that connection, so a leader that dies or loses the database frees it at once,
//! and a follower that keeps trying takes over. The leader only enqueues the sweep job; any
//! worker runs it, and a sweep already waiting absorbs another (the pipeline coalesces).
//!
//! A new leader sweeps at once ([`Leader::sweep_at_start`]) before waiting for the schedule:
//! a service added with `configured: false` while no `serve` ran gets its `add` now, not at
//! the next cron tick.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use croner::Cron;
use schemas::job::{Action, SWEEP_TARGET, Trigger};
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;
use worker::pipeline::client::JobClient;

const LOCK_KEY: &str = "pma-sso:sweep-leader";
/// `trigger_ref` of the sweep a `serve` enqueues when it becomes the leader.
pub const START_REF: &str = "serve start";
/// How often the leader proves its connection (and so its lock) is still alive.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// The held leader lock; dropping the connection releases it server-side.
pub struct LeaderLock {
    conn: PgConnection,
}

impl LeaderLock {
    /// Take the lock if nobody holds it.
    pub async fn try_acquire(database_url: &str) -> Result<Option<LeaderLock>, sqlx::Error> {
        let mut conn = PgConnection::connect(database_url).await?;
        let got: bool = sqlx::query_scalar("select pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(LOCK_KEY)
            .fetch_one(&mut conn)
            .await?;
        if got {
            Ok(Some(LeaderLock { conn }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    pub async fn alive(&mut self) -> bool {
        sqlx::query("select 1")
            .execute(&mut self.conn)
            .await
            .is_ok()
    }

    pub async fn release(self) {
        // Closing the session releases every lock it holds.
        let _ = self.conn.close().await;
    }
}

pub struct Leader {
    pub database_url: String,
    pub cron: Cron,
    /// How long a follower waits before trying to lead again.
    pub retry: Duration,
    pub jobs: Arc<JobClient>,
}

impl Leader {
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            match LeaderLock::try_acquire(&self.database_url).await {
                Ok(Some(lock)) => {
                    tracing::info!(cron = %self.cron.pattern.to_string(), "leading the cron sweep");
                    self.lead(lock, &shutdown).await;
                }
                Ok(None) => tracing::debug!("another serve leads the sweep; following"),
                Err(e) => tracing::warn!(error = %e, "sweep leadership: database unreachable"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.retry) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    /// The sweep a new leader enqueues before following the schedule (`trigger_ref`
    /// [`START_REF`]); a sweep already waiting absorbs it.
    pub async fn sweep_at_start(&self) {
        match self
            .jobs
            .enqueue(SWEEP_TARGET, Action::Sweep, Trigger::Cron, Some(START_REF))
            .await
        {
            Ok(job) => {
                tracing::info!(job.id = %job.id, coalesced = job.coalesced, "start-up sweep enqueued")
            }
            Err(e) => tracing::warn!(error = %e, "could not enqueue the start-up sweep"),
        }
    }

    async fn lead(&self, mut lock: LeaderLock, shutdown: &CancellationToken) {
        self.sweep_at_start().await;
        let mut fired: Option<chrono::DateTime<Utc>> = None;
        loop {
            let now = Utc::now();
            // Never the same occurrence twice, even if the wall clock lags the timer.
            let from = fired.map_or(now, |f| f.max(now));
            let Ok(next) = self.cron.find_next_occurrence(&from, false) else {
                tracing::error!("the sweep schedule has no next occurrence; not sweeping");
                shutdown.cancelled().await;
                break;
            };
            let wait = (next - now).to_std().unwrap_or_default();
            // Sleep in heartbeat-sized steps: a lost lock must be noticed before firing.
            let step = wait.min(HEARTBEAT);
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = shutdown.cancelled() => break,
            }
            if !lock.alive().await {
                tracing::warn!("lost the sweep leader lock (database connection died)");
                return;
            }
            if step < wait {
                continue;
            }
            fired = Some(next);
            match self
                .jobs
                .enqueue(SWEEP_TARGET, Action::Sweep, Trigger::Cron, None)
                .await
            {
                Ok(job) => {
                    tracing::info!(job.id = %job.id, coalesced = job.coalesced, "sweep enqueued")
                }
                Err(e) => tracing::warn!(error = %e, "could not enqueue the sweep; next tick"),
            }
        }
        lock.release().await;
    }
}
