//! Amazon EventBridge: event buses, rules (event patterns and schedules),
//! targets and PutEvents (json 1.1, `AWSEvents.*`), durable in the store.

pub mod pattern;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use stratus_core::{AwsError, AwsResult, Config, Targets};
use stratus_store::Store;

/// `X-Amz-Target` prefix.
pub const TARGET_PREFIX: &str = "AWSEvents";

/// The EventBridge service.
pub struct Events {
    #[allow(dead_code)]
    store: Store,
}

impl Events {
    /// Opens the service's tables in `store`.
    ///
    /// Errors: the tables cannot be created.
    pub fn new(store: Store, _config: &Config, _targets: Targets) -> Result<Arc<Events>, String> {
        Ok(Arc::new(Events { store }))
    }

    /// Answers one json-protocol operation.
    pub async fn call(&self, _region: &str, op: &str, _body: Bytes) -> AwsResult<Value> {
        Err(AwsError::new(
            400,
            "UnknownOperationException",
            format!("EventBridge operation {op} is not available yet."),
        ))
    }

    /// Starts background work (scheduled rules, target delivery retries).
    pub fn spawn(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        Vec::new()
    }
}

impl stratus_core::Target for Events {
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
