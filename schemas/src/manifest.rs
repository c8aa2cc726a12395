//! `packages/<svc>/manifest.yaml`: the types, their defaults, and the one parser.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::names::{EnvKey, RedirectPath, RelPath, ServiceName, Slug};
use crate::template::{Part, Template, Var};

/// Manifests are small; anything bigger is a mistake or an attack.
pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;

/// One service's SSO declaration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "pma-sso service manifest")]
pub struct Manifest {
    /// Package id; equal to the package directory name. Default slug and subdomain.
    pub name: ServiceName,
    /// Human-readable name shown in authentik (default: `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Public host label: the service answers at `<subdomain>.${DOMAIN}` (default: `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<ServiceName>,
    /// Full public host override, e.g. `"${GRAFANA_HOST}"`; wins over `subdomain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Template>,
    /// How pma-sso and outposts reach the service inside the platform, e.g. `http://grafana:3000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_url: Option<Template>,
    /// The compose service that runs it: target of `exec` deliveries and restarts (default: `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose_service: Option<Slug>,
    /// Also run `verify` (probe the login path against authentik's protocol endpoints) in every
    /// sweep, and record its result (default false; `PMA_SSO_PROBE=all` probes every service).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub probe: bool,
    pub sso: Sso,
}

/// `sso.type` selects one flow; each type carries what that flow needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Sso {
    /// OAuth2 client given explicit authorize/token/userinfo endpoints.
    Oauth(OAuthSso),
    /// OpenID Connect client using discovery and the issuer.
    Oidc(OAuthSso),
    /// SAML service provider.
    Saml(SamlSso),
    /// No native SSO: an authentik proxy provider in front of the service.
    Proxy(ProxySso),
    /// Wiki.js 2.x, configured through its GraphQL API.
    Wikijs(WikijsSso),
    /// Frappe / ERPNext, configured through its REST API (`Social Login Key`).
    Frappe(FrappeSso),
}

/// The six values of `sso.type`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SsoKind {
    Oauth,
    Oidc,
    Saml,
    Proxy,
    Wikijs,
    Frappe,
}

impl SsoKind {
    pub const ALL: [SsoKind; 6] = [
        SsoKind::Oauth,
        SsoKind::Oidc,
        SsoKind::Saml,
        SsoKind::Proxy,
        SsoKind::Wikijs,
        SsoKind::Frappe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SsoKind::Oauth => "oauth",
            SsoKind::Oidc => "oidc",
            SsoKind::Saml => "saml",
            SsoKind::Proxy => "proxy",
            SsoKind::Wikijs => "wikijs",
            SsoKind::Frappe => "frappe",
        }
    }

    fn parse(value: &str) -> Option<SsoKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == value)
    }
}

impl std::fmt::Display for SsoKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthSso {
    /// Callback path(s) on the service's public host; each becomes a strict redirect URI.
    pub redirect_path: RedirectPaths,
    /// True once added; false makes the next sweep run `add`.
    #[serde(default)]
    pub configured: bool,
    /// Repair drift found by a sweep or an authentik webhook with `fix` instead of only
    /// reporting it (default false).
    #[serde(default)]
    pub auto_fix: bool,
    /// authentik application slug (default: `name`). The issuer path depends on it: keep it stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<Slug>,
    #[serde(default)]
    pub client: ClientSpec,
    #[serde(default)]
    pub flows: FlowsSpec,
    /// Custom scope mappings this service needs, shipped with the package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mappings: Vec<ScopeMappingSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliver: Vec<Delivery>,
    /// Compose services to restart after env/file deliveries change (default: `compose_service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<Vec<Slug>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WikijsSso {
    /// Default: `/login/<wikijs.strategy_key>/callback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_path: Option<RedirectPaths>,
    #[serde(default)]
    pub configured: bool,
    /// Repair drift with `fix` instead of only reporting it (default false).
    #[serde(default)]
    pub auto_fix: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<Slug>,
    #[serde(default)]
    pub client: ClientSpec,
    #[serde(default)]
    pub flows: FlowsSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mappings: Vec<ScopeMappingSpec>,
    pub wikijs: WikijsSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliver: Vec<Delivery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<Vec<Slug>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrappeSso {
    /// Default: `/api/method/frappe.integrations.oauth2_logins.custom/<scrub(frappe.provider_name)>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_path: Option<RedirectPaths>,
    #[serde(default)]
    pub configured: bool,
    /// Repair drift with `fix` instead of only reporting it (default false).
    #[serde(default)]
    pub auto_fix: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<Slug>,
    #[serde(default)]
    pub client: ClientSpec,
    #[serde(default)]
    pub flows: FlowsSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mappings: Vec<ScopeMappingSpec>,
    pub frappe: FrappeSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliver: Vec<Delivery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<Vec<Slug>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SamlSso {
    #[serde(default)]
    pub configured: bool,
    /// Repair drift with `fix` instead of only reporting it (default false).
    #[serde(default)]
    pub auto_fix: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<Slug>,
    #[serde(default)]
    pub flows: FlowsSpec,
    pub saml: SamlSpec,
    /// Custom SAML property mappings this service needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mappings: Vec<SamlMappingSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliver: Vec<Delivery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<Vec<Slug>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxySso {
    #[serde(default)]
    pub configured: bool,
    /// Repair drift with `fix` instead of only reporting it (default false).
    #[serde(default)]
    pub auto_fix: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<Slug>,
    #[serde(default)]
    pub flows: FlowsSpec,
    #[serde(default)]
    pub proxy: ProxySpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliver: Vec<Delivery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<Vec<Slug>>,
}

/// One redirect path or several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct RedirectPaths(#[schemars(with = "OneOrMany")] pub Vec<RedirectPath>);

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
enum OneOrMany {
    One(RedirectPath),
    Many(#[schemars(length(min = 1))] Vec<RedirectPath>),
}

impl<'de> Deserialize<'de> for RedirectPaths {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RedirectPaths;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a path such as /oauth2callback, or a non-empty list of paths")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RedirectPaths, E> {
                RedirectPath::parse(v)
                    .map(|p| RedirectPaths(vec![p]))
                    .map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RedirectPaths, A::Error> {
                let mut paths = Vec::new();
                while let Some(path) = seq.next_element::<RedirectPath>()? {
                    paths.push(path);
                }
                if paths.is_empty() {
                    return Err(serde::de::Error::custom(
                        "the list of redirect paths is empty",
                    ));
                }
                Ok(RedirectPaths(paths))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The OAuth2/OIDC client authentik issues for the service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// `.env` key of the client id (default `<SVC>_SSO_CLIENT_ID`, `-` mapped to `_`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_env: Option<EnvKey>,
    /// `.env` key of the client secret (default `<SVC>_SSO_CLIENT_SECRET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<EnvKey>,
    /// Scopes the provider offers: authentik's managed ones (openid, email, profile,
    /// offline_access, entitlements, goauthentik.io/api) or a `scope_name` from `mappings`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Name of the certificate keypair that signs tokens; `null` means HS256 with the secret.
    #[serde(default = "default_signing_key")]
    pub signing_key: Option<String>,
    #[serde(default)]
    pub sub_mode: SubMode,
}

impl Default for ClientSpec {
    fn default() -> Self {
        ClientSpec {
            id_env: None,
            secret_env: None,
            scopes: default_scopes(),
            signing_key: default_signing_key(),
            sub_mode: SubMode::default(),
        }
    }
}

pub const SELF_SIGNED_KEYPAIR: &str = "authentik Self-signed Certificate";

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}

fn default_signing_key() -> Option<String> {
    Some(SELF_SIGNED_KEYPAIR.into())
}

/// authentik's managed scope mappings, by `scope_name`, with their `managed` key.
/// authentik's managed SAML property mappings, by the last segment of their `managed` key
/// (`goauthentik.io/providers/saml/<name>`); `sso.saml.attributes` may name them directly.
pub const MANAGED_SAML_MAPPINGS: [&str; 7] = [
    "upn",
    "name",
    "email",
    "username",
    "uid",
    "groups",
    "ms-windowsaccountname",
];

pub const MANAGED_SCOPES: [(&str, &str); 6] = [
    ("openid", "goauthentik.io/providers/oauth2/scope-openid"),
    ("email", "goauthentik.io/providers/oauth2/scope-email"),
    ("profile", "goauthentik.io/providers/oauth2/scope-profile"),
    (
        "offline_access",
        "goauthentik.io/providers/oauth2/scope-offline_access",
    ),
    (
        "entitlements",
        "goauthentik.io/providers/oauth2/scope-entitlements",
    ),
    (
        "goauthentik.io/api",
        "goauthentik.io/providers/oauth2/scope-authentik_api",
    ),
];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubMode {
    #[default]
    HashedUserId,
    UserId,
    UserUuid,
    UserUsername,
    UserEmail,
    UserUpn,
}

impl SubMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SubMode::HashedUserId => "hashed_user_id",
            SubMode::UserId => "user_id",
            SubMode::UserUuid => "user_uuid",
            SubMode::UserUsername => "user_username",
            SubMode::UserEmail => "user_email",
            SubMode::UserUpn => "user_upn",
        }
    }
}

/// authentik flows the provider uses, by slug.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowsSpec {
    #[serde(default = "default_authorization_flow")]
    pub authorization: Slug,
    #[serde(default = "default_invalidation_flow")]
    pub invalidation: Slug,
}

impl Default for FlowsSpec {
    fn default() -> Self {
        FlowsSpec {
            authorization: default_authorization_flow(),
            invalidation: default_invalidation_flow(),
        }
    }
}

fn default_authorization_flow() -> Slug {
    Slug::try_from("default-provider-authorization-implicit-consent".to_owned())
        .unwrap_or_else(|_| unreachable!("constant slug is valid"))
}

fn default_invalidation_flow() -> Slug {
    Slug::try_from("default-provider-invalidation-flow".to_owned())
        .unwrap_or_else(|_| unreachable!("constant slug is valid"))
}

/// A custom scope mapping (Python expression evaluated by authentik).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeMappingSpec {
    /// Unique name in authentik; prefix it with the service name.
    pub name: String,
    /// The scope a client requests to receive these claims.
    pub scope_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The expression inline; or give `expression_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// A file in the package holding the expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression_file: Option<RelPath>,
}

/// A custom SAML property mapping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SamlMappingSpec {
    pub name: String,
    /// The SAML attribute name.
    pub saml_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friendly_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression_file: Option<RelPath>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SamlSpec {
    /// Assertion consumer service path on the service's host.
    pub acs_path: RedirectPath,
    /// Audience / SP entity id path (default: none, no AudienceRestriction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience_path: Option<RedirectPath>,
    /// Single logout path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sls_path: Option<RedirectPath>,
    #[serde(default = "default_post")]
    pub sp_binding: SamlBinding,
    #[serde(default)]
    pub sls_binding: SamlBinding,
    /// IdP entity id (default `{{auth.saml_metadata}}`); always sent explicitly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<Template>,
    /// Keypair that signs assertions; authentik signs nothing without one.
    #[serde(default = "default_saml_signing_key")]
    pub signing_key: String,
    #[serde(default = "yes")]
    pub sign_assertion: bool,
    #[serde(default)]
    pub sign_response: bool,
    /// Name of a mapping in `mappings` that produces the NameID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_id_mapping: Option<String>,
    #[serde(default)]
    pub name_id_policy: NameIdPolicy,
    /// Attribute mappings: names from `mappings`, or authentik's managed SAML mappings
    /// (upn, name, email, username, uid, groups, ms-windowsaccountname).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
}

fn default_saml_signing_key() -> String {
    SELF_SIGNED_KEYPAIR.into()
}

fn yes() -> bool {
    true
}

fn default_post() -> SamlBinding {
    SamlBinding::Post
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SamlBinding {
    #[default]
    Redirect,
    Post,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NameIdPolicy {
    #[default]
    Email,
    Unspecified,
    Persistent,
    Transient,
}

impl NameIdPolicy {
    pub fn urn(self) -> &'static str {
        match self {
            NameIdPolicy::Email => "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            NameIdPolicy::Unspecified => "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
            NameIdPolicy::Persistent => "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            NameIdPolicy::Transient => "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxySpec {
    #[serde(default)]
    pub mode: ProxyMode,
    /// Where the outpost forwards to; required for `mode: proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_url: Option<Template>,
    /// Paths that stay unauthenticated (regexes, matched by authentik).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_path_regex: Vec<String>,
    /// Outpost name (default: authentik's embedded outpost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outpost: Option<String>,
    /// Cookie domain, for `forward_domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_domain: Option<Template>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProxyMode {
    Proxy,
    #[default]
    ForwardSingle,
    ForwardDomain,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WikijsSpec {
    /// Wiki.js GraphQL endpoint, e.g. `http://wikijs:3000/graphql`.
    pub graphql_url: Template,
    #[serde(default = "default_wikijs_api_key_env")]
    pub api_key_env: EnvKey,
    /// `.env` keys of the admin login, used once to mint an API key when none is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_email_env: Option<EnvKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password_env: Option<EnvKey>,
    /// Our strategy key; fixes the callback to `/login/<key>/callback`.
    #[serde(default = "default_provider_name")]
    pub strategy_key: Slug,
    #[serde(default = "default_display")]
    pub display_name: String,
    #[serde(default = "yes")]
    pub self_registration: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auto_enroll_groups: Vec<u32>,
}

fn default_wikijs_api_key_env() -> EnvKey {
    EnvKey::new_unchecked_from_valid("WIKIJS_", "API_KEY")
}

fn default_provider_name() -> Slug {
    Slug::try_from("authentik".to_owned()).unwrap_or_else(|_| unreachable!("constant slug"))
}

fn default_display() -> String {
    "authentik".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrappeSpec {
    /// Frappe base URL reached by pma-sso, e.g. `http://erpnext:8000`.
    pub api_url: Template,
    pub api_key_env: EnvKey,
    pub api_secret_env: EnvKey,
    /// The `Social Login Key` provider name. Frappe names the document `scrub(provider_name)`
    /// (lower case, `-` and spaces as `_`), and that name is the last segment of the callback.
    #[serde(default = "default_provider_name")]
    pub provider_name: Slug,
    #[serde(default = "default_user_id_property")]
    pub user_id_property: String,
    #[serde(default = "default_sign_ups")]
    pub sign_ups: String,
}

impl FrappeSpec {
    /// The document name Frappe gives the `Social Login Key`: `frappe.scrub(provider_name)`.
    pub fn doc_name(&self) -> String {
        self.provider_name
            .as_str()
            .replace([' ', '-'], "_")
            .to_lowercase()
    }
}

fn default_user_id_property() -> String {
    "sub".into()
}

fn default_sign_ups() -> String {
    "Allow".into()
}

/// How native settings reach the service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Delivery {
    /// Render variables into an env file the service's compose entry loads (`env_file`).
    Env(EnvDelivery),
    /// Render a template file from the package into a file the service reads.
    File(FileDelivery),
    /// Run an idempotent command in the service's container.
    Exec(ExecDelivery),
    /// Write settings through the service's HTTP settings API and read them back to check.
    Http(HttpDelivery),
}

impl Delivery {
    pub fn kind(&self) -> &'static str {
        match self {
            Delivery::Env(_) => "env",
            Delivery::File(_) => "file",
            Delivery::Exec(_) => "exec",
            Delivery::Http(_) => "http",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvDelivery {
    /// Output file, relative to the package directory (default `.sso.env`).
    #[serde(default = "default_env_path")]
    pub path: RelPath,
    pub vars: BTreeMap<EnvKey, Template>,
}

fn default_env_path() -> RelPath {
    RelPath::try_from(".sso.env".to_owned()).unwrap_or_else(|_| unreachable!("constant path"))
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileDelivery {
    /// Template in the package directory.
    pub template: RelPath,
    /// Output file, relative to the package directory.
    pub path: RelPath,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecDelivery {
    /// Compose service to run in (default: the manifest's `compose_service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Slug>,
    /// User to run as inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The command. It may not contain secrets (argv is visible in process lists): pass them
    /// through `env`.
    #[schemars(length(min = 1))]
    pub argv: Vec<Template>,
    /// Environment passed to the command; the place for secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<EnvKey, Template>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpDelivery {
    /// URL listing the settings (GET returns a JSON array of objects).
    pub list_url: Template,
    /// URL of one setting; `{{id}}`-free: the id is appended as a path segment.
    pub item_url: Template,
    /// Field of a listed object that names the setting.
    #[serde(default = "default_key_field")]
    pub key_field: String,
    /// Field of a listed object that holds its id.
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// JSON pointer of the value inside a setting object, e.g. `/state_current/value`.
    pub value_pointer: String,
    #[serde(default = "default_method")]
    pub method: HttpMethod,
    /// Request headers, e.g. `Authorization: "Token token={{secret:ZAMMAD_API_TOKEN}}"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Template>,
    /// Setting name → desired value; strings inside are templates.
    pub settings: BTreeMap<String, serde_json::Value>,
}

fn default_key_field() -> String {
    "name".into()
}

fn default_id_field() -> String {
    "id".into()
}

fn default_method() -> HttpMethod {
    HttpMethod::Put
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Put,
    Patch,
    Post,
}

// ---------------------------------------------------------------------------------------------
// Derived values every flow needs.

/// The parts of an OAuth2-provider-backed type (oauth, oidc, wikijs, frappe).
pub struct OAuthView<'a> {
    pub redirect_paths: Vec<RedirectPath>,
    pub client: &'a ClientSpec,
    pub mappings: &'a [ScopeMappingSpec],
}

impl Manifest {
    pub fn kind(&self) -> SsoKind {
        match &self.sso {
            Sso::Oauth(_) => SsoKind::Oauth,
            Sso::Oidc(_) => SsoKind::Oidc,
            Sso::Saml(_) => SsoKind::Saml,
            Sso::Proxy(_) => SsoKind::Proxy,
            Sso::Wikijs(_) => SsoKind::Wikijs,
            Sso::Frappe(_) => SsoKind::Frappe,
        }
    }

    pub fn display_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(self.name.as_str())
    }

    pub fn slug(&self) -> Slug {
        let explicit = match &self.sso {
            Sso::Oauth(s) | Sso::Oidc(s) => s.slug.as_ref(),
            Sso::Saml(s) => s.slug.as_ref(),
            Sso::Proxy(s) => s.slug.as_ref(),
            Sso::Wikijs(s) => s.slug.as_ref(),
            Sso::Frappe(s) => s.slug.as_ref(),
        };
        explicit.cloned().unwrap_or_else(|| self.name.as_slug())
    }

    pub fn configured(&self) -> bool {
        match &self.sso {
            Sso::Oauth(s) | Sso::Oidc(s) => s.configured,
            Sso::Saml(s) => s.configured,
            Sso::Proxy(s) => s.configured,
            Sso::Wikijs(s) => s.configured,
            Sso::Frappe(s) => s.configured,
        }
    }

    /// Whether drift found by a trigger is repaired (`fix`) rather than only reported.
    pub fn auto_fix(&self) -> bool {
        match &self.sso {
            Sso::Oauth(s) | Sso::Oidc(s) => s.auto_fix,
            Sso::Saml(s) => s.auto_fix,
            Sso::Proxy(s) => s.auto_fix,
            Sso::Wikijs(s) => s.auto_fix,
            Sso::Frappe(s) => s.auto_fix,
        }
    }

    pub fn flows(&self) -> &FlowsSpec {
        match &self.sso {
            Sso::Oauth(s) | Sso::Oidc(s) => &s.flows,
            Sso::Saml(s) => &s.flows,
            Sso::Proxy(s) => &s.flows,
            Sso::Wikijs(s) => &s.flows,
            Sso::Frappe(s) => &s.flows,
        }
    }

    pub fn deliveries(&self) -> &[Delivery] {
        match &self.sso {
            Sso::Oauth(s) | Sso::Oidc(s) => &s.deliver,
            Sso::Saml(s) => &s.deliver,
            Sso::Proxy(s) => &s.deliver,
            Sso::Wikijs(s) => &s.deliver,
            Sso::Frappe(s) => &s.deliver,
        }
    }

    pub fn compose_service(&self) -> Slug {
        self.compose_service
            .clone()
            .unwrap_or_else(|| self.name.as_slug())
    }

    /// Compose services to restart when env/file deliveries change.
    pub fn restart(&self) -> Vec<Slug> {
        let explicit = match &self.sso {
            Sso::Oauth(s) | Sso::Oidc(s) => s.restart.as_ref(),
            Sso::Saml(s) => s.restart.as_ref(),
            Sso::Proxy(s) => s.restart.as_ref(),
            Sso::Wikijs(s) => s.restart.as_ref(),
            Sso::Frappe(s) => s.restart.as_ref(),
        };
        explicit
            .cloned()
            .unwrap_or_else(|| vec![self.compose_service()])
    }

    /// The OAuth2 client side, for the four types backed by an OAuth2 provider.
    pub fn oauth(&self) -> Option<OAuthView<'_>> {
        match &self.sso {
            Sso::Oauth(s) | Sso::Oidc(s) => Some(OAuthView {
                redirect_paths: s.redirect_path.0.clone(),
                client: &s.client,
                mappings: &s.mappings,
            }),
            Sso::Wikijs(s) => Some(OAuthView {
                redirect_paths: s.redirect_path.as_ref().map_or_else(
                    || derived_path(&format!("/login/{}/callback", s.wikijs.strategy_key)),
                    |p| p.0.clone(),
                ),
                client: &s.client,
                mappings: &s.mappings,
            }),
            Sso::Frappe(s) => Some(OAuthView {
                redirect_paths: s.redirect_path.as_ref().map_or_else(
                    || {
                        derived_path(&format!(
                            "/api/method/frappe.integrations.oauth2_logins.custom/{}",
                            s.frappe.doc_name()
                        ))
                    },
                    |p| p.0.clone(),
                ),
                client: &s.client,
                mappings: &s.mappings,
            }),
            Sso::Saml(_) | Sso::Proxy(_) => None,
        }
    }

    pub fn client_id_env(&self) -> Option<EnvKey> {
        let view = self.oauth()?;
        Some(view.client.id_env.clone().unwrap_or_else(|| {
            EnvKey::new_unchecked_from_valid(&self.name.env_prefix(), "_SSO_CLIENT_ID")
        }))
    }

    pub fn client_secret_env(&self) -> Option<EnvKey> {
        let view = self.oauth()?;
        Some(view.client.secret_env.clone().unwrap_or_else(|| {
            EnvKey::new_unchecked_from_valid(&self.name.env_prefix(), "_SSO_CLIENT_SECRET")
        }))
    }
}

fn derived_path(path: &str) -> Vec<RedirectPath> {
    // Built from a slug, so always a valid path.
    RedirectPath::parse(path)
        .map(|p| vec![p])
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Parsing.

/// A manifest that cannot be used, naming the file, the field and the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {field}: {problem}", file.display())]
pub struct ManifestError {
    pub file: PathBuf,
    /// Dotted path of the field (`sso.client.scopes[1]`), or `(yaml)` / `(file)` for the whole file.
    pub field: String,
    pub problem: String,
}

fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    // A manifest has a few hundred nodes, and none of the bundled ones uses an alias. Replay
    // costs a few microseconds per event in a debug build, so the cap also bounds the time a
    // bomb takes to be refused (~10 ms at 2,000 events).
    let mut aliases = serde_saphyr::options::AliasLimits::default();
    aliases.max_total_replayed_events = 2_000;
    aliases.max_replay_stack_depth = 16;
    aliases.max_alias_expansions_per_anchor = 100;
    options.alias_limits = aliases;
    options.with_snippet = false;
    options
}

/// Parse and check one manifest. `file` is only used to name the manifest in errors.
pub fn parse_manifest(file: &Path, text: &str) -> Result<Manifest, ManifestError> {
    let err = |field: &str, problem: String| ManifestError {
        file: file.to_owned(),
        // An empty key (`"": x`) has an empty path: name the document instead.
        field: if field.is_empty() {
            "(document)".to_owned()
        } else {
            field.to_owned()
        },
        problem: clipped(problem),
    };
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(err(
            "(file)",
            format!(
                "the manifest is {} bytes; the limit is {MAX_MANIFEST_BYTES}",
                text.len()
            ),
        ));
    }
    let value: serde_json::Value = serde_saphyr::from_str_with_options(text, yaml_options())
        .map_err(|e| err("(yaml)", yaml_problem(&e)))?;
    let Some(top) = value.as_object() else {
        return Err(err(
            "(document)",
            "expected a mapping with `name:` and `sso:` at the top level".into(),
        ));
    };
    if let Some(sso) = top.get("sso") {
        check_sso_type(sso).map_err(|(field, problem)| err(field, problem))?;
    }
    let manifest: Manifest = serde_path_to_error::deserialize(&value).map_err(|e| {
        let (field, problem) = locate(&value, &e);
        err(&field, problem)
    })?;
    validate(&manifest, text).map_err(|(field, problem)| err(&field, problem))?;
    Ok(manifest)
}

/// serde quotes the offending value in its messages (`invalid type: string "…"`): a long one,
/// such as a script put in the wrong field, would make the error a page long.
const MAX_PROBLEM_CHARS: usize = 300;

fn clipped(problem: String) -> String {
    if problem.chars().count() <= MAX_PROBLEM_CHARS {
        return problem;
    }
    let cut: String = problem.chars().take(MAX_PROBLEM_CHARS).collect();
    format!("{cut}…")
}

/// The YAML library's message, in our words where it names its own settings.
fn yaml_problem(error: &serde_saphyr::Error) -> String {
    match error {
        serde_saphyr::Error::DuplicateMappingKey { key, location } => {
            let key = key.as_deref().map_or_else(
                || "a key".to_owned(),
                |k| format!("key `{}`", k.escape_debug()),
            );
            format!(
                "{key} appears twice in the same mapping (again at line {}, column {}); keep one",
                location.line(),
                location.column()
            )
        }
        other => one_line(&other.to_string()),
    }
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_sso_type(sso: &serde_json::Value) -> Result<(), (&'static str, String)> {
    let expected = SsoKind::ALL.map(SsoKind::as_str).join(", ");
    let Some(map) = sso.as_object() else {
        return Err(("sso", "expected a mapping with a `type:` key".into()));
    };
    match map.get("type") {
        None => Err(("sso.type", format!("missing; expected one of {expected}"))),
        Some(serde_json::Value::String(t)) if SsoKind::parse(t).is_some() => Ok(()),
        Some(serde_json::Value::String(t)) => Err((
            "sso.type",
            format!(
                "unknown type `{}`; expected one of {expected}",
                t.escape_debug()
            ),
        )),
        Some(other) => Err((
            "sso.type",
            format!("expected a string, found {}", json_kind(other)),
        )),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a mapping",
    }
}

/// serde buffers an internally tagged enum before deserialising the variant, so the error path
/// stops at `sso`. Re-run the variant on its own to name the exact field.
fn locate(
    value: &serde_json::Value,
    error: &serde_path_to_error::Error<serde_json::Error>,
) -> (String, String) {
    let path = error.path().to_string();
    let problem = one_line(&error.inner().to_string());
    if path != "sso" {
        return (path, problem);
    }
    let Some(sso) = value.get("sso").and_then(|s| s.as_object()) else {
        return (path, problem);
    };
    let mut body = sso.clone();
    let kind = body
        .remove("type")
        .and_then(|t| t.as_str().and_then(SsoKind::parse));
    let body = serde_json::Value::Object(body);
    fn inner<T: serde::de::DeserializeOwned>(body: &serde_json::Value) -> Option<(String, String)> {
        serde_path_to_error::deserialize::<_, T>(body)
            .err()
            .map(|e| {
                (
                    format!("sso.{}", e.path()),
                    one_line(&e.inner().to_string()),
                )
            })
    }
    let found = match kind {
        Some(SsoKind::Oauth | SsoKind::Oidc) => inner::<OAuthSso>(&body),
        Some(SsoKind::Saml) => inner::<SamlSso>(&body),
        Some(SsoKind::Proxy) => inner::<ProxySso>(&body),
        Some(SsoKind::Wikijs) => inner::<WikijsSso>(&body),
        Some(SsoKind::Frappe) => inner::<FrappeSso>(&body),
        None => None,
    };
    found
        .map(|(field, problem)| (field.replace("sso..", "sso"), problem))
        .unwrap_or((path, problem))
}

/// Checks that span several fields, which serde cannot express.
fn validate(manifest: &Manifest, _text: &str) -> Result<(), (String, String)> {
    let slug = manifest.slug();
    if slug.as_str().parse::<Slug>().is_err() {
        return Err((
            "name".into(),
            format!("`{slug}` is a slug authentik reserves; set sso.slug"),
        ));
    }
    if let Some(view) = manifest.oauth() {
        let custom: BTreeSet<&str> = view
            .mappings
            .iter()
            .map(|m| m.scope_name.as_str())
            .collect();
        for (i, scope) in view.client.scopes.iter().enumerate() {
            let managed = MANAGED_SCOPES.iter().any(|(name, _)| name == scope);
            if !managed && !custom.contains(scope.as_str()) {
                return Err((
                    format!("sso.client.scopes[{i}]"),
                    format!(
                        "unknown scope `{}`: not one of authentik's managed scopes ({}) nor a scope_name in sso.mappings",
                        scope.escape_debug(),
                        MANAGED_SCOPES.map(|(n, _)| n).join(", ")
                    ),
                ));
            }
        }
        for (i, mapping) in view.mappings.iter().enumerate() {
            check_expression(
                &format!("sso.mappings[{i}]"),
                mapping.expression.is_some(),
                mapping.expression_file.is_some(),
            )?;
        }
    }
    match &manifest.sso {
        Sso::Saml(saml) => {
            let names: BTreeSet<&str> = saml.mappings.iter().map(|m| m.name.as_str()).collect();
            for (i, mapping) in saml.mappings.iter().enumerate() {
                check_expression(
                    &format!("sso.mappings[{i}]"),
                    mapping.expression.is_some(),
                    mapping.expression_file.is_some(),
                )?;
            }
            for (i, attribute) in saml.saml.attributes.iter().enumerate() {
                if !names.contains(attribute.as_str())
                    && !MANAGED_SAML_MAPPINGS.contains(&attribute.as_str())
                {
                    return Err((
                        format!("sso.saml.attributes[{i}]"),
                        format!(
                            "`{}` is neither the name of a mapping in sso.mappings nor one of authentik's SAML mappings ({})",
                            attribute.escape_debug(),
                            MANAGED_SAML_MAPPINGS.join(", ")
                        ),
                    ));
                }
            }
            if let Some(name_id) = &saml.saml.name_id_mapping
                && !names.contains(name_id.as_str())
            {
                return Err((
                    "sso.saml.name_id_mapping".into(),
                    format!(
                        "`{}` is not the name of a mapping in sso.mappings",
                        name_id.escape_debug()
                    ),
                ));
            }
        }
        Sso::Proxy(proxy) => {
            if proxy.proxy.mode == ProxyMode::Proxy && proxy.proxy.internal_url.is_none() {
                return Err((
                    "sso.proxy.internal_url".into(),
                    "required when mode is `proxy`: the outpost needs to know where to forward"
                        .into(),
                ));
            }
        }
        Sso::Oauth(_) | Sso::Oidc(_) | Sso::Wikijs(_) | Sso::Frappe(_) => {}
    }
    for (i, delivery) in manifest.deliveries().iter().enumerate() {
        check_cert_placement(i, delivery)?;
        match delivery {
            Delivery::Exec(exec) => {
                if exec.argv.is_empty() {
                    return Err((format!("sso.deliver[{i}].exec.argv"), "is empty".into()));
                }
                if let Some(j) = exec.argv.iter().position(|a| a.has_secret()) {
                    return Err((
                        format!("sso.deliver[{i}].exec.argv[{j}]"),
                        "holds a secret placeholder; command lines are visible to every process, pass secrets through `env:`".into(),
                    ));
                }
            }
            Delivery::Http(http) => {
                if !http.value_pointer.starts_with('/') {
                    return Err((
                        format!("sso.deliver[{i}].http.value_pointer"),
                        "must be a JSON pointer starting with '/'".into(),
                    ));
                }
                for (name, value) in &http.settings {
                    check_json_templates(value).map_err(|problem| {
                        (format!("sso.deliver[{i}].http.settings.{name}"), problem)
                    })?;
                }
            }
            Delivery::Env(_) | Delivery::File(_) => {}
        }
    }
    Ok(())
}

/// `{{auth.saml_cert_pem}}` must be a whole http setting value: checks compare it with the
/// signing certificate by fingerprint, because reading the PEM from authentik is logged as a
/// secret view and is left to add and fix.
fn check_cert_placement(i: usize, delivery: &Delivery) -> Result<(), (String, String)> {
    let problem = "`{{auth.saml_cert_pem}}` can only be the whole value of an http setting, where checks compare it by fingerprint; use {{auth.saml_cert_fingerprint}} here".to_owned();
    let holds = |t: &Template| t.vars().any(|v| v == Var::AuthSamlCertPem);
    let first = |templates: Vec<(String, &Template)>| {
        templates
            .into_iter()
            .find(|(_, t)| holds(t))
            .map(|(field, _)| (format!("sso.deliver[{i}].{field}"), problem.clone()))
    };
    let found = match delivery {
        Delivery::Env(env) => first(
            env.vars
                .iter()
                .map(|(k, t)| (format!("env.vars.{k}"), t))
                .collect(),
        ),
        Delivery::File(_) => None,
        Delivery::Exec(exec) => first(
            exec.argv
                .iter()
                .enumerate()
                .map(|(j, t)| (format!("exec.argv[{j}]"), t))
                .chain(exec.env.iter().map(|(k, t)| (format!("exec.env.{k}"), t)))
                .collect(),
        ),
        Delivery::Http(http) => first(
            [
                ("http.list_url".to_owned(), &http.list_url),
                ("http.item_url".to_owned(), &http.item_url),
            ]
            .into_iter()
            .chain(
                http.headers
                    .iter()
                    .map(|(k, t)| (format!("http.headers.{k}"), t)),
            )
            .collect(),
        )
        .or_else(|| {
            http.settings.iter().find_map(|(name, value)| {
                misplaced_cert(value).then(|| {
                    (
                        format!("sso.deliver[{i}].http.settings.{name}"),
                        problem.clone(),
                    )
                })
            })
        }),
    };
    found.map_or(Ok(()), Err)
}

fn misplaced_cert(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => Template::parse(s).is_ok_and(|t| {
            t.vars().any(|v| v == Var::AuthSamlCertPem)
                && t.parts() != [Part::Var(Var::AuthSamlCertPem)]
        }),
        serde_json::Value::Array(items) => items.iter().any(misplaced_cert),
        serde_json::Value::Object(map) => map.values().any(misplaced_cert),
        _ => false,
    }
}

fn check_expression(field: &str, inline: bool, file: bool) -> Result<(), (String, String)> {
    match (inline, file) {
        (true, false) | (false, true) => Ok(()),
        (false, false) => Err((
            field.to_owned(),
            "needs `expression` or `expression_file`".into(),
        )),
        (true, true) => Err((
            field.to_owned(),
            "give either `expression` or `expression_file`, not both".into(),
        )),
    }
}

fn check_json_templates(value: &serde_json::Value) -> Result<(), String> {
    match value {
        serde_json::Value::String(s) => Template::parse(s).map(|_| ()),
        serde_json::Value::Array(items) => items.iter().try_for_each(check_json_templates),
        serde_json::Value::Object(map) => map.values().try_for_each(check_json_templates),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Loading the packages directory.

/// A parsed manifest and where it lives.
#[derive(Clone, Debug)]
pub struct Package {
    pub dir: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
}

pub const MANIFEST_FILE: &str = "manifest.yaml";

/// Read one package's manifest from `<packages>/<name>/manifest.yaml`.
pub fn load_package(packages: &Path, name: &str) -> Result<Package, ManifestError> {
    let dir = packages.join(name);
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = read_manifest_text(&manifest_path)?;
    let manifest = parse_manifest(&manifest_path, &text)?;
    if manifest.name.as_str() != name {
        return Err(ManifestError {
            file: manifest_path,
            field: "name".into(),
            problem: format!(
                "is `{}` but the package directory is `{}`; they must match",
                manifest.name,
                name.escape_debug()
            ),
        });
    }
    Ok(Package {
        dir,
        manifest_path,
        manifest,
    })
}

fn read_manifest_text(path: &Path) -> Result<String, ManifestError> {
    let err = |problem: String| ManifestError {
        file: path.to_owned(),
        field: "(file)".into(),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read: {e}")))?;
    if meta.len() > MAX_MANIFEST_BYTES as u64 {
        return Err(err(format!(
            "the manifest is {} bytes; the limit is {MAX_MANIFEST_BYTES}",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|_| err("is not valid UTF-8".into()))
}

/// Every package under `packages`, sorted by name. Each entry is the package or the reason it
/// cannot be used, so one broken manifest never hides the others. Conflicts between packages
/// (two claiming one authentik slug or one `.env` key) are reported on the later package.
pub fn load_packages(
    packages: &Path,
) -> Result<Vec<Result<Package, ManifestError>>, std::io::Error> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(packages)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() && entry.path().join(MANIFEST_FILE).exists() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let mut slugs: BTreeMap<String, String> = BTreeMap::new();
    let mut env_keys: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let loaded = load_package(packages, &name).and_then(|package| {
            claim_unique(&package, &mut slugs, &mut env_keys)?;
            Ok(package)
        });
        out.push(loaded);
    }
    Ok(out)
}

fn claim_unique(
    package: &Package,
    slugs: &mut BTreeMap<String, String>,
    env_keys: &mut BTreeMap<String, String>,
) -> Result<(), ManifestError> {
    let m = &package.manifest;
    let conflict = |field: &str, what: String, other: &str| ManifestError {
        file: package.manifest_path.clone(),
        field: field.into(),
        problem: format!("{what} is already claimed by package `{other}`"),
    };
    let slug = m.slug().to_string();
    if let Some(other) = slugs.get(&slug) {
        return Err(conflict(
            "sso.slug",
            format!("authentik slug `{slug}`"),
            other,
        ));
    }
    let keys: Vec<EnvKey> = [m.client_id_env(), m.client_secret_env()]
        .into_iter()
        .flatten()
        .collect();
    for key in &keys {
        if let Some(other) = env_keys.get(key.as_str()) {
            return Err(conflict("sso.client", format!(".env key `{key}`"), other));
        }
    }
    slugs.insert(slug, m.name.to_string());
    for key in keys {
        env_keys.insert(key.to_string(), m.name.to_string());
    }
    Ok(())
}

/// The JSON Schema of a manifest, as committed under `schemas/manifest.schema.json`.
pub fn manifest_json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Manifest);
    serde_json::to_value(&schema).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod duplicate_key_tests {
    use super::*;

    #[test]
    fn a_duplicate_key_is_named_in_our_words_not_the_yaml_librarys() {
        let text = "name: grafana\nsso:\n  type: oidc\n  type: oauth\n  redirect_path: /cb\n";
        let err =
            parse_manifest(Path::new("packages/grafana/manifest.yaml"), text).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("key `type` appears twice in the same mapping (again at line 4"),
            "{text}"
        );
        assert!(!text.contains("DuplicateKeyPolicy"), "{text}");
    }
}
