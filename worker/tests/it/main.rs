//! Integration tests of the reconcile engine against the loopback authentik stand-in.
mod support;

mod concurrency;
mod drift;
mod oauth_oidc;
mod redaction;
mod request_schemas;
