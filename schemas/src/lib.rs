#![doc = include_str!("../README.md")]

pub mod job;
pub mod manifest;
pub mod names;
pub mod outcome;
pub mod template;

pub use manifest::{
    Delivery, Manifest, ManifestError, Package, Sso, SsoKind, load_package, load_packages,
    parse_manifest,
};
pub use names::{EnvKey, RedirectPath, RelPath, ServiceName, Slug};
pub use template::{Part, Template, Var};
