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
        for dep in ["postgres", "rabbitmq"] {
            assert!(deps.contains_key(dep), "{name} must wait for {dep}");
        }
        // authentik may be outside the stack (profile off): nothing of ours may need it.
        for dep in deps.keys() {
            assert!(!dep.starts_with("authentik"), "{name} depends on {dep}");
        }
        let url = services[name]["environment"]["AUTHENTIK_URL"]
            .as_str()
            .unwrap_or("");
        assert!(
            url.starts_with("${AUTHENTIK_URL:-"),
            "{name}: AUTHENTIK_URL must come from .env for an external authentik: {url}"
        );
    }
    // The bundled authentik is a profile, pinned to the release the contract suite proves.
    for name in ["authentik-server", "authentik-worker"] {
        assert_eq!(
            services[name]["profiles"],
            serde_json::json!(["authentik"]),
            "{name}"
        );
        assert_eq!(
            services[name]["image"], "ghcr.io/goauthentik/server:2025.12.4",
            "{name}"
        );
    }
    // Debian's docker-compose 1.29 rejects a top-level `name:`.
    assert!(
        compose.get("name").is_none(),
        "no top-level name: (docker-compose 1.29)"
    );
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

fn ci_override() -> Value {
    let text = std::fs::read_to_string(repo().join(".ci/stack/docker-compose.ci.yml"))
        .expect(".ci/stack/docker-compose.ci.yml");
    serde_saphyr::from_str(&text).expect("the override is YAML")
}

/// CI's override may swap images and add test-only services; of the pma-sso services it
/// changes nothing else (commands, health checks, volumes, depends_on, environment).
#[test]
fn ci_override_changes_only_the_images_of_the_stack_services() {
    let compose = compose();
    let stack = services(&compose);
    let ci = ci_override();
    let overridden = services(&ci);
    for (name, service) in overridden {
        if !stack.contains_key(name) {
            continue; // a test-only service (stand-ins, exec recorders)
        }
        let keys: Vec<&String> = service.as_object().expect("mapping").keys().collect();
        assert_eq!(
            keys,
            ["image"],
            "the override changes {name} beyond its image"
        );
    }
    for name in ["pma-sso-serve", "pma-sso-worker", "postgres", "rabbitmq"] {
        assert!(
            overridden.contains_key(name),
            "{name} keeps an image CI cannot build"
        );
    }
    // The exec deliveries of the bundled manifests have a container to land in.
    for name in ["redmine", "gitea", "nextcloud", "backend", "stand-ins"] {
        assert!(overridden.contains_key(name), "override lacks {name}");
        assert!(!stack.contains_key(name), "{name} is test-only");
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
    // The external-authentik set-up with CI's override resolves too.
    std::fs::copy(
        repo().join(".ci/stack/docker-compose.ci.yml"),
        dir.path().join("ci.yml"),
    )
    .expect("copy");
    let env = std::fs::read_to_string(dir.path().join(".env")).expect(".env");
    assert!(
        env.contains("\nCOMPOSE_PROFILES=authentik\n"),
        "bundled by default"
    );
    let external = env.replace("\nCOMPOSE_PROFILES=authentik\n", "\nCOMPOSE_PROFILES=\n");
    std::fs::write(dir.path().join(".env"), external).expect("write .env");
    let out = std::process::Command::new("docker-compose")
        .args([
            "-f",
            "docker-compose.yml",
            "-f",
            "ci.yml",
            "config",
            "--services",
        ])
        .env_remove("COMPOSE_PROFILES")
        .env("PMA_SSO_HOST_BIN", "/nonexistent")
        .current_dir(dir.path())
        .output()
        .expect("docker-compose config");
    // (1.29's `config --services` lists every service whatever the profiles; the stack test
    // shows no authentik container starts.)
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listed.lines().any(|l| l == "stand-ins"), "{listed}");
}

/// `major.minor` of a version such as `1.94`, `1.94.0` or `1.94-bookworm`.
fn minor_version(text: &str) -> (u64, u64) {
    let mut parts = text.split(['.', '-']);
    let mut next = || {
        parts
            .next()
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("`{text}` is not a version"))
    };
    (next(), next())
}

/// The image builds with `cargo build --locked` only on a Rust as new as every locked crate
/// wants: the Dockerfile's Rust image, the workspace's `rust-version` and the newest
/// `rust_version` of the resolved packages (`cargo metadata`; `Cargo.lock` does not say) agree.
#[test]
fn dockerfile_rust_version_is_the_newest_any_locked_crate_declares() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(repo())
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let workspace_members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut newest = ((0, 0), String::new());
    let mut ours = BTreeSet::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let Some(rust_version) = package["rust_version"].as_str() else {
            continue;
        };
        let id = package["id"].as_str().unwrap_or("");
        if workspace_members.contains(id) {
            ours.insert(minor_version(rust_version));
            continue;
        }
        let version = minor_version(rust_version);
        if version > newest.0 {
            newest = (
                version,
                format!("{} {}", package["name"], package["version"]),
            );
        }
    }
    assert!(
        newest.0 >= (1, 85),
        "no locked crate declared a rust_version"
    );
    let workspace = *ours
        .iter()
        .next()
        .expect("the workspace crates declare rust-version");
    assert_eq!(ours.len(), 1, "the workspace crates disagree: {ours:?}");
    assert_eq!(
        workspace, newest.0,
        "Cargo.toml's rust-version is {workspace:?}, but {} wants {:?}",
        newest.1, newest.0
    );

    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let image = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_IMAGE="))
        .expect("the Dockerfile has `ARG RUST_IMAGE=` (a build argument CI can substitute)");
    let tag = image
        .rsplit_once(':')
        .map(|(_, tag)| tag)
        .unwrap_or_else(|| panic!("RUST_IMAGE `{image}` is not pinned to a tag"));
    assert_eq!(
        minor_version(tag),
        newest.0,
        "the Dockerfile builds with `{image}`, but {} wants Rust {:?}",
        newest.1,
        newest.0
    );
}
