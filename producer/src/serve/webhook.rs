//! `POST /webhooks/authentik`: authentik's notifications in, `check` (or `fix`) jobs out.
//!
//! authentik does not sign webhooks, so the request must carry the shared secret that
//! `pma-sso webhook install` put in the transport's header mapping. The answer tells authentik
//! whether to retry: 2xx once the jobs are recorded (or there is nothing to do), 5xx when they
//! could not be stored; 4xx for requests that will never succeed.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use schemas::job::{Action, Trigger};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::Row;
use worker::pipeline::client::JobClient;

use super::event::{self, Parsed};
use super::mapping::{self, KnownIds};
use super::refusals::{self, Reason, Refusals};

/// The header carrying the shared secret, as `pma-sso webhook install` configures it.
pub use worker::authentik::WEBHOOK_SECRET_HEADER;

/// authentik's bodies are a few hundred bytes; anything near this is not from authentik.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub const PATH: &str = "/webhooks/authentik";

pub struct Webhook {
    pub secret: SecretString,
    /// pma-sso's own authentik account: its changes are the pipeline's own, not drift.
    pub own_user: Option<String>,
    pub packages_dir: PathBuf,
    pub jobs: Arc<JobClient>,
}

pub fn router(webhook: Arc<Webhook>) -> Router {
    Router::new()
        .route(PATH, post(receive))
        .layer(Extension(Arc::new(Refusals::new(refusals::INTERVAL))))
        .layer(axum::middleware::from_fn(crate::serve::metrics::track))
        .with_state(webhook)
}

/// Compare without an early exit, so the time taken says nothing about how much matched.
/// The length is not secret: every secret `webhook install` makes has the same length.
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    let diff = given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

fn authorised(headers: &HeaderMap, secret: &SecretString) -> bool {
    headers
        .get(WEBHOOK_SECRET_HEADER)
        .is_some_and(|v| same_secret(v.as_bytes(), secret.expose_secret().as_bytes()))
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn receive(
    State(webhook): State<Arc<Webhook>>,
    Extension(refusals): Extension<Arc<Refusals>>,
    request: Request,
) -> Response {
    // The secret first: an unauthenticated caller learns nothing else, not even size limits.
    if !authorised(request.headers(), &webhook.secret) {
        refusals.refused(Reason::Secret);
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing or wrong shared secret"}),
        );
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        refusals.refused(Reason::TooLarge);
        return too_large();
    }
    let body: Body = request.into_body();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) if super::limits::is_body_timeout(&e) => {
            refusals.refused(Reason::SlowBody);
            return answer(StatusCode::REQUEST_TIMEOUT, json!({"error": e.to_string()}));
        }
        Err(_) => {
            refusals.refused(Reason::TooLarge);
            return too_large();
        }
    };
    match event::parse(&bytes) {
        Err(e) => {
            refusals.refused(Reason::Malformed);
            tracing::debug!(problem = %e.0, "webhook refused: malformed body");
            answer(StatusCode::BAD_REQUEST, json!({"error": e.0}))
        }
        Ok(Parsed::Ignored(reason)) => {
            tracing::debug!(%reason, "webhook: nothing to do");
            answer(StatusCode::OK, json!({"ignored": reason}))
        }
        Ok(Parsed::Model(e))
            if e.user.is_some() && e.user.as_deref() == webhook.own_user.as_deref() =>
        {
            tracing::debug!(action = %e.action, "webhook: pma-sso's own change");
            answer(
                StatusCode::OK,
                json!({"ignored": "a change made by pma-sso"}),
            )
        }
        Ok(Parsed::Model(e)) => match enqueue(&webhook, &e).await {
            Ok(enqueued) => answer(StatusCode::OK, json!({ "enqueued": enqueued })),
            Err(problem) => {
                // authentik retries a failed delivery: that is what we want here.
                tracing::error!(%problem, "webhook: could not record the jobs");
                answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "could not record the jobs; retry later"}),
                )
            }
        },
    }
}

fn too_large() -> Response {
    answer(
        StatusCode::PAYLOAD_TOO_LARGE,
        json!({"error": format!("the body exceeds {MAX_BODY_BYTES} bytes")}),
    )
}

async fn enqueue(
    webhook: &Webhook,
    event: &event::ModelEvent,
) -> Result<Vec<serde_json::Value>, String> {
    let manifests: Vec<schemas::Manifest> = schemas::load_packages(&webhook.packages_dir)
        .map_err(|e| format!("reading {}: {e}", webhook.packages_dir.display()))?
        .into_iter()
        .filter_map(Result::ok)
        .map(|p| p.manifest)
        .collect();
    let known = known_ids(&webhook.jobs.db)
        .await
        .map_err(|e| format!("reading service state: {e}"))?;
    let services = mapping::affected(&event.model, &manifests, &known);
    tracing::info!(
        action = %event.action,
        model = %format!("{}.{}", event.model.app, event.model.model_name),
        pk = %event.model.pk,
        services = ?services,
        "webhook event"
    );
    let mut enqueued = Vec::with_capacity(services.len());
    for service in services {
        let auto_fix = manifests
            .iter()
            .any(|m| m.name.as_str() == service && m.auto_fix());
        let action = if auto_fix { Action::Fix } else { Action::Check };
        let job = webhook
            .jobs
            .enqueue(&service, action, Trigger::Webhook, event.uuid.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        enqueued.push(json!({
            "service": service, "action": action.as_str(),
            "job": job.id.to_string(), "coalesced": job.coalesced,
        }));
    }
    Ok(enqueued)
}

async fn known_ids(db: &sqlx::PgPool) -> Result<Vec<KnownIds>, sqlx::Error> {
    let rows = sqlx::query("select service, authentik_ids from service_state")
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(KnownIds {
                service: r.try_get("service")?,
                ids: r.try_get("authentik_ids")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }
}
