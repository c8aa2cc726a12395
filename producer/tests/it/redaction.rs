//! The operator's side run with recognisable secrets, low-entropy ones included (a Wiki.js admin
//! password `hunter2`, a Frappe API secret `admin123`): none may appear — nor an unkeyed SHA-256
//! of one — in what `pma-sso` prints (text and `--json`, logs at TRACE), in what `pma-sso
//! serve` logs, serves on its status page and exports on `/metrics`. Every command that writes
//! `.env` leaves it mode 0600.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use testkit::pg::TestDb;
use testkit::secrets::{assert_no_secret, file_mode};
use testkit::{FrappeSim, WikijsSim};
use tokio_util::sync::CancellationToken;
use worker::envfile::EnvFile;
use worker::pipeline::worker::{Health, Worker};
use worker::pipeline::{PipelineSettings, db};

use crate::cli::{TOKEN, copy_package};
use crate::status::delete_queues;

const ADMIN_PASSWORD: &str = "hunter2";
const FRAPPE_SECRET: &str = "admin123";
const FRAPPE_KEY: &str = "erpkey-77aa10";
const GRAFANA_SECRET: &str = "RECOGNISABLE-grafana-secret-2c4d";
const WEBHOOK_SECRET: &str = "RECOGNISABLE-webhook-secret-90ab";
const STATUS_TOKEN: &str = "RECOGNISABLE-status-token-e3f1";
const AUTHENTIK_SIDE: &str = "authentik-side-value-5b6c";
const DB_PASSWORD: &str = "hunter2-db";
const AMQP_PASSWORD: &str = "hunter2-mq";

fn loosen(path: &Path) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
}

struct Ops {
    authentik: testkit::SimHandle,
    wiki: testkit::WikijsHandle,
    _frappe: testkit::FrappeHandle,
    dir: tempfile::TempDir,
    db: TestDb,
    pipeline: Option<PipelineSettings>,
    env: Vec<(&'static str, String)>,
    /// Everything any command printed, for the final search.
    printed: String,
    worker: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Ops {
    fn env_path(&self) -> PathBuf {
        self.dir.path().join(".env")
    }

    fn env(&self, key: &str) -> Option<String> {
        EnvFile::read(&self.env_path())
            .expect(".env parses")
            .get(key)
            .map(str::to_owned)
    }

    /// Run `pma-sso` with logs at TRACE; returns the exit code and stdout. Both streams are
    /// kept for the search.
    async fn pma(&mut self, args: &[&str], extra: &[(&str, &str)]) -> (i32, String) {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PMA_SSO_ENV_FILE", self.env_path())
            .env("PMA_SSO_LOG", "trace,h2=info,hyper=info,lapin=info,amq_protocol=info,sqlx=info,tower=info,reqwest=info,rustls=info");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let output = cmd.output().await.expect("run pma-sso");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        self.printed
            .push_str(&format!("$ pma-sso {}\n{stdout}{stderr}\n", args.join(" ")));
        (output.status.code().expect("exit code"), stdout)
    }

    /// The in-process worker, built from `.env` as it is now (after `init` wrote the token).
    async fn start_worker(&mut self) {
        let lookup = |key: &str| {
            self.env
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
        };
        let mut pipeline = PipelineSettings::from_lookup(&lookup).expect("settings");
        pipeline.http_addr = None;
        let env_file = self.env_path().display().to_string();
        let settings = worker::Settings::from_lookup(&|key| match key {
            "PMA_SSO_ENV_FILE" => Some(env_file.clone()),
            _ => None,
        })
        .expect("flow settings");
        let pool = db::connect(&pipeline.database_url, pipeline.concurrency)
            .await
            .expect("pool");
        let worker = Arc::new(Worker {
            ctx: Arc::new(worker::Context::new(settings).expect("ctx")),
            db: pool,
            topology: pipeline.topology(),
            settings: pipeline.clone(),
            health: Arc::new(Health::default()),
        });
        let stop = CancellationToken::new();
        let running = tokio::spawn(worker.run(stop.clone()));
        self.worker = Some((stop, running));
        self.pipeline = Some(pipeline);
    }

    async fn finish(mut self) {
        if let Some((stop, running)) = self.worker.take() {
            stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(15), running).await;
        }
        if let Some(pipeline) = &self.pipeline {
            delete_queues(pipeline).await;
        }
    }
}

async fn ops() -> Ops {
    let authentik = testkit::AuthentikSim::new(TOKEN).start().await;
    let wiki = WikijsSim::new()
        .admin("admin@example.org", ADMIN_PASSWORD)
        .start()
        .await;
    let frappe = FrappeSim::new(FRAPPE_KEY, FRAPPE_SECRET).start().await;
    let dir = tempfile::tempdir().expect("tmp");
    for s in ["grafana", "gitea", "wikijs", "erpnext"] {
        copy_package(s, dir.path());
    }
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "DOMAIN=example.org\nAUTHENTIK_URL={}\nPMA_SSO_EXEC_RUNNER=true\n\
             GRAFANA_SSO_CLIENT_SECRET={GRAFANA_SECRET}\nPMA_SSO_WEBHOOK_SECRET={WEBHOOK_SECRET}\n\
             PMA_SSO_STATUS_TOKEN={STATUS_TOKEN}\n\
             WIKIJS_URL={}\nWIKIJS_ADMIN_EMAIL=admin@example.org\nWIKIJS_ADMIN_PASSWORD={ADMIN_PASSWORD}\n\
             ERPNEXT_URL={}\nERPNEXT_API_KEY={FRAPPE_KEY}\nERPNEXT_API_SECRET={FRAPPE_SECRET}\n",
            authentik.base_url(),
            wiki.base_url(),
            frappe.base_url()
        ),
    )
    .expect("env");
    let db = TestDb::new().await;
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
        (
            "PMA_SSO_QUEUE_PREFIX",
            format!("pma-sso-redact-{}", uuid::Uuid::new_v4().simple()),
        ),
        ("PMA_SSO_QUEUE_EXPIRES", "600s".into()),
        ("PMA_SSO_DELAY_TIERS", "200ms,1s".into()),
        ("PMA_SSO_MAX_ATTEMPTS", "2".into()),
    ];
    let lookup = |key: &str| env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
    let pipeline = PipelineSettings::from_lookup(&lookup).expect("settings");
    let pool = db::connect(&pipeline.database_url, 2).await.expect("db");
    db::migrate(&pool).await.expect("migrate");
    pool.close().await;
    Ops {
        authentik,
        wiki,
        _frappe: frappe,
        dir,
        db,
        pipeline: None,
        env,
        printed: String::new(),
        worker: None,
    }
}

#[tokio::test]
async fn operator_commands_and_serve_show_no_secret_and_leave_env_0600() {
    let mut o = ops().await;
    let env_path = o.env_path();

    // init: pma-sso's own account; the token it mints goes to .env only.
    loosen(&env_path);
    let (code, out) = o.pma(&["init"], &[("AUTHENTIK_ADMIN_TOKEN", TOKEN)]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(file_mode(&env_path), 0o600, ".env after init");
    let own_token = o
        .env("AUTHENTIK_TOKEN")
        .expect("init wrote AUTHENTIK_TOKEN");
    o.start_worker().await;

    // add, through the queue.
    for service in ["grafana", "gitea", "wikijs", "erpnext"] {
        loosen(&env_path);
        let (code, out) = o.pma(&["add", service], &[]).await;
        assert_eq!(code, 0, "add {service}: {out}");
        assert_eq!(file_mode(&env_path), 0o600, ".env after add {service}");
    }
    assert_eq!(
        o.env("GRAFANA_SSO_CLIENT_SECRET").as_deref(),
        Some(GRAFANA_SECRET)
    );

    // Drift, then --json check through the queue: red, saying the secrets differ.
    o.authentik.patch_provider(
        "pma-sso-grafana",
        serde_json::json!({"client_secret": AUTHENTIK_SIDE}),
    );
    let (code, out) = o.pma(&["--json", "check"], &[]).await;
    assert_eq!(code, 1, "{out}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("check --json is JSON");
    assert!(rows.is_array(), "{out}");
    assert!(out.contains("client secret"), "the drift is named: {out}");

    // fix: a lost Wiki.js key is minted again (with the admin password) and written.
    o.wiki.revoke_api_keys();
    loosen(&env_path);
    let (code, out) = o.pma(&["fix", "wikijs"], &[]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(file_mode(&env_path), 0o600, ".env after fix");
    let (code, out) = o.pma(&["fix", "grafana"], &[]).await;
    assert_eq!(code, 0, "{out}");

    // rotate: a new secret in .env.
    loosen(&env_path);
    let before = o.env("GITEA_SSO_CLIENT_SECRET").expect("gitea secret");
    let (code, out) = o.pma(&["rotate", "gitea"], &[]).await;
    assert!(code == 0 || code == 1, "{out}");
    assert_ne!(
        o.env("GITEA_SSO_CLIENT_SECRET").as_deref(),
        Some(before.as_str())
    );
    assert_eq!(file_mode(&env_path), 0o600, ".env after rotate");

    // --json status and history.
    let (code, out) = o.pma(&["--json", "status"], &[]).await;
    assert!(code <= 1, "{out}");
    serde_json::from_str::<serde_json::Value>(&out).expect("status --json is JSON");
    for service in ["grafana", "wikijs", "erpnext", "gitea"] {
        let (code, out) = o.pma(&["--json", "history", service], &[]).await;
        assert!(code <= 1, "{out}");
        serde_json::from_str::<serde_json::Value>(&out).expect("history --json is JSON");
    }

    // Unreachable database and broker whose URLs carry passwords: the errors name neither.
    let (code, _) = o
        .pma(
            &["--json", "status"],
            &[(
                "DATABASE_URL",
                // Refused at once; a closed port would wait out the pool's acquire timeout.
                &format!(
                    "postgres://postgres:{DB_PASSWORD}@127.0.0.1:5432/pma_sso_no_such_database"
                ),
            )],
        )
        .await;
    assert_eq!(code, 2);
    let (code, _) = o
        .pma(
            &["check", "grafana"],
            &[(
                "AMQP_URL",
                &format!("amqp://guest:{AMQP_PASSWORD}@127.0.0.1:1/%2f"),
            )],
        )
        .await;
    assert_eq!(code, 2);

    // serve: a webhook with the right and with a near-miss secret, the status page, /metrics.
    let served = serve_and_probe(&o).await;

    let env = EnvFile::read(&env_path).expect(".env");
    let mut secrets: Vec<String> = [
        ADMIN_PASSWORD,
        FRAPPE_SECRET,
        FRAPPE_KEY,
        GRAFANA_SECRET,
        WEBHOOK_SECRET,
        STATUS_TOKEN,
        AUTHENTIK_SIDE,
        DB_PASSWORD,
        AMQP_PASSWORD,
        TOKEN,
    ]
    .map(str::to_owned)
    .to_vec();
    secrets.push(own_token);
    secrets.push(before);
    for key in [
        "GITEA_SSO_CLIENT_SECRET",
        "WIKIJS_SSO_CLIENT_SECRET",
        "ERPNEXT_SSO_CLIENT_SECRET",
        "WIKIJS_API_KEY",
    ] {
        secrets.push(env.get(key).unwrap_or_else(|| panic!("{key}")).to_owned());
    }
    assert!(
        o.printed.contains("TRACE") || o.printed.contains("DEBUG"),
        "the commands logged below INFO"
    );
    assert_no_secret("the commands' output and logs", &o.printed, &secrets);
    assert_no_secret("serve's log", &served.log, &secrets);
    assert_no_secret("the status page", &served.page, &secrets);
    // The job rows, rotation outcomes included (they name secrets only by a keyed hash).
    let pool = db::connect(&o.db.url, 1).await.expect("db");
    let mut rows = String::new();
    for table in ["jobs", "attempts", "service_state"] {
        let text: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select row_to_json(t)::text from {table} t"
        )))
        .fetch_all(&pool)
        .await
        .expect("rows");
        assert!(!text.is_empty(), "{table} is empty");
        rows.push_str(&text.join("\n"));
    }
    assert!(
        rows.contains("\"rotate\""),
        "the rotation was recorded: {rows}"
    );
    assert_no_secret("the job tables", &rows, &secrets);
    pool.close().await;
    assert_no_secret("serve's /metrics", &served.metrics, &secrets);
    o.finish().await;
}

struct Served {
    log: String,
    page: String,
    metrics: String,
}

async fn serve_and_probe(o: &Ops) -> Served {
    let log_path = o.dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let free_port = || {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
        probe.local_addr().expect("addr").port()
    };
    let (hook_port, status_port) = (free_port(), free_port());
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PMA_SSO_ENV_FILE", o.env_path())
        .env("PMA_SSO_WEBHOOK_ADDR", format!("127.0.0.1:{hook_port}"))
        .env("PMA_SSO_STATUS_ADDR", format!("127.0.0.1:{status_port}"))
        .env("PMA_SSO_AUTHENTIK_USER", "pma-sso")
        .env("PMA_SSO_LOG", "trace,h2=info,hyper=info,lapin=info,amq_protocol=info,sqlx=info,tower=info,reqwest=info,rustls=info")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .kill_on_drop(true);
    for (k, v) in &o.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("serve");
    let http = reqwest::Client::new();
    let hook = format!("http://127.0.0.1:{hook_port}/webhooks/authentik");
    let body = serde_json::json!({"event_uuid": "1b2c3d4e-0000-4000-8000-0000000000aa",
        "action": "model_updated", "model_app": "authentik_core", "model_name": "application",
        "model_pk": "00000000000040008000000000000001", "object_name": "Grafana", "event_user": "akadmin"});
    let mut answered = None;
    for _ in 0..150 {
        match http
            .post(&hook)
            .header("X-PMA-SSO-Token", WEBHOOK_SECRET)
            .json(&body)
            .send()
            .await
        {
            Ok(r) => {
                answered = Some(r.status().as_u16());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(answered, Some(200));
    let near_miss = format!("{}x", &WEBHOOK_SECRET[..WEBHOOK_SECRET.len() - 1]);
    let refused = http
        .post(&hook)
        .header("X-PMA-SSO-Token", &near_miss)
        .json(&body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(refused.status().as_u16(), 401);
    let status = format!("http://127.0.0.1:{status_port}");
    let get = |path: &str| {
        http.get(format!("{status}{path}"))
            .bearer_auth(STATUS_TOKEN)
            .send()
    };
    let mut page = get("/")
        .await
        .expect("status page")
        .text()
        .await
        .expect("page");
    assert!(page.contains("grafana"), "{page}");
    for service in ["grafana", "wikijs", "erpnext", "gitea"] {
        page.push_str(
            &get(&format!("/history/{service}"))
                .await
                .expect("history page")
                .text()
                .await
                .expect("page"),
        );
    }
    let metrics = get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics");
    assert!(metrics.contains("pma_sso_"), "{metrics}");
    let _ = testkit::process::sigterm(&mut child, Duration::from_secs(15)).await;
    let log = std::fs::read_to_string(&log_path).expect("serve log");
    assert!(!log.contains("panicked"), "{log}");
    Served { log, page, metrics }
}
