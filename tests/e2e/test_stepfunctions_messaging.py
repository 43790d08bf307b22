"""Step Functions with the messaging services: the sqs:sendMessage,
sns:publish and events:putEvents task integrations, and state machines as
EventBridge rule targets. Each test needs the service it talks to; where the
server does not serve it (its API answers that the action is not
available), the test is skipped."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from harness import ACCOUNT, REGION
from test_stepfunctions import ROLE, sfn_client, wait_done


@pytest.fixture(scope="module")
def sfn(endpoint):
    return sfn_client(endpoint)


def served(call):
    """Runs `call`; skips the test when the service is not available."""
    try:
        return call()
    except ClientError as e:
        msg = e.response["Error"].get("Message", "")
        if "not available" in msg or e.response["Error"]["Code"] in ("InvalidAction",
                                                                      "UnknownOperationException"):
            pytest.skip(f"the server does not serve this yet: {msg}")
        raise


def machine(sfn, state: dict) -> str:
    return sfn.create_state_machine(
        name=f"msg-{uuid.uuid4().hex[:10]}", roleArn=ROLE,
        definition=json.dumps({"StartAt": "T", "States": {"T": {**state, "End": True}}}),
    )["stateMachineArn"]


def test_sqs_send_message(sfn, client_factory):
    sqs = client_factory("sqs")
    url = served(lambda: sqs.create_queue(QueueName=f"sfn-{uuid.uuid4().hex[:8]}")["QueueUrl"])
    arn = machine(sfn, {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
                        "Parameters": {"QueueUrl": url, "MessageBody.$": "$"}})
    d = wait_done(sfn, sfn.start_execution(stateMachineArn=arn, input='{"order": 1}')["executionArn"])
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    msgs = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5).get("Messages", [])
    assert len(msgs) == 1
    # A JSON MessageBody is sent as its JSON text.
    assert json.loads(msgs[0]["Body"]) == {"order": 1}
    assert out["MessageId"] == msgs[0]["MessageId"]
    assert out["MD5OfMessageBody"] == hashlib.md5(msgs[0]["Body"].encode()).hexdigest()


def test_sns_publish_to_a_queue(sfn, client_factory):
    sns = client_factory("sns")
    sqs = client_factory("sqs")
    topic = served(lambda: sns.create_topic(Name=f"sfn-{uuid.uuid4().hex[:8]}")["TopicArn"])
    url = served(lambda: sqs.create_queue(QueueName=f"sfn-sub-{uuid.uuid4().hex[:8]}")["QueueUrl"])
    qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    served(lambda: sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn,
                                 Attributes={"RawMessageDelivery": "true"}))
    arn = machine(sfn, {"Type": "Task", "Resource": "arn:aws:states:::sns:publish",
                        "Parameters": {"TopicArn": topic, "Subject": "New Order Received",
                                       "Message.$": "States.Format('New order: {}', $.orderId)"}})
    d = wait_done(sfn, sfn.start_execution(stateMachineArn=arn, input='{"orderId": "A-7"}')["executionArn"])
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"])["MessageId"]
    msgs = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5).get("Messages", [])
    assert [m["Body"] for m in msgs] == ["New order: A-7"]


def test_eventbridge_rule_starts_an_execution(sfn, client_factory):
    events = client_factory("events")
    target = machine(sfn, {"Type": "Pass"})
    rule = f"sfn-{uuid.uuid4().hex[:8]}"
    served(lambda: events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["shop"]})))
    served(lambda: events.put_targets(Rule=rule, Targets=[{"Id": "sm", "Arn": target,
                                                           "RoleArn": ROLE}]))
    sender = machine(sfn, {"Type": "Task", "Resource": "arn:aws:states:::events:putEvents",
                           "Parameters": {"Entries": [{"Source": "shop", "DetailType": "Order",
                                                       "Detail": {"orderId.$": "$.orderId"}}]}})
    d = wait_done(sfn, sfn.start_execution(stateMachineArn=sender, input='{"orderId": 3}')["executionArn"])
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out["FailedEntryCount"] == 0 and out["Entries"][0]["EventId"]
    deadline = time.monotonic() + 15
    while True:
        started = sfn.list_executions(stateMachineArn=target)["executions"]
        if started or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(started) == 1
    done = wait_done(sfn, started[0]["executionArn"])
    event = json.loads(done["output"])
    # The rule target receives the whole event, the detail inside it.
    assert event["source"] == "shop"
    assert event["detail-type"] == "Order"
    assert event["detail"] == {"orderId": 3}
    assert event["account"] == ACCOUNT and event["region"] == REGION
