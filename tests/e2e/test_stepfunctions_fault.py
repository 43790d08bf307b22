"""Fault test of durable STANDARD executions: 1,000 executions of a
five-state workflow (three Lambda tasks, a Wait, a Retry) while the server
is SIGKILLed at three random moments and restarted on the same data
directory.

What must hold (Step Functions Developer Guide: Standard workflows have
exactly-once workflow execution; every state transition is recorded in the
execution history): at the end every execution is SUCCEEDED and its history
shows each task state succeeding exactly once (the retried task fails once,
then succeeds once).
"""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from harness import ACCOUNT, REGION, FunctionFactory, make_client, make_zip, start_server, wait_until

EXECUTIONS = 1_000
KILLS = 3

APP = """
def handler(event, context):
    if event.get("failFirst") and event.get("retry", 0) == 0:
        raise RuntimeError("first attempt fails on purpose")
    return {"step": event.get("step"), "n": event.get("n")}
"""


def definition(fn_arn: str) -> str:
    task = lambda step, nxt, extra=None: {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": fn_arn, "Payload": {"step": step, "n.$": "$.n", **(extra or {})}},
        "ResultSelector": {"step.$": "$.Payload.step"},
        "ResultPath": f"$.{step}",
        "Next": nxt,
    } if nxt else {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": fn_arn, "Payload": {"step": step, "n.$": "$.n"}},
        "ResultSelector": {"step.$": "$.Payload.step"},
        "ResultPath": f"$.{step}",
        "End": True,
    }
    b = task("B", "C", {"failFirst": True, "retry.$": "$$.State.RetryCount"})
    b["Retry"] = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1.0}]
    return json.dumps({
        "StartAt": "A",
        "States": {
            "A": task("A", "Pause"),
            "Pause": {"Type": "Wait", "Seconds": 1, "Next": "B"},
            "B": b,
            "C": {"Type": "Pass", "Result": "done", "ResultPath": "$.C", "Next": "D"},
            "D": task("D", None),
        },
    })


def sfn_client(url):
    return make_client(url, "stepfunctions")


@pytest.mark.timeout(900)
def test_standard_executions_survive_three_sigkills(tmp_path):
    srv = start_server(tmp_path / "data", name="sfn-fault")
    lam = make_client(srv.url)
    fns = FunctionFactory(lam, "sfnfault")
    # A generous function timeout: a burst of cold starts on a loaded 2-core
    # machine must not time a task out (that would be a task failure, as on
    # AWS, and this workflow has no Retry on A and D).
    name = fns.python(make_zip({"app.py": APP}), Timeout=60)
    fn_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    sfn = sfn_client(srv.url)
    sm = sfn.create_state_machine(name="fault", definition=definition(fn_arn),
                                  roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn", type="STANDARD")["stateMachineArn"]

    started: set[str] = set()
    lock = threading.Lock()
    endpoint = {"url": srv.url}
    restarting = threading.Event()
    rnd = random.Random(7)
    kill_points = sorted(rnd.sample(range(EXECUTIONS // 10, EXECUTIONS), KILLS))
    tls = threading.local()

    def start(n: int):
        for _ in range(200):
            while restarting.is_set():
                time.sleep(0.05)
            try:
                if getattr(tls, "url", None) != endpoint["url"]:
                    tls.c, tls.url = sfn_client(endpoint["url"]), endpoint["url"]
                # The name makes StartExecution idempotent: a start whose
                # answer was cut by a kill is sent again and gets the same
                # execution back.
                r = tls.c.start_execution(stateMachineArn=sm, name=f"exec-{n}", input=json.dumps({"n": n}))
                with lock:
                    started.add(r["executionArn"])
                return
            except ClientError as e:
                # The first start was committed but its answer was cut by a
                # kill, and the execution has finished since: AWS returns the
                # same execution for the same name and input only while it
                # runs, so this one is already started.
                if e.response["Error"]["Code"] == "ExecutionAlreadyExists":
                    with lock:
                        started.add(sm.replace(":stateMachine:", ":execution:") + f":exec-{n}")
                    return
                time.sleep(0.1)
            except (BotoCoreError, ConnectionError):
                time.sleep(0.1)
        raise AssertionError(f"execution {n} was never started")

    kills_done = 0

    def killer():
        nonlocal kills_done
        for point in kill_points:
            wait_until(lambda: len(started) >= point, timeout=600, what=f"{point} started executions")
            time.sleep(rnd.random())
            restarting.set()
            srv.kill()
            srv.start()
            endpoint["url"] = srv.url
            kills_done += 1
            restarting.clear()

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    t0 = time.time()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(start, range(EXECUTIONS)))
    t.join(timeout=600)
    assert kills_done == KILLS
    assert len(started) == EXECUTIONS

    sfn = sfn_client(srv.url)

    def statuses():
        counts: dict[str, int] = {}
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=sm):
            for e in page["executions"]:
                counts[e["status"]] = counts.get(e["status"], 0) + 1
        return counts

    wait_until(lambda: statuses().get("RUNNING", 0) == 0, timeout=600, interval=2,
               what="every execution to finish")
    counts = statuses()
    assert counts == {"SUCCEEDED": EXECUTIONS}, counts
    elapsed = time.time() - t0

    bad = []
    task_events = 0
    for arn in sorted(started):
        events = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
            events.extend(page["events"])
        # Each TaskSucceeded follows the TaskStateEntered of its state.
        succeeded: dict[str, int] = {}
        failed: dict[str, int] = {}
        current = None
        for e in events:
            if e["type"] == "TaskStateEntered":
                current = e["stateEnteredEventDetails"]["name"]
            elif e["type"] == "TaskSucceeded":
                succeeded[current] = succeeded.get(current, 0) + 1
                task_events += 1
            elif e["type"] == "TaskFailed":
                failed[current] = failed.get(current, 0) + 1
        if succeeded != {"A": 1, "B": 1, "D": 1} or failed != {"B": 1}:
            bad.append((arn, succeeded, failed))
        ids = [e["id"] for e in events]
        assert ids == list(range(1, len(ids) + 1)), f"{arn}: event ids {ids}"
    print(f"\nstep functions fault test: {EXECUTIONS} executions, {KILLS} SIGKILLs at {kill_points} started, "
          f"all SUCCEEDED after {elapsed:.1f} s; {task_events} TaskSucceeded events, "
          f"{len(bad)} executions with a task run other than once")
    assert not bad, bad[:5]
    srv.stop()
