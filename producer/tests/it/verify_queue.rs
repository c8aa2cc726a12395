//! `verify` and `rotate` as jobs: through PostgreSQL, RabbitMQ and a worker, recorded like a
//! check (status and history show them), one rotation at a time, and the old secret in the
//! outcome only as a keyed fingerprint. Also the sweep's opt-in probes.

use sha2::Digest;
use testkit::PlatformSim;
use uuid::Uuid;

use crate::cli::{ALL, TOKEN};
use crate::rotate::grant;
use crate::status::{Harness, Options};
use crate::sweep::try_sweep as sweep;
use crate::verify::answering_platform;

/// All twelve services, a worker (two jobs at once) on a database and queues of its own, and
/// `fix-all` through the queue.
async fn start() -> Harness<PlatformSim> {
    let (sim, dot_env) = answering_platform().await;
    let q = Harness::with(
        sim,
        &ALL,
        Options {
            dot_env,
            queue_tag: "verify",
            env: vec![("PMA_SSO_CONCURRENCY", "2".into())],
        },
    )
    .await;
    let (code, out) = q.pma(&["fix-all"]).await;
    assert_eq!(code, 0, "{out}");
    q
}

#[tokio::test]
async fn verify_and_rotate_run_through_a_worker_and_are_recorded() {
    let q = start().await;

    // Twelve verify jobs: eleven verified, the proxy service unverified (no outpost URL).
    let (code, out) = q.pma(&["verify"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 13, "{out}");
    assert!(
        out.ends_with("\n11 verified, 0 red, 1 unverified, 0 errors\n"),
        "{out}"
    );
    assert!(out.contains(
        "✓ grafana (oidc) — login path works: discovery, JWKS, token grant, redirects accepted"
    ));
    let verify_jobs: i64 = sqlx::query_scalar(
        "select count(*) from jobs where action = 'verify' and status = 'succeeded' and outcome->>'kind' = 'in_sync'",
    )
    .fetch_one(&q.pool)
    .await
    .expect("count");
    assert_eq!(verify_jobs, 12);

    // A red probe is red with its reason, in the job and in `status`.
    let secret = q.env("REDMINE_SSO_CLIENT_SECRET");
    q.set_env("REDMINE_SSO_CLIENT_SECRET", "not-the-secret-authentik-has");
    let (code, out) = q.pma(&["verify", "redmine"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(
            "❌ redmine (oauth) — service's secret is rejected by authentik (invalid_grant)"
        ),
        "{out}"
    );
    let (code, out) = q.pma(&["status"]).await;
    assert_eq!(code, 1, "{out}");
    let red = crate::status::line_for(&out, "❌ redmine — red");
    assert!(
        red.contains("service's secret is rejected by authentik"),
        "{red}"
    );
    let (code, out) = q.pma(&["history", "redmine"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verify"), "{out}");
    assert!(
        out.contains("drift: service's secret is rejected by authentik (invalid_grant)"),
        "{out}"
    );
    q.set_env("REDMINE_SSO_CLIENT_SECRET", &secret);

    // A rotation through the worker.
    let token_url = format!("{}/application/o/token/", q.sim.authentik.base_url());
    let id = q.env("GRAFANA_SSO_CLIENT_ID");
    let old = q.env("GRAFANA_SSO_CLIENT_SECRET");
    let (code, out) = q.pma(&["rotate", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    let new = q.env("GRAFANA_SSO_CLIENT_SECRET");
    assert_ne!(new, old);
    assert!(
        out.starts_with("✓ grafana (oidc) — wrote a new client secret to .env as GRAFANA_SSO_CLIENT_SECRET; updated provider pma-sso-grafana (client_secret)"),
        "{out}"
    );
    assert!(
        out.contains("\n✓ grafana (oidc) — login path works"),
        "{out}"
    );
    assert!(out.contains("restart needed: grafana"), "{out}");
    assert_eq!(grant(&token_url, &id, &old).await.0, 400);
    assert_eq!(grant(&token_url, &id, &new).await.0, 200);

    // The outcome names the secrets only by keyed fingerprints.
    let outcome: String = sqlx::query_scalar(
        "select outcome::text from jobs where service = 'grafana' and action = 'rotate'",
    )
    .fetch_one(&q.pool)
    .await
    .expect("rotate row");
    let attempts: String = sqlx::query_scalar(
        "select string_agg(detail::text, ' ') from attempts a join jobs j on j.id = a.job_id where j.service = 'grafana' and j.action = 'rotate'",
    )
    .fetch_one(&q.pool)
    .await
    .expect("attempts");
    for secret in [&old, &new] {
        let plain_sha = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
        for text in [&outcome, &attempts] {
            assert!(!text.contains(secret.as_str()), "plain secret in {text}");
            assert!(!text.contains(&plain_sha), "unkeyed sha256 in {text}");
            assert!(
                !text.contains(&plain_sha[..16]),
                "unkeyed sha256 prefix in {text}"
            );
        }
    }
    let fingerprints: Vec<&str> = outcome
        .split("hmac-sha256:")
        .skip(1)
        .map(|rest| &rest[..16])
        .collect();
    assert_eq!(fingerprints.len(), 2, "{outcome}");
    assert_ne!(fingerprints[0], fingerprints[1]);
    let (code, out) = q.pma(&["history", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("rotate"), "{out}");
    assert!(out.contains("did: secret hmac-sha256:"), "{out}");
    assert!(!out.contains(&old) && !out.contains(&new), "{out}");

    // `--all`: every service with a secret, one after the other.
    let (code, out) = q.pma(&["rotate", "--all"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("login path works").count(), 10, "{out}");
    let spans: Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as(
            "select a.started_at, a.finished_at from attempts a join jobs j on j.id = a.job_id
             where j.action = 'rotate'
             order by a.started_at",
        )
        .fetch_all(&q.pool)
        .await
        .expect("spans");
    assert_eq!(spans.len(), 11, "grafana, then ten one attempt each");
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "rotations overlapped: {pair:?}");
    }
    let (code, out) = q.pma(&["verify"]).await;
    assert_eq!(code, 0, "{out}");

    // A rotation and a fix of the same service, sent at once to a worker that runs two jobs at
    // a time, hold the same service lock: their attempts never overlap.
    let ((rotate_code, rotate_out), (fix_code, fix_out)) =
        tokio::join!(q.pma(&["rotate", "redmine"]), q.pma(&["fix", "redmine"]));
    assert_eq!(rotate_code, 0, "{rotate_out}");
    assert_eq!(fix_code, 0, "{fix_out}");
    let spans: Vec<(String, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as(
            "select j.action, a.started_at, a.finished_at from attempts a join jobs j on j.id = a.job_id
             where j.service = 'redmine' and j.action in ('rotate', 'fix') order by a.started_at",
        )
        .fetch_all(&q.pool)
        .await
        .expect("spans");
    assert!(spans.len() >= 3, "{spans:?}");
    for pair in spans.windows(2) {
        assert!(
            pair[0].2 <= pair[1].1,
            "a rotation overlapped a fix: {pair:?}"
        );
    }
    let (code, out) = q.pma(&["verify", "redmine"]).await;
    assert_eq!(code, 0, "{out}");

    // No secret: the job fails with the reason.
    let (code, out) = q.pma(&["rotate", "zammad"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("a saml service has no OAuth2 client"), "{out}");
    q.finish().await;
}

/// `(service, outcome kind, summary line)` of the verify jobs a sweep recorded.
async fn probes(p: &crate::serve::Pipeline, sweep: Uuid) -> Vec<(String, String)> {
    sqlx::query_as(
        "select service, outcome->>'kind' from jobs
         where action = 'verify' and trigger = 'cron' and trigger_ref = $1 order by service",
    )
    .bind(sweep.to_string())
    .fetch_all(p.pool())
    .await
    .expect("probes")
}

#[tokio::test]
async fn a_sweep_verifies_the_services_that_opt_in_and_records_each_probe() {
    let (sim, lines) = answering_platform().await;
    let dir = crate::serve::platform_dir(
        &["grafana", "redmine", "zammad"],
        &format!("DOMAIN=example.org\nAUTHENTIK_TOKEN={TOKEN}\nPMA_SSO_EXEC_RUNNER=true\n{lines}"),
    );
    let manifest = dir.path().join("packages/grafana/manifest.yaml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(&manifest, format!("{text}probe: true\n")).expect("opt in");
    let ctx = crate::serve::context(dir.path());
    for name in ["grafana", "redmine", "zammad"] {
        ctx.apply(name, schemas::job::Action::Add)
            .await
            .expect("add");
    }
    let p = crate::serve::Pipeline::start().await;

    // Only the manifest that opts in.
    let (id, summary) = sweep(&p, &ctx).await.expect("sweep");
    assert_eq!((summary.services, summary.in_sync), (3, 3), "{summary:?}");
    assert_eq!((summary.probed, summary.probe_failures), (1, 0));
    assert!(
        summary.line().ends_with("; probed 1 login paths, 0 red"),
        "{}",
        summary.line()
    );
    assert_eq!(
        probes(&p, id).await,
        [("grafana".to_owned(), "in_sync".to_owned())]
    );

    // Every service; the issuer the services were given no longer answers as itself, which
    // only a probe sees.
    worker::envfile::update(&dir.path().join(".env"), &[("PMA_SSO_PROBE", Some("all"))])
        .expect("setting");
    sim.authentik
        .set_public_url(Some("https://auth.elsewhere.example"));
    let (id, summary) = sweep(&p, &ctx).await.expect("sweep");
    assert_eq!(summary.in_sync, 3, "checks compare fields: {summary:?}");
    assert_eq!((summary.probed, summary.probe_failures), (3, 2));
    assert_eq!(
        probes(&p, id).await,
        [
            ("grafana".to_owned(), "drifted".to_owned()),
            ("redmine".to_owned(), "drifted".to_owned()),
            ("zammad".to_owned(), "in_sync".to_owned()),
        ]
    );
    // `status` reads the probe: red with its reason.
    let (status, summary_line): (String, String) = sqlx::query_as(
        "select last_status, last_summary from service_state where service = 'grafana'",
    )
    .fetch_one(p.pool())
    .await
    .expect("state");
    assert_eq!(status, "drifted");
    assert!(
        summary_line.contains("issuer mismatch: the service was given"),
        "{summary_line}"
    );

    // Off, whatever the manifests say; and a bad value names the setting.
    worker::envfile::update(&dir.path().join(".env"), &[("PMA_SSO_PROBE", Some("none"))])
        .expect("setting");
    let (id, summary) = sweep(&p, &ctx).await.expect("sweep");
    assert_eq!(summary.probed, 0);
    assert!(probes(&p, id).await.is_empty());
    worker::envfile::update(
        &dir.path().join(".env"),
        &[("PMA_SSO_PROBE", Some("sometimes"))],
    )
    .expect("setting");
    let err = sweep(&p, &ctx).await.expect_err("bad setting");
    assert!(
        err.to_string()
            .contains("PMA_SSO_PROBE is `sometimes`; expected `all`, `manifest` or `none`"),
        "{err}"
    );
    p.finish().await;
}
