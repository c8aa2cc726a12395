//! `plan` through the job queue on real PostgreSQL: names each change fix would make, and
//! writes nothing to authentik.

use crate::status::Harness;

#[tokio::test]
async fn plan_through_the_queue_names_each_change_and_writes_nothing() {
    let h = Harness::start(&["grafana", "redmine"]).await;
    let (code, out) = h.pma(&["add", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    h.sim.patch_provider(
        "pma-sso-grafana",
        serde_json::json!({"redirect_uris": [{"matching_mode": "strict", "url": "https://old.example/cb"}]}),
    );
    let writes = h.sim.write_count();
    let (code, out) = h.pma(&["plan"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("~ grafana (oidc) — fix would:"), "{out}");
    assert!(
        out.contains("set redirect_uris on provider pma-sso-grafana (because redirect URI mismatch: want https://grafana.example.org/login/generic_oauth, authentik has https://old.example/cb)"),
        "{out}"
    );
    assert!(
        out.contains("~ redmine (oauth) — fix would:\n    create application redmine"),
        "{out}"
    );
    assert_eq!(h.sim.write_count(), writes, "plan wrote to authentik");
    let jobs: Vec<(String, String)> =
        sqlx::query_as("select action, status from jobs where action = 'check' order by service")
            .fetch_all(&h.pool)
            .await
            .expect("jobs");
    assert_eq!(
        jobs,
        [
            ("check".to_owned(), "succeeded".to_owned()),
            ("check".to_owned(), "succeeded".to_owned())
        ]
    );
    h.finish().await;
}
