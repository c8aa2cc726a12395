//! Drives the Wiki.js stand-in over HTTP with raw GraphQL, as Wiki.js 2.5 would answer it.

use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::wikijs::SEEDED_GITHUB_KEY;
use testkit::{WikijsHandle, WikijsSim};

const RESULT: &str = "responseResult { succeeded errorCode slug message }";
const STRATEGIES: &str = "query { authentication { activeStrategies { key strategy { key } displayName order isEnabled selfRegistration domainWhitelist autoEnrollGroups config { key value } } } }";

async fn post(
    wiki: &WikijsHandle,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(wiki.graphql_url())
        .json(&json!({"query": query, "variables": variables}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("reaches the stand-in");
    let status = response.status();
    (status, response.json().await.expect("JSON"))
}

async fn login(wiki: &WikijsHandle) -> String {
    let query = format!(
        "mutation ($u: String!, $p: String!) {{ authentication {{ login(username: $u, password: $p, strategy: \"local\") {{ jwt {RESULT} }} }} }}"
    );
    let (status, body) = post(
        wiki,
        None,
        &query,
        json!({"u": wiki.admin_email(), "p": wiki.admin_password()}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let login = &body["data"]["authentication"]["login"];
    assert_eq!(login["responseResult"]["succeeded"], true, "{body}");
    login["jwt"].as_str().expect("jwt").to_owned()
}

#[tokio::test]
async fn a_wrong_password_is_a_failed_response_result_not_an_http_error() {
    let wiki = WikijsSim::new().start().await;
    let query = format!(
        "mutation {{ authentication {{ login(username: \"admin@example.org\", password: \"nope\", strategy: \"local\") {{ jwt {RESULT} }} }} }}"
    );
    let (status, body) = post(&wiki, None, &query, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"]["authentication"]["login"],
        json!({"jwt": null, "responseResult": {"succeeded": false, "errorCode": 1002, "slug": "AuthLoginFailed", "message": "Invalid email / username or password."}})
    );
}

#[tokio::test]
async fn a_login_session_enables_the_api_and_creates_a_working_key() {
    let wiki = WikijsSim::new().start().await;
    let jwt = login(&wiki).await;
    let query =
        format!("mutation {{ authentication {{ setApiState(enabled: true) {{ {RESULT} }} }} }}");
    let (_, body) = post(&wiki, Some(&jwt), &query, json!({})).await;
    assert_eq!(
        body["data"]["authentication"]["setApiState"]["responseResult"]["succeeded"],
        true
    );
    let query = format!(
        "mutation ($n: String!, $e: String!) {{ authentication {{ createApiKey(name: $n, expiration: $e, fullAccess: true) {{ key {RESULT} }} }} }}"
    );
    let (_, body) = post(&wiki, Some(&jwt), &query, json!({"n": "sso", "e": "1y"})).await;
    let key = body["data"]["authentication"]["createApiKey"]["key"]
        .as_str()
        .expect("key")
        .to_owned();
    assert_eq!(key.split('.').count(), 3, "shaped like Wiki.js's JWT keys");
    let (status, body) = post(&wiki, Some(&key), "{ site { config { host } } }", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"data": {"site": {"config": {"host": "http://localhost:3000"}}}})
    );
    assert_eq!(
        wiki.write_count(),
        2,
        "setApiState and createApiKey; login is no write"
    );
}

#[tokio::test]
async fn revoked_keys_and_keys_while_the_api_is_off_get_the_middlewares_500() {
    let wiki = WikijsSim::new().start().await;
    let key = wiki.issue_api_key("ops");
    wiki.set_api_enabled(false);
    let (status, body) = post(&wiki, Some(&key), "{ site { config { host } } }", json!({})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        json!({"data": {}, "errors": [{"message": "API is disabled. You must enable it from the Administration Area first.", "path": []}]})
    );
    wiki.set_api_enabled(true);
    wiki.revoke_api_keys();
    let (status, body) = post(&wiki, Some(&key), "{ site { config { host } } }", json!({})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body["errors"][0]["message"],
        "API Key is invalid or was revoked."
    );
}

#[tokio::test]
async fn an_unknown_token_is_a_guest_and_admin_fields_are_forbidden() {
    let wiki = WikijsSim::new().start().await;
    let (status, body) = post(
        &wiki,
        Some("not-a-token-this-wiki-issued"),
        "{ site { config { host } } authentication { activeStrategies { key config { key } } } }",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["site"]["config"], Value::Null);
    assert_eq!(body["errors"][0]["message"], "Forbidden");
    assert_eq!(body["errors"][0]["path"], json!(["site", "config"]));
    // Strategy keys are public; their config is not.
    assert_eq!(
        body["data"]["authentication"]["activeStrategies"][0],
        json!({"key": "local", "config": null})
    );
}

#[tokio::test]
async fn config_is_read_as_definitions_with_values_and_written_as_v_objects() {
    let wiki = WikijsSim::new().start().await;
    let key = wiki.issue_api_key("ops");
    let (_, body) = post(&wiki, Some(&key), STRATEGIES, json!({})).await;
    let list = body["data"]["authentication"]["activeStrategies"]
        .as_array()
        .expect("list")
        .clone();
    assert_eq!(list.len(), 2);
    let github = list
        .iter()
        .find(|s| s["key"] == SEEDED_GITHUB_KEY)
        .expect("github");
    let client_id = github["config"]
        .as_array()
        .expect("config")
        .iter()
        .find(|c| c["key"] == "clientId")
        .expect("clientId");
    let decoded: Value =
        serde_json::from_str(client_id["value"].as_str().expect("text")).expect("JSON");
    assert_eq!(decoded["title"], "Client ID");
    assert_eq!(decoded["value"], "Iv1.8a61f9b3a7aba766");

    // Write the list back with a new strategy, config as {"v": …}.
    let mut input: Vec<Value> = list
        .iter()
        .map(|s| {
            json!({
                "key": s["key"], "strategyKey": s["strategy"]["key"], "displayName": s["displayName"],
                "order": s["order"], "isEnabled": s["isEnabled"], "selfRegistration": s["selfRegistration"],
                "domainWhitelist": s["domainWhitelist"], "autoEnrollGroups": s["autoEnrollGroups"],
                "config": s["config"].as_array().expect("config").iter().map(|c| {
                    let v: Value = serde_json::from_str(c["value"].as_str().expect("text")).expect("JSON");
                    json!({"key": c["key"], "value": json!({"v": v["value"]}).to_string()})
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    input.push(json!({
        "key": "authentik", "strategyKey": "oidc", "displayName": "authentik", "order": 2,
        "isEnabled": true, "selfRegistration": true, "domainWhitelist": [], "autoEnrollGroups": [],
        "config": [{"key": "issuer", "value": "{\"v\":\"https://auth.example.org/application/o/wikijs/\"}"}],
    }));
    let query = format!(
        "mutation ($s: [AuthenticationStrategyInput]!) {{ authentication {{ updateStrategies(strategies: $s) {{ {RESULT} }} }} }}"
    );
    let (_, body) = post(&wiki, Some(&key), &query, json!({ "s": input })).await;
    assert_eq!(
        body["data"]["authentication"]["updateStrategies"]["responseResult"]["succeeded"], true,
        "{body}"
    );
    assert_eq!(
        wiki.strategy("authentik").expect("added")["config"]["issuer"],
        "https://auth.example.org/application/o/wikijs/"
    );
    assert_eq!(
        wiki.strategy(SEEDED_GITHUB_KEY).expect("kept")["config"]["clientSecret"],
        "1ae7c8c0f9b2e4d6a8c0e2f4b6d8a0c2e4f6b8d0"
    );
}

#[tokio::test]
async fn update_strategies_deletes_what_is_left_out_unless_users_still_use_it() {
    let wiki = WikijsSim::new().start().await;
    let key = wiki.issue_api_key("ops");
    let query = format!(
        "mutation ($s: [AuthenticationStrategyInput]!) {{ authentication {{ updateStrategies(strategies: $s) {{ {RESULT} }} }} }}"
    );
    let only_local = json!([{
        "key": "local", "strategyKey": "local", "displayName": "Local", "order": 0, "isEnabled": true,
        "selfRegistration": false, "domainWhitelist": [], "autoEnrollGroups": [], "config": [],
    }]);
    let (_, body) = post(&wiki, Some(&key), &query, json!({ "s": only_local })).await;
    assert_eq!(
        body["data"]["authentication"]["updateStrategies"]["responseResult"],
        json!({"succeeded": false, "errorCode": 1, "slug": "Error", "message": "Cannot delete GitHub as 1 or more users are still using it."})
    );
}

#[tokio::test]
async fn requests_that_break_the_schema_are_refused_and_recorded() {
    let wiki = WikijsSim::new().start().await;
    let key = wiki.issue_api_key("ops");
    let (status, body) = post(
        &wiki,
        Some(&key),
        "{ site { config { hostname } } }",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"][0]["message"],
        "Cannot query field \"hostname\" on type \"SiteConfig\"."
    );
    let query = format!(
        "mutation ($s: [AuthenticationStrategyInput]!) {{ authentication {{ updateStrategies(strategies: $s) {{ {RESULT} }} }} }}"
    );
    let missing_display_name = json!([{
        "key": "local", "strategyKey": "local", "order": 0, "isEnabled": true,
        "selfRegistration": false, "domainWhitelist": [], "autoEnrollGroups": [],
    }]);
    let (status, body) = post(
        &wiki,
        Some(&key),
        &query,
        json!({ "s": missing_display_name }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .expect("message")
            .ends_with("Field \"displayName\" of required type \"String!\" was not provided."),
        "{body}"
    );
    let (status, _) = post(
        &wiki,
        Some(&key),
        "mutation ($h: Int) { site { updateConfig(host: $h) { responseResult { succeeded } } } }",
        json!({"h": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let violations = wiki.schema_violations();
    assert_eq!(violations.len(), 3, "{violations:?}");
    assert!(
        violations[2]
            .contains("Variable \"$h\" of type \"Int\" used in position expecting type \"String\"")
    );
    assert_eq!(wiki.strategies().len(), 2, "nothing changed");
}
