//! Flow errors: the variant names the step that failed; `is_transient` sorts them for the
//! retry policy (which lives with the pipeline, not here).

use crate::authentik::AuthentikError;
use crate::deliver::DeliverError;
use crate::envfile::EnvError;
use crate::frappe::FrappeError;
use crate::manifest_edit::ManifestEditError;
use crate::wikijs::WikijsError;

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
    /// A built-in object authentik's blueprints create: missing right after a fresh start.
    #[error(
        "authentik has no managed scope mapping `{managed}` yet (not ready yet: a freshly started authentik creates its built-in mappings after it answers; retrying)"
    )]
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
    #[error(
        "authentik has no managed SAML property mapping `{managed}` yet (not ready yet: a freshly started authentik creates its built-in mappings after it answers; retrying)"
    )]
    SamlMappingMissing { managed: String },
    #[error("creating SAML property mapping `{name}`: {source}")]
    CreateSamlMapping {
        name: String,
        #[source]
        source: AuthentikError,
    },
    #[error("updating SAML property mapping `{name}`: {source}")]
    UpdateSamlMapping {
        name: String,
        #[source]
        source: AuthentikError,
    },
    #[error("reading the certificate of keypair `{name}`: {source}")]
    ViewCertificate {
        name: String,
        #[source]
        source: AuthentikError,
    },
    #[error("authentik has no outpost {what}")]
    OutpostMissing { what: String },
    #[error("adding provider `{provider}` to outpost `{outpost}`: {source}")]
    AttachOutpost {
        provider: String,
        outpost: String,
        #[source]
        source: AuthentikError,
    },
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
    #[error("timed out after {secs}s")]
    TimedOut { secs: u64 },
    #[error("lost the database connection holding the service lock; aborted")]
    LockLost,
    #[error(
        "gave up after {attempts} attempts that never finished (the worker died mid-job each time)"
    )]
    Abandoned { attempts: i32 },
    /// A sweep could not record its per-service outcomes or enqueue follow-up jobs.
    #[error("recording the sweep: {0}")]
    SweepRecord(String),
    /// The job row could not be read (the commit a git job names).
    #[error("reading the job: {0}")]
    ReadJob(String),
    #[error("a {kind} service has no OAuth2 client")]
    NoOAuthClient { kind: schemas::SsoKind },
    /// Dispatch sends each type to its own flow; reaching another one is a bug, reported as such.
    #[error("a {kind} service reached the wrong flow")]
    WrongFlow { kind: schemas::SsoKind },
    /// No usable Wiki.js API key and no admin login to mint one: only an operator can fix it.
    #[error(
        "Wiki.js API key unusable: {problem}; {no_admin}, so pma-sso cannot mint a new key. Create a full-access key in Wiki.js (Administration → API Access) and store it in .env as {key_env}"
    )]
    WikijsKeyUnusable {
        key_env: String,
        /// Why no key can be minted, e.g. `the admin login (WIKIJS_ADMIN_EMAIL, …) is not in .env`.
        no_admin: String,
        problem: String,
    },
    #[error("getting a Wiki.js API key with the admin login: {0}")]
    WikijsAdminKey(#[source] WikijsError),
    #[error("the Wiki.js API key just minted was refused too: {0}")]
    WikijsMintedKeyRefused(#[source] WikijsError),
    #[error("reading the Wiki.js site host: {0}")]
    WikijsReadHost(#[source] WikijsError),
    #[error("setting the Wiki.js site host: {0}")]
    WikijsSetHost(#[source] WikijsError),
    #[error("reading the Wiki.js strategies: {0}")]
    WikijsReadStrategies(#[source] WikijsError),
    #[error("writing the Wiki.js strategies: {0}")]
    WikijsUpdateStrategies(#[source] WikijsError),
    #[error(
        "Frappe API credentials missing: {missing} not set in .env. Generate keys for a System Manager user (bench --site <site> execute frappe.core.doctype.user.user.generate_keys --args \"['Administrator']\") and store them as {key_env} and {secret_env}"
    )]
    FrappeCredentialsMissing {
        missing: String,
        key_env: String,
        secret_env: String,
    },
    #[error("reading Frappe Social Login Key `{name}`: {source}")]
    FrappeReadLoginKey {
        name: String,
        #[source]
        source: FrappeError,
    },
    #[error("reading the client secret of Frappe Social Login Key `{name}`: {source}")]
    FrappeReadSecret {
        name: String,
        #[source]
        source: FrappeError,
    },
    #[error("creating Frappe Social Login Key `{name}`: {source}")]
    FrappeCreateLoginKey {
        name: String,
        #[source]
        source: FrappeError,
    },
    #[error("updating Frappe Social Login Key `{name}`: {source}")]
    FrappeUpdateLoginKey {
        name: String,
        #[source]
        source: FrappeError,
    },
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
            | FlowError::UpdateApplication { source: e, .. }
            | FlowError::CreateSamlMapping { source: e, .. }
            | FlowError::UpdateSamlMapping { source: e, .. }
            | FlowError::ViewCertificate { source: e, .. }
            | FlowError::AttachOutpost { source: e, .. } => e.is_transient(),
            FlowError::Deliver { source, .. } => source.is_transient(),
            // Abandoned counts as transient so the retry policy, seeing the attempts used up,
            // dead-letters it instead of failing it as an operator error.
            FlowError::TimedOut { .. }
            | FlowError::LockLost
            | FlowError::Abandoned { .. }
            | FlowError::SweepRecord(_)
            | FlowError::ReadJob(_) => true,
            // authentik answers before its blueprints have created the managed mappings: a
            // fresh authentik, not an operator error, so the job waits and retries.
            FlowError::ScopeMissing { .. } | FlowError::SamlMappingMissing { .. } => true,
            FlowError::WikijsAdminKey(e)
            | FlowError::WikijsReadHost(e)
            | FlowError::WikijsSetHost(e)
            | FlowError::WikijsReadStrategies(e)
            | FlowError::WikijsUpdateStrategies(e) => e.is_transient(),
            FlowError::FrappeReadLoginKey { source: e, .. }
            | FlowError::FrappeReadSecret { source: e, .. }
            | FlowError::FrappeCreateLoginKey { source: e, .. }
            | FlowError::FrappeUpdateLoginKey { source: e, .. } => e.is_transient(),
            FlowError::WriteEnv(e) => !matches!(
                e,
                EnvError::Malformed { .. }
                    | EnvError::InvalidKey { .. }
                    | EnvError::NulInValue { .. }
            ),
            FlowError::Manifest(_)
            | FlowError::FlowMissing { .. }
            | FlowError::KeypairMissing { .. }
            | FlowError::PackageFile { .. }
            | FlowError::ForeignApplication { .. }
            | FlowError::OutpostMissing { .. }
            | FlowError::ReadEnv(_)
            | FlowError::Render { .. }
            | FlowError::EditManifest(_)
            | FlowError::NoOAuthClient { .. }
            | FlowError::WrongFlow { .. }
            | FlowError::WikijsKeyUnusable { .. }
            | FlowError::WikijsMintedKeyRefused(_)
            | FlowError::FrappeCredentialsMissing { .. } => false,
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
            | FlowError::UpdateApplication { source: e, .. }
            | FlowError::CreateSamlMapping { source: e, .. }
            | FlowError::UpdateSamlMapping { source: e, .. }
            | FlowError::ViewCertificate { source: e, .. }
            | FlowError::AttachOutpost { source: e, .. } => e.retry_after(),
            FlowError::WikijsAdminKey(e)
            | FlowError::WikijsReadHost(e)
            | FlowError::WikijsSetHost(e)
            | FlowError::WikijsReadStrategies(e)
            | FlowError::WikijsUpdateStrategies(e) => e.retry_after(),
            FlowError::FrappeReadLoginKey { source: e, .. }
            | FlowError::FrappeReadSecret { source: e, .. }
            | FlowError::FrappeCreateLoginKey { source: e, .. }
            | FlowError::FrappeUpdateLoginKey { source: e, .. } => e.retry_after(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_managed_mapping_is_not_ready_yet_and_retried() {
        let missing = FlowError::ScopeMissing {
            managed: "goauthentik.io/providers/oauth2/scope-openid".into(),
        };
        assert!(missing.is_transient());
        assert!(missing.to_string().contains("not ready yet"), "{missing}");
        let saml = FlowError::SamlMappingMissing {
            managed: "goauthentik.io/providers/saml/upn".into(),
        };
        assert!(saml.is_transient());
        assert!(saml.to_string().contains("not ready yet"), "{saml}");
        // A flow named in a manifest is the operator's: still an error to fix, not to wait for.
        assert!(
            !FlowError::FlowMissing {
                slug: "typo".into()
            }
            .is_transient()
        );
    }
}
