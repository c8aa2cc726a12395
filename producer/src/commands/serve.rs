//! `pma-sso serve` (webhook receiver, cron sweep leader, relay) and `pma-sso sweep` (one sweep
//! now, through the queue).

use std::io::Write;
use std::sync::Arc;

use schemas::job::{Action, JobStatus, Outcome, SWEEP_TARGET, Trigger};
use tokio_util::sync::CancellationToken;
use worker::Context;
use worker::envfile::EnvFile;

use super::Options;
use crate::cli::{Status, fail};
use crate::serve::{Serve, ServeSettings};

/// The process environment first, then `.env`.
fn lookup(ctx: &Context) -> Result<impl Fn(&str) -> Option<String>, String> {
    let env = EnvFile::read(&ctx.settings.env_path).map_err(|e| e.to_string())?;
    Ok(move |key: &str| {
        std::env::var(key)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| env.get(key).filter(|v| !v.is_empty()).map(str::to_owned))
    })
}

/// Who `AUTHENTIK_TOKEN` acts as: the username whose events the webhook ignores.
async fn own_username(ctx: &Context) -> Result<String, String> {
    let me = ctx
        .authentik
        .me()
        .await
        .map_err(|e| format!("asking authentik who AUTHENTIK_TOKEN belongs to: {e}"))?;
    me.pointer("/user/username")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| "authentik's /core/users/me/ named no username".to_owned())
}

pub async fn serve(ctx: &Context, out: &mut dyn Write) -> Status {
    let get = match lookup(ctx) {
        Ok(g) => g,
        Err(e) => return fail(out, &e),
    };
    let settings = match ServeSettings::from_lookup(&get) {
        Ok(s) => s,
        Err(e) => return fail(out, &e),
    };
    let pipeline = match super::pipeline_settings(ctx) {
        Ok(p) => p,
        Err(e) => return fail(out, &e),
    };
    let own_user = match &settings.own_user {
        Some(u) => u.clone(),
        None => match own_username(ctx).await {
            Ok(u) => u,
            Err(e) => return fail(out, &e),
        },
    };
    let jobs = match super::job_client(&pipeline).await {
        Ok(c) => Arc::new(c),
        Err(e) => return fail(out, &e),
    };
    let serve = Serve {
        settings,
        pipeline,
        packages_dir: ctx.settings.packages_dir.clone(),
        state_dir: ctx.settings.state_dir.clone(),
        own_user: Some(own_user),
        jobs,
    };
    let listener = match serve.bind().await {
        Ok(l) => l,
        Err(e) => {
            return fail(
                out,
                &format!("listening on {}: {e}", serve.settings.webhook_addr),
            );
        }
    };
    let status_listener = match serve.bind_status().await {
        Ok(l) => l,
        Err(e) => {
            return fail(
                out,
                &format!("listening on {}: {e}", serve.settings.status_addr),
            );
        }
    };
    let _ = writeln!(
        out,
        "serving the authentik webhook on http://{}{}; status page on http://{}/; sweep on `{}`",
        listener.local_addr().unwrap_or(serve.settings.webhook_addr),
        crate::serve::webhook::PATH,
        status_listener
            .local_addr()
            .unwrap_or(serve.settings.status_addr),
        serve.settings.sweep_cron.pattern,
    );
    let _ = out.flush();
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    match serve.run(listener, status_listener, shutdown).await {
        Ok(()) => Status::Green,
        Err(e) => fail(out, &format!("webhook server: {e}")),
    }
}

/// SIGTERM (compose stop) or SIGINT (Ctrl-C) starts a graceful shutdown.
async fn cancel_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
    shutdown.cancel();
}

/// `pma-sso sweep`: enqueue a sweep, wait for a worker to run it, print what it found.
pub async fn sweep(ctx: &Context, opts: &Options, out: &mut dyn Write) -> Status {
    let pipeline = match super::pipeline_settings(ctx) {
        Ok(p) => p,
        Err(e) => return fail(out, &e),
    };
    let client = match super::job_client(&pipeline).await {
        Ok(c) => c,
        Err(e) => return fail(out, &e),
    };
    let job = match client
        .enqueue(SWEEP_TARGET, Action::Sweep, Trigger::Cli, None)
        .await
    {
        Ok(j) => j,
        Err(e) => return fail(out, &e.to_string()),
    };
    let rows = client
        .wait(&[job.id], opts.pickup_timeout, opts.wait_timeout)
        .await;
    client.close().await;
    let row = match rows.map(|mut r| r.pop()) {
        Ok(Some(row)) => row,
        Ok(None) => return fail(out, &format!("sweep job {} vanished", job.id)),
        Err(e) => return fail(out, &e.to_string()),
    };
    match row.outcome {
        Some(Outcome::Swept { sweep }) => {
            if opts.json {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "job": row.id.to_string(), "services": sweep.services,
                        "in_sync": sweep.in_sync, "drifted": sweep.drifted,
                        "errors": sweep.errors, "probed": sweep.probed,
                        "probe_failures": sweep.probe_failures, "enqueued": sweep.enqueued,
                        "summary": sweep.line(),
                    })
                );
            } else {
                let _ = writeln!(out, "{}", sweep.line());
            }
            if sweep.errors > 0 {
                Status::Error
            } else if sweep.drifted > 0 {
                Status::Drift
            } else {
                Status::Green
            }
        }
        Some(Outcome::Failed { reason, .. }) => {
            let suffix = if row.status == JobStatus::Dead {
                format!(" (gave up after {} attempts)", row.attempts)
            } else {
                String::new()
            };
            fail(out, &format!("sweep failed: {reason}{suffix}"))
        }
        _ => fail(
            out,
            &format!("sweep job {} ended {}", row.id, row.status.as_str()),
        ),
    }
}
