//! `enqueue --changed <from>..<to>` (what the git hooks run) and `enqueue --replay-spool`.
//!
//! Fast, and it never loses a request: the job row is what matters. With the database and the
//! broker up, a job is recorded and published; with the broker down, the row is recorded and
//! the relay publishes it; with the database down too, the request is written to a local spool
//! (`<state dir>/spool/*.json`, atomic writes) that the next `enqueue` replays first.
//! It needs no authentik settings, so a half-configured checkout still commits.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use schemas::job::{Action, Trigger};
use sqlx::PgPool;
use worker::envfile::EnvFile;
use worker::pipeline::PipelineSettings;
use worker::pipeline::client::JobClient;
use worker::pipeline::db;
use worker::pipeline::spool::{Request, Spool};

use super::git_hook::EMPTY_TREE;
use crate::cli::{Status, fail};

/// How long the hook may wait for each of the database and the broker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether a hook's commit counts: HEAD is on the deploy branch (`PMA_SSO_DEPLOY_BRANCH`,
/// else the branch the hook was installed on). `Err` says why not.
fn on_deploy_branch(repo: &Path, local: &LocalSettings, installed: &str) -> Result<(), String> {
    let deploy = local.deploy_branch.as_deref().unwrap_or(installed);
    match super::git_hook::current_branch(repo)? {
        Some(branch) if branch == deploy => Ok(()),
        Some(branch) => Err(format!(
            "{branch} is not the deploy branch ({deploy}): nothing queued"
        )),
        None => Err(format!(
            "HEAD is detached (a rebase in progress?), not on the deploy branch ({deploy}): nothing queued"
        )),
    }
}

pub async fn run(
    changed: Option<&str>,
    replay_only: bool,
    repo: Option<&Path>,
    deploy_branch: Option<&str>,
    out: &mut dyn Write,
) -> Status {
    let local = LocalSettings::read();
    let mut status = Status::Green;
    let mut requests = Vec::new();
    match (changed, replay_only) {
        (Some(range), false) => {
            let repo = repo.unwrap_or(Path::new("."));
            let counts = match deploy_branch {
                Some(installed) => on_deploy_branch(repo, &local, installed),
                None => Ok(()),
            };
            let found = match counts {
                Ok(()) => changed_manifests(repo, range),
                Err(note) => {
                    let _ = writeln!(out, "pma-sso: {note}");
                    Ok(Changes::default())
                }
            };
            match found {
                Ok(found) => {
                    for line in &found.notes {
                        let _ = writeln!(out, "pma-sso: {line}");
                    }
                    if found.bad_manifest {
                        status = Status::Error;
                    }
                    requests = found.requests;
                }
                Err(e) => return fail(out, &e),
            }
        }
        (None, true) => {}
        _ => return fail(out, "give either --changed <from>..<to> or --replay-spool"),
    }
    let spool = Spool::in_state_dir(&local.state_dir);
    let store = Store::open(local.pipeline.as_ref()).await;
    // Older requests first: the spool, then this run's.
    for (file, request) in spool.claim() {
        match store.submit(&request).await {
            Ok(line) => {
                let _ = writeln!(out, "pma-sso: {line} (replayed from the spool)");
                spool.done(&file);
            }
            Err(_) => spool.release(&file),
        }
    }
    for request in requests {
        match store.submit(&request).await {
            Ok(line) => {
                let _ = writeln!(out, "pma-sso: {line}");
            }
            Err(problem) => match spool.add(&request) {
                Ok(path) => {
                    let _ = writeln!(
                        out,
                        "pma-sso: spooled {} for {} in {} ({problem}); `pma-sso serve`, a starting worker or the next `pma-sso enqueue` records it",
                        request.action,
                        request.service,
                        path.display()
                    );
                }
                Err(e) => {
                    status = Status::Error;
                    let _ = writeln!(
                        out,
                        "pma-sso: error: {} for {} is lost: {problem}, and the spool failed: {e}",
                        request.action, request.service
                    );
                }
            },
        }
    }
    store.close().await;
    status
}

/// What `enqueue` needs without reading authentik settings: the pipeline and the state dir.
struct LocalSettings {
    pipeline: Result<PipelineSettings, String>,
    state_dir: PathBuf,
    /// `PMA_SSO_DEPLOY_BRANCH`, when set.
    deploy_branch: Option<String>,
}

impl LocalSettings {
    fn read() -> LocalSettings {
        let env_path = PathBuf::from(
            std::env::var("PMA_SSO_ENV_FILE")
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| ".env".into()),
        );
        // A malformed .env must not stop the request: the process environment still counts.
        let file = EnvFile::read(&env_path).ok();
        let lookup = |key: &str| {
            std::env::var(key)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| {
                    file.as_ref()
                        .and_then(|f| f.get(key))
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned)
                })
        };
        let state_dir = lookup("PMA_SSO_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                env_path
                    .parent()
                    .map(Path::to_owned)
                    .unwrap_or_default()
                    .join(".pma-sso")
            });
        LocalSettings {
            deploy_branch: lookup("PMA_SSO_DEPLOY_BRANCH"),
            pipeline: PipelineSettings::from_lookup(&lookup).map_err(|e| e.to_string()),
            state_dir,
        }
    }
}

/// Where requests go: the full pipeline, the database alone, or nowhere (→ spool).
enum Store {
    Pipeline(Box<JobClient>),
    Database { pool: PgPool, max_attempts: u32 },
    Down(String),
}

impl Store {
    async fn open(pipeline: Result<&PipelineSettings, &String>) -> Store {
        let settings = match pipeline {
            Ok(s) => s,
            Err(e) => return Store::Down(e.clone()),
        };
        // Probe the database with a short timeout first: the pool's own retries would hold a
        // commit for seconds when PostgreSQL is down.
        let pool =
            match tokio::time::timeout(CONNECT_TIMEOUT, quick_pool(&settings.database_url)).await {
                Ok(Ok(pool)) => pool,
                Ok(Err(e)) => return Store::Down(e),
                Err(_) => return Store::Down("the database did not answer".into()),
            };
        match tokio::time::timeout(CONNECT_TIMEOUT * 2, JobClient::connect(settings)).await {
            Ok(Ok(client)) => {
                pool.close().await;
                Store::Pipeline(Box::new(client))
            }
            _ => Store::Database {
                pool,
                max_attempts: settings.retry.max_attempts,
            },
        }
    }

    async fn close(self) {
        match self {
            Store::Pipeline(client) => client.close().await,
            Store::Database { pool, .. } => pool.close().await,
            Store::Down(_) => {}
        }
    }

    /// Record one request; the line says what happened.
    async fn submit(&self, request: &Request) -> Result<String, String> {
        let what = format!("{} for {}", request.action, request.service);
        match self {
            Store::Pipeline(client) => {
                let enqueued = client
                    .enqueue(
                        &request.service,
                        request.action,
                        request.trigger,
                        request.trigger_ref.as_deref(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(if enqueued.coalesced {
                    format!("{what} joined the waiting job {}", enqueued.id)
                } else {
                    format!("queued {what} (job {})", enqueued.id)
                })
            }
            Store::Database { pool, max_attempts } => {
                if request.service.parse::<schemas::ServiceName>().is_err() {
                    return Err(format!("`{}` is not a valid service name", request.service));
                }
                // Nothing was published: a zero lease makes the job due for the relay's next
                // pass instead of after a whole lease.
                let (id, coalesced) = db::insert_or_coalesce(
                    pool,
                    &request.service,
                    request.action,
                    request.trigger,
                    request.trigger_ref.as_deref(),
                    *max_attempts,
                    Duration::ZERO,
                )
                .await
                .map_err(|e| e.to_string())?;
                Ok(if coalesced {
                    format!("{what} joined the waiting job {id}")
                } else {
                    format!(
                        "recorded {what} (job {id}); the broker is unreachable, so the relay publishes it later"
                    )
                })
            }
            Store::Down(problem) => Err(problem.clone()),
        }
    }
}

async fn quick_pool(url: &str) -> Result<PgPool, String> {
    use sqlx::Connection;
    let options: sqlx::postgres::PgConnectOptions = url.parse().map_err(|e| format!("{e}"))?;
    // One plain connection first: it fails at once (and says why) where a pool would retry
    // until its timeout.
    sqlx::PgConnection::connect_with(&options)
        .await
        .map_err(|e| format!("database: {e}"))?
        .close()
        .await
        .map_err(|e| format!("database: {e}"))?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|e| format!("database: {e}"))?;
    db::migrate(&pool).await.map_err(|e| e.to_string())?;
    Ok(pool)
}

// --- what a range changed -----------------------------------------------------------------------

/// The requests a range implies, and what to tell the committer.
#[derive(Debug, Default)]
pub struct Changes {
    pub requests: Vec<Request>,
    pub notes: Vec<String>,
    pub bad_manifest: bool,
}

fn git(repo: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn resolve(repo: &Path, rev: &str) -> Result<String, String> {
    if rev == EMPTY_TREE {
        return Ok(rev.to_owned());
    }
    let out = git(
        repo,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .map_err(|_| format!("`{rev}` is not a commit"))?;
    Ok(String::from_utf8_lossy(&out).trim().to_owned())
}

/// `packages/<svc>/manifest.yaml` anywhere in the tree → `<svc>`.
fn manifest_dir(path: &str) -> Option<&str> {
    let mut parts = path.rsplit('/');
    let (file, svc, packages) = (parts.next()?, parts.next()?, parts.next()?);
    (file == "manifest.yaml" && packages == "packages").then_some(svc)
}

/// Added or `sso`-changed manifests → `add` (not configured) or `fix`; removed → orphan notes.
pub fn changed_manifests(repo: &Path, range: &str) -> Result<Changes, String> {
    let (from, to) = range
        .split_once("..")
        .filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.starts_with('.'))
        .ok_or_else(|| format!("`{range}` is not a range <from>..<to>"))?;
    let (from, to) = (resolve(repo, from)?, resolve(repo, to)?);
    let short = |sha: &str| sha.chars().take(12).collect::<String>();
    let trigger_ref = format!("{}..{}", short(&from), short(&to));
    let listing = git(
        repo,
        &[
            "diff",
            "--name-status",
            "--no-renames",
            "-z",
            &from,
            &to,
            "--",
        ],
    )?;
    let text = String::from_utf8_lossy(&listing);
    let fields: Vec<&str> = text.split('\0').filter(|f| !f.is_empty()).collect();
    let show = |rev: &str, path: &str| -> Option<String> {
        git(repo, &["show", &format!("{rev}:{path}")])
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let mut changes = Changes::default();
    for pair in fields.chunks(2) {
        let [state, path] = pair else { continue };
        let Some(dir) = manifest_dir(path) else {
            continue;
        };
        let parse = |text: &str| schemas::parse_manifest(Path::new(path), text);
        match state.chars().next() {
            Some('D') => changes.notes.push(format!(
                "{} removed: its authentik objects are left alone; see `pma-sso orphans`",
                path.trim_end_matches("/manifest.yaml")
            )),
            Some('A') | Some('M') | Some('T') => {
                let new = match show(&to, path).as_deref().map(parse) {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        changes.bad_manifest = true;
                        changes.notes.push(format!("{e}; nothing queued for {dir}"));
                        continue;
                    }
                    None => continue,
                };
                let old = if state.starts_with('A') {
                    None
                } else {
                    show(&from, path).as_deref().map(parse).and_then(Result::ok)
                };
                if old.is_some_and(|old| old.sso == new.sso) {
                    continue;
                }
                changes.requests.push(Request {
                    service: new.name.to_string(),
                    action: if new.configured() {
                        Action::Fix
                    } else {
                        Action::Add
                    },
                    trigger: Trigger::Git,
                    trigger_ref: Some(trigger_ref.clone()),
                });
            }
            _ => {}
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_package_manifests_count() {
        assert_eq!(
            manifest_dir("packages/grafana/manifest.yaml"),
            Some("grafana")
        );
        assert_eq!(
            manifest_dir("deploy/packages/n8n/manifest.yaml"),
            Some("n8n")
        );
        assert_eq!(manifest_dir("packages/grafana/README.md"), None);
        assert_eq!(manifest_dir("grafana/manifest.yaml"), None);
        assert_eq!(manifest_dir("other/grafana/manifest.yaml"), None);
    }
}
