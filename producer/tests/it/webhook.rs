//! `POST /webhooks/authentik` on real PostgreSQL and RabbitMQ: what is enqueued for which
//! request. authentik's own bodies are vendored from recordings of a real server.

use std::sync::Arc;

use producer::serve::webhook::{self, MAX_BODY_BYTES, WEBHOOK_SECRET_HEADER, Webhook};
use reqwest::StatusCode;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::serve::{JobView, Pipeline, platform_dir};

const SECRET: &str = "0123456789abcdef0123456789abcdef-shared";
pub const OWN_USER: &str = "pma-sso";

/// Sample 50: authentik's default body for `model_created` on an application, pk
/// `e63ddb1436ad497faf55d290db69caf6`, by `akadmin`.
const DEFAULT_BODY: &str = include_str!("../fixtures/authentik-webhook-50-default-body.json");
/// Sample 37: the same kind of request as the receiver saw it, headers included.
const RECEIVED: &str = include_str!("../fixtures/authentik-webhook-37-received-with-headers.json");
/// The application of samples 37 and 50, dashed as the API shows it.
const SAMPLE_APP: &str = "e63ddb14-36ad-497f-af55-d290db69caf6";

/// The webhook route served on a loopback port, over a pipeline of its own.
pub struct Hook {
    pub pipeline: Pipeline,
    pub url: String,
    pub http: reqwest::Client,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn start(services: &[&str]) -> Hook {
    listen(services, SECRET).await
}

/// The route for `services`' packages, accepting `secret`, ignoring changes made by
/// [`OWN_USER`].
pub async fn listen(services: &[&str], secret: &str) -> Hook {
    let pipeline = Pipeline::start().await;
    let dir = platform_dir(services, "DOMAIN=example.org\n");
    let app = webhook::router(Arc::new(Webhook {
        secret: secret.to_owned().into(),
        own_user: Some(OWN_USER.into()),
        packages_dir: dir.path().join("packages"),
        jobs: pipeline.jobs.clone(),
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}{}",
        listener.local_addr().expect("addr"),
        webhook::PATH
    );
    let stop = CancellationToken::new();
    let until = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { until.cancelled().await })
            .await;
    });
    Hook {
        pipeline,
        url,
        http: reqwest::Client::new(),
        stop,
        _dir: dir,
    }
}

impl Hook {
    async fn post(&self, secret: Option<&str>, body: impl Into<reqwest::Body>) -> StatusCode {
        self.post_bytes(secret.map(str::as_bytes), body).await
    }

    /// A POST with the secret header as raw bytes (absent when `None`), for secrets that are
    /// not text.
    pub async fn post_bytes(
        &self,
        secret: Option<&[u8]>,
        body: impl Into<reqwest::Body>,
    ) -> StatusCode {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(secret) = secret {
            request = request.header(
                WEBHOOK_SECRET_HEADER,
                reqwest::header::HeaderValue::from_bytes(secret).expect("header value"),
            );
        }
        request.send().await.expect("send").status()
    }

    async fn jobs(&self) -> Vec<JobView> {
        self.pipeline.jobs().await
    }

    /// What a check records: the service's authentik object ids.
    async fn remember(&self, service: &str, ids: serde_json::Value) {
        sqlx::query(
            "insert into service_state (service, last_status, authentik_ids) values ($1, 'in_sync', $2)",
        )
        .bind(service)
        .bind(ids)
        .execute(self.pipeline.pool())
        .await
        .expect("service state");
    }

    pub async fn finish(self) {
        self.stop.cancel();
        self.pipeline.finish().await;
    }
}

fn mapping_body(action: &str, model: (&str, &str, &str), name: &str, user: &str) -> String {
    json!({
        "event_uuid": "9a4c1f0e-5b7d-4e2a-8c3f-1d2e3f4a5b6c",
        "action": action,
        "created": "2026-04-20T10:11:12.123456Z",
        "model_app": model.0,
        "model_name": model.1,
        "model_pk": model.2,
        "object_name": name,
        "event_user": user,
        "request_path": "/api/v3/core/applications/grafana/",
    })
    .to_string()
}

fn check(service: &str, trigger_ref: Option<&str>) -> JobView {
    JobView {
        service: service.into(),
        action: "check".into(),
        trigger: "webhook".into(),
        trigger_ref: trigger_ref.map(str::to_owned),
        status: "queued".into(),
    }
}

const APP: (&str, &str, &str) = (
    "authentik_core",
    "application",
    "3f0c2b9e8d7a4c1f9e0d1c2b3a4f5e6d",
);

#[tokio::test]
async fn an_application_change_in_the_mapping_body_enqueues_exactly_one_check() {
    let h = start(&["grafana", "redmine"]).await;
    let body = mapping_body("model_updated", APP, "Grafana", "akadmin");
    assert_eq!(h.post(Some(SECRET), body.clone()).await, StatusCode::OK);
    // authentik may deliver twice: the waiting check absorbs the duplicate.
    assert_eq!(h.post(Some(SECRET), body).await, StatusCode::OK);
    assert_eq!(
        h.jobs().await,
        [check(
            "grafana",
            Some("9a4c1f0e-5b7d-4e2a-8c3f-1d2e3f4a5b6c")
        )]
    );
    h.finish().await;
}

#[tokio::test]
async fn authentiks_default_body_enqueues_exactly_one_check_for_the_right_service() {
    let h = start(&["grafana", "redmine"]).await;
    h.remember("grafana", json!({"application": SAMPLE_APP, "provider": "4", "provider_model": "authentik_providers_oauth2.oauth2provider"}))
        .await;
    h.remember(
        "redmine",
        json!({"application": "0b0b0b0b-0000-4000-8000-000000000000"}),
    )
    .await;
    assert_eq!(
        h.post(Some(SECRET), DEFAULT_BODY.trim().to_owned()).await,
        StatusCode::OK
    );
    // Sample 37's body is the same shape, as the receiver saw it.
    let received: serde_json::Value = serde_json::from_str(RECEIVED).expect("sample 37");
    let inner = received["body"].as_str().expect("body").to_owned();
    assert_eq!(h.post(Some(SECRET), inner).await, StatusCode::OK);
    // The default body carries no event id.
    assert_eq!(h.jobs().await, [check("grafana", None)]);
    h.finish().await;
}

#[tokio::test]
async fn a_missing_or_wrong_secret_is_refused_and_nothing_is_enqueued() {
    let h = start(&["grafana"]).await;
    let body = mapping_body("model_updated", APP, "Grafana", "akadmin");
    assert_eq!(h.post(None, body.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.post(
            Some("0123456789abcdef0123456789abcdef-sharex"),
            body.clone()
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.post(Some(""), body.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.post(Some("short"), body).await, StatusCode::UNAUTHORIZED);
    assert!(h.jobs().await.is_empty());
    h.finish().await;
}

#[tokio::test]
async fn an_oversize_body_is_refused_with_413() {
    let h = start(&["grafana"]).await;
    let padding = "x".repeat(MAX_BODY_BYTES);
    let body = json!({"action": "model_updated", "model_app": "authentik_core", "model_name": "application",
        "model_pk": APP.2, "object_name": "Grafana", "padding": padding})
    .to_string();
    assert_eq!(
        h.post(Some(SECRET), body.clone()).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Without a Content-Length (chunked), the limit holds while reading.
    assert_eq!(post_chunked(&h.url, body.as_bytes()).await, 413);
    assert!(h.jobs().await.is_empty());
    h.finish().await;
}

/// A chunked POST written by hand (no Content-Length); returns the status code.
async fn post_chunked(url: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http");
    let (host, path) = rest.split_once('/').expect("path");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let head = format!(
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{WEBHOOK_SECRET_HEADER}: {SECRET}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    for chunk in body.chunks(8192) {
        // The server may answer and close before the whole body is sent.
        if stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .is_err()
            || stream.write_all(chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn garbage_is_refused_with_400() {
    let h = start(&["grafana"]).await;
    for garbage in [
        "this is not json".to_owned(),
        "[1, 2, 3]".to_owned(),
        r#"{"action": 42}"#.to_owned(),
        r#"{"body": "model_updated: {'model': {'app': 'authentik_core', 'pk': "}"#.to_owned(),
        r#"{"action": "model_updated", "model_app": "authentik_core"}"#.to_owned(),
    ] {
        assert_eq!(
            h.post(Some(SECRET), garbage.clone()).await,
            StatusCode::BAD_REQUEST,
            "{garbage}"
        );
    }
    assert!(h.jobs().await.is_empty());
    h.finish().await;
}

#[tokio::test]
async fn authentiks_transport_test_is_answered_2xx_without_a_job() {
    let h = start(&["grafana"]).await;
    for test in [
        json!({"foo": "bar"}),
        json!({"kind": "test", "body": "Test Notification from transport pma-sso"}),
        json!({"event_uuid": "9a4c1f0e-5b7d-4e2a-8c3f-1d2e3f4a5b6c", "action": "custom_notification_test",
               "model_app": null, "model_name": null, "model_pk": "None", "event_user": "akadmin"}),
        json!({"body": "Test Notification from transport pma-sso", "severity": "notice",
               "user_username": "pma-sso", "event_user_username": "akadmin"}),
    ] {
        assert!(
            h.post(Some(SECRET), test.to_string()).await.is_success(),
            "{test}"
        );
    }
    assert!(h.jobs().await.is_empty());
    h.finish().await;
}

#[tokio::test]
async fn pma_ssos_own_changes_are_ignored_and_another_admins_are_checked() {
    let h = start(&["grafana"]).await;
    let own = mapping_body("model_updated", APP, "Grafana", OWN_USER);
    assert_eq!(h.post(Some(SECRET), own).await, StatusCode::OK);
    let own_default = DEFAULT_BODY.replace(
        "\"event_user_username\": \"akadmin\"",
        "\"event_user_username\": \"pma-sso\"",
    );
    assert!(own_default.contains("\"event_user_username\": \"pma-sso\""));
    h.remember("grafana", json!({"application": SAMPLE_APP}))
        .await;
    assert_eq!(h.post(Some(SECRET), own_default).await, StatusCode::OK);
    assert!(h.jobs().await.is_empty(), "pma-sso's own change made a job");

    let admin = mapping_body("model_updated", APP, "Grafana", "akadmin");
    assert_eq!(h.post(Some(SECRET), admin).await, StatusCode::OK);
    assert_eq!(
        h.jobs().await,
        [check(
            "grafana",
            Some("9a4c1f0e-5b7d-4e2a-8c3f-1d2e3f4a5b6c")
        )]
    );
    h.finish().await;
}

#[tokio::test]
async fn a_deleted_application_is_traced_to_its_service_through_recorded_ids() {
    let h = start(&["grafana", "redmine", "uptime-kuma"]).await;
    // What the last check recorded; the application is gone from authentik now, and its
    // name no longer matches the manifest (someone renamed it before deleting it).
    h.remember("redmine", json!({"application": "5d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6", "provider": "12", "provider_model": "authentik_providers_oauth2.oauth2provider"}))
        .await;
    let deleted = mapping_body(
        "model_deleted",
        (
            "authentik_core",
            "application",
            "5d1e2f3a4b5c4d6e8f708192a3b4c5d6",
        ),
        "Old Redmine",
        "akadmin",
    );
    assert_eq!(h.post(Some(SECRET), deleted).await, StatusCode::OK);
    // Its provider, deleted too: pk 12 of the OAuth2 model, not a proxy provider with pk 12.
    let provider = mapping_body(
        "model_deleted",
        ("authentik_providers_proxy", "proxyprovider", "12"),
        "someone else's",
        "akadmin",
    );
    assert_eq!(h.post(Some(SECRET), provider).await, StatusCode::OK);
    let jobs = h.jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].service, "redmine");
    // An outpost change concerns every proxy service.
    let outpost = mapping_body(
        "model_updated",
        (
            "authentik_outposts",
            "outpost",
            "77aa00aa00aa4aaa8aaa00aa00aa00aa",
        ),
        "authentik Embedded Outpost",
        "akadmin",
    );
    assert_eq!(h.post(Some(SECRET), outpost).await, StatusCode::OK);
    let services: Vec<String> = h.jobs().await.into_iter().map(|j| j.service).collect();
    assert_eq!(services, ["redmine", "uptime-kuma"]);
    h.finish().await;
}

#[tokio::test]
async fn a_service_that_opts_into_auto_fix_gets_a_fix() {
    let h = start(&["grafana"]).await;
    let manifest = h._dir.path().join("packages/grafana/manifest.yaml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let text = text.replacen(
        "  configured: false",
        "  configured: true\n  auto_fix: true",
        1,
    );
    std::fs::write(&manifest, text).expect("write");
    let body = mapping_body("model_updated", APP, "Grafana", "akadmin");
    assert_eq!(h.post(Some(SECRET), body).await, StatusCode::OK);
    let jobs = h.jobs().await;
    assert_eq!(
        jobs.iter()
            .map(|j| (j.service.as_str(), j.action.as_str()))
            .collect::<Vec<_>>(),
        [("grafana", "fix")]
    );
    h.finish().await;
}

#[tokio::test]
async fn a_job_that_cannot_be_stored_is_answered_5xx_so_authentik_retries() {
    let h = start(&["grafana"]).await;
    h.pipeline.pool().close().await;
    let body = mapping_body("model_updated", APP, "Grafana", "akadmin");
    let status = h.post(Some(SECRET), body).await;
    assert!(status.is_server_error(), "{status}");
    h.stop.cancel();
    h.pipeline.finish().await;
}

/// Log lines written on this thread (the test's runtime and the server it spawned).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn refused_total(reason: &str) -> u64 {
    let wanted = format!("pma_sso_webhook_refused_total{{reason=\"{reason}\"}} ");
    worker::pipeline::http::metrics_handle()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(wanted.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_flood_of_refused_webhooks_is_counted_and_logged_once_per_reason() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (secret_before, malformed_before) = (refused_total("secret"), refused_total("malformed"));

    let h = start(&["grafana"]).await;
    let body = mapping_body("model_updated", APP, "Grafana", "akadmin");
    for _ in 0..200 {
        assert_eq!(
            h.post(Some("wrong"), body.clone()).await,
            StatusCode::UNAUTHORIZED
        );
    }
    for _ in 0..50 {
        assert_eq!(
            h.post(Some(SECRET), "not json").await,
            StatusCode::BAD_REQUEST
        );
    }
    h.finish().await;

    let text = String::from_utf8_lossy(&captured.0.lock().expect("log")).into_owned();
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("webhook refused"))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:#?}");
    assert!(
        refused[0].contains("missing or wrong shared secret") && refused[0].contains("refused=1"),
        "{}",
        refused[0]
    );
    assert!(refused[1].contains("malformed body"), "{}", refused[1]);
    // The process-wide counter also counts other tests' refusals.
    assert!(refused_total("secret") - secret_before >= 200);
    assert!(refused_total("malformed") - malformed_before >= 50);
}
