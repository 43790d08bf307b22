//! Values during evaluation: JSON values plus functions, with the sequence
//! flags JSONata's path semantics need. Objects keep insertion order.

use std::collections::HashMap;
use std::rc::Rc;

use crate::JsonataError;
use crate::eval::Func;

/// Array flags. `seq`: a result sequence of a path (unwrapped when it holds
/// one item, unless `keep`). `cons`: built by an array constructor inside a
/// path (not flattened by later steps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    pub seq: bool,
    pub keep: bool,
    pub cons: bool,
}

#[derive(Clone)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(Rc<str>),
    Array(Rc<Vec<Value>>, Flags),
    Object(Rc<Obj>),
    Func(Rc<Func>),
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Func(_) => write!(f, "<function>"),
            other => write!(f, "{}", to_string(other, false)),
        }
    }
}

/// An insertion-ordered map from keys to values.
#[derive(Clone, Default)]
pub(crate) struct Obj {
    entries: Vec<(Rc<str>, Value)>,
    index: Option<HashMap<Rc<str>, usize>>,
}

const INDEX_THRESHOLD: usize = 12;

impl Obj {
    pub fn new() -> Self {
        Obj::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(ix) => ix.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| &**k == key),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    pub fn insert(&mut self, key: Rc<str>, value: Value) {
        if let Some(i) = self.position(&key) {
            self.entries[i].1 = value;
            return;
        }
        self.entries.push((key.clone(), value));
        let n = self.entries.len();
        if let Some(ix) = &mut self.index {
            ix.insert(key, n - 1);
        } else if n > INDEX_THRESHOLD {
            self.index = Some(
                self.entries
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.clone(), i))
                    .collect(),
            );
        }
    }

    pub fn remove(&mut self, key: &str) {
        if let Some(i) = self.position(key) {
            self.entries.remove(i);
            if self.index.is_some() {
                self.index = Some(
                    self.entries
                        .iter()
                        .enumerate()
                        .map(|(i, (k, _))| (k.clone(), i))
                        .collect(),
                );
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Rc<str>, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Rc<str>> {
        self.entries.iter().map(|(k, _)| k)
    }
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(Rc::from(s))
    }

    pub fn string(s: String) -> Value {
        Value::Str(Rc::from(s))
    }

    pub fn array(items: Vec<Value>) -> Value {
        Value::Array(Rc::new(items), Flags::default())
    }

    pub fn seq(items: Vec<Value>) -> Value {
        Value::Array(
            Rc::new(items),
            Flags {
                seq: true,
                ..Flags::default()
            },
        )
    }

    pub fn object(o: Obj) -> Value {
        Value::Object(Rc::new(o))
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// JSONata's `$type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Num(_) => "number",
            Value::Str(_) => "string",
            Value::Array(..) => "array",
            Value::Object(_) => "object",
            Value::Func(_) => "function",
        }
    }

    /// The items of an array, or the value as a one-item list.
    pub fn items(&self) -> Vec<Value> {
        match self {
            Value::Array(a, _) => a.as_ref().clone(),
            v => vec![v.clone()],
        }
    }
}

/// Items of an optional value as a list (`undefined` is empty).
pub(crate) fn items_of(v: &Option<Value>) -> Vec<Value> {
    match v {
        None => Vec::new(),
        Some(v) => v.items(),
    }
}

pub(crate) fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Num(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::str(s),
        serde_json::Value::Array(a) => Value::array(a.iter().map(from_json).collect()),
        serde_json::Value::Object(m) => {
            let mut o = Obj::new();
            for (k, v) in m {
                o.insert(Rc::from(k.as_str()), from_json(v));
            }
            Value::object(o)
        }
    }
}

/// A number as a JSON number: integers within 2^53 become integers.
pub(crate) fn num_to_json(n: f64) -> Result<serde_json::Value, JsonataError> {
    if !n.is_finite() {
        return Err(JsonataError::new("D1001", "Number out of range", None));
    }
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        if n == 0.0 {
            return Ok(serde_json::Value::from(0));
        }
        return Ok(serde_json::Value::from(n as i64));
    }
    serde_json::Number::from_f64(n)
        .map(serde_json::Value::Number)
        .ok_or_else(|| JsonataError::new("D1001", "Number out of range", None))
}

/// Converts a result to JSON. Functions are dropped from objects, become
/// `null` in arrays and `undefined` at the top.
pub(crate) fn to_json(v: &Value) -> Result<Option<serde_json::Value>, JsonataError> {
    to_json_at(v, 0)
}

/// Deepest nesting of arrays and objects in a result. Deeper results fail
/// with `D1011`: dropping a deeper `serde_json::Value` could exhaust the
/// caller's stack.
pub(crate) const MAX_RESULT_DEPTH: usize = 1000;

fn to_json_at(v: &Value, depth: usize) -> Result<Option<serde_json::Value>, JsonataError> {
    if depth > MAX_RESULT_DEPTH {
        return Err(JsonataError::new(
            "D1011",
            format!("The result nests deeper than {MAX_RESULT_DEPTH} levels"),
            None,
        ));
    }
    Ok(match v {
        Value::Null => Some(serde_json::Value::Null),
        Value::Bool(b) => Some(serde_json::Value::Bool(*b)),
        Value::Num(n) => Some(num_to_json(*n)?),
        Value::Str(s) => Some(serde_json::Value::String(s.to_string())),
        Value::Array(a, _) => {
            let mut out = Vec::with_capacity(a.len());
            for item in a.iter() {
                out.push(to_json_at(item, depth + 1)?.unwrap_or(serde_json::Value::Null));
            }
            Some(serde_json::Value::Array(out))
        }
        Value::Object(o) => {
            let mut m = serde_json::Map::new();
            for (k, v) in o.iter() {
                if let Some(j) = to_json_at(v, depth + 1)? {
                    m.insert(k.to_string(), j);
                }
            }
            Some(serde_json::Value::Object(m))
        }
        Value::Func(_) => None,
    })
}

/// JSONata's effective Boolean value (`$boolean`).
pub(crate) fn truthy(v: Option<&Value>) -> bool {
    match v {
        None => false,
        Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Num(n)) => *n != 0.0 && !n.is_nan(),
        Some(Value::Str(s)) => !s.is_empty(),
        Some(Value::Array(a, _)) => a.iter().any(|x| truthy(Some(x))),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Func(_)) => false,
    }
}

/// Deep equality of JSON values (`=`); functions are equal only to
/// themselves.
pub(crate) fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Num(x), Value::Num(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Array(x, _), Value::Array(y, _)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| deep_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        (Value::Func(x), Value::Func(y)) => Rc::ptr_eq(x, y),
        _ => false,
    }
}

/// Formats a number as JavaScript does (shortest round-trip digits;
/// exponent form below 1e-6 and from 1e21).
pub(crate) fn js_number(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if n == 0.0 {
        return "0".into();
    }
    let e = format!("{:e}", n);
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let k = digits.len() as i32;
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    // n = 0.d1d2..dk * 10^(exp+1)
    let point = exp + 1;
    if k <= point && point <= 21 {
        s.push_str(&digits);
        for _ in 0..(point - k) {
            s.push('0');
        }
    } else if 0 < point && point <= 21 {
        s.push_str(&digits[..point as usize]);
        s.push('.');
        s.push_str(&digits[point as usize..]);
    } else if -6 < point && point <= 0 {
        s.push_str("0.");
        for _ in 0..(-point) {
            s.push('0');
        }
        s.push_str(&digits);
    } else {
        s.push_str(&digits[..1]);
        if k > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push('e');
        let e2 = point - 1;
        if e2 >= 0 {
            s.push('+');
        }
        s.push_str(&e2.to_string());
    }
    s
}

/// Rounds to 15 significant digits, as `$string` does before formatting.
pub(crate) fn precision15(n: f64) -> f64 {
    if n == 0.0 || !n.is_finite() {
        return n;
    }
    format!("{:.14e}", n).parse().unwrap_or(n)
}

fn json_escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_json(v: &Value, pretty: bool, indent: usize, out: &mut String) {
    // Indentation stops growing past the result depth limit.
    let indent = indent.min(MAX_RESULT_DEPTH);
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Num(n) => {
            if n.is_finite() {
                out.push_str(&js_number(precision15(*n)))
            } else {
                out.push_str("null")
            }
        }
        Value::Str(s) => json_escape(s, out),
        Value::Func(_) => out.push_str("\"\""),
        Value::Array(a, _) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if pretty {
                    out.push('\n');
                    out.push_str(&"  ".repeat(indent + 1));
                }
                write_json(item, pretty, indent + 1, out);
            }
            if pretty {
                out.push('\n');
                out.push_str(&"  ".repeat(indent));
            }
            out.push(']');
        }
        Value::Object(o) => {
            if o.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            let mut first = true;
            for (k, item) in o.iter() {
                if !first {
                    out.push(',');
                }
                first = false;
                if pretty {
                    out.push('\n');
                    out.push_str(&"  ".repeat(indent + 1));
                }
                json_escape(k, out);
                out.push(':');
                if pretty {
                    out.push(' ');
                }
                write_json(item, pretty, indent + 1, out);
            }
            if pretty {
                out.push('\n');
                out.push_str(&"  ".repeat(indent));
            }
            out.push('}');
        }
    }
}

/// `$string` of a value: strings unchanged, functions empty, numbers to 15
/// significant digits, everything else as JSON text.
pub(crate) fn to_string(v: &Value, pretty: bool) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Func(_) => String::new(),
        other => {
            let mut out = String::new();
            write_json(other, pretty, 0, &mut out);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Number-to-string follows ECMAScript's Number::toString (shortest
    /// round-trip digits; exponent form from 1e21 and below 1e-6).
    #[test]
    fn js_number_formatting() {
        assert_eq!(js_number(0.0), "0");
        assert_eq!(js_number(-0.0), "0");
        assert_eq!(js_number(5.0), "5");
        assert_eq!(js_number(-2.5), "-2.5");
        assert_eq!(js_number(123456789012.0), "123456789012");
        assert_eq!(js_number(1e20), "100000000000000000000");
        assert_eq!(js_number(1e21), "1e+21");
        assert_eq!(js_number(1.5e300), "1.5e+300");
        assert_eq!(js_number(0.000001), "0.000001");
        assert_eq!(js_number(1e-7), "1e-7");
        assert_eq!(js_number(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(js_number(precision15(0.1 + 0.2)), "0.3");
    }

    #[test]
    fn truthiness_follows_boolean_casting_rules() {
        assert!(!truthy(None));
        assert!(!truthy(Some(&Value::Null)));
        assert!(!truthy(Some(&Value::str(""))));
        assert!(truthy(Some(&Value::str("0"))));
        assert!(!truthy(Some(&Value::Num(0.0))));
        assert!(!truthy(Some(&Value::array(vec![
            Value::Bool(false),
            Value::Num(0.0)
        ]))));
        assert!(truthy(Some(&Value::array(vec![
            Value::Bool(false),
            Value::Num(2.0)
        ]))));
    }

    #[test]
    fn objects_keep_insertion_order_past_the_index_threshold() {
        let mut o = Obj::new();
        for i in (0..40).rev() {
            o.insert(Rc::from(format!("k{i}").as_str()), Value::Num(i as f64));
        }
        let keys: Vec<String> = o.keys().map(|k| k.to_string()).collect();
        assert_eq!(keys[0], "k39");
        assert_eq!(keys[39], "k0");
        assert!(matches!(o.get("k7"), Some(Value::Num(n)) if *n == 7.0));
        o.remove("k39");
        assert_eq!(o.len(), 39);
        assert!(o.get("k39").is_none());
        assert!(matches!(o.get("k0"), Some(Value::Num(n)) if *n == 0.0));
    }
}
