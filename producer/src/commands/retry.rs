//! `retry <job-id>` / `retry --dead` / `retry --failed`: a new job for the same service and
//! action (trigger `cli`, trigger_ref `retry:<old id>`). The old row stays as history; a job
//! already retried is not retried again by `--dead`/`--failed`.

use std::io::Write;

use schemas::job::{JobStatus, Trigger};
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
