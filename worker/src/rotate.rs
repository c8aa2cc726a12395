//! `rotate`: a new client secret for one service, end to end.
//!
//! The order makes `.env` the source of truth from the first step, so a crash anywhere leaves
//! a state the next `fix` repairs:
//!
//! 1. the new secret is written to `.env` (atomic, under the `.env` lock). A crash here: `.env`
//!    holds the new secret, authentik and the service the old one — `check` reports the secret
//!    mismatch and `fix` pushes `.env` to both.
//! 2. `fix` runs: it sets `client_secret` on the provider (a PATCH of that field alone, since
//!    nothing else differs) and re-delivers the service's native settings. A crash half way is
//!    the same state as above, partly repaired.
//! 3. `verify` proves the new secret is accepted at the token endpoint.
//!
//! The old secret is never read into a report, an action or an error: nothing here names it.

use rand::Rng;
use schemas::job::Action;

use crate::context::Context;
use crate::envfile;
use crate::error::FlowError;
use crate::report::{Applied, Report};
use crate::verify;

/// Length of a generated secret: 64 letters and digits (~380 bits).
pub const SECRET_LEN: usize = 64;

/// What a rotation did, and how the login path looks afterwards.
pub struct Rotated {
    pub applied: Applied,
    pub verified: Report,
}

fn new_secret() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(SECRET_LEN)
        .map(char::from)
        .collect()
}

/// Rotate one service's client secret. Services without an OAuth2 client (saml, proxy) have
/// no secret to rotate.
pub async fn rotate(ctx: &Context, name: &str) -> Result<Rotated, FlowError> {
    let package = ctx.package(name)?;
    let m = &package.manifest;
    let key = m
        .client_secret_env()
        .ok_or(FlowError::NoOAuthClient { kind: m.kind() })?;
    let secret = new_secret();
    envfile::update(&ctx.settings.env_path, &[(key.as_str(), Some(&secret))])
        .map_err(FlowError::WriteEnv)?;
    drop(secret);
    let fixed = ctx.apply(name, Action::Fix).await?;
    let mut applied = Applied::default();
    applied.did(format!("wrote a new client secret to .env as {key}"));
    applied.actions.extend(fixed.actions);
    applied.restart(fixed.restart);
    let verified = verify::verify(ctx, name).await?;
    Ok(Rotated { applied, verified })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_alphanumeric_and_fresh() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), SECRET_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
