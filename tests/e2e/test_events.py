"""Amazon EventBridge: event buses, rules, targets, PutEvents, TestEventPattern,
tags, delivery to Lambda (and SQS when the server serves it), scheduled rules.

Expected values come from the EventBridge API reference and User Guide
("Amazon EventBridge events", "Creating event patterns", "Content filtering",
"Input transformation", "Creating a rule that runs on a schedule") and
botocore's `events` 2015-10-07 model. The server runs with `--time-scale 60`
so a `rate(1 minute)` rule fires every second.
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
    AwsCli,
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
DEFAULT_BUS_ARN = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"


@pytest.fixture(scope="module")
def ev_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("events") / "data", name="events",
                       extra_args=["--time-scale", str(TIME_SCALE)])
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def events(ev_server):
    return make_client(ev_server.url, "events")


@pytest.fixture(scope="module")
def events_novalidate(ev_server):
    return make_client(ev_server.url, "events", validate=False)


@pytest.fixture(scope="module")
def lam(ev_server):
    return make_client(ev_server.url)


@pytest.fixture(scope="module")
def cli(ev_server) -> AwsCli:
    return AwsCli(ev_server.url)


@pytest.fixture
def fns(lam):
    f = FunctionFactory(lam, "ev")
    yield f
    f.cleanup()


@pytest.fixture(scope="module")
def async_zip() -> bytes:
    return make_zip({"app.py": (FUNCTIONS / "python_async" / "app.py").read_text()})


def code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def status(exc: pytest.ExceptionInfo) -> int:
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def records(server, name: str) -> list[dict]:
    out = stratus_cli("logs", name, "--data-dir", str(server.data_dir)).stdout
    return [json.loads(l.split("RECORD ", 1)[1]) for l in out.splitlines() if "RECORD " in l]


def fn_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def clean_rule(events, name: str, bus: str = "default"):
    try:
        ids = [t["Id"] for t in events.list_targets_by_rule(Rule=name, EventBusName=bus)["Targets"]]
        if ids:
            events.remove_targets(Rule=name, EventBusName=bus, Ids=ids)
        events.delete_rule(Name=name, EventBusName=bus)
    except ClientError:
        pass


# --------------------------------------------------------------------------
# event buses
# --------------------------------------------------------------------------


def test_event_buses(events):
    name = unique_name("bus")
    resp = events.create_event_bus(Name=name, Description="orders",
                                   Tags=[{"Key": "team", "Value": "pay"}])
    arn = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}"
    assert resp["EventBusArn"] == arn
    d = events.describe_event_bus(Name=name)
    assert d["Name"] == name and d["Arn"] == arn and d["Description"] == "orders"
    assert "CreationTime" in d
    # By ARN too.
    assert events.describe_event_bus(Name=arn)["Name"] == name
    # The default bus always exists; describing without a name gives it.
    assert events.describe_event_bus()["Arn"] == DEFAULT_BUS_ARN
    names = [b["Name"] for b in events.list_event_buses()["EventBuses"]]
    assert "default" in names and name in names
    only = events.list_event_buses(NamePrefix=name)["EventBuses"]
    assert [b["Name"] for b in only] == [name]
    with pytest.raises(ClientError) as e:
        events.create_event_bus(Name=name)
    assert code(e) == "ResourceAlreadyExistsException" and status(e) == 400
    events.delete_event_bus(Name=name)
    with pytest.raises(ClientError) as e:
        events.describe_event_bus(Name=name)
    assert code(e) == "ResourceNotFoundException" and status(e) == 400
    # Deleting a bus that is gone succeeds; the default bus cannot be deleted.
    events.delete_event_bus(Name=name)
    with pytest.raises(ClientError) as e:
        events.delete_event_bus(Name="default")
    assert code(e) == "ValidationException"


def test_list_event_buses_pages(events):
    prefix = unique_name("pg")
    for i in range(3):
        events.create_event_bus(Name=f"{prefix}-{i}")
    try:
        seen, token = [], None
        while True:
            kw = {"NamePrefix": prefix, "Limit": 2}
            if token:
                kw["NextToken"] = token
            page = events.list_event_buses(**kw)
            assert len(page["EventBuses"]) <= 2
            seen += [b["Name"] for b in page["EventBuses"]]
            token = page.get("NextToken")
            if not token:
                break
        assert seen == [f"{prefix}-{i}" for i in range(3)]
    finally:
        for i in range(3):
            events.delete_event_bus(Name=f"{prefix}-{i}")


# --------------------------------------------------------------------------
# rules and targets
# --------------------------------------------------------------------------


def test_rules_lifecycle(events):
    name = unique_name("rule")
    pattern = json.dumps({"source": ["aws.ec2"]})
    arn = events.put_rule(Name=name, EventPattern=pattern, Description="ec2")["RuleArn"]
    assert arn == f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}"
    d = events.describe_rule(Name=name)
    assert d["Name"] == name and d["Arn"] == arn
    assert json.loads(d["EventPattern"]) == {"source": ["aws.ec2"]}
    assert d["State"] == "ENABLED" and d["EventBusName"] == "default"
    assert d["Description"] == "ec2"
    events.disable_rule(Name=name)
    assert events.describe_rule(Name=name)["State"] == "DISABLED"
    events.enable_rule(Name=name)
    assert events.describe_rule(Name=name)["State"] == "ENABLED"
    listed = events.list_rules(NamePrefix=name)["Rules"]
    assert [r["Name"] for r in listed] == [name]
    # Targets: a rule with targets cannot be deleted.
    events.put_targets(Rule=name, Targets=[{"Id": "t1", "Arn": fn_arn("nothing")}])
    with pytest.raises(ClientError) as e:
        events.delete_rule(Name=name)
    assert code(e) == "ValidationException"
    assert "targets" in e.value.response["Error"]["Message"]
    events.remove_targets(Rule=name, Ids=["t1"])
    events.delete_rule(Name=name)
    with pytest.raises(ClientError) as e:
        events.describe_rule(Name=name)
    assert code(e) == "ResourceNotFoundException"
    # Deleting a rule that does not exist succeeds (as AWS documents).
    events.delete_rule(Name=name)


def test_rules_on_a_custom_bus_and_pagination(events):
    bus = unique_name("bus")
    events.create_event_bus(Name=bus)
    names = [f"r{i}-{unique_name('x')}" for i in range(5)]
    try:
        for n in names:
            arn = events.put_rule(Name=n, EventBusName=bus,
                                  EventPattern=json.dumps({"source": ["app"]}))["RuleArn"]
            assert arn == f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{bus}/{n}"
        seen, token = [], None
        while True:
            kw = {"EventBusName": bus, "Limit": 2}
            if token:
                kw["NextToken"] = token
            page = events.list_rules(**kw)
            seen += [r["Name"] for r in page["Rules"]]
            assert all(r["EventBusName"] == bus for r in page["Rules"])
            token = page.get("NextToken")
            if not token:
                break
        assert seen == sorted(names)
        # The rules are not on the default bus.
        assert not events.list_rules(NamePrefix=names[0])["Rules"]
        # A bus with rules cannot go.
        with pytest.raises(ClientError) as e:
            events.delete_event_bus(Name=bus)
        assert code(e) == "ValidationException"
    finally:
        for n in names:
            events.delete_rule(Name=n, EventBusName=bus)
        events.delete_event_bus(Name=bus)


def test_targets(events):
    name = unique_name("rule")
    events.put_rule(Name=name, EventPattern=json.dumps({"source": ["app"]}))
    try:
        q = f"arn:aws:sqs:{REGION}:{ACCOUNT}:q1"
        resp = events.put_targets(Rule=name, Targets=[
            {"Id": "a", "Arn": fn_arn("f1"), "Input": '{"fixed": true}'},
            {"Id": "b", "Arn": q, "InputPath": "$.detail"},
            {"Id": "c", "Arn": fn_arn("f2"), "InputTransformer": {
                "InputPathsMap": {"state": "$.detail.state"},
                "InputTemplate": '{"s": <state>}'},
             "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 120},
             "DeadLetterConfig": {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:dlq"}},
        ])
        assert resp["FailedEntryCount"] == 0 and resp["FailedEntries"] == []
        targets = events.list_targets_by_rule(Rule=name)["Targets"]
        assert [t["Id"] for t in targets] == ["a", "b", "c"]
        assert targets[0]["Input"] == '{"fixed": true}'
        assert targets[1]["InputPath"] == "$.detail"
        assert targets[2]["InputTransformer"]["InputTemplate"] == '{"s": <state>}'
        assert targets[2]["RetryPolicy"]["MaximumRetryAttempts"] == 3
        assert events.list_rule_names_by_target(TargetArn=q)["RuleNames"] == [name]
        # Putting a target with an existing Id replaces it.
        events.put_targets(Rule=name, Targets=[{"Id": "a", "Arn": fn_arn("f3")}])
        targets = events.list_targets_by_rule(Rule=name)["Targets"]
        assert len(targets) == 3 and targets[0]["Arn"] == fn_arn("f3")
        # At most 5 targets per rule.
        events.put_targets(Rule=name, Targets=[{"Id": "d", "Arn": fn_arn("f4")},
                                               {"Id": "e", "Arn": fn_arn("f5")}])
        with pytest.raises(ClientError) as e:
            events.put_targets(Rule=name, Targets=[{"Id": "f", "Arn": fn_arn("f6")}])
        assert code(e) == "LimitExceededException"
        # Input, InputPath and InputTransformer exclude each other.
        with pytest.raises(ClientError) as e:
            events.put_targets(Rule=name, Targets=[
                {"Id": "a", "Arn": fn_arn("f1"), "Input": "{}", "InputPath": "$.detail"}])
        assert code(e) == "ValidationException"
        # Input must be JSON; a JSON template must stay JSON.
        with pytest.raises(ClientError) as e:
            events.put_targets(Rule=name, Targets=[{"Id": "a", "Arn": fn_arn("f1"), "Input": "{nope"}])
        assert code(e) == "ValidationException"
        with pytest.raises(ClientError) as e:
            events.put_targets(Rule=name, Targets=[{"Id": "a", "Arn": fn_arn("f1"), "InputTransformer": {
                "InputPathsMap": {"s": "$.detail.s"}, "InputTemplate": '{"s": <s>'}}])
        assert code(e) == "ValidationException"
        assert "InputTemplate" in e.value.response["Error"]["Message"]
        # Unknown rule.
        with pytest.raises(ClientError) as e:
            events.put_targets(Rule=name + "-nope", Targets=[{"Id": "a", "Arn": fn_arn("f1")}])
        assert code(e) == "ResourceNotFoundException"
        events.remove_targets(Rule=name, Ids=["a", "b", "c", "d", "e"])
        assert events.list_targets_by_rule(Rule=name)["Targets"] == []
    finally:
        clean_rule(events, name)


def test_put_rule_bad_input(events):
    with pytest.raises(ClientError) as e:
        events.put_rule(Name=unique_name("r"))
    assert code(e) == "ValidationException"
    for bad in ['{"source": "aws.ec2"}', "not json", '{"a": [{"numeric": [">", "x"]}]}',
                '{"a": [{"wildcard": "a**"}]}', '{"a": [{"cidr": "10.0.0.0/40"}]}']:
        with pytest.raises(ClientError) as e:
            events.put_rule(Name=unique_name("r"), EventPattern=bad)
        assert code(e) == "InvalidEventPatternException", bad
        assert status(e) == 400
        assert e.value.response["Error"]["Message"].startswith("Event pattern is not valid. Reason:")
    for bad in ["rate(1 minutes)", "rate(0 minutes)", "cron(0 8 * * 2 *)", "every day"]:
        with pytest.raises(ClientError) as e:
            events.put_rule(Name=unique_name("r"), ScheduleExpression=bad)
        assert code(e) == "ValidationException", bad
    bus = unique_name("bus")
    events.create_event_bus(Name=bus)
    try:
        # Schedules run on the default bus only.
        with pytest.raises(ClientError) as e:
            events.put_rule(Name=unique_name("r"), EventBusName=bus, ScheduleExpression="rate(5 minutes)")
        assert code(e) == "ValidationException"
    finally:
        events.delete_event_bus(Name=bus)
    with pytest.raises(ClientError) as e:
        events.put_rule(Name=unique_name("r"), EventBusName="nope-bus",
                        EventPattern='{"source": ["a"]}')
    assert code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        events.list_rules(EventBusName="nope-bus")
    assert code(e) == "ResourceNotFoundException"


def test_bad_names_are_validation_errors(events_novalidate):
    with pytest.raises(ClientError) as e:
        events_novalidate.put_rule(Name="has space", EventPattern='{"source": ["a"]}')
    assert code(e) == "ValidationException"
    assert "regular expression" in e.value.response["Error"]["Message"]


# --------------------------------------------------------------------------
# PutEvents
# --------------------------------------------------------------------------


def test_put_events_entries(events):
    resp = events.put_events(Entries=[
        {"Source": "app.orders", "DetailType": "Order Placed", "Detail": '{"id": 1}'},
        {"DetailType": "Order Placed", "Detail": "{}"},
        {"Source": "app.orders", "DetailType": "Order Placed", "Detail": "[1, 2]"},
        {"Source": "app.orders", "DetailType": "Order Placed", "Detail": "{not json"},
        {"Source": "app.orders", "Detail": "{}"},
        {"Source": "aws.ec2", "DetailType": "EC2 Instance State-change Notification", "Detail": "{}"},
    ])
    entries = resp["Entries"]
    assert resp["FailedEntryCount"] == 5
    assert len(entries) == 6
    assert "EventId" in entries[0] and "ErrorCode" not in entries[0]
    assert entries[1]["ErrorCode"] == "InvalidArgument"
    assert "Source" in entries[1]["ErrorMessage"]
    assert entries[2]["ErrorCode"] == "MalformedDetail"
    assert entries[3]["ErrorCode"] == "MalformedDetail"
    assert entries[4]["ErrorCode"] == "InvalidArgument"
    assert "DetailType" in entries[4]["ErrorMessage"]
    # Sources starting with "aws." belong to AWS services.
    assert entries[5]["ErrorCode"] == "NotAuthorizedForSourceException"


def test_put_events_to_a_bus_that_does_not_exist_is_accepted(events):
    """EventBridge accepts an event for a bus that does not exist: the entry
    gets an EventId and the event goes nowhere (aws/aws-cli#9186,
    aws/aws-sdk#186), while the bus operations answer
    ResourceNotFoundException."""
    resp = events.put_events(Entries=[{"Source": "app", "DetailType": "t", "Detail": "{}",
                                       "EventBusName": "no-such-bus"}])
    assert resp["FailedEntryCount"] == 0 and "EventId" in resp["Entries"][0]
    with pytest.raises(ClientError) as e:
        events.describe_event_bus(Name="no-such-bus")
    assert code(e) == "ResourceNotFoundException"


def test_put_events_limits(events, events_novalidate):
    # 256 KB in all (Source + DetailType + Detail + resources).
    big = json.dumps({"x": "a" * (256 * 1024)})
    with pytest.raises(ClientError) as e:
        events.put_events(Entries=[{"Source": "s", "DetailType": "t", "Detail": big}])
    assert code(e) == "ValidationException" and status(e) == 400
    half = json.dumps({"x": "a" * (130 * 1024)})
    with pytest.raises(ClientError) as e:
        events.put_events(Entries=[{"Source": "s", "DetailType": "t", "Detail": half}] * 2)
    assert code(e) == "ValidationException"
    # One entry just under the limit is accepted.
    ok = json.dumps({"x": "a" * (250 * 1024)})
    assert events.put_events(Entries=[{"Source": "s", "DetailType": "t", "Detail": ok}])[
        "FailedEntryCount"] == 0
    # At most 10 entries.
    with pytest.raises(ClientError) as e:
        events_novalidate.put_events(Entries=[{"Source": "s", "DetailType": "t", "Detail": "{}"}] * 11)
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        events_novalidate.put_events(Entries=[])
    assert code(e) == "ValidationException"


# --------------------------------------------------------------------------
# TestEventPattern
# --------------------------------------------------------------------------

# The sample event of the TestEventPattern API reference.
SAMPLE_EVENT = {
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2015-11-11T21:29:54Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
    "detail": {"instance-id": "i-abcd1111", "state": "pending"},
}


def test_test_event_pattern(events):
    ev = json.dumps(SAMPLE_EVENT)
    assert events.test_event_pattern(EventPattern='{"source": ["aws.ec2"]}', Event=ev)["Result"] is True
    assert events.test_event_pattern(
        EventPattern='{"detail": {"state": [{"anything-but": "pending"}]}}', Event=ev)["Result"] is False
    assert events.test_event_pattern(
        EventPattern='{"resources": [{"prefix": "arn:aws:ec2:us-east-1"}]}', Event=ev)["Result"] is True
    with pytest.raises(ClientError) as e:
        events.test_event_pattern(EventPattern='{"source": "aws.ec2"}', Event=ev)
    assert code(e) == "InvalidEventPatternException"
    # The event must carry the fields every event has.
    with pytest.raises(ClientError) as e:
        events.test_event_pattern(EventPattern='{"source": ["aws.ec2"]}',
                                  Event=json.dumps({"source": "aws.ec2"}))
    assert code(e) == "ValidationException"


# --------------------------------------------------------------------------
# tags
# --------------------------------------------------------------------------


def test_tags(events):
    name = unique_name("rule")
    arn = events.put_rule(Name=name, EventPattern='{"source": ["a"]}',
                          Tags=[{"Key": "a", "Value": "1"}])["RuleArn"]
    try:
        assert events.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "a", "Value": "1"}]
        events.tag_resource(ResourceARN=arn, Tags=[{"Key": "b", "Value": "2"}])
        tags = {t["Key"]: t["Value"] for t in events.list_tags_for_resource(ResourceARN=arn)["Tags"]}
        assert tags == {"a": "1", "b": "2"}
        events.untag_resource(ResourceARN=arn, TagKeys=["a"])
        assert events.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "b", "Value": "2"}]
        # Buses too, the default bus included.
        events.tag_resource(ResourceARN=DEFAULT_BUS_ARN, Tags=[{"Key": "env", "Value": "dev"}])
        assert {"Key": "env", "Value": "dev"} in events.list_tags_for_resource(
            ResourceARN=DEFAULT_BUS_ARN)["Tags"]
        with pytest.raises(ClientError) as e:
            events.list_tags_for_resource(ResourceARN=arn + "-nope")
        assert code(e) == "ResourceNotFoundException"
    finally:
        clean_rule(events, name)


# --------------------------------------------------------------------------
# delivery
# --------------------------------------------------------------------------


def test_lambda_destination_routes_through_the_default_bus(ev_server, events, lam, fns, async_zip):
    """A Lambda destination on the default bus; a rule keeps only large
    payments and sends them to a recording function."""
    run = fns.python(async_zip, handler="app.run")
    rec = fns.python(async_zip, handler="app.record")
    lam.put_function_event_invoke_config(
        FunctionName=run, DestinationConfig={"OnSuccess": {"Destination": DEFAULT_BUS_ARN}})
    rule = unique_name("big")
    events.put_rule(Name=rule, EventPattern=json.dumps({
        "source": ["lambda"],
        "detail-type": ["Lambda Function Invocation Result - Success"],
        "detail": {"responsePayload": {"processedAmount": [{"numeric": [">=", 10000]}]}}}))
    events.put_targets(Rule=rule, Targets=[{"Id": "rec", "Arn": fn_arn(rec)}])
    try:
        assert invoke(lam, run, {"amount": 500}, InvocationType="Event").status == 202
        assert invoke(lam, run, {"amount": 15000}, InvocationType="Event").status == 202
        got = wait_until(lambda: records(ev_server, rec), timeout=60, what="the routed event")
        time.sleep(2)  # the small payment, had it matched, would have arrived by now
        got = records(ev_server, rec)
        assert len(got) == 1, got
        e = got[0]
        # AWS's envelope around the destination record.
        assert e["version"] == "0"
        assert e["source"] == "lambda"
        assert e["detail-type"] == "Lambda Function Invocation Result - Success"
        assert e["account"] == ACCOUNT and e["region"] == REGION
        assert e["resources"][0].startswith(fn_arn(run))
        assert e["detail"]["responsePayload"]["processedAmount"] == 15000
        assert e["detail"]["requestPayload"] == {"amount": 15000}
    finally:
        clean_rule(events, rule)


def test_put_events_to_lambda_with_input_transformer(ev_server, events, fns, async_zip):
    rec = fns.python(async_zip, handler="app.record")
    bus = unique_name("bus")
    events.create_event_bus(Name=bus)
    rule = unique_name("tr")
    rule_arn = events.put_rule(Name=rule, EventBusName=bus,
                               EventPattern=json.dumps({"detail-type": ["Order Placed"]}))["RuleArn"]
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{
        "Id": "t", "Arn": fn_arn(rec),
        "InputTransformer": {
            "InputPathsMap": {"order": "$.detail.order", "src": "$.source"},
            "InputTemplate": '{"order": <order>, "text": "order <order> from <src>", '
                             '"rule": <aws.events.rule-name>, "arn": "<aws.events.rule-arn>"}'}}])
    try:
        resp = events.put_events(Entries=[
            {"Source": "shop", "DetailType": "Order Placed", "Detail": '{"order": "o-1"}',
             "EventBusName": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}"},
            {"Source": "shop", "DetailType": "Order Shipped", "Detail": '{"order": "o-2"}',
             "EventBusName": bus},
        ])
        assert resp["FailedEntryCount"] == 0
        got = wait_until(lambda: records(ev_server, rec), timeout=60, what="the transformed event")
        time.sleep(1)
        got = records(ev_server, rec)
        assert got == [{"order": "o-1", "text": "order o-1 from shop", "rule": rule, "arn": rule_arn}]
    finally:
        clean_rule(events, rule, bus)
        events.delete_event_bus(Name=bus)


def test_scheduled_rule_fires(ev_server, events, fns, async_zip):
    rec = fns.python(async_zip, handler="app.record")
    rule = unique_name("tick")
    arn = events.put_rule(Name=rule, ScheduleExpression="rate(1 minute)")["RuleArn"]
    events.put_targets(Rule=rule, Targets=[{"Id": "t", "Arn": fn_arn(rec)}])
    try:
        # One minute on the scaled clock is one second.
        got = wait_until(lambda: len(records(ev_server, rec)) >= 2 and records(ev_server, rec),
                         timeout=60, what="two scheduled events")
        e = got[0]
        assert e["source"] == "aws.events"
        assert e["detail-type"] == "Scheduled Event"
        assert e["resources"] == [arn]
        assert e["detail"] == {}
        assert e["time"].endswith("Z") and len(e["time"]) == 20
        events.disable_rule(Name=rule)
        # Let the invocations already under way finish, then nothing more comes.
        n, deadline = -1, time.monotonic() + 30
        while time.monotonic() < deadline:
            now = len(records(ev_server, rec))
            if now == n:
                break
            n = now
            time.sleep(2)
        time.sleep(4)
        assert len(records(ev_server, rec)) == n
    finally:
        clean_rule(events, rule)


def test_rule_to_sqs(ev_server, events):
    sqs = make_client(ev_server.url, "sqs")
    try:
        url = sqs.create_queue(QueueName=unique_name("evq"))["QueueUrl"]
    except ClientError as e:
        pytest.skip(f"this server serves no SQS: {e}")
    qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = unique_name("sq")
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["shop"], "detail": {
        "total": [{"numeric": [">", 100]}]}}))
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": qarn}])
    try:
        events.put_events(Entries=[
            {"Source": "shop", "DetailType": "Order", "Detail": '{"total": 50}'},
            {"Source": "shop", "DetailType": "Order", "Detail": '{"total": 150}'},
        ])
        msgs = wait_until(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages"),
                          timeout=30, what="the event in the queue")
        body = json.loads(msgs[0]["Body"])
        assert body["detail"] == {"total": 150}
        assert body["source"] == "shop" and body["detail-type"] == "Order"
        sqs.delete_message(QueueUrl=url, ReceiptHandle=msgs[0]["ReceiptHandle"])
        assert not sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages")
    finally:
        clean_rule(events, rule)
        sqs.delete_queue(QueueUrl=url)


def test_buses_rules_and_targets_survive_restart(tmp_path):
    srv = start_server(tmp_path / "data", name="events-restart")
    try:
        ev = make_client(srv.url, "events")
        ev.create_event_bus(Name="keep")
        ev.put_rule(Name="r", EventBusName="keep", EventPattern='{"source": ["a"]}')
        ev.put_targets(Rule="r", EventBusName="keep", Targets=[{"Id": "t", "Arn": fn_arn("later")}])
        srv.kill()
        srv.start()
        ev = make_client(srv.url, "events")
        assert ev.describe_event_bus(Name="keep")["Name"] == "keep"
        assert [t["Id"] for t in ev.list_targets_by_rule(Rule="r", EventBusName="keep")["Targets"]] == ["t"]
        assert json.loads(ev.describe_rule(Name="r", EventBusName="keep")["EventPattern"]) == {"source": ["a"]}
    finally:
        srv.stop()


def queue(ev_server):
    """A new SQS queue: (client, url, arn); skips when the server serves no SQS."""
    sqs = make_client(ev_server.url, "sqs")
    try:
        url = sqs.create_queue(QueueName=unique_name("evq"))["QueueUrl"]
    except ClientError as e:
        pytest.skip(f"this server serves no SQS: {e}")
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs, url, arn


def receive(sqs, url):
    return wait_until(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1,
                                                  MessageAttributeNames=["All"]).get("Messages"),
                      timeout=30, what="a message in the queue")


def test_rule_to_fifo_queue_with_message_group(ev_server, events):
    """SqsParameters.MessageGroupId: events reach a FIFO queue in that group,
    in order."""
    sqs = make_client(ev_server.url, "sqs")
    try:
        url = sqs.create_queue(QueueName=unique_name("evf") + ".fifo",
                               Attributes={"FifoQueue": "true"})["QueueUrl"]
    except ClientError as e:
        pytest.skip(f"this server serves no SQS FIFO queues: {e}")
    qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = unique_name("ff")
    events.put_rule(Name=rule, EventPattern='{"source": ["ff"]}')
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": qarn, "InputPath": "$.detail",
                                            "SqsParameters": {"MessageGroupId": "orders"}}])
    try:
        for n in range(3):
            events.put_events(Entries=[{"Source": "ff", "DetailType": "x", "Detail": json.dumps({"n": n})}])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            for m in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, MaxNumberOfMessages=10,
                                         AttributeNames=["MessageGroupId"]).get("Messages", []):
                assert m["Attributes"]["MessageGroupId"] == "orders"
                got.append(json.loads(m["Body"])["n"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        assert got == [0, 1, 2]
    finally:
        clean_rule(events, rule)
        sqs.delete_queue(QueueUrl=url)


def test_rule_to_sns_topic(ev_server, events):
    sqs, url, qarn = queue(ev_server)
    sns = make_client(ev_server.url, "sns")
    try:
        topic = sns.create_topic(Name=unique_name("evt"))["TopicArn"]
    except ClientError as e:
        pytest.skip(f"this server serves no SNS: {e}")
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn,
                  Attributes={"RawMessageDelivery": "true"})
    rule = unique_name("sn")
    events.put_rule(Name=rule, EventPattern='{"source": ["sn"]}')
    events.put_targets(Rule=rule, Targets=[{"Id": "t", "Arn": topic, "InputPath": "$.detail"}])
    try:
        events.put_events(Entries=[{"Source": "sn", "DetailType": "x", "Detail": '{"via": "sns"}'}])
        msgs = receive(sqs, url)
        assert json.loads(msgs[0]["Body"]) == {"via": "sns"}
    finally:
        clean_rule(events, rule)
        sns.delete_topic(TopicArn=topic)
        sqs.delete_queue(QueueUrl=url)


def test_rule_to_another_event_bus(ev_server, events):
    """An event bus as a target receives the event itself; its own rules
    route it on."""
    sqs, url, qarn = queue(ev_server)
    bus = unique_name("fwd")
    bus_arn = events.create_event_bus(Name=bus)["EventBusArn"]
    outer, inner = unique_name("outer"), unique_name("inner")
    events.put_rule(Name=outer, EventPattern='{"source": ["fwd"]}')
    events.put_targets(Rule=outer, Targets=[{"Id": "bus", "Arn": bus_arn}])
    events.put_rule(Name=inner, EventBusName=bus, EventPattern='{"detail-type": ["Forwarded"]}')
    events.put_targets(Rule=inner, EventBusName=bus, Targets=[{"Id": "q", "Arn": qarn}])
    try:
        events.put_events(Entries=[{"Source": "fwd", "DetailType": "Forwarded", "Detail": '{"hop": 1}',
                                    "Resources": ["arn:aws:s3:::bucket"]}])
        body = json.loads(receive(sqs, url)[0]["Body"])
        assert body["source"] == "fwd" and body["detail-type"] == "Forwarded"
        assert body["detail"] == {"hop": 1}
        assert body["resources"] == ["arn:aws:s3:::bucket"]
    finally:
        clean_rule(events, outer)
        clean_rule(events, inner, bus)
        events.delete_event_bus(Name=bus)
        sqs.delete_queue(QueueUrl=url)


def test_missing_target_goes_to_the_dead_letter_queue(ev_server, events):
    """A target that does not exist is not retried: the event goes to the
    target's DLQ with RULE_ARN, TARGET_ARN, ERROR_CODE and ERROR_MESSAGE
    attributes (User Guide, "Using dead-letter queues")."""
    sqs = make_client(ev_server.url, "sqs")
    try:
        url = sqs.create_queue(QueueName=unique_name("dlq"))["QueueUrl"]
    except ClientError as e:
        pytest.skip(f"this server serves no SQS: {e}")
    qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = unique_name("dl")
    rule_arn = events.put_rule(Name=rule, EventPattern='{"source": ["dl"]}')["RuleArn"]
    missing = fn_arn(unique_name("missing"))
    events.put_targets(Rule=rule, Targets=[{"Id": "t", "Arn": missing, "DeadLetterConfig": {"Arn": qarn}}])
    try:
        events.put_events(Entries=[{"Source": "dl", "DetailType": "x", "Detail": '{"k": 1}'}])
        msgs = wait_until(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1,
                                                      MessageAttributeNames=["All"]).get("Messages"),
                          timeout=30, what="the event in the dead-letter queue")
        attrs = {k: v["StringValue"] for k, v in msgs[0]["MessageAttributes"].items()}
        assert attrs["RULE_ARN"] == rule_arn
        assert attrs["TARGET_ARN"] == missing
        assert attrs["ERROR_CODE"] and attrs["ERROR_MESSAGE"]
        assert json.loads(msgs[0]["Body"])["detail"] == {"k": 1}
    finally:
        clean_rule(events, rule)
        sqs.delete_queue(QueueUrl=url)


# --------------------------------------------------------------------------
# the AWS CLI
# --------------------------------------------------------------------------


def test_aws_cli_every_operation(cli, tmp_path):
    bus = unique_name("clibus")
    rule = unique_name("clirule")
    out = cli("events", "create-event-bus", "--name", bus)
    assert out["EventBusArn"] == f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}"
    assert cli("events", "describe-event-bus", "--name", bus)["Name"] == bus
    assert bus in [b["Name"] for b in cli("events", "list-event-buses")["EventBuses"]]
    arn = cli("events", "put-rule", "--name", rule, "--event-bus-name", bus,
              "--event-pattern", '{"source": ["cli"]}')["RuleArn"]
    assert arn == f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{bus}/{rule}"
    assert cli("events", "describe-rule", "--name", rule, "--event-bus-name", bus)["State"] == "ENABLED"
    assert [r["Name"] for r in cli("events", "list-rules", "--event-bus-name", bus)["Rules"]] == [rule]
    cli("events", "disable-rule", "--name", rule, "--event-bus-name", bus)
    cli("events", "enable-rule", "--name", rule, "--event-bus-name", bus)
    target = fn_arn("cli-target")
    out = cli("events", "put-targets", "--rule", rule, "--event-bus-name", bus,
              "--targets", json.dumps([{"Id": "1", "Arn": target}]))
    assert out["FailedEntryCount"] == 0
    assert cli("events", "list-targets-by-rule", "--rule", rule, "--event-bus-name", bus)["Targets"][0]["Arn"] == target
    assert cli("events", "list-rule-names-by-target", "--target-arn", target,
               "--event-bus-name", bus)["RuleNames"] == [rule]
    entries = tmp_path / "entries.json"
    entries.write_text(json.dumps([{"Source": "cli", "DetailType": "t", "Detail": '{"a": 1}',
                                    "EventBusName": bus}]))
    out = cli("events", "put-events", "--entries", f"file://{entries}")
    assert out["FailedEntryCount"] == 0 and "EventId" in out["Entries"][0]
    out = cli("events", "test-event-pattern", "--event-pattern", '{"source": ["aws.ec2"]}',
              "--event", json.dumps(SAMPLE_EVENT))
    assert out["Result"] is True
    cli("events", "tag-resource", "--resource-arn", arn, "--tags", "Key=k,Value=v")
    assert cli("events", "list-tags-for-resource", "--resource-arn", arn)["Tags"] == [{"Key": "k", "Value": "v"}]
    cli("events", "untag-resource", "--resource-arn", arn, "--tag-keys", "k")
    assert cli("events", "list-tags-for-resource", "--resource-arn", arn)["Tags"] == []
    cli("events", "remove-targets", "--rule", rule, "--event-bus-name", bus, "--ids", "1")
    cli("events", "delete-rule", "--name", rule, "--event-bus-name", bus)
    cli("events", "delete-event-bus", "--name", bus)
    proc = cli.run("events", "describe-event-bus", "--name", bus, check=False)
    assert proc.returncode != 0 and "ResourceNotFoundException" in proc.stderr


def test_docs_example_runs_as_written(ev_server, tmp_path):
    """The AWS CLI example of docs/eventbridge.md, run line by line."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "eventbridge.md").read_text()
    block = doc.split("```sh\n", 1)[1].split("```", 1)[0]
    # The example names the default edge address; this server listens elsewhere.
    block = block.replace("http://127.0.0.1:4566", ev_server.url)
    import os
    import subprocess

    env = AwsCli(ev_server.url).env()
    env["PATH"] = str(Path(__import__("sys").executable).parent) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"Result": true' in proc.stdout
    assert '"FailedEntryCount": 0' in proc.stdout
