//! The `pma-sso` binary as an operator runs it, against the authentik stand-in.
mod adopt;
mod cli;
mod git_hook;
mod history;
mod init;
mod orphans;
mod plan;
mod platform;
mod retry;
mod serve;
mod status;
mod sweep;
mod webhook;
mod webhook_install;
