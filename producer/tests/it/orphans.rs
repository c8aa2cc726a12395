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
    let env_path = h.dir.path().join(".env");
    assert_eq!(
        &lines[1..],
        [
            "deleted application redmine".to_owned(),
            "deleted provider pma-sso-redmine".to_owned(),
            format!(
                "removed REDMINE_SSO_CLIENT_ID, REDMINE_SSO_CLIENT_SECRET from {}",
                env_path.display()
            ),
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

#[tokio::test]
async fn prune_removes_the_service_keys_from_env_naming_them_without_their_values() {
    let h = Harness::start(&["grafana", "redmine"]).await;
    let (code, out) = h.pma(&["fix-all"]).await;
    assert_eq!(code, 0, "{out}");
    let secret = h.env("REDMINE_SSO_CLIENT_SECRET");
    let client_id = h.env("REDMINE_SSO_CLIENT_ID");
    let grafana_secret = h.env("GRAFANA_SSO_CLIENT_SECRET");
    h.remove_package("redmine");

    let (code, out) = h.pma(&["orphans", "--prune"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("removed REDMINE_SSO_CLIENT_ID, REDMINE_SSO_CLIENT_SECRET from "),
        "{out}"
    );
    assert!(!out.contains(&secret) && !out.contains(&client_id), "{out}");
    let env = worker::envfile::EnvFile::read(&h.dir.path().join(".env")).expect("read .env");
    assert!(!env.contains("REDMINE_SSO_CLIENT_ID"), "id key removed");
    assert!(
        !env.contains("REDMINE_SSO_CLIENT_SECRET"),
        "secret key removed"
    );
    assert_eq!(
        env.get("GRAFANA_SSO_CLIENT_SECRET"),
        Some(grafana_secret.as_str()),
        "another service's keys stay"
    );
    assert!(env.contains("DOMAIN"), "the rest of .env stays");
    h.finish().await;
}

#[tokio::test]
async fn orphans_reports_and_prunes_a_provider_of_ours_that_no_application_uses() {
    let h = Harness::start(&["grafana", "redmine"]).await;
    let (code, out) = h.pma(&["fix-all"]).await;
    assert_eq!(code, 0, "{out}");
    // redmine's application was deleted by hand, then its manifest removed: its provider is
    // left with nothing pointing to it.
    assert!(h.sim.delete_application("redmine"));
    h.remove_package("redmine");
    let pk = h.sim.provider_by_name("pma-sso-redmine").expect("provider")["pk"].clone();

    let (code, out) = h.pma(&["orphans"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "orphan: provider pma-sso-redmine (pk {pk}): no application uses it"
        )),
        "{out}"
    );
    assert!(
        !out.contains("grafana"),
        "grafana's provider is in use: {out}"
    );

    let (code, out) = h.pma(&["orphans", "--prune"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("deleted provider pma-sso-redmine"), "{out}");
    assert!(h.sim.provider_by_name("pma-sso-redmine").is_none());
    assert!(h.sim.provider_by_name("pma-sso-grafana").is_some());
    let env = worker::envfile::EnvFile::read(&h.dir.path().join(".env")).expect("read .env");
    assert!(!env.contains("REDMINE_SSO_CLIENT_SECRET"), "{out}");
    h.finish().await;
}

#[tokio::test]
async fn orphans_with_a_least_privilege_token_finds_ours_through_the_providers() {
    let h = Harness::start(&["grafana", "redmine"]).await;
    let (code, out) = h.pma(&["fix-all"]).await;
    assert_eq!(code, 0, "{out}");
    h.remove_package("redmine");
    h.set_env("PMA_SSO_LEAST_PRIVILEGE", "true");
    h.sim.reset_requests();
    let (code, out) = h.pma(&["--inline", "orphans"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("orphan: application redmine (Redmine), provider pma-sso-redmine (pk "),
        "{out}"
    );
    let lists = h
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/core/applications/"))
        .count();
    assert_eq!(lists, 0, "no application list with a least-privilege token");
    h.finish().await;
}
