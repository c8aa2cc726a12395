//! `deploy/prometheus/alerts.yml` only names metrics and label values the code exports.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, concatenated.
fn sources(dir: &Path, into: &mut String) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push_str(&std::fs::read_to_string(&path).expect("source"));
        }
    }
}

#[test]
fn alert_rules_use_only_metrics_and_outcomes_the_worker_exports() {
    let text =
        std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).expect("alerts");
    let rules: serde_json::Value = serde_saphyr::from_str(&text).expect("YAML");
    let mut code = String::new();
    for dir in ["worker/src", "producer/src", "schemas/src"] {
        sources(&repo().join(dir), &mut code);
    }
    let exprs: Vec<&str> = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules"))
        .map(|r| {
            assert!(
                r["alert"].is_string() && r["annotations"]["summary"].is_string(),
                "{r}"
            );
            r["expr"].as_str().expect("expr")
        })
        .collect();
    for topic in ["dead", "drifted", "token", "queue"] {
        assert!(
            text.to_lowercase().contains(topic),
            "no alert about {topic}"
        );
    }
    let mut names = 0;
    for expr in &exprs {
        let mut rest = *expr;
        while let Some(at) = rest.find("pma_sso_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                code.contains(&format!("\"{name}\"")),
                "alerts.yml uses `{name}`, which nothing exports"
            );
            names += 1;
            rest = &rest[at + name.len()..];
        }
        for (label, value) in [
            ("outcome", "dead"),
            ("outcome", "failed"),
            ("outcome", "drifted"),
        ] {
            if expr.contains(&format!("{label}=\"{value}\"")) {
                assert!(
                    code.contains(&format!("\"{value}\"")),
                    "{label}={value} is never exported"
                );
            }
        }
    }
    assert!(names >= 5, "{exprs:?}");
}

/// `promtool test rules` (Debian's `prometheus` package; `.ci/run` installs it): each rule about
/// what the status listener exports fires when it should and not before. With `CI` set a
/// missing promtool fails the test, otherwise it is skipped with a note.
#[test]
fn the_alert_rules_fire_when_promtool_says_they_should() {
    let dir = repo().join("deploy/prometheus");
    let tests = std::fs::read_to_string(dir.join("alerts.test.yml")).expect("alerts.test.yml");
    for alert in [
        "PmaSsoServiceRed",
        "PmaSsoNoSweep",
        "PmaSsoNeverSwept",
        "PmaSsoSweepFailing",
        "PmaSsoDeadJobsWaiting",
        "PmaSsoNoLiveWorker",
    ] {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "alerts.test.yml does not test {alert}"
        );
    }
    let output = match std::process::Command::new("promtool")
        .args(["test", "rules", "alerts.test.yml"])
        .current_dir(&dir)
        .output()
    {
        Ok(output) => output,
        Err(e) if std::env::var_os("CI").is_none() => {
            println!("skipped: promtool not found ({e}); `apt-get install prometheus`");
            return;
        }
        Err(e) => panic!("promtool not found under CI: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}
