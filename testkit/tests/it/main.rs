//! Drives the authentik stand-in over HTTP, the way the reconciler will.

mod auth;
mod binary;
mod errors;
mod faults;
mod frappe;
mod keypairs;
mod notifications;
mod outposts;
mod pagination;
mod protocol;
mod providers;
mod proxy;
mod saml;
mod schema;
mod shapes;
mod support;
mod wikijs;
mod zammad;
