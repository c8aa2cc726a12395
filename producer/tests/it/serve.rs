//! `pma-sso serve`: its settings, the sweep leader, and a shared pipeline harness for the
//! webhook and sweep tests (a database of its own, uuid-named queues deleted at the end).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use producer::serve::leader::{Leader, LeaderLock};
use testkit::pg::TestDb;
use tokio_util::sync::CancellationToken;
use worker::pipeline::client::JobClient;
use worker::pipeline::queue::{self, Publisher};
use worker::pipeline::{PipelineSettings, db};

pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A test's own database and queues.
pub struct Pipeline {
    pub db: TestDb,
    pub settings: PipelineSettings,
    pub jobs: Arc<JobClient>,
}

/// One recorded job, as the tests look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    pub service: String,
    pub action: String,
    pub trigger: String,
    pub trigger_ref: Option<String>,
    pub status: String,
}

impl Pipeline {
    pub async fn start() -> Pipeline {
        let db = TestDb::new().await;
        let mut settings = PipelineSettings::from_lookup(&|_| None).expect("defaults");
        settings.database_url = db.url.clone();
        settings.amqp_url = AMQP.into();
        settings.queue_prefix = format!("pma-sso-serve-{}", uuid::Uuid::new_v4().simple());
        settings.queue_expires = Some(Duration::from_secs(600));
        settings.http_addr = None;
        let jobs = Arc::new(JobClient::connect(&settings).await.expect("job client"));
        Pipeline { db, settings, jobs }
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.jobs.db
    }

    pub async fn publisher(&self) -> (lapin::Connection, Publisher) {
        let conn = queue::connect(AMQP).await.expect("broker");
        let publisher = Publisher::new(&conn).await.expect("publisher");
        (conn, publisher)
    }

    /// Every job row, oldest first.
    pub async fn jobs(&self) -> Vec<JobView> {
        let rows: Vec<(String, String, String, Option<String>, String)> = sqlx::query_as(
            "select service, action, trigger, trigger_ref, status from jobs order by created_at, service",
        )
        .fetch_all(self.pool())
        .await
        .expect("jobs");
        rows.into_iter()
            .map(|(service, action, trigger, trigger_ref, status)| JobView {
                service,
                action,
                trigger,
                trigger_ref,
                status,
            })
            .collect()
    }

    /// Delete this test's queues (they also expire on their own if the test dies).
    pub async fn finish(self) {
        let t = self.settings.topology();
        if let Ok(conn) = queue::connect(AMQP).await {
            if let Ok(channel) = conn.create_channel().await {
                let mut names = vec![t.work_queue(), t.dead_queue()];
                names.extend(t.delay_tiers.iter().map(|d| t.delay_queue(*d)));
                for name in names {
                    let _ = channel.queue_delete(name.into(), Default::default()).await;
                }
            }
            let _ = conn.close(200, "bye".into()).await;
        }
        self.jobs.db.close().await;
    }
}

/// Packages of the given bundled services in a temporary directory, and a `.env`.
pub fn platform_dir(services: &[&str], env: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    for s in services {
        crate::cli::copy_package(s, dir.path());
    }
    std::fs::write(dir.path().join(".env"), env).expect("env");
    dir
}

pub fn context(dir: &Path) -> worker::Context {
    let env = dir.join(".env").display().to_string();
    let settings = worker::Settings::from_lookup(&move |key| match key {
        "PMA_SSO_ENV_FILE" => Some(env.clone()),
        _ => None,
    })
    .expect("settings");
    worker::Context::new(settings).expect("context")
}

#[tokio::test]
async fn serve_refuses_to_start_without_a_webhook_secret() {
    let dir = platform_dir(
        &["grafana"],
        "DOMAIN=example.org\nAUTHENTIK_URL=http://127.0.0.1:9\nAUTHENTIK_TOKEN=t\n",
    );
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PMA_SSO_ENV_FILE", dir.path().join(".env"))
        .output()
        .await
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("PMA_SSO_WEBHOOK_SECRET is not set"),
        "{stdout}"
    );
}

#[test]
fn a_bad_sweep_schedule_is_named() {
    let err = producer::serve::ServeSettings::from_lookup(&|k| match k {
        "PMA_SSO_WEBHOOK_SECRET" => Some("s3cret".into()),
        "PMA_SSO_SWEEP_CRON" => Some("every now and then".into()),
        _ => None,
    })
    .expect_err("bad cron");
    assert!(err.starts_with("PMA_SSO_SWEEP_CRON is invalid"), "{err}");
    let ok = producer::serve::ServeSettings::from_lookup(&|k| {
        (k == "PMA_SSO_WEBHOOK_SECRET").then(|| "s3cret".into())
    })
    .expect("defaults");
    assert_eq!(ok.webhook_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(ok.sweep_cron.pattern.to_string(), "*/15 * * * *");
}

#[tokio::test]
async fn only_one_serve_leads_and_a_follower_takes_over_when_it_goes() {
    let db = TestDb::new().await;
    let first = LeaderLock::try_acquire(&db.url)
        .await
        .expect("db")
        .expect("the first leads");
    assert!(
        LeaderLock::try_acquire(&db.url)
            .await
            .expect("db")
            .is_none(),
        "a second serve must follow"
    );
    first.release().await;
    let second = LeaderLock::try_acquire(&db.url).await.expect("db");
    assert!(
        second.is_some(),
        "the follower leads once the leader is gone"
    );
    if let Some(lock) = second {
        lock.release().await;
    }
}

#[tokio::test]
async fn the_leader_enqueues_the_sweep_on_its_schedule() {
    let p = Pipeline::start().await;
    // Migrations ran in JobClient::connect; make sure the jobs table is empty.
    db::migrate(p.pool()).await.expect("migrate");
    let stop = CancellationToken::new();
    let leader = |jobs| Leader {
        database_url: p.db.url.clone(),
        cron: producer::serve::parse_cron("* * * * * *").expect("every second"),
        retry: Duration::from_millis(200),
        jobs,
    };
    let a = tokio::spawn(leader(p.jobs.clone()).run(stop.clone()));
    let b = tokio::spawn(leader(p.jobs.clone()).run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(2600)).await;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), a).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), b).await;
    let jobs = p.jobs().await;
    assert!(!jobs.is_empty(), "no sweep was enqueued");
    for job in &jobs {
        assert_eq!(
            (
                job.service.as_str(),
                job.action.as_str(),
                job.trigger.as_str()
            ),
            ("*", "sweep", "cron")
        );
    }
    // No worker runs, so ticks after the first coalesce into the one waiting sweep; two
    // leaders would still make only one (the lock), never two waiting sweeps.
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    p.finish().await;
}

#[tokio::test]
async fn serve_receives_webhooks_and_stops_cleanly_on_sigterm() {
    let sim = testkit::AuthentikSim::new(crate::cli::TOKEN).start().await;
    let dir = platform_dir(
        &["grafana"],
        &format!(
            "DOMAIN=example.org\nAUTHENTIK_URL={}\nAUTHENTIK_TOKEN={}\nPMA_SSO_WEBHOOK_SECRET=s3cret-s3cret\n",
            sim.base_url(),
            crate::cli::TOKEN
        ),
    );
    let p = Pipeline::start().await;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
        probe.local_addr().expect("addr").port()
    };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PMA_SSO_ENV_FILE", dir.path().join(".env"))
        .env("DATABASE_URL", &p.db.url)
        .env("AMQP_URL", AMQP)
        .env("PMA_SSO_QUEUE_PREFIX", &p.settings.queue_prefix)
        .env("PMA_SSO_QUEUE_EXPIRES", "600s")
        .env("PMA_SSO_WEBHOOK_ADDR", format!("127.0.0.1:{port}"))
        .env("PMA_SSO_AUTHENTIK_USER", "pma-sso")
        .env("PMA_SSO_STATUS_ADDR", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    // The start-up line names where the status page listens (its own, ephemeral port).
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut banner = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut banner),
    )
    .await
    .expect("serve starts within 30s")
    .expect("banner");
    let status_url = banner
        .split("status page on ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no status page address in {banner:?}"))
        .to_owned();
    let url = format!("http://127.0.0.1:{port}/webhooks/authentik");
    let body = serde_json::json!({"event_uuid": "1b2c3d4e-0000-4000-8000-000000000001",
        "action": "model_updated", "model_app": "authentik_core", "model_name": "application",
        "model_pk": "00000000000040008000000000000001", "object_name": "Grafana", "event_user": "akadmin"});
    let http = reqwest::Client::new();
    let mut status = None;
    for _ in 0..100 {
        match http
            .post(&url)
            .header("X-PMA-SSO-Token", "s3cret-s3cret")
            .json(&body)
            .send()
            .await
        {
            Ok(r) => {
                status = Some(r.status());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(status, Some(reqwest::StatusCode::OK));
    let page = http.get(&status_url).send().await.expect("status page");
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    let page = page.text().await.expect("page");
    assert!(page.contains("data-service=\"grafana\""), "{page}");
    // HTTP metrics are labelled by route template, never by raw path or service slug.
    let _ = http
        .get(format!("{status_url}history/grafana"))
        .send()
        .await
        .expect("history");
    let _ = http
        .get(format!("{status_url}no/such/path"))
        .send()
        .await
        .expect("404");
    let metrics = http
        .get(format!("{status_url}metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains("route=\"/webhooks/authentik\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("route=\"/history/{service}\""),
        "{metrics}"
    );
    assert!(
        !metrics.contains("/history/grafana") && !metrics.contains("no/such/path"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pma_sso_http_request_duration_seconds"),
        "{metrics}"
    );
    let jobs = p.jobs().await;
    assert_eq!(
        jobs.iter()
            .filter(|j| j.action != "sweep")
            .map(|j| (j.service.as_str(), j.action.as_str(), j.trigger.as_str()))
            .collect::<Vec<_>>(),
        [("grafana", "check", "webhook")]
    );
    assert!(
        jobs.iter().any(|j| j.action == "sweep"
            && j.trigger_ref.as_deref() == Some(producer::serve::leader::START_REF)),
        "serve swept at start: {jobs:?}"
    );
    // SIGTERM, as `docker compose stop` sends it.
    let exit = testkit::process::sigterm(&mut child, Duration::from_secs(15))
        .await
        .expect("serve stops within 15s");
    assert_eq!(exit.code(), Some(0));
    p.finish().await;
}

#[tokio::test]
async fn a_new_leader_sweeps_at_once_instead_of_waiting_for_the_schedule() {
    let p = Pipeline::start().await;
    let stop = CancellationToken::new();
    let leader = Leader {
        database_url: p.db.url.clone(),
        // Once a year: only the start-up sweep can appear within this test.
        cron: producer::serve::parse_cron("0 0 1 1 *").expect("yearly"),
        retry: Duration::from_millis(200),
        jobs: p.jobs.clone(),
    };
    let running = tokio::spawn(leader.run(stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut jobs = p.jobs().await;
    while jobs.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        jobs = p.jobs().await;
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), running).await;
    assert_eq!(
        jobs,
        [JobView {
            service: "*".into(),
            action: "sweep".into(),
            trigger: "cron".into(),
            trigger_ref: Some(producer::serve::leader::START_REF.into()),
            status: "queued".into(),
        }],
        "one sweep at start"
    );
    p.finish().await;
}

/// A stack started before `pma-sso init`: no `AUTHENTIK_TOKEN`. serve must not exit (compose
/// would restart it in a loop): it stays alive, is not ready, says which command to run, and
/// stops cleanly on SIGTERM.
#[tokio::test]
async fn serve_without_a_token_waits_alive_and_not_ready_naming_init() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let dir = platform_dir(
        &["grafana"],
        &format!(
            "DOMAIN=example.org\nAUTHENTIK_URL=http://127.0.0.1:9\nAUTHENTIK_TOKEN=\nPMA_SSO_WEBHOOK_ADDR=127.0.0.1:{port}\n"
        ),
    );
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PMA_SSO_ENV_FILE", dir.path().join(".env"))
        .env("PMA_SSO_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn serve");
    let base = format!("http://127.0.0.1:{port}");
    let start = std::time::Instant::now();
    let health = loop {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve never answered /healthz"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    let body = ready.text().await.expect("body");
    assert!(body.contains("AUTHENTIK_TOKEN is not set"), "{body}");
    assert!(body.contains("pma-sso init"), "{body}");
    // Still waiting a few polls later, not exited.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "serve exited"
    );
    let status = testkit::process::sigterm(&mut child, Duration::from_secs(10))
        .await
        .expect("serve stops on SIGTERM");
    assert_eq!(status.code(), Some(0));
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        use tokio::io::AsyncReadExt;
        pipe.read_to_string(&mut stdout).await.expect("stdout");
    }
    assert!(
        stdout.contains("waiting: AUTHENTIK_TOKEN is not set"),
        "{stdout}"
    );
}
