//! `pma-sso-worker`: consume jobs, run the flows, record outcomes. Thin: settings, one
//! `Context`, run until SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use worker::pipeline::{
    PipelineSettings, db, http,
    relay::Relay,
    spool,
    worker::{Health, Worker},
};
use worker::{Context, startup};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter(
            EnvFilter::try_from_env("PMA_SSO_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "pma-sso-worker stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let pipeline = PipelineSettings::from_env().map_err(|e| format!("settings: {e}"))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));

    // Health first: while the stack is not set up yet (no token), /healthz answers and
    // /readyz says which command to run, instead of the container restarting in a loop.
    let health = Arc::new(Health::default());
    if let Some(addr) = pipeline.http_addr {
        let (health, shutdown) = (health.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = http::serve(addr, health, shutdown).await {
                tracing::error!(error = %e, %addr, "health/metrics server failed");
            }
        });
    }
    let waiting = |why: &str| {
        tracing::warn!(problem = why, "waiting: not set up yet");
        if let Ok(mut problem) = health.authentik_problem.lock() {
            *problem = Some(why.to_owned());
        }
    };
    let ready = startup::until_ready(
        startup::WAIT_EVERY,
        &shutdown,
        || async { startup::settings_or_wait() },
        waiting,
    );
    let Some(settings) = ready.await? else {
        return Ok(());
    };
    let ctx = Arc::new(Context::new(settings).map_err(|e| e.to_string())?);

    // The database may come up after us (compose start order): wait for it, then migrate.
    // A connect attempt can take the pool's acquire timeout; SIGTERM must not wait for it.
    let pool = loop {
        let attempt = tokio::select! {
            attempt = db::connect(&pipeline.database_url, pipeline.concurrency) => attempt,
            _ = shutdown.cancelled() => return Ok(()),
        };
        match attempt {
            Ok(pool) => break pool,
            Err(e) => {
                tracing::warn!(error = %e, "database not reachable yet");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    };
    db::migrate(&pool).await.map_err(|e| e.to_string())?;
    // Requests a git hook spooled while the database was down: recorded now, published by
    // the relay below.
    let spool = spool::Spool::in_state_dir(&ctx.settings.state_dir);
    spool::replay(&spool, &pool, pipeline.retry.max_attempts).await;

    let relay = Relay {
        db: pool.clone(),
        amqp_url: pipeline.amqp_url.clone(),
        topology: pipeline.topology(),
        lease: pipeline.lease,
        interval: pipeline.relay_interval,
    };
    let relay = tokio::spawn(relay.run(shutdown.clone()));
    let worker = Arc::new(Worker {
        ctx,
        db: pool.clone(),
        topology: pipeline.topology(),
        settings: pipeline,
        health,
    });
    worker.run(shutdown.clone()).await;
    shutdown.cancel();
    let _ = relay.await;
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn signal_shutdown(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: finishing in-flight jobs");
    shutdown.cancel();
}
