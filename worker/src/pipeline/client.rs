//! What the CLI (and later the triggers) use to put jobs into the pipeline and wait for them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemas::job::{Action, JobMessage, JobStatus, Trigger};
use sqlx::PgPool;
use uuid::Uuid;

use super::PipelineSettings;
use super::db::{self, DbError, JobRow};
use super::queue::{self, Publisher, QueueError, Topology};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Broker(#[from] QueueError),
    #[error("`{0}` is not a valid service name")]
    BadService(String),
    #[error("no worker picked up {waiting} job(s) within {secs}s; is pma-sso-worker running?")]
    NoWorker { waiting: usize, secs: u64 },
    #[error("{unfinished} job(s) still unfinished after {secs}s")]
    Timeout { unfinished: usize, secs: u64 },
}

/// How many unpublished messages a client keeps for its next enqueue.
const UNSENT_CAP: usize = 10_000;

pub struct JobClient {
    pub db: PgPool,
    /// Replaced when the connection dies (a broker restart): a long-lived client such as
    /// `pma-sso serve` reconnects on its next publish instead of leaving every later job to
    /// the relay's lease.
    link: Mutex<Arc<Link>>,
    /// One reconnect at a time; the others use its connection.
    reconnecting: tokio::sync::Mutex<()>,
    /// Messages of jobs this client recorded but could not publish (the broker was away). The
    /// next enqueue sends them first — also one that coalesces into such a job, which would
    /// otherwise wait for the relay's lease.
    unsent: Mutex<Vec<Vec<u8>>>,
    topology: Topology,
    settings: PipelineSettings,
}

struct Link {
    connection: lapin::Connection,
    publisher: Publisher,
}

impl Link {
    async fn open(amqp_url: &str) -> Result<Link, QueueError> {
        let connection = queue::connect(amqp_url).await?;
        let publisher = Publisher::new(&connection).await?;
        Ok(Link {
            connection,
            publisher,
        })
    }
}

/// Messages waiting in the work and dead-letter queues, and the workers consuming.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueDepths {
    pub work: u32,
    pub dead: u32,
    pub workers: u32,
}

/// An accepted request: the job's id, and whether it joined a job already waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enqueued {
    pub id: Uuid,
    pub coalesced: bool,
}

impl JobClient {
    pub async fn connect(settings: &PipelineSettings) -> Result<JobClient, ClientError> {
        Self::connect_with(settings, settings.topology()).await
    }

    pub async fn connect_with(
        settings: &PipelineSettings,
        topology: Topology,
    ) -> Result<JobClient, ClientError> {
        let db = db::connect(&settings.database_url, 1).await?;
        db::migrate(&db).await?;
        let connection = queue::connect(&settings.amqp_url).await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(QueueError::from)?;
        topology.declare(&channel).await?;
        // A channel left open when the connection closes makes lapin log an error.
        let _ = channel.close(200, "declared".into()).await;
        let publisher = Publisher::new(&connection).await?;
        Ok(JobClient {
            db,
            link: Mutex::new(Arc::new(Link {
                connection,
                publisher,
            })),
            reconnecting: tokio::sync::Mutex::new(()),
            unsent: Mutex::new(Vec::new()),
            topology,
            settings: settings.clone(),
        })
    }

    fn current_link(&self) -> Arc<Link> {
        self.link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Publish to the work queue; when the connection is gone, reconnect once and publish
    /// again.
    async fn publish(&self, body: &[u8]) -> Result<(), QueueError> {
        let queue = self.topology.work_queue();
        let link = self.current_link();
        if link.connection.status().connected() {
            match link
                .publisher
                .publish(&queue, body, lapin::types::FieldTable::default())
                .await
            {
                Ok(()) => return Ok(()),
                // A nack or a returned message on a live connection: not a connection problem.
                Err(e) if link.connection.status().connected() => return Err(e),
                Err(_) => {}
            }
        }
        let fresh = {
            let _one = self.reconnecting.lock().await;
            let current = self.current_link();
            if !Arc::ptr_eq(&current, &link) && current.connection.status().connected() {
                current
            } else {
                let fresh = Arc::new(Link::open(&self.settings.amqp_url).await?);
                *self
                    .link
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh.clone();
                tracing::info!("reconnected to the broker");
                fresh
            }
        };
        fresh
            .publisher
            .publish(&queue, body, lapin::types::FieldTable::default())
            .await
    }

    /// Record the job (one commit), then publish it with confirms. A publish that fails is not
    /// an error for the caller: the row exists and the relay republishes it once its lease runs
    /// out.
    pub async fn enqueue(
        &self,
        service: &str,
        action: Action,
        trigger: Trigger,
        trigger_ref: Option<&str>,
    ) -> Result<Enqueued, ClientError> {
        if !JobMessage::valid_target(service, action) {
            return Err(ClientError::BadService(service.to_owned()));
        }
        let (id, coalesced) = db::insert_or_coalesce(
            &self.db,
            service,
            action,
            trigger,
            trigger_ref,
            self.settings.retry.max_attempts,
            self.settings.lease,
        )
        .await?;
        let mut outbox = self.take_unsent();
        if !coalesced {
            outbox.push(
                serde_json::to_vec(&JobMessage {
                    job_id: id.to_string(),
                    service: service.to_owned(),
                    action,
                })
                .unwrap_or_default(),
            );
        }
        // Nothing more to record on success: a queued row whose lease runs out is republished
        // by the relay whether or not a publish was confirmed, so a separate `published_at`
        // commit would decide nothing (only the relay sets it).
        let mut pending = outbox.into_iter();
        while let Some(body) = pending.next() {
            if let Err(e) = self.publish(&body).await {
                tracing::warn!(job.id = %id, error = %e, "publish failed; the next enqueue or the relay will send it");
                self.keep_unsent(std::iter::once(body).chain(pending));
                break;
            }
        }
        Ok(Enqueued { id, coalesced })
    }

    fn take_unsent(&self) -> Vec<Vec<u8>> {
        std::mem::take(
            &mut *self
                .unsent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Keep messages to send with the next enqueue. Bounded: beyond [`UNSENT_CAP`] the oldest
    /// are left to the relay alone (their rows are safe either way).
    fn keep_unsent(&self, bodies: impl Iterator<Item = Vec<u8>>) {
        let mut unsent = self
            .unsent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        unsent.extend(bodies);
        let excess = unsent.len().saturating_sub(UNSENT_CAP);
        unsent.drain(..excess);
    }

    /// Poll until every job is terminal. `pickup` bounds how long jobs may sit unclaimed
    /// (no worker running); `overall` bounds the whole wait.
    pub async fn wait(
        &self,
        ids: &[Uuid],
        pickup: Duration,
        overall: Duration,
    ) -> Result<Vec<JobRow>, ClientError> {
        let started = Instant::now();
        loop {
            let rows = db::jobs(&self.db, ids).await?;
            if rows.len() == ids.len() && rows.iter().all(|r| r.status.is_terminal()) {
                let mut ordered = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(row) = rows.iter().find(|r| r.id == *id) {
                        ordered.push(row.clone());
                    }
                }
                return Ok(ordered);
            }
            let waiting = rows
                .iter()
                .filter(|r| r.status == JobStatus::Queued && r.attempts == 0)
                .count();
            if started.elapsed() > pickup && waiting > 0 {
                return Err(ClientError::NoWorker {
                    waiting,
                    secs: pickup.as_secs(),
                });
            }
            if started.elapsed() > overall {
                let unfinished = rows.iter().filter(|r| !r.status.is_terminal()).count();
                return Err(ClientError::Timeout {
                    unfinished,
                    secs: overall.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the broker holds: messages waiting in the work and dead-letter queues, and the
    /// consumers (workers) attached to the work queue. Asked with passive declares on a channel
    /// of its own, closed after (a passive declare of a missing queue closes its channel).
    pub async fn queue_depths(&self) -> Result<QueueDepths, QueueError> {
        let link = self.current_link();
        let channel = link.connection.create_channel().await?;
        let passive = lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let work = channel
            .queue_declare(
                self.topology.work_queue().into(),
                passive,
                lapin::types::FieldTable::default(),
            )
            .await?;
        let dead = channel
            .queue_declare(
                self.topology.dead_queue().into(),
                passive,
                lapin::types::FieldTable::default(),
            )
            .await?;
        let _ = channel.close(200, "bye".into()).await;
        Ok(QueueDepths {
            work: work.message_count(),
            dead: dead.message_count(),
            workers: work.consumer_count(),
        })
    }

    pub async fn close(self) {
        let link = self.current_link();
        // Channel first, then the connection: closing a connection under an open channel
        // makes lapin log `invalid channel state: Closing` at error level.
        let _ = link.publisher.channel().close(200, "bye".into()).await;
        let _ = link.connection.close(200, "bye".into()).await;
        self.db.close().await;
    }
}
