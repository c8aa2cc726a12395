//! A small API client over reqwest, the recorded samples, and fixtures.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{AuthentikSim, SimHandle};

pub const TOKEN: &str = "test-token-0123456789";

pub struct Api {
    pub sim: SimHandle,
    http: reqwest::Client,
}

/// A status and a JSON body (`Value::Null` when there was none).
pub type Answer = (StatusCode, Value);

impl Api {
    pub async fn start() -> Api {
        let sim = AuthentikSim::new(TOKEN).start().await;
        Api::with(sim)
    }

    pub fn with(sim: SimHandle) -> Api {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("reqwest client");
        Api { sim, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v3{path}", self.sim.base_url())
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.try_send(method, path, body, None)
            .await
            .expect("request reaches the stand-in")
    }

    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        timeout: Option<Duration>,
    ) -> Result<Answer, reqwest::Error> {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, body))
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }

    /// The pk of a seeded flow.
    pub async fn flow_pk(&self, slug: &str) -> String {
        let (status, flow) = self.get(&format!("/flows/instances/{slug}/")).await;
        assert_eq!(status, StatusCode::OK, "{flow}");
        flow["pk"].as_str().expect("flow pk").to_owned()
    }

    /// A valid `OAuth2ProviderRequest` body.
    pub async fn provider_body(&self, name: &str) -> Value {
        json!({
            "name": name,
            "authorization_flow": self.flow_pk("default-provider-authorization-implicit-consent").await,
            "invalidation_flow": self.flow_pk("default-provider-invalidation-flow").await,
            "redirect_uris": [{"matching_mode": "strict", "url": "http://127.0.0.1:8080/callback"}],
        })
    }

    /// Create an OAuth2 provider; returns its pk.
    pub async fn create_provider(&self, name: &str) -> i64 {
        let body = self.provider_body(name).await;
        let (status, provider) = self.post("/providers/oauth2/", body).await;
        assert_eq!(status, StatusCode::CREATED, "{provider}");
        provider["pk"].as_i64().expect("integer pk")
    }
}

pub fn sample(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/samples")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display()))
}

pub fn sample_status(name: &str) -> u16 {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/samples")
        .join(format!("{name}.status"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
        .trim()
        .parse()
        .expect("status is a number")
}

pub fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}
