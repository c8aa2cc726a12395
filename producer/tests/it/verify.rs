//! `verify` walks each service's login path against the stand-ins' protocol endpoints
//! (discovery, JWKS, token grant, SAML metadata) with what the service holds.

use std::path::Path;
use std::process::Output;

use serde_json::json;
use testkit::PlatformSim;
use worker::envfile::EnvFile;

use crate::cli::{ALL, TOKEN, copy_package};

pub struct Setup {
    pub sim: PlatformSim,
    pub dir: tempfile::TempDir,
}

/// All twelve services, with the public authentik URL being the stand-in itself (so the
/// issuer the services are given is one that answers), and `fix-all` run.
pub async fn fixed() -> Setup {
    let sim = PlatformSim::start(TOKEN).await;
    let base = sim.authentik.base_url();
    sim.authentik.set_public_url(Some(&base));
    let dir = tempfile::tempdir().expect("tmp");
    for s in ALL {
        copy_package(s, dir.path());
    }
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "DOMAIN=example.org\nAUTHENTIK_TOKEN={TOKEN}\nAUTHENTIK_PUBLIC_URL={base}\nPMA_SSO_EXEC_RUNNER=true\n{}",
            sim.env_lines()
        ),
    )
    .expect("env");
    let s = Setup { sim, dir };
    let (code, out) = s.pma(&["--inline", "fix-all"]).await;
    assert_eq!(code, 0, "{out}");
    s
}

impl Setup {
    pub async fn pma(&self, args: &[&str]) -> (i32, String) {
        pma(self.dir.path(), args).await
    }

    pub fn env(&self, key: &str) -> String {
        EnvFile::read(&self.dir.path().join(".env"))
            .expect("read .env")
            .get(key)
            .expect("key in .env")
            .to_owned()
    }

    pub fn set_env(&self, key: &str, value: &str) {
        worker::envfile::update(&self.dir.path().join(".env"), &[(key, Some(value))])
            .expect("write .env");
    }
}

async fn pma(dir: &Path, args: &[&str]) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PMA_SSO_ENV_FILE", dir.join(".env"))
        .output()
        .await
        .expect("run pma-sso");
    let err = String::from_utf8_lossy(&stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (
        status.code().expect("exit code"),
        String::from_utf8_lossy(&stdout).into_owned() + &err,
    )
}

fn line<'o>(out: &'o str, service: &str) -> &'o str {
    out.lines()
        .find(|l| l.contains(&format!(" {service} (")))
        .unwrap_or_else(|| panic!("no line for {service}: {out}"))
}

#[tokio::test]
async fn verify_is_green_for_all_twelve_after_fix_all() {
    let s = fixed().await;
    let (code, out) = s.pma(&["--inline", "verify"]).await;
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 12, "{out}");
    for (line, service) in lines.iter().zip(ALL) {
        assert!(line.starts_with(&format!("✓ {service} (")), "{line}");
    }
    assert!(out.contains(
        "✓ grafana (oidc) — login path works: discovery, JWKS, token grant, redirects accepted"
    ));
    assert!(out.contains("✓ zammad (saml) — login path works: IdP metadata, signing cert trusted"));
    assert!(
        out.contains("✓ uptime-kuma (proxy) — not probed: forward auth needs a reachable outpost")
    );
    // One grant per OAuth2 client, each through the token endpoint.
    assert_eq!(s.sim.authentik.count("POST", "/application/o/token/"), 10);
}

#[tokio::test]
async fn each_broken_login_path_is_red_with_its_reason() {
    let s = fixed().await;
    let authentik = &s.sim.authentik;

    // The secret changed in .env only.
    s.set_env("REDMINE_SSO_CLIENT_SECRET", "not-the-secret-authentik-has");
    // The JWKS no longer publishes the key the manifest says the provider signs with.
    let other = authentik.add_keypair("rogue signing key", 365);
    authentik.patch_provider("pma-sso-n8n", json!({"signing_key": other["pk"]}));
    // The provider no longer accepts the service's redirect.
    authentik.patch_provider(
        "pma-sso-mattermost",
        json!({"redirect_uris": [{"matching_mode": "strict", "url": "https://old.example/cb"}]}),
    );
    // A regex that matches the whole callback is accepted.
    authentik.patch_provider(
        "pma-sso-linkding",
        json!({"redirect_uris": [{"matching_mode": "regex", "url": r"https://linkding\.example\.org/.*"}]}),
    );
    // The SAML provider signs with another certificate than Zammad trusts.
    authentik.patch_provider(
        "pma-sso-zammad",
        json!({"signing_kp": other["pk"], "sign_assertion": true, "sign_response": true}),
    );

    let (code, out) = s.pma(&["--inline", "verify"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        line(&out, "redmine").starts_with(
            "❌ redmine (oauth) — service's secret is rejected by authentik (invalid_grant)"
        ),
        "{out}"
    );
    assert!(!out.contains("not-the-secret-authentik-has"), "{out}");
    let n8n = line(&out, "n8n");
    assert!(
        n8n.starts_with("❌ n8n (oidc) — JWKS key mismatch: "),
        "{n8n}"
    );
    assert!(
        n8n.contains("publishes rogue signing key, not authentik Self-signed Certificate"),
        "{n8n}"
    );
    assert!(
        line(&out, "mattermost").contains(
            "redirect not accepted: authentik does not accept https://mattermost.example.org/signup/gitlab/complete (it accepts https://old.example/cb (strict))"
        ),
        "{out}"
    );
    assert!(
        line(&out, "linkding").starts_with("✓ linkding (oauth)"),
        "{out}"
    );
    let zammad = line(&out, "zammad");
    assert!(
        zammad.starts_with("❌ zammad (saml) — signing cert mismatch: service has "),
        "{zammad}"
    );
    assert!(
        zammad.contains(&format!(
            "metadata has {}",
            other["fingerprint_sha256"].as_str().expect("fp")
        )),
        "{zammad}"
    );
    assert!(
        line(&out, "grafana").starts_with("✓ grafana (oidc)"),
        "{out}"
    );

    // The issuer changed: discovery names another host than the one the services were given.
    authentik.set_public_url(Some("https://auth.elsewhere.example"));
    let (code, out) = s.pma(&["--inline", "verify", "grafana"]).await;
    assert_eq!(code, 1, "{out}");
    let base = authentik.base_url();
    assert_eq!(
        out.trim_end(),
        format!(
            "❌ grafana (oidc) — issuer mismatch: the service was given {base}/application/o/grafana/, discovery names https://auth.elsewhere.example/application/o/grafana/"
        )
    );
}
