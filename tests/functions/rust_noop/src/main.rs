//! A no-op Lambda function built with the `lambda_runtime` crate.
//!
//! * returns the event unchanged (`{"fail": true}` excepted);
//! * `{"fail": true}` returns `Err`, which lambda_runtime reports through
//!   `/runtime/invocation/{id}/error` (an Unhandled function error);
//! * `{"context": true}` returns some context fields instead of the event.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[derive(Debug)]
struct RequestedFailure(String);

impl std::fmt::Display for RequestedFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RequestedFailure {}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();
    if payload.get("fail").and_then(Value::as_bool) == Some(true) {
        return Err(Box::new(RequestedFailure(
            "failure requested by the event".into(),
        )));
    }
    if payload.get("context").and_then(Value::as_bool) == Some(true) {
        return Ok(json!({
            "request_id": ctx.request_id,
            "invoked_function_arn": ctx.invoked_function_arn,
            "deadline_ms": ctx.deadline,
            "function_name": ctx.env_config.function_name,
            "memory": ctx.env_config.memory,
            "version": ctx.env_config.version,
            "log_stream": ctx.env_config.log_stream,
            "log_group": ctx.env_config.log_group,
        }));
    }
    Ok(payload)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
