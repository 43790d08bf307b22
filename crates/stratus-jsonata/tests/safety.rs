//! Robustness: no panic on arbitrary text or arbitrary well-formed
//! expressions, bounded nesting and recursion, step and time budgets, and
//! host bindings.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;
use stratus_jsonata::{Environment, JsonataError, parse};

fn limited_env() -> Environment {
    let mut env = Environment::new();
    env.set_step_limit(20_000);
    env.set_time_limit(Duration::from_secs(2));
    env
}

fn sample() -> serde_json::Value {
    json!({
        "a": 1, "b": [1, 2, {"c": "x"}], "s": "Hello World", "n": null,
        "o": {"p": {"q": [true, false, 2.5]}}
    })
}

fn eval(expr: &str) -> Result<Option<serde_json::Value>, JsonataError> {
    let e = parse(expr)?;
    e.evaluate(Some(&sample()), &limited_env())
}

/// Fragments that random expressions are assembled from.
fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("s".to_string()),
        Just("o.p.q".to_string()),
        Just("$".to_string()),
        Just("$$".to_string()),
        Just("*".to_string()),
        Just("**".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("\"str\"".to_string()),
        Just("/l+/i".to_string()),
        Just("$x".to_string()),
        Just("$string".to_string()),
        Just("$sum".to_string()),
        Just("b#$i.$i".to_string()),
        Just("b@$v.$v".to_string()),
        Just("o.p.%.p".to_string()),
        Just("b.%".to_string()),
        Just("b^(>$)".to_string()),
        Just("b[0]".to_string()),
        Just("b[-1]".to_string()),
        Just("$map".to_string()),
        (-5i32..50).prop_map(|n| n.to_string()),
        (0.0f64..1e6).prop_map(|n| format!("{n}")),
    ]
}

fn expr_strategy() -> impl Strategy<Value = String> {
    atom().prop_recursive(6, 64, 4, |inner| {
        let ops = prop_oneof![
            Just("+"),
            Just("-"),
            Just("*"),
            Just("/"),
            Just("%"),
            Just("="),
            Just("!="),
            Just("<"),
            Just("<="),
            Just(">"),
            Just(">="),
            Just("and"),
            Just("or"),
            Just("&"),
            Just("in"),
            Just("?:"),
            Just("??"),
            Just("~>"),
            Just("."),
            Just(".."),
        ];
        prop_oneof![
            (inner.clone(), ops, inner.clone()).prop_map(|(l, o, r)| format!("{l} {o} {r}")),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("{l}[{r}]")),
            inner.clone().prop_map(|e| format!("[{e}]")),
            (inner.clone(), inner.clone()).prop_map(|(k, v)| format!("{{{k}: {v}}}")),
            (inner.clone(), inner.clone()).prop_map(|(k, v)| format!("b{{{k}: {v}}}")),
            inner.clone().prop_map(|e| format!("b^({e})")),
            inner.clone().prop_map(|e| format!("b#$i[{e}].$i")),
            inner.clone().prop_map(|e| format!("o.p.q.{{'k': %.{e}}}")),
            inner.clone().prop_map(|e| format!("({e})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("($x := {a}; {b})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, t, e)| format!("{c} ? {t} : {e}")),
            inner.clone().prop_map(|e| format!("function($x){{ {e} }}")),
            (inner.clone(), inner.clone()).prop_map(|(f, a)| format!("{f}({a})")),
            (inner.clone(), inner.clone())
                .prop_map(|(f, a)| format!("$map({a}, function($v){{ {f} }})")),
            inner.clone().prop_map(|e| format!("$string({e})")),
            inner.clone().prop_map(|e| format!("$sort({e})")),
            inner.clone().prop_map(|e| format!("$keys({e})")),
            inner
                .clone()
                .prop_map(|e| format!("$formatNumber({e}, '#,##0.00')")),
            inner.clone().prop_map(|e| format!("$replace(s, /l/, {e})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("$ ~> |{a}|{{'k': {b}}}|")),
            inner.clone().prop_map(|e| format!("-{e}")),
            inner.prop_map(|e| format!("{e}[]")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,40}") {
        let _ = eval(&s);
    }

    #[test]
    fn arbitrary_token_soup_never_panics(parts in proptest::collection::vec(
        prop_oneof![
            Just("("), Just(")"), Just("["), Just("]"), Just("{"), Just("}"), Just("."),
            Just(","), Just(";"), Just(":"), Just("?"), Just("$"), Just("$x"), Just(":="),
            Just("a"), Just("1"), Just("'s'"), Just("function"), Just("|"), Just("~>"),
            Just("^("), Just("#"), Just("@"), Just("/x/"), Just("*"), Just("**"), Just("%"),
            Just(".."), Just("-"), Just("<"), Just(">"), Just("`q`"), Just("λ"),
        ], 0..30)) {
        let _ = eval(&parts.join(" "));
    }

    /// The same expression evaluated directly (on the caller's stack when
    /// shallow, skipping the input when unused) and inside a function body
    /// (always on the large stack, always with the input) agrees.
    #[test]
    fn evaluation_strategies_agree(e in expr_strategy()) {
        let direct = eval(&e);
        let wrapped = eval(&format!("(function(){{ {e} }})()"));
        let limited = |r: &Result<Option<serde_json::Value>, JsonataError>| {
            matches!(r, Err(err) if matches!(err.code.as_str(), "D1011" | "D1012" | "D2015"))
        };
        if !limited(&direct) && !limited(&wrapped) {
            match (&direct, &wrapped) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "{}", e),
                (Err(a), Err(b)) => prop_assert_eq!(&a.code, &b.code, "{}", e),
                _ => prop_assert!(false, "{} gave {:?} directly and {:?} wrapped", e, direct, wrapped),
            }
        }
    }

    #[test]
    fn arbitrary_expressions_never_panic(e in expr_strategy()) {
        match eval(&e) {
            Ok(_) => {}
            Err(err) => {
                prop_assert!(err.code.len() == 5, "odd error code {:?} for {}", err.code, e);
            }
        }
    }
}

#[test]
fn deeply_nested_parentheses_are_an_error() {
    for n in [1_000usize, 100_000] {
        let text = format!("{}1{}", "(".repeat(n), ")".repeat(n));
        let err = parse(&text).expect_err("too deep");
        assert_eq!(err.code, "D1011");
        let text = format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(parse(&text).expect_err("too deep").code, "D1011");
        let text = format!("{}1", "-".repeat(n));
        assert_eq!(parse(&text).expect_err("too deep").code, "D1011");
    }
    // Moderate nesting is fine.
    let text = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    let v = parse(&text)
        .unwrap()
        .evaluate(None, &Environment::new())
        .unwrap();
    assert_eq!(v, Some(json!(1)));
}

#[test]
fn unbounded_recursion_is_an_error() {
    // A call in tail position runs as a loop: the step budget ends it.
    let e = parse("($f := function($x){ $f($x + 1) }; $f(0))").unwrap();
    let mut env = Environment::new();
    env.set_step_limit(100_000);
    let err = e.evaluate(None, &env).expect_err("must stop");
    assert_eq!(err.code, "D1012");
    // Tail recursion deeper than the depth limit completes.
    let e = parse("($count := function($n, $acc){ $n = 0 ? $acc : $count($n - 1, $acc + 1) }; $count(100000, 0))").unwrap();
    assert_eq!(
        e.evaluate(None, &Environment::new()).unwrap(),
        Some(json!(100000))
    );
    // Other recursion nests, and stops at the depth limit.
    let e = parse("($f := function($x){ $x = 0 ? 0 : 1 + $f($x - 1) }; $f(100000))").unwrap();
    assert_eq!(
        e.evaluate(None, &Environment::new()).unwrap_err().code,
        "D1011"
    );
    // Bounded recursion within the limit works.
    let e = parse("($f := function($x){ $x = 0 ? 0 : 1 + $f($x - 1) }; $f(100))").unwrap();
    assert_eq!(
        e.evaluate(None, &Environment::new()).unwrap(),
        Some(json!(100))
    );
}

#[test]
fn depth_limit_is_configurable() {
    let e = parse("($f := function($x){ $x = 0 ? 0 : 1 + $f($x - 1) }; $f(50))").unwrap();
    let mut env = Environment::new();
    env.set_depth_limit(40);
    assert_eq!(e.evaluate(None, &env).unwrap_err().code, "D1011");
}

#[test]
fn deeply_nested_results_are_an_error() {
    let e = parse("$reduce([1..5000], function($a, $v){ {'a': $a} }, 1)").unwrap();
    assert_eq!(
        e.evaluate(None, &Environment::new()).unwrap_err().code,
        "D1011"
    );
    let e = parse("$reduce([1..50], function($a, $v){ {'a': $a} }, 1)").unwrap();
    assert!(e.evaluate(None, &Environment::new()).unwrap().is_some());
}

#[test]
fn step_budget_stops_long_work() {
    let e = parse("$sum([1..1000000].($ * 2))").unwrap();
    let mut env = Environment::new();
    env.set_step_limit(10_000);
    assert_eq!(e.evaluate(None, &env).unwrap_err().code, "D1012");
    // Without a budget it completes.
    let e = parse("$sum([1..1000].($ * 2))").unwrap();
    assert_eq!(
        e.evaluate(None, &Environment::new()).unwrap(),
        Some(json!(1001000))
    );
}

#[test]
fn time_budget_stops_long_work() {
    let e = parse("[1..10000].([1..10000].($ + 1))").unwrap();
    let mut env = Environment::new();
    env.set_time_limit(Duration::from_millis(100));
    assert_eq!(e.evaluate(None, &env).unwrap_err().code, "D1012");
}

/// The guardrail examples of <https://docs.jsonata.org/guardrails>.
#[test]
fn documented_guardrails() {
    let ack = "( $ack := function($m, $n) { $m = 0 ? $n + 1 : $n = 0 ? $ack($m - 1, 1) : $ack($m - 1, $ack($m, $n - 1)) }; $ack(3, 4) )";
    let e = parse(ack).unwrap();
    assert_eq!(
        e.evaluate(None, &Environment::new()).unwrap(),
        Some(json!(125))
    );
    let e = parse(&ack.replace("$ack(3, 4)", "$ack(4, 3)")).unwrap();
    let mut env = Environment::new();
    env.set_depth_limit(500);
    env.set_time_limit(Duration::from_secs(5));
    let code = e.evaluate(None, &env).unwrap_err().code;
    assert!(code == "D1011" || code == "D1012", "{code}");

    let e = parse("( $inf := function() { $inf() }; $inf() )").unwrap();
    let mut env = Environment::new();
    env.set_step_limit(u64::MAX);
    env.set_time_limit(Duration::from_millis(200));
    assert_eq!(e.evaluate(None, &env).unwrap_err().code, "D1012");

    let e = parse("[1..10000].([1..10000])").unwrap();
    let mut env = Environment::new();
    env.set_sequence_limit(1_000_000);
    assert_eq!(e.evaluate(None, &env).unwrap_err().code, "D2015");
}

#[test]
fn host_bindings() {
    let mut env = Environment::new();
    env.bind("states", json!({"input": {"x": 5}}));
    env.bind_function(
        "double",
        Arc::new(|args: &[Option<serde_json::Value>]| {
            let n = args
                .first()
                .cloned()
                .flatten()
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0);
            Ok(Some(json!(n * 2.0)))
        }),
    );
    env.bind_function(
        "now",
        Arc::new(|_: &[Option<serde_json::Value>]| Ok(Some(json!("2020-01-01T00:00:00.000Z")))),
    );
    env.bind_function(
        "fail",
        Arc::new(|_: &[Option<serde_json::Value>]| {
            Err(JsonataError::new("D3137", "host says no", None))
        }),
    );
    let run = |s: &str| parse(s).unwrap().evaluate(None, &env);
    assert_eq!(run("$states.input.x").unwrap(), Some(json!(5)));
    assert_eq!(
        run("$now()").unwrap(),
        Some(json!("2020-01-01T00:00:00.000Z"))
    );
    assert_eq!(run("$fail()").unwrap_err().message, "host says no");
    assert_eq!(run("[1, 2, 3].$double($)").unwrap(), Some(json!([2, 4, 6])));
    assert_eq!(run("$map([1, 2], $double)").unwrap(), Some(json!([2, 4])));
    // Host functions get only the value from $map, and the accumulator and
    // value from $reduce.
    env.bind_function(
        "argc",
        Arc::new(|args: &[Option<serde_json::Value>]| Ok(Some(json!(args.len())))),
    );
    env.bind_function(
        "add",
        Arc::new(|args: &[Option<serde_json::Value>]| {
            let n = |i: usize| {
                args.get(i)
                    .cloned()
                    .flatten()
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0)
            };
            Ok(Some(json!(n(0) + n(1))))
        }),
    );
    let run = |s: &str| parse(s).unwrap().evaluate(None, &env);
    assert_eq!(run("$map([1, 2], $argc)").unwrap(), Some(json!([1, 1])));
    assert_eq!(run("$reduce([1, 2, 3], $add)").unwrap(), Some(json!(6)));
    // A variable bound in the expression shadows the host binding.
    assert_eq!(run("($states := 1; $states)").unwrap(), Some(json!(1)));
}

#[test]
fn undefined_versus_null() {
    let input = json!({"n": null});
    let env = Environment::new();
    let run = |s: &str| parse(s).unwrap().evaluate(Some(&input), &env).unwrap();
    assert_eq!(run("n"), Some(serde_json::Value::Null));
    assert_eq!(run("missing"), None);
    assert_eq!(run("$exists(n)"), Some(json!(true)));
    assert_eq!(run("$exists(missing)"), Some(json!(false)));
    assert_eq!(run("{'a': missing, 'b': n}"), Some(json!({"b": null})));
    assert_eq!(run("[missing, n]"), Some(json!([null])));
}

#[test]
fn errors_carry_positions() {
    let err = parse("1 + (2 * ]").unwrap_err();
    assert_eq!(err.position, Some(9));
    let err = parse("a + 'x'")
        .unwrap()
        .evaluate(Some(&json!({"a": 1})), &Environment::new())
        .unwrap_err();
    assert_eq!(err.code, "T2002");
    assert_eq!(err.position, Some(2));
}

#[test]
fn expressions_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<stratus_jsonata::Expression>();
    assert_send_sync::<Environment>();
    let e = Arc::new(parse("$sum(x)").unwrap());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let e = e.clone();
            std::thread::spawn(move || {
                e.evaluate(Some(&json!({"x": [i, 1]})), &Environment::new())
                    .unwrap()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), Some(json!(i + 1)));
    }
}

#[test]
fn deeply_nested_input_is_handled() {
    // serde_json builds and drops nested values recursively, so the test
    // data lives on a thread with room for that; the evaluation itself
    // needs no more than the default stack.
    let worker = std::thread::Builder::new()
        .stack_size(64 * 1024 * 1024)
        .spawn(|| {
            let mut v = json!({"leaf": 1});
            for _ in 0..1500 {
                v = json!({ "x": v });
            }
            let out = std::thread::scope(|s| {
                s.spawn(|| {
                    let env = Environment::new();
                    let run = |e: &str| parse(e).unwrap().evaluate(Some(&v), &env);
                    (
                        run("$count(**.leaf)").unwrap(),
                        run("**.leaf").unwrap(),
                        run("$").unwrap_err().code,
                        run("$string($) ~> $length() > 6000").unwrap(),
                    )
                })
                .join()
                .unwrap()
            });
            drop(v);
            out
        })
        .unwrap();
    let (count, leaf, whole, long) = worker.join().unwrap();
    assert_eq!(count, Some(json!(1)));
    assert_eq!(leaf, Some(json!(1)));
    assert_eq!(whole, "D1011");
    assert_eq!(long, Some(json!(true)));
}
