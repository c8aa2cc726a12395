#![doc = include_str!("../README.md")]

pub mod authentik;

pub use authentik::{AuthentikSim, Faults, RecordedRequest, SimHandle};
