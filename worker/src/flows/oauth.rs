//! `oauth`: a confidential OAuth2 client given explicit authorize/token/userinfo endpoints.

use super::{Flow, Service, apply_deliveries, check_deliveries, oauth2, report};
use crate::context::Context;
use crate::error::FlowError;
use crate::live::Live;
use crate::render::Extras;
use crate::report::{Applied, Report};

pub struct OAuth;

/// Clients given explicit endpoints never read the issuer, so its mode is not ours to pin.
const OPTIONS: oauth2::Options = oauth2::Options { issuer_mode: None };

impl Flow for OAuth {
    async fn check(
        &self,
        ctx: &Context,
        svc: &Service<'_>,
        live: &Live<'_>,
    ) -> Result<Report, FlowError> {
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
        let mut applied = oauth2::apply(ctx, svc, live, &OPTIONS).await?;
        apply_deliveries(ctx, svc, &Extras::default(), &mut applied).await?;
        Ok(applied)
    }
}
