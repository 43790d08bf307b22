"""Lambda layers (issue 3, part 4): PublishLayerVersion, GetLayerVersion,
GetLayerVersionByArn, ListLayers, ListLayerVersions, DeleteLayerVersion, the
layer version permissions, `Layers` on functions, and the merged /opt the
function sees.

Expected behaviour comes from AWS's documentation ("Managing Lambda
dependencies with layers", "Adding layers to functions", the API reference)
and botocore's model: versions numbered from 1 and never reused, newest first
in ListLayerVersions, at most 5 layers per function, function + layers within
250 MB unzipped ("Function code combined with layers exceeds the maximum
allowed size of 262144000 bytes. The actual size is N bytes."), a missing
layer version refused with "Layer version ARN does not exist.", layers merged
into /opt in order with a later layer's file winning, and the paths the
managed runtimes search: /opt/python, /opt/python/lib/pythonX.Y/site-packages,
/opt/nodejs/node_modules, /opt/bin on PATH, /opt/lib on LD_LIBRARY_PATH.
CompatibleRuntimes / CompatibleArchitectures only filter the list operations
(AWS does not refuse a layer whose lists do not name the function's runtime).

The runtime-path tests run in both isolation modes (a server per mode, root
needed for namespace mode); the API tests use the session server.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import urllib.request
import zipfile

import pytest
from botocore.exceptions import ClientError
from harness import (
    ACCOUNT,
    NODE_RUNTIME,
    PROVIDED_RUNTIME,
    PYTHON_RUNTIME,
    REGION,
    ROLE,
    AwsCli,
    FunctionFactory,
    assert_client_error,
    invoke,
    invoke_ok,
    make_zip,
    sha256_b64,
    start_server,
    unique_name,
    wait_for_function,
)

IS_ROOT = os.geteuid() == 0
CREATED_DATE_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$"


def layer_arn(name: str, region: str = REGION) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{name}"


def publish(client, name: str, files: dict, executables=(), **kwargs) -> dict:
    """PublishLayerVersion of a zip holding `files` (`executables` get mode 0755)."""
    content = {"ZipFile": make_zip(files, executables=executables)}
    return client.publish_layer_version(LayerName=name, Content=content, **kwargs)


# --------------------------------------------------------------------------
# a server per isolation mode for the runtime-path tests
# --------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["namespace", "process"])
def lsrv(request, tmp_path_factory):
    mode = request.param
    if mode == "namespace" and not IS_ROOT:
        pytest.skip("namespace isolation needs root (CI runs as root)")
    srv = start_server(tmp_path_factory.mktemp(f"layers-{mode}") / "data", name=f"layers-{mode}",
                       extra_args=["--isolation", mode])
    srv.mode = mode
    yield srv
    srv.stop()


@pytest.fixture
def lfns(lsrv, request):
    factory = FunctionFactory(lsrv.client(), request.node.name.split("[")[0].replace("test_", "l-"))
    yield factory
    factory.cleanup()


# --------------------------------------------------------------------------
# the seed's shared-utilities layer (section 6), with the AWS CLI
# --------------------------------------------------------------------------

SEED_RESPONSE = '''import json
from typing import Any, Optional

def api_response(
    status_code: int,
    body: Any,
    headers: Optional[dict] = None
) -> dict:
    """API Gateway 用の標準レスポンスを生成する"""
    default_headers = {
        "Content-Type": "application/json",
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Headers": "Content-Type,Authorization",
        "Access-Control-Allow-Methods": "GET,POST,PUT,DELETE,OPTIONS",
    }
    if headers:
        default_headers.update(headers)

    return {
        "statusCode": status_code,
        "headers": default_headers,
        "body": json.dumps(body, ensure_ascii=False, default=str),
    }

def error_response(
    status_code: int,
    message: str,
    error_code: Optional[str] = None
) -> dict:
    """エラーレスポンスを生成する"""
    body = {"error": {"message": message}}
    if error_code:
        body["error"]["code"] = error_code
    return api_response(status_code, body)
'''

SEED_LOGGER = '''import json
import logging
import os
import sys
from datetime import datetime, timezone

class StructuredLogger:
    """構造化ログを出力するロガー"""

    def __init__(self, service_name: str = None):
        self.service_name = service_name or os.environ.get("SERVICE_NAME", "unknown")
        self.logger = logging.getLogger(self.service_name)
        self.logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

        # JSON フォーマッタの設定
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        self.logger.handlers = [handler]

    def _format(self, level: str, message: str, **kwargs) -> str:
        log_entry = {
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "level": level,
            "service": self.service_name,
            "message": message,
            **kwargs
        }
        return json.dumps(log_entry, ensure_ascii=False, default=str)

    def info(self, message: str, **kwargs):
        self.logger.info(self._format("INFO", message, **kwargs))

    def error(self, message: str, **kwargs):
        self.logger.error(self._format("ERROR", message, **kwargs))

    def warning(self, message: str, **kwargs):
        self.logger.warning(self._format("WARNING", message, **kwargs))

    def debug(self, message: str, **kwargs):
        self.logger.debug(self._format("DEBUG", message, **kwargs))
'''

SEED_FUNCTION = '''from common.response import api_response, error_response
from common.logger import StructuredLogger

logger = StructuredLogger("orders")

def lambda_handler(event, context):
    logger.info("request received", request_id=context.aws_request_id)
    if event.get("fail"):
        return error_response(400, "bad order", "E400")
    return api_response(200, {"orderId": event.get("orderId"), "message": "受け付けました"})
'''


@pytest.mark.cli
def test_seed_shared_utilities_layer_with_the_aws_cli(lsrv, tmp_path):
    """Section 6.2 / 6.3 of the seed, commands as written (plus --endpoint-url)."""
    cli = AwsCli(lsrv.url, region="ap-northeast-1")
    work = tmp_path / "seed"
    site = work / "python" / "lib" / "python3.12" / "site-packages" / "common"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("")
    (site / "response.py").write_text(SEED_RESPONSE, encoding="utf-8")
    (site / "logger.py").write_text(SEED_LOGGER, encoding="utf-8")
    subprocess.run(["zip", "-r9", "my-layer.zip", "python/"], cwd=work, check=True, capture_output=True)

    suffix = unique_name("s").split("-")[-1]
    common, utils, fn = f"my-common-libs-{suffix}", f"my-utilities-{suffix}", f"my-function-{suffix}"
    published = cli("lambda", "publish-layer-version", "--layer-name", common,
                    "--description", "共通ライブラリ (requests, boto3-stubs)",
                    "--compatible-runtimes", "python3.11", "python3.12",
                    "--compatible-architectures", "x86_64", "arm64",
                    "--zip-file", f"fileb://{work / 'my-layer.zip'}")
    assert published["LayerVersionArn"] == f"arn:aws:lambda:ap-northeast-1:{ACCOUNT}:layer:{common}:1"
    assert published["Version"] == 1
    assert published["Description"] == "共通ライブラリ (requests, boto3-stubs)"
    assert published["CompatibleRuntimes"] == ["python3.11", "python3.12"]
    assert published["CompatibleArchitectures"] == ["x86_64", "arm64"]
    zip_bytes = (work / "my-layer.zip").read_bytes()
    assert published["Content"]["CodeSha256"] == sha256_b64(zip_bytes)
    assert published["Content"]["CodeSize"] == len(zip_bytes)

    # The second layer of the seed's command, at version 3.
    (work / "u").mkdir()
    for i in range(3):
        (work / "u" / "python").mkdir(exist_ok=True)
        (work / "u" / "python" / "utilities_marker.py").write_text(f"VERSION = {i + 1}\n")
        subprocess.run(["zip", "-r9", f"u{i}.zip", "python/"], cwd=work / "u", check=True, capture_output=True)
        cli("lambda", "publish-layer-version", "--layer-name", utils,
            "--zip-file", f"fileb://{work / 'u' / f'u{i}.zip'}")

    (work / "fn").mkdir()
    (work / "fn" / "lambda_function.py").write_text(SEED_FUNCTION, encoding="utf-8")
    subprocess.run(["zip", "-r9", "function.zip", "lambda_function.py"], cwd=work / "fn", check=True,
                   capture_output=True)
    cli("lambda", "create-function", "--function-name", fn, "--runtime", "python3.12",
        "--handler", "lambda_function.lambda_handler", "--role", ROLE,
        "--zip-file", f"fileb://{work / 'fn' / 'function.zip'}")
    try:
        cli("lambda", "wait", "function-active-v2", "--function-name", fn)
        updated = cli("lambda", "update-function-configuration", "--function-name", fn,
                      "--layers",
                      f"arn:aws:lambda:ap-northeast-1:123456789012:layer:{common}:1",
                      f"arn:aws:lambda:ap-northeast-1:123456789012:layer:{utils}:3")
        assert [l["Arn"] for l in updated["Layers"]] == [
            f"arn:aws:lambda:ap-northeast-1:123456789012:layer:{common}:1",
            f"arn:aws:lambda:ap-northeast-1:123456789012:layer:{utils}:3",
        ]
        assert updated["Layers"][0]["CodeSize"] == len(zip_bytes)
        cli("lambda", "wait", "function-updated-v2", "--function-name", fn)

        out = tmp_path / "out.json"
        result = cli("lambda", "invoke", "--function-name", fn, *cli.payload_args,
                     "--payload", '{"orderId": "o-1"}', "--log-type", "Tail", str(out))
        assert "FunctionError" not in result, out.read_text()
        body = json.loads(out.read_text())
        assert body["statusCode"] == 200
        assert body["headers"]["Access-Control-Allow-Origin"] == "*"
        assert json.loads(body["body"]) == {"orderId": "o-1", "message": "受け付けました"}
        log = base64.b64decode(result["LogResult"]).decode()
        record = next(json.loads(l) for l in log.splitlines() if l.startswith("{"))
        assert record["service"] == "orders" and record["message"] == "request received"

        versions = cli("lambda", "list-layer-versions", "--layer-name", common)
        assert [v["Version"] for v in versions["LayerVersions"]] == [1]

        cli("lambda", "delete-layer-version", "--layer-name", common, "--version-number", "1")
        assert cli("lambda", "list-layer-versions", "--layer-name", common)["LayerVersions"] == []
        # The function keeps the version it uses (AWS: "Your functions can
        # continue to use any layer version that you've already added, even
        # after that layer version has been deleted"), also in a new environment.
        cli("lambda", "update-function-configuration", "--function-name", fn, "--description", "fresh env")
        cli("lambda", "wait", "function-updated-v2", "--function-name", fn)
        result = cli("lambda", "invoke", "--function-name", fn, *cli.payload_args,
                     "--payload", '{"fail": true}', str(out))
        assert json.loads(out.read_text())["statusCode"] == 400
        # ... but a new function cannot use it.
        proc = cli.run("lambda", "create-function", "--function-name", fn + "-new", "--runtime", "python3.12",
                       "--handler", "lambda_function.lambda_handler", "--role", ROLE,
                       "--zip-file", f"fileb://{work / 'fn' / 'function.zip'}",
                       "--layers", f"arn:aws:lambda:ap-northeast-1:123456789012:layer:{common}:1", check=False)
        assert proc.returncode != 0
        assert "InvalidParameterValueException" in proc.stderr
        assert f"layer:{common}:1 does not exist" in proc.stderr
    finally:
        cli.run("lambda", "delete-function", "--function-name", fn, check=False)


# --------------------------------------------------------------------------
# merged /opt: order and runtime paths
# --------------------------------------------------------------------------

PY_PROBE = """import os, sys, subprocess
def handler(event, context):
    import common, which
    out = {"hello": common.hello("layers"), "which": which.WHO}
    try:
        import sitepkg_only
        out["site"] = sitepkg_only.WHERE
    except ImportError as e:
        out["site"] = repr(e)
    out["path"] = os.environ.get("PATH", "")
    out["ld"] = os.environ.get("LD_LIBRARY_PATH", "")
    return out
"""


def test_python_layer_order_and_paths(lsrv, lfns):
    client = lsrv.client()
    ver = "python3.12"
    a = publish(client, unique_name("la"), {
        "python/common/__init__.py": "def hello(n):\n    return 'hello ' + n\n",
        "python/which.py": "WHO = 'first'\n",
        f"python/lib/{ver}/site-packages/sitepkg_only.py": "WHERE = 'site-packages'\n",
    })
    b = publish(client, unique_name("lb"), {"python/which.py": "WHO = 'second'\n"})
    name = lfns.python(make_zip({"app.py": PY_PROBE}), Layers=[a["LayerVersionArn"], b["LayerVersionArn"]])
    out = invoke_ok(client, name).payload
    assert out["hello"] == "hello layers"
    assert out["which"] == "second", "the later layer's file wins"
    assert out["site"] == "site-packages"
    if lsrv.mode == "namespace":
        assert "/opt/bin" in out["path"].split(":")
        assert "/opt/lib" in out["ld"].split(":")
    else:
        assert any(p.endswith("/bin") and "/opt/" in p for p in out["path"].split(":"))

    # The other order: the first layer now comes last and wins.
    client.update_function_configuration(FunctionName=name, Layers=[b["LayerVersionArn"], a["LayerVersionArn"]])
    wait_for_function(client, name)
    assert invoke_ok(client, name).payload["which"] == "first"


def test_function_code_wins_over_layers_for_python(lsrv, lfns):
    # LAMBDA_TASK_ROOT comes first on sys.path, as on AWS.
    client = lsrv.client()
    layer = publish(client, unique_name("lc"), {"python/which.py": "WHO = 'layer'\n"})
    code = make_zip({"app.py": "import which\ndef handler(e, c):\n    return which.WHO\n",
                     "which.py": "WHO = 'function'\n"})
    name = lfns.python(code, Layers=[layer["LayerVersionArn"]])
    assert invoke_ok(client, name).payload == "function"


NODE_APP = """const x = require('x');
exports.handler = async () => ({ x: x.hello(), nodePath: process.env.NODE_PATH });
"""


@pytest.mark.node
def test_node_layer_node_modules(lsrv, lfns):
    client = lsrv.client()
    layer = publish(client, unique_name("ln"), {
        "nodejs/node_modules/x/package.json": json.dumps({"name": "x", "main": "index.js"}),
        "nodejs/node_modules/x/index.js": "exports.hello = () => 'hello from the x layer';\n",
    })
    name = lfns.create(make_zip({"index.js": NODE_APP}), runtime=NODE_RUNTIME, handler="index.handler",
                       Layers=[layer["LayerVersionArn"]])["FunctionName"]
    out = invoke_ok(client, name).payload
    assert out["x"] == "hello from the x layer"


PROVIDED_BOOTSTRAP = """#!/bin/sh
exec python3 - <<'PY'
import json, os, subprocess, urllib.request
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
base = f"http://{api}/2018-06-01/runtime/invocation"
while True:
    with urllib.request.urlopen(f"{base}/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    out = {
        "tool": subprocess.run(["layer-tool"], capture_output=True, text=True).stdout.strip(),
        "path": os.environ.get("PATH"),
        "ld": os.environ.get("LD_LIBRARY_PATH"),
    }
    req = urllib.request.Request(f"{base}/{rid}/response", data=json.dumps(out).encode(), method="POST")
    urllib.request.urlopen(req).read()
PY
"""


def test_provided_runtime_finds_opt_bin(lsrv, lfns):
    client = lsrv.client()
    layer = publish(client, unique_name("lt"), {
        "bin/layer-tool": "#!/bin/sh\necho tool-from-layer\n",
        "lib/README": "shared libraries go here\n",
    }, executables=["bin/layer-tool"])
    name = lfns.create(make_zip({"bootstrap": PROVIDED_BOOTSTRAP}, executables=["bootstrap"]),
                       runtime=PROVIDED_RUNTIME, handler="bootstrap",
                       Layers=[layer["LayerVersionArn"]])["FunctionName"]
    out = invoke_ok(client, name).payload
    assert out["tool"] == "tool-from-layer"
    # AWS's variables for OS-only runtimes: /opt/bin on PATH, /opt/lib on LD_LIBRARY_PATH.
    if lsrv.mode == "namespace":
        assert "/opt/bin" in out["path"].split(":") and "/opt/lib" in out["ld"].split(":")


def test_custom_runtime_bootstrap_from_a_layer(lsrv, lfns):
    # "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]":
    # a layer may carry the runtime itself.
    client = lsrv.client()
    layer = publish(client, unique_name("lr"), {"bootstrap": PROVIDED_BOOTSTRAP, "bin/layer-tool": "#!/bin/sh\necho rt\n"},
                    executables=["bootstrap", "bin/layer-tool"])
    name = lfns.create(make_zip({"README": "code only"}), runtime=PROVIDED_RUNTIME, handler="x",
                       Layers=[layer["LayerVersionArn"]])["FunctionName"]
    assert invoke_ok(client, name).payload["tool"] == "rt"


# --------------------------------------------------------------------------
# the API with boto3
# --------------------------------------------------------------------------


def test_publish_get_and_download(lambda_client):
    name = unique_name("layer")
    zip_bytes = make_zip({"python/mod.py": "X = 1\n"})
    pub = lambda_client.publish_layer_version(
        LayerName=name, Description="my layer", LicenseInfo="MIT",
        CompatibleRuntimes=["python3.12", "python3.13"], CompatibleArchitectures=["arm64"],
        Content={"ZipFile": zip_bytes})
    assert pub["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert pub["LayerArn"] == layer_arn(name)
    assert pub["LayerVersionArn"] == layer_arn(name) + ":1"
    assert pub["Version"] == 1
    assert pub["Description"] == "my layer" and pub["LicenseInfo"] == "MIT"
    assert pub["CompatibleRuntimes"] == ["python3.12", "python3.13"]
    assert pub["CompatibleArchitectures"] == ["arm64"]
    assert pub["Content"]["CodeSha256"] == sha256_b64(zip_bytes)
    assert pub["Content"]["CodeSize"] == len(zip_bytes)
    assert re.match(CREATED_DATE_RE, pub["CreatedDate"]), pub["CreatedDate"]
    with urllib.request.urlopen(pub["Content"]["Location"]) as r:
        assert r.read() == zip_bytes

    got = lambda_client.get_layer_version(LayerName=name, VersionNumber=1)
    for k in ("LayerArn", "LayerVersionArn", "Version", "Description", "CreatedDate", "LicenseInfo",
              "CompatibleRuntimes", "CompatibleArchitectures"):
        assert got[k] == pub[k], k
    assert got["Content"]["CodeSha256"] == pub["Content"]["CodeSha256"]
    # LayerName may be the layer's ARN.
    assert lambda_client.get_layer_version(LayerName=layer_arn(name), VersionNumber=1)["Version"] == 1
    by_arn = lambda_client.get_layer_version_by_arn(Arn=pub["LayerVersionArn"])
    assert by_arn["LayerVersionArn"] == pub["LayerVersionArn"]
    assert by_arn["Content"]["CodeSize"] == len(zip_bytes)


def test_versions_are_numbered_and_never_reused(lambda_client):
    name = unique_name("layer")
    for i in range(3):
        assert publish(lambda_client, name, {"f.txt": str(i)})["Version"] == i + 1
    lambda_client.delete_layer_version(LayerName=name, VersionNumber=3)
    assert publish(lambda_client, name, {"f.txt": "again"})["Version"] == 4
    versions = lambda_client.list_layer_versions(LayerName=name)["LayerVersions"]
    assert [v["Version"] for v in versions] == [4, 2, 1], "newest first, deleted ones not listed"
    for v in versions:
        assert v["LayerVersionArn"] == f"{layer_arn(name)}:{v['Version']}"
        assert "Content" not in v
    # Deleting a version that does not exist succeeds (no error in the model).
    lambda_client.delete_layer_version(LayerName=name, VersionNumber=3)
    lambda_client.delete_layer_version(LayerName=unique_name("never"), VersionNumber=1)


def test_list_layers_filters_and_paging(lambda_client):
    prefix = unique_name("ll")
    a, b, c = f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"
    publish(lambda_client, a, {"f": "1"}, CompatibleRuntimes=["python3.12"], CompatibleArchitectures=["x86_64"])
    publish(lambda_client, a, {"f": "2"}, CompatibleRuntimes=["nodejs20.x"])
    publish(lambda_client, b, {"f": "1"}, CompatibleRuntimes=["python3.12", "python3.13"],
            CompatibleArchitectures=["arm64"])
    publish(lambda_client, c, {"f": "1"})

    def ours(resp):
        return {l["LayerName"]: l for l in resp["Layers"] if l["LayerName"].startswith(prefix)}

    every = ours(lambda_client.list_layers())
    assert set(every) == {a, b, c}
    assert every[a]["LayerArn"] == layer_arn(a)
    assert every[a]["LatestMatchingVersion"]["Version"] == 2
    py = ours(lambda_client.list_layers(CompatibleRuntime="python3.12"))
    assert set(py) == {a, b}
    assert py[a]["LatestMatchingVersion"]["Version"] == 1, "the latest version that matches"
    assert set(ours(lambda_client.list_layers(CompatibleArchitecture="arm64"))) == {b}
    assert set(ours(lambda_client.list_layers(CompatibleRuntime="python3.12",
                                              CompatibleArchitecture="x86_64"))) == {a}

    seen, marker = [], None
    while True:
        kw = {"MaxItems": 1}
        if marker:
            kw["Marker"] = marker
        page = lambda_client.list_layers(**kw)
        assert len(page["Layers"]) <= 1
        seen += [l["LayerName"] for l in page["Layers"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert [n for n in seen if n.startswith(prefix)] == [a, b, c]
    assert seen == sorted(seen)

    pages = list(lambda_client.get_paginator("list_layer_versions").paginate(
        LayerName=a, PaginationConfig={"PageSize": 1}))
    assert [v["Version"] for p in pages for v in p["LayerVersions"]] == [2, 1]
    assert [v["Version"] for v in lambda_client.list_layer_versions(
        LayerName=a, CompatibleRuntime="nodejs20.x")["LayerVersions"]] == [2]


def test_layer_errors(lambda_client, lambda_client_novalidate, check_server):
    name = unique_name("le")
    with pytest.raises(ClientError) as e:
        lambda_client.get_layer_version(LayerName=name, VersionNumber=1)
    assert_client_error(e, "ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as e:
        lambda_client.get_layer_version_by_arn(Arn=layer_arn(name) + ":1")
    assert_client_error(e, "ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as e:
        lambda_client_novalidate.get_layer_version_by_arn(Arn="not-an-arn")
    assert_client_error(e, "ValidationException", 400)
    with pytest.raises(ClientError) as e:
        lambda_client_novalidate.publish_layer_version(LayerName="bad name!", Content={"ZipFile": make_zip({"a": "b"})})
    assert_client_error(e, "ValidationException", 400)
    with pytest.raises(ClientError) as e:
        lambda_client_novalidate.publish_layer_version(LayerName=name, Content={"ZipFile": make_zip({"a": "b"})},
                                                       CompatibleRuntimes=["cobol"])
    assert_client_error(e, "ValidationException", 400)
    with pytest.raises(ClientError) as e:
        lambda_client_novalidate.publish_layer_version(LayerName=name, Content={"ZipFile": make_zip({"a": "b"})},
                                                       CompatibleArchitectures=["sparc"])
    assert_client_error(e, "ValidationException", 400)
    with pytest.raises(ClientError) as e:
        lambda_client.publish_layer_version(LayerName=name, Content={"ZipFile": b"not a zip"})
    assert_client_error(e, "InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as e:
        lambda_client.publish_layer_version(LayerName=name, Content={"S3Bucket": "bucket", "S3Key": "k.zip"})
    assert_client_error(e, "InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as e:
        lambda_client_novalidate.list_layers(CompatibleRuntime="cobol")
    assert_client_error(e, "ValidationException", 400)
    with pytest.raises(ClientError) as e:
        lambda_client_novalidate.list_layers(MaxItems=51)
    assert_client_error(e, "ValidationException", 400)
    # Nothing was created by the failed calls.
    assert lambda_client.list_layer_versions(LayerName=name)["LayerVersions"] == []


def test_layer_version_permissions(lambda_client, lambda_client_novalidate):
    name = unique_name("lp")
    pub = publish(lambda_client, name, {"f": "1"})
    arn = pub["LayerVersionArn"]
    with pytest.raises(ClientError) as e:
        lambda_client.get_layer_version_policy(LayerName=name, VersionNumber=1)
    assert_client_error(e, "ResourceNotFoundException", 404)

    added = lambda_client.add_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="xaccount", Action="lambda:GetLayerVersion",
        Principal="223456789012")
    assert added["ResponseMetadata"]["HTTPStatusCode"] == 201
    # AWS's example: the account becomes its root ARN.
    assert json.loads(added["Statement"]) == {
        "Sid": "xaccount", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::223456789012:root"},
        "Action": "lambda:GetLayerVersion", "Resource": arn}
    rev1 = added["RevisionId"]
    org = lambda_client.add_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="org", Action="lambda:GetLayerVersion",
        Principal="*", OrganizationId="o-abcdefghij", RevisionId=rev1)
    org_stmt = json.loads(org["Statement"])
    assert org_stmt["Principal"] == "*"
    assert org_stmt["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}

    policy = lambda_client.get_layer_version_policy(LayerName=name, VersionNumber=1)
    assert policy["RevisionId"] == org["RevisionId"]
    doc = json.loads(policy["Policy"])
    assert doc["Version"] == "2012-10-17"
    assert [s["Sid"] for s in doc["Statement"]] == ["xaccount", "org"]

    with pytest.raises(ClientError) as e:
        lambda_client.add_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="xaccount", Action="lambda:GetLayerVersion",
            Principal="*")
    assert_client_error(e, "ResourceConflictException", 409)
    with pytest.raises(ClientError) as e:
        lambda_client.add_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="stale", Action="lambda:GetLayerVersion",
            Principal="*", RevisionId=rev1)
    assert_client_error(e, "PreconditionFailedException", 412)
    with pytest.raises(ClientError) as e:
        lambda_client_novalidate.add_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="bad", Action="lambda:InvokeFunction",
            Principal="*")
    assert_client_error(e, "ValidationException", 400)
    with pytest.raises(ClientError) as e:
        lambda_client_novalidate.add_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="bad", Action="lambda:GetLayerVersion",
            Principal="someone")
    assert_client_error(e, "ValidationException", 400)
    with pytest.raises(ClientError) as e:
        lambda_client.add_layer_version_permission(
            LayerName=name, VersionNumber=9, StatementId="nov", Action="lambda:GetLayerVersion",
            Principal="*")
    assert_client_error(e, "ResourceNotFoundException", 404)

    with pytest.raises(ClientError) as e:
        lambda_client.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="nope")
    assert_client_error(e, "ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as e:
        lambda_client.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="org",
                                                      RevisionId=rev1)
    assert_client_error(e, "PreconditionFailedException", 412)
    lambda_client.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="org")
    lambda_client.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="xaccount")
    with pytest.raises(ClientError) as e:
        lambda_client.get_layer_version_policy(LayerName=name, VersionNumber=1)
    assert_client_error(e, "ResourceNotFoundException", 404)


def test_function_layers_in_configuration(lambda_client, functions, python_zip):
    a = publish(lambda_client, unique_name("fa"), {"python/a.py": "A = 1\n"})
    b = publish(lambda_client, unique_name("fb"), {"python/b.py": "B = 1\n"})
    created = functions.create(python_zip, Layers=[a["LayerVersionArn"], b["LayerVersionArn"]])
    assert created["Layers"] == [
        {"Arn": a["LayerVersionArn"], "CodeSize": a["Content"]["CodeSize"]},
        {"Arn": b["LayerVersionArn"], "CodeSize": b["Content"]["CodeSize"]},
    ]
    name = created["FunctionName"]
    assert lambda_client.get_function(FunctionName=name)["Configuration"]["Layers"] == created["Layers"]
    listed = [f for f in lambda_client.list_functions()["Functions"] if f["FunctionName"] == name]
    assert listed[0]["Layers"] == created["Layers"]
    # A published version keeps the layers; removing them from $LATEST does not change it.
    v1 = lambda_client.publish_version(FunctionName=name)
    assert v1["Layers"] == created["Layers"]
    updated = lambda_client.update_function_configuration(FunctionName=name, Layers=[])
    assert "Layers" not in updated
    wait_for_function(lambda_client, name)
    assert lambda_client.get_function_configuration(FunctionName=name, Qualifier="1")["Layers"] == created["Layers"]
    # Without layers, the field is absent.
    assert "Layers" not in functions.create(python_zip)


def test_function_layer_errors(lambda_client, lambda_client_novalidate, functions, python_zip, check_server):
    layer = publish(lambda_client, unique_name("fe"), {"f": "1"})
    missing = layer_arn(unique_name("nope")) + ":1"
    name = unique_name("fe-fn")
    with pytest.raises(ClientError) as e:
        lambda_client.create_function(FunctionName=name, Runtime=PYTHON_RUNTIME, Role=ROLE, Handler="app.handler",
                                      Code={"ZipFile": python_zip}, Layers=[missing])
    err = assert_client_error(e, "InvalidParameterValueException", 400)
    assert f"Layer version {missing} does not exist." in err.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        lambda_client.create_function(FunctionName=name, Runtime=PYTHON_RUNTIME, Role=ROLE, Handler="app.handler",
                                      Code={"ZipFile": python_zip}, Layers=[layer["LayerVersionArn"]] * 6)
    assert_client_error(e, "InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as e:
        lambda_client_novalidate.create_function(FunctionName=name, Runtime=PYTHON_RUNTIME, Role=ROLE,
                                                 Handler="app.handler", Code={"ZipFile": python_zip},
                                                 Layers=["arn:aws:lambda:us-east-1:123456789012:layer:x"])
    assert_client_error(e, "ValidationException", 400)
    v2 = publish(lambda_client, layer["LayerArn"].split(":")[-1], {"f": "2"})
    with pytest.raises(ClientError) as e:
        lambda_client.create_function(FunctionName=name, Runtime=PYTHON_RUNTIME, Role=ROLE, Handler="app.handler",
                                      Code={"ZipFile": python_zip},
                                      Layers=[layer["LayerVersionArn"], v2["LayerVersionArn"]])
    assert_client_error(e, "InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as e:
        lambda_client.get_function(FunctionName=name)
    assert_client_error(e, "ResourceNotFoundException", 404)

    # UpdateFunctionConfiguration with a missing layer changes nothing.
    fn = functions.python(python_zip)
    with pytest.raises(ClientError) as e:
        lambda_client.update_function_configuration(FunctionName=fn, Layers=[missing])
    assert_client_error(e, "InvalidParameterValueException", 400)
    assert "Layers" not in lambda_client.get_function_configuration(FunctionName=fn)

    # Compatible runtimes are metadata: AWS accepts a layer that does not list the runtime.
    node_only = publish(lambda_client, unique_name("node-only"), {"f": "1"}, CompatibleRuntimes=["nodejs20.x"],
                        CompatibleArchitectures=["arm64"])
    ok = lambda_client.update_function_configuration(FunctionName=fn, Layers=[node_only["LayerVersionArn"]])
    assert ok["Layers"][0]["Arn"] == node_only["LayerVersionArn"]


def test_function_plus_layers_within_250_mb(lambda_client, functions, python_zip, tmp_path, check_server):
    # 262,144,000 bytes unzipped for code and layers together.
    big = tmp_path / "big.zip"
    size = 262_144_000 - 1000
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("data/zeros.bin", "w") as f:
            chunk = b"\0" * (1 << 20)
            left = size
            while left:
                n = min(left, len(chunk))
                f.write(chunk[:n])
                left -= n
    layer = lambda_client.publish_layer_version(LayerName=unique_name("big"),
                                                Content={"ZipFile": big.read_bytes()})
    code = make_zip({"app.py": "def handler(e, c):\n    return 1\n" + "#" * 5000})
    unzipped = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(code)).infolist())
    with pytest.raises(ClientError) as e:
        lambda_client.create_function(FunctionName=unique_name("big-fn"), Runtime=PYTHON_RUNTIME, Role=ROLE,
                                      Handler="app.handler", Code={"ZipFile": code},
                                      Layers=[layer["LayerVersionArn"]])
    err = assert_client_error(e, "InvalidParameterValueException", 400)
    assert err.response["Error"]["Message"] == (
        "Function code combined with layers exceeds the maximum allowed size of 262144000 bytes. "
        f"The actual size is {size + unzipped} bytes.")
    fn = functions.python(python_zip)
    with pytest.raises(ClientError) as e:
        lambda_client.update_function_configuration(FunctionName=fn, Layers=[layer["LayerVersionArn"]])
    assert_client_error(e, "InvalidParameterValueException", 400)


# --------------------------------------------------------------------------
# the API with the AWS CLI
# --------------------------------------------------------------------------


@pytest.mark.cli
def test_layer_commands_with_the_aws_cli(aws_cli, tmp_path):
    name = unique_name("cli-layer")
    zip_path = tmp_path / "layer.zip"
    zip_path.write_bytes(make_zip({"python/cli_mod.py": "X = 1\n"}))
    pub = aws_cli("lambda", "publish-layer-version", "--layer-name", name, "--zip-file", f"fileb://{zip_path}",
                  "--compatible-runtimes", "python3.12", "--license-info", "MIT")
    assert pub["Version"] == 1 and pub["LicenseInfo"] == "MIT"
    got = aws_cli("lambda", "get-layer-version", "--layer-name", name, "--version-number", "1")
    assert got["LayerVersionArn"] == pub["LayerVersionArn"]
    by_arn = aws_cli("lambda", "get-layer-version-by-arn", "--arn", pub["LayerVersionArn"])
    assert by_arn["Version"] == 1
    layers = aws_cli("lambda", "list-layers", "--compatible-runtime", "python3.12")
    assert name in [l["LayerName"] for l in layers["Layers"]]
    perm = aws_cli("lambda", "add-layer-version-permission", "--layer-name", name, "--version-number", "1",
                   "--statement-id", "everyone", "--action", "lambda:GetLayerVersion", "--principal", "*")
    assert json.loads(perm["Statement"])["Principal"] == "*"
    policy = aws_cli("lambda", "get-layer-version-policy", "--layer-name", name, "--version-number", "1")
    assert json.loads(policy["Policy"])["Statement"][0]["Sid"] == "everyone"
    aws_cli("lambda", "remove-layer-version-permission", "--layer-name", name, "--version-number", "1",
            "--statement-id", "everyone")
    proc = aws_cli.run("lambda", "get-layer-version-policy", "--layer-name", name, "--version-number", "1",
                       check=False)
    assert proc.returncode != 0 and "ResourceNotFoundException" in proc.stderr
    aws_cli("lambda", "delete-layer-version", "--layer-name", name, "--version-number", "1")
    assert aws_cli("lambda", "list-layer-versions", "--layer-name", name)["LayerVersions"] == []
    proc = aws_cli.run("lambda", "get-layer-version", "--layer-name", name, "--version-number", "1", check=False)
    assert proc.returncode != 0 and "ResourceNotFoundException" in proc.stderr


# --------------------------------------------------------------------------
# restart
# --------------------------------------------------------------------------


@pytest.mark.restart
def test_layers_survive_a_restart(tmp_path):
    data = tmp_path / "data"
    first = start_server(data, name="layers-restart-1")
    client = first.client()
    layer = publish(client, "kept", {"python/kept.py": "WHAT = 'kept'\n"})
    gone = publish(client, "gone", {"python/gone.py": "WHAT = 'gone'\n"})
    name = FunctionFactory(client, "restart").python(
        make_zip({"app.py": "import kept, gone\ndef handler(e, c):\n    return [kept.WHAT, gone.WHAT]\n"}),
        Layers=[layer["LayerVersionArn"], gone["LayerVersionArn"]])
    client.delete_layer_version(LayerName="gone", VersionNumber=1)
    first.stop()
    second = start_server(data, name="layers-restart-2")
    client = second.client()
    assert [l["LayerName"] for l in client.list_layers()["Layers"]] == ["kept"]
    assert client.get_layer_version(LayerName="kept", VersionNumber=1)["Content"]["CodeSha256"] == \
        layer["Content"]["CodeSha256"]
    # The function still has both layers, the deleted version included.
    assert invoke_ok(client, name).payload == ["kept", "gone"]
    assert publish(client, "gone", {"f": "x"})["Version"] == 2, "version numbers are not reused"
    second.stop()
