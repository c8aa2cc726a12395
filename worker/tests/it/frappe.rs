//! The `frappe` flow (bundled as `erpnext`) against the authentik and Frappe stand-ins: empty →
//! add → green, add and fix again write nothing, each drift kind named and repaired, refused
//! credentials a permanent operator error, and no secret in any output.

use serde_json::Value;
use testkit::{FrappeHandle, FrappeSim};
use worker::{Action, FlowError};

use crate::support::{Platform, global_log_capture};

const API_KEY: &str = "5f3c1a9e0b7d2e4";
const API_SECRET: &str = "RECOGNISABLE-frappe-api-secret-d41c";
const GREEN: &str =
    "✓ erpnext (frappe) — authentik app present, redirects match, client secret matches";

pub struct Erp {
    pub p: Platform,
    pub frappe: FrappeHandle,
}

pub async fn platform(env: impl Fn(&FrappeHandle) -> String) -> Erp {
    let frappe = FrappeSim::new(API_KEY, API_SECRET)
        .limited_user("limited-key", "limited-secret")
        .start()
        .await;
    let p = Platform::with_env(&["erpnext"], &env(&frappe)).await;
    Erp { p, frappe }
}

pub fn full_env(frappe: &FrappeHandle) -> String {
    format!(
        "DOMAIN=example.org\nERPNEXT_URL={}\nERPNEXT_API_KEY={API_KEY}\nERPNEXT_API_SECRET={API_SECRET}\n",
        frappe.base_url()
    )
}

async fn added() -> Erp {
    let e = platform(full_env).await;
    e.p.ctx.apply("erpnext", Action::Add).await.expect("add");
    assert_eq!(e.p.ctx.check("erpnext").await.expect("check").line(), GREEN);
    e
}

fn doc(e: &Erp) -> Value {
    e.frappe.social_login_key("authentik").expect("document")
}

async fn drift_then_fix(e: &Erp, expect: &str) {
    let report = e.p.ctx.check("erpnext").await.expect("check");
    let line = report.line();
    assert!(line.starts_with("❌ erpnext (frappe) — "), "{line}");
    assert!(line.contains(expect), "`{line}` does not name `{expect}`");
    assert!(report.drifts.iter().all(|d| !d.remedy.is_empty()));
    e.p.ctx.apply("erpnext", Action::Fix).await.expect("fix");
    assert_eq!(e.p.ctx.check("erpnext").await.expect("check").line(), GREEN);
}

#[tokio::test]
async fn add_creates_the_social_login_key_from_the_public_authentik_url() {
    let e = platform(full_env).await;
    let before = e.p.ctx.check("erpnext").await.expect("check");
    assert!(
        before
            .line()
            .contains("Frappe Social Login Key authentik missing"),
        "{}",
        before.line()
    );
    e.p.ctx.apply("erpnext", Action::Add).await.expect("add");

    let doc = doc(&e);
    let secret = e.p.env_value("ERPNEXT_SSO_CLIENT_SECRET").expect("secret");
    assert_eq!(doc["name"], "authentik");
    assert_eq!(doc["provider_name"], "authentik");
    assert_eq!(doc["social_login_provider"], "Custom");
    assert_eq!(doc["enable_social_login"], 1);
    assert_eq!(doc["custom_base_url"], 1);
    assert_eq!(doc["base_url"], "https://auth.example.org");
    assert_eq!(doc["authorize_url"], "/application/o/authorize/");
    assert_eq!(doc["access_token_url"], "/application/o/token/");
    assert_eq!(doc["api_endpoint"], "/application/o/userinfo/");
    assert_eq!(
        doc["redirect_url"],
        "/api/method/frappe.integrations.oauth2_logins.custom/authentik"
    );
    assert_eq!(doc["user_id_property"], "sub");
    assert_eq!(doc["sign_ups"], "Allow");
    assert_eq!(
        doc["client_id"],
        e.p.env_value("ERPNEXT_SSO_CLIENT_ID").expect("id").as_str()
    );
    let auth_url_data: Value =
        serde_json::from_str(doc["auth_url_data"].as_str().expect("text")).expect("JSON text");
    assert_eq!(
        auth_url_data,
        serde_json::json!({"response_type": "code", "scope": "openid email profile"})
    );
    // A plain GET masks the password; the stand-in stores the real one.
    assert_eq!(doc["client_secret"], "*".repeat(secret.len()).as_str());
    assert_eq!(e.frappe.client_secret("authentik"), Some(secret));

    let provider =
        e.p.sim
            .provider_by_name("pma-sso-erpnext")
            .expect("provider");
    assert_eq!(
        provider["redirect_uris"][0]["url"],
        "https://erpnext.example.org/api/method/frappe.integrations.oauth2_logins.custom/authentik"
    );
    assert!(
        e.p.exec_log()
            .contains("bench --site frontend set-config host_name https://erpnext.example.org"),
        "{}",
        e.p.exec_log()
    );
    assert_eq!(e.p.ctx.check("erpnext").await.expect("check").line(), GREEN);
}

#[tokio::test]
async fn add_again_creates_nothing_anywhere_and_fix_in_sync_writes_nothing() {
    let e = added().await;
    e.p.sim.reset_requests();
    e.frappe.reset_requests();
    let again =
        e.p.ctx
            .apply("erpnext", Action::Add)
            .await
            .expect("add again");
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    let fixed = e.p.ctx.apply("erpnext", Action::Fix).await.expect("fix");
    assert!(fixed.actions.is_empty(), "{:?}", fixed.actions);
    assert_eq!(e.p.sim.write_count(), 0, "authentik");
    assert_eq!(e.frappe.write_count(), 0, "{:?}", e.frappe.requests());
    assert_eq!(e.frappe.social_login_keys().len(), 1);
    assert_eq!(e.p.apps_with_slug("erpnext"), 1);
    assert_eq!(e.p.providers_named("pma-sso-erpnext"), 1);
}

#[tokio::test]
async fn a_deleted_application_is_recreated() {
    let e = added().await;
    assert!(e.p.sim.delete_application("erpnext"));
    drift_then_fix(&e, "authentik app missing").await;
}

#[tokio::test]
async fn a_secret_changed_in_frappe_is_named_without_values_and_overwritten() {
    let e = added().await;
    e.frappe
        .set_client_secret("authentik", "changed-in-the-erpnext-ui-0b2");
    let line = e.p.ctx.check("erpnext").await.expect("check").line();
    assert_eq!(
        line,
        "❌ erpnext (frappe) — Frappe client secret differs from authentik"
    );
    e.frappe.reset_requests();
    drift_then_fix(&e, "Frappe client secret differs from authentik").await;
    let secret = e.p.env_value("ERPNEXT_SSO_CLIENT_SECRET").expect("secret");
    assert_eq!(e.frappe.client_secret("authentik"), Some(secret));
    let puts: Vec<_> = e
        .frappe
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
}

#[tokio::test]
async fn a_changed_field_is_named_with_both_values_and_only_it_is_written() {
    let e = added().await;
    e.frappe.patch_social_login_key(
        "authentik",
        serde_json::json!({"user_id_property": "email", "enable_social_login": 0}),
    );
    let line = e.p.ctx.check("erpnext").await.expect("check").line();
    assert!(
        line.contains("Frappe Social Login Key authentik user_id_property mismatch: want sub, Frappe has email"),
        "{line}"
    );
    assert!(
        line.contains("enable_social_login mismatch: want 1, Frappe has 0"),
        "{line}"
    );
    drift_then_fix(&e, "user_id_property").await;
}

#[tokio::test]
async fn a_deleted_social_login_key_is_recreated() {
    let e = added().await;
    assert!(e.frappe.delete_social_login_key("authentik"));
    drift_then_fix(&e, "Frappe Social Login Key authentik missing").await;
    assert_eq!(e.frappe.social_login_keys().len(), 1);
}

#[tokio::test]
async fn a_domain_change_shows_everywhere_and_is_fixed() {
    let e = added().await;
    e.p.set_env("DOMAIN", "new.example");
    let line = e.p.ctx.check("erpnext").await.expect("check").line();
    for needle in [
        "redirect URI mismatch: want https://erpnext.new.example/api/method/frappe.integrations.oauth2_logins.custom/authentik",
        "Frappe Social Login Key authentik base_url mismatch: want https://auth.new.example, Frappe has https://auth.example.org",
        "has not run with the current settings",
    ] {
        assert!(line.contains(needle), "`{line}` lacks `{needle}`");
    }
    drift_then_fix(&e, "base_url mismatch").await;
    assert_eq!(doc(&e)["base_url"], "https://auth.new.example");
    assert!(
        e.p.exec_log()
            .contains("set-config host_name https://erpnext.new.example"),
        "{}",
        e.p.exec_log()
    );
}

#[tokio::test]
async fn refused_api_credentials_are_a_permanent_error_naming_frappes_answer() {
    let e = added().await;
    e.frappe.set_api_secret("rotated-by-generate-keys");
    let err =
        e.p.ctx
            .check("erpnext")
            .await
            .expect_err("Frappe refuses the secret");
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(
        text.starts_with("reading Frappe Social Login Key `authentik`: read Social Login Key authentik: Frappe refused the API credentials (HTTP 401 AuthenticationError"),
        "{text}"
    );
    let err =
        e.p.ctx
            .apply("erpnext", Action::Fix)
            .await
            .expect_err("fix cannot help");
    assert!(!err.is_transient(), "{err}");
    assert!(!format!("{err:?}").contains(API_SECRET));
}

#[tokio::test]
async fn a_key_without_the_system_manager_role_is_a_permanent_error() {
    let e = platform(|f| {
        format!(
            "DOMAIN=example.org\nERPNEXT_URL={}\nERPNEXT_API_KEY=limited-key\nERPNEXT_API_SECRET=limited-secret\n",
            f.base_url()
        )
    })
    .await;
    let err =
        e.p.ctx
            .apply("erpnext", Action::Add)
            .await
            .expect_err("403");
    assert!(!err.is_transient());
    assert!(
        err.to_string()
            .contains("HTTP 403 PermissionError: Insufficient Permission for Social Login Key"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_api_credentials_are_named_before_authentik_is_touched() {
    let e = platform(|f| format!("DOMAIN=example.org\nERPNEXT_URL={}\n", f.base_url())).await;
    let err =
        e.p.ctx
            .apply("erpnext", Action::Add)
            .await
            .expect_err("no credentials");
    assert!(
        matches!(err, FlowError::FrappeCredentialsMissing { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("Frappe API credentials missing: ERPNEXT_API_KEY and ERPNEXT_API_SECRET are not set in .env"),
        "{err}"
    );
    assert_eq!(e.p.sim.write_count(), 0);
    assert_eq!(e.frappe.write_count(), 0);
}

#[tokio::test]
async fn every_request_matches_the_frappe_doctype_and_authentiks_schemas() {
    let e = added().await;
    e.frappe.set_client_secret("authentik", "drifted");
    e.frappe
        .patch_social_login_key("authentik", serde_json::json!({"sign_ups": "Deny"}));
    e.p.ctx.apply("erpnext", Action::Fix).await.expect("fix");
    assert!(
        e.frappe
            .count("PUT", "/api/resource/Social Login Key/authentik")
            == 1
    );
    assert!(e.frappe.count("POST", "/api/resource/Social Login Key") == 1);
    assert!(
        e.frappe.schema_violations().is_empty(),
        "{:?}",
        e.frappe.schema_violations()
    );
    assert!(
        e.p.sim.schema_violations().is_empty(),
        "{:?}",
        e.p.sim.schema_violations()
    );
}

#[tokio::test]
async fn no_frappe_secret_reaches_logs_errors_or_reports() {
    let capture = global_log_capture();
    let client_secret = "RECOGNISABLE-erpnext-client-secret-88aa";
    let e =
        platform(|f| format!("{}ERPNEXT_SSO_CLIENT_SECRET={client_secret}\n", full_env(f))).await;
    let mut seen = Vec::new();
    let applied = e.p.ctx.apply("erpnext", Action::Add).await.expect("add");
    seen.push(format!("{applied:?}"));
    e.frappe
        .set_client_secret("authentik", "RECOGNISABLE-typed-in-frappe-19");
    let report = e.p.ctx.check("erpnext").await.expect("check");
    seen.push(report.line());
    seen.push(format!("{report:?}"));
    seen.push(serde_json::to_string(&report).expect("json"));
    let applied = e.p.ctx.apply("erpnext", Action::Fix).await.expect("fix");
    seen.push(format!("{applied:?}"));
    e.frappe.set_api_secret("rotated");
    let err = e.p.ctx.check("erpnext").await.expect_err("401");
    seen.push(err.to_string());
    seen.push(format!("{err:?}"));
    seen.push(capture.text());
    let all = seen.join("\n");
    for secret in [client_secret, "RECOGNISABLE-typed-in-frappe-19", API_SECRET] {
        assert!(!all.contains(secret), "`{secret}` leaked:\n{all}");
    }
}
