//! The only code that speaks Wiki.js 2.x GraphQL (`POST <internal>/graphql`).
//!
//! Wiki.js reports failures in three shapes, and the client sorts them into kinds:
//! - its auth middleware refuses a revoked or expired API key, or any key while the API is
//!   disabled, with HTTP 500 and `{"data": {}, "errors": [{"message": "API Key is invalid or was
//!   revoked."}]}` — a 500 that retrying cannot cure;
//! - a token it cannot verify makes the caller a guest, and admin-only fields answer HTTP 200
//!   with a GraphQL error `Forbidden` at their path;
//! - mutations catch their own errors and answer `responseResult { succeeded: false, message }`.
//!
//! Config values are encoded differently in each direction: `activeStrategies` returns each as
//! the JSON text of its property definition plus `value`, `updateStrategies` takes the JSON text
//! `{"v": <value>}`. [`ActiveStrategy::config`] holds the decoded values.
//!
//! Tokens and secrets sent in a request are cut out of any message the client returns.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// Wiki.js failures, sorted by what a caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum WikijsError {
    /// The bearer token is revoked, expired, or not one Wiki.js issued.
    #[error("{operation}: Wiki.js refused the API key ({message})")]
    KeyRejected {
        operation: &'static str,
        message: String,
    },
    /// The key is valid but API access is switched off in Wiki.js.
    #[error(
        "{operation}: the Wiki.js API is disabled (Administration → API Access), so every API key is refused"
    )]
    ApiDisabled { operation: &'static str },
    /// The admin login was refused.
    #[error("{operation}: refused: {message}")]
    LoginFailed {
        operation: &'static str,
        message: String,
    },
    /// Wiki.js understood the request and said no (a mutation's `responseResult`, a GraphQL
    /// validation error).
    #[error("{operation}: Wiki.js refused: {message}")]
    Refused {
        operation: &'static str,
        message: String,
    },
    #[error("{operation}: rate limited{}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        operation: &'static str,
        retry_after: Option<Duration>,
    },
    #[error("{operation}: Wiki.js server error (HTTP {status}){}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Server {
        operation: &'static str,
        status: u16,
        detail: Option<String>,
    },
    #[error("{operation}: unexpected HTTP {status}")]
    Unexpected {
        operation: &'static str,
        status: u16,
    },
    #[error("{operation}: {problem}")]
    Transport {
        operation: &'static str,
        problem: String,
    },
    #[error("{operation}: unexpected response: {problem}")]
    Decode {
        operation: &'static str,
        problem: String,
    },
}

impl WikijsError {
    /// Worth retrying later: the same request may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            WikijsError::RateLimited { .. }
                | WikijsError::Server { .. }
                | WikijsError::Transport { .. }
        )
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            WikijsError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The token itself is the problem (revoked, expired, foreign, or the API is off).
    pub fn is_key_problem(&self) -> bool {
        matches!(
            self,
            WikijsError::KeyRejected { .. } | WikijsError::ApiDisabled { .. }
        )
    }
}

/// One entry of `authentication.activeStrategies`, with config values decoded.
#[derive(Clone, PartialEq)]
pub struct ActiveStrategy {
    /// The instance key; it names the callback `/login/<key>/callback`.
    pub key: String,
    /// The module, e.g. `local`, `oidc`, `github`.
    pub strategy_key: String,
    pub display_name: String,
    pub order: i64,
    pub is_enabled: bool,
    pub self_registration: bool,
    pub domain_whitelist: Vec<String>,
    pub auto_enroll_groups: Vec<i64>,
    pub config: BTreeMap<String, Value>,
}

impl std::fmt::Debug for ActiveStrategy {
    // Config values include client secrets: show only their keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveStrategy")
            .field("key", &self.key)
            .field("strategy_key", &self.strategy_key)
            .field("display_name", &self.display_name)
            .field("order", &self.order)
            .field("is_enabled", &self.is_enabled)
            .field("config_keys", &self.config.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ActiveStrategy {
    /// The `AuthenticationStrategyInput` that writes this entry back unchanged.
    pub fn to_input(&self) -> Value {
        let config: Vec<Value> = self
            .config
            .iter()
            .map(|(key, value)| json!({"key": key, "value": json!({"v": value}).to_string()}))
            .collect();
        json!({
            "key": self.key,
            "strategyKey": self.strategy_key,
            "config": config,
            "displayName": self.display_name,
            "order": self.order,
            "isEnabled": self.is_enabled,
            "selfRegistration": self.self_registration,
            "domainWhitelist": self.domain_whitelist,
            "autoEnrollGroups": self.auto_enroll_groups,
        })
    }

    /// Every string config value; they may be secrets, so messages are redacted of them.
    fn secret_candidates(&self) -> impl Iterator<Item = &str> {
        self.config.values().filter_map(Value::as_str)
    }
}

const RESPONSE_RESULT: &str = "responseResult { succeeded errorCode slug message }";

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("wikijs::Client")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `graphql_url` is the endpoint itself, e.g. `http://wikijs:3000/graphql`.
    pub fn new(http: reqwest::Client, graphql_url: &str) -> Client {
        Client {
            http,
            url: graphql_url.to_owned(),
        }
    }

    /// Log in with the local strategy; returns the session JWT.
    pub async fn login(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<SecretString, WikijsError> {
        const OP: &str = "log in as the Wiki.js admin";
        let query = format!(
            "mutation ($username: String!, $password: String!) {{ authentication {{ login(username: $username, password: $password, strategy: \"local\") {{ jwt mustChangePwd mustProvideTFA mustSetupTFA {RESPONSE_RESULT} }} }} }}"
        );
        let data = self
            .call(
                OP,
                None,
                &query,
                json!({"username": email, "password": password.expose_secret()}),
                &[password.expose_secret()],
            )
            .await?;
        let login = &data["authentication"]["login"];
        if let Err(message) = succeeded(login) {
            return Err(WikijsError::LoginFailed {
                operation: OP,
                message: redact(&message, &[password.expose_secret()]),
            });
        }
        if login["mustChangePwd"] == true
            || login["mustProvideTFA"] == true
            || login["mustSetupTFA"] == true
        {
            return Err(WikijsError::LoginFailed {
                operation: OP,
                message: "the account must change its password or complete two-factor login first; pma-sso cannot do that".into(),
            });
        }
        login["jwt"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(|t| SecretString::from(t.to_owned()))
            .ok_or(WikijsError::Decode {
                operation: OP,
                problem: "login succeeded but returned no token".into(),
            })
    }

    /// Switch API access on (API keys are refused while it is off).
    pub async fn enable_api(&self, token: &SecretString) -> Result<(), WikijsError> {
        const OP: &str = "enable the Wiki.js API";
        let query = format!(
            "mutation {{ authentication {{ setApiState(enabled: true) {{ {RESPONSE_RESULT} }} }} }}"
        );
        let data = self.call(OP, Some(token), &query, json!({}), &[]).await?;
        succeeded(&data["authentication"]["setApiState"]).map_err(|message| WikijsError::Refused {
            operation: OP,
            message,
        })
    }

    /// Create a full-access API key; returns the key.
    pub async fn create_api_key(
        &self,
        token: &SecretString,
        name: &str,
        expiration: &str,
    ) -> Result<SecretString, WikijsError> {
        const OP: &str = "create a Wiki.js API key";
        let query = format!(
            "mutation ($name: String!, $expiration: String!) {{ authentication {{ createApiKey(name: $name, expiration: $expiration, fullAccess: true) {{ key {RESPONSE_RESULT} }} }} }}"
        );
        let data = self
            .call(
                OP,
                Some(token),
                &query,
                json!({"name": name, "expiration": expiration}),
                &[],
            )
            .await?;
        let created = &data["authentication"]["createApiKey"];
        succeeded(created).map_err(|message| WikijsError::Refused {
            operation: OP,
            message,
        })?;
        created["key"]
            .as_str()
            .filter(|k| !k.is_empty())
            .map(|k| SecretString::from(k.to_owned()))
            .ok_or(WikijsError::Decode {
                operation: OP,
                problem: "createApiKey succeeded but returned no key".into(),
            })
    }

    /// The site host (`config.host`), from which Wiki.js builds every callback URL. Needs an
    /// admin token, so it also proves the key is valid.
    pub async fn site_host(&self, token: &SecretString) -> Result<Option<String>, WikijsError> {
        const OP: &str = "read the Wiki.js site config";
        let data = self
            .call(
                OP,
                Some(token),
                "query { site { config { host } } }",
                json!({}),
                &[],
            )
            .await?;
        match &data["site"]["config"] {
            Value::Object(config) => Ok(config
                .get("host")
                .and_then(Value::as_str)
                .map(str::to_owned)),
            _ => Err(WikijsError::Decode {
                operation: OP,
                problem: "no site.config in the answer".into(),
            }),
        }
    }

    pub async fn set_site_host(&self, token: &SecretString, host: &str) -> Result<(), WikijsError> {
        const OP: &str = "set the Wiki.js site host";
        let query = format!(
            "mutation ($host: String) {{ site {{ updateConfig(host: $host) {{ {RESPONSE_RESULT} }} }} }}"
        );
        let data = self
            .call(OP, Some(token), &query, json!({"host": host}), &[])
            .await?;
        succeeded(&data["site"]["updateConfig"]).map_err(|message| WikijsError::Refused {
            operation: OP,
            message,
        })
    }

    pub async fn active_strategies(
        &self,
        token: &SecretString,
    ) -> Result<Vec<ActiveStrategy>, WikijsError> {
        const OP: &str = "read the Wiki.js authentication strategies";
        let query = "query { authentication { activeStrategies { key strategy { key } displayName order isEnabled selfRegistration domainWhitelist autoEnrollGroups config { key value } } } }";
        let data = self.call(OP, Some(token), query, json!({}), &[]).await?;
        let Some(list) = data["authentication"]["activeStrategies"].as_array() else {
            return Err(WikijsError::Decode {
                operation: OP,
                problem: "activeStrategies is not a list".into(),
            });
        };
        list.iter()
            .map(|item| {
                decode_strategy(item).map_err(|problem| WikijsError::Decode {
                    operation: OP,
                    problem,
                })
            })
            .collect()
    }

    /// Replace the whole list: Wiki.js deletes every strategy missing from `strategies`.
    pub async fn update_strategies(
        &self,
        token: &SecretString,
        strategies: &[Value],
        secrets: &[&str],
    ) -> Result<(), WikijsError> {
        const OP: &str = "update the Wiki.js authentication strategies";
        let query = format!(
            "mutation ($strategies: [AuthenticationStrategyInput]!) {{ authentication {{ updateStrategies(strategies: $strategies) {{ {RESPONSE_RESULT} }} }} }}"
        );
        let data = self
            .call(
                OP,
                Some(token),
                &query,
                json!({ "strategies": strategies }),
                secrets,
            )
            .await?;
        succeeded(&data["authentication"]["updateStrategies"]).map_err(|message| {
            WikijsError::Refused {
                operation: OP,
                message: redact(&message, secrets),
            }
        })
    }

    /// Send one GraphQL request; returns its `data`.
    async fn call(
        &self,
        operation: &'static str,
        token: Option<&SecretString>,
        query: &str,
        variables: Value,
        secrets: &[&str],
    ) -> Result<Value, WikijsError> {
        let mut request = self
            .http
            .post(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token.expose_secret());
        }
        let response = request.send().await.map_err(|e| transport(operation, &e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport(operation, &e))?;
        let mut hidden: Vec<&str> = secrets.to_vec();
        if let Some(token) = token {
            hidden.push(token.expose_secret());
        }
        classify(operation, status, &bytes, retry_after, &hidden)
    }
}

/// Sort one answer into data or an error kind.
fn classify(
    operation: &'static str,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Result<Value, WikijsError> {
    if status == 429 {
        return Err(WikijsError::RateLimited {
            operation,
            retry_after,
        });
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let first_error = json
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array)
        .and_then(|errors| errors.first())
        .map(|e| {
            redact(
                e.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)"),
                secrets,
            )
        });
    if let Some(message) = first_error {
        if message.starts_with("API Key is invalid or was revoked") {
            return Err(WikijsError::KeyRejected { operation, message });
        }
        if message.starts_with("API is disabled") {
            return Err(WikijsError::ApiDisabled { operation });
        }
        // A token Wiki.js cannot verify makes the request a guest's; admin-only fields then
        // fail with these.
        if message == "Forbidden" || message == "Unauthorized" {
            return Err(WikijsError::KeyRejected {
                operation,
                message: format!(
                    "{message}: the key is not one this Wiki.js issued, or it lacks full access"
                ),
            });
        }
        if status >= 500 {
            return Err(WikijsError::Server {
                operation,
                status,
                detail: Some(message),
            });
        }
        return Err(WikijsError::Refused { operation, message });
    }
    match status {
        200..=299 => match json {
            Some(mut value) => match value.get_mut("data").map(Value::take) {
                Some(data @ Value::Object(_)) => Ok(data),
                _ => Err(WikijsError::Decode {
                    operation,
                    problem: "no `data` object in the answer".into(),
                }),
            },
            None => Err(WikijsError::Decode {
                operation,
                problem: "the answer is not JSON (is graphql_url pointing at Wiki.js?)".into(),
            }),
        },
        500..=599 => Err(WikijsError::Server {
            operation,
            status,
            detail: None,
        }),
        _ => Err(WikijsError::Unexpected { operation, status }),
    }
}

/// `Ok` when a `{ responseResult { succeeded message } }` object says it succeeded.
fn succeeded(object: &Value) -> Result<(), String> {
    let result = &object["responseResult"];
    if result["succeeded"] == true {
        Ok(())
    } else {
        Err(result["message"]
            .as_str()
            .unwrap_or("no responseResult in the answer")
            .to_owned())
    }
}

fn decode_strategy(item: &Value) -> Result<ActiveStrategy, String> {
    let text = |field: &str| {
        item[field]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("strategy without `{field}`"))
    };
    let key = text("key")?;
    let strategy_key = item["strategy"]["key"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("strategy {key} without `strategy.key`"))?;
    let mut config = BTreeMap::new();
    for entry in item["config"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let (Some(name), Some(raw)) = (entry["key"].as_str(), entry["value"].as_str()) else {
            return Err(format!(
                "strategy {key}: a config entry without key or value"
            ));
        };
        // `{...propDefinition, value}`; an unset value is dropped by JSON.stringify.
        let parsed: Value = serde_json::from_str(raw)
            .map_err(|_| format!("strategy {key}: config `{name}` is not JSON"))?;
        config.insert(
            name.to_owned(),
            parsed.get("value").cloned().unwrap_or(Value::Null),
        );
    }
    Ok(ActiveStrategy {
        display_name: text("displayName")?,
        order: item["order"].as_i64().unwrap_or(0),
        is_enabled: item["isEnabled"].as_bool().unwrap_or(false),
        self_registration: item["selfRegistration"].as_bool().unwrap_or(false),
        domain_whitelist: item["domainWhitelist"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        auto_enroll_groups: item["autoEnrollGroups"]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default(),
        key,
        strategy_key,
        config,
    })
}

/// String config values of `strategies`, to keep out of error texts.
pub fn strategy_secrets(strategies: &[ActiveStrategy]) -> Vec<&str> {
    strategies
        .iter()
        .flat_map(ActiveStrategy::secret_candidates)
        .filter(|s| s.len() >= 8)
        .collect()
}

fn redact(message: &str, secrets: &[&str]) -> String {
    const MAX: usize = 300;
    let mut out = message.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "<redacted>");
    }
    if out.chars().count() > MAX {
        out = format!("{}…", out.chars().take(MAX).collect::<String>());
    }
    out
}

fn transport(operation: &'static str, error: &reqwest::Error) -> WikijsError {
    // reqwest's Display names the URL; keep the kind only.
    let problem = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect to Wiki.js"
    } else if error.is_body() || error.is_decode() {
        "connection broke while reading the response"
    } else {
        "request failed (connection reset or closed)"
    };
    WikijsError::Transport {
        operation,
        problem: problem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_key_is_a_key_problem_not_a_server_error() {
        let body =
            br#"{"data":{},"errors":[{"message":"API Key is invalid or was revoked.","path":[]}]}"#;
        let err = classify("op", 500, body, None, &[]).expect_err("refused");
        assert!(matches!(err, WikijsError::KeyRejected { .. }), "{err:?}");
        assert!(!err.is_transient());
        let body = br#"{"data":{},"errors":[{"message":"API is disabled. You must enable it from the Administration Area first.","path":[]}]}"#;
        let err = classify("op", 500, body, None, &[]).expect_err("refused");
        assert!(matches!(err, WikijsError::ApiDisabled { .. }));
        assert!(!err.is_transient());
    }

    #[test]
    fn a_guest_forbidden_is_a_rejected_key_and_other_failures_sort_by_status() {
        let body = br#"{"errors":[{"message":"Forbidden","path":["site","config"]}],"data":{"site":{"config":null}}}"#;
        assert!(matches!(
            classify("op", 200, body, None, &[]),
            Err(WikijsError::KeyRejected { .. })
        ));
        assert!(classify("op", 502, b"<html>", None, &[]).is_err_and(|e| e.is_transient()));
        assert!(classify("op", 429, b"", None, &[]).is_err_and(|e| e.is_transient()));
        let err = classify(
            "op",
            400,
            br#"{"errors":[{"message":"Variable \"$x\" got invalid value \"hunter2-secret\""}]}"#,
            None,
            &["hunter2-secret"],
        )
        .expect_err("invalid");
        assert!(!err.is_transient());
        assert!(!err.to_string().contains("hunter2-secret"), "{err}");
    }

    #[test]
    fn config_values_are_decoded_from_definitions_and_encoded_as_v() {
        let item = json!({
            "key": "authentik", "strategy": {"key": "oidc"}, "displayName": "authentik", "order": 1,
            "isEnabled": true, "selfRegistration": true, "domainWhitelist": [], "autoEnrollGroups": [2],
            "config": [
                {"key": "clientId", "value": "{\"type\":\"String\",\"title\":\"Client ID\",\"order\":1,\"value\":\"abc\"}"},
                {"key": "mapGroups", "value": "{\"type\":\"Boolean\",\"default\":false,\"value\":true}"}
            ]
        });
        let s = decode_strategy(&item).expect("decodes");
        assert_eq!(s.config["clientId"], "abc");
        assert_eq!(s.config["mapGroups"], true);
        let input = s.to_input();
        assert_eq!(input["strategyKey"], "oidc");
        assert_eq!(input["config"][0]["value"], "{\"v\":\"abc\"}");
        assert_eq!(input["config"][1]["value"], "{\"v\":true}");
        assert!(!format!("{s:?}").contains("abc"));
    }
}
