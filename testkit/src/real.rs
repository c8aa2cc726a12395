//! The real authentik (2025.12.4, from `../shared/authentik/server`) for contract tests.
//!
//! `.ci/run` starts it once and sets `PMA_SSO_REAL_AUTHENTIK` to the env file its `start.sh`
//! writes (`$AK_HOME/env`: `AUTHENTIK_URL`, `AUTHENTIK_BOOTSTRAP_TOKEN`). With the variable set,
//! a test that asks for it gets it, and authentik not answering fails that test with the tail
//! of authentik's logs. Without it (a clone outside this workplace) the tests that need it are
//! skipped, and the process says so once.

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

/// The variable naming the env file of a running real authentik.
pub const VAR: &str = "PMA_SSO_REAL_AUTHENTIK";

/// A running real authentik: its API base URL and the bootstrap (akadmin) token.
#[derive(Clone, Debug)]
pub struct RealAuthentik {
    pub url: String,
    pub token: String,
    /// `$AK_HOME`: `logs/` holds server.log, worker.log, …
    pub home: PathBuf,
}

static SKIPPED: Once = Once::new();

/// Held by tests that see every object pma-sso owns in the shared authentik (the contract
/// suite's `orphans --prune`, the least-privilege test's own applications), so they never
/// run at the same time within one test process.
static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl RealAuthentik {
    /// The real authentik, if this run has one. `None` (after one printed line per process)
    /// when `PMA_SSO_REAL_AUTHENTIK` is unset; a panic naming what is wrong when it is set but
    /// the file or the server is not usable.
    pub async fn from_env(test: &str) -> Option<RealAuthentik> {
        let Some(path) = std::env::var_os(VAR).filter(|v| !v.is_empty()) else {
            SKIPPED.call_once(|| {
                eprintln!(
                    "skipped: real-authentik contract tests ({test} and the others): {VAR} is not set (.ci/run sets it)"
                );
            });
            return None;
        };
        let path = PathBuf::from(path);
        let real = Self::read(&path).unwrap_or_else(|e| panic!("{VAR}={}: {e}", path.display()));
        real.wait_ready(Duration::from_secs(60)).await;
        Some(real)
    }

    fn read(path: &Path) -> Result<RealAuthentik, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let value = |key: &str| {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("export ").or(Some(l.trim())))
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(|v| v.trim().trim_matches(['"', '\'']).to_owned())
                .ok_or_else(|| format!("no {key} in the file"))
        };
        Ok(RealAuthentik {
            url: value("AUTHENTIK_URL")?.trim_end_matches('/').to_owned(),
            token: value("AUTHENTIK_BOOTSTRAP_TOKEN")?,
            home: path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        })
    }

    /// The shared authentik to oneself (see [`EXCLUSIVE`]) until the guard is dropped.
    pub async fn exclusive(&self) -> tokio::sync::MutexGuard<'static, ()> {
        EXCLUSIVE.lock().await
    }

    /// Waits until the API answers `users/me` with the token; panics with the logs' tails.
    pub async fn wait_ready(&self, within: Duration) {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + within;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            match client
                .get(format!("{}/api/v3/core/users/me/", self.url))
                .bearer_auth(&self.token)
                .timeout(Duration::from_secs(10))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => last = format!("HTTP {}", r.status()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!(
            "real authentik at {} did not answer within {within:?} ({last})\n{}",
            self.url,
            self.log_tails()
        );
    }

    /// The last lines of authentik's server and worker logs, for a failure message.
    pub fn log_tails(&self) -> String {
        ["server.log", "worker.log"]
            .iter()
            .map(|name| {
                let path = self.home.join("logs").join(name);
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                format!("--- tail of {}:\n{tail}", path.display())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// One authenticated API call as akadmin (the operator's hand in the admin UI).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new()
            .request(
                method,
                format!("{}/api/v3/{}", self.url, path.trim_start_matches('/')),
            )
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(60));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("real authentik {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, value)
    }
}
