//! The broken-manifest table: each entry must be rejected by the parser with an error that names
//! the file, the field and the problem — quickly and without panicking — and, where JSON Schema
//! can express the rule, by the committed JSON Schema as well.

use std::path::Path;
use std::time::{Duration, Instant};

use schemas::parse_manifest;

use crate::bundled::{committed_schema, repo_root};

struct Case {
    what: &'static str,
    yaml: String,
    field: &'static str,
    problem: &'static str,
    schema_rejects: bool,
}

fn case(
    what: &'static str,
    yaml: &str,
    field: &'static str,
    problem: &'static str,
    schema_rejects: bool,
) -> Case {
    Case {
        what,
        yaml: yaml.to_owned(),
        field,
        problem,
        schema_rejects,
    }
}

fn alias_bomb() -> String {
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = i - 1;
        yaml.push_str(&format!(
            "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
        ));
    }
    yaml.push_str("name: bomb\nsso:\n  type: oauth\n  redirect_path: /cb\n");
    yaml
}

fn cases() -> Vec<Case> {
    let base = |rest: &str| format!("name: svc\nsso:\n{rest}");
    vec![
        case(
            "unknown type",
            &base("  type: ldap\n  redirect_path: /cb\n"),
            "sso.type",
            "unknown type `ldap`",
            true,
        ),
        case(
            "missing type",
            &base("  redirect_path: /cb\n"),
            "sso.type",
            "missing",
            true,
        ),
        case(
            "missing redirect path",
            &base("  type: oauth\n"),
            "sso",
            "missing field `redirect_path`",
            true,
        ),
        case(
            "path without leading slash",
            &base("  type: oidc\n  redirect_path: login/cb\n"),
            "sso.redirect_path",
            "must start with '/'",
            true,
        ),
        case(
            "path with a scheme",
            &base("  type: oidc\n  redirect_path: https://evil.example/cb\n"),
            "sso.redirect_path",
            "has a scheme",
            true,
        ),
        case(
            "path that is another host",
            &base("  type: oidc\n  redirect_path: //evil.example/cb\n"),
            "sso.redirect_path",
            "another host",
            true,
        ),
        case(
            "traversal in a listed path",
            &base("  type: oidc\n  redirect_path: [/ok, /a/../b]\n"),
            "sso.redirect_path[1]",
            "'..' segment",
            true,
        ),
        case(
            "empty path list",
            &base("  type: oidc\n  redirect_path: []\n"),
            "sso.redirect_path",
            "empty",
            true,
        ),
        case(
            "bad service name",
            "name: Bad_Name\nsso:\n  type: oauth\n  redirect_path: /cb\n",
            "name",
            "not a valid service name",
            true,
        ),
        case(
            "path traversal in a file reference",
            &base(
                "  type: oidc\n  redirect_path: /cb\n  deliver:\n    - file:\n        template: ../../etc/passwd\n        path: out\n",
            ),
            "sso.deliver[0].file.template",
            "'..' segment",
            true,
        ),
        case(
            "absolute file reference",
            &base(
                "  type: oidc\n  redirect_path: /cb\n  mappings:\n    - {name: x, scope_name: x, expression_file: /etc/shadow}\n",
            ),
            "sso.mappings[0].expression_file",
            "is absolute",
            true,
        ),
        case(
            "wrong YAML type for configured",
            &base("  type: oauth\n  redirect_path: /cb\n  configured: maybe\n"),
            "sso.configured",
            "invalid type",
            true,
        ),
        case(
            "wrong YAML type for redirect path",
            &base("  type: oauth\n  redirect_path: 5\n"),
            "sso.redirect_path",
            "invalid type",
            true,
        ),
        case(
            "unknown field",
            &base("  type: oauth\n  redirect_path: /cb\n  redirect_uri: /x\n"),
            "sso.redirect_uri",
            "unknown field `redirect_uri`",
            true,
        ),
        case(
            "field of another type",
            &base("  type: saml\n  redirect_path: /cb\n  saml: {acs_path: /acs}\n"),
            "sso.redirect_path",
            "unknown field `redirect_path`",
            true,
        ),
        case(
            "duplicate key",
            "name: svc\nname: other\nsso:\n  type: oauth\n  redirect_path: /cb\n",
            "(yaml)",
            "key `name` appears twice in the same mapping",
            false,
        ),
        case("YAML alias bomb", &alias_bomb(), "(yaml)", "alias", false),
        case(
            "not a mapping",
            "- just\n- a list\n",
            "(document)",
            "expected a mapping",
            true,
        ),
        case(
            "unknown scope",
            &base("  type: oidc\n  redirect_path: /cb\n  client:\n    scopes: [openid, groups]\n"),
            "sso.client.scopes[1]",
            "unknown scope `groups`",
            false,
        ),
        case(
            "unknown template placeholder",
            &base(
                "  type: oidc\n  redirect_path: /cb\n  deliver:\n    - env:\n        vars: {X: \"{{service.nope}}\"}\n",
            ),
            "sso.deliver[0].env.vars.X",
            "unknown placeholder",
            false,
        ),
        case(
            "secret in an exec argv",
            &base(
                "  type: oidc\n  redirect_path: /cb\n  deliver:\n    - exec:\n        argv: [tool, \"--secret={{client_secret}}\"]\n",
            ),
            "sso.deliver[0].exec.argv[1]",
            "holds a secret",
            false,
        ),
        case(
            "proxy mode without internal url",
            &base("  type: proxy\n  proxy: {mode: proxy}\n"),
            "sso.proxy.internal_url",
            "required when mode is `proxy`",
            false,
        ),
        case(
            "SAML attribute that names no mapping",
            &base("  type: saml\n  saml: {acs_path: /acs, attributes: [email, nickname]}\n"),
            "sso.saml.attributes[1]",
            "`nickname` is neither the name of a mapping in sso.mappings nor one of authentik's SAML mappings",
            false,
        ),
        case(
            "SAML certificate inside a longer value",
            &base(
                "  type: saml\n  saml: {acs_path: /acs}\n  deliver:\n    - env:\n        vars: {IDP_CERT: \"{{auth.saml_cert_pem}}\"}\n",
            ),
            "sso.deliver[0].env.vars.IDP_CERT",
            "can only be the whole value of an http setting",
            false,
        ),
        case(
            "SAML certificate embedded in an http setting string",
            &base(
                "  type: saml\n  saml: {acs_path: /acs}\n  deliver:\n    - http:\n        list_url: http://x/s\n        item_url: http://x/s\n        value_pointer: /v\n        settings: {cert: \"cert={{auth.saml_cert_pem}}\"}\n",
            ),
            "sso.deliver[0].http.settings.cert",
            "can only be the whole value of an http setting",
            false,
        ),
        case(
            "mapping with both expression sources",
            &base(
                "  type: oidc\n  redirect_path: /cb\n  mappings:\n    - {name: x, scope_name: x, expression: 'return {}', expression_file: x.py}\n",
            ),
            "sso.mappings[0]",
            "not both",
            false,
        ),
        case(
            "bad env key",
            &base("  type: oidc\n  redirect_path: /cb\n  client:\n    id_env: 1BAD\n"),
            "sso.client.id_env",
            "not a valid environment variable",
            true,
        ),
        case(
            "reserved slug",
            &base("  type: oidc\n  redirect_path: /cb\n  slug: token\n"),
            "sso.slug",
            "reserves",
            true,
        ),
        case(
            "empty document",
            "",
            "(document)",
            "expected a mapping",
            true,
        ),
    ]
}

#[test]
fn every_broken_manifest_is_rejected_with_file_field_and_problem() {
    let file = Path::new("packages/svc/manifest.yaml");
    let validator = jsonschema::validator_for(&committed_schema()).expect("schema compiles");
    let cases = cases();
    assert!(cases.len() >= 12);
    for case in cases {
        let started = Instant::now();
        let result = std::panic::catch_unwind(|| parse_manifest(file, &case.yaml));
        let elapsed = started.elapsed();
        let error = match result {
            Ok(Err(e)) => e,
            Ok(Ok(m)) => panic!("{}: accepted as {m:?}", case.what),
            Err(_) => panic!("{}: the parser panicked", case.what),
        };
        let text = error.to_string();
        assert_eq!(error.field, case.field, "{}: {text}", case.what);
        assert!(
            text.starts_with("packages/svc/manifest.yaml: "),
            "{}: {text}",
            case.what
        );
        assert!(
            text.contains(case.problem),
            "{}: `{text}` lacks `{}`",
            case.what,
            case.problem
        );
        assert!(
            !text.contains('\n'),
            "{}: multi-line error {text}",
            case.what
        );
        // Generous bound: it guards against exponential blow-up (alias bombs), not speed.
        assert!(
            elapsed < Duration::from_secs(2),
            "{}: took {elapsed:?}",
            case.what
        );
        if case.schema_rejects {
            let value: serde_json::Value = match serde_saphyr::from_str(&case.yaml) {
                Ok(v) => v,
                Err(_) => continue,
            };
            assert!(
                !validator.is_valid(&value),
                "{}: the JSON Schema accepts it",
                case.what
            );
        }
    }
}

#[test]
fn a_package_whose_name_differs_from_its_directory_is_rejected() {
    let dir = tempfile_dir();
    let pkg = dir.join("grafana");
    std::fs::create_dir_all(&pkg).expect("mkdir");
    std::fs::write(
        pkg.join("manifest.yaml"),
        "name: other\nsso:\n  type: oidc\n  redirect_path: /cb\n",
    )
    .expect("write");
    let loaded = schemas::load_packages(&dir).expect("read dir");
    let err = loaded[0].as_ref().expect_err("mismatch");
    assert_eq!(err.field, "name");
    assert!(
        err.to_string().contains("package directory is `grafana`"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn two_packages_claiming_one_slug_or_env_key_are_reported_on_the_later() {
    let dir = tempfile_dir();
    for (name, extra) in [
        ("alpha", "  slug: shared\n"),
        ("beta", "  slug: shared\n"),
        ("gamma", "  client:\n    id_env: ALPHA_SSO_CLIENT_ID\n"),
    ] {
        std::fs::create_dir_all(dir.join(name)).expect("mkdir");
        std::fs::write(
            dir.join(name).join("manifest.yaml"),
            format!("name: {name}\nsso:\n  type: oidc\n  redirect_path: /cb\n{extra}"),
        )
        .expect("write");
    }
    let loaded = schemas::load_packages(&dir).expect("read dir");
    assert!(loaded[0].is_ok());
    let beta = loaded[1].as_ref().expect_err("duplicate slug");
    assert!(
        beta.to_string()
            .contains("authentik slug `shared` is already claimed by package `alpha`"),
        "{beta}"
    );
    let gamma = loaded[2].as_ref().expect_err("duplicate env key");
    assert!(gamma.to_string().contains("ALPHA_SSO_CLIENT_ID"), "{gamma}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_oversized_manifest_is_refused_before_parsing() {
    let text = format!(
        "name: big\n# {}\nsso:\n  type: oidc\n  redirect_path: /cb\n",
        "x".repeat(300 * 1024)
    );
    let err = parse_manifest(Path::new("m.yaml"), &text).expect_err("too big");
    assert_eq!(err.field, "(file)");
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = repo_root()
        .join("target")
        .join(format!("schemas-test-{}", std::process::id()))
        .join(format!("{:x}", rand_suffix()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
