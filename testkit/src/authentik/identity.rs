//! Users, service accounts, API tokens and groups (`/core/users/`, `/core/tokens/`,
//! `/core/groups/`), and who a bearer token belongs to: `me` answers per token, and only
//! members of a superuser group may use anything but `me`.

use std::time::{Duration, SystemTime};

use axum::http::Method;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Map, Value, json};

use super::api::{ApiError, ApiResponse, ApiResult, FieldErrors, canonical_uuid, does_not_exist};
use super::list::{Listing, Query};
use super::seed;
use super::store::{Store, str_field};

/// `akadmin`, the owner of the stand-in's main token (as of authentik's bootstrap token).
pub(crate) const ADMIN_PK: i64 = 3;
const ADMINS_GROUP_PK: &str = "c96557d9-1c51-4616-933b-0de8684b0c65";

#[derive(Debug, Clone)]
pub(crate) struct TokenRecord {
    /// Writable fields plus `pk`.
    pub fields: Map<String, Value>,
    pub key: String,
}

#[derive(Debug)]
pub(crate) struct Identity {
    /// Writable fields plus `pk`, `uid`, `uuid`.
    pub users: Vec<Map<String, Value>>,
    pub groups: Vec<Map<String, Value>>,
    pub tokens: Vec<TokenRecord>,
    next_user_pk: i64,
    next_group_num: i64,
}

fn random_key(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn user(pk: i64, username: &str, name: &str, kind: &str) -> Map<String, Value> {
    let uid: String = random_key(64).to_ascii_lowercase();
    let path = if kind == "service_account" {
        "goauthentik.io/service-accounts"
    } else {
        "users"
    };
    json!({
        "pk": pk, "username": username, "name": name, "is_active": true, "email": "",
        "attributes": {}, "path": path, "type": kind, "uid": uid, "uuid": seed::new_uuid(),
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

impl Identity {
    pub(crate) fn seeded() -> Identity {
        let mut admin = user(ADMIN_PK, "akadmin", "authentik Default Admin", "internal");
        admin.insert("email".into(), json!("akadmin@example.invalid"));
        admin.insert(
            "uid".into(),
            json!("99f11899acb5f6cd69d46a17fdce408890aaa6ebf82d7f3e56eff1995f426fd8"),
        );
        let admins = json!({
            "pk": ADMINS_GROUP_PK, "num_pk": 1, "name": "authentik Admins", "is_superuser": true,
            "parents": [], "users": [ADMIN_PK], "attributes": {}, "roles": [],
        });
        Identity {
            users: vec![admin],
            groups: vec![admins.as_object().cloned().unwrap_or_default()],
            tokens: Vec::new(),
            next_user_pk: ADMIN_PK + 1,
            next_group_num: 2,
        }
    }

    fn user(&self, pk: i64) -> Option<&Map<String, Value>> {
        self.users.iter().find(|u| u["pk"] == pk)
    }

    pub(crate) fn user_by_name(&self, username: &str) -> Option<i64> {
        self.users
            .iter()
            .find(|u| str_field(u, "username") == username)
            .and_then(|u| u["pk"].as_i64())
    }

    /// A user, added as an admin would (`superuser`: also a member of `authentik Admins`).
    pub(crate) fn add_user(&mut self, username: &str, superuser: bool) -> i64 {
        if let Some(pk) = self.user_by_name(username) {
            return pk;
        }
        let pk = self.next_user_pk;
        self.next_user_pk += 1;
        self.users.push(user(pk, username, username, "internal"));
        if superuser
            && let Some(admins) = self.groups.iter_mut().find(|g| g["pk"] == ADMINS_GROUP_PK)
        {
            push_member(admins, pk);
        }
        pk
    }

    /// A non-expiring API token with this key for `user`.
    pub(crate) fn add_api_token(&mut self, key: &str, user: i64) {
        let identifier = format!("sim-token-{}", self.tokens.len() + 1);
        self.tokens.push(TokenRecord {
            fields: token_fields(&identifier, "api", user, "", None, false),
            key: key.to_owned(),
        });
    }

    /// Whose API token `key` is: authentik's `TokenAuthentication` accepts only `intent: api`
    /// tokens that have not expired, of active users.
    pub(crate) fn token_user(&self, key: &str) -> Option<i64> {
        let now = seed::rfc3339(SystemTime::now());
        self.tokens
            .iter()
            .filter(|t| t.key == key && t.fields["intent"] == "api")
            .filter(|t| {
                t.fields["expiring"] != true
                    || t.fields["expires"]
                        .as_str()
                        .is_none_or(|expires| expires > now.as_str())
            })
            .find_map(|t| t.fields["user"].as_i64())
            .filter(|pk| self.user(*pk).is_some_and(|u| u["is_active"] == true))
    }

    pub(crate) fn is_superuser(&self, user: i64) -> bool {
        self.groups.iter().any(|g| {
            g["is_superuser"] == true
                && g["users"]
                    .as_array()
                    .is_some_and(|users| users.contains(&json!(user)))
        })
    }

    fn groups_of(&self, user: i64) -> impl Iterator<Item = &Map<String, Value>> {
        self.groups.iter().filter(move |g| {
            g["users"]
                .as_array()
                .is_some_and(|users| users.contains(&json!(user)))
        })
    }

    fn render_user_short(&self, pk: &Value) -> Option<Value> {
        let u = self.user(pk.as_i64()?)?;
        Some(json!({
            "pk": u["pk"], "username": u["username"], "name": u["name"],
            "is_active": u["is_active"], "last_login": null, "email": u["email"],
            "attributes": u["attributes"], "uid": u["uid"],
        }))
    }

    fn render_user(&self, u: &Map<String, Value>) -> Value {
        let pk = u["pk"].as_i64().unwrap_or_default();
        let mut out = u.clone();
        out.insert("last_login".into(), Value::Null);
        out.insert("is_superuser".into(), json!(self.is_superuser(pk)));
        out.insert(
            "groups".into(),
            json!(
                self.groups_of(pk)
                    .map(|g| g["pk"].clone())
                    .collect::<Vec<_>>()
            ),
        );
        out.insert("roles".into(), json!([]));
        Value::Object(out)
    }

    pub(crate) fn render_group(&self, g: &Map<String, Value>) -> Value {
        let mut out = g.clone();
        let users: Vec<Value> = g["users"]
            .as_array()
            .map(|pks| {
                pks.iter()
                    .filter_map(|pk| self.render_user_short(pk))
                    .collect()
            })
            .unwrap_or_default();
        out.insert("users_obj".into(), json!(users));
        out.insert("parents_obj".into(), Value::Null);
        out.insert("roles_obj".into(), json!([]));
        out.insert("inherited_roles_obj".into(), Value::Null);
        out.insert("children".into(), json!([]));
        out.insert("children_obj".into(), Value::Null);
        Value::Object(out)
    }

    fn render_token(&self, t: &TokenRecord) -> Value {
        let mut out = t.fields.clone();
        out.insert(
            "user_obj".into(),
            self.render_user_short(&t.fields["user"])
                .unwrap_or(Value::Null),
        );
        Value::Object(out)
    }

    pub(crate) fn group_index(&self, pk: &str) -> Option<usize> {
        let pk = canonical_uuid(pk)?;
        self.groups.iter().position(|g| g["pk"] == pk)
    }

    fn token_index(&self, identifier: &str) -> Option<usize> {
        self.tokens
            .iter()
            .position(|t| t.fields["identifier"] == identifier)
    }

    // ----- for the test handle -----

    pub(crate) fn all_users(&self) -> Vec<Value> {
        self.users.iter().map(|u| self.render_user(u)).collect()
    }

    pub(crate) fn all_groups(&self) -> Vec<Value> {
        self.groups.iter().map(|g| self.render_group(g)).collect()
    }

    pub(crate) fn all_tokens(&self) -> Vec<Value> {
        self.tokens.iter().map(|t| self.render_token(t)).collect()
    }
}

fn push_member(group: &mut Map<String, Value>, user: i64) {
    if let Some(Value::Array(users)) = group.get_mut("users")
        && !users.contains(&json!(user))
    {
        users.push(json!(user));
    }
}

fn token_fields(
    identifier: &str,
    intent: &str,
    user: i64,
    description: &str,
    expires: Option<String>,
    expiring: bool,
) -> Map<String, Value> {
    json!({
        "pk": seed::new_uuid(), "managed": null, "identifier": identifier, "intent": intent,
        "user": user, "description": description, "expires": expires, "expiring": expiring,
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

/// `me` for the caller: the seeded shape for akadmin, the same shape for any other user.
pub(crate) fn me(store: &Store, caller: i64) -> ApiResult {
    if caller == ADMIN_PK {
        return super::readonly::me(store);
    }
    let id = &store.identity;
    let u = id
        .user(caller)
        .ok_or(ApiError::Forbidden("Token invalid/expired"))?;
    let groups: Vec<Value> = id
        .groups_of(caller)
        .map(|g| json!({"name": g["name"], "pk": g["pk"]}))
        .collect();
    Ok(ApiResponse::ok(json!({"user": {
        "pk": caller, "username": u["username"], "name": u["name"], "is_active": u["is_active"],
        "is_superuser": id.is_superuser(caller), "groups": groups, "roles": [],
        "email": u["email"], "avatar": "", "uid": u["uid"], "settings": {}, "type": u["type"],
        "system_permissions": [],
    }})))
}

/// The endpoints of this file (paths relative to `/api/v3/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'p> {
    /// `core/users/`
    Users,
    /// `core/users/service_account/`
    ServiceAccount,
    /// `core/tokens/`
    Tokens,
    /// `core/tokens/{identifier}/`
    Token(&'p str),
    /// `core/tokens/{identifier}/view_key/`
    TokenKey(&'p str),
    /// `core/groups/`
    Groups,
    /// `core/groups/{group_uuid}/`
    Group(&'p str),
    /// `core/groups/{group_uuid}/add_user/`
    GroupAddUser(&'p str),
}

impl<'p> Route<'p> {
    pub(crate) fn parse(segments: &[&'p str]) -> Option<Route<'p>> {
        Some(match segments {
            ["core", "users"] => Route::Users,
            ["core", "users", "service_account"] => Route::ServiceAccount,
            ["core", "tokens"] => Route::Tokens,
            ["core", "tokens", id] => Route::Token(id),
            ["core", "tokens", id, "view_key"] => Route::TokenKey(id),
            ["core", "groups"] => Route::Groups,
            ["core", "groups", pk] => Route::Group(pk),
            ["core", "groups", pk, "add_user"] => Route::GroupAddUser(pk),
            _ => return None,
        })
    }

    pub(crate) fn methods(self) -> &'static [Method] {
        match self {
            Route::Users | Route::TokenKey(_) => &[Method::GET],
            Route::ServiceAccount | Route::GroupAddUser(_) => &[Method::POST],
            Route::Tokens | Route::Groups => &[Method::GET, Method::POST],
            Route::Token(_) => &[Method::GET, Method::DELETE],
            Route::Group(_) => &[Method::GET, Method::PUT, Method::PATCH, Method::DELETE],
        }
    }

    pub(crate) fn request_schema(self, method: &Method) -> Option<&'static str> {
        match (self, method.clone()) {
            (Route::ServiceAccount, Method::POST) => Some("UserServiceAccountRequest"),
            (Route::Tokens, Method::POST) => Some("TokenRequest"),
            (Route::Groups, Method::POST) | (Route::Group(_), Method::PUT) => Some("GroupRequest"),
            (Route::Group(_), Method::PATCH) => Some("PatchedGroupRequest"),
            (Route::GroupAddUser(_), Method::POST) => Some("UserAccountRequest"),
            _ => None,
        }
    }

    pub(crate) fn lookup(self, store: &Store) -> Result<(), ApiError> {
        let id = &store.identity;
        let found = match self {
            Route::Token(identifier) | Route::TokenKey(identifier) => {
                id.token_index(identifier).is_some()
            }
            Route::Group(pk) | Route::GroupAddUser(pk) => id.group_index(pk).is_some(),
            _ => true,
        };
        if found {
            Ok(())
        } else if matches!(self, Route::Token(_) | Route::TokenKey(_)) {
            Err(ApiError::NoMatch("Token"))
        } else {
            Err(ApiError::NoMatch("Group"))
        }
    }
}

pub(crate) fn handle(
    store: &mut Store,
    route: Route<'_>,
    method: &Method,
    body: Map<String, Value>,
    query: &Query,
    caller: i64,
) -> ApiResult {
    // Detail routes the body-less methods reach without `lookup`.
    route.lookup(store)?;
    let id = &mut store.identity;
    match (route, method.clone()) {
        (Route::Users, _) => {
            let users = id.all_users();
            Listing::new(users, query)
                .exact("username", "username")
                .exact("type", "type")
                .boolean("is_active", "is_active")
                .search(|u| {
                    ["username", "name", "email"]
                        .iter()
                        .filter_map(|k| u[*k].as_str().map(str::to_owned))
                        .collect()
                })
                .order(&["username"])
                .page()
        }
        (Route::ServiceAccount, _) => create_service_account(id, &body),
        (Route::Tokens, Method::GET) => {
            let tokens = id.all_tokens();
            Listing::new(tokens, query)
                .exact("identifier", "identifier")
                .exact("intent", "intent")
                .filter("user__username", |t, v| t["user_obj"]["username"] == v)
                .search(|t| {
                    ["identifier", "description"]
                        .iter()
                        .filter_map(|k| t[*k].as_str().map(str::to_owned))
                        .collect()
                })
                .order(&["expires"])
                .page()
        }
        (Route::Tokens, _) => create_token(id, body, caller),
        (Route::Token(identifier), Method::GET) => {
            let i = id
                .token_index(identifier)
                .ok_or(ApiError::NoMatch("Token"))?;
            Ok(ApiResponse::ok(id.render_token(&id.tokens[i])))
        }
        (Route::Token(identifier), _) => {
            let i = id
                .token_index(identifier)
                .ok_or(ApiError::NoMatch("Token"))?;
            id.tokens.remove(i);
            Ok(ApiResponse::no_content())
        }
        (Route::TokenKey(identifier), _) => {
            let i = id
                .token_index(identifier)
                .ok_or(ApiError::NoMatch("Token"))?;
            Ok(ApiResponse::ok(json!({"key": id.tokens[i].key})))
        }
        (Route::Groups, Method::GET) => {
            let groups = id.all_groups();
            Listing::new(groups, query)
                .exact("name", "name")
                .boolean("is_superuser", "is_superuser")
                .filter("members_by_pk", |g, v| {
                    g["users"]
                        .as_array()
                        .is_some_and(|u| u.iter().any(|pk| v.parse::<i64>().ok() == pk.as_i64()))
                })
                .search(|g| g["name"].as_str().map(str::to_owned).into_iter().collect())
                .order(&["name"])
                .page()
        }
        (Route::Groups, _) => write_group(id, None, body),
        (Route::Group(pk), Method::GET) => {
            let i = id.group_index(pk).ok_or(ApiError::NoMatch("Group"))?;
            Ok(ApiResponse::ok(id.render_group(&id.groups[i])))
        }
        (Route::Group(pk), Method::DELETE) => {
            let i = id.group_index(pk).ok_or(ApiError::NoMatch("Group"))?;
            let removed = id.groups.remove(i);
            let removed_pk = removed["pk"].clone();
            for rule in &mut store.notifications.rules {
                if rule.get("destination_group") == Some(&removed_pk) {
                    rule.insert("destination_group".into(), Value::Null);
                }
            }
            Ok(ApiResponse::no_content())
        }
        (Route::Group(pk), _) => {
            let i = id.group_index(pk).ok_or(ApiError::NoMatch("Group"))?;
            write_group(id, Some(i), body)
        }
        (Route::GroupAddUser(pk), _) => {
            let i = id.group_index(pk).ok_or(ApiError::NoMatch("Group"))?;
            let user = body.get("pk").and_then(Value::as_i64).unwrap_or_default();
            if id.user(user).is_none() {
                return Err(ApiError::NotFound("User not found"));
            }
            push_member(&mut id.groups[i], user);
            Ok(ApiResponse::no_content())
        }
    }
}

/// `UserViewSet.service_account`: the user, and an *app password* token (not an API token).
fn create_service_account(id: &mut Identity, body: &Map<String, Value>) -> ApiResult {
    let name = str_field(body, "name").to_owned();
    if id.user_by_name(&name).is_some() {
        return Err(ApiError::Invalid(
            json!({"non_field_errors": ["User with this username already exists."]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ));
    }
    let pk = id.next_user_pk;
    id.next_user_pk += 1;
    let account = user(pk, &name, &name, "service_account");
    let uid = account["uid"].clone();
    id.users.push(account);
    let expiring = body
        .get("expiring")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let expires = match body.get("expires").and_then(Value::as_str) {
        Some(at) => Some(at.to_owned()),
        None => Some(seed::rfc3339(
            SystemTime::now() + Duration::from_secs(360 * 86_400),
        )),
    };
    let key = random_key(60);
    id.tokens.push(TokenRecord {
        fields: token_fields(
            &format!("service-account-{name}-password"),
            "app_password",
            pk,
            "",
            expires,
            expiring,
        ),
        key: key.clone(),
    });
    let mut response = json!({"username": name, "token": key, "user_uid": uid, "user_pk": pk});
    if body.get("create_group") == Some(&Value::Bool(true)) {
        let group_pk = seed::new_uuid();
        let num = id.next_group_num;
        id.next_group_num += 1;
        let group = json!({"pk": group_pk, "num_pk": num, "name": name, "is_superuser": false,
            "parents": [], "users": [pk], "attributes": {}, "roles": []});
        id.groups
            .push(group.as_object().cloned().unwrap_or_default());
        response["group_pk"] = json!(group_pk);
    }
    Ok(ApiResponse::ok(response))
}

fn create_token(id: &mut Identity, body: Map<String, Value>, caller: i64) -> ApiResult {
    let mut errors = FieldErrors::default();
    let identifier = str_field(&body, "identifier").to_owned();
    if id.token_index(&identifier).is_some() {
        errors.add("identifier", "Token with this Identifier already exists.");
    }
    let intent = body
        .get("intent")
        .and_then(Value::as_str)
        .unwrap_or("api")
        .to_owned();
    if intent != "api" && intent != "app_password" {
        errors.add("intent", format!("Invalid intent {intent}"));
    }
    let user = body.get("user").cloned().unwrap_or(json!(caller));
    if user.as_i64().and_then(|pk| id.user(pk)).is_none() {
        errors.add("user", does_not_exist(&user));
    }
    errors.into_result()?;
    let expiring = body
        .get("expiring")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    // `default_token_duration` is one day.
    let expires = match body.get("expires").and_then(Value::as_str) {
        Some(at) => Some(at.to_owned()),
        None if expiring => Some(seed::rfc3339(
            SystemTime::now() + Duration::from_secs(86_400),
        )),
        None => None,
    };
    let record = TokenRecord {
        fields: token_fields(
            &identifier,
            &intent,
            user.as_i64().unwrap_or_default(),
            str_field(&body, "description"),
            expires,
            expiring,
        ),
        key: random_key(60),
    };
    let rendered = id.render_token(&record);
    id.tokens.push(record);
    Ok(ApiResponse::created(rendered))
}

fn write_group(id: &mut Identity, current: Option<usize>, body: Map<String, Value>) -> ApiResult {
    let mut errors = FieldErrors::default();
    if let Some(name) = body.get("name").and_then(Value::as_str)
        && id
            .groups
            .iter()
            .enumerate()
            .any(|(i, g)| Some(i) != current && str_field(g, "name") == name)
    {
        errors.add("name", "Group with this name already exists.");
    }
    for pk in body
        .get("users")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if pk.as_i64().and_then(|pk| id.user(pk)).is_none() {
            errors.add("users", does_not_exist(pk));
        }
    }
    errors.into_result()?;
    let i = match current {
        Some(i) => i,
        None => {
            let num = id.next_group_num;
            id.next_group_num += 1;
            let group = json!({"pk": seed::new_uuid(), "num_pk": num, "name": "",
                "is_superuser": false, "parents": [], "users": [], "attributes": {}, "roles": []});
            id.groups
                .push(group.as_object().cloned().unwrap_or_default());
            id.groups.len() - 1
        }
    };
    for (key, value) in body {
        id.groups[i].insert(key, value);
    }
    let rendered = id.render_group(&id.groups[i]);
    Ok(if current.is_some() {
        ApiResponse::ok(rendered)
    } else {
        ApiResponse::created(rendered)
    })
}
