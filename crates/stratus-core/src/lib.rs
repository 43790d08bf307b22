//! Shared building blocks of stratus: the AWS error type, ARNs, identifiers,
//! timestamps and the server configuration.
//!
//! Everything here is free of I/O so every other crate can depend on it.

pub mod arn;
pub mod config;
pub mod error;
pub mod targets;
pub mod time;

pub use arn::FunctionRef;
pub use config::Config;
pub use error::{AwsError, AwsResult};
pub use targets::{Delivery, MessageAttribute, Target, Targets};

/// The account id used in ARNs when none is configured (AWS's documentation
/// examples use `123456789012`, so examples run as written).
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";

/// The region used when a request carries no SigV4 credential scope.
pub const DEFAULT_REGION: &str = "us-east-1";

/// A random request id in AWS's format (a lowercase hyphenated UUID v4).
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A random 32-character lowercase hex string, as used in log stream names.
pub fn hex32() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
