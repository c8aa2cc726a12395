//! `verify [svc]`: walk each service's login path against authentik's protocol endpoints with
//! the values the service holds (see `worker::verify`). `rotate <svc>|--all`: a new client
//! secret written to `.env`, pushed to authentik and the service, then verified (see
//! `worker::rotate`).
//!
//! Both go through the job queue like `check` and `fix` (a `verify` job is recorded like a
//! check; a `rotate` job holds the service's lock like `fix`), or run in this process with
//! `--inline`. `rotate --all` covers every service with a client secret, one at a time. One
//! line per service in the seed's format (a rotation prints what it did, then its verify
//! line); exit 0 green, 1 red, 2 error (an error outranks red).
//!
//! `verify` has three states: verified (`✓`, every probe for the type ran and passed), red
//! (`❌`, each failed probe's reason) and unverified (`⚠ … not probed: <why>`: no outpost URL,
//! no deliveries to read back, …), and a closing line counting each. Exit 2 on an error, 1 if
//! anything is red, else 0; `--strict` also makes unverified exit 1.

use std::io::Write;

use schemas::job::Action;
use worker::Context;

use super::Options;
use super::jobs::{self, Shape, Target};
use crate::cli::{Status, fail};

pub async fn verify(
    ctx: &Context,
    opts: &Options,
    service: Option<&str>,
    strict: bool,
    out: &mut dyn Write,
) -> Status {
    jobs::run(
        ctx,
        opts,
        Action::Verify,
        service,
        Shape::Verify { strict },
        out,
    )
    .await
}

pub async fn rotate(
    ctx: &Context,
    opts: &Options,
    service: Option<&str>,
    all: bool,
    out: &mut dyn Write,
) -> Status {
    let target = match (service, all) {
        (Some(name), false) => Target::One(name),
        (None, true) => match ctx.service_names() {
            // Only services with a client secret; saml and proxy have none.
            Ok(names) => Target::These(
                names
                    .into_iter()
                    .filter(|n| {
                        ctx.package(n)
                            .is_ok_and(|p| p.manifest.client_secret_env().is_some())
                    })
                    .collect(),
            ),
            Err(e) => return fail(out, &e.to_string()),
        },
        _ => return fail(out, "rotate takes one service, or --all"),
    };
    jobs::run_target(ctx, opts, Action::Rotate, target, Shape::Lines, out).await
}
