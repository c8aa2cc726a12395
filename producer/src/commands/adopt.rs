//! `adopt <svc>`: an application with the manifest's slug that pma-sso did not create. Shows
//! how it differs from the manifest — the flows' own check, run as if the application were
//! already ours — and with `--yes` sets `meta_publisher: pma-sso`, after which `fix` manages
//! it. Without `--yes` nothing is written.

use std::io::Write;

use worker::Context;
use worker::flows::{PUBLISHER, as_adopted};
use worker::live::Snapshot;

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
    if !opts.json {
        let _ = writeln!(
            out,
            "adopted application {slug}: `pma-sso fix {service}` manages it from now on"
        );
    }
    Status::Green
}
