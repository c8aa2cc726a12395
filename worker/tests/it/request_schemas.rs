//! Every request body the client sends is checked by the stand-in against authentik's own
//! request schema (vendored from schema.yml, unknown fields rejected). This drives every kind
//! of write the oauth/oidc flows make and asserts none broke its schema.

use serde_json::json;
use worker::Action;

use crate::support::Platform;

#[tokio::test]
async fn every_write_the_flows_make_matches_authentiks_request_schemas() {
    let p = Platform::new(&["mattermost", "grafana"]).await;
    for s in ["mattermost", "grafana"] {
        p.ctx.apply(s, Action::Add).await.expect("add");
    }
    // Drift on every field we own, so fix sends a PATCH for each.
    let explicit = p
        .sim
        .flows()
        .into_iter()
        .find(|f| f["slug"] == "default-provider-authorization-explicit-consent")
        .expect("flow");
    p.sim.patch_provider(
        "pma-sso-mattermost",
        json!({
            "redirect_uris": [], "client_id": "x", "client_secret": "y", "authorization_flow": explicit["pk"],
            "property_mappings": [], "signing_key": null, "sub_mode": "user_email", "client_type": "public",
        }),
    );
    p.sim
        .patch_provider("pma-sso-grafana", json!({"issuer_mode": "global"}));
    p.sim.patch_application(
        "mattermost",
        json!({"name": "Renamed", "meta_launch_url": "https://x.example/"}),
    );
    let mapping = p
        .sim
        .scope_mappings()
        .into_iter()
        .find(|m| m["name"] == "mattermost-username")
        .expect("mapping");
    reqwest::Client::new()
        .patch(format!(
            "{}/api/v3/propertymappings/provider/scope/{}/",
            p.sim.base_url(),
            mapping["pk"].as_str().expect("pk")
        ))
        .bearer_auth(crate::support::TOKEN)
        .json(&json!({"scope_name": "renamed", "description": "edited"}))
        .send()
        .await
        .expect("patch");
    for s in ["mattermost", "grafana"] {
        p.ctx.apply(s, Action::Fix).await.expect("fix");
        assert!(p.ctx.check(s).await.expect("check").in_sync());
    }
    let writes: Vec<(String, String)> = p
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| {
            (
                r.method,
                r.path
                    .trim_start_matches("/api/v3")
                    .split('/')
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("/"),
            )
        })
        .collect();
    for expected in [
        ("POST", "/propertymappings/provider"),
        ("PATCH", "/propertymappings/provider"),
        ("POST", "/providers/oauth2"),
        ("PATCH", "/providers/oauth2"),
        ("POST", "/core/applications"),
        ("PATCH", "/core/applications"),
    ] {
        assert!(
            writes
                .iter()
                .any(|(m, path)| m == expected.0 && path == expected.1),
            "no {} {} was exercised: {writes:?}",
            expected.0,
            expected.1
        );
    }
    assert!(
        p.sim.schema_violations().is_empty(),
        "{:?}",
        p.sim.schema_violations()
    );
}
