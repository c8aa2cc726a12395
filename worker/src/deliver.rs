//! Delivery of native settings to a service, as its manifest says: `env` (a rendered env file
//! the service's compose entry loads), `file` (a rendered template), `exec` (an idempotent
//! command run in the service's container through a configurable runner) and `http` (a
//! settings API that is written and read back).
//!
//! Every kind can be checked: env, file and http are read back and compared; an exec command
//! cannot be read back, so a keyed fingerprint of what it last ran with is kept in the state
//! directory and compared instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use hmac::{Hmac, Mac};
use schemas::manifest::{EnvDelivery, ExecDelivery, FileDelivery, HttpDelivery};
use schemas::{Delivery, Package, Template};
use sha2::Sha256;

use crate::envfile::{self, EnvError, EnvFile};
use crate::render::{Rendered, Scope};
use crate::report::Drift;

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("{field}: {problem}")]
    Render { field: String, problem: String },
    #[error("reading {path}: {problem}")]
    Read { path: String, problem: String },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: EnvError,
    },
    #[error("could not start `{program}`: {problem}")]
    ExecSpawn { program: String, problem: String },
    #[error("command exited with {status}: {output}")]
    ExecFailed { status: String, output: String },
    #[error("{what}: {problem}")]
    Http {
        what: String,
        problem: String,
        transient: bool,
    },
}

impl DeliverError {
    pub fn is_transient(&self) -> bool {
        match self {
            DeliverError::Http { transient, .. } => *transient,
            // A failing command may be a container that is still starting.
            DeliverError::ExecFailed { .. } | DeliverError::Write { .. } => true,
            DeliverError::Render { .. }
            | DeliverError::Read { .. }
            | DeliverError::ExecSpawn { .. } => false,
        }
    }
}

/// Everything a delivery needs about one service.
pub struct Deliverer<'a> {
    pub package: &'a Package,
    pub scope: &'a Scope<'a>,
    pub state_dir: &'a Path,
    pub exec_runner: &'a [String],
    pub http: &'a reqwest::Client,
    /// Values that must never leave in an error text (stderr of commands may echo them).
    pub secrets: Vec<String>,
}

/// Whether a delivery changed something, and whether the service must restart for it.
pub struct Delivered {
    pub changed: bool,
    pub needs_restart: bool,
}

impl Deliverer<'_> {
    pub async fn check(
        &self,
        index: usize,
        delivery: &Delivery,
    ) -> Result<Vec<Drift>, DeliverError> {
        match delivery {
            Delivery::Env(env) => self.check_env(index, env),
            Delivery::File(file) => self.check_file(index, file),
            Delivery::Exec(exec) => self.check_exec(index, exec),
            Delivery::Http(http) => self.check_http(index, http).await,
        }
    }

    pub async fn apply(
        &self,
        index: usize,
        delivery: &Delivery,
    ) -> Result<Delivered, DeliverError> {
        match delivery {
            Delivery::Env(env) => self.apply_env(index, env),
            Delivery::File(file) => self.apply_file(index, file),
            Delivery::Exec(exec) => self.apply_exec(index, exec).await,
            Delivery::Http(http) => self.apply_http(index, http).await,
        }
    }

    fn render(&self, field: String, template: &Template) -> Result<Rendered, DeliverError> {
        self.scope
            .render(template)
            .map_err(|e| DeliverError::Render {
                field,
                problem: e.0,
            })
    }

    fn display(&self, path: &Path) -> String {
        // Shown relative to the directory that holds `packages/`, e.g. `packages/grafana/.sso.env`.
        let root = self
            .package
            .dir
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new(""));
        path.strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    // --- env -----------------------------------------------------------------------------

    fn env_rendered(
        &self,
        index: usize,
        env: &EnvDelivery,
    ) -> Result<Vec<(String, Rendered)>, DeliverError> {
        env.vars
            .iter()
            .map(|(key, template)| {
                let field = format!("sso.deliver[{index}].env.vars.{key}");
                Ok((key.to_string(), self.render(field, template)?))
            })
            .collect()
    }

    fn env_text(&self, vars: &[(String, Rendered)]) -> String {
        let mut text = format!(
            "# Written by pma-sso from packages/{}/manifest.yaml; `pma-sso fix {}` overwrites edits.\n",
            self.package.manifest.name, self.package.manifest.name
        );
        for (key, value) in vars {
            text.push_str(&format!("{key}={}\n", envfile::encode_value(&value.text)));
        }
        text
    }

    fn check_env(&self, index: usize, env: &EnvDelivery) -> Result<Vec<Drift>, DeliverError> {
        let path = self.package.dir.join(env.path.as_str());
        let shown = self.display(&path);
        let wanted = self.env_rendered(index, env)?;
        if !path.exists() {
            return Ok(vec![Drift::new(
                format!("deliver[{index}].env"),
                format!("delivered settings missing: {shown} does not exist"),
                format!("write {shown}"),
            )]);
        }
        let have = EnvFile::read(&path).map_err(|e| DeliverError::Read {
            path: shown.clone(),
            problem: e.to_string(),
        })?;
        let mut drifts = Vec::new();
        for (key, value) in &wanted {
            let field = format!("deliver[{index}].env.{key}");
            match have.get(key) {
                None => drifts.push(Drift::new(
                    field,
                    format!("delivered setting missing: {key} in {shown}"),
                    format!("rewrite {shown}"),
                )),
                Some(current) if current != value.text => {
                    let message = if value.secret {
                        format!("delivered setting stale: {key} in {shown} differs")
                    } else {
                        format!(
                            "delivered setting stale: {key} in {shown}: want {}, has {current}",
                            value.text
                        )
                    };
                    drifts.push(Drift::new(field, message, format!("rewrite {shown}")));
                }
                Some(_) => {}
            }
        }
        for key in have.keys() {
            if !wanted.iter().any(|(k, _)| k == key) {
                drifts.push(Drift::new(
                    format!("deliver[{index}].env.{key}"),
                    format!("delivered setting unexpected: {key} in {shown}"),
                    format!("rewrite {shown}"),
                ));
            }
        }
        Ok(drifts)
    }

    fn apply_env(&self, index: usize, env: &EnvDelivery) -> Result<Delivered, DeliverError> {
        let path = self.package.dir.join(env.path.as_str());
        let text = self.env_text(&self.env_rendered(index, env)?);
        self.write_if_changed(&path, &text)
    }

    fn write_if_changed(&self, path: &Path, text: &str) -> Result<Delivered, DeliverError> {
        let current = std::fs::read(path).ok();
        if current.as_deref() == Some(text.as_bytes()) {
            return Ok(Delivered {
                changed: false,
                needs_restart: false,
            });
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| DeliverError::Write {
                path: self.display(path),
                source: EnvError::Write {
                    path: parent.to_owned(),
                    source: e,
                },
            })?;
        }
        envfile::write_private(path, text.as_bytes()).map_err(|source| DeliverError::Write {
            path: self.display(path),
            source,
        })?;
        Ok(Delivered {
            changed: true,
            needs_restart: true,
        })
    }

    // --- file ----------------------------------------------------------------------------

    fn file_rendered(&self, index: usize, file: &FileDelivery) -> Result<String, DeliverError> {
        let template_path = self.package.dir.join(file.template.as_str());
        let shown = self.display(&template_path);
        let source = std::fs::read_to_string(&template_path).map_err(|e| DeliverError::Read {
            path: shown.clone(),
            problem: e.to_string(),
        })?;
        let template = Template::parse(&source).map_err(|problem| DeliverError::Render {
            field: shown.clone(),
            problem,
        })?;
        Ok(self
            .render(format!("sso.deliver[{index}].file ({shown})"), &template)?
            .text)
    }

    fn check_file(&self, index: usize, file: &FileDelivery) -> Result<Vec<Drift>, DeliverError> {
        let wanted = self.file_rendered(index, file)?;
        let path = self.package.dir.join(file.path.as_str());
        let shown = self.display(&path);
        let message = match std::fs::read(&path) {
            Err(_) => format!("delivered file missing: {shown}"),
            Ok(bytes) if bytes != wanted.as_bytes() => {
                format!(
                    "delivered file stale: {shown} differs from {}",
                    file.template
                )
            }
            Ok(_) => return Ok(Vec::new()),
        };
        Ok(vec![Drift::new(
            format!("deliver[{index}].file"),
            message,
            format!("render {} into {shown}", file.template),
        )])
    }

    fn apply_file(&self, index: usize, file: &FileDelivery) -> Result<Delivered, DeliverError> {
        let text = self.file_rendered(index, file)?;
        self.write_if_changed(&self.package.dir.join(file.path.as_str()), &text)
    }

    // --- exec ----------------------------------------------------------------------------

    fn exec_plan(&self, index: usize, exec: &ExecDelivery) -> Result<ExecPlan, DeliverError> {
        let service = exec
            .service
            .clone()
            .unwrap_or_else(|| self.package.manifest.compose_service());
        let argv = exec
            .argv
            .iter()
            .enumerate()
            .map(|(i, t)| {
                Ok(self
                    .render(format!("sso.deliver[{index}].exec.argv[{i}]"), t)?
                    .text)
            })
            .collect::<Result<Vec<_>, DeliverError>>()?;
        let env = exec
            .env
            .iter()
            .map(|(k, t)| {
                Ok((
                    k.to_string(),
                    self.render(format!("sso.deliver[{index}].exec.env.{k}"), t)?
                        .text,
                ))
            })
            .collect::<Result<BTreeMap<_, _>, DeliverError>>()?;
        Ok(ExecPlan {
            service: service.to_string(),
            user: exec.user.clone(),
            argv,
            env,
        })
    }

    fn check_exec(&self, index: usize, exec: &ExecDelivery) -> Result<Vec<Drift>, DeliverError> {
        let plan = self.exec_plan(index, exec)?;
        let state = DeliveryState::load(self.state_dir, self.package.manifest.name.as_str());
        let fingerprint = fingerprint(self.state_dir, &plan)?;
        if state.exec.get(&index.to_string()) == Some(&fingerprint) {
            return Ok(Vec::new());
        }
        Ok(vec![Drift::new(
            format!("deliver[{index}].exec"),
            format!(
                "delivered setting stale: `{}` in {} has not run with the current settings",
                plan.argv.first().map(String::as_str).unwrap_or(""),
                plan.service
            ),
            format!(
                "run `{}` in {}",
                plan.argv.join(" ").chars().take(60).collect::<String>(),
                plan.service
            ),
        )])
    }

    async fn apply_exec(
        &self,
        index: usize,
        exec: &ExecDelivery,
    ) -> Result<Delivered, DeliverError> {
        let plan = self.exec_plan(index, exec)?;
        let name = self.package.manifest.name.as_str();
        let mut state = DeliveryState::load(self.state_dir, name);
        let fingerprint = fingerprint(self.state_dir, &plan)?;
        if state.exec.get(&index.to_string()) == Some(&fingerprint) {
            return Ok(Delivered {
                changed: false,
                needs_restart: false,
            });
        }
        let (program, prefix) =
            self.exec_runner
                .split_first()
                .ok_or_else(|| DeliverError::ExecSpawn {
                    program: String::new(),
                    problem: "the exec runner is empty".into(),
                })?;
        let mut command = tokio::process::Command::new(program);
        command.args(prefix);
        if let Some(user) = &plan.user {
            command.args(["--user", user]);
        }
        // Secrets travel as environment of the runner; `-e NAME` without a value makes
        // `docker compose exec` copy it, so no secret appears in any command line.
        for (key, value) in &plan.env {
            command.args(["-e", key]);
            command.env(key, value);
        }
        command.arg(&plan.service).args(&plan.argv);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.kill_on_drop(true);
        let output = command
            .output()
            .await
            .map_err(|e| DeliverError::ExecSpawn {
                program: program.clone(),
                problem: e.to_string(),
            })?;
        if !output.status.success() {
            let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
            if text.trim().is_empty() {
                text = String::from_utf8_lossy(&output.stdout).into_owned();
            }
            let tail: String = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            return Err(DeliverError::ExecFailed {
                status: output.status.to_string(),
                output: scrub(&tail, &self.secrets),
            });
        }
        state.exec.insert(index.to_string(), fingerprint);
        state
            .save(self.state_dir, name)
            .map_err(|source| DeliverError::Write {
                path: self.display(&state_path(self.state_dir, name)),
                source,
            })?;
        Ok(Delivered {
            changed: true,
            needs_restart: false,
        })
    }

    // --- http ----------------------------------------------------------------------------

    async fn http_current(
        &self,
        index: usize,
        http: &HttpDelivery,
    ) -> Result<(Vec<serde_json::Value>, reqwest::header::HeaderMap), DeliverError> {
        let list_url = self
            .render(
                format!("sso.deliver[{index}].http.list_url"),
                &http.list_url,
            )?
            .text;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, template) in &http.headers {
            let value = self.render(
                format!("sso.deliver[{index}].http.headers.{name}"),
                template,
            )?;
            let header_name =
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    DeliverError::Render {
                        field: format!("sso.deliver[{index}].http.headers"),
                        problem: format!("`{name}` is not a valid header name"),
                    }
                })?;
            let mut header_value =
                reqwest::header::HeaderValue::from_str(&value.text).map_err(|_| {
                    DeliverError::Render {
                        field: format!("sso.deliver[{index}].http.headers.{name}"),
                        problem: "the rendered value is not a valid header value".into(),
                    }
                })?;
            header_value.set_sensitive(value.secret);
            headers.insert(header_name, header_value);
        }
        let what = format!("GET {}", strip_query(&list_url));
        let response = self
            .http
            .get(&list_url)
            .headers(headers.clone())
            .send()
            .await
            .map_err(|e| http_transport(&what, &e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(http_status(&what, status.as_u16()));
        }
        let list: Vec<serde_json::Value> =
            response.json().await.map_err(|e| DeliverError::Http {
                what: what.clone(),
                problem: format!("expected a JSON array of settings: {e}"),
                transient: false,
            })?;
        Ok((list, headers))
    }

    fn http_wanted(
        &self,
        index: usize,
        http: &HttpDelivery,
    ) -> Result<Vec<(String, serde_json::Value, bool)>, DeliverError> {
        http.settings
            .iter()
            .map(|(name, value)| {
                let (rendered, secret) =
                    self.scope
                        .render_json(value)
                        .map_err(|e| DeliverError::Render {
                            field: format!("sso.deliver[{index}].http.settings.{name}"),
                            problem: e.0,
                        })?;
                Ok((name.clone(), rendered, secret))
            })
            .collect()
    }

    async fn check_http(
        &self,
        index: usize,
        http: &HttpDelivery,
    ) -> Result<Vec<Drift>, DeliverError> {
        let wanted = self.http_wanted(index, http)?;
        let (list, _) = self.http_current(index, http).await?;
        let mut drifts = Vec::new();
        for (name, value, secret) in wanted {
            let field = format!("deliver[{index}].http.{name}");
            let current = find_setting(&list, http, &name)
                .and_then(|s| s.pointer(&http.value_pointer).cloned());
            match current {
                Some(current) if current == value => {}
                Some(current) => {
                    let message = if secret
                        || value.to_string().len() > 120
                        || current.to_string().len() > 120
                    {
                        format!(
                            "delivered setting stale: {name} in {} differs",
                            self.package.manifest.name
                        )
                    } else {
                        format!(
                            "delivered setting stale: {name} in {}: want {value}, has {current}",
                            self.package.manifest.name
                        )
                    };
                    drifts.push(Drift::new(field, message, format!("write setting {name}")));
                }
                None => drifts.push(Drift::new(
                    field,
                    format!(
                        "delivered setting missing: {name} in {}",
                        self.package.manifest.name
                    ),
                    format!("write setting {name}"),
                )),
            }
        }
        Ok(drifts)
    }

    async fn apply_http(
        &self,
        index: usize,
        http: &HttpDelivery,
    ) -> Result<Delivered, DeliverError> {
        let wanted = self.http_wanted(index, http)?;
        let (list, headers) = self.http_current(index, http).await?;
        let item_base = self
            .render(
                format!("sso.deliver[{index}].http.item_url"),
                &http.item_url,
            )?
            .text;
        let mut changed = false;
        for (name, value, _) in wanted {
            let setting = find_setting(&list, http, &name).ok_or_else(|| DeliverError::Http {
                what: format!("setting {name}"),
                problem: format!(
                    "the service lists no setting whose `{}` is `{name}`",
                    http.key_field
                ),
                transient: false,
            })?;
            if setting.pointer(&http.value_pointer) == Some(&value) {
                continue;
            }
            let id = match setting.get(&http.id_field) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => {
                    return Err(DeliverError::Http {
                        what: format!("setting {name}"),
                        problem: format!("has no `{}` to address it by", http.id_field),
                        transient: false,
                    });
                }
            };
            let body = body_at_pointer(&http.value_pointer, value);
            let url = format!("{}/{id}", item_base.trim_end_matches('/'));
            let what = format!("{:?} {}", http.method, strip_query(&url));
            let method = match http.method {
                schemas::manifest::HttpMethod::Put => reqwest::Method::PUT,
                schemas::manifest::HttpMethod::Patch => reqwest::Method::PATCH,
                schemas::manifest::HttpMethod::Post => reqwest::Method::POST,
            };
            let response = self
                .http
                .request(method, &url)
                .headers(headers.clone())
                .json(&body)
                .send()
                .await
                .map_err(|e| http_transport(&what, &e))?;
            if !response.status().is_success() {
                return Err(http_status(&what, response.status().as_u16()));
            }
            changed = true;
        }
        Ok(Delivered {
            changed,
            needs_restart: false,
        })
    }
}

struct ExecPlan {
    service: String,
    user: Option<String>,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
}

fn find_setting<'a>(
    list: &'a [serde_json::Value],
    http: &HttpDelivery,
    name: &str,
) -> Option<&'a serde_json::Value> {
    list.iter()
        .find(|s| s.get(&http.key_field).and_then(|v| v.as_str()) == Some(name))
}

fn body_at_pointer(pointer: &str, value: serde_json::Value) -> serde_json::Value {
    let segments: Vec<&str> = pointer.split('/').skip(1).collect();
    segments.into_iter().rev().fold(value, |inner, segment| {
        let key = segment.replace("~1", "/").replace("~0", "~");
        serde_json::json!({ key: inner })
    })
}

fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn http_transport(what: &str, e: &reqwest::Error) -> DeliverError {
    DeliverError::Http {
        what: what.to_owned(),
        problem: if e.is_timeout() {
            "timed out".into()
        } else {
            "could not reach the service".into()
        },
        transient: true,
    }
}

fn http_status(what: &str, status: u16) -> DeliverError {
    let (problem, transient) = match status {
        401 | 403 => ("the service refused our credentials".to_owned(), false),
        404 => ("not found".to_owned(), false),
        429 | 500..=599 => (format!("the service answered HTTP {status}"), true),
        _ => (format!("the service answered HTTP {status}"), false),
    };
    DeliverError::Http {
        what: what.to_owned(),
        problem,
        transient,
    }
}

/// Replace every known secret in `text` by `<redacted>`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret.as_str(), "<redacted>");
    }
    out
}

// --- state: exec fingerprints ------------------------------------------------------------

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct DeliveryState {
    #[serde(default)]
    exec: BTreeMap<String, String>,
}

fn state_path(dir: &Path, service: &str) -> PathBuf {
    dir.join(format!("{service}.json"))
}

impl DeliveryState {
    fn load(dir: &Path, service: &str) -> DeliveryState {
        // A missing or unreadable state only means "run again": exec deliveries are idempotent.
        std::fs::read(state_path(dir, service))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, dir: &Path, service: &str) -> Result<(), EnvError> {
        std::fs::create_dir_all(dir).map_err(|source| EnvError::Write {
            path: dir.to_owned(),
            source,
        })?;
        let text = serde_json::to_vec_pretty(self).unwrap_or_default();
        envfile::write_private(&state_path(dir, service), &text)
    }
}

/// The key that makes fingerprints of secret-bearing inputs useless to anyone without it.
fn fingerprint_key(dir: &Path) -> Result<Vec<u8>, DeliverError> {
    let path = dir.join("fingerprint.key");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(key) = hex::decode(text.trim())
        && key.len() >= 32
    {
        return Ok(key);
    }
    let write_err = |source: std::io::Error| DeliverError::Write {
        path: path.display().to_string(),
        source: EnvError::Write {
            path: path.clone(),
            source,
        },
    };
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let key: [u8; 32] = rand::random();
    let mut tmp = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(write_err)?;
    std::io::Write::write_all(&mut tmp, hex::encode(key).as_bytes()).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    // Two processes may race to create it: the first one wins, the other reads its key.
    match tmp.persist_noclobber(&path) {
        Ok(_) => Ok(key.to_vec()),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path).map_err(write_err)?;
            hex::decode(text.trim()).map_err(|_| DeliverError::Read {
                path: path.display().to_string(),
                problem: "is not a hex key".into(),
            })
        }
        Err(e) => Err(write_err(e.error)),
    }
}

fn fingerprint(dir: &Path, plan: &ExecPlan) -> Result<String, DeliverError> {
    let key = fingerprint_key(dir)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| DeliverError::Read {
        path: "fingerprint.key".into(),
        problem: "unusable key".into(),
    })?;
    let canonical = serde_json::json!([plan.service, plan.user, plan.argv, plan.env]);
    mac.update(canonical.to_string().as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_at_their_json_pointer() {
        let body = body_at_pointer("/state_current/value", serde_json::json!(true));
        assert_eq!(body, serde_json::json!({"state_current": {"value": true}}));
    }

    #[test]
    fn scrub_removes_every_known_secret() {
        let out = scrub(
            "failed: token s3cr3t-value rejected (s3cr3t-value)",
            &["s3cr3t-value".into()],
        );
        assert_eq!(out, "failed: token <redacted> rejected (<redacted>)");
    }
}
