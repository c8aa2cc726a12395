//! authentik misbehaving under the pipeline: a large share of failed responses (5xx before and
//! after the change, 429 with `Retry-After`, timeouts, resets) must still let every job converge
//! under the production retry policy with none dead, and a 400 must fail the job at once
//! without a retry storm. (authentik down past the retry budget, then
//! `pma-sso retry --dead`, runs in the producer's tests, where the CLI binary is.)

use std::collections::BTreeMap;
use std::time::Duration;

use schemas::job::{Action, Outcome};
use testkit::Faults;
use worker::pipeline::PipelineSettings;
use worker::pipeline::retry::RetryPolicy;

use super::harness::{
    Pipeline, assert_all_succeeded, assert_end_state, generate_services, wait_terminal,
};

/// Bounds a hang; not a timing target.
const WAIT: Duration = Duration::from_secs(240);

/// The share of faulty answers: 30 % in the suite; `PMA_SSO_FAULT_RATE=0.5` for the README's
/// second figure. `PMA_SSO_FAULT_SEED` replays a run.
fn fault_rate() -> f64 {
    std::env::var("PMA_SSO_FAULT_RATE")
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("PMA_SSO_FAULT_RATE must be a number, not {v:?}"))
        })
        .unwrap_or(0.3)
}

/// All five kinds, `rate` in all: 5xx before touching state, 502 after the change was made,
/// 429 with `Retry-After: 1`, held past the client's timeout (then applied), reset.
fn five_kinds(rate: f64, seed: u64) -> Faults {
    Faults {
        error_rate: rate * 0.3,
        forwarded_error_rate: rate * 0.2,
        rate_limit_rate: rate * 0.2,
        retry_after_secs: 1,
        timeout_rate: rate * 0.1,
        // Held past the client's one-second timeout, then applied: the write happens although
        // the client saw no answer, as on a slow real server.
        timeout_delay: Duration::from_millis(1500),
        reset_rate: rate * 0.2,
        seed,
        ..Faults::default()
    }
}

/// `pma_sso_authentik_retries_total` as the process's metrics recorder holds it.
fn client_retries() -> u64 {
    worker::pipeline::http::metrics_handle()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("pma_sso_authentik_retries_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn fix_all_and_check_converge_with_zero_dead_at_thirty_percent_faulty_answers() {
    let rate = fault_rate();
    let seed: u64 = std::env::var("PMA_SSO_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let bundled = ["grafana", "linkding", "redmine", "uptime-kuma"];
    let mut p = Pipeline::with(&bundled, |s| {
        // The production retry policy: the per-request retries must carry the load.
        s.retry = RetryPolicy::default();
        s.delay_tiers = PipelineSettings::from_lookup(&|_| None)
            .expect("defaults")
            .delay_tiers;
    })
    .await;
    let mut services: Vec<String> = bundled.iter().map(|s| (*s).to_owned()).collect();
    services.extend(generate_services(&p.platform, 10, 2));
    p.platform.sim.set_faults(five_kinds(rate, seed));
    let retries_before = client_retries();
    for _ in 0..2 {
        p.start_worker_with(|flow| flow.http_timeout = Duration::from_secs(1));
    }

    // `fix-all`, then `check` of every service, through the queue.
    let mut fixes = Vec::new();
    for s in &services {
        fixes.push(p.enqueue(s, Action::Fix).await.id);
    }
    let fixed = wait_terminal(&p.pool, &fixes, WAIT).await;
    let mut checks = Vec::new();
    for s in &services {
        checks.push(p.enqueue(s, Action::Check).await.id);
    }
    let checked = wait_terminal(&p.pool, &checks, WAIT).await;

    let requests = p.platform.sim.requests();
    let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &requests {
        if let Some(kind) = r.fault {
            *faults.entry(kind).or_default() += 1;
        }
    }
    // Counted by every client in this process: other tests running beside this one add theirs.
    let retries = client_retries() - retries_before;
    let injected: usize = faults.values().sum();
    let attempts: i64 = sqlx::query_scalar("select count(*) from attempts")
        .fetch_one(&p.pool)
        .await
        .expect("attempts");
    let dead = fixed
        .iter()
        .chain(&checked)
        .filter(|r| r.status.as_str() == "dead")
        .count();
    println!(
        "authentik faults (rate {rate}, seed {seed}): jobs={} attempts={attempts} requests={} \
         faults={injected} {faults:?} request retries={retries} ({:.2} per fault) dead={dead}",
        fixed.len() + checked.len(),
        requests.len(),
        retries as f64 / injected.max(1) as f64,
    );
    assert_eq!(
        faults.len(),
        5,
        "not every fault kind was injected: {faults:?}"
    );
    assert!(
        injected * 100 >= requests.len() * (rate * 100.0) as usize * 2 / 3,
        "too few faults to prove anything: {injected} of {}",
        requests.len()
    );
    assert_eq!(dead, 0);
    assert_all_succeeded(&fixed);
    assert_all_succeeded(&checked);
    for row in &checked {
        assert!(
            matches!(row.outcome, Some(Outcome::InSync { .. })),
            "{} after fix-all: {:?}",
            row.service,
            row.outcome
        );
    }

    // No secret in any outcome, error or attempt detail.
    let env = worker::envfile::EnvFile::read(&p.platform.path(".env")).expect("parse .env");
    let secrets: Vec<String> = env
        .keys()
        .filter(|k| k.ends_with("_SECRET"))
        .filter_map(|k| env.get(k))
        .filter(|v| v.len() >= 8)
        .map(str::to_owned)
        .collect();
    // The three proxy services have no client secret.
    assert!(
        secrets.len() >= services.len() - 3,
        "{} secrets in .env",
        secrets.len()
    );
    let recorded: Vec<String> = sqlx::query_scalar(
        "select coalesce(outcome::text, '') || coalesce(last_error, '') from jobs
         union all select coalesce(detail::text, '') from attempts",
    )
    .fetch_all(&p.pool)
    .await
    .expect("outcomes");
    for text in &recorded {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a client secret in a recorded outcome"
            );
        }
    }

    // authentik healthy again: exactly one object of each kind per service.
    p.platform.sim.set_faults(Faults::default());
    assert_end_state(&p.platform, &services);
    p.stop_workers().await;
}

#[tokio::test]
async fn a_400_from_authentik_fails_the_job_at_once_without_retries() {
    let mut p = Pipeline::new(&[]).await;
    let services = generate_services(&p.platform, 2, 0);
    p.start_worker();
    let first = p.enqueue(&services[0], Action::Add).await;
    let rows = wait_terminal(&p.pool, &[first.id], WAIT).await;
    assert_eq!(
        rows[0].status.as_str(),
        "succeeded",
        "{:?}",
        rows[0].last_error
    );

    // An operator copies the first service's client id into the second one's `.env` key;
    // `.env` owns the credentials, so `add` sends it and authentik refuses a duplicate.
    let taken = p
        .platform
        .sim
        .provider_by_name(&format!("pma-sso-{}", services[0]))
        .expect("provider")["client_id"]
        .as_str()
        .expect("client id")
        .to_owned();
    let second = p.platform.ctx.package(&services[1]).expect("package");
    p.platform.set_env(
        second.manifest.client_id_env().expect("key").as_str(),
        &taken,
    );
    p.platform.set_env(
        second.manifest.client_secret_env().expect("key").as_str(),
        "copied-secret-4f1c9a0e7b2d",
    );
    p.platform.sim.reset_requests();
    let job = p.enqueue(&services[1], Action::Add).await;
    let rows = wait_terminal(&p.pool, &[job.id], WAIT).await;
    assert_eq!(rows[0].status.as_str(), "failed", "a 400 is not retried");
    assert_eq!(rows[0].attempts, 1);
    let reason = rows[0].last_error.as_deref().unwrap_or("");
    assert!(reason.contains("Client ID already exists"), "{reason}");
    assert!(!reason.contains("copied-secret-4f1c9a0e7b2d"), "{reason}");
    assert_eq!(p.attempts(job.id).await.len(), 1);
    // One refused create, no retry storm: nothing is sent again after the 400.
    let posts = p.platform.sim.count("POST", "/providers/oauth2/");
    let refused = p
        .platform
        .sim
        .requests()
        .iter()
        .filter(|r| r.status == 400)
        .count();
    assert_eq!((posts, refused), (1, 1), "{:#?}", p.platform.sim.requests());
    // Give a stray retry the time to show up, then count again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(p.platform.sim.count("POST", "/providers/oauth2/"), 1);
    assert_eq!(
        p.platform
            .providers_named(&format!("pma-sso-{}", services[1])),
        0
    );
    p.stop_workers().await;
}
