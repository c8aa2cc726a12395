#![doc = include_str!("../README.md")]

pub mod authentik;
pub mod faultproxy;
pub mod frappe;
pub mod pg;
pub mod platform;
pub mod process;
pub mod real;
pub mod recorder;
pub mod secrets;
pub mod servers;
pub mod wikijs;
pub mod zammad;

pub use authentik::{AuthentikSim, Faults, RecordedRequest, SimHandle};
pub use faultproxy::FaultProxy;
pub use frappe::{FrappeHandle, FrappeSim};
pub use platform::PlatformSim;
pub use real::RealAuthentik;
pub use recorder::Recorder;
pub use wikijs::{WikijsHandle, WikijsSim};
pub use zammad::{ZammadHandle, ZammadSim};
