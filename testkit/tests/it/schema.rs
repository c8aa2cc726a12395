//! Request bodies are held to authentik's own request schemas.

use std::path::PathBuf;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::Api;

#[tokio::test]
async fn unknown_field_is_400_and_recorded_as_a_schema_violation() {
    let api = Api::start().await;
    let (status, body) = api
        .post(
            "/core/applications/",
            json!({"name": "Grafana", "slug": "grafana", "launch_url": "https://grafana.example.com/"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["launch_url"].is_array(), "{body}");
    assert!(api.sim.applications().is_empty());

    let violations = api.sim.schema_violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    let violation = &violations[0];
    assert!(
        violation.contains("POST /api/v3/core/applications/"),
        "{violation}"
    );
    assert!(violation.contains("ApplicationRequest"), "{violation}");
    assert!(violation.contains("launch_url"), "{violation}");
}

#[tokio::test]
async fn patch_is_checked_against_the_patched_schema() {
    let api = Api::start().await;
    api.post("/core/applications/", json!({"name": "A", "slug": "a"}))
        .await;
    // A partial body is fine for PATCH …
    let (status, _) = api
        .patch("/core/applications/a/", json!({"meta_publisher": "x"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    // … but PUT needs every required field.
    let (status, body) = api
        .put("/core/applications/a/", json!({"meta_publisher": "y"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"name": ["This field is required."], "slug": ["This field is required."]})
    );
    let violations = api.sim.schema_violations();
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(
        violations
            .iter()
            .all(|v| v.starts_with("PUT /api/v3/core/applications/a/: ApplicationRequest"))
    );
}

#[tokio::test]
async fn violations_never_contain_secret_values() {
    let api = Api::start().await;
    let mut body = api.provider_body("leaky").await;
    body["client_secret"] = json!(["s3cr3t-value-that-must-not-leak"]);
    body["client_secrett"] = json!("another-s3cr3t");
    let (status, _) = api.post("/providers/oauth2/", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let violations = api.sim.schema_violations().join("\n");
    assert!(violations.contains("OAuth2ProviderRequest"), "{violations}");
    assert!(!violations.contains("s3cr3t"), "{violations}");
}

#[tokio::test]
async fn valid_bodies_record_no_violation() {
    let api = Api::start().await;
    let pk = api.create_provider("clean").await;
    api.post(
        "/core/applications/",
        json!({"name": "A", "slug": "a", "provider": pk}),
    )
    .await;
    api.patch(
        &format!("/providers/oauth2/{pk}/"),
        json!({"redirect_uris": []}),
    )
    .await;
    assert!(
        api.sim.schema_violations().is_empty(),
        "{:?}",
        api.sim.schema_violations()
    );
}

/// The committed schemas must be what `vendor.py` makes of authentik's schema today.
#[test]
fn vendored_request_schemas_are_fresh() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = crate_dir.parent().expect("workspace root");
    let schema_yml = workspace.join("../shared/authentik/schema.yml");
    if !schema_yml.exists() {
        println!(
            "NOTE: skipping the freshness check of authentik-schema/request-schemas.json: {} is absent",
            schema_yml.display()
        );
        return;
    }
    let out = std::env::temp_dir().join(format!(
        "testkit-request-schemas-{}-{}.json",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let status = Command::new("python3")
        .arg(crate_dir.join("authentik-schema/vendor.py"))
        .arg(&schema_yml)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("run python3 authentik-schema/vendor.py");
    assert!(status.success(), "vendor.py failed: {status}");
    let fresh = std::fs::read_to_string(&out).expect("read regenerated schemas");
    let _ = std::fs::remove_file(&out);
    let committed =
        std::fs::read_to_string(crate_dir.join("authentik-schema/request-schemas.json"))
            .expect("read committed schemas");
    assert!(
        fresh == committed,
        "authentik-schema/request-schemas.json is stale: run `python3 testkit/authentik-schema/vendor.py`"
    );
}
