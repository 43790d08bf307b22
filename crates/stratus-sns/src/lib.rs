//! Amazon SNS: topics, subscriptions (lambda, sqs) and publishing (query
//! protocol), durable in the store.

use std::sync::Arc;

use stratus_core::{AwsError, AwsResult, Config, Targets};
use stratus_store::Store;

/// XML namespace of query-protocol answers.
pub const XMLNS: &str = "http://sns.amazonaws.com/doc/2010-03-31/";
/// Query-protocol actions (used to route unsigned requests).
pub const ACTIONS: &[&str] = &[];

/// The SNS service.
pub struct Sns {
    #[allow(dead_code)]
    store: Store,
}

impl Sns {
    /// Opens the service's tables in `store`.
    ///
    /// Errors: the tables cannot be created.
    pub fn new(store: Store, _config: &Config, _targets: Targets) -> Result<Arc<Sns>, String> {
        Ok(Arc::new(Sns { store }))
    }

    /// Answers one query-protocol action with the inner XML of its result.
    pub async fn call_query(
        &self,
        _region: &str,
        action: &str,
        _params: &[(String, String)],
    ) -> AwsResult<String> {
        Err(AwsError::new(
            400,
            "InvalidAction",
            format!("SNS action {action} is not available yet."),
        ))
    }

    /// Starts background work (delivery retries).
    pub fn spawn(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        Vec::new()
    }
}

impl stratus_core::Target for Sns {
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
