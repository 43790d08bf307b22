"""CloudWatch Logs and CloudWatch metrics as a new user meets them: the
examples of docs/logs.md and docs/metrics.md run as written with the AWS
CLI, a Lambda function printing an Embedded Metric Format line, and bad
input that must get AWS's error code and status without harming the server.

Expected values come from the botocore models (`logs` 2014-03-28,
`monitoring` 2010-08-01) and AWS's documentation:

* PutLogEvents: "For valid events (within 14 days in the past to 2 hours in
  future), the time span in a single batch cannot exceed 24 hours"; older
  and newer events are "rejected while processing remaining valid events".
* FilterLogEvents `endTime`: "Events with a timestamp later than this time
  are not returned" (so an event at `endTime` is returned); GetLogEvents'
  `endTime`: "Events with a timestamp equal to or later than this time are
  not included".
* An invalid filter pattern is `InvalidParameterException` (HTTP 400).
* The Embedded Metric Format specification: one metric per dimension set
  and metric name, dimension values from the root members.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from harness import (aws_cli_path, invoke_ok, make_client, make_zip, raw_error_code, signed_request,
                     start_server, wait_for_function)

ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::123456789012:role/lambda-role"
DAY_MS = 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


def uname(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def doc_block(doc: str, after: str) -> str:
    """The first ```sh block of docs/<doc> after the line containing `after`."""
    text = (ROOT / "docs" / doc).read_text()
    start = text.index(after)
    m = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert m, f"no sh block after {after!r} in {doc}"
    return m.group(1)


def run_bash(script: str, endpoint: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(aws_cli_path()).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")
    script = script.replace("http://127.0.0.1:4566", endpoint)
    return subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=180)


def wait_for_events(logs, group: str, pattern: str, timeout: float = 15.0,
                    at_least: int = 1) -> list[dict]:
    """The events matching `pattern` once there are `at_least` (function
    log lines reach the store a moment after the invoke answers)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            events = logs.filter_log_events(logGroupName=group, filterPattern=pattern)["events"]
        except ClientError as e:
            if e.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            events = []
        if len(events) >= at_least or time.monotonic() > deadline:
            return events
        time.sleep(0.3)


def healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/_stratus/health", timeout=10) as r:
        return r.status == 200


@pytest.fixture(scope="module")
def logs(client_factory):
    return client_factory("logs")


@pytest.fixture(scope="module")
def cw(client_factory):
    return client_factory("cloudwatch")


# --------------------------------------------------------------------------
# the documentation's examples, as written
# --------------------------------------------------------------------------


def test_logs_doc_example_runs_as_written(tmp_path, python_zip):
    """docs/logs.md's CLI block, run by bash with `-e` against a fresh server
    (its names are fixed), after `my-function` has logged once."""
    srv = start_server(tmp_path / "data", name="logs-doc")
    lam = make_client(srv.url, "lambda")
    lam.create_function(FunctionName="my-function", Runtime="python3.12", Role=ROLE,
                        Handler="app.handler", Code={"ZipFile": python_zip})
    wait_for_function(lam, "my-function")
    invoke_ok(lam, "my-function", {})
    assert wait_for_events(make_client(srv.url, "logs"), "/aws/lambda/my-function", "REPORT")
    script = doc_block("logs.md", "## Example (AWS CLI, runs as written)")
    proc = run_bash(script, srv.url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(d) for d in re.findall(r"^\{.*?^\}", proc.stdout, re.S | re.M)]
    put, filtered, got, reports = docs[-4:]
    assert "nextSequenceToken" in put
    assert [e["message"] for e in filtered["events"]] == ["[ERROR] payment declined"]
    assert [e["message"] for e in got["events"]] == ["[ERROR] payment declined"]
    assert reports["events"] and reports["events"][0]["message"].startswith("REPORT RequestId: ")


def test_metrics_doc_example_runs_as_written(tmp_path, python_zip):
    """docs/metrics.md's CLI block (without its `stratus server &` line),
    against a fresh server holding the README's function `hello`."""
    srv = start_server(tmp_path / "data", name="metrics-doc")
    lam = make_client(srv.url, "lambda")
    lam.create_function(FunctionName="hello", Runtime="python3.12", Role=ROLE,
                        Handler="app.handler", Code={"ZipFile": python_zip})
    wait_for_function(lam, "hello")
    script = doc_block("metrics.md", "The service lives in")
    script = "\n".join(line for line in script.splitlines() if line.strip() != "stratus server &")
    proc = run_bash(script, srv.url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(d) for d in re.findall(r"^\{.*?^\}", proc.stdout, re.S | re.M)]
    invoked, stats = docs
    assert invoked["StatusCode"] == 200
    assert stats["Label"] == "Invocations"
    assert sum(d["Sum"] for d in stats["Datapoints"]) == 1.0
    cw = make_client(srv.url, "cloudwatch")
    now = time.time()
    points = cw.get_metric_statistics(
        Namespace="Shop", MetricName="Orders", Dimensions=[{"Name": "Store", "Value": "berlin"}],
        StartTime=now - 600, EndTime=now + 60, Period=60, Statistics=["Sum"])["Datapoints"]
    assert [(p["Sum"], p["Unit"]) for p in points] == [(3.0, "Count")]


# --------------------------------------------------------------------------
# a function's logs and metrics (Embedded Metric Format)
# --------------------------------------------------------------------------

EMF_FUNCTION = '''
import json
import time


def put_metric(namespace, metric_name, value, unit="None", dimensions=None):
    emf_log = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [list(dimensions.keys())] if dimensions else [[]],
                "Metrics": [{"Name": metric_name, "Unit": unit}],
            }],
        },
        metric_name: value,
    }
    if dimensions:
        emf_log.update(dimensions)
    print(json.dumps(emf_log))


def handler(event, context):
    print("[ERROR] commande refus\\u00e9e \\u2713 \\u65e5\\u672c")
    put_metric(event["ns"], "ProcessingTime", 12.5, "Milliseconds",
               {"Environment": "production", "Service": "\\u6ce8\\u6587-api"})
    return {"ok": True}
'''


def test_function_logs_and_emf_metrics(functions, logs, cw):
    name = functions.python(make_zip({"app.py": EMF_FUNCTION}))
    ns = uname("MyApplication")
    lam = functions.client
    for _ in range(3):
        invoke_ok(lam, name, {"ns": ns})
    group = f"/aws/lambda/{name}"
    errors = wait_for_events(logs, group, "ERROR", at_least=3)
    assert [e["message"].strip() for e in errors][:1] == ["[ERROR] commande refusée ✓ 日本"]
    assert wait_for_events(logs, group, "日本")
    by_json = wait_for_events(logs, group, '{ $.Service = "注文-api" }', at_least=3)
    assert len(by_json) == 3
    stream = errors[0]["logStreamName"]
    got = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    assert any(e["message"].startswith("REPORT RequestId: ") for e in got)
    dims = [{"Name": "Environment", "Value": "production"}, {"Name": "Service", "Value": "注文-api"}]
    deadline = time.monotonic() + 20
    while True:
        now = time.time()
        points = cw.get_metric_statistics(
            Namespace=ns, MetricName="ProcessingTime", Dimensions=dims, StartTime=now - 600,
            EndTime=now + 60, Period=60, Statistics=["SampleCount", "Sum", "Minimum"])["Datapoints"]
        if sum(p["SampleCount"] for p in points) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sum(p["SampleCount"] for p in points) == 3
    assert sum(p["Sum"] for p in points) == 37.5
    assert {p["Unit"] for p in points} == {"Milliseconds"}
    listed = cw.list_metrics(Namespace=ns)["Metrics"]
    assert [(m["MetricName"], m["Dimensions"]) for m in listed] == [("ProcessingTime", dims)]


# --------------------------------------------------------------------------
# defects found by breaking it
# --------------------------------------------------------------------------


def test_deeply_nested_filter_pattern_is_refused_and_the_server_lives(server, logs):
    """A 1,012-character pattern (within the 1,024 limit) of nested `(`
    used to overflow the request thread's stack and abort the server."""
    g = uname("/newuser/nest")
    logs.create_log_group(logGroupName=g)
    logs.create_log_stream(logGroupName=g, logStreamName="s")
    logs.put_log_events(logGroupName=g, logStreamName="s",
                        logEvents=[{"timestamp": now_ms(), "message": '{"a": 1}'}])
    for pattern in ["{ " + "(" * 1008 + " }",
                    "{ " + "(" * 500 + "$.a = 1" + ")" * 500 + " }",
                    "[a = 1 || " + "(" * 500 + "a = 2" + ")" * 500 + "]"]:
        assert len(pattern) <= 1024
        with pytest.raises(ClientError) as e:
            logs.filter_log_events(logGroupName=g, filterPattern=pattern)
        assert e.value.response["Error"]["Code"] == "InvalidParameterException"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert healthy(server.url)
    # Reasonable nesting still works.
    ok = "{ " + "(" * 10 + "$.a = 1" + ")" * 10 + " }"
    assert len(logs.filter_log_events(logGroupName=g, filterPattern=ok)["events"]) == 1


def test_put_log_events_span_counts_only_valid_events(logs):
    """An event older than 14 days ahead of a current one is rejected by
    index; the batch does not fail for spanning more than 24 hours."""
    g = uname("/newuser/span")
    logs.create_log_group(logGroupName=g)
    logs.create_log_stream(logGroupName=g, logStreamName="s")
    now = now_ms()
    r = logs.put_log_events(logGroupName=g, logStreamName="s", logEvents=[
        {"timestamp": now - 20 * DAY_MS, "message": "too old"},
        {"timestamp": now - 60_000, "message": "kept"},
        {"timestamp": now + 5 * 3_600_000, "message": "too new"},
    ])
    assert r["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 0, "tooNewLogEventStartIndex": 2}
    got = logs.get_log_events(logGroupName=g, logStreamName="s", startFromHead=True)["events"]
    assert [e["message"] for e in got] == ["kept"]
    # Valid events spanning more than 24 hours still fail the call.
    with pytest.raises(ClientError) as e:
        logs.put_log_events(logGroupName=g, logStreamName="s", logEvents=[
            {"timestamp": now - 2 * DAY_MS, "message": "a"},
            {"timestamp": now, "message": "b"}])
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"


def test_filter_log_events_end_time_is_inclusive(logs):
    g = uname("/newuser/end")
    logs.create_log_group(logGroupName=g)
    logs.create_log_stream(logGroupName=g, logStreamName="s")
    t = now_ms() - 60_000
    logs.put_log_events(logGroupName=g, logStreamName="s", logEvents=[
        {"timestamp": t, "message": "first"}, {"timestamp": t + 1, "message": "second"}])
    got = logs.filter_log_events(logGroupName=g, startTime=t, endTime=t)["events"]
    assert [e["message"] for e in got] == ["first"]
    got = logs.filter_log_events(logGroupName=g, startTime=t, endTime=t + 1)["events"]
    assert [e["message"] for e in got] == ["first", "second"]
    # GetLogEvents' endTime stays exclusive.
    got = logs.get_log_events(logGroupName=g, logStreamName="s", startTime=t, endTime=t + 1,
                              startFromHead=True)["events"]
    assert [e["message"] for e in got] == ["first"]


def test_filter_log_events_pages_hold_at_most_1_mb(logs):
    """"Each page returned can contain up to 1 MB of log events" (the
    FilterLogEvents API reference): three events of 500,000 bytes come as
    two pages, none lost or repeated."""
    g = uname("/newuser/mb")
    logs.create_log_group(logGroupName=g)
    logs.create_log_stream(logGroupName=g, logStreamName="s")
    t = now_ms() - 60_000
    for i in range(3):
        logs.put_log_events(logGroupName=g, logStreamName="s",
                            logEvents=[{"timestamp": t + i, "message": str(i) * 500_000}])
    pages, token = [], None
    while True:
        kw = {"nextToken": token} if token else {}
        r = logs.filter_log_events(logGroupName=g, **kw)
        pages.append([e["message"][0] for e in r["events"]])
        assert sum(len(e["message"].encode()) + 26 for e in r["events"]) <= 1_048_576
        token = r.get("nextToken")
        if not token:
            break
        assert len(pages) < 10
    assert [m for p in pages for m in p] == ["0", "1", "2"]
    assert pages[0] == ["0", "1"]


def test_put_log_events_member_types(server, logs):
    """The json protocol's rule, as for the request's own members: an event
    member of the wrong JSON type is SerializationException, a missing one
    InvalidParameterException; both HTTP 400."""
    g = uname("/newuser/types")
    logs.create_log_group(logGroupName=g)
    logs.create_log_stream(logGroupName=g, logStreamName="s")
    now = now_ms()
    cases = [
        ([{"timestamp": "now", "message": "x"}], "SerializationException"),
        ([{"timestamp": now + 0.5, "message": "x"}], "SerializationException"),
        ([{"timestamp": now, "message": 5}], "SerializationException"),
        ([5], "SerializationException"),
        ([{"message": "x"}], "InvalidParameterException"),
        ([{"timestamp": now}], "InvalidParameterException"),
        ([{"timestamp": now, "message": None}], "InvalidParameterException"),
    ]
    for events, code in cases:
        body = json.dumps({"logGroupName": g, "logStreamName": "s", "logEvents": events}).encode()
        status, headers, answer = signed_request(
            server.url, "POST", "/", body,
            headers={"Content-Type": "application/x-amz-json-1.1",
                     "X-Amz-Target": "Logs_20140328.PutLogEvents"})
        assert (status, raw_error_code(headers, answer)) == (400, code), (events, answer)
    assert logs.get_log_events(logGroupName=g, logStreamName="s")["events"] == []


def test_tags_need_at_least_one_string_entry(server, logs):
    """The model's `Tags` map has 1-50 entries of string values: an empty
    map is InvalidParameterException, a value of another JSON type
    SerializationException, in TagResource, TagLogGroup and CreateLogGroup."""
    g = uname("/newuser/tags")
    logs.create_log_group(logGroupName=g)
    arn = logs.describe_log_groups(logGroupNamePrefix=g)["logGroups"][0]["logGroupArn"]
    bodies = [
        ("TagResource", {"resourceArn": arn, "tags": {}}, "InvalidParameterException"),
        ("TagLogGroup", {"logGroupName": g, "tags": {}}, "InvalidParameterException"),
        ("CreateLogGroup", {"logGroupName": g + "-2", "tags": {}}, "InvalidParameterException"),
        ("TagResource", {"resourceArn": arn, "tags": {"k": 5}}, "SerializationException"),
        ("CreateLogGroup", {"logGroupName": g + "-3", "tags": {"k": True}}, "SerializationException"),
    ]
    for op, body, code in bodies:
        status, headers, answer = signed_request(
            server.url, "POST", "/", json.dumps(body).encode(),
            headers={"Content-Type": "application/x-amz-json-1.1",
                     "X-Amz-Target": f"Logs_20140328.{op}"})
        assert (status, raw_error_code(headers, answer)) == (400, code), (op, body, answer)
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {}
    assert logs.describe_log_groups(logGroupNamePrefix=g + "-")["logGroups"] == []
    # Without `tags` CreateLogGroup is fine.
    logs.create_log_group(logGroupName=g + "-4")
