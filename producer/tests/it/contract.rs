//! The contract suite: the same operator scenarios against the real authentik 2025.12.4 (when
//! `PMA_SSO_REAL_AUTHENTIK` names one, as `.ci/run` does) and against the stand-in, each run
//! turned into a transcript — every line pma-sso printed, with ports, ids and fingerprints
//! normalised — that must equal the committed `tests/contract/transcript.txt`. The stand-in
//! therefore cannot drift from real authentik without a failing test, even where no real
//! authentik can run. `PMA_SSO_BLESS=1` rewrites the file from the run (do that against real
//! authentik only: it is the judge).
//!
//! Scenarios run on their own services (bundled packages renamed `<scene>-<name>`), the four
//! independent ones at the same time; orphans and adopt see every application pma-sso owns,
//! so they run last, alone. Service ends are the Wiki.js, Frappe and Zammad stand-ins.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use fancy_regex::Regex;
use reqwest::Method;
use serde_json::{Value, json};
use testkit::{FrappeSim, RealAuthentik, Recorder, WikijsSim, ZammadSim};
use worker::envfile::EnvFile;

use crate::cli::{ALL, copy_package};

const TRANSCRIPT: &str = "tests/contract/transcript.txt";
const STAND_IN_TOKEN: &str = "contract-admin-token-5b1c";

#[tokio::test]
async fn the_stand_in_plays_the_committed_real_authentik_transcript() {
    let sim = testkit::AuthentikSim::new(STAND_IN_TOKEN).start().await;
    let authentik = RealAuthentik {
        url: sim.base_url(),
        token: STAND_IN_TOKEN.into(),
        home: PathBuf::new(),
    };
    let transcript = run_contract(&authentik).await;
    assert!(
        sim.schema_violations().is_empty(),
        "{:?}",
        sim.schema_violations()
    );
    compare_with_committed(&transcript, "the stand-in");
}

#[tokio::test]
async fn real_authentik_plays_the_committed_transcript() {
    let Some(authentik) = RealAuthentik::from_env("contract::real_authentik").await else {
        return;
    };
    let _alone = authentik.exclusive().await;
    let transcript = run_contract(&authentik).await;
    compare_with_committed(&transcript, "real authentik");
    webhook_path(&authentik).await;
}

fn compare_with_committed(transcript: &str, side: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(TRANSCRIPT);
    if std::env::var_os("PMA_SSO_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, transcript).expect("write transcript");
        return;
    }
    let committed = std::fs::read_to_string(&path).expect("committed transcript");
    if committed != transcript {
        let diff: Vec<String> = diff_lines(&committed, transcript);
        panic!(
            "{side} does not play the committed transcript ({}):\n{}",
            path.display(),
            diff.join("\n")
        );
    }
}

/// The lines that differ, as `- committed` / `+ this run`, position by position.
fn diff_lines(committed: &str, run: &str) -> Vec<String> {
    let a: Vec<&str> = committed.lines().collect();
    let b: Vec<&str> = run.lines().collect();
    (0..a.len().max(b.len()))
        .filter(|&i| a.get(i) != b.get(i))
        .flat_map(|i| {
            [
                format!("line {}: - {}", i + 1, a.get(i).unwrap_or(&"<none>")),
                format!("line {}: + {}", i + 1, b.get(i).unwrap_or(&"<none>")),
            ]
        })
        .collect()
}

/// Every scenario, in order; the transcript.
async fn run_contract(ak: &RealAuthentik) -> String {
    let (_, apps) = ak
        .api(
            Method::GET,
            "core/applications/?superuser_full_list=true&page_size=100",
            None,
        )
        .await;
    let leftovers: Vec<&str> = apps["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["slug"].as_str())
        .filter(|s| {
            SCENES
                .iter()
                .any(|scene| s.starts_with(&format!("{scene}-")))
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "the contract suite needs an authentik without its applications (found {leftovers:?}); start a fresh one: eval \"$(bash scripts/real-authentik.sh start)\""
    );

    let mut out = vec!["## init".to_owned()];
    let (code, text, token, user) = init(ak).await;
    out.push(format!("init: exit {code}"));
    out.extend(text.lines().map(str::to_owned));
    let identity = format!("AUTHENTIK_TOKEN={token}\nPMA_SSO_AUTHENTIK_USER={user}\n");

    let (fresh, drift, rotate, mappings) = tokio::join!(
        fresh(ak, &identity),
        drift(ak, &identity),
        rotate(ak, &identity),
        mappings(ak, &identity),
    );
    for section in [fresh, drift, rotate, mappings] {
        out.extend(section);
    }
    out.extend(orphans_and_adopt(ak, &identity).await);
    normalise(&out.join("\n"), ak) + "\n"
}

const SCENES: [&str; 5] = ["f", "d", "r", "m", "o"];

/// One scenario's platform: renamed bundled packages, a `.env` pointing at authentik through a
/// recording proxy, and its own Wiki.js, Frappe and Zammad stand-ins.
struct Scene {
    dir: tempfile::TempDir,
    recorder: Recorder,
    prefix: &'static str,
    _ends: (
        testkit::WikijsHandle,
        testkit::FrappeHandle,
        testkit::ZammadHandle,
    ),
}

impl Scene {
    async fn new(
        ak: &RealAuthentik,
        identity: &str,
        prefix: &'static str,
        services: &[&str],
    ) -> Scene {
        let dir = tempfile::tempdir().expect("tmp");
        for service in services {
            add_renamed(dir.path(), prefix, service);
        }
        let recorder = Recorder::start(&ak.url).await.expect("recorder");
        let wikijs = WikijsSim::new().start().await;
        let frappe = FrappeSim::new("frappe-key-contract", "frappe-secret-contract")
            .start()
            .await;
        let zammad = ZammadSim::new("zammad-token-contract").start().await;
        std::fs::write(
            dir.path().join(".env"),
            format!(
                "DOMAIN=example.org\nAUTHENTIK_URL={}\nAUTHENTIK_PUBLIC_URL={}\n{identity}PMA_SSO_EXEC_RUNNER=true\nWIKIJS_URL={}\nWIKIJS_ADMIN_EMAIL={}\nWIKIJS_ADMIN_PASSWORD={}\nERPNEXT_URL={}\nERPNEXT_API_KEY=frappe-key-contract\nERPNEXT_API_SECRET=frappe-secret-contract\nZAMMAD_URL={}\nZAMMAD_API_TOKEN=zammad-token-contract\n",
                recorder.base_url(),
                ak.url,
                wikijs.base_url(),
                wikijs.admin_email(),
                wikijs.admin_password(),
                frappe.base_url(),
                zammad.base_url(),
            ),
        )
        .expect("env");
        Scene {
            dir,
            recorder,
            prefix,
            _ends: (wikijs, frappe, zammad),
        }
    }

    fn name(&self, service: &str) -> String {
        format!("{}-{service}", self.prefix)
    }

    /// `pma-sso --inline <args>`; the transcript gets the command, its exit code and its lines.
    async fn run(&self, out: &mut Vec<String>, args: &[&str]) -> i32 {
        self.run_ordered(out, args, false).await
    }

    /// As [`Scene::run`], with the output lines sorted: for listings whose order follows
    /// creation order, which scenarios running at the same time do not fix.
    async fn run_ordered(&self, out: &mut Vec<String>, args: &[&str], sort: bool) -> i32 {
        let mut full = vec!["--inline"];
        full.extend_from_slice(args);
        let (code, text) = pma(self.dir.path(), &[], &full).await;
        out.push(format!("$ pma-sso {} → exit {code}", args.join(" ")));
        let mut lines: Vec<String> = text.lines().map(|l| format!("  {l}")).collect();
        if sort {
            lines.sort();
        }
        out.extend(lines);
        code
    }

    fn env(&self, key: &str) -> String {
        EnvFile::read(&self.dir.path().join(".env"))
            .expect(".env")
            .get(key)
            .unwrap_or_default()
            .to_owned()
    }

    fn set_env(&self, key: &str, value: &str) {
        worker::envfile::update(&self.dir.path().join(".env"), &[(key, Some(value))])
            .expect("write .env");
    }

    fn env_key(&self, service: &str, what: &str) -> String {
        format!(
            "{}_SSO_{what}",
            self.name(service).to_uppercase().replace('-', "_")
        )
    }

    /// Writes through the proxy since the last `clear`, as one transcript line.
    fn writes_line(&self, label: &str) -> String {
        let writes = self.recorder.writes();
        format!("{label}: {} writes {writes:?}", writes.len())
    }
}

/// A bundled package under a new name (and subdomain), so scenarios never share a slug or host.
fn add_renamed(root: &Path, prefix: &str, service: &str) {
    let staging = tempfile::tempdir().expect("tmp");
    copy_package(service, staging.path());
    let from = staging.path().join("packages").join(service);
    let to = root.join("packages").join(format!("{prefix}-{service}"));
    std::fs::rename(&from, &to)
        .or_else(|_| {
            std::fs::create_dir_all(root.join("packages"))?;
            std::fs::rename(&from, &to)
        })
        .expect("move package");
    let manifest = to.join("manifest.yaml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    // Custom mapping names are natural keys shared by every service that names them: renamed
    // too, so scenarios running at the same time never race to create the same mapping.
    static MAPPING: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"\b(zammad-(nameid-email|email|name|first-name|last-name)|mattermost-(username|id))\b",
        )
        .expect("regex")
    });
    let text = MAPPING.replace_all(&text, format!("{prefix}-$1").as_str());
    let renamed: Vec<String> = text
        .lines()
        .map(|line| {
            if let Some(name) = line.strip_prefix("name: ") {
                format!("name: {prefix}-{name}")
            } else if let Some(sub) = line.strip_prefix("subdomain: ") {
                format!("subdomain: {prefix}-{sub}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    std::fs::write(&manifest, renamed.join("\n") + "\n").expect("write manifest");
}

async fn pma(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PMA_SSO_ENV_FILE", dir.join(".env"))
        .env("PMA_SSO_LOG", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().await.expect("run pma-sso");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        output.status.code().expect("exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// From nothing: all red, `fix-all`, all green, a second `fix-all` writes nothing, `verify`.
async fn fresh(ak: &RealAuthentik, identity: &str) -> Vec<String> {
    let s = Scene::new(ak, identity, "f", &ALL).await;
    let mut out = vec!["## fresh: twelve services from nothing".to_owned()];
    s.run(&mut out, &["check"]).await;
    s.run(&mut out, &["fix-all"]).await;
    s.run(&mut out, &["check"]).await;
    s.recorder.clear();
    s.run(&mut out, &["fix-all"]).await;
    out.push(s.writes_line("second fix-all"));
    s.run(&mut out, &["verify"]).await;
    out
}

/// Each kind of drift, made through authentik's API as an administrator would.
async fn drift(ak: &RealAuthentik, identity: &str) -> Vec<String> {
    let services = [
        "grafana",
        "mattermost",
        "linkding",
        "n8n",
        "zammad",
        "uptime-kuma",
    ];
    let s = Scene::new(ak, identity, "d", &services).await;
    let mut out = vec!["## drift: each kind, made through the API".to_owned()];
    s.run(&mut out, &["fix-all"]).await;
    s.run(&mut out, &["check"]).await;

    let grafana = oauth2_provider(ak, &format!("pma-sso-{}", s.name("grafana"))).await;
    patch(
        ak,
        &format!("providers/oauth2/{}/", grafana["pk"]),
        json!({"redirect_uris": [{"matching_mode": "strict", "url": "https://grafana.old.example/login/generic_oauth"}]}),
    )
    .await;
    let mattermost = oauth2_provider(ak, &format!("pma-sso-{}", s.name("mattermost"))).await;
    patch(
        ak,
        &format!("providers/oauth2/{}/", mattermost["pk"]),
        json!({"client_secret": "changed-by-hand-0123456789abcdefghijklmnopqrstuvwxyz"}),
    )
    .await;
    let (status, _) = ak
        .api(
            Method::DELETE,
            &format!("core/applications/{}/", s.name("linkding")),
            None,
        )
        .await;
    assert_eq!(status, 204, "delete application");
    s.set_env(
        &s.env_key("n8n", "CLIENT_SECRET"),
        "changed-in-env-0123456789abcdefghijklmnopqrstuvwxyz",
    );
    let zammad = first(
        ak,
        &format!("providers/saml/?name=pma-sso-{}", s.name("zammad")),
    )
    .await;
    patch(
        ak,
        &format!("providers/saml/{}/", zammad["pk"]),
        json!({"signing_kp": null, "sign_assertion": true, "sign_response": true, "acs_url": "https://old.example/auth/saml/callback"}),
    )
    .await;
    let kuma = first(
        ak,
        &format!("providers/proxy/?name=pma-sso-{}", s.name("uptime-kuma")),
    )
    .await;
    let outpost = first(
        ak,
        "outposts/instances/?managed__iexact=goauthentik.io%2Foutposts%2Fembedded",
    )
    .await;
    let providers: Vec<Value> = outpost["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| **p != kuma["pk"])
        .cloned()
        .collect();
    patch(
        ak,
        &format!(
            "outposts/instances/{}/",
            outpost["pk"].as_str().expect("outpost pk")
        ),
        json!({"providers": providers}),
    )
    .await;

    s.run(&mut out, &["check"]).await;
    for service in services {
        s.run(&mut out, &["plan", &s.name(service)]).await;
    }
    s.run(&mut out, &["fix-all"]).await;
    s.run(&mut out, &["check"]).await;
    out
}

/// `verify`, a wrong secret in `.env`, and `rotate` proven by authentik's token endpoint.
async fn rotate(ak: &RealAuthentik, identity: &str) -> Vec<String> {
    let s = Scene::new(ak, identity, "r", &["redmine", "gitea"]).await;
    let mut out = vec!["## rotate: verify, a wrong secret, rotate".to_owned()];
    s.run(&mut out, &["fix-all"]).await;
    s.run(&mut out, &["verify"]).await;

    let secret_key = s.env_key("redmine", "CLIENT_SECRET");
    let right = s.env(&secret_key);
    s.set_env(
        &secret_key,
        "wrong-secret-0123456789abcdefghijklmnopqrstuvwxyz0123",
    );
    s.run(&mut out, &["verify", &s.name("redmine")]).await;
    s.set_env(&secret_key, &right);
    s.run(&mut out, &["verify", &s.name("redmine")]).await;

    let old = s.env(&s.env_key("gitea", "CLIENT_SECRET"));
    s.run(&mut out, &["rotate", &s.name("gitea")]).await;
    let client_id = s.env(&s.env_key("gitea", "CLIENT_ID"));
    let new = s.env(&s.env_key("gitea", "CLIENT_SECRET"));
    assert_ne!(old, new, "rotate wrote a new secret");
    out.push(format!(
        "grant with the new secret: {}",
        grant(ak, &client_id, &new).await
    ));
    out.push(format!(
        "grant with the old secret: {}",
        grant(ak, &client_id, &old).await
    ));
    out
}

/// Custom mappings written as YAML blocks and read from files: in sync after one `fix`.
async fn mappings(ak: &RealAuthentik, identity: &str) -> Vec<String> {
    let s = Scene::new(ak, identity, "m", &["mattermost", "zammad"]).await;
    let mut out = vec!["## mappings: block scalars and expression files".to_owned()];
    let packages = s.dir.path().join("packages");
    edit(
        &packages.join("m-mattermost/manifest.yaml"),
        &[
            (
                "      expression: 'return {\"username\": request.user.username}'",
                "      expression: |\n        return {\"username\": request.user.username}",
            ),
            (
                "      expression: 'return {\"id\": request.user.pk}'",
                "      expression_file: id.py",
            ),
        ],
    );
    std::fs::write(
        packages.join("m-mattermost/id.py"),
        "return {\"id\": request.user.pk}\n",
    )
    .expect("expression file");
    edit(
        &packages.join("m-zammad/manifest.yaml"),
        &[(
            "      expression: return request.user.email\n    - name: m-zammad-name",
            "      expression: |\n        return request.user.email\n    - name: m-zammad-name",
        )],
    );
    s.run(&mut out, &["fix-all"]).await;
    s.run(&mut out, &["check"]).await;
    s.recorder.clear();
    s.run(&mut out, &["fix-all"]).await;
    out.push(s.writes_line("second fix-all"));
    out
}

/// Last and alone: they see every application pma-sso owns.
async fn orphans_and_adopt(ak: &RealAuthentik, identity: &str) -> Vec<String> {
    let s = Scene::new(ak, identity, "o", &["linkding", "grafana"]).await;
    let mut out = vec!["## orphans and adopt".to_owned()];
    s.run(&mut out, &["fix-all"]).await;
    // Every other scenario's services are claimed by a manifest here too; o-linkding's goes.
    for (prefix, services) in [
        ("f", ALL.to_vec()),
        (
            "d",
            vec![
                "grafana",
                "mattermost",
                "linkding",
                "n8n",
                "zammad",
                "uptime-kuma",
            ],
        ),
        ("r", vec!["redmine", "gitea"]),
        ("m", vec!["mattermost", "zammad"]),
    ] {
        for service in services {
            add_renamed(s.dir.path(), prefix, service);
        }
    }
    std::fs::remove_dir_all(s.dir.path().join("packages/o-linkding")).expect("remove manifest");
    s.run(&mut out, &["orphans"]).await;
    s.run(&mut out, &["orphans", "--prune"]).await;
    s.run(&mut out, &["orphans"]).await;

    // A hand-made application under a manifest's slug.
    patch(
        ak,
        &format!("core/applications/{}/", s.name("grafana")),
        json!({"meta_publisher": "", "meta_launch_url": "https://old.example/"}),
    )
    .await;
    s.run(&mut out, &["fix", &s.name("grafana")]).await;
    s.run(&mut out, &["adopt", &s.name("grafana")]).await;
    s.run(&mut out, &["adopt", &s.name("grafana"), "--yes"])
        .await;
    s.run(&mut out, &["fix", &s.name("grafana")]).await;
    s.run(&mut out, &["check", &s.name("grafana")]).await;

    // Leave authentik as the suite found it: nothing of pma-sso's claimed by any manifest.
    std::fs::remove_dir_all(s.dir.path().join("packages")).expect("remove manifests");
    std::fs::create_dir(s.dir.path().join("packages")).expect("packages");
    s.run_ordered(&mut out, &["orphans", "--prune"], true).await;
    out
}

fn edit(path: &Path, replacements: &[(&str, &str)]) {
    let mut text = std::fs::read_to_string(path).expect("read");
    for (from, to) in replacements {
        assert!(text.contains(from), "{} has no `{from}`", path.display());
        text = text.replacen(from, to, 1);
    }
    std::fs::write(path, text).expect("write");
}

async fn first(ak: &RealAuthentik, list_path: &str) -> Value {
    let (status, body) = ak.api(Method::GET, list_path, None).await;
    assert_eq!(status, 200, "{list_path}: {body}");
    body["results"][0].clone()
}

async fn oauth2_provider(ak: &RealAuthentik, name: &str) -> Value {
    first(ak, &format!("providers/oauth2/?name={name}")).await
}

async fn patch(ak: &RealAuthentik, path: &str, body: Value) {
    let (status, answer) = ak.api(Method::PATCH, path, Some(body)).await;
    assert_eq!(status, 200, "PATCH {path}: {answer}");
}

/// A `client_credentials` grant at the public token endpoint: `200` or the error code.
async fn grant(ak: &RealAuthentik, client_id: &str, secret: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/application/o/token/", ak.url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", "openid"),
        ])
        .send()
        .await
        .expect("token endpoint");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    match body["error"].as_str() {
        Some(error) => format!("{status} {error}"),
        None => format!(
            "{status} token_type={}",
            body["token_type"].as_str().unwrap_or("?")
        ),
    }
}

/// Ports, pks, uuids, fingerprints and timings differ from run to run; nothing else may.
fn normalise(text: &str, ak: &RealAuthentik) -> String {
    static RULES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
        [
            (r"http://127\.0\.0\.1:\d+", "http://<loopback>"),
            (
                r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                "<uuid>",
            ),
            (r"hmac-sha256:[0-9a-f]{16}", "hmac-sha256:<fp>"),
            (r"\b[0-9a-f]{2}(:[0-9a-f]{2}){31}\b", "<sha256>"),
            (r"(?<=/)\d+(?=/)", "<pk>"),
            (r"\bpk \d+\b", "pk <pk>"),
            (r"\d+(\.\d+)? ?(ms|s)\b", "<t>"),
            (r"\b\d{4}-\d{2}-\d{2}\b", "<date>"),
            (r"/\S*/\.tmp[A-Za-z0-9]+", "<dir>"),
        ]
        .into_iter()
        .map(|(re, to)| (Regex::new(re).expect("regex"), to))
        .collect()
    });
    let mut text = text.replace(&ak.url, "<authentik>");
    for (re, to) in RULES.iter() {
        text = re.replace_all(&text, *to).into_owned();
    }
    text
}

/// The webhook path for real (after the transcript, alone: the rule sees every change): `serve`
/// and a worker in queue mode, `webhook install`, then a change by akadmin reaches `serve`
/// through authentik's own worker and a `check` job with trigger `webhook` is recorded; the same
/// kind of change made with pma-sso's token is ignored; a second install writes nothing. The
/// stand-in does not deliver notifications, so this runs against real authentik only.
async fn webhook_path(ak: &RealAuthentik) {
    use crate::status::{Harness, Options};
    use producer::commands::webhook::{BODY_MAPPING, GROUP, HEADER_MAPPING, RULE, TRANSPORT};

    let (code, text, token, user) = init(ak).await;
    assert_eq!(code, 0, "{text}");

    let recorder = Recorder::start(&ak.url).await.expect("recorder");
    let secret: String = uuid::Uuid::new_v4().simple().to_string() + "-contract-webhook";
    let h = Harness::with(
        (),
        &[],
        Options {
            dot_env: format!(
                "AUTHENTIK_URL={}\nAUTHENTIK_PUBLIC_URL={}\nPMA_SSO_WEBHOOK_SECRET={secret}\n",
                recorder.base_url(),
                ak.url
            ),
            queue_tag: "contract",
            env: vec![
                ("AUTHENTIK_TOKEN", token.clone()),
                ("PMA_SSO_AUTHENTIK_USER", user),
            ],
        },
    )
    .await;
    for service in ["linkding", "grafana"] {
        add_renamed(h.dir.path(), "w", service);
    }
    let (code, out) = h.pma(&["fix-all"]).await;
    assert_eq!(code, 0, "fix-all through the queue: {out}");

    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        listener.local_addr().expect("addr").port()
    };
    let mut serve = h
        .command(&["serve"])
        .env("PMA_SSO_WEBHOOK_ADDR", format!("127.0.0.1:{port}"))
        .env("PMA_SSO_STATUS_ADDR", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve did not listen on {port}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let url = format!("http://127.0.0.1:{port}/webhooks/authentik");
    let (code, out) = h.pma(&["webhook", "install", "--url", &url]).await;
    assert_eq!(code, 0, "webhook install: {out}");

    // pma-sso's own change first, then akadmin's: once akadmin's job is there, authentik has
    // delivered (or dropped) the one before it.
    let own = RealAuthentik {
        token,
        ..ak.clone()
    };
    patch(
        &own,
        "core/applications/w-grafana/",
        json!({"meta_description": "changed by pma-sso"}),
    )
    .await;
    patch(
        ak,
        "core/applications/w-linkding/",
        json!({"meta_description": "changed by an admin"}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let jobs = loop {
        let jobs: Vec<(String, String, String)> = sqlx::query_as(
            "select service, action, trigger from jobs where trigger = 'webhook' order by id",
        )
        .fetch_all(&h.pool)
        .await
        .expect("jobs");
        if jobs.iter().any(|(s, _, _)| s == "w-linkding") {
            break jobs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no webhook job for w-linkding within 30 s (jobs: {jobs:?})\n{}",
            ak.log_tails()
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert!(
        jobs.iter()
            .any(|j| j == &("w-linkding".into(), "check".into(), "webhook".into())),
        "{jobs:?}"
    );
    assert!(
        !jobs.iter().any(|(s, _, _)| s == "w-grafana"),
        "pma-sso's own change was not ignored: {jobs:?}"
    );

    recorder.clear();
    let (code, out) = h.pma(&["webhook", "install", "--url", &url]).await;
    assert_eq!(code, 0, "second webhook install: {out}");
    assert!(out.lines().all(|l| l.starts_with("unchanged: ")), "{out}");
    assert!(recorder.writes().is_empty(), "{:?}", recorder.writes());

    let _ = serve.kill().await;
    // Leave authentik as the suite found it.
    for (list, name) in [
        ("events/rules/", RULE),
        ("events/transports/", TRANSPORT),
        ("propertymappings/notification/", BODY_MAPPING),
        ("propertymappings/notification/", HEADER_MAPPING),
        ("core/groups/", GROUP),
    ] {
        let found = first(ak, &format!("{list}?name={name}")).await;
        let pk = found["pk"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| found["pk"].to_string());
        let (status, body) = ak.api(Method::DELETE, &format!("{list}{pk}/"), None).await;
        assert_eq!(status, 204, "delete {list}{pk}: {body}");
    }
    let (_, policies) = ak
        .api(Method::GET, "policies/event_matcher/?page_size=100", None)
        .await;
    for policy in policies["results"].as_array().into_iter().flatten() {
        if policy["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("pma-sso"))
        {
            let pk = policy["pk"].as_str().expect("policy pk");
            ak.api(
                Method::DELETE,
                &format!("policies/event_matcher/{pk}/"),
                None,
            )
            .await;
        }
    }
    std::fs::remove_dir_all(h.dir.path().join("packages")).expect("manifests");
    std::fs::create_dir(h.dir.path().join("packages")).expect("packages");
    let (code, out) = h.pma(&["orphans", "--prune"]).await;
    assert_eq!(code, 0, "{out}");
    h.finish().await;
}

/// `init` as the administrator, for an account of the suite's own: the compose stack test
/// (run before it in CI) makes the default `pma-sso` account in the same authentik.
fn init_env(ak: &RealAuthentik) -> [(&'static str, &str); 2] {
    [
        ("AUTHENTIK_ADMIN_TOKEN", ak.token.as_str()),
        ("PMA_SSO_SERVICE_ACCOUNT", "pma-sso-contract"),
    ]
}

/// `pma-sso init` in a directory of its own: exit code, output, and the token and user it stored.
async fn init(ak: &RealAuthentik) -> (i32, String, String, String) {
    let base = tempfile::tempdir().expect("tmp");
    std::fs::write(
        base.path().join(".env"),
        format!("AUTHENTIK_URL={}\n", ak.url),
    )
    .expect("env");
    let (code, text) = pma(base.path(), &init_env(ak), &["init"]).await;
    let env = EnvFile::read(&base.path().join(".env")).expect("init's .env");
    let token = env.get("AUTHENTIK_TOKEN").unwrap_or_default().to_owned();
    let user = env
        .get("PMA_SSO_AUTHENTIK_USER")
        .unwrap_or("pma-sso")
        .to_owned();
    (code, text, token, user)
}
