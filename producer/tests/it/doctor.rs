//! `pma-sso doctor` against the authentik stand-in, real PostgreSQL and RabbitMQ.

use crate::status::Harness;

async fn doctor(h: &Harness, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"));
    cmd.arg("doctor")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PMA_SSO_ENV_FILE", h.dir.path().join(".env"))
        .env("DATABASE_URL", &h.pipeline.database_url)
        .env("AMQP_URL", &h.pipeline.amqp_url)
        .env("PMA_SSO_LOG", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run pma-sso doctor");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// doctor's lines, in order.
const CHECKS: [&str; 7] = [
    "database",
    "broker",
    "token",
    "version",
    "outpost",
    "built-ins",
    "packages",
];

fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(&format!(" {name} — ")))
        .unwrap_or_else(|| panic!("no {name} line in:\n{out}"))
}

#[tokio::test]
async fn doctor_prints_one_green_line_per_dependency_when_all_is_well() {
    let h = Harness::start(&["grafana", "redmine", "uptime-kuma"]).await;
    let (code, out) = doctor(&h, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), CHECKS.len(), "{out}");
    for name in CHECKS {
        assert!(line(&out, name).starts_with("✓ "), "{out}");
    }
    assert!(line(&out, "token").contains("acts as"), "{out}");
    assert!(
        line(&out, "version").contains("tested 2025.12–2026.2"),
        "{out}"
    );
    assert!(
        line(&out, "packages").contains("3 manifests valid"),
        "{out}"
    );
    h.finish().await;
}

#[tokio::test]
async fn doctor_names_each_failure_and_exits_2() {
    let h = Harness::start(&["grafana"]).await;
    std::fs::create_dir_all(h.dir.path().join("packages/broken")).expect("dir");
    std::fs::write(
        h.dir.path().join("packages/broken/manifest.yaml"),
        "name: broken\nsso: {type: nope}\n",
    )
    .expect("manifest");
    let (code, out) = doctor(
        &h,
        &[
            ("AUTHENTIK_TOKEN", "not-the-token"),
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:9/nothing"),
            ("AMQP_URL", "amqp://guest:guest@127.0.0.1:9/%2f"),
        ],
    )
    .await;
    assert_eq!(code, 2, "{out}");
    for name in CHECKS {
        assert!(line(&out, name).starts_with("❌ "), "{name}: {out}");
    }
    assert!(line(&out, "packages").contains("broken"), "{out}");
    assert!(!out.contains("not-the-token"), "no secrets: {out}");

    // The token alone: only authentik's lines fail.
    std::fs::remove_dir_all(h.dir.path().join("packages/broken")).expect("rm");
    let (code, out) = doctor(&h, &[("AUTHENTIK_TOKEN", "not-the-token")]).await;
    assert_eq!(code, 2, "{out}");
    assert!(line(&out, "database").starts_with("✓ "), "{out}");
    assert!(line(&out, "token").starts_with("❌ "), "{out}");
    h.finish().await;
}

#[tokio::test]
async fn doctor_inline_checks_neither_database_nor_broker() {
    let h = Harness::start(&["grafana"]).await;
    // A database that does not exist and a broker nobody listens on: `--inline` uses neither.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"));
    cmd.args(["--inline", "doctor"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PMA_SSO_ENV_FILE", h.dir.path().join(".env"))
        .env(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/pma_sso_19_no_such_db",
        )
        .env("AMQP_URL", "amqp://guest:guest@127.0.0.1:9/%2f")
        .env("PMA_SSO_LOG", "error");
    let out = cmd.output().await.expect("run pma-sso --inline doctor");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    for name in ["token", "version", "outpost", "packages"] {
        assert!(line(&text, name).starts_with("✓ "), "{text}");
    }
    for name in ["database", "broker"] {
        assert!(
            !line(&text, name).starts_with("❌ "),
            "--inline must not check the {name}: {text}"
        );
        assert!(line(&text, name).contains("--inline"), "{text}");
    }
    h.finish().await;
}

#[tokio::test]
async fn doctor_error_lines_are_one_short_sentence_without_postgres_internals() {
    let h = Harness::start(&["grafana"]).await;
    let (code, out) = doctor(
        &h,
        &[(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/pma_sso_19_no_such_db",
        )],
    )
    .await;
    assert_eq!(code, 2, "{out}");
    let database = line(&out, "database");
    assert!(database.starts_with("❌ "), "{out}");
    assert!(database.contains("pma_sso_19_no_such_db"), "{database}");
    for internal in ["at line", ".c:", "error returned from database", "routine"] {
        assert!(!database.contains(internal), "{internal}: {database}");
    }
    for l in out.lines().filter(|l| l.starts_with("❌ ")) {
        assert!(l.chars().count() <= 200, "too long: {l}");
        let body = l.split_once(" — ").map_or(l, |(_, b)| b);
        assert_eq!(
            body.trim_end_matches('.').matches(". ").count(),
            0,
            "one sentence: {l}"
        );
    }
}

/// A fresh authentik answers before its blueprints have created the managed scope mappings:
/// `doctor` says it is not ready yet and names what is missing.
#[tokio::test]
async fn doctor_says_which_built_in_mappings_a_fresh_authentik_still_lacks() {
    let h = Harness::start(&["grafana"]).await;
    let openid = h
        .sim
        .scope_mappings()
        .into_iter()
        .find(|m| m["managed"] == "goauthentik.io/providers/oauth2/scope-openid")
        .expect("the stand-in has the managed openid mapping");
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/api/v3/propertymappings/provider/scope/{}/",
            h.sim.base_url(),
            openid["pk"].as_str().expect("pk")
        ))
        .bearer_auth(h.sim.token())
        .send()
        .await
        .expect("delete");
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let (code, out) = doctor(&h, &[]).await;
    assert_eq!(code, 2, "{out}");
    let builtins = line(&out, "built-ins");
    assert!(builtins.starts_with("❌ "), "{out}");
    assert!(builtins.contains("not ready yet"), "{out}");
    assert!(
        builtins.contains("goauthentik.io/providers/oauth2/scope-openid"),
        "{out}"
    );
    assert!(
        !builtins.contains("scope-email"),
        "only what is missing: {out}"
    );
    assert!(line(&out, "token").starts_with("✓ "), "{out}");
    h.finish().await;
}
