//! `frappe`: the OAuth2 provider and application, then Frappe's REST API with the API key and
//! secret from `.env`: the `Social Login Key` document named `scrub(provider_name)` holds the
//! client credentials and authentik's endpoints (relative to `base_url`, the public authentik
//! URL). Its callback path ends in the document name, so it is derived from `provider_name`.
//!
//! `client_secret` is a password field: a plain GET returns it masked, so it is read with
//! `frappe.client.get_password` and compared with the one in `.env` (= authentik's).

use schemas::manifest::FrappeSpec;
use schemas::{Sso, Var};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::credentials::{self, Credentials};
use super::{Flow, Service, apply_deliveries, check_deliveries, oauth2, report};
use crate::context::Context;
use crate::envfile::EnvFile;
use crate::error::FlowError;
use crate::frappe;
use crate::live::Live;
use crate::render::{Extras, Scope};
use crate::report::{Applied, Drift, Report};

pub struct Frappe;

/// Frappe sends the client to explicit endpoints and reads the profile from userinfo; it does
/// not check the issuer.
const OPTIONS: oauth2::Options = oauth2::Options { issuer_mode: None };

const DOCTYPE: &str = "Social Login Key";

impl Flow for Frappe {
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
            "authentik app present, redirects match, client secret matches",
            drifts,
        ))
    }

    async fn apply(
        &self,
        ctx: &Context,
        svc: &Service<'_>,
        live: &Live<'_>,
    ) -> Result<Applied, FlowError> {
        // Refuse before touching authentik when Frappe cannot be reached with credentials.
        let env = EnvFile::read(&ctx.settings.env_path).map_err(FlowError::ReadEnv)?;
        Target::new(ctx, svc, &env, credentials::wanted(svc, &env, live))?;
        let mut applied = oauth2::apply(ctx, svc, live, &OPTIONS).await?;
        // The authentik step may just have written the client credentials.
        let env = EnvFile::read(&ctx.settings.env_path).map_err(FlowError::ReadEnv)?;
        let target = Target::new(ctx, svc, &env, credentials::wanted(svc, &env, live))?;
        target.apply(&mut applied).await?;
        apply_deliveries(ctx, svc, &Extras::default(), &mut applied).await?;
        Ok(applied)
    }
}

/// The `Social Login Key` as the manifest and `.env` want it.
struct Target {
    client: frappe::Client,
    /// The document name, `scrub(provider_name)`.
    name: String,
    /// Set once, at creation: Frappe names the document after it.
    provider_name: String,
    /// Every field we own except `client_secret`.
    fields: Map<String, Value>,
    credentials: Credentials,
    secrets: Vec<String>,
}

fn render_err(field: &str) -> impl Fn(crate::render::RenderError) -> FlowError + '_ {
    move |e| FlowError::Render {
        field: field.to_owned(),
        problem: e.0,
    }
}

impl Target {
    fn new(
        ctx: &Context,
        svc: &Service<'_>,
        env: &EnvFile,
        credentials: Credentials,
    ) -> Result<Target, FlowError> {
        let m = &svc.package.manifest;
        let Sso::Frappe(sso) = &m.sso else {
            return Err(FlowError::NoOAuthClient { kind: m.kind() });
        };
        let spec: &FrappeSpec = &sso.frappe;
        let scope = Scope::new(
            m,
            env,
            ctx.settings.public_url.as_deref(),
            &Extras::default(),
        );
        let api_url = scope
            .render(&spec.api_url)
            .map_err(render_err("sso.frappe.api_url"))?
            .text;
        let value = |key: &schemas::EnvKey| {
            env.get(key.as_str())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let (api_key, api_secret) = match (value(&spec.api_key_env), value(&spec.api_secret_env)) {
            (Some(k), Some(s)) => (k, SecretString::from(s)),
            (k, _) => {
                let missing = match k {
                    None if value(&spec.api_secret_env).is_none() => {
                        format!("{} and {} are", spec.api_key_env, spec.api_secret_env)
                    }
                    None => format!("{} is", spec.api_key_env),
                    Some(_) => format!("{} is", spec.api_secret_env),
                };
                return Err(FlowError::FrappeCredentialsMissing {
                    missing,
                    key_env: spec.api_key_env.to_string(),
                    secret_env: spec.api_secret_env.to_string(),
                });
            }
        };
        let client = frappe::Client::new(ctx.http.clone(), &api_url, &api_key, &api_secret)
            .map_err(|problem| FlowError::Render {
                field: "sso.frappe.api_url".into(),
                problem,
            })?;

        let var = |v: Var| {
            scope
                .var(v)
                .map(str::to_owned)
                .map_err(render_err("sso.frappe"))
        };
        let base = var(Var::AuthUrl)?;
        // Endpoints are stored relative to `base_url` (custom_base_url = 1).
        let relative = |v: Var| -> Result<String, FlowError> {
            let url = var(v)?;
            Ok(url.strip_prefix(&base).unwrap_or(&url).to_owned())
        };
        let view = m
            .oauth()
            .ok_or(FlowError::NoOAuthClient { kind: m.kind() })?;
        let redirect = view
            .redirect_paths
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        let auth_url_data = json!({
            "response_type": "code",
            "scope": view.client.scopes.join(" "),
        })
        .to_string();
        let mut fields = Map::new();
        fields.insert("enable_social_login".into(), json!(1));
        fields.insert("social_login_provider".into(), json!("Custom"));
        fields.insert("base_url".into(), json!(base));
        fields.insert("custom_base_url".into(), json!(1));
        fields.insert("authorize_url".into(), json!(relative(Var::AuthAuthorize)?));
        fields.insert("access_token_url".into(), json!(relative(Var::AuthToken)?));
        fields.insert("api_endpoint".into(), json!(relative(Var::AuthUserinfo)?));
        fields.insert("redirect_url".into(), json!(redirect));
        fields.insert("auth_url_data".into(), json!(auth_url_data));
        fields.insert("user_id_property".into(), json!(spec.user_id_property));
        fields.insert("sign_ups".into(), json!(spec.sign_ups));
        if let Some(id) = &credentials.client_id {
            fields.insert("client_id".into(), json!(id));
        }
        let mut secrets = vec![api_secret.expose_secret().to_owned()];
        if let Some(secret) = &credentials.client_secret {
            secrets.push(secret.expose_secret().to_owned());
        }
        Ok(Target {
            client,
            name: spec.doc_name(),
            provider_name: spec.provider_name.to_string(),
            fields,
            credentials,
            secrets,
        })
    }

    fn secrets(&self) -> Vec<&str> {
        self.secrets.iter().map(String::as_str).collect()
    }

    async fn read(&self) -> Result<Option<Value>, FlowError> {
        self.client
            .get_doc(DOCTYPE, &self.name)
            .await
            .map_err(|source| FlowError::FrappeReadLoginKey {
                name: self.name.clone(),
                source,
            })
    }

    async fn stored_secret(&self) -> Result<Option<SecretString>, FlowError> {
        self.client
            .get_password(DOCTYPE, &self.name, "client_secret")
            .await
            .map_err(|source| FlowError::FrappeReadSecret {
                name: self.name.clone(),
                source,
            })
    }

    async fn check(&self) -> Result<Vec<Drift>, FlowError> {
        let Some(doc) = self.read().await? else {
            return Ok(vec![Drift::new(
                "frappe.social_login_key",
                format!("Frappe Social Login Key {} missing", self.name),
                format!("create Frappe Social Login Key {}", self.name),
            )]);
        };
        let (mut drifts, _) = self.diff(&doc);
        if let Some(drift) = self.secret_drift(self.stored_secret().await?.as_ref()) {
            drifts.push(drift);
        }
        Ok(drifts)
    }

    fn secret_drift(&self, have: Option<&SecretString>) -> Option<Drift> {
        let want = self.credentials.client_secret.as_ref()?;
        let message = match have {
            None => "Frappe client secret missing".to_owned(),
            Some(have) if have.expose_secret() != want.expose_secret() => {
                "Frappe client secret differs from authentik".to_owned()
            }
            Some(_) => return None,
        };
        Some(Drift::new(
            "frappe.client_secret",
            message,
            format!(
                "write the client secret to Frappe Social Login Key {}",
                self.name
            ),
        ))
    }

    /// Drifts of the non-secret fields, and the PUT body that repairs them.
    fn diff(&self, doc: &Value) -> (Vec<Drift>, Map<String, Value>) {
        let mut drifts = Vec::new();
        let mut patch = Map::new();
        for (field, want) in &self.fields {
            let have = doc.get(field).unwrap_or(&Value::Null);
            if same(field, want, have) {
                continue;
            }
            let message = if field == "client_id" {
                format!(
                    "Frappe client id mismatch: want {}, Frappe has {}",
                    show(want),
                    show(have)
                )
            } else {
                format!(
                    "Frappe Social Login Key {} {field} mismatch: want {}, Frappe has {}",
                    self.name,
                    show(want),
                    show(have)
                )
            };
            drifts.push(Drift::new(
                format!("frappe.{field}"),
                message,
                format!("set {field} on Frappe Social Login Key {}", self.name),
            ));
            patch.insert(field.clone(), want.clone());
        }
        (drifts, patch)
    }

    async fn apply(&self, applied: &mut Applied) -> Result<(), FlowError> {
        let Some(doc) = self.read().await? else {
            let mut body = self.fields.clone();
            body.insert("provider_name".into(), json!(self.provider_name));
            if let Some(secret) = &self.credentials.client_secret {
                body.insert("client_secret".into(), json!(secret.expose_secret()));
            }
            self.client
                .insert(DOCTYPE, &Value::Object(body), &self.secrets())
                .await
                .map_err(|source| FlowError::FrappeCreateLoginKey {
                    name: self.name.clone(),
                    source,
                })?;
            applied.did(format!("created Frappe Social Login Key {}", self.name));
            return Ok(());
        };
        let (_, mut patch) = self.diff(&doc);
        if self
            .secret_drift(self.stored_secret().await?.as_ref())
            .is_some()
            && let Some(secret) = &self.credentials.client_secret
        {
            patch.insert("client_secret".into(), json!(secret.expose_secret()));
        }
        if patch.is_empty() {
            return Ok(());
        }
        let fields: Vec<String> = patch.keys().cloned().collect();
        self.client
            .update(DOCTYPE, &self.name, &Value::Object(patch), &self.secrets())
            .await
            .map_err(|source| FlowError::FrappeUpdateLoginKey {
                name: self.name.clone(),
                source,
            })?;
        applied.did(format!(
            "updated Frappe Social Login Key {} ({})",
            self.name,
            fields.join(", ")
        ));
        Ok(())
    }
}

/// Frappe returns Check fields as 0/1 and stores `auth_url_data` as text: compare what they
/// mean.
fn same(field: &str, want: &Value, have: &Value) -> bool {
    if want == have {
        return true;
    }
    match (want, have) {
        (Value::Number(w), Value::Bool(h)) => w.as_i64() == Some(i64::from(*h)),
        (Value::Number(w), Value::String(h)) => w.to_string() == *h,
        (Value::String(w), Value::String(h)) if field == "auth_url_data" => {
            serde_json::from_str::<Value>(w).ok() == serde_json::from_str::<Value>(h).ok()
        }
        (Value::String(w), Value::Null) => w.is_empty(),
        _ => false,
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "none".into(),
        Value::String(s) if s.is_empty() => "none".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
