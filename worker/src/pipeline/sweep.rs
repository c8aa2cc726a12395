//! The sweep: one job that checks every service from one bulk read of authentik.
//!
//! `Context::check_all` reads authentik once (`Snapshot::fetch_all`: a handful of paginated
//! list calls, whatever the number of services), so a sweep of a thousand services costs what
//! a sweep of one does. Each service's result is recorded as a finished `check` job of its own
//! (trigger `cron`, `trigger_ref` = the sweep's id) together with its `service_state`, so
//! `status` and `history` read a sweep like any other check. Then the follow-ups: `add` for a
//! manifest still `configured: false`, `fix` for a drifted one that opts into `auto_fix`.
//!
//! Services that opt into probing (`probe: true` in the manifest, or every service with
//! `PMA_SSO_PROBE=all`; `none` turns it off) are also verified — their login path walked
//! against authentik's protocol endpoints, from one more bulk read — and each result is
//! recorded as a finished `verify` job (trigger `cron`) with its service state, after the
//! checks, so `status` shows the probe.

use schemas::job::{Action, JobMessage, Outcome, SweepSummary, Trigger};
use schemas::{Manifest, Package};
use sqlx::PgPool;
use uuid::Uuid;

use super::PipelineSettings;
use super::db::{self, DbError};
use super::queue::{Publisher, Topology};
use crate::context::Context;
use crate::error::FlowError;
use crate::verify::{self, ProbeSetting};

pub struct Sweep<'a> {
    pub ctx: &'a Context,
    pub db: &'a PgPool,
    pub settings: &'a PipelineSettings,
    pub topology: &'a Topology,
    pub publisher: &'a Publisher,
}

/// The job a sweep asks for after checking one service, if any.
pub fn follow_up(manifest: &Manifest, outcome: &Outcome) -> Option<Action> {
    if !manifest.configured() {
        Some(Action::Add)
    } else if manifest.auto_fix() && matches!(outcome, Outcome::Drifted { .. }) {
        Some(Action::Fix)
    } else {
        None
    }
}

fn record_error(e: impl std::fmt::Display) -> FlowError {
    FlowError::SweepRecord(e.to_string())
}

impl Sweep<'_> {
    /// Run the sweep whose job row is `sweep_job`.
    pub async fn run(&self, sweep_job: Uuid) -> Result<SweepSummary, FlowError> {
        // A bad setting fails the sweep before anything is recorded, naming the setting.
        let probe = ProbeSetting::read(self.ctx)?;
        let results = self.ctx.check_all().await?;
        let mut summary = SweepSummary {
            services: results.len(),
            ..SweepSummary::default()
        };
        let mut follow_ups = Vec::new();
        let mut probed = Vec::new();
        let trigger_ref = sweep_job.to_string();
        // One transaction for every service's row: a sweep's record is all or nothing, and
        // a thousand services commit once.
        let mut tx = self.db.begin().await.map_err(record_error)?;
        for result in results {
            let outcome = match result.outcome {
                Ok(report) if report.in_sync() => {
                    summary.in_sync += 1;
                    Outcome::InSync { report }
                }
                Ok(report) => {
                    summary.drifted += 1;
                    Outcome::Drifted { report }
                }
                Err(e) => {
                    summary.errors += 1;
                    Outcome::Failed {
                        reason: e.to_string(),
                        transient: e.is_transient(),
                    }
                }
            };
            record_result(
                &mut tx,
                &result.service,
                Action::Check,
                &trigger_ref,
                self.settings.retry.max_attempts,
                &outcome,
            )
            .await
            .map_err(record_error)?;
            // A manifest that does not parse produced a failed check above and asks for nothing.
            let package: Result<Package, _> = self.ctx.package(&result.service);
            if let Ok(package) = package {
                if probe.probes(&package.manifest) {
                    probed.push(result.service.clone());
                }
                if let Some(action) = follow_up(&package.manifest, &outcome) {
                    follow_ups.push((result.service, action));
                }
            }
        }
        tx.commit().await.map_err(record_error)?;

        if !probed.is_empty() {
            // The checks are committed: a probe pass that cannot read authentik is recorded
            // as every probe's failure rather than failing (and re-running) the whole sweep.
            let verified: Vec<(String, Outcome)> =
                match verify::verify_some(self.ctx, probed.clone()).await {
                    Ok(all) => all
                        .into_iter()
                        .map(|r| {
                            let outcome = match r.outcome {
                                Ok(report) if report.in_sync() => Outcome::InSync { report },
                                Ok(report) => Outcome::Drifted { report },
                                Err(e) => Outcome::Failed {
                                    reason: e.to_string(),
                                    transient: e.is_transient(),
                                },
                            };
                            (r.service, outcome)
                        })
                        .collect(),
                    Err(e) => probed
                        .into_iter()
                        .map(|name| {
                            let outcome = Outcome::Failed {
                                reason: e.to_string(),
                                transient: e.is_transient(),
                            };
                            (name, outcome)
                        })
                        .collect(),
                };
            summary.probed = verified.len();
            let mut tx = self.db.begin().await.map_err(record_error)?;
            for (service, outcome) in verified {
                if !matches!(outcome, Outcome::InSync { .. }) {
                    summary.probe_failures += 1;
                }
                record_result(
                    &mut tx,
                    &service,
                    Action::Verify,
                    &trigger_ref,
                    self.settings.retry.max_attempts,
                    &outcome,
                )
                .await
                .map_err(record_error)?;
            }
            tx.commit().await.map_err(record_error)?;
        }

        for (service, action) in follow_ups {
            self.enqueue(&service, action, &trigger_ref)
                .await
                .map_err(record_error)?;
            summary.enqueued.push(format!("{action} {service}"));
        }
        tracing::info!(
            services = summary.services,
            drifted = summary.drifted,
            errors = summary.errors,
            probed = summary.probed,
            probe_failures = summary.probe_failures,
            enqueued = summary.enqueued.len(),
            "sweep finished"
        );
        Ok(summary)
    }

    /// Record, then publish; a failed publish is left to the relay, as `JobClient::enqueue`
    /// does. Coalesces with a job already waiting for the same service and action.
    async fn enqueue(
        &self,
        service: &str,
        action: Action,
        trigger_ref: &str,
    ) -> Result<(), DbError> {
        let (id, coalesced) = db::insert_or_coalesce(
            self.db,
            service,
            action,
            Trigger::Cron,
            Some(trigger_ref),
            self.settings.retry.max_attempts,
            self.settings.lease,
        )
        .await?;
        if coalesced {
            return Ok(());
        }
        let body = serde_json::to_vec(&JobMessage {
            job_id: id.to_string(),
            service: service.to_owned(),
            action,
        })
        .unwrap_or_default();
        match self
            .publisher
            .publish(
                &self.topology.work_queue(),
                &body,
                lapin::types::FieldTable::default(),
            )
            .await
        {
            Ok(()) => db::mark_published(self.db, id).await,
            Err(e) => {
                tracing::warn!(job.id = %id, error = %e, "publish failed; the relay will republish the job");
                Ok(())
            }
        }
    }
}

/// One service's result as a finished `check` (or `verify`) job with its attempt, and its
/// service state.
async fn record_result(
    conn: &mut sqlx::PgConnection,
    service: &str,
    action: Action,
    trigger_ref: &str,
    max_attempts: u32,
    outcome: &Outcome,
) -> Result<(), DbError> {
    let id = Uuid::new_v4();
    let (status, last_error) = match outcome {
        Outcome::Failed { reason, .. } => ("failed", Some(reason.as_str())),
        _ => ("succeeded", None),
    };
    let json = serde_json::to_value(outcome).map_err(|_| DbError::Corrupt(id, "outcome"))?;
    sqlx::query(
        "insert into jobs (id, service, action, trigger, trigger_ref, status, attempts, max_attempts,
                           last_error, outcome, published_at, finished_at)
         values ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, null, now())",
    )
    .bind(id)
    .bind(service)
    .bind(action.as_str())
    .bind(Trigger::Cron.as_str())
    .bind(trigger_ref)
    .bind(status)
    .bind(max_attempts as i32)
    .bind(last_error)
    .bind(&json)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "insert into attempts (job_id, attempt, worker, finished_at, outcome, detail, duration_ms)
         values ($1, 1, 'sweep', now(), $2, $3, 0)",
    )
    .bind(id)
    .bind(outcome.label())
    .bind(&json)
    .execute(&mut *conn)
    .await?;
    db::record_service_state(conn, service, id, outcome).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::outcome::{Drift, Report};

    fn manifest(extra: &str) -> Manifest {
        let yaml = format!("name: grafana\nsso:\n  type: oidc\n  redirect_path: /cb\n{extra}");
        schemas::parse_manifest(std::path::Path::new("grafana/manifest.yaml"), &yaml)
            .expect("manifest")
    }

    fn report(drifted: bool) -> Report {
        Report {
            service: "grafana".into(),
            kind: schemas::SsoKind::Oidc,
            summary: "ok".into(),
            drifts: if drifted {
                vec![Drift {
                    field: "provider.redirect_uris".into(),
                    message: "redirect URI mismatch".into(),
                    remedy: "set the redirect URIs".into(),
                }]
            } else {
                Vec::new()
            },
            warnings: Vec::new(),
            objects: Default::default(),
            unverified: Vec::new(),
        }
    }

    #[test]
    fn a_sweep_adds_unconfigured_services_and_fixes_only_drifted_auto_fix_ones() {
        let drifted = Outcome::Drifted {
            report: report(true),
        };
        let in_sync = Outcome::InSync {
            report: report(false),
        };
        let unconfigured = manifest("  configured: false\n");
        let watched = manifest("  configured: true\n");
        let repaired = manifest("  configured: true\n  auto_fix: true\n");
        assert_eq!(follow_up(&unconfigured, &in_sync), Some(Action::Add));
        assert_eq!(follow_up(&watched, &drifted), None);
        assert_eq!(follow_up(&repaired, &drifted), Some(Action::Fix));
        assert_eq!(follow_up(&repaired, &in_sync), None);
    }
}
