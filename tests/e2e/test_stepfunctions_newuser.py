"""Step Functions' activities, nested executions, redrive and Map Runs used
the way a new user would, and then with odd sequences: the behaviour
expected is the one AWS documents (API reference RedriveExecution,
GetActivityTask, SendTaskSuccess; Developer Guide "Redriving executions",
"Learn about Activities in Step Functions") and the error codes come from
the botocore model stepfunctions/2016-11-23."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from test_stepfunctions import ROLE, sfn_client


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def sfn(endpoint):
    return sfn_client(endpoint)


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def finished(sfn, ex: str, timeout: float = 30) -> dict:
    return wait_for(lambda: (lambda d: d if d["status"] != "RUNNING" else None)(
        sfn.describe_execution(executionArn=ex)), timeout, f"{ex} to finish")


def history(sfn, ex: str) -> list[dict]:
    return sfn.get_execution_history(executionArn=ex, maxResults=1000)["events"]


def poll(sfn, activity: str, worker: str, timeout: float = 20) -> dict:
    """Polls until a task comes (each GetActivityTask holds up to 60 s, so
    the wait is bounded by the execution's own progress)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = sfn.get_activity_task(activityArn=activity, workerName=worker)
        if r.get("taskToken"):
            return r
    raise AssertionError(f"no task for {activity}")


def activity_machine(sfn, activity: str) -> str:
    return sfn.create_state_machine(
        name=name("nu-act"), roleArn=ROLE,
        definition=json.dumps({"StartAt": "A", "States": {
            "A": {"Type": "Task", "Resource": activity, "End": True}}}))["stateMachineArn"]


def test_redrive_of_a_stopped_execution_offers_its_activity_task_again(sfn):
    # "Redriving executions": a redrive restarts the unsuccessful steps; a
    # task that was running when the execution was aborted runs again, and
    # its earlier token no longer answers (the task it named ended).
    activity = sfn.create_activity(name=name("nu-act"))["activityArn"]
    sm = activity_machine(sfn, activity)
    ex = sfn.start_execution(stateMachineArn=sm, input='{"n": 1}')["executionArn"]
    first = poll(sfn, activity, "w1")
    sfn.stop_execution(executionArn=ex)
    assert finished(sfn, ex)["status"] == "ABORTED"
    sfn.redrive_execution(executionArn=ex)
    again = poll(sfn, activity, "w2")
    assert json.loads(again["input"]) == {"n": 1}
    assert again["taskToken"] != first["taskToken"]
    # Stopped and redriven a second time: offered once more.
    sfn.stop_execution(executionArn=ex)
    assert finished(sfn, ex)["status"] == "ABORTED"
    sfn.redrive_execution(executionArn=ex)
    third = poll(sfn, activity, "w3")
    assert third["taskToken"] not in (first["taskToken"], again["taskToken"])
    sfn.send_task_success(taskToken=third["taskToken"], output='{"done": true}')
    d = finished(sfn, ex)
    assert d["status"] == "SUCCEEDED"
    assert json.loads(d["output"]) == {"done": True}
    assert d["redriveCount"] == 2
    events = history(sfn, ex)
    started = [e["activityStartedEventDetails"].get("workerName")
               for e in events if e["type"] == "ActivityStarted"]
    assert started == ["w1", "w2", "w3"]
    assert [e["type"] for e in events][-1] == "ExecutionSucceeded"


def test_redrive_after_an_activity_timeout_offers_the_task_again(sfn):
    # A Task whose TimeoutSeconds passed fails with States.Timeout; the
    # redrive runs that Task again ("Redriving executions").
    activity = sfn.create_activity(name=name("nu-act"))["activityArn"]
    sm = sfn.create_state_machine(
        name=name("nu-act"), roleArn=ROLE,
        definition=json.dumps({"StartAt": "A", "States": {
            "A": {"Type": "Task", "Resource": activity, "TimeoutSeconds": 1,
                  "End": True}}}))["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=sm, input='{"n": 2}')["executionArn"]
    d = finished(sfn, ex)
    assert (d["status"], d["error"]) == ("FAILED", "States.Timeout")
    sfn.redrive_execution(executionArn=ex)
    task = poll(sfn, activity, "w1")
    sfn.send_task_success(taskToken=task["taskToken"], output='{"late": false}')
    d = finished(sfn, ex)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == {"late": False}


def test_redrive_of_a_parent_whose_child_failed_starts_a_new_child(sfn):
    # "Redriving executions": the redrive reruns the unsuccessful step, here
    # a startExecution.sync:2 task; the task starts a new child execution,
    # which (the child's input having changed nothing, but the child machine
    # now succeeding) lets the parent succeed.
    child_name = name("nu-child")
    failing = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom"}}}
    child = sfn.create_state_machine(name=child_name, roleArn=ROLE,
                                     definition=json.dumps(failing))["stateMachineArn"]
    parent = sfn.create_state_machine(
        name=name("nu-parent"), roleArn=ROLE,
        definition=json.dumps({"StartAt": "Call", "States": {"Call": {
            "Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
            "Parameters": {"StateMachineArn": child, "Input": {"n.$": "$.n"}},
            "OutputPath": "$.Output", "End": True}}}))["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=parent, input='{"n": 5}')["executionArn"]
    d = finished(sfn, ex)
    assert (d["status"], d["error"]) == ("FAILED", "States.TaskFailed")
    first_child = json.loads(d["cause"])["ExecutionArn"]
    sfn.update_state_machine(stateMachineArn=child, definition=json.dumps(
        {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))
    sfn.redrive_execution(executionArn=ex)
    d = finished(sfn, ex)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == {"n": 5}
    children = sfn.list_executions(stateMachineArn=child)["executions"]
    assert sorted(c["status"] for c in children) == ["FAILED", "SUCCEEDED"]
    assert [c["executionArn"] for c in children if c["status"] == "FAILED"] == [first_child]


def test_redrive_of_a_stopped_parent_runs_its_sync_child_again(sfn):
    # The .sync child was stopped with its parent; the redriven parent's
    # task starts a new child instead of failing on the aborted one.
    child = sfn.create_state_machine(
        name=name("nu-child"), roleArn=ROLE,
        definition=json.dumps({"StartAt": "W", "States": {
            "W": {"Type": "Wait", "SecondsPath": "$.wait", "End": True}}}))["stateMachineArn"]
    parent = sfn.create_state_machine(
        name=name("nu-parent"), roleArn=ROLE,
        definition=json.dumps({"StartAt": "Call", "States": {"Call": {
            "Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync",
            "Parameters": {"StateMachineArn": child, "Input": {"wait.$": "$.wait"}},
            "End": True}}}))["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=parent, input='{"wait": 2}')["executionArn"]
    wait_for(lambda: sfn.list_executions(stateMachineArn=child)["executions"], 10,
             "the child to start")
    sfn.stop_execution(executionArn=ex)
    assert finished(sfn, ex)["status"] == "ABORTED"
    wait_for(lambda: all(c["status"] == "ABORTED" for c in
                         sfn.list_executions(stateMachineArn=child)["executions"]),
             10, "the child to be stopped")
    sfn.redrive_execution(executionArn=ex)
    d = finished(sfn, ex)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"])["Status"] == "SUCCEEDED"
    assert sorted(c["status"] for c in sfn.list_executions(
        stateMachineArn=child)["executions"]) == ["ABORTED", "SUCCEEDED"]


def test_redrive_of_a_parent_redrives_its_failed_map_run(sfn):
    # RedriveExecution (API reference): "The parent workflow redrives all
    # the unsuccessful states, including a failed Map Run"; the Map Run's
    # unsuccessful STANDARD children are redriven, the successful ones keep
    # their results, and children never started run.
    activity = sfn.create_activity(name=name("nu-mr"))["activityArn"]
    sm = sfn.create_state_machine(
        name=name("nu-dm"), roleArn=ROLE,
        definition=json.dumps({"StartAt": "M", "States": {"M": {
            "Type": "Map", "MaxConcurrency": 1,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "A", "States": {"A": {"Type": "Task", "Resource": activity,
                                                 "End": True}}},
            "End": True}}}))["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=sm, input="[1, 2, 3]")["executionArn"]
    first = poll(sfn, activity, "w")
    assert json.loads(first["input"]) == 1
    sfn.send_task_success(taskToken=first["taskToken"], output='"one"')
    second = poll(sfn, activity, "w")
    assert json.loads(second["input"]) == 2
    sfn.send_task_failure(taskToken=second["taskToken"], error="Bad", cause="item 2")
    d = finished(sfn, ex)
    assert (d["status"], d["error"]) == ("FAILED", "Bad")
    run = sfn.list_map_runs(executionArn=ex)["mapRuns"][0]["mapRunArn"]
    assert sfn.describe_map_run(mapRunArn=run)["status"] == "FAILED"

    sfn.redrive_execution(executionArn=ex)
    again = poll(sfn, activity, "w")
    assert json.loads(again["input"]) == 2
    sfn.send_task_success(taskToken=again["taskToken"], output='"two"')
    third = poll(sfn, activity, "w")
    assert json.loads(third["input"]) == 3
    sfn.send_task_success(taskToken=third["taskToken"], output='"three"')
    d = finished(sfn, ex)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == ["one", "two", "three"]
    described = sfn.describe_map_run(mapRunArn=run)
    assert described["status"] == "SUCCEEDED"
    assert described["executionCounts"]["succeeded"] == 3
    assert described["executionCounts"]["total"] == 3
    children = sfn.list_executions(mapRunArn=run)["executions"]
    assert sorted(c["status"] for c in children) == ["SUCCEEDED"] * 3
    assert sorted(c.get("redriveCount", 0) for c in children) == [0, 0, 1]


def test_task_output_size_is_counted_in_utf8_bytes(sfn):
    # SendTaskSuccess `output`: "Length constraints apply to the payload
    # size, and are expressed as bytes in UTF-8 encoding" (API reference);
    # the model's maximum is 262144. 140,000 "é" are 280,000 bytes.
    from botocore.exceptions import ClientError
    from harness import assert_client_error

    activity = sfn.create_activity(name=name("nu-size"))["activityArn"]
    sm = activity_machine(sfn, activity)
    ex = sfn.start_execution(stateMachineArn=sm, input="{}")["executionArn"]
    task = poll(sfn, activity, "w")
    big = json.dumps({"a": "é" * 140_000}, ensure_ascii=False)
    with pytest.raises(ClientError) as e:
        sfn.send_task_success(taskToken=task["taskToken"], output=big)
    assert_client_error(e, "ValidationException", 400)
    with pytest.raises(ClientError) as e:
        sfn.start_execution(stateMachineArn=sm, input=big)
    assert_client_error(e, "ValidationException", 400)
    # The task is still open and takes an output within the limit.
    fits = json.dumps({"a": "é" * 100_000}, ensure_ascii=False)
    sfn.send_task_success(taskToken=task["taskToken"], output=fits)
    d = finished(sfn, ex)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == {"a": "é" * 100_000}


def test_map_run_children_are_redriven_through_their_parent(sfn):
    # DescribeExecution `redriveStatus` (botocore model): for the STANDARD
    # child workflows of a Distributed Map it tells whether the Map Run can
    # redrive them (REDRIVABLE_BY_MAP_RUN); the child's state machine is the
    # Map's ItemProcessor, so "State machine is in DELETING status" does
    # not apply. RedriveExecution of the child itself is refused.
    from botocore.exceptions import ClientError
    from harness import assert_client_error

    sm = sfn.create_state_machine(
        name=name("nu-dmf"), roleArn=ROLE,
        definition=json.dumps({"StartAt": "M", "States": {"M": {
            "Type": "Map",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Nope"}}},
            "End": True}}}))["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=sm, input="[1]")["executionArn"]
    assert finished(sfn, ex)["status"] == "FAILED"
    run = sfn.list_map_runs(executionArn=ex)["mapRuns"][0]["mapRunArn"]
    (child,) = sfn.list_executions(mapRunArn=run)["executions"]
    d = sfn.describe_execution(executionArn=child["executionArn"])
    assert d["status"] == "FAILED"
    assert d["redriveStatus"] == "REDRIVABLE_BY_MAP_RUN", d
    assert "redriveStatusReason" not in d
    with pytest.raises(ClientError) as e:
        sfn.redrive_execution(executionArn=child["executionArn"])
    assert_client_error(e, "ExecutionNotRedrivable", 400)
    assert sfn.describe_execution(executionArn=ex)["redriveStatus"] == "REDRIVABLE"


def test_a_timed_out_activity_task_of_a_redriven_run_answers_task_timed_out(sfn):
    # SendTaskSuccess (API reference): TaskTimedOut once the task's
    # TimeoutSeconds passed, also in a run started by RedriveExecution.
    from botocore.exceptions import ClientError
    from harness import assert_client_error

    activity = sfn.create_activity(name=name("nu-late"))["activityArn"]
    sm = sfn.create_state_machine(
        name=name("nu-late"), roleArn=ROLE,
        definition=json.dumps({"StartAt": "Before", "States": {
            "Before": {"Type": "Wait", "Seconds": 2, "Next": "A"},
            "A": {"Type": "Task", "Resource": activity, "TimeoutSeconds": 1,
                  "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "After"}],
                  "End": True},
            "After": {"Type": "Wait", "Seconds": 60, "End": True}}}))["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=sm, input="{}")["executionArn"]
    sfn.stop_execution(executionArn=ex)
    sfn.redrive_execution(executionArn=ex)
    task = poll(sfn, activity, "w")
    wait_for(lambda: any(e["type"] == "WaitStateEntered" and
                         e["stateEnteredEventDetails"]["name"] == "After"
                         for e in history(sfn, ex)), 10, "the timeout to be caught")
    with pytest.raises(ClientError) as e:
        sfn.send_task_success(taskToken=task["taskToken"], output="{}")
    assert_client_error(e, "TaskTimedOut", 400)
    sfn.stop_execution(executionArn=ex)


def test_list_executions_checks_its_filters_before_the_state_machine(sfn):
    # A value outside the model's enum (ExecutionRedriveFilter,
    # ExecutionStatus) is a ValidationException, whatever the state machine.
    from botocore.exceptions import ClientError
    from harness import ACCOUNT, REGION, assert_client_error

    missing = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name('nu-none')}"
    for extra in ({"redriveFilter": "BOGUS"}, {"statusFilter": "BOGUS"}):
        with pytest.raises(ClientError) as e:
            sfn.list_executions(stateMachineArn=missing, **extra)
        assert_client_error(e, "ValidationException", 400)
    with pytest.raises(ClientError) as e:
        sfn.list_executions(stateMachineArn=missing)
    assert_client_error(e, "StateMachineDoesNotExist", 400)
