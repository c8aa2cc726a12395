//! The one retry policy: a pure function from (error kind, attempt) to retry-after / fail /
//! dead-letter. Flows never sleep or retry; this decides for them.

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Run again after this delay (rounded up to a delay tier by the caller).
    Retry { after: Duration },
    /// Permanent: an operator must act; retrying cannot help.
    Fail,
    /// Transient, but the attempts are used up.
    Dead,
}

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each attempt.
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base: Duration::from_secs(5),
            cap: Duration::from_secs(3600),
        }
    }
}

/// `attempt` is the attempt that just failed (1-based); `jitter` is a sample from [0, 1) so the
/// function stays pure and testable. Equal jitter: half the backoff is fixed, half random, so
/// jobs that failed together do not come back together.
pub fn decide(
    policy: &RetryPolicy,
    transient: bool,
    retry_after: Option<Duration>,
    attempt: u32,
    jitter: f64,
) -> Decision {
    if !transient {
        return Decision::Fail;
    }
    if attempt >= policy.max_attempts {
        return Decision::Dead;
    }
    let exponent = attempt.saturating_sub(1).min(30);
    let backoff = policy
        .base
        .checked_mul(1u32 << exponent)
        .unwrap_or(policy.cap)
        .min(policy.cap);
    let jitter = jitter.clamp(0.0, 1.0);
    let jittered = backoff.mul_f64(0.5 + 0.5 * jitter);
    // authentik's Retry-After is a floor: coming back earlier would only be refused again.
    let after = retry_after.map_or(jittered, |ra| jittered.max(ra.min(policy.cap)));
    Decision::Retry { after }
}

/// The smallest delay tier that waits at least `after` (the largest one if none does): a
/// per-message TTL only expires at the head of a queue, so each tier is its own queue.
pub fn tier_for(tiers: &[Duration], after: Duration) -> Option<Duration> {
    tiers
        .iter()
        .copied()
        .find(|t| *t >= after)
        .or_else(|| tiers.iter().copied().max())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_decision_table() {
        let p = RetryPolicy {
            max_attempts: 4,
            base: S(5),
            cap: S(60),
        };
        // (transient, retry_after, attempt, jitter) → decision
        let table: [(bool, Option<Duration>, u32, f64, Decision); 10] = [
            (false, None, 1, 0.5, Decision::Fail),
            (false, Some(S(1)), 3, 0.0, Decision::Fail),
            (
                true,
                None,
                1,
                0.0,
                Decision::Retry {
                    after: Duration::from_millis(2500),
                },
            ),
            (true, None, 1, 1.0, Decision::Retry { after: S(5) }),
            (true, None, 2, 1.0, Decision::Retry { after: S(10) }),
            (true, None, 3, 1.0, Decision::Retry { after: S(20) }),
            (true, None, 4, 0.0, Decision::Dead),
            (true, None, 9, 0.0, Decision::Dead),
            (true, Some(S(45)), 1, 0.0, Decision::Retry { after: S(45) }),
            (
                true,
                Some(S(7200)),
                2,
                0.0,
                Decision::Retry { after: S(60) },
            ),
        ];
        for (transient, retry_after, attempt, jitter, want) in table {
            assert_eq!(
                decide(&p, transient, retry_after, attempt, jitter),
                want,
                "transient={transient} retry_after={retry_after:?} attempt={attempt} jitter={jitter}"
            );
        }
    }

    #[test]
    fn backoff_is_capped_even_for_huge_attempt_numbers() {
        let p = RetryPolicy {
            max_attempts: 1000,
            base: S(5),
            cap: S(60),
        };
        assert_eq!(
            decide(&p, true, None, 500, 1.0),
            Decision::Retry { after: S(60) }
        );
    }

    #[test]
    fn delays_round_up_to_a_tier() {
        let tiers = [S(5), S(30), S(120)];
        assert_eq!(tier_for(&tiers, S(1)), Some(S(5)));
        assert_eq!(tier_for(&tiers, S(5)), Some(S(5)));
        assert_eq!(tier_for(&tiers, S(6)), Some(S(30)));
        assert_eq!(tier_for(&tiers, S(999)), Some(S(120)));
        assert_eq!(tier_for(&[], S(1)), None);
    }
}
