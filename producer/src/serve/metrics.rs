//! HTTP metrics for `serve`'s listeners, labelled by route *template* (`/history/{service}`),
//! never by the raw path, so a service slug or a probe of random paths cannot grow the label
//! set. Rendered with the worker's on `/metrics` of the status listener.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("pma_sso_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("pma_sso_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

pub async fn render() -> String {
    worker::pipeline::http::metrics_handle().render()
}
