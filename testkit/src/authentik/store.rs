//! authentik's state: the writable fields of every object, and the rendering of each into its
//! API response shape (read-only fields such as `provider_obj` or `assigned_application_slug`
//! are computed at render time, as authentik's serializers compute them).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::seed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProviderKind {
    OAuth2,
    Saml,
    /// A multi-table subclass of `OAuth2Provider` in authentik.
    Proxy,
}

impl ProviderKind {
    pub(crate) fn component(self) -> &'static str {
        match self {
            ProviderKind::OAuth2 => "ak-provider-oauth2-form",
            ProviderKind::Saml => "ak-provider-saml-form",
            ProviderKind::Proxy => "ak-provider-proxy-form",
        }
    }

    pub(crate) fn verbose_name(self) -> &'static str {
        match self {
            ProviderKind::OAuth2 => "OAuth2/OpenID Provider",
            ProviderKind::Saml => "SAML Provider",
            ProviderKind::Proxy => "Proxy Provider",
        }
    }

    pub(crate) fn verbose_name_plural(self) -> &'static str {
        match self {
            ProviderKind::OAuth2 => "OAuth2/OpenID Providers",
            ProviderKind::Saml => "SAML Providers",
            ProviderKind::Proxy => "Proxy Providers",
        }
    }

    pub(crate) fn meta_model_name(self) -> &'static str {
        match self {
            ProviderKind::OAuth2 => "authentik_providers_oauth2.oauth2provider",
            ProviderKind::Saml => "authentik_providers_saml.samlprovider",
            ProviderKind::Proxy => "authentik_providers_proxy.proxyprovider",
        }
    }

    /// The Python class name (used in 404 details and outpost type errors).
    pub(crate) fn class_name(self) -> &'static str {
        match self {
            ProviderKind::OAuth2 => "OAuth2Provider",
            ProviderKind::Saml => "SAMLProvider",
            ProviderKind::Proxy => "ProxyProvider",
        }
    }

    /// What this provider's launch URL is guessed from, if anything.
    fn launch_url(self, fields: &Map<String, Value>, app_slug: &str) -> Option<String> {
        match self {
            // OAuth2Provider.launch_url: the first redirect URI with its path removed.
            ProviderKind::OAuth2 => fields
                .get("redirect_uris")
                .and_then(|uris| uris.get(0))
                .and_then(|first| first.get("url"))
                .and_then(Value::as_str)
                .map(strip_path),
            // SAMLProvider.launch_url: the IdP-initiated SSO view (a relative URL).
            ProviderKind::Saml => Some(format!("/application/saml/{app_slug}/sso/binding/init/")),
            ProviderKind::Proxy => fields
                .get("external_host")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Provider {
    pub kind: ProviderKind,
    /// Writable fields plus `pk`.
    pub fields: Map<String, Value>,
}

impl Provider {
    pub(crate) fn pk(&self) -> i64 {
        self.fields.get("pk").and_then(Value::as_i64).unwrap_or(0)
    }

    pub(crate) fn name(&self) -> &str {
        self.fields
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// OAuth2 model fields the proxy provider serializer does not show.
const PROXY_HIDDEN_FIELDS: [&str; 11] = [
    "client_type",
    "client_secret",
    "access_code_validity",
    "refresh_token_threshold",
    "include_claims_in_id_token",
    "signing_key",
    "encryption_key",
    "logout_uri",
    "logout_method",
    "sub_mode",
    "issuer_mode",
];

/// Fields of the generic `ProviderSerializer` that come from the model.
const PROVIDER_BASE_FIELDS: [&str; 6] = [
    "pk",
    "name",
    "authentication_flow",
    "authorization_flow",
    "invalidation_flow",
    "property_mappings",
];

#[derive(Debug)]
pub(crate) struct Store {
    /// Writable fields plus `pk` of each application, in creation order.
    pub applications: Vec<Map<String, Value>>,
    pub providers: BTreeMap<i64, Provider>,
    /// One counter for every provider type: provider pks are unique across types.
    pub next_provider_pk: i64,
    pub flows: Vec<Value>,
    pub scope_mappings: Vec<Map<String, Value>>,
    pub keypairs: Vec<seed::Keypair>,
    pub saml_mappings: Vec<Map<String, Value>>,
    /// Writable fields plus `pk` of each outpost.
    pub outposts: Vec<Map<String, Value>>,
    pub me: Value,
    pub identity: super::identity::Identity,
    pub notifications: super::notifications::Notifications,
    /// `scheme://host` of the request being answered: authentik builds the SAML providers'
    /// `url_*` fields from the request, not from its configuration.
    pub origin: String,
    /// What the protocol endpoints (discovery, SAML metadata) build URLs from; `None`: the
    /// request's own host, as authentik does behind a proxy that passes `Host` through.
    pub public_url: Option<String>,
}

/// Provider pk → index in `Store::applications` of the application that uses it (as its
/// provider, or as a backchannel provider). A snapshot: build it again after any change.
#[derive(Debug, Default)]
pub(crate) struct Links {
    application: HashMap<i64, usize>,
    backchannel: HashMap<i64, usize>,
}

pub(crate) fn str_field<'m>(map: &'m Map<String, Value>, key: &str) -> &'m str {
    map.get(key).and_then(Value::as_str).unwrap_or_default()
}

impl Store {
    pub(crate) fn seeded() -> Store {
        Store {
            applications: Vec::new(),
            providers: BTreeMap::new(),
            next_provider_pk: 1,
            flows: seed::flows(),
            scope_mappings: seed::scope_mappings(),
            keypairs: seed::keypairs(),
            saml_mappings: seed::saml_mappings(),
            outposts: vec![seed::embedded_outpost()],
            me: seed::me(),
            identity: super::identity::Identity::seeded(),
            notifications: super::notifications::Notifications::default(),
            origin: "http://localhost".into(),
            public_url: None,
        }
    }

    // ----- lookups -----

    pub(crate) fn application_index(&self, slug: &str) -> Option<usize> {
        self.applications
            .iter()
            .position(|a| str_field(a, "slug") == slug)
    }

    /// The application whose `provider` is `pk`.
    pub(crate) fn application_of(&self, pk: i64) -> Option<&Map<String, Value>> {
        self.applications
            .iter()
            .find(|a| a.get("provider").and_then(Value::as_i64) == Some(pk))
    }

    /// Which application points at each provider, built in one pass over the applications.
    /// Rendering a list of N providers (or applications) through this is linear; looking each
    /// provider's application up by scanning would be N × applications. The first application
    /// in creation order wins, as with [`Store::application_of`].
    pub(crate) fn links(&self) -> Links {
        let mut links = Links::default();
        for (index, app) in self.applications.iter().enumerate() {
            if let Some(pk) = app.get("provider").and_then(Value::as_i64) {
                links.application.entry(pk).or_insert(index);
            }
            for pk in app
                .get("backchannel_providers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
            {
                links.backchannel.entry(pk).or_insert(index);
            }
        }
        links
    }

    /// The application whose `provider` is `pk`, through an index from [`Store::links`].
    pub(crate) fn linked_application(&self, links: &Links, pk: i64) -> Option<&Map<String, Value>> {
        links.application.get(&pk).map(|i| &self.applications[*i])
    }

    /// The application that lists `pk` among its backchannel providers.
    fn backchannel_application_of(&self, links: &Links, pk: i64) -> Option<&Map<String, Value>> {
        links.backchannel.get(&pk).map(|i| &self.applications[*i])
    }

    pub(crate) fn flow_exists(&self, pk: &str) -> bool {
        self.flows.iter().any(|f| f["pk"] == pk)
    }

    pub(crate) fn scope_mapping_index(&self, pk: &str) -> Option<usize> {
        self.scope_mappings.iter().position(|m| m["pk"] == pk)
    }

    /// A keypair usable for signing or encryption: it must have a private key.
    pub(crate) fn keypair_with_key_exists(&self, pk: &str) -> bool {
        self.keypairs
            .iter()
            .any(|k| k.pk() == pk && k.fields["private_key_available"] == true)
    }

    pub(crate) fn keypair_exists(&self, pk: &str) -> bool {
        self.keypairs.iter().any(|k| k.pk() == pk)
    }

    pub(crate) fn saml_mapping_index(&self, pk: &str) -> Option<usize> {
        self.saml_mappings.iter().position(|m| m["pk"] == pk)
    }

    pub(crate) fn outpost_index(&self, pk: &str) -> Option<usize> {
        self.outposts.iter().position(|o| o["pk"] == pk)
    }

    // ----- rendering -----

    fn provider_computed(&self, links: &Links, provider: &Provider, out: &mut Map<String, Value>) {
        let pk = provider.pk();
        let app = self.linked_application(links, pk);
        let backchannel = self.backchannel_application_of(links, pk);
        let kind = provider.kind;
        out.insert("component".into(), json!(kind.component()));
        out.insert(
            "assigned_application_slug".into(),
            json!(app.map(|a| str_field(a, "slug"))),
        );
        out.insert(
            "assigned_application_name".into(),
            json!(app.map(|a| str_field(a, "name"))),
        );
        out.insert(
            "assigned_backchannel_application_slug".into(),
            json!(backchannel.map(|a| str_field(a, "slug"))),
        );
        out.insert(
            "assigned_backchannel_application_name".into(),
            json!(backchannel.map(|a| str_field(a, "name"))),
        );
        out.insert("verbose_name".into(), json!(kind.verbose_name()));
        out.insert(
            "verbose_name_plural".into(),
            json!(kind.verbose_name_plural()),
        );
        out.insert("meta_model_name".into(), json!(kind.meta_model_name()));
    }

    /// The type-specific serializer's shape (`OAuth2Provider`, `SAMLProvider`, `ProxyProvider`).
    pub(crate) fn render_provider(&self, provider: &Provider) -> Value {
        self.render_provider_in(&self.links(), provider)
    }

    /// [`Store::render_provider`] with the application index built once for a whole list.
    pub(crate) fn render_provider_in(&self, links: &Links, provider: &Provider) -> Value {
        let mut out = match provider.kind {
            ProviderKind::OAuth2 | ProviderKind::Saml => provider.fields.clone(),
            // ProxyProviderSerializer shows only part of the OAuth2 model underneath.
            ProviderKind::Proxy => provider
                .fields
                .iter()
                .filter(|(key, _)| !PROXY_HIDDEN_FIELDS.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        };
        self.provider_computed(links, provider, &mut out);
        match provider.kind {
            ProviderKind::OAuth2 => {}
            ProviderKind::Saml => self.saml_urls(links, provider, &mut out),
            ProviderKind::Proxy => {
                let pk = json!(provider.pk());
                let outposts: Vec<String> = self
                    .outposts
                    .iter()
                    .filter(|o| {
                        o.get("providers")
                            .and_then(Value::as_array)
                            .is_some_and(|pks| pks.contains(&pk))
                    })
                    .map(|o| format!("Outpost {}", str_field(o, "name")))
                    .collect();
                out.insert("outpost_set".into(), json!(outposts));
            }
        }
        Value::Object(out)
    }

    /// `SAMLProviderSerializer`'s `url_*` fields: absolute URLs on the host the API was called
    /// on; without an application only the metadata URL exists (through the API).
    fn saml_urls(&self, links: &Links, provider: &Provider, out: &mut Map<String, Value>) {
        let origin = &self.origin;
        let slug = self
            .linked_application(links, provider.pk())
            .map(|a| str_field(a, "slug").to_owned());
        let url = |suffix: &str| match &slug {
            Some(slug) => format!("{origin}/application/saml/{slug}/{suffix}"),
            None => "-".to_owned(),
        };
        let metadata = match &slug {
            Some(slug) => format!("{origin}/application/saml/{slug}/metadata/"),
            None => format!(
                "{origin}/api/v3/providers/saml/{}/metadata/?download",
                provider.pk()
            ),
        };
        out.insert("url_download_metadata".into(), json!(metadata));
        out.insert("url_sso_post".into(), json!(url("sso/binding/post/")));
        out.insert(
            "url_sso_redirect".into(),
            json!(url("sso/binding/redirect/")),
        );
        out.insert("url_sso_init".into(), json!(url("sso/binding/init/")));
        out.insert("url_slo_post".into(), json!(url("slo/binding/post/")));
        out.insert(
            "url_slo_redirect".into(),
            json!(url("slo/binding/redirect/")),
        );
    }

    /// The generic `Provider` shape (`provider_obj`, `/providers/all/`, `providers_obj`).
    pub(crate) fn render_provider_base(&self, provider: &Provider) -> Value {
        self.render_provider_base_in(&self.links(), provider)
    }

    pub(crate) fn render_provider_base_in(&self, links: &Links, provider: &Provider) -> Value {
        let mut out: Map<String, Value> = PROVIDER_BASE_FIELDS
            .iter()
            .map(|key| {
                let value = provider.fields.get(*key).cloned().unwrap_or(Value::Null);
                ((*key).to_owned(), value)
            })
            .collect();
        self.provider_computed(links, provider, &mut out);
        Value::Object(out)
    }

    fn render_provider_pk(&self, links: &Links, pk: &Value) -> Option<Value> {
        pk.as_i64()
            .and_then(|pk| self.providers.get(&pk))
            .map(|p| self.render_provider_base_in(links, p))
    }

    pub(crate) fn render_application(&self, app: &Map<String, Value>) -> Value {
        self.render_application_in(&self.links(), app)
    }

    /// [`Store::render_application`] with the application index built once for a whole list.
    pub(crate) fn render_application_in(&self, links: &Links, app: &Map<String, Value>) -> Value {
        let mut out = app.clone();
        let provider = app
            .get("provider")
            .and_then(Value::as_i64)
            .and_then(|pk| self.providers.get(&pk));
        out.insert(
            "provider_obj".into(),
            provider.map_or(Value::Null, |p| self.render_provider_base_in(links, p)),
        );
        let backchannel: Vec<Value> = app
            .get("backchannel_providers")
            .and_then(Value::as_array)
            .map(|pks| {
                pks.iter()
                    .filter_map(|pk| self.render_provider_pk(links, pk))
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            "backchannel_providers_obj".into(),
            Value::Array(backchannel),
        );

        let meta_launch_url = str_field(app, "meta_launch_url");
        let launch_url = if meta_launch_url.is_empty() {
            provider.and_then(|p| p.kind.launch_url(&p.fields, str_field(app, "slug")))
        } else {
            Some(meta_launch_url.to_owned())
        };
        out.insert(
            "launch_url".into(),
            json!(launch_url.map(|url| format_for_user(&url, &self.me["user"]))),
        );

        let meta_icon = str_field(app, "meta_icon");
        let (icon_url, themed) = icon_urls(meta_icon);
        out.insert("meta_icon_url".into(), json!(icon_url));
        out.insert("meta_icon_themed_urls".into(), themed);
        Value::Object(out)
    }

    pub(crate) fn render_outpost(&self, outpost: &Map<String, Value>) -> Value {
        let mut out = outpost.clone();
        let links = self.links();
        let providers: Vec<Value> = outpost
            .get("providers")
            .and_then(Value::as_array)
            .map(|pks| {
                pks.iter()
                    .filter_map(|pk| self.render_provider_pk(&links, pk))
                    .collect()
            })
            .unwrap_or_default();
        out.insert("providers_obj".into(), Value::Array(providers));
        out.insert("service_connection_obj".into(), Value::Null);
        let refresh = outpost
            .get("config")
            .and_then(|c| c.get("refresh_interval"))
            .and_then(Value::as_str)
            .and_then(timedelta_seconds)
            .unwrap_or(300);
        out.insert("refresh_interval_s".into(), json!(refresh));
        out.insert(
            "token_identifier".into(),
            json!(format!("ak-outpost-{}-api", str_field(outpost, "pk"))),
        );
        Value::Object(out)
    }

    pub(crate) fn render_scope_mapping(mapping: &Map<String, Value>) -> Value {
        Value::Object(mapping.clone())
    }

    // ----- whole collections, for tests -----

    pub(crate) fn all_applications(&self) -> Vec<Value> {
        let mut apps: Vec<&Map<String, Value>> = self.applications.iter().collect();
        apps.sort_by(|a, b| str_field(a, "name").cmp(str_field(b, "name")));
        let links = self.links();
        apps.into_iter()
            .map(|a| self.render_application_in(&links, a))
            .collect()
    }

    pub(crate) fn all_oauth2_providers(&self) -> Vec<Value> {
        self.all_of_kind(ProviderKind::OAuth2)
    }

    pub(crate) fn application_by_slug(&self, slug: &str) -> Option<Value> {
        self.application_index(slug)
            .map(|i| self.render_application(&self.applications[i]))
    }

    pub(crate) fn provider_by_name(&self, name: &str) -> Option<Value> {
        self.providers
            .values()
            .find(|p| p.name() == name)
            .map(|p| self.render_provider(p))
    }

    pub(crate) fn all_scope_mappings(&self) -> Vec<Value> {
        self.scope_mappings
            .iter()
            .map(Store::render_scope_mapping)
            .collect()
    }

    pub(crate) fn all_keypairs(&self) -> Vec<Value> {
        self.keypairs.iter().map(|k| k.fields.clone()).collect()
    }

    pub(crate) fn all_saml_mappings(&self) -> Vec<Value> {
        self.saml_mappings
            .iter()
            .map(|m| Value::Object(m.clone()))
            .collect()
    }

    fn all_of_kind(&self, kind: ProviderKind) -> Vec<Value> {
        let mut providers: Vec<&Provider> =
            self.providers.values().filter(|p| p.kind == kind).collect();
        providers.sort_by(|a, b| a.name().cmp(b.name()));
        let links = self.links();
        providers
            .into_iter()
            .map(|p| self.render_provider_in(&links, p))
            .collect()
    }

    pub(crate) fn all_saml_providers(&self) -> Vec<Value> {
        self.all_of_kind(ProviderKind::Saml)
    }

    pub(crate) fn all_proxy_providers(&self) -> Vec<Value> {
        self.all_of_kind(ProviderKind::Proxy)
    }

    pub(crate) fn all_flows(&self) -> Vec<Value> {
        self.flows.clone()
    }

    pub(crate) fn all_outposts(&self) -> Vec<Value> {
        self.outposts
            .iter()
            .map(|o| self.render_outpost(o))
            .collect()
    }

    // ----- changes behind the API's back, for tests -----

    pub(crate) fn patch_application(&mut self, slug: &str, patch: Value) {
        let Some(index) = self.application_index(slug) else {
            panic!("patch_application: no application with slug {slug:?}");
        };
        merge_writable(&mut self.applications[index], patch, "application");
    }

    pub(crate) fn patch_provider(&mut self, name: &str, patch: Value) {
        let Some(provider) = self.providers.values_mut().find(|p| p.name() == name) else {
            panic!("patch_provider: no provider named {name:?}");
        };
        merge_writable(&mut provider.fields, patch, "provider");
    }

    pub(crate) fn patch_outpost(&mut self, name: &str, patch: Value) {
        let Some(outpost) = self
            .outposts
            .iter_mut()
            .find(|o| str_field(o, "name") == name)
        else {
            panic!("patch_outpost: no outpost named {name:?}");
        };
        merge_writable(outpost, patch, "outpost");
    }

    pub(crate) fn delete_application(&mut self, slug: &str) -> bool {
        match self.application_index(slug) {
            Some(index) => {
                self.remove_application(index);
                true
            }
            None => false,
        }
    }

    pub(crate) fn delete_provider_by_name(&mut self, name: &str) -> bool {
        match self.providers.values().find(|p| p.name() == name) {
            Some(provider) => {
                let pk = provider.pk();
                self.remove_provider(pk);
                true
            }
            None => false,
        }
    }

    // ----- deletes with authentik's on_delete behaviour -----

    /// Remove an application. `Provider.backchannel_application` is `on_delete=CASCADE`, so its
    /// backchannel providers go too; its main provider stays, unassigned.
    pub(crate) fn remove_application(&mut self, index: usize) {
        let app = self.applications.remove(index);
        let backchannel: Vec<i64> = app
            .get("backchannel_providers")
            .and_then(Value::as_array)
            .map(|pks| pks.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        for pk in backchannel {
            self.remove_provider(pk);
        }
    }

    /// Remove a provider: `Application.provider` is `SET_DEFAULT` (null); M2M links
    /// (backchannel lists, outposts, JWT federation) drop it.
    pub(crate) fn remove_provider(&mut self, pk: i64) -> bool {
        if self.providers.remove(&pk).is_none() {
            return false;
        }
        for app in &mut self.applications {
            if app.get("provider").and_then(Value::as_i64) == Some(pk) {
                app.insert("provider".into(), Value::Null);
            }
            remove_from_list(app, "backchannel_providers", &json!(pk));
        }
        for outpost in &mut self.outposts {
            remove_from_list(outpost, "providers", &json!(pk));
        }
        for provider in self.providers.values_mut() {
            remove_from_list(&mut provider.fields, "jwt_federation_providers", &json!(pk));
        }
        true
    }

    /// Remove a SAML property mapping; providers drop it from `property_mappings`, and the
    /// NameID / AuthnContextClassRef links (`SET_NULL`) let go of it.
    pub(crate) fn remove_saml_mapping(&mut self, index: usize) {
        let mapping = self.saml_mappings.remove(index);
        let pk = mapping.get("pk").cloned().unwrap_or(Value::Null);
        for provider in self.providers.values_mut() {
            remove_from_list(&mut provider.fields, "property_mappings", &pk);
            for key in ["name_id_mapping", "authn_context_class_ref_mapping"] {
                if provider.fields.get(key) == Some(&pk) {
                    provider.fields.insert(key.into(), Value::Null);
                }
            }
        }
    }

    /// Remove a scope mapping; providers' `property_mappings` drop it.
    pub(crate) fn remove_scope_mapping(&mut self, index: usize) {
        let mapping = self.scope_mappings.remove(index);
        let pk = mapping.get("pk").cloned().unwrap_or(Value::Null);
        for provider in self.providers.values_mut() {
            remove_from_list(&mut provider.fields, "property_mappings", &pk);
        }
    }
}

fn remove_from_list(map: &mut Map<String, Value>, key: &str, item: &Value) {
    if let Some(Value::Array(items)) = map.get_mut(key) {
        items.retain(|i| i != item);
    }
}

fn merge_writable(target: &mut Map<String, Value>, patch: Value, what: &str) {
    let Value::Object(patch) = patch else {
        panic!("patch_{what}: the patch must be a JSON object, got {patch}");
    };
    for (key, value) in patch {
        if key == "pk" || !target.contains_key(&key) {
            panic!(
                "patch_{what}: {key:?} is not a writable {what} field (writable: {:?})",
                target.keys().filter(|k| *k != "pk").collect::<Vec<_>>()
            );
        }
        target.insert(key, value);
    }
}

/// `urlunparse(urlparse(url)._replace(path=""))`.
pub(crate) fn strip_path(url: &str) -> String {
    let (scheme, rest) = match url.split_once(':') {
        Some((scheme, rest))
            if scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (Some(scheme.to_ascii_lowercase()), rest)
        }
        _ => (None, url),
    };
    let (netloc, after) = match rest.strip_prefix("//") {
        Some(r) => {
            let end = r.find(['/', '?', '#']).unwrap_or(r.len());
            (Some(&r[..end]), &r[end..])
        }
        None => (None, rest),
    };
    let (before_fragment, fragment) = match after.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (after, None),
    };
    let query = before_fragment.split_once('?').map(|(_, q)| q);
    let mut out = String::new();
    if let Some(scheme) = &scheme {
        out.push_str(scheme);
        out.push(':');
    }
    if let Some(netloc) = netloc.filter(|n| !n.is_empty()) {
        out.push_str("//");
        out.push_str(netloc);
    }
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(query);
    }
    if let Some(fragment) = fragment.filter(|f| !f.is_empty()) {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// Python's `url % user_data`, which authentik applies to launch URLs; on any formatting error
/// the URL is returned unchanged, as authentik does.
pub(crate) fn format_for_user(url: &str, user: &Value) -> String {
    let mut out = String::new();
    let mut rest = url;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let spec = &rest[at + 1..];
        if let Some(after) = spec.strip_prefix('%') {
            out.push('%');
            rest = after;
        } else if let Some(named) = spec.strip_prefix('(') {
            let Some((key, after)) = named.split_once(')') else {
                return url.to_owned();
            };
            let Some(after) = after.strip_prefix('s') else {
                return url.to_owned();
            };
            match user.get(key) {
                Some(Value::String(s)) => out.push_str(s),
                Some(Value::Null) => out.push_str("None"),
                Some(other) => out.push_str(&other.to_string()),
                None => return url.to_owned(),
            }
            rest = after;
        } else {
            return url.to_owned();
        }
    }
    out.push_str(rest);
    out
}

/// `meta_icon_url` and `meta_icon_themed_urls` for a stored `meta_icon`.
fn icon_urls(meta_icon: &str) -> (Option<String>, Value) {
    if meta_icon.is_empty() {
        return (None, Value::Null);
    }
    let url = if meta_icon.contains("://") || meta_icon.starts_with("/static") {
        meta_icon.to_owned()
    } else {
        format!("/media/public/{meta_icon}")
    };
    let themed = if url.contains("%(theme)s") {
        json!({
            "light": url.replace("%(theme)s", "light"),
            "dark": url.replace("%(theme)s", "dark"),
        })
    } else {
        Value::Null
    };
    (Some(url), themed)
}

/// Seconds in an authentik timedelta string (`hours=1;minutes=2;seconds=3`).
pub(crate) fn timedelta_seconds(s: &str) -> Option<i64> {
    let mut total = 0.0_f64;
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (unit, amount) = part.split_once('=')?;
        let amount: f64 = amount.trim().parse().ok()?;
        let factor = match unit.trim() {
            "weeks" => 604_800.0,
            "days" => 86_400.0,
            "hours" => 3_600.0,
            "minutes" => 60.0,
            "seconds" => 1.0,
            "milliseconds" => 0.001,
            "microseconds" => 0.000_001,
            _ => return None,
        };
        total += amount * factor;
    }
    // Whole seconds are all authentik reports (int(total_seconds())).
    Some(total.trunc() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_url_drops_only_the_path() {
        assert_eq!(
            strip_path("http://127.0.0.1:8080/callback"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            strip_path("https://a.example/cb?x=1#f"),
            "https://a.example?x=1#f"
        );
        assert_eq!(strip_path("^https://.*\\.example\\.com/cb$"), "");
    }

    #[test]
    fn launch_url_is_formatted_with_the_user_like_python_percent() {
        let user = json!({"username": "akadmin", "pk": 3});
        assert_eq!(
            format_for_user("https://x/%(username)s/", &user),
            "https://x/akadmin/"
        );
        assert_eq!(format_for_user("https://x/%2F", &user), "https://x/%2F");
        assert_eq!(format_for_user("https://x/100%%", &user), "https://x/100%");
        assert_eq!(format_for_user("https://x/", &user), "https://x/");
    }

    #[test]
    fn timedeltas_add_up() {
        assert_eq!(timedelta_seconds("minutes=5"), Some(300));
        assert_eq!(timedelta_seconds("hours=1;minutes=2;seconds=3"), Some(3723));
        assert_eq!(timedelta_seconds("fortnights=1"), None);
    }
}
