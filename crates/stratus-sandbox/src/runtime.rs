//! Which program serves a Lambda runtime id on this host.
//!
//! `python3.x` and `nodejs*` run through bootstrap programs embedded in the
//! binary (see `runtimes/`); `provided`, `provided.al2` and `provided.al2023`
//! run the package's own executable `bootstrap`, as on AWS
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html>).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The embedded Python bootstrap (`runtimes/python/bootstrap.py`).
pub const PYTHON_BOOTSTRAP: &str = include_str!("../../../runtimes/python/bootstrap.py");
/// The embedded Node.js bootstrap (`runtimes/node/bootstrap.mjs`).
pub const NODE_BOOTSTRAP: &str = include_str!("../../../runtimes/node/bootstrap.mjs");

/// Runtime ids Lambda no longer accepts for new functions
/// (<https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html#runtimes-deprecated>).
pub const DEPRECATED_RUNTIMES: &[&str] = &[
    "nodejs",
    "nodejs4.3",
    "nodejs4.3-edge",
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.x",
    "nodejs12.x",
    "nodejs14.x",
    "nodejs16.x",
    "python2.7",
    "python3.6",
    "python3.7",
    "python3.8",
    "dotnetcore1.0",
    "dotnetcore2.0",
    "dotnetcore2.1",
    "dotnetcore3.1",
    "dotnet6",
    "go1.x",
    "ruby2.5",
    "ruby2.7",
    "java8",
];

/// The language family of a runtime id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `python3.x`
    Python,
    /// `nodejsNN.x`
    Node,
    /// `provided`, `provided.al2`, `provided.al2023`: the package's `bootstrap`.
    Provided,
}

/// How to start the runtime process of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRuntime {
    /// The runtime id (`python3.12`).
    pub id: String,
    /// Its family.
    pub family: Family,
    /// Interpreter program (absolute or on PATH); `None` for provided runtimes.
    pub interpreter: Option<String>,
    /// A warning to log when the interpreter is not the exact version asked for.
    pub warning: Option<String>,
    /// `AWS_EXECUTION_ENV` value (`AWS_Lambda_python3.12`), absent for provided.
    pub execution_env: Option<String>,
}

/// The family of a runtime id, if stratus can run it at all.
pub fn family_of(id: &str) -> Option<Family> {
    if id.starts_with("python3.") {
        Some(Family::Python)
    } else if id.starts_with("nodejs") && id.ends_with(".x") {
        Some(Family::Node)
    } else if id == "provided" || id == "provided.al2" || id == "provided.al2023" {
        Some(Family::Provided)
    } else {
        None
    }
}

fn probe_cache() -> &'static Mutex<HashMap<String, Option<String>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<String>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Runs `program args` and returns its trimmed stdout if it exits 0 (cached).
fn probe(program: &str, args: &[&str]) -> Option<String> {
    let key = format!("{program} {}", args.join(" "));
    if let Some(v) = probe_cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
    {
        return v.clone();
    }
    let out = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    probe_cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, out.clone());
    out
}

const PY_VERSION: &[&str] = &["-c", "import sys;print('%d.%d' % sys.version_info[:2])"];

/// Python interpreters of an exact version that may be installed outside PATH
/// (pyenv, /usr/local).
fn python_candidates(ver: &str) -> Vec<String> {
    let mut v = vec![format!("python{ver}")];
    for base in ["/usr/local/bin", "/usr/bin"] {
        v.push(format!("{base}/python{ver}"));
    }
    if let Some(home) = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")))
        && let Ok(rd) = std::fs::read_dir(home.join("versions"))
    {
        let mut dirs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for d in dirs.into_iter().rev() {
            let name = d
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            if name == ver || name.starts_with(&format!("{ver}.")) {
                v.push(
                    d.join("bin")
                        .join(format!("python{ver}"))
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    v
}

/// Resolves the interpreter for a runtime id.
///
/// `overrides` maps a runtime id or family name (`python`, `nodejs`) to a
/// program. Without an override, `python3.12` uses a `python3.12` that
/// reports version 3.12, else (unless `strict`) the host's `python3` with a
/// warning; `nodejs20.x` uses `node` if its major version is 20, else (unless
/// `strict`) `node` with a warning.
///
/// Errors: a message naming what is missing (the caller turns it into
/// `InvalidParameterValueException`).
pub fn resolve(
    id: &str,
    overrides: &HashMap<String, String>,
    strict: bool,
) -> Result<ResolvedRuntime, String> {
    let family = family_of(id).ok_or_else(|| {
        format!(
            "The runtime parameter of {id} is not supported by stratus. Supported runtimes are python3.x, nodejsNN.x, provided, provided.al2 and provided.al2023."
        )
    })?;
    let execution_env = Some(format!("AWS_Lambda_{id}"));
    match family {
        Family::Provided => Ok(ResolvedRuntime {
            id: id.into(),
            family,
            interpreter: None,
            warning: None,
            execution_env: None,
        }),
        Family::Python => {
            let ver = id.trim_start_matches("python");
            if let Some(p) = overrides.get(id).or_else(|| overrides.get("python")) {
                return match probe(p, PY_VERSION) {
                    Some(_) => Ok(ResolvedRuntime {
                        id: id.into(),
                        family,
                        interpreter: Some(p.clone()),
                        warning: None,
                        execution_env,
                    }),
                    None => Err(format!(
                        "The interpreter '{p}' configured for runtime {id} does not run on this host."
                    )),
                };
            }
            for cand in python_candidates(ver) {
                if probe(&cand, PY_VERSION).as_deref() == Some(ver) {
                    return Ok(ResolvedRuntime {
                        id: id.into(),
                        family,
                        interpreter: Some(cand),
                        warning: None,
                        execution_env,
                    });
                }
            }
            if strict {
                return Err(format!(
                    "Runtime {id} needs python{ver}, which this host does not have (strict runtimes are on). Install python{ver} or map the runtime to an interpreter with --runtime {id}=PATH."
                ));
            }
            match probe("python3", PY_VERSION) {
                Some(have) => Ok(ResolvedRuntime {
                    id: id.into(),
                    family,
                    interpreter: Some("python3".into()),
                    warning: Some(format!(
                        "runtime {id}: python{ver} not found on this host; using python3 ({have})"
                    )),
                    execution_env,
                }),
                None => Err(format!(
                    "Runtime {id} needs a Python interpreter, and neither python{ver} nor python3 runs on this host."
                )),
            }
        }
        Family::Node => {
            let major = id.trim_start_matches("nodejs").trim_end_matches(".x");
            let prog = overrides
                .get(id)
                .or_else(|| overrides.get("nodejs"))
                .cloned()
                .unwrap_or_else(|| "node".into());
            let have = probe(&prog, &["--version"]).ok_or_else(|| {
                format!("Runtime {id} needs Node.js, and '{prog}' does not run on this host.")
            })?;
            let have_major = have
                .trim_start_matches('v')
                .split('.')
                .next()
                .unwrap_or("")
                .to_string();
            if have_major == major || overrides.contains_key(id) {
                return Ok(ResolvedRuntime {
                    id: id.into(),
                    family,
                    interpreter: Some(prog),
                    warning: None,
                    execution_env,
                });
            }
            if strict {
                return Err(format!(
                    "Runtime {id} needs Node.js {major}, and this host has {have} (strict runtimes are on)."
                ));
            }
            Ok(ResolvedRuntime {
                id: id.into(),
                family,
                interpreter: Some(prog),
                warning: Some(format!(
                    "runtime {id}: Node.js {major} not found on this host; using {have}"
                )),
                execution_env,
            })
        }
    }
}

/// Writes the embedded bootstraps under `dir` (`python/bootstrap.py`,
/// `node/bootstrap.mjs`) and returns `dir`; this is `LAMBDA_RUNTIME_DIR`.
pub fn install_bootstraps(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir.join("python"))?;
    std::fs::create_dir_all(dir.join("node"))?;
    std::fs::write(dir.join("python/bootstrap.py"), PYTHON_BOOTSTRAP)?;
    std::fs::write(dir.join("node/bootstrap.mjs"), NODE_BOOTSTRAP)?;
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(family_of("python3.12"), Some(Family::Python));
        assert_eq!(family_of("nodejs20.x"), Some(Family::Node));
        assert_eq!(family_of("provided.al2023"), Some(Family::Provided));
        assert_eq!(family_of("java21"), None);
        assert!(
            resolve("java21", &HashMap::new(), false)
                .unwrap_err()
                .contains("java21")
        );
    }

    #[test]
    fn missing_interpreter_is_named() {
        let mut o = HashMap::new();
        o.insert("python".to_string(), "/nonexistent/python".to_string());
        let e = resolve("python3.12", &o, false).unwrap_err();
        assert!(e.contains("/nonexistent/python"), "{e}");
    }
}
