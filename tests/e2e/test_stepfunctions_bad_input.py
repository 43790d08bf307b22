"""Bad input to the Step Functions API: malformed bodies, wrong member
types, unknown operations, out-of-range values. Each gets a json-protocol
error (HTTP 400, `__type` and a message), nothing is created, and the server
keeps serving."""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from harness import ACCOUNT, REGION, assert_client_error, signed_request
from test_stepfunctions import ROLE, pass_machine, sfn_client


def post(endpoint: str, op: str, body: bytes):
    status, headers, raw = signed_request(
        endpoint, "POST", "/", body,
        headers={"Content-Type": "application/x-amz-json-1.0",
                 "X-Amz-Target": f"AWSStepFunctions.{op}"})
    doc = json.loads(raw or b"{}")
    return status, headers, doc


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\"text\"", b"\xff\xfe"])
def test_malformed_bodies(endpoint, check_server, body):
    status, headers, doc = post(endpoint, "CreateStateMachine", body)
    assert status == 400
    assert doc["__type"] == "SerializationException"
    assert doc["message"]
    assert headers.get("x-amzn-errortype") == "SerializationException"


def test_wrong_member_types_and_missing_members(endpoint, check_server):
    n = f"typed-{uuid.uuid4().hex[:8]}"
    status, _, doc = post(endpoint, "CreateStateMachine", json.dumps(
        {"name": n, "definition": {"StartAt": "A"}, "roleArn": ROLE}).encode())
    assert status == 400 and doc["__type"] == "SerializationException"
    status, _, doc = post(endpoint, "CreateStateMachine", json.dumps(
        {"name": n, "roleArn": ROLE}).encode())
    assert status == 400 and doc["__type"] == "ValidationException"
    assert "definition" in doc["message"]
    status, _, doc = post(endpoint, "ListStateMachines", json.dumps({"maxResults": 5000}).encode())
    assert status == 400 and doc["__type"] == "ValidationException"
    status, _, doc = post(endpoint, "StartExecution", json.dumps(
        {"stateMachineArn": 42}).encode())
    assert status == 400 and doc["__type"] == "SerializationException"
    status, _, doc = post(endpoint, "DescribeNothing", b"{}")
    assert status == 400 and doc["__type"] == "UnknownOperationException"
    sfn = sfn_client(endpoint)
    with pytest.raises(ClientError) as e:
        sfn.describe_state_machine(stateMachineArn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{n}")
    assert_client_error(e, "StateMachineDoesNotExist", 400)


def test_out_of_range_values(endpoint, check_server):
    sfn = sfn_client(endpoint)
    with pytest.raises(ClientError) as e:
        sfn.create_state_machine(name="x" * 81, definition=pass_machine(), roleArn=ROLE)
    assert_client_error(e, ("InvalidName", "ValidationException"), 400)
    arn = sfn.create_state_machine(name=f"range-{uuid.uuid4().hex[:8]}", definition=pass_machine(),
                                   roleArn=ROLE)["stateMachineArn"]
    with pytest.raises(ClientError) as e:
        sfn.start_execution(stateMachineArn=arn, input="x" * (262144 + 1))
    assert_client_error(e, ("ValidationException", "InvalidExecutionInput"), 400)
    with pytest.raises(ClientError) as e:
        sfn.create_state_machine(name=f"t-{uuid.uuid4().hex[:8]}", definition=pass_machine(),
                                 roleArn=ROLE, type="MEDIUM")
    assert_client_error(e, "ValidationException", 400)
    with pytest.raises(ClientError) as e:
        sfn.get_execution_history(executionArn=arn.replace(":stateMachine:", ":execution:") + ":x",
                                  nextToken="bogus")
    assert_client_error(e, ("ExecutionDoesNotExist", "InvalidToken"), 400)
    with pytest.raises(ClientError) as e:
        sfn.send_task_success(taskToken="x" * 2049, output="{}")
    assert_client_error(e, ("ValidationException", "InvalidToken"), 400)
    with pytest.raises(ClientError) as e:
        sfn.send_task_success(taskToken="abc", output="{bad json")
    assert_client_error(e, "InvalidOutput", 400)


def test_deeply_nested_definition_and_input(endpoint, check_server):
    sfn = sfn_client(endpoint)
    deep = "[" * 5000 + "]" * 5000
    v = sfn.validate_state_machine_definition(definition=deep)
    assert v["result"] == "FAIL"
    arn = sfn.create_state_machine(name=f"deep-{uuid.uuid4().hex[:8]}", definition=pass_machine(),
                                   roleArn=ROLE)["stateMachineArn"]
    with pytest.raises(ClientError) as e:
        sfn.start_execution(stateMachineArn=arn, input=deep)
    assert_client_error(e, "InvalidExecutionInput", 400)
