//! `orphans`: what pma-sso made that nothing needs any more, and `--prune` to delete exactly
//! that.
//!
//! - applications of ours (`meta_publisher: pma-sso`) that no manifest claims by slug, with
//!   their providers;
//! - providers of ours (named `pma-sso-…`: created by the flows, or handed over by `adopt`)
//!   that no application uses and no manifest's natural key names.
//!
//! `--prune` lists them, then deletes exactly those — application first, then its provider —
//! and removes the service's client id and secret from `.env` (through the locked editor),
//! naming the removed keys, never their values. Nothing that is not ours is listed or deleted.

use std::collections::BTreeSet;
use std::io::Write;

use secrecy::ExposeSecret;
use worker::Context;
use worker::authentik::cleanup::ProviderRef;
use worker::authentik::{Application, OAuth2Provider};
use worker::envfile::EnvFile;
use worker::flows::PUBLISHER;

use super::Options;
use crate::cli::{Status, fail};

/// Prefix of every provider name pma-sso gives (`pma-sso-<slug>`, `adopt`'s
/// `pma-sso-<slug>-adopted-<pk>`).
const OURS: &str = "pma-sso-";

/// An application of ours that no manifest claims, and the provider that goes with it.
pub struct Orphan {
    pub app: Application,
    pub provider: Option<ProviderRef>,
}

/// Everything `orphans` reports.
#[derive(Default)]
pub struct Found {
    pub apps: Vec<Orphan>,
    /// Providers of ours that no application uses.
    pub providers: Vec<ProviderRef>,
}

/// What the packages claim: slugs, provider natural keys and `.env` keys.
struct Claimed {
    slugs: BTreeSet<String>,
    env_keys: BTreeSet<String>,
}

/// A broken manifest still claims its directory name (its slug cannot be known), so a typo
/// never makes a live service's application look orphaned.
fn claimed(ctx: &Context) -> Result<Claimed, String> {
    let loaded = schemas::load_packages(&ctx.settings.packages_dir)
        .map_err(|e| format!("{}: {e}", ctx.settings.packages_dir.display()))?;
    let mut out = Claimed {
        slugs: BTreeSet::new(),
        env_keys: BTreeSet::new(),
    };
    for p in loaded {
        match p {
            Ok(p) => {
                out.slugs.insert(p.manifest.slug().to_string());
                let keys = [p.manifest.client_id_env(), p.manifest.client_secret_env()];
                out.env_keys
                    .extend(keys.into_iter().flatten().map(|k| k.to_string()));
            }
            Err(e) => {
                if let Some(dir) = e.file.parent().and_then(|d| d.file_name()) {
                    out.slugs.insert(dir.to_string_lossy().into_owned());
                }
            }
        }
    }
    Ok(out)
}

pub async fn find(ctx: &Context) -> Result<Found, String> {
    let claimed = claimed(ctx)?;
    let providers = ctx
        .authentik
        .all_providers()
        .await
        .map_err(|e| e.to_string())?;
    let ours = if ctx.settings.least_privilege {
        applications_of_our_providers(ctx, &providers).await?
    } else {
        ctx.authentik
            .applications_published_by(PUBLISHER)
            .await
            .map_err(|e| e.to_string())?
    };
    let apps: Vec<Orphan> = ours
        .into_iter()
        .filter(|a| !claimed.slugs.contains(&a.slug))
        .map(|app| {
            // Ours by natural key; failing that, the provider the application links to — but
            // only when it carries our name too, so a hand-made provider is never touched.
            let natural = format!("{OURS}{}", app.slug);
            let provider = providers
                .iter()
                .find(|p| p.name == natural)
                .or_else(|| {
                    providers
                        .iter()
                        .find(|p| Some(p.pk) == app.provider && p.name.starts_with(OURS))
                })
                .cloned();
            Orphan { app, provider }
        })
        .collect();
    let natural_keys: BTreeSet<String> =
        claimed.slugs.iter().map(|s| format!("{OURS}{s}")).collect();
    let taken: BTreeSet<i64> = apps
        .iter()
        .filter_map(|o| o.provider.as_ref().map(|p| p.pk))
        .collect();
    let unused = providers
        .into_iter()
        .filter(|p| {
            p.name.starts_with(OURS)
                && p.unassigned()
                && !natural_keys.contains(&p.name)
                && !taken.contains(&p.pk)
        })
        .collect();
    Ok(Found {
        apps,
        providers: unused,
    })
}

/// Without a superuser's token the application list is the token's own launcher list, so
/// ours are found through our providers' `assigned_application_slug` and read by slug (an
/// application of ours always links to a `pma-sso-…` provider).
async fn applications_of_our_providers(
    ctx: &Context,
    providers: &[ProviderRef],
) -> Result<Vec<Application>, String> {
    let slugs: BTreeSet<&str> = providers
        .iter()
        .filter(|p| p.name.starts_with(OURS))
        .filter_map(|p| p.assigned_application_slug.as_deref())
        .filter(|s| !s.is_empty())
        .collect();
    let mut apps = Vec::new();
    for slug in slugs {
        if let Some(app) = ctx
            .authentik
            .application(slug)
            .await
            .map_err(|e| e.to_string())?
            && app.meta_publisher == PUBLISHER
        {
            apps.push(app);
        }
    }
    Ok(apps)
}

/// `.env` keys that belonged to a pruned service: the default names for its slug, and any key
/// holding its provider's client id or secret — never a key a manifest still uses.
fn env_keys_of(
    slug: Option<&str>,
    oauth2: Option<&OAuth2Provider>,
    env: &EnvFile,
    claimed: &BTreeSet<String>,
) -> Vec<String> {
    let mut keys = BTreeSet::new();
    if let Some(slug) = slug {
        let prefix = slug.to_ascii_uppercase().replace('-', "_");
        for suffix in ["_SSO_CLIENT_ID", "_SSO_CLIENT_SECRET"] {
            let key = format!("{prefix}{suffix}");
            if env.contains(&key) {
                keys.insert(key);
            }
        }
    }
    if let Some(p) = oauth2 {
        let values = [p.client_id.as_str(), p.client_secret.expose_secret()];
        for key in env.keys() {
            if env
                .get(key)
                .is_some_and(|v| !v.is_empty() && values.contains(&v))
            {
                keys.insert(key.to_owned());
            }
        }
    }
    keys.into_iter().filter(|k| !claimed.contains(k)).collect()
}

/// One deletion (an application and its provider, or a provider), and the `.env` keys to remove once it succeeded.
struct Prune<'a> {
    app: Option<&'a Application>,
    provider: Option<&'a ProviderRef>,
    env_keys: Vec<String>,
}

pub async fn run(ctx: &Context, opts: &Options, prune: bool, out: &mut dyn Write) -> Status {
    let found = match find(ctx).await {
        Ok(o) => o,
        Err(e) => return fail(out, &e),
    };
    let mut status = Status::Green;
    let mut rows = Vec::new();
    let provider_json = |p: &ProviderRef| serde_json::json!({"pk": p.pk, "name": p.name});
    for o in &found.apps {
        let provider = o.provider.as_ref().map_or_else(
            || "no provider".to_owned(),
            |p| format!("provider {} (pk {})", p.name, p.pk),
        );
        if opts.json {
            rows.push(serde_json::json!({
                "application": o.app.slug, "name": o.app.name,
                "provider": o.provider.as_ref().map(provider_json),
            }));
        } else {
            let _ = writeln!(
                out,
                "orphan: application {} ({}), {provider}: no manifest claims it",
                o.app.slug, o.app.name
            );
        }
    }
    for p in &found.providers {
        if opts.json {
            rows.push(serde_json::json!({"application": null, "provider": provider_json(p)}));
        } else {
            let _ = writeln!(
                out,
                "orphan: provider {} (pk {}): no application uses it",
                p.name, p.pk
            );
        }
    }
    let empty = found.apps.is_empty() && found.providers.is_empty();
    if empty && !opts.json {
        let _ = writeln!(
            out,
            "no orphans: every application pma-sso made has a manifest"
        );
    }
    if prune && !empty {
        let plan = match prune_plan(ctx, &found).await {
            Ok(p) => p,
            Err(e) => return fail(out, &e),
        };
        if opts.json {
            rows.clear();
        }
        for item in &plan {
            let mut done = serde_json::json!({
                "application": item.app.map(|a| &a.slug),
                "provider": item.provider.map(|p| &p.name),
                "deleted": [], "env_keys_removed": [],
            });
            if let Err(e) = prune_one(ctx, item, opts.json, out, &mut done).await {
                status = Status::Error;
                if !opts.json {
                    let _ = writeln!(out, "error: {e}");
                }
                done["error"] = serde_json::json!(e);
            }
            if opts.json {
                rows.push(done);
            }
        }
    } else if !empty {
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

/// What each deletion takes with it from `.env`. The OAuth2 providers are read once, only
/// when something is pruned.
async fn prune_plan<'a>(ctx: &Context, found: &'a Found) -> Result<Vec<Prune<'a>>, String> {
    let claimed = claimed(ctx)?;
    let env = EnvFile::read(&ctx.settings.env_path).map_err(|e| e.to_string())?;
    let oauth2 = ctx
        .authentik
        .oauth2_providers()
        .await
        .map_err(|e| format!("reading OAuth2 providers: {e}"))?;
    let oauth2_of = |p: Option<&ProviderRef>| p.and_then(|p| oauth2.iter().find(|o| o.pk == p.pk));
    let mut plan = Vec::new();
    for o in &found.apps {
        plan.push(Prune {
            app: Some(&o.app),
            provider: o.provider.as_ref(),
            env_keys: env_keys_of(
                Some(&o.app.slug),
                oauth2_of(o.provider.as_ref()),
                &env,
                &claimed.env_keys,
            ),
        });
    }
    for p in &found.providers {
        plan.push(Prune {
            app: None,
            provider: Some(p),
            env_keys: env_keys_of(None, oauth2_of(Some(p)), &env, &claimed.env_keys),
        });
    }
    Ok(plan)
}

async fn prune_one(
    ctx: &Context,
    item: &Prune<'_>,
    json: bool,
    out: &mut dyn Write,
    done: &mut serde_json::Value,
) -> Result<(), String> {
    let mut deleted = Vec::new();
    if let Some(app) = item.app {
        ctx.authentik
            .delete_application(&app.slug)
            .await
            .map_err(|e| format!("deleting application {}: {e}", app.slug))?;
        if !json {
            let _ = writeln!(out, "deleted application {}", app.slug);
        }
        deleted.push("application");
        done["deleted"] = serde_json::json!(deleted);
    }
    if let Some(p) = item.provider {
        ctx.authentik
            .delete_provider(p.pk)
            .await
            .map_err(|e| format!("deleting provider {}: {e}", p.name))?;
        if !json {
            let _ = writeln!(out, "deleted provider {}", p.name);
        }
        deleted.push("provider");
        done["deleted"] = serde_json::json!(deleted);
    }
    if !item.env_keys.is_empty() {
        let changes: Vec<(&str, Option<&str>)> =
            item.env_keys.iter().map(|k| (k.as_str(), None)).collect();
        worker::envfile::update(&ctx.settings.env_path, &changes).map_err(|e| {
            format!(
                "removing {} from {}: {e}",
                item.env_keys.join(", "),
                ctx.settings.env_path.display()
            )
        })?;
        if !json {
            let _ = writeln!(
                out,
                "removed {} from {}",
                item.env_keys.join(", "),
                ctx.settings.env_path.display()
            );
        }
        done["env_keys_removed"] = serde_json::json!(item.env_keys);
    }
    Ok(())
}
