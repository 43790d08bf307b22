//! The functions Step Functions adds to JSONata (`$partition`, `$range`,
//! `$hash`, `$random`, `$uuid`, `$parse`), as "Transforming data with
//! JSONata in Step Functions" in the AWS Step Functions Developer Guide
//! documents them. They stand in for the intrinsic functions
//! `States.ArrayPartition`, `States.ArrayRange`, `States.Hash`,
//! `States.MathRandom`, `States.UUID` and `States.StringToJson`, and share
//! their rules and limits (see [`crate::intrinsics`]).
//!
//! Each function is a plain Rust function over `serde_json::Value`
//! arguments (`None` = JSONata's `undefined`), returning `Ok(None)` for
//! `undefined`. [`register`] binds them into a `stratus_jsonata`
//! environment; `$random` replaces JSONata's own (it takes a seed here).
//!
//! Errors: [`FunctionError`] with code `T0410` (an argument does not match
//! the function's signature: wrong type or count) or `D3137` (the function
//! raised an error: a limit exceeded, an unsupported algorithm, invalid
//! JSON). The interpreter reports either as `States.QueryEvaluationError`.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::Entropy;
use crate::intrinsics::{
    MAX_STRING_CHARS, as_integer, hash_hex, partition as split_chunks, range as int_range,
    seeded_u64, uuid_v4,
};

/// JSONata's code for an argument that does not match the signature.
pub const SIGNATURE_MISMATCH: &str = "T0410";
/// JSONata's code for an error raised by a function.
pub const FUNCTION_ERROR: &str = "D3137";

/// A failure of one of the functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    /// `T0410` (signature mismatch) or `D3137` (error raised by the function).
    pub code: &'static str,
    /// Human-readable message naming the function.
    pub message: String,
}

fn signature(name: &str, what: impl std::fmt::Display) -> FunctionError {
    FunctionError {
        code: SIGNATURE_MISMATCH,
        message: format!("${name}: {what}"),
    }
}

fn raised(name: &str, what: impl std::fmt::Display) -> FunctionError {
    FunctionError {
        code: FUNCTION_ERROR,
        message: format!("${name}: {what}"),
    }
}

type Args<'a> = &'a [Option<Value>];

fn arity(name: &str, args: Args, min: usize, max: usize) -> Result<(), FunctionError> {
    if args.len() < min || args.len() > max {
        let expected = if min == max {
            format!("exactly {min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(signature(
            name,
            format!(
                "takes {expected} argument(s), but {} were given",
                args.len()
            ),
        ));
    }
    Ok(())
}

fn integer_arg(name: &str, position: usize, v: &Value) -> Result<i64, FunctionError> {
    as_integer(v).ok_or_else(|| {
        signature(
            name,
            format!("argument {position} must be an integer, but it is {v}"),
        )
    })
}

/// `$partition(array, size)`: the array split into chunks of `size` items
/// (the last chunk may be shorter). `size` must be a positive integer.
/// `undefined` array → `undefined`.
pub fn partition(args: Args) -> Result<Option<Value>, FunctionError> {
    arity("partition", args, 2, 2)?;
    let Some(array) = &args[0] else {
        return Ok(None);
    };
    let items = match array {
        Value::Array(a) => a.clone(),
        other => {
            return Err(signature(
                "partition",
                format!("argument 1 must be an array, but it is {other}"),
            ));
        }
    };
    let size = match &args[1] {
        Some(v @ Value::Number(n)) => match as_integer(v) {
            Some(i) => i,
            // A non-integer chunk size is rounded down.
            None => n
                .as_f64()
                .map_or(0, |f| f.floor().clamp(-9.0e15, 9.0e15) as i64),
        },
        Some(other) => {
            return Err(signature(
                "partition",
                format!("argument 2 (the chunk size) must be a number, but it is {other}"),
            ));
        }
        None => {
            return Err(signature(
                "partition",
                "argument 2 (the chunk size) is undefined",
            ));
        }
    };
    if size <= 0 {
        return Err(raised(
            "partition",
            format!("the chunk size must be a positive, non-zero integer, but it is {size}"),
        ));
    }
    Ok(Some(Value::Array(split_chunks(items, size as usize))))
}

/// `$range(start, end, step)`: `start, start+step, ...` up to and including
/// `end`; integers only, `step` non-zero, at most 1000 elements.
pub fn range(args: Args) -> Result<Option<Value>, FunctionError> {
    arity("range", args, 3, 3)?;
    let mut n = [0i64; 3];
    for (i, a) in args.iter().enumerate() {
        match a {
            Some(v) => n[i] = integer_arg("range", i + 1, v)?,
            None => return Ok(None),
        }
    }
    int_range(n[0], n[1], n[2])
        .map(|v| Some(Value::Array(v)))
        .map_err(|m| raised("range", m))
}

/// `$hash(value, algorithm)`: lower-case hex digest of the value (a string
/// as is, anything else as JSON text), at most 10,000 characters, with
/// `MD5`, `SHA-1`, `SHA-256`, `SHA-384` or `SHA-512`.
pub fn hash(args: Args) -> Result<Option<Value>, FunctionError> {
    arity("hash", args, 2, 2)?;
    let Some(value) = &args[0] else {
        return Ok(None);
    };
    let data = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let algorithm = match &args[1] {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(signature(
                "hash",
                format!("argument 2 (the algorithm) must be a string, but it is {other}"),
            ));
        }
        None => return Err(signature("hash", "argument 2 (the algorithm) is undefined")),
    };
    let chars = data.chars().count();
    if chars > MAX_STRING_CHARS {
        return Err(raised(
            "hash",
            format!("the input has {chars} characters; at most {MAX_STRING_CHARS} are allowed"),
        ));
    }
    hash_hex(&data, algorithm)
        .map(|h| Some(Value::String(h)))
        .map_err(|m| raised("hash", m))
}

/// `$random([seed])`: a number with 0 ≤ n < 1. With an integer `seed` the
/// result is the same for the same seed; without one it is drawn from
/// `entropy`.
pub fn random(args: Args, entropy: &mut dyn Entropy) -> Result<Option<Value>, FunctionError> {
    arity("random", args, 0, 1)?;
    let bits = match args.first() {
        Some(Some(seed)) => seeded_u64(integer_arg("random", 1, seed)? as u64),
        Some(None) | None => entropy.next_u64(),
    };
    // 53 random bits scaled into [0, 1).
    let n = (bits >> 11) as f64 / (1u64 << 53) as f64;
    Ok(serde_json::Number::from_f64(n).map(Value::Number))
}

/// `$uuid()`: a version 4 UUID drawn from `entropy`.
pub fn uuid(args: Args, entropy: &mut dyn Entropy) -> Result<Option<Value>, FunctionError> {
    arity("uuid", args, 0, 0)?;
    Ok(Some(Value::String(uuid_v4(
        entropy.next_u64(),
        entropy.next_u64(),
    ))))
}

/// `$parse(jsonString)`: the JSON value the string holds.
pub fn parse(args: Args) -> Result<Option<Value>, FunctionError> {
    arity("parse", args, 1, 1)?;
    match &args[0] {
        None => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|e| {
            raised(
                "parse",
                format!("the argument is not valid JSON text ({e})"),
            )
        }),
        Some(other) => Err(signature(
            "parse",
            format!("argument 1 must be a string, but it is {other}"),
        )),
    }
}

/// Randomness shared by the `$random` and `$uuid` bindings of one
/// environment.
pub type SharedEntropy = Arc<Mutex<dyn Entropy + Send>>;

/// Binds `$partition`, `$range`, `$hash`, `$random`, `$uuid` and `$parse`
/// into `env`; `$random` (without a seed) and `$uuid` draw from `entropy`.
pub fn register(env: &mut stratus_jsonata::Environment, entropy: SharedEntropy) {
    fn wrap(
        f: impl Fn(Args) -> Result<Option<Value>, FunctionError> + Send + Sync + 'static,
    ) -> stratus_jsonata::NativeFunction {
        Arc::new(move |args: Args| {
            f(args).map_err(|e| stratus_jsonata::JsonataError::new(e.code, e.message, None))
        })
    }
    env.bind_function("partition", wrap(partition));
    env.bind_function("range", wrap(range));
    env.bind_function("hash", wrap(hash));
    env.bind_function("parse", wrap(parse));
    let e = entropy.clone();
    env.bind_function(
        "random",
        wrap(move |args| match e.lock() {
            Ok(mut g) => random(args, &mut *g),
            Err(poisoned) => random(args, &mut *poisoned.into_inner()),
        }),
    );
    env.bind_function(
        "uuid",
        wrap(move |args| match entropy.lock() {
            Ok(mut g) => uuid(args, &mut *g),
            Err(poisoned) => uuid(args, &mut *poisoned.into_inner()),
        }),
    );
}

#[cfg(test)]
mod tests;
