//! Fault injection: which requests fail, and how. Each request's fate is a hash of the seed, the
//! request (method, path with query, body) and its try number (how many times this same request
//! has arrived, this one included), so a run is reproducible however concurrent jobs interleave:
//! a service's own requests (one job per service at a time) meet the same faults every run; only
//! requests that several services send identically (a shared list) may be met in another order.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use axum::http::StatusCode;

use super::path_has_prefix;

/// Faults to inject. `Default` injects none.
///
/// For each request (that matches `path_prefix`), one draw in `[0, 1)` picks at most one fault:
/// the rates are stacked in the order error, error after forwarding, rate limit, timeout, reset,
/// so their sum should stay at most 1. `latency` is added to every matching request, faulted or
/// not.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Fraction answered 500, 502 or 503 (picked at random) before touching state.
    pub error_rate: f64,
    /// Fraction handled normally whose answer is then replaced by a 502, as from a proxy that
    /// timed out waiting for authentik: the change happened, the client cannot know.
    pub forwarded_error_rate: f64,
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
    /// Only requests with this method (`POST`, …) are faulted.
    pub method: Option<String>,
    /// Only the first this many tries of each request may be faulted; later ones pass.
    pub faulted_tries: Option<u64>,
    /// Mixed into every request's hash: another seed, other faults.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            error_rate: 0.0,
            forwarded_error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: 1,
            timeout_rate: 0.0,
            timeout_delay: Duration::from_secs(30),
            reset_rate: 0.0,
            latency: Duration::ZERO,
            path_prefix: None,
            method: None,
            faulted_tries: None,
            seed: 0,
        }
    }
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    ServerError(StatusCode),
    /// Handled, then answered with this status.
    AfterForwarding(StatusCode),
    RateLimited {
        retry_after_secs: u64,
    },
    Timeout(Duration),
    Reset,
}

#[derive(Debug)]
pub(crate) struct FaultState {
    faults: Faults,
    /// Tries so far of each distinct request (by its hash).
    tries: HashMap<u64, u64>,
}

/// One request as the fault decision sees it.
pub(crate) struct RequestKey<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

/// A uniform draw in [0, 1) from a hash.
fn unit(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

fn hash_of(value: impl Hash) -> u64 {
    // `DefaultHasher::new()` uses fixed keys: the same value hashes the same in every run.
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

impl FaultState {
    pub(crate) fn new(faults: Faults) -> FaultState {
        FaultState {
            faults,
            tries: HashMap::new(),
        }
    }

    /// The latency to add and the fault (if any) for one request.
    pub(crate) fn decide(&mut self, request: &RequestKey<'_>) -> (Duration, Option<Fault>) {
        let f = &self.faults;
        if let Some(prefix) = &f.path_prefix
            && !path_has_prefix(request.path, prefix)
        {
            return (Duration::ZERO, None);
        }
        if f.method
            .as_deref()
            .is_some_and(|m| !m.eq_ignore_ascii_case(request.method))
        {
            return (Duration::ZERO, None);
        }
        let rates = [
            f.error_rate,
            f.forwarded_error_rate,
            f.rate_limit_rate,
            f.timeout_rate,
            f.reset_rate,
        ];
        if rates.iter().sum::<f64>() <= 0.0 {
            return (f.latency, None);
        }
        let request_hash = hash_of((request.method, request.path, request.query, request.body));
        let tries = self.tries.entry(request_hash).or_insert(0);
        *tries += 1;
        if f.faulted_tries.is_some_and(|n| *tries > n) {
            return (f.latency, None);
        }
        let fate = hash_of((f.seed, request_hash, *tries));
        let draw = unit(fate);
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
                    STATUSES[(hash_of(fate) % STATUSES.len() as u64) as usize],
                ))
            }
            Some(1) => Some(Fault::AfterForwarding(StatusCode::BAD_GATEWAY)),
            Some(2) => Some(Fault::RateLimited {
                retry_after_secs: f.retry_after_secs,
            }),
            Some(3) => Some(Fault::Timeout(f.timeout_delay)),
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
                .map(|_| state.decide(&get("/api/v3/core/applications/")).1)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    fn get(path: &str) -> RequestKey<'_> {
        RequestKey {
            method: "GET",
            path,
            query: "",
            body: b"",
        }
    }

    #[test]
    fn a_requests_fate_does_not_depend_on_the_requests_sent_between_its_tries() {
        let faults = Faults {
            error_rate: 0.3,
            forwarded_error_rate: 0.1,
            seed: 11,
            ..Faults::default()
        };
        let paths: Vec<String> = (0..40)
            .map(|i| format!("/api/v3/core/applications/s{i}/"))
            .collect();
        let tries = 4;
        // Each path tried `tries` times: one after the other, then interleaved in reverse.
        let mut alone = FaultState::new(faults.clone());
        let mut fates_alone = std::collections::BTreeMap::new();
        for path in &paths {
            for t in 0..tries {
                fates_alone.insert((path.clone(), t), alone.decide(&get(path)).1);
            }
        }
        let mut mixed = FaultState::new(faults);
        let mut fates_mixed = std::collections::BTreeMap::new();
        for t in 0..tries {
            for path in paths.iter().rev() {
                fates_mixed.insert((path.clone(), t), mixed.decide(&get(path)).1);
            }
        }
        assert_eq!(fates_alone, fates_mixed);
        let faulted = fates_alone.values().filter(|f| f.is_some()).count();
        assert!(
            (30..=100).contains(&faulted),
            "about 40 % of 160 requests should fail, {faulted} did"
        );
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
            state.decide(&get("/api/v3/core/applications/")),
            (Duration::ZERO, None)
        );
        assert!(matches!(
            state.decide(&get("/api/v3/providers/oauth2/")),
            (_, Some(Fault::ServerError(_)))
        ));
    }

    #[test]
    fn no_rates_means_no_faults() {
        let mut state = FaultState::new(Faults::default());
        assert!((0..100).all(|_| state.decide(&get("/api/v3/")).1.is_none()));
    }
}
