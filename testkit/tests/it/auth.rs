use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{Api, sample, sample_status};

#[tokio::test]
async fn request_without_a_token_is_403_not_provided() {
    let api = Api::start().await;
    let response = reqwest::get(api.url("/core/applications/"))
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), sample_status("26-err-no-token"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, sample("26-err-no-token"));
}

#[tokio::test]
async fn request_with_a_wrong_token_is_403_token_invalid() {
    let api = Api::start().await;
    let response = reqwest::Client::new()
        .get(api.url("/core/users/me/"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status().as_u16(),
        sample_status("25-err-bad-token")
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, sample("25-err-bad-token"));
}

#[tokio::test]
async fn another_auth_scheme_counts_as_no_credentials_and_never_401() {
    let api = Api::start().await;
    let response = reqwest::Client::new()
        .get(api.url("/core/users/me/"))
        .basic_auth("akadmin", Some(crate::support::TOKEN))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, sample("26-err-no-token"));
}

#[tokio::test]
async fn unauthenticated_requests_change_nothing_and_are_not_writes() {
    let api = Api::start().await;
    let response = reqwest::Client::new()
        .post(api.url("/core/applications/"))
        .json(&serde_json::json!({"name": "x", "slug": "x"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(api.sim.applications().is_empty());
    assert_eq!(api.sim.write_count(), 0);
    assert_eq!(api.sim.requests().len(), 1);
    assert_eq!(api.sim.requests()[0].status, 403);
}
