"""Metrics (one-minute resolution, in the store's `lambda_metrics` table) and
`stratus cost`.

Expected values: the metric names and meanings of the Lambda developer guide
("Types of metrics for Lambda functions": Invocations, Throttles,
ConcurrentExecutions, ProvisionedConcurrencyInvocations,
ProvisionedConcurrencySpilloverInvocations, ...), the billing rules of "AWS
Lambda pricing" (billed duration x memory in GB-seconds, $0.20 per million
requests, $0.0000166667 per GB-second on x86_64 in us-east-1), and the REPORT
lines the invocations printed (Billed Duration, Memory Size). Metrics reach
the store every few seconds, so the tests poll."""

import json
import math
import sqlite3
import threading
import time

import boto3
from botocore.config import Config

from harness import (
    FUNCTIONS_DIR,
    invoke,
    invoke_ok,
    make_client,
    make_zip,
    parse_reports,
    stratus_cli,
    wait_for_function,
    wait_until,
)

APP = (FUNCTIONS_DIR / "python_basic" / "app.py").read_bytes()

SLEEPY = b'''
import os, time

def handler(event, context):
    time.sleep(float(event.get("seconds", 0)))
    return {"init_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE")}
'''


def metric_sums(server, name, dimension, qualifier=""):
    """Σ over the minutes of a series (maxima: max)."""
    db = sqlite3.connect(f"file:{server.data_dir / 'stratus.db'}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute(
            "SELECT SUM(invocations), SUM(errors), SUM(throttles), MAX(concurrent_executions), "
            "MAX(provisioned_concurrent_executions), MAX(provisioned_allocated), "
            "SUM(provisioned_invocations), SUM(spillover_invocations), SUM(duration_count), "
            "MAX(duration_max_ms) FROM lambda_metrics "
            "WHERE function_name = ? AND dimension = ? AND qualifier = ?",
            (name, dimension, qualifier)).fetchone()
    finally:
        db.close()
    keys = ["invocations", "errors", "throttles", "concurrent", "provisioned_concurrent",
            "provisioned_allocated", "provisioned_invocations", "spillover", "duration_count",
            "duration_max_ms"]
    return {k: (v or 0) for k, v in zip(keys, rows)}


def wait_metrics(server, name, dimension, qualifier="", timeout=20.0, **expected):
    last = {}

    def check():
        nonlocal last
        last = metric_sums(server, name, dimension, qualifier)
        return all(last[k] == v for k, v in expected.items())

    try:
        wait_until(check, timeout=timeout, interval=0.5, what=f"metrics of {name} {dimension} {qualifier}")
    except AssertionError:
        raise AssertionError(f"metrics of {name}/{dimension}/{qualifier}: {last}, expected {expected}")
    return last


def test_alias_weights_over_1000_invokes(server, lambda_client, functions):
    """Weight 0.1 on version 2 of an alias, 1,000 invocations: the count on
    version 2 is Binomial(1000, 0.1): mean 100, sd 9.49; accepted within 4
    sd (62..138). The alias and version metrics count the same split."""
    name = functions.python(make_zip({"app.py": APP}))
    lambda_client.publish_version(FunctionName=name)
    lambda_client.update_function_configuration(FunctionName=name, Description="two")
    wait_for_function(lambda_client, name)
    lambda_client.publish_version(FunctionName=name)
    wait_until(lambda: lambda_client.get_function_configuration(FunctionName=name, Qualifier="2")["State"]
               == "Active", timeout=30, what="version 2 Active")
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1",
                               RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}})
    n = 1000
    counts = {"1": 0, "2": 0}
    for _ in range(n):
        counts[invoke_ok(lambda_client, name, {"action": "echo"}, Qualifier="live").executed_version] += 1
    sd = math.sqrt(n * 0.1 * 0.9)
    assert abs(counts["2"] - n * 0.1) <= 4 * sd, counts
    assert counts["1"] + counts["2"] == n
    wait_metrics(server, name, "alias", "live", invocations=n, throttles=0, errors=0)
    wait_metrics(server, name, "version", "1", invocations=counts["1"])
    wait_metrics(server, name, "version", "2", invocations=counts["2"])
    f = wait_metrics(server, name, "function", invocations=n, duration_count=n)
    assert f["concurrent"] == 1  # one at a time


def test_spillover_and_throttles_are_counted(server, lambda_client, functions):
    """Provisioned concurrency 1 on version 1, three 2-second invocations at
    once: one on the provisioned environment, two spill over
    (ProvisionedConcurrencySpilloverInvocations 2); then reserved
    concurrency 0: every invocation is a Throttle."""
    name = functions.python(make_zip({"app.py": SLEEPY}), Timeout=30)
    lambda_client.publish_version(FunctionName=name)
    lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                                     ProvisionedConcurrentExecutions=1)
    wait_until(lambda: lambda_client.get_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1")["Status"] == "READY", timeout=90, what="READY")
    barrier = threading.Barrier(3)
    results = [None] * 3

    def one(i):
        client = make_client(server.url)
        barrier.wait()
        results[i] = invoke(client, name, {"seconds": 2}, Qualifier="1")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    kinds = sorted(r.payload["init_type"] for r in results)
    assert kinds == ["on-demand", "on-demand", "provisioned-concurrency"], kinds
    v = wait_metrics(server, name, "version", "1", invocations=3, provisioned_invocations=1, spillover=2)
    assert v["concurrent"] == 3
    assert v["provisioned_concurrent"] == 1
    assert v["provisioned_allocated"] == 1  # utilization 1/1 at the busiest moment
    wait_metrics(server, name, "function", invocations=3, provisioned_invocations=1, spillover=2)

    lambda_client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    # harness clients retry once (botocore's max_attempts counts retries):
    # every request is one Throttle, so this client sends each once.
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                    region_name="us-east-1")
    once = session.client("lambda", endpoint_url=server.url,
                          config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    for _ in range(4):
        try:
            once.invoke(FunctionName=name, Payload=b"{}")
            raise AssertionError("reserved concurrency 0 must throttle")
        except once.exceptions.TooManyRequestsException as e:
            assert e.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    wait_metrics(server, name, "function", throttles=4, invocations=3)
    wait_metrics(server, name, "version", "$LATEST", throttles=4, invocations=0)


def test_stratus_cost_after_a_few_invocations(server, lambda_client, functions, tmp_path):
    """Three invocations at 256 MB: requests $0.20 per million, duration
    Σ Billed Duration x 0.25 GB x $0.0000166667, from the REPORT lines."""
    name = functions.python(make_zip({"app.py": SLEEPY}), MemorySize=256)
    billed_ms = 0
    for _ in range(3):
        inv = invoke_ok(lambda_client, name, {"seconds": 0.05}, LogType="Tail")
        report, = parse_reports(inv.log)
        assert report["memory"] == "256"
        billed_ms += int(report["billed"])
    gb_s = billed_ms / 1000 * 256 / 1024
    expected = {"requests": 3 * 0.20 / 1e6, "duration": gb_s * 0.0000166667}

    def cost(*extra):
        proc = stratus_cli("cost", "--function", name, "--data-dir", str(server.data_dir), *extra)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def settled():
        out = json.loads(cost("--json"))
        return out if out["usage"]["requests"] == 3 else None

    out = wait_until(settled, timeout=20, interval=0.5, what="cost of three invocations")
    lines = {(l["item"], l["architecture"]): l for l in out["total"]["lines"]}
    assert lines[("Requests", None)]["quantity"] == 3
    assert math.isclose(lines[("Requests", None)]["amount"], expected["requests"], rel_tol=1e-9)
    dur = lines[("Duration", "x86_64")]
    assert math.isclose(dur["quantity"], gb_s, rel_tol=1e-9), (dur, billed_ms)
    assert math.isclose(dur["amount"], expected["duration"], rel_tol=1e-9)
    assert math.isclose(out["total"]["total"], sum(expected.values()), rel_tol=1e-9)
    assert out["total"]["billed_total"] == 0.0  # below a cent

    text = cost()
    assert f"Function {name}" in text
    assert "3 requests" in text
    assert f"{gb_s:.6f} GB-s" in text

    # A price table overrides the rates.
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"requests_per_million": 1_000_000, "x86_64": {"duration_gb_second": 1}}))
    out = json.loads(cost("--json", "--prices", str(prices)))
    lines = {(l["item"], l["architecture"]): l for l in out["total"]["lines"]}
    assert lines[("Requests", None)]["billed"] == 3.0
    assert math.isclose(lines[("Duration", "x86_64")]["amount"], gb_s, rel_tol=1e-9)
    # --since after the invocations: nothing.
    future = str(int(time.time()) + 120)
    out = json.loads(cost("--json", "--since", future))
    assert out["usage"]["requests"] == 0
    bad = stratus_cli("cost", "--since", "yesterday", "--data-dir", str(server.data_dir))
    assert bad.returncode == 2 and "--since" in bad.stderr
