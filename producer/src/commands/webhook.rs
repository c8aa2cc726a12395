//! `pma-sso webhook install`: authentik's side of the webhook receiver, idempotently.
//!
//! Every object is found by name, created when missing and patched only in the fields that
//! differ (a no-op PATCH would still emit `model_updated`), so a second run sends no write.
//! The shared secret is generated once and kept in `.env`; it reaches authentik only inside
//! the header mapping's expression and is never printed.

use std::future::Future;
use std::io::Write;

use clap::Subcommand;
use serde::Serialize;
use serde_json::{Map, Value, json};
use worker::Context;
use worker::authentik::{AuthentikError, Client, WEBHOOK_SECRET_ENV, WEBHOOK_SECRET_HEADER};
use worker::envfile::{self, EnvFile};

use crate::cli::{Status, fail};

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Create or update the notification mappings, transport, policies, group and rule that
    /// make authentik POST SSO-relevant changes to the receiver.
    Install {
        /// Where authentik sends events, e.g. `http://pma-sso:8080/webhooks/authentik`.
        #[arg(long)]
        url: String,
    },
}

pub const BODY_MAPPING: &str = "pma-sso-webhook-body";
pub const HEADER_MAPPING: &str = "pma-sso-webhook-headers";
pub const TRANSPORT: &str = "pma-sso-webhook";
pub const GROUP: &str = "pma-sso-webhook";
pub const RULE: &str = "pma-sso-sso-changes";

pub const ACTIONS: [&str; 3] = ["model_created", "model_updated", "model_deleted"];
pub const MODELS: [&str; 6] = [
    "authentik_core.application",
    "authentik_providers_oauth2.oauth2provider",
    "authentik_providers_saml.samlprovider",
    "authentik_providers_proxy.proxyprovider",
    "authentik_outposts.outpost",
    "authentik_crypto.certificatekeypair",
];

/// The webhook's JSON body. `str(ev.pk)` keeps the dashed UUID (authentik would render a UUID
/// object as bare hex); a test notification has no event.
pub const BODY_EXPRESSION: &str = r#"ev = notification.event
if ev is None:
    return {"kind": "test", "body": notification.body}
m = ev.context.get("model", {})
return {
    "event_uuid": str(ev.pk),
    "action": ev.action,
    "created": ev.created,
    "model_app": m.get("app"),
    "model_name": m.get("model_name"),
    "model_pk": str(m.get("pk")),
    "object_name": m.get("name"),
    "event_user": ev.user.get("username"),
}
"#;

/// Name of the event-matcher policy for one action on one model.
pub fn policy_name(action: &str, model: &str) -> String {
    format!("pma-sso-{action}-{model}")
}

pub async fn run(ctx: &Context, command: &WebhookCommand, out: &mut dyn Write) -> Status {
    let WebhookCommand::Install { url } = command;
    match install(ctx, url, out).await {
        Ok(()) => Status::Green,
        Err(message) => fail(out, &message),
    }
}

/// The secret goes into a Python string literal, so it may only hold characters that need no
/// quoting.
fn usable_secret(secret: &str) -> bool {
    secret.len() >= 32
        && secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn new_secret() -> String {
    // Two v4 UUIDs: 244 bits from the OS generator.
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn secret(ctx: &Context, out: &mut dyn Write) -> Result<String, String> {
    let path = &ctx.settings.env_path;
    let env = EnvFile::read(path).map_err(|e| e.to_string())?;
    if let Some(existing) = env.get(WEBHOOK_SECRET_ENV).filter(|v| !v.is_empty()) {
        if !usable_secret(existing) {
            return Err(format!(
                "{WEBHOOK_SECRET_ENV} in .env must be at least 32 characters of A-Z, a-z, 0-9, - and _"
            ));
        }
        let _ = writeln!(
            out,
            "unchanged: webhook secret {WEBHOOK_SECRET_ENV} in .env"
        );
        return Ok(existing.to_owned());
    }
    let secret = new_secret();
    envfile::update(path, &[(WEBHOOK_SECRET_ENV, Some(&secret))])
        .map_err(|e| format!("writing .env: {e}"))?;
    let _ = writeln!(out, "created: webhook secret {WEBHOOK_SECRET_ENV} in .env");
    Ok(secret)
}

/// The fields of `desired` whose value differs in `live`.
fn differing(live: &impl Serialize, desired: &Value) -> Map<String, Value> {
    let live = serde_json::to_value(live).unwrap_or(Value::Null);
    desired
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, value)| live.get(key.as_str()) != Some(value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// Create `desired` when `live` is missing, patch only the differing fields otherwise, and
/// print one line saying which.
async fn ensure<T, C, CF, P, PF>(
    out: &mut dyn Write,
    label: &str,
    live: Option<(&T, &str)>,
    desired: Value,
    create: C,
    patch: P,
) -> Result<T, String>
where
    T: Serialize + Clone,
    C: FnOnce(Value) -> CF,
    CF: Future<Output = Result<T, AuthentikError>>,
    P: FnOnce(String, Value) -> PF,
    PF: Future<Output = Result<T, AuthentikError>>,
{
    // Compared as authentik stores it (text fields trimmed), or every install would patch.
    let desired = match desired {
        Value::Object(fields) => Value::Object(worker::authentik::stored_body(fields)),
        other => other,
    };
    let Some((live, pk)) = live else {
        let created = create(desired).await.map_err(|e| format!("{label}: {e}"))?;
        let _ = writeln!(out, "created: {label}");
        return Ok(created);
    };
    let diff = differing(live, &desired);
    if diff.is_empty() {
        let _ = writeln!(out, "unchanged: {label}");
        return Ok(live.clone());
    }
    let fields: Vec<String> = diff.keys().cloned().collect();
    let updated = patch(pk.to_owned(), Value::Object(diff))
        .await
        .map_err(|e| format!("{label}: {e}"))?;
    let _ = writeln!(out, "updated: {label} ({})", fields.join(", "));
    Ok(updated)
}

pub(crate) async fn install(ctx: &Context, url: &str, out: &mut dyn Write) -> Result<(), String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("--url must be an http(s) URL, got {url:?}"));
    }
    let c: &Client = &ctx.authentik;
    let me = c.whoami().await.map_err(|e| e.to_string())?;
    let secret = secret(ctx, out)?;

    let mappings = c.notification_mappings().await.map_err(|e| e.to_string())?;
    let find_mapping = |name: &str| {
        mappings
            .iter()
            .find(|m| m.name == name)
            .map(|m| (m, m.pk.as_str()))
    };
    let body = ensure(
        out,
        &format!("webhook body mapping {BODY_MAPPING}"),
        find_mapping(BODY_MAPPING),
        json!({"name": BODY_MAPPING, "expression": BODY_EXPRESSION}),
        |b| async move { c.create_notification_mapping(&b).await },
        |pk, b| async move { c.patch_notification_mapping(&pk, &b).await },
    )
    .await?;
    let headers = ensure(
        out,
        &format!("webhook header mapping {HEADER_MAPPING}"),
        find_mapping(HEADER_MAPPING),
        json!({
            "name": HEADER_MAPPING,
            "expression": format!("return {{\"{WEBHOOK_SECRET_HEADER}\": \"{secret}\"}}\n"),
        }),
        |b| async move { c.create_notification_mapping(&b).await },
        |pk, b| async move { c.patch_notification_mapping(&pk, &b).await },
    )
    .await?;

    let transports = c
        .notification_transports()
        .await
        .map_err(|e| e.to_string())?;
    let transport = ensure(
        out,
        &format!("transport {TRANSPORT}"),
        transports
            .iter()
            .find(|t| t.name == TRANSPORT)
            .map(|t| (t, t.pk.as_str())),
        json!({
            "name": TRANSPORT,
            "mode": "webhook",
            "webhook_url": url,
            "webhook_mapping_body": body.pk,
            "webhook_mapping_headers": headers.pk,
            // Without it authentik POSTs once per member of the destination group.
            "send_once": true,
        }),
        |b| async move { c.create_notification_transport(&b).await },
        |pk, b| async move { c.patch_notification_transport(&pk, &b).await },
    )
    .await?;

    let existing = c
        .event_matcher_policies()
        .await
        .map_err(|e| e.to_string())?;
    let mut policies = Vec::new();
    for action in ACTIONS {
        for model in MODELS {
            let name = policy_name(action, model);
            let policy = ensure(
                out,
                &format!("event matcher policy {name}"),
                existing
                    .iter()
                    .find(|p| p.name == name)
                    .map(|p| (p, p.pk.as_str())),
                json!({
                    "name": name,
                    "action": action,
                    "model": model,
                    "app": null,
                    "client_ip": null,
                }),
                |b| async move { c.create_event_matcher_policy(&b).await },
                |pk, b| async move { c.patch_event_matcher_policy(&pk, &b).await },
            )
            .await?;
            policies.push(policy);
        }
    }

    // authentik sends nothing to an empty group; its member is pma-sso's own account. Other
    // members an operator added stay.
    let group_label = format!("destination group {GROUP}");
    let group = match c.group_by_name(GROUP).await.map_err(|e| e.to_string())? {
        None => {
            let group = c
                .create_group(&json!({"name": GROUP, "users": [me.pk]}))
                .await
                .map_err(|e| format!("{group_label}: {e}"))?;
            let _ = writeln!(out, "created: {group_label}");
            group
        }
        Some(group) if group.users.contains(&me.pk) => {
            let _ = writeln!(out, "unchanged: {group_label}");
            group
        }
        Some(group) => {
            c.add_user_to_group(&group.pk, me.pk)
                .await
                .map_err(|e| format!("{group_label}: {e}"))?;
            let _ = writeln!(out, "updated: {group_label} (added {})", me.username);
            group
        }
    };

    let rules = c.notification_rules().await.map_err(|e| e.to_string())?;
    let rule = ensure(
        out,
        &format!("notification rule {RULE}"),
        rules
            .iter()
            .find(|r| r.name == RULE)
            .map(|r| (r, r.pk.as_str())),
        json!({
            "name": RULE,
            "transports": [transport.pk],
            "severity": "notice",
            "destination_group": group.pk,
            "destination_event_user": false,
        }),
        |b| async move { c.create_notification_rule(&b).await },
        |pk, b| async move { c.patch_notification_rule(&pk, &b).await },
    )
    .await?;

    let bindings = c
        .policy_bindings_for(&rule.pk)
        .await
        .map_err(|e| e.to_string())?;
    for (order, policy) in policies.iter().enumerate() {
        let live = bindings
            .iter()
            .find(|b| b.policy.as_deref() == Some(policy.pk.as_str()))
            .map(|b| (b, b.pk.as_str()));
        // The order of bindings does not matter to a rule (it ORs them), so it is only set
        // on creation.
        let desired = if live.is_some() {
            json!({"enabled": true, "negate": false})
        } else {
            json!({"policy": policy.pk, "target": rule.pk, "order": order, "enabled": true, "negate": false})
        };
        ensure(
            out,
            &format!("binding {} → {RULE}", policy.name),
            live,
            desired,
            |b| async move { c.create_policy_binding(&b).await },
            |pk, b| async move { c.patch_policy_binding(&pk, &b).await },
        )
        .await?;
    }
    Ok(())
}
