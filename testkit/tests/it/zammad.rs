//! The Zammad settings stand-in: token auth, the settings list, and updates of
//! `state_current` only.

use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::ZammadSim;

const TOKEN: &str = "zammad-token-1234";

async fn send(
    method: reqwest::Method,
    url: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("reaches the stand-in");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401() {
    let zammad = ZammadSim::new(TOKEN).start().await;
    let url = format!("{}/api/v1/settings", zammad.base_url());
    let (status, _) = send(reqwest::Method::GET, &url, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(reqwest::Method::GET, &url, Some("Token token=nope"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, list) = send(
        reqwest::Method::GET,
        &url,
        Some(&format!("Token token={TOKEN}")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    for name in [
        "fqdn",
        "http_type",
        "auth_saml",
        "auth_saml_credentials",
        "auth_third_party_auto_link_at_inital_login",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let (status, _) = send(
        reqwest::Method::GET,
        &url,
        Some(&format!("Bearer {TOKEN}")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn put_changes_state_current_and_counts_writes() {
    let zammad = ZammadSim::new(TOKEN).start().await;
    let auth = format!("Token token={TOKEN}");
    let url = format!("{}/api/v1/settings/3", zammad.base_url());
    let (status, setting) = send(
        reqwest::Method::PUT,
        &url,
        Some(&auth),
        Some(json!({"state_current": {"value": "https"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{setting}");
    assert_eq!(setting["name"], "http_type");
    assert_eq!(zammad.setting("http_type"), Some(json!("https")));
    assert_eq!(zammad.write_count(), 1);

    let (status, _) = send(
        reqwest::Method::PUT,
        &url,
        Some(&auth),
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = send(
        reqwest::Method::PUT,
        &format!("{}/api/v1/settings/999", zammad.base_url()),
        Some(&auth),
        Some(json!({"state_current": {"value": 1}})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    zammad.set_setting("fqdn", json!("by-hand.example"));
    assert_eq!(zammad.setting("fqdn"), Some(json!("by-hand.example")));
    assert_eq!(zammad.write_count(), 2, "the refused PUT reached a setting");
}
