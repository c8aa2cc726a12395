//! For each bundled oauth/oidc service: empty authentik → add → check green; add again creates
//! nothing; fix on an in-sync service sends no write.

use worker::Action;

use crate::support::Platform;

const OAUTH_FAMILY: [&str; 8] = [
    "redmine",
    "mattermost",
    "linkding",
    "grafana",
    "n8n",
    "superset",
    "nextcloud",
    "gitea",
];

#[tokio::test]
async fn every_oauth_and_oidc_service_goes_from_empty_to_green_and_stays_single() {
    let p = Platform::new(&OAUTH_FAMILY).await;
    for service in OAUTH_FAMILY {
        let before = p.ctx.check(service).await.expect("check runs");
        assert!(!before.in_sync(), "{service} is green before add");
        assert!(
            before.line().contains("authentik app missing"),
            "{}",
            before.line()
        );

        p.ctx
            .apply(service, Action::Add)
            .await
            .unwrap_or_else(|e| panic!("{service}: {e}"));
        let after = p.ctx.check(service).await.expect("check runs");
        assert!(after.in_sync(), "{}", after.line());
        assert_eq!(
            after.line(),
            format!(
                "✓ {service} ({}) — authentik app present, redirects match",
                after.kind
            )
        );

        let again = p.ctx.apply(service, Action::Add).await.expect("second add");
        assert!(
            again.actions.is_empty(),
            "{service}: second add did {:?}",
            again.actions
        );
        assert_eq!(p.apps_with_slug(service), 1, "{service}");
        assert_eq!(
            p.providers_named(&format!("pma-sso-{service}")),
            1,
            "{service}"
        );

        let writes = p.sim.write_count();
        let fixed = p.ctx.apply(service, Action::Fix).await.expect("fix");
        assert!(fixed.actions.is_empty(), "{service}: {:?}", fixed.actions);
        assert_eq!(
            p.sim.write_count(),
            writes,
            "{service}: fix on an in-sync service wrote to authentik"
        );
    }
    assert!(
        p.sim.schema_violations().is_empty(),
        "{:?}",
        p.sim.schema_violations()
    );
}

#[tokio::test]
async fn add_writes_credentials_settings_and_the_configured_flag() {
    let p = Platform::new(&["grafana", "mattermost", "superset", "nextcloud"]).await;
    for s in ["grafana", "mattermost", "superset", "nextcloud"] {
        p.ctx
            .apply(s, Action::Add)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    let provider = p.sim.provider_by_name("pma-sso-grafana").expect("provider");
    assert_eq!(
        p.env_value("GRAFANA_SSO_CLIENT_ID").as_deref(),
        provider["client_id"].as_str()
    );
    assert_eq!(
        p.env_value("GRAFANA_SSO_CLIENT_SECRET").as_deref(),
        provider["client_secret"].as_str()
    );
    assert_eq!(
        provider["redirect_uris"],
        serde_json::json!([{"matching_mode": "strict", "url": "https://grafana.example.org/login/generic_oauth"}])
    );
    assert_eq!(provider["issuer_mode"], "per_provider");
    let keypair = p
        .sim
        .certificate_keypairs()
        .into_iter()
        .find(|k| k["name"] == "authentik Self-signed Certificate")
        .expect("kp");
    assert_eq!(provider["signing_key"], keypair["pk"]);
    let app = p.sim.application("grafana").expect("app");
    assert_eq!(app["meta_publisher"], "pma-sso");
    assert_eq!(app["provider"], provider["pk"]);

    let manifest = std::fs::read_to_string(p.path("packages/grafana/manifest.yaml")).expect("read");
    assert!(manifest.contains("  configured: true\n"), "{manifest}");
    assert!(
        manifest.starts_with("# Grafana's generic OAuth"),
        "comments kept"
    );

    let native = std::fs::read_to_string(p.path("packages/grafana/.sso.env")).expect("delivered");
    assert!(
        native.contains("GF_SERVER_ROOT_URL=https://grafana.example.org\n"),
        "{native}"
    );
    assert!(native.contains(
        "GF_AUTH_GENERIC_OAUTH_AUTH_URL=https://auth.example.org/application/o/authorize/\n"
    ));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(p.path("packages/grafana/.sso.env"))
            .expect("meta")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // Mattermost's custom scopes exist and are attached.
    let mm = p
        .sim
        .provider_by_name("pma-sso-mattermost")
        .expect("provider");
    let scopes: Vec<String> = p
        .sim
        .scope_mappings()
        .into_iter()
        .filter(|m| {
            mm["property_mappings"]
                .as_array()
                .expect("list")
                .contains(&m["pk"])
        })
        .map(|m| m["scope_name"].as_str().unwrap_or_default().to_owned())
        .collect();
    for scope in ["openid", "email", "profile", "username", "id"] {
        assert!(
            scopes.iter().any(|s| s == scope),
            "{scope} missing from {scopes:?}"
        );
    }

    // Superset's config file is rendered without secrets; the secrets go to its env file.
    let config = std::fs::read_to_string(p.path("packages/superset/superset_config.py"))
        .expect("file delivery");
    assert!(config.contains("\"server_metadata_url\": \"https://auth.example.org/application/o/superset/.well-known/openid-configuration\""));
    let secret = p.env_value("SUPERSET_SSO_CLIENT_SECRET").expect("secret");
    assert!(!config.contains(&secret));

    // Nextcloud's commands ran through the runner, secrets passed by name only.
    let log = p.exec_log();
    assert!(
        log.contains("--user www-data nextcloud php occ app:install user_oidc"),
        "{log}"
    );
    assert!(log.contains("-e SSO_CLIENT_SECRET"), "{log}");
    let nc_secret = p.env_value("NEXTCLOUD_SSO_CLIENT_SECRET").expect("secret");
    assert!(!log.contains(&nc_secret), "a secret reached a command line");
}

#[tokio::test]
async fn nextcloud_registers_both_redirect_paths() {
    let p = Platform::new(&["nextcloud"]).await;
    p.ctx.apply("nextcloud", Action::Add).await.expect("add");
    let provider = p
        .sim
        .provider_by_name("pma-sso-nextcloud")
        .expect("provider");
    let urls: Vec<&str> = provider["redirect_uris"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|u| u["url"].as_str())
        .collect();
    assert_eq!(
        urls,
        [
            "https://nextcloud.example.org/apps/user_oidc/code",
            "https://nextcloud.example.org/index.php/apps/user_oidc/code"
        ]
    );
}

#[tokio::test]
async fn existing_env_credentials_are_reused_by_add() {
    let p = Platform::with_env(&["linkding"], "DOMAIN=example.org\nLINKDING_SSO_CLIENT_ID=linkding-fixed-id\nLINKDING_SSO_CLIENT_SECRET=fixed-secret-from-env-0123456789\n").await;
    p.ctx.apply("linkding", Action::Add).await.expect("add");
    let provider = p
        .sim
        .provider_by_name("pma-sso-linkding")
        .expect("provider");
    assert_eq!(provider["client_id"], "linkding-fixed-id");
    assert_eq!(
        provider["client_secret"],
        "fixed-secret-from-env-0123456789"
    );
    assert_eq!(
        p.env_value("LINKDING_SSO_CLIENT_SECRET").as_deref(),
        Some("fixed-secret-from-env-0123456789")
    );
}

#[tokio::test]
async fn an_add_interrupted_after_the_provider_is_finished_by_the_next_add() {
    let p = Platform::new(&["grafana"]).await;
    p.ctx.apply("grafana", Action::Add).await.expect("add");
    // Simulate a crash between creating the provider and the rest: no app, no .env keys.
    assert!(p.sim.delete_application("grafana"));
    std::fs::write(p.path(".env"), "DOMAIN=example.org\n").expect("reset .env");
    let applied = p.ctx.apply("grafana", Action::Add).await.expect("re-add");
    assert!(
        applied
            .actions
            .iter()
            .any(|a| a == "created application grafana"),
        "{:?}",
        applied.actions
    );
    assert_eq!(p.providers_named("pma-sso-grafana"), 1);
    let provider = p.sim.provider_by_name("pma-sso-grafana").expect("provider");
    assert_eq!(
        p.env_value("GRAFANA_SSO_CLIENT_SECRET").as_deref(),
        provider["client_secret"].as_str()
    );
    assert!(p.ctx.check("grafana").await.expect("check").in_sync());
}

#[tokio::test]
async fn an_application_pma_sso_did_not_create_is_left_alone() {
    let p = Platform::new(&["grafana"]).await;
    p.ctx.apply("grafana", Action::Add).await.expect("add");
    p.sim.patch_application(
        "grafana",
        serde_json::json!({"meta_publisher": "someone else"}),
    );
    let report = p.ctx.check("grafana").await.expect("check");
    assert!(
        report
            .line()
            .contains("exists but is not managed by pma-sso"),
        "{}",
        report.line()
    );
    let writes = p.sim.write_count();
    let err = p
        .ctx
        .apply("grafana", worker::Action::Fix)
        .await
        .expect_err("refuses");
    assert!(
        matches!(err, worker::FlowError::ForeignApplication { .. }),
        "{err}"
    );
    assert!(!err.is_transient());
    assert_eq!(p.sim.write_count(), writes);
}

#[tokio::test]
async fn an_invalid_token_is_a_permanent_forbidden_error() {
    let p = Platform::new(&["grafana"]).await;
    let mut settings = p.ctx.settings.clone();
    settings.authentik_token = secrecy::SecretString::from("wrong-token".to_owned());
    let ctx = worker::Context::new(settings).expect("ctx");
    let err = ctx.check("grafana").await.expect_err("forbidden");
    let text = err.to_string();
    assert!(text.contains("forbidden (Token invalid/expired)"), "{text}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn the_sweep_reads_authentik_in_a_few_list_calls() {
    let p = Platform::new(&OAUTH_FAMILY).await;
    for s in OAUTH_FAMILY {
        p.ctx.apply(s, Action::Add).await.expect("add");
    }
    p.sim.reset_requests();
    let results = p.ctx.check_all().await.expect("sweep");
    assert_eq!(results.len(), OAUTH_FAMILY.len());
    for r in &results {
        assert!(
            r.outcome.as_ref().expect("no error").in_sync(),
            "{}",
            r.service
        );
    }
    // One page of each kind of object, however many services: applications; OAuth2, SAML and
    // proxy providers; outposts; flows; scope and SAML mappings; keypairs.
    assert_eq!(p.sim.requests().len(), 9, "{:?}", p.sim.requests());
}
