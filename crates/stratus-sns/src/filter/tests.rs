//! Filter policy cases from AWS's "Amazon SNS message filtering" pages
//! (example filter policies, string / numeric value matching, key
//! matching, anything-but, prefix, suffix, equals-ignore-case, IP address
//! matching, AND/OR logic, payload-based filtering, constraints).

use super::*;

fn attrs(list: &[(&str, &str, &str)]) -> BTreeMap<String, MessageAttribute> {
    list.iter()
        .map(|(k, t, v)| {
            (
                k.to_string(),
                MessageAttribute {
                    data_type: t.to_string(),
                    string_value: Some(v.to_string()),
                    binary_value: None,
                },
            )
        })
        .collect()
}

/// The message attributes of AWS's example transaction.
fn transaction() -> BTreeMap<String, MessageAttribute> {
    attrs(&[
        (
            "customer_interests",
            "String.Array",
            r#"["soccer", "rugby", "hockey"]"#,
        ),
        ("store", "String", "example_corp"),
        ("event", "String", "order_placed"),
        ("price_usd", "Number", "210.75"),
    ])
}

/// The same transaction as a message body.
const TRANSACTION_BODY: &str = r#"{"customer_interests": ["soccer", "rugby", "hockey"], "store": "example_corp", "event": "order_placed", "price_usd": 210.75}"#;

fn attr_policy(p: &str) -> FilterPolicy {
    FilterPolicy::parse(p, Scope::MessageAttributes).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn body_policy(p: &str) -> FilterPolicy {
    FilterPolicy::parse(p, Scope::MessageBody).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn one(name: &str, t: &str, v: &str) -> BTreeMap<String, MessageAttribute> {
    attrs(&[(name, t, v)])
}

#[test]
fn example_policy_accepts_the_example_transaction() {
    let p = r#"{
        "store": ["example_corp"],
        "event": [{"anything-but": "order_cancelled"}],
        "customer_interests": ["rugby", "football", "baseball"],
        "price_usd": [{"numeric": [">=", 100]}]
    }"#;
    assert!(attr_policy(p).matches_attributes(&transaction()));
    assert!(body_policy(p).matches_body(TRANSACTION_BODY));
}

#[test]
fn example_policy_rejects_other_transactions() {
    let p = r#"{
        "store": ["example_corp"],
        "event": [{"anything-but": "order_cancelled"}],
        "customer_interests": ["rugby", "football", "baseball"],
        "price_usd": [{"numeric": [">=", 100]}]
    }"#;
    let mut a = transaction();
    a.insert("event".into(), MessageAttribute::string("order_cancelled"));
    assert!(!attr_policy(p).matches_attributes(&a));
    let mut a = transaction();
    a.insert(
        "price_usd".into(),
        MessageAttribute {
            data_type: "Number".into(),
            string_value: Some("99.99".into()),
            binary_value: None,
        },
    );
    assert!(!attr_policy(p).matches_attributes(&a));
    let body = TRANSACTION_BODY.replace("example_corp", "other_corp");
    assert!(!body_policy(p).matches_body(&body));
}

#[test]
fn exact_string_values_are_case_sensitive_or_lists() {
    let p = attr_policy(r#"{"customer_interests": ["rugby", "tennis"]}"#);
    assert!(p.matches_attributes(&one("customer_interests", "String", "rugby")));
    assert!(p.matches_attributes(&one("customer_interests", "String", "tennis")));
    assert!(!p.matches_attributes(&one("customer_interests", "String", "Rugby")));
    assert!(!p.matches_attributes(&one("customer_interests", "String", "baseball")));
    // String.Array: any element.
    assert!(p.matches_attributes(&one(
        "customer_interests",
        "String.Array",
        r#"["baseball", "rugby"]"#
    )));
    assert!(!p.matches_attributes(&one(
        "customer_interests",
        "String.Array",
        r#"["baseball", "basketball"]"#
    )));
}

#[test]
fn prefix_suffix_and_equals_ignore_case() {
    let p = attr_policy(r#"{"customer_interests": [{"prefix": "bas"}]}"#);
    assert!(p.matches_attributes(&one("customer_interests", "String", "baseball")));
    assert!(p.matches_attributes(&one("customer_interests", "String", "basketball")));
    assert!(!p.matches_attributes(&one("customer_interests", "String", "rugby")));
    let p = attr_policy(r#"{"customer_interests": [{"suffix": "ball"}]}"#);
    assert!(p.matches_attributes(&one("customer_interests", "String", "baseball")));
    assert!(!p.matches_attributes(&one("customer_interests", "String", "rugby")));
    let p = attr_policy(r#"{"customer_interests": [{"equals-ignore-case": "tennis"}]}"#);
    assert!(p.matches_attributes(&one("customer_interests", "String", "TENNIS")));
    assert!(p.matches_attributes(&one("customer_interests", "String", "Tennis")));
    assert!(!p.matches_attributes(&one("customer_interests", "String", "tenis")));
}

#[test]
fn anything_but_values_and_prefix() {
    let p = attr_policy(r#"{"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}"#);
    assert!(p.matches_attributes(&one("customer_interests", "String", "baseball")));
    assert!(!p.matches_attributes(&one("customer_interests", "String", "rugby")));
    assert!(!p.matches_attributes(&one("customer_interests", "String", "tennis")));
    // A number in anything-but excludes that number.
    let p = attr_policy(r#"{"price": [{"anything-but": [100, 500]}]}"#);
    assert!(p.matches_attributes(&one("price", "Number", "300")));
    assert!(!p.matches_attributes(&one("price", "Number", "100")));
    let p = attr_policy(r#"{"event": [{"anything-but": {"prefix": "order-"}}]}"#);
    assert!(p.matches_attributes(&one("event", "String", "data-entry")));
    assert!(!p.matches_attributes(&one("event", "String", "order-cancelled")));
    let p = attr_policy(r#"{"event": [{"anything-but": {"suffix": "-cancelled"}}]}"#);
    assert!(p.matches_attributes(&one("event", "String", "order-placed")));
    assert!(!p.matches_attributes(&one("event", "String", "order-cancelled")));
}

#[test]
fn numeric_matching() {
    let p = attr_policy(r#"{"price_usd": [{"numeric": ["=", 301.5]}]}"#);
    assert!(p.matches_attributes(&one("price_usd", "Number", "301.5")));
    assert!(p.matches_attributes(&one("price_usd", "Number", "3.015e2")));
    assert!(!p.matches_attributes(&one("price_usd", "Number", "301.6")));
    let p = attr_policy(r#"{"price_usd": [{"numeric": ["<", 0]}]}"#);
    assert!(p.matches_attributes(&one("price_usd", "Number", "-1")));
    assert!(!p.matches_attributes(&one("price_usd", "Number", "0")));
    let p = attr_policy(r#"{"price_usd": [{"numeric": [">", 0, "<=", 150]}]}"#);
    assert!(p.matches_attributes(&one("price_usd", "Number", "150")));
    assert!(p.matches_attributes(&one("price_usd", "Number", "0.00001")));
    assert!(!p.matches_attributes(&one("price_usd", "Number", "0")));
    assert!(!p.matches_attributes(&one("price_usd", "Number", "150.00001")));
    // Exact numeric values compare as numbers.
    let p = attr_policy(r#"{"price_usd": [210.75]}"#);
    assert!(p.matches_attributes(&one("price_usd", "Number", "210.750")));
    // A String attribute is not compared numerically.
    let p = attr_policy(r#"{"price_usd": [{"numeric": [">", 0]}]}"#);
    assert!(!p.matches_attributes(&one("price_usd", "String", "5")));
}

#[test]
fn key_matching_with_exists() {
    let p = attr_policy(r#"{"store": [{"exists": true}]}"#);
    assert!(p.matches_attributes(&attrs(&[
        ("store", "String", "fans"),
        (
            "customer_interests",
            "String.Array",
            r#"["baseball", "basketball"]"#
        ),
    ])));
    assert!(!p.matches_attributes(&one(
        "customer_interests",
        "String.Array",
        r#"["baseball", "basketball"]"#
    )));
    let p = attr_policy(r#"{"store": [{"exists": false}]}"#);
    assert!(!p.matches_attributes(&one("store", "String", "fans")));
    assert!(p.matches_attributes(&one(
        "customer_interests",
        "String.Array",
        r#"["baseball", "basketball"]"#
    )));
    // "exists": false matches only when at least one attribute is present.
    assert!(!p.matches_attributes(&BTreeMap::new()));
    // In the body scope.
    let p = body_policy(r#"{"store": [{"exists": true}]}"#);
    assert!(
        p.matches_body(r#"{"store": "fans", "customer_interests": ["baseball", "basketball"]}"#)
    );
    assert!(!p.matches_body(r#"{"customer_interests": ["baseball", "basketball"]}"#));
    let p = body_policy(r#"{"store": [{"exists": false}]}"#);
    assert!(p.matches_body(r#"{"customer_interests": ["baseball", "basketball"]}"#));
}

#[test]
fn ip_address_matching() {
    let p = attr_policy(r#"{"source_ip": [{"cidr": "10.0.0.0/24"}]}"#);
    assert!(p.matches_attributes(&one("source_ip", "String", "10.0.0.0")));
    assert!(p.matches_attributes(&one("source_ip", "String", "10.0.0.255")));
    assert!(!p.matches_attributes(&one("source_ip", "String", "10.1.1.0")));
    assert!(!p.matches_attributes(&one("source_ip", "String", "not an ip")));
    let p = attr_policy(r#"{"source_ip": [{"cidr": "2001:db8::/32"}]}"#);
    assert!(p.matches_attributes(&one("source_ip", "String", "2001:db8:1::1")));
    assert!(!p.matches_attributes(&one("source_ip", "String", "2001:db9::1")));
}

#[test]
fn and_between_keys_or_between_values_and_dollar_or() {
    let p =
        attr_policy(r#"{"customer_interests": ["rugby"], "price_usd": [{"numeric": [">", 100]}]}"#);
    assert!(p.matches_attributes(&attrs(&[
        ("customer_interests", "String", "rugby"),
        ("price_usd", "Number", "150")
    ])));
    assert!(!p.matches_attributes(&attrs(&[
        ("customer_interests", "String", "rugby"),
        ("price_usd", "Number", "50")
    ])));
    assert!(!p.matches_attributes(&one("customer_interests", "String", "rugby")));
    let p = attr_policy(
        r#"{"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]}"#,
    );
    assert!(p.matches_attributes(&attrs(&[
        ("source", "String", "aws.cloudwatch"),
        ("metricName", "String", "CPUUtilization")
    ])));
    assert!(p.matches_attributes(&attrs(&[
        ("source", "String", "aws.cloudwatch"),
        ("namespace", "String", "AWS/EC2")
    ])));
    assert!(!p.matches_attributes(&attrs(&[
        ("source", "String", "aws.cloudwatch"),
        ("namespace", "String", "AWS/S3")
    ])));
    assert!(!p.matches_attributes(&attrs(&[
        ("source", "String", "aws.other"),
        ("metricName", "String", "CPUUtilization")
    ])));
}

#[test]
fn payload_filtering_matches_nested_keys() {
    let p = body_policy(r#"{"order": {"customer": {"tier": ["gold", "platinum"]}}}"#);
    assert!(p.matches_body(r#"{"order": {"customer": {"tier": "gold", "id": 7}}}"#));
    assert!(!p.matches_body(r#"{"order": {"customer": {"tier": "silver"}}}"#));
    assert!(!p.matches_body(r#"{"tier": "gold"}"#));
    // Arrays of objects: any element.
    assert!(p.matches_body(
        r#"{"order": [{"customer": {"tier": "bronze"}}, {"customer": {"tier": "platinum"}}]}"#
    ));
    // A body that is not JSON never matches.
    assert!(!p.matches_body("gold"));
    // Booleans and null in the body.
    let p = body_policy(r#"{"paid": [true], "note": [null]}"#);
    assert!(p.matches_body(r#"{"paid": true, "note": null}"#));
    assert!(!p.matches_body(r#"{"paid": "true", "note": null}"#));
    // $or with nested keys.
    let p = body_policy(r#"{"a": {"$or": [{"b": ["x"]}, {"c": ["y"]}]}}"#);
    assert!(p.matches_body(r#"{"a": {"c": "y"}}"#));
    assert!(!p.matches_body(r#"{"a": {"c": "x"}}"#));
}

#[test]
fn attribute_scope_ignores_binary_attributes() {
    let p = attr_policy(r#"{"blob": [{"exists": true}]}"#);
    let mut a = BTreeMap::new();
    a.insert(
        "blob".to_string(),
        MessageAttribute {
            data_type: "Binary".into(),
            string_value: None,
            binary_value: Some(vec![1, 2]),
        },
    );
    assert!(!p.matches_attributes(&a));
}

fn error_of(p: &str, scope: Scope) -> AwsError {
    FilterPolicy::parse(p, scope).expect_err(p)
}

#[test]
fn invalid_policies_are_invalid_parameter() {
    let cases = [
        (
            r#"{"a": ["x"]"#,
            Scope::MessageAttributes,
            "failed to parse JSON",
        ),
        (
            r#"["x"]"#,
            Scope::MessageAttributes,
            "must be a JSON object",
        ),
        (
            r#"{"a": "x"}"#,
            Scope::MessageAttributes,
            "must be an object or an array",
        ),
        (
            r#"{"a": []}"#,
            Scope::MessageAttributes,
            "Empty arrays are not allowed",
        ),
        (
            r#"{"a": [{"wildcard": "x*"}]}"#,
            Scope::MessageAttributes,
            "Unrecognized match type wildcard",
        ),
        (
            r#"{"a": [{"prefix": 1}]}"#,
            Scope::MessageAttributes,
            "prefix match pattern must be a string",
        ),
        (
            r#"{"a": [{"exists": "yes"}]}"#,
            Scope::MessageAttributes,
            "exists match pattern must be either true or false",
        ),
        (
            r#"{"a": [{"numeric": ["!", 1]}]}"#,
            Scope::MessageAttributes,
            "Unrecognized numeric range operator",
        ),
        (
            r#"{"a": [{"numeric": [">", "x"]}]}"#,
            Scope::MessageAttributes,
            "must be numeric",
        ),
        (
            r#"{"a": [{"numeric": [">", 10, "<", 5]}]}"#,
            Scope::MessageAttributes,
            "Bottom must be less than top",
        ),
        (
            r#"{"a": [{"numeric": [">", 2000000000]}]}"#,
            Scope::MessageAttributes,
            "between -1.0E9 and 1.0E9",
        ),
        (
            r#"{"a": [{"cidr": "10.0.0.0"}]}"#,
            Scope::MessageAttributes,
            "Malformed CIDR",
        ),
        (
            r#"{"a": [{"cidr": "10.0.0.0/40"}]}"#,
            Scope::MessageAttributes,
            "Malformed CIDR",
        ),
        (
            r#"{"a": [{"anything-but": [true]}]}"#,
            Scope::MessageAttributes,
            "anything but",
        ),
        (
            r#"{"a": {"b": ["c"]}}"#,
            Scope::MessageAttributes,
            "does not support nested filter policy",
        ),
        (
            r#"{"a": [{"prefix": "x", "suffix": "y"}]}"#,
            Scope::MessageAttributes,
            "Only one key",
        ),
        (
            r#"{"$or": [{"a": ["x"]}]}"#,
            Scope::MessageAttributes,
            "$or",
        ),
    ];
    for (p, scope, want) in cases {
        let e = error_of(p, scope);
        assert_eq!(e.code, "InvalidParameter", "{p}");
        assert_eq!(e.status, 400, "{p}");
        assert!(
            e.message.starts_with("Invalid parameter: FilterPolicy: "),
            "{p}: {}",
            e.message
        );
        assert!(e.message.contains(want), "{p}: {}", e.message);
    }
}

#[test]
fn constraints_five_keys_and_150_combinations() {
    let five = r#"{"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"]}"#;
    assert!(FilterPolicy::parse(five, Scope::MessageAttributes).is_ok());
    let six = r#"{"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"], "f": ["1"]}"#;
    let e = error_of(six, Scope::MessageAttributes);
    assert!(e.message.contains("more than 5 keys"), "{}", e.message);
    // Nested keys count as keys too.
    let nested =
        r#"{"a": {"b": ["1"], "c": ["1"], "d": ["1"]}, "e": ["1"], "f": ["1"], "g": ["1"]}"#;
    assert!(FilterPolicy::parse(nested, Scope::MessageBody).is_err());
    // AWS's example of the combination count: 3 x 2 x 5 ... values multiply.
    let ok = r#"{"a": ["1","2","3","4","5"], "b": ["1","2","3","4","5"], "c": ["1","2","3","4","5","6"]}"#;
    assert!(
        FilterPolicy::parse(ok, Scope::MessageAttributes).is_ok(),
        "150 combinations"
    );
    let too = r#"{"a": ["1","2","3","4","5"], "b": ["1","2","3","4","5"], "c": ["1","2","3","4","5","6","7"]}"#;
    let e = error_of(too, Scope::MessageAttributes);
    assert!(e.message.contains("too complex"), "{}", e.message);
}

#[test]
fn a_message_without_attributes_does_not_match_an_attribute_policy() {
    let p = attr_policy(r#"{"store": [{"anything-but": "x"}]}"#);
    assert!(!p.matches_attributes(&BTreeMap::new()));
    // anything-but needs the key to be present.
    assert!(!p.matches_attributes(&one("other", "String", "y")));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// JSON values with the keys and operators filter policies use.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-2e9f64..2e9).prop_map(|f| serde_json::json!(f)),
            "[a-z0-9./-]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            let key = prop_oneof![
                Just("prefix".to_string()),
                Just("suffix".to_string()),
                Just("anything-but".to_string()),
                Just("numeric".to_string()),
                Just("exists".to_string()),
                Just("cidr".to_string()),
                Just("equals-ignore-case".to_string()),
                Just("$or".to_string()),
                Just("<".to_string()),
                "[a-c]{1,2}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn parsing_and_matching_never_panic(policy in json(), body in json(), text in ".{0,40}") {
            let text_policy = policy.to_string();
            for scope in [Scope::MessageAttributes, Scope::MessageBody] {
                let _ = FilterPolicy::parse(&text, scope);
                if let Ok(p) = FilterPolicy::parse(&text_policy, scope) {
                    let _ = p.matches_body(&body.to_string());
                    let mut a = BTreeMap::new();
                    if let Value::Object(m) = &body {
                        for (k, v) in m {
                            a.insert(k.clone(), MessageAttribute::string(v.to_string()));
                            a.insert(format!("{k}n"), MessageAttribute {
                                data_type: "Number".into(),
                                string_value: Some(v.to_string()),
                                binary_value: None,
                            });
                            a.insert(format!("{k}a"), MessageAttribute {
                                data_type: "String.Array".into(),
                                string_value: Some(v.to_string()),
                                binary_value: None,
                            });
                        }
                    }
                    let _ = p.matches_attributes(&a);
                } else if let Err(e) = FilterPolicy::parse(&text_policy, scope) {
                    prop_assert_eq!(e.code.as_str(), "InvalidParameter");
                    prop_assert!(e.message.starts_with("Invalid parameter: FilterPolicy: "));
                }
            }
        }

        #[test]
        fn exact_string_policies_match_exactly(v in "[a-z]{1,8}", w in "[a-z]{1,8}") {
            let p = FilterPolicy::parse(&serde_json::json!({"k": [v.clone()]}).to_string(),
                                        Scope::MessageAttributes).unwrap();
            let a = |s: &str| {
                let mut m = BTreeMap::new();
                m.insert("k".to_string(), MessageAttribute::string(s));
                m
            };
            prop_assert!(p.matches_attributes(&a(&v)));
            prop_assert_eq!(p.matches_attributes(&a(&w)), v == w);
        }
    }
}

#[test]
fn nested_or_from_the_complexity_example() {
    // AWS's "$or" complexity example: (4 x 2) + (4 x 1 x 2) + (4 x 1 x 3) = 28
    // combinations, at most 3 keys in any one of them.
    let text = r#"{
        "source": ["aws.cloudwatch", "aws.events", "aws.test", "aws.test2"],
        "$or": [
            {"metricName": ["CPUUtilization", "ReadLatency"]},
            {"metricType": ["MetricType"],
             "$or": [{"metricId": [1234, 4321]}, {"spaceId": [1000, 2000, 3000]}]}
        ]
    }"#;
    let p = attr_policy(text);
    assert_eq!(combinations(&p.root), 28);
    assert_eq!(max_keys(&p.root), 3);
    assert!(p.matches_attributes(&attrs(&[
        ("source", "String", "aws.events"),
        ("metricType", "String", "MetricType"),
        ("spaceId", "Number", "2000"),
    ])));
    assert!(!p.matches_attributes(&attrs(&[
        ("source", "String", "aws.events"),
        ("metricType", "String", "MetricType"),
        ("spaceId", "Number", "4000"),
    ])));
    assert!(p.matches_attributes(&attrs(&[
        ("source", "String", "aws.test"),
        ("metricName", "String", "ReadLatency"),
    ])));
}
