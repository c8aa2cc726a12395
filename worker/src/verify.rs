//! `verify`: walk the path a user's login takes, with the values the *service* holds, against
//! authentik's protocol endpoints at the public URL — not only compare fields through the API.
//!
//! - oauth / oidc / wikijs / frappe: the discovery document at the issuer the service was given
//!   answers and names that issuer; the JWKS holds the key the provider signs with; a
//!   `client_credentials` grant with the client id and secret from `.env` returns a token
//!   (authentik answers a wrong secret with `invalid_grant`; it also creates a service-account
//!   user for the provider on first use of this grant); and each redirect URI the service sends
//!   is one the provider accepts (`strict`: exact, `regex`: full match).
//! - saml: the IdP metadata answers and its signing certificate is the one the service trusts
//!   (read back through the service's deliveries, as `check` does).
//! - oauth / oidc also compare what was delivered to the service with what it should hold now
//!   (the same comparison `check` makes): an `exec` or file delivery that never ran after a
//!   rotation means the service still sends the old secret. wikijs / frappe read the client id
//!   and secret back from the service itself (its strategy / `Social Login Key`) and compare
//!   them with authentik's.
//! - proxy: with an outpost URL configured (`PMA_SSO_OUTPOST_URL`, e.g. the authentik server
//!   for the embedded outpost), an anonymous request to its Traefik forward-auth endpoint
//!   `/outpost.goauthentik.io/auth/traefik` for the service's external host must be redirected
//!   (authentik's outpost answers `307` to `<proto>://<host>/outpost.goauthentik.io/start`,
//!   which starts the login at authentik). An outpost that does not serve the host answers
//!   `400` "no app for hostname". Without the setting: "not probed: no outpost URL configured".
//!
//! A probe that fails is drift (a red line with the reason), never an error: errors are kept for
//! what stops the probe from being made at all (the manifest, `.env`, the authentik API).
//!
//! Settings (process environment first, then `.env`, read at every run): `PMA_SSO_OUTPOST_URL`,
//! and `PMA_SSO_PROBE` for the sweep (see [`ProbeSetting`]).

use schemas::{SsoKind, Var};
use serde_json::Value;

use crate::authentik::RedirectUri;
use crate::context::{Context, ServiceResult};
use crate::deliver::{pem_fingerprint, same_fingerprint};
use crate::envfile::EnvFile;
use crate::error::FlowError;
use crate::flows::{self, Service};
use crate::live::{Live, Snapshot};
use crate::render::{Extras, Scope};
use crate::report::{Drift, Report};

/// Verify one service.
pub async fn verify(ctx: &Context, name: &str) -> Result<Report, FlowError> {
    let package = ctx.package(name)?;
    let snapshot = Snapshot::fetch_for(&ctx.authentik, &package.manifest)
        .await
        .map_err(FlowError::ReadAuthentik)?;
    verify_with(ctx, &package, &snapshot).await
}

/// Verify every service from one bulk read of authentik. A broken manifest is that service's
/// error and hides no other.
pub async fn verify_all(ctx: &Context) -> Result<Vec<ServiceResult>, FlowError> {
    verify_some(ctx, ctx.service_names()?).await
}

/// Verify the named services from one bulk read of authentik.
pub async fn verify_some(
    ctx: &Context,
    names: Vec<String>,
) -> Result<Vec<ServiceResult>, FlowError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let slugs: Vec<String> = names
        .iter()
        .filter_map(|n| ctx.package(n).ok())
        .map(|p| p.manifest.slug().to_string())
        .collect();
    let snapshot = Snapshot::fetch_all_for(&ctx.authentik, &slugs, ctx.settings.least_privilege)
        .await
        .map_err(FlowError::ReadAuthentik)?;
    let mut results = Vec::with_capacity(names.len());
    for name in names {
        let outcome = match ctx.package(&name) {
            Ok(package) => verify_with(ctx, &package, &snapshot).await,
            Err(e) => Err(e),
        };
        results.push(ServiceResult {
            service: name,
            outcome,
        });
    }
    Ok(results)
}

async fn verify_with(
    ctx: &Context,
    package: &schemas::Package,
    snapshot: &Snapshot,
) -> Result<Report, FlowError> {
    let env = EnvFile::read(&ctx.settings.env_path).map_err(FlowError::ReadEnv)?;
    let svc = Service { package, env: &env };
    let live = snapshot.live(&package.manifest);
    let kind = package.manifest.kind();
    let mut unverified = Vec::new();
    let (summary, drifts) = match kind {
        SsoKind::Oauth | SsoKind::Oidc | SsoKind::Wikijs | SsoKind::Frappe => {
            let mut drifts = oauth2(ctx, &svc, &live).await?;
            drifts.extend(service_holds(ctx, &svc, &live, &mut unverified).await?);
            (
                "login path works: discovery, JWKS, token grant, redirects accepted",
                drifts,
            )
        }
        SsoKind::Saml => (
            "login path works: IdP metadata, signing cert trusted, the service's SAML settings match",
            saml(ctx, &svc, &live, &mut unverified).await?,
        ),
        SsoKind::Proxy => match setting(&env, OUTPOST_URL) {
            None => {
                unverified.push(format!("no outpost URL configured ({OUTPOST_URL})"));
                ("", Vec::new())
            }
            Some(outpost) => (
                "login path works: the outpost redirects an anonymous request to log in",
                proxy(ctx, &svc, &live, &outpost, &mut unverified).await?,
            ),
        },
    };
    Ok(Report {
        service: package.manifest.name.to_string(),
        kind,
        summary: summary.to_owned(),
        drifts,
        warnings: Vec::new(),
        objects: Default::default(),
        unverified,
    })
}

/// Why a service with no `deliver:` block cannot be verified on its side.
fn nothing_delivered() -> String {
    "no deliveries to read back (the manifest has no `deliver:` block, so nothing shows what the service was told)".to_owned()
}

/// Where the outpost that guards proxy services answers (for the embedded outpost: the
/// authentik server, e.g. `http://server:9000`).
pub const OUTPOST_URL: &str = "PMA_SSO_OUTPOST_URL";
/// Which services a sweep also verifies.
pub const PROBE: &str = "PMA_SSO_PROBE";

/// A setting: the process environment first, then `.env` (empty counts as unset).
fn setting(env: &EnvFile, key: &str) -> Option<String> {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| env.get(key).filter(|v| !v.is_empty()).map(str::to_owned))
}

/// `PMA_SSO_PROBE`: which services a sweep also verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeSetting {
    /// Unset or `manifest`: the services whose manifest says `probe: true`.
    Manifest,
    /// `all`: every service.
    All,
    /// `none`: no service, whatever the manifests say.
    Off,
}

impl ProbeSetting {
    pub fn parse(value: Option<&str>) -> Result<ProbeSetting, String> {
        match value.map(str::trim) {
            None | Some("" | "manifest") => Ok(ProbeSetting::Manifest),
            Some("all") => Ok(ProbeSetting::All),
            Some("none") => Ok(ProbeSetting::Off),
            Some(other) => Err(format!(
                "{PROBE} is `{other}`; expected `all`, `manifest` or `none`"
            )),
        }
    }

    /// Read it now (process environment, then `.env`).
    pub fn read(ctx: &Context) -> Result<ProbeSetting, FlowError> {
        let env = EnvFile::read(&ctx.settings.env_path).map_err(FlowError::ReadEnv)?;
        Self::parse(setting(&env, PROBE).as_deref()).map_err(|problem| FlowError::Render {
            field: PROBE.to_owned(),
            problem,
        })
    }

    /// Whether a sweep verifies a service with this manifest.
    pub fn probes(self, manifest: &schemas::Manifest) -> bool {
        match self {
            ProbeSetting::All => true,
            ProbeSetting::Manifest => manifest.probe,
            ProbeSetting::Off => false,
        }
    }
}

fn probe_drift(field: &str, message: String) -> Drift {
    Drift::new(
        format!("verify.{field}"),
        message,
        "run `pma-sso fix` for the service, then verify again",
    )
}

fn scope<'a>(ctx: &Context, svc: &Service<'a>, extras: &Extras) -> Scope<'a> {
    Scope::new(
        &svc.package.manifest,
        svc.env,
        ctx.settings.public_url.as_deref(),
        extras,
    )
}

fn var(scope: &Scope<'_>, var: Var) -> Result<String, FlowError> {
    scope
        .var(var)
        .map(str::to_owned)
        .map_err(|e| FlowError::Render {
            field: var.name().to_owned(),
            problem: e.0,
        })
}

/// GET `url` and keep the answer only if it is a success; `Err` is the reason, for a drift line.
async fn get_ok(ctx: &Context, url: &str) -> Result<reqwest::Response, String> {
    let response = ctx
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url} does not answer ({})", transport(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url} answers HTTP {}", status.as_u16()));
    }
    Ok(response)
}

/// GET `url` and parse JSON; `Err` is the reason, for a drift line.
async fn get_json(ctx: &Context, url: &str) -> Result<Value, String> {
    get_ok(ctx, url)
        .await?
        .json()
        .await
        .map_err(|_| format!("{url} does not answer JSON"))
}

fn transport(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transport error"
    }
}

async fn oauth2(
    ctx: &Context,
    svc: &Service<'_>,
    live: &Live<'_>,
) -> Result<Vec<Drift>, FlowError> {
    let m = &svc.package.manifest;
    let scope = scope(ctx, svc, &Extras::default());
    let Some(provider) = live.oauth2 else {
        return Ok(vec![probe_drift(
            "provider",
            format!(
                "not verified: provider {} missing",
                crate::live::provider_name(m)
            ),
        )]);
    };
    let mut drifts = Vec::new();

    // Discovery at the issuer the service was given.
    let issuer = var(&scope, Var::AuthIssuer)?;
    let discovery_url = var(&scope, Var::AuthDiscovery)?;
    match get_json(ctx, &discovery_url).await {
        Err(reason) => drifts.push(probe_drift(
            "discovery",
            format!("discovery failed: {reason}"),
        )),
        Ok(doc) => {
            let named = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
            if named != issuer {
                drifts.push(probe_drift(
                    "issuer",
                    format!(
                        "issuer mismatch: the service was given {issuer}, discovery names {}",
                        if named.is_empty() { "none" } else { named }
                    ),
                ));
            }
        }
    }

    // The JWKS publishes the key the manifest says the provider signs with: a provider
    // pointed at another keypair signs tokens the service's pinned key (or cached JWKS)
    // no longer matches.
    let wanted = m.oauth().and_then(|v| v.client.signing_key.clone());
    if let Some(name) = wanted {
        let jwks_url = var(&scope, Var::AuthJwks)?;
        let want = live.catalog.keypair_by_name(&name);
        match get_json(ctx, &jwks_url).await {
            Err(reason) => drifts.push(probe_drift("jwks", format!("JWKS failed: {reason}"))),
            Ok(doc) => {
                let keys = doc
                    .get("keys")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let served: Vec<String> = keys.iter().map(|k| key_label(live, k)).collect();
                let found = want.is_some_and(|want| {
                    keys.iter().any(|key| {
                        key_fingerprint(key)
                            .zip(want.fingerprint_sha256.as_deref())
                            .is_some_and(|(a, b)| same_fingerprint(&a, b))
                            || key.get("kid").and_then(Value::as_str) == Some(want.pk.as_str())
                    })
                });
                if !found {
                    drifts.push(probe_drift(
                        "jwks",
                        format!(
                            "JWKS key mismatch: {jwks_url} publishes {}, not {name}",
                            if served.is_empty() {
                                "no key".to_owned()
                            } else {
                                served.join(", ")
                            }
                        ),
                    ));
                }
            }
        }
    }

    // A client_credentials grant with what the service holds.
    let id = m
        .client_id_env()
        .and_then(|k| svc.env.get(k.as_str()).map(str::to_owned));
    let secret = m
        .client_secret_env()
        .and_then(|k| svc.env.get(k.as_str()).map(str::to_owned));
    match (id, secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
            let token_url = var(&scope, Var::AuthToken)?;
            if let Some(reason) = token_grant(ctx, &token_url, &id, &secret).await {
                drifts.push(probe_drift("token", reason));
            }
        }
        _ => drifts.push(probe_drift(
            "token",
            "not verified: client id or secret missing from .env".to_owned(),
        )),
    }

    // Every redirect URI the service sends is one the provider accepts.
    let url = var(&scope, Var::ServiceUrl)?;
    let accepted: Vec<&RedirectUri> = provider
        .redirect_uris
        .iter()
        .filter(|u| u.redirect_uri_type.as_deref() != Some("logout"))
        .collect();
    for path in m.oauth().map(|v| v.redirect_paths).unwrap_or_default() {
        let sent = format!("{url}{path}");
        if !accepted.iter().any(|u| accepts(u, &sent)) {
            let have: Vec<String> = accepted
                .iter()
                .map(|u| format!("{} ({})", u.url, u.matching_mode))
                .collect();
            drifts.push(probe_drift(
                "redirect_uris",
                format!(
                    "redirect not accepted: authentik does not accept {sent} (it accepts {})",
                    if have.is_empty() {
                        "none".to_owned()
                    } else {
                        have.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(drifts)
}

/// What the service holds, as `check` reads it: for oauth / oidc the deliveries (a stale one
/// means the service was never given the current secret); for wikijs / frappe the client id
/// and secret read back from the service.
async fn service_holds(
    ctx: &Context,
    svc: &Service<'_>,
    live: &Live<'_>,
    unverified: &mut Vec<String>,
) -> Result<Vec<Drift>, FlowError> {
    match svc.package.manifest.kind() {
        SsoKind::Oauth | SsoKind::Oidc => {
            if svc.package.manifest.deliveries().is_empty() {
                unverified.push(nothing_delivered());
                return Ok(Vec::new());
            }
            let drifts = flows::check_deliveries(ctx, svc, &Extras::default()).await?;
            Ok(drifts
                .into_iter()
                .map(|d| {
                    probe_drift(
                        "delivery",
                        format!(
                            "the service may not hold the current settings: {}",
                            d.message
                        ),
                    )
                })
                .collect())
        }
        SsoKind::Wikijs | SsoKind::Frappe => {
            if live.oauth2.is_none() {
                // Already reported by the provider probe.
                return Ok(Vec::new());
            }
            let report = flows::check(ctx, svc, live).await?;
            Ok(report
                .drifts
                .into_iter()
                .filter(|d| {
                    let field = d.field.to_ascii_lowercase();
                    !field.starts_with("env.")
                        && (field.ends_with("clientsecret")
                            || field.ends_with("client_secret")
                            || field.ends_with("clientid")
                            || field.ends_with("client_id"))
                })
                .map(|d| {
                    probe_drift(
                        "service_credentials",
                        format!("service's secret is rejected by authentik: {}", d.message),
                    )
                })
                .collect())
        }
        SsoKind::Saml | SsoKind::Proxy => Ok(Vec::new()),
    }
}

/// An anonymous request to the outpost's Traefik forward-auth endpoint for the service's
/// external host must be redirected to the login.
async fn proxy(
    ctx: &Context,
    svc: &Service<'_>,
    live: &Live<'_>,
    outpost: &str,
    unverified: &mut Vec<String>,
) -> Result<Vec<Drift>, FlowError> {
    let Some(provider) = live.proxy else {
        return Ok(vec![probe_drift(
            "provider",
            format!(
                "not verified: provider {} missing",
                crate::live::provider_name(&svc.package.manifest)
            ),
        )]);
    };
    if provider.mode == "proxy" {
        unverified.push(
            "mode proxy has no forward-auth endpoint (the outpost serves the service itself)"
                .to_owned(),
        );
        return Ok(Vec::new());
    }
    let scope = scope(ctx, svc, &Extras::default());
    let service_url = var(&scope, Var::ServiceUrl)?;
    let (proto, host) = match url::Url::parse(&service_url) {
        Ok(u) => (
            u.scheme().to_owned(),
            match (u.host_str(), u.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                (None, _) => String::new(),
            },
        ),
        Err(e) => {
            return Err(FlowError::Render {
                field: "service.url".into(),
                problem: format!("{service_url} is not a URL: {e}"),
            });
        }
    };
    let endpoint = format!(
        "{}/outpost.goauthentik.io/auth/traefik",
        outpost.trim_end_matches('/')
    );
    let client = reqwest::Client::builder()
        .timeout(ctx.settings.http_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| FlowError::Render {
            field: OUTPOST_URL.into(),
            problem: format!("cannot build an HTTP client: {}", transport(&e)),
        })?;
    let response = match client
        .get(&endpoint)
        .header("X-Forwarded-Proto", &proto)
        .header("X-Forwarded-Host", &host)
        .header("X-Forwarded-Uri", "/")
        .header("X-Forwarded-Method", "GET")
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return Ok(vec![probe_drift(
                "outpost",
                format!(
                    "forward auth failed: {endpoint} does not answer ({})",
                    transport(&e)
                ),
            )]);
        }
    };
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let reason = if status.is_redirection() {
        let to_login = location.ends_with("/outpost.goauthentik.io/start")
            || location.contains("/outpost.goauthentik.io/start?")
            || location.contains("/application/o/authorize/");
        (!to_login).then(|| {
            format!(
                "forward auth redirects {host} to {}, not to the login",
                if location.is_empty() {
                    "nowhere"
                } else {
                    &location
                }
            )
        })
    } else if status.is_success() {
        Some(format!(
            "forward auth lets an anonymous request to {host} through (HTTP {})",
            status.as_u16()
        ))
    } else if status.as_u16() == 400 {
        Some(format!(
            "the outpost at {outpost} does not serve {host} (no app for hostname: is provider {} attached to it?)",
            provider.name
        ))
    } else {
        Some(format!(
            "forward auth failed: {endpoint} answers HTTP {}",
            status.as_u16()
        ))
    };
    Ok(reason
        .map(|r| vec![probe_drift("outpost", r)])
        .unwrap_or_default())
}

/// SHA-256 fingerprint of a JWK's first `x5c` certificate.
fn key_fingerprint(key: &Value) -> Option<String> {
    key.get("x5c")
        .and_then(|c| c.get(0))
        .and_then(Value::as_str)
        .and_then(pem_fingerprint)
}

/// A JWK as an operator recognises it: the keypair's name when its certificate is one of
/// authentik's, else its `kid`.
fn key_label(live: &Live<'_>, key: &Value) -> String {
    let fingerprint = key_fingerprint(key);
    let known = live.catalog.keypairs.iter().find(|k| {
        k.fingerprint_sha256
            .as_deref()
            .zip(fingerprint.as_deref())
            .is_some_and(|(a, b)| same_fingerprint(a, b))
    });
    match known {
        Some(k) => k.name.clone(),
        None => format!(
            "kid {}",
            key.get("kid").and_then(Value::as_str).unwrap_or("(none)")
        ),
    }
}

/// `None` when authentik issued a token; otherwise the reason.
async fn token_grant(ctx: &Context, url: &str, id: &str, secret: &str) -> Option<String> {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
        ("scope", "openid"),
    ];
    let response = match ctx.http.post(url).form(&form).send().await {
        Ok(r) => r,
        Err(e) => {
            return Some(format!(
                "token grant failed: {url} does not answer ({})",
                transport(&e)
            ));
        }
    };
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() && body.get("access_token").and_then(Value::as_str).is_some() {
        return None;
    }
    match body.get("error").and_then(Value::as_str) {
        Some(error @ ("invalid_grant" | "invalid_client")) => Some(format!(
            "service's secret is rejected by authentik ({error})"
        )),
        Some(error) => Some(format!(
            "token grant refused: {error} (HTTP {})",
            status.as_u16()
        )),
        None => Some(format!(
            "token grant failed: {url} answers HTTP {}",
            status.as_u16()
        )),
    }
}

/// authentik's matching: `strict` compares exactly, `regex` must match the whole URI.
fn accepts(uri: &RedirectUri, sent: &str) -> bool {
    match uri.matching_mode.as_str() {
        "regex" => fancy_regex::Regex::new(&format!("^(?:{})$", uri.url))
            .ok()
            .and_then(|re| re.is_match(sent).ok())
            .unwrap_or(false),
        _ => uri.url == sent,
    }
}

async fn saml(
    ctx: &Context,
    svc: &Service<'_>,
    live: &Live<'_>,
    unverified: &mut Vec<String>,
) -> Result<Vec<Drift>, FlowError> {
    if live.saml.is_none() {
        return Ok(vec![probe_drift(
            "provider",
            format!(
                "not verified: provider {} missing",
                crate::live::provider_name(&svc.package.manifest)
            ),
        )]);
    }
    let scope = scope(ctx, svc, &Extras::default());
    let url = var(&scope, Var::AuthSamlMetadata)?;
    let xml = match fetch_text(ctx, &url).await {
        Ok(xml) => xml,
        Err(reason) => {
            return Ok(vec![probe_drift(
                "metadata",
                format!("SAML metadata failed: {reason}"),
            )]);
        }
    };
    let Some(fingerprint) = metadata_signing_cert(&xml).and_then(|c| pem_fingerprint(&c)) else {
        return Ok(vec![probe_drift(
            "metadata",
            format!("SAML metadata at {url} carries no signing certificate"),
        )]);
    };
    if svc.package.manifest.deliveries().is_empty() {
        unverified.push(nothing_delivered());
        return Ok(Vec::new());
    }
    // Every login-relevant setting the service holds (SAML enabled, the IdP SSO URL, the entity
    // id, the certificate) is read back through its deliveries and compared as `check` does;
    // the certificate against the one the metadata publishes rather than the keypair's.
    let extras = Extras {
        saml_cert_pem: None,
        saml_cert_fingerprint: Some(fingerprint),
    };
    let drifts = flows::check_deliveries(ctx, svc, &extras).await?;
    Ok(drifts
        .into_iter()
        .map(|d| {
            if d.message.starts_with("signing cert mismatch") {
                probe_drift(
                    "saml_cert",
                    d.message.replace("authentik signs with", "metadata has"),
                )
            } else {
                probe_drift("saml_setting", d.message)
            }
        })
        .collect())
}

async fn fetch_text(ctx: &Context, url: &str) -> Result<String, String> {
    get_ok(ctx, url)
        .await?
        .text()
        .await
        .map_err(|e| format!("{url}: {}", transport(&e)))
}

/// The base64 certificate of the first `KeyDescriptor` whose `use` is `signing` (or that has
/// no `use`), whatever the namespace prefixes.
fn metadata_signing_cert(xml: &str) -> Option<String> {
    let mut rest = xml;
    while let Some(start) = rest.find("KeyDescriptor") {
        let after = &rest[start + "KeyDescriptor".len()..];
        let head_end = after.find('>')?;
        let head = &after[..head_end];
        let body = &after[head_end..];
        let end = body.find("KeyDescriptor>").unwrap_or(body.len());
        let body = &body[..end];
        if !head.contains("use=\"encryption\"") {
            let open = body.find("X509Certificate>")? + "X509Certificate>".len();
            let close = body[open..].find('<')? + open;
            return Some(body[open..close].split_whitespace().collect());
        }
        rest = &after[head_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(mode: &str, url: &str) -> RedirectUri {
        RedirectUri {
            matching_mode: mode.into(),
            url: url.into(),
            redirect_uri_type: None,
        }
    }

    #[test]
    fn strict_is_exact_and_regex_must_match_the_whole_uri() {
        let sent = "https://g.example.org/login/generic_oauth";
        assert!(accepts(&uri("strict", sent), sent));
        assert!(!accepts(
            &uri("strict", "https://g.example.org/login"),
            sent
        ));
        assert!(accepts(&uri("regex", r"https://g\.example\.org/.*"), sent));
        assert!(!accepts(&uri("regex", "generic_oauth"), sent));
        assert!(!accepts(&uri("regex", "("), sent));
    }

    #[test]
    fn the_probe_setting_is_all_manifest_or_none_and_names_itself_when_wrong() {
        let manifest = |extra: &str| {
            schemas::parse_manifest(
                std::path::Path::new("grafana/manifest.yaml"),
                &format!("name: grafana\n{extra}sso:\n  type: oidc\n  redirect_path: /cb\n"),
            )
            .expect("manifest")
        };
        let (opted_in, plain) = (manifest("probe: true\n"), manifest(""));
        let default = ProbeSetting::parse(None).expect("unset");
        assert_eq!(default, ProbeSetting::Manifest);
        assert!(default.probes(&opted_in) && !default.probes(&plain));
        let all = ProbeSetting::parse(Some("all")).expect("all");
        assert!(all.probes(&plain));
        let off = ProbeSetting::parse(Some("none")).expect("none");
        assert!(!off.probes(&opted_in));
        assert_eq!(
            ProbeSetting::parse(Some("yes")).expect_err("bad"),
            "PMA_SSO_PROBE is `yes`; expected `all`, `manifest` or `none`"
        );
    }

    #[test]
    fn the_signing_certificate_is_read_whatever_the_prefix() {
        let xml = r#"<md:EntityDescriptor><md:IDPSSODescriptor><md:KeyDescriptor use="encryption"><ds:X509Certificate>ENC</ds:X509Certificate></md:KeyDescriptor><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>
          MIIB
          AAAA</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor></md:IDPSSODescriptor></md:EntityDescriptor>"#;
        assert_eq!(metadata_signing_cert(xml).as_deref(), Some("MIIBAAAA"));
        assert_eq!(metadata_signing_cert("<EntityDescriptor/>"), None);
    }
}
