//! authentik misbehaving under the pipeline: a large share of failed responses (5xx, 429 with
//! `Retry-After`, timeouts, resets) must still let every job converge, and a 400 must fail the
//! job at once without a retry storm. (authentik down past the retry budget, then
//! `pma-sso retry --dead`, runs in the producer's tests, where the CLI binary is.)

use std::time::Duration;

use schemas::job::Action;
use testkit::Faults;

use super::harness::{
    Pipeline, assert_all_succeeded, assert_checks_in_sync, assert_end_state, generate_services,
    wait_terminal,
};

/// Bounds a hang; not a timing target.
const WAIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn thirty_percent_faulty_authentik_responses_still_converge() {
    let bundled = ["grafana", "linkding", "uptime-kuma"];
    let mut p = Pipeline::with(&bundled, |s| {
        // Each attempt may meet several faults: the budget is attempts, not luck.
        s.retry.max_attempts = 40;
        s.retry.cap = Duration::from_millis(300);
        // A tier that honours the stand-in's one-second Retry-After.
        s.delay_tiers = vec![
            Duration::from_millis(100),
            Duration::from_millis(300),
            Duration::from_secs(1),
        ];
    })
    .await;
    let mut services: Vec<String> = bundled.iter().map(|s| (*s).to_owned()).collect();
    services.extend(generate_services(&p.platform, 5, 1));
    p.platform.sim.set_faults(Faults {
        error_rate: 0.15,
        rate_limit_rate: 0.05,
        retry_after_secs: 1,
        timeout_rate: 0.03,
        // Held past the client's timeout, then applied: the write happens although the
        // client saw no answer, as on a slow real server.
        timeout_delay: Duration::from_millis(1500),
        reset_rate: 0.07,
        seed: 30,
        ..Faults::default()
    });
    for _ in 0..2 {
        p.start_worker_with(|flow| flow.http_timeout = Duration::from_secs(1));
    }
    let mut ids = Vec::new();
    for action in [Action::Add, Action::Fix, Action::Check] {
        for s in &services {
            ids.push(p.enqueue(s, action).await.id);
        }
    }
    let rows = wait_terminal(&p.pool, &ids, WAIT).await;
    let requests = p.platform.sim.requests();
    let faulted = requests
        .iter()
        .filter(|r| matches!(r.status, 0 | 429 | 500 | 502 | 503))
        .count();
    let attempts: i64 = sqlx::query_scalar("select count(*) from attempts")
        .fetch_one(&p.pool)
        .await
        .expect("attempts");
    println!(
        "authentik faults: jobs={} attempts={attempts} requests={} faulted={faulted}",
        rows.len(),
        requests.len()
    );
    assert_all_succeeded(&rows);
    assert!(
        faulted * 5 >= requests.len(),
        "too few faults to prove anything: {faulted} of {}",
        requests.len()
    );

    // authentik healthy again: the state is exactly what the manifests ask for.
    p.platform.sim.set_faults(Faults::default());
    assert_end_state(&p.platform, &services);
    assert_checks_in_sync(&p, &services, WAIT, "with authentik healthy again").await;
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
