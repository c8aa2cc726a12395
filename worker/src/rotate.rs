//! `rotate`: a new client secret for one service, end to end.
//!
//! The order makes `.env` the source of truth from the first step, so a crash anywhere leaves
//! a state the next `fix` repairs:
//!
//! 1. the new secret is written to `.env` (atomic, under the `.env` lock). A crash here: `.env`
//!    holds the new secret, authentik and the service the old one — `check` reports the secret
//!    mismatch and `fix` pushes `.env` to both.
//! 2. `fix` runs: it sets `client_secret` on the provider (a PATCH of that field alone, since
//!    nothing else differs) and re-delivers the service's native settings. A crash between
//!    the two leaves authentik on the new secret and the service on the old one: `verify`
//!    reports it (the delivery is stale, or the service's own secret differs) and `fix`
//!    re-delivers.
//! 3. `verify` proves the new secret is accepted at the token endpoint. A crash before it
//!    leaves everything rotated and unproven; the next `verify` proves it.
//!
//! Run as a job (`Action::Rotate`), a rotation holds the service's advisory lock like `fix`, so
//! it never interleaves with another job for the same service. A retried attempt rotates
//! again from step 1 with a fresh secret, which converges the same way.
//!
//! Neither secret is ever put in a report, an action or an error. The outcome names them by a
//! keyed fingerprint: HMAC-SHA256 under the installation's own key
//! (`<state dir>/fingerprint.key`, also used for delivery fingerprints), first 16 hex digits —
//! enough to tell secrets apart, useless without the key.

use hmac::{Hmac, Mac};
use rand::Rng;
use schemas::job::Action;
use sha2::Sha256;

use crate::context::Context;
use crate::deliver;
use crate::envfile::{self, EnvFile};
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

/// `hmac-sha256:` and the first 16 hex digits of HMAC-SHA256(key, secret).
pub fn keyed_fingerprint(key: &[u8], secret: &str) -> String {
    // HMAC takes keys of any length: `new_from_slice` does not fail for it.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(secret.as_bytes());
            let digest = hex::encode(mac.finalize().into_bytes());
            format!("hmac-sha256:{}", &digest[..16])
        }
        Err(_) => "hmac-sha256:(no key)".to_owned(),
    }
}

/// The installation's fingerprint key (created on first use).
pub fn fingerprint_key(ctx: &Context) -> Result<Vec<u8>, FlowError> {
    deliver::fingerprint_key(&ctx.settings.state_dir).map_err(|e| FlowError::PackageFile {
        path: ctx
            .settings
            .state_dir
            .join("fingerprint.key")
            .display()
            .to_string(),
        problem: e.to_string(),
    })
}

/// Rotate one service's client secret. Services without an OAuth2 client (saml, proxy) have
/// no secret to rotate.
pub async fn rotate(ctx: &Context, name: &str) -> Result<Rotated, FlowError> {
    let package = ctx.package(name)?;
    let m = &package.manifest;
    let key = m
        .client_secret_env()
        .ok_or(FlowError::NoOAuthClient { kind: m.kind() })?;
    // Everything that can fail before the write, fails before it.
    let fingerprint_key = fingerprint_key(ctx)?;
    let env = EnvFile::read(&ctx.settings.env_path).map_err(FlowError::ReadEnv)?;
    let old = env
        .get(key.as_str())
        .filter(|s| !s.is_empty())
        .map(|s| keyed_fingerprint(&fingerprint_key, s));
    drop(env);

    let secret = new_secret();
    let new = keyed_fingerprint(&fingerprint_key, &secret);
    envfile::update(&ctx.settings.env_path, &[(key.as_str(), Some(&secret))])
        .map_err(FlowError::WriteEnv)?;
    drop(secret);

    let mut applied = Applied::default();
    applied.did(format!("wrote a new client secret to .env as {key}"));
    let fixed = ctx.apply(name, Action::Fix).await?;
    applied.actions.extend(fixed.actions);
    applied.restart(fixed.restart);
    applied.did(format!(
        "secret {new} replaces {}",
        old.as_deref().unwrap_or("none")
    ));
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

    #[test]
    fn fingerprints_depend_on_the_key_and_never_show_the_secret() {
        let secret = "s3cret-value";
        let a = keyed_fingerprint(&[1u8; 32], secret);
        let b = keyed_fingerprint(&[2u8; 32], secret);
        assert!(a.starts_with("hmac-sha256:") && a.len() == "hmac-sha256:".len() + 16);
        assert_ne!(a, b, "the key must matter");
        assert_eq!(a, keyed_fingerprint(&[1u8; 32], secret));
        assert_ne!(a, keyed_fingerprint(&[1u8; 32], "other"));
        assert!(!a.contains(secret));
        use sha2::Digest;
        let plain = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
        assert!(!plain.starts_with(&a["hmac-sha256:".len()..]));
    }
}
