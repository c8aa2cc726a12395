//! Start-up of a stack that is not set up yet (`docker compose up` before `pma-sso init`).
//! Exiting would make the container restart forever; instead the process stays alive (its
//! `/healthz` answers), is not ready (its `/readyz` says exactly which command to run), and
//! reads its settings again until they are complete.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::settings::{Settings, SettingsError};

/// The one-time step that creates pma-sso's own authentik account and token.
pub const INIT_HINT: &str = "run `docker compose run --rm -e AUTHENTIK_ADMIN_TOKEN pma-sso-serve pma-sso init` once, with authentik's bootstrap token as AUTHENTIK_ADMIN_TOKEN (or `pma-sso init` outside the stack)";

/// How often a waiting process reads its settings again.
pub const WAIT_EVERY: Duration = Duration::from_secs(3);

/// Why a start-up attempt did not give settings.
#[derive(Debug)]
pub enum NotYet {
    /// Something an operator step will provide (the token `init` writes): wait for it.
    Waiting(String),
    /// Wrong as written: waiting would not help.
    Invalid(String),
}

/// `Settings::from_env`, with a missing `AUTHENTIK_TOKEN` as something to wait for.
pub fn settings_or_wait() -> Result<Settings, NotYet> {
    Settings::from_env().map_err(|e| match e {
        SettingsError::Missing("AUTHENTIK_TOKEN") => {
            NotYet::Waiting(format!("AUTHENTIK_TOKEN is not set: {INIT_HINT}"))
        }
        e => NotYet::Invalid(format!("settings: {e}")),
    })
}

/// Call `attempt` every `every` until it gives a value; while it says `Waiting`, `waiting` is
/// told why (once per new reason). `Ok(None)` when `shutdown` comes first.
pub async fn until_ready<T, F, Fut>(
    every: Duration,
    shutdown: &CancellationToken,
    mut attempt: F,
    mut waiting: impl FnMut(&str),
) -> Result<Option<T>, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, NotYet>>,
{
    let mut last = None::<String>;
    loop {
        match attempt().await {
            Ok(value) => return Ok(Some(value)),
            Err(NotYet::Invalid(e)) => return Err(e),
            Err(NotYet::Waiting(why)) => {
                if last.as_deref() != Some(why.as_str()) {
                    waiting(&why);
                    last = Some(why);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn waiting_reports_each_reason_once_and_ends_when_ready() {
        let calls = AtomicUsize::new(0);
        let mut told = Vec::new();
        let got = until_ready(
            Duration::from_millis(1),
            &CancellationToken::new(),
            || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    match n {
                        0 | 1 => Err(NotYet::Waiting("no token".into())),
                        2 => Err(NotYet::Waiting("no secret".into())),
                        _ => Ok(n),
                    }
                }
            },
            |why| told.push(why.to_owned()),
        )
        .await;
        assert_eq!(got, Ok(Some(3)));
        assert_eq!(told, ["no token", "no secret"]);
    }

    #[tokio::test]
    async fn an_invalid_setting_ends_the_wait_with_its_error() {
        let got: Result<Option<()>, String> = until_ready(
            Duration::from_millis(1),
            &CancellationToken::new(),
            || async { Err(NotYet::Invalid("AUTHENTIK_URL is invalid".into())) },
            |_| {},
        )
        .await;
        assert_eq!(got, Err("AUTHENTIK_URL is invalid".into()));
    }

    #[tokio::test]
    async fn shutdown_ends_the_wait_without_a_value() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let got: Result<Option<()>, String> = until_ready(
            Duration::from_secs(60),
            &shutdown,
            || async { Err(NotYet::Waiting("no token".into())) },
            |_| {},
        )
        .await;
        assert_eq!(got, Ok(None));
    }
}
