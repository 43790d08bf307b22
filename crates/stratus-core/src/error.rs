//! The error every AWS-facing operation returns.
//!
//! AWS services report an error as an HTTP status plus an error code (the
//! `x-amzn-ErrorType` header / `__type` field) and a human message. Codes and
//! statuses follow the botocore service models (for Lambda:
//! `lambda/2015-03-31/service-2.json`).

use std::fmt;

/// An error as AWS reports it: HTTP status, error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// HTTP status code (400, 404, 409, 413, 429, 500, ...).
    pub status: u16,
    /// AWS error code, e.g. `ResourceNotFoundException`.
    pub code: String,
    /// A message a person understands.
    pub message: String,
    /// `Type` field of Lambda's error body: `User` for caller errors,
    /// `Service` for ours.
    pub kind: ErrorKind,
    /// Extra top-level fields for the body (e.g. `Reason` on throttles).
    pub extra: Vec<(String, String)>,
}

/// Who caused an error (Lambda's `Type` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's request was at fault (HTTP 4xx).
    User,
    /// The service failed (HTTP 5xx).
    Service,
}

/// Result alias for AWS-facing operations.
pub type AwsResult<T> = Result<T, AwsError>;

impl AwsError {
    /// Builds an error with an explicit status, code and message.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        AwsError {
            status,
            code: code.to_string(),
            message: message.into(),
            kind: if status >= 500 {
                ErrorKind::Service
            } else {
                ErrorKind::User
            },
            extra: Vec::new(),
        }
    }

    /// Adds an extra top-level body field (such as `Reason`).
    pub fn with_field(mut self, key: &str, value: impl Into<String>) -> Self {
        self.extra.push((key.to_string(), value.into()));
        self
    }

    /// `InvalidParameterValueException` (400): a parameter has a bad value.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameterValueException", message)
    }

    /// `ValidationException` (400): a parameter fails the service model's
    /// constraints (length, range, pattern, enum). The message follows AWS's
    /// `1 validation error detected: Value 'x' at 'field' failed to satisfy
    /// constraint: ...` form; use [`AwsError::validation_errors`] to build it.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "ValidationException", message)
    }

    /// Builds one `ValidationException` from a list of constraint failures,
    /// worded as AWS words them.
    pub fn validation_errors(failures: &[String]) -> Self {
        let n = failures.len();
        let noun = if n == 1 { "error" } else { "errors" };
        Self::validation(format!(
            "{n} validation {noun} detected: {}",
            failures.join("; ")
        ))
    }

    /// `ResourceNotFoundException` (404).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "ResourceNotFoundException", message)
    }

    /// `ResourceConflictException` (409).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "ResourceConflictException", message)
    }

    /// `ServiceException` (500): something failed inside stratus.
    pub fn service(message: impl Into<String>) -> Self {
        Self::new(500, "ServiceException", message)
    }

    /// `InvalidRequestContentException` (400): the body is not valid JSON or
    /// does not match the operation's shape.
    pub fn invalid_request_content(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidRequestContentException", message)
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for AwsError {}
