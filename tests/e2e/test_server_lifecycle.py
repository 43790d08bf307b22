"""The server process itself: restart persistence, clean shutdown on SIGTERM /
SIGINT, configuration through the environment, idle environment expiry.
Each test starts its own server(s) on its own data directory."""

import signal
import time
import urllib.request

import pytest
from harness import (
    FunctionFactory,
    function_arn,
    invoke_ok,
    parse_reports,
    sha256_b64,
    start_server,
    stratus_cli,
    wait_for_function,
    wait_until,
)

pytestmark = pytest.mark.restart


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_restart_keeps_functions(tmp_path, python_zip, env_probe, sig):
    data_dir = tmp_path / "data"
    first = start_server(data_dir, name=f"restart-1-{sig.name}")
    client = first.client()
    factory = FunctionFactory(client, "persist")
    created = factory.create(python_zip, Environment={"Variables": {"KEPT": "yes"}},
                             Tags={"kept": "tag"}, MemorySize=256, Timeout=7, Description="survives")
    name = created["FunctionName"]
    before = wait_for_function(client, name)
    warm = invoke_ok(client, name, env_probe.event())
    env_id = env_probe.accept()
    assert env_id == warm.payload["env_id"]

    started = time.monotonic()
    status = first.stop(sig, timeout=15)
    assert status is not None, f"the server did not exit within 15 s of {sig.name}"
    assert status == 0, f"the server exited with status {status} on {sig.name}"
    assert time.monotonic() - started < 15
    # Its execution environments went with it.
    env_probe.wait_closed(env_id, timeout=5, what="the execution environment to end with the server")

    second = start_server(data_dir, name=f"restart-2-{sig.name}")
    client = second.client()
    names = [f["FunctionName"] for f in client.list_functions()["Functions"]]
    assert name in names
    after = client.get_function(FunctionName=name)
    conf = after["Configuration"]
    for key in ("FunctionArn", "CodeSha256", "CodeSize", "RevisionId", "LastModified", "Runtime",
                "Handler", "MemorySize", "Timeout", "Description", "Environment", "Role"):
        assert conf[key] == before[key], key
    assert conf["State"] == "Active"
    assert conf["FunctionArn"] == function_arn(name)
    assert after["Tags"] == {"kept": "tag"}
    with urllib.request.urlopen(after["Code"]["Location"], timeout=30) as r:
        data = r.read()
    assert data == python_zip and sha256_b64(data) == conf["CodeSha256"]

    inv = invoke_ok(client, name, {"action": "counter"}, LogType="Tail")
    assert inv.payload["count"] == 1  # a fresh environment
    env = invoke_ok(client, name, {"action": "env", "names": ["KEPT"]}).payload
    assert env["KEPT"] == "yes"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    (report,) = parse_reports(inv.log)
    assert report["init"] is not None

    # Logs written before the restart are still there (and the new ones
    # arrive, allowing a moment as CloudWatch Logs does).
    def read_logs():
        proc = stratus_cli("logs", name, "--data-dir", str(data_dir))
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert f"REPORT RequestId: {warm.invocation_id}" in read_logs(), "logs written before the shutdown were lost"
    wait_until(lambda: f"START RequestId: {inv.invocation_id}" in read_logs(), timeout=10,
               what="the new invocation's logs")

    client.delete_function(FunctionName=name)
    assert second.stop() == 0

    third = start_server(data_dir, name=f"restart-3-{sig.name}")
    try:
        names = [f["FunctionName"] for f in third.client().list_functions()["Functions"]]
        assert name not in names, "a deleted function came back after a restart"
    finally:
        assert third.stop() == 0


def test_shutdown_during_an_invoke(tmp_path, python_zip):
    """SIGTERM while an invoke is running: the server still exits (after a
    grace period for the environment), with status 0."""
    import concurrent.futures

    srv = start_server(tmp_path / "data", name="shutdown-busy")
    client = srv.client()
    name = FunctionFactory(client, "busy").python(python_zip, Timeout=60)
    invoke_ok(client, name, {"action": "counter"})
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(lambda: client.invoke(FunctionName=name, Payload=b'{"action": "sleep", "seconds": 30}'))
        time.sleep(1.0)
        status = srv.stop(signal.SIGTERM, timeout=20)
        assert status == 0, f"exit status {status} (None: still running 20 s after SIGTERM)"
        try:
            future.result(timeout=30)
        except Exception:
            pass  # the in-flight request may fail; it must not hang


def test_configuration_from_environment_variables(tmp_path, python_zip):
    data_dir = tmp_path / "from-env"
    srv = start_server(data_dir, name="env-config", use_env_config=True)
    try:
        client = srv.client()
        name = FunctionFactory(client, "envcfg").python(python_zip)
        assert invoke_ok(client, name, {"action": "counter"}).payload["count"] == 1
        assert data_dir.is_dir(), "STRATUS_DATA_DIR was not used"
        assert any(data_dir.iterdir())
    finally:
        assert srv.stop() == 0


def test_data_dir_is_created(tmp_path):
    data_dir = tmp_path / "does" / "not" / "exist" / "yet"
    srv = start_server(data_dir, name="mkdir")
    try:
        srv.assert_healthy()
        assert data_dir.is_dir()
    finally:
        srv.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_right_after_ready(tmp_path, sig):
    """Once it has printed `listening on ...` the server is ready, and that
    includes shutting down cleanly on a signal, however soon it comes."""
    statuses = []
    for i in range(12):
        srv = start_server(tmp_path / f"data{i}", name=f"quick-{sig.name}-{i}")
        statuses.append(srv.stop(sig, timeout=15))
    assert statuses == [0] * len(statuses), f"exit statuses: {statuses} (negative: killed by that signal)"


def test_idle_environments_expire(tmp_path, python_zip, env_probe):
    srv = start_server(tmp_path / "data", name="idle", extra_args=["--idle-timeout", "1"])
    try:
        client = srv.client()
        name = FunctionFactory(client, "idle").python(python_zip)
        first = invoke_ok(client, name, env_probe.event())
        env_id = env_probe.accept()
        second = invoke_ok(client, name, {"action": "counter"})
        assert second.payload["env_id"] == first.payload["env_id"] == env_id  # warm within the idle timeout
        env_probe.wait_closed(env_id, timeout=15,
                              what="the idle environment to be shut down (--idle-timeout 1)")
        third = invoke_ok(client, name, {"action": "counter"}, LogType="Tail")
        assert third.payload["count"] == 1
        assert third.payload["env_id"] != env_id
        (report,) = parse_reports(third.log)
        assert report["init"] is not None
    finally:
        assert srv.stop() == 0


def test_second_server_on_same_port_fails_cleanly(tmp_path):
    first = start_server(tmp_path / "a", name="port-a")
    try:
        proc = stratus_cli("server", "--listen", f"127.0.0.1:{first.port}", "--data-dir", str(tmp_path / "b"),
                           timeout=30)
        assert proc.returncode != 0
        assert (proc.stderr + proc.stdout).strip(), "no message explains why the server did not start"
        first.assert_healthy()
    finally:
        first.stop()


def test_account_id_is_configurable(tmp_path, python_zip):
    srv = start_server(tmp_path / "data", name="account", extra_args=["--account-id", "111122223333"])
    try:
        client = srv.client()
        created = FunctionFactory(client, "acct").create(python_zip)
        arn = f"arn:aws:lambda:us-east-1:111122223333:function:{created['FunctionName']}"
        assert created["FunctionArn"] == arn
        ctx = invoke_ok(client, created["FunctionName"], {"action": "echo"}).payload["context"]
        assert ctx["invoked_function_arn"] == arn
        assert client.get_function(FunctionName=arn)["Configuration"]["FunctionArn"] == arn
    finally:
        assert srv.stop() == 0


def test_runtime_interpreters_are_configurable(tmp_path, python_zip):
    """`--runtime ID=PROGRAM` picks the interpreter of a runtime; with
    `--strict-runtimes` a runtime whose interpreter is missing is refused at
    CreateFunction with InvalidParameterValueException naming what is missing."""
    import sys

    from botocore.exceptions import ClientError

    srv = start_server(tmp_path / "data", name="runtimes", extra_args=[
        "--strict-runtimes",
        "--runtime", f"python3.11={sys.executable}",
        "--runtime", "python3.13=/nonexistent/bin/python3.13",
    ])
    try:
        client = srv.client()
        factory = FunctionFactory(client, "rt")
        name = factory.python(python_zip, runtime="python3.11")
        env = invoke_ok(client, name, {"action": "env"}).payload
        assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"

        with pytest.raises(ClientError) as e:
            factory.create(python_zip, runtime="python3.13")
        assert e.value.response["Error"]["Code"] == "InvalidParameterValueException"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        message = e.value.response["Error"]["Message"]
        assert "python3.13" in message, message
        srv.assert_healthy()
    finally:
        assert srv.stop() == 0
