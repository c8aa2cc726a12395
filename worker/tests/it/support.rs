//! A throwaway platform for one test: the authentik stand-in, a temp directory with a copy of
//! some bundled packages, a `.env`, a fake exec runner, and a `Context` wired to all of it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use secrecy::SecretString;
use testkit::{AuthentikSim, SimHandle};
use worker::{Context, Settings};

pub const TOKEN: &str = "test-token-8c1f4e";

pub struct Platform {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
    pub ctx: Context,
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

impl Platform {
    /// A platform holding the named bundled packages (all of them for `&[]`).
    pub async fn new(services: &[&str]) -> Platform {
        Self::with_env(services, "DOMAIN=example.org\n").await
    }

    pub async fn with_env(services: &[&str], env: &str) -> Platform {
        let sim = AuthentikSim::new(TOKEN).start().await;
        let dir = tempfile::tempdir().expect("tmp");
        let packages = dir.path().join("packages");
        let bundled = repo_root().join("packages");
        for entry in std::fs::read_dir(&bundled).expect("packages") {
            let entry = entry.expect("entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            if services.is_empty() || services.contains(&name.as_str()) {
                copy_dir(&entry.path(), &packages.join(&name));
            }
        }
        std::fs::write(dir.path().join(".env"), env).expect("write .env");
        let runner = dir.path().join("fake-runner.sh");
        // Records every invocation (argv, and the values of the variables passed with -e) so
        // tests can see what would have run in the container.
        std::fs::write(
            &runner,
            "#!/bin/sh\nlog=\"$(dirname \"$0\")/exec.log\"\nprintf '%s\\n' \"$*\" >> \"$log\"\nexit \"${FAKE_RUNNER_EXIT:-0}\"\n",
        )
        .expect("write runner");
        std::fs::set_permissions(&runner, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let settings = Settings {
            authentik_url: sim.base_url(),
            authentik_token: SecretString::from(TOKEN.to_owned()),
            public_url: None,
            packages_dir: packages,
            env_path: dir.path().join(".env"),
            state_dir: dir.path().join(".pma-sso"),
            exec_runner: vec![runner.display().to_string()],
            http_timeout: std::time::Duration::from_secs(5),
            least_privilege: false,
        };
        let ctx = Context::new(settings).expect("context");
        Platform { sim, dir, ctx }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn env_text(&self) -> String {
        std::fs::read_to_string(self.path(".env")).unwrap_or_default()
    }

    pub fn env_value(&self, key: &str) -> Option<String> {
        worker::envfile::EnvFile::read(&self.path(".env"))
            .expect("parse .env")
            .get(key)
            .map(str::to_owned)
    }

    pub fn set_env(&self, key: &str, value: &str) {
        worker::envfile::update(&self.path(".env"), &[(key, Some(value))]).expect("update .env");
    }

    pub fn exec_log(&self) -> String {
        std::fs::read_to_string(self.path("exec.log")).unwrap_or_default()
    }

    pub fn apps_with_slug(&self, slug: &str) -> usize {
        self.sim
            .applications()
            .iter()
            .filter(|a| a["slug"] == slug)
            .count()
    }

    pub fn providers_named(&self, name: &str) -> usize {
        self.sim
            .oauth2_providers()
            .iter()
            .filter(|p| p["name"] == name)
            .count()
    }
}

/// A `tracing` subscriber that captures everything logged while it is installed.
#[derive(Clone, Default)]
pub struct LogCapture(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> LogCapture {
        self.clone()
    }
}

/// The test binary's one global subscriber, capturing every log line of every test at every
/// level. Global because `tracing` caches per-callsite interest across threads, so a
/// thread-local subscriber misses events while other tests run in parallel.
pub fn global_log_capture() -> LogCapture {
    static CAPTURE: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = LogCapture::default();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(capture.clone())
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
            capture
        })
        .clone()
}

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}
