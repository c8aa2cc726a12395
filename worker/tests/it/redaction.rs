//! Flows run with recognisable secrets; none may appear in logs, errors or output.

use serde_json::json;
use worker::Action;

use crate::support::{Platform, global_log_capture};

const CLIENT_SECRET: &str = "RECOGNISABLE-client-secret-3f9a77";
const API_TOKEN: &str = "RECOGNISABLE-zammad-token-b21c";

#[tokio::test]
async fn no_secret_reaches_logs_errors_or_reports() {
    let capture = global_log_capture();

    let p = Platform::with_env(
        &["grafana", "gitea"],
        &format!("DOMAIN=example.org\nGRAFANA_SSO_CLIENT_SECRET={CLIENT_SECRET}\nGITEA_SSO_CLIENT_SECRET={CLIENT_SECRET}-gitea\nZAMMAD_API_TOKEN={API_TOKEN}\n"),
    )
    .await;
    let mut seen = Vec::new();
    for s in ["grafana", "gitea"] {
        let applied = p.ctx.apply(s, Action::Add).await.expect("add");
        seen.push(format!("{applied:?}"));
    }
    // Drift in both directions, then a failing command whose output echoes the secret.
    p.sim.patch_provider(
        "pma-sso-grafana",
        json!({"client_secret": "authentik-side-value"}),
    );
    p.set_env(
        "GITEA_SSO_CLIENT_SECRET",
        &format!("{CLIENT_SECRET}-rotated"),
    );
    for s in ["grafana", "gitea"] {
        let report = p.ctx.check(s).await.expect("check");
        seen.push(report.line());
        seen.push(format!("{report:?}"));
        seen.push(serde_json::to_string(&report).expect("json"));
    }
    let runner = p.path("fake-runner.sh");
    std::fs::write(
        &runner,
        "#!/bin/sh\necho \"fatal: bad secret $SSO_CLIENT_SECRET\" >&2\nexit 3\n",
    )
    .expect("runner");
    let err = p
        .ctx
        .apply("gitea", Action::Fix)
        .await
        .expect_err("runner fails");
    seen.push(err.to_string());
    seen.push(format!("{err:?}"));
    assert!(
        err.to_string().contains("fatal: bad secret <redacted>"),
        "{err}"
    );
    let results = p.ctx.check_all().await.expect("sweep");
    for r in results {
        seen.push(format!("{:?}", r.outcome.map(|o| o.line())));
    }
    seen.push(format!("{:?}", p.ctx.settings));
    seen.push(capture.text());
    let all = seen.join("\n");
    assert!(
        capture.text().contains("converged"),
        "logs were captured: {}",
        capture.text().len()
    );
    for secret in [
        CLIENT_SECRET,
        API_TOKEN,
        crate::support::TOKEN,
        "authentik-side-value",
    ] {
        assert!(!all.contains(secret), "`{secret}` leaked:\n{all}");
    }
    let generated = p.sim.provider_by_name("pma-sso-gitea").expect("p")["client_secret"]
        .as_str()
        .expect("s")
        .to_owned();
    assert!(!all.contains(&generated));
}
