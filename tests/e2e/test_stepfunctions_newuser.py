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
    sfn.send_task_success(taskToken=again["taskToken"], output='{"done": true}')
    d = finished(sfn, ex)
    assert d["status"] == "SUCCEEDED"
    assert json.loads(d["output"]) == {"done": True}
    assert d["redriveCount"] == 1
    events = history(sfn, ex)
    started = [e["activityStartedEventDetails"].get("workerName")
               for e in events if e["type"] == "ActivityStarted"]
    assert started == ["w1", "w2"]
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
