//! Timing over deeply nested input.
use std::time::Instant;
fn main() {
    let mut v = serde_json::json!({"leaf": 1});
    for _ in 0..5000 {
        v = serde_json::json!({ "x": v });
    }
    let env = stratus_jsonata::Environment::new();
    for e in [
        "$count(**.leaf)",
        "**.leaf",
        "$",
        "$string($) ~> $length() > 20000",
        "1",
    ] {
        let t = Instant::now();
        let r = stratus_jsonata::parse(e).unwrap().evaluate(Some(&v), &env);
        println!(
            "{e}: {:?} {:?}",
            r.map(|x| x.map(|y| y.to_string().len())),
            t.elapsed()
        );
    }
    std::mem::forget(v);
}
