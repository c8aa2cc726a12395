//! `doctor`: is everything pma-sso depends on there and usable? One line per check — database,
//! broker, token, authentik version, embedded outpost, packages — exit 2 if any fails. Each
//! check runs whatever the others found, so one run shows every problem.

use std::io::Write;
use std::time::Duration;

use worker::Context;
use worker::live::EMBEDDED_OUTPOST;
use worker::pipeline::{db, queue};

use crate::cli::Status;

/// The authentik releases pma-sso is tested against (year, month), inclusive.
pub const TESTED_FROM: (u32, u32) = (2025, 12);
pub const TESTED_TO: (u32, u32) = (2026, 2);
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// `2026.2.1`, `2025.12.0-rc1` → (year, month).
pub fn release(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().split(['.', '-']);
    let year = parts.next()?.parse().ok()?;
    let month = parts.next()?.parse().ok()?;
    Some((year, month))
}

pub fn in_tested_range(version: &str) -> bool {
    release(version).is_some_and(|r| (TESTED_FROM..=TESTED_TO).contains(&r))
}

async fn timed<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(CHECK_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| Err(format!("{what} did not answer within {CHECK_TIMEOUT:?}")))
}

async fn database(ctx: &Context) -> Result<String, String> {
    let pipeline = super::pipeline_settings(ctx)?;
    timed("PostgreSQL", async {
        let pool = db::connect(&pipeline.database_url, 1)
            .await
            .map_err(|e| format!("{e} (DATABASE_URL)"))?;
        let one: i32 = sqlx::query_scalar("select 1")
            .fetch_one(&pool)
            .await
            .map_err(|e| e.to_string())?;
        pool.close().await;
        debug_assert_eq!(one, 1);
        Ok("PostgreSQL answers".to_owned())
    })
    .await
}

async fn broker(ctx: &Context) -> Result<String, String> {
    let pipeline = super::pipeline_settings(ctx)?;
    timed("RabbitMQ", async {
        let conn = queue::connect(&pipeline.amqp_url)
            .await
            .map_err(|e| format!("{e} (AMQP_URL)"))?;
        let _ = conn.close(200, "doctor".into()).await;
        Ok("RabbitMQ answers".to_owned())
    })
    .await
}

async fn token(ctx: &Context) -> Result<String, String> {
    timed("authentik", async {
        let me = ctx.authentik.me().await.map_err(|e| e.to_string())?;
        let user = me
            .pointer("/user/username")
            .and_then(|v| v.as_str())
            .ok_or("authentik's /core/users/me/ named no user")?;
        Ok(format!("AUTHENTIK_TOKEN is valid (acts as {user})"))
    })
    .await
}

async fn version(ctx: &Context) -> Result<String, String> {
    timed("authentik", async {
        let v = ctx.authentik.version().await.map_err(|e| e.to_string())?;
        let current = v
            .get("version_current")
            .and_then(|v| v.as_str())
            .ok_or("/admin/version/ has no version_current")?;
        let range = format!(
            "tested {}.{}–{}.{}",
            TESTED_FROM.0, TESTED_FROM.1, TESTED_TO.0, TESTED_TO.1
        );
        if in_tested_range(current) {
            Ok(format!("authentik {current} ({range})"))
        } else {
            Err(format!("authentik {current} is outside the {range} range"))
        }
    })
    .await
}

async fn outpost(ctx: &Context) -> Result<String, String> {
    timed("authentik", async {
        let found = ctx
            .authentik
            .outposts_where("managed__iexact", EMBEDDED_OUTPOST)
            .await
            .map_err(|e| e.to_string())?;
        match found.first() {
            Some(o) => Ok(format!("embedded outpost present ({})", o.name)),
            None => Err(format!(
                "no outpost managed as {EMBEDDED_OUTPOST}: proxy services need it"
            )),
        }
    })
    .await
}

/// The managed objects authentik's blueprints create after a fresh start.
async fn builtins(ctx: &Context) -> Result<String, String> {
    timed("authentik", async {
        let missing = worker::live::missing_builtins(&ctx.authentik)
            .await
            .map_err(|e| e.to_string())?;
        match worker::live::not_ready_line(&missing) {
            None => Ok("authentik's managed scope mappings are present".to_owned()),
            Some(line) => Err(line),
        }
    })
    .await
}

fn packages(ctx: &Context) -> Result<String, String> {
    let dir = &ctx.settings.packages_dir;
    let loaded = schemas::load_packages(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let bad: Vec<String> = loaded
        .iter()
        .filter_map(|p| p.as_ref().err().map(ToString::to_string))
        .collect();
    if bad.is_empty() {
        Ok(format!("{} manifests valid", loaded.len()))
    } else {
        Err(bad.join("; "))
    }
}

pub async fn run(ctx: &Context, out: &mut dyn Write) -> Status {
    let results = [
        ("database", database(ctx).await),
        ("broker", broker(ctx).await),
        ("token", token(ctx).await),
        ("version", version(ctx).await),
        ("outpost", outpost(ctx).await),
        ("built-ins", builtins(ctx).await),
        ("packages", packages(ctx)),
    ];
    let mut status = Status::Green;
    for (name, result) in results {
        let _ = match result {
            Ok(line) => writeln!(out, "✓ {name} — {line}"),
            Err(e) => {
                status = Status::Error;
                writeln!(out, "❌ {name} — {e}")
            }
        };
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_in_and_out_of_the_tested_range() {
        for v in ["2025.12.0", "2026.1.3", "2026.2.1", "2026.2.0-rc1"] {
            assert!(in_tested_range(v), "{v}");
        }
        for v in ["2025.10.2", "2026.3.0", "2024.12.1", "main", ""] {
            assert!(!in_tested_range(v), "{v}");
        }
    }
}
