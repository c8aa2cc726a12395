//! Fault injection, reproducible with a fixed seed.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::Faults;

use crate::support::{Api, TOKEN};

fn app(slug: &str) -> serde_json::Value {
    json!({"name": slug, "slug": slug})
}

#[tokio::test]
async fn error_faults_answer_5xx_before_touching_state() {
    let api = Api::start().await;
    api.sim.set_faults(Faults {
        error_rate: 1.0,
        seed: 1,
        ..Faults::default()
    });
    let mut seen = Vec::new();
    for i in 0..20 {
        let response = reqwest::Client::new()
            .post(api.url("/core/applications/"))
            .bearer_auth(TOKEN)
            .json(&app(&format!("app-{i}")))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        assert!([500, 502, 503].contains(&status), "{status}");
        let body = response.text().await.expect("body");
        assert!(
            serde_json::from_str::<serde_json::Value>(&body).is_err(),
            "5xx bodies are not JSON"
        );
        seen.push(status);
    }
    assert!(
        seen.contains(&500) && seen.contains(&502) && seen.contains(&503),
        "{seen:?}"
    );
    assert!(api.sim.applications().is_empty());
    assert_eq!(api.sim.write_count(), 0);
    let recorded: Vec<u16> = api.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(recorded, seen);
}

#[tokio::test]
async fn rate_limit_faults_answer_429_with_retry_after() {
    let api = Api::start().await;
    api.sim.set_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: 7,
        seed: 2,
        ..Faults::default()
    });
    let response = reqwest::Client::new()
        .post(api.url("/core/applications/"))
        .bearer_auth(TOKEN)
        .json(&app("limited"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"detail": "Request was throttled. Expected available in 7 seconds."})
    );
    assert!(api.sim.applications().is_empty());
    assert_eq!(api.sim.requests()[0].status, 429);
}

#[tokio::test]
async fn timeout_faults_outlast_the_client_but_still_apply_the_change() {
    let api = Api::start().await;
    api.sim.set_faults(Faults {
        timeout_rate: 1.0,
        timeout_delay: Duration::from_millis(600),
        seed: 3,
        ..Faults::default()
    });
    let err = api
        .try_send(
            Method::POST,
            "/core/applications/",
            Some(app("slow")),
            Some(Duration::from_millis(100)),
        )
        .await
        .expect_err("the client times out");
    assert!(err.is_timeout(), "{err}");

    // Like a slow real server, the write lands after the client gave up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while api.sim.application("slow").is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(api.sim.application("slow").is_some());
    assert_eq!(api.sim.requests()[0].status, 201);
    assert_eq!(api.sim.write_count(), 1);
}

#[tokio::test]
async fn reset_faults_close_the_connection_without_an_answer() {
    let api = Api::start().await;
    api.sim.set_faults(Faults {
        reset_rate: 1.0,
        seed: 4,
        ..Faults::default()
    });
    let err = api
        .try_send(Method::POST, "/core/applications/", Some(app("lost")), None)
        .await
        .expect_err("no HTTP response");
    assert!(!err.is_timeout(), "{err}");
    assert!(err.status().is_none(), "{err}");
    assert!(api.sim.applications().is_empty());
    let requests = api.sim.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].status, 0);
    assert_eq!(requests[0].body, Some(app("lost")));

    // Faults off: the next request (on a new connection) goes through.
    api.sim.set_faults(Faults::default());
    let (status, _) = api.post("/core/applications/", app("found")).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn latency_is_added_to_every_matching_request() {
    let api = Api::start().await;
    api.sim.set_faults(Faults {
        latency: Duration::from_millis(250),
        ..Faults::default()
    });
    let started = Instant::now();
    let (status, _) = api.get("/core/users/me/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn path_filter_limits_faults_to_matching_paths() {
    let api = Api::start().await;
    api.sim.set_faults(Faults {
        error_rate: 1.0,
        path_prefix: Some("/providers/".to_owned()),
        seed: 5,
        ..Faults::default()
    });
    assert_eq!(api.get("/core/applications/").await.0, StatusCode::OK);
    assert!(api.get("/providers/oauth2/").await.0.is_server_error());
    assert!(api.get("/providers/all/").await.0.is_server_error());
}

async fn statuses_with_seed(seed: u64) -> Vec<u16> {
    let api = Api::start().await;
    api.sim.set_faults(Faults {
        error_rate: 0.3,
        rate_limit_rate: 0.3,
        seed,
        ..Faults::default()
    });
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(api.get("/core/applications/").await.0.as_u16());
    }
    statuses
}

#[tokio::test]
async fn the_same_seed_gives_the_same_faults() {
    let first = statuses_with_seed(42).await;
    assert_eq!(first, statuses_with_seed(42).await);
    assert!(first.contains(&200) && first.contains(&429), "{first:?}");
    assert!(first.iter().any(|s| *s >= 500), "{first:?}");
}
