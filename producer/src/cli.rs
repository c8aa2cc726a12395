//! The operator CLI: `check`, `plan`, `add`, `fix`, `fix-all`.
//!
//! Output is one line per service in the seed's format; exit status 0 when everything is
//! green, 1 when something drifted, 2 when something failed (an error outranks drift).

use std::io::Write;

use clap::{Parser, Subcommand};
use worker::{Action, Applied, Context, FlowError, Report, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "pma-sso",
    version,
    about = "One authentik login for every service: check, plan, add and fix SSO."
)]
pub struct Cli {
    /// Run the flows in this process instead of through the job queue. Until the queue lands
    /// this is also what happens without the flag.
    #[arg(long, global = true)]
    pub inline: bool,
    /// Print results as JSON instead of lines.
    #[arg(long, global = true)]
    pub json: bool,
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

pub async fn run(cli: Cli, out: &mut dyn Write) -> Status {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => return fail(out, &format!("settings: {e}")),
    };
    let ctx = match Context::new(settings) {
        Ok(c) => c,
        Err(e) => return fail(out, &e.to_string()),
    };
    match cli.command {
        Command::Check { service } => check(&ctx, service.as_deref(), cli.json, false, out).await,
        Command::Plan { service } => check(&ctx, service.as_deref(), cli.json, true, out).await,
        Command::Add { service } => apply(&ctx, &[service], Action::Add, cli.json, out).await,
        Command::Fix { service } => apply(&ctx, &[service], Action::Fix, cli.json, out).await,
        Command::FixAll => match ctx.service_names() {
            Ok(names) => apply(&ctx, &names, Action::Fix, cli.json, out).await,
            Err(e) => fail(out, &e.to_string()),
        },
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

fn error_line(service: &str, kind: &str, error: &FlowError) -> String {
    format!("❌ {service} ({kind}) — error: {error}")
}

async fn check(
    ctx: &Context,
    service: Option<&str>,
    json: bool,
    plan: bool,
    out: &mut dyn Write,
) -> Status {
    let results: Vec<(String, Result<Report, FlowError>)> = match service {
        Some(name) => vec![(name.to_owned(), ctx.check(name).await)],
        None => match ctx.check_all().await {
            Ok(all) => all.into_iter().map(|r| (r.service, r.outcome)).collect(),
            Err(e) => return fail(out, &e.to_string()),
        },
    };
    let mut status = Status::Green;
    let mut json_rows = Vec::new();
    for (name, outcome) in &results {
        match outcome {
            Ok(report) => {
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
            Err(e) => {
                status = Status::Error;
                if json {
                    json_rows.push(serde_json::json!({"service": name, "error": e.to_string()}));
                } else {
                    let _ = writeln!(out, "{}", error_line(name, &kind_of(ctx, name), e));
                }
            }
        }
    }
    if json {
        let _ = writeln!(out, "{}", serde_json::Value::Array(json_rows));
    }
    status
}

async fn apply(
    ctx: &Context,
    services: &[String],
    action: Action,
    json: bool,
    out: &mut dyn Write,
) -> Status {
    let mut status = Status::Green;
    let mut json_rows = Vec::new();
    let mut restart: Vec<String> = Vec::new();
    for name in services {
        let kind = kind_of(ctx, name);
        match ctx.apply(name, action).await {
            Ok(applied) => {
                for s in &applied.restart {
                    if !restart.contains(s) {
                        restart.push(s.clone());
                    }
                }
                if json {
                    json_rows.push(serde_json::json!({"service": name, "type": kind, "actions": applied.actions, "restart": applied.restart}));
                } else {
                    let _ = writeln!(out, "{}", applied_line(name, &kind, &applied));
                }
            }
            Err(e) => {
                status = Status::Error;
                if json {
                    json_rows.push(
                        serde_json::json!({"service": name, "type": kind, "error": e.to_string()}),
                    );
                } else {
                    let _ = writeln!(out, "{}", error_line(name, &kind, &e));
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

fn applied_line(service: &str, kind: &str, applied: &Applied) -> String {
    if applied.actions.is_empty() {
        format!("✓ {service} ({kind}) — already in sync, nothing written")
    } else {
        format!("✓ {service} ({kind}) — {}", applied.actions.join("; "))
    }
}
