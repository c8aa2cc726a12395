#![doc = include_str!("../README.md")]

mod p1;
mod support;
mod sweep;
mod webhook;

use std::time::Duration;

use support::{env_number, median, percentile};

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("noop-worker") {
        p1::noop_worker().await;
        return;
    }
    let jobs = env_number("BENCH_JOBS", 1000);
    let rounds = env_number("BENCH_ROUNDS", 3);
    let services = env_number("BENCH_SERVICES", 1000);
    let events = env_number("BENCH_EVENTS", 500);
    println!(
        "pma-sso-bench: {jobs} jobs x {rounds} rounds each, {services} services, {events} webhooks; {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // P1 (and P5): alternate A, B, A, B … so drift in the machine's load hits both alike.
    let (mut ours, mut baseline, mut hwm) = (Vec::new(), Vec::new(), 0.0f64);
    for round in 1..=rounds {
        let a = p1::pipeline_round(jobs).await;
        let peak = a.hwm_mb.unwrap_or(f64::NAN);
        println!(
            "P1 round {round} pipeline: {:.1} jobs/s ({:.2} commits/job, worker CPU {:.0} us/job, worker VmHWM {peak:.1} MB)",
            a.jobs_per_s,
            a.commits_per_job,
            a.worker_cpu_us_per_job.unwrap_or(f64::NAN)
        );
        ours.push(a.jobs_per_s);
        hwm = hwm.max(peak);
        let b = p1::baseline_round(jobs).await;
        println!(
            "P1 round {round} baseline: {:.1} jobs/s ({:.2} commits/job)",
            b.jobs_per_s, b.commits_per_job
        );
        baseline.push(b.jobs_per_s);
    }
    let (p1_ours, p1_base) = (median(&ours), median(&baseline));
    let p1_ratio = p1_ours / p1_base;
    println!("P1 pipeline median: {p1_ours:.1} jobs/s");
    println!("P1 baseline median: {p1_base:.1} jobs/s");
    println!("P1 ratio: {p1_ratio:.3} (goal >= 0.6)");
    println!("P5 worker peak RSS during P1: {hwm:.1} MB (goal <= 40)");

    let sweep = sweep::run(services, Duration::from_millis(20)).await;
    println!(
        "P2 authentik requests for a sweep of {} services: {} (goal <= 30); without latency it took {:.2} s",
        sweep.services, sweep.requests, sweep.seconds
    );
    println!(
        "P3 the same sweep with 20 ms stand-in latency, enqueue to last outcome: {:.2} s ({} requests; goal <= 3)",
        sweep.seconds_with_latency, sweep.requests_with_latency
    );

    let latencies = webhook::run(events).await;
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    println!(
        "P4 webhook to committed outcome over {} events: p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms (goal p99 <= 50)",
        latencies.len(),
        percentile(&latencies, 100.0)
    );

    println!(
        "BENCH p1_ratio={p1_ratio:.3} p1_jobs_per_s={p1_ours:.1} baseline_jobs_per_s={p1_base:.1} p2_requests={} p3_sweep_s={:.3} p4_p50_ms={p50:.2} p4_p99_ms={p99:.2} p5_rss_mb={hwm:.1}",
        sweep.requests, sweep.seconds_with_latency
    );
}
