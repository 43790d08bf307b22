//! Expected values come from the examples of "Transforming data with
//! JSONata in Step Functions" and "Intrinsic functions for JSONPath states"
//! (AWS Step Functions Developer Guide), and from RFC 1321 / FIPS 180-4
//! test vectors.

use super::*;
use proptest::prelude::*;
use serde_json::json;

struct Counter(u64);

impl Entropy for Counter {
    fn next_u64(&mut self) -> u64 {
        self.0 += 1;
        seeded_u64(self.0)
    }
}

fn some(v: Value) -> Option<Value> {
    Some(v)
}

#[test]
fn partition_examples() {
    assert_eq!(
        partition(&[some(json!([1, 2, 3, 4, 5, 6, 7, 8, 9])), some(json!(3))]).unwrap(),
        Some(json!([[1, 2, 3], [4, 5, 6], [7, 8, 9]]))
    );
    assert_eq!(
        partition(&[some(json!([1, 2, 3, 4, 5, 6, 7, 8, 9])), some(json!(4))]).unwrap(),
        Some(json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]]))
    );
    assert_eq!(partition(&[None, some(json!(3))]).unwrap(), None);
    let e = partition(&[some(json!([1])), some(json!(0))]).unwrap_err();
    assert_eq!(e.code, FUNCTION_ERROR);
    let e = partition(&[some(json!("abc")), some(json!(1))]).unwrap_err();
    assert_eq!(e.code, SIGNATURE_MISMATCH);
    let e = partition(&[some(json!([1]))]).unwrap_err();
    assert_eq!(e.code, SIGNATURE_MISMATCH);
    // A non-integer chunk size is rounded down.
    assert_eq!(
        partition(&[some(json!([1, 2, 3, 4, 5])), some(json!(2.9))]).unwrap(),
        Some(json!([[1, 2], [3, 4], [5]]))
    );
    assert_eq!(
        partition(&[some(json!([1])), some(json!(0.5))])
            .unwrap_err()
            .code,
        FUNCTION_ERROR
    );
    let e = partition(&[some(json!([1])), some(json!("2"))]).unwrap_err();
    assert!(e.message.contains("must be a number"), "{}", e.message);
}

#[test]
fn range_examples() {
    assert_eq!(
        range(&[some(json!(0)), some(json!(10)), some(json!(2))]).unwrap(),
        Some(json!([0, 2, 4, 6, 8, 10]))
    );
    assert_eq!(
        range(&[some(json!(1)), some(json!(9)), some(json!(2))]).unwrap(),
        Some(json!([1, 3, 5, 7, 9]))
    );
    assert_eq!(
        range(&[some(json!(10)), some(json!(0)), some(json!(-5))]).unwrap(),
        Some(json!([10, 5, 0]))
    );
    assert_eq!(
        range(&[some(json!(0)), some(json!(5000)), some(json!(1))])
            .unwrap_err()
            .code,
        FUNCTION_ERROR
    );
    assert_eq!(
        range(&[some(json!(0)), some(json!(5)), some(json!(0))])
            .unwrap_err()
            .code,
        FUNCTION_ERROR
    );
    assert_eq!(
        range(&[some(json!("0")), some(json!(5)), some(json!(1))])
            .unwrap_err()
            .code,
        SIGNATURE_MISMATCH
    );
}

#[test]
fn hash_examples() {
    assert_eq!(
        hash(&[some(json!("input data")), some(json!("SHA-1"))]).unwrap(),
        Some(json!("aaff4a450a104cd177d28d18d74485e8cae074b7"))
    );
    assert_eq!(
        hash(&[some(json!("abc")), some(json!("MD5"))]).unwrap(),
        Some(json!("900150983cd24fb0d6963f7d28e17f72"))
    );
    assert_eq!(
        hash(&[some(json!("abc")), some(json!("SHA-256"))]).unwrap(),
        Some(json!(
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        ))
    );
    let e = hash(&[some(json!("abc")), some(json!("SHA-3"))]).unwrap_err();
    assert_eq!(e.code, FUNCTION_ERROR);
    assert!(e.message.contains("not supported"));
    let long = "x".repeat(MAX_STRING_CHARS + 1);
    assert_eq!(
        hash(&[some(json!(long)), some(json!("MD5"))])
            .unwrap_err()
            .code,
        FUNCTION_ERROR
    );
    assert_eq!(hash(&[None, some(json!("MD5"))]).unwrap(), None);
}

#[test]
fn random_is_in_unit_interval_and_seeded_is_repeatable() {
    let mut e = Counter(0);
    for _ in 0..100 {
        let v = random(&[], &mut e).unwrap().unwrap().as_f64().unwrap();
        assert!((0.0..1.0).contains(&v), "{v}");
    }
    let a = random(&[some(json!(7))], &mut Counter(1)).unwrap();
    let b = random(&[some(json!(7))], &mut Counter(99)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, random(&[some(json!(8))], &mut Counter(1)).unwrap());
    assert_eq!(
        random(&[some(json!("x"))], &mut e).unwrap_err().code,
        SIGNATURE_MISMATCH
    );
}

#[test]
fn uuid_is_v4() {
    let mut e = Counter(0);
    let a = uuid(&[], &mut e).unwrap().unwrap();
    let b = uuid(&[], &mut e).unwrap().unwrap();
    assert_ne!(a, b);
    let s = a.as_str().unwrap();
    assert_eq!(s.len(), 36);
    assert_eq!(&s[14..15], "4");
    assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"));
    assert!(uuid(&[some(json!(1))], &mut e).is_err());
}

#[test]
fn parse_examples() {
    assert_eq!(
        parse(&[some(json!("{\"foo\": \"bar\"}"))]).unwrap(),
        Some(json!({"foo": "bar"}))
    );
    assert_eq!(parse(&[some(json!("[1,2]"))]).unwrap(), Some(json!([1, 2])));
    assert_eq!(parse(&[None]).unwrap(), None);
    assert_eq!(
        parse(&[some(json!("{nope"))]).unwrap_err().code,
        FUNCTION_ERROR
    );
    assert_eq!(
        parse(&[some(json!(1))]).unwrap_err().code,
        SIGNATURE_MISMATCH
    );
}

#[test]
fn registered_functions_evaluate_in_expressions() {
    let mut env = stratus_jsonata::Environment::new();
    let entropy: SharedEntropy = Arc::new(Mutex::new(Counter(0)));
    register(&mut env, entropy);
    let eval = |text: &str| {
        stratus_jsonata::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .evaluate(None, &env)
    };
    assert_eq!(
        eval("$partition([1, 2, 3, 4, 5, 6, 7, 8, 9], 3)").unwrap(),
        Some(json!([[1, 2, 3], [4, 5, 6], [7, 8, 9]]))
    );
    assert_eq!(
        eval("$range(0, 10, 2)").unwrap(),
        Some(json!([0, 2, 4, 6, 8, 10]))
    );
    assert_eq!(
        eval("$hash('input data', 'SHA-1')").unwrap(),
        Some(json!("aaff4a450a104cd177d28d18d74485e8cae074b7"))
    );
    assert_eq!(eval("$parse('{\"a\": 1}')").unwrap(), Some(json!({"a": 1})));
    assert_eq!(eval("$random(5)").unwrap(), eval("$random(5)").unwrap());
    let r = eval("$random()").unwrap().unwrap().as_f64().unwrap();
    assert!((0.0..1.0).contains(&r));
    assert_eq!(
        eval("$uuid()").unwrap().unwrap().as_str().unwrap().len(),
        36
    );
    let e = eval("$partition([1], 0)").unwrap_err();
    assert_eq!(e.code, FUNCTION_ERROR);
}

proptest! {
    #[test]
    fn functions_never_panic(args in prop::collection::vec(prop_oneof![
        Just(None),
        any::<i64>().prop_map(|n| Some(json!(n))),
        any::<f64>().prop_map(|f| Some(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number))),
        ".{0,20}".prop_map(|s| Some(json!(s))),
        Just(Some(json!([1, 2, 3]))),
        Just(Some(json!({"a": 1}))),
    ], 0..4)) {
        let mut e = Counter(0);
        let _ = partition(&args);
        let _ = range(&args);
        let _ = hash(&args);
        let _ = random(&args, &mut e);
        let _ = uuid(&args, &mut e);
        let _ = parse(&args);
    }
}
