//! `pma-sso webhook install` against the authentik stand-in.

use serde_json::Value;
use testkit::{AuthentikSim, SimHandle};
use worker::authentik::{WEBHOOK_SECRET_ENV, WEBHOOK_SECRET_HEADER};
use worker::envfile::EnvFile;

const ADMIN: &str = "webhook-admin-token-51aa";
const SERVICE: &str = "webhook-service-token-9d02";
const URL: &str = "http://127.0.0.1:9/webhooks/authentik";

struct Setup {
    sim: SimHandle,
    dir: tempfile::TempDir,
    account_pk: i64,
}

/// A stand-in where `pma-sso init` has already run: `AUTHENTIK_TOKEN` is the superuser service
/// account's.
async fn setup() -> Setup {
    let sim = AuthentikSim::new(ADMIN).start().await;
    let account_pk = sim.add_token(SERVICE, "pma-sso", true);
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "DOMAIN=example.org\nAUTHENTIK_URL={}\nAUTHENTIK_TOKEN={SERVICE}\n",
            sim.base_url()
        ),
    )
    .expect("env");
    Setup {
        sim,
        dir,
        account_pk,
    }
}

impl Setup {
    async fn install(&self, url: &str) -> (i32, String) {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"))
            .args(["webhook", "install", "--url", url])
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PMA_SSO_ENV_FILE", self.dir.path().join(".env"))
            .output()
            .await
            .expect("run pma-sso");
        crate::cli::exit_and_text(&output)
    }

    fn secret(&self) -> String {
        EnvFile::read(&self.dir.path().join(".env"))
            .expect("read .env")
            .get(WEBHOOK_SECRET_ENV)
            .expect("secret in .env")
            .to_owned()
    }

    fn objects(&self, kind: &str) -> Vec<Value> {
        self.sim.notification_objects(kind)
    }
}

#[tokio::test]
async fn webhook_install_twice_creates_each_object_once() {
    let s = setup().await;
    let (code, out) = s.install(URL).await;
    assert_eq!(code, 0, "{out}");
    let secret = s.secret();
    assert!(secret.len() >= 32);
    assert!(!out.contains(&secret), "the secret leaked:\n{out}");

    let mappings = s.objects("mappings");
    assert_eq!(mappings.len(), 2, "{mappings:?}");
    let header = mappings
        .iter()
        .find(|m| m["name"] == "pma-sso-webhook-headers")
        .expect("header mapping");
    let expression = header["expression"].as_str().unwrap_or_default();
    assert!(
        expression.contains(&format!("\"{WEBHOOK_SECRET_HEADER}\": \"{secret}\"")),
        "{expression}"
    );
    assert_eq!(WEBHOOK_SECRET_HEADER, "X-PMA-SSO-Token");
    let body = mappings
        .iter()
        .find(|m| m["name"] == "pma-sso-webhook-body")
        .expect("body mapping");

    let transports = s.objects("transports");
    assert_eq!(transports.len(), 1);
    let transport = &transports[0];
    assert_eq!(transport["name"], "pma-sso-webhook");
    assert_eq!(transport["mode"], "webhook");
    assert_eq!(transport["webhook_url"], URL);
    assert_eq!(transport["send_once"], true);
    assert_eq!(transport["webhook_mapping_body"], body["pk"]);
    assert_eq!(transport["webhook_mapping_headers"], header["pk"]);

    let policies = s.objects("policies");
    assert_eq!(policies.len(), 18);
    assert!(policies.iter().any(|p| {
        p["name"] == "pma-sso-model_updated-authentik_core.application"
            && p["action"] == "model_updated"
            && p["model"] == "authentik_core.application"
    }));

    let groups: Vec<Value> = s
        .sim
        .groups()
        .into_iter()
        .filter(|g| g["name"] == "pma-sso-webhook")
        .collect();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["users"], serde_json::json!([s.account_pk]));

    let rules = s.objects("rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["name"], "pma-sso-sso-changes");
    assert_eq!(rules[0]["severity"], "notice");
    assert_eq!(rules[0]["destination_group"], groups[0]["pk"]);
    assert_eq!(rules[0]["transports"], serde_json::json!([transport["pk"]]));

    let bindings = s.objects("bindings");
    assert_eq!(bindings.len(), 18);
    assert!(bindings.iter().all(|b| b["target"] == rules[0]["pk"]));
    for policy in &policies {
        assert_eq!(
            bindings
                .iter()
                .filter(|b| b["policy"] == policy["pk"])
                .count(),
            1
        );
    }
    assert_eq!(s.sim.schema_violations(), Vec::<String>::new());

    // Second run: every object is found and equal, so nothing is written.
    s.sim.reset_requests();
    let (code, out) = s.install(URL).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 42, "{out}");
    assert!(out.lines().all(|l| l.starts_with("unchanged: ")), "{out}");
    assert_eq!(s.sim.write_count(), 0, "{:?}", s.sim.requests());
    assert_eq!(s.secret(), secret);
    assert_eq!(s.objects("mappings").len(), 2);
    assert_eq!(s.objects("transports").len(), 1);
    assert_eq!(s.objects("policies").len(), 18);
    assert_eq!(s.objects("rules").len(), 1);
    assert_eq!(s.objects("bindings").len(), 18);
    assert_eq!(s.sim.schema_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn webhook_install_with_a_new_url_patches_only_the_transports_url() {
    let s = setup().await;
    assert_eq!(s.install(URL).await.0, 0);
    s.sim.reset_requests();

    let moved = "http://127.0.0.1:10/webhooks/authentik";
    let (code, out) = s.install(moved).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("updated: transport pma-sso-webhook (webhook_url)"),
        "{out}"
    );
    assert_eq!(s.sim.write_count(), 1, "{:?}", s.sim.requests());
    let patches: Vec<_> = s
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(
        patches[0].body,
        Some(serde_json::json!({"webhook_url": moved}))
    );
    assert_eq!(s.objects("transports")[0]["webhook_url"], moved);
}

#[tokio::test]
async fn webhook_install_puts_the_account_back_into_an_emptied_group() {
    let s = setup().await;
    assert_eq!(s.install(URL).await.0, 0);
    let other = s.sim.add_token("someone-else", "operator", false);
    // An admin emptied the group and added someone; authentik would now send nothing to us.
    let group_pk = s
        .sim
        .groups()
        .into_iter()
        .find(|g| g["name"] == "pma-sso-webhook")
        .map(|g| g["pk"].clone())
        .expect("group");
    let client = reqwest::Client::new();
    let response = client
        .patch(format!(
            "{}/api/v3/core/groups/{}/",
            s.sim.base_url(),
            group_pk.as_str().unwrap_or_default()
        ))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"users": [other]}))
        .send()
        .await
        .expect("patch group");
    assert_eq!(response.status(), 200);
    s.sim.reset_requests();

    let (code, out) = s.install(URL).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("updated: destination group pma-sso-webhook"),
        "{out}"
    );
    let group = s
        .sim
        .groups()
        .into_iter()
        .find(|g| g["name"] == "pma-sso-webhook")
        .expect("group");
    assert_eq!(group["users"], serde_json::json!([other, s.account_pk]));
    assert_eq!(s.sim.write_count(), 1);
}

#[tokio::test]
async fn the_stand_in_refuses_a_token_without_rights() {
    let s = setup().await;
    s.sim.add_token("no-rights", "nobody", false);
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(format!("{}/api/v3{path}", s.sim.base_url()))
            .bearer_auth("no-rights")
            .send()
    };
    let me: Value = get("/core/users/me/")
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["user"]["username"], "nobody");
    assert_eq!(
        get("/events/transports/").await.expect("list").status(),
        403
    );
}
