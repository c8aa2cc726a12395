//! `platform-sim`: every stand-in a platform needs (authentik, Wiki.js, Frappe, Zammad), started
//! together on loopback, for the demo
//! and for trying pma-sso by hand. It writes the `.env` lines that point pma-sso at them (URLs and
//! the stand-ins' own credentials) to `--env-out`, then serves until Ctrl-C or SIGTERM.

use std::path::PathBuf;

use clap::Parser;
use testkit::PlatformSim;

#[derive(Debug, Parser)]
#[command(name = "platform-sim", version)]
struct Args {
    /// API token for the authentik stand-in.
    #[arg(long, env = "AUTHENTIK_SIM_TOKEN", hide_env_values = true)]
    token: String,
    /// Where to write the `.env` lines (mode 0600); printed to stdout when absent.
    #[arg(long)]
    env_out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let platform = PlatformSim::start(&args.token).await;
    // This stand-in is the only authentik there is: it is also the public URL users' browsers
    // and services reach (so `verify` finds the issuer answering), and, as on a real authentik,
    // the embedded outpost answers on that same host.
    let base = platform.authentik.base_url();
    platform.authentik.set_public_url(Some(&base));
    let text = format!(
        "{}AUTHENTIK_PUBLIC_URL={base}\nPMA_SSO_OUTPOST_URL={base}\n",
        platform.env_lines()
    );
    match &args.env_out {
        Some(path) => write_private(path, &text)?,
        None => print!("{text}"),
    }
    eprintln!(
        "stand-ins ready: authentik {}, Wiki.js {}, Frappe {}, Zammad {}",
        platform.authentik.base_url(),
        platform.wikijs.base_url(),
        platform.frappe.base_url(),
        platform.zammad.base_url()
    );
    shutdown_signal().await;
    Ok(())
}

fn write_private(path: &PathBuf, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Written whole to a temp name then renamed, so a reader never sees half the lines.
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(tmp, path)
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
