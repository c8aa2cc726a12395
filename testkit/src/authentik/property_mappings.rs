//! `/propertymappings/provider/scope/` (`ScopeMappingViewSet`, ordering by scope name).

use serde_json::{Map, Value};

use super::api::{ApiError, ApiResponse, ApiResult, FieldErrors, canonical_uuid};
use super::list::{Listing, Query};
use super::seed;
use super::store::{Store, str_field};

const MODEL: &str = "ScopeMapping";

fn index(store: &Store, pm_uuid: &str) -> Result<usize, ApiError> {
    canonical_uuid(pm_uuid)
        .and_then(|pk| store.scope_mapping_index(&pk))
        .ok_or(ApiError::NoMatch(MODEL))
}

pub(crate) fn list(store: &Store, query: &Query) -> ApiResult {
    let items = store.all_scope_mappings();
    Listing::new(items, query)
        .any_of("managed", "managed")
        .boolean_by("managed__isnull", |m| {
            m.get("managed").is_none_or(Value::is_null)
        })
        .exact("name", "name")
        .exact("scope_name", "scope_name")
        .search(|m| {
            m.get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .into_iter()
                .collect()
        })
        .order(&["scope_name"])
        .page()
}

pub(crate) fn retrieve(store: &Store, pm_uuid: &str) -> ApiResult {
    let i = index(store, pm_uuid)?;
    Ok(ApiResponse::ok(Store::render_scope_mapping(
        &store.scope_mappings[i],
    )))
}

/// `PropertyMapping.name` and `.managed` are unique.
fn validate(
    store: &Store,
    body: &Map<String, Value>,
    current: Option<usize>,
) -> Result<(), ApiError> {
    let mut errors = FieldErrors::default();
    let others = || {
        store
            .scope_mappings
            .iter()
            .enumerate()
            .filter(move |(i, _)| Some(*i) != current)
            .map(|(_, m)| m)
            // Names and `managed` are unique across every kind of property mapping.
            .chain(store.saml_mappings.iter())
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

pub(crate) fn create(store: &mut Store, body: Map<String, Value>) -> ApiResult {
    validate(store, &body, None)?;
    let managed = body.get("managed").and_then(Value::as_str);
    let mapping = seed::scope_mapping(
        managed,
        str_field(&body, "name"),
        str_field(&body, "scope_name"),
        str_field(&body, "description"),
        str_field(&body, "expression"),
    );
    let rendered = Store::render_scope_mapping(&mapping);
    store.scope_mappings.push(mapping);
    Ok(ApiResponse::created(rendered))
}

pub(crate) fn update(store: &mut Store, pm_uuid: &str, body: Map<String, Value>) -> ApiResult {
    let i = index(store, pm_uuid)?;
    validate(store, &body, Some(i))?;
    let mapping = &mut store.scope_mappings[i];
    for (key, value) in body {
        mapping.insert(key, value);
    }
    Ok(ApiResponse::ok(Store::render_scope_mapping(mapping)))
}

pub(crate) fn destroy(store: &mut Store, pm_uuid: &str) -> ApiResult {
    let i = index(store, pm_uuid)?;
    store.remove_scope_mapping(i);
    Ok(ApiResponse::no_content())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn created_mappings_have_the_seeded_shape() {
        let mut store = Store::seeded();
        let body = json!({"name": "custom", "scope_name": "custom", "expression": "return {}"});
        let created = create(&mut store, body.as_object().cloned().unwrap_or_default())
            .map(|r| r.body.unwrap_or_default())
            .unwrap_or_default();
        let seeded = store.all_scope_mappings()[0].clone();
        let keys = |v: &Value| {
            v.as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(keys(&created), keys(&seeded));
        assert_eq!(created["description"], "");
        assert_eq!(created["managed"], Value::Null);
    }
}
