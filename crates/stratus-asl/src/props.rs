//! Property tests for the parts that read untrusted text: the definition
//! parser and validator, JSONPath parsing and evaluation, payload
//! templates, and the interpreter on generated machines. Every input must
//! give a result or a States.* error / validation diagnostic, never a
//! panic, and recursion stays bounded on deeply nested input.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::interpreter::tests_support::{TestHost, info};
use crate::path::Path;
use crate::{StateMachine, execute, validate};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[a-z$.{}%]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z$.]{1,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn path_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("."),
            Just(".."),
            Just("["),
            Just("]"),
            Just("*"),
            Just("?("),
            Just(")"),
            Just("@"),
            Just("'"),
            Just("a"),
            Just("b"),
            Just("0"),
            Just("-1"),
            Just(":"),
            Just(","),
            Just("=="),
            Just("<"),
            Just("!"),
            Just("&&"),
            Just("||"),
            Just(" "),
            Just("$"),
            Just("length()"),
            Just("\""),
            Just("é"),
        ],
        0..24,
    )
    .prop_map(|parts| format!("${}", parts.concat()))
}

const STATE_FIELDS: &[&str] = &[
    "Type",
    "Next",
    "End",
    "InputPath",
    "OutputPath",
    "ResultPath",
    "Parameters",
    "ResultSelector",
    "Result",
    "Retry",
    "Catch",
    "Choices",
    "Default",
    "Seconds",
    "Timestamp",
    "SecondsPath",
    "Branches",
    "ItemProcessor",
    "Iterator",
    "ItemsPath",
    "MaxConcurrency",
    "Error",
    "Cause",
    "Resource",
    "TimeoutSeconds",
    "Assign",
    "Output",
    "Arguments",
    "QueryLanguage",
    "Bogus",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn path_parse_and_select_never_panic(p in path_text(), v in json_value()) {
        if let Ok(path) = Path::parse(&p) {
            let _ = path.select(&v);
            let _ = path.select_ref(&v);
            let _ = path.normalized();
            if path.is_reference() {
                let _ = crate::path::insert_result(v.clone(), &path, json!(1));
            }
        }
    }

    #[test]
    fn arbitrary_text_paths_never_panic(p in ".{0,40}") {
        let _ = Path::parse(&p);
    }

    #[test]
    fn validate_never_panics_on_arbitrary_json(v in json_value()) {
        let _ = validate(&v.to_string());
        let _ = validate(&json!({"StartAt": "A", "States": {"A": v}}).to_string());
    }

    #[test]
    fn validate_never_panics_on_mutated_states(
        fields in prop::collection::vec((0..STATE_FIELDS.len(), json_value()), 0..8),
        ty in prop_oneof![Just("Pass"), Just("Task"), Just("Choice"), Just("Wait"), Just("Map"), Just("Parallel"), Just("Fail"), Just("Succeed")],
        jsonata in any::<bool>(),
    ) {
        let mut s = serde_json::Map::new();
        s.insert("Type".into(), json!(ty));
        for (i, v) in fields {
            s.insert(STATE_FIELDS[i].into(), v);
        }
        let mut def = json!({"StartAt": "A", "States": {"A": s, "B": {"Type": "Succeed"}}});
        if jsonata {
            def["QueryLanguage"] = json!("JSONata");
        }
        let text = def.to_string();
        let diags = validate(&text);
        // Parse and validate agree on whether the definition is accepted.
        let errors = diags.iter().any(|d| d.severity == crate::Severity::Error);
        prop_assert_eq!(StateMachine::parse(&text).is_ok(), !errors);
    }

    #[test]
    fn generated_machines_run_to_an_end(
        steps in prop::collection::vec((0u8..6, path_text(), json_value()), 1..12),
        input in json_value(),
    ) {
        // A forward-only chain of states (no loops), each with a random
        // path or value; the run must end with an output or a failure.
        let n = steps.len();
        let mut states = serde_json::Map::new();
        for (i, (kind, p, v)) in steps.into_iter().enumerate() {
            let next = if i + 1 == n { json!(null) } else { json!(format!("S{}", i + 1)) };
            let mut s = match kind {
                0 => json!({"Type": "Pass", "InputPath": p}),
                1 => json!({"Type": "Pass", "Parameters": {"x.$": p, "y": v}}),
                2 => json!({"Type": "Pass", "Result": v, "ResultPath": p}),
                3 => json!({"Type": "Choice", "Choices": [{"Variable": p, "IsPresent": true, "Next": next.as_str().unwrap_or("S0")}], "Default": next.as_str().unwrap_or("S0")}),
                4 => json!({"Type": "Map", "ItemsPath": p, "ItemProcessor": {"StartAt": format!("M{i}"), "States": {format!("M{i}"): {"Type": "Pass", "End": true}}}}),
                _ => json!({"Type": "Pass", "OutputPath": p}),
            };
            if kind != 3 {
                if next.is_null() { s["End"] = json!(true); } else { s["Next"] = next.clone(); }
            }
            states.insert(format!("S{i}"), s);
        }
        if let Ok(m) = StateMachine::parse(&json!({"StartAt": "S0", "States": states}).to_string()) {
            let host = TestHost::new(|c| Ok(c.input.clone()));
            let r = futures::executor::block_on(execute(&m, input, &info(), &host));
            if let Err(f) = r {
                prop_assert!(f.error.starts_with("States."), "{:?}", f);
            }
        }
    }
}

#[test]
fn deeply_nested_input_is_refused_without_overflow() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(validate(&deep)[0].code, "INVALID_JSON_DESCRIPTION");
    let deep_obj = format!(
        "{{\"StartAt\":\"A\",\"States\":{{\"A\":{{\"Type\":\"Pass\",\"Result\":{}1{},\"End\":true}}}}}}",
        "{\"a\":".repeat(5000),
        "}".repeat(5000)
    );
    assert_eq!(validate(&deep_obj)[0].code, "INVALID_JSON_DESCRIPTION");
}

#[test]
fn deeply_nested_parallel_branches_are_too_deeply_nested_or_refused() {
    let mut inner = json!({"StartAt": "L", "States": {"L": {"Type": "Succeed"}}});
    for i in 0..40 {
        inner = json!({"StartAt": format!("P{i}"), "States": {format!("P{i}"): {"Type": "Parallel", "End": true, "Branches": [inner]}}});
    }
    let d = validate(&inner.to_string());
    assert!(!d.is_empty());
    assert!(
        d.iter()
            .any(|d| d.code == "TOO_DEEPLY_NESTED" || d.code == "INVALID_JSON_DESCRIPTION")
    );
}

#[test]
fn deep_scan_on_deep_data_is_bounded() {
    let mut v = json!(1);
    for _ in 0..120 {
        v = json!({"a": v, "b": [v.clone()]});
        if v.to_string().len() > 1_000_000 {
            break;
        }
    }
    let p = Path::parse("$..a").unwrap();
    assert!(p.select(&v).is_some());
}

#[test]
fn huge_array_range_is_a_states_error() {
    // Step Functions limits States.ArrayRange to 1,000 elements.
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass",
        "Parameters": {"r.$": "States.ArrayRange(0, 1000000000, 1)"}, "End": true}}});
    let m = StateMachine::parse(&def.to_string()).unwrap();
    let host = TestHost::new(|c| Ok(c.input.clone()));
    let f = futures::executor::block_on(execute(&m, json!({}), &info(), &host)).unwrap_err();
    assert!(f.error.starts_with("States."), "{f:?}");
}

#[test]
fn result_path_loop_cannot_nest_without_bound() {
    // Each pass nests the input one level deeper; the run ends with an
    // error once the nesting limit is passed instead of overflowing the
    // stack.
    let def = json!({"StartAt": "P", "States": {
        "P": {"Type": "Pass", "ResultPath": "$.a", "Next": "C"},
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.stop", "IsPresent": true, "Next": "D"}], "Default": "P"},
        "D": {"Type": "Succeed"}}});
    let m = StateMachine::parse(&def.to_string()).unwrap();
    let host = TestHost::new(|c| Ok(c.input.clone()));
    let f = futures::executor::block_on(execute(&m, json!({}), &info(), &host)).unwrap_err();
    assert_eq!(f.error, "States.Runtime");
    assert!(
        f.cause.contains("nested more than 1000 levels"),
        "{}",
        f.cause
    );
}
