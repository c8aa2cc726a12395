//! P1 and P5: N no-op jobs, each for its own service, through the real pipeline (job row,
//! publish with confirms, consume, advisory lock, attempt, outcome commit, ack) in a worker
//! process of its own; against a bare lapin + sqlx loop on the same queue shape.

use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{Future, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use schemas::job::{Action, JobMessage, Outcome, Trigger};
use schemas::outcome::Applied;
use testkit::pg::TestDb;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;
use worker::error::FlowError;
use worker::pipeline::client::JobClient;
use worker::pipeline::db::JobRow;
use worker::pipeline::queue::{self, Publisher};
use worker::pipeline::worker::{Health, JobRunner, Worker};
use worker::pipeline::{PipelineSettings, db};

use crate::support::{self, Finished};

/// How many enqueues (ours) or publishes (baseline) are in flight at once.
const PUBLISHERS: usize = 8;

/// A flow that succeeds at once with zero HTTP calls: what is left is the pipeline.
struct Noop;

impl JobRunner for Noop {
    fn run<'a>(
        &'a self,
        _worker: &'a Worker,
        _publisher: &'a Publisher,
        _job: &'a JobRow,
    ) -> Pin<Box<dyn Future<Output = Result<Outcome, FlowError>> + Send + 'a>> {
        Box::pin(async {
            Ok(Outcome::Applied {
                applied: Applied::default(),
            })
        })
    }
}

/// `pma-sso-bench noop-worker`: the pipeline's worker with the no-op runner, configured from
/// the environment like `pma-sso-worker`. Prints `ready` once consuming; stops (finishing
/// in-flight jobs) when stdin closes.
pub async fn noop_worker() {
    let pipeline = PipelineSettings::from_env().expect("settings");
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("packages")).expect("mkdir");
    // Nothing listens there: the no-op runner never calls authentik (the start-up token probe
    // fails fast and is only logged).
    let ctx = worker::Context::new(support::context_settings("http://127.0.0.1:9", dir.path()))
        .expect("context");
    let pool = db::connect(&pipeline.database_url, pipeline.concurrency)
        .await
        .expect("PostgreSQL");
    let health = Arc::new(Health::default());
    let worker = Arc::new(Worker {
        ctx: Arc::new(ctx),
        db: pool.clone(),
        topology: pipeline.topology(),
        settings: pipeline,
        health: health.clone(),
    });
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    std::thread::spawn(move || {
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        stop.cancel();
    });
    tokio::spawn(async move {
        support::wait_ready(&health).await;
        println!("ready");
    });
    worker.run_with(shutdown, Arc::new(Noop)).await;
    pool.close().await;
}

pub struct Round {
    pub jobs_per_s: f64,
    /// Transactions committed in the round's database per job (read-only ones and the round's
    /// few set-up transactions included), from `pg_stat_database`.
    pub commits_per_job: f64,
    /// CPU time the worker process spent per job (pipeline rounds only).
    pub worker_cpu_us_per_job: Option<f64>,
    /// The worker process's VmHWM (pipeline rounds only).
    pub hwm_mb: Option<f64>,
}

fn service(i: usize) -> String {
    format!("bench{i:06}")
}

/// One round of the real path: a fresh database and queues, a worker process, N jobs.
pub async fn pipeline_round(n: usize) -> Round {
    let test_db = TestDb::new().await;
    let s = support::settings(&test_db.url);
    let pool = support::pool(&s).await;
    support::declare(&s).await;
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("exe"))
        .arg("noop-worker")
        .envs(support::settings_env(&s))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the worker");
    let pid = child.id().expect("pid");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    while let Some(line) = lines.next_line().await.expect("worker output") {
        if line == "ready" {
            break;
        }
    }
    let client = JobClient::connect_with(&s, s.topology())
        .await
        .expect("client");
    let mut finished = Finished::listen(&test_db.url).await;
    let cpu_before = support::cpu_seconds(pid);

    let started = Instant::now();
    let enqueue = futures_util::stream::iter(0..n)
        .map(|i| {
            let client = &client;
            async move {
                client
                    .enqueue(&service(i), Action::Fix, Trigger::Cli, None)
                    .await
                    .expect("enqueue")
            }
        })
        .buffer_unordered(PUBLISHERS)
        .count();
    let done = async {
        let mut seen = std::collections::HashSet::new();
        while seen.len() < n {
            seen.insert(finished.next().await);
        }
    };
    let (enqueued, ()) = tokio::join!(enqueue, done);
    let elapsed = started.elapsed();
    assert_eq!(enqueued, n);
    let hwm_mb = support::vm_hwm_mb(pid);
    let cpu = support::cpu_seconds(pid)
        .zip(cpu_before)
        .map(|(after, before)| after - before);

    let succeeded: i64 = sqlx::query_scalar("select count(*) from jobs where status = 'succeeded'")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(succeeded as usize, n, "every no-op job succeeds");
    drop(child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
    drop(finished);
    client.close().await;
    pool.close().await;
    let commits = support::commits(&test_db.url).await;
    support::delete_queues(&s).await;
    drop(test_db);
    Round {
        jobs_per_s: n as f64 / elapsed.as_secs_f64(),
        commits_per_job: commits as f64 / n as f64,
        worker_cpu_us_per_job: cpu.map(|c| c * 1e6 / n as f64),
        hwm_mb,
    }
}

/// One round of the ceiling: publish with confirms, consume with the same prefetch, one
/// insert per message, ack — nothing else. Same queue declaration (durable, same arguments),
/// persistent messages, pool settings and publish concurrency as the pipeline round.
pub async fn baseline_round(n: usize) -> Round {
    let test_db = TestDb::new().await;
    let s = support::settings(&test_db.url);
    let pool = db::connect(&s.database_url, s.concurrency)
        .await
        .expect("PostgreSQL");
    sqlx::query("create table done (id uuid primary key, body bytea not null, at timestamptz not null default now())")
        .execute(&pool)
        .await
        .expect("create table");
    support::declare(&s).await;

    // The consumer: its own connection, as a worker process has.
    let consumer_conn = queue::connect(&s.amqp_url).await.expect("RabbitMQ");
    let channel = consumer_conn.create_channel().await.expect("channel");
    channel
        .basic_qos(s.concurrency as u16, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = channel
        .basic_consume(
            s.topology().work_queue().into(),
            "bench-baseline".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let acked = Arc::new(AtomicUsize::new(0));
    let all_acked = Arc::new(tokio::sync::Notify::new());
    let consuming = {
        let (pool, acked, all_acked) = (pool.clone(), acked.clone(), all_acked.clone());
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            while let Some(Ok(delivery)) = consumer.next().await {
                let (pool, acked, all_acked) = (pool.clone(), acked.clone(), all_acked.clone());
                tasks.spawn(async move {
                    let id = JobMessage::decode(&delivery.data)
                        .ok()
                        .and_then(|m| uuid::Uuid::parse_str(&m.job_id).ok())
                        .expect("a job message");
                    sqlx::query("insert into done (id, body) values ($1, $2)")
                        .bind(id)
                        .bind(&delivery.data)
                        .execute(&pool)
                        .await
                        .expect("insert");
                    delivery.ack(BasicAckOptions::default()).await.expect("ack");
                    if acked.fetch_add(1, Ordering::SeqCst) + 1 == n {
                        all_acked.notify_one();
                    }
                });
                while tasks.try_join_next().is_some() {}
            }
        })
    };

    // The publisher: its own connection, as a client has.
    let publisher_conn = queue::connect(&s.amqp_url).await.expect("RabbitMQ");
    let publisher = Publisher::new(&publisher_conn).await.expect("publisher");
    let work_queue = s.topology().work_queue();
    let started = Instant::now();
    let publish = futures_util::stream::iter(0..n)
        .map(|i| {
            let (publisher, work_queue) = (&publisher, &work_queue);
            async move {
                let body = serde_json::to_vec(&JobMessage {
                    job_id: uuid::Uuid::new_v4().to_string(),
                    service: service(i),
                    action: Action::Fix,
                })
                .expect("encode");
                publisher
                    .publish(work_queue, &body, FieldTable::default())
                    .await
                    .expect("publish");
            }
        })
        .buffer_unordered(PUBLISHERS)
        .count();
    // `notify_one` leaves a permit when nobody waits yet, so this cannot miss the last ack.
    let (published, ()) = tokio::join!(publish, all_acked.notified());
    let elapsed = started.elapsed();
    assert_eq!(published, n);

    consuming.abort();
    let _ = publisher_conn.close(200, "bye".into()).await;
    let _ = consumer_conn.close(200, "bye".into()).await;
    pool.close().await;
    let commits = support::commits(&test_db.url).await;
    support::delete_queues(&s).await;
    drop(test_db);
    Round {
        jobs_per_s: n as f64 / elapsed.as_secs_f64(),
        commits_per_job: commits as f64 / n as f64,
        worker_cpu_us_per_job: None,
        hwm_mb: None,
    }
}
