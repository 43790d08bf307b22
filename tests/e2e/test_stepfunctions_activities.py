"""Step Functions activities with real clients: the AWS CLI creates,
describes, lists and deletes activities; boto3 worker threads poll
GetActivityTask and answer with SendTaskSuccess / SendTaskFailure /
SendTaskHeartbeat, as the Developer Guide's "Learn about Activities in Step
Functions" describes. Expected events, fields and error codes come from
the API reference (GetActivityTask, SendTask*, HistoryEvent) and the
botocore model stepfunctions/2016-11-23."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from harness import ACCOUNT, REGION, assert_client_error, start_server
from test_stepfunctions import ROLE, sfn_client

ACTIVITY_ARN_PREFIX = f"arn:aws:states:{REGION}:{ACCOUNT}:activity:"


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


def machine(sfn, states: dict, start: str) -> str:
    return sfn.create_state_machine(
        name=name("act-sm"), roleArn=ROLE,
        definition=json.dumps({"StartAt": start, "States": states}))["stateMachineArn"]


def finished(sfn, ex: str, timeout: float = 60) -> dict:
    return wait_for(lambda: (lambda d: d if d["status"] != "RUNNING" else None)(
        sfn.describe_execution(executionArn=ex)), timeout, f"{ex} to finish")


def history(sfn, ex: str) -> list[dict]:
    return sfn.get_execution_history(executionArn=ex, maxResults=1000)["events"]


def scheduled(sfn, ex: str) -> bool:
    return any(e["type"] == "ActivityScheduled" for e in history(sfn, ex))


# --------------------------------------------------------------------------
# the control plane
# --------------------------------------------------------------------------


def test_cli_creates_describes_lists_and_deletes_activities(aws_cli):
    n = name("cli-act")
    created = aws_cli("stepfunctions", "create-activity", "--name", n,
                      "--tags", "key=team,value=orders")
    arn = created["activityArn"]
    assert arn == ACTIVITY_ARN_PREFIX + n
    assert "creationDate" in created
    # CreateActivity is idempotent by name; different tags are ignored.
    again = aws_cli("stepfunctions", "create-activity", "--name", n,
                    "--tags", "key=team,value=other")
    assert again == created
    described = aws_cli("stepfunctions", "describe-activity", "--activity-arn", arn)
    assert described["activityArn"] == arn and described["name"] == n
    assert described["creationDate"] == created["creationDate"]
    listed = aws_cli("stepfunctions", "list-activities")
    assert arn in [a["activityArn"] for a in listed["activities"]]
    tags = aws_cli("stepfunctions", "list-tags-for-resource", "--resource-arn", arn)
    assert tags["tags"] == [{"key": "team", "value": "orders"}]
    aws_cli("stepfunctions", "delete-activity", "--activity-arn", arn)
    proc = aws_cli.run("stepfunctions", "describe-activity", "--activity-arn", arn, check=False)
    assert proc.returncode != 0 and "ActivityDoesNotExist" in proc.stderr
    # Deleting again succeeds (DeleteActivity models only InvalidArn).
    aws_cli("stepfunctions", "delete-activity", "--activity-arn", arn)
    listed = aws_cli("stepfunctions", "list-activities")
    assert arn not in [a["activityArn"] for a in listed["activities"]]


def test_list_activities_pages_and_tags(sfn):
    prefix = name("page")
    arns = [sfn.create_activity(name=f"{prefix}-{i}")["activityArn"] for i in range(3)]
    seen = []
    token = None
    pages = 0
    while True:
        kw = {"maxResults": 1}
        if token:
            kw["nextToken"] = token
        page = sfn.list_activities(**kw)
        assert len(page["activities"]) <= 1
        seen += [a["activityArn"] for a in page["activities"]]
        pages += 1
        token = page.get("nextToken")
        if not token:
            break
    assert set(arns) <= set(seen) and len(seen) == len(set(seen))
    assert pages == len(seen)
    sfn.tag_resource(resourceArn=arns[0], tags=[{"key": "a", "value": "1"},
                                                {"key": "b", "value": "2"}])
    sfn.untag_resource(resourceArn=arns[0], tagKeys=["a"])
    assert sfn.list_tags_for_resource(resourceArn=arns[0])["tags"] == [{"key": "b", "value": "2"}]
    for a in arns:
        sfn.delete_activity(activityArn=a)
    with pytest.raises(Exception) as e:
        sfn.list_tags_for_resource(resourceArn=arns[0])
    assert_client_error(e, "ResourceNotFound", 400)


def test_encryption_configuration_cannot_change(sfn):
    n = name("enc")
    arn = sfn.create_activity(name=n, encryptionConfiguration={"type": "AWS_OWNED_KEY"})["activityArn"]
    assert sfn.describe_activity(activityArn=arn)["encryptionConfiguration"] == {"type": "AWS_OWNED_KEY"}
    with pytest.raises(Exception) as e:
        sfn.create_activity(name=n)
    assert_client_error(e, "ActivityAlreadyExists", 400)
    with pytest.raises(Exception) as e:
        sfn.create_activity(name=name("enc"),
                            encryptionConfiguration={"type": "CUSTOMER_MANAGED_KMS_KEY"})
    assert_client_error(e, "InvalidEncryptionConfiguration", 400)
    sfn.delete_activity(activityArn=arn)


# --------------------------------------------------------------------------
# workers
# --------------------------------------------------------------------------


class Worker(threading.Thread):
    """An activity worker: polls GetActivityTask and answers each task with
    `handle(input) -> ("success", output) | ("failure", error, cause) |
    ("drop",)`, until stopped."""

    def __init__(self, endpoint: str, activity: str, handle, worker_name: str = "worker-1"):
        super().__init__(daemon=True)
        self.client = sfn_client(endpoint)
        self.activity = activity
        self.handle = handle
        self.worker_name = worker_name
        self.seen: list[dict] = []
        self.stopping = threading.Event()
        self.error: Exception | None = None

    def run(self):
        try:
            while not self.stopping.is_set():
                task = self.client.get_activity_task(activityArn=self.activity,
                                                     workerName=self.worker_name)
                if not task.get("taskToken"):
                    continue
                self.seen.append(task)
                answer = self.handle(json.loads(task["input"]), task["taskToken"], self.client)
                if answer[0] == "success":
                    self.client.send_task_success(taskToken=task["taskToken"],
                                                  output=json.dumps(answer[1]))
                elif answer[0] == "failure":
                    self.client.send_task_failure(taskToken=task["taskToken"],
                                                  error=answer[1], cause=answer[2])
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def stop(self):
        self.stopping.set()


def test_a_worker_thread_runs_activity_tasks_in_order(sfn, endpoint):
    act = sfn.create_activity(name=name("double"))["activityArn"]
    sm = machine(sfn, {
        "Double": {"Type": "Task", "Resource": act, "TimeoutSeconds": 60,
                   "ResultPath": "$.result", "Next": "Done"},
        "Done": {"Type": "Succeed"},
    }, "Double")
    executions = []
    for n in range(3):
        ex = sfn.start_execution(stateMachineArn=sm, input=json.dumps({"n": n}))["executionArn"]
        wait_for(lambda: scheduled(sfn, ex), 30, "the activity task to be scheduled")
        executions.append(ex)
    worker = Worker(endpoint, act, lambda inp, tok, c: ("success", {"doubled": inp["n"] * 2}),
                    worker_name="doubler")
    worker.start()
    try:
        outs = [finished(sfn, ex) for ex in executions]
    finally:
        worker.stop()
    assert worker.error is None, worker.error
    # Tasks go out in the order they were scheduled, one per poll.
    assert [json.loads(t["input"]) for t in worker.seen[:3]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert len({t["taskToken"] for t in worker.seen}) == len(worker.seen)
    for n, d in enumerate(outs):
        assert d["status"] == "SUCCEEDED", d
        assert json.loads(d["output"]) == {"n": n, "result": {"doubled": n * 2}}
    events = history(sfn, executions[0])
    kinds = [e["type"] for e in events]
    assert kinds == ["ExecutionStarted", "TaskStateEntered", "ActivityScheduled", "ActivityStarted",
                     "ActivitySucceeded", "TaskStateExited", "SucceedStateEntered",
                     "SucceedStateExited", "ExecutionSucceeded"], kinds
    sched = events[2]["activityScheduledEventDetails"]
    assert sched["resource"] == act
    assert json.loads(sched["input"]) == {"n": 0}
    assert sched["timeoutInSeconds"] == 60
    started = events[3]
    assert started["activityStartedEventDetails"] == {"workerName": "doubler"}
    assert started["previousEventId"] == events[2]["id"]
    assert json.loads(events[4]["activitySucceededEventDetails"]["output"]) == {"doubled": 0}
    # The task is over: its token is no longer accepted.
    with pytest.raises(Exception) as e:
        sfn.send_task_success(taskToken=worker.seen[0]["taskToken"], output="{}")
    assert_client_error(e, "TaskTimedOut", 400)


def test_a_worker_failure_is_caught(sfn, endpoint):
    act = sfn.create_activity(name=name("fail"))["activityArn"]
    sm = machine(sfn, {
        "Work": {"Type": "Task", "Resource": act, "Next": "Done",
                 "Catch": [{"ErrorEquals": ["Orders.OutOfStock"], "ResultPath": "$.error",
                            "Next": "Fallback"}]},
        "Fallback": {"Type": "Pass", "Result": "fallback", "ResultPath": "$.handled", "End": True},
        "Done": {"Type": "Succeed"},
    }, "Work")
    ex = sfn.start_execution(stateMachineArn=sm, input='{"item": "x"}')["executionArn"]
    task = sfn.get_activity_task(activityArn=act)
    assert json.loads(task["input"]) == {"item": "x"}
    sfn.send_task_failure(taskToken=task["taskToken"], error="Orders.OutOfStock",
                          cause="no more x")
    d = finished(sfn, ex)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == {
        "item": "x", "handled": "fallback",
        "error": {"Error": "Orders.OutOfStock", "Cause": "no more x"}}
    events = history(sfn, ex)
    failed = [e for e in events if e["type"] == "ActivityFailed"]
    assert len(failed) == 1
    assert failed[0]["activityFailedEventDetails"] == {"error": "Orders.OutOfStock",
                                                       "cause": "no more x"}
    started = [e for e in events if e["type"] == "ActivityStarted"]
    # No workerName was given: the event has no worker name.
    assert len(started) == 1
    assert "workerName" not in started[0].get("activityStartedEventDetails", {})


def test_heartbeats_keep_a_task_alive_and_their_absence_times_it_out(sfn, endpoint):
    act = sfn.create_activity(name=name("beat"))["activityArn"]
    sm = machine(sfn, {
        "Work": {"Type": "Task", "Resource": act, "HeartbeatSeconds": 2, "End": True},
    }, "Work")

    # Heartbeats every second for 4 s (twice HeartbeatSeconds): alive.
    ex = sfn.start_execution(stateMachineArn=sm, input="{}")["executionArn"]
    task = sfn.get_activity_task(activityArn=act, workerName="beater")
    for _ in range(4):
        time.sleep(1)
        sfn.send_task_heartbeat(taskToken=task["taskToken"])
    sfn.send_task_success(taskToken=task["taskToken"], output='{"ok": true}')
    d = finished(sfn, ex)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == {"ok": True}

    # One heartbeat, then silence: States.HeartbeatTimeout.
    ex = sfn.start_execution(stateMachineArn=sm, input="{}")["executionArn"]
    task = sfn.get_activity_task(activityArn=act, workerName="quitter")
    time.sleep(1)
    sfn.send_task_heartbeat(taskToken=task["taskToken"])
    d = finished(sfn, ex, timeout=30)
    assert d["status"] == "FAILED", d
    assert d["error"] == "States.HeartbeatTimeout"
    events = history(sfn, ex)
    timed_out = [e for e in events if e["type"] == "ActivityTimedOut"]
    assert len(timed_out) == 1
    assert timed_out[0]["activityTimedOutEventDetails"]["error"] == "States.HeartbeatTimeout"
    for call in (lambda: sfn.send_task_heartbeat(taskToken=task["taskToken"]),
                 lambda: sfn.send_task_success(taskToken=task["taskToken"], output="{}")):
        with pytest.raises(Exception) as e:
            call()
        assert_client_error(e, "TaskTimedOut", 400)


def test_timeout_seconds_ends_a_task_nobody_takes(sfn):
    act = sfn.create_activity(name=name("late"))["activityArn"]
    sm = machine(sfn, {
        "Work": {"Type": "Task", "Resource": act, "TimeoutSeconds": 2,
                 "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "TooLate"}], "End": True},
        "TooLate": {"Type": "Pass", "Result": "timed out", "End": True},
    }, "Work")
    ex = sfn.start_execution(stateMachineArn=sm, input="{}")["executionArn"]
    d = finished(sfn, ex, timeout=30)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == "timed out"
    kinds = [e["type"] for e in history(sfn, ex)]
    assert "ActivityTimedOut" in kinds and "ActivityStarted" not in kinds, kinds


def test_a_stopped_execution_withdraws_its_task(sfn):
    act = sfn.create_activity(name=name("stop"))["activityArn"]
    sm = machine(sfn, {"Work": {"Type": "Task", "Resource": act, "End": True}}, "Work")
    first = sfn.start_execution(stateMachineArn=sm, input='{"which": "stopped"}')["executionArn"]
    wait_for(lambda: scheduled(sfn, first), 30, "the first task to be scheduled")
    sfn.stop_execution(executionArn=first, error="Cancelled")
    second = sfn.start_execution(stateMachineArn=sm, input='{"which": "live"}')["executionArn"]
    task = sfn.get_activity_task(activityArn=act)
    assert json.loads(task["input"]) == {"which": "live"}
    sfn.send_task_success(taskToken=task["taskToken"], output='"done"')
    assert finished(sfn, second)["status"] == "SUCCEEDED"
    assert sfn.describe_execution(executionArn=first)["status"] == "ABORTED"


def test_an_empty_poll_answers_after_60_seconds(sfn):
    act = sfn.create_activity(name=name("idle"))["activityArn"]
    t0 = time.monotonic()
    task = sfn.get_activity_task(activityArn=act, workerName="idle")
    elapsed = time.monotonic() - t0
    assert not task.get("taskToken")
    assert 55 <= elapsed <= 75, elapsed


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------


def test_bad_input(sfn):
    missing = ACTIVITY_ARN_PREFIX + name("missing")
    with pytest.raises(Exception) as e:
        sfn.get_activity_task(activityArn=missing)
    assert_client_error(e, "ActivityDoesNotExist", 400)
    with pytest.raises(Exception) as e:
        sfn.describe_activity(activityArn=missing)
    assert_client_error(e, "ActivityDoesNotExist", 400)
    for bad in ["not-an-arn", f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:x"]:
        for op in (sfn.get_activity_task, sfn.describe_activity, sfn.delete_activity):
            with pytest.raises(Exception) as e:
                op(activityArn=bad)
            assert_client_error(e, "InvalidArn", 400)
    for bad in ["has space", "a:b", "x" * 81, "semi;colon"]:
        with pytest.raises(Exception) as e:
            sfn.create_activity(name=bad)
        assert_client_error(e, "InvalidName", 400)
    with pytest.raises(Exception) as e:
        sfn.create_activity(name=name("tags"),
                            tags=[{"key": f"k{i}", "value": "v"} for i in range(51)])
    assert_client_error(e, "TooManyTags", 400)
    act = sfn.create_activity(name=name("bad"))["activityArn"]
    with pytest.raises(Exception) as e:
        sfn.get_activity_task(activityArn=act, workerName="w" * 81)
    assert_client_error(e, "ValidationException", 400)
    for op in (lambda t: sfn.send_task_success(taskToken=t, output="{}"),
               lambda t: sfn.send_task_failure(taskToken=t),
               lambda t: sfn.send_task_heartbeat(taskToken=t)):
        with pytest.raises(Exception) as e:
            op("not-a-token")
        assert_client_error(e, "InvalidToken", 400)
    # An execution whose activity does not exist fails its Task state.
    sm = machine(sfn, {"Work": {"Type": "Task", "Resource": missing, "End": True}}, "Work")
    ex = sfn.start_execution(stateMachineArn=sm, input="{}")["executionArn"]
    d = finished(sfn, ex)
    assert d["status"] == "FAILED" and d["error"] == "States.Runtime", d
    assert missing in d["cause"]
    # The history shows the task never reached a worker: ActivityScheduleFailed
    # in place of ActivityScheduled (HistoryEvent model).
    types = [e["type"] for e in sfn.get_execution_history(executionArn=ex)["events"]]
    assert "ActivityScheduled" not in types, types
    failed = [e for e in sfn.get_execution_history(executionArn=ex)["events"]
              if e["type"] == "ActivityScheduleFailed"]
    assert len(failed) == 1, types
    assert failed[0]["activityScheduleFailedEventDetails"]["error"] == "States.Runtime"
    # SendTaskSuccess with output that is not JSON.
    sm = machine(sfn, {"Work": {"Type": "Task", "Resource": act, "End": True}}, "Work")
    ex = sfn.start_execution(stateMachineArn=sm, input="{}")["executionArn"]
    task = sfn.get_activity_task(activityArn=act)
    with pytest.raises(Exception) as e:
        sfn.send_task_success(taskToken=task["taskToken"], output="{not json")
    assert_client_error(e, "InvalidOutput", 400)
    sfn.send_task_success(taskToken=task["taskToken"], output="1")
    assert finished(sfn, ex)["status"] == "SUCCEEDED"


# --------------------------------------------------------------------------
# durability
# --------------------------------------------------------------------------


def test_activity_tasks_survive_sigkill(tmp_path):
    srv = start_server(tmp_path / "data", name="sfn-activities-restart")
    sfn = sfn_client(srv.url)
    act = sfn.create_activity(name="durable-work")["activityArn"]
    sm = machine(sfn, {"Work": {"Type": "Task", "Resource": act, "HeartbeatSeconds": 600,
                                "End": True}}, "Work")
    taken = sfn.start_execution(stateMachineArn=sm, input='{"job": "taken"}')["executionArn"]
    wait_for(lambda: scheduled(sfn, taken), 30, "the first task to be scheduled")
    waiting = sfn.start_execution(stateMachineArn=sm, input='{"job": "waiting"}')["executionArn"]
    wait_for(lambda: scheduled(sfn, waiting), 30, "the second task to be scheduled")
    first = sfn.get_activity_task(activityArn=act, workerName="before-crash")
    assert json.loads(first["input"]) == {"job": "taken"}

    srv.kill()  # SIGKILL
    srv.start()
    sfn = sfn_client(srv.url)
    assert sfn.describe_activity(activityArn=act)["name"] == "durable-work"
    assert act in [a["activityArn"] for a in sfn.list_activities()["activities"]]
    # Both tasks are offered again (each execution's replay offers its task
    # when it reaches it), the taken one with the token it had.
    offered = [sfn.get_activity_task(activityArn=act, workerName="after-crash")
               for _ in range(2)]
    by_job = {json.loads(t["input"])["job"]: t["taskToken"] for t in offered}
    assert set(by_job) == {"taken", "waiting"}
    assert by_job["taken"] == first["taskToken"]
    second = {"taskToken": by_job["waiting"]}
    # The worker that took the task before the crash answers it.
    sfn.send_task_success(taskToken=first["taskToken"], output='{"done": "taken"}')
    sfn.send_task_success(taskToken=second["taskToken"], output='{"done": "waiting"}')
    for ex, job in ((taken, "taken"), (waiting, "waiting")):
        d = finished(sfn, ex)
        assert d["status"] == "SUCCEEDED", d
        assert json.loads(d["output"]) == {"done": job}
    events = history(sfn, taken)
    kinds = [e["type"] for e in events]
    assert kinds.count("ActivityScheduled") == 1 and kinds.count("ActivityStarted") == 1, kinds
    started = next(e for e in events if e["type"] == "ActivityStarted")
    assert started["activityStartedEventDetails"] == {"workerName": "before-crash"}
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    kinds = [e["type"] for e in history(sfn, waiting)]
    assert kinds.count("ActivityStarted") == 1, kinds

    # A poll open at shutdown is answered without a task; the server exits.
    answers = []
    poller = threading.Thread(target=lambda: answers.append(
        sfn.get_activity_task(activityArn=act, workerName="at-shutdown")), daemon=True)
    poller.start()
    time.sleep(1)
    t0 = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - t0 < 10
    poller.join(timeout=10)
    assert len(answers) == 1 and not answers[0].get("taskToken"), answers
