"""Nested executions: a Task state starts an execution of another state
machine (`arn:aws:states:::states:startExecution`, `.sync`, `.sync:2`,
`.waitForTaskToken`), as the Step Functions Developer Guide describes in
"Start a new AWS Step Functions state machine from a running execution" and
"Start workflow executions from a task state".

Expected values follow that guide: `.sync` returns the child's
DescribeExecution answer with `Output` as JSON text, `.sync:2` with `Output`
as JSON; a child that does not succeed fails the task with
`States.TaskFailed`; a refused StartExecution is
`StepFunctions.<Error>Exception`; `AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID`
(from `$$.Execution.Id`) in the child's input links it to its parent, and
stopping the parent stops it.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from harness import ACCOUNT, REGION, assert_client_error, start_server
from test_stepfunctions import ROLE, sfn_client

STARTED_BY = "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"


@pytest.fixture(scope="module")
def sfn(endpoint):
    return sfn_client(endpoint)


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create(sfn, definition: dict, prefix: str, type_: str = "STANDARD") -> str:
    return sfn.create_state_machine(name=name(prefix), definition=json.dumps(definition),
                                    roleArn=ROLE, type=type_)["stateMachineArn"]


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def wait_done(sfn, arn: str, timeout: float = 60) -> dict:
    def done():
        d = sfn.describe_execution(executionArn=arn)
        return d if d["status"] != "RUNNING" else None
    return wait_for(done, timeout, f"{arn} to end")


def run(sfn, machine: str, input_: dict | None = None) -> dict:
    arn = sfn.start_execution(stateMachineArn=machine,
                              input=json.dumps(input_ or {}))["executionArn"]
    return wait_done(sfn, arn)


def task(resource: str, parameters: dict, **extra) -> dict:
    return {"StartAt": "Child", "States": {"Child": {
        "Type": "Task", "Resource": resource, "Parameters": parameters, "End": True, **extra}}}


def child_executions(sfn, machine: str) -> list[dict]:
    return sfn.list_executions(stateMachineArn=machine)["executions"]


def doubling_child(sfn) -> str:
    return create(sfn, {"StartAt": "Double", "States": {"Double": {
        "Type": "Pass", "Parameters": {"doubled.$": "States.MathAdd($.n, $.n)"}, "End": True}}},
        "double")


def waiting_child(sfn, seconds: int = 3600) -> str:
    return create(sfn, {"StartAt": "W", "States": {"W": {
        "Type": "Wait", "Seconds": seconds, "End": True}}}, "waiting")


# --------------------------------------------------------------------------
# .sync and .sync:2
# --------------------------------------------------------------------------

@pytest.mark.parametrize("resource", ["arn:aws:states:::states:startExecution.sync",
                                      "arn:aws:states:::states:startExecution.sync:2"])
def test_sync_returns_the_child_description(sfn, resource):
    child = doubling_child(sfn)
    parent = create(sfn, task(resource, {
        "StateMachineArn": child,
        "Input": {"n.$": "$.n", f"{STARTED_BY}.$": "$$.Execution.Id"},
    }), "parent")
    started = sfn.start_execution(stateMachineArn=parent, input='{"n": 21}')["executionArn"]
    d = wait_done(sfn, started)
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])

    kids = child_executions(sfn, child)
    assert len(kids) == 1
    child_arn = kids[0]["executionArn"]
    assert out["ExecutionArn"] == child_arn
    assert out["StateMachineArn"] == child
    assert out["Name"] == kids[0]["name"]
    assert out["Status"] == "SUCCEEDED"
    assert out["InputDetails"] == {"Included": True}
    assert out["OutputDetails"] == {"Included": True}
    assert isinstance(out["StartDate"], int) and isinstance(out["StopDate"], int)
    assert out["StopDate"] >= out["StartDate"]
    if resource.endswith(":2"):
        assert out["Output"] == {"doubled": 42}
        assert out["Input"] == {"n": 21, STARTED_BY: started}
    else:
        assert json.loads(out["Output"]) == {"doubled": 42}
        assert json.loads(out["Input"]) == {"n": 21, STARTED_BY: started}

    # The child's DescribeExecution shows its input as the parent gave it.
    c = sfn.describe_execution(executionArn=child_arn)
    assert json.loads(c["input"]) == {"n": 21, STARTED_BY: started}
    assert json.loads(c["output"]) == {"doubled": 42}

    # The parent's history: one task, scheduled with the states resource.
    events = sfn.get_execution_history(executionArn=started)["events"]
    scheduled = [e for e in events if e["type"] == "TaskScheduled"]
    assert len(scheduled) == 1
    assert scheduled[0]["taskScheduledEventDetails"]["resourceType"] == "states", scheduled


def test_sync_with_an_express_child(sfn):
    child = create(sfn, {"StartAt": "P", "States": {"P": {
        "Type": "Pass", "Result": {"express": True}, "End": True}}}, "express", type_="EXPRESS")
    parent = create(sfn, task("arn:aws:states:::states:startExecution.sync:2",
                              {"StateMachineArn": child, "Input": {}}), "parent-x")
    d = run(sfn, parent)
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out["Status"] == "SUCCEEDED"
    assert out["Output"] == {"express": True}
    assert ":express:" in out["ExecutionArn"]


# --------------------------------------------------------------------------
# request-response, with the AWS CLI
# --------------------------------------------------------------------------

def test_request_response_with_the_aws_cli(aws_cli, sfn):
    child = waiting_child(sfn, seconds=2)
    parent_def = task("arn:aws:states:::states:startExecution", {
        "StateMachineArn": child, "Name.$": "$.childName", "Input": "{\"as\": \"text\"}"})
    parent = aws_cli("stepfunctions", "create-state-machine", "--name", name("rr"),
                     "--role-arn", ROLE, "--definition", json.dumps(parent_def))["stateMachineArn"]
    child_name = name("kid")
    started = aws_cli("stepfunctions", "start-execution", "--state-machine-arn", parent,
                      "--input", json.dumps({"childName": child_name}))["executionArn"]
    d = wait_for(lambda: (lambda d: d if d["status"] != "RUNNING" else None)(
        aws_cli("stepfunctions", "describe-execution", "--execution-arn", started)),
        60, "the parent")
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    child_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{child.split(':')[-1]}:{child_name}"
    assert out["ExecutionArn"] == child_arn
    assert isinstance(out["StartDate"], int)
    assert out["SdkHttpMetadata"]["HttpStatusCode"] == 200
    assert out["SdkResponseMetadata"]["RequestId"]
    # The parent did not wait for its child; the child got the text as is.
    c = aws_cli("stepfunctions", "describe-execution", "--execution-arn", child_arn)
    assert c["input"] == "{\"as\": \"text\"}"
    assert wait_done(sfn, child_arn)["status"] == "SUCCEEDED"


# --------------------------------------------------------------------------
# .waitForTaskToken
# --------------------------------------------------------------------------

def test_wait_for_task_token(sfn):
    child = waiting_child(sfn)
    parent = create(sfn, task("arn:aws:states:::states:startExecution.waitForTaskToken", {
        "StateMachineArn": child,
        "Input": {"token.$": "$$.Task.Token", f"{STARTED_BY}.$": "$$.Execution.Id"},
    }), "callback")
    started = sfn.start_execution(stateMachineArn=parent)["executionArn"]
    kids = wait_for(lambda: child_executions(sfn, child), 30, "the child to start")
    assert len(kids) == 1
    token = json.loads(sfn.describe_execution(executionArn=kids[0]["executionArn"])["input"])["token"]
    time.sleep(0.3)
    assert sfn.describe_execution(executionArn=started)["status"] == "RUNNING"
    sfn.send_task_success(taskToken=token, output='{"approved": true}')
    d = wait_done(sfn, started)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == {"approved": True}
    # The parent ended on its own: its child keeps running until stopped.
    assert sfn.describe_execution(executionArn=kids[0]["executionArn"])["status"] == "RUNNING"
    sfn.stop_execution(executionArn=kids[0]["executionArn"])


# --------------------------------------------------------------------------
# failures
# --------------------------------------------------------------------------

def test_a_failed_child_is_caught_as_task_failed(sfn):
    child = create(sfn, {"StartAt": "F", "States": {"F": {
        "Type": "Fail", "Error": "PaymentDeclined", "Cause": "card expired"}}}, "failing")
    parent = create(sfn, {"StartAt": "Child", "States": {
        "Child": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync",
                  "Parameters": {"StateMachineArn": child, "Input": {"order": 7}},
                  "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error",
                             "Next": "Compensate"}],
                  "Next": "Done"},
        "Compensate": {"Type": "Pass", "Result": "compensated", "ResultPath": "$.outcome",
                       "End": True},
        "Done": {"Type": "Succeed"}}}, "catcher")
    d = run(sfn, parent)
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out["outcome"] == "compensated"
    assert out["error"]["Error"] == "States.TaskFailed"
    cause = json.loads(out["error"]["Cause"])
    assert cause["Status"] == "FAILED"
    assert cause["Error"] == "PaymentDeclined"
    assert cause["Cause"] == "card expired"
    assert json.loads(cause["Input"]) == {"order": 7}


def test_an_aborted_child_fails_the_parent(sfn):
    child = waiting_child(sfn)
    parent = create(sfn, task("arn:aws:states:::states:startExecution.sync:2",
                              {"StateMachineArn": child}), "aborted")
    started = sfn.start_execution(stateMachineArn=parent)["executionArn"]
    kids = wait_for(lambda: child_executions(sfn, child), 30, "the child to start")
    sfn.stop_execution(executionArn=kids[0]["executionArn"], error="Operator", cause="stopped by hand")
    d = wait_done(sfn, started)
    assert d["status"] == "FAILED", d
    assert d["error"] == "States.TaskFailed"
    cause = json.loads(d["cause"])
    assert cause["Status"] == "ABORTED"
    assert cause["ExecutionArn"] == kids[0]["executionArn"]
    events = sfn.get_execution_history(executionArn=started)["events"]
    failed = [e for e in events if e["type"] == "TaskFailed"]
    assert failed and failed[0]["taskFailedEventDetails"]["error"] == "States.TaskFailed"


# --------------------------------------------------------------------------
# StopExecution of the parent
# --------------------------------------------------------------------------

def test_stopping_the_parent_stops_its_children(sfn):
    child = waiting_child(sfn)
    other = waiting_child(sfn)
    parent = create(sfn, {"StartAt": "Fire", "States": {
        "Fire": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution",
                 "Parameters": {"StateMachineArn": child,
                                "Input": {f"{STARTED_BY}.$": "$$.Execution.Id"}},
                 "ResultPath": "$.fired", "Next": "Unlinked"},
        "Unlinked": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution",
                     "Parameters": {"StateMachineArn": other, "Input": {}},
                     "ResultPath": "$.unlinked", "Next": "Wait"},
        "Wait": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync",
                 "Parameters": {"StateMachineArn": child,
                                "Input": {f"{STARTED_BY}.$": "$$.Execution.Id", "second": True}},
                 "End": True}}}, "owner")
    started = sfn.start_execution(stateMachineArn=parent)["executionArn"]
    kids = wait_for(lambda: (lambda k: k if len(k) == 2 else None)(child_executions(sfn, child)),
                    30, "both linked children")
    unlinked = wait_for(lambda: child_executions(sfn, other), 30, "the unlinked child")
    sfn.stop_execution(executionArn=started, error="Cancelled", cause="order withdrawn")
    assert sfn.describe_execution(executionArn=started)["status"] == "ABORTED"
    for k in kids:
        d = sfn.describe_execution(executionArn=k["executionArn"])
        assert d["status"] == "ABORTED", d
        assert json.loads(d["input"])[STARTED_BY] == started
        events = sfn.get_execution_history(executionArn=k["executionArn"])["events"]
        assert events[-1]["type"] == "ExecutionAborted"
    # A child that does not name its parent is not stopped with it.
    assert sfn.describe_execution(
        executionArn=unlinked[0]["executionArn"])["status"] == "RUNNING"
    sfn.stop_execution(executionArn=unlinked[0]["executionArn"])


def test_a_task_that_times_out_stops_its_child(sfn):
    """Run a Job (.sync): a task that no longer waits for its job stops it."""
    child = waiting_child(sfn)
    parent = create(sfn, {"StartAt": "Child", "States": {
        "Child": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync",
                  "Parameters": {"StateMachineArn": child}, "TimeoutSeconds": 1,
                  "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "GaveUp"}],
                  "End": True},
        "GaveUp": {"Type": "Pass", "End": True}}}, "impatient")
    d = run(sfn, parent)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"])["Error"] == "States.Timeout"
    kids = child_executions(sfn, child)
    assert len(kids) == 1
    wait_for(lambda: sfn.describe_execution(executionArn=kids[0]["executionArn"])["status"]
             == "ABORTED", 10, "the child to be stopped")


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------

def test_bad_parameters_fail_the_task(sfn):
    missing = create(sfn, task("arn:aws:states:::states:startExecution.sync",
                               {"Input": {"a": 1}}), "noarn")
    d = run(sfn, missing)
    assert d["status"] == "FAILED"
    assert d["error"] == "StepFunctions.ValidationException"
    assert "stateMachineArn" in d["cause"]

    unknown = create(sfn, task("arn:aws:states:::states:startExecution.sync:2", {
        "StateMachineArn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name('nope')}"}),
        "unknown")
    d = run(sfn, unknown)
    assert d["status"] == "FAILED"
    assert d["error"] == "StepFunctions.StateMachineDoesNotExistException"
    assert "Service: AWSStepFunctions" in d["cause"]

    bad_input = create(sfn, task("arn:aws:states:::states:startExecution", {
        "StateMachineArn": doubling_child(sfn), "Input": "not json"}), "badinput")
    d = run(sfn, bad_input)
    assert d["status"] == "FAILED"
    assert d["error"] == "StepFunctions.InvalidExecutionInputException"


def test_a_name_in_use_is_execution_already_exists(sfn):
    child = doubling_child(sfn)
    taken = name("taken")
    first = sfn.start_execution(stateMachineArn=child, name=taken, input='{"n": 1}')["executionArn"]
    assert wait_done(sfn, first)["status"] == "SUCCEEDED"
    parent = create(sfn, {"StartAt": "Child", "States": {
        "Child": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync",
                  "Parameters": {"StateMachineArn": child, "Name": taken, "Input": {"n": 1}},
                  "Catch": [{"ErrorEquals": ["StepFunctions.ExecutionAlreadyExistsException"],
                             "Next": "Exists"}],
                  "End": True},
        "Exists": {"Type": "Pass", "End": True}}}, "dup")
    d = run(sfn, parent)
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out["Error"] == "StepFunctions.ExecutionAlreadyExistsException"
    assert len(child_executions(sfn, child)) == 1


def test_lambda_invoke_has_no_sync_pattern(sfn):
    """AWS's Lambda integration offers request-response and
    .waitForTaskToken only; `lambda:invoke.sync` is not a resource."""
    with pytest.raises(ClientError) as e:
        sfn.create_state_machine(
            name=name("lsync"), roleArn=ROLE,
            definition=json.dumps(task("arn:aws:states:::lambda:invoke.sync",
                                       {"FunctionName": "f", "Payload": {}})))
    err = assert_client_error(e, "InvalidDefinition", 400)
    assert "lambda:invoke.sync" in err.response["Error"]["Message"]


# --------------------------------------------------------------------------
# durability
# --------------------------------------------------------------------------

def test_a_parent_waiting_on_its_child_survives_sigkill(tmp_path):
    srv = start_server(tmp_path / "data", name="sfn-nested-restart")
    sfn = sfn_client(srv.url)
    child = sfn.create_state_machine(name="slow-child", roleArn=ROLE, definition=json.dumps(
        {"StartAt": "W", "States": {
            "W": {"Type": "Wait", "Seconds": 4, "Next": "P"},
            "P": {"Type": "Pass", "Parameters": {"got.$": "$.order"}, "End": True}}}))["stateMachineArn"]
    parent = sfn.create_state_machine(name="patient-parent", roleArn=ROLE, definition=json.dumps(
        task("arn:aws:states:::states:startExecution.sync:2",
             {"StateMachineArn": child, "Input": {"order.$": "$.order"}},
             ResultSelector={"childOutput.$": "$.Output"})))["stateMachineArn"]
    started = sfn.start_execution(stateMachineArn=parent, input='{"order": 42}')["executionArn"]
    wait_for(lambda: child_executions(sfn, child), 30, "the child to start")
    time.sleep(0.5)
    srv.kill()  # SIGKILL while the parent waits on its child

    srv.start()
    sfn = sfn_client(srv.url)
    d = wait_done(sfn, started, timeout=60)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == {"childOutput": {"got": 42}}
    kids = child_executions(sfn, child)
    assert len(kids) == 1, kids
    assert kids[0]["status"] == "SUCCEEDED"
    kinds = [e["type"] for e in sfn.get_execution_history(executionArn=started)["events"]]
    assert kinds.count("TaskScheduled") == 1, kinds
    assert kinds.count("TaskSucceeded") == 1, kinds
    assert kinds[-1] == "ExecutionSucceeded"
    srv.stop()
