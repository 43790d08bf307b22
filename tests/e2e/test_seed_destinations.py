"""The seed document's section 3 (Lambda Destinations) run as written, plus
each destination type and the dead-letter queue, through the AWS CLI and
boto3 against real functions.

Expected shapes: the seed's 3.3 record and the Lambda Developer Guide
("Capturing records of Lambda asynchronous invocations": the record's
fields; "Dead-letter queues": the RequestID, ErrorCode and ErrorMessage
attributes; EventBridge destinations carry source `lambda` and detail-type
`Lambda Function Invocation Result - Success`).
"""

from __future__ import annotations

import json
import time

import pytest

from harness import ACCOUNT, FunctionFactory, make_client, make_zip, start_server, stratus_cli, wait_until

REGION = "ap-northeast-1"  # the seed's region

ORDER_APP = '''
import json

def my_async_function(event, context):
    if event.get("fail"):
        raise ValueError("order " + str(event.get("orderId")) + " failed")
    return {"statusCode": 200, "body": json.dumps({"message": "Order processed successfully"})}

def order_processor(event, context):
    """Seed 3.4: the order processor, succeeding with the processed amount."""
    order_id = event["orderId"]
    amount = event["amount"]
    return {"statusCode": 200, "orderId": order_id, "processedAmount": amount, "status": "COMPLETED"}

def high_value_notification(event, context):
    print("HIGH-VALUE " + json.dumps(event, sort_keys=True))
    return {"notified": True}
'''


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("seed3") / "data", name="seed-3",
                     extra_args=["--time-scale", "60"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def clients(srv):
    return {name: make_client(srv.url, name, region=REGION) for name in ("lambda", "sqs", "sns", "events")}


@pytest.fixture(scope="module")
def app_zip():
    return make_zip({"app.py": ORDER_APP})


def arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


def receive_all(sqs, url, want: int, timeout: float = 30) -> list[dict]:
    got = []
    end = time.time() + timeout
    while len(got) < want and time.time() < end:
        r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                MessageAttributeNames=["All"])
        for m in r.get("Messages", []):
            got.append(m)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return got


def test_seed_3_1_destinations_with_the_aws_cli(srv, clients, app_zip, aws_cli):
    lam, sqs = clients["lambda"], clients["sqs"]
    ok_url = sqs.create_queue(QueueName="success-queue")["QueueUrl"]
    bad_url = sqs.create_queue(QueueName="failure-queue")["QueueUrl"]
    fns = FunctionFactory(lam, "seed3")
    fns.create(app_zip, name="my-async-function", handler="app.my_async_function")
    try:
        region = ["--region", REGION, "--endpoint-url", srv.url]
        aws_cli("lambda", "put-function-event-invoke-config", *region,
                "--function-name", "my-async-function",
                "--maximum-retry-attempts", "1",
                "--maximum-event-age-in-seconds", "3600",
                "--destination-config", json.dumps({
                    "OnSuccess": {"Destination": arn("sqs", "success-queue")},
                    "OnFailure": {"Destination": arn("sqs", "failure-queue")},
                }))
        got = aws_cli("lambda", "get-function-event-invoke-config", *region,
                      "--function-name", "my-async-function")
        assert got["MaximumRetryAttempts"] == 1
        assert got["MaximumEventAgeInSeconds"] == 3600
        assert got["DestinationConfig"]["OnSuccess"]["Destination"] == arn("sqs", "success-queue")

        # Seed 3.3: the record of a successful invocation.
        r = lam.invoke(FunctionName="my-async-function", InvocationType="Event",
                       Payload=json.dumps({"orderId": "ORD-001", "amount": 5000}))
        assert r["StatusCode"] == 202
        (m,) = receive_all(sqs, ok_url, 1)
        rec = json.loads(m["Body"])
        assert rec["version"] == "1.0"
        assert rec["requestContext"]["requestId"] == r["ResponseMetadata"]["RequestId"]
        assert rec["requestContext"]["condition"] == "Success"
        assert rec["requestContext"]["approximateInvokeCount"] == 1
        assert rec["requestContext"]["functionArn"].startswith(arn("lambda", "function:my-async-function"))
        assert rec["requestPayload"] == {"orderId": "ORD-001", "amount": 5000}
        assert rec["responseContext"]["statusCode"] == 200
        assert rec["responseContext"]["executedVersion"] == "$LATEST"
        assert rec["responsePayload"] == {"statusCode": 200,
                                          "body": json.dumps({"message": "Order processed successfully"})}

        # A failing event: one attempt and one retry, then the failure queue.
        r = lam.invoke(FunctionName="my-async-function", InvocationType="Event",
                       Payload=json.dumps({"orderId": "ORD-002", "amount": 1, "fail": True}))
        (m,) = receive_all(sqs, bad_url, 1)
        rec = json.loads(m["Body"])
        assert rec["requestContext"]["condition"] == "RetriesExhausted"
        assert rec["requestContext"]["approximateInvokeCount"] == 2
        assert rec["responseContext"]["functionError"] == "Unhandled"
        assert rec["responsePayload"]["errorType"] == "ValueError"

        aws_cli("lambda", "delete-function-event-invoke-config", *region,
                "--function-name", "my-async-function")
        with pytest.raises(Exception):
            lam.get_function_event_invoke_config(FunctionName="my-async-function")
    finally:
        fns.cleanup()


def test_seed_3_4_eventbridge_rule_routes_high_value_orders(srv, clients, app_zip):
    lam, events = clients["lambda"], clients["events"]
    fns = FunctionFactory(lam, "seed34")
    fns.create(app_zip, name="order-processor", handler="app.order_processor")
    fns.create(app_zip, name="high-value-notification", handler="app.high_value_notification")
    try:
        lam.put_function_event_invoke_config(
            FunctionName="order-processor",
            DestinationConfig={"OnSuccess": {"Destination": arn("events", "event-bus/default")}})
        # The seed's rule. `!GetAtt OrderProcessorFunction.Arn` is written
        # here as the ARN the invocation record carries: AWS's records name
        # the executed qualifier (`...:function:my-function:$LATEST`).
        pattern = {
            "source": ["lambda"],
            "detail-type": ["Lambda Function Invocation Result - Success"],
            "detail": {
                "requestContext": {"functionArn": [arn("lambda", "function:order-processor:$LATEST")]},
                "responsePayload": {"processedAmount": [{"numeric": [">=", 10000]}]},
            },
        }
        events.put_rule(Name="high-value-order-notification", EventPattern=json.dumps(pattern))
        events.put_targets(Rule="high-value-order-notification", Targets=[
            {"Id": "HighValueNotification", "Arn": arn("lambda", "function:high-value-notification")}])

        for order, amount in (("ORD-100", 15000), ("ORD-101", 500), ("ORD-102", 10000)):
            lam.invoke(FunctionName="order-processor", InvocationType="Event",
                       Payload=json.dumps({"orderId": order, "amount": amount}))

        def notified():
            out = stratus_cli("logs", "high-value-notification", "--region", REGION,
                              "--data-dir", str(srv.data_dir)).stdout
            return [json.loads(l.split("HIGH-VALUE ", 1)[1]) for l in out.splitlines() if "HIGH-VALUE " in l]

        wait_until(lambda: len(notified()) >= 2, timeout=30, what="two high-value notifications")
        time.sleep(2)  # the 500 order has had time to (wrongly) arrive
        got = notified()
        orders = sorted(e["detail"]["responsePayload"]["orderId"] for e in got)
        assert orders == ["ORD-100", "ORD-102"]
        e = got[0]
        assert e["source"] == "lambda"
        assert e["detail-type"] == "Lambda Function Invocation Result - Success"
        assert e["account"] == ACCOUNT and e["region"] == REGION
        assert e["detail"]["requestContext"]["condition"] == "Success"
    finally:
        events.remove_targets(Rule="high-value-order-notification", Ids=["HighValueNotification"])
        events.delete_rule(Name="high-value-order-notification")
        fns.cleanup()


def test_sns_destination_and_sqs_dead_letter_queue(srv, clients, app_zip):
    lam, sqs, sns = clients["lambda"], clients["sqs"], clients["sns"]
    topic = sns.create_topic(Name="order-results")["TopicArn"]
    sub_url = sqs.create_queue(QueueName="order-results-sub")["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn("sqs", "order-results-sub"))
    dlq_url = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
    fns = FunctionFactory(lam, "seeddlq")
    name = fns.python(app_zip, handler="app.my_async_function",
                      DeadLetterConfig={"TargetArn": arn("sqs", "orders-dlq")})
    try:
        lam.put_function_event_invoke_config(
            FunctionName=name, MaximumRetryAttempts=0,
            DestinationConfig={"OnSuccess": {"Destination": topic}})
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"orderId": "ORD-7"}))
        (m,) = receive_all(sqs, sub_url, 1)
        envelope = json.loads(m["Body"])
        assert envelope["Type"] == "Notification" and envelope["TopicArn"] == topic
        rec = json.loads(envelope["Message"])
        assert rec["requestContext"]["condition"] == "Success"
        assert rec["requestPayload"] == {"orderId": "ORD-7"}

        bad = lam.invoke(FunctionName=name, InvocationType="Event",
                         Payload=json.dumps({"orderId": "ORD-8", "fail": True}))
        (d,) = receive_all(sqs, dlq_url, 1)
        # The dead-letter message is the event itself, with AWS's attributes.
        assert json.loads(d["Body"]) == {"orderId": "ORD-8", "fail": True}
        attrs = d["MessageAttributes"]
        assert attrs["RequestID"]["StringValue"] == bad["ResponseMetadata"]["RequestId"]
        assert attrs["ErrorCode"]["DataType"] == "Number"
        assert attrs["ErrorCode"]["StringValue"] == "200"
        assert "ORD-8 failed" in attrs["ErrorMessage"]["StringValue"]
    finally:
        fns.cleanup()
