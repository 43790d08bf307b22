//! JSONata (<https://docs.jsonata.org/>): the query and transformation
//! language Step Functions accepts in `{% %}` expressions.
//!
//! ```
//! let expr = stratus_jsonata::parse("$sum(Order.Product.(Price * Quantity))").unwrap();
//! let input = serde_json::json!({"Order": {"Product": [
//!     {"Price": 2, "Quantity": 3}, {"Price": 4, "Quantity": 1}]}});
//! let env = stratus_jsonata::Environment::new();
//! assert_eq!(expr.evaluate(Some(&input), &env).unwrap(), Some(serde_json::json!(10)));
//! ```
//!
//! `None` stands for JSONata's `undefined` (no value), which is distinct from
//! JSON `null`. Errors carry JSONata's documented error codes (`S0xxx` syntax,
//! `T1xxx`/`T2xxx` type, `D1xxx`/`D2xxx`/`D3xxx` dynamic) and the character
//! offset in the expression where known.
//!
//! The language: location paths with sequence flattening and singleton
//! unwrapping, `[]` to keep arrays, predicates and (negative) indexes, `*`,
//! `**`, `%`, `#$i`, `@$v`, order-by `^( )`, grouping `{ }`, array and
//! object constructors, arithmetic, comparison (deep `=`), `and`/`or`, `&`,
//! `in`, ranges, `? :`, `?:`, `??`, blocks with `:=`, `function`/`λ`
//! definitions with signatures, closures, partial application with `?`,
//! `~>` chaining and composition, the transform `| | |`, regex literals
//! and the documented function library (string, numeric, aggregation,
//! Boolean, array, object, higher-order, date/time).
//!
//! Differences from the reference implementation, by design:
//! - Regular expressions run on the `regex` crate: JavaScript syntax that
//!   crate lacks (look-around, back-references) is a syntax error `S0303`.
//! - Guardrails (<https://docs.jsonata.org/guardrails>): nesting and
//!   recursion depth (`D1011`), a step budget (`D1012`, default
//!   [`DEFAULT_STEP_LIMIT`]), an optional time budget (`D1012`), a sequence
//!   length limit (`D2015`, default [`DEFAULT_SEQUENCE_LIMIT`]), and results
//!   nested more than 1000
//!   levels (`D1011`). Calls in tail position
//!   run as loops, as the documentation describes.
//! - Partial: `$toMillis` pictures read numeric components, month names,
//!   am/pm and time zones (not day names or week numbers); `$parseInteger`
//!   reads words, roman numerals, letters and decimal digits (grouping
//!   separators are skipped, not checked); `$formatNumber` reports the main
//!   picture errors (`D3080`, `D3081`, `D3082`, `D3085`) only.
//! - Transform (`| pattern | update, delete |`): every update and delete is
//!   computed against the matched objects as they were before the
//!   transform, then applied (nested matches merge from the inside out).
//! - Object key order is the input's order only when serde_json keeps it
//!   (this crate's `preserve_order` feature); otherwise serde_json hands
//!   objects over with sorted keys. Objects built by an expression keep
//!   their construction order internally either way.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A host-provided function callable from an expression as `$name(...)`.
///
/// Arguments arrive in call order; `None` is an `undefined` argument (a path
/// that selected nothing); omitted trailing arguments are absent from the
/// slice. Return `Ok(None)` for `undefined`; an `Err` ends the evaluation
/// with that error. `$map`, `$filter`, `$single`, `$each` and `$sift` pass a
/// host function only the value, `$reduce` the accumulator and the value.
/// Function values inside arguments arrive as `None`.
pub type NativeFunction = Arc<
    dyn Fn(&[Option<serde_json::Value>]) -> Result<Option<serde_json::Value>, JsonataError>
        + Send
        + Sync,
>;

/// An error from parsing or evaluating an expression.
///
/// `code` is JSONata's error code (for example `"S0201"` syntax error,
/// `"T2001"` non-numeric left operand of an arithmetic operator, `"D3030"`
/// value not castable to a number). Limits enforced by this implementation
/// use the guardrail codes of <https://docs.jsonata.org/guardrails>:
/// `"D1011"` (nesting or recursion depth exceeded), `"D1012"` (the
/// evaluation step budget of [`Environment::set_step_limit`] or time budget
/// of [`Environment::set_time_limit`] ran out), `"D2015"` (a sequence longer
/// than [`Environment::set_sequence_limit`]); `"S0303"` is a regular
/// expression the engine does not support. `position` is the character
/// offset (0-based, in Unicode scalar values) in the expression text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonataError {
    /// JSONata error code, e.g. `"T2001"`.
    pub code: String,
    /// Human-readable description.
    pub message: String,
    /// Character offset in the expression, when the error relates to a token.
    pub position: Option<usize>,
}

impl JsonataError {
    /// An error with a code, message and optional position.
    pub fn new(code: &str, message: impl Into<String>, position: Option<usize>) -> Self {
        JsonataError {
            code: code.to_string(),
            message: message.into(),
            position,
        }
    }
}

impl fmt::Display for JsonataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{} at position {}: {}", self.code, p, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for JsonataError {}

/// Evaluation steps allowed by [`Environment::new`]: 10 million.
pub const DEFAULT_STEP_LIMIT: u64 = 10_000_000;

/// Longest sequence allowed by [`Environment::new`]: 10 million items.
pub const DEFAULT_SEQUENCE_LIMIT: usize = 10_000_000;

/// A parsed JSONata expression. Parse once with [`parse`], evaluate many
/// times; it is `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Expression {
    ast: Arc<parser::Node>,
    shape: Arc<parser::Shape>,
}

/// Expressions up to this many characters are parsed on the caller's
/// thread (their nesting cannot exceed their length).
const INLINE_PARSE_CHARS: usize = 64;
/// Expressions without function definitions, nesting at most this deep,
/// evaluated over data nesting at most [`INLINE_DATA_DEPTH`] deep, run on
/// the caller's thread; others on a thread with a large stack.
const INLINE_TREE_DEPTH: usize = 24;
const INLINE_DATA_DEPTH: usize = 64;

/// Whether `v` nests arrays/objects deeper than `limit` (iterative).
fn json_deeper_than(v: &serde_json::Value, limit: usize) -> bool {
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        if d > limit {
            return true;
        }
        match v {
            serde_json::Value::Array(a) => stack.extend(
                a.iter()
                    .filter(|x| x.is_array() || x.is_object())
                    .map(|x| (x, d + 1)),
            ),
            serde_json::Value::Object(m) => stack.extend(
                m.values()
                    .filter(|x| x.is_array() || x.is_object())
                    .map(|x| (x, d + 1)),
            ),
            _ => {}
        }
    }
    false
}

/// Parses JSONata expression text. Texts of up to 64 characters are parsed
/// on the calling thread, longer ones on a helper thread with a large stack.
///
/// Errors: `S01xx` lexical errors (unterminated string `S0101`, bad escape
/// `S0103`/`S0104`, unterminated backquote name `S0105`, unclosed comment
/// `S0106`), `S02xx` grammar errors (`S0201` unexpected token, `S0202`
/// expected token, `S0203` unexpected end), `S0301`/`S0302` regex literal
/// errors, `D1011` nesting deeper than the parser's depth limit.
pub fn parse(expr: &str) -> Result<Expression, JsonataError> {
    let work = |text: &str| -> Result<(parser::Node, parser::Shape), JsonataError> {
        let ast = parser::parse(text)?;
        let shape = parser::shape(&ast);
        Ok((ast, shape))
    };
    let (ast, shape) = if expr.chars().count() <= INLINE_PARSE_CHARS {
        work(expr)?
    } else {
        stack::with_large_stack(|| work(expr))?
    };
    Ok(Expression {
        ast: Arc::new(ast),
        shape: Arc::new(shape),
    })
}

/// Variable bindings and host functions visible to an evaluation, plus its
/// resource limits.
#[derive(Clone)]
pub struct Environment {
    vars: HashMap<String, serde_json::Value>,
    functions: HashMap<String, NativeFunction>,
    step_limit: Option<u64>,
    time_limit: Option<std::time::Duration>,
    depth_limit: usize,
    sequence_limit: Option<usize>,
}

impl Default for Environment {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("vars", &self.vars)
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .field("step_limit", &self.step_limit)
            .field("time_limit", &self.time_limit)
            .field("depth_limit", &self.depth_limit)
            .field("sequence_limit", &self.sequence_limit)
            .finish()
    }
}

impl Environment {
    /// An environment with no bindings, the built-in function library, the
    /// default step budget ([`DEFAULT_STEP_LIMIT`] steps, so that endless
    /// tail recursion ends), the default sequence limit
    /// ([`DEFAULT_SEQUENCE_LIMIT`]), no time budget and the default depth
    /// limit (see [`Environment::set_depth_limit`]).
    pub fn new() -> Self {
        Environment {
            vars: HashMap::new(),
            functions: HashMap::new(),
            step_limit: Some(DEFAULT_STEP_LIMIT),
            time_limit: None,
            depth_limit: eval::DEFAULT_DEPTH_LIMIT,
            sequence_limit: Some(DEFAULT_SEQUENCE_LIMIT),
        }
    }

    /// Binds `$name` (give `name` without the `$`) to a JSON value.
    pub fn bind(&mut self, name: &str, value: serde_json::Value) {
        let name = name.strip_prefix('$').unwrap_or(name);
        self.vars.insert(name.to_string(), value);
    }

    /// Binds `$name` (without the `$`) to a host function. A binding with
    /// the name of a built-in (`now`, `millis`, ...) replaces the built-in.
    /// Lookup order for `$name`: variables bound in the expression, then
    /// [`Environment::bind`] values, then host functions, then built-ins.
    pub fn bind_function(&mut self, name: &str, f: NativeFunction) {
        let name = name.strip_prefix('$').unwrap_or(name);
        self.functions.insert(name.to_string(), f);
    }

    /// Caps the number of evaluation steps (expression nodes evaluated plus
    /// loop iterations in built-ins); exceeding it fails with `D1012`.
    /// `u64::MAX` lifts the cap.
    pub fn set_step_limit(&mut self, steps: u64) {
        self.step_limit = Some(steps);
    }

    /// Caps the length of any sequence or array an evaluation produces,
    /// including intermediate ones; exceeding it fails with `D2015`.
    /// Default [`DEFAULT_SEQUENCE_LIMIT`] (ranges are separately capped at
    /// 10 million items, `D2014`).
    pub fn set_sequence_limit(&mut self, items: usize) {
        self.sequence_limit = Some(items);
    }

    /// Caps the wall-clock time of one evaluation; exceeding it fails with
    /// `D1012`.
    pub fn set_time_limit(&mut self, limit: std::time::Duration) {
        self.time_limit = Some(limit);
    }

    /// Caps the nesting depth of evaluation (nested expressions plus nested
    /// function calls, including recursion; calls in tail position do not
    /// nest); exceeding it fails with `D1011`. Default 2000; values above
    /// 5000 are clamped to 5000.
    pub fn set_depth_limit(&mut self, depth: usize) {
        self.depth_limit = depth.min(eval::MAX_DEPTH_LIMIT);
    }
}

impl Expression {
    /// Evaluates the expression against `input` (`None` = no input).
    /// `None` = JSONata's `undefined`.
    ///
    /// Shallow expressions without function definitions over shallow data
    /// run on the calling thread (they need well under 1 MiB of stack, even
    /// unoptimised); everything else runs on a helper thread with a 256 MiB
    /// stack, so the depth limits rather than the caller's stack bound it.
    ///
    /// Errors: JSONata's `T`/`D` codes for type and dynamic errors, `D1011`
    /// depth limit, `D1012` step or time budget, `D2015` sequence length
    /// limit. Numbers that are not finite
    /// (`1/0`) fail with `D1001`. Function values inside the result are
    /// dropped from objects and become `null` in arrays; a function result
    /// at the top level is `undefined`.
    pub fn evaluate(
        &self,
        input: Option<&serde_json::Value>,
        env: &Environment,
    ) -> Result<Option<serde_json::Value>, JsonataError> {
        let ast = &self.ast;
        let shape = &self.shape;
        // An expression that never reads the input skips converting it.
        let input = if shape.needs_input { input } else { None };
        let inline = !shape.open_ended
            && shape.depth <= INLINE_TREE_DEPTH
            && !input.is_some_and(|v| json_deeper_than(v, INLINE_DATA_DEPTH))
            && shape.vars.iter().all(|name| {
                !env.functions.contains_key(name)
                    && !env
                        .vars
                        .get(name)
                        .is_some_and(|v| json_deeper_than(v, INLINE_DATA_DEPTH))
            });
        if inline {
            return eval::evaluate_root(ast, input, env, eval::INLINE_DEPTH_LIMIT);
        }
        stack::with_large_stack(move || eval::evaluate_root(ast, input, env, env.depth_limit))
    }
}

mod builtins;
mod datetime;
/// Proleptic Gregorian calendar arithmetic shared with the ASL engine.
pub mod calendar {
    pub use crate::datetime::{civil_from_days, days_from_civil};
}
mod eval;
mod lexer;
mod numfmt;
mod parser;
mod stack;
mod value;
