//! A stateful stand-in for the authentik 2026.2.2 REST API (`/api/v3/`), served on loopback.
//!
//! Start one with [`AuthentikSim::new`] and [`AuthentikSim::start`]; the returned [`SimHandle`]
//! tells the base URL and lets a test look at and change authentik's state behind the API's
//! back (like an admin editing in the UI), read the request log, and inject faults.

mod api;
mod applications;
mod faults;
mod identity;
mod list;
mod notifications;
mod outposts;
mod property_mappings;
mod protocol;
mod providers;
mod proxy;
mod readonly;
mod routes;
mod saml;
mod schema;
mod seed;
mod server;
mod store;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use faults::Faults;
pub use seed::fingerprints;

use server::Shared;

/// One request as the stand-in saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query string, e.g. `/api/v3/core/applications/grafana/`.
    pub path: String,
    /// The raw query string without `?`; empty when there was none.
    pub query: String,
    /// The JSON body; `None` when the body was empty. A body that is not JSON is kept as a
    /// JSON string holding its text.
    pub body: Option<Value>,
    /// The status answered; `0` when the connection was reset without an answer.
    pub status: u16,
    /// The injected fault, if any: `error`, `error_after_forwarding`, `rate_limited`,
    /// `timeout` or `reset`.
    pub fault: Option<&'static str>,
}

/// Builder for the authentik stand-in. Seeds authentik's default objects: the default flows,
/// the managed scope mappings, the two built-in certificate keypairs and the embedded outpost.
#[derive(Debug, Clone)]
pub struct AuthentikSim {
    token: String,
    bind: SocketAddr,
    faults: Faults,
}

impl AuthentikSim {
    /// A stand-in that accepts `Authorization: Bearer <token>`.
    pub fn new(token: &str) -> AuthentikSim {
        AuthentikSim {
            token: token.to_owned(),
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            faults: Faults::default(),
        }
    }

    /// Listen on `addr` instead of a random loopback port (the binary uses this).
    pub fn bind(mut self, addr: SocketAddr) -> AuthentikSim {
        self.bind = addr;
        self
    }

    /// Start with these faults already active.
    pub fn faults(mut self, faults: Faults) -> AuthentikSim {
        self.faults = faults;
        self
    }

    /// Start serving inside the current tokio runtime; returns once the socket is listening.
    ///
    /// # Panics
    /// If the address cannot be bound; use [`AuthentikSim::try_start`] to handle that.
    pub async fn start(self) -> SimHandle {
        let bind = self.bind;
        match self.try_start().await {
            Ok(handle) => handle,
            Err(err) => panic!("authentik stand-in cannot listen on {bind}: {err}"),
        }
    }

    /// Like [`AuthentikSim::start`], but returns the bind error.
    pub async fn try_start(self) -> io::Result<SimHandle> {
        let shared = Arc::new(Shared::new(self.token, self.faults));
        let (addr, shutdown, task) = server::serve(self.bind, Arc::clone(&shared)).await?;
        shared.store().origin = format!("http://{addr}");
        Ok(SimHandle {
            shared,
            addr,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }
}

/// A running stand-in. Dropping it stops the server.
#[derive(Debug)]
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`; the API is under `/api/v3/`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the stand-in listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Build the protocol endpoints' URLs (discovery `issuer`, SAML metadata locations) from
    /// `url` instead of the request's host; `None` goes back to echoing the host.
    pub fn set_public_url(&self, url: Option<&str>) {
        self.shared.store().public_url = url.map(str::to_owned);
    }

    /// The API token the stand-in accepts.
    pub fn token(&self) -> String {
        self.shared.token.clone()
    }

    /// Every application, in authentik's response shape, ordered by name.
    pub fn applications(&self) -> Vec<Value> {
        self.shared.store().all_applications()
    }

    /// Every OAuth2 provider, in authentik's response shape, ordered by name.
    pub fn oauth2_providers(&self) -> Vec<Value> {
        self.shared.store().all_oauth2_providers()
    }

    /// Every SAML provider, in authentik's response shape, ordered by name.
    pub fn saml_providers(&self) -> Vec<Value> {
        self.shared.store().all_saml_providers()
    }

    /// Every proxy provider, in authentik's response shape, ordered by name.
    pub fn proxy_providers(&self) -> Vec<Value> {
        self.shared.store().all_proxy_providers()
    }

    /// The application with this slug.
    pub fn application(&self, slug: &str) -> Option<Value> {
        self.shared.store().application_by_slug(slug)
    }

    /// The provider (of any type) with this name.
    pub fn provider_by_name(&self, name: &str) -> Option<Value> {
        self.shared.store().provider_by_name(name)
    }

    /// Shallow-merge `patch` (a JSON object) into the application's stored fields, bypassing
    /// the API: what an admin editing in the UI would do. Nothing is validated.
    ///
    /// # Panics
    /// If there is no such application, `patch` is not an object, or it names a field that is
    /// read-only or not an application field (a test bug).
    pub fn patch_application(&self, slug: &str, patch: Value) {
        self.shared.store().patch_application(slug, patch);
    }

    /// Shallow-merge `patch` into the provider's stored fields, bypassing the API.
    ///
    /// # Panics
    /// As [`SimHandle::patch_application`].
    pub fn patch_provider(&self, name: &str, patch: Value) {
        self.shared.store().patch_provider(name, patch);
    }

    /// Shallow-merge `patch` into the outpost's stored fields, bypassing the API (e.g.
    /// `{"providers": []}` to detach every provider).
    ///
    /// # Panics
    /// As [`SimHandle::patch_application`].
    pub fn patch_outpost(&self, name: &str, patch: Value) {
        self.shared.store().patch_outpost(name, patch);
    }

    /// Delete the application as authentik would (its backchannel providers go with it).
    /// Returns whether it existed.
    pub fn delete_application(&self, slug: &str) -> bool {
        self.shared.store().delete_application(slug)
    }

    /// Delete the provider as authentik would (applications and outposts let go of it).
    /// Returns whether it existed.
    pub fn delete_provider(&self, name: &str) -> bool {
        self.shared.store().delete_provider_by_name(name)
    }

    /// Every scope mapping, in authentik's response shape.
    pub fn scope_mappings(&self) -> Vec<Value> {
        self.shared.store().all_scope_mappings()
    }

    /// Every SAML property mapping, in authentik's response shape.
    pub fn saml_property_mappings(&self) -> Vec<Value> {
        self.shared.store().all_saml_mappings()
    }

    /// Every certificate keypair, in authentik's response shape.
    pub fn certificate_keypairs(&self) -> Vec<Value> {
        self.shared.store().all_keypairs()
    }

    /// Add a keypair with a freshly generated self-signed certificate valid for `days_valid`
    /// days from now (negative: expired that many days ago), as an admin importing one would.
    /// Returns it in authentik's response shape.
    ///
    /// # Panics
    /// If a keypair with this name exists (the name is unique in authentik).
    pub fn add_keypair(&self, name: &str, days_valid: i64) -> Value {
        let mut store = self.shared.store();
        assert!(
            store.keypairs.iter().all(|k| k.name() != name),
            "add_keypair: a keypair named {name:?} exists"
        );
        let keypair = seed::keypair(name, None, days_valid);
        let fields = keypair.fields.clone();
        store.keypairs.push(keypair);
        fields
    }

    /// The PEM certificate of the keypair with this name (what `view_certificate` answers).
    pub fn certificate_pem(&self, name: &str) -> Option<String> {
        self.shared
            .store()
            .keypairs
            .iter()
            .find(|k| k.name() == name)
            .map(|k| k.certificate_pem.clone())
    }

    /// How many times a certificate was read through `view_certificate` (each call is a
    /// `secret_view` event in authentik).
    pub fn certificate_views(&self) -> usize {
        self.shared
            .log()
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/view_certificate/"))
            .count()
    }

    /// Every flow, in authentik's response shape.
    pub fn flows(&self) -> Vec<Value> {
        self.shared.store().all_flows()
    }

    /// Every outpost, in authentik's response shape.
    pub fn outposts(&self) -> Vec<Value> {
        self.shared.store().all_outposts()
    }

    /// Accept `key` as an API token of `username` (a new user unless one exists; `superuser`
    /// puts a new one in `authentik Admins`): `me` then answers as that user. Returns its pk.
    pub fn add_token(&self, key: &str, username: &str, superuser: bool) -> i64 {
        let mut store = self.shared.store();
        let pk = store.identity.add_user(username, superuser);
        store.identity.add_api_token(key, pk);
        pk
    }

    /// Every user, in the user list's shape.
    pub fn users(&self) -> Vec<Value> {
        self.shared.store().identity.all_users()
    }

    /// Every group, in the group list's shape (`users` holds member pks).
    pub fn groups(&self) -> Vec<Value> {
        self.shared.store().identity.all_groups()
    }

    /// Every token, in the token list's shape (without keys).
    pub fn tokens(&self) -> Vec<Value> {
        self.shared.store().identity.all_tokens()
    }

    /// The stored fields of every notification-pipeline object of one kind: `"mappings"`
    /// (webhook mappings), `"transports"`, `"policies"` (event matchers), `"rules"` or
    /// `"bindings"`.
    ///
    /// # Panics
    /// On any other kind (a test bug).
    pub fn notification_objects(&self, kind: &str) -> Vec<Value> {
        let store = self.shared.store();
        let n = &store.notifications;
        let objects = match kind {
            "mappings" => &n.mappings,
            "transports" => &n.transports,
            "policies" => &n.policies,
            "rules" => &n.rules,
            "bindings" => &n.bindings,
            other => panic!("notification_objects: unknown kind {other:?}"),
        };
        objects.iter().cloned().map(Value::Object).collect()
    }

    /// Every request received since start (or the last [`SimHandle::reset_requests`]), in the
    /// order they were answered.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log().clone()
    }

    /// Non-GET requests that reached a handler: routed, authenticated, allowed method, and not
    /// answered by a fault (a request held by a timeout fault does reach it). Refused bodies
    /// count too. Every PUT/PATCH counts, even one that changed nothing (authentik saves and
    /// emits `model_updated` regardless).
    pub fn write_count(&self) -> usize {
        self.shared.writes.load(Ordering::SeqCst)
    }

    /// Requests whose method is `method` (case-insensitive) and whose path starts with
    /// `path_prefix`. The prefix may include `/api/v3` or leave it out.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.shared
            .log()
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method))
            .filter(|r| path_has_prefix(&r.path, path_prefix))
            .count()
    }

    /// Forget the request log, the write count and the schema violations.
    pub fn reset_requests(&self) {
        self.shared.log().clear();
        self.shared.writes.store(0, Ordering::SeqCst);
        self.shared.violations().clear();
    }

    /// Request bodies that failed authentik's request schema, one line each: operation,
    /// schema name, JSON pointer and what was wrong (never the offending value).
    pub fn schema_violations(&self) -> Vec<String> {
        self.shared.violations().clone()
    }

    /// Replace the active faults; every request's try count starts again from zero.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    /// Stop accepting connections and wait (at most a second) for requests in flight.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            // A request held by a timeout fault would keep graceful shutdown waiting; don't.
            if tokio::time::timeout(Duration::from_secs(1), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Whether `path` starts with `prefix`, with or without the `/api/v3` mount point.
pub(crate) fn path_has_prefix(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix)
        || path
            .strip_prefix("/api/v3")
            .is_some_and(|rest| rest.starts_with(prefix))
}
