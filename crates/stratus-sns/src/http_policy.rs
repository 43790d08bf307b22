//! HTTP/S delivery policies (<https://docs.aws.amazon.com/sns/latest/dg/sns-message-delivery-retries.html>,
//! "Creating an HTTP/S delivery policy").
//!
//! A subscription's `DeliveryPolicy` is
//! `{"healthyRetryPolicy": {...}, "requestPolicy": {"headerContentType": "..."}}`;
//! a topic's is `{"http": {"defaultHealthyRetryPolicy": {...},
//! "disableSubscriptionOverrides": false, "defaultRequestPolicy":
//! {"headerContentType": "..."}}}`. A retry policy has `numRetries`
//! (0-100), `numNoDelayRetries`, `numMinDelayRetries`,
//! `numMaxDelayRetries` (together at most `numRetries`), `minDelayTarget`
//! and `maxDelayTarget` (seconds, 1-3600, min <= max) and
//! `backoffFunction` (`linear`, `arithmetic`, `geometric`,
//! `exponential`); the whole policy may not retry for more than 3,600 s.
//!
//! Retry `k` waits: 0 s during the no-delay phase, `minDelayTarget` during
//! the min-delay phase, then over the backoff phase (the retries left
//! after the three other phases) a delay growing from `minDelayTarget` to
//! `maxDelayTarget` (`linear` / `arithmetic`: evenly; `geometric` /
//! `exponential`: by a constant factor), then `maxDelayTarget` during the
//! max-delay phase. AWS's default (no policy): 3 retries 20 s apart.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stratus_core::AwsResult;

/// Longest total retry time of an HTTP/S policy, seconds.
pub const MAX_TOTAL_RETRY_SECONDS: u64 = 3_600;

/// A validated healthy retry policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Seconds, the shortest delay.
    pub min_delay: u32,
    /// Seconds, the longest delay.
    pub max_delay: u32,
    /// Retries in all.
    pub num_retries: u32,
    /// Retries without delay, first.
    pub num_no_delay: u32,
    /// Retries `min_delay` apart, next.
    pub num_min_delay: u32,
    /// Retries `max_delay` apart, last.
    pub num_max_delay: u32,
    /// `linear`, `arithmetic`, `geometric` or `exponential`.
    pub backoff: String,
}

impl Default for RetryPolicy {
    /// AWS's default HTTP/S policy: 3 retries 20 s apart.
    fn default() -> Self {
        RetryPolicy {
            min_delay: 20,
            max_delay: 20,
            num_retries: 3,
            num_no_delay: 0,
            num_min_delay: 0,
            num_max_delay: 0,
            backoff: "linear".into(),
        }
    }
}

/// What a delivery policy sets for one subscription.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpPolicy {
    /// The retry policy.
    pub retry: RetryPolicy,
    /// `Content-Type` of the POST (`text/plain; charset=UTF-8` by default).
    pub content_type: Option<String>,
}

fn bad(msg: impl AsRef<str>) -> stratus_core::AwsError {
    crate::invalid(format!(
        "Invalid parameter: DeliveryPolicy: {}",
        msg.as_ref()
    ))
}

fn field(obj: &Value, name: &str, default: u32, lo: u32, hi: u32) -> AwsResult<u32> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => {
            let n = v
                .as_u64()
                .ok_or_else(|| bad(format!("{name} must be a whole number")))?;
            if n < u64::from(lo) || n > u64::from(hi) {
                return Err(bad(format!("{name} must be between {lo} and {hi}")));
            }
            Ok(n as u32)
        }
    }
}

impl RetryPolicy {
    /// Parses a `healthyRetryPolicy` / `defaultHealthyRetryPolicy` object.
    ///
    /// Errors: `InvalidParameter` (400) `Invalid parameter: DeliveryPolicy: ...`.
    pub fn parse(v: &Value) -> AwsResult<RetryPolicy> {
        if !v.is_object() {
            return Err(bad("the retry policy must be a JSON object"));
        }
        let min_delay = field(v, "minDelayTarget", 20, 1, 3600)?;
        let max_delay = field(v, "maxDelayTarget", 20, 1, 3600)?;
        let num_retries = field(v, "numRetries", 3, 0, 100)?;
        let num_no_delay = field(v, "numNoDelayRetries", 0, 0, 100)?;
        let num_min_delay = field(v, "numMinDelayRetries", 0, 0, 100)?;
        let num_max_delay = field(v, "numMaxDelayRetries", 0, 0, 100)?;
        let backoff = match v.get("backoffFunction") {
            None | Some(Value::Null) => "linear".to_string(),
            Some(Value::String(s))
                if matches!(
                    s.as_str(),
                    "linear" | "arithmetic" | "geometric" | "exponential"
                ) =>
            {
                s.clone()
            }
            Some(other) => {
                return Err(bad(format!(
                    "backoffFunction {other} is not one of linear, arithmetic, geometric, exponential"
                )));
            }
        };
        if min_delay > max_delay {
            return Err(bad(
                "minDelayTarget must be less than or equal to maxDelayTarget",
            ));
        }
        if num_no_delay + num_min_delay + num_max_delay > num_retries {
            return Err(bad(
                "numNoDelayRetries + numMinDelayRetries + numMaxDelayRetries must not exceed numRetries",
            ));
        }
        let p = RetryPolicy {
            min_delay,
            max_delay,
            num_retries,
            num_no_delay,
            num_min_delay,
            num_max_delay,
            backoff,
        };
        let total: u64 = (1..=num_retries).filter_map(|k| p.delay_s(k)).sum();
        if total > MAX_TOTAL_RETRY_SECONDS {
            return Err(bad(format!(
                "the total retry time of the policy ({total} s) is more than {MAX_TOTAL_RETRY_SECONDS} s"
            )));
        }
        Ok(p)
    }

    /// Seconds before retry `k` (1-based), or `None` past `numRetries`.
    pub fn delay_s(&self, k: u32) -> Option<u64> {
        if k == 0 || k > self.num_retries {
            return None;
        }
        let (min, max) = (f64::from(self.min_delay), f64::from(self.max_delay));
        let backoff_n =
            self.num_retries - self.num_no_delay - self.num_min_delay - self.num_max_delay;
        if k <= self.num_no_delay {
            return Some(0);
        }
        let k = k - self.num_no_delay;
        if k <= self.num_min_delay {
            return Some(self.min_delay.into());
        }
        let k = k - self.num_min_delay;
        if k <= backoff_n {
            let f = if backoff_n <= 1 {
                1.0
            } else {
                f64::from(k - 1) / f64::from(backoff_n - 1)
            };
            let d = match self.backoff.as_str() {
                "geometric" | "exponential" => min * (max / min).powf(f),
                _ => min + (max - min) * f,
            };
            return Some(d.round() as u64);
        }
        Some(self.max_delay.into())
    }
}

impl HttpPolicy {
    /// The policy as `EffectiveDeliveryPolicy` shows it.
    pub fn to_json(&self) -> String {
        let r = &self.retry;
        serde_json::json!({
            "healthyRetryPolicy": {
                "minDelayTarget": r.min_delay,
                "maxDelayTarget": r.max_delay,
                "numRetries": r.num_retries,
                "numNoDelayRetries": r.num_no_delay,
                "numMinDelayRetries": r.num_min_delay,
                "numMaxDelayRetries": r.num_max_delay,
                "backoffFunction": r.backoff,
            },
            "requestPolicy": {
                "headerContentType": self.content_type.as_deref().unwrap_or("text/plain; charset=UTF-8"),
            },
        })
        .to_string()
    }
}

/// Validates a subscription's `DeliveryPolicy`.
///
/// Errors: `InvalidParameter` for malformed JSON or retry policies.
pub fn parse_subscription_policy(text: &str) -> AwsResult<(Option<RetryPolicy>, Option<String>)> {
    let v: Value = serde_json::from_str(text).map_err(|_| bad("failed to parse JSON"))?;
    if !v.is_object() {
        return Err(bad("the policy must be a JSON object"));
    }
    let retry = v
        .get("healthyRetryPolicy")
        .map(RetryPolicy::parse)
        .transpose()?;
    let ct = content_type(v.get("requestPolicy"))?;
    Ok((retry, ct))
}

/// Validates a topic's `DeliveryPolicy`: `(default retry policy,
/// disableSubscriptionOverrides, default content type)` of its `http` key.
///
/// Errors: `InvalidParameter` for malformed JSON or retry policies.
pub fn parse_topic_policy(text: &str) -> AwsResult<(Option<RetryPolicy>, bool, Option<String>)> {
    let v: Value = serde_json::from_str(text).map_err(|_| bad("failed to parse JSON"))?;
    if !v.is_object() {
        return Err(bad("the policy must be a JSON object"));
    }
    let Some(http) = v.get("http").or_else(|| v.get("https")) else {
        return Ok((None, false, None));
    };
    let retry = http
        .get("defaultHealthyRetryPolicy")
        .map(RetryPolicy::parse)
        .transpose()?;
    let disable = http
        .get("disableSubscriptionOverrides")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let ct = content_type(http.get("defaultRequestPolicy"))?;
    Ok((retry, disable, ct))
}

fn content_type(v: Option<&Value>) -> AwsResult<Option<String>> {
    match v.and_then(|r| r.get("headerContentType")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.is_ascii() && !s.contains(['\r', '\n']) => {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(bad(
            "headerContentType must be a content type such as application/json",
        )),
    }
}

/// The policy a subscription's deliveries follow: its own `DeliveryPolicy`
/// unless the topic's says `disableSubscriptionOverrides`, else the topic's
/// default, else AWS's default.
pub fn effective(topic_policy: Option<&str>, subscription_policy: Option<&str>) -> HttpPolicy {
    let (t_retry, disable, t_ct) = topic_policy
        .and_then(|t| parse_topic_policy(t).ok())
        .unwrap_or((None, false, None));
    let (s_retry, s_ct) = if disable {
        (None, None)
    } else {
        subscription_policy
            .and_then(|s| parse_subscription_policy(s).ok())
            .unwrap_or((None, None))
    };
    HttpPolicy {
        retry: s_retry.or(t_retry).unwrap_or_default(),
        content_type: s_ct.or(t_ct),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_is_three_retries_twenty_seconds_apart() {
        let p = RetryPolicy::default();
        assert_eq!(
            (1..=4).map(|k| p.delay_s(k)).collect::<Vec<_>>(),
            vec![Some(20), Some(20), Some(20), None]
        );
    }

    #[test]
    fn phases_of_aws_example_policy() {
        // AWS's example HTTP/S policy.
        let p = RetryPolicy::parse(&json!({
            "minDelayTarget": 1, "maxDelayTarget": 60, "numRetries": 50,
            "numNoDelayRetries": 3, "numMinDelayRetries": 2, "numMaxDelayRetries": 35,
            "backoffFunction": "exponential"
        }))
        .unwrap();
        assert_eq!(p.delay_s(1), Some(0));
        assert_eq!(p.delay_s(3), Some(0));
        assert_eq!(p.delay_s(4), Some(1));
        assert_eq!(p.delay_s(5), Some(1));
        // 10 backoff retries from 1 s up to 60 s.
        let backoff: Vec<u64> = (6..=15).filter_map(|k| p.delay_s(k)).collect();
        assert_eq!(backoff.first(), Some(&1));
        assert_eq!(backoff.last(), Some(&60));
        assert!(backoff.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(p.delay_s(16), Some(60));
        assert_eq!(p.delay_s(50), Some(60));
        assert_eq!(p.delay_s(51), None);
    }

    #[test]
    fn bad_policies() {
        for v in [
            json!({"numRetries": 101}),
            json!({"minDelayTarget": 0}),
            json!({"minDelayTarget": 30, "maxDelayTarget": 20}),
            json!({"numRetries": 2, "numNoDelayRetries": 3}),
            json!({"backoffFunction": "random"}),
            json!({"numRetries": 100, "minDelayTarget": 3600, "maxDelayTarget": 3600}),
        ] {
            let e = RetryPolicy::parse(&v).unwrap_err();
            assert_eq!(e.code, "InvalidParameter", "{v}");
            assert!(
                e.message.starts_with("Invalid parameter: DeliveryPolicy: "),
                "{v}"
            );
        }
        assert!(parse_subscription_policy("nope").is_err());
    }

    #[test]
    fn topic_default_and_override() {
        let topic = r#"{"http": {"defaultHealthyRetryPolicy": {"numRetries": 5, "minDelayTarget": 2, "maxDelayTarget": 2}, "defaultRequestPolicy": {"headerContentType": "application/json"}}}"#;
        let sub = r#"{"healthyRetryPolicy": {"numRetries": 1, "minDelayTarget": 7, "maxDelayTarget": 7}}"#;
        let e = effective(Some(topic), None);
        assert_eq!(e.retry.num_retries, 5);
        assert_eq!(e.content_type.as_deref(), Some("application/json"));
        assert_eq!(effective(Some(topic), Some(sub)).retry.num_retries, 1);
        let locked = topic.replace(
            "\"http\": {",
            "\"http\": {\"disableSubscriptionOverrides\": true, ",
        );
        assert_eq!(effective(Some(&locked), Some(sub)).retry.num_retries, 5);
        assert_eq!(effective(None, None), HttpPolicy::default());
    }
}
