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
    pid_alive,
    sha256_b64,
    start_server,
    stratus_cli,
    wait_for_function,
    wait_until,
)

pytestmark = pytest.mark.restart


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_restart_keeps_functions(tmp_path, python_zip, sig):
    data_dir = tmp_path / "data"
    first = start_server(data_dir, name=f"restart-1-{sig.name}")
    client = first.client()
    factory = FunctionFactory(client, "persist")
    created = factory.create(python_zip, Environment={"Variables": {"KEPT": "yes"}},
                             Tags={"kept": "tag"}, MemorySize=256, Timeout=7, Description="survives")
    name = created["FunctionName"]
    before = wait_for_function(client, name)
    warm = invoke_ok(client, name, {"action": "counter"})
    env_pid = warm.payload["pid"]
    assert pid_alive(env_pid)

    started = time.monotonic()
    status = first.stop(sig, timeout=15)
    assert status is not None, f"the server did not exit within 15 s of {sig.name}"
    assert status == 0, f"the server exited with status {status} on {sig.name}"
    assert time.monotonic() - started < 15
    # Its execution environments went with it.
    assert env_pid not in first.leftover_pids, "an execution environment outlived the server"
    wait_until(lambda: not pid_alive(env_pid), timeout=5, what=f"environment process {env_pid} to end")

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

    # Logs written before the restart are still there.
    proc = stratus_cli("logs", name, "--data-dir", str(data_dir))
    assert proc.returncode == 0, proc.stderr
    assert f"START RequestId: {warm.invocation_id}" in proc.stdout
    assert f"START RequestId: {inv.invocation_id}" in proc.stdout

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
        assert srv.stop() == 0


def test_idle_environments_expire(tmp_path, python_zip):
    srv = start_server(tmp_path / "data", name="idle", extra_args=["--idle-timeout", "1"])
    try:
        client = srv.client()
        name = FunctionFactory(client, "idle").python(python_zip)
        first = invoke_ok(client, name, {"action": "counter"})
        second = invoke_ok(client, name, {"action": "counter"})
        assert second.payload["pid"] == first.payload["pid"]  # warm within the idle timeout
        pid = first.payload["pid"]
        wait_until(lambda: not pid_alive(pid), timeout=15,
                   what="the idle environment to be shut down (--idle-timeout 1)")
        third = invoke_ok(client, name, {"action": "counter"}, LogType="Tail")
        assert third.payload["count"] == 1
        assert third.payload["pid"] != pid
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
