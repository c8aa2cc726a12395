//! `orphans` and `orphans --prune`: only applications pma-sso made and no manifest claims.

use serde_json::json;

use crate::status::Harness;

#[tokio::test]
async fn orphans_lists_only_ours_and_prune_deletes_only_those() {
    let h = Harness::start(&["grafana", "redmine", "linkding"]).await;
    let (code, out) = h.pma(&["fix-all"]).await;
    assert_eq!(code, 0, "{out}");
    // linkding's application was taken over by hand; redmine and linkding leave the platform.
    h.sim
        .patch_application("linkding", json!({"meta_publisher": "akadmin"}));
    h.remove_package("redmine");
    h.remove_package("linkding");

    let writes = h.sim.write_count();
    let (code, out) = h.pma(&["orphans"]).await;
    assert_eq!(code, 1, "orphans found → exit 1: {out}");
    assert!(
        out.starts_with("orphan: application redmine (Redmine), provider pma-sso-redmine (pk "),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("orphan:")).count(),
        1,
        "{out}"
    );
    assert!(
        !out.contains("linkding") && !out.contains("grafana"),
        "{out}"
    );
    assert_eq!(h.sim.write_count(), writes, "listing writes nothing");

    let (code, out) = h.pma(&["orphans", "--prune"]).await;
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("orphan: application redmine"),
        "listed first: {out}"
    );
    assert_eq!(
        &lines[1..],
        [
            "deleted application redmine",
            "deleted provider pma-sso-redmine"
        ],
        "{out}"
    );
    assert!(h.sim.application("redmine").is_none());
    assert!(h.sim.provider_by_name("pma-sso-redmine").is_none());
    // Not ours, or still claimed: untouched.
    assert!(h.sim.application("linkding").is_some());
    assert!(h.sim.provider_by_name("pma-sso-linkding").is_some());
    assert!(h.sim.application("grafana").is_some());
    assert!(h.sim.provider_by_name("pma-sso-grafana").is_some());
    assert_eq!(h.sim.write_count(), writes + 2, "exactly two deletes");

    let (code, out) = h.pma(&["orphans"]).await;
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "no orphans: every application pma-sso made has a manifest\n"
        )
    );
    assert!(h.sim.schema_violations().is_empty());
    h.finish().await;
}
