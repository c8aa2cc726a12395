//! The operator CLI: `check`, `plan`, `add`, `fix`, `fix-all`, `verify`, `rotate`, and the
//! pipeline's operator commands.
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
    /// Is everything there? Database, broker, token, authentik version, embedded outpost,
    /// packages: one line each; exit 2 if any fails.
    Doctor,
    /// Show what `fix` would change, field by field, without writing anything.
    Plan { service: Option<String> },
    /// Register a service: authentik application and provider, .env credentials, native settings.
    Add { service: String },
    /// Re-apply a service's manifest, overwriting authentik's view where it differs.
    Fix { service: String },
    /// `fix` for every service.
    FixAll,
    /// Run the authentik webhook receiver, the cron sweep (one leader among several `serve`s)
    /// and the relay, until SIGTERM/SIGINT.
    Serve,
    /// Check every service from one bulk read of authentik now, through the queue; enqueues
    /// `add` for unconfigured services and `fix` for drifted ones with `auto_fix`.
    Sweep,
    /// Git hooks that enqueue jobs for the manifests a commit, merge or rewrite changed.
    GitHook {
        #[command(subcommand)]
        command: commands::git_hook::GitHookCommand,
    },
    /// Record jobs for the manifests a git range changed (what the git hooks run). Never fails:
    /// without the database, requests wait in a local spool.
    Enqueue {
        /// `<from>..<to>`, e.g. `HEAD^..HEAD`.
        #[arg(long)]
        changed: Option<String>,
        /// Only replay spooled requests (every `enqueue` replays them first anyway).
        #[arg(long)]
        replay_spool: bool,
        /// The git repository (default: the working directory).
        #[arg(long)]
        repo: Option<std::path::PathBuf>,
    },
    /// One line per service from the recorded state: last result, when, the reason if red.
    Status,
    /// Delete finished jobs (and their attempts) beyond the newest N per service.
    PruneHistory {
        /// Jobs to keep per service (default PMA_SSO_RETENTION_KEEP, else 200).
        #[arg(long)]
        keep: Option<i64>,
    },
    /// A service's recent jobs and their attempts.
    History {
        service: String,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// authentik applications made by pma-sso that no manifest claims; `--prune` deletes them.
    Orphans {
        #[arg(long)]
        prune: bool,
    },
    /// Take over an application pma-sso did not create: show how it differs; `--yes` marks it ours.
    Adopt {
        service: String,
        #[arg(long)]
        yes: bool,
    },
    /// Create pma-sso's own service account and API token in authentik (stored in .env). The
    /// admin token comes from AUTHENTIK_ADMIN_TOKEN or stdin, never from the command line.
    Init {
        /// Read the admin token from the first line of stdin instead of AUTHENTIK_ADMIN_TOKEN.
        #[arg(long)]
        admin_token_stdin: bool,
    },
    /// authentik's side of the webhook receiver.
    Webhook {
        #[command(subcommand)]
        command: commands::webhook::WebhookCommand,
    },
    /// Walk each service's login path against authentik's protocol endpoints (discovery,
    /// JWKS, token grant, redirects, SAML metadata, the outpost's forward auth) with the values
    /// the service holds.
    Verify { service: Option<String> },
    /// A new client secret: written to .env, set in authentik, delivered; then verify. Runs
    /// as a job under the service's lock, like `fix`.
    Rotate {
        service: Option<String>,
        /// Every service with a client secret, one at a time.
        #[arg(long, conflicts_with = "service")]
        all: bool,
    },
    /// Re-enqueue a dead or failed job, or every dead (`--dead`) or failed (`--failed`) one.
    Retry {
        job: Option<String>,
        #[arg(long)]
        dead: bool,
        #[arg(long)]
        failed: bool,
    },
}

/// Exit status of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Green = 0,
    Drift = 1,
    Error = 2,
}

pub async fn run(cli: Cli, out: &mut dyn Write) -> Status {
    // The git hook's commands run before authentik settings are read: a commit must never wait
    // on, or fail because of, anything but the job store.
    match &cli.command {
        Command::GitHook { command } => return commands::git_hook::run(command, out),
        Command::Enqueue {
            changed,
            replay_spool,
            repo,
        } => {
            return commands::enqueue::run(changed.as_deref(), *replay_spool, repo.as_deref(), out)
                .await;
        }
        // Before settings: there is no AUTHENTIK_TOKEN yet.
        Command::Init { admin_token_stdin } => {
            return commands::init::run(*admin_token_stdin, out).await;
        }
        // Before settings too: a stack started before `init` waits for its token.
        Command::Serve => return commands::serve::run(out).await,
        _ => {}
    }
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
        Command::Doctor => commands::doctor::run(&ctx, out).await,
        Command::PruneHistory { keep } => commands::prune::run(&ctx, keep, out).await,
        Command::Sweep => commands::serve::sweep(&ctx, &opts, out).await,
        Command::GitHook { .. }
        | Command::Enqueue { .. }
        | Command::Init { .. }
        | Command::Serve => {
            unreachable!("dispatched above")
        }
        Command::Webhook { command } => commands::webhook::run(&ctx, &command, out).await,
        Command::Status => commands::status::run(&ctx, &opts, out).await,
        Command::History { service, limit } => {
            commands::history::run(&ctx, &opts, &service, limit, out).await
        }
        Command::Orphans { prune } => commands::orphans::run(&ctx, &opts, prune, out).await,
        Command::Adopt { service, yes } => {
            commands::adopt::run(&ctx, &opts, &service, yes, out).await
        }
        Command::Verify { service } => {
            commands::verify::verify(&ctx, &opts, service.as_deref(), out).await
        }
        Command::Rotate { service, all } => {
            commands::verify::rotate(&ctx, &opts, service.as_deref(), all, out).await
        }
        Command::Retry { job, dead, failed } => {
            commands::retry::run(&ctx, &opts, job.as_deref(), dead, failed, out).await
        }
    }
}

/// Print a one-line error and return the error status.
pub fn fail(out: &mut dyn Write, message: &str) -> Status {
    let _ = writeln!(out, "error: {message}");
    Status::Error
}
