"""Step Functions tasks that call services stratus does not implement,
forwarded to an upstream AWS-compatible endpoint (moto's server, started
here on loopback): the seed's section 4.7 workflow (DynamoDB putItem, SNS
publish, ECS runTask.sync), AWS SDK integrations with Step Functions' error
naming, and the seed's section 4.6 Distributed Map reading from and
writing to S3.

Expected behaviour: Step Functions Developer Guide ("Learning to use AWS
service SDK integrations": errors are `ServiceName.ErrorName` with an
Exception suffix; "Call DynamoDB with Step Functions"; "Run Amazon ECS
tasks": `.sync` waits for the task to stop; "ItemReader (Map)" and
"ResultWriter (Map)": items from listObjectsV2 / getObject by InputType,
results in a manifest.json and SUCCEEDED_n.json files).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from harness import ACCOUNT, FunctionFactory, free_port, make_client, make_zip, start_server, wait_until

REGION = "ap-northeast-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sfn"


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    port = free_port()
    launcher = Path(__file__).resolve().parent / "support" / "moto_server.py"
    proc = subprocess.Popen([sys.executable, str(launcher), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    end = time.time() + 30
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def moto_client(url, service):
    return boto3.client(service, endpoint_url=url, region_name=REGION, aws_access_key_id="test",
                        aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def srv(tmp_path_factory, moto):
    s = start_server(tmp_path_factory.mktemp("sfn-up") / "data", name="sfn-upstream",
                     extra_args=["--upstream-endpoint", moto])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def sfn(srv):
    return make_client(srv.url, "stepfunctions", region=REGION)


def run(sfn, definition: dict, input_: dict, name: str, timeout: float = 60) -> dict:
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps(input_))["executionArn"]
    wait_until(lambda: sfn.describe_execution(executionArn=ex)["status"] != "RUNNING", timeout=timeout,
               what=f"{name} to finish")
    return sfn.describe_execution(executionArn=ex) | {"executionArn": ex}


def test_seed_4_7_dynamodb_sns_and_ecs_run_task_sync(srv, sfn, moto):
    ddb = moto_client(moto, "dynamodb")
    ddb.create_table(TableName="Orders", KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "orderId", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    ecs = moto_client(moto, "ecs")
    cluster = ecs.create_cluster(clusterName="my-cluster")["cluster"]["clusterArn"]
    td = ecs.register_task_definition(
        family="process-order", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256",
        memory="512", containerDefinitions=[{"name": "processor", "image": "busybox", "memory": 512}],
    )["taskDefinition"]["taskDefinitionArn"]
    # The seed's subnet and security group ids are placeholders: make real
    # ones (moto checks them).
    ec2 = moto_client(moto, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    sg = ec2.create_security_group(GroupName="orders", Description="orders", VpcId=vpc)["GroupId"]
    sns = make_client(srv.url, "sns", region=REGION)
    sqs = make_client(srv.url, "sqs", region=REGION)
    topic = sns.create_topic(Name="order-notifications")["TopicArn"]
    q = sqs.create_queue(QueueName="order-notifications-sub")["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs",
                  Endpoint=f"arn:aws:sqs:{REGION}:{ACCOUNT}:order-notifications-sub")

    definition = {
        "Comment": "AWS SDK 統合による直接サービス呼び出し",
        "StartAt": "PutItemToDynamoDB",
        "States": {
            "PutItemToDynamoDB": {
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:putItem",
                "Parameters": {
                    "TableName": "Orders",
                    "Item": {
                        "orderId": {"S.$": "$.orderId"},
                        "status": {"S": "PENDING"},
                        "createdAt": {"S.$": "$$.State.EnteredTime"},
                    },
                },
                "ResultPath": None,
                "Next": "PublishToSNS",
            },
            "PublishToSNS": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {
                    "TopicArn": topic,
                    "Message.$": "States.Format('New order: {}', $.orderId)",
                    "Subject": "New Order Received",
                },
                "ResultPath": None,
                "Next": "StartECSTask",
            },
            "StartECSTask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::ecs:runTask.sync",
                "Parameters": {
                    "LaunchType": "FARGATE",
                    "Cluster": cluster,
                    "TaskDefinition": td,
                    "Overrides": {"ContainerOverrides": [
                        {"Name": "processor", "Environment": [{"Name": "ORDER_ID", "Value.$": "$.orderId"}]}]},
                    "NetworkConfiguration": {"AwsvpcConfiguration": {
                        "Subnets": subnets, "SecurityGroups": [sg]}},
                },
                "End": True,
            },
        },
    }
    arn = sfn.create_state_machine(name="seed-4-7", definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"orderId": "ORD-47"}))["executionArn"]
    # The task runs until ECS says it stopped: stop it the way an operator would.
    wait_until(lambda: ecs.list_tasks(cluster=cluster)["taskArns"]
               or sfn.describe_execution(executionArn=ex)["status"] != "RUNNING",
               timeout=60, what="the ECS task to start")
    time.sleep(1)
    d = sfn.describe_execution(executionArn=ex)
    assert d["status"] == "RUNNING", (d.get("error"), d.get("cause"))
    for t in ecs.list_tasks(cluster=cluster)["taskArns"]:
        ecs.stop_task(cluster=cluster, task=t, reason="done")
    wait_until(lambda: sfn.describe_execution(executionArn=ex)["status"] != "RUNNING", timeout=60,
               what="the execution to finish")
    d = sfn.describe_execution(executionArn=ex)
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out["LastStatus"] == "STOPPED"
    item = ddb.get_item(TableName="Orders", Key={"orderId": {"S": "ORD-47"}})["Item"]
    assert item["status"] == {"S": "PENDING"}
    assert item["createdAt"]["S"].endswith("Z")
    msgs = sqs.receive_message(QueueUrl=q, WaitTimeSeconds=5)["Messages"]
    env = json.loads(msgs[0]["Body"])
    assert env["Message"] == "New order: ORD-47" and env["Subject"] == "New Order Received"


def test_sdk_errors_are_named_for_retry_and_catch(srv, sfn, moto):
    ddb = moto_client(moto, "dynamodb")
    ddb.create_table(TableName="Once", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    put = {
        "Type": "Task",
        "Parameters": {"TableName": "Once", "Item": {"id": {"S": "1"}},
                       "ConditionExpression": "attribute_not_exists(id)"},
    }
    definition = {
        "StartAt": "First",
        "States": {
            "First": {**put, "Resource": "arn:aws:states:::dynamodb:putItem", "ResultPath": None, "Next": "Again"},
            "Again": {**put, "Resource": "arn:aws:states:::dynamodb:putItem", "Next": "Unreachable",
                      "Catch": [{"ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"],
                                 "ResultPath": "$.caught", "Next": "Sdk"}]},
            "Unreachable": {"Type": "Fail", "Error": "Unexpected"},
            "Sdk": {**put, "Resource": "arn:aws:states:::aws-sdk:dynamodb:putItem", "Next": "Unreachable",
                    "Catch": [{"ErrorEquals": ["DynamoDb.ConditionalCheckFailedException"],
                               "ResultPath": "$.sdkCaught", "Next": "Read"}]},
            "Read": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                     "Parameters": {"Bucket": "no-such-bucket-x", "Key": "k"}, "Next": "Unreachable",
                     "Catch": [{"ErrorEquals": ["S3.NoSuchBucketException"], "ResultPath": "$.s3", "Next": "Done"}]},
            "Done": {"Type": "Succeed"},
        },
    }
    d = run(sfn, definition, {}, "sdk-errors")
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out["caught"]["Error"] == "DynamoDB.ConditionalCheckFailedException"
    assert out["sdkCaught"]["Error"] == "DynamoDb.ConditionalCheckFailedException"
    assert out["s3"]["Error"] == "S3.NoSuchBucketException"


def test_seed_4_6_distributed_map_over_s3(srv, sfn, moto):
    s3 = moto_client(moto, "s3")
    for b in ("my-input-bucket", "my-output-bucket"):
        s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": REGION})
    for i in range(5):
        s3.put_object(Bucket="my-input-bucket", Key=f"data/file-{i}.txt", Body=b"x" * (i + 1))
    s3.put_object(Bucket="my-input-bucket", Key="other/skip.txt", Body=b"skip")
    lam = make_client(srv.url, region=REGION)
    fns = FunctionFactory(lam, "dmap")
    fns.create(make_zip({"app.py": "def handler(e, c):\n    return {'key': e['Key'], 'size': e['Size']}\n"}),
               name="process-file")
    definition = {
        "Comment": "S3 の大量ファイルを分散並列処理",
        "StartAt": "DistributedProcess",
        "States": {
            "DistributedProcess": {
                "Type": "Map",
                "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2",
                               "Parameters": {"Bucket": "my-input-bucket", "Prefix": "data/"}},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                    "StartAt": "ProcessFile",
                    "States": {"ProcessFile": {
                        "Type": "Task",
                        "Resource": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:process-file",
                        "End": True}},
                },
                "MaxConcurrency": 1000,
                "Label": "DistributedProcess",
                "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                                 "Parameters": {"Bucket": "my-output-bucket", "Prefix": "results/"}},
                "End": True,
            }
        },
    }
    try:
        d = run(sfn, definition, {}, "seed-4-6")
        assert d["status"] == "SUCCEEDED", d
        out = json.loads(d["output"])
        assert ":mapRun:seed-4-6/DistributedProcess:" in out["MapRunArn"]
        details = out["ResultWriterDetails"]
        assert details["Bucket"] == "my-output-bucket"
        assert details["Key"].startswith("results/") and details["Key"].endswith("/manifest.json")
        manifest = json.loads(s3.get_object(Bucket="my-output-bucket", Key=details["Key"])["Body"].read())
        assert manifest["MapRunArn"] == out["MapRunArn"]
        (succeeded,) = manifest["ResultFiles"]["SUCCEEDED"]
        results = json.loads(s3.get_object(Bucket="my-output-bucket", Key=succeeded["Key"])["Body"].read())
        outputs = sorted(json.loads(r["Output"])["key"] for r in results)
        assert outputs == [f"data/file-{i}.txt" for i in range(5)]
        assert all(r["Status"] == "SUCCEEDED" for r in results)
        # The parent's history shows the map run, not the children's states.
        types = [e["type"] for e in sfn.get_execution_history(executionArn=d["executionArn"])["events"]]
        assert "MapRunStarted" in types and "MapRunSucceeded" in types
        assert "TaskStateEntered" not in types and "LambdaFunctionScheduled" not in types
    finally:
        fns.cleanup()


def test_item_reader_csv_jsonl_and_item_batcher(srv, sfn, moto):
    s3 = moto_client(moto, "s3")
    s3.create_bucket(Bucket="reader-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="reader-bucket", Key="rows.csv", Body=b"id,name\n1,apple\n2,banana\n3,cherry\n")
    s3.put_object(Bucket="reader-bucket", Key="rows.jsonl", Body=b'{"n":1}\n{"n":2}\n')

    def dmap(reader, batcher=None):
        m = {"Type": "Map", "ItemReader": reader,
             "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                               "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
             "End": True}
        if batcher:
            m["ItemBatcher"] = batcher
        return {"StartAt": "M", "States": {"M": m}}

    d = run(sfn, dmap({"Resource": "arn:aws:states:::s3:getObject",
                       "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
                       "Parameters": {"Bucket": "reader-bucket", "Key": "rows.csv"}}), {}, "csv-reader")
    assert json.loads(d["output"]) == [{"id": "1", "name": "apple"}, {"id": "2", "name": "banana"},
                                       {"id": "3", "name": "cherry"}]
    d = run(sfn, dmap({"Resource": "arn:aws:states:::s3:getObject",
                       "ReaderConfig": {"InputType": "JSONL", "MaxItems": 1},
                       "Parameters": {"Bucket": "reader-bucket", "Key": "rows.jsonl"}}), {}, "jsonl-reader")
    assert json.loads(d["output"]) == [{"n": 1}]
    d = run(sfn, dmap({"Resource": "arn:aws:states:::s3:getObject",
                       "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
                       "Parameters": {"Bucket": "reader-bucket", "Key": "rows.csv"}},
                      {"MaxItemsPerBatch": 2, "BatchInput": {"job": "j1"}}), {}, "batched")
    assert json.loads(d["output"]) == [
        {"BatchInput": {"job": "j1"}, "Items": [{"id": "1", "name": "apple"}, {"id": "2", "name": "banana"}]},
        {"BatchInput": {"job": "j1"}, "Items": [{"id": "3", "name": "cherry"}]},
    ]


def test_without_an_upstream_the_task_says_what_to_configure(tmp_path):
    s = start_server(tmp_path / "data", name="sfn-no-upstream")
    try:
        c = make_client(s.url, "stepfunctions", region=REGION)
        d = run(c, {"StartAt": "P", "States": {"P": {
            "Type": "Task", "Resource": "arn:aws:states:::dynamodb:getItem",
            "Parameters": {"TableName": "t", "Key": {"id": {"S": "1"}}}, "End": True}}}, {}, "no-upstream")
        assert d["status"] == "FAILED"
        assert d["error"] == "States.TaskFailed"
        assert "--upstream-endpoint" in d["cause"]
    finally:
        s.stop()
