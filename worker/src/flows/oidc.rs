//! `oidc`: the same OAuth2 provider, consumed through discovery. The service validates the
//! issuer and ID-token signatures, so the provider must issue per-provider issuers (the
//! discovery URL we deliver is `<public authentik>/application/o/<slug>/`), offer `openid`,
//! and sign with a keypair.

use super::{Flow, Service, apply_deliveries, check_deliveries, oauth2, report};
use crate::context::Context;
use crate::error::FlowError;
use crate::live::Live;
use crate::render::Extras;
use crate::report::{Applied, Report};

pub struct Oidc;

const OPTIONS: oauth2::Options = oauth2::Options {
    issuer_mode: Some("per_provider"),
};

fn require_openid(svc: &Service<'_>) -> Result<(), FlowError> {
    let view = svc.package.manifest.oauth();
    let has_openid = view
        .as_ref()
        .is_some_and(|v| v.client.scopes.iter().any(|s| s == "openid"));
    if has_openid {
        Ok(())
    } else {
        Err(FlowError::Render {
            field: "sso.client.scopes".into(),
            problem: "an oidc client needs the `openid` scope".into(),
        })
    }
}

impl Flow for Oidc {
    async fn check(
        &self,
        ctx: &Context,
        svc: &Service<'_>,
        live: &Live<'_>,
    ) -> Result<Report, FlowError> {
        require_openid(svc)?;
        let mut drifts = oauth2::check(ctx, svc, live, &OPTIONS)?;
        drifts.extend(check_deliveries(ctx, svc, &Extras::default()).await?);
        Ok(report(
            svc,
            "authentik app present, redirects match",
            drifts,
        ))
    }

    async fn apply(
        &self,
        ctx: &Context,
        svc: &Service<'_>,
        live: &Live<'_>,
    ) -> Result<Applied, FlowError> {
        require_openid(svc)?;
        let mut applied = oauth2::apply(ctx, svc, live, &OPTIONS).await?;
        apply_deliveries(ctx, svc, &Extras::default(), &mut applied).await?;
        Ok(applied)
    }
}
