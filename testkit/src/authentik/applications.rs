//! `/core/applications/` (`ApplicationViewSet`, lookup by slug, ordering by name).

use serde_json::{Map, Value, json};

use super::api::{ApiError, ApiResponse, ApiResult, FieldErrors, does_not_exist};
use super::list::{Listing, Query};
use super::seed::new_uuid;
use super::store::{Store, str_field};

/// Slugs that would clash with the OAuth2 provider endpoints (`Application.reserved_slugs`).
const RESERVED_SLUGS: [&str; 6] = [
    "authorize",
    "token",
    "device",
    "userinfo",
    "introspect",
    "revoke",
];

const MODEL: &str = "Application";

pub(crate) fn list(store: &Store, query: &Query) -> ApiResult {
    // `superuser_full_list` only bypasses authentik's per-user policy filtering and cache; the
    // stand-in's single token is a superuser with no policies, so there is nothing to bypass.
    let links = store.links();
    let items = store
        .applications
        .iter()
        .map(|a| store.render_application_in(&links, a))
        .collect();
    Listing::new(items, query)
        .exact("name", "name")
        .exact("slug", "slug")
        .exact("group", "group")
        .exact("meta_launch_url", "meta_launch_url")
        .exact("meta_description", "meta_description")
        .exact("meta_publisher", "meta_publisher")
        .search(|app| {
            [
                "name",
                "slug",
                "meta_launch_url",
                "meta_description",
                "meta_publisher",
                "group",
            ]
            .iter()
            .filter_map(|k| app.get(*k).and_then(Value::as_str).map(str::to_owned))
            .collect()
        })
        .order(&["name"])
        .page()
}

pub(crate) fn retrieve(store: &Store, slug: &str) -> ApiResult {
    let index = store
        .application_index(slug)
        .ok_or(ApiError::NoMatch(MODEL))?;
    Ok(ApiResponse::ok(
        store.render_application(&store.applications[index]),
    ))
}

/// Serializer-level checks (after the request schema passed): reserved and unique slug,
/// provider existence and the one-to-one `provider`.
fn validate(
    store: &Store,
    body: &Map<String, Value>,
    current: Option<usize>,
) -> Result<(), ApiError> {
    let mut errors = FieldErrors::default();
    let others = || {
        store
            .applications
            .iter()
            .enumerate()
            .filter(move |(i, _)| Some(*i) != current)
            .map(|(_, a)| a)
    };

    if let Some(slug) = body.get("slug").and_then(Value::as_str) {
        if RESERVED_SLUGS.contains(&slug) {
            errors.add(
                "slug",
                format!("The slug '{slug}' is reserved and cannot be used for applications."),
            );
        } else if others().any(|a| str_field(a, "slug") == slug) {
            errors.add("slug", "Application with this slug already exists.");
        }
    }

    if let Some(provider) = body.get("provider").filter(|p| !p.is_null()) {
        let pk = provider.as_i64();
        if pk.is_none_or(|pk| !store.providers.contains_key(&pk)) {
            errors.add("provider", does_not_exist(provider));
        } else if others().any(|a| a.get("provider") == Some(provider)) {
            errors.add("provider", "Application with this provider already exists.");
        }
    }

    if let Some(Value::Array(pks)) = body.get("backchannel_providers")
        && let Some(missing) = pks.iter().find(|pk| {
            pk.as_i64()
                .is_none_or(|pk| !store.providers.contains_key(&pk))
        })
    {
        errors.add("backchannel_providers", does_not_exist(missing));
    }

    errors.into_result()
}

/// `Provider.backchannel_application` is a foreign key: naming a provider as backchannel of
/// this application takes it away from any other.
fn claim_backchannel(store: &mut Store, index: usize) {
    let claimed = store.applications[index]
        .get("backchannel_providers")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let Value::Array(claimed) = claimed else {
        return;
    };
    for (i, app) in store.applications.iter_mut().enumerate() {
        if i == index {
            continue;
        }
        if let Some(Value::Array(pks)) = app.get_mut("backchannel_providers") {
            pks.retain(|pk| !claimed.contains(pk));
        }
    }
}

pub(crate) fn create(store: &mut Store, body: Map<String, Value>) -> ApiResult {
    validate(store, &body, None)?;
    let mut app = Map::new();
    app.insert("pk".into(), json!(new_uuid()));
    for (key, default) in [
        ("name", json!("")),
        ("slug", json!("")),
        ("provider", Value::Null),
        ("backchannel_providers", json!([])),
        ("open_in_new_tab", json!(false)),
        ("meta_launch_url", json!("")),
        ("meta_icon", json!("")),
        ("meta_description", json!("")),
        ("meta_publisher", json!("")),
        ("policy_engine_mode", json!("any")),
        ("group", json!("")),
    ] {
        app.insert(key.into(), body.get(key).cloned().unwrap_or(default));
    }
    store.applications.push(app);
    let index = store.applications.len() - 1;
    claim_backchannel(store, index);
    Ok(ApiResponse::created(
        store.render_application(&store.applications[index]),
    ))
}

/// PUT and PATCH: DRF leaves fields the body omits as they are (PUT differs only in which
/// fields the request schema requires); list fields are replaced wholesale.
pub(crate) fn update(store: &mut Store, slug: &str, body: Map<String, Value>) -> ApiResult {
    let index = store
        .application_index(slug)
        .ok_or(ApiError::NoMatch(MODEL))?;
    validate(store, &body, Some(index))?;
    let app = &mut store.applications[index];
    for (key, value) in body {
        app.insert(key, value);
    }
    claim_backchannel(store, index);
    Ok(ApiResponse::ok(
        store.render_application(&store.applications[index]),
    ))
}

pub(crate) fn destroy(store: &mut Store, slug: &str) -> ApiResult {
    let index = store
        .application_index(slug)
        .ok_or(ApiError::NoMatch(MODEL))?;
    store.remove_application(index);
    Ok(ApiResponse::no_content())
}
