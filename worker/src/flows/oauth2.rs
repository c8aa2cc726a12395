//! The authentik side shared by every type backed by an OAuth2 provider (oauth, oidc, wikijs,
//! frappe): custom scope mappings, the provider, the client credentials in `.env`, and the
//! application.

use std::collections::BTreeSet;

use schemas::manifest::{MANAGED_SCOPES, ScopeMappingSpec};
use schemas::{EnvKey, Var};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::Service;
use super::application::{self, AppSpec};
use crate::authentik::{OAuth2Provider, RedirectUri, ScopeMapping};
use crate::context::Context;
use crate::envfile;
use crate::error::FlowError;
use crate::live::{Catalog, Live, provider_name};
use crate::render::{Extras, Scope};
use crate::report::{Applied, Drift};

/// What differs between the OAuth2-backed types.
pub struct Options {
    /// Pin `issuer_mode` when the service validates the issuer.
    pub issuer_mode: Option<&'static str>,
}

/// A scope mapping the provider must carry.
struct WantMapping {
    /// The scope name, shown to operators.
    label: String,
    /// Its pk, when it exists in authentik.
    pk: Option<String>,
}

struct Desired {
    provider_name: String,
    authorization_flow: String,
    invalidation_flow: String,
    redirect_uris: Vec<RedirectUri>,
    mappings: Vec<WantMapping>,
    signing_key: Option<(String, String)>,
    sub_mode: &'static str,
    issuer_mode: Option<&'static str>,
    id_key: EnvKey,
    secret_key: EnvKey,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    app: AppSpec,
}

fn render_err(field: &str) -> impl Fn(crate::render::RenderError) -> FlowError + '_ {
    move |e| FlowError::Render {
        field: field.to_owned(),
        problem: e.0,
    }
}

fn desired(
    ctx: &Context,
    svc: &Service<'_>,
    catalog: &Catalog,
    custom_pks: &dyn Fn(&ScopeMappingSpec) -> Option<String>,
    options: &Options,
) -> Result<Desired, FlowError> {
    let m = &svc.package.manifest;
    let view = m
        .oauth()
        .ok_or(FlowError::NoOAuthClient { kind: m.kind() })?;
    let scope = Scope::new(
        m,
        svc.env,
        ctx.settings.public_url.as_deref(),
        &Extras::default(),
    );
    let url = scope
        .var(Var::ServiceUrl)
        .map_err(render_err("service url"))?
        .to_owned();
    let redirect_uris = view
        .redirect_paths
        .iter()
        .map(|p| RedirectUri {
            matching_mode: "strict".into(),
            url: format!("{url}{p}"),
            redirect_uri_type: None,
        })
        .collect();
    let flows = m.flows();
    let flow_pk = |slug: &schemas::Slug| {
        catalog
            .flow_by_slug(slug.as_str())
            .map(|f| f.pk.clone())
            .ok_or_else(|| FlowError::FlowMissing {
                slug: slug.to_string(),
            })
    };
    let mut mappings = Vec::new();
    for scope_name in &view.client.scopes {
        if let Some((_, managed)) = MANAGED_SCOPES.iter().find(|(n, _)| n == scope_name) {
            let found = catalog.scope_mapping_by_managed(managed).ok_or_else(|| {
                FlowError::ScopeMissing {
                    managed: (*managed).to_owned(),
                }
            })?;
            mappings.push(WantMapping {
                label: scope_name.clone(),
                pk: Some(found.pk.clone()),
            });
        }
    }
    for spec in view.mappings {
        if view.client.scopes.contains(&spec.scope_name) {
            mappings.push(WantMapping {
                label: spec.scope_name.clone(),
                pk: custom_pks(spec),
            });
        }
    }
    let signing_key = match &view.client.signing_key {
        None => None,
        Some(name) => {
            let kp = catalog
                .keypair_by_name(name)
                .ok_or_else(|| FlowError::KeypairMissing { name: name.clone() })?;
            Some((name.clone(), kp.pk.clone()))
        }
    };
    let id_key = m
        .client_id_env()
        .ok_or(FlowError::NoOAuthClient { kind: m.kind() })?;
    let secret_key = m
        .client_secret_env()
        .ok_or(FlowError::NoOAuthClient { kind: m.kind() })?;
    let non_empty = |key: &EnvKey| {
        svc.env
            .get(key.as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Ok(Desired {
        provider_name: provider_name(m),
        authorization_flow: flow_pk(&flows.authorization)?,
        invalidation_flow: flow_pk(&flows.invalidation)?,
        redirect_uris,
        mappings,
        signing_key,
        sub_mode: view.client.sub_mode.as_str(),
        issuer_mode: options.issuer_mode,
        client_id: non_empty(&id_key),
        client_secret: non_empty(&secret_key).map(SecretString::from),
        id_key,
        secret_key,
        app: AppSpec {
            slug: m.slug().to_string(),
            name: crate::authentik::stored_text(m.display_name()),
            owns_name: m.display_name.is_some(),
            launch_url: format!("{url}/"),
            provider_name: provider_name(m),
        },
    })
}

fn expression(svc: &Service<'_>, spec: &ScopeMappingSpec) -> Result<String, FlowError> {
    match (&spec.expression, &spec.expression_file) {
        (Some(inline), _) => Ok(inline.clone()),
        (None, Some(file)) => {
            let path = svc.package.dir.join(file.as_str());
            std::fs::read_to_string(&path).map_err(|e| FlowError::PackageFile {
                path: path.display().to_string(),
                problem: e.to_string(),
            })
        }
        (None, None) => Err(FlowError::PackageFile {
            path: svc.package.manifest_path.display().to_string(),
            problem: format!("mapping `{}` has no expression", spec.name),
        }),
    }
}

/// Desired body of a custom scope mapping.
fn mapping_body(
    svc: &Service<'_>,
    spec: &ScopeMappingSpec,
) -> Result<Map<String, Value>, FlowError> {
    let mut body = Map::new();
    body.insert("name".into(), json!(spec.name));
    body.insert("scope_name".into(), json!(spec.scope_name));
    body.insert("expression".into(), json!(expression(svc, spec)?));
    body.insert(
        "description".into(),
        json!(spec.description.clone().unwrap_or_default()),
    );
    Ok(crate::authentik::stored_body(body))
}

fn mapping_patch(want: &Map<String, Value>, have: &ScopeMapping) -> Map<String, Value> {
    let current = json!({
        "name": have.name,
        "scope_name": have.scope_name,
        "expression": have.expression,
        "description": have.description,
    });
    want.iter()
        .filter(|(k, v)| current.get(k.as_str()) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn mappings_of<'a>(svc: &Service<'a>) -> &'a [ScopeMappingSpec] {
    svc.package
        .manifest
        .oauth()
        .map(|v| v.mappings)
        .unwrap_or(&[])
}

fn authorization_uris(uris: &[RedirectUri]) -> Vec<(String, String)> {
    uris.iter()
        .filter(|u| u.redirect_uri_type.as_deref() != Some("logout"))
        .map(|u| (u.matching_mode.clone(), u.url.clone()))
        .collect()
}

fn show_uris(uris: &[(String, String)]) -> String {
    if uris.is_empty() {
        return "none".into();
    }
    uris.iter()
        .map(|(mode, url)| {
            if mode == "strict" {
                url.clone()
            } else {
                format!("{url} ({mode})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compare the provider with the desired state: the drifts, and the PATCH body that repairs
/// them (only differing fields — a no-op PATCH still fires authentik's `model_updated`).
fn provider_diff(
    desired: &Desired,
    have: &OAuth2Provider,
    catalog: &Catalog,
) -> (Vec<Drift>, Map<String, Value>) {
    let mut drifts = Vec::new();
    let mut patch = Map::new();
    let name = &desired.provider_name;
    let mut differ = |drifts: &mut Vec<Drift>, field: &str, message: String, value: Value| {
        drifts.push(Drift::new(
            format!("provider.{field}"),
            message,
            format!("set {field} on provider {name}"),
        ));
        patch.insert(field.to_owned(), value);
    };

    let want_uris: Vec<(String, String)> = authorization_uris(&desired.redirect_uris);
    let have_uris = authorization_uris(&have.redirect_uris);
    if want_uris != have_uris {
        differ(
            &mut drifts,
            "redirect_uris",
            format!(
                "redirect URI mismatch: want {}, authentik has {}",
                show_uris(&want_uris),
                show_uris(&have_uris)
            ),
            json!(desired.redirect_uris),
        );
    }
    if let Some(id) = &desired.client_id
        && *id != have.client_id
    {
        differ(
            &mut drifts,
            "client_id",
            format!(
                "client id mismatch: .env has {id}, authentik has {}",
                have.client_id
            ),
            json!(id),
        );
    }
    if let Some(secret) = &desired.client_secret
        && secret.expose_secret() != have.client_secret.expose_secret()
    {
        differ(
            &mut drifts,
            "client_secret",
            "client secret mismatch (.env differs from authentik)".into(),
            json!(secret.expose_secret()),
        );
    }
    if desired.authorization_flow != have.authorization_flow {
        differ(
            &mut drifts,
            "authorization_flow",
            format!(
                "authorization flow mismatch: want {}, authentik has {}",
                catalog.flow_slug(&desired.authorization_flow),
                catalog.flow_slug(&have.authorization_flow)
            ),
            json!(desired.authorization_flow),
        );
    }
    if have.invalidation_flow.as_deref() != Some(desired.invalidation_flow.as_str()) {
        differ(
            &mut drifts,
            "invalidation_flow",
            format!(
                "invalidation flow mismatch: want {}, authentik has {}",
                catalog.flow_slug(&desired.invalidation_flow),
                have.invalidation_flow
                    .as_deref()
                    .map_or_else(|| "none".into(), |f| catalog.flow_slug(f))
            ),
            json!(desired.invalidation_flow),
        );
    }
    let have_set: BTreeSet<&str> = have.property_mappings.iter().map(String::as_str).collect();
    let want_set: BTreeSet<&str> = desired
        .mappings
        .iter()
        .filter_map(|m| m.pk.as_deref())
        .collect();
    let missing: Vec<&str> = desired
        .mappings
        .iter()
        .filter(|m| m.pk.as_deref().is_none_or(|pk| !have_set.contains(pk)))
        .map(|m| m.label.as_str())
        .collect();
    let extra: Vec<String> = have_set
        .difference(&want_set)
        .map(|pk| catalog.scope_mapping_label(pk))
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing scope mappings: {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            parts.push(format!("unexpected scope mappings: {}", extra.join(", ")));
        }
        differ(
            &mut drifts,
            "property_mappings",
            parts.join("; "),
            json!(want_set),
        );
    }
    let want_key = desired.signing_key.as_ref().map(|(_, pk)| pk.as_str());
    if want_key != have.signing_key.as_deref() {
        let show =
            |pk: Option<&str>| pk.map_or_else(|| "none".into(), |pk| catalog.keypair_name(pk));
        differ(
            &mut drifts,
            "signing_key",
            format!(
                "signing key mismatch: want {}, authentik has {}",
                show(want_key),
                show(have.signing_key.as_deref())
            ),
            json!(want_key),
        );
    }
    if desired.sub_mode != have.sub_mode {
        differ(
            &mut drifts,
            "sub_mode",
            format!(
                "subject mode mismatch: want {}, authentik has {}",
                desired.sub_mode, have.sub_mode
            ),
            json!(desired.sub_mode),
        );
    }
    if have.client_type != "confidential" {
        differ(
            &mut drifts,
            "client_type",
            format!(
                "client type mismatch: want confidential, authentik has {}",
                have.client_type
            ),
            json!("confidential"),
        );
    }
    if let Some(mode) = desired.issuer_mode
        && have.issuer_mode != mode
    {
        differ(
            &mut drifts,
            "issuer_mode",
            format!(
                "issuer mode mismatch: want {mode}, authentik has {}",
                have.issuer_mode
            ),
            json!(mode),
        );
    }
    (drifts, patch)
}

fn provider_create_body(desired: &Desired) -> Value {
    let mut body = json!({
        "name": desired.provider_name,
        "authorization_flow": desired.authorization_flow,
        "invalidation_flow": desired.invalidation_flow,
        "client_type": "confidential",
        "redirect_uris": desired.redirect_uris,
        "property_mappings": desired.mappings.iter().filter_map(|m| m.pk.clone()).collect::<Vec<_>>(),
        "signing_key": desired.signing_key.as_ref().map(|(_, pk)| pk),
        "sub_mode": desired.sub_mode,
    });
    if let Some(map) = body.as_object_mut() {
        if let Some(mode) = desired.issuer_mode {
            map.insert("issuer_mode".into(), json!(mode));
        }
        // `.env` is the source of truth once it holds credentials; otherwise authentik
        // generates them and we store its values.
        if let Some(id) = &desired.client_id {
            map.insert("client_id".into(), json!(id));
        }
        if let Some(secret) = &desired.client_secret {
            map.insert("client_secret".into(), json!(secret.expose_secret()));
        }
    }
    body
}

/// Every drift of the authentik side and the `.env` credentials.
pub fn check(
    ctx: &Context,
    svc: &Service<'_>,
    live: &Live<'_>,
    options: &Options,
) -> Result<Vec<Drift>, FlowError> {
    let catalog = live.catalog;
    let mut drifts = Vec::new();
    for spec in mappings_of(svc) {
        let want = mapping_body(svc, spec)?;
        match catalog.scope_mapping_by_name(&spec.name) {
            None => drifts.push(Drift::new(
                format!("scope_mapping.{}", spec.name),
                format!("scope mapping {} missing", spec.name),
                format!("create scope mapping {}", spec.name),
            )),
            Some(have) => {
                let patch = mapping_patch(&want, have);
                if !patch.is_empty() {
                    let fields: Vec<&str> = patch.keys().map(String::as_str).collect();
                    drifts.push(Drift::new(
                        format!("scope_mapping.{}", spec.name),
                        format!(
                            "scope mapping {} differs ({})",
                            spec.name,
                            fields.join(", ")
                        ),
                        format!("update scope mapping {}", spec.name),
                    ));
                }
            }
        }
    }
    let custom = |spec: &ScopeMappingSpec| {
        catalog
            .scope_mapping_by_name(&spec.name)
            .map(|m| m.pk.clone())
    };
    let desired = desired(ctx, svc, catalog, &custom, options)?;

    drifts.extend(application::check(
        &desired.app,
        live.app,
        live.oauth2.map(|p| p.pk),
    ));
    match live.oauth2 {
        None => drifts.push(Drift::new(
            "provider",
            format!("provider {} missing", desired.provider_name),
            format!("create provider {}", desired.provider_name),
        )),
        Some(provider) => {
            drifts.extend(provider_diff(&desired, provider, catalog).0);
            if desired.client_id.is_none() {
                drifts.push(Drift::new(
                    format!("env.{}", desired.id_key),
                    format!("client id missing from .env ({})", desired.id_key),
                    format!("write authentik's client id to .env as {}", desired.id_key),
                ));
            }
            if desired.client_secret.is_none() {
                drifts.push(Drift::new(
                    format!("env.{}", desired.secret_key),
                    format!("client secret missing from .env ({})", desired.secret_key),
                    format!(
                        "write authentik's client secret to .env as {}",
                        desired.secret_key
                    ),
                ));
            }
        }
    }
    Ok(drifts)
}

/// Converge the authentik side and the `.env` credentials. Safe to re-run after a crash at any
/// point: every object is found by its natural key before anything is created.
pub async fn apply(
    ctx: &Context,
    svc: &Service<'_>,
    live: &Live<'_>,
    options: &Options,
) -> Result<Applied, FlowError> {
    let client = &ctx.authentik;
    let catalog = live.catalog;
    let mut applied = Applied::default();
    let slug = svc.package.manifest.slug().to_string();

    application::refuse_foreign(&slug, live.app)?;

    let mut custom_pks: Vec<(String, String)> = Vec::new();
    for spec in mappings_of(svc) {
        let want = mapping_body(svc, spec)?;
        let pk = match catalog.scope_mapping_by_name(&spec.name) {
            None => {
                let created = client
                    .create_scope_mapping(&Value::Object(want))
                    .await
                    .map_err(|source| FlowError::CreateScopeMapping {
                        name: spec.name.clone(),
                        source,
                    })?;
                applied.did(format!("created scope mapping {}", spec.name));
                created.pk
            }
            Some(have) => {
                let patch = mapping_patch(&want, have);
                if !patch.is_empty() {
                    client
                        .patch_scope_mapping(&have.pk, &Value::Object(patch))
                        .await
                        .map_err(|source| FlowError::UpdateScopeMapping {
                            name: spec.name.clone(),
                            source,
                        })?;
                    applied.did(format!("updated scope mapping {}", spec.name));
                }
                have.pk.clone()
            }
        };
        custom_pks.push((spec.name.clone(), pk));
    }
    let custom = |spec: &ScopeMappingSpec| {
        custom_pks
            .iter()
            .find(|(n, _)| *n == spec.name)
            .map(|(_, pk)| pk.clone())
    };
    let desired = desired(ctx, svc, catalog, &custom, options)?;

    let provider = match live.oauth2 {
        None => {
            let created = client
                .create_oauth2_provider(&provider_create_body(&desired))
                .await
                .map_err(|source| FlowError::CreateProvider {
                    name: desired.provider_name.clone(),
                    source,
                })?;
            applied.did(format!("created provider {}", desired.provider_name));
            created
        }
        Some(have) => {
            let (_, patch) = provider_diff(&desired, have, catalog);
            if patch.is_empty() {
                have.clone()
            } else {
                let fields: Vec<String> = patch.keys().cloned().collect();
                let updated = client
                    .patch_oauth2_provider(have.pk, &Value::Object(patch))
                    .await
                    .map_err(|source| FlowError::UpdateProvider {
                        name: desired.provider_name.clone(),
                        source,
                    })?;
                applied.did(format!(
                    "updated provider {} ({})",
                    desired.provider_name,
                    fields.join(", ")
                ));
                updated
            }
        }
    };

    // `.env` holds credentials from now on; take authentik's only for keys it lacks.
    let mut env_changes: Vec<(String, Option<String>)> = Vec::new();
    if desired.client_id.is_none() {
        env_changes.push((desired.id_key.to_string(), Some(provider.client_id.clone())));
    }
    if desired.client_secret.is_none() {
        env_changes.push((
            desired.secret_key.to_string(),
            Some(provider.client_secret.expose_secret().to_owned()),
        ));
    }
    if !env_changes.is_empty() {
        let report = envfile::update_async(ctx.settings.env_path.clone(), env_changes)
            .await
            .map_err(FlowError::WriteEnv)?;
        if !report.changed_keys.is_empty() {
            applied.did(format!("wrote {} to .env", report.changed_keys.join(", ")));
        }
    }

    application::apply(ctx, &desired.app, live.app, provider.pk, &mut applied).await?;
    Ok(applied)
}
