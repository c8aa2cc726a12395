//! Refused webhooks: counted in `pma_sso_webhook_refused_total{reason}`, logged at most once per
//! [`INTERVAL`] per reason with the number refused since the last line — whoever can reach the
//! port must not control the volume of our logs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one log line per reason per interval.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// Why a webhook was refused; the metric's `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// 401: missing or wrong shared secret.
    Secret,
    /// 413: the body is over the limit.
    TooLarge,
    /// 408: the body did not arrive in time.
    SlowBody,
    /// 400: not an authentik notification.
    Malformed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Secret => "secret",
            Reason::TooLarge => "too_large",
            Reason::SlowBody => "slow_body",
            Reason::Malformed => "malformed",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Reason::Secret => "missing or wrong shared secret",
            Reason::TooLarge => "body over the size limit",
            Reason::SlowBody => "body did not arrive in time",
            Reason::Malformed => "malformed body",
        }
    }
}

/// Per reason: when a line was last written and how many were refused since.
#[derive(Debug)]
pub struct Refusals {
    interval: Duration,
    state: Mutex<HashMap<Reason, Window>>,
}

#[derive(Debug)]
struct Window {
    logged_at: Instant,
    unlogged: u64,
}

impl Refusals {
    pub fn new(interval: Duration) -> Refusals {
        Refusals {
            interval,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Count one refusal and log it if this reason's line is due.
    pub fn refused(&self, reason: Reason) {
        metrics::counter!("pma_sso_webhook_refused_total", "reason" => reason.as_str())
            .increment(1);
        if let Some(count) = self.note(reason, Instant::now()) {
            tracing::warn!(
                reason = reason.as_str(),
                refused = count,
                "webhook refused: {} ({count} since the last line about it; at most one line per {}s)",
                reason.describe(),
                self.interval.as_secs()
            );
        }
    }

    /// Record a refusal at `now`; `Some(n)` when a line is due, `n` counting this refusal and
    /// those not logged before it.
    pub fn note(&self, reason: Reason, now: Instant) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match state.get_mut(&reason) {
            Some(window) if now.duration_since(window.logged_at) < self.interval => {
                window.unlogged += 1;
                None
            }
            Some(window) => {
                let count = window.unlogged + 1;
                *window = Window {
                    logged_at: now,
                    unlogged: 0,
                };
                Some(count)
            }
            None => {
                state.insert(
                    reason,
                    Window {
                        logged_at: now,
                        unlogged: 0,
                    },
                );
                Some(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_refusals_writes_one_line_per_reason_per_interval_with_the_count() {
        let refusals = Refusals::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        assert_eq!(refusals.note(Reason::Secret, at(0)), Some(1));
        for s in 1..=59 {
            assert_eq!(refusals.note(Reason::Secret, at(s)), None, "second {s}");
        }
        // Another reason has its own window.
        assert_eq!(refusals.note(Reason::Malformed, at(30)), Some(1));
        assert_eq!(refusals.note(Reason::Secret, at(60)), Some(60));
        assert_eq!(refusals.note(Reason::Secret, at(61)), None);
        assert_eq!(refusals.note(Reason::Secret, at(200)), Some(2));
    }
}
