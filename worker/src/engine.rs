//! `exec` deliveries through the Docker Engine API on a mounted socket
//! (`PMA_SSO_EXEC_RUNNER=docker-engine`): no docker CLI in the image. The service's container
//! is found by its Compose labels (`com.docker.compose.project` + `.service`), the command
//! runs as an exec instance, and its exit code and output are read back.
//!
//! Trade-off: whoever can use the engine's socket is root on the host. Only the worker mounts
//! it, only for stacks that have `exec` deliveries, and it only creates exec instances in
//! containers of its own Compose project.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

/// The `PMA_SSO_EXEC_RUNNER` value that selects this runner.
pub const ENGINE_RUNNER: &str = "docker-engine";
const SOCKET: &str = "/var/run/docker.sock";
/// A host name the socket's HTTP requests carry; the engine ignores it.
const BASE: &str = "http://docker/v1.41";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("Docker Engine at {socket}: {problem}")]
    Unreachable { socket: String, problem: String },
    #[error("Docker Engine answered {status} to {what}: {message}")]
    Refused {
        what: String,
        status: u16,
        message: String,
    },
    #[error(
        "no running container of Compose service `{service}` in project `{project}` (is it up?)"
    )]
    NoContainer { project: String, service: String },
    #[error(
        "the Compose project is unknown: set PMA_SSO_COMPOSE_PROJECT (this process runs outside a Compose container)"
    )]
    NoProject,
}

impl EngineError {
    /// A container that is not up yet, or an engine that restarts: worth retrying.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            EngineError::Unreachable { .. } | EngineError::NoContainer { .. }
        ) || matches!(self, EngineError::Refused { status, .. } if *status >= 500 || *status == 409)
    }
}

/// What one exec instance did.
#[derive(Debug)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

pub struct Engine {
    http: reqwest::Client,
    socket: PathBuf,
    project: Option<String>,
}

impl Engine {
    /// `DOCKER_HOST` (`unix://…`, default `/var/run/docker.sock`) and `PMA_SSO_COMPOSE_PROJECT`
    /// (default: the project of the container this process runs in).
    pub fn from_env(timeout: Duration) -> Result<Engine, EngineError> {
        let get = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let socket = match get("DOCKER_HOST") {
            None => PathBuf::from(SOCKET),
            Some(host) => match host.strip_prefix("unix://") {
                Some(path) => PathBuf::from(path),
                None => {
                    return Err(EngineError::Unreachable {
                        socket: host,
                        problem: "DOCKER_HOST must be a unix:// socket for this runner".into(),
                    });
                }
            },
        };
        Ok(Engine::new(socket, get("PMA_SSO_COMPOSE_PROJECT"), timeout))
    }

    pub fn new(socket: PathBuf, project: Option<String>, timeout: Duration) -> Engine {
        let http = reqwest::Client::builder()
            .unix_socket(socket.clone())
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Engine {
            http,
            socket,
            project,
        }
    }

    async fn call(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, EngineError> {
        let response = request.send().await.map_err(|e| EngineError::Unreachable {
            socket: self.socket.display().to_string(),
            problem: without_url(e),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Err(EngineError::Refused {
            what: what.to_owned(),
            status: status.as_u16(),
            message: body["message"].as_str().unwrap_or("").to_owned(),
        })
    }

    async fn json(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, EngineError> {
        let response = self.call(what, request).await?;
        response.json().await.map_err(|e| EngineError::Unreachable {
            socket: self.socket.display().to_string(),
            problem: format!("reading the answer to {what}: {}", without_url(e)),
        })
    }

    /// The Compose project: configured, or read from this container's own labels (its host
    /// name is its id).
    async fn project(&self) -> Result<String, EngineError> {
        if let Some(project) = &self.project {
            return Ok(project.clone());
        }
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let host = host.trim();
        if host.is_empty() {
            return Err(EngineError::NoProject);
        }
        let me = self
            .json(
                "inspecting this container",
                self.http.get(format!("{BASE}/containers/{host}/json")),
            )
            .await
            .map_err(|e| match e {
                EngineError::Refused { status: 404, .. } => EngineError::NoProject,
                e => e,
            })?;
        me.pointer("/Config/Labels/com.docker.compose.project")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(EngineError::NoProject)
    }

    /// The id of the running container of `service` in this Compose project.
    pub async fn container(&self, service: &str) -> Result<String, EngineError> {
        let project = self.project().await?;
        let filters = json!({
            "label": [
                format!("com.docker.compose.project={project}"),
                format!("com.docker.compose.service={service}"),
            ],
            "status": ["running"],
        });
        let found = self
            .json(
                "listing containers",
                self.http
                    .get(format!("{BASE}/containers/json"))
                    .query(&[("filters", filters.to_string())]),
            )
            .await?;
        found
            .as_array()
            .and_then(|list| list.first())
            .and_then(|c| c["Id"].as_str())
            .map(str::to_owned)
            .ok_or(EngineError::NoContainer {
                project,
                service: service.to_owned(),
            })
    }

    /// Run `argv` in `service`'s container; `env` reaches the process through the API body,
    /// never a command line.
    pub async fn exec(
        &self,
        service: &str,
        user: Option<&str>,
        env: &BTreeMap<String, String>,
        argv: &[String],
    ) -> Result<ExecOutput, EngineError> {
        let container = self.container(service).await?;
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut body = json!({
            "AttachStdin": false, "AttachStdout": true, "AttachStderr": true, "Tty": false,
            "Cmd": argv, "Env": env,
        });
        if let Some(user) = user {
            body["User"] = Value::from(user);
        }
        let created = self
            .json(
                "creating the exec instance",
                self.http
                    .post(format!("{BASE}/containers/{container}/exec"))
                    .json(&body),
            )
            .await?;
        let id = created["Id"]
            .as_str()
            .ok_or_else(|| EngineError::Refused {
                what: "creating the exec instance".into(),
                status: 200,
                message: "the answer has no Id".into(),
            })?
            .to_owned();
        // Not detached: the engine streams the output (multiplexed, Tty false) until the
        // command ends, then closes the connection.
        let started = self
            .call(
                "starting the exec instance",
                self.http
                    .post(format!("{BASE}/exec/{id}/start"))
                    .json(&json!({"Detach": false, "Tty": false})),
            )
            .await?;
        let stream = started
            .bytes()
            .await
            .map_err(|e| EngineError::Unreachable {
                socket: self.socket.display().to_string(),
                problem: format!("reading the command's output: {}", without_url(e)),
            })?;
        let (stdout, stderr) = demultiplex(&stream);
        let inspected = self
            .json(
                "inspecting the exec instance",
                self.http.get(format!("{BASE}/exec/{id}/json")),
            )
            .await?;
        let exit_code = inspected["ExitCode"]
            .as_i64()
            .ok_or_else(|| EngineError::Refused {
                what: "inspecting the exec instance".into(),
                status: 200,
                message: "the command has no exit code (still running?)".into(),
            })?;
        Ok(ExecOutput {
            exit_code,
            stdout,
            stderr,
        })
    }
}

fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

/// The engine's stream format without a TTY: frames of `[kind, 0, 0, 0, len (u32 BE)]` and
/// `len` bytes, kind 1 stdout and 2 stderr. A truncated last frame keeps what arrived.
pub fn demultiplex(mut stream: &[u8]) -> (String, String) {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while stream.len() >= 8 {
        let kind = stream[0];
        let len = u32::from_be_bytes([stream[4], stream[5], stream[6], stream[7]]) as usize;
        let end = (8 + len).min(stream.len());
        let payload = &stream[8..end];
        match kind {
            2 => stderr.extend_from_slice(payload),
            _ => stdout.extend_from_slice(payload),
        }
        stream = &stream[end..];
    }
    (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, text: &str) -> Vec<u8> {
        let mut f = vec![kind, 0, 0, 0];
        f.extend_from_slice(&(text.len() as u32).to_be_bytes());
        f.extend_from_slice(text.as_bytes());
        f
    }

    #[test]
    fn the_engine_stream_splits_into_stdout_and_stderr() {
        let mut stream = frame(1, "configured\n");
        stream.extend(frame(2, "warning: slow\n"));
        stream.extend(frame(1, "done\n"));
        let mut truncated = frame(2, "cut short");
        truncated.truncate(12);
        stream.extend(truncated);
        let (out, err) = demultiplex(&stream);
        assert_eq!(out, "configured\ndone\n");
        assert_eq!(err, "warning: slow\ncut ");
    }
}
