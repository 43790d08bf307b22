//! What a target receives: the whole event, a constant `Input`, the part
//! of the event an `InputPath` selects, or an `InputTransformer`'s
//! template filled from the event
//! (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html>,
//! botocore `events` 2015-10-07 `Target` / `InputTransformer`).
//!
//! Paths use JSON dot notation: `$`, `$.detail`, `$.detail.items[0]`,
//! `$.resources[*]` (`*` selects every element or member and gives an
//! array). Template placeholders are `<name>`: a key of `InputPathsMap`, or
//! one of the predefined variables `aws.events.rule-arn`,
//! `aws.events.rule-name`, `aws.events.event.ingestion-time`,
//! `aws.events.event` (the event without `detail`) and
//! `aws.events.event.json` (the whole event).
//!
//! A template that starts with `{` or `[` (a JSON object or array) is rendered as JSON: a
//! placeholder outside quotes becomes the value's JSON (strings quoted, a
//! missing value `null`); inside quotes it becomes the value's text,
//! escaped for the string (a missing value the empty string). Any other
//! template is text: placeholders become the value's text (strings without
//! quotes, other values as JSON, missing values nothing).

use std::collections::BTreeMap;

use serde_json::Value;

/// Most variables one `InputPathsMap` may define (botocore: max 100).
pub const MAX_PATHS: usize = 100;

/// One segment of a path.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
    All,
}

/// A parsed JSON path in dot notation.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    segs: Vec<Seg>,
}

impl JsonPath {
    /// Parses `$`, `$.a.b`, `$.a[0]`, `$.a[*]`, `$.a.*`.
    ///
    /// Errors: a sentence naming the path and what is wrong.
    pub fn parse(path: &str) -> Result<JsonPath, String> {
        let bad = |why: &str| format!("'{path}' is not a valid JSON path: {why}");
        let Some(mut rest) = path.strip_prefix('$') else {
            return Err(bad("it must start with $"));
        };
        let mut segs = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let key = &r[..end];
                if key.is_empty() {
                    return Err(bad("empty field name"));
                }
                segs.push(if key == "*" {
                    Seg::All
                } else {
                    Seg::Key(key.to_string())
                });
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let Some(end) = r.find(']') else {
                    return Err(bad("unclosed ["));
                };
                let inner = &r[..end];
                if inner == "*" {
                    segs.push(Seg::All);
                } else {
                    let n: usize = inner
                        .parse()
                        .map_err(|_| bad("only array indices and * may stand in brackets"))?;
                    segs.push(Seg::Index(n));
                }
                rest = &r[end + 1..];
            } else {
                return Err(bad("expected . or [ after a segment"));
            }
        }
        Ok(JsonPath { segs })
    }

    /// The value at the path, if any. A `*` gives an array of everything
    /// it reaches.
    pub fn select(&self, v: &Value) -> Option<Value> {
        select(&self.segs, v)
    }
}

fn select(segs: &[Seg], v: &Value) -> Option<Value> {
    let Some((first, rest)) = segs.split_first() else {
        return Some(v.clone());
    };
    match first {
        Seg::Key(k) => select(rest, v.as_object()?.get(k)?),
        Seg::Index(i) => select(rest, v.as_array()?.get(*i)?),
        Seg::All => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                Value::Object(o) => o.values().collect(),
                _ => return None,
            };
            Some(Value::Array(
                items.into_iter().filter_map(|x| select(rest, x)).collect(),
            ))
        }
    }
}

/// What the predefined variables stand for, for one rule and one event.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// `aws.events.rule-arn`.
    pub rule_arn: &'a str,
    /// `aws.events.rule-name`.
    pub rule_name: &'a str,
    /// `aws.events.event.ingestion-time` (ISO 8601).
    pub ingestion_time: &'a str,
}

/// A validated `InputTransformer`.
#[derive(Debug, Clone)]
pub struct Transformer {
    paths: BTreeMap<String, JsonPath>,
    template: String,
}

/// Whether a template is rendered as JSON: it starts with `{` or `[`.
fn is_json_template(t: &str) -> bool {
    let t = t.trim_start();
    t.starts_with('{') || t.starts_with('[')
}

const PREDEFINED: [&str; 5] = [
    "aws.events.rule-arn",
    "aws.events.rule-name",
    "aws.events.event.ingestion-time",
    "aws.events.event",
    "aws.events.event.json",
];

impl Transformer {
    /// Checks an `InputTransformer` as PutTargets does: at most 100 paths,
    /// keys of letters, digits, `_` and `-` (so never a predefined name), paths
    /// in dot notation, and a JSON template that is valid JSON once its
    /// placeholders are filled.
    ///
    /// Errors: a sentence for a `ValidationException`.
    pub fn new(paths: &BTreeMap<String, String>, template: &str) -> Result<Transformer, String> {
        if paths.len() > MAX_PATHS {
            return Err(format!(
                "InputPathsMap has {} entries; at most {MAX_PATHS} are allowed.",
                paths.len()
            ));
        }
        let mut compiled = BTreeMap::new();
        for (k, p) in paths {
            if k.is_empty()
                || k.len() > 256
                || !k
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!(
                    "InputPathsMap key '{k}' is not valid: use 1-256 letters, digits, _ or -."
                ));
            }
            compiled.insert(k.clone(), JsonPath::parse(p)?);
        }
        if template.is_empty() {
            return Err("InputTemplate must not be empty.".into());
        }
        let t = Transformer {
            paths: compiled,
            template: template.to_string(),
        };
        if is_json_template(template) {
            let probe = t.render_with(|_| None);
            serde_json::from_str::<Value>(&probe).map_err(|e| {
                format!("InputTemplate is not valid JSON once its placeholders are filled: {e}")
            })?;
        }
        Ok(t)
    }

    /// Fills the template from `event` (the envelope).
    pub fn render(&self, event: &Value, ctx: &Context<'_>) -> String {
        self.render_with(|name| match name {
            "aws.events.rule-arn" => Some(Value::from(ctx.rule_arn)),
            "aws.events.rule-name" => Some(Value::from(ctx.rule_name)),
            "aws.events.event.ingestion-time" => Some(Value::from(ctx.ingestion_time)),
            "aws.events.event.json" => Some(event.clone()),
            "aws.events.event" => {
                let mut e = event.clone();
                if let Some(o) = e.as_object_mut() {
                    o.remove("detail");
                }
                Some(e)
            }
            key => self.paths.get(key).and_then(|p| p.select(event)),
        })
    }

    fn known(&self, name: &str) -> bool {
        self.paths.contains_key(name) || PREDEFINED.contains(&name)
    }

    fn render_with(&self, lookup: impl Fn(&str) -> Option<Value>) -> String {
        let json = is_json_template(&self.template);
        let t = &self.template;
        let mut out = String::with_capacity(t.len() + 64);
        let mut in_string = false;
        let mut i = 0;
        let bytes = t.as_bytes();
        while i < t.len() {
            let c = bytes[i];
            if c == b'<'
                && let Some(end) = t[i + 1..].find('>')
            {
                let name = &t[i + 1..i + 1 + end];
                if self.known(name) {
                    let v = lookup(name);
                    out.push_str(&fill(v.as_ref(), json, in_string));
                    i += end + 2;
                    continue;
                }
            }
            if json {
                if c == b'"' {
                    in_string = !in_string;
                } else if c == b'\\' && in_string {
                    // Copy the escape and the escaped character as they are.
                    let next = t[i + 1..].chars().next().map_or(0, char::len_utf8);
                    out.push_str(&t[i..i + 1 + next]);
                    i += 1 + next;
                    continue;
                }
            }
            let ch_len = t[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&t[i..i + ch_len]);
            i += ch_len;
        }
        out
    }
}

/// The text that replaces one placeholder.
fn fill(v: Option<&Value>, json: bool, in_string: bool) -> String {
    match (json, in_string, v) {
        (true, false, Some(v)) => v.to_string(),
        (true, false, None) => "null".into(),
        (true, true, Some(Value::String(s))) => escape_in_string(s),
        (true, true, Some(v)) => escape_in_string(&v.to_string()),
        (_, _, None) => String::new(),
        (false, _, Some(Value::String(s))) => s.clone(),
        (false, _, Some(v)) => v.to_string(),
    }
}

/// `s` escaped for the inside of a JSON string (without the quotes).
fn escape_in_string(s: &str) -> String {
    let quoted = Value::from(s).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The EC2 event of the input transformation page
    /// (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html>).
    fn event() -> Value {
        json!({
            "version": "0",
            "id": "7bf73129-1428-4cd3-a780-95db273d1602",
            "detail-type": "EC2 Instance State-change Notification",
            "source": "aws.ec2",
            "account": "123456789012",
            "time": "2015-11-11T21:29:54Z",
            "region": "us-east-1",
            "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
            "detail": {"instance-id": "i-0123456789", "state": "RUNNING"}
        })
    }

    fn ctx() -> Context<'static> {
        Context {
            rule_arn: "arn:aws:events:us-east-1:123456789012:rule/r",
            rule_name: "r",
            ingestion_time: "2015-11-11T21:29:55Z",
        }
    }

    fn paths() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("instance".to_string(), "$.detail.instance-id".to_string()),
            ("state".to_string(), "$.detail.state".to_string()),
        ])
    }

    fn render(template: &str) -> String {
        Transformer::new(&paths(), template)
            .unwrap()
            .render(&event(), &ctx())
    }

    // The page's "Input transform examples": each template and the output
    // the page shows for it.
    #[test]
    fn documented_examples() {
        assert_eq!(
            render(
                r#"{"instance" : <instance>, "state": [9, <state>, true], "Transformed" : "Yes" }"#
            ),
            r#"{"instance" : "i-0123456789", "state": [9, "RUNNING", true], "Transformed" : "Yes" }"#
        );
        assert_eq!(
            render("<instance> is in state <state>"),
            "i-0123456789 is in state RUNNING"
        );
        assert_eq!(
            render(r#"<instance> is in state "<state>""#),
            r#"i-0123456789 is in state "RUNNING""#
        );
        assert_eq!(
            render(
                r#"{"instance" : <instance>, "state": <state>, "instanceStatus": "<instance> is in state <state>"}"#
            ),
            r#"{"instance" : "i-0123456789", "state": "RUNNING", "instanceStatus": "i-0123456789 is in state RUNNING"}"#
        );
        assert_eq!(
            render(
                "<aws.events.rule-arn> <aws.events.rule-name> <aws.events.event.ingestion-time>"
            ),
            "arn:aws:events:us-east-1:123456789012:rule/r r 2015-11-11T21:29:55Z"
        );
    }

    #[test]
    fn whole_event_variables() {
        let out = render(r#"{"raw": <aws.events.event.json>, "nodetail": <aws.events.event>}"#);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["raw"], event());
        assert_eq!(v["nodetail"]["id"], "7bf73129-1428-4cd3-a780-95db273d1602");
        assert!(v["nodetail"].get("detail").is_none());
    }

    #[test]
    fn quoting_inside_json_strings_and_missing_values() {
        let p = BTreeMap::from([
            ("msg".to_string(), "$.detail.msg".to_string()),
            ("missing".to_string(), "$.detail.nope".to_string()),
            ("obj".to_string(), "$.detail".to_string()),
        ]);
        let e = json!({"detail": {"msg": "say \"hi\"\n"}});
        let t = Transformer::new(
            &p,
            r#"{"a": "<msg>", "b": <missing>, "c": "<missing>", "d": <obj>}"#,
        )
        .unwrap();
        let out = t.render(&e, &ctx());
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["a"], "say \"hi\"\n");
        assert_eq!(v["b"], Value::Null);
        assert_eq!(v["c"], "");
        assert_eq!(v["d"], json!({"msg": "say \"hi\"\n"}));
        // Text templates: missing values are empty, unknown <tags> stay.
        let t = Transformer::new(&p, "got [<missing>] <b>bold</b> <msg>").unwrap();
        assert_eq!(t.render(&e, &ctx()), "got [] <b>bold</b> say \"hi\"\n");
    }

    #[test]
    fn json_paths() {
        let e = event();
        let sel = |p: &str| JsonPath::parse(p).unwrap().select(&e);
        assert_eq!(sel("$"), Some(e.clone()));
        assert_eq!(sel("$.detail.state"), Some(json!("RUNNING")));
        assert_eq!(
            sel("$.resources[0]"),
            Some(json!(
                "arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"
            ))
        );
        assert_eq!(sel("$.resources[1]"), None);
        assert_eq!(
            sel("$.resources[*]"),
            Some(json!([
                "arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"
            ]))
        );
        assert_eq!(sel("$.detail.nope"), None);
        for bad in ["detail", "$detail", "$.", "$.a[", "$.a[x]", "$..a"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// Any template, any path map: validation and rendering never panic.
        #[test]
        fn render_never_panics(t in "[{}\\[\\]<>\"\\\\a-z:. é]{0,40}") {
            if let Ok(tr) = Transformer::new(&paths(), &t) {
                let _ = tr.render(&event(), &ctx());
            }
        }
    }

    #[test]
    fn validation() {
        let bad_key = BTreeMap::from([("a.b".to_string(), "$.x".to_string())]);
        assert!(Transformer::new(&bad_key, "<a.b>").is_err());
        let bad_path = BTreeMap::from([("a".to_string(), "detail.x".to_string())]);
        assert!(Transformer::new(&bad_path, "<a>").is_err());
        assert!(Transformer::new(&paths(), r#"{"a": <state>"#).is_err());
        assert!(Transformer::new(&paths(), "").is_err());
        let many: BTreeMap<String, String> = (0..101)
            .map(|i| (format!("k{i}"), "$.x".to_string()))
            .collect();
        assert!(Transformer::new(&many, "x").is_err());
    }
}
