"""The seed's section 11.4 "good example", end to end:

    Lambda A -> SQS -> Lambda B -> SQS -> Lambda C

A (invoked synchronously, standing in for API Gateway) queues each order;
event source mappings run B and C from their queues. Each function is
independent and retried on its own: a poison order that B cannot process is
retried through the queue's visibility timeout and ends in the queue's
dead-letter queue after maxReceiveCount receives (SQS redrive policy), while
every other order reaches C. The functions use boto3 inside the execution
environment, reaching stratus through AWS_ENDPOINT_URL as on AWS.
"""

from __future__ import annotations

import json

from harness import ACCOUNT, REGION, invoke_ok, make_zip, stratus_cli, unique_name, wait_until

APP = '''
import json, os
import boto3

sqs = boto3.client("sqs")

def a(event, context):
    for order in event["orders"]:
        sqs.send_message(QueueUrl=os.environ["NEXT_QUEUE"], MessageBody=json.dumps({"order": order}))
    return {"statusCode": 202, "queued": len(event["orders"])}

def b(event, context):
    failures = []
    for r in event["Records"]:
        order = json.loads(r["body"])["order"]
        if order == "poison":
            failures.append({"itemIdentifier": r["messageId"]})
            continue
        sqs.send_message(QueueUrl=os.environ["NEXT_QUEUE"],
                         MessageBody=json.dumps({"order": order, "processedBy": "B"}))
    return {"batchItemFailures": failures}

def c(event, context):
    for r in event["Records"]:
        print("C-GOT " + r["body"])
    return {}
'''


def test_lambda_sqs_lambda_sqs_lambda_chain(server, lambda_client, functions, client_factory, provided_sdk):
    sqs = client_factory("sqs")
    tag = unique_name("chain")
    dlq = sqs.create_queue(QueueName=f"{tag}-b-dlq")["QueueUrl"]
    q1 = sqs.create_queue(QueueName=f"{tag}-to-b", Attributes={
        "VisibilityTimeout": "2",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{tag}-b-dlq",
                                     "maxReceiveCount": "2"}),
    })["QueueUrl"]
    q2 = sqs.create_queue(QueueName=f"{tag}-to-c")["QueueUrl"]
    code = make_zip({"app.py": APP})
    fa = functions.python(code, handler="app.a", Timeout=30, Environment={"Variables": {"NEXT_QUEUE": q1}})
    fb = functions.python(code, handler="app.b", Timeout=30, Environment={"Variables": {"NEXT_QUEUE": q2}})
    fc = functions.python(code, handler="app.c", Timeout=30)
    mappings = [
        lambda_client.create_event_source_mapping(
            EventSourceArn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{tag}-to-b", FunctionName=fb, BatchSize=10,
            FunctionResponseTypes=["ReportBatchItemFailures"])["UUID"],
        lambda_client.create_event_source_mapping(
            EventSourceArn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{tag}-to-c", FunctionName=fc, BatchSize=10)["UUID"],
    ]
    try:
        orders = [f"ORD-{i}" for i in range(20)]
        out = invoke_ok(lambda_client, fa, {"orders": orders[:10] + ["poison"] + orders[10:]}).payload
        assert out == {"statusCode": 202, "queued": 21}

        def got_by_c():
            logs = stratus_cli("logs", fc, "--data-dir", str(server.data_dir)).stdout
            return [json.loads(l.split("C-GOT ", 1)[1]) for l in logs.splitlines() if "C-GOT " in l]

        wait_until(lambda: len({m["order"] for m in got_by_c()}) == 20, timeout=60,
                   what="every good order to reach Lambda C")
        assert {m["order"] for m in got_by_c()} == set(orders)
        assert all(m["processedBy"] == "B" for m in got_by_c())

        # The poison order: back in the queue after each failed batch, then
        # moved to the dead-letter queue after maxReceiveCount receives.
        def in_dlq():
            r = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1)
            return r.get("Messages", [])
        msgs = wait_until(in_dlq, timeout=60, what="the poison order in the dead-letter queue")
        assert json.loads(msgs[0]["Body"]) == {"order": "poison"}
        assert "poison" not in {m["order"] for m in got_by_c()}
    finally:
        for u in mappings:
            lambda_client.delete_event_source_mapping(UUID=u)
