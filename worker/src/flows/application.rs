//! The authentik application every type ends with: found by slug, marked as ours, linked to
//! the type's provider. An application with our slug that pma-sso did not create is reported
//! and refused, never changed.

use serde_json::{Map, Value, json};

use crate::authentik::Application;
use crate::context::Context;
use crate::error::FlowError;
use crate::report::{Applied, Drift};

/// `meta_publisher` of every application pma-sso creates: how `orphans` and `adopt` tell ours
/// from hand-made ones.
pub const PUBLISHER: &str = "pma-sso";

/// The application fields we own.
pub struct AppSpec {
    pub slug: String,
    pub name: String,
    /// Whether the manifest sets the name (`display_name`). Without it the name is only the
    /// default of a new application: an adopted application keeps its display name, and a
    /// rename in authentik is not drift.
    pub owns_name: bool,
    pub launch_url: String,
    /// The provider it links to, by natural key (for messages).
    pub provider_name: String,
}

/// Differences in the fields we own, and the PATCH body that repairs them.
fn diff(
    spec: &AppSpec,
    app: &Application,
    provider_pk: Option<i64>,
) -> (Vec<Drift>, Map<String, Value>) {
    let mut drifts = Vec::new();
    let mut patch = Map::new();
    let slug = &spec.slug;
    match provider_pk {
        Some(pk) if app.provider != Some(pk) => {
            drifts.push(Drift::new(
                "application.provider",
                format!(
                    "authentik app {slug} is not linked to provider {}",
                    spec.provider_name
                ),
                format!("link application {slug} to provider {}", spec.provider_name),
            ));
            patch.insert("provider".into(), json!(pk));
        }
        // The provider is missing: `fix` creates it, then links the application to it — a
        // write `plan` must list too.
        None => drifts.push(Drift::new(
            "application.provider",
            format!(
                "authentik app {slug} is not linked to provider {} (missing)",
                spec.provider_name
            ),
            format!(
                "link application {slug} to provider {} once created",
                spec.provider_name
            ),
        )),
        Some(_) => {}
    }
    if app.meta_launch_url != spec.launch_url {
        drifts.push(Drift::new(
            "application.meta_launch_url",
            format!(
                "launch URL mismatch: want {}, authentik has {}",
                spec.launch_url,
                if app.meta_launch_url.is_empty() {
                    "none"
                } else {
                    &app.meta_launch_url
                }
            ),
            format!("set meta_launch_url on application {slug}"),
        ));
        patch.insert("meta_launch_url".into(), json!(spec.launch_url));
    }
    if spec.owns_name && app.name != spec.name {
        drifts.push(Drift::new(
            "application.name",
            format!(
                "application name mismatch: want {}, authentik has {}",
                spec.name, app.name
            ),
            format!("rename application {slug}"),
        ));
        patch.insert("name".into(), json!(spec.name));
    }
    (drifts, patch)
}

/// Drift of the application: missing, not ours, or differing. `provider_pk` is the live
/// provider's pk, when there is one.
pub fn check(spec: &AppSpec, app: Option<&Application>, provider_pk: Option<i64>) -> Vec<Drift> {
    match app {
        None => vec![Drift::new(
            "application",
            "authentik app missing",
            format!("create application {}", spec.slug),
        )],
        Some(app) if app.meta_publisher != PUBLISHER => vec![Drift::new(
            "application",
            format!(
                "authentik app {} exists but is not managed by pma-sso",
                spec.slug
            ),
            "nothing: pma-sso leaves it alone until it is adopted",
        )],
        Some(app) => diff(spec, app, provider_pk).0,
    }
}

/// `adopt`'s preview: the application as it will be once marked ours, so the flows' own check
/// reports how it differs from the manifest instead of only "not managed by pma-sso".
pub fn as_adopted(app: &Application) -> Application {
    Application {
        meta_publisher: PUBLISHER.to_owned(),
        ..app.clone()
    }
}

/// Never touch what is not ours: called before anything is created.
pub fn refuse_foreign(slug: &str, app: Option<&Application>) -> Result<(), FlowError> {
    match app {
        Some(app) if app.meta_publisher != PUBLISHER => Err(FlowError::ForeignApplication {
            slug: slug.to_owned(),
            publisher: app.meta_publisher.clone(),
        }),
        _ => Ok(()),
    }
}

/// Create the application, or patch the fields that differ.
pub async fn apply(
    ctx: &Context,
    spec: &AppSpec,
    app: Option<&Application>,
    provider_pk: i64,
    applied: &mut Applied,
) -> Result<(), FlowError> {
    let client = &ctx.authentik;
    match app {
        None => {
            let body = json!({
                "name": spec.name,
                "slug": spec.slug,
                "provider": provider_pk,
                "meta_launch_url": spec.launch_url,
                "meta_publisher": PUBLISHER,
            });
            client.create_application(&body).await.map_err(|source| {
                FlowError::CreateApplication {
                    slug: spec.slug.clone(),
                    source,
                }
            })?;
            applied.did(format!("created application {}", spec.slug));
        }
        Some(app) => {
            let (_, patch) = diff(spec, app, Some(provider_pk));
            if !patch.is_empty() {
                let fields: Vec<String> = patch.keys().cloned().collect();
                client
                    .patch_application(&app.slug, &Value::Object(patch))
                    .await
                    .map_err(|source| FlowError::UpdateApplication {
                        slug: spec.slug.clone(),
                        source,
                    })?;
                applied.did(format!(
                    "updated application {} ({})",
                    spec.slug,
                    fields.join(", ")
                ));
            }
        }
    }
    Ok(())
}
