//! The notification pipeline: webhook mappings (`/propertymappings/notification/`), transports
//! (`/events/transports/`), event-matcher policies (`/policies/event_matcher/`), rules
//! (`/events/rules/`) and policy bindings (`/policies/bindings/`).

use axum::http::Method;
use serde_json::{Map, Value, json};

use super::api::{ApiError, ApiResponse, ApiResult, FieldErrors, canonical_uuid, does_not_exist};
use super::list::{Listing, Query};
use super::seed;
use super::store::{Store, str_field};

#[derive(Debug, Default)]
pub(crate) struct Notifications {
    /// Writable fields plus `pk`, per kind, in creation order.
    pub mappings: Vec<Map<String, Value>>,
    pub transports: Vec<Map<String, Value>>,
    pub policies: Vec<Map<String, Value>>,
    pub rules: Vec<Map<String, Value>>,
    pub bindings: Vec<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Mapping,
    Transport,
    Policy,
    Rule,
    Binding,
}

impl Kind {
    fn model(self) -> &'static str {
        match self {
            Kind::Mapping => "NotificationWebhookMapping",
            Kind::Transport => "NotificationTransport",
            Kind::Policy => "EventMatcherPolicy",
            Kind::Rule => "NotificationRule",
            Kind::Binding => "PolicyBinding",
        }
    }

    fn schemas(self) -> (&'static str, &'static str) {
        match self {
            Kind::Mapping => (
                "NotificationWebhookMappingRequest",
                "PatchedNotificationWebhookMappingRequest",
            ),
            Kind::Transport => (
                "NotificationTransportRequest",
                "PatchedNotificationTransportRequest",
            ),
            Kind::Policy => (
                "EventMatcherPolicyRequest",
                "PatchedEventMatcherPolicyRequest",
            ),
            Kind::Rule => ("NotificationRuleRequest", "PatchedNotificationRuleRequest"),
            Kind::Binding => ("PolicyBindingRequest", "PatchedPolicyBindingRequest"),
        }
    }

    /// Model defaults of a new object.
    fn defaults(self) -> Value {
        match self {
            Kind::Mapping => json!({"managed": null, "name": "", "expression": ""}),
            Kind::Transport => json!({
                "name": "", "mode": "local", "webhook_url": "", "webhook_mapping_body": null,
                "webhook_mapping_headers": null,
                "email_subject_prefix": "authentik Notification: ",
                "email_template": "email/event_notification.html", "send_once": false,
            }),
            Kind::Policy => json!({
                "name": "", "execution_logging": false, "action": null, "client_ip": null,
                "app": null, "model": null,
            }),
            Kind::Rule => json!({
                "name": "", "transports": [], "severity": "notice", "destination_group": null,
                "destination_event_user": false,
            }),
            Kind::Binding => json!({
                "policy": null, "group": null, "user": null, "target": null, "negate": false,
                "enabled": true, "order": 0, "timeout": 30, "failure_result": false,
            }),
        }
    }

    fn unique_name_message(self) -> &'static str {
        match self {
            Kind::Mapping => "Property Mapping with this name already exists.",
            Kind::Transport => "Notification Transport with this name already exists.",
            Kind::Policy => "Policy with this name already exists.",
            Kind::Rule => "Notification Rule with this name already exists.",
            Kind::Binding => "",
        }
    }
}

impl Notifications {
    pub(crate) fn of(&self, kind: Kind) -> &Vec<Map<String, Value>> {
        match kind {
            Kind::Mapping => &self.mappings,
            Kind::Transport => &self.transports,
            Kind::Policy => &self.policies,
            Kind::Rule => &self.rules,
            Kind::Binding => &self.bindings,
        }
    }

    fn of_mut(&mut self, kind: Kind) -> &mut Vec<Map<String, Value>> {
        match kind {
            Kind::Mapping => &mut self.mappings,
            Kind::Transport => &mut self.transports,
            Kind::Policy => &mut self.policies,
            Kind::Rule => &mut self.rules,
            Kind::Binding => &mut self.bindings,
        }
    }

    fn index(&self, kind: Kind, pk: &str) -> Option<usize> {
        let pk = canonical_uuid(pk)?;
        self.of(kind).iter().position(|o| o["pk"] == pk)
    }

    fn exists(&self, kind: Kind, pk: &Value) -> bool {
        pk.as_str()
            .and_then(canonical_uuid)
            .is_some_and(|pk| self.of(kind).iter().any(|o| o["pk"] == pk))
    }
}

fn render(store: &Store, kind: Kind, object: &Map<String, Value>) -> Value {
    let n = &store.notifications;
    let mut out = object.clone();
    match kind {
        Kind::Mapping => {
            out.insert(
                "component".into(),
                json!("ak-property-mapping-notification-form"),
            );
            out.insert("verbose_name".into(), json!("Webhook Mapping"));
            out.insert("verbose_name_plural".into(), json!("Webhook Mappings"));
            out.insert(
                "meta_model_name".into(),
                json!("authentik_events.notificationwebhookmapping"),
            );
        }
        Kind::Transport => {
            let verbose = match str_field(object, "mode") {
                "webhook" => "Generic Webhook",
                "webhook_slack" => "Slack Webhook (Slack/Discord)",
                "email" => "Email",
                _ => "authentik inbuilt notifications",
            };
            out.insert("mode_verbose".into(), json!(verbose));
        }
        Kind::Policy => render_policy(n, object, &mut out),
        Kind::Rule => {
            let group = object["destination_group"]
                .as_str()
                .and_then(|pk| store.identity.group_index(pk))
                .map(|i| store.identity.render_group(&store.identity.groups[i]));
            out.insert("destination_group_obj".into(), group.unwrap_or(Value::Null));
        }
        Kind::Binding => {
            let policy = object["policy"]
                .as_str()
                .and_then(|pk| n.index(Kind::Policy, pk))
                .map(|i| {
                    let p = &n.policies[i];
                    let mut out = p.clone();
                    render_policy(n, p, &mut out);
                    Value::Object(out)
                });
            out.insert("policy_obj".into(), policy.unwrap_or(Value::Null));
            out.insert("group_obj".into(), Value::Null);
            out.insert("user_obj".into(), Value::Null);
        }
    }
    Value::Object(out)
}

fn render_policy(n: &Notifications, policy: &Map<String, Value>, out: &mut Map<String, Value>) {
    out.insert("component".into(), json!("ak-policy-event-matcher-form"));
    out.insert("verbose_name".into(), json!("Event Matcher Policy"));
    out.insert(
        "verbose_name_plural".into(),
        json!("Event Matcher Policies"),
    );
    out.insert(
        "meta_model_name".into(),
        json!("authentik_policies_event_matcher.eventmatcherpolicy"),
    );
    let bound = n
        .bindings
        .iter()
        .filter(|b| b["policy"] == policy["pk"])
        .count();
    out.insert("bound_to".into(), json!(bound));
}

/// The endpoints of this file (paths relative to `/api/v3/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'p> {
    Collection(Kind),
    Detail(Kind, &'p str),
}

impl<'p> Route<'p> {
    pub(crate) fn parse(segments: &[&'p str]) -> Option<Route<'p>> {
        let (kind, rest) = match segments {
            ["propertymappings", "notification", rest @ ..] => (Kind::Mapping, rest),
            ["events", "transports", rest @ ..] => (Kind::Transport, rest),
            ["policies", "event_matcher", rest @ ..] => (Kind::Policy, rest),
            ["events", "rules", rest @ ..] => (Kind::Rule, rest),
            ["policies", "bindings", rest @ ..] => (Kind::Binding, rest),
            _ => return None,
        };
        match rest {
            [] => Some(Route::Collection(kind)),
            [pk] => Some(Route::Detail(kind, pk)),
            _ => None,
        }
    }

    pub(crate) fn methods(self) -> &'static [Method] {
        match self {
            Route::Collection(_) => &[Method::GET, Method::POST],
            Route::Detail(..) => &[Method::GET, Method::PUT, Method::PATCH, Method::DELETE],
        }
    }

    pub(crate) fn request_schema(self, method: &Method) -> Option<&'static str> {
        let kind = match self {
            Route::Collection(kind) | Route::Detail(kind, _) => kind,
        };
        let (create, patch) = kind.schemas();
        match *method {
            Method::POST | Method::PUT => Some(create),
            Method::PATCH => Some(patch),
            _ => None,
        }
    }

    pub(crate) fn lookup(self, store: &Store) -> Result<(), ApiError> {
        match self {
            Route::Detail(kind, pk) if store.notifications.index(kind, pk).is_none() => {
                Err(ApiError::NoMatch(kind.model()))
            }
            _ => Ok(()),
        }
    }
}

pub(crate) fn handle(
    store: &mut Store,
    route: Route<'_>,
    method: &Method,
    body: Map<String, Value>,
    query: &Query,
) -> ApiResult {
    route.lookup(store)?;
    match (route, method.clone()) {
        (Route::Collection(kind), Method::GET) => list(store, kind, query),
        (Route::Collection(kind), _) => write(store, kind, None, body),
        (Route::Detail(kind, pk), m) => {
            let i = store
                .notifications
                .index(kind, pk)
                .ok_or(ApiError::NoMatch(kind.model()))?;
            match m {
                Method::GET => {
                    let object = &store.notifications.of(kind)[i];
                    Ok(ApiResponse::ok(render(store, kind, object)))
                }
                Method::DELETE => {
                    let removed = store.notifications.of_mut(kind).remove(i);
                    if kind == Kind::Policy || kind == Kind::Rule {
                        let field = if kind == Kind::Policy {
                            "policy"
                        } else {
                            "target"
                        };
                        store
                            .notifications
                            .bindings
                            .retain(|b| b[field] != removed["pk"]);
                    }
                    Ok(ApiResponse::no_content())
                }
                _ => write(store, kind, Some(i), body),
            }
        }
    }
}

fn list(store: &Store, kind: Kind, query: &Query) -> ApiResult {
    let items: Vec<Value> = store
        .notifications
        .of(kind)
        .iter()
        .map(|o| render(store, kind, o))
        .collect();
    let listing = Listing::new(items, query)
        .exact("name", "name")
        .exact("mode", "mode")
        .boolean("send_once", "send_once")
        .exact("action", "action")
        .exact("model", "model")
        .exact("severity", "severity")
        .exact("policy", "policy")
        .exact("target", "target")
        .boolean("enabled", "enabled")
        .search(|o| o["name"].as_str().map(str::to_owned).into_iter().collect());
    let order: &[&str] = if kind == Kind::Binding {
        &["target", "order"]
    } else {
        &["name"]
    };
    listing.order(order).page()
}

fn validate(
    store: &Store,
    kind: Kind,
    current: Option<usize>,
    merged: &Map<String, Value>,
    body: &Map<String, Value>,
) -> Result<(), ApiError> {
    let n = &store.notifications;
    let mut errors = FieldErrors::default();
    let others = || {
        n.of(kind)
            .iter()
            .enumerate()
            .filter(move |(i, _)| Some(*i) != current)
            .map(|(_, o)| o)
    };
    if let Some(name) = body.get("name").and_then(Value::as_str) {
        let taken = others().any(|o| str_field(o, "name") == name)
            // Property mapping names are unique across every kind of mapping.
            || (kind == Kind::Mapping
                && store
                    .scope_mappings
                    .iter()
                    .chain(store.saml_mappings.iter())
                    .any(|m| str_field(m, "name") == name));
        if taken {
            errors.add("name", kind.unique_name_message());
        }
    }
    match kind {
        Kind::Transport => {
            let mode = str_field(merged, "mode");
            if (mode == "webhook" || mode == "webhook_slack")
                && str_field(merged, "webhook_url").is_empty()
            {
                errors.add("webhook_url", "Webhook URL may not be empty.");
            }
            for field in ["webhook_mapping_body", "webhook_mapping_headers"] {
                if let Some(pk) = body.get(field).filter(|v| !v.is_null())
                    && !n.exists(Kind::Mapping, pk)
                {
                    errors.add(field, does_not_exist(pk));
                }
            }
        }
        Kind::Rule => {
            for pk in body
                .get("transports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !n.exists(Kind::Transport, pk) {
                    errors.add("transports", does_not_exist(pk));
                }
            }
            if let Some(pk) = body.get("destination_group").filter(|v| !v.is_null())
                && pk
                    .as_str()
                    .and_then(|pk| store.identity.group_index(pk))
                    .is_none()
            {
                errors.add("destination_group", does_not_exist(pk));
            }
        }
        Kind::Binding => {
            if let Some(pk) = body.get("policy").filter(|v| !v.is_null())
                && !n.exists(Kind::Policy, pk)
            {
                errors.add("policy", does_not_exist(pk));
            }
            if let Some(pk) = body.get("target")
                && !n.exists(Kind::Rule, pk)
                && !store.applications.iter().any(|a| a.get("pk") == Some(pk))
            {
                errors.add("target", does_not_exist(pk));
            }
            if !errors.is_empty() {
                return errors.into_result();
            }
            let set = ["policy", "group", "user"]
                .iter()
                .filter(|k| !merged[**k].is_null())
                .count();
            if set > 1 {
                errors.add(
                    "non_field_errors",
                    "Only one of 'policy', 'group' or 'user' can be set.",
                );
            }
            if others().any(|o| {
                ["policy", "target", "order"]
                    .iter()
                    .all(|k| o[*k] == merged[*k])
            }) {
                errors.add(
                    "non_field_errors",
                    "The fields policy, target, order must make a unique set.",
                );
            }
        }
        Kind::Mapping | Kind::Policy => {}
    }
    errors.into_result()
}

fn write(
    store: &mut Store,
    kind: Kind,
    current: Option<usize>,
    mut body: Map<String, Value>,
) -> ApiResult {
    // UUID fields are stored in Django's canonical form.
    for (_, value) in body.iter_mut() {
        if let Some(uuid) = value.as_str().and_then(canonical_uuid) {
            *value = json!(uuid);
        }
    }
    if let Some(Value::Array(pks)) = body.get_mut("transports") {
        for pk in pks.iter_mut() {
            if let Some(uuid) = pk.as_str().and_then(canonical_uuid) {
                *pk = json!(uuid);
            }
        }
    }
    let mut merged = match current {
        Some(i) => store.notifications.of(kind)[i].clone(),
        None => {
            let mut fresh = kind.defaults().as_object().cloned().unwrap_or_default();
            fresh.insert("pk".into(), json!(seed::new_uuid()));
            fresh
        }
    };
    for (key, value) in &body {
        merged.insert(key.clone(), value.clone());
    }
    validate(store, kind, current, &merged, &body)?;
    let objects = store.notifications.of_mut(kind);
    let i = match current {
        Some(i) => {
            objects[i] = merged;
            i
        }
        None => {
            objects.push(merged);
            objects.len() - 1
        }
    };
    let rendered = render(store, kind, &store.notifications.of(kind)[i]);
    Ok(if current.is_some() {
        ApiResponse::ok(rendered)
    } else {
        ApiResponse::created(rendered)
    })
}
