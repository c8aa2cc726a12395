//! `history <svc>`: recent jobs and their attempts — when, trigger, action, status, outcome,
//! the drift found (already redacted: a secret only ever "differs") and errors.

use std::io::Write;

use schemas::job::Outcome;
use worker::Context;
use worker::pipeline::queries::{self, JobHistory};

use super::Options;
use super::status::{database, when};
use crate::cli::{Status, fail};

/// The lines an outcome contributes: drift messages, actions taken, or the error.
pub(crate) fn details(outcome: &Outcome) -> Vec<String> {
    match outcome {
        Outcome::InSync { report } | Outcome::Drifted { report } => report
            .drifts
            .iter()
            .map(|d| format!("drift: {}", d.message))
            .chain(report.warnings.iter().map(|w| format!("warning: {w}")))
            .collect(),
        Outcome::Applied { applied } => applied
            .actions
            .iter()
            .map(|a| format!("did: {a}"))
            .collect(),
        Outcome::Failed { reason, .. } => vec![format!("error: {reason}")],
        Outcome::Rotated { applied, verified } => applied
            .actions
            .iter()
            .map(|a| format!("did: {a}"))
            .chain(
                verified
                    .drifts
                    .iter()
                    .map(|d| format!("drift: {}", d.message)),
            )
            .collect(),
        #[allow(unreachable_patterns)]
        _ => Vec::new(),
    }
}

fn trigger(job: &JobHistory) -> String {
    match &job.trigger_ref {
        Some(r) => format!("{} {r}", job.trigger),
        None => job.trigger.clone(),
    }
}

pub async fn run(
    ctx: &Context,
    opts: &Options,
    service: &str,
    limit: i64,
    out: &mut dyn Write,
) -> Status {
    let pipeline = match super::pipeline_settings(ctx) {
        Ok(p) => p,
        Err(e) => return fail(out, &e),
    };
    let pool = match database(&pipeline).await {
        Ok(p) => p,
        Err(e) => return fail(out, &e),
    };
    let jobs = match queries::history(&pool, service, limit.max(1)).await {
        Ok(j) => j,
        Err(e) => return fail(out, &e.to_string()),
    };
    pool.close().await;
    if opts.json {
        let rows: Vec<serde_json::Value> = jobs
            .iter()
            .map(|job| {
                serde_json::json!({
                    "id": job.id, "created_at": job.created_at, "finished_at": job.finished_at,
                    "trigger": job.trigger, "trigger_ref": job.trigger_ref,
                    "action": job.action.as_str(), "status": job.status.as_str(),
                    "outcome": job.outcome.as_ref().map(Outcome::label),
                    "details": job.outcome.as_ref().map(details).unwrap_or_default(),
                    "error": job.last_error,
                    "attempts": job.attempts.iter().map(|a| serde_json::json!({
                        "attempt": a.attempt, "worker": a.worker, "started_at": a.started_at,
                        "finished_at": a.finished_at, "outcome": a.outcome,
                        "duration_ms": a.duration_ms,
                        "details": a.detail.as_ref().map(details).unwrap_or_default(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(rows));
        return Status::Green;
    }
    if jobs.is_empty() {
        let _ = writeln!(out, "{service}: no jobs recorded");
        return Status::Green;
    }
    for job in &jobs {
        let label = job.outcome.as_ref().map_or("-", Outcome::label);
        let _ = writeln!(
            out,
            "{}  {} {}  {}  {}  job {}",
            when(Some(job.created_at)),
            job.action,
            trigger(job),
            job.status.as_str(),
            label,
            job.id
        );
        for attempt in &job.attempts {
            let duration = attempt
                .duration_ms
                .map_or_else(String::new, |ms| format!(", {ms} ms"));
            let _ = writeln!(
                out,
                "    attempt {} {} on {}: {}{duration}",
                attempt.attempt,
                when(Some(attempt.started_at)),
                attempt.worker,
                attempt.outcome
            );
            // The job's final outcome is printed once below; earlier attempts show their own.
            if attempt.attempt as usize != job.attempts.len()
                && let Some(detail) = &attempt.detail
            {
                for line in details(detail) {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
        match &job.outcome {
            Some(outcome) => {
                for line in details(outcome) {
                    let _ = writeln!(out, "    {line}");
                }
            }
            None => {
                if let Some(error) = &job.last_error {
                    let _ = writeln!(out, "    error: {error}");
                }
            }
        }
    }
    Status::Green
}
