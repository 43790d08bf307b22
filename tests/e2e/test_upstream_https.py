"""https for outgoing requests: Step Functions tasks forwarded to an
upstream endpoint over TLS (`--upstream-endpoint https://...`) and SNS
`https` subscriptions.

The tests make their own certificate authority and a server certificate
for 127.0.0.1 with `openssl`, run moto's server over TLS with it, and
point stratus at it with the CA bundle (`--upstream-ca-bundle`, or the
`AWS_CA_BUNDLE` variable the AWS SDKs read). Without the bundle the
certificate is unknown and the task fails with a client error naming it;
a name the certificate does not hold and a closed port fail the same way.

Expected behaviour: Step Functions Developer Guide ("Call DynamoDB with
Step Functions": putItem / getItem parameters and results; "Learning to
use AWS service SDK integrations"); Amazon SNS Developer Guide ("Fanout to
HTTP/S endpoints": the POST's `x-amz-sns-*` headers and the JSON
notification document).
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from harness import ACCOUNT, STRATUS_BIN, free_port, make_client, start_server, wait_until

REGION = "eu-west-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sfn"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A private certificate authority and a server certificate it issued
    for the IP address 127.0.0.1 (subjectAltName), as mkcert-style local
    endpoints have."""
    assert shutil.which("openssl"), "the openssl command is needed (Debian package openssl)"
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=stratus test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "2", "-sha256", "-extfile", "ext.cnf", cwd=d)
    # A self-signed server certificate (its own authority, not a CA).
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "self.key", "-out", "self.pem",
             "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-addext", "basicConstraints=critical,CA:FALSE", cwd=d)
    # openssl's default self-signed certificate: marked CA:TRUE, which a
    # verifier refuses as a server's own certificate.
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "selfca.key", "-out", "selfca.pem",
             "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", cwd=d)
    bundle = d / "bundle.pem"
    bundle.write_text("".join((d / n).read_text() for n in ("ca.pem", "self.pem", "selfca.pem")))
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key", "bundle": bundle,
            "self_cert": d / "self.pem", "self_key": d / "self.key",
            "selfca_cert": d / "selfca.pem", "selfca_key": d / "selfca.key"}


@pytest.fixture(scope="module")
def moto_tls(pki):
    """moto's server on https://127.0.0.1:PORT with the test certificate."""
    port = free_port()
    launcher = Path(__file__).resolve().parent / "support" / "moto_server.py"
    proc = subprocess.Popen([sys.executable, str(launcher), "-H", "127.0.0.1", "-p", str(port),
                             "-c", str(pki["cert"]), "-k", str(pki["key"])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    import urllib.request
    end = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(f"https://127.0.0.1:{port}/moto-api/", context=ctx, timeout=2).close()
            break
        except Exception:
            if time.time() > end or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto_server did not start over TLS")
            time.sleep(0.2)
    yield f"https://127.0.0.1:{port}", port
    proc.terminate()
    proc.wait(timeout=10)


def moto_client(url: str, ca: Path, service: str):
    return boto3.client(service, endpoint_url=url, region_name=REGION, aws_access_key_id="test",
                        aws_secret_access_key="test", verify=str(ca),
                        config=Config(retries={"max_attempts": 1}))


def run(sfn, definition: dict, input_: dict, name: str, timeout: float = 60) -> dict:
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps(input_))["executionArn"]
    wait_until(lambda: sfn.describe_execution(executionArn=ex)["status"] != "RUNNING", timeout=timeout,
               what=f"{name} to finish")
    return sfn.describe_execution(executionArn=ex)


def put_then_get(table: str) -> dict:
    """putItem (optimized integration) then getItem (AWS SDK integration)."""
    return {
        "StartAt": "Put",
        "States": {
            "Put": {
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:putItem",
                "Parameters": {"TableName": table,
                               "Item": {"id": {"S.$": "$.id"}, "note": {"S.$": "$.note"}}},
                "ResultPath": None,
                "Next": "Get",
            },
            "Get": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:dynamodb:getItem",
                "Parameters": {"TableName": table, "Key": {"id": {"S.$": "$.id"}}},
                "End": True,
            },
        },
    }


def make_table(moto_url: str, ca: Path, name: str) -> None:
    moto_client(moto_url, ca, "dynamodb").create_table(
        TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")


class _Collector(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(n).decode()
        _Collector.received.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def tls_server(cert: Path, key: Path) -> HTTPServer:
    """A small HTTPS server on 127.0.0.1 that records POSTs (_Collector)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    httpd = HTTPServer(("127.0.0.1", 0), _Collector)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture(scope="module")
def ca_marked_endpoint(pki):
    httpd = tls_server(pki["selfca_cert"], pki["selfca_key"])
    yield httpd.server_address[1]
    httpd.shutdown()


@pytest.fixture(scope="module")
def trusted(tmp_path_factory, moto_tls, pki, ca_marked_endpoint):
    """A server trusting the test CA and both self-signed certificates
    through --upstream-ca-bundle; its secretsmanager endpoint names the host
    `localhost`, which the certificate does not hold, its kms endpoint is a
    closed port, and its ssm endpoint shows a CA:TRUE self-signed
    certificate."""
    url, port = moto_tls
    closed = free_port()
    s = start_server(tmp_path_factory.mktemp("https-trusted") / "data", name="https-trusted",
                     env={"AWS_CA_BUNDLE": ""},
                     extra_args=["--upstream-endpoint", url,
                                 "--upstream-endpoint", f"secretsmanager=https://localhost:{port}",
                                 "--upstream-endpoint", f"kms=https://127.0.0.1:{closed}",
                                 "--upstream-endpoint", f"ssm=https://127.0.0.1:{ca_marked_endpoint}",
                                 "--upstream-ca-bundle", str(pki["bundle"])])
    yield s
    s.stop()


def test_putitem_and_sdk_getitem_over_tls_with_the_ca_bundle_flag(trusted, moto_tls, pki):
    url, _ = moto_tls
    make_table(url, pki["ca"], "TlsFlag")
    sfn = make_client(trusted.url, "stepfunctions", region=REGION)
    d = run(sfn, put_then_get("TlsFlag"), {"id": "o-1", "note": "over tls"}, "tls-flag")
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"])["Item"] == {"id": {"S": "o-1"}, "note": {"S": "over tls"}}
    # The item is in moto (read back over TLS by boto3).
    got = moto_client(url, pki["ca"], "dynamodb").get_item(TableName="TlsFlag", Key={"id": {"S": "o-1"}})
    assert got["Item"] == {"id": {"S": "o-1"}, "note": {"S": "over tls"}}


def test_s3_put_and_get_object_over_tls(trusted, moto_tls, pki):
    """S3's rest-xml calls (path-style, unsigned payload) over TLS."""
    url, _ = moto_tls
    s3 = moto_client(url, pki["ca"], "s3")
    s3.create_bucket(Bucket="tls-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    sfn = make_client(trusted.url, "stepfunctions", region=REGION)
    d = run(sfn, {"StartAt": "Put", "States": {
        "Put": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:putObject",
                "Parameters": {"Bucket": "tls-bucket", "Key": "a/b.txt", "Body.$": "$.text"},
                "ResultPath": None, "Next": "Get"},
        "Get": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                "Parameters": {"Bucket": "tls-bucket", "Key": "a/b.txt"}, "End": True}}},
        {"text": "hello over tls"}, "tls-s3")
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"])["Body"] == "hello over tls"
    assert s3.get_object(Bucket="tls-bucket", Key="a/b.txt")["Body"].read() == b"hello over tls"


def test_aws_ca_bundle_environment_variable_is_read(tmp_path, moto_tls, pki):
    url, _ = moto_tls
    make_table(url, pki["ca"], "TlsEnv")
    s = start_server(tmp_path / "data", name="https-env", env={"AWS_CA_BUNDLE": str(pki["ca"])},
                     extra_args=["--upstream-endpoint", url])
    try:
        sfn = make_client(s.url, "stepfunctions", region=REGION)
        d = run(sfn, put_then_get("TlsEnv"), {"id": "e-1", "note": "env"}, "tls-env")
        assert d["status"] == "SUCCEEDED", d
        assert json.loads(d["output"])["Item"]["note"] == {"S": "env"}
    finally:
        s.stop()


def test_without_the_ca_bundle_the_task_fails_with_a_certificate_error(tmp_path, moto_tls, pki):
    url, _ = moto_tls
    make_table(url, pki["ca"], "TlsNoCa")
    s = start_server(tmp_path / "data", name="https-no-ca", env={"AWS_CA_BUNDLE": ""},
                     extra_args=["--upstream-endpoint", url, "--time-scale", "100"])
    try:
        sfn = make_client(s.url, "stepfunctions", region=REGION)
        d = run(sfn, put_then_get("TlsNoCa"), {"id": "n-1", "note": "x"}, "tls-no-ca")
        assert d["status"] == "FAILED", d
        assert d["error"] == "DynamoDB.SdkClientException", d
        assert "UnknownIssuer" in d["cause"], d["cause"]
        assert "--upstream-ca-bundle" in d["cause"], d["cause"]
        # Nothing was written.
        got = moto_client(url, pki["ca"], "dynamodb").get_item(TableName="TlsNoCa", Key={"id": {"S": "n-1"}})
        assert "Item" not in got
        # The AWS SDK integration names the error after the service.
        d = run(sfn, {"StartAt": "Get", "States": {"Get": {
            "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:dynamodb:getItem",
            "Parameters": {"TableName": "TlsNoCa", "Key": {"id": {"S": "n-1"}}}, "End": True}}},
            {}, "tls-no-ca-sdk")
        assert d["status"] == "FAILED", d
        assert d["error"] == "DynamoDb.SdkClientException", d
        assert "UnknownIssuer" in d["cause"], d["cause"]

        # An SNS https subscriber with the same untrusted certificate gets
        # nothing: the attempts fail (AWS's default HTTP/S policy, 3
        # retries 20 s apart, here at --time-scale 100) and the notification
        # goes to the subscription's dead-letter queue.
        httpd = tls_server(pki["cert"], pki["key"])
        _Collector.received = []
        try:
            sqs = make_client(s.url, "sqs", region=REGION)
            dlq = sqs.create_queue(QueueName="tls-dlq")["QueueUrl"]
            sns = make_client(s.url, "sns", region=REGION)
            topic = sns.create_topic(Name="tls-untrusted")["TopicArn"]
            sns.subscribe(TopicArn=topic, Protocol="https",
                          Endpoint=f"https://127.0.0.1:{httpd.server_address[1]}/",
                          Attributes={"RedrivePolicy": json.dumps(
                              {"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:tls-dlq"})})
            mid = sns.publish(TopicArn=topic, Message="not trusted")["MessageId"]
            msgs: list = []

            def dead_lettered():
                msgs.extend(sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages", []))
                return msgs
            wait_until(dead_lettered, timeout=30, what="the notification in the dead-letter queue")
            doc = json.loads(msgs[0]["Body"])
            assert doc["MessageId"] == mid and doc["Message"] == "not trusted"
            assert _Collector.received == []
        finally:
            httpd.shutdown()
    finally:
        s.stop()


def test_a_name_the_certificate_does_not_hold_and_a_closed_port_fail_the_task(trusted):
    sfn = make_client(trusted.url, "stepfunctions", region=REGION)
    d = run(sfn, {"StartAt": "S", "States": {"S": {
        "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:secretsmanager:getSecretValue",
        "Parameters": {"SecretId": "s"}, "End": True}}}, {}, "tls-name")
    assert d["status"] == "FAILED", d
    assert d["error"] == "SecretsManager.SdkClientException", d
    # The certificate holds only IP:127.0.0.1, not the name localhost.
    assert "not valid for name" in d["cause"] and "localhost" in d["cause"], d["cause"]
    assert "--upstream-ca-bundle" not in d["cause"], d["cause"]
    d = run(sfn, {"StartAt": "K", "States": {"K": {
        "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:kms:listKeys",
        "Parameters": {}, "End": True}}}, {}, "tls-closed")
    assert d["status"] == "FAILED", d
    assert d["error"] == "Kms.SdkClientException", d
    assert "cannot be reached" in d["cause"] and "refused" in d["cause"].lower(), d["cause"]
    d = run(sfn, {"StartAt": "P", "States": {"P": {
        "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:ssm:getParameter",
        "Parameters": {"Name": "p"}, "End": True}}}, {}, "tls-ca-marked")
    assert d["status"] == "FAILED", d
    assert d["error"] == "Ssm.SdkClientException", d
    assert "CaUsedAsEndEntity" in d["cause"] and "CA:FALSE" in d["cause"], d["cause"]


def test_a_bad_ca_bundle_is_refused_at_startup(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    r = subprocess.run([str(STRATUS_BIN), "server", "--listen", f"127.0.0.1:{free_port()}", "--data-dir",
                        str(tmp_path / "data"), "--upstream-ca-bundle", str(bad)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert str(bad) in r.stderr and "certificate" in r.stderr, r.stderr


# --------------------------------------------------------------------------
# SNS https subscriptions
# --------------------------------------------------------------------------


def test_sns_https_subscription_receives_the_notification(trusted, pki):
    """Two https subscribers: one with a certificate issued by the test CA,
    one with a self-signed certificate; both are in the server's bundle."""
    httpd = tls_server(pki["cert"], pki["key"])
    port = httpd.server_address[1]
    own = tls_server(pki["self_cert"], pki["self_key"])
    _Collector.received = []
    try:
        sns = make_client(trusted.url, "sns", region=REGION)
        topic = sns.create_topic(Name="tls-hooks")["TopicArn"]
        sub = sns.subscribe(TopicArn=topic, Protocol="https", Endpoint=f"https://127.0.0.1:{port}/hook?x=1",
                            ReturnSubscriptionArn=True)["SubscriptionArn"]
        attrs = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
        assert attrs["Protocol"] == "https"
        assert attrs["Endpoint"] == f"https://127.0.0.1:{port}/hook?x=1"
        assert "EffectiveDeliveryPolicy" in attrs
        own_sub = sns.subscribe(TopicArn=topic, Protocol="https",
                                Endpoint=f"https://127.0.0.1:{own.server_address[1]}/own")["SubscriptionArn"]
        mid = sns.publish(TopicArn=topic, Message="over tls", Subject="tls")["MessageId"]
        wait_until(lambda: len(_Collector.received) >= 2, timeout=30, what="the https notifications")
        by_path = {r[0]: r for r in _Collector.received}
        assert set(by_path) == {"/hook?x=1", "/own"}, by_path.keys()
        own_headers = {k.lower(): v for k, v in by_path["/own"][1].items()}
        assert own_headers["x-amz-sns-subscription-arn"] == own_sub
        assert json.loads(by_path["/own"][2])["Message"] == "over tls"
        path, headers, body = by_path["/hook?x=1"]
        assert path == "/hook?x=1"
        h = {k.lower(): v for k, v in headers.items()}
        assert h["x-amz-sns-message-type"] == "Notification"
        assert h["x-amz-sns-message-id"] == mid
        assert h["x-amz-sns-topic-arn"] == topic
        assert h["x-amz-sns-subscription-arn"] == sub
        doc = json.loads(body)
        assert doc["Type"] == "Notification"
        assert doc["MessageId"] == mid
        assert doc["Message"] == "over tls"
        assert doc["Subject"] == "tls"
        # MessageStructure=json: the `https` key is what https subscribers get.
        _Collector.received = []
        sns.publish(TopicArn=topic, MessageStructure="json",
                    Message=json.dumps({"default": "for everyone", "https": "for https"}))
        wait_until(lambda: len(_Collector.received) >= 2, timeout=30, what="the structured notifications")
        assert {json.loads(r[2])["Message"] for r in _Collector.received} == {"for https"}
    finally:
        httpd.shutdown()
        own.shutdown()


def test_sns_https_endpoint_must_be_an_https_url(trusted):
    from botocore.exceptions import ClientError
    sns = make_client(trusted.url, "sns", region=REGION)
    topic = sns.create_topic(Name="tls-bad")["TopicArn"]
    for endpoint in ("http://127.0.0.1:1/x", "https://", "127.0.0.1:443"):
        with pytest.raises(ClientError) as e:
            sns.subscribe(TopicArn=topic, Protocol="https", Endpoint=endpoint)
        assert e.value.response["Error"]["Code"] == "InvalidParameter"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
