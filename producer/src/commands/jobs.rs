//! `check`, `plan`, `add`, `fix`, `fix-all`, `verify`, `rotate`: through the job queue, or
//! `--inline`.
//!
//! Jobs for several services are enqueued together and run as the workers take them, except
//! `rotate`: one service at a time (each rotation is enqueued after the previous one ended),
//! so a platform never has more than one service mid-rotation.

use std::io::Write;

use schemas::job::{Action, JobStatus, Outcome, Trigger};
use schemas::outcome::State;
use worker::{Applied, Context, Report};

use super::Options;
use crate::cli::{Status, fail};

/// How a command prints its results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One line per service (`check`, `add`, `fix`, `rotate`).
    Lines,
    /// What `fix` would do, field by field.
    Plan,
    /// `verify`: three states and a closing count; `strict` makes unverified exit 1.
    Verify { strict: bool },
}

/// Which services a command covers.
pub enum Target<'a> {
    One(&'a str),
    /// Every package.
    All,
    /// These, in this order.
    These(Vec<String>),
}

impl Target<'_> {
    fn names(&self, ctx: &Context) -> Result<Vec<String>, String> {
        match self {
            Target::One(name) => Ok(vec![(*name).to_owned()]),
            Target::All => ctx.service_names().map_err(|e| e.to_string()),
            Target::These(names) => Ok(names.clone()),
        }
    }
}

pub async fn run(
    ctx: &Context,
    opts: &Options,
    action: Action,
    service: Option<&str>,
    shape: Shape,
    out: &mut dyn Write,
) -> Status {
    let target = match service {
        Some(name) => Target::One(name),
        None => Target::All,
    };
    run_target(ctx, opts, action, target, shape, out).await
}

pub async fn run_target(
    ctx: &Context,
    opts: &Options,
    action: Action,
    target: Target<'_>,
    shape: Shape,
    out: &mut dyn Write,
) -> Status {
    if let Target::One(name) = target
        && let Err(message) = known(ctx, name)
    {
        return fail(out, &message);
    }
    let rows = if opts.inline {
        run_inline(ctx, action, &target, opts.json).await
    } else {
        run_queued(ctx, opts, action, &target).await
    };
    match rows {
        Ok(rows) => print(out, &rows, opts.json, shape),
        Err(message) => fail(out, &message),
    }
}

/// A name with no manifest is a mistake in the command, not a service: it is refused before
/// anything is enqueued or recorded, so a typo never becomes a row of `status`.
fn known(ctx: &Context, name: &str) -> Result<(), String> {
    let file = ctx
        .settings
        .packages_dir
        .join(name)
        .join(schemas::manifest::MANIFEST_FILE);
    if !name.contains(['/', '\\']) && name != ".." && file.is_file() {
        return Ok(());
    }
    let names = ctx.service_names().unwrap_or_default();
    Err(format!(
        "no service `{name}`: {} does not exist (services: {})",
        file.display(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    ))
}

/// One service's result, however it was obtained.
enum Row {
    Checked(Report),
    Applied {
        kind: String,
        applied: Applied,
    },
    Rotated {
        kind: String,
        applied: Applied,
        verified: Report,
    },
    Error {
        kind: String,
        message: String,
    },
}

fn kind_of(ctx: &Context, service: &str) -> String {
    ctx.package(service)
        .map(|p| p.manifest.kind().to_string())
        .unwrap_or_else(|_| "?".into())
}

async fn run_inline(
    ctx: &Context,
    action: Action,
    target: &Target<'_>,
    json: bool,
) -> Result<Vec<(String, Row)>, String> {
    // Reads of every service share one bulk read of authentik.
    let bulk = match (action, target) {
        (Action::Check, Target::One(name)) => {
            return Ok(vec![(
                (*name).to_owned(),
                checked(ctx, name, ctx.check(name).await),
            )]);
        }
        (Action::Verify, Target::One(name)) => {
            return Ok(vec![(
                (*name).to_owned(),
                checked(ctx, name, worker::verify::verify(ctx, name).await),
            )]);
        }
        (Action::Check, Target::All) => Some(ctx.check_all().await),
        (Action::Verify, Target::All) => Some(worker::verify::verify_all(ctx).await),
        (Action::Verify, Target::These(names)) => {
            Some(worker::verify::verify_some(ctx, names.clone()).await)
        }
        _ => None,
    };
    if let Some(results) = bulk {
        return Ok(results
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|r| {
                let row = checked(ctx, &r.service, r.outcome);
                (r.service, row)
            })
            .collect());
    }
    let names = target.names(ctx)?;
    let mut rows = Vec::with_capacity(names.len());
    let progress = super::progress::enabled(json, names.len());
    let total = names.len();
    for (done, name) in names.into_iter().enumerate() {
        super::progress::tick(progress, action, done, total, &name);
        let kind = kind_of(ctx, &name);
        let row = match action {
            Action::Check => checked(ctx, &name, ctx.check(&name).await),
            Action::Verify => checked(ctx, &name, worker::verify::verify(ctx, &name).await),
            Action::Rotate => match worker::rotate::rotate(ctx, &name).await {
                Ok(rotated) => Row::Rotated {
                    kind,
                    applied: rotated.applied,
                    verified: rotated.verified,
                },
                Err(e) => Row::Error {
                    kind,
                    message: e.to_string(),
                },
            },
            Action::Add | Action::Fix => match ctx.apply(&name, action).await {
                Ok(applied) => Row::Applied { kind, applied },
                Err(e) => Row::Error {
                    kind,
                    message: e.to_string(),
                },
            },
            Action::Sweep => Row::Error {
                kind,
                message: "a sweep is not run per service (`pma-sso sweep`)".into(),
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
    target: &Target<'_>,
) -> Result<Vec<(String, Row)>, String> {
    let pipeline = super::pipeline_settings(ctx)?;
    let names = target.names(ctx)?;
    let client = super::job_client(&pipeline).await?;
    // A rotation at a time: each waits for the one before it.
    let batches: Vec<Vec<String>> = if action == Action::Rotate {
        names.into_iter().map(|n| vec![n]).collect()
    } else {
        vec![names]
    };
    let mut jobs = Vec::new();
    for batch in batches {
        let mut ids = Vec::with_capacity(batch.len());
        for name in &batch {
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
        let done = client
            .wait(&ids, opts.pickup_timeout, opts.wait_timeout)
            .await;
        watch.finish();
        jobs.extend(done.map_err(|e| e.to_string())?);
    }
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
                Some(Outcome::Rotated { applied, verified }) => Row::Rotated {
                    kind,
                    applied,
                    verified,
                },
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

fn print(out: &mut dyn Write, rows: &[(String, Row)], json: bool, shape: Shape) -> Status {
    let plan = shape == Shape::Plan;
    let mut status = Status::Green;
    let mut counts = Counts::default();
    let mut json_rows = Vec::new();
    let mut restart: Vec<String> = Vec::new();
    for (name, row) in rows {
        match row {
            Row::Checked(report) => {
                let state = report.state();
                counts.add(state.as_str());
                status = status.max(match (state, shape) {
                    (State::Red, _) | (State::Unverified, Shape::Verify { strict: true }) => {
                        Status::Drift
                    }
                    _ => Status::Green,
                });
                if json {
                    json_rows.push(report_json(name, report));
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
            Row::Rotated {
                kind,
                applied,
                verified,
            } => {
                for s in &applied.restart {
                    if !restart.contains(s) {
                        restart.push(s.clone());
                    }
                }
                if !verified.in_sync() {
                    status = status.max(Status::Drift);
                }
                if json {
                    json_rows.push(serde_json::json!({
                        "service": name, "type": kind, "actions": applied.actions,
                        "restart": applied.restart, "verified": report_json(name, verified),
                    }));
                } else {
                    let _ = writeln!(out, "{}", applied.line(name, kind));
                    let _ = writeln!(out, "{}", verified.line());
                }
            }
            Row::Error { kind, message } => {
                status = Status::Error;
                counts.add("error");
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
    if !json && matches!(shape, Shape::Verify { .. }) {
        let _ = writeln!(out, "{}", counts.line());
    }
    status
}

/// A checked or verified service as `--json` prints it: `state` and `summary` say what its
/// line says.
fn report_json(name: &str, report: &Report) -> serde_json::Value {
    serde_json::json!({
        "service": name, "type": report.kind, "state": report.state(),
        "in_sync": report.in_sync(), "summary": report.reason(), "drifts": report.drifts,
        "warnings": report.warnings, "unverified": report.unverified,
    })
}

/// `verify`'s closing line: how many services are in each state.
#[derive(Default)]
struct Counts {
    verified: usize,
    red: usize,
    unverified: usize,
    error: usize,
}

impl Counts {
    fn add(&mut self, state: &str) {
        match state {
            "green" => self.verified += 1,
            "red" => self.red += 1,
            "unverified" => self.unverified += 1,
            _ => self.error += 1,
        }
    }

    fn line(&self) -> String {
        format!(
            "{} verified, {} red, {} unverified, {} error{}",
            self.verified,
            self.red,
            self.unverified,
            self.error,
            if self.error == 1 { "" } else { "s" }
        )
    }
}
