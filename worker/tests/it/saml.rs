//! Zammad (saml) against the authentik and Zammad stand-ins: empty → add → green; add again
//! changes nothing anywhere; each drift kind is named, fixed, and green again; checks never
//! read the certificate (authentik logs every read).

use serde_json::{Value, json};
use testkit::{ZammadHandle, ZammadSim};
use worker::Action;

use crate::support::Platform;

const ZAMMAD_TOKEN: &str = "zammad-api-token-7d41e9";
const SELF_SIGNED: &str = "authentik Self-signed Certificate";

pub struct Setup {
    pub p: Platform,
    pub zammad: ZammadHandle,
}

/// Zammad's package with the authentik and Zammad stand-ins, nothing added yet.
pub async fn setup() -> Setup {
    let zammad = ZammadSim::new(ZAMMAD_TOKEN).start().await;
    let p = Platform::with_env(
        &["zammad"],
        &format!(
            "DOMAIN=example.org\nZAMMAD_URL={}\nZAMMAD_API_TOKEN={ZAMMAD_TOKEN}\n",
            zammad.base_url()
        ),
    )
    .await;
    Setup { p, zammad }
}

async fn added() -> Setup {
    let s = setup().await;
    s.p.ctx.apply("zammad", Action::Add).await.expect("add");
    let report = s.p.ctx.check("zammad").await.expect("check");
    assert!(report.in_sync(), "{}", report.line());
    s
}

fn keypair(s: &Setup, name: &str) -> Value {
    s.p.sim
        .certificate_keypairs()
        .into_iter()
        .find(|k| k["name"] == name)
        .expect("keypair")
}

fn fingerprint(s: &Setup, name: &str) -> String {
    keypair(s, name)["fingerprint_sha256"]
        .as_str()
        .expect("fingerprint")
        .to_owned()
}

fn provider(s: &Setup) -> Value {
    s.p.sim
        .provider_by_name("pma-sso-zammad")
        .expect("provider")
}

fn mapping_pk(s: &Setup, name: &str) -> Value {
    s.p.sim
        .saml_property_mappings()
        .into_iter()
        .find(|m| m["name"] == name)
        .map(|m| m["pk"].clone())
        .unwrap_or_else(|| panic!("no SAML mapping {name}"))
}

/// Check names the drift (without reading the certificate), fix repairs it, check is green.
async fn drift_then_fix(s: &Setup, expect: &[&str]) {
    let views = s.p.sim.certificate_views();
    let line = s.p.ctx.check("zammad").await.expect("check").line();
    assert!(line.starts_with("❌ zammad (saml) — "), "{line}");
    for part in expect {
        assert!(line.contains(part), "`{line}` does not name `{part}`");
    }
    assert_eq!(
        s.p.sim.certificate_views(),
        views,
        "check read the certificate"
    );
    s.p.ctx.apply("zammad", Action::Fix).await.expect("fix");
    let after = s.p.ctx.check("zammad").await.expect("check");
    assert!(after.in_sync(), "after fix: {}", after.line());
    assert!(
        s.p.sim.schema_violations().is_empty(),
        "{:?}",
        s.p.sim.schema_violations()
    );
}

#[tokio::test]
async fn zammad_goes_from_empty_to_green_and_a_second_add_changes_nothing() {
    let s = setup().await;
    let before = s.p.ctx.check("zammad").await.expect("check runs");
    assert!(
        before.line().contains("authentik app missing"),
        "{}",
        before.line()
    );
    assert_eq!(s.p.sim.certificate_views(), 0, "check read the certificate");

    s.p.ctx.apply("zammad", Action::Add).await.expect("add");
    let after = s.p.ctx.check("zammad").await.expect("check");
    assert_eq!(
        after.line(),
        "✓ zammad (saml) — authentik app present, signing cert matches"
    );
    assert_eq!(s.p.sim.certificate_views(), 1, "add reads the PEM once");

    let provider = provider(&s);
    let url = "https://helpdesk.example.org";
    assert_eq!(provider["acs_url"], format!("{url}/auth/saml/callback"));
    assert_eq!(provider["audience"], format!("{url}/auth/saml/metadata"));
    assert_eq!(provider["sls_url"], format!("{url}/auth/saml/slo"));
    assert_eq!(
        provider["issuer"],
        "https://auth.example.org/application/saml/zammad/metadata/"
    );
    assert_eq!(provider["sp_binding"], "post");
    assert_eq!(provider["sls_binding"], "redirect");
    assert_eq!(provider["signing_kp"], keypair(&s, SELF_SIGNED)["pk"]);
    assert_eq!(provider["sign_assertion"], true);
    assert_eq!(
        provider["default_name_id_policy"],
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
    );
    assert_eq!(
        provider["name_id_mapping"],
        mapping_pk(&s, "zammad-nameid-email")
    );
    let attributes: Vec<Value> = [
        "zammad-email",
        "zammad-name",
        "zammad-first-name",
        "zammad-last-name",
    ]
    .iter()
    .map(|n| mapping_pk(&s, n))
    .collect();
    assert_eq!(provider["property_mappings"], json!(attributes));
    let app = s.p.sim.application("zammad").expect("app");
    assert_eq!(app["meta_publisher"], "pma-sso");
    assert_eq!(app["provider"], provider["pk"]);

    assert_eq!(
        s.zammad.setting("fqdn"),
        Some(json!("helpdesk.example.org"))
    );
    assert_eq!(s.zammad.setting("http_type"), Some(json!("https")));
    assert_eq!(s.zammad.setting("auth_saml"), Some(json!(true)));
    let credentials = s.zammad.setting("auth_saml_credentials").expect("set");
    assert_eq!(
        credentials["idp_cert"].as_str(),
        s.p.sim.certificate_pem(SELF_SIGNED).as_deref()
    );
    assert_eq!(
        credentials["idp_sso_target_url"],
        "https://auth.example.org/application/saml/zammad/sso/binding/redirect/"
    );

    let (apps, providers, mappings) = (
        s.p.sim.applications().len(),
        s.p.sim.saml_providers().len(),
        s.p.sim.saml_property_mappings().len(),
    );
    let (writes, zammad_writes) = (s.p.sim.write_count(), s.zammad.write_count());
    let again = s.p.ctx.apply("zammad", Action::Add).await.expect("again");
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    let fixed = s.p.ctx.apply("zammad", Action::Fix).await.expect("fix");
    assert!(fixed.actions.is_empty(), "{:?}", fixed.actions);
    assert_eq!(s.p.sim.applications().len(), apps);
    assert_eq!(s.p.sim.saml_providers().len(), providers);
    assert_eq!(s.p.sim.saml_property_mappings().len(), mappings);
    assert_eq!(s.p.sim.write_count(), writes, "an in-sync add/fix wrote");
    assert_eq!(s.zammad.write_count(), zammad_writes, "Zammad was written");
    assert_eq!(
        s.p.sim.certificate_views(),
        1,
        "nothing to deliver, no read"
    );

    let sweep = s.p.ctx.check_all().await.expect("sweep");
    let line = sweep[0].outcome.as_ref().expect("no error").line();
    assert!(line.starts_with("✓ zammad (saml)"), "{line}");
    assert!(
        s.p.sim.schema_violations().is_empty(),
        "{:?}",
        s.p.sim.schema_violations()
    );
}

#[tokio::test]
async fn a_deleted_application_is_recreated() {
    let s = added().await;
    assert!(s.p.sim.delete_application("zammad"));
    drift_then_fix(&s, &["authentik app missing"]).await;
    assert_eq!(s.p.apps_with_slug("zammad"), 1);
}

#[tokio::test]
async fn a_changed_acs_and_audience_are_named_with_both_values() {
    let s = added().await;
    s.p.sim.patch_provider(
        "pma-sso-zammad",
        json!({"acs_url": "https://old.example/auth/saml/callback", "audience": ""}),
    );
    drift_then_fix(
        &s,
        &[
            "ACS URL mismatch: want https://helpdesk.example.org/auth/saml/callback, authentik has https://old.example/auth/saml/callback",
            "audience mismatch: want https://helpdesk.example.org/auth/saml/metadata, authentik has none",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_signing_keypair_swapped_in_authentik_is_named_by_fingerprint_and_restored() {
    let s = added().await;
    let rotated = s.p.sim.add_keypair("rotated by hand", 365);
    s.p.sim
        .patch_provider("pma-sso-zammad", json!({"signing_kp": rotated["pk"]}));
    // `plan` lists exactly the write `fix` makes: the provider's keypair, no Zammad setting.
    let report = s.p.ctx.check("zammad").await.expect("check");
    let writes: Vec<&str> = report
        .drifts
        .iter()
        .map(|d| d.remedy.as_str())
        .filter(|r| !r.starts_with("nothing to write"))
        .collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].contains("pma-sso-zammad"), "{writes:?}");
    assert!(
        !report
            .drifts
            .iter()
            .any(|d| d.remedy.starts_with("write setting")),
        "{:?}",
        report.drifts
    );
    s.p.sim.reset_requests();
    let zammad_writes = s.zammad.write_count();
    drift_then_fix(
        &s,
        &[
            &format!(
                "signing cert mismatch: service has {}, authentik signs with {}",
                fingerprint(&s, SELF_SIGNED),
                rotated["fingerprint_sha256"].as_str().expect("fp")
            ),
            "signing keypair mismatch: want authentik Self-signed Certificate, authentik has rotated by hand",
        ],
    )
    .await;
    let patches: Vec<_> =
        s.p.sim
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(
        patches[0].body,
        Some(json!({
            "signing_kp": keypair(&s, SELF_SIGNED)["pk"],
            "sign_assertion": true,
            "sign_response": false,
        }))
    );
    // Zammad already holds the certificate authentik signs with again.
    assert_eq!(s.zammad.write_count(), zammad_writes);
    assert_eq!(s.p.sim.certificate_views(), 0);
}

#[tokio::test]
async fn a_certificate_replaced_in_zammad_is_named_by_fingerprint_and_redelivered() {
    let s = added().await;
    s.p.sim.add_keypair("someone else's", 365);
    let foreign = s.p.sim.certificate_pem("someone else's").expect("pem");
    let mut credentials = s.zammad.setting("auth_saml_credentials").expect("set");
    credentials["idp_cert"] = json!(foreign);
    s.zammad.set_setting("auth_saml_credentials", credentials);
    drift_then_fix(
        &s,
        &[&format!(
            "signing cert mismatch: service has {}, authentik signs with {}",
            fingerprint(&s, "someone else's"),
            fingerprint(&s, SELF_SIGNED)
        )],
    )
    .await;
    assert_eq!(
        s.zammad.setting("auth_saml_credentials").expect("set")["idp_cert"].as_str(),
        s.p.sim.certificate_pem(SELF_SIGNED).as_deref()
    );
}

#[tokio::test]
async fn a_certificate_zammad_holds_in_another_encoding_still_matches() {
    let s = added().await;
    // Same certificate, pasted without the PEM armour: the fingerprint is what counts.
    let pem = s.p.sim.certificate_pem(SELF_SIGNED).expect("pem");
    let bare: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    let mut credentials = s.zammad.setting("auth_saml_credentials").expect("set");
    credentials["idp_cert"] = json!(bare);
    s.zammad.set_setting("auth_saml_credentials", credentials);
    let report = s.p.ctx.check("zammad").await.expect("check");
    assert!(report.in_sync(), "{}", report.line());
}

#[tokio::test]
async fn an_edited_zammad_setting_is_named_and_rewritten() {
    let s = added().await;
    s.zammad.set_setting("fqdn", json!("zammad.old.example"));
    let mut credentials = s.zammad.setting("auth_saml_credentials").expect("set");
    credentials["idp_sso_target_url"] = json!("https://idp.old.example/sso");
    s.zammad.set_setting("auth_saml_credentials", credentials);
    drift_then_fix(
        &s,
        &[
            "delivered setting stale: fqdn in zammad: want \"helpdesk.example.org\", has \"zammad.old.example\"",
            "delivered setting stale: auth_saml_credentials in zammad differs (idp_sso_target_url)",
        ],
    )
    .await;
    assert_eq!(
        s.zammad.setting("fqdn"),
        Some(json!("helpdesk.example.org"))
    );
}

#[tokio::test]
async fn a_signing_certificate_ending_soon_warns_but_stays_green() {
    let s = setup().await;
    s.p.sim.add_keypair("short-lived", 10);
    let path = s.p.path("packages/zammad/manifest.yaml");
    let text = std::fs::read_to_string(&path).expect("read").replace(
        "    sp_binding: post\n",
        "    sp_binding: post\n    signing_key: short-lived\n",
    );
    std::fs::write(&path, text).expect("write");
    s.p.ctx.apply("zammad", Action::Add).await.expect("add");
    let report = s.p.ctx.check("zammad").await.expect("check");
    assert!(report.in_sync(), "{}", report.line());
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    let line = report.line();
    assert!(
        line.starts_with("✓ zammad (saml) — authentik app present, signing cert matches (warning: signing certificate short-lived expires in "),
        "{line}"
    );
    assert_eq!(provider(&s)["signing_kp"], keypair(&s, "short-lived")["pk"]);
}

#[tokio::test]
async fn a_refused_zammad_token_is_a_permanent_error_that_never_shows_the_token() {
    let s = added().await;
    s.p.set_env("ZAMMAD_API_TOKEN", "wrong-zammad-token-2f0a");
    let err = s.p.ctx.check("zammad").await.expect_err("401");
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("the service refused our credentials"),
        "{text}"
    );
    assert!(!text.contains("wrong-zammad-token-2f0a"), "{text}");
    assert!(!err.is_transient());
    let err = s.p.ctx.apply("zammad", Action::Fix).await.expect_err("401");
    assert!(!format!("{err} {err:?}").contains("wrong-zammad-token-2f0a"));
}

#[tokio::test]
async fn a_sweep_checks_saml_and_proxy_services_from_the_same_few_list_calls() {
    let zammad = ZammadSim::new(ZAMMAD_TOKEN).start().await;
    let p = Platform::with_env(
        &["zammad", "uptime-kuma", "grafana"],
        &format!(
            "DOMAIN=example.org\nZAMMAD_URL={}\nZAMMAD_API_TOKEN={ZAMMAD_TOKEN}\n",
            zammad.base_url()
        ),
    )
    .await;
    for service in ["zammad", "uptime-kuma", "grafana"] {
        p.ctx
            .apply(service, Action::Add)
            .await
            .unwrap_or_else(|e| panic!("{service}: {e}"));
    }
    p.sim.reset_requests();
    let results = p.ctx.check_all().await.expect("sweep");
    let lines: Vec<String> = results
        .iter()
        .map(|r| r.outcome.as_ref().expect("no error").line())
        .collect();
    assert_eq!(
        lines,
        [
            "✓ grafana (oidc) — authentik app present, redirects match",
            "✓ uptime-kuma (proxy) — authentik app present, outpost serves it",
            "✓ zammad (saml) — authentik app present, signing cert matches",
        ]
    );
    assert_eq!(p.sim.requests().len(), 9, "{:?}", p.sim.requests());
    assert_eq!(p.sim.certificate_views(), 0);
}
