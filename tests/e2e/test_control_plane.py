"""Lambda control plane through boto3: CreateFunction, GetFunction,
GetFunctionConfiguration, ListFunctions, UpdateFunctionCode,
UpdateFunctionConfiguration, DeleteFunction, tags, GetAccountSettings,
regions and the three ways to name a function.

Expected values: botocore's lambda 2015-03-31 model and the Lambda API
reference (CreateFunction / GetFunction / ... "Response Syntax" and examples).
"""

import datetime as dt
import json
import urllib.request

import pytest
from botocore.exceptions import ClientError
from harness import (
    ACCOUNT,
    LAST_MODIFIED_RE,
    PYTHON_RUNTIME,
    ROLE,
    UUID_RE,
    FunctionFactory,
    assert_client_error,
    function_arn,
    invoke_ok,
    make_zip,
    sha256_b64,
    unique_name,
    wait_for_function,
)


def _code(version: int) -> bytes:
    return make_zip({"app.py": f"def handler(event, context):\n    return {{'version': {version}}}\n"})


def _parse_last_modified(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


def test_health_endpoint_returns_json(server):
    status, body = server.health()
    assert status == 200
    json.loads(body)


def test_create_function_response(lambda_client, functions):
    zip_bytes = _code(1)
    name = unique_name("create")
    before = dt.datetime.now(dt.timezone.utc)
    resp = functions.create(zip_bytes, name=name, wait=False)

    # CreateFunction answers 201 Created (service model: responseCode 201).
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert resp["FunctionName"] == name
    assert resp["FunctionArn"] == f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"
    assert resp["Runtime"] == PYTHON_RUNTIME
    assert resp["Role"] == ROLE
    assert resp["Handler"] == "app.handler"
    assert resp["CodeSize"] == len(zip_bytes)
    assert resp["CodeSha256"] == sha256_b64(zip_bytes)
    assert resp["Version"] == "$LATEST"
    assert resp["Description"] == ""
    # Documented defaults.
    assert resp["MemorySize"] == 128
    assert resp["Timeout"] == 3
    assert resp["PackageType"] == "Zip"
    assert resp["Architectures"] == ["x86_64"]
    assert resp["EphemeralStorage"] == {"Size": 512}
    assert resp["TracingConfig"] == {"Mode": "PassThrough"}
    assert UUID_RE.match(resp["RevisionId"]), resp["RevisionId"]
    assert LAST_MODIFIED_RE.match(resp["LastModified"]), resp["LastModified"]
    modified = _parse_last_modified(resp["LastModified"])
    assert before - dt.timedelta(seconds=5) <= modified <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
    # "When you create a function, it is in the Pending state" (Lambda function states).
    assert resp["State"] == "Pending"
    assert resp["StateReasonCode"] == "Creating"
    assert resp.get("StateReason")


def test_create_function_logging_config_default(functions):
    resp = functions.create(_code(1), wait=False)
    # Default logging configuration: text format, log group /aws/lambda/<name>.
    assert resp["LoggingConfig"]["LogFormat"] == "Text"
    assert resp["LoggingConfig"]["LogGroup"] == f"/aws/lambda/{resp['FunctionName']}"


def test_function_becomes_active(lambda_client, functions):
    zip_bytes = _code(1)
    created = functions.create(zip_bytes, wait=False)
    name = created["FunctionName"]
    conf = wait_for_function(lambda_client, name, timeout=30)
    assert conf["State"] == "Active"
    assert conf["LastUpdateStatus"] == "Successful"
    # Nothing else changed by the state transition.
    for key in ("FunctionArn", "CodeSha256", "CodeSize", "Runtime", "Handler", "MemorySize", "Timeout"):
        assert conf[key] == created[key], key


def test_boto3_waiter_function_active_v2(lambda_client, functions):
    name = functions.create(_code(1), wait=False)["FunctionName"]
    lambda_client.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert lambda_client.get_function(FunctionName=name)["Configuration"]["State"] == "Active"


def test_create_function_with_all_settings(lambda_client, functions):
    zip_bytes = _code(1)
    resp = functions.create(
        zip_bytes,
        Description="a description",
        Timeout=42,
        MemorySize=512,
        Environment={"Variables": {"GREETING": "hello", "EMPTY": ""}},
        Architectures=["arm64"],
        EphemeralStorage={"Size": 1024},
        Tags={"team": "platform"},
        wait=False,
    )
    assert resp["Description"] == "a description"
    assert resp["Timeout"] == 42
    assert resp["MemorySize"] == 512
    assert resp["Environment"] == {"Variables": {"GREETING": "hello", "EMPTY": ""}}
    assert resp["Architectures"] == ["arm64"]
    assert resp["EphemeralStorage"] == {"Size": 1024}
    got = lambda_client.get_function(FunctionName=resp["FunctionName"])
    assert got["Tags"] == {"team": "platform"}
    assert got["Configuration"]["Environment"] == {"Variables": {"GREETING": "hello", "EMPTY": ""}}


def test_limits_accepted_at_the_edges(functions):
    # MemorySize 128-10240 MB and Timeout 1-900 s are valid (Lambda quotas).
    low = functions.create(_code(1), MemorySize=128, Timeout=1, wait=False)
    assert (low["MemorySize"], low["Timeout"]) == (128, 1)
    high = functions.create(_code(1), MemorySize=10240, Timeout=900, wait=False)
    assert (high["MemorySize"], high["Timeout"]) == (10240, 900)


def test_get_function(lambda_client, functions):
    zip_bytes = _code(7)
    created = functions.create(zip_bytes)
    name = created["FunctionName"]
    got = lambda_client.get_function(FunctionName=name)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    conf = got["Configuration"]
    assert conf["FunctionName"] == name
    assert conf["FunctionArn"] == function_arn(name)
    assert conf["CodeSha256"] == sha256_b64(zip_bytes)
    assert conf["CodeSize"] == len(zip_bytes)
    assert UUID_RE.match(conf["RevisionId"])
    assert conf["LastModified"] == created["LastModified"]
    assert conf["State"] == "Active"
    assert conf["LastUpdateStatus"] == "Successful"
    assert got["Code"]["RepositoryType"] == "S3"
    assert got["Code"]["Location"].startswith("http")


def test_get_function_code_location_downloads_the_zip(lambda_client, functions):
    zip_bytes = _code(8)
    name = functions.python(zip_bytes)
    location = lambda_client.get_function(FunctionName=name)["Code"]["Location"]
    with urllib.request.urlopen(location, timeout=30) as r:
        assert r.status == 200
        downloaded = r.read()
    assert downloaded == zip_bytes


def test_get_function_configuration_matches_get_function(lambda_client, functions):
    name = functions.python(_code(1), Environment={"Variables": {"VAR_A": "1"}})
    conf = lambda_client.get_function_configuration(FunctionName=name)
    full = lambda_client.get_function(FunctionName=name)["Configuration"]
    conf.pop("ResponseMetadata")
    assert conf == full


def test_list_functions_contains_created(lambda_client, functions):
    zip_bytes = _code(1)
    name = functions.python(zip_bytes)
    found = []
    for page in lambda_client.get_paginator("list_functions").paginate():
        found += [f for f in page["Functions"] if f["FunctionName"] == name]
    assert len(found) == 1
    item = found[0]
    assert item["FunctionArn"] == function_arn(name)
    assert item["CodeSha256"] == sha256_b64(zip_bytes)
    assert item["CodeSize"] == len(zip_bytes)
    assert item["Runtime"] == PYTHON_RUNTIME
    assert item["Version"] == "$LATEST"
    # "ListFunctions returns a subset of the FunctionConfiguration fields. To
    # get the additional fields (State, StateReasonCode, StateReason,
    # LastUpdateStatus, LastUpdateStatusReason, LastUpdateStatusReasonCode)
    # for a function or version, use GetFunction." (ListFunctions API reference)
    for key in ("State", "StateReason", "StateReasonCode", "LastUpdateStatus",
                "LastUpdateStatusReason", "LastUpdateStatusReasonCode"):
        assert key not in item, key


def test_list_functions_pagination(client_factory):
    # A region of its own, so that only this test's functions are listed.
    client = client_factory(region="ap-southeast-2")
    factory = FunctionFactory(client, "page")
    try:
        names = {factory.python(_code(i), client=client) for i in range(5)}
        assert {f["FunctionName"] for f in client.list_functions()["Functions"]} == names

        seen, marker, pages = [], None, 0
        while True:
            kwargs = {"MaxItems": 2}
            if marker:
                kwargs["Marker"] = marker
            page = client.list_functions(**kwargs)
            pages += 1
            assert len(page["Functions"]) <= 2
            seen += [f["FunctionName"] for f in page["Functions"]]
            marker = page.get("NextMarker")
            if not marker:
                break
            assert pages < 10, "pagination does not end"
        assert pages == 3
        assert len(seen) == 5 and set(seen) == names, seen

        # boto3's paginator drives Marker/MaxItems the same way.
        paged = [f["FunctionName"] for p in client.get_paginator("list_functions").paginate(
            PaginationConfig={"PageSize": 2}) for f in p["Functions"]]
        assert sorted(paged) == sorted(names)
    finally:
        factory.cleanup()


def test_list_functions_returns_at_most_50(client_factory):
    # "ListFunctions returns a maximum of 50 items in each response, even if
    # you set the number higher." (ListFunctions API reference)
    client = client_factory(region="sa-east-1")  # a region used by no other test
    factory = FunctionFactory(client, "fifty")
    try:
        names = {factory.create(_code(0), client=client, wait=False)["FunctionName"] for _ in range(53)}
        for kwargs in ({}, {"MaxItems": 100}):
            page = client.list_functions(**kwargs)
            assert len(page["Functions"]) == 50, kwargs
            assert page.get("NextMarker"), kwargs
            rest = client.list_functions(Marker=page["NextMarker"], **kwargs)
            assert len(rest["Functions"]) == 3 and not rest.get("NextMarker")
            assert {f["FunctionName"] for f in page["Functions"] + rest["Functions"]} == names
    finally:
        factory.cleanup()


def test_update_function_code(lambda_client, functions):
    v1, v2 = _code(1), _code(2)
    created = functions.create(v1)
    name = created["FunctionName"]
    assert invoke_ok(lambda_client, name).payload == {"version": 1}

    resp = lambda_client.update_function_code(FunctionName=name, ZipFile=v2)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["CodeSha256"] == sha256_b64(v2)
    assert resp["CodeSize"] == len(v2)
    assert resp["RevisionId"] != created["RevisionId"]
    assert UUID_RE.match(resp["RevisionId"])
    assert LAST_MODIFIED_RE.match(resp["LastModified"])
    assert _parse_last_modified(resp["LastModified"]) >= _parse_last_modified(created["LastModified"])
    # An update reports LastUpdateStatus InProgress, then Successful.
    assert resp["State"] == "Active"
    assert resp["LastUpdateStatus"] == "InProgress"
    conf = wait_for_function(lambda_client, name)
    assert conf["LastUpdateStatus"] == "Successful"
    assert conf["CodeSha256"] == sha256_b64(v2)

    # The next invoke runs the new code, not a warm environment of the old one.
    assert invoke_ok(lambda_client, name).payload == {"version": 2}
    location = lambda_client.get_function(FunctionName=name)["Code"]["Location"]
    with urllib.request.urlopen(location, timeout=30) as r:
        assert r.read() == v2


def test_update_function_configuration(lambda_client, functions, python_zip):
    created = functions.create(python_zip, Environment={"Variables": {"VAR_A": "1"}})
    name = created["FunctionName"]
    resp = lambda_client.update_function_configuration(
        FunctionName=name, Timeout=10, MemorySize=256, Description="updated",
        Environment={"Variables": {"VAR_A": "2", "VAR_B": "3"}})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["Timeout"] == 10
    assert resp["MemorySize"] == 256
    assert resp["Description"] == "updated"
    assert resp["Environment"] == {"Variables": {"VAR_A": "2", "VAR_B": "3"}}
    assert resp["CodeSha256"] == created["CodeSha256"]
    assert resp["RevisionId"] != created["RevisionId"]
    assert resp["LastUpdateStatus"] == "InProgress"
    conf = wait_for_function(lambda_client, name)
    assert conf["Timeout"] == 10 and conf["MemorySize"] == 256
    # The function sees the new configuration.
    env = invoke_ok(lambda_client, name, {"action": "env", "names": ["VAR_A", "VAR_B"]}).payload
    assert env["VAR_A"] == "2" and env["VAR_B"] == "3"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"


def test_update_configuration_keeps_unspecified_settings(lambda_client, functions):
    created = functions.create(_code(1), Timeout=20, MemorySize=256, Description="keep me")
    name = created["FunctionName"]
    lambda_client.update_function_configuration(FunctionName=name, Timeout=30)
    conf = wait_for_function(lambda_client, name)
    assert conf["Timeout"] == 30
    assert conf["MemorySize"] == 256
    assert conf["Description"] == "keep me"
    assert conf["Handler"] == "app.handler"


def test_delete_function(lambda_client, functions):
    name = functions.python(_code(1))
    resp = lambda_client.delete_function(FunctionName=name)
    # DeleteFunction answers 204 No Content (API reference, Response Syntax).
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        lambda_client.get_function(FunctionName=name)
    exc = assert_client_error(e, "ResourceNotFoundException", 404)
    assert name in exc.response["Error"]["Message"]
    assert name not in {f["FunctionName"] for f in lambda_client.list_functions()["Functions"]}
    with pytest.raises(ClientError) as e:
        lambda_client.delete_function(FunctionName=name)
    assert_client_error(e, "ResourceNotFoundException", 404)
    # The name is free again.
    functions.create(_code(2), name=name)


def test_unknown_function_not_found(lambda_client):
    name = unique_name("missing")
    for call in (lambda_client.get_function, lambda_client.get_function_configuration,
                 lambda_client.delete_function):
        with pytest.raises(ClientError) as e:
            call(FunctionName=name)
        exc = assert_client_error(e, "ResourceNotFoundException", 404)
        # AWS: "Function not found: arn:aws:lambda:us-east-1:123456789012:function:NAME"
        assert function_arn(name) in exc.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        lambda_client.update_function_configuration(FunctionName=name, Timeout=5)
    assert_client_error(e, "ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as e:
        lambda_client.update_function_code(FunctionName=name, ZipFile=_code(1))
    assert_client_error(e, "ResourceNotFoundException", 404)


def test_tags(lambda_client, functions):
    created = functions.create(_code(1), Tags={"team": "a"}, wait=False)
    arn = created["FunctionArn"]
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"team": "a"}

    resp = lambda_client.tag_resource(Resource=arn, Tags={"env": "dev", "team": "b"})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"team": "b", "env": "dev"}
    assert lambda_client.get_function(FunctionName=created["FunctionName"])["Tags"] == {"team": "b", "env": "dev"}

    resp = lambda_client.untag_resource(Resource=arn, TagKeys=["team", "not-there"])
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"env": "dev"}

    lambda_client.untag_resource(Resource=arn, TagKeys=["env"])
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {}


def test_tags_unknown_function(lambda_client):
    arn = function_arn(unique_name("notag"))
    with pytest.raises(ClientError) as e:
        lambda_client.list_tags(Resource=arn)
    assert_client_error(e, "ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as e:
        lambda_client.tag_resource(Resource=arn, Tags={"a": "b"})
    assert_client_error(e, "ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as e:
        lambda_client.untag_resource(Resource=arn, TagKeys=["a"])
    assert_client_error(e, "ResourceNotFoundException", 404)


def test_get_account_settings(client_factory):
    client = client_factory(region="ca-central-1")  # a region used by no other test
    empty = client.get_account_settings()
    limit = empty["AccountLimit"]
    # Lambda quotas: 50 MB zipped upload, 250 MB unzipped, 75 GB code storage.
    assert limit["CodeSizeZipped"] == 52428800
    assert limit["CodeSizeUnzipped"] == 262144000
    assert limit["TotalCodeSize"] == 80530636800
    assert limit["ConcurrentExecutions"] > 0
    assert 0 < limit["UnreservedConcurrentExecutions"] <= limit["ConcurrentExecutions"]
    assert empty["AccountUsage"] == {"TotalCodeSize": 0, "FunctionCount": 0}

    factory = FunctionFactory(client, "acct")
    try:
        a, b = _code(1), make_zip({"app.py": "def handler(e, c):\n    return 'b' * 100\n"})
        factory.create(a, client=client, wait=False)
        factory.create(b, client=client, wait=False)
        usage = client.get_account_settings()["AccountUsage"]
        assert usage["FunctionCount"] == 2
        assert usage["TotalCodeSize"] == len(a) + len(b)
    finally:
        factory.cleanup()
    assert client.get_account_settings()["AccountUsage"] == {"TotalCodeSize": 0, "FunctionCount": 0}


def test_regions_are_isolated(lambda_client, client_factory, functions, python_zip):
    name = unique_name("region")
    east = functions.create(python_zip, name=name)
    assert east["FunctionArn"] == function_arn(name, "us-east-1")

    west = client_factory(region="eu-west-1")
    with pytest.raises(ClientError) as e:
        west.get_function(FunctionName=name)
    assert_client_error(e, "ResourceNotFoundException", 404)
    assert name not in {f["FunctionName"] for f in west.list_functions()["Functions"]}

    # The same name in another region is another function.
    created = functions.create(python_zip, name=name, client=west,
                               Environment={"Variables": {"WHERE": "west"}})
    assert created["FunctionArn"] == function_arn(name, "eu-west-1")
    east_env = invoke_ok(lambda_client, name, {"action": "env", "names": ["WHERE"]}).payload
    west_env = invoke_ok(west, name, {"action": "env", "names": ["WHERE"]}).payload
    assert (east_env["AWS_REGION"], east_env["WHERE"]) == ("us-east-1", None)
    assert (west_env["AWS_REGION"], west_env["WHERE"]) == ("eu-west-1", "west")

    lambda_client.delete_function(FunctionName=name)
    assert west.get_function(FunctionName=name)["Configuration"]["FunctionArn"] == function_arn(name, "eu-west-1")


@pytest.mark.parametrize("form", ["name", "partial_arn", "full_arn"])
def test_function_name_forms(lambda_client, module_functions, python_zip, form):
    name = module_functions.python(python_zip, name=unique_name(f"forms-{form}"))
    ref = {
        "name": name,
        "partial_arn": f"{ACCOUNT}:function:{name}",
        "full_arn": function_arn(name),
    }[form]
    assert lambda_client.get_function(FunctionName=ref)["Configuration"]["FunctionName"] == name
    assert lambda_client.get_function_configuration(FunctionName=ref)["FunctionName"] == name
    resp = lambda_client.update_function_configuration(FunctionName=ref, Description=form)
    assert resp["FunctionName"] == name and resp["Description"] == form
    wait_for_function(lambda_client, name)
    inv = invoke_ok(lambda_client, ref, {"action": "echo"})
    assert inv.payload["context"]["function_name"] == name
    assert inv.executed_version == "$LATEST"
    lambda_client.delete_function(FunctionName=ref)
    with pytest.raises(ClientError) as e:
        lambda_client.get_function(FunctionName=name)
    assert_client_error(e, "ResourceNotFoundException", 404)


def test_qualifier_latest(lambda_client, functions, python_zip):
    name = functions.python(python_zip)
    conf = lambda_client.get_function(FunctionName=name, Qualifier="$LATEST")["Configuration"]
    assert conf["Version"] == "$LATEST"
    inv = invoke_ok(lambda_client, name, {"action": "echo"}, Qualifier="$LATEST")
    assert inv.executed_version == "$LATEST"
    inv = invoke_ok(lambda_client, f"{name}:$LATEST", {"action": "echo"})
    assert inv.executed_version == "$LATEST"


def test_duplicate_create_conflicts(lambda_client, functions, check_server):
    name = functions.python(_code(1))
    before = lambda_client.get_function_configuration(FunctionName=name)
    with pytest.raises(ClientError) as e:
        lambda_client.create_function(FunctionName=name, Runtime=PYTHON_RUNTIME, Role=ROLE,
                                      Handler="app.handler", Code={"ZipFile": _code(2)})
    exc = assert_client_error(e, "ResourceConflictException", 409)
    assert name in exc.response["Error"]["Message"]
    after = lambda_client.get_function_configuration(FunctionName=name)
    assert after["CodeSha256"] == before["CodeSha256"]
    assert after["RevisionId"] == before["RevisionId"]

