//! Intrinsic functions for JSONPath states (`States.Format`, `States.Array`,
//! `States.Hash`, ...).
//!
//! Follows "Intrinsic functions for JSONPath states in Step Functions" in
//! the AWS Step Functions Developer Guide and Appendix B of the Amazon
//! States Language specification:
//!
//! * an intrinsic is `States.<Name>(arg, ...)`; arguments are string
//!   literals in single quotes, numbers, `true` / `false`, `null`, paths
//!   (`$.a`, `$$.Execution.Id`, `$variable`) or nested intrinsics;
//! * inside string literals the reserved characters `'`, `{`, `}` and `\`
//!   are escaped with a backslash (`\'`, `\{`, `\}`, `\\`); any other
//!   backslash is an open escape and an error;
//! * intrinsics nest up to [`MAX_NESTING`] levels.
//!
//! Errors: [`parse`] reports syntax errors, unknown functions, wrong
//! argument counts and literal arguments of the wrong type; [`evaluate`]
//! reports those and every run-time failure (a path that selects nothing,
//! an argument of the wrong type, a limit exceeded). Both carry the error
//! name `States.Runtime`, which is how Step Functions reports failures of
//! intrinsic functions (`States.IntrinsicFailure` is reserved by the
//! specification but not raised by the service).

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::{Entropy, Resolver};

/// The deepest nesting of intrinsic calls in one field (the outermost call
/// counts as level 1), as the Developer Guide documents.
pub const MAX_NESTING: usize = 10;

/// Longest string (in characters) that `States.Base64Encode`,
/// `States.Base64Decode` and `States.Hash` accept.
pub const MAX_STRING_CHARS: usize = 10_000;

/// Most elements `States.ArrayRange` may produce.
pub const MAX_RANGE_ITEMS: usize = 1_000;

/// Error name Step Functions reports for a failed intrinsic function.
pub const RUNTIME_ERROR: &str = "States.Runtime";

/// A failed parse or evaluation of an intrinsic function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrinsicError {
    /// Error name: `States.Runtime`.
    pub error: String,
    /// Human-readable cause naming the function and the problem.
    pub cause: String,
}

impl IntrinsicError {
    fn new(cause: impl Into<String>) -> Self {
        IntrinsicError {
            error: RUNTIME_ERROR.to_string(),
            cause: cause.into(),
        }
    }
}

impl fmt::Display for IntrinsicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.cause)
    }
}

impl std::error::Error for IntrinsicError {}

/// The intrinsic functions Step Functions defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `States.Format(template, values...)`
    Format,
    /// `States.StringToJson(string)`
    StringToJson,
    /// `States.JsonToString(value)`
    JsonToString,
    /// `States.Array(values...)`
    Array,
    /// `States.ArrayPartition(array, chunkSize)`
    ArrayPartition,
    /// `States.ArrayContains(array, value)`
    ArrayContains,
    /// `States.ArrayRange(first, last, step)`
    ArrayRange,
    /// `States.ArrayGetItem(array, index)`
    ArrayGetItem,
    /// `States.ArrayLength(array)`
    ArrayLength,
    /// `States.ArrayUnique(array)`
    ArrayUnique,
    /// `States.Base64Encode(string)`
    Base64Encode,
    /// `States.Base64Decode(string)`
    Base64Decode,
    /// `States.Hash(data, algorithm)`
    Hash,
    /// `States.JsonMerge(object, object, false)`
    JsonMerge,
    /// `States.MathRandom(start, end[, seed])`
    MathRandom,
    /// `States.MathAdd(a, b)`
    MathAdd,
    /// `States.StringSplit(string, delimiters)`
    StringSplit,
    /// `States.UUID()`
    Uuid,
}

/// What an argument position accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Any,
    Str,
    /// A number with an integral value.
    Int,
    /// Any number (rounded to the nearest integer where used).
    Num,
    Array,
    Object,
    Bool,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Any => "any JSON value",
            Kind::Str => "a string",
            Kind::Int => "an integer",
            Kind::Num => "a number",
            Kind::Array => "an array",
            Kind::Object => "a JSON object",
            Kind::Bool => "a boolean",
        }
    }

    fn accepts(self, v: &Value) -> bool {
        match self {
            Kind::Any => true,
            Kind::Str => v.is_string(),
            Kind::Int => as_integer(v).is_some(),
            Kind::Num => v.is_number(),
            Kind::Array => v.is_array(),
            Kind::Object => v.is_object(),
            Kind::Bool => v.is_boolean(),
        }
    }
}

impl Function {
    const ALL: [Function; 18] = [
        Function::Format,
        Function::StringToJson,
        Function::JsonToString,
        Function::Array,
        Function::ArrayPartition,
        Function::ArrayContains,
        Function::ArrayRange,
        Function::ArrayGetItem,
        Function::ArrayLength,
        Function::ArrayUnique,
        Function::Base64Encode,
        Function::Base64Decode,
        Function::Hash,
        Function::JsonMerge,
        Function::MathRandom,
        Function::MathAdd,
        Function::StringSplit,
        Function::Uuid,
    ];

    /// The function's name as written in a definition, e.g. `States.Format`.
    pub fn name(self) -> &'static str {
        match self {
            Function::Format => "States.Format",
            Function::StringToJson => "States.StringToJson",
            Function::JsonToString => "States.JsonToString",
            Function::Array => "States.Array",
            Function::ArrayPartition => "States.ArrayPartition",
            Function::ArrayContains => "States.ArrayContains",
            Function::ArrayRange => "States.ArrayRange",
            Function::ArrayGetItem => "States.ArrayGetItem",
            Function::ArrayLength => "States.ArrayLength",
            Function::ArrayUnique => "States.ArrayUnique",
            Function::Base64Encode => "States.Base64Encode",
            Function::Base64Decode => "States.Base64Decode",
            Function::Hash => "States.Hash",
            Function::JsonMerge => "States.JsonMerge",
            Function::MathRandom => "States.MathRandom",
            Function::MathAdd => "States.MathAdd",
            Function::StringSplit => "States.StringSplit",
            Function::Uuid => "States.UUID",
        }
    }

    /// Looks a function up by its exact (case-sensitive) name.
    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }

    /// (minimum, maximum) argument count; `None` = unbounded.
    fn arity(self) -> (usize, Option<usize>) {
        match self {
            Function::Format => (1, None),
            Function::Array => (0, None),
            Function::StringToJson
            | Function::JsonToString
            | Function::ArrayLength
            | Function::ArrayUnique
            | Function::Base64Encode
            | Function::Base64Decode => (1, Some(1)),
            Function::ArrayPartition
            | Function::ArrayContains
            | Function::ArrayGetItem
            | Function::Hash
            | Function::MathAdd
            | Function::StringSplit => (2, Some(2)),
            Function::ArrayRange | Function::JsonMerge => (3, Some(3)),
            Function::MathRandom => (2, Some(3)),
            Function::Uuid => (0, Some(0)),
        }
    }

    /// What argument `i` must be.
    fn kind(self, i: usize) -> Kind {
        use Kind::*;
        match (self, i) {
            (Function::Format, 0) => Str,
            (Function::StringToJson, _) => Str,
            (Function::ArrayPartition, 0) => Array,
            (Function::ArrayPartition, _) => Num,
            (Function::ArrayContains, 0) => Array,
            (Function::ArrayRange, _) => Num,
            (Function::ArrayGetItem, 0) => Array,
            (Function::ArrayGetItem, _) => Int,
            (Function::ArrayLength | Function::ArrayUnique, _) => Array,
            (Function::Base64Encode | Function::Base64Decode, _) => Str,
            (Function::Hash, 1) => Str,
            (Function::JsonMerge, 2) => Bool,
            (Function::JsonMerge, _) => Object,
            (Function::MathRandom | Function::MathAdd, _) => Num,
            (Function::StringSplit, _) => Str,
            _ => Any,
        }
    }
}

/// A string literal: its value with escapes resolved, and the byte offsets
/// of the unescaped `{}` pairs in it (the placeholders of `States.Format`).
#[derive(Debug, Clone, PartialEq)]
pub struct StringLiteral {
    /// The literal's value (`\{` already turned into `{`, ...).
    pub value: String,
    /// Byte offsets into `value` where an unescaped `{}` starts.
    pub placeholders: Vec<usize>,
}

/// One argument of an intrinsic call.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `'text'`
    String(StringLiteral),
    /// `42`, `-1.5`, `1e3`
    Number(Number),
    /// `true` / `false`
    Bool(bool),
    /// `null`
    Null,
    /// `$.a.b`, `$$.Execution.Id`, `$variable`, `$`
    Path(String),
    /// A nested intrinsic.
    Call(Call),
}

/// A parsed intrinsic function invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Which function.
    pub function: Function,
    /// Its arguments, in order.
    pub args: Vec<Arg>,
}

/// True when `s` has the shape of an intrinsic invocation: a name made of
/// `A-Z a-z 0-9 . _` starting with `States.`, followed by `(`. Used to tell
/// intrinsics from paths in `.$` fields; [`parse`] does the full check.
pub fn is_intrinsic(s: &str) -> bool {
    let s = s.trim_start();
    if !s.starts_with("States.") {
        return false;
    }
    let name_len = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'_')
        .count();
    s[name_len..].trim_start().starts_with('(')
}

/// Parses an intrinsic invocation (for validation at definition time and
/// before evaluation). Checks the syntax, the function names, the argument
/// counts, literal arguments of the wrong type, the `{}` count of a literal
/// `States.Format` template, and the nesting depth.
pub fn parse(expr: &str) -> Result<Call, IntrinsicError> {
    let mut p = Parser {
        chars: expr.chars().collect(),
        pos: 0,
        expr,
    };
    p.skip_ws();
    let call = p.call(1)?;
    p.skip_ws();
    if p.pos != p.chars.len() {
        return Err(p.err("unexpected text after the closing parenthesis"));
    }
    Ok(call)
}

/// Evaluates an intrinsic invocation. Paths are resolved through `resolve`;
/// `States.MathRandom` without a seed and `States.UUID` draw from `entropy`.
pub fn evaluate(
    expr: &str,
    resolve: Resolver,
    entropy: &mut dyn Entropy,
) -> Result<Value, IntrinsicError> {
    let call = parse(expr)?;
    eval_call(&call, resolve, entropy)
}

/// Evaluates an already parsed call (see [`evaluate`]).
pub fn eval_call(
    call: &Call,
    resolve: Resolver,
    entropy: &mut dyn Entropy,
) -> Result<Value, IntrinsicError> {
    let f = call.function;
    let mut values = Vec::with_capacity(call.args.len());
    for (i, arg) in call.args.iter().enumerate() {
        let v = match arg {
            Arg::String(s) => Value::String(s.value.clone()),
            Arg::Number(n) => Value::Number(n.clone()),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Null => Value::Null,
            Arg::Path(p) => resolve(p).ok_or_else(|| {
                IntrinsicError::new(format!(
                    "The JSONPath '{p}' given as argument {} of {} could not be found in the input",
                    i + 1,
                    f.name()
                ))
            })?,
            Arg::Call(c) => eval_call(c, resolve, entropy)?,
        };
        let kind = f.kind(i);
        if !kind.accepts(&v) {
            return Err(type_error(f, i, kind, &v));
        }
        values.push(v);
    }
    apply(call, values, entropy)
}

fn type_error(f: Function, i: usize, kind: Kind, v: &Value) -> IntrinsicError {
    IntrinsicError::new(format!(
        "Argument {} of {} must be {}, but it is {}",
        i + 1,
        f.name(),
        kind.name(),
        describe(v)
    ))
}

fn describe(v: &Value) -> String {
    let t = match v {
        Value::Null => return "null".to_string(),
        Value::Bool(_) => "the boolean",
        Value::Number(_) => "the number",
        Value::String(_) => "the string",
        Value::Array(_) => return "an array".to_string(),
        Value::Object(_) => return "a JSON object".to_string(),
    };
    let mut text = v.to_string();
    if text.chars().count() > 60 {
        text = text.chars().take(57).collect::<String>() + "...";
    }
    format!("{t} {text}")
}

/// The integral value of a JSON number (`4` or `4.0`), if it has one.
pub(crate) fn as_integer(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.is_u64() {
        return None; // above i64::MAX
    }
    let f = n.as_f64()?;
    if f.fract() == 0.0 && (-9.2e18..=9.2e18).contains(&f) {
        Some(f as i64)
    } else {
        None
    }
}

/// A number rounded to the nearest integer (halves away from zero).
fn rounded(v: &Value) -> Option<i64> {
    if let Some(i) = as_integer(v) {
        return Some(i);
    }
    let f = v.as_f64()?.round();
    if f.is_finite() && (-9.2e18..=9.2e18).contains(&f) {
        Some(f as i64)
    } else {
        None
    }
}

fn apply(
    call: &Call,
    mut v: Vec<Value>,
    entropy: &mut dyn Entropy,
) -> Result<Value, IntrinsicError> {
    let f = call.function;
    let name = f.name();
    match f {
        Function::Format => {
            let rest = v.split_off(1);
            let template = take_string(v.pop());
            let holes = match call.args.first() {
                Some(Arg::String(lit)) => lit.placeholders.clone(),
                _ => template.match_indices("{}").map(|(i, _)| i).collect(),
            };
            if holes.len() != rest.len() {
                return Err(IntrinsicError::new(format!(
                    "{name}: the template has {} '{{}}' placeholder(s) but {} value(s) were given; the counts must match",
                    holes.len(),
                    rest.len()
                )));
            }
            let mut out = String::with_capacity(template.len());
            let mut at = 0;
            for (i, (hole, value)) in holes.iter().zip(&rest).enumerate() {
                out.push_str(&template[at..*hole]);
                match value {
                    Value::String(s) => out.push_str(s),
                    Value::Array(_) | Value::Object(_) => {
                        return Err(IntrinsicError::new(format!(
                            "{name}: argument {} must be a string, number, boolean or null, but it is {}",
                            i + 2,
                            describe(value)
                        )));
                    }
                    other => out.push_str(&other.to_string()),
                }
                at = hole + 2;
            }
            out.push_str(&template[at..]);
            Ok(Value::String(out))
        }
        Function::StringToJson => {
            let s = take_string(v.pop());
            serde_json::from_str(&s).map_err(|e| {
                IntrinsicError::new(format!("{name}: the argument is not valid JSON text ({e})"))
            })
        }
        Function::JsonToString => {
            let value = v.pop().unwrap_or(Value::Null);
            Ok(Value::String(value.to_string()))
        }
        Function::Array => Ok(Value::Array(v)),
        Function::ArrayPartition => {
            // A non-integer chunk size is rounded to the nearest integer.
            let size = rounded(&v[1]).unwrap_or(0);
            if size <= 0 {
                return Err(IntrinsicError::new(format!(
                    "{name}: the chunk size must be a positive, non-zero integer, but it is {size}"
                )));
            }
            let items = take_array(Some(v.swap_remove(0)));
            Ok(Value::Array(partition(items, size as usize)))
        }
        Function::ArrayContains => {
            let needle = v.pop().unwrap_or(Value::Null);
            let items = take_array(v.pop());
            Ok(Value::Bool(items.iter().any(|x| json_equal(x, &needle))))
        }
        Function::ArrayRange => {
            // Non-integer arguments are rounded to the nearest integer.
            let (a, b, c) = (
                rounded(&v[0]).unwrap_or(0),
                rounded(&v[1]).unwrap_or(0),
                rounded(&v[2]).unwrap_or(0),
            );
            range(a, b, c)
                .map(Value::Array)
                .map_err(|m| IntrinsicError::new(format!("{name}: {m}")))
        }
        Function::ArrayGetItem => {
            let index = as_integer(&v[1]).unwrap_or(-1);
            let items = take_array(Some(v.swap_remove(0)));
            if index < 0 || index as u64 >= items.len() as u64 {
                return Err(IntrinsicError::new(format!(
                    "{name}: the index {index} is out of bounds for an array of length {}",
                    items.len()
                )));
            }
            Ok(items.into_iter().nth(index as usize).unwrap_or(Value::Null))
        }
        Function::ArrayLength => {
            let items = take_array(v.pop());
            Ok(Value::from(items.len()))
        }
        Function::ArrayUnique => {
            let items = take_array(v.pop());
            let mut seen = HashSet::new();
            let unique = items
                .into_iter()
                .filter(|x| seen.insert(canonical_key(x)))
                .collect();
            Ok(Value::Array(unique))
        }
        Function::Base64Encode => {
            let s = take_string(v.pop());
            check_length(name, &s)?;
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
            ))
        }
        Function::Base64Decode => {
            let s = take_string(v.pop());
            check_length(name, &s)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|e| {
                    IntrinsicError::new(format!("{name}: the argument is not valid Base64 ({e})"))
                })?;
            String::from_utf8(bytes).map(Value::String).map_err(|_| {
                IntrinsicError::new(format!("{name}: the decoded data is not a UTF-8 string"))
            })
        }
        Function::Hash => {
            let algorithm = take_string(v.pop());
            let data = match v.pop() {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => String::new(),
            };
            check_length(name, &data)?;
            hash_hex(&data, &algorithm)
                .map(Value::String)
                .map_err(|m| IntrinsicError::new(format!("{name}: {m}")))
        }
        Function::JsonMerge => {
            if v[2] != Value::Bool(false) {
                return Err(IntrinsicError::new(format!(
                    "{name}: only shallow merging is supported, so the third argument must be false"
                )));
            }
            let second = take_object(v.swap_remove(1));
            let mut first = take_object(v.swap_remove(0));
            for (k, val) in second {
                first.insert(k, val);
            }
            Ok(Value::Object(first))
        }
        Function::MathRandom => {
            let start = int32_arg(name, 1, &v[0])?;
            let end = int32_arg(name, 2, &v[1])?;
            if start >= end {
                return Err(IntrinsicError::new(format!(
                    "{name}: the start number ({start}) must be less than the end number ({end})"
                )));
            }
            let bits = match v.get(2) {
                Some(seed) => {
                    let seed = rounded(seed).ok_or_else(|| {
                        IntrinsicError::new(format!("{name}: the seed must be an integer"))
                    })?;
                    seeded_u64(seed as u64)
                }
                None => entropy.next_u64(),
            };
            let span = (end - start) as u64;
            Ok(Value::from(start + (bits % span) as i64))
        }
        Function::MathAdd => {
            let a = int32_arg(name, 1, &v[0])?;
            let b = int32_arg(name, 2, &v[1])?;
            Ok(Value::from(a + b))
        }
        Function::StringSplit => {
            let delimiters = take_string(v.pop());
            let s = take_string(v.pop());
            let parts: Vec<Value> = if delimiters.is_empty() {
                vec![Value::String(s)]
            } else {
                s.split(|c: char| delimiters.contains(c))
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Ok(Value::Array(parts))
        }
        Function::Uuid => Ok(Value::String(uuid_v4(
            entropy.next_u64(),
            entropy.next_u64(),
        ))),
    }
}

fn take_string(v: Option<Value>) -> String {
    match v {
        Some(Value::String(s)) => s,
        _ => String::new(),
    }
}

fn take_array(v: Option<Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    }
}

fn take_object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(o) => o,
        _ => Map::new(),
    }
}

fn check_length(name: &str, s: &str) -> Result<(), IntrinsicError> {
    let n = s.chars().count();
    if n > MAX_STRING_CHARS {
        return Err(IntrinsicError::new(format!(
            "{name}: the input has {n} characters; at most {MAX_STRING_CHARS} are allowed"
        )));
    }
    Ok(())
}

/// A number argument rounded to the nearest integer, which must lie in the
/// 32-bit signed range (-2147483648 to 2147483647) as the Developer Guide
/// documents for `States.MathAdd` and `States.MathRandom`.
fn int32_arg(name: &str, position: usize, v: &Value) -> Result<i64, IntrinsicError> {
    match rounded(v) {
        Some(i) if (i32::MIN as i64..=i32::MAX as i64).contains(&i) => Ok(i),
        _ => Err(IntrinsicError::new(format!(
            "{name}: argument {position} must be an integer between -2147483648 and 2147483647, but it is {}",
            describe(v)
        ))),
    }
}

/// Splits `items` into chunks of `size` (the last may be shorter).
pub(crate) fn partition(items: Vec<Value>, size: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(items.len().div_ceil(size.max(1)));
    let mut chunk = Vec::with_capacity(size.min(items.len()));
    for item in items {
        chunk.push(item);
        if chunk.len() == size {
            out.push(Value::Array(std::mem::take(&mut chunk)));
        }
    }
    if !chunk.is_empty() {
        out.push(Value::Array(chunk));
    }
    out
}

/// `first, first+step, ...` up to and including `last`; at most
/// [`MAX_RANGE_ITEMS`] elements; `step` must not be zero.
pub(crate) fn range(first: i64, last: i64, step: i64) -> Result<Vec<Value>, String> {
    if step == 0 {
        return Err("the step must be a non-zero integer".to_string());
    }
    let (first, last, step) = (first as i128, last as i128, step as i128);
    let count = if (step > 0 && first > last) || (step < 0 && first < last) {
        0
    } else {
        (last - first) / step + 1
    };
    if count > MAX_RANGE_ITEMS as i128 {
        return Err(format!(
            "the range would have {count} elements; at most {MAX_RANGE_ITEMS} are allowed"
        ));
    }
    Ok((0..count)
        .map(|i| Value::from((first + i * step) as i64))
        .collect())
}

/// Lower-case hex digest of `data` (UTF-8) with one of the algorithms
/// Step Functions supports: `MD5`, `SHA-1`, `SHA-256`, `SHA-384`, `SHA-512`.
pub(crate) fn hash_hex(data: &str, algorithm: &str) -> Result<String, String> {
    use sha2::Digest as _;
    let bytes: Vec<u8> = match algorithm {
        "MD5" => md5::Md5::digest(data.as_bytes()).to_vec(),
        "SHA-1" => sha1::Sha1::digest(data.as_bytes()).to_vec(),
        "SHA-256" => sha2::Sha256::digest(data.as_bytes()).to_vec(),
        "SHA-384" => sha2::Sha384::digest(data.as_bytes()).to_vec(),
        "SHA-512" => sha2::Sha512::digest(data.as_bytes()).to_vec(),
        other => {
            return Err(format!(
                "the hashing algorithm '{other}' is not supported; use one of MD5, SHA-1, SHA-256, SHA-384, SHA-512"
            ));
        }
    };
    let mut hex = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        hex.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
        hex.push(char::from(b"0123456789abcdef"[(b & 15) as usize]));
    }
    Ok(hex)
}

/// A version 4 (random) UUID in its canonical lower-case 8-4-4-4-12 form.
pub(crate) fn uuid_v4(hi: u64, lo: u64) -> String {
    let hi = (hi & !0xF000) | 0x4000; // version 4
    let lo = (lo & !(0xC000_u64 << 48)) | (0x8000_u64 << 48); // variant 10xx
    let v = ((hi as u128) << 64) | lo as u128;
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A deterministic 64-bit value for a seed (SplitMix64 finaliser), so the
/// same seed always gives the same number.
pub(crate) fn seeded_u64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_eq(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn number_eq(x: &Number, y: &Number) -> bool {
    match (x.as_i64(), y.as_i64()) {
        (Some(a), Some(b)) => a == b,
        _ => match (x.as_u64(), y.as_u64()) {
            (Some(a), Some(b)) => a == b,
            _ => x.as_f64() == y.as_f64(),
        },
    }
}

/// A string that is equal for two values exactly when [`json_equal`] holds
/// (object keys sorted, numbers normalised).
fn canonical_key(v: &Value) -> String {
    let mut out = String::new();
    write_key(v, &mut out);
    out
}

fn write_key(v: &Value, out: &mut String) {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < 9.2e18 {
                    out.push_str(&(f as i64).to_string());
                } else {
                    out.push_str(&format!("{f:e}"));
                }
            }
        }
        Value::Array(a) => {
            out.push('[');
            for x in a {
                write_key(x, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for k in keys {
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_key(&o[k], out);
                out.push(',');
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    expr: &'a str,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> IntrinsicError {
        IntrinsicError::new(format!(
            "Invalid intrinsic function '{}': {what} (at character {})",
            shorten(self.expr),
            self.pos + 1
        ))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn call(&mut self, depth: usize) -> Result<Call, IntrinsicError> {
        if depth > MAX_NESTING {
            return Err(self.err(&format!(
                "intrinsic functions nest at most {MAX_NESTING} levels deep"
            )));
        }
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        if name.is_empty() {
            return Err(self.err("expected an intrinsic function name such as States.Format"));
        }
        let function = Function::from_name(&name).ok_or_else(|| {
            let mut e = self.err(&format!("'{name}' is not a known intrinsic function"));
            e.cause = format!(
                "Invalid intrinsic function '{}': '{name}' is not a known intrinsic function",
                shorten(self.expr)
            );
            e
        })?;
        self.skip_ws();
        if self.peek() != Some('(') {
            return Err(self.err(&format!("expected '(' after {name}")));
        }
        self.pos += 1;
        let mut args = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                args.push(self.arg(depth)?);
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    Some(c) => {
                        return Err(self.err(&format!("expected ',' or ')' but found '{c}'")));
                    }
                    None => return Err(self.err(&format!("missing ')' to close {name}("))),
                }
            }
        }
        let call = Call { function, args };
        check_static(&call).map_err(|m| {
            IntrinsicError::new(format!(
                "Invalid intrinsic function '{}': {m}",
                shorten(self.expr)
            ))
        })?;
        Ok(call)
    }

    fn arg(&mut self, depth: usize) -> Result<Arg, IntrinsicError> {
        match self.peek() {
            Some('\'') => self.string().map(Arg::String),
            Some('$') => Ok(Arg::Path(self.path())),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number().map(Arg::Number),
            Some(c) if c.is_ascii_alphabetic() => {
                for (word, arg) in [
                    ("true", Arg::Bool(true)),
                    ("false", Arg::Bool(false)),
                    ("null", Arg::Null),
                ] {
                    if self.word_at(word) {
                        self.pos += word.len();
                        return Ok(arg);
                    }
                }
                self.call(depth + 1).map(Arg::Call)
            }
            Some(c) => Err(self.err(&format!(
                "unexpected character '{c}' where an argument was expected"
            ))),
            None => Err(self.err("the expression ends where an argument was expected")),
        }
    }

    fn word_at(&self, word: &str) -> bool {
        let n = word.len();
        let matches = self.chars.len() >= self.pos + n
            && self.chars[self.pos..self.pos + n]
                .iter()
                .copied()
                .eq(word.chars());
        matches
            && !self
                .chars
                .get(self.pos + n)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
    }

    fn string(&mut self) -> Result<StringLiteral, IntrinsicError> {
        self.pos += 1; // opening quote
        let mut value = String::new();
        let mut placeholders = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string literal (missing closing ')")),
                Some('\'') => {
                    self.pos += 1;
                    return Ok(StringLiteral {
                        value,
                        placeholders,
                    });
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ ('\'' | '{' | '}' | '\\')) => {
                            value.push(c);
                            self.pos += 1;
                        }
                        _ => {
                            return Err(self.err(
                                "open escape: a backslash in a string literal must be followed by ', {, } or \\",
                            ));
                        }
                    }
                }
                Some('{') if self.chars.get(self.pos + 1) == Some(&'}') => {
                    placeholders.push(value.len());
                    value.push_str("{}");
                    self.pos += 2;
                }
                Some(c) => {
                    value.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// A path runs to the first `,` or `)` (or whitespace) outside brackets
    /// and quotes.
    fn path(&mut self) -> String {
        let start = self.pos;
        let mut brackets = 0usize;
        let mut parens = 0usize;
        let mut quote: Option<char> = None;
        while let Some(c) = self.peek() {
            if let Some(q) = quote {
                if c == '\\' {
                    self.pos += 1;
                } else if c == q {
                    quote = None;
                }
            } else {
                match c {
                    '\'' | '"' if brackets > 0 => quote = Some(c),
                    '[' => brackets += 1,
                    ']' => brackets = brackets.saturating_sub(1),
                    '(' if brackets > 0 => parens += 1,
                    ')' if brackets > 0 && parens > 0 => parens -= 1,
                    ',' | ')' if brackets == 0 => break,
                    c if c.is_whitespace() && brackets == 0 => break,
                    _ => {}
                }
            }
            self.pos += 1;
        }
        self.pos = self.pos.min(self.chars.len());
        self.chars[start..self.pos].iter().collect()
    }

    fn number(&mut self) -> Result<Number, IntrinsicError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
        {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Number(n)) => Ok(n),
            _ => {
                self.pos = start;
                Err(self.err(&format!("'{text}' is not a valid number")))
            }
        }
    }
}

fn shorten(expr: &str) -> String {
    if expr.chars().count() > 200 {
        expr.chars().take(197).collect::<String>() + "..."
    } else {
        expr.to_string()
    }
}

/// Checks that need no data: argument counts, literal argument types, the
/// placeholder count of a literal `States.Format` template and the third
/// argument of `States.JsonMerge`.
fn check_static(call: &Call) -> Result<(), String> {
    let f = call.function;
    let n = call.args.len();
    let (min, max) = f.arity();
    if n < min || max.is_some_and(|m| n > m) {
        let expected = match (min, max) {
            (a, Some(b)) if a == b => format!("exactly {a}"),
            (a, Some(b)) => format!("{a} to {b}"),
            (a, None) => format!("at least {a}"),
        };
        return Err(format!(
            "{} takes {expected} argument(s), but {n} were given",
            f.name()
        ));
    }
    for (i, arg) in call.args.iter().enumerate() {
        let literal = match arg {
            Arg::String(s) => Value::String(s.value.clone()),
            Arg::Number(x) => Value::Number(x.clone()),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Null => Value::Null,
            Arg::Path(_) | Arg::Call(_) => continue,
        };
        let kind = f.kind(i);
        if !kind.accepts(&literal) {
            return Err(type_error(f, i, kind, &literal).cause);
        }
    }
    if let (Function::Format, Some(Arg::String(t))) = (f, call.args.first())
        && t.placeholders.len() != n - 1
    {
        return Err(format!(
            "States.Format: the template has {} '{{}}' placeholder(s) but {} value(s) were given; the counts must match",
            t.placeholders.len(),
            n - 1
        ));
    }
    if let (Function::JsonMerge, Some(Arg::Bool(true))) = (f, call.args.get(2)) {
        return Err(
            "States.JsonMerge: only shallow merging is supported, so the third argument must be false"
                .to_string(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
