"""Tests for the Python and Node.js runtime bootstraps (runtimes/*/bootstrap.*).

Each test starts a bootstrap as a real process against the mock Runtime API in
mock_runtime_api.py, with one of the sample functions under fixtures/, and
checks what it posts and what it prints. Expected values follow AWS's
documented behaviour (python-handler, python-context, python-logging,
nodejs-handler, nodejs-context, nodejs-logging, runtimes-api pages).

Run with pytest, or without it:

    python3 runtimes/tests/test_bootstraps.py [name-substring ...]

STRATUS_TEST_PYTHON / STRATUS_TEST_NODE choose the interpreters that run the
bootstraps (default: this Python, and `node` on PATH).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from mock_runtime_api import MockRuntimeApi  # noqa: E402

RUNTIMES = os.path.dirname(HERE)
FIXTURES = os.path.join(HERE, "fixtures")
PY_ROOT = os.path.join(FIXTURES, "python")
NODE_CJS = os.path.join(FIXTURES, "node", "cjs")
NODE_ESM = os.path.join(FIXTURES, "node", "esm")
NODE_ESM_TYPE = os.path.join(FIXTURES, "node", "esm_type")
NODE_SDK = os.path.join(FIXTURES, "node", "sdk", "node_modules")
PY_SDK = os.path.join(FIXTURES, "python_sdk")
PY_LAYER_OPT = os.path.join(FIXTURES, "python_layer")

ISO_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
# The interpreters the bootstraps run under (the test runner itself may differ).
PYTHON = os.environ.get("STRATUS_TEST_PYTHON") or sys.executable
NODE = os.environ.get("STRATUS_TEST_NODE") or shutil.which("node")


class Bootstrap(object):
    """A bootstrap process wired to its own mock Runtime API."""

    def __init__(self, lang, task_root, handler, env=None, api=None):
        self.api = api or MockRuntimeApi()
        self.api.start()
        # stratus writes the embedded bootstrap somewhere of its own: copy it to a
        # fresh directory so nothing can depend on its location in the repo.
        self.tmp = tempfile.mkdtemp(prefix="stratus-rt-")
        if lang == "python":
            script = os.path.join(self.tmp, "python", "bootstrap.py")
            os.makedirs(os.path.dirname(script))
            shutil.copy(os.path.join(RUNTIMES, "python", "bootstrap.py"), script)
            cmd = [PYTHON, "-u", script]
        else:
            script = os.path.join(self.tmp, "node", "bootstrap.mjs")
            os.makedirs(os.path.dirname(script))
            shutil.copy(os.path.join(RUNTIMES, "node", "bootstrap.mjs"), script)
            cmd = [NODE, script]
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": task_root,
            "LAMBDA_RUNTIME_DIR": self.tmp,
            "AWS_LAMBDA_FUNCTION_NAME": "fixture",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fixture",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]0123456789abcdef",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            # Keep a real /opt on the test machine out of the way.
            "STRATUS_OPT_DIR": os.path.join(self.tmp, "no-opt"),
        }
        full_env.update(env or {})
        full_env = {k: v for k, v in full_env.items() if v is not None}
        self.stdout_lines = []
        self.stderr_lines = []
        self.proc = subprocess.Popen(
            cmd, cwd=task_root, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout_lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr_lines), daemon=True),
        ]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(pipe, sink):
        buf = b""
        while True:
            chunk = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(1)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                sink.append(line.decode("utf-8", "replace"))
        if buf:
            sink.append(buf.decode("utf-8", "replace"))

    def invoke(self, event=None, timeout=10.0, **kw):
        rid = self.api.push(event, **kw)
        return rid, self.api.wait_result(rid, timeout)

    def wait_exit(self, timeout=10.0):
        return self.proc.wait(timeout)

    def finish_output(self):
        """Stop the process and wait until all its output has been read."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for t in self._readers:
            t.join(5)

    def close(self):
        self.finish_output()
        self.api.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def dump(self):
        return "stdout:\n  {}\nstderr:\n  {}".format(
            "\n  ".join(self.stdout_lines), "\n  ".join(self.stderr_lines)
        )


def py(handler, **kw):
    return Bootstrap("python", PY_ROOT, handler, **kw)


def node(handler, root=NODE_CJS, env=None, **kw):
    env = dict(env or {})
    env.setdefault("STRATUS_SDK_PATH", NODE_SDK)
    return Bootstrap("node", root, handler, env=env, **kw)


def wait_until(predicate, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _line_of(path, text):
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if text in line:
                return number
    raise AssertionError("{!r} not in {}".format(text, path))


def lines_matching(lines, pattern):
    rx = re.compile(pattern)
    return [line for line in lines if rx.search(line)]


# ===========================================================================
# Python
# ===========================================================================


def test_py_success_and_payload():
    with py("app.echo") as b:
        _, res = b.invoke({"hello": "wörld", "n": [1, 2.5, None, True]})
        assert res.kind == "response", res
        assert res.headers["content-type"] == "application/json"
        assert res.json() == {"event": {"hello": "wörld", "n": [1, 2.5, None, True]}}
        assert b"w\\u00f6rld" in res.body  # json's default ASCII escaping
    # AWS's encoder keeps non-ASCII text as UTF-8 on python3.12 and later.
    with py("app.echo", env={"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"}) as b:
        _, res = b.invoke({"hello": "wörld"})
        assert res.body == '{"event": {"hello": "wörld"}}'.encode("utf-8")


def test_py_warm_reuse_keeps_module_state():
    with py("app.counter") as b:
        _, r1 = b.invoke({})
        _, r2 = b.invoke({})
        assert r1.json()["count"] == 1 and r2.json()["count"] == 2
        assert r1.json()["pid"] == r2.json()["pid"] == b.proc.pid
        b.api.wait_next_calls(3)


def test_py_context_fields():
    client_context = {"client": {"app_title": "MyApp"}, "custom": {"k": "v"}, "env": {"platform": "x"}}
    cognito = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    with py("app.ctx") as b:
        rid, res = b.invoke(
            {},
            deadline_ms=60000,
            headers={
                "Lambda-Runtime-Client-Context": json.dumps(client_context),
                "Lambda-Runtime-Cognito-Identity": json.dumps(cognito),
            },
        )
        doc = res.json()
        assert doc["function_name"] == "fixture"
        assert doc["function_version"] == "$LATEST"
        assert doc["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:fixture"
        # awslambdaric passes AWS_LAMBDA_FUNCTION_MEMORY_SIZE through unchanged (a str).
        assert doc["memory_limit_in_mb"] == "256"
        assert doc["aws_request_id"] == rid
        assert doc["log_group_name"] == "/aws/lambda/fixture"
        assert doc["log_stream_name"] == "2024/01/01/[$LATEST]0123456789abcdef"
        assert 50000 < doc["remaining"] <= 60000, doc["remaining"]
        assert doc["identity_id"] == "id-1" and doc["identity_pool_id"] == "pool-1"
        assert doc["client_context"] == {"custom": {"k": "v"}, "env": {"platform": "x"}, "app_title": "MyApp"}
        assert doc["trace_id"].startswith("Root=1-5e1b4151")

        # Without the optional headers: no client context, an empty identity, and
        # _X_AMZN_TRACE_ID removed from the environment.
        _, res = b.invoke({}, headers={"Lambda-Runtime-Trace-Id": None}, deadline_ms=-5000)
        doc = res.json()
        assert doc["client_context"] is None
        assert doc["identity_id"] is None and doc["identity_pool_id"] is None
        assert doc["trace_id"] is None
        assert doc["remaining"] == 0  # past the deadline: never negative in Python


def test_py_handler_exception():
    with py("app.fail") as b:
        rid, res = b.invoke({})
        assert res.kind == "error"
        assert res.headers["lambda-runtime-function-error-type"] == "ValueError"
        doc = res.json()
        assert list(doc) == ["errorMessage", "errorType", "requestId", "stackTrace"]
        assert doc["errorMessage"] == "something broke"
        assert doc["errorType"] == "ValueError"
        assert doc["requestId"] == rid
        app = os.path.join(PY_ROOT, "app.py")
        line = _line_of(app, 'raise ValueError("something broke")')
        assert doc["stackTrace"] == [
            '  File "{}", line {}, in fail\n    raise ValueError("something broke")\n'.format(app, line)
        ], doc["stackTrace"]
        b.finish_output()
        # One record: "[ERROR] type: message" then the traceback, joined by \r.
        records = lines_matching(b.stdout_lines, r"^\[ERROR\] ValueError: something broke")
        assert records == [
            "[ERROR] ValueError: something broke\rTraceback (most recent call last):\r"
            '\u00a0\u00a0File "{}", line {}, in fail\r\u00a0\u00a0\u00a0\u00a0raise ValueError("something broke")'.format(
                app, line
            )
        ], b.dump()


def test_py_nested_custom_exception():
    with py("app.nested_fail") as b:
        _, res = b.invoke({})
        doc = res.json()
        assert doc["errorType"] == "CustomError"
        assert doc["errorMessage"] == "deep failure"
        assert len(doc["stackTrace"]) == 2
        assert "in nested_fail\n    _helper()" in doc["stackTrace"][0]
        assert "in _helper\n    raise CustomError" in doc["stackTrace"][1]


def _py_init_error(handler):
    with py(handler) as b:
        err = b.api.wait_init_error()
        code = b.wait_exit()
        b.finish_output()
        return err, code, b


def test_py_import_error():
    err, code, b = _py_init_error("bad_import.handler")
    assert code != 0
    assert err.headers["lambda-runtime-function-error-type"] == "Runtime.ImportModuleError"
    assert err.json() == {
        "errorMessage": "Unable to import module 'bad_import': No module named 'does_not_exist_anywhere_xyz'",
        "errorType": "Runtime.ImportModuleError",
        "requestId": "",
        "stackTrace": [],
    }
    assert (
        "[ERROR] Runtime.ImportModuleError: Unable to import module 'bad_import': "
        "No module named 'does_not_exist_anywhere_xyz'\rTraceback (most recent call last):"
    ) in b.stdout_lines, b.dump()
    assert b.api.next_calls == 0


def test_py_missing_module():
    err, code, _ = _py_init_error("nope.handler")
    assert code != 0
    assert err.json()["errorMessage"] == "Unable to import module 'nope': No module named 'nope'"


def test_py_handler_not_found():
    err, code, _ = _py_init_error("app.nope")
    assert code != 0
    assert err.headers["lambda-runtime-function-error-type"] == "Runtime.HandlerNotFound"
    assert err.json()["errorMessage"] == "Handler 'nope' missing on module 'app'"


def test_py_malformed_handler():
    err, code, _ = _py_init_error("x")
    assert code != 0
    assert err.headers["lambda-runtime-function-error-type"] == "Runtime.MalformedHandlerName"
    assert err.json()["errorMessage"] == "Bad handler 'x': not enough values to unpack (expected 2, got 1)"


def test_py_syntax_error():
    err, code, _ = _py_init_error("syntax_err.handler")
    assert code != 0
    assert err.headers["lambda-runtime-function-error-type"] == "Runtime.UserCodeSyntaxError"
    doc = err.json()
    assert doc["errorMessage"].startswith("Syntax error in module 'syntax_err': ")
    assert len(doc["stackTrace"]) == 1
    assert doc["stackTrace"][0].startswith('  File "{}" Line '.format(os.path.join(PY_ROOT, "syntax_err.py")))


def test_py_exception_at_import_reports_its_own_type():
    err, code, b = _py_init_error("toplevel_raise.handler")
    assert code != 0
    assert err.headers["lambda-runtime-function-error-type"] == "RuntimeError"
    doc = err.json()
    assert doc["errorType"] == "RuntimeError" and doc["errorMessage"] == "boom at import"
    assert doc["requestId"] == ""
    assert any('toplevel_raise.py", line 5, in <module>' in f for f in doc["stackTrace"]), doc
    assert doc["stackTrace"][-1].endswith('in _boom\n    raise RuntimeError("boom at import")\n')
    assert not any("bootstrap.py" in f for f in doc["stackTrace"]), doc
    assert lines_matching(b.stdout_lines, r"^\[WARNING\]\t" + ISO_MS + r"\t\tLAMBDA_WARNING: Unhandled exception")


def test_py_logging_format():
    with py("app.logs") as b:
        rid, res = b.invoke({})
        assert res.json() == "ok"
        b.finish_output()
        out = b.stdout_lines
        # Init-time records have an empty request id field.
        assert lines_matching(out, r"^\[WARNING\]\t" + ISO_MS + r"\t\tinit-time warning$"), b.dump()
        assert "init-time print" in out
        assert "plain print" in out
        assert lines_matching(out, r"^\[WARNING\]\t" + ISO_MS + r"\t" + rid + r"\twarn shown$"), b.dump()
        # The root logger stays at WARNING unless the function lowers it.
        assert not lines_matching(out, "info hidden by default")
        assert lines_matching(out, r"^\[INFO\]\t" + ISO_MS + r"\t" + rid + r"\tinfo now shown$"), b.dump()
        assert lines_matching(out, r"^\[ERROR\]\t" + ISO_MS + r"\t" + rid + r"\tmulti\rline$"), b.dump()


def test_py_json_logging_and_level():
    env = {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"}
    with py("app.logs", env=env) as b:
        rid, _ = b.invoke({})
        b.finish_output()
        docs = [json.loads(line) for line in b.stdout_lines if line.startswith("{")]
        by_msg = {d["message"]: d for d in docs if "message" in d}
        hidden = by_msg["info hidden by default"]  # AWS_LAMBDA_LOG_LEVEL=INFO lets it through
        assert hidden["level"] == "INFO" and hidden["logger"] == "root" and hidden["requestId"] == rid
        assert re.match(ISO_MS + "$", hidden["timestamp"])
        assert by_msg["multi\nline"]["level"] == "ERROR"
        assert by_msg["init-time warning"]["requestId"] == ""
        assert "plain print" in b.stdout_lines  # print() is not wrapped in JSON


def test_py_json_error_log():
    with py("app.fail", env={"AWS_LAMBDA_LOG_FORMAT": "JSON"}) as b:
        rid, res = b.invoke({})
        b.finish_output()
        docs = [json.loads(line) for line in b.stdout_lines if line.startswith("{")]
        errs = [d for d in docs if d.get("errorType") == "ValueError"]
        assert len(errs) == 1, b.dump()
        assert errs[0]["level"] == "ERROR" and errs[0]["requestId"] == rid
        assert errs[0]["errorMessage"] == "something broke"


def test_py_result_marshalling():
    with py("app.none_result") as b:
        _, res = b.invoke({})
        assert res.kind == "response" and res.body == b"null"
    with py("app.unserializable") as b:
        _, res = b.invoke({})
        assert res.kind == "error"
        assert res.headers["lambda-runtime-function-error-type"] == "Runtime.MarshalError"
        doc = res.json()
        assert doc["errorMessage"] == "Unable to marshal response: Object of type set is not JSON serializable"
        assert doc["stackTrace"] == []
    with py("app.decimals") as b:
        _, res = b.invoke({})
        assert res.json() == {"d": 1.5, "i": 3}
    with py("app.raw_bytes") as b:
        _, res = b.invoke({})
        assert res.body == b"\x00raw-bytes"
        assert res.headers["content-type"] == "application/unknown"


def test_py_bad_event_json():
    with py("app.echo") as b:
        _, res = b.invoke(raw=b"{not json")
        assert res.headers["lambda-runtime-function-error-type"] == "Runtime.UnmarshalError"
        assert res.json()["errorMessage"].startswith("Unable to unmarshal input: ")


def test_py_nested_module_paths():
    for handler in ("pkg/sub/mod.handler", "pkg.sub.mod.handler"):
        with py(handler) as b:
            _, res = b.invoke({})
            assert res.json() == "nested module", (handler, res)


def test_py_sdk_path_has_lowest_priority_and_layers_load():
    with py("app.sdk", env={"STRATUS_SDK_PATH": PY_SDK}) as b:
        _, res = b.invoke({})
        assert res.json() == {"sdk": "sdk-path", "shadowed": "task-root"}, res
    with py("app.layer", env={"STRATUS_OPT_DIR": PY_LAYER_OPT}) as b:
        _, res = b.invoke({})
        assert res.json() == "layer", res
    with py("app.sdk", env={"STRATUS_SDK_PATH": "/nonexistent/sdk"}) as b:
        _, res = b.invoke({})
        assert res.json()["errorType"] == "ModuleNotFoundError"


def test_py_oversized_response_is_logged_and_runtime_continues():
    api = MockRuntimeApi(max_response_bytes=100)
    with py("app.big", api=api) as b:
        rid, res = b.invoke({"n": 1000})
        assert res.kind == "rejected"
        _, res2 = b.invoke({"n": 10})
        assert res2.json() == "x" * 10
        b.finish_output()
        assert lines_matching(b.stderr_lines, "RequestEntityTooLarge"), b.dump()


def test_py_system_exit_ends_the_process():
    with py("app.exits") as b:
        b.api.push({})
        assert b.wait_exit() == 3


# ===========================================================================
# Node.js
# ===========================================================================


def test_node_cjs_success_and_warm_reuse():
    with node("app.counter") as b:
        _, r1 = b.invoke({})
        _, r2 = b.invoke({})
        assert r1.json()["count"] == 1 and r2.json()["count"] == 2
        assert r1.json()["pid"] == r2.json()["pid"] == b.proc.pid
    with node("app.echo") as b:
        _, res = b.invoke({"a": ["ü", 1.5, None]})
        assert res.headers["content-type"] == "application/json"
        assert res.json() == {"event": {"a": ["ü", 1.5, None]}}


def test_node_context_fields():
    client_context = {"client": {"app_title": "MyApp"}, "custom": {"k": "v"}, "env": {"platform": "x"}}
    cognito = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    with node("app.ctx") as b:
        rid, res = b.invoke(
            {},
            deadline_ms=60000,
            headers={
                "Lambda-Runtime-Client-Context": json.dumps(client_context),
                "Lambda-Runtime-Cognito-Identity": json.dumps(cognito),
            },
        )
        doc = res.json()
        assert doc["functionName"] == "fixture"
        assert doc["functionVersion"] == "$LATEST"
        assert doc["invokedFunctionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:fixture"
        assert doc["memoryLimitInMB"] == "256"  # a string, as on AWS
        assert doc["awsRequestId"] == rid
        assert doc["logGroupName"] == "/aws/lambda/fixture"
        assert doc["logStreamName"] == "2024/01/01/[$LATEST]0123456789abcdef"
        assert 50000 < doc["remaining"] <= 60000
        assert doc["identity"] == cognito
        assert doc["clientContext"] == client_context
        assert doc["callbackWaitsForEmptyEventLoop"] is True
        assert doc["hasDone"] is True
        assert doc["traceId"].startswith("Root=1-5e1b4151")
        _, res = b.invoke({}, headers={"Lambda-Runtime-Trace-Id": None})
        doc = res.json()
        assert doc["traceId"] is None and doc["identity"] is None and doc["clientContext"] is None


def _node_invoke_error(handler, **kw):
    with node(handler, **kw) as b:
        rid, res = b.invoke({})
        b.finish_output()
        return rid, res, b


def test_node_async_exception():
    rid, res, b = _node_invoke_error("app.fail")
    assert res.kind == "error"
    assert res.headers["lambda-runtime-function-error-type"] == "Error"
    doc = res.json()
    assert list(doc) == ["errorType", "errorMessage", "trace"]
    assert doc["errorType"] == "Error" and doc["errorMessage"] == "boom"
    assert doc["trace"][0] == "Error: boom"
    assert doc["trace"][1].startswith("    at ") and "app.js" in doc["trace"][1]
    lines = lines_matching(b.stdout_lines, r"^" + ISO_MS + "\t" + rid + r"\tERROR\tInvoke Error \t\{")
    assert len(lines) == 1, b.dump()
    logged = json.loads(lines[0].split("\tInvoke Error \t", 1)[1])
    assert logged["errorType"] == "Error" and logged["errorMessage"] == "boom"
    assert logged["stack"][0] == "Error: boom"


def test_node_custom_error_and_non_error_values():
    _, res, b = _node_invoke_error("app.failCustom")
    assert res.headers["lambda-runtime-function-error-type"] == "MyError"
    assert res.json()["errorMessage"] == "custom failure"
    logged = json.loads(lines_matching(b.stdout_lines, "Invoke Error")[0].split("\tInvoke Error \t", 1)[1])
    assert logged["code"] == "E_MINE" and logged["errorType"] == "MyError"

    _, res, _ = _node_invoke_error("app.throwString")
    assert res.json() == {"errorType": "string", "errorMessage": "just a string", "trace": []}


def test_node_callback_waits_for_empty_event_loop():
    with node("app.callback") as b:
        rid, res = b.invoke({})
        # The result object is serialised once the event loop is empty, that is
        # after the timer (which marks it) has run.
        assert res.json() == {"via": "callback", "timerRan": True}
        b.finish_output()
        assert lines_matching(b.stdout_lines, "\t" + rid + r"\tINFO\ttimer ran$"), b.dump()


def test_node_callback_without_waiting():
    with node("app.callbackNoWait") as b:
        start = time.time()
        _, res = b.invoke({})
        assert res.json() == "fast"
        assert time.time() - start < 3.5  # well before the 4 s timer


def test_node_callback_error_and_sync_throw():
    _, res, _ = _node_invoke_error("app.callbackError")
    assert res.json()["errorType"] == "TypeError" and res.json()["errorMessage"] == "callback failed"
    _, res, _ = _node_invoke_error("app.syncThrow")
    assert res.json()["errorType"] == "RangeError" and res.json()["errorMessage"] == "sync bad"


def test_node_sync_return_value_is_null_as_on_node20():
    with node("app.syncReturn") as b:
        _, res = b.invoke({})
        assert res.kind == "response" and res.body == b"null"


def test_node_legacy_context_methods():
    with node("app.succeedLegacy") as b:
        _, res = b.invoke({})
        assert res.json() == {"legacy": True}
    _, res, _ = _node_invoke_error("app.failLegacy")
    assert res.json() == {"errorType": "string", "errorMessage": "handled", "trace": []}


def test_node_undefined_and_unserialisable_results():
    with node("app.undefinedResult") as b:
        _, res = b.invoke({})
        assert res.body == b"null"
    _, res, _ = _node_invoke_error("app.circular")
    assert res.json()["errorType"] == "Error"
    assert res.json()["errorMessage"] == "Unable to stringify response body"


def test_node_bad_event_json():
    with node("app.badEvent") as b:
        _, res = b.invoke(raw=b"{not json")
        assert res.json()["errorType"] == "SyntaxError"


def test_node_logging_format():
    with node("app.logs") as b:
        rid, res = b.invoke({})
        assert res.json() == "ok"
        b.finish_output()
        out = b.stdout_lines
        prefix = "^" + ISO_MS + "\t" + rid + "\t"
        assert lines_matching(out, "^" + ISO_MS + r"\tundefined\tINFO\tinit-time log$"), b.dump()
        assert lines_matching(out, prefix + r"INFO\thello world$"), b.dump()
        assert lines_matching(out, prefix + r"INFO\tinfo line$")
        assert lines_matching(out, prefix + r"WARN\twarn line$")
        assert lines_matching(out, prefix + "ERROR\terr\rsecond line$"), b.dump()
        assert lines_matching(out, prefix + r"DEBUG\tdebug line$")
        assert lines_matching(out, prefix + r"TRACE\ttrace line$")


def test_node_log_level_and_json_format():
    env = {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "WARN"}
    with node("app.logs", env=env) as b:
        rid, _ = b.invoke({})
        b.finish_output()
        docs = [json.loads(line) for line in b.stdout_lines if line.startswith("{")]
        levels = sorted(d["level"] for d in docs if d.get("requestId") == rid)
        assert levels == ["ERROR", "WARN"], b.dump()
        err = [d for d in docs if d["level"] == "ERROR"][0]
        assert err["message"] == "err\nsecond line" and re.match(ISO_MS + "$", err["timestamp"])


def test_node_async_handler_that_never_settles():
    with node("app.never") as b:
        _, res = b.invoke({})
        assert res.headers["lambda-runtime-function-error-type"] == "Runtime.NodeJsExit"
        # The environment stays usable.
        _, res = b.invoke({})
        assert res.json()["errorType"] == "Runtime.NodeJsExit"


def test_node_unhandled_rejection_fails_the_invoke_and_exits():
    with node("app.floatingRejection") as b:
        rid, res = b.invoke({})
        assert res.headers["lambda-runtime-function-error-type"] == "Runtime.UnhandledPromiseRejection"
        assert res.json()["errorMessage"] == "Error: floating"
        assert b.wait_exit() == 128
        b.finish_output()
        assert lines_matching(b.stdout_lines, "\t" + rid + r"\tERROR\tUnhandled Promise Rejection \t\{"), b.dump()


def test_node_handler_paths():
    cases = [
        (NODE_CJS, "app.nested.deeper.handler", "nested export"),
        (NODE_CJS, "dir/sub.handler", "from dir/sub"),
        (NODE_CJS, "cjsfile.handler", "from .cjs"),
    ]
    for root, handler, expected in cases:
        with node(handler, root=root) as b:
            _, res = b.invoke({})
            assert res.json() == expected, (handler, res)


def test_node_esm_mjs_with_sdk_from_stratus_sdk_path():
    with node("app.handler", root=NODE_ESM) as b:
        rid, res = b.invoke({"x": 1})
        doc = res.json()
        assert doc == {
            "esm": True,
            "count": 1,
            "event": {"x": 1},
            "requestId": rid,
            "sdk": "sdk-path (esm)",
            "scoped": "scoped sdk package",
        }, doc
        _, res = b.invoke({})
        assert res.json()["count"] == 2


def test_node_esm_type_module_js():
    with node("app.handler", root=NODE_ESM_TYPE) as b:
        rid, res = b.invoke({})
        assert res.json() == {"typeModule": True, "isEsm": True, "requestId": rid}


def test_node_cjs_sdk_from_stratus_sdk_path():
    with node("app.sdk") as b:
        _, res = b.invoke({})
        assert res.json() == {"sdk": "sdk-path (cjs)", "scoped": "scoped sdk package"}


def _node_init_error(handler, root=NODE_CJS, **kw):
    with node(handler, root=root, **kw) as b:
        err = b.api.wait_init_error()
        code = b.wait_exit()
        b.finish_output()
        return err, code, b


def test_node_import_errors():
    err, code, b = _node_init_error("nope.handler")
    assert code == 129
    assert err.headers["lambda-runtime-function-error-type"] == "Runtime.ImportModuleError"
    doc = err.json()
    assert doc["errorType"] == "Runtime.ImportModuleError"
    assert doc["errorMessage"].startswith("Error: Cannot find module 'nope'\nRequire stack:\n- ")
    assert doc["trace"][0] == "Runtime.ImportModuleError: Error: Cannot find module 'nope'"
    assert lines_matching(b.stdout_lines, "^" + ISO_MS + r"\tundefined\tERROR\tUncaught Exception \t\{"), b.dump()
    assert b.api.next_calls == 0

    err, _, _ = _node_init_error("bad_require.handler")
    assert err.json()["errorMessage"].startswith("Error: Cannot find module 'nope-missing-pkg-xyz'")

    # As on AWS, a missing package imported by an ES module is not wrapped.
    err, code, _ = _node_init_error("missing_pkg.handler", root=NODE_ESM)
    assert code == 129
    assert err.headers["lambda-runtime-function-error-type"] == "Error"
    assert "nope-missing-esm-pkg-xyz" in err.json()["errorMessage"]


def test_node_handler_not_found_and_malformed():
    err, code, _ = _node_init_error("app.missing")
    assert code == 129
    assert err.headers["lambda-runtime-function-error-type"] == "Runtime.HandlerNotFound"
    assert err.json()["errorMessage"] == "app.missing is undefined or not exported"
    err, _, _ = _node_init_error("app.notAFunction")
    assert err.json()["errorMessage"] == "app.notAFunction is not a function"
    err, _, _ = _node_init_error("app")
    assert err.headers["lambda-runtime-function-error-type"] == "Runtime.MalformedHandlerName"
    assert err.json()["errorMessage"] == "Bad handler"


def test_node_syntax_errors_and_init_exception():
    for root in (NODE_CJS, NODE_ESM):
        err, code, _ = _node_init_error("syntax.handler", root=root)
        assert code == 129
        assert err.headers["lambda-runtime-function-error-type"] == "Runtime.UserCodeSyntaxError"
        assert err.json()["errorMessage"].startswith("SyntaxError: ")
    err, code, _ = _node_init_error("toplevel_throw.handler")
    assert code == 129
    assert err.headers["lambda-runtime-function-error-type"] == "Error"
    assert err.json()["errorMessage"] == "init boom"


def test_node_response_streaming():
    with node("app.streaming", root=NODE_ESM) as b:
        _, res = b.invoke({})
        assert res.kind == "response"
        assert res.headers["lambda-runtime-function-response-mode"] == "streaming"
        assert res.headers["content-type"] == "text/plain"
        assert res.body == b"hello world"
    with node("app.httpStreaming", root=NODE_ESM) as b:
        _, res = b.invoke({})
        assert res.headers["content-type"] == "application/vnd.awslambda.http-integration-response"
        prelude, body = res.body.split(b"\x00" * 8, 1)
        assert json.loads(prelude) == {"statusCode": 201, "headers": {"x-a": "b"}}
        assert body == b"body"


def test_node_oversized_response_is_logged_and_runtime_continues():
    api = MockRuntimeApi(max_response_bytes=20)
    with node("app.echo", api=api) as b:
        _, res = b.invoke({"pad": "y" * 100})
        assert res.kind == "rejected"
        _, res = b.invoke({})
        assert res.json() == {"event": {}}
        b.finish_output()
        assert lines_matching(b.stderr_lines, "RequestEntityTooLarge"), b.dump()


# ===========================================================================


def main(argv):
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f)]
    if argv:
        tests = [(n, f) for n, f in tests if any(a in n for a in argv)]
    failed = 0
    for name, fn in tests:
        if name.startswith("test_node") and not NODE:
            print("SKIP", name, "(node not found)")
            continue
        start = time.time()
        try:
            fn()
        except Exception:
            failed += 1
            import traceback

            print("FAIL", name)
            traceback.print_exc()
        else:
            print("ok   {} ({:.2f}s)".format(name, time.time() - start))
    print("{} passed, {} failed".format(len(tests) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
