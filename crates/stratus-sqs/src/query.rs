//! The query protocol of SQS (API version 2012-11-05): form parameters
//! with flattened lists and maps (`Attribute.1.Name`, `Attribute.1.Value`,
//! `MessageAttribute.1.Value.StringValue`, `SendMessageBatchRequestEntry.1.Id`,
//! `AttributeName.1`, `Tag.1.Key`, `TagKey.1`), translated to the json
//! protocol's input shapes; answers are the json shapes written as the
//! XML elements of the SQS API reference (`<QueueUrl>`, `<Message>`,
//! `<Attribute><Name/><Value/></Attribute>`, `<BatchResultErrorEntry>`, ...).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A tree of dotted parameter names: `A.1.B` = `{"A": {"1": {"B": v}}}`.
#[derive(Debug, Default)]
struct Node {
    value: Option<String>,
    children: BTreeMap<String, Node>,
}

impl Node {
    fn insert(&mut self, path: &[&str], v: &str) {
        match path.split_first() {
            None => self.value = Some(v.to_string()),
            Some((head, rest)) => self
                .children
                .entry(head.to_string())
                .or_default()
                .insert(rest, v),
        }
    }

    fn get(&self, k: &str) -> Option<&Node> {
        self.children.get(k)
    }

    fn text(&self, k: &str) -> Option<String> {
        self.get(k).and_then(|n| n.value.clone())
    }

    /// The numbered children `1, 2, ...` in numeric order.
    fn items(&self) -> Vec<&Node> {
        let mut v: Vec<(u64, &Node)> = self
            .children
            .iter()
            .filter_map(|(k, n)| k.parse::<u64>().ok().map(|i| (i, n)))
            .collect();
        v.sort_by_key(|(i, _)| *i);
        v.into_iter().map(|(_, n)| n).collect()
    }
}

fn string_list(root: &Node, name: &str) -> Option<Value> {
    let n = root.get(name)?;
    Some(Value::from(
        n.items()
            .iter()
            .filter_map(|i| i.value.clone())
            .collect::<Vec<_>>(),
    ))
}

/// `Name.N.<key>` / `Name.N.<value>` pairs as a map.
fn flat_map(root: &Node, name: &str, key: &str, value: &str) -> Option<Value> {
    let n = root.get(name)?;
    let mut m = Map::new();
    for item in n.items() {
        if let (Some(k), Some(v)) = (item.text(key), item.text(value)) {
            m.insert(k, Value::from(v));
        }
    }
    Some(Value::Object(m))
}

/// `MessageAttribute.N.Name` + `MessageAttribute.N.Value.{DataType,StringValue,BinaryValue}`.
fn message_attributes(root: &Node, name: &str) -> Option<Value> {
    let n = root.get(name)?;
    let mut m = Map::new();
    for item in n.items() {
        let Some(k) = item.text("Name") else { continue };
        let mut a = Map::new();
        if let Some(v) = item.get("Value") {
            for f in ["DataType", "StringValue", "BinaryValue"] {
                if let Some(x) = v.text(f) {
                    a.insert(f.into(), Value::from(x));
                }
            }
        }
        m.insert(k, Value::Object(a));
    }
    Some(Value::Object(m))
}

/// Builds the json-protocol input of `action` from query parameters;
/// `path` (a queue URL path `/<account>/<name>`) supplies `QueueUrl`
/// when the parameters do not.
pub fn to_input(action: &str, params: &[(String, String)], path: &str) -> Map<String, Value> {
    let mut root = Node::default();
    for (k, v) in params {
        let parts: Vec<&str> = k.split('.').collect();
        root.insert(&parts, v);
    }
    let mut m = Map::new();
    // Scalars: every top-level parameter with a value.
    for (k, n) in &root.children {
        if let Some(v) = &n.value {
            m.insert(k.clone(), Value::from(v.clone()));
        }
    }
    if !m.contains_key("QueueUrl") && path.trim_matches('/').contains('/') {
        m.insert("QueueUrl".into(), Value::from(path.to_string()));
    }
    // Maps: the flattened `Attribute.N.Name/Value` and the older
    // `Attributes.entry.N.key/value` forms.
    let attributes = flat_map(&root, "Attribute", "Name", "Value").or_else(|| {
        root.get("Attributes")
            .and_then(|a| a.get("entry"))
            .map(|e| {
                let mut mm = Map::new();
                for item in e.items() {
                    if let (Some(k), Some(v)) = (item.text("key"), item.text("value")) {
                        mm.insert(k, Value::from(v));
                    }
                }
                Value::Object(mm)
            })
    });
    match action {
        "CreateQueue" => {
            if let Some(a) = attributes {
                m.insert("Attributes".into(), a);
            }
            if let Some(t) = flat_map(&root, "Tag", "Key", "Value") {
                m.insert("tags".into(), t);
            }
        }
        "SetQueueAttributes" => {
            if let Some(a) = attributes {
                m.insert("Attributes".into(), a);
            }
        }
        "TagQueue" => {
            if let Some(t) = flat_map(&root, "Tag", "Key", "Value") {
                m.insert("Tags".into(), t);
            }
        }
        "UntagQueue" => {
            if let Some(t) = string_list(&root, "TagKey") {
                m.insert("TagKeys".into(), t);
            }
        }
        "GetQueueAttributes" => {
            if let Some(a) = string_list(&root, "AttributeName") {
                m.insert("AttributeNames".into(), a);
            }
        }
        "ReceiveMessage" => {
            for (q, j) in [
                ("AttributeName", "AttributeNames"),
                ("MessageAttributeName", "MessageAttributeNames"),
                ("MessageSystemAttributeName", "MessageSystemAttributeNames"),
            ] {
                if let Some(a) = string_list(&root, q) {
                    m.insert(j.into(), a);
                }
            }
        }
        "SendMessage" => {
            send_fields(&root, &mut m);
        }
        "SendMessageBatch" | "DeleteMessageBatch" | "ChangeMessageVisibilityBatch" => {
            let list = root.get(&format!("{action}RequestEntry")).map(|n| {
                n.items()
                    .into_iter()
                    .map(|e| {
                        let mut em = Map::new();
                        for (k, c) in &e.children {
                            if let Some(v) = &c.value {
                                em.insert(k.clone(), Value::from(v.clone()));
                            }
                        }
                        if action == "SendMessageBatch" {
                            send_fields(e, &mut em);
                        }
                        Value::Object(em)
                    })
                    .collect::<Vec<_>>()
            });
            m.insert(
                "Entries".into(),
                list.map(Value::from).unwrap_or(Value::Null),
            );
        }
        _ => {}
    }
    m
}

fn send_fields(node: &Node, m: &mut Map<String, Value>) {
    if let Some(a) = message_attributes(node, "MessageAttribute") {
        m.insert("MessageAttributes".into(), a);
    }
    if let Some(a) = message_attributes(node, "MessageSystemAttribute") {
        m.insert("MessageSystemAttributes".into(), a);
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

fn el(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&esc(text));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `<Attribute><Name>k</Name><Value>v</Value></Attribute>` for each entry.
fn name_values(out: &mut String, elem: &str, k: &str, vname: &str, map: Option<&Value>) {
    if let Some(Value::Object(m)) = map {
        for (name, v) in m {
            out.push_str(&format!("<{elem}>"));
            el(out, k, name);
            el(out, vname, &scalar(v));
            out.push_str(&format!("</{elem}>"));
        }
    }
}

fn message_xml(out: &mut String, m: &Map<String, Value>) {
    out.push_str("<Message>");
    for k in ["MessageId", "ReceiptHandle", "MD5OfBody", "Body"] {
        if let Some(v) = m.get(k) {
            el(out, k, &scalar(v));
        }
    }
    name_values(out, "Attribute", "Name", "Value", m.get("Attributes"));
    if let Some(v) = m.get("MD5OfMessageAttributes") {
        el(out, "MD5OfMessageAttributes", &scalar(v));
    }
    if let Some(Value::Object(attrs)) = m.get("MessageAttributes") {
        for (name, a) in attrs {
            out.push_str("<MessageAttribute>");
            el(out, "Name", name);
            out.push_str("<Value>");
            for f in ["StringValue", "BinaryValue", "DataType"] {
                if let Some(v) = a.get(f) {
                    el(out, f, &scalar(v));
                }
            }
            out.push_str("</Value></MessageAttribute>");
        }
    }
    out.push_str("</Message>");
}

fn entries(out: &mut String, v: &Value, ok_elem: &str) {
    if let Some(Value::Array(list)) = v.get("Successful") {
        for e in list {
            out.push_str(&format!("<{ok_elem}>"));
            if let Value::Object(m) = e {
                for (k, x) in m {
                    el(out, k, &scalar(x));
                }
            }
            out.push_str(&format!("</{ok_elem}>"));
        }
    }
    if let Some(Value::Array(list)) = v.get("Failed") {
        for e in list {
            out.push_str("<BatchResultErrorEntry>");
            for k in ["Id", "SenderFault", "Code", "Message"] {
                if let Some(x) = e.get(k) {
                    el(out, k, &scalar(x));
                }
            }
            out.push_str("</BatchResultErrorEntry>");
        }
    }
}

/// The inner XML of `<{action}Result>` for the json-shaped answer `v`
/// (empty for actions whose result has no members).
pub fn to_xml(action: &str, v: &Value) -> String {
    let mut out = String::new();
    match action {
        "CreateQueue" | "GetQueueUrl" => {
            if let Some(u) = v.get("QueueUrl") {
                el(&mut out, "QueueUrl", &scalar(u));
            }
        }
        "ListQueues" | "ListDeadLetterSourceQueues" => {
            let key = if action == "ListQueues" {
                "QueueUrls"
            } else {
                "queueUrls"
            };
            if let Some(Value::Array(list)) = v.get(key) {
                for u in list {
                    el(&mut out, "QueueUrl", &scalar(u));
                }
            }
            if let Some(t) = v.get("NextToken") {
                el(&mut out, "NextToken", &scalar(t));
            }
        }
        "GetQueueAttributes" => {
            name_values(&mut out, "Attribute", "Name", "Value", v.get("Attributes"))
        }
        "ListQueueTags" => name_values(&mut out, "Tag", "Key", "Value", v.get("Tags")),
        "SendMessage" => {
            for k in [
                "MD5OfMessageBody",
                "MD5OfMessageAttributes",
                "MD5OfMessageSystemAttributes",
                "MessageId",
                "SequenceNumber",
            ] {
                if let Some(x) = v.get(k) {
                    el(&mut out, k, &scalar(x));
                }
            }
        }
        "ReceiveMessage" => {
            if let Some(Value::Array(list)) = v.get("Messages") {
                for m in list {
                    if let Value::Object(m) = m {
                        message_xml(&mut out, m);
                    }
                }
            }
        }
        "SendMessageBatch" => entries(&mut out, v, "SendMessageBatchResultEntry"),
        "DeleteMessageBatch" => entries(&mut out, v, "DeleteMessageBatchResultEntry"),
        "ChangeMessageVisibilityBatch" => {
            entries(&mut out, v, "ChangeMessageVisibilityBatchResultEntry")
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn flattened_parameters_become_json_shapes() {
        let m = to_input(
            "SendMessageBatch",
            &p(&[
                ("SendMessageBatchRequestEntry.2.Id", "b"),
                ("SendMessageBatchRequestEntry.2.MessageBody", "two"),
                ("SendMessageBatchRequestEntry.1.Id", "a"),
                ("SendMessageBatchRequestEntry.1.MessageBody", "one"),
                (
                    "SendMessageBatchRequestEntry.1.MessageAttribute.1.Name",
                    "k",
                ),
                (
                    "SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType",
                    "String",
                ),
                (
                    "SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue",
                    "v",
                ),
            ]),
            "/123456789012/q",
        );
        assert_eq!(m["QueueUrl"], "/123456789012/q");
        let e = m["Entries"].as_array().unwrap();
        assert_eq!(e[0]["Id"], "a");
        assert_eq!(e[1]["MessageBody"], "two");
        assert_eq!(e[0]["MessageAttributes"]["k"]["StringValue"], "v");
        let c = to_input(
            "CreateQueue",
            &p(&[
                ("QueueName", "q"),
                ("Attribute.1.Name", "DelaySeconds"),
                ("Attribute.1.Value", "5"),
                ("Tag.1.Key", "team"),
                ("Tag.1.Value", "x"),
            ]),
            "/",
        );
        assert_eq!(c["Attributes"]["DelaySeconds"], "5");
        assert_eq!(c["tags"]["team"], "x");
        assert!(c.get("QueueUrl").is_none());
    }

    #[test]
    fn answers_become_xml() {
        let v = serde_json::json!({"Messages": [{"MessageId": "m", "Body": "a<b", "Attributes": {"SentTimestamp": "1"}}]});
        let x = to_xml("ReceiveMessage", &v);
        assert_eq!(
            x,
            "<Message><MessageId>m</MessageId><Body>a&lt;b</Body><Attribute><Name>SentTimestamp</Name><Value>1</Value></Attribute></Message>"
        );
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any form parameters translate without panicking, and every
        /// scalar top-level parameter reaches the input unchanged.
        #[test]
        fn any_parameters_translate(
            pairs in proptest::collection::vec(("[A-Za-z.0-9]{0,24}", ".{0,16}"), 0..24),
            action in prop::sample::select(crate::ACTIONS.to_vec()),
        ) {
            let m = to_input(action, &pairs, "/123456789012/q");
            let _ = to_xml(action, &Value::Object(m.clone()));
            for (k, v) in &pairs {
                if !k.contains('.') && !k.is_empty() && pairs.iter().filter(|(k2, _)| k2 == k).count() == 1
                    && !matches!(k.as_str(), "Attributes" | "Entries" | "MessageAttributes" | "MessageSystemAttributes" | "AttributeNames" | "MessageAttributeNames" | "MessageSystemAttributeNames" | "Tags" | "TagKeys" | "tags")
                    && !pairs.iter().any(|(k2, _)| k2.starts_with(&format!("{k}.")))
                {
                    prop_assert_eq!(m.get(k).and_then(Value::as_str), Some(v.as_str()));
                }
            }
        }

        /// Receipt handles and queue URLs from anywhere never panic the
        /// decoders.
        #[test]
        fn decoders_take_any_text(s in ".{0,80}") {
            let _ = crate::service::decode_receipt(&s, 1);
            let _ = crate::queue::parse_url(&s);
            let _ = crate::queue::parse_arn(&s);
        }

        /// A receipt handle decodes to what it encodes, and only for its queue.
        #[test]
        fn receipts_round_trip(q in 1i64..1_000_000, seq in 1i64..i64::MAX, n in "[0-9a-f]{32}") {
            let h = crate::service::encode_receipt(q, seq, &n);
            prop_assert_eq!(crate::service::decode_receipt(&h, q).unwrap(), (seq, n));
            prop_assert!(crate::service::decode_receipt(&h, q + 1).is_err());
        }
    }
}
