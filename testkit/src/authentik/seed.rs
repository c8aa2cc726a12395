//! The objects a fresh authentik 2026.2.2 has before anyone touches it: the default flows
//! (`blueprints/default/`), the managed scope mappings (`blueprints/system/providers-oauth2.yaml`
//! and `providers-proxy.yaml`), the two built-in keypairs (`authentik/crypto/apps.py`), the
//! embedded outpost (`authentik/outposts/apps.py`) and the bootstrap admin.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// `(fingerprint_sha256, fingerprint_sha1)` of a DER certificate the way authentik stores them:
/// lowercase hex pairs joined by `:` (`hexlify(cert.fingerprint(SHA256()), ":")`).
pub fn fingerprints(der: &[u8]) -> (String, String) {
    (
        colon_hex(&Sha256::digest(der)),
        colon_hex(&Sha1::digest(der)),
    )
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 3339 UTC with seconds precision (`2027-11-29T13:36:05Z`), as DRF renders datetimes.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let days = i64::try_from(secs / 86_400).unwrap_or_default();
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

pub(crate) fn new_uuid() -> String {
    Uuid::new_v4().to_string()
}

fn flow(
    slug: &str,
    name: &str,
    title: &str,
    designation: &str,
    authentication: &str,
    stages: usize,
) -> Value {
    json!({
        "pk": new_uuid(),
        "policybindingmodel_ptr_id": new_uuid(),
        "name": name,
        "slug": slug,
        "title": title,
        "designation": designation,
        "background": "",
        "background_url": "/static/dist/assets/images/flow_background.jpg",
        "background_themed_urls": null,
        "stages": (0..stages).map(|_| new_uuid()).collect::<Vec<_>>(),
        "policies": [],
        "cache_count": 0,
        "policy_engine_mode": "any",
        "compatibility_mode": false,
        "export_url": format!("/api/v3/flows/instances/{slug}/export/"),
        "layout": "stacked",
        "denied_action": "message_continue",
        "authentication": authentication,
    })
}

pub(crate) fn flows() -> Vec<Value> {
    vec![
        flow(
            "default-authentication-flow",
            "Welcome to authentik!",
            "Welcome to authentik!",
            "authentication",
            "none",
            3,
        ),
        flow(
            "default-invalidation-flow",
            "Logout",
            "Default Invalidation Flow",
            "invalidation",
            "none",
            1,
        ),
        flow(
            "default-provider-authorization-explicit-consent",
            "Authorize Application",
            "Redirecting to %(app)s",
            "authorization",
            "require_authenticated",
            1,
        ),
        flow(
            "default-provider-authorization-implicit-consent",
            "Authorize Application",
            "Redirecting to %(app)s",
            "authorization",
            "require_authenticated",
            0,
        ),
        flow(
            "default-provider-invalidation-flow",
            "Logged out of application",
            "You've logged out of %(app)s.",
            "invalidation",
            "none",
            0,
        ),
    ]
}

pub(crate) const SCOPE_MAPPING_META: [(&str, &str); 4] = [
    ("component", "ak-property-mapping-provider-scope-form"),
    ("verbose_name", "Scope Mapping"),
    ("verbose_name_plural", "Scope Mappings"),
    ("meta_model_name", "authentik_providers_oauth2.scopemapping"),
];

pub(crate) fn scope_mapping(
    managed: Option<&str>,
    name: &str,
    scope_name: &str,
    description: &str,
    expression: &str,
) -> Map<String, Value> {
    let mut mapping = Map::new();
    mapping.insert("pk".into(), json!(new_uuid()));
    mapping.insert("managed".into(), json!(managed));
    mapping.insert("name".into(), json!(name));
    mapping.insert("expression".into(), json!(expression));
    mapping.insert("scope_name".into(), json!(scope_name));
    mapping.insert("description".into(), json!(description));
    for (key, value) in SCOPE_MAPPING_META {
        mapping.insert(key.into(), json!(value));
    }
    mapping
}

pub(crate) fn scope_mappings() -> Vec<Map<String, Value>> {
    const OAUTH: &str = "goauthentik.io/providers/oauth2/scope-";
    let m = |suffix: &str| format!("{OAUTH}{suffix}");
    vec![
        scope_mapping(
            Some(&m("openid")),
            "authentik default OAuth Mapping: OpenID 'openid'",
            "openid",
            "",
            "# This scope is required by the OpenID-spec, and must as such exist in authentik.\n\
             # The scope by itself does not grant any information\nreturn {}",
        ),
        scope_mapping(
            Some(&m("email")),
            "authentik default OAuth Mapping: OpenID 'email'",
            "email",
            "Email address",
            "return {\n    \"email\": request.user.email,\n    \"email_verified\": False\n}",
        ),
        scope_mapping(
            Some(&m("profile")),
            "authentik default OAuth Mapping: OpenID 'profile'",
            "profile",
            "General Profile Information",
            "return {\n    # Because authentik only saves the user's full name, and has no concept of first and last names,\n    \
             # the full name is used as given name.\n    \
             # You can override this behaviour in custom mappings, i.e. `request.user.name.split(\" \")`\n    \
             \"name\": request.user.name,\n    \"given_name\": request.user.name,\n    \
             \"preferred_username\": request.user.username,\n    \"nickname\": request.user.username,\n    \
             \"groups\": [group.name for group in request.user.ak_groups.all()],\n}",
        ),
        scope_mapping(
            Some(&m("offline_access")),
            "authentik default OAuth Mapping: OpenID 'offline_access'",
            "offline_access",
            "Access to request new tokens without interaction",
            "# This scope grants the application a refresh token that can be used to refresh user data\n\
             # and let the application access authentik without the users interaction\nreturn {}",
        ),
        scope_mapping(
            Some(&m("entitlements")),
            "authentik default OAuth Mapping: Application Entitlements",
            "entitlements",
            "Application entitlements",
            "entitlements = [entitlement.name for entitlement in request.user.app_entitlements(provider.application)]\n\
             return {\n    \"entitlements\": entitlements,\n    \"roles\": entitlements,\n}",
        ),
        scope_mapping(
            Some(&m("authentik_api")),
            "authentik default OAuth Mapping: authentik API access",
            "goauthentik.io/api",
            "authentik API Access on behalf of your user",
            "# This scope grants the application the ability to access the authentik API\n\
             # on behalf of the authorizing user\nreturn {}",
        ),
        scope_mapping(
            Some("goauthentik.io/providers/proxy/scope-proxy"),
            "authentik default OAuth Mapping: Proxy outpost",
            "ak_proxy",
            "authentik Proxy - User information",
            "# This mapping is used by the authentik proxy. It passes extra user attributes,\n\
             # which are used for example for the HTTP-Basic Authentication mapping.\nreturn {\n    \
             \"ak_proxy\": {\n        \"user_attributes\": request.user.group_attributes(request),\n        \
             \"is_superuser\": request.user.is_superuser,\n    }\n}",
        ),
    ]
}

pub(crate) const SAML_MAPPING_META: [(&str, &str); 4] = [
    ("component", "ak-property-mapping-provider-saml-form"),
    ("verbose_name", "SAML Provider Property Mapping"),
    ("verbose_name_plural", "SAML Provider Property Mappings"),
    (
        "meta_model_name",
        "authentik_providers_saml.samlpropertymapping",
    ),
];

pub(crate) fn saml_mapping(
    managed: Option<&str>,
    name: &str,
    saml_name: &str,
    friendly_name: Option<&str>,
    expression: &str,
) -> Map<String, Value> {
    let mut mapping = Map::new();
    mapping.insert("pk".into(), json!(new_uuid()));
    mapping.insert("managed".into(), json!(managed));
    mapping.insert("name".into(), json!(name));
    mapping.insert("expression".into(), json!(expression));
    mapping.insert("saml_name".into(), json!(saml_name));
    mapping.insert("friendly_name".into(), json!(friendly_name));
    for (key, value) in SAML_MAPPING_META {
        mapping.insert(key.into(), json!(value));
    }
    mapping
}

/// `blueprints/system/providers-saml.yaml`.
pub(crate) fn saml_mappings() -> Vec<Map<String, Value>> {
    const SAML: &str = "goauthentik.io/providers/saml/";
    [
        (
            "upn",
            "authentik default SAML Mapping: UPN",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
            "return request.user.attributes.get(\"upn\", request.user.email)",
        ),
        (
            "name",
            "authentik default SAML Mapping: Name",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
            "return request.user.name",
        ),
        (
            "email",
            "authentik default SAML Mapping: Email",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
            "return request.user.email",
        ),
        (
            "username",
            "authentik default SAML Mapping: Username",
            "http://schemas.goauthentik.io/2021/02/saml/username",
            "return request.user.username",
        ),
        (
            "uid",
            "authentik default SAML Mapping: User ID",
            "http://schemas.goauthentik.io/2021/02/saml/uid",
            "return request.user.pk",
        ),
        (
            "groups",
            "authentik default SAML Mapping: Groups",
            "http://schemas.xmlsoap.org/claims/Group",
            "for group in request.user.all_groups():\n    yield group.name",
        ),
        (
            "ms-windowsaccountname",
            "authentik default SAML Mapping: WindowsAccountname (Username)",
            "http://schemas.microsoft.com/ws/2008/06/identity/claims/windowsaccountname",
            "return request.user.username",
        ),
    ]
    .into_iter()
    .map(|(suffix, name, saml_name, expression)| {
        saml_mapping(
            Some(&format!("{SAML}{suffix}")),
            name,
            saml_name,
            None,
            expression,
        )
    })
    .collect()
}

/// A certificate keypair: its `CertificateKeyPair` response shape and the PEM certificate that
/// `view_certificate` answers with.
#[derive(Debug, Clone)]
pub(crate) struct Keypair {
    pub fields: Value,
    pub certificate_pem: String,
    /// The certificate's DER (what SAML metadata and a JWKS `x5c` carry).
    pub certificate_der: Vec<u8>,
    /// The public key as an uncompressed P-256 point (`04 || x || y`), for the JWKS.
    pub public_key_raw: Vec<u8>,
}

impl Keypair {
    pub(crate) fn pk(&self) -> &str {
        self.fields["pk"].as_str().unwrap_or_default()
    }

    pub(crate) fn name(&self) -> &str {
        self.fields["name"].as_str().unwrap_or_default()
    }
}

/// A keypair with a real self-signed certificate, valid from now for `validity_days` (negative:
/// already expired). The fingerprints are computed over its DER, as authentik computes them.
/// ring cannot generate RSA keys, so the key is ECDSA P-256 (`key_type: "ec"`); authentik's own
/// self-signed keypair is RSA, which changes nothing a client can see besides `key_type`.
pub(crate) fn keypair(name: &str, managed: Option<&str>, validity_days: i64) -> Keypair {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let now = i64::try_from(now).unwrap_or_default();
    let expiry = now + validity_days * 86_400;
    let at = |secs: i64| {
        time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap_or_else(|err| panic!("keypair validity out of range: {err}"))
    };
    let key = rcgen::KeyPair::generate()
        .unwrap_or_else(|err| panic!("generating a key for keypair {name:?}: {err}"));
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap_or_else(|err| panic!("certificate parameters for {name:?}: {err}"));
    params.not_before = at(now.min(expiry));
    params.not_after = at(expiry);
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, name);
    dn.push(rcgen::DnType::OrganizationName, "authentik");
    dn.push(rcgen::DnType::OrganizationalUnitName, "Self-signed");
    params.distinguished_name = dn;
    let certificate = params
        .self_signed(&key)
        .unwrap_or_else(|err| panic!("self-signing a certificate for {name:?}: {err}"));
    let (sha256, sha1) = fingerprints(certificate.der());
    let expiry_at = if expiry >= 0 {
        UNIX_EPOCH + Duration::from_secs(expiry.unsigned_abs())
    } else {
        UNIX_EPOCH
    };
    let pk = new_uuid();
    let fields = json!({
        "pk": pk,
        "name": name,
        "fingerprint_sha256": sha256,
        "fingerprint_sha1": sha1,
        "cert_expiry": rfc3339(expiry_at),
        "cert_subject": format!("OU=Self-signed,O=authentik,CN={name}"),
        "private_key_available": true,
        "key_type": "ec",
        "certificate_download_url": format!("/api/v3/crypto/certificatekeypairs/{pk}/view_certificate/?download"),
        "private_key_download_url": format!("/api/v3/crypto/certificatekeypairs/{pk}/view_private_key/?download"),
        "managed": managed,
    });
    Keypair {
        fields,
        certificate_pem: certificate.pem(),
        certificate_der: certificate.der().to_vec(),
        public_key_raw: key.public_key_raw().to_vec(),
    }
}

pub(crate) fn keypairs() -> Vec<Keypair> {
    vec![
        keypair("authentik Self-signed Certificate", None, 365),
        keypair(
            "authentik Internal JWT Certificate",
            Some("goauthentik.io/crypto/jwt-managed"),
            360,
        ),
    ]
}

pub(crate) const EMBEDDED_OUTPOST_MANAGED: &str = "goauthentik.io/outposts/embedded";
pub(crate) const EMBEDDED_OUTPOST_NAME: &str = "authentik Embedded Outpost";

pub(crate) fn embedded_outpost() -> Map<String, Value> {
    let outpost = json!({
        "pk": new_uuid(),
        "name": EMBEDDED_OUTPOST_NAME,
        "type": "proxy",
        "providers": [],
        "service_connection": null,
        "config": {
            "log_level": "info",
            "docker_labels": null,
            "authentik_host": "",
            "docker_network": null,
            "container_image": null,
            "docker_map_ports": true,
            "refresh_interval": "minutes=5",
            "kubernetes_replicas": 1,
            "kubernetes_namespace": "default",
            "authentik_host_browser": "",
            "object_naming_template": "ak-outpost-%(name)s",
            "authentik_host_insecure": false,
            "kubernetes_json_patches": null,
            "kubernetes_service_type": "ClusterIP",
            "kubernetes_ingress_path_type": null,
            "kubernetes_image_pull_secrets": [],
            "kubernetes_ingress_class_name": null,
            "kubernetes_disabled_components": [],
            "kubernetes_ingress_annotations": {},
            "kubernetes_ingress_secret_name": "authentik-outpost-tls",
            "kubernetes_httproute_annotations": {},
            "kubernetes_httproute_parent_refs": [],
        },
        "managed": EMBEDDED_OUTPOST_MANAGED,
    });
    outpost.as_object().cloned().unwrap_or_default()
}

/// `GET /core/users/me/` for the bootstrap admin (`SessionUser` shape, as in sample 00).
pub(crate) fn me() -> Value {
    json!({
        "user": {
            "pk": 3,
            "username": "akadmin",
            "name": "authentik Default Admin",
            "is_active": true,
            "is_superuser": true,
            "groups": [{"name": "authentik Admins", "pk": new_uuid()}],
            "roles": [],
            "email": "akadmin@example.invalid",
            "avatar": "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHdpZHRoPSI2NHB4IiBoZWlnaHQ9IjY0cHgiIHZpZXdCb3g9IjAgMCA2NCA2NCIgdmVyc2lvbj0iMS4xIj48cmVjdCBmaWxsPSIjMzc3YjM3IiBjeD0iMzIiIGN5PSIzMiIgd2lkdGg9IjY0IiBoZWlnaHQ9IjY0IiByPSIzMiIvPjx0ZXh0IHg9IjUwJSIgeT0iNTAlIiBzdHlsZT0iY29sb3I6ICNmZmY7IGxpbmUtaGVpZ2h0OiAxOyBmb250LWZhbWlseTogJ1JlZEhhdFRleHQnLCdPdmVycGFzcycsb3ZlcnBhc3MsaGVsdmV0aWNhLGFyaWFsLHNhbnMtc2VyaWY7ICIgZmlsbD0iI2ZmZiIgYWxpZ25tZW50LWJhc2VsaW5lPSJtaWRkbGUiIGRvbWluYW50LWJhc2VsaW5lPSJtaWRkbGUiIHRleHQtYW5jaG9yPSJtaWRkbGUiIGZvbnQtc2l6ZT0iMjgiIGZvbnQtd2VpZ2h0PSI0MDAiIGR5PSIuMWVtIj5BQTwvdGV4dD48L3N2Zz4=",
            "uid": "99f11899acb5f6cd69d46a17fdce408890aaa6ebf82d7f3e56eff1995f426fd8",
            "settings": {},
            "type": "internal",
            "system_permissions": [
                "edit_system_settings", "add_role", "view_role", "view_system_info",
                "access_admin_interface", "manage_media_files", "view_media_files",
                "assign_role_permissions", "view_system_settings", "delete_role",
                "view_initialpermissions", "delete_initialpermissions",
                "change_initialpermissions", "change_role", "add_initialpermissions",
                "unassign_role_permissions"
            ],
        }
    })
}

/// `GET /admin/version/` (`Version` shape).
pub(crate) fn version(current: &str) -> Value {
    json!({
        "version_current": current,
        "version_latest": current,
        "version_latest_valid": true,
        "build_hash": "",
        "outdated": false,
        "outpost_outdated": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_lowercase_colon_separated_pairs() {
        let (sha256, sha1) = fingerprints(b"certificate");
        assert_eq!(sha256.len(), 95);
        assert_eq!(sha1.len(), 59);
        assert!(
            sha256
                .chars()
                .all(|c| c == ':' || c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
    }

    #[test]
    fn rfc3339_renders_utc_seconds() {
        let at = UNIX_EPOCH + Duration::from_secs(1_827_495_365);
        assert_eq!(rfc3339(at), "2027-11-29T13:36:05Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
