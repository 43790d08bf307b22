//! The query protocol's shapes: flattened form parameters in, XML out.
//!
//! In: `MetricData.member.1.Dimensions.member.2.Name=...` becomes
//! `{"MetricData": [{"Dimensions": [{}, {"Name": "..."}]}]}` (lists are
//! `member.N`, 1-based; every value stays a string, which the readers of
//! [`crate::input`] accept). Out: the operation's json answer as the inner
//! XML of `<{Action}Result>`: lists as `<member>` elements, the
//! `ExtendedStatistics` map as `<entry><key/><value/></entry>`,
//! timestamps (`Timestamp`, `Timestamps`) in ISO 8601.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

#[derive(Debug)]
enum Node {
    Leaf(String),
    Branch(BTreeMap<String, Node>),
}

fn insert(node: &mut BTreeMap<String, Node>, path: &[&str], value: &str) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        node.insert(first.to_string(), Node::Leaf(value.to_string()));
        return;
    }
    let child = node
        .entry(first.to_string())
        .or_insert_with(|| Node::Branch(BTreeMap::new()));
    if let Node::Leaf(_) = child {
        *child = Node::Branch(BTreeMap::new());
    }
    if let Node::Branch(m) = child {
        insert(m, rest, value);
    }
}

fn to_json(node: Node) -> Value {
    match node {
        Node::Leaf(s) => Value::String(s),
        Node::Branch(mut m) => {
            if m.len() == 1
                && let Some(Node::Branch(items)) = m.get("member")
                && items.keys().all(|k| k.parse::<usize>().is_ok())
            {
                let Some(Node::Branch(items)) = m.remove("member") else {
                    return Value::Array(Vec::new());
                };
                let mut items: Vec<(usize, Node)> = items
                    .into_iter()
                    .filter_map(|(k, v)| k.parse::<usize>().ok().map(|i| (i, v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                return Value::Array(items.into_iter().map(|(_, v)| to_json(v)).collect());
            }
            Value::Object(m.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
    }
}

/// Turns query parameters (without `Action` / `Version`) into the json
/// shape of the same request.
pub fn params_to_json(params: &[(String, String)]) -> Map<String, Value> {
    let mut root = BTreeMap::new();
    for (k, v) in params {
        let path: Vec<&str> = k.split('.').collect();
        insert(&mut root, &path, v);
    }
    match to_json(Node::Branch(root)) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

fn scalar(v: &Value, timestamp: bool) -> String {
    match v {
        Value::String(s) => escape(s),
        Value::Number(n) if timestamp => {
            let ms = (n.as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
            stratus_core::time::iso_ms(ms)
        }
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        _ => String::new(),
    }
}

fn element(out: &mut String, name: &str, v: &Value) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    match v {
        Value::Object(m) if name == "ExtendedStatistics" => {
            for (k, val) in m {
                out.push_str("<entry><key>");
                out.push_str(&escape(k));
                out.push_str("</key><value>");
                out.push_str(&scalar(val, false));
                out.push_str("</value></entry>");
            }
        }
        Value::Object(m) => {
            for (k, val) in m {
                element(out, k, val);
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(_) | Value::Array(_) => element(out, "member", item),
                    _ => {
                        out.push_str("<member>");
                        out.push_str(&scalar(item, name == "Timestamps"));
                        out.push_str("</member>");
                    }
                }
            }
        }
        _ => out.push_str(&scalar(v, name == "Timestamp")),
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// The inner XML of `<{Action}Result>` for an operation's json answer.
pub fn to_xml(v: &Value) -> String {
    let mut out = String::new();
    if let Value::Object(m) = v {
        for (k, val) in m {
            element(&mut out, k, val);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattened_lists_become_json_lists() {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        let j = params_to_json(&[
            p("Namespace", "App"),
            p("MetricData.member.1.MetricName", "m"),
            p("MetricData.member.1.Dimensions.member.2.Name", "b"),
            p("MetricData.member.1.Dimensions.member.1.Name", "a"),
            p("MetricData.member.1.Values.member.1", "1.5"),
            p("MetricData.member.1.Values.member.10", "3"),
            p("MetricData.member.1.Values.member.2", "2"),
        ]);
        assert_eq!(
            Value::Object(j),
            json!({"Namespace": "App", "MetricData": [{
                "MetricName": "m",
                "Dimensions": [{"Name": "a"}, {"Name": "b"}],
                "Values": ["1.5", "2", "3"]}]})
        );
    }

    #[test]
    fn answers_as_xml() {
        let x = to_xml(&json!({"Label": "a<b", "Datapoints": [
            {"Timestamp": 1614834367, "Sum": 2.5, "ExtendedStatistics": {"p99": 1.0}}]}));
        assert!(x.contains("<Label>a&lt;b</Label>"), "{x}");
        assert!(
            x.contains("<Timestamp>2021-03-04T05:06:07.000Z</Timestamp>"),
            "{x}"
        );
        assert!(x.contains("<ExtendedStatistics><entry><key>p99</key><value>1.0</value></entry></ExtendedStatistics>"), "{x}");
        let x = to_xml(&json!({"MetricDataResults": [{"Timestamps": [60], "Values": [1]}]}));
        assert!(
            x.contains("<Timestamps><member>1970-01-01T00:01:00.000Z</member></Timestamps>"),
            "{x}"
        );
    }
}
