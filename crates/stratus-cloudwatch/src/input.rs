//! Reading request fields the same way from both protocols.
//!
//! The json protocol sends typed values (numbers, booleans, timestamps as
//! epoch seconds); the query protocol sends every value as a string
//! (timestamps as ISO 8601), turned into the same nested shape by
//! [`crate::query::params_to_json`]. The readers here accept both, and
//! check the constraints of botocore's `cloudwatch/2010-08-01` model
//! (`Namespace`, `MetricName`, `Dimensions`, `StandardUnit`).

use serde_json::{Map, Value};
use stratus_core::AwsResult;

use crate::errors::{invalid_value, missing};

/// Units of the model's `StandardUnit` enum.
pub const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Most dimensions a metric can have (model: `Dimensions` max 30).
pub const MAX_DIMENSIONS: usize = 30;

/// A request object (the json body, or the query parameters as json).
pub type Obj = Map<String, Value>;

/// The string at `key`, if present. Errors: `InvalidParameterValue` when it
/// is not a string.
pub fn opt_str<'a>(o: &'a Obj, key: &str, path: &str) -> AwsResult<Option<&'a str>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid_value(format!(
            "The parameter {path} must be a string."
        ))),
    }
}

/// The string at `key`. Errors: `MissingParameter` when absent.
pub fn req_str<'a>(o: &'a Obj, key: &str, path: &str) -> AwsResult<&'a str> {
    opt_str(o, key, path)?.ok_or_else(|| missing(path))
}

/// The number at `key` (a json number or a numeric string), if present.
/// Errors: `InvalidParameterValue` when it is neither.
pub fn opt_num(o: &Obj, key: &str, path: &str) -> AwsResult<Option<f64>> {
    let bad = || invalid_value(format!("The parameter {path} must be a number."));
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or_else(bad),
        Some(Value::String(s)) => s.trim().parse::<f64>().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// The integer at `key`, if present. Errors: `InvalidParameterValue` when
/// it is not a whole number.
pub fn opt_int(o: &Obj, key: &str, path: &str) -> AwsResult<Option<i64>> {
    match opt_num(o, key, path)? {
        None => Ok(None),
        Some(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(Some(v as i64)),
        Some(_) => Err(invalid_value(format!(
            "The parameter {path} must be a whole number."
        ))),
    }
}

/// The boolean at `key`, if present (`true`/`false` or their strings).
pub fn opt_bool(o: &Obj, key: &str, path: &str) -> AwsResult<Option<bool>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(invalid_value(format!(
            "The parameter {path} must be true or false."
        ))),
    }
}

/// The list at `key` (empty when absent). Errors: `InvalidParameterValue`
/// when it is not a list.
pub fn list<'a>(o: &'a Obj, key: &str, path: &str) -> AwsResult<&'a [Value]> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(invalid_value(format!(
            "The parameter {path} must be a list."
        ))),
    }
}

/// The structure at `key`, if present.
pub fn opt_obj<'a>(o: &'a Obj, key: &str, path: &str) -> AwsResult<Option<&'a Obj>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(invalid_value(format!(
            "The parameter {path} must be a structure."
        ))),
    }
}

/// A list element as a structure.
pub fn as_obj<'a>(v: &'a Value, path: &str) -> AwsResult<&'a Obj> {
    v.as_object()
        .ok_or_else(|| invalid_value(format!("The parameter {path} must be a structure.")))
}

/// A timestamp at `key` as ms since the epoch: epoch seconds (json
/// protocol, fractions allowed) or ISO 8601 (query protocol,
/// `2024-01-31T12:34:56Z`, `.fff` and `+hh:mm` accepted).
pub fn opt_time(o: &Obj, key: &str, path: &str) -> AwsResult<Option<i64>> {
    let bad = || {
        invalid_value(format!(
            "The parameter {path} must be a timestamp (ISO 8601 or seconds since the epoch)."
        ))
    };
    let ms = match o.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|v| v.is_finite())
            .map(|v| (v * 1000.0).round() as i64)
            .ok_or_else(bad)?,
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => (v * 1000.0).round() as i64,
            Ok(_) => return Err(bad()),
            Err(_) => parse_iso(s.trim()).ok_or_else(bad)?,
        },
        Some(_) => return Err(bad()),
    };
    if !(0..=MAX_TIME_MS).contains(&ms) {
        return Err(invalid_value(format!(
            "The parameter {path} must be a time between 1970-01-01 and 9999-12-31."
        )));
    }
    Ok(Some(ms))
}

/// The last ms of year 9999: later (or pre-1970) timestamps are refused.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// A required timestamp. Errors: `MissingParameter` when absent.
pub fn req_time(o: &Obj, key: &str, path: &str) -> AwsResult<i64> {
    opt_time(o, key, path)?.ok_or_else(|| missing(path))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff][Z|±hh:mm|±hhmm|±hh]` (a date alone is
/// midnight UTC) to ms since the epoch.
pub fn parse_iso(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    let mut ms = stratus_core::time::days_from_civil(y, mo, d) * 86_400_000;
    if b.len() == 10 {
        return Some(ms);
    }
    if !matches!(b.get(10), Some(b'T') | Some(b't') | Some(b' ')) {
        return None;
    }
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    ms += (h * 3600 + mi * 60 + sec) * 1000;
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i)?;
        if frac.is_empty() {
            return None;
        }
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        ms += digits.parse::<i64>().ok()?;
    }
    match s.get(i..)? {
        "" | "Z" | "z" => Some(ms),
        // ISO 8601 offsets: `+hh:mm`, `+hhmm` or `+hh` (and `-`).
        tz if (tz.starts_with('+') || tz.starts_with('-'))
            && matches!(tz.len(), 3 | 5 | 6)
            && tz[1..]
                .bytes()
                .enumerate()
                .all(|(i, c)| c.is_ascii_digit() || (i == 2 && c == b':' && tz.len() == 6)) =>
        {
            let oh: i64 = tz.get(1..3)?.parse().ok()?;
            let om: i64 = match tz.len() {
                3 => 0,
                5 => tz.get(3..5)?.parse().ok()?,
                _ => tz.get(4..6)?.parse().ok()?,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let off = (oh * 60 + om) * 60_000;
            Some(if tz.starts_with('+') {
                ms - off
            } else {
                ms + off
            })
        }
        _ => None,
    }
}

/// Checks a namespace (model: 1-255 characters, not starting with `:`).
/// Errors: `InvalidParameterValue`.
pub fn check_namespace(ns: &str, path: &str) -> AwsResult<()> {
    let n = ns.chars().count();
    if n == 0 || n > 255 {
        return Err(invalid_value(format!(
            "The parameter {path} must be 1 to 255 characters long (it has {n})."
        )));
    }
    if ns.starts_with(':') {
        return Err(invalid_value(format!(
            "The value {ns} for parameter {path} is invalid: a namespace cannot start with ':'."
        )));
    }
    if ns.chars().any(char::is_control) {
        return Err(invalid_value(format!(
            "The value for parameter {path} is invalid: it contains control characters."
        )));
    }
    Ok(())
}

/// Checks a metric name (model: 1-255 characters). Errors:
/// `InvalidParameterValue`.
pub fn check_metric_name(name: &str, path: &str) -> AwsResult<()> {
    let n = name.chars().count();
    if n == 0 || n > 255 {
        return Err(invalid_value(format!(
            "The parameter {path} must be 1 to 255 characters long (it has {n})."
        )));
    }
    Ok(())
}

/// Checks a unit against `StandardUnit`. Errors: `InvalidParameterValue`.
pub fn check_unit(unit: &str, path: &str) -> AwsResult<()> {
    if UNITS.contains(&unit) {
        Ok(())
    } else {
        Err(invalid_value(format!(
            "The value {unit} for parameter {path} is not a valid unit (one of {}).",
            UNITS.join(", ")
        )))
    }
}

/// Reads the `Dimensions` list at `key`: at most 30, names 1-255 and values
/// 1-1024 characters, no name twice. Returned sorted by name (a metric is
/// the same whatever order its dimensions were sent in).
///
/// Errors: `InvalidParameterValue` (too many, bad length, duplicate names),
/// `MissingParameter` (a dimension without Name or Value).
pub fn dimensions(o: &Obj, key: &str, path: &str) -> AwsResult<Vec<(String, String)>> {
    let items = list(o, key, path)?;
    if items.len() > MAX_DIMENSIONS {
        return Err(invalid_value(format!(
            "The collection {path} must not have a size greater than {MAX_DIMENSIONS} (it has {}).",
            items.len()
        )));
    }
    let mut dims = Vec::with_capacity(items.len());
    for (i, d) in items.iter().enumerate() {
        let p = format!("{path}.member.{}", i + 1);
        let d = as_obj(d, &p)?;
        let name = req_str(d, "Name", &format!("{p}.Name"))?;
        let value = req_str(d, "Value", &format!("{p}.Value"))?;
        let (nl, vl) = (name.chars().count(), value.chars().count());
        if nl == 0 || nl > 255 {
            return Err(invalid_value(format!(
                "The parameter {p}.Name must be 1 to 255 characters long."
            )));
        }
        if vl == 0 || vl > 1024 {
            return Err(invalid_value(format!(
                "The parameter {p}.Value must be 1 to 1024 characters long."
            )));
        }
        dims.push((name.to_string(), value.to_string()));
    }
    dims.sort();
    if let Some(w) = dims.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(invalid_value(format!(
            "The collection {path} must not have duplicate dimension names ('{}' appears twice).",
            w[0].0
        )));
    }
    Ok(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn iso_timestamps() {
        assert_eq!(parse_iso("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_iso("2021-03-04T05:06:07.089Z"),
            Some(1_614_834_367_089)
        );
        assert_eq!(
            parse_iso("2021-03-04T06:06:07.089+01:00"),
            Some(1_614_834_367_089)
        );
        assert_eq!(
            parse_iso("2021-03-04T06:06:07.089+0100"),
            Some(1_614_834_367_089)
        );
        assert_eq!(
            parse_iso("2021-03-04T00:06:07.089-05"),
            Some(1_614_834_367_089)
        );
        assert_eq!(parse_iso("2021-03-04T06:06:07+25:00"), None);
        assert_eq!(parse_iso("2021-03-04T06:06:07+01:7"), None);
        assert_eq!(parse_iso("2021-03-04T06:06:07+1:000"), None);
        assert_eq!(parse_iso("2021-03-04"), Some(1_614_816_000_000));
        assert_eq!(parse_iso("2021-13-04T00:00:00Z"), None);
        assert_eq!(parse_iso("yesterday"), None);
    }

    #[test]
    fn dimension_rules() {
        let o = json!({"D": [{"Name": "b", "Value": "2"}, {"Name": "a", "Value": "1"}]});
        let d = dimensions(o.as_object().unwrap(), "D", "Dimensions").unwrap();
        assert_eq!(d, vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
        let many: Vec<Value> = (0..31)
            .map(|i| json!({"Name": format!("n{i}"), "Value": "v"}))
            .collect();
        let o = json!({ "D": many });
        let e = dimensions(o.as_object().unwrap(), "D", "Dimensions").unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        let o = json!({"D": [{"Name": "a", "Value": "1"}, {"Name": "a", "Value": "2"}]});
        assert!(dimensions(o.as_object().unwrap(), "D", "Dimensions").is_err());
        let o = json!({"D": [{"Name": "a"}]});
        let e = dimensions(o.as_object().unwrap(), "D", "Dimensions").unwrap_err();
        assert_eq!(e.code, "MissingParameter");
    }

    #[test]
    fn lenient_numbers() {
        let o =
            json!({"P": "60", "Q": 60, "R": "x", "T": "2021-03-04T05:06:07Z", "U": 1614834367.5});
        let o = o.as_object().unwrap();
        assert_eq!(opt_int(o, "P", "P").unwrap(), Some(60));
        assert_eq!(opt_int(o, "Q", "Q").unwrap(), Some(60));
        assert!(opt_int(o, "R", "R").is_err());
        assert_eq!(opt_time(o, "T", "T").unwrap(), Some(1_614_834_367_000));
        assert_eq!(opt_time(o, "U", "U").unwrap(), Some(1_614_834_367_500));
    }
}
