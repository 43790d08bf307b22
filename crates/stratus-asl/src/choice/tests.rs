//! Expected values come from the Choice state examples of the AWS Step
//! Functions Developer Guide ("Choice workflow state") and the Amazon
//! States Language specification.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn lookup(input: &Value, path: &str) -> Option<Value> {
    let mut cur = input;
    let rest = path.strip_prefix('$')?;
    for part in rest.split('.').skip(1) {
        cur = cur.get(part)?;
    }
    Some(cur.clone())
}

/// The Next of the first matching top-level rule (None = no match).
fn choose(choices: Value, input: Value) -> Result<Option<String>, ChoiceError> {
    let resolve = move |p: &str| lookup(&input, p);
    for rule in choices.as_array().unwrap() {
        let r = ChoiceRule::parse(rule, true).unwrap_or_else(|e| panic!("{rule}: {e}"));
        if r.evaluate(&resolve)? {
            return Ok(r.next().map(str::to_string));
        }
    }
    Ok(None)
}

fn test(rule: Value, input: Value) -> Result<bool, ChoiceError> {
    let r = ChoiceRule::parse(&rule, false).unwrap_or_else(|e| panic!("{rule}: {e}"));
    let resolve = move |p: &str| lookup(&input, p);
    r.evaluate(&resolve)
}

fn holds(rule: Value, input: Value) -> bool {
    test(rule, input).unwrap()
}

fn invalid(rule: Value, top_level: bool) -> String {
    match ChoiceRule::parse(&rule, top_level) {
        Ok(r) => panic!("{rule} should be rejected, got {r:?}"),
        Err(e) => e,
    }
}

#[test]
fn specification_dispatch_event_example() {
    let choices = json!([
        {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
        {"And": [
            {"Variable": "$.value", "IsPresent": true},
            {"Variable": "$.value", "IsNumeric": true},
            {"Variable": "$.value", "NumericGreaterThanEquals": 20},
            {"Variable": "$.value", "NumericLessThan": 30}
        ], "Next": "ValueInTwenties"},
        {"Variable": "$.rating", "NumericGreaterThanPath": "$.auditThreshold", "Next": "StartAudit"}
    ]);
    assert_eq!(
        choose(choices.clone(), json!({"type": "Private", "value": 22})).unwrap(),
        Some("ValueInTwenties".to_string())
    );
    assert_eq!(
        choose(choices.clone(), json!({"type": "Public"})).unwrap(),
        Some("Public".to_string())
    );
    assert_eq!(
        choose(
            choices.clone(),
            json!({"type": "Private", "rating": 53, "auditThreshold": 60})
        )
        .unwrap(),
        None
    );
    assert_eq!(
        choose(
            choices,
            json!({"type": "Private", "rating": 63, "auditThreshold": 60})
        )
        .unwrap(),
        Some("StartAudit".to_string())
    );
}

#[test]
fn developer_guide_choice_state_example() {
    let choices = json!([
        {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
        {"Variable": "$.value", "NumericEquals": 0, "Next": "ValueIsZero"},
        {"And": [
            {"Variable": "$.value", "NumericGreaterThanEquals": 20},
            {"Variable": "$.value", "NumericLessThan": 30}
        ], "Next": "ValueInTwenties"}
    ]);
    assert_eq!(
        choose(choices.clone(), json!({"type": "Private", "value": 22})).unwrap(),
        Some("ValueInTwenties".to_string())
    );
    assert_eq!(
        choose(choices.clone(), json!({"type": "Private", "value": 0})).unwrap(),
        Some("ValueIsZero".to_string())
    );
    // "If the state input doesn't contain the $.type field, the execution fails."
    let e = choose(choices, json!({"value": 22})).unwrap_err();
    assert_eq!(e.error, "States.Runtime");
    assert!(e.cause.contains("$.type"), "{}", e.cause);
}

#[test]
fn guide_single_rule_examples() {
    assert!(holds(
        json!({"Variable": "$.foo", "NumericEquals": 1}),
        json!({"foo": 1})
    ));
    assert!(holds(
        json!({"Variable": "$.foo", "StringEquals": "MyString"}),
        json!({"foo": "MyString"})
    ));
    assert!(holds(
        json!({"Variable": "$.foo", "StringGreaterThan": "MyStringABC"}),
        json!({"foo": "MyStringABD"})
    ));
    assert!(holds(
        json!({"Variable": "$.foo", "TimestampEquals": "2001-01-01T12:00:00Z"}),
        json!({"foo": "2001-01-01T12:00:00Z"})
    ));
}

#[test]
fn string_matches_specification_examples() {
    for (pattern, value) in [
        ("foo*.log", "foo23.log"),
        ("*.log", "zebra.log"),
        ("foo*.*", "foobar.zebra"),
    ] {
        assert!(
            holds(
                json!({"Variable": "$.v", "StringMatches": pattern}),
                json!({"v": value})
            ),
            "{pattern} ~ {value}"
        );
    }
    assert!(!holds(
        json!({"Variable": "$.v", "StringMatches": "foo*.log"}),
        json!({"v": "foo23.txt"})
    ));
}

#[test]
fn string_matches_escapes() {
    // JSON "\\*" is the pattern \* : a literal star.
    assert!(holds(
        json!({"Variable": "$.v", "StringMatches": "a\\*b"}),
        json!({"v": "a*b"})
    ));
    assert!(!holds(
        json!({"Variable": "$.v", "StringMatches": "a\\*b"}),
        json!({"v": "axb"})
    ));
    assert!(holds(
        json!({"Variable": "$.v", "StringMatches": "a\\\\b*"}),
        json!({"v": "a\\bcd"})
    ));
    let e = invalid(json!({"Variable": "$.v", "StringMatches": "a\\b"}), false);
    assert!(e.contains("open escape"), "{e}");
    // Not a string: false, no error.
    assert!(!holds(
        json!({"Variable": "$.v", "StringMatches": "*"}),
        json!({"v": 1})
    ));
    assert!(holds(
        json!({"Variable": "$.v", "StringMatches": "*"}),
        json!({"v": ""})
    ));
    assert!(holds(
        json!({"Variable": "$.v", "StringMatches": ""}),
        json!({"v": ""})
    ));
    assert!(!holds(
        json!({"Variable": "$.v", "StringMatches": ""}),
        json!({"v": "a"})
    ));
}

#[test]
fn string_matches_pathological_pattern_finishes() {
    let value = "a".repeat(20_000);
    let pattern = "*a".repeat(50) + "b";
    assert!(!holds(
        json!({"Variable": "$.v", "StringMatches": pattern}),
        json!({"v": value})
    ));
}

#[test]
fn every_comparison_operator() {
    let input = json!({
        "s": "b", "n": 5, "f": 5.0, "t": true,
        "ts": "2016-03-14T01:59:00Z",
        "sa": "a", "sb": "b", "sc": "c",
        "n4": 4, "n5": 5, "n6": 6,
        "tsEarly": "2016-03-14T01:58:59Z", "tsLate": "2016-03-14T01:59:00.001Z",
        "bt": true
    });
    let cases = [
        ("StringEquals", json!("b"), true),
        ("StringEquals", json!("B"), false),
        ("StringLessThan", json!("c"), true),
        ("StringLessThan", json!("b"), false),
        ("StringGreaterThan", json!("a"), true),
        ("StringGreaterThan", json!("b"), false),
        ("StringLessThanEquals", json!("b"), true),
        ("StringLessThanEquals", json!("a"), false),
        ("StringGreaterThanEquals", json!("b"), true),
        ("StringGreaterThanEquals", json!("c"), false),
    ];
    for (op, operand, want) in cases {
        assert_eq!(
            holds(json!({"Variable": "$.s", op: operand}), input.clone()),
            want,
            "{op}"
        );
    }
    let cases = [
        ("NumericEquals", json!(5), true),
        ("NumericEquals", json!(5.0), true),
        ("NumericLessThan", json!(6), true),
        ("NumericLessThan", json!(5), false),
        ("NumericGreaterThan", json!(4.5), true),
        ("NumericGreaterThan", json!(5), false),
        ("NumericLessThanEquals", json!(5), true),
        ("NumericLessThanEquals", json!(4), false),
        ("NumericGreaterThanEquals", json!(5), true),
        ("NumericGreaterThanEquals", json!(6), false),
    ];
    for (op, operand, want) in cases {
        assert_eq!(
            holds(json!({"Variable": "$.n", op: operand}), input.clone()),
            want,
            "{op}"
        );
        assert_eq!(
            holds(json!({"Variable": "$.f", op: operand}), input.clone()),
            want,
            "{op} float"
        );
    }
    assert!(holds(
        json!({"Variable": "$.t", "BooleanEquals": true}),
        input.clone()
    ));
    assert!(!holds(
        json!({"Variable": "$.t", "BooleanEquals": false}),
        input.clone()
    ));
    let cases = [
        ("TimestampEquals", "2016-03-14T01:59:00Z", true),
        ("TimestampEquals", "2016-03-14T02:59:00+01:00", true),
        ("TimestampLessThan", "2016-03-14T01:59:00.5Z", true),
        ("TimestampLessThan", "2016-03-14T01:59:00Z", false),
        ("TimestampGreaterThan", "2016-03-13T23:59:59Z", true),
        ("TimestampGreaterThan", "2016-03-14T01:59:00Z", false),
        ("TimestampLessThanEquals", "2016-03-14T01:59:00Z", true),
        ("TimestampLessThanEquals", "2016-03-14T01:58:00Z", false),
        ("TimestampGreaterThanEquals", "2016-03-14T01:59:00Z", true),
        ("TimestampGreaterThanEquals", "2016-03-14T01:59:01Z", false),
    ];
    for (op, operand, want) in cases {
        assert_eq!(
            holds(json!({"Variable": "$.ts", op: operand}), input.clone()),
            want,
            "{op} {operand}"
        );
    }
    // The ...Path forms.
    let cases = [
        ("StringEqualsPath", "$.s", "$.sb", true),
        ("StringLessThanPath", "$.s", "$.sc", true),
        ("StringGreaterThanPath", "$.s", "$.sa", true),
        ("StringLessThanEqualsPath", "$.s", "$.sa", false),
        ("StringGreaterThanEqualsPath", "$.s", "$.sc", false),
        ("NumericEqualsPath", "$.n", "$.n5", true),
        ("NumericLessThanPath", "$.n", "$.n6", true),
        ("NumericGreaterThanPath", "$.n", "$.n4", true),
        ("NumericLessThanEqualsPath", "$.n", "$.n4", false),
        ("NumericGreaterThanEqualsPath", "$.n", "$.n6", false),
        ("BooleanEqualsPath", "$.t", "$.bt", true),
        ("TimestampEqualsPath", "$.ts", "$.ts", true),
        ("TimestampLessThanPath", "$.ts", "$.tsLate", true),
        ("TimestampGreaterThanPath", "$.ts", "$.tsEarly", true),
        ("TimestampLessThanEqualsPath", "$.ts", "$.tsEarly", false),
        ("TimestampGreaterThanEqualsPath", "$.ts", "$.tsLate", false),
    ];
    for (op, var, path, want) in cases {
        assert_eq!(
            holds(json!({"Variable": var, op: path}), input.clone()),
            want,
            "{op}"
        );
    }
}

#[test]
fn wrong_types_compare_false() {
    let input = json!({"s": "5", "n": 5, "b": true, "x": null, "o": {"a": 1}});
    assert!(!holds(
        json!({"Variable": "$.s", "NumericEquals": 5}),
        input.clone()
    ));
    assert!(!holds(
        json!({"Variable": "$.n", "StringEquals": "5"}),
        input.clone()
    ));
    assert!(!holds(
        json!({"Variable": "$.b", "StringEquals": "true"}),
        input.clone()
    ));
    assert!(!holds(
        json!({"Variable": "$.x", "BooleanEquals": false}),
        input.clone()
    ));
    assert!(!holds(
        json!({"Variable": "$.s", "TimestampEquals": "2016-03-14T01:59:00Z"}),
        input.clone()
    ));
    assert!(!holds(
        json!({"Variable": "$.o", "NumericLessThan": 1}),
        input.clone()
    ));
    // Not of a false comparison is true.
    assert!(holds(
        json!({"Not": {"Variable": "$.s", "NumericEquals": 5}}),
        input.clone()
    ));
    // A path operand of the wrong type is false too.
    assert!(!holds(
        json!({"Variable": "$.n", "NumericEqualsPath": "$.s"}),
        input
    ));
}

#[test]
fn timestamps_are_compared_as_instants_and_strings_as_strings() {
    let input = json!({"t": "2016-03-14T01:59:00.000Z"});
    assert!(holds(
        json!({"Variable": "$.t", "TimestampEquals": "2016-03-14T01:59:00Z"}),
        input.clone()
    ));
    assert!(!holds(
        json!({"Variable": "$.t", "StringEquals": "2016-03-14T01:59:00Z"}),
        input.clone()
    ));
    assert!(holds(
        json!({"Variable": "$.t", "StringEquals": "2016-03-14T01:59:00.000Z"}),
        input
    ));
}

#[test]
fn type_tests() {
    let input = json!({"n": 1.5, "s": "x", "b": false, "z": null, "ts": "2020-02-29T00:00:00Z", "bad": "2019-02-29T00:00:00Z"});
    assert!(holds(
        json!({"Variable": "$.n", "IsNumeric": true}),
        input.clone()
    ));
    assert!(holds(
        json!({"Variable": "$.s", "IsNumeric": false}),
        input.clone()
    ));
    assert!(holds(
        json!({"Variable": "$.s", "IsString": true}),
        input.clone()
    ));
    assert!(holds(
        json!({"Variable": "$.b", "IsBoolean": true}),
        input.clone()
    ));
    assert!(holds(
        json!({"Variable": "$.z", "IsNull": true}),
        input.clone()
    ));
    assert!(holds(
        json!({"Variable": "$.s", "IsNull": false}),
        input.clone()
    ));
    assert!(holds(
        json!({"Variable": "$.ts", "IsTimestamp": true}),
        input.clone()
    ));
    assert!(holds(
        json!({"Variable": "$.bad", "IsTimestamp": false}),
        input.clone()
    ));
    assert!(holds(
        json!({"Variable": "$.n", "IsTimestamp": false}),
        input.clone()
    ));
    assert!(holds(
        json!({"Variable": "$.z", "IsPresent": true}),
        input.clone()
    ));
    // IsPresent on a missing field: false (or true for IsPresent: false), no error.
    assert!(!holds(
        json!({"Variable": "$.missing", "IsPresent": true}),
        input.clone()
    ));
    assert!(holds(
        json!({"Variable": "$.missing", "IsPresent": false}),
        input.clone()
    ));
    // Any other test on a missing field is a run-time error.
    let e = test(
        json!({"Variable": "$.missing", "IsNull": true}),
        input.clone(),
    )
    .unwrap_err();
    assert_eq!(e.error, "States.Runtime");
    let e = test(
        json!({"Variable": "$.n", "NumericEqualsPath": "$.nope"}),
        input,
    )
    .unwrap_err();
    assert!(e.cause.contains("$.nope"));
}

#[test]
fn boolean_expressions_nest_and_short_circuit() {
    let input = json!({"a": 1});
    let rule = json!({"Or": [
        {"Variable": "$.a", "NumericEquals": 1},
        {"Variable": "$.missing", "NumericEquals": 1}
    ]});
    assert!(holds(rule, input.clone()));
    let rule = json!({"And": [
        {"Variable": "$.a", "NumericEquals": 2},
        {"Variable": "$.missing", "NumericEquals": 1}
    ]});
    assert!(!holds(rule, input.clone()));
    let rule = json!({"Not": {"Not": {"And": [
        {"Or": [{"Variable": "$.a", "IsNumeric": false}, {"Variable": "$.a", "NumericGreaterThan": 0}]},
        {"Not": {"Variable": "$.a", "IsNull": true}}
    ]}}});
    assert!(holds(rule, input));
}

#[test]
fn string_order_is_utf16_like_java() {
    // U+10000 is a surrogate pair (D800 DC00), which sorts before U+FFFF in
    // UTF-16 although it is the larger code point.
    let input = json!({"v": "\u{10000}"});
    assert!(holds(
        json!({"Variable": "$.v", "StringLessThan": "\u{FFFF}"}),
        input
    ));
    assert!(holds(
        json!({"Variable": "$.v", "StringLessThan": "a"}),
        json!({"v": "B"})
    ));
}

#[test]
fn next_is_required_at_top_level_and_forbidden_inside() {
    let r = ChoiceRule::parse(
        &json!({"Variable": "$.a", "IsNull": true, "Next": "X"}),
        true,
    )
    .unwrap();
    assert_eq!(r.next(), Some("X"));
    assert!(invalid(json!({"Variable": "$.a", "IsNull": true}), true).contains("'Next'"));
    assert!(
        invalid(json!({"Variable": "$.a", "IsNull": true, "Next": 3}), true)
            .contains("STRING that references a state")
    );
    assert!(
        invalid(
            json!({"Variable": "$.a", "IsNull": true, "Next": "X"}),
            false
        )
        .contains("must not have a 'Next'")
    );
    let e = invalid(
        json!({"And": [{"Variable": "$.a", "IsNull": true, "Next": "X"}], "Next": "Y"}),
        true,
    );
    assert!(e.contains("must not have a 'Next'"), "{e}");
}

#[test]
fn validation_errors() {
    for (rule, needle) in [
        (json!("x"), "JSON object"),
        (
            json!({"Variable": "$.a"}),
            "exactly one comparison operator",
        ),
        (
            json!({"Variable": "$.a", "IsNull": true, "IsString": true}),
            "'IsNull', 'IsString'",
        ),
        (json!({"IsNull": true}), "'Variable'"),
        (json!({"Variable": "a", "IsNull": true}), "valid JSONPath"),
        (json!({"Variable": 1, "IsNull": true}), "valid JSONPath"),
        (json!({"Variable": "$.a", "IsNull": "yes"}), "BOOLEAN"),
        (json!({"Variable": "$.a", "StringEquals": 1}), "STRING"),
        (json!({"Variable": "$.a", "NumericEquals": "1"}), "NUMBER"),
        (
            json!({"Variable": "$.a", "BooleanEquals": "true"}),
            "BOOLEAN",
        ),
        (
            json!({"Variable": "$.a", "TimestampEquals": "2016-03-14"}),
            "RFC 3339",
        ),
        (
            json!({"Variable": "$.a", "TimestampEquals": "2016-03-14t01:59:00z"}),
            "RFC 3339",
        ),
        (
            json!({"Variable": "$.a", "NumericEqualsPath": 3}),
            "valid JSONPath",
        ),
        (
            json!({"Variable": "$.a", "NumericEqualsPath": "x"}),
            "valid JSONPath",
        ),
        (json!({"And": []}), "non-empty ARRAY"),
        (
            json!({"Or": {"Variable": "$.a", "IsNull": true}}),
            "non-empty ARRAY",
        ),
        (json!({"Not": []}), "OBJECT"),
        (
            json!({"Not": {"Variable": "$.a"}}),
            "exactly one comparison operator",
        ),
        (
            json!({"And": [{"Variable": "$.a", "IsNull": true}], "Variable": "$.a"}),
            "'Variable'",
        ),
        (
            json!({"Variable": "$.a", "IsNull": true, "Foo": 1}),
            "'Foo' is not supported",
        ),
        (json!({"Condition": "{% true %}"}), "JSONata"),
        (
            json!({"Variable": "$.a", "IsNull": true, "Assign": {}}),
            "top-level",
        ),
        (
            json!({"Variable": "$.a", "IsNull": true, "Comment": 1}),
            "Comment",
        ),
    ] {
        let e = invalid(rule.clone(), false);
        assert!(e.contains(needle), "{rule}: {e}");
    }
    // Comment and (at top level) Assign are allowed.
    assert!(ChoiceRule::parse(&json!({"Variable": "$.a", "IsNull": true, "Comment": "c", "Assign": {"x": 1}, "Next": "N"}), true).is_ok());
}

#[test]
fn timestamp_parsing() {
    assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some((0, 0)));
    assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00"), Some((0, 0)));
    assert_eq!(parse_timestamp("1969-12-31T23:00:00-01:00"), Some((0, 0)));
    assert_eq!(
        parse_timestamp("2016-03-14T01:59:00Z"),
        Some((1_457_920_740, 0))
    );
    assert_eq!(
        parse_timestamp("2016-03-14T01:59:00.5Z"),
        Some((1_457_920_740, 500_000_000))
    );
    assert_eq!(
        parse_timestamp("2016-03-14T01:59:00.1234567891Z"),
        Some((1_457_920_740, 123_456_789))
    );
    for bad in [
        "2016-03-14 01:59:00Z",
        "2016-03-14T01:59:00",
        "2016-03-14T01:59:00z",
        "2016-13-14T01:59:00Z",
        "2016-02-30T01:59:00Z",
        "2016-03-14T24:00:00Z",
        "2016-03-14T01:60:00Z",
        "2016-03-14T01:59:60Z",
        "2016-03-14T01:59:00.Z",
        "2016-03-14T01:59:00+0100",
        "2016-03-14T01:59:00Zx",
        "16-03-14T01:59:00Z",
        "",
    ] {
        assert_eq!(parse_timestamp(bad), None, "{bad}");
    }
}

/// Reference matcher (dynamic programming) for the property test.
fn reference_match(pattern: &[Tok], s: &[char]) -> bool {
    let mut dp = vec![vec![false; s.len() + 1]; pattern.len() + 1];
    dp[0][0] = true;
    for p in 1..=pattern.len() {
        for i in 0..=s.len() {
            dp[p][i] = match pattern[p - 1] {
                Tok::Star => dp[p - 1][i] || (i > 0 && dp[p][i - 1]),
                Tok::Char(c) => i > 0 && s[i - 1] == c && dp[p - 1][i - 1],
            };
        }
    }
    dp[pattern.len()][s.len()]
}

proptest! {
    #[test]
    fn wildcard_matches_reference(pattern in "[ab*]{0,12}", value in "[ab]{0,12}") {
        let toks = parse_pattern(&pattern).unwrap();
        let chars: Vec<char> = value.chars().collect();
        prop_assert_eq!(wildcard_match(&toks, &chars), reference_match(&toks, &chars));
    }

    #[test]
    fn parse_never_panics(rule in any::<String>(), top in any::<bool>()) {
        let v = serde_json::from_str::<Value>(&rule).unwrap_or(Value::String(rule));
        let _ = ChoiceRule::parse(&v, top);
    }

    #[test]
    fn timestamp_parse_never_panics(s in "[0-9TZ:+.-]{0,40}") {
        let _ = parse_timestamp(&s);
    }

    #[test]
    fn numeric_order_is_consistent(a in -1e9f64..1e9, b in -1e9f64..1e9) {
        let input = json!({"a": a, "b": b});
        let lt = holds(json!({"Variable": "$.a", "NumericLessThanPath": "$.b"}), input.clone());
        let gt = holds(json!({"Variable": "$.a", "NumericGreaterThanPath": "$.b"}), input.clone());
        let eq = holds(json!({"Variable": "$.a", "NumericEqualsPath": "$.b"}), input);
        prop_assert_eq!([lt, gt, eq].iter().filter(|x| **x).count(), 1);
    }
}
