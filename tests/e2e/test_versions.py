"""Versions and aliases: PublishVersion, ListVersionsByFunction, DeleteFunction
with a qualifier, Publish on CreateFunction / UpdateFunctionCode, CreateAlias /
GetAlias / UpdateAlias / DeleteAlias / ListAliases, weighted alias routing, and
qualifiers on Invoke / GetFunction / GetFunctionConfiguration.

Expected values come from the Lambda developer guide ("Lambda function
versions", "Lambda function aliases"), the API reference and botocore's
service model: versions are numbered from 1 and never reused, a version's ARN
is the function ARN plus `:N`, an alias's ARN the function ARN plus `:alias`,
`X-Amz-Executed-Version` names the version that ran, log streams are named
`YYYY/MM/DD/[VERSION]<id>`."""

import re
import urllib.request

import pytest
from botocore.exceptions import ClientError
from harness import (
    FUNCTIONS_DIR,
    PYTHON_RUNTIME,
    ROLE,
    assert_client_error,
    error_message,
    function_arn,
    invoke,
    invoke_ok,
    make_zip,
    sha256_b64,
    unique_name,
    wait_for_function,
    wait_until,
)

APP = (FUNCTIONS_DIR / "python_basic" / "app.py").read_bytes()


def package(tag: str) -> bytes:
    """The test function with a file `tag.txt` (read back with the `read` action)."""
    return make_zip({"app.py": APP, "tag.txt": tag})


def stream_re(version: str) -> re.Pattern:
    return re.compile(r"^\d{4}/\d{2}/\d{2}/\[" + re.escape(version) + r"\][0-9a-f]{32}$")


def tag_of(client, name, **kwargs) -> str:
    return invoke_ok(client, name, {"action": "read", "path": "tag.txt"}, **kwargs).payload["content"]


def wait_version_active(client, name, version, timeout=30.0):
    return wait_until(
        lambda: client.get_function_configuration(FunctionName=name, Qualifier=version)["State"] == "Active",
        timeout=timeout, interval=0.05, what=f"version {version} of {name} to be Active")


def update_code(client, name, tag, **kwargs):
    resp = client.update_function_code(FunctionName=name, ZipFile=package(tag), **kwargs)
    wait_for_function(client, name)
    return resp


@pytest.fixture
def fn(functions):
    return functions.python(package("one"))


# --------------------------------------------------------------------------
# PublishVersion / ListVersionsByFunction
# --------------------------------------------------------------------------


def test_publish_version_is_an_immutable_copy(lambda_client, fn):
    latest = lambda_client.get_function_configuration(FunctionName=fn)
    v1 = lambda_client.publish_version(FunctionName=fn, Description="first release")
    assert v1["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert v1["Version"] == "1"
    assert v1["FunctionArn"] == function_arn(fn) + ":1"
    assert v1["FunctionName"] == fn
    assert v1["Description"] == "first release"
    for key in ("CodeSha256", "CodeSize", "Runtime", "Handler", "MemorySize", "Timeout", "Role"):
        assert v1[key] == latest[key], key
    wait_version_active(lambda_client, fn, "1")

    update_code(lambda_client, fn, "two")
    lambda_client.update_function_configuration(FunctionName=fn, MemorySize=256)
    wait_for_function(lambda_client, fn)

    # $LATEST moved on; version 1 did not.
    assert tag_of(lambda_client, fn) == "two"
    assert tag_of(lambda_client, fn, Qualifier="1") == "one"
    assert tag_of(lambda_client, f"{fn}:1") == "one"
    conf1 = lambda_client.get_function_configuration(FunctionName=fn, Qualifier="1")
    assert conf1["Version"] == "1" and conf1["MemorySize"] == 128
    assert conf1["CodeSha256"] == sha256_b64(package("one"))
    assert conf1["FunctionArn"] == function_arn(fn) + ":1"
    assert lambda_client.get_function_configuration(FunctionName=fn)["MemorySize"] == 256

    # GetFunction on a version: its configuration and its own code.
    got = lambda_client.get_function(FunctionName=fn, Qualifier="1")
    assert got["Configuration"]["Version"] == "1"
    with urllib.request.urlopen(got["Code"]["Location"], timeout=30) as r:
        assert sha256_b64(r.read()) == sha256_b64(package("one"))


def test_publish_without_changes_returns_the_last_version(lambda_client, fn):
    v1 = lambda_client.publish_version(FunctionName=fn)
    again = lambda_client.publish_version(FunctionName=fn)
    assert again["Version"] == v1["Version"] == "1"
    versions = [v["Version"] for v in lambda_client.list_versions_by_function(FunctionName=fn)["Versions"]]
    assert versions == ["$LATEST", "1"]
    # A configuration change is a change.
    lambda_client.update_function_configuration(FunctionName=fn, Description="changed")
    wait_for_function(lambda_client, fn)
    assert lambda_client.publish_version(FunctionName=fn)["Version"] == "2"


def test_publish_preconditions(lambda_client, fn, check_server):
    latest = lambda_client.get_function_configuration(FunctionName=fn)
    with pytest.raises(ClientError) as e:
        lambda_client.publish_version(FunctionName=fn, RevisionId="00000000-0000-0000-0000-000000000000")
    assert_client_error(e, "PreconditionFailedException", 412)
    with pytest.raises(ClientError) as e:
        lambda_client.publish_version(FunctionName=fn, CodeSha256="bm90IHRoZSBoYXNo")
    exc = assert_client_error(e, "InvalidParameterValueException", 400)
    assert "CodeSHA256" in error_message(exc)
    # Nothing was published.
    assert [v["Version"] for v in lambda_client.list_versions_by_function(FunctionName=fn)["Versions"]] == ["$LATEST"]
    # With the right values it works.
    v = lambda_client.publish_version(FunctionName=fn, RevisionId=latest["RevisionId"],
                                      CodeSha256=latest["CodeSha256"])
    assert v["Version"] == "1"
    # Publishing changed $LATEST's RevisionId: the old one no longer matches.
    with pytest.raises(ClientError) as e:
        lambda_client.update_function_configuration(FunctionName=fn, Description="x",
                                                    RevisionId=latest["RevisionId"])
    assert_client_error(e, "PreconditionFailedException", 412)


def test_publish_on_create_and_on_update_code(lambda_client, functions):
    name = unique_name("pub")
    created = lambda_client.create_function(FunctionName=name, Runtime=PYTHON_RUNTIME, Role=ROLE,
                                            Handler="app.handler", Code={"ZipFile": package("one")},
                                            Publish=True)
    functions.created.append((lambda_client, name))
    assert created["Version"] == "1"
    wait_for_function(lambda_client, name)
    wait_version_active(lambda_client, name, "1")
    assert tag_of(lambda_client, name, Qualifier="1") == "one"

    resp = update_code(lambda_client, name, "two", Publish=True)
    assert resp["Version"] == "2"
    assert resp["FunctionArn"] == function_arn(name) + ":2"
    wait_version_active(lambda_client, name, "2")
    assert tag_of(lambda_client, name, Qualifier="2") == "two"
    assert tag_of(lambda_client, name, Qualifier="1") == "one"
    versions = lambda_client.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]
    assert [v["FunctionArn"] for v in versions] == [function_arn(name) + q for q in (":$LATEST", ":1", ":2")]


def test_list_versions_paging(lambda_client, fn):
    for i in range(3):
        lambda_client.update_function_configuration(FunctionName=fn, Description=f"d{i}")
        wait_for_function(lambda_client, fn)
        lambda_client.publish_version(FunctionName=fn)
    seen, marker = [], None
    while True:
        kwargs = {"Marker": marker} if marker else {}
        page = lambda_client.list_versions_by_function(FunctionName=fn, MaxItems=2, **kwargs)
        assert len(page["Versions"]) <= 2
        seen += [v["Version"] for v in page["Versions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert seen == ["$LATEST", "1", "2", "3"]
    # The paginator (what the AWS CLI uses) agrees.
    pages = lambda_client.get_paginator("list_versions_by_function").paginate(
        FunctionName=fn, PaginationConfig={"PageSize": 3})
    assert [v["Version"] for p in pages for v in p["Versions"]] == seen


# --------------------------------------------------------------------------
# DeleteFunction with a qualifier
# --------------------------------------------------------------------------


def test_delete_version(lambda_client, fn, check_server):
    lambda_client.publish_version(FunctionName=fn)
    lambda_client.update_function_configuration(FunctionName=fn, Description="v2")
    wait_for_function(lambda_client, fn)
    lambda_client.publish_version(FunctionName=fn)

    with pytest.raises(ClientError) as e:
        lambda_client.delete_function(FunctionName=fn, Qualifier="$LATEST")
    assert_client_error(e, "InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as e:
        lambda_client.delete_function(FunctionName=fn, Qualifier="9")
    assert_client_error(e, "ResourceNotFoundException", 404)

    lambda_client.delete_function(FunctionName=fn, Qualifier="2")
    assert [v["Version"] for v in lambda_client.list_versions_by_function(FunctionName=fn)["Versions"]] == [
        "$LATEST", "1"]
    with pytest.raises(ClientError) as e:
        lambda_client.get_function(FunctionName=fn, Qualifier="2")
    assert_client_error(e, "ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as e:
        invoke(lambda_client, fn, {}, Qualifier="2")
    assert_client_error(e, "ResourceNotFoundException", 404)
    # Version numbers are never reused.
    lambda_client.update_function_configuration(FunctionName=fn, Description="v3")
    wait_for_function(lambda_client, fn)
    assert lambda_client.publish_version(FunctionName=fn)["Version"] == "3"
    # The function itself is still there.
    assert invoke_ok(lambda_client, fn, {"action": "echo"}).executed_version == "$LATEST"


def test_version_referenced_by_an_alias_cannot_be_deleted(lambda_client, fn, check_server):
    lambda_client.publish_version(FunctionName=fn)
    lambda_client.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    with pytest.raises(ClientError) as e:
        lambda_client.delete_function(FunctionName=fn, Qualifier="1")
    exc = assert_client_error(e, "ResourceConflictException", 409)
    assert error_message(exc) == "Unable to delete version because the following aliases reference it: [live]"
    assert lambda_client.get_function_configuration(FunctionName=fn, Qualifier="1")["Version"] == "1"
    lambda_client.delete_alias(FunctionName=fn, Name="live")
    lambda_client.delete_function(FunctionName=fn, Qualifier="1")


def test_delete_function_removes_versions_and_aliases(lambda_client, functions):
    name = functions.python(package("one"), Publish=True)
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lambda_client.delete_function(FunctionName=name)
    with pytest.raises(ClientError) as e:
        lambda_client.get_function(FunctionName=name, Qualifier="1")
    assert_client_error(e, "ResourceNotFoundException", 404)
    # A new function of the same name starts from scratch.
    functions.python(package("two"), name=name)
    assert [v["Version"] for v in lambda_client.list_versions_by_function(FunctionName=name)["Versions"]] == [
        "$LATEST"]
    assert lambda_client.list_aliases(FunctionName=name)["Aliases"] == []
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "1"


# --------------------------------------------------------------------------
# Qualifiers on Invoke / GetFunction: environments and logs per version
# --------------------------------------------------------------------------


def test_each_version_has_its_own_environments_and_log_streams(lambda_client, fn):
    lambda_client.publish_version(FunctionName=fn)
    wait_version_active(lambda_client, fn, "1")
    lambda_client.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")

    latest = invoke_ok(lambda_client, fn, {"action": "counter"})
    v1 = invoke_ok(lambda_client, fn, {"action": "counter"}, Qualifier="1")
    assert latest.executed_version == "$LATEST" and v1.executed_version == "1"
    # One log stream per environment: different streams, different environments.
    assert latest.payload["log_stream_name"] != v1.payload["log_stream_name"]
    assert latest.payload["count"] == v1.payload["count"] == 1, "version 1 ran in $LATEST's environment"
    assert stream_re("$LATEST").match(latest.payload["log_stream_name"])
    assert stream_re("1").match(v1.payload["log_stream_name"])
    # Warm reuse stays within the version; the alias runs version 1's environment.
    again = invoke_ok(lambda_client, fn, {"action": "counter"}, Qualifier="live")
    assert again.executed_version == "1"
    assert again.payload["log_stream_name"] == v1.payload["log_stream_name"]
    assert again.payload["count"] == 2

    env = invoke_ok(lambda_client, fn, {"action": "env"}, Qualifier="1").payload
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "1"
    assert stream_re("1").match(env["AWS_LAMBDA_LOG_STREAM_NAME"])

    tail = invoke_ok(lambda_client, fn, {"action": "echo"}, Qualifier="1", LogType="Tail")
    assert f"START RequestId: {tail.invocation_id} Version: 1" in tail.log

    # invoked_function_arn is the ARN the caller used.
    ctx = invoke_ok(lambda_client, fn, {"action": "echo"}, Qualifier="live").payload["context"]
    assert ctx["invoked_function_arn"] == function_arn(fn) + ":live"
    assert ctx["function_version"] == "1"
    ctx = invoke_ok(lambda_client, f"{fn}:1", {"action": "echo"}).payload["context"]
    assert ctx["invoked_function_arn"] == function_arn(fn) + ":1"
    ctx = invoke_ok(lambda_client, fn, {"action": "echo"}).payload["context"]
    assert ctx["invoked_function_arn"] == function_arn(fn)


def test_get_function_through_an_alias(lambda_client, fn):
    lambda_client.publish_version(FunctionName=fn, Description="v1")
    lambda_client.create_alias(FunctionName=fn, Name="prod", FunctionVersion="1")
    conf = lambda_client.get_function_configuration(FunctionName=fn, Qualifier="prod")
    assert conf["Version"] == "1"
    assert conf["FunctionArn"] == function_arn(fn) + ":prod"
    assert conf["Description"] == "v1"
    got = lambda_client.get_function(FunctionName=f"{fn}:prod")
    assert got["Configuration"]["Version"] == "1"
    with pytest.raises(ClientError) as e:
        lambda_client.get_function(FunctionName=fn, Qualifier="nope")
    assert_client_error(e, "ResourceNotFoundException", 404)


# --------------------------------------------------------------------------
# Aliases
# --------------------------------------------------------------------------


def test_alias_lifecycle(lambda_client, fn, check_server):
    lambda_client.publish_version(FunctionName=fn)
    lambda_client.update_function_configuration(FunctionName=fn, Description="v2")
    wait_for_function(lambda_client, fn)
    lambda_client.publish_version(FunctionName=fn)

    created = lambda_client.create_alias(FunctionName=fn, Name="live", FunctionVersion="1",
                                         Description="production")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["AliasArn"] == function_arn(fn) + ":live"
    assert (created["Name"], created["FunctionVersion"], created["Description"]) == ("live", "1", "production")
    assert re.match(r"^[0-9a-f-]{36}$", created["RevisionId"])
    got = lambda_client.get_alias(FunctionName=fn, Name="live")
    assert got["RevisionId"] == created["RevisionId"] and got["FunctionVersion"] == "1"

    with pytest.raises(ClientError) as e:
        lambda_client.create_alias(FunctionName=fn, Name="live", FunctionVersion="2")
    assert_client_error(e, "ResourceConflictException", 409)

    # RevisionId precondition.
    with pytest.raises(ClientError) as e:
        lambda_client.update_alias(FunctionName=fn, Name="live", FunctionVersion="2",
                                   RevisionId="00000000-0000-0000-0000-000000000000")
    assert_client_error(e, "PreconditionFailedException", 412)
    updated = lambda_client.update_alias(FunctionName=fn, Name="live", FunctionVersion="2",
                                         RevisionId=created["RevisionId"])
    assert updated["FunctionVersion"] == "2" and updated["Description"] == "production"
    assert updated["RevisionId"] != created["RevisionId"]
    assert invoke_ok(lambda_client, fn, {"action": "echo"}, Qualifier="live").executed_version == "2"

    lambda_client.create_alias(FunctionName=fn, Name="beta", FunctionVersion="$LATEST")
    lambda_client.create_alias(FunctionName=fn, Name="old", FunctionVersion="1")
    names = [a["Name"] for a in lambda_client.list_aliases(FunctionName=fn)["Aliases"]]
    assert sorted(names) == ["beta", "live", "old"]
    only_v1 = lambda_client.list_aliases(FunctionName=fn, FunctionVersion="1")["Aliases"]
    assert [a["Name"] for a in only_v1] == ["old"]
    first = lambda_client.list_aliases(FunctionName=fn, MaxItems=2)
    assert len(first["Aliases"]) == 2 and first.get("NextMarker")
    rest = lambda_client.list_aliases(FunctionName=fn, Marker=first["NextMarker"])
    assert sorted(a["Name"] for a in first["Aliases"] + rest["Aliases"]) == ["beta", "live", "old"]

    lambda_client.delete_alias(FunctionName=fn, Name="old")
    with pytest.raises(ClientError) as e:
        lambda_client.get_alias(FunctionName=fn, Name="old")
    assert_client_error(e, "ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as e:
        invoke(lambda_client, fn, {}, Qualifier="old")
    assert_client_error(e, "ResourceNotFoundException", 404)


def test_alias_bad_input(lambda_client, lambda_client_novalidate, fn, check_server):
    lambda_client.publish_version(FunctionName=fn)
    lambda_client.update_function_configuration(FunctionName=fn, Description="v2")
    wait_for_function(lambda_client, fn)
    lambda_client.publish_version(FunctionName=fn)
    c = lambda_client_novalidate

    def refused(codes, status, **kwargs):
        with pytest.raises(ClientError) as e:
            c.create_alias(FunctionName=fn, **kwargs)
        return assert_client_error(e, codes, status)

    refused("ValidationException", 400, Name="123", FunctionVersion="1")  # all digits
    refused("ValidationException", 400, Name="bad name", FunctionVersion="1")
    refused("ResourceNotFoundException", 404, Name="a", FunctionVersion="7")
    exc = refused("ValidationException", 400, Name="a", FunctionVersion="1",
                  RoutingConfig={"AdditionalVersionWeights": {"2": 1.5}})
    assert "additionalVersionWeights" in error_message(exc)
    refused("ValidationException", 400, Name="a", FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"2": -0.1}})
    refused("InvalidParameterValueException", 400, Name="a", FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}})  # the primary version
    refused("InvalidParameterValueException", 400, Name="a", FunctionVersion="$LATEST",
            RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
    refused("InvalidParameterValueException", 400, Name="a", FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"2": 0.1, "3": 0.1}})
    refused("ResourceNotFoundException", 404, Name="a", FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"9": 0.5}})
    # Nothing was created.
    assert lambda_client.list_aliases(FunctionName=fn)["Aliases"] == []

    lambda_client.create_alias(FunctionName=fn, Name="a", FunctionVersion="1")
    before = lambda_client.get_alias(FunctionName=fn, Name="a")
    with pytest.raises(ClientError) as e:
        c.update_alias(FunctionName=fn, Name="a", RoutingConfig={"AdditionalVersionWeights": {"2": 7}})
    assert_client_error(e, "ValidationException", 400)
    with pytest.raises(ClientError) as e:
        c.update_alias(FunctionName=fn, Name="a", FunctionVersion="9")
    assert_client_error(e, "ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as e:
        c.update_alias(FunctionName=fn, Name="missing", FunctionVersion="1")
    assert_client_error(e, "ResourceNotFoundException", 404)
    after = lambda_client.get_alias(FunctionName=fn, Name="a")
    for key in ("FunctionVersion", "RevisionId", "Description"):
        assert after[key] == before[key], key
    assert not after.get("RoutingConfig", {}).get("AdditionalVersionWeights")


def test_alias_weighted_routing(lambda_client, fn):
    """Weight 0.3 on version 2: about 30% of invocations run version 2. Over
    200 invocations the count of version 2 is Binomial(200, 0.3) (mean 60, sd
    6.5); the test accepts 30% ± 10% (40..80, beyond 3 sd either way)."""
    lambda_client.publish_version(FunctionName=fn)
    update_code(lambda_client, fn, "two")
    lambda_client.publish_version(FunctionName=fn)
    wait_version_active(lambda_client, fn, "2")
    alias = lambda_client.create_alias(FunctionName=fn, Name="canary", FunctionVersion="1",
                                       RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}})
    assert alias["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.3}}
    counts = {"1": 0, "2": 0}
    for _ in range(200):
        inv = invoke_ok(lambda_client, fn, {"action": "read", "path": "tag.txt"}, Qualifier="canary")
        counts[inv.executed_version] += 1
        # The header tells the truth: the code that ran is that version's.
        assert inv.payload["content"] == {"1": "one", "2": "two"}[inv.executed_version]
    assert 40 <= counts["2"] <= 80, counts

    # Removing the routing sends everything to the primary version.
    lambda_client.update_alias(FunctionName=fn, Name="canary", RoutingConfig={"AdditionalVersionWeights": {}})
    got = lambda_client.get_alias(FunctionName=fn, Name="canary")
    assert not got.get("RoutingConfig", {}).get("AdditionalVersionWeights")
    assert {invoke_ok(lambda_client, fn, {}, Qualifier="canary").executed_version for _ in range(20)} == {"1"}


def test_versions_with_the_aws_cli(aws_cli, functions, lambda_client):
    name = functions.python(package("one"))
    v = aws_cli("lambda", "publish-version", "--function-name", name)
    assert v["Version"] == "1"
    a = aws_cli("lambda", "create-alias", "--function-name", name, "--name", "prod",
                "--function-version", "1")
    assert a["AliasArn"] == function_arn(name) + ":prod"
    listed = aws_cli("lambda", "list-versions-by-function", "--function-name", name)
    assert [x["Version"] for x in listed["Versions"]] == ["$LATEST", "1"]
    aliases = aws_cli("lambda", "list-aliases", "--function-name", name)
    assert [x["Name"] for x in aliases["Aliases"]] == ["prod"]
    wait_version_active(lambda_client, name, "1")
    out = aws_cli("lambda", "invoke", "--function-name", name, "--qualifier", "prod",
                  *aws_cli.payload_args, "--payload", '{"action": "echo"}', "/dev/null")
    assert out["ExecutedVersion"] == "1"
