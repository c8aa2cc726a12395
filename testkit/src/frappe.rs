//! A stateful stand-in for the part of Frappe's REST API the `frappe` flow uses: the
//! `Social Login Key` doctype under `/api/resource/` and `frappe.client.get_password`.
//!
//! As in Frappe (v15, API v1): `Authorization: token <api_key>:<api_secret>`; a wrong key or
//! secret is 401 `AuthenticationError`, a caller without the System Manager role (or no
//! credentials at all) is 403 `PermissionError`; a missing document is 404
//! `DoesNotExistError`, a second one with the same name 409 `DuplicateEntryError`, a failed
//! `validate()` 417 `ValidationError` — each as a JSON body with `exc_type`, `exception` and the
//! JSON-encoded `_server_messages`. The document is named `scrub(provider_name)`; its
//! `client_secret` is a Password field, stored apart and returned by GET masked as one `*` per
//! character; a PUT of such a mask leaves the password alone; only `get_password` reveals it.
//!
//! Where it differs on purpose: fields the doctype does not have, and values of the wrong type
//! (Frappe drops the first and coerces the second), are answered 417 and recorded as schema
//! violations.
//!
//! ```rust,no_run
//! # async fn demo() {
//! let frappe = testkit::FrappeSim::new("api-key", "api-secret").start().await;
//! let url = frappe.base_url(); // "http://127.0.0.1:PORT"
//! frappe.set_client_secret("authentik", "changed-in-frappe"); // drift
//! assert_eq!(frappe.write_count(), 0);
//! # }
//! ```

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const MAX_BODY_BYTES: usize = 1024 * 1024;
const DOCTYPE: &str = "Social Login Key";
const TIMESTAMP: &str = "2026-01-12 09:30:00.000000";

/// One request as the stand-in saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrappeRequest {
    pub method: String,
    /// Percent-decoded, e.g. `/api/resource/Social Login Key/authentik`.
    pub path: String,
    pub query: String,
    pub status: u16,
}

/// Builder for the Frappe stand-in.
#[derive(Debug, Clone)]
pub struct FrappeSim {
    api_key: String,
    api_secret: String,
    limited: Option<(String, String)>,
}

impl FrappeSim {
    /// A site whose Administrator (System Manager) has this API key and secret.
    pub fn new(api_key: &str, api_secret: &str) -> FrappeSim {
        FrappeSim {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            limited: None,
        }
    }

    /// Also a user without the System Manager role, with these API credentials.
    pub fn limited_user(mut self, api_key: &str, api_secret: &str) -> FrappeSim {
        self.limited = Some((api_key.into(), api_secret.into()));
        self
    }

    /// Serve on a random loopback port inside the current tokio runtime.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(self) -> FrappeHandle {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap_or_else(|err| panic!("Frappe stand-in cannot listen: {err}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|err| panic!("Frappe stand-in has no address: {err}"));
        let mut users = vec![User {
            api_key: self.api_key,
            api_secret: self.api_secret,
            system_manager: true,
        }];
        if let Some((api_key, api_secret)) = self.limited {
            users.push(User {
                api_key,
                api_secret,
                system_manager: false,
            });
        }
        let shared = Arc::new(Mutex::new(Site {
            users,
            docs: BTreeMap::new(),
            log: Vec::new(),
            writes: 0,
            violations: Vec::new(),
        }));
        let app = Router::new()
            .fallback(entry)
            .with_state(Arc::clone(&shared));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(err) = server.await {
                tracing::error!(%err, "Frappe stand-in stopped");
            }
        });
        FrappeHandle {
            site: shared,
            addr,
            shutdown: Some(tx),
        }
    }
}

/// A running Frappe stand-in. Dropping it stops the server.
#[derive(Debug)]
pub struct FrappeHandle {
    site: Arc<Mutex<Site>>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for FrappeHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn lock(site: &Mutex<Site>) -> MutexGuard<'_, Site> {
    site.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FrappeHandle {
    /// `http://127.0.0.1:PORT`, the site's address.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every `Social Login Key` as a GET returns it (password masked).
    pub fn social_login_keys(&self) -> Vec<Value> {
        lock(&self.site).docs.values().map(Doc::response).collect()
    }

    /// One `Social Login Key` as a GET returns it.
    pub fn social_login_key(&self, name: &str) -> Option<Value> {
        lock(&self.site).docs.get(name).map(Doc::response)
    }

    /// The stored (decrypted) client secret.
    pub fn client_secret(&self, name: &str) -> Option<String> {
        lock(&self.site)
            .docs
            .get(name)
            .and_then(|d| d.client_secret.clone())
    }

    /// Change the stored client secret, as an admin editing the document would.
    ///
    /// # Panics
    /// If there is no such document.
    pub fn set_client_secret(&self, name: &str, secret: &str) {
        let mut site = lock(&self.site);
        let Some(doc) = site.docs.get_mut(name) else {
            panic!("no Social Login Key {name}");
        };
        doc.client_secret = Some(secret.into());
    }

    /// Shallow-merge fields into the document, bypassing validation.
    ///
    /// # Panics
    /// If there is no such document or `patch` is not an object.
    pub fn patch_social_login_key(&self, name: &str, patch: Value) {
        let mut site = lock(&self.site);
        let Some(doc) = site.docs.get_mut(name) else {
            panic!("no Social Login Key {name}");
        };
        let Value::Object(patch) = patch else {
            panic!("patch must be a JSON object");
        };
        doc.fields.extend(patch);
    }

    /// Returns whether it existed.
    pub fn delete_social_login_key(&self, name: &str) -> bool {
        lock(&self.site).docs.remove(name).is_some()
    }

    /// Give the System Manager a new API secret, as `generate_keys` does; the old one is refused.
    pub fn set_api_secret(&self, secret: &str) {
        if let Some(user) = lock(&self.site).users.first_mut() {
            user.api_secret = secret.into();
        }
    }

    /// POST/PUT/DELETE requests that got past authentication, refused ones included.
    pub fn write_count(&self) -> usize {
        lock(&self.site).writes
    }

    pub fn requests(&self) -> Vec<FrappeRequest> {
        lock(&self.site).log.clone()
    }

    /// Requests with this method whose decoded path starts with `prefix`.
    pub fn count(&self, method: &str, prefix: &str) -> usize {
        lock(&self.site)
            .log
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.starts_with(prefix))
            .count()
    }

    /// Bodies with fields the doctype lacks or values of the wrong type, one line each.
    pub fn schema_violations(&self) -> Vec<String> {
        lock(&self.site).violations.clone()
    }

    pub fn reset_requests(&self) {
        let mut site = lock(&self.site);
        site.log.clear();
        site.writes = 0;
        site.violations.clear();
    }
}

#[derive(Debug)]
struct User {
    api_key: String,
    api_secret: String,
    system_manager: bool,
}

#[derive(Debug, Clone)]
struct Doc {
    name: String,
    fields: Map<String, Value>,
    client_secret: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldType {
    Check,
    Data,
    Select(&'static [&'static str]),
    Password,
}

/// The fields of `social_login_key.json`.
const FIELDS: [(&str, FieldType); 17] = [
    ("enable_social_login", FieldType::Check),
    (
        "social_login_provider",
        FieldType::Select(&[
            "Custom",
            "Facebook",
            "Frappe",
            "GitHub",
            "Google",
            "Office 365",
            "Salesforce",
            "fairlogin",
            "Keycloak",
        ]),
    ),
    ("client_id", FieldType::Data),
    ("provider_name", FieldType::Data),
    ("client_secret", FieldType::Password),
    ("icon", FieldType::Data),
    ("base_url", FieldType::Data),
    ("sign_ups", FieldType::Select(&["", "Allow", "Deny"])),
    ("custom_base_url", FieldType::Check),
    ("authorize_url", FieldType::Data),
    ("access_token_url", FieldType::Data),
    ("redirect_url", FieldType::Data),
    ("api_endpoint", FieldType::Data),
    ("api_endpoint_args", FieldType::Data),
    ("auth_url_data", FieldType::Data),
    ("user_id_property", FieldType::Data),
    ("show_in_resource_metadata", FieldType::Check),
];

impl Doc {
    /// The GET shape: standard fields, every doctype field, the password masked.
    fn response(&self) -> Value {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        out.insert("owner".into(), json!("Administrator"));
        out.insert("creation".into(), json!(TIMESTAMP));
        out.insert("modified".into(), json!(TIMESTAMP));
        out.insert("modified_by".into(), json!("Administrator"));
        out.insert("docstatus".into(), json!(0));
        out.insert("idx".into(), json!(0));
        for (field, kind) in FIELDS {
            let value = match kind {
                FieldType::Password => self
                    .client_secret
                    .as_ref()
                    .map_or(Value::Null, |s| json!("*".repeat(s.chars().count()))),
                FieldType::Check => self.fields.get(field).cloned().unwrap_or(json!(0)),
                _ => self.fields.get(field).cloned().unwrap_or(Value::Null),
            };
            out.insert(field.into(), value);
        }
        out.insert("doctype".into(), json!(DOCTYPE));
        Value::Object(out)
    }

    /// `SocialLoginKey.validate`.
    fn validate(&self) -> Result<(), String> {
        let set = |f: &str| match self.fields.get(f) {
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Number(n)) => n.as_i64() != Some(0),
            _ => false,
        };
        if set("custom_base_url") && !set("base_url") {
            return Err("Please enter Base URL".into());
        }
        if !set("authorize_url") {
            return Err("Please enter Authorize URL".into());
        }
        if !set("access_token_url") {
            return Err("Please enter Access Token URL".into());
        }
        if !set("redirect_url") {
            return Err("Please enter Redirect URL".into());
        }
        if set("enable_social_login") && !set("client_id") {
            return Err("Please enter Client ID before social login is enabled".into());
        }
        if set("enable_social_login") && self.client_secret.as_deref().is_none_or(str::is_empty) {
            return Err("Please enter Client Secret before social login is enabled".into());
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Site {
    users: Vec<User>,
    docs: BTreeMap<String, Doc>,
    log: Vec<FrappeRequest>,
    writes: usize,
    violations: Vec<String>,
}

/// `frappe.scrub`.
fn scrub(text: &str) -> String {
    text.replace([' ', '-'], "_").to_lowercase()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An error in Frappe's shape.
fn frappe_error(status: StatusCode, exc_type: &str, message: Option<&str>) -> Response {
    let mut body = Map::new();
    body.insert("exc_type".into(), json!(exc_type));
    body.insert(
        "exception".into(),
        json!(match message {
            Some(m) => format!("frappe.exceptions.{exc_type}: {m}"),
            None => format!("frappe.exceptions.{exc_type}"),
        }),
    );
    if let Some(message) = message {
        let entry = json!({"message": message, "title": "Message", "indicator": "red", "raise_exception": 1});
        body.insert(
            "_server_messages".into(),
            json!(json!([entry.to_string()]).to_string()),
        );
    }
    (status, axum::Json(Value::Object(body))).into_response()
}

/// An error answer not yet rendered (small enough to travel in a `Result`).
struct Refusal {
    status: StatusCode,
    exc_type: &'static str,
    message: Option<String>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        frappe_error(self.status, self.exc_type, self.message.as_deref())
    }
}

fn not_permitted() -> Response {
    frappe_error(
        StatusCode::FORBIDDEN,
        "PermissionError",
        Some("Insufficient Permission for Social Login Key"),
    )
}

enum Caller {
    Guest,
    User { system_manager: bool },
}

fn authenticate(site: &Site, headers: &HeaderMap) -> Result<Caller, Refusal> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(Caller::Guest);
    };
    let refused = || Refusal {
        status: StatusCode::UNAUTHORIZED,
        exc_type: "AuthenticationError",
        message: None,
    };
    let Some((scheme, credentials)) = value.split_once(' ') else {
        return Err(refused());
    };
    if !scheme.eq_ignore_ascii_case("token") {
        return Err(refused());
    }
    let Some((key, secret)) = credentials.trim().split_once(':') else {
        return Err(refused());
    };
    match site.users.iter().find(|u| u.api_key == key) {
        Some(user) if user.api_secret == secret => Ok(Caller::User {
            system_manager: user.system_manager,
        }),
        _ => Err(refused()),
    }
}

async fn entry(State(site): State<Arc<Mutex<Site>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let path = percent_decode(parts.uri.path());
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let mut site = lock(&site);
    let response = handle(
        &mut site,
        &parts.method,
        &path,
        &query,
        &parts.headers,
        &body,
    );
    site.log.push(FrappeRequest {
        method: parts.method.to_string(),
        path,
        query,
        status: response.status().as_u16(),
    });
    response
}

fn handle(
    site: &mut Site,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let route = match segments.as_slice() {
        ["api", "resource", doctype] => Some((*doctype, None)),
        ["api", "resource", doctype, name] => Some((*doctype, Some(*name))),
        _ => None,
    };
    let get_password = segments.as_slice() == ["api", "method", "frappe.client.get_password"];
    if route.is_none() && !get_password {
        return frappe_error(
            StatusCode::NOT_FOUND,
            "DoesNotExistError",
            Some("Page not found"),
        );
    }
    let caller = match authenticate(site, headers) {
        Ok(caller) => caller,
        Err(refusal) => return refusal.into_response(),
    };
    let system_manager = matches!(
        caller,
        Caller::User {
            system_manager: true
        }
    );
    if get_password {
        if !matches!(*method, Method::GET | Method::POST) {
            return frappe_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "PermissionError",
                Some("Not permitted"),
            );
        }
        let mut params: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            for (k, v) in map {
                if let Value::String(s) = v {
                    params.insert(k, s);
                }
            }
        }
        // `frappe.only_for("System Manager")`.
        if !system_manager {
            return frappe_error(
                StatusCode::FORBIDDEN,
                "PermissionError",
                Some("Not permitted"),
            );
        }
        let param = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
        if param("doctype") != DOCTYPE {
            return frappe_error(
                StatusCode::NOT_FOUND,
                "DoesNotExistError",
                Some(&format!("DocType {} not found", param("doctype"))),
            );
        }
        let Some(doc) = site.docs.get(param("name")) else {
            return frappe_error(
                StatusCode::NOT_FOUND,
                "DoesNotExistError",
                Some(&format!("{DOCTYPE} {} not found", param("name"))),
            );
        };
        return match (param("fieldname"), &doc.client_secret) {
            ("client_secret", Some(secret)) => {
                (StatusCode::OK, axum::Json(json!({ "message": secret }))).into_response()
            }
            (field, _) => frappe_error(
                StatusCode::EXPECTATION_FAILED,
                "ValidationError",
                Some(&format!(
                    "Password not found for {DOCTYPE} {} {field}",
                    doc.name
                )),
            ),
        };
    }
    let Some((doctype, name)) = route else {
        return frappe_error(StatusCode::NOT_FOUND, "DoesNotExistError", None);
    };
    if doctype != DOCTYPE {
        return frappe_error(
            StatusCode::NOT_FOUND,
            "DoesNotExistError",
            Some(&format!("DocType {doctype} not found")),
        );
    }
    if *method != Method::GET {
        site.writes += 1;
    }
    if !system_manager {
        return not_permitted();
    }
    match (method.clone(), name) {
        (Method::GET, None) => {
            let data: Vec<Value> = site.docs.keys().map(|n| json!({ "name": n })).collect();
            (StatusCode::OK, axum::Json(json!({ "data": data }))).into_response()
        }
        (Method::GET, Some(name)) => match site.docs.get(name) {
            Some(doc) => {
                (StatusCode::OK, axum::Json(json!({"data": doc.response()}))).into_response()
            }
            None => frappe_error(
                StatusCode::NOT_FOUND,
                "DoesNotExistError",
                Some(&format!("{DOCTYPE} {name} not found")),
            ),
        },
        (Method::POST, None) => {
            let fields = match parse_fields(site, body) {
                Ok(fields) => fields,
                Err(refusal) => return refusal.into_response(),
            };
            let provider = fields
                .get("provider_name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if provider.is_empty() {
                return frappe_error(
                    StatusCode::EXPECTATION_FAILED,
                    "MandatoryError",
                    Some(&format!("[{DOCTYPE}, new-social-login-key]: provider_name")),
                );
            }
            let name = scrub(&provider);
            if site.docs.contains_key(&name) {
                return frappe_error(
                    StatusCode::CONFLICT,
                    "DuplicateEntryError",
                    Some(&format!("{DOCTYPE} {name} already exists")),
                );
            }
            let mut doc = Doc {
                name: name.clone(),
                fields: Map::new(),
                client_secret: None,
            };
            merge(&mut doc, fields);
            if let Err(message) = doc.validate() {
                return frappe_error(
                    StatusCode::EXPECTATION_FAILED,
                    "ValidationError",
                    Some(&message),
                );
            }
            let response = doc.response();
            site.docs.insert(name, doc);
            (StatusCode::OK, axum::Json(json!({ "data": response }))).into_response()
        }
        (Method::PUT, Some(name)) => {
            let fields = match parse_fields(site, body) {
                Ok(fields) => fields,
                Err(refusal) => return refusal.into_response(),
            };
            let Some(current) = site.docs.get(name) else {
                return frappe_error(
                    StatusCode::NOT_FOUND,
                    "DoesNotExistError",
                    Some(&format!("{DOCTYPE} {name} not found")),
                );
            };
            let mut doc = current.clone();
            merge(&mut doc, fields);
            if let Err(message) = doc.validate() {
                return frappe_error(
                    StatusCode::EXPECTATION_FAILED,
                    "ValidationError",
                    Some(&message),
                );
            }
            let response = doc.response();
            site.docs.insert(name.to_owned(), doc);
            (StatusCode::OK, axum::Json(json!({ "data": response }))).into_response()
        }
        (Method::DELETE, Some(name)) => match site.docs.remove(name) {
            Some(_) => (StatusCode::ACCEPTED, axum::Json(json!({"message": "ok"}))).into_response(),
            None => frappe_error(
                StatusCode::NOT_FOUND,
                "DoesNotExistError",
                Some(&format!("{DOCTYPE} {name} not found")),
            ),
        },
        _ => frappe_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "PermissionError",
            Some("Not permitted"),
        ),
    }
}

/// Apply a checked body: the password goes to its own store unless it is a mask.
fn merge(doc: &mut Doc, fields: Map<String, Value>) {
    for (field, value) in fields {
        if field == "client_secret" {
            match value.as_str() {
                // `is_dummy_password`: a value of only `*` leaves the stored password alone.
                Some(s) if !s.is_empty() && s.chars().all(|c| c == '*') => {}
                Some("") | None => doc.client_secret = None,
                Some(s) => doc.client_secret = Some(s.to_owned()),
            }
        } else {
            doc.fields.insert(field, value);
        }
    }
}

/// The body as doctype fields, or a 417 for what the doctype does not take.
fn parse_fields(site: &mut Site, body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) else {
        return Err(Refusal {
            status: StatusCode::EXPECTATION_FAILED,
            exc_type: "ValidationError",
            message: Some("Request body is not a JSON object".into()),
        });
    };
    for ignored in [
        "name",
        "doctype",
        "owner",
        "creation",
        "modified",
        "modified_by",
        "docstatus",
        "idx",
    ] {
        map.remove(ignored);
    }
    let mut problems = Vec::new();
    for (field, value) in &map {
        let Some((_, kind)) = FIELDS.iter().find(|(f, _)| f == field) else {
            problems.push(format!("{DOCTYPE}: unknown field `{field}`"));
            continue;
        };
        let ok = match kind {
            FieldType::Check => matches!(value.as_i64(), Some(0 | 1)),
            FieldType::Data | FieldType::Password => value.is_string() || value.is_null(),
            FieldType::Select(options) => value.as_str().is_some_and(|v| options.contains(&v)),
        };
        if !ok {
            problems.push(format!(
                "{DOCTYPE}: field `{field}` has the wrong type or an unknown option"
            ));
        }
    }
    if problems.is_empty() {
        return Ok(map);
    }
    let message = problems.join("; ");
    site.violations.extend(problems);
    Err(Refusal {
        status: StatusCode::EXPECTATION_FAILED,
        exc_type: "ValidationError",
        message: Some(message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_scrubbed_and_paths_decoded() {
        assert_eq!(scrub("Auth-entik Login"), "auth_entik_login");
        assert_eq!(
            percent_decode("/api/resource/Social%20Login%20Key/a%2Fb"),
            "/api/resource/Social Login Key/a/b"
        );
    }
}
