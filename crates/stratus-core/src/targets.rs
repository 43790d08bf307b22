//! Delivery between services: a Lambda destination sends to an SQS queue,
//! an SNS topic fans out to functions and queues, an EventBridge rule invokes
//! a target. The sender knows only the target's ARN; the service that owns
//! the ARN's service namespace (`sqs`, `sns`, `events`, `lambda`, `states`)
//! registers a [`Target`] here at start-up, so services need not depend on
//! each other's crates.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use crate::{AwsError, AwsResult};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One message attribute as SQS and SNS carry it
/// (`DataType` is `String`, `Number`, `Binary` or one of those with a
/// `.custom` suffix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    /// `String`, `Number`, `Binary`, optionally followed by `.<label>`.
    pub data_type: String,
    /// The value of `String` and `Number` attributes.
    pub string_value: Option<String>,
    /// The raw bytes of `Binary` attributes.
    pub binary_value: Option<Vec<u8>>,
}

impl MessageAttribute {
    /// A `String` attribute.
    pub fn string(v: impl Into<String>) -> Self {
        MessageAttribute {
            data_type: "String".into(),
            string_value: Some(v.into()),
            binary_value: None,
        }
    }
}

/// What one delivery carries to a target.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// The payload: an SQS message body, an SNS message, a Lambda event
    /// (JSON text), an EventBridge event `detail` (JSON text), or a Step
    /// Functions execution input.
    pub body: String,
    /// Message attributes (SQS, SNS); Lambda ignores them.
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// For EventBridge buses: the event's `source` (e.g. `lambda`).
    pub source: Option<String>,
    /// For EventBridge buses: the event's `detail-type`.
    pub detail_type: Option<String>,
    /// For EventBridge buses: the event's `resources`.
    pub resources: Vec<String>,
    /// For SNS: the message subject.
    pub subject: Option<String>,
    /// For FIFO queues and topics: `MessageGroupId`.
    pub message_group_id: Option<String>,
    /// For FIFO queues and topics: `MessageDeduplicationId`.
    pub deduplication_id: Option<String>,
}

impl Delivery {
    /// A delivery of `body` with nothing else set.
    pub fn body(body: impl Into<String>) -> Self {
        Delivery {
            body: body.into(),
            ..Default::default()
        }
    }
}

/// A service that accepts deliveries addressed to ARNs of its namespace.
pub trait Target: Send + Sync {
    /// Delivers `delivery` to `arn` (an ARN of this service's namespace).
    /// Returns an id of what was created (an SQS message id, an SNS message
    /// id, a Lambda request id, an event id, an execution ARN).
    ///
    /// Errors: the resource does not exist (`ResourceNotFoundException`,
    /// `AWS.SimpleQueueService.NonExistentQueue`, `NotFound`, ...), or the
    /// delivery is refused (too large, throttled). Callers count failures
    /// (for example as `DestinationDeliveryFailures`) and retry as the
    /// feature they implement documents.
    fn deliver<'a>(&'a self, arn: &'a str, delivery: Delivery) -> BoxFuture<'a, AwsResult<String>>;
}

/// The registry of delivery targets by ARN service namespace.
#[derive(Clone, Default)]
pub struct Targets {
    map: Arc<RwLock<HashMap<String, Arc<dyn Target>>>>,
}

impl Targets {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the target for ARNs `arn:<partition>:<service>:...`.
    /// A later registration for the same service replaces the earlier one.
    pub fn register(&self, service: &str, target: Arc<dyn Target>) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(service.to_string(), target);
    }

    /// The service namespace of an ARN (`sqs` in
    /// `arn:aws:sqs:us-east-1:123456789012:q`), if it is an ARN.
    pub fn service_of(arn: &str) -> Option<&str> {
        let mut parts = arn.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let _partition = parts.next()?;
        let service = parts.next()?;
        let rest = parts.next().is_some() && parts.next().is_some() && parts.next().is_some();
        (rest && !service.is_empty()).then_some(service)
    }

    /// Delivers to the service owning `arn`.
    ///
    /// Errors: `InvalidParameterValueException` (400) when `arn` is not an
    /// ARN or no registered service owns its namespace; otherwise whatever
    /// the owning service returns.
    pub async fn deliver(&self, arn: &str, delivery: Delivery) -> AwsResult<String> {
        let target = self.target_for(arn)?;
        target.deliver(arn, delivery).await
    }

    fn target_for(&self, arn: &str) -> AwsResult<Arc<dyn Target>> {
        let service = Self::service_of(arn)
            .ok_or_else(|| AwsError::invalid_parameter(format!("'{arn}' is not a valid ARN.")))?;
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(service)
            .cloned()
            .ok_or_else(|| {
                AwsError::invalid_parameter(format!(
                    "stratus cannot deliver to '{arn}': it serves no '{service}' targets."
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Target for Echo {
        fn deliver<'a>(&'a self, arn: &'a str, d: Delivery) -> BoxFuture<'a, AwsResult<String>> {
            Box::pin(async move { Ok(format!("{arn}|{}", d.body)) })
        }
    }

    #[test]
    fn service_of_parses_arns() {
        assert_eq!(
            Targets::service_of("arn:aws:sqs:us-east-1:123456789012:q"),
            Some("sqs")
        );
        assert_eq!(
            Targets::service_of("arn:aws:events:us-east-1:123456789012:event-bus/default"),
            Some("events")
        );
        assert_eq!(Targets::service_of("arn:aws:sqs"), None);
        assert_eq!(Targets::service_of("sqs:q"), None);
    }

    #[tokio::test]
    async fn routes_by_namespace() {
        let t = Targets::new();
        t.register("sqs", Arc::new(Echo));
        let r = t
            .deliver("arn:aws:sqs:us-east-1:1:q", Delivery::body("hi"))
            .await
            .unwrap();
        assert_eq!(r, "arn:aws:sqs:us-east-1:1:q|hi");
        let e = t
            .deliver("arn:aws:sns:us-east-1:1:t", Delivery::body("hi"))
            .await
            .unwrap_err();
        assert_eq!(e.code, "InvalidParameterValueException");
        assert!(t.deliver("nope", Delivery::body("")).await.is_err());
    }
}
