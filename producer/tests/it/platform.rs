//! All twelve bundled services against every stand-in: inline, and through the job pipeline
//! with a worker running.

use std::path::Path;
use std::process::Output;

use testkit::PlatformSim;
use testkit::pg::TestDb;
use worker::pipeline::PipelineSettings;

use crate::cli::{ALL, TOKEN};
use crate::status::{Harness, Options, delete_queues};

struct Setup {
    sim: PlatformSim,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let sim = PlatformSim::start(TOKEN).await;
    let dir = crate::serve::platform_dir(
        &ALL,
        &format!(
            "DOMAIN=example.org\nAUTHENTIK_TOKEN={TOKEN}\nPMA_SSO_EXEC_RUNNER=true\n{}",
            sim.env_lines()
        ),
    );
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
    let sim = PlatformSim::start(TOKEN).await;
    let dot_env = sim.env_lines();
    let h = Harness::with(
        sim,
        &ALL,
        Options {
            dot_env,
            queue_tag: "cli",
            env: Vec::new(),
        },
    )
    .await;
    let (code, out) = h.pma(&["fix-all"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = h.pma(&["check"]).await;
    assert_eq!(code, 0, "{out}");
    assert_twelve_green(&out);
    let jobs: i64 = sqlx_count(&h.pool).await;
    assert_eq!(jobs, 24, "12 fix jobs and 12 check jobs recorded");
    h.finish().await;
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
