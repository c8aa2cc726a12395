//! `--json` output against the JSON Schemas committed under `schemas/output/`: every command's
//! output is checked, in the tests that run it and here, for all of them through a worker.

use std::path::Path;

use crate::status::Harness;

/// Parse `out` and check it against `schemas/output/<name>.schema.json`.
pub fn valid(name: &str, out: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/output")
        .join(format!("{name}.schema.json"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("schema"))
            .expect("schema JSON");
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles");
    let value: serde_json::Value =
        serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{name} output does not match {}:\n{}\n{out}",
        path.display(),
        errors.join("\n")
    );
    value
}

#[tokio::test]
async fn every_json_output_matches_its_committed_schema() {
    let h = Harness::start(&["grafana", "redmine", "uptime-kuma"]).await;
    let (code, out) = h.pma(&["--json", "check"]).await;
    assert_eq!(code, 1, "{out}");
    let rows = valid("check", &out);
    assert_eq!(rows[0]["state"], "red", "{out}");
    // A command that cannot run says why in JSON too.
    let (code, out) = h.pma(&["--json", "check", "zzz"]).await;
    assert_eq!(code, 2, "{out}");
    let error = valid("error", &out);
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("no service `zzz`")),
        "{out}"
    );

    let (code, out) = h.pma(&["--json", "add", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    valid("apply", &out);
    let (code, out) = h.pma(&["--json", "fix-all"]).await;
    assert_eq!(code, 0, "{out}");
    valid("apply", &out);
    let (code, out) = h.pma(&["--json", "plan", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    valid("check", &out);
    let (code, out) = h.pma(&["--json", "verify"]).await;
    assert!(code <= 1, "{out}");
    let rows = valid("check", &out);
    assert_eq!(rows[2]["service"], "uptime-kuma", "{out}");
    assert_eq!(rows[2]["state"], "unverified", "{out}");
    let (code, out) = h.pma(&["--json", "rotate", "grafana"]).await;
    assert!(code <= 1, "{out}");
    valid("apply", &out);

    let (code, out) = h.pma(&["--json", "sweep"]).await;
    assert!(code <= 1, "{out}");
    let sweep = valid("sweep", &out);
    assert_eq!(sweep["services"], 3, "{out}");

    let (code, out) = h.pma(&["--json", "status"]).await;
    assert!(code <= 1, "{out}");
    let status = valid("status", &out);
    assert!(status["sweep"]["finished_at"].is_string(), "{out}");

    let (code, out) = h.pma(&["--json", "retry", "--failed"]).await;
    assert_eq!(code, 0, "{out}");
    valid("retry", &out);
    let (code, out) = h.pma(&["--json", "history", "grafana"]).await;
    assert_eq!(code, 0, "{out}");
    valid("history", &out);

    // An application of ours that no manifest claims any more.
    h.remove_package("redmine");
    let (code, out) = h.pma(&["--json", "orphans"]).await;
    assert_eq!(code, 1, "{out}");
    let orphans = valid("orphans", &out);
    assert_eq!(orphans[0]["application"], "redmine", "{out}");
    let (code, out) = h.pma(&["--json", "orphans", "--prune"]).await;
    assert_eq!(code, 0, "{out}");
    let pruned = valid("orphans", &out);
    // With --prune the rows are what was done to each orphan (the listing is not repeated).
    assert_eq!(
        pruned[0]["env_keys_removed"],
        serde_json::json!(["REDMINE_SSO_CLIENT_ID", "REDMINE_SSO_CLIENT_SECRET"]),
        "{out}"
    );
    assert_eq!(
        pruned[0]["deleted"],
        serde_json::json!(["application", "provider"]),
        "{out}"
    );
    h.finish().await;
}
