//! P2 and P3: one sweep job over generated services, all present in the authentik stand-in,
//! through the pipeline with the real flows.

use std::time::{Duration, Instant};

use schemas::job::{Action, Outcome, Trigger};
use testkit::Faults;
use testkit::pg::TestDb;
use worker::pipeline::client::JobClient;
use worker::pipeline::db;

use crate::support::{self, Finished, InProcessWorker, Platform};

pub struct SweepFigures {
    pub services: usize,
    pub requests: usize,
    pub seconds: f64,
    pub seconds_with_latency: f64,
    pub requests_with_latency: usize,
}

pub async fn run(services: usize, latency: Duration) -> SweepFigures {
    let platform = Platform::generate(services).await;
    let setup = Instant::now();
    platform.add_all().await;
    println!(
        "setup: added {services} generated services to the stand-in in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    // The flows alone, without the pipeline: how much of a sweep is checking, how much is
    // recording.
    let ctx = worker::Context::new(platform.settings()).expect("context");
    let alone = Instant::now();
    let checked = ctx.check_all().await.expect("check_all");
    println!(
        "  Context::check_all alone: {} services in {:.2} s",
        checked.len(),
        alone.elapsed().as_secs_f64()
    );
    let test_db = TestDb::new().await;
    let s = support::settings(&test_db.url);
    let pool = support::pool(&s).await;
    support::declare(&s).await;
    let worker = InProcessWorker::start(platform.settings(), &pool, &s).await;
    let client = JobClient::connect_with(&s, s.topology())
        .await
        .expect("client");
    let mut finished = Finished::listen(&test_db.url).await;

    let mut sweep = async || {
        platform.sim.reset_requests();
        let started = Instant::now();
        let job = client
            .enqueue("*", Action::Sweep, Trigger::Cron, None)
            .await
            .expect("enqueue sweep");
        finished.wait_for(job.id).await;
        let seconds = started.elapsed().as_secs_f64();
        let requests = platform.sim.requests().len();
        let row = db::job(&pool, job.id).await.expect("row").expect("job");
        match row.outcome {
            Some(Outcome::Swept { sweep }) => {
                println!("  {}", sweep.line());
                assert_eq!(
                    sweep.in_sync, services,
                    "every generated service is in sync"
                );
            }
            other => panic!("the sweep did not finish as a sweep: {other:?}"),
        }
        (requests, seconds)
    };
    let (requests, seconds) = sweep().await;
    platform.sim.set_faults(Faults {
        latency,
        ..Faults::default()
    });
    let (requests_with_latency, seconds_with_latency) = sweep().await;

    worker.stop().await;
    client.close().await;
    pool.close().await;
    support::delete_queues(&s).await;
    drop(test_db);
    SweepFigures {
        services,
        requests,
        seconds,
        seconds_with_latency,
        requests_with_latency,
    }
}
