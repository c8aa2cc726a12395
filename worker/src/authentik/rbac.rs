//! pma-sso's least-privilege role: the global permissions its commands need, and the calls
//! `init --least-privilege` and `doctor` make with them.
//!
//! Never in the list: anything that lets the account grant itself more — `authentik_rbac.*`
//! (roles, permission assignment), `authentik_core.change_group`, `add_user_to_group` and
//! `enable_group_superuser` (joining a superuser group), `change_user`, token permissions
//! (an API token for another user), and flow changes.

use serde::Deserialize;
use serde_json::json;

use super::{AuthentikError, Client};

/// `app_label.codename` of every global permission the role holds.
pub const PERMISSIONS: &[&str] = &[
    // applications
    "authentik_core.view_application",
    "authentik_core.add_application",
    "authentik_core.change_application",
    "authentik_core.delete_application",
    // providers of every type (`/providers/all/`: orphans, adopt) and the three it manages
    "authentik_core.view_provider",
    "authentik_core.delete_provider",
    "authentik_providers_oauth2.view_oauth2provider",
    "authentik_providers_oauth2.add_oauth2provider",
    "authentik_providers_oauth2.change_oauth2provider",
    "authentik_providers_oauth2.delete_oauth2provider",
    "authentik_providers_saml.view_samlprovider",
    "authentik_providers_saml.add_samlprovider",
    "authentik_providers_saml.change_samlprovider",
    "authentik_providers_saml.delete_samlprovider",
    "authentik_providers_proxy.view_proxyprovider",
    "authentik_providers_proxy.add_proxyprovider",
    "authentik_providers_proxy.change_proxyprovider",
    "authentik_providers_proxy.delete_proxyprovider",
    // property mappings the flows create
    "authentik_providers_oauth2.view_scopemapping",
    "authentik_providers_oauth2.add_scopemapping",
    "authentik_providers_oauth2.change_scopemapping",
    "authentik_providers_saml.view_samlpropertymapping",
    "authentik_providers_saml.add_samlpropertymapping",
    "authentik_providers_saml.change_samlpropertymapping",
    // outposts it attaches proxy providers to
    "authentik_outposts.view_outpost",
    "authentik_outposts.change_outpost",
    // signing keys and their certificates
    "authentik_crypto.view_certificatekeypair",
    "authentik_crypto.view_certificatekeypair_certificate",
    // flows are only read
    "authentik_flows.view_flow",
    // events
    "authentik_events.view_event",
    // what `webhook install` manages
    "authentik_events.view_notificationtransport",
    "authentik_events.add_notificationtransport",
    "authentik_events.change_notificationtransport",
    "authentik_events.view_notificationrule",
    "authentik_events.add_notificationrule",
    "authentik_events.change_notificationrule",
    "authentik_events.view_notificationwebhookmapping",
    "authentik_events.add_notificationwebhookmapping",
    "authentik_events.change_notificationwebhookmapping",
    "authentik_policies_event_matcher.view_eventmatcherpolicy",
    "authentik_policies_event_matcher.add_eventmatcherpolicy",
    "authentik_policies_event_matcher.change_eventmatcherpolicy",
    "authentik_policies.view_policybinding",
    "authentik_policies.add_policybinding",
    "authentik_policies.change_policybinding",
    // the webhook's destination group is created with pma-sso as its member (never a
    // superuser group: that needs `enable_group_superuser`)
    "authentik_core.view_group",
    "authentik_core.add_group",
    "authentik_core.view_user",
];

/// `/rbac/roles/`, reduced.
#[derive(Clone, Debug, Deserialize)]
pub struct Role {
    pub pk: String,
    pub name: String,
}

/// `/rbac/permissions/`, reduced.
#[derive(Clone, Debug, Deserialize)]
struct Permission {
    codename: String,
    app_label: String,
}

impl Client {
    pub async fn role_by_name(&self, name: &str) -> Result<Option<Role>, AuthentikError> {
        let found: Vec<Role> = self
            .list_all("/rbac/roles/", &[("search", name.to_owned())])
            .await?;
        Ok(found.into_iter().find(|r| r.name == name))
    }

    pub async fn create_role(&self, name: &str) -> Result<Role, AuthentikError> {
        self.write(
            reqwest::Method::POST,
            "/rbac/roles/",
            &json!({ "name": name }),
        )
        .await
    }

    /// Assign global permissions (`app_label.codename`) to a role.
    pub async fn assign_role_permissions(
        &self,
        role: &str,
        permissions: &[&str],
    ) -> Result<(), AuthentikError> {
        let _: serde_json::Value = self
            .write(
                reqwest::Method::POST,
                &format!("/rbac/permissions/assigned_by_roles/{role}/assign/"),
                &json!({ "permissions": permissions }),
            )
            .await?;
        Ok(())
    }

    pub async fn add_user_to_role(&self, role: &str, user: i64) -> Result<(), AuthentikError> {
        let _: serde_json::Value = self
            .write(
                reqwest::Method::POST,
                &format!("/rbac/roles/{role}/add_user/"),
                &json!({ "pk": user }),
            )
            .await?;
        Ok(())
    }

    pub async fn remove_user_from_group(
        &self,
        group: &str,
        user: i64,
    ) -> Result<(), AuthentikError> {
        let _: serde_json::Value = self
            .write(
                reqwest::Method::POST,
                &format!("/core/groups/{group}/remove_user/"),
                &json!({ "pk": user }),
            )
            .await?;
        Ok(())
    }

    /// The global permissions a role holds, as `app_label.codename`. Any authenticated user
    /// may read them, so `doctor` reads its own role's with pma-sso's token.
    pub async fn role_permissions(&self, role: &str) -> Result<Vec<String>, AuthentikError> {
        let found: Vec<Permission> = self
            .list_all("/rbac/permissions/", &[("role", role.to_owned())])
            .await?;
        Ok(found
            .into_iter()
            .map(|p| format!("{}.{}", p.app_label, p.codename))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_never_holds_what_would_let_it_grant_itself_more() {
        for p in PERMISSIONS {
            assert!(!p.starts_with("authentik_rbac."), "{p}");
            for forbidden in [
                "change_group",
                "add_user_to_group",
                "enable_group_superuser",
                "change_user",
                "add_token",
                "change_flow",
            ] {
                assert!(!p.ends_with(&format!(".{forbidden}")), "{p}");
            }
        }
    }
}
