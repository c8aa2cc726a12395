//! `saml`: a SAML provider (ACS URL, audience, explicit issuer, bindings, signing keypair), the
//! SAML property mappings the service needs, and the application. The IdP certificate and
//! URLs reach the service through its deliveries (Zammad: its settings API).
//!
//! `check` never reads the certificate itself: authentik logs a `secret_view` event for every
//! `view_certificate` call. It compares the fingerprint of the certificate the service holds
//! with `fingerprint_sha256` of the keypair authentik signs with, taken from the keypair list.
//! Only add and fix read the PEM, and only when a delivery needs rewriting.

use std::collections::BTreeSet;

use schemas::manifest::{SamlBinding, SamlMappingSpec, SamlSpec, SamlSso};
use schemas::{Delivery, Part, Sso, Var};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::application::{self, AppSpec};
use super::or_none;
use super::{Flow, Service, apply_deliveries, check_deliveries, report};
use crate::authentik::{CertificateKeyPair, SamlPropertyMapping, SamlProvider};
use crate::context::Context;
use crate::error::FlowError;
use crate::live::{Catalog, Live, provider_name};
use crate::render::{Extras, Scope};
use crate::report::{Applied, Drift, Report};

pub struct Saml;

/// Warn when the signing certificate ends within this many days.
const EXPIRY_WARNING_DAYS: i64 = 30;

/// `managed` prefix of authentik's SAML property mappings (`…/upn`, `…/email`, …).
const MANAGED_SAML_PREFIX: &str = "goauthentik.io/providers/saml/";

fn sso<'a>(svc: &Service<'a>) -> Result<&'a SamlSso, FlowError> {
    match &svc.package.manifest.sso {
        Sso::Saml(saml) => Ok(saml),
        _ => Err(FlowError::WrongFlow {
            kind: svc.package.manifest.kind(),
        }),
    }
}

fn binding(binding: SamlBinding) -> &'static str {
    match binding {
        SamlBinding::Redirect => "redirect",
        SamlBinding::Post => "post",
    }
}

/// A mapping the provider must carry, by its name (shown to operators) and pk (when it exists).
struct WantMapping {
    label: String,
    pk: Option<String>,
}

struct Desired {
    provider_name: String,
    authorization_flow: String,
    invalidation_flow: String,
    acs_url: String,
    audience: String,
    issuer: String,
    sls_url: String,
    sp_binding: &'static str,
    sls_binding: &'static str,
    signing_key: String,
    signing: CertificateKeyPair,
    sign_assertion: bool,
    sign_response: bool,
    mappings: Vec<WantMapping>,
    name_id_mapping: Option<WantMapping>,
    name_id_policy: &'static str,
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
    custom_pk: &dyn Fn(&str) -> Option<String>,
) -> Result<Desired, FlowError> {
    let m = &svc.package.manifest;
    let sso = sso(svc)?;
    let spec: &SamlSpec = &sso.saml;
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
    let issuer = match &spec.issuer {
        Some(template) => {
            scope
                .render(template)
                .map_err(render_err("sso.saml.issuer"))?
                .text
        }
        None => scope
            .var(Var::AuthSamlMetadata)
            .map_err(render_err("sso.saml.issuer"))?
            .to_owned(),
    };
    let flow_pk = |slug: &schemas::Slug| {
        catalog
            .flow_by_slug(slug.as_str())
            .map(|f| f.pk.clone())
            .ok_or_else(|| FlowError::FlowMissing {
                slug: slug.to_string(),
            })
    };
    let custom: BTreeSet<&str> = sso.mappings.iter().map(|s| s.name.as_str()).collect();
    let mut mappings = Vec::new();
    for (i, name) in spec.attributes.iter().enumerate() {
        if custom.contains(name.as_str()) {
            mappings.push(WantMapping {
                label: name.clone(),
                pk: custom_pk(name),
            });
            continue;
        }
        let managed = format!("{MANAGED_SAML_PREFIX}{name}");
        match catalog.saml_mapping_by_managed(&managed) {
            Some(found) => mappings.push(WantMapping {
                label: found.name.clone(),
                pk: Some(found.pk.clone()),
            }),
            None if is_managed_name(name) => {
                return Err(FlowError::SamlMappingMissing { managed });
            }
            None => {
                return Err(FlowError::Render {
                    field: format!("sso.saml.attributes[{i}]"),
                    problem: format!(
                        "`{name}` is neither a mapping in sso.mappings nor one of authentik's SAML mappings"
                    ),
                });
            }
        }
    }
    let name_id_mapping = spec.name_id_mapping.as_ref().map(|name| WantMapping {
        label: name.clone(),
        pk: custom_pk(name),
    });
    let signing = catalog
        .keypair_by_name(&spec.signing_key)
        .cloned()
        .ok_or_else(|| FlowError::KeypairMissing {
            name: spec.signing_key.clone(),
        })?;
    let flows = m.flows();
    Ok(Desired {
        provider_name: provider_name(m),
        authorization_flow: flow_pk(&flows.authorization)?,
        invalidation_flow: flow_pk(&flows.invalidation)?,
        acs_url: format!("{url}{}", spec.acs_path),
        audience: spec
            .audience_path
            .as_ref()
            .map(|p| format!("{url}{p}"))
            .unwrap_or_default(),
        issuer,
        sls_url: spec
            .sls_path
            .as_ref()
            .map(|p| format!("{url}{p}"))
            .unwrap_or_default(),
        sp_binding: binding(spec.sp_binding),
        sls_binding: binding(spec.sls_binding),
        signing_key: spec.signing_key.clone(),
        signing,
        sign_assertion: spec.sign_assertion,
        sign_response: spec.sign_response,
        mappings,
        name_id_mapping,
        name_id_policy: spec.name_id_policy.urn(),
        app: AppSpec {
            slug: m.slug().to_string(),
            name: crate::authentik::stored_text(m.display_name()),
            owns_name: m.display_name.is_some(),
            launch_url: format!("{url}/"),
            provider_name: provider_name(m),
        },
    })
}

fn is_managed_name(name: &str) -> bool {
    schemas::manifest::MANAGED_SAML_MAPPINGS.contains(&name)
}

// --- custom property mappings ----------------------------------------------------------------

fn expression(svc: &Service<'_>, spec: &SamlMappingSpec) -> Result<String, FlowError> {
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

fn mapping_body(
    svc: &Service<'_>,
    spec: &SamlMappingSpec,
) -> Result<Map<String, Value>, FlowError> {
    let mut body = Map::new();
    body.insert("name".into(), json!(spec.name));
    body.insert("saml_name".into(), json!(spec.saml_name));
    body.insert("friendly_name".into(), json!(spec.friendly_name));
    body.insert("expression".into(), json!(expression(svc, spec)?));
    Ok(crate::authentik::stored_body(body))
}

fn mapping_patch(want: &Map<String, Value>, have: &SamlPropertyMapping) -> Map<String, Value> {
    let current = json!({
        "name": have.name,
        "saml_name": have.saml_name,
        "friendly_name": have.friendly_name,
        "expression": have.expression,
    });
    want.iter()
        .filter(|(k, v)| current.get(k.as_str()) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

// --- the provider ------------------------------------------------------------------------------

/// Drifts of the provider, and the PATCH body that repairs them (only differing fields).
fn provider_diff(
    desired: &Desired,
    have: &SamlProvider,
    catalog: &Catalog,
) -> (Vec<Drift>, Map<String, Value>) {
    let mut drifts = Vec::new();
    let mut patch = Map::new();
    let name = &desired.provider_name;
    let mut differ = |field: &str, message: String, value: Value| {
        drifts.push(Drift::new(
            format!("provider.{field}"),
            message,
            format!("set {field} on provider {name}"),
        ));
        patch.insert(field.to_owned(), value);
    };
    let strings = [
        ("acs_url", "ACS URL", &desired.acs_url, &have.acs_url),
        ("audience", "audience", &desired.audience, &have.audience),
        ("issuer", "issuer", &desired.issuer, &have.issuer),
        ("sls_url", "SLS URL", &desired.sls_url, &have.sls_url),
    ];
    for (field, label, want, has) in strings {
        if want != has {
            differ(
                field,
                format!(
                    "{label} mismatch: want {}, authentik has {}",
                    or_none(want),
                    or_none(has)
                ),
                json!(want),
            );
        }
    }
    for (field, label, want, has) in [
        (
            "sp_binding",
            "SP binding",
            desired.sp_binding,
            &have.sp_binding,
        ),
        (
            "sls_binding",
            "SLS binding",
            desired.sls_binding,
            &have.sls_binding,
        ),
        (
            "default_name_id_policy",
            "NameID policy",
            desired.name_id_policy,
            &have.default_name_id_policy,
        ),
    ] {
        if want != has {
            differ(
                field,
                format!("{label} mismatch: want {want}, authentik has {has}"),
                json!(want),
            );
        }
    }
    if desired.authorization_flow != have.authorization_flow {
        differ(
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
    let want_set: BTreeSet<&str> = desired
        .mappings
        .iter()
        .filter_map(|m| m.pk.as_deref())
        .collect();
    let have_set: BTreeSet<&str> = have.property_mappings.iter().map(String::as_str).collect();
    let missing: Vec<&str> = desired
        .mappings
        .iter()
        .filter(|m| m.pk.as_deref().is_none_or(|pk| !have_set.contains(pk)))
        .map(|m| m.label.as_str())
        .collect();
    let extra: Vec<String> = have_set
        .difference(&want_set)
        .map(|pk| catalog.saml_mapping_label(pk))
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing property mappings: {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            parts.push(format!(
                "unexpected property mappings: {}",
                extra.join(", ")
            ));
        }
        differ("property_mappings", parts.join("; "), json!(want_set));
    }
    let want_name_id = desired.name_id_mapping.as_ref();
    let name_id_differs = match (want_name_id, have.name_id_mapping.as_deref()) {
        (None, None) => false,
        (Some(want), Some(has)) => want.pk.as_deref() != Some(has),
        _ => true,
    };
    if name_id_differs {
        differ(
            "name_id_mapping",
            format!(
                "NameID mapping mismatch: want {}, authentik has {}",
                want_name_id.map_or("none", |m| m.label.as_str()),
                have.name_id_mapping
                    .as_deref()
                    .map_or_else(|| "none".into(), |pk| catalog.saml_mapping_label(pk))
            ),
            json!(want_name_id.and_then(|m| m.pk.clone())),
        );
    }
    let signing_differs = have.signing_kp.as_deref() != Some(desired.signing.pk.as_str());
    if signing_differs {
        differ(
            "signing_kp",
            format!(
                "signing keypair mismatch: want {}, authentik has {}",
                desired.signing_key,
                have.signing_kp
                    .as_deref()
                    .map_or_else(|| "none".into(), |pk| catalog.keypair_name(pk))
            ),
            json!(desired.signing.pk),
        );
    }
    for (field, want, has) in [
        (
            "sign_assertion",
            desired.sign_assertion,
            have.sign_assertion,
        ),
        ("sign_response", desired.sign_response, have.sign_response),
    ] {
        if want != has {
            differ(
                field,
                format!("{field} mismatch: want {want}, authentik has {has}"),
                json!(want),
            );
        }
    }
    // authentik validates the submitted body: `signing_kp` needs a sign flag beside it, and a
    // sign flag alone is judged without the stored keypair. Send the three together.
    if ["signing_kp", "sign_assertion", "sign_response"]
        .iter()
        .any(|k| patch.contains_key(*k))
    {
        patch.insert("signing_kp".into(), json!(desired.signing.pk));
        patch.insert("sign_assertion".into(), json!(desired.sign_assertion));
        patch.insert("sign_response".into(), json!(desired.sign_response));
    }
    (drifts, patch)
}

fn provider_create_body(desired: &Desired) -> Value {
    json!({
        "name": desired.provider_name,
        "authorization_flow": desired.authorization_flow,
        "invalidation_flow": desired.invalidation_flow,
        "acs_url": desired.acs_url,
        "audience": desired.audience,
        "issuer": desired.issuer,
        "sls_url": desired.sls_url,
        "sp_binding": desired.sp_binding,
        "sls_binding": desired.sls_binding,
        "signing_kp": desired.signing.pk,
        "sign_assertion": desired.sign_assertion,
        "sign_response": desired.sign_response,
        "property_mappings": desired.mappings.iter().filter_map(|m| m.pk.clone()).collect::<Vec<_>>(),
        "name_id_mapping": desired.name_id_mapping.as_ref().and_then(|m| m.pk.clone()),
        "default_name_id_policy": desired.name_id_policy,
    })
}

// --- the signing certificate -------------------------------------------------------------------

/// Whether a delivery hands the service the certificate (so checks compare fingerprints).
fn delivers_certificate(svc: &Service<'_>) -> bool {
    fn holds(value: &Value) -> bool {
        match value {
            Value::String(s) => schemas::Template::parse(s)
                .is_ok_and(|t| t.parts() == [Part::Var(Var::AuthSamlCertPem)]),
            Value::Array(items) => items.iter().any(holds),
            Value::Object(map) => map.values().any(holds),
            _ => false,
        }
    }
    svc.package.manifest.deliveries().iter().any(|d| match d {
        Delivery::Http(http) => http.settings.values().any(holds),
        _ => false,
    })
}

/// A warning when the certificate ends within [`EXPIRY_WARNING_DAYS`] (or has ended): rotating
/// a keypair is the operator's call, so it is not drift.
fn expiry_warning(keypair: &CertificateKeyPair, now: OffsetDateTime) -> Option<String> {
    let expiry = keypair.cert_expiry.as_deref()?;
    let at = OffsetDateTime::parse(expiry, &Rfc3339).ok()?;
    let days = (at - now).whole_days();
    let date = at.date();
    let count = |n: i64| {
        if n == 1 {
            "1 day".to_owned()
        } else {
            format!("{n} days")
        }
    };
    if at <= now {
        Some(format!(
            "signing certificate {} expired {} ago ({date})",
            keypair.name,
            count(-days)
        ))
    } else if days < EXPIRY_WARNING_DAYS {
        Some(format!(
            "signing certificate {} expires in {} ({date})",
            keypair.name,
            count(days)
        ))
    } else {
        None
    }
}

/// The keypair authentik signs this service's assertions with: the live provider's, or, before
/// the provider exists, the one it will be created with.
fn signing_keypair<'c>(
    live: &Live<'c>,
    desired: &'c Desired,
    catalog: &'c Catalog,
) -> Option<&'c CertificateKeyPair> {
    match live.saml {
        Some(provider) => provider
            .signing_kp
            .as_deref()
            .and_then(|pk| catalog.keypair(pk)),
        None => Some(&desired.signing),
    }
}

fn fingerprint_extras(keypair: Option<&CertificateKeyPair>) -> Extras {
    Extras {
        saml_cert_pem: None,
        saml_cert_fingerprint: keypair.and_then(|k| k.fingerprint_sha256.clone()),
    }
}

impl Flow for Saml {
    async fn check(
        &self,
        ctx: &Context,
        svc: &Service<'_>,
        live: &Live<'_>,
    ) -> Result<Report, FlowError> {
        let catalog = live.catalog;
        let mut drifts = Vec::new();
        for spec in &sso(svc)?.mappings {
            let want = mapping_body(svc, spec)?;
            match catalog.saml_mapping_by_name(&spec.name) {
                None => drifts.push(Drift::new(
                    format!("saml_mapping.{}", spec.name),
                    format!("SAML property mapping {} missing", spec.name),
                    format!("create SAML property mapping {}", spec.name),
                )),
                Some(have) => {
                    let patch = mapping_patch(&want, have);
                    if !patch.is_empty() {
                        let fields: Vec<&str> = patch.keys().map(String::as_str).collect();
                        drifts.push(Drift::new(
                            format!("saml_mapping.{}", spec.name),
                            format!(
                                "SAML property mapping {} differs ({})",
                                spec.name,
                                fields.join(", ")
                            ),
                            format!("update SAML property mapping {}", spec.name),
                        ));
                    }
                }
            }
        }
        let custom = |name: &str| catalog.saml_mapping_by_name(name).map(|m| m.pk.clone());
        let desired = desired(ctx, svc, catalog, &custom)?;
        drifts.extend(application::check(
            &desired.app,
            live.app,
            live.saml.map(|p| p.pk),
        ));
        match live.saml {
            None => drifts.push(Drift::new(
                "provider",
                format!("provider {} missing", desired.provider_name),
                format!("create provider {}", desired.provider_name),
            )),
            Some(provider) => drifts.extend(provider_diff(&desired, provider, catalog).0),
        }
        let signing = signing_keypair(live, &desired, catalog);
        let mut delivered = check_deliveries(ctx, svc, &fingerprint_extras(signing)).await?;
        // authentik signs with another keypair than the manifest's: `fix` restores the
        // provider's, and writes the certificate to the service only if the service does not
        // already hold the manifest's. A mismatch that restoring fixes is still drift (logins
        // fail now), but its remedy must not promise a write `fix` will not make.
        if signing.is_some_and(|kp| kp.pk != desired.signing.pk) {
            let after_fix =
                check_deliveries(ctx, svc, &fingerprint_extras(Some(&desired.signing))).await?;
            for drift in &mut delivered {
                if !after_fix.iter().any(|d| d.field == drift.field) {
                    drift.remedy = format!(
                        "nothing to write: the service holds {}'s certificate, which the provider signs with again once restored",
                        desired.signing.name
                    );
                }
            }
        }
        drifts.extend(delivered);
        let summary = if delivers_certificate(svc) {
            "authentik app present, signing cert matches"
        } else {
            "authentik app present, ACS and audience match"
        };
        let mut report = report(svc, summary, drifts);
        report
            .warnings
            .extend(signing.and_then(|kp| expiry_warning(kp, OffsetDateTime::now_utc())));
        Ok(report)
    }

    async fn apply(
        &self,
        ctx: &Context,
        svc: &Service<'_>,
        live: &Live<'_>,
    ) -> Result<Applied, FlowError> {
        let client = &ctx.authentik;
        let catalog = live.catalog;
        let mut applied = Applied::default();
        application::refuse_foreign(svc.package.manifest.slug().as_str(), live.app)?;

        let mut custom_pks: Vec<(String, String)> = Vec::new();
        for spec in &sso(svc)?.mappings {
            let want = mapping_body(svc, spec)?;
            let pk = match catalog.saml_mapping_by_name(&spec.name) {
                None => {
                    let created = client
                        .create_saml_property_mapping(&Value::Object(want))
                        .await
                        .map_err(|source| FlowError::CreateSamlMapping {
                            name: spec.name.clone(),
                            source,
                        })?;
                    applied.did(format!("created SAML property mapping {}", spec.name));
                    created.pk
                }
                Some(have) => {
                    let patch = mapping_patch(&want, have);
                    if !patch.is_empty() {
                        client
                            .patch_saml_property_mapping(&have.pk, &Value::Object(patch))
                            .await
                            .map_err(|source| FlowError::UpdateSamlMapping {
                                name: spec.name.clone(),
                                source,
                            })?;
                        applied.did(format!("updated SAML property mapping {}", spec.name));
                    }
                    have.pk.clone()
                }
            };
            custom_pks.push((spec.name.clone(), pk));
        }
        let custom = |name: &str| {
            custom_pks
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, pk)| pk.clone())
        };
        let desired = desired(ctx, svc, catalog, &custom)?;

        let provider_pk = match live.saml {
            None => {
                let created = client
                    .create_saml_provider(&provider_create_body(&desired))
                    .await
                    .map_err(|source| FlowError::CreateProvider {
                        name: desired.provider_name.clone(),
                        source,
                    })?;
                applied.did(format!("created provider {}", desired.provider_name));
                created.pk
            }
            Some(have) => {
                let (_, patch) = provider_diff(&desired, have, catalog);
                if !patch.is_empty() {
                    let fields: Vec<String> = patch.keys().cloned().collect();
                    client
                        .patch_saml_provider(have.pk, &Value::Object(patch))
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
                }
                have.pk
            }
        };
        application::apply(ctx, &desired.app, live.app, provider_pk, &mut applied).await?;

        // authentik now signs with the desired keypair. Read its PEM only when a delivery is
        // actually out of date: every read is a `secret_view` event in authentik.
        let fingerprint_only = fingerprint_extras(Some(&desired.signing));
        if check_deliveries(ctx, svc, &fingerprint_only)
            .await?
            .is_empty()
        {
            return Ok(applied);
        }
        let mut extras = fingerprint_only;
        if delivers_certificate(svc) {
            let pem = client
                .view_certificate(&desired.signing.pk)
                .await
                .map_err(|source| FlowError::ViewCertificate {
                    name: desired.signing_key.clone(),
                    source,
                })?;
            extras.saml_cert_pem = Some(pem);
        }
        apply_deliveries(ctx, svc, &extras, &mut applied).await?;
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair(expiry: &str) -> CertificateKeyPair {
        CertificateKeyPair {
            pk: "kp".into(),
            name: "signer".into(),
            fingerprint_sha256: None,
            cert_expiry: Some(expiry.into()),
            managed: None,
        }
    }

    #[test]
    fn certificates_ending_within_thirty_days_warn() {
        let now = OffsetDateTime::parse("2026-03-01T00:00:00Z", &Rfc3339).expect("time");
        assert_eq!(expiry_warning(&keypair("2026-06-01T00:00:00Z"), now), None);
        assert_eq!(
            expiry_warning(&keypair("2026-03-11T00:00:00Z"), now).as_deref(),
            Some("signing certificate signer expires in 10 days (2026-03-11)")
        );
        assert_eq!(
            expiry_warning(&keypair("2026-02-27T12:00:00Z"), now).as_deref(),
            Some("signing certificate signer expired 1 day ago (2026-02-27)")
        );
        assert_eq!(expiry_warning(&keypair("not a date"), now), None);
    }
}
