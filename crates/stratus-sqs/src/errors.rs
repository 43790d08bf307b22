//! SQS errors in both wire protocols.
//!
//! botocore's `sqs/2012-11-05` model is json 1.0 with `awsQueryCompatible`:
//! an error's body carries `__type` = `com.amazonaws.sqs#<Shape>` (the
//! modeled exception shape, which boto3 raises, e.g. `QueueDoesNotExist`)
//! and the header `x-amzn-query-error: <QueryCode>;Sender` carries the code
//! the query protocol uses (`AWS.SimpleQueueService.NonExistentQueue`),
//! which botocore reports as `Error.Code`. The query protocol answers
//! `<Code>` = the query code.
//!
//! An [`AwsError`] built here has `code` = the query code and two extra
//! fields the json codec uses: `__type` (the body field) and
//! `x-amzn-query-error` (sent as a header).

use stratus_core::AwsError;

/// Builds an SQS error: `shape` is the botocore exception shape (json
/// `__type`), `query_code` the query-protocol code (AWS's "Common Errors"
/// and each action's "Errors" section of the SQS API reference).
pub fn sqs_error(
    status: u16,
    shape: &str,
    query_code: &str,
    message: impl Into<String>,
) -> AwsError {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    AwsError::new(status, query_code, message)
        .with_field("__type", format!("com.amazonaws.sqs#{shape}"))
        .with_field("x-amzn-query-error", format!("{query_code};{kind}"))
}

/// `QueueDoesNotExist` / `AWS.SimpleQueueService.NonExistentQueue` (400).
pub fn queue_missing() -> AwsError {
    sqs_error(
        400,
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        "The specified queue does not exist.",
    )
}

/// `InvalidParameterValue` (400): a parameter has a bad value.
pub fn invalid_param(message: impl Into<String>) -> AwsError {
    sqs_error(
        400,
        "InvalidParameterValue",
        "InvalidParameterValue",
        message,
    )
}

/// `MissingParameter` (400): a required parameter is absent.
pub fn missing_param(name: &str) -> AwsError {
    sqs_error(
        400,
        "MissingParameter",
        "MissingParameter",
        format!("The request must contain the parameter {name}."),
    )
}

/// `InvalidAttributeName` (400).
pub fn invalid_attribute_name(name: &str) -> AwsError {
    sqs_error(
        400,
        "InvalidAttributeName",
        "InvalidAttributeName",
        format!("Unknown Attribute {name}."),
    )
}

/// `InvalidAttributeValue` (400).
pub fn invalid_attribute_value(name: &str, reason: &str) -> AwsError {
    sqs_error(
        400,
        "InvalidAttributeValue",
        "InvalidAttributeValue",
        format!("Invalid value for the parameter {name}. Reason: {reason}"),
    )
}

/// `ReceiptHandleIsInvalid` (400).
pub fn receipt_invalid(handle: &str) -> AwsError {
    sqs_error(
        400,
        "ReceiptHandleIsInvalid",
        "ReceiptHandleIsInvalid",
        format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
    )
}

/// `MessageNotInflight` / `AWS.SimpleQueueService.MessageNotInflight` (400).
pub fn not_inflight() -> AwsError {
    sqs_error(
        400,
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
        "The message referred to isn't in flight.",
    )
}

/// `EmptyBatchRequest` (400).
pub fn empty_batch(entry: &str) -> AwsError {
    sqs_error(
        400,
        "EmptyBatchRequest",
        "AWS.SimpleQueueService.EmptyBatchRequest",
        format!("There should be at least one {entry} in the request."),
    )
}

/// `TooManyEntriesInBatchRequest` (400): more than 10 entries.
pub fn too_many_entries(n: usize) -> AwsError {
    sqs_error(
        400,
        "TooManyEntriesInBatchRequest",
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
        format!("Maximum number of entries per request are 10. You have sent {n}."),
    )
}

/// `BatchEntryIdsNotDistinct` (400).
pub fn ids_not_distinct(id: &str) -> AwsError {
    sqs_error(
        400,
        "BatchEntryIdsNotDistinct",
        "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
        format!("Id {id} repeated."),
    )
}

/// `InvalidBatchEntryId` (400).
pub fn invalid_entry_id(id: &str) -> AwsError {
    sqs_error(
        400,
        "InvalidBatchEntryId",
        "AWS.SimpleQueueService.InvalidBatchEntryId",
        format!(
            "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long. '{id}' is not."
        ),
    )
}

/// `BatchRequestTooLong` (400): the entries together exceed 262,144 bytes.
pub fn batch_too_long(total: usize) -> AwsError {
    sqs_error(
        400,
        "BatchRequestTooLong",
        "AWS.SimpleQueueService.BatchRequestTooLong",
        format!("Batch requests cannot be longer than 262144 bytes. You have sent {total} bytes."),
    )
}

/// `QueueNameExists` / `QueueAlreadyExists` (400).
pub fn queue_exists(name: &str) -> AwsError {
    sqs_error(
        400,
        "QueueNameExists",
        "QueueAlreadyExists",
        format!("A queue already exists with the name {name} and different attributes."),
    )
}

/// `PurgeQueueInProgress` (403): a purge ran less than 60 s ago.
pub fn purge_in_progress(url: &str) -> AwsError {
    sqs_error(
        403,
        "PurgeQueueInProgress",
        "AWS.SimpleQueueService.PurgeQueueInProgress",
        format!("Only one PurgeQueue operation on {url} is allowed every 60 seconds."),
    )
}

/// `InvalidMessageContents` (400): the body has characters outside the
/// allowed set.
pub fn invalid_contents() -> AwsError {
    sqs_error(
        400,
        "InvalidMessageContents",
        "InvalidMessageContents",
        "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF.",
    )
}

/// `UnsupportedOperation` (400).
pub fn unsupported(message: impl Into<String>) -> AwsError {
    sqs_error(
        400,
        "UnsupportedOperation",
        "AWS.SimpleQueueService.UnsupportedOperation",
        message,
    )
}

/// `InvalidAction` (400): the operation is not one SQS has.
pub fn invalid_action(op: &str) -> AwsError {
    sqs_error(
        400,
        "InvalidAction",
        "InvalidAction",
        format!("The action {op} is not valid for this endpoint."),
    )
}

/// `InternalError` (500): the store failed.
pub fn store(e: stratus_store::StoreError) -> AwsError {
    sqs_error(500, "InternalError", "InternalError", e.to_string())
}
