"""Bad input: each gets the error code and HTTP status that botocore's model
and AWS's documentation give, a message a person can read, nothing written,
and a server that keeps serving.

About the accepted error codes for out-of-range / malformed parameters:
botocore's lambda model lists InvalidParameterValueException (400) for
CreateFunction, while AWS's request-validation layer is known to answer some
constraint violations (enum, pattern, min/max of the model) with
`ValidationException` (400), e.g. "1 validation error detected: Value 'g1.x'
at 'runtime' failed to satisfy constraint: Member must satisfy enum value set"
(aws/aws-cli#3229). Both are 400 client faults; the tests accept either where
AWS may send either, and InvalidParameterValueException alone where AWS's
documentation names it.
"""

import base64
import io
import json
import os
import shutil
import uuid
import zipfile
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from harness import (
    PAYLOAD_LIMIT,
    PYTHON_RUNTIME,
    ROLE,
    assert_client_error,
    function_arn,
    invoke,
    invoke_ok,
    make_zip,
    raw_error_code,
    signed_request,
    unique_name,
)

VALIDATION = ("InvalidParameterValueException", "ValidationException")
_READ_APP = (Path(__file__).resolve().parents[1] / "functions" / "python_basic" / "app.py").read_text()
GOOD_ZIP = make_zip({"app.py": "def handler(event, context):\n    return {'ok': True}\n"})


def assert_not_created(client, name):
    with pytest.raises(ClientError) as e:
        client.get_function(FunctionName=name)
    assert_client_error(e, "ResourceNotFoundException", 404)
    names = [f["FunctionName"] for p in client.get_paginator("list_functions").paginate()
             for f in p["Functions"]]
    assert name not in names


def create(client, name, zip_bytes=GOOD_ZIP, **overrides):
    params = dict(FunctionName=name, Runtime=PYTHON_RUNTIME, Role=ROLE, Handler="app.handler",
                  Code={"ZipFile": zip_bytes})
    params.update(overrides)
    return client.create_function(**params)


@pytest.fixture
def cleanup(lambda_client):
    """Deletes anything a failing (accepting) server created."""
    names = []
    yield names
    for name in names:
        try:
            lambda_client.delete_function(FunctionName=name)
        except ClientError:
            pass


def expect_create_error(client, codes, status, cleanup, zip_bytes=GOOD_ZIP, name=None, **overrides):
    name = name or unique_name("bad")
    cleanup.append(name)
    with pytest.raises(ClientError) as e:
        create(client, name, zip_bytes, **overrides)
    exc = assert_client_error(e, codes, status)
    assert_not_created(client, name)
    return exc


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize("runtime", ["python9.9", "cobol", ""])
def test_invalid_runtime(lambda_client_novalidate, cleanup, check_server, runtime):
    expect_create_error(lambda_client_novalidate, VALIDATION, 400, cleanup, Runtime=runtime)


@pytest.mark.parametrize("memory", [64, 127, 10241])
def test_invalid_memory_size(lambda_client_novalidate, cleanup, check_server, memory):
    expect_create_error(lambda_client_novalidate, VALIDATION, 400, cleanup, MemorySize=memory)


@pytest.mark.parametrize("timeout", [0, -1, 901])
def test_invalid_timeout(lambda_client_novalidate, cleanup, check_server, timeout):
    expect_create_error(lambda_client_novalidate, VALIDATION, 400, cleanup, Timeout=timeout)


@pytest.mark.parametrize("name", ["bad name!", "semi;colon", "x" * 65, "dots.not.allowed"])
def test_invalid_function_name(lambda_client_novalidate, lambda_client, cleanup, check_server, name):
    cleanup.append(name)
    with pytest.raises(ClientError) as e:
        create(lambda_client_novalidate, name)
    assert_client_error(e, VALIDATION, 400)
    names = [f["FunctionName"] for f in lambda_client.list_functions()["Functions"]]
    assert name not in names


@pytest.mark.parametrize("handler", ["has space.handler", "x" * 129])
def test_invalid_handler(lambda_client_novalidate, cleanup, check_server, handler):
    expect_create_error(lambda_client_novalidate, VALIDATION, 400, cleanup, Handler=handler)


def test_invalid_role(lambda_client_novalidate, cleanup, check_server):
    expect_create_error(lambda_client_novalidate, VALIDATION, 400, cleanup, Role="not-a-role-arn")


def test_invalid_ephemeral_storage(lambda_client_novalidate, cleanup, check_server):
    # Ephemeral storage: 512-10240 MB.
    expect_create_error(lambda_client_novalidate, VALIDATION, 400, cleanup,
                        EphemeralStorage={"Size": 100})


def test_invalid_architecture(lambda_client_novalidate, cleanup, check_server):
    expect_create_error(lambda_client_novalidate, VALIDATION, 400, cleanup, Architectures=["sparc"])


def test_reserved_environment_variable(lambda_client, cleanup, check_server):
    # AWS refuses reserved keys such as AWS_REGION in Environment.Variables
    # with InvalidParameterValueException.
    exc = expect_create_error(lambda_client, "InvalidParameterValueException", 400, cleanup,
                              Environment={"Variables": {"AWS_REGION": "mars-1"}})
    assert "AWS_REGION" in exc.response["Error"]["Message"]


@pytest.mark.skipif(shutil.which("ruby") is not None, reason="this host has a Ruby interpreter")
def test_runtime_without_interpreter_is_refused_at_create(lambda_client, cleanup, check_server):
    # ruby3.3 is a valid Lambda runtime, but this host has no Ruby: stratus
    # must refuse it at CreateFunction, naming what is missing, never hang at invoke.
    exc = expect_create_error(lambda_client, "InvalidParameterValueException", 400, cleanup,
                              Runtime="ruby3.3", Handler="app.handler")
    assert "ruby" in exc.response["Error"]["Message"].lower()


def test_update_configuration_invalid_values(lambda_client, lambda_client_novalidate, functions, check_server):
    name = functions.python(GOOD_ZIP, Timeout=5, MemorySize=256)
    before = lambda_client.get_function_configuration(FunctionName=name)
    for kwargs in ({"MemorySize": 64}, {"Timeout": 0}, {"Timeout": 901}, {"Runtime": "python9.9"}):
        with pytest.raises(ClientError) as e:
            lambda_client_novalidate.update_function_configuration(FunctionName=name, **kwargs)
        assert_client_error(e, VALIDATION, 400)
    after = lambda_client.get_function_configuration(FunctionName=name)
    for key in ("MemorySize", "Timeout", "Runtime", "RevisionId", "CodeSha256"):
        assert after[key] == before[key], key


# ---------------------------------------------------------------- raw requests


def test_malformed_json_body_create(server, lambda_client, check_server):
    name = unique_name("malformed")
    body = b'{"FunctionName": "' + name.encode() + b'", "Runtime": "python3.12", '
    status, headers, content = signed_request(server.url, "POST", "/2015-03-31/functions", body)
    assert status == 400, (status, content)
    code = raw_error_code(headers, content)
    assert code in ("InvalidRequestContentException", "SerializationException", *VALIDATION), (code, content)
    assert_not_created(lambda_client, name)


def test_non_object_json_body_create(server, lambda_client, check_server):
    status, headers, content = signed_request(server.url, "POST", "/2015-03-31/functions", b"[1, 2, 3]")
    assert status == 400, (status, content)


def test_wrong_types_in_body(server, lambda_client, check_server):
    name = unique_name("types")
    body = json.dumps({"FunctionName": name, "Runtime": PYTHON_RUNTIME, "Role": ROLE,
                       "Handler": "app.handler", "MemorySize": "lots",
                       "Code": {"ZipFile": base64.b64encode(GOOD_ZIP).decode()}}).encode()
    status, headers, content = signed_request(server.url, "POST", "/2015-03-31/functions", body)
    assert status == 400, (status, content)
    assert_not_created(lambda_client, name)


def test_zipfile_not_base64(server, lambda_client, check_server):
    name = unique_name("b64")
    body = json.dumps({"FunctionName": name, "Runtime": PYTHON_RUNTIME, "Role": ROLE,
                       "Handler": "app.handler", "Code": {"ZipFile": "%%% not base64 %%%"}}).encode()
    status, headers, content = signed_request(server.url, "POST", "/2015-03-31/functions", body)
    assert status == 400, (status, content)
    assert_not_created(lambda_client, name)


def test_missing_required_fields(server, lambda_client, check_server):
    name = unique_name("missing")
    body = json.dumps({"FunctionName": name, "Runtime": PYTHON_RUNTIME}).encode()
    status, headers, content = signed_request(server.url, "POST", "/2015-03-31/functions", body)
    assert status == 400, (status, content)
    assert_not_created(lambda_client, name)


# ---------------------------------------------------------------- zip files


def test_empty_zip_bytes(lambda_client, cleanup, check_server):
    expect_create_error(lambda_client, "InvalidParameterValueException", 400, cleanup, zip_bytes=b"")


def test_zip_without_entries(lambda_client, cleanup, check_server):
    empty = io.BytesIO()
    zipfile.ZipFile(empty, "w").close()
    expect_create_error(lambda_client, "InvalidParameterValueException", 400, cleanup,
                        zip_bytes=empty.getvalue())


@pytest.mark.parametrize("blob", [b"this is not a zip file", b"PK\x03\x04" + os.urandom(300),
                                  GOOD_ZIP[: len(GOOD_ZIP) // 2]], ids=["text", "garbage", "truncated"])
def test_corrupt_zip(lambda_client, cleanup, check_server, blob):
    # AWS: "Could not unzip uploaded file. Please check your file, then try to upload again."
    expect_create_error(lambda_client, "InvalidParameterValueException", 400, cleanup, zip_bytes=blob)


def _nothing_named(root: Path, marker: str) -> bool:
    for _dirpath, dirnames, filenames in os.walk(root):
        if marker in filenames or marker in dirnames:
            return False
    return True


@pytest.fixture
def escape_root(server):
    """The directory that holds the data dir: an escaping entry would land in it."""
    return server.data_dir.parent


def test_zip_entry_with_parent_traversal(lambda_client, cleanup, check_server, escape_root):
    marker = f"escaped-{uuid.uuid4().hex}.txt"
    bad = make_zip({"app.py": "def handler(e, c):\n    return 1\n", f"../../../{marker}": "gotcha",
                    f"a/../../{marker}": "gotcha"})
    expect_create_error(lambda_client, "InvalidParameterValueException", 400, cleanup, zip_bytes=bad)
    assert _nothing_named(escape_root, marker)
    assert not (Path("/tmp") / marker).exists()


def test_zip_entry_with_absolute_path(lambda_client, cleanup, check_server, tmp_path):
    target = tmp_path / f"absolute-{uuid.uuid4().hex}.txt"
    bad = make_zip({"app.py": "def handler(e, c):\n    return 1\n", str(target): "gotcha"})
    expect_create_error(lambda_client, "InvalidParameterValueException", 400, cleanup, zip_bytes=bad)
    assert not target.exists()


def test_zip_symlink_escaping_the_package(lambda_client, cleanup, check_server, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    # A link out of the package, then a file written "through" it.
    bad = make_zip({"app.py": "def handler(e, c):\n    return 1\n", "link/pwned.txt": "gotcha"},
                   symlinks={"link": str(outside)})
    expect_create_error(lambda_client, "InvalidParameterValueException", 400, cleanup, zip_bytes=bad)
    assert not (outside / "pwned.txt").exists()


def test_zip_relative_symlink_escaping(lambda_client, cleanup, check_server):
    bad = make_zip({"app.py": "def handler(e, c):\n    return 1\n"},
                   symlinks={"passwd": "../../../../../../../../etc/passwd"})
    expect_create_error(lambda_client, "InvalidParameterValueException", 400, cleanup, zip_bytes=bad)


def test_zip_symlink_inside_the_package_is_fine(lambda_client, functions):
    # Links that stay inside the package are ordinary (node_modules/.bin, ...).
    good = make_zip({"app.py": _READ_APP, "data/v1.txt": "inside"}, symlinks={"current.txt": "data/v1.txt"})
    name = functions.python(good, handler="app.handler")
    inv = invoke_ok(lambda_client, name, {"action": "read", "path": "current.txt"})
    assert inv.payload == {"content": "inside"}


def test_unzipped_size_over_250_mb(lambda_client, cleanup, check_server):
    # Deployment package quota: 250 MB (262144000 bytes) unzipped.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("app.py", "def handler(e, c):\n    return 1\n")
        with zf.open("big.bin", "w", force_zip64=True) as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(251):
                f.write(chunk)
    expect_create_error(lambda_client, "InvalidParameterValueException", 400, cleanup, zip_bytes=buf.getvalue())


def test_zipped_size_over_50_mb(lambda_client, cleanup, check_server):
    # Deployment package quota: 50 MB zipped for a direct upload. AWS refuses a
    # larger request body with RequestEntityTooLargeException (413), or the
    # package itself with InvalidParameterValueException (400).
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("app.py", "def handler(e, c):\n    return 1\n")
        zf.writestr("random.bin", os.urandom(51 * 1024 * 1024))
    name = unique_name("huge")
    cleanup.append(name)
    with pytest.raises(ClientError) as e:
        create(lambda_client, name, buf.getvalue())
    exc = e.value
    assert (exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]) in (
        ("RequestEntityTooLargeException", 413), ("InvalidParameterValueException", 400)), exc.response
    assert_not_created(lambda_client, name)


def test_update_code_with_bad_zip_keeps_old_code(lambda_client, functions, check_server):
    name = functions.python(GOOD_ZIP)
    before = lambda_client.get_function_configuration(FunctionName=name)
    for blob in (b"", b"not a zip", make_zip({"../escape.py": "x"})):
        with pytest.raises(ClientError) as e:
            lambda_client.update_function_code(FunctionName=name, ZipFile=blob)
        assert_client_error(e, "InvalidParameterValueException", 400)
    after = lambda_client.get_function_configuration(FunctionName=name)
    assert after["CodeSha256"] == before["CodeSha256"]
    assert after["RevisionId"] == before["RevisionId"]
    assert invoke_ok(lambda_client, name).payload == {"ok": True}


# ---------------------------------------------------------------- invoke


@pytest.fixture(scope="module")
def echo_fn(module_functions, python_zip):
    return module_functions.python(python_zip)


def test_invoke_unknown_function(lambda_client, check_server):
    name = unique_name("nope")
    with pytest.raises(ClientError) as e:
        invoke(lambda_client, name, {})
    exc = assert_client_error(e, "ResourceNotFoundException", 404)
    assert function_arn(name) in exc.response["Error"]["Message"]


def test_invoke_payload_over_6_mb(lambda_client, echo_fn, check_server):
    # Invoke request payload quota: 6 MB (6291456 bytes) for synchronous invocation.
    payload = json.dumps({"action": "counter", "pad": "x" * PAYLOAD_LIMIT}).encode()
    with pytest.raises(ClientError) as e:
        invoke(lambda_client, echo_fn, raw=payload)
    assert_client_error(e, "RequestTooLargeException", 413)
    assert invoke_ok(lambda_client, echo_fn, {"action": "echo"}).status == 200


def test_invoke_payload_just_under_6_mb(lambda_client, echo_fn):
    payload = json.dumps({"action": "counter", "pad": "x" * (PAYLOAD_LIMIT - 1024)}).encode()
    assert len(payload) < PAYLOAD_LIMIT
    inv = invoke_ok(lambda_client, echo_fn, raw=payload)
    assert inv.payload["count"] >= 1


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe\x00", b'{"a": 1'], ids=["syntax", "binary", "truncated"])
def test_invoke_payload_not_json(lambda_client, echo_fn, check_server, body):
    # "The request body could not be parsed as JSON" -> InvalidRequestContentException (400).
    with pytest.raises(ClientError) as e:
        invoke(lambda_client, echo_fn, raw=body)
    assert_client_error(e, "InvalidRequestContentException", 400)


def test_invoke_invalid_invocation_type(lambda_client_novalidate, echo_fn, check_server):
    with pytest.raises(ClientError) as e:
        invoke(lambda_client_novalidate, echo_fn, {}, InvocationType="Sometimes")
    assert_client_error(e, VALIDATION, 400)


def test_invoke_invalid_client_context(lambda_client, echo_fn, check_server):
    # ClientContext must be base64-encoded JSON: a 400 client error otherwise.
    with pytest.raises(ClientError) as e:
        invoke(lambda_client, echo_fn, {}, ClientContext="%%% not base64 %%%")
    assert_client_error(e, ("InvalidRequestContentException", *VALIDATION), 400)


def test_invoke_unknown_qualifier(lambda_client, echo_fn, check_server):
    with pytest.raises(ClientError) as e:
        invoke(lambda_client, echo_fn, {}, Qualifier="no-such-alias")
    assert_client_error(e, "ResourceNotFoundException", 404)


def test_server_survives_a_burst_of_garbage(server, lambda_client, echo_fn, check_server):
    paths = ["/2015-03-31/functions/%00/invocations", "/2015-03-31/functions/" + "a" * 5000,
             "/2015-03-31/functions/x/invocations?Qualifier=%ff", "/2017-03-31/tags/not-an-arn",
             "/2015-03-31/functions?MaxItems=-5", "/2015-03-31/functions?MaxItems=abc",
             "/2015-03-31/functions?Marker=%%%"]
    for path in paths:
        for method in ("GET", "POST", "PUT", "DELETE"):
            status, _headers, _content = signed_request(server.url, method, path, b"{}")
            assert 400 <= status < 500, (method, path, status, _content[:200])
    assert invoke_ok(lambda_client, echo_fn, {"action": "echo"}).status == 200
