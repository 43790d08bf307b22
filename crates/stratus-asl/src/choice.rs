//! Choice rules for JSONPath states: data-test expressions (comparison
//! operators and type tests), `And` / `Or` / `Not`, and `Next`.
//!
//! Follows "Choice workflow state" in the AWS Step Functions Developer
//! Guide and the Choice State section of the Amazon States Language
//! specification:
//!
//! * a rule is a boolean expression (`And` / `Or` with a non-empty array of
//!   rules, `Not` with one rule) or a data test (`Variable` plus exactly one
//!   comparison operator);
//! * `Next` is required on top-level rules and forbidden on nested ones;
//! * a comparison whose values are not both of the operator's type is
//!   false; string comparisons order by UTF-16 code units (Java's
//!   `String.compareTo`), with no case folding or normalisation;
//! * timestamps follow RFC 3339 with an uppercase `T` and an uppercase `Z`
//!   when no numeric offset is given;
//! * `StringMatches` treats `*` as "zero or more characters", `\*` as a
//!   literal `*` and `\\` as a literal `\`; matching takes time
//!   proportional to pattern length × value length at worst;
//! * a `Variable` (or a `...Path` operand) that selects nothing is a
//!   `States.Runtime` error, except for `IsPresent`, which is then false.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Map, Value};

use crate::Resolver;

/// A run-time failure while evaluating a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceError {
    /// Error name: `States.Runtime`.
    pub error: String,
    /// Human-readable cause.
    pub cause: String,
}

impl fmt::Display for ChoiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.cause)
    }
}

impl std::error::Error for ChoiceError {}

/// A parsed, validated Choice rule (JSONPath query language).
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceRule {
    next: Option<String>,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    And(Vec<ChoiceRule>),
    Or(Vec<ChoiceRule>),
    Not(Box<ChoiceRule>),
    Test { variable: String, test: Test },
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    Compare { ty: Ty, op: Cmp, operand: Operand },
    Matches(Vec<Tok>),
    IsPresent(bool),
    IsNull(bool),
    IsNumeric(bool),
    IsString(bool),
    IsBoolean(bool),
    IsTimestamp(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Literal(Value),
    Path(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Char(char),
    Star,
}

/// Every comparison operator name with its type, comparison and whether the
/// operand is a path.
const COMPARISONS: [(&str, Ty, Cmp, bool); 32] = [
    ("StringEquals", Ty::String, Cmp::Eq, false),
    ("StringEqualsPath", Ty::String, Cmp::Eq, true),
    ("StringLessThan", Ty::String, Cmp::Lt, false),
    ("StringLessThanPath", Ty::String, Cmp::Lt, true),
    ("StringGreaterThan", Ty::String, Cmp::Gt, false),
    ("StringGreaterThanPath", Ty::String, Cmp::Gt, true),
    ("StringLessThanEquals", Ty::String, Cmp::Le, false),
    ("StringLessThanEqualsPath", Ty::String, Cmp::Le, true),
    ("StringGreaterThanEquals", Ty::String, Cmp::Ge, false),
    ("StringGreaterThanEqualsPath", Ty::String, Cmp::Ge, true),
    ("NumericEquals", Ty::Numeric, Cmp::Eq, false),
    ("NumericEqualsPath", Ty::Numeric, Cmp::Eq, true),
    ("NumericLessThan", Ty::Numeric, Cmp::Lt, false),
    ("NumericLessThanPath", Ty::Numeric, Cmp::Lt, true),
    ("NumericGreaterThan", Ty::Numeric, Cmp::Gt, false),
    ("NumericGreaterThanPath", Ty::Numeric, Cmp::Gt, true),
    ("NumericLessThanEquals", Ty::Numeric, Cmp::Le, false),
    ("NumericLessThanEqualsPath", Ty::Numeric, Cmp::Le, true),
    ("NumericGreaterThanEquals", Ty::Numeric, Cmp::Ge, false),
    ("NumericGreaterThanEqualsPath", Ty::Numeric, Cmp::Ge, true),
    ("BooleanEquals", Ty::Boolean, Cmp::Eq, false),
    ("BooleanEqualsPath", Ty::Boolean, Cmp::Eq, true),
    ("TimestampEquals", Ty::Timestamp, Cmp::Eq, false),
    ("TimestampEqualsPath", Ty::Timestamp, Cmp::Eq, true),
    ("TimestampLessThan", Ty::Timestamp, Cmp::Lt, false),
    ("TimestampLessThanPath", Ty::Timestamp, Cmp::Lt, true),
    ("TimestampGreaterThan", Ty::Timestamp, Cmp::Gt, false),
    ("TimestampGreaterThanPath", Ty::Timestamp, Cmp::Gt, true),
    ("TimestampLessThanEquals", Ty::Timestamp, Cmp::Le, false),
    ("TimestampLessThanEqualsPath", Ty::Timestamp, Cmp::Le, true),
    ("TimestampGreaterThanEquals", Ty::Timestamp, Cmp::Ge, false),
    (
        "TimestampGreaterThanEqualsPath",
        Ty::Timestamp,
        Cmp::Ge,
        true,
    ),
];

/// The type tests, whose operand is a boolean.
const TYPE_TESTS: [&str; 6] = [
    "IsPresent",
    "IsNull",
    "IsNumeric",
    "IsString",
    "IsBoolean",
    "IsTimestamp",
];

/// Deepest nesting of And / Or / Not accepted (guards the recursion).
const MAX_DEPTH: usize = 100;

fn is_operator(key: &str) -> bool {
    matches!(key, "And" | "Or" | "Not" | "StringMatches")
        || TYPE_TESTS.contains(&key)
        || COMPARISONS.iter().any(|c| c.0 == key)
}

fn is_path(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.starts_with('$'))
}

impl ChoiceRule {
    /// Parses and validates one rule. `top_level` is true for members of a
    /// Choice state's `Choices` array (which need `Next`) and false for the
    /// rules inside `And`, `Or` and `Not` (which must not have it).
    ///
    /// Err: a message naming the offending field, in the style of AWS's
    /// `SCHEMA_VALIDATION_FAILED` diagnostics; the caller adds the location.
    pub fn parse(rule: &Value, top_level: bool) -> Result<ChoiceRule, String> {
        Self::parse_at(rule, top_level, 0)
    }

    fn parse_at(rule: &Value, top_level: bool, depth: usize) -> Result<ChoiceRule, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "Choice rules may nest at most {MAX_DEPTH} levels deep"
            ));
        }
        let obj: &Map<String, Value> = rule
            .as_object()
            .ok_or_else(|| "Each choice rule must be a JSON object".to_string())?;

        for key in obj.keys() {
            let known = is_operator(key)
                || matches!(key.as_str(), "Variable" | "Next" | "Comment")
                || (key == "Assign" && top_level);
            if !known {
                return Err(match key.as_str() {
                    "Condition" => {
                        "The field 'Condition' is supported only in JSONata choice rules; use 'Variable' and a comparison operator".to_string()
                    }
                    "Assign" => "The field 'Assign' is supported only in top-level choice rules".to_string(),
                    _ => format!("The field '{key}' is not supported in a choice rule"),
                });
            }
        }

        let next = match (obj.get("Next"), top_level) {
            (Some(Value::String(s)), true) => Some(s.clone()),
            (Some(_), true) => {
                return Err(
                    "The value for the field 'Next' must be a STRING that references a state"
                        .to_string(),
                );
            }
            (None, true) => {
                return Err("Each top-level choice rule must have a 'Next' field".to_string());
            }
            (Some(_), false) => {
                return Err(
                    "Nested choice rules (inside 'And', 'Or' or 'Not') must not have a 'Next' field"
                        .to_string(),
                );
            }
            (None, false) => None,
        };
        if obj.get("Comment").is_some_and(|c| !c.is_string()) {
            return Err("The value for the field 'Comment' must be a STRING".to_string());
        }

        let operators: Vec<&String> = obj.keys().filter(|k| is_operator(k)).collect();
        let op = match operators.as_slice() {
            [one] => one.as_str(),
            [] => {
                return Err(
                    "A choice rule must have exactly one comparison operator, or one of 'And', 'Or' and 'Not'"
                        .to_string(),
                );
            }
            many => {
                let names: Vec<String> = many.iter().map(|k| format!("'{k}'")).collect();
                return Err(format!(
                    "A choice rule must have exactly one comparison operator, but it has {}",
                    names.join(", ")
                ));
            }
        };
        let value = &obj[op];

        let expr = match op {
            "And" | "Or" => {
                if obj.contains_key("Variable") {
                    return Err(format!(
                        "The field 'Variable' cannot be used together with '{op}'"
                    ));
                }
                let items = value.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
                    format!(
                        "The value for the field '{op}' must be a non-empty ARRAY of choice rules"
                    )
                })?;
                let rules = items
                    .iter()
                    .map(|r| Self::parse_at(r, false, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                if op == "And" {
                    Expr::And(rules)
                } else {
                    Expr::Or(rules)
                }
            }
            "Not" => {
                if obj.contains_key("Variable") {
                    return Err(
                        "The field 'Variable' cannot be used together with 'Not'".to_string()
                    );
                }
                if !value.is_object() {
                    return Err(
                        "The value for the field 'Not' must be a choice rule OBJECT".to_string()
                    );
                }
                Expr::Not(Box::new(Self::parse_at(value, false, depth + 1)?))
            }
            _ => {
                let variable = match obj.get("Variable") {
                    Some(v) if is_path(v) => v.as_str().unwrap_or("$").to_string(),
                    Some(_) => {
                        return Err(
                            "The value for the field 'Variable' must be a valid JSONPath (a STRING starting with '$')"
                                .to_string(),
                        );
                    }
                    None => {
                        return Err(format!(
                            "A choice rule with the comparison operator '{op}' must have a 'Variable' field"
                        ));
                    }
                };
                Expr::Test {
                    variable,
                    test: parse_test(op, value)?,
                }
            }
        };
        Ok(ChoiceRule { next, expr })
    }

    /// The state to go to when this top-level rule matches (`None` for
    /// nested rules).
    pub fn next(&self) -> Option<&str> {
        self.next.as_deref()
    }

    /// Evaluates the rule against the state's input through `resolve`.
    ///
    /// Err (`States.Runtime`): the `Variable` or a `...Path` operand selects
    /// nothing (except for `IsPresent`).
    pub fn evaluate(&self, resolve: Resolver) -> Result<bool, ChoiceError> {
        match &self.expr {
            Expr::And(rules) => {
                for r in rules {
                    if !r.evaluate(resolve)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Expr::Or(rules) => {
                for r in rules {
                    if r.evaluate(resolve)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Expr::Not(r) => Ok(!r.evaluate(resolve)?),
            Expr::Test { variable, test } => {
                let value = resolve(variable);
                if let Test::IsPresent(expected) = test {
                    return Ok(value.is_some() == *expected);
                }
                let value = value.ok_or_else(|| invalid_path(variable))?;
                Ok(match test {
                    Test::IsPresent(_) => true,
                    Test::IsNull(e) => value.is_null() == *e,
                    Test::IsNumeric(e) => value.is_number() == *e,
                    Test::IsString(e) => value.is_string() == *e,
                    Test::IsBoolean(e) => value.is_boolean() == *e,
                    Test::IsTimestamp(e) => {
                        value.as_str().and_then(parse_timestamp).is_some() == *e
                    }
                    Test::Matches(pattern) => value.as_str().is_some_and(|s| {
                        let chars: Vec<char> = s.chars().collect();
                        wildcard_match(pattern, &chars)
                    }),
                    Test::Compare { ty, op, operand } => {
                        let other = match operand {
                            Operand::Literal(v) => v.clone(),
                            Operand::Path(p) => resolve(p).ok_or_else(|| invalid_path(p))?,
                        };
                        compare(*ty, &value, &other).is_some_and(|ord| match op {
                            Cmp::Eq => ord == Ordering::Equal,
                            Cmp::Lt => ord == Ordering::Less,
                            Cmp::Gt => ord == Ordering::Greater,
                            Cmp::Le => ord != Ordering::Greater,
                            Cmp::Ge => ord != Ordering::Less,
                        })
                    }
                })
            }
        }
    }
}

fn invalid_path(path: &str) -> ChoiceError {
    ChoiceError {
        error: "States.Runtime".to_string(),
        cause: format!(
            "Invalid path '{path}': The choice state's condition path references an invalid value."
        ),
    }
}

fn parse_test(op: &str, value: &Value) -> Result<Test, String> {
    if TYPE_TESTS.contains(&op) {
        let b = value
            .as_bool()
            .ok_or_else(|| format!("The value for the field '{op}' must be a BOOLEAN"))?;
        return Ok(match op {
            "IsPresent" => Test::IsPresent(b),
            "IsNull" => Test::IsNull(b),
            "IsNumeric" => Test::IsNumeric(b),
            "IsString" => Test::IsString(b),
            "IsBoolean" => Test::IsBoolean(b),
            _ => Test::IsTimestamp(b),
        });
    }
    if op == "StringMatches" {
        let s = value.as_str().ok_or_else(|| {
            "The value for the field 'StringMatches' must be a STRING".to_string()
        })?;
        return parse_pattern(s).map(Test::Matches);
    }
    let (_, ty, cmp, path) = COMPARISONS
        .iter()
        .copied()
        .find(|c| c.0 == op)
        .ok_or_else(|| format!("'{op}' is not a comparison operator"))?;
    let operand = if path {
        if !is_path(value) {
            return Err(format!(
                "The value for the field '{op}' must be a valid JSONPath (a STRING starting with '$')"
            ));
        }
        Operand::Path(value.as_str().unwrap_or("$").to_string())
    } else {
        let ok = match ty {
            Ty::String => value.is_string(),
            Ty::Numeric => value.is_number(),
            Ty::Boolean => value.is_boolean(),
            Ty::Timestamp => value.as_str().and_then(parse_timestamp).is_some(),
        };
        if !ok {
            return Err(match ty {
                Ty::String => format!("The value for the field '{op}' must be a STRING"),
                Ty::Numeric => format!("The value for the field '{op}' must be a NUMBER"),
                Ty::Boolean => format!("The value for the field '{op}' must be a BOOLEAN"),
                Ty::Timestamp => format!(
                    "The value for the field '{op}' must be a STRING holding an RFC 3339 timestamp, such as 2016-03-14T01:59:00Z"
                ),
            });
        }
        Operand::Literal(value.clone())
    };
    Ok(Test::Compare {
        ty,
        op: cmp,
        operand,
    })
}

/// Compares two values of the operator's type; `None` when either is not of
/// that type (the comparison is then false).
fn compare(ty: Ty, a: &Value, b: &Value) -> Option<Ordering> {
    match ty {
        Ty::String => Some(compare_utf16(a.as_str()?, b.as_str()?)),
        Ty::Numeric => compare_numbers(a.as_number()?, b.as_number()?),
        Ty::Boolean => Some(if a.as_bool()? == b.as_bool()? {
            Ordering::Equal
        } else {
            Ordering::Less
        }),
        Ty::Timestamp => {
            let x = parse_timestamp(a.as_str()?)?;
            let y = parse_timestamp(b.as_str()?)?;
            Some(x.cmp(&y))
        }
    }
}

/// Orders strings by UTF-16 code units, as Java's `String.compareTo` does.
fn compare_utf16(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// Parses a `StringMatches` pattern: `*` is a wildcard, `\*` and `\\` are
/// literal; any other backslash is an open escape (an error).
fn parse_pattern(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                // Consecutive wildcards match the same as one.
                if out.last() != Some(&Tok::Star) {
                    out.push(Tok::Star);
                }
            }
            '\\' => match chars.next() {
                Some(e @ ('*' | '\\')) => out.push(Tok::Char(e)),
                _ => {
                    return Err(
                        "The value for the field 'StringMatches' has an open escape: a backslash must be followed by '*' or '\\'"
                            .to_string(),
                    );
                }
            },
            other => out.push(Tok::Char(other)),
        }
    }
    Ok(out)
}

/// Wildcard match with single-star backtracking: O(pattern × value) at
/// worst, never exponential.
fn wildcard_match(pattern: &[Tok], s: &[char]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match pattern.get(p) {
            Some(Tok::Char(c)) if *c == s[i] => {
                p += 1;
                i += 1;
            }
            Some(Tok::Star) => {
                star = Some((p, i));
                p += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..]
        .iter()
        .all(|t| *t == Tok::Star)
}

/// Parses an RFC 3339 timestamp as Step Functions accepts it
/// (`2016-03-14T01:59:00Z`, `2016-03-14T01:59:00.123+05:30`): uppercase
/// `T`, uppercase `Z` or a `±HH:MM` offset, optional fractional seconds.
/// Returns (seconds since the Unix epoch, nanoseconds), normalised to UTC;
/// `None` when the text is not such a timestamp.
pub fn parse_timestamp(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let year = num(0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || b.get(10) != Some(&b'T') {
        return None;
    }
    let month = num(5, 2)?;
    let day = num(8, 2)?;
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..9 {
            nanos *= 10;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z') => {
            i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let oh = num(i + 1, 2)?;
            if b.get(i + 3) != Some(&b':') {
                return None;
            }
            let om = num(i + 4, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let total = oh * 3600 + om * 60;
            i += 6;
            if *sign == b'-' { -total } else { total }
        }
        _ => return None,
    };
    if i != b.len() {
        return None;
    }
    let days = stratus_jsonata::calendar::days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some((secs, nanos))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

#[cfg(test)]
mod tests;
