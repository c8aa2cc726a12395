//! Reports and apply results are plain data that cross process boundaries (job outcomes in
//! PostgreSQL, CLI output), so they live in `schemas`.

pub use schemas::outcome::{Applied, Drift, Report};
