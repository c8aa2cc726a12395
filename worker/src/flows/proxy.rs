//! `proxy`: no native SSO, so an authentik proxy provider guards the service (forward auth by
//! default), attached to an outpost (the embedded one unless `proxy.outpost` names another)
//! and given an application.
//!
//! authentik rewrites the OAuth2 side of a proxy provider on every save (client type, signing
//! key, scope mappings, redirect URIs); those fields are never compared, or fix would loop.

use schemas::manifest::{ProxyMode, ProxySso};
use schemas::{Sso, Template, Var};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use super::application::{self, AppSpec};
use super::or_none;
use super::{Flow, Service, apply_deliveries, check_deliveries, report};
use crate::authentik::{Client, Outpost, ProxyProvider};
use crate::context::Context;
use crate::error::FlowError;
use crate::live::{Catalog, EMBEDDED_OUTPOST, Live, provider_name};
use crate::render::{Extras, Scope};
use crate::report::{Applied, Drift, Report};

pub struct Proxy;

/// An outpost's `providers` is replaced wholesale by every PATCH and authentik offers no add
/// endpoint, so two services attaching at once would lose one update. This serialises the
/// read-modify-write within the process; workers in other processes need the pipeline's
/// cross-process lock on top.
static OUTPOST_LOCK: Mutex<()> = Mutex::const_new(());

fn sso<'a>(svc: &Service<'a>) -> Result<&'a ProxySso, FlowError> {
    match &svc.package.manifest.sso {
        Sso::Proxy(proxy) => Ok(proxy),
        _ => Err(FlowError::WrongFlow {
            kind: svc.package.manifest.kind(),
        }),
    }
}

fn mode_str(mode: ProxyMode) -> &'static str {
    match mode {
        ProxyMode::Proxy => "proxy",
        ProxyMode::ForwardSingle => "forward_single",
        ProxyMode::ForwardDomain => "forward_domain",
    }
}

/// Which outpost serves the provider.
enum OutpostRef {
    Embedded,
    Named(String),
}

impl OutpostRef {
    /// Only a proxy outpost serves proxy providers; authentik does not check the type when a
    /// PATCH leaves it out, so we do.
    fn matches(&self, outpost: &Outpost) -> bool {
        let named = match self {
            OutpostRef::Embedded => outpost
                .managed
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(EMBEDDED_OUTPOST)),
            OutpostRef::Named(name) => outpost.name.eq_ignore_ascii_case(name),
        };
        named && outpost.kind == "proxy"
    }

    fn missing(&self) -> FlowError {
        FlowError::OutpostMissing {
            what: match self {
                OutpostRef::Embedded => format!(
                    "managed as {EMBEDDED_OUTPOST} (is the embedded outpost disabled? name one in sso.proxy.outpost)"
                ),
                OutpostRef::Named(name) => {
                    format!("of type proxy named `{name}` (sso.proxy.outpost)")
                }
            },
        }
    }

    /// A fresh read of the outpost, straight from authentik.
    async fn read(&self, client: &Client) -> Result<Outpost, FlowError> {
        let found = match self {
            OutpostRef::Embedded => client.outposts_where("managed__iexact", EMBEDDED_OUTPOST),
            OutpostRef::Named(name) => client.outposts_where("name__iexact", name),
        }
        .await
        .map_err(FlowError::ReadAuthentik)?;
        found
            .into_iter()
            .find(|o| self.matches(o))
            .ok_or_else(|| self.missing())
    }
}

struct Desired {
    provider_name: String,
    authorization_flow: String,
    invalidation_flow: String,
    mode: &'static str,
    external_host: String,
    /// Only for `mode: proxy`; forward-auth modes ignore it, so it is not compared there.
    internal_host: Option<String>,
    skip_paths: Vec<String>,
    /// Only for `forward_domain`.
    cookie_domain: Option<String>,
    outpost: OutpostRef,
    app: AppSpec,
}

fn render_err(field: &str) -> impl Fn(crate::render::RenderError) -> FlowError + '_ {
    move |e| FlowError::Render {
        field: field.to_owned(),
        problem: e.0,
    }
}

fn desired(ctx: &Context, svc: &Service<'_>, catalog: &Catalog) -> Result<Desired, FlowError> {
    let m = &svc.package.manifest;
    let spec = &sso(svc)?.proxy;
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
    // Domain-level forward auth authenticates at authentik's own host for every service under
    // the cookie domain (authentik's docs); the other modes at the service's host.
    let external_host = match spec.mode {
        ProxyMode::ForwardDomain => scope
            .var(Var::AuthUrl)
            .map_err(render_err("authentik url"))?
            .to_owned(),
        ProxyMode::Proxy | ProxyMode::ForwardSingle => url.clone(),
    };
    let internal_host = match (spec.mode, &spec.internal_url) {
        (ProxyMode::Proxy, Some(template)) => Some(
            scope
                .render(template)
                .map_err(render_err("sso.proxy.internal_url"))?
                .text
                .trim_end_matches('/')
                .to_owned(),
        ),
        (ProxyMode::Proxy, None) => {
            return Err(FlowError::Render {
                field: "sso.proxy.internal_url".into(),
                problem: "required when mode is `proxy`".into(),
            });
        }
        _ => None,
    };
    let cookie_domain = match spec.mode {
        ProxyMode::ForwardDomain => {
            let default = Template::parse("${DOMAIN}").map_err(|problem| FlowError::Render {
                field: "sso.proxy.cookie_domain".into(),
                problem,
            })?;
            let template = spec.cookie_domain.as_ref().unwrap_or(&default);
            Some(
                scope
                    .render(template)
                    .map_err(render_err("sso.proxy.cookie_domain"))?
                    .text,
            )
        }
        _ => None,
    };
    let flow_pk = |slug: &schemas::Slug| {
        catalog
            .flow_by_slug(slug.as_str())
            .map(|f| f.pk.clone())
            .ok_or_else(|| FlowError::FlowMissing {
                slug: slug.to_string(),
            })
    };
    let flows = m.flows();
    Ok(Desired {
        provider_name: provider_name(m),
        authorization_flow: flow_pk(&flows.authorization)?,
        invalidation_flow: flow_pk(&flows.invalidation)?,
        mode: mode_str(spec.mode),
        external_host,
        internal_host,
        skip_paths: spec.skip_path_regex.clone(),
        cookie_domain,
        outpost: spec
            .outpost
            .clone()
            .map_or(OutpostRef::Embedded, OutpostRef::Named),
        app: AppSpec {
            slug: m.slug().to_string(),
            name: crate::authentik::stored_text(m.display_name()),
            owns_name: m.display_name.is_some(),
            launch_url: format!("{url}/"),
            provider_name: provider_name(m),
        },
    })
}

/// authentik keeps the regexes as one newline-separated string.
fn skip_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn provider_diff(
    desired: &Desired,
    have: &ProxyProvider,
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
    if desired.mode != have.mode {
        differ(
            "mode",
            format!(
                "mode mismatch: want {}, authentik has {}",
                desired.mode,
                or_none(&have.mode)
            ),
            json!(desired.mode),
        );
    }
    if desired.external_host.trim_end_matches('/') != have.external_host.trim_end_matches('/') {
        differ(
            "external_host",
            format!(
                "external host mismatch: want {}, authentik has {}",
                desired.external_host,
                or_none(&have.external_host)
            ),
            json!(desired.external_host),
        );
    }
    if let Some(internal) = &desired.internal_host
        && internal.trim_end_matches('/') != have.internal_host.trim_end_matches('/')
    {
        differ(
            "internal_host",
            format!(
                "internal host mismatch: want {internal}, authentik has {}",
                or_none(&have.internal_host)
            ),
            json!(internal),
        );
    }
    let have_paths = skip_lines(&have.skip_path_regex);
    if desired.skip_paths != have_paths {
        let missing: Vec<&str> = desired
            .skip_paths
            .iter()
            .filter(|p| !have_paths.contains(p))
            .map(String::as_str)
            .collect();
        let extra: Vec<&str> = have_paths
            .iter()
            .filter(|p| !desired.skip_paths.contains(p))
            .map(String::as_str)
            .collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing {}", missing.join(" ")));
        }
        if !extra.is_empty() {
            parts.push(format!("unexpected {}", extra.join(" ")));
        }
        if parts.is_empty() {
            parts.push("order differs".into());
        }
        differ(
            "skip_path_regex",
            format!("unauthenticated paths differ: {}", parts.join("; ")),
            json!(desired.skip_paths.join("\n")),
        );
    }
    if let Some(domain) = &desired.cookie_domain
        && *domain != have.cookie_domain
    {
        differ(
            "cookie_domain",
            format!(
                "cookie domain mismatch: want {domain}, authentik has {}",
                or_none(&have.cookie_domain)
            ),
            json!(domain),
        );
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
    // authentik's validation reads `mode` (default `proxy`) and `internal_host` from the
    // submitted body only: without them any PATCH of a forward-auth provider is refused.
    if !patch.is_empty() {
        patch.insert("mode".into(), json!(desired.mode));
        if let Some(internal) = &desired.internal_host {
            patch.insert("internal_host".into(), json!(internal));
        }
    }
    (drifts, patch)
}

fn provider_create_body(desired: &Desired) -> Value {
    let mut body = json!({
        "name": desired.provider_name,
        "authorization_flow": desired.authorization_flow,
        "invalidation_flow": desired.invalidation_flow,
        "mode": desired.mode,
        "external_host": desired.external_host,
        "skip_path_regex": desired.skip_paths.join("\n"),
    });
    if let Some(map) = body.as_object_mut() {
        if let Some(internal) = &desired.internal_host {
            map.insert("internal_host".into(), json!(internal));
        }
        if let Some(domain) = &desired.cookie_domain {
            map.insert("cookie_domain".into(), json!(domain));
        }
    }
    body
}

/// Add the provider to the outpost, keeping every provider already there.
async fn attach(
    client: &Client,
    desired: &Desired,
    provider_pk: i64,
    applied: &mut Applied,
) -> Result<(), FlowError> {
    let _guard = OUTPOST_LOCK.lock().await;
    // Re-read under the lock: the list may have changed since the job's snapshot.
    let outpost = desired.outpost.read(client).await?;
    if outpost.providers.contains(&provider_pk) {
        return Ok(());
    }
    let mut providers = outpost.providers.clone();
    providers.push(provider_pk);
    client
        .patch_outpost(&outpost.pk, &json!({ "providers": providers }))
        .await
        .map_err(|source| FlowError::AttachOutpost {
            provider: desired.provider_name.clone(),
            outpost: outpost.name.clone(),
            source,
        })?;
    applied.did(format!(
        "added provider {} to outpost {}",
        desired.provider_name, outpost.name
    ));
    Ok(())
}

impl Flow for Proxy {
    async fn check(
        &self,
        ctx: &Context,
        svc: &Service<'_>,
        live: &Live<'_>,
    ) -> Result<Report, FlowError> {
        let desired = desired(ctx, svc, live.catalog)?;
        let mut drifts = application::check(&desired.app, live.app, live.proxy.map(|p| p.pk));
        let outpost = live
            .outposts
            .iter()
            .find(|o| desired.outpost.matches(o))
            .ok_or_else(|| desired.outpost.missing())?;
        match live.proxy {
            None => {
                drifts.push(Drift::new(
                    "provider",
                    format!("provider {} missing", desired.provider_name),
                    format!("create provider {}", desired.provider_name),
                ));
                // `fix` puts the provider it creates on the outpost: `plan` lists that too.
                drifts.push(Drift::new(
                    "outpost.providers",
                    format!(
                        "provider {} is not in outpost {} (missing)",
                        desired.provider_name, outpost.name
                    ),
                    format!(
                        "add provider {} to outpost {} once created",
                        desired.provider_name, outpost.name
                    ),
                ));
            }
            Some(provider) => {
                drifts.extend(provider_diff(&desired, provider, live.catalog).0);
                if !outpost.providers.contains(&provider.pk) {
                    drifts.push(Drift::new(
                        "outpost.providers",
                        format!(
                            "provider {} is not in outpost {}",
                            desired.provider_name, outpost.name
                        ),
                        format!(
                            "add provider {} to outpost {}",
                            desired.provider_name, outpost.name
                        ),
                    ));
                }
            }
        }
        drifts.extend(check_deliveries(ctx, svc, &Extras::default()).await?);
        Ok(report(
            svc,
            "authentik app present, outpost serves it",
            drifts,
        ))
    }

    async fn apply(
        &self,
        ctx: &Context,
        svc: &Service<'_>,
        live: &Live<'_>,
    ) -> Result<Applied, FlowError> {
        let client = &ctx.authentik;
        let mut applied = Applied::default();
        application::refuse_foreign(svc.package.manifest.slug().as_str(), live.app)?;
        let desired = desired(ctx, svc, live.catalog)?;
        // A provider no outpost serves is useless: refuse before creating anything.
        if !live.outposts.iter().any(|o| desired.outpost.matches(o)) {
            return Err(desired.outpost.missing());
        }
        let provider_pk = match live.proxy {
            None => {
                let created = client
                    .create_proxy_provider(&provider_create_body(&desired))
                    .await
                    .map_err(|source| FlowError::CreateProvider {
                        name: desired.provider_name.clone(),
                        source,
                    })?;
                applied.did(format!("created provider {}", desired.provider_name));
                created.pk
            }
            Some(have) => {
                let (drifts, patch) = provider_diff(&desired, have, live.catalog);
                if !drifts.is_empty() {
                    let fields: Vec<&str> = drifts
                        .iter()
                        .filter_map(|d| d.field.strip_prefix("provider."))
                        .collect();
                    client
                        .patch_proxy_provider(have.pk, &Value::Object(patch))
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
        let attached = live
            .outposts
            .iter()
            .any(|o| desired.outpost.matches(o) && o.providers.contains(&provider_pk));
        if !attached {
            attach(client, &desired, provider_pk, &mut applied).await?;
        }
        apply_deliveries(ctx, svc, &Extras::default(), &mut applied).await?;
        Ok(applied)
    }
}
