//! Flow errors: the variant names the step that failed; `is_transient` sorts them for the
//! retry policy (which lives with the pipeline, not here).

use crate::authentik::AuthentikError;
use crate::deliver::DeliverError;
use crate::envfile::EnvError;
use crate::manifest_edit::ManifestEditError;

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Manifest(#[from] schemas::ManifestError),
    #[error("reading authentik: {0}")]
    ReadAuthentik(#[source] AuthentikError),
    #[error("authentik has no flow `{slug}` (sso.flows)")]
    FlowMissing { slug: String },
    #[error("authentik has no certificate keypair named `{name}`")]
    KeypairMissing { name: String },
    #[error("authentik has no managed scope mapping `{managed}`")]
    ScopeMissing { managed: String },
    #[error("reading {path}: {problem}")]
    PackageFile { path: String, problem: String },
    #[error("creating scope mapping `{name}`: {source}")]
    CreateScopeMapping {
        name: String,
        #[source]
        source: AuthentikError,
    },
    #[error("updating scope mapping `{name}`: {source}")]
    UpdateScopeMapping {
        name: String,
        #[source]
        source: AuthentikError,
    },
    #[error("creating provider `{name}`: {source}")]
    CreateProvider {
        name: String,
        #[source]
        source: AuthentikError,
    },
    #[error("updating provider `{name}`: {source}")]
    UpdateProvider {
        name: String,
        #[source]
        source: AuthentikError,
    },
    #[error("creating application `{slug}`: {source}")]
    CreateApplication {
        slug: String,
        #[source]
        source: AuthentikError,
    },
    #[error("updating application `{slug}`: {source}")]
    UpdateApplication {
        slug: String,
        #[source]
        source: AuthentikError,
    },
    #[error(
        "application `{slug}` exists in authentik but pma-sso did not create it (meta_publisher `{publisher}`); it is left alone"
    )]
    ForeignApplication { slug: String, publisher: String },
    #[error("reading .env: {0}")]
    ReadEnv(#[source] EnvError),
    #[error("writing .env: {0}")]
    WriteEnv(#[source] EnvError),
    #[error("{field}: {problem}")]
    Render { field: String, problem: String },
    #[error("delivery #{index} ({kind}): {source}")]
    Deliver {
        index: usize,
        kind: &'static str,
        #[source]
        source: DeliverError,
    },
    #[error("marking the manifest configured: {0}")]
    EditManifest(#[source] ManifestEditError),
    #[error("the {kind} flow is not available yet")]
    Unsupported { kind: schemas::SsoKind },
}

impl FlowError {
    /// The same job may succeed later (timeouts, 5xx, 429, a busy disk); everything else needs
    /// an operator.
    pub fn is_transient(&self) -> bool {
        match self {
            FlowError::ReadAuthentik(e)
            | FlowError::CreateScopeMapping { source: e, .. }
            | FlowError::UpdateScopeMapping { source: e, .. }
            | FlowError::CreateProvider { source: e, .. }
            | FlowError::UpdateProvider { source: e, .. }
            | FlowError::CreateApplication { source: e, .. }
            | FlowError::UpdateApplication { source: e, .. } => e.is_transient(),
            FlowError::Deliver { source, .. } => source.is_transient(),
            FlowError::WriteEnv(e) => !matches!(
                e,
                EnvError::Malformed { .. }
                    | EnvError::InvalidKey { .. }
                    | EnvError::NulInValue { .. }
            ),
            FlowError::Manifest(_)
            | FlowError::FlowMissing { .. }
            | FlowError::KeypairMissing { .. }
            | FlowError::ScopeMissing { .. }
            | FlowError::PackageFile { .. }
            | FlowError::ForeignApplication { .. }
            | FlowError::ReadEnv(_)
            | FlowError::Render { .. }
            | FlowError::EditManifest(_)
            | FlowError::Unsupported { .. } => false,
        }
    }

    /// authentik's `Retry-After`, when it gave one.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            FlowError::ReadAuthentik(e)
            | FlowError::CreateScopeMapping { source: e, .. }
            | FlowError::UpdateScopeMapping { source: e, .. }
            | FlowError::CreateProvider { source: e, .. }
            | FlowError::UpdateProvider { source: e, .. }
            | FlowError::CreateApplication { source: e, .. }
            | FlowError::UpdateApplication { source: e, .. } => e.retry_after(),
            _ => None,
        }
    }
}
