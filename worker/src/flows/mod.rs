//! One flow per `sso.type`, behind one trait and one exhaustive dispatch: a new type is one
//! new file and one match arm.
//!
//! A flow never sleeps or retries. `check` compares the desired state (manifest + `.env`) with
//! the live state it is *given* — read for one service or taken from a sweep's bulk snapshot —
//! and `apply` converges: find by natural key, create what is missing, patch only fields that
//! differ, then deliver the service's native settings.

mod application;
mod credentials;
mod frappe;
mod oauth;
mod oauth2;
mod oidc;
mod proxy;
mod saml;
mod wikijs;

use schemas::{Package, SsoKind};

use crate::context::Context;
use crate::deliver::{DeliverError, Deliverer};
use crate::envfile::EnvFile;
use crate::error::FlowError;
use crate::live::Live;
use crate::render::{Extras, Scope};
use crate::report::{Applied, Drift, Report};

pub use application::{PUBLISHER, as_adopted};

/// The service a flow works on: its package and the `.env` as read at the start of the job.
pub struct Service<'a> {
    pub package: &'a Package,
    pub env: &'a EnvFile,
}

// Static dispatch only (no `dyn Flow`), so `async fn` in the trait is fine.
#[allow(async_fn_in_trait)]
pub trait Flow {
    async fn check(
        &self,
        ctx: &Context,
        svc: &Service<'_>,
        live: &Live<'_>,
    ) -> Result<Report, FlowError>;
    async fn apply(
        &self,
        ctx: &Context,
        svc: &Service<'_>,
        live: &Live<'_>,
    ) -> Result<Applied, FlowError>;
}

pub async fn check(ctx: &Context, svc: &Service<'_>, live: &Live<'_>) -> Result<Report, FlowError> {
    match svc.package.manifest.kind() {
        SsoKind::Oauth => oauth::OAuth.check(ctx, svc, live).await,
        SsoKind::Oidc => oidc::Oidc.check(ctx, svc, live).await,
        SsoKind::Saml => saml::Saml.check(ctx, svc, live).await,
        SsoKind::Proxy => proxy::Proxy.check(ctx, svc, live).await,
        SsoKind::Wikijs => wikijs::Wikijs.check(ctx, svc, live).await,
        SsoKind::Frappe => frappe::Frappe.check(ctx, svc, live).await,
    }
}

pub async fn apply(
    ctx: &Context,
    svc: &Service<'_>,
    live: &Live<'_>,
) -> Result<Applied, FlowError> {
    match svc.package.manifest.kind() {
        SsoKind::Oauth => oauth::OAuth.apply(ctx, svc, live).await,
        SsoKind::Oidc => oidc::Oidc.apply(ctx, svc, live).await,
        SsoKind::Saml => saml::Saml.apply(ctx, svc, live).await,
        SsoKind::Proxy => proxy::Proxy.apply(ctx, svc, live).await,
        SsoKind::Wikijs => wikijs::Wikijs.apply(ctx, svc, live).await,
        SsoKind::Frappe => frappe::Frappe.apply(ctx, svc, live).await,
    }
}

fn report(svc: &Service<'_>, summary: &str, drifts: Vec<Drift>) -> Report {
    Report {
        service: svc.package.manifest.name.to_string(),
        kind: svc.package.manifest.kind(),
        summary: summary.to_owned(),
        drifts,
        warnings: Vec::new(),
        objects: Default::default(),
        unverified: Vec::new(),
    }
}

/// How an empty authentik field reads in a drift message.
fn or_none(value: &str) -> &str {
    if value.is_empty() { "none" } else { value }
}

/// Values of `env` that must never appear in an error text.
fn secrets_of(svc: &Service<'_>, env: &EnvFile) -> Vec<String> {
    let m = &svc.package.manifest;
    let mut keys: Vec<String> = m
        .client_secret_env()
        .into_iter()
        .map(|k| k.to_string())
        .collect();
    for delivery in m.deliveries() {
        if let schemas::Delivery::Http(http) = delivery {
            for template in http.headers.values() {
                for part in template.parts() {
                    if let schemas::Part::Secret(key) = part {
                        keys.push(key.to_string());
                    }
                }
            }
        }
    }
    keys.iter()
        .filter_map(|k| env.get(k).map(str::to_owned))
        .collect()
}

/// Check every delivery. A value that cannot be rendered yet (no client id in `.env` before
/// the first add) is drift that `fix` repairs, not an error.
pub(crate) async fn check_deliveries(
    ctx: &Context,
    svc: &Service<'_>,
    extras: &Extras,
) -> Result<Vec<Drift>, FlowError> {
    let scope = Scope::new(
        &svc.package.manifest,
        svc.env,
        ctx.settings.public_url.as_deref(),
        extras,
    );
    let deliverer = deliverer(ctx, svc, &scope, svc.env);
    let mut drifts = Vec::new();
    let mut unrenderable = false;
    for (index, delivery) in svc.package.manifest.deliveries().iter().enumerate() {
        match deliverer.check(index, delivery).await {
            Ok(found) => drifts.extend(found),
            // One line is enough: the cause (usually credentials not yet in .env) is shared.
            Err(DeliverError::Render { problem, .. }) if !unrenderable => {
                unrenderable = true;
                drifts.push(Drift::new(
                    format!("deliver[{index}]"),
                    format!("delivered settings cannot be rendered: {problem}"),
                    "render and deliver the settings",
                ));
            }
            Err(DeliverError::Render { .. }) => {}
            Err(source) => {
                return Err(FlowError::Deliver {
                    index,
                    kind: delivery.kind(),
                    source,
                });
            }
        }
    }
    Ok(drifts)
}

/// Apply every delivery against the `.env` as it is *now* (the flow may just have written the
/// client credentials).
async fn apply_deliveries(
    ctx: &Context,
    svc: &Service<'_>,
    extras: &Extras,
    applied: &mut Applied,
) -> Result<(), FlowError> {
    let env = EnvFile::read(&ctx.settings.env_path).map_err(FlowError::ReadEnv)?;
    let scope = Scope::new(
        &svc.package.manifest,
        &env,
        ctx.settings.public_url.as_deref(),
        extras,
    );
    let deliverer = deliverer(ctx, svc, &scope, &env);
    let mut restart = false;
    for (index, delivery) in svc.package.manifest.deliveries().iter().enumerate() {
        let done = deliverer
            .apply(index, delivery)
            .await
            .map_err(|source| FlowError::Deliver {
                index,
                kind: delivery.kind(),
                source,
            })?;
        if done.changed {
            applied.did(format!("delivered {} settings (#{index})", delivery.kind()));
        }
        restart |= done.needs_restart;
    }
    if restart {
        applied.restart(
            svc.package
                .manifest
                .restart()
                .into_iter()
                .map(|s| s.to_string()),
        );
    }
    Ok(())
}

fn deliverer<'a>(
    ctx: &'a Context,
    svc: &'a Service<'_>,
    scope: &'a Scope<'a>,
    env: &EnvFile,
) -> Deliverer<'a> {
    Deliverer {
        package: svc.package,
        scope,
        state_dir: &ctx.settings.state_dir,
        exec_runner: &ctx.settings.exec_runner,
        http: &ctx.http,
        secrets: secrets_of(svc, env),
    }
}
