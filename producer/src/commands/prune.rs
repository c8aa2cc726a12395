//! `prune-history [--keep N]`: delete finished jobs beyond the newest N per service (default
//! `PMA_SSO_RETENTION_KEEP`, else 200); their attempts go with them.

use std::io::Write;

use worker::Context;
use worker::pipeline::queries;

use super::status::database;
use crate::cli::{Status, fail};

pub async fn run(ctx: &Context, keep: Option<i64>, out: &mut dyn Write) -> Status {
    let keep = match keep {
        Some(n) if n >= 1 => n,
        Some(_) => return fail(out, "--keep must be at least 1"),
        None => match crate::serve::retention::keep_from(&|k| std::env::var(k).ok()) {
            Ok(n) => n,
            Err(e) => return fail(out, &e),
        },
    };
    let pipeline = match super::pipeline_settings(ctx) {
        Ok(p) => p,
        Err(e) => return fail(out, &e),
    };
    let pool = match database(&pipeline).await {
        Ok(p) => p,
        Err(e) => return fail(out, &e),
    };
    let deleted = queries::prune_history(&pool, keep).await;
    pool.close().await;
    match deleted {
        Ok(n) => {
            let _ = writeln!(
                out,
                "deleted {n} finished jobs beyond the newest {keep} per service"
            );
            Status::Green
        }
        Err(e) => fail(out, &e.to_string()),
    }
}
