"""The unmodified AWS CLI (PyPI awscli) against stratus: the commands of a
quickstart, as a user would type them."""

import base64
import json

import pytest
from harness import LAST_MODIFIED_RE, PYTHON_RUNTIME, ROLE, function_arn, sha256_b64, unique_name

pytestmark = pytest.mark.cli


@pytest.fixture
def zip_path(tmp_path, python_zip):
    path = tmp_path / "function.zip"
    path.write_bytes(python_zip)
    return path


def test_cli_quickstart(aws_cli, tmp_path, zip_path, python_zip):
    name = unique_name("cli")
    created = aws_cli("lambda", "create-function", "--function-name", name,
                      "--runtime", PYTHON_RUNTIME, "--handler", "app.handler", "--role", ROLE,
                      "--zip-file", f"fileb://{zip_path}")
    try:
        assert created["FunctionName"] == name
        assert created["FunctionArn"] == function_arn(name)
        assert created["CodeSha256"] == sha256_b64(python_zip)
        assert created["CodeSize"] == len(python_zip)
        assert created["State"] == "Pending"
        assert LAST_MODIFIED_RE.match(created["LastModified"])

        aws_cli("lambda", "wait", "function-active-v2", "--function-name", name)

        out = tmp_path / "out.json"
        result = aws_cli("lambda", "invoke", "--function-name", name,
                         *aws_cli.payload_args,
                         "--payload", '{"action": "echo", "from": "cli"}', str(out))
        assert result["StatusCode"] == 200
        assert result["ExecutedVersion"] == "$LATEST"
        assert "FunctionError" not in result
        body = json.loads(out.read_text())
        assert body["event"] == {"action": "echo", "from": "cli"}
        assert body["context"]["function_name"] == name

        tail = aws_cli("lambda", "invoke", "--function-name", name, "--log-type", "Tail",
                       *aws_cli.payload_args,
                       "--payload", '{"action": "log", "lines": ["from the cli"]}', str(out))
        log = base64.b64decode(tail["LogResult"]).decode()
        assert "from the cli" in log and "REPORT RequestId: " in log

        listed = aws_cli("lambda", "list-functions")
        assert name in [f["FunctionName"] for f in listed["Functions"]]

        got = aws_cli("lambda", "get-function", "--function-name", name)
        assert got["Configuration"]["State"] == "Active"
        assert got["Configuration"]["LastUpdateStatus"] == "Successful"

        updated = aws_cli("lambda", "update-function-configuration", "--function-name", name,
                          "--timeout", "9", "--environment", "Variables={COLOR=blue}")
        assert updated["Timeout"] == 9
        assert updated["Environment"] == {"Variables": {"COLOR": "blue"}}
        aws_cli("lambda", "wait", "function-updated-v2", "--function-name", name)
        aws_cli("lambda", "invoke", "--function-name", name, *aws_cli.payload_args,
                "--payload", '{"action": "env", "names": ["COLOR"]}', str(out))
        assert json.loads(out.read_text())["COLOR"] == "blue"
    finally:
        aws_cli.run("lambda", "delete-function", "--function-name", name, check=False)

    gone = aws_cli.run("lambda", "get-function", "--function-name", name, check=False)
    assert gone.returncode != 0
    assert "ResourceNotFoundException" in gone.stderr


def test_cli_function_error(aws_cli, tmp_path, zip_path):
    name = unique_name("cli-err")
    aws_cli("lambda", "create-function", "--function-name", name, "--runtime", PYTHON_RUNTIME,
            "--handler", "app.handler", "--role", ROLE, "--zip-file", f"fileb://{zip_path}")
    try:
        aws_cli("lambda", "wait", "function-active-v2", "--function-name", name)
        out = tmp_path / "err.json"
        result = aws_cli("lambda", "invoke", "--function-name", name, *aws_cli.payload_args,
                         "--payload", '{"action": "raise", "message": "cli boom"}', str(out))
        assert result["StatusCode"] == 200
        assert result["FunctionError"] == "Unhandled"
        body = json.loads(out.read_text())
        assert body["errorMessage"] == "cli boom" and body["errorType"] == "CustomError"
    finally:
        aws_cli.run("lambda", "delete-function", "--function-name", name, check=False)


def test_cli_errors(aws_cli, zip_path):
    missing = aws_cli.run("lambda", "get-function", "--function-name", unique_name("cli-missing"), check=False)
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr

    name = unique_name("cli-dup")
    args = ("lambda", "create-function", "--function-name", name, "--runtime", PYTHON_RUNTIME,
            "--handler", "app.handler", "--role", ROLE, "--zip-file", f"fileb://{zip_path}")
    aws_cli(*args)
    try:
        dup = aws_cli.run(*args, check=False)
        assert dup.returncode != 0 and "ResourceConflictException" in dup.stderr
    finally:
        aws_cli.run("lambda", "delete-function", "--function-name", name, check=False)


def test_cli_with_aws_endpoint_url_variable(aws_cli):
    # Recent CLIs read the endpoint from AWS_ENDPOINT_URL, no flag needed.
    listed = aws_cli("lambda", "list-functions", endpoint=False,
                     env=aws_cli.env(AWS_ENDPOINT_URL=aws_cli.endpoint))
    assert "Functions" in listed


def test_cli_account_settings(aws_cli):
    settings = aws_cli("lambda", "get-account-settings")
    assert settings["AccountLimit"]["CodeSizeZipped"] == 52428800
