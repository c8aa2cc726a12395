//! The justfile offers the operator recipes and nothing that points nowhere. `just` itself is
//! usually not installed here; when it is, it must parse the file the same way.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Recipe names: unindented lines `name args…:` that are not settings or assignments.
fn recipes(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with([' ', '\t', '#']) && !l.starts_with("set "))
        .filter(|l| !l.contains(":=") && l.contains(':'))
        .filter_map(|l| l.split([' ', ':']).next().map(str::to_owned))
        .filter(|n| !n.is_empty())
        .collect()
}

#[test]
fn justfile_has_the_operator_recipes_and_bench_only_with_a_bench_crate() {
    let text = std::fs::read_to_string(repo().join("justfile")).expect("justfile");
    let found = recipes(&text);
    for want in [
        "sso-check",
        "sso-add",
        "sso-fix",
        "sso-fix-all",
        "demo",
        "test",
    ] {
        assert!(
            found.contains(want),
            "justfile lacks `{want}` (has {found:?})"
        );
    }
    assert!(text.contains("sso-add svc:") && text.contains("sso-fix svc:"));
    assert!(text.contains("bash scripts/demo.sh") && repo().join("scripts/demo.sh").exists());
    assert!(text.contains("cargo test --workspace"));
    let bench_crate = repo().join("bench/Cargo.toml").exists();
    assert_eq!(text.contains("cargo run --release -p bench"), bench_crate);
    assert_eq!(
        found.contains("bench"),
        bench_crate,
        "a `bench` recipe exactly when the bench crate exists"
    );
    if let Ok(out) = std::process::Command::new("just")
        .args(["--summary"])
        .current_dir(repo())
        .output()
    {
        assert!(
            out.status.success(),
            "just: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        assert_eq!(listed, found, "just and this test read different recipes");
    } else {
        eprintln!("note: `just` is not installed; the justfile was checked by reading it");
    }
}
