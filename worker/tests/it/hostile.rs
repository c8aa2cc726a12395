//! Hostile input, generated: `.env` files and queue messages. A `.env` of any content is read
//! or refused by line number without its text; an update keeps every other key and every other
//! byte; any message body ends in the dead-letter queue with its reason, and the worker goes on.
//!
//! Seeds are fixed and failure persistence is off, so a run is reproducible and writes nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use schemas::job::Action;
use worker::envfile::{self, EnvError, EnvFile};
use worker::pipeline::worker::Disposition;

use crate::pipeline::harness::Pipeline;

fn config(cases: u32, seed: u64) -> Config {
    Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: 2_000,
        ..Config::default()
    }
}

/// Cases per property; figures for the report come from these constants.
const ARBITRARY_ENV_CASES: u32 = 2_000;
const STRUCTURED_ENV_CASES: u32 = 800;
const ENV_SEQUENCE_CASES: u32 = 300;
const STEP_CASES: u32 = 400;

/// Written into generated `.env` text; no error may ever show it.
const MARKER: &str = "Zq9-marker-9qZ";

// ----- .env ------------------------------------------------------------------------------------

/// A value as an operator (or a tool) might write one, with the characters that break parsers.
fn arb_value() -> impl Strategy<Value = String> {
    let pool = prop::sample::select(vec![
        'a', 'Z', '0', '9', ' ', '\t', '\n', '\r', '#', '"', '\'', '\\', '$', '{', '}', '=', '`',
        'é', '✓', '\u{a0}', '\u{85}', '\u{2028}', '\x0b', '\x0c', '\x07', '\u{feff}', '😀', 'n',
        '0', '1',
    ]);
    prop_oneof![
        prop::collection::vec(pool, 0..16).prop_map(|c| c.into_iter().collect()),
        any::<String>().prop_map(|s| s.replace('\0', "")),
        Just(MARKER.to_owned()),
        Just("hunter2".to_owned()),
        Just("a=b=c".to_owned()),
        Just("\"quoted\"".to_owned()),
        Just("trailing\\".to_owned()),
        Just("line1\nline2".to_owned()),
    ]
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["K1", "K2", "K3", "export", "A.b-c", "_x", "SECRET"])
            .prop_map(str::to_owned),
        "[A-Za-z_][A-Za-z0-9_.-]{0,8}",
    ]
}

/// One line (or a multi-line statement) of a `.env` file, in the styles compose reads.
fn arb_line() -> impl Strategy<Value = String> {
    let marked = || arb_value().prop_map(|v| format!("{v}{MARKER}"));
    prop_oneof![
        Just(String::new()),
        Just("   \t".to_owned()),
        arb_value().prop_map(|v| format!("# {}", v.replace(['\n', '\r'], " "))),
        (arb_key(), arb_value()).prop_map(|(k, v)| format!("{k}={}", envfile::encode_value(&v))),
        (arb_key(), "[A-Za-z0-9_./:@,+=-]{0,12}").prop_map(|(k, v)| format!("{k}={v}")),
        (arb_key(), "[A-Za-z0-9 ]{0,12}").prop_map(|(k, v)| format!("{k} = {v} # note")),
        (arb_key(), "[^'\\\\]{0,12}").prop_map(|(k, v)| format!("{k}='{v}'")),
        (arb_key(), arb_value())
            .prop_map(|(k, v)| format!("export {k}={}", envfile::encode_value(&v))),
        (arb_key(), "[a-z\n]{0,12}").prop_map(|(k, v)| format!("{k}=\"{v}\"")),
        // Lines that are wrong, each carrying text no error may repeat.
        marked().prop_map(|v| format!("NOEQUALS {v}")),
        marked().prop_map(|v| format!("BAD KEY={v}")),
        marked().prop_map(|v| format!("K=\"{}", v.replace('"', ""))),
        marked().prop_map(|v| format!("K=\"x\" {v}")),
    ]
}

fn arb_env_text() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(arb_line(), 0..12),
    )
        .prop_map(|(bom, crlf, final_newline, lines)| {
            let newline = if crlf { "\r\n" } else { "\n" };
            let mut text = if bom {
                "\u{feff}".to_owned()
            } else {
                String::new()
            };
            text.push_str(&lines.join(newline));
            if final_newline && !lines.is_empty() {
                text.push_str(newline);
            }
            text
        })
}

/// Write `bytes` as the `.env` in `dir` and return its path.
fn env_with(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(".env");
    std::fs::write(&path, bytes).expect("write .env");
    path
}

fn snapshot(env: &EnvFile) -> Vec<(String, String)> {
    env.keys()
        .map(|k| (k.to_owned(), env.get(k).unwrap_or_default().to_owned()))
        .collect()
}

/// The property of one read: parsed, or refused by line number with none of the line's text.
fn read_judged(path: &Path) -> Result<Option<EnvFile>, TestCaseError> {
    match EnvFile::read(path) {
        Ok(env) => Ok(Some(env)),
        Err(error) => {
            let shown = error.to_string();
            prop_assert!(
                matches!(error, EnvError::Malformed { .. } | EnvError::NotUtf8 { .. }),
                "{error:?}"
            );
            prop_assert!(!shown.contains(MARKER), "the error shows the line: {shown}");
            prop_assert!(!shown.contains('\n'), "{shown}");
            Ok(None)
        }
    }
}

/// Update `key` in the file at `path` and check that nothing else changed: the other keys keep
/// their values and order, and the bytes outside `key`'s own statements are the same.
fn update_judged(path: &Path, key: &str, value: Option<&str>) -> Result<(), TestCaseError> {
    let before_bytes = std::fs::read(path).expect("read");
    let Some(before) = read_judged(path)? else {
        // A file that does not parse is never rewritten.
        let result = envfile::update(path, &[(key, value)]);
        prop_assert!(result.is_err(), "updated a malformed file");
        prop_assert!(
            !result
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains(MARKER)
        );
        prop_assert_eq!(std::fs::read(path).expect("read"), before_bytes);
        return Ok(());
    };
    let report = envfile::update(path, &[(key, value)])
        .map_err(|e| TestCaseError::fail(format!("update failed: {e}")))?;
    let after = EnvFile::read(path)
        .map_err(|e| TestCaseError::fail(format!("the written file does not parse: {e}")))?;
    prop_assert_eq!(after.get(key), value, "the key's new value");
    let others = |env: &EnvFile| -> Vec<(String, String)> {
        snapshot(env)
            .into_iter()
            .filter(|(k, _)| k != key)
            .collect()
    };
    prop_assert_eq!(others(&after), others(&before), "other keys");
    if before.get(key) != value {
        prop_assert!(!report.is_noop(), "a change reported as a no-op");
    }
    if report.is_noop() {
        prop_assert_eq!(
            std::fs::read(path).expect("read"),
            before_bytes,
            "a no-op rewrote"
        );
        return Ok(());
    }
    prop_assert_eq!(mode(path), 0o600);
    // Byte preservation: with `key` removed from both, the file before and after are the same
    // (up to the line break added before a key appended to a file without a final one).
    let dir = tempfile::tempdir().expect("tmp");
    let strip = |bytes: &[u8]| -> Vec<u8> {
        let copy = env_with(dir.path(), bytes);
        envfile::update(&copy, &[(key, None)]).expect("remove");
        std::fs::read(&copy).unwrap_or_default()
    };
    let old = strip(&before_bytes);
    let new = strip(&std::fs::read(path).expect("read"));
    let newline_added = |nl: &[u8]| [old.as_slice(), nl].concat() == new;
    prop_assert!(
        old == new || newline_added(b"\n") || newline_added(b"\r\n"),
        "bytes outside {key} changed:\nbefore {:?}\nafter  {:?}",
        String::from_utf8_lossy(&old),
        String::from_utf8_lossy(&new)
    );
    Ok(())
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
}

#[test]
fn any_bytes_read_as_a_dotenv_or_fail_by_line_number_without_the_text() {
    let dir = tempfile::tempdir().expect("tmp");
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        arb_env_text().prop_map(String::into_bytes),
        // Valid text cut at any byte, including inside a multi-byte character.
        (arb_env_text(), any::<prop::sample::Index>()).prop_map(|(t, i)| {
            let mut b = t.into_bytes();
            b.truncate(i.index(b.len() + 1));
            b
        }),
    ];
    let mut runner = TestRunner::new(config(ARBITRARY_ENV_CASES, 0x656e_7601));
    runner
        .run(&bytes, |bytes| {
            let path = env_with(dir.path(), &bytes);
            read_judged(&path)?;
            Ok(())
        })
        .expect("property");
}

#[test]
fn an_update_changes_its_key_and_keeps_every_other_key_and_byte() {
    let dir = tempfile::tempdir().expect("tmp");
    let case = (
        arb_env_text(),
        arb_key(),
        prop::option::weighted(0.8, arb_value()),
    );
    let mut runner = TestRunner::new(config(STRUCTURED_ENV_CASES, 0x656e_7602));
    runner
        .run(&case, |(text, key, value)| {
            let path = env_with(dir.path(), text.as_bytes());
            update_judged(&path, &key, value.as_deref())
        })
        .expect("property");
}

#[test]
fn a_sequence_of_updates_matches_a_model_of_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let change = (arb_key(), prop::option::weighted(0.75, arb_value()));
    let case = (arb_env_text(), prop::collection::vec(change, 1..8));
    let mut runner = TestRunner::new(config(ENV_SEQUENCE_CASES, 0x656e_7603));
    runner
        .run(&case, |(text, changes)| {
            let path = env_with(dir.path(), text.as_bytes());
            let Some(start) = read_judged(&path)? else {
                return Ok(());
            };
            let mut model: BTreeMap<String, String> = snapshot(&start).into_iter().collect();
            for (key, value) in &changes {
                envfile::update(&path, &[(key, value.as_deref())])
                    .map_err(|e| TestCaseError::fail(format!("update: {e}")))?;
                match value {
                    Some(v) => model.insert(key.clone(), v.clone()),
                    None => model.remove(key),
                };
                let now = EnvFile::read(&path)
                    .map_err(|e| TestCaseError::fail(format!("re-read: {e}")))?;
                let now: BTreeMap<String, String> = snapshot(&now).into_iter().collect();
                prop_assert_eq!(&now, &model);
            }
            Ok(())
        })
        .expect("property");
}

#[test]
fn update_refuses_invalid_keys_and_nul_values_without_touching_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let case = (any::<String>(), arb_value());
    let mut runner = TestRunner::new(config(1_000, 0x656e_7604));
    runner
        .run(&case, |(key, value)| {
            let path = env_with(dir.path(), b"KEEP=1\n");
            let with_nul = format!("{value}\0{MARKER}");
            let valid_key = key
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            let result = envfile::update(&path, &[(key.as_str(), Some(with_nul.as_str()))]);
            let error = result.expect_err("a NUL value or a bad key is refused");
            if valid_key {
                prop_assert!(matches!(error, EnvError::NulInValue { .. }), "{error:?}");
            } else {
                prop_assert!(matches!(error, EnvError::InvalidKey { .. }), "{error:?}");
            }
            prop_assert!(!error.to_string().contains(MARKER));
            prop_assert_eq!(std::fs::read(&path).expect("read"), b"KEEP=1\n".to_vec());
            Ok(())
        })
        .expect("property");
}

// ----- queue messages --------------------------------------------------------------------------

/// A message body: a job message for a job that does not exist, one with a field broken, JSON
/// of any shape, bytes, or an oversized body.
fn arb_body() -> impl Strategy<Value = Vec<u8>> {
    let id = any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string());
    let action = prop::sample::select(vec!["check", "add", "fix", "sweep", "CHECK", "delete"]);
    let service = prop_oneof![
        prop::sample::select(vec!["grafana", "*", "", "../etc", "Grafana", "a b"])
            .prop_map(str::to_owned),
        any::<String>(),
    ];
    let json_scalar = prop_oneof![
        Just(serde_json::Value::Null),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
    ];
    prop_oneof![
        (id.clone(), action.clone(), service.clone()).prop_map(|(id, action, service)| {
            serde_json::to_vec(
                &serde_json::json!({"job_id": id, "service": service, "action": action}),
            )
            .expect("json")
        }),
        (
            id,
            action,
            prop::sample::select(vec!["job_id", "service", "action", "extra"]),
            json_scalar
        )
            .prop_map(|(id, action, field, value)| {
                let mut json =
                    serde_json::json!({"job_id": id, "service": "grafana", "action": action});
                json[field] = value;
                serde_json::to_vec(&json).expect("json")
            }),
        prop::collection::vec(any::<u8>(), 0..128),
        "[\\[\\]{}\":,a-z0-9 ]{0,64}".prop_map(String::into_bytes),
        (4_097usize..6_000).prop_map(|n| vec![b'{'; n]),
    ]
}

#[test]
fn any_message_body_is_dead_lettered_with_its_reason_by_the_step() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let p = rt.block_on(Pipeline::new(&["grafana"]));
    let worker = p.worker(p.settings.clone());
    let (conn, publisher) = rt.block_on(p.publisher());
    // `run` takes an `Fn`: the bodies sent are collected through a cell.
    let sent = std::cell::RefCell::new(Vec::<Vec<u8>>::new());
    let mut runner = TestRunner::new(config(STEP_CASES, 0x6d73_6703));
    runner
        .run(&arb_body(), |body| {
            let disposition = rt
                .block_on(worker.step(&publisher, &body))
                .map_err(|e| TestCaseError::fail(format!("step failed: {e}")))?;
            prop_assert_eq!(disposition, Disposition::Ack);
            sent.borrow_mut().push(body);
            Ok(())
        })
        .expect("property");
    let sent = sent.into_inner();
    let dead = rt.block_on(p.drain(&p.topology().dead_queue()));
    assert_eq!(
        dead.len(),
        sent.len(),
        "every message is dead-lettered once"
    );
    for ((body, reason), sent) in dead.iter().zip(&sent) {
        assert_eq!(body, sent, "the dead letter carries the body as received");
        let reason = reason.as_deref().unwrap_or_default();
        assert!(
            reason.starts_with("not a job message")
                || reason.contains("too large for a job message")
                || reason == "no job row with this id"
                || reason == "job_id is not a UUID",
            "reason {reason:?} for {:?}",
            String::from_utf8_lossy(body)
        );
    }
    let jobs: i64 = rt
        .block_on(sqlx::query_scalar("select count(*) from jobs").fetch_one(&p.pool))
        .expect("count");
    assert_eq!(jobs, 0, "no message created a job");
    rt.block_on(async {
        let _ = conn.close(200, "bye".into()).await;
    });
    drop(p);
}

#[tokio::test]
async fn a_running_worker_dead_letters_hostile_messages_with_reasons_and_keeps_working() {
    let mut p = Pipeline::new(&["grafana"]).await;
    p.start_worker();
    let (conn, publisher) = p.publisher().await;
    let hostile: [(&[u8], &str); 6] = [
        (b"", "not a job message: EOF"),
        (b"{\"job_id\": \"1\", \"service\": \"grafana\", \"action\": \"check\"", "not a job message: EOF"),
        (
            b"{\"job_id\": \"00000000-0000-4000-8000-000000000000\", \"service\": \"grafana\", \"action\": \"check\"}",
            "no job row with this id",
        ),
        (
            b"{\"job_id\": \"00000000-0000-4000-8000-000000000000\", \"service\": \"../x\", \"action\": \"fix\"}",
            "not a job message: `../x` is not a service name",
        ),
        (
            b"{\"job_id\": \"00000000-0000-4000-8000-000000000000\", \"service\": \"grafana\", \"action\": \"drop\"}",
            "not a job message: unknown variant `drop`",
        ),
        (&[b' '; 5_000], "5000 bytes is too large for a job message"),
    ];
    for (body, _) in hostile {
        publisher
            .publish(&p.topology().work_queue(), body, Default::default())
            .await
            .expect("publish");
    }
    let job = p.enqueue("grafana", Action::Check).await;
    p.client
        .wait(&[job.id], Duration::from_secs(30), Duration::from_secs(30))
        .await
        .expect("the worker kept going");
    let mut dead = Vec::new();
    for _ in 0..100 {
        dead.extend(p.drain(&p.topology().dead_queue()).await);
        if dead.len() >= hostile.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(dead.len(), hostile.len(), "{dead:?}");
    for (body, reason) in hostile {
        let (_, got) = dead
            .iter()
            .find(|(b, _)| b.as_slice() == body)
            .unwrap_or_else(|| panic!("{:?} was not dead-lettered", String::from_utf8_lossy(body)));
        let got = got.as_deref().unwrap_or_default();
        assert!(
            got.starts_with(reason),
            "{got:?} does not start with {reason:?}"
        );
    }
    let _ = conn.close(200, "bye".into()).await;
    p.stop_workers().await;
}
