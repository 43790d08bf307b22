"""Amazon SQS end to end: boto3 (the json protocol current botocore speaks)
and hand-built query-protocol requests (form bodies, XML answers, as older
SDKs send them), against a real `stratus server`.

Expected values come from the SQS API reference and developer guide:
defaults and limits of queue attributes, error codes of each action, the
MD5 digests (body: MD5 of the UTF-8 body; attributes: the encoding the
developer guide documents, computed here with hashlib), FIFO semantics.
"""

from __future__ import annotations

import hashlib
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from harness import ACCOUNT, REGION, start_server

NS = "{http://queue.amazonaws.com/doc/2012-11-05/}"
MAX_BYTES = 262_144


def qname(prefix: str = "q") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def attrs_md5(attrs: dict) -> str:
    """MD5OfMessageAttributes as the SQS Developer Guide documents it."""
    def enc(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b
    buf = b""
    for name in sorted(attrs):
        a = attrs[name]
        buf += enc(name.encode()) + enc(a["DataType"].encode())
        if a["DataType"].startswith("Binary"):
            buf += b"\x02" + enc(a["BinaryValue"])
        else:
            buf += b"\x01" + enc(a["StringValue"].encode())
    return md5(buf)


@pytest.fixture(scope="module")
def sqs(client_factory):
    return client_factory("sqs")


@pytest.fixture
def queue(sqs):
    url = sqs.create_queue(QueueName=qname())["QueueUrl"]
    yield url
    try:
        sqs.delete_queue(QueueUrl=url)
    except ClientError:
        pass


def code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def status(e: ClientError) -> int:
    return e.response["ResponseMetadata"]["HTTPStatusCode"]


# --------------------------------------------------------------------------
# the query protocol
# --------------------------------------------------------------------------


def query(endpoint: str, action: str, params: dict | None = None, *, path: str = "/",
          sign: bool = True) -> tuple[int, ET.Element]:
    form = {"Action": action, "Version": "2012-11-05", **(params or {})}
    body = urllib.parse.urlencode(form).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    url = endpoint + path
    if sign:
        req = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(Credentials("test", "test"), "sqs", REGION).add_auth(req)
        headers = dict(req.prepare().headers.items())
    ureq = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(ureq, timeout=60) as r:
            return r.status, ET.fromstring(r.read())
    except urllib.error.HTTPError as e:
        return e.code, ET.fromstring(e.read())


def text(el: ET.Element, path: str) -> str | None:
    found = el.find(_ns(path))
    return None if found is None else (found.text or "")


def _ns(path: str) -> str:
    return "/".join(f".//{NS}{p}" if i == 0 else f"{NS}{p}" for i, p in enumerate(path.split("/")))


def error_code_xml(root: ET.Element) -> str | None:
    return text(root, "Error/Code")


# --------------------------------------------------------------------------
# queues
# --------------------------------------------------------------------------


def test_create_get_list_delete(sqs, endpoint):
    name = qname("life")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert url == f"{endpoint}/{ACCOUNT}/{name}"
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    # Idempotent with the same (here: no) attributes.
    assert sqs.create_queue(QueueName=name)["QueueUrl"] == url
    listed = sqs.list_queues(QueueNamePrefix=name)["QueueUrls"]
    assert listed == [url]
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as ei:
        sqs.get_queue_url(QueueName=name)
    assert code(ei.value) == "AWS.SimpleQueueService.NonExistentQueue"
    assert status(ei.value) == 400
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix=name)


def test_default_attributes(sqs, queue):
    a = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    name = queue.rsplit("/", 1)[1]
    # Defaults from the CreateQueue API reference.
    assert a["DelaySeconds"] == "0"
    assert a["MaximumMessageSize"] == str(MAX_BYTES)
    assert a["MessageRetentionPeriod"] == "345600"
    assert a["ReceiveMessageWaitTimeSeconds"] == "0"
    assert a["VisibilityTimeout"] == "30"
    assert a["QueueArn"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
    for k in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
              "ApproximateNumberOfMessagesDelayed"):
        assert a[k] == "0"
    now = time.time()
    assert abs(int(a["CreatedTimestamp"]) - now) < 60
    assert abs(int(a["LastModifiedTimestamp"]) - now) < 60
    assert "FifoQueue" not in a
    one = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["VisibilityTimeout"])["Attributes"]
    assert one == {"VisibilityTimeout": "30"}
    with pytest.raises(ClientError) as ei:
        sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["NoSuchAttribute"])
    assert code(ei.value) == "InvalidAttributeName"


def test_create_with_attributes_and_conflict(sqs):
    name = qname("attrs")
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45", "DelaySeconds": "2"},
                           tags={"team": "a"})["QueueUrl"]
    try:
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert a["VisibilityTimeout"] == "45" and a["DelaySeconds"] == "2"
        assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "a"}
        # Same attributes: the same queue.
        assert sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"] == url
        with pytest.raises(sqs.exceptions.QueueNameExists) as ei:
            sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "46"})
        assert code(ei.value) == "QueueAlreadyExists"
    finally:
        sqs.delete_queue(QueueUrl=url)


@pytest.mark.parametrize("name", ["", "has space", "a" * 81, "dot.name", "x.fifo"])
def test_bad_queue_names(sqs, name):
    with pytest.raises(ClientError) as ei:
        sqs.create_queue(QueueName=name)
    assert code(ei.value) in ("InvalidParameterValue", "MissingParameter")
    assert status(ei.value) == 400


@pytest.mark.parametrize("attr,value", [
    ("VisibilityTimeout", "43201"), ("DelaySeconds", "901"), ("MessageRetentionPeriod", "59"),
    ("MaximumMessageSize", "1023"), ("ReceiveMessageWaitTimeSeconds", "21"),
    ("RedrivePolicy", '{"maxReceiveCount": 2}'),
])
def test_bad_attribute_values(sqs, attr, value):
    with pytest.raises(ClientError) as ei:
        sqs.create_queue(QueueName=qname("bad"), Attributes={attr: value})
    assert code(ei.value) == "InvalidAttributeValue"


def test_set_attributes_and_tags(sqs, queue):
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "5",
                                                          "MessageRetentionPeriod": "120"})
    a = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert a["VisibilityTimeout"] == "5" and a["MessageRetentionPeriod"] == "120"
    with pytest.raises(ClientError) as ei:
        sqs.set_queue_attributes(QueueUrl=queue, Attributes={"QueueArn": "x"})
    assert code(ei.value) == "InvalidAttributeName"
    sqs.tag_queue(QueueUrl=queue, Tags={"a": "1", "b": "2"})
    assert sqs.list_queue_tags(QueueUrl=queue)["Tags"] == {"a": "1", "b": "2"}
    sqs.untag_queue(QueueUrl=queue, TagKeys=["a"])
    assert sqs.list_queue_tags(QueueUrl=queue)["Tags"] == {"b": "2"}


def test_list_queues_pagination(sqs):
    prefix = qname("page")
    urls = [sqs.create_queue(QueueName=f"{prefix}-{i}")["QueueUrl"] for i in range(5)]
    try:
        seen, token, pages = [], None, 0
        while True:
            kw = {"QueueNamePrefix": prefix, "MaxResults": 2}
            if token:
                kw["NextToken"] = token
            r = sqs.list_queues(**kw)
            pages += 1
            seen += r.get("QueueUrls", [])
            token = r.get("NextToken")
            if not token:
                break
        assert sorted(seen) == sorted(urls)
        assert pages == 3
    finally:
        for u in urls:
            sqs.delete_queue(QueueUrl=u)


def test_nonexistent_queue_everywhere(sqs, endpoint):
    url = f"{endpoint}/{ACCOUNT}/{qname('missing')}"
    calls = [
        lambda: sqs.send_message(QueueUrl=url, MessageBody="x"),
        lambda: sqs.receive_message(QueueUrl=url),
        lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]),
        lambda: sqs.delete_queue(QueueUrl=url),
        lambda: sqs.purge_queue(QueueUrl=url),
    ]
    for call in calls:
        with pytest.raises(sqs.exceptions.QueueDoesNotExist):
            call()


# --------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------


def test_send_receive_delete_with_digests(sqs, queue):
    attrs = {
        "s": {"DataType": "String", "StringValue": "héllo"},
        "n": {"DataType": "Number", "StringValue": "42"},
        "b": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
        "c": {"DataType": "String.custom", "StringValue": "x"},
    }
    body = "Hello, wörld"
    sent = sqs.send_message(QueueUrl=queue, MessageBody=body, MessageAttributes=attrs)
    assert sent["MD5OfMessageBody"] == md5(body.encode())
    assert sent["MD5OfMessageAttributes"] == attrs_md5(attrs)
    got = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"],
                              MessageSystemAttributeNames=["All"])["Messages"]
    assert len(got) == 1
    m = got[0]
    assert m["MessageId"] == sent["MessageId"]
    assert m["Body"] == body
    assert m["MD5OfBody"] == md5(body.encode())
    assert m["MessageAttributes"]["b"]["BinaryValue"] == b"\x00\x01\xff"
    assert m["MessageAttributes"]["s"]["StringValue"] == "héllo"
    assert m["MD5OfMessageAttributes"] == attrs_md5(attrs)
    a = m["Attributes"]
    assert a["ApproximateReceiveCount"] == "1"
    assert a["SenderId"]
    assert abs(int(a["SentTimestamp"]) / 1000 - time.time()) < 60
    assert int(a["ApproximateFirstReceiveTimestamp"]) >= int(a["SentTimestamp"])
    # Only the attributes asked for.
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    again = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["s", "n"],
                                AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
    assert set(again["MessageAttributes"]) == {"s", "n"}
    assert again["MD5OfMessageAttributes"] == attrs_md5({k: attrs[k] for k in ("s", "n")})
    assert again["Attributes"] == {"ApproximateReceiveCount": "2"}
    assert again["ReceiptHandle"] != m["ReceiptHandle"]
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=again["ReceiptHandle"])
    a = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert a["ApproximateNumberOfMessages"] == "0" and a["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_attribute_name_prefixes(sqs, queue):
    attrs = {"foo.a": {"DataType": "String", "StringValue": "1"},
             "foo.b": {"DataType": "String", "StringValue": "2"},
             "bar": {"DataType": "String", "StringValue": "3"}}
    sqs.send_message(QueueUrl=queue, MessageBody="x", MessageAttributes=attrs)
    m = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["foo.*"])["Messages"][0]
    assert set(m["MessageAttributes"]) == {"foo.a", "foo.b"}
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    m = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=[".*"])["Messages"][0]
    assert set(m["MessageAttributes"]) == set(attrs)
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    m = sqs.receive_message(QueueUrl=queue)["Messages"][0]
    assert "MessageAttributes" not in m and "MD5OfMessageAttributes" not in m


def test_visibility_timeout_and_counts(sqs, queue):
    sqs.send_message(QueueUrl=queue, MessageBody="v")
    m = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=2)["Messages"][0]
    a = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert (a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"]) == ("0", "1")
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    time.sleep(2.3)
    m2 = sqs.receive_message(QueueUrl=queue)["Messages"][0]
    assert m2["MessageId"] == m["MessageId"]
    # The first receipt no longer applies to the message in flight.
    with pytest.raises(ClientError) as ei:
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=5)
    assert code(ei.value) == "AWS.SimpleQueueService.MessageNotInflight"
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=m2["ReceiptHandle"], VisibilityTimeout=0)
    assert sqs.receive_message(QueueUrl=queue)["Messages"][0]["MessageId"] == m["MessageId"]


def test_delay_seconds(sqs, queue):
    sqs.send_message(QueueUrl=queue, MessageBody="later", DelaySeconds=2)
    a = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert a["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    started = time.monotonic()
    got = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5)
    assert got["Messages"][0]["Body"] == "later"
    assert time.monotonic() - started < 4.5
    # A queue's DelaySeconds applies to messages without their own.
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"DelaySeconds": "1"})
    sqs.send_message(QueueUrl=queue, MessageBody="q-delay")
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    time.sleep(1.2)
    assert sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"] == "q-delay"


def test_long_poll_wakes_on_send(sqs, queue):
    result = {}

    def receive():
        t0 = time.monotonic()
        result["r"] = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5)
        result["t"] = time.monotonic() - t0

    th = threading.Thread(target=receive)
    th.start()
    time.sleep(1.0)
    sent_at = time.monotonic()
    sqs.send_message(QueueUrl=queue, MessageBody="wake")
    th.join(10)
    assert result["r"]["Messages"][0]["Body"] == "wake"
    # The receive ends about when the message arrives, not at the 5 s wait.
    assert result["t"] < 1.0 + 1.0 + (time.monotonic() - sent_at)
    assert result["t"] < 3.0
    # An empty long poll waits its full time.
    t0 = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)
    assert time.monotonic() - t0 >= 0.9


def test_receive_parameters_out_of_range(client_factory, queue):
    sqs = client_factory("sqs", validate=False)
    for kw in ({"MaxNumberOfMessages": 11}, {"MaxNumberOfMessages": 0}, {"WaitTimeSeconds": 21},
               {"VisibilityTimeout": 43201}):
        with pytest.raises(ClientError) as ei:
            sqs.receive_message(QueueUrl=queue, **kw)
        assert code(ei.value) == "InvalidParameterValue", kw


def test_max_number_of_messages(sqs, queue):
    sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)])
    got = []
    for _ in range(10):
        r = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
        got += r.get("Messages", [])
        if len(got) >= 10:
            break
    assert len(got) == 10
    assert len({m["MessageId"] for m in got}) == 10


def test_message_size_limit(sqs, queue):
    ok = "x" * MAX_BYTES
    sqs.send_message(QueueUrl=queue, MessageBody=ok)
    with pytest.raises(ClientError) as ei:
        sqs.send_message(QueueUrl=queue, MessageBody=ok + "x")
    assert code(ei.value) == "InvalidParameterValue"
    # Attributes count toward the limit: name + type + value.
    with pytest.raises(ClientError) as ei:
        sqs.send_message(QueueUrl=queue, MessageBody="x" * (MAX_BYTES - 10),
                         MessageAttributes={"name": {"DataType": "String", "StringValue": "value"}})
    assert code(ei.value) == "InvalidParameterValue"
    sqs.send_message(QueueUrl=queue, MessageBody="x" * (MAX_BYTES - 15),
                     MessageAttributes={"name": {"DataType": "String", "StringValue": "value"}})


def test_bad_messages(sqs, queue):
    with pytest.raises(ClientError) as ei:
        sqs.send_message(QueueUrl=queue, MessageBody="bad \u0001 char")
    assert code(ei.value) == "InvalidMessageContents"
    with pytest.raises(ClientError) as ei:
        sqs.send_message(QueueUrl=queue, MessageBody="x",
                         MessageAttributes={"AWS.reserved": {"DataType": "String", "StringValue": "v"}})
    assert code(ei.value) == "InvalidParameterValue"
    with pytest.raises(ClientError) as ei:
        sqs.send_message(QueueUrl=queue, MessageBody="x",
                         MessageAttributes={"n": {"DataType": "Number", "StringValue": "abc"}})
    assert code(ei.value) == "InvalidParameterValue"
    with pytest.raises(ClientError) as ei:
        sqs.send_message(QueueUrl=queue, MessageBody="x", DelaySeconds=901)
    assert code(ei.value) == "InvalidParameterValue"
    with pytest.raises(ClientError) as ei:
        sqs.send_message(QueueUrl=queue, MessageBody="x", MessageDeduplicationId="d")
    assert code(ei.value) == "InvalidParameterValue"
    many = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)}
    with pytest.raises(ClientError) as ei:
        sqs.send_message(QueueUrl=queue, MessageBody="x", MessageAttributes=many)
    assert code(ei.value) == "InvalidParameterValue"


def test_wrong_receipt_handles(sqs, queue):
    for handle in ("garbage", "", "AQEB" + "x" * 40):
        with pytest.raises(ClientError) as ei:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=handle)
        assert code(ei.value) in ("ReceiptHandleIsInvalid", "MissingParameter"), handle
        assert status(ei.value) == 400
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle="garbage", VisibilityTimeout=1)
    # A receipt of another queue is not valid here.
    other = sqs.create_queue(QueueName=qname("other"))["QueueUrl"]
    try:
        sqs.send_message(QueueUrl=other, MessageBody="x")
        h = sqs.receive_message(QueueUrl=other)["Messages"][0]["ReceiptHandle"]
        with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=h)
    finally:
        sqs.delete_queue(QueueUrl=other)


def test_purge(sqs, queue):
    sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": "p"} for i in range(3)])
    sqs.purge_queue(QueueUrl=queue)
    a = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    assert a["Attributes"]["ApproximateNumberOfMessages"] == "0"
    # One purge per 60 seconds.
    with pytest.raises(sqs.exceptions.PurgeQueueInProgress) as ei:
        sqs.purge_queue(QueueUrl=queue)
    assert code(ei.value) == "AWS.SimpleQueueService.PurgeQueueInProgress"


# --------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------


def test_batches(sqs, queue):
    r = sqs.send_message_batch(QueueUrl=queue, Entries=[
        {"Id": "a", "MessageBody": "one", "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}},
        {"Id": "b", "MessageBody": "two", "DelaySeconds": 0},
        {"Id": "c", "MessageBody": "bad \u0002"},
    ])
    ok = {e["Id"]: e for e in r["Successful"]}
    assert set(ok) == {"a", "b"}
    assert ok["a"]["MD5OfMessageBody"] == md5(b"one")
    assert ok["a"]["MD5OfMessageAttributes"] == attrs_md5({"k": {"DataType": "String", "StringValue": "v"}})
    (fail,) = r["Failed"]
    assert fail["Id"] == "c" and fail["SenderFault"] is True and fail["Code"] == "InvalidMessageContents"
    msgs = []
    for _ in range(5):
        msgs += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if len(msgs) == 2:
            break
    assert sorted(m["Body"] for m in msgs) == ["one", "two"]
    r = sqs.change_message_visibility_batch(QueueUrl=queue, Entries=[
        {"Id": "x", "ReceiptHandle": msgs[0]["ReceiptHandle"], "VisibilityTimeout": 100},
        {"Id": "y", "ReceiptHandle": "nonsense", "VisibilityTimeout": 100},
    ])
    assert [e["Id"] for e in r["Successful"]] == ["x"]
    assert [(e["Id"], e["Code"]) for e in r["Failed"]] == [("y", "ReceiptHandleIsInvalid")]
    r = sqs.delete_message_batch(QueueUrl=queue, Entries=[
        {"Id": "x", "ReceiptHandle": msgs[0]["ReceiptHandle"]},
        {"Id": "y", "ReceiptHandle": msgs[1]["ReceiptHandle"]},
        {"Id": "z", "ReceiptHandle": "nonsense"},
    ])
    assert sorted(e["Id"] for e in r["Successful"]) == ["x", "y"]
    assert [(e["Id"], e["Code"]) for e in r["Failed"]] == [("z", "ReceiptHandleIsInvalid")]
    a = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert a["ApproximateNumberOfMessages"] == "0" and a["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_malformed_batches(client_factory, queue):
    sqs = client_factory("sqs", validate=False)
    cases = [
        ([], "AWS.SimpleQueueService.EmptyBatchRequest", "EmptyBatchRequest"),
        ([{"Id": str(i), "MessageBody": "x"} for i in range(11)],
         "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "TooManyEntriesInBatchRequest"),
        ([{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}],
         "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "BatchEntryIdsNotDistinct"),
        ([{"Id": "bad id!", "MessageBody": "x"}],
         "AWS.SimpleQueueService.InvalidBatchEntryId", "InvalidBatchEntryId"),
        ([{"Id": str(i), "MessageBody": "x" * 30_000} for i in range(10)],
         "AWS.SimpleQueueService.BatchRequestTooLong", "BatchRequestTooLong"),
    ]
    for entries, query_code, shape in cases:
        with pytest.raises(ClientError) as ei:
            sqs.send_message_batch(QueueUrl=queue, Entries=entries)
        assert code(ei.value) == query_code
        assert type(ei.value).__name__ == shape
        assert status(ei.value) == 400
    with pytest.raises(ClientError) as ei:
        sqs.delete_message_batch(QueueUrl=queue, Entries=[])
    assert type(ei.value).__name__ == "EmptyBatchRequest"
    with pytest.raises(ClientError) as ei:
        sqs.change_message_visibility_batch(QueueUrl=queue, Entries=[
            {"Id": "a", "ReceiptHandle": "h", "VisibilityTimeout": 1},
            {"Id": "a", "ReceiptHandle": "h", "VisibilityTimeout": 1}])
    assert type(ei.value).__name__ == "BatchEntryIdsNotDistinct"


# --------------------------------------------------------------------------
# dead-letter queues
# --------------------------------------------------------------------------


def test_redrive_to_dead_letter_queue(sqs):
    dlq = sqs.create_queue(QueueName=qname("dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = '{"deadLetterTargetArn":"%s","maxReceiveCount":"2"}' % dlq_arn
    src = sqs.create_queue(QueueName=qname("src"), Attributes={"RedrivePolicy": policy})["QueueUrl"]
    try:
        got = sqs.get_queue_attributes(QueueUrl=src, AttributeNames=["RedrivePolicy"])["Attributes"]
        import json
        assert json.loads(got["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}
        assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [src]
        sent = sqs.send_message(QueueUrl=src, MessageBody="poison")
        for n in (1, 2):
            m = sqs.receive_message(QueueUrl=src, VisibilityTimeout=0,
                                    AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
            assert m["Attributes"]["ApproximateReceiveCount"] == str(n)
        # The third receive exceeds maxReceiveCount: the message moves.
        assert "Messages" not in sqs.receive_message(QueueUrl=src)
        moved = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=2,
                                    MessageSystemAttributeNames=["All"])["Messages"][0]
        assert moved["MessageId"] == sent["MessageId"]
        assert moved["Body"] == "poison"
        assert moved["Attributes"]["DeadLetterQueueSourceArn"].endswith(src.rsplit("/", 1)[1])
        # A dead-letter target that does not exist is refused.
        with pytest.raises(ClientError) as ei:
            sqs.set_queue_attributes(QueueUrl=src, Attributes={"RedrivePolicy": policy.replace(
                dlq_arn, dlq_arn + "-gone")})
        assert code(ei.value) == "InvalidAttributeValue"
    finally:
        sqs.delete_queue(QueueUrl=src)
        sqs.delete_queue(QueueUrl=dlq)


# --------------------------------------------------------------------------
# FIFO
# --------------------------------------------------------------------------


def test_fifo_ordering_groups_and_sequence(sqs):
    url = sqs.create_queue(QueueName=qname("order") + ".fifo",
                           Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    try:
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert a["FifoQueue"] == "true" and a["ContentBasedDeduplication"] == "true"
        assert a["DeduplicationScope"] == "queue" and a["FifoThroughputLimit"] == "perQueue"
        seqs = []
        for i in range(4):
            r = sqs.send_message(QueueUrl=url, MessageBody=f"a{i}", MessageGroupId="A")
            seqs.append(int(r["SequenceNumber"]))
        sqs.send_message(QueueUrl=url, MessageBody="b0", MessageGroupId="B")
        assert seqs == sorted(seqs) and len(set(seqs)) == 4
        first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2,
                                    AttributeNames=["All"])["Messages"]
        assert [m["Body"] for m in first] == ["a0", "a1"]
        assert first[0]["Attributes"]["MessageGroupId"] == "A"
        assert int(first[0]["Attributes"]["SequenceNumber"]) == seqs[0]
        assert first[0]["Attributes"]["MessageDeduplicationId"] == hashlib.sha256(b"a0").hexdigest()
        # Group A has messages in flight: only group B is available.
        nxt = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert [m["Body"] for m in nxt] == ["b0"]
        assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(first)])
        rest = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert [m["Body"] for m in rest] == ["a2", "a3"]
    finally:
        sqs.delete_queue(QueueUrl=url)


def test_fifo_deduplication(sqs):
    url = sqs.create_queue(QueueName=qname("dedup") + ".fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    try:
        with pytest.raises(ClientError) as ei:
            sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
        assert code(ei.value) == "InvalidParameterValue"
        with pytest.raises(ClientError) as ei:
            sqs.send_message(QueueUrl=url, MessageBody="x", MessageDeduplicationId="d")
        assert code(ei.value) == "MissingParameter"
        with pytest.raises(ClientError) as ei:
            sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g",
                             MessageDeduplicationId="d", DelaySeconds=1)
        assert code(ei.value) == "InvalidParameterValue"
        r1 = sqs.send_message(QueueUrl=url, MessageBody="first", MessageGroupId="g", MessageDeduplicationId="d1")
        r2 = sqs.send_message(QueueUrl=url, MessageBody="second", MessageGroupId="g", MessageDeduplicationId="d1")
        assert r1["MessageId"] == r2["MessageId"]
        r3 = sqs.send_message(QueueUrl=url, MessageBody="third", MessageGroupId="g", MessageDeduplicationId="d2")
        assert r3["MessageId"] != r1["MessageId"]
        # Within a batch too.
        b = sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": "a", "MessageBody": "x", "MessageGroupId": "g", "MessageDeduplicationId": "d3"},
            {"Id": "b", "MessageBody": "y", "MessageGroupId": "g", "MessageDeduplicationId": "d3"}])
        ids = {e["Id"]: e["MessageId"] for e in b["Successful"]}
        assert ids["a"] == ids["b"]
        bodies = []
        for _ in range(5):
            ms = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            for m in ms:
                bodies.append(m["Body"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            if len(bodies) >= 3:
                break
        assert bodies == ["first", "third", "x"]
    finally:
        sqs.delete_queue(QueueUrl=url)


def test_fifo_attributes_rejected_on_standard_queue(sqs):
    with pytest.raises(ClientError) as ei:
        sqs.create_queue(QueueName=qname("std"), Attributes={"ContentBasedDeduplication": "true"})
    assert code(ei.value) == "InvalidAttributeName"
    with pytest.raises(ClientError) as ei:
        sqs.create_queue(QueueName=qname("nofifo"), Attributes={"FifoQueue": "true"})
    assert code(ei.value) == "InvalidParameterValue"


# --------------------------------------------------------------------------
# the query protocol (form requests, XML answers)
# --------------------------------------------------------------------------


def test_query_protocol_round_trip(endpoint):
    name = qname("query")
    st, root = query(endpoint, "CreateQueue", {"QueueName": name, "Attribute.1.Name": "VisibilityTimeout",
                                                "Attribute.1.Value": "40", "Tag.1.Key": "k", "Tag.1.Value": "v"})
    assert st == 200, ET.tostring(root)
    assert root.tag == f"{NS}CreateQueueResponse"
    url = text(root, "CreateQueueResult/QueueUrl")
    assert url == f"{endpoint}/{ACCOUNT}/{name}"
    assert text(root, "ResponseMetadata/RequestId")
    path = f"/{ACCOUNT}/{name}"
    st, root = query(endpoint, "GetQueueUrl", {"QueueName": name})
    assert text(root, "QueueUrl") == url
    st, root = query(endpoint, "ListQueues", {"QueueNamePrefix": name})
    assert [e.text for e in root.iter(f"{NS}QueueUrl")] == [url]
    st, root = query(endpoint, "GetQueueAttributes", {"QueueUrl": url, "AttributeName.1": "All"})
    attrs = {a.find(f"{NS}Name").text: a.find(f"{NS}Value").text for a in root.iter(f"{NS}Attribute")}
    assert attrs["VisibilityTimeout"] == "40"
    assert attrs["QueueArn"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
    st, root = query(endpoint, "SetQueueAttributes", {"QueueUrl": url, "Attribute.1.Name": "DelaySeconds",
                                                       "Attribute.1.Value": "0"})
    assert st == 200 and root.tag == f"{NS}SetQueueAttributesResponse"
    st, root = query(endpoint, "ListQueueTags", {"QueueUrl": url})
    assert {t.find(f"{NS}Key").text: t.find(f"{NS}Value").text for t in root.iter(f"{NS}Tag")} == {"k": "v"}
    st, root = query(endpoint, "TagQueue", {"QueueUrl": url, "Tag.1.Key": "k2", "Tag.1.Value": "v2"})
    assert st == 200
    st, root = query(endpoint, "UntagQueue", {"QueueUrl": url, "TagKey.1": "k"})
    st, root = query(endpoint, "ListQueueTags", {"QueueUrl": url})
    assert {t.find(f"{NS}Key").text for t in root.iter(f"{NS}Tag")} == {"k2"}

    # SendMessage posted to the queue URL's path, no QueueUrl parameter.
    body = "query <body> & more"
    st, root = query(endpoint, "SendMessage", {
        "MessageBody": body,
        "MessageAttribute.1.Name": "color", "MessageAttribute.1.Value.DataType": "String",
        "MessageAttribute.1.Value.StringValue": "blue",
        "MessageAttribute.2.Name": "bin", "MessageAttribute.2.Value.DataType": "Binary",
        "MessageAttribute.2.Value.BinaryValue": "AAEC",
    }, path=path)
    assert st == 200, ET.tostring(root)
    assert text(root, "MD5OfMessageBody") == md5(body.encode())
    expected_attrs = attrs_md5({"color": {"DataType": "String", "StringValue": "blue"},
                                "bin": {"DataType": "Binary", "BinaryValue": b"\x00\x01\x02"}})
    assert text(root, "MD5OfMessageAttributes") == expected_attrs
    msg_id = text(root, "MessageId")
    st, root = query(endpoint, "SendMessageBatch", {
        "QueueUrl": url,
        "SendMessageBatchRequestEntry.1.Id": "e1", "SendMessageBatchRequestEntry.1.MessageBody": "b1",
        "SendMessageBatchRequestEntry.2.Id": "e2", "SendMessageBatchRequestEntry.2.MessageBody": "b2",
    })
    assert sorted(e.find(f"{NS}Id").text for e in root.iter(f"{NS}SendMessageBatchResultEntry")) == ["e1", "e2"]
    st, root = query(endpoint, "ReceiveMessage", {"QueueUrl": url, "MaxNumberOfMessages": "10",
                                                  "AttributeName.1": "All", "MessageAttributeName.1": "All",
                                                  "WaitTimeSeconds": "1"})
    msgs = list(root.iter(f"{NS}Message"))
    assert msgs, ET.tostring(root)
    first = next(m for m in msgs if m.find(f"{NS}MessageId").text == msg_id)
    assert first.find(f"{NS}Body").text == body
    assert first.find(f"{NS}MD5OfBody").text == md5(body.encode())
    assert first.find(f"{NS}MD5OfMessageAttributes").text == expected_attrs
    mattrs = {a.find(f"{NS}Name").text: a.find(f"{NS}Value") for a in first.iter(f"{NS}MessageAttribute")}
    assert mattrs["color"].find(f"{NS}StringValue").text == "blue"
    assert mattrs["bin"].find(f"{NS}BinaryValue").text == "AAEC"
    sysattrs = {a.find(f"{NS}Name").text: a.find(f"{NS}Value").text for a in first.iter(f"{NS}Attribute")}
    assert sysattrs["ApproximateReceiveCount"] == "1"
    handles = [m.find(f"{NS}ReceiptHandle").text for m in msgs]
    st, root = query(endpoint, "ChangeMessageVisibility", {"QueueUrl": url, "ReceiptHandle": handles[0],
                                                           "VisibilityTimeout": "60"})
    assert st == 200
    st, root = query(endpoint, "ChangeMessageVisibilityBatch", {
        "QueueUrl": url,
        "ChangeMessageVisibilityBatchRequestEntry.1.Id": "c1",
        "ChangeMessageVisibilityBatchRequestEntry.1.ReceiptHandle": handles[0],
        "ChangeMessageVisibilityBatchRequestEntry.1.VisibilityTimeout": "60",
    })
    assert [e.find(f"{NS}Id").text for e in root.iter(f"{NS}ChangeMessageVisibilityBatchResultEntry")] == ["c1"]
    st, root = query(endpoint, "DeleteMessage", {"QueueUrl": url, "ReceiptHandle": handles[0]})
    assert st == 200
    params = {"QueueUrl": url}
    for i, h in enumerate(handles[1:], 1):
        params[f"DeleteMessageBatchRequestEntry.{i}.Id"] = f"d{i}"
        params[f"DeleteMessageBatchRequestEntry.{i}.ReceiptHandle"] = h
    params[f"DeleteMessageBatchRequestEntry.{len(handles)}.Id"] = "bad"
    params[f"DeleteMessageBatchRequestEntry.{len(handles)}.ReceiptHandle"] = "nonsense"
    st, root = query(endpoint, "DeleteMessageBatch", params)
    assert len(list(root.iter(f"{NS}DeleteMessageBatchResultEntry"))) == len(handles) - 1
    (err,) = list(root.iter(f"{NS}BatchResultErrorEntry"))
    assert err.find(f"{NS}Code").text == "ReceiptHandleIsInvalid"
    assert err.find(f"{NS}SenderFault").text == "true"
    st, root = query(endpoint, "PurgeQueue", {"QueueUrl": url})
    assert st == 200
    st, root = query(endpoint, "DeleteQueue", {}, path=path)
    assert st == 200
    st, root = query(endpoint, "GetQueueUrl", {"QueueName": name})
    assert st == 400
    assert root.tag == f"{NS}ErrorResponse"
    assert error_code_xml(root) == "AWS.SimpleQueueService.NonExistentQueue"
    assert text(root, "Error/Type") == "Sender"


def test_query_protocol_errors(endpoint):
    name = qname("qerr")
    st, root = query(endpoint, "CreateQueue", {"QueueName": name}, sign=False)
    assert st == 200
    url = text(root, "QueueUrl")
    try:
        cases = [
            ("SendMessageBatch", {"QueueUrl": url}, "AWS.SimpleQueueService.EmptyBatchRequest"),
            ("SendMessageBatch", {"QueueUrl": url, **{f"SendMessageBatchRequestEntry.{i}.{k}": v
                                                       for i in range(1, 12)
                                                       for k, v in (("Id", f"i{i}"), ("MessageBody", "x"))}},
             "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"),
            ("SendMessageBatch", {"QueueUrl": url,
                                  "SendMessageBatchRequestEntry.1.Id": "a",
                                  "SendMessageBatchRequestEntry.1.MessageBody": "x",
                                  "SendMessageBatchRequestEntry.2.Id": "a",
                                  "SendMessageBatchRequestEntry.2.MessageBody": "y"},
             "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
            ("DeleteMessage", {"QueueUrl": url, "ReceiptHandle": "junk"}, "ReceiptHandleIsInvalid"),
            ("SendMessage", {"QueueUrl": url, "MessageBody": "x" * (MAX_BYTES + 1)}, "InvalidParameterValue"),
            ("SendMessage", {"QueueUrl": url}, "MissingParameter"),
            ("CreateQueue", {"QueueName": name, "Attribute.1.Name": "VisibilityTimeout",
                             "Attribute.1.Value": "99"}, "QueueAlreadyExists"),
            ("GetQueueAttributes", {"QueueUrl": url, "AttributeName.1": "Bogus"}, "InvalidAttributeName"),
            ("ReceiveMessage", {"QueueUrl": url, "MaxNumberOfMessages": "11"}, "InvalidParameterValue"),
        ]
        for action, params, want in cases:
            st, root = query(endpoint, action, params)
            assert st == 400, (action, ET.tostring(root))
            assert error_code_xml(root) == want, (action, ET.tostring(root))
    finally:
        query(endpoint, "DeleteQueue", {"QueueUrl": url})


# --------------------------------------------------------------------------
# durability
# --------------------------------------------------------------------------


def test_messages_survive_sigkill(tmp_path):
    first = start_server(tmp_path / "data", name="sqs-restart-1")
    sqs = first.client("sqs")
    std = sqs.create_queue(QueueName="kept", Attributes={"VisibilityTimeout": "7"}, tags={"t": "1"})["QueueUrl"]
    fifo = sqs.create_queue(QueueName="kept.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sent = [sqs.send_message(QueueUrl=std, MessageBody=f"m{i}",
                             MessageAttributes={"i": {"DataType": "Number", "StringValue": str(i)}})["MessageId"]
            for i in range(20)]
    f1 = sqs.send_message(QueueUrl=fifo, MessageBody="f1", MessageGroupId="g", MessageDeduplicationId="d")
    first.kill()

    second = start_server(tmp_path / "data", name="sqs-restart-2")
    sqs = second.client("sqs")
    assert sqs.get_queue_url(QueueName="kept")["QueueUrl"] == std.replace(first.url, second.url)
    std = sqs.get_queue_url(QueueName="kept")["QueueUrl"]
    fifo = sqs.get_queue_url(QueueName="kept.fifo")["QueueUrl"]
    a = sqs.get_queue_attributes(QueueUrl=std, AttributeNames=["All"])["Attributes"]
    assert a["VisibilityTimeout"] == "7"
    assert a["ApproximateNumberOfMessages"] == "20"
    assert sqs.list_queue_tags(QueueUrl=std)["Tags"] == {"t": "1"}
    got = {}
    while len(got) < 20:
        ms = sqs.receive_message(QueueUrl=std, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                 WaitTimeSeconds=1).get("Messages", [])
        assert ms
        for m in ms:
            got[m["MessageId"]] = m
    assert set(got) == set(sent)
    # The deduplication window survives too.
    f2 = sqs.send_message(QueueUrl=fifo, MessageBody="f1", MessageGroupId="g", MessageDeduplicationId="d")
    assert f2["MessageId"] == f1["MessageId"]
    second.stop()


# --------------------------------------------------------------------------
# the AWS CLI
# --------------------------------------------------------------------------


def test_aws_cli(aws_cli):
    name = qname("cli")
    url = aws_cli("sqs", "create-queue", "--queue-name", name,
                  "--attributes", "VisibilityTimeout=40")["QueueUrl"]
    try:
        assert url.endswith(f"/{ACCOUNT}/{name}")
        sent = aws_cli("sqs", "send-message", "--queue-url", url, "--message-body", '{"order": 1}',
                       "--message-attributes", '{"kind": {"DataType": "String", "StringValue": "new"}}')
        assert sent["MD5OfMessageBody"] == md5(b'{"order": 1}')
        assert sent["MD5OfMessageAttributes"] == attrs_md5({"kind": {"DataType": "String", "StringValue": "new"}})
        got = aws_cli("sqs", "receive-message", "--queue-url", url, "--wait-time-seconds", "2",
                      "--attribute-names", "All", "--message-attribute-names", "All")
        (m,) = got["Messages"]
        assert m["MessageId"] == sent["MessageId"]
        assert m["MessageAttributes"]["kind"]["StringValue"] == "new"
        assert m["Attributes"]["ApproximateReceiveCount"] == "1"
        aws_cli("sqs", "delete-message", "--queue-url", url, "--receipt-handle", m["ReceiptHandle"])
        attrs = aws_cli("sqs", "get-queue-attributes", "--queue-url", url, "--attribute-names", "All")["Attributes"]
        assert attrs["VisibilityTimeout"] == "40"
        assert attrs["ApproximateNumberOfMessages"] == "0"
        assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
        proc = aws_cli.run("sqs", "get-queue-url", "--queue-name", name + "-missing", check=False)
        assert proc.returncode != 0
        assert "AWS.SimpleQueueService.NonExistentQueue" in proc.stderr
    finally:
        aws_cli("sqs", "delete-queue", "--queue-url", url)


def test_query_protocol_dead_letter_sources(endpoint):
    dlq_name, src_name = qname("qdlq"), qname("qsrc")
    st, root = query(endpoint, "CreateQueue", {"QueueName": dlq_name})
    dlq = text(root, "QueueUrl")
    dlq_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{dlq_name}"
    st, root = query(endpoint, "CreateQueue", {
        "QueueName": src_name, "Attribute.1.Name": "RedrivePolicy",
        "Attribute.1.Value": '{"deadLetterTargetArn":"%s","maxReceiveCount":1}' % dlq_arn,
        "Attribute.2.Name": "VisibilityTimeout", "Attribute.2.Value": "0"})
    assert st == 200, ET.tostring(root)
    src = text(root, "QueueUrl")
    try:
        st, root = query(endpoint, "ListDeadLetterSourceQueues", {"QueueUrl": dlq})
        assert st == 200
        assert [e.text for e in root.iter(f"{NS}QueueUrl")] == [src]
        query(endpoint, "SendMessage", {"QueueUrl": src, "MessageBody": "once"})
        st, root = query(endpoint, "ReceiveMessage", {"QueueUrl": src})
        assert len(list(root.iter(f"{NS}Message"))) == 1
        # maxReceiveCount 1: the next receive moves it to the dead-letter queue.
        st, root = query(endpoint, "ReceiveMessage", {"QueueUrl": src})
        assert list(root.iter(f"{NS}Message")) == []
        st, root = query(endpoint, "ReceiveMessage", {"QueueUrl": dlq, "WaitTimeSeconds": "2",
                                                      "MessageSystemAttributeName.1": "DeadLetterQueueSourceArn"})
        (m,) = list(root.iter(f"{NS}Message"))
        assert m.find(f"{NS}Body").text == "once"
        attrs = {a.find(f"{NS}Name").text: a.find(f"{NS}Value").text for a in m.iter(f"{NS}Attribute")}
        assert attrs == {"DeadLetterQueueSourceArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{src_name}"}
    finally:
        query(endpoint, "DeleteQueue", {"QueueUrl": src})
        query(endpoint, "DeleteQueue", {"QueueUrl": dlq})
