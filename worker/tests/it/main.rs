//! Integration tests of the reconcile engine against the loopback authentik stand-in.
mod support;

mod authentik_limits;
mod concurrency;
mod drift;
mod frappe;
mod hostile;
mod oauth_oidc;
mod pipeline;
mod plan_fix;
mod proxy;
mod redaction;
mod request_retry;
mod request_schemas;
mod saml;
mod wikijs;
