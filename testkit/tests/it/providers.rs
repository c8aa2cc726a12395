//! OAuth2 provider behaviour: defaults, generated credentials, wholesale list updates,
//! writes, and deletes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::Api;

#[tokio::test]
async fn generated_client_secret_is_128_chars_and_client_id_40() {
    let api = Api::start().await;
    let body = api.provider_body("generated").await;
    let (status, provider) = api.post("/providers/oauth2/", body).await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = provider["client_secret"].as_str().expect("secret");
    assert_eq!(secret.len(), 128);
    assert!(secret.chars().all(|c| c.is_ascii_alphanumeric()));
    let client_id = provider["client_id"].as_str().expect("client id");
    assert_eq!(client_id.len(), 40);
    assert!(client_id.chars().all(|c| c.is_ascii_alphanumeric()));

    // Secrets are plain text in lists too.
    let (_, list) = api.get("/providers/oauth2/?name=generated").await;
    assert_eq!(list["results"][0]["client_secret"], secret);
}

#[tokio::test]
async fn the_api_applies_model_defaults_not_ui_defaults() {
    let api = Api::start().await;
    let body = api.provider_body("bare").await;
    let (_, provider) = api.post("/providers/oauth2/", body).await;
    for (field, expected) in [
        ("property_mappings", json!([])),
        ("signing_key", Value::Null),
        ("encryption_key", Value::Null),
        ("authentication_flow", Value::Null),
        ("client_type", json!("confidential")),
        ("sub_mode", json!("hashed_user_id")),
        ("issuer_mode", json!("per_provider")),
        ("include_claims_in_id_token", json!(true)),
        ("access_code_validity", json!("minutes=1")),
        ("access_token_validity", json!("hours=1")),
        ("refresh_token_validity", json!("days=30")),
        ("refresh_token_threshold", json!("seconds=0")),
        ("logout_uri", json!("")),
        ("logout_method", json!("backchannel")),
        ("jwt_federation_sources", json!([])),
        ("jwt_federation_providers", json!([])),
        ("assigned_application_slug", Value::Null),
    ] {
        assert_eq!(provider[field], expected, "{field}");
    }
}

#[tokio::test]
async fn provider_pks_are_integers_from_one_counter() {
    let api = Api::start().await;
    let first = api.create_provider("first").await;
    let second = api.create_provider("second").await;
    assert_eq!(second, first + 1);
    api.delete(&format!("/providers/oauth2/{second}/")).await;
    assert_eq!(api.create_provider("third").await, second + 1);
}

#[tokio::test]
async fn patch_replaces_lists_wholesale_and_every_patch_is_a_write() {
    let api = Api::start().await;
    let pk = api.create_provider("lists").await;
    let path = format!("/providers/oauth2/{pk}/");
    let uris = json!([
        {"matching_mode": "strict", "url": "https://a.example/cb"},
        {"matching_mode": "regex", "url": "^https://.*\\.preview\\.example/cb$"},
    ]);
    let (status, provider) = api.patch(&path, json!({"redirect_uris": uris})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(provider["redirect_uris"], uris);

    let one = json!([{"matching_mode": "strict", "url": "https://b.example/cb"}]);
    let (_, provider) = api.patch(&path, json!({"redirect_uris": one})).await;
    assert_eq!(provider["redirect_uris"], one);

    api.sim.reset_requests();
    let (status, _) = api.patch(&path, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.sim.write_count(), 1, "a no-op PATCH is still a save");
    assert_eq!(api.sim.count("PATCH", "/providers/oauth2/"), 1);
    assert_eq!(api.sim.count("patch", "/api/v3/providers/"), 1);
    assert_eq!(api.sim.count("GET", "/providers/"), 0);
}

#[tokio::test]
async fn invalid_regex_redirect_uri_is_refused() {
    let api = Api::start().await;
    let mut body = api.provider_body("bad-regex").await;
    body["redirect_uris"] = json!([{"matching_mode": "regex", "url": "https://(unclosed"}]);
    let (status, answer) = api.post("/providers/oauth2/", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["redirect_uris"][0]
            .as_str()
            .is_some_and(|m| m.starts_with("Invalid Regex Pattern"))
    );
}

#[tokio::test]
async fn deleting_a_provider_unassigns_its_application() {
    let api = Api::start().await;
    let pk = api.create_provider("doomed").await;
    api.post(
        "/core/applications/",
        json!({"name": "A", "slug": "a", "provider": pk}),
    )
    .await;
    let (status, body) = api.delete(&format!("/providers/oauth2/{pk}/")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    let app = api.sim.application("a").expect("application stays");
    assert_eq!(app["provider"], Value::Null);
    assert_eq!(app["provider_obj"], Value::Null);
}

#[tokio::test]
async fn application_filter_finds_the_provider_of_an_application() {
    let api = Api::start().await;
    let pk = api.create_provider("assigned").await;
    api.create_provider("unassigned").await;
    let (_, app) = api
        .post(
            "/core/applications/",
            json!({"name": "A", "slug": "a", "provider": pk}),
        )
        .await;
    let app_pk = app["pk"].as_str().expect("app pk");
    let (_, list) = api
        .get(&format!("/providers/oauth2/?application={app_pk}"))
        .await;
    assert_eq!(list["pagination"]["count"], 1);
    assert_eq!(list["results"][0]["name"], "assigned");
    let (_, unassigned) = api.get("/providers/all/?application__isnull=true").await;
    assert_eq!(unassigned["pagination"]["count"], 1);
    assert_eq!(unassigned["results"][0]["name"], "unassigned");
}

#[tokio::test]
async fn test_helpers_change_state_behind_the_apis_back() {
    let api = Api::start().await;
    let pk = api.create_provider("drifting").await;
    api.post(
        "/core/applications/",
        json!({"name": "A", "slug": "a", "provider": pk}),
    )
    .await;
    api.sim.reset_requests();

    api.sim.patch_provider(
        "drifting",
        json!({"client_type": "public", "redirect_uris": []}),
    );
    api.sim.patch_application(
        "a",
        json!({"meta_launch_url": "https://elsewhere.example/"}),
    );
    let (_, provider) = api.get(&format!("/providers/oauth2/{pk}/")).await;
    assert_eq!(provider["client_type"], "public");
    assert_eq!(provider["redirect_uris"], json!([]));
    let (_, app) = api.get("/core/applications/a/").await;
    assert_eq!(app["launch_url"], "https://elsewhere.example/");
    assert_eq!(api.sim.write_count(), 0, "helpers are not API writes");

    assert_eq!(
        api.sim
            .provider_by_name("drifting")
            .map(|p| p["pk"].clone()),
        Some(json!(pk))
    );
    assert!(api.sim.delete_application("a"));
    assert!(!api.sim.delete_application("a"));
    assert!(api.sim.delete_provider("drifting"));
    assert!(api.sim.oauth2_providers().is_empty());
    assert_eq!(
        api.get("/core/applications/a/").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn scope_mappings_can_be_created_and_deleted_and_providers_let_go() {
    let api = Api::start().await;
    let (status, mapping) = api
        .post(
            "/propertymappings/provider/scope/",
            json!({"name": "groups", "scope_name": "groups", "expression": "return {}"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mapping_pk = mapping["pk"].clone();
    let mut body = api.provider_body("mapped").await;
    body["property_mappings"] = json!([mapping_pk]);
    let (_, provider) = api.post("/providers/oauth2/", body).await;
    assert_eq!(provider["property_mappings"], json!([mapping_pk]));

    let (status, dup) = api
        .post(
            "/propertymappings/provider/scope/",
            json!({"name": "groups", "scope_name": "groups", "expression": "return {}"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(dup["name"].is_array());

    let (status, _) = api
        .delete(&format!(
            "/propertymappings/provider/scope/{}/",
            mapping_pk.as_str().expect("pk")
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let provider = api.sim.provider_by_name("mapped").expect("provider");
    assert_eq!(provider["property_mappings"], json!([]));
    assert_eq!(api.sim.scope_mappings().len(), 7);
}

/// As on a real authentik (DRF's `CharField` trims): leading and trailing whitespace of text
/// fields is not stored, in the object itself and in nested serializers (`redirect_uris`).
#[tokio::test]
async fn text_fields_are_stored_without_surrounding_whitespace() {
    let api = Api::start().await;
    let (status, mapping) = api
        .post(
            "/propertymappings/provider/scope/",
            json!({"name": " trimmed \n", "scope_name": "x", "expression": "\n  return {}\n", "description": "d\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mapping}");
    assert_eq!(mapping["name"], "trimmed");
    assert_eq!(mapping["expression"], "return {}");
    assert_eq!(mapping["description"], "d");

    let mut body = api.provider_body("spaced").await;
    body["redirect_uris"] = json!([{"matching_mode": "strict", "url": "https://a.example/cb \n"}]);
    let (status, provider) = api.post("/providers/oauth2/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{provider}");
    assert_eq!(provider["redirect_uris"][0]["url"], "https://a.example/cb");
}
