//! Subscription filter policies: AWS's filter policy language
//! (<https://docs.aws.amazon.com/sns/latest/dg/sns-subscription-filter-policies.html>).
//!
//! A policy is a JSON object. Each key names a message attribute
//! (`FilterPolicyScope` `MessageAttributes`, the default) or a property of
//! the JSON message body (`MessageBody`, where objects nest). The value is an
//! array of conditions, any one of which must match (OR); every key must
//! match (AND); `"$or": [{...}, {...}]` matches when any of its policies
//! does. Conditions:
//!
//! * exact values: `"red"`, `42`, `true`, `null`
//! * `{"prefix": "a"}`, `{"suffix": "z"}`, `{"equals-ignore-case": "Red"}`
//! * `{"anything-but": "a" | 1 | ["a", 1] | {"prefix": "a"} | {"suffix": "z"}}`
//! * `{"numeric": ["=", 5]}`, `{"numeric": [">", 0, "<=", 10]}`
//! * `{"exists": true | false}`
//! * `{"cidr": "10.0.0.0/24"}` (IPv4 and IPv6)
//!
//! Constraints (AWS's "Filter policy constraints" page): at most 5 keys,
//! at most 150 value combinations, numbers between -1e9 and 1e9 compared
//! with five decimal digits, at most 256 KiB of JSON. Errors are
//! `InvalidParameter` (400) with `Invalid parameter: FilterPolicy: ...`.

use std::net::IpAddr;

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use stratus_core::{AwsError, AwsResult, MessageAttribute};

/// Where a policy looks: `MessageAttributes` (default) or `MessageBody`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Message attributes of type `String`, `String.Array` and `Number`.
    MessageAttributes,
    /// Properties of the JSON message body, nested objects included.
    MessageBody,
}

impl Scope {
    /// Parses a `FilterPolicyScope` attribute value.
    ///
    /// Errors: `InvalidParameter` for anything but the two scope names.
    pub fn parse(s: &str) -> AwsResult<Scope> {
        match s {
            "MessageAttributes" => Ok(Scope::MessageAttributes),
            "MessageBody" => Ok(Scope::MessageBody),
            other => Err(crate::invalid(format!(
                "Invalid parameter: Attributes Reason: FilterPolicyScope: Invalid value [{other}]. Please use either MessageBody or MessageAttributes"
            ))),
        }
    }
}

/// Largest filter policy, bytes.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// Most keys a policy may have.
pub const MAX_KEYS: usize = 5;
/// Most value combinations a policy may have.
pub const MAX_COMBINATIONS: usize = 150;
const NUM_LIMIT: f64 = 1e9;

/// A validated filter policy.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPolicy {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    leaves: Vec<Leaf>,
    ors: Vec<Vec<Node>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Leaf {
    path: Vec<String>,
    conds: Vec<Cond>,
}

#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Exact(Scalar),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Scalar>),
    AnythingButPrefix(String),
    AnythingButSuffix(String),
    Numeric(Vec<(NumOp, i64)>),
    Exists(bool),
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum NumOp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One value a key holds in a message.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Str(String),
    /// A number at five decimal digits (value x 100000, rounded).
    Num(i64),
    Bool(bool),
    Null,
}

fn bad(msg: impl AsRef<str>) -> AwsError {
    crate::invalid(format!("Invalid parameter: FilterPolicy: {}", msg.as_ref()))
}

/// A number at AWS's five decimal digits of precision.
fn fixed(n: f64) -> i64 {
    (n * 100_000.0).round() as i64
}

impl FilterPolicy {
    /// Parses and validates `text` for `scope`.
    ///
    /// Errors: `InvalidParameter` (400), `Invalid parameter: FilterPolicy: ...`
    /// for malformed JSON, unknown operators, bad operands, nesting in the
    /// `MessageAttributes` scope, more than 5 keys or 150 combinations.
    pub fn parse(text: &str, scope: Scope) -> AwsResult<FilterPolicy> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(bad("Filter policy is too long"));
        }
        let v: Value =
            serde_json::from_str(text).map_err(|e| bad(format!("failed to parse JSON. {e}")))?;
        let Value::Object(obj) = v else {
            return Err(bad("Filter policy must be a JSON object"));
        };
        let root = parse_node(&obj, &[], scope)?;
        if max_keys(&root) > MAX_KEYS {
            return Err(bad(format!(
                "Filter policy can not have more than {MAX_KEYS} keys"
            )));
        }
        if combinations(&root) > MAX_COMBINATIONS {
            return Err(bad("Filter policy is too complex"));
        }
        Ok(FilterPolicy { root })
    }

    /// Whether a message with these attributes matches
    /// (`MessageAttributes` scope). A message without attributes never
    /// matches a policy with keys.
    pub fn matches_attributes(&self, attrs: &BTreeMap<String, MessageAttribute>) -> bool {
        let lookup = |path: &[String]| -> Option<Vec<Scalar>> {
            let a = attrs.get(path.first()?)?;
            attribute_values(a)
        };
        if attrs.is_empty() && !self.root.is_empty() {
            return false;
        }
        self.root.matches(&lookup)
    }

    /// Whether a message body matches (`MessageBody` scope). A body that is
    /// not a JSON object never matches a policy with keys.
    pub fn matches_body(&self, body: &str) -> bool {
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(body) else {
            return self.root.is_empty();
        };
        let root = Value::Object(obj);
        let lookup = |path: &[String]| -> Option<Vec<Scalar>> {
            let mut out = Vec::new();
            collect(&root, path, &mut out);
            (!out.is_empty()).then_some(out)
        };
        self.root.matches(&lookup)
    }
}

/// The values of a message attribute for filtering; `Binary` attributes
/// are not compared (AWS filters on `String`, `String.Array`, `Number`).
fn attribute_values(a: &MessageAttribute) -> Option<Vec<Scalar>> {
    let base = a.data_type.split('.').next().unwrap_or("");
    let sv = a.string_value.as_deref()?;
    if a.data_type == "String.Array" {
        let Ok(Value::Array(items)) = serde_json::from_str::<Value>(sv) else {
            return Some(vec![Scalar::Str(sv.to_string())]);
        };
        let mut out = Vec::new();
        for it in &items {
            if let Some(s) = scalar(it) {
                out.push(s);
            }
        }
        return Some(out);
    }
    match base {
        "String" => Some(vec![Scalar::Str(sv.to_string())]),
        "Number" => sv
            .trim()
            .parse::<f64>()
            .ok()
            .map(|n| vec![Scalar::Num(fixed(n))]),
        _ => None,
    }
}

fn scalar(v: &Value) -> Option<Scalar> {
    match v {
        Value::String(s) => Some(Scalar::Str(s.clone())),
        Value::Number(n) => n.as_f64().map(|f| Scalar::Num(fixed(f))),
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        Value::Null => Some(Scalar::Null),
        _ => None,
    }
}

/// Leaf values at `path` in a JSON document; arrays along the way (and at
/// the end) contribute each element.
fn collect(v: &Value, path: &[String], out: &mut Vec<Scalar>) {
    match v {
        Value::Array(items) => {
            for it in items {
                collect(it, path, out);
            }
        }
        Value::Object(m) => {
            if let Some((first, rest)) = path.split_first()
                && let Some(child) = m.get(first)
            {
                collect(child, rest, out);
            }
        }
        other => {
            if path.is_empty()
                && let Some(s) = scalar(other)
            {
                out.push(s);
            }
        }
    }
}

impl Node {
    fn is_empty(&self) -> bool {
        self.leaves.is_empty() && self.ors.is_empty()
    }

    fn matches(&self, lookup: &dyn Fn(&[String]) -> Option<Vec<Scalar>>) -> bool {
        self.leaves.iter().all(|l| l.matches(lookup(&l.path)))
            && self
                .ors
                .iter()
                .all(|alts| alts.iter().any(|n| n.matches(lookup)))
    }
}

impl Leaf {
    fn matches(&self, values: Option<Vec<Scalar>>) -> bool {
        self.conds.iter().any(|c| match c {
            Cond::Exists(want) => {
                let present = values
                    .as_ref()
                    .is_some_and(|v| v.iter().any(|s| *s != Scalar::Null));
                present == *want
            }
            c => values
                .as_ref()
                .is_some_and(|vs| vs.iter().any(|v| c.matches(v))),
        })
    }
}

impl Cond {
    fn matches(&self, v: &Scalar) -> bool {
        match (self, v) {
            (Cond::Exact(want), v) => want == v,
            (Cond::Prefix(p), Scalar::Str(s)) => s.starts_with(p.as_str()),
            (Cond::Suffix(p), Scalar::Str(s)) => s.ends_with(p.as_str()),
            (Cond::EqualsIgnoreCase(p), Scalar::Str(s)) => s.to_lowercase() == p.to_lowercase(),
            (Cond::AnythingBut(list), v) => *v != Scalar::Null && !list.contains(v),
            (Cond::AnythingButPrefix(p), Scalar::Str(s)) => !s.starts_with(p.as_str()),
            (Cond::AnythingButSuffix(p), Scalar::Str(s)) => !s.ends_with(p.as_str()),
            (Cond::Numeric(ops), Scalar::Num(n)) => ops.iter().all(|(op, x)| match op {
                NumOp::Eq => n == x,
                NumOp::Lt => n < x,
                NumOp::Le => n <= x,
                NumOp::Gt => n > x,
                NumOp::Ge => n >= x,
            }),
            (Cond::Cidr(net, bits), Scalar::Str(s)) => {
                s.parse::<IpAddr>().is_ok_and(|ip| in_cidr(ip, *net, *bits))
            }
            _ => false,
        }
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn parse_node(obj: &Map<String, Value>, prefix: &[String], scope: Scope) -> AwsResult<Node> {
    let mut node = Node {
        leaves: Vec::new(),
        ors: Vec::new(),
    };
    for (k, v) in obj {
        if k == "$or" {
            let Value::Array(alts) = v else {
                return Err(bad("\"$or\" must be an array of objects"));
            };
            if alts.len() < 2 {
                return Err(bad("\"$or\" must have at least 2 objects"));
            }
            let mut group = Vec::new();
            for alt in alts {
                let Value::Object(m) = alt else {
                    return Err(bad("\"$or\" must be an array of objects"));
                };
                group.push(parse_node(m, prefix, scope)?);
            }
            node.ors.push(group);
            continue;
        }
        let mut path = prefix.to_vec();
        path.push(k.clone());
        match v {
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(bad("Empty arrays are not allowed"));
                }
                let mut conds = Vec::new();
                for it in items {
                    conds.push(parse_cond(it)?);
                }
                node.leaves.push(Leaf { path, conds });
            }
            Value::Object(m) => {
                if scope == Scope::MessageAttributes {
                    return Err(bad(
                        "Filter policy scope MessageAttributes does not support nested filter policy",
                    ));
                }
                if m.is_empty() {
                    return Err(bad(format!("\"{k}\" must not be an empty object")));
                }
                let child = parse_node(m, &path, scope)?;
                node.leaves.extend(child.leaves);
                node.ors.extend(child.ors);
            }
            _ => {
                return Err(bad(format!("\"{k}\" must be an object or an array")));
            }
        }
    }
    Ok(node)
}

fn number(v: &Value, what: &str) -> AwsResult<i64> {
    let n = v
        .as_f64()
        .ok_or_else(|| bad(format!("Value of {what} must be numeric")))?;
    if !(-NUM_LIMIT..=NUM_LIMIT).contains(&n) {
        return Err(bad("Numeric value must be between -1.0E9 and 1.0E9"));
    }
    Ok(fixed(n))
}

fn exact(v: &Value) -> AwsResult<Scalar> {
    match v {
        Value::Number(_) => Ok(Scalar::Num(number(v, "a match value")?)),
        Value::String(s) => Ok(Scalar::Str(s.clone())),
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        Value::Null => Ok(Scalar::Null),
        _ => Err(bad(
            "Match value must be String, number, true, false, or null",
        )),
    }
}

fn string_operand(v: &Value, op: &str) -> AwsResult<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(bad(format!("{op} match pattern must be a string"))),
    }
}

fn parse_cond(v: &Value) -> AwsResult<Cond> {
    let Value::Object(m) = v else {
        return exact(v).map(Cond::Exact);
    };
    if m.len() != 1 {
        return Err(bad("Only one key allowed in match expression"));
    }
    let Some((op, arg)) = m.iter().next() else {
        return Err(bad("Empty match expression"));
    };
    match op.as_str() {
        "prefix" => Ok(Cond::Prefix(string_operand(arg, "prefix")?)),
        "suffix" => Ok(Cond::Suffix(string_operand(arg, "suffix")?)),
        "equals-ignore-case" => Ok(Cond::EqualsIgnoreCase(string_operand(
            arg,
            "equals-ignore-case",
        )?)),
        "exists" => match arg {
            Value::Bool(b) => Ok(Cond::Exists(*b)),
            _ => Err(bad("exists match pattern must be either true or false.")),
        },
        "anything-but" => match arg {
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(bad("Empty arrays are not allowed"));
                }
                let mut list = Vec::new();
                for it in items {
                    match it {
                        Value::String(_) | Value::Number(_) => list.push(exact(it)?),
                        _ => {
                            return Err(bad(
                                "Inside anything but list, start|null|boolean is not supported.",
                            ));
                        }
                    }
                }
                Ok(Cond::AnythingBut(list))
            }
            Value::String(_) | Value::Number(_) => Ok(Cond::AnythingBut(vec![exact(arg)?])),
            Value::Object(inner) => {
                if inner.len() != 1 {
                    return Err(bad("Only one key allowed in match expression"));
                }
                match inner.iter().next() {
                    Some((k, p)) if k == "prefix" => {
                        let p = string_operand(p, "prefix")?;
                        if p.is_empty() {
                            return Err(bad("Null prefix not allowed"));
                        }
                        Ok(Cond::AnythingButPrefix(p))
                    }
                    Some((k, p)) if k == "suffix" => {
                        let p = string_operand(p, "suffix")?;
                        if p.is_empty() {
                            return Err(bad("Null suffix not allowed"));
                        }
                        Ok(Cond::AnythingButSuffix(p))
                    }
                    Some((k, _)) => Err(bad(format!("Unsupported anything-but pattern: {k}"))),
                    None => Err(bad("Empty match expression")),
                }
            }
            _ => Err(bad(
                "Value of anything-but must be an array or single string/number value.",
            )),
        },
        "numeric" => {
            let Value::Array(items) = arg else {
                return Err(bad("Value of numeric must be an array."));
            };
            if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
                return Err(bad(
                    "Value of numeric must be an array of one or two operator, value pairs",
                ));
            }
            let mut ops = Vec::new();
            let (mut lower, mut upper, mut eq) = (false, false, false);
            for pair in items.chunks(2) {
                let op_name = pair[0].as_str().ok_or_else(|| {
                    bad("Value of numeric must be an array of operator, value pairs")
                })?;
                let op = match op_name {
                    "=" => NumOp::Eq,
                    "<" => NumOp::Lt,
                    "<=" => NumOp::Le,
                    ">" => NumOp::Gt,
                    ">=" => NumOp::Ge,
                    other => {
                        return Err(bad(format!("Unrecognized numeric range operator: {other}")));
                    }
                };
                if (op == NumOp::Eq && items.len() > 2) || eq {
                    return Err(bad("Bad numeric range operator"));
                }
                let slot = match op {
                    NumOp::Eq => &mut eq,
                    NumOp::Lt | NumOp::Le => &mut upper,
                    NumOp::Gt | NumOp::Ge => &mut lower,
                };
                if *slot {
                    return Err(bad("Bad numeric range operator"));
                }
                *slot = true;
                ops.push((op, number(&pair[1], op_name)?));
            }
            if let (Some(lo), Some(hi)) = (
                ops.iter().find(|(o, _)| matches!(o, NumOp::Gt | NumOp::Ge)),
                ops.iter().find(|(o, _)| matches!(o, NumOp::Lt | NumOp::Le)),
            ) && lo.1 >= hi.1
            {
                return Err(bad("Bottom must be less than top"));
            }
            Ok(Cond::Numeric(ops))
        }
        "cidr" => {
            let s = string_operand(arg, "cidr")?;
            let (ip, bits) = s
                .split_once('/')
                .ok_or_else(|| bad(format!("Malformed CIDR, one '/' required: {s}")))?;
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| bad(format!("Nonstandard IP address: {ip}")))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits: u8 = bits.parse().ok().filter(|b| *b <= max).ok_or_else(|| {
                bad(format!(
                    "Malformed CIDR, mask bits must be between 0 and {max}: {s}"
                ))
            })?;
            Ok(Cond::Cidr(ip, bits))
        }
        other => Err(bad(format!("Unrecognized match type {other}"))),
    }
}

/// Keys one combination of the policy can test: this node's keys plus the
/// largest alternative of each `$or`.
fn max_keys(n: &Node) -> usize {
    n.leaves.len()
        + n.ors
            .iter()
            .map(|alts| alts.iter().map(max_keys).max().unwrap_or(0))
            .sum::<usize>()
}

/// AWS's combination count: the product of the number of values of each
/// key; an `$or` contributes the sum of its alternatives.
fn combinations(n: &Node) -> usize {
    let mut c: usize = 1;
    for l in &n.leaves {
        c = c.saturating_mul(l.conds.len());
    }
    for alts in &n.ors {
        let s = alts
            .iter()
            .map(combinations)
            .fold(0usize, |a, b| a.saturating_add(b));
        c = c.saturating_mul(s);
    }
    c
}

#[cfg(test)]
mod tests;
