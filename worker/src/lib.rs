#![doc = include_str!("../README.md")]

pub mod authentik;
pub mod committed;
pub mod context;
pub mod deliver;
pub mod engine;
pub mod envfile;
pub mod error;
pub mod flows;
pub mod frappe;
pub mod live;
pub mod manifest_edit;
pub mod pipeline;
pub mod render;
pub mod report;
pub mod rotate;
pub mod settings;
pub mod startup;
pub mod verify;
pub mod wikijs;

pub use context::{Action, Context, ServiceResult};
pub use error::FlowError;
pub use report::{Applied, Drift, Report};
pub use settings::Settings;
