//! 400s and 404s in DRF's shapes, keyed as authentik keys them.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Api, sample, sample_status};

#[tokio::test]
async fn duplicate_slug_is_400_keyed_by_slug() {
    let api = Api::start().await;
    let app = json!({"name": "Grafana", "slug": "grafana"});
    assert_eq!(
        api.post("/core/applications/", app.clone()).await.0,
        StatusCode::CREATED
    );
    let (status, body) = api.post("/core/applications/", app).await;
    assert_eq!(status.as_u16(), sample_status("20-err-duplicate-slug"));
    assert_eq!(body, sample("20-err-duplicate-slug"));
    assert_eq!(api.sim.applications().len(), 1);
}

#[tokio::test]
async fn provider_already_used_by_another_application_is_400_keyed_by_provider() {
    let api = Api::start().await;
    let pk = api.create_provider("shared-provider").await;
    let (status, _) = api
        .post(
            "/core/applications/",
            json!({"name": "A", "slug": "a", "provider": pk}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = api
        .post(
            "/core/applications/",
            json!({"name": "B", "slug": "b", "provider": pk}),
        )
        .await;
    assert_eq!(
        status.as_u16(),
        sample_status("27-err-provider-already-used")
    );
    assert_eq!(body, sample("27-err-provider-already-used"));

    // Moving it with a PATCH is refused the same way; re-saving the owner is fine.
    api.post("/core/applications/", json!({"name": "B", "slug": "b"}))
        .await;
    let (status, body) = api
        .patch("/core/applications/b/", json!({"provider": pk}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, sample("27-err-provider-already-used"));
    let (status, _) = api
        .patch("/core/applications/a/", json!({"provider": pk}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn invalid_and_reserved_slugs_are_refused() {
    let api = Api::start().await;
    let (status, body) = api
        .post(
            "/core/applications/",
            json!({"name": "A", "slug": "not a slug!"}),
        )
        .await;
    assert_eq!(status.as_u16(), sample_status("24-err-invalid-slug"));
    assert_eq!(body, sample("24-err-invalid-slug"));

    for reserved in [
        "authorize",
        "token",
        "device",
        "userinfo",
        "introspect",
        "revoke",
    ] {
        let (status, body) = api
            .post(
                "/core/applications/",
                json!({"name": "A", "slug": reserved}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reserved}");
        assert!(
            body["slug"][0]
                .as_str()
                .is_some_and(|m| m.contains("reserved")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn missing_name_and_slug_are_required_field_errors() {
    let api = Api::start().await;
    let (status, body) = api.post("/core/applications/", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"name": ["This field is required."], "slug": ["This field is required."]})
    );
}

#[tokio::test]
async fn unknown_provider_pk_is_refused_on_provider() {
    let api = Api::start().await;
    let (status, body) = api
        .post(
            "/core/applications/",
            json!({"name": "A", "slug": "a", "provider": 4242}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"provider": ["Invalid pk \"4242\" - object does not exist."]})
    );
}

#[tokio::test]
async fn unknown_application_is_404_with_drfs_detail() {
    let api = Api::start().await;
    for answer in [
        api.get("/core/applications/missing/").await,
        api.patch("/core/applications/missing/", json!({"name": "x"}))
            .await,
        api.delete("/core/applications/missing/").await,
    ] {
        assert_eq!(
            answer.0.as_u16(),
            sample_status("23-err-application-not-found")
        );
        assert_eq!(answer.1, sample("23-err-application-not-found"));
    }
    let (status, body) = api.get("/providers/oauth2/77/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"detail": "No OAuth2Provider matches the given query."})
    );
}

#[tokio::test]
async fn provider_without_required_fields_reads_like_the_recorded_error() {
    let api = Api::start().await;
    let (status, body) = api
        .post("/providers/oauth2/", json!({"name": "incomplete"}))
        .await;
    assert_eq!(
        status.as_u16(),
        sample_status("21-err-provider-missing-fields")
    );
    assert_eq!(body, sample("21-err-provider-missing-fields"));
}

#[tokio::test]
async fn redirect_uris_as_a_string_reads_like_the_recorded_error() {
    let api = Api::start().await;
    let mut body = api.provider_body("string-uris").await;
    body["redirect_uris"] = json!("https://app.example.com/cb");
    let (status, answer) = api.post("/providers/oauth2/", body).await;
    assert_eq!(
        status.as_u16(),
        sample_status("22-err-redirect-uris-as-string")
    );
    assert_eq!(answer, sample("22-err-redirect-uris-as-string"));
}

#[tokio::test]
async fn duplicate_provider_name_and_client_id_are_refused_on_their_fields() {
    let api = Api::start().await;
    let mut body = api.provider_body("grafana-oidc").await;
    body["client_id"] = json!("grafana");
    assert_eq!(
        api.post("/providers/oauth2/", body.clone()).await.0,
        StatusCode::CREATED
    );

    let (status, answer) = api.post("/providers/oauth2/", body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["name"],
        json!(["provider with this name already exists."])
    );
    assert!(answer["client_id"].is_array(), "{answer}");

    body["name"] = json!("other-name");
    let (_, answer) = api.post("/providers/oauth2/", body).await;
    assert!(answer.get("name").is_none());
    assert!(answer["client_id"].is_array(), "{answer}");
}

#[tokio::test]
async fn unknown_flow_mapping_and_keypair_uuids_are_refused_on_their_fields() {
    let api = Api::start().await;
    let ghost = "6a1d8f8e-0000-4000-8000-000000000000";
    let mut body = api.provider_body("ghosts").await;
    body["authorization_flow"] = json!(ghost);
    body["property_mappings"] = json!([ghost]);
    body["signing_key"] = json!(ghost);
    let (status, answer) = api.post("/providers/oauth2/", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = json!([format!("Invalid pk \"{ghost}\" - object does not exist.")]);
    assert_eq!(
        answer,
        json!({
            "authorization_flow": message,
            "property_mappings": message,
            "signing_key": message,
        })
    );
    assert!(api.sim.oauth2_providers().is_empty());
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_like_drf() {
    let api = Api::start().await;
    let (status, body) = api.get("/core/nothing-here/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"detail": "Not found."}));
    // No trailing slash: authentik's router has no such path.
    assert_eq!(api.get("/core/applications").await.0, StatusCode::NOT_FOUND);
    let (status, body) = api.delete("/flows/instances/").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body, json!({"detail": "Method \"DELETE\" not allowed."}));
}

#[tokio::test]
async fn bodies_that_are_not_json_are_refused() {
    let api = Api::start().await;
    let client = reqwest::Client::new();
    let response = client
        .post(api.url("/core/applications/"))
        .bearer_auth(crate::support::TOKEN)
        .header("content-type", "text/plain")
        .body("name=x")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let response = client
        .post(api.url("/core/applications/"))
        .bearer_auth(crate::support::TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("JSON parse error"))
    );
}
