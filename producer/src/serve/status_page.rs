//! The status page: `/` (one row per service from `service_state`) and `/history/<svc>`
//! (recent jobs). Its own listener, apart from the webhook: the webhook must be reachable from
//! authentik's container, this page only from the operator. Without `PMA_SSO_STATUS_TOKEN` it
//! may only listen on loopback; with one, every request needs `Authorization: Bearer <token>`.
//!
//! Only what `status` and `history` print is shown: recorded summaries and drift messages,
//! which are redacted before they are stored (a secret only ever "differs").

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use worker::pipeline::queries;

use crate::commands::history::details;
use crate::commands::status::{reason, result, when};

/// Seconds between the page's own reloads.
const REFRESH_SECS: u32 = 30;
const HISTORY_LIMIT: i64 = 50;

pub struct StatusPage {
    pub db: PgPool,
    pub packages_dir: PathBuf,
    pub token: Option<SecretString>,
}

/// `PMA_SSO_STATUS_ADDR` (default `127.0.0.1:8081`) and `PMA_SSO_STATUS_TOKEN`.
pub fn settings(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<(SocketAddr, Option<SecretString>), String> {
    let addr: SocketAddr = match get("PMA_SSO_STATUS_ADDR") {
        None => SocketAddr::from(([127, 0, 0, 1], 8081)),
        Some(v) => v.parse().map_err(|_| {
            format!("PMA_SSO_STATUS_ADDR is invalid: expected host:port, got `{v}`")
        })?,
    };
    let token = get("PMA_SSO_STATUS_TOKEN")
        .filter(|t| !t.trim().is_empty())
        .map(SecretString::from);
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(format!(
            "PMA_SSO_STATUS_ADDR {addr} is not loopback: set PMA_SSO_STATUS_TOKEN so the status \
             page asks for a bearer token, or listen on 127.0.0.1"
        ));
    }
    Ok((addr, token))
}

pub fn router(page: Arc<StatusPage>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/history/{service}", get(history))
        .route("/metrics", get(crate::serve::metrics::render))
        .layer(middleware::from_fn(crate::serve::metrics::track))
        .layer(middleware::from_fn_with_state(page.clone(), bearer))
        .with_state(page)
}

async fn bearer(State(page): State<Arc<StatusPage>>, req: Request, next: Next) -> Response {
    if let Some(token) = &page.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !crate::serve::webhook::same_secret(given.as_bytes(), token.expose_secret().as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "bearer token required\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\"><title>{}</title><style>\
         body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left}}\
         .green{{color:#060}}.red{{color:#b00}}.error{{color:#a50}}.never{{color:#666}}\
         </style></head><body><h1>{}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    ))
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "status page: reading the job store");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the job store is not reachable\n",
    )
        .into_response()
}

/// Every package directory, plus services that have state but no manifest any more.
fn package_names(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().join(schemas::manifest::MANIFEST_FILE).is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

async fn index(State(page_state): State<Arc<StatusPage>>) -> Response {
    let states = match queries::service_states(&page_state.db).await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let mut names = package_names(&page_state.packages_dir);
    names.extend(states.iter().map(|s| s.service.clone()));
    names.sort();
    names.dedup();
    let mut body = String::from(
        "<table id=\"services\"><tr><th>service</th><th>result</th><th>last check</th>\
         <th>reason</th><th></th></tr>",
    );
    for name in &names {
        let state = states.iter().find(|s| &s.service == name);
        let (class, checked, why) = match state {
            None => ("never", "never".to_owned(), String::new()),
            Some(s) => {
                let r = result(s);
                let why = if r == "green" { None } else { reason(s) };
                (r, when(s.last_check_at), why.unwrap_or_default())
            }
        };
        let label = if class == "never" {
            "never checked"
        } else {
            class
        };
        let _ = write!(
            body,
            "<tr class=\"service {class}\" data-service=\"{n}\" data-result=\"{class}\">\
             <td>{n}</td><td class=\"{class}\">{label}</td><td>{checked}</td><td>{}</td>\
             <td><a href=\"/history/{n}\">history</a></td></tr>",
            esc(&why),
            n = esc(name),
        );
    }
    body.push_str("</table>");
    page("pma-sso status", &body).into_response()
}

async fn history(
    State(page_state): State<Arc<StatusPage>>,
    Path(service): Path<String>,
) -> Response {
    let jobs = match queries::history(&page_state.db, &service, HISTORY_LIMIT).await {
        Ok(j) => j,
        Err(e) => return unavailable(e),
    };
    let mut body = String::from(
        "<p><a href=\"/\">all services</a></p><table id=\"jobs\"><tr><th>created</th>\
         <th>action</th><th>trigger</th><th>status</th><th>outcome</th><th>details</th></tr>",
    );
    for job in &jobs {
        let mut lines = job.outcome.as_ref().map(details).unwrap_or_default();
        if job.outcome.is_none()
            && let Some(e) = &job.last_error
        {
            lines.push(format!("error: {e}"));
        }
        let details: Vec<String> = lines.iter().map(|l| esc(l)).collect();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            when(Some(job.created_at)),
            esc(job.action.as_str()),
            esc(&job.trigger),
            esc(job.status.as_str()),
            esc(job.outcome.as_ref().map_or("-", |o| o.label())),
            details.join("<br>"),
        );
    }
    body.push_str("</table>");
    if jobs.is_empty() {
        body.push_str("<p>no jobs recorded</p>");
    }
    page(&format!("pma-sso history: {service}"), &body).into_response()
}
