//! The git hook: a commit that changes a manifest's `sso` block records the right job — also
//! with the broker down (the row waits for the relay) and with the database down too (the
//! request waits in the spool until `enqueue --replay-spool`). The commit always succeeds.

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::pg::TestDb;
use worker::pipeline::{PipelineSettings, db};

use crate::cli::copy_package;
use crate::status::delete_queues;

struct Repo {
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl Repo {
    /// `repo/` with grafana (configured) and redmine (not configured) committed, a `.env`
    /// beside it, and the hook not yet installed.
    fn new(database_url: &str, amqp_url: &str, prefix: &str) -> Repo {
        let dir = tempfile::tempdir().expect("tmp");
        let repo = dir.path().join("repo");
        copy_package("grafana", &repo);
        copy_package("redmine", &repo);
        edit(
            &repo.join("packages/grafana/manifest.yaml"),
            "configured: false",
            "configured: true",
        );
        std::fs::write(dir.path().join(".env"), "DOMAIN=example.org\n").expect("env");
        let env = vec![
            ("DATABASE_URL", database_url.to_owned()),
            ("AMQP_URL", amqp_url.to_owned()),
            ("PMA_SSO_QUEUE_PREFIX", prefix.to_owned()),
            ("PMA_SSO_QUEUE_EXPIRES", "600s".to_owned()),
            (
                "PMA_SSO_ENV_FILE",
                dir.path().join(".env").display().to_string(),
            ),
            ("PMA_SSO_LOG", "off".to_owned()),
        ];
        let r = Repo { dir, env };
        r.git(&["init", "-q", "-b", "main"]);
        r.git(&["add", "packages"]);
        r.git(&["commit", "-q", "-m", "packages"]);
        r
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.org")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.org");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Run git; it must succeed. Returns stdout + stderr (the hook's lines).
    fn git(&self, args: &[&str]) -> String {
        let out = self.command("git").args(args).output().expect("git");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "git {args:?} failed: {text}");
        assert!(!text.contains("panicked"), "{text}");
        text
    }

    fn pma(&self, args: &[&str]) -> (i32, String) {
        let out = self
            .command(env!("CARGO_BIN_EXE_pma-sso"))
            .args(args)
            .output()
            .expect("pma-sso");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
        (
            out.status.code().expect("code"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    fn install(&self) -> String {
        let repo = self.path().display().to_string();
        let (code, out) = self.pma(&["git-hook", "install", "--repo", &repo]);
        assert_eq!(code, 0, "{out}");
        out
    }

    /// Change both redirect paths and commit.
    fn commit_redirect_changes(&self) -> String {
        edit(
            &self.path().join("packages/grafana/manifest.yaml"),
            "redirect_path: /login/generic_oauth",
            "redirect_path: /login/generic_oauth2",
        );
        edit(
            &self.path().join("packages/redmine/manifest.yaml"),
            "redirect_path: /oauth2callback",
            "redirect_path: /oauth2/callback",
        );
        self.git(&["commit", "-q", "-am", "new redirect paths"])
    }

    fn spooled(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path().join(".pma-sso/spool"))
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{from} in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn prefix() -> String {
    format!("pma-sso-hook-{}", uuid::Uuid::new_v4().simple())
}

async fn git_jobs(url: &str) -> Vec<(String, String, String, String, Option<String>)> {
    let pool = db::connect(url, 1).await.expect("db");
    db::migrate(&pool).await.expect("migrate");
    let rows: Vec<(String, String, String, String, Option<String>)> = sqlx::query_as(
        "select service, action, trigger, status, trigger_ref from jobs where trigger = 'git' order by service",
    )
    .fetch_all(&pool)
    .await
    .expect("jobs");
    pool.close().await;
    rows
}

fn assert_expected_jobs(rows: &[(String, String, String, String, Option<String>)]) {
    let summary: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(s, a, t, _, _)| (s.as_str(), a.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        summary,
        [("grafana", "fix", "git"), ("redmine", "add", "git")],
        "fix for the configured service, add for the unconfigured one"
    );
    for (_, _, _, _, range) in rows {
        let range = range.as_deref().expect("trigger_ref");
        let (from, to) = range.split_once("..").expect("a range");
        assert!(from.len() == 12 && to.len() == 12, "{range}");
    }
}

async fn cleanup_queues(prefix: &str) {
    let lookup = |key: &str| match key {
        "PMA_SSO_QUEUE_PREFIX" => Some(prefix.to_owned()),
        _ => None,
    };
    delete_queues(&PipelineSettings::from_lookup(&lookup).expect("settings")).await;
}

#[tokio::test]
async fn a_commit_changing_sso_records_fix_for_configured_and_add_for_unconfigured() {
    let db = TestDb::new().await;
    let prefix = prefix();
    let repo = Repo::new(&db.url, BROKER, &prefix);
    // A hook that was there before is kept and still runs, once, also after a re-install.
    let hooks = repo.path().join(".git/hooks");
    std::fs::write(
        hooks.join("post-commit"),
        "#!/bin/sh\necho ran >> \"$(git rev-parse --git-dir)/prior-hook-ran\"\n",
    )
    .expect("hook");
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(hooks.join("post-commit"))
        .status()
        .expect("chmod");
    let out = repo.install();
    assert!(
        out.contains("post-commit: installed; the existing hook runs first"),
        "{out}"
    );
    let out = repo.install();
    assert!(out.contains("post-commit: refreshed"), "idempotent: {out}");
    assert!(hooks.join("post-commit.pre-pma-sso").exists());

    let out = repo.commit_redirect_changes();
    assert!(
        out.contains("pma-sso: queued fix for grafana (job "),
        "{out}"
    );
    assert!(
        out.contains("pma-sso: queued add for redmine (job "),
        "{out}"
    );
    let rows = git_jobs(&db.url).await;
    assert_expected_jobs(&rows);
    assert!(rows.iter().all(|r| r.3 == "queued"));
    let prior = std::fs::read_to_string(repo.path().join(".git/prior-hook-ran")).expect("ran");
    assert_eq!(prior, "ran\n", "the kept hook ran exactly once");

    // A change outside `sso` queues nothing new; a removed manifest is only reported.
    edit(
        &repo.path().join("packages/grafana/manifest.yaml"),
        "display_name: Grafana",
        "display_name: Grafana Dashboards",
    );
    let out = repo.git(&["commit", "-q", "-am", "rename"]);
    assert!(!out.contains("pma-sso: queued"), "{out}");
    let out = repo.git(&["rm", "-q", "-r", "packages/redmine"]);
    assert!(out.is_empty(), "{out}");
    let out = repo.git(&["commit", "-q", "-m", "drop redmine"]);
    assert!(
        out.contains("pma-sso: packages/redmine removed: its authentik objects are left alone; see `pma-sso orphans`"),
        "{out}"
    );
    assert_eq!(git_jobs(&db.url).await.len(), 2);
    cleanup_queues(&prefix).await;
}

#[tokio::test]
async fn with_the_broker_unreachable_the_commit_succeeds_and_the_job_rows_wait_for_the_relay() {
    let db = TestDb::new().await;
    let broker = format!("amqp://guest:guest@127.0.0.1:{}/%2f", closed_port());
    let repo = Repo::new(&db.url, &broker, &prefix());
    repo.install();
    let out = repo.commit_redirect_changes();
    assert!(
        out.contains("pma-sso: recorded fix for grafana (job "),
        "{out}"
    );
    let rows = git_jobs(&db.url).await;
    assert_expected_jobs(&rows);
    assert!(rows.iter().all(|r| r.3 == "queued"), "{rows:?}");
    assert!(repo.spooled().is_empty());
}

#[tokio::test]
async fn with_database_and_broker_unreachable_requests_are_spooled_then_replayed() {
    let db = TestDb::new().await;
    let port = closed_port();
    let nowhere_db = format!("postgres://postgres@127.0.0.1:{port}/nothing");
    let nowhere_broker = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let mut repo = Repo::new(&nowhere_db, &nowhere_broker, &prefix());
    repo.install();
    let started = std::time::Instant::now();
    let out = repo.commit_redirect_changes();
    assert!(started.elapsed().as_secs() < 15, "the hook stays quick");
    assert!(
        out.contains("pma-sso: spooled fix for grafana in "),
        "{out}"
    );
    let spooled = repo.spooled();
    assert_eq!(spooled.len(), 2, "{spooled:?}");
    assert!(
        spooled
            .iter()
            .all(|p| p.extension().is_some_and(|e| e == "json"))
    );

    // The database is back (the broker still is not): replay records both jobs.
    repo.env[0].1 = db.url.clone();
    let (code, out) = repo.pma(&["enqueue", "--replay-spool"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("(replayed from the spool)").count(), 2, "{out}");
    assert_expected_jobs(&git_jobs(&db.url).await);
    assert!(repo.spooled().is_empty());
    let (code, out) = repo.pma(&["enqueue", "--replay-spool"]);
    assert_eq!((code, out.as_str()), (0, ""), "nothing left to replay");
    assert_eq!(git_jobs(&db.url).await.len(), 2);
}

async fn git_job_count(url: &str) -> usize {
    git_jobs(url).await.len()
}

#[tokio::test]
async fn a_commit_on_a_feature_branch_queues_nothing_and_the_deploy_branch_is_settable() {
    let db = TestDb::new().await;
    let prefix = prefix();
    let mut repo = Repo::new(&db.url, BROKER, &prefix);
    let out = repo.install();
    assert!(out.contains("commits on main reach authentik"), "{out}");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    let out = repo.commit_redirect_changes();
    assert!(
        out.contains("pma-sso: feature is not the deploy branch (main): nothing queued"),
        "{out}"
    );
    assert!(!out.contains("pma-sso: queued"), "{out}");
    assert_eq!(git_job_count(&db.url).await, 0, "production untouched");

    // Merged into the deploy branch: now it counts.
    repo.git(&["checkout", "-q", "main"]);
    let out = repo.git(&["merge", "-q", "--ff-only", "feature"]);
    assert!(out.contains("pma-sso: queued fix for grafana"), "{out}");
    assert_expected_jobs(&git_jobs(&db.url).await);

    // PMA_SSO_DEPLOY_BRANCH names another branch: main no longer counts.
    repo.env
        .push(("PMA_SSO_DEPLOY_BRANCH", "release".to_owned()));
    edit(
        &repo.path().join("packages/grafana/manifest.yaml"),
        "redirect_path: /login/generic_oauth2",
        "redirect_path: /login/generic_oauth3",
    );
    let out = repo.git(&["commit", "-q", "-am", "on main"]);
    assert!(
        out.contains("main is not the deploy branch (release)"),
        "{out}"
    );
    assert_eq!(git_job_count(&db.url).await, 2);
    cleanup_queues(&prefix).await;
}

#[tokio::test]
async fn an_amend_and_a_rebase_each_queue_one_request_per_service() {
    let db = TestDb::new().await;
    let prefix = prefix();
    let repo = Repo::new(&db.url, BROKER, &prefix);
    repo.install();
    repo.commit_redirect_changes();
    // The first jobs ran, so nothing waits to coalesce into.
    let pool = db::connect(&db.url, 1).await.expect("db");
    sqlx::query("update jobs set status = 'succeeded', finished_at = now()")
        .execute(&pool)
        .await
        .expect("finish");
    edit(
        &repo.path().join("packages/grafana/manifest.yaml"),
        "redirect_path: /login/generic_oauth2",
        "redirect_path: /login/generic_oauth3",
    );
    let out = repo.git(&["commit", "-q", "-a", "--amend", "--no-edit"]);
    let requests = |out: &str, svc: &str| {
        out.lines()
            .filter(|l| l.starts_with("pma-sso: ") && l.contains(&format!(" for {svc}")))
            .count()
    };
    assert_eq!(
        requests(&out, "grafana"),
        1,
        "one request per service: {out}"
    );
    assert_eq!(
        requests(&out, "redmine"),
        1,
        "one request per service: {out}"
    );

    // A rebase onto a branch that adds gitea: the replayed commit (detached HEAD) queues
    // nothing; post-rewrite queues what the rebase changed on the branch, once.
    sqlx::query("update jobs set status = 'succeeded', finished_at = now()")
        .execute(&pool)
        .await
        .expect("finish");
    repo.git(&["checkout", "-q", "-b", "side", "HEAD~1"]);
    copy_package("gitea", &repo.path());
    repo.git(&["add", "packages/gitea"]);
    repo.git(&["commit", "-q", "-m", "gitea"]);
    repo.git(&["checkout", "-q", "main"]);
    let out = repo.git(&["rebase", "-q", "side"]);
    assert_eq!(requests(&out, "gitea"), 1, "{out}");
    assert_eq!(requests(&out, "grafana"), 0, "not replayed: {out}");
    assert_eq!(requests(&out, "redmine"), 0, "not replayed: {out}");
    pool.close().await;
    cleanup_queues(&prefix).await;
}

#[tokio::test]
async fn a_normal_commit_logs_no_error_line() {
    let db = TestDb::new().await;
    let prefix = prefix();
    let mut repo = Repo::new(&db.url, BROKER, &prefix);
    // The default log level, as a committer's shell has it.
    repo.env.retain(|(k, _)| *k != "PMA_SSO_LOG");
    repo.install();
    let out = repo.commit_redirect_changes();
    assert!(out.contains("pma-sso: queued fix for grafana"), "{out}");
    assert!(!out.contains("ERROR"), "{out}");
    assert!(!out.contains("WARN"), "{out}");
    cleanup_queues(&prefix).await;
}

#[tokio::test]
async fn a_git_job_reconciles_the_manifest_as_committed_not_the_working_copy() {
    let sim = testkit::AuthentikSim::new(crate::cli::TOKEN).start().await;
    let db = TestDb::new().await;
    let repo = Repo::new(&db.url, BROKER, &prefix());
    std::fs::write(
        repo.dir.path().join(".env"),
        format!(
            "DOMAIN=example.org\nAUTHENTIK_URL={}\nAUTHENTIK_TOKEN={}\nPMA_SSO_EXEC_RUNNER=true\nPMA_SSO_PACKAGES={}\n",
            sim.base_url(),
            crate::cli::TOKEN,
            repo.path().join("packages").display()
        ),
    )
    .expect("env");
    let committed = String::from_utf8(
        repo.command("git")
            .args(["rev-parse", "HEAD"])
            .output()
            .expect("rev-parse")
            .stdout,
    )
    .expect("utf8")
    .trim()
    .to_owned();
    // A feature branch's change sits in the working tree, uncommitted on the deploy branch.
    edit(
        &repo.path().join("packages/grafana/manifest.yaml"),
        "redirect_path: /login/generic_oauth",
        "redirect_path: /feature/callback",
    );
    let ctx = crate::serve::context(repo.dir.path());
    let applied = ctx
        .apply_at("grafana", schemas::job::Action::Fix, Some(&committed))
        .await
        .expect("apply");
    let provider = sim.provider_by_name("pma-sso-grafana").expect("provider");
    let uris = provider["redirect_uris"].to_string();
    assert!(uris.contains("/login/generic_oauth"), "{uris}");
    assert!(!uris.contains("/feature/callback"), "{uris}");
    assert!(
        applied
            .actions
            .iter()
            .any(|a| a.contains("as committed in") && a.contains("left alone")),
        "{:?}",
        applied.actions
    );
    let text = std::fs::read_to_string(repo.path().join("packages/grafana/manifest.yaml"))
        .expect("manifest");
    assert!(text.contains("/feature/callback"), "working tree untouched");

    // A commit that does not hold the manifest is a clear error naming it.
    let err = ctx
        .apply_at("gitea", schemas::job::Action::Fix, Some(&committed))
        .await
        .expect_err("no such manifest in the commit");
    assert!(err.to_string().contains("gitea"), "{err}");
    assert!(err.to_string().contains(&committed), "{err}");
}

#[tokio::test]
async fn a_waiting_git_job_takes_the_newer_commit() {
    let db = TestDb::new().await;
    let prefix = prefix();
    let repo = Repo::new(&db.url, BROKER, &prefix);
    repo.install();
    repo.commit_redirect_changes();
    let first = git_jobs(&db.url).await[0].4.clone().expect("ref");
    edit(
        &repo.path().join("packages/grafana/manifest.yaml"),
        "redirect_path: /login/generic_oauth2",
        "redirect_path: /login/generic_oauth3",
    );
    let out = repo.git(&["commit", "-q", "-am", "again"]);
    assert!(
        out.contains("fix for grafana joined the waiting job"),
        "{out}"
    );
    let rows = git_jobs(&db.url).await;
    let grafana = rows.iter().find(|r| r.0 == "grafana").expect("grafana");
    let newer = grafana.4.clone().expect("ref");
    assert_ne!(newer, first, "the waiting job names the newer commit");
    let head = repo.git(&["rev-parse", "HEAD"]);
    assert!(
        head.starts_with(newer.split_once("..").expect("range").1),
        "{newer} vs {head}"
    );
    cleanup_queues(&prefix).await;
}

#[tokio::test]
async fn serve_replays_the_spool_without_a_manual_step() {
    let db = TestDb::new().await;
    let port = closed_port();
    let prefix = prefix();
    let mut repo = Repo::new(
        &format!("postgres://postgres@127.0.0.1:{port}/nothing"),
        &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        &prefix,
    );
    repo.install();
    let out = repo.commit_redirect_changes();
    assert!(
        out.contains("pma-sso: spooled fix for grafana in "),
        "{out}"
    );
    assert_eq!(repo.spooled().len(), 2);

    // The database is back; nobody runs `enqueue`: `serve` records the spooled requests.
    repo.env[0].1 = db.url.clone();
    repo.env[1].1 = BROKER.to_owned();
    std::fs::write(
        repo.dir.path().join(".env"),
        "DOMAIN=example.org\nAUTHENTIK_URL=http://127.0.0.1:9\nAUTHENTIK_TOKEN=t\n\
         PMA_SSO_WEBHOOK_SECRET=s3cret-s3cret\nPMA_SSO_AUTHENTIK_USER=pma-sso\n",
    )
    .expect("env");
    let mut serve = tokio::process::Command::from(repo.command(env!("CARGO_BIN_EXE_pma-sso")));
    serve
        .arg("serve")
        .env("PMA_SSO_WEBHOOK_ADDR", "127.0.0.1:0")
        .env("PMA_SSO_STATUS_ADDR", "127.0.0.1:0")
        .env("PMA_SSO_RELAY_INTERVAL", "1s")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = serve.spawn().expect("serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while git_job_count(&db.url).await < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let rows = git_jobs(&db.url).await;
    let _ = testkit::process::sigterm(&mut child, std::time::Duration::from_secs(15)).await;
    assert_expected_jobs(&rows);
    assert!(repo.spooled().is_empty(), "{:?}", repo.spooled());
    cleanup_queues(&prefix).await;
}
