//! `docker-compose.yml` against the Compose specification's JSON Schema (vendored in
//! `deploy/compose-spec.json`), plus the invariants the stack depends on. No Docker engine runs
//! here; `docker-compose config` runs too when Debian's `docker-compose` is installed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compose() -> Value {
    let text =
        std::fs::read_to_string(repo().join("docker-compose.yml")).expect("docker-compose.yml");
    serde_saphyr::from_str(&text).expect("docker-compose.yml is YAML")
}

fn services(compose: &Value) -> &serde_json::Map<String, Value> {
    compose["services"]
        .as_object()
        .expect("services is a mapping")
}

#[test]
fn compose_file_validates_against_the_compose_specification() {
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/compose-spec.json")).expect("vendored spec"),
    )
    .expect("spec is JSON");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .build(&spec)
        .expect("the compose spec compiles");
    let compose = compose();
    let errors: Vec<String> = validator
        .iter_errors(&compose)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "docker-compose.yml does not validate:\n{}",
        errors.join("\n")
    );
    // Not vacuous: the spec rejects what it should.
    let mut broken = compose.clone();
    broken["services"]["postgres"]["healthcheck"]["interval"] = Value::from(vec![1]);
    assert!(!validator.is_valid(&broken));
}

#[test]
fn compose_stack_has_every_part_with_health_checks_and_healthy_dependencies() {
    let compose = compose();
    let services = services(&compose);
    for name in [
        "postgres",
        "rabbitmq",
        "authentik-server",
        "authentik-worker",
        "pma-sso-serve",
        "pma-sso-worker",
    ] {
        let service = services
            .get(name)
            .unwrap_or_else(|| panic!("service {name} missing"));
        assert!(
            service["healthcheck"]["test"].is_array(),
            "{name} has no health check"
        );
    }
    for (name, service) in services {
        let Some(deps) = service.get("depends_on") else {
            continue;
        };
        let deps = deps
            .as_object()
            .unwrap_or_else(|| panic!("{name}: depends_on must use the long form with conditions"));
        for (dep, how) in deps {
            assert!(
                services.contains_key(dep),
                "{name} depends on unknown {dep}"
            );
            assert_eq!(how["condition"], "service_healthy", "{name} → {dep}");
        }
    }
    for name in ["pma-sso-serve", "pma-sso-worker"] {
        let deps = services[name]["depends_on"]
            .as_object()
            .expect("depends_on");
        for dep in ["postgres", "rabbitmq", "authentik-server"] {
            assert!(deps.contains_key(dep), "{name} must wait for {dep}");
        }
    }
    for name in ["authentik-server", "authentik-worker"] {
        let env = &services[name]["environment"];
        for key in ["AUTHENTIK_BOOTSTRAP_TOKEN", "AUTHENTIK_BOOTSTRAP_PASSWORD"] {
            let v = env[key]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: {key} missing"));
            assert!(
                v.starts_with("${"),
                "{name}: {key} must come from .env, not the file"
            );
        }
    }
}

/// pma-sso renames temp files over `.env` and manifests: the directory must be mounted, never
/// the files themselves, and the settings must point inside that mount.
#[test]
fn pma_sso_services_mount_the_directory_holding_env_and_packages() {
    let compose = compose();
    for name in ["pma-sso-serve", "pma-sso-worker"] {
        let service = &services(&compose)[name];
        let volumes = service["volumes"].as_array().expect("volumes");
        let mut dir_target = None;
        for v in volumes {
            let (source, target) = match v {
                Value::String(s) => {
                    let mut parts = s.split(':');
                    (
                        parts.next().unwrap_or("").to_owned(),
                        parts.next().unwrap_or("").to_owned(),
                    )
                }
                v => (
                    v["source"].as_str().unwrap_or("").to_owned(),
                    v["target"].as_str().unwrap_or("").to_owned(),
                ),
            };
            for end in [".env", "manifest.yaml", "packages"] {
                assert!(
                    !source.ends_with(end) && !target.ends_with(end),
                    "{name}: `{source}:{target}` bind-mounts a file or sub-directory pma-sso renames into"
                );
            }
            if source == "." || source == "./" {
                dir_target = Some(target);
            }
        }
        let dir =
            dir_target.unwrap_or_else(|| panic!("{name}: the project directory is not mounted"));
        // The process environment wins over .env: loading .env at start would hide what
        // pma-sso writes there later.
        assert!(
            service.get("env_file").is_none(),
            "{name} must not load .env as env_file"
        );
        let env = &service["environment"];
        assert_eq!(env["PMA_SSO_ENV_FILE"], format!("{dir}/.env"), "{name}");
        assert_eq!(env["PMA_SSO_PACKAGES"], format!("{dir}/packages"), "{name}");
    }
}

/// Every `${VAR:?…}` the compose file requires is in `.env.example`, with a placeholder value.
#[test]
fn env_example_names_every_required_variable_without_real_secrets() {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).expect("compose");
    let required: BTreeSet<&str> = text
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once(":?").map(|(k, _)| k))
        .filter(|k| !k.contains('}'))
        .collect();
    assert!(required.contains("AUTHENTIK_BOOTSTRAP_TOKEN"));
    let example = std::fs::read_to_string(repo().join(".env.example")).expect(".env.example");
    for key in &required {
        let line = example
            .lines()
            .find(|l| l.starts_with(&format!("{key}=")))
            .unwrap_or_else(|| panic!(".env.example lacks {key}"));
        assert_eq!(
            line,
            format!("{key}=change-me"),
            "a placeholder, not a secret"
        );
    }
    let ignore = std::fs::read_to_string(repo().join(".gitignore")).expect(".gitignore");
    assert!(
        ignore.lines().any(|l| l.trim() == ".env"),
        ".env must stay out of git"
    );
}

#[test]
fn dockerfile_is_multi_stage_and_ships_both_binaries() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    assert!(text.lines().filter(|l| l.starts_with("FROM ")).count() >= 2);
    assert!(text.contains("AS build") && text.contains("COPY --from=build"));
    for bin in ["pma-sso", "pma-sso-worker"] {
        assert!(
            text.contains(&format!("/out/{bin}")),
            "{bin} is not copied into the image"
        );
    }
}

/// Debian's `docker-compose` resolves the file the way an operator's would (interpolation,
/// anchors, merges); skipped with a note when it is not installed.
#[test]
fn docker_compose_config_accepts_the_file_when_installed() {
    let Ok(out) = std::process::Command::new("docker-compose")
        .arg("version")
        .output()
    else {
        eprintln!("note: docker-compose is not installed; only the schema validation ran");
        return;
    };
    assert!(out.status.success());
    let dir = tempfile::tempdir().expect("tempdir");
    for file in ["docker-compose.yml", "Dockerfile"] {
        std::fs::copy(repo().join(file), dir.path().join(file)).expect("copy");
    }
    std::fs::copy(repo().join(".env.example"), dir.path().join(".env")).expect("copy");
    let out = std::process::Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config", "-q"])
        .current_dir(dir.path())
        .output()
        .expect("docker-compose config");
    assert!(
        out.status.success(),
        "docker-compose config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
