//! Many rules against one event: rules are indexed by a top-level field
//! whose filters are exact strings (usually `source`), so an event is
//! tested only against the rules that name its value there plus the rules
//! that cannot be indexed.

use std::collections::HashMap;

use serde_json::Value;

use crate::pattern::Pattern;

/// A set of compiled patterns; [`RuleSet::matching`] gives the positions of
/// those an event matches.
#[derive(Debug, Default)]
pub struct RuleSet {
    patterns: Vec<Pattern>,
    /// field -> value -> rule positions.
    index: Vec<(String, HashMap<String, Vec<usize>>)>,
    unindexed: Vec<usize>,
}

impl RuleSet {
    /// Indexes `patterns`; positions in answers refer to this order.
    pub fn new(patterns: Vec<Pattern>) -> RuleSet {
        let mut index: Vec<(String, HashMap<String, Vec<usize>>)> = Vec::new();
        let mut unindexed = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            match p.index_key() {
                Some((field, values)) => {
                    let slot = match index.iter().position(|(f, _)| f == field) {
                        Some(s) => s,
                        None => {
                            index.push((field.to_string(), HashMap::new()));
                            index.len() - 1
                        }
                    };
                    for v in values {
                        let list = index[slot].1.entry(v.to_string()).or_default();
                        if list.last() != Some(&i) {
                            list.push(i);
                        }
                    }
                }
                None => unindexed.push(i),
            }
        }
        RuleSet {
            patterns,
            index,
            unindexed,
        }
    }

    /// Number of patterns.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// True when there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Positions (ascending) of the patterns `event` matches.
    pub fn matching(&self, event: &Value) -> Vec<usize> {
        let mut out = Vec::new();
        let Some(obj) = event.as_object() else {
            return out;
        };
        let mut candidates: Vec<usize> = Vec::new();
        for (field, by_value) in &self.index {
            let mut add = |s: &str| {
                if let Some(list) = by_value.get(s) {
                    candidates.extend_from_slice(list);
                }
            };
            match obj.get(field) {
                Some(Value::String(s)) => add(s),
                Some(Value::Array(items)) => {
                    for it in items {
                        if let Value::String(s) = it {
                            add(s);
                        }
                    }
                }
                _ => {}
            }
        }
        candidates.extend_from_slice(&self.unindexed);
        candidates.sort_unstable();
        candidates.dedup();
        for i in candidates {
            if self.patterns[i].matches(event) {
                out.push(i);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn index_gives_the_same_answers_as_testing_every_rule() {
        let texts = [
            r#"{"source": ["a"]}"#,
            r#"{"source": ["b", "a"], "detail": {"n": [{"numeric": [">", 1]}]}}"#,
            r#"{"source": [{"prefix": "a"}]}"#,
            r#"{"detail-type": ["t"]}"#,
            r#"{"resources": ["r1"]}"#,
            r#"{"detail": {"k": [{"exists": false}]}}"#,
            r#"{"source": ["c"]}"#,
        ];
        let patterns: Vec<Pattern> = texts.iter().map(|t| Pattern::parse(t).unwrap()).collect();
        let set = RuleSet::new(patterns.clone());
        for e in [
            json!({"source": "a", "detail-type": "t", "resources": ["r0", "r1"], "detail": {"n": 2}}),
            json!({"source": "ab", "detail-type": "u", "resources": [], "detail": {"k": 1}}),
            json!({"source": "c", "detail-type": "t", "resources": ["r1"], "detail": {}}),
        ] {
            let brute: Vec<usize> = (0..patterns.len())
                .filter(|i| patterns[*i].matches(&e))
                .collect();
            assert_eq!(set.matching(&e), brute, "{e}");
        }
    }
}
