use std::path::{Path, PathBuf};

use schemas::manifest::{MANAGED_SCOPES, manifest_json_schema};
use schemas::{Delivery, SsoKind, load_packages, parse_manifest};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

pub fn committed_schema() -> serde_json::Value {
    let path = repo_root().join("schemas/manifest.schema.json");
    let text = std::fs::read_to_string(&path).expect("schemas/manifest.schema.json is committed");
    serde_json::from_str(&text).expect("committed schema is JSON")
}

#[test]
fn committed_json_schema_matches_the_types() {
    let generated = manifest_json_schema();
    let path = repo_root().join("schemas/manifest.schema.json");
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        let text = serde_json::to_string_pretty(&generated).expect("serialises") + "\n";
        std::fs::write(&path, text).expect("write schema");
    }
    assert_eq!(
        committed_schema(),
        generated,
        "schemas/manifest.schema.json is stale: run `UPDATE_SCHEMAS=1 cargo test -p schemas`"
    );
}

#[test]
fn every_bundled_manifest_parses_and_validates_against_the_json_schema() {
    let validator = jsonschema::validator_for(&committed_schema()).expect("schema compiles");
    let packages = load_packages(&repo_root().join("packages")).expect("packages dir");
    let mut kinds = std::collections::BTreeMap::new();
    for loaded in &packages {
        let package = loaded.as_ref().unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(&package.manifest_path).expect("read");
        let value: serde_json::Value = serde_saphyr::from_str(&text).expect("yaml");
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{}: {errors:?}",
            package.manifest_path.display()
        );
        kinds.insert(package.manifest.name.to_string(), package.manifest.kind());
    }
    let expected = [
        ("redmine", SsoKind::Oauth),
        ("mattermost", SsoKind::Oauth),
        ("linkding", SsoKind::Oauth),
        ("grafana", SsoKind::Oidc),
        ("n8n", SsoKind::Oidc),
        ("superset", SsoKind::Oidc),
        ("nextcloud", SsoKind::Oidc),
        ("gitea", SsoKind::Oidc),
        ("zammad", SsoKind::Saml),
        ("uptime-kuma", SsoKind::Proxy),
        ("wikijs", SsoKind::Wikijs),
        ("erpnext", SsoKind::Frappe),
    ];
    assert_eq!(kinds.len(), 12, "{kinds:?}");
    for (name, kind) in expected {
        assert_eq!(kinds.get(name), Some(&kind), "{name}");
    }
}

#[test]
fn bundled_manifests_carry_the_real_callback_paths() {
    let packages = load_packages(&repo_root().join("packages")).expect("packages dir");
    let callbacks: std::collections::BTreeMap<String, Vec<String>> = packages
        .iter()
        .flatten()
        .filter_map(|p| {
            let view = p.manifest.oauth()?;
            Some((
                p.manifest.name.to_string(),
                view.redirect_paths.iter().map(|r| r.to_string()).collect(),
            ))
        })
        .collect();
    let want = |s: &str, paths: &[&str]| {
        assert_eq!(
            callbacks[s],
            paths.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "{s}"
        );
    };
    want("redmine", &["/oauth2callback"]);
    want("mattermost", &["/signup/gitlab/complete"]);
    want("linkding", &["/oidc/callback/"]);
    want("grafana", &["/login/generic_oauth"]);
    want("n8n", &["/rest/sso/oidc/callback"]);
    want("superset", &["/oauth-authorized/authentik"]);
    want(
        "nextcloud",
        &["/apps/user_oidc/code", "/index.php/apps/user_oidc/code"],
    );
    want("gitea", &["/user/oauth2/authentik/callback"]);
    want("wikijs", &["/login/authentik/callback"]);
    want(
        "erpnext",
        &["/api/method/frappe.integrations.oauth2_logins.custom/authentik"],
    );
}

#[test]
fn mattermost_asks_for_custom_username_and_numeric_id_scopes() {
    let path = repo_root().join("packages/mattermost/manifest.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    let m = parse_manifest(&path, &text).expect("valid");
    let view = m.oauth().expect("oauth");
    for scope in ["username", "id"] {
        assert!(view.client.scopes.iter().any(|s| s == scope), "{scope}");
        assert!(!MANAGED_SCOPES.iter().any(|(n, _)| *n == scope));
        assert!(
            view.mappings.iter().any(|m| m.scope_name == scope),
            "{scope}"
        );
    }
    assert!(matches!(m.deliveries()[0], Delivery::Env(_)));
}

#[test]
fn the_seed_minimal_block_is_a_valid_manifest_with_defaults() {
    let text = "name: redmine\nsso:\n  type: oauth\n  redirect_path: /oauth2callback\n  configured: false\n";
    let m = parse_manifest(Path::new("packages/redmine/manifest.yaml"), text).expect("valid");
    assert_eq!(m.slug().as_str(), "redmine");
    assert_eq!(
        m.client_id_env().expect("oauth").as_str(),
        "REDMINE_SSO_CLIENT_ID"
    );
    assert_eq!(
        m.client_secret_env().expect("oauth").as_str(),
        "REDMINE_SSO_CLIENT_SECRET"
    );
    let view = m.oauth().expect("oauth");
    assert_eq!(view.client.scopes, ["openid", "email", "profile"]);
    assert_eq!(
        view.client.signing_key.as_deref(),
        Some("authentik Self-signed Certificate")
    );
    assert!(!m.configured());
    let dashed = "name: uptime-kuma\nsso:\n  type: oidc\n  redirect_path: /cb\n";
    let m = parse_manifest(Path::new("m.yaml"), dashed).expect("valid");
    assert_eq!(
        m.client_id_env().expect("oidc").as_str(),
        "UPTIME_KUMA_SSO_CLIENT_ID"
    );
}

#[test]
fn an_explicit_null_signing_key_means_hs256() {
    let text =
        "name: a\nsso:\n  type: oidc\n  redirect_path: /cb\n  client:\n    signing_key: null\n";
    let m = parse_manifest(Path::new("m.yaml"), text).expect("valid");
    assert_eq!(m.oauth().expect("oidc").client.signing_key, None);
}

#[test]
fn a_frappe_callback_ends_in_the_document_name_frappe_derives() {
    let text = "name: erp\nsso:\n  type: frappe\n  frappe:\n    api_url: http://erp:8000\n    api_key_env: K\n    api_secret_env: S\n    provider_name: Auth-Entik\n";
    let m = parse_manifest(Path::new("m.yaml"), text).expect("valid");
    let schemas::Sso::Frappe(sso) = &m.sso else {
        panic!("a frappe manifest");
    };
    assert_eq!(sso.frappe.doc_name(), "auth_entik");
    assert_eq!(
        m.oauth().expect("frappe").redirect_paths[0].to_string(),
        "/api/method/frappe.integrations.oauth2_logins.custom/auth_entik"
    );
}

#[test]
fn bundled_internal_urls_can_be_pointed_elsewhere_from_env() {
    for (service, key) in [("wikijs", "WIKIJS_URL"), ("erpnext", "ERPNEXT_URL")] {
        let path = repo_root().join(format!("packages/{service}/manifest.yaml"));
        let text = std::fs::read_to_string(&path).expect("read");
        let m = parse_manifest(&path, &text).expect("valid");
        let internal = m.internal_url.expect("internal_url").to_string();
        assert!(
            internal.starts_with(&format!("${{{key}:-http://")),
            "{internal}"
        );
    }
}
