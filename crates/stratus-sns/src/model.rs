//! Topics and subscriptions as stored, their ARNs, names and attributes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stratus_core::AwsResult;

use crate::filter::{FilterPolicy, Scope};

/// A topic (`sns_topics.body`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Topic {
    /// `arn:aws:sns:<region>:<account>:<name>`.
    pub arn: String,
    /// The topic name (ends in `.fifo` for FIFO topics).
    pub name: String,
    /// The region of the ARN.
    pub region: String,
    /// The owning account.
    pub account: String,
    /// Whether it is a FIFO topic (`FifoTopic=true`, set at creation).
    pub fifo: bool,
    /// Settable attributes as given (`DisplayName`, `Policy`,
    /// `DeliveryPolicy`, `ContentBasedDeduplication`, ...).
    pub attributes: BTreeMap<String, String>,
    /// Tags in the order they were added.
    pub tags: Vec<(String, String)>,
    /// The last FIFO sequence number handed out.
    #[serde(default)]
    pub sequence: u64,
    /// Subscriptions removed from the topic (`SubscriptionsDeleted`).
    #[serde(default)]
    pub subscriptions_deleted: u64,
}

/// A subscription (`sns_subscriptions.body`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Subscription {
    /// `<topic arn>:<uuid>`.
    pub arn: String,
    /// The topic it belongs to.
    pub topic_arn: String,
    /// `sqs`, `lambda` or `http`.
    pub protocol: String,
    /// A queue ARN, a function ARN or a URL.
    pub endpoint: String,
    /// The subscribing account.
    pub owner: String,
    /// Settable attributes as given (`RawMessageDelivery`, `FilterPolicy`,
    /// `FilterPolicyScope`, `RedrivePolicy`, `DeliveryPolicy`,
    /// `SubscriptionRoleArn`).
    pub attributes: BTreeMap<String, String>,
}

/// Topic attributes `CreateTopic` and `SetTopicAttributes` accept
/// (botocore `sns` `CreateTopicInput.Attributes` documentation).
pub const TOPIC_ATTRIBUTES: &[&str] = &[
    "DeliveryPolicy",
    "DisplayName",
    "FifoTopic",
    "Policy",
    "SignatureVersion",
    "TracingConfig",
    "KmsMasterKeyId",
    "ContentBasedDeduplication",
    "FifoThroughputScope",
    "ArchivePolicy",
    "DataProtectionPolicy",
    "HTTPSuccessFeedbackRoleArn",
    "HTTPSuccessFeedbackSampleRate",
    "HTTPFailureFeedbackRoleArn",
    "LambdaSuccessFeedbackRoleArn",
    "LambdaSuccessFeedbackSampleRate",
    "LambdaFailureFeedbackRoleArn",
    "SQSSuccessFeedbackRoleArn",
    "SQSSuccessFeedbackSampleRate",
    "SQSFailureFeedbackRoleArn",
];

/// Subscription attributes `Subscribe` and `SetSubscriptionAttributes`
/// accept (botocore `sns` `SubscribeInput.Attributes` documentation).
pub const SUBSCRIPTION_ATTRIBUTES: &[&str] = &[
    "DeliveryPolicy",
    "FilterPolicy",
    "FilterPolicyScope",
    "RawMessageDelivery",
    "RedrivePolicy",
    "SubscriptionRoleArn",
    "ReplayPolicy",
];

/// The parts of a topic ARN: `(region, account, name)`.
///
/// Errors: `InvalidParameter` (400) `Invalid parameter: <what>` when `arn`
/// is not `arn:<partition>:sns:<region>:<12-digit account>:<topic name>`.
pub fn parse_topic_arn<'a>(arn: &'a str, what: &str) -> AwsResult<(&'a str, &'a str, &'a str)> {
    let bad = || crate::invalid(format!("Invalid parameter: {what}"));
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() < 6 {
        return Err(crate::invalid(format!(
            "Invalid parameter: {what} Reason: An ARN must have at least 6 elements, not {}",
            parts.len()
        )));
    }
    if parts.len() != 6 || parts[0] != "arn" || parts[1].is_empty() || parts[2] != "sns" {
        return Err(bad());
    }
    let (region, account, name) = (parts[3], parts[4], parts[5]);
    if region.is_empty()
        || account.len() != 12
        || !account.bytes().all(|b| b.is_ascii_digit())
        || !valid_topic_name(name)
    {
        return Err(bad());
    }
    Ok((region, account, name))
}

/// The topic ARN of a subscription ARN (`<topic arn>:<id>`).
///
/// Errors: `InvalidParameter` (400) `Invalid parameter: SubscriptionArn`.
pub fn topic_of_subscription(arn: &str) -> AwsResult<&str> {
    let bad = || crate::invalid("Invalid parameter: SubscriptionArn");
    let (topic, id) = arn.rsplit_once(':').ok_or_else(bad)?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(bad());
    }
    parse_topic_arn(topic, "SubscriptionArn")?;
    Ok(topic)
}

/// Topic names: 1-256 ASCII letters, digits, `_` and `-`; FIFO topic
/// names end in `.fifo` (which counts toward the 256).
pub fn valid_topic_name(name: &str) -> bool {
    let stem = name.strip_suffix(".fifo").unwrap_or(name);
    !stem.is_empty()
        && name.len() <= 256
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Topic {
    /// Whether `ContentBasedDeduplication` is on.
    pub fn content_based_dedup(&self) -> bool {
        self.attributes
            .get("ContentBasedDeduplication")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// AWS's default access policy of a new topic: the owner account may
    /// run the topic's actions.
    pub fn default_policy(&self) -> String {
        serde_json::json!({
            "Version": "2008-10-17",
            "Id": "__default_policy_ID",
            "Statement": [{
                "Sid": "__default_statement_ID",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": [
                    "SNS:GetTopicAttributes",
                    "SNS:SetTopicAttributes",
                    "SNS:AddPermission",
                    "SNS:RemovePermission",
                    "SNS:DeleteTopic",
                    "SNS:Subscribe",
                    "SNS:ListSubscriptionsByTopic",
                    "SNS:Publish"
                ],
                "Resource": self.arn,
                "Condition": {"StringEquals": {"AWS:SourceOwner": self.account}}
            }]
        })
        .to_string()
    }
}

/// AWS's default effective delivery policy of a topic (the HTTP/S policy;
/// Lambda and SQS policies cannot be changed).
pub const DEFAULT_EFFECTIVE_DELIVERY_POLICY: &str = r#"{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":20,"maxDelayTarget":20,"numRetries":3,"numMaxDelayRetries":0,"numNoDelayRetries":0,"numMinDelayRetries":0,"backoffFunction":"linear"},"disableSubscriptionOverrides":false,"defaultRequestPolicy":{"headerContentType":"text/plain; charset=UTF-8"}}}"#;

impl Subscription {
    /// Whether `RawMessageDelivery` is on.
    pub fn raw(&self) -> bool {
        self.attributes
            .get("RawMessageDelivery")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The subscription's filter policy and scope, if it has one.
    pub fn filter(&self) -> Option<(FilterPolicy, Scope)> {
        let text = self.attributes.get("FilterPolicy")?;
        let scope = self
            .attributes
            .get("FilterPolicyScope")
            .and_then(|s| Scope::parse(s).ok())
            .unwrap_or(Scope::MessageAttributes);
        FilterPolicy::parse(text, scope).ok().map(|p| (p, scope))
    }

    /// The dead-letter queue ARN of `RedrivePolicy`
    /// (`{"deadLetterTargetArn": "arn:aws:sqs:..."}`), if set.
    pub fn dead_letter_queue(&self) -> Option<String> {
        let v: serde_json::Value =
            serde_json::from_str(self.attributes.get("RedrivePolicy")?).ok()?;
        v.get("deadLetterTargetArn")?.as_str().map(str::to_string)
    }
}

/// Validates one subscription attribute for a subscription of `protocol`
/// (after the others in `attrs` are applied, so `FilterPolicy` is checked
/// against the `FilterPolicyScope` it will have).
///
/// Errors: `InvalidParameter` (400): unknown attribute names, a
/// non-boolean `RawMessageDelivery`, raw delivery on `lambda`, a bad
/// `FilterPolicy` / `FilterPolicyScope`, a `RedrivePolicy` without an SQS
/// `deadLetterTargetArn`.
pub fn check_subscription_attributes(
    protocol: &str,
    attrs: &BTreeMap<String, String>,
) -> AwsResult<()> {
    for (k, v) in attrs {
        if !SUBSCRIPTION_ATTRIBUTES.contains(&k.as_str()) {
            return Err(crate::invalid(format!(
                "Invalid parameter: AttributeName Reason: Unknown subscription attribute {k}"
            )));
        }
        match k.as_str() {
            "RawMessageDelivery" => {
                if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                    return Err(crate::invalid(format!(
                        "Invalid parameter: Attributes Reason: RawMessageDelivery: Invalid value [{v}]. Must be true or false."
                    )));
                }
                if protocol == "lambda" && v.eq_ignore_ascii_case("true") {
                    return Err(crate::invalid(
                        "Invalid parameter: Attributes Reason: Delivery protocol [lambda] does not support raw message delivery.",
                    ));
                }
            }
            "FilterPolicyScope" => {
                Scope::parse(v)?;
            }
            "FilterPolicy" if !v.is_empty() => {
                let scope = attrs
                    .get("FilterPolicyScope")
                    .map(|s| Scope::parse(s))
                    .transpose()?
                    .unwrap_or(Scope::MessageAttributes);
                FilterPolicy::parse(v, scope)?;
            }
            "RedrivePolicy" if !v.is_empty() => {
                let ok = serde_json::from_str::<serde_json::Value>(v)
                    .ok()
                    .and_then(|j| {
                        j.get("deadLetterTargetArn")
                            .and_then(|a| a.as_str())
                            .map(|a| a.starts_with("arn:") && a.split(':').nth(2) == Some("sqs"))
                    })
                    .unwrap_or(false);
                if !ok {
                    return Err(crate::invalid(
                        "Invalid parameter: RedrivePolicy: deadLetterTargetArn must be the ARN of an SQS queue",
                    ));
                }
            }
            "DeliveryPolicy" if !v.is_empty() => {
                if protocol != "http" && protocol != "https" {
                    return Err(crate::invalid(format!(
                        "Invalid parameter: DeliveryPolicy: Delivery protocol [{protocol}] does not support delivery policies"
                    )));
                }
                crate::http_policy::parse_subscription_policy(v)?;
            }
            "ReplayPolicy"
                if !v.is_empty() && serde_json::from_str::<serde_json::Value>(v).is_err() =>
            {
                return Err(crate::invalid(format!(
                    "Invalid parameter: {k}: failed to parse JSON"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_and_names() {
        assert!(valid_topic_name("my-topic_1"));
        assert!(valid_topic_name("t.fifo"));
        assert!(!valid_topic_name(".fifo"));
        assert!(!valid_topic_name("a b"));
        assert!(!valid_topic_name(&"a".repeat(257)));
        assert!(valid_topic_name(&"a".repeat(256)));
        assert_eq!(
            parse_topic_arn("arn:aws:sns:us-east-1:123456789012:t", "TopicArn").unwrap(),
            ("us-east-1", "123456789012", "t")
        );
        for bad in [
            "t",
            "arn:aws:sqs:us-east-1:123456789012:t",
            "arn:aws:sns:us-east-1:12345:t",
            "arn:aws:sns:us-east-1:123456789012:",
            "arn:aws:sns:us-east-1:123456789012:t:x",
        ] {
            let e = parse_topic_arn(bad, "TopicArn").unwrap_err();
            assert_eq!(e.code, "InvalidParameter");
            assert!(
                e.message.starts_with("Invalid parameter: TopicArn"),
                "{}",
                e.message
            );
        }
        assert_eq!(
            parse_topic_arn("t", "TopicArn").unwrap_err().message,
            "Invalid parameter: TopicArn Reason: An ARN must have at least 6 elements, not 1"
        );
        assert_eq!(
            topic_of_subscription(
                "arn:aws:sns:us-east-1:123456789012:t:0b7b7b5e-1d2c-4e0b-9d8f-2f1f1a1b1c1d"
            )
            .unwrap(),
            "arn:aws:sns:us-east-1:123456789012:t"
        );
        assert!(topic_of_subscription("arn:aws:sns:us-east-1:123456789012:t").is_err());
    }

    #[test]
    fn subscription_attribute_rules() {
        let m = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(
            check_subscription_attributes("sqs", &m(&[("RawMessageDelivery", "true")])).is_ok()
        );
        assert!(
            check_subscription_attributes("lambda", &m(&[("RawMessageDelivery", "true")])).is_err()
        );
        assert!(check_subscription_attributes("sqs", &m(&[("Nope", "1")])).is_err());
        assert!(
            check_subscription_attributes("sqs", &m(&[("FilterPolicy", r#"{"a":{"b":["c"]}}"#)]))
                .is_err(),
            "nested policy needs the MessageBody scope"
        );
        assert!(
            check_subscription_attributes(
                "sqs",
                &m(&[
                    ("FilterPolicy", r#"{"a":{"b":["c"]}}"#),
                    ("FilterPolicyScope", "MessageBody")
                ])
            )
            .is_ok()
        );
        assert!(
            check_subscription_attributes("sqs", &m(&[("RedrivePolicy", r#"{"x":1}"#)])).is_err()
        );
    }
}
