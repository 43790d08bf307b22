//! CloudWatch errors in both wire protocols.
//!
//! botocore's `cloudwatch/2010-08-01` model is json 1.0 (and query) with
//! `awsQueryCompatible`: an error's json body carries `__type` = the
//! modeled exception shape (`InvalidParameterValueException`) and the
//! header `x-amzn-query-error: <QueryCode>;Sender` carries the code the
//! query protocol uses (`InvalidParameterValue`), which botocore reports as
//! `Error.Code`. The query protocol answers `<Code>` = the query code.

use stratus_core::AwsError;

/// Builds a CloudWatch error: `shape` is the botocore exception shape (json
/// `__type`), `query_code` its `error.code` in the model (what clients see).
pub fn cw_error(
    status: u16,
    shape: &str,
    query_code: &str,
    message: impl Into<String>,
) -> AwsError {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    AwsError::new(status, query_code, message)
        .with_field("__type", format!("com.amazonaws.cloudwatch#{shape}"))
        .with_field("x-amzn-query-error", format!("{query_code};{kind}"))
}

/// `InvalidParameterValue` (400): a parameter has a value CloudWatch rejects.
pub fn invalid_value(message: impl Into<String>) -> AwsError {
    cw_error(
        400,
        "InvalidParameterValueException",
        "InvalidParameterValue",
        message,
    )
}

/// `InvalidParameterCombination` (400): parameters that cannot go together
/// (or a required one of a pair is missing).
pub fn invalid_combination(message: impl Into<String>) -> AwsError {
    cw_error(
        400,
        "InvalidParameterCombinationException",
        "InvalidParameterCombination",
        message,
    )
}

/// `MissingParameter` (400): a required parameter is absent.
pub fn missing(name: &str) -> AwsError {
    cw_error(
        400,
        "MissingRequiredParameterException",
        "MissingParameter",
        format!("The parameter {name} is required."),
    )
}

/// `InvalidNextToken` (400): a paging token this service did not hand out.
pub fn invalid_token(token: &str) -> AwsError {
    cw_error(
        400,
        "InvalidNextToken",
        "InvalidNextToken",
        format!("The NextToken '{token}' is invalid or has expired."),
    )
}

/// `ValidationError` (400): AWS's common error for a request that does not
/// satisfy an operation's rules (GetMetricData has no modeled parameter
/// errors; AWS answers its bad queries with this code).
pub fn validation(message: impl Into<String>) -> AwsError {
    cw_error(400, "ValidationError", "ValidationError", message)
}

/// `InternalServiceError` (500): the store failed.
pub fn internal(message: impl Into<String>) -> AwsError {
    cw_error(500, "InternalServiceFault", "InternalServiceError", message)
}

/// A store failure as `InternalServiceError` (500).
pub fn store_err(e: stratus_store::StoreError) -> AwsError {
    internal(e.to_string())
}
