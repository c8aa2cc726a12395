//! From an HTTP request to an API answer, in the order authentik (Django + DRF) does it:
//! URL routing (404), authentication (403), method (405), object lookup (404), body parsing
//! (415/400), request schema (400), serializer validation (400), then the change itself.

use axum::http::{HeaderMap, Method, header};
use serde_json::{Map, Value};

use super::api::{ApiError, ApiResponse, ApiResult, canonical_uuid};
use super::list::Query;
use super::schema::schemas;
use super::server::Shared;
use super::store::Store;
use super::{
    applications, identity, notifications, outposts, property_mappings, providers, proxy, readonly,
    saml,
};

/// Every endpoint the stand-in serves (paths relative to `/api/v3/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'p> {
    /// `core/users/me/`
    Me,
    /// `admin/version/`
    Version,
    /// `core/applications/`
    Applications,
    /// `core/applications/{slug}/`
    Application(&'p str),
    /// `providers/oauth2/`
    OAuth2Providers,
    /// `providers/oauth2/{id}/`
    OAuth2Provider(&'p str),
    /// `providers/saml/`
    SamlProviders,
    /// `providers/saml/{id}/`
    SamlProvider(&'p str),
    /// `providers/proxy/`
    ProxyProviders,
    /// `providers/proxy/{id}/`
    ProxyProvider(&'p str),
    /// `providers/all/`
    AllProviders,
    /// `providers/all/{id}/`
    AnyProvider(&'p str),
    /// `flows/instances/`
    Flows,
    /// `flows/instances/{slug}/`
    Flow(&'p str),
    /// `propertymappings/provider/scope/`
    ScopeMappings,
    /// `propertymappings/provider/scope/{pm_uuid}/`
    ScopeMapping(&'p str),
    /// `propertymappings/provider/saml/`
    SamlMappings,
    /// `propertymappings/provider/saml/{pm_uuid}/`
    SamlMapping(&'p str),
    /// `crypto/certificatekeypairs/`
    Keypairs,
    /// `crypto/certificatekeypairs/{kp_uuid}/`
    Keypair(&'p str),
    /// `crypto/certificatekeypairs/{kp_uuid}/view_certificate/`
    KeypairCertificate(&'p str),
    /// `outposts/instances/`
    Outposts,
    /// `outposts/instances/{uuid}/`
    Outpost(&'p str),
    /// Users, service accounts, tokens, groups.
    Identity(identity::Route<'p>),
    /// Webhook mappings, transports, event-matcher policies, rules, bindings.
    Notifications(notifications::Route<'p>),
}

impl<'p> Route<'p> {
    /// Paths must carry the trailing slash, as authentik's router requires.
    fn parse(path: &'p str) -> Option<Route<'p>> {
        let rest = path.strip_prefix("/api/v3/")?.strip_suffix('/')?;
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return None;
        }
        Some(match segments.as_slice() {
            ["core", "users", "me"] => Route::Me,
            ["admin", "version"] => Route::Version,
            ["core", "applications"] => Route::Applications,
            ["core", "applications", slug] => Route::Application(slug),
            ["providers", "oauth2"] => Route::OAuth2Providers,
            ["providers", "oauth2", id] => Route::OAuth2Provider(id),
            ["providers", "saml"] => Route::SamlProviders,
            ["providers", "saml", id] => Route::SamlProvider(id),
            ["providers", "proxy"] => Route::ProxyProviders,
            ["providers", "proxy", id] => Route::ProxyProvider(id),
            ["providers", "all"] => Route::AllProviders,
            ["providers", "all", id] => Route::AnyProvider(id),
            ["flows", "instances"] => Route::Flows,
            ["flows", "instances", slug] => Route::Flow(slug),
            ["propertymappings", "provider", "scope"] => Route::ScopeMappings,
            ["propertymappings", "provider", "scope", pk] => Route::ScopeMapping(pk),
            ["propertymappings", "provider", "saml"] => Route::SamlMappings,
            ["propertymappings", "provider", "saml", pk] => Route::SamlMapping(pk),
            ["crypto", "certificatekeypairs"] => Route::Keypairs,
            ["crypto", "certificatekeypairs", pk, "view_certificate"] => {
                Route::KeypairCertificate(pk)
            }
            ["crypto", "certificatekeypairs", pk] => Route::Keypair(pk),
            ["outposts", "instances"] => Route::Outposts,
            ["outposts", "instances", pk] => Route::Outpost(pk),
            other => identity::Route::parse(other)
                .map(Route::Identity)
                .or_else(|| notifications::Route::parse(other).map(Route::Notifications))?,
        })
    }

    fn methods(self) -> &'static [Method] {
        const READ: &[Method] = &[Method::GET];
        const COLLECTION: &[Method] = &[Method::GET, Method::POST];
        const DETAIL: &[Method] = &[Method::GET, Method::PUT, Method::PATCH, Method::DELETE];
        match self {
            Route::Me
            | Route::Version
            | Route::AllProviders
            | Route::Flows
            | Route::Flow(_)
            | Route::Keypairs
            | Route::Keypair(_)
            | Route::KeypairCertificate(_)
            | Route::Outposts => READ,
            Route::Applications
            | Route::OAuth2Providers
            | Route::SamlProviders
            | Route::ProxyProviders
            | Route::ScopeMappings
            | Route::SamlMappings => COLLECTION,
            Route::Application(_)
            | Route::OAuth2Provider(_)
            | Route::SamlProvider(_)
            | Route::ProxyProvider(_)
            | Route::ScopeMapping(_)
            | Route::SamlMapping(_) => DETAIL,
            Route::AnyProvider(_) => &[Method::GET, Method::DELETE],
            Route::Outpost(_) => &[Method::GET, Method::PUT, Method::PATCH],
            Route::Identity(route) => route.methods(),
            Route::Notifications(route) => route.methods(),
        }
    }

    /// The request component a body must satisfy.
    fn request_schema(self, method: &Method) -> Option<&'static str> {
        let (create, patch) = match self {
            Route::Applications | Route::Application(_) => {
                ("ApplicationRequest", "PatchedApplicationRequest")
            }
            Route::OAuth2Providers | Route::OAuth2Provider(_) => {
                ("OAuth2ProviderRequest", "PatchedOAuth2ProviderRequest")
            }
            Route::SamlProviders | Route::SamlProvider(_) => {
                ("SAMLProviderRequest", "PatchedSAMLProviderRequest")
            }
            Route::ProxyProviders | Route::ProxyProvider(_) => {
                ("ProxyProviderRequest", "PatchedProxyProviderRequest")
            }
            Route::ScopeMappings | Route::ScopeMapping(_) => {
                ("ScopeMappingRequest", "PatchedScopeMappingRequest")
            }
            Route::SamlMappings | Route::SamlMapping(_) => (
                "SAMLPropertyMappingRequest",
                "PatchedSAMLPropertyMappingRequest",
            ),
            Route::Outpost(_) => ("OutpostRequest", "PatchedOutpostRequest"),
            Route::Identity(route) => return route.request_schema(method),
            Route::Notifications(route) => return route.request_schema(method),
            _ => return None,
        };
        match *method {
            Method::POST | Method::PUT => Some(create),
            Method::PATCH => Some(patch),
            _ => None,
        }
    }

    /// For detail routes: does the object exist? DRF looks it up before reading the body.
    fn lookup(self, store: &Store) -> Result<(), ApiError> {
        let (found, model) = match self {
            Route::Application(slug) => (store.application_index(slug).is_some(), "Application"),
            Route::OAuth2Provider(id) => (
                providers::retrieve_oauth2(store, id).is_ok(),
                "OAuth2Provider",
            ),
            Route::SamlProvider(id) => (saml::exists(store, id), "SAMLProvider"),
            Route::ProxyProvider(id) => (proxy::exists(store, id), "ProxyProvider"),
            Route::SamlMapping(pk) => (saml::mapping_exists(store, pk), "SAMLPropertyMapping"),
            Route::ScopeMapping(pk) => (
                canonical_uuid(pk)
                    .and_then(|pk| store.scope_mapping_index(&pk))
                    .is_some(),
                "ScopeMapping",
            ),
            Route::Outpost(pk) => (
                canonical_uuid(pk)
                    .and_then(|pk| store.outpost_index(&pk))
                    .is_some(),
                "Outpost",
            ),
            Route::Identity(route) => return route.lookup(store),
            Route::Notifications(route) => return route.lookup(store),
            _ => return Ok(()),
        };
        if found {
            Ok(())
        } else {
            Err(ApiError::NoMatch(model))
        }
    }
}

/// `request.build_absolute_uri("/")` without the path: the scheme (plain HTTP on loopback) and
/// the `Host` the client sent.
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// authentik's `TokenAuthentication`: the stand-in's own token (akadmin's), or an API token
/// `known` maps to its user. Answers the caller's user pk.
fn authenticate(
    headers: &HeaderMap,
    token: &str,
    known: impl FnOnce(&str) -> Option<i64>,
) -> Result<i64, ApiError> {
    const NOT_PROVIDED: ApiError =
        ApiError::Forbidden("Authentication credentials were not provided.");
    // A header that is absent, has no space, or another scheme falls through to session
    // authentication, which finds no session.
    let Some(raw) = headers.get(header::AUTHORIZATION) else {
        return Err(NOT_PROVIDED);
    };
    let raw = String::from_utf8_lossy(raw.as_bytes());
    let raw = raw.trim();
    let Some((scheme, key)) = raw.split_once(' ') else {
        return Err(NOT_PROVIDED);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(NOT_PROVIDED);
    }
    if key.is_empty() {
        return Err(ApiError::Forbidden("Malformed header"));
    }
    if key == token {
        return Ok(identity::ADMIN_PK);
    }
    known(key).ok_or(ApiError::Forbidden("Token invalid/expired"))
}

/// DRF's request parsing with only the JSON parser installed.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media_type != "application/json" {
        return Err(ApiError::UnsupportedMediaType(content_type));
    }
    serde_json::from_slice(body)
        .map_err(|err| ApiError::BadRequest(format!("JSON parse error - {err}")))
}

/// Answer one request (already past fault injection).
pub(crate) fn handle(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResponse {
    respond(shared, method, path, query, headers, body).unwrap_or_else(ApiResponse::from)
}

fn respond(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult {
    let route = Route::parse(path).ok_or(ApiError::NotFound("Not found."))?;
    let caller = authenticate(headers, &shared.token, |key| {
        shared.store().identity.token_user(key)
    })?;
    // DRF checks permissions before the method: without a superuser group, only `me`.
    if route != Route::Me && !shared.store().identity.is_superuser(caller) {
        return Err(ApiError::Forbidden(
            "You do not have permission to perform this action.",
        ));
    }
    if !route.methods().contains(method) {
        return Err(ApiError::MethodNotAllowed(method.as_str().to_owned()));
    }
    if *method != Method::GET {
        shared.count_write();
    }

    let mut store = shared.store();
    let store = &mut *store;
    store.origin = origin(headers);
    let query = Query::parse(query);

    let body = match route.request_schema(method) {
        None => Map::new(),
        Some(schema) => {
            route.lookup(store)?;
            let body = parse_body(headers, body)?;
            let operation = format!("{method} {path}");
            if let Err((violations, err)) = schemas().check(schema, &operation, &body) {
                for violation in &violations {
                    tracing::warn!(%violation, "request body violates authentik's request schema");
                }
                shared.violations().extend(violations);
                return Err(err);
            }
            match body {
                Value::Object(map) => trim_text(map),
                _ => Map::new(),
            }
        }
    };

    match (route, method.clone()) {
        (Route::Me, Method::GET) => identity::me(store, caller),
        (Route::Version, Method::GET) => readonly::version(),

        (Route::Applications, Method::GET) => applications::list(store, &query),
        (Route::Applications, Method::POST) => applications::create(store, body),
        (Route::Application(slug), Method::GET) => applications::retrieve(store, slug),
        (Route::Application(slug), Method::PUT | Method::PATCH) => {
            applications::update(store, slug, body)
        }
        (Route::Application(slug), Method::DELETE) => applications::destroy(store, slug),

        (Route::OAuth2Providers, Method::GET) => providers::list_oauth2(store, &query),
        (Route::OAuth2Providers, Method::POST) => providers::create_oauth2(store, body),
        (Route::OAuth2Provider(id), Method::GET) => providers::retrieve_oauth2(store, id),
        (Route::OAuth2Provider(id), Method::PUT | Method::PATCH) => {
            providers::update_oauth2(store, id, body)
        }
        (Route::OAuth2Provider(id), Method::DELETE) => providers::destroy_oauth2(store, id),

        (Route::SamlProviders, Method::GET) => saml::list(store, &query),
        (Route::SamlProviders, Method::POST) => saml::create(store, body),
        (Route::SamlProvider(id), Method::GET) => saml::retrieve(store, id),
        (Route::SamlProvider(id), Method::PUT | Method::PATCH) => saml::update(store, id, body),
        (Route::SamlProvider(id), Method::DELETE) => saml::destroy(store, id),

        (Route::ProxyProviders, Method::GET) => proxy::list(store, &query),
        (Route::ProxyProviders, Method::POST) => proxy::create(store, body),
        (Route::ProxyProvider(id), Method::GET) => proxy::retrieve(store, id),
        (Route::ProxyProvider(id), Method::PUT | Method::PATCH) => proxy::update(store, id, body),
        (Route::ProxyProvider(id), Method::DELETE) => proxy::destroy(store, id),

        (Route::AllProviders, Method::GET) => providers::list_all(store, &query),
        (Route::AnyProvider(id), Method::GET) => providers::retrieve_any(store, id),
        (Route::AnyProvider(id), Method::DELETE) => providers::destroy_any(store, id),

        (Route::Flows, Method::GET) => readonly::list_flows(store, &query),
        (Route::Flow(slug), Method::GET) => readonly::retrieve_flow(store, slug),

        (Route::ScopeMappings, Method::GET) => property_mappings::list(store, &query),
        (Route::ScopeMappings, Method::POST) => property_mappings::create(store, body),
        (Route::ScopeMapping(pk), Method::GET) => property_mappings::retrieve(store, pk),
        (Route::ScopeMapping(pk), Method::PUT | Method::PATCH) => {
            property_mappings::update(store, pk, body)
        }
        (Route::ScopeMapping(pk), Method::DELETE) => property_mappings::destroy(store, pk),

        (Route::SamlMappings, Method::GET) => saml::list_mappings(store, &query),
        (Route::SamlMappings, Method::POST) => saml::create_mapping(store, body),
        (Route::SamlMapping(pk), Method::GET) => saml::retrieve_mapping(store, pk),
        (Route::SamlMapping(pk), Method::PUT | Method::PATCH) => {
            saml::update_mapping(store, pk, body)
        }
        (Route::SamlMapping(pk), Method::DELETE) => saml::destroy_mapping(store, pk),

        (Route::Keypairs, Method::GET) => readonly::list_keypairs(store, &query),
        (Route::Keypair(pk), Method::GET) => readonly::retrieve_keypair(store, pk),
        (Route::KeypairCertificate(pk), Method::GET) => readonly::view_certificate(store, pk),

        (Route::Outposts, Method::GET) => outposts::list(store, &query),
        (Route::Outpost(pk), Method::GET) => outposts::retrieve(store, pk),
        (Route::Outpost(pk), Method::PUT | Method::PATCH) => outposts::update(store, pk, body),

        (Route::Identity(route), method) => {
            identity::handle(store, route, &method, body, &query, caller)
        }
        (Route::Notifications(route), method) => {
            notifications::handle(store, route, &method, body, &query)
        }

        (route, method) => {
            // `methods()` admitted a pair this table does not serve: a bug in this file.
            tracing::error!(?route, %method, "route table and method list disagree");
            Err(ApiError::MethodNotAllowed(method.as_str().to_owned()))
        }
    }
}

/// DRF's `CharField` strips leading and trailing whitespace (`trim_whitespace=True`, the
/// default) from every text field before it is validated and stored: `"return 1\n"` is kept
/// as `"return 1"`. That applies to the serializer's own fields and to those of nested
/// serializers (`redirect_uris[].url`), not to JSON fields (dicts such as `attributes`), which
/// are never top-level strings.
fn trim_text(body: Map<String, Value>) -> Map<String, Value> {
    fn trim(value: Value) -> Value {
        match value {
            Value::String(s) => Value::String(python_strip(&s).to_owned()),
            other => other,
        }
    }
    body.into_iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Array(items) => Value::Array(
                    items
                        .into_iter()
                        .map(|item| match item {
                            Value::Object(nested) => Value::Object(
                                nested.into_iter().map(|(k, v)| (k, trim(v))).collect(),
                            ),
                            other => other,
                        })
                        .collect(),
                ),
                other => trim(other),
            };
            (key, value)
        })
        .collect()
}

/// Python's `str.strip()`: Unicode whitespace plus the ASCII separators \x1c–\x1f, which
/// Python counts as whitespace and Rust's `trim` does not.
fn python_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn paths_need_the_mount_point_and_the_trailing_slash() {
        assert_eq!(
            Route::parse("/api/v3/core/applications/"),
            Some(Route::Applications)
        );
        assert_eq!(Route::parse("/api/v3/core/applications"), None);
        assert_eq!(
            Route::parse("/api/v3/providers/oauth2/7/"),
            Some(Route::OAuth2Provider("7"))
        );
        assert_eq!(Route::parse("/api/v3/core/applications/a/b/"), None);
        assert_eq!(Route::parse("/core/applications/"), None);
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_are_not_credentials() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            authenticate(&headers, "t", |_| None),
            Err(ApiError::Forbidden(
                "Authentication credentials were not provided."
            ))
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bEaReR t"));
        assert_eq!(
            authenticate(&headers, "t", |_| None),
            Ok(identity::ADMIN_PK)
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dTpw"),
        );
        assert_eq!(
            authenticate(&headers, "t", |_| None),
            Err(ApiError::Forbidden(
                "Authentication credentials were not provided."
            ))
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        assert_eq!(
            authenticate(&headers, "t", |_| None),
            Err(ApiError::Forbidden("Token invalid/expired"))
        );
    }
}
