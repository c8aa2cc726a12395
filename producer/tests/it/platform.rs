//! All twelve bundled services against every stand-in: inline, and through the job pipeline
//! with a worker running.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use testkit::PlatformSim;
use testkit::pg::TestDb;
use tokio_util::sync::CancellationToken;
use worker::pipeline::worker::{Health, Worker};
use worker::pipeline::{PipelineSettings, db};

use crate::cli::{ALL, TOKEN, copy_package};

struct Setup {
    sim: PlatformSim,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let sim = PlatformSim::start(TOKEN).await;
    let dir = tempfile::tempdir().expect("tmp");
    for s in ALL {
        copy_package(s, dir.path());
    }
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "DOMAIN=example.org\nAUTHENTIK_TOKEN={TOKEN}\nPMA_SSO_EXEC_RUNNER=true\n{}",
            sim.env_lines()
        ),
    )
    .expect("env");
    Setup { sim, dir }
}

async fn pma(dir: &Path, extra_env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PMA_SSO_ENV_FILE", dir.join(".env"));
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().await.expect("run pma-sso");
    assert!(!String::from_utf8_lossy(&stderr).contains("panicked"));
    (
        status.code().expect("exit code"),
        String::from_utf8_lossy(&stdout).into_owned(),
    )
}

fn assert_twelve_green(out: &str) {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 12, "{out}");
    for (line, service) in lines.iter().zip(ALL) {
        assert!(line.starts_with(&format!("✓ {service} (")), "{line}");
    }
    assert!(
        out.contains("✓ zammad (saml) — authentik app present, signing cert matches"),
        "{out}"
    );
    assert!(
        out.contains("✓ uptime-kuma (proxy) — authentik app present, outpost serves it"),
        "{out}"
    );
    assert!(
        out.contains("✓ grafana (oidc) — authentik app present, redirects match"),
        "{out}"
    );
}

#[tokio::test]
async fn inline_fix_all_then_check_prints_twelve_green_lines() {
    let s = setup().await;
    let (code, out) = pma(s.dir.path(), &[], &["--inline", "fix-all"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = pma(s.dir.path(), &[], &["--inline", "check"]).await;
    assert_eq!(code, 0, "{out}");
    assert_twelve_green(&out);
    assert!(s.sim.authentik.schema_violations().is_empty());
}

fn pipeline_env(db: &TestDb, prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.url.clone()),
        ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
        ("PMA_SSO_QUEUE_PREFIX", prefix.into()),
        ("PMA_SSO_QUEUE_EXPIRES", "600s".into()),
        ("PMA_SSO_DELAY_TIERS", "200ms,1s".into()),
    ]
}

#[tokio::test]
async fn through_the_queue_a_running_worker_turns_twelve_services_green() {
    let s = setup().await;
    let test_db = TestDb::new().await;
    let prefix = format!("pma-sso-cli-{}", uuid_suffix());
    let env = pipeline_env(&test_db, &prefix);
    let lookup = |key: &str| env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
    let mut pipeline = PipelineSettings::from_lookup(&lookup).expect("settings");
    pipeline.http_addr = None;
    let pool = db::connect(&pipeline.database_url, pipeline.concurrency)
        .await
        .expect("db");
    db::migrate(&pool).await.expect("migrate");

    let settings = worker::Settings::from_lookup(&|key| match key {
        "PMA_SSO_ENV_FILE" => Some(s.dir.path().join(".env").display().to_string()),
        _ => None,
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

    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, out) = pma(s.dir.path(), &env_refs, &["fix-all"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = pma(s.dir.path(), &env_refs, &["check"]).await;
    assert_eq!(code, 0, "{out}");
    assert_twelve_green(&out);
    let jobs: i64 = sqlx_count(&pool).await;
    assert_eq!(jobs, 24, "12 fix jobs and 12 check jobs recorded");

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), running).await;
    delete_queues(&pipeline).await;
}

#[tokio::test]
async fn without_a_worker_the_cli_gives_up_with_a_clear_message() {
    let s = setup().await;
    let test_db = TestDb::new().await;
    let prefix = format!("pma-sso-cli-{}", uuid_suffix());
    let env = pipeline_env(&test_db, &prefix);
    let mut env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env_refs.push(("PMA_SSO_LOG", "error"));
    let (code, out) = pma(
        s.dir.path(),
        &env_refs,
        &["--pickup-timeout", "1", "check", "grafana"],
    )
    .await;
    assert_eq!(code, 2, "{out}");
    assert_eq!(
        out,
        "error: no worker picked up 1 job(s) within 1s; is pma-sso-worker running?\n"
    );
    let lookup = |key: &str| env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
    delete_queues(&PipelineSettings::from_lookup(&lookup).expect("settings")).await;
}

async fn sqlx_count(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(pool)
        .await
        .expect("count")
}

fn uuid_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn delete_queues(settings: &PipelineSettings) {
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
