//! What SNS delivers to each kind of endpoint:
//!
//! * `sqs` / `http`: the JSON notification document AWS sends
//!   (<https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html>):
//!   `Type` `Notification`, `MessageId`, `TopicArn`, `Subject` (when
//!   given), `Message`, `Timestamp`, `SignatureVersion`, `Signature`,
//!   `SigningCertURL`, `UnsubscribeURL`, `MessageAttributes`
//!   (`{"name": {"Type": "String", "Value": "v"}}`, binary values in
//!   base64) and, on FIFO topics, `SequenceNumber`; or, with
//!   `RawMessageDelivery`, the message itself with its attributes;
//! * `lambda`: the SNS event
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/with-sns.html>):
//!   `{"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
//!   "EventSubscriptionArn": ..., "Sns": {...}}]}` where `Sns` holds the
//!   notification with `SigningCertUrl` / `UnsubscribeUrl` spelled as
//!   Lambda spells them and `Subject` `null` when none was given.
//!
//! `Signature` is the base64 SHA-256 digest of AWS's string to sign for
//! notifications; it is not an RSA signature (stratus holds no AWS signing
//! certificate), so clients that verify signatures reject it.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use stratus_core::MessageAttribute;

/// One published message as every subscription sees it.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The message id (UUID).
    pub message_id: String,
    /// The topic ARN.
    pub topic_arn: String,
    /// The subject, if any.
    pub subject: Option<String>,
    /// The message, or with `MessageStructure=json` the JSON object of
    /// per-protocol messages.
    pub message: String,
    /// Whether `message` is a `MessageStructure=json` document.
    pub structured: bool,
    /// When it was published, ms since the epoch.
    pub timestamp_ms: i64,
    /// Message attributes.
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// FIFO topics: the sequence number.
    pub sequence_number: Option<String>,
    /// The edge URL (for `SigningCertURL` / `UnsubscribeURL`).
    pub edge_url: String,
    /// The topic's `SignatureVersion` (`1`, the default, or `2`).
    pub signature_version: String,
}

impl Notification {
    /// The message a `protocol` endpoint receives: the protocol's key of a
    /// `MessageStructure=json` document, else its `default`.
    pub fn message_for(&self, protocol: &str) -> String {
        if !self.structured {
            return self.message.clone();
        }
        let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&self.message) else {
            return self.message.clone();
        };
        m.get(protocol)
            .and_then(Value::as_str)
            .or_else(|| m.get("default").and_then(Value::as_str))
            .unwrap_or_default()
            .to_string()
    }

    fn timestamp(&self) -> String {
        stratus_core::time::iso_ms(self.timestamp_ms)
    }

    fn unsubscribe_url(&self, subscription_arn: &str) -> String {
        format!(
            "{}/?Action=Unsubscribe&SubscriptionArn={}",
            self.edge_url,
            query_value(subscription_arn)
        )
    }

    fn signing_cert_url(&self) -> String {
        format!("{}/SimpleNotificationService-stratus.pem", self.edge_url)
    }

    fn signature(&self, message: &str) -> String {
        let mut s = String::new();
        s.push_str("Message\n");
        s.push_str(message);
        s.push_str("\nMessageId\n");
        s.push_str(&self.message_id);
        if let Some(sub) = &self.subject {
            s.push_str("\nSubject\n");
            s.push_str(sub);
        }
        s.push_str("\nTimestamp\n");
        s.push_str(&self.timestamp());
        s.push_str("\nTopicArn\n");
        s.push_str(&self.topic_arn);
        s.push_str("\nType\nNotification\n");
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s.as_bytes()))
    }

    /// The JSON notification document for an `sqs` or `http` endpoint.
    pub fn envelope(&self, protocol: &str, subscription_arn: &str) -> String {
        let message = self.message_for(protocol);
        let mut m = Map::new();
        m.insert("Type".into(), json!("Notification"));
        m.insert("MessageId".into(), json!(self.message_id));
        if let Some(seq) = &self.sequence_number {
            m.insert("SequenceNumber".into(), json!(seq));
        }
        m.insert("TopicArn".into(), json!(self.topic_arn));
        if let Some(sub) = &self.subject {
            m.insert("Subject".into(), json!(sub));
        }
        m.insert("Message".into(), json!(message));
        m.insert("Timestamp".into(), json!(self.timestamp()));
        m.insert("SignatureVersion".into(), json!(self.signature_version));
        m.insert("Signature".into(), json!(self.signature(&message)));
        m.insert("SigningCertURL".into(), json!(self.signing_cert_url()));
        m.insert(
            "UnsubscribeURL".into(),
            json!(self.unsubscribe_url(subscription_arn)),
        );
        if !self.attributes.is_empty() {
            m.insert(
                "MessageAttributes".into(),
                attributes_json(&self.attributes),
            );
        }
        Value::Object(m).to_string()
    }

    /// The Lambda SNS event for a `lambda` endpoint.
    pub fn lambda_event(&self, subscription_arn: &str) -> String {
        let message = self.message_for("lambda");
        let sns = json!({
            "Type": "Notification",
            "MessageId": self.message_id,
            "TopicArn": self.topic_arn,
            "Subject": self.subject,
            "Message": message,
            "Timestamp": self.timestamp(),
            "SignatureVersion": self.signature_version,
            "Signature": self.signature(&message),
            "SigningCertUrl": self.signing_cert_url(),
            "UnsubscribeUrl": self.unsubscribe_url(subscription_arn),
            "MessageAttributes": attributes_json(&self.attributes),
        });
        json!({
            "Records": [{
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": sns,
            }]
        })
        .to_string()
    }
}

/// `{"name": {"Type": "String", "Value": "v"}}`; binary values in base64.
pub fn attributes_json(attrs: &BTreeMap<String, MessageAttribute>) -> Value {
    let mut m = Map::new();
    for (k, a) in attrs {
        let value = match (&a.string_value, &a.binary_value) {
            (Some(s), _) => s.clone(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD.encode(b),
            (None, None) => String::new(),
        };
        m.insert(k.clone(), json!({"Type": a.data_type, "Value": value}));
    }
    Value::Object(m)
}

/// Percent-encodes what a query value cannot hold; `:` stays as it is, as
/// in the `UnsubscribeURL`s AWS sends (`...&SubscriptionArn=arn:aws:sns:...`).
fn query_value(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note() -> Notification {
        let mut attributes = BTreeMap::new();
        attributes.insert(
            "store".to_string(),
            MessageAttribute::string("example_corp"),
        );
        attributes.insert(
            "bin".to_string(),
            MessageAttribute {
                data_type: "Binary".into(),
                string_value: None,
                binary_value: Some(b"TestBinary".to_vec()),
            },
        );
        Notification {
            message_id: "95df01b4-ee98-5cb9-9903-4c221d41eb5e".into(),
            topic_arn: "arn:aws:sns:us-east-1:123456789012:sns-lambda".into(),
            subject: None,
            message: "Hello from SNS!".into(),
            structured: false,
            timestamp_ms: 1_546_433_107_000,
            attributes,
            sequence_number: None,
            edge_url: "http://127.0.0.1:4566".into(),
            signature_version: "1".into(),
        }
    }

    #[test]
    fn sqs_envelope_has_awss_fields() {
        let n = note();
        let sub =
            "arn:aws:sns:us-east-1:123456789012:sns-lambda:21be56ed-a058-49f5-8c98-aedd2564c486";
        let v: Value = serde_json::from_str(&n.envelope("sqs", sub)).unwrap();
        for k in [
            "Type",
            "MessageId",
            "TopicArn",
            "Message",
            "Timestamp",
            "SignatureVersion",
            "Signature",
            "SigningCertURL",
            "UnsubscribeURL",
            "MessageAttributes",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        assert_eq!(v["Type"], "Notification");
        assert!(v.get("Subject").is_none(), "no subject given");
        assert_eq!(v["Timestamp"], "2019-01-02T12:45:07.000Z");
        assert_eq!(
            v["MessageAttributes"]["store"],
            json!({"Type": "String", "Value": "example_corp"})
        );
        assert_eq!(
            v["MessageAttributes"]["bin"],
            json!({"Type": "Binary", "Value": "VGVzdEJpbmFyeQ=="})
        );
        assert!(
            v["UnsubscribeURL"]
                .as_str()
                .unwrap()
                .ends_with("/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:sns-lambda:21be56ed-a058-49f5-8c98-aedd2564c486")
        );
    }

    #[test]
    fn lambda_event_shape() {
        let n = note();
        let sub =
            "arn:aws:sns:us-east-1:123456789012:sns-lambda:21be56ed-a058-49f5-8c98-aedd2564c486";
        let v: Value = serde_json::from_str(&n.lambda_event(sub)).unwrap();
        let r = &v["Records"][0];
        assert_eq!(r["EventSource"], "aws:sns");
        assert_eq!(r["EventVersion"], "1.0");
        assert_eq!(r["EventSubscriptionArn"], sub);
        let s = &r["Sns"];
        assert_eq!(s["Type"], "Notification");
        assert_eq!(s["Message"], "Hello from SNS!");
        assert_eq!(s["Subject"], Value::Null);
        assert!(s.get("SigningCertUrl").is_some() && s.get("UnsubscribeUrl").is_some());
        assert_eq!(s["MessageAttributes"]["bin"]["Type"], "Binary");
    }

    #[test]
    fn per_protocol_messages() {
        let mut n = note();
        n.structured = true;
        n.message = r#"{"default":"d","sqs":"q"}"#.into();
        assert_eq!(n.message_for("sqs"), "q");
        assert_eq!(n.message_for("lambda"), "d");
        n.sequence_number = Some("10000000000000000001".into());
        let v: Value = serde_json::from_str(&n.envelope("sqs", "s")).unwrap();
        assert_eq!(v["Message"], "q");
        assert_eq!(v["SequenceNumber"], "10000000000000000001");
    }
}
