//! The Lambda service: functions (control plane) and invoke.

pub mod invoke;
pub mod model;
pub mod service;

pub use invoke::{InvokeRequest, InvokeResponse};
pub use service::Lambda;
