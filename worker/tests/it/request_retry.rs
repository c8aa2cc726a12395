//! Per-request retries of the authentik client: reads and PATCHes are sent again after a
//! transient failure, `Retry-After` is honoured, a create whose fate is unknown is looked up by
//! its natural key before it is sent again, and permanent answers are never repeated.

use std::time::{Duration, Instant};

use serde_json::json;
use testkit::Faults;
use worker::authentik::AuthentikError;

use crate::support::Platform;

fn app_body(slug: &str) -> serde_json::Value {
    json!({ "name": slug, "slug": slug, "meta_publisher": "pma-sso" })
}

#[tokio::test]
async fn a_read_answered_429_waits_its_retry_after_and_then_succeeds() {
    let p = Platform::new(&[]).await;
    p.sim.set_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: 1,
        faulted_tries: Some(1),
        path_prefix: Some("/core/applications/".into()),
        ..Faults::default()
    });
    let started = Instant::now();
    let found = p.ctx.authentik.application("r18-nothing-here").await;
    assert!(matches!(found, Ok(None)), "{found:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the retry did not wait for Retry-After"
    );
    let tries: Vec<u16> = p.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(tries, [429, 404]);
}

#[tokio::test]
async fn a_read_failing_every_try_gives_up_after_the_configured_tries() {
    let p = Platform::new(&[]).await;
    p.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let result = p.ctx.authentik.applications().await;
    assert!(
        matches!(result, Err(AuthentikError::Server { .. })),
        "{result:?}"
    );
    assert_eq!(
        p.sim.requests().len(),
        worker::authentik::retry::DEFAULT_TRIES as usize
    );
}

#[tokio::test]
async fn a_create_answered_502_after_it_landed_is_found_by_its_slug_and_not_sent_again() {
    let p = Platform::new(&[]).await;
    p.sim.set_faults(Faults {
        forwarded_error_rate: 1.0,
        method: Some("POST".into()),
        ..Faults::default()
    });
    let created = p
        .ctx
        .authentik
        .create_application(&app_body("r18-landed"))
        .await
        .expect("the landed create is found");
    assert_eq!(created.slug, "r18-landed");
    assert_eq!(p.sim.count("POST", "/core/applications/"), 1);
    assert_eq!(p.apps_with_slug("r18-landed"), 1);
}

#[tokio::test]
async fn a_create_reset_before_it_landed_is_sent_again_once_the_lookup_finds_nothing() {
    let p = Platform::new(&[]).await;
    p.sim.set_faults(Faults {
        reset_rate: 1.0,
        method: Some("POST".into()),
        faulted_tries: Some(1),
        ..Faults::default()
    });
    let created = p
        .ctx
        .authentik
        .create_application(&app_body("r18-reset"))
        .await
        .expect("created on the second try");
    assert_eq!(created.slug, "r18-reset");
    let methods: Vec<String> = p
        .sim
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.status))
        .collect();
    assert_eq!(methods, ["POST 0", "GET 404", "POST 201"], "{methods:?}");
    assert_eq!(p.apps_with_slug("r18-reset"), 1);
}

#[tokio::test]
async fn a_create_held_past_the_timeout_and_sent_again_finds_the_first_one_not_a_second() {
    let p = Platform::new(&[]).await;
    let short = worker::Settings {
        http_timeout: Duration::from_millis(300),
        ..p.ctx.settings.clone()
    };
    let ctx = worker::Context::new(short).expect("context");
    // The first POST is held past the client's timeout and lands later: whichever of the two
    // tries lands second is refused as a duplicate slug, never a second application.
    p.sim.set_faults(Faults {
        timeout_rate: 1.0,
        timeout_delay: Duration::from_millis(700),
        method: Some("POST".into()),
        faulted_tries: Some(1),
        ..Faults::default()
    });
    let result = ctx
        .authentik
        .create_application(&app_body("r18-slow"))
        .await;
    assert!(result.is_ok(), "{result:?}");
    // Let the held request finish before counting.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(p.apps_with_slug("r18-slow"), 1);
}

#[tokio::test]
async fn a_400_is_answered_once_and_never_sent_again() {
    let p = Platform::new(&[]).await;
    let refused = p
        .ctx
        .authentik
        .create_application(&json!({ "name": "no slug" }))
        .await;
    assert!(
        matches!(refused, Err(AuthentikError::BadRequest { .. })),
        "{refused:?}"
    );
    assert_eq!(p.sim.requests().len(), 1);
}
