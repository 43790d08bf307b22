"""Amazon SNS end to end: topics, subscriptions, publishing, filter policies
and deliveries to SQS queues, Lambda functions and HTTP endpoints, driven
with boto3 and the AWS CLI.

Expected values come from the SNS API reference (botocore model
sns/2010-03-31) and the Amazon SNS Developer Guide ("Amazon SNS message
filtering", "Amazon SNS raw message delivery", "Parsing message formats",
"Message ordering and deduplication in FIFO topics"), and from the Lambda
Developer Guide's SNS event example.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from harness import (
    ACCOUNT,
    REGION,
    FunctionFactory,
    assert_client_error,
    free_port,
    make_client,
    make_zip,
    start_server,
    stratus_cli,
    unique_name,
    wait_until,
)

FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"


@pytest.fixture(scope="module")
def sns(client_factory):
    return client_factory("sns")


@pytest.fixture(scope="module")
def sns_novalidate(server):
    return server.client("sns", validate=False)


@pytest.fixture(scope="module")
def sqs(client_factory):
    return client_factory("sqs")


@pytest.fixture
def topic(sns):
    arn = sns.create_topic(Name=unique_name("topic"))["TopicArn"]
    yield arn
    sns.delete_topic(TopicArn=arn)


def make_queue(sqs, fifo: bool = False) -> tuple[str, str]:
    name = unique_name("q") + (".fifo" if fifo else "")
    attrs = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def receive(sqs, url: str, count: int = 1, timeout: float = 15.0) -> list[dict]:
    got: list[dict] = []
    deadline = time.time() + timeout
    while len(got) < count and time.time() < deadline:
        r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                MessageAttributeNames=["All"], AttributeNames=["All"])
        for m in r.get("Messages", []):
            got.append(m)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return got


def assert_empty(sqs, url: str, wait: float = 2.0):
    r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=int(wait))
    assert r.get("Messages", []) == [], r.get("Messages")


# --------------------------------------------------------------------------
# topics
# --------------------------------------------------------------------------


def test_create_topic_is_idempotent_and_has_attributes(sns):
    name = unique_name("t")
    arn = sns.create_topic(Name=name)["TopicArn"]
    assert arn == f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"
    assert sns.create_topic(Name=name)["TopicArn"] == arn
    attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attrs["TopicArn"] == arn
    assert attrs["Owner"] == ACCOUNT
    assert attrs["SubscriptionsConfirmed"] == "0"
    assert attrs["SubscriptionsPending"] == "0"
    assert attrs["SubscriptionsDeleted"] == "0"
    policy = json.loads(attrs["Policy"])
    assert policy["Statement"][0]["Resource"] == arn
    assert "SNS:Publish" in policy["Statement"][0]["Action"]
    assert "FifoTopic" not in attrs
    sns.set_topic_attributes(TopicArn=arn, AttributeName="DisplayName", AttributeValue="My Topic")
    assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["DisplayName"] == "My Topic"
    # Same name, different attributes.
    with pytest.raises(ClientError) as e:
        sns.create_topic(Name=name, Attributes={"DisplayName": "other"})
    assert_client_error(e, "InvalidParameter", 400)
    sns.delete_topic(TopicArn=arn)
    # DeleteTopic is idempotent.
    sns.delete_topic(TopicArn=arn)
    with pytest.raises(ClientError) as e:
        sns.get_topic_attributes(TopicArn=arn)
    assert_client_error(e, "NotFound", 404)


def test_list_topics_pages(sns):
    made = [sns.create_topic(Name=unique_name("page"))["TopicArn"] for _ in range(105)]
    try:
        seen = []
        token = None
        pages = 0
        while True:
            r = sns.list_topics(**({"NextToken": token} if token else {}))
            assert len(r["Topics"]) <= 100
            seen += [t["TopicArn"] for t in r["Topics"]]
            pages += 1
            token = r.get("NextToken")
            if not token:
                break
        assert pages >= 2
        assert set(made) <= set(seen)
        assert len(seen) == len(set(seen))
    finally:
        for a in made:
            sns.delete_topic(TopicArn=a)


def test_tags(sns):
    arn = sns.create_topic(Name=unique_name("tags"), Tags=[{"Key": "team", "Value": "a"}])["TopicArn"]
    try:
        sns.tag_resource(ResourceArn=arn, Tags=[{"Key": "env", "Value": "dev"}, {"Key": "team", "Value": "b"}])
        tags = {t["Key"]: t["Value"] for t in sns.list_tags_for_resource(ResourceArn=arn)["Tags"]}
        assert tags == {"team": "b", "env": "dev"}
        sns.untag_resource(ResourceArn=arn, TagKeys=["team"])
        assert sns.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "env", "Value": "dev"}]
        with pytest.raises(ClientError) as e:
            sns.list_tags_for_resource(ResourceArn=f"arn:aws:sns:{REGION}:{ACCOUNT}:missing-topic")
        assert_client_error(e, "ResourceNotFound", 404)
        with pytest.raises(ClientError) as e:
            sns.tag_resource(ResourceArn=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
        assert_client_error(e, "TagLimitExceeded", 400)
    finally:
        sns.delete_topic(TopicArn=arn)


# --------------------------------------------------------------------------
# subscriptions
# --------------------------------------------------------------------------


def test_subscriptions_list_get_set_unsubscribe(sns, sqs, topic):
    _, qarn = make_queue(sqs)
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn, ReturnSubscriptionArn=True)
    sub_arn = sub["SubscriptionArn"]
    assert sub_arn.startswith(topic + ":")
    # Subscribing again answers the same subscription.
    assert sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)["SubscriptionArn"] == sub_arn
    by_topic = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert by_topic == [{"SubscriptionArn": sub_arn, "Owner": ACCOUNT, "Protocol": "sqs",
                         "Endpoint": qarn, "TopicArn": topic}]
    assert sub_arn in [s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]]
    attrs = sns.get_subscription_attributes(SubscriptionArn=sub_arn)["Attributes"]
    assert attrs["TopicArn"] == topic
    assert attrs["Protocol"] == "sqs"
    assert attrs["Endpoint"] == qarn
    assert attrs["PendingConfirmation"] == "false"
    assert attrs["RawMessageDelivery"] == "false"
    sns.set_subscription_attributes(SubscriptionArn=sub_arn, AttributeName="RawMessageDelivery",
                                    AttributeValue="true")
    sns.set_subscription_attributes(SubscriptionArn=sub_arn, AttributeName="FilterPolicy",
                                    AttributeValue='{"color": ["red"]}')
    attrs = sns.get_subscription_attributes(SubscriptionArn=sub_arn)["Attributes"]
    assert attrs["RawMessageDelivery"] == "true"
    assert json.loads(attrs["FilterPolicy"]) == {"color": ["red"]}
    assert attrs["FilterPolicyScope"] == "MessageAttributes"
    assert sns.get_topic_attributes(TopicArn=topic)["Attributes"]["SubscriptionsConfirmed"] == "1"
    sns.unsubscribe(SubscriptionArn=sub_arn)
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []
    # Unsubscribe is idempotent.
    sns.unsubscribe(SubscriptionArn=sub_arn)
    t_attrs = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert t_attrs["SubscriptionsDeleted"] == "1"
    with pytest.raises(ClientError) as e:
        sns.get_subscription_attributes(SubscriptionArn=sub_arn)
    assert_client_error(e, "NotFound", 404)


def test_subscribe_bad_input(sns, sqs, topic):
    cases = [
        (dict(TopicArn=topic, Protocol="sqs", Endpoint="not-an-arn"), "InvalidParameter", 400),
        (dict(TopicArn=topic, Protocol="lambda", Endpoint="arn:aws:sqs:us-east-1:123456789012:q"),
         "InvalidParameter", 400),
        (dict(TopicArn=topic, Protocol="carrier-pigeon", Endpoint="x"), "InvalidParameter", 400),
        (dict(TopicArn="not-a-topic-arn", Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:123456789012:q"),
         "InvalidParameter", 400),
        (dict(TopicArn=f"arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic", Protocol="sqs",
              Endpoint="arn:aws:sqs:us-east-1:123456789012:q"), "NotFound", 404),
        (dict(TopicArn=topic, Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:123456789012:q",
              Attributes={"FilterPolicy": '{"a": [{"bogus": 1}]}'}), "InvalidParameter", 400),
        (dict(TopicArn=topic, Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:123456789012:q",
              Attributes={"FilterPolicy": '{"a": {"b": ["c"]}}'}), "InvalidParameter", 400),
        (dict(TopicArn=topic, Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:123456789012:q.fifo"),
         "InvalidParameter", 400),
    ]
    for kwargs, code, status in cases:
        with pytest.raises(ClientError) as e:
            sns.subscribe(**kwargs)
        err = assert_client_error(e, code, status)
        if "FilterPolicy" in kwargs.get("Attributes", {}):
            assert err.response["Error"]["Message"].startswith("Invalid parameter: FilterPolicy: ")
    with pytest.raises(ClientError) as e:
        sns.unsubscribe(SubscriptionArn="garbage")
    assert_client_error(e, "InvalidParameter", 400)
    with pytest.raises(ClientError) as e:
        sns.confirm_subscription(TopicArn=topic, Token="0123")
    assert_client_error(e, "InvalidParameter", 400)


# --------------------------------------------------------------------------
# delivery to SQS
# --------------------------------------------------------------------------


def test_sqs_delivery_carries_the_notification_envelope(sns, sqs, topic):
    url, qarn = make_queue(sqs)
    sub_arn = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)["SubscriptionArn"]
    r = sns.publish(TopicArn=topic, Message="hello queue", Subject="Greeting",
                    MessageAttributes={
                        "store": {"DataType": "String", "StringValue": "example_corp"},
                        "price_usd": {"DataType": "Number", "StringValue": "210.75"},
                        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
                    })
    msgs = receive(sqs, url)
    assert len(msgs) == 1
    body = json.loads(msgs[0]["Body"])
    assert body["Type"] == "Notification"
    assert body["MessageId"] == r["MessageId"]
    assert body["TopicArn"] == topic
    assert body["Subject"] == "Greeting"
    assert body["Message"] == "hello queue"
    assert body["SignatureVersion"] == "1"
    for k in ("Timestamp", "Signature", "SigningCertURL", "UnsubscribeURL"):
        assert body[k], k
    assert body["Timestamp"].endswith("Z")
    assert "Action=Unsubscribe" in body["UnsubscribeURL"]
    assert sub_arn.split(":")[-1] in body["UnsubscribeURL"]
    assert body["MessageAttributes"] == {
        "store": {"Type": "String", "Value": "example_corp"},
        "price_usd": {"Type": "Number", "Value": "210.75"},
        "blob": {"Type": "Binary", "Value": "AAE="},
    }
    # Without a subject the envelope has no Subject key; the topic's
    # SignatureVersion is the envelope's.
    sns.set_topic_attributes(TopicArn=topic, AttributeName="SignatureVersion", AttributeValue="2")
    sns.publish(TargetArn=topic, Message="no subject")
    body = json.loads(receive(sqs, url)[0]["Body"])
    assert "Subject" not in body
    assert body["Message"] == "no subject"
    assert body["SignatureVersion"] == "2"


def test_raw_message_delivery_to_sqs(sns, sqs, topic):
    url, qarn = make_queue(sqs)
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn,
                  Attributes={"RawMessageDelivery": "true"})
    sns.publish(TopicArn=topic, Message='{"order": 1}',
                MessageAttributes={"store": {"DataType": "String", "StringValue": "example_corp"},
                                   "n": {"DataType": "Number", "StringValue": "5"}})
    msgs = receive(sqs, url)
    assert len(msgs) == 1
    assert msgs[0]["Body"] == '{"order": 1}'
    attrs = msgs[0]["MessageAttributes"]
    assert attrs["store"] == {"StringValue": "example_corp", "DataType": "String"}
    assert attrs["n"] == {"StringValue": "5", "DataType": "Number"}


def test_message_structure_json_per_protocol(sns, sqs, topic):
    url, qarn = make_queue(sqs)
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)
    sns.publish(TopicArn=topic, MessageStructure="json",
                Message=json.dumps({"default": "for everyone", "sqs": "for queues"}))
    sns.publish(TopicArn=topic, MessageStructure="json",
                Message=json.dumps({"default": "only default", "email": "for email"}))
    got = sorted(json.loads(m["Body"])["Message"] for m in receive(sqs, url, 2))
    assert got == ["for queues", "only default"]
    with pytest.raises(ClientError) as e:
        sns.publish(TopicArn=topic, MessageStructure="json", Message=json.dumps({"sqs": "x"}))
    err = assert_client_error(e, "InvalidParameter", 400)
    assert "No default entry in JSON message body" in err.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        sns.publish(TopicArn=topic, MessageStructure="json", Message="not json")
    assert_client_error(e, "InvalidParameter", 400)


def test_filter_policy_message_attributes_scope(sns, sqs, topic):
    url, qarn = make_queue(sqs)
    policy = {
        "store": ["example_corp"],
        "event": [{"anything-but": "order_cancelled"}],
        "customer_interests": ["rugby", "football", "baseball"],
        "price_usd": [{"numeric": [">=", 100]}],
    }
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn,
                  Attributes={"FilterPolicy": json.dumps(policy), "RawMessageDelivery": "true"})

    def publish(body, event, price):
        sns.publish(TopicArn=topic, Message=body, MessageAttributes={
            "customer_interests": {"DataType": "String.Array",
                                   "StringValue": json.dumps(["soccer", "rugby", "hockey"])},
            "store": {"DataType": "String", "StringValue": "example_corp"},
            "event": {"DataType": "String", "StringValue": event},
            "price_usd": {"DataType": "Number", "StringValue": price},
        })

    publish("cancelled", "order_cancelled", "210.75")
    publish("cheap", "order_placed", "99.5")
    publish("accepted", "order_placed", "210.75")
    sns.publish(TopicArn=topic, Message="no attributes")
    msgs = receive(sqs, url, 1)
    assert [m["Body"] for m in msgs] == ["accepted"]
    assert_empty(sqs, url)


def test_filter_policy_message_body_scope(sns, sqs, topic):
    url, qarn = make_queue(sqs)
    policy = {"order": {"customer": {"tier": ["gold"]}}, "amount": [{"numeric": [">", 10]}]}
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn,
                  Attributes={"FilterPolicy": json.dumps(policy), "FilterPolicyScope": "MessageBody",
                              "RawMessageDelivery": "true"})
    bodies = [
        {"order": {"customer": {"tier": "silver"}}, "amount": 50},
        {"order": {"customer": {"tier": "gold"}}, "amount": 5},
        {"order": {"customer": {"tier": "gold"}}, "amount": 50, "id": "match"},
    ]
    for b in bodies:
        sns.publish(TopicArn=topic, Message=json.dumps(b))
    sns.publish(TopicArn=topic, Message="not json at all")
    msgs = receive(sqs, url, 1)
    assert [json.loads(m["Body"]).get("id") for m in msgs] == ["match"]
    assert_empty(sqs, url)


def test_fifo_topic_to_fifo_queue(sns, sqs):
    name = unique_name("fifo") + ".fifo"
    arn = sns.create_topic(Name=name, Attributes={"FifoTopic": "true",
                                                  "ContentBasedDeduplication": "true"})["TopicArn"]
    try:
        attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
        assert attrs["FifoTopic"] == "true"
        assert attrs["ContentBasedDeduplication"] == "true"
        url, qarn = make_queue(sqs, fifo=True)
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn,
                      Attributes={"RawMessageDelivery": "true"})
        seqs = []
        for i in range(5):
            r = sns.publish(TopicArn=arn, Message=f"m{i}", MessageGroupId="g1")
            seqs.append(int(r["SequenceNumber"]))
        assert seqs == sorted(seqs) and len(set(seqs)) == 5
        # A duplicate (same content within 5 minutes) is accepted, not delivered.
        dup = sns.publish(TopicArn=arn, Message="m0", MessageGroupId="g1")
        assert dup["MessageId"]
        msgs = receive(sqs, url, 5)
        assert [m["Body"] for m in msgs] == [f"m{i}" for i in range(5)]
        assert all(m["Attributes"]["MessageGroupId"] == "g1" for m in msgs)
        assert_empty(sqs, url)
        with pytest.raises(ClientError) as e:
            sns.publish(TopicArn=arn, Message="no group")
        assert_client_error(e, "InvalidParameter", 400)
        with pytest.raises(ClientError) as e:
            sns.create_topic(Name=unique_name("nofifo"), Attributes={"FifoTopic": "true"})
        assert_client_error(e, "InvalidParameter", 400)
    finally:
        sns.delete_topic(TopicArn=arn)


# --------------------------------------------------------------------------
# publishing: batches and bad input
# --------------------------------------------------------------------------


def test_publish_batch(sns, sqs, topic):
    url, qarn = make_queue(sqs)
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn,
                  Attributes={"RawMessageDelivery": "true"})
    r = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[
        {"Id": "one", "Message": "first"},
        {"Id": "two", "Message": "second", "Subject": "s",
         "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}},
        {"Id": "bad", "Message": "x", "MessageStructure": "json"},
    ])
    assert sorted(s["Id"] for s in r["Successful"]) == ["one", "two"]
    assert all(s["MessageId"] for s in r["Successful"])
    assert len(r["Failed"]) == 1
    assert r["Failed"][0]["Id"] == "bad"
    assert r["Failed"][0]["Code"] == "InvalidParameter"
    assert r["Failed"][0]["SenderFault"] is True
    assert sorted(m["Body"] for m in receive(sqs, url, 2)) == ["first", "second"]


def test_publish_batch_errors(sns, sns_novalidate, topic):
    with pytest.raises(ClientError) as e:
        sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[
            {"Id": "a", "Message": "1"}, {"Id": "a", "Message": "2"}])
    assert_client_error(e, "BatchEntryIdsNotDistinct", 400)
    with pytest.raises(ClientError) as e:
        sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[
            {"Id": f"e{i}", "Message": "m"} for i in range(11)])
    assert_client_error(e, "TooManyEntriesInBatchRequest", 400)
    with pytest.raises(ClientError) as e:
        sns_novalidate.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[])
    assert_client_error(e, "EmptyBatchRequest", 400)
    with pytest.raises(ClientError) as e:
        sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[
            {"Id": "bad id!", "Message": "m"}])
    assert_client_error(e, "InvalidBatchEntryId", 400)
    with pytest.raises(ClientError) as e:
        sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[
            {"Id": f"e{i}", "Message": "x" * 100_000} for i in range(3)])
    assert_client_error(e, "BatchRequestTooLong", 400)
    with pytest.raises(ClientError) as e:
        sns.publish_batch(TopicArn=f"arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic",
                          PublishBatchRequestEntries=[{"Id": "a", "Message": "m"}])
    assert_client_error(e, "NotFound", 404)


def test_publish_bad_input(sns, sns_novalidate, topic):
    missing = f"arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic"
    with pytest.raises(ClientError) as e:
        sns.publish(TopicArn=missing, Message="m")
    err = assert_client_error(e, "NotFound", 404)
    assert err.response["Error"]["Message"] == "Topic does not exist"
    for bad in ("not-an-arn", "arn:aws:sqs:us-east-1:123456789012:q", f"arn:aws:sns:{REGION}:1:t"):
        with pytest.raises(ClientError) as e:
            sns.publish(TopicArn=bad, Message="m")
        assert_client_error(e, "InvalidParameter", 400)
    # 256 KiB is the limit, attributes included.
    sns.publish(TopicArn=topic, Message="x" * 262_144)
    with pytest.raises(ClientError) as e:
        sns.publish(TopicArn=topic, Message="x" * 262_145)
    err = assert_client_error(e, "InvalidParameter", 400)
    assert "Message too long" in err.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        sns.publish(TopicArn=topic, Message="x" * 262_140,
                    MessageAttributes={"k": {"DataType": "String", "StringValue": "vvvvvvvv"}})
    assert_client_error(e, "InvalidParameter", 400)
    with pytest.raises(ClientError) as e:
        sns.publish(TopicArn=topic, Message="")
    assert_client_error(e, "InvalidParameter", 400)
    with pytest.raises(ClientError) as e:
        sns.publish(TopicArn=topic, Message="m",
                    MessageAttributes={"n": {"DataType": "Number", "StringValue": "abc"}})
    assert_client_error(e, "ParameterValueInvalid", 400)
    with pytest.raises(ClientError) as e:
        sns.publish(TopicArn=topic, Message="m", MessageDeduplicationId="d")
    assert_client_error(e, "InvalidParameter", 400)
    with pytest.raises(ClientError) as e:
        sns_novalidate.publish(Message="m")
    assert_client_error(e, "InvalidParameter", 400)
    with pytest.raises(ClientError) as e:
        sns.get_topic_attributes(TopicArn="arn:aws:sns:us-east-1")
    assert_client_error(e, "InvalidParameter", 400)


# --------------------------------------------------------------------------
# the AWS CLI
# --------------------------------------------------------------------------


def test_aws_cli_topic_subscribe_publish(aws_cli, sqs):
    name = unique_name("cli")
    arn = aws_cli("sns", "create-topic", "--name", name)["TopicArn"]
    try:
        assert arn.endswith(":" + name)
        topics = [t["TopicArn"] for t in aws_cli("sns", "list-topics")["Topics"]]
        assert arn in topics
        aws_cli("sns", "set-topic-attributes", "--topic-arn", arn,
                "--attribute-name", "DisplayName", "--attribute-value", "cli")
        attrs = aws_cli("sns", "get-topic-attributes", "--topic-arn", arn)["Attributes"]
        assert attrs["DisplayName"] == "cli"
        url, qarn = make_queue(sqs)
        sub = aws_cli("sns", "subscribe", "--topic-arn", arn, "--protocol", "sqs",
                      "--notification-endpoint", qarn,
                      "--attributes", json.dumps({"RawMessageDelivery": "true"}),
                      "--return-subscription-arn")["SubscriptionArn"]
        subs = aws_cli("sns", "list-subscriptions-by-topic", "--topic-arn", arn)["Subscriptions"]
        assert [s["SubscriptionArn"] for s in subs] == [sub]
        assert any(s["SubscriptionArn"] == sub for s in aws_cli("sns", "list-subscriptions")["Subscriptions"])
        aws_cli("sns", "set-subscription-attributes", "--subscription-arn", sub,
                "--attribute-name", "FilterPolicy", "--attribute-value", '{"kind": ["keep"]}')
        sattrs = aws_cli("sns", "get-subscription-attributes", "--subscription-arn", sub)["Attributes"]
        assert json.loads(sattrs["FilterPolicy"]) == {"kind": ["keep"]}
        mid = aws_cli("sns", "publish", "--topic-arn", arn, "--message", "from the cli",
                      "--message-attributes",
                      json.dumps({"kind": {"DataType": "String", "StringValue": "keep"}}))["MessageId"]
        assert mid
        aws_cli("sns", "publish", "--topic-arn", arn, "--message", "dropped",
                "--message-attributes",
                json.dumps({"kind": {"DataType": "String", "StringValue": "drop"}}))
        batch = aws_cli("sns", "publish-batch", "--topic-arn", arn, "--publish-batch-request-entries",
                        json.dumps([{"Id": "1", "Message": "batched",
                                     "MessageAttributes": {"kind": {"DataType": "String",
                                                                    "StringValue": "keep"}}}]))
        assert [s["Id"] for s in batch["Successful"]] == ["1"]
        assert sorted(m["Body"] for m in receive(sqs, url, 2)) == ["batched", "from the cli"]
        aws_cli("sns", "tag-resource", "--resource-arn", arn, "--tags", "Key=team,Value=x")
        assert aws_cli("sns", "list-tags-for-resource", "--resource-arn", arn)["Tags"] == [
            {"Key": "team", "Value": "x"}]
        aws_cli("sns", "untag-resource", "--resource-arn", arn, "--tag-keys", "team")
        assert aws_cli("sns", "list-tags-for-resource", "--resource-arn", arn)["Tags"] == []
        aws_cli("sns", "unsubscribe", "--subscription-arn", sub)
        assert aws_cli("sns", "list-subscriptions-by-topic", "--topic-arn", arn)["Subscriptions"] == []
        proc = aws_cli.run("sns", "get-topic-attributes", "--topic-arn", arn + "-missing", check=False)
        assert proc.returncode != 0
        assert "NotFound" in proc.stderr
    finally:
        aws_cli("sns", "delete-topic", "--topic-arn", arn)


# --------------------------------------------------------------------------
# delivery to Lambda
# --------------------------------------------------------------------------


def test_lambda_subscription_receives_the_sns_event(server, lambda_client, sns, topic):
    fns = FunctionFactory(lambda_client, "sns")
    try:
        zip_bytes = make_zip({"app.py": (FUNCTIONS / "python_async" / "app.py").read_text()})
        created = fns.create(zip_bytes, handler="app.record")
        name, fn_arn = created["FunctionName"], created["FunctionArn"]
        sub_arn = sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=fn_arn)["SubscriptionArn"]
        r = sns.publish(TopicArn=topic, Message="to the function", Subject="S",
                        MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}})

        def recorded():
            out = stratus_cli("logs", name, "--data-dir", str(server.data_dir)).stdout
            recs = [json.loads(l.split("RECORD ", 1)[1]) for l in out.splitlines() if "RECORD " in l]
            return recs or None

        recs = wait_until(recorded, timeout=60, what="the function to record the SNS event")
        event = recs[0]
        rec = event["Records"][0]
        assert rec["EventSource"] == "aws:sns"
        assert rec["EventVersion"] == "1.0"
        assert rec["EventSubscriptionArn"] == sub_arn
        s = rec["Sns"]
        assert s["Type"] == "Notification"
        assert s["MessageId"] == r["MessageId"]
        assert s["TopicArn"] == topic
        assert s["Subject"] == "S"
        assert s["Message"] == "to the function"
        assert s["MessageAttributes"] == {"k": {"Type": "String", "Value": "v"}}
        for k in ("Timestamp", "SignatureVersion", "Signature", "SigningCertUrl", "UnsubscribeUrl"):
            assert k in s, k
        with pytest.raises(ClientError) as e:
            sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=fn_arn,
                          Attributes={"RawMessageDelivery": "true"})
        assert_client_error(e, "InvalidParameter", 400)
    finally:
        fns.cleanup()


# --------------------------------------------------------------------------
# HTTP delivery, retries and durability across a restart
# --------------------------------------------------------------------------


class _Collector(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(n).decode()
        _Collector.received.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_http_delivery_is_retried_and_survives_sigkill(tmp_path):
    """An HTTP endpoint that is down: the delivery is retried (AWS's HTTP/S
    policy: 3 retries 20 s apart, here at --time-scale 20, so 1 s apart);
    the server is killed with SIGKILL before the endpoint comes up; the
    restarted server delivers the pending notification."""
    srv = start_server(tmp_path / "data", name="sns-http", extra_args=["--time-scale", "20"])
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    try:
        client = make_client(srv.url, "sns")
        arn = client.create_topic(Name="hooks")["TopicArn"]
        sub = client.subscribe(TopicArn=arn, Protocol="http", Endpoint=url)["SubscriptionArn"]
        attrs = client.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
        assert attrs["PendingConfirmation"] == "false"
        mid = client.publish(TopicArn=arn, Message="survives", Subject="hook")["MessageId"]
        time.sleep(0.3)
        srv.kill()
        _Collector.received = []
        httpd = HTTPServer(("127.0.0.1", port), _Collector)
        t = threading.Thread(target=httpd.serve_forever, daemon=True)
        t.start()
        try:
            srv.start()
            wait_until(lambda: _Collector.received, timeout=30, what="the HTTP notification")
            headers, body = _Collector.received[0]
            h = {k.lower(): v for k, v in headers.items()}
            assert h["x-amz-sns-message-type"] == "Notification"
            assert h["x-amz-sns-message-id"] == mid
            assert h["x-amz-sns-topic-arn"] == arn
            assert h["x-amz-sns-subscription-arn"] == sub
            doc = json.loads(body)
            assert doc["Type"] == "Notification"
            assert doc["MessageId"] == mid
            assert doc["Message"] == "survives"
            assert doc["Subject"] == "hook"
        finally:
            httpd.shutdown()
    finally:
        srv.stop()


# --------------------------------------------------------------------------
# dead-letter queues, raw attribute types, unsigned requests, the docs
# --------------------------------------------------------------------------


def test_undeliverable_message_goes_to_the_dead_letter_queue(sns, sqs, topic):
    """A queue deleted after subscribing is a client-side error: no retries,
    the message moves to the subscription's dead-letter queue."""
    url, qarn = make_queue(sqs)
    dlq_url, dlq_arn = make_queue(sqs)
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn,
                  Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn})})
    sqs.delete_queue(QueueUrl=url)
    mid = sns.publish(TopicArn=topic, Message="nowhere to go")["MessageId"]
    msgs = receive(sqs, dlq_url, 1, timeout=20)
    assert len(msgs) == 1
    body = json.loads(msgs[0]["Body"])
    assert body["MessageId"] == mid
    assert body["Message"] == "nowhere to go"
    with pytest.raises(ClientError) as e:
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=dlq_arn,
                      Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": "nope"})})
    assert_client_error(e, "InvalidParameter", 400)


def test_raw_delivery_keeps_string_array_and_binary_attributes(sns, sqs, topic):
    url, qarn = make_queue(sqs)
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn,
                  Attributes={"RawMessageDelivery": "true"})
    sns.publish(TopicArn=topic, Message="typed", MessageAttributes={
        "list": {"DataType": "String.Array", "StringValue": '["a", "b"]'},
        "bin": {"DataType": "Binary", "BinaryValue": b"\x01\x02"},
    })
    msgs = receive(sqs, url)
    assert len(msgs) == 1
    attrs = msgs[0]["MessageAttributes"]
    assert attrs["list"] == {"StringValue": '["a", "b"]', "DataType": "String.Array"}
    assert attrs["bin"] == {"BinaryValue": b"\x01\x02", "DataType": "Binary"}


def test_unsigned_query_requests_route_to_sns(endpoint):
    import urllib.request
    req = urllib.request.Request(endpoint + "/", data=b"Action=ListTopics&Version=2010-03-31",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read().decode()
    assert r.status == 200
    assert "<ListTopicsResponse" in body and "http://sns.amazonaws.com/doc/2010-03-31/" in body


def test_docs_example_runs_as_written(aws_cli, endpoint, tmp_path):
    """docs/sns.md's shell example, with the endpoint of the test server."""
    import re
    import subprocess
    doc = (Path(__file__).resolve().parents[2] / "docs" / "sns.md").read_text()
    script = re.search(r"```sh\n(.*?)```", doc, re.S).group(1)
    assert "EP=http://127.0.0.1:4566" in script
    script = script.replace("EP=http://127.0.0.1:4566", f"EP={endpoint}")
    env = aws_cli.env()
    env["PATH"] = str(Path(aws_cli_bin()).parent) + ":" + env.get("PATH", "")
    proc = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True,
                          env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "order 1", proc.stdout


def aws_cli_bin() -> str:
    from harness import aws_cli_path
    return aws_cli_path()


def test_lambda_destination_publishes_to_a_topic(lambda_client, sns, sqs, topic):
    """An asynchronous invocation's OnSuccess destination is a topic: the
    invocation record is published to it and reaches the subscribed queue
    (Lambda Developer Guide, "Capturing records of Lambda asynchronous
    invocations")."""
    url, qarn = make_queue(sqs)
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)
    fns = FunctionFactory(lambda_client, "snsdest")
    try:
        zip_bytes = make_zip({"app.py": (FUNCTIONS / "python_async" / "app.py").read_text()})
        name = fns.create(zip_bytes, handler="app.run")["FunctionName"]
        lambda_client.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": topic}})
        lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"amount": 7}')
        msgs = receive(sqs, url, 1, timeout=60)
        assert len(msgs) == 1
        note = json.loads(msgs[0]["Body"])
        assert note["Type"] == "Notification" and note["TopicArn"] == topic
        record = json.loads(note["Message"])
        assert record["requestContext"]["condition"] == "Success"
        assert record["requestPayload"] == {"amount": 7}
        assert record["responsePayload"]["processedAmount"] == 7
    finally:
        fns.cleanup()


class _Flaky(BaseHTTPRequestHandler):
    """Answers 500 to the first `fail` POSTs, then 200."""
    fail = 0
    received: list = []

    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        _Flaky.received.append((dict(self.headers), self.rfile.read(n).decode()))
        if _Flaky.fail > 0:
            _Flaky.fail -= 1
            self.send_response(500)
        else:
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_http_delivery_policy_retries_and_content_type(sns, topic):
    """A subscription DeliveryPolicy (AWS's HTTP/S delivery policy format):
    5 retries 1 s apart and an application/json content type; the endpoint
    fails twice with 500 and takes the third attempt."""
    port = free_port()
    httpd = HTTPServer(("127.0.0.1", port), _Flaky)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _Flaky.fail, _Flaky.received = 2, []
    try:
        policy = {"healthyRetryPolicy": {"numRetries": 5, "minDelayTarget": 1, "maxDelayTarget": 1},
                  "requestPolicy": {"headerContentType": "application/json"}}
        sub = sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=f"http://127.0.0.1:{port}/",
                            Attributes={"DeliveryPolicy": json.dumps(policy)})["SubscriptionArn"]
        eff = json.loads(sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
                         ["EffectiveDeliveryPolicy"])
        assert eff["healthyRetryPolicy"]["numRetries"] == 5
        sns.publish(TopicArn=topic, Message="eventually")
        wait_until(lambda: len(_Flaky.received) >= 3, timeout=20, what="three delivery attempts")
        time.sleep(1.5)
        assert len(_Flaky.received) == 3
        headers, body = _Flaky.received[-1]
        assert {k.lower(): v for k, v in headers.items()}["content-type"] == "application/json"
        assert json.loads(body)["Message"] == "eventually"
        with pytest.raises(ClientError) as e:
            sns.set_subscription_attributes(
                SubscriptionArn=sub, AttributeName="DeliveryPolicy",
                AttributeValue=json.dumps({"healthyRetryPolicy": {"numRetries": 101}}))
        assert_client_error(e, "InvalidParameter", 400)
    finally:
        httpd.shutdown()
