//! The job pipeline: PostgreSQL is the source of truth, RabbitMQ carries job ids, workers run
//! the flows and record every outcome.

pub mod client;
pub mod db;
pub mod http;
pub mod queries;
pub mod queue;
pub mod relay;
pub mod retry;
pub mod spool;
pub mod sweep;
pub mod worker;

use std::net::SocketAddr;
use std::time::Duration;

use retry::RetryPolicy;

/// How the pipeline runs, from the environment (with defaults for one machine).
#[derive(Clone, Debug)]
pub struct PipelineSettings {
    pub database_url: String,
    pub amqp_url: String,
    pub queue_prefix: String,
    /// `x-expires` on every queue (tests only: a killed run leaves nothing behind).
    pub queue_expires: Option<Duration>,
    /// Flows run at once by one worker process (and its prefetch).
    pub concurrency: u32,
    pub retry: RetryPolicy,
    pub delay_tiers: Vec<Duration>,
    /// A non-terminal job untouched for this long may have lost its message: the relay
    /// republishes it. Must exceed `job_timeout`.
    pub lease: Duration,
    pub job_timeout: Duration,
    pub relay_interval: Duration,
    /// In-flight jobs get this long to finish after SIGTERM.
    pub shutdown_grace: Duration,
    pub http_addr: Option<SocketAddr>,
    /// Recorded with each attempt.
    pub worker_name: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{name} is invalid: {problem}")]
pub struct PipelineSettingsError {
    pub name: &'static str,
    pub problem: String,
}

/// `5s`, `250ms`, `2m`, `1h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        "h" => Some(Duration::from_secs(n * 3600)),
        _ => None,
    }
}

impl PipelineSettings {
    pub fn from_lookup(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PipelineSettings, PipelineSettingsError> {
        let invalid = |name: &'static str, problem: &str| PipelineSettingsError {
            name,
            problem: problem.to_owned(),
        };
        let duration =
            |name: &'static str, default: Duration| -> Result<Duration, PipelineSettingsError> {
                match get(name) {
                    None => Ok(default),
                    Some(v) => parse_duration(&v)
                        .ok_or_else(|| invalid(name, "expected a duration such as 30s, 500ms, 5m")),
                }
            };
        let number = |name: &'static str, default: u32| -> Result<u32, PipelineSettingsError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| invalid(name, "expected a positive number")),
            }
        };
        let delay_tiers = match get("PMA_SSO_DELAY_TIERS") {
            None => ["5s", "30s", "2m", "10m", "1h"]
                .iter()
                .filter_map(|t| parse_duration(t))
                .collect(),
            Some(v) => v
                .split(',')
                .map(|t| {
                    parse_duration(t).ok_or_else(|| {
                        invalid(
                            "PMA_SSO_DELAY_TIERS",
                            "expected durations separated by commas",
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let job_timeout = duration("PMA_SSO_JOB_TIMEOUT", Duration::from_secs(300))?;
        let lease = duration("PMA_SSO_LEASE", job_timeout + Duration::from_secs(60))?;
        if lease <= job_timeout {
            return Err(invalid(
                "PMA_SSO_LEASE",
                "must be longer than PMA_SSO_JOB_TIMEOUT",
            ));
        }
        let http_addr = match get("PMA_SSO_WORKER_HTTP") {
            None => Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            Some(v) if v == "off" => None,
            Some(v) => Some(
                v.parse()
                    .map_err(|_| invalid("PMA_SSO_WORKER_HTTP", "expected host:port or `off`"))?,
            ),
        };
        Ok(PipelineSettings {
            database_url: get("DATABASE_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/pma_sso".into()),
            amqp_url: get("AMQP_URL")
                .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
            queue_prefix: get("PMA_SSO_QUEUE_PREFIX").unwrap_or_else(|| "pma-sso".into()),
            queue_expires: match get("PMA_SSO_QUEUE_EXPIRES") {
                None => None,
                Some(v) => Some(
                    parse_duration(&v)
                        .ok_or_else(|| invalid("PMA_SSO_QUEUE_EXPIRES", "expected a duration"))?,
                ),
            },
            concurrency: number("PMA_SSO_CONCURRENCY", 4)?,
            retry: RetryPolicy {
                max_attempts: number("PMA_SSO_MAX_ATTEMPTS", 6)?,
                base: duration("PMA_SSO_RETRY_BASE", Duration::from_secs(5))?,
                cap: duration("PMA_SSO_RETRY_CAP", Duration::from_secs(3600))?,
            },
            delay_tiers,
            lease,
            job_timeout,
            relay_interval: duration("PMA_SSO_RELAY_INTERVAL", Duration::from_secs(10))?,
            shutdown_grace: duration("PMA_SSO_SHUTDOWN_GRACE", Duration::from_secs(8))?,
            http_addr,
            worker_name: get("HOSTNAME").map_or_else(
                || format!("worker-{}", std::process::id()),
                |h| format!("{h}-{}", std::process::id()),
            ),
        })
    }

    pub fn from_env() -> Result<PipelineSettings, PipelineSettingsError> {
        Self::from_lookup(&|key| std::env::var(key).ok().filter(|v| !v.is_empty()))
    }

    pub fn topology(&self) -> queue::Topology {
        let mut topology = queue::Topology::new(&self.queue_prefix, self.delay_tiers.clone());
        topology.expires = self.queue_expires;
        topology
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn defaults_hold_together_and_bad_values_are_named() {
        let s = PipelineSettings::from_lookup(&|_| None).expect("defaults");
        assert!(s.lease > s.job_timeout);
        assert_eq!(s.delay_tiers.len(), 5);
        let err =
            PipelineSettings::from_lookup(&|k| (k == "PMA_SSO_CONCURRENCY").then(|| "zero".into()))
                .expect_err("bad");
        assert_eq!(
            err.to_string(),
            "PMA_SSO_CONCURRENCY is invalid: expected a positive number"
        );
    }
}
