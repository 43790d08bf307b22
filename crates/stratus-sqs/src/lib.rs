//! Amazon SQS: queues and messages (json protocol `AmazonSQS.*` and the
//! query protocol), durable in the store; and Lambda event source mappings
//! from SQS queues to functions.
//!
//! Layout: [`service`] implements the operations on json-protocol shapes
//! (botocore `sqs/2012-11-05`); [`query`] translates the query protocol to
//! and from them; [`messages`] is the SQL of the message store;
//! [`queue`] the queue attributes; [`attrs`] message attributes and their
//! MD5 digests; [`errors`] SQS's error codes in both protocols; [`esm`] the
//! event source mappings (Lambda `2015-03-31` REST API) and their pollers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use stratus_core::{AwsError, AwsResult, Config, Targets};
use stratus_lambda::Lambda;
use stratus_store::Store;

pub mod attrs;
pub mod errors;
pub mod esm;
pub mod messages;
pub mod query;
pub mod queue;
pub mod service;

pub use service::{Core, SendInput, SendResult};

/// `X-Amz-Target` prefix of the json protocol.
pub const TARGET_PREFIX: &str = "AmazonSQS";
/// XML namespace of query-protocol answers.
pub const XMLNS: &str = "http://queue.amazonaws.com/doc/2012-11-05/";
/// Query-protocol actions (used to route unsigned requests).
pub const ACTIONS: &[&str] = &[
    "CreateQueue",
    "DeleteQueue",
    "GetQueueUrl",
    "ListQueues",
    "GetQueueAttributes",
    "SetQueueAttributes",
    "PurgeQueue",
    "SendMessage",
    "SendMessageBatch",
    "ReceiveMessage",
    "DeleteMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch",
    "TagQueue",
    "UntagQueue",
    "ListQueueTags",
    "ListDeadLetterSourceQueues",
];

/// How often messages past their retention period are deleted.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// The SQS service.
pub struct Sqs {
    core: Arc<Core>,
    esm: Arc<esm::Esm>,
}

impl Sqs {
    /// Opens the service's tables in `store` and loads its queues and event
    /// source mappings.
    ///
    /// Errors: the tables cannot be created or read.
    pub fn new(
        store: Store,
        config: &Config,
        _targets: Targets,
        lambda: Arc<Lambda>,
    ) -> Result<Arc<Sqs>, String> {
        let core = Arc::new(Core::open(
            store.clone(),
            config.account_id.clone(),
            config.edge_url(),
        )?);
        let esm = esm::Esm::new(store, core.clone(), lambda, config.account_id.clone())?;
        Ok(Arc::new(Sqs { core, esm }))
    }

    /// The queues and messages.
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Answers one json-protocol operation (`AmazonSQS.<op>`, json 1.0).
    ///
    /// Errors: SQS's errors (see [`errors`]); a body that is not a JSON
    /// object is `InvalidParameterValue` (400).
    pub async fn call_json(&self, region: &str, op: &str, body: Bytes) -> AwsResult<Value> {
        let input = if body.iter().all(u8::is_ascii_whitespace) {
            serde_json::Map::new()
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => m,
                _ => {
                    return Err(errors::invalid_param(
                        "The request body is not a JSON object.",
                    ));
                }
            }
        };
        self.core.dispatch(region, op, &input).await
    }

    /// Answers one query-protocol action with the inner XML of its result.
    /// `path` is the request path: a queue URL path supplies `QueueUrl`.
    ///
    /// Errors: as [`Sqs::call_json`].
    pub async fn call_query(
        &self,
        region: &str,
        action: &str,
        params: &[(String, String)],
        path: &str,
    ) -> AwsResult<String> {
        let input = query::to_input(action, params, path);
        let v = self.core.dispatch(region, action, &input).await?;
        Ok(query::to_xml(action, &v))
    }

    /// Starts background work: the retention sweeper and the pollers of
    /// the enabled event source mappings.
    pub fn spawn(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let core = self.core.clone();
        let sweeper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_INTERVAL).await;
                if let Err(e) = core.sweep().await {
                    tracing::warn!("sqs retention sweep failed: {e}");
                }
            }
        });
        self.esm.start_all();
        // Aborting this task at shutdown stops the pollers, so none takes
        // messages it can no longer hand to a function.
        let guard = self.esm.shutdown_guard();
        let pollers = tokio::spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        });
        vec![sweeper, pollers]
    }

    /// The Lambda REST routes for event source mappings
    /// (`/2015-03-31/event-source-mappings/...`).
    pub fn esm_router(self: &Arc<Self>) -> axum::Router {
        esm::router(self.esm.clone())
    }
}

impl stratus_core::Target for Sqs {
    /// Sends `delivery` as a message to the queue `arn`: its body,
    /// message attributes and, for FIFO queues, `MessageGroupId` and
    /// `MessageDeduplicationId`. Returns the message id.
    ///
    /// Errors: `AWS.SimpleQueueService.NonExistentQueue` (400) when the
    /// queue does not exist; the errors of `SendMessage` otherwise.
    fn deliver<'a>(
        &'a self,
        arn: &'a str,
        delivery: stratus_core::Delivery,
    ) -> stratus_core::targets::BoxFuture<'a, AwsResult<String>> {
        Box::pin(async move {
            let q = self.core.queue_by_arn(arn)?;
            let input = SendInput {
                body: delivery.body,
                delay: None,
                attributes: delivery.attributes,
                system_attributes: Default::default(),
                group_id: delivery.message_group_id,
                dedup_id: delivery.deduplication_id,
            };
            let r: Result<SendResult, AwsError> = self.core.send(&q, input).await;
            r.map(|r| r.message_id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use stratus_core::{Delivery, MessageAttribute, Target};

    fn service() -> (Arc<Sqs>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("stratus-sqs-test-{}", uuid::Uuid::new_v4()));
        let store = Store::open(&dir).unwrap();
        let config = Config::with_data_dir(dir.clone());
        let lambda = Lambda::new(config.clone(), store.clone()).unwrap();
        (
            Sqs::new(store, &config, Targets::new(), lambda).unwrap(),
            dir,
        )
    }

    async fn call(sqs: &Sqs, op: &str, body: Value) -> AwsResult<Value> {
        sqs.call_json("us-east-1", op, Bytes::from(body.to_string()))
            .await
    }

    #[tokio::test]
    async fn deliveries_become_messages() {
        let (sqs, dir) = service();
        let url = call(&sqs, "CreateQueue", json!({"QueueName": "t"}))
            .await
            .unwrap()["QueueUrl"]
            .as_str()
            .unwrap()
            .to_string();
        let mut d = Delivery::body("from elsewhere");
        d.attributes
            .insert("k".into(), MessageAttribute::string("v"));
        let id = sqs
            .deliver("arn:aws:sqs:us-east-1:123456789012:t", d)
            .await
            .unwrap();
        let got = call(
            &sqs,
            "ReceiveMessage",
            json!({"QueueUrl": url, "MessageAttributeNames": ["All"]}),
        )
        .await
        .unwrap();
        let m = &got["Messages"][0];
        assert_eq!(m["MessageId"], id.as_str());
        assert_eq!(m["Body"], "from elsewhere");
        assert_eq!(m["MessageAttributes"]["k"]["StringValue"], "v");

        // FIFO queues take the delivery's group and deduplication ids.
        call(
            &sqs,
            "CreateQueue",
            json!({"QueueName": "t.fifo", "Attributes": {"FifoQueue": "true"}}),
        )
        .await
        .unwrap();
        let arn = "arn:aws:sqs:us-east-1:123456789012:t.fifo";
        let mut f = Delivery::body("x");
        f.message_group_id = Some("g".into());
        f.deduplication_id = Some("d".into());
        let a = sqs.deliver(arn, f.clone()).await.unwrap();
        let b = sqs.deliver(arn, f).await.unwrap();
        assert_eq!(a, b);
        let e = sqs
            .deliver(arn, Delivery::body("no group"))
            .await
            .unwrap_err();
        assert_eq!(e.code, "MissingParameter");
        let e = sqs
            .deliver(
                "arn:aws:sqs:us-east-1:123456789012:nope",
                Delivery::body("x"),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, "AWS.SimpleQueueService.NonExistentQueue");
        let _ = std::fs::remove_dir_all(dir);
    }
}
