//! The job message that travels over RabbitMQ and the vocabulary of the jobs table.
//!
//! A message names a job and nothing more that matters: the worker re-reads the job row, the
//! manifest, `.env` and authentik every time (level-triggered), so a stale or duplicated
//! message can never carry stale intent.

use serde::{Deserialize, Serialize};

use crate::names::ServiceName;
use crate::outcome::{Applied, Report};

/// What an operator (or a trigger) asked for a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Check,
    Add,
    Fix,
    /// Check every service from one bulk read of authentik, record one outcome per service,
    /// and enqueue `add`/`fix` where the manifests ask for it. Its job's service is
    /// [`SWEEP_TARGET`].
    Sweep,
    /// Walk the service's login path against authentik's protocol endpoints with the values
    /// the service holds; recorded like a check (a failed probe is drift with its reason).
    Verify,
    /// A new client secret: `.env`, then authentik and the service (a `fix`), then `verify`.
    /// Runs under the service's lock like `fix`.
    Rotate,
}

/// The `service` of a sweep job: it covers every service, and no manifest can be named so.
pub const SWEEP_TARGET: &str = "*";

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Check => "check",
            Action::Add => "add",
            Action::Fix => "fix",
            Action::Sweep => "sweep",
            Action::Verify => "verify",
            Action::Rotate => "rotate",
        }
    }

    pub const ALL: [Action; 6] = [
        Action::Check,
        Action::Add,
        Action::Fix,
        Action::Sweep,
        Action::Verify,
        Action::Rotate,
    ];

    pub fn parse(value: &str) -> Option<Action> {
        Self::ALL.into_iter().find(|a| a.as_str() == value)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Cli,
    Webhook,
    Git,
    Cron,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cli => "cli",
            Trigger::Webhook => "webhook",
            Trigger::Git => "git",
            Trigger::Cron => "cron",
        }
    }
}

/// The body of a queue message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobMessage {
    /// The job row's id (a UUID, as text).
    pub job_id: String,
    /// Carried for logs and routing only; the row is authoritative. A service name, or
    /// [`SWEEP_TARGET`] for a sweep (see [`JobMessage::valid_target`]).
    pub service: String,
    pub action: Action,
}

impl JobMessage {
    /// Decode a delivery body; the error says why it is not a job, for the dead-letter record.
    pub fn decode(body: &[u8]) -> Result<JobMessage, String> {
        if body.len() > 4096 {
            return Err(format!(
                "{} bytes is too large for a job message",
                body.len()
            ));
        }
        // The reason goes into a header and a log line: serde's message quotes the offending
        // text (an unknown action, say), which may be long or span lines.
        let message: JobMessage = serde_json::from_slice(body)
            .map_err(|e| format!("not a job message: {}", shown(&e.to_string())))?;
        if message.job_id.len() != 36 || message.job_id.bytes().filter(|b| *b == b'-').count() != 4
        {
            return Err("not a job message: job_id is not a UUID".into());
        }
        if !Self::valid_target(&message.service, message.action) {
            return Err(format!(
                "not a job message: `{}` is not a service name",
                shown(&message.service)
            ));
        }
        Ok(message)
    }

    /// A sweep targets [`SWEEP_TARGET`]; every other action a valid service name.
    pub fn valid_target(service: &str, action: Action) -> bool {
        match action {
            Action::Sweep => service == SWEEP_TARGET,
            _ => service.parse::<ServiceName>().is_ok(),
        }
    }
}

/// `text` on one line and at most [`MAX_SHOWN`] characters, for reasons built from input.
fn shown(text: &str) -> String {
    let escaped: String = text.escape_debug().collect();
    if escaped.chars().count() > MAX_SHOWN {
        let cut: String = escaped.chars().take(MAX_SHOWN).collect();
        format!("{cut}…")
    } else {
        escaped
    }
}

const MAX_SHOWN: usize = 200;

/// Lifecycle of a job row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Retrying,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Retrying => "retrying",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
        }
    }

    pub fn parse(value: &str) -> Option<JobStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Dead
        )
    }
}

/// What a finished attempt produced, as stored in `jobs.outcome` and `attempts.detail`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// A check found everything as the manifest says.
    InSync { report: Report },
    /// A check found drift (the report lists it, secrets redacted).
    Drifted { report: Report },
    /// An add or fix converged; `applied.actions` is empty when nothing needed writing.
    Applied { applied: Applied },
    /// The attempt failed; `reason` is operator-readable and secret-free.
    Failed { reason: String, transient: bool },
    /// A sweep ran: every service's own outcome is recorded with it as a `check` job.
    Swept { sweep: SweepSummary },
    /// A rotation ran: what it changed, and `verify` afterwards. The old and new secrets
    /// appear in `applied.actions` only as keyed fingerprints.
    Rotated { applied: Applied, verified: Report },
}

/// What one sweep found and asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepSummary {
    pub services: usize,
    pub in_sync: usize,
    pub drifted: usize,
    pub errors: usize,
    /// `"add grafana"`, `"fix redmine"`: the jobs the sweep enqueued.
    pub enqueued: Vec<String>,
    /// Services whose login path the sweep also probed (`probe: true` or `PMA_SSO_PROBE=all`),
    /// each recorded as a `verify` job.
    #[serde(default)]
    pub probed: usize,
    /// Probes that were red or could not be made.
    #[serde(default)]
    pub probe_failures: usize,
}

impl SweepSummary {
    pub fn line(&self) -> String {
        let mut line = format!(
            "swept {} services: {} in sync, {} drifted, {} errors",
            self.services, self.in_sync, self.drifted, self.errors
        );
        if self.probed > 0 {
            line.push_str(&format!(
                "; probed {} login paths, {} red",
                self.probed, self.probe_failures
            ));
        }
        if !self.enqueued.is_empty() {
            line.push_str("; enqueued ");
            line.push_str(&self.enqueued.join(", "));
        }
        line
    }
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::InSync { .. } => "in_sync",
            Outcome::Drifted { .. } => "drifted",
            Outcome::Applied { applied } if applied.actions.is_empty() => "unchanged",
            Outcome::Applied { .. } => "updated",
            Outcome::Failed { .. } => "failed",
            Outcome::Swept { .. } => "swept",
            Outcome::Rotated { verified, .. } if verified.in_sync() => "rotated",
            Outcome::Rotated { .. } => "rotated_red",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_that_are_not_jobs_say_why() {
        assert!(
            JobMessage::decode(b"hello")
                .expect_err("text")
                .contains("not a job message")
        );
        assert!(
            JobMessage::decode(br#"{"job_id":"x","service":"grafana","action":"check"}"#)
                .expect_err("id")
                .contains("UUID")
        );
        assert!(JobMessage::decode(br#"{"job_id":"6f1c2d3e-0000-4000-8000-000000000000","service":"Bad Name","action":"check"}"#).is_err());
        assert!(
            JobMessage::decode(&vec![b' '; 5000])
                .expect_err("big")
                .contains("too large")
        );
        let ok = JobMessage::decode(br#"{"job_id":"6f1c2d3e-0000-4000-8000-000000000000","service":"grafana","action":"fix"}"#).expect("job");
        assert_eq!(ok.action, Action::Fix);
        let sweep = JobMessage::decode(
            br#"{"job_id":"6f1c2d3e-0000-4000-8000-000000000000","service":"*","action":"sweep"}"#,
        )
        .expect("sweep");
        assert_eq!(sweep.action, Action::Sweep);
        assert!(JobMessage::decode(br#"{"job_id":"6f1c2d3e-0000-4000-8000-000000000000","service":"*","action":"check"}"#).is_err());
        assert!(JobMessage::decode(br#"{"job_id":"6f1c2d3e-0000-4000-8000-000000000000","service":"grafana","action":"sweep"}"#).is_err());
        let rotate = JobMessage::decode(br#"{"job_id":"6f1c2d3e-0000-4000-8000-000000000000","service":"grafana","action":"rotate"}"#).expect("rotate");
        assert_eq!(rotate.action, Action::Rotate);
        assert!(JobMessage::decode(br#"{"job_id":"6f1c2d3e-0000-4000-8000-000000000000","service":"*","action":"verify"}"#).is_err());
    }

    #[test]
    fn every_action_round_trips_through_its_name() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
            let json = serde_json::to_string(&action).expect("json");
            assert_eq!(json, format!("\"{}\"", action.as_str()));
        }
        assert_eq!(Action::parse("rotate-all"), None);
    }
}
