//! The `wikijs` flow against the authentik and Wiki.js stand-ins: empty → add → green, add and
//! fix again write nothing, each drift kind named and repaired (or a clear operator error), and
//! no secret in any output.

use serde_json::{Value, json};
use testkit::wikijs::SEEDED_GITHUB_KEY;
use testkit::{WikijsHandle, WikijsSim};
use worker::{Action, FlowError};

use crate::support::{Platform, global_log_capture};

const GREEN: &str =
    "✓ wikijs (wikijs) — authentik app present, redirects match, API key valid, strategy matches";

pub struct Wiki {
    pub p: Platform,
    pub wiki: WikijsHandle,
}

/// `.env` with the admin login (so keys can be minted) or a key issued by hand, or neither.
pub enum Access {
    Admin,
    Key,
    Nothing,
}

pub async fn platform(access: Access, extra_env: &str) -> Wiki {
    let wiki = WikijsSim::new().start().await;
    let mut env = format!("DOMAIN=example.org\nWIKIJS_URL={}\n", wiki.base_url());
    match access {
        Access::Admin => env.push_str(&format!(
            "WIKIJS_ADMIN_EMAIL={}\nWIKIJS_ADMIN_PASSWORD={}\n",
            wiki.admin_email(),
            wiki.admin_password()
        )),
        Access::Key => env.push_str(&format!(
            "WIKIJS_API_KEY={}\n",
            wiki.issue_api_key("issued by the operator")
        )),
        Access::Nothing => {}
    }
    env.push_str(extra_env);
    let p = Platform::with_env(&["wikijs"], &env).await;
    Wiki { p, wiki }
}

async fn added(access: Access) -> Wiki {
    let w = platform(access, "").await;
    w.p.ctx.apply("wikijs", Action::Add).await.expect("add");
    let report = w.p.ctx.check("wikijs").await.expect("check");
    assert_eq!(report.line(), GREEN);
    w
}

fn strategy(w: &Wiki) -> Value {
    w.wiki.strategy("authentik").expect("our strategy")
}

async fn drift_then_fix(w: &Wiki, expect: &str) {
    let report = w.p.ctx.check("wikijs").await.expect("check");
    let line = report.line();
    assert!(line.starts_with("❌ wikijs (wikijs) — "), "{line}");
    assert!(line.contains(expect), "`{line}` does not name `{expect}`");
    assert!(report.drifts.iter().all(|d| !d.remedy.is_empty()));
    w.p.ctx.apply("wikijs", Action::Fix).await.expect("fix");
    let after = w.p.ctx.check("wikijs").await.expect("check");
    assert_eq!(after.line(), GREEN);
}

#[tokio::test]
async fn add_mints_a_key_sets_the_host_and_adds_our_strategy_beside_the_others() {
    let w = platform(Access::Admin, "").await;
    let before = w.p.ctx.check("wikijs").await.expect("check");
    assert!(
        before
            .line()
            .contains("Wiki.js API key missing from .env (WIKIJS_API_KEY)"),
        "{}",
        before.line()
    );
    let github_before = w.wiki.strategy(SEEDED_GITHUB_KEY).expect("seeded");

    let applied = w.p.ctx.apply("wikijs", Action::Add).await.expect("add");
    assert!(
        applied
            .actions
            .iter()
            .any(|a| a.starts_with("minted a Wiki.js API key")),
        "{:?}",
        applied.actions
    );
    let key = w.p.env_value("WIKIJS_API_KEY").expect("key stored");
    assert!(w.wiki.key_is_valid(&key));
    assert!(w.wiki.api_enabled());
    assert_eq!(w.wiki.host(), "https://wiki.example.org");

    let ours = strategy(&w);
    let config = &ours["config"];
    assert_eq!(ours["strategyKey"], "oidc");
    assert_eq!(ours["isEnabled"], true);
    assert_eq!(ours["selfRegistration"], true);
    assert_eq!(
        config["clientId"],
        w.p.env_value("WIKIJS_SSO_CLIENT_ID").expect("id").as_str()
    );
    assert_eq!(
        config["clientSecret"],
        w.p.env_value("WIKIJS_SSO_CLIENT_SECRET")
            .expect("secret")
            .as_str()
    );
    assert_eq!(
        config["issuer"],
        "https://auth.example.org/application/o/wikijs/"
    );
    assert_eq!(
        config["authorizationURL"],
        "https://auth.example.org/application/o/authorize/"
    );
    assert_eq!(
        config["logoutURL"],
        "https://auth.example.org/application/o/wikijs/end-session/"
    );
    assert_eq!(config["displayNameClaim"], "name");
    assert_eq!(ours["order"], 2, "after local (0) and GitHub (1)");

    // The update replaced the whole list: the others came back exactly as they were.
    assert_eq!(w.wiki.strategies().len(), 3);
    assert_eq!(
        w.wiki.strategy(SEEDED_GITHUB_KEY).expect("kept"),
        github_before
    );
    assert_eq!(w.wiki.strategy("local").expect("kept")["isEnabled"], true);

    let provider =
        w.p.sim
            .provider_by_name("pma-sso-wikijs")
            .expect("provider");
    assert_eq!(
        provider["redirect_uris"][0]["url"],
        "https://wiki.example.org/login/authentik/callback"
    );
    assert_eq!(provider["issuer_mode"], "per_provider");
    assert_eq!(w.p.ctx.check("wikijs").await.expect("check").line(), GREEN);
}

#[tokio::test]
async fn add_again_creates_nothing_anywhere_and_fix_in_sync_writes_nothing() {
    let w = added(Access::Admin).await;
    w.p.sim.reset_requests();
    w.wiki.reset_requests();
    let again =
        w.p.ctx
            .apply("wikijs", Action::Add)
            .await
            .expect("add again");
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    let fixed = w.p.ctx.apply("wikijs", Action::Fix).await.expect("fix");
    assert!(fixed.actions.is_empty(), "{:?}", fixed.actions);
    assert_eq!(w.p.sim.write_count(), 0, "authentik");
    assert_eq!(w.wiki.write_count(), 0, "Wiki.js: {:?}", w.wiki.calls());
    assert_eq!(w.p.apps_with_slug("wikijs"), 1);
    assert_eq!(w.p.providers_named("pma-sso-wikijs"), 1);
    assert_eq!(w.wiki.api_keys().len(), 1, "no second key minted");
    assert_eq!(w.wiki.strategies().len(), 3);
}

#[tokio::test]
async fn a_key_issued_by_the_operator_is_used_as_is() {
    let w = added(Access::Key).await;
    assert_eq!(w.wiki.api_keys().len(), 1);
    assert_eq!(strategy(&w)["strategyKey"], "oidc");
}

#[tokio::test]
async fn a_deleted_application_is_recreated() {
    let w = added(Access::Admin).await;
    assert!(w.p.sim.delete_application("wikijs"));
    drift_then_fix(&w, "authentik app missing").await;
    assert_eq!(w.p.apps_with_slug("wikijs"), 1);
}

#[tokio::test]
async fn a_deleted_strategy_is_recreated_and_the_others_kept() {
    let w = added(Access::Admin).await;
    assert!(w.wiki.delete_strategy("authentik"));
    drift_then_fix(&w, "Wiki.js strategy authentik missing").await;
    assert_eq!(w.wiki.strategies().len(), 3);
    assert!(w.wiki.strategy(SEEDED_GITHUB_KEY).is_some());
}

#[tokio::test]
async fn a_secret_changed_in_wikijs_is_named_without_values_and_restored() {
    let w = added(Access::Admin).await;
    w.wiki.set_strategy_config(
        "authentik",
        "clientSecret",
        json!("typed-into-the-wiki-ui-9c1d"),
    );
    let line = w.p.ctx.check("wikijs").await.expect("check").line();
    assert!(
        line.contains("Wiki.js client secret differs from authentik"),
        "{line}"
    );
    let secret = w.p.env_value("WIKIJS_SSO_CLIENT_SECRET").expect("secret");
    assert!(
        !line.contains("typed-into-the-wiki-ui-9c1d") && !line.contains(&secret),
        "{line}"
    );
    drift_then_fix(&w, "Wiki.js client secret differs from authentik").await;
    assert_eq!(strategy(&w)["config"]["clientSecret"], secret.as_str());
}

#[tokio::test]
async fn hand_set_extras_of_our_strategy_survive_a_fix() {
    let w = added(Access::Admin).await;
    w.wiki
        .set_strategy_config("authentik", "mapGroups", json!(true));
    w.wiki.set_strategy_config(
        "authentik",
        "issuer",
        json!("https://auth.example.org/application/o/other/"),
    );
    drift_then_fix(&w, "Wiki.js strategy authentik issuer mismatch: want https://auth.example.org/application/o/wikijs/, Wiki.js has https://auth.example.org/application/o/other/").await;
    assert_eq!(strategy(&w)["config"]["mapGroups"], true);
}

#[tokio::test]
async fn a_revoked_key_is_replaced_by_a_minted_one_with_the_admin_login() {
    let w = added(Access::Admin).await;
    let old = w.p.env_value("WIKIJS_API_KEY").expect("key");
    assert_eq!(w.wiki.revoke_api_keys(), 1);
    let report =
        w.p.ctx
            .check("wikijs")
            .await
            .expect("check is not an error");
    let drift = report
        .drifts
        .iter()
        .find(|d| d.field == "wikijs.api_key")
        .expect("key drift");
    assert_eq!(
        drift.message,
        "Wiki.js API key in WIKIJS_API_KEY refused: API Key is invalid or was revoked."
    );
    assert!(
        drift.remedy.contains("mint a new API key"),
        "{}",
        drift.remedy
    );
    drift_then_fix(&w, "API Key is invalid or was revoked").await;
    let new = w.p.env_value("WIKIJS_API_KEY").expect("key");
    assert_ne!(new, old);
    assert!(w.wiki.key_is_valid(&new));
}

#[tokio::test]
async fn a_revoked_key_without_the_admin_login_is_a_permanent_operator_error() {
    let w = added(Access::Key).await;
    let key = w.p.env_value("WIKIJS_API_KEY").expect("key");
    w.wiki.revoke_api_keys();
    let report = w.p.ctx.check("wikijs").await.expect("check");
    let line = report.line();
    assert!(line.contains("API Key is invalid or was revoked"), "{line}");
    let drift = report
        .drifts
        .iter()
        .find(|d| d.field == "wikijs.api_key")
        .expect("key drift");
    assert!(drift.remedy.starts_with("nothing: "), "{}", drift.remedy);

    let err =
        w.p.ctx
            .apply("wikijs", Action::Fix)
            .await
            .expect_err("nothing can mint a key");
    assert!(
        matches!(err, FlowError::WikijsKeyUnusable { .. }),
        "{err:?}"
    );
    assert!(
        !err.is_transient(),
        "an operator must act; retrying cannot help"
    );
    let text = err.to_string();
    for needle in [
        "API Key is invalid or was revoked",
        "WIKIJS_ADMIN_EMAIL, WIKIJS_ADMIN_PASSWORD",
        "Administration → API Access",
        "store it in .env as WIKIJS_API_KEY",
    ] {
        assert!(text.contains(needle), "`{text}` lacks `{needle}`");
    }
    assert!(!text.contains(&key) && !format!("{err:?}").contains(&key));
    assert_eq!(w.wiki.api_keys().len(), 1, "nothing minted");
}

#[tokio::test]
async fn neither_key_nor_admin_login_is_refused_before_authentik_is_touched() {
    let w = platform(Access::Nothing, "").await;
    let err =
        w.p.ctx
            .apply("wikijs", Action::Add)
            .await
            .expect_err("no way in");
    assert!(
        matches!(err, FlowError::WikijsKeyUnusable { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("WIKIJS_API_KEY is not set in .env"),
        "{err}"
    );
    assert_eq!(w.p.sim.write_count(), 0);
}

#[tokio::test]
async fn api_access_switched_off_is_switched_back_on_without_a_new_key() {
    let w = added(Access::Admin).await;
    w.wiki.set_api_enabled(false);
    drift_then_fix(&w, "the Wiki.js API is disabled").await;
    assert!(w.wiki.api_enabled());
    assert_eq!(w.wiki.api_keys().len(), 1);
}

#[tokio::test]
async fn a_domain_change_shows_as_host_and_url_drift_and_is_fixed() {
    let w = added(Access::Admin).await;
    w.p.set_env("DOMAIN", "new.example");
    let line = w.p.ctx.check("wikijs").await.expect("check").line();
    for needle in [
        "Wiki.js site host mismatch: want https://wiki.new.example, Wiki.js has https://wiki.example.org",
        "Wiki.js strategy authentik issuer mismatch: want https://auth.new.example/application/o/wikijs/",
        "redirect URI mismatch: want https://wiki.new.example/login/authentik/callback",
    ] {
        assert!(line.contains(needle), "`{line}` lacks `{needle}`");
    }
    drift_then_fix(&w, "Wiki.js site host mismatch").await;
    assert_eq!(w.wiki.host(), "https://wiki.new.example");
    assert_eq!(
        strategy(&w)["config"]["tokenURL"],
        "https://auth.new.example/application/o/token/"
    );
}

#[tokio::test]
async fn every_request_matches_the_wikijs_and_authentik_schemas() {
    let w = added(Access::Admin).await;
    w.wiki.delete_strategy("authentik");
    w.wiki.set_host("https://elsewhere.example");
    w.wiki.revoke_api_keys();
    w.p.ctx.apply("wikijs", Action::Fix).await.expect("fix");
    assert_eq!(w.p.ctx.check("wikijs").await.expect("check").line(), GREEN);
    let calls = w.wiki.calls();
    for expected in [
        "AuthenticationMutation.login",
        "AuthenticationMutation.setApiState",
        "AuthenticationMutation.createApiKey",
        "SiteMutation.updateConfig",
        "AuthenticationMutation.updateStrategies",
    ] {
        assert!(calls.iter().any(|c| c == expected), "{expected}: {calls:?}");
    }
    assert!(
        w.wiki.schema_violations().is_empty(),
        "{:?}",
        w.wiki.schema_violations()
    );
    assert!(
        w.p.sim.schema_violations().is_empty(),
        "{:?}",
        w.p.sim.schema_violations()
    );
}

#[tokio::test]
async fn no_wikijs_secret_reaches_logs_errors_or_reports() {
    let capture = global_log_capture();
    let client_secret = "RECOGNISABLE-wikijs-client-secret-51c0";
    let w = platform(
        Access::Admin,
        &format!("WIKIJS_SSO_CLIENT_SECRET={client_secret}\n"),
    )
    .await;
    let password = w.wiki.admin_password();
    let mut seen = Vec::new();
    let applied = w.p.ctx.apply("wikijs", Action::Add).await.expect("add");
    seen.push(format!("{applied:?}"));
    let minted = w.p.env_value("WIKIJS_API_KEY").expect("key");

    w.wiki.set_strategy_config(
        "authentik",
        "clientSecret",
        json!("RECOGNISABLE-ui-value-7e"),
    );
    w.wiki.revoke_api_keys();
    let report = w.p.ctx.check("wikijs").await.expect("check");
    seen.push(report.line());
    seen.push(format!("{report:?}"));
    seen.push(serde_json::to_string(&report).expect("json"));
    let applied = w.p.ctx.apply("wikijs", Action::Fix).await.expect("fix");
    seen.push(format!("{applied:?}"));
    let report = w.p.ctx.check("wikijs").await.expect("check");
    seen.push(format!("{report:?}"));

    // A failing mint: the admin password is wrong now.
    w.wiki.revoke_api_keys();
    w.p.set_env("WIKIJS_ADMIN_PASSWORD", "RECOGNISABLE-wrong-password-3a");
    let err =
        w.p.ctx
            .apply("wikijs", Action::Fix)
            .await
            .expect_err("login fails");
    assert!(
        err.to_string().contains(
            "log in as the Wiki.js admin: refused: Invalid email / username or password."
        ),
        "{err}"
    );
    assert!(!err.is_transient());
    seen.push(err.to_string());
    seen.push(format!("{err:?}"));
    seen.push(capture.text());
    let all = seen.join("\n");
    let second = w.p.env_value("WIKIJS_API_KEY").expect("key");
    for secret in [
        client_secret,
        "RECOGNISABLE-ui-value-7e",
        "RECOGNISABLE-wrong-password-3a",
        password.as_str(),
        minted.as_str(),
        second.as_str(),
    ] {
        assert!(!all.contains(secret), "`{secret}` leaked:\n{all}");
    }
}
