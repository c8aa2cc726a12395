//! `status` on real PostgreSQL, fed by a worker running the jobs. Also holds the harness the
//! operator-command tests share: authentik stand-in, packages, a database of its own,
//! uuid-named queues and an in-process worker.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use testkit::pg::TestDb;
use tokio_util::sync::CancellationToken;
use worker::envfile::EnvFile;
use worker::pipeline::worker::{Health, Worker};
use worker::pipeline::{PipelineSettings, db};

use crate::cli::TOKEN;

/// authentik (or every stand-in), the given packages and a `.env` in a temporary directory, a
/// database of its own, uuid-named queues and a worker running in this process.
pub struct Harness<S = testkit::SimHandle> {
    pub sim: S,
    pub dir: tempfile::TempDir,
    pub pool: sqlx::PgPool,
    pub pipeline: PipelineSettings,
    env: Vec<(&'static str, String)>,
    stop: CancellationToken,
    running: tokio::task::JoinHandle<()>,
    _db: TestDb,
}

/// Where a test's harness differs from [`Harness::start`]'s.
pub struct Options<'a> {
    /// `.env` lines naming the stand-ins (the domain, token and exec runner are always there).
    pub dot_env: String,
    /// Queue names start with `pma-sso-<queue_tag>-`.
    pub queue_tag: &'a str,
    /// Pipeline environment added to the defaults, or replacing a default of the same key. The
    /// worker's flow settings and every `pma` run see it too.
    pub env: Vec<(&'static str, String)>,
}

impl Harness {
    /// The authentik stand-in alone, reached directly.
    pub async fn start(services: &[&str]) -> Harness {
        let sim = testkit::AuthentikSim::new(TOKEN).start().await;
        let dot_env = format!("AUTHENTIK_URL={}\n", sim.base_url());
        Harness::with(
            sim,
            services,
            Options {
                dot_env,
                queue_tag: "ops",
                env: Vec::new(),
            },
        )
        .await
    }
}

impl<S> Harness<S> {
    pub async fn with(sim: S, services: &[&str], options: Options<'_>) -> Harness<S> {
        let dir = crate::serve::platform_dir(
            services,
            &format!(
                "DOMAIN=example.org\nAUTHENTIK_TOKEN={TOKEN}\nPMA_SSO_EXEC_RUNNER=true\n{}",
                options.dot_env
            ),
        );
        let test_db = TestDb::new().await;
        let mut env = vec![
            ("DATABASE_URL", test_db.url.clone()),
            ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
            (
                "PMA_SSO_QUEUE_PREFIX",
                format!(
                    "pma-sso-{}-{}",
                    options.queue_tag,
                    uuid::Uuid::new_v4().simple()
                ),
            ),
            ("PMA_SSO_QUEUE_EXPIRES", "600s".into()),
            ("PMA_SSO_DELAY_TIERS", "200ms,1s".into()),
            ("PMA_SSO_LOG", "error".into()),
        ];
        for (key, value) in options.env {
            match env.iter_mut().find(|(k, _)| *k == key) {
                Some(default) => default.1 = value,
                None => env.push((key, value)),
            }
        }
        let lookup = |key: &str| env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
        let mut pipeline = PipelineSettings::from_lookup(&lookup).expect("settings");
        pipeline.http_addr = None;
        let pool = db::connect(&pipeline.database_url, pipeline.concurrency)
            .await
            .expect("db");
        db::migrate(&pool).await.expect("migrate");
        let env_file = dir.path().join(".env").display().to_string();
        let settings = worker::Settings::from_lookup(&|key| match key {
            "PMA_SSO_ENV_FILE" => Some(env_file.clone()),
            other => lookup(other),
        })
        .expect("flow settings");
        let worker = Arc::new(Worker {
            ctx: Arc::new(worker::Context::new(settings).expect("ctx")),
            db: pool.clone(),
            topology: pipeline.topology(),
            settings: pipeline.clone(),
            health: Arc::new(Health::default()),
        });
        let stop = CancellationToken::new();
        let running = tokio::spawn(worker.run(stop.clone()));
        Harness {
            sim,
            dir,
            pool,
            pipeline,
            env,
            stop,
            running,
            _db: test_db,
        }
    }

    /// The `pma-sso` command with this harness's pipeline, for a test that spawns it.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PMA_SSO_ENV_FILE", self.dir.path().join(".env"))
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Run `pma-sso` as an operator would, with this harness's pipeline.
    pub async fn pma(&self, args: &[&str]) -> (i32, String) {
        let Output {
            status,
            stdout,
            stderr,
        } = self.command(args).output().await.expect("run pma-sso");
        let err = String::from_utf8_lossy(&stderr);
        assert!(!err.contains("panicked"), "{err}");
        (
            status.code().expect("exit code"),
            String::from_utf8_lossy(&stdout).into_owned(),
        )
    }

    pub fn remove_package(&self, name: &str) {
        std::fs::remove_dir_all(self.dir.path().join("packages").join(name)).expect("rm");
    }

    /// A value from this harness's `.env`.
    pub fn env(&self, key: &str) -> String {
        dot_env(self.dir.path(), key)
    }

    pub fn set_env(&self, key: &str, value: &str) {
        set_dot_env(self.dir.path(), key, value);
    }

    /// Stop the worker and delete the queues.
    pub async fn finish(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.running).await;
        delete_queues(&self.pipeline).await;
    }
}

/// A value from the `.env` in `dir`.
pub fn dot_env(dir: &Path, key: &str) -> String {
    EnvFile::read(&dir.join(".env"))
        .expect("read .env")
        .get(key)
        .expect("key in .env")
        .to_owned()
}

pub fn set_dot_env(dir: &Path, key: &str, value: &str) {
    worker::envfile::update(&dir.join(".env"), &[(key, Some(value))]).expect("write .env");
}

pub async fn delete_queues(settings: &PipelineSettings) {
    let t = settings.topology();
    let Ok(conn) = worker::pipeline::queue::connect(&settings.amqp_url).await else {
        return;
    };
    if let Ok(channel) = conn.create_channel().await {
        let mut names = vec![t.work_queue(), t.dead_queue()];
        names.extend(t.delay_tiers.iter().map(|d| t.delay_queue(*d)));
        for name in names {
            let _ = channel.queue_delete(name.into(), Default::default()).await;
        }
    }
    let _ = conn.close(200, "bye".into()).await;
}

pub fn line_for<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"))
}

#[tokio::test]
async fn status_shows_last_result_times_and_the_reason_from_recorded_state() {
    let h = Harness::start(&["grafana", "redmine"]).await;
    let (code, out) = h.pma(&["status"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        "· grafana — never checked\n· redmine — never checked\n· sweep — never ran (does `pma-sso serve` run?)\n"
    );

    let (code, out) = h.pma(&["check", "grafana"]).await;
    assert_eq!(code, 1, "{out}");
    let requests = h.sim.requests().len();
    let (code, out) = h.pma(&["status"]).await;
    assert_eq!(code, 1, "red → exit 1: {out}");
    let red = line_for(&out, "❌ grafana — red, checked 20");
    assert!(
        red.contains(", changed never: authentik app missing"),
        "{red}"
    );
    assert_eq!(line_for(&out, "· redmine"), "· redmine — never checked");
    assert_eq!(
        h.sim.requests().len(),
        requests,
        "status never calls authentik"
    );

    let (code, out) = h.pma(&["fix", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = h.pma(&["check", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = h.pma(&["status"]).await;
    assert_eq!(code, 0, "{out}");
    let green = line_for(&out, "✓ grafana — green, checked 20");
    assert!(
        !green.contains("changed never"),
        "the fix changed it: {green}"
    );
    assert!(!green.contains("authentik app missing"), "{green}");

    let (code, out) = h.pma(&["--json", "status"]).await;
    assert_eq!(code, 0, "{out}");
    let status = crate::output::valid("status", &out);
    assert_eq!(status["sweep"], serde_json::Value::Null);
    let rows = &status["services"];
    assert_eq!(rows[0]["service"], "grafana");
    assert_eq!(rows[0]["result"], "green");
    assert!(rows[0]["checked_at"].is_string());
    assert!(rows[0]["changed_at"].is_string());
    assert_eq!(rows[1]["result"], "never checked");
    h.finish().await;
}

#[tokio::test]
async fn a_failed_sweep_is_forgotten_once_a_later_sweep_succeeds_and_status_shows_the_last_sweep() {
    let h = Harness::start(&["grafana"]).await;
    let (code, out) = h.pma(&["fix", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    // A setting the sweep refuses makes it fail, as an unreachable authentik would.
    h.set_env("PMA_SSO_PROBE", "sometimes");
    let (code, out) = h.pma(&["sweep"]).await;
    assert_eq!(code, 2, "{out}");
    let (code, out) = h.pma(&["status"]).await;
    assert_eq!(code, 0, "the sweep is no service: {out}");
    let sweep = line_for(&out, "! sweep — error, last ran 20");
    assert!(sweep.contains("failed: "), "{sweep}");
    assert!(sweep.contains("PMA_SSO_PROBE is `sometimes`"), "{sweep}");
    assert!(!out.contains("* —"), "no pseudo-service row: {out}");

    h.set_env("PMA_SSO_PROBE", "none");
    let (code, out) = h.pma(&["sweep"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = h.pma(&["status"]).await;
    assert_eq!(code, 0, "{out}");
    let sweep = line_for(&out, "✓ sweep — green, last ran 20");
    assert!(
        sweep.contains(": swept 1 services: 1 in sync, 0 drifted, 0 errors"),
        "{sweep}"
    );
    assert!(sweep.contains(", took "), "{sweep}");
    assert!(!out.contains("sometimes"), "the old error is gone: {out}");
    let rows: i64 = sqlx::query_scalar("select count(*) from service_state where service = '*'")
        .fetch_one(&h.pool)
        .await
        .expect("count");
    assert_eq!(rows, 0);
    h.finish().await;
}

#[tokio::test]
async fn status_shows_only_services_with_a_manifest_and_a_typo_is_an_error_of_its_command() {
    let h = Harness::start(&["grafana", "redmine"]).await;
    for name in ["grafana", "redmine"] {
        let (code, out) = h.pma(&["fix", name]).await;
        assert_eq!(code, 0, "{out}");
    }
    // A typo is refused before anything is recorded.
    let (code, out) = h.pma(&["check", "zzz"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("error: no service `zzz`: "), "{out}");
    assert!(out.contains("(services: grafana, redmine)"), "{out}");
    let jobs: i64 = sqlx::query_scalar("select count(*) from jobs where service = 'zzz'")
        .fetch_one(&h.pool)
        .await
        .expect("count");
    assert_eq!(jobs, 0);

    // redmine goes red, then its manifest is removed: it is no longer shown or counted.
    h.sim.patch_provider(
        "pma-sso-redmine",
        serde_json::json!({"redirect_uris": [{"matching_mode": "strict", "url": "https://old.example/cb"}]}),
    );
    let (code, out) = h.pma(&["check", "redmine"]).await;
    assert_eq!(code, 1, "{out}");
    let (code, out) = h.pma(&["status"]).await;
    assert_eq!(code, 1, "{out}");
    h.remove_package("redmine");
    let (code, out) = h.pma(&["status"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("redmine"), "{out}");
    line_for(&out, "✓ grafana — green");
    h.finish().await;
}
