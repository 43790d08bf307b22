//! Message attributes: validation, sizes and the MD5 digests SQS returns.
//!
//! The digest of message attributes follows "Calculating the MD5 message
//! digest for message attributes" in the Amazon SQS Developer Guide: sort
//! the attributes by name; for each, append the name, the data type (each
//! as a 4-byte big-endian length followed by its UTF-8 bytes), one
//! transport byte (1 for `String` and `Number` types, 2 for `Binary`) and
//! the value (4-byte length and bytes: UTF-8 of `StringValue`, or the raw
//! `BinaryValue`); the digest is the MD5 of the whole, in lowercase hex.

use std::collections::BTreeMap;

use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{Map, Value};
use stratus_core::{AwsError, MessageAttribute};

use crate::errors::invalid_param;

/// Most message attributes per message (SQS quota).
pub const MAX_ATTRIBUTES: usize = 10;

/// Lowercase hex MD5 of `data` (`MD5OfMessageBody`, `MD5OfBody`).
pub fn md5_hex(data: &[u8]) -> String {
    let d = Md5::digest(data);
    let mut s = String::with_capacity(32);
    for b in d.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// `MD5OfMessageAttributes` (and `MD5OfMessageSystemAttributes`, which
/// uses the same encoding) of `attrs`; `None` when there are none.
pub fn md5_of_attributes(attrs: &BTreeMap<String, MessageAttribute>) -> Option<String> {
    if attrs.is_empty() {
        return None;
    }
    let mut buf = Vec::new();
    // BTreeMap iterates in byte order of the names, as the algorithm sorts.
    for (name, a) in attrs {
        put(&mut buf, name.as_bytes());
        put(&mut buf, a.data_type.as_bytes());
        if a.data_type.starts_with("Binary") {
            buf.push(2);
            put(&mut buf, a.binary_value.as_deref().unwrap_or_default());
        } else {
            buf.push(1);
            put(
                &mut buf,
                a.string_value.as_deref().unwrap_or_default().as_bytes(),
            );
        }
    }
    Some(md5_hex(&buf))
}

/// Bytes an attribute counts toward the message size: name, data type
/// and value.
pub fn attribute_size(name: &str, a: &MessageAttribute) -> usize {
    name.len()
        + a.data_type.len()
        + a.string_value.as_ref().map_or(0, |s| s.len())
        + a.binary_value.as_ref().map_or(0, |b| b.len())
}

fn valid_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.")
}

/// Checks one attribute as SQS does (name pattern, data type `String`,
/// `Number` or `Binary` with an optional `.label`, a non-empty value of
/// the right kind, numbers that parse).
///
/// Errors: `InvalidParameterValue` (400) naming the attribute.
pub fn validate(name: &str, a: &MessageAttribute) -> Result<(), AwsError> {
    if !valid_name(name) {
        return Err(invalid_param(format!(
            "Message attribute name '{name}' is invalid: names are 1-256 characters of A-Z, a-z, 0-9, '_', '-' and '.', must not start or end with '.', contain '..', or start with 'AWS.' or 'Amazon.'."
        )));
    }
    let base = a.data_type.split('.').next().unwrap_or_default();
    if a.data_type.len() > 256 || !matches!(base, "String" | "Number" | "Binary") {
        return Err(invalid_param(format!(
            "The type of message (user) attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
        )));
    }
    match base {
        "Binary" => {
            if a.binary_value.as_ref().is_none_or(|b| b.is_empty()) {
                return Err(invalid_param(format!(
                    "The message attribute '{name}' with type 'Binary' must use field 'Binary'."
                )));
            }
        }
        _ => {
            let Some(v) = a.string_value.as_deref().filter(|v| !v.is_empty()) else {
                return Err(invalid_param(format!(
                    "The message attribute '{name}' must contain non-empty message attribute value for message attribute type '{base}'."
                )));
            };
            if base == "Number" && v.trim().parse::<f64>().map_or(true, |f| !f.is_finite()) {
                return Err(invalid_param(format!(
                    "Can't cast the value of message (user) attribute '{name}' to a number."
                )));
            }
        }
    }
    Ok(())
}

/// Parses the json-protocol `MessageAttributes` map
/// (`{name: {DataType, StringValue, BinaryValue (base64)}}`).
///
/// Errors: `InvalidParameterValue` (400) for a bad shape or value, more
/// than 10 attributes, or bad base64.
pub fn from_json(v: Option<&Value>) -> Result<BTreeMap<String, MessageAttribute>, AwsError> {
    let mut out = BTreeMap::new();
    let Some(v) = v else { return Ok(out) };
    if v.is_null() {
        return Ok(out);
    }
    let Some(map) = v.as_object() else {
        return Err(invalid_param(
            "MessageAttributes must be a map of name to value.",
        ));
    };
    if map.len() > MAX_ATTRIBUTES {
        return Err(invalid_param(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
            map.len()
        )));
    }
    for (name, a) in map {
        let Some(o) = a.as_object() else {
            return Err(invalid_param(format!(
                "The message attribute '{name}' must be a structure with DataType and a value."
            )));
        };
        let data_type = o
            .get("DataType")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                invalid_param(format!(
                    "The message attribute '{name}' must contain a DataType."
                ))
            })?
            .to_string();
        let string_value = o
            .get("StringValue")
            .and_then(Value::as_str)
            .map(str::to_string);
        let binary_value = match o.get("BinaryValue").and_then(Value::as_str) {
            Some(b) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|_| {
                        invalid_param(format!(
                            "The BinaryValue of message attribute '{name}' is not valid base64."
                        ))
                    })?,
            ),
            None => None,
        };
        if o.contains_key("StringListValues") || o.contains_key("BinaryListValues") {
            return Err(invalid_param(format!(
                "Message attribute '{name}': StringListValues and BinaryListValues are reserved by SQS and not supported."
            )));
        }
        let attr = MessageAttribute {
            data_type,
            string_value,
            binary_value,
        };
        validate(name, &attr)?;
        out.insert(name.clone(), attr);
    }
    Ok(out)
}

/// The json-protocol shape of attributes (binary values in base64).
pub fn to_json(attrs: &BTreeMap<String, MessageAttribute>) -> Value {
    let mut m = Map::new();
    for (name, a) in attrs {
        let mut o = Map::new();
        if let Some(s) = &a.string_value {
            o.insert("StringValue".into(), Value::from(s.clone()));
        }
        if let Some(b) = &a.binary_value {
            o.insert(
                "BinaryValue".into(),
                Value::from(base64::engine::general_purpose::STANDARD.encode(b)),
            );
        }
        o.insert("DataType".into(), Value::from(a.data_type.clone()));
        m.insert(name.clone(), Value::Object(o));
    }
    Value::Object(m)
}

/// Whether `name` is selected by `MessageAttributeNames` (`All`, `.*`,
/// a `prefix.*`, or the exact name).
pub fn selected(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| {
        if p == "All" || p == ".*" {
            true
        } else if let Some(prefix) = p.strip_suffix(".*") {
            name.starts_with(prefix) && name[prefix.len()..].starts_with('.')
        } else {
            p == name
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> MessageAttribute {
        MessageAttribute::string(v)
    }

    #[test]
    fn body_digest_is_rfc1321_md5() {
        // RFC 1321 appendix A.5 test suite.
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            md5_hex(b"message digest"),
            "f96b697d7cb7938d525a2f31aaf161d0"
        );
    }

    #[test]
    fn attribute_digest_follows_the_documented_encoding() {
        // Expected values computed with Python's hashlib over the encoding
        // the SQS Developer Guide documents:
        //   def enc(b): return len(b).to_bytes(4, 'big') + b
        //   md5(enc(b'a') + enc(b'String') + b'\x01' + enc(b'x')).hexdigest()
        let mut one = BTreeMap::new();
        one.insert("a".to_string(), s("x"));
        assert_eq!(
            md5_of_attributes(&one).unwrap(),
            "a512aac9938034acb0b3c3d965944bf1"
        );
        // Two attributes, one binary, given out of order:
        //   md5(enc(b'bin') + enc(b'Binary') + b'\x02' + enc(b'\x00\x01\x02')
        //       + enc(b'num') + enc(b'Number') + b'\x01' + enc(b'42')).hexdigest()
        let mut two = BTreeMap::new();
        two.insert(
            "num".to_string(),
            MessageAttribute {
                data_type: "Number".into(),
                string_value: Some("42".into()),
                binary_value: None,
            },
        );
        two.insert(
            "bin".to_string(),
            MessageAttribute {
                data_type: "Binary".into(),
                string_value: None,
                binary_value: Some(vec![0, 1, 2]),
            },
        );
        assert_eq!(
            md5_of_attributes(&two).unwrap(),
            "041c9e287d6f033dc77cba9a6707c543"
        );
        assert_eq!(md5_of_attributes(&BTreeMap::new()), None);
    }

    #[test]
    fn validation() {
        assert!(validate("ok.name_1-x", &s("v")).is_ok());
        for bad in ["", ".a", "a.", "a..b", "AWS.x", "amazon.y", "sp ace"] {
            assert!(validate(bad, &s("v")).is_err(), "{bad}");
        }
        assert!(validate("a", &s("")).is_err());
        let n = |v: &str| MessageAttribute {
            data_type: "Number.int".into(),
            string_value: Some(v.into()),
            binary_value: None,
        };
        assert!(validate("n", &n("12.5")).is_ok());
        assert!(validate("n", &n("twelve")).is_err());
        let t = MessageAttribute {
            data_type: "Strin".into(),
            string_value: Some("x".into()),
            binary_value: None,
        };
        assert!(validate("t", &t).is_err());
    }

    #[test]
    fn selection_patterns() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(selected(&p(&["All"]), "x"));
        assert!(selected(&p(&[".*"]), "x"));
        assert!(selected(&p(&["bar.*"]), "bar.baz"));
        assert!(!selected(&p(&["bar.*"]), "barbaz"));
        assert!(selected(&p(&["exact"]), "exact"));
        assert!(!selected(&p(&["exact"]), "exact2"));
    }
}
