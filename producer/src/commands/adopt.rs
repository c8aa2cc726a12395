//! `adopt <svc>`: an application with the manifest's slug that pma-sso did not create. Shows
//! how it differs from the manifest — the flows' own check, run as if the application were
//! already ours — and with `--yes` sets `meta_publisher: pma-sso`, after which `fix` manages
//! it. Without `--yes` nothing is written.
//!
//! The flows find their provider by name (`pma-sso-<slug>`), so `--yes` also hands over the
//! application's own provider: one of the manifest's type is renamed to that natural key, and
//! `fix` then reconciles its fields instead of creating a second provider. One of another type
//! is renamed `pma-sso-adopted-<slug>-<pk>`: `fix` links a new provider, and `orphans` then
//! reports the old one, which nothing uses any more. The application's display name is kept
//! unless the manifest sets `display_name`.

use std::io::Write;

use worker::Context;
use worker::flows::{PUBLISHER, as_adopted};
use worker::live::{Snapshot, provider_model, provider_name};

use super::Options;
use crate::cli::{Status, fail};

pub async fn run(
    ctx: &Context,
    opts: &Options,
    service: &str,
    yes: bool,
    out: &mut dyn Write,
) -> Status {
    let package = match ctx.package(service) {
        Ok(p) => p,
        Err(e) => return fail(out, &e.to_string()),
    };
    let slug = package.manifest.slug().to_string();
    let mut snapshot = match Snapshot::fetch_for(&ctx.authentik, &package.manifest).await {
        Ok(s) => s,
        Err(e) => return fail(out, &e.to_string()),
    };
    let Some(app) = snapshot.applications.iter_mut().find(|a| a.slug == slug) else {
        return fail(
            out,
            &format!(
                "authentik has no application {slug}: nothing to adopt (`pma-sso add {service}` creates one)"
            ),
        );
    };
    if app.meta_publisher == PUBLISHER {
        if opts.json {
            let _ = writeln!(
                out,
                "{}",
                serde_json::json!({
                    "service": service, "application": slug, "publisher": PUBLISHER,
                    "drifts": [], "adopted": false, "already_ours": true,
                })
            );
        } else {
            let _ = writeln!(
                out,
                "application {slug} is already managed by pma-sso; nothing to adopt"
            );
        }
        return Status::Green;
    }
    let publisher = if app.meta_publisher.is_empty() {
        "none".to_owned()
    } else {
        app.meta_publisher.clone()
    };
    let app_provider = app.provider;
    *app = as_adopted(app);
    let report = match ctx.check_with(&package, &snapshot).await {
        Ok(r) => r,
        Err(e) => return fail(out, &e.to_string()),
    };
    if opts.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({
                "service": service, "application": slug, "publisher": publisher,
                "drifts": report.drifts, "adopted": yes, "already_ours": false,
            })
        );
    } else {
        let _ = writeln!(
            out,
            "application {slug} was not made by pma-sso (publisher: {publisher})"
        );
        if report.in_sync() {
            let _ = writeln!(out, "  it matches the manifest");
        } else {
            let _ = writeln!(
                out,
                "  how it differs from the manifest (what fix would do):"
            );
            for drift in &report.drifts {
                let _ = writeln!(out, "    {} ({})", drift.message, drift.remedy);
            }
        }
    }
    if !yes {
        if !opts.json {
            let _ = writeln!(
                out,
                "nothing written; `pma-sso adopt {service} --yes` marks it as pma-sso's"
            );
        }
        return if report.in_sync() {
            Status::Green
        } else {
            Status::Drift
        };
    }
    let patch = serde_json::json!({ "meta_publisher": PUBLISHER });
    if let Err(e) = ctx.authentik.patch_application(&slug, &patch).await {
        return fail(
            out,
            &format!("marking application {slug} as pma-sso's: {e}"),
        );
    }
    let handed = match hand_over_provider(ctx, &package.manifest, app_provider).await {
        Ok(line) => line,
        Err(e) => return fail(out, &e),
    };
    if !opts.json {
        if let Some(line) = handed {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(
            out,
            "adopted application {slug}: `pma-sso fix {service}` manages it from now on"
        );
    }
    Status::Green
}

/// Give the adopted application's provider the name the flows look for (or, of another type,
/// a name `orphans` recognises once `fix` has replaced it). Returns what was done.
async fn hand_over_provider(
    ctx: &Context,
    manifest: &schemas::Manifest,
    provider_pk: Option<i64>,
) -> Result<Option<String>, String> {
    let Some(pk) = provider_pk else {
        return Ok(None);
    };
    let natural = provider_name(manifest);
    let providers = ctx
        .authentik
        .all_providers()
        .await
        .map_err(|e| format!("reading providers: {e}"))?;
    let Some(own) = providers.iter().find(|p| p.pk == pk) else {
        return Ok(None);
    };
    if own.name == natural {
        return Ok(None);
    }
    let natural_taken = providers.iter().any(|p| p.name == natural);
    let (name, line) = if own.meta_model_name == provider_model(manifest) && !natural_taken {
        (
            natural.clone(),
            format!(
                "kept provider {} (pk {pk}) as {natural}: fix reconciles its fields",
                own.name
            ),
        )
    } else {
        let name = format!("{natural}-adopted-{pk}");
        let line = format!(
            "provider {} (pk {pk}) is not the manifest's type: renamed {name}; fix links a new \
             provider and `pma-sso orphans` lists this one",
            own.name
        );
        (name, line)
    };
    if own.endpoint().is_none() {
        return Ok(Some(format!(
            "provider {} (pk {pk}) is of a type pma-sso does not manage; left as it is",
            own.name
        )));
    }
    ctx.authentik
        .rename_provider(own, &name)
        .await
        .map_err(|e| format!("renaming provider {}: {e}", own.name))?;
    Ok(Some(line))
}
