//! Execution environments: runtime processes, their Runtime API endpoints,
//! runtime resolution and deployment package unpacking.

pub mod cgroup;
pub mod env;
pub mod isolation;
pub mod package;
pub mod runtime;

pub use env::{EnvSpec, Environment, InitOutcome, Invocation, LogSink, Outcome};
