//! The status page: `/` (counts by state, the last and next sweep, live workers, queued and
//! dead jobs, then one row per current service: type, result, last check, last change, the
//! reason and the command to run next) and `/history/<svc>` (recent jobs, identical
//! neighbours collapsed into one row with a count). Its own listener, apart from the webhook: the webhook must be reachable from
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
use croner::Cron;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use worker::pipeline::client::JobClient;
use worker::pipeline::queries;

use crate::serve::signals::Signals;

use crate::commands::history::details;
use crate::commands::status::{reason, when};

/// Seconds between the page's own reloads.
const REFRESH_SECS: u32 = 30;
/// Jobs read for a history page (identical neighbours collapse into one row).
const HISTORY_LIMIT: i64 = 200;

pub struct StatusPage {
    pub db: PgPool,
    pub packages_dir: PathBuf,
    pub token: Option<SecretString>,
    /// Where queue depths and live workers are read (`None`: not shown, not exported).
    pub broker: Option<Arc<JobClient>>,
    /// The sweep's schedule: the next sweep and the interval between two.
    pub sweep_cron: Option<Cron>,
}

impl StatusPage {
    async fn signals(&self) -> Result<Signals, worker::pipeline::db::DbError> {
        Signals::read(
            &self.db,
            &self.packages_dir,
            self.broker.as_deref(),
            self.sweep_cron.as_ref(),
        )
        .await
    }
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
        .route("/metrics", get(metrics))
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

/// A page: server-rendered, readable on a phone (the service table turns into cards), reloading
/// itself every [`REFRESH_SECS`]. The few lines of script only keep the scroll position across
/// that reload; without script the page still reloads.
fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\"><title>{}</title><style>{STYLE}</style>\
         <script>{KEEP_SCROLL}</script></head><body><h1>{}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    ))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1em;color:#222}\
    h1{font-size:1.4em}table{border-collapse:collapse;width:100%}\
    td,th{padding:.35em .6em;text-align:left;vertical-align:top;border-bottom:1px solid #ddd}\
    code{background:#f3f3f3;padding:0 .2em;white-space:nowrap}\
    .counts span{display:inline-block;margin:0 .4em .4em 0;padding:.3em .7em;border-radius:1em;\
    background:#eee;font-weight:bold}\
    .green{color:#060}.red{color:#b00}.error{color:#a50}.unverified{color:#7a5c00}.never{color:#666}\
    .count{color:#666;font-size:.9em}.facts p{margin:.3em 0}\
    @media (max-width:700px){table,tbody,tr,td{display:block}tr:first-child{display:none}\
    tr{border:1px solid #ccc;border-radius:.4em;margin:.6em 0;padding:.3em}\
    td{border:0;padding:.15em .3em}td:empty{display:none}\
    td[data-label]::before{content:attr(data-label) \": \";color:#666}}\
    td{overflow-wrap:anywhere}";

/// Keep the scroll position across the page's own reload.
const KEEP_SCROLL: &str = "var k='scroll:'+location.pathname;\
    addEventListener('pagehide',function(){sessionStorage.setItem(k,String(scrollY))});\
    addEventListener('load',function(){var y=sessionStorage.getItem(k);if(y)scrollTo(0,+y)});";

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "status page: reading the job store");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the job store is not reachable\n",
    )
        .into_response()
}

/// The pipeline's own metrics, then the signals read now.
async fn metrics(State(page_state): State<Arc<StatusPage>>) -> Response {
    match page_state.signals().await {
        Ok(signals) => {
            let mut text = crate::serve::metrics::render().await;
            text.push_str(&signals.render());
            text.into_response()
        }
        Err(e) => unavailable(e),
    }
}

async fn index(State(page_state): State<Arc<StatusPage>>) -> Response {
    let signals = match page_state.signals().await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let mut body = summary_html(&signals);
    body.push_str(
        "<table id=\"services\"><tr><th>service</th><th>type</th><th>result</th>\
         <th>last check</th><th>last change</th><th>reason</th><th>next step</th><th></th></tr>",
    );
    for (name, state) in &signals.services {
        let class = Signals::state_of(state.as_ref());
        let why = match state {
            Some(s) if class != "green" => reason(s).unwrap_or_default(),
            _ => String::new(),
        };
        let kind = schemas::load_package(&page_state.packages_dir, name)
            .map_or_else(|_| "?".to_owned(), |p| p.manifest.kind().to_string());
        let label = if class == "never" {
            "never checked"
        } else {
            class
        };
        let step = next_step(class, name)
            .iter()
            .map(|c| format!("<code>{}</code>", esc(c)))
            .collect::<Vec<_>>()
            .join(" then ");
        let _ = write!(
            body,
            "<tr class=\"service {class}\" data-service=\"{n}\" data-result=\"{class}\">\
             <td><b>{n}</b></td><td data-label=\"type\">{kind}</td>\
             <td class=\"{class}\" data-label=\"result\">{label}</td>\
             <td data-label=\"checked\">{checked}</td><td data-label=\"changed\">{changed}</td>\
             <td data-label=\"reason\">{why}</td><td data-label=\"next\">{step}</td>\
             <td><a href=\"/history/{n}\">history</a></td></tr>",
            n = esc(name),
            kind = esc(&kind),
            checked = when(state.as_ref().and_then(|s| s.last_check_at)),
            changed = when(state.as_ref().and_then(|s| s.last_change_at)),
            why = esc(&why),
        );
    }
    body.push_str("</table>");
    if signals.services.is_empty() {
        body.push_str("<p>no services (no manifest under the packages directory)</p>");
    }
    page("pma-sso status", &body).into_response()
}

/// The commands an operator runs next for a service in this state.
fn next_step(state: &str, service: &str) -> Vec<String> {
    match state {
        "red" => vec![
            format!("pma-sso plan {service}"),
            format!("pma-sso fix {service}"),
        ],
        "error" => vec![
            format!("pma-sso history {service}"),
            format!("pma-sso check {service}"),
        ],
        "unverified" => vec![format!("pma-sso verify {service}")],
        "never" => vec![format!("pma-sso check {service}")],
        _ => Vec::new(),
    }
}

/// Counts by state, the last and next sweep, the workers and the jobs.
fn summary_html(signals: &Signals) -> String {
    let mut out = String::from("<div class=\"counts\" id=\"counts\">");
    for (state, n) in signals.counts() {
        let label = if state == "never" {
            "never checked"
        } else {
            state
        };
        let _ = write!(
            out,
            "<span class=\"{state}\" data-count=\"{state}\">{n} {label}</span>"
        );
    }
    out.push_str("</div><div class=\"facts\">");
    let last = match &signals.sweep {
        None => "never ran".to_owned(),
        Some(s) => format!(
            "<span class=\"{}\">{}</span>, {} (took {}): {}",
            s.result(),
            s.result(),
            when(Some(s.finished_at)),
            crate::commands::status::took(s.duration_ms),
            esc(&s.summary())
        ),
    };
    let next = signals
        .next_sweep
        .map_or_else(|| "not scheduled here".to_owned(), |t| when(Some(t)));
    let _ = write!(
        out,
        "<p id=\"sweep\">Last sweep: {last}. Next sweep: {next}.</p>"
    );
    let workers = match signals.queues {
        Some(q) => format!(
            "{} worker{} alive, {} message{} waiting, {} dead-lettered",
            q.workers,
            if q.workers == 1 { "" } else { "s" },
            q.work,
            if q.work == 1 { "" } else { "s" },
            q.dead
        ),
        None => "workers unknown (RabbitMQ not reachable from here)".to_owned(),
    };
    let _ = write!(
        out,
        "<p id=\"pipeline\">{workers}. Jobs: {} queued, {} running, {} retrying, {} dead \
         ({} not retried: <code>pma-sso retry --dead</code>).</p></div>",
        signals.jobs_in("queued"),
        signals.jobs_in("running"),
        signals.jobs_in("retrying"),
        signals.jobs_in("dead"),
        signals.dead_unretried,
    );
    out
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
    for run in collapse(&jobs) {
        let job = run.newest;
        let details: Vec<String> = run.lines.iter().map(|l| esc(l)).collect();
        let created = if run.count > 1 {
            format!(
                "{} <span class=\"count\">×{} since {}</span>",
                when(Some(job.created_at)),
                run.count,
                when(Some(run.oldest))
            )
        } else {
            when(Some(job.created_at))
        };
        let _ = write!(
            body,
            "<tr data-count=\"{}\"><td data-label=\"created\">{created}</td><td>{}</td>\
             <td data-label=\"trigger\">{}</td><td data-label=\"status\">{}</td>\
             <td data-label=\"outcome\">{}</td><td>{}</td></tr>",
            run.count,
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

/// Consecutive jobs with the same action, trigger, status and outcome shown as one row.
struct Run<'a> {
    newest: &'a queries::JobHistory,
    oldest: chrono::DateTime<chrono::Utc>,
    count: usize,
    lines: Vec<String>,
}

/// What a job's row shows besides its time: identical neighbours (a cron check every 15
/// minutes finding the same thing) collapse into one row with a count, so the git, webhook
/// and CLI events between them stay visible.
fn collapse(jobs: &[queries::JobHistory]) -> Vec<Run<'_>> {
    let mut runs: Vec<Run<'_>> = Vec::new();
    for job in jobs {
        let mut lines = job.outcome.as_ref().map(details).unwrap_or_default();
        if job.outcome.is_none()
            && let Some(e) = &job.last_error
        {
            lines.push(format!("error: {e}"));
        }
        if let Some(last) = runs.last_mut()
            && last.newest.action == job.action
            && last.newest.trigger == job.trigger
            && last.newest.status == job.status
            && last.newest.outcome.as_ref().map(|o| o.label())
                == job.outcome.as_ref().map(|o| o.label())
            && last.lines == lines
        {
            last.count += 1;
            last.oldest = job.created_at;
            continue;
        }
        runs.push(Run {
            newest: job,
            oldest: job.created_at,
            count: 1,
            lines,
        });
    }
    runs
}
