"""Asynchronous invocation (InvocationType Event): the 202, the event queue,
retries, event age, destinations and event invoke configurations.

Expected behaviour comes from the Lambda Developer Guide ("Invoking a Lambda
function asynchronously", "Error handling and automatic retries",
"Capturing records of Lambda asynchronous invocations") and the Invoke /
PutFunctionEventInvokeConfig API references. The server runs with
`--time-scale 60`, so AWS's 1- and 2-minute retry delays take 1 and 2
seconds and a MaximumEventAgeInSeconds of 60 lasts one second.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from harness import (
    ACCOUNT,
    REGION,
    FunctionFactory,
    invoke,
    make_client,
    make_zip,
    start_server,
    stratus_cli,
    unique_name,
    wait_until,
)

FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"
TIME_SCALE = 60


@pytest.fixture(scope="module")
def async_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("async") / "data", name="async",
                       extra_args=["--time-scale", str(TIME_SCALE)])
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(async_server):
    return make_client(async_server.url)


@pytest.fixture
def fns(client, request):
    f = FunctionFactory(client, "async")
    yield f
    f.cleanup()


@pytest.fixture(scope="module")
def async_zip() -> bytes:
    return make_zip({"app.py": (FUNCTIONS / "python_async" / "app.py").read_text()})


def logs(server, name: str) -> str:
    out = stratus_cli("logs", name, "--data-dir", str(server.data_dir))
    return out.stdout


def lines(server, name: str, prefix: str) -> list[str]:
    return [l for l in logs(server, name).splitlines() if prefix in l]


def records(server, name: str) -> list[dict]:
    out = []
    for l in lines(server, name, "RECORD "):
        out.append(json.loads(l.split("RECORD ", 1)[1]))
    return out


def fn_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def test_event_answers_202_and_runs_with_the_same_request_id(async_server, client, fns, async_zip):
    name = fns.python(async_zip, handler="app.run")
    inv = invoke(client, name, {"amount": 5}, InvocationType="Event")
    assert inv.status == 202
    assert inv.raw == b""
    rid = inv.request_id
    assert rid
    wait_until(lambda: lines(async_server, name, f"RUN {rid}"), timeout=20, what="the event to run")
    # The START line of the invocation carries the 202's request id.
    wait_until(lambda: f"START RequestId: {rid}" in logs(async_server, name), timeout=10,
               what="the START line")


def test_function_errors_are_retried_twice_then_on_failure(async_server, client, fns, async_zip):
    rec = fns.python(async_zip, handler="app.record")
    name = fns.python(async_zip, handler="app.run")
    client.put_function_event_invoke_config(
        FunctionName=name,
        DestinationConfig={"OnFailure": {"Destination": fn_arn(rec)}})
    t0 = time.time()
    inv = invoke(client, name, {"fail": True, "message": "card declined"}, InvocationType="Event")
    rid = inv.request_id
    wait_until(lambda: records(async_server, rec), timeout=30, what="the failure record")
    runs = lines(async_server, name, f"RUN {rid}")
    # One attempt and MaximumRetryAttempts (default 2) retries.
    assert len(runs) == 3, runs
    # 1 minute before the first retry and 2 before the second: 3 s scaled.
    assert time.time() - t0 >= 3 * 60 / TIME_SCALE - 0.5
    (r,) = records(async_server, rec)
    assert r["version"] == "1.0"
    assert r["requestContext"]["requestId"] == rid
    assert r["requestContext"]["condition"] == "RetriesExhausted"
    assert r["requestContext"]["approximateInvokeCount"] == 3
    assert r["requestContext"]["functionArn"] == fn_arn(name) + ":$LATEST"
    assert r["requestPayload"] == {"fail": True, "message": "card declined"}
    assert r["responseContext"]["statusCode"] == 200
    assert r["responseContext"]["executedVersion"] == "$LATEST"
    assert r["responseContext"]["functionError"] == "Unhandled"
    assert r["responsePayload"]["errorType"] == "OrderError"
    assert r["responsePayload"]["errorMessage"] == "card declined"
    assert r["timestamp"].endswith("Z")


def test_zero_retries_and_on_success(async_server, client, fns, async_zip):
    rec = fns.python(async_zip, handler="app.record")
    name = fns.python(async_zip, handler="app.run")
    cfg = client.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0,
        DestinationConfig={"OnSuccess": {"Destination": fn_arn(rec)},
                           "OnFailure": {"Destination": fn_arn(rec)}})
    assert cfg["MaximumRetryAttempts"] == 0
    ok = invoke(client, name, {"amount": 15000}, InvocationType="Event").request_id
    bad = invoke(client, name, {"fail": True}, InvocationType="Event").request_id
    wait_until(lambda: len(records(async_server, rec)) == 2, timeout=30, what="two records")
    by_id = {r["requestContext"]["requestId"]: r for r in records(async_server, rec)}
    assert by_id[ok]["requestContext"]["condition"] == "Success"
    assert by_id[ok]["requestContext"]["approximateInvokeCount"] == 1
    assert by_id[ok]["responsePayload"]["processedAmount"] == 15000
    assert "functionError" not in by_id[ok]["responseContext"]
    assert by_id[bad]["requestContext"]["condition"] == "RetriesExhausted"
    assert by_id[bad]["requestContext"]["approximateInvokeCount"] == 1
    assert len(lines(async_server, name, f"RUN {bad}")) == 1


def test_throttled_events_expire_after_their_maximum_age(async_server, client, fns, async_zip):
    rec = fns.python(async_zip, handler="app.record")
    name = fns.python(async_zip, handler="app.run")
    # Reserved concurrency 0: every attempt is throttled.
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    client.put_function_event_invoke_config(
        FunctionName=name, MaximumEventAgeInSeconds=60,
        DestinationConfig={"OnFailure": {"Destination": fn_arn(rec)}})
    rid = invoke(client, name, {"amount": 1}, InvocationType="Event").request_id
    wait_until(lambda: records(async_server, rec), timeout=30, what="the EventAgeExceeded record")
    (r,) = records(async_server, rec)
    assert r["requestContext"]["requestId"] == rid
    assert r["requestContext"]["condition"] == "EventAgeExceeded"
    assert r["requestContext"]["approximateInvokeCount"] == 0
    assert "responsePayload" not in r
    assert not lines(async_server, name, "RUN ")


def test_queued_events_survive_sigkill(tmp_path, async_zip):
    srv = start_server(tmp_path / "data", name="async-kill", extra_args=["--time-scale", str(TIME_SCALE)])
    c = make_client(srv.url)
    f = FunctionFactory(c, "asynckill")
    name = f.python(async_zip, handler="app.run")
    c.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    ids = [invoke(c, name, {"amount": i}, InvocationType="Event").request_id for i in range(20)]
    srv.kill()
    srv.start()
    c = make_client(srv.url)
    c.delete_function_concurrency(FunctionName=name)
    wait_until(lambda: all(lines(srv, name, f"RUN {i}") for i in ids), timeout=60,
               what="every acknowledged event to run after the restart")
    srv.stop()


def test_event_invoke_config_api(client, fns, async_zip):
    name = fns.python(async_zip, handler="app.run")
    with pytest.raises(ClientError) as e:
        client.get_function_event_invoke_config(FunctionName=name)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    put = client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    assert put["FunctionArn"] == fn_arn(name)
    assert put["MaximumRetryAttempts"] == 1
    # Put resets what it does not name to the defaults.
    assert put["MaximumEventAgeInSeconds"] == 21600
    assert abs(put["LastModified"].timestamp() - time.time()) < 60

    upd = client.update_function_event_invoke_config(
        FunctionName=name, MaximumEventAgeInSeconds=3600,
        DestinationConfig={"OnFailure": {"Destination": f"arn:aws:sqs:{REGION}:{ACCOUNT}:failed"}})
    assert upd["MaximumRetryAttempts"] == 1  # kept
    assert upd["MaximumEventAgeInSeconds"] == 3600
    assert upd["DestinationConfig"]["OnFailure"]["Destination"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:failed"

    got = client.get_function_event_invoke_config(FunctionName=name)
    assert got["DestinationConfig"] == upd["DestinationConfig"]

    client.publish_version(FunctionName=name)
    v = client.put_function_event_invoke_config(FunctionName=name, Qualifier="1", MaximumRetryAttempts=0)
    assert v["FunctionArn"] == fn_arn(name) + ":1"
    listed = client.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert sorted(c["FunctionArn"] for c in listed) == sorted([fn_arn(name), fn_arn(name) + ":1"])
    page = client.list_function_event_invoke_configs(FunctionName=name, MaxItems=1)
    assert len(page["FunctionEventInvokeConfigs"]) == 1 and page["NextMarker"]
    rest = client.list_function_event_invoke_configs(FunctionName=name, Marker=page["NextMarker"])
    assert len(rest["FunctionEventInvokeConfigs"]) == 1 and "NextMarker" not in rest

    client.delete_function_event_invoke_config(FunctionName=name, Qualifier="1")
    with pytest.raises(ClientError) as e:
        client.delete_function_event_invoke_config(FunctionName=name, Qualifier="1")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"

    with pytest.raises(ClientError) as e:
        client.put_function_event_invoke_config(FunctionName=name, Qualifier="9", MaximumRetryAttempts=0)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_event_invoke_config_bad_input(async_server, fns, async_zip):
    c = make_client(async_server.url, validate=False)
    name = fns.python(async_zip, handler="app.run")
    cases = [
        (dict(MaximumRetryAttempts=3), "ValidationException"),
        (dict(MaximumRetryAttempts=-1), "ValidationException"),
        (dict(MaximumEventAgeInSeconds=59), "ValidationException"),
        (dict(MaximumEventAgeInSeconds=21601), "ValidationException"),
        (dict(DestinationConfig={"OnSuccess": {"Destination": "arn:aws:dynamodb:us-east-1:123456789012:table/t"}}),
         "InvalidParameterValueException"),
        (dict(DestinationConfig={"OnFailure": {"Destination": "not an arn"}}), "ValidationException"),
    ]
    for kwargs, code in cases:
        with pytest.raises(ClientError) as e:
            c.put_function_event_invoke_config(FunctionName=name, **kwargs)
        assert e.value.response["Error"]["Code"] == code, kwargs
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # Nothing was stored by the refused requests.
    with pytest.raises(ClientError) as e:
        c.get_function_event_invoke_config(FunctionName=name)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        c.put_function_event_invoke_config(FunctionName=unique_name("missing"), MaximumRetryAttempts=0)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_async_payload_limit_is_1_mb(client, fns, async_zip):
    name = fns.python(async_zip, handler="app.run")
    big = json.dumps({"x": "y" * (1_048_576)}).encode()
    with pytest.raises(ClientError) as e:
        client.invoke(FunctionName=name, InvocationType="Event", Payload=big)
    assert e.value.response["Error"]["Code"] == "RequestTooLargeException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    ok = json.dumps({"x": "y" * 1000}).encode()
    assert client.invoke(FunctionName=name, InvocationType="Event", Payload=ok)["StatusCode"] == 202


def test_dead_letter_config_is_kept_and_checked(client, fns, async_zip):
    dlq = f"arn:aws:sqs:{REGION}:{ACCOUNT}:dlq"
    name = fns.python(async_zip, handler="app.run", DeadLetterConfig={"TargetArn": dlq})
    conf = client.get_function_configuration(FunctionName=name)
    assert conf["DeadLetterConfig"] == {"TargetArn": dlq}
    with pytest.raises(ClientError) as e:
        client.update_function_configuration(
            FunctionName=name, DeadLetterConfig={"TargetArn": fn_arn(name)})
    assert e.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert client.get_function_configuration(FunctionName=name)["DeadLetterConfig"] == {"TargetArn": dlq}


def test_async_metrics_are_recorded(async_server, client, fns, async_zip):
    import sqlite3
    name = fns.python(async_zip, handler="app.run")
    for i in range(3):
        invoke(client, name, {"amount": i}, InvocationType="Event")
    wait_until(lambda: len(lines(async_server, name, "RUN ")) == 3, timeout=20, what="three runs")

    def received():
        db = sqlite3.connect(f"file:{async_server.data_dir / 'stratus.db'}?mode=ro", uri=True, timeout=10)
        try:
            row = db.execute(
                "SELECT SUM(events_received), SUM(event_age_count) FROM lambda_async_metrics WHERE function_name = ?",
                (name,)).fetchone()
        finally:
            db.close()
        return row
    wait_until(lambda: received() == (3, 3), timeout=10, what="AsyncEventsReceived and AsyncEventAge")
