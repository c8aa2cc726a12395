//! `status`: one line per service from `service_state` — no authentik calls, no history scan.

use std::io::Write;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use worker::Context;
use worker::pipeline::queries::{self, ServiceState};
use worker::pipeline::{PipelineSettings, db};

use super::Options;
use crate::cli::{Status, fail};

/// The database alone: the read-only commands need no broker.
pub async fn database(pipeline: &PipelineSettings) -> Result<PgPool, String> {
    let pool = db::connect(&pipeline.database_url, 1)
        .await
        .map_err(|e| format!("{e} (status and history read PostgreSQL at DATABASE_URL)"))?;
    db::migrate(&pool).await.map_err(|e| e.to_string())?;
    Ok(pool)
}

pub fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "never".into(),
        |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    )
}

/// green / red / error, as the operator reads it.
pub(crate) fn result(state: &ServiceState) -> &'static str {
    match state.last_status.as_str() {
        "in_sync" => "green",
        "drifted" => "red",
        _ => "error",
    }
}

/// The reason. A check's summary is its report line; its `❌ svc (type) — ` head repeats what
/// the status line already says. An error's reason is kept whole.
pub(crate) fn reason(state: &ServiceState) -> Option<String> {
    let summary = state.last_summary.as_deref()?;
    let line = summary.strip_prefix("❌ ").or(summary.strip_prefix("✓ "));
    Some(match line.and_then(|l| l.split_once(" — ")) {
        Some((_, rest)) => rest.to_owned(),
        None => summary.to_owned(),
    })
}

pub async fn run(ctx: &Context, opts: &Options, out: &mut dyn Write) -> Status {
    let pipeline = match super::pipeline_settings(ctx) {
        Ok(p) => p,
        Err(e) => return fail(out, &e),
    };
    let pool = match database(&pipeline).await {
        Ok(p) => p,
        Err(e) => return fail(out, &e),
    };
    let states = match queries::service_states(&pool).await {
        Ok(s) => s,
        Err(e) => return fail(out, &e.to_string()),
    };
    pool.close().await;
    // Every package, plus any service that has state but no manifest any more.
    let mut names = ctx.service_names().unwrap_or_default();
    for s in &states {
        if !names.contains(&s.service) {
            names.push(s.service.clone());
        }
    }
    names.sort();
    let mut status = Status::Green;
    let mut rows = Vec::new();
    for name in &names {
        let state = states.iter().find(|s| &s.service == name);
        match state {
            None => {
                if opts.json {
                    rows.push(serde_json::json!({"service": name, "result": "never checked"}));
                } else {
                    let _ = writeln!(out, "· {name} — never checked");
                }
            }
            Some(state) => {
                let result = result(state);
                status = status.max(match result {
                    "green" => Status::Green,
                    "red" => Status::Drift,
                    _ => Status::Error,
                });
                if opts.json {
                    rows.push(serde_json::json!({
                        "service": name,
                        "result": result,
                        "checked_at": state.last_check_at,
                        "changed_at": state.last_change_at,
                        "updated_at": state.updated_at,
                        "last_job": state.last_job,
                        "reason": (result != "green").then(|| reason(state)).flatten(),
                    }));
                    continue;
                }
                let mark = match result {
                    "green" => "✓",
                    "red" => "❌",
                    _ => "!",
                };
                let mut line = format!(
                    "{mark} {name} — {result}, checked {}, changed {}",
                    when(state.last_check_at),
                    when(state.last_change_at)
                );
                if result != "green"
                    && let Some(reason) = reason(state)
                {
                    line.push_str(&format!(": {reason}"));
                }
                let _ = writeln!(out, "{line}");
            }
        }
    }
    if opts.json {
        let _ = writeln!(out, "{}", serde_json::Value::Array(rows));
    }
    status
}
