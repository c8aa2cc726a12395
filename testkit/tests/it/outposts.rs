use reqwest::StatusCode;
use serde_json::json;

use crate::support::Api;

async fn embedded_pk(api: &Api) -> String {
    let (_, list) = api
        .get("/outposts/instances/?managed__iexact=goauthentik.io/outposts/embedded")
        .await;
    assert_eq!(list["pagination"]["count"], 1);
    list["results"][0]["pk"].as_str().expect("pk").to_owned()
}

#[tokio::test]
async fn patching_the_embedded_outpost_replaces_its_provider_list() {
    let api = Api::start().await;
    let outpost = embedded_pk(&api).await;
    let path = format!("/outposts/instances/{outpost}/");
    let a = api.create_provider("a").await;
    let b = api.create_provider("b").await;

    let (status, body) = api.patch(&path, json!({"providers": [a, b]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["providers"], json!([a, b]));
    assert_eq!(body["providers_obj"].as_array().map(Vec::len), Some(2));

    let (_, body) = api.patch(&path, json!({"providers": [b]})).await;
    assert_eq!(body["providers"], json!([b]));

    let (_, body) = api.patch(&path, json!({"providers": []})).await;
    assert_eq!(
        body["providers"],
        json!([]),
        "the embedded outpost may be empty"
    );
}

#[tokio::test]
async fn outpost_providers_must_exist_and_the_embedded_name_is_fixed() {
    let api = Api::start().await;
    let path = format!("/outposts/instances/{}/", embedded_pk(&api).await);
    let (status, body) = api.patch(&path, json!({"providers": [999]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"providers": ["Invalid pk \"999\" - object does not exist."]})
    );
    let (status, body) = api.patch(&path, json!({"name": "renamed"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["name"].is_array());
}

#[tokio::test]
async fn deleting_a_provider_removes_it_from_outposts() {
    let api = Api::start().await;
    let path = format!("/outposts/instances/{}/", embedded_pk(&api).await);
    let pk = api.create_provider("attached").await;
    api.patch(&path, json!({"providers": [pk]})).await;
    api.delete(&format!("/providers/all/{pk}/")).await;
    let (_, outpost) = api.get(&path).await;
    assert_eq!(outpost["providers"], json!([]));
    assert_eq!(api.sim.outposts()[0]["providers"], json!([]));
}
