//! What an operator watches, read fresh at each request: every current service's state, the
//! last sweep and the next, jobs by status, the queues and the workers consuming them. The
//! status page shows it; `/metrics` exports it as gauges (rendered here from these rows at
//! scrape time, so a removed service's series disappears instead of keeping its last value).
//!
//! Metric names (also in the producer README and used by `deploy/prometheus/alerts.yml`):
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `pma_sso_service_state` | `service`, `state` | 1 for the service's state (green, red, error, unverified, never), 0 for the others |
//! | `pma_sso_service_last_check_timestamp_seconds` | `service` | last check or verify |
//! | `pma_sso_service_last_change_timestamp_seconds` | `service` | last write by add/fix/rotate |
//! | `pma_sso_service_red_sweeps` | `service` | latest sweep checks in a row that were red |
//! | `pma_sso_sweep_last_timestamp_seconds` | | when the last sweep ended |
//! | `pma_sso_sweep_last_duration_seconds` | | how long it ran |
//! | `pma_sso_sweep_last_success` | | 1 if it ran to the end, 0 if it failed |
//! | `pma_sso_sweep_services` | `result` | its services by result (in_sync, drifted, error) |
//! | `pma_sso_sweep_interval_seconds` | | time between two sweeps of `PMA_SSO_SWEEP_CRON` |
//! | `pma_sso_jobs` | `status` | jobs by status |
//! | `pma_sso_jobs_dead_unretried` | | dead jobs no `retry` took up yet |
//! | `pma_sso_queue_messages` | `queue` (work, dead) | messages waiting in RabbitMQ |
//! | `pma_sso_workers` | | consumers on the work queue: live workers |
//! | `pma_sso_broker_up` | | 1 if the broker answered this scrape |

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use sqlx::PgPool;
use worker::pipeline::client::{JobClient, QueueDepths};
use worker::pipeline::db::DbError;
use worker::pipeline::queries::{self, LastSweep, ServiceState};

use crate::commands::status::{current, result};

/// Every state a service can be in, for one-hot gauges.
pub const STATES: [&str; 5] = ["green", "red", "error", "unverified", "never"];

pub struct Signals {
    /// Current services (a manifest exists), each with its recorded state if any.
    pub services: Vec<(String, Option<ServiceState>)>,
    pub red_sweeps: Vec<(String, i64)>,
    pub sweep: Option<LastSweep>,
    pub next_sweep: Option<DateTime<Utc>>,
    pub sweep_interval: Option<Duration>,
    pub jobs: Vec<(String, i64)>,
    pub dead_unretried: i64,
    /// `None`: no broker to ask, or it did not answer.
    pub queues: Option<QueueDepths>,
}

impl Signals {
    pub async fn read(
        db: &PgPool,
        packages_dir: &Path,
        broker: Option<&JobClient>,
        cron: Option<&Cron>,
    ) -> Result<Signals, DbError> {
        let (states, red_sweeps, sweep, (jobs, dead_unretried)) = tokio::try_join!(
            queries::service_states(db),
            queries::red_sweeps(db),
            queries::last_sweep(db),
            queries::job_counts(db),
        )?;
        let queues = match broker {
            None => None,
            Some(client) => match client.queue_depths().await {
                Ok(depths) => Some(depths),
                Err(e) => {
                    tracing::warn!(error = %e, "reading queue depths");
                    None
                }
            },
        };
        let now = Utc::now();
        let next_sweep = cron.and_then(|c| c.find_next_occurrence(&now, false).ok());
        let sweep_interval = cron.zip(next_sweep).and_then(|(c, next)| {
            let after = c.find_next_occurrence(&next, false).ok()?;
            (after - next).to_std().ok()
        });
        Ok(Signals {
            services: current(&package_names(packages_dir), &states),
            red_sweeps,
            sweep,
            next_sweep,
            sweep_interval,
            jobs,
            dead_unretried,
            queues,
        })
    }

    /// A service's state as the page and the gauges name it.
    pub fn state_of(state: Option<&ServiceState>) -> &'static str {
        state.map_or("never", result)
    }

    /// How many services are in each of [`STATES`].
    pub fn counts(&self) -> [(&'static str, usize); 5] {
        STATES.map(|s| {
            (
                s,
                self.services
                    .iter()
                    .filter(|(_, st)| Self::state_of(st.as_ref()) == s)
                    .count(),
            )
        })
    }

    pub fn jobs_in(&self, status: &str) -> i64 {
        self.jobs
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n)
    }

    /// The Prometheus text exposition of these signals.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, help: &str, samples: Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let label = |pairs: &[(&str, &str)]| -> String {
            if pairs.is_empty() {
                return String::new();
            }
            let inner: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        };
        let ts = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_millis() as f64 / 1000.0);

        let mut states = Vec::new();
        let mut checked = Vec::new();
        let mut changed = Vec::new();
        for (name, state) in &self.services {
            let now = Self::state_of(state.as_ref());
            for s in STATES {
                states.push((
                    label(&[("service", name), ("state", s)]),
                    f64::from(u8::from(s == now)),
                ));
            }
            if let Some(t) = ts(state.as_ref().and_then(|s| s.last_check_at)) {
                checked.push((label(&[("service", name)]), t));
            }
            if let Some(t) = ts(state.as_ref().and_then(|s| s.last_change_at)) {
                changed.push((label(&[("service", name)]), t));
            }
        }
        family(
            "pma_sso_service_state",
            "1 for the service's current state (green, red, error, unverified, never).",
            states,
        );
        family(
            "pma_sso_service_last_check_timestamp_seconds",
            "When the service was last checked or verified.",
            checked,
        );
        family(
            "pma_sso_service_last_change_timestamp_seconds",
            "When add, fix or rotate last wrote something for the service.",
            changed,
        );
        let red: Vec<(String, f64)> = self
            .services
            .iter()
            .map(|(name, _)| {
                let n = self
                    .red_sweeps
                    .iter()
                    .find(|(s, _)| s == name)
                    .map_or(0, |(_, n)| *n);
                (label(&[("service", name)]), n as f64)
            })
            .collect();
        family(
            "pma_sso_service_red_sweeps",
            "How many of the service's latest sweep checks in a row were red.",
            red,
        );

        if let Some(sweep) = &self.sweep {
            family(
                "pma_sso_sweep_last_timestamp_seconds",
                "When the last sweep ended.",
                vec![(String::new(), ts(Some(sweep.finished_at)).unwrap_or(0.0))],
            );
            family(
                "pma_sso_sweep_last_duration_seconds",
                "How long the last sweep ran.",
                vec![(
                    String::new(),
                    f64::from(sweep.duration_ms.unwrap_or(0)) / 1000.0,
                )],
            );
            let ok = matches!(sweep.outcome, Some(schemas::job::Outcome::Swept { .. }));
            family(
                "pma_sso_sweep_last_success",
                "1 if the last sweep ran to the end, 0 if it failed.",
                vec![(String::new(), f64::from(u8::from(ok)))],
            );
            if let Some(schemas::job::Outcome::Swept { sweep }) = &sweep.outcome {
                family(
                    "pma_sso_sweep_services",
                    "The last sweep's services by result.",
                    vec![
                        (label(&[("result", "in_sync")]), sweep.in_sync as f64),
                        (label(&[("result", "drifted")]), sweep.drifted as f64),
                        (label(&[("result", "error")]), sweep.errors as f64),
                    ],
                );
            }
        }
        if let Some(every) = self.sweep_interval {
            family(
                "pma_sso_sweep_interval_seconds",
                "Time between two sweeps of PMA_SSO_SWEEP_CRON.",
                vec![(String::new(), every.as_secs_f64())],
            );
        }
        family(
            "pma_sso_jobs",
            "Jobs by status.",
            [
                "queued",
                "running",
                "retrying",
                "succeeded",
                "failed",
                "dead",
            ]
            .into_iter()
            .map(|s| (label(&[("status", s)]), self.jobs_in(s) as f64))
            .collect(),
        );
        family(
            "pma_sso_jobs_dead_unretried",
            "Dead jobs that no retry took up yet.",
            vec![(String::new(), self.dead_unretried as f64)],
        );
        family(
            "pma_sso_broker_up",
            "1 if RabbitMQ answered this scrape.",
            vec![(String::new(), f64::from(u8::from(self.queues.is_some())))],
        );
        if let Some(q) = self.queues {
            family(
                "pma_sso_queue_messages",
                "Messages waiting in RabbitMQ.",
                vec![
                    (label(&[("queue", "work")]), f64::from(q.work)),
                    (label(&[("queue", "dead")]), f64::from(q.dead)),
                ],
            );
            family(
                "pma_sso_workers",
                "Consumers on the work queue: live workers.",
                vec![(String::new(), f64::from(q.workers))],
            );
        }
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Every package directory with a manifest.
pub fn package_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().join(schemas::manifest::MANIFEST_FILE).is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}
