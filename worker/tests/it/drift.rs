//! Each drift kind, injected into authentik or `.env`: check names it, fix repairs it, check is
//! green again.

use serde_json::json;
use worker::Action;

use crate::support::Platform;

async fn added(service: &str) -> Platform {
    let p = Platform::new(&[service]).await;
    p.ctx.apply(service, Action::Add).await.expect("add");
    assert!(p.ctx.check(service).await.expect("check").in_sync());
    p
}

async fn drift_then_fix(p: &Platform, service: &str, expect: &str) {
    let report = p.ctx.check(service).await.expect("check");
    let line = report.line();
    assert!(line.starts_with(&format!("❌ {service} (")), "{line}");
    assert!(line.contains(expect), "`{line}` does not name `{expect}`");
    // plan names what fix will do, and writes nothing
    let writes = p.sim.write_count();
    assert!(report.drifts.iter().all(|d| !d.remedy.is_empty()));
    assert_eq!(p.sim.write_count(), writes);
    p.ctx.apply(service, Action::Fix).await.expect("fix");
    let after = p.ctx.check(service).await.expect("check");
    assert!(after.in_sync(), "after fix: {}", after.line());
}

#[tokio::test]
async fn a_changed_redirect_is_named_with_both_values_and_fixed() {
    let p = added("grafana").await;
    p.sim.patch_provider("pma-sso-grafana", json!({"redirect_uris": [{"matching_mode": "strict", "url": "https://grafana.old.example/login/generic_oauth"}]}));
    drift_then_fix(
        &p,
        "grafana",
        "redirect URI mismatch: want https://grafana.example.org/login/generic_oauth, authentik has https://grafana.old.example/login/generic_oauth",
    )
    .await;
}

#[tokio::test]
async fn a_deleted_application_is_recreated() {
    let p = added("redmine").await;
    assert!(p.sim.delete_application("redmine"));
    drift_then_fix(&p, "redmine", "authentik app missing").await;
    assert_eq!(p.apps_with_slug("redmine"), 1);
}

#[tokio::test]
async fn a_deleted_provider_is_recreated_with_the_env_credentials() {
    let p = added("linkding").await;
    let secret = p.env_value("LINKDING_SSO_CLIENT_SECRET").expect("secret");
    assert!(p.sim.delete_provider("pma-sso-linkding"));
    drift_then_fix(&p, "linkding", "provider pma-sso-linkding missing").await;
    let provider = p
        .sim
        .provider_by_name("pma-sso-linkding")
        .expect("recreated");
    assert_eq!(
        provider["client_secret"],
        secret.as_str(),
        ".env stays the source of truth"
    );
    assert_eq!(
        p.sim.application("linkding").expect("app")["provider"],
        provider["pk"]
    );
}

#[tokio::test]
async fn a_secret_changed_in_env_is_pushed_to_authentik() {
    let p = added("mattermost").await;
    p.set_env("MATTERMOST_SSO_CLIENT_SECRET", "rotated-by-operator-5a1e");
    drift_then_fix(
        &p,
        "mattermost",
        "client secret mismatch (.env differs from authentik)",
    )
    .await;
    assert_eq!(
        p.sim.provider_by_name("pma-sso-mattermost").expect("p")["client_secret"],
        "rotated-by-operator-5a1e"
    );
}

#[tokio::test]
async fn a_secret_changed_in_authentik_is_overwritten_from_env() {
    let p = added("n8n").await;
    let secret = p.env_value("N8N_SSO_CLIENT_SECRET").expect("secret");
    p.sim
        .patch_provider("pma-sso-n8n", json!({"client_secret": "changed-in-the-ui"}));
    drift_then_fix(
        &p,
        "n8n",
        "client secret mismatch (.env differs from authentik)",
    )
    .await;
    assert_eq!(
        p.sim.provider_by_name("pma-sso-n8n").expect("p")["client_secret"],
        secret.as_str()
    );
}

#[tokio::test]
async fn a_domain_change_shows_as_redirect_drift_and_stale_settings() {
    let p = added("grafana").await;
    p.set_env("DOMAIN", "new.example");
    let report = p.ctx.check("grafana").await.expect("check");
    let line = report.line();
    assert!(line.contains("redirect URI mismatch: want https://grafana.new.example/login/generic_oauth, authentik has https://grafana.example.org/login/generic_oauth"), "{line}");
    assert!(line.contains("delivered setting stale: GF_SERVER_ROOT_URL in packages/grafana/.sso.env: want https://grafana.new.example, has https://grafana.example.org"), "{line}");
    drift_then_fix(&p, "grafana", "launch URL mismatch").await;
    let native = std::fs::read_to_string(p.path("packages/grafana/.sso.env")).expect("read");
    assert!(
        native.contains(
            "GF_AUTH_GENERIC_OAUTH_TOKEN_URL=https://auth.new.example/application/o/token/"
        )
    );
}

#[tokio::test]
async fn an_edited_delivered_setting_is_named_and_rewritten() {
    let p = added("grafana").await;
    let path = p.path("packages/grafana/.sso.env");
    let text = std::fs::read_to_string(&path).expect("read").replace(
        "GF_AUTH_GENERIC_OAUTH_NAME=authentik",
        "GF_AUTH_GENERIC_OAUTH_NAME=hand-edited",
    );
    std::fs::write(&path, text).expect("write");
    drift_then_fix(&p, "grafana", "delivered setting stale: GF_AUTH_GENERIC_OAUTH_NAME in packages/grafana/.sso.env: want authentik, has hand-edited").await;
}

#[tokio::test]
async fn an_edited_secret_setting_says_only_that_it_differs() {
    let p = added("grafana").await;
    let path = p.path("packages/grafana/.sso.env");
    let secret = p.env_value("GRAFANA_SSO_CLIENT_SECRET").expect("secret");
    let text = std::fs::read_to_string(&path)
        .expect("read")
        .replace(&secret, "leaked-old-value");
    std::fs::write(&path, text).expect("write");
    let line = p.ctx.check("grafana").await.expect("check").line();
    assert!(
        line.contains("GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET in packages/grafana/.sso.env differs"),
        "{line}"
    );
    assert!(
        !line.contains("leaked-old-value") && !line.contains(&secret),
        "{line}"
    );
    drift_then_fix(&p, "grafana", "differs").await;
}

#[tokio::test]
async fn an_edited_rendered_file_and_a_changed_exec_input_are_stale() {
    let p = Platform::new(&["superset", "gitea"]).await;
    for s in ["superset", "gitea"] {
        p.ctx.apply(s, Action::Add).await.expect("add");
    }
    std::fs::write(
        p.path("packages/superset/superset_config.py"),
        "AUTH_TYPE = 0\n",
    )
    .expect("write");
    drift_then_fix(&p, "superset", "delivered file stale: packages/superset/superset_config.py differs from sso/superset_config.py.tmpl").await;

    let runs = p.exec_log().lines().count();
    p.set_env("GITEA_SSO_CLIENT_SECRET", "operator-rotated-secret-77");
    drift_then_fix(
        &p,
        "gitea",
        "`sh` in gitea has not run with the current settings",
    )
    .await;
    assert_eq!(
        p.exec_log().lines().count(),
        runs + 1,
        "the command ran once more"
    );
}

#[tokio::test]
async fn wrong_flows_missing_mappings_and_signing_key_are_named() {
    let p = added("mattermost").await;
    let explicit = p
        .sim
        .flows()
        .into_iter()
        .find(|f| f["slug"] == "default-provider-authorization-explicit-consent")
        .expect("flow");
    p.sim.patch_provider(
        "pma-sso-mattermost",
        json!({"authorization_flow": explicit["pk"], "signing_key": null, "property_mappings": []}),
    );
    let line = p.ctx.check("mattermost").await.expect("check").line();
    assert!(line.contains("authorization flow mismatch: want default-provider-authorization-implicit-consent, authentik has default-provider-authorization-explicit-consent"), "{line}");
    assert!(
        line.contains("missing scope mappings: openid, email, profile, username, id"),
        "{line}"
    );
    assert!(
        line.contains(
            "signing key mismatch: want authentik Self-signed Certificate, authentik has none"
        ),
        "{line}"
    );
    drift_then_fix(&p, "mattermost", "signing key mismatch").await;
}

#[tokio::test]
async fn a_changed_custom_scope_mapping_is_restored() {
    let p = added("mattermost").await;
    let mapping = p
        .sim
        .scope_mappings()
        .into_iter()
        .find(|m| m["name"] == "mattermost-id")
        .expect("mapping");
    let client = reqwest::Client::new();
    let status = client
        .patch(format!(
            "{}/api/v3/propertymappings/provider/scope/{}/",
            p.sim.base_url(),
            mapping["pk"].as_str().expect("pk")
        ))
        .bearer_auth(crate::support::TOKEN)
        .json(&json!({"expression": "return {}"}))
        .send()
        .await
        .expect("patch")
        .status();
    assert!(status.is_success());
    drift_then_fix(
        &p,
        "mattermost",
        "scope mapping mattermost-id differs (expression)",
    )
    .await;
}

#[tokio::test]
async fn fix_only_sends_the_fields_that_differ() {
    let p = added("grafana").await;
    p.sim
        .patch_provider("pma-sso-grafana", json!({"sub_mode": "user_email"}));
    p.sim.reset_requests();
    p.ctx.apply("grafana", Action::Fix).await.expect("fix");
    let patches: Vec<_> = p
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(patches[0].body, Some(json!({"sub_mode": "hashed_user_id"})));
    assert_eq!(p.sim.write_count(), 1);
}

/// Every drift kind on every bundled oauth/oidc service: injected, named by check, repaired by
/// fix, green again.
#[tokio::test]
async fn every_drift_kind_on_every_oauth_and_oidc_service_is_named_and_fixed() {
    let services = [
        "redmine",
        "mattermost",
        "linkding",
        "grafana",
        "n8n",
        "superset",
        "nextcloud",
        "gitea",
    ];
    let p = Platform::new(&services).await;
    for service in services {
        p.ctx
            .apply(service, Action::Add)
            .await
            .unwrap_or_else(|e| panic!("{service}: {e}"));
        assert!(
            p.ctx.check(service).await.expect("check").in_sync(),
            "{service}"
        );
        let provider = format!("pma-sso-{service}");
        let prefix = service.to_uppercase();
        let kinds: [(&str, &str); 7] = [
            ("redirect changed", "redirect URI mismatch"),
            ("app deleted", "authentik app missing"),
            ("provider deleted", "missing"),
            (
                "secret changed in .env",
                "client secret mismatch (.env differs from authentik)",
            ),
            (
                "secret changed in authentik",
                "client secret mismatch (.env differs from authentik)",
            ),
            ("DOMAIN changed", "redirect URI mismatch"),
            ("delivered setting edited", "delivered"),
        ];
        for (kind, expect) in kinds {
            match kind {
                "redirect changed" => p.sim.patch_provider(&provider, json!({"redirect_uris": [{"matching_mode": "strict", "url": "https://elsewhere.example/cb"}]})),
                "app deleted" => assert!(p.sim.delete_application(service)),
                "provider deleted" => assert!(p.sim.delete_provider(&provider)),
                "secret changed in .env" => p.set_env(&format!("{prefix}_SSO_CLIENT_SECRET"), &format!("rotated-{service}-by-hand")),
                "secret changed in authentik" => p.sim.patch_provider(&provider, json!({"client_secret": "changed-in-the-admin-ui"})),
                "DOMAIN changed" => p.set_env("DOMAIN", &format!("{service}.moved.example")),
                _ => edit_a_delivered_setting(&p, service),
            }
            let line = p.ctx.check(service).await.expect("check").line();
            assert!(
                line.starts_with(&format!("❌ {service} (")),
                "{service}/{kind}: {line}"
            );
            assert!(
                line.contains(expect),
                "{service}/{kind}: `{line}` lacks `{expect}`"
            );
            p.ctx
                .apply(service, Action::Fix)
                .await
                .unwrap_or_else(|e| panic!("{service}/{kind}: {e}"));
            let after = p.ctx.check(service).await.expect("check");
            assert!(
                after.in_sync(),
                "{service}/{kind} after fix: {}",
                after.line()
            );
            assert_eq!(p.apps_with_slug(service), 1, "{service}/{kind}");
            assert_eq!(p.providers_named(&provider), 1, "{service}/{kind}");
        }
        p.set_env("DOMAIN", "example.org");
        p.ctx.apply(service, Action::Fix).await.expect("restore");
    }
    assert!(
        p.sim.schema_violations().is_empty(),
        "{:?}",
        p.sim.schema_violations()
    );
}

/// Edit what the service's first delivery left behind, whatever its kind.
fn edit_a_delivered_setting(p: &Platform, service: &str) {
    let package = p.ctx.package(service).expect("package");
    match &package.manifest.deliveries()[0] {
        schemas::Delivery::Env(env) => {
            let path = package.dir.join(env.path.as_str());
            let mut text = std::fs::read_to_string(&path).expect("read");
            let first = text
                .lines()
                .find(|l| !l.starts_with('#'))
                .expect("a var")
                .to_owned();
            let key = first.split('=').next().expect("key").to_owned();
            text = text.replace(&first, &format!("{key}=edited-by-hand"));
            std::fs::write(&path, text).expect("write");
        }
        schemas::Delivery::File(file) => {
            std::fs::write(package.dir.join(file.path.as_str()), "edited = True\n").expect("write");
        }
        schemas::Delivery::Exec(_) => {
            std::fs::remove_file(p.path(&format!(".pma-sso/{service}.json"))).expect("exec state");
        }
        schemas::Delivery::Http(_) => {
            panic!("{service}: no http delivery among the oauth/oidc services")
        }
    }
}

/// authentik strips leading and trailing whitespace from text fields, so an expression written
/// as a YAML block (which ends in a newline) or read from a file (which does too) comes back
/// without it. Such mappings must be in sync after one `fix`, and a second `fix` writes nothing.
#[tokio::test]
async fn block_scalar_and_file_expressions_are_in_sync_after_one_fix() {
    let p = Platform::new(&["mattermost"]).await;
    let manifest = p.path("packages/mattermost/manifest.yaml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let text = text
        .replace(
            "      expression: 'return {\"username\": request.user.username}'",
            "      expression: |\n        return {\"username\": request.user.username}",
        )
        .replace(
            "      expression: 'return {\"id\": request.user.pk}'",
            "      expression_file: id.py",
        )
        .replace(
            "      description: GitLab-style username claim for Mattermost",
            "      description: >\n        GitLab-style username claim\n        for Mattermost",
        );
    std::fs::write(&manifest, text).expect("write manifest");
    std::fs::write(
        p.path("packages/mattermost/id.py"),
        "return {\"id\": request.user.pk}\n",
    )
    .expect("write expression file");

    p.ctx.apply("mattermost", Action::Add).await.expect("add");
    let stored = p.sim.scope_mappings();
    let username = stored
        .iter()
        .find(|m| m["name"] == "mattermost-username")
        .expect("mapping");
    assert_eq!(
        username["expression"],
        "return {\"username\": request.user.username}"
    );
    let report = p.ctx.check("mattermost").await.expect("check");
    assert!(report.in_sync(), "{}", report.line());
    let writes = p.sim.write_count();
    p.ctx.apply("mattermost", Action::Fix).await.expect("fix");
    assert_eq!(p.sim.write_count(), writes, "a second fix writes nothing");
}
