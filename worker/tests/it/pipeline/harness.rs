use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use worker::pipeline::client::JobClient;
use worker::pipeline::queue::{self, Publisher, Topology};
use worker::pipeline::retry::RetryPolicy;
use worker::pipeline::worker::{Health, Worker};
use worker::pipeline::{PipelineSettings, db};

use testkit::pg::TestDb;

use crate::support::Platform;

pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub fn settings(db: &TestDb, amqp_url: &str) -> PipelineSettings {
    let mut s = PipelineSettings::from_lookup(&|_| None).expect("defaults");
    s.database_url = db.url.clone();
    s.amqp_url = amqp_url.to_owned();
    s.queue_prefix = format!("pma-sso-test-{}", Uuid::new_v4().simple());
    s.queue_expires = Some(Duration::from_secs(600));
    s.concurrency = 4;
    s.retry = RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(50),
        cap: Duration::from_millis(400),
    };
    s.delay_tiers = vec![Duration::from_millis(100), Duration::from_millis(400)];
    s.job_timeout = Duration::from_secs(20);
    s.lease = Duration::from_secs(25);
    s.relay_interval = Duration::from_millis(200);
    s.shutdown_grace = Duration::from_secs(8);
    s.http_addr = None;
    s.worker_name = format!("test-worker-{}", Uuid::new_v4().simple());
    s
}

pub fn topology(s: &PipelineSettings) -> Topology {
    s.topology()
}

/// A platform (authentik stand-in + packages), a database, queues, and a worker running in
/// this process until `stop`.
pub struct Pipeline {
    pub platform: Platform,
    pub db: TestDb,
    pub settings: PipelineSettings,
    pub pool: sqlx::PgPool,
    pub client: JobClient,
    workers: Vec<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Pipeline {
    pub async fn new(services: &[&str]) -> Pipeline {
        Self::with(services, |_| {}).await
    }

    pub async fn with(services: &[&str], tweak: impl FnOnce(&mut PipelineSettings)) -> Pipeline {
        let platform = Platform::new(services).await;
        let db = TestDb::new().await;
        let mut settings = settings(&db, AMQP);
        tweak(&mut settings);
        let pool = db::connect(&settings.database_url, settings.concurrency)
            .await
            .expect("pool");
        db::migrate(&pool).await.expect("migrate");
        // Declare with x-expires before anyone else declares without it.
        let conn = queue::connect(&settings.amqp_url).await.expect("broker");
        let channel = conn.create_channel().await.expect("channel");
        topology(&settings)
            .declare(&channel)
            .await
            .expect("declare");
        let _ = conn.close(200, "bye".into()).await;
        let client = JobClient::connect_with(&settings, topology(&settings))
            .await
            .expect("client");
        Pipeline {
            platform,
            db,
            settings,
            pool,
            client,
            workers: Vec::new(),
        }
    }

    pub fn worker(&self, settings: PipelineSettings) -> Arc<Worker> {
        let ctx = worker::Context::new(self.platform.ctx.settings.clone()).expect("ctx");
        Arc::new(Worker {
            ctx: Arc::new(ctx),
            db: self.pool.clone(),
            topology: topology(&settings),
            settings,
            health: Arc::new(Health::default()),
        })
    }

    /// Start a worker (its own broker connection) in this process.
    pub fn start_worker(&mut self) -> CancellationToken {
        let worker = self.worker(self.settings.clone());
        let token = CancellationToken::new();
        let handle = tokio::spawn(worker.run(token.clone()));
        self.workers.push((token.clone(), handle));
        token
    }

    pub async fn stop_workers(&mut self) {
        for (token, handle) in self.workers.drain(..) {
            token.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(15), handle).await;
        }
    }

    pub async fn publisher(&self) -> (lapin::Connection, Publisher) {
        let conn = queue::connect(&self.settings.amqp_url)
            .await
            .expect("broker");
        let publisher = Publisher::new(&conn).await.expect("publisher");
        (conn, publisher)
    }

    /// The `pma-sso-worker` binary as a child process on this pipeline's database and queues,
    /// for tests that kill or signal a real process.
    pub fn spawn_worker_process(&self) -> tokio::process::Child {
        let s = &self.settings;
        let flow = &self.platform.ctx.settings;
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso-worker"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PMA_SSO_ENV_FILE", &flow.env_path)
            .env("AUTHENTIK_URL", &flow.authentik_url)
            .env("AUTHENTIK_TOKEN", crate::support::TOKEN)
            .env("PMA_SSO_PACKAGES", &flow.packages_dir)
            .env("PMA_SSO_STATE_DIR", &flow.state_dir)
            .env("PMA_SSO_EXEC_RUNNER", &flow.exec_runner[0])
            .env("DATABASE_URL", &s.database_url)
            .env("AMQP_URL", &s.amqp_url)
            .env("PMA_SSO_QUEUE_PREFIX", &s.queue_prefix)
            .env("PMA_SSO_QUEUE_EXPIRES", "600s")
            .env("PMA_SSO_DELAY_TIERS", "100ms,400ms")
            .env("PMA_SSO_WORKER_HTTP", "off")
            .env("PMA_SSO_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("spawn worker")
    }

    pub fn topology(&self) -> Topology {
        topology(&self.settings)
    }

    /// Messages waiting in a queue, read without consuming the rest (basic.get + nack).
    pub async fn drain(&self, queue: &str) -> Vec<(Vec<u8>, Option<String>)> {
        let conn = queue::connect(&self.settings.amqp_url)
            .await
            .expect("broker");
        let channel = conn.create_channel().await.expect("channel");
        let mut out = Vec::new();
        while let Ok(Some(message)) = channel
            .basic_get(
                queue.into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
        {
            let reason = message
                .delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("x-pma-sso-reason").cloned())
                .and_then(|v| match v {
                    lapin::types::AMQPValue::LongString(s) => {
                        Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                    }
                    _ => None,
                });
            out.push((message.delivery.data.clone(), reason));
        }
        let _ = conn.close(200, "bye".into()).await;
        out
    }

    pub async fn attempts(
        &self,
        job: Uuid,
    ) -> Vec<(
        i32,
        String,
        chrono::DateTime<chrono::Utc>,
        Option<chrono::DateTime<chrono::Utc>>,
    )> {
        sqlx::query_as("select attempt, outcome, started_at, finished_at from attempts where job_id = $1 order by attempt")
            .bind(job)
            .fetch_all(&self.pool)
            .await
            .expect("attempts")
    }

    fn queue_names(&self) -> Vec<String> {
        let t = self.topology();
        let mut names = vec![t.work_queue(), t.dead_queue()];
        names.extend(t.delay_tiers.iter().map(|d| t.delay_queue(*d)));
        names
    }

    pub async fn wait_status(&self, job: Uuid, status: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let current: String = sqlx::query_scalar("select status from jobs where id = $1")
                .bind(job)
                .fetch_one(&self.pool)
                .await
                .expect("status");
            if current == status {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job} is {current}, not {status}, after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        for (token, _) in &self.workers {
            token.cancel();
        }
        let (url, names) = (self.settings.amqp_url.clone(), self.queue_names());
        // x-expires is the fallback; deleting now keeps the broker tidy between tests.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            rt.block_on(async {
                if let Ok(conn) = queue::connect(&url).await
                    && let Ok(channel) = conn.create_channel().await
                {
                    for name in names {
                        let _ = channel.queue_delete(name.into(), Default::default()).await;
                    }
                    let _ = conn.close(200, "bye".into()).await;
                }
            });
        })
        .join();
    }
}
