//! `/providers/saml/` (`SAMLProviderViewSet`) and `/propertymappings/provider/saml/`
//! (`SAMLPropertyMappingViewSet`).

use serde_json::{Map, Value, json};

use super::api::{ApiError, ApiResponse, ApiResult, FieldErrors, canonical_uuid, does_not_exist};
use super::list::{Listing, Query};
use super::providers::{canonicalize, check_common, check_timedeltas, parse_pk};
use super::seed;
use super::store::{Provider, ProviderKind, Store, str_field};

const SAML_TIMEDELTAS: [&str; 3] = [
    "assertion_valid_not_before",
    "assertion_valid_not_on_or_after",
    "session_valid_not_on_or_after",
];

/// `SAMLProvider`'s model defaults: the API applies these and nothing else (no signing key,
/// no property mappings, the issuer `authentik` for every provider).
fn defaults() -> [(&'static str, Value); 26] {
    [
        ("name", json!("")),
        ("authentication_flow", Value::Null),
        ("authorization_flow", Value::Null),
        ("invalidation_flow", Value::Null),
        ("property_mappings", json!([])),
        ("acs_url", json!("")),
        ("sls_url", json!("")),
        ("audience", json!("")),
        ("issuer", json!("authentik")),
        ("assertion_valid_not_before", json!("minutes=-5")),
        ("assertion_valid_not_on_or_after", json!("minutes=5")),
        ("session_valid_not_on_or_after", json!("minutes=86400")),
        ("name_id_mapping", Value::Null),
        ("authn_context_class_ref_mapping", Value::Null),
        (
            "digest_algorithm",
            json!("http://www.w3.org/2001/04/xmlenc#sha256"),
        ),
        (
            "signature_algorithm",
            json!("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"),
        ),
        ("signing_kp", Value::Null),
        ("verification_kp", Value::Null),
        ("encryption_kp", Value::Null),
        ("sign_assertion", json!(true)),
        ("sign_response", json!(false)),
        ("sign_logout_request", json!(false)),
        ("sp_binding", json!("redirect")),
        ("sls_binding", json!("redirect")),
        ("logout_method", json!("frontchannel_iframe")),
        (
            "default_name_id_policy",
            json!("urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"),
        ),
    ]
}

/// `SAMLProviderSerializer` checks, on the submitted attributes only (as authentik does, so a
/// PATCH that sets `signing_kp` must repeat `sign_assertion`/`sign_response`).
fn validate(
    store: &Store,
    body: &Map<String, Value>,
    current: Option<i64>,
) -> Result<(), ApiError> {
    let mut errors = FieldErrors::default();
    check_common(store, body, current, &mut errors);
    for key in ["signing_kp", "encryption_kp"] {
        if let Some(Value::String(pk)) = body.get(key)
            && !store.keypair_with_key_exists(pk)
        {
            errors.add(key, does_not_exist(&json!(pk)));
        }
    }
    // A verification certificate needs no private key.
    if let Some(Value::String(pk)) = body.get("verification_kp")
        && !store.keypair_exists(pk)
    {
        errors.add("verification_kp", does_not_exist(&json!(pk)));
    }
    if let Some(Value::Array(pks)) = body.get("property_mappings")
        && let Some(missing) = pks.iter().find(|pk| {
            pk.as_str()
                .is_none_or(|pk| store.saml_mapping_index(pk).is_none())
        })
    {
        errors.add("property_mappings", does_not_exist(missing));
    }
    for key in ["name_id_mapping", "authn_context_class_ref_mapping"] {
        if let Some(Value::String(pk)) = body.get(key)
            && store.saml_mapping_index(pk).is_none()
        {
            errors.add(key, does_not_exist(&json!(pk)));
        }
    }
    check_timedeltas(body, &SAML_TIMEDELTAS, &mut errors);
    if !errors.is_empty() {
        return errors.into_result();
    }
    let signing = body.get("signing_kp").is_some_and(|kp| !kp.is_null());
    let signs = |key: &str| body.get(key).and_then(Value::as_bool) == Some(true);
    if signing && !signs("sign_assertion") && !signs("sign_response") {
        errors.add(
            "non_field_errors",
            "With a signing keypair selected, at least one of 'Sign assertion' and 'Sign Response' must be selected.",
        );
    }
    errors.into_result()
}

/// authentik cannot send a backchannel logout over the redirect binding and quietly falls
/// back to the front-channel iframe.
fn normalise(body: &mut Map<String, Value>, stored: Option<&Map<String, Value>>) {
    let sls_binding = body
        .get("sls_binding")
        .or_else(|| stored.and_then(|s| s.get("sls_binding")))
        .and_then(Value::as_str)
        .unwrap_or("redirect");
    if body.get("logout_method").and_then(Value::as_str) == Some("backchannel")
        && sls_binding == "redirect"
    {
        body.insert("logout_method".into(), json!("frontchannel_iframe"));
    }
}

fn saml<'s>(store: &'s Store, id: &str) -> Result<&'s Provider, ApiError> {
    parse_pk(id)
        .and_then(|pk| store.providers.get(&pk))
        .filter(|p| p.kind == ProviderKind::Saml)
        .ok_or(ApiError::NoMatch(ProviderKind::Saml.class_name()))
}

pub(crate) fn exists(store: &Store, id: &str) -> bool {
    saml(store, id).is_ok()
}

pub(crate) fn list(store: &Store, query: &Query) -> ApiResult {
    let is_uuid = |v: &str| canonical_uuid(v).is_some();
    let same_uuid = |item: &Value, key: &str, value: &str| {
        item.get(key).and_then(Value::as_str).map(canonical_uuid) == Some(canonical_uuid(value))
    };
    let mut listing = Listing::new(store.all_saml_providers(), query);
    for key in [
        "signing_kp",
        "verification_kp",
        "encryption_kp",
        "authorization_flow",
        "invalidation_flow",
        "name_id_mapping",
    ] {
        listing = listing
            .check(key, is_uuid, "Enter a valid UUID.")?
            .filter(key, |item, value| same_uuid(item, key, value));
    }
    listing
        .exact("name", "name")
        .exact("acs_url", "acs_url")
        .exact("sls_url", "sls_url")
        .exact("audience", "audience")
        .exact("issuer", "issuer")
        .exact("sp_binding", "sp_binding")
        .exact("sls_binding", "sls_binding")
        .exact("logout_method", "logout_method")
        .exact("default_name_id_policy", "default_name_id_policy")
        .exact("digest_algorithm", "digest_algorithm")
        .exact("signature_algorithm", "signature_algorithm")
        .boolean("sign_assertion", "sign_assertion")
        .boolean("sign_response", "sign_response")
        .any_of("property_mappings", "property_mappings")
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
    let provider = saml(store, id)?;
    Ok(ApiResponse::ok(store.render_provider(provider)))
}

pub(crate) fn create(store: &mut Store, mut body: Map<String, Value>) -> ApiResult {
    canonicalize(&mut body);
    validate(store, &body, None)?;
    normalise(&mut body, None);
    let pk = store.next_provider_pk;
    store.next_provider_pk += 1;
    let mut fields = Map::new();
    fields.insert("pk".into(), json!(pk));
    for (key, default) in defaults() {
        fields.insert(key.into(), body.get(key).cloned().unwrap_or(default));
    }
    let provider = Provider {
        kind: ProviderKind::Saml,
        fields,
    };
    let rendered = store.render_provider(&provider);
    store.providers.insert(pk, provider);
    Ok(ApiResponse::created(rendered))
}

/// PUT and PATCH: omitted fields stay; list fields are replaced wholesale.
pub(crate) fn update(store: &mut Store, id: &str, mut body: Map<String, Value>) -> ApiResult {
    let pk = saml(store, id)?.pk();
    canonicalize(&mut body);
    validate(store, &body, Some(pk))?;
    let Some(provider) = store.providers.get_mut(&pk) else {
        return Err(ApiError::NoMatch(ProviderKind::Saml.class_name()));
    };
    normalise(&mut body, Some(&provider.fields));
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

pub(crate) fn destroy(store: &mut Store, id: &str) -> ApiResult {
    let pk = saml(store, id)?.pk();
    store.remove_provider(pk);
    Ok(ApiResponse::no_content())
}

// ----- SAML property mappings -----

const MAPPING_MODEL: &str = "SAMLPropertyMapping";

fn mapping_index(store: &Store, pm_uuid: &str) -> Result<usize, ApiError> {
    canonical_uuid(pm_uuid)
        .and_then(|pk| store.saml_mapping_index(&pk))
        .ok_or(ApiError::NoMatch(MAPPING_MODEL))
}

pub(crate) fn mapping_exists(store: &Store, pm_uuid: &str) -> bool {
    mapping_index(store, pm_uuid).is_ok()
}

pub(crate) fn list_mappings(store: &Store, query: &Query) -> ApiResult {
    Listing::new(store.all_saml_mappings(), query)
        .any_of("managed", "managed")
        .boolean_by("managed__isnull", |m| {
            m.get("managed").is_none_or(Value::is_null)
        })
        .exact("name", "name")
        .exact("saml_name", "saml_name")
        .exact("friendly_name", "friendly_name")
        .search(|m| {
            m.get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .into_iter()
                .collect()
        })
        .order(&["name"])
        .page()
}

pub(crate) fn retrieve_mapping(store: &Store, pm_uuid: &str) -> ApiResult {
    let i = mapping_index(store, pm_uuid)?;
    Ok(ApiResponse::ok(Value::Object(
        store.saml_mappings[i].clone(),
    )))
}

/// `PropertyMapping.name` and `.managed` are unique across every kind of property mapping.
fn validate_mapping(
    store: &Store,
    body: &Map<String, Value>,
    current: Option<usize>,
) -> Result<(), ApiError> {
    let mut errors = FieldErrors::default();
    let others = || {
        store
            .saml_mappings
            .iter()
            .enumerate()
            .filter(move |(i, _)| Some(*i) != current)
            .map(|(_, m)| m)
            .chain(store.scope_mappings.iter())
    };
    if let Some(name) = body.get("name").and_then(Value::as_str)
        && others().any(|m| str_field(m, "name") == name)
    {
        errors.add("name", "Property Mapping with this name already exists.");
    }
    if let Some(managed) = body.get("managed").and_then(Value::as_str)
        && others().any(|m| m.get("managed").and_then(Value::as_str) == Some(managed))
    {
        errors.add(
            "managed",
            "Property Mapping with this Managed by authentik already exists.",
        );
    }
    errors.into_result()
}

pub(crate) fn create_mapping(store: &mut Store, body: Map<String, Value>) -> ApiResult {
    validate_mapping(store, &body, None)?;
    let mapping = seed::saml_mapping(
        body.get("managed").and_then(Value::as_str),
        str_field(&body, "name"),
        str_field(&body, "saml_name"),
        body.get("friendly_name").and_then(Value::as_str),
        str_field(&body, "expression"),
    );
    let rendered = Value::Object(mapping.clone());
    store.saml_mappings.push(mapping);
    Ok(ApiResponse::created(rendered))
}

pub(crate) fn update_mapping(
    store: &mut Store,
    pm_uuid: &str,
    body: Map<String, Value>,
) -> ApiResult {
    let i = mapping_index(store, pm_uuid)?;
    validate_mapping(store, &body, Some(i))?;
    let mapping = &mut store.saml_mappings[i];
    for (key, value) in body {
        mapping.insert(key, value);
    }
    Ok(ApiResponse::ok(Value::Object(mapping.clone())))
}

pub(crate) fn destroy_mapping(store: &mut Store, pm_uuid: &str) -> ApiResult {
    let i = mapping_index(store, pm_uuid)?;
    store.remove_saml_mapping(i);
    Ok(ApiResponse::no_content())
}
