//! One file per operator command; `cli.rs` parses and dispatches.

pub mod adopt;
pub mod doctor;
pub mod enqueue;
pub mod git_hook;
pub mod history;
pub mod init;
pub mod jobs;
pub mod orphans;
pub mod progress;
pub mod prune;
pub mod retry;
pub mod serve;
pub mod status;
pub mod verify;
pub mod webhook;

use std::time::Duration;

use worker::Context;
use worker::envfile::EnvFile;
use worker::pipeline::PipelineSettings;
use worker::pipeline::client::JobClient;

/// Flags shared by every command.
pub struct Options {
    pub inline: bool,
    pub json: bool,
    pub pickup_timeout: Duration,
    pub wait_timeout: Duration,
}

/// Pipeline settings: the process environment first, then `.env`.
pub fn pipeline_settings(ctx: &Context) -> Result<PipelineSettings, String> {
    let env = EnvFile::read(&ctx.settings.env_path).map_err(|e| e.to_string())?;
    let lookup = |key: &str| {
        std::env::var(key)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| env.get(key).filter(|v| !v.is_empty()).map(str::to_owned))
    };
    PipelineSettings::from_lookup(&lookup).map_err(|e| format!("settings: {e}"))
}

/// Connect to the pipeline's database and broker, naming both when either is missing.
pub async fn job_client(pipeline: &PipelineSettings) -> Result<JobClient, String> {
    JobClient::connect(pipeline).await.map_err(|e| {
        format!("{e} (the job queue needs PostgreSQL at DATABASE_URL and RabbitMQ at AMQP_URL; --inline runs without them)")
    })
}
