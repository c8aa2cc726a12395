//! Uptime Kuma (proxy) against the authentik stand-in: empty → add → green; add again changes
//! nothing; each drift kind is named, fixed, and green again; concurrent adds keep every
//! provider in the embedded outpost.

use serde_json::{Value, json};
use worker::Action;

use crate::support::Platform;

const EMBEDDED: &str = "authentik Embedded Outpost";

fn outpost_providers(p: &Platform) -> Vec<Value> {
    p.sim
        .outposts()
        .into_iter()
        .find(|o| o["name"] == EMBEDDED)
        .and_then(|o| o["providers"].as_array().cloned())
        .expect("embedded outpost")
}

fn provider(p: &Platform, name: &str) -> Value {
    p.sim
        .provider_by_name(&format!("pma-sso-{name}"))
        .expect("provider")
}

async fn added() -> Platform {
    let p = Platform::new(&["uptime-kuma"]).await;
    p.ctx.apply("uptime-kuma", Action::Add).await.expect("add");
    let report = p.ctx.check("uptime-kuma").await.expect("check");
    assert!(report.in_sync(), "{}", report.line());
    p
}

async fn drift_then_fix(p: &Platform, service: &str, expect: &[&str]) {
    let line = p.ctx.check(service).await.expect("check").line();
    assert!(
        line.starts_with(&format!("❌ {service} (proxy) — ")),
        "{line}"
    );
    for part in expect {
        assert!(line.contains(part), "`{line}` does not name `{part}`");
    }
    p.ctx.apply(service, Action::Fix).await.expect("fix");
    let after = p.ctx.check(service).await.expect("check");
    assert!(after.in_sync(), "after fix: {}", after.line());
    assert!(
        p.sim.schema_violations().is_empty(),
        "{:?}",
        p.sim.schema_violations()
    );
}

/// A second proxy service in the platform's packages directory.
fn add_proxy_package(p: &Platform, name: &str, extra: &str) {
    let dir = p.path(&format!("packages/{name}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("manifest.yaml"),
        format!("name: {name}\nsso:\n  type: proxy\n  configured: false\n{extra}"),
    )
    .expect("write manifest");
}

#[tokio::test]
async fn uptime_kuma_goes_from_empty_to_green_and_a_second_add_changes_nothing() {
    let p = Platform::new(&["uptime-kuma"]).await;
    let before = p.ctx.check("uptime-kuma").await.expect("check runs");
    assert!(
        before.line().contains("authentik app missing"),
        "{}",
        before.line()
    );

    p.ctx.apply("uptime-kuma", Action::Add).await.expect("add");
    let after = p.ctx.check("uptime-kuma").await.expect("check");
    assert_eq!(
        after.line(),
        "✓ uptime-kuma (proxy) — authentik app present, outpost serves it"
    );
    let provider = provider(&p, "uptime-kuma");
    assert_eq!(provider["mode"], "forward_single");
    assert_eq!(provider["external_host"], "https://uptime.example.org");
    assert_eq!(
        provider["skip_path_regex"],
        "^/status(/.*)?$\n^/api/push/.*\n^/api/badge/.*\n^/api/status-page/.*\n^/assets/.*\n^/upload/.*\n^/icon\\.svg$"
    );
    assert_eq!(outpost_providers(&p), vec![provider["pk"].clone()]);
    assert_eq!(
        provider["outpost_set"],
        json!([format!("Outpost {EMBEDDED}")])
    );
    let app = p.sim.application("uptime-kuma").expect("app");
    assert_eq!(app["meta_publisher"], "pma-sso");
    assert_eq!(app["provider"], provider["pk"]);
    assert_eq!(app["meta_launch_url"], "https://uptime.example.org/");

    let writes = p.sim.write_count();
    let again = p
        .ctx
        .apply("uptime-kuma", Action::Add)
        .await
        .expect("again");
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    let fixed = p.ctx.apply("uptime-kuma", Action::Fix).await.expect("fix");
    assert!(fixed.actions.is_empty(), "{:?}", fixed.actions);
    assert_eq!(p.sim.write_count(), writes, "an in-sync add/fix wrote");
    assert_eq!(p.sim.proxy_providers().len(), 1);
    assert_eq!(p.apps_with_slug("uptime-kuma"), 1);
    assert_eq!(outpost_providers(&p).len(), 1);
    assert!(
        p.sim.schema_violations().is_empty(),
        "{:?}",
        p.sim.schema_violations()
    );
}

#[tokio::test]
async fn a_provider_removed_from_the_outpost_is_put_back() {
    let p = added().await;
    p.sim.patch_outpost(EMBEDDED, json!({"providers": []}));
    drift_then_fix(
        &p,
        "uptime-kuma",
        &["provider pma-sso-uptime-kuma is not in outpost authentik Embedded Outpost"],
    )
    .await;
    assert_eq!(
        outpost_providers(&p),
        vec![provider(&p, "uptime-kuma")["pk"].clone()]
    );
}

#[tokio::test]
async fn a_changed_external_host_is_named_and_fixed_with_authentiks_validation_quirk() {
    let p = added().await;
    p.sim.patch_provider(
        "pma-sso-uptime-kuma",
        json!({"external_host": "https://uptime.old.example"}),
    );
    p.sim.reset_requests();
    drift_then_fix(
        &p,
        "uptime-kuma",
        &["external host mismatch: want https://uptime.example.org, authentik has https://uptime.old.example"],
    )
    .await;
    let patches: Vec<_> = p
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    // authentik reads `mode` from the submitted body only, so it travels with every PATCH.
    assert_eq!(
        patches[0].body,
        Some(json!({"external_host": "https://uptime.example.org", "mode": "forward_single"}))
    );
    let provider = provider(&p, "uptime-kuma");
    assert_eq!(
        provider["redirect_uris"][0]["url"],
        "https://uptime.example.org/outpost.goauthentik.io/callback?X-authentik-auth-callback=true"
    );
}

#[tokio::test]
async fn mode_and_unauthenticated_path_drift_are_named() {
    let p = added().await;
    p.sim.patch_provider(
        "pma-sso-uptime-kuma",
        json!({"mode": "proxy", "internal_host": "http://uptime-kuma:3001", "skip_path_regex": "^/status(/.*)?$\n^/metrics$"}),
    );
    drift_then_fix(
        &p,
        "uptime-kuma",
        &[
            "mode mismatch: want forward_single, authentik has proxy",
            "unauthenticated paths differ: missing ^/api/push/.*",
            "unexpected ^/metrics$",
        ],
    )
    .await;
}

#[tokio::test]
async fn fields_authentik_sets_itself_are_not_drift() {
    let p = added().await;
    // What authentik's own normalisation changes on every save: never ours to compare.
    p.sim.patch_provider(
        "pma-sso-uptime-kuma",
        json!({"client_type": "public", "property_mappings": [], "redirect_uris": []}),
    );
    let report = p.ctx.check("uptime-kuma").await.expect("check");
    assert!(report.in_sync(), "{}", report.line());
}

#[tokio::test]
async fn a_deleted_application_is_recreated_and_linked() {
    let p = added().await;
    assert!(p.sim.delete_application("uptime-kuma"));
    drift_then_fix(&p, "uptime-kuma", &["authentik app missing"]).await;
    assert_eq!(
        p.sim.application("uptime-kuma").expect("app")["provider"],
        provider(&p, "uptime-kuma")["pk"]
    );
}

#[tokio::test]
async fn proxy_mode_sends_the_internal_host() {
    let p = Platform::new(&["uptime-kuma"]).await;
    add_proxy_package(
        &p,
        "kuma-direct",
        "  proxy:\n    mode: proxy\n    internal_url: \"${KUMA_INTERNAL:-http://uptime-kuma:3001}\"\n",
    );
    p.ctx.apply("kuma-direct", Action::Add).await.expect("add");
    let provider = provider(&p, "kuma-direct");
    assert_eq!(provider["mode"], "proxy");
    assert_eq!(provider["internal_host"], "http://uptime-kuma:3001");
    p.set_env("KUMA_INTERNAL", "http://kuma.internal:3001");
    drift_then_fix(
        &p,
        "kuma-direct",
        &["internal host mismatch: want http://kuma.internal:3001, authentik has http://uptime-kuma:3001"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_proxy_services_added_concurrently_both_end_up_in_the_outpost() {
    let p = Platform::new(&["uptime-kuma"]).await;
    add_proxy_package(&p, "status-board", "");
    // Slow outpost reads and writes widen the window in which both read the same list.
    p.sim.set_faults(testkit::Faults {
        latency: std::time::Duration::from_millis(40),
        path_prefix: Some("/outposts/".into()),
        ..testkit::Faults::default()
    });
    let (a, b) = tokio::join!(
        p.ctx.apply("uptime-kuma", Action::Add),
        p.ctx.apply("status-board", Action::Add)
    );
    a.expect("uptime-kuma");
    b.expect("status-board");
    let mut attached = outpost_providers(&p);
    attached.sort_by_key(|v| v.as_i64());
    let mut ours = vec![
        provider(&p, "uptime-kuma")["pk"].clone(),
        provider(&p, "status-board")["pk"].clone(),
    ];
    ours.sort_by_key(|v| v.as_i64());
    assert_eq!(attached, ours);
    for s in ["uptime-kuma", "status-board"] {
        let report = p.ctx.check(s).await.expect("check");
        assert!(report.in_sync(), "{}", report.line());
    }
}

#[tokio::test]
async fn attaching_keeps_providers_others_put_in_the_outpost() {
    let p = Platform::new(&["uptime-kuma"]).await;
    add_proxy_package(&p, "first", "");
    add_proxy_package(&p, "second", "");
    p.ctx.apply("first", Action::Add).await.expect("first");
    let first = provider(&p, "first")["pk"].clone();
    p.ctx.apply("second", Action::Add).await.expect("second");
    let second = provider(&p, "second")["pk"].clone();
    assert_eq!(outpost_providers(&p), vec![first, second]);
}

#[tokio::test]
async fn a_named_outpost_that_does_not_exist_is_refused_before_anything_is_created() {
    let p = Platform::new(&["uptime-kuma"]).await;
    add_proxy_package(&p, "gated", "  proxy:\n    outpost: edge\n");
    let writes = p.sim.write_count();
    let err = p
        .ctx
        .apply("gated", Action::Add)
        .await
        .expect_err("no such outpost");
    assert!(
        err.to_string()
            .contains("authentik has no outpost of type proxy named `edge`"),
        "{err}"
    );
    assert!(!err.is_transient());
    assert_eq!(p.sim.write_count(), writes);
}
