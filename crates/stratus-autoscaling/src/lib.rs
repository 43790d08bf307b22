//! Application Auto Scaling for Lambda provisioned concurrency
//! (`lambda:function:ProvisionedConcurrency`): scalable targets, target
//! tracking scaling policies on `LambdaProvisionedConcurrencyUtilization`,
//! scheduled actions (`at()`, `rate()`, `cron()`) and scaling activities,
//! behind AWS's json-1.1 API (`X-Amz-Target: AnyScaleFrontendService.*`).
//!
//! * [`schedule`]: the schedule expressions, evaluated as pure functions.
//! * [`tracking`]: the utilization metric, its alarms and the scaling
//!   decision, as pure functions of samples and time.
//! * [`service`]: the API operations over the store and the Lambda service.
//! * [`engine`]: the background task that samples, decides and acts.
//!
//! See docs/autoscaling.md.

pub mod engine;
pub mod model;
pub mod schedule;
pub mod service;
pub mod tracking;

pub use service::{AutoScaling, Clock, OPERATIONS};

/// The `X-Amz-Target` prefix of the service.
pub const TARGET_PREFIX: &str = "AnyScaleFrontendService";
