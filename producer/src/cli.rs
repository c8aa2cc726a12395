//! The operator CLI: `check`, `plan`, `add`, `fix`, `fix-all`.
//!
//! By default a command goes through the pipeline: jobs are recorded in PostgreSQL and
//! published to RabbitMQ, a worker runs them, and the CLI prints the outcomes it reads back.
//! `--inline` runs the flows in this process instead. Output is one line per service in the
//! seed's format; exit status 0 when everything is green, 1 when something drifted, 2 when
//! something failed (an error outranks drift).

use std::io::Write;
use std::time::Duration;

use clap::{Parser, Subcommand};
use schemas::job::{Action, JobStatus, Outcome, Trigger};
use worker::envfile::EnvFile;
use worker::pipeline::PipelineSettings;
use worker::pipeline::client::JobClient;
use worker::{Applied, Context, Report, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "pma-sso",
    version,
    about = "One authentik login for every service: check, plan, add and fix SSO."
)]
pub struct Cli {
    /// Run the flows in this process instead of through the job queue.
    #[arg(long, global = true)]
    pub inline: bool,
    /// Print results as JSON instead of lines.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for a worker to pick up the jobs before giving up (queue mode).
    #[arg(long, global = true, default_value_t = 30)]
    pub pickup_timeout: u64,
    /// Seconds to wait for all jobs to finish (queue mode).
    #[arg(long, global = true, default_value_t = 600)]
    pub wait_timeout: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report drift for every service, or one.
    Check { service: Option<String> },
    /// Show what `fix` would change, field by field, without writing anything.
    Plan { service: Option<String> },
    /// Register a service: authentik application and provider, .env credentials, native settings.
    Add { service: String },
    /// Re-apply a service's manifest, overwriting authentik's view where it differs.
    Fix { service: String },
    /// `fix` for every service.
    FixAll,
}

/// Exit status of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Green = 0,
    Drift = 1,
    Error = 2,
}

/// One service's result, however it was obtained.
enum Row {
    Checked(Report),
    Applied { kind: String, applied: Applied },
    Error { kind: String, message: String },
}

pub async fn run(cli: Cli, out: &mut dyn Write) -> Status {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => return fail(out, &format!("settings: {e}")),
    };
    let ctx = match Context::new(settings) {
        Ok(c) => c,
        Err(e) => return fail(out, &e.to_string()),
    };
    let (action, services, plan) = match &cli.command {
        Command::Check { service } => (Action::Check, service.clone(), false),
        Command::Plan { service } => (Action::Check, service.clone(), true),
        Command::Add { service } => (Action::Add, Some(service.clone()), false),
        Command::Fix { service } => (Action::Fix, Some(service.clone()), false),
        Command::FixAll => (Action::Fix, None, false),
    };
    let rows = if cli.inline {
        run_inline(&ctx, action, services.as_deref()).await
    } else {
        run_queued(&ctx, &cli, action, services.as_deref()).await
    };
    match rows {
        Ok(rows) => print(out, &rows, cli.json, plan),
        Err(message) => fail(out, &message),
    }
}

fn fail(out: &mut dyn Write, message: &str) -> Status {
    let _ = writeln!(out, "error: {message}");
    Status::Error
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
    for name in names {
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
    cli: &Cli,
    action: Action,
    service: Option<&str>,
) -> Result<Vec<(String, Row)>, String> {
    let env = EnvFile::read(&ctx.settings.env_path).map_err(|e| e.to_string())?;
    let lookup = |key: &str| {
        std::env::var(key)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| env.get(key).filter(|v| !v.is_empty()).map(str::to_owned))
    };
    let pipeline = PipelineSettings::from_lookup(&lookup).map_err(|e| format!("settings: {e}"))?;
    let names = match service {
        Some(name) => vec![name.to_owned()],
        None => ctx.service_names().map_err(|e| e.to_string())?,
    };
    let client = JobClient::connect(&pipeline)
        .await
        .map_err(|e| format!("{e} (the job queue needs PostgreSQL at DATABASE_URL and RabbitMQ at AMQP_URL; --inline runs without them)"))?;
    let mut ids = Vec::with_capacity(names.len());
    for name in &names {
        let enqueued = client
            .enqueue(name, action, Trigger::Cli, None)
            .await
            .map_err(|e| e.to_string())?;
        ids.push(enqueued.id);
    }
    let jobs = client
        .wait(
            &ids,
            Duration::from_secs(cli.pickup_timeout),
            Duration::from_secs(cli.wait_timeout),
        )
        .await
        .map_err(|e| e.to_string())?;
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
