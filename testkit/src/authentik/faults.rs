//! Fault injection: which requests fail, and how. Decisions come from a seeded generator so a
//! test with a fixed seed and a fixed request sequence sees the same faults every run.

use std::time::Duration;

use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::path_has_prefix;

/// Faults to inject. `Default` injects none.
///
/// For each request (that matches `path_prefix`), one draw in `[0, 1)` picks at most one fault:
/// the rates are stacked in the order error, rate limit, timeout, reset, so their sum should
/// stay at most 1. `latency` is added to every matching request, faulted or not.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Fraction answered 500, 502 or 503 (picked at random) before touching state.
    pub error_rate: f64,
    /// Fraction answered 429 with `Retry-After: retry_after_secs`, before touching state.
    pub rate_limit_rate: f64,
    /// The `Retry-After` value of a 429, in seconds.
    pub retry_after_secs: u64,
    /// Fraction held for `timeout_delay` and then handled normally: a client with a shorter
    /// timeout gives up, but the change still happens (as on a slow real server).
    pub timeout_rate: f64,
    /// How long a timed-out request is held.
    pub timeout_delay: Duration,
    /// Fraction whose TCP connection is closed (with RST) without any HTTP response, before
    /// touching state.
    pub reset_rate: f64,
    /// Added to every matching request.
    pub latency: Duration,
    /// Only requests whose path starts with this (with or without `/api/v3`) are faulted.
    pub path_prefix: Option<String>,
    /// Seed of the generator that decides which requests fail.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: 1,
            timeout_rate: 0.0,
            timeout_delay: Duration::from_secs(30),
            reset_rate: 0.0,
            latency: Duration::ZERO,
            path_prefix: None,
            seed: 0,
        }
    }
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    ServerError(StatusCode),
    RateLimited { retry_after_secs: u64 },
    Timeout(Duration),
    Reset,
}

#[derive(Debug)]
pub(crate) struct FaultState {
    faults: Faults,
    rng: StdRng,
}

impl FaultState {
    pub(crate) fn new(faults: Faults) -> FaultState {
        let rng = StdRng::seed_from_u64(faults.seed);
        FaultState { faults, rng }
    }

    /// The latency to add and the fault (if any) for a request to `path`.
    pub(crate) fn decide(&mut self, path: &str) -> (Duration, Option<Fault>) {
        let f = &self.faults;
        if let Some(prefix) = &f.path_prefix
            && !path_has_prefix(path, prefix)
        {
            return (Duration::ZERO, None);
        }
        let any_rate = f.error_rate + f.rate_limit_rate + f.timeout_rate + f.reset_rate;
        if any_rate <= 0.0 {
            return (f.latency, None);
        }
        let draw: f64 = self.rng.random();
        let rates = [
            f.error_rate,
            f.rate_limit_rate,
            f.timeout_rate,
            f.reset_rate,
        ];
        let mut bound = 0.0;
        let picked = rates.iter().position(|rate| {
            bound += rate;
            draw < bound
        });
        let fault = match picked {
            Some(0) => {
                const STATUSES: [StatusCode; 3] = [
                    StatusCode::INTERNAL_SERVER_ERROR,
                    StatusCode::BAD_GATEWAY,
                    StatusCode::SERVICE_UNAVAILABLE,
                ];
                Some(Fault::ServerError(
                    STATUSES[self.rng.random_range(0..STATUSES.len())],
                ))
            }
            Some(1) => Some(Fault::RateLimited {
                retry_after_secs: f.retry_after_secs,
            }),
            Some(2) => Some(Fault::Timeout(f.timeout_delay)),
            Some(_) => Some(Fault::Reset),
            None => None,
        };
        (f.latency, fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_the_same_faults() {
        let faults = Faults {
            error_rate: 0.25,
            rate_limit_rate: 0.25,
            reset_rate: 0.25,
            seed: 7,
            ..Faults::default()
        };
        let run = || {
            let mut state = FaultState::new(faults.clone());
            (0..50)
                .map(|_| state.decide("/api/v3/core/applications/").1)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn path_filter_spares_other_paths() {
        let mut state = FaultState::new(Faults {
            error_rate: 1.0,
            latency: Duration::from_millis(5),
            path_prefix: Some("/providers/".into()),
            ..Faults::default()
        });
        assert_eq!(
            state.decide("/api/v3/core/applications/"),
            (Duration::ZERO, None)
        );
        assert!(matches!(
            state.decide("/api/v3/providers/oauth2/"),
            (_, Some(Fault::ServerError(_)))
        ));
    }

    #[test]
    fn no_rates_means_no_faults() {
        let mut state = FaultState::new(Faults::default());
        assert!((0..100).all(|_| state.decide("/api/v3/").1.is_none()));
    }
}
