//! Endpoints the stand-in serves read-only: the current user, the version, flows, certificate
//! keypairs and their certificates.

use serde_json::{Value, json};

use super::api::{ApiError, ApiResponse, ApiResult, canonical_uuid};
use super::list::{Listing, Query};
use super::schema::schemas;
use super::seed;
use super::store::Store;

pub(crate) fn me(store: &Store) -> ApiResult {
    Ok(ApiResponse::ok(store.me.clone()))
}

/// The version the request schemas were vendored from: the one the stand-in imitates.
pub(crate) fn version() -> ApiResult {
    Ok(ApiResponse::ok(seed::version(schemas().source_version())))
}

fn strings(item: &Value, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .filter_map(|k| item.get(*k).and_then(Value::as_str).map(str::to_owned))
        .collect()
}

pub(crate) fn list_flows(store: &Store, query: &Query) -> ApiResult {
    Listing::new(store.all_flows(), query)
        .exact("slug", "slug")
        .exact("name", "name")
        .exact("designation", "designation")
        .exact("denied_action", "denied_action")
        .filter("flow_uuid", |flow, value| {
            flow.get("pk").and_then(Value::as_str).map(canonical_uuid)
                == Some(canonical_uuid(value))
        })
        .search(|flow| strings(flow, &["slug", "name", "title"]))
        .order(&["slug", "name"])
        .page()
}

pub(crate) fn retrieve_flow(store: &Store, slug: &str) -> ApiResult {
    store
        .flows
        .iter()
        .find(|f| f["slug"] == slug)
        .map(|f| ApiResponse::ok(f.clone()))
        .ok_or(ApiError::NoMatch("Flow"))
}

pub(crate) fn list_keypairs(store: &Store, query: &Query) -> ApiResult {
    Listing::new(store.all_keypairs(), query)
        .exact("name", "name")
        .exact("managed", "managed")
        .boolean("has_key", "private_key_available")
        .any_of("key_type", "key_type")
        .search(|kp| strings(kp, &["name"]))
        .order(&["name"])
        .page()
}

fn keypair<'s>(store: &'s Store, kp_uuid: &str) -> Result<&'s seed::Keypair, ApiError> {
    let pk = canonical_uuid(kp_uuid).ok_or(ApiError::NoMatch("CertificateKeyPair"))?;
    store
        .keypairs
        .iter()
        .find(|k| k.pk() == pk)
        .ok_or(ApiError::NoMatch("CertificateKeyPair"))
}

pub(crate) fn retrieve_keypair(store: &Store, kp_uuid: &str) -> ApiResult {
    keypair(store, kp_uuid).map(|k| ApiResponse::ok(k.fields.clone()))
}

/// `CertificateData`. authentik also records a `secret_view` event for every call; the stand-in
/// has no events, the request log shows the calls (`SimHandle::certificate_views`).
pub(crate) fn view_certificate(store: &Store, kp_uuid: &str) -> ApiResult {
    keypair(store, kp_uuid).map(|k| ApiResponse::ok(json!({ "data": k.certificate_pem })))
}
