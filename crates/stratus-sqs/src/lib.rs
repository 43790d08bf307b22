//! Amazon SQS: queues and messages (json protocol `AmazonSQS.*` and the
//! query protocol), durable in the store; and Lambda event source mappings
//! from SQS queues to functions.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use stratus_core::{AwsError, AwsResult, Config, Targets};
use stratus_lambda::Lambda;
use stratus_store::Store;

/// `X-Amz-Target` prefix of the json protocol.
pub const TARGET_PREFIX: &str = "AmazonSQS";
/// XML namespace of query-protocol answers.
pub const XMLNS: &str = "http://queue.amazonaws.com/doc/2012-11-05/";
/// Query-protocol actions (used to route unsigned requests).
pub const ACTIONS: &[&str] = &[];

/// The SQS service.
pub struct Sqs {
    #[allow(dead_code)]
    store: Store,
}

impl Sqs {
    /// Opens the service's tables in `store`.
    ///
    /// Errors: the tables cannot be created.
    pub fn new(
        store: Store,
        _config: &Config,
        _targets: Targets,
        _lambda: Arc<Lambda>,
    ) -> Result<Arc<Sqs>, String> {
        Ok(Arc::new(Sqs { store }))
    }

    /// Answers one json-protocol operation.
    pub async fn call_json(&self, _region: &str, op: &str, _body: Bytes) -> AwsResult<Value> {
        Err(AwsError::new(
            400,
            "InvalidAction",
            format!("SQS action {op} is not available yet."),
        ))
    }

    /// Answers one query-protocol action with the inner XML of its result.
    pub async fn call_query(
        &self,
        _region: &str,
        action: &str,
        _params: &[(String, String)],
        _path: &str,
    ) -> AwsResult<String> {
        Err(AwsError::new(
            400,
            "InvalidAction",
            format!("SQS action {action} is not available yet."),
        ))
    }

    /// Starts background work (delayed messages, event source mappings).
    pub fn spawn(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        Vec::new()
    }

    /// The Lambda REST routes for event source mappings
    /// (`/2015-03-31/event-source-mappings/...`).
    pub fn esm_router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
    }
}

impl stratus_core::Target for Sqs {
    fn deliver<'a>(
        &'a self,
        arn: &'a str,
        _delivery: stratus_core::Delivery,
    ) -> stratus_core::targets::BoxFuture<'a, AwsResult<String>> {
        Box::pin(async move {
            Err(AwsError::invalid_parameter(format!(
                "cannot deliver to {arn} yet"
            )))
        })
    }
}
