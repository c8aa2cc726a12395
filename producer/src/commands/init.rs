//! `pma-sso init`: pma-sso's own identity in authentik.
//!
//! With an admin token given once (`AUTHENTIK_ADMIN_TOKEN`, or stdin with
//! `--admin-token-stdin`; never argv, where `ps` would show it) this creates the service account
//! (`PMA_SSO_SERVICE_ACCOUNT`, default `pma-sso`), makes it a member of the superuser group,
//! mints it a non-expiring API token and stores that token as `AUTHENTIK_TOKEN` in `.env`.
//! Every later write is then attributable to that account, which is how the webhook receiver
//! tells pma-sso's changes from a human's. The app password authentik creates with a service
//! account (`service-account-<name>-password`, which pma-sso never uses) is deleted. A token is
//! never printed or logged.
//!
//! `--least-privilege` gives the account a role holding [`PERMISSIONS`] instead (and takes it
//! out of the superuser group), and sets `PMA_SSO_LEAST_PRIVILEGE=true` so the commands read
//! authentik in the way that is correct without superuser.
//!
//! Why superuser is the default: authentik lists every application only to a superuser
//! (`superuser_full_list`); anyone else gets their own policy-filtered launcher list, cached for
//! 24 h. A least-privilege account would have to read each manifest's application by slug —
//! one request per service, over 1,000 for 1,000 services, against the sweep's nine list calls
//! — so superuser stays the default (see the README, "Least privilege").

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use worker::authentik::rbac::PERMISSIONS;
use worker::authentik::{AuthentikError, Client};
use worker::envfile::{self, EnvFile};

use crate::cli::{Status, fail};

/// The service account's username unless `PMA_SSO_SERVICE_ACCOUNT` names another.
pub const SERVICE_ACCOUNT: &str = "pma-sso";
/// `.env` key that tells the commands the token is not a superuser's.
pub const LEAST_PRIVILEGE_ENV: &str = "PMA_SSO_LEAST_PRIVILEGE";
/// `.env`/environment key naming the service account.
pub const ACCOUNT_ENV: &str = "PMA_SSO_SERVICE_ACCOUNT";
/// authentik's built-in superuser group (`is_superuser: true`).
pub const ADMIN_GROUP: &str = "authentik Admins";
/// `.env` key of the service account's API token.
pub const TOKEN_ENV: &str = "AUTHENTIK_TOKEN";
/// `.env` key of the service account's username (the webhook ignores events by this user).
pub const USER_ENV: &str = "PMA_SSO_AUTHENTIK_USER";
/// Where the admin token is read from, unless `--admin-token-stdin`.
pub const ADMIN_TOKEN_ENV: &str = "AUTHENTIK_ADMIN_TOKEN";

pub async fn run(admin_token_stdin: bool, least_privilege: bool, out: &mut dyn Write) -> Status {
    match init(admin_token_stdin, least_privilege, out).await {
        Ok(()) => Status::Green,
        Err(message) => fail(out, &message),
    }
}

struct InitSettings {
    env_path: PathBuf,
    /// The service account's username.
    account: String,
    authentik_url: String,
    timeout: Duration,
    /// `AUTHENTIK_TOKEN` as `.env` holds it (the process environment is not where init keeps it).
    stored_token: Option<SecretString>,
}

fn settings() -> Result<InitSettings, String> {
    let process = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
    let env_path = PathBuf::from(process("PMA_SSO_ENV_FILE").unwrap_or_else(|| ".env".into()));
    let file = EnvFile::read(&env_path).map_err(|e| format!("settings: {e}"))?;
    let get = |key: &str| {
        process(key).or_else(|| file.get(key).filter(|v| !v.is_empty()).map(str::to_owned))
    };
    let authentik_url = get("AUTHENTIK_URL")
        .ok_or("settings: AUTHENTIK_URL is not set (in the environment or in .env)")?;
    let timeout = get("PMA_SSO_HTTP_TIMEOUT_SECS")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(30);
    let account = get(ACCOUNT_ENV).unwrap_or_else(|| SERVICE_ACCOUNT.to_owned());
    if !valid_username(&account) {
        return Err(format!(
            "settings: {ACCOUNT_ENV} is invalid: a username of letters, digits and . _ - @ +, \
             at most 150 characters"
        ));
    }
    Ok(InitSettings {
        account,
        env_path,
        authentik_url,
        timeout: Duration::from_secs(timeout),
        stored_token: file
            .get(TOKEN_ENV)
            .filter(|v| !v.is_empty())
            .map(|v| SecretString::from(v.to_owned())),
    })
}

/// authentik's (Django's) username rule.
fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 150
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@+".contains(c))
}

/// Django's `slugify` for the ASCII usernames [`valid_username`] allows.
fn slugify(text: &str) -> String {
    text.to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// The app password `POST /core/users/service_account/` leaves (authentik's identifier).
pub fn app_password_identifier(account: &str) -> String {
    slugify(&format!("service-account-{account}-password"))
}

fn admin_token(from_stdin: bool) -> Result<SecretString, String> {
    let token = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading the admin token from stdin: {e}"))?;
        line.trim().to_owned()
    } else {
        std::env::var(ADMIN_TOKEN_ENV)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    if token.is_empty() {
        return Err(format!(
            "no admin token: set {ADMIN_TOKEN_ENV} or pipe it to --admin-token-stdin"
        ));
    }
    Ok(SecretString::from(token))
}

async fn init(
    admin_token_stdin: bool,
    least_privilege: bool,
    out: &mut dyn Write,
) -> Result<(), String> {
    let s = settings()?;
    let client = |token: SecretString| {
        Client::new(&s.authentik_url, token, s.timeout).map_err(|e| e.to_string())
    };

    // Already done? A stored token that authenticates as a superuser pma-sso needs nothing.
    if let Some(token) = s.stored_token.clone().filter(|_| !least_privilege) {
        match client(token)?.whoami().await {
            Ok(user) if user.username == s.account && user.is_superuser => {
                store(&s, None, &user.username, false)?;
                let _ = writeln!(
                    out,
                    "unchanged: service account {} ({TOKEN_ENV} in .env works)",
                    s.account
                );
                return Ok(());
            }
            // Another user's token (often the bootstrap admin's), or one that stopped working.
            Ok(_) | Err(AuthentikError::Forbidden { .. }) => {}
            Err(e) => return Err(format!("checking the {TOKEN_ENV} in .env: {e}")),
        }
    }

    let admin = client(admin_token(admin_token_stdin)?)?;
    let me = match admin.whoami().await {
        Ok(me) => me,
        Err(AuthentikError::Forbidden { detail, .. }) => {
            return Err(format!(
                "authentik refused the admin token ({detail}): it is invalid or expired; nothing was changed"
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    if !me.is_superuser {
        return Err(format!(
            "the admin token belongs to {}, who is not a superuser; nothing was changed",
            me.username
        ));
    }

    let account = admin
        .user_by_username(&s.account)
        .await
        .map_err(|e| e.to_string())?;
    let (user_pk, username) = match account {
        Some(user) if user.user_type == "service_account" => {
            let _ = writeln!(out, "unchanged: service account {}", user.username);
            (user.pk, user.username)
        }
        Some(user) => {
            return Err(format!(
                "a user {} exists and is not a service account (type {}); refusing to take it over",
                user.username, user.user_type
            ));
        }
        None => {
            // The account's own token is an app password, which cannot call the API; an API
            // token is minted below either way.
            let created = admin
                .create_service_account(&s.account)
                .await
                .map_err(|e| e.to_string())?;
            let _ = writeln!(out, "created: service account {}", created.username);
            (created.user_pk, created.username)
        }
    };

    remove_app_password(&admin, &username, user_pk, out).await?;

    if least_privilege {
        grant_role(&admin, &username, user_pk, out).await?;
    } else {
        join_admins(&admin, &username, user_pk, out).await?;
    }

    let identifier = token_identifier(&admin, &username, user_pk).await?;
    let reuse = admin
        .token(&identifier)
        .await
        .map_err(|e| e.to_string())?
        .is_some();
    if !reuse {
        admin
            .create_api_token(
                &identifier,
                user_pk,
                "pma-sso's API token (created by pma-sso init)",
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    let key = admin
        .view_token_key(&identifier)
        .await
        .map_err(|e| e.to_string())?;

    // Prove it before storing it.
    match client(key.clone())?.whoami().await {
        Ok(user) if user.username == username => {}
        Ok(user) => {
            return Err(format!(
                "token {identifier} authenticates as {}, not {username}",
                user.username
            ));
        }
        Err(e) => return Err(format!("the new token {identifier} does not work: {e}")),
    }
    store(&s, Some(&key), &username, least_privilege)?;
    let verb = if reuse { "reused" } else { "created" };
    let _ = writeln!(
        out,
        "{verb}: API token {identifier} (non-expiring), stored as {TOKEN_ENV} and {USER_ENV} in .env"
    );
    Ok(())
}

/// The superuser default: membership of authentik's superuser group.
async fn join_admins(
    admin: &Client,
    username: &str,
    user_pk: i64,
    out: &mut dyn Write,
) -> Result<(), String> {
    let group = admin_group(admin).await?;
    if group.users.contains(&user_pk) {
        let _ = writeln!(out, "unchanged: {username} is in group {ADMIN_GROUP}");
    } else {
        admin
            .add_user_to_group(&group.pk, user_pk)
            .await
            .map_err(|e| e.to_string())?;
        let _ = writeln!(out, "added: {username} to group {ADMIN_GROUP}");
    }
    let _ = writeln!(
        out,
        "note: {username} is a superuser: authentik lists every application only to superusers, \
         and reading each service's application one by one instead would cost a sweep one \
         request per service (`init --least-privilege` makes that trade)"
    );
    Ok(())
}

async fn admin_group(admin: &Client) -> Result<worker::authentik::Group, String> {
    admin
        .group_by_name(ADMIN_GROUP)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("authentik has no group {ADMIN_GROUP:?}"))
}

/// `--least-privilege`: a role of our own holding exactly [`PERMISSIONS`], and no superuser
/// group membership.
async fn grant_role(
    admin: &Client,
    username: &str,
    user_pk: i64,
    out: &mut dyn Write,
) -> Result<(), String> {
    let name = role_name(username);
    let role = match admin.role_by_name(&name).await.map_err(|e| e.to_string())? {
        Some(role) => role,
        None => {
            let role = admin
                .create_role(&name)
                .await
                .map_err(|e| format!("creating role {name}: {e}"))?;
            let _ = writeln!(out, "created: role {name}");
            role
        }
    };
    admin
        .assign_role_permissions(&role.pk, PERMISSIONS)
        .await
        .map_err(|e| format!("assigning permissions to role {name}: {e}"))?;
    let _ = writeln!(
        out,
        "set: role {name} holds the {} permissions pma-sso needs",
        PERMISSIONS.len()
    );
    admin
        .add_user_to_role(&role.pk, user_pk)
        .await
        .map_err(|e| format!("giving {username} role {name}: {e}"))?;
    let group = admin_group(admin).await?;
    if group.users.contains(&user_pk) {
        admin
            .remove_user_from_group(&group.pk, user_pk)
            .await
            .map_err(|e| format!("removing {username} from {ADMIN_GROUP}: {e}"))?;
        let _ = writeln!(out, "removed: {username} from group {ADMIN_GROUP}");
    }
    let _ = writeln!(
        out,
        "note: least privilege: sweeps, verify and orphans read each service's application by \
         slug (authentik lists every application only to superusers): one request per service, \
         about 1,010 for 1,000 services against about 30 as superuser"
    );
    Ok(())
}

/// The least-privilege role of a service account.
pub fn role_name(account: &str) -> String {
    format!("{account} (pma-sso least privilege)")
}

/// The app password that creating a service account leaves: pma-sso authenticates with its
/// API token only, and a non-expiring password nobody uses is only a liability.
async fn remove_app_password(
    admin: &Client,
    username: &str,
    user_pk: i64,
    out: &mut dyn Write,
) -> Result<(), String> {
    let identifier = app_password_identifier(username);
    match admin.token(&identifier).await.map_err(|e| e.to_string())? {
        Some(t) if t.user == Some(user_pk) && t.intent == "app_password" => {
            admin
                .delete_token(&identifier)
                .await
                .map_err(|e| format!("deleting the app password {identifier}: {e}"))?;
            let _ = writeln!(
                out,
                "deleted: app password {identifier} (pma-sso uses its API token only)"
            );
        }
        _ => {}
    }
    Ok(())
}

/// `<account>-<date>`; an identifier already taken by something else than our own
/// non-expiring API token gets the time appended.
async fn token_identifier(admin: &Client, account: &str, user_pk: i64) -> Result<String, String> {
    let now = chrono::Utc::now();
    let prefix = slugify(account);
    let by_date = format!("{prefix}-{}", now.format("%Y-%m-%d"));
    match admin.token(&by_date).await.map_err(|e| e.to_string())? {
        None => Ok(by_date),
        Some(t) if t.user == Some(user_pk) && t.intent == "api" && !t.expiring => Ok(by_date),
        Some(_) => Ok(format!("{prefix}-{}", now.format("%Y-%m-%d-%H%M%S"))),
    }
}

fn store(
    s: &InitSettings,
    token: Option<&SecretString>,
    username: &str,
    least_privilege: bool,
) -> Result<(), String> {
    let mut changes = vec![
        (USER_ENV, Some(username)),
        (LEAST_PRIVILEGE_ENV, least_privilege.then_some("true")),
    ];
    if let Some(token) = token {
        changes.push((TOKEN_ENV, Some(token.expose_secret())));
    }
    envfile::update(&s.env_path, &changes)
        .map(|_| ())
        .map_err(|e| format!("writing .env: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_password_identifier_is_authentiks_slug() {
        assert_eq!(
            app_password_identifier("pma-sso"),
            "service-account-pma-sso-password"
        );
        assert_eq!(
            app_password_identifier("Ops.Bot@x"),
            "service-account-opsbotx-password"
        );
    }

    #[test]
    fn usernames_follow_authentiks_rule() {
        assert!(valid_username("pma-sso-19"));
        assert!(!valid_username(""));
        assert!(!valid_username("has space"));
        assert!(!valid_username("a/b"));
    }
}
