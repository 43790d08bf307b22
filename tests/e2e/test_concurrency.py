"""The concurrency model: the account quota (`--account-concurrency`, AWS's
default 1,000), GetAccountSettings, reserved concurrency
(Put/Get/DeleteFunctionConcurrency), throttling with 429
TooManyRequestsException and AWS's Reason, and the concurrency scaling rate
(`--scaling-rate`).

Expected values from the Lambda developer guide ("Lambda function scaling",
"Configuring reserved concurrency", "Lambda quotas") and botocore's model:
the default quota is 1,000; at least 100 stays unreserved ("You can reserve up
to the Unreserved account concurrency value minus 100"); reserved concurrency
0 throttles every invocation; throttled synchronous invocations get HTTP 429
`TooManyRequestsException` whose `Reason` is
`ReservedFunctionConcurrentInvocationLimitExceeded` (function level) or
`ConcurrentInvocationLimitExceeded` (account level)."""

import threading
import time

import pytest
from botocore.exceptions import ClientError
from harness import (
    FUNCTIONS_DIR,
    AwsCli,
    FunctionFactory,
    assert_client_error,
    error_message,
    invoke,
    invoke_ok,
    make_client,
    make_zip,
    start_server,
)

# AWS's message for exceeding the minimum unreserved concurrency.
BELOW_MINIMUM = ("Specified ReservedConcurrentExecutions for function decreases account's "
                 "UnreservedConcurrentExecution below its minimum value of [{}].")


def reason(exc: ClientError) -> str | None:
    return exc.response.get("Reason")


def assert_throttled(exc: ClientError, expected_reason: str):
    assert_client_error(exc, "TooManyRequestsException", 429)
    assert reason(exc) == expected_reason, exc.response


def parallel_invokes(url: str, name: str, n: int, event: dict, **kwargs) -> list:
    """`n` invocations started together (a barrier), each on its own client.
    Returns, in order, an Invocation or the ClientError it raised."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def one(i):
        client = make_client(url, read_timeout=120)
        barrier.wait()
        try:
            results[i] = invoke(client, name, event, **kwargs)
        except ClientError as e:
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def split(results):
    ok = [r for r in results if not isinstance(r, ClientError)]
    errors = [r for r in results if isinstance(r, ClientError)]
    return ok, errors


# --------------------------------------------------------------------------
# Account settings and reserved concurrency (the session server: 1,000)
# --------------------------------------------------------------------------


def test_account_settings_report_the_quota(lambda_client, functions):
    limit = lambda_client.get_account_settings()["AccountLimit"]
    assert limit["ConcurrentExecutions"] == 1000
    before = limit["UnreservedConcurrentExecutions"]
    name = functions.python(_zip())
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=25)
    after = lambda_client.get_account_settings()["AccountLimit"]
    assert after["ConcurrentExecutions"] == 1000
    assert after["UnreservedConcurrentExecutions"] == before - 25
    lambda_client.delete_function_concurrency(FunctionName=name)
    assert lambda_client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == before


def test_reserved_concurrency_crud(lambda_client, functions):
    name = functions.python(_zip())
    assert "ReservedConcurrentExecutions" not in lambda_client.get_function_concurrency(FunctionName=name)
    assert "Concurrency" not in lambda_client.get_function(FunctionName=name)
    put = lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=7)
    assert put["ReservedConcurrentExecutions"] == 7
    assert lambda_client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 7
    assert lambda_client.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 7}
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)
    assert lambda_client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 3
    resp = lambda_client.delete_function_concurrency(FunctionName=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert "ReservedConcurrentExecutions" not in lambda_client.get_function_concurrency(FunctionName=name)


def test_reserved_concurrency_bad_input(lambda_client, lambda_client_novalidate, functions, check_server):
    name = functions.python(_zip())
    limit = lambda_client.get_account_settings()["AccountLimit"]
    unreserved = limit["UnreservedConcurrentExecutions"]
    with pytest.raises(ClientError) as e:
        lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=unreserved - 99)
    exc = assert_client_error(e, "InvalidParameterValueException", 400)
    assert error_message(exc) == BELOW_MINIMUM.format(100)
    # Leaving exactly 100 is allowed; then nothing more can be reserved.
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=unreserved - 100)
    assert lambda_client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 100
    other = functions.python(_zip())
    with pytest.raises(ClientError) as e:
        lambda_client.put_function_concurrency(FunctionName=other, ReservedConcurrentExecutions=1)
    assert_client_error(e, "InvalidParameterValueException", 400)
    lambda_client.delete_function_concurrency(FunctionName=name)

    with pytest.raises(ClientError) as e:
        lambda_client_novalidate.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=-1)
    assert_client_error(e, "ValidationException", 400)
    with pytest.raises(ClientError) as e:
        lambda_client.put_function_concurrency(FunctionName=f"{name}:1", ReservedConcurrentExecutions=1)
    assert_client_error(e, "InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as e:
        lambda_client.put_function_concurrency(FunctionName="no-such-function-x", ReservedConcurrentExecutions=1)
    assert_client_error(e, "ResourceNotFoundException", 404)
    # Nothing changed.
    assert "ReservedConcurrentExecutions" not in lambda_client.get_function_concurrency(FunctionName=name)
    assert lambda_client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == unreserved


def test_reserved_zero_throttles_every_invocation(lambda_client, functions, check_server):
    name = functions.python(_zip())
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    for _ in range(3):
        with pytest.raises(ClientError) as e:
            invoke(lambda_client, name, {"action": "echo"})
        assert_throttled(e.value, "ReservedFunctionConcurrentInvocationLimitExceeded")
        assert error_message(e.value) == "Rate Exceeded."
    lambda_client.delete_function_concurrency(FunctionName=name)
    assert invoke_ok(lambda_client, name, {"action": "echo"}).status == 200


def test_reserved_concurrency_caps_parallel_invocations(server, lambda_client, functions):
    """Reserved concurrency 2, five invocations of a 3-second function at
    once: exactly two run, three are throttled with the function-level
    Reason."""
    name = functions.python(_zip(), Timeout=30)
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    results = parallel_invokes(server.url, name, 5, {"action": "sleep", "seconds": 3})
    ok, errors = split(results)
    assert len(ok) == 2, results
    assert all(r.status == 200 and r.function_error is None for r in ok), ok
    assert len(errors) == 3, results
    for e in errors:
        assert_throttled(e, "ReservedFunctionConcurrentInvocationLimitExceeded")
    # Capacity comes back when they finish.
    assert invoke_ok(lambda_client, name, {"action": "echo"}).status == 200


def test_concurrency_cli_as_in_the_seed(tmp_path):
    """Section 2.4 of the seed, as written (`my-api-function`, 200)."""
    srv = start_server(tmp_path / "data", name="seed-2-4")
    try:
        factory = FunctionFactory(srv.client(), "seed")
        factory.create(_zip(), name="my-api-function")
        cli = AwsCli(srv.url)
        put = cli("lambda", "put-function-concurrency", "--function-name", "my-api-function",
                  "--reserved-concurrent-executions", "200")
        assert put == {"ReservedConcurrentExecutions": 200}
        got = cli("lambda", "get-function-concurrency", "--function-name", "my-api-function")
        assert got == {"ReservedConcurrentExecutions": 200}
        settings = cli("lambda", "get-account-settings")
        assert settings["AccountLimit"]["ConcurrentExecutions"] == 1000
        assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 800
        assert cli("lambda", "delete-function-concurrency", "--function-name", "my-api-function") is None
        assert not cli("lambda", "get-function-concurrency", "--function-name", "my-api-function")
    finally:
        srv.stop()


# --------------------------------------------------------------------------
# Servers of their own: a small account quota, a slow scaling rate
# --------------------------------------------------------------------------


def test_account_concurrency_limit(tmp_path):
    """`--account-concurrency 3`: five invocations at once of a slow function
    without reserved concurrency: three run, two are throttled with the
    account-level Reason."""
    srv = start_server(tmp_path / "data", name="account-3", extra_args=["--account-concurrency", "3"])
    try:
        client = srv.client()
        limit = client.get_account_settings()["AccountLimit"]
        assert limit["ConcurrentExecutions"] == 3
        assert limit["UnreservedConcurrentExecutions"] == 3
        factory = FunctionFactory(client, "acct")
        name = factory.python(_zip(), Timeout=30)
        results = parallel_invokes(srv.url, name, 5, {"action": "sleep", "seconds": 3})
        ok, errors = split(results)
        assert len(ok) == 3, results
        assert all(r.function_error is None for r in ok), [r.raw for r in ok]
        assert len(errors) == 2, results
        for e in errors:
            assert_throttled(e, "ConcurrentInvocationLimitExceeded")
        # Unreserved functions share the pool: with two invocations of one
        # function running, a second function gets one slot, not more.
        other = factory.python(_zip(), Timeout=30)
        barrier_results = []

        def slow(fn):
            barrier_results.append(parallel_invokes(srv.url, fn, 2, {"action": "sleep", "seconds": 3}))

        t = threading.Thread(target=slow, args=(name,))
        t.start()
        time.sleep(1.0)  # the two invocations of `name` are running
        ok2, errors2 = split(parallel_invokes(srv.url, other, 2, {"action": "sleep", "seconds": 1}))
        t.join()
        assert len(ok2) == 1 and len(errors2) == 1, (ok2, errors2)
        assert_throttled(errors2[0], "ConcurrentInvocationLimitExceeded")
        # With a quota below 100 nothing can be reserved: the whole quota is
        # the minimum that stays unreserved.
        with pytest.raises(ClientError) as e:
            client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
        exc = assert_client_error(e, "InvalidParameterValueException", 400)
        assert error_message(exc) == BELOW_MINIMUM.format(3)
        factory.cleanup()
    finally:
        srv.stop()


def test_scaling_rate(tmp_path):
    """`--scaling-rate 2`: a function may start two new environments per 10
    seconds; a third invocation needing a new environment at once is
    throttled (429), warm environments are reused without limit."""
    srv = start_server(tmp_path / "data", name="scaling-2", extra_args=["--scaling-rate", "2"])
    try:
        client = srv.client()
        factory = FunctionFactory(client, "rate")
        name = factory.python(_zip(), Timeout=30)
        results = parallel_invokes(srv.url, name, 3, {"action": "sleep", "seconds": 2})
        ok, errors = split(results)
        assert len(ok) == 2 and len(errors) == 1, results
        assert all(r.function_error is None for r in ok), [r.raw for r in ok]
        assert_throttled(errors[0], "FunctionInvocationRateLimitExceeded")
        # Warm environments need no new ones.
        for _ in range(5):
            invoke_ok(client, name, {"action": "echo"})
        factory.cleanup()
    finally:
        srv.stop()


def _zip() -> bytes:
    return make_zip({"app.py": (FUNCTIONS_DIR / "python_basic" / "app.py").read_bytes()})
