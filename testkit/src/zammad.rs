//! A stateful stand-in for Zammad's settings API (`/api/v1/settings`), the one way Zammad
//! receives its SAML IdP settings: `GET /api/v1/settings` lists every setting, `PUT
//! /api/v1/settings/{id}` with `{"state_current": {"value": …}}` changes one. Requests need an
//! API token (`Authorization: Token token=<t>`, or `Bearer <t>`); anything else is answered 401.
//!
//! ```rust,no_run
//! # async fn demo() {
//! let zammad = testkit::ZammadSim::new("zammad-token").start().await;
//! let url = zammad.base_url(); // "http://127.0.0.1:PORT"
//! assert_eq!(zammad.setting("http_type"), Some(serde_json::json!("http")));
//! zammad.set_setting("fqdn", serde_json::json!("elsewhere.example")); // drift
//! assert_eq!(zammad.write_count(), 0);
//! # }
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
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
const TIMESTAMP: &str = "2026-01-12T09:30:00.000Z";

/// Builder for the Zammad stand-in, seeded with the settings of a fresh Zammad that the SAML
/// integration touches (and a few it does not).
#[derive(Debug, Clone)]
pub struct ZammadSim {
    token: String,
}

impl ZammadSim {
    /// A stand-in that accepts this API token.
    pub fn new(token: &str) -> ZammadSim {
        ZammadSim {
            token: token.to_owned(),
        }
    }

    /// Serve on a random loopback port inside the current tokio runtime.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(self) -> ZammadHandle {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap_or_else(|err| panic!("Zammad stand-in cannot listen: {err}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|err| panic!("Zammad stand-in has no address: {err}"));
        let shared = Arc::new(Shared {
            token: self.token,
            settings: Mutex::new(seed()),
            writes: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        });
        let (tx, rx) = oneshot::channel::<()>();
        let app = Router::new()
            .fallback(entry)
            .with_state(Arc::clone(&shared));
        let server = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        tokio::spawn(async move {
            if let Err(err) = server.await {
                tracing::error!(%err, "Zammad stand-in stopped");
            }
        });
        ZammadHandle {
            shared,
            addr,
            shutdown: Some(tx),
        }
    }
}

/// A running Zammad stand-in. Dropping it stops the server.
#[derive(Debug)]
pub struct ZammadHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl ZammadHandle {
    /// `http://127.0.0.1:PORT`; the API is under `/api/v1/`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The current value (`state_current.value`) of the setting with this name.
    pub fn setting(&self, name: &str) -> Option<Value> {
        self.shared
            .settings()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["state_current"]["value"].clone())
    }

    /// Every setting in the API's response shape.
    pub fn settings(&self) -> Vec<Value> {
        self.shared.settings().clone()
    }

    /// Change a setting's value behind the API's back, as an admin in Zammad's UI would.
    /// Does not count as a write.
    ///
    /// # Panics
    /// If there is no such setting (a test bug).
    pub fn set_setting(&self, name: &str, value: Value) {
        let mut settings = self.shared.settings();
        let Some(setting) = settings.iter_mut().find(|s| s["name"] == name) else {
            panic!("set_setting: Zammad has no setting named {name:?}");
        };
        setting["state_current"] = json!({ "value": value });
    }

    /// Authenticated `PUT`s that reached a setting, changed or not.
    pub fn write_count(&self) -> usize {
        self.shared.writes.load(Ordering::SeqCst)
    }

    /// `(method, path, status)` of every request, in order.
    pub fn requests(&self) -> Vec<(String, String, u16)> {
        self.shared.log().clone()
    }
}

impl Drop for ZammadHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(Debug)]
struct Shared {
    token: String,
    settings: Mutex<Vec<Value>>,
    writes: AtomicUsize,
    log: Mutex<Vec<(String, String, u16)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn settings(&self) -> MutexGuard<'_, Vec<Value>> {
        lock(&self.settings)
    }

    fn log(&self) -> MutexGuard<'_, Vec<(String, String, u16)>> {
        lock(&self.log)
    }
}

fn setting(id: u64, name: &str, title: &str, area: &str, frontend: bool, value: Value) -> Value {
    json!({
        "id": id,
        "name": name,
        "title": title,
        "area": area,
        "description": "",
        "options": {},
        "state_current": { "value": value },
        "state_initial": { "value": value },
        "preferences": { "permission": ["admin.system"] },
        "frontend": frontend,
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    })
}

fn seed() -> Vec<Value> {
    vec![
        setting(
            1,
            "product_name",
            "Product Name",
            "System::Branding",
            true,
            json!("Zammad Helpdesk"),
        ),
        setting(
            2,
            "fqdn",
            "Fully Qualified Domain Name",
            "System::Base",
            true,
            json!("zammad.example.com"),
        ),
        setting(
            3,
            "http_type",
            "HTTP type",
            "System::Base",
            true,
            json!("http"),
        ),
        setting(
            4,
            "auth_third_party_auto_link_at_inital_login",
            "Automatic account link on initial logon",
            "Security::ThirdPartyAuthentication",
            false,
            json!(false),
        ),
        setting(
            5,
            "auth_saml",
            "Authentication via SAML",
            "Security::ThirdPartyAuthentication",
            true,
            json!(false),
        ),
        setting(
            6,
            "auth_saml_credentials",
            "SAML App Credentials",
            "Security::ThirdPartyAuthentication::SAML",
            false,
            json!({
                "display_name": "SAML",
                "idp_sso_target_url": "",
                "idp_slo_service_url": "",
                "idp_cert": "",
                "idp_cert_fingerprint": "",
                "name_identifier_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
                "ssl_verify": true,
                "security": "off",
            }),
        ),
        setting(
            7,
            "maintenance_mode",
            "Maintenance Mode",
            "Core::WebApp",
            true,
            json!(false),
        ),
    ]
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Rails' `authenticate_with_http_token`: `Token token=<t>` (quoted or not) or `Bearer <t>`.
fn token_of(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    if let Some(rest) = raw.strip_prefix("Token ") {
        let value = rest.trim().strip_prefix("token=")?;
        let value = value.split(',').next().unwrap_or_default().trim();
        return Some(value.trim_matches('"').to_owned());
    }
    raw.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

async fn entry(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let method = parts.method.clone();
    let response = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => respond(&shared, &method, &path, &parts.headers, &body),
        Err(_) => error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"),
    };
    shared
        .log()
        .push((method.to_string(), path, response.status().as_u16()));
    response
}

fn respond(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let rest = path.trim_end_matches('/');
    let id = match rest.strip_prefix("/api/v1/settings") {
        Some("") => None,
        Some(tail) => match tail.strip_prefix('/').map(str::parse::<u64>) {
            Some(Ok(id)) => Some(id),
            _ => return error(StatusCode::NOT_FOUND, "No route matches"),
        },
        None => return error(StatusCode::NOT_FOUND, "No route matches"),
    };
    match token_of(headers) {
        None => return error(StatusCode::UNAUTHORIZED, "Authentication required"),
        Some(token) if token != shared.token => {
            return error(StatusCode::UNAUTHORIZED, "Invalid token!");
        }
        Some(_) => {}
    }
    match (method, id) {
        (&Method::GET, None) => axum::Json(Value::Array(shared.settings().clone())).into_response(),
        (&Method::GET, Some(id)) => match shared.settings().iter().find(|s| s["id"] == id) {
            Some(s) => axum::Json(s.clone()).into_response(),
            None => not_found(id),
        },
        (&Method::PUT | &Method::PATCH, Some(id)) => update(shared, id, body),
        _ => error(StatusCode::NOT_FOUND, "No route matches"),
    }
}

fn not_found(id: u64) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("Couldn't find Setting with 'id'={id}"),
    )
}

/// Only `state_current` may change through the API; other attributes are refused (422), as
/// Rails refuses attributes the controller does not permit.
fn update(shared: &Shared, id: u64, body: &Bytes) -> Response {
    let mut settings = shared.settings();
    let Some(setting) = settings.iter_mut().find(|s| s["id"] == id) else {
        return not_found(id);
    };
    shared.writes.fetch_add(1, Ordering::SeqCst);
    let body: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        _ => return error(StatusCode::BAD_REQUEST, "Invalid JSON body"),
    };
    if let Some(key) = body.keys().find(|k| *k != "state_current") {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("unknown attribute '{key}' for Setting."),
        );
    }
    match body.get("state_current") {
        Some(Value::Object(state)) if state.contains_key("value") => {
            setting["state_current"] = json!({ "value": state["value"].clone() });
            setting["updated_at"] = json!(TIMESTAMP);
            axum::Json(setting.clone()).into_response()
        }
        _ => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "state_current must be an object with a value",
        ),
    }
}
