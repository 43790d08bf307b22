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
import sys
import sysconfig
from typing import Any, Callable, Iterable

import pytest

from harness import (
    _SERVERS,
    FUNCTIONS_DIR,
    RUST_NOOP_BIN,
    AwsCli,
    FunctionFactory,
    StratusServer,
    build_rust_noop,
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
        since = marks.get(id(srv), 0)
        if id(srv) in marks and not srv.running and srv.log_size() <= since:
            continue  # a server of an earlier test, already stopped
        text = srv.log_tail(since) or "(the server printed nothing during this test)"
        state = "running" if srv.running else f"exited with status {srv.proc.returncode if srv.proc else None}"
        rep.sections.append(
            (f"stratus server log during this test ({srv.name}, {state}, {srv.log_path})", text))


# --------------------------------------------------------------------------
# fixtures: server and clients
# --------------------------------------------------------------------------


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
    try:
        import awslambdaric  # noqa: F401
    except ImportError:
        pytest.fail("awslambdaric is not installed in the test venv; "
                    "pip install -r tests/requirements.txt (./tests/run does it)", pytrace=False)
    site_packages = sysconfig.get_paths()["purelib"]
    platlib = sysconfig.get_paths()["platlib"]
    paths = site_packages if platlib == site_packages else f"{site_packages}:{platlib}"
    script = (FUNCTIONS_DIR / "python_ric" / "bootstrap").read_text()
    script = script.replace("@PYTHON@", sys.executable).replace("@SITE_PACKAGES@", paths)
    assert "@" not in script.replace("$@", ""), "unsubstituted placeholder in python_ric/bootstrap"
    return make_zip({
        "bootstrap": script,
        "app.py": _read(FUNCTIONS_DIR / "python_basic" / "app.py"),
    }, executables=["bootstrap"])


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


@pytest.fixture(scope="session")
def aws_cli(server) -> AwsCli:
    return AwsCli(server.url)


