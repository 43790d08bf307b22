//! Reading query-protocol parameters: scalars, and the flattened forms
//! botocore's `query` serializer gives maps and lists
//! (`Attributes.entry.N.key/value`, `Tags.member.N.Key/Value`,
//! `TagKeys.member.N`, `MessageAttributes.entry.N.Name/Value.DataType`,
//! `PublishBatchRequestEntries.member.N.<Field>`), with `N` counting from 1.

use std::collections::BTreeMap;

use base64::Engine;
use stratus_core::{AwsError, AwsResult, MessageAttribute};

/// The parameters of one request (or one batch entry).
#[derive(Debug, Clone, Default)]
pub struct Params {
    items: Vec<(String, String)>,
}

impl Params {
    /// Wraps the form parameters of a request.
    pub fn new(items: &[(String, String)]) -> Params {
        Params {
            items: items.to_vec(),
        }
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a required parameter.
    ///
    /// Errors: `InvalidParameter` (400) naming the parameter when it is absent.
    pub fn required(&self, name: &str) -> AwsResult<&str> {
        self.get(name).ok_or_else(|| {
            crate::invalid(format!(
                "Invalid parameter: {name} Reason: The parameter {name} is required"
            ))
        })
    }

    /// A boolean parameter (`true`/`false`, any case); absent is `None`.
    ///
    /// Errors: `InvalidParameter` for other values.
    pub fn bool(&self, name: &str) -> AwsResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(crate::invalid(format!(
                "Invalid parameter: {name} Reason: '{v}' is not a boolean"
            ))),
        }
    }

    /// The members of a flattened list or map under `prefix` (for example
    /// `Tags.member`), in index order: each is the member's own parameters
    /// with `prefix.N.` removed (`Key`, `Value`), or, for a list of
    /// scalars, a single parameter named `""`.
    pub fn members(&self, prefix: &str) -> Vec<Params> {
        let mut by_index: BTreeMap<u64, Vec<(String, String)>> = BTreeMap::new();
        let lead = format!("{prefix}.");
        for (k, v) in &self.items {
            let Some(rest) = k.strip_prefix(&lead) else {
                continue;
            };
            let (idx, field) = match rest.split_once('.') {
                Some((i, f)) => (i, f),
                None => (rest, ""),
            };
            let Ok(i) = idx.parse::<u64>() else {
                continue;
            };
            by_index
                .entry(i)
                .or_default()
                .push((field.to_string(), v.clone()));
        }
        by_index
            .into_values()
            .map(|items| Params { items })
            .collect()
    }

    /// A flattened string map (`<name>.entry.N.key` / `.value`).
    ///
    /// Errors: `InvalidParameter` when an entry has no key.
    pub fn string_map(&self, name: &str) -> AwsResult<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for m in self.members(&format!("{name}.entry")) {
            let key = m.get("key").ok_or_else(|| {
                crate::invalid(format!(
                    "Invalid parameter: {name} Reason: an entry has no key"
                ))
            })?;
            out.insert(key.to_string(), m.get("value").unwrap_or("").to_string());
        }
        Ok(out)
    }

    /// A flattened tag list (`<name>.member.N.Key` / `.Value`).
    ///
    /// Errors: `InvalidParameter` when a tag has no key.
    pub fn tags(&self, name: &str) -> AwsResult<Vec<(String, String)>> {
        let mut out = Vec::new();
        for m in self.members(&format!("{name}.member")) {
            let key = m.get("Key").ok_or_else(|| {
                crate::invalid(format!(
                    "Invalid parameter: {name} Reason: a tag has no Key"
                ))
            })?;
            out.push((key.to_string(), m.get("Value").unwrap_or("").to_string()));
        }
        Ok(out)
    }

    /// A flattened list of strings (`<name>.member.N`).
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.members(&format!("{name}.member"))
            .into_iter()
            .filter_map(|m| m.get("").map(str::to_string))
            .collect()
    }

    /// `MessageAttributes.entry.N.Name` / `.Value.DataType` /
    /// `.Value.StringValue` / `.Value.BinaryValue` (base64), validated as
    /// AWS's "Amazon SNS message attributes" page describes: a name of at
    /// most 256 characters (letters, digits, `_ - .`, no leading or trailing
    /// `.`, no `..`, not starting with `AWS.` or `Amazon.`), a type of
    /// `String`, `Number`, `Binary` (each optionally with a `.label`) or
    /// `String.Array`, and a non-empty value of that type.
    ///
    /// Errors: `ParameterValueInvalid` (400) naming the attribute.
    pub fn message_attributes(&self) -> AwsResult<BTreeMap<String, MessageAttribute>> {
        let mut out = BTreeMap::new();
        for m in self.members("MessageAttributes.entry") {
            let name = m.get("Name").unwrap_or("");
            check_attribute_name(name)?;
            let data_type = m.get("Value.DataType").unwrap_or("");
            let base = data_type.split('.').next().unwrap_or("");
            if data_type.is_empty() {
                return Err(value_invalid(format!(
                    "The message attribute '{name}' must contain non-empty message attribute type."
                )));
            }
            if !matches!(base, "String" | "Number" | "Binary") {
                return Err(value_invalid(format!(
                    "The message attribute '{name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String."
                )));
            }
            let attr = if base == "Binary" {
                let raw = m.get("Value.BinaryValue").unwrap_or("");
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .map_err(|_| {
                        value_invalid(format!(
                            "The message attribute '{name}' has a BinaryValue that is not base64."
                        ))
                    })?;
                if bytes.is_empty() {
                    return Err(empty_value(name, data_type));
                }
                MessageAttribute {
                    data_type: data_type.to_string(),
                    string_value: None,
                    binary_value: Some(bytes),
                }
            } else {
                let sv = m.get("Value.StringValue").unwrap_or("");
                if sv.is_empty() {
                    return Err(empty_value(name, data_type));
                }
                if base == "Number" && sv.trim().parse::<f64>().is_err() {
                    return Err(value_invalid(format!(
                        "Could not cast message attribute '{name}' value to number."
                    )));
                }
                if data_type == "String.Array"
                    && !matches!(
                        serde_json::from_str::<serde_json::Value>(sv),
                        Ok(serde_json::Value::Array(_))
                    )
                {
                    return Err(value_invalid(format!(
                        "The message attribute '{name}' with type 'String.Array' has an invalid value: it must be a JSON array."
                    )));
                }
                MessageAttribute {
                    data_type: data_type.to_string(),
                    string_value: Some(sv.to_string()),
                    binary_value: None,
                }
            };
            out.insert(name.to_string(), attr);
        }
        Ok(out)
    }
}

fn value_invalid(msg: impl Into<String>) -> AwsError {
    AwsError::new(400, "ParameterValueInvalid", msg)
}

fn empty_value(name: &str, data_type: &str) -> AwsError {
    value_invalid(format!(
        "The message attribute '{name}' must contain non-empty message attribute value for message attribute type '{data_type}'."
    ))
}

fn check_attribute_name(name: &str) -> AwsResult<()> {
    if name.is_empty() {
        return Err(value_invalid(
            "The request includes a message attribute with an empty name.",
        ));
    }
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    let reserved = {
        let l = name.to_ascii_lowercase();
        l.starts_with("aws.") || l.starts_with("amazon.")
    };
    if name.len() > 256
        || !ok_chars
        || name.starts_with('.')
        || name.ends_with('.')
        || name.contains("..")
        || reserved
    {
        return Err(value_invalid(format!(
            "The message attribute name '{name}' is invalid: use at most 256 letters, digits, '_', '-' and '.', not starting or ending with '.', without '..', and not starting with 'AWS.' or 'Amazon.'."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(items: &[(&str, &str)]) -> Params {
        Params::new(
            &items
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn flattened_maps_lists_and_attributes() {
        let q = p(&[
            ("Attributes.entry.2.key", "FifoTopic"),
            ("Attributes.entry.2.value", "true"),
            ("Attributes.entry.1.key", "DisplayName"),
            ("Attributes.entry.1.value", "d"),
            ("Tags.member.1.Key", "k"),
            ("Tags.member.1.Value", "v"),
            ("TagKeys.member.1", "a"),
            ("TagKeys.member.2", "b"),
            ("MessageAttributes.entry.1.Name", "n"),
            ("MessageAttributes.entry.1.Value.DataType", "Number"),
            ("MessageAttributes.entry.1.Value.StringValue", "1.5"),
            ("MessageAttributes.entry.2.Name", "b"),
            ("MessageAttributes.entry.2.Value.DataType", "Binary"),
            ("MessageAttributes.entry.2.Value.BinaryValue", "AAE="),
        ]);
        let m = q.string_map("Attributes").unwrap();
        assert_eq!(m["FifoTopic"], "true");
        assert_eq!(m["DisplayName"], "d");
        assert_eq!(q.tags("Tags").unwrap(), vec![("k".into(), "v".into())]);
        assert_eq!(q.strings("TagKeys"), vec!["a", "b"]);
        let a = q.message_attributes().unwrap();
        assert_eq!(a["n"].string_value.as_deref(), Some("1.5"));
        assert_eq!(a["b"].binary_value.as_deref(), Some(&[0u8, 1][..]));
    }

    #[test]
    fn bad_message_attributes() {
        let cases: &[&[(&str, &str)]] = &[
            &[
                ("MessageAttributes.entry.1.Name", "n"),
                ("MessageAttributes.entry.1.Value.DataType", "Number"),
                ("MessageAttributes.entry.1.Value.StringValue", "abc"),
            ],
            &[
                ("MessageAttributes.entry.1.Name", "n"),
                ("MessageAttributes.entry.1.Value.DataType", "Blob"),
                ("MessageAttributes.entry.1.Value.StringValue", "x"),
            ],
            &[
                ("MessageAttributes.entry.1.Name", "n"),
                ("MessageAttributes.entry.1.Value.DataType", "String"),
            ],
            &[
                ("MessageAttributes.entry.1.Name", "AWS.x"),
                ("MessageAttributes.entry.1.Value.DataType", "String"),
                ("MessageAttributes.entry.1.Value.StringValue", "x"),
            ],
            &[
                ("MessageAttributes.entry.1.Name", "a"),
                ("MessageAttributes.entry.1.Value.DataType", "String.Array"),
                ("MessageAttributes.entry.1.Value.StringValue", "x"),
            ],
        ];
        for c in cases {
            let e = p(c).message_attributes().unwrap_err();
            assert_eq!(e.code, "ParameterValueInvalid", "{c:?}");
            assert_eq!(e.status, 400);
        }
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn flattened_parameters_never_panic(
            items in prop::collection::vec(
                ("(Attributes|Tags|TagKeys|MessageAttributes)\\.(entry|member)?\\.?[0-9a-z]{0,3}\\.?(key|value|Key|Value|Name|Value\\.DataType|Value\\.StringValue|Value\\.BinaryValue)?",
                 ".{0,12}"),
                0..12),
        ) {
            let p = Params::new(&items);
            let _ = p.string_map("Attributes");
            let _ = p.tags("Tags");
            let _ = p.strings("TagKeys");
            if let Err(e) = p.message_attributes() {
                prop_assert_eq!(e.status, 400);
            }
        }
    }
}
