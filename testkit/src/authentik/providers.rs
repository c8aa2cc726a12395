//! `/providers/oauth2/` (`OAuth2ProviderViewSet`) and `/providers/all/` (`ProviderViewSet`).

use std::collections::HashMap;

use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Map, Value, json};

use super::api::{ApiError, ApiResponse, ApiResult, FieldErrors, canonical_uuid, does_not_exist};
use super::list::{Listing, Query};
use super::store::{Provider, ProviderKind, Store, str_field, timedelta_seconds};

/// authentik's `generate_id()`: 40 letters and digits.
pub(crate) fn generate_client_id() -> String {
    random_alphanumeric(40)
}

/// authentik's `generate_client_secret()`: 128 letters and digits.
pub(crate) fn generate_client_secret() -> String {
    random_alphanumeric(128)
}

fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

const UUID_FIELDS: [&str; 11] = [
    "authentication_flow",
    "authorization_flow",
    "invalidation_flow",
    "signing_key",
    "encryption_key",
    "signing_kp",
    "verification_kp",
    "encryption_kp",
    "name_id_mapping",
    "authn_context_class_ref_mapping",
    "certificate",
];
const UUID_LIST_FIELDS: [&str; 2] = ["property_mappings", "jwt_federation_sources"];
pub(crate) const TIMEDELTA_FIELDS: [&str; 4] = [
    "access_code_validity",
    "access_token_validity",
    "refresh_token_validity",
    "refresh_token_threshold",
];

/// Django stores UUIDs in one canonical form and renders that; do the same with pks we keep.
pub(crate) fn canonicalize(body: &mut Map<String, Value>) {
    for key in UUID_FIELDS {
        if let Some(Value::String(s)) = body.get_mut(key)
            && let Some(canonical) = canonical_uuid(s)
        {
            *s = canonical;
        }
    }
    for key in UUID_LIST_FIELDS {
        if let Some(Value::Array(items)) = body.get_mut(key) {
            for item in items {
                if let Value::String(s) = item
                    && let Some(canonical) = canonical_uuid(s)
                {
                    *s = canonical;
                }
            }
        }
    }
}

/// Checks every provider serializer makes: `Provider.name` is unique across all provider types,
/// and the flows named must exist.
pub(crate) fn check_common(
    store: &Store,
    body: &Map<String, Value>,
    current: Option<i64>,
    errors: &mut FieldErrors,
) {
    if let Some(name) = body.get("name").and_then(Value::as_str)
        && store
            .providers
            .values()
            .any(|p| Some(p.pk()) != current && p.name() == name)
    {
        errors.add("name", "provider with this name already exists.");
    }
    for key in [
        "authentication_flow",
        "authorization_flow",
        "invalidation_flow",
    ] {
        if let Some(Value::String(pk)) = body.get(key)
            && !store.flow_exists(pk)
        {
            errors.add(key, does_not_exist(&json!(pk)));
        }
    }
}

/// Timedelta strings (`hours=1;minutes=2`) must parse.
pub(crate) fn check_timedeltas(body: &Map<String, Value>, keys: &[&str], errors: &mut FieldErrors) {
    for key in keys {
        if let Some(Value::String(value)) = body.get(*key)
            && timedelta_seconds(value).is_none()
        {
            errors.add(
                key,
                format!("{value} is not in the correct format of 'hours=3;minutes=1'."),
            );
        }
    }
}

/// Serializer-level checks for an OAuth2 provider (after the request schema passed).
fn validate_oauth2(
    store: &Store,
    body: &Map<String, Value>,
    current: Option<i64>,
) -> Result<(), ApiError> {
    let mut errors = FieldErrors::default();
    let others = || {
        store
            .providers
            .values()
            .filter(move |p| Some(p.pk()) != current)
    };
    check_common(store, body, current, &mut errors);
    if let Some(client_id) = body.get("client_id").and_then(Value::as_str)
        && others().any(|p| {
            matches!(p.kind, ProviderKind::OAuth2 | ProviderKind::Proxy)
                && str_field(&p.fields, "client_id") == client_id
        })
    {
        errors.add(
            "client_id",
            "OAuth2/OpenID Provider with this Client ID already exists.",
        );
    }

    for key in ["signing_key", "encryption_key"] {
        if let Some(Value::String(pk)) = body.get(key)
            && !store.keypair_with_key_exists(pk)
        {
            errors.add(key, does_not_exist(&json!(pk)));
        }
    }
    if let Some(Value::Array(pks)) = body.get("property_mappings")
        && let Some(missing) = pks.iter().find(|pk| {
            pk.as_str()
                .is_none_or(|pk| store.scope_mapping_index(pk).is_none())
        })
    {
        errors.add("property_mappings", does_not_exist(missing));
    }
    // The stand-in has no sources, so no JWT federation source can exist.
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
                .is_none_or(|p| p.kind != ProviderKind::OAuth2)
        })
    {
        errors.add("jwt_federation_providers", does_not_exist(missing));
    }

    check_timedeltas(body, &TIMEDELTA_FIELDS, &mut errors);

    // Regex redirect URIs are compiled when saved (Python `re`; fancy-regex is the closest).
    if let Some(Value::Array(uris)) = body.get("redirect_uris") {
        for uri in uris {
            if uri.get("matching_mode").and_then(Value::as_str) == Some("regex") {
                let url = uri.get("url").and_then(Value::as_str).unwrap_or_default();
                if fancy_regex::Regex::new(url).is_err() && !errors.has("redirect_uris") {
                    errors.add("redirect_uris", format!("Invalid Regex Pattern: {url}"));
                }
            }
        }
    }

    errors.into_result()
}

pub(crate) fn parse_pk(id: &str) -> Option<i64> {
    id.parse().ok()
}

fn oauth2<'s>(store: &'s Store, id: &str) -> Result<&'s Provider, ApiError> {
    parse_pk(id)
        .and_then(|pk| store.providers.get(&pk))
        .filter(|p| p.kind == ProviderKind::OAuth2)
        .ok_or(ApiError::NoMatch(ProviderKind::OAuth2.class_name()))
}

pub(crate) fn list_oauth2(store: &Store, query: &Query) -> ApiResult {
    let links = store.links();
    let application_of: HashMap<i64, String> = store
        .providers
        .keys()
        .filter_map(|pk| {
            store
                .linked_application(&links, *pk)
                .map(|a| (*pk, str_field(a, "pk").to_owned()))
        })
        .collect();
    let items = store
        .providers
        .values()
        .filter(|p| p.kind == ProviderKind::OAuth2)
        .map(|p| store.render_provider_in(&links, p))
        .collect();
    let is_uuid = |v: &str| canonical_uuid(v).is_some();
    let same_uuid = |item: &Value, key: &str, value: &str| {
        item.get(key).and_then(Value::as_str).map(canonical_uuid) == Some(canonical_uuid(value))
    };
    Listing::new(items, query)
        .check("application", is_uuid, "Enter a valid UUID.")?
        .check("authorization_flow", is_uuid, "Enter a valid UUID.")?
        .check("signing_key", is_uuid, "Enter a valid UUID.")?
        .exact("name", "name")
        .exact("client_id", "client_id")
        .exact("client_type", "client_type")
        .filter("application", |item, value| {
            item.get("pk")
                .and_then(Value::as_i64)
                .and_then(|pk| application_of.get(&pk))
                .map(|app| canonical_uuid(app))
                == Some(canonical_uuid(value))
        })
        .filter("authorization_flow", |item, value| {
            same_uuid(item, "authorization_flow", value)
        })
        .filter("signing_key", |item, value| {
            same_uuid(item, "signing_key", value)
        })
        .any_of("property_mappings", "property_mappings")
        .exact("sub_mode", "sub_mode")
        .exact("issuer_mode", "issuer_mode")
        .boolean("include_claims_in_id_token", "include_claims_in_id_token")
        .exact("access_code_validity", "access_code_validity")
        .exact("access_token_validity", "access_token_validity")
        .exact("refresh_token_validity", "refresh_token_validity")
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

pub(crate) fn retrieve_oauth2(store: &Store, id: &str) -> ApiResult {
    let provider = oauth2(store, id)?;
    Ok(ApiResponse::ok(store.render_provider(provider)))
}

pub(crate) fn create_oauth2(store: &mut Store, mut body: Map<String, Value>) -> ApiResult {
    canonicalize(&mut body);
    validate_oauth2(store, &body, None)?;
    let pk = store.next_provider_pk;
    store.next_provider_pk += 1;
    let mut fields = Map::new();
    fields.insert("pk".into(), json!(pk));
    for (key, default) in [
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
    ] {
        fields.insert(key.into(), body.get(key).cloned().unwrap_or(default));
    }
    let provider = Provider {
        kind: ProviderKind::OAuth2,
        fields,
    };
    let rendered = store.render_provider(&provider);
    store.providers.insert(pk, provider);
    Ok(ApiResponse::created(rendered))
}

/// PUT and PATCH: omitted fields stay; list fields are replaced wholesale.
pub(crate) fn update_oauth2(
    store: &mut Store,
    id: &str,
    mut body: Map<String, Value>,
) -> ApiResult {
    let pk = oauth2(store, id)?.pk();
    canonicalize(&mut body);
    validate_oauth2(store, &body, Some(pk))?;
    let Some(provider) = store.providers.get_mut(&pk) else {
        return Err(ApiError::NoMatch(ProviderKind::OAuth2.class_name()));
    };
    for (key, value) in body {
        provider.fields.insert(key, value);
    }
    let rendered = store
        .providers
        .get(&pk)
        .map(|p| store.render_provider(p))
        .unwrap_or_default();
    Ok(ApiResponse::ok(rendered))
}

pub(crate) fn destroy_oauth2(store: &mut Store, id: &str) -> ApiResult {
    let pk = oauth2(store, id)?.pk();
    store.remove_provider(pk);
    Ok(ApiResponse::no_content())
}

fn any_provider<'s>(store: &'s Store, id: &str) -> Result<&'s Provider, ApiError> {
    parse_pk(id)
        .and_then(|pk| store.providers.get(&pk))
        .ok_or(ApiError::NoMatch("Provider"))
}

pub(crate) fn list_all(store: &Store, query: &Query) -> ApiResult {
    let links = store.links();
    let items = store
        .providers
        .values()
        .map(|p| store.render_provider_base_in(&links, p))
        .collect();
    Listing::new(items, query)
        .boolean_by("application__isnull", |p| {
            p.get("assigned_application_slug")
                .is_none_or(Value::is_null)
        })
        // No provider type the stand-in knows is a backchannel provider.
        .boolean_by("backchannel", |_| false)
        .search(|p| {
            ["name", "assigned_application_name"]
                .iter()
                .filter_map(|k| p.get(*k).and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .order(&["pk"])
        .page()
}

pub(crate) fn retrieve_any(store: &Store, id: &str) -> ApiResult {
    let provider = any_provider(store, id)?;
    Ok(ApiResponse::ok(store.render_provider_base(provider)))
}

pub(crate) fn destroy_any(store: &mut Store, id: &str) -> ApiResult {
    let pk = any_provider(store, id)?.pk();
    store.remove_provider(pk);
    Ok(ApiResponse::no_content())
}
