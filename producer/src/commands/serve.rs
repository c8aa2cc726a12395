//! `pma-sso serve` (webhook receiver, cron sweep leader, relay) and `pma-sso sweep` (one sweep
//! now, through the queue).

use std::io::Write;
use std::sync::Arc;

use schemas::job::{Action, JobStatus, Outcome, SWEEP_TARGET, Trigger};
use tokio_util::sync::CancellationToken;
use worker::Context;
use worker::envfile::EnvFile;
use worker::startup::{self, NotYet};

use super::Options;
use crate::cli::{Status, fail};
use crate::serve::{Serve, ServeSettings};

/// Where authentik should send its webhook; when set, `serve` installs the webhook itself.
pub const WEBHOOK_URL_ENV: &str = "PMA_SSO_WEBHOOK_URL";

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

/// `pma-sso serve` as the stack starts it: settings first, waiting (alive, not ready, saying
/// which command to run) while the stack is not set up yet; then, when `PMA_SSO_WEBHOOK_URL`
/// is set, authentik's webhook installed (or checked) so nobody has to remember to; then serve.
pub async fn run(out: &mut dyn Write) -> Status {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let (ctx, install_log) = match set_up().await {
        Ok(ready) => ready,
        Err(NotYet::Invalid(e)) => return fail(out, &e),
        Err(NotYet::Waiting(why)) => {
            let addr = match waiting_addr() {
                Ok(a) => a,
                Err(e) => return fail(out, &e),
            };
            let _ = writeln!(out, "waiting: {why}");
            let _ = out.flush();
            let waiting = match Waiting::start(addr, &why, shutdown.clone()).await {
                Ok(w) => w,
                Err(e) => return fail(out, &format!("listening on {addr}: {e}")),
            };
            let ready = startup::until_ready(startup::WAIT_EVERY, &shutdown, set_up, |why| {
                tracing::warn!(problem = why, "waiting: not set up yet");
                waiting.set(why);
            })
            .await;
            waiting.stop().await;
            match ready {
                Ok(Some(ready)) => ready,
                Ok(None) => return Status::Green,
                Err(e) => return fail(out, &e),
            }
        }
    };
    let _ = out.write_all(&install_log);
    serve(&ctx, shutdown, out).await
}

/// One start-up attempt: settings (the token `init` writes), then the webhook when
/// `PMA_SSO_WEBHOOK_URL` asks for it (authentik may not answer yet). Gives the context and
/// what the install printed.
async fn set_up() -> Result<(Context, Vec<u8>), NotYet> {
    let mut install_log = Vec::new();
    let settings = startup::settings_or_wait()?;
    let ctx = Context::new(settings).map_err(|e| NotYet::Invalid(e.to_string()))?;
    let url = lookup(&ctx).map_err(NotYet::Invalid)?(WEBHOOK_URL_ENV);
    if let Some(url) = url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(NotYet::Invalid(format!(
                "{WEBHOOK_URL_ENV} must be an http(s) URL, got {url:?}"
            )));
        }
        super::webhook::install(&ctx, &url, &mut install_log)
            .await
            .map_err(|e| NotYet::Waiting(format!("installing authentik's webhook: {e}")))?;
    }
    Ok((ctx, install_log))
}

/// Where `serve` answers while it waits: the webhook's address, so the health check that
/// probes it finds the process alive.
fn waiting_addr() -> Result<std::net::SocketAddr, String> {
    let process = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
    let env_path = process("PMA_SSO_ENV_FILE").unwrap_or_else(|| ".env".into());
    let file = EnvFile::read(std::path::Path::new(&env_path)).map_err(|e| e.to_string())?;
    let get = |key: &str| {
        process(key).or_else(|| file.get(key).filter(|v| !v.is_empty()).map(str::to_owned))
    };
    crate::serve::webhook_addr(&get)
}

/// `serve`'s stand-in while it waits: `/healthz` answers (the process is alive, no restart
/// loop), `/readyz` and every other path answer 503 with the reason.
struct Waiting {
    problem: Arc<std::sync::Mutex<String>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Waiting {
    async fn start(
        addr: std::net::SocketAddr,
        why: &str,
        shutdown: CancellationToken,
    ) -> std::io::Result<Waiting> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let problem = Arc::new(std::sync::Mutex::new(why.to_owned()));
        let stop = shutdown.child_token();
        let not_ready = {
            let problem = problem.clone();
            move || {
                let problem = problem.clone();
                async move {
                    let why = problem.lock().map(|p| p.clone()).unwrap_or_default();
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {why}\n"),
                    )
                }
            }
        };
        let app = axum::Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok\n" }))
            .route("/readyz", axum::routing::get(not_ready.clone()))
            .fallback(not_ready);
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the waiting health server stopped");
            }
        });
        Ok(Waiting {
            problem,
            stop,
            task,
        })
    }

    fn set(&self, why: &str) {
        if let Ok(mut problem) = self.problem.lock() {
            why.clone_into(&mut problem);
        }
    }

    /// Stop and wait for the listener to close, so `serve` can bind the same address.
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn serve(ctx: &Context, shutdown: CancellationToken, out: &mut dyn Write) -> Status {
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
