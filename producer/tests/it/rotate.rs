//! `rotate` puts a new client secret in `.env`, authentik and the service, leaves `verify`
//! green, and the old secret is rejected by the token endpoint and printed nowhere.

use crate::verify::fixed;

async fn grant(token_url: &str, id: &str, secret: &str) -> (u16, serde_json::Value) {
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

#[tokio::test]
async fn a_rotation_interrupted_after_the_env_write_is_repaired_by_the_next_fix() {
    let s = fixed().await;
    let token_url = format!("{}/application/o/token/", s.sim.authentik.base_url());
    let id = s.env("REDMINE_SSO_CLIENT_ID");
    let old = s.env("REDMINE_SSO_CLIENT_SECRET");
    // authentik fails every provider call: the new secret reaches .env and nothing else.
    s.sim.authentik.set_faults(testkit::Faults {
        error_rate: 1.0,
        path_prefix: Some("/providers/oauth2/".into()),
        ..testkit::Faults::default()
    });
    let (code, out) = s.pma(&["--inline", "rotate", "redmine"]).await;
    assert_eq!(code, 2, "{out}");
    let new = s.env("REDMINE_SSO_CLIENT_SECRET");
    assert_ne!(new, old);
    assert!(!out.contains(&old) && !out.contains(&new), "{out}");
    s.sim.authentik.set_faults(testkit::Faults::default());

    let (code, out) = s.pma(&["--inline", "verify", "redmine"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("service's secret is rejected by authentik"),
        "{out}"
    );
    let (code, out) = s.pma(&["--inline", "fix", "redmine"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = s.pma(&["--inline", "verify", "redmine"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(grant(&token_url, &id, &old).await.0, 400);
    assert_eq!(grant(&token_url, &id, &new).await.0, 200);
}
