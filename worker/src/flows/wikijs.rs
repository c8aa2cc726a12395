//! `wikijs`: the OAuth2 provider and application as for oidc (Wiki.js's `oidc` module checks
//! the issuer), then Wiki.js 2.x through its GraphQL API, with the API key from `.env`:
//! - when `.env` holds no usable key and the manifest's admin login is in `.env`, mint one
//!   (login → `setApiState(enabled: true)` → `createApiKey`) and store it;
//! - set the site host to the public URL, since Wiki.js builds every callback from it;
//! - create or update our strategy under our own key (`strategy_key`, module `oidc`), which
//!   fixes the callback to `/login/<strategy_key>/callback`. `updateStrategies` replaces the
//!   whole list, so every other strategy is read and written back as it was.
//!
//! Of our strategy we own its module, display name, enabled flag, self-registration,
//! auto-enrolled groups and the config keys below; its order, domain whitelist and any other
//! config key (e.g. `mapGroups` set by hand) are kept.

use std::collections::BTreeMap;

use schemas::manifest::WikijsSpec;
use schemas::{Sso, Var};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::credentials::{self, Credentials};
use super::{Flow, Service, apply_deliveries, check_deliveries, oauth2, report};
use crate::context::Context;
use crate::envfile::{self, EnvFile};
use crate::error::FlowError;
use crate::live::Live;
use crate::render::{Extras, Scope};
use crate::report::{Applied, Drift, Report};
use crate::wikijs::{self, ActiveStrategy, WikijsError};

pub struct Wikijs;

/// passport-openidconnect compares the token's `iss` with the configured issuer.
const OPTIONS: oauth2::Options = oauth2::Options {
    issuer_mode: Some("per_provider"),
};

const MODULE: &str = "oidc";
const KEY_NAME: &str = "pma-sso";
/// An `ms` duration, as Wiki.js takes it. When it runs out the key is refused like a revoked
/// one, and fix mints the next.
const KEY_EXPIRATION: &str = "1y";

impl Flow for Wikijs {
    async fn check(
        &self,
        ctx: &Context,
        svc: &Service<'_>,
        live: &Live<'_>,
    ) -> Result<Report, FlowError> {
        let mut drifts = oauth2::check(ctx, svc, live, &OPTIONS)?;
        let target = Target::new(ctx, svc, svc.env, credentials::wanted(svc, svc.env, live))?;
        drifts.extend(target.check().await?);
        drifts.extend(check_deliveries(ctx, svc, &Extras::default()).await?);
        Ok(report(
            svc,
            "authentik app present, redirects match, API key valid, strategy matches",
            drifts,
        ))
    }

    async fn apply(
        &self,
        ctx: &Context,
        svc: &Service<'_>,
        live: &Live<'_>,
    ) -> Result<Applied, FlowError> {
        // With neither a key nor the admin login nothing can reach Wiki.js: refuse before
        // touching authentik.
        let env = EnvFile::read(&ctx.settings.env_path).map_err(FlowError::ReadEnv)?;
        let before = Target::new(ctx, svc, &env, credentials::wanted(svc, &env, live))?;
        if before.key.is_none() && before.admin.is_none() {
            return Err(before.unusable(format!("{} is not set in .env", before.key_env)));
        }
        let mut applied = oauth2::apply(ctx, svc, live, &OPTIONS).await?;
        // The authentik step may just have written the client credentials.
        let env = EnvFile::read(&ctx.settings.env_path).map_err(FlowError::ReadEnv)?;
        let wanted = credentials::wanted(svc, &env, live);
        let target = Target::new(ctx, svc, &env, wanted)?;
        target.apply(ctx, &mut applied).await?;
        apply_deliveries(ctx, svc, &Extras::default(), &mut applied).await?;
        Ok(applied)
    }
}

/// Wiki.js as the manifest and `.env` want it.
struct Target<'a> {
    spec: &'a WikijsSpec,
    client: wikijs::Client,
    key: Option<SecretString>,
    key_env: String,
    admin: Option<(String, SecretString)>,
    /// Why no key can be minted when `admin` is `None`.
    no_admin: String,
    host: String,
    /// Config values we own, except the client credentials.
    owned_config: BTreeMap<&'static str, String>,
    credentials: Credentials,
}

fn render_err(field: &str) -> impl Fn(crate::render::RenderError) -> FlowError + '_ {
    move |e| FlowError::Render {
        field: field.to_owned(),
        problem: e.0,
    }
}

impl<'a> Target<'a> {
    fn new(
        ctx: &Context,
        svc: &Service<'a>,
        env: &EnvFile,
        credentials: Credentials,
    ) -> Result<Target<'a>, FlowError> {
        let m = &svc.package.manifest;
        let Sso::Wikijs(sso) = &m.sso else {
            return Err(FlowError::NoOAuthClient { kind: m.kind() });
        };
        let spec = &sso.wikijs;
        let scope = Scope::new(
            m,
            env,
            ctx.settings.public_url.as_deref(),
            &Extras::default(),
        );
        let graphql_url = scope
            .render(&spec.graphql_url)
            .map_err(render_err("sso.wikijs.graphql_url"))?
            .text;
        let var = |v: Var| {
            scope
                .var(v)
                .map(str::to_owned)
                .map_err(render_err("sso.wikijs"))
        };
        let mut owned_config = BTreeMap::new();
        owned_config.insert("authorizationURL", var(Var::AuthAuthorize)?);
        owned_config.insert("tokenURL", var(Var::AuthToken)?);
        owned_config.insert("userInfoURL", var(Var::AuthUserinfo)?);
        owned_config.insert("issuer", var(Var::AuthIssuer)?);
        owned_config.insert("logoutURL", var(Var::AuthEndSession)?);
        owned_config.insert("emailClaim", "email".to_owned());
        // Wiki.js defaults to `displayName`, a claim authentik does not send.
        owned_config.insert("displayNameClaim", "name".to_owned());
        let value = |key: &Option<schemas::EnvKey>| {
            key.as_ref()
                .and_then(|k| env.get(k.as_str()))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let admin = match (
            value(&spec.admin_email_env),
            value(&spec.admin_password_env),
        ) {
            (Some(email), Some(password)) => Some((email, SecretString::from(password))),
            _ => None,
        };
        let no_admin = match (&spec.admin_email_env, &spec.admin_password_env) {
            (Some(e), Some(p)) => format!("the admin login ({e}, {p}) is not in .env"),
            _ => {
                "the manifest names no admin login (sso.wikijs.admin_email_env, admin_password_env)"
                    .into()
            }
        };
        Ok(Target {
            spec,
            client: wikijs::Client::new(ctx.http.clone(), &graphql_url),
            key: value(&Some(spec.api_key_env.clone())).map(SecretString::from),
            key_env: spec.api_key_env.to_string(),
            admin,
            no_admin,
            host: var(Var::ServiceUrl)?,
            owned_config,
            credentials,
        })
    }

    fn unusable(&self, problem: String) -> FlowError {
        FlowError::WikijsKeyUnusable {
            key_env: self.key_env.clone(),
            no_admin: self.no_admin.clone(),
            problem,
        }
    }

    fn strategy_key(&self) -> &str {
        self.spec.strategy_key.as_str()
    }

    /// What fix does about an unusable key, for the drift's remedy.
    fn key_remedy(&self) -> String {
        match &self.admin {
            Some(_) => format!(
                "log in as the Wiki.js admin, mint a new API key and store it in .env as {}",
                self.key_env
            ),
            None => format!(
                "nothing: {}; create a full-access key in Wiki.js (Administration → API Access) and store it in .env as {}",
                self.no_admin, self.key_env
            ),
        }
    }

    async fn check(&self) -> Result<Vec<Drift>, FlowError> {
        let Some(key) = &self.key else {
            return Ok(vec![Drift::new(
                format!("env.{}", self.key_env),
                format!("Wiki.js API key missing from .env ({})", self.key_env),
                self.key_remedy(),
            )]);
        };
        let host = match self.client.site_host(key).await {
            Ok(host) => host,
            Err(e) if e.is_key_problem() => {
                return Ok(vec![Drift::new(
                    "wikijs.api_key",
                    format!(
                        "Wiki.js API key in {} refused: {}",
                        self.key_env,
                        key_reason(&e)
                    ),
                    self.key_remedy(),
                )]);
            }
            Err(e) => return Err(FlowError::WikijsReadHost(e)),
        };
        let mut drifts = Vec::new();
        if let Some(drift) = self.host_drift(host.as_deref()) {
            drifts.push(drift);
        }
        let strategies = self
            .client
            .active_strategies(key)
            .await
            .map_err(FlowError::WikijsReadStrategies)?;
        drifts.extend(self.strategy_diff(&strategies));
        Ok(drifts)
    }

    fn host_drift(&self, have: Option<&str>) -> Option<Drift> {
        // Wiki.js trims a trailing slash when it saves the host.
        let have_trimmed = have.map(|h| h.trim().trim_end_matches('/'));
        (have_trimmed != Some(self.host.as_str())).then(|| {
            Drift::new(
                "wikijs.host",
                format!(
                    "Wiki.js site host mismatch: want {}, Wiki.js has {}",
                    self.host,
                    have.filter(|h| !h.is_empty()).unwrap_or("none")
                ),
                "set the Wiki.js site host",
            )
        })
    }

    /// Every difference between our strategy and the wanted one.
    fn strategy_diff(&self, strategies: &[ActiveStrategy]) -> Vec<Drift> {
        let key = self.strategy_key();
        let field = |name: &str| format!("wikijs.strategy.{name}");
        let remedy = format!("write Wiki.js strategy {key}");
        let Some(have) = strategies.iter().find(|s| s.key == key) else {
            return vec![Drift::new(
                "wikijs.strategy",
                format!("Wiki.js strategy {key} missing"),
                format!("create Wiki.js strategy {key} (module {MODULE})"),
            )];
        };
        let mut drifts = Vec::new();
        let mut differ = |name: &str, message: String| {
            drifts.push(Drift::new(field(name), message, remedy.clone()));
        };
        if have.strategy_key != MODULE {
            differ(
                "strategyKey",
                format!(
                    "Wiki.js strategy {key} uses module {}, want {MODULE}",
                    have.strategy_key
                ),
            );
        }
        if !have.is_enabled {
            differ("isEnabled", format!("Wiki.js strategy {key} is disabled"));
        }
        if have.display_name != self.spec.display_name {
            differ(
                "displayName",
                format!(
                    "Wiki.js strategy {key} display name mismatch: want {}, Wiki.js has {}",
                    self.spec.display_name, have.display_name
                ),
            );
        }
        if have.self_registration != self.spec.self_registration {
            differ(
                "selfRegistration",
                format!(
                    "Wiki.js strategy {key} self-registration mismatch: want {}, Wiki.js has {}",
                    on_off(self.spec.self_registration),
                    on_off(have.self_registration)
                ),
            );
        }
        let want_groups: Vec<i64> = self
            .spec
            .auto_enroll_groups
            .iter()
            .map(|g| i64::from(*g))
            .collect();
        if have.auto_enroll_groups != want_groups {
            differ(
                "autoEnrollGroups",
                format!(
                    "Wiki.js strategy {key} auto-enroll groups mismatch: want {want_groups:?}, Wiki.js has {:?}",
                    have.auto_enroll_groups
                ),
            );
        }
        let have_text = |name: &str| have.config.get(name).and_then(Value::as_str).unwrap_or("");
        if let Some(id) = &self.credentials.client_id
            && have_text("clientId") != id
        {
            differ(
                "config.clientId",
                format!(
                    "Wiki.js client id mismatch: want {id}, Wiki.js has {}",
                    none_if_empty(have_text("clientId"))
                ),
            );
        }
        if let Some(secret) = &self.credentials.client_secret
            && have_text("clientSecret") != secret.expose_secret()
        {
            differ(
                "config.clientSecret",
                "Wiki.js client secret differs from authentik".into(),
            );
        }
        for (name, want) in &self.owned_config {
            if have.config.get(*name) != Some(&Value::String(want.clone())) {
                differ(
                    &format!("config.{name}"),
                    format!(
                        "Wiki.js strategy {key} {name} mismatch: want {want}, Wiki.js has {}",
                        have.config
                            .get(*name)
                            .map_or_else(|| "none".to_owned(), show_value)
                    ),
                );
            }
        }
        drifts
    }

    /// The full list to write back: every other strategy as it is, ours as wanted.
    fn strategies_input(&self, strategies: &[ActiveStrategy]) -> Vec<Value> {
        let key = self.strategy_key();
        let mut list: Vec<Value> = strategies
            .iter()
            .filter(|s| s.key != key)
            .map(ActiveStrategy::to_input)
            .collect();
        let existing = strategies.iter().find(|s| s.key == key);
        let mut config: BTreeMap<String, Value> =
            existing.map(|s| s.config.clone()).unwrap_or_default();
        for (name, value) in &self.owned_config {
            config.insert((*name).to_owned(), json!(value));
        }
        if let Some(id) = &self.credentials.client_id {
            config.insert("clientId".into(), json!(id));
        }
        if let Some(secret) = &self.credentials.client_secret {
            config.insert("clientSecret".into(), json!(secret.expose_secret()));
        }
        let ours = ActiveStrategy {
            key: key.to_owned(),
            strategy_key: MODULE.to_owned(),
            display_name: self.spec.display_name.clone(),
            order: existing.map_or_else(
                || strategies.iter().map(|s| s.order + 1).max().unwrap_or(0),
                |s| s.order,
            ),
            is_enabled: true,
            self_registration: self.spec.self_registration,
            domain_whitelist: existing
                .map(|s| s.domain_whitelist.clone())
                .unwrap_or_default(),
            auto_enroll_groups: self
                .spec
                .auto_enroll_groups
                .iter()
                .map(|g| i64::from(*g))
                .collect(),
            config,
        };
        list.push(ours.to_input());
        list
    }

    async fn apply(&self, ctx: &Context, applied: &mut Applied) -> Result<(), FlowError> {
        let (key, host) = self.usable_key(ctx, applied).await?;
        if self.host_drift(host.as_deref()).is_some() {
            self.client
                .set_site_host(&key, &self.host)
                .await
                .map_err(FlowError::WikijsSetHost)?;
            applied.did(format!("set the Wiki.js site host to {}", self.host));
        }
        let strategies = self
            .client
            .active_strategies(&key)
            .await
            .map_err(FlowError::WikijsReadStrategies)?;
        let drifts = self.strategy_diff(&strategies);
        if drifts.is_empty() {
            return Ok(());
        }
        let input = self.strategies_input(&strategies);
        let mut secrets = wikijs::strategy_secrets(&strategies);
        if let Some(secret) = &self.credentials.client_secret {
            secrets.push(secret.expose_secret());
        }
        self.client
            .update_strategies(&key, &input, &secrets)
            .await
            .map_err(FlowError::WikijsUpdateStrategies)?;
        let fields: Vec<&str> = drifts
            .iter()
            .map(|d| {
                d.field
                    .trim_start_matches("wikijs.strategy")
                    .trim_start_matches('.')
            })
            .filter(|f| !f.is_empty())
            .collect();
        let key_name = self.strategy_key();
        if fields.is_empty() {
            applied.did(format!("created Wiki.js strategy {key_name}"));
        } else {
            applied.did(format!(
                "updated Wiki.js strategy {key_name} ({})",
                fields.join(", ")
            ));
        }
        Ok(())
    }

    /// A key Wiki.js accepts, and the site host read with it. Mints one when `.env` holds none
    /// or Wiki.js refuses it, if the admin login is there to do it.
    async fn usable_key(
        &self,
        ctx: &Context,
        applied: &mut Applied,
    ) -> Result<(SecretString, Option<String>), FlowError> {
        let problem = match &self.key {
            None => format!("{} is not set in .env", self.key_env),
            Some(key) => match self.client.site_host(key).await {
                Ok(host) => return Ok((key.clone(), host)),
                Err(e) if e.is_key_problem() => {
                    let reason = key_reason(&e);
                    if matches!(e, WikijsError::ApiDisabled { .. })
                        && let Some(admin) = &self.admin
                    {
                        // The key is fine; only API access is off.
                        let token = self.login(admin).await?;
                        self.client
                            .enable_api(&token)
                            .await
                            .map_err(FlowError::WikijsAdminKey)?;
                        applied.did("enabled the Wiki.js API");
                        let host = self
                            .client
                            .site_host(key)
                            .await
                            .map_err(FlowError::WikijsMintedKeyRefused)?;
                        return Ok((key.clone(), host));
                    }
                    format!("Wiki.js refused the key in {}: {reason}", self.key_env)
                }
                Err(e) => return Err(FlowError::WikijsReadHost(e)),
            },
        };
        let Some(admin) = &self.admin else {
            return Err(self.unusable(problem));
        };
        let token = self.login(admin).await?;
        self.client
            .enable_api(&token)
            .await
            .map_err(FlowError::WikijsAdminKey)?;
        let key = self
            .client
            .create_api_key(&token, KEY_NAME, KEY_EXPIRATION)
            .await
            .map_err(FlowError::WikijsAdminKey)?;
        // Stored before it is used: a crash after minting must not lose the only copy.
        envfile::update_async(
            ctx.settings.env_path.clone(),
            vec![(self.key_env.clone(), Some(key.expose_secret().to_owned()))],
        )
        .await
        .map_err(FlowError::WriteEnv)?;
        applied.did(format!(
            "minted a Wiki.js API key ({problem}) and wrote it to .env as {}",
            self.key_env
        ));
        let host = self
            .client
            .site_host(&key)
            .await
            .map_err(FlowError::WikijsMintedKeyRefused)?;
        Ok((key, host))
    }

    async fn login(
        &self,
        (email, password): &(String, SecretString),
    ) -> Result<SecretString, FlowError> {
        self.client
            .login(email, password)
            .await
            .map_err(FlowError::WikijsAdminKey)
    }
}

fn key_reason(e: &WikijsError) -> String {
    match e {
        WikijsError::KeyRejected { message, .. } => message.clone(),
        WikijsError::ApiDisabled { .. } => {
            "the Wiki.js API is disabled (Administration → API Access)".into()
        }
        other => other.to_string(),
    }
}

fn on_off(value: bool) -> &'static str {
    if value { "on" } else { "off" }
}

fn none_if_empty(text: &str) -> &str {
    if text.is_empty() { "none" } else { text }
}

fn show_value(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() => "none".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
