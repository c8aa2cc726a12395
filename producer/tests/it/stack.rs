//! The compose stack started for real with Debian's `docker-compose`, in the external-authentik
//! set-up (the real authentik on the host, reached at `host.docker.internal`), with CI's
//! override (`.ci/stack/docker-compose.ci.yml`: local images, stand-ins, exec recorders).
//!
//! Runs only with `PMA_SSO_STACK_TEST=1` (CI's `.ci/run` runs it as a step of its own, after the
//! real authentik started and before `cargo test --workspace`, which shares that authentik);
//! otherwise it prints one "skipped" line. Whatever happens it stops the stack, removes its
//! volumes, and deletes from authentik exactly the objects this run created.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use testkit::RealAuthentik;

const VAR: &str = "PMA_SSO_STACK_TEST";
const OVERRIDE: &str = "docker-compose.ci.yml";
/// The stack's own services and the test-only ones the override adds.
const SERVICES: [&str; 9] = [
    "postgres",
    "rabbitmq",
    "pma-sso-serve",
    "pma-sso-worker",
    "stand-ins",
    "redmine",
    "gitea",
    "nextcloud",
    "backend",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn random(tag: &str) -> String {
    format!("{tag}{}", uuid::Uuid::new_v4().simple())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One compose project in a directory of its own.
struct Stack {
    dir: tempfile::TempDir,
    project: String,
    webhook_port: u16,
    database_url: String,
    amqp_url: String,
}

impl Stack {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.args([
            "-p",
            &self.project,
            "-f",
            "docker-compose.yml",
            "-f",
            OVERRIDE,
        ])
        .args(args)
        .current_dir(self.dir.path())
        .env(
            "PMA_SSO_HOST_BIN",
            repo()
                .join("target/debug")
                .canonicalize()
                .expect("target/debug"),
        )
        .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("docker-compose")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker-compose {}: {}",
            args.join(" "),
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `pma-sso …` inside the serve container: (exit code, output).
    fn pma_sso(&self, args: &[&str]) -> (i32, String) {
        let mut full = vec!["exec", "-T", "pma-sso-serve", "pma-sso"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        // stdout holds the lines; stderr (logs) only matters when the command failed.
        let shown = if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            text(&out)
        };
        (out.status.code().unwrap_or(-1), shown)
    }

    /// A query on the stack's database through its published port (host `psql`: fast enough
    /// to catch a job in flight).
    fn sql(&self, query: &str) -> String {
        let out = Command::new("psql")
            .args([self.database_url.as_str(), "-tAc", query])
            .output()
            .expect("psql");
        assert!(out.status.success(), "psql {query}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn env_file(&self) -> PathBuf {
        self.dir.path().join(".env")
    }

    fn set_env(&self, key: &str, value: &str) {
        let text = std::fs::read_to_string(self.env_file()).expect(".env");
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{key}=")))
            .map(str::to_owned)
            .collect();
        lines.push(format!("{key}={value}"));
        std::fs::write(self.env_file(), lines.join("\n") + "\n").expect("write .env");
    }

    fn env_value(&self, key: &str) -> Option<String> {
        std::fs::read_to_string(self.env_file())
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
    }

    /// Every container of the project running, and healthy where it has a health check.
    fn wait_healthy(&self, within: Duration) {
        let start = Instant::now();
        loop {
            let ids = self.ok(&["ps", "-q"]);
            let mut states = Vec::new();
            for id in ids.split_whitespace() {
                let out = Command::new("docker")
                    .args([
                        "inspect",
                        "-f",
                        "{{index .Config.Labels \"com.docker.compose.service\"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
                        id,
                    ])
                    .output()
                    .expect("docker inspect");
                states.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
            }
            let up: BTreeSet<&str> = states
                .iter()
                .filter(|s| {
                    let f: Vec<&str> = s.split(' ').collect();
                    f.len() == 3 && f[1] == "running" && (f[2] == "healthy" || f[2] == "none")
                })
                .filter_map(|s| s.split(' ').next())
                .collect();
            // The external-authentik set-up: the bundled authentik's containers never start.
            assert!(
                !states.iter().any(|s| s.starts_with("authentik")),
                "{states:?}"
            );
            if SERVICES.iter().all(|s| up.contains(s)) {
                return;
            }
            assert!(
                start.elapsed() < within,
                "not every service became healthy within {within:?}: {states:?}\n{}",
                text(&self.run(&["logs", "--tail", "30"]))
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    async fn serve_readyz(&self) -> (u16, String) {
        match reqwest::get(format!("http://127.0.0.1:{}/readyz", self.webhook_port)).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    async fn wait_serve_ready(&self, within: Duration) {
        let start = Instant::now();
        loop {
            let (status, body) = self.serve_readyz().await;
            if status == 200 {
                return;
            }
            assert!(
                start.elapsed() < within,
                "serve not ready within {within:?}: {status} {body}\n{}",
                text(&self.run(&["logs", "--tail", "40", "pma-sso-serve"]))
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn worker_readyz(&self) -> String {
        let out = self.run(&[
            "exec",
            "-T",
            "pma-sso-worker",
            "curl",
            "-s",
            "http://127.0.0.1:9464/readyz",
        ]);
        text(&out)
    }

    fn wait_worker_ready(&self, within: Duration) {
        let start = Instant::now();
        loop {
            let body = self.worker_readyz();
            if body.contains("authentik: up") && !body.contains("down") {
                return;
            }
            assert!(
                start.elapsed() < within,
                "worker not ready within {within:?}: {body}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The stand-ins' own credentials (made anew at each start: they keep no state) into .env.
    fn stand_in_credentials(&self) {
        let start = Instant::now();
        let creds = loop {
            let out = self.run(&["exec", "-T", "stand-ins", "cat", "/tmp/stand-ins.env"]);
            let found = String::from_utf8_lossy(&out.stdout).into_owned();
            if found.contains("ZAMMAD_API_TOKEN=") {
                break found;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "stand-ins: {}",
                text(&out)
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        for line in creds.lines() {
            if let Some((k, v)) = line.split_once('=')
                && !k.ends_with("_URL")
                && k != "AUTHENTIK_PUBLIC_URL"
                && k != "PMA_SSO_OUTPOST_URL"
            {
                self.set_env(k, v);
            }
        }
    }

    fn recorded(&self, service: &str) -> String {
        let out = self.run(&["exec", "-T", service, "cat", "/records/commands.log"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The names of what pma-sso creates in authentik for the bundled services and the webhook:
/// the objects the clean-up may delete (and only those this run created).
struct Created {
    slugs: Vec<String>,
    mappings: Vec<String>,
    policies: Vec<String>,
    /// (endpoint, name field, pk field, names) found before the run: never deleted.
    before: Vec<(String, BTreeSet<String>)>,
}

const ENDPOINTS: [(&str, &str, &str); 8] = [
    ("core/applications/", "slug", "slug"),
    ("providers/all/", "name", "pk"),
    ("propertymappings/all/", "name", "pk"),
    ("policies/all/", "name", "pk"),
    ("events/rules/", "name", "pk"),
    ("events/transports/", "name", "pk"),
    ("core/groups/", "name", "pk"),
    ("core/users/", "username", "pk"),
];

async fn list(ak: &RealAuthentik, endpoint: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut page = 1;
    loop {
        let (status, body) = ak
            .api(
                Method::GET,
                &format!("{endpoint}?page={page}&page_size=100"),
                None,
            )
            .await;
        assert_eq!(status, 200, "GET {endpoint}: {body}");
        all.extend(body["results"].as_array().cloned().unwrap_or_default());
        if body["pagination"]["next"].as_u64().unwrap_or(0) == 0 {
            return all;
        }
        page += 1;
    }
}

impl Created {
    fn ours(&self, endpoint: &str, name: &str) -> bool {
        use producer::commands::webhook as w;
        match endpoint {
            "core/applications/" => self.slugs.iter().any(|s| s == name),
            "providers/all/" => self.slugs.iter().any(|s| format!("pma-sso-{s}") == name),
            "propertymappings/all/" => {
                self.mappings.iter().any(|m| m == name)
                    || [w::BODY_MAPPING, w::HEADER_MAPPING].contains(&name)
            }
            "policies/all/" => self.policies.iter().any(|p| p == name),
            "events/rules/" => name == w::RULE,
            "events/transports/" => name == w::TRANSPORT,
            "core/groups/" => name == w::GROUP,
            "core/users/" => name == producer::commands::init::SERVICE_ACCOUNT,
            _ => false,
        }
    }

    async fn snapshot(ak: &RealAuthentik) -> Created {
        let mut slugs = Vec::new();
        let mut mappings = Vec::new();
        for entry in std::fs::read_dir(repo().join("packages")).expect("packages") {
            let path = entry.expect("entry").path().join("manifest.yaml");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let manifest: Value = serde_saphyr::from_str(&text).expect("manifest YAML");
            let slug = manifest["sso"]["slug"]
                .as_str()
                .or(manifest["name"].as_str())
                .expect("name");
            slugs.push(slug.to_owned());
            for m in manifest["sso"]["mappings"].as_array().into_iter().flatten() {
                if let Some(name) = m["name"].as_str() {
                    mappings.push(name.to_owned());
                }
            }
        }
        let policies = producer::commands::webhook::ACTIONS
            .iter()
            .flat_map(|a| {
                producer::commands::webhook::MODELS
                    .iter()
                    .map(move |m| producer::commands::webhook::policy_name(a, m))
            })
            .collect();
        let mut created = Created {
            slugs,
            mappings,
            policies,
            before: Vec::new(),
        };
        for (endpoint, name_field, _) in ENDPOINTS {
            let names = list(ak, endpoint)
                .await
                .iter()
                .filter_map(|o| o[name_field].as_str().map(str::to_owned))
                .filter(|n| created.ours(endpoint, n))
                .collect();
            created.before.push((endpoint.to_owned(), names));
        }
        created
    }

    /// Delete what this run created: objects with pma-sso's names that were not there before.
    /// Tries every object (a refusal is retried, then reported) before saying what failed.
    async fn clean_up(&self, ak: &RealAuthentik) -> (Vec<String>, Vec<String>) {
        let (mut deleted, mut failed) = (Vec::new(), Vec::new());
        for (endpoint, name_field, pk_field) in ENDPOINTS {
            let before = self
                .before
                .iter()
                .find(|(e, _)| e == endpoint)
                .map(|(_, names)| names.clone())
                .unwrap_or_default();
            for object in list(ak, endpoint).await {
                let Some(name) = object[name_field].as_str() else {
                    continue;
                };
                if !self.ours(endpoint, name) || before.contains(name) {
                    continue;
                }
                let pk = match &object[pk_field] {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                let mut last = String::new();
                for _ in 0..3 {
                    let (status, body) = ak
                        .api(Method::DELETE, &format!("{endpoint}{pk}/"), None)
                        .await;
                    if status == 204 || status == 404 {
                        last.clear();
                        break;
                    }
                    last = format!("DELETE {endpoint}{pk}/ ({name}): {status} {body}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                if last.is_empty() {
                    deleted.push(format!("{endpoint}{name}"));
                } else {
                    failed.push(last);
                }
            }
        }
        (deleted, failed)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_stack_starts_sets_up_and_keeps_every_job_through_a_worker_kill_and_a_restart() {
    if std::env::var(VAR).ok().as_deref() != Some("1") {
        eprintln!(
            "skipped: the compose stack test ({VAR}=1 runs it; .ci/run does, as a step of its own)"
        );
        return;
    }
    let Some(ak) = RealAuthentik::from_env("the compose stack test").await else {
        panic!("{VAR}=1 needs the real authentik: set PMA_SSO_REAL_AUTHENTIK (.ci/run does)");
    };
    let started = Instant::now();
    let images = Command::new("bash")
        .arg(repo().join("scripts/stack-images.sh"))
        .current_dir(repo())
        .output()
        .expect("scripts/stack-images.sh");
    assert!(images.status.success(), "images: {}", text(&images));
    eprintln!(
        "stack: images ready in {:?}\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&images.stderr)
    );

    let stack = Arc::new(set_up_dir(&ak));
    let created = Created::snapshot(&ak).await;
    // The steps run in a task of their own so that a failing assertion still reaches the
    // clean-up below.
    let steps = tokio::spawn(steps(stack.clone(), ak.clone()));
    let outcome = steps.await;
    let logs = text(&stack.run(&["logs", "--tail", "60", "pma-sso-serve", "pma-sso-worker"]));
    let down = stack.run(&["down", "-v", "--remove-orphans", "-t", "5"]);
    let (deleted, failed) = created.clean_up(&ak).await;
    eprintln!(
        "stack: down: {}; removed from authentik: {} objects",
        down.status,
        deleted.len()
    );
    if let Err(e) = outcome {
        eprintln!("stack: the last lines of pma-sso's containers:\n{logs}");
        eprintln!("stack: clean-up failures: {failed:?}");
        std::panic::resume_unwind(e.into_panic());
    }
    assert!(down.status.success(), "down: {}", text(&down));
    assert!(failed.is_empty(), "authentik clean-up: {failed:?}");
    eprintln!("stack: the whole test took {:?}", started.elapsed());
}

fn set_up_dir(ak: &RealAuthentik) -> Stack {
    let dir = tempfile::Builder::new()
        .prefix("pma-sso-stack-")
        .tempdir()
        .expect("tempdir");
    let root = repo();
    std::fs::copy(
        root.join("docker-compose.yml"),
        dir.path().join("docker-compose.yml"),
    )
    .expect("copy compose");
    std::fs::copy(
        root.join(".ci/stack").join(OVERRIDE),
        dir.path().join(OVERRIDE),
    )
    .expect("copy override");
    crate::cli::copy_dir(&root.join("packages"), &dir.path().join("packages"));
    crate::cli::copy_dir(
        &root.join("deploy/postgres"),
        &dir.path().join("deploy/postgres"),
    );
    let project = format!(
        "pma-sso-stack-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let ak_port = ak.url.rsplit(':').next().unwrap_or("9000").to_owned();
    let (status_port, webhook_port) = (free_port(), free_port());
    let docker_gid = std::fs::read_to_string("/etc/group")
        .ok()
        .and_then(|g| {
            g.lines().find_map(|l| {
                l.strip_prefix("docker:x:")?
                    .split(':')
                    .next()
                    .map(str::to_owned)
            })
        })
        .unwrap_or_else(|| "0".into());
    let (pg_password, pg_port) = (random("pg"), free_port());
    let (mq_password, mq_port) = (random("mq"), free_port());
    // The operator's .env, as the README's sequence makes it, for an external authentik.
    let env = format!(
        "COMPOSE_PROJECT_NAME={project}\nCOMPOSE_PROFILES=\n\
         AUTHENTIK_URL=http://host.docker.internal:{ak_port}\n\
         AUTHENTIK_PUBLIC_URL=http://127.0.0.1:{ak_port}\n\
         DOMAIN=stack15.example\n\
         POSTGRES_PASSWORD={}\nRABBITMQ_PASSWORD={}\nAUTHENTIK_SECRET_KEY=unused-external\n\
         AUTHENTIK_BOOTSTRAP_PASSWORD=unused-external\nAUTHENTIK_BOOTSTRAP_TOKEN=unused-external\n\
         PMA_SSO_STATUS_TOKEN={}\nAUTHENTIK_TOKEN=\nPMA_SSO_WEBHOOK_SECRET=\n\
         PMA_SSO_WEBHOOK_URL=http://127.0.0.1:{webhook_port}/webhooks/authentik\n\
         PMA_SSO_STATUS_PUBLISH=127.0.0.1:{status_port}\nPMA_SSO_WEBHOOK_PUBLISH=127.0.0.1:{webhook_port}\n\
         PMA_SSO_POSTGRES_PUBLISH=127.0.0.1:{}\nPMA_SSO_RABBITMQ_PUBLISH=127.0.0.1:{}\n\
         PMA_SSO_UID=0\nPMA_SSO_GID=0\nDOCKER_GID={docker_gid}\n\
         WIKIJS_URL=http://stand-ins:3000\nERPNEXT_URL=http://stand-ins:8000\nZAMMAD_URL=http://stand-ins:3001\n",
        pg_password,
        mq_password,
        random("st"),
        pg_port,
        mq_port,
    );
    std::fs::write(dir.path().join(".env"), env).expect("write .env");
    Stack {
        dir,
        project,
        webhook_port,
        database_url: format!("postgres://pma_sso:{pg_password}@127.0.0.1:{pg_port}/pma_sso"),
        amqp_url: format!("amqp://pma_sso:{mq_password}@127.0.0.1:{mq_port}/%2f"),
    }
}

async fn steps(stack: Arc<Stack>, ak: RealAuthentik) {
    let t = Instant::now();
    let step = |what: &str| eprintln!("stack: {:>6.1?} {what}", t.elapsed());

    // The stand-ins first: their own credentials go into .env like an operator's would.
    stack.ok(&["up", "-d", "--no-build", "stand-ins"]);
    stack.stand_in_credentials();

    // 1. `up -d`: every service healthy, the pma-sso ones alive but waiting for `init`.
    stack.ok(&["up", "-d", "--no-build"]);
    stack.wait_healthy(Duration::from_secs(240));
    step("up -d: every service healthy");
    let (status, body) = stack.serve_readyz().await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("AUTHENTIK_TOKEN is not set") && body.contains("pma-sso init"),
        "{body}"
    );
    let worker = stack.worker_readyz();
    assert!(worker.contains("pma-sso init"), "{worker}");
    let restarts = stack.ok(&["ps"]);
    assert!(!restarts.contains("Restarting"), "{restarts}");

    // 2. `init` with authentik's bootstrap token (from the environment, never argv).
    let out = stack
        .command(&[
            "run",
            "--rm",
            "-T",
            "-e",
            "AUTHENTIK_ADMIN_TOKEN",
            "pma-sso-serve",
            "pma-sso",
            "init",
        ])
        .env("AUTHENTIK_ADMIN_TOKEN", &ak.token)
        .output()
        .expect("init");
    assert!(out.status.success(), "init: {}", text(&out));
    assert!(
        stack
            .env_value("AUTHENTIK_TOKEN")
            .is_some_and(|t| !t.is_empty())
    );
    // serve sees the token, installs the webhook itself (PMA_SSO_WEBHOOK_URL) and serves.
    stack.wait_serve_ready(Duration::from_secs(120)).await;
    stack.wait_worker_ready(Duration::from_secs(120));
    assert!(
        stack
            .env_value("PMA_SSO_WEBHOOK_SECRET")
            .is_some_and(|s| s.len() >= 32)
    );
    step("init: serve and worker ready, webhook installed by serve");

    // 3. fix-all inside the stack, then 12 green.
    let (code, out) = stack.pma_sso(&["--wait-timeout", "600", "fix-all"]);
    assert_eq!(code, 0, "fix-all: {out}");
    let (code, out) = stack.pma_sso(&["check"]);
    assert_eq!(code, 0, "check: {out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("✓ ")).count(),
        12,
        "{out}"
    );
    step("fix-all, check: 12 green");

    // exec deliveries landed in the services' containers, through the Engine API.
    for (service, expected) in [
        ("redmine", "root bundle exec rails runner"),
        ("gitea", "git gitea admin auth add-oauth --name authentik"),
        ("nextcloud", "www-data php occ app:install user_oidc"),
        ("nextcloud", "www-data php occ user_oidc:provider authentik"),
        ("backend", "root bench --site"),
    ] {
        let log = stack.recorded(service);
        assert!(log.contains(expected), "{service}: {log}");
    }
    let gitea = stack.recorded("gitea");
    assert!(
        gitea.contains("env: SSO_CLIENT_ID SSO_CLIENT_SECRET"),
        "{gitea}"
    );
    let secret = stack
        .env_value("GITEA_SSO_CLIENT_SECRET")
        .expect("gitea secret in .env");
    assert!(
        !gitea.contains(&secret),
        "a secret reached the recorded command line"
    );
    step("exec deliveries recorded in redmine, gitea, nextcloud, backend");

    // 4. authentik's webhook reaches serve: an admin's edit becomes a job.
    let before: i64 = stack
        .sql("select count(*) from jobs where trigger = 'webhook'")
        .parse()
        .expect("count");
    let (status, body) = ak
        .api(
            Method::PATCH,
            "core/applications/grafana/",
            Some(serde_json::json!({"meta_description": "edited by the stack test"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let start = Instant::now();
    loop {
        let now: i64 = stack
            .sql("select count(*) from jobs where trigger = 'webhook' and service = 'grafana'")
            .parse()
            .expect("count");
        if now > before {
            break;
        }
        // authentik's worker delivers notifications after every event queued before (the
        // fix-all's own): on a busy authentik that takes minutes.
        assert!(
            start.elapsed() < Duration::from_secs(420),
            "no webhook job for grafana within 420 s\n{}",
            text(&stack.run(&["logs", "--tail", "30", "pma-sso-serve"]))
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    step(&format!(
        "webhook: authentik's notification recorded a job ({:?} after the edit)",
        start.elapsed()
    ));

    // The git hook on the host enqueues into the stack through the published ports.
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=stack",
                "-c",
                "user.email=stack@example.org",
            ])
            .args(args)
            .current_dir(stack.dir.path())
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {}", text(&out));
    };
    std::fs::write(stack.dir.path().join(".gitignore"), ".env\n.pma-sso/\n").expect("ignore");
    // The platform without grafana, then a commit adding grafana's manifest.
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["reset", "-q", "packages/grafana"]);
    git(&["commit", "-qm", "the platform"]);
    git(&["add", "packages/grafana"]);
    git(&["commit", "-qm", "grafana"]);
    let hook = Command::new(env!("CARGO_BIN_EXE_pma-sso"))
        .args(["enqueue", "--changed", "HEAD^..HEAD"])
        .current_dir(stack.dir.path())
        .env("PMA_SSO_ENV_FILE", stack.env_file())
        .env("DATABASE_URL", &stack.database_url)
        .env("AMQP_URL", &stack.amqp_url)
        .output()
        .expect("pma-sso enqueue");
    assert!(hook.status.success(), "enqueue: {}", text(&hook));
    let start = Instant::now();
    loop {
        let done = stack.sql(
            "select count(*) from jobs where trigger = 'git' and service = 'grafana' and status = 'succeeded'",
        );
        if done == "1" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the git hook's job: {done}; {}",
            text(&hook)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    step("git hook on the host: a manifest commit became a job in the stack");

    // 5. The worker container killed in the middle of a fix-all, started again: every job
    //    finishes once. A new domain makes all twelve services drift, so each job writes.
    stack.set_env("DOMAIN", "stack15-moved.example");
    let marker = stack.sql("select now()");
    let worker_id = stack.ok(&["ps", "-q", "pma-sso-worker"]).trim().to_owned();
    let fix_all = stack
        .command(&[
            "exec",
            "-T",
            "pma-sso-serve",
            "pma-sso",
            "--wait-timeout",
            "900",
            "fix-all",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fix-all");
    let start = Instant::now();
    loop {
        let running: i64 = stack
            .sql(&format!(
                "select count(*) from jobs where created_at >= '{marker}' and action = 'fix' and attempts > 0"
            ))
            .parse()
            .expect("count");
        if running > 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no job started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = Command::new("docker")
        .args(["kill", "-s", "KILL", &worker_id])
        .output()
        .expect("docker kill");
    assert!(killed.status.success(), "{}", text(&killed));
    let unfinished: i64 = stack
        .sql(&format!(
            "select count(*) from jobs where created_at >= '{marker}' and action = 'fix' and status not in ('succeeded')"
        ))
        .parse()
        .expect("count");
    step(&format!(
        "worker killed with {unfinished} of 12 jobs unfinished"
    ));
    assert!(unfinished > 0, "the kill came after every job had finished");
    stack.ok(&["start", "pma-sso-worker"]);
    let out = tokio::task::spawn_blocking(move || fix_all.wait_with_output())
        .await
        .expect("join")
        .expect("fix-all output");
    assert!(
        out.status.success(),
        "fix-all across the kill: {}",
        text(&out)
    );
    let per_service = stack.sql(&format!(
        "select string_agg(service || ':' || status || ':' || n, ',' order by service) from \
         (select service, status, count(*) n from jobs where created_at >= '{marker}' and action = 'fix' and trigger = 'cli' group by service, status) s"
    ));
    let rows: Vec<&str> = per_service.split(',').collect();
    assert_eq!(rows.len(), 12, "one fix job per service: {per_service}");
    assert!(
        rows.iter().all(|r| r.ends_with(":succeeded:1")),
        "{per_service}"
    );
    let providers = list(&ak, "providers/all/").await;
    for slug in [
        "grafana",
        "redmine",
        "zammad",
        "uptime-kuma",
        "wikijs",
        "erpnext",
    ] {
        let n = providers
            .iter()
            .filter(|p| p["name"] == format!("pma-sso-{slug}"))
            .count();
        assert_eq!(n, 1, "providers named pma-sso-{slug}");
    }
    let (code, out) = stack.pma_sso(&["check"]);
    assert_eq!(code, 0, "check after the kill: {out}");
    step("worker kill: every job finished once, 12 green");

    // 6. down, up: state (database, .env) kept.
    let env_before = std::fs::read_to_string(stack.env_file()).expect(".env");
    let jobs_before = stack.sql("select count(*) from jobs");
    stack.ok(&["down", "-t", "10"]);
    stack.ok(&["up", "-d", "--no-build"]);
    stack.wait_healthy(Duration::from_secs(240));
    stack.wait_serve_ready(Duration::from_secs(120)).await;
    stack.wait_worker_ready(Duration::from_secs(120));
    assert_eq!(
        std::fs::read_to_string(stack.env_file()).expect(".env"),
        env_before,
        ".env changed across down/up"
    );
    let jobs_after: i64 = stack
        .sql("select count(*) from jobs")
        .parse()
        .expect("count");
    assert!(jobs_after >= jobs_before.parse::<i64>().expect("count"));
    // What pma-sso keeps (authentik, .env, the database) survived: the nine services whose
    // other side is not a stand-in are green at once. The Wiki.js, Frappe and Zammad
    // stand-ins keep nothing across a restart (in-memory test doubles): they get their new
    // credentials and one fix, then all twelve are green.
    let (_, out) = stack.pma_sso(&["check"]);
    for line in out.lines().filter(|l| l.contains(" — ")) {
        let stand_in = ["wikijs", "erpnext", "zammad"]
            .iter()
            .any(|s| line.contains(&format!(" {s} (")));
        assert!(stand_in || line.starts_with("✓ "), "after down/up: {out}");
    }
    stack.stand_in_credentials();
    for service in ["wikijs", "erpnext", "zammad"] {
        let (code, out) = stack.pma_sso(&["fix", service]);
        assert_eq!(code, 0, "fix {service} after down/up: {out}");
    }
    let (code, out) = stack.pma_sso(&["check"]);
    assert_eq!(code, 0, "check after down/up: {out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("✓ ")).count(),
        12,
        "{out}"
    );
    step("down, up: state and .env kept, 12 green");
}
