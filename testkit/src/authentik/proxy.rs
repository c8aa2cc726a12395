//! `/providers/proxy/` (`ProxyProviderViewSet`). A proxy provider is an OAuth2 provider
//! underneath (a multi-table subclass): it keeps every OAuth2 field, shows only some, and
//! authentik rewrites several of them on every create and update (`set_oauth_defaults`).

use serde_json::{Map, Value, json};

use super::api::{ApiError, ApiResponse, ApiResult, FieldErrors, does_not_exist};
use super::list::{Listing, Query};
use super::providers::{
    canonicalize, check_common, check_timedeltas, generate_client_id, generate_client_secret,
    parse_pk,
};
use super::store::{Provider, ProviderKind, Store};

const MODEL: ProviderKind = ProviderKind::Proxy;

/// The managed scope mappings `set_oauth_defaults` adds (it never removes any).
const DEFAULT_SCOPES: [&str; 5] = [
    "goauthentik.io/providers/oauth2/scope-openid",
    "goauthentik.io/providers/oauth2/scope-profile",
    "goauthentik.io/providers/oauth2/scope-email",
    "goauthentik.io/providers/oauth2/scope-entitlements",
    "goauthentik.io/providers/proxy/scope-proxy",
];

fn defaults() -> Vec<(&'static str, Value)> {
    vec![
        // OAuth2Provider
        ("name", json!("")),
        ("authentication_flow", Value::Null),
        ("authorization_flow", Value::Null),
        ("invalidation_flow", Value::Null),
        ("property_mappings", json!([])),
        ("client_type", json!("confidential")),
        ("client_id", json!(generate_client_id())),
        ("client_secret", json!(generate_client_secret())),
        ("access_code_validity", json!("minutes=1")),
        ("access_token_validity", json!("hours=1")),
        ("refresh_token_validity", json!("days=30")),
        ("refresh_token_threshold", json!("seconds=0")),
        ("include_claims_in_id_token", json!(true)),
        ("signing_key", Value::Null),
        ("encryption_key", Value::Null),
        ("redirect_uris", json!([])),
        ("logout_uri", json!("")),
        ("logout_method", json!("backchannel")),
        ("sub_mode", json!("hashed_user_id")),
        ("issuer_mode", json!("per_provider")),
        ("jwt_federation_sources", json!([])),
        ("jwt_federation_providers", json!([])),
        // ProxyProvider
        ("internal_host", json!("")),
        ("external_host", json!("")),
        ("internal_host_ssl_validation", json!(true)),
        ("certificate", Value::Null),
        ("skip_path_regex", json!("")),
        ("basic_auth_enabled", json!(false)),
        ("basic_auth_user_attribute", json!("")),
        ("basic_auth_password_attribute", json!("")),
        ("mode", json!("proxy")),
        ("intercept_header_auth", json!(true)),
        ("cookie_domain", json!("")),
    ]
}

/// `ProxyProviderSerializer` checks. Like authentik, `validate` looks at the submitted
/// attributes only: a PATCH without `mode` is taken as `mode: proxy` and then needs an
/// `internal_host` in the same body.
fn validate(
    store: &Store,
    body: &Map<String, Value>,
    current: Option<i64>,
) -> Result<(), ApiError> {
    let mut errors = FieldErrors::default();
    check_common(store, body, current, &mut errors);
    if let Some(Value::String(pk)) = body.get("certificate")
        && !store.keypair_exists(pk)
    {
        errors.add("certificate", does_not_exist(&json!(pk)));
    }
    if let Some(Value::Array(pks)) = body.get("property_mappings")
        && let Some(missing) = pks.iter().find(|pk| {
            pk.as_str()
                .is_none_or(|pk| store.scope_mapping_index(pk).is_none())
        })
    {
        errors.add("property_mappings", does_not_exist(missing));
    }
    if let Some(first) = body
        .get("jwt_federation_sources")
        .and_then(Value::as_array)
        .and_then(|pks| pks.first())
    {
        errors.add("jwt_federation_sources", does_not_exist(first));
    }
    if let Some(Value::Array(pks)) = body.get("jwt_federation_providers")
        && let Some(missing) = pks.iter().find(|pk| {
            pk.as_i64()
                .and_then(|pk| store.providers.get(&pk))
                .is_none_or(|p| !matches!(p.kind, ProviderKind::OAuth2 | ProviderKind::Proxy))
        })
    {
        errors.add("jwt_federation_providers", does_not_exist(missing));
    }
    check_timedeltas(
        body,
        &["access_token_validity", "refresh_token_validity"],
        &mut errors,
    );
    let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or_default();
    if body.get("basic_auth_enabled").and_then(Value::as_bool) == Some(true)
        && (text("basic_auth_user_attribute").is_empty()
            || text("basic_auth_password_attribute").is_empty())
    {
        errors.add(
            "basic_auth_enabled",
            "User and password attributes must be set when basic auth is enabled.",
        );
    }
    if !errors.is_empty() {
        return errors.into_result();
    }
    let mode = body.get("mode").and_then(Value::as_str).unwrap_or("proxy");
    if mode == "proxy" && text("internal_host").is_empty() {
        errors.add(
            "internal_host",
            "Internal host cannot be empty when forward auth is disabled.",
        );
    }
    errors.into_result()
}

/// `ProxyProvider.set_oauth_defaults()`, run after every create and update.
fn set_oauth_defaults(store: &Store, fields: &mut Map<String, Value>) {
    fields.insert("client_type".into(), json!("confidential"));
    fields.insert("signing_key".into(), Value::Null);
    fields.insert("include_claims_in_id_token".into(), json!(true));
    let mut mappings: Vec<Value> = fields
        .get("property_mappings")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for managed in DEFAULT_SCOPES {
        if let Some(mapping) = store
            .scope_mappings
            .iter()
            .find(|m| m.get("managed").and_then(Value::as_str) == Some(managed))
            && let Some(pk) = mapping.get("pk")
            && !mappings.contains(pk)
        {
            mappings.push(pk.clone());
        }
    }
    fields.insert("property_mappings".into(), Value::Array(mappings));
    let external = fields
        .get("external_host")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let base = external.trim_end_matches('/');
    fields.insert(
        "redirect_uris".into(),
        json!([
            {"matching_mode": "strict", "url": format!("{base}/outpost.goauthentik.io/callback?X-authentik-auth-callback=true")},
            {"matching_mode": "strict", "url": format!("{external}?X-authentik-auth-callback=true")},
        ]),
    );
}

fn proxy<'s>(store: &'s Store, id: &str) -> Result<&'s Provider, ApiError> {
    parse_pk(id)
        .and_then(|pk| store.providers.get(&pk))
        .filter(|p| p.kind == MODEL)
        .ok_or(ApiError::NoMatch(MODEL.class_name()))
}

pub(crate) fn exists(store: &Store, id: &str) -> bool {
    proxy(store, id).is_ok()
}

/// The viewset declares only suffixed lookups (`name__iexact`, …).
pub(crate) fn list(store: &Store, query: &Query) -> ApiResult {
    Listing::new(store.all_proxy_providers(), query)
        .iexact("name__iexact", "name")
        .iexact("external_host__iexact", "external_host")
        .iexact("internal_host__iexact", "internal_host")
        .iexact("mode__iexact", "mode")
        .iexact("cookie_domain__iexact", "cookie_domain")
        .iexact("skip_path_regex__iexact", "skip_path_regex")
        .boolean_by("application__isnull", |p| {
            p.get("assigned_application_slug")
                .is_none_or(Value::is_null)
        })
        .search(|p| {
            p.get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .into_iter()
                .collect()
        })
        .order(&["name"])
        .page()
}

pub(crate) fn retrieve(store: &Store, id: &str) -> ApiResult {
    let provider = proxy(store, id)?;
    Ok(ApiResponse::ok(store.render_provider(provider)))
}

pub(crate) fn create(store: &mut Store, mut body: Map<String, Value>) -> ApiResult {
    canonicalize(&mut body);
    validate(store, &body, None)?;
    let pk = store.next_provider_pk;
    store.next_provider_pk += 1;
    let mut fields = Map::new();
    fields.insert("pk".into(), json!(pk));
    for (key, default) in defaults() {
        fields.insert(key.into(), body.get(key).cloned().unwrap_or(default));
    }
    set_oauth_defaults(store, &mut fields);
    let provider = Provider {
        kind: MODEL,
        fields,
    };
    let rendered = store.render_provider(&provider);
    store.providers.insert(pk, provider);
    Ok(ApiResponse::created(rendered))
}

/// PUT and PATCH: omitted fields stay; list fields are replaced, then the OAuth defaults are
/// applied again (so managed scopes come back).
pub(crate) fn update(store: &mut Store, id: &str, mut body: Map<String, Value>) -> ApiResult {
    let pk = proxy(store, id)?.pk();
    canonicalize(&mut body);
    validate(store, &body, Some(pk))?;
    let Some(mut fields) = store.providers.get(&pk).map(|p| p.fields.clone()) else {
        return Err(ApiError::NoMatch(MODEL.class_name()));
    };
    for (key, value) in body {
        fields.insert(key, value);
    }
    set_oauth_defaults(store, &mut fields);
    let Some(provider) = store.providers.get_mut(&pk) else {
        return Err(ApiError::NoMatch(MODEL.class_name()));
    };
    provider.fields = fields;
    let rendered = store
        .providers
        .get(&pk)
        .map(|p| store.render_provider(p))
        .unwrap_or_default();
    Ok(ApiResponse::ok(rendered))
}

pub(crate) fn destroy(store: &mut Store, id: &str) -> ApiResult {
    let pk = proxy(store, id)?.pk();
    store.remove_provider(pk);
    Ok(ApiResponse::no_content())
}
