//! Crash safety: `pma-sso-worker` processes SIGKILLed at random moments while add/fix/check
//! jobs for many services run, and restarted. Nothing may be lost or duplicated: every job
//! ends terminal, authentik holds one application and one provider per service, `.env` and
//! the manifests stay whole, no temp file is left behind, and a final check finds every
//! service in sync.
//!
//! The normal suite runs a small count; `just crash-run` runs the full one
//! (`PMA_SSO_CRASH_JOBS`, `PMA_SSO_CRASH_KILLS`, and `PMA_SSO_CRASH_SEED` to replay a run).

use std::collections::BTreeSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemas::job::Action;
use testkit::Faults;
use uuid::Uuid;

use super::harness::{
    Pipeline, assert_checks_in_sync, assert_end_state, generate_services, wait_terminal,
};

/// Bounds a hang; not a timing target.
const WAIT: Duration = Duration::from_secs(240);
/// Jobs waiting or running at once, so kills land while work is in flight.
const MAX_OPEN: i64 = 40;
/// Added to every authentik request.
const LATENCY_MS: u64 = 30;

fn count(var: &str, default: usize) -> usize {
    match std::env::var(var) {
        Err(_) => default,
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{var} must be a number, not {v:?}")),
    }
}

async fn open_and_terminal(pool: &sqlx::PgPool) -> (i64, i64) {
    sqlx::query_as(
        "select count(*) filter (where status not in ('succeeded', 'failed', 'dead')),
                count(*) filter (where status in ('succeeded', 'failed', 'dead'))
         from jobs",
    )
    .fetch_one(pool)
    .await
    .expect("count jobs")
}

#[tokio::test]
async fn sigkilled_worker_processes_lose_and_duplicate_nothing() {
    let jobs_target = count("PMA_SSO_CRASH_JOBS", 120);
    let kills_target = count("PMA_SSO_CRASH_KILLS", 6);
    let seed = std::env::var("PMA_SSO_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let mut rng = StdRng::seed_from_u64(seed);

    let bundled = ["grafana", "linkding", "uptime-kuma"];
    let p = Pipeline::with(&bundled, |s| {
        // Kills cost attempts; the budget must outlast a job being hit several times.
        s.retry.max_attempts = 12;
        s.concurrency = 3;
    })
    .await;
    let mut services: Vec<String> = bundled.iter().map(|s| (*s).to_owned()).collect();
    services.extend(generate_services(&p.platform, 24, 3));
    // Latency per request makes a job take a few hundred milliseconds, as against a real
    // authentik: with jobs of a few milliseconds, kills rarely land while one runs.
    p.platform.sim.set_faults(Faults {
        latency: Duration::from_millis(LATENCY_MS),
        ..Faults::default()
    });

    let mut children: Vec<tokio::process::Child> =
        (0..3).map(|_| p.spawn_worker_process()).collect();
    let mut ids: Vec<Uuid> = Vec::new();
    let mut distinct: BTreeSet<Uuid> = BTreeSet::new();
    let (mut enqueues, mut kills, mut restarts) = (0usize, 0usize, 0usize);
    // Every service is added first (in a random order), then random actions follow.
    let mut first_adds: Vec<&String> = services.iter().collect();
    for i in (1..first_adds.len()).rev() {
        first_adds.swap(i, rng.random_range(0..=i));
    }
    let spacing = (jobs_target / (kills_target + 1)).max(1) as i64;
    let mut next_kill_at = rng.random_range(spacing / 2..=spacing + spacing / 2);
    let deadline = tokio::time::Instant::now() + WAIT;

    while distinct.len() < jobs_target || kills < kills_target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "run not over after {WAIT:?}: {} jobs, {kills} kills",
            distinct.len()
        );
        let (open, terminal) = open_and_terminal(&p.pool).await;
        if open < MAX_OPEN {
            for _ in 0..8 {
                let (service, action) = match first_adds.pop() {
                    Some(s) => (s.as_str(), Action::Add),
                    None => (
                        services[rng.random_range(0..services.len())].as_str(),
                        [Action::Add, Action::Fix, Action::Check][rng.random_range(0..3)],
                    ),
                };
                let job = p.enqueue(service, action).await;
                enqueues += 1;
                if distinct.insert(job.id) {
                    ids.push(job.id);
                }
            }
        }
        if kills < kills_target && terminal >= next_kill_at {
            let victim = rng.random_range(0..children.len());
            let mut child = children.swap_remove(victim);
            child.start_kill().expect("SIGKILL");
            let _ = child.wait().await;
            kills += 1;
            next_kill_at = terminal + rng.random_range(spacing / 2..=spacing + spacing / 2);
            let alive = rng.random_range(2..=4);
            while children.len() < alive {
                children.push(p.spawn_worker_process());
                restarts += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..60))).await;
    }
    let rows = wait_terminal(&p.pool, &ids, WAIT).await;
    let lost = ids.len() - rows.len();
    let not_succeeded: Vec<String> = rows
        .iter()
        .filter(|r| r.status.as_str() != "succeeded")
        .map(|r| {
            format!(
                "{} {} {}: {:?}",
                r.service,
                r.action,
                r.status.as_str(),
                r.last_error
            )
        })
        .collect();
    // An attempt a kill interrupted is closed as `abandoned` when its job is claimed again.
    // Each worker process has its own name, so the workers named by abandoned attempts are
    // the kills that landed while an attempt was running.
    let (interrupted, kills_mid_job, open): (i64, i64, i64) = sqlx::query_as(
        "select count(*) filter (where outcome = 'abandoned'),
                count(distinct worker) filter (where outcome = 'abandoned'),
                count(*) filter (where finished_at is null)
         from attempts",
    )
    .fetch_one(&p.pool)
    .await
    .expect("interrupted attempts");
    let duplicated: usize = services
        .iter()
        .map(|s| p.platform.apps_with_slug(s).saturating_sub(1))
        .sum();
    println!(
        "crash run (seed {seed}): jobs={} enqueues={enqueues} services={} kills={kills} \
         restarts={restarts} interrupted_attempts={interrupted} kills_mid_job={kills_mid_job} open_attempts={open} terminal={} lost={lost} dup={duplicated}",
        ids.len(),
        services.len(),
        rows.len(),
    );
    assert_eq!(lost, 0, "jobs without a row");
    assert_eq!(open, 0, "attempts never closed");
    // At least a quarter of the kills must land while an attempt runs, or the run proves
    // little about crashes mid-job.
    assert!(
        kills_mid_job as usize * 4 >= kills,
        "only {kills_mid_job} of {kills} kills landed while an attempt was running"
    );
    assert!(not_succeeded.is_empty(), "{not_succeeded:#?}");
    assert_end_state(&p.platform, &services);

    // Whatever was interrupted, a check now finds every service as `add` left it.
    assert_checks_in_sync(&p, &services, WAIT, "after the crashes").await;
    for mut child in children {
        child.start_kill().expect("SIGKILL");
        let _ = child.wait().await;
    }
    assert_eq!(duplicated, 0);
}
