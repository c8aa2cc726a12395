//! `verify [svc]`: walk each service's login path against authentik's protocol endpoints with
//! the values the service holds (see `worker::verify`). `rotate <svc>|--all`: a new client
//! secret written to `.env`, pushed to authentik and the service, then verified.
//!
//! Both run in this process: the probes are reads, and a rotation must finish or be repaired
//! by the next `fix` either way. One line per service in the seed's format; exit 0 green,
//! 1 red, 2 error (an error outranks red).

use std::io::Write;

use worker::{Context, FlowError, Report};

use crate::cli::{Status, fail};

fn report_status(outcome: &Result<Report, FlowError>) -> Status {
    match outcome {
        Ok(r) if r.in_sync() => Status::Green,
        Ok(_) => Status::Drift,
        Err(_) => Status::Error,
    }
}

fn print(out: &mut dyn Write, service: &str, kind: &str, outcome: &Result<Report, FlowError>) {
    let _ = match outcome {
        Ok(report) => writeln!(out, "{}", report.line()),
        Err(e) => writeln!(out, "❌ {service} ({kind}) — error: {e}"),
    };
}

fn kind_of(ctx: &Context, service: &str) -> String {
    ctx.package(service)
        .map(|p| p.manifest.kind().to_string())
        .unwrap_or_else(|_| "?".into())
}

pub async fn verify(ctx: &Context, service: Option<&str>, out: &mut dyn Write) -> Status {
    let results = match service {
        Some(name) => vec![(name.to_owned(), worker::verify::verify(ctx, name).await)],
        None => match worker::verify::verify_all(ctx).await {
            Ok(all) => all.into_iter().map(|r| (r.service, r.outcome)).collect(),
            Err(e) => return fail(out, &e.to_string()),
        },
    };
    let mut status = Status::Green;
    for (name, outcome) in &results {
        status = status.max(report_status(outcome));
        print(out, name, &kind_of(ctx, name), outcome);
    }
    status
}

pub async fn rotate(
    ctx: &Context,
    service: Option<&str>,
    all: bool,
    out: &mut dyn Write,
) -> Status {
    let names: Vec<String> = match (service, all) {
        (Some(name), false) => vec![name.to_owned()],
        (None, true) => match ctx.service_names() {
            // Only services with a client secret; one at a time.
            Ok(names) => names
                .into_iter()
                .filter(|n| {
                    ctx.package(n)
                        .is_ok_and(|p| p.manifest.client_secret_env().is_some())
                })
                .collect(),
            Err(e) => return fail(out, &e.to_string()),
        },
        _ => return fail(out, "rotate takes one service, or --all"),
    };
    let mut status = Status::Green;
    let mut restart: Vec<String> = Vec::new();
    for name in &names {
        let kind = kind_of(ctx, name);
        match worker::rotate::rotate(ctx, name).await {
            Ok(rotated) => {
                let _ = writeln!(out, "{}", rotated.applied.line(name, &kind));
                for s in rotated.applied.restart {
                    if !restart.contains(&s) {
                        restart.push(s);
                    }
                }
                let verified = Ok(rotated.verified);
                status = status.max(report_status(&verified));
                print(out, name, &kind, &verified);
            }
            Err(e) => {
                status = Status::Error;
                let _ = writeln!(out, "❌ {name} ({kind}) — error: {e}");
            }
        }
    }
    if !restart.is_empty() {
        let _ = writeln!(out, "restart needed: {}", restart.join(", "));
    }
    status
}
