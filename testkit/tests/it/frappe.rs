//! Drives the Frappe stand-in over HTTP, as Frappe's REST API would answer.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{FrappeHandle, FrappeSim};

const KEY: &str = "api-key-1";
const SECRET: &str = "api-secret-1";

async fn send(
    frappe: &FrappeHandle,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request =
        reqwest::Client::new().request(method, format!("{}{path}", frappe.base_url()));
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

fn token() -> String {
    format!("token {KEY}:{SECRET}")
}

fn login_key(secret: &str) -> Value {
    json!({
        "provider_name": "authentik", "enable_social_login": 1, "social_login_provider": "Custom",
        "client_id": "cid", "client_secret": secret, "base_url": "https://auth.example.org",
        "custom_base_url": 1, "authorize_url": "/application/o/authorize/",
        "access_token_url": "/application/o/token/", "api_endpoint": "/application/o/userinfo/",
        "redirect_url": "/api/method/frappe.integrations.oauth2_logins.custom/authentik",
        "auth_url_data": "{\"response_type\": \"code\"}", "user_id_property": "sub", "sign_ups": "Allow",
    })
}

const RESOURCE: &str = "/api/resource/Social%20Login%20Key";

#[tokio::test]
async fn a_wrong_secret_is_401_and_a_user_without_the_role_403() {
    let frappe = FrappeSim::new(KEY, SECRET)
        .limited_user("k2", "s2")
        .start()
        .await;
    let (status, body) = send(
        &frappe,
        Method::GET,
        &format!("{RESOURCE}/authentik"),
        Some(&format!("token {KEY}:wrong")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["exc_type"], "AuthenticationError");
    let (status, body) = send(
        &frappe,
        Method::GET,
        &format!("{RESOURCE}/authentik"),
        Some("token k2:s2"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["exc_type"], "PermissionError");
    let messages: Vec<String> =
        serde_json::from_str(body["_server_messages"].as_str().expect("text")).expect("list");
    let first: Value = serde_json::from_str(&messages[0]).expect("object");
    assert_eq!(
        first["message"],
        "Insufficient Permission for Social Login Key"
    );
    let (status, _) = send(
        &frappe,
        Method::GET,
        &format!("{RESOURCE}/authentik"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a guest");
}

#[tokio::test]
async fn the_password_is_masked_on_get_and_revealed_only_by_get_password() {
    let frappe = FrappeSim::new(KEY, SECRET).start().await;
    let (status, body) = send(
        &frappe,
        Method::POST,
        RESOURCE,
        Some(&token()),
        Some(login_key("s3cret-value")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["name"], "authentik");
    assert_eq!(body["data"]["client_secret"], "************");
    let (_, body) = send(
        &frappe,
        Method::GET,
        &format!("{RESOURCE}/authentik"),
        Some(&token()),
        None,
    )
    .await;
    assert_eq!(body["data"]["client_secret"], "************");
    assert_eq!(body["data"]["doctype"], "Social Login Key");
    let (status, body) = send(
        &frappe,
        Method::GET,
        "/api/method/frappe.client.get_password?doctype=Social%20Login%20Key&name=authentik&fieldname=client_secret",
        Some(&token()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"message": "s3cret-value"}));

    // Writing the mask back leaves the password alone, as `is_dummy_password` does.
    let (status, _) = send(
        &frappe,
        Method::PUT,
        &format!("{RESOURCE}/authentik"),
        Some(&token()),
        Some(json!({"client_secret": "************", "sign_ups": "Deny"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        frappe.client_secret("authentik").as_deref(),
        Some("s3cret-value")
    );
    assert_eq!(
        frappe.social_login_key("authentik").expect("doc")["sign_ups"],
        "Deny"
    );
}

#[tokio::test]
async fn duplicates_missing_documents_and_failed_validation_answer_as_frappe() {
    let frappe = FrappeSim::new(KEY, SECRET).start().await;
    let (status, _) = send(
        &frappe,
        Method::POST,
        RESOURCE,
        Some(&token()),
        Some(login_key("x")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(
        &frappe,
        Method::POST,
        RESOURCE,
        Some(&token()),
        Some(login_key("x")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["exc_type"], "DuplicateEntryError");
    let (status, body) = send(
        &frappe,
        Method::GET,
        &format!("{RESOURCE}/other"),
        Some(&token()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["exc_type"], "DoesNotExistError");
    let (status, body) = send(
        &frappe,
        Method::PUT,
        &format!("{RESOURCE}/authentik"),
        Some(&token()),
        Some(json!({"client_secret": ""})),
    )
    .await;
    assert_eq!(status, StatusCode::EXPECTATION_FAILED);
    assert_eq!(
        body["exception"],
        "frappe.exceptions.ValidationError: Please enter Client Secret before social login is enabled"
    );
    assert_eq!(frappe.write_count(), 3);
}

#[tokio::test]
async fn fields_the_doctype_lacks_are_refused_and_recorded() {
    let frappe = FrappeSim::new(KEY, SECRET).start().await;
    let mut body = login_key("x");
    body["client_type"] = json!("confidential");
    body["custom_base_url"] = json!(true);
    let (status, _) = send(&frappe, Method::POST, RESOURCE, Some(&token()), Some(body)).await;
    assert_eq!(status, StatusCode::EXPECTATION_FAILED);
    let violations = frappe.schema_violations();
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(
        violations
            .iter()
            .any(|v| v.contains("unknown field `client_type`"))
    );
    assert!(frappe.social_login_keys().is_empty());
}
