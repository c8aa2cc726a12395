//! History retention: finished jobs beyond the newest `PMA_SSO_RETENTION_KEEP` (200) per
//! service are deleted, attempts with them. `serve` prunes at start-up and then hourly; every
//! `serve` may do so (a delete of what is already gone is a no-op, so no leader is needed).

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use worker::pipeline::queries;

pub const DEFAULT_KEEP: i64 = 200;
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// `PMA_SSO_RETENTION_KEEP`: at least 1, so a service's newest job (its status) stays.
pub fn keep_from(get: &dyn Fn(&str) -> Option<String>) -> Result<i64, String> {
    match get("PMA_SSO_RETENTION_KEEP") {
        None => Ok(DEFAULT_KEEP),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                format!("PMA_SSO_RETENTION_KEEP is invalid: expected a whole number ≥ 1, got `{v}`")
            }),
    }
}

pub async fn run(db: PgPool, keep: i64, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match queries::prune_history(&db, keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, keep, "pruned job history"),
            Err(e) => tracing::warn!(error = %e, "pruning job history"),
        }
    }
}
