//! Hostile input, generated: manifests (mutations of the bundled ones, YAML-shaped token soup,
//! arbitrary text) and queue message bodies. Every input ends in `Ok` or an error that names the
//! file, the field and the problem on one line — never a panic. Alias bombs of every shape are
//! rejected by the parser's alias limits.
//!
//! Seeds are fixed and failure persistence is off, so a run is reproducible and writes nothing.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use schemas::job::{Action, JobMessage, SWEEP_TARGET};
use schemas::{Manifest, parse_manifest};
use serde_json::Value;

use crate::bundled::repo_root;

const FILE: &str = "packages/svc/manifest.yaml";

/// An error text longer than this is not "a clear error": it is the input echoed back.
const MAX_ERROR_CHARS: usize = 600;

fn config(cases: u32, seed: u64) -> Config {
    Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        // Shrinking a failure of a 2 KB manifest can take long; the first failure is enough.
        max_shrink_iters: 2_000,
        ..Config::default()
    }
}

/// Every bundled manifest, as text and as the JSON value its YAML reads as.
fn bundled() -> &'static [(String, Value)] {
    static BUNDLED: std::sync::OnceLock<Vec<(String, Value)>> = std::sync::OnceLock::new();
    BUNDLED.get_or_init(|| {
        let mut out = Vec::new();
        let mut dirs: Vec<_> = std::fs::read_dir(repo_root().join("packages"))
            .expect("packages")
            .map(|e| e.expect("entry").path())
            .collect();
        dirs.sort();
        for dir in dirs {
            let text = std::fs::read_to_string(dir.join("manifest.yaml")).expect("manifest");
            let value: Value = serde_saphyr::from_str(&text).expect("bundled manifests are YAML");
            out.push((text, value));
        }
        assert!(out.len() >= 12, "found {} bundled manifests", out.len());
        out
    })
}

/// Use everything an accepted manifest offers: accessors must not panic on what the parser let
/// through.
fn exercise(manifest: &Manifest) {
    let _ = manifest.kind();
    let _ = manifest.display_name();
    let _ = manifest.slug();
    let _ = manifest.configured();
    let _ = manifest.auto_fix();
    let _ = manifest.flows();
    let _ = manifest.deliveries();
    let _ = manifest.compose_service();
    let _ = manifest.restart();
    let _ = manifest.oauth();
    let _ = manifest.client_id_env();
    let _ = manifest.client_secret_env();
}

/// The property every manifest input must hold.
fn judged(text: &str) -> Result<(), TestCaseError> {
    match parse_manifest(Path::new(FILE), text) {
        Ok(manifest) => {
            exercise(&manifest);
            // Accepting is deterministic: the same text parses to the same manifest.
            let again = parse_manifest(Path::new(FILE), text);
            prop_assert!(again.as_ref().is_ok_and(|m| *m == manifest));
        }
        Err(error) => {
            let shown = error.to_string();
            prop_assert!(!error.field.is_empty(), "no field: {shown}");
            prop_assert!(!error.problem.trim().is_empty(), "no problem: {shown}");
            prop_assert!(shown.starts_with(&format!("{FILE}: ")), "{shown}");
            prop_assert!(!shown.contains('\n'), "multi-line error: {shown}");
            prop_assert!(
                shown.chars().count() <= MAX_ERROR_CHARS,
                "a {}-character error: {}…",
                shown.chars().count(),
                shown.chars().take(200).collect::<String>()
            );
        }
    }
    Ok(())
}

// ----- manifests: strategies ------------------------------------------------------------------

/// Any JSON value, a few levels deep, with the scalars YAML makes interesting.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z/_.{}$:-]{0,24}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
        prop::sample::select(vec![
            "oauth",
            "oidc",
            "saml",
            "proxy",
            "wikijs",
            "frappe",
            "/cb",
            "",
            "{{client_secret}}",
            "${DOMAIN}",
            "{{service.url}}",
            "{{secret:X}}",
            "${",
            "{{",
            "openid",
            "true",
            "~",
            "https://x.example/cb",
            "../etc/passwd",
            "A-B",
            "_X",
            "0",
            "yes",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Paths to every node of `value`, in pre-order (the root is the empty path).
fn node_paths(value: &Value, here: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    out.push(here.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                here.push(PathStep::Key(k.clone()));
                node_paths(v, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                here.push(PathStep::Index(i));
                node_paths(v, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn path_at<'p>(paths: &'p [Vec<PathStep>], at: &prop::sample::Index) -> &'p [PathStep] {
    at.get::<Vec<PathStep>>(paths)
}

fn node_mut<'v>(value: &'v mut Value, path: &[PathStep]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |v, step| match step {
        PathStep::Key(k) => v.get_mut(k.as_str()),
        PathStep::Index(i) => v.get_mut(*i),
    })
}

/// One structural change to a manifest's value.
#[derive(Clone, Debug)]
enum Edit {
    /// Replace the node with any value.
    Replace(prop::sample::Index, Value),
    /// Remove the node from its parent.
    Remove(prop::sample::Index),
    /// Add a key (often a known one) to a mapping node.
    Insert(prop::sample::Index, String, Value),
    /// Replace the node with a copy of another node.
    Copy(prop::sample::Index, prop::sample::Index),
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "name",
            "sso",
            "type",
            "redirect_path",
            "redirect_paths",
            "configured",
            "client",
            "scopes",
            "deliver",
            "env",
            "exec",
            "http",
            "file",
            "saml",
            "proxy",
            "wikijs",
            "frappe",
            "subdomain",
            "host",
            "internal_url",
            "client_id_env",
            "client_secret_env",
            "signing_key",
            "mode",
            "argv",
            "restart",
            "auto_fix",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,10}",
    ];
    prop_oneof![
        (any::<prop::sample::Index>(), arb_json()).prop_map(|(i, v)| Edit::Replace(i, v)),
        any::<prop::sample::Index>().prop_map(Edit::Remove),
        (any::<prop::sample::Index>(), key, arb_json()).prop_map(|(i, k, v)| Edit::Insert(i, k, v)),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Edit::Copy(a, b)),
    ]
}

fn apply_edit(value: &mut Value, edit: &Edit) {
    let mut paths = Vec::new();
    node_paths(value, &mut Vec::new(), &mut paths);
    match edit {
        Edit::Replace(at, new) => {
            if let Some(node) = node_mut(value, path_at(&paths, at)) {
                *node = new.clone();
            }
        }
        Edit::Remove(at) => {
            let path = path_at(&paths, at);
            if let Some((last, parent)) = path.split_last()
                && let Some(parent) = node_mut(value, parent)
            {
                match (parent, last) {
                    (Value::Object(map), PathStep::Key(k)) => {
                        map.remove(k);
                    }
                    (Value::Array(items), PathStep::Index(i)) if *i < items.len() => {
                        items.remove(*i);
                    }
                    _ => {}
                }
            }
        }
        Edit::Insert(at, key, new) => {
            if let Some(Value::Object(map)) = node_mut(value, path_at(&paths, at)) {
                map.insert(key.clone(), new.clone());
            }
        }
        Edit::Copy(from, to) => {
            let source = node_mut(value, path_at(&paths, from)).cloned();
            if let (Some(source), Some(target)) = (source, node_mut(value, path_at(&paths, to))) {
                *target = source;
            }
        }
    }
}

/// One change to a manifest's text, wherever it lands (mid-token, mid-indentation, …).
#[derive(Clone, Debug)]
enum TextEdit {
    Delete(prop::sample::Index, usize),
    Insert(prop::sample::Index, String),
    DuplicateLine(prop::sample::Index),
    SwapLines(prop::sample::Index, prop::sample::Index),
    Truncate(prop::sample::Index),
    Indent(prop::sample::Index, usize),
}

fn yaml_token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "&a ", "*a", "&b ", "*b", "<<: ", "<<: *a", "- ", ": ", "{", "}", "[", "]", ",",
            "!!binary ", "!!str ", "!!map ", "!tag ", "!<x> ", "---\n", "...\n", "|\n", ">-\n",
            "|+2\n", "\"", "'", "#", "\n", "\n  ", "\n    ", "\t", "? ", "%YAML 1.2\n",
            "%TAG ! tag:x,2000:\n", "name", "sso", "type", "oauth", "saml", "redirect_path",
            "/cb", "configured", "false", "~", "null", "0x1F", ".inf", "1e400", "\\", "\u{feff}",
            "\r\n", "\0", "\u{2028}", "é", "{{client_secret}}", "${DOMAIN}", "deliver", "exec",
            "argv", "env",
        ])
        .prop_map(str::to_owned),
        1 => "[ -~]{1,8}",
    ]
}

fn arb_text_edit() -> impl Strategy<Value = TextEdit> {
    let at = any::<prop::sample::Index>;
    prop_oneof![
        (at(), 1..40usize).prop_map(|(i, n)| TextEdit::Delete(i, n)),
        (
            at(),
            prop::collection::vec(yaml_token(), 1..4).prop_map(|t| t.concat())
        )
            .prop_map(|(i, s)| TextEdit::Insert(i, s)),
        at().prop_map(TextEdit::DuplicateLine),
        (at(), at()).prop_map(|(a, b)| TextEdit::SwapLines(a, b)),
        at().prop_map(TextEdit::Truncate),
        (at(), 1..6usize).prop_map(|(i, n)| TextEdit::Indent(i, n)),
    ]
}

/// The nearest char boundary at or before `index` of `text`.
fn boundary(text: &str, index: &prop::sample::Index) -> usize {
    let mut at = index.index(text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply_text_edit(text: &mut String, edit: &TextEdit) {
    match edit {
        TextEdit::Delete(at, n) => {
            let start = boundary(text, at);
            let mut end = (start + n).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.replace_range(start..end, "");
        }
        TextEdit::Insert(at, s) => {
            let at = boundary(text, at);
            text.insert_str(at, s);
        }
        TextEdit::DuplicateLine(at) | TextEdit::Indent(at, _) | TextEdit::SwapLines(at, _) => {
            let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
            let i = at.index(lines.len());
            match edit {
                TextEdit::DuplicateLine(_) => {
                    let line = lines[i].clone();
                    lines.insert(i, line);
                }
                TextEdit::Indent(_, n) => lines[i].insert_str(0, &" ".repeat(*n)),
                TextEdit::SwapLines(_, other) => {
                    let j = other.index(lines.len());
                    lines.swap(i, j);
                }
                _ => {}
            }
            *text = lines.join("\n");
        }
        TextEdit::Truncate(at) => {
            let at = boundary(text, at);
            text.truncate(at);
        }
    }
}

// ----- manifests: properties ------------------------------------------------------------------

/// Cases per property; figures for the report come from these constants.
const VALUE_MUTATION_CASES: u32 = 3_000;
const TEXT_MUTATION_CASES: u32 = 3_000;
const TOKEN_SOUP_CASES: u32 = 2_000;
const ARBITRARY_TEXT_CASES: u32 = 2_000;
const ALIAS_BOMB_CASES: u32 = 200;
const MESSAGE_CASES: u32 = 3_000;

proptest! {
    #![proptest_config(config(VALUE_MUTATION_CASES, 0x6d61_6e69_6601))]
    /// Structured mutations: a bundled manifest's value with 1–4 nodes replaced, removed,
    /// added or copied, written back as YAML (flow style, i.e. JSON).
    #[test]
    fn structured_mutations_of_bundled_manifests_parse_or_fail_clearly(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(arb_edit(), 1..5),
    ) {
        let (_, value) = which.get(bundled());
        let mut value = value.clone();
        for edit in &edits {
            apply_edit(&mut value, edit);
        }
        judged(&serde_json::to_string_pretty(&value).expect("json"))?;
    }
}

proptest! {
    #![proptest_config(config(TEXT_MUTATION_CASES, 0x6d61_6e69_6602))]
    /// Textual mutations of the bundled manifests' own YAML: bytes cut, YAML syntax spliced
    /// in, lines duplicated, swapped or re-indented, the file cut short.
    #[test]
    fn textual_mutations_of_bundled_manifests_parse_or_fail_clearly(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(arb_text_edit(), 1..6),
    ) {
        let (text, _) = which.get(bundled());
        let mut text = text.clone();
        for edit in &edits {
            apply_text_edit(&mut text, edit);
        }
        judged(&text)?;
    }
}

proptest! {
    #![proptest_config(config(TOKEN_SOUP_CASES, 0x6d61_6e69_6603))]
    /// Text assembled from YAML's syntax (anchors, aliases, merge keys, tags, directives,
    /// block scalars, document markers) and manifest words.
    #[test]
    fn yaml_token_soup_parses_or_fails_clearly(
        tokens in prop::collection::vec(yaml_token(), 0..80),
    ) {
        judged(&tokens.concat())?;
    }
}

proptest! {
    #![proptest_config(config(ARBITRARY_TEXT_CASES, 0x6d61_6e69_6604))]
    /// Any string at all, and any bytes read as (lossy) UTF-8.
    #[test]
    fn arbitrary_text_parses_or_fails_clearly(
        text in prop_oneof![
            any::<String>(),
            prop::collection::vec(any::<u8>(), 0..512)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ],
    ) {
        judged(&text)?;
    }
}

/// An alias bomb: `levels` anchors, each holding `fanout` aliases of the one before, so the
/// last one expands to `fanout^levels` nodes. `shape` picks sequences, mappings or merge keys,
/// and where the bomb sits in an otherwise valid manifest.
fn alias_bomb(fanout: usize, levels: usize, shape: u8) -> String {
    let mut bomb = String::new();
    let anchor = |i: usize| format!("&a{i}");
    let alias = |i: usize| format!("*a{i}");
    match shape % 3 {
        0 => {
            bomb.push_str(&format!("  b0: {} [lol, lol]\n", anchor(0)));
            for i in 1..=levels {
                let items = vec![alias(i - 1); fanout].join(", ");
                bomb.push_str(&format!("  b{i}: {} [{items}]\n", anchor(i)));
            }
        }
        1 => {
            bomb.push_str(&format!("  b0: {} {{k: lol}}\n", anchor(0)));
            for i in 1..=levels {
                let items: Vec<String> = (0..fanout)
                    .map(|k| format!("k{k}: {}", alias(i - 1)))
                    .collect();
                bomb.push_str(&format!("  b{i}: {} {{{}}}\n", anchor(i), items.join(", ")));
            }
        }
        _ => {
            // Block style, with a merge key at each level on top of the fan-out.
            bomb.push_str(&format!("  b0: {}\n    k: lol\n", anchor(0)));
            for i in 1..=levels {
                bomb.push_str(&format!(
                    "  b{i}: {}\n    <<: {}\n",
                    anchor(i),
                    alias(i - 1)
                ));
                for k in 0..fanout {
                    bomb.push_str(&format!("    k{k}: {}\n", alias(i - 1)));
                }
            }
        }
    }
    match shape / 3 % 3 {
        // Beside the manifest, as unknown top-level keys.
        0 => format!("bombs:\n{bomb}name: bomb\nsso:\n  type: oauth\n  redirect_path: /cb\n"),
        // Inside `sso`, where serde buffers the internally tagged enum.
        1 => format!(
            "name: bomb\nsso:\n  type: oauth\n  redirect_path: /cb\n  client:\n    extra:\n{}",
            bomb.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        ),
        // After the manifest, so the valid part is read first.
        _ => format!("name: bomb\nsso:\n  type: oauth\n  redirect_path: /cb\nzz:\n{bomb}"),
    }
}

proptest! {
    #![proptest_config(config(ALIAS_BOMB_CASES, 0x6d61_6e69_6605))]
    /// Billion laughs in every shape and place, each expanding to at least 10^5 nodes: the
    /// parser's alias limits reject it with an error about aliases, before anything is built.
    #[test]
    fn alias_bombs_are_rejected_with_a_clear_error(
        fanout in 2usize..=12,
        extra_levels in 0usize..4,
        shape in 0u8..9,
    ) {
        // Enough levels that fanout^levels >= 100_000.
        let mut levels = 1;
        while fanout.pow(levels as u32) < 100_000 {
            levels += 1;
        }
        let text = alias_bomb(fanout, levels + extra_levels, shape);
        let error = parse_manifest(Path::new(FILE), &text)
            .expect_err("an alias bomb must not parse");
        let shown = error.to_string();
        prop_assert_eq!(error.field.as_str(), "(yaml)", "{}", shown);
        prop_assert!(shown.to_lowercase().contains("alias"), "{}", shown);
        prop_assert!(!shown.contains('\n'), "{}", shown);
    }
}

#[test]
fn a_deeply_nested_document_is_an_error_not_a_stack_overflow() {
    let depth = 50_000;
    for text in [
        format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        format!("{}{}", "{a: ".repeat(depth), "}".repeat(depth)),
        format!("{}x\n", "- ".repeat(depth)),
        format!("{}x\n", "[".repeat(depth)),
    ] {
        let error = parse_manifest(Path::new(FILE), &text).expect_err("too deep");
        assert!(!error.to_string().contains('\n'), "{error}");
    }
}

// ----- queue messages -------------------------------------------------------------------------

fn valid_message() -> impl Strategy<Value = JobMessage> {
    let service =
        prop::sample::select(vec!["grafana", "redmine", "uptime-kuma", "a", "n8n", "x-1"]);
    (any::<u128>(), service, 0usize..4).prop_map(|(id, service, action)| {
        let action = [Action::Check, Action::Add, Action::Fix, Action::Sweep][action];
        let hex = format!("{id:032x}");
        JobMessage {
            job_id: format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            ),
            service: if action == Action::Sweep {
                SWEEP_TARGET.to_owned()
            } else {
                service.to_owned()
            },
            action,
        }
    })
}

/// A message body: valid, a valid one with a field replaced or added, JSON of any shape, or
/// bytes.
fn arb_body() -> impl Strategy<Value = Vec<u8>> {
    let field = prop::sample::select(vec!["job_id", "service", "action", "extra"]);
    prop_oneof![
        valid_message().prop_map(|m| serde_json::to_vec(&m).expect("json")),
        (valid_message(), field, arb_json()).prop_map(|(m, field, v)| {
            let mut json = serde_json::to_value(&m).expect("json");
            json[field] = v;
            serde_json::to_vec(&json).expect("json")
        }),
        arb_json().prop_map(|v| serde_json::to_vec(&v).expect("json")),
        // A long service name or action: the reason must not repeat all of it.
        (valid_message(), "[a-z\\-\\\\ ]{300,3000}", any::<bool>()).prop_map(
            |(m, long, in_action)| {
                let mut json = serde_json::to_value(&m).expect("json");
                json[if in_action { "action" } else { "service" }] = Value::String(long);
                serde_json::to_vec(&json).expect("json")
            }
        ),
        prop::collection::vec(any::<u8>(), 0..256),
        prop::collection::vec(any::<u8>(), 4_000..5_000),
    ]
}

proptest! {
    #![proptest_config(config(MESSAGE_CASES, 0x6d73_6701))]
    /// Whatever arrives on the queue decodes to a job whose fields are valid, or to a one-line
    /// reason for the dead-letter header.
    #[test]
    fn any_message_body_decodes_to_a_valid_job_or_a_reason(body in arb_body()) {
        match JobMessage::decode(&body) {
            Ok(message) => {
                prop_assert!(uuid_shaped(&message.job_id), "{:?}", message);
                prop_assert!(JobMessage::valid_target(&message.service, message.action));
                // What decodes re-encodes to the same message.
                let again = JobMessage::decode(&serde_json::to_vec(&message).expect("json"));
                prop_assert_eq!(again, Ok(message));
            }
            Err(reason) => {
                prop_assert!(
                    reason.starts_with("not a job message") || reason.contains("too large"),
                    "{}", reason
                );
                prop_assert!(!reason.contains('\n'), "{}", reason);
                prop_assert!(reason.chars().count() <= MAX_ERROR_CHARS, "{} chars", reason.len());
            }
        }
    }
}

fn uuid_shaped(id: &str) -> bool {
    id.len() == 36 && id.bytes().filter(|b| *b == b'-').count() == 4
}

#[test]
fn valid_messages_round_trip() {
    let mut runner = proptest::test_runner::TestRunner::new(config(1_000, 0x6d73_6702));
    runner
        .run(&valid_message(), |message| {
            let body = serde_json::to_vec(&message).expect("json");
            prop_assert_eq!(JobMessage::decode(&body), Ok(message));
            Ok(())
        })
        .expect("valid messages decode");
}

// ----- regressions found by the properties above ----------------------------------------------

#[test]
fn an_empty_key_at_the_top_level_names_the_document() {
    // Found by the token soup: `? |` is a mapping whose only key is the empty string.
    for text in [
        "? |\n",
        "\"\": 1\nname: x\nsso:\n  type: oauth\n  redirect_path: /cb\n",
    ] {
        let error = parse_manifest(Path::new(FILE), text).expect_err("unknown key");
        assert_eq!(error.field, "(document)", "{error}");
        assert!(error.problem.contains("unknown field ``"), "{error}");
    }
}

#[test]
fn a_long_value_in_the_wrong_field_gives_a_short_error() {
    // Found by the structured mutations: redmine's delivery script copied into `configured`.
    let script = "s = (Setting.plugin_redmine_oauth || {}).to_h.merge('oauth_name' => 'Custom'); "
        .repeat(20);
    let text = format!(
        "name: redmine\nsso:\n  type: oauth\n  redirect_path: /cb\n  configured: \"{script}\"\n"
    );
    let error = parse_manifest(Path::new(FILE), &text).expect_err("not a boolean");
    assert_eq!(error.field, "sso.configured");
    assert!(error.problem.starts_with("invalid type: string"), "{error}");
    assert!(error.problem.ends_with('…'), "{error}");
    assert!(
        error.to_string().chars().count() <= MAX_ERROR_CHARS,
        "{error}"
    );
}
