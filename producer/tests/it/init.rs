//! `pma-sso init` against the authentik stand-in.

use std::process::Stdio;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use testkit::{AuthentikSim, SimHandle};
use tokio::io::AsyncWriteExt;
use worker::envfile::EnvFile;

const ADMIN: &str = "init-admin-token-7c1f";

struct Setup {
    sim: SimHandle,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let sim = AuthentikSim::new(ADMIN).start().await;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join(".env"),
        format!("DOMAIN=example.org\nAUTHENTIK_URL={}\n", sim.base_url()),
    )
    .expect("env");
    Setup { sim, dir }
}

impl Setup {
    fn env_path(&self) -> std::path::PathBuf {
        self.dir.path().join(".env")
    }

    fn env(&self, key: &str) -> Option<String> {
        EnvFile::read(&self.env_path())
            .expect("read .env")
            .get(key)
            .map(str::to_owned)
    }

    fn command(&self, args: &[&str], admin_token: Option<&str>) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PMA_SSO_ENV_FILE", self.env_path());
        if let Some(token) = admin_token {
            cmd.env("AUTHENTIK_ADMIN_TOKEN", token);
        }
        cmd
    }

    /// Exit code and stdout+stderr.
    async fn init(&self, admin_token: Option<&str>) -> (i32, String) {
        let output = self
            .command(&["init"], admin_token)
            .output()
            .await
            .expect("run pma-sso");
        crate::cli::exit_and_text(&output)
    }

    fn service_accounts(&self) -> Vec<Value> {
        self.sim
            .users()
            .into_iter()
            .filter(|u| u["username"] == "pma-sso")
            .collect()
    }
}

async fn whoami(sim: &SimHandle, token: &str) -> Result<String, String> {
    let client = worker::authentik::Client::new(
        &sim.base_url(),
        SecretString::from(token.to_owned()),
        Duration::from_secs(5),
    )
    .map_err(|e| e.to_string())?;
    client
        .whoami()
        .await
        .map(|u| u.username)
        .map_err(|e| e.to_string())
}

fn assert_no_secret(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "a token leaked into the output:\n{text}"
        );
    }
}

#[tokio::test]
async fn init_twice_creates_the_account_its_membership_and_token_once() {
    let s = setup().await;
    let (code, out) = s.init(Some(ADMIN)).await;
    assert_eq!(code, 0, "{out}");

    let accounts = s.service_accounts();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(accounts[0]["type"], "service_account");
    let pk = accounts[0]["pk"].clone();
    let admins: Vec<Value> = s
        .sim
        .groups()
        .into_iter()
        .filter(|g| g["name"] == "authentik Admins")
        .collect();
    assert!(
        admins[0]["users"]
            .as_array()
            .is_some_and(|users| users.contains(&pk)),
        "{admins:?}"
    );
    let api_tokens: Vec<Value> = s
        .sim
        .tokens()
        .into_iter()
        .filter(|t| t["user"] == pk && t["intent"] == "api")
        .collect();
    assert_eq!(api_tokens.len(), 1, "{api_tokens:?}");
    assert_eq!(api_tokens[0]["expiring"], false);
    assert!(
        api_tokens[0]["identifier"]
            .as_str()
            .is_some_and(|id| id.starts_with("pma-sso-")),
        "{api_tokens:?}"
    );

    let token = s.env("AUTHENTIK_TOKEN").expect("AUTHENTIK_TOKEN in .env");
    assert_ne!(token, ADMIN);
    assert_eq!(s.env("PMA_SSO_AUTHENTIK_USER").as_deref(), Some("pma-sso"));
    assert_eq!(whoami(&s.sim, &token).await.as_deref(), Ok("pma-sso"));
    assert_no_secret(&out, &[&token, ADMIN]);
    assert_eq!(s.sim.schema_violations(), Vec::<String>::new());

    // Second run: the stored token works, so nothing is written anywhere.
    s.sim.reset_requests();
    let before = std::fs::read(s.env_path()).expect("read .env");
    let (code, out) = s.init(Some(ADMIN)).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(s.sim.write_count(), 0, "{:?}", s.sim.requests());
    assert_eq!(std::fs::read(s.env_path()).expect("read .env"), before);
    assert_eq!(s.service_accounts().len(), 1);
    assert_eq!(
        s.sim
            .tokens()
            .iter()
            .filter(|t| t["user"] == pk && t["intent"] == "api")
            .count(),
        1
    );
    assert_no_secret(&out, &[&token, ADMIN]);
}

#[tokio::test]
async fn init_with_a_bad_admin_token_exits_2_and_writes_nothing() {
    let s = setup().await;
    let before = std::fs::read(s.env_path()).expect("read .env");
    let (code, out) = s.init(Some("not-the-admin-token")).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("refused the admin token") && out.contains("invalid or expired"),
        "{out}"
    );
    assert_no_secret(&out, &["not-the-admin-token"]);
    assert_eq!(s.sim.write_count(), 0);
    assert!(s.service_accounts().is_empty());
    assert_eq!(std::fs::read(s.env_path()).expect("read .env"), before);

    let (code, out) = s.init(None).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("AUTHENTIK_ADMIN_TOKEN"), "{out}");
}

#[tokio::test]
async fn init_reads_the_admin_token_from_stdin() {
    let s = setup().await;
    let mut child = s
        .command(&["init", "--admin-token-stdin"], None)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{ADMIN}\n").as_bytes())
        .await
        .expect("write");
    drop(stdin);
    let output = child.wait_with_output().await.expect("wait");
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{out}");
    let token = s.env("AUTHENTIK_TOKEN").expect("token");
    assert_eq!(whoami(&s.sim, &token).await.as_deref(), Ok("pma-sso"));
}

#[tokio::test]
async fn init_replaces_a_stored_token_that_stopped_working_without_a_second_account() {
    let s = setup().await;
    assert_eq!(s.init(Some(ADMIN)).await.0, 0);
    worker::envfile::update(&s.env_path(), &[("AUTHENTIK_TOKEN", Some("revoked-token"))])
        .expect("edit .env");
    s.sim.reset_requests();

    let (code, out) = s.init(Some(ADMIN)).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(s.sim.count("POST", "/core/users/service_account/"), 0);
    assert_eq!(s.service_accounts().len(), 1);
    let token = s.env("AUTHENTIK_TOKEN").expect("token");
    assert_eq!(whoami(&s.sim, &token).await.as_deref(), Ok("pma-sso"));
    assert_no_secret(&out, &[&token, ADMIN]);
    assert_eq!(s.sim.schema_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn the_service_accounts_own_app_password_cannot_call_the_api() {
    // Why init mints an API token instead of storing what service_account answers.
    let sim = AuthentikSim::new(ADMIN).start().await;
    let admin = worker::authentik::Client::new(
        &sim.base_url(),
        SecretString::from(ADMIN.to_owned()),
        Duration::from_secs(5),
    )
    .expect("client");
    let account = admin
        .create_service_account("someone")
        .await
        .expect("service account");
    let key = secrecy::ExposeSecret::expose_secret(&account.token).to_owned();
    assert!(whoami(&sim, &key).await.is_err());
}

#[tokio::test]
async fn init_deletes_the_app_password_that_creating_the_service_account_left() {
    let s = setup().await;
    let (code, out) = s.init(Some(ADMIN)).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("deleted: app password service-account-pma-sso-password"),
        "{out}"
    );
    let pk = s.service_accounts()[0]["pk"].clone();
    let left: Vec<Value> = s
        .sim
        .tokens()
        .into_iter()
        .filter(|t| t["user"] == pk && t["intent"] != "api")
        .collect();
    assert!(left.is_empty(), "only the API token stays: {left:?}");
    assert!(out.contains("note: pma-sso is a superuser"), "{out}");
}

#[tokio::test]
async fn init_creates_the_service_account_pma_sso_service_account_names() {
    let s = setup().await;
    let mut cmd = s.command(&["init"], Some(ADMIN));
    cmd.env("PMA_SSO_SERVICE_ACCOUNT", "pma-sso-19");
    let (code, out) = crate::cli::exit_and_text(&cmd.output().await.expect("init"));
    assert_eq!(code, 0, "{out}");
    assert!(s.service_accounts().is_empty(), "no default account");
    let token = s.env("AUTHENTIK_TOKEN").expect("token");
    assert_eq!(whoami(&s.sim, &token).await.as_deref(), Ok("pma-sso-19"));
    assert_eq!(
        s.env("PMA_SSO_AUTHENTIK_USER").as_deref(),
        Some("pma-sso-19")
    );

    let mut cmd = s.command(&["init"], Some(ADMIN));
    cmd.env("PMA_SSO_SERVICE_ACCOUNT", "has space");
    let (code, out) = crate::cli::exit_and_text(&cmd.output().await.expect("init"));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("PMA_SSO_SERVICE_ACCOUNT is invalid"), "{out}");
}

/// Against the real authentik, with an account of this test's own: the app password is gone
/// and the API token works. The account, its group membership and tokens are removed after.
#[tokio::test]
async fn init_against_real_authentik_leaves_only_the_api_token() {
    let Some(real) =
        testkit::RealAuthentik::from_env("init_against_real_authentik_leaves_only_the_api_token")
            .await
    else {
        return;
    };
    let account = format!(
        "pma-sso-19-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let dir = tempfile::tempdir().expect("tmp");
    let env_path = dir.path().join(".env");
    std::fs::write(&env_path, format!("AUTHENTIK_URL={}\n", real.url)).expect("env");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"))
        .arg("init")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PMA_SSO_ENV_FILE", &env_path)
        .env("PMA_SSO_SERVICE_ACCOUNT", &account)
        .env("AUTHENTIK_ADMIN_TOKEN", &real.token)
        .output()
        .await
        .expect("init");
    let (code, out) = crate::cli::exit_and_text(&output);
    let (_, users) = real
        .api(
            reqwest::Method::GET,
            &format!("core/users/?username={account}"),
            None,
        )
        .await;
    let pk = users["results"][0]["pk"].as_i64();
    let (_, tokens) = real
        .api(
            reqwest::Method::GET,
            &format!("core/tokens/?user__username={account}"),
            None,
        )
        .await;
    // Clean up before asserting: the account is this test's own.
    if let Some(pk) = pk {
        for t in tokens["results"].as_array().into_iter().flatten() {
            if let Some(id) = t["identifier"].as_str() {
                real.api(reqwest::Method::DELETE, &format!("core/tokens/{id}/"), None)
                    .await;
            }
        }
        real.api(reqwest::Method::DELETE, &format!("core/users/{pk}/"), None)
            .await;
    }
    assert_eq!(code, 0, "{out}");
    assert!(pk.is_some(), "account {account} created: {users}");
    let intents: Vec<&str> = tokens["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["intent"].as_str())
        .collect();
    assert_eq!(intents, ["api"], "only the API token stays: {tokens}");
    assert!(!out.contains(&real.token), "no secret in the output");
}
