//! authentik's notification pipeline, as `pma-sso webhook install` wires it: webhook mappings,
//! the transport, event-matcher policies, the rule and its policy bindings.

use serde::{Deserialize, Serialize};

use super::{AuthentikError, Client};

/// The header our header mapping makes authentik send with every webhook, carrying the shared
/// secret (`PMA_SSO_WEBHOOK_SECRET` in `.env`). authentik does not sign webhooks; the receiver
/// compares this header in constant time.
pub const WEBHOOK_SECRET_HEADER: &str = "X-PMA-SSO-Token";

/// `.env` key of the webhook's shared secret.
pub const WEBHOOK_SECRET_ENV: &str = "PMA_SSO_WEBHOOK_SECRET";

/// `/propertymappings/notification/` (`NotificationWebhookMapping`).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct NotificationMapping {
    pub pk: String,
    pub name: String,
    pub expression: String,
}

/// `/events/transports/`, reduced to the fields pma-sso sets.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct NotificationTransport {
    pub pk: String,
    pub name: String,
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub webhook_url: String,
    #[serde(default)]
    pub webhook_mapping_body: Option<String>,
    #[serde(default)]
    pub webhook_mapping_headers: Option<String>,
    #[serde(default)]
    pub send_once: bool,
}

/// `/policies/event_matcher/`, reduced.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct EventMatcherPolicy {
    pub pk: String,
    pub name: String,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub client_ip: Option<String>,
}

/// `/events/rules/`, reduced.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct NotificationRule {
    pub pk: String,
    pub name: String,
    #[serde(default)]
    pub transports: Vec<String>,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub destination_group: Option<String>,
    #[serde(default)]
    pub destination_event_user: bool,
}

/// `/policies/bindings/`, reduced.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct PolicyBinding {
    pub pk: String,
    #[serde(default)]
    pub policy: Option<String>,
    pub target: String,
    #[serde(default)]
    pub order: i64,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub negate: bool,
}

const MAPPINGS: &str = "/propertymappings/notification/";
const TRANSPORTS: &str = "/events/transports/";
const EVENT_MATCHERS: &str = "/policies/event_matcher/";
const RULES: &str = "/events/rules/";
const BINDINGS: &str = "/policies/bindings/";

impl Client {
    pub async fn notification_mappings(&self) -> Result<Vec<NotificationMapping>, AuthentikError> {
        self.list_all(MAPPINGS, &[]).await
    }

    pub async fn create_notification_mapping(
        &self,
        body: &serde_json::Value,
    ) -> Result<NotificationMapping, AuthentikError> {
        self.write(reqwest::Method::POST, MAPPINGS, body).await
    }

    pub async fn patch_notification_mapping(
        &self,
        pk: &str,
        body: &serde_json::Value,
    ) -> Result<NotificationMapping, AuthentikError> {
        self.write(reqwest::Method::PATCH, &format!("{MAPPINGS}{pk}/"), body)
            .await
    }

    pub async fn notification_transports(
        &self,
    ) -> Result<Vec<NotificationTransport>, AuthentikError> {
        self.list_all(TRANSPORTS, &[]).await
    }

    pub async fn create_notification_transport(
        &self,
        body: &serde_json::Value,
    ) -> Result<NotificationTransport, AuthentikError> {
        self.write(reqwest::Method::POST, TRANSPORTS, body).await
    }

    pub async fn patch_notification_transport(
        &self,
        pk: &str,
        body: &serde_json::Value,
    ) -> Result<NotificationTransport, AuthentikError> {
        self.write(reqwest::Method::PATCH, &format!("{TRANSPORTS}{pk}/"), body)
            .await
    }

    pub async fn event_matcher_policies(&self) -> Result<Vec<EventMatcherPolicy>, AuthentikError> {
        self.list_all(EVENT_MATCHERS, &[]).await
    }

    pub async fn create_event_matcher_policy(
        &self,
        body: &serde_json::Value,
    ) -> Result<EventMatcherPolicy, AuthentikError> {
        self.write(reqwest::Method::POST, EVENT_MATCHERS, body)
            .await
    }

    pub async fn patch_event_matcher_policy(
        &self,
        pk: &str,
        body: &serde_json::Value,
    ) -> Result<EventMatcherPolicy, AuthentikError> {
        self.write(
            reqwest::Method::PATCH,
            &format!("{EVENT_MATCHERS}{pk}/"),
            body,
        )
        .await
    }

    pub async fn notification_rules(&self) -> Result<Vec<NotificationRule>, AuthentikError> {
        self.list_all(RULES, &[]).await
    }

    pub async fn create_notification_rule(
        &self,
        body: &serde_json::Value,
    ) -> Result<NotificationRule, AuthentikError> {
        self.write(reqwest::Method::POST, RULES, body).await
    }

    pub async fn patch_notification_rule(
        &self,
        pk: &str,
        body: &serde_json::Value,
    ) -> Result<NotificationRule, AuthentikError> {
        self.write(reqwest::Method::PATCH, &format!("{RULES}{pk}/"), body)
            .await
    }

    /// Bindings whose target is `target` (a rule's pk).
    pub async fn policy_bindings_for(
        &self,
        target: &str,
    ) -> Result<Vec<PolicyBinding>, AuthentikError> {
        self.list_all(BINDINGS, &[("target", target.to_owned())])
            .await
    }

    pub async fn create_policy_binding(
        &self,
        body: &serde_json::Value,
    ) -> Result<PolicyBinding, AuthentikError> {
        self.write(reqwest::Method::POST, BINDINGS, body).await
    }

    pub async fn patch_policy_binding(
        &self,
        pk: &str,
        body: &serde_json::Value,
    ) -> Result<PolicyBinding, AuthentikError> {
        self.write(reqwest::Method::PATCH, &format!("{BINDINGS}{pk}/"), body)
            .await
    }
}
