//! Proxy providers: authentik's normalisation on every save, the `internal_host` rule judged
//! on the submitted body, and outpost membership.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::Api;

async fn proxy_body(api: &Api, name: &str) -> Value {
    json!({
        "name": name,
        "authorization_flow": api.flow_pk("default-provider-authorization-implicit-consent").await,
        "invalidation_flow": api.flow_pk("default-provider-invalidation-flow").await,
        "mode": "forward_single",
        "external_host": "https://app.example.org",
    })
}

async fn embedded(api: &Api) -> String {
    let (_, list) = api
        .get("/outposts/instances/?managed__iexact=goauthentik.io/outposts/embedded")
        .await;
    list["results"][0]["pk"].as_str().expect("pk").to_owned()
}

#[tokio::test]
async fn a_proxy_provider_is_normalised_by_authentik_on_create() {
    let api = Api::start().await;
    let body = proxy_body(&api, "guarded").await;
    let (status, provider) = api.post("/providers/proxy/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{provider}");
    assert_eq!(
        provider["redirect_uris"],
        json!([
            {"matching_mode": "strict", "url": "https://app.example.org/outpost.goauthentik.io/callback?X-authentik-auth-callback=true"},
            {"matching_mode": "strict", "url": "https://app.example.org?X-authentik-auth-callback=true"},
        ])
    );
    assert_eq!(
        provider["property_mappings"].as_array().map(Vec::len),
        Some(5)
    );
    assert_eq!(provider["client_id"].as_str().map(str::len), Some(40));
    assert_eq!(provider["outpost_set"], json!([]));
    for hidden in ["client_secret", "client_type", "signing_key"] {
        assert!(provider.get(hidden).is_none(), "{hidden} is shown");
    }
    assert_eq!(
        provider["meta_model_name"],
        "authentik_providers_proxy.proxyprovider"
    );
}

#[tokio::test]
async fn internal_host_is_required_for_proxy_mode_judged_on_the_submitted_body() {
    let api = Api::start().await;
    let mut body = proxy_body(&api, "direct").await;
    body["mode"] = json!("proxy");
    let (status, answer) = api.post("/providers/proxy/", body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer,
        json!({"internal_host": ["Internal host cannot be empty when forward auth is disabled."]})
    );

    let body = proxy_body(&api, "forward").await;
    let (_, provider) = api.post("/providers/proxy/", body).await;
    let path = format!("/providers/proxy/{}/", provider["pk"]);
    // A PATCH without `mode` is validated as `mode: proxy`.
    let (status, _) = api
        .patch(&path, json!({"external_host": "https://new.example.org"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, updated) = api
        .patch(
            &path,
            json!({"external_host": "https://new.example.org", "mode": "forward_single"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        updated["redirect_uris"][1]["url"],
        "https://new.example.org?X-authentik-auth-callback=true"
    );
}

#[tokio::test]
async fn updates_put_the_managed_scopes_back() {
    let api = Api::start().await;
    let body = proxy_body(&api, "scopes").await;
    let (_, provider) = api.post("/providers/proxy/", body).await;
    let path = format!("/providers/proxy/{}/", provider["pk"]);
    let (_, updated) = api
        .patch(
            &path,
            json!({"property_mappings": [], "mode": "forward_single"}),
        )
        .await;
    assert_eq!(updated["property_mappings"], provider["property_mappings"]);
}

#[tokio::test]
async fn outpost_membership_shows_on_the_provider() {
    let api = Api::start().await;
    let body = proxy_body(&api, "served").await;
    let (_, provider) = api.post("/providers/proxy/", body).await;
    let outpost = embedded(&api).await;
    let (status, answer) = api
        .patch(
            &format!("/outposts/instances/{outpost}/"),
            json!({"providers": [provider["pk"]]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, provider) = api
        .get(&format!("/providers/proxy/{}/", provider["pk"]))
        .await;
    assert_eq!(
        provider["outpost_set"],
        json!(["Outpost authentik Embedded Outpost"])
    );
    let (_, list) = api.get("/providers/proxy/?name__iexact=SERVED").await;
    assert_eq!(list["pagination"]["count"], 1);
}
