//! The only code that speaks authentik HTTP.
//!
//! Errors are sorted by kind so callers branch on kinds, not strings. Each request gets a few
//! tries of its own ([`retry`]: idempotent requests, and creates re-read by their natural key
//! first); what is left after those is the pipeline's retry policy. Every list is paged through with the maximum page
//! size authentik honours (100), and application lists always carry `superuser_full_list=true`,
//! which bypasses authentik's stale per-user list cache.

pub mod cleanup;
mod error;
mod identity;
mod notifications;
pub mod rbac;
pub mod retry;
mod types;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::{AuthentikError, FieldErrors};
pub use identity::{Group, Me, ServiceAccount, Token, User};
pub use notifications::{
    EventMatcherPolicy, NotificationMapping, NotificationRule, NotificationTransport,
    PolicyBinding, WEBHOOK_SECRET_ENV, WEBHOOK_SECRET_HEADER,
};
pub use retry::{RequestRetry, with_retry_deadline};
pub use types::{
    Application, CertificateKeyPair, Flow, OAuth2Provider, Outpost, Page, ProxyProvider,
    RedirectUri, SamlPropertyMapping, SamlProvider, ScopeMapping,
};

/// authentik clamps larger page sizes to this.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Default of `PMA_SSO_AUTHENTIK_MAX_CONCURRENCY`.
pub const DEFAULT_MAX_CONCURRENCY: usize = 8;

/// Text as authentik stores it. Its API (Django REST framework) strips leading and trailing
/// whitespace from every text field (`CharField(trim_whitespace=True)`, the default), so an
/// expression written as a YAML block (ending in a newline) or read from a file comes back
/// without it. Desired values pass through this before they are sent or compared; otherwise a
/// check reports drift that no write can repair.
pub fn stored_text(text: &str) -> String {
    // Python's `str.strip()`: Unicode whitespace and the ASCII separators \x1c-\x1f.
    text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
        .to_owned()
}

/// A request body as authentik will store it: [`stored_text`] applied to its text fields and
/// to those of nested objects in lists (`redirect_uris[].url`); other values as they are.
pub fn stored_body(
    body: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value;
    fn text(value: Value) -> Value {
        match value {
            Value::String(s) => Value::String(stored_text(&s)),
            other => other,
        }
    }
    body.into_iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Array(items) => Value::Array(
                    items
                        .into_iter()
                        .map(|item| match item {
                            Value::Object(fields) => Value::Object(
                                fields.into_iter().map(|(k, v)| (k, text(v))).collect(),
                            ),
                            other => other,
                        })
                        .collect(),
                ),
                other => text(other),
            };
            (key, value)
        })
        .collect()
}

/// How the client reaches authentik beyond its address and token.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `PMA_SSO_AUTHENTIK_MAX_CONCURRENCY`: requests in flight at once from this process,
    /// whatever the number of flows running (a sweep, several workers' jobs).
    pub max_concurrency: usize,
    /// `AUTHENTIK_CA_FILE`: PEM bundle trusted (besides the system roots) for an https
    /// `AUTHENTIK_URL`, e.g. an internal CA.
    pub ca_file: Option<PathBuf>,
    /// Per-request retries; `PMA_SSO_AUTHENTIK_TRIES` sets `max_tries`.
    pub retry: RequestRetry,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            ca_file: None,
            retry: RequestRetry::default(),
        }
    }
}

impl ClientOptions {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<ClientOptions, String> {
        let max_concurrency = match get("PMA_SSO_AUTHENTIK_MAX_CONCURRENCY") {
            None => DEFAULT_MAX_CONCURRENCY,
            Some(v) => v.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                format!("PMA_SSO_AUTHENTIK_MAX_CONCURRENCY is invalid: expected a whole number ≥ 1, got `{v}`")
            })?,
        };
        let max_tries = match get("PMA_SSO_AUTHENTIK_TRIES") {
            None => retry::DEFAULT_TRIES,
            Some(v) => v.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                format!("PMA_SSO_AUTHENTIK_TRIES is invalid: expected a whole number ≥ 1 (tries per request, the first included), got `{v}`")
            })?,
        };
        Ok(ClientOptions {
            max_concurrency,
            ca_file: get("AUTHENTIK_CA_FILE").map(PathBuf::from),
            retry: RequestRetry {
                max_tries,
                ..RequestRetry::default()
            },
        })
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    api: String,
    token: SecretString,
    /// One permit per request in flight; shared by every clone of this client.
    permits: Arc<tokio::sync::Semaphore>,
    retry: RequestRetry,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `base` is authentik's address (e.g. `http://authentik-server:9000`), with or without
    /// the `/api/v3` suffix.
    pub fn new(
        base: &str,
        token: SecretString,
        timeout: Duration,
    ) -> Result<Client, AuthentikError> {
        Self::with_options(base, token, timeout, &ClientOptions::default())
    }

    pub fn with_options(
        base: &str,
        token: SecretString,
        timeout: Duration,
        options: &ClientOptions,
    ) -> Result<Client, AuthentikError> {
        let setup = |problem: String| AuthentikError::Transport {
            endpoint: "(client setup)".into(),
            problem,
        };
        let trimmed = base.trim_end_matches('/');
        let trimmed = trimmed.strip_suffix("/api/v3").unwrap_or(trimmed);
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("pma-sso/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &options.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                setup(format!(
                    "AUTHENTIK_CA_FILE {}: cannot read it: {e}",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
                setup(format!(
                    "AUTHENTIK_CA_FILE {}: not a PEM certificate bundle",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(setup(format!(
                    "AUTHENTIK_CA_FILE {}: holds no PEM certificate",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| AuthentikError::transport("(client setup)", &e))?;
        Ok(Client {
            http,
            api: format!("{trimmed}/api/v3"),
            token,
            permits: Arc::new(tokio::sync::Semaphore::new(options.max_concurrency.max(1))),
            retry: options.retry.clone(),
        })
    }

    pub fn api_base(&self) -> &str {
        &self.api
    }

    /// One request with its own retries ([`retry::next_wait`]): idempotent requests on any
    /// transient failure, others only when authentik certainly did not run them.
    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<T, AuthentikError> {
        let repeat = retry::Repeat::of(&method);
        let mut tried = 0;
        loop {
            tried += 1;
            match self.send_once(method.clone(), path, query, body).await {
                Ok(value) => return Ok(value),
                Err(e) => self.pause_before_retry(repeat, &e, tried).await.ok_or(e)?,
            }
        }
    }

    /// Sleep before the next try, or `None` when `error` ends the request.
    async fn pause_before_retry(
        &self,
        repeat: retry::Repeat,
        error: &AuthentikError,
        tried: u32,
    ) -> Option<()> {
        let wait = retry::next_wait(&self.retry, repeat, error, tried, rand::random())?;
        if !retry::fits_budget(wait) {
            return None;
        }
        tracing::debug!(%error, tried, wait_ms = wait.as_millis() as u64, "retrying an authentik request");
        metrics::counter!("pma_sso_authentik_retries_total").increment(1);
        tokio::time::sleep(wait).await;
        Some(())
    }

    /// A create that is safe to retry: when a try's fate is unknown (a 5xx, a reset, a timeout:
    /// authentik may have created the object before the answer was lost), the object is looked
    /// up by its natural key with `find` before the create is sent again, and a found object is
    /// the result. A retried create refused with a 400 (a name already taken) is looked up the
    /// same way: an earlier try landed after all.
    async fn create<T, F, Fut>(
        &self,
        path: &str,
        body: &serde_json::Value,
        find: F,
    ) -> Result<T, AuthentikError>
    where
        T: DeserializeOwned,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, AuthentikError>>,
    {
        let mut tried = 0;
        loop {
            tried += 1;
            let error = match self
                .send_once(reqwest::Method::POST, path, &[], Some(body))
                .await
            {
                Ok(created) => return Ok(created),
                Err(e) => e,
            };
            if tried > 1 && matches!(error, AuthentikError::BadRequest { .. }) {
                return find().await?.ok_or(error);
            }
            if self
                .pause_before_retry(retry::Repeat::Always, &error, tried)
                .await
                .is_none()
            {
                return Err(error);
            }
            if !error.certainly_not_applied()
                && let Some(found) = find().await?
            {
                return Ok(found);
            }
        }
    }

    async fn send_once<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<T, AuthentikError> {
        let endpoint = format!("{method} {path}");
        // Held until the body is read: the cap counts requests authentik is working on.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| AuthentikError::Transport {
                endpoint: endpoint.clone(),
                problem: "client closed".into(),
            })?;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(self.token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| AuthentikError::transport(&endpoint, &e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| AuthentikError::transport(&endpoint, &e))?;
        if status.is_success() {
            let text: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(text).map_err(|e| AuthentikError::Decode {
                endpoint,
                problem: e.to_string(),
            });
        }
        Err(AuthentikError::from_status(
            endpoint,
            status.as_u16(),
            &bytes,
            retry_after,
        ))
    }

    async fn get_opt<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, AuthentikError> {
        match self.send(reqwest::Method::GET, path, &[], None).await {
            Ok(value) => Ok(Some(value)),
            Err(AuthentikError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every object of a list endpoint, page by page.
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        filters: &[(&str, String)],
    ) -> Result<Vec<T>, AuthentikError> {
        let mut out = Vec::new();
        let mut page = 1u64;
        loop {
            let mut query: Vec<(&str, String)> = filters.to_vec();
            query.push(("page", page.to_string()));
            query.push(("page_size", MAX_PAGE_SIZE.to_string()));
            let result: Page<T> = self.send(reqwest::Method::GET, path, &query, None).await?;
            out.extend(result.results);
            let next = result.pagination.next;
            // `next` is 0 on the last page; guard against a server that never says so.
            if next == 0 || next <= page || page >= result.pagination.total_pages.max(1) {
                break;
            }
            page = next;
        }
        Ok(out)
    }

    async fn write<T: DeserializeOwned, B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
    ) -> Result<T, AuthentikError> {
        let body = serde_json::to_value(body).map_err(|e| AuthentikError::Decode {
            endpoint: format!("{method} {path}"),
            problem: format!("request body: {e}"),
        })?;
        self.send(method, path, &[], Some(&body)).await
    }

    // --- applications ------------------------------------------------------------------------

    pub async fn applications(&self) -> Result<Vec<Application>, AuthentikError> {
        self.list_all(
            "/core/applications/",
            &[("superuser_full_list", "true".into())],
        )
        .await
    }

    pub async fn application(&self, slug: &str) -> Result<Option<Application>, AuthentikError> {
        self.get_opt(&format!("/core/applications/{slug}/")).await
    }

    pub async fn create_application(
        &self,
        body: &serde_json::Value,
    ) -> Result<Application, AuthentikError> {
        let slug = natural_key(body, "slug");
        self.create("/core/applications/", body, || self.application(slug))
            .await
    }

    pub async fn patch_application(
        &self,
        slug: &str,
        body: &serde_json::Value,
    ) -> Result<Application, AuthentikError> {
        self.write(
            reqwest::Method::PATCH,
            &format!("/core/applications/{slug}/"),
            body,
        )
        .await
    }

    // --- OAuth2 providers --------------------------------------------------------------------

    pub async fn oauth2_providers(&self) -> Result<Vec<OAuth2Provider>, AuthentikError> {
        self.list_all("/providers/oauth2/", &[]).await
    }

    pub async fn oauth2_provider_by_name(
        &self,
        name: &str,
    ) -> Result<Option<OAuth2Provider>, AuthentikError> {
        let found: Vec<OAuth2Provider> = self
            .list_all("/providers/oauth2/", &[("name", name.to_owned())])
            .await?;
        Ok(found.into_iter().find(|p| p.name == name))
    }

    pub async fn create_oauth2_provider(
        &self,
        body: &serde_json::Value,
    ) -> Result<OAuth2Provider, AuthentikError> {
        let name = natural_key(body, "name");
        self.create("/providers/oauth2/", body, || {
            self.oauth2_provider_by_name(name)
        })
        .await
    }

    pub async fn patch_oauth2_provider(
        &self,
        pk: i64,
        body: &serde_json::Value,
    ) -> Result<OAuth2Provider, AuthentikError> {
        self.write(
            reqwest::Method::PATCH,
            &format!("/providers/oauth2/{pk}/"),
            body,
        )
        .await
    }

    // --- SAML providers and property mappings -----------------------------------------------

    pub async fn saml_providers(&self) -> Result<Vec<SamlProvider>, AuthentikError> {
        self.list_all("/providers/saml/", &[]).await
    }

    pub async fn saml_provider_by_name(
        &self,
        name: &str,
    ) -> Result<Option<SamlProvider>, AuthentikError> {
        let found: Vec<SamlProvider> = self
            .list_all("/providers/saml/", &[("name", name.to_owned())])
            .await?;
        Ok(found.into_iter().find(|p| p.name == name))
    }

    pub async fn create_saml_provider(
        &self,
        body: &serde_json::Value,
    ) -> Result<SamlProvider, AuthentikError> {
        let name = natural_key(body, "name");
        self.create("/providers/saml/", body, || {
            self.saml_provider_by_name(name)
        })
        .await
    }

    /// A body that sets `signing_kp` must carry `sign_assertion`/`sign_response` too: authentik
    /// validates the submitted fields, not the stored ones.
    pub async fn patch_saml_provider(
        &self,
        pk: i64,
        body: &serde_json::Value,
    ) -> Result<SamlProvider, AuthentikError> {
        self.write(
            reqwest::Method::PATCH,
            &format!("/providers/saml/{pk}/"),
            body,
        )
        .await
    }

    pub async fn saml_property_mappings(&self) -> Result<Vec<SamlPropertyMapping>, AuthentikError> {
        self.list_all("/propertymappings/provider/saml/", &[]).await
    }

    pub async fn create_saml_property_mapping(
        &self,
        body: &serde_json::Value,
    ) -> Result<SamlPropertyMapping, AuthentikError> {
        let name = natural_key(body, "name");
        self.create("/propertymappings/provider/saml/", body, || async move {
            let all = self.saml_property_mappings().await?;
            Ok(all.into_iter().find(|m| m.name == name))
        })
        .await
    }

    pub async fn patch_saml_property_mapping(
        &self,
        pk: &str,
        body: &serde_json::Value,
    ) -> Result<SamlPropertyMapping, AuthentikError> {
        self.write(
            reqwest::Method::PATCH,
            &format!("/propertymappings/provider/saml/{pk}/"),
            body,
        )
        .await
    }

    // --- proxy providers and outposts --------------------------------------------------------

    pub async fn proxy_providers(&self) -> Result<Vec<ProxyProvider>, AuthentikError> {
        self.list_all("/providers/proxy/", &[]).await
    }

    /// The proxy viewset only filters by suffixed lookups.
    pub async fn proxy_provider_by_name(
        &self,
        name: &str,
    ) -> Result<Option<ProxyProvider>, AuthentikError> {
        let found: Vec<ProxyProvider> = self
            .list_all("/providers/proxy/", &[("name__iexact", name.to_owned())])
            .await?;
        Ok(found.into_iter().find(|p| p.name == name))
    }

    pub async fn create_proxy_provider(
        &self,
        body: &serde_json::Value,
    ) -> Result<ProxyProvider, AuthentikError> {
        let name = natural_key(body, "name");
        self.create("/providers/proxy/", body, || {
            self.proxy_provider_by_name(name)
        })
        .await
    }

    /// authentik's validation reads `mode` (default `proxy`) and `internal_host` from the
    /// submitted body only, so every PATCH must repeat them.
    pub async fn patch_proxy_provider(
        &self,
        pk: i64,
        body: &serde_json::Value,
    ) -> Result<ProxyProvider, AuthentikError> {
        self.write(
            reqwest::Method::PATCH,
            &format!("/providers/proxy/{pk}/"),
            body,
        )
        .await
    }

    pub async fn outposts(&self) -> Result<Vec<Outpost>, AuthentikError> {
        self.list_all("/outposts/instances/", &[]).await
    }

    /// Outposts matching an `__iexact` filter, e.g. `("managed__iexact", EMBEDDED)`.
    pub async fn outposts_where(
        &self,
        filter: &str,
        value: &str,
    ) -> Result<Vec<Outpost>, AuthentikError> {
        self.list_all("/outposts/instances/", &[(filter, value.to_owned())])
            .await
    }

    pub async fn patch_outpost(
        &self,
        pk: &str,
        body: &serde_json::Value,
    ) -> Result<Outpost, AuthentikError> {
        self.write(
            reqwest::Method::PATCH,
            &format!("/outposts/instances/{pk}/"),
            body,
        )
        .await
    }

    // --- lookups -----------------------------------------------------------------------------

    pub async fn flow(&self, slug: &str) -> Result<Option<Flow>, AuthentikError> {
        self.get_opt(&format!("/flows/instances/{slug}/")).await
    }

    pub async fn flows(&self) -> Result<Vec<Flow>, AuthentikError> {
        self.list_all("/flows/instances/", &[]).await
    }

    pub async fn scope_mappings(&self) -> Result<Vec<ScopeMapping>, AuthentikError> {
        self.list_all("/propertymappings/provider/scope/", &[])
            .await
    }

    pub async fn create_scope_mapping(
        &self,
        body: &serde_json::Value,
    ) -> Result<ScopeMapping, AuthentikError> {
        let name = natural_key(body, "name");
        self.create("/propertymappings/provider/scope/", body, || async move {
            let all = self.scope_mappings().await?;
            Ok(all.into_iter().find(|m| m.name == name))
        })
        .await
    }

    pub async fn patch_scope_mapping(
        &self,
        pk: &str,
        body: &serde_json::Value,
    ) -> Result<ScopeMapping, AuthentikError> {
        self.write(
            reqwest::Method::PATCH,
            &format!("/propertymappings/provider/scope/{pk}/"),
            body,
        )
        .await
    }

    pub async fn certificate_keypairs(&self) -> Result<Vec<CertificateKeyPair>, AuthentikError> {
        self.list_all("/crypto/certificatekeypairs/", &[]).await
    }

    /// The keypair's certificate (PEM). authentik records a `secret_view` event for every call,
    /// so only add and fix use it; checks compare fingerprints from the keypair list.
    pub async fn view_certificate(&self, keypair_pk: &str) -> Result<String, AuthentikError> {
        let data: types::CertificateData = self
            .send(
                reqwest::Method::GET,
                &format!("/crypto/certificatekeypairs/{keypair_pk}/view_certificate/"),
                &[],
                None,
            )
            .await?;
        Ok(data.data)
    }

    /// Cheap authenticated call: proves the token works.
    pub async fn me(&self) -> Result<serde_json::Value, AuthentikError> {
        self.send(reqwest::Method::GET, "/core/users/me/", &[], None)
            .await
    }

    /// `GET /admin/version/`: `version_current` is the running release, e.g. `2026.2.1`.
    pub async fn version(&self) -> Result<serde_json::Value, AuthentikError> {
        self.send(reqwest::Method::GET, "/admin/version/", &[], None)
            .await
    }
}

/// The natural key a create body carries (`slug` of an application, `name` of the rest).
fn natural_key<'a>(body: &'a serde_json::Value, field: &str) -> &'a str {
    body.get(field).and_then(|v| v.as_str()).unwrap_or_default()
}
