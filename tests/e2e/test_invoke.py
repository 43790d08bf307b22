"""Invoke (POST /2015-03-31/functions/{FunctionName}/invocations) with a Python
function (tests/functions/python_basic) on stratus's python runtime.

Expected values: the Invoke API reference, "Lambda function errors in
Python", "Lambda execution environment", "Using Lambda environment
variables", "Monitoring / log format" pages of AWS's Lambda documentation.
"""

import base64
import concurrent.futures
import json
import math
import re
import time
import urllib.parse

import pytest
from harness import (
    LOG_STREAM_RE,
    PAYLOAD_LIMIT,
    PYTHON_RUNTIME,
    UUID_RE,
    function_arn,
    invoke,
    invoke_ok,
    make_zip,
    parse_reports,
    wait_for_function,
)


@pytest.fixture(scope="module")
def fn(module_functions, python_zip):
    """A python function shared by the tests that don't care about cold/warm."""
    return module_functions.python(python_zip, Environment={"Variables": {"MY_VAR": "my value"}})


def check_report(report, *, cold: bool, memory: int = 128):
    duration = float(report["duration"])
    billed = int(report["billed"])
    assert int(report["memory"]) == memory
    assert int(report["max_memory"]) > 0
    if cold:
        assert report["init"] is not None, "the first invoke of an environment must report Init Duration"
        init = float(report["init"])
        # Billed Duration is rounded up to the next ms (and may include the init phase).
        assert math.ceil(duration) <= billed <= math.ceil(duration + init) + 1
    else:
        assert report["init"] is None, "Init Duration appears only on a cold start"
        assert math.ceil(duration) <= billed <= math.ceil(duration) + 1


# ---------------------------------------------------------------- basics


def test_request_response(lambda_client, fn):
    event = {"action": "echo", "nested": {"list": [1, 2.5, None, True], "text": "héllo ✓"}}
    inv = invoke(lambda_client, fn, event)
    assert inv.status == 200
    assert inv.function_error is None
    assert inv.executed_version == "$LATEST"
    assert inv.payload["event"] == event
    assert inv.log is None  # LogResult only with LogType Tail


def test_explicit_request_response(lambda_client, fn):
    inv = invoke(lambda_client, fn, {"action": "echo"}, InvocationType="RequestResponse", LogType="None")
    assert inv.status == 200 and inv.payload["event"] == {"action": "echo"}


def test_context_object(lambda_client, fn):
    inv = invoke_ok(lambda_client, fn, {"action": "echo"})
    ctx = inv.payload["context"]
    assert ctx["function_name"] == fn
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == function_arn(fn)
    assert int(ctx["memory_limit_in_mb"]) == 128
    assert UUID_RE.match(ctx["aws_request_id"])
    assert ctx["log_group_name"] == f"/aws/lambda/{fn}"
    assert LOG_STREAM_RE.match(ctx["log_stream_name"]), ctx["log_stream_name"]
    # Timeout 3 s: 0 < remaining <= 3000 ms.
    assert 0 < ctx["remaining_time_in_millis"] <= 3000
    assert ctx["client_context"] is None


def test_request_id_header_is_the_invocation_id(lambda_client, fn):
    # The x-amzn-RequestId of an Invoke answer is the invocation's request id:
    # the context.aws_request_id the function saw and the id of its
    # START/END/REPORT lines.
    inv = invoke_ok(lambda_client, fn, {"action": "echo"}, LogType="Tail")
    assert UUID_RE.match(inv.request_id)
    assert inv.payload["context"]["aws_request_id"] == inv.request_id
    assert f"START RequestId: {inv.request_id} Version: $LATEST" in inv.log


def test_invoked_function_arn_follows_the_caller(lambda_client, fn):
    arn = function_arn(fn)
    inv = invoke_ok(lambda_client, arn, {"action": "echo"})
    assert inv.payload["context"]["invoked_function_arn"] == arn


def test_each_invoke_has_its_own_request_id(lambda_client, fn):
    ids = {invoke_ok(lambda_client, fn, {"action": "echo"}).payload["context"]["aws_request_id"] for _ in range(3)}
    assert len(ids) == 3


def test_non_object_events(lambda_client, functions):
    name = functions.python(make_zip({"app.py": "def handler(event, context):\n    return event\n"}))
    for event in ([1, 2, 3], "a string", 42, True, {}):
        inv = invoke_ok(lambda_client, name, event)
        assert inv.payload == event


def test_empty_payload_is_an_empty_object(lambda_client, functions):
    name = functions.python(make_zip({"app.py": "def handler(event, context):\n    return {'event': event}\n"}))
    inv = invoke_ok(lambda_client, name, raw=b"")
    assert inv.payload == {"event": {}}


def test_handler_returning_none(lambda_client, functions):
    name = functions.python(make_zip({"app.py": "def handler(event, context):\n    return None\n"}))
    inv = invoke_ok(lambda_client, name)
    assert inv.raw == b"null"


def test_dry_run(lambda_client, functions, python_zip):
    name = functions.python(python_zip)
    first = invoke_ok(lambda_client, name, {"action": "counter"}).payload
    dry = invoke(lambda_client, name, {"action": "counter"}, InvocationType="DryRun")
    # DryRun: "Validate parameter values and verify that the user or role has
    # permission to invoke the function" -> 204, and the function does not run.
    assert dry.status == 204
    assert dry.function_error is None
    assert dry.raw == b""
    second = invoke_ok(lambda_client, name, {"action": "counter"}).payload
    assert second["count"] == first["count"] + 1


def test_event_invocation(server, lambda_client, functions, python_zip):
    """InvocationType Event: AWS answers 202 with an empty body and runs the
    function asynchronously (test_async.py covers retries and destinations)."""
    from harness import stratus_cli, wait_until

    name = functions.python(python_zip)
    marker = f"event-{name}"
    inv = invoke(lambda_client, name, {"action": "log", "lines": [marker]}, InvocationType="Event")
    assert inv.status == 202
    assert inv.raw == b""
    wait_until(lambda: marker in stratus_cli("logs", name, "--data-dir", str(server.data_dir)).stdout,
               timeout=20, what="the Event invocation to run")


def test_dry_run_unknown_function(lambda_client):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as e:
        invoke(lambda_client, "no-such-function-dry", {}, InvocationType="DryRun")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


# ---------------------------------------------------------------- logs


def test_log_type_tail(lambda_client, fn):
    inv = invoke_ok(lambda_client, fn, {"action": "log", "lines": ["first printed line", "second printed line"],
                                        "info": "an info record"}, LogType="Tail")
    rid = inv.invocation_id
    assert inv.log is not None, "LogType Tail must return X-Amz-Log-Result"
    assert inv.headers.get("x-amz-log-result") == inv.log_result_b64
    log = inv.log
    assert f"START RequestId: {rid} Version: $LATEST" in log
    assert "first printed line\n" in log and "second printed line\n" in log
    # Python runtime logger format: [LEVEL]\t<UTC timestamp>\t<request id>\t<message>
    assert re.search(r"\[INFO\]\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t" + re.escape(rid) + r"\tan info record", log), log
    assert f"END RequestId: {rid}" in log
    reports = parse_reports(log)
    assert [r["id"] for r in reports] == [rid], log
    # Order: START, output, END, REPORT.
    assert log.index("START RequestId") < log.index("first printed line") < log.index("END RequestId") < log.index("REPORT RequestId")


def test_log_tail_is_the_last_4_kb(lambda_client, fn):
    lines = [f"line {i:05d} " + "y" * 90 for i in range(200)]  # ~20 KB of output
    inv = invoke_ok(lambda_client, fn, {"action": "log", "lines": lines}, LogType="Tail")
    raw = base64.b64decode(inv.log_result_b64)
    assert len(raw) <= 4096
    assert len(raw) > 3000  # the tail, not an empty or truncated-to-nothing log
    text = raw.decode("utf-8", errors="replace")
    assert f"REPORT RequestId: {inv.invocation_id}" in text
    assert "line 00199" in text and "line 00000" not in text


def test_log_tail_has_everything_printed_before_return(lambda_client, fn):
    # What the handler printed before it returned is part of that
    # invocation's log, before its END line -- every time.
    for i in range(25):
        lines = [f"iteration {i} line {j}" for j in range(30)]
        inv = invoke_ok(lambda_client, fn, {"action": "log", "lines": lines}, LogType="Tail")
        last = f"iteration {i} line 29\n"
        assert last in inv.log, f"iteration {i}: the tail lacks the last printed line:\n{inv.log}"
        assert inv.log.index(last) < inv.log.index(f"END RequestId: {inv.invocation_id}")


def test_log_tail_of_each_invoke_is_its_own(lambda_client, fn):
    a = invoke_ok(lambda_client, fn, {"action": "log", "lines": ["marker-aaa"]}, LogType="Tail")
    b = invoke_ok(lambda_client, fn, {"action": "log", "lines": ["marker-bbb"]}, LogType="Tail")
    assert "marker-aaa" in a.log and "marker-bbb" not in a.log
    assert "marker-bbb" in b.log and "marker-aaa" not in b.log
    assert a.invocation_id not in b.log


# ---------------------------------------------------------------- cold and warm


def test_cold_then_warm(lambda_client, functions, python_zip):
    name = functions.python(python_zip)
    first = invoke_ok(lambda_client, name, {"action": "counter"}, LogType="Tail")
    second = invoke_ok(lambda_client, name, {"action": "counter"}, LogType="Tail")
    third = invoke_ok(lambda_client, name, {"action": "counter"}, LogType="Tail")
    # The same execution environment serves the warm invokes.
    assert [first.payload["count"], second.payload["count"], third.payload["count"]] == [1, 2, 3]
    assert first.payload["env_id"] == second.payload["env_id"] == third.payload["env_id"]
    # One log stream per execution environment.
    assert first.payload["log_stream_name"] == second.payload["log_stream_name"] == third.payload["log_stream_name"]
    (r1,) = parse_reports(first.log)
    (r2,) = parse_reports(second.log)
    (r3,) = parse_reports(third.log)
    check_report(r1, cold=True)
    check_report(r2, cold=False)
    check_report(r3, cold=False)


def test_report_memory_size_follows_configuration(lambda_client, functions, python_zip):
    name = functions.python(python_zip, MemorySize=256)
    inv = invoke_ok(lambda_client, name, {"action": "echo"}, LogType="Tail")
    assert int(inv.payload["context"]["memory_limit_in_mb"]) == 256
    (report,) = parse_reports(inv.log)
    check_report(report, cold=True, memory=256)


def test_concurrent_invokes_use_separate_environments(lambda_client, functions, python_zip):
    # One invocation at a time per execution environment: two concurrent
    # invokes run in two environments.
    name = functions.python(python_zip, Timeout=30)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(invoke_ok, lambda_client, name, {"action": "sleep", "seconds": 1.5})
                   for _ in range(2)]
        results = [f.result() for f in futures]
    envs = {r.payload["env_id"] for r in results}
    assert len(envs) == 2, results
    streams = {r.payload["log_stream_name"] for r in results}
    assert len(streams) == 2, "each execution environment has its own log stream"


def test_environment_not_shared_between_functions(lambda_client, functions, python_zip):
    a = functions.python(python_zip)
    b = functions.python(python_zip)
    pa = invoke_ok(lambda_client, a, {"action": "counter"}).payload
    pb = invoke_ok(lambda_client, b, {"action": "counter"}).payload
    assert pa["count"] == 1 and pb["count"] == 1
    assert pa["env_id"] != pb["env_id"]


def test_configuration_update_gives_a_fresh_environment(lambda_client, functions, python_zip):
    name = functions.python(python_zip, Environment={"Variables": {"VER": "1"}})
    before = invoke_ok(lambda_client, name, {"action": "counter"}).payload
    lambda_client.update_function_configuration(FunctionName=name, Environment={"Variables": {"VER": "2"}})
    wait_for_function(lambda_client, name)
    env = invoke_ok(lambda_client, name, {"action": "env", "names": ["VER"]}).payload
    assert env["VER"] == "2"
    after = invoke_ok(lambda_client, name, {"action": "counter"}).payload
    assert after["env_id"] != before["env_id"]


# ---------------------------------------------------------------- environment


def test_environment_variables(server, lambda_client, fn):
    env = invoke_ok(lambda_client, fn, {"action": "env", "names": ["MY_VAR"]}).payload
    assert env["MY_VAR"] == "my value"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == fn
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{PYTHON_RUNTIME}"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{fn}"
    assert LOG_STREAM_RE.match(env["AWS_LAMBDA_LOG_STREAM_NAME"]), env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["TZ"] == ":UTC"
    assert re.match(r"^[\w.\-]+:\d+$", env["AWS_LAMBDA_RUNTIME_API"]), env["AWS_LAMBDA_RUNTIME_API"]
    assert env["LAMBDA_TASK_ROOT"] and env["LAMBDA_RUNTIME_DIR"]
    assert "app.py" in env["task_root_files"]
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    assert env["AWS_SESSION_TOKEN"]
    # The SDK calls a function makes reach stratus.
    endpoint = urllib.parse.urlparse(env["AWS_ENDPOINT_URL"] or "")
    server_url = urllib.parse.urlparse(server.url)
    assert endpoint.scheme == "http" and endpoint.port == server_url.port, env["AWS_ENDPOINT_URL"]


def test_client_context(lambda_client, fn):
    client_context = {"custom": {"user": "alice", "n": 3}, "env": {"locale": "en-GB"},
                      "client": {"installation_id": "abc", "app_title": "t", "app_version_name": "1",
                                 "app_version_code": "1", "app_package_name": "p"}}
    encoded = base64.b64encode(json.dumps(client_context).encode()).decode()
    inv = invoke_ok(lambda_client, fn, {"action": "echo"}, ClientContext=encoded)
    got = inv.payload["context"]["client_context"]
    assert got is not None, "context.client_context must be set when ClientContext is sent"
    assert got["custom"] == {"user": "alice", "n": 3}
    assert got["env"] == {"locale": "en-GB"}


# ---------------------------------------------------------------- errors


def test_unhandled_error_payload(lambda_client, fn):
    inv = invoke(lambda_client, fn, {"action": "raise", "message": "the sky is falling"}, LogType="Tail")
    # A function error is still a 200 answer, flagged with X-Amz-Function-Error.
    assert inv.status == 200
    assert inv.function_error == "Unhandled"
    assert inv.headers.get("x-amz-function-error") == "Unhandled"
    assert inv.executed_version == "$LATEST"
    body = inv.payload
    assert body["errorMessage"] == "the sky is falling"
    assert body["errorType"] == "CustomError"
    assert isinstance(body["stackTrace"], list) and body["stackTrace"]
    assert all(isinstance(line, str) for line in body["stackTrace"])
    assert any("app.py" in line for line in body["stackTrace"])
    # The error is logged too, within START ... END.
    assert "the sky is falling" in inv.log
    assert f"END RequestId: {inv.invocation_id}" in inv.log


def test_error_then_success_reuses_environment(lambda_client, functions, python_zip):
    name = functions.python(python_zip)
    first = invoke_ok(lambda_client, name, {"action": "counter"}).payload
    assert invoke(lambda_client, name, {"action": "raise"}).function_error == "Unhandled"
    after = invoke_ok(lambda_client, name, {"action": "counter"}).payload
    # A handled-by-the-runtime exception does not kill the environment.
    assert after["env_id"] == first["env_id"] and after["count"] == first["count"] + 1


def test_timeout(lambda_client, functions, python_zip, env_probe):
    name = functions.python(python_zip, Timeout=1)
    warm = invoke_ok(lambda_client, name, env_probe.event()).payload
    assert env_probe.accept() == warm["env_id"]
    started = time.monotonic()
    inv = invoke(lambda_client, name, {"action": "sleep", "seconds": 10}, LogType="Tail")
    elapsed = time.monotonic() - started
    assert inv.status == 200
    assert inv.function_error == "Unhandled"
    message = inv.payload["errorMessage"]
    # "<timestamp> <request id> Task timed out after 1.00 seconds" (the
    # errorType, where present, is Sandbox.Timedout).
    m = re.search(r"Task timed out after (\d+\.\d\d) seconds", message)
    assert m, message
    assert 1.0 <= float(m.group(1)) < 2.0, message
    assert inv.payload.get("errorType", "Sandbox.Timedout") == "Sandbox.Timedout"
    assert elapsed < 8, f"the invoke took {elapsed:.1f} s: the function was not stopped at its timeout"
    assert "Task timed out after" in inv.log
    assert f"REPORT RequestId: {inv.invocation_id}" in inv.log
    # The environment was killed: the next invoke gets a fresh one.
    after = invoke_ok(lambda_client, name, {"action": "counter"}, LogType="Tail")
    assert after.payload["count"] == 1
    assert after.payload["env_id"] != warm["env_id"]
    # The timed-out environment was stopped, not left running.
    env_probe.wait_closed(warm["env_id"], timeout=5, what="the timed-out environment to end")
    (report,) = parse_reports(after.log)
    check_report(report, cold=True)


def test_crash_mid_invoke(lambda_client, functions, python_zip):
    name = functions.python(python_zip)
    warm = invoke_ok(lambda_client, name, {"action": "counter"}).payload
    inv = invoke(lambda_client, name, {"action": "exit", "code": 1})
    assert inv.status == 200
    assert inv.function_error == "Unhandled"
    body = inv.payload
    # "RequestId: <id> Error: Runtime exited with error: exit status 1"
    assert body["errorType"] == "Runtime.ExitError"
    assert "Runtime exited with error: exit status 1" in body["errorMessage"], body
    after = invoke_ok(lambda_client, name, {"action": "counter"}, LogType="Tail")
    assert after.payload["count"] == 1
    assert after.payload["env_id"] != warm["env_id"]
    (report,) = parse_reports(after.log)
    check_report(report, cold=True)


def test_import_error(lambda_client, functions):
    zip_bytes = make_zip({"app.py": "import module_that_does_not_exist\n\ndef handler(e, c):\n    return 1\n"})
    name = functions.python(zip_bytes)
    inv = invoke(lambda_client, name, {})
    assert inv.status == 200 and inv.function_error == "Unhandled"
    body = inv.payload
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert body["errorMessage"].startswith("Unable to import module 'app': "), body
    assert "module_that_does_not_exist" in body["errorMessage"]


def test_missing_module(lambda_client, functions, python_zip):
    name = functions.python(python_zip, handler="missing.handler")
    body = invoke(lambda_client, name, {}).payload
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert body["errorMessage"].startswith("Unable to import module 'missing'"), body


def test_handler_not_found(lambda_client, functions, python_zip):
    name = functions.python(python_zip, handler="app.no_such_function")
    inv = invoke(lambda_client, name, {})
    assert inv.status == 200 and inv.function_error == "Unhandled"
    body = inv.payload
    assert body["errorType"] == "Runtime.HandlerNotFound"
    assert body["errorMessage"] == "Handler 'no_such_function' missing on module 'app'"


def test_init_error_does_not_hang_and_recovers_after_fix(lambda_client, functions, python_zip):
    name = functions.python(make_zip({"app.py": "raise RuntimeError('broken at import')\n"}))
    for _ in range(2):
        inv = invoke(lambda_client, name, {})
        assert inv.status == 200 and inv.function_error == "Unhandled"
        assert "broken at import" in inv.payload["errorMessage"]
    lambda_client.update_function_code(FunctionName=name, ZipFile=python_zip)
    wait_for_function(lambda_client, name)
    assert invoke_ok(lambda_client, name, {"action": "counter"}).payload["count"] == 1


# ---------------------------------------------------------------- payload sizes


def test_large_response_under_the_limit(lambda_client, fn):
    size = 5 * 1024 * 1024
    inv = invoke_ok(lambda_client, fn, {"action": "big", "bytes": size})
    assert len(inv.raw) == size
    assert inv.payload == "x" * (size - 2)


def test_response_over_6_mb(lambda_client, functions, python_zip):
    name = functions.python(python_zip)
    inv = invoke(lambda_client, name, {"action": "big", "bytes": PAYLOAD_LIMIT + 1000})
    assert inv.status == 200
    assert inv.function_error == "Unhandled"
    body = inv.payload
    # {"errorMessage":"Response payload size exceeded maximum allowed payload
    #  size (6291556 bytes).","errorType":"Function.ResponseSizeTooLarge"}
    assert body["errorType"] == "Function.ResponseSizeTooLarge", body
    assert re.search(r"Response payload size .*exceeded maximum allowed payload size", body["errorMessage"]), body
    assert invoke_ok(lambda_client, name, {"action": "echo"}).status == 200


# ---------------------------------------------------------------- sdk


@pytest.mark.sdk
@pytest.mark.timeout(900)
def test_function_can_call_stratus_with_boto3(lambda_client, functions, python_zip, provided_sdk):
    # As on AWS, boto3 is importable in a Python function without packaging it,
    # and AWS_ENDPOINT_URL + the credential variables make it reach stratus.
    name = functions.python(python_zip, Timeout=120)
    inv = invoke_ok(lambda_client, name, {"action": "sdk"})
    assert inv.payload["FunctionArn"] == function_arn(name)
