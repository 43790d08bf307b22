//! `stratus sdk install`: the AWS SDKs that Lambda's managed runtimes include,
//! installed once per data directory so functions can `import boto3` or
//! import `@aws-sdk/*` clients without packaging them, as on AWS
//! (<https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html>).

use std::path::Path;
use std::process::Command;

/// The SDK v3 clients installed for Node.js functions by default.
pub const NODE_CLIENTS: &[&str] = &[
    "@aws-sdk/client-lambda",
    "@aws-sdk/client-s3",
    "@aws-sdk/client-sqs",
    "@aws-sdk/client-sns",
    "@aws-sdk/client-eventbridge",
    "@aws-sdk/client-sfn",
    "@aws-sdk/client-dynamodb",
    "@aws-sdk/lib-dynamodb",
    "@aws-sdk/client-cloudwatch-logs",
    "@aws-sdk/client-secrets-manager",
    "@aws-sdk/client-ssm",
];

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    eprintln!("stratus: running {shown}");
    let st = cmd.status().map_err(|e| format!("{shown}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({st})"))
    }
}

/// Installs boto3 into `<sdk>/python` (with `python -m pip install --target`)
/// and the Node.js clients into `<sdk>/node/node_modules` (with npm).
///
/// Errors: the installer is missing or fails (its output is shown).
pub fn install(
    sdk_dir: &Path,
    python: bool,
    node: bool,
    python_bin: &str,
    extra_node: &[String],
) -> Result<(), String> {
    if python {
        let target = sdk_dir.join("python");
        std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
        run(Command::new(python_bin)
            .args(["-m", "pip", "install", "--quiet", "--upgrade", "--target"])
            .arg(&target)
            .arg("boto3"))?;
        println!("boto3 installed in {}", target.display());
    }
    if node {
        let prefix = sdk_dir.join("node");
        std::fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
        let mut cmd = Command::new("npm");
        cmd.args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix);
        cmd.args(NODE_CLIENTS);
        cmd.args(extra_node);
        run(&mut cmd)?;
        println!(
            "AWS SDK for JavaScript v3 installed in {}",
            prefix.join("node_modules").display()
        );
    }
    Ok(())
}
