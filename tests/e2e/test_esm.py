"""Lambda event source mappings from SQS, end to end: the control plane
(botocore `lambda/2015-03-31`) and real pollers invoking a real Python
function (tests/functions/python_sqs_consumer), including partial batch
failures (`ReportBatchItemFailures`) and failed messages reaching the
queue's dead-letter queue.

Expected behaviour from "Using Lambda with Amazon SQS" and the
CreateEventSourceMapping API reference (BatchSize default 10 and range
1-10,000, MaximumBatchingWindowInSeconds 0-300, ScalingConfig
MaximumConcurrency 2-1,000, states Creating/Enabled/Disabling/Disabled/
Deleting, event record shape).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from harness import (ACCOUNT, FUNCTIONS_DIR, REGION, UUID_RE, FunctionFactory, make_zip,
                     start_server, wait_until)


@pytest.fixture(scope="module")
def consumer_zip() -> bytes:
    return make_zip({"app.py": (FUNCTIONS_DIR / "python_sqs_consumer" / "app.py").read_bytes()})


@pytest.fixture(scope="module")
def sqs(client_factory):
    return client_factory("sqs")


def qname(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def arn_of(sqs, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def drain(sqs, url: str, want: int, timeout: float = 60) -> list[dict]:
    """Receives (and deletes) messages until `want` arrived."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2,
                                MessageAttributeNames=["All"])
        for m in r.get("Messages", []):
            out.append(m)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def queue_empty(sqs, url: str) -> bool:
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"],
            a["ApproximateNumberOfMessagesDelayed"]) == ("0", "0", "0")


@pytest.fixture
def sink(sqs):
    url = sqs.create_queue(QueueName=qname("sink"))["QueueUrl"]
    yield url
    sqs.delete_queue(QueueUrl=url)


def consumer(functions, consumer_zip, sink: str, mode: str = "ok") -> str:
    return functions.python(consumer_zip, Timeout=30,
                            Environment={"Variables": {"SINK_QUEUE_URL": sink, "MODE": mode}})


def wait_state(lam, uuid_: str, state: str, timeout: float = 30):
    return wait_until(lambda: lam.get_event_source_mapping(UUID=uuid_)["State"] == state, timeout,
                      what=f"event source mapping {uuid_} to be {state}")


def delete_mapping(lam, uuid_: str):
    try:
        lam.delete_event_source_mapping(UUID=uuid_)
    except ClientError:
        pass


# --------------------------------------------------------------------------
# control plane
# --------------------------------------------------------------------------


def test_mapping_lifecycle(lambda_client, sqs, functions, consumer_zip, sink):
    lam = lambda_client
    src = sqs.create_queue(QueueName=qname("esm-src"))["QueueUrl"]
    src_arn = arn_of(sqs, src)
    name = consumer(functions, consumer_zip, sink)
    fn_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    try:
        created = lam.create_event_source_mapping(EventSourceArn=src_arn, FunctionName=name, Enabled=False)
        assert created["ResponseMetadata"]["HTTPStatusCode"] == 202
        u = created["UUID"]
        assert UUID_RE.match(u)
        assert created["BatchSize"] == 10
        assert created["MaximumBatchingWindowInSeconds"] == 0
        assert created["EventSourceArn"] == src_arn
        assert created["FunctionArn"] == fn_arn
        assert created["State"] == "Disabled"
        assert created["FunctionResponseTypes"] == []
        assert created["EventSourceMappingArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:event-source-mapping:{u}"
        got = lam.get_event_source_mapping(UUID=u)
        assert got["UUID"] == u and got["State"] == "Disabled"
        assert abs(got["LastModified"].timestamp() - time.time()) < 60

        with pytest.raises(lam.exceptions.ResourceConflictException):
            lam.create_event_source_mapping(EventSourceArn=src_arn, FunctionName=name)

        upd = lam.update_event_source_mapping(UUID=u, Enabled=True, BatchSize=5,
                                              FunctionResponseTypes=["ReportBatchItemFailures"],
                                              ScalingConfig={"MaximumConcurrency": 2})
        assert upd["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert upd["State"] == "Enabling"
        assert upd["BatchSize"] == 5
        assert upd["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert upd["ScalingConfig"] == {"MaximumConcurrency": 2}
        wait_state(lam, u, "Enabled")

        listed = lam.list_event_source_mappings(EventSourceArn=src_arn)["EventSourceMappings"]
        assert [m["UUID"] for m in listed] == [u]
        assert [m["UUID"] for m in lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]] == [u]
        assert [m["UUID"] for m in lam.list_event_source_mappings(FunctionName=fn_arn)["EventSourceMappings"]] == [u]
        other = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{qname('none')}"
        assert lam.list_event_source_mappings(EventSourceArn=other)["EventSourceMappings"] == []

        off = lam.update_event_source_mapping(UUID=u, Enabled=False)
        assert off["State"] in ("Disabling", "Disabled")
        wait_state(lam, u, "Disabled")

        gone = lam.delete_event_source_mapping(UUID=u)
        assert gone["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert gone["State"] == "Deleting"
        wait_until(lambda: not lam.list_event_source_mappings(EventSourceArn=src_arn)["EventSourceMappings"],
                   30, what="the mapping to disappear")
        with pytest.raises(lam.exceptions.ResourceNotFoundException):
            lam.get_event_source_mapping(UUID=u)
        with pytest.raises(lam.exceptions.ResourceNotFoundException):
            lam.delete_event_source_mapping(UUID=u)
    finally:
        sqs.delete_queue(QueueUrl=src)


def test_list_pagination(lambda_client, sqs, functions, consumer_zip, sink):
    lam = lambda_client
    name = consumer(functions, consumer_zip, sink)
    queues = [sqs.create_queue(QueueName=qname("esm-page"))["QueueUrl"] for _ in range(3)]
    uuids = []
    try:
        for q in queues:
            uuids.append(lam.create_event_source_mapping(EventSourceArn=arn_of(sqs, q), FunctionName=name,
                                                         Enabled=False)["UUID"])
        seen, marker, pages = [], None, 0
        while True:
            kw = {"FunctionName": name, "MaxItems": 2}
            if marker:
                kw["Marker"] = marker
            r = lam.list_event_source_mappings(**kw)
            pages += 1
            seen += [m["UUID"] for m in r["EventSourceMappings"]]
            marker = r.get("NextMarker")
            if not marker:
                break
        assert sorted(seen) == sorted(uuids)
        assert pages == 2
    finally:
        for u in uuids:
            delete_mapping(lam, u)
        for q in queues:
            sqs.delete_queue(QueueUrl=q)


def test_bad_mappings(lambda_client_novalidate, sqs, functions, consumer_zip, sink):
    lam = lambda_client_novalidate
    src = sqs.create_queue(QueueName=qname("esm-bad"))["QueueUrl"]
    fifo = sqs.create_queue(QueueName=qname("esm-bad") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    src_arn = arn_of(sqs, src)
    name = consumer(functions, consumer_zip, sink)
    try:
        cases = [
            ({"BatchSize": 0}, "ValidationException"),
            ({"BatchSize": 10001}, "ValidationException"),
            ({"BatchSize": 11}, "InvalidParameterValueException"),  # needs a batching window
            ({"MaximumBatchingWindowInSeconds": 301}, "ValidationException"),
            ({"ScalingConfig": {"MaximumConcurrency": 1}}, "ValidationException"),
            ({"ScalingConfig": {"MaximumConcurrency": 1001}}, "ValidationException"),
            ({"FunctionResponseTypes": ["Nope"]}, "ValidationException"),
        ]
        for extra, want in cases:
            with pytest.raises(ClientError) as ei:
                lam.create_event_source_mapping(EventSourceArn=src_arn, FunctionName=name, **extra)
            assert ei.value.response["Error"]["Code"] == want, extra
        with pytest.raises(ClientError) as ei:
            lam.create_event_source_mapping(EventSourceArn=arn_of(sqs, fifo), FunctionName=name, BatchSize=11,
                                            MaximumBatchingWindowInSeconds=1)
        assert ei.value.response["Error"]["Code"] == "InvalidParameterValueException"
        with pytest.raises(ClientError) as ei:
            lam.create_event_source_mapping(EventSourceArn=src_arn, FunctionName="no-such-function-x")
        assert ei.value.response["Error"]["Code"] == "ResourceNotFoundException"
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        with pytest.raises(ClientError) as ei:
            lam.create_event_source_mapping(EventSourceArn=src_arn + "-missing", FunctionName=name)
        assert ei.value.response["Error"]["Code"] == "InvalidParameterValueException"
        with pytest.raises(ClientError) as ei:
            lam.get_event_source_mapping(UUID=str(uuid.uuid4()))
        assert ei.value.response["Error"]["Code"] == "ResourceNotFoundException"
        assert lam.list_event_source_mappings(EventSourceArn=src_arn)["EventSourceMappings"] == []
    finally:
        sqs.delete_queue(QueueUrl=src)
        sqs.delete_queue(QueueUrl=fifo)


# --------------------------------------------------------------------------
# pollers
# --------------------------------------------------------------------------


def test_messages_reach_the_function_and_are_deleted(lambda_client, sqs, functions, consumer_zip, sink):
    lam = lambda_client
    src = sqs.create_queue(QueueName=qname("esm-ok"))["QueueUrl"]
    src_arn = arn_of(sqs, src)
    name = consumer(functions, consumer_zip, sink)
    u = lam.create_event_source_mapping(EventSourceArn=src_arn, FunctionName=name, BatchSize=10)["UUID"]
    try:
        sent = {}
        for i in range(5):
            r = sqs.send_message(QueueUrl=src, MessageBody=f"hello-{i}",
                                 MessageAttributes={"n": {"DataType": "Number", "StringValue": str(i)}})
            sent[r["MessageId"]] = f"hello-{i}"
        records = [json.loads(m["Body"]) for m in drain(sqs, sink, 5)]
        assert sorted(r["messageId"] for r in records) == sorted(sent)
        for r in records:
            assert r["body"] == sent[r["messageId"]]
            assert r["eventSource"] == "aws:sqs"
            assert r["eventSourceARN"] == src_arn
            assert r["awsRegion"] == REGION
            assert r["receiptHandle"]
            assert r["md5OfBody"] == hashlib.md5(r["body"].encode()).hexdigest()
            a = r["attributes"]
            assert a["ApproximateReceiveCount"] == "1"
            for k in ("SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"):
                assert a[k]
            n = r["messageAttributes"]["n"]
            assert n["dataType"] == "Number"
            assert n["stringValue"] == r["body"].split("-")[1]
        wait_until(lambda: queue_empty(sqs, src), 30, what="the source queue to be empty")
        assert lam.get_event_source_mapping(UUID=u)["State"] == "Enabled"
    finally:
        delete_mapping(lam, u)
        sqs.delete_queue(QueueUrl=src)


def test_batching_window_gathers_more_than_ten(lambda_client, sqs, functions, consumer_zip, sink):
    lam = lambda_client
    src = sqs.create_queue(QueueName=qname("esm-window"))["QueueUrl"]
    name = consumer(functions, consumer_zip, sink)
    for b in range(3):
        sqs.send_message_batch(QueueUrl=src, Entries=[
            {"Id": str(i), "MessageBody": f"w-{b}-{i}"} for i in range(10 if b < 2 else 5)])
    u = lam.create_event_source_mapping(EventSourceArn=arn_of(sqs, src), FunctionName=name, BatchSize=25,
                                        MaximumBatchingWindowInSeconds=2,
                                        ScalingConfig={"MaximumConcurrency": 2})["UUID"]
    try:
        got = drain(sqs, sink, 25, timeout=60)
        assert sorted(json.loads(m["Body"])["body"] for m in got) == sorted(
            f"w-{b}-{i}" for b in range(3) for i in range(10 if b < 2 else 5))
        sizes = [int(m["MessageAttributes"]["batch-size"]["StringValue"]) for m in got]
        # One invoke carried more than one ReceiveMessage's worth (10).
        assert max(sizes) > 10, sizes
        assert max(sizes) <= 25
    finally:
        delete_mapping(lam, u)
        sqs.delete_queue(QueueUrl=src)


def _redrive_queues(sqs, prefix: str):
    dlq = sqs.create_queue(QueueName=qname(prefix + "-dlq"))["QueueUrl"]
    policy = json.dumps({"deadLetterTargetArn": arn_of(sqs, dlq), "maxReceiveCount": 2})
    # The visibility timeout must outlast an invoke (AWS advises six times
    # the function timeout); 4 s keeps a cold start on a busy host from
    # handing the same batch to a second poller while the test stays short.
    src = sqs.create_queue(QueueName=qname(prefix),
                           Attributes={"RedrivePolicy": policy, "VisibilityTimeout": "4"})["QueueUrl"]
    return src, dlq


def test_partial_batch_failures_reach_the_dead_letter_queue(lambda_client, sqs, functions, consumer_zip, sink):
    lam = lambda_client
    src, dlq = _redrive_queues(sqs, "esm-partial")
    name = consumer(functions, consumer_zip, sink, mode="report")
    # A warm environment: the first batch does not wait for a cold start.
    lam.invoke(FunctionName=name, Payload=b'{"Records": []}')
    # Messages first, then the mapping: they arrive in one batch.
    bodies = ["ok-1", "fail-1", "ok-2"]
    sqs.send_message_batch(QueueUrl=src, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)])
    u = lam.create_event_source_mapping(EventSourceArn=arn_of(sqs, src), FunctionName=name, BatchSize=10,
                                        FunctionResponseTypes=["ReportBatchItemFailures"],
                                        ScalingConfig={"MaximumConcurrency": 2})["UUID"]
    try:
        dead = drain(sqs, dlq, 1, timeout=60)
        assert [m["Body"] for m in dead] == ["fail-1"]
        wait_until(lambda: queue_empty(sqs, src), 30, what="the source queue to be empty")
        seen = [json.loads(m["Body"])["body"] for m in drain(sqs, sink, 4, timeout=10)]
        # The ok messages were delivered once (deleted after the first
        # batch); the failing one twice (maxReceiveCount 2).
        assert seen.count("ok-1") == 1 and seen.count("ok-2") == 1
        assert seen.count("fail-1") == 2
        assert "Messages" not in sqs.receive_message(QueueUrl=dlq)
    finally:
        delete_mapping(lam, u)
        sqs.delete_queue(QueueUrl=src)
        sqs.delete_queue(QueueUrl=dlq)


def test_function_error_returns_the_batch(lambda_client, sqs, functions, consumer_zip, sink):
    lam = lambda_client
    src, dlq = _redrive_queues(sqs, "esm-raise")
    name = consumer(functions, consumer_zip, sink, mode="raise")
    sqs.send_message_batch(QueueUrl=src, Entries=[{"Id": "a", "MessageBody": "fine"},
                                                  {"Id": "b", "MessageBody": "fail-x"}])
    u = lam.create_event_source_mapping(EventSourceArn=arn_of(sqs, src), FunctionName=name)["UUID"]
    try:
        # Without ReportBatchItemFailures a failed invoke fails the whole
        # batch: both messages end in the dead-letter queue.
        dead = drain(sqs, dlq, 2, timeout=60)
        assert sorted(m["Body"] for m in dead) == ["fail-x", "fine"]
        wait_until(lambda: queue_empty(sqs, src), 30, what="the source queue to be empty")
    finally:
        delete_mapping(lam, u)
        sqs.delete_queue(QueueUrl=src)
        sqs.delete_queue(QueueUrl=dlq)


def test_mappings_survive_restart(tmp_path, consumer_zip):
    first = start_server(tmp_path / "data", name="esm-restart-1")
    lam, sqs = first.client(), first.client("sqs")
    factory = FunctionFactory(lam, "esm-restart")
    sink = sqs.create_queue(QueueName="sink")["QueueUrl"]
    src = sqs.create_queue(QueueName="src")["QueueUrl"]
    name = factory.python(consumer_zip, Timeout=30, Environment={"Variables": {"SINK_QUEUE_URL": sink}})
    u = lam.create_event_source_mapping(EventSourceArn=arn_of(sqs, src), FunctionName=name)["UUID"]
    wait_state(lam, u, "Enabled")
    # Pollers in a long poll do not hold the shutdown up.
    assert first.stop(timeout=15) == 0

    second = start_server(tmp_path / "data", name="esm-restart-2")
    lam, sqs = second.client(), second.client("sqs")
    got = lam.get_event_source_mapping(UUID=u)
    assert got["State"] == "Enabled"
    src = sqs.get_queue_url(QueueName="src")["QueueUrl"]
    sink = sqs.get_queue_url(QueueName="sink")["QueueUrl"]
    sqs.send_message(QueueUrl=src, MessageBody="after-restart")
    (m,) = drain(sqs, sink, 1, timeout=60)
    assert json.loads(m["Body"])["body"] == "after-restart"
    second.stop()
