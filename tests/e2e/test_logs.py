"""CloudWatch Logs end to end, through boto3 and the AWS CLI.

Expected values come from the botocore model (logs 2014-03-28) and AWS's
documentation: the PutLogEvents batch rules (chronological order, 10,000
events, 1,048,576 bytes counting 26 bytes per event, events more than 2 hours
ahead or older than 14 days rejected by index), GetLogEvents' forward token
that comes back unchanged at the end of a stream, the filter pattern syntax
of the CloudWatch Logs User Guide, the retention periods PutRetentionPolicy
accepts, and for Step Functions the "Log levels" table and the log record
fields of the Step Functions Developer Guide.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from harness import (ACCOUNT, REGION, invoke_ok, make_client, raw_error_code, signed_request,
                     start_server)

from test_stepfunctions import ROLE, sfn_client, wait_done

DAY_MS = 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


def uname(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def logs(client_factory):
    return client_factory("logs")


@pytest.fixture(scope="module")
def sfn(endpoint):
    return sfn_client(endpoint)


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def group_with_stream(logs, stream="s1") -> str:
    g = uname("/test/group")
    logs.create_log_group(logGroupName=g)
    logs.create_log_stream(logGroupName=g, logStreamName=stream)
    return g


def put(logs, group, stream, messages, base=None):
    base = base if base is not None else now_ms() - 60_000
    events = [{"timestamp": base + i, "message": m} for i, m in enumerate(messages)]
    return logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


def filter_all(logs, **kw) -> list[dict]:
    out, token = [], None
    while True:
        args = dict(kw)
        if token:
            args["nextToken"] = token
        page = logs.filter_log_events(**args)
        out += page["events"]
        token = page.get("nextToken")
        if not token:
            return out


def poll(fn, until, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if until(v) or time.monotonic() > deadline:
            return v
        time.sleep(0.2)


# --------------------------------------------------------------------------
# Lambda function logs
# --------------------------------------------------------------------------


def test_lambda_function_logs_are_served_through_the_logs_api(logs, lambda_client, functions, python_zip,
                                                              aws_cli):
    name = functions.python(python_zip)
    marker = uname("marker")
    inv = invoke_ok(lambda_client, name, {"action": "log", "lines": [marker]})
    group = f"/aws/lambda/{name}"

    def matching():
        # Like CloudWatch Logs, the group appears with the function's first
        # log line, a moment after the invoke answered.
        try:
            return filter_all(logs, logGroupName=group, filterPattern=f'"{marker}"')
        except logs.exceptions.ResourceNotFoundException:
            return []
    found = poll(matching, lambda ev: len(ev) >= 1)
    assert len(found) == 1 and marker in found[0]["message"]
    stream = found[0]["logStreamName"]
    # Lambda's stream names: YYYY/MM/DD/[$LATEST]<32 hex>.
    assert stream.split("/[")[1].startswith("$LATEST]"), stream
    assert len(found[0]["eventId"]) == 56 and found[0]["eventId"].isdigit()

    groups = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [group]
    assert groups[0]["arn"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:*"
    assert "retentionInDays" not in groups[0]
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert stream in [s["logStreamName"] for s in streams]

    # The REPORT line arrives with the rest of the invocation's lines.
    def report():
        ev = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
        return [e["message"] for e in ev]
    lines = poll(report, lambda ls: any(f"REPORT RequestId: {inv.invocation_id}" in l for l in ls))
    text = "\n".join(lines)
    assert f"START RequestId: {inv.invocation_id} Version: $LATEST" in text
    assert text.index(f"START RequestId: {inv.invocation_id}") < text.index(marker) \
        < text.index(f"END RequestId: {inv.invocation_id}")

    # The AWS CLI pages through filter-log-events on its own.
    out = aws_cli("logs", "filter-log-events", "--log-group-name", group, "--filter-pattern", "REPORT")
    assert any(f"REPORT RequestId: {inv.invocation_id}" in e["message"] for e in out["events"])
    out = aws_cli("logs", "get-log-events", "--log-group-name", group, "--log-stream-name", stream,
                  "--start-from-head")
    assert any(marker in e["message"] for e in out["events"])


# --------------------------------------------------------------------------
# groups and streams
# --------------------------------------------------------------------------


def test_groups_and_streams_lifecycle_and_errors(logs):
    base = uname("/test/life")
    names = [f"{base}/{c}" for c in "abc"]
    for n in names:
        logs.create_log_group(logGroupName=n)
    with pytest.raises(ClientError) as e:
        logs.create_log_group(logGroupName=names[0])
    assert error_code(e) == "ResourceAlreadyExistsException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as e:
        logs.create_log_group(logGroupName="has space")
    assert error_code(e) == "InvalidParameterException"

    # Pages of one, in name order, ending without a nextToken.
    seen, token = [], None
    while True:
        args = {"logGroupNamePrefix": base, "limit": 1}
        if token:
            args["nextToken"] = token
        page = logs.describe_log_groups(**args)
        assert len(page["logGroups"]) <= 1
        seen += [g["logGroupName"] for g in page["logGroups"]]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == names

    with pytest.raises(ClientError) as e:
        logs.create_log_stream(logGroupName=uname("/test/missing"), logStreamName="s")
    assert error_code(e) == "ResourceNotFoundException"
    g = names[0]
    for s in ["b-stream", "a-stream", "c-stream"]:
        logs.create_log_stream(logGroupName=g, logStreamName=s)
    with pytest.raises(ClientError) as e:
        logs.create_log_stream(logGroupName=g, logStreamName="a-stream")
    assert error_code(e) == "ResourceAlreadyExistsException"
    put(logs, g, "c-stream", ["old"], base=now_ms() - 120_000)
    put(logs, g, "a-stream", ["new"], base=now_ms() - 1_000)
    desc = logs.describe_log_streams(logGroupName=g)["logStreams"]
    assert [s["logStreamName"] for s in desc] == ["a-stream", "b-stream", "c-stream"]
    desc = logs.describe_log_streams(logGroupName=g, descending=True)["logStreams"]
    assert [s["logStreamName"] for s in desc] == ["c-stream", "b-stream", "a-stream"]
    desc = logs.describe_log_streams(logGroupName=g, orderBy="LastEventTime", descending=True)["logStreams"]
    assert [s["logStreamName"] for s in desc][:2] == ["a-stream", "c-stream"]
    assert desc[0]["lastEventTimestamp"] > desc[1]["lastEventTimestamp"]
    desc = logs.describe_log_streams(logGroupName=g, logStreamNamePrefix="b-")["logStreams"]
    assert [s["logStreamName"] for s in desc] == ["b-stream"]
    with pytest.raises(ClientError) as e:
        logs.describe_log_streams(logGroupName=g, orderBy="LastEventTime", logStreamNamePrefix="a")
    assert error_code(e) == "InvalidParameterException"

    logs.delete_log_stream(logGroupName=g, logStreamName="c-stream")
    with pytest.raises(ClientError) as e:
        logs.delete_log_stream(logGroupName=g, logStreamName="c-stream")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        logs.get_log_events(logGroupName=g, logStreamName="c-stream")
    assert error_code(e) == "ResourceNotFoundException"

    logs.delete_log_group(logGroupName=g)
    with pytest.raises(ClientError) as e:
        logs.delete_log_group(logGroupName=g)
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        logs.filter_log_events(logGroupName=g)
    assert error_code(e) == "ResourceNotFoundException"
    assert [x["logGroupName"] for x in logs.describe_log_groups(logGroupNamePrefix=base)["logGroups"]] \
        == names[1:]


def test_bad_input_gets_the_models_errors(client_factory, endpoint):
    raw = client_factory("logs", validate=False)
    g = group_with_stream(raw)
    for call, code in [
        (lambda: raw.describe_log_groups(limit=51), "InvalidParameterException"),
        (lambda: raw.describe_log_groups(limit=0), "InvalidParameterException"),
        (lambda: raw.get_log_events(logGroupName=g, logStreamName="s1", limit=10_001),
         "InvalidParameterException"),
        (lambda: raw.describe_log_streams(logGroupName=g, orderBy="Size"), "InvalidParameterException"),
        (lambda: raw.describe_log_streams(), "InvalidParameterException"),
        (lambda: raw.describe_log_groups(nextToken="bogus"), "InvalidParameterException"),
        (lambda: raw.create_log_stream(logGroupName=g, logStreamName="a:b"), "InvalidParameterException"),
        (lambda: raw.put_log_events(logGroupName=g, logStreamName="s1", logEvents=[{"message": "no time"}]),
         "InvalidParameterException"),
    ]:
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == code
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert e.value.response["Error"]["Message"]
    # Fields of the wrong type (boto3 would not send them).
    for body in [b'{"logGroupName": "' + g.encode() + b'", "logStreamName": "s1", "logEvents": "x"}',
                 b'{"logGroupName": 5}', b'[1, 2]', b'{not json']:
        status, headers, answer = signed_request(
            endpoint, "POST", "/", body,
            headers={"Content-Type": "application/x-amz-json-1.1",
                     "X-Amz-Target": "Logs_20140328.PutLogEvents"})
        assert status == 400, answer
        assert raw_error_code(headers, answer) == "SerializationException", answer
    # An operation stratus does not serve says so.
    with pytest.raises(ClientError) as e:
        raw.describe_metric_filters(logGroupName=g)
    assert error_code(e) == "UnknownOperationException"


# --------------------------------------------------------------------------
# PutLogEvents
# --------------------------------------------------------------------------


def test_put_log_events_batch_rules(logs, client_factory):
    g = group_with_stream(logs)
    t = now_ms()
    with pytest.raises(ClientError) as e:
        logs.put_log_events(logGroupName=g, logStreamName="s1", logEvents=[
            {"timestamp": t, "message": "second"}, {"timestamp": t - 10, "message": "first"}])
    assert error_code(e) == "InvalidParameterException"
    # 1,048,576 bytes including 26 per event: one byte more is refused.
    big = "x" * (1_048_576 - 26 + 1)
    with pytest.raises(ClientError) as e:
        logs.put_log_events(logGroupName=g, logStreamName="s1", logEvents=[{"timestamp": t, "message": big}])
    assert error_code(e) == "InvalidParameterException"
    exact = "y" * (1_048_576 - 26)
    r = logs.put_log_events(logGroupName=g, logStreamName="s1", logEvents=[{"timestamp": t, "message": exact}])
    assert "rejectedLogEventsInfo" not in r
    with pytest.raises(ClientError) as e:
        logs.put_log_events(logGroupName=g, logStreamName="s1",
                            logEvents=[{"timestamp": t, "message": "m"}] * 10_001)
    assert error_code(e) == "InvalidParameterException"

    # More than 2 hours ahead: rejected from the first such index on.
    r = logs.put_log_events(logGroupName=g, logStreamName="s1", logEvents=[
        {"timestamp": t, "message": "in time"},
        {"timestamp": t + 3 * 3_600_000, "message": "too new"},
        {"timestamp": t + 3 * 3_600_000 + 1, "message": "too new too"}])
    assert r["rejectedLogEventsInfo"] == {"tooNewLogEventStartIndex": 1}
    # Older than 14 days: rejected up to the last such index.
    old = t - 14 * DAY_MS - 3_600_000
    r = logs.put_log_events(logGroupName=g, logStreamName="s1", logEvents=[
        {"timestamp": old, "message": "too old"},
        {"timestamp": old + 1, "message": "too old too"},
        {"timestamp": old + 2 * 3_600_000, "message": "accepted"}])
    assert r["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 1}
    messages = [e["message"] for e in filter_all(logs, logGroupName=g)]
    assert "in time" in messages and "accepted" in messages
    assert not {"too new", "too new too", "too old", "too old too"} & set(messages)

    with pytest.raises(ClientError) as e:
        logs.put_log_events(logGroupName=g, logStreamName="nope", logEvents=[{"timestamp": t, "message": "m"}])
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        logs.put_log_events(logGroupName=uname("/none"), logStreamName="s1",
                            logEvents=[{"timestamp": t, "message": "m"}])
    assert error_code(e) == "ResourceNotFoundException"


# --------------------------------------------------------------------------
# GetLogEvents paging
# --------------------------------------------------------------------------


def test_get_log_events_pages_forward_and_backward(logs):
    g = group_with_stream(logs)
    base = now_ms() - 600_000
    put(logs, g, "s1", [f"event {i:02d}" for i in range(25)], base=base)

    got, token, pages = [], None, 0
    while True:
        args = dict(logGroupName=g, logStreamName="s1", limit=10)
        if token:
            args["nextToken"] = token
        else:
            args["startFromHead"] = True
        page = logs.get_log_events(**args)
        pages += 1
        got += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            assert page["events"] == []
            break
        token = page["nextForwardToken"]
        assert token.startswith("f/")
    assert got == [f"event {i:02d}" for i in range(25)]
    assert pages == 4

    # Without a token: the newest events; then backwards.
    tail = logs.get_log_events(logGroupName=g, logStreamName="s1", limit=10)
    assert [e["message"] for e in tail["events"]] == [f"event {i:02d}" for i in range(15, 25)]
    assert tail["nextBackwardToken"].startswith("b/")
    back = logs.get_log_events(logGroupName=g, logStreamName="s1", limit=10, nextToken=tail["nextBackwardToken"])
    assert [e["message"] for e in back["events"]] == [f"event {i:02d}" for i in range(5, 15)]
    # startTime inclusive, endTime exclusive.
    window = logs.get_log_events(logGroupName=g, logStreamName="s1", startFromHead=True,
                                 startTime=base + 3, endTime=base + 6)
    assert [e["message"] for e in window["events"]] == ["event 03", "event 04", "event 05"]
    assert all(e["timestamp"] == base + int(e["message"][-2:]) for e in window["events"])
    with pytest.raises(ClientError) as e:
        logs.get_log_events(logGroupName=g, logStreamName="s1", nextToken="garbage")
    assert error_code(e) == "InvalidParameterException"


# --------------------------------------------------------------------------
# FilterLogEvents and filter patterns
# --------------------------------------------------------------------------


def test_filter_patterns(logs, aws_cli):
    g = group_with_stream(logs, "app-1")
    logs.create_log_stream(logGroupName=g, logStreamName="app-2")
    logs.create_log_stream(logGroupName=g, logStreamName="other")
    base = now_ms() - 300_000
    put(logs, g, "app-1", [
        "[ERROR] A fatal exception has occurred",
        "[ERROR] Unhandled exception. Exiting",
        "[WARN] disk almost full",
        "[INFO] Failed to process the request",
    ], base=base)
    put(logs, g, "app-2", [
        json.dumps({"eventType": "UpdateTrail", "sourceIPAddress": "123.123.1.2", "latency": 50}),
        json.dumps({"eventType": "CreateTrail", "sourceIPAddress": "10.0.0.1", "latency": 700, "ok": True}),
    ], base=base + 10)
    put(logs, g, "other", ["[ERROR] from another stream"], base=base + 20)

    def msgs(**kw):
        return [e["message"] for e in filter_all(logs, logGroupName=g, **kw)]

    assert len(msgs()) == 7
    assert msgs(filterPattern="ERROR") == ["[ERROR] A fatal exception has occurred",
                                           "[ERROR] Unhandled exception. Exiting",
                                           "[ERROR] from another stream"]
    assert msgs(filterPattern="ERROR -Exiting", logStreamNames=["app-1"]) == \
        ["[ERROR] A fatal exception has occurred"]
    assert msgs(filterPattern="?WARN ?fatal", logStreamNamePrefix="app") == \
        ["[ERROR] A fatal exception has occurred", "[WARN] disk almost full"]
    assert msgs(filterPattern='"Failed to process"') == ["[INFO] Failed to process the request"]
    assert msgs(filterPattern="error") == []
    assert [json.loads(m)["eventType"] for m in msgs(filterPattern="{ $.latency > 100 }")] == ["CreateTrail"]
    assert [json.loads(m)["eventType"] for m in msgs(filterPattern="{ $.sourceIPAddress = 123.123.* }")] \
        == ["UpdateTrail"]
    assert [json.loads(m)["eventType"] for m in
            msgs(filterPattern='{ ($.eventType = "UpdateTrail") || ($.ok IS TRUE && $.latency >= 700) }')] \
        == ["UpdateTrail", "CreateTrail"]
    assert msgs(filterPattern="{ $.missing NOT EXISTS && $.latency = 50 }") != []
    # Both ends inclusive: "events with a timestamp later than endTime are not returned".
    assert msgs(startTime=base + 1, endTime=base + 3) == ["[ERROR] Unhandled exception. Exiting",
                                                          "[WARN] disk almost full",
                                                          "[INFO] Failed to process the request"]
    # The calls `aws logs tail` (AWS CLI v2) makes: interleaved, from a start time.
    tail = logs.get_paginator("filter_log_events").paginate(
        logGroupName=g, interleaved=True, startTime=base + 10, filterPattern="?ERROR ?eventType")
    assert [e["logStreamName"] for page in tail for e in page["events"]] == ["app-2", "app-2", "other"]
    # Pages of 2 in timestamp order across streams.
    page = logs.filter_log_events(logGroupName=g, limit=2)
    assert len(page["events"]) == 2 and "nextToken" in page
    for bad in ["{ $.latency > }", '"unclosed', "{ $.a < abc }"]:
        with pytest.raises(ClientError) as e:
            logs.filter_log_events(logGroupName=g, filterPattern=bad)
        assert error_code(e) == "InvalidParameterException", bad
    with pytest.raises(ClientError) as e:
        logs.filter_log_events(logGroupName=g, logStreamNames=["app-1"], logStreamNamePrefix="app")
    assert error_code(e) == "InvalidParameterException"

    # Space-delimited: the Apache access log example of the filter pattern syntax page.
    logs.create_log_stream(logGroupName=g, logStreamName="access")
    put(logs, g, "access", [
        '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 200 1534',
        '127.0.0.1 - frank [10/Oct/2000:13:35:22 -0700] "GET /apache_pb.gif HTTP/1.0" 404 100',
    ], base=base + 30)
    access = dict(logStreamNames=["access"])
    assert len(msgs(filterPattern="[ip, user, username, timestamp, request, status_code, bytes]", **access)) == 2
    assert [m.split()[-2] for m in msgs(filterPattern="[..., status_code = 4*, bytes]", **access)] == ["404"]
    assert [m.split()[-1] for m in msgs(
        filterPattern="[ip, user, username, timestamp, request, status_code, bytes > 1000]")] == ["1534"]
    assert msgs(filterPattern="[ip, user]", **access) == []

    out = aws_cli("logs", "filter-log-events", "--log-group-name", g, "--filter-pattern", "?WARN ?INFO")
    assert [e["message"] for e in out["events"]] == ["[WARN] disk almost full",
                                                     "[INFO] Failed to process the request"]


# --------------------------------------------------------------------------
# retention and tags
# --------------------------------------------------------------------------


def test_retention_is_enforced(logs):
    g = group_with_stream(logs)
    put(logs, g, "s1", ["two days old"], base=now_ms() - 2 * DAY_MS)
    put(logs, g, "s1", ["fresh"], base=now_ms() - 1000)
    assert len(filter_all(logs, logGroupName=g)) == 2
    with pytest.raises(ClientError) as e:
        logs.put_retention_policy(logGroupName=g, retentionInDays=2)
    assert error_code(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        logs.put_retention_policy(logGroupName=uname("/none"), retentionInDays=1)
    assert error_code(e) == "ResourceNotFoundException"
    logs.put_retention_policy(logGroupName=g, retentionInDays=1)
    desc = logs.describe_log_groups(logGroupNamePrefix=g)["logGroups"][0]
    assert desc["retentionInDays"] == 1
    assert [e["message"] for e in filter_all(logs, logGroupName=g)] == ["fresh"]
    got = logs.get_log_events(logGroupName=g, logStreamName="s1", startFromHead=True)["events"]
    assert [e["message"] for e in got] == ["fresh"]
    # New events older than the retention period are expired on arrival.
    r = put(logs, g, "s1", ["expired", "kept"], base=now_ms() - DAY_MS - 60_000)
    assert r["rejectedLogEventsInfo"] == {"expiredLogEventEndIndex": 1}
    logs.delete_retention_policy(logGroupName=g)
    assert "retentionInDays" not in logs.describe_log_groups(logGroupNamePrefix=g)["logGroups"][0]


def test_tags(logs):
    g = uname("/test/tags")
    logs.create_log_group(logGroupName=g, tags={"team": "a"})
    arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{g}"
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "a"}
    logs.tag_resource(resourceArn=arn, tags={"env": "dev", "team": "b"})
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "b", "env": "dev"}
    logs.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"env": "dev"}
    with pytest.raises(ClientError) as e:
        logs.tag_resource(resourceArn=arn, tags={f"k{i}": "v" for i in range(50)})
    assert error_code(e) == "TooManyTagsException"
    with pytest.raises(ClientError) as e:
        logs.list_tags_for_resource(resourceArn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{g}-none")
    assert error_code(e) == "ResourceNotFoundException"


# --------------------------------------------------------------------------
# Step Functions execution logging
# --------------------------------------------------------------------------

PASS_THEN_FAIL = json.dumps({
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Next": "Stop"},
        "Stop": {"Type": "Fail", "Error": "Custom.Error", "Cause": "stopped on purpose"},
    },
})
PASS_ONLY = json.dumps({"StartAt": "Only", "States": {"Only": {"Type": "Pass", "End": True}}})

# The "Log levels" table of the Step Functions Developer Guide.
EXPECTED = {
    "ALL": ["ExecutionStarted", "PassStateEntered", "PassStateExited", "FailStateEntered", "ExecutionFailed"],
    "ERROR": ["FailStateEntered", "ExecutionFailed"],
    "FATAL": ["ExecutionFailed"],
    "OFF": [],
}


def logged_machine(sfn, logs, definition, type_, level, include_data=True):
    g = uname("/aws/vendedlogs/states/test")
    logs.create_log_group(logGroupName=g)
    cfg = {"level": level, "includeExecutionData": include_data}
    if level != "OFF":
        cfg["destinations"] = [{"cloudWatchLogsLogGroup": {
            "logGroupArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{g}:*"}}]
    name = uname("logged")
    arn = sfn.create_state_machine(name=name, definition=definition, roleArn=ROLE, type=type_,
                                   loggingConfiguration=cfg)["stateMachineArn"]
    return arn, name, g


def records(logs, group, want: int) -> list[dict]:
    ev = poll(lambda: filter_all(logs, logGroupName=group), lambda e: len(e) >= want, timeout=15)
    return ev


@pytest.mark.parametrize("type_", ["STANDARD", "EXPRESS"])
@pytest.mark.parametrize("level", ["ALL", "ERROR", "FATAL", "OFF"])
def test_step_functions_logging_levels(sfn, logs, type_, level):
    arn, name, group = logged_machine(sfn, logs, PASS_THEN_FAIL, type_, level)
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"order": 7}))["executionArn"]
    assert wait_done(sfn, ex)["status"] == "FAILED"
    want = EXPECTED[level]
    events = records(logs, group, len(want))
    if not want:
        time.sleep(1.0)
        events = filter_all(logs, logGroupName=group)
    recs = [json.loads(e["message"]) for e in events]
    assert [r["type"] for r in recs] == want
    for e, r in zip(events, recs):
        assert set(r) == {"id", "type", "details", "previous_event_id", "event_timestamp",
                          "execution_arn", "redrive_count"}
        assert r["execution_arn"] == ex
        assert r["redrive_count"] == "0"
        assert r["id"].isdigit() and r["previous_event_id"].isdigit()
        assert int(r["event_timestamp"]) == e["timestamp"]
        assert e["logStreamName"].startswith(f"states/{name}/")
    if level == "ALL":
        assert [int(r["id"]) for r in recs] == [1, 2, 3, 4, 5]
        assert json.loads(recs[0]["details"]["input"]) == {"order": 7}
        assert recs[0]["details"]["roleArn"] == ROLE
    if level != "OFF":
        failed = recs[-1]["details"]
        assert failed == {"error": "Custom.Error", "cause": "stopped on purpose"}


@pytest.mark.parametrize("type_", ["STANDARD", "EXPRESS"])
def test_step_functions_logging_error_level_skips_successes(sfn, logs, type_):
    arn, _, group = logged_machine(sfn, logs, PASS_ONLY, type_, "ERROR")
    ex = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    assert wait_done(sfn, ex)["status"] == "SUCCEEDED"
    time.sleep(1.0)
    assert filter_all(logs, logGroupName=group) == []


def test_step_functions_logging_without_execution_data(sfn, logs, aws_cli):
    arn, _, group = logged_machine(sfn, logs, PASS_ONLY, "EXPRESS", "ALL", include_data=False)
    out = sfn.start_sync_execution(stateMachineArn=arn, input=json.dumps({"secret": "s3cr3t"}))
    assert out["status"] == "SUCCEEDED"
    events = records(logs, group, 4)
    recs = [json.loads(e["message"]) for e in events]
    assert [r["type"] for r in recs] == ["ExecutionStarted", "PassStateEntered", "PassStateExited",
                                         "ExecutionSucceeded"]
    assert all(r["execution_arn"] == out["executionArn"] for r in recs)
    for r in recs:
        assert "input" not in r["details"] and "output" not in r["details"]
    assert "s3cr3t" not in "".join(e["message"] for e in events)
    assert recs[0]["details"]["roleArn"] == ROLE
    # The records are JSON: JSON filter patterns select them.
    out = aws_cli("logs", "filter-log-events", "--log-group-name", group,
                  "--filter-pattern", '{ $.type = "ExecutionSucceeded" }')
    assert [json.loads(e["message"])["id"] for e in out["events"]] == ["4"]


@pytest.mark.parametrize("type_", ["STANDARD", "EXPRESS"])
def test_step_functions_logs_a_stopped_execution(sfn, logs, type_):
    definition = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 60, "End": True}}})
    arn, _, group = logged_machine(sfn, logs, definition, type_, "FATAL")
    ex = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    sfn.stop_execution(executionArn=ex, error="Manual", cause="operator")
    recs = [json.loads(e["message"]) for e in records(logs, group, 1)]
    assert [r["type"] for r in recs] == ["ExecutionAborted"]
    assert recs[0]["details"] == {"error": "Manual", "cause": "operator"}
    assert recs[0]["execution_arn"] == ex


def test_step_functions_logs_each_event_once_across_a_restart(tmp_path):
    """A Standard execution parked in a Wait state survives SIGKILL; after
    the restart its replay does not log the events logged before."""
    srv = start_server(tmp_path / "data", name="logs-sfn-restart")
    logs = make_client(srv.url, "logs")
    sfn = sfn_client(srv.url)
    definition = json.dumps({"StartAt": "Before", "States": {
        "Before": {"Type": "Pass", "Next": "Pause"},
        "Pause": {"Type": "Wait", "Seconds": 8, "Next": "After"},
        "After": {"Type": "Pass", "End": True}}})
    arn, _, group = logged_machine(sfn, logs, definition, "STANDARD", "ALL")
    ex = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    before = records(logs, group, 4)
    assert [json.loads(e["message"])["type"] for e in before][-1] == "WaitStateEntered"
    srv.kill()
    srv.start()
    logs = make_client(srv.url, "logs")
    sfn = sfn_client(srv.url)
    assert wait_done(sfn, ex, timeout=60)["status"] == "SUCCEEDED"
    history = sfn.get_execution_history(executionArn=ex, maxResults=1000)["events"]
    recs = [json.loads(e["message"]) for e in records(logs, group, len(history))]
    assert [(int(r["id"]), r["type"]) for r in recs] == [(e["id"], e["type"]) for e in history]
    assert [int(r["previous_event_id"]) for r in recs] == [e["previousEventId"] for e in history]
    srv.stop()
