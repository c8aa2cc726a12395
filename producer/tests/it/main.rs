//! The `pma-sso` binary as an operator runs it, against the authentik stand-in.
mod cli;
mod platform;
