"""RedriveExecution end to end, with boto3.

Rules from the API reference (RedriveExecution, DescribeExecution,
ListExecutions, HistoryEvent) and the Developer Guide ("Redriving
executions"): a STANDARD execution that FAILED, TIMED_OUT or was ABORTED
continues from its unsuccessful step with the same input; successful steps
are not run again; in a Parallel only the failed branches and in an inline
Map only the failed iterations run again; the history gains an
`ExecutionRedriven` event (`executionRedrivenEventDetails.redriveCount`);
DescribeExecution reports `redriveCount`, `redriveDate`, `redriveStatus`,
`redriveStatusReason`; `$$.Execution.RedriveCount` counts the redrives;
SUCCEEDED, RUNNING and EXPRESS executions are `ExecutionNotRedrivable`; a
`clientToken` makes the call idempotent.

Steps that must run once send an SQS message (the sqs:sendMessage
integration) to a queue the test reads, so the test counts how often they
ran. The failing step is a Lambda function that raises while its
environment variable FAIL is "1"; the test clears it before redriving.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from harness import (ACCOUNT, REGION, FunctionFactory, function_arn, make_zip, start_server,
                     wait_for_function)

ROLE = f"arn:aws:iam::{ACCOUNT}:role/StepFunctionsRole"

FLAKY = b'''
import os


class Unavailable(Exception):
    pass


def handler(event, context):
    if os.environ.get("FAIL") == "1" and event.get("fail", True):
        raise Unavailable("the downstream service is down")
    return {"done": event}
'''


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def wait_status(sfn, arn: str, status: str, timeout: float = 60):
    def check():
        d = sfn.describe_execution(executionArn=arn)
        return d if d["status"] == status else None
    return wait_for(check, timeout, f"{arn} to be {status}")


def history(sfn, arn: str) -> list[dict]:
    return sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]


def drain(sqs, url: str) -> list[dict]:
    """Every message in the queue (deleting them)."""
    bodies = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                   WaitTimeSeconds=1).get("Messages", [])
        if not msgs:
            return bodies
        for m in msgs:
            bodies.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def send(url: str, body: dict) -> dict:
    return {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
            "Parameters": {"QueueUrl": url, "MessageBody": body}, "ResultPath": None}


def set_failing(lam, fn: str, failing: bool):
    lam.update_function_configuration(FunctionName=fn,
                                      Environment={"Variables": {"FAIL": "1" if failing else "0"}})
    wait_for_function(lam, fn)


def create_machine(sfn, definition: dict, kind: str = "STANDARD") -> str:
    return sfn.create_state_machine(name=f"redrive-{uuid.uuid4().hex[:10]}", roleArn=ROLE,
                                    definition=json.dumps(definition), type=kind)["stateMachineArn"]


def error_code(e) -> str:
    return e.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def sfn(client_factory):
    return client_factory("stepfunctions")


@pytest.fixture(scope="module")
def sqs(client_factory):
    return client_factory("sqs")


@pytest.fixture(scope="module")
def lam(client_factory):
    return client_factory("lambda")


@pytest.fixture
def queue(sqs):
    return sqs.create_queue(QueueName=f"redrive-{uuid.uuid4().hex[:10]}")["QueueUrl"]


@pytest.fixture
def flaky(functions):
    """A function that fails while FAIL=1 (it starts failing)."""
    return functions.create(make_zip({"app.py": FLAKY}), handler="app.handler",
                            Environment={"Variables": {"FAIL": "1"}})["FunctionName"]


def test_redrive_continues_from_the_failed_step(sfn, sqs, lam, queue, flaky):
    arn = create_machine(sfn, {"StartAt": "Before", "States": {
        "Before": {**send(queue, {"step": "before"}), "Next": "Work"},
        "Work": {"Type": "Task", "Resource": function_arn(flaky), "ResultPath": "$.work",
                 "Retry": [{"ErrorEquals": ["Unavailable"], "MaxAttempts": 1,
                            "IntervalSeconds": 1}],
                 "Next": "After"},
        "After": {"Type": "Pass", "End": True,
                  "Parameters": {"work.$": "$.work", "redrives.$": "$$.Execution.RedriveCount"}}}})
    ex = sfn.start_execution(stateMachineArn=arn, input='{"order": 7}')["executionArn"]
    d = wait_status(sfn, ex, "FAILED")
    assert d["error"] == "Unavailable"
    assert d["redriveCount"] == 0
    assert d["redriveStatus"] == "REDRIVABLE"
    assert "redriveDate" not in d
    before = len(history(sfn, ex))

    set_failing(lam, flaky, False)
    r = sfn.redrive_execution(executionArn=ex)
    assert r["redriveDate"].timestamp() >= d["stopDate"].timestamp()
    d = wait_status(sfn, ex, "SUCCEEDED")
    assert json.loads(d["output"]) == {"work": {"done": {"order": 7}}, "redrives": 1}
    assert d["redriveCount"] == 1
    assert d["redriveDate"] == r["redriveDate"]
    assert d["redriveStatus"] == "NOT_REDRIVABLE"
    assert d["redriveStatusReason"] == "Execution is SUCCEEDED and cannot be redriven"

    events = history(sfn, ex)
    kinds = [e["type"] for e in events]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    # The first run's events stay; the redrive and the rerun follow them.
    assert kinds[before - 1] == "ExecutionFailed"
    assert kinds[before] == "ExecutionRedriven"
    assert events[before]["executionRedrivenEventDetails"] == {"redriveCount": 1}
    assert kinds[-1] == "ExecutionSucceeded"
    # Work: two attempts in the first run, one in the redrive; Before once.
    assert kinds.count("LambdaFunctionScheduled") == 3, kinds
    assert kinds[before:].count("LambdaFunctionScheduled") == 1, kinds
    assert kinds.count("TaskScheduled") == 1, kinds
    assert "TaskScheduled" not in kinds[before:]
    assert drain(sqs, queue) == [{"step": "before"}]

    # A succeeded execution is not redrivable.
    with pytest.raises(ClientError) as e:
        sfn.redrive_execution(executionArn=ex)
    assert error_code(e) == "ExecutionNotRedrivable"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    # ListExecutions: redriveFilter and the items' redrive members.
    other = sfn.start_execution(stateMachineArn=arn, input='{"order": 8}')["executionArn"]
    wait_status(sfn, other, "SUCCEEDED")
    redriven = sfn.list_executions(stateMachineArn=arn, redriveFilter="REDRIVEN")["executions"]
    assert [x["executionArn"] for x in redriven] == [ex]
    assert redriven[0]["redriveCount"] == 1
    assert redriven[0]["redriveDate"] == r["redriveDate"]
    not_redriven = sfn.list_executions(stateMachineArn=arn, redriveFilter="NOT_REDRIVEN")["executions"]
    assert [x["executionArn"] for x in not_redriven] == [other]
    assert not_redriven[0]["redriveCount"] == 0
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 2
    drain(sqs, queue)


def test_parallel_reruns_only_the_failed_branch(sfn, sqs, lam, queue, flaky):
    arn = create_machine(sfn, {"StartAt": "Fan", "States": {"Fan": {
        "Type": "Parallel", "End": True, "Branches": [
            {"StartAt": "Notify", "States": {"Notify": {
                **send(queue, {"branch": 0}), "ResultPath": None, "OutputPath": "$.n", "End": True}}},
            {"StartAt": "Charge", "States": {"Charge": {
                "Type": "Task", "Resource": function_arn(flaky), "End": True}}}]}}})
    ex = sfn.start_execution(stateMachineArn=arn, input='{"n": 1}')["executionArn"]
    wait_status(sfn, ex, "FAILED")
    set_failing(lam, flaky, False)
    sfn.redrive_execution(executionArn=ex)
    d = wait_status(sfn, ex, "SUCCEEDED")
    assert json.loads(d["output"]) == [1, {"done": {"n": 1}}]
    assert drain(sqs, queue) == [{"branch": 0}], "the succeeded branch did not run again"
    kinds = [e["type"] for e in history(sfn, ex)]
    assert kinds.count("ParallelStateEntered") == 1
    assert kinds.count("ParallelStateSucceeded") == 1
    assert kinds.count("LambdaFunctionScheduled") == 2


def test_inline_map_reruns_only_the_failed_iterations(sfn, sqs, lam, queue, flaky):
    arn = create_machine(sfn, {"StartAt": "Each", "States": {"Each": {
        "Type": "Map", "End": True, "ItemsPath": "$.items", "MaxConcurrency": 1,
        "ItemSelector": {"item.$": "$$.Map.Item.Value", "fail.$": "$$.Map.Item.Value.fail"},
        "ItemProcessor": {"StartAt": "Record", "States": {
            "Record": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
                       "Parameters": {"QueueUrl": queue, "MessageBody.$": "$.item"},
                       "ResultPath": None, "Next": "Process"},
            "Process": {"Type": "Task", "Resource": function_arn(flaky),
                        "OutputPath": "$.done.item", "End": True}}}}}})
    items = [{"id": 1, "fail": False}, {"id": 2, "fail": True}, {"id": 3, "fail": False}]
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": items}))["executionArn"]
    wait_status(sfn, ex, "FAILED")
    first = sorted(m["id"] for m in drain(sqs, queue))
    # MaxConcurrency 1: items 1 and 2 ran, item 2 failed and the Map stopped.
    assert first == [1, 2]
    set_failing(lam, flaky, False)
    sfn.redrive_execution(executionArn=ex)
    d = wait_status(sfn, ex, "SUCCEEDED")
    assert json.loads(d["output"]) == items
    # Only item 3 (never started) recorded now; items 1 and 2 kept their
    # successful Record step.
    assert [m["id"] for m in drain(sqs, queue)] == [3]
    events = history(sfn, ex)
    redrive_at = [e["type"] for e in events].index("ExecutionRedriven")
    rerun = [e for e in events[redrive_at:] if e["type"] == "LambdaFunctionScheduled"]
    inputs = sorted(json.loads(e["lambdaFunctionScheduledEventDetails"]["input"])["item"]["id"]
                    for e in rerun)
    assert inputs == [2, 3], "item 1's Process step is not rerun"


def test_aborted_execution_is_redriven(sfn, sqs, queue):
    arn = create_machine(sfn, {"StartAt": "Before", "States": {
        "Before": {**send(queue, {"step": "before"}), "Next": "Pause"},
        "Pause": {"Type": "Wait", "Seconds": 2, "Next": "After"},
        "After": {**send(queue, {"step": "after"}), "End": True}}})
    ex = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    wait_for(lambda: any(e["type"] == "WaitStateEntered" for e in history(sfn, ex)), 30,
             "the Wait state")
    sfn.stop_execution(executionArn=ex, error="Manual", cause="stopped by the test")
    d = sfn.describe_execution(executionArn=ex)
    assert d["status"] == "ABORTED"
    assert d["redriveStatus"] == "REDRIVABLE"
    sfn.redrive_execution(executionArn=ex)
    wait_status(sfn, ex, "SUCCEEDED")
    assert sorted(m["step"] for m in drain(sqs, queue)) == ["after", "before"]
    kinds = [e["type"] for e in history(sfn, ex)]
    assert kinds.index("ExecutionAborted") < kinds.index("ExecutionRedriven") < kinds.index(
        "ExecutionSucceeded")


def test_waiting_callback_task_is_scheduled_again_with_a_new_token(sfn, sqs, queue):
    """A `.waitForTaskToken` task the stopped execution was waiting for is
    rescheduled by the redrive: its message is sent again, with a new task
    token; the old token no longer belongs to a task."""
    arn = create_machine(sfn, {"StartAt": "Approve", "States": {"Approve": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}},
        "End": True}}})
    ex = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    old = wait_for(lambda: drain(sqs, queue), 30, "the first task token")
    sfn.stop_execution(executionArn=ex)
    sfn.redrive_execution(executionArn=ex)
    new = wait_for(lambda: drain(sqs, queue), 30, "the rescheduled task token")
    assert len(old) == 1 and len(new) == 1
    assert new[0]["token"] != old[0]["token"]
    with pytest.raises(ClientError) as e:
        sfn.send_task_success(taskToken=old[0]["token"], output='{"approved": false}')
    assert error_code(e) in ("TaskDoesNotExist", "TaskTimedOut")
    sfn.send_task_success(taskToken=new[0]["token"], output='{"approved": true}')
    d = wait_status(sfn, ex, "SUCCEEDED")
    assert json.loads(d["output"]) == {"approved": True}


def test_timed_out_execution_gets_its_timeout_again(sfn, sqs, queue):
    """A redrive resets the state machine's TimeoutSeconds: it counts from
    the redrive. The Wait the timeout cut short runs again; the one that
    had ended does not."""
    arn = create_machine(sfn, {"TimeoutSeconds": 4, "StartAt": "Before", "States": {
        "Before": {**send(queue, {"step": "before"}), "Next": "First"},
        "First": {"Type": "Wait", "Seconds": 3, "Next": "Second"},
        "Second": {"Type": "Wait", "Seconds": 3, "Next": "After"},
        "After": {**send(queue, {"step": "after"}), "End": True}}})
    ex = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    d = wait_status(sfn, ex, "TIMED_OUT", timeout=30)
    assert d["redriveStatus"] == "REDRIVABLE"
    redriven_at = time.monotonic()
    sfn.redrive_execution(executionArn=ex)
    wait_status(sfn, ex, "SUCCEEDED", timeout=30)
    # Only the second Wait ran again (3 s), within the new 4 s.
    assert 2.5 <= time.monotonic() - redriven_at < 4.5
    assert sorted(m["step"] for m in drain(sqs, queue)) == ["after", "before"]
    kinds = [e["type"] for e in history(sfn, ex)]
    assert kinds.index("ExecutionTimedOut") < kinds.index("ExecutionRedriven")
    assert kinds[-1] == "ExecutionSucceeded"
    assert kinds.count("WaitStateEntered") == 2


def test_not_redrivable_executions(sfn):
    waiting = create_machine(sfn, {"StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": 30, "End": True}}})
    ex = sfn.start_execution(stateMachineArn=waiting)["executionArn"]
    d = sfn.describe_execution(executionArn=ex)
    assert d["redriveStatus"] == "NOT_REDRIVABLE"
    assert d["redriveStatusReason"] == "Execution is RUNNING and cannot be redriven"
    with pytest.raises(ClientError) as e:
        sfn.redrive_execution(executionArn=ex)
    assert error_code(e) == "ExecutionNotRedrivable"
    sfn.stop_execution(executionArn=ex)

    express = create_machine(sfn, {"StartAt": "F", "States": {
        "F": {"Type": "Fail", "Error": "E"}}}, kind="EXPRESS")
    xarn = sfn.start_execution(stateMachineArn=express)["executionArn"]
    wait_for(lambda: sfn.describe_execution(executionArn=xarn)["status"] == "FAILED", 30,
             "the express execution to fail")
    with pytest.raises(ClientError) as e:
        sfn.redrive_execution(executionArn=xarn)
    assert error_code(e) == "ExecutionNotRedrivable"

    missing = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:nope:{uuid.uuid4()}"
    with pytest.raises(ClientError) as e:
        sfn.redrive_execution(executionArn=missing)
    assert error_code(e) == "ExecutionDoesNotExist"
    with pytest.raises(ClientError) as e:
        sfn.redrive_execution(executionArn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:m")
    assert error_code(e) == "InvalidArn"
    with pytest.raises(ClientError) as e:
        sfn.list_executions(stateMachineArn=waiting, redriveFilter="SOMETIMES")
    assert error_code(e) == "ValidationException"


def test_client_token_makes_redrive_idempotent(sfn):
    arn = create_machine(sfn, {"StartAt": "F", "States": {
        "F": {"Type": "Fail", "Error": "Broken", "Cause": "always"}}})
    ex = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    wait_status(sfn, ex, "FAILED")
    first = sfn.redrive_execution(executionArn=ex, clientToken="redrive-token-1")
    wait_status(sfn, ex, "FAILED")
    again = sfn.redrive_execution(executionArn=ex, clientToken="redrive-token-1")
    assert again["redriveDate"] == first["redriveDate"]
    d = sfn.describe_execution(executionArn=ex)
    assert d["redriveCount"] == 1
    kinds = [e["type"] for e in history(sfn, ex)]
    assert kinds.count("ExecutionRedriven") == 1
    # A new token redrives again.
    second = sfn.redrive_execution(executionArn=ex, clientToken="redrive-token-2")
    assert second["redriveDate"] > first["redriveDate"]
    wait_status(sfn, ex, "FAILED")
    events = history(sfn, ex)
    redriven = [e for e in events if e["type"] == "ExecutionRedriven"]
    assert [e["executionRedrivenEventDetails"]["redriveCount"] for e in redriven] == [1, 2]
    assert [e["type"] for e in events].count("ExecutionFailed") == 3
    assert sfn.describe_execution(executionArn=ex)["redriveCount"] == 2
    with pytest.raises(ClientError) as e:
        sfn.redrive_execution(executionArn=ex, clientToken="with space")
    assert error_code(e) == "ValidationException"


def test_redriven_execution_survives_sigkill(tmp_path):
    srv = start_server(tmp_path / "data", name="sfn-redrive-restart")
    lam = srv.client("lambda")
    sqs = srv.client("sqs")
    sfn = srv.client("stepfunctions")
    factory = FunctionFactory(lam, "redrive-restart")
    fn = factory.create(make_zip({"app.py": FLAKY}), handler="app.handler",
                        Environment={"Variables": {"FAIL": "1"}})["FunctionName"]
    queue = sqs.create_queue(QueueName="redrive-restart")["QueueUrl"]
    arn = create_machine(sfn, {"StartAt": "Before", "States": {
        "Before": {**send(queue, {"step": "before"}), "Next": "Work"},
        "Work": {"Type": "Task", "Resource": function_arn(fn), "ResultPath": "$.work",
                 "Next": "Pause"},
        "Pause": {"Type": "Wait", "Seconds": 3, "Next": "After"},
        "After": {**send(queue, {"step": "after"}), "End": True}}})
    ex = sfn.start_execution(stateMachineArn=arn, input='{"k": 1}')["executionArn"]
    wait_status(sfn, ex, "FAILED")
    set_failing(lam, fn, False)
    sfn.redrive_execution(executionArn=ex)
    wait_for(lambda: any(e["type"] == "WaitStateEntered" for e in history(sfn, ex)), 30,
             "the redriven execution to reach its Wait state")
    srv.kill()
    srv.start()
    sfn = srv.client("stepfunctions")
    sqs = srv.client("sqs")
    d = wait_status(sfn, ex, "SUCCEEDED")
    assert d["redriveCount"] == 1
    events = history(sfn, ex)
    kinds = [e["type"] for e in events]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert kinds.count("ExecutionRedriven") == 1
    assert kinds.count("LambdaFunctionScheduled") == 2, kinds
    assert kinds.count("LambdaFunctionSucceeded") == 1, kinds
    assert kinds.count("WaitStateEntered") == 1, kinds
    assert kinds[-1] == "ExecutionSucceeded"
    assert sorted(m["step"] for m in drain(sqs, queue)) == ["after", "before"]
    srv.stop()


def test_aws_cli_redrive_execution(sfn, aws_cli):
    arn = create_machine(sfn, {"StartAt": "F", "States": {
        "F": {"Type": "Fail", "Error": "Broken", "Cause": "always"}}})
    ex = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    wait_status(sfn, ex, "FAILED")
    out = aws_cli("stepfunctions", "redrive-execution", "--execution-arn", ex)
    assert "redriveDate" in out
    d = wait_status(sfn, ex, "FAILED")
    assert d["redriveCount"] == 1
    listed = aws_cli("stepfunctions", "list-executions", "--state-machine-arn", arn,
                     "--redrive-filter", "REDRIVEN")
    assert [x["executionArn"] for x in listed["executions"]] == [ex]
    bad = aws_cli.run("stepfunctions", "redrive-execution", "--execution-arn",
                      f"arn:aws:states:{REGION}:{ACCOUNT}:execution:none:none", check=False)
    assert bad.returncode != 0
    assert "ExecutionDoesNotExist" in bad.stderr
