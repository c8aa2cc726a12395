//! `status`: one line per service from `service_state` — no authentik calls, no history scan —
//! and the last sweep from its job row.
//!
//! Only the present counts: a service is shown when its manifest exists now (state recorded
//! for a removed service, or for a name that never had a manifest, is not shown), and the exit
//! status is theirs alone: 2 if any is in error, 1 if any is red, else 0 (unverified is not
//! red). The sweep's line shows when it last ran, how long it took and what it found; it does
//! not set the exit status (alert on it through the metrics).

use std::io::Write;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use worker::Context;
use worker::pipeline::queries::{self, LastSweep, ServiceState};
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

/// green / red / unverified / error, as the operator reads it.
pub(crate) fn result(state: &ServiceState) -> &'static str {
    match state.last_status.as_str() {
        "in_sync" => "green",
        "drifted" => "red",
        "unverified" => "unverified",
        _ => "error",
    }
}

/// The reason. A check's summary is its report line; its `❌ svc (type) — ` head repeats what
/// the status line already says. An error's reason is kept whole.
pub(crate) fn reason(state: &ServiceState) -> Option<String> {
    let summary = state.last_summary.as_deref()?;
    let line = summary
        .strip_prefix("❌ ")
        .or(summary.strip_prefix("✓ "))
        .or(summary.strip_prefix("⚠ "));
    Some(match line.and_then(|l| l.split_once(" — ")) {
        Some((_, rest)) => rest.to_owned(),
        None => summary.to_owned(),
    })
}

/// The services `status` and the status page show: every package that has a manifest now,
/// with its recorded state if any. State left by a service whose manifest is gone (removed,
/// or a name that never had one) is not shown and counts for nothing.
pub(crate) fn current(
    names: &[String],
    states: &[ServiceState],
) -> Vec<(String, Option<ServiceState>)> {
    let mut names = names.to_vec();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let state = states.iter().find(|s| s.service == name).cloned();
            (name, state)
        })
        .collect()
}

/// How long something took, as a person reads it.
pub(crate) fn took(ms: Option<i32>) -> String {
    match ms {
        None => "?".into(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) => format!("{:.1} s", f64::from(ms) / 1000.0),
    }
}

/// The last sweep's line: `· sweep — green, last ran …, took …: swept …`.
pub(crate) fn sweep_line(sweep: Option<&LastSweep>) -> String {
    match sweep {
        None => "· sweep — never ran (does `pma-sso serve` run?)".to_owned(),
        Some(s) => {
            let mark = match s.result() {
                "green" => "✓",
                "red" => "❌",
                _ => "!",
            };
            format!(
                "{mark} sweep — {}, last ran {}, took {}: {}",
                s.result(),
                when(Some(s.finished_at)),
                took(s.duration_ms),
                s.summary()
            )
        }
    }
}

fn sweep_json(sweep: Option<&LastSweep>) -> serde_json::Value {
    match sweep {
        None => serde_json::Value::Null,
        Some(s) => serde_json::json!({
            "job": s.id,
            "result": s.result(),
            "finished_at": s.finished_at,
            "duration_ms": s.duration_ms,
            "summary": s.summary(),
        }),
    }
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
    let (states, sweep) =
        match tokio::try_join!(queries::service_states(&pool), queries::last_sweep(&pool)) {
            Ok(read) => read,
            Err(e) => return fail(out, &e.to_string()),
        };
    pool.close().await;
    let names = match ctx.service_names() {
        Ok(n) => n,
        Err(e) => return fail(out, &e.to_string()),
    };
    let mut status = Status::Green;
    let mut rows = Vec::new();
    for (name, state) in current(&names, &states) {
        match state {
            None => {
                if opts.json {
                    rows.push(serde_json::json!({"service": name, "result": "never checked"}));
                } else {
                    let _ = writeln!(out, "· {name} — never checked");
                }
            }
            Some(state) => {
                let result = result(&state);
                status = status.max(match result {
                    "green" | "unverified" => Status::Green,
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
                        "reason": (result != "green").then(|| reason(&state)).flatten(),
                    }));
                    continue;
                }
                let mark = match result {
                    "green" => "✓",
                    "red" => "❌",
                    "unverified" => "⚠",
                    _ => "!",
                };
                let mut line = format!(
                    "{mark} {name} — {result}, checked {}, changed {}",
                    when(state.last_check_at),
                    when(state.last_change_at)
                );
                if result != "green"
                    && let Some(reason) = reason(&state)
                {
                    line.push_str(&format!(": {reason}"));
                }
                let _ = writeln!(out, "{line}");
            }
        }
    }
    if opts.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"services": rows, "sweep": sweep_json(sweep.as_ref())})
        );
    } else {
        let _ = writeln!(out, "{}", sweep_line(sweep.as_ref()));
    }
    status
}
