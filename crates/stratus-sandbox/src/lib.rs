//! Execution environments: runtime processes, their Runtime API endpoints,
//! runtime resolution and deployment package unpacking.

pub mod cgroup;
pub mod env;
pub mod extensions;
pub mod isolation;
pub mod launcher;
pub mod package;
pub mod runtime;
pub mod telemetry;

pub use env::{EnvSpec, Environment, InitOutcome, Invocation, LogSink, Outcome};
