//! Evaluates an expression from the command line: `jq EXPR [JSON]`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let expr = stratus_jsonata::parse(&args[1]);
    let input: Option<serde_json::Value> = args
        .get(2)
        .map(|s| serde_json::from_str(s).expect("input JSON"));
    match expr {
        Err(e) => println!("parse error: {e}"),
        Ok(e) => println!(
            "{:?}",
            e.evaluate(input.as_ref(), &stratus_jsonata::Environment::new())
        ),
    }
}
