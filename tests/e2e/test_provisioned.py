"""Provisioned concurrency: Put / Get / List / DeleteProvisionedConcurrencyConfig
on versions and aliases, environments initialized ahead of traffic, spillover,
replacement after a crash, the idle reaper leaving them alone, restart, and the
checks against reserved and unreserved concurrency.

Expected values from the Lambda developer guide ("Configuring provisioned
concurrency", "Lambda function scaling", "Using environment variables") and
the API reference: provisioned concurrency cannot be configured on $LATEST;
Status goes IN_PROGRESS -> READY (FAILED when the environments cannot
initialize); environments initialized for provisioned concurrency see
`AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency` and their REPORT
lines have no `Init Duration` (the init ran ahead of the invocation);
invocations beyond the provisioned environments run on on-demand ones."""

import threading
import time

import pytest
from botocore.exceptions import ClientError
from harness import (
    AwsCli,
    FunctionFactory,
    assert_client_error,
    error_message,
    function_arn,
    invoke,
    invoke_ok,
    make_client,
    make_zip,
    parse_reports,
    start_server,
    wait_until,
)

PC_APP = b'''
import os, time

INIT_PID = os.getpid()
if os.environ.get("FAIL_INIT"):
    raise RuntimeError("init fails on purpose")


def handler(event, context):
    if event.get("exit"):
        os._exit(1)
    time.sleep(float(event.get("seconds", 0)))
    return {"init_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"), "pid": INIT_PID,
            "stream": context.log_stream_name, "version": context.function_version}
'''

PC_ZIP = make_zip({"app.py": PC_APP})
NOT_ON_LATEST = "Provisioned Concurrency Configs cannot be applied to unpublished function versions."


def published(factory: FunctionFactory, **kwargs) -> str:
    """A function with version 1 published."""
    name = factory.python(PC_ZIP, Timeout=30, **kwargs)
    factory.client.publish_version(FunctionName=name)
    return name


def wait_status(client, name, qualifier, status="READY", timeout=90.0) -> dict:
    last: dict = {}

    def check():
        nonlocal last
        last = client.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        return last if last["Status"] == status else None

    try:
        return wait_until(check, timeout=timeout, interval=0.1, what=f"provisioned concurrency {status}")
    except AssertionError:
        raise AssertionError(f"status stayed {last.get('Status')} ({last})")


def tail_invoke(client, name, event=None, **kwargs):
    inv = invoke_ok(client, name, event or {}, LogType="Tail", **kwargs)
    reports = parse_reports(inv.log)
    assert len(reports) == 1, inv.log
    return inv, reports[0]


@pytest.fixture
def factory(lambda_client, functions):
    return functions


# --------------------------------------------------------------------------
# The seed's commands (section 2.1), as written
# --------------------------------------------------------------------------


def test_seed_commands_as_written(tmp_path):
    srv = start_server(tmp_path / "data", name="seed-2-1")
    try:
        client = srv.client()
        FunctionFactory(client, "seed").create(PC_ZIP, name="my-api-function")
        cli = AwsCli(srv.url)
        v = cli("lambda", "publish-version", "--function-name", "my-api-function")
        assert v["Version"] == "1"
        put = cli("lambda", "put-provisioned-concurrency-config", "--function-name", "my-api-function",
                  "--qualifier", "1", "--provisioned-concurrent-executions", "50")
        assert put["RequestedProvisionedConcurrentExecutions"] == 50
        assert put["Status"] == "IN_PROGRESS"
        wait_status(client, "my-api-function", "1", timeout=180)
        got = cli("lambda", "get-provisioned-concurrency-config", "--function-name", "my-api-function",
                  "--qualifier", "1")
        assert got["Status"] == "READY"
        assert got["RequestedProvisionedConcurrentExecutions"] == 50
        assert got["AllocatedProvisionedConcurrentExecutions"] == 50
        assert got["AvailableProvisionedConcurrentExecutions"] == 50
        listed = cli("lambda", "list-provisioned-concurrency-configs", "--function-name", "my-api-function")
        assert [c["FunctionArn"] for c in listed["ProvisionedConcurrencyConfigs"]] == [
            function_arn("my-api-function") + ":1"]
        # Provisioned concurrency of a function without reserved concurrency
        # comes out of the unreserved pool.
        settings = cli("lambda", "get-account-settings")
        assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 950
        assert cli("lambda", "delete-provisioned-concurrency-config", "--function-name", "my-api-function",
                   "--qualifier", "1") is None
        after = cli.run("lambda", "get-provisioned-concurrency-config", "--function-name", "my-api-function",
                        "--qualifier", "1", check=False)
        assert after.returncode != 0 and "ProvisionedConcurrencyConfigNotFoundException" in after.stderr
        assert cli("lambda", "list-provisioned-concurrency-configs",
                   "--function-name", "my-api-function")["ProvisionedConcurrencyConfigs"] == []
    finally:
        srv.stop()


# --------------------------------------------------------------------------
# Environments ahead of traffic
# --------------------------------------------------------------------------


def test_ready_before_traffic_and_no_init_duration(lambda_client, factory):
    name = published(factory)
    put = lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                                           ProvisionedConcurrentExecutions=3)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["RequestedProvisionedConcurrentExecutions"] == 3
    assert put["Status"] == "IN_PROGRESS"
    ready = wait_status(lambda_client, name, "1")
    assert ready["AllocatedProvisionedConcurrentExecutions"] == 3
    assert ready["AvailableProvisionedConcurrentExecutions"] == 3
    assert ready["LastModified"] == put["LastModified"]

    # The very first invocations find initialized environments.
    streams = set()
    for _ in range(3):
        inv, report = tail_invoke(lambda_client, name, Qualifier="1")
        assert report["init"] is None, f"provisioned environment reported an Init Duration:\n{inv.log}"
        assert inv.payload["init_type"] == "provisioned-concurrency"
        assert inv.payload["version"] == "1"
        assert "/[1]" in inv.payload["stream"]
        streams.add(inv.payload["stream"])
    # $LATEST has no provisioned concurrency: on-demand, with a cold start.
    inv, report = tail_invoke(lambda_client, name)
    assert inv.payload["init_type"] == "on-demand" and report["init"] is not None
    assert inv.payload["stream"] not in streams

    lambda_client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert lambda_client.list_provisioned_concurrency_configs(FunctionName=name)[
        "ProvisionedConcurrencyConfigs"] == []
    # Its environments are shut down: the next invocation is a cold start.
    inv, report = tail_invoke(lambda_client, name, Qualifier="1")
    assert inv.payload["init_type"] == "on-demand" and report["init"] is not None
    assert inv.payload["stream"] not in streams


def test_provisioned_concurrency_on_an_alias(lambda_client, factory, check_server):
    name = published(factory)
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="live",
                                                     ProvisionedConcurrentExecutions=2)
    wait_status(lambda_client, name, "live")
    inv, report = tail_invoke(lambda_client, name, Qualifier="live")
    assert inv.executed_version == "1"
    assert inv.payload["init_type"] == "provisioned-concurrency" and report["init"] is None
    item, = lambda_client.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
    assert item["FunctionArn"] == function_arn(name) + ":live"
    assert item["RequestedProvisionedConcurrentExecutions"] == 2 and item["Status"] == "READY"
    # The version behind a provisioned alias cannot be provisioned too.
    with pytest.raises(ClientError) as e:
        lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                                         ProvisionedConcurrentExecutions=1)
    assert_client_error(e, "ResourceConflictException", 409)
    # Deleting the alias removes its provisioned concurrency.
    lambda_client.delete_alias(FunctionName=name, Name="live")
    assert lambda_client.list_provisioned_concurrency_configs(FunctionName=name)[
        "ProvisionedConcurrencyConfigs"] == []


def test_spillover_to_on_demand(server, lambda_client, factory):
    name = published(factory)
    lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                                     ProvisionedConcurrentExecutions=1)
    wait_status(lambda_client, name, "1")
    barrier = threading.Barrier(3)
    results: list = [None] * 3

    def one(i):
        client = make_client(server.url)
        barrier.wait()
        results[i] = invoke(client, name, {"seconds": 2}, Qualifier="1", LogType="Tail")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r is not None and r.function_error is None for r in results), results
    kinds = sorted(r.payload["init_type"] for r in results)
    assert kinds == ["on-demand", "on-demand", "provisioned-concurrency"], kinds
    for r in results:
        report, = parse_reports(r.log)
        if r.payload["init_type"] == "provisioned-concurrency":
            assert report["init"] is None
        else:
            assert report["init"] is not None  # spillover: a cold start


def test_crashed_environment_is_replaced(lambda_client, factory):
    name = published(factory)
    lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                                     ProvisionedConcurrentExecutions=1)
    wait_status(lambda_client, name, "1")
    first = invoke_ok(lambda_client, name, {}, Qualifier="1").payload
    assert first["init_type"] == "provisioned-concurrency"
    crashed = invoke(lambda_client, name, {"exit": True}, Qualifier="1")
    assert crashed.function_error == "Unhandled"

    def provisioned_again():
        p = invoke_ok(lambda_client, name, {}, Qualifier="1").payload
        return p if p["init_type"] == "provisioned-concurrency" else None

    again = wait_until(provisioned_again, timeout=60, interval=0.2, what="a replacement environment")
    assert again["stream"] != first["stream"]
    assert lambda_client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")[
        "AllocatedProvisionedConcurrentExecutions"] == 1


def test_init_failure_is_reported(lambda_client, factory):
    name = published(factory, Environment={"Variables": {"FAIL_INIT": "1"}})
    lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                                     ProvisionedConcurrentExecutions=1)
    failed = wait_status(lambda_client, name, "1", status="FAILED", timeout=60)
    assert failed.get("StatusReason")
    assert failed["AllocatedProvisionedConcurrentExecutions"] == 0


# --------------------------------------------------------------------------
# Reserved / unreserved concurrency and bad input
# --------------------------------------------------------------------------


def test_provisioned_and_reserved_concurrency(lambda_client, factory, check_server):
    name = published(factory)
    base = lambda_client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                                     ProvisionedConcurrentExecutions=2)
    # Without reserved concurrency it comes out of the unreserved pool...
    assert lambda_client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == base - 2
    # ...with reserved concurrency it is part of the reservation.
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
    assert lambda_client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == base - 5
    # Reserved below the provisioned total is refused.
    with pytest.raises(ClientError) as e:
        lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    assert_client_error(e, "InvalidParameterValueException", 400)
    assert lambda_client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5
    # Provisioned above reserved is refused, as AWS words it.
    with pytest.raises(ClientError) as e:
        lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                                         ProvisionedConcurrentExecutions=6)
    exc = assert_client_error(e, "InvalidParameterValueException", 400)
    assert error_message(exc) == ("Requested Provisioned Concurrency should not be greater than the "
                                  "reservedConcurrentExecution for function")
    got = lambda_client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert got["RequestedProvisionedConcurrentExecutions"] == 2
    lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                                     ProvisionedConcurrentExecutions=5)
    assert wait_status(lambda_client, name, "1")["AllocatedProvisionedConcurrentExecutions"] == 5


def test_provisioned_bad_input(lambda_client, lambda_client_novalidate, factory, check_server):
    name = published(factory)
    lambda_client.create_alias(FunctionName=name, Name="latest", FunctionVersion="$LATEST")

    def refused(codes, status, client=lambda_client, **kwargs):
        with pytest.raises(ClientError) as e:
            client.put_provisioned_concurrency_config(FunctionName=name, **kwargs)
        return assert_client_error(e, codes, status)

    exc = refused("InvalidParameterValueException", 400, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1)
    assert error_message(exc) == NOT_ON_LATEST
    exc = refused("InvalidParameterValueException", 400, Qualifier="latest", ProvisionedConcurrentExecutions=1)
    assert error_message(exc) == NOT_ON_LATEST
    refused("ValidationException", 400, client=lambda_client_novalidate, Qualifier="1",
            ProvisionedConcurrentExecutions=0)
    refused("ResourceNotFoundException", 404, Qualifier="9", ProvisionedConcurrentExecutions=1)
    refused("ResourceNotFoundException", 404, Qualifier="nope", ProvisionedConcurrentExecutions=1)
    unreserved = lambda_client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    exc = refused("InvalidParameterValueException", 400, Qualifier="1",
                  ProvisionedConcurrentExecutions=unreserved - 99)
    assert error_message(exc) == ("Specified ConcurrentExecutions for function decreases account's "
                                  "UnreservedConcurrentExecution below its minimum value of [100].")
    with pytest.raises(ClientError) as e:
        lambda_client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="$LATEST")
    assert_client_error(e, "InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as e:
        lambda_client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert_client_error(e, "ProvisionedConcurrencyConfigNotFoundException", 404)
    with pytest.raises(ClientError) as e:
        lambda_client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="$LATEST")
    assert_client_error(e, "InvalidParameterValueException", 400)
    # Nothing was configured, nothing was reserved.
    assert lambda_client.list_provisioned_concurrency_configs(FunctionName=name)[
        "ProvisionedConcurrencyConfigs"] == []
    assert lambda_client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == unreserved
    # Invoking still works, on demand.
    assert invoke_ok(lambda_client, name, {}, Qualifier="1").payload["init_type"] == "on-demand"


# --------------------------------------------------------------------------
# Servers of their own: idle reaper, restart
# --------------------------------------------------------------------------


def test_idle_reaper_leaves_provisioned_environments(tmp_path):
    srv = start_server(tmp_path / "data", name="pc-idle", extra_args=["--idle-timeout", "1"])
    try:
        client = srv.client()
        factory = FunctionFactory(client, "idle")
        name = published(factory)
        client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                                  ProvisionedConcurrentExecutions=1)
        wait_status(client, name, "1")
        provisioned = invoke_ok(client, name, {}, Qualifier="1").payload
        on_demand = invoke_ok(client, name, {}).payload
        assert provisioned["init_type"] == "provisioned-concurrency"
        assert on_demand["init_type"] == "on-demand"
        # Well past the idle timeout (the reaper runs every second): the
        # on-demand environment is gone, the provisioned one still serves.
        time.sleep(4)
        later = invoke_ok(client, name, {}).payload
        assert later["stream"] != on_demand["stream"], "the idle on-demand environment was not reclaimed"
        again = invoke_ok(client, name, {}, Qualifier="1").payload
        assert again["stream"] == provisioned["stream"] and again["init_type"] == "provisioned-concurrency"
        factory.cleanup()
    finally:
        srv.stop()


def test_restart_provisions_again(tmp_path):
    data = tmp_path / "data"
    first = start_server(data, name="pc-restart-1")
    client = first.client()
    name = published(FunctionFactory(client, "restart"))
    client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2)
    before = wait_status(client, name, "1")
    assert first.stop() == 0

    second = start_server(data, name="pc-restart-2")
    try:
        client = second.client()
        after = wait_status(client, name, "1")
        assert after["RequestedProvisionedConcurrentExecutions"] == 2
        assert after["LastModified"] == before["LastModified"]
        inv, report = tail_invoke(client, name, Qualifier="1")
        assert inv.payload["init_type"] == "provisioned-concurrency" and report["init"] is None
    finally:
        second.stop()
