//! pma-sso's own identity in authentik: users, service accounts, API tokens and groups.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AuthentikError, Client};

/// `GET /core/users/me/`, reduced.
#[derive(Clone, Debug, Deserialize)]
pub struct Me {
    pub user: User,
}

/// A user as the user list and `me` show it, reduced.
#[derive(Clone, Debug, Deserialize)]
pub struct User {
    pub pk: i64,
    pub username: String,
    #[serde(default)]
    pub is_active: bool,
    /// From any group with `is_superuser` (only in `me` and the full user serializer).
    #[serde(default)]
    pub is_superuser: bool,
    #[serde(default, rename = "type")]
    pub user_type: String,
}

/// What `POST /core/users/service_account/` answers. Its token is an *app password* (intent
/// `app_password`), for LDAP/basic auth: it does not authenticate API calls.
#[derive(Debug, Deserialize)]
pub struct ServiceAccount {
    pub username: String,
    pub user_pk: i64,
    pub user_uid: String,
    #[serde(default)]
    pub group_pk: Option<String>,
    pub token: SecretString,
}

/// `/core/tokens/`, reduced. The key is never in it (`view_key` reads it).
#[derive(Clone, Debug, Deserialize)]
pub struct Token {
    pub pk: String,
    pub identifier: String,
    #[serde(default)]
    pub intent: String,
    #[serde(default)]
    pub user: Option<i64>,
    #[serde(default)]
    pub expiring: bool,
    #[serde(default)]
    pub expires: Option<String>,
}

#[derive(Deserialize)]
struct TokenView {
    key: SecretString,
}

/// `/core/groups/`, reduced.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Group {
    pub pk: String,
    pub name: String,
    #[serde(default)]
    pub is_superuser: bool,
    #[serde(default)]
    pub users: Vec<i64>,
}

impl Client {
    /// Who the token belongs to. A bad or expired token is `Forbidden`.
    pub async fn whoami(&self) -> Result<User, AuthentikError> {
        let me: Me = self
            .send(reqwest::Method::GET, "/core/users/me/", &[], None)
            .await?;
        Ok(me.user)
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, AuthentikError> {
        let found: Vec<User> = self
            .list_all(
                "/core/users/",
                &[
                    ("username", username.to_owned()),
                    ("include_groups", "false".into()),
                ],
            )
            .await?;
        Ok(found.into_iter().find(|u| u.username == username))
    }

    /// A service-account user named `name` (its username); `expiring: false` keeps its app
    /// password from lapsing after authentik's default 360 days.
    pub async fn create_service_account(
        &self,
        name: &str,
    ) -> Result<ServiceAccount, AuthentikError> {
        self.write(
            reqwest::Method::POST,
            "/core/users/service_account/",
            &json!({"name": name, "create_group": false, "expiring": false}),
        )
        .await
    }

    pub async fn token(&self, identifier: &str) -> Result<Option<Token>, AuthentikError> {
        self.get_opt(&format!("/core/tokens/{identifier}/")).await
    }

    /// Delete a token by identifier.
    pub async fn delete_token(&self, identifier: &str) -> Result<(), AuthentikError> {
        let _: serde_json::Value = self
            .send(
                reqwest::Method::DELETE,
                &format!("/core/tokens/{identifier}/"),
                &[],
                None,
            )
            .await?;
        Ok(())
    }

    /// A non-expiring API token for `user`; read its key with [`Client::view_token_key`].
    pub async fn create_api_token(
        &self,
        identifier: &str,
        user: i64,
        description: &str,
    ) -> Result<Token, AuthentikError> {
        self.write(
            reqwest::Method::POST,
            "/core/tokens/",
            &json!({
                "identifier": identifier,
                "intent": "api",
                "user": user,
                "description": description,
                "expiring": false,
            }),
        )
        .await
    }

    /// The token's key. authentik records a `secret_view` event for every call.
    pub async fn view_token_key(&self, identifier: &str) -> Result<SecretString, AuthentikError> {
        let view: TokenView = self
            .send(
                reqwest::Method::GET,
                &format!("/core/tokens/{identifier}/view_key/"),
                &[],
                None,
            )
            .await?;
        Ok(view.key)
    }

    /// The group with exactly this name. The group list has no name filter in 2026.2, so this
    /// searches and then compares names.
    pub async fn group_by_name(&self, name: &str) -> Result<Option<Group>, AuthentikError> {
        let found: Vec<Group> = self
            .list_all("/core/groups/", &[("search", name.to_owned())])
            .await?;
        Ok(found.into_iter().find(|g| g.name == name))
    }

    pub async fn create_group(&self, body: &serde_json::Value) -> Result<Group, AuthentikError> {
        self.write(reqwest::Method::POST, "/core/groups/", body)
            .await
    }

    /// Add one user to a group without rewriting its member list (answers 204).
    pub async fn add_user_to_group(&self, group_pk: &str, user: i64) -> Result<(), AuthentikError> {
        let _: serde_json::Value = self
            .write(
                reqwest::Method::POST,
                &format!("/core/groups/{group_pk}/add_user/"),
                &json!({ "pk": user }),
            )
            .await?;
        Ok(())
    }
}
