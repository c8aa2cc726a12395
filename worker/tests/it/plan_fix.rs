//! `plan` is what `fix` will do. Generated drifts — for every type (oauth, oidc, saml, proxy,
//! wikijs, frappe), each kind of authentik-side drift it knows, several at once — are planned (`check`'s drifts and
//! their remedies, what `pma-sso plan` prints), then fixed; the writes the stand-ins recorded
//! (objects created, fields changed) must be exactly the ones the plan listed, object and
//! field, and the service's own stand-in (Zammad, Wiki.js, Frappe) is written to exactly when
//! the plan says so. `PMA_SSO_PLAN_CASES` sets the
//! number of cases (16 here and in CI; `just plan-fix` runs 300).

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use testkit::{FrappeHandle, WikijsHandle, ZammadHandle};
use worker::{Action, Report};

use crate::support::Platform;

/// One kind of drift, made behind pma-sso's back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    DeleteApplication,
    DeleteProvider,
    ApplicationName,
    LaunchUrl,
    RedirectUris,
    ClientSecret,
    SigningKey,
    AcsUrl,
    Audience,
    SamlSigningKeypair,
    ExternalHost,
    OffTheOutpost,
    /// Changed in the service itself: SAML switched off in Zammad, the client secret typed
    /// into Wiki.js's strategy or Frappe's Social Login Key.
    InTheService,
}

/// What every type's application and provider can drift in.
const COMMON: [Kind; 4] = [
    Kind::DeleteApplication,
    Kind::DeleteProvider,
    Kind::ApplicationName,
    Kind::LaunchUrl,
];

/// The service that stands for each type, and the kinds of drift it can have besides
/// [`COMMON`].
const CASES: [(&str, &[Kind]); 6] = [
    ("redmine", &[Kind::RedirectUris, Kind::ClientSecret]),
    (
        "grafana",
        &[Kind::RedirectUris, Kind::ClientSecret, Kind::SigningKey],
    ),
    (
        "wikijs",
        &[Kind::RedirectUris, Kind::ClientSecret, Kind::InTheService],
    ),
    (
        "erpnext",
        &[Kind::RedirectUris, Kind::ClientSecret, Kind::InTheService],
    ),
    (
        "zammad",
        &[
            Kind::AcsUrl,
            Kind::Audience,
            Kind::SamlSigningKeypair,
            Kind::InTheService,
        ],
    ),
    ("uptime-kuma", &[Kind::ExternalHost, Kind::OffTheOutpost]),
];

/// `(object, field)`: what a write touches. `field` is `create` for a POST.
type Write = (String, String);

/// The writes a plan lists: one per drift whose remedy writes something to authentik.
fn planned(report: &Report) -> BTreeSet<Write> {
    report
        .drifts
        .iter()
        .filter(|d| !d.remedy.starts_with("nothing to write"))
        .filter_map(|d| {
            let (object, field) = d.field.split_once('.').unwrap_or((&d.field, "create"));
            matches!(object, "application" | "provider" | "outpost")
                .then(|| (object.to_owned(), field.to_owned()))
        })
        .collect()
}

/// authentik's objects before the fix, to tell which fields a PATCH changed.
struct Before(Vec<serde_json::Value>);

impl Before {
    fn take(p: &Platform) -> Before {
        let mut all = p.sim.applications();
        all.extend(p.sim.oauth2_providers());
        all.extend(p.sim.saml_providers());
        all.extend(p.sim.proxy_providers());
        all.extend(p.sim.outposts());
        Before(all)
    }

    /// The object a PATCH path names (`…/<slug or pk>/`), as it was.
    fn object(&self, path: &str) -> Option<&serde_json::Value> {
        let id = path.trim_end_matches('/').rsplit('/').next()?;
        self.0.iter().find(|o| {
            o["slug"].as_str() == Some(id)
                || o["pk"].as_str() == Some(id)
                || o["pk"].as_i64().is_some_and(|pk| pk.to_string() == id)
        })
    }
}

/// The writes authentik's stand-in recorded, by object and field: a POST is `create`, a PATCH
/// each field whose value it changed. (authentik validates a SAML provider's `signing_kp` with
/// its sign flags, so they travel together; sending an unchanged value changes nothing.)
fn recorded(p: &Platform, before: &Before) -> BTreeSet<Write> {
    let mut writes = BTreeSet::new();
    for r in p.sim.requests() {
        if r.method == "GET" {
            continue;
        }
        let path = r.path.trim_start_matches("/api/v3");
        let object = if path.starts_with("/core/applications/") {
            "application"
        } else if path.starts_with("/providers/") {
            "provider"
        } else if path.starts_with("/outposts/instances/") {
            "outpost"
        } else {
            // Property mappings and the like: not something these drifts touch.
            writes.insert((path.to_owned(), r.method.clone()));
            continue;
        };
        if r.method == "POST" {
            writes.insert((object.to_owned(), "create".to_owned()));
            continue;
        }
        let was = before.object(path);
        for (key, value) in r
            .body
            .as_ref()
            .and_then(|b| b.as_object())
            .cloned()
            .unwrap_or_default()
        {
            if was.is_none_or(|was| was.get(&key) != Some(&value)) {
                writes.insert((object.to_owned(), key));
            }
        }
    }
    writes
}

/// The service's own stand-in, where it has one: its writes are compared with the plan too.
enum ServiceSide {
    None,
    Zammad(ZammadHandle),
    Wikijs(WikijsHandle),
    Frappe(FrappeHandle),
}

impl ServiceSide {
    fn writes(&self) -> usize {
        match self {
            ServiceSide::None => 0,
            ServiceSide::Zammad(z) => z.write_count(),
            ServiceSide::Wikijs(w) => w.write_count(),
            ServiceSide::Frappe(f) => f.write_count(),
        }
    }
}

async fn platform(service: &str) -> (Platform, ServiceSide) {
    match service {
        "zammad" => {
            let s = crate::saml::setup().await;
            (s.p, ServiceSide::Zammad(s.zammad))
        }
        "wikijs" => {
            let w = crate::wikijs::platform(crate::wikijs::Access::Admin, "").await;
            (w.p, ServiceSide::Wikijs(w.wiki))
        }
        "erpnext" => {
            let e = crate::frappe::platform(crate::frappe::full_env).await;
            (e.p, ServiceSide::Frappe(e.frappe))
        }
        _ => (Platform::new(&[service]).await, ServiceSide::None),
    }
}

/// Whether the plan writes to the service itself (its settings, strategy or document).
fn plans_service_write(report: &Report) -> bool {
    report.drifts.iter().any(|d| {
        let object = d.field.split(['.', '[']).next().unwrap_or("");
        !matches!(
            object,
            "application" | "provider" | "outpost" | "scope_mapping" | "saml_mapping" | "env"
        ) && !d.remedy.starts_with("nothing to write")
    })
}

fn drift(p: &Platform, side: &ServiceSide, service: &str, kinds: &[Kind]) {
    let provider = format!("pma-sso-{service}");
    let sim = &p.sim;
    // Changes first, deletions last: a deleted object cannot be changed.
    for kind in kinds {
        match kind {
            Kind::ApplicationName => sim.patch_application(service, json!({"name": "Renamed by hand"})),
            Kind::LaunchUrl => {
                sim.patch_application(service, json!({"meta_launch_url": "https://elsewhere.example/"}));
            }
            Kind::RedirectUris => sim.patch_provider(
                &provider,
                json!({"redirect_uris": [{"matching_mode": "strict", "url": "https://old.example/cb"}]}),
            ),
            Kind::ClientSecret => {
                sim.patch_provider(&provider, json!({"client_secret": "changed-in-authentik"}));
            }
            Kind::SigningKey => {
                let other = sim.add_keypair("plan-fix other key", 365);
                sim.patch_provider(&provider, json!({"signing_key": other["pk"]}));
            }
            Kind::AcsUrl => {
                sim.patch_provider(&provider, json!({"acs_url": "https://old.example/acs"}));
            }
            Kind::Audience => sim.patch_provider(&provider, json!({"audience": ""})),
            Kind::SamlSigningKeypair => {
                let other = sim.add_keypair("plan-fix saml key", 365);
                sim.patch_provider(&provider, json!({"signing_kp": other["pk"]}));
            }
            Kind::ExternalHost => {
                sim.patch_provider(&provider, json!({"external_host": "https://old.example"}));
            }
            Kind::OffTheOutpost => {
                sim.patch_outpost("authentik Embedded Outpost", json!({"providers": []}));
            }
            Kind::InTheService => match side {
                ServiceSide::Zammad(z) => z.set_setting("auth_saml", json!(false)),
                ServiceSide::Wikijs(w) => {
                    w.set_strategy_config("authentik", "clientSecret", json!("typed-in-the-ui"));
                }
                ServiceSide::Frappe(f) => f.set_client_secret("authentik", "typed-in-the-ui"),
                ServiceSide::None => {}
            },
            Kind::DeleteApplication | Kind::DeleteProvider => {}
        }
    }
    if kinds.contains(&Kind::DeleteApplication) {
        assert!(sim.delete_application(service));
    }
    if kinds.contains(&Kind::DeleteProvider) {
        assert!(sim.delete_provider(&provider));
    }
}

/// Plan, fix, compare; then the service is in sync.
fn one_case(service: &str, kinds: &[Kind]) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (p, side) = platform(service).await;
        p.ctx.apply(service, Action::Add).await.expect("add");
        drift(&p, &side, service, kinds);
        let service_writes = side.writes();
        let plan = p.ctx.check(service).await.expect("plan");
        prop_assert!(!plan.in_sync(), "{kinds:?} made no drift");
        let before = Before::take(&p);
        p.sim.reset_requests();
        p.ctx.apply(service, Action::Fix).await.expect("fix");
        let planned = planned(&plan);
        let made = recorded(&p, &before);
        prop_assert_eq!(
            &made,
            &planned,
            "{} {:?}: fix wrote {:?}, plan listed {:?} ({:?})",
            service,
            kinds,
            made,
            planned,
            plan.drifts
        );
        // The service side: written to exactly when the plan says so.
        prop_assert_eq!(
            side.writes() > service_writes,
            plans_service_write(&plan),
            "{} {:?}: service writes vs plan {:?}",
            service,
            kinds,
            plan.drifts
        );
        let after = p.ctx.check(service).await.expect("check after fix");
        prop_assert!(after.in_sync(), "{kinds:?}: {}", after.line());
        Ok(())
    })
}

fn cases() -> u32 {
    std::env::var("PMA_SSO_PLAN_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

#[test]
fn the_writes_fix_makes_are_exactly_the_ones_plan_listed_for_generated_drifts() {
    let strategy = (0..CASES.len()).prop_flat_map(|i| {
        let kinds: Vec<Kind> = COMMON.iter().chain(CASES[i].1).copied().collect();
        let n = kinds.len();
        (Just(i), proptest::sample::subsequence(kinds, 1..=n))
    });
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |(i, kinds)| one_case(CASES[i].0, &kinds))
        .unwrap_or_else(|e| panic!("{e}"));
}
