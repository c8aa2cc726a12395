//! What an authentik webhook says, from either body shape.
//!
//! - Our body mapping (`pma-sso webhook install`) sends JSON: `event_uuid`, `action`,
//!   `model_app`, `model_name`, `model_pk`, `object_name`, `event_user`.
//! - authentik's default body is JSON whose `body` is the event summary,
//!   `"<action>: <Python repr of the context>"`, plus `event_user_username`; it carries no event
//!   id. Operators who wired the transport by hand get this one.

use serde_json::Value;

use super::repr;

/// The authentik object an event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRef {
    /// Django app label, e.g. `authentik_core`.
    pub app: String,
    /// e.g. `application`, `oauth2provider`.
    pub model_name: String,
    /// As sent: 32 hex digits for applications, a number for providers.
    pub pk: String,
    /// The object's name (`str(obj)`), when the event carries it.
    pub name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelEvent {
    /// `model_created`, `model_updated` or `model_deleted`.
    pub action: String,
    /// authentik's event id (our mapping only).
    pub uuid: Option<String>,
    pub model: ModelRef,
    /// Who made the change.
    pub user: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A model event: it may concern our services.
    Model(ModelEvent),
    /// Valid, but nothing to act on (the transport test, a login, …); the reason is logged.
    Ignored(String),
}

/// Why a body was refused (400).
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub String);

const MODEL_ACTIONS: [&str; 3] = ["model_created", "model_updated", "model_deleted"];

pub fn parse(body: &[u8]) -> Result<Parsed, Malformed> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| Malformed(format!("the body is not JSON: {e}")))?;
    let Value::Object(obj) = json else {
        return Err(Malformed("the body is not a JSON object".into()));
    };
    if obj.get("kind").and_then(Value::as_str) == Some("test") {
        return Ok(Parsed::Ignored("a transport test".into()));
    }
    match (obj.get("action"), obj.get("body")) {
        (Some(action), _) => {
            let action = action
                .as_str()
                .ok_or_else(|| Malformed("`action` is not a string".into()))?;
            from_mapping(action, &obj)
        }
        (None, Some(Value::String(summary))) => from_default_body(summary, &obj),
        (None, Some(_)) => Err(Malformed("`body` is not a string".into())),
        // `{"foo": "bar"}` and the like: what a transport test may carry.
        (None, None) => Ok(Parsed::Ignored("not an event".into())),
    }
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() && s != "None" => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn from_mapping(action: &str, obj: &serde_json::Map<String, Value>) -> Result<Parsed, Malformed> {
    if !MODEL_ACTIONS.contains(&action) {
        return Ok(Parsed::Ignored(format!("action `{action}`")));
    }
    let field = |name: &str| {
        text(obj.get(name)).ok_or_else(|| Malformed(format!("a {action} event without `{name}`")))
    };
    Ok(Parsed::Model(ModelEvent {
        action: action.to_owned(),
        uuid: text(obj.get("event_uuid")),
        model: ModelRef {
            app: field("model_app")?,
            model_name: field("model_name")?,
            pk: field("model_pk")?,
            name: text(obj.get("object_name")),
        },
        user: text(obj.get("event_user")),
    }))
}

fn from_default_body(
    summary: &str,
    obj: &serde_json::Map<String, Value>,
) -> Result<Parsed, Malformed> {
    // `event.summary` is `context["message"]` when the event has one, else
    // `f"{action}: {context}"`; the transport test's body is a plain sentence.
    let Some((action, context)) = summary.split_once(": ") else {
        return Ok(Parsed::Ignored(
            "a notification without an event context".into(),
        ));
    };
    if !MODEL_ACTIONS.contains(&action) {
        return Ok(Parsed::Ignored(format!("action `{action}`")));
    }
    let context = repr::parse(context).map_err(|e| Malformed(e.to_string()))?;
    let model = context
        .get("model")
        .ok_or_else(|| Malformed(format!("a {action} event without `model`")))?;
    let field = |name: &str| {
        text(model.get(name))
            .ok_or_else(|| Malformed(format!("a {action} event without model `{name}`")))
    };
    Ok(Parsed::Model(ModelEvent {
        action: action.to_owned(),
        uuid: None,
        model: ModelRef {
            app: field("app")?,
            model_name: field("model_name")?,
            pk: field("pk")?,
            name: text(model.get("name")),
        },
        user: text(obj.get("event_user_username")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_body_and_the_default_body_say_the_same() {
        let mapped = br#"{"event_uuid": "0b7f6c1e-1111-4222-8333-944455556666", "action": "model_updated", "model_app": "authentik_core", "model_name": "application", "model_pk": "e63ddb1436ad497faf55d290db69caf6", "object_name": "Grafana", "event_user": "akadmin"}"#;
        let default = br#"{"body": "model_updated: {'model': {'pk': 'e63ddb1436ad497faf55d290db69caf6', 'app': 'authentik_core', 'name': 'Grafana', 'model_name': 'application'}, 'http_request': {'args': {}}}", "severity": "notice", "event_user_username": "akadmin"}"#;
        let Ok(Parsed::Model(a)) = parse(mapped) else {
            panic!("mapping body")
        };
        let Ok(Parsed::Model(b)) = parse(default) else {
            panic!("default body")
        };
        assert_eq!(a.model, b.model);
        assert_eq!(a.user, b.user);
        assert_eq!(
            a.uuid.as_deref(),
            Some("0b7f6c1e-1111-4222-8333-944455556666")
        );
        assert_eq!(b.uuid, None);
    }

    #[test]
    fn provider_pks_may_be_numbers_and_tests_are_ignored() {
        let Ok(Parsed::Model(e)) = parse(
            br#"{"action": "model_deleted", "model_app": "authentik_providers_oauth2", "model_name": "oauth2provider", "model_pk": 7}"#,
        ) else {
            panic!("provider")
        };
        assert_eq!(e.model.pk, "7");
        for test in [
            &br#"{"foo": "bar"}"#[..],
            br#"{"kind": "test", "body": "Test Notification"}"#,
            br#"{"action": "custom_notification_test", "event_user": "akadmin"}"#,
            br#"{"body": "Test Notification from transport pma-sso", "severity": "notice"}"#,
            br#"{"body": "login: {'auth_method': 'password'}"}"#,
        ] {
            assert!(
                matches!(parse(test), Ok(Parsed::Ignored(_))),
                "{}",
                String::from_utf8_lossy(test)
            );
        }
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in [
            &b"not json"[..],
            b"[1, 2]",
            br#"{"action": 5}"#,
            br#"{"body": 5}"#,
            br#"{"action": "model_updated", "model_app": "authentik_core"}"#,
            br#"{"body": "model_updated: {'model': "}"#,
            br#"{"body": "model_updated: {'other': 1}"}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
