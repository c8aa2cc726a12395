//! `verify` walks each service's login path against the stand-ins' protocol endpoints
//! (discovery, JWKS, token grant, SAML metadata) with what the service holds.

use std::path::Path;
use std::process::Output;

use serde_json::json;
use testkit::PlatformSim;

use crate::cli::{ALL, TOKEN};
use crate::status::{dot_env, set_dot_env};

pub struct Setup {
    pub sim: PlatformSim,
    pub dir: tempfile::TempDir,
}

/// The stand-ins, with the public authentik URL being the stand-in itself (so the issuer the
/// services are given is one that answers), and the `.env` lines that name them.
pub async fn answering_platform() -> (PlatformSim, String) {
    let sim = PlatformSim::start(TOKEN).await;
    let base = sim.authentik.base_url();
    sim.authentik.set_public_url(Some(&base));
    let lines = format!("AUTHENTIK_PUBLIC_URL={base}\n{}", sim.env_lines());
    (sim, lines)
}

/// All twelve services against [`answering_platform`], and `fix-all` run.
pub async fn fixed() -> Setup {
    let (sim, lines) = answering_platform().await;
    let dir = crate::serve::platform_dir(
        &ALL,
        &format!("DOMAIN=example.org\nAUTHENTIK_TOKEN={TOKEN}\nPMA_SSO_EXEC_RUNNER=true\n{lines}"),
    );
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
        dot_env(self.dir.path(), key)
    }

    pub fn set_env(&self, key: &str, value: &str) {
        set_dot_env(self.dir.path(), key, value);
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
    s.set_env("PMA_SSO_OUTPOST_URL", &s.sim.authentik.base_url());
    let (code, out) = s.pma(&["--inline", "verify"]).await;
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 13, "{out}");
    for (line, service) in lines.iter().zip(ALL) {
        assert!(line.starts_with(&format!("✓ {service} (")), "{line}");
    }
    assert_eq!(lines[12], "12 verified, 0 red, 0 unverified, 0 errors");
    assert!(out.contains(
        "✓ grafana (oidc) — login path works: discovery, JWKS, token grant, redirects accepted"
    ));
    assert!(out.contains("✓ zammad (saml) — login path works: IdP metadata, signing cert trusted, the service's SAML settings match"));
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
        out.lines().next().unwrap_or_default(),
        format!(
            "❌ grafana (oidc) — issuer mismatch: the service was given {base}/application/o/grafana/, discovery names https://auth.elsewhere.example/application/o/grafana/"
        )
    );
}

#[tokio::test]
async fn proxy_services_are_probed_at_the_outposts_forward_auth_endpoint() {
    let s = fixed().await;
    let authentik = &s.sim.authentik;
    // The embedded outpost answers on authentik's own port.
    s.set_env("PMA_SSO_OUTPOST_URL", &authentik.base_url());
    let (code, out) = s.pma(&["--inline", "verify", "uptime-kuma"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().next().unwrap_or_default(),
        "✓ uptime-kuma (proxy) — login path works: the outpost redirects an anonymous request to log in"
    );
    assert!(
        out.ends_with("\n1 verified, 0 red, 0 unverified, 0 errors\n"),
        "{out}"
    );
    assert_eq!(
        authentik.count("GET", "/outpost.goauthentik.io/auth/traefik"),
        1
    );

    // Taken off the outpost: nothing serves the host any more.
    authentik.patch_outpost("authentik Embedded Outpost", json!({"providers": []}));
    let (code, out) = s.pma(&["--inline", "verify", "uptime-kuma"]).await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.lines().next().unwrap_or_default(),
        format!(
            "❌ uptime-kuma (proxy) — the outpost at {} does not serve uptime.example.org (no app for hostname: is provider pma-sso-uptime-kuma attached to it?)",
            authentik.base_url()
        )
    );
    // `fix` attaches it again.
    let (code, out) = s.pma(&["--inline", "fix", "uptime-kuma"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = s.pma(&["--inline", "verify", "uptime-kuma"]).await;
    assert_eq!(code, 0, "{out}");

    // An outpost URL where nothing answers.
    s.set_env("PMA_SSO_OUTPOST_URL", "http://127.0.0.1:9");
    let (code, out) = s.pma(&["--inline", "verify", "uptime-kuma"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("❌ uptime-kuma (proxy) — forward auth failed: http://127.0.0.1:9/outpost.goauthentik.io/auth/traefik does not answer"),
        "{out}"
    );
}

/// The stand-in's embedded outpost answers as authentik's does (internal/outpost/proxyv2):
/// Traefik's endpoint redirects an anonymous request with 307 to the outpost's start URL on
/// the application's host, nginx's answers 401, skipped paths pass, an unknown host is 400.
#[tokio::test]
async fn the_stand_in_outpost_answers_forward_auth_like_authentiks() {
    let s = fixed().await;
    let base = s.sim.authentik.base_url();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let traefik = |host: &'static str, uri: &'static str| {
        client
            .get(format!("{base}/outpost.goauthentik.io/auth/traefik"))
            .header("X-Forwarded-Proto", "https")
            .header("X-Forwarded-Host", host)
            .header("X-Forwarded-Uri", uri)
            .send()
    };
    let r = traefik("uptime.example.org", "/dashboard")
        .await
        .expect("traefik");
    assert_eq!(r.status().as_u16(), 307);
    assert_eq!(
        r.headers()["location"],
        "https://uptime.example.org/outpost.goauthentik.io/start"
    );
    // skip_path_regex: status pages stay public.
    let r = traefik("uptime.example.org", "/status/main")
        .await
        .expect("skip");
    assert_eq!(r.status().as_u16(), 200);
    let r = client
        .get(format!("{base}/outpost.goauthentik.io/auth/nginx"))
        .header("X-Original-URL", "https://uptime.example.org/dashboard")
        .send()
        .await
        .expect("nginx");
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .get(format!("{base}/outpost.goauthentik.io/auth/nginx"))
        .send()
        .await
        .expect("nginx without the original URL");
    assert_eq!(r.status().as_u16(), 500);

    // A second proxy application: host lookup is exact, and an unknown host is refused.
    let dir = s.dir.path().join("packages").join("other-kuma");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("manifest.yaml"),
        "name: other-kuma\ninternal_url: http://other:3001\nsso:\n  type: proxy\n  configured: false\n",
    )
    .expect("manifest");
    let (code, out) = s.pma(&["--inline", "add", "other-kuma"]).await;
    assert_eq!(code, 0, "{out}");
    let r = traefik("other-kuma.example.org", "/")
        .await
        .expect("second");
    assert_eq!(
        r.headers()["location"],
        "https://other-kuma.example.org/outpost.goauthentik.io/start"
    );
    let r = traefik("nobody.example.org", "/").await.expect("unknown");
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["Message"], "no app for hostname");
    assert_eq!(body["Host"], "nobody.example.org");
}

#[tokio::test]
async fn a_proxy_service_without_an_outpost_url_is_unverified_and_only_strict_fails_on_it() {
    let s = fixed().await;
    let (code, out) = s.pma(&["--inline", "verify", "uptime-kuma"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        "⚠ uptime-kuma (proxy) — not probed: no outpost URL configured (PMA_SSO_OUTPOST_URL)\n0 verified, 0 red, 1 unverified, 0 errors\n"
    );
    let (code, out) = s
        .pma(&["--inline", "verify", "--strict", "uptime-kuma"])
        .await;
    assert_eq!(code, 1, "{out}");
    let (code, out) = s
        .pma(&["--inline", "--json", "verify", "uptime-kuma"])
        .await;
    assert_eq!(code, 0, "{out}");
    let rows = crate::output::valid("check", &out);
    assert_eq!(rows[0]["state"], "unverified", "{out}");
    assert_eq!(rows[0]["in_sync"], true, "{out}");
    assert_eq!(
        rows[0]["summary"],
        "not probed: no outpost URL configured (PMA_SSO_OUTPOST_URL)"
    );
}

#[tokio::test]
async fn zammad_with_saml_off_and_a_wrong_sso_url_is_red_in_verify_as_in_check() {
    let s = fixed().await;
    s.sim.zammad.set_setting("auth_saml", json!(false));
    let mut credentials = s
        .sim
        .zammad
        .setting("auth_saml_credentials")
        .expect("creds");
    credentials["idp_sso_target_url"] = json!("https://wrong.example/sso");
    s.sim
        .zammad
        .set_setting("auth_saml_credentials", credentials);
    let (code, check) = s.pma(&["--inline", "check", "zammad"]).await;
    assert_eq!(code, 1, "{check}");
    let (code, out) = s.pma(&["--inline", "verify", "zammad"]).await;
    assert_eq!(code, 1, "{out}");
    let zammad = line(&out, "zammad");
    assert!(zammad.starts_with("❌ zammad (saml) — "), "{zammad}");
    assert!(
        zammad.contains("auth_saml in zammad: want true, has false"),
        "{zammad}"
    );
    assert!(zammad.contains("auth_saml_credentials"), "{zammad}");
    assert!(
        out.ends_with("0 verified, 1 red, 0 unverified, 0 errors\n"),
        "{out}"
    );
}

#[tokio::test]
async fn a_service_with_no_deliver_block_is_unverified_not_green() {
    let s = fixed().await;
    let dir = s.dir.path().join("packages").join("tiny");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("manifest.yaml"),
        "name: tiny\nsso:\n  type: oauth\n  redirect_path: /oauth2callback\n  configured: false\n",
    )
    .expect("manifest");
    let (code, out) = s.pma(&["--inline", "add", "tiny"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = s.pma(&["--inline", "verify", "tiny"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("⚠ tiny (oauth) — not probed: no deliveries to read back"),
        "{out}"
    );
    let (code, out) = s.pma(&["--inline", "verify", "--strict", "tiny"]).await;
    assert_eq!(code, 1, "{out}");
    // A red probe still wins over an unverified one.
    s.set_env("TINY_SSO_CLIENT_SECRET", "not-what-authentik-has");
    let (code, out) = s.pma(&["--inline", "verify", "tiny"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("❌ tiny (oauth) — service's secret is rejected by authentik"),
        "{out}"
    );
}

#[tokio::test]
async fn json_summary_says_what_the_line_says_for_check_and_verify() {
    let s = fixed().await;
    assert!(s.sim.authentik.delete_application("linkding"));
    let (code, out) = s.pma(&["--inline", "--json", "check", "linkding"]).await;
    assert_eq!(code, 1, "{out}");
    let rows = crate::output::valid("check", &out);
    let (_, text) = s.pma(&["--inline", "check", "linkding"]).await;
    assert_eq!(rows[0]["state"], "red");
    assert_eq!(
        format!(
            "❌ linkding (oauth) — {}",
            rows[0]["summary"].as_str().expect("summary")
        ),
        text.trim_end()
    );
    assert!(
        !rows[0]["summary"]
            .as_str()
            .expect("summary")
            .contains("app present"),
        "{out}"
    );

    s.sim.authentik.patch_provider(
        "pma-sso-n8n",
        json!({"redirect_uris": [{"matching_mode": "strict", "url": "https://old.example/cb"}]}),
    );
    let (code, out) = s.pma(&["--inline", "--json", "verify", "n8n"]).await;
    assert_eq!(code, 1, "{out}");
    let rows = crate::output::valid("check", &out);
    let summary = rows[0]["summary"].as_str().expect("summary");
    assert!(summary.starts_with("redirect not accepted"), "{summary}");
    assert!(!summary.contains("login path works"), "{summary}");
}
