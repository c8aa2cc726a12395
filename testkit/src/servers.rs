//! The shared PostgreSQL and RabbitMQ of a test machine, really stopped and started, for the
//! serial restart tests (`.ci/run` runs them alone: they take the servers from every other test).

use std::process::Command;
use std::time::Duration;

/// Brings both servers back when dropped, even if the test fails half-way.
pub struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").output();
        if let Some(version) = pg_cluster() {
            let _ = Command::new("pg_ctlcluster")
                .args(["--skip-systemctl-redirect", &version, "main", "start"])
                .output();
        }
    }
}

fn pg_cluster() -> Option<String> {
    let versions = std::fs::read_dir("/etc/postgresql").ok()?;
    versions
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
}

/// Stops RabbitMQ's application (the node stays up, so `rabbitmqctl` can start it again).
pub fn stop_rabbitmq() {
    run("rabbitmqctl", &["stop_app"]);
}

/// Starts RabbitMQ's application and waits until it accepts connections again.
pub async fn start_rabbitmq() {
    run("rabbitmqctl", &["start_app"]);
    wait_tcp(5672).await;
}

/// Restarts the shared PostgreSQL cluster and waits until it accepts connections again.
pub async fn restart_postgres() {
    let version = pg_cluster().expect("a PostgreSQL cluster under /etc/postgresql");
    run(
        "pg_ctlcluster",
        &["--skip-systemctl-redirect", &version, "main", "restart"],
    );
    wait_tcp(5432).await;
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits (at most 30 s) until something accepts TCP connections on `127.0.0.1:port`.
pub async fn wait_tcp(port: u16) {
    for _ in 0..120 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("port {port} did not come back");
}
