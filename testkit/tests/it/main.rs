//! Drives the authentik stand-in over HTTP, the way the reconciler will.

mod auth;
mod binary;
mod errors;
mod faults;
mod outposts;
mod pagination;
mod providers;
mod schema;
mod shapes;
mod support;
