//! Which services an authentik event concerns.
//!
//! Live objects are matched by the ids every check records in `service_state.authentik_ids`
//! (the only way to trace an object that has since been deleted) and by natural key: an
//! application by its name (the manifest's display name), a provider by `pma-sso-<slug>`.
//! An outpost change concerns every proxy service; a certificate keypair every service whose
//! manifest signs with it.

use std::collections::BTreeSet;

use schemas::{Manifest, Sso, SsoKind};
use serde_json::Value;

use super::event::ModelRef;

/// What `service_state` remembers of one service.
pub struct KnownIds {
    pub service: String,
    /// `{"application": "<uuid>", "provider": "<pk>", "provider_model": "<app.model>"}`
    pub ids: Value,
}

/// authentik sends UUID pks as 32 hex digits; the API shows them dashed.
fn normalise_uuid(pk: &str) -> String {
    pk.chars()
        .filter(|c| *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn signing_key(manifest: &Manifest) -> Option<&str> {
    match &manifest.sso {
        Sso::Saml(s) => Some(s.saml.signing_key.as_str()),
        _ => manifest.oauth()?.client.signing_key.as_deref(),
    }
}

/// The services (names, sorted, each once) an event about `model` concerns. `manifests`
/// are the packages on disk: a service without a manifest is never returned.
pub fn affected(model: &ModelRef, manifests: &[Manifest], known: &[KnownIds]) -> Vec<String> {
    let mut out = BTreeSet::new();
    let id = |k: &KnownIds, key: &str| k.ids.get(key).and_then(Value::as_str).map(str::to_owned);
    let qualified = format!("{}.{}", model.app, model.model_name);
    match qualified.as_str() {
        "authentik_core.application" => {
            let pk = normalise_uuid(&model.pk);
            for k in known {
                if id(k, "application").is_some_and(|a| normalise_uuid(&a) == pk) {
                    out.insert(k.service.clone());
                }
            }
            if let Some(name) = &model.name {
                for m in manifests.iter().filter(|m| m.display_name() == name) {
                    out.insert(m.name.to_string());
                }
            }
        }
        "authentik_providers_oauth2.oauth2provider"
        | "authentik_providers_saml.samlprovider"
        | "authentik_providers_proxy.proxyprovider" => {
            for k in known {
                let same_pk = id(k, "provider").is_some_and(|p| p == model.pk);
                // Provider pks are shared across provider types: the model must agree too
                // (an older state without `provider_model` is trusted on the pk alone).
                let same_model = id(k, "provider_model").is_none_or(|m| m == qualified);
                if same_pk && same_model {
                    out.insert(k.service.clone());
                }
            }
            if let Some(name) = &model.name {
                for m in manifests
                    .iter()
                    .filter(|m| &worker::live::provider_name(m) == name)
                {
                    out.insert(m.name.to_string());
                }
            }
        }
        "authentik_outposts.outpost" => {
            for m in manifests.iter().filter(|m| m.kind() == SsoKind::Proxy) {
                out.insert(m.name.to_string());
            }
        }
        "authentik_crypto.certificatekeypair" => {
            for m in manifests {
                let uses = match (signing_key(m), &model.name) {
                    (Some(key), Some(name)) => key == name,
                    // Without the keypair's name, every service that signs may be affected.
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                if uses {
                    out.insert(m.name.to_string());
                }
            }
        }
        _ => {}
    }
    let on_disk: BTreeSet<&str> = manifests.iter().map(|m| m.name.as_str()).collect();
    out.into_iter()
        .filter(|s| on_disk.contains(s.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(yaml: &str) -> Manifest {
        let name = yaml
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("name: "))
            .unwrap_or("x")
            .to_owned();
        schemas::parse_manifest(&std::path::Path::new(&name).join("manifest.yaml"), yaml)
            .expect("manifest")
    }

    fn fixtures() -> (Vec<Manifest>, Vec<KnownIds>) {
        let manifests = vec![
            manifest(
                "name: grafana\ndisplay_name: Grafana\nsso:\n  type: oidc\n  redirect_path: /cb\n",
            ),
            manifest("name: kuma\nsso:\n  type: proxy\n"),
            manifest(
                "name: redmine\nsso:\n  type: oauth\n  redirect_path: /cb\n  client:\n    signing_key: special\n",
            ),
        ];
        let known = vec![
            KnownIds {
                service: "grafana".into(),
                ids: json!({"application": "3f0c9a1e-0000-4000-8000-00000000abcd", "provider": "7", "provider_model": "authentik_providers_oauth2.oauth2provider"}),
            },
            KnownIds {
                service: "gone".into(),
                ids: json!({"application": "11111111-0000-4000-8000-000000000000"}),
            },
        ];
        (manifests, known)
    }

    fn model(app: &str, model_name: &str, pk: &str, name: Option<&str>) -> ModelRef {
        ModelRef {
            app: app.into(),
            model_name: model_name.into(),
            pk: pk.into(),
            name: name.map(str::to_owned),
        }
    }

    #[test]
    fn objects_map_to_their_services() {
        let (m, k) = fixtures();
        // A deleted application: only the recorded id knows whose it was.
        let app = model(
            "authentik_core",
            "application",
            "3F0C9A1E00004000800000000000ABCD",
            Some("renamed"),
        );
        assert_eq!(affected(&app, &m, &k), ["grafana"]);
        let by_name = model("authentik_core", "application", "ffff", Some("Grafana"));
        assert_eq!(affected(&by_name, &m, &k), ["grafana"]);
        let provider = model("authentik_providers_oauth2", "oauth2provider", "7", None);
        assert_eq!(affected(&provider, &m, &k), ["grafana"]);
        let other_type = model("authentik_providers_saml", "samlprovider", "7", None);
        assert!(affected(&other_type, &m, &k).is_empty());
        let by_provider_name = model(
            "authentik_providers_proxy",
            "proxyprovider",
            "9",
            Some("pma-sso-kuma"),
        );
        assert_eq!(affected(&by_provider_name, &m, &k), ["kuma"]);
        let outpost = model(
            "authentik_outposts",
            "outpost",
            "x",
            Some("authentik Embedded Outpost"),
        );
        assert_eq!(affected(&outpost, &m, &k), ["kuma"]);
        let key = model(
            "authentik_crypto",
            "certificatekeypair",
            "x",
            Some("special"),
        );
        assert_eq!(affected(&key, &m, &k), ["redmine"]);
        let default_key = model(
            "authentik_crypto",
            "certificatekeypair",
            "x",
            Some("authentik Self-signed Certificate"),
        );
        assert_eq!(affected(&default_key, &m, &k), ["grafana"]);
        // A state row whose manifest is gone is not a service any more.
        let gone = model(
            "authentik_core",
            "application",
            "11111111000040008000000000000000",
            None,
        );
        assert!(affected(&gone, &m, &k).is_empty());
        let user = model("authentik_core", "user", "3", Some("akadmin"));
        assert!(affected(&user, &m, &k).is_empty());
    }
}
