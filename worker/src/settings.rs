//! Typed settings, read once at start-up from the process environment and `.env`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::envfile::{EnvError, EnvFile};

#[derive(Clone, Debug)]
pub struct Settings {
    /// authentik API base; may be an internal address.
    pub authentik_url: String,
    pub authentik_token: SecretString,
    /// Public authentik URL override. Without it the public URL is derived on every run from
    /// `.env` (`https://${AUTH_SUBDOMAIN:-auth}.${DOMAIN}`), so a domain change shows as drift.
    pub public_url: Option<String>,
    pub packages_dir: PathBuf,
    pub env_path: PathBuf,
    /// Where pma-sso keeps its own small state (delivery fingerprints and their key).
    pub state_dir: PathBuf,
    /// Prefix of the command that runs `exec` deliveries in a service container.
    pub exec_runner: Vec<String>,
    pub http_timeout: Duration,
    /// `PMA_SSO_LEAST_PRIVILEGE=true`: the token is not a superuser's, so a sweep reads each
    /// manifest's application by slug instead of listing them (authentik lists every
    /// application only to superusers). See [`crate::live::Snapshot::fetch_all_for`].
    pub least_privilege: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0} is not set (in the environment or in .env)")]
    Missing(&'static str),
    #[error("{name} is invalid: {problem}")]
    Invalid { name: &'static str, problem: String },
    #[error(transparent)]
    Env(#[from] EnvError),
}

pub const DEFAULT_EXEC_RUNNER: &str = "docker compose exec -T";

impl Settings {
    /// Read settings: the process environment wins over `.env`. `PMA_SSO_ENV_FILE` (default
    /// `.env`) names the file; paths inside are relative to the working directory.
    pub fn from_env() -> Result<Settings, SettingsError> {
        let lookup = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        Self::from_lookup(&lookup)
    }

    pub fn from_lookup(
        process: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, SettingsError> {
        let env_path = PathBuf::from(process("PMA_SSO_ENV_FILE").unwrap_or_else(|| ".env".into()));
        let file = EnvFile::read(&env_path)?;
        let get = |key: &str| {
            process(key).or_else(|| file.get(key).filter(|v| !v.is_empty()).map(str::to_owned))
        };
        let authentik_url = get("AUTHENTIK_URL").ok_or(SettingsError::Missing("AUTHENTIK_URL"))?;
        check_http_url("AUTHENTIK_URL", &authentik_url)?;
        let authentik_token = get("AUTHENTIK_TOKEN")
            .map(SecretString::from)
            .ok_or(SettingsError::Missing("AUTHENTIK_TOKEN"))?;
        let public_url = get("AUTHENTIK_PUBLIC_URL");
        if let Some(url) = &public_url {
            check_http_url("AUTHENTIK_PUBLIC_URL", url)?;
        }
        let base = env_path.parent().map(Path::to_owned).unwrap_or_default();
        let packages_dir = get("PMA_SSO_PACKAGES")
            .map(PathBuf::from)
            .unwrap_or_else(|| base.join("packages"));
        let state_dir = get("PMA_SSO_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| base.join(".pma-sso"));
        let exec_runner: Vec<String> = get("PMA_SSO_EXEC_RUNNER")
            .unwrap_or_else(|| DEFAULT_EXEC_RUNNER.into())
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if exec_runner.is_empty() {
            return Err(SettingsError::Invalid {
                name: "PMA_SSO_EXEC_RUNNER",
                problem: "is empty".into(),
            });
        }
        let http_timeout = match get("PMA_SSO_HTTP_TIMEOUT_SECS") {
            None => Duration::from_secs(30),
            Some(v) => Duration::from_secs(v.parse::<u64>().ok().filter(|s| *s > 0).ok_or(
                SettingsError::Invalid {
                    name: "PMA_SSO_HTTP_TIMEOUT_SECS",
                    problem: "expected a positive number of seconds".into(),
                },
            )?),
        };
        Ok(Settings {
            authentik_url,
            authentik_token,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            packages_dir,
            env_path,
            state_dir,
            exec_runner,
            http_timeout,
            least_privilege: match get("PMA_SSO_LEAST_PRIVILEGE").as_deref() {
                None | Some("false") | Some("0") => false,
                Some("true") | Some("1") => true,
                Some(_) => {
                    return Err(SettingsError::Invalid {
                        name: "PMA_SSO_LEAST_PRIVILEGE",
                        problem: "expected true or false".into(),
                    });
                }
            },
        })
    }
}

fn check_http_url(name: &'static str, value: &str) -> Result<(), SettingsError> {
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        Ok(_) => Err(SettingsError::Invalid {
            name,
            problem: "expected an http(s) URL with a host".into(),
        }),
        Err(e) => Err(SettingsError::Invalid {
            name,
            problem: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn process_environment_wins_over_the_env_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let env = dir.path().join(".env");
        std::fs::write(
            &env,
            "AUTHENTIK_URL=http://file:9000\nAUTHENTIK_TOKEN=from-file\n",
        )
        .expect("write");
        let env_str = env.display().to_string();
        let lookup = move |key: &str| match key {
            "PMA_SSO_ENV_FILE" => Some(env_str.clone()),
            "AUTHENTIK_URL" => Some("http://process:9000".into()),
            _ => None,
        };
        let s = Settings::from_lookup(&lookup).expect("valid");
        assert_eq!(s.authentik_url, "http://process:9000");
        assert_eq!(s.authentik_token.expose_secret(), "from-file");
        assert_eq!(s.packages_dir, dir.path().join("packages"));
        assert_eq!(s.exec_runner, ["docker", "compose", "exec", "-T"]);
        assert!(
            !format!("{s:?}").contains("from-file"),
            "Debug leaks the token"
        );
    }

    #[test]
    fn a_missing_token_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let env_str = dir.path().join(".env").display().to_string();
        let lookup = move |key: &str| match key {
            "PMA_SSO_ENV_FILE" => Some(env_str.clone()),
            "AUTHENTIK_URL" => Some("http://a:9000".into()),
            _ => None,
        };
        let err = Settings::from_lookup(&lookup).expect_err("no token");
        assert_eq!(
            err.to_string(),
            "AUTHENTIK_TOKEN is not set (in the environment or in .env)"
        );
    }
}
