//! Template strings used in manifests: native settings, hosts and commands.
//!
//! Two kinds of placeholder, kept visibly apart:
//! - `{{name}}` — a value pma-sso derives (`{{service.url}}`, `{{auth.issuer}}`, `{{client_id}}`,
//!   `{{client_secret}}`, …) or `{{secret:KEY}}`, any `.env` key treated as a secret;
//! - `${KEY}` / `${KEY:-default}` — a plain `.env` value such as `${DOMAIN}`.
//!
//! `$${` writes a literal `${`. Parsing happens when the manifest is read, so an unknown
//! placeholder is a manifest error naming the field, never a surprise at delivery time.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::names::EnvKey;

/// A value pma-sso derives from the manifest, settings and authentik.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Var {
    ServiceHost,
    ServiceUrl,
    ServiceRedirectUri,
    ServiceInternalUrl,
    AuthUrl,
    AuthAuthorize,
    AuthToken,
    AuthUserinfo,
    AuthIssuer,
    AuthDiscovery,
    AuthJwks,
    AuthEndSession,
    AuthSamlSsoRedirect,
    AuthSamlSsoPost,
    AuthSamlSloRedirect,
    AuthSamlMetadata,
    AuthSamlCertPem,
    AuthSamlCertFingerprint,
    Slug,
    ClientId,
    ClientSecret,
}

impl Var {
    pub const ALL: [(&'static str, Var); 21] = [
        ("service.host", Var::ServiceHost),
        ("service.url", Var::ServiceUrl),
        ("service.redirect_uri", Var::ServiceRedirectUri),
        ("service.internal_url", Var::ServiceInternalUrl),
        ("auth.url", Var::AuthUrl),
        ("auth.authorize", Var::AuthAuthorize),
        ("auth.token", Var::AuthToken),
        ("auth.userinfo", Var::AuthUserinfo),
        ("auth.issuer", Var::AuthIssuer),
        ("auth.discovery", Var::AuthDiscovery),
        ("auth.jwks", Var::AuthJwks),
        ("auth.end_session", Var::AuthEndSession),
        ("auth.saml_sso_redirect", Var::AuthSamlSsoRedirect),
        ("auth.saml_sso_post", Var::AuthSamlSsoPost),
        ("auth.saml_slo_redirect", Var::AuthSamlSloRedirect),
        ("auth.saml_metadata", Var::AuthSamlMetadata),
        ("auth.saml_cert_pem", Var::AuthSamlCertPem),
        ("auth.saml_cert_fingerprint", Var::AuthSamlCertFingerprint),
        ("slug", Var::Slug),
        ("client_id", Var::ClientId),
        ("client_secret", Var::ClientSecret),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, var)| *var == self)
            .map(|(name, _)| *name)
            .unwrap_or("?")
    }

    fn lookup(name: &str) -> Option<Var> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    pub fn is_secret(self) -> bool {
        matches!(self, Var::ClientSecret)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Var(Var),
    /// `{{secret:KEY}}`: a `.env` value that must never be shown.
    Secret(EnvKey),
    /// `${KEY}` or `${KEY:-default}`.
    Env {
        key: EnvKey,
        default: Option<String>,
    },
}

/// A parsed template. Serialises back to its source text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, String> {
        let parts = parse_parts(source)?;
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// True when rendering may put a secret into the result.
    pub fn has_secret(&self) -> bool {
        self.parts.iter().any(|part| match part {
            Part::Var(var) => var.is_secret(),
            Part::Secret(_) => true,
            Part::Literal(_) | Part::Env { .. } => false,
        })
    }

    pub fn vars(&self) -> impl Iterator<Item = Var> + '_ {
        self.parts.iter().filter_map(|part| match part {
            Part::Var(var) => Some(*var),
            _ => None,
        })
    }
}

fn parse_parts(source: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = source;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("$${") {
            literal.push_str("${");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| "unclosed `${` placeholder".to_owned())?;
            let inner = &after[..end];
            let (key, default) = match inner.split_once(":-") {
                Some((key, default)) => (key, Some(default.to_owned())),
                None => (inner, None),
            };
            let key: EnvKey = key.parse().map_err(|e| format!("in `${{{inner}}}`: {e}"))?;
            flush(&mut literal, &mut parts);
            parts.push(Part::Env { key, default });
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix("{{") {
            let end = after
                .find("}}")
                .ok_or_else(|| "unclosed `{{` placeholder".to_owned())?;
            let name = after[..end].trim();
            let part = if let Some(key) = name.strip_prefix("secret:") {
                Part::Secret(
                    key.trim()
                        .parse()
                        .map_err(|e| format!("in `{{{{{name}}}}}`: {e}"))?,
                )
            } else {
                Part::Var(Var::lookup(name).ok_or_else(|| {
                    let known: Vec<&str> = Var::ALL.iter().map(|(n, _)| *n).collect();
                    format!(
                        "unknown placeholder `{{{{{name}}}}}`; known: {}, secret:KEY, and ${{KEY}} for .env values",
                        known.join(", ")
                    )
                })?)
            };
            flush(&mut literal, &mut parts);
            parts.push(part);
            rest = &after[end + 2..];
        } else {
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                literal.push(c);
            }
            rest = chars.as_str();
        }
    }
    flush(&mut literal, &mut parts);
    Ok(parts)
}

fn flush(literal: &mut String, parts: &mut Vec<Part>) {
    if !literal.is_empty() {
        parts.push(Part::Literal(std::mem::take(literal)));
    }
}

impl TryFrom<String> for Template {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let parts = parse_parts(&value)?;
        Ok(Template {
            source: value,
            parts,
        })
    }
}

impl From<Template> for String {
    fn from(value: Template) -> String {
        value.source
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl JsonSchema for Template {
    fn schema_name() -> Cow<'static, str> {
        "Template".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "text with {{derived}} placeholders (service.url, auth.issuer, client_id, client_secret, secret:KEY, …) and ${ENV_KEY} / ${ENV_KEY:-default} .env values",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_of_both_kinds_are_parsed() {
        let t = Template::parse("https://${SUB:-auth}.${DOMAIN}{{service.redirect_uri}}/x")
            .expect("valid");
        assert_eq!(t.parts().len(), 6);
        assert!(!t.has_secret());
        assert!(
            Template::parse("{{client_secret}}")
                .expect("valid")
                .has_secret()
        );
        assert!(
            Template::parse("{{ secret:ADMIN_PASSWORD }}")
                .expect("valid")
                .has_secret()
        );
    }

    #[test]
    fn unknown_placeholders_and_unclosed_braces_are_errors() {
        assert!(Template::parse("{{service.nope}}").is_err());
        assert!(Template::parse("{{service.url").is_err());
        assert!(Template::parse("${DOMAIN").is_err());
        assert!(Template::parse("${9X}").is_err());
    }

    #[test]
    fn python_dict_braces_and_escaped_dollars_stay_literal() {
        let t = Template::parse("X = {'a': 1} and $${HOME}").expect("valid");
        assert_eq!(
            t.parts(),
            &[Part::Literal("X = {'a': 1} and ${HOME}".into())]
        );
    }
}
