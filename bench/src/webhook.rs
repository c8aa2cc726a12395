//! P4: authentik webhooks posted one at a time to `serve`'s webhook route (in this process),
//! timed until that check's outcome row is committed (LISTEN `pma_sso_jobs`).

use std::sync::Arc;
use std::time::Instant;

use producer::serve::webhook::{self, WEBHOOK_SECRET_HEADER, Webhook};
use schemas::job::{Action, Trigger};
use testkit::pg::TestDb;
use tokio_util::sync::CancellationToken;
use worker::pipeline::client::JobClient;

use crate::support::{self, Finished, InProcessWorker, Platform};

const SECRET: &str = "bench-shared-secret-0123456789abcdef";

/// Milliseconds from POST to committed outcome, one per event.
pub async fn run(events: usize) -> Vec<f64> {
    // A platform of the size of a real one: `serve` reads the manifests on every event.
    let platform = Platform::generate(12).await;
    platform.add_all().await;
    let target = platform.names[0].clone();
    let test_db = TestDb::new().await;
    let s = support::settings(&test_db.url);
    let pool = support::pool(&s).await;
    support::declare(&s).await;
    let worker = InProcessWorker::start(platform.settings(), &pool, &s).await;
    let jobs = Arc::new(
        JobClient::connect_with(&s, s.topology())
            .await
            .expect("client"),
    );
    let mut finished = Finished::listen(&test_db.url).await;

    // One check first, so `service_state` knows the application's pk (how serve maps an
    // event on an application to its service).
    let first = jobs
        .enqueue(&target, Action::Check, Trigger::Cli, None)
        .await
        .expect("enqueue");
    finished.wait_for(first.id).await;
    let app_pk = platform
        .sim
        .application(&target)
        .and_then(|a| a["pk"].as_str().map(str::to_owned))
        .expect("the application's pk");

    let app = webhook::router(Arc::new(Webhook {
        secret: SECRET.to_owned().into(),
        own_user: Some("pma-sso".into()),
        packages_dir: platform.packages_dir(),
        jobs: jobs.clone(),
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
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { until.cancelled().await })
            .await;
    });
    let http = reqwest::Client::new();

    let mut latencies = Vec::with_capacity(events);
    for _ in 0..events {
        let body = serde_json::json!({
            "event_uuid": uuid::Uuid::new_v4().to_string(),
            "action": "model_updated",
            "created": "2026-04-20T10:11:12.123456Z",
            "model_app": "authentik_core",
            "model_name": "application",
            "model_pk": app_pk,
            "object_name": target,
            "event_user": "akadmin",
            "request_path": format!("/api/v3/core/applications/{target}/"),
        })
        .to_string();
        let started = Instant::now();
        let answer: serde_json::Value = http
            .post(&url)
            .header("content-type", "application/json")
            .header(WEBHOOK_SECRET_HEADER, SECRET)
            .body(body)
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("answer");
        let job = answer["enqueued"][0]["job"]
            .as_str()
            .and_then(|j| uuid::Uuid::parse_str(j).ok())
            .unwrap_or_else(|| panic!("the webhook enqueued no job: {answer}"));
        finished.wait_for(job).await;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }

    stop.cancel();
    let _ = server.await;
    worker.stop().await;
    if let Ok(jobs) = Arc::try_unwrap(jobs) {
        jobs.close().await;
    }
    pool.close().await;
    support::delete_queues(&s).await;
    drop(test_db);
    latencies
}
