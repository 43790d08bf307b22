//! Probes stack use of inline evaluation: `stackprobe KIB`.
fn main() {
    let kib: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    let exprs = [
        format!("{}1{}", "$abs(".repeat(15), ")".repeat(15)),
        format!("{}'x'{}", "$pad(".repeat(15), ", 3)".repeat(15)),
        format!("{}1{}", "(".repeat(31), ")".repeat(31)),
        format!("{}1{}", "[".repeat(31), "]".repeat(31)),
        format!("{}1{}", "{'a':".repeat(15), "}".repeat(15)),
        format!("a{}", ".a[0]".repeat(15)),
        format!("{}1{}", "$sum([".repeat(10), "])".repeat(10)),
        format!("{}1{}", "$formatNumber(".repeat(15), ", '#')".repeat(15)),
    ];
    for e in exprs {
        let h = std::thread::Builder::new()
            .stack_size(kib * 1024)
            .spawn(move || {
                let x = stratus_jsonata::parse(&e).map(|x| {
                    x.evaluate(
                        Some(&serde_json::json!({"a": [{"a": 1}]})),
                        &stratus_jsonata::Environment::new(),
                    )
                });
                format!(
                    "{} chars -> {:?}",
                    e.len(),
                    x.map(|r| r.map(|v| v.map(|j| j.to_string().len())))
                )
            })
            .unwrap();
        println!("{}", h.join().unwrap());
    }
}
