//! `check`, `plan`, `add`, `fix`, `fix-all`: through the job queue, or `--inline`.

use std::io::Write;

use schemas::job::{Action, JobStatus, Outcome, Trigger};
use worker::{Applied, Context, Report};

use super::Options;
use crate::cli::{Status, fail};

pub async fn run(
    ctx: &Context,
    opts: &Options,
    action: Action,
    service: Option<&str>,
    plan: bool,
    out: &mut dyn Write,
) -> Status {
    let rows = if opts.inline {
        run_inline(ctx, action, service, opts.json).await
    } else {
        run_queued(ctx, opts, action, service).await
    };
    match rows {
        Ok(rows) => print(out, &rows, opts.json, plan),
        Err(message) => fail(out, &message),
    }
}

/// One service's result, however it was obtained.
enum Row {
    Checked(Report),
    Applied { kind: String, applied: Applied },
    Error { kind: String, message: String },
}

fn kind_of(ctx: &Context, service: &str) -> String {
    ctx.package(service)
        .map(|p| p.manifest.kind().to_string())
        .unwrap_or_else(|_| "?".into())
}

async fn run_inline(
    ctx: &Context,
    action: Action,
    service: Option<&str>,
    json: bool,
) -> Result<Vec<(String, Row)>, String> {
    if action == Action::Check {
        return Ok(match service {
            Some(name) => vec![(name.to_owned(), checked(ctx, name, ctx.check(name).await))],
            None => ctx
                .check_all()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|r| {
                    let row = checked(ctx, &r.service, r.outcome);
                    (r.service, row)
                })
                .collect(),
        });
    }
    let names = match service {
        Some(name) => vec![name.to_owned()],
        None => ctx.service_names().map_err(|e| e.to_string())?,
    };
    let mut rows = Vec::with_capacity(names.len());
    let progress = super::progress::enabled(json, names.len());
    let total = names.len();
    for (done, name) in names.into_iter().enumerate() {
        super::progress::tick(progress, action, done, total, &name);
        let kind = kind_of(ctx, &name);
        let row = match ctx.apply(&name, action).await {
            Ok(applied) => Row::Applied { kind, applied },
            Err(e) => Row::Error {
                kind,
                message: e.to_string(),
            },
        };
        rows.push((name, row));
    }
    super::progress::clear(progress);
    Ok(rows)
}

fn checked(ctx: &Context, name: &str, outcome: Result<Report, worker::FlowError>) -> Row {
    match outcome {
        Ok(report) => Row::Checked(report),
        Err(e) => Row::Error {
            kind: kind_of(ctx, name),
            message: e.to_string(),
        },
    }
}

async fn run_queued(
    ctx: &Context,
    opts: &Options,
    action: Action,
    service: Option<&str>,
) -> Result<Vec<(String, Row)>, String> {
    let pipeline = super::pipeline_settings(ctx)?;
    let names = match service {
        Some(name) => vec![name.to_owned()],
        None => ctx.service_names().map_err(|e| e.to_string())?,
    };
    let client = super::job_client(&pipeline).await?;
    let mut ids = Vec::with_capacity(names.len());
    for name in &names {
        let enqueued = client
            .enqueue(name, action, Trigger::Cli, None)
            .await
            .map_err(|e| e.to_string())?;
        ids.push(enqueued.id);
    }
    let watch = super::progress::Watch::start(
        super::progress::enabled(opts.json, ids.len()),
        client.db.clone(),
        ids.clone(),
        action,
    );
    let jobs = client
        .wait(&ids, opts.pickup_timeout, opts.wait_timeout)
        .await;
    watch.finish();
    let jobs = jobs.map_err(|e| e.to_string())?;
    client.close().await;
    Ok(jobs
        .into_iter()
        .map(|job| {
            let kind = kind_of(ctx, &job.service);
            let row = match job.outcome {
                Some(Outcome::InSync { report }) | Some(Outcome::Drifted { report }) => {
                    Row::Checked(report)
                }
                Some(Outcome::Applied { applied }) => Row::Applied { kind, applied },
                // Not produced by these commands; `pma-sso sweep` prints sweeps.
                Some(Outcome::Swept { sweep }) => Row::Applied {
                    kind,
                    applied: Applied {
                        actions: vec![sweep.line()],
                        restart: Vec::new(),
                    },
                },
                Some(Outcome::Failed { reason, .. }) => Row::Error {
                    kind,
                    message: if job.status == JobStatus::Dead {
                        format!("{reason} (gave up after {} attempts)", job.attempts)
                    } else {
                        reason
                    },
                },
                None => Row::Error {
                    kind,
                    message: format!(
                        "job {} ended {} without an outcome",
                        job.id,
                        job.status.as_str()
                    ),
                },
            };
            (job.service, row)
        })
        .collect())
}

fn print(out: &mut dyn Write, rows: &[(String, Row)], json: bool, plan: bool) -> Status {
    let mut status = Status::Green;
    let mut json_rows = Vec::new();
    let mut restart: Vec<String> = Vec::new();
    for (name, row) in rows {
        match row {
            Row::Checked(report) => {
                if !report.in_sync() {
                    status = status.max(Status::Drift);
                }
                if json {
                    json_rows.push(serde_json::json!({
                        "service": name, "type": report.kind, "in_sync": report.in_sync(),
                        "summary": report.summary, "drifts": report.drifts, "warnings": report.warnings,
                    }));
                } else if plan {
                    if report.in_sync() {
                        let _ = writeln!(out, "✓ {name} ({}) — nothing to change", report.kind);
                    } else {
                        let _ = writeln!(out, "~ {name} ({}) — fix would:", report.kind);
                        for drift in &report.drifts {
                            let _ =
                                writeln!(out, "    {} (because {})", drift.remedy, drift.message);
                        }
                    }
                } else {
                    let _ = writeln!(out, "{}", report.line());
                }
            }
            Row::Applied { kind, applied } => {
                for s in &applied.restart {
                    if !restart.contains(s) {
                        restart.push(s.clone());
                    }
                }
                if json {
                    json_rows.push(serde_json::json!({"service": name, "type": kind, "actions": applied.actions, "restart": applied.restart}));
                } else {
                    let _ = writeln!(out, "{}", applied.line(name, kind));
                }
            }
            Row::Error { kind, message } => {
                status = Status::Error;
                if json {
                    json_rows
                        .push(serde_json::json!({"service": name, "type": kind, "error": message}));
                } else {
                    let _ = writeln!(out, "❌ {name} ({kind}) — error: {message}");
                }
            }
        }
    }
    if json {
        let _ = writeln!(out, "{}", serde_json::Value::Array(json_rows));
    } else if !restart.is_empty() {
        let _ = writeln!(out, "restart needed: {}", restart.join(", "));
    }
    status
}
