//! `authentik-sim`: the authentik API stand-in as a process, to try `pma-sso` against by hand.

use std::net::{IpAddr, SocketAddr};

use clap::Parser;
use testkit::AuthentikSim;

/// Serve a stateful stand-in for the authentik 2026.2.2 API (under /api/v3/) until Ctrl-C or
/// SIGTERM. State lives in memory only.
#[derive(Debug, Parser)]
#[command(name = "authentik-sim", version)]
struct Args {
    /// Port to listen on.
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// API token clients must send as `Authorization: Bearer <token>`.
    #[arg(long, env = "AUTHENTIK_SIM_TOKEN", hide_env_values = true)]
    token: String,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "testkit=debug,info".into()),
        )
        .init();
    let args = Args::parse();
    let sim = AuthentikSim::new(&args.token)
        .bind(SocketAddr::new(args.bind, args.port))
        .try_start()
        .await?;
    println!("authentik stand-in listening on {}", sim.base_url());
    shutdown_signal().await;
    sim.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    eprintln!("cannot listen for SIGTERM ({err}); stop with Ctrl-C");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
