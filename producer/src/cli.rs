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
use crate::commands::jobs::Shape;

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
        /// Queue only when HEAD is on this branch (`PMA_SSO_DEPLOY_BRANCH` overrides it); the
        /// git hooks pass the branch they were installed on.
        #[arg(long)]
        deploy_branch: Option<String>,
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
        /// A role holding only the permissions pma-sso needs instead of superuser; sweeps then
        /// read each application by slug (one request per service).
        #[arg(long)]
        least_privilege: bool,
    },
    /// authentik's side of the webhook receiver.
    Webhook {
        #[command(subcommand)]
        command: commands::webhook::WebhookCommand,
    },
    /// Walk each service's login path against authentik's protocol endpoints (discovery,
    /// JWKS, token grant, redirects, SAML metadata, the outpost's forward auth) with the values
    /// the service holds.
    Verify {
        service: Option<String>,
        /// Exit 1 when a login path could not be probed (unverified), not only when red.
        #[arg(long)]
        strict: bool,
    },
    /// A new client secret: written to .env, set in authentik, delivered; then verify. Runs
    /// as a job under the service's lock, like `fix`.
    Rotate {
        service: Option<String>,
        /// Every service with a client secret, one at a time.
        #[arg(long, conflicts_with = "service")]
        all: bool,
    },
    /// Re-enqueue a dead or failed job, or every dead (`--dead`) or failed (`--failed`) one;
    /// jobs that cannot succeed as things are are skipped, saying why, unless `--all`.
    Retry {
        job: Option<String>,
        #[arg(long)]
        dead: bool,
        #[arg(long)]
        failed: bool,
        /// Also retry jobs that cannot succeed as things are (no manifest, invalid manifest,
        /// a request authentik refused as invalid).
        #[arg(long)]
        all: bool,
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
    if !cli.json || matches!(cli.command, Command::Serve) {
        return run_command(cli, out).await;
    }
    // With --json, a command that failed before it had anything to print says why as JSON too
    // (`{"error": "…"}`, schemas/output/error.schema.json), not as a text line.
    let mut printed = Vec::new();
    let status = run_command(cli, &mut printed).await;
    let text = String::from_utf8_lossy(&printed);
    let errors: Option<Vec<&str>> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix("error: "))
        .collect();
    match errors {
        Some(errors) if status == Status::Error && !errors.is_empty() => {
            let _ = writeln!(out, "{}", serde_json::json!({ "error": errors.join("; ") }));
        }
        _ => {
            let _ = out.write_all(&printed);
        }
    }
    status
}

async fn run_command(cli: Cli, out: &mut dyn Write) -> Status {
    // The git hook's commands run before authentik settings are read: a commit must never wait
    // on, or fail because of, anything but the job store.
    match &cli.command {
        Command::GitHook { command } => return commands::git_hook::run(command, out),
        Command::Enqueue {
            changed,
            replay_spool,
            repo,
            deploy_branch,
        } => {
            return commands::enqueue::run(
                changed.as_deref(),
                *replay_spool,
                repo.as_deref(),
                deploy_branch.as_deref(),
                out,
            )
            .await;
        }
        // Before settings: there is no AUTHENTIK_TOKEN yet.
        Command::Init {
            admin_token_stdin,
            least_privilege,
        } => {
            return commands::init::run(*admin_token_stdin, *least_privilege, out).await;
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
            commands::jobs::run(
                &ctx,
                &opts,
                Action::Check,
                service.as_deref(),
                Shape::Lines,
                out,
            )
            .await
        }
        Command::Plan { service } => {
            commands::jobs::run(
                &ctx,
                &opts,
                Action::Check,
                service.as_deref(),
                Shape::Plan,
                out,
            )
            .await
        }
        Command::Add { service } => {
            commands::jobs::run(&ctx, &opts, Action::Add, Some(&service), Shape::Lines, out).await
        }
        Command::Fix { service } => {
            commands::jobs::run(&ctx, &opts, Action::Fix, Some(&service), Shape::Lines, out).await
        }
        Command::FixAll => {
            commands::jobs::run(&ctx, &opts, Action::Fix, None, Shape::Lines, out).await
        }
        Command::Doctor => commands::doctor::run(&ctx, opts.inline, out).await,
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
        Command::Verify { service, strict } => {
            commands::verify::verify(&ctx, &opts, service.as_deref(), strict, out).await
        }
        Command::Rotate { service, all } => {
            commands::verify::rotate(&ctx, &opts, service.as_deref(), all, out).await
        }
        Command::Retry {
            job,
            dead,
            failed,
            all,
        } => commands::retry::run(&ctx, &opts, job.as_deref(), dead, failed, all, out).await,
    }
}

/// Print a one-line error and return the error status.
pub fn fail(out: &mut dyn Write, message: &str) -> Status {
    let _ = writeln!(out, "error: {message}");
    Status::Error
}
