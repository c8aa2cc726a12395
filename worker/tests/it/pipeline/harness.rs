use std::sync::Arc;
use std::time::Duration;

use schemas::job::{Action, Outcome, Trigger};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use worker::pipeline::client::{Enqueued, JobClient};
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

    /// Start a worker in this process whose flow settings (`AUTHENTIK_URL`, HTTP timeout, …)
    /// differ from the platform's.
    pub fn start_worker_with(
        &mut self,
        flow: impl FnOnce(&mut worker::Settings),
    ) -> CancellationToken {
        let mut settings = self.platform.ctx.settings.clone();
        flow(&mut settings);
        let mut w = Arc::try_unwrap(self.worker(self.settings.clone()))
            .ok()
            .expect("a new worker is not shared");
        w.ctx = Arc::new(worker::Context::new(settings).expect("ctx"));
        let token = CancellationToken::new();
        let handle = tokio::spawn(Arc::new(w).run(token.clone()));
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
        self.worker_process_command().spawn().expect("spawn worker")
    }

    /// The command `spawn_worker_process` runs, for tests that change one setting first.
    pub fn worker_process_command(&self) -> tokio::process::Command {
        let s = &self.settings;
        let flow = &self.platform.ctx.settings;
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso-worker"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PMA_SSO_ENV_FILE", &flow.env_path)
            .env("AUTHENTIK_URL", &flow.authentik_url)
            .env("AUTHENTIK_TOKEN", crate::support::TOKEN)
            .env("PMA_SSO_PACKAGES", &flow.packages_dir)
            .env("PMA_SSO_STATE_DIR", &flow.state_dir)
            .env("PMA_SSO_EXEC_RUNNER", &flow.exec_runner[0])
            .env(
                "PMA_SSO_HTTP_TIMEOUT_SECS",
                flow.http_timeout.as_secs().max(1).to_string(),
            )
            .env("DATABASE_URL", &s.database_url)
            .env("AMQP_URL", &s.amqp_url)
            .env("PMA_SSO_QUEUE_PREFIX", &s.queue_prefix)
            .env("PMA_SSO_QUEUE_EXPIRES", "600s")
            .env("PMA_SSO_DELAY_TIERS", millis_list(&s.delay_tiers))
            .env("PMA_SSO_CONCURRENCY", s.concurrency.to_string())
            .env("PMA_SSO_MAX_ATTEMPTS", s.retry.max_attempts.to_string())
            .env("PMA_SSO_RETRY_BASE", millis(s.retry.base))
            .env("PMA_SSO_RETRY_CAP", millis(s.retry.cap))
            .env("PMA_SSO_JOB_TIMEOUT", millis(s.job_timeout))
            .env("PMA_SSO_LEASE", millis(s.lease))
            .env("PMA_SSO_RELAY_INTERVAL", millis(s.relay_interval))
            .env("PMA_SSO_SHUTDOWN_GRACE", millis(s.shutdown_grace))
            .env("PMA_SSO_WORKER_HTTP", "off")
            .env("PMA_SSO_LOG", "warn")
            .kill_on_drop(true);
        command
    }

    pub fn topology(&self) -> Topology {
        topology(&self.settings)
    }

    /// Enqueue a job as the CLI does (no trigger reference).
    pub async fn enqueue(&self, service: &str, action: Action) -> Enqueued {
        self.client
            .enqueue(service, action, Trigger::Cli, None)
            .await
            .unwrap_or_else(|e| panic!("enqueue {action:?} {service}: {e}"))
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

    /// Waits (at most `within`, a bound on a hang) until job `id` is terminal, and returns its row.
    pub async fn finished(&self, id: Uuid, within: Duration) -> db::JobRow {
        let mut rows = self
            .client
            .wait(&[id], within, within)
            .await
            .unwrap_or_else(|e| panic!("job {id} did not finish: {e}"));
        rows.remove(0)
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

fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn millis_list(ds: &[Duration]) -> String {
    ds.iter().map(|d| millis(*d)).collect::<Vec<_>>().join(",")
}

/// Adds `oidc` generated oidc services (`gen-00`, `gen-01`, …) and `proxy` generated proxy
/// services (`px-00`, …) to the platform's packages, each delivering its client credentials
/// to its own `.sso.env`. Returns their names.
pub fn generate_services(platform: &Platform, oidc: usize, proxy: usize) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..oidc {
        let name = format!("gen-{i:02}");
        write_manifest(
            platform,
            &name,
            &format!(
                "name: {name}\ndisplay_name: Generated {i}\ninternal_url: http://{name}:8080\nsso:\n  type: {kind}\n  redirect_path: /oauth/callback\n  configured: false\n  deliver:\n    - env:\n        vars:\n          APP_CLIENT_ID: \"{{{{client_id}}}}\"\n          APP_CLIENT_SECRET: \"{{{{client_secret}}}}\"\n          APP_AUTH_URL: \"{{{{auth.authorize}}}}\"\n",
                kind = if i % 2 == 0 { "oidc" } else { "oauth" },
            ),
        );
        names.push(name);
    }
    for i in 0..proxy {
        let name = format!("px-{i:02}");
        write_manifest(
            platform,
            &name,
            &format!(
                "name: {name}\ndisplay_name: Proxied {i}\ninternal_url: http://{name}:80\nsso:\n  type: proxy\n  configured: false\n  proxy:\n    mode: forward_single\n    skip_path_regex:\n      - \"^/health$\"\n"
            ),
        );
        names.push(name);
    }
    names
}

fn write_manifest(platform: &Platform, name: &str, text: &str) {
    let dir = platform.path(&format!("packages/{name}"));
    std::fs::create_dir_all(&dir).expect("mkdir package");
    std::fs::write(dir.join("manifest.yaml"), text).expect("write manifest");
}

/// Files left behind by an interrupted atomic write (`.<name>.<random>.tmp`, or tempfile's
/// default `.tmp<random>`) anywhere under `dir`.
pub fn temp_leftovers(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else if name.starts_with(".tmp") || (name.starts_with('.') && name.ends_with(".tmp"))
            {
                found.push(path);
            }
        }
    }
    found
}

/// What the end state of a run must be for every service in `services`, after their `add`
/// jobs succeeded: exactly one application and one provider each in authentik, every proxy
/// provider in the embedded outpost, `.env` parseable with each service's credentials equal to
/// authentik's, every manifest parseable and marked configured, no temp file anywhere.
pub fn assert_end_state(platform: &Platform, services: &[String]) {
    let env = worker::envfile::EnvFile::read(&platform.path(".env")).expect("parse .env");
    assert_eq!(
        env.get("DOMAIN"),
        Some("example.org"),
        "DOMAIN lost from .env"
    );
    let outpost_providers: Vec<serde_json::Value> = platform
        .sim
        .outposts()
        .iter()
        .flat_map(|o| o["providers"].as_array().cloned().unwrap_or_default())
        .collect();
    for service in services {
        let package = platform.ctx.package(service).unwrap_or_else(|e| {
            panic!("manifest of {service} no longer loads: {e}");
        });
        assert!(
            package.manifest.configured(),
            "{service}'s manifest is not marked configured"
        );
        assert_eq!(
            platform.apps_with_slug(service),
            1,
            "applications of {service}"
        );
        let provider_name = format!("pma-sso-{service}");
        if package.manifest.kind() == schemas::SsoKind::Proxy {
            let providers: Vec<_> = platform
                .sim
                .proxy_providers()
                .into_iter()
                .filter(|p| p["name"] == provider_name.as_str())
                .collect();
            assert_eq!(providers.len(), 1, "proxy providers of {service}");
            assert!(
                outpost_providers.contains(&providers[0]["pk"]),
                "{service}'s provider is not in the outpost: {outpost_providers:?}"
            );
        } else {
            let providers: Vec<_> = platform
                .sim
                .oauth2_providers()
                .into_iter()
                .filter(|p| p["name"] == provider_name.as_str())
                .collect();
            assert_eq!(providers.len(), 1, "oauth2 providers of {service}");
            let id_key = package.manifest.client_id_env().expect("client id key");
            let secret_key = package.manifest.client_secret_env().expect("secret key");
            assert_eq!(
                env.get(id_key.as_str()),
                providers[0]["client_id"].as_str(),
                "{service}: client id in .env differs from authentik's"
            );
            // Compared, never printed.
            assert!(
                env.get(secret_key.as_str()).is_some()
                    && env.get(secret_key.as_str()) == providers[0]["client_secret"].as_str(),
                "{service}: client secret in .env differs from authentik's"
            );
        }
    }
    let leftovers = temp_leftovers(platform.dir.path());
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

/// Every job in `ids` terminal within `within` (a bound on a hang, not a timing target).
/// Returns the rows.
pub async fn wait_terminal(pool: &sqlx::PgPool, ids: &[Uuid], within: Duration) -> Vec<db::JobRow> {
    // A coalesced enqueue hands out an id twice; each job has one row.
    let unique: std::collections::BTreeSet<Uuid> = ids.iter().copied().collect();
    let ids: Vec<Uuid> = unique.into_iter().collect();
    let ids = ids.as_slice();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        // During a database restart the query itself may fail: count that as still open.
        if let Ok(rows) = db::jobs(pool, ids).await
            && rows.len() == ids.len()
            && rows.iter().all(|r| r.status.is_terminal())
        {
            return rows;
        }
        if tokio::time::Instant::now() >= deadline {
            let rows = db::jobs(pool, ids).await.unwrap_or_else(|e| {
                panic!("jobs not terminal after {within:?}, and reading them fails: {e}")
            });
            let open: Vec<String> = rows
                .iter()
                .filter(|r| !r.status.is_terminal())
                .map(|r| format!("{} {} {} {}", r.id, r.service, r.action, r.status.as_str()))
                .collect();
            let missing: Vec<&Uuid> = ids
                .iter()
                .filter(|id| !rows.iter().any(|r| r.id == **id))
                .collect();
            panic!(
                "after {within:?}, of {} jobs {} are not terminal: {open:?}; {} have no row: {missing:?}",
                ids.len(),
                open.len(),
                missing.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that every row succeeded, naming the first that did not with its last error.
pub fn assert_all_succeeded(rows: &[db::JobRow]) {
    for row in rows {
        assert_eq!(
            row.status.as_str(),
            "succeeded",
            "{} {}: {:?}",
            row.service,
            row.action,
            row.last_error
        );
    }
}

/// Enqueues a `check` of every service and asserts each finds it in sync within `within` (a
/// bound on a hang); `when` says what came before, for the failure message.
pub async fn assert_checks_in_sync(
    p: &Pipeline,
    services: &[String],
    within: Duration,
    when: &str,
) {
    let mut checks = Vec::new();
    for s in services {
        checks.push(p.enqueue(s, Action::Check).await.id);
    }
    for row in wait_terminal(&p.pool, &checks, within).await {
        assert!(
            matches!(row.outcome, Some(Outcome::InSync { .. })),
            "{} {when}: {:?}",
            row.service,
            row.outcome
        );
    }
}

/// Sends SIGTERM to a worker process and asserts it exits with status 0 within `within` (a
/// bound on a hang); `hang` says what a timeout means.
pub async fn sigterm_exits_zero(child: &mut tokio::process::Child, within: Duration, hang: &str) {
    let status = testkit::process::sigterm(child, within).await.expect(hang);
    assert_eq!(status.code(), Some(0));
}

type Instant = chrono::DateTime<chrono::Utc>;
/// One attempt: service, job, attempt number, start, finish.
type AttemptSpan = (String, Uuid, i32, Instant, Option<Instant>);

/// Asserts that no two attempts for one service ran at the same time, from the attempts
/// table's start and finish timestamps. Returns how many attempt intervals were compared.
pub async fn assert_no_overlap_per_service(pool: &sqlx::PgPool) -> usize {
    let rows: Vec<AttemptSpan> = sqlx::query_as(
        "select j.service, a.job_id, a.attempt, a.started_at, a.finished_at
         from attempts a join jobs j on j.id = a.job_id
         order by j.service, a.started_at",
    )
    .fetch_all(pool)
    .await
    .expect("attempts");
    // Sorted by service, then start: each attempt must start after every earlier attempt of
    // its service finished. An attempt killed mid-flow never gets a finish time (its lock
    // went with its process), so it bounds nothing.
    let mut service = "";
    let mut busy_until: Option<(&AttemptSpan, Instant)> = None;
    for row in &rows {
        if row.0 != service {
            service = &row.0;
            busy_until = None;
        }
        if let Some((prev, end)) = busy_until {
            assert!(
                end <= row.3,
                "two flows for {service} at once: job {} attempt {} ({} – {end}) and job {} attempt {} from {}",
                prev.1,
                prev.2,
                prev.3,
                row.1,
                row.2,
                row.3
            );
        }
        if let Some(end) = row.4
            && busy_until.is_none_or(|(_, until)| end > until)
        {
            busy_until = Some((row, end));
        }
    }
    rows.len()
}
