//! The local spool of job requests that could not be recorded (the database was down when a
//! git hook ran): `<state dir>/spool/*.json`, written atomically. `pma-sso enqueue` replays it
//! first, `pma-sso serve` on every relay pass and `pma-sso-worker` at start ([`replay`]), so
//! nothing waits for a manual step once PostgreSQL is back.

use std::io::Write;
use std::path::{Path, PathBuf};

use schemas::job::{Action, Trigger};
use serde::{Deserialize, Serialize};

use sqlx::PgPool;
use std::time::Duration;

/// One request for a job, as spooled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub service: String,
    pub action: Action,
    pub trigger: Trigger,
    pub trigger_ref: Option<String>,
}

pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub fn new(dir: PathBuf) -> Spool {
        Spool { dir }
    }

    /// The spool under pma-sso's state directory (`PMA_SSO_STATE_DIR`).
    pub fn in_state_dir(state_dir: &Path) -> Spool {
        Spool::new(state_dir.join("spool"))
    }

    /// Write one request atomically: a temp file, fsync, rename. A reader sees whole files only.
    pub fn add(&self, request: &Request) -> Result<PathBuf, String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let name = format!("{stamp}-{}", uuid::Uuid::new_v4().simple());
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(format!("{name}.json"));
        let body = serde_json::to_vec_pretty(request).map_err(|e| e.to_string())?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&body)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            // The rename itself must survive a crash too.
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("{}: {e}", path.display())
        })?;
        Ok(path)
    }

    /// Take every spooled request, oldest first. Each file is renamed before it is read, so two
    /// hooks replaying at once never both submit it.
    pub fn claim(&self) -> Vec<(PathBuf, Request)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        let mut claimed = Vec::new();
        for path in names {
            let taken = path.with_extension(format!("replaying-{}", std::process::id()));
            if std::fs::rename(&path, &taken).is_err() {
                continue;
            }
            let parsed = std::fs::read(&taken)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Request>(&bytes).ok());
            match parsed {
                Some(request) => claimed.push((taken, request)),
                None => {
                    // Keep an unreadable file for the operator instead of retrying it forever.
                    let _ = std::fs::rename(&taken, path.with_extension("unreadable"));
                    tracing::warn!(file = %path.display(), "unreadable spool file set aside");
                }
            }
        }
        claimed
    }

    pub fn done(&self, taken: &Path) {
        let _ = std::fs::remove_file(taken);
    }

    pub fn release(&self, taken: &Path) {
        let _ = std::fs::rename(taken, taken.with_extension("json"));
    }
}

/// Record every spooled request in the job table, oldest first, due at once: the relay
/// (which `serve` and every worker run) publishes it. Returns one line per request recorded;
/// one that still cannot be recorded stays in the spool, one that never can (a bad service
/// name) is set aside as `.unreadable`.
pub async fn replay(spool: &Spool, pool: &PgPool, max_attempts: u32) -> Vec<String> {
    let mut lines = Vec::new();
    for (file, request) in spool.claim() {
        if request.service.parse::<schemas::ServiceName>().is_err() {
            tracing::warn!(file = %file.display(), "spooled request names no valid service; set aside");
            let _ = std::fs::rename(&file, file.with_extension("unreadable"));
            continue;
        }
        let recorded = super::db::insert_or_coalesce(
            pool,
            &request.service,
            request.action,
            request.trigger,
            request.trigger_ref.as_deref(),
            max_attempts,
            Duration::ZERO,
        )
        .await;
        match recorded {
            Ok((id, _)) => {
                tracing::info!(job.id = %id, service = %request.service, action = request.action.as_str(), "spooled request recorded");
                lines.push(format!(
                    "{} for {}: job {id} (replayed from the spool)",
                    request.action, request.service
                ));
                spool.done(&file);
            }
            Err(e) => {
                tracing::warn!(error = %e, "spooled request not recorded yet");
                spool.release(&file);
            }
        }
    }
    lines
}

/// `serve`'s replay loop: the spool, every `interval`, until `shutdown`.
pub async fn run(
    spool: Spool,
    pool: PgPool,
    max_attempts: u32,
    interval: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        replay(&spool, &pool, max_attempts).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
