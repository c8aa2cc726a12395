use std::path::{Path, PathBuf};
use std::process::Output;

use testkit::AuthentikSim;

pub const TOKEN: &str = "cli-test-token-d41e";

struct Setup {
    sim: testkit::SimHandle,
    dir: tempfile::TempDir,
}

/// A finished `pma-sso` run's exit code and its stdout followed by stderr; it must not have
/// panicked.
pub fn exit_and_text(output: &Output) -> (i32, String) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    (output.status.code().expect("exit code"), text)
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_owned()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

pub fn copy_package(name: &str, to: &Path) {
    copy_dir(
        &repo_root().join("packages").join(name),
        &to.join("packages").join(name),
    );
}

pub const ALL: [&str; 12] = [
    "erpnext",
    "gitea",
    "grafana",
    "linkding",
    "mattermost",
    "n8n",
    "nextcloud",
    "redmine",
    "superset",
    "uptime-kuma",
    "wikijs",
    "zammad",
];

async fn setup(services: &[&str]) -> Setup {
    let sim = AuthentikSim::new(TOKEN).start().await;
    let dir = crate::serve::platform_dir(
        services,
        &format!(
            "DOMAIN=example.org\nAUTHENTIK_URL={}\nAUTHENTIK_TOKEN={TOKEN}\n",
            sim.base_url()
        ),
    );
    Setup { sim, dir }
}

impl Setup {
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PMA_SSO_ENV_FILE", self.dir.path().join(".env"))
            .env("PMA_SSO_EXEC_RUNNER", "true");
        cmd
    }

    async fn run(&self, args: &[&str]) -> (i32, String) {
        let Output {
            status,
            stdout,
            stderr,
        } = self.command(args).output().await.expect("run pma-sso");
        let text = String::from_utf8_lossy(&stdout).into_owned();
        let err = String::from_utf8_lossy(&stderr);
        assert!(!err.contains("panicked"), "{err}");
        (status.code().expect("exit code"), text)
    }
}

#[tokio::test]
async fn check_add_check_prints_the_seed_format_and_exit_codes() {
    let s = setup(&["grafana", "redmine"]).await;
    let (code, out) = s.run(&["--inline", "check", "grafana"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("❌ grafana (oidc) — authentik app missing"),
        "{out}"
    );

    let (code, out) = s.run(&["--inline", "add", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("✓ grafana (oidc) — created provider pma-sso-grafana"),
        "{out}"
    );
    assert!(out.contains("restart needed: grafana"), "{out}");

    let (code, out) = s.run(&["--inline", "check", "grafana"]).await;
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "✓ grafana (oidc) — authentik app present, redirects match\n"
        )
    );

    // All services: redmine not yet added → drift → exit 1.
    let (code, out) = s.run(&["--inline", "check"]).await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");

    let (code, out) = s.run(&["--inline", "fix-all"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = s.run(&["--inline", "check"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        "✓ grafana (oidc) — authentik app present, redirects match\n✓ redmine (oauth) — authentik app present, redirects match\n"
    );
}

#[tokio::test]
async fn plan_names_each_change_and_writes_nothing() {
    let s = setup(&["grafana"]).await;
    s.run(&["--inline", "add", "grafana"]).await;
    s.sim.patch_provider(
        "pma-sso-grafana",
        serde_json::json!({"redirect_uris": [{"matching_mode": "strict", "url": "https://old.example/cb"}]}),
    );
    let writes = s.sim.write_count();
    let (code, out) = s.run(&["--inline", "plan", "grafana"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("~ grafana (oidc) — fix would:"), "{out}");
    assert!(out.contains("set redirect_uris on provider pma-sso-grafana (because redirect URI mismatch: want https://grafana.example.org/login/generic_oauth, authentik has https://old.example/cb)"), "{out}");
    assert_eq!(s.sim.write_count(), writes);
}

#[tokio::test]
async fn an_error_outranks_drift_in_the_exit_code() {
    let s = setup(&["grafana"]).await;
    // A second package whose manifest is broken: an error line, and exit 2 although grafana drifts.
    let broken = s.dir.path().join("packages/broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    std::fs::write(
        broken.join("manifest.yaml"),
        "name: broken\nsso:\n  type: oauth\n  redirect_path: nope\n",
    )
    .expect("write");
    let (code, out) = s.run(&["--inline", "check"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("❌ broken (?) — error:"), "{out}");
    assert!(
        out.contains(
            "packages/broken/manifest.yaml: sso.redirect_path: `nope` must start with '/'"
        ),
        "{out}"
    );
    assert!(
        out.contains("❌ grafana (oidc) — authentik app missing"),
        "{out}"
    );
}

#[tokio::test]
async fn a_bad_token_is_an_error_without_the_token_in_the_output() {
    let s = setup(&["grafana"]).await;
    let env = std::fs::read_to_string(s.dir.path().join(".env"))
        .expect("read")
        .replace(TOKEN, "expired-token-9f3b");
    std::fs::write(s.dir.path().join(".env"), env).expect("write");
    let (code, out) = s.run(&["--inline", "check", "grafana"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("forbidden (Token invalid/expired); check AUTHENTIK_TOKEN"),
        "{out}"
    );
    assert!(!out.contains("expired-token-9f3b"));
}

#[tokio::test]
async fn missing_settings_are_named() {
    let s = setup(&["grafana"]).await;
    std::fs::write(s.dir.path().join(".env"), "DOMAIN=example.org\n").expect("write");
    let (code, out) = s.run(&["--inline", "check"]).await;
    assert_eq!(code, 2);
    assert_eq!(
        out,
        "error: settings: AUTHENTIK_URL is not set (in the environment or in .env)\n"
    );
}

#[tokio::test]
async fn json_output_is_machine_readable_and_secret_free() {
    let s = setup(&["linkding"]).await;
    let (code, out) = s.run(&["--inline", "--json", "add", "linkding"]).await;
    assert_eq!(code, 0, "{out}");
    let added: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(added[0]["service"], "linkding");
    s.sim.patch_provider(
        "pma-sso-linkding",
        serde_json::json!({"client_secret": "ui-edited-secret"}),
    );
    let (code, out) = s.run(&["--inline", "--json", "check"]).await;
    assert_eq!(code, 1);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(rows[0]["in_sync"], false);
    assert_eq!(rows[0]["drifts"][0]["field"], "provider.client_secret");
    let env = std::fs::read_to_string(s.dir.path().join(".env")).expect("env");
    let secret = env
        .lines()
        .find_map(|l| l.strip_prefix("LINKDING_SSO_CLIENT_SECRET="))
        .expect("secret");
    assert!(
        !out.contains(secret) && !out.contains("ui-edited-secret"),
        "{out}"
    );
}

#[tokio::test]
async fn two_processes_adding_different_services_keep_both_keys() {
    let services = ["grafana", "redmine", "linkding", "n8n"];
    let s = setup(&services).await;
    let mut children: Vec<_> = services
        .iter()
        .map(|svc| {
            s.command(&["--inline", "add", svc])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for child in &mut children {
        assert!(child.wait().await.expect("wait").success());
    }
    let env = std::fs::read_to_string(s.dir.path().join(".env")).expect("env");
    for svc in services {
        let key = format!("{}_SSO_CLIENT_SECRET=", svc.to_uppercase());
        assert!(env.contains(&key), "{key} lost:\n{env}");
        let provider = s
            .sim
            .provider_by_name(&format!("pma-sso-{svc}"))
            .expect("provider");
        let secret = provider["client_secret"].as_str().expect("secret");
        assert!(
            env.contains(&format!("{key}{secret}\n")),
            "{svc}: .env secret differs from authentik"
        );
    }
    assert!(
        env.starts_with("DOMAIN=example.org\nAUTHENTIK_URL="),
        "{env}"
    );
}
