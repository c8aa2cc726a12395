//! The one `Context` built at start-up, and the entry points a CLI or a worker calls: check one
//! service or all of them, plan, add, fix.

use std::path::Path;

use schemas::Package;
use tracing::Instrument;

use crate::authentik::{AuthentikError, Client, ClientOptions};
use crate::envfile::EnvFile;
use crate::error::FlowError;
use crate::flows::{self, Service};
use crate::live::Snapshot;
use crate::manifest_edit;
use crate::report::{Applied, Report};
use crate::settings::Settings;

pub struct Context {
    pub settings: Settings,
    pub authentik: Client,
    /// For service APIs reached by deliveries.
    pub http: reqwest::Client,
}

pub use schemas::job::Action;

/// One service's result in a sweep.
pub struct ServiceResult {
    pub service: String,
    pub outcome: Result<Report, FlowError>,
}

impl Context {
    pub fn new(settings: Settings) -> Result<Context, AuthentikError> {
        // Read here rather than in `Settings` (same precedence: process environment, then
        // `.env`) so code that builds `Settings` field by field keeps compiling.
        let file = EnvFile::read(&settings.env_path).unwrap_or_default();
        let options = ClientOptions::from_lookup(&|key| {
            std::env::var(key)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| file.get(key).filter(|v| !v.is_empty()).map(str::to_owned))
        })
        .map_err(|problem| AuthentikError::Transport {
            endpoint: "(settings)".into(),
            problem,
        })?;
        let authentik = Client::with_options(
            &settings.authentik_url,
            settings.authentik_token.clone(),
            settings.http_timeout,
            &options,
        )?;
        let http = reqwest::Client::builder()
            .timeout(settings.http_timeout)
            .user_agent(concat!("pma-sso/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AuthentikError::transport("(client setup)", &e))?;
        Ok(Context {
            settings,
            authentik,
            http,
        })
    }

    pub fn package(&self, name: &str) -> Result<Package, FlowError> {
        Ok(schemas::load_package(&self.settings.packages_dir, name)?)
    }

    fn read_env(&self) -> Result<EnvFile, FlowError> {
        EnvFile::read(&self.settings.env_path).map_err(FlowError::ReadEnv)
    }

    /// Check one service against a snapshot that holds its objects.
    pub async fn check_with(
        &self,
        package: &Package,
        snapshot: &Snapshot,
    ) -> Result<Report, FlowError> {
        let env = self.read_env()?;
        self.check_in(package, snapshot, &env).await
    }

    /// Check one service against a snapshot, with `.env` already read.
    async fn check_in(
        &self,
        package: &Package,
        snapshot: &Snapshot,
        env: &EnvFile,
    ) -> Result<Report, FlowError> {
        let svc = Service { package, env };
        let live = snapshot.live(&package.manifest);
        let mut report = flows::check(self, &svc, &live).await?;
        report.objects = live.objects();
        Ok(report)
    }

    /// Check one service with targeted reads.
    pub async fn check(&self, name: &str) -> Result<Report, FlowError> {
        let package = self.package(name)?;
        let snapshot = Snapshot::fetch_for(&self.authentik, &package.manifest)
            .await
            .map_err(FlowError::ReadAuthentik)?;
        self.check_with(&package, &snapshot).await
    }

    /// Check every package from one bulk snapshot of authentik. A broken manifest is that
    /// service's error; it never hides the others.
    pub async fn check_all(&self) -> Result<Vec<ServiceResult>, FlowError> {
        let packages = list_packages(&self.settings.packages_dir)?;
        let slugs: Vec<String> = packages
            .iter()
            .filter_map(|(_, p)| p.as_ref().ok().map(|p| p.manifest.slug().to_string()))
            .collect();
        let snapshot =
            Snapshot::fetch_all_for(&self.authentik, &slugs, self.settings.least_privilege)
                .await
                .map_err(FlowError::ReadAuthentik)?;
        // `.env` is read and parsed once for the whole sweep (it holds every service's keys,
        // so it grows with the platform). If it cannot be read, each service reports why.
        let env = self.read_env().ok();
        let mut results = Vec::with_capacity(packages.len());
        for (name, loaded) in packages {
            let outcome = match (loaded, &env) {
                (Ok(package), Some(env)) => self.check_in(&package, &snapshot, env).await,
                (Ok(package), None) => self.check_with(&package, &snapshot).await,
                (Err(e), _) => Err(FlowError::Manifest(e)),
            };
            results.push(ServiceResult {
                service: name,
                outcome,
            });
        }
        Ok(results)
    }

    /// Add or fix one service: read everything fresh, converge, mark the manifest configured.
    pub async fn apply(&self, name: &str, action: Action) -> Result<Applied, FlowError> {
        self.apply_at(name, action, None).await
    }

    /// [`Context::apply`] with the manifest as `commit` holds it (a git job), or as the
    /// working tree holds it (`None`). See [`crate::committed`].
    pub async fn apply_at(
        &self,
        name: &str,
        action: Action,
        commit: Option<&str>,
    ) -> Result<Applied, FlowError> {
        let span = tracing::info_span!(
            "job",
            service = name,
            action = action.as_str(),
            sso.r#type = tracing::field::Empty
        );
        async {
            let (package, in_tree) = match commit {
                None => (self.package(name)?, true),
                Some(commit) => {
                    let c = crate::committed::package_at(&self.settings.packages_dir, name, commit)?;
                    (c.package, c.in_tree)
                }
            };
            tracing::Span::current().record("sso.type", package.manifest.kind().as_str());
            let env = self.read_env()?;
            let snapshot = Snapshot::fetch_for(&self.authentik, &package.manifest)
                .await
                .map_err(FlowError::ReadAuthentik)?;
            let svc = Service {
                package: &package,
                env: &env,
            };
            let mut applied = flows::apply(self, &svc, &snapshot.live(&package.manifest)).await?;
            if !in_tree {
                applied.did(format!(
                    "applied the manifest as committed in {}; the working tree's differs and was left alone",
                    commit.unwrap_or_default()
                ));
            } else if !package.manifest.configured()
                && manifest_edit::set_configured(&package.manifest_path, true)
                    .map_err(FlowError::EditManifest)?
            {
                applied.did("set configured: true in the manifest");
            }
            tracing::info!(actions = applied.actions.len(), "converged");
            Ok(applied)
        }
        .instrument(span)
        .await
    }

    /// Names of every package, sorted.
    pub fn service_names(&self) -> Result<Vec<String>, FlowError> {
        Ok(list_packages(&self.settings.packages_dir)?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }
}

type Loaded = Vec<(String, Result<Package, schemas::ManifestError>)>;

fn list_packages(dir: &Path) -> Result<Loaded, FlowError> {
    let loaded = schemas::load_packages(dir).map_err(|e| FlowError::PackageFile {
        path: dir.display().to_string(),
        problem: e.to_string(),
    })?;
    Ok(loaded
        .into_iter()
        .map(|result| {
            let name = match &result {
                Ok(p) => p.manifest.name.to_string(),
                Err(e) => e.file.parent().and_then(|p| p.file_name()).map_or_else(
                    || e.file.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                ),
            };
            (name, result)
        })
        .collect())
}
