//! Flows run with recognisable secrets; none may appear in logs, errors or output.

use serde_json::json;
use testkit::secrets::{assert_no_secret, file_mode, sha256_hex};
use worker::Action;

use crate::support::{Platform, global_log_capture};

const CLIENT_SECRET: &str = "RECOGNISABLE-client-secret-3f9a77";
const API_TOKEN: &str = "RECOGNISABLE-zammad-token-b21c";

#[tokio::test]
async fn no_secret_reaches_logs_errors_or_reports() {
    let capture = global_log_capture();

    let p = Platform::with_env(
        &["grafana", "gitea"],
        &format!("DOMAIN=example.org\nGRAFANA_SSO_CLIENT_SECRET={CLIENT_SECRET}\nGITEA_SSO_CLIENT_SECRET={CLIENT_SECRET}-gitea\nZAMMAD_API_TOKEN={API_TOKEN}\n"),
    )
    .await;
    let mut seen = Vec::new();
    for s in ["grafana", "gitea"] {
        let applied = p.ctx.apply(s, Action::Add).await.expect("add");
        seen.push(format!("{applied:?}"));
    }
    // Drift in both directions, then a failing command whose output echoes the secret.
    p.sim.patch_provider(
        "pma-sso-grafana",
        json!({"client_secret": "authentik-side-value"}),
    );
    p.set_env(
        "GITEA_SSO_CLIENT_SECRET",
        &format!("{CLIENT_SECRET}-rotated"),
    );
    for s in ["grafana", "gitea"] {
        let report = p.ctx.check(s).await.expect("check");
        seen.push(report.line());
        seen.push(format!("{report:?}"));
        seen.push(serde_json::to_string(&report).expect("json"));
    }
    let runner = p.path("fake-runner.sh");
    std::fs::write(
        &runner,
        "#!/bin/sh\necho \"fatal: bad secret $SSO_CLIENT_SECRET\" >&2\nexit 3\n",
    )
    .expect("runner");
    let err = p
        .ctx
        .apply("gitea", Action::Fix)
        .await
        .expect_err("runner fails");
    seen.push(err.to_string());
    seen.push(format!("{err:?}"));
    assert!(
        err.to_string().contains("fatal: bad secret <redacted>"),
        "{err}"
    );
    let results = p.ctx.check_all().await.expect("sweep");
    for r in results {
        seen.push(format!("{:?}", r.outcome.map(|o| o.line())));
    }
    seen.push(format!("{:?}", p.ctx.settings));
    seen.push(capture.text());
    let all = seen.join("\n");
    assert!(
        capture.text().contains("converged"),
        "logs were captured: {}",
        capture.text().len()
    );
    for secret in [
        CLIENT_SECRET,
        API_TOKEN,
        crate::support::TOKEN,
        "authentik-side-value",
    ] {
        assert!(!all.contains(secret), "`{secret}` leaked:\n{all}");
    }
    let generated = p.sim.provider_by_name("pma-sso-gitea").expect("p")["client_secret"]
        .as_str()
        .expect("s")
        .to_owned();
    assert!(!all.contains(&generated));
}

// ----- the pipeline, with low-entropy secrets -------------------------------------------------

/// Low-entropy secrets an operator really uses: a leak is found by a plain substring search.
const ADMIN_PASSWORD: &str = "hunter2";
const FRAPPE_SECRET: &str = "admin123";
const FRAPPE_KEY: &str = "erpkey-5d1e0c";
const GRAFANA_SECRET: &str = "RECOGNISABLE-grafana-secret-71c2";
const AUTHENTIK_SIDE: &str = "authentik-side-value-9f0e";

/// Every row of the pipeline's tables, as text.
async fn tables_as_text(pool: &sqlx::PgPool) -> String {
    let mut text = String::new();
    for table in ["jobs", "attempts", "service_state"] {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select row_to_json(t)::text from {table} t"
        )))
        .fetch_all(pool)
        .await
        .expect("rows");
        assert!(!rows.is_empty(), "{table} is empty: nothing was recorded");
        text.push_str(&rows.join("\n"));
        text.push('\n');
    }
    text
}

/// The real `pma-sso-worker` on a pipeline (the harness's command), giving up after two
/// attempts, logging everything at TRACE (JSON, to a file) and serving `/metrics`.
fn spawn_traced_worker(
    p: &crate::pipeline::harness::Pipeline,
    log: &std::path::Path,
    http: std::net::SocketAddr,
) -> tokio::process::Child {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    p.worker_process_command()
        .env("PMA_SSO_MAX_ATTEMPTS", "2")
        .env("PMA_SSO_WORKER_HTTP", http.to_string())
        .env("PMA_SSO_LOG", "trace,h2=info,hyper=info,lapin=info,amq_protocol=info,sqlx=info,tower=info,reqwest=info,rustls=info")
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn worker")
}

#[tokio::test]
async fn jobs_run_by_a_worker_leak_no_secret_into_logs_rows_metrics_or_state_files() {
    use schemas::job::{Action as JobAction, Trigger};
    use std::time::Duration;
    use testkit::{FrappeSim, WikijsSim};

    let wiki = WikijsSim::new()
        .admin("admin@example.org", ADMIN_PASSWORD)
        .start()
        .await;
    let frappe = FrappeSim::new(FRAPPE_KEY, FRAPPE_SECRET).start().await;
    let p =
        crate::pipeline::harness::Pipeline::new(&["grafana", "gitea", "wikijs", "erpnext"]).await;
    let env_path = p.platform.path(".env");
    std::fs::write(
        &env_path,
        format!(
            "DOMAIN=example.org\nGRAFANA_SSO_CLIENT_SECRET={GRAFANA_SECRET}\n\
             WIKIJS_URL={}\nWIKIJS_ADMIN_EMAIL=admin@example.org\nWIKIJS_ADMIN_PASSWORD={ADMIN_PASSWORD}\n\
             ERPNEXT_URL={}\nERPNEXT_API_KEY={FRAPPE_KEY}\nERPNEXT_API_SECRET={FRAPPE_SECRET}\n",
            wiki.base_url(),
            frappe.base_url()
        ),
    )
    .expect("write .env");
    // As an operator may leave it; every writer must tighten it.
    std::fs::set_permissions(
        &env_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");

    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("worker.log");
    let http = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
        probe.local_addr().expect("addr")
    };
    let mut child = spawn_traced_worker(&p, &log, http);
    let wait = Duration::from_secs(60);
    let run = |jobs: Vec<(&'static str, JobAction)>| {
        let client = &p.client;
        async move {
            let mut ids = Vec::new();
            for (service, action) in jobs {
                ids.push(
                    client
                        .enqueue(service, action, Trigger::Cli, None)
                        .await
                        .expect("enqueue")
                        .id,
                );
            }
            client.wait(&ids, wait, wait).await.expect("jobs finish")
        }
    };

    let added = run(vec![
        ("grafana", JobAction::Add),
        ("gitea", JobAction::Add),
        ("wikijs", JobAction::Add),
        ("erpnext", JobAction::Add),
    ])
    .await;
    assert!(
        added.iter().all(|j| j.status.as_str() == "succeeded"),
        "{added:?}"
    );
    assert_eq!(file_mode(&env_path), 0o600, ".env after add");
    // Drift in authentik, a lost Wiki.js key (minted again with the admin password), and a
    // Frappe secret that no longer works: checks, fixes and a failure with its error text.
    p.platform
        .sim
        .patch_provider("pma-sso-grafana", json!({"client_secret": AUTHENTIK_SIDE}));
    wiki.revoke_api_keys();
    frappe.set_api_secret("rotated-by-someone-else");
    let later = run(vec![
        ("grafana", JobAction::Check),
        ("wikijs", JobAction::Check),
        ("erpnext", JobAction::Check),
    ])
    .await;
    assert!(later.iter().all(|j| j.status.is_terminal()), "{later:?}");
    let fixed = run(vec![
        ("grafana", JobAction::Fix),
        ("wikijs", JobAction::Fix),
        ("erpnext", JobAction::Fix),
        ("gitea", JobAction::Fix),
    ])
    .await;
    let erpnext = fixed
        .iter()
        .find(|j| j.service == "erpnext")
        .expect("erpnext job");
    assert!(
        matches!(erpnext.status.as_str(), "failed" | "dead"),
        "a Frappe secret that no longer works fails the job: {erpnext:?}"
    );
    assert_eq!(file_mode(&env_path), 0o600, ".env after fix");

    let metrics = reqwest::get(format!("http://{http}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    assert!(metrics.contains("pma_sso_"), "{metrics}");

    // SIGTERM: the worker finishes and flushes its log.
    let _ = testkit::process::sigterm(&mut child, Duration::from_secs(15)).await;
    let logs = std::fs::read_to_string(&log).expect("log");
    assert!(
        logs.contains("\"level\":\"TRACE\"") || logs.contains("\"level\":\"DEBUG\""),
        "the worker logged below INFO: {} bytes",
        logs.len()
    );
    assert!(!logs.contains("panicked"), "{logs}");

    let env = worker::envfile::EnvFile::read(&env_path).expect(".env parses");
    let mut secrets: Vec<String> = [
        ADMIN_PASSWORD,
        FRAPPE_SECRET,
        FRAPPE_KEY,
        GRAFANA_SECRET,
        AUTHENTIK_SIDE,
        crate::support::TOKEN,
    ]
    .map(str::to_owned)
    .to_vec();
    for key in [
        "GITEA_SSO_CLIENT_SECRET",
        "WIKIJS_SSO_CLIENT_SECRET",
        "ERPNEXT_SSO_CLIENT_SECRET",
        "WIKIJS_API_KEY",
    ] {
        secrets.push(
            env.get(key)
                .unwrap_or_else(|| panic!("{key} in .env"))
                .to_owned(),
        );
    }
    assert_eq!(env.get("GRAFANA_SSO_CLIENT_SECRET"), Some(GRAFANA_SECRET));

    assert_no_secret("the worker's log", &logs, &secrets);
    assert_no_secret("the job tables", &tables_as_text(&p.pool).await, &secrets);
    assert_no_secret("the worker's /metrics", &metrics, &secrets);
    assert_no_secret(
        "the exec runner's command lines",
        &p.platform.exec_log(),
        &secrets,
    );
    let state_dir = &p.platform.ctx.settings.state_dir;
    let mut state_files = 0;
    for entry in std::fs::read_dir(state_dir).expect("state dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("state file");
        assert_no_secret(&path.display().to_string(), &text, &secrets);
        assert_eq!(file_mode(&path), 0o600, "{}", path.display());
        state_files += 1;
    }
    assert!(state_files >= 2, "gitea's delivery state and the key");
}

#[tokio::test]
async fn delivery_fingerprints_are_keyed_by_the_installation_and_show_no_secret() {
    let secret = "RECOGNISABLE-gitea-secret-0b5d";
    let p = Platform::with_env(
        &["gitea"],
        &format!("DOMAIN=example.org\nGITEA_SSO_CLIENT_SECRET={secret}\n"),
    )
    .await;
    p.ctx.apply("gitea", Action::Add).await.expect("add");
    let green = p.ctx.check("gitea").await.expect("check").line();
    assert!(green.starts_with('✓'), "{green}");
    let state_dir = p.ctx.settings.state_dir.clone();
    let state = std::fs::read_to_string(state_dir.join("gitea.json")).expect("state");
    let stored: serde_json::Value = serde_json::from_str(&state).expect("json");
    let fingerprints: Vec<&str> = stored["exec"]
        .as_object()
        .expect("exec fingerprints")
        .values()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(!fingerprints.is_empty(), "{state}");
    assert_no_secret("the delivery state", &state, &[secret.to_owned()]);
    for fp in &fingerprints {
        // An HMAC-SHA256 in hex, not the bare digest of the secret.
        assert_eq!(fp.len(), 64, "{fp}");
        assert_ne!(*fp, sha256_hex(secret));
    }
    let key_path = state_dir.join("fingerprint.key");
    assert_eq!(file_mode(&key_path), 0o600);

    // Another installation's key: the same delivery no longer matches its fingerprint, so
    // the fingerprint depends on the key and cannot be recomputed from the secret alone.
    let key = std::fs::read(&key_path).expect("key");
    std::fs::write(&key_path, hex::encode([7u8; 32])).expect("other key");
    let other = p.ctx.check("gitea").await.expect("check").line();
    assert!(
        other.contains("delivered setting stale"),
        "with another key the stored fingerprint is stale: {other}"
    );
    assert!(!other.contains(secret), "{other}");
    std::fs::write(&key_path, key).expect("restore key");
    let green = p.ctx.check("gitea").await.expect("check").line();
    assert!(green.starts_with('✓'), "{green}");
}

#[tokio::test]
async fn unreachable_database_and_broker_urls_are_logged_without_their_passwords() {
    use std::time::Duration;

    let db = testkit::pg::TestDb::new().await;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join(".env"), "DOMAIN=example.org\n").expect(".env");
    let cases = [
        (
            // A database that does not exist: refused at once, where a closed port would only
            // fail after the pool's acquire timeout.
            "postgres://postgres:hunter2-db@127.0.0.1:5432/pma_sso_no_such_database".to_owned(),
            "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            "hunter2-db",
        ),
        (
            db.url.clone(),
            "amqp://guest:hunter2-mq@127.0.0.1:1/%2f".to_owned(),
            "hunter2-mq",
        ),
    ];
    for (database_url, amqp_url, password) in cases {
        let log = dir.path().join("worker.log");
        let out = std::fs::File::create(&log).expect("log");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso-worker"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PMA_SSO_ENV_FILE", dir.path().join(".env"))
            .env("AUTHENTIK_URL", "http://127.0.0.1:1")
            .env("AUTHENTIK_TOKEN", "hunter2-token")
            .env("DATABASE_URL", &database_url)
            .env("AMQP_URL", &amqp_url)
            .env(
                "PMA_SSO_QUEUE_PREFIX",
                format!("pma-sso-redact-{}", uuid::Uuid::new_v4().simple()),
            )
            .env("PMA_SSO_QUEUE_EXPIRES", "60s")
            .env("PMA_SSO_WORKER_HTTP", "off")
            .env("PMA_SSO_LOG", "trace,h2=info,hyper=info,rustls=info")
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn worker");
        // Until the first failed connection is logged (a few seconds at most).
        for _ in 0..80 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let logs = std::fs::read_to_string(&log).unwrap_or_default();
            if logs.contains("\"level\":\"WARN\"") || logs.contains("\"level\":\"ERROR\"") {
                break;
            }
        }
        let _ = testkit::process::sigterm(&mut child, Duration::from_secs(10)).await;
        let logs = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            logs.contains("WARN") || logs.contains("ERROR"),
            "the failure was logged: {logs}"
        );
        assert_no_secret(
            "the worker's log",
            &logs,
            &[password.to_owned(), "hunter2-token".to_owned()],
        );
    }
}
