//! The Amazon States Language: parsing and validation of state machine
//! definitions, JSONPath and JSONata data processing, intrinsic functions,
//! Choice rules and the interpreter. No I/O: task integrations, the clock
//! and randomness come in through traits, so runs are deterministic.
//!
//! Source of the rules: the Amazon States Language specification
//! (<https://states-language.net/spec.html>) and the AWS Step Functions
//! Developer Guide.

use serde_json::Value;

pub mod choice;
pub mod definition;
pub mod interpreter;
pub mod intrinsics;
pub mod jsonata_functions;
pub mod path;
#[cfg(test)]
mod props;
pub mod query;

pub use definition::{Diagnostic, Severity, StateMachine, validate};
pub use interpreter::{
    ExecutionInfo, Failure, Host, InspectionLevel, MapRunEnd, MapRunHost, MapRunSpec, TaskCall,
    TestStateResult, execute, test_state,
};

/// A boxed, sendable future (the return type of [`Host`]'s asynchronous
/// methods).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Resolves a path (`$.a.b`, `$$.Execution.Id`, `$myVariable`) against the
/// current state's data: `None` when the path selects nothing.
pub type Resolver<'a> = &'a dyn Fn(&str) -> Option<Value>;

/// Randomness for States.MathRandom, States.UUID, `$random()`, `$uuid()`
/// and retry jitter. The interpreter's host supplies it so runs can be
/// replayed.
pub trait Entropy {
    /// A uniformly distributed 64-bit value.
    fn next_u64(&mut self) -> u64;
}
