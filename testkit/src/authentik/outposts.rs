//! `/outposts/instances/` (`OutpostViewSet`): list, retrieve, and updates of the embedded
//! outpost's provider list.

use serde_json::{Map, Value};

use super::api::{ApiError, ApiResponse, ApiResult, FieldErrors, canonical_uuid, does_not_exist};
use super::list::{Listing, Query};
use super::seed::{EMBEDDED_OUTPOST_MANAGED, EMBEDDED_OUTPOST_NAME};
use super::store::{ProviderKind, Store};

const MODEL: &str = "Outpost";

fn index(store: &Store, uuid: &str) -> Result<usize, ApiError> {
    canonical_uuid(uuid)
        .and_then(|pk| store.outpost_index(&pk))
        .ok_or(ApiError::NoMatch(MODEL))
}

pub(crate) fn list(store: &Store, query: &Query) -> ApiResult {
    let items = store.all_outposts();
    Listing::new(items, query)
        .check(
            "providers_by_pk",
            |v| {
                v.parse::<i64>()
                    .is_ok_and(|pk| store.providers.contains_key(&pk))
            },
            "Select a valid choice. That choice is not one of the available choices.",
        )?
        .iexact("name__iexact", "name")
        .icontains("name__icontains", "name")
        .iexact("managed__iexact", "managed")
        .icontains("managed__icontains", "managed")
        .boolean_by("providers__isnull", |o| {
            o.get("providers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
        })
        .any_of("providers_by_pk", "providers")
        .search(|o| {
            let mut texts: Vec<String> = o
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .into_iter()
                .collect();
            if let Some(Value::Array(providers)) = o.get("providers_obj") {
                texts.extend(
                    providers
                        .iter()
                        .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned)),
                );
            }
            texts
        })
        .order(&["name"])
        .page()
}

pub(crate) fn retrieve(store: &Store, uuid: &str) -> ApiResult {
    let i = index(store, uuid)?;
    Ok(ApiResponse::ok(store.render_outpost(&store.outposts[i])))
}

/// `OutpostSerializer` checks: the embedded outpost keeps its name; providers must exist and,
/// when the body names a `type`, be of that outpost type (with no `type` in the body any
/// provider passes, as in authentik, which looks at `initial_data`); a non-embedded outpost
/// needs at least one provider; the config must carry `authentik_host`.
fn validate(
    store: &Store,
    body: &Map<String, Value>,
    outpost: &Map<String, Value>,
) -> Result<(), ApiError> {
    let mut errors = FieldErrors::default();
    let embedded = outpost.get("managed").and_then(Value::as_str) == Some(EMBEDDED_OUTPOST_MANAGED);

    if let Some(name) = body.get("name").and_then(Value::as_str)
        && embedded
        && name != EMBEDDED_OUTPOST_NAME
    {
        errors.add("name", "Embedded outpost's name cannot be changed");
    }

    if let Some(Value::Array(pks)) = body.get("providers") {
        let providers: Result<Vec<_>, &Value> = pks
            .iter()
            .map(|pk| {
                pk.as_i64()
                    .and_then(|pk| store.providers.get(&pk))
                    .ok_or(pk)
            })
            .collect();
        match providers {
            Err(missing) => errors.add("providers", does_not_exist(missing)),
            Ok(providers) => {
                if let Some(outpost_type) = body.get("type").and_then(Value::as_str)
                    && let Some(wrong) = providers.iter().find(|p| !fits(outpost_type, p.kind))
                {
                    errors.add(
                        "providers",
                        format!(
                            "Outpost type {outpost_type} can't be used with {} providers.",
                            wrong.kind.class_name()
                        ),
                    );
                } else if providers.is_empty() && !embedded {
                    errors.add("providers", "This list may not be empty.");
                }
            }
        }
    }

    // The stand-in has no service connections (the embedded outpost needs none).
    if let Some(connection) = body.get("service_connection").filter(|c| !c.is_null()) {
        errors.add("service_connection", does_not_exist(connection));
    }

    if let Some(config) = body.get("config")
        && config.get("authentik_host").is_none()
    {
        errors.add(
            "config",
            "Failed to validate config: missing value for field \"authentik_host\"",
        );
    }
    errors.into_result()
}

/// Whether a provider type can be served by an outpost type (authentik's `type_map`; plain
/// OAuth2 providers fit none).
fn fits(outpost_type: &str, kind: ProviderKind) -> bool {
    let wanted = match outpost_type {
        "proxy" => "ProxyProvider",
        "ldap" => "LDAPProvider",
        "radius" => "RadiusProvider",
        "rac" => "RACProvider",
        _ => return false,
    };
    kind.class_name() == wanted
}

/// PUT and PATCH: `providers` and `config` are replaced wholesale.
pub(crate) fn update(store: &mut Store, uuid: &str, body: Map<String, Value>) -> ApiResult {
    let i = index(store, uuid)?;
    validate(store, &body, &store.outposts[i])?;
    let outpost = &mut store.outposts[i];
    for (key, value) in body {
        outpost.insert(key, value);
    }
    Ok(ApiResponse::ok(store.render_outpost(&store.outposts[i])))
}
