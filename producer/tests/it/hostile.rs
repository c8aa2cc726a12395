//! Hostile webhook input, generated: bodies of both shapes authentik sends (our mapping's JSON,
//! and its default body with a Python repr inside), mutations of them, JSON of any shape and
//! bytes. The parser answers an event, "nothing to do" or a one-line reason, never a panic; the
//! route answers 2xx or 4xx, never 5xx; without the secret 401, oversized 413.
//!
//! Seeds are fixed and failure persistence is off, so a run is reproducible and writes nothing.

use std::time::Duration;

use producer::serve::event::{self, Parsed};
use producer::serve::webhook::{MAX_BODY_BYTES, WEBHOOK_SECRET_HEADER};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::webhook::{Hook, listen};

const SECRET: &str = "f3a1c0de5eed0000111122223333abcd-hostile";

fn config(cases: u32, seed: u64) -> Config {
    Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: 1_000,
        ..Config::default()
    }
}

/// Cases per property; figures for the report come from these constants.
const PARSE_CASES: u32 = 5_000;
const ROUTE_CASES: u32 = 300;
const SECRET_CASES: u32 = 200;
const OVERSIZE_CASES: u32 = 40;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        prop::sample::select(vec![
            "model_updated",
            "model_created",
            "model_deleted",
            "login",
            "authentik_core",
            "application",
            "oauth2provider",
            "None",
            "",
            "akadmin",
            "pma-sso",
            "test",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A Python repr of `value`, as authentik's default body carries the event context, with the
/// quoting and the non-JSON tokens Python writes.
fn python_repr(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => {
            let quote = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            out.push(quote);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out.push(quote);
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_repr(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_repr(&Value::String(k.clone()), out);
                out.push_str(": ");
                python_repr(v, out);
            }
            out.push('}');
        }
    }
}

fn action() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["model_updated", "model_created", "model_deleted"])
            .prop_map(str::to_owned),
        1 => prop::sample::select(vec!["login", "custom_notification_test", "", "model_"])
            .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// The mapping body `webhook install` sets up, with fields dropped, retyped or added.
fn mapping_body() -> impl Strategy<Value = Value> {
    let model = (
        prop::sample::select(vec!["authentik_core", "authentik_providers_oauth2", "x"]),
        prop::sample::select(vec!["application", "oauth2provider", "outpost", "user"]),
        prop_oneof![
            Just(Value::from("3f0c2b9e8d7a4c1f9e0d1c2b3a4f5e6d")),
            any::<i64>().prop_map(Value::from),
            arb_json(),
        ],
    );
    let edits = prop::collection::vec(
        (
            prop::sample::select(vec![
                "event_uuid",
                "action",
                "model_app",
                "model_name",
                "model_pk",
                "object_name",
                "event_user",
                "kind",
                "body",
            ]),
            prop::option::of(arb_json()),
        ),
        0..3,
    );
    (action(), model, edits).prop_map(|(action, (app, name, pk), edits)| {
        let mut body = json!({
            "event_uuid": "9a4c1f0e-5b7d-4e2a-8c3f-1d2e3f4a5b6c",
            "action": action, "model_app": app, "model_name": name, "model_pk": pk,
            "object_name": "Grafana", "event_user": "akadmin",
        });
        for (field, value) in edits {
            match value {
                Some(v) => body[field] = v,
                None => {
                    body.as_object_mut().map(|m| m.remove(field));
                }
            }
        }
        body
    })
}

/// authentik's default body: `"<action>: <repr of the context>"`, the repr sometimes cut short
/// or spliced with repr syntax.
fn default_body() -> impl Strategy<Value = Value> {
    let context = prop_oneof![
        (
            prop::sample::select(vec!["authentik_core", "authentik_providers_saml"]),
            prop::sample::select(vec!["application", "samlprovider"]),
            arb_json(),
            arb_json(),
        )
            .prop_map(|(app, name, pk, extra)| {
                json!({"model": {"app": app, "model_name": name, "pk": pk, "name": "Zammad"},
                       "http_request": extra})
            }),
        arb_json(),
    ];
    let splice = prop::collection::vec(
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            "(",
            ")",
            "'",
            "\"",
            "\\",
            ",",
            ":",
            "UUID('",
            "<object at 0x1>",
            "None",
            "True",
            "-",
            "1e999",
            "\\x",
            "\\u12",
            "\\U0011ffff",
            "set()",
            "{'a'}",
        ]),
        0..4,
    );
    (
        action(),
        context,
        splice,
        any::<prop::sample::Index>(),
        any::<Option<prop::sample::Index>>(),
    )
        .prop_map(|(action, context, splice, at, cut)| {
            let mut repr = String::new();
            python_repr(&context, &mut repr);
            let mut at = at.index(repr.len() + 1);
            while !repr.is_char_boundary(at) {
                at -= 1;
            }
            repr.insert_str(at, &splice.concat());
            if let Some(cut) = cut {
                let mut n = cut.index(repr.len() + 1);
                while !repr.is_char_boundary(n) {
                    n -= 1;
                }
                repr.truncate(n);
            }
            json!({"body": format!("{action}: {repr}"), "severity": "notice",
                   "event_user_username": "akadmin"})
        })
}

fn arb_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => mapping_body().prop_map(|v| v.to_string().into_bytes()),
        3 => default_body().prop_map(|v| v.to_string().into_bytes()),
        1 => arb_json().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..256),
        1 => "[\\[\\]{}\":, a-z0-9_]{0,80}".prop_map(String::into_bytes),
        // Nesting far deeper than any parser's recursion should go.
        1 => (1usize..5_000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        1 => (1usize..3_000).prop_map(|n| {
            format!("{{\"body\": \"model_updated: {}{}\"}}", "[".repeat(n), "]".repeat(n)).into_bytes()
        }),
    ]
}

#[test]
fn any_body_parses_to_an_event_nothing_to_do_or_a_one_line_reason() {
    let mut runner = TestRunner::new(config(PARSE_CASES, 0x7765_6201));
    runner
        .run(&arb_body(), |body| {
            match event::parse(&body) {
                Ok(Parsed::Model(e)) => {
                    prop_assert!(
                        ["model_created", "model_updated", "model_deleted"]
                            .contains(&e.action.as_str())
                    );
                    prop_assert!(!e.model.app.is_empty() && !e.model.model_name.is_empty());
                    prop_assert!(!e.model.pk.is_empty());
                }
                Ok(Parsed::Ignored(reason)) => prop_assert!(!reason.is_empty()),
                Err(event::Malformed(reason)) => {
                    prop_assert!(!reason.is_empty());
                    prop_assert!(!reason.contains('\n'), "{}", reason);
                }
            }
            Ok(())
        })
        .expect("property");
}

impl Hook {
    /// A POST written by hand that declares `declared` bytes but sends only the first few:
    /// a server that answers from the headers alone (401 before reading, 413 from the declared
    /// length) is heard, with no race against the body write. Returns the status code, or 0
    /// when the server closed without answering.
    async fn post_declared(&self, secret: Option<&[u8]>, declared: usize) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rest = self.url.strip_prefix("http://").expect("http");
        let (host, path) = rest.split_once('/').expect("path");
        let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
        let mut head = format!(
            "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\nConnection: close\r\n"
        )
        .into_bytes();
        if let Some(secret) = secret {
            head.extend_from_slice(format!("{WEBHOOK_SECRET_HEADER}: ").as_bytes());
            head.extend_from_slice(secret);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n{\"action\": ");
        stream.write_all(&head).await.expect("head");
        let mut answer = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer)
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }
}

#[test]
fn any_body_with_the_secret_is_answered_2xx_or_4xx_never_5xx() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let r = rt.block_on(listen(&["grafana", "zammad"], SECRET));
    // `run` takes an `Fn`: the answers seen are counted through a cell.
    let statuses = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    let mut runner = TestRunner::new(config(ROUTE_CASES, 0x7765_6202));
    runner
        .run(&arb_body(), |body| {
            let expected = match event::parse(&body) {
                Ok(_) => StatusCode::OK,
                Err(_) => StatusCode::BAD_REQUEST,
            };
            let status = rt.block_on(r.post_bytes(Some(SECRET.as_bytes()), body));
            *statuses.borrow_mut().entry(status.as_u16()).or_default() += 1;
            prop_assert_eq!(status, expected);
            Ok(())
        })
        .expect("property");
    let statuses = statuses.into_inner();
    assert!(
        statuses.contains_key(&200) && statuses.contains_key(&400),
        "both answers were exercised: {statuses:?}"
    );
    rt.block_on(r.finish());
}

#[test]
fn any_missing_or_wrong_secret_is_401_and_enqueues_nothing() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let r = rt.block_on(listen(&["grafana", "zammad"], SECRET));
    let wrong = prop_oneof![
        Just(None),
        // Header-safe bytes of any length, including near misses of the real secret.
        prop::collection::vec(0x20u8..0x7f, 0..80).prop_map(Some),
        (0..SECRET.len()).prop_map(|n| Some(SECRET.as_bytes()[..n].to_vec())),
        "[ -~]{1,4}".prop_map(|s| Some(format!("{SECRET}{s}").into_bytes())),
        any::<prop::sample::Index>().prop_map(|i| {
            let mut s = SECRET.as_bytes().to_vec();
            let at = i.index(s.len());
            s[at] = if s[at] == b'x' { b'y' } else { b'x' };
            Some(s)
        }),
        Just(Some(SECRET.to_uppercase().into_bytes())),
    ];
    // A body that would enqueue a check with the right secret.
    let body = json!({"event_uuid": "9a4c1f0e-5b7d-4e2a-8c3f-1d2e3f4a5b6c", "action": "model_updated",
        "model_app": "authentik_core", "model_name": "application",
        "model_pk": "3f0c2b9e8d7a4c1f9e0d1c2b3a4f5e6d", "object_name": "Grafana", "event_user": "akadmin"})
    .to_string();
    let mut runner = TestRunner::new(config(SECRET_CASES, 0x7765_6203));
    runner
        .run(&(wrong, any::<bool>()), |(secret, big)| {
            if secret.as_deref() == Some(SECRET.as_bytes()) {
                return Ok(());
            }
            // The secret is checked first, before the size limit and before reading the body.
            if big {
                let status = rt.block_on(r.post_declared(secret.as_deref(), MAX_BODY_BYTES * 16));
                prop_assert_eq!(status, 401);
            } else {
                let status =
                    rt.block_on(r.post_bytes(secret.as_deref(), body.clone().into_bytes()));
                prop_assert_eq!(status, StatusCode::UNAUTHORIZED);
            }
            Ok(())
        })
        .expect("property");
    assert!(
        rt.block_on(r.pipeline.jobs()).is_empty(),
        "nothing enqueued"
    );
    rt.block_on(r.finish());
}

#[test]
fn any_oversized_body_is_413() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let r = rt.block_on(listen(&["grafana", "zammad"], SECRET));
    let mut runner = TestRunner::new(config(OVERSIZE_CASES, 0x7765_6204));
    runner
        .run(&(MAX_BODY_BYTES + 1..usize::MAX / 2), |size| {
            let status = rt.block_on(r.post_declared(Some(SECRET.as_bytes()), size));
            prop_assert_eq!(status, 413);
            Ok(())
        })
        .expect("property");
    rt.block_on(r.finish());
}
