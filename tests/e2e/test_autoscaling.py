"""Application Auto Scaling for Lambda provisioned concurrency
(`lambda:function:ProvisionedConcurrency`), driven with boto3's
`application-autoscaling` client and the AWS CLI: scalable targets, target
tracking policies on `LambdaProvisionedConcurrencyUtilization`, scheduled
actions, scaling activities, validation errors, restart.

Expected values from botocore's model (application-autoscaling 2016-02-06:
operation names, shapes, error codes) and the Application Auto Scaling user
guide and API reference:
- RegisterScalableTarget on a new target needs MinCapacity and MaxCapacity;
  "it changes the resource's current capacity to a value that is inside of
  this range"; registering again updates only what is given;
- a scaling policy or scheduled action needs a registered target
  (ObjectNotFoundException); deregistering deletes the target's policies and
  scheduled actions;
- a target tracking policy creates two CloudWatch alarms (AlarmHigh and
  AlarmLow; only AlarmHigh with DisableScaleIn), named
  `TargetTracking-<ResourceId>-AlarmHigh-<uuid>`;
- a scheduled action sets MinCapacity / MaxCapacity at its time and moves
  the current capacity into the new range; activities read "Setting min
  capacity to X and max capacity to Y" (cause "scheduled action name N was
  triggered") and "Setting desired concurrency to N." (cause "minimum
  capacity was set to N");
- Lambda's target tracking alarms use 1-minute datapoints (3 for scale-out,
  15 for scale-in); the tests scale time with `--time-scale 60`.
"""

import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError
from harness import (
    ACCOUNT,
    REGION,
    AwsCli,
    FunctionFactory,
    assert_client_error,
    error_message,
    make_client,
    make_zip,
    signed_request,
    start_server,
    wait_until,
)

NS = "lambda"
DIM = "lambda:function:ProvisionedConcurrency"
METRIC = "LambdaProvisionedConcurrencyUtilization"

APP = b'''
import time


def handler(event, context):
    time.sleep(float(event.get("seconds", 0)))
    return {"version": context.function_version}
'''
ZIP = make_zip({"app.py": APP})

TARGET_ARN_RE = re.compile(
    rf"^arn:aws:application-autoscaling:{REGION}:{ACCOUNT}:scalable-target/[0-9a-z]+$")


def rid(name: str, qualifier: str) -> str:
    return f"function:{name}:{qualifier}"


@pytest.fixture(scope="module")
def aas(server):
    return server.client("application-autoscaling")


@pytest.fixture(scope="module")
def aas_novalidate(server):
    return server.client("application-autoscaling", validate=False)


def published(factory: FunctionFactory, alias: str | None = "live") -> str:
    """A function with version 1 published and, optionally, an alias on it."""
    name = factory.python(ZIP, Timeout=30)
    factory.client.publish_version(FunctionName=name)
    if alias:
        factory.client.create_alias(FunctionName=name, Name=alias, FunctionVersion="1")
    return name


def requested(lambda_client, name: str, qualifier: str) -> int:
    try:
        return lambda_client.get_provisioned_concurrency_config(
            FunctionName=name, Qualifier=qualifier)["RequestedProvisionedConcurrentExecutions"]
    except ClientError as e:
        if e.response["Error"]["Code"] == "ProvisionedConcurrencyConfigNotFoundException":
            return 0
        raise


def activities(aas, resource_id: str) -> list[dict]:
    return aas.describe_scaling_activities(ServiceNamespace=NS, ResourceId=resource_id)["ScalingActivities"]


def wait_activity(aas, resource_id: str, pred, timeout: float = 90.0, what: str = "an activity") -> dict:
    last: list = []

    def check():
        nonlocal last
        last = activities(aas, resource_id)
        return next((a for a in last if pred(a)), None)

    try:
        return wait_until(check, timeout=timeout, interval=0.2, what=what)
    except AssertionError:
        raise AssertionError(f"no {what} within {timeout} s; activities: {json.dumps(last, default=str, indent=1)}")


def register(aas, name, qualifier, lo, hi, **kw):
    return aas.register_scalable_target(ServiceNamespace=NS, ResourceId=rid(name, qualifier),
                                        ScalableDimension=DIM, MinCapacity=lo, MaxCapacity=hi, **kw)


TRACKING = {
    "TargetValue": 0.7,
    "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
    "ScaleInCooldown": 300,
    "ScaleOutCooldown": 60,
}


# --------------------------------------------------------------------------
# The seed's commands (section 2.2), as written
# --------------------------------------------------------------------------


@pytest.mark.cli
def test_seed_commands_as_written(tmp_path):
    srv = start_server(tmp_path / "data", name="seed-2-2")
    try:
        client = srv.client()
        FunctionFactory(client, "seed").create(ZIP, name="my-api-function", Timeout=30)
        client.publish_version(FunctionName="my-api-function")
        client.create_alias(FunctionName="my-api-function", Name="prod", FunctionVersion="1")
        cli = AwsCli(srv.url)
        reg = cli("application-autoscaling", "register-scalable-target",
                  "--service-namespace", "lambda",
                  "--resource-id", "function:my-api-function:prod",
                  "--scalable-dimension", "lambda:function:ProvisionedConcurrency",
                  "--min-capacity", "10",
                  "--max-capacity", "200")
        assert TARGET_ARN_RE.match(reg["ScalableTargetARN"]), reg
        pol = cli("application-autoscaling", "put-scaling-policy",
                  "--service-namespace", "lambda",
                  "--resource-id", "function:my-api-function:prod",
                  "--scalable-dimension", "lambda:function:ProvisionedConcurrency",
                  "--policy-name", "provisioned-concurrency-target-tracking",
                  "--policy-type", "TargetTrackingScaling",
                  "--target-tracking-scaling-policy-configuration", '''{
    "TargetValue": 0.7,
    "PredefinedMetricSpecification": {
      "PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"
    },
    "ScaleInCooldown": 300,
    "ScaleOutCooldown": 60
  }''')
        assert pol["PolicyARN"].startswith(f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:scalingPolicy:")
        assert pol["PolicyARN"].endswith(
            ":resource/lambda/function:my-api-function:prod:policyName/provisioned-concurrency-target-tracking")
        names = sorted(a["AlarmName"] for a in pol["Alarms"])
        assert len(names) == 2
        assert names[0].startswith("TargetTracking-function:my-api-function:prod-AlarmHigh-")
        assert names[1].startswith("TargetTracking-function:my-api-function:prod-AlarmLow-")
        for a in pol["Alarms"]:
            assert a["AlarmARN"] == f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{a['AlarmName']}"
        for action, cron, limits in [("morning-scale-up", "cron(0 8 * * ? *)", "MinCapacity=100,MaxCapacity=500"),
                                     ("night-scale-down", "cron(0 22 * * ? *)", "MinCapacity=10,MaxCapacity=50")]:
            out = cli("application-autoscaling", "put-scheduled-action",
                      "--service-namespace", "lambda",
                      "--resource-id", "function:my-api-function:prod",
                      "--scalable-dimension", "lambda:function:ProvisionedConcurrency",
                      "--scheduled-action-name", action,
                      "--schedule", cron,
                      "--scalable-target-action", limits)
            assert out is None  # PutScheduledAction answers {}: the CLI prints nothing

        target, = cli("application-autoscaling", "describe-scalable-targets",
                      "--service-namespace", "lambda")["ScalableTargets"]
        assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == (
            "function:my-api-function:prod", 10, 200)
        assert target["ScalableTargetARN"] == reg["ScalableTargetARN"]
        policy, = cli("application-autoscaling", "describe-scaling-policies",
                      "--service-namespace", "lambda")["ScalingPolicies"]
        assert policy["PolicyType"] == "TargetTrackingScaling"
        assert policy["TargetTrackingScalingPolicyConfiguration"] == TRACKING
        actions = cli("application-autoscaling", "describe-scheduled-actions",
                      "--service-namespace", "lambda")["ScheduledActions"]
        assert {(a["ScheduledActionName"], a["Schedule"], a["ScalableTargetAction"]["MinCapacity"],
                 a["ScalableTargetAction"]["MaxCapacity"]) for a in actions} == {
            ("morning-scale-up", "cron(0 8 * * ? *)", 100, 500),
            ("night-scale-down", "cron(0 22 * * ? *)", 10, 50)}

        # Registering moved provisioned concurrency up to MinCapacity.
        assert requested(client, "my-api-function", "prod") == 10
        act = wait_activity(cli_client(srv), "function:my-api-function:prod",
                            lambda a: a["StatusCode"] == "Successful", timeout=180,
                            what="a Successful activity setting 10")
        assert act["Description"] == "Setting desired concurrency to 10."
        assert act["Cause"] == "minimum capacity was set to 10"
        assert client.get_provisioned_concurrency_config(
            FunctionName="my-api-function", Qualifier="prod")["Status"] == "READY"
    finally:
        srv.stop()


def cli_client(srv):
    return srv.client("application-autoscaling")


# --------------------------------------------------------------------------
# Scalable targets
# --------------------------------------------------------------------------


def test_register_update_describe_deregister(aas, lambda_client, functions, check_server):
    name = published(functions)
    r = rid(name, "live")
    arn = register(aas, name, "live", 1, 3)["ScalableTargetARN"]
    assert TARGET_ARN_RE.match(arn)
    # The current capacity (no provisioned concurrency: 0) is moved into [1, 3].
    assert requested(lambda_client, name, "live") == 1
    act = wait_activity(aas, r, lambda a: a["StatusCode"] == "Successful", what="a Successful activity")
    assert act["Description"] == "Setting desired concurrency to 1."
    assert act["Cause"] == "minimum capacity was set to 1"
    assert act["StartTime"] <= act["EndTime"]
    assert act["ServiceNamespace"] == NS and act["ScalableDimension"] == DIM and act["ResourceId"] == r

    t, = aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[r])["ScalableTargets"]
    assert (t["MinCapacity"], t["MaxCapacity"], t["ScalableTargetARN"]) == (1, 3, arn)
    assert t["RoleARN"] == (f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/lambda.application-autoscaling"
                            ".amazonaws.com/AWSServiceRoleForApplicationAutoScaling_LambdaConcurrency")
    assert t["SuspendedState"] == {"DynamicScalingInSuspended": False, "DynamicScalingOutSuspended": False,
                                   "ScheduledScalingSuspended": False}
    created = t["CreationTime"]
    assert abs(created.timestamp() - time.time()) < 120

    # Registering again updates what is given and keeps the rest.
    again = aas.register_scalable_target(ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM,
                                         MaxCapacity=5,
                                         SuspendedState={"ScheduledScalingSuspended": True})
    assert again["ScalableTargetARN"] == arn
    t, = aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[r])["ScalableTargets"]
    assert (t["MinCapacity"], t["MaxCapacity"], t["CreationTime"]) == (1, 5, created)
    assert t["SuspendedState"]["ScheduledScalingSuspended"] is True

    # Filters: the dimension, and resource ids that do not exist.
    assert [x["ResourceId"] for x in aas.describe_scalable_targets(
        ServiceNamespace=NS, ResourceIds=[r], ScalableDimension=DIM)["ScalableTargets"]] == [r]
    assert aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[rid(name, "nope")])[
        "ScalableTargets"] == []
    assert aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []

    # A MaxCapacity below the current capacity brings it down.
    register(aas, name, "live", 0, 0)
    assert requested(lambda_client, name, "live") == 0
    act = activities(aas, r)[0]
    assert (act["Description"], act["Cause"], act["StatusCode"]) == (
        "Setting desired concurrency to 0.", "maximum capacity was set to 0", "Successful")

    # Deregistering removes the target with its policies and scheduled actions.
    aas.put_scaling_policy(PolicyName="p", ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM,
                           PolicyType="TargetTrackingScaling",
                           TargetTrackingScalingPolicyConfiguration=TRACKING)
    aas.put_scheduled_action(ServiceNamespace=NS, ScheduledActionName="s", ResourceId=r, ScalableDimension=DIM,
                             Schedule="cron(0 8 * * ? *)", ScalableTargetAction={"MinCapacity": 1})
    aas.deregister_scalable_target(ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM)
    assert aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[r])["ScalableTargets"] == []
    assert aas.describe_scaling_policies(ServiceNamespace=NS, ResourceId=r)["ScalingPolicies"] == []
    assert aas.describe_scheduled_actions(ServiceNamespace=NS, ResourceId=r)["ScheduledActions"] == []
    with pytest.raises(ClientError) as e:
        aas.deregister_scalable_target(ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM)
    assert_client_error(e, "ObjectNotFoundException", 400)
    assert r in error_message(e.value)


def test_pagination(aas, functions):
    name = functions.python(ZIP)
    lam = functions.client
    lam.publish_version(FunctionName=name)
    ids = []
    for i in range(5):
        lam.create_alias(FunctionName=name, Name=f"a{i}", FunctionVersion="1")
        register(aas, name, f"a{i}", 0, 2)
        ids.append(rid(name, f"a{i}"))
        aas.put_scheduled_action(ServiceNamespace=NS, ScheduledActionName=f"s{i}", ResourceId=ids[-1],
                                 ScalableDimension=DIM, Schedule="rate(1 day)",
                                 ScalableTargetAction={"MaxCapacity": 2})
    seen, token, pages = [], None, 0
    while True:
        kw = {"NextToken": token} if token else {}
        page = aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=ids, MaxResults=2, **kw)
        pages += 1
        assert len(page["ScalableTargets"]) <= 2
        seen += [t["ResourceId"] for t in page["ScalableTargets"]]
        token = page.get("NextToken")
        if not token:
            break
    assert (sorted(seen), pages) == (sorted(ids), 3)
    # boto3's paginator follows NextToken the same way.
    pager = aas.get_paginator("describe_scheduled_actions")
    got = [a["ScheduledActionName"]
           for p in pager.paginate(ServiceNamespace=NS, ResourceId=ids[0], PaginationConfig={"PageSize": 1})
           for a in p["ScheduledActions"]]
    assert got == ["s0"]
    got = [a["ResourceId"] for p in pager.paginate(ServiceNamespace=NS, PaginationConfig={"PageSize": 2})
           for a in p["ScheduledActions"] if a["ResourceId"] in ids]
    assert sorted(got) == sorted(ids)
    with pytest.raises(ClientError) as e:
        aas.describe_scalable_targets(ServiceNamespace=NS, NextToken="not-a-token")
    assert_client_error(e, "InvalidNextTokenException", 400)
    for i in ids:
        aas.deregister_scalable_target(ServiceNamespace=NS, ResourceId=i, ScalableDimension=DIM)


# --------------------------------------------------------------------------
# Scaling policies
# --------------------------------------------------------------------------


def test_scaling_policies(aas, functions):
    name = published(functions)
    r = rid(name, "live")
    # No target yet: AWS's ObjectNotFoundException.
    with pytest.raises(ClientError) as e:
        aas.put_scaling_policy(PolicyName="p1", ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM,
                               PolicyType="TargetTrackingScaling",
                               TargetTrackingScalingPolicyConfiguration=TRACKING)
    assert_client_error(e, "ObjectNotFoundException", 400)
    register(aas, name, "live", 0, 4)
    p1 = aas.put_scaling_policy(PolicyName="p1", ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM,
                                PolicyType="TargetTrackingScaling",
                                TargetTrackingScalingPolicyConfiguration=TRACKING)
    assert len(p1["Alarms"]) == 2
    p2 = aas.put_scaling_policy(PolicyName="p2", ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM,
                                PolicyType="TargetTrackingScaling",
                                TargetTrackingScalingPolicyConfiguration={
                                    "TargetValue": 0.5, "DisableScaleIn": True,
                                    "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC}})
    # DisableScaleIn: only the high alarm.
    alarm, = p2["Alarms"]
    assert "-AlarmHigh-" in alarm["AlarmName"]

    pols = aas.describe_scaling_policies(ServiceNamespace=NS, ResourceId=r)["ScalingPolicies"]
    assert sorted(p["PolicyName"] for p in pols) == ["p1", "p2"]
    only, = aas.describe_scaling_policies(ServiceNamespace=NS, PolicyNames=["p2"])["ScalingPolicies"]
    assert only["PolicyARN"] == p2["PolicyARN"]
    assert only["TargetTrackingScalingPolicyConfiguration"]["DisableScaleIn"] is True
    assert (only["ResourceId"], only["ScalableDimension"], only["ServiceNamespace"]) == (r, DIM, NS)
    assert only["Alarms"] == p2["Alarms"]

    # Updating keeps the ARN and changes the configuration.
    upd = aas.put_scaling_policy(PolicyName="p1", ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM,
                                 PolicyType="TargetTrackingScaling",
                                 TargetTrackingScalingPolicyConfiguration={**TRACKING, "TargetValue": 0.9})
    assert upd["PolicyARN"] == p1["PolicyARN"]
    got, = aas.describe_scaling_policies(ServiceNamespace=NS, PolicyNames=["p1"], ResourceId=r)["ScalingPolicies"]
    assert got["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 0.9

    aas.delete_scaling_policy(PolicyName="p1", ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM)
    assert [p["PolicyName"] for p in aas.describe_scaling_policies(
        ServiceNamespace=NS, ResourceId=r)["ScalingPolicies"]] == ["p2"]
    with pytest.raises(ClientError) as e:
        aas.delete_scaling_policy(PolicyName="p1", ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM)
    assert_client_error(e, "ObjectNotFoundException", 400)
    aas.deregister_scalable_target(ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM)


# --------------------------------------------------------------------------
# Scheduled actions
# --------------------------------------------------------------------------


def test_scheduled_action_runs_at_its_time(aas, lambda_client, functions, check_server):
    name = published(functions)
    r = rid(name, "live")
    register(aas, name, "live", 0, 5)
    assert requested(lambda_client, name, "live") == 0
    # at() in the action's time zone: a few seconds from now, Tokyo time.
    tokyo = timezone(timedelta(hours=9))
    when = (datetime.now(tokyo) + timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%S")
    aas.put_scheduled_action(ServiceNamespace=NS, ScheduledActionName="soon", ResourceId=r,
                             ScalableDimension=DIM, Schedule=f"at({when})", Timezone="Asia/Tokyo",
                             ScalableTargetAction={"MinCapacity": 2, "MaxCapacity": 4})
    a, = aas.describe_scheduled_actions(ServiceNamespace=NS, ScheduledActionNames=["soon"],
                                        ResourceId=r)["ScheduledActions"]
    assert (a["Schedule"], a["Timezone"], a["ScalableTargetAction"]) == (
        f"at({when})", "Asia/Tokyo", {"MinCapacity": 2, "MaxCapacity": 4})
    assert a["ScheduledActionARN"].endswith(f":resource/lambda/{r}:scheduledActionName/soon")

    # The engine runs it: new limits, then provisioned concurrency moved up to 2.
    act = wait_activity(aas, r, lambda x: x["Description"] == "Setting desired concurrency to 2."
                        and x["StatusCode"] == "Successful", timeout=90,
                        what="a Successful activity setting 2")
    assert act["Cause"] == "minimum capacity was set to 2"
    limits = next(x for x in activities(aas, r) if x["Description"].startswith("Setting min capacity"))
    assert limits["Description"] == "Setting min capacity to 2 and max capacity to 4"
    assert limits["Cause"] == "scheduled action name soon was triggered"
    assert limits["StatusCode"] == "Successful"
    # Newest first: the capacity change came after the new limits.
    acts = activities(aas, r)
    assert acts.index(act) < acts.index(limits)
    assert requested(lambda_client, name, "live") == 2
    assert lambda_client.get_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live")["Status"] == "READY"
    t, = aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[r])["ScalableTargets"]
    assert (t["MinCapacity"], t["MaxCapacity"]) == (2, 4)

    # Deleting; deleting again is ObjectNotFoundException.
    aas.delete_scheduled_action(ServiceNamespace=NS, ScheduledActionName="soon", ResourceId=r,
                                ScalableDimension=DIM)
    with pytest.raises(ClientError) as e:
        aas.delete_scheduled_action(ServiceNamespace=NS, ScheduledActionName="soon", ResourceId=r,
                                    ScalableDimension=DIM)
    assert_client_error(e, "ObjectNotFoundException", 400)
    register(aas, name, "live", 0, 0)
    aas.deregister_scalable_target(ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM)


def test_scheduled_action_fields(aas, functions):
    name = published(functions, alias=None)
    r = rid(name, "1")  # a version works as well as an alias
    register(aas, name, "1", 0, 2)
    start = datetime(2031, 1, 1, tzinfo=timezone.utc)
    end = datetime(2031, 12, 31, tzinfo=timezone.utc)
    aas.put_scheduled_action(ServiceNamespace=NS, ScheduledActionName="weekday-mornings", ResourceId=r,
                             ScalableDimension=DIM, Schedule="cron(0/15 8-17 ? * MON-FRI *)",
                             Timezone="America/New_York", StartTime=start, EndTime=end,
                             ScalableTargetAction={"MinCapacity": 1})
    a, = aas.describe_scheduled_actions(ServiceNamespace=NS, ResourceId=r)["ScheduledActions"]
    assert (a["StartTime"], a["EndTime"]) == (start, end)
    assert a["ScalableTargetAction"] == {"MinCapacity": 1}
    # Updating only the schedule keeps the rest.
    aas.put_scheduled_action(ServiceNamespace=NS, ScheduledActionName="weekday-mornings", ResourceId=r,
                             ScalableDimension=DIM, Schedule="cron(0 9 ? * 2#1 *)")
    a, = aas.describe_scheduled_actions(ServiceNamespace=NS, ResourceId=r)["ScheduledActions"]
    assert (a["Schedule"], a["Timezone"], a["StartTime"]) == ("cron(0 9 ? * 2#1 *)", "America/New_York", start)
    for expr in ["rate(5 minutes)", "rate(1 hour)", "at(2031-06-01T12:00:00)",
                 "cron(0 12 L * ? *)", "cron(0 12 ? * 6L *)", "cron(0 9 15W * ? 2031-2035)"]:
        aas.put_scheduled_action(ServiceNamespace=NS, ScheduledActionName="x", ResourceId=r,
                                 ScalableDimension=DIM, Schedule=expr, ScalableTargetAction={"MaxCapacity": 2})
    aas.deregister_scalable_target(ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM)


# --------------------------------------------------------------------------
# Target tracking under load (time scaled 60x: 1-second datapoints)
# --------------------------------------------------------------------------


def test_target_tracking_scales_out_under_load_and_back_in(tmp_path):
    srv = start_server(tmp_path / "data", name="tracking", extra_args=["--time-scale", "60"])
    try:
        client = srv.client()
        aas = srv.client("application-autoscaling")
        name = published(FunctionFactory(client, "tt"))
        r = rid(name, "live")
        register(aas, name, "live", 1, 4)
        wait_activity(aas, r, lambda a: a["StatusCode"] == "Successful", what="provisioned concurrency 1")
        aas.put_scaling_policy(PolicyName="tt", ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM,
                               PolicyType="TargetTrackingScaling",
                               TargetTrackingScalingPolicyConfiguration={
                                   "TargetValue": 0.5,
                                   "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
                                   "ScaleOutCooldown": 0, "ScaleInCooldown": 60})
        # Three callers keep a slow function busy: one provisioned environment
        # is 100% used, above the 50% target.
        stop = threading.Event()
        errors: list = []

        def load():
            c = make_client(srv.url, read_timeout=60)
            while not stop.is_set():
                try:
                    c.invoke(FunctionName=name, Qualifier="live", Payload=json.dumps({"seconds": 1.0}))
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(e)
                    return

        threads = [threading.Thread(target=load, daemon=True) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            out = wait_activity(aas, r, lambda a: "AlarmHigh" in a["Cause"] and a["StatusCode"] == "Successful",
                                timeout=90, what="a scale-out by AlarmHigh")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        assert not errors, errors
        assert re.fullmatch(r"monitor alarm TargetTracking-function:[\w-]+:live-AlarmHigh-[0-9a-f-]+ "
                            r"in state ALARM triggered policy tt", out["Cause"]), out["Cause"]
        n = int(re.fullmatch(r"Setting desired concurrency to (\d+)\.", out["Description"]).group(1))
        assert 2 <= n <= 4
        assert out["StatusMessage"] == (f"Successfully set desired concurrency to {n}. "
                                        "Change successfully fulfilled by lambda.")
        assert requested(client, name, "live") >= 2

        # Idle: after 15 low datapoints (15 s here) and the scale-in cooldown
        # (60 s / 60), back to MinCapacity.
        back = wait_activity(aas, r, lambda a: "AlarmLow" in a["Cause"] and a["StatusCode"] == "Successful",
                             timeout=90, what="a scale-in by AlarmLow")
        assert back["Description"] == "Setting desired concurrency to 1."
        assert requested(client, name, "live") == 1
        srv.assert_healthy()
    finally:
        srv.stop()


# --------------------------------------------------------------------------
# Restart
# --------------------------------------------------------------------------


@pytest.mark.restart
def test_survives_restart(tmp_path):
    srv = start_server(tmp_path / "data", name="aas-restart")
    try:
        client = srv.client()
        aas = srv.client("application-autoscaling")
        name = published(FunctionFactory(client, "rs"))
        r = rid(name, "live")
        arn = register(aas, name, "live", 0, 3)["ScalableTargetARN"]
        aas.put_scaling_policy(PolicyName="tt", ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM,
                               PolicyType="TargetTrackingScaling",
                               TargetTrackingScalingPolicyConfiguration=TRACKING)
        when = (datetime.now(timezone.utc) + timedelta(seconds=12)).strftime("%Y-%m-%dT%H:%M:%S")
        aas.put_scheduled_action(ServiceNamespace=NS, ScheduledActionName="after-restart", ResourceId=r,
                                 ScalableDimension=DIM, Schedule=f"at({when})",
                                 ScalableTargetAction={"MinCapacity": 1, "MaxCapacity": 3})
        before = (aas.describe_scalable_targets(ServiceNamespace=NS)["ScalableTargets"],
                  aas.describe_scaling_policies(ServiceNamespace=NS)["ScalingPolicies"],
                  aas.describe_scheduled_actions(ServiceNamespace=NS)["ScheduledActions"])
        srv.stop()
        srv.start()
        aas = srv.client("application-autoscaling")
        after = (aas.describe_scalable_targets(ServiceNamespace=NS)["ScalableTargets"],
                 aas.describe_scaling_policies(ServiceNamespace=NS)["ScalingPolicies"],
                 aas.describe_scheduled_actions(ServiceNamespace=NS)["ScheduledActions"])
        assert after == before
        assert after[0][0]["ScalableTargetARN"] == arn
        # The restarted engine runs the action at its time.
        wait_activity(aas, r, lambda a: a["Description"] == "Setting desired concurrency to 1."
                      and a["StatusCode"] == "Successful", timeout=90, what="the scheduled scale-up")
        assert requested(srv.client(), name, "live") == 1
    finally:
        srv.stop()


# --------------------------------------------------------------------------
# Bad input: AWS's errors, nothing changed, the server keeps serving
# --------------------------------------------------------------------------


def test_validation_errors(aas_novalidate, aas, functions, check_server):
    c = aas_novalidate
    name = published(functions)
    r = rid(name, "live")

    def bad(code, fn, **kw):
        with pytest.raises(ClientError) as e:
            fn(**kw)
        return assert_client_error(e, code, 400)

    reg = dict(ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM)
    e = bad("ValidationException", c.register_scalable_target, MinCapacity=5, MaxCapacity=2, **reg)
    assert error_message(e) == "Minimum capacity cannot be greater than maximum capacity"
    bad("ValidationException", c.register_scalable_target, MinCapacity=-1, MaxCapacity=2, **reg)
    bad("ValidationException", c.register_scalable_target, **reg)  # new target without limits
    for resource in [f"function:{name}", f"function:{name}:$LATEST", f"{name}:live", "function::live"]:
        e = bad("ValidationException", c.register_scalable_target, ServiceNamespace=NS, ResourceId=resource,
                ScalableDimension=DIM, MinCapacity=0, MaxCapacity=1)
        assert error_message(e) == "Unsupported service namespace, resource type or scalable dimension"
    bad("ValidationException", c.register_scalable_target, ServiceNamespace=NS, ResourceId=r,
        ScalableDimension="ecs:service:DesiredCount", MinCapacity=0, MaxCapacity=1)
    bad("ValidationException", c.register_scalable_target, ServiceNamespace="ecs",
        ResourceId="service/default/web", ScalableDimension="ecs:service:DesiredCount", MinCapacity=0, MaxCapacity=1)
    e = bad("ValidationException", c.register_scalable_target, ServiceNamespace="nope", ResourceId=r,
            ScalableDimension=DIM, MinCapacity=0, MaxCapacity=1)
    assert "serviceNamespace" in error_message(e)
    e = bad("ValidationException", c.register_scalable_target, ServiceNamespace=NS,
            ResourceId=rid("no-such-function-x", "live"), ScalableDimension=DIM, MinCapacity=0, MaxCapacity=1)
    assert "no-such-function-x" in error_message(e)
    bad("ValidationException", c.register_scalable_target, ServiceNamespace=NS, ResourceId=rid(name, "nope"),
        ScalableDimension=DIM, MinCapacity=0, MaxCapacity=1)
    # Nothing was registered.
    assert aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[r])["ScalableTargets"] == []

    register(aas, name, "live", 0, 2)
    pol = dict(PolicyName="p", ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM)
    bad("ValidationException", c.put_scaling_policy, PolicyType="StepScaling",
        StepScalingPolicyConfiguration={"AdjustmentType": "ChangeInCapacity",
                                        "StepAdjustments": [{"ScalingAdjustment": 1}]}, **pol)
    bad("ValidationException", c.put_scaling_policy, PolicyType="TargetTrackingScaling", **pol)
    bad("ValidationException", c.put_scaling_policy, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={"TargetValue": 0.7}, **pol)
    bad("ValidationException", c.put_scaling_policy, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 70.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}}, **pol)
    bad("ValidationException", c.put_scaling_policy, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={**TRACKING, "TargetValue": -1.0}, **pol)
    bad("ValidationException", c.put_scaling_policy, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={**TRACKING, "ScaleInCooldown": -5}, **pol)
    assert aas.describe_scaling_policies(ServiceNamespace=NS, ResourceId=r)["ScalingPolicies"] == []

    act = dict(ServiceNamespace=NS, ScheduledActionName="a", ResourceId=r, ScalableDimension=DIM)
    for expr in ["cron(0 8 * * *)", "cron(0 8 * * 2 *)", "cron(0 25 * * ? *)", "cron(0 8 ? * 9 *)",
                 "cron(0 8 * * ? 1900)", "rate(0 minutes)", "rate(5 fortnights)", "at(2030-01-01 08:00)",
                 "at(2030-02-30T08:00:00)", "every day", ""]:
        e = bad("ValidationException", c.put_scheduled_action, Schedule=expr,
                ScalableTargetAction={"MinCapacity": 1}, **act)
    bad("ValidationException", c.put_scheduled_action, Schedule="cron(0 8 * * ? *)", Timezone="Mars/Base",
        **act)
    bad("ValidationException", c.put_scheduled_action, Schedule="cron(0 8 * * ? *)",
        ScalableTargetAction={"MinCapacity": 3, "MaxCapacity": 1}, **act)
    bad("ValidationException", c.put_scheduled_action, Schedule="rate(1 hour)",
        StartTime=datetime(2031, 1, 2, tzinfo=timezone.utc), EndTime=datetime(2031, 1, 1, tzinfo=timezone.utc),
        **act)
    bad("ValidationException", c.put_scheduled_action, **act)  # new action without a Schedule
    bad("ValidationException", c.put_scheduled_action, Schedule="rate(1 hour)",
        **{**act, "ScheduledActionName": "a:b"})
    assert aas.describe_scheduled_actions(ServiceNamespace=NS, ResourceId=r)["ScheduledActions"] == []
    bad("ValidationException", c.describe_scalable_targets, ServiceNamespace=NS, MaxResults=0)
    bad("ValidationException", c.describe_scaling_activities, ServiceNamespace=NS, MaxResults=51)
    # Policies and actions on a target that is not registered.
    other = rid(name, "1")
    bad("ObjectNotFoundException", c.put_scheduled_action, ServiceNamespace=NS, ScheduledActionName="x",
        ResourceId=other, ScalableDimension=DIM, Schedule="rate(1 hour)")
    aas.deregister_scalable_target(ServiceNamespace=NS, ResourceId=r, ScalableDimension=DIM)


def test_json_protocol_errors(server, check_server):
    """Raw requests: unknown targets and bodies that are not JSON get AWS's
    json-1.1 error shape ({"__type", "message"} + x-amzn-ErrorType)."""
    def post(target: str | None, body: bytes):
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        if target:
            headers["X-Amz-Target"] = target
        status, hdrs, raw = signed_request(server.url, "POST", "/", body, headers=headers)
        return status, hdrs, json.loads(raw)

    for target in ["AnyScaleFrontendService.NoSuchOperation", "NoSuchService_20200101.DoIt", None]:
        status, hdrs, doc = post(target, b"{}")
        assert (status, hdrs.get("x-amzn-errortype"), doc["__type"]) == (
            400, "UnknownOperationException", "UnknownOperationException"), (target, doc)
        assert doc["message"]
    status, hdrs, doc = post("AnyScaleFrontendService.DescribeScalableTargets", b"{not json")
    assert (status, doc["__type"]) == (400, "SerializationException")
    assert hdrs["content-type"] == "application/x-amz-json-1.1"
    status, hdrs, doc = post("AnyScaleFrontendService.DescribeScalableTargets", b"{}")
    assert (status, doc["__type"]) == (400, "ValidationException")
    assert "serviceNamespace" in doc["message"]
    status, hdrs, doc = post("AnyScaleFrontendService.DescribeScalableTargets", b'{"ServiceNamespace": "lambda"}')
    assert status == 200 and "ScalableTargets" in doc
