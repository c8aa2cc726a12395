//! The OAuth2 client credentials a service must hold, for the types that write them into the
//! service through its API (wikijs, frappe).

use secrecy::SecretString;

use super::Service;
use crate::envfile::EnvFile;
use crate::live::Live;

pub struct Credentials {
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
}

/// `.env` is the source of truth once it holds the credentials; before the first add, what
/// authentik holds is the best the service can be compared with.
pub fn wanted(svc: &Service<'_>, env: &EnvFile, live: &Live<'_>) -> Credentials {
    let m = &svc.package.manifest;
    let from_env = |key: Option<schemas::EnvKey>| {
        key.and_then(|k| {
            env.get(k.as_str())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        })
    };
    Credentials {
        client_id: from_env(m.client_id_env()).or_else(|| live.oauth2.map(|p| p.client_id.clone())),
        client_secret: from_env(m.client_secret_env())
            .map(SecretString::from)
            .or_else(|| live.oauth2.map(|p| p.client_secret.clone())),
    }
}
