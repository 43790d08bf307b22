//! Queues: names, URLs, ARNs and attributes, with AWS's defaults and limits
//! (SQS API reference, `CreateQueue` and `SetQueueAttributes`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stratus_core::AwsError;

use crate::errors::{invalid_attribute_name, invalid_attribute_value, invalid_param};

/// Largest message (body plus attributes), bytes: 262,144 (256 KiB).
pub const MAX_MESSAGE_BYTES: usize = 262_144;

/// Attributes a caller may set, with AWS's inclusive integer ranges.
const INT_ATTRS: &[(&str, i64, i64)] = &[
    ("DelaySeconds", 0, 900),
    ("MaximumMessageSize", 1024, MAX_MESSAGE_BYTES as i64),
    ("MessageRetentionPeriod", 60, 1_209_600),
    ("ReceiveMessageWaitTimeSeconds", 0, 20),
    ("VisibilityTimeout", 0, 43_200),
    ("KmsDataKeyReusePeriodSeconds", 60, 86_400),
];

/// Attributes only FIFO queues have.
const FIFO_ONLY: &[&str] = &[
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// Attributes `GetQueueAttributes` computes (not settable).
pub const READ_ONLY: &[&str] = &[
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
];

/// All settable attribute names.
pub const SETTABLE: &[&str] = &[
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "Policy",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// One queue as stored (JSON document in `sqs_queues.body`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queue {
    /// Row id: messages belong to it, so a queue recreated under the same
    /// name starts empty.
    #[serde(skip)]
    pub id: i64,
    /// The queue's region.
    pub region: String,
    /// The queue name (FIFO names end in `.fifo`).
    pub name: String,
    /// `FifoQueue`.
    pub fifo: bool,
    /// Settable attributes with their effective values (defaults filled).
    pub attrs: BTreeMap<String, String>,
    /// Queue tags (at most 50).
    pub tags: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub created: i64,
    /// Seconds since the epoch.
    pub modified: i64,
}

/// A parsed `RedrivePolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    /// `deadLetterTargetArn`.
    pub dead_letter_target_arn: String,
    /// `maxReceiveCount` (1-1,000).
    pub max_receive_count: i64,
}

impl Queue {
    fn int(&self, name: &str, default: i64) -> i64 {
        self.attrs
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// `VisibilityTimeout`, seconds.
    pub fn visibility_timeout(&self) -> i64 {
        self.int("VisibilityTimeout", 30)
    }

    /// `DelaySeconds`.
    pub fn delay_seconds(&self) -> i64 {
        self.int("DelaySeconds", 0)
    }

    /// `MessageRetentionPeriod`, seconds.
    pub fn retention_seconds(&self) -> i64 {
        self.int("MessageRetentionPeriod", 345_600)
    }

    /// `MaximumMessageSize`, bytes.
    pub fn max_message_size(&self) -> usize {
        self.int("MaximumMessageSize", MAX_MESSAGE_BYTES as i64) as usize
    }

    /// `ReceiveMessageWaitTimeSeconds`.
    pub fn wait_seconds(&self) -> i64 {
        self.int("ReceiveMessageWaitTimeSeconds", 0)
    }

    /// `ContentBasedDeduplication` (FIFO).
    pub fn content_dedup(&self) -> bool {
        self.attrs
            .get("ContentBasedDeduplication")
            .map(String::as_str)
            == Some("true")
    }

    /// `DeduplicationScope` is `messageGroup` (FIFO).
    pub fn dedup_per_group(&self) -> bool {
        self.attrs.get("DeduplicationScope").map(String::as_str) == Some("messageGroup")
    }

    /// The parsed `RedrivePolicy`, if one is set.
    pub fn redrive(&self) -> Option<Redrive> {
        self.attrs
            .get("RedrivePolicy")
            .and_then(|p| parse_redrive(p).ok())
    }
}

/// `arn:aws:sqs:<region>:<account>:<name>`.
pub fn queue_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:sqs:{region}:{account}:{name}")
}

/// Splits a queue ARN into `(region, account, name)`.
pub fn parse_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let mut p = arn.split(':');
    if p.next()? != "arn" {
        return None;
    }
    let _partition = p.next()?;
    if p.next()? != "sqs" {
        return None;
    }
    let region = p.next()?;
    let account = p.next()?;
    let name = p.next()?;
    if p.next().is_some() || name.is_empty() {
        return None;
    }
    Some((region, account, name))
}

/// The `(account, name)` of a queue URL (`http://host/<account>/<name>`)
/// or of its path (`/<account>/<name>`).
pub fn parse_url(url: &str) -> Option<(&str, &str)> {
    let path = match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            &rest[rest.find('/')?..]
        }
        None => url,
    };
    let path = path.split(['?', '#']).next()?;
    let mut segs = path.split('/').filter(|s| !s.is_empty()).rev();
    let name = segs.next()?;
    let account = segs.next()?;
    Some((account, name))
}

/// Checks a queue name: 1-80 characters of alphanumerics, `-` and `_`;
/// FIFO queue names end in `.fifo` (counted in the 80).
///
/// Errors: `InvalidParameterValue` (400).
pub fn validate_name(name: &str, fifo: bool) -> Result<(), AwsError> {
    let stem = if fifo {
        match name.strip_suffix(".fifo") {
            Some(s) => s,
            None => {
                return Err(invalid_param(
                    "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length.",
                ));
            }
        }
    } else {
        name
    };
    let ok = !stem.is_empty()
        && name.len() <= 80
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else if fifo {
        Err(invalid_param(
            "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length.",
        ))
    } else {
        Err(invalid_param(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length",
        ))
    }
}

/// Parses a `RedrivePolicy` JSON document
/// (`{"deadLetterTargetArn": "...", "maxReceiveCount": 1..1000}`; the
/// count may be a number or a numeric string).
///
/// Errors: a reason for `InvalidAttributeValue`.
pub fn parse_redrive(text: &str) -> Result<Redrive, String> {
    let v: Value = serde_json::from_str(text)
        .map_err(|_| "Redrive policy is not a valid JSON map.".to_string())?;
    let arn = v
        .get("deadLetterTargetArn")
        .and_then(Value::as_str)
        .ok_or("Redrive policy does not contain mandatory attribute: deadLetterTargetArn.")?;
    if parse_arn(arn).is_none() {
        return Err(format!("Invalid value for deadLetterTargetArn: {arn}."));
    }
    let count = match v.get("maxReceiveCount") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => {
            return Err(
                "Redrive policy does not contain mandatory attribute: maxReceiveCount.".into(),
            );
        }
    }
    .ok_or("Value for maxReceiveCount is not an integer.")?;
    if !(1..=1000).contains(&count) {
        return Err(format!(
            "Value {count} for parameter maxReceiveCount is invalid. Reason: Must be between 1 and 1000."
        ));
    }
    Ok(Redrive {
        dead_letter_target_arn: arn.to_string(),
        max_receive_count: count,
    })
}

/// The attributes of a new queue: AWS's defaults.
pub fn defaults(fifo: bool) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (k, v) in [
        ("DelaySeconds", "0"),
        ("MaximumMessageSize", "262144"),
        ("MessageRetentionPeriod", "345600"),
        ("ReceiveMessageWaitTimeSeconds", "0"),
        ("VisibilityTimeout", "30"),
        ("SqsManagedSseEnabled", "true"),
    ] {
        m.insert(k.to_string(), v.to_string());
    }
    if fifo {
        for (k, v) in [
            ("FifoQueue", "true"),
            ("ContentBasedDeduplication", "false"),
            ("DeduplicationScope", "queue"),
            ("FifoThroughputLimit", "perQueue"),
        ] {
            m.insert(k.to_string(), v.to_string());
        }
    }
    m
}

/// Checks and normalizes one settable attribute for a queue of the given
/// type; `creating` allows `FifoQueue`. An empty `RedrivePolicy`,
/// `Policy`, `RedriveAllowPolicy` or `KmsMasterKeyId` removes it (`None`).
///
/// Errors: `InvalidAttributeName` (400) for an unknown or read-only name
/// or a FIFO attribute on a standard queue; `InvalidAttributeValue` (400)
/// for a value out of range.
pub fn check_attribute(
    name: &str,
    value: &str,
    fifo: bool,
    creating: bool,
) -> Result<Option<String>, AwsError> {
    if !SETTABLE.contains(&name) {
        return Err(invalid_attribute_name(name));
    }
    if FIFO_ONLY.contains(&name) && !fifo {
        if name == "FifoQueue" && value == "false" {
            return Ok(None);
        }
        return Err(invalid_attribute_name(name));
    }
    if let Some((_, lo, hi)) = INT_ATTRS.iter().find(|(n, _, _)| *n == name) {
        return match value.trim().parse::<i64>() {
            Ok(n) if (*lo..=*hi).contains(&n) => Ok(Some(n.to_string())),
            _ => Err(invalid_attribute_value(
                name,
                &format!("Must be an integer from {lo} to {hi}."),
            )),
        };
    }
    let boolean = |v: &str| match v.to_ascii_lowercase().as_str() {
        "true" => Some("true".to_string()),
        "false" => Some("false".to_string()),
        _ => None,
    };
    match name {
        "FifoQueue" => {
            if !creating {
                return Err(invalid_attribute_name(name));
            }
            boolean(value)
                .filter(|v| v == "true")
                .map(Some)
                .ok_or_else(|| invalid_attribute_value(name, "Must be true for a FIFO queue."))
        }
        "ContentBasedDeduplication" | "SqsManagedSseEnabled" => boolean(value)
            .map(Some)
            .ok_or_else(|| invalid_attribute_value(name, "Must be true or false.")),
        "DeduplicationScope" => match value {
            "messageGroup" | "queue" => Ok(Some(value.to_string())),
            _ => Err(invalid_attribute_value(
                name,
                "Must be messageGroup or queue.",
            )),
        },
        "FifoThroughputLimit" => match value {
            "perQueue" | "perMessageGroupId" => Ok(Some(value.to_string())),
            _ => Err(invalid_attribute_value(
                name,
                "Must be perQueue or perMessageGroupId.",
            )),
        },
        "RedrivePolicy" => {
            if value.is_empty() {
                return Ok(None);
            }
            let r =
                parse_redrive(value).map_err(|reason| invalid_attribute_value(name, &reason))?;
            if r.dead_letter_target_arn.ends_with(".fifo") != fifo {
                return Err(invalid_attribute_value(
                    name,
                    "The dead-letter queue of a FIFO queue must also be a FIFO queue, and that of a standard queue a standard queue.",
                ));
            }
            Ok(Some(
                serde_json::json!({
                    "deadLetterTargetArn": r.dead_letter_target_arn,
                    "maxReceiveCount": r.max_receive_count,
                })
                .to_string(),
            ))
        }
        "Policy" | "RedriveAllowPolicy" => {
            if value.is_empty() {
                return Ok(None);
            }
            match serde_json::from_str::<Value>(value) {
                Ok(Value::Object(_)) => Ok(Some(value.to_string())),
                _ => Err(invalid_attribute_value(
                    name,
                    "The value is not a valid JSON document.",
                )),
            }
        }
        "KmsMasterKeyId" => Ok((!value.is_empty()).then(|| value.to_string())),
        _ => Err(invalid_attribute_name(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("my-queue_1", false).is_ok());
        assert!(validate_name(&"a".repeat(80), false).is_ok());
        assert!(validate_name(&"a".repeat(81), false).is_err());
        assert!(validate_name("", false).is_err());
        assert!(validate_name("a.b", false).is_err());
        assert!(validate_name("q.fifo", true).is_ok());
        assert!(validate_name("q", true).is_err());
        assert!(validate_name(".fifo", true).is_err());
        assert!(validate_name(&format!("{}.fifo", "a".repeat(75)), true).is_ok());
        assert!(validate_name(&format!("{}.fifo", "a".repeat(76)), true).is_err());
    }

    #[test]
    fn urls_and_arns() {
        assert_eq!(
            parse_url("http://127.0.0.1:4566/123456789012/q1"),
            Some(("123456789012", "q1"))
        );
        assert_eq!(
            parse_url("https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo"),
            Some(("123456789012", "q.fifo"))
        );
        assert_eq!(parse_url("/123456789012/q"), Some(("123456789012", "q")));
        assert_eq!(parse_url("q"), None);
        assert_eq!(
            parse_arn("arn:aws:sqs:eu-west-1:123456789012:q"),
            Some(("eu-west-1", "123456789012", "q"))
        );
        assert_eq!(parse_arn("arn:aws:sns:eu-west-1:123456789012:q"), None);
    }

    #[test]
    fn attributes() {
        assert_eq!(
            check_attribute("VisibilityTimeout", "45", false, false).unwrap(),
            Some("45".into())
        );
        assert!(check_attribute("VisibilityTimeout", "43201", false, false).is_err());
        assert!(check_attribute("DelaySeconds", "x", false, false).is_err());
        assert!(check_attribute("QueueArn", "x", false, false).is_err());
        assert!(check_attribute("ContentBasedDeduplication", "true", false, false).is_err());
        assert!(check_attribute("ContentBasedDeduplication", "true", true, false).is_ok());
        let r = check_attribute(
            "RedrivePolicy",
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:dlq","maxReceiveCount":"3"}"#,
            false,
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(parse_redrive(&r).unwrap().max_receive_count, 3);
        assert!(check_attribute(
            "RedrivePolicy",
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:dlq","maxReceiveCount":0}"#,
            false,
            false
        )
        .is_err());
    }
}
