//! `adopt`: report how a hand-made application differs, write nothing without `--yes`, mark it
//! ours with `--yes`, and from then on `fix` (through the queue) manages it.

use serde_json::json;

use crate::status::Harness;

#[tokio::test]
async fn adopt_reports_the_difference_then_yes_marks_it_ours_and_fix_manages_it() {
    let h = Harness::start(&["grafana"]).await;
    let (code, out) = h.pma(&["add", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    // As if someone had made the application by hand.
    h.sim.patch_application(
        "grafana",
        json!({"meta_publisher": "", "meta_launch_url": "https://old.example/"}),
    );
    let (code, out) = h.pma(&["fix", "grafana"]).await;
    assert_eq!(code, 2, "a foreign application is refused: {out}");

    let writes = h.sim.write_count();
    let (code, out) = h.pma(&["--json", "adopt", "grafana"]).await;
    assert_eq!(code, 1, "{out}");
    let preview = crate::output::valid("adopt", &out);
    assert_eq!(preview["publisher"], "none", "{out}");
    assert_eq!(preview["adopted"], false, "{out}");
    let (code, out) = h.pma(&["adopt", "grafana"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("application grafana was not made by pma-sso (publisher: none)\n"),
        "{out}"
    );
    assert!(
        out.contains("launch URL mismatch: want https://grafana.example.org"),
        "{out}"
    );
    assert!(out.contains("authentik has https://old.example/"), "{out}");
    assert!(
        !out.contains("not managed by pma-sso"),
        "diffed as if ours: {out}"
    );
    assert!(
        out.ends_with("nothing written; `pma-sso adopt grafana --yes` marks it as pma-sso's\n")
    );
    assert_eq!(h.sim.write_count(), writes, "nothing written without --yes");

    let (code, out) = h.pma(&["adopt", "grafana", "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("adopted application grafana: `pma-sso fix grafana` manages it from now on"),
        "{out}"
    );
    let app = h.sim.application("grafana").expect("app");
    assert_eq!(app["meta_publisher"], "pma-sso");
    assert_eq!(
        app["meta_launch_url"], "https://old.example/",
        "adopt only marks it"
    );

    let (code, out) = h.pma(&["fix", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("updated application grafana (meta_launch_url)"),
        "{out}"
    );
    let app = h.sim.application("grafana").expect("app");
    assert_ne!(app["meta_launch_url"], "https://old.example/");
    let (code, out) = h.pma(&["check", "grafana"]).await;
    assert_eq!(code, 0, "{out}");

    let (code, out) = h.pma(&["adopt", "grafana"]).await;
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "application grafana is already managed by pma-sso; nothing to adopt\n"
        )
    );
    let (code, out) = h.pma(&["--json", "adopt", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(crate::output::valid("adopt", &out)["already_ours"], true);
    h.finish().await;
}

#[tokio::test]
async fn adopt_keeps_the_applications_own_provider_and_display_name() {
    let h = Harness::start(&["grafana"]).await;
    // The manifest sets no display name: the hand-made one stays.
    let manifest = h.dir.path().join("packages/grafana/manifest.yaml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("display_name:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&manifest, text).expect("manifest");
    let (code, out) = h.pma(&["add", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    // As if application and provider had been made by hand.
    h.sim.patch_application(
        "grafana",
        json!({"meta_publisher": "", "name": "Grafana (by hand)"}),
    );
    h.sim
        .patch_provider("pma-sso-grafana", json!({"name": "grafana hand-made"}));
    let pk = h
        .sim
        .provider_by_name("grafana hand-made")
        .expect("provider")["pk"]
        .clone();

    let (code, out) = h.pma(&["adopt", "grafana", "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "kept provider grafana hand-made (pk {pk}) as pma-sso-grafana"
        )),
        "{out}"
    );
    let (code, out) = h.pma(&["fix", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("created provider"), "{out}");
    assert_eq!(h.sim.oauth2_providers().len(), 1, "no second provider");
    let app = h.sim.application("grafana").expect("app");
    assert_eq!(app["provider"], pk, "still linked to its own provider");
    assert_eq!(app["name"], "Grafana (by hand)", "display name kept");
    let (code, out) = h.pma(&["check", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = h.pma(&["orphans"]).await;
    assert_eq!(code, 0, "nothing left behind: {out}");
    h.finish().await;
}
