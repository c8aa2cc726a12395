//! `doctor`: is everything pma-sso depends on there and usable? One line per check — database,
//! broker, token, authentik version, embedded outpost, packages — exit 2 if any fails. Each
//! check runs whatever the others found, so one run shows every problem. `--inline` uses
//! neither the database nor the broker, so it does not check them. An error line is one short
//! sentence of ours: a driver's own wording (PostgreSQL's source line, sqlx's prefixes) is
//! reduced to its message.

use std::io::Write;
use std::time::Duration;

use sqlx::Connection;

use worker::Context;
use worker::authentik::rbac::PERMISSIONS;
use worker::live::EMBEDDED_OUTPOST;
use worker::pipeline::queue;

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

/// PostgreSQL's own message, without sqlx's prefix or the server's source location.
fn database_problem(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "no connection within the pool's timeout".to_owned(),
        other => one_sentence(&other.to_string()),
    }
}

/// The first sentence of another program's message, without a trailing period.
fn one_sentence(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    let first = first.split(". ").next().unwrap_or(first);
    // The OS error number and the drivers' own labels say nothing to an operator.
    let first = first.split(" (os error").next().unwrap_or(first);
    let first = first
        .trim_start_matches("broker: ")
        .trim_start_matches("IO error: ");
    first.trim().trim_end_matches('.').to_owned()
}

async fn database(ctx: &Context) -> Result<String, String> {
    let pipeline = super::pipeline_settings(ctx)?;
    timed("PostgreSQL", async {
        // One plain connection: a pool would retry until its timeout and then say only that.
        let mut conn = sqlx::PgConnection::connect(&pipeline.database_url)
            .await
            .map_err(|e| format!("PostgreSQL refused DATABASE_URL: {}", database_problem(&e)))?;
        let one: i32 = sqlx::query_scalar("select 1")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| database_problem(&e))?;
        let _ = conn.close().await;
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
            .map_err(|e| format!("RabbitMQ at AMQP_URL: {}", one_sentence(&e.to_string())))?;
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

/// A permissions finding: an error (`false`) or a warning (`true`).
type Finding = (bool, String);

/// With `PMA_SSO_LEAST_PRIVILEGE`: the permissions the token's roles hold (read with its own
/// token from `/rbac/permissions/?role=`), against the list pma-sso needs. A missing one is an
/// error, an excess one a warning, each named. `Ok` is the line when all is well.
async fn permissions(ctx: &Context) -> Result<String, Vec<Finding>> {
    let read = timed("authentik", async {
        let me = ctx.authentik.me().await.map_err(|e| e.to_string())?;
        let superuser = me.pointer("/user/is_superuser").and_then(|v| v.as_bool()) == Some(true);
        let roles: Vec<(String, String)> = me
            .pointer("/user/roles")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r["pk"].as_str()?.to_owned(), r["name"].as_str()?.to_owned())))
            .collect();
        let mut held = std::collections::BTreeSet::new();
        for (pk, _) in &roles {
            let perms = ctx
                .authentik
                .role_permissions(pk)
                .await
                .map_err(|e| e.to_string())?;
            held.extend(perms);
        }
        Ok((superuser, roles, held))
    })
    .await;
    let (superuser, roles, held) = read.map_err(|e| vec![(false, e)])?;
    if superuser {
        return Err(vec![(
            true,
            "PMA_SSO_LEAST_PRIVILEGE is set but the token is a superuser's".to_owned(),
        )]);
    }
    let missing: Vec<&str> = PERMISSIONS
        .iter()
        .copied()
        .filter(|p| !held.contains(*p))
        .collect();
    let excess: Vec<&str> = held
        .iter()
        .map(String::as_str)
        .filter(|p| !PERMISSIONS.contains(p))
        .collect();
    let mut findings = Vec::new();
    if !missing.is_empty() {
        findings.push((
            false,
            format!("the token's roles lack {}", missing.join(", ")),
        ));
    }
    if !excess.is_empty() {
        findings.push((
            true,
            format!(
                "the token's roles hold more than pma-sso needs: {}",
                excess.join(", ")
            ),
        ));
    }
    if findings.is_empty() {
        let names: Vec<&str> = roles.iter().map(|(_, n)| n.as_str()).collect();
        Ok(format!(
            "the {} permissions pma-sso needs, from role {}",
            PERMISSIONS.len(),
            names.join(", ")
        ))
    } else {
        Err(findings)
    }
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

/// A check that the chosen mode does not need.
const UNUSED: &str = "not checked: --inline uses neither PostgreSQL nor RabbitMQ";

pub async fn run(ctx: &Context, inline: bool, out: &mut dyn Write) -> Status {
    let (database, broker) = if inline {
        (None, None)
    } else {
        (Some(database(ctx).await), Some(broker(ctx).await))
    };
    let results = [
        ("database", database),
        ("broker", broker),
        ("token", Some(token(ctx).await)),
        ("version", Some(version(ctx).await)),
        ("outpost", Some(outpost(ctx).await)),
        ("built-ins", Some(builtins(ctx).await)),
        ("packages", Some(packages(ctx))),
    ];
    let mut status = Status::Green;
    let permissions = if ctx.settings.least_privilege {
        Some(permissions(ctx).await)
    } else {
        None
    };
    for (name, result) in results {
        let _ = match result {
            None => writeln!(out, "· {name} — {UNUSED}"),
            Some(Ok(line)) => writeln!(out, "✓ {name} — {line}"),
            Some(Err(e)) => {
                status = Status::Error;
                writeln!(out, "❌ {name} — {e}")
            }
        };
    }
    match permissions {
        None => {}
        Some(Ok(line)) => {
            let _ = writeln!(out, "✓ permissions — {line}");
        }
        Some(Err(findings)) => {
            for (warning, text) in findings {
                if warning {
                    let _ = writeln!(out, "⚠ permissions — {text}");
                } else {
                    status = Status::Error;
                    let _ = writeln!(out, "❌ permissions — {text}");
                }
            }
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_programs_message_is_cut_to_its_first_sentence() {
        assert_eq!(
            one_sentence("connection refused. Is the server running?\nmore"),
            "connection refused"
        );
        assert_eq!(one_sentence("plain."), "plain");
        assert_eq!(
            one_sentence("broker: IO error: Connection refused (os error 111)"),
            "Connection refused"
        );
    }

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
