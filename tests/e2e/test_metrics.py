"""CloudWatch's metric API (GetMetricStatistics, GetMetricData, ListMetrics,
PutMetricData) over Lambda's, Step Functions' and custom metrics, with boto3
and the AWS CLI.

Expected values come from AWS's documentation:
- "Types of metrics for Lambda functions": Invocations counts each
  invocation, Errors each invocation that ended in a function error,
  Duration is the invocation's duration in ms (the REPORT line's Duration);
  dimensions FunctionName, and FunctionName + Resource (`name:alias`).
- "Monitoring Step Functions metrics using Amazon CloudWatch": namespace
  AWS/States, dimension StateMachineArn, ExecutionsStarted / Succeeded /
  Failed / Aborted (counts), ExecutionTime (ms between the execution's start
  and close).
- CloudWatch's statistics definitions (SampleCount, Sum, Average, Minimum,
  Maximum, percentiles) and the API reference's limits and error codes
  (InvalidParameterValue, InvalidParameterCombination, InvalidNextToken,
  ValidationError).
Lambda metrics reach the store every few seconds, so the tests poll.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from harness import (
    ACCOUNT,
    FUNCTIONS_DIR,
    REGION,
    assert_client_error,
    invoke,
    make_client,
    make_zip,
    start_server,
    wait_until,
)

APP = (FUNCTIONS_DIR / "python_basic" / "app.py").read_bytes()
SFN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/StepFunctions-role"


def now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def cw(server):
    return make_client(server.url, "cloudwatch")


@pytest.fixture(scope="module")
def cw_novalidate(server):
    return make_client(server.url, "cloudwatch", validate=False)


@pytest.fixture(scope="module")
def sfn(server):
    cfg = Config(region_name=REGION, retries={"max_attempts": 1, "mode": "standard"},
                 inject_host_prefix=False)
    import boto3
    return boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                 region_name=REGION).client("stepfunctions", endpoint_url=server.url,
                                                            config=cfg)


def total(datapoints, stat):
    return sum(d[stat] for d in datapoints)


def stats(cw, namespace, metric, dims, statistics, start=None, period=3600, **kw):
    start = start or now() - timedelta(minutes=30)
    return cw.get_metric_statistics(
        Namespace=namespace, MetricName=metric,
        Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=start, EndTime=now() + timedelta(minutes=5), Period=period,
        Statistics=statistics, **kw)


REPORT_RE = re.compile(r"REPORT RequestId: \S+\s+Duration: ([0-9.]+) ms")


# --------------------------------------------------------------------------
# AWS/Lambda
# --------------------------------------------------------------------------


def test_lambda_invocations_errors_and_duration(cw, functions, lambda_client, aws_cli):
    name = functions.python(make_zip({"app.py": APP}))
    durations = []
    for event in ({"action": "echo"}, {"action": "echo"}, {"action": "echo"},
                  {"action": "raise", "message": "boom"}):
        inv = invoke(lambda_client, name, event, LogType="Tail")
        m = REPORT_RE.search(inv.log or "")
        assert m, f"no REPORT line in {inv.log!r}"
        durations.append(float(m.group(1)))
        if event["action"] == "raise":
            assert inv.function_error == "Unhandled"
    dims = {"FunctionName": name}

    def invocations():
        dp = stats(cw, "AWS/Lambda", "Invocations", dims, ["Sum", "SampleCount"])["Datapoints"]
        return dp if dp and total(dp, "Sum") == 4 else None

    dp = wait_until(invocations, 30, what="4 Invocations in AWS/Lambda")
    assert all(d["Unit"] == "Count" for d in dp)
    errors = stats(cw, "AWS/Lambda", "Errors", dims, ["Sum"])["Datapoints"]
    assert total(errors, "Sum") == 1
    dur = stats(cw, "AWS/Lambda", "Duration", dims, ["SampleCount", "Sum", "Maximum"])
    assert dur["Label"] == "Duration"
    dp = dur["Datapoints"]
    assert total(dp, "SampleCount") == 4
    assert all(d["Unit"] == "Milliseconds" for d in dp)
    # The REPORT line rounds to 2 decimals.
    assert max(d["Maximum"] for d in dp) == pytest.approx(max(durations), abs=0.01)
    assert total(dp, "Sum") == pytest.approx(sum(durations), abs=0.05)

    # Minimum and percentiles come from each invocation's duration.
    def with_minimum():
        dp = stats(cw, "AWS/Lambda", "Duration", dims, ["Minimum", "SampleCount"])["Datapoints"]
        return dp if dp and all("Minimum" in d for d in dp) else None

    dp = wait_until(with_minimum, 30, what="Duration's Minimum")
    assert min(d["Minimum"] for d in dp) == pytest.approx(min(durations), abs=0.01)
    ext = cw.get_metric_statistics(
        Namespace="AWS/Lambda", MetricName="Duration", Dimensions=[{"Name": "FunctionName", "Value": name}],
        StartTime=now() - timedelta(minutes=30), EndTime=now() + timedelta(minutes=5), Period=3600,
        ExtendedStatistics=["p50", "p100"])["Datapoints"]
    assert len(ext) == 1, ext
    ordered = sorted(durations)
    assert ext[0]["ExtendedStatistics"]["p100"] == pytest.approx(ordered[-1], abs=0.01)
    assert ordered[1] - 0.01 <= ext[0]["ExtendedStatistics"]["p50"] <= ordered[2] + 0.01

    # ListMetrics names the function's metrics with its dimension.
    listed = cw.list_metrics(Namespace="AWS/Lambda", Dimensions=[{"Name": "FunctionName", "Value": name}])
    names = {m["MetricName"] for m in listed["Metrics"]}
    assert {"Invocations", "Errors", "Duration"} <= names
    for m in listed["Metrics"]:
        assert {"Name": "FunctionName", "Value": name} in m["Dimensions"]

    # The AWS CLI (json protocol, timestamps in ISO 8601 on its command line).
    out = aws_cli("cloudwatch", "get-metric-statistics", "--namespace", "AWS/Lambda",
                  "--metric-name", "Invocations", "--dimensions", f"Name=FunctionName,Value={name}",
                  "--start-time", (now() - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "--end-time", (now() + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "--period", "3600", "--statistics", "Sum")
    assert out["Label"] == "Invocations"
    assert sum(d["Sum"] for d in out["Datapoints"]) == 4


def test_lambda_alias_resource_dimension(cw, functions, lambda_client):
    name = functions.python(make_zip({"app.py": APP}))
    v = lambda_client.publish_version(FunctionName=name)["Version"]
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion=v)
    for _ in range(2):
        inv = invoke(lambda_client, name, {"action": "echo"}, Qualifier="live")
        assert inv.status == 200 and inv.function_error is None
    dims = {"FunctionName": name, "Resource": f"{name}:live"}
    dp = wait_until(lambda: (lambda d: d if d and total(d, "Sum") == 2 else None)(
        stats(cw, "AWS/Lambda", "Invocations", dims, ["Sum"])["Datapoints"]), 30,
        what="Invocations of the alias")
    assert total(dp, "Sum") == 2
    # The function's own series counts them too.
    fn = stats(cw, "AWS/Lambda", "Invocations", {"FunctionName": name}, ["Sum"])["Datapoints"]
    assert total(fn, "Sum") == 2


def test_lambda_throttles_and_async_events(cw, functions, lambda_client):
    """Throttles counts invocation requests refused for concurrency;
    AsyncEventsReceived counts events Lambda queued for asynchronous
    invocation ("Types of metrics for Lambda functions")."""
    name = functions.python(make_zip({"app.py": APP}))
    for _ in range(3):
        r = lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"action": "echo"}')
        assert r["StatusCode"] == 202
    dims = {"FunctionName": name}

    def received():
        dp = stats(cw, "AWS/Lambda", "AsyncEventsReceived", dims, ["Sum"])["Datapoints"]
        return dp if dp and total(dp, "Sum") == 3 else None

    dp = wait_until(received, 30, what="3 AsyncEventsReceived")
    assert all(d["Unit"] == "Count" for d in dp)
    # Once they have run, nothing else asks for the function's concurrency.
    wait_until(lambda: total(stats(cw, "AWS/Lambda", "Invocations", dims, ["Sum"])["Datapoints"], "Sum") == 3,
               30, what="the 3 events to run")
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as e:
        lambda_client.invoke(FunctionName=name, Payload=b"{}")
    assert_client_error(e, "TooManyRequestsException", 429)
    # Each request the client sent (its retries included) was throttled.
    sent = e.value.response["ResponseMetadata"].get("RetryAttempts", 0) + 1

    def throttles():
        dp = stats(cw, "AWS/Lambda", "Throttles", dims, ["Sum"])["Datapoints"]
        return dp if dp and total(dp, "Sum") == sent else None

    wait_until(throttles, 30, what=f"{sent} Throttles")


def test_lambda_embedded_metric_format(cw, functions, lambda_client):
    name = functions.python(make_zip({"app.py": APP}))
    ns = f"MyApplication-{uuid.uuid4().hex[:8]}"
    lines = []
    for value in (120.0, 80.0):
        lines.append(json.dumps({
            "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
                "Namespace": ns, "Dimensions": [["Environment", "Service"]],
                "Metrics": [{"Name": "ProcessingTime", "Unit": "Milliseconds"}]}]},
            "ProcessingTime": value, "Environment": "production", "Service": "order-api"}))
    inv = invoke(lambda_client, name, {"action": "log", "lines": lines})
    assert inv.status == 200 and inv.function_error is None
    dims = {"Environment": "production", "Service": "order-api"}

    def got():
        dp = stats(cw, ns, "ProcessingTime", dims, ["SampleCount", "Sum", "Minimum", "Maximum"])["Datapoints"]
        return dp if dp and total(dp, "SampleCount") == 2 else None

    dp = wait_until(got, 30, what="the EMF metric")
    assert total(dp, "Sum") == 200.0
    assert min(d["Minimum"] for d in dp) == 80.0
    assert max(d["Maximum"] for d in dp) == 120.0
    assert all(d["Unit"] == "Milliseconds" for d in dp)


# --------------------------------------------------------------------------
# AWS/States
# --------------------------------------------------------------------------


MACHINE = json.dumps({
    "StartAt": "Route",
    "States": {
        "Route": {"Type": "Choice", "Choices": [
            {"Variable": "$.mode", "StringEquals": "fail", "Next": "Boom"},
            {"Variable": "$.mode", "StringEquals": "wait", "Next": "Long"}],
            "Default": "Done"},
        "Done": {"Type": "Pass", "End": True},
        "Boom": {"Type": "Fail", "Error": "Broken", "Cause": "asked to fail"},
        "Long": {"Type": "Wait", "Seconds": 3600, "End": True},
    },
})


def test_step_functions_execution_metrics(cw, sfn, aws_cli):
    sm = sfn.create_state_machine(name=f"metrics-{uuid.uuid4().hex[:8]}", definition=MACHINE,
                                  roleArn=SFN_ROLE)["stateMachineArn"]
    arns = [sfn.start_execution(stateMachineArn=sm, input=json.dumps({"mode": m}))["executionArn"]
            for m in ("ok", "ok", "fail", "wait")]

    def status(arn):
        return sfn.describe_execution(executionArn=arn)["status"]

    wait_until(lambda: [status(a) for a in arns[:3]] == ["SUCCEEDED", "SUCCEEDED", "FAILED"], 30,
               what="executions to finish")
    wait_until(lambda: status(arns[3]) == "RUNNING", 10, what="the waiting execution")
    sfn.stop_execution(executionArn=arns[3], error="Stopped", cause="by the test")
    took = []
    for a in arns:
        d = sfn.describe_execution(executionArn=a)
        took.append((d["stopDate"] - d["startDate"]).total_seconds() * 1000)

    dims = {"StateMachineArn": sm}
    expected = {"ExecutionsStarted": 4, "ExecutionsSucceeded": 2, "ExecutionsFailed": 1,
                "ExecutionsAborted": 1}

    def counts():
        got = {m: total(stats(cw, "AWS/States", m, dims, ["Sum"])["Datapoints"], "Sum") for m in expected}
        return got if got == expected else None

    wait_until(counts, 20, what=f"Step Functions counts {expected}")
    assert stats(cw, "AWS/States", "ExecutionsTimedOut", dims, ["Sum"])["Datapoints"] == []
    t = stats(cw, "AWS/States", "ExecutionTime", dims, ["SampleCount", "Maximum", "Minimum"])["Datapoints"]
    assert total(t, "SampleCount") == 4
    assert all(d["Unit"] == "Milliseconds" for d in t)
    # Describe's dates are in ms.
    assert max(d["Maximum"] for d in t) == pytest.approx(max(took), abs=1.0)
    assert min(d["Minimum"] for d in t) == pytest.approx(min(took), abs=1.0)

    # GetMetricData: several queries, one not returned, labels.
    def q(id_, metric, ret=True, label=None):
        query = {"Id": id_, "ReturnData": ret, "MetricStat": {
            "Metric": {"Namespace": "AWS/States", "MetricName": metric,
                       "Dimensions": [{"Name": "StateMachineArn", "Value": sm}]},
            "Period": 60, "Stat": "Sum"}}
        if label:
            query["Label"] = label
        return query

    out = cw.get_metric_data(
        MetricDataQueries=[q("started", "ExecutionsStarted", label="starts"), q("failed", "ExecutionsFailed"),
                           q("hidden", "ExecutionsSucceeded", ret=False)],
        StartTime=now() - timedelta(minutes=30), EndTime=now() + timedelta(minutes=5))
    by_id = {r["Id"]: r for r in out["MetricDataResults"]}
    assert set(by_id) == {"started", "failed"}
    assert by_id["started"]["Label"] == "starts"
    assert by_id["failed"]["Label"] == "ExecutionsFailed"
    assert sum(by_id["started"]["Values"]) == 4
    assert sum(by_id["failed"]["Values"]) == 1
    assert by_id["started"]["StatusCode"] == "Complete"
    assert len(by_id["started"]["Timestamps"]) == len(by_id["started"]["Values"])
    # Newest first unless asked otherwise.
    ts = by_id["started"]["Timestamps"]
    assert ts == sorted(ts, reverse=True)

    # ListMetrics through the AWS CLI.
    listed = aws_cli("cloudwatch", "list-metrics", "--namespace", "AWS/States",
                     "--dimensions", f"Name=StateMachineArn,Value={sm}")
    names = {m["MetricName"] for m in listed["Metrics"]}
    assert {"ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsAborted",
            "ExecutionTime"} <= names


def test_express_sync_execution_metrics(cw, sfn):
    sm = sfn.create_state_machine(name=f"sync-{uuid.uuid4().hex[:8]}", definition=MACHINE, roleArn=SFN_ROLE,
                                  type="EXPRESS")["stateMachineArn"]
    ok = sfn.start_sync_execution(stateMachineArn=sm, input=json.dumps({"mode": "ok"}))
    bad = sfn.start_sync_execution(stateMachineArn=sm, input=json.dumps({"mode": "fail"}))
    assert (ok["status"], bad["status"]) == ("SUCCEEDED", "FAILED")
    expected = {"ExecutionsStarted": 2, "ExecutionsSucceeded": 1, "ExecutionsFailed": 1}

    def counts():
        got = {m: total(stats(cw, "AWS/States", m, {"StateMachineArn": sm}, ["Sum"])["Datapoints"], "Sum")
               for m in expected}
        return got if got == expected else None

    wait_until(counts, 20, what=f"counts {expected}")
    t = stats(cw, "AWS/States", "ExecutionTime", {"StateMachineArn": sm}, ["SampleCount", "Maximum"])["Datapoints"]
    assert total(t, "SampleCount") == 2
    took = max((r["stopDate"] - r["startDate"]).total_seconds() * 1000 for r in (ok, bad))
    assert max(d["Maximum"] for d in t) == pytest.approx(took, abs=1.0)


def test_step_functions_metrics_survive_sigkill(tmp_path):
    """Starts are committed with the execution; ends are counted once, even
    when the server is killed while executions run and they finish after
    the restart, and a clean restart counts nothing again."""
    srv = start_server(tmp_path / "data", name="metrics-sigkill")
    sfn = make_client(srv.url, "stepfunctions")
    sm = sfn.create_state_machine(
        name="quick", roleArn=SFN_ROLE,
        definition=json.dumps({"StartAt": "W", "States": {
            "W": {"Type": "Wait", "Seconds": 1, "Next": "P"},
            "P": {"Type": "Pass", "Result": "done", "End": True}}}))["stateMachineArn"]
    started = [sfn.start_execution(stateMachineArn=sm)["executionArn"] for _ in range(5)]
    srv.kill()
    srv.start()
    sfn = make_client(srv.url, "stepfunctions")
    for ex in started:
        wait_until(lambda: sfn.describe_execution(executionArn=ex)["status"] == "SUCCEEDED", 30,
                   what=f"{ex} to succeed")
    expected = {"ExecutionsStarted": 5, "ExecutionsSucceeded": 5}

    def counts(url):
        c = make_client(url, "cloudwatch")
        got = {m: total(stats(c, "AWS/States", m, {"StateMachineArn": sm}, ["Sum"])["Datapoints"], "Sum")
               for m in expected}
        return got if got == expected else None

    wait_until(lambda: counts(srv.url), 20, what=f"counts {expected}")
    srv.stop()
    srv.start()
    assert counts(srv.url) == expected
    c = make_client(srv.url, "cloudwatch")
    t = stats(c, "AWS/States", "ExecutionTime", {"StateMachineArn": sm}, ["SampleCount", "Minimum"])["Datapoints"]
    assert total(t, "SampleCount") == 5
    # Each waited one second.
    assert min(d["Minimum"] for d in t) >= 1000
    srv.stop()


# --------------------------------------------------------------------------
# PutMetricData
# --------------------------------------------------------------------------


def test_put_metric_data_round_trip(cw):
    ns = f"Shop-{uuid.uuid4().hex[:8]}"
    dims = [{"Name": "Service", "Value": "cart"}]
    t = now()
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Latency", "Dimensions": dims, "Timestamp": t, "Unit": "Milliseconds",
         "Values": [10, 20, 30, 40], "Counts": [1, 2, 1, 1]},
        {"MetricName": "Latency", "Dimensions": dims, "Timestamp": t, "Unit": "Milliseconds", "Value": 100},
        {"MetricName": "Latency", "Dimensions": dims, "Timestamp": t, "Unit": "Milliseconds",
         "StatisticValues": {"SampleCount": 4, "Sum": 20, "Minimum": 2, "Maximum": 8}},
    ])
    out = stats(cw, ns, "Latency", {"Service": "cart"},
                ["SampleCount", "Sum", "Average", "Minimum", "Maximum"], period=3600)
    assert len(out["Datapoints"]) == 1, out
    d = out["Datapoints"][0]
    # Values 10, 20, 20, 30, 40 + 100 + a set of 4 summing to 20 (2..8).
    assert d["SampleCount"] == 10
    assert d["Sum"] == 240
    assert d["Average"] == 24
    assert d["Minimum"] == 2
    assert d["Maximum"] == 100
    assert d["Unit"] == "Milliseconds"

    # Percentiles need the values: a metric sent as values only.
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Size", "Values": [float(i) for i in range(1, 101)], "Unit": "Bytes"}])
    out = cw.get_metric_statistics(Namespace=ns, MetricName="Size", StartTime=t - timedelta(minutes=10),
                                   EndTime=now() + timedelta(minutes=5), Period=3600,
                                   ExtendedStatistics=["p50", "p99", "p100"])
    ext = out["Datapoints"][0]["ExtendedStatistics"]
    assert ext == {"p50": 50.0, "p99": 99.0, "p100": 100.0}

    # Unit filter: no data in another unit.
    none = stats(cw, ns, "Latency", {"Service": "cart"}, ["Sum"], Unit="Seconds")
    assert none["Datapoints"] == []

    # ListMetrics sees both metrics; a dimension filter keeps one.
    listed = cw.list_metrics(Namespace=ns)["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == ["Latency", "Size"]
    listed = cw.list_metrics(Namespace=ns, Dimensions=[{"Name": "Service"}])["Metrics"]
    assert [m["MetricName"] for m in listed] == ["Latency"]


def test_put_metric_data_is_durable(tmp_path):
    """PutMetricData answers after its datums are committed: a SIGKILL right
    after the answer loses nothing."""
    srv = start_server(tmp_path / "data", name="metrics-put-sigkill")
    cw = make_client(srv.url, "cloudwatch")
    ns = f"Durable-{uuid.uuid4().hex[:8]}"
    for i in range(5):
        cw.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "Saved", "Value": float(i + 1)}])
    srv.kill()
    srv.start()
    cw = make_client(srv.url, "cloudwatch")
    out = stats(cw, ns, "Saved", {}, ["SampleCount", "Sum"], start=now() - timedelta(minutes=10))
    assert total(out["Datapoints"], "SampleCount") == 5
    assert total(out["Datapoints"], "Sum") == 15
    srv.stop()


def test_high_resolution_metrics(cw):
    """StorageResolution 1 keeps values to the second (periods of 1 s return
    them apart); standard resolution keeps them to the minute."""
    ns = f"HighRes-{uuid.uuid4().hex[:8]}"
    base = now().replace(microsecond=0) - timedelta(minutes=2)
    base = base.replace(second=10)
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Fast", "Value": float(i), "Timestamp": base + timedelta(seconds=i), "StorageResolution": 1}
        for i in range(1, 4)] + [
        {"MetricName": "Slow", "Value": float(i), "Timestamp": base + timedelta(seconds=i)} for i in range(1, 4)])
    window = dict(StartTime=base, EndTime=base + timedelta(seconds=30), Statistics=["Sum"])
    fast = cw.get_metric_statistics(Namespace=ns, MetricName="Fast", Period=1, **window)["Datapoints"]
    assert sorted(d["Sum"] for d in fast) == [1.0, 2.0, 3.0]
    assert sorted(d["Timestamp"] for d in fast) == [base + timedelta(seconds=i) for i in range(1, 4)]
    slow = cw.get_metric_statistics(Namespace=ns, MetricName="Slow", Period=60,
                                    StartTime=base.replace(second=0), EndTime=base + timedelta(minutes=1),
                                    Statistics=["Sum", "SampleCount"])["Datapoints"]
    assert [(d["Sum"], d["SampleCount"]) for d in slow] == [(6.0, 3.0)]
    with pytest.raises(ClientError) as e:
        cw.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "Odd", "Value": 1.0, "StorageResolution": 30}])
    assert_client_error(e, "InvalidParameterValue", 400)


def test_put_and_get_with_the_cli(aws_cli):
    ns = f"Cli-{uuid.uuid4().hex[:8]}"
    for v in ("5", "7"):
        aws_cli("cloudwatch", "put-metric-data", "--namespace", ns, "--metric-name", "Jobs",
                "--value", v, "--unit", "Count", "--dimensions", "Queue=high")
    out = aws_cli("cloudwatch", "get-metric-statistics", "--namespace", ns, "--metric-name", "Jobs",
                  "--dimensions", "Name=Queue,Value=high",
                  "--start-time", (now() - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "--end-time", (now() + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "--period", "3600", "--statistics", "Sum", "Average", "SampleCount")
    dp = out["Datapoints"]
    assert len(dp) == 1
    assert dp[0]["Sum"] == 12 and dp[0]["Average"] == 6 and dp[0]["SampleCount"] == 2
    assert dp[0]["Unit"] == "Count"


def test_list_metrics_pages(cw, aws_cli):
    """ListMetrics answers 500 metrics a page with a NextToken."""
    ns = f"Many-{uuid.uuid4().hex[:8]}"
    cw.put_metric_data(Namespace=ns, MetricData=[{"MetricName": f"m{i:04d}", "Value": 1.0} for i in range(501)])
    first = cw.list_metrics(Namespace=ns)
    assert len(first["Metrics"]) == 500 and "NextToken" in first
    names = [m["MetricName"] for page in cw.get_paginator("list_metrics").paginate(Namespace=ns)
             for m in page["Metrics"]]
    assert sorted(names) == [f"m{i:04d}" for i in range(501)]
    # The AWS CLI follows the pages itself.
    out = aws_cli("cloudwatch", "list-metrics", "--namespace", ns)
    assert len(out["Metrics"]) == 501


def test_get_metric_data_paging(cw):
    ns = f"Paging-{uuid.uuid4().hex[:8]}"
    base = now().replace(second=0, microsecond=0) - timedelta(minutes=20)
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Hits", "Value": float(i + 1), "Timestamp": base + timedelta(minutes=i)} for i in range(6)])
    query = [{"Id": "h", "MetricStat": {"Metric": {"Namespace": ns, "MetricName": "Hits"},
                                         "Period": 60, "Stat": "Sum"}}]
    values, token, pages = [], None, 0
    while True:
        kw = {"NextToken": token} if token else {}
        out = cw.get_metric_data(MetricDataQueries=query, StartTime=base, EndTime=base + timedelta(minutes=10),
                                 ScanBy="TimestampAscending", MaxDatapoints=4, **kw)
        pages += 1
        values += out["MetricDataResults"][0]["Values"]
        token = out.get("NextToken")
        if not token:
            break
    assert pages == 2
    assert values == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------


def test_bad_input(cw, cw_novalidate, aws_cli):
    t0, t1 = now() - timedelta(minutes=10), now()
    with pytest.raises(ClientError) as e:
        cw.get_metric_statistics(Namespace="App", MetricName="M", StartTime=t0, EndTime=t1, Period=7,
                                 Statistics=["Sum"])
    assert_client_error(e, "InvalidParameterValue", 400)
    with pytest.raises(ClientError) as e:
        cw.get_metric_statistics(Namespace="App", MetricName="M", StartTime=t0, EndTime=t1, Period=60)
    assert_client_error(e, "InvalidParameterCombination", 400)
    with pytest.raises(ClientError) as e:
        cw.get_metric_statistics(Namespace="App", MetricName="M", StartTime=t1, EndTime=t0, Period=60,
                                 Statistics=["Sum"])
    assert_client_error(e, "InvalidParameterValue", 400)
    with pytest.raises(ClientError) as e:
        cw.get_metric_statistics(Namespace="App", MetricName="M", StartTime=t0 - timedelta(days=3), EndTime=t1,
                                 Period=60, Statistics=["Sum"])
    assert_client_error(e, "InvalidParameterCombination", 400)  # more than 1,440 datapoints
    # Too many dimensions: the model allows 30 (botocore checks it, so send
    # it without client-side validation).
    dims = [{"Name": f"d{i}", "Value": "v"} for i in range(31)]
    with pytest.raises(ClientError) as e:
        cw_novalidate.put_metric_data(Namespace="App", MetricData=[{"MetricName": "M", "Value": 1,
                                                                    "Dimensions": dims}])
    assert_client_error(e, "InvalidParameterValue", 400)
    # AWS/ namespaces belong to AWS services.
    with pytest.raises(ClientError) as e:
        cw.put_metric_data(Namespace="AWS/Lambda", MetricData=[{"MetricName": "Invocations", "Value": 1}])
    assert_client_error(e, "InvalidParameterValue", 400)
    with pytest.raises(ClientError) as e:
        cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": "M", "Value": 1, "StatisticValues": {
            "SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}}])
    assert_client_error(e, "InvalidParameterCombination", 400)
    with pytest.raises(ClientError) as e:
        cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": "M", "Values": [1, 2], "Counts": [1]}])
    assert_client_error(e, "InvalidParameterValue", 400)
    with pytest.raises(ClientError) as e:
        cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": "M", "Value": 1,
                                                         "Timestamp": now() - timedelta(days=15)}])
    assert_client_error(e, "InvalidParameterValue", 400)
    with pytest.raises(ClientError) as e:
        cw.get_metric_data(MetricDataQueries=[{"Id": "e1", "Expression": "SUM(METRICS())"}],
                           StartTime=t0, EndTime=t1)
    assert_client_error(e, "ValidationError", 400)
    with pytest.raises(ClientError) as e:
        cw.get_metric_data(MetricDataQueries=[{"Id": "m1", "MetricStat": {
            "Metric": {"Namespace": "App", "MetricName": "M"}, "Period": 60, "Stat": "Sum"}}],
            StartTime=t0, EndTime=t1, NextToken="not-a-token")
    assert_client_error(e, "InvalidNextToken", 400)
    with pytest.raises(ClientError) as e:
        cw.get_metric_data(MetricDataQueries=[{"Id": "Bad-Id", "MetricStat": {
            "Metric": {"Namespace": "App", "MetricName": "M"}, "Period": 60, "Stat": "Sum"}}],
            StartTime=t0, EndTime=t1)
    assert_client_error(e, "ValidationError", 400)
    # The AWS CLI shows the code.
    proc = aws_cli.run("cloudwatch", "get-metric-statistics", "--namespace", "App", "--metric-name", "M",
                       "--start-time", t0.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "--end-time", t1.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "--period", "45", "--statistics", "Sum", check=False)
    assert proc.returncode != 0
    assert "InvalidParameterValue" in proc.stderr


# --------------------------------------------------------------------------
# the query protocol (older clients)
# --------------------------------------------------------------------------


def query_request(endpoint: str, params: dict[str, str]):
    body = urllib.parse.urlencode({"Version": "2010-08-01", **params}).encode()
    req = AWSRequest(method="POST", url=endpoint + "/", data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials("test", "test"), "monitoring", REGION).add_auth(req)
    p = req.prepare()
    ureq = urllib.request.Request(p.url, data=body, method="POST", headers=dict(p.headers.items()))
    try:
        with urllib.request.urlopen(ureq, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_query_protocol(server):
    ns = f"Query-{uuid.uuid4().hex[:8]}"
    ts = now().strftime("%Y-%m-%dT%H:%M:%SZ")
    status, body = query_request(server.url, {
        "Action": "PutMetricData", "Namespace": ns,
        "MetricData.member.1.MetricName": "Temp", "MetricData.member.1.Value": "21.5",
        "MetricData.member.1.Timestamp": ts,
        "MetricData.member.1.Dimensions.member.1.Name": "Room",
        "MetricData.member.1.Dimensions.member.1.Value": "lab"})
    assert status == 200, body
    assert b"PutMetricDataResponse" in body
    status, body = query_request(server.url, {
        "Action": "GetMetricStatistics", "Namespace": ns, "MetricName": "Temp",
        "Dimensions.member.1.Name": "Room", "Dimensions.member.1.Value": "lab",
        "StartTime": (now() - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "EndTime": (now() + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Period": "3600", "Statistics.member.1": "Maximum"})
    assert status == 200, body
    root = ET.fromstring(body)
    nsx = {"cw": "http://monitoring.amazonaws.com/doc/2010-08-01/"}
    maxima = [float(e.text) for e in root.findall(".//cw:Datapoints/cw:member/cw:Maximum", nsx)]
    assert maxima == [21.5], body
    status, body = query_request(server.url, {
        "Action": "GetMetricStatistics", "Namespace": ns, "MetricName": "Temp",
        "StartTime": ts, "EndTime": ts, "Period": "13", "Statistics.member.1": "Maximum"})
    assert status == 400
    err = ET.fromstring(body)
    assert err.find(".//cw:Error/cw:Code", nsx).text == "InvalidParameterValue"


# --------------------------------------------------------------------------
# every protocol the model lists, spoken by botocore itself
# --------------------------------------------------------------------------


@pytest.fixture(params=["smithy-rpc-v2-cbor", "query", "json"])
def cw_protocol(request, server, monkeypatch):
    """A CloudWatch client of one protocol: botocore picks the first of its
    priority list that the model offers, so narrowing the list picks it."""
    import botocore.model
    monkeypatch.setattr(botocore.model, "PRIORITY_ORDERED_SUPPORTED_PROTOCOLS", (request.param,))
    client = make_client(server.url, "cloudwatch")
    assert client.meta.service_model.resolved_protocol == request.param
    return client


def test_each_protocol_round_trip(cw_protocol):
    cw = cw_protocol
    ns = f"Proto-{uuid.uuid4().hex[:8]}"
    t = now()
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Temp", "Dimensions": [{"Name": "Room", "Value": "lab"}], "Timestamp": t,
         "Values": [20.0, 22.0, 27.0], "Unit": "None"}])
    out = cw.get_metric_statistics(Namespace=ns, MetricName="Temp", Dimensions=[{"Name": "Room", "Value": "lab"}],
                                   StartTime=t - timedelta(minutes=10), EndTime=now() + timedelta(minutes=5),
                                   Period=3600, Statistics=["Average", "Maximum", "SampleCount"])
    [d] = out["Datapoints"]
    assert (d["Average"], d["Maximum"], d["SampleCount"]) == (23.0, 27.0, 3.0)
    assert isinstance(d["Timestamp"], datetime)
    assert abs((d["Timestamp"] - t).total_seconds()) < 3600
    out = cw.get_metric_statistics(Namespace=ns, MetricName="Temp", Dimensions=[{"Name": "Room", "Value": "lab"}],
                                   StartTime=t - timedelta(minutes=10), EndTime=now() + timedelta(minutes=5),
                                   Period=3600, ExtendedStatistics=["p50"])
    assert out["Datapoints"][0]["ExtendedStatistics"] == {"p50": 22.0}
    listed = cw.list_metrics(Namespace=ns)["Metrics"]
    assert listed == [{"Namespace": ns, "MetricName": "Temp", "Dimensions": [{"Name": "Room", "Value": "lab"}]}]
    data = cw.get_metric_data(MetricDataQueries=[{"Id": "t", "MetricStat": {
        "Metric": {"Namespace": ns, "MetricName": "Temp", "Dimensions": [{"Name": "Room", "Value": "lab"}]},
        "Period": 3600, "Stat": "Minimum"}}], StartTime=t - timedelta(minutes=10), EndTime=now() + timedelta(minutes=5))
    [r] = data["MetricDataResults"]
    assert r["Values"] == [20.0] and r["StatusCode"] == "Complete"
    assert isinstance(r["Timestamps"][0], datetime)
    with pytest.raises(ClientError) as e:
        cw.get_metric_statistics(Namespace=ns, MetricName="Temp", StartTime=t - timedelta(minutes=10),
                                 EndTime=now(), Period=13, Statistics=["Sum"])
    assert_client_error(e, "InvalidParameterValue", 400)
    with pytest.raises(ClientError) as e:
        cw.put_metric_data(Namespace="AWS/EC2", MetricData=[{"MetricName": "CPUUtilization", "Value": 1.0}])
    assert_client_error(e, "InvalidParameterValue", 400)


def test_large_put_is_gzip_compressed(cw_protocol):
    """botocore gzips PutMetricData bodies of 10 KiB or more (the operation's
    requestcompression trait): 1,000 datums arrive compressed, whatever the
    protocol."""
    cw = cw_protocol
    ns = f"Bulk-{uuid.uuid4().hex[:8]}"
    sent = {}

    def spy(request, **kwargs):
        sent["encoding"] = request.headers.get("Content-Encoding")

    cw.meta.events.register("before-send.cloudwatch.PutMetricData", spy)
    try:
        cw.put_metric_data(Namespace=ns, MetricData=[
            {"MetricName": "Item", "Dimensions": [{"Name": "N", "Value": str(i % 10)}], "Value": float(i)}
            for i in range(1000)])
    finally:
        cw.meta.events.unregister("before-send.cloudwatch.PutMetricData", spy)
    assert sent["encoding"] in (b"gzip", "gzip")
    out = stats(cw, ns, "Item", {"N": "7"}, ["SampleCount", "Sum"], start=now() - timedelta(minutes=10))
    # Items 7, 17, ..., 997: 100 values summing to 100*7 + 10*(0+...+99).
    assert total(out["Datapoints"], "SampleCount") == 100
    assert total(out["Datapoints"], "Sum") == 700 + 10 * sum(range(100))
    with pytest.raises(ClientError) as e:
        cw.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "Item", "Value": 1.0}] * 1001)
    assert_client_error(e, "InvalidParameterValue", 400)
