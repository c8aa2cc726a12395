//! Processes under test (the real `pma-sso-worker`, `pma-sso serve`), stopped the way
//! `docker compose stop` stops them.

use std::process::ExitStatus;
use std::time::Duration;

/// Sends SIGTERM to `child` and waits for it to exit, at most `within` (a bound on a hang, not
/// a timing target). Returns its exit status, or `None` when it was still running at the bound.
pub async fn sigterm(child: &mut tokio::process::Child, within: Duration) -> Option<ExitStatus> {
    let pid = child.id().expect("the child has not been waited for yet");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {pid}: {sent}");
    tokio::time::timeout(within, child.wait())
        .await
        .ok()
        .map(|waited| waited.expect("wait for the child"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sleeping_child_ends_on_sigterm() {
        let mut child = tokio::process::Command::new("sleep")
            .arg("30")
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sleep");
        let status = sigterm(&mut child, Duration::from_secs(10))
            .await
            .expect("sleep ends on SIGTERM");
        assert!(!status.success(), "{status}");
    }
}
