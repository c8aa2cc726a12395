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
use schemas::job::Action;
use worker::{Context, Settings};

use crate::commands;

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

pub async fn run(cli: Cli, out: &mut dyn Write) -> Status {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => return fail(out, &format!("settings: {e}")),
    };
    let ctx = match Context::new(settings) {
        Ok(c) => c,
        Err(e) => return fail(out, &e.to_string()),
    };
    let opts = commands::Options {
        inline: cli.inline,
        json: cli.json,
        pickup_timeout: Duration::from_secs(cli.pickup_timeout),
        wait_timeout: Duration::from_secs(cli.wait_timeout),
    };
    match cli.command {
        Command::Check { service } => {
            commands::jobs::run(&ctx, &opts, Action::Check, service.as_deref(), false, out).await
        }
        Command::Plan { service } => {
            commands::jobs::run(&ctx, &opts, Action::Check, service.as_deref(), true, out).await
        }
        Command::Add { service } => {
            commands::jobs::run(&ctx, &opts, Action::Add, Some(&service), false, out).await
        }
        Command::Fix { service } => {
            commands::jobs::run(&ctx, &opts, Action::Fix, Some(&service), false, out).await
        }
        Command::FixAll => commands::jobs::run(&ctx, &opts, Action::Fix, None, false, out).await,
    }
}

/// Print a one-line error and return the error status.
pub fn fail(out: &mut dyn Write, message: &str) -> Status {
    let _ = writeln!(out, "error: {message}");
    Status::Error
}
