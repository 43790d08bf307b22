//! Rough timing of parse and evaluate: `timing [iterations]`.
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let input = serde_json::json!({
        "Account": {"Order": [
            {"OrderID": "o1", "Product": [{"Price": 34.45, "Quantity": 2}, {"Price": 21.67, "Quantity": 1}]},
            {"OrderID": "o2", "Product": [{"Price": 34.45, "Quantity": 4}, {"Price": 107.99, "Quantity": 1}]}
        ]}
    });
    let env = stratus_jsonata::Environment::new();
    for text in [
        "$states",
        "Account.Order[0].OrderID",
        "$sum(Account.Order.Product.(Price * Quantity))",
        "Account.Order.Product{$string(Quantity): $sum(Price)}",
    ] {
        let t = Instant::now();
        for _ in 0..n {
            let _ = stratus_jsonata::parse(text);
        }
        let parse_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        let e = stratus_jsonata::parse(text).expect("parses");
        let t = Instant::now();
        for _ in 0..n {
            let _ = e.evaluate(Some(&input), &env);
        }
        let eval_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("{text:60} parse {parse_us:8.1} µs  evaluate {eval_us:8.1} µs");
    }
}
