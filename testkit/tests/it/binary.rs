use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use reqwest::StatusCode;

/// Kills the child even when an assertion fails.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_prints_its_url_and_serves_the_api() {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_authentik-sim"))
            .args(["--port", "0"])
            .env("AUTHENTIK_SIM_TOKEN", "bin-token")
            .env("RUST_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn authentik-sim"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("read stdout");
    let url = line
        .trim()
        .strip_prefix("authentik stand-in listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let response = reqwest::Client::new()
        .get(format!("{url}/api/v3/admin/version/"))
        .bearer_auth("bin-token")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let version: serde_json::Value = response.json().await.expect("json");
    assert_eq!(version["version_current"], "2026.2.2");
}

#[test]
fn the_binary_refuses_to_start_without_a_token() {
    let output = Command::new(env!("CARGO_BIN_EXE_authentik-sim"))
        .env_remove("AUTHENTIK_SIM_TOKEN")
        .output()
        .expect("run authentik-sim");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--token"));
}
