"""Real function code on every kind of runtime issue #2 names:

* Python through AWS's own runtime interface client `awslambdaric`, packaged
  as a `provided.al2023` custom runtime (tests/functions/python_ric);
* Node.js, CommonJS (async, callback, throwing handlers) and ES modules
  (tests/functions/node_basic), on stratus's nodejs runtime;
* Rust built with the `lambda_runtime` crate, zipped as `bootstrap` for
  `provided.al2023` (tests/functions/rust_noop).

These run in CI: a missing prerequisite (awslambdaric, cargo) fails the test
with a message, it is never skipped silently.
"""

import base64
import json
import re
import time

import pytest
from harness import (
    LOG_STREAM_RE,
    NODE_RUNTIME,
    PROVIDED_RUNTIME,
    UUID_RE,
    function_arn,
    invoke,
    invoke_ok,
    make_zip,
    parse_reports,
)

# ====================================================================== awslambdaric


@pytest.fixture(scope="module")
def ric_fn(module_functions, python_ric_zip):
    return module_functions.python(python_ric_zip, runtime=PROVIDED_RUNTIME, handler="app.handler",
                                   Timeout=10, Environment={"Variables": {"MY_VAR": "ric"}})


@pytest.mark.awslambdaric
def test_ric_echo_and_context(lambda_client, ric_fn):
    client_context = {"custom": {"k": "v"}, "env": {"e": "1"}}
    inv = invoke_ok(lambda_client, ric_fn, {"action": "echo", "x": [1, 2]},
                    ClientContext=base64.b64encode(json.dumps(client_context).encode()).decode())
    assert inv.executed_version == "$LATEST"
    assert inv.payload["event"] == {"action": "echo", "x": [1, 2]}
    ctx = inv.payload["context"]
    assert ctx["function_name"] == ric_fn
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == function_arn(ric_fn)
    assert int(ctx["memory_limit_in_mb"]) == 128
    assert UUID_RE.match(ctx["aws_request_id"])
    assert ctx["log_group_name"] == f"/aws/lambda/{ric_fn}"
    assert LOG_STREAM_RE.match(ctx["log_stream_name"])
    assert 0 < ctx["remaining_time_in_millis"] <= 10000
    assert ctx["client_context"] == {"custom": {"k": "v"}, "env": {"e": "1"}}


@pytest.mark.awslambdaric
def test_ric_environment(lambda_client, ric_fn):
    env = invoke_ok(lambda_client, ric_fn, {"action": "env", "names": ["MY_VAR"]}).payload
    assert env["MY_VAR"] == "ric"
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == ric_fn
    # "AWS_EXECUTION_ENV ... is not defined for OS-only runtimes (the provided family)."
    assert env["AWS_EXECUTION_ENV"] is None
    assert "bootstrap" in env["task_root_files"]


@pytest.mark.awslambdaric
def test_ric_warm_reuse_and_logs(lambda_client, functions, python_ric_zip):
    name = functions.python(python_ric_zip, runtime=PROVIDED_RUNTIME, handler="app.handler")
    first = invoke_ok(lambda_client, name, {"action": "counter"}, LogType="Tail")
    second = invoke_ok(lambda_client, name, {"action": "log", "lines": ["ric printed"],
                                              "info": "ric info"}, LogType="Tail")
    third = invoke_ok(lambda_client, name, {"action": "counter"})
    assert first.payload["count"] == 1 and third.payload["count"] == 2
    assert first.payload["env_id"] == third.payload["env_id"]
    (r1,) = parse_reports(first.log)
    (r2,) = parse_reports(second.log)
    assert r1["init"] is not None and r2["init"] is None
    rid = second.invocation_id
    assert "ric printed" in second.log
    assert re.search(r"\[INFO\]\t\S+Z\t" + re.escape(rid) + r"\tric info", second.log), second.log


@pytest.mark.awslambdaric
def test_ric_unhandled_error(lambda_client, ric_fn):
    inv = invoke(lambda_client, ric_fn, {"action": "raise", "message": "ric failure"})
    assert inv.status == 200 and inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "CustomError"
    assert inv.payload["errorMessage"] == "ric failure"
    assert isinstance(inv.payload["stackTrace"], list) and inv.payload["stackTrace"]


@pytest.mark.awslambdaric
def test_ric_handler_not_found_is_an_init_error(lambda_client, functions, python_ric_zip):
    name = functions.python(python_ric_zip, runtime=PROVIDED_RUNTIME, handler="app.nope")
    inv = invoke(lambda_client, name, {})
    # awslambdaric reports it through /runtime/init/error and exits.
    assert inv.status == 200 and inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Runtime.HandlerNotFound"
    assert inv.payload["errorMessage"] == "Handler 'nope' missing on module 'app'"


@pytest.mark.awslambdaric
def test_ric_timeout(lambda_client, functions, python_ric_zip):
    name = functions.python(python_ric_zip, runtime=PROVIDED_RUNTIME, handler="app.handler", Timeout=1)
    inv = invoke(lambda_client, name, {"action": "sleep", "seconds": 10})
    assert inv.function_error == "Unhandled"
    assert re.search(r"Task timed out after 1\.\d\d seconds", inv.payload["errorMessage"]), inv.payload
    assert invoke_ok(lambda_client, name, {"action": "counter"}).payload["count"] == 1


# ====================================================================== Node.js


@pytest.fixture(scope="module")
def node_fn(module_functions, node_zip):
    return module_functions.python(node_zip, runtime=NODE_RUNTIME, handler="index.handler")


@pytest.mark.node
def test_node_async_handler_and_context(lambda_client, node_fn):
    inv = invoke_ok(lambda_client, node_fn, {"action": "echo", "n": 1})
    assert inv.executed_version == "$LATEST"
    assert inv.payload["event"] == {"action": "echo", "n": 1}
    ctx = inv.payload["context"]
    assert ctx["functionName"] == node_fn
    assert ctx["functionVersion"] == "$LATEST"
    assert ctx["invokedFunctionArn"] == function_arn(node_fn)
    assert int(ctx["memoryLimitInMB"]) == 128
    assert UUID_RE.match(ctx["awsRequestId"])
    assert ctx["logGroupName"] == f"/aws/lambda/{node_fn}"
    assert LOG_STREAM_RE.match(ctx["logStreamName"])
    assert 0 < ctx["remainingTimeInMillis"] <= 3000


@pytest.mark.node
def test_node_client_context(lambda_client, node_fn):
    encoded = base64.b64encode(json.dumps({"custom": {"a": 1}, "env": {"b": "2"}}).encode()).decode()
    ctx = invoke_ok(lambda_client, node_fn, {"action": "echo"}, ClientContext=encoded).payload["context"]
    assert ctx["clientContext"]["custom"] == {"a": 1}
    assert ctx["clientContext"]["env"] == {"b": "2"}


@pytest.mark.node
def test_node_environment(lambda_client, node_fn):
    env = invoke_ok(lambda_client, node_fn, {"action": "env"}).payload
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == node_fn
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{NODE_RUNTIME}"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["_HANDLER"] == "index.handler"


@pytest.mark.node
def test_node_console_log_format(lambda_client, node_fn):
    inv = invoke_ok(lambda_client, node_fn, {"action": "log", "message": "node says hi"}, LogType="Tail")
    rid = inv.invocation_id
    # Node.js runtime text format: <UTC timestamp>\t<request id>\tINFO\t<message>
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t" + re.escape(rid) + r"\tINFO\tnode says hi", inv.log), inv.log
    assert f"START RequestId: {rid} Version: $LATEST" in inv.log
    assert f"END RequestId: {rid}" in inv.log
    assert [r["id"] for r in parse_reports(inv.log)] == [rid]


@pytest.mark.node
def test_node_callback_handler(lambda_client, functions, node_zip):
    name = functions.python(node_zip, runtime=NODE_RUNTIME, handler="index.callback")
    inv = invoke_ok(lambda_client, name, {"k": "v"})
    assert inv.payload["style"] == "callback"
    assert inv.payload["event"] == {"k": "v"}
    assert UUID_RE.match(inv.payload["awsRequestId"])


@pytest.mark.node
def test_node_unhandled_error(lambda_client, functions, node_zip):
    name = functions.python(node_zip, runtime=NODE_RUNTIME, handler="index.thrower")
    inv = invoke(lambda_client, name, {"message": "node failure"})
    assert inv.status == 200 and inv.function_error == "Unhandled"
    body = inv.payload
    # Node.js error document: {errorType, errorMessage, trace}
    assert body["errorType"] == "CustomError"
    assert body["errorMessage"] == "node failure"
    assert isinstance(body["trace"], list) and body["trace"]
    assert body["trace"][0].startswith("CustomError: node failure")


@pytest.mark.node
def test_node_warm_reuse(lambda_client, functions, node_zip):
    name = functions.python(node_zip, runtime=NODE_RUNTIME, handler="index.counter")
    first = invoke_ok(lambda_client, name, {}, LogType="Tail")
    second = invoke_ok(lambda_client, name, {}, LogType="Tail")
    assert (first.payload["count"], second.payload["count"]) == (1, 2)
    assert first.payload["envId"] == second.payload["envId"]
    (r1,) = parse_reports(first.log)
    (r2,) = parse_reports(second.log)
    assert r1["init"] is not None and r2["init"] is None


@pytest.mark.node
def test_node_esm_handler(lambda_client, functions, node_esm_zip):
    name = functions.python(node_esm_zip, runtime=NODE_RUNTIME, handler="index.handler")
    first = invoke_ok(lambda_client, name, {"esm": True})
    second = invoke_ok(lambda_client, name, {"esm": True})
    assert first.payload["module"] == "esm"
    assert first.payload["event"] == {"esm": True}
    assert first.payload["functionName"] == name
    assert UUID_RE.match(first.payload["awsRequestId"])
    assert (first.payload["count"], second.payload["count"]) == (1, 2)


@pytest.mark.node
def test_node_handler_not_found(lambda_client, functions, node_zip):
    name = functions.python(node_zip, runtime=NODE_RUNTIME, handler="index.nope")
    inv = invoke(lambda_client, name, {})
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Runtime.HandlerNotFound"


@pytest.mark.node
def test_node_missing_module(lambda_client, functions, node_zip):
    name = functions.python(node_zip, runtime=NODE_RUNTIME, handler="missing.handler")
    inv = invoke(lambda_client, name, {})
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Runtime.ImportModuleError"


@pytest.mark.node
def test_node_timeout(lambda_client, functions, node_zip):
    name = functions.python(node_zip, runtime=NODE_RUNTIME, handler="index.handler", Timeout=1)
    inv = invoke(lambda_client, name, {"action": "sleep", "seconds": 10})
    assert inv.function_error == "Unhandled"
    assert re.search(r"Task timed out after 1\.\d\d seconds", inv.payload["errorMessage"]), inv.payload


@pytest.mark.node
@pytest.mark.sdk
@pytest.mark.timeout(900)
def test_node_function_can_call_stratus_with_sdk_v3(lambda_client, functions, node_zip, provided_sdk):
    name = functions.python(node_zip, runtime=NODE_RUNTIME, handler="index.handler", Timeout=120)
    inv = invoke_ok(lambda_client, name, {"action": "sdk"})
    assert inv.payload["FunctionArn"] == function_arn(name)


# ====================================================================== Rust


@pytest.fixture(scope="module")
def rust_fn(module_functions, rust_zip):
    return module_functions.python(rust_zip, runtime=PROVIDED_RUNTIME, handler="bootstrap")


@pytest.mark.rust
def test_rust_echo(lambda_client, rust_fn):
    event = {"hello": "rust", "list": [1, 2, 3], "nested": {"ok": True}}
    inv = invoke_ok(lambda_client, rust_fn, event, LogType="Tail")
    assert inv.payload == event
    assert inv.executed_version == "$LATEST"
    assert f"START RequestId: {inv.invocation_id} Version: $LATEST" in inv.log
    assert [r["id"] for r in parse_reports(inv.log)] == [inv.invocation_id]


@pytest.mark.rust
def test_rust_context(lambda_client, rust_fn):
    before_ms = time.time() * 1000
    inv = invoke_ok(lambda_client, rust_fn, {"context": True})
    ctx = inv.payload
    assert UUID_RE.match(ctx["request_id"])
    assert ctx["invoked_function_arn"] == function_arn(rust_fn)
    assert ctx["function_name"] == rust_fn
    assert ctx["memory"] == 128
    assert ctx["version"] == "$LATEST"
    assert ctx["log_group"] == f"/aws/lambda/{rust_fn}"
    assert LOG_STREAM_RE.match(ctx["log_stream"])
    # Lambda-Runtime-Deadline-Ms: now + timeout (3 s), in Unix ms.
    assert before_ms < ctx["deadline_ms"] <= time.time() * 1000 + 3000 + 1000


@pytest.mark.rust
def test_rust_error(lambda_client, rust_fn):
    inv = invoke(lambda_client, rust_fn, {"fail": True})
    assert inv.status == 200
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorMessage"] == "failure requested by the event"
    assert isinstance(inv.payload["errorType"], str) and inv.payload["errorType"]
    # The environment survives a returned error.
    assert invoke_ok(lambda_client, rust_fn, {"after": "error"}).payload == {"after": "error"}


@pytest.mark.rust
def test_rust_warm_invokes(lambda_client, functions, rust_zip):
    name = functions.python(rust_zip, runtime=PROVIDED_RUNTIME, handler="bootstrap")
    reports = []
    for i in range(20):
        inv = invoke_ok(lambda_client, name, {"i": i}, LogType="Tail")
        assert inv.payload == {"i": i}
        reports += parse_reports(inv.log)
    assert len(reports) == 20
    assert reports[0]["init"] is not None
    assert all(r["init"] is None for r in reports[1:])


@pytest.mark.rust
def test_rust_large_payload_round_trip(lambda_client, rust_fn):
    event = {"blob": "z" * (5 * 1024 * 1024)}
    inv = invoke_ok(lambda_client, rust_fn, event)
    assert inv.payload == event


@pytest.mark.rust
def test_rust_bootstrap_must_be_executable(lambda_client, functions, rust_zip):
    # The same package with the exec bit missing: the runtime cannot start.
    # AWS: "Error: fork/exec /var/task/bootstrap: permission denied", Runtime.InvalidEntrypoint.
    import io
    import zipfile

    data = zipfile.ZipFile(io.BytesIO(rust_zip)).read("bootstrap")
    name = functions.python(make_zip({"bootstrap": data}), runtime=PROVIDED_RUNTIME, handler="bootstrap")
    inv = invoke(lambda_client, name, {})
    assert inv.status == 200
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Runtime.InvalidEntrypoint", inv.payload


# ====================================================================== provided


def test_provided_without_bootstrap(lambda_client, functions):
    # AWS: "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]",
    # Runtime.InvalidEntrypoint, at invoke time.
    name = functions.python(make_zip({"README": "no bootstrap here"}), runtime=PROVIDED_RUNTIME,
                            handler="bootstrap")
    inv = invoke(lambda_client, name, {})
    assert inv.status == 200 and inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Runtime.InvalidEntrypoint", inv.payload


def test_provided_shell_bootstrap_speaks_the_runtime_api(lambda_client, functions):
    # The smallest custom runtime: a shell script using curl-free HTTP through
    # python's urllib, exercising /next, /response and the documented headers.
    script = """#!/bin/sh
exec python3 - <<'PY'
import json, os, urllib.request
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
base = f"http://{api}/2018-06-01/runtime/invocation"
while True:
    with urllib.request.urlopen(f"{base}/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        out = {
            "event": json.loads(r.read()),
            "request_id": rid,
            "deadline_ms": r.headers.get("Lambda-Runtime-Deadline-Ms"),
            "arn": r.headers.get("Lambda-Runtime-Invoked-Function-Arn"),
            "trace_id": r.headers.get("Lambda-Runtime-Trace-Id"),
        }
    req = urllib.request.Request(f"{base}/{rid}/response", data=json.dumps(out).encode(), method="POST")
    with urllib.request.urlopen(req) as r:
        assert r.status == 202, r.status
PY
"""
    name = functions.python(make_zip({"bootstrap": script}, executables=["bootstrap"]),
                            runtime=PROVIDED_RUNTIME, handler="bootstrap")
    inv = invoke_ok(lambda_client, name, {"via": "runtime api"})
    body = inv.payload
    assert body["event"] == {"via": "runtime api"}
    assert UUID_RE.match(body["request_id"])
    assert body["arn"] == function_arn(name)
    assert body["deadline_ms"] and int(body["deadline_ms"]) > 0
    assert body["trace_id"]
