//! Retrying one request. A 5–15-request flow at 30 % faulty answers almost never gets through
//! in one go, so each request gets a few tries of its own; the job-level retry (the pipeline's
//! policy) stays for what is left.
//!
//! What may be sent again: a read, a PATCH or PUT (the same body sets the same values), and any
//! request that certainly never reached authentik's view (it could not connect, or DRF's
//! throttle answered 429). A create (`POST`) whose fate is unknown — a 5xx, a reset, a timeout —
//! is re-read by its natural key before it is sent again (see `Client::create`).

use std::time::{Duration, Instant};

use super::AuthentikError;

/// Default of `PMA_SSO_AUTHENTIK_TRIES`.
pub const DEFAULT_TRIES: u32 = 5;

/// How one request is retried.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRetry {
    /// Tries per request, the first included; 1 turns per-request retries off.
    pub max_tries: u32,
    /// Backoff before the second try; doubles each try (full jitter), up to `max_delay`.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is left to the job-level retry, which waits without
    /// holding a worker slot.
    pub max_retry_after: Duration,
}

impl Default for RequestRetry {
    fn default() -> Self {
        RequestRetry {
            max_tries: DEFAULT_TRIES,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

/// Whether a request may be sent again after a transient failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Idempotent: sending it twice leaves the same state (GET, PATCH, PUT).
    Always,
    /// Only when it certainly did not reach authentik's view.
    IfNotApplied,
}

impl Repeat {
    pub fn of(method: &reqwest::Method) -> Repeat {
        match *method {
            reqwest::Method::GET
            | reqwest::Method::HEAD
            | reqwest::Method::PATCH
            | reqwest::Method::PUT => Repeat::Always,
            _ => Repeat::IfNotApplied,
        }
    }
}

tokio::task_local! {
    /// When the current job attempt's retry budget runs out: no per-request retry starts a wait
    /// that would end after it. Set by the pipeline around a flow ([`with_retry_deadline`]).
    static DEADLINE: Instant;
}

/// Run `fut` with per-request retries bounded by `budget` from now (the whole attempt's budget,
/// shared by every request the attempt sends).
pub async fn with_retry_deadline<F: std::future::Future>(budget: Duration, fut: F) -> F::Output {
    DEADLINE.scope(Instant::now() + budget, fut).await
}

fn deadline() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// The wait before try `tried + 1` after `error`, or `None` to give up. `jitter` is a sample
/// from [0, 1), so the function stays pure: full jitter, so that requests failed together do
/// not come back together. `Retry-After` is a floor.
pub fn next_wait(
    policy: &RequestRetry,
    repeat: Repeat,
    error: &AuthentikError,
    tried: u32,
    jitter: f64,
) -> Option<Duration> {
    if tried >= policy.max_tries || !error.is_transient() {
        return None;
    }
    if repeat == Repeat::IfNotApplied && !error.certainly_not_applied() {
        return None;
    }
    let exponent = tried.saturating_sub(1).min(20);
    let backoff = policy
        .min_delay
        .checked_mul(1u32 << exponent)
        .unwrap_or(policy.max_delay)
        .min(policy.max_delay)
        .mul_f64(jitter.clamp(0.0, 1.0));
    match error.retry_after() {
        Some(ra) if ra > policy.max_retry_after => None,
        Some(ra) => Some(backoff.max(ra)),
        None => Some(backoff),
    }
}

/// `wait` fits in the current attempt's budget (always, outside a job).
pub(crate) fn fits_budget(wait: Duration) -> bool {
    deadline().is_none_or(|d| Instant::now() + wait < d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, retry_after: Option<u64>) -> AuthentikError {
        AuthentikError::from_status(
            "GET /x/".into(),
            status,
            b"",
            retry_after.map(Duration::from_secs),
        )
    }

    fn reset() -> AuthentikError {
        AuthentikError::Transport {
            endpoint: "POST /x/".into(),
            problem: "request failed (connection reset or closed)".into(),
        }
    }

    fn refused() -> AuthentikError {
        AuthentikError::Transport {
            endpoint: "POST /x/".into(),
            problem: super::super::error::NOT_CONNECTED.into(),
        }
    }

    #[test]
    fn the_per_request_retry_table() {
        use Repeat::*;
        let p = RequestRetry::default();
        let ms = Duration::from_millis;
        // (repeat, error, tries so far, jitter) → wait
        let table: Vec<(Repeat, AuthentikError, u32, f64, Option<Duration>)> = vec![
            (Always, err(502, None), 1, 1.0, Some(ms(100))),
            (Always, err(500, None), 2, 1.0, Some(ms(200))),
            (Always, err(503, None), 3, 0.5, Some(ms(200))),
            (Always, err(502, None), 4, 1.0, Some(ms(800))),
            (Always, err(502, None), 5, 1.0, None),
            (Always, err(429, Some(1)), 1, 0.0, Some(ms(1000))),
            (IfNotApplied, err(429, Some(1)), 1, 0.0, Some(ms(1000))),
            (Always, err(429, Some(3600)), 1, 0.0, None),
            (Always, reset(), 1, 1.0, Some(ms(100))),
            (IfNotApplied, reset(), 1, 1.0, None),
            (IfNotApplied, err(502, None), 1, 1.0, None),
            (IfNotApplied, refused(), 2, 1.0, Some(ms(200))),
            (Always, err(400, None), 1, 1.0, None),
            (Always, err(403, None), 1, 1.0, None),
            (Always, err(404, None), 1, 1.0, None),
        ];
        for (repeat, error, tried, jitter, want) in table {
            assert_eq!(
                next_wait(&p, repeat, &error, tried, jitter),
                want,
                "{repeat:?} {error} after {tried} tries"
            );
        }
    }

    #[test]
    fn backoff_never_passes_the_cap_on_many_tries() {
        let p = RequestRetry {
            max_tries: 100,
            ..RequestRetry::default()
        };
        assert_eq!(
            next_wait(&p, Repeat::Always, &err(500, None), 60, 1.0),
            Some(p.max_delay)
        );
    }

    #[tokio::test]
    async fn a_wait_past_the_attempt_deadline_does_not_fit() {
        assert!(fits_budget(Duration::from_secs(3600)), "no deadline set");
        with_retry_deadline(Duration::from_secs(1), async {
            assert!(fits_budget(Duration::from_millis(10)));
            assert!(!fits_budget(Duration::from_secs(2)));
        })
        .await;
    }
}
