//! authentik's live state, read once and handed to checks as an argument: for one service
//! with a few targeted reads, or for a whole sweep with a handful of paginated list calls.

use schemas::Manifest;

use crate::authentik::{
    Application, AuthentikError, CertificateKeyPair, Client, Flow, OAuth2Provider, ScopeMapping,
};

/// Objects every flow resolves names against.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub flows: Vec<Flow>,
    pub scope_mappings: Vec<ScopeMapping>,
    pub keypairs: Vec<CertificateKeyPair>,
}

impl Catalog {
    pub fn flow_by_slug(&self, slug: &str) -> Option<&Flow> {
        self.flows.iter().find(|f| f.slug == slug)
    }

    pub fn flow_slug(&self, pk: &str) -> String {
        self.flows
            .iter()
            .find(|f| f.pk == pk)
            .map_or_else(|| format!("flow {pk}"), |f| f.slug.clone())
    }

    pub fn keypair_by_name(&self, name: &str) -> Option<&CertificateKeyPair> {
        self.keypairs.iter().find(|k| k.name == name)
    }

    pub fn keypair_name(&self, pk: &str) -> String {
        self.keypairs
            .iter()
            .find(|k| k.pk == pk)
            .map_or_else(|| format!("keypair {pk}"), |k| k.name.clone())
    }

    pub fn scope_mapping_by_managed(&self, managed: &str) -> Option<&ScopeMapping> {
        self.scope_mappings
            .iter()
            .find(|m| m.managed.as_deref() == Some(managed))
    }

    pub fn scope_mapping_by_name(&self, name: &str) -> Option<&ScopeMapping> {
        self.scope_mappings.iter().find(|m| m.name == name)
    }

    pub fn scope_mapping_label(&self, pk: &str) -> String {
        self.scope_mappings
            .iter()
            .find(|m| m.pk == pk)
            .map_or_else(|| format!("mapping {pk}"), |m| m.scope_name.clone())
    }
}

/// authentik as one read saw it.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub catalog: Catalog,
    pub applications: Vec<Application>,
    pub oauth2_providers: Vec<OAuth2Provider>,
}

/// The objects that belong to one service, found by natural key.
#[derive(Clone, Copy, Debug)]
pub struct Live<'a> {
    pub app: Option<&'a Application>,
    pub oauth2: Option<&'a OAuth2Provider>,
    pub catalog: &'a Catalog,
}

/// Our provider's natural key: unique across all provider types in authentik.
pub fn provider_name(manifest: &Manifest) -> String {
    format!("pma-sso-{}", manifest.slug())
}

impl Snapshot {
    /// Everything a sweep over all services needs, in a few paginated list calls.
    pub async fn fetch_all(client: &Client) -> Result<Snapshot, AuthentikError> {
        let (applications, oauth2_providers, flows, scope_mappings, keypairs) = tokio::try_join!(
            client.applications(),
            client.oauth2_providers(),
            client.flows(),
            client.scope_mappings(),
            client.certificate_keypairs(),
        )?;
        Ok(Snapshot {
            catalog: Catalog {
                flows,
                scope_mappings,
                keypairs,
            },
            applications,
            oauth2_providers,
        })
    }

    /// What one service needs, with targeted reads.
    pub async fn fetch_for(
        client: &Client,
        manifest: &Manifest,
    ) -> Result<Snapshot, AuthentikError> {
        let slug = manifest.slug();
        let provider = provider_name(manifest);
        // Flows, mappings and keypairs are short lists (one page): reading them whole lets a
        // check name whatever flow or keypair a drifted provider points at.
        let (app, oauth2, flows, scope_mappings, keypairs) = tokio::try_join!(
            client.application(slug.as_str()),
            async {
                if manifest.oauth().is_some() {
                    client.oauth2_provider_by_name(&provider).await
                } else {
                    Ok(None)
                }
            },
            client.flows(),
            client.scope_mappings(),
            client.certificate_keypairs(),
        )?;
        Ok(Snapshot {
            catalog: Catalog {
                flows,
                scope_mappings,
                keypairs,
            },
            applications: app.into_iter().collect(),
            oauth2_providers: oauth2.into_iter().collect(),
        })
    }

    pub fn live(&self, manifest: &Manifest) -> Live<'_> {
        let slug = manifest.slug();
        let provider = provider_name(manifest);
        Live {
            app: self.applications.iter().find(|a| a.slug == slug.as_str()),
            oauth2: if manifest.oauth().is_some() {
                self.oauth2_providers.iter().find(|p| p.name == provider)
            } else {
                None
            },
            catalog: &self.catalog,
        }
    }
}
