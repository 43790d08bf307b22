"""Distributed Map child executions and the Map Run APIs, with boto3:
DescribeMapRun counts, ListMapRuns, ListExecutions(mapRunArn), child
histories, UpdateMapRun (concurrency lowered and raised during a run,
thresholds), tolerated failures, StopExecution of the parent, a SIGKILL of
the server with STANDARD children running, and bad input.

Expected shapes and rules: the Step Functions API reference
(DescribeMapRun, ListMapRuns, UpdateMapRun, ListExecutions, DescribeExecution)
and the Developer Guide chapters "Map state in Distributed mode" and
"Examining Map Runs" (ARN formats, ToleratedFailure*, MaxConcurrency)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from harness import ACCOUNT, REGION, assert_client_error, start_server

ROLE = f"arn:aws:iam::{ACCOUNT}:role/StepFunctionsRole"


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def dmap(processor_states: dict, start: str, *, execution_type: str = "STANDARD",
         label: str | None = None, extra: dict | None = None) -> str:
    """A machine whose only state is a Distributed Map over $.items."""
    m = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": execution_type},
            "StartAt": start,
            "States": processor_states,
        },
        "End": True,
    }
    if label:
        m["Label"] = label
    m.update(extra or {})
    return json.dumps({"StartAt": "Fan", "States": {"Fan": m}})


def create(sfn, definition: str, prefix: str = "maprun") -> tuple[str, str]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    arn = sfn.create_state_machine(name=name, definition=definition, roleArn=ROLE)["stateMachineArn"]
    return name, arn


def finished(sfn, ex: str, timeout: float = 60) -> dict:
    def done():
        d = sfn.describe_execution(executionArn=ex)
        return d if d["status"] != "RUNNING" else None
    return wait_for(done, timeout, f"{ex} to finish")


def map_run_of(sfn, ex: str) -> str:
    runs = wait_for(lambda: sfn.list_map_runs(executionArn=ex)["mapRuns"], 30, "a map run")
    return runs[0]["mapRunArn"]


def children(sfn, run: str, status: str | None = None) -> list[dict]:
    out, token = [], None
    while True:
        kw = {"mapRunArn": run, "maxResults": 100}
        if status:
            kw["statusFilter"] = status
        if token:
            kw["nextToken"] = token
        page = sfn.list_executions(**kw)
        out += page["executions"]
        token = page.get("nextToken")
        if not token:
            return out


PASS_CHILD = {"Double": {"Type": "Pass", "Parameters": {"n.$": "$.n", "seen": True}, "End": True}}


def test_standard_children_are_executions_of_the_map_run(client_factory):
    sfn = client_factory("stepfunctions")
    name, arn = create(sfn, dmap(PASS_CHILD, "Double", label="Fan5"))
    items = [{"n": i} for i in range(5)]
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": items}))["executionArn"]
    d = finished(sfn, ex)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == [{"n": i, "seen": True} for i in range(5)]

    # The parent's history names the map run; ListMapRuns lists it.
    events = sfn.get_execution_history(executionArn=ex, maxResults=1000)["events"]
    kinds = [e["type"] for e in events]
    assert "MapRunStarted" in kinds and "MapRunSucceeded" in kinds, kinds
    run = next(e for e in events if e["type"] == "MapRunStarted")["mapRunStartedEventDetails"]["mapRunArn"]
    assert run.startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:mapRun:{name}/Fan5:")
    runs = sfn.list_map_runs(executionArn=ex)["mapRuns"]
    assert [r["mapRunArn"] for r in runs] == [run]
    assert runs[0]["executionArn"] == ex and "stopDate" in runs[0]

    mr = sfn.describe_map_run(mapRunArn=run)
    assert mr["status"] == "SUCCEEDED" and mr["executionArn"] == ex
    assert mr["maxConcurrency"] == 0
    assert mr["toleratedFailurePercentage"] == 0 and mr["toleratedFailureCount"] == 0
    for counts in (mr["itemCounts"], mr["executionCounts"]):
        assert counts["total"] == 5 and counts["succeeded"] == 5, counts
        assert counts["pending"] == counts["running"] == counts["failed"] == 0, counts
        assert counts["resultsWritten"] == 0, counts
    assert mr["stopDate"] >= mr["startDate"]

    kids = children(sfn, run)
    assert len(kids) == 5
    prefix = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{name}/Fan5:"
    inputs = []
    for k in kids:
        assert k["executionArn"].startswith(prefix), k["executionArn"]
        assert k["mapRunArn"] == run and k["status"] == "SUCCEEDED" and k["itemCount"] == 1
        dk = sfn.describe_execution(executionArn=k["executionArn"])
        assert dk["mapRunArn"] == run
        assert dk["stateMachineArn"] == f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}/Fan5"
        inputs.append(json.loads(dk["input"])["n"])
        h = [e["type"] for e in sfn.get_execution_history(executionArn=k["executionArn"])["events"]]
        assert h == ["ExecutionStarted", "PassStateEntered", "PassStateExited", "ExecutionSucceeded"], h
    assert sorted(inputs) == list(range(5))
    # The child's state machine is the ItemProcessor, named by the Map's label.
    dm = sfn.describe_state_machine_for_execution(executionArn=kids[0]["executionArn"])
    assert dm["mapRunArn"] == run and dm["label"] == "Fan5"
    assert json.loads(dm["definition"])["States"] == PASS_CHILD
    # The parent machine lists only the parent.
    listed = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert [e["executionArn"] for e in listed] == [ex]
    # ListExecutions pages over a map run's children.
    page = sfn.list_executions(mapRunArn=run, maxResults=2)
    assert len(page["executions"]) == 2 and "nextToken" in page


def test_express_children_are_counted_with_batches(client_factory):
    sfn = client_factory("stepfunctions")
    child = {"Count": {"Type": "Pass", "Parameters": {"size.$": "States.ArrayLength($.Items)"}, "End": True}}
    _, arn = create(sfn, dmap(child, "Count", execution_type="EXPRESS",
                              extra={"ItemBatcher": {"MaxItemsPerBatch": 3}}))
    items = list(range(10))
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": items}))["executionArn"]
    d = finished(sfn, ex)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == [{"size": 3}, {"size": 3}, {"size": 3}, {"size": 1}]
    run = map_run_of(sfn, ex)
    mr = sfn.describe_map_run(mapRunArn=run)
    assert mr["itemCounts"]["total"] == 10 and mr["itemCounts"]["succeeded"] == 10
    assert mr["executionCounts"]["total"] == 4 and mr["executionCounts"]["succeeded"] == 4
    # AWS lists no Express executions.
    assert children(sfn, run) == []


def test_list_map_runs_pages_over_the_runs_of_an_execution(client_factory):
    sfn = client_factory("stepfunctions")
    def proc(state: str) -> dict:
        return {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": state, "States": {state: {"Type": "Pass", "End": True}}}
    definition = {"StartAt": "First", "States": {
        "First": {"Type": "Map", "Label": "One", "ItemsPath": "$.items", "ItemProcessor": proc("P1"),
                  "ResultPath": None, "Next": "Second"},
        "Second": {"Type": "Map", "Label": "Two", "ItemsPath": "$.items", "ItemProcessor": proc("P2"),
                   "End": True}}}
    name, arn = create(sfn, json.dumps(definition))
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": [1, 2, 3]}))["executionArn"]
    assert finished(sfn, ex)["status"] == "SUCCEEDED"
    first = sfn.list_map_runs(executionArn=ex, maxResults=1)
    assert len(first["mapRuns"]) == 1 and "nextToken" in first
    second = sfn.list_map_runs(executionArn=ex, maxResults=1, nextToken=first["nextToken"])
    assert len(second["mapRuns"]) == 1 and "nextToken" not in second
    runs = [first["mapRuns"][0]["mapRunArn"], second["mapRuns"][0]["mapRunArn"]]
    assert runs[0] != runs[1]
    assert sorted(r.split(":mapRun:")[1].split(":")[0] for r in runs) == [f"{name}/One", f"{name}/Two"]
    for r in (first["mapRuns"][0], second["mapRuns"][0]):
        assert r["executionArn"] == ex and r["stateMachineArn"] == arn
    with pytest.raises(Exception) as e:
        sfn.list_map_runs(executionArn=ex, nextToken="garbage")
    assert_client_error(e, "InvalidToken", 400)


FAIL_ODD = {
    "Check": {"Type": "Choice",
              "Choices": [{"Variable": "$.odd", "BooleanEquals": True, "Next": "Boom"}],
              "Default": "Ok"},
    "Boom": {"Type": "Fail", "Error": "Odd", "Cause": "odd item"},
    "Ok": {"Type": "Pass", "End": True},
}


@pytest.mark.parametrize("execution_type", ["EXPRESS", "STANDARD"])
def test_tolerated_failures(client_factory, execution_type):
    sfn = client_factory("stepfunctions")
    items = [{"n": i, "odd": i % 2 == 1} for i in range(10)]
    # Half fail: within 50 %, the map succeeds with the failures' error output.
    _, ok = create(sfn, dmap(FAIL_ODD, "Check", execution_type=execution_type,
                             extra={"ToleratedFailurePercentage": 50}))
    ex = sfn.start_execution(stateMachineArn=ok, input=json.dumps({"items": items}))["executionArn"]
    d = finished(sfn, ex)
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out[0] == items[0] and out[1] == {"Error": "Odd", "Cause": "odd item"}
    mr = sfn.describe_map_run(mapRunArn=map_run_of(sfn, ex))
    assert mr["status"] == "SUCCEEDED" and mr["toleratedFailurePercentage"] == 50
    assert mr["executionCounts"]["succeeded"] == 5 and mr["executionCounts"]["failed"] == 5
    assert mr["itemCounts"]["failed"] == 5

    # A count of 4 is exceeded by the fifth failure.
    _, bad = create(sfn, dmap(FAIL_ODD, "Check", execution_type=execution_type,
                              extra={"ToleratedFailureCount": 4, "MaxConcurrency": 1}))
    ex = sfn.start_execution(stateMachineArn=bad, input=json.dumps({"items": items}))["executionArn"]
    d = finished(sfn, ex)
    assert d["status"] == "FAILED", d
    assert d["error"] == "States.ExceedToleratedFailureThreshold"
    mr = sfn.describe_map_run(mapRunArn=map_run_of(sfn, ex))
    assert mr["status"] == "FAILED" and mr["toleratedFailureCount"] == 4
    assert mr["executionCounts"]["failed"] == 5
    kinds = [e["type"] for e in sfn.get_execution_history(executionArn=ex, maxResults=1000)["events"]]
    assert "MapRunFailed" in kinds


WAIT_CHILD = {"Sleep": {"Type": "Wait", "Seconds": 1, "Next": "Done"},
              "Done": {"Type": "Pass", "End": True}}


def running_children(sfn, run: str) -> int:
    return len(children(sfn, run, "RUNNING"))


def test_update_map_run_lowers_and_raises_concurrency(client_factory):
    sfn = client_factory("stepfunctions")
    _, arn = create(sfn, dmap(WAIT_CHILD, "Sleep", extra={"MaxConcurrency": 4}))
    n = 16
    items = [{"n": i} for i in range(n)]
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": items}))["executionArn"]
    run = map_run_of(sfn, ex)
    wait_for(lambda: running_children(sfn, run) >= 1, 20, "children to run")
    sfn.update_map_run(mapRunArn=run, maxConcurrency=1)
    assert sfn.describe_map_run(mapRunArn=run)["maxConcurrency"] == 1
    # Once the children started before the update ended, one runs at a time.
    wait_for(lambda: len(children(sfn, run, "SUCCEEDED")) >= 4, 30, "the first children to end")
    seen = []
    t_end = time.monotonic() + 3
    while time.monotonic() < t_end:
        seen.append(running_children(sfn, run))
        time.sleep(0.1)
    assert max(seen) <= 1, seen
    assert sfn.describe_execution(executionArn=ex)["status"] == "RUNNING"
    remaining = n - len(children(sfn, run, "SUCCEEDED"))
    assert remaining >= 4, remaining
    # Raised again: the rest run together.
    sfn.update_map_run(mapRunArn=run, maxConcurrency=0)
    wait_for(lambda: running_children(sfn, run) >= 2, 10, "children running together")
    d = finished(sfn, ex, 30)
    assert d["status"] == "SUCCEEDED", d
    mr = sfn.describe_map_run(mapRunArn=run)
    assert mr["maxConcurrency"] == 0 and mr["executionCounts"]["succeeded"] == n


def test_update_map_run_threshold_fails_a_running_map(client_factory):
    sfn = client_factory("stepfunctions")
    states = {"Sleep": {"Type": "Wait", "Seconds": 1, "Next": "Check"}, **FAIL_ODD}
    items = [{"n": i, "odd": i == 1} for i in range(8)]
    _, arn = create(sfn, dmap(states, "Sleep", extra={"ToleratedFailureCount": 5,
                                                        "MaxConcurrency": 2}))
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": items}))["executionArn"]
    run = map_run_of(sfn, ex)
    wait_for(lambda: sfn.describe_map_run(mapRunArn=run)["executionCounts"]["failed"] >= 1, 30,
             "the failing child")
    sfn.update_map_run(mapRunArn=run, toleratedFailureCount=0)
    d = finished(sfn, ex, 30)
    assert d["status"] == "FAILED" and d["error"] == "States.ExceedToleratedFailureThreshold", d
    mr = sfn.describe_map_run(mapRunArn=run)
    assert mr["status"] == "FAILED" and mr["toleratedFailureCount"] == 0
    assert mr["executionCounts"]["succeeded"] < 7


def test_stop_execution_aborts_the_map_run_and_its_children(client_factory):
    sfn = client_factory("stepfunctions")
    long_child = {"Sleep": {"Type": "Wait", "Seconds": 600, "End": True}}
    _, arn = create(sfn, dmap(long_child, "Sleep"))
    items = [{"n": i} for i in range(4)]
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": items}))["executionArn"]
    run = map_run_of(sfn, ex)
    wait_for(lambda: running_children(sfn, run) == 4, 30, "four running children")
    sfn.stop_execution(executionArn=ex, error="Stop", cause="enough")
    mr = sfn.describe_map_run(mapRunArn=run)
    assert mr["status"] == "ABORTED" and "stopDate" in mr
    assert mr["executionCounts"]["aborted"] == 4 and mr["executionCounts"]["running"] == 0
    kids = children(sfn, run)
    assert [k["status"] for k in kids] == ["ABORTED"] * 4
    h = sfn.get_execution_history(executionArn=kids[0]["executionArn"], reverseOrder=True)["events"]
    assert h[0]["type"] == "ExecutionAborted"
    # An ended map run cannot be updated.
    with pytest.raises(Exception) as e:
        sfn.update_map_run(mapRunArn=run, maxConcurrency=3)
    assert_client_error(e, "ValidationException", 400)


def test_parent_timeout_aborts_the_map_run(client_factory):
    sfn = client_factory("stepfunctions")
    long_child = {"Sleep": {"Type": "Wait", "Seconds": 600, "End": True}}
    definition = json.loads(dmap(long_child, "Sleep"))
    definition["TimeoutSeconds"] = 2
    _, arn = create(sfn, json.dumps(definition))
    ex = sfn.start_execution(stateMachineArn=arn,
                             input=json.dumps({"items": [{"n": 1}, {"n": 2}]}))["executionArn"]
    run = map_run_of(sfn, ex)
    d = finished(sfn, ex, 30)
    assert d["status"] == "TIMED_OUT", d
    mr = wait_for(lambda: (lambda m: m if m["status"] != "RUNNING" else None)(
        sfn.describe_map_run(mapRunArn=run)), 10, "the map run to end")
    assert mr["status"] == "ABORTED"
    kids = wait_for(lambda: (lambda k: k if all(c["status"] == "ABORTED" for c in k) else None)(
        children(sfn, run)), 10, "the children to stop")
    assert len(kids) == 2


def test_bad_input(client_factory):
    sfn = client_factory("stepfunctions")
    raw = client_factory("stepfunctions", validate=False)
    unknown = f"arn:aws:states:{REGION}:{ACCOUNT}:mapRun:nope/Label:0a1b2c3d-0000-4000-8000-000000000000"
    with pytest.raises(Exception) as e:
        sfn.describe_map_run(mapRunArn=unknown)
    assert_client_error(e, "ResourceNotFound", 400)
    with pytest.raises(Exception) as e:
        sfn.update_map_run(mapRunArn=unknown, maxConcurrency=2)
    assert_client_error(e, "ResourceNotFound", 400)
    with pytest.raises(Exception) as e:
        sfn.list_executions(mapRunArn=unknown)
    assert_client_error(e, "ResourceNotFound", 400)
    for bad in ("not-an-arn", f"arn:aws:states:{REGION}:{ACCOUNT}:execution:sm:x"):
        with pytest.raises(Exception) as e:
            sfn.describe_map_run(mapRunArn=bad)
        assert_client_error(e, "InvalidArn", 400)
    with pytest.raises(Exception) as e:
        sfn.list_map_runs(executionArn=f"arn:aws:states:{REGION}:{ACCOUNT}:execution:nope:x")
    assert_client_error(e, "ExecutionDoesNotExist", 400)

    # A real run for the value checks.
    _, arn = create(sfn, dmap(PASS_CHILD, "Double"))
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": [{"n": 1}]}))["executionArn"]
    run = map_run_of(sfn, ex)
    with pytest.raises(Exception) as e:
        raw.update_map_run(mapRunArn=run, toleratedFailurePercentage=101.0)
    assert_client_error(e, "ValidationException", 400)
    with pytest.raises(Exception) as e:
        raw.update_map_run(mapRunArn=run, maxConcurrency=-1)
    assert_client_error(e, "ValidationException", 400)
    with pytest.raises(Exception) as e:
        raw.update_map_run(mapRunArn=run, toleratedFailureCount=-5)
    assert_client_error(e, "ValidationException", 400)
    with pytest.raises(Exception) as e:
        raw.update_map_run(mapRunArn=run)
    assert_client_error(e, "ValidationException", 400)
    with pytest.raises(Exception) as e:
        sfn.list_executions(mapRunArn=run, stateMachineArn=arn)
    assert_client_error(e, "ValidationException", 400)
    assert finished(sfn, ex)["status"] == "SUCCEEDED"


def test_standard_children_survive_sigkill(tmp_path):
    srv = start_server(tmp_path / "data", name="sfn-maprun-kill")
    sfn = srv.client("stepfunctions")
    child = {"Sleep": {"Type": "Wait", "Seconds": 1, "Next": "Tag"},
             "Tag": {"Type": "Pass", "Parameters": {"n.$": "$.n", "done": True}, "End": True}}
    _, arn = create(sfn, dmap(child, "Sleep", extra={"MaxConcurrency": 5}))
    n = 30
    ex = sfn.start_execution(stateMachineArn=arn,
                             input=json.dumps({"items": [{"n": i} for i in range(n)]}))["executionArn"]
    run = map_run_of(sfn, ex)
    wait_for(lambda: len(children(sfn, run, "SUCCEEDED")) >= 5 and running_children(sfn, run) >= 1,
             30, "some children done and some running")
    srv.kill()  # SIGKILL: no shutdown work at all

    srv.start()
    sfn = srv.client("stepfunctions")
    d = finished(sfn, ex, 120)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == [{"n": i, "done": True} for i in range(n)]
    # Every item was processed by exactly one child execution.
    kids = children(sfn, run)
    assert len(kids) == n
    inputs = sorted(json.loads(sfn.describe_execution(executionArn=k["executionArn"])["input"])["n"]
                    for k in kids)
    assert inputs == list(range(n))
    for k in kids:
        assert k["status"] == "SUCCEEDED"
        kinds = [e["type"] for e in
                 sfn.get_execution_history(executionArn=k["executionArn"], maxResults=1000)["events"]]
        assert kinds.count("ExecutionStarted") == 1 and kinds.count("WaitStateEntered") == 1, kinds
        assert kinds[-1] == "ExecutionSucceeded" and kinds.count("ExecutionSucceeded") == 1, kinds
    mr = sfn.describe_map_run(mapRunArn=run)
    assert mr["status"] == "SUCCEEDED"
    assert mr["executionCounts"]["succeeded"] == n and mr["executionCounts"]["total"] == n
    parent = [e["type"] for e in sfn.get_execution_history(executionArn=ex, maxResults=1000)["events"]]
    assert parent.count("MapRunStarted") == 1 and parent.count("MapRunSucceeded") == 1, parent
    assert sfn.list_map_runs(executionArn=ex)["mapRuns"][0]["mapRunArn"] == run
    srv.stop()
