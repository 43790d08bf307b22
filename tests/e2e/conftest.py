"""Fixtures for stratus's end-to-end tests.

The tests start the real `stratus server` binary on a free port with a
temporary data directory, and drive it with real clients (boto3, the AWS CLI)
and real function code (tests/functions/). Expected values come from AWS's
documentation and botocore's service model (lambda 2015-03-31), never from
what stratus happens to print.

Environment variables:
  STRATUS_BIN            the stratus binary (default: target/debug/stratus)
  STRATUS_TEST_LOG_DIR   where server logs go (default: tests/.build/e2e-logs)
  STRATUS_TEST_RUST_LOG  RUST_LOG for the servers under test (e.g. debug)
  STRATUS_TESTS_SKIP_RUST_BUILD=1  use tests/.build/rust_noop as built (tests/run sets it)

The helpers (server, zips, invoke, AWS CLI) are in harness.py.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

import pytest

from harness import (
    _SERVERS,
    FUNCTIONS_DIR,
    RUST_NOOP_BIN,
    AwsCli,
    EnvironmentProbe,
    FunctionFactory,
    StratusServer,
    build_rust_noop,
    vendored_awslambdaric,
    ensure_sdk_installed,
    make_zip,
    start_server,
)


def _read(path) -> bytes:
    return path.read_bytes()


# --------------------------------------------------------------------------
# pytest plumbing: show the server log of a failed test
# --------------------------------------------------------------------------


def pytest_runtest_setup(item):
    item._stratus_marks = {id(s): s.log_size() for s in _SERVERS}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    marks = getattr(item, "_stratus_marks", {})
    for srv in _SERVERS:
        if srv.proc is None:
            continue  # never started
        since = marks.get(id(srv), 0)
        if id(srv) in marks and srv.log_size() <= since:
            continue  # started before this test and silent during it
        text = srv.log_tail(since) or "(the server printed nothing during this test)"
        state = "running" if srv.running else f"exited with status {srv.proc.returncode if srv.proc else None}"
        rep.sections.append(
            (f"stratus server log during this test ({srv.name}, {state}, {srv.log_path})", text))


# --------------------------------------------------------------------------
# fixtures: server and clients
# --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _stop_servers_of_the_test():
    """A server a test started and did not stop (it failed half-way) is
    stopped when the test ends, so it cannot outlive the test."""
    before = len(_SERVERS)
    yield
    for srv in _SERVERS[before:]:
        if srv.running:
            srv.stop(timeout=10)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterable[StratusServer]:
    """One server for the session (per xdist worker)."""
    srv = start_server(tmp_path_factory.mktemp("stratus") / "data", name="session", sdk=True)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def endpoint(server) -> str:
    return server.url


@pytest.fixture(scope="session")
def lambda_client(server):
    return server.client()


@pytest.fixture(scope="session")
def lambda_client_novalidate(server):
    """A client whose botocore parameter validation is off, so out-of-range
    values (MemorySize 64, Timeout 0) reach the server as a user could send them."""
    return server.client(validate=False)


@pytest.fixture(scope="session")
def client_factory(server) -> Callable[..., Any]:
    return server.client


@pytest.fixture
def check_server(server):
    """After the test: the server still serves."""
    yield server
    server.assert_healthy()


@pytest.fixture(scope="session")
def python_zip() -> bytes:
    return make_zip({"app.py": _read(FUNCTIONS_DIR / "python_basic" / "app.py")})


@pytest.fixture(scope="session")
def node_zip() -> bytes:
    return make_zip({"index.js": _read(FUNCTIONS_DIR / "node_basic" / "index.js")})


@pytest.fixture(scope="session")
def node_esm_zip() -> bytes:
    return make_zip({"index.mjs": _read(FUNCTIONS_DIR / "node_basic" / "esm" / "index.mjs")})


@pytest.fixture(scope="session")
def python_ric_zip() -> bytes:
    """tests/functions/python_ric: app.py + bootstrap + awslambdaric and its
    dependencies, installed for the sandbox's python3 (see harness)."""
    vendor = vendored_awslambdaric()
    files = {
        "bootstrap": (FUNCTIONS_DIR / "python_ric" / "bootstrap").read_bytes(),
        "app.py": _read(FUNCTIONS_DIR / "python_basic" / "app.py"),
    }
    for path in sorted(vendor.rglob("*")):
        rel = path.relative_to(vendor).as_posix()
        if path.is_file() and "__pycache__" not in rel and not rel.startswith("bin/"):
            files[rel] = path.read_bytes()
    return make_zip(files, executables=["bootstrap"])


@pytest.fixture(scope="session")
def rust_zip() -> bytes:
    binary = RUST_NOOP_BIN
    if os.environ.get("STRATUS_TESTS_SKIP_RUST_BUILD") != "1" or not binary.exists():
        binary = build_rust_noop()
    return make_zip({"bootstrap": binary.read_bytes()}, executables=["bootstrap"])


@pytest.fixture(scope="session")
def provided_sdk(server):
    """boto3 and the AWS SDK for JavaScript v3, as stratus provides them to
    functions (`stratus sdk install`), available to the session server."""
    ensure_sdk_installed()


@pytest.fixture
def functions(lambda_client, request) -> Iterable[FunctionFactory]:
    factory = FunctionFactory(lambda_client, request.node.name.split("[")[0].replace("test_", "t-"))
    yield factory
    factory.cleanup()


@pytest.fixture(scope="module")
def module_functions(lambda_client, request) -> Iterable[FunctionFactory]:
    factory = FunctionFactory(lambda_client, request.module.__name__.split(".")[-1].replace("test_", "m-"))
    yield factory
    factory.cleanup()


@pytest.fixture
def env_probe():
    """See harness.EnvironmentProbe: the end of an execution environment."""
    probe = EnvironmentProbe()
    yield probe
    probe.close()


@pytest.fixture(scope="session")
def aws_cli(server) -> AwsCli:
    return AwsCli(server.url)


