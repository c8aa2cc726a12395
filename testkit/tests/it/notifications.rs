//! The notification pipeline and the identity endpoints, against samples 31–35.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Api, keys, sample, sample_status};

#[tokio::test]
async fn the_notification_wiring_has_the_recorded_shapes_and_statuses() {
    let api = Api::start().await;
    let (status, group) = api
        .post(
            "/core/groups/",
            json!({"name": "webhook-notify-n1", "users": [3]}),
        )
        .await;
    assert_eq!(status.as_u16(), sample_status("31-create-group"));
    assert_eq!(keys(&group), keys(&sample("31-create-group")));
    assert_eq!(
        keys(&group["users_obj"][0]),
        keys(&sample("31-create-group")["users_obj"][0])
    );

    let (status, transport) = api
        .post(
            "/events/transports/",
            json!({"name": "webhook-n1", "mode": "webhook", "webhook_url": "http://127.0.0.1:8099/"}),
        )
        .await;
    assert_eq!(
        status.as_u16(),
        sample_status("32-create-webhook-transport")
    );
    assert_eq!(transport, {
        let mut recorded = sample("32-create-webhook-transport");
        recorded["pk"] = transport["pk"].clone();
        recorded
    });

    let (status, policy) = api
        .post(
            "/policies/event_matcher/",
            json!({"name": "model-created-n1", "action": "model_created"}),
        )
        .await;
    assert_eq!(
        status.as_u16(),
        sample_status("33-create-event-matcher-policy")
    );
    assert_eq!(policy, {
        let mut recorded = sample("33-create-event-matcher-policy");
        recorded["pk"] = policy["pk"].clone();
        recorded
    });

    let (status, rule) = api
        .post(
            "/events/rules/",
            json!({"name": "notify-model-created-n1", "transports": [transport["pk"]],
                   "severity": "notice", "destination_group": group["pk"]}),
        )
        .await;
    assert_eq!(
        status.as_u16(),
        sample_status("34-create-notification-rule")
    );
    assert_eq!(keys(&rule), keys(&sample("34-create-notification-rule")));
    assert_eq!(rule["destination_group_obj"]["name"], "webhook-notify-n1");

    let (status, binding) = api
        .post(
            "/policies/bindings/",
            json!({"policy": policy["pk"], "target": rule["pk"], "order": 0}),
        )
        .await;
    assert_eq!(status.as_u16(), sample_status("35-create-policy-binding"));
    assert_eq!(keys(&binding), keys(&sample("35-create-policy-binding")));
    assert_eq!(binding["policy_obj"]["bound_to"], 1);
    assert_eq!(binding["timeout"], 30);
    assert_eq!(api.sim.schema_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn names_are_unique_and_webhooks_need_a_url() {
    let api = Api::start().await;
    let body = json!({"name": "t", "mode": "webhook", "webhook_url": "http://h/"});
    assert_eq!(
        api.post("/events/transports/", body.clone()).await.0,
        StatusCode::CREATED
    );
    let (status, errors) = api.post("/events/transports/", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(errors.get("name").is_some(), "{errors}");
    let (status, errors) = api
        .post(
            "/events/transports/",
            json!({"name": "u", "mode": "webhook"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        errors,
        json!({"webhook_url": ["Webhook URL may not be empty."]})
    );
    let (status, _) = api
        .post("/events/transports/", json!({"name": "v", "unknown": 1}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(api.sim.schema_violations().len(), 1);
}

#[tokio::test]
async fn a_token_minted_through_the_api_answers_me_as_its_user() {
    let api = Api::start().await;
    let (status, account) = api
        .post(
            "/core/users/service_account/",
            json!({"name": "robot", "create_group": false, "expiring": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        keys(&account),
        keys(&json!({"username": 0, "token": 0, "user_uid": 0, "user_pk": 0}))
    );
    let (status, _) = api
        .post(
            "/core/tokens/",
            json!({"identifier": "robot-api", "intent": "api", "user": account["user_pk"], "expiring": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, view) = api.get("/core/tokens/robot-api/view_key/").await;
    let key = view["key"].as_str().expect("key").to_owned();
    assert_eq!(key.len(), 60);

    let me = |token: String| {
        let url = api.url("/core/users/me/");
        async move {
            let response = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("me");
            let status = response.status();
            (status, response.json::<Value>().await.expect("json"))
        }
    };
    let (status, body) = me(key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"]["username"], "robot");
    assert_eq!(body["user"]["is_superuser"], false);
    // The service account's own token is an app password: not an API credential.
    let app_password = account["token"].as_str().expect("token").to_owned();
    assert_eq!(me(app_password).await.0, StatusCode::FORBIDDEN);
}
