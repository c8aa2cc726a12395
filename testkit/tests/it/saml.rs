//! SAML providers and SAML property mappings: model defaults, the signing-flag rule on the
//! submitted body, URLs built from the request host, and the seeded managed mappings.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::Api;

async fn saml_body(api: &Api, name: &str) -> Value {
    json!({
        "name": name,
        "authorization_flow": api.flow_pk("default-provider-authorization-implicit-consent").await,
        "invalidation_flow": api.flow_pk("default-provider-invalidation-flow").await,
        "acs_url": "https://sp.example.org/acs",
    })
}

async fn self_signed(api: &Api) -> String {
    let (_, list) = api
        .get("/crypto/certificatekeypairs/?name=authentik%20Self-signed%20Certificate")
        .await;
    list["results"][0]["pk"].as_str().expect("pk").to_owned()
}

#[tokio::test]
async fn a_bare_saml_provider_gets_model_defaults_and_signs_nothing() {
    let api = Api::start().await;
    let body = saml_body(&api, "bare").await;
    let (status, provider) = api.post("/providers/saml/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{provider}");
    for (field, expected) in [
        ("issuer", json!("authentik")),
        ("signing_kp", Value::Null),
        ("property_mappings", json!([])),
        ("audience", json!("")),
        ("sp_binding", json!("redirect")),
        ("sign_assertion", json!(true)),
        ("sign_response", json!(false)),
        (
            "default_name_id_policy",
            json!("urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"),
        ),
        (
            "meta_model_name",
            json!("authentik_providers_saml.samlprovider"),
        ),
        ("url_sso_redirect", json!("-")),
    ] {
        assert_eq!(provider[field], expected, "{field}");
    }
    assert!(
        provider["url_download_metadata"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!(
                "/providers/saml/{}/metadata/?download",
                provider["pk"]
            ))),
        "{provider}"
    );
}

#[tokio::test]
async fn required_fields_are_named_in_one_answer() {
    let api = Api::start().await;
    let (status, body) = api.post("/providers/saml/", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for field in ["name", "authorization_flow", "invalidation_flow", "acs_url"] {
        assert!(body[field].is_array(), "{field} missing from {body}");
    }
}

#[tokio::test]
async fn setting_a_signing_keypair_needs_a_sign_flag_in_the_same_body() {
    let api = Api::start().await;
    let body = saml_body(&api, "signed").await;
    let (_, provider) = api.post("/providers/saml/", body).await;
    let path = format!("/providers/saml/{}/", provider["pk"]);
    let kp = self_signed(&api).await;

    // The stored sign_assertion is true, but authentik judges the submitted body only.
    let (status, body) = api.patch(&path, json!({"signing_kp": kp})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"non_field_errors": ["With a signing keypair selected, at least one of 'Sign assertion' and 'Sign Response' must be selected."]})
    );
    let (status, body) = api
        .patch(
            &path,
            json!({"signing_kp": kp, "sign_assertion": true, "sign_response": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["signing_kp"], kp.as_str());
}

#[tokio::test]
async fn urls_follow_the_host_the_api_was_called_on_once_an_application_exists() {
    let api = Api::start().await;
    let body = saml_body(&api, "with-app").await;
    let (_, provider) = api.post("/providers/saml/", body).await;
    let (status, _) = api
        .post(
            "/core/applications/",
            json!({"name": "SP", "slug": "sp", "provider": provider["pk"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, provider) = api
        .get(&format!("/providers/saml/{}/", provider["pk"]))
        .await;
    let base = api.sim.base_url();
    assert_eq!(
        provider["url_sso_redirect"],
        format!("{base}/application/saml/sp/sso/binding/redirect/")
    );
    assert_eq!(
        provider["url_download_metadata"],
        format!("{base}/application/saml/sp/metadata/")
    );
    assert_eq!(provider["assigned_application_slug"], "sp");
}

#[tokio::test]
async fn property_mappings_must_be_saml_mappings() {
    let api = Api::start().await;
    let (_, scopes) = api.get("/propertymappings/provider/scope/").await;
    let scope_pk = scopes["results"][0]["pk"].clone();
    let mut body = saml_body(&api, "mapped").await;
    body["property_mappings"] = json!([scope_pk]);
    let (status, answer) = api.post("/providers/saml/", body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["property_mappings"].is_array(), "{answer}");

    let (_, email) = api
        .get("/propertymappings/provider/saml/?managed=goauthentik.io/providers/saml/email")
        .await;
    assert_eq!(email["pagination"]["count"], 1);
    body["property_mappings"] = json!([email["results"][0]["pk"]]);
    let (status, answer) = api.post("/providers/saml/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

#[tokio::test]
async fn the_managed_saml_mappings_are_seeded_and_names_are_unique_across_kinds() {
    let api = Api::start().await;
    let (_, managed) = api
        .get("/propertymappings/provider/saml/?managed__isnull=false")
        .await;
    assert_eq!(managed["pagination"]["count"], 7);
    let (status, created) = api
        .post(
            "/propertymappings/provider/saml/",
            json!({"name": "sp-email", "saml_name": "email", "expression": "return request.user.email"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["friendly_name"], Value::Null);
    assert_eq!(created["managed"], Value::Null);
    let (status, body) = api
        .post(
            "/propertymappings/provider/saml/",
            json!({"name": "authentik default OAuth Mapping: OpenID 'email'", "saml_name": "x", "expression": "return 1"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"name": ["Property Mapping with this name already exists."]})
    );
}
