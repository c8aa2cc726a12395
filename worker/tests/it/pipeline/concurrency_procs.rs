//! Four `pma-sso-worker` processes and bursts of jobs for the same few services: the
//! per-service lock holds across processes (no two attempts of one service overlap, read from
//! the attempts table), authentik ends with one object each, `.env` keeps every key, and the
//! outpost's read-modify-write of its provider list loses no proxy provider.

use std::time::Duration;

use futures_util::future::join_all;
use schemas::job::{Action, Trigger};
use testkit::Faults;

use super::harness::{
    Pipeline, assert_all_succeeded, assert_end_state, assert_no_overlap_per_service,
    generate_services, wait_terminal,
};

/// Bounds a hang; not a timing target.
const WAIT: Duration = Duration::from_secs(180);

#[tokio::test]
async fn four_processes_never_run_one_service_twice_at_once() {
    let p = Pipeline::with(&["uptime-kuma"], |s| s.concurrency = 3).await;
    let mut services = vec!["uptime-kuma".to_owned()];
    services.extend(generate_services(&p.platform, 7, 2));
    // Keys nobody manages, which every `.env` rewrite must keep.
    let mut env = p.platform.env_text();
    for i in 0..20 {
        env.push_str(&format!("# kept {i}\nOPERATOR_KEY_{i:02}=value-{i}\n"));
    }
    std::fs::write(p.platform.path(".env"), &env).expect("write .env");
    p.platform.sim.set_faults(Faults {
        latency: Duration::from_millis(4),
        ..Faults::default()
    });
    let mut children: Vec<_> = (0..4).map(|_| p.spawn_worker_process()).collect();

    let mut ids = std::collections::BTreeSet::new();
    let mut enqueues = 0;
    for round in 0..6u64 {
        // One burst: every service, every action, three times over, all at once.
        let burst = services.iter().flat_map(|s| {
            [Action::Add, Action::Fix, Action::Check]
                .into_iter()
                .flat_map(move |a| std::iter::repeat_n((s.clone(), a), 3))
        });
        let client = &p.client;
        let accepted = join_all(
            burst.map(|(s, a)| async move { client.enqueue(&s, a, Trigger::Cli, None).await }),
        )
        .await;
        for job in accepted {
            enqueues += 1;
            ids.insert(job.expect("enqueue").id);
        }
        tokio::time::sleep(Duration::from_millis(40 * (round % 3))).await;
    }
    let ids: Vec<_> = ids.into_iter().collect();
    let rows = wait_terminal(&p.pool, &ids, WAIT).await;
    assert_all_succeeded(&rows);
    let intervals = assert_no_overlap_per_service(&p.pool).await;
    println!(
        "concurrency: processes=4 services={} enqueues={enqueues} jobs={} attempts={intervals} overlaps=0",
        services.len(),
        ids.len()
    );
    assert_end_state(&p.platform, &services);
    let env = worker::envfile::EnvFile::read(&p.platform.path(".env")).expect("parse .env");
    for i in 0..20 {
        assert_eq!(
            env.get(&format!("OPERATOR_KEY_{i:02}")),
            Some(format!("value-{i}").as_str()),
            "an operator's key was lost"
        );
    }
    assert!(p.platform.env_text().contains("# kept 19\n"));
    for mut child in children.drain(..) {
        child.start_kill().expect("SIGKILL");
        let _ = child.wait().await;
    }
}
