//! `retry <job-id>` / `retry --dead` / `retry --failed`: a new job for the same service and
//! action (trigger `cli`, trigger_ref `retry:<old id>`). The old row stays as history; a job
//! already retried is not retried again by `--dead`/`--failed`.
//!
//! A job whose failure retrying cannot fix is skipped, saying why: its service has no manifest
//! any more, its manifest does not parse, or authentik refused the request as invalid (a 400:
//! the request would be the same). Fix the cause, then `fix <svc>`; `--all` retries them anyway.

use std::io::Write;

use schemas::job::{Action, JobStatus, Trigger};
use uuid::Uuid;
use worker::Context;
use worker::pipeline::queries::{self, Retryable};

use super::Options;
use crate::cli::{Status, fail};

pub async fn run(
    ctx: &Context,
    opts: &Options,
    job: Option<&str>,
    dead: bool,
    failed: bool,
    all: bool,
    out: &mut dyn Write,
) -> Status {
    let pipeline = match super::pipeline_settings(ctx) {
        Ok(p) => p,
        Err(e) => return fail(out, &e),
    };
    let client = match super::job_client(&pipeline).await {
        Ok(c) => c,
        Err(e) => return fail(out, &e),
    };
    let targets: Result<Vec<Retryable>, String> = match (job, dead || failed) {
        (Some(id), false) => match Uuid::parse_str(id) {
            Err(_) => Err(format!("`{id}` is not a job id")),
            Ok(id) => match queries::retryable_job(&client.db, id).await {
                Err(e) => Err(e.to_string()),
                Ok(None) => Err(format!("no job {id}")),
                Ok(Some(j)) if matches!(j.status, JobStatus::Dead | JobStatus::Failed) => {
                    Ok(vec![j])
                }
                Ok(Some(j)) => Err(format!(
                    "job {id} is {}; only dead or failed jobs are retried",
                    j.status.as_str()
                )),
            },
        },
        (None, true) => {
            let mut statuses = Vec::new();
            if dead {
                statuses.push(JobStatus::Dead);
            }
            if failed {
                statuses.push(JobStatus::Failed);
            }
            queries::not_yet_retried(&client.db, &statuses)
                .await
                .map_err(|e| e.to_string())
        }
        _ => Err("give a job id, or --dead and/or --failed".into()),
    };
    let targets = match targets {
        Ok(t) => t,
        Err(e) => {
            client.close().await;
            return fail(out, &e);
        }
    };
    let mut status = Status::Green;
    let mut rows = Vec::new();
    if targets.is_empty() && !opts.json {
        let _ = writeln!(out, "nothing to retry");
    }
    for old in &targets {
        if !all && let Some(why) = cannot_succeed(ctx, old) {
            if opts.json {
                rows.push(serde_json::json!({
                    "skipped": old.id, "service": old.service,
                    "action": old.action.as_str(), "reason": why,
                }));
            } else {
                let _ = writeln!(
                    out,
                    "skipped {} {} for {} (job {}): {why}; retrying cannot fix that (--all retries it anyway)",
                    old.status.as_str(),
                    old.action,
                    old.service,
                    old.id
                );
            }
            continue;
        }
        let trigger_ref = format!("retry:{}", old.id);
        match client
            .enqueue(&old.service, old.action, Trigger::Cli, Some(&trigger_ref))
            .await
        {
            Ok(new) => {
                if opts.json {
                    rows.push(serde_json::json!({
                        "retried": old.id, "job": new.id, "service": old.service,
                        "action": old.action.as_str(), "coalesced": new.coalesced,
                    }));
                } else {
                    let joined = if new.coalesced {
                        " (joined the job already waiting)"
                    } else {
                        ""
                    };
                    let _ = writeln!(
                        out,
                        "retried {} {} for {}: job {} → job {}{joined}",
                        old.status.as_str(),
                        old.action,
                        old.service,
                        old.id,
                        new.id
                    );
                }
            }
            Err(e) => {
                status = Status::Error;
                let _ = writeln!(out, "error: retrying job {}: {e}", old.id);
            }
        }
    }
    if opts.json {
        let _ = writeln!(out, "{}", serde_json::Value::Array(rows));
    }
    client.close().await;
    status
}

/// Why retrying this job cannot succeed, if it cannot.
fn cannot_succeed(ctx: &Context, job: &Retryable) -> Option<String> {
    if job.action == Action::Sweep {
        return None;
    }
    let file = ctx
        .settings
        .packages_dir
        .join(&job.service)
        .join(schemas::manifest::MANIFEST_FILE);
    if !file.is_file() {
        return Some(format!("no manifest ({} does not exist)", file.display()));
    }
    if let Err(e) = ctx.package(&job.service) {
        return Some(format!("invalid manifest: {e}"));
    }
    job.last_error
        .as_deref()
        .filter(|e| e.contains("authentik rejected the request"))
        .map(|e| format!("authentik refused the request as invalid ({e})"))
}
