//! What every part shares: pipeline settings on throwaway queues, a platform of generated
//! manifests on the authentik stand-in, LISTEN for finished jobs, medians, VmHWM.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use schemas::job::Action;
use secrecy::SecretString;
use sqlx::postgres::PgListener;
use testkit::{AuthentikSim, SimHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use worker::pipeline::worker::{Health, Worker};
use worker::pipeline::{PipelineSettings, db, queue};
use worker::{Context, Settings};

pub const TOKEN: &str = "bench-token-5d0a91";

pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// Pipeline settings on uuid-named queues that expire if the bench is killed. Everything else
/// (concurrency, retry policy, delay tiers) is the production default.
pub fn settings(database_url: &str) -> PipelineSettings {
    let mut s = PipelineSettings::from_lookup(&|_| None).expect("default settings");
    s.database_url = database_url.to_owned();
    s.amqp_url = amqp_url();
    s.queue_prefix = format!("pma-sso-bench-{}", Uuid::new_v4().simple());
    s.queue_expires = Some(Duration::from_secs(600));
    s.concurrency = env_number("PMA_SSO_CONCURRENCY", 4) as u32;
    s.http_addr = None;
    s.worker_name = format!("bench-{}", std::process::id());
    s
}

/// The same settings as environment variables, for a worker in another process.
pub fn settings_env(s: &PipelineSettings) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", s.database_url.clone()),
        ("AMQP_URL", s.amqp_url.clone()),
        ("PMA_SSO_QUEUE_PREFIX", s.queue_prefix.clone()),
        ("PMA_SSO_QUEUE_EXPIRES", "600s".into()),
        ("PMA_SSO_CONCURRENCY", s.concurrency.to_string()),
        ("PMA_SSO_WORKER_HTTP", "off".into()),
    ]
}

/// Declare every queue of the topology (with its `x-expires`) before any worker does.
pub async fn declare(s: &PipelineSettings) {
    let conn = queue::connect(&s.amqp_url).await.expect("RabbitMQ");
    let channel = conn.create_channel().await.expect("channel");
    s.topology().declare(&channel).await.expect("declare");
    let _ = conn.close(200, "bye".into()).await;
}

pub async fn delete_queues(s: &PipelineSettings) {
    let t = s.topology();
    let mut names = vec![t.work_queue(), t.dead_queue()];
    names.extend(t.delay_tiers.iter().map(|d| t.delay_queue(*d)));
    if let Ok(conn) = queue::connect(&s.amqp_url).await
        && let Ok(channel) = conn.create_channel().await
    {
        for name in names {
            let _ = channel.queue_delete(name.into(), Default::default()).await;
        }
        let _ = conn.close(200, "bye".into()).await;
    }
}

/// Generated manifests (`svc00001`, …: oauth, no deliveries) on a fresh authentik stand-in.
pub struct Platform {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
    pub names: Vec<String>,
}

impl Platform {
    pub async fn generate(count: usize) -> Platform {
        let sim = AuthentikSim::new(TOKEN).start().await;
        let dir = tempfile::tempdir().expect("tmp");
        let mut names = Vec::with_capacity(count);
        for i in 1..=count {
            let name = format!("svc{i:05}");
            let pkg = dir.path().join("packages").join(&name);
            std::fs::create_dir_all(&pkg).expect("mkdir");
            std::fs::write(
                pkg.join("manifest.yaml"),
                format!(
                    "name: {name}\nsso:\n  type: oauth\n  redirect_path: /oauth2callback\n  configured: false\n"
                ),
            )
            .expect("write manifest");
            names.push(name);
        }
        std::fs::write(dir.path().join(".env"), "DOMAIN=example.org\n").expect("write .env");
        Platform { sim, dir, names }
    }

    pub fn packages_dir(&self) -> PathBuf {
        self.dir.path().join("packages")
    }

    pub fn settings(&self) -> Settings {
        context_settings(&self.sim.base_url(), self.dir.path())
    }

    /// Make every generated service present in authentik (and its `.env` keys written).
    pub async fn add_all(&self) {
        let ctx = Context::new(self.settings()).expect("context");
        let failed = futures_util::stream::iter(&self.names)
            .map(|name| ctx.apply(name, Action::Add))
            .buffer_unordered(8)
            .filter(|r| std::future::ready(r.is_err()))
            .count()
            .await;
        assert_eq!(failed, 0, "adding the generated services failed");
    }
}

pub fn context_settings(authentik_url: &str, dir: &std::path::Path) -> Settings {
    Settings {
        authentik_url: authentik_url.to_owned(),
        authentik_token: SecretString::from(TOKEN.to_owned()),
        public_url: None,
        packages_dir: dir.join("packages"),
        env_path: dir.join(".env"),
        state_dir: dir.join(".pma-sso"),
        exec_runner: vec!["true".into()],
        http_timeout: Duration::from_secs(30),
        least_privilege: false,
    }
}

/// A worker running the real flows in this process, consuming once this returns.
pub struct InProcessWorker {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl InProcessWorker {
    pub async fn start(ctx: Settings, pool: &sqlx::PgPool, s: &PipelineSettings) -> Self {
        let health = Arc::new(Health::default());
        let worker = Arc::new(Worker {
            ctx: Arc::new(Context::new(ctx).expect("context")),
            db: pool.clone(),
            topology: s.topology(),
            settings: s.clone(),
            health: health.clone(),
        });
        let stop = CancellationToken::new();
        let handle = tokio::spawn(worker.run(stop.clone()));
        wait_ready(&health).await;
        InProcessWorker { stop, handle }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.handle).await;
    }
}

pub async fn wait_ready(health: &Health) {
    while !health.broker.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The worker `pg_notify`s `pma_sso_jobs` with the job id in the transaction that commits an
/// outcome: waiting on it sees the commit itself, without polling.
pub struct Finished {
    listener: PgListener,
    seen: HashSet<String>,
}

impl Finished {
    pub async fn listen(database_url: &str) -> Finished {
        let mut listener = PgListener::connect(database_url).await.expect("listen");
        listener.listen("pma_sso_jobs").await.expect("listen");
        Finished {
            listener,
            seen: HashSet::new(),
        }
    }

    pub async fn next(&mut self) -> String {
        self.listener
            .recv()
            .await
            .expect("notification")
            .payload()
            .to_owned()
    }

    /// Wait until `job` has finished (it may already have been announced).
    pub async fn wait_for(&mut self, job: Uuid) {
        let id = job.to_string();
        while !self.seen.remove(&id) {
            let got = self.next().await;
            self.seen.insert(got);
        }
    }
}

pub async fn pool(s: &PipelineSettings) -> sqlx::PgPool {
    let pool = db::connect(&s.database_url, s.concurrency)
        .await
        .expect("PostgreSQL");
    db::migrate(&pool).await.expect("migrate");
    pool
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// VmHWM (peak resident set) of a process, in MiB.
pub fn vm_hwm_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Transactions committed in a database, read once every other connection to it has closed:
/// a backend reports its counts when it exits (or up to ten seconds after going idle).
pub async fn commits(database_url: &str) -> i64 {
    use sqlx::Connection;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let Ok(mut conn) = sqlx::PgConnection::connect(database_url).await else {
        return 0;
    };
    let n = sqlx::query_scalar(
        "select xact_commit from pg_stat_database where datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap_or(0);
    let _ = conn.close().await;
    n
}

/// User + system CPU seconds a process has used.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
