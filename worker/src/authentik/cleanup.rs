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
}

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
