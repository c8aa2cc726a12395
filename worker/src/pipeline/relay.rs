//! The relay: republishes every non-terminal job whose lease ran out — a publish that was
//! never confirmed, a message lost in a broker restart, a worker that died mid-job, a delayed
//! retry copy that never came back. Nothing requested is lost, nothing waits forever.
//! Duplicates are harmless: a worker skips a message whose row is terminal.

use std::time::Duration;

use schemas::job::JobMessage;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::db;
use super::queue::{self, Publisher, Topology};

pub struct Relay {
    pub db: PgPool,
    pub amqp_url: String,
    pub topology: Topology,
    pub lease: Duration,
    pub interval: Duration,
}

impl Relay {
    /// One pass: republish what is due. Returns how many jobs were republished.
    pub async fn pass(&self, publisher: &Publisher) -> Result<usize, String> {
        let due = db::claim_expired(&self.db, self.lease, 100)
            .await
            .map_err(|e| e.to_string())?;
        let mut sent = 0;
        for (id, service, action) in due {
            if !JobMessage::valid_target(&service, action) {
                continue;
            }
            let body = serde_json::to_vec(&JobMessage {
                job_id: id.to_string(),
                service,
                action,
            })
            .unwrap_or_default();
            publisher
                .publish(
                    &self.topology.work_queue(),
                    &body,
                    lapin::types::FieldTable::default(),
                )
                .await
                .map_err(|e| e.to_string())?;
            db::mark_published(&self.db, id)
                .await
                .map_err(|e| e.to_string())?;
            sent += 1;
        }
        if sent > 0 {
            metrics::counter!("pma_sso_jobs_republished_total").increment(sent as u64);
            tracing::info!(
                republished = sent,
                "relay republished jobs whose lease ran out"
            );
        }
        Ok(sent)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut publisher: Option<(lapin::Connection, Publisher)> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.cancelled() => break,
            }
            if publisher
                .as_ref()
                .is_none_or(|(c, _)| !c.status().connected())
            {
                publisher = match queue::connect(&self.amqp_url).await {
                    Ok(conn) => match Publisher::new(&conn).await {
                        Ok(p) => Some((conn, p)),
                        Err(e) => {
                            tracing::warn!(error = %e, "relay: no publisher channel");
                            None
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "relay: broker unreachable");
                        None
                    }
                };
            }
            if let Some((_, p)) = &publisher
                && let Err(e) = self.pass(p).await
            {
                tracing::warn!(error = %e, "relay pass failed; retrying next tick");
                publisher = None;
            }
        }
        if let Some((conn, _)) = publisher {
            let _ = conn.close(200, "bye".into()).await;
        }
    }
}
