//! What `orphans --prune` and `adopt` need beyond the flows: every provider whatever its type,
//! and deletes. Kept apart from the flows' calls because nothing else may delete.

use serde::Deserialize;

use super::{Application, AuthentikError, Client};

/// A provider of any type, as `/providers/all/` lists it.
#[derive(Clone, Debug, Deserialize)]
pub struct ProviderRef {
    pub pk: i64,
    pub name: String,
    /// e.g. `ak-provider-oauth2-form`; informative only.
    #[serde(default)]
    pub component: String,
    /// e.g. `authentik_providers_oauth2.oauth2provider`: which typed endpoint edits it.
    #[serde(default)]
    pub meta_model_name: String,
    /// The application that uses it, if any (read-only in authentik).
    #[serde(default)]
    pub assigned_application_slug: Option<String>,
    /// The application that uses it as a backchannel provider, if any.
    #[serde(default)]
    pub assigned_backchannel_application_slug: Option<String>,
}

impl ProviderRef {
    /// No application uses it, as its main or as a backchannel provider.
    pub fn unassigned(&self) -> bool {
        let none = |s: &Option<String>| s.as_deref().is_none_or(str::is_empty);
        none(&self.assigned_application_slug) && none(&self.assigned_backchannel_application_slug)
    }

    /// The typed endpoint that edits it, for the three types pma-sso manages.
    pub fn endpoint(&self) -> Option<String> {
        let kind = match self.meta_model_name.as_str() {
            OAUTH2_MODEL => "oauth2",
            SAML_MODEL => "saml",
            PROXY_MODEL => "proxy",
            _ => return None,
        };
        Some(format!("/providers/{kind}/{}/", self.pk))
    }
}

/// `meta_model_name` of the provider types pma-sso manages.
pub const OAUTH2_MODEL: &str = "authentik_providers_oauth2.oauth2provider";
pub const SAML_MODEL: &str = "authentik_providers_saml.samlprovider";
pub const PROXY_MODEL: &str = "authentik_providers_proxy.proxyprovider";

impl Client {
    /// Applications whose `meta_publisher` is `publisher`. Filtered here rather than with a
    /// query parameter, so an authentik that ignores the filter can never widen the result.
    pub async fn applications_published_by(
        &self,
        publisher: &str,
    ) -> Result<Vec<Application>, AuthentikError> {
        Ok(self
            .applications()
            .await?
            .into_iter()
            .filter(|a| a.meta_publisher == publisher)
            .collect())
    }

    /// Every provider, of every type.
    pub async fn all_providers(&self) -> Result<Vec<ProviderRef>, AuthentikError> {
        self.list_all("/providers/all/", &[]).await
    }

    pub async fn delete_application(&self, slug: &str) -> Result<(), AuthentikError> {
        let _: serde_json::Value = self
            .send(
                reqwest::Method::DELETE,
                &format!("/core/applications/{slug}/"),
                &[],
                None,
            )
            .await?;
        Ok(())
    }

    /// Rename a provider of one of the types pma-sso manages (how `adopt` hands a hand-made
    /// provider to the flows, which find theirs by name).
    pub async fn rename_provider(
        &self,
        provider: &ProviderRef,
        name: &str,
    ) -> Result<(), AuthentikError> {
        let Some(path) = provider.endpoint() else {
            return Err(AuthentikError::Decode {
                endpoint: format!("/providers/all/{}/", provider.pk),
                problem: format!(
                    "provider type {} is not one pma-sso edits",
                    provider.meta_model_name
                ),
            });
        };
        let body = serde_json::json!({ "name": name });
        let _: serde_json::Value = self
            .send(reqwest::Method::PATCH, &path, &[], Some(&body))
            .await?;
        Ok(())
    }

    /// Delete a provider of any type by pk.
    pub async fn delete_provider(&self, pk: i64) -> Result<(), AuthentikError> {
        let _: serde_json::Value = self
            .send(
                reqwest::Method::DELETE,
                &format!("/providers/all/{pk}/"),
                &[],
                None,
            )
            .await?;
        Ok(())
    }
}
