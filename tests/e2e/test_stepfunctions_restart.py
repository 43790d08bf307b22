"""Standard executions survive the server: SIGKILL while an execution waits
in a Wait state, restart on the same data directory, and the execution
finishes, each task having run once (its history shows every task state
entered and scheduled once).

Each test has its own server (it is killed)."""

from __future__ import annotations

import json
import time
import uuid

import boto3
import pytest
from botocore.config import Config

from harness import (ACCOUNT, FUNCTIONS_DIR, REGION, FunctionFactory, function_arn, make_zip,
                     start_server, stratus_cli)

ROLE = f"arn:aws:iam::{ACCOUNT}:role/StepFunctionsRole"


def client(url: str, service: str):
    cfg = Config(region_name=REGION, retries={"max_attempts": 1, "mode": "standard"},
                 read_timeout=120, connect_timeout=10, inject_host_prefix=False)
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                    region_name=REGION)
    return session.client(service, endpoint_url=url, config=cfg)


def definition(fn: str, wait_seconds: int) -> str:
    return json.dumps({
        "StartAt": "Before",
        "States": {
            "Before": {"Type": "Task", "Resource": function_arn(fn), "ResultPath": "$.before",
                       "Next": "Pause"},
            "Pause": {"Type": "Wait", "Seconds": wait_seconds, "Next": "After"},
            "After": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                      "Parameters": {"FunctionName": fn, "Payload": {"step": "after", "before.$": "$.before"}},
                      "ResultSelector": {"payload.$": "$.Payload"},
                      "End": True},
        },
    })


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("wait_seconds", [3, 9], ids=["in-memory-timer", "parked-timer"])
def test_execution_resumes_after_sigkill(tmp_path, wait_seconds):
    srv = start_server(tmp_path / "data", name=f"sfn-restart-{wait_seconds}")
    lam = client(srv.url, "lambda")
    factory = FunctionFactory(lam, "restart")
    package = make_zip({"app.py": (FUNCTIONS_DIR / "sfn_workflows" / "app.py").read_bytes()})
    fn = factory.create(package, handler="app.echo")["FunctionName"]
    sfn = client(srv.url, "stepfunctions")
    arn = sfn.create_state_machine(name=f"restart-{uuid.uuid4().hex[:8]}",
                                   definition=definition(fn, wait_seconds),
                                   roleArn=ROLE)["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=arn, input='{"order": 42}')["executionArn"]

    def in_wait():
        events = sfn.get_execution_history(executionArn=ex)["events"]
        return any(e["type"] == "WaitStateEntered" for e in events)

    wait_for(in_wait, 30, "the execution to enter its Wait state")
    entered_at = time.monotonic()
    srv.kill()  # SIGKILL: no shutdown work at all

    srv.start()
    sfn = client(srv.url, "stepfunctions")
    d = sfn.describe_execution(executionArn=ex)
    assert d["status"] in ("RUNNING", "SUCCEEDED")

    def finished():
        d = sfn.describe_execution(executionArn=ex)
        return d if d["status"] != "RUNNING" else None

    d = wait_for(finished, 60, "the execution to finish after the restart")
    assert d["status"] == "SUCCEEDED", d
    # The Wait state was not cut short by the restart.
    assert time.monotonic() - entered_at >= wait_seconds - 0.5
    out = json.loads(d["output"])
    assert out == {"payload": {"step": "after", "before": {"order": 42}}}

    events = sfn.get_execution_history(executionArn=ex, maxResults=1000)["events"]
    kinds = [e["type"] for e in events]
    names = [e["stateEnteredEventDetails"]["name"] for e in events
             if e["type"].endswith("StateEntered")]
    assert names == ["Before", "Pause", "After"], kinds
    assert kinds.count("LambdaFunctionScheduled") == 1, kinds
    assert kinds.count("TaskScheduled") == 1, kinds
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionSucceeded"
    assert kinds.count("ExecutionSucceeded") == 1
    ids = [e["id"] for e in events]
    assert ids == list(range(1, len(events) + 1))
    srv.stop()
    # The function ran exactly twice (Before and After): two START lines.
    logs = stratus_cli("logs", fn, "--data-dir", str(srv.data_dir), "--region", REGION)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.count("START RequestId:") == 2, logs.stdout


def test_running_execution_is_not_lost_on_sigkill_right_after_start(tmp_path):
    """StartExecution answers only after the execution is committed."""
    srv = start_server(tmp_path / "data", name="sfn-restart-start")
    sfn = client(srv.url, "stepfunctions")
    arn = sfn.create_state_machine(
        name="quick", roleArn=ROLE,
        definition=json.dumps({"StartAt": "W", "States": {
            "W": {"Type": "Wait", "Seconds": 1, "Next": "P"},
            "P": {"Type": "Pass", "Result": "done", "End": True}}}))["stateMachineArn"]
    started = [sfn.start_execution(stateMachineArn=arn)["executionArn"] for _ in range(5)]
    srv.kill()
    srv.start()
    sfn = client(srv.url, "stepfunctions")
    for ex in started:
        d = wait_for(lambda: (lambda d: d if d["status"] != "RUNNING" else None)(
            sfn.describe_execution(executionArn=ex)), 30, f"{ex} to finish")
        assert d["status"] == "SUCCEEDED"
        assert json.loads(d["output"]) == "done"
    srv.stop()


def test_callback_task_survives_a_restart(tmp_path):
    """A .waitForTaskToken task dispatched before SIGKILL is not dispatched
    again after the restart, and SendTaskSuccess with its token completes it."""
    srv = start_server(tmp_path / "data", name="sfn-restart-callback")
    lam = client(srv.url, "lambda")
    factory = FunctionFactory(lam, "callback")
    package = make_zip({"app.py": (FUNCTIONS_DIR / "sfn_workflows" / "app.py").read_bytes()})
    fn = factory.create(package, handler="app.echo")["FunctionName"]
    sfn = client(srv.url, "stepfunctions")
    arn = sfn.create_state_machine(
        name="callback", roleArn=ROLE,
        definition=json.dumps({"StartAt": "Approve", "States": {"Approve": {
            "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": fn, "Payload": {"token.$": "$$.Task.Token"}},
            "End": True}}}))["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=arn)["executionArn"]

    def token():
        for e in sfn.get_execution_history(executionArn=ex)["events"]:
            if e["type"] == "TaskScheduled":
                return json.loads(e["taskScheduledEventDetails"]["parameters"])["Payload"]["token"]
        return None

    tok = wait_for(token, 30, "the task to be scheduled")
    time.sleep(1.0)  # the function has been invoked and its dispatch recorded
    srv.kill()
    srv.start()
    sfn = client(srv.url, "stepfunctions")
    time.sleep(1.0)
    assert sfn.describe_execution(executionArn=ex)["status"] == "RUNNING"
    sfn.send_task_success(taskToken=tok, output='{"approved": true}')

    def finished():
        d = sfn.describe_execution(executionArn=ex)
        return d if d["status"] != "RUNNING" else None

    d = wait_for(finished, 30, "the execution to finish")
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == {"approved": True}
    kinds = [e["type"] for e in sfn.get_execution_history(executionArn=ex)["events"]]
    assert kinds.count("TaskScheduled") == 1, kinds
    assert kinds.count("TaskStateEntered") == 1, kinds
    srv.stop()
    # The function ran once: one START line in its logs.
    logs = stratus_cli("logs", fn, "--data-dir", str(srv.data_dir), "--region", REGION)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.count("START RequestId:") == 1, logs.stdout


def test_many_executions_survive_sigkill(tmp_path):
    """Twenty executions in every stage (tasks running, waiting, done) when
    the server is killed all finish after the restart, with consistent
    histories: contiguous event ids, every state entered once, one end."""
    srv = start_server(tmp_path / "data", name="sfn-restart-many")
    lam = client(srv.url, "lambda")
    factory = FunctionFactory(lam, "many")
    package = make_zip({"app.py": (FUNCTIONS_DIR / "sfn_workflows" / "app.py").read_bytes()})
    fn = factory.create(package, handler="app.slow")["FunctionName"]
    sfn = client(srv.url, "stepfunctions")
    arn = sfn.create_state_machine(
        name="many", roleArn=ROLE,
        definition=json.dumps({"StartAt": "First", "States": {
            "First": {"Type": "Task", "Resource": function_arn(fn), "ResultPath": "$.first",
                      "Next": "Pause"},
            "Pause": {"Type": "Wait", "SecondsPath": "$.pause", "Next": "Second"},
            "Second": {"Type": "Task", "Resource": function_arn(fn), "ResultPath": "$.second",
                       "End": True}}}))["stateMachineArn"]
    executions = []
    for i in range(20):
        executions.append(sfn.start_execution(
            stateMachineArn=arn, input=json.dumps({"seconds": 0.3 + (i % 4) * 0.3, "pause": i % 5}),
        )["executionArn"])
        time.sleep(0.05)
    time.sleep(1.0)
    srv.kill()
    srv.start()
    sfn = client(srv.url, "stepfunctions")

    def all_done():
        return all(sfn.describe_execution(executionArn=ex)["status"] != "RUNNING"
                   for ex in executions)

    wait_for(all_done, 90, "every execution to finish")
    for ex in executions:
        d = sfn.describe_execution(executionArn=ex)
        assert d["status"] == "SUCCEEDED", d
        out = json.loads(d["output"])
        assert "first" in out and "second" in out
        events = sfn.get_execution_history(executionArn=ex, maxResults=1000)["events"]
        assert [e["id"] for e in events] == list(range(1, len(events) + 1)), ex
        names = [e["stateEnteredEventDetails"]["name"] for e in events
                 if e["type"].endswith("StateEntered")]
        assert names == ["First", "Pause", "Second"], (ex, [e["type"] for e in events])
        kinds = [e["type"] for e in events]
        assert kinds.count("ExecutionSucceeded") == 1 and kinds[-1] == "ExecutionSucceeded"
        assert kinds.count("LambdaFunctionSucceeded") == 2, kinds
    srv.stop()
