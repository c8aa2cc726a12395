//! Rendering manifest templates against `.env`, settings and derived URLs.
//!
//! Every URL handed to a service is built here from the *public* authentik URL — never copied
//! from API responses, which echo the host the API was called on.

use std::collections::HashMap;
use std::fmt;

use schemas::{Manifest, Part, Template, Var};

use crate::envfile::EnvFile;

/// A rendered value. Its Debug output hides it when a secret went into it.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub secret: bool,
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("Rendered(<secret>)")
        } else {
            write!(f, "Rendered({:?})", self.text)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// Everything a template of one service may refer to.
pub struct Scope<'a> {
    env: &'a EnvFile,
    values: HashMap<Var, Result<String, String>>,
}

/// Values only a flow knows (e.g. the SAML certificate), added after authentik was read.
#[derive(Default, Clone)]
pub struct Extras {
    pub saml_cert_pem: Option<String>,
    pub saml_cert_fingerprint: Option<String>,
}

impl<'a> Scope<'a> {
    pub fn new(
        manifest: &Manifest,
        env: &'a EnvFile,
        public_url: Option<&str>,
        extras: &Extras,
    ) -> Scope<'a> {
        let mut values: HashMap<Var, Result<String, String>> = HashMap::new();
        let slug = manifest.slug().to_string();
        let env_only = |part_source: &Template| render_env_only(part_source, env);

        let host = match &manifest.host {
            Some(template) => env_only(template),
            None => {
                let label = manifest.subdomain.as_ref().unwrap_or(&manifest.name);
                domain(env).map(|d| format!("{label}.{d}"))
            }
        };
        let url = host.clone().map(|h| format!("https://{h}"));
        let first_path = manifest
            .oauth()
            .and_then(|v| v.redirect_paths.first().map(|p| p.to_string()));
        values.insert(
            Var::ServiceRedirectUri,
            match (&url, first_path) {
                (Ok(u), Some(p)) => Ok(format!("{u}{p}")),
                (Err(e), _) => Err(e.clone()),
                (Ok(_), None) => Err("this service type has no redirect path".into()),
            },
        );
        values.insert(Var::ServiceHost, host);
        values.insert(Var::ServiceUrl, url);
        values.insert(
            Var::ServiceInternalUrl,
            match &manifest.internal_url {
                Some(t) => env_only(t).map(|u| u.trim_end_matches('/').to_owned()),
                None => Err("the manifest has no internal_url".into()),
            },
        );

        let auth = match public_url {
            Some(u) => Ok(u.trim_end_matches('/').to_owned()),
            None => domain(env).map(|d| {
                let sub = env
                    .get("AUTH_SUBDOMAIN")
                    .filter(|s| !s.is_empty())
                    .unwrap_or("auth");
                format!("https://{sub}.{d}")
            }),
        };
        let derive = |suffix: &str| auth.clone().map(|a| format!("{a}{suffix}"));
        let issuer = format!("/application/o/{slug}/");
        values.insert(Var::AuthAuthorize, derive("/application/o/authorize/"));
        values.insert(Var::AuthToken, derive("/application/o/token/"));
        values.insert(Var::AuthUserinfo, derive("/application/o/userinfo/"));
        values.insert(Var::AuthIssuer, derive(&issuer));
        values.insert(
            Var::AuthDiscovery,
            derive(&format!("{issuer}.well-known/openid-configuration")),
        );
        values.insert(Var::AuthJwks, derive(&format!("{issuer}jwks/")));
        values.insert(
            Var::AuthEndSession,
            derive(&format!("{issuer}end-session/")),
        );
        let saml = format!("/application/saml/{slug}/");
        values.insert(
            Var::AuthSamlSsoRedirect,
            derive(&format!("{saml}sso/binding/redirect/")),
        );
        values.insert(
            Var::AuthSamlSsoPost,
            derive(&format!("{saml}sso/binding/post/")),
        );
        values.insert(
            Var::AuthSamlSloRedirect,
            derive(&format!("{saml}slo/binding/redirect/")),
        );
        values.insert(Var::AuthSamlMetadata, derive(&format!("{saml}metadata/")));
        values.insert(Var::AuthUrl, auth);
        values.insert(
            Var::AuthSamlCertPem,
            extras
                .saml_cert_pem
                .clone()
                .ok_or_else(|| "the SAML signing certificate is not known yet".to_owned()),
        );
        values.insert(
            Var::AuthSamlCertFingerprint,
            extras
                .saml_cert_fingerprint
                .clone()
                .ok_or_else(|| "the SAML signing certificate is not known yet".to_owned()),
        );
        values.insert(Var::Slug, Ok(slug));
        if let (Some(id_key), Some(secret_key)) =
            (manifest.client_id_env(), manifest.client_secret_env())
        {
            let from_env = |key: &schemas::EnvKey| {
                env.get(key.as_str())
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        format!(
                            "{key} is not in .env yet; run `pma-sso add {}`",
                            manifest.name
                        )
                    })
            };
            values.insert(Var::ClientId, from_env(&id_key));
            values.insert(Var::ClientSecret, from_env(&secret_key));
        } else {
            let none = Err(format!(
                "a {} service has no OAuth2 client",
                manifest.kind()
            ));
            values.insert(Var::ClientId, none.clone());
            values.insert(Var::ClientSecret, none);
        }
        Scope { env, values }
    }

    pub fn var(&self, var: Var) -> Result<&str, RenderError> {
        match self.values.get(&var) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(RenderError(format!("{{{{{}}}}}: {e}", var.name()))),
            None => Err(RenderError(format!("{{{{{}}}}} has no value", var.name()))),
        }
    }

    pub fn render(&self, template: &Template) -> Result<Rendered, RenderError> {
        let mut text = String::new();
        let mut secret = false;
        for part in template.parts() {
            match part {
                Part::Literal(s) => text.push_str(s),
                Part::Var(var) => {
                    text.push_str(self.var(*var)?);
                    secret |= var.is_secret();
                }
                Part::Secret(key) => {
                    let value = self.env.get(key.as_str()).ok_or_else(|| {
                        RenderError(format!("{{{{secret:{key}}}}}: {key} is not set in .env"))
                    })?;
                    text.push_str(value);
                    secret = true;
                }
                Part::Env { key, default } => {
                    text.push_str(&env_value(self.env, key, default.as_deref())?)
                }
            }
        }
        Ok(Rendered { text, secret })
    }

    /// Render a JSON value whose strings are templates.
    pub fn render_json(
        &self,
        value: &serde_json::Value,
    ) -> Result<(serde_json::Value, bool), RenderError> {
        let mut secret = false;
        let rendered = self.render_json_inner(value, &mut secret)?;
        Ok((rendered, secret))
    }

    fn render_json_inner(
        &self,
        value: &serde_json::Value,
        secret: &mut bool,
    ) -> Result<serde_json::Value, RenderError> {
        Ok(match value {
            serde_json::Value::String(s) => {
                let template = Template::parse(s).map_err(RenderError)?;
                let r = self.render(&template)?;
                *secret |= r.secret;
                serde_json::Value::String(r.text)
            }
            serde_json::Value::Array(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| self.render_json_inner(i, secret))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(map) => serde_json::Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_json_inner(v, secret)?)))
                    .collect::<Result<_, RenderError>>()?,
            ),
            other => other.clone(),
        })
    }
}

fn domain(env: &EnvFile) -> Result<String, String> {
    env.get("DOMAIN")
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "DOMAIN is not set in .env; it builds every public URL".to_owned())
}

fn env_value(
    env: &EnvFile,
    key: &schemas::EnvKey,
    default: Option<&str>,
) -> Result<String, RenderError> {
    match (env.get(key.as_str()).filter(|v| !v.is_empty()), default) {
        (Some(v), _) => Ok(v.to_owned()),
        (None, Some(d)) => Ok(d.to_owned()),
        (None, None) => Err(RenderError(format!("${{{key}}} is not set in .env"))),
    }
}

/// Templates that build hosts and URLs may only use `.env` values.
fn render_env_only(template: &Template, env: &EnvFile) -> Result<String, String> {
    let mut out = String::new();
    for part in template.parts() {
        match part {
            Part::Literal(s) => out.push_str(s),
            Part::Env { key, default } => {
                out.push_str(&env_value(env, key, default.as_deref()).map_err(|e| e.0)?)
            }
            Part::Var(_) | Part::Secret(_) => {
                return Err(format!(
                    "`{template}` may only use ${{KEY}} values from .env"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest(text: &str) -> Manifest {
        schemas::parse_manifest(Path::new("m.yaml"), text).expect("valid")
    }

    fn env(text: &str) -> (tempfile::TempDir, EnvFile) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join(".env");
        std::fs::write(&path, text).expect("write");
        let file = EnvFile::read(&path).expect("parse");
        (dir, file)
    }

    #[test]
    fn urls_come_from_the_public_authentik_url_and_domain() {
        let m =
            manifest("name: grafana\nsso:\n  type: oidc\n  redirect_path: /login/generic_oauth\n");
        let (_d, e) = env("DOMAIN=example.org\nGRAFANA_SSO_CLIENT_SECRET=s3cr3t\n");
        let scope = Scope::new(&m, &e, None, &Extras::default());
        assert_eq!(
            scope.var(Var::ServiceRedirectUri).expect("set"),
            "https://grafana.example.org/login/generic_oauth"
        );
        assert_eq!(
            scope.var(Var::AuthIssuer).expect("set"),
            "https://auth.example.org/application/o/grafana/"
        );
        let t = Template::parse("{{client_secret}}").expect("valid");
        let r = scope.render(&t).expect("renders");
        assert!(r.secret);
        assert!(!format!("{r:?}").contains("s3cr3t"));
        let scope = Scope::new(&m, &e, Some("https://sso.example.net/"), &Extras::default());
        assert_eq!(
            scope.var(Var::AuthToken).expect("set"),
            "https://sso.example.net/application/o/token/"
        );
    }

    #[test]
    fn a_missing_domain_is_named_when_used() {
        let m = manifest("name: grafana\nsso:\n  type: oidc\n  redirect_path: /cb\n");
        let (_d, e) = env("");
        let scope = Scope::new(&m, &e, None, &Extras::default());
        let err = scope
            .render(&Template::parse("{{service.url}}").expect("valid"))
            .expect_err("no domain");
        assert!(err.0.contains("DOMAIN is not set"), "{err}");
        let err = scope
            .render(&Template::parse("{{client_id}}").expect("valid"))
            .expect_err("no id");
        assert!(
            err.0.contains("GRAFANA_SSO_CLIENT_ID is not in .env"),
            "{err}"
        );
    }
}
