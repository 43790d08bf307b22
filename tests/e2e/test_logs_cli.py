"""`stratus logs FUNCTION [--follow]`: the function's log lines, with START /
END / REPORT lines in AWS's format:

  START RequestId: <id> Version: $LATEST
  END RequestId: <id>
  REPORT RequestId: <id>\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB\tInit Duration: 10.00 ms\t
"""

import subprocess
import threading
import time

from harness import STRATUS_BIN, invoke, invoke_ok, parse_reports, stratus_cli, unique_name


def logs(server, name, *extra, allow_empty=False):
    proc = stratus_cli("logs", name, "--data-dir", str(server.data_dir), *extra)
    if allow_empty and proc.returncode == 1 and "has no events" in proc.stderr:
        # Like CloudWatch Logs: the group appears with its first event.
        return ""
    assert proc.returncode == 0, f"stratus logs exited {proc.returncode}: {proc.stderr}"
    return proc.stdout


def logs_with(server, name, *needles, timeout=10.0):
    """`stratus logs` once it shows every needle. Like CloudWatch Logs, log
    lines may reach the store a moment after the invoke answered; 10 s is
    generous. Returns the last output either way (the asserts then say what
    is missing)."""
    deadline = time.monotonic() + timeout
    while True:
        out = logs(server, name, allow_empty=True)
        if all(n in out for n in needles) or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def test_logs_show_function_output_and_platform_lines(server, lambda_client, functions, python_zip):
    name = functions.python(python_zip)
    marker = unique_name("printed")
    first = invoke_ok(lambda_client, name, {"action": "log", "lines": [marker], "info": f"info-{marker}"})
    second = invoke_ok(lambda_client, name, {"action": "echo"})
    out = logs_with(server, name, f"REPORT RequestId: {first.invocation_id}",
                    f"REPORT RequestId: {second.invocation_id}")
    for inv in (first, second):
        rid = inv.invocation_id
        assert f"START RequestId: {rid} Version: $LATEST" in out, out
        assert f"END RequestId: {rid}" in out, out
    assert marker in out
    assert f"info-{marker}" in out
    reports = {r["id"]: r for r in parse_reports(out)}
    assert set(reports) >= {first.invocation_id, second.invocation_id}, out
    assert reports[first.invocation_id]["init"] is not None
    assert reports[second.invocation_id]["init"] is None
    assert int(reports[first.invocation_id]["memory"]) == 128
    # In order: the first invocation's lines before the second's.
    assert out.index(f"START RequestId: {first.invocation_id}") < out.index(marker) \
        < out.index(f"END RequestId: {first.invocation_id}") < out.index(f"START RequestId: {second.invocation_id}")


def test_logs_include_errors_and_timeouts(server, lambda_client, functions, python_zip):
    name = functions.python(python_zip, Timeout=1)
    err = invoke(lambda_client, name, {"action": "raise", "message": "logged failure"})
    assert err.function_error == "Unhandled"
    timed_out = invoke(lambda_client, name, {"action": "sleep", "seconds": 5})
    assert timed_out.function_error == "Unhandled"
    out = logs_with(server, name, f"REPORT RequestId: {timed_out.invocation_id}")
    assert "logged failure" in out
    assert "Task timed out after 1." in out
    assert f"REPORT RequestId: {timed_out.invocation_id}" in out


def test_logs_are_per_function(server, lambda_client, functions, python_zip):
    a = functions.python(python_zip)
    b = functions.python(python_zip)
    ma, mb = unique_name("only-a"), unique_name("only-b")
    invoke_ok(lambda_client, a, {"action": "log", "lines": [ma]})
    invoke_ok(lambda_client, b, {"action": "log", "lines": [mb]})
    logs_with(server, b, mb)
    out_a = logs_with(server, a, ma)
    assert ma in out_a and mb not in out_a


def test_logs_follow(server, lambda_client, functions, python_zip):
    name = functions.python(python_zip)
    invoke_ok(lambda_client, name, {"action": "echo"})
    proc = subprocess.Popen([str(STRATUS_BIN), "logs", name, "--follow", "--data-dir", str(server.data_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    collected = []
    reader = threading.Thread(target=lambda: collected.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        time.sleep(1.0)
        assert proc.poll() is None, f"`stratus logs --follow` exited at once: {proc.stderr.read()}"
        marker = unique_name("followed")
        inv = invoke_ok(lambda_client, name, {"action": "log", "lines": [marker]})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            text = "".join(collected)
            if marker in text and f"REPORT RequestId: {inv.invocation_id}" in text:
                break
            time.sleep(0.1)
        text = "".join(collected)
        assert marker in text, text
        assert f"REPORT RequestId: {inv.invocation_id}" in text, text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_logs_of_a_function_without_events_fail(server):
    # CloudWatch Logs answers ResourceNotFoundException for a log group that
    # has no events yet; `stratus logs` says so and exits 1.
    proc = stratus_cli("logs", unique_name("never-invoked"), "--data-dir", str(server.data_dir))
    assert proc.returncode == 1
    assert "has no events" in proc.stderr


def test_logs_of_a_version_show_only_its_streams(server, lambda_client, functions, python_zip):
    name = functions.python(python_zip)
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    v1 = invoke_ok(lambda_client, name, {"action": "echo"}, Qualifier=version)
    latest = invoke_ok(lambda_client, name, {"action": "echo"})
    logs_with(server, name, f"REPORT RequestId: {v1.invocation_id}", f"REPORT RequestId: {latest.invocation_id}")
    out = logs(server, f"{name}:{version}")
    assert f"START RequestId: {v1.invocation_id} Version: {version}" in out, out
    assert latest.invocation_id not in out, out
