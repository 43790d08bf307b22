//! The Lambda service: functions (control plane), versions and aliases,
//! invoke, the concurrency model and provisioned concurrency.

pub mod aliases;
pub mod async_invoke;
pub mod concurrency;
pub mod cost;
pub mod invoke;
pub mod layers;
pub mod metrics;
pub mod model;
pub mod provisioned;
pub mod service;
pub mod versions;

pub use invoke::{InvokeRequest, InvokeResponse};
pub use provisioned::{ProvisionedConcurrencyView, ProvisionedUsage};
pub use service::Lambda;
