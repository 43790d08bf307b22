//! Pattern / event / expected-match cases taken from AWS's EventBridge
//! documentation. Each group names the page its patterns and events come
//! from; the expected results are what those pages state.

use super::*;
use serde_json::json;

/// Runs `(pattern, event, expected)` cases.
fn check(cases: &[(Value, Value, bool)]) {
    for (i, (p, e, want)) in cases.iter().enumerate() {
        let pat = Pattern::parse(&p.to_string())
            .unwrap_or_else(|err| panic!("case {i}: pattern {p} rejected: {err}"));
        assert_eq!(
            pat.matches(e),
            *want,
            "case {i}: pattern {p} against event {e}"
        );
    }
}

/// The sample EC2 event of
/// <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html>.
fn ec2_event() -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "111122223333",
        "time": "2017-12-22T18:43:48Z",
        "region": "us-west-1",
        "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
        "detail": {"instance-id": "i-1234567890abcdef0", "state": "terminated"}
    })
}

/// The event of the content filtering page
/// (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-content-based-filtering.html>,
/// "Complex example with multiple matching").
fn filtering_event() -> Value {
    json!({
        "version": "0",
        "id": "3e3c153a-8339-4e30-8c35-687ebef853fe",
        "detail-type": "EC2 Instance Launch Successful",
        "source": "aws.autoscaling",
        "account": "123456789012",
        "time": "2017-10-02T18:43:48Z",
        "region": "us-west-2",
        "resources": ["arn:aws:ec2:us-west-2:123456789012:instance/i-1234567890abcdef0"],
        "detail": {
            "instance-id": "i-1234567890abcdef0",
            "c-count": 5,
            "d-count": 3,
            "x-limit": 301.8,
            "source-ip": "10.0.0.33",
            "state": "running"
        }
    })
}

// https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html
#[test]
fn event_patterns_page() {
    check(&[
        (
            json!({"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"],
                   "detail": {"state": ["terminated"]}}),
            ec2_event(),
            true,
        ),
        // Values in one array are OR-ed.
        (
            json!({"detail": {"state": ["running", "terminated"]}}),
            ec2_event(),
            true,
        ),
        // Fields are AND-ed: the state differs.
        (
            json!({"source": ["aws.ec2"], "detail": {"state": ["pending"]}}),
            ec2_event(),
            false,
        ),
        // Matching is case-sensitive and exact.
        (json!({"source": ["AWS.EC2"]}), ec2_event(), false),
        (json!({"source": ["aws.ec"]}), ec2_event(), false),
        // A field the event lacks does not match an exact value.
        (json!({"detail": {"color": ["red"]}}), ec2_event(), false),
        // Fields the pattern does not name are ignored.
        (json!({"region": ["us-west-1"]}), ec2_event(), true),
    ]);
}

// https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-arrays.html
#[test]
fn arrays_page() {
    let event = json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "111122223333",
        "time": "2017-12-22T18:43:48Z",
        "region": "us-west-1",
        "resources": [
            "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
            "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f",
            "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"
        ],
        "detail": {"instance-id": "i-b188560f", "state": "pending"}
    });
    check(&[
        // The intersection of the pattern's and the event's arrays is not empty.
        (
            json!({"resources": [
                "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
                "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f",
                "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"]}),
            event.clone(),
            true,
        ),
        (
            json!({"resources": ["arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f",
                                 "arn:aws:ec2:us-east-1:000000000000:instance/i-b188560f"]}),
            event.clone(),
            true,
        ),
        (
            json!({"resources": ["arn:aws:ec2:us-east-1:000000000000:instance/i-b188560f"]}),
            event.clone(),
            false,
        ),
    ]);
    // Arrays of objects: a nested pattern matches when one element matches.
    check(&[
        (
            json!({"detail": {"items": {"name": ["b"]}}}),
            json!({"detail": {"items": [{"name": "a"}, {"name": "b"}]}}),
            true,
        ),
        (
            json!({"detail": {"items": {"name": ["c"]}}}),
            json!({"detail": {"items": [{"name": "a"}, {"name": "b"}]}}),
            false,
        ),
        // Both fields must come from the same element.
        (
            json!({"detail": {"items": {"name": ["a"], "size": [2]}}}),
            json!({"detail": {"items": [{"name": "a", "size": 1}, {"name": "b", "size": 2}]}}),
            false,
        ),
    ]);
}

// https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-content-based-filtering.html
// ("Prefix matching", "Prefix matching while ignoring case", "Suffix matching",
// "Suffix matching while ignoring case")
#[test]
fn prefix_and_suffix() {
    check(&[
        (
            json!({"time": [{"prefix": "2017-10-02"}]}),
            json!({"time": "2017-10-02T18:43:48Z"}),
            true,
        ),
        (
            json!({"time": [{"prefix": "2017-10-02"}]}),
            json!({"time": "2017-10-03T18:43:48Z"}),
            false,
        ),
        (
            json!({"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}}),
            json!({"detail": {"service": "EventBridge"}}),
            true,
        ),
        (
            json!({"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}}),
            json!({"detail": {"service": "eventbridge"}}),
            true,
        ),
        (
            json!({"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}}),
            json!({"detail": {"service": "Event-Bridge"}}),
            false,
        ),
        (
            json!({"FileName": [{"suffix": ".png"}]}),
            json!({"FileName": "image.png"}),
            true,
        ),
        (
            json!({"FileName": [{"suffix": ".png"}]}),
            json!({"FileName": "image.PNG"}),
            false,
        ),
        (
            json!({"detail": {"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}}),
            json!({"detail": {"FileName": "image.PNG"}}),
            true,
        ),
        // Prefix applies to strings only.
        (
            json!({"detail": {"n": [{"prefix": "1"}]}}),
            json!({"detail": {"n": 123}}),
            false,
        ),
    ]);
}

// Same page: "Anything-but matching" and its prefix, suffix, ignore-case and
// wildcard forms.
#[test]
fn anything_but() {
    check(&[
        (
            json!({"detail": {"state": [{"anything-but": "initializing"}]}}),
            json!({"detail": {"state": "running"}}),
            true,
        ),
        (
            json!({"detail": {"state": [{"anything-but": "initializing"}]}}),
            json!({"detail": {"state": "initializing"}}),
            false,
        ),
        // anything-but needs the field to be there.
        (
            json!({"detail": {"state": [{"anything-but": "initializing"}]}}),
            json!({"detail": {}}),
            false,
        ),
        (
            json!({"detail": {"x-limit": [{"anything-but": 123}]}}),
            json!({"detail": {"x-limit": 124}}),
            true,
        ),
        (
            json!({"detail": {"x-limit": [{"anything-but": 123}]}}),
            json!({"detail": {"x-limit": 123}}),
            false,
        ),
        (
            json!({"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}),
            json!({"detail": {"state": "overloaded"}}),
            false,
        ),
        (
            json!({"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}),
            json!({"detail": {"state": "running"}}),
            true,
        ),
        (
            json!({"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}),
            json!({"detail": {"x-limit": 200}}),
            false,
        ),
        (
            json!({"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}),
            json!({"detail": {"state": "initializing"}}),
            false,
        ),
        (
            json!({"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}),
            json!({"detail": {"state": "running"}}),
            true,
        ),
        (
            json!({"detail": {"FileName": [{"anything-but": {"suffix": ".txt"}}]}}),
            json!({"detail": {"FileName": "notes.txt"}}),
            false,
        ),
        (
            json!({"detail": {"FileName": [{"anything-but": {"suffix": ".txt"}}]}}),
            json!({"detail": {"FileName": "photo.png"}}),
            true,
        ),
        (
            json!({"detail": {"state": [{"anything-but": {"equals-ignore-case": "initializing"}}]}}),
            json!({"detail": {"state": "INITIALIZING"}}),
            false,
        ),
        (
            json!({"detail": {"state": [{"anything-but": {"equals-ignore-case": ["Stopped", "OverLoaded"]}}]}}),
            json!({"detail": {"state": "overloaded"}}),
            false,
        ),
        (
            json!({"detail": {"state": [{"anything-but": {"equals-ignore-case": ["Stopped", "OverLoaded"]}}]}}),
            json!({"detail": {"state": "running"}}),
            true,
        ),
        (
            json!({"detail": {"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}}),
            json!({"detail": {"FilePath": "/usr/lib/libc.so"}}),
            false,
        ),
        (
            json!({"detail": {"FilePath": [{"anything-but": {"wildcard": ["*/lib/*", "*/bin/*"]}}]}}),
            json!({"detail": {"FilePath": "/home/user/notes.txt"}}),
            true,
        ),
    ]);
}

// Same page: "Numeric matching".
#[test]
fn numeric() {
    let pattern = json!({"detail": {
        "c-count": [{"numeric": [">", 0, "<=", 5]}],
        "d-count": [{"numeric": ["<", 10]}],
        "x-limit": [{"numeric": ["=", 3.018e2]}]
    }});
    check(&[
        (pattern.clone(), filtering_event(), true),
        (
            pattern.clone(),
            json!({"detail": {"c-count": 0, "d-count": 3, "x-limit": 301.8}}),
            false,
        ),
        (
            pattern.clone(),
            json!({"detail": {"c-count": 5, "d-count": 10, "x-limit": 301.8}}),
            false,
        ),
        (
            pattern,
            json!({"detail": {"c-count": 5, "d-count": 3, "x-limit": 301.9}}),
            false,
        ),
        // Numeric filters match numbers only, not numeric strings.
        (
            json!({"detail": {"n": [{"numeric": [">=", 10]}]}}),
            json!({"detail": {"n": "15"}}),
            false,
        ),
        (
            json!({"detail": {"n": [{"numeric": [">=", 10]}]}}),
            json!({"detail": {"n": 10}}),
            true,
        ),
        (
            json!({"detail": {"n": [{"numeric": [">", 10]}]}}),
            json!({"detail": {"n": 10}}),
            false,
        ),
    ]);
}

// Same page: "IP address matching".
#[test]
fn cidr() {
    check(&[
        (
            json!({"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}}),
            json!({"detail": {"sourceIPAddress": "10.0.0.255"}}),
            true,
        ),
        (
            json!({"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}}),
            json!({"detail": {"sourceIPAddress": "10.0.1.1"}}),
            false,
        ),
        (
            json!({"detail": {"sourceIPAddress": [{"cidr": "2001:db8::/64"}]}}),
            json!({"detail": {"sourceIPAddress": "2001:db8::ff00:42:8329"}}),
            true,
        ),
        (
            json!({"detail": {"sourceIPAddress": [{"cidr": "2001:db8::/64"}]}}),
            json!({"detail": {"sourceIPAddress": "2001:db9::1"}}),
            false,
        ),
        // Not an address: no match.
        (
            json!({"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}}),
            json!({"detail": {"sourceIPAddress": "example.com"}}),
            false,
        ),
    ]);
}

// Same page: "Exists matching".
#[test]
fn exists() {
    check(&[
        (
            json!({"detail": {"state": [{"exists": true}]}}),
            filtering_event(),
            true,
        ),
        (
            json!({"detail": {"state": [{"exists": false}]}}),
            filtering_event(),
            false,
        ),
        (
            json!({"detail": {"color": [{"exists": false}]}}),
            filtering_event(),
            true,
        ),
        (
            json!({"detail": {"color": [{"exists": true}]}}),
            filtering_event(),
            false,
        ),
        // exists works on leaf nodes only: an object is not a leaf.
        (
            json!({"detail": [{"exists": true}]}),
            filtering_event(),
            false,
        ),
        // A parent that is missing: the leaf does not exist either.
        (
            json!({"detail": {"nested": {"x": [{"exists": false}]}}}),
            filtering_event(),
            true,
        ),
    ]);
}

// Same page: "Matching null values and empty strings".
#[test]
fn null_and_empty_strings() {
    let event = json!({"detail": {"eventVersion": "", "responseElements": null}});
    check(&[
        (
            json!({"detail": {"eventVersion": [""]}}),
            event.clone(),
            true,
        ),
        (
            json!({"detail": {"responseElements": [null]}}),
            event.clone(),
            true,
        ),
        // null is not an empty string and the other way round.
        (
            json!({"detail": {"eventVersion": [null]}}),
            event.clone(),
            false,
        ),
        (
            json!({"detail": {"responseElements": [""]}}),
            event.clone(),
            false,
        ),
        // null is a value: the field exists.
        (
            json!({"detail": {"responseElements": [{"exists": true}]}}),
            event,
            true,
        ),
    ]);
}

// Same page: "Equals-ignore-case matching" and "Wildcard matching".
#[test]
fn equals_ignore_case_and_wildcard() {
    check(&[
        (
            json!({"detail-type": [{"equals-ignore-case": "ec2 instance state-change notification"}]}),
            ec2_event(),
            true,
        ),
        (
            json!({"detail-type": [{"equals-ignore-case": "ec2 instance state-change"}]}),
            ec2_event(),
            false,
        ),
        (
            json!({"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}),
            json!({"EventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/orders"}),
            true,
        ),
        (
            json!({"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}),
            json!({"EventBusArn": "arn:aws:events:us-west-2:123456789012:event-bus/orders"}),
            false,
        ),
        (
            json!({"detail": {"path": [{"wildcard": "dir/*.png"}]}}),
            json!({"detail": {"path": "dir/image.png"}}),
            true,
        ),
        (
            json!({"detail": {"path": [{"wildcard": "dir/*.png"}]}}),
            json!({"detail": {"path": "dir/image.jpg"}}),
            false,
        ),
        // An escaped star is a literal star.
        (
            json!({"detail": {"path": [{"wildcard": "a\\*b"}]}}),
            json!({"detail": {"path": "a*b"}}),
            true,
        ),
        (
            json!({"detail": {"path": [{"wildcard": "a\\*b"}]}}),
            json!({"detail": {"path": "axxb"}}),
            false,
        ),
    ]);
}

// Same page: "Complex example with multiple matching" and "Or matching".
#[test]
fn combined_and_or() {
    let complex = json!({
        "time": [{"prefix": "2017-10-02"}],
        "detail": {
            "state": [{"anything-but": "initializing"}],
            "c-count": [{"numeric": [">", 0, "<=", 5]}],
            "d-count": [{"numeric": ["<", 10]}],
            "x-limit": [{"anything-but": [100, 200, 300]}]
        }
    });
    let or = json!({"detail": {"$or": [
        {"c-count": [{"numeric": [">", 0, "<=", 5]}]},
        {"d-count": [{"numeric": ["<", 10]}]},
        {"x-limit": [{"numeric": ["=", 3.018e2]}]}
    ]}});
    let top_or = json!({"source": ["aws.autoscaling"], "$or": [
        {"detail-type": ["EC2 Instance Launch Successful"]},
        {"detail": {"state": ["stopped"]}}
    ]});
    check(&[
        (complex, filtering_event(), true),
        (or.clone(), filtering_event(), true),
        (
            or.clone(),
            json!({"detail": {"c-count": 9, "d-count": 11, "x-limit": 301.8}}),
            true,
        ),
        (
            or,
            json!({"detail": {"c-count": 9, "d-count": 11, "x-limit": 1}}),
            false,
        ),
        (top_or.clone(), filtering_event(), true),
        (
            top_or,
            json!({"source": "aws.autoscaling", "detail-type": "Other", "detail": {"state": "running"}}),
            false,
        ),
    ]);
}

/// The routing case of Lambda destinations on the default bus: a Lambda
/// destination event carries `source` `lambda`, `detail-type`
/// `Lambda Function Invocation Result - Success` and the function's answer
/// in `detail.responsePayload`
/// (<https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html>).
#[test]
fn lambda_destination_routing() {
    let pattern = json!({"source": ["lambda"],
        "detail-type": ["Lambda Function Invocation Result - Success"],
        "detail": {"responsePayload": {"processedAmount": [{"numeric": [">=", 10000]}]}}});
    let event = |amount: i64| {
        json!({
            "version": "0", "id": "a", "detail-type": "Lambda Function Invocation Result - Success",
            "source": "lambda", "account": "123456789012", "time": "2024-01-01T00:00:00Z",
            "region": "us-east-1", "resources": ["arn:aws:lambda:us-east-1:123456789012:function:pay:$LATEST"],
            "detail": {"version": "1.0", "requestContext": {"condition": "Success"},
                       "responsePayload": {"processedAmount": amount}}
        })
    };
    check(&[
        (pattern.clone(), event(15000), true),
        (pattern.clone(), event(10000), true),
        (pattern, event(500), false),
    ]);
}

#[test]
fn invalid_patterns_are_refused_with_a_reason() {
    for (text, needle) in [
        ("not json", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ("{}", "empty"),
        (r#"{"source": "aws.ec2"}"#, "must be an object or an array"),
        (r#"{"source": []}"#, "empty array"),
        (r#"{"source": [["a"]]}"#, "not arrays"),
        (
            r#"{"source": [{"foo": "a"}]}"#,
            "unrecognized match type foo",
        ),
        (
            r#"{"source": [{"prefix": 1}]}"#,
            "prefix match pattern must be a string",
        ),
        (
            r#"{"a": [{"numeric": [">", "x"]}]}"#,
            "value of > must be numeric",
        ),
        (
            r#"{"a": [{"numeric": ["!", 1]}]}"#,
            "unrecognized numeric range operator",
        ),
        (
            r#"{"a": [{"numeric": [">", 5, "<", 1]}]}"#,
            "bad numeric range",
        ),
        (
            r#"{"a": [{"numeric": [">", 1, ">", 2]}]}"#,
            "two lower bounds",
        ),
        (
            r#"{"a": [{"numeric": ["=", 1, "<", 2]}]}"#,
            "cannot be combined",
        ),
        (
            r#"{"a": [{"numeric": [">", 1e10]}]}"#,
            "between -5.0E9 and 5.0E9",
        ),
        (r#"{"a": [{"exists": "yes"}]}"#, "either true or false"),
        (r#"{"a": [{"cidr": "10.0.0.0/33"}]}"#, "CIDR"),
        (r#"{"a": [{"cidr": "banana"}]}"#, "CIDR"),
        (r#"{"a": [{"wildcard": "a**b"}]}"#, "consecutive wildcard"),
        (
            r#"{"a": [{"anything-but": ["a", 1]}]}"#,
            "all values must be strings",
        ),
        (
            r#"{"a": [{"anything-but": {"foo": "x"}}]}"#,
            "anything-but must be",
        ),
        (
            r#"{"a": [{"prefix": "a", "suffix": "b"}]}"#,
            "exactly one key",
        ),
        (r#"{"$or": [{"a": ["x"]}]}"#, "at least 2"),
        (r#"{"$or": {"a": ["x"]}}"#, "must be an array of objects"),
    ] {
        let err = Pattern::parse(text).expect_err(text);
        assert!(
            err.starts_with("Event pattern is not valid. Reason: "),
            "{text}: {err}"
        );
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "{text}: {err} (expected to mention {needle})"
        );
    }
    let long = format!(r#"{{"source": ["{}"]}}"#, "a".repeat(MAX_PATTERN_CHARS));
    assert!(Pattern::parse(&long).is_err());
}

#[test]
fn index_key_prefers_source() {
    let p = Pattern::parse(r#"{"detail-type": ["x"], "source": ["a", "b"]}"#).unwrap();
    assert_eq!(p.index_key(), Some(("source", vec!["a", "b"])));
    let p = Pattern::parse(r#"{"source": [{"prefix": "a"}], "detail-type": ["x"]}"#).unwrap();
    assert_eq!(p.index_key(), Some(("detail-type", vec!["x"])));
    let p = Pattern::parse(r#"{"source": [{"prefix": "a"}]}"#).unwrap();
    assert_eq!(p.index_key(), None);
}

proptest::proptest! {
    /// Any text: parsing never panics; a pattern that parses never panics
    /// when it matches.
    #[test]
    fn parse_and_match_never_panic(s in "[\\[\\]{}\":,a-z0-9<>=*.\\\\ -]{0,60}") {
        if let Ok(p) = Pattern::parse(&s) {
            let _ = p.matches(&filtering_event());
        }
    }
}
