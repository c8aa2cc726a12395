//! The protocol endpoints a user's login goes through, outside `/api/v3` and without the API
//! token: per-provider OIDC discovery and JWKS, the token endpoint (only the
//! `client_credentials` grant), SAML IdP metadata, and the embedded outpost's forward-auth
//! endpoints (`/outpost.goauthentik.io/auth/{traefik,nginx}`), which authentik's server answers
//! on its own port.
//!
//! URLs in the answers are built from the configured public URL of the stand-in, else from the
//! request's `Host`, as a real authentik echoes the host it was called on. Keys are the seeded
//! ECDSA P-256 keypairs, so the JWKS carries `EC` keys and `ES256` (a real authentik's
//! self-signed keypair is RSA); `kid` is the keypair's pk. Access tokens are opaque random
//! strings: nothing here checks their signature.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::store::{ProviderKind, Store, str_field};

/// The answer for `path`, or `None` when it is not a protocol endpoint (the API handles it).
pub(crate) fn handle(
    store: &Store,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Response> {
    if let Some(rest) = path.strip_prefix("/outpost.goauthentik.io/") {
        return Some(outpost(store, method, rest, headers));
    }
    let rest = path.strip_prefix("/application/")?;
    // Django's patterns: every view ends in `/` except the discovery document.
    let is_discovery = path.ends_with("/.well-known/openid-configuration");
    if !is_discovery && !path.ends_with('/') {
        return Some(not_found());
    }
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let base = match &store.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => origin(headers),
    };
    let answer = match (method.clone(), segments.as_slice()) {
        (Method::POST, ["o", "token"]) => token(store, headers, body),
        (Method::GET, ["o", slug, ".well-known", "openid-configuration"]) => {
            discovery(store, &base, slug)
        }
        (Method::GET, ["o", slug, "jwks"]) => jwks(store, slug),
        (Method::GET, ["saml", slug, "metadata"]) => saml_metadata(store, &base, slug),
        (_, ["o", "token"]) => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        _ => not_found(),
    };
    Some(answer)
}

fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/html"))],
        "<h1>Not Found</h1><p>The requested resource was not found on this server.</p>",
    )
        .into_response()
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The provider of the application with this slug, when it is of `kind`.
fn provider_of<'s>(
    store: &'s Store,
    slug: &str,
    kind: ProviderKind,
) -> Option<&'s Map<String, Value>> {
    let app = &store.applications[store.application_index(slug)?];
    let pk = app.get("provider").and_then(Value::as_i64)?;
    let provider = store.providers.get(&pk)?;
    (provider.kind == kind).then_some(&provider.fields)
}

fn keypair<'s>(store: &'s Store, pk: Option<&str>) -> Option<&'s super::seed::Keypair> {
    let pk = pk?;
    store.keypairs.iter().find(|k| k.pk() == pk)
}

fn discovery(store: &Store, base: &str, slug: &str) -> Response {
    let Some(provider) = provider_of(store, slug, ProviderKind::OAuth2) else {
        return not_found();
    };
    let issuer = if str_field(provider, "issuer_mode") == "global" {
        format!("{base}/application/o/")
    } else {
        format!("{base}/application/o/{slug}/")
    };
    let alg = if provider.get("signing_key").is_some_and(|k| !k.is_null()) {
        "ES256"
    } else {
        "HS256"
    };
    json_response(
        StatusCode::OK,
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/application/o/authorize/"),
            "token_endpoint": format!("{base}/application/o/token/"),
            "userinfo_endpoint": format!("{base}/application/o/userinfo/"),
            "end_session_endpoint": format!("{base}/application/o/{slug}/end-session/"),
            "introspection_endpoint": format!("{base}/application/o/introspect/"),
            "revocation_endpoint": format!("{base}/application/o/revoke/"),
            "device_authorization_endpoint": format!("{base}/application/o/device/"),
            "jwks_uri": format!("{base}/application/o/{slug}/jwks/"),
            "response_types_supported": ["code", "id_token", "id_token token", "code token", "code id_token", "code id_token token"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "grant_types_supported": ["authorization_code", "refresh_token", "implicit", "client_credentials", "password", "urn:ietf:params:oauth:grant-type:device_code"],
            "id_token_signing_alg_values_supported": [alg],
            "subject_types_supported": ["public"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "scopes_supported": ["openid", "email", "profile"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "email", "email_verified", "name", "given_name", "preferred_username", "nickname", "groups"],
            "request_parameter_supported": false,
            "code_challenge_methods_supported": ["plain", "S256"],
        }),
    )
}

fn jwks(store: &Store, slug: &str) -> Response {
    let Some(provider) = provider_of(store, slug, ProviderKind::OAuth2) else {
        return not_found();
    };
    let keys: Vec<Value> = keypair(store, provider.get("signing_key").and_then(Value::as_str))
        .map(|kp| {
            let point = &kp.public_key_raw;
            let (x, y) = if point.len() == 65 {
                (&point[1..33], &point[33..65])
            } else {
                (&point[..0], &point[..0])
            };
            json!({
                "kty": "EC",
                "alg": "ES256",
                "use": "sig",
                "kid": kp.pk(),
                "crv": "P-256",
                "x": base64(x, URL_SAFE),
                "y": base64(y, URL_SAFE),
                "x5c": [base64(&kp.certificate_der, STANDARD)],
                "x5t": base64(&Sha1::digest(&kp.certificate_der), URL_SAFE),
                "x5t#S256": base64(&Sha256::digest(&kp.certificate_der), URL_SAFE),
            })
        })
        .into_iter()
        .collect();
    json_response(StatusCode::OK, json!({ "keys": keys }))
}

fn token_error(error: &str, description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({ "error": error, "error_description": description }),
    )
}

/// `client_credentials` only: the client authenticates with `client_id`/`client_secret` in the
/// form or with HTTP Basic. authentik 2025.12 answers a wrong secret with `invalid_grant`.
fn token(store: &Store, headers: &HeaderMap, body: &[u8]) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let grant_type = field("grant_type").unwrap_or_default();
    if grant_type != "client_credentials" {
        return token_error(
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        );
    }
    let (client_id, client_secret) = match basic_credentials(headers) {
        Some(pair) => pair,
        None => (
            field("client_id").unwrap_or_default(),
            field("client_secret").unwrap_or_default(),
        ),
    };
    let matched = store.providers.values().find(|p| {
        p.kind == ProviderKind::OAuth2
            && !client_id.is_empty()
            && str_field(&p.fields, "client_id") == client_id
            && str_field(&p.fields, "client_secret") == client_secret
            && store.application_of(p.pk()).is_some()
    });
    if matched.is_none() {
        return token_error(
            "invalid_grant",
            "The provided authorization grant or refresh token is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client",
        );
    }
    let access_token: String = {
        use rand::Rng;
        rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(64)
            .map(char::from)
            .collect()
    };
    json_response(
        StatusCode::OK,
        json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "scope": "",
            "expires_in": 300,
        }),
    )
}

/// A proxy provider the embedded outpost serves.
struct OutpostApp<'s> {
    fields: &'s Map<String, Value>,
    /// `host[:port]` of `external_host`.
    host: String,
}

impl OutpostApp<'_> {
    fn mode(&self) -> &str {
        str_field(self.fields, "mode")
    }

    /// `skip_path_regex`: one regex a line. authentik matches the full URL in `forward_domain`
    /// mode and the path otherwise.
    fn allowlisted(&self, url: &url::Url) -> bool {
        let subject = if self.mode() == "forward_domain" {
            url.as_str().to_owned()
        } else {
            url.path().to_owned()
        };
        str_field(self.fields, "skip_path_regex")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| fancy_regex::Regex::new(l.trim()).ok())
            .any(|re| re.is_match(&subject).unwrap_or(false))
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|h| h.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// The host the outpost looks applications up by (`web.GetHost`): `X-Forwarded-Host`, else
/// `Host`.
fn request_host(headers: &HeaderMap) -> String {
    header_text(headers, "x-forwarded-host")
        .or_else(|| header_text(headers, "host"))
        .unwrap_or_default()
        .to_owned()
}

/// The embedded outpost (`internal/outpost/proxyv2`): only the proxy providers attached to
/// it, looked up by the request's host (`lookupApp`: exact `external_host` host, else the
/// longest `cookie_domain` suffix among `forward_domain` ones; with a single application any
/// host reaches it). Nobody here holds a session, so every request is anonymous.
fn outpost(store: &Store, method: &Method, rest: &str, headers: &HeaderMap) -> Response {
    if rest == "ping" {
        return StatusCode::NO_CONTENT.into_response();
    }
    let attached: Vec<i64> = store
        .outposts
        .iter()
        .find(|o| str_field(o, "managed") == super::seed::EMBEDDED_OUTPOST_MANAGED)
        .and_then(|o| o.get("providers"))
        .and_then(Value::as_array)
        .map(|pks| pks.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let apps: Vec<OutpostApp<'_>> = attached
        .iter()
        .filter_map(|pk| store.providers.get(pk))
        .filter(|p| p.kind == ProviderKind::Proxy)
        .map(|p| OutpostApp {
            fields: &p.fields,
            host: url::Url::parse(str_field(&p.fields, "external_host"))
                .ok()
                .and_then(|u| {
                    u.host_str().map(|h| match u.port() {
                        Some(port) => format!("{h}:{port}"),
                        None => h.to_owned(),
                    })
                })
                .unwrap_or_default(),
        })
        .collect();
    let host = request_host(headers);
    let direct = apps.iter().find(|a| a.host == host);
    let by_cookie = || {
        apps.iter()
            .filter(|a| a.mode() == "forward_domain")
            .filter_map(|a| {
                let domain = str_field(a.fields, "cookie_domain").trim_start_matches('.');
                (!domain.is_empty() && host.ends_with(domain)).then_some((domain.len(), a))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, a)| a)
    };
    let Some(app) = direct
        .or_else(by_cookie)
        .or_else(|| (apps.len() == 1).then(|| &apps[0]))
    else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({
                "Message": "no app for hostname",
                "Host": host,
                "Detail": format!("Check the outpost settings and make sure '{host}' is included."),
            }),
        );
    };
    if !matches!(app.mode(), "forward_single" | "forward_domain") {
        // A `proxy` mode application has no forward-auth routes: it serves the upstream.
        return not_found();
    }
    match (method.clone(), rest) {
        (_, "auth/traefik") => forward_traefik(app, headers),
        (_, "auth/nginx" | "auth") => forward_nginx(app, headers),
        _ => not_found(),
    }
}

fn configuration_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "configuration error
",
    )
        .into_response()
}

/// `forwardHandleTraefik`: the original request comes in `X-Forwarded-{Proto,Host,Uri}`. An
/// anonymous request to a path that is not skipped is redirected (307) to the outpost's
/// `/outpost.goauthentik.io/start` on the application's host, which starts the login.
fn forward_traefik(app: &OutpostApp<'_>, headers: &HeaderMap) -> Response {
    let proto = header_text(headers, "x-forwarded-proto").unwrap_or("");
    let Some(forwarded_host) = header_text(headers, "x-forwarded-host") else {
        return configuration_error();
    };
    let uri = header_text(headers, "x-forwarded-uri").unwrap_or("/");
    let scheme = if proto.is_empty() { "http" } else { proto };
    let Ok(fwd) = url::Url::parse(&format!("{scheme}://{forwarded_host}{uri}")) else {
        return configuration_error();
    };
    if app.allowlisted(&fwd) || uri.starts_with("/outpost.goauthentik.io") {
        return StatusCode::OK.into_response();
    }
    let host = if app.mode() == "forward_domain" {
        app.host.clone()
    } else {
        forwarded_host.to_owned()
    };
    let proto = if proto.is_empty() {
        String::new()
    } else {
        format!("{proto}:")
    };
    let location = format!("{proto}//{host}/outpost.goauthentik.io/start");
    let Ok(location) = HeaderValue::from_str(&location) else {
        return configuration_error();
    };
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

/// `forwardHandleNginx`: the original URL comes in `X-Original-URL`; an anonymous request to a
/// path that is not skipped answers 401 (nginx then sends the browser to `auth-signin`).
fn forward_nginx(app: &OutpostApp<'_>, headers: &HeaderMap) -> Response {
    let Some(fwd) = header_text(headers, "x-original-url").and_then(|u| url::Url::parse(u).ok())
    else {
        return configuration_error();
    };
    if app.allowlisted(&fwd) || fwd.path().starts_with("/outpost.goauthentik.io") {
        return StatusCode::OK.into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        "unauthorized request
",
    )
        .into_response()
}

/// `Authorization: Basic base64(id:secret)`, when present and well-formed.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let raw = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = raw.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(unbase64(encoded.trim())?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn saml_metadata(store: &Store, base: &str, slug: &str) -> Response {
    let Some(provider) = provider_of(store, slug, ProviderKind::Saml) else {
        return not_found();
    };
    let entity_id = xml_escape(str_field(provider, "issuer"));
    let key = keypair(store, provider.get("signing_kp").and_then(Value::as_str))
        .map(|kp| {
            format!(
                "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>",
                base64(&kp.certificate_der, STANDARD)
            )
        })
        .unwrap_or_default();
    let saml = format!("{base}/application/saml/{slug}");
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"{entity_id}\"><md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">{key}<md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"{saml}/slo/binding/redirect/\"/><md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"{saml}/slo/binding/post/\"/><md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat><md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat><md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"{saml}/sso/binding/redirect/\"/><md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"{saml}/sso/binding/post/\"/></md:IDPSSODescriptor></md:EntityDescriptor>"
    );
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        )],
        xml,
    )
        .into_response()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 with `alphabet`; padded for the standard alphabet, unpadded for the URL-safe one
/// (as JOSE wants it).
fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let pad = alphabet == STANDARD;
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 (padding optional); `None` on anything else.
fn unbase64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = STANDARD.iter().position(|&a| a == c)?;
        acc = (acc << 6) | u32::try_from(v).ok()?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_urls_are_unpadded() {
        assert_eq!(
            base64(b"any carnal pleas", STANDARD),
            "YW55IGNhcm5hbCBwbGVhcw=="
        );
        assert_eq!(
            base64(b"any carnal pleas", URL_SAFE),
            "YW55IGNhcm5hbCBwbGVhcw"
        );
        assert_eq!(base64(&[0xfb, 0xff], URL_SAFE), "-_8");
        assert_eq!(unbase64("dTpw").as_deref(), Some(&b"u:p"[..]));
        assert_eq!(
            unbase64("YW55IGNhcm5hbCBwbGVhcw==").as_deref(),
            Some(&b"any carnal pleas"[..])
        );
        assert_eq!(unbase64("*"), None);
    }
}
