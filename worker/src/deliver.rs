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
use std::time::Duration;

use hmac::{Hmac, Mac};
use schemas::manifest::{EnvDelivery, ExecDelivery, FileDelivery, HttpDelivery};
use schemas::{Delivery, Package, Part, Template, Var};
use sha2::Sha256;

use crate::envfile::{self, EnvError, EnvFile};
use crate::render::{RenderError, Rendered, Scope};
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
    #[error("{problem}")]
    Engine { problem: String, transient: bool },
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
            DeliverError::Http { transient, .. } | DeliverError::Engine { transient, .. } => {
                *transient
            }
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
                schemas::outcome::shorten(&plan.argv.join(" "), 60),
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
        if self.exec_runner == [crate::engine::ENGINE_RUNNER] {
            self.exec_through_engine(&plan).await?;
        } else {
            self.exec_through_command(&plan).await?;
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

    /// `PMA_SSO_EXEC_RUNNER=docker-engine`: the Docker Engine API on a mounted socket.
    async fn exec_through_engine(&self, plan: &ExecPlan) -> Result<(), DeliverError> {
        let engine_error = |e: crate::engine::EngineError| DeliverError::Engine {
            transient: e.is_transient(),
            problem: scrub(&e.to_string(), &self.secrets),
        };
        let engine =
            crate::engine::Engine::from_env(Duration::from_secs(300)).map_err(engine_error)?;
        let output = engine
            .exec(&plan.service, plan.user.as_deref(), &plan.env, &plan.argv)
            .await
            .map_err(engine_error)?;
        if output.exit_code != 0 {
            let text = if output.stderr.trim().is_empty() {
                &output.stdout
            } else {
                &output.stderr
            };
            return Err(DeliverError::ExecFailed {
                status: format!("exit status: {}", output.exit_code),
                output: scrub(&last_line(text), &self.secrets),
            });
        }
        Ok(())
    }

    /// The runner command (default `docker compose exec -T`) with the service and argv.
    async fn exec_through_command(&self, plan: &ExecPlan) -> Result<(), DeliverError> {
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
            return Err(DeliverError::ExecFailed {
                status: output.status.to_string(),
                output: scrub(&last_line(&text), &self.secrets),
            });
        }
        Ok(())
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
    ) -> Result<Vec<WantedSetting>, DeliverError> {
        http.settings
            .iter()
            .map(|(name, value)| {
                let mut wanted = WantedSetting {
                    name: name.clone(),
                    value: serde_json::Value::Null,
                    secret: false,
                    cert_paths: Vec::new(),
                };
                wanted.value = self.render_setting(value, "", &mut wanted).map_err(|e| {
                    DeliverError::Render {
                        field: format!("sso.deliver[{index}].http.settings.{name}"),
                        problem: e.0,
                    }
                })?;
                Ok(wanted)
            })
            .collect()
    }

    /// Render a setting whose strings are templates. A string that is exactly
    /// `{{auth.saml_cert_pem}}` is recorded in `cert_paths` and compared by fingerprint, so a
    /// check needs no PEM (authentik logs every certificate read); it is rendered only when the
    /// scope holds the PEM (add and fix), and left null otherwise.
    fn render_setting(
        &self,
        value: &serde_json::Value,
        pointer: &str,
        wanted: &mut WantedSetting,
    ) -> Result<serde_json::Value, RenderError> {
        Ok(match value {
            serde_json::Value::String(s) => {
                let template = Template::parse(s).map_err(RenderError)?;
                if template.parts() == [Part::Var(Var::AuthSamlCertPem)] {
                    wanted.cert_paths.push(pointer.to_owned());
                    self.scope
                        .var(Var::AuthSamlCertPem)
                        .map_or(serde_json::Value::Null, |pem| pem.into())
                } else {
                    let rendered = self.scope.render(&template)?;
                    wanted.secret |= rendered.secret;
                    serde_json::Value::String(rendered.text)
                }
            }
            serde_json::Value::Array(items) => serde_json::Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.render_setting(item, &format!("{pointer}/{i}"), wanted))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(map) => serde_json::Value::Object(
                map.iter()
                    .map(|(key, item)| {
                        let escaped = key.replace('~', "~0").replace('/', "~1");
                        let rendered =
                            self.render_setting(item, &format!("{pointer}/{escaped}"), wanted)?;
                        Ok((key.clone(), rendered))
                    })
                    .collect::<Result<_, RenderError>>()?,
            ),
            other => other.clone(),
        })
    }

    /// The fingerprint of the certificate authentik signs with, when the flow knows it.
    fn signing_fingerprint(&self) -> Option<&str> {
        self.scope.var(Var::AuthSamlCertFingerprint).ok()
    }

    async fn check_http(
        &self,
        index: usize,
        http: &HttpDelivery,
    ) -> Result<Vec<Drift>, DeliverError> {
        let wanted = self.http_wanted(index, http)?;
        let (list, _) = self.http_current(index, http).await?;
        let service = &self.package.manifest.name;
        let mut drifts = Vec::new();
        for want in wanted {
            let name = &want.name;
            let field = format!("deliver[{index}].http.{name}");
            let Some(current) =
                find_setting(&list, http, name).and_then(|s| s.pointer(&http.value_pointer))
            else {
                drifts.push(Drift::new(
                    field,
                    format!("delivered setting missing: {name} in {service}"),
                    format!("write setting {name}"),
                ));
                continue;
            };
            let compared = compare_setting(current, &want, self.signing_fingerprint());
            for (path, have, signs) in compared.certs {
                drifts.push(Drift::new(
                    format!("{field}{path}"),
                    format!(
                        "signing cert mismatch: service has {}, authentik signs with {}",
                        have.as_deref().unwrap_or("none"),
                        signs.as_deref().unwrap_or("no keypair")
                    ),
                    format!("write setting {name} with authentik's signing certificate"),
                ));
            }
            if !compared.rest_differs {
                continue;
            }
            let (value, current) = (&compared.want_rest, &compared.have_rest);
            let message = if want.secret
                || value.to_string().len() > 120
                || current.to_string().len() > 120
            {
                if compared.keys.is_empty() || want.secret {
                    format!("delivered setting stale: {name} in {service} differs")
                } else {
                    format!(
                        "delivered setting stale: {name} in {service} differs ({})",
                        compared.keys.join(", ")
                    )
                }
            } else {
                format!("delivered setting stale: {name} in {service}: want {value}, has {current}")
            };
            drifts.push(Drift::new(field, message, format!("write setting {name}")));
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
        for want in wanted {
            let name = &want.name;
            let setting = find_setting(&list, http, name).ok_or_else(|| DeliverError::Http {
                what: format!("setting {name}"),
                problem: format!(
                    "the service lists no setting whose `{}` is `{name}`",
                    http.key_field
                ),
                transient: false,
            })?;
            if let Some(current) = setting.pointer(&http.value_pointer)
                && compare_setting(current, &want, self.signing_fingerprint()).matches()
            {
                continue;
            }
            if !want.cert_paths.is_empty() {
                // Never write a null where the certificate belongs.
                self.scope
                    .var(Var::AuthSamlCertPem)
                    .map_err(|e| DeliverError::Render {
                        field: format!("sso.deliver[{index}].http.settings.{name}"),
                        problem: e.0,
                    })?;
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
            let body = body_at_pointer(&http.value_pointer, want.value);
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

/// One setting as the manifest wants it.
struct WantedSetting {
    name: String,
    value: serde_json::Value,
    secret: bool,
    /// JSON pointers (inside `value`) of certificates compared by fingerprint.
    cert_paths: Vec<String>,
}

/// How a setting the service holds compares with the wanted one.
struct Compared {
    /// `(pointer, fingerprint the service holds, fingerprint authentik signs with)` of every
    /// certificate that differs.
    certs: Vec<(String, Option<String>, Option<String>)>,
    /// Whether anything besides the certificates differs.
    rest_differs: bool,
    /// Top-level keys that differ, when both are objects.
    keys: Vec<String>,
    want_rest: serde_json::Value,
    have_rest: serde_json::Value,
}

impl Compared {
    fn matches(&self) -> bool {
        self.certs.is_empty() && !self.rest_differs
    }
}

fn compare_setting(
    current: &serde_json::Value,
    want: &WantedSetting,
    signing_fingerprint: Option<&str>,
) -> Compared {
    let mut have_rest = current.clone();
    let mut want_rest = want.value.clone();
    let mut certs = Vec::new();
    for path in &want.cert_paths {
        let held = current.pointer(path).and_then(|v| v.as_str());
        let have = held
            .filter(|pem| !pem.trim().is_empty())
            .map(|pem| pem_fingerprint(pem).unwrap_or_else(|| "an unreadable certificate".into()));
        let same = match (&have, signing_fingerprint) {
            (Some(have), Some(signs)) => same_fingerprint(have, signs),
            _ => false,
        };
        if !same {
            certs.push((path.clone(), have, signing_fingerprint.map(str::to_owned)));
        }
        blank(&mut have_rest, path);
        blank(&mut want_rest, path);
    }
    let keys = match (&want_rest, &have_rest) {
        (serde_json::Value::Object(w), serde_json::Value::Object(h)) => w
            .keys()
            .chain(h.keys().filter(|k| !w.contains_key(*k)))
            .filter(|k| w.get(*k) != h.get(*k))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    Compared {
        certs,
        rest_differs: have_rest != want_rest,
        keys,
        want_rest,
        have_rest,
    }
}

/// Take the value at `pointer` out of the comparison.
fn blank(value: &mut serde_json::Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        *value = serde_json::Value::Null;
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    match value.pointer_mut(parent) {
        Some(serde_json::Value::Object(map)) => {
            map.remove(&key);
        }
        Some(serde_json::Value::Array(items)) => {
            if let Some(item) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *item = serde_json::Value::Null;
            }
        }
        _ => {}
    }
}

/// SHA-256 fingerprint of a certificate in authentik's format (lowercase hex pairs joined by
/// `:`). Takes PEM, or bare base64 DER as operators often paste it into services.
pub fn pem_fingerprint(text: &str) -> Option<String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use sha2::Digest;
    let der = if text.contains("-----BEGIN") {
        CertificateDer::from_pem_slice(text.as_bytes()).ok()?
    } else {
        let wrapped = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            text.trim()
        );
        CertificateDer::from_pem_slice(wrapped.as_bytes()).ok()?
    };
    if !is_der_sequence(der.as_ref()) {
        return None;
    }
    let digest = Sha256::digest(der.as_ref());
    Some(
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// A certificate is one DER SEQUENCE spanning all the bytes; anything else that decoded from
/// the text is not a certificate.
fn is_der_sequence(der: &[u8]) -> bool {
    let (Some(&0x30), Some(&first)) = (der.first(), der.get(1)) else {
        return false;
    };
    let (header, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let count = usize::from(first & 0x7f);
        if !(1..=4).contains(&count) || der.len() < 2 + count {
            return false;
        }
        let len = der[2..2 + count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (2 + count, len)
    };
    header + len == der.len()
}

/// Fingerprints compare case-, colon-, space- and dash-insensitively.
pub fn same_fingerprint(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !matches!(c, ':' | ' ' | '-'))
            .map(|c| c.to_ascii_lowercase())
            .collect::<String>()
    };
    norm(a) == norm(b)
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

/// The last non-empty line of a command's output, at most 200 characters.
fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
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
pub(crate) fn fingerprint_key(dir: &Path) -> Result<Vec<u8>, DeliverError> {
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

    /// Made with `openssl req -x509 -newkey ec`; `openssl x509 -fingerprint -sha256` gives
    /// the fingerprint below.
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBgzCCASmgAwIBAgIUAMwDl1LukN+vCkQLYwCQKrWtB44wCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMcG1hLXNzbyB0ZXN0MB4XDTI2MTEyOTE0NTgwMFoXDTM2MTEy
NjE0NTgwMFowFzEVMBMGA1UEAwwMcG1hLXNzbyB0ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEI1hQOBMHD22OQ3WG22pEv+e8O3YxGk1gPVmlZAQU7dW72oMB
IKo9xrjLE4U6xR/+RQDCRcBOvz0pWMhU8lN2aqNTMFEwHQYDVR0OBBYEFHhMpZ7y
NNszNfBZ8vhrvEzTbUE+MB8GA1UdIwQYMBaAFHhMpZ7yNNszNfBZ8vhrvEzTbUE+
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgXOHFdwLbzYfSqIEJ
K6tEZIF0pq/8HF1XNJQQkcI2PzACIQDMUYkR/TG/XyC8GO4JAV+JyPigYSNvwpQx
tXNTEoQxew==
-----END CERTIFICATE-----
";
    const FINGERPRINT: &str = "DF:56:F2:E1:3F:B5:AF:E9:CC:DD:A5:95:87:1E:AC:AB:B6:FF:98:C6:34:87:67:A0:BF:1D:68:37:6C:62:DA:75";

    #[test]
    fn certificates_are_fingerprinted_with_or_without_their_armour() {
        let fp = pem_fingerprint(CERT).expect("parses");
        assert_eq!(fp, FINGERPRINT.to_ascii_lowercase());
        let bare: String = CERT.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(pem_fingerprint(&bare).as_deref(), Some(fp.as_str()));
        assert!(same_fingerprint(&fp, FINGERPRINT));
        assert_eq!(pem_fingerprint("not a certificate"), None);
    }

    fn wanted(value: serde_json::Value) -> WantedSetting {
        WantedSetting {
            name: "creds".into(),
            value,
            secret: false,
            cert_paths: vec!["/idp_cert".into()],
        }
    }

    #[test]
    fn a_setting_holding_a_certificate_compares_it_by_fingerprint_and_the_rest_by_value() {
        // At check time the wanted PEM is unknown (null): only the fingerprint is.
        let want = wanted(serde_json::json!({"idp_cert": null, "url": "https://a"}));
        let have = serde_json::json!({"idp_cert": CERT, "url": "https://a"});
        assert!(compare_setting(&have, &want, Some(FINGERPRINT)).matches());

        let other = "aa:bb";
        let compared = compare_setting(&have, &want, Some(other));
        assert_eq!(compared.certs.len(), 1);
        assert_eq!(compared.certs[0].2.as_deref(), Some(other));
        assert!(!compared.rest_differs);

        let moved = serde_json::json!({"idp_cert": CERT, "url": "https://b"});
        let compared = compare_setting(&moved, &want, Some(FINGERPRINT));
        assert!(compared.certs.is_empty());
        assert_eq!(compared.keys, ["url"]);

        let missing = serde_json::json!({"url": "https://a"});
        let compared = compare_setting(&missing, &want, Some(FINGERPRINT));
        assert_eq!(compared.certs[0].1, None, "service holds none");
        assert!(!compared.rest_differs, "only the certificate is missing");
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
