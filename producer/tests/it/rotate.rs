//! `rotate` puts a new client secret in `.env`, authentik and the service, leaves `verify`
//! green, and the old secret is rejected by the token endpoint and printed nowhere. A rotation
//! stopped at each step, for each type with a secret, is repaired by the next `fix`.

use crate::verify::fixed;

/// The token endpoint's answer to a client-credentials grant: status and body.
pub async fn grant(token_url: &str, id: &str, secret: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .expect("token endpoint");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn rotate_one_then_all_leaves_verify_green_and_the_old_secrets_rejected() {
    let s = fixed().await;
    let token_url = format!("{}/application/o/token/", s.sim.authentik.base_url());
    let id = s.env("GRAFANA_SSO_CLIENT_ID");
    let old = s.env("GRAFANA_SSO_CLIENT_SECRET");
    assert_eq!(grant(&token_url, &id, &old).await.0, 200);

    let (code, out) = s.pma(&["--inline", "rotate", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    let new = s.env("GRAFANA_SSO_CLIENT_SECRET");
    assert_ne!(new, old);
    assert_eq!(new.len(), 64);
    assert!(!out.contains(&old) && !out.contains(&new), "{out}");
    assert!(
        out.starts_with("✓ grafana (oidc) — wrote a new client secret to .env as GRAFANA_SSO_CLIENT_SECRET; updated provider pma-sso-grafana (client_secret)"),
        "{out}"
    );
    assert!(out.contains("✓ grafana (oidc) — login path works"), "{out}");
    assert!(out.contains("restart needed: grafana"), "{out}");
    let (status, body) = grant(&token_url, &id, &old).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(grant(&token_url, &id, &new).await.0, 200);

    // Every service with a client secret, one at a time; the rest of the platform stays green.
    let keys = [
        "ERPNEXT_SSO_CLIENT_SECRET",
        "GITEA_SSO_CLIENT_SECRET",
        "WIKIJS_SSO_CLIENT_SECRET",
        "REDMINE_SSO_CLIENT_SECRET",
    ];
    let before: Vec<String> = keys.iter().map(|k| s.env(k)).collect();
    let (code, out) = s.pma(&["--inline", "rotate", "--all"]).await;
    assert_eq!(code, 0, "{out}");
    for (key, old) in keys.iter().zip(&before) {
        assert_ne!(&s.env(key), old, "{key} not rotated");
        assert!(!out.contains(old.as_str()), "{out}");
    }
    assert_eq!(out.matches("login path works").count(), 10, "{out}");
    let (code, out) = s.pma(&["--inline", "verify"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = s.pma(&["--inline", "check"]).await;
    assert_eq!(code, 0, "{out}");

    let (code, out) = s.pma(&["--inline", "rotate", "zammad"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("a saml service has no OAuth2 client"), "{out}");
}

/// Where a rotation is stopped.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// authentik refuses every provider write: the new secret is in `.env` only.
    EnvWritten,
    /// The service refuses the delivery: authentik has the new secret, the service the old.
    AuthentikPatched,
    /// The token endpoint fails: everything is rotated, the closing verify is red.
    Delivered,
}

/// The service's own switch that makes its delivery fail, and the one that heals it.
fn break_delivery(s: &crate::verify::Setup, service: &str, broken: bool) {
    match service {
        // Wiki.js would turn its API back on itself: make it unreachable instead.
        "wikijs" => {
            let url = s.sim.wikijs.base_url();
            s.set_env(
                "WIKIJS_URL",
                if broken { "http://127.0.0.1:9" } else { &url },
            );
        }
        "erpnext" => {
            if broken {
                s.sim.frappe.set_api_secret("not-the-api-secret");
            } else {
                let secret = s.env("ERPNEXT_API_SECRET");
                s.sim.frappe.set_api_secret(&secret);
            }
        }
        // `exec` deliveries: the runner fails.
        _ => s.set_env("PMA_SSO_EXEC_RUNNER", if broken { "false" } else { "true" }),
    }
}

/// Stop a rotation of `service` at each step in turn; after each, `fix` repairs it: verify is
/// green, the secret before the rotation is rejected and the one in `.env` accepted.
async fn interrupted_rotations_are_repaired_by_fix(service: &str, kind: &str) {
    let s = fixed().await;
    let prefix = service.to_ascii_uppercase();
    let id_key = format!("{prefix}_SSO_CLIENT_ID");
    let secret_key = format!("{prefix}_SSO_CLIENT_SECRET");
    let provider = format!("pma-sso-{service}");
    let token_url = format!("{}/application/o/token/", s.sim.authentik.base_url());
    let id = s.env(&id_key);
    for stop in [Stop::EnvWritten, Stop::AuthentikPatched, Stop::Delivered] {
        let old = s.env(&secret_key);
        assert_eq!(grant(&token_url, &id, &old).await.0, 200, "{stop:?}");
        match stop {
            Stop::EnvWritten => s.sim.authentik.set_faults(testkit::Faults {
                error_rate: 1.0,
                path_prefix: Some("/providers/oauth2/".into()),
                ..testkit::Faults::default()
            }),
            Stop::AuthentikPatched => break_delivery(&s, service, true),
            Stop::Delivered => s.sim.authentik.set_faults(testkit::Faults {
                error_rate: 1.0,
                path_prefix: Some("/application/o/token/".into()),
                ..testkit::Faults::default()
            }),
        }
        let (code, out) = s.pma(&["--inline", "rotate", service]).await;
        let new = s.env(&secret_key);
        assert_ne!(new, old, "{stop:?}: .env is written first");
        assert!(
            !out.contains(&old) && !out.contains(&new),
            "{stop:?}: {out}"
        );
        let in_authentik = s
            .sim
            .authentik
            .provider_by_name(&provider)
            .and_then(|p| p["client_secret"].as_str().map(str::to_owned))
            .expect("provider");
        match stop {
            Stop::EnvWritten => {
                assert_eq!(code, 2, "{stop:?}: {out}");
                assert_eq!(in_authentik, old, "{stop:?}: authentik untouched");
            }
            Stop::AuthentikPatched => {
                assert_eq!(code, 2, "{stop:?}: {out}");
                assert_eq!(in_authentik, new, "{stop:?}: authentik has the new secret");
            }
            Stop::Delivered => {
                assert_eq!(code, 1, "{stop:?}: {out}");
                assert_eq!(in_authentik, new, "{stop:?}");
                assert!(
                    out.contains(&format!("❌ {service} ({kind}) — token grant failed")),
                    "{out}"
                );
            }
        }
        // Healed platform, rotation still half done: verify says so (except after delivery,
        // where only the proof was missing).
        s.sim.authentik.set_faults(testkit::Faults::default());
        break_delivery(&s, service, false);
        let (code, out) = s.pma(&["--inline", "verify", service]).await;
        match stop {
            Stop::Delivered => assert_eq!(code, 0, "{stop:?}: {out}"),
            _ => assert_eq!(
                code, 1,
                "{stop:?}: verify must see the half rotation: {out}"
            ),
        }

        let (code, out) = s.pma(&["--inline", "fix", service]).await;
        assert_eq!(code, 0, "{stop:?}: {out}");
        let (code, out) = s.pma(&["--inline", "verify", service]).await;
        assert_eq!(code, 0, "{stop:?}: {out}");
        assert!(
            out.starts_with(&format!("✓ {service} ({kind}) — login path works")),
            "{out}"
        );
        let (status, body) = grant(&token_url, &id, &old).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{stop:?}"
        );
        assert_eq!(grant(&token_url, &id, &new).await.0, 200, "{stop:?}");
    }
}

#[tokio::test]
async fn interrupted_oauth_rotations_are_repaired_by_fix() {
    interrupted_rotations_are_repaired_by_fix("redmine", "oauth").await;
}

#[tokio::test]
async fn interrupted_oidc_rotations_are_repaired_by_fix() {
    interrupted_rotations_are_repaired_by_fix("gitea", "oidc").await;
}

#[tokio::test]
async fn interrupted_wikijs_rotations_are_repaired_by_fix() {
    interrupted_rotations_are_repaired_by_fix("wikijs", "wikijs").await;
}

#[tokio::test]
async fn interrupted_frappe_rotations_are_repaired_by_fix() {
    interrupted_rotations_are_repaired_by_fix("erpnext", "frappe").await;
}
