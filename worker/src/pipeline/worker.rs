//! The consumer: a thin loop around `step`, which handles exactly one delivery.
//!
//! Order inside a step: decode → take the service's advisory lock and claim the attempt in one
//! statement (nothing claimed: read the row — missing: dead-letter; terminal: ack and skip;
//! otherwise lock by the row's service and claim) → run the flow → commit the outcome (one
//! statement) → publish a delayed retry copy if one is due → ack, while the unlock runs on its
//! own. Proxy services read the row first and take the outpost lock before claiming. A crash
//! anywhere before the outcome commit leaves the message unacked (redelivered) and the row
//! non-terminal (the relay republishes it after its lease), so the job runs again as its next
//! attempt; idempotent flows make that safe.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use schemas::job::{Action, JobMessage, Outcome};
use sqlx::PgPool;
use sqlx::pool::PoolConnection;
use sqlx::postgres::Postgres;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::PipelineSettings;
use super::db::{self, DbError, Finish};
use super::queue::{self, Publisher, QueueError, Topology};
use super::retry::{self, Decision};
use crate::context::Context;
use crate::error::FlowError;

/// Readiness as `/readyz` reports it.
#[derive(Default)]
pub struct Health {
    pub database: AtomicBool,
    pub broker: AtomicBool,
    /// `AUTHENTIK_TOKEN` is accepted. A rejected token is an operator's job, never a retry loop:
    /// readiness goes red and every flow fails at once with the reason.
    pub authentik: AtomicBool,
    /// Why the token was rejected, for `/readyz`.
    pub authentik_problem: std::sync::Mutex<Option<String>>,
}

pub struct Worker {
    pub ctx: Arc<Context>,
    pub db: PgPool,
    pub settings: PipelineSettings,
    pub topology: Topology,
    pub health: Arc<Health>,
}

/// What runs a claimed job. The pipeline around it (row, lock, attempt, outcome, ack) is the
/// same whatever runs it: production uses [`Flows`]; the benchmark swaps in a runner that does
/// nothing, to time the pipeline alone.
pub trait JobRunner: Send + Sync {
    fn run<'a>(
        &'a self,
        worker: &'a Worker,
        publisher: &'a Publisher,
        job: &'a db::JobRow,
    ) -> Pin<Box<dyn Future<Output = Result<Outcome, FlowError>> + Send + 'a>>;
}

/// The real flows: check, add/fix, sweep.
pub struct Flows;

impl JobRunner for Flows {
    fn run<'a>(
        &'a self,
        worker: &'a Worker,
        publisher: &'a Publisher,
        job: &'a db::JobRow,
    ) -> Pin<Box<dyn Future<Output = Result<Outcome, FlowError>> + Send + 'a>> {
        Box::pin(worker.run_flow_once(publisher, job))
    }
}

/// What to do with a delivery once its step is over.
#[derive(Debug, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    /// Hand it back: the infrastructure (not the job) failed.
    Requeue,
}

/// The step could not do its bookkeeping; the job itself is not at fault.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Broker(#[from] QueueError),
}

impl From<sqlx::Error> for InfraError {
    fn from(e: sqlx::Error) -> Self {
        InfraError::Database(DbError::Sql(e))
    }
}

impl Worker {
    /// Handle exactly one delivery. Tests drive this directly.
    pub async fn step(
        &self,
        publisher: &Publisher,
        body: &[u8],
    ) -> Result<Disposition, InfraError> {
        self.step_with(&Flows, publisher, body).await
    }

    /// `step` with another runner in place of the flows.
    pub async fn step_with(
        &self,
        runner: &dyn JobRunner,
        publisher: &Publisher,
        body: &[u8],
    ) -> Result<Disposition, InfraError> {
        let message = match JobMessage::decode(body) {
            Ok(m) => m,
            Err(reason) => {
                tracing::warn!(%reason, "dead-lettering a message that is not a job");
                self.dead_letter(publisher, body, &reason).await?;
                metrics::counter!("pma_sso_messages_dead_lettered_total").increment(1);
                return Ok(Disposition::Ack);
            }
        };
        let Ok(id) = Uuid::parse_str(&message.job_id) else {
            self.dead_letter(publisher, body, "job_id is not a UUID")
                .await?;
            return Ok(Disposition::Ack);
        };
        let span = tracing::info_span!(
            "job",
            job.id = %id,
            service = %message.service,
            action = message.action.as_str(),
            attempt = tracing::field::Empty,
        );
        self.run_delivered(runner, publisher, body, id, &message)
            .instrument(span)
            .await
    }

    /// The fast path takes the lock of the service the message names and claims the job in one
    /// round trip; when it claims nothing, the row decides (missing, finished, or another
    /// service than the message says). Proxy services, which also need the outpost lock before
    /// their claim, take the path that reads the row first.
    async fn run_delivered(
        &self,
        runner: &dyn JobRunner,
        publisher: &Publisher,
        body: &[u8],
        id: Uuid,
        message: &JobMessage,
    ) -> Result<Disposition, InfraError> {
        if !self.needs_outpost(&message.service, message.action) {
            let (lock, claimed) = ServiceLock::acquire_claiming(
                &self.db,
                &message.service,
                id,
                &self.settings.worker_name,
                self.settings.lease,
            )
            .await?;
            match (lock, claimed) {
                (Some(lock), Some(job)) => {
                    let result = self
                        .run_attempt(runner, publisher, &job, job.attempts, &lock)
                        .await;
                    // The outcome is committed (or the step failed and hands the job back):
                    // unlock without waiting, so the ack does not wait for that round trip.
                    lock.release_in_background();
                    return result;
                }
                // Finished by the worker this one waited for.
                (Some(lock), None) => lock.release().await,
                (None, _) => {}
            }
        }
        let Some(job) = db::job(&self.db, id).await? else {
            self.dead_letter(publisher, body, "no job row with this id")
                .await?;
            return Ok(Disposition::Ack);
        };
        if job.status.is_terminal() {
            tracing::debug!(job.id = %id, status = job.status.as_str(), "skipping a redelivered finished job");
            return Ok(Disposition::Ack);
        }
        self.run_locked(runner, publisher, job).await
    }

    /// Attaching a proxy provider is a read-modify-write of the outpost's whole provider list,
    /// shared by every proxy service: those jobs serialise on the outpost lock too.
    fn needs_outpost(&self, service: &str, action: Action) -> bool {
        action != Action::Sweep
            && self
                .ctx
                .package(service)
                .is_ok_and(|p| p.manifest.kind() == schemas::SsoKind::Proxy)
    }

    async fn run_locked(
        &self,
        runner: &dyn JobRunner,
        publisher: &Publisher,
        job: db::JobRow,
    ) -> Result<Disposition, InfraError> {
        // Waits while another worker (any process, any machine) runs this service: a busy
        // lock blocks here, it never becomes a hot requeue loop.
        let lock = ServiceLock::acquire(&self.db, &service_lock_name(&job.service)).await?;
        // The outpost lock is always taken after the service lock, so the order is fixed and
        // cannot deadlock.
        let outpost = if self.needs_outpost(&job.service, job.action) {
            match ServiceLock::acquire(&self.db, "outpost").await {
                Ok(l) => Some(l),
                Err(e) => {
                    lock.release().await;
                    return Err(e);
                }
            }
        } else {
            None
        };
        let result = self.run_claimed(runner, publisher, &job, &lock).await;
        if let Some(outpost) = outpost {
            outpost.release().await;
        }
        lock.release().await;
        result
    }

    async fn run_claimed(
        &self,
        runner: &dyn JobRunner,
        publisher: &Publisher,
        job: &db::JobRow,
        lock: &ServiceLock,
    ) -> Result<Disposition, InfraError> {
        // Re-read under the lock: the worker we waited for may have finished this very job.
        let Some(attempt) = db::start_attempt(
            &self.db,
            job.id,
            &self.settings.worker_name,
            self.settings.lease,
        )
        .await?
        else {
            return Ok(Disposition::Ack);
        };
        self.run_attempt(runner, publisher, job, attempt, lock)
            .await
    }

    /// Run a claimed attempt under its lock, commit its outcome, publish a delayed retry copy
    /// or a dead-letter copy when due. Returns `Ack` once the outcome is durable.
    async fn run_attempt(
        &self,
        runner: &dyn JobRunner,
        publisher: &Publisher,
        job: &db::JobRow,
        attempt: i32,
        lock: &ServiceLock,
    ) -> Result<Disposition, InfraError> {
        tracing::Span::current().record("attempt", attempt);
        let started = Instant::now();
        metrics::gauge!("pma_sso_jobs_in_flight").increment(1.0);

        let outcome = if attempt > job.max_attempts {
            // Redelivered again and again without finishing (a worker killed mid-job each
            // time): stop here rather than loop forever.
            Err(FlowError::Abandoned {
                attempts: job.max_attempts,
            })
        } else {
            tokio::select! {
                result = self.run_flow(runner, publisher, job) => result,
                _ = lock.lost.cancelled() => Err(FlowError::LockLost),
            }
        };
        metrics::gauge!("pma_sso_jobs_in_flight").decrement(1.0);
        let duration = started.elapsed();

        let (finish_outcome, decision) = match outcome {
            Ok(o) => (o, None),
            Err(e) => {
                let transient = e.is_transient();
                let decision = retry::decide(
                    &self.settings.retry,
                    transient,
                    e.retry_after(),
                    attempt as u32,
                    rand::random(),
                );
                (
                    Outcome::Failed {
                        reason: e.to_string(),
                        transient,
                    },
                    Some(decision),
                )
            }
        };
        let finish = match &decision {
            None => Finish::Succeeded(&finish_outcome),
            Some(Decision::Fail) => Finish::Failed(&finish_outcome),
            Some(Decision::Dead) => Finish::Dead(&finish_outcome),
            Some(Decision::Retry { after }) => {
                let tier = retry::tier_for(&self.topology.delay_tiers, *after).unwrap_or(*after);
                Finish::Retry {
                    outcome: &finish_outcome,
                    after: tier,
                    lease: self.settings.lease,
                }
            }
        };
        db::finish_attempt(&self.db, job, attempt, duration, finish).await?;
        let label = match &decision {
            None => finish_outcome.label(),
            Some(Decision::Fail) => "failed",
            Some(Decision::Dead) => "dead",
            Some(Decision::Retry { .. }) => "retry",
        };
        metrics::counter!("pma_sso_jobs_total", "action" => job.action.as_str(), "outcome" => label).increment(1);
        metrics::histogram!("pma_sso_job_duration_seconds", "action" => job.action.as_str())
            .record(duration.as_secs_f64());
        tracing::info!(
            outcome = label,
            duration_ms = duration.as_millis() as u64,
            "job attempt finished"
        );

        let message = serde_json::to_vec(&JobMessage {
            job_id: job.id.to_string(),
            service: job.service.clone(),
            action: job.action,
        })
        .unwrap_or_default();
        match decision {
            Some(Decision::Retry { after }) => {
                if let Some(tier) = retry::tier_for(&self.topology.delay_tiers, after) {
                    // Publish the delayed copy before acking the original; if this fails the
                    // row still says `retrying` with a lease, and the relay republishes it.
                    if let Err(e) = publisher
                        .publish(
                            &self.topology.delay_queue(tier),
                            &message,
                            FieldTable::default(),
                        )
                        .await
                    {
                        tracing::warn!(error = %e, "could not publish the delayed retry; the relay will");
                    }
                }
            }
            Some(Decision::Dead) => {
                let reason = match &finish_outcome {
                    Outcome::Failed { reason, .. } => reason.clone(),
                    _ => String::new(),
                };
                self.dead_letter(publisher, &message, &reason).await?;
            }
            _ => {}
        }
        Ok(Disposition::Ack)
    }

    async fn run_flow(
        &self,
        runner: &dyn JobRunner,
        publisher: &Publisher,
        job: &db::JobRow,
    ) -> Result<Outcome, FlowError> {
        let once = || async {
            // Per-request retries never start a wait the attempt's timeout would cut short:
            // the attempt then ends with authentik's error, not with "timed out".
            let run = crate::authentik::with_retry_deadline(
                self.settings.job_timeout,
                runner.run(self, publisher, job),
            );
            match tokio::time::timeout(self.settings.job_timeout, run).await {
                Ok(result) => result,
                Err(_) => Err(FlowError::TimedOut {
                    secs: self.settings.job_timeout.as_secs(),
                }),
            }
        };
        // A short in-process tail for blips (a reset connection, one 502); longer waits go
        // through the delay queues so the worker slot is not held.
        once.retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_millis(800))
                .with_max_times(2)
                .with_jitter(),
        )
        .when(|e: &FlowError| e.is_transient() && e.retry_after().is_none())
        .await
    }

    async fn run_flow_once(
        &self,
        publisher: &Publisher,
        job: &db::JobRow,
    ) -> Result<Outcome, FlowError> {
        let (service, action) = (job.service.as_str(), job.action);
        match action {
            Action::Check => {
                let report = self.ctx.check(service).await?;
                Ok(if report.in_sync() {
                    Outcome::InSync { report }
                } else {
                    Outcome::Drifted { report }
                })
            }
            Action::Add | Action::Fix => {
                let commit = db::git_commit(&self.db, job.id)
                    .await
                    .map_err(|e| FlowError::ReadJob(e.to_string()))?;
                Ok(Outcome::Applied {
                    applied: self
                        .ctx
                        .apply_at(service, action, commit.as_deref())
                        .await?,
                })
            }
            Action::Sweep => Ok(Outcome::Swept {
                sweep: super::sweep::Sweep {
                    ctx: &self.ctx,
                    db: &self.db,
                    settings: &self.settings,
                    topology: &self.topology,
                    publisher,
                }
                .run(job.id)
                .await?,
            }),
            // Recorded like a check: a failed probe is drift with its reason.
            Action::Verify => {
                let report = crate::verify::verify(&self.ctx, service).await?;
                Ok(if report.in_sync() {
                    Outcome::InSync { report }
                } else {
                    Outcome::Drifted { report }
                })
            }
            // Under this job's service lock, like `fix`.
            Action::Rotate => {
                let rotated = crate::rotate::rotate(&self.ctx, service).await?;
                Ok(Outcome::Rotated {
                    applied: rotated.applied,
                    verified: rotated.verified,
                })
            }
        }
    }

    async fn dead_letter(
        &self,
        publisher: &Publisher,
        body: &[u8],
        reason: &str,
    ) -> Result<(), QueueError> {
        publisher
            .publish(
                &self.topology.dead_queue(),
                body,
                queue::header("x-pma-sso-reason", reason),
            )
            .await
    }

    /// Consume until `shutdown`, reconnecting to the broker and waiting out database outages
    /// by itself.
    /// Ask authentik who we are: proves the token works.
    pub async fn probe_authentik(&self) {
        match self.ctx.authentik.me().await {
            Ok(_) => {
                metrics::gauge!("pma_sso_authentik_token_valid").set(1.0);
                // A fresh authentik answers before its blueprints ran: name what it lacks.
                let not_ready = match crate::live::missing_builtins(&self.ctx.authentik).await {
                    Ok(missing) => crate::live::not_ready_line(&missing),
                    Err(_) => None,
                };
                self.health
                    .authentik
                    .store(not_ready.is_none(), Ordering::Relaxed);
                if let Ok(mut problem) = self.health.authentik_problem.lock() {
                    *problem = not_ready;
                }
            }
            Err(e @ crate::authentik::AuthentikError::Forbidden { .. }) => {
                tracing::error!(error = %e, "authentik rejects AUTHENTIK_TOKEN; jobs will fail until it is replaced (pma-sso init)");
                self.health.authentik.store(false, Ordering::Relaxed);
                metrics::gauge!("pma_sso_authentik_token_valid").set(0.0);
                if let Ok(mut problem) = self.health.authentik_problem.lock() {
                    *problem = Some("token invalid or expired".into());
                }
            }
            // Unreachable or 5xx: the jobs' own retries cover it; readiness is about the token.
            Err(e) => tracing::warn!(error = %e, "could not reach authentik to check the token"),
        }
    }

    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        self.run_with(shutdown, Arc::new(Flows)).await
    }

    /// `run` with another runner in place of the flows.
    pub async fn run_with(
        self: Arc<Self>,
        shutdown: CancellationToken,
        runner: Arc<dyn JobRunner>,
    ) {
        let prober = {
            let worker = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    worker.probe_authentik().await;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            })
        };
        self.clone().consume(shutdown, runner).await;
        prober.abort();
    }

    async fn consume(self: Arc<Self>, shutdown: CancellationToken, runner: Arc<dyn JobRunner>) {
        let mut backoff = reconnect_backoff();
        while !shutdown.is_cancelled() {
            match self.clone().session(&shutdown, &runner).await {
                Ok(()) => break,
                Err(SessionEnd::Broker(e)) => {
                    self.health.broker.store(false, Ordering::Relaxed);
                    let wait = backoff.next().unwrap_or(Duration::from_secs(10));
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "broker session ended; reconnecting");
                    tokio::select! { _ = tokio::time::sleep(wait) => {}, _ = shutdown.cancelled() => break }
                }
                Err(SessionEnd::Database) => {
                    self.health.database.store(false, Ordering::Relaxed);
                    tracing::warn!("database unreachable: stopped consuming until it is back");
                    self.wait_for_database(&shutdown).await;
                    backoff = reconnect_backoff();
                }
            }
        }
        self.health.broker.store(false, Ordering::Relaxed);
    }

    async fn wait_for_database(&self, shutdown: &CancellationToken) {
        let mut backoff = reconnect_backoff();
        loop {
            if db::ping(&self.db).await.is_ok() {
                self.health.database.store(true, Ordering::Relaxed);
                tracing::info!("database is back");
                return;
            }
            let wait = backoff.next().unwrap_or(Duration::from_secs(10));
            tokio::select! { _ = tokio::time::sleep(wait) => {}, _ = shutdown.cancelled() => return }
        }
    }

    async fn session(
        self: Arc<Self>,
        shutdown: &CancellationToken,
        runner: &Arc<dyn JobRunner>,
    ) -> Result<(), SessionEnd> {
        let connection = queue::connect(&self.settings.amqp_url)
            .await
            .map_err(SessionEnd::broker)?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| SessionEnd::broker(e.into()))?;
        self.topology
            .declare(&channel)
            .await
            .map_err(SessionEnd::broker)?;
        let publisher = Publisher::new(&connection)
            .await
            .map_err(SessionEnd::broker)?;
        // Prefetch matches concurrency: the broker never hands us more than we run.
        let prefetch = u16::try_from(self.settings.concurrency).unwrap_or(u16::MAX);
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| SessionEnd::broker(e.into()))?;
        let tag = format!("{}-{}", self.settings.worker_name, Uuid::new_v4());
        let mut consumer = channel
            .basic_consume(
                self.topology.work_queue().into(),
                tag.clone().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| SessionEnd::broker(e.into()))?;
        self.health.broker.store(true, Ordering::Relaxed);
        self.health
            .database
            .store(db::ping(&self.db).await.is_ok(), Ordering::Relaxed);
        tracing::info!(queue = %self.topology.work_queue(), prefetch, "consuming");

        let database_down = CancellationToken::new();
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut end: Result<(), SessionEnd> = Ok(());
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = database_down.cancelled() => { end = Err(SessionEnd::Database); break }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let worker = self.clone();
                        let publisher = publisher.clone();
                        let database_down = database_down.clone();
                        let runner = runner.clone();
                        tasks.spawn(async move {
                            let disposition = match worker.step_with(&*runner, &publisher, &delivery.data).await {
                                Ok(d) => d,
                                Err(InfraError::Database(e)) => {
                                    tracing::warn!(error = %e, "database error; handing the job back");
                                    database_down.cancel();
                                    Disposition::Requeue
                                }
                                Err(InfraError::Broker(e)) => {
                                    tracing::warn!(error = %e, "broker error; handing the job back");
                                    Disposition::Requeue
                                }
                            };
                            let acked = match disposition {
                                Disposition::Ack => delivery.ack(BasicAckOptions::default()).await,
                                Disposition::Requeue => delivery.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await,
                            };
                            if let Err(e) = acked {
                                // The channel is gone: the broker redelivers, and the row decides.
                                tracing::warn!(error = %e, "could not settle a delivery");
                            }
                        });
                    }
                    Some(Err(e)) => { end = Err(SessionEnd::broker(e.into())); break }
                    None => { end = Err(SessionEnd::Broker("the consumer was cancelled or its channel closed".into())); break }
                },
            }
        }
        // Stop taking work, then let in-flight jobs finish (or hand them back by closing).
        let _ = channel
            .basic_cancel(tag.into(), BasicCancelOptions::default())
            .await;
        let drained = tokio::time::timeout(self.settings.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                in_flight = tasks.len(),
                "shutdown grace over; unfinished jobs go back to the queue"
            );
            tasks.abort_all();
        }
        let _ = channel.close(200, "bye".into()).await;
        let _ = connection.close(200, "bye".into()).await;
        end
    }
}

enum SessionEnd {
    Broker(String),
    Database,
}

impl SessionEnd {
    fn broker(e: QueueError) -> SessionEnd {
        SessionEnd::Broker(e.to_string())
    }
}

impl std::fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionEnd::Broker(e) => f.write_str(e),
            SessionEnd::Database => f.write_str("database unreachable"),
        }
    }
}

fn reconnect_backoff() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
        .build()
}

/// A per-service PostgreSQL advisory lock held on its own connection, so it holds across
/// processes and machines. A heartbeat notices if that connection dies, and `lost` fires so the
/// flow is aborted rather than running unprotected.
struct ServiceLock {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    holder: tokio::task::JoinHandle<()>,
    lost: CancellationToken,
}

const LOCK_HEARTBEAT: Duration = Duration::from_secs(2);

impl ServiceLock {
    async fn acquire(pool: &PgPool, name: &str) -> Result<ServiceLock, InfraError> {
        let mut conn: PoolConnection<Postgres> = pool.acquire().await?;
        let key = lock_key(name);
        sqlx::query("select pg_advisory_lock(hashtextextended($1, 0))")
            .bind(&key)
            .execute(&mut *conn)
            .await?;
        Ok(ServiceLock::hold(conn, key))
    }

    /// Take `service`'s lock and claim job `id` in one round trip ([`db::lock_and_claim`]).
    /// Returns the lock if it was taken, and the job if it was claimed.
    async fn acquire_claiming(
        pool: &PgPool,
        service: &str,
        id: Uuid,
        worker: &str,
        lease: Duration,
    ) -> Result<(Option<ServiceLock>, Option<db::JobRow>), InfraError> {
        let mut conn: PoolConnection<Postgres> = pool.acquire().await?;
        let key = lock_key(&service_lock_name(service));
        match db::lock_and_claim(&mut conn, &key, id, service, worker, lease).await {
            Ok(claim) if claim.locked => Ok((Some(ServiceLock::hold(conn, key)), claim.job)),
            Ok(_) => Ok((None, None)),
            Err(e) => {
                // The statement may have taken the lock before it failed: closing the
                // connection releases it server-side.
                drop(conn.detach());
                Err(e.into())
            }
        }
    }

    /// Watch over a connection that holds the advisory lock `key`.
    fn hold(mut conn: PoolConnection<Postgres>, key: String) -> ServiceLock {
        let lost = CancellationToken::new();
        let (stop, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let lost_signal = lost.clone();
        let holder = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stop_rx => {
                        let unlocked = sqlx::query("select pg_advisory_unlock(hashtextextended($1, 0))")
                            .bind(&key)
                            .execute(&mut *conn)
                            .await;
                        if unlocked.is_err() {
                            // Never return a connection that may still hold the lock to the
                            // pool: closing it releases the lock server-side.
                            drop(conn.detach());
                        }
                        return;
                    }
                    _ = tokio::time::sleep(LOCK_HEARTBEAT) => {
                        if sqlx::query("select 1").execute(&mut *conn).await.is_err() {
                            lost_signal.cancel();
                            drop(conn.detach());
                            return;
                        }
                    }
                }
            }
        });
        ServiceLock {
            stop: Some(stop),
            holder,
            lost,
        }
    }

    /// Unlock and wait until the unlock has run.
    async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.holder).await;
    }

    /// Unlock without waiting: the holder task runs `pg_advisory_unlock` on its own (and
    /// closes the connection if that fails). A process that exits first closes the connection,
    /// which releases the lock as well.
    fn release_in_background(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The lock name of one service (its advisory lock key is [`lock_key`] of this).
fn service_lock_name(service: &str) -> String {
    format!("service:{service}")
}

/// The text hashed (`hashtextextended`) into an advisory lock key; the same in every process
/// and version, so workers of any version exclude each other.
fn lock_key(name: &str) -> String {
    format!("pma-sso:{name}")
}
