"""Test harness for stratus's end-to-end tests: the server under test, zips,
clients, invoke helpers, AWS-documented formats. Fixtures are in conftest.py."""

from __future__ import annotations

import atexit
import base64
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = REPO_ROOT / "tests" / "functions"
BUILD_DIR = REPO_ROOT / "tests" / ".build"
STRATUS_BIN = Path(os.environ.get("STRATUS_BIN", REPO_ROOT / "target" / "debug" / "stratus"))
LOG_DIR = Path(os.environ.get("STRATUS_TEST_LOG_DIR", BUILD_DIR / "e2e-logs"))

ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/lambda-role"
PYTHON_RUNTIME = "python3.12"
NODE_RUNTIME = "nodejs20.x"
PROVIDED_RUNTIME = "provided.al2023"

# AWS documented formats.
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
UUID_IN_TEXT_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LAST_MODIFIED_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
LOG_STREAM_RE = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")
REPORT_RE = re.compile(
    r"REPORT RequestId: (?P<id>[0-9a-f-]{36})\t"
    r"Duration: (?P<duration>\d+\.\d{2}) ms\t"
    r"Billed Duration: (?P<billed>\d+) ms\t"
    r"Memory Size: (?P<memory>\d+) MB\t"
    r"Max Memory Used: (?P<max_memory>\d+) MB\t"
    r"(?:Init Duration: (?P<init>\d+\.\d{2}) ms\t)?"
)

# The Invoke payload quota (request and response): 6 MB = 6291456 bytes.
PAYLOAD_LIMIT = 6 * 1024 * 1024

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
for _var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
    os.environ.pop(_var, None)


# --------------------------------------------------------------------------
# helpers: ports, zips, names
# --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_zip(files: dict[str, bytes | str], *, executables: Iterable[str] = (),
             symlinks: dict[str, str] | None = None,
             compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """An in-memory zip. `executables` get mode 0755; `symlinks` maps an entry
    name to its link target (stored as a Unix symlink entry, like `zip -y`)."""
    buf = io.BytesIO()
    execs = set(executables)
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = compression
            mode = 0o755 if name in execs else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.create_system = 3  # Unix, so the mode bits are honoured
            zf.writestr(info, content)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            info.create_system = 3
            zf.writestr(info, target)
    return buf.getvalue()


def sha256_b64(data: bytes) -> str:
    """CodeSha256 as Lambda reports it: base64 of the SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def unique_name(prefix: str = "fn") -> str:
    prefix = re.sub(r"[^A-Za-z0-9-]", "-", prefix).strip("-")[:40] or "fn"
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def function_arn(name: str, region: str = REGION) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"


def error_code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def error_status(exc: ClientError) -> int:
    return exc.response["ResponseMetadata"]["HTTPStatusCode"]


def error_message(exc: ClientError) -> str:
    return exc.response["Error"].get("Message", "")


def assert_client_error(excinfo, codes: str | Iterable[str], status: int) -> ClientError:
    """Check a ClientError's code (one of `codes`) and HTTP status, and that it
    carries a message a person can read."""
    exc = excinfo.value if hasattr(excinfo, "value") else excinfo
    wanted = {codes} if isinstance(codes, str) else set(codes)
    assert isinstance(exc, ClientError), f"expected a ClientError, got {exc!r}"
    assert error_code(exc) in wanted, (
        f"error code {error_code(exc)!r} (HTTP {error_status(exc)}) not in {sorted(wanted)}; "
        f"message: {error_message(exc)!r}"
    )
    assert error_status(exc) == status, (
        f"HTTP status {error_status(exc)} != {status} for {error_code(exc)}: {error_message(exc)!r}"
    )
    assert error_message(exc).strip(), f"{error_code(exc)} has an empty message"
    return exc


def parse_reports(log_text: str) -> list[dict[str, Any]]:
    return [m.groupdict() for m in REPORT_RE.finditer(log_text)]


# --------------------------------------------------------------------------
# the server under test
# --------------------------------------------------------------------------


class StratusServer:
    """One `stratus server` process. Its stdout and stderr are copied to a
    log file; readiness is the stdout line `listening on http://HOST:PORT`."""

    READY_RE = re.compile(r"listening on (http://[^\s]+)")
    _counter = 0

    def __init__(self, data_dir: Path, *, name: str = "server", extra_args: Iterable[str] = (),
                 env: dict[str, str] | None = None, use_env_config: bool = False):
        StratusServer._counter += 1
        self.data_dir = Path(data_dir)
        self.name = name
        self.extra_args = list(extra_args)
        self.env = env
        self.use_env_config = use_env_config
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{worker}-{os.getpid()}-{StratusServer._counter:02d}-{name}.log"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.url: str | None = None
        self._log_lock = threading.Lock()
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self._log_file = None
        self.starts = 0
        self.leftover_pids: list[int] = []

    # -- lifecycle --

    def start(self, timeout: float = 30.0) -> "StratusServer":
        if not STRATUS_BIN.exists():
            pytest.fail(
                f"stratus binary not found at {STRATUS_BIN}; build it first "
                f"(`cargo build -p stratus`, or run ./tests/run)", pytrace=False)
        self.port = free_port()
        listen = f"127.0.0.1:{self.port}"
        cmd = [str(STRATUS_BIN), "server"]
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        if os.environ.get("STRATUS_TEST_RUST_LOG"):
            env["RUST_LOG"] = os.environ["STRATUS_TEST_RUST_LOG"]
        if self.env:
            env.update(self.env)
        if self.use_env_config:
            env["STRATUS_LISTEN"] = listen
            env["STRATUS_DATA_DIR"] = str(self.data_dir)
        else:
            cmd += ["--listen", listen, "--data-dir", str(self.data_dir)]
        cmd += self.extra_args
        # Isolation mode of servers that do not pick one: STRATUS_TEST_ISOLATION
        # (`process` or `namespace`; unset: the server's default, namespace
        # where the host allows it). test_isolation.py covers both modes.
        iso = os.environ.get("STRATUS_TEST_ISOLATION")
        if iso and not any(a.startswith("--isolation") for a in self.extra_args):
            cmd += ["--isolation", iso]
        # The test venv (python_ric's bootstrap runs its python) is visible
        # read-only inside namespace environments.
        env.setdefault("STRATUS_SANDBOX_PATHS", f"{sys.prefix}:{sys.base_prefix}")
        self._ready.clear()
        self.url = None
        self._log_file = open(self.log_path, "a", encoding="utf-8", errors="replace")
        self._write_log(f"=== start #{self.starts + 1}: {' '.join(cmd)}"
                        f"{' (STRATUS_LISTEN/STRATUS_DATA_DIR from env)' if self.use_env_config else ''}\n")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            env=env, cwd=str(self.data_dir.parent), start_new_session=True)
        self.starts += 1
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, "", True), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, "", False), daemon=True),
        ]
        for t in self._threads:
            t.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                for t in self._threads:
                    t.join(timeout=2)
                raise RuntimeError(
                    f"stratus server exited with status {self.proc.returncode} before it printed "
                    f"'listening on http://...'. Command: {' '.join(cmd)}\n"
                    f"--- server log ({self.log_path}) ---\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"stratus server did not print 'listening on http://...' within {timeout:.0f} s. "
                    f"Command: {' '.join(cmd)}\n--- server log ({self.log_path}) ---\n{self.log_tail()}")
        return self

    def _pump(self, stream, prefix: str, is_stdout: bool):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            self._write_log(prefix + line)
            if is_stdout and not self._ready.is_set():
                m = self.READY_RE.search(line)
                if m:
                    self.url = m.group(1).rstrip("/.,;")
                    self._ready.set()
        stream.close()

    def _write_log(self, text: str):
        with self._log_lock:
            if self._log_file and not self._log_file.closed:
                self._log_file.write(text)
                self._log_file.flush()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Signal the server and wait for it. Returns its exit status, or None
        if it had to be killed because it did not exit within `timeout`."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._write_log(f"=== did not exit within {timeout} s of signal {sig}; killing\n")
                self.kill()
                return None
        self._finish()
        return self.proc.returncode

    def kill(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._finish()

    def _finish(self):
        for t in self._threads:
            t.join(timeout=2)
        # Anything left in the server's process group (execution environments
        # it failed to clean up) is recorded, then ended so it cannot leak
        # across tests. Tests assert on `leftover_pids`.
        if self.proc is not None:
            self.leftover_pids = group_pids(self.proc.pid)
            if self.leftover_pids:
                self._write_log(f"=== processes left in the server's process group: {self.leftover_pids}\n")
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._write_log(f"=== exited with status {self.proc.returncode if self.proc else None}\n")
        with self._log_lock:
            if self._log_file:
                self._log_file.close()
                self._log_file = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- logs --

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_text(self, since: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, since: int = 0, max_lines: int = 150, max_chars: int = 20000) -> str:
        lines = self.log_text(since).splitlines()
        text = "\n".join(lines[-max_lines:])
        return text[-max_chars:]

    # -- clients --

    def client(self, service: str = "lambda", region: str = REGION, *,
               validate: bool = True, read_timeout: int = 120):
        return make_client(self.url, service, region, validate=validate, read_timeout=read_timeout)

    def health(self, timeout: float = 5.0):
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/_stratus/health", timeout=timeout) as r:
            return r.status, r.read()

    def assert_healthy(self):
        assert self.running, f"stratus server is no longer running (status {self.proc.returncode})"
        status, body = self.health()
        assert status == 200, f"/_stratus/health returned {status}"
        json.loads(body)


def group_pids(pgid: int) -> list[int]:
    """Live processes whose process group is `pgid`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        # fields[0] is the state, fields[2] the process group id
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(entry))
    return pids


_SERVERS: list[StratusServer] = []


def _kill_all_servers():
    # Last resort (an interrupted run): no server of this test process survives it.
    for srv in _SERVERS:
        if srv.proc is not None and srv.proc.poll() is None:
            try:
                os.killpg(srv.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


atexit.register(_kill_all_servers)


# The AWS SDKs that stratus provides to functions (`stratus sdk install`) live
# in DATA_DIR/sdk. The tests install them once into this cache and link each
# server's DATA_DIR/sdk to it, instead of installing them per data dir.
SDK_CACHE = BUILD_DIR / "sdk-cache"


def link_sdk(data_dir: Path):
    (SDK_CACHE / "sdk").mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    link = data_dir / "sdk"
    if not link.exists() and not link.is_symlink():
        link.symlink_to(SDK_CACHE / "sdk", target_is_directory=True)


def ensure_sdk_installed():
    """Run `stratus sdk install --data-dir SDK_CACHE` once (per machine, and
    safely across xdist workers)."""
    import fcntl

    SDK_CACHE.mkdir(parents=True, exist_ok=True)
    stamp = SDK_CACHE / ".installed"
    with open(SDK_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():
            return
        proc = subprocess.run([str(STRATUS_BIN), "sdk", "install", "--data-dir", str(SDK_CACHE)],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            pytest.fail(f"`stratus sdk install` failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                        f"{proc.stderr[-5000:]}", pytrace=False)
        stamp.write_text(proc.stdout)


def start_server(data_dir: Path, *, sdk: bool = False, **kwargs) -> StratusServer:
    data_dir = Path(data_dir)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if sdk:
        link_sdk(data_dir)
    srv = StratusServer(data_dir, **kwargs)
    _SERVERS.append(srv)
    return srv.start()


def make_client(endpoint: str, service: str = "lambda", region: str = REGION, *,
                validate: bool = True, read_timeout: int = 120):
    cfg = Config(
        region_name=region,
        retries={"max_attempts": 1, "mode": "standard"},  # no retries: see every answer as it is
        connect_timeout=10,
        read_timeout=read_timeout,
        parameter_validation=validate,
    )
    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=region)
    return session.client(service, endpoint_url=endpoint, config=cfg)


def signed_request(url: str, method: str, path: str, body: bytes = b"", *,
                   region: str = REGION, headers: dict[str, str] | None = None,
                   timeout: float = 60.0):
    """Send a raw SigV4-signed request (for bodies boto3 would refuse to
    build). Returns (status, headers, body bytes)."""
    import urllib.error
    import urllib.request

    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    req = AWSRequest(method=method, url=url + path, data=body, headers=hdrs)
    SigV4Auth(Credentials("test", "test"), "lambda", region).add_auth(req)
    prepared = req.prepare()
    ureq = urllib.request.Request(prepared.url, data=body if method != "GET" else None,
                                  method=method, headers=dict(prepared.headers.items()))
    try:
        with urllib.request.urlopen(ureq, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def raw_error_code(headers: dict[str, str], body: bytes) -> str | None:
    """The error code of a rest-json error answer, read as botocore reads it."""
    code = headers.get("x-amzn-errortype")
    if not code:
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            doc = {}
        code = doc.get("__type") or doc.get("code") or doc.get("Code")
    if code:
        code = code.split(":")[0].split("#")[-1]
    return code


# --------------------------------------------------------------------------
# function packages
# --------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    return path.read_bytes()


# The PATH an execution environment starts with (AWS's, then the host's).
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


def vendored_awslambdaric() -> Path:
    """awslambdaric (the version in this venv) and its dependencies, installed
    with `pip install --target` for the python3 an execution environment finds
    on its PATH -- the way a custom runtime is packaged for AWS. Cached in
    tests/.build/awslambdaric-pyX.Y."""
    import fcntl
    from importlib.metadata import PackageNotFoundError, version

    try:
        ric_version = version("awslambdaric")
    except PackageNotFoundError:
        pytest.fail("awslambdaric is not installed in the test venv; "
                    "pip install -r tests/requirements.txt (./tests/run does it)", pytrace=False)
    probe = subprocess.run(["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, env={"PATH": SANDBOX_PATH})
    if probe.returncode != 0:
        pytest.fail(f"no python3 on {SANDBOX_PATH} for the awslambdaric function: {probe.stderr}",
                    pytrace=False)
    py = probe.stdout.strip()
    target = BUILD_DIR / f"awslambdaric-{ric_version}-py{py}"
    done = target / ".complete"
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with open(BUILD_DIR / ".awslambdaric.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return target
        shutil.rmtree(target, ignore_errors=True)
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-compile", "--target", str(target), "--only-binary=:all:",
               "--python-version", py, "--implementation", "cp",
               "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
               f"awslambdaric=={ric_version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.fail(f"installing awslambdaric for python {py} failed:\n{' '.join(cmd)}\n"
                        f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}", pytrace=False)
        done.write_text(" ".join(cmd))
    return target


RUST_NOOP_DIR = FUNCTIONS_DIR / "rust_noop"
RUST_NOOP_TARGET = BUILD_DIR / "rust_noop"
RUST_NOOP_BIN = RUST_NOOP_TARGET / "release" / "bootstrap"


def build_rust_noop() -> Path:
    """Build tests/functions/rust_noop (release) unless tests/run already did."""
    cargo = shutil.which("cargo")
    if cargo is None:
        if RUST_NOOP_BIN.exists():
            return RUST_NOOP_BIN
        pytest.fail("cargo not found: the Rust test function cannot be built", pytrace=False)
    proc = subprocess.run(
        [cargo, "build", "--release", "--locked", "--manifest-path", str(RUST_NOOP_DIR / "Cargo.toml"),
         "--target-dir", str(RUST_NOOP_TARGET)],
        capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"building tests/functions/rust_noop failed:\n{proc.stderr[-5000:]}", pytrace=False)
    return RUST_NOOP_BIN

# --------------------------------------------------------------------------
# creating functions
# --------------------------------------------------------------------------


def wait_for_function(client, name: str, *, timeout: float = 60.0) -> dict:
    """Poll GetFunctionConfiguration until State is Active and any update is
    done (LastUpdateStatus Successful), as boto3's function_active_v2 /
    function_updated_v2 waiters do; fail fast on Failed."""
    deadline = time.monotonic() + timeout
    conf: dict = {}
    while time.monotonic() < deadline:
        conf = client.get_function_configuration(FunctionName=name)
        state, update = conf.get("State"), conf.get("LastUpdateStatus")
        if state == "Failed" or update == "Failed":
            raise AssertionError(
                f"function {name} failed: State={state} ({conf.get('StateReasonCode')}: "
                f"{conf.get('StateReason')}), LastUpdateStatus={update} "
                f"({conf.get('LastUpdateStatusReasonCode')}: {conf.get('LastUpdateStatusReason')})")
        if state == "Active" and update in (None, "Successful"):
            return conf
        time.sleep(0.05)
    raise AssertionError(f"function {name} not Active+Successful after {timeout} s: "
                         f"State={conf.get('State')} LastUpdateStatus={conf.get('LastUpdateStatus')}")


class FunctionFactory:
    """Creates functions with unique names and deletes them afterwards."""

    def __init__(self, client, prefix: str):
        self.client = client
        self.prefix = prefix
        self.created: list[tuple[Any, str]] = []

    def create(self, zip_bytes: bytes, *, runtime: str = PYTHON_RUNTIME, handler: str = "app.handler",
               name: str | None = None, wait: bool = True, client=None, **kwargs) -> dict:
        client = client or self.client
        name = name or unique_name(self.prefix)
        resp = client.create_function(
            FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler,
            Code={"ZipFile": zip_bytes}, **kwargs)
        self.created.append((client, name))
        if wait:
            wait_for_function(client, name)
        return resp

    def python(self, zip_bytes: bytes, **kwargs) -> str:
        return self.create(zip_bytes, **kwargs)["FunctionName"]

    def cleanup(self):
        for client, name in self.created:
            try:
                client.delete_function(FunctionName=name)
            except Exception:
                pass

# --------------------------------------------------------------------------
# invoking
# --------------------------------------------------------------------------


class Invocation:
    def __init__(self, resp: dict, raw: bytes):
        self.response = resp
        self.raw = raw
        self.status = resp["StatusCode"]
        self.function_error = resp.get("FunctionError")
        self.executed_version = resp.get("ExecutedVersion")
        self.request_id = resp["ResponseMetadata"].get("RequestId")
        self.headers = resp["ResponseMetadata"].get("HTTPHeaders", {})
        log_result = resp.get("LogResult")
        self.log = base64.b64decode(log_result).decode("utf-8", errors="replace") if log_result else None
        self.log_result_b64 = log_result

    @property
    def invocation_id(self) -> str:
        """The request id the function saw (context.aws_request_id), taken from
        what the function returned, else from the error message or the tail
        log. Tests about logs use this one, so that a wrong x-amzn-RequestId
        header fails only the test that checks the header."""
        try:
            body = json.loads(self.raw) if self.raw else None
        except ValueError:
            body = None
        if isinstance(body, dict):
            for source in (body, body.get("context") if isinstance(body.get("context"), dict) else {}):
                for key in ("aws_request_id", "awsRequestId", "requestId", "request_id"):
                    if isinstance(source.get(key), str) and UUID_RE.match(source[key]):
                        return source[key]
            m = UUID_IN_TEXT_RE.search(str(body.get("errorMessage", "")))
            if m:
                return m.group(0)
        if self.log:
            m = re.search(r"START RequestId: (\S+)", self.log)
            if m:
                return m.group(1)
        return self.request_id

    @property
    def payload(self) -> Any:
        try:
            return json.loads(self.raw)
        except ValueError as e:
            raise AssertionError(f"invoke payload is not JSON: {self.raw[:500]!r}") from e

    def __repr__(self):
        return (f"Invocation(status={self.status}, function_error={self.function_error}, "
                f"request_id={self.request_id}, payload={self.raw[:300]!r})")


def invoke(client, name: str, event: Any = None, *, raw: bytes | None = None, **kwargs) -> Invocation:
    body = raw if raw is not None else json.dumps({} if event is None else event).encode()
    resp = client.invoke(FunctionName=name, Payload=body, **kwargs)
    data = resp["Payload"].read()
    return Invocation(resp, data)


def invoke_ok(client, name: str, event: Any = None, **kwargs) -> Invocation:
    inv = invoke(client, name, event, **kwargs)
    assert inv.status == 200 and inv.function_error is None, (
        f"invoke of {name} failed: {inv!r}" + (f"\n--- LogResult ---\n{inv.log}" if inv.log else ""))
    return inv


# --------------------------------------------------------------------------
# the AWS CLI and the stratus CLI
# --------------------------------------------------------------------------


def aws_cli_path() -> str:
    candidate = Path(sys.executable).parent / "aws"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("aws")
    if not found:
        pytest.fail("the AWS CLI (pip install awscli) is not installed", pytrace=False)
    return found


class AwsCli:
    def __init__(self, endpoint: str, region: str = REGION):
        self.endpoint = endpoint
        self.region = region

    _version: str | None = None

    @property
    def version(self) -> str:
        if AwsCli._version is None:
            proc = subprocess.run([aws_cli_path(), "--version"], capture_output=True, text=True,
                                  env=self.env(), timeout=60)
            AwsCli._version = (proc.stdout + proc.stderr).strip()
        return AwsCli._version

    @property
    def payload_args(self) -> list[str]:
        """AWS CLI v2 reads blob arguments as base64 unless told
        `--cli-binary-format raw-in-base64-out`; v1 (PyPI awscli) sends the
        text as it is and has no such option."""
        if self.version.startswith("aws-cli/1."):
            return []
        return ["--cli-binary-format", "raw-in-base64-out"]

    def env(self, **extra) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        })
        env.update(extra)
        return env

    def run(self, *args: str, check: bool = True, endpoint: bool = True, cwd: str | None = None,
            env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [aws_cli_path()]
        if endpoint:
            cmd += ["--endpoint-url", self.endpoint]
        cmd += ["--output", "json", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd,
                              env=env or self.env(), timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"`aws {' '.join(args)}` exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def __call__(self, *args: str, **kwargs) -> Any:
        """Run `aws --endpoint-url URL --output json ARGS...`; parsed JSON stdout."""
        proc = self.run(*args, **kwargs)
        out = proc.stdout.strip()
        return json.loads(out) if out else None


def stratus_cli(*args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(STRATUS_BIN), *args], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


class EnvironmentProbe:
    """Tells when an execution environment ends, whatever namespaces it runs
    in: the function's `hold` action (tests/functions/python_basic) opens a
    TCP connection to this listener and keeps it for the life of its runtime
    process; the connection closes when that process ends."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.conns: dict[str, socket.socket] = {}

    def event(self) -> dict:
        return {"action": "hold", "host": "127.0.0.1", "port": self.port}

    def accept(self, timeout: float = 10.0) -> str:
        """The env id of the next environment that connects."""
        self.listener.settimeout(timeout)
        conn, _ = self.listener.accept()
        conn.settimeout(timeout)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = conn.recv(64)
            if not chunk:
                break
            buf += chunk
        env_id = buf.decode().strip()
        self.conns[env_id] = conn
        return env_id

    def alive(self, env_id: str) -> bool:
        conn = self.conns[env_id]
        conn.setblocking(False)
        try:
            data = conn.recv(1)
            return data != b""  # b"" = closed by the peer
        except BlockingIOError:
            return True
        except (ConnectionResetError, OSError):
            return False
        finally:
            conn.setblocking(True)

    def wait_closed(self, env_id: str, timeout: float, what: str = "the environment to end"):
        wait_until(lambda: not self.alive(env_id), timeout=timeout, what=what)

    def close(self):
        for conn in self.conns.values():
            conn.close()
        self.listener.close()


def pid_alive(pid: int) -> bool:
    """True if `pid` is a live (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
