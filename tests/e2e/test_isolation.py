"""Execution environment isolation, resource limits and lifecycle (issue 3,
parts 1-3): `--isolation namespace|process`, cgroups (memory, CPU, pids,
freezer), idle reclamation, and bad input (fork bombs, full /tmp, memory
exhaustion, CPU spins, a runtime that drops its Runtime API connection,
huge log lines).

Expected behaviour comes from AWS's documentation: "Lambda execution
environment lifecycle", "Configuring Lambda function memory" (1,769 MB = one
vCPU), "Configuring ephemeral storage" (/tmp of EphemeralStorage MB), the
Runtime.OutOfMemory error and REPORT's Max Memory Used. Functions run as an
unprivileged user (sbx_user1051, uid 993 on AWS) with their code read-only
at /var/task.

Namespace mode, cgroups and the checks of /sys/fs/cgroup need root; the
tests that need them say so in their skip reason when not run as root (CI
runs as root, where they all run). After every bad-input test the test
checks that nothing leaked: no cgroups under the server's instance
directories, no processes below the server, no mounts naming its data dir,
no listening sockets besides the edge port, and the environment count of
/_stratus/health back at 0.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
from harness import (
    FunctionFactory,
    invoke,
    invoke_ok,
    make_zip,
    parse_reports,
    start_server,
    stratus_cli,
    wait_until,
)

IS_ROOT = os.geteuid() == 0
NEEDS_ROOT = pytest.mark.skipif(
    not IS_ROOT, reason="needs root: namespaces, mounts and cgroups (CI runs as root)")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def health(srv) -> dict:
    status, body = srv.health()
    assert status == 200
    return json.loads(body)


def cgroup_dirs(srv) -> list[Path]:
    cg = health(srv).get("cgroups")
    return [Path(d) for d in (cg or {}).get("dirs", [])]


def env_cgroups(srv) -> list[Path]:
    """Environment cgroups under the server's instance directories."""
    out = []
    for d in cgroup_dirs(srv):
        if d.is_dir():
            out += [p for p in d.iterdir() if p.is_dir()]
    return out


def descendants(pid: int) -> list[int]:
    """Live processes below `pid` (children, grandchildren, ...)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if fields[0] not in ("Z", "X"):
            parent[int(entry)] = int(fields[1])
    out, frontier = [], {pid}
    while frontier:
        kids = {p for p, pp in parent.items() if pp in frontier}
        out += sorted(kids)
        frontier = kids
    return out


def listening_sockets(pid: int) -> int:
    """TCP sockets in LISTEN state held by process `pid`."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:
                n += 1
    return n


def assert_released(srv, timeout: float = 15.0):
    """Every environment of `srv` is gone and all it held is released."""
    def done():
        return (health(srv)["environments"] == 0 and not env_cgroups(srv)
                and not descendants(srv.proc.pid) and listening_sockets(srv.proc.pid) == 1)
    try:
        wait_until(done, timeout, interval=0.1, what="environments to be released")
    except AssertionError:
        raise AssertionError(
            f"not released after {timeout} s: health={health(srv)}, "
            f"cgroups={env_cgroups(srv)}, processes={descendants(srv.proc.pid)}, "
            f"listening sockets={listening_sockets(srv.proc.pid)} (1 is the edge port)")
    mounts = Path("/proc/mounts").read_text()
    assert str(srv.data_dir) not in mounts, "a mount of the server's data dir leaked into the host"
    assert listening_sockets(srv.proc.pid) == 1, "only the edge port may still listen"
    srv.assert_healthy()


def zip_py(code: str) -> bytes:
    return make_zip({"app.py": code})


def stream_env_id(stream: str) -> str:
    """The environment id: the 32 hex digits at the end of the log stream name."""
    return stream[-32:]


def env_cgroup(srv, env_id: str, controller: str) -> Path:
    for d in cgroup_dirs(srv):
        # v1: <mount named after its controllers>/stratus/<instance>; v2: one dir.
        if controller in d.parts[-3].split(",") or health(srv)["cgroups"]["version"] == "v2":
            return d / env_id
    raise AssertionError(f"no {controller} hierarchy in {cgroup_dirs(srv)}")


def cpu_usage_ns(srv, env_id: str) -> int:
    if health(srv)["cgroups"]["version"] == "v1":
        return int((env_cgroup(srv, env_id, "cpuacct") / "cpuacct.usage").read_text())
    stat = (env_cgroup(srv, env_id, "cpu") / "cpu.stat").read_text()
    return int(re.search(r"usage_usec (\d+)", stat).group(1)) * 1000


def is_frozen(srv, env_id: str) -> bool:
    if health(srv)["cgroups"]["version"] == "v1":
        return (env_cgroup(srv, env_id, "freezer") / "freezer.state").read_text().strip() == "FROZEN"
    events = (env_cgroup(srv, env_id, "freezer") / "cgroup.events").read_text()
    return "frozen 1" in events


def reports(inv) -> list[dict]:
    return parse_reports(inv.log or "")


# --------------------------------------------------------------------------
# servers: one per isolation mode for this module
# --------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["namespace", "process"])
def iso(request, tmp_path_factory):
    mode = request.param
    if not IS_ROOT:
        pytest.skip("needs root: namespaces, mounts and cgroups (CI runs as root)")
    srv = start_server(tmp_path_factory.mktemp(f"iso-{mode}") / "data", name=f"iso-{mode}",
                       sdk=True, extra_args=["--isolation", mode])
    srv.mode = mode
    yield srv
    srv.stop()
    # The server removes its cgroup instance directories when it stops.
    leftover = [d for d in getattr(srv, "_cg_dirs", []) if d.exists()]
    assert not leftover, f"cgroup directories left after the server stopped: {leftover}"


@pytest.fixture
def fns(iso, request):
    iso._cg_dirs = cgroup_dirs(iso)
    factory = FunctionFactory(iso.client(), request.node.name.split("[")[0].replace("test_", "i-"))
    yield factory
    factory.cleanup()


def namespace_only(srv):
    if srv.mode != "namespace":
        pytest.skip("process mode shares the host's view by design (development mode)")


# --------------------------------------------------------------------------
# mode selection and reporting
# --------------------------------------------------------------------------


@NEEDS_ROOT
def test_default_mode_is_namespace_where_the_host_allows_it(tmp_path, monkeypatch):
    monkeypatch.delenv("STRATUS_TEST_ISOLATION", raising=False)
    monkeypatch.delenv("STRATUS_ISOLATION", raising=False)
    srv = start_server(tmp_path / "data", name="default-mode")
    h = health(srv)
    assert h["isolation"] == "namespace"
    assert h["cgroups"]["version"] in ("v1", "v2")
    assert "isolation mode: namespace" in srv.log_text()
    assert srv.stop() == 0


def test_mode_is_reported_at_start_and_by_health(iso):
    h = health(iso)
    assert h["isolation"] == iso.mode
    assert f"isolation mode: {iso.mode}" in iso.log_text()
    assert h["environments"] == 0


def test_isolation_flag_is_validated(tmp_path):
    proc = stratus_cli("server", "--isolation", "vm", "--data-dir", str(tmp_path / "d"),
                       "--listen", "127.0.0.1:0", timeout=30)
    assert proc.returncode != 0
    assert "vm" in proc.stderr and "namespace" in proc.stderr


def test_runtimes_work_in_both_modes(iso, fns, python_zip, node_zip, rust_zip, python_ric_zip):
    """Python and Node.js (stratus's bootstraps), a Rust lambda_runtime
    bootstrap and awslambdaric (the test venv's python, made visible with
    --sandbox-path / STRATUS_SANDBOX_PATHS) all run."""
    client = iso.client()
    py = fns.python(python_zip)
    assert invoke_ok(client, py, {"action": "echo", "x": 1}).payload["event"]["x"] == 1
    js = fns.create(node_zip, runtime="nodejs20.x", handler="index.handler")["FunctionName"]
    invoke_ok(client, js, {"action": "echo"})
    rs = fns.create(rust_zip, runtime="provided.al2023", handler="bootstrap")["FunctionName"]
    invoke_ok(client, rs, {"x": 1})
    ric = fns.create(python_ric_zip, runtime="provided.al2023", handler="app.handler")["FunctionName"]
    assert invoke_ok(client, ric, {"action": "echo", "y": 2}).payload["event"]["y"] == 2


def test_node_sees_a_home_directory(iso, fns):
    """os.homedir() works (AWS SDK for JavaScript v3 reads ~/.aws): the
    sandbox user has a passwd entry, as sbx_user1051 on AWS."""
    code = "exports.handler = async () => ({home: require('os').homedir(), uid: process.getuid()});\n"
    name = fns.create(make_zip({"index.js": code}), runtime="nodejs20.x",
                      handler="index.handler")["FunctionName"]
    out = invoke_ok(iso.client(), name).payload
    if iso.mode == "namespace":
        # Each environment runs as its own unprivileged uid (20000-59999),
        # named sbx_user1051 as on AWS.
        assert out["home"] == "/home/sbx_user1051"
        assert 20000 <= out["uid"] <= 59999, out
    else:
        assert out["home"]


def test_bootstrap_that_is_not_executable(iso, fns):
    zip_bytes = make_zip({"bootstrap": "#!/bin/sh\necho hi\n"})  # mode 0644
    name = fns.create(zip_bytes, runtime="provided.al2023", handler="x")["FunctionName"]
    inv = invoke(iso.client(), name)
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Runtime.InvalidEntrypoint", inv.payload


# --------------------------------------------------------------------------
# the root view, user and syscalls (namespace mode)
# --------------------------------------------------------------------------

VIEW_APP = r'''
import ctypes, ctypes.util, errno, os, subprocess, traceback

def handler(event, context):
    out = {"uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd(),
           "task_root": os.environ["LAMBDA_TASK_ROOT"], "hostname": os.uname().nodename,
           "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
           "task_files": sorted(os.listdir("/var/task")), "opt": os.listdir("/opt")}
    out["ps"] = subprocess.run(["ps", "-e", "-o", "pid=,comm="], capture_output=True, text=True).stdout
    status = open("/proc/self/status").read()
    out["seccomp"] = int(status.split("Seccomp:")[1].split()[0])
    out["no_new_privs"] = int(status.split("NoNewPrivs:")[1].split()[0])
    out["cap_eff"] = status.split("CapEff:")[1].split()[0]
    def attempt(fn):
        try:
            fn()
            return "ok"
        except OSError as e:
            return errno.errorcode.get(e.errno, str(e.errno))
    out["write_task"] = attempt(lambda: open("/var/task/new", "w"))
    out["write_usr"] = attempt(lambda: open("/usr/new", "w"))
    out["write_root"] = attempt(lambda: open("/new", "w"))
    out["write_tmp"] = attempt(lambda: open("/tmp/new", "w").write("x"))
    out["unshare"] = attempt(lambda: os.unshare(os.CLONE_NEWUSER))
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    rc = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
    out["mount"] = errno.errorcode.get(ctypes.get_errno(), "?") if rc != 0 else "ok"
    rc = libc.ptrace(16, 1, None, None)  # PTRACE_ATTACH to init
    out["ptrace"] = errno.errorcode.get(ctypes.get_errno(), "?") if rc != 0 else "ok"
    out["data_dir_visible"] = os.path.exists(event["data_dir"])
    out["host_code_visible"] = os.path.exists(event["host_code"])
    try:
        raise ValueError("where am I")
    except ValueError:
        out["trace"] = traceback.format_exc()
    return out
'''


def test_namespace_root_view_user_and_seccomp(iso, fns):
    namespace_only(iso)
    zip_bytes = zip_py(VIEW_APP)
    name = fns.python(zip_bytes)
    host_code = iso.data_dir / "code" / hashlib.sha256(zip_bytes).hexdigest()
    assert host_code.is_dir(), "the test assumes code is unpacked under DATA/code/<sha256>"
    out = invoke_ok(iso.client(), name, {"data_dir": str(iso.data_dir), "host_code": str(host_code)}).payload
    # AWS: an unprivileged user, code at /var/task, /opt present.
    # Each environment has its own uid, so its Runtime API can refuse others.
    assert 20000 <= out["uid"] <= 59999 and out["gid"] == out["uid"], out
    assert out["cap_eff"] == "0000000000000000"
    assert out["task_root"] == "/var/task" and out["cwd"] == "/var/task"
    assert out["task_files"] == ["app.py"]
    assert out["opt"] == []
    assert 'File "/var/task/app.py"' in out["trace"], "stack traces show /var/task paths"
    # Its own PID namespace: init (1), the runtime, and `ps` itself.
    assert out["pids"][0] == 1 and len(out["pids"]) <= 3, out["pids"]
    ps_lines = [l.split() for l in out["ps"].strip().splitlines()]
    assert len(ps_lines) <= 3, out["ps"]
    assert {int(p) for p, _ in ps_lines} <= set(range(1, 20)), out["ps"]
    assert iso.proc.pid not in out["pids"]
    # Read-only everywhere but /tmp.
    assert out["write_task"] in ("EROFS", "EACCES")
    assert out["write_usr"] in ("EROFS", "EACCES")
    assert out["write_root"] in ("EROFS", "EACCES")
    assert out["write_tmp"] == "ok"
    # The seccomp filter and no_new_privs.
    assert out["seccomp"] == 2 and out["no_new_privs"] == 1
    assert out["unshare"] == "EPERM"
    assert out["mount"] == "EPERM"
    assert out["ptrace"] == "EPERM"
    # The server's data dir and the unpacked code on the host are not there.
    assert out["data_dir_visible"] is False
    assert out["host_code_visible"] is False


SECRET_APP = r'''
import os, time
def handler(event, context):
    # Leave something in /tmp and stay around (idle) with a secret variable.
    open("/tmp/secret-" + os.environ["MARK"], "w").write(os.environ["SECRET"])
    return {"pid": os.getpid(), "stream": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]}
'''

SNOOP_APP = r'''
import glob, os
def handler(event, context):
    found = {"code": None, "tmp": [], "environ": [], "code_listing": None}
    try:
        found["code"] = open(event["other_code"] + "/secret.txt").read()
    except OSError as e:
        found["code"] = type(e).__name__
    found["tmp"] = glob.glob("/tmp/secret-*")
    for p in glob.glob("/proc/[0-9]*/environ"):
        try:
            if event["secret"] in open(p, "rb").read().decode(errors="replace"):
                found["environ"].append(p)
        except OSError:
            pass
    try:
        found["code_listing"] = os.listdir(os.path.dirname(event["other_code"]))
    except OSError as e:
        found["code_listing"] = type(e).__name__
    return found
'''


def test_functions_cannot_see_each_other(iso, fns):
    """Another function's code, /tmp, environment variables and processes are
    out of reach."""
    namespace_only(iso)
    secret = "s3cr3t-" + os.urandom(6).hex()
    mark = os.urandom(4).hex()
    victim_zip = make_zip({"app.py": SECRET_APP, "secret.txt": secret})
    victim = fns.python(victim_zip, Environment={"Variables": {"SECRET": secret, "MARK": mark}})
    snoop = fns.python(zip_py(SNOOP_APP))
    client = iso.client()
    invoke_ok(client, victim)  # the victim's environment stays idle
    victim_code = iso.data_dir / "code" / hashlib.sha256(victim_zip).hexdigest()
    assert (victim_code / "secret.txt").read_text() == secret
    found = invoke_ok(client, snoop, {"other_code": str(victim_code), "secret": secret}).payload
    assert found["code"] in ("FileNotFoundError", "PermissionError"), found
    assert found["code_listing"] in ("FileNotFoundError", "PermissionError"), found
    assert found["tmp"] == [], "/tmp is private to each environment"
    assert found["environ"] == [], "another environment's variables are visible"


PORT_APP = """
import os
def handler(event, context):
    return os.environ["AWS_LAMBDA_RUNTIME_API"]
"""

THIEF_APP = """
import http.client
def handler(event, context):
    host, port = event["api"].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=3)
    try:
        conn.request("GET", "/2018-06-01/runtime/invocation/next")
        r = conn.getresponse()
        return {"outcome": "answered", "status": r.status, "body": r.read(200).decode("utf-8", "replace")}
    except TimeoutError:
        return {"outcome": "waited"}
    except Exception as e:
        return {"outcome": type(e).__name__}
"""


def test_runtime_api_of_another_environment_is_out_of_reach(iso, fns):
    """On AWS each environment is its own microVM: its Runtime API cannot be
    reached by other functions. Here every environment's API listens on the
    shared loopback, so each connection's owner is checked: another
    environment's request for `/invocation/next` is dropped instead of being
    handed the victim's next event."""
    namespace_only(iso)
    client = iso.client()
    victim = fns.python(zip_py(PORT_APP))
    thief = fns.python(zip_py(THIEF_APP))
    api = invoke_ok(client, victim).payload  # the victim's environment stays idle
    got = invoke_ok(client, thief, {"api": api}).payload
    assert got["outcome"] in ("RemoteDisconnected", "ConnectionResetError", "BrokenPipeError"), got
    # The victim's own environment still works.
    assert invoke_ok(client, victim).payload == api


def test_tmp_is_private_and_kept_within_an_environment(iso, fns):
    namespace_only(iso)
    app = (
        "import os\n"
        "def handler(event, context):\n"
        "    before = os.listdir('/tmp')\n"
        "    open('/tmp/' + event['name'], 'w').write('x')\n"
        "    return sorted(before)\n"
    )
    a = fns.python(zip_py(app))
    b = fns.python(zip_py(app))
    client = iso.client()
    # Host directories the sandbox binds read-only (interpreters and
    # STRATUS_SANDBOX_PATHS) stay visible at their own path, even below
    # /tmp, when the checkout itself lives there: those are not files of
    # another environment.
    bound = {Path(p).parts[2] for p in (sys.prefix, sys.base_prefix)
             if len(Path(p).parts) > 2 and Path(p).parts[1] == "tmp"}

    def own(listing):
        return [n for n in listing if n not in bound]

    assert own(invoke_ok(client, a, {"name": "from-a"}).payload) == []
    # The same (warm) environment keeps its /tmp, as on AWS.
    assert own(invoke_ok(client, a, {"name": "again"}).payload) == ["from-a"]
    assert own(invoke_ok(client, b, {"name": "from-b"}).payload) == []


# --------------------------------------------------------------------------
# cgroup limits
# --------------------------------------------------------------------------

STREAM_APP = (
    "import os\n"
    "def handler(event, context):\n"
    "    return os.environ['AWS_LAMBDA_LOG_STREAM_NAME']\n"
)


def test_cgroup_limits_follow_memory_size(iso, fns):
    """Memory limit = MemorySize; CPU in proportion (1,769 MB = one vCPU);
    a pids limit."""
    client = iso.client()
    version = health(iso)["cgroups"]["version"]
    cores = os.cpu_count() or 1
    for memory, vcpus in ((1769, 1.0), (128, 128 / 1769)):
        name = fns.python(zip_py(STREAM_APP), MemorySize=memory)
        env_id = stream_env_id(invoke_ok(client, name).payload)
        want_quota = round(min(vcpus, cores) * 100_000)
        if version == "v1":
            mem = int((env_cgroup(iso, env_id, "memory") / "memory.limit_in_bytes").read_text())
            quota = int((env_cgroup(iso, env_id, "cpu") / "cpu.cfs_quota_us").read_text())
            period = int((env_cgroup(iso, env_id, "cpu") / "cpu.cfs_period_us").read_text())
            pids = (env_cgroup(iso, env_id, "pids") / "pids.max").read_text().strip()
        else:
            mem = int((env_cgroup(iso, env_id, "memory") / "memory.max").read_text())
            quota, period = map(int, (env_cgroup(iso, env_id, "cpu") / "cpu.max").read_text().split())
            pids = (env_cgroup(iso, env_id, "pids") / "pids.max").read_text().strip()
        assert mem == memory * 1024 * 1024
        assert period == 100_000
        assert abs(quota - want_quota) <= 1, (memory, quota, want_quota)
        assert pids == "1024"


def test_out_of_memory(iso, fns):
    """A 128 MB function allocating 256 MB: Runtime.OutOfMemory, REPORT at the
    limit, and the next invocation gets a fresh environment."""
    app = (
        "def handler(event, context):\n"
        "    if event.get('small'):\n"
        "        return 'fine'\n"
        "    hog = [bytearray(1024 * 1024) for _ in range(256)]\n"
        "    return len(hog)\n"
    )
    name = fns.python(zip_py(app), MemorySize=128, Timeout=60)
    client = iso.client()
    inv = invoke(client, name, {}, LogType="Tail")
    assert inv.function_error == "Unhandled", inv
    body = inv.payload
    assert body["errorType"] == "Runtime.OutOfMemory", body
    assert re.fullmatch(r"RequestId: [0-9a-f-]{36} Error: Runtime exited with error: signal: killed",
                        body["errorMessage"]), body
    rep = reports(inv)[-1]
    assert rep["memory"] == "128" and rep["max_memory"] == "128", inv.log
    assert "Error Type: Runtime.OutOfMemory" in inv.log
    # A crashed environment is never reused.
    again = invoke_ok(client, name, {"small": True}, LogType="Tail")
    assert again.payload == "fine"
    assert reports(again)[-1]["init"] is not None, "expected a cold start after the OOM kill"
    fns.cleanup()
    fns.created.clear()
    assert_released(iso)


def test_max_memory_used_comes_from_the_cgroup(iso, fns):
    app = (
        "def handler(event, context):\n"
        "    block = bytearray(event['mb'] * 1024 * 1024)\n"
        "    for i in range(0, len(block), 4096):\n"
        "        block[i] = 1\n"
        "    return len(block)\n"
    )
    name = fns.python(zip_py(app), MemorySize=512, Timeout=30)
    inv = invoke_ok(iso.client(), name, {"mb": 100}, LogType="Tail")
    used = int(reports(inv)[-1]["max_memory"])
    assert 100 <= used <= 512, inv.log


SPIN_APP = r'''
import os, threading, time
started = False
def spin():
    while True:
        pass
def handler(event, context):
    global started
    if not started:
        threading.Thread(target=spin, daemon=True).start()
        started = True
    if event.get("busy"):
        time.sleep(event["busy"])
    return os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
'''


def test_frozen_idle_environment_uses_no_cpu(iso, fns):
    """A background thread spins; once the invocation is over the environment
    is frozen and its CPU time stops growing; the next invoke thaws it."""
    name = fns.python(zip_py(SPIN_APP), MemorySize=1769, Timeout=30)
    client = iso.client()
    env_id = stream_env_id(invoke_ok(client, name).payload)
    wait_until(lambda: is_frozen(iso, env_id), 5, what="the idle environment to be frozen")
    time.sleep(0.2)
    u0 = cpu_usage_ns(iso, env_id)
    time.sleep(1.0)
    u1 = cpu_usage_ns(iso, env_id)
    assert u1 - u0 < 20_000_000, f"a frozen environment used {(u1 - u0) / 1e6:.1f} ms of CPU in 1 s"
    # Thawed for the next invocation: the spinning thread runs while busy
    # (up to one vCPU at 1,769 MB for 0.5 s; on a loaded host less, but far
    # more than the ~0 ms of a frozen environment).
    t0 = cpu_usage_ns(iso, env_id)
    assert stream_env_id(invoke_ok(client, name, {"busy": 0.5}).payload) == env_id
    t1 = cpu_usage_ns(iso, env_id)
    assert t1 - t0 > 50_000_000, f"the thawed environment used only {(t1 - t0) / 1e6:.1f} ms"
    wait_until(lambda: is_frozen(iso, env_id), 5, what="the environment to be frozen again")


# --------------------------------------------------------------------------
# lifecycle: idle reclamation
# --------------------------------------------------------------------------


@NEEDS_ROOT
def test_idle_timeout_reclaims_environments(tmp_path):
    srv = start_server(tmp_path / "data", name="idle-timeout", extra_args=["--idle-timeout", "1"])
    fns = FunctionFactory(srv.client(), "idle")
    try:
        name = fns.python(zip_py(STREAM_APP))
        first = invoke_ok(srv.client(), name, LogType="Tail")
        assert health(srv)["environments"] == 1
        wait_until(lambda: health(srv)["environments"] == 0 and not env_cgroups(srv), 10,
                   what="the idle environment to be shut down")
        again = invoke_ok(srv.client(), name, LogType="Tail")
        assert reports(again)[-1]["init"] is not None, "expected a cold start after reclamation"
        assert again.payload != first.payload, "a new environment has a new log stream"
    finally:
        fns.cleanup()
    assert_released(srv)
    srv.stop()


@NEEDS_ROOT
def test_idle_environments_are_reclaimed_when_host_memory_is_short(tmp_path):
    """With --min-free-memory-mb above what the host has, every idle
    environment is reclaimed (least recently used first) within moments."""
    total_mb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) // 1024
    srv = start_server(tmp_path / "data", name="mem-pressure",
                       extra_args=["--min-free-memory-mb", str(total_mb * 2)])
    fns = FunctionFactory(srv.client(), "lru")
    try:
        names = [fns.python(zip_py(STREAM_APP)) for _ in range(2)]
        for n in names:
            invoke_ok(srv.client(), n)
        wait_until(lambda: health(srv)["idleEnvironments"] == 0 and health(srv)["environments"] == 0,
                   10, what="idle environments to be reclaimed under memory pressure")
        assert "reclaimed idle execution environments" in srv.log_text()
        # Invocations still work (each gets a fresh environment).
        again = invoke_ok(srv.client(), names[0], LogType="Tail")
        assert reports(again)[-1]["init"] is not None
    finally:
        fns.cleanup()
    assert_released(srv)
    srv.stop()


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------

FORK_BOMB = r'''
import os, time
def handler(event, context):
    n = 0
    try:
        while True:
            pid = os.fork()
            if pid == 0:
                time.sleep(600)
                os._exit(0)
            n += 1
    except OSError as e:
        raise RuntimeError(f"fork failed after {n} children: {e.strerror}")
'''


def test_fork_bomb_is_stopped_by_the_pids_limit(iso, fns):
    name = fns.python(zip_py(FORK_BOMB), MemorySize=2048, Timeout=120)
    other = fns.python(zip_py(STREAM_APP))
    client = iso.client()
    inv = invoke(client, name)
    assert inv.function_error == "Unhandled", inv
    msg = inv.payload["errorMessage"]
    m = re.search(r"fork failed after (\d+) children", msg)
    assert m, msg
    assert 900 <= int(m.group(1)) < 1024, msg
    assert "Resource temporarily unavailable" in msg, msg
    # The server and other functions carry on.
    invoke_ok(client, other)
    iso.assert_healthy()
    fns.cleanup()
    fns.created.clear()
    assert_released(iso, timeout=30)


FILL_TMP = r'''
import os
def handler(event, context):
    written = 0
    chunk = b"\0" * (1 << 20)
    try:
        with open("/tmp/fill", "wb", buffering=0) as f:
            while written < event["mb"] << 20:
                f.write(chunk)
                written += len(chunk)
    except OSError as e:
        return {"errno": e.errno, "written_mb": written >> 20,
                "size_mb": os.statvfs("/tmp").f_blocks * os.statvfs("/tmp").f_frsize >> 20}
    return {"errno": None, "written_mb": written >> 20}
'''


def test_filling_tmp_past_ephemeral_storage_gives_enospc(iso, fns):
    namespace_only(iso)
    # /tmp is memory-backed in stratus, so memory must exceed the storage.
    name = fns.python(zip_py(FILL_TMP), MemorySize=1024, Timeout=60,
                      EphemeralStorage={"Size": 512})
    out = invoke_ok(iso.client(), name, {"mb": 700}).payload
    assert out["errno"] == 28, out  # ENOSPC
    assert 500 <= out["written_mb"] <= 512, out
    assert out["size_mb"] == 512, out
    fns.cleanup()
    fns.created.clear()
    assert_released(iso)


def test_cpu_spin_times_out_and_is_cleaned_up(iso, fns):
    app = "def handler(event, context):\n    while True:\n        pass\n"
    name = fns.python(zip_py(app), Timeout=2)
    inv = invoke(iso.client(), name, LogType="Tail")
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Sandbox.Timedout", inv.payload
    assert "Task timed out after 2.00 seconds" in inv.payload["errorMessage"]
    # The timed-out environment is killed at once, not kept.
    assert_released(iso)


DROP_CONNECTION_BOOTSTRAP = r'''#!/usr/bin/env python3
# A broken custom runtime: takes an invocation, sends half a response, drops
# the connection, then exits or hangs.
import os, socket, sys, time
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
s = socket.create_connection((host, int(port)))
s.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(65536)
rid = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
       if l.lower().startswith(b"lambda-runtime-aws-request-id")][0]
r = socket.create_connection((host, int(port)))
r.sendall(b"POST /2018-06-01/runtime/invocation/" + rid + b"/response HTTP/1.1\r\nHost: api\r\n"
          b"Content-Length: 1000\r\n\r\n{\"partial\": ")
r.close()
s.close()
if os.environ["MODE"] == "exit":
    sys.exit(3)
time.sleep(3600)
'''


@pytest.mark.parametrize("mode", ["exit", "hang"])
def test_runtime_dropping_its_api_connection(iso, fns, mode):
    zip_bytes = make_zip({"bootstrap": DROP_CONNECTION_BOOTSTRAP}, executables=["bootstrap"])
    name = fns.create(zip_bytes, runtime="provided.al2023", handler="bootstrap", Timeout=3,
                      Environment={"Variables": {"MODE": mode}})["FunctionName"]
    other = fns.python(zip_py(STREAM_APP))
    client = iso.client()
    inv = invoke(client, name)
    assert inv.function_error == "Unhandled"
    if mode == "exit":
        assert inv.payload["errorType"] == "Runtime.ExitError", inv.payload
        assert inv.payload["errorMessage"].endswith("Runtime exited with error: exit status 3")
    else:
        assert inv.payload["errorType"] == "Sandbox.Timedout", inv.payload
    invoke_ok(client, other)
    fns.cleanup()
    fns.created.clear()
    assert_released(iso)


HUGE_LOG = r'''
import sys
def handler(event, context):
    sys.stdout.write("Z" * (1 << 20) + "\n")
    for _ in range(3):
        print("Q" * 300_000)
    return "done"
'''


def test_huge_log_lines_are_split(iso, fns):
    name = fns.python(zip_py(HUGE_LOG), Timeout=30)
    inv = invoke_ok(iso.client(), name)
    assert inv.payload == "done"
    iso.assert_healthy()
    def read_logs():
        proc = stratus_cli("logs", name, "--data-dir", str(iso.data_dir), timeout=60)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        # Log events are committed in batches: wait for the REPORT line.
        return lines if any(l.startswith("REPORT") for l in lines) else None
    lines = wait_until(read_logs, 10, interval=0.2, what="the invocation's log events")
    assert max(len(l.encode()) for l in lines) <= 256 * 1024
    # Every chunk is its own event; nothing is lost.
    assert sum(len(l) for l in lines if set(l) == {"Z"}) == 1 << 20
    assert sum(len(l) for l in lines if set(l) == {"Q"}) == 900_000
    assert len([l for l in lines if set(l) == {"Z"}]) == 4  # 1 MiB in 256 KiB events
    fns.cleanup()
    fns.created.clear()
    assert_released(iso)


def test_environments_are_released_when_functions_go(iso, fns):
    """Many environments (concurrent invocations), then DeleteFunction: every
    process, cgroup and Runtime API listener is released."""
    app = "import time\ndef handler(event, context):\n    time.sleep(0.5)\n    return 1\n"
    name = fns.python(zip_py(app))
    client_factory = iso.client
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: invoke_ok(client_factory(), name).payload, range(6)))
    assert results == [1] * 6
    assert health(iso)["environments"] >= 2
    assert len(env_cgroups(iso)) >= 2
    assert listening_sockets(iso.proc.pid) >= 3
    fns.cleanup()
    fns.created.clear()
    assert_released(iso)
