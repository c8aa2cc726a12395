//! `orphans`: authentik applications pma-sso made (`meta_publisher: pma-sso`) that no manifest
//! claims by slug, with their providers. `--prune` lists them, then deletes exactly those —
//! application first, then its provider. Nothing that is not ours is ever listed or deleted.

use std::collections::BTreeSet;
use std::io::Write;

use worker::Context;
use worker::authentik::Application;
use worker::authentik::cleanup::ProviderRef;
use worker::flows::PUBLISHER;

use super::Options;
use crate::cli::{Status, fail};

/// An application of ours that no manifest claims, and the provider that goes with it.
pub struct Orphan {
    pub app: Application,
    pub provider: Option<ProviderRef>,
}

/// Slugs the packages claim. A broken manifest still claims its directory name (its slug
/// cannot be known), so a typo never makes a live service's application look orphaned.
fn claimed_slugs(ctx: &Context) -> Result<BTreeSet<String>, String> {
    let loaded = schemas::load_packages(&ctx.settings.packages_dir)
        .map_err(|e| format!("{}: {e}", ctx.settings.packages_dir.display()))?;
    Ok(loaded
        .into_iter()
        .filter_map(|p| match p {
            Ok(p) => Some(p.manifest.slug().to_string()),
            Err(e) => e
                .file
                .parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
        })
        .collect())
}

pub async fn find(ctx: &Context) -> Result<Vec<Orphan>, String> {
    let claimed = claimed_slugs(ctx)?;
    let ours = ctx
        .authentik
        .applications_published_by(PUBLISHER)
        .await
        .map_err(|e| e.to_string())?;
    let unclaimed: Vec<Application> = ours
        .into_iter()
        .filter(|a| !claimed.contains(&a.slug))
        .collect();
    if unclaimed.is_empty() {
        return Ok(Vec::new());
    }
    let providers = ctx
        .authentik
        .all_providers()
        .await
        .map_err(|e| e.to_string())?;
    Ok(unclaimed
        .into_iter()
        .map(|app| {
            // Ours by natural key; failing that, the provider the application links to — but
            // only when it carries our name too, so a hand-made provider is never touched.
            let natural = format!("pma-sso-{}", app.slug);
            let provider = providers
                .iter()
                .find(|p| p.name == natural)
                .or_else(|| {
                    providers
                        .iter()
                        .find(|p| Some(p.pk) == app.provider && p.name.starts_with("pma-sso-"))
                })
                .cloned();
            Orphan { app, provider }
        })
        .collect())
}

pub async fn run(ctx: &Context, opts: &Options, prune: bool, out: &mut dyn Write) -> Status {
    let orphans = match find(ctx).await {
        Ok(o) => o,
        Err(e) => return fail(out, &e),
    };
    let mut status = Status::Green;
    let mut rows = Vec::new();
    for o in &orphans {
        let provider = o.provider.as_ref().map_or_else(
            || "no provider".to_owned(),
            |p| format!("provider {} (pk {})", p.name, p.pk),
        );
        if opts.json {
            rows.push(serde_json::json!({
                "application": o.app.slug, "name": o.app.name,
                "provider": o.provider.as_ref().map(|p| serde_json::json!({"pk": p.pk, "name": p.name})),
            }));
        } else {
            let _ = writeln!(
                out,
                "orphan: application {} ({}), {provider}: no manifest claims it",
                o.app.slug, o.app.name
            );
        }
    }
    if orphans.is_empty() && !opts.json {
        let _ = writeln!(
            out,
            "no orphans: every application pma-sso made has a manifest"
        );
    }
    if prune {
        for o in &orphans {
            let mut deleted = serde_json::json!({"application": o.app.slug, "deleted": []});
            let result = async {
                ctx.authentik
                    .delete_application(&o.app.slug)
                    .await
                    .map_err(|e| format!("deleting application {}: {e}", o.app.slug))?;
                if !opts.json {
                    let _ = writeln!(out, "deleted application {}", o.app.slug);
                }
                deleted["deleted"] = serde_json::json!(["application"]);
                if let Some(p) = &o.provider {
                    ctx.authentik
                        .delete_provider(p.pk)
                        .await
                        .map_err(|e| format!("deleting provider {}: {e}", p.name))?;
                    if !opts.json {
                        let _ = writeln!(out, "deleted provider {}", p.name);
                    }
                    deleted["deleted"] = serde_json::json!(["application", "provider"]);
                }
                Ok::<(), String>(())
            }
            .await;
            if let Err(e) = result {
                status = Status::Error;
                if !opts.json {
                    let _ = writeln!(out, "error: {e}");
                }
                deleted["error"] = serde_json::json!(e);
            }
            if opts.json {
                rows.push(deleted);
            }
        }
    } else if !orphans.is_empty() {
        status = Status::Drift;
        if !opts.json {
            let _ = writeln!(
                out,
                "`pma-sso orphans --prune` deletes these, and nothing else"
            );
        }
    }
    if opts.json {
        let _ = writeln!(out, "{}", serde_json::Value::Array(rows));
    }
    status
}
