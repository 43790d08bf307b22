//! Event patterns: parsing, validation and matching, as the EventBridge User
//! Guide defines them
//! (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html>,
//! <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-content-based-filtering.html>,
//! <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html>).
//!
//! A pattern is a JSON object whose structure mirrors the events it
//! matches. Every field of the pattern must match (AND); a leaf is an array
//! of values and filters of which at least one must match (OR). When the
//! event's value is an array, the pattern matches if any element matches.
//! Filters: exact values (strings, numbers, booleans, `null`), `prefix`,
//! `suffix` (both also with `equals-ignore-case`), `equals-ignore-case`,
//! `anything-but` (a value, a list, `prefix`, `suffix`,
//! `equals-ignore-case`, `wildcard`), `numeric` (`=`, `<`, `<=`, `>`, `>=`,
//! a lower and an upper bound combined), `exists`, `cidr` (IPv4 and IPv6),
//! `wildcard`, and `$or` between objects.
//!
//! [`Pattern::parse`] compiles a pattern once; [`Pattern::matches`] then
//! runs without allocating for the common filters. Errors are sentences
//! for an `InvalidEventPatternException`.

use std::net::IpAddr;

use serde_json::{Map, Value};

/// Maximum length of a pattern, in characters (botocore's `EventPattern`
/// shape: max 4096).
pub const MAX_PATTERN_CHARS: usize = 4096;

/// Lowest and highest number `numeric` filters accept (the content
/// filtering page: -5.0e9 to +5.0e9 inclusive).
const NUMERIC_LIMIT: f64 = 5.0e9;

/// A compiled event pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    root: ObjPat,
}

/// An object of the pattern: all `fields` and one branch of every `$or`.
#[derive(Debug, Clone, Default)]
struct ObjPat {
    fields: Vec<(String, FieldPat)>,
    ors: Vec<Vec<ObjPat>>,
}

#[derive(Debug, Clone)]
enum FieldPat {
    Obj(ObjPat),
    Leaf(Vec<Matcher>),
}

#[derive(Debug, Clone)]
enum Matcher {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Prefix(String),
    PrefixIc(String),
    Suffix(String),
    SuffixIc(String),
    EqualsIc(String),
    Wildcard(Wild),
    AnythingBut(But),
    Numeric(Range),
    Exists(bool),
    Cidr(Cidr),
}

#[derive(Debug, Clone)]
enum But {
    Strs(Vec<String>),
    Nums(Vec<f64>),
    Prefix(String),
    Suffix(String),
    EqualsIc(Vec<String>),
    Wildcard(Vec<Wild>),
}

/// A numeric range: optional bounds (value, inclusive) or one exact value.
#[derive(Debug, Clone, Default)]
struct Range {
    lower: Option<(f64, bool)>,
    upper: Option<(f64, bool)>,
    equal: Option<f64>,
}

#[derive(Debug, Clone)]
struct Cidr {
    net: IpAddr,
    bits: u8,
}

/// A wildcard expression split at its unescaped `*`: the value must start
/// with the first part, end with the last, and contain the others in order.
#[derive(Debug, Clone)]
struct Wild {
    parts: Vec<String>,
}

fn invalid(reason: impl std::fmt::Display) -> String {
    format!("Event pattern is not valid. Reason: {reason}")
}

impl Pattern {
    /// Compiles the text of an event pattern.
    ///
    /// Errors (for `InvalidEventPatternException`): the text is longer than
    /// 4096 characters, is not a JSON object, is empty, or uses a filter
    /// wrongly; the message names the field and the problem.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if text.chars().count() > MAX_PATTERN_CHARS {
            return Err(invalid(format!(
                "the pattern is longer than {MAX_PATTERN_CHARS} characters"
            )));
        }
        let v: Value = serde_json::from_str(text)
            .map_err(|e| invalid(format!("the pattern is not valid JSON: {e}")))?;
        let Value::Object(m) = v else {
            return Err(invalid("the pattern must be a JSON object"));
        };
        if m.is_empty() {
            return Err(invalid(
                "the pattern is empty; it must name at least one field to match",
            ));
        }
        Ok(Pattern {
            root: parse_obj(&m, "")?,
        })
    }

    /// True when `event` (an event envelope, or any JSON object) matches.
    pub fn matches(&self, event: &Value) -> bool {
        match event {
            Value::Object(m) => self.root.matches(Some(m)),
            _ => false,
        }
    }

    /// The top-level field whose filters are all exact strings, with those
    /// strings: an event can match only if it carries one of them there.
    /// Rules are indexed by it so an event is tested only against rules
    /// it could match.
    pub fn index_key(&self) -> Option<(&str, Vec<&str>)> {
        fn exact(ms: &[Matcher]) -> Option<Vec<&str>> {
            let strs: Vec<&str> = ms
                .iter()
                .map_while(|m| match m {
                    Matcher::Str(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            (!strs.is_empty() && strs.len() == ms.len()).then_some(strs)
        }
        // Prefer the fields every event has.
        for want in ["source", "detail-type"] {
            for (k, f) in &self.root.fields {
                if k == want
                    && let FieldPat::Leaf(ms) = f
                    && let Some(s) = exact(ms)
                {
                    return Some((k.as_str(), s));
                }
            }
        }
        self.root.fields.iter().find_map(|(k, f)| match f {
            FieldPat::Leaf(ms) => exact(ms).map(|s| (k.as_str(), s)),
            FieldPat::Obj(_) => None,
        })
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn parse_obj(m: &Map<String, Value>, path: &str) -> Result<ObjPat, String> {
    let mut out = ObjPat::default();
    for (k, v) in m {
        if k == "$or" {
            let Value::Array(items) = v else {
                return Err(invalid(format!(
                    "\"$or\" at {} must be an array of objects",
                    if path.is_empty() {
                        "the top level"
                    } else {
                        path
                    }
                )));
            };
            if items.len() < 2 {
                return Err(invalid("\"$or\" must have at least 2 objects"));
            }
            let mut branches = Vec::with_capacity(items.len());
            for it in items {
                let Value::Object(o) = it else {
                    return Err(invalid("every element of \"$or\" must be an object"));
                };
                if o.is_empty() {
                    return Err(invalid("an object in \"$or\" must not be empty"));
                }
                branches.push(parse_obj(o, path)?);
            }
            out.ors.push(branches);
            continue;
        }
        let here = join(path, k);
        let field = match v {
            Value::Object(o) => {
                if o.is_empty() {
                    return Err(invalid(format!("\"{here}\" must not be an empty object")));
                }
                FieldPat::Obj(parse_obj(o, &here)?)
            }
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(invalid(format!(
                        "\"{here}\" must not be an empty array; list at least one value"
                    )));
                }
                let mut ms = Vec::with_capacity(items.len());
                for it in items {
                    ms.push(parse_matcher(it, &here)?);
                }
                FieldPat::Leaf(ms)
            }
            _ => {
                return Err(invalid(format!(
                    "\"{here}\" must be an object or an array, e.g. \"{k}\": [{v}]"
                )));
            }
        };
        out.fields.push((k.clone(), field));
    }
    // Cheap and selective tests first: exact values, then other filters,
    // then nested objects (fields are ANDed, so the order is free).
    out.fields.sort_by_key(|(_, f)| match f {
        FieldPat::Leaf(ms) if ms.iter().all(Matcher::is_exact) => 0,
        FieldPat::Leaf(_) => 1,
        FieldPat::Obj(_) => 2,
    });
    Ok(out)
}

fn parse_matcher(v: &Value, here: &str) -> Result<Matcher, String> {
    Ok(match v {
        Value::String(s) => Matcher::Str(s.clone()),
        Value::Number(n) => Matcher::Num(n.as_f64().unwrap_or(f64::NAN)),
        Value::Bool(b) => Matcher::Bool(*b),
        Value::Null => Matcher::Null,
        Value::Array(_) => {
            return Err(invalid(format!(
                "\"{here}\": match values must be strings, numbers, true, false, null or filter objects, not arrays"
            )));
        }
        Value::Object(o) => {
            if o.len() != 1 {
                return Err(invalid(format!(
                    "\"{here}\": a filter object must have exactly one key (prefix, suffix, anything-but, numeric, exists, cidr, equals-ignore-case, wildcard), found {}",
                    o.len()
                )));
            }
            let Some((op, arg)) = o.iter().next() else {
                return Err(invalid(format!("\"{here}\": empty filter object")));
            };
            parse_filter(op, arg, here)?
        }
    })
}

fn string_arg<'a>(op: &str, arg: &'a Value, here: &str) -> Result<&'a str, String> {
    arg.as_str()
        .ok_or_else(|| invalid(format!("\"{here}\": {op} match pattern must be a string")))
}

fn parse_filter(op: &str, arg: &Value, here: &str) -> Result<Matcher, String> {
    Ok(match op {
        "prefix" | "suffix" => {
            let (s, ic) = match arg {
                Value::String(s) => (s.as_str(), false),
                Value::Object(o) if o.len() == 1 && o.contains_key("equals-ignore-case") => {
                    (string_arg(op, &o["equals-ignore-case"], here)?, true)
                }
                _ => {
                    return Err(invalid(format!(
                        "\"{here}\": {op} match pattern must be a string or {{\"equals-ignore-case\": \"...\"}}"
                    )));
                }
            };
            match (op, ic) {
                ("prefix", false) => Matcher::Prefix(s.to_string()),
                ("prefix", true) => Matcher::PrefixIc(s.to_lowercase()),
                ("suffix", false) => Matcher::Suffix(s.to_string()),
                _ => Matcher::SuffixIc(s.to_lowercase()),
            }
        }
        "equals-ignore-case" => Matcher::EqualsIc(string_arg(op, arg, here)?.to_lowercase()),
        "wildcard" => Matcher::Wildcard(parse_wild(string_arg(op, arg, here)?, here)?),
        "exists" => match arg {
            Value::Bool(b) => Matcher::Exists(*b),
            _ => {
                return Err(invalid(format!(
                    "\"{here}\": exists match pattern must be either true or false"
                )));
            }
        },
        "cidr" => Matcher::Cidr(parse_cidr(string_arg(op, arg, here)?, here)?),
        "numeric" => Matcher::Numeric(parse_numeric(arg, here)?),
        "anything-but" => Matcher::AnythingBut(parse_but(arg, here)?),
        other => {
            return Err(invalid(format!(
                "\"{here}\": unrecognized match type {other}"
            )));
        }
    })
}

fn parse_but(arg: &Value, here: &str) -> Result<But, String> {
    let bad = || {
        invalid(format!(
            "\"{here}\": anything-but must be a string, a number, a list of only strings or only numbers, or an object with prefix, suffix, equals-ignore-case or wildcard"
        ))
    };
    Ok(match arg {
        Value::String(s) => But::Strs(vec![s.clone()]),
        Value::Number(n) => But::Nums(vec![n.as_f64().ok_or_else(bad)?]),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(invalid(format!(
                    "\"{here}\": anything-but list must not be empty"
                )));
            }
            if items.iter().all(Value::is_string) {
                But::Strs(
                    items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                )
            } else if items.iter().all(Value::is_number) {
                But::Nums(items.iter().filter_map(Value::as_f64).collect())
            } else {
                return Err(invalid(format!(
                    "\"{here}\": inside an anything-but list, all values must be strings or all must be numbers"
                )));
            }
        }
        Value::Object(o) if o.len() == 1 => {
            let Some((k, v)) = o.iter().next() else {
                return Err(bad());
            };
            match k.as_str() {
                "prefix" => But::Prefix(string_arg("prefix", v, here)?.to_string()),
                "suffix" => But::Suffix(string_arg("suffix", v, here)?.to_string()),
                "equals-ignore-case" | "wildcard" => {
                    let items: Vec<&str> = match v {
                        Value::String(s) => vec![s.as_str()],
                        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_string) => {
                            a.iter().filter_map(Value::as_str).collect()
                        }
                        _ => {
                            return Err(invalid(format!(
                                "\"{here}\": anything-but {k} must be a string or a non-empty list of strings"
                            )));
                        }
                    };
                    if k == "wildcard" {
                        But::Wildcard(
                            items
                                .iter()
                                .map(|s| parse_wild(s, here))
                                .collect::<Result<_, _>>()?,
                        )
                    } else {
                        But::EqualsIc(items.iter().map(|s| s.to_lowercase()).collect())
                    }
                }
                _ => return Err(bad()),
            }
        }
        _ => return Err(bad()),
    })
}

fn parse_numeric(arg: &Value, here: &str) -> Result<Range, String> {
    let malformed = |why: &str| invalid(format!("\"{here}\": malformed numeric filter: {why}"));
    let Value::Array(items) = arg else {
        return Err(malformed(
            "it must be an array of operator and value pairs, e.g. [\">\", 0, \"<=\", 5]",
        ));
    };
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        return Err(malformed(
            "it must hold one or two operator and value pairs, e.g. [\">\", 0, \"<=\", 5]",
        ));
    }
    let mut r = Range::default();
    for pair in items.chunks(2) {
        let Some(op) = pair[0].as_str() else {
            return Err(malformed("operators must be strings: =, <, <=, >, >="));
        };
        let Some(n) = pair[1].as_f64() else {
            return Err(invalid(format!(
                "\"{here}\": value of {op} must be numeric"
            )));
        };
        if !(-NUMERIC_LIMIT..=NUMERIC_LIMIT).contains(&n) {
            return Err(invalid(format!(
                "\"{here}\": value of {op} must be between -5.0E9 and 5.0E9 inclusive"
            )));
        }
        match op {
            "=" => {
                if items.len() != 2 {
                    return Err(malformed("\"=\" cannot be combined with another operator"));
                }
                r.equal = Some(n);
            }
            ">" | ">=" => {
                if r.lower.is_some() {
                    return Err(malformed("two lower bounds"));
                }
                r.lower = Some((n, op == ">="));
            }
            "<" | "<=" => {
                if r.upper.is_some() {
                    return Err(malformed("two upper bounds"));
                }
                r.upper = Some((n, op == "<="));
            }
            other => {
                return Err(malformed(&format!(
                    "unrecognized numeric range operator {other}"
                )));
            }
        }
    }
    if let (Some((lo, _)), Some((hi, _))) = (r.lower, r.upper)
        && lo >= hi
    {
        return Err(invalid(format!(
            "\"{here}\": bad numeric range: the lower bound {lo} must be below the upper bound {hi}"
        )));
    }
    Ok(r)
}

fn parse_cidr(s: &str, here: &str) -> Result<Cidr, String> {
    let bad = || {
        invalid(format!(
            "\"{here}\": nonstandard IP address or CIDR block: {s}"
        ))
    };
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let net: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => {
            if b.is_empty() || !b.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let n: u8 = b.parse().map_err(|_| bad())?;
            if n > max {
                return Err(bad());
            }
            n
        }
        None => max,
    };
    Ok(Cidr { net, bits })
}

fn parse_wild(s: &str, here: &str) -> Result<Wild, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().enumerate();
    let mut last_star = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e @ ('*' | '\\'))) => {
                    cur.push(e);
                    last_star = false;
                }
                _ => {
                    return Err(invalid(format!(
                        "\"{here}\": invalid escape at position {i} of wildcard pattern {s}: only \\* and \\\\ may be escaped"
                    )));
                }
            },
            '*' => {
                if last_star {
                    return Err(invalid(format!(
                        "\"{here}\": consecutive wildcard characters at position {i} of {s}"
                    )));
                }
                parts.push(std::mem::take(&mut cur));
                last_star = true;
            }
            c => {
                cur.push(c);
                last_star = false;
            }
        }
    }
    parts.push(cur);
    Ok(Wild { parts })
}

impl Wild {
    fn matches(&self, s: &str) -> bool {
        let n = self.parts.len();
        if n == 1 {
            return s == self.parts[0];
        }
        let (first, last) = (&self.parts[0], &self.parts[n - 1]);
        if s.len() < first.len() + last.len() || !s.starts_with(first.as_str()) {
            return false;
        }
        if !s.ends_with(last.as_str()) {
            return false;
        }
        let mut rest = &s[first.len()..s.len() - last.len()];
        for mid in &self.parts[1..n - 1] {
            match rest.find(mid.as_str()) {
                Some(i) => rest = &rest[i + mid.len()..],
                None => return false,
            }
        }
        true
    }
}

impl Cidr {
    fn contains(&self, s: &str) -> bool {
        let Ok(ip) = s.parse::<IpAddr>() else {
            return false;
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.bits)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.bits)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl Range {
    fn contains(&self, x: f64) -> bool {
        if let Some(e) = self.equal {
            return x == e;
        }
        let lo_ok = match self.lower {
            Some((l, true)) => x >= l,
            Some((l, false)) => x > l,
            None => true,
        };
        let hi_ok = match self.upper {
            Some((h, true)) => x <= h,
            Some((h, false)) => x < h,
            None => true,
        };
        lo_ok && hi_ok
    }
}

fn starts_with_ic(s: &str, lower_prefix: &str) -> bool {
    s.to_lowercase().starts_with(lower_prefix)
}

fn ends_with_ic(s: &str, lower_suffix: &str) -> bool {
    s.to_lowercase().ends_with(lower_suffix)
}

impl Matcher {
    /// An exact value (string, number, boolean, null).
    fn is_exact(&self) -> bool {
        matches!(
            self,
            Matcher::Str(_) | Matcher::Num(_) | Matcher::Bool(_) | Matcher::Null
        )
    }

    /// Whether one scalar of the event matches.
    fn matches(&self, v: &Value) -> bool {
        match (self, v) {
            (Matcher::Str(p), Value::String(s)) => p == s,
            (Matcher::Num(p), Value::Number(n)) => n.as_f64() == Some(*p),
            (Matcher::Bool(p), Value::Bool(b)) => p == b,
            (Matcher::Null, Value::Null) => true,
            (Matcher::Prefix(p), Value::String(s)) => s.starts_with(p.as_str()),
            (Matcher::PrefixIc(p), Value::String(s)) => starts_with_ic(s, p),
            (Matcher::Suffix(p), Value::String(s)) => s.ends_with(p.as_str()),
            (Matcher::SuffixIc(p), Value::String(s)) => ends_with_ic(s, p),
            (Matcher::EqualsIc(p), Value::String(s)) => s.to_lowercase() == *p,
            (Matcher::Wildcard(w), Value::String(s)) => w.matches(s),
            (Matcher::Numeric(r), Value::Number(n)) => n.as_f64().is_some_and(|x| r.contains(x)),
            (Matcher::Cidr(c), Value::String(s)) => c.contains(s),
            (Matcher::Exists(e), _) => *e,
            (Matcher::AnythingBut(b), v) => b.matches(v),
            _ => false,
        }
    }
}

impl But {
    fn matches(&self, v: &Value) -> bool {
        match (self, v) {
            (But::Strs(list), Value::String(s)) => !list.iter().any(|x| x == s),
            (But::Nums(list), Value::Number(n)) => {
                let x = n.as_f64();
                !list.iter().any(|p| Some(*p) == x)
            }
            (But::Prefix(p), Value::String(s)) => !s.starts_with(p.as_str()),
            (But::Suffix(p), Value::String(s)) => !s.ends_with(p.as_str()),
            (But::EqualsIc(list), Value::String(s)) => {
                let l = s.to_lowercase();
                !list.contains(&l)
            }
            (But::Wildcard(ws), Value::String(s)) => !ws.iter().any(|w| w.matches(s)),
            // A value of another type is not among those excluded.
            (But::Strs(_), _) | (But::Nums(_), _) => true,
            // prefix, suffix and the others apply to strings only.
            _ => false,
        }
    }
}

/// Calls `f` for every scalar at this place of the event: the value
/// itself, or the elements of an array (nested arrays flattened).
fn each_leaf<'a>(v: &'a Value, f: &mut impl FnMut(&'a Value) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|x| each_leaf(x, f)),
        Value::Object(_) => false,
        scalar => f(scalar),
    }
}

fn leaf_matches(ms: &[Matcher], v: Option<&Value>) -> bool {
    let has_leaf = v.is_some_and(|v| each_leaf(v, &mut |_| true));
    if !has_leaf {
        return ms.iter().any(|m| matches!(m, Matcher::Exists(false)));
    }
    let Some(v) = v else {
        return false;
    };
    ms.iter().any(|m| match m {
        Matcher::Exists(e) => *e,
        m => each_leaf(v, &mut |x| m.matches(x)),
    })
}

impl ObjPat {
    /// `m` is the event object here; `None` when the event has no object
    /// at this place.
    fn matches(&self, m: Option<&Map<String, Value>>) -> bool {
        for (k, f) in &self.fields {
            let v = m.and_then(|m| m.get(k));
            let ok = match f {
                FieldPat::Leaf(ms) => leaf_matches(ms, v),
                FieldPat::Obj(p) => p.matches_value(v),
            };
            if !ok {
                return false;
            }
        }
        self.ors
            .iter()
            .all(|branches| branches.iter().any(|b| b.matches(m)))
    }

    fn matches_value(&self, v: Option<&Value>) -> bool {
        match v {
            Some(Value::Object(o)) => self.matches(Some(o)),
            Some(Value::Array(items)) => {
                let mut any_obj = false;
                for it in items {
                    match it {
                        Value::Object(o) => {
                            any_obj = true;
                            if self.matches(Some(o)) {
                                return true;
                            }
                        }
                        Value::Array(_) => {
                            if self.matches_value(Some(it)) {
                                return true;
                            }
                            any_obj = true;
                        }
                        _ => {}
                    }
                }
                !any_obj && self.matches(None)
            }
            _ => self.matches(None),
        }
    }
}

#[cfg(test)]
mod tests;
