//! authentik's live state, read once and handed to checks as an argument: for one service
//! with a few targeted reads, or for a whole sweep with a handful of paginated list calls.

use schemas::{Manifest, Sso};

use crate::authentik::cleanup::{OAUTH2_MODEL, PROXY_MODEL, SAML_MODEL};
use crate::authentik::{
    Application, AuthentikError, CertificateKeyPair, Client, Flow, OAuth2Provider, Outpost,
    ProxyProvider, SamlPropertyMapping, SamlProvider, ScopeMapping,
};

/// `managed` of authentik's embedded outpost.
pub const EMBEDDED_OUTPOST: &str = "goauthentik.io/outposts/embedded";

/// The managed scope mappings a fresh authentik has not created yet. authentik answers its
/// health check before its blueprints have run, so right after a first start these are
/// missing for a while: `doctor` and the worker's `/readyz` name them ("not ready yet").
pub async fn missing_builtins(client: &Client) -> Result<Vec<&'static str>, AuthentikError> {
    let present = client.scope_mappings().await?;
    Ok(schemas::manifest::MANAGED_SCOPES
        .iter()
        .map(|(_, managed)| *managed)
        .filter(|managed| {
            !present
                .iter()
                .any(|m| m.managed.as_deref() == Some(*managed))
        })
        .collect())
}

/// `missing_builtins` as one line for an operator, or None when nothing is missing.
pub fn not_ready_line(missing: &[&str]) -> Option<String> {
    (!missing.is_empty()).then(|| {
        format!(
            "authentik is not ready yet: it has no managed scope mapping {} (its blueprints are still running after a fresh start)",
            missing.join(", ")
        )
    })
}

/// Objects every flow resolves names against.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub flows: Vec<Flow>,
    pub scope_mappings: Vec<ScopeMapping>,
    pub keypairs: Vec<CertificateKeyPair>,
    pub saml_mappings: Vec<SamlPropertyMapping>,
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

    pub fn keypair(&self, pk: &str) -> Option<&CertificateKeyPair> {
        self.keypairs.iter().find(|k| k.pk == pk)
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

    pub fn saml_mapping_by_name(&self, name: &str) -> Option<&SamlPropertyMapping> {
        self.saml_mappings.iter().find(|m| m.name == name)
    }

    pub fn saml_mapping_by_managed(&self, managed: &str) -> Option<&SamlPropertyMapping> {
        self.saml_mappings
            .iter()
            .find(|m| m.managed.as_deref() == Some(managed))
    }

    pub fn saml_mapping_label(&self, pk: &str) -> String {
        self.saml_mappings
            .iter()
            .find(|m| m.pk == pk)
            .map_or_else(|| format!("mapping {pk}"), |m| m.name.clone())
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
    pub saml_providers: Vec<SamlProvider>,
    pub proxy_providers: Vec<ProxyProvider>,
    pub outposts: Vec<Outpost>,
}

/// The objects that belong to one service, found by natural key.
#[derive(Clone, Copy, Debug)]
pub struct Live<'a> {
    pub app: Option<&'a Application>,
    pub oauth2: Option<&'a OAuth2Provider>,
    pub saml: Option<&'a SamlProvider>,
    pub proxy: Option<&'a ProxyProvider>,
    /// Every outpost the read saw (for one proxy service: the one it is attached to).
    pub outposts: &'a [Outpost],
    pub catalog: &'a Catalog,
}

impl Live<'_> {
    /// Ids of the service's authentik objects, for per-service state.
    pub fn objects(&self) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        if let Some(app) = self.app {
            out.insert("application".to_owned(), app.pk.clone());
        }
        let provider = match (self.oauth2, self.saml, self.proxy) {
            (Some(p), _, _) => Some((p.pk, OAUTH2_MODEL)),
            (_, Some(p), _) => Some((p.pk, SAML_MODEL)),
            (_, _, Some(p)) => Some((p.pk, PROXY_MODEL)),
            _ => None,
        };
        if let Some((pk, model)) = provider {
            out.insert("provider".to_owned(), pk.to_string());
            out.insert("provider_model".to_owned(), model.to_owned());
        }
        out
    }
}

/// `meta_model_name` of the provider a manifest's type needs.
pub fn provider_model(manifest: &Manifest) -> &'static str {
    match manifest.sso {
        Sso::Saml(_) => SAML_MODEL,
        Sso::Proxy(_) => PROXY_MODEL,
        Sso::Oauth(_) | Sso::Oidc(_) | Sso::Wikijs(_) | Sso::Frappe(_) => OAUTH2_MODEL,
    }
}

/// Our provider's natural key: unique across all provider types in authentik.
pub fn provider_name(manifest: &Manifest) -> String {
    format!("pma-sso-{}", manifest.slug())
}

impl Snapshot {
    /// Everything a sweep over all services needs, in a few paginated list calls (one per
    /// kind of object, however many services there are).
    pub async fn fetch_all(client: &Client) -> Result<Snapshot, AuthentikError> {
        let (mut snapshot, applications) =
            tokio::try_join!(Self::fetch_lists(client), client.applications())?;
        snapshot.applications = applications;
        Ok(snapshot)
    }

    /// A sweep's snapshot. With a superuser's token, [`Snapshot::fetch_all`]. Without one
    /// (`least_privilege`), authentik's application list is the token's own policy-filtered
    /// launcher list (cached for 24 h), which misses deleted and access-restricted
    /// applications: each of `slugs` is read by slug instead — one request per service on top
    /// of the list calls.
    pub async fn fetch_all_for(
        client: &Client,
        slugs: &[String],
        least_privilege: bool,
    ) -> Result<Snapshot, AuthentikError> {
        if !least_privilege {
            return Self::fetch_all(client).await;
        }
        let (mut snapshot, apps) = tokio::try_join!(
            Self::fetch_lists(client),
            futures_util::future::try_join_all(slugs.iter().map(|s| client.application(s))),
        )?;
        snapshot.applications = apps.into_iter().flatten().collect();
        Ok(snapshot)
    }

    /// Everything [`Snapshot::fetch_all`] reads except the applications.
    async fn fetch_lists(client: &Client) -> Result<Snapshot, AuthentikError> {
        let (
            (oauth2_providers, saml_providers, proxy_providers, outposts),
            (flows, scope_mappings, saml_mappings, keypairs),
        ) = tokio::try_join!(
            async {
                tokio::try_join!(
                    client.oauth2_providers(),
                    client.saml_providers(),
                    client.proxy_providers(),
                    client.outposts(),
                )
            },
            async {
                tokio::try_join!(
                    client.flows(),
                    client.scope_mappings(),
                    client.saml_property_mappings(),
                    client.certificate_keypairs(),
                )
            },
        )?;
        Ok(Snapshot {
            catalog: Catalog {
                flows,
                scope_mappings,
                keypairs,
                saml_mappings,
            },
            applications: Vec::new(),
            oauth2_providers,
            saml_providers,
            proxy_providers,
            outposts,
        })
    }

    /// What one service needs, with targeted reads.
    pub async fn fetch_for(
        client: &Client,
        manifest: &Manifest,
    ) -> Result<Snapshot, AuthentikError> {
        let slug = manifest.slug();
        let provider = provider_name(manifest);
        let oauth = manifest.oauth().is_some();
        let saml = matches!(manifest.sso, Sso::Saml(_));
        let proxy = match &manifest.sso {
            Sso::Proxy(p) => Some(p),
            _ => None,
        };
        // Only what this type needs. Flows, mappings and keypairs are short lists (one page):
        // reading them whole lets a check name whatever a drifted provider points at.
        let (
            (app, oauth2, saml_provider, proxy_provider, outposts),
            (flows, scope_mappings, saml_mappings, keypairs),
        ) = tokio::try_join!(
            async {
                tokio::try_join!(
                    client.application(slug.as_str()),
                    async {
                        if oauth {
                            client.oauth2_provider_by_name(&provider).await
                        } else {
                            Ok(None)
                        }
                    },
                    async {
                        if saml {
                            client.saml_provider_by_name(&provider).await
                        } else {
                            Ok(None)
                        }
                    },
                    async {
                        match proxy {
                            Some(_) => client.proxy_provider_by_name(&provider).await,
                            None => Ok(None),
                        }
                    },
                    async {
                        match proxy {
                            Some(p) => match &p.proxy.outpost {
                                Some(name) => client.outposts_where("name__iexact", name).await,
                                None => {
                                    client
                                        .outposts_where("managed__iexact", EMBEDDED_OUTPOST)
                                        .await
                                }
                            },
                            None => Ok(Vec::new()),
                        }
                    },
                )
            },
            async {
                tokio::try_join!(
                    client.flows(),
                    async {
                        if oauth {
                            client.scope_mappings().await
                        } else {
                            Ok(Vec::new())
                        }
                    },
                    async {
                        if saml {
                            client.saml_property_mappings().await
                        } else {
                            Ok(Vec::new())
                        }
                    },
                    async {
                        if oauth || saml {
                            client.certificate_keypairs().await
                        } else {
                            Ok(Vec::new())
                        }
                    },
                )
            },
        )?;
        Ok(Snapshot {
            catalog: Catalog {
                flows,
                scope_mappings,
                keypairs,
                saml_mappings,
            },
            applications: app.into_iter().collect(),
            oauth2_providers: oauth2.into_iter().collect(),
            saml_providers: saml_provider.into_iter().collect(),
            proxy_providers: proxy_provider.into_iter().collect(),
            outposts,
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
            saml: match manifest.sso {
                Sso::Saml(_) => self.saml_providers.iter().find(|p| p.name == provider),
                _ => None,
            },
            proxy: match manifest.sso {
                Sso::Proxy(_) => self.proxy_providers.iter().find(|p| p.name == provider),
                _ => None,
            },
            outposts: &self.outposts,
            catalog: &self.catalog,
        }
    }
}
