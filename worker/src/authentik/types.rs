//! Response shapes, reduced to the fields pma-sso reads. Unknown fields are ignored so newer
//! authentik versions (e.g. `redirect_uri_type` in 2026.5) keep working.

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Page<T> {
    pub pagination: Pagination,
    pub results: Vec<T>,
}

#[derive(Debug, Deserialize)]
pub struct Pagination {
    #[serde(default)]
    pub next: u64,
    #[serde(default)]
    pub total_pages: u64,
    #[serde(default)]
    pub count: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Application {
    pub pk: String,
    pub name: String,
    pub slug: String,
    #[serde(default)]
    pub provider: Option<i64>,
    #[serde(default)]
    pub meta_launch_url: String,
    #[serde(default)]
    pub meta_publisher: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct OAuth2Provider {
    pub pk: i64,
    pub name: String,
    pub authorization_flow: String,
    #[serde(default)]
    pub invalidation_flow: Option<String>,
    #[serde(default)]
    pub property_mappings: Vec<String>,
    #[serde(default)]
    pub client_type: String,
    #[serde(default)]
    pub client_id: String,
    /// Returned in plain text by authentik; held as a secret from the moment it is parsed.
    #[serde(default = "empty_secret")]
    pub client_secret: SecretString,
    #[serde(default)]
    pub redirect_uris: Vec<RedirectUri>,
    #[serde(default)]
    pub signing_key: Option<String>,
    #[serde(default)]
    pub sub_mode: String,
    #[serde(default)]
    pub issuer_mode: String,
    #[serde(default)]
    pub assigned_application_slug: Option<String>,
}

fn empty_secret() -> SecretString {
    SecretString::from(String::new())
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct RedirectUri {
    pub matching_mode: String,
    pub url: String,
    /// authentik ≥ 2026.5 only; `logout` entries are not authorization callbacks.
    #[serde(default, skip_serializing)]
    pub redirect_uri_type: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Flow {
    pub pk: String,
    pub slug: String,
    #[serde(default)]
    pub designation: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ScopeMapping {
    pub pk: String,
    pub name: String,
    #[serde(default)]
    pub scope_name: String,
    #[serde(default)]
    pub expression: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub managed: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CertificateKeyPair {
    pub pk: String,
    pub name: String,
    #[serde(default)]
    pub fingerprint_sha256: Option<String>,
    #[serde(default)]
    pub cert_expiry: Option<String>,
    #[serde(default)]
    pub managed: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SamlProvider {
    pub pk: i64,
    pub name: String,
    pub authorization_flow: String,
    #[serde(default)]
    pub invalidation_flow: Option<String>,
    #[serde(default)]
    pub property_mappings: Vec<String>,
    #[serde(default)]
    pub acs_url: String,
    #[serde(default)]
    pub audience: String,
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub sls_url: String,
    #[serde(default)]
    pub sp_binding: String,
    #[serde(default)]
    pub sls_binding: String,
    #[serde(default)]
    pub signing_kp: Option<String>,
    #[serde(default)]
    pub sign_assertion: bool,
    #[serde(default)]
    pub sign_response: bool,
    #[serde(default)]
    pub name_id_mapping: Option<String>,
    #[serde(default)]
    pub default_name_id_policy: String,
    #[serde(default)]
    pub assigned_application_slug: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SamlPropertyMapping {
    pub pk: String,
    pub name: String,
    #[serde(default)]
    pub saml_name: String,
    #[serde(default)]
    pub friendly_name: Option<String>,
    #[serde(default)]
    pub expression: String,
    #[serde(default)]
    pub managed: Option<String>,
}

/// A proxy provider as `/providers/proxy/` shows it. authentik rewrites its OAuth2 side (client
/// type, signing key, scope mappings, redirect URIs) on every save, so those are not read.
#[derive(Clone, Debug, Deserialize)]
pub struct ProxyProvider {
    pub pk: i64,
    pub name: String,
    pub authorization_flow: String,
    #[serde(default)]
    pub invalidation_flow: Option<String>,
    #[serde(default)]
    pub external_host: String,
    #[serde(default)]
    pub internal_host: String,
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub skip_path_regex: String,
    #[serde(default)]
    pub cookie_domain: String,
    #[serde(default)]
    pub assigned_application_slug: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Outpost {
    pub pk: String,
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub providers: Vec<i64>,
    #[serde(default)]
    pub managed: Option<String>,
}

/// `GET …/view_certificate/`.
#[derive(Clone, Debug, Deserialize)]
pub struct CertificateData {
    pub data: String,
}
