//! A stateful stand-in for Wiki.js 2.5's GraphQL API (`POST /graphql`), served on loopback.
//!
//! It holds what the `wikijs` flow touches: the admin login, API access and API keys, the site
//! host, and the authentication strategies (seeded with `local` and a GitHub strategy, each with
//! a user, so deleting either fails as in Wiki.js). Requests are validated against the vendored
//! schema (`schema.graphql`) and executed by a small engine; see `engine.rs`.
//!
//! Auth follows `server/core/auth.js`: a Bearer token that is a key this Wiki.js issued is
//! refused with HTTP 500 `API Key is invalid or was revoked.` once revoked or expired, and every
//! key is refused with `API is disabled. …` while API access is off (both as `{"data": {},
//! "errors": [...]}`, the error handler's shape for `/graphql`); any other token makes the
//! caller a guest, whom `@auth` fields answer `Forbidden`.

mod engine;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rand::Rng;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

/// Builder for the Wiki.js stand-in.
#[derive(Debug, Clone)]
pub struct WikijsSim {
    admin_email: String,
    admin_password: String,
    host: String,
}

impl Default for WikijsSim {
    fn default() -> Self {
        WikijsSim::new()
    }
}

impl WikijsSim {
    /// A freshly set-up Wiki.js: admin `admin@example.org`, API access off, no keys, the host
    /// the setup wizard proposes (`http://localhost:3000`).
    pub fn new() -> WikijsSim {
        WikijsSim {
            admin_email: "admin@example.org".into(),
            admin_password: "wiki-admin-password-1f2e".into(),
            host: "http://localhost:3000".into(),
        }
    }

    pub fn admin(mut self, email: &str, password: &str) -> WikijsSim {
        self.admin_email = email.into();
        self.admin_password = password.into();
        self
    }

    pub fn host(mut self, host: &str) -> WikijsSim {
        self.host = host.into();
        self
    }

    /// Serve on `127.0.0.1:0` inside the current tokio runtime.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(self) -> WikijsHandle {
        match self.try_start().await {
            Ok(handle) => handle,
            Err(e) => panic!("Wiki.js stand-in cannot listen: {e}"),
        }
    }

    pub async fn try_start(self) -> io::Result<WikijsHandle> {
        let state = Arc::new(Mutex::new(State::seeded(self)));
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/graphql", post(graphql))
            .with_state(Arc::clone(&state));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(err) = server.await {
                tracing::error!(%err, "Wiki.js stand-in stopped");
            }
        });
        Ok(WikijsHandle {
            state,
            addr,
            shutdown: Some(tx),
        })
    }
}

/// A running Wiki.js stand-in. Dropping it stops the server.
#[derive(Debug)]
pub struct WikijsHandle {
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for WikijsHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl WikijsHandle {
    /// `http://127.0.0.1:PORT`, what a manifest's `internal_url` points at.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.base_url())
    }

    pub fn admin_email(&self) -> String {
        lock(&self.state).admin_email.clone()
    }

    pub fn admin_password(&self) -> String {
        lock(&self.state).admin_password.clone()
    }

    /// Create a full-access key as an admin would in Administration → API Access (which also
    /// switches API access on); returns the key.
    pub fn issue_api_key(&self, name: &str) -> String {
        let mut state = lock(&self.state);
        state.api_enabled = true;
        state.create_key(name, Duration::from_secs(365 * 86_400))
    }

    /// Revoke every key; returns how many were live.
    pub fn revoke_api_keys(&self) -> usize {
        let mut state = lock(&self.state);
        let mut revoked = 0;
        for key in state.keys.iter_mut().filter(|k| !k.revoked) {
            key.revoked = true;
            revoked += 1;
        }
        revoked
    }

    pub fn set_api_enabled(&self, enabled: bool) {
        lock(&self.state).api_enabled = enabled;
    }

    pub fn api_enabled(&self) -> bool {
        lock(&self.state).api_enabled
    }

    /// Every key as `{id, name, isRevoked}`.
    pub fn api_keys(&self) -> Vec<Value> {
        lock(&self.state)
            .keys
            .iter()
            .map(|k| json!({"id": k.id, "name": k.name, "isRevoked": k.revoked}))
            .collect()
    }

    /// Whether `key` is a live key (issued, not revoked, not expired).
    pub fn key_is_valid(&self, key: &str) -> bool {
        lock(&self.state).live_key(key)
    }

    pub fn host(&self) -> String {
        lock(&self.state).host.clone()
    }

    pub fn set_host(&self, host: &str) {
        lock(&self.state).host = host.into();
    }

    /// Every strategy as stored: `key`, `strategyKey`, `displayName`, `order`, `isEnabled`,
    /// `config` (plain values), `selfRegistration`, `domainWhitelist`, `autoEnrollGroups`.
    pub fn strategies(&self) -> Vec<Value> {
        lock(&self.state)
            .strategies
            .iter()
            .map(Strategy::stored)
            .collect()
    }

    pub fn strategy(&self, key: &str) -> Option<Value> {
        lock(&self.state)
            .strategies
            .iter()
            .find(|s| s.key == key)
            .map(Strategy::stored)
    }

    /// Delete a strategy behind the API's back (its users are ignored). Returns whether it
    /// existed.
    pub fn delete_strategy(&self, key: &str) -> bool {
        let mut state = lock(&self.state);
        let before = state.strategies.len();
        state.strategies.retain(|s| s.key != key);
        state.strategies.len() != before
    }

    /// Set one config value of a strategy, as an admin editing it in the UI.
    ///
    /// # Panics
    /// If there is no such strategy.
    pub fn set_strategy_config(&self, key: &str, name: &str, value: Value) {
        let mut state = lock(&self.state);
        let Some(strategy) = state.strategies.iter_mut().find(|s| s.key == key) else {
            panic!("no Wiki.js strategy {key}");
        };
        strategy.config.insert(name.into(), value);
    }

    /// Mutations that change state (all but `login`), counted since start or the last reset.
    pub fn write_count(&self) -> usize {
        lock(&self.state).writes
    }

    /// Every resolved root operation, e.g. `AuthenticationMutation.updateStrategies`, in order.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.state).calls.clone()
    }

    /// Requests that broke the schema: one line each, never the offending value.
    pub fn schema_violations(&self) -> Vec<String> {
        lock(&self.state).violations.clone()
    }

    pub fn reset_requests(&self) {
        let mut state = lock(&self.state);
        state.writes = 0;
        state.calls.clear();
        state.violations.clear();
    }
}

#[derive(Debug)]
struct ApiKey {
    id: i64,
    name: String,
    token: String,
    revoked: bool,
    expires: SystemTime,
}

#[derive(Debug, Clone)]
struct Strategy {
    key: String,
    module: String,
    display_name: String,
    order: i64,
    is_enabled: bool,
    config: Map<String, Value>,
    self_registration: bool,
    domain_whitelist: Vec<String>,
    auto_enroll_groups: Vec<i64>,
}

impl Strategy {
    fn stored(&self) -> Value {
        json!({
            "key": self.key,
            "strategyKey": self.module,
            "displayName": self.display_name,
            "order": self.order,
            "isEnabled": self.is_enabled,
            "config": self.config,
            "selfRegistration": self.self_registration,
            "domainWhitelist": self.domain_whitelist,
            "autoEnrollGroups": self.auto_enroll_groups,
        })
    }

    /// The `AuthenticationActiveStrategy` shape: config values as the JSON text of their
    /// property definition plus `value`, only for keys the module defines, sorted by key.
    fn active(&self) -> Value {
        let module = module(&self.module);
        let mut config: Vec<Value> = Vec::new();
        for (name, value) in &self.config {
            let Some(def) = module.props.iter().find(|(n, _)| n == name).map(|(_, d)| d) else {
                continue;
            };
            let mut entry = def.as_object().cloned().unwrap_or_default();
            entry.insert("value".into(), value.clone());
            config.push(json!({"key": name, "value": Value::Object(entry).to_string()}));
        }
        json!({
            "key": self.key,
            "strategy": module.describe(),
            "displayName": self.display_name,
            "order": self.order,
            "isEnabled": self.is_enabled,
            "config": config,
            "selfRegistration": self.self_registration,
            "domainWhitelist": self.domain_whitelist,
            "autoEnrollGroups": self.auto_enroll_groups,
        })
    }
}

/// An authentication module's definition (`server/modules/authentication/<key>/definition.yml`).
struct Module {
    key: &'static str,
    title: &'static str,
    use_form: bool,
    props: Vec<(String, Value)>,
}

impl Module {
    fn describe(&self) -> Value {
        let props: Vec<Value> = self
            .props
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v.to_string()}))
            .collect();
        json!({
            "key": self.key, "title": self.title, "description": null, "isAvailable": true,
            "useForm": self.use_form, "usernameType": "email", "logo": null, "color": null,
            "website": null, "icon": null, "props": props,
        })
    }
}

fn prop(kind: &str, title: &str, order: i64, default: Option<Value>) -> Value {
    let mut def = json!({"type": kind, "title": title, "hint": title, "order": order});
    if let (Some(default), Some(map)) = (default, def.as_object_mut()) {
        map.insert("default".into(), default);
    }
    def
}

fn module(key: &str) -> Module {
    let props = |list: Vec<(&str, Value)>| {
        list.into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<Vec<_>>()
    };
    match key {
        "local" => Module {
            key: "local",
            title: "Local",
            use_form: true,
            props: Vec::new(),
        },
        // As listed for 2.5 in the reference (oidc/definition.yml).
        "oidc" => Module {
            key: "oidc",
            title: "Generic OpenID Connect / OAuth2",
            use_form: false,
            props: props(vec![
                ("clientId", prop("String", "Client ID", 1, None)),
                ("clientSecret", prop("String", "Client Secret", 2, None)),
                (
                    "authorizationURL",
                    prop("String", "Authorization Endpoint URL", 3, None),
                ),
                ("tokenURL", prop("String", "Token Endpoint URL", 4, None)),
                (
                    "userInfoURL",
                    prop("String", "User Info Endpoint URL", 5, None),
                ),
                (
                    "skipUserProfile",
                    prop("Boolean", "Skip User Profile", 6, Some(json!(false))),
                ),
                ("issuer", prop("String", "Issuer", 7, None)),
                (
                    "emailClaim",
                    prop("String", "Email Claim", 8, Some(json!("email"))),
                ),
                (
                    "displayNameClaim",
                    prop(
                        "String",
                        "Display Name Claim",
                        9,
                        Some(json!("displayName")),
                    ),
                ),
                (
                    "mapGroups",
                    prop("Boolean", "Map Groups", 10, Some(json!(false))),
                ),
                (
                    "groupsClaim",
                    prop("String", "Groups Claim", 11, Some(json!("groups"))),
                ),
                ("logoutURL", prop("String", "Logout URL", 12, None)),
                ("acrValues", prop("String", "ACR Values", 13, None)),
            ]),
        },
        "github" => Module {
            key: "github",
            title: "GitHub",
            use_form: false,
            props: props(vec![
                ("clientId", prop("String", "Client ID", 1, None)),
                ("clientSecret", prop("String", "Client Secret", 2, None)),
                (
                    "useEnterprise",
                    prop("Boolean", "Use GitHub Enterprise", 3, Some(json!(false))),
                ),
                (
                    "enterpriseDomain",
                    prop("String", "GitHub Enterprise Domain", 4, None),
                ),
                (
                    "enterpriseUserEndpoint",
                    prop("String", "GitHub Enterprise User Endpoint", 5, None),
                ),
            ]),
        },
        other => Module {
            key: "unknown",
            title: "Unknown",
            use_form: false,
            props: vec![(format!("(module {other} is not installed)"), Value::Null)],
        },
    }
}

/// The GitHub strategy every stand-in starts with, key generated like the admin UI does.
pub const SEEDED_GITHUB_KEY: &str = "5b0c4e52-8e0a-4d6f-9a51-2c7f1e3d9b40";

#[derive(Debug)]
struct State {
    admin_email: String,
    admin_password: String,
    host: String,
    api_enabled: bool,
    keys: Vec<ApiKey>,
    sessions: Vec<String>,
    strategies: Vec<Strategy>,
    users_by_strategy: HashMap<String, usize>,
    writes: usize,
    calls: Vec<String>,
    violations: Vec<String>,
}

impl State {
    fn seeded(sim: WikijsSim) -> State {
        let local = Strategy {
            key: "local".into(),
            module: "local".into(),
            display_name: "Local".into(),
            order: 0,
            is_enabled: true,
            config: Map::new(),
            self_registration: false,
            domain_whitelist: Vec::new(),
            auto_enroll_groups: Vec::new(),
        };
        let mut github_config = Map::new();
        github_config.insert("clientId".into(), json!("Iv1.8a61f9b3a7aba766"));
        github_config.insert(
            "clientSecret".into(),
            json!("1ae7c8c0f9b2e4d6a8c0e2f4b6d8a0c2e4f6b8d0"),
        );
        github_config.insert("useEnterprise".into(), json!(false));
        let github = Strategy {
            key: SEEDED_GITHUB_KEY.into(),
            module: "github".into(),
            display_name: "GitHub".into(),
            order: 1,
            is_enabled: true,
            config: github_config,
            self_registration: true,
            domain_whitelist: vec!["example.org".into()],
            auto_enroll_groups: vec![3],
        };
        State {
            admin_email: sim.admin_email,
            admin_password: sim.admin_password,
            host: sim.host,
            api_enabled: false,
            keys: Vec::new(),
            sessions: Vec::new(),
            users_by_strategy: HashMap::from([
                ("local".to_owned(), 2),
                (SEEDED_GITHUB_KEY.to_owned(), 1),
            ]),
            strategies: vec![local, github],
            writes: 0,
            calls: Vec::new(),
            violations: Vec::new(),
        }
    }

    fn create_key(&mut self, name: &str, lifetime: Duration) -> String {
        let id = self.keys.iter().map(|k| k.id).max().unwrap_or(0) + 1;
        let token = jwt_like(&json!({"api": id, "grp": 1, "iss": "urn:wiki.js"}));
        self.keys.push(ApiKey {
            id,
            name: name.into(),
            token: token.clone(),
            revoked: false,
            expires: SystemTime::now() + lifetime,
        });
        token
    }

    fn live_key(&self, token: &str) -> bool {
        self.keys
            .iter()
            .any(|k| k.token == token && !k.revoked && k.expires > SystemTime::now())
    }
}

/// A token shaped like the RS256 JWTs Wiki.js issues (the signature is random bytes).
fn jwt_like(payload: &Value) -> String {
    let mut signature = [0u8; 64];
    rand::rng().fill(&mut signature[..]);
    format!(
        "{}.{}.{}",
        base64url(br#"{"alg":"RS256","typ":"JWT"}"#),
        base64url(payload.to_string().as_bytes()),
        base64url(&signature)
    )
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// `ms`-style durations (`1y`, `30d`, `12h`, …), as `createApiKey` takes them.
fn parse_ms(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim().to_ascii_lowercase().as_str() {
        "y" | "yr" | "yrs" | "year" | "years" => 365.25 * 86_400.0,
        "w" | "week" | "weeks" => 7.0 * 86_400.0,
        "d" | "day" | "days" => 86_400.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(number * seconds))
}

enum Caller {
    Guest,
    Admin,
}

const ADMIN_PERMISSIONS: [&str; 3] = ["manage:system", "manage:api", "read:pages"];

/// `WIKI.auth.authenticate`: who is calling, or the error the middleware answers with.
fn authenticate(state: &State, headers: &HeaderMap) -> Result<Caller, &'static str> {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Ok(Caller::Guest);
    };
    if state.sessions.iter().any(|s| s == token) {
        return Ok(Caller::Admin);
    }
    if state.keys.iter().any(|k| k.token == token) {
        if !state.api_enabled {
            return Err("API is disabled. You must enable it from the Administration Area first.");
        }
        if state.live_key(token) {
            return Ok(Caller::Admin);
        }
        return Err("API Key is invalid or was revoked.");
    }
    // A token that does not verify: passport-jwt fails and the request becomes a guest's.
    Ok(Caller::Guest)
}

async fn graphql(
    AxumState(state): AxumState<Arc<Mutex<State>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = lock(&state);
    let caller = match authenticate(&state, &headers) {
        Ok(caller) => caller,
        Err(message) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"data": {}, "errors": [{"message": message, "path": []}]})),
            )
                .into_response();
        }
    };
    let permissions: Vec<String> = match caller {
        Caller::Admin => ADMIN_PERMISSIONS.iter().map(|p| (*p).to_owned()).collect(),
        Caller::Guest => vec!["read:pages".into()],
    };
    let mut session = Session {
        state: &mut state,
        permissions,
    };
    let answer = engine::run(&body, &mut session);
    for violation in answer.violations {
        tracing::debug!(%violation, "Wiki.js stand-in: request broke the schema");
        state.violations.push(violation);
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    (status, axum::Json(answer.body)).into_response()
}

/// One request's view of the state, with the caller's permissions.
struct Session<'a> {
    state: &'a mut State,
    permissions: Vec<String>,
}

fn success(message: &str) -> Value {
    json!({"succeeded": true, "errorCode": 0, "slug": "ok", "message": message})
}

/// `graphHelper.generateError`.
fn failure(code: i64, slug: &str, message: &str) -> Value {
    json!({"responseResult": {"succeeded": false, "errorCode": code, "slug": slug, "message": message}})
}

impl engine::Resolver for Session<'_> {
    fn is_namespace(&self, type_name: &str) -> bool {
        matches!(
            type_name,
            "Query"
                | "Mutation"
                | "AuthenticationQuery"
                | "AuthenticationMutation"
                | "SiteQuery"
                | "SiteMutation"
        )
    }

    fn permissions(&self) -> &[String] {
        &self.permissions
    }

    fn resolve(
        &mut self,
        type_name: &str,
        field: &str,
        args: &Map<String, Value>,
    ) -> Result<Value, String> {
        if matches!(type_name, "Query" | "Mutation") {
            return Ok(json!({}));
        }
        let state = &mut *self.state;
        state.calls.push(format!("{type_name}.{field}"));
        let text = |name: &str| {
            args.get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        Ok(match (type_name, field) {
            ("AuthenticationQuery", "activeStrategies") => {
                let mut list: Vec<&Strategy> = state.strategies.iter().collect();
                list.sort_by_key(|s| s.order);
                let enabled_only = args.get("enabledOnly") == Some(&Value::Bool(true));
                Value::Array(
                    list.into_iter()
                        .filter(|s| !enabled_only || s.is_enabled)
                        .map(Strategy::active)
                        .collect(),
                )
            }
            ("AuthenticationQuery", "apiState") => json!(state.api_enabled),
            ("AuthenticationQuery", "apiKeys") => Value::Array(
                state
                    .keys
                    .iter()
                    .map(|k| {
                        json!({
                            "id": k.id, "name": k.name, "isRevoked": k.revoked,
                            "keyShort": format!("...{}", &k.token[k.token.len().saturating_sub(20)..]),
                            "expiration": secs(k.expires), "createdAt": secs(SystemTime::now()),
                            "updatedAt": secs(SystemTime::now()),
                        })
                    })
                    .collect(),
            ),
            ("AuthenticationQuery", "strategies") => Value::Array(
                ["local", "oidc", "github"]
                    .iter()
                    .map(|k| module(k).describe())
                    .collect(),
            ),
            ("AuthenticationMutation", "login") => {
                let known = state
                    .strategies
                    .iter()
                    .any(|s| s.key == text("strategy") && s.is_enabled);
                if !known || text("strategy") != "local" {
                    failure(1003, "AuthProviderInvalid", "Invalid authentication provider.")
                } else if text("username") != state.admin_email
                    || text("password") != state.admin_password
                {
                    failure(1002, "AuthLoginFailed", "Invalid email / username or password.")
                } else {
                    let jwt = jwt_like(&json!({"id": 1, "email": state.admin_email}));
                    state.sessions.push(jwt.clone());
                    json!({"jwt": jwt, "mustChangePwd": false, "mustProvideTFA": false,
                           "mustSetupTFA": false, "responseResult": success("Login success")})
                }
            }
            ("AuthenticationMutation", "setApiState") => {
                state.writes += 1;
                state.api_enabled = args.get("enabled") == Some(&Value::Bool(true));
                json!({"responseResult": success("API State changed successfully")})
            }
            ("AuthenticationMutation", "createApiKey") => {
                state.writes += 1;
                match parse_ms(&text("expiration")) {
                    None => failure(1, "Error", "Invalid expiration value."),
                    Some(lifetime) => {
                        let key = state.create_key(&text("name"), lifetime);
                        json!({"key": key, "responseResult": success("API Key created successfully")})
                    }
                }
            }
            ("AuthenticationMutation", "revokeApiKey") => {
                state.writes += 1;
                let id = args.get("id").and_then(Value::as_i64);
                for key in state.keys.iter_mut().filter(|k| Some(k.id) == id) {
                    key.revoked = true;
                }
                json!({"responseResult": success("API Key revoked successfully")})
            }
            ("AuthenticationMutation", "updateStrategies") => {
                state.writes += 1;
                update_strategies(state, args)
            }
            ("SiteQuery", "config") => json!({"host": state.host, "title": "Wiki.js"}),
            ("SiteMutation", "updateConfig") => {
                state.writes += 1;
                if let Some(host) = args.get("host").and_then(Value::as_str) {
                    let host = host.trim();
                    state.host = host.strip_suffix('/').unwrap_or(host).to_owned();
                }
                json!({"responseResult": success("Site configuration updated successfully")})
            }
            _ => return Err(format!("{type_name}.{field} is not served by the stand-in")),
        })
    }
}

fn secs(time: SystemTime) -> String {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().to_string())
        .unwrap_or_default()
}

/// `AuthenticationMutation.updateStrategies` of Wiki.js 2.5: upsert every entry, then delete
/// every strategy missing from the list — unless users still belong to it, which fails the
/// mutation after the upserts already landed, as there.
fn update_strategies(state: &mut State, args: &Map<String, Value>) -> Value {
    let input = args
        .get("strategies")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut parsed = Vec::with_capacity(input.len());
    for item in &input {
        let text = |f: &str| item[f].as_str().unwrap_or("").to_owned();
        let mut config = Map::new();
        for entry in item["config"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let raw = entry["value"].as_str().unwrap_or("");
            let Ok(decoded) = serde_json::from_str::<Value>(raw) else {
                return failure(1, "SyntaxError", "Unexpected token in JSON at position 0");
            };
            config.insert(
                entry["key"].as_str().unwrap_or("").to_owned(),
                decoded.get("v").cloned().unwrap_or(Value::Null),
            );
        }
        parsed.push(Strategy {
            key: text("key"),
            module: text("strategyKey"),
            display_name: text("displayName"),
            order: item["order"].as_i64().unwrap_or(0),
            is_enabled: item["isEnabled"] == true,
            config,
            self_registration: item["selfRegistration"] == true,
            domain_whitelist: item["domainWhitelist"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            auto_enroll_groups: item["autoEnrollGroups"]
                .as_array()
                .map(|l| l.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default(),
        });
    }
    for strategy in &parsed {
        match state.strategies.iter_mut().find(|s| s.key == strategy.key) {
            Some(existing) => *existing = strategy.clone(),
            None => state.strategies.push(strategy.clone()),
        }
    }
    let gone: Vec<Strategy> = state
        .strategies
        .iter()
        .filter(|s| !parsed.iter().any(|p| p.key == s.key))
        .cloned()
        .collect();
    for strategy in gone {
        if state
            .users_by_strategy
            .get(&strategy.key)
            .copied()
            .unwrap_or(0)
            > 0
        {
            return failure(
                1,
                "Error",
                &format!(
                    "Cannot delete {} as 1 or more users are still using it.",
                    strategy.display_name
                ),
            );
        }
        state.strategies.retain(|s| s.key != strategy.key);
    }
    json!({"responseResult": success("Strategies updated successfully")})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_the_rfc_vectors() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn ms_durations_parse_as_wiki_js_takes_them() {
        assert_eq!(parse_ms("1y"), Some(Duration::from_secs(31_557_600)));
        assert_eq!(parse_ms("30d"), Some(Duration::from_secs(2_592_000)));
        assert_eq!(parse_ms("soon"), None);
    }
}
