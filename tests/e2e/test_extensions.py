"""The Extensions API and the Telemetry API (issue 3, part 5).

External extensions are executables in /opt/extensions (from a layer). As AWS
documents ("Lambda Extensions API", "Lambda Telemetry API", the event schema
reference 2022-12-13): an extension registers (`Lambda-Extension-Name`,
answer `{functionName, functionVersion, handler}` with a
`Lambda-Extension-Identifier`), receives INVOKE events `{eventType,
deadlineMs, requestId, invokedFunctionArn, tracing}` and a SHUTDOWN event
`{eventType, shutdownReason, deadlineMs}` when the environment ends; an
invocation ends when the runtime has answered and every extension has called
`next` again (REPORT's Duration includes the extensions' post-processing);
`AWS_LAMBDA_EXEC_WRAPPER` wraps the runtime's start; a Telemetry API
subscriber receives `{time, type, record}` batches by HTTP POST: the
function's log lines (`function`) and platform events such as
`platform.report`. Errors are the runtime interface emulator's
(`Extension.RegistrationClosed`, `Extension.InvalidEventType`, ...); an
extension that crashes during init fails it with `Extension.Crash`.

The extensions under test report what they see by HTTP POST to a collector
in the test process (the network is shared in both isolation modes, while
namespace mode gives each environment a private /tmp); in process mode they
also append it to a file in a temporary directory named by an environment
variable.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from harness import (
    UUID_RE,
    FunctionFactory,
    function_arn,
    invoke,
    invoke_ok,
    make_zip,
    parse_reports,
    start_server,
    stratus_cli,
    unique_name,
    wait_until,
)

IS_ROOT = os.geteuid() == 0
MODES = ["namespace", "process"]

# An external extension, as AWS's samples write them: a Python script.
EXTENSION = r'''#!/usr/bin/env python3
import json, os, sys, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
NAME = os.path.basename(sys.argv[0])
COLLECTOR = os.environ.get("COLLECTOR")
OUT_DIR = os.environ.get("EXT_OUT_DIR")


def report(kind, data):
    doc = {"ext": NAME, "kind": kind, "data": data, "pid": os.getpid()}
    if OUT_DIR and os.path.isdir(OUT_DIR):
        try:
            with open(os.path.join(OUT_DIR, NAME + ".jsonl"), "a") as f:
                f.write(json.dumps(doc) + "\n")
        except OSError:
            pass
    if COLLECTOR:
        req = urllib.request.Request(COLLECTOR, data=json.dumps(doc).encode(), method="POST")
        urllib.request.urlopen(req, timeout=10).read()


def call(method, path, body=None, headers=None):
    req = urllib.request.Request(f"http://{API}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers=headers or {})
    with urllib.request.urlopen(req) as r:
        return r.headers, json.loads(r.read() or b"null")


if os.environ.get("EXT_CRASH_BEFORE_REGISTER"):
    sys.exit(3)

headers, info = call("POST", "/2020-01-01/extension/register", {"events": ["INVOKE", "SHUTDOWN"]},
                     {"Lambda-Extension-Name": NAME})
ext_id = headers["Lambda-Extension-Identifier"]
report("registered", {"info": info, "id": ext_id, "env_handler": os.environ.get("_HANDLER")})
print(f"[{NAME}] registered", flush=True)

if os.environ.get("EXT_INIT_ERROR"):
    call("POST", "/2020-01-01/extension/init/error",
         {"errorMessage": "cannot start", "errorType": "Extension.Fatal", "stackTrace": []},
         {"Lambda-Extension-Identifier": ext_id, "Lambda-Extension-Function-Error-Type": "Extension.Fatal"})
    sys.exit(1)

if os.environ.get("EXT_TELEMETRY"):
    class Listener(BaseHTTPRequestHandler):
        def do_POST(self):
            batch = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            report("telemetry", batch)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    listener = HTTPServer(("0.0.0.0", 0), Listener)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    port = listener.server_address[1]
    _, answer = call("PUT", "/2022-07-01/telemetry", {
        "schemaVersion": "2022-12-13",
        "types": ["platform", "function"],
        "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
        "destination": {"protocol": "HTTP", "URI": f"http://sandbox.localdomain:{port}/telemetry"},
    }, {"Lambda-Extension-Identifier": ext_id, "Content-Type": "application/json"})
    report("subscribed", answer)

while True:
    _, event = call("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": ext_id})
    report("event", event)
    if event["eventType"] == "SHUTDOWN":
        print(f"[{NAME}] shutting down", flush=True)
        sys.exit(0)
    delay = int(os.environ.get("EXT_POST_INVOKE_MS", "0"))
    if delay:
        time.sleep(delay / 1000)
        report("post-processed", event["requestId"])
'''

APP = """import os, json
print("init of the function", flush=True)

def handler(event, context):
    print("hello-telemetry " + context.aws_request_id, flush=True)
    return {"request_id": context.aws_request_id,
            "wrapped_by": os.environ.get("WRAPPED_BY"),
            "wrapper_args": os.environ.get("WRAPPER_ARGS")}
"""


class Collector:
    """What the extensions POST: a list of {ext, kind, data} documents."""

    def __init__(self):
        docs = self.docs = []
        lock = self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    docs.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, kind, ext=None):
        with self.lock:
            return [d["data"] for d in self.docs if d["kind"] == kind and (ext is None or d["ext"] == ext)]

    def events(self, event_type, ext=None):
        return [e for e in self.of("event", ext) if e.get("eventType") == event_type]

    def telemetry(self):
        return [e for batch in self.of("telemetry") for e in batch]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.close()


def extension_layer(client, name="probe", extra=None) -> str:
    files = {f"extensions/{name}": EXTENSION}
    files.update(extra or {})
    execs = [f"extensions/{name}"] + [k for k in (extra or {}) if k.startswith(("wrapper", "bin/"))]
    return client.publish_layer_version(LayerName=unique_name("ext"),
                                        Content={"ZipFile": make_zip(files, executables=execs)})["LayerVersionArn"]


def own_server(tmp_path, mode, *args):
    if mode == "namespace" and not IS_ROOT:
        pytest.skip("namespace isolation needs root (CI runs as root)")
    srv = start_server(tmp_path / "data", name=f"ext-{mode}", extra_args=["--isolation", mode, *args])
    srv.mode = mode
    return srv


def create(srv, factory, layers, env=None, **kw):
    variables = {"COLLECTOR": kw.pop("collector_url")}
    variables.update(env or {})
    return factory.python(make_zip({"app.py": APP}), Layers=layers, Environment={"Variables": variables}, **kw)


# --------------------------------------------------------------------------
# INVOKE and SHUTDOWN
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_extension_sees_invoke_and_shutdown(tmp_path, mode, collector):
    srv = own_server(tmp_path, mode)
    client = srv.client()
    factory = FunctionFactory(client, "ext")
    out_dir = tmp_path / "ext-out"
    out_dir.mkdir()
    out_dir.chmod(0o777)
    name = create(srv, factory, [extension_layer(client)], collector_url=collector.url,
                  env={"EXT_OUT_DIR": str(out_dir)})
    first = invoke_ok(client, name, {"n": 1}, LogType="Tail")
    second = invoke_ok(client, name, {"n": 2})

    registered = collector.of("registered")
    assert len(registered) == 1, "one environment, registered once"
    assert registered[0]["info"] == {"functionName": name, "functionVersion": "$LATEST",
                                     "handler": "app.handler"}
    assert UUID_RE.match(registered[0]["id"])
    assert registered[0]["env_handler"] is None, "_HANDLER is the runtime's, not the extension's"

    invokes = collector.events("INVOKE")
    ids = [first.payload["request_id"], second.payload["request_id"]]
    assert [e["requestId"] for e in invokes] == ids
    assert ids[0] == first.request_id, "the invocation's request id is the answer's"
    for e in invokes:
        assert e["invokedFunctionArn"] == function_arn(name)
        assert e["deadlineMs"] > time.time() * 1000 - 60_000
        assert e["tracing"]["type"] == "X-Amzn-Trace-Id" and e["tracing"]["value"].startswith("Root=1-")
    assert "[probe] registered" not in (first.log or ""), "init output is not part of the invocation's tail"

    srv.stop()
    shutdown = collector.events("SHUTDOWN")
    assert len(shutdown) == 1, collector.docs
    assert shutdown[0]["shutdownReason"].lower() == "spindown"
    assert isinstance(shutdown[0]["deadlineMs"], int)
    assert not srv.leftover_pids, "the extension ended with its environment"

    logs = stratus_cli("logs", name, "--data-dir", str(srv.data_dir)).stdout
    assert "EXTENSION\tName: probe\tState: Ready\tEvents: [INVOKE,SHUTDOWN]" in logs
    assert "[probe] registered" in logs and "[probe] shutting down" in logs
    if mode == "process":
        lines = [json.loads(l) for l in (out_dir / "probe.jsonl").read_text().splitlines()]
        assert [l["data"]["eventType"] for l in lines if l["kind"] == "event"] == ["INVOKE", "INVOKE", "SHUTDOWN"]


def test_shutdown_when_the_environment_is_reclaimed(tmp_path, collector):
    srv = own_server(tmp_path, "namespace" if IS_ROOT else "process", "--idle-timeout", "1")
    client = srv.client()
    factory = FunctionFactory(client, "reclaim")
    name = create(srv, factory, [extension_layer(client)], collector_url=collector.url)
    invoke_ok(client, name)
    wait_until(lambda: collector.events("SHUTDOWN"), timeout=15, what="SHUTDOWN after the idle timeout")
    assert collector.events("SHUTDOWN")[0]["shutdownReason"].lower() == "spindown"
    assert srv.running
    # The next invocation gets a new environment whose extension registers again.
    invoke_ok(client, name)
    assert len(collector.of("registered")) == 2
    factory.cleanup()
    srv.stop()


def test_invocation_includes_extension_post_processing(lambda_client, functions, collector):
    name = create(None, functions, [extension_layer(lambda_client)], collector_url=collector.url,
                  env={"EXT_POST_INVOKE_MS": "400"})
    inv = invoke_ok(lambda_client, name, {}, LogType="Tail")
    # The extension finished its work before the invocation ended ...
    assert collector.of("post-processed") == [inv.payload["request_id"]]
    # ... and REPORT's Duration covers it, as on AWS.
    report = parse_reports(inv.log)[-1]
    assert float(report["duration"]) >= 400, inv.log


# --------------------------------------------------------------------------
# Telemetry API
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_telemetry_subscriber_receives_function_logs_and_report(tmp_path, mode, collector):
    srv = own_server(tmp_path, mode)
    client = srv.client()
    factory = FunctionFactory(client, "tele")
    name = create(srv, factory, [extension_layer(client, "telemetry-shipper")], collector_url=collector.url,
                  env={"EXT_TELEMETRY": "1"})
    inv = invoke_ok(client, name)
    rid = inv.payload["request_id"]
    assert collector.of("subscribed") == ["OK"]

    def has_report():
        return any(e["type"] == "platform.report" and e["record"]["requestId"] == rid for e in collector.telemetry())

    wait_until(has_report, timeout=10, what="platform.report of the invocation")
    events = collector.telemetry()
    types = [e["type"] for e in events]
    for t in ("platform.initStart", "platform.initRuntimeDone", "platform.initReport", "platform.start",
              "platform.runtimeDone", "platform.report", "function"):
        assert t in types, f"{t} missing from {types}"
    assert types.index("platform.start") < types.index("platform.runtimeDone") < types.index("platform.report")
    logs = [e["record"] for e in events if e["type"] == "function"]
    assert "init of the function" in logs
    assert f"hello-telemetry {rid}" in logs
    assert not any("telemetry-shipper" in str(r) for r in logs), "extension output is not a function log"
    for e in events:
        assert set(e) == {"time", "type", "record"}
        assert e["time"].endswith("Z") and "T" in e["time"]
    report = next(e["record"] for e in events if e["type"] == "platform.report")
    assert report["status"] == "success"
    m = report["metrics"]
    assert m["memorySizeMB"] == 128
    assert m["durationMs"] >= 0 and m["billedDurationMs"] >= 1 and m["maxMemoryUsedMB"] > 0
    assert "initDurationMs" in m, "the first invocation was a cold start"
    start = next(e["record"] for e in events if e["type"] == "platform.start")
    assert start["requestId"] == rid and start["version"] == "$LATEST"
    done = next(e["record"] for e in events if e["type"] == "platform.runtimeDone")
    assert done["status"] == "success" and done["metrics"]["producedBytes"] > 0
    srv.stop()


# --------------------------------------------------------------------------
# AWS_LAMBDA_EXEC_WRAPPER
# --------------------------------------------------------------------------

WRAPPER = """#!/bin/sh
export WRAPPED_BY=wrapper
export WRAPPER_ARGS="$*"
exec "$@"
"""


def test_exec_wrapper_wraps_the_runtime(lambda_client, functions, collector):
    layer = lambda_client.publish_layer_version(
        LayerName=unique_name("wrap"),
        Content={"ZipFile": make_zip({"wrapper": WRAPPER}, executables=["wrapper"])})["LayerVersionArn"]
    name = create(None, functions, [layer], collector_url=collector.url,
                  env={"AWS_LAMBDA_EXEC_WRAPPER": "/opt/wrapper"})
    out = invoke_ok(lambda_client, name).payload
    assert out["wrapped_by"] == "wrapper"
    # The wrapper receives the runtime's own command line as its arguments.
    assert "bootstrap" in out["wrapper_args"] and "python" in out["wrapper_args"]


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


def test_extension_crash_during_init_fails_the_init(lambda_client, functions, collector, check_server):
    name = create(None, functions, [extension_layer(lambda_client, "crasher")], collector_url=collector.url,
                  env={"EXT_CRASH_BEFORE_REGISTER": "1"})
    inv = invoke(lambda_client, name, {}, LogType="Tail")
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Extension.Crash", inv.payload
    assert "exit status 3" in inv.payload["errorMessage"]
    assert "Error Type: Extension.Crash" in inv.log


def test_extension_init_error(lambda_client, functions, collector, check_server):
    name = create(None, functions, [extension_layer(lambda_client, "failing")], collector_url=collector.url,
                  env={"EXT_INIT_ERROR": "1"})
    inv = invoke(lambda_client, name, {})
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Extension.InitError", inv.payload


INTERNAL = """import json, os, urllib.request, urllib.error
API = os.environ["AWS_LAMBDA_RUNTIME_API"]

def call(method, path, body=None, headers=None):
    req = urllib.request.Request(f"http://{API}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(), headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"null")

# An internal extension (a thread of the runtime) registering during init.
SHUTDOWN = call("POST", "/2020-01-01/extension/register", {"events": ["SHUTDOWN"]},
                {"Lambda-Extension-Name": "in-process"})
NONAME = call("POST", "/2020-01-01/extension/register", {"events": []})

def handler(event, context):
    late = call("POST", "/2020-01-01/extension/register", {"events": ["INVOKE"]},
                {"Lambda-Extension-Name": "late"})
    unknown = call("GET", "/2020-01-01/extension/event/next",
                   headers={"Lambda-Extension-Identifier": "00000000-0000-0000-0000-000000000000"})
    missing = call("GET", "/2020-01-01/extension/event/next")
    telemetry = call("PUT", "/2022-07-01/telemetry", {"schemaVersion": "2022-12-13"},
                     {"Lambda-Extension-Identifier": "00000000-0000-0000-0000-000000000000"})
    return {k: [v[0], (v[2] or {}).get("errorType") if isinstance(v[2], dict) else v[2]] for k, v in
            {"shutdown": SHUTDOWN, "noname": NONAME, "late": late, "unknown": unknown, "missing": missing,
             "telemetry": telemetry}.items()}
"""


def test_extensions_api_errors(lambda_client, functions, check_server):
    name = functions.python(make_zip({"app.py": INTERNAL}))
    out = invoke_ok(lambda_client, name).payload
    assert out["shutdown"] == [403, "Extension.InvalidEventType"], "internal extensions cannot get SHUTDOWN"
    assert out["noname"] == [403, "Extension.InvalidExtensionName"]
    assert out["late"] == [403, "Extension.RegistrationClosed"]
    assert out["unknown"] == [403, "Extension.UnknownExtensionIdentifier"]
    assert out["missing"] == [403, "Extension.MissingHeader"]
    assert out["telemetry"] == [403, "Extension.UnknownExtensionIdentifier"]
