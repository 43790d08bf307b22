//! Expected values come from the examples in "Intrinsic functions for
//! JSONPath states in Step Functions" (AWS Step Functions Developer Guide)
//! and Appendix B of the Amazon States Language specification.

use super::*;
use proptest::prelude::*;
use serde_json::json;

/// Deterministic entropy for tests: a counter run through SplitMix64.
struct Counter(u64);

impl Entropy for Counter {
    fn next_u64(&mut self) -> u64 {
        self.0 += 1;
        seeded_u64(self.0)
    }
}

/// A small resolver for tests: `$`, `$.a.b`, `$.a[2]`, `$$.x` (context)
/// and `$name` (variables).
fn lookup(root: &Value, rest: &str) -> Option<Value> {
    let mut cur = root;
    let mut rest = rest;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let i: usize = r[..end].parse().ok()?;
            cur = cur.get(i)?;
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(cur.clone())
}

fn run_with(
    expr: &str,
    input: Value,
    context: Value,
    vars: Value,
) -> Result<Value, IntrinsicError> {
    let resolve = move |p: &str| -> Option<Value> {
        if let Some(r) = p.strip_prefix("$$") {
            lookup(&context, r)
        } else if let Some(r) = p.strip_prefix('$') {
            if r.is_empty() || r.starts_with('.') || r.starts_with('[') {
                lookup(&input, r)
            } else {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                lookup(vars.get(&r[..end])?, &r[end..])
            }
        } else {
            None
        }
    };
    evaluate(expr, &resolve, &mut Counter(0))
}

fn run(expr: &str, input: Value) -> Result<Value, IntrinsicError> {
    run_with(expr, input, json!({}), json!({}))
}

fn ok(expr: &str, input: Value) -> Value {
    match run(expr, input) {
        Ok(v) => v,
        Err(e) => panic!("{expr} failed: {e}"),
    }
}

fn fails(expr: &str, input: Value) -> String {
    match run(expr, input) {
        Ok(v) => panic!("{expr} should fail but returned {v}"),
        Err(e) => {
            assert_eq!(e.error, "States.Runtime");
            e.cause
        }
    }
}

// ---- the Developer Guide's and the specification's examples ----

#[test]
fn format_examples() {
    let input = json!({"name": "Arnav", "template": "Hello, my name is {}."});
    assert_eq!(
        ok(
            "States.Format('Hello, my name is {}.', $.name)",
            input.clone()
        ),
        json!("Hello, my name is Arnav.")
    );
    assert_eq!(
        ok("States.Format($.template, $.name)", input),
        json!("Hello, my name is Arnav.")
    );
    assert_eq!(
        ok(
            "States.Format('Your name is {}, we are in the year {}', $.name, 2020)",
            json!({"name": "Foo", "zebra": "stripe"})
        ),
        json!("Your name is Foo, we are in the year 2020")
    );
    // From the specification: "Welcome to {} {}\\'s playlist." in JSON.
    let field: Value = serde_json::from_str(
        r#""States.Format('Welcome to {} {}\\'s playlist.', $.firstName, $.lastName)""#,
    )
    .unwrap();
    assert_eq!(
        ok(
            field.as_str().unwrap(),
            json!({"firstName": "Ann", "lastName": "Lee"})
        ),
        json!("Welcome to Ann Lee's playlist.")
    );
}

#[test]
fn format_with_context_object() {
    // Specification: "formattedOutput.$": "States.Format('Today is {}', $$.DayOfWeek)"
    let v = run_with(
        "States.Format('Today is {}', $$.DayOfWeek)",
        json!({}),
        json!({"DayOfWeek": "TUESDAY"}),
        json!({}),
    )
    .unwrap();
    assert_eq!(v, json!("Today is TUESDAY"));
}

#[test]
fn string_to_json_examples() {
    assert_eq!(
        ok(
            "States.StringToJson($.escapedJsonString)",
            json!({"escapedJsonString": "{\"foo\": \"bar\"}"})
        ),
        json!({"foo": "bar"})
    );
    assert_eq!(
        ok(
            "States.StringToJson($.someString)",
            json!({"someString": "{\"number\": 20}", "zebra": "stripe"})
        ),
        json!({"number": 20})
    );
}

#[test]
fn json_to_string_example() {
    assert_eq!(
        ok(
            "States.JsonToString($.someJson)",
            json!({"someJson": {"name": "Foo", "year": 2020}, "zebra": "stripe"})
        ),
        json!("{\"name\":\"Foo\",\"year\":2020}")
    );
    assert_eq!(
        ok(
            "States.JsonToString($.unescapedJson)",
            json!({"unescapedJson": {"foo": "bar"}})
        ),
        json!("{\"foo\":\"bar\"}")
    );
}

#[test]
fn array_examples() {
    assert_eq!(
        ok("States.Array($.Id)", json!({"Id": 123456})),
        json!([123456])
    );
    assert_eq!(
        ok(
            "States.Array('Foo', 2020, $.someJson, null)",
            json!({"someJson": {"random": "abcdefg"}, "zebra": "stripe"})
        ),
        json!(["Foo", 2020, {"random": "abcdefg"}, null])
    );
    assert_eq!(ok("States.Array()", json!({})), json!([]));
}

#[test]
fn array_partition_example() {
    assert_eq!(
        ok(
            "States.ArrayPartition($.inputArray,4)",
            json!({"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9]})
        ),
        json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]])
    );
}

#[test]
fn array_contains_example() {
    assert_eq!(
        ok(
            "States.ArrayContains($.inputArray, $.lookingFor)",
            json!({"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "lookingFor": 5})
        ),
        json!(true)
    );
}

#[test]
fn array_range_example() {
    assert_eq!(
        ok("States.ArrayRange(1, 9, 2)", json!({})),
        json!([1, 3, 5, 7, 9])
    );
}

#[test]
fn array_get_item_example() {
    assert_eq!(
        ok(
            "States.ArrayGetItem($.inputArray, $.index)",
            json!({"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "index": 5})
        ),
        json!(6)
    );
}

#[test]
fn array_length_example() {
    assert_eq!(
        ok(
            "States.ArrayLength($.inputArray)",
            json!({"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9]})
        ),
        json!(9)
    );
}

#[test]
fn array_unique_example() {
    assert_eq!(
        ok(
            "States.ArrayUnique($.inputArray)",
            json!({"inputArray": [1, 2, 3, 3, 3, 3, 3, 3, 4]})
        ),
        json!([1, 2, 3, 4])
    );
}

#[test]
fn base64_examples() {
    assert_eq!(
        ok(
            "States.Base64Encode($.input)",
            json!({"input": "Data to encode"})
        ),
        json!("RGF0YSB0byBlbmNvZGU=")
    );
    // The guide shows "Decoded data" as the output of decoding
    // "RGF0YSB0byBlbmNvZGU=", which is the encoding of "Data to encode".
    assert_eq!(
        ok(
            "States.Base64Decode($.base64)",
            json!({"base64": "RGF0YSB0byBlbmNvZGU="})
        ),
        json!("Data to encode")
    );
}

#[test]
fn hash_example() {
    // The guide prints "aaff4a450a104cd177d28d18d7485e8cae074b7" (39 hex
    // digits: one digit of the 40-digit SHA-1 is missing from the page).
    let v = ok(
        "States.Hash($.Data, $.Algorithm)",
        json!({"Data": "input data", "Algorithm": "SHA-1"}),
    );
    assert_eq!(v, json!("aaff4a450a104cd177d28d18d74485e8cae074b7"));
    // RFC 1321 / FIPS 180-4 test vectors for "abc".
    for (alg, want) in [
        ("MD5", "900150983cd24fb0d6963f7d28e17f72"),
        ("SHA-1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (
            "SHA-256",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            "SHA-384",
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            "SHA-512",
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
    ] {
        assert_eq!(
            ok(&format!("States.Hash('abc', '{alg}')"), json!({})),
            json!(want),
            "{alg}"
        );
    }
}

#[test]
fn json_merge_example() {
    assert_eq!(
        ok(
            "States.JsonMerge($.json1, $.json2, false)",
            json!({"json1": {"a": {"a1": 1, "a2": 2}, "b": 2}, "json2": {"a": {"a3": 1, "a4": 2}, "c": 3}})
        ),
        json!({"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3})
    );
}

#[test]
fn math_random_example() {
    for _ in 0..20 {
        let v = ok(
            "States.MathRandom($.start, $.end)",
            json!({"start": 1, "end": 999}),
        );
        let n = v.as_i64().unwrap();
        assert!((1..999).contains(&n), "{n}");
    }
}

#[test]
fn math_random_same_seed_same_number() {
    let a = ok("States.MathRandom(1, 1000000, 42)", json!({}));
    let b = ok("States.MathRandom(1, 1000000, 42)", json!({}));
    assert_eq!(a, b);
    // Different draws without a seed come from the entropy source.
    let resolve = |_: &str| None;
    let mut e = Counter(0);
    let x = evaluate("States.MathRandom(0, 1000000000)", &resolve, &mut e).unwrap();
    let y = evaluate("States.MathRandom(0, 1000000000)", &resolve, &mut e).unwrap();
    assert_ne!(x, y);
}

#[test]
fn math_add_example() {
    assert_eq!(
        ok(
            "States.MathAdd($.value1, $.step)",
            json!({"value1": 111, "step": -1})
        ),
        json!(110)
    );
}

#[test]
fn string_split_examples() {
    assert_eq!(
        ok(
            "States.StringSplit($.inputString, $.splitter)",
            json!({"inputString": "1,2,3,4,5", "splitter": ","})
        ),
        json!(["1", "2", "3", "4", "5"])
    );
    assert_eq!(
        ok(
            "States.StringSplit($.inputString, $.splitter)",
            json!({"inputString": "This.is+a,test=string", "splitter": ".+,="})
        ),
        json!(["This", "is", "a", "test", "string"])
    );
}

#[test]
fn uuid_is_version_4() {
    let v = ok("States.UUID()", json!({}));
    let s = v.as_str().unwrap();
    assert_eq!(s.len(), 36);
    let parts: Vec<&str> = s.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        vec![8, 4, 4, 4, 12]
    );
    assert!(parts[2].starts_with('4'));
    assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
    assert!(
        s.chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_ne!(ok("States.UUID()", json!({})), json!(null));
}

#[test]
fn nested_functions_example() {
    let input = json!({"ImageRecipe": {"Arn": "arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/my-recipe/2.5.1"}});
    // As printed in the guide: a '{}.{}.{}' template with two values; the
    // counts differ, which the specification forbids.
    let printed = "States.Format('{}.{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 0), States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 1))";
    assert!(fails(printed, input.clone()).contains("placeholder"));
    let two = printed.replacen("'{}.{}.{}'", "'{}.{}'", 1);
    assert_eq!(ok(&two, input), json!("2.5"));
}

// ---- syntax ----

#[test]
fn escapes_in_string_literals() {
    // JSON "States.Format('\\{\\} \\' \\\\ {}', 'x')"
    assert_eq!(
        ok(r"States.Format('\{\} \' \\ {}', 'x')", json!({})),
        json!(r"{} ' \ x")
    );
    // An escaped brace pair is not a placeholder.
    assert_eq!(ok(r"States.Format('\{}')", json!({})), json!("{}"));
    assert!(fails(r"States.Format('\{}', 'x')", json!({})).contains("placeholder"));
    let cause = fails(r"States.Format('a\nb')", json!({}));
    assert!(cause.contains("open escape"), "{cause}");
}

#[test]
fn variables_and_context_paths() {
    let v = run_with(
        "States.Array($x, $$.Execution.Name, $.a, $)",
        json!({"a": 1}),
        json!({"Execution": {"Name": "run-1"}}),
        json!({"x": "var"}),
    )
    .unwrap();
    assert_eq!(v, json!(["var", "run-1", 1, {"a": 1}]));
}

#[test]
fn paths_with_brackets_and_spaces() {
    let v = ok(
        "States.Array( $.a[1] ,$.b )",
        json!({"a": [10, 20], "b": true}),
    );
    assert_eq!(v, json!([20, true]));
    match parse("States.Array($.a[?(@.x == 1)], $['k, )'])")
        .unwrap()
        .args
        .as_slice()
    {
        [Arg::Path(a), Arg::Path(b)] => {
            assert_eq!(a, "$.a[?(@.x == 1)]");
            assert_eq!(b, "$['k, )']");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn literals() {
    assert_eq!(
        ok(
            "States.Array(1, -2.5, 1e3, true, false, null, 'x')",
            json!({})
        ),
        json!([1, -2.5, 1000.0, true, false, null, "x"])
    );
}

#[test]
fn is_intrinsic_recognises_calls() {
    assert!(is_intrinsic("States.Format('x')"));
    assert!(is_intrinsic("States.UUID ()"));
    assert!(!is_intrinsic("$.States.Format"));
    assert!(!is_intrinsic("Format('x')"));
    assert!(!is_intrinsic("States.Format"));
}

#[test]
fn nesting_limit() {
    let nest = |n: usize| "States.Array(".repeat(n) + &")".repeat(n);
    assert!(parse(&nest(MAX_NESTING)).is_ok());
    let e = parse(&nest(MAX_NESTING + 1)).unwrap_err();
    assert!(e.cause.contains("nest"), "{}", e.cause);
}

#[test]
fn syntax_errors() {
    for (expr, needle) in [
        ("States.Foo(1)", "not a known intrinsic function"),
        ("states.format('x')", "not a known"),
        ("States.Format('x'", "missing ')'"),
        ("States.Format('x) ", "unterminated"),
        ("States.Format('x') extra", "after the closing"),
        ("States.Array(1 2)", "expected ',' or ')'"),
        ("States.Array(,)", "unexpected character ','"),
        ("States.Array(1-)", "not a valid number"),
        ("States.UUID(1)", "exactly 0"),
        ("States.ArrayRange(1, 2)", "exactly 3"),
        ("States.MathRandom(1)", "2 to 3"),
        ("States.Format()", "at least 1"),
        ("States.Format('{} {}', 1)", "placeholder"),
        ("States.ArrayLength('abc')", "must be an array"),
        ("States.ArrayGetItem($.a, 1.5)", "must be an integer"),
        ("States.JsonMerge($.a, $.b, true)", "shallow"),
        ("States.Base64Encode(1)", "must be a string"),
        ("", "function name"),
    ] {
        let e = parse(expr).unwrap_err();
        assert_eq!(e.error, "States.Runtime");
        assert!(e.cause.contains(needle), "{expr}: {}", e.cause);
    }
}

// ---- run-time errors and edge cases ----

#[test]
fn missing_path_is_an_error() {
    let cause = fails("States.Format('{}', $.missing)", json!({}));
    assert!(cause.contains("$.missing"), "{cause}");
}

#[test]
fn wrong_runtime_types() {
    assert!(fails("States.ArrayLength($.a)", json!({"a": "x"})).contains("must be an array"));
    assert!(fails("States.StringToJson($.a)", json!({"a": 1})).contains("must be a string"));
    assert!(
        fails("States.Format('{}', $.a)", json!({"a": [1]}))
            .contains("string, number, boolean or null")
    );
    assert!(fails("States.Format($.t)", json!({"t": 5})).contains("must be a string"));
    assert!(
        fails(
            "States.JsonMerge($.a, $.b, false)",
            json!({"a": {}, "b": []})
        )
        .contains("JSON object")
    );
}

#[test]
fn format_renders_scalars_naturally() {
    assert_eq!(
        ok(
            "States.Format('{}|{}|{}|{}', $.s, $.n, $.b, $.z)",
            json!({"s": "t", "n": 1.5, "b": false, "z": null})
        ),
        json!("t|1.5|false|null")
    );
    assert!(fails("States.Format($.t, 1)", json!({"t": "no holes"})).contains("placeholder"));
}

#[test]
fn string_to_json_rejects_bad_json() {
    assert!(fails("States.StringToJson('{')", json!({})).contains("not valid JSON"));
}

#[test]
fn partition_edge_cases() {
    assert!(fails("States.ArrayPartition($.a, 0)", json!({"a": [1]})).contains("positive"));
    assert!(fails("States.ArrayPartition($.a, -1)", json!({"a": [1]})).contains("positive"));
    assert_eq!(
        ok("States.ArrayPartition($.a, 5)", json!({"a": []})),
        json!([])
    );
    assert_eq!(
        ok("States.ArrayPartition($.a, 5)", json!({"a": [1, 2]})),
        json!([[1, 2]])
    );
}

#[test]
fn non_integer_partition_size_and_range_arguments_are_rounded() {
    assert_eq!(
        ok("States.ArrayPartition($.a, 1.6)", json!({"a": [1, 2, 3]})),
        json!([[1, 2], [3]])
    );
    assert_eq!(
        ok("States.ArrayRange(1.2, 3.8, 1)", json!({})),
        json!([1, 2, 3, 4])
    );
    assert!(fails("States.ArrayPartition($.a, 0.4)", json!({"a": [1]})).contains("positive"));
    assert!(fails("States.ArrayRange(1, 2, 0.3)", json!({})).contains("non-zero"));
}

#[test]
fn range_edge_cases() {
    assert_eq!(
        ok("States.ArrayRange(5, 1, -2)", json!({})),
        json!([5, 3, 1])
    );
    assert_eq!(ok("States.ArrayRange(1, 5, -1)", json!({})), json!([]));
    assert_eq!(
        ok("States.ArrayRange(0, 999, 1)", json!({}))
            .as_array()
            .unwrap()
            .len(),
        1000
    );
    assert!(fails("States.ArrayRange(0, 1000, 1)", json!({})).contains("1000"));
    assert!(fails("States.ArrayRange(1, 9, 0)", json!({})).contains("non-zero"));
}

#[test]
fn get_item_bounds() {
    assert!(
        fails("States.ArrayGetItem($.a, 3)", json!({"a": [1, 2, 3]})).contains("out of bounds")
    );
    assert!(
        fails("States.ArrayGetItem($.a, -1)", json!({"a": [1, 2, 3]})).contains("out of bounds")
    );
}

#[test]
fn contains_and_unique_compare_numbers_by_value() {
    assert_eq!(
        ok("States.ArrayContains($.a, 1)", json!({"a": [1.0]})),
        json!(true)
    );
    assert_eq!(
        ok(
            "States.ArrayContains($.a, $.o)",
            json!({"a": [{"x": [1]}], "o": {"x": [1]}})
        ),
        json!(true)
    );
    assert_eq!(
        ok("States.ArrayContains($.a, '1')", json!({"a": [1]})),
        json!(false)
    );
    assert_eq!(
        ok(
            "States.ArrayUnique($.a)",
            json!({"a": [1, 1.0, "1", {"a": 1, "b": 2}, {"b": 2, "a": 1}, null, null]})
        ),
        json!([1, "1", {"a": 1, "b": 2}, null])
    );
}

#[test]
fn length_limits() {
    let long = "x".repeat(MAX_STRING_CHARS + 1);
    let input = json!({"s": long});
    assert!(fails("States.Base64Encode($.s)", input.clone()).contains("10000"));
    assert!(fails("States.Base64Decode($.s)", input.clone()).contains("10000"));
    assert!(fails("States.Hash($.s, 'MD5')", input).contains("10000"));
    let exact = "x".repeat(MAX_STRING_CHARS);
    assert!(run("States.Base64Encode($.s)", json!({"s": exact})).is_ok());
}

#[test]
fn base64_decode_errors() {
    assert!(fails("States.Base64Decode('***')", json!({})).contains("Base64"));
    assert!(fails("States.Base64Decode('/w==')", json!({})).contains("UTF-8"));
}

#[test]
fn hash_rejects_unknown_algorithm() {
    let cause = fails("States.Hash('a', 'sha-1')", json!({}));
    assert!(cause.contains("not supported"), "{cause}");
}

#[test]
fn math_argument_checks() {
    assert_eq!(ok("States.MathAdd(1.4, 2.6)", json!({})), json!(4));
    assert!(fails("States.MathAdd(2147483648, 1)", json!({})).contains("2147483647"));
    assert_eq!(
        ok("States.MathAdd(2147483647, 2147483647)", json!({})),
        json!(4294967294_i64)
    );
    assert!(fails("States.MathRandom(5, 5)", json!({})).contains("less than"));
    assert_eq!(ok("States.MathRandom(7, 8)", json!({})), json!(7));
    assert!(fails("States.MathAdd($.a, 1)", json!({"a": "1"})).contains("must be a number"));
}

#[test]
fn split_edge_cases() {
    assert_eq!(
        ok("States.StringSplit('a,,b,', ',')", json!({})),
        json!(["a", "b"])
    );
    assert_eq!(
        ok("States.StringSplit('abc', '')", json!({})),
        json!(["abc"])
    );
    assert_eq!(ok("States.StringSplit('', ',')", json!({})), json!([]));
}

#[test]
fn json_merge_later_keys_win() {
    assert_eq!(
        ok(
            "States.JsonMerge($.a, $.b, false)",
            json!({"a": {"k": 1, "x": 0}, "b": {"k": 2}})
        ),
        json!({"k": 2, "x": 0})
    );
    assert!(
        fails(
            "States.JsonMerge($.a, $.b, $.deep)",
            json!({"a": {}, "b": {}, "deep": true})
        )
        .contains("shallow")
    );
}

// ---- properties ----

proptest! {
    #[test]
    fn parse_and_evaluate_never_panic(s in ".{0,200}") {
        let _ = parse(&s);
        let resolve = |_: &str| Some(json!([1, "a", {"b": null}]));
        let _ = evaluate(&s, &resolve, &mut Counter(0));
    }

    #[test]
    fn intrinsic_shaped_strings_never_panic(
        name in prop::sample::select(Function::ALL.iter().map(|f| f.name()).collect::<Vec<_>>()),
        body in "[-$.a-z0-9'{}\\\\, ()\\[\\]]{0,60}",
    ) {
        let expr = format!("{name}({body})");
        let _ = parse(&expr);
        let resolve = |p: &str| if p.len().is_multiple_of(2) { Some(json!(3)) } else { Some(json!("x,y")) };
        let _ = evaluate(&expr, &resolve, &mut Counter(1));
    }

    #[test]
    fn nesting_depth_is_bounded(n in 1usize..40) {
        let expr = "States.Array(".repeat(n) + &")".repeat(n);
        prop_assert_eq!(parse(&expr).is_ok(), n <= MAX_NESTING);
    }

    #[test]
    fn format_round_trips_any_text(text in "[^'{}\\\\]{0,50}") {
        let expr = format!("States.Format('{{}}', '{text}')");
        prop_assert_eq!(run(&expr, json!({})).unwrap(), json!(text));
    }

    #[test]
    fn range_length_matches_arithmetic(a in -50i64..50, b in -50i64..50, step in 1i64..7) {
        let v = range(a, b, step).unwrap();
        let expected = if a > b { 0 } else { (b - a) / step + 1 };
        prop_assert_eq!(v.len() as i64, expected);
    }
}
