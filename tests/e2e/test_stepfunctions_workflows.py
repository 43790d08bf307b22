"""The Step Functions workflows of the Lambda guide (sections 4.2, 4.4, 4.5)
run end to end against real Python functions created under the guide's
names in its region (ap-northeast-1, account 123456789012):

* 4.2 the order workflow: ValidateInput (Catch ValidationError) ->
  ProcessOrder (Retry States.TaskFailed 5 s x2 backoff, Catch States.ALL)
  -> NotifySuccess, or HandleError -> NotifyFailure;
* 4.4 the Parallel notification fan-out (send-email, send-sms, update-db)
  followed by AggregateResults;
* 4.5 the Map over `$.items` with MaxConcurrency 10 and a per-item Retry.

The definitions are the guide's, verbatim, except that its elided ARNs
(`arn:aws:lambda:...:send-email`) are completed to
`arn:aws:lambda:ap-northeast-1:123456789012:function:send-email`. Expected
outputs follow the Amazon States Language rules (Catch without ResultPath
replaces the input with {"Error", "Cause"}; Parallel and Map output arrays
in branch / item order).
"""

from __future__ import annotations

import json
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from harness import ACCOUNT, FUNCTIONS_DIR, FunctionFactory, make_zip

REGION = "ap-northeast-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/StepFunctionsRole"
FN_PREFIX = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"

ORDER_WORKFLOW = """{
  "Comment": "注文処理ワークフロー",
  "StartAt": "ValidateInput",
  "States": {
    "ValidateInput": {
      "Type": "Task",
      "Resource": "arn:aws:lambda:ap-northeast-1:123456789012:function:validate-input",
      "Next": "ProcessOrder",
      "Catch": [
        {
          "ErrorEquals": ["ValidationError"],
          "Next": "HandleError"
        }
      ]
    },
    "ProcessOrder": {
      "Type": "Task",
      "Resource": "arn:aws:lambda:ap-northeast-1:123456789012:function:process-order",
      "TimeoutSeconds": 300,
      "Retry": [
        {
          "ErrorEquals": ["States.TaskFailed"],
          "IntervalSeconds": 5,
          "MaxAttempts": 3,
          "BackoffRate": 2.0
        }
      ],
      "Next": "NotifySuccess",
      "Catch": [
        {
          "ErrorEquals": ["States.ALL"],
          "Next": "HandleError"
        }
      ]
    },
    "NotifySuccess": {
      "Type": "Task",
      "Resource": "arn:aws:lambda:ap-northeast-1:123456789012:function:notify-success",
      "End": true
    },
    "HandleError": {
      "Type": "Task",
      "Resource": "arn:aws:lambda:ap-northeast-1:123456789012:function:handle-error",
      "Next": "NotifyFailure"
    },
    "NotifyFailure": {
      "Type": "Task",
      "Resource": "arn:aws:lambda:ap-northeast-1:123456789012:function:notify-failure",
      "End": true
    }
  }
}"""

PARALLEL_STATE = """{
  "Type": "Parallel",
  "Branches": [
    {
      "StartAt": "SendEmail",
      "States": {
        "SendEmail": {
          "Type": "Task",
          "Resource": "arn:aws:lambda:...:send-email",
          "End": true
        }
      }
    },
    {
      "StartAt": "SendSMS",
      "States": {
        "SendSMS": {
          "Type": "Task",
          "Resource": "arn:aws:lambda:...:send-sms",
          "End": true
        }
      }
    },
    {
      "StartAt": "UpdateDB",
      "States": {
        "UpdateDB": {
          "Type": "Task",
          "Resource": "arn:aws:lambda:...:update-db",
          "End": true
        }
      }
    }
  ],
  "Next": "AggregateResults"
}"""

MAP_WORKFLOW = """{
  "Comment": "大量データの並列処理ワークフロー",
  "StartAt": "FetchItems",
  "States": {
    "FetchItems": {
      "Type": "Task",
      "Resource": "arn:aws:lambda:...:fetch-items",
      "Next": "ProcessItems"
    },
    "ProcessItems": {
      "Type": "Map",
      "ItemsPath": "$.items",
      "MaxConcurrency": 10,
      "Iterator": {
        "StartAt": "ProcessSingleItem",
        "States": {
          "ProcessSingleItem": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:...:process-item",
            "Retry": [
              {
                "ErrorEquals": ["States.TaskFailed"],
                "IntervalSeconds": 2,
                "MaxAttempts": 3,
                "BackoffRate": 2.0
              }
            ],
            "End": true
          }
        }
      },
      "Next": "AggregateResults"
    },
    "AggregateResults": {
      "Type": "Task",
      "Resource": "arn:aws:lambda:...:aggregate-results",
      "End": true
    }
  }
}"""

# The guide's functions: name -> handler in tests/functions/sfn_workflows/app.py.
SEED_FUNCTIONS = {
    "validate-input": "app.validate_input",
    "process-order": "app.process_order",
    "notify-success": "app.notify_success",
    "handle-error": "app.handle_error",
    "notify-failure": "app.notify_failure",
    "send-email": "app.send_email",
    "send-sms": "app.send_sms",
    "update-db": "app.update_db",
    "fetch-items": "app.fetch_items",
    "process-item": "app.process_item",
    "aggregate-results": "app.aggregate_results",
}


def complete_arns(text: str) -> str:
    return text.replace("arn:aws:lambda:...:", FN_PREFIX)


def client(server, service: str):
    cfg = Config(region_name=REGION, retries={"max_attempts": 1, "mode": "standard"},
                 read_timeout=330, connect_timeout=10, inject_host_prefix=False)
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                    region_name=REGION)
    return session.client(service, endpoint_url=server.url, config=cfg)


@pytest.fixture(scope="module")
def sfn(server):
    return client(server, "stepfunctions")


@pytest.fixture(scope="module")
def seed_functions(server):
    lam = client(server, "lambda")
    factory = FunctionFactory(lam, "seed")
    package = make_zip({"app.py": (FUNCTIONS_DIR / "sfn_workflows" / "app.py").read_bytes()})
    for fn_name, handler in SEED_FUNCTIONS.items():
        factory.create(package, name=fn_name, handler=handler, Timeout=30)
    yield factory
    factory.cleanup()


def machine(sfn, definition: str, type_: str = "STANDARD") -> str:
    return sfn.create_state_machine(name=f"seed-{uuid.uuid4().hex[:10]}", definition=definition,
                                    roleArn=ROLE, type=type_)["stateMachineArn"]


def run(sfn, arn: str, payload: dict, timeout: float = 120) -> tuple[dict, list[dict]]:
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload))["executionArn"]
    assert ex.startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:execution:")
    deadline = time.monotonic() + timeout
    while True:
        d = sfn.describe_execution(executionArn=ex)
        if d["status"] != "RUNNING":
            break
        assert time.monotonic() < deadline, f"{ex} still running"
        time.sleep(0.2)
    events = sfn.get_execution_history(executionArn=ex, maxResults=1000)["events"]
    return d, events


def entered(events: list[dict]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]


def test_order_workflow_success(sfn, seed_functions):
    arn = machine(sfn, ORDER_WORKFLOW)
    d, events = run(sfn, arn, {"orderId": "A-100", "amount": 2500})
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out["notified"] == "success"
    assert out["order"] == {"orderId": "A-100", "processedAmount": 2500, "status": "COMPLETED",
                            "attempts": 1}
    assert entered(events) == ["ValidateInput", "ProcessOrder", "NotifySuccess"]
    assert [e["type"] for e in events].count("LambdaFunctionScheduled") == 3


def test_order_workflow_retries_process_order(sfn, seed_functions):
    arn = machine(sfn, ORDER_WORKFLOW)
    order = f"R-{uuid.uuid4().hex[:6]}"
    d, events = run(sfn, arn, {"orderId": order, "amount": 10, "failTimes": 1})
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"])["order"]["attempts"] == 2
    kinds = [e["type"] for e in events]
    # One failed attempt, then the retry (IntervalSeconds 5) succeeds.
    assert kinds.count("LambdaFunctionFailed") == 1
    assert kinds.count("LambdaFunctionScheduled") == 4
    failed = [e for e in events if e["type"] == "LambdaFunctionFailed"][0]
    assert failed["lambdaFunctionFailedEventDetails"]["error"] == "TransientError"
    scheduled = [e for e in events if e["type"] == "LambdaFunctionScheduled"]
    gap = (scheduled[2]["timestamp"] - scheduled[1]["timestamp"]).total_seconds()
    assert gap >= 5.0, f"the retry came {gap:.2f} s after the first attempt, not >= 5 s"


def test_order_workflow_validation_error_is_caught(sfn, seed_functions):
    arn = machine(sfn, ORDER_WORKFLOW)
    d, events = run(sfn, arn, {"orderId": "B-1", "amount": 0})
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out == {"notified": "failure", "error": "ValidationError"}
    assert entered(events) == ["ValidateInput", "HandleError", "NotifyFailure"]


def test_order_workflow_process_failure_after_retries(sfn, seed_functions):
    arn = machine(sfn, ORDER_WORKFLOW)
    order = f"D-{uuid.uuid4().hex[:6]}"
    d, events = run(sfn, arn, {"orderId": order, "amount": 10, "declined": True}, timeout=180)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == {"notified": "failure", "error": "PaymentDeclined"}
    kinds = [e["type"] for e in events]
    # MaxAttempts 3: the first try and three retries, then Catch States.ALL.
    assert kinds.count("LambdaFunctionFailed") == 4
    assert entered(events) == ["ValidateInput", "ProcessOrder", "HandleError", "NotifyFailure"]


def test_order_workflow_express_sync(sfn, seed_functions):
    arn = machine(sfn, ORDER_WORKFLOW, "EXPRESS")
    r = sfn.start_sync_execution(stateMachineArn=arn, input=json.dumps({"orderId": "E-1", "amount": 7}))
    assert r["status"] == "SUCCEEDED", r
    assert json.loads(r["output"])["notified"] == "success"
    r = sfn.start_sync_execution(stateMachineArn=arn, input=json.dumps({"amount": 7}))
    assert r["status"] == "SUCCEEDED", r
    assert json.loads(r["output"]) == {"notified": "failure", "error": "ValidationError"}


def test_parallel_notification_fan_out(sfn, seed_functions):
    definition = json.dumps({
        "StartAt": "Notify",
        "States": {
            "Notify": json.loads(complete_arns(PARALLEL_STATE)),
            "AggregateResults": {"Type": "Task", "Resource": FN_PREFIX + "aggregate-results",
                                 "End": True},
        },
    })
    arn = machine(sfn, definition)
    d, events = run(sfn, arn, {"orderId": "P-1", "email": "a@example.com", "phone": "+81-3"})
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out == {"count": 3, "results": [
        {"channel": "email", "to": "a@example.com"},
        {"channel": "sms", "to": "+81-3"},
        {"channel": "db", "orderId": "P-1"},
    ]}
    kinds = [e["type"] for e in events]
    assert "ParallelStateStarted" in kinds and "ParallelStateSucceeded" in kinds


def test_map_with_per_item_retry(sfn, seed_functions):
    arn = machine(sfn, complete_arns(MAP_WORKFLOW))
    run_id = uuid.uuid4().hex[:8]
    d, events = run(sfn, arn, {"count": 12, "flaky": [3, 7], "run": run_id})
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out["count"] == 12
    assert [r["id"] for r in out["results"]] == list(range(12))
    assert [r["doubled"] for r in out["results"]] == [i * 20 for i in range(12)]
    # A flaky item fails its first attempt in each execution environment
    # that runs it (items run concurrently, in several environments), so it
    # succeeds on a retry, never on its first attempt.
    attempts = {r["id"]: r["attempt"] for r in out["results"]}
    assert attempts[3] >= 2 and attempts[7] >= 2
    assert all(attempts[i] == 1 for i in range(12) if i not in (3, 7))
    kinds = [e["type"] for e in events]
    assert kinds.count("MapIterationStarted") == 12
    assert kinds.count("MapIterationSucceeded") == 12
    failures = kinds.count("LambdaFunctionFailed")
    assert 2 <= failures <= 6  # MaxAttempts 3 per item: at most 3 retries each
    # Every failure was retried: fetch-items + 12 items + retries + aggregate.
    assert kinds.count("LambdaFunctionScheduled") == 1 + 12 + failures + 1
    started = [e for e in events if e["type"] == "MapStateStarted"][0]
    assert started["mapStateStartedEventDetails"]["length"] == 12


def test_order_workflow_with_the_aws_cli(aws_cli, seed_functions, tmp_path):
    path = tmp_path / "order.json"
    path.write_text(ORDER_WORKFLOW, encoding="utf-8")
    env = aws_cli.env(AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION)
    name = f"cli-order-{uuid.uuid4().hex[:8]}"
    created = aws_cli("stepfunctions", "create-state-machine", "--name", name,
                      "--definition", f"file://{path}", "--role-arn", ROLE, env=env)
    arn = created["stateMachineArn"]
    assert arn == f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
    ex = aws_cli("stepfunctions", "start-execution", "--state-machine-arn", arn,
                 "--input", json.dumps({"orderId": "C-1", "amount": 99}), env=env)["executionArn"]
    deadline = time.monotonic() + 60
    while True:
        d = aws_cli("stepfunctions", "describe-execution", "--execution-arn", ex, env=env)
        if d["status"] != "RUNNING":
            break
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert d["status"] == "SUCCEEDED"
    assert json.loads(d["output"])["notified"] == "success"


DISTRIBUTED_MAP = """{
  "Comment": "S3 の大量ファイルを分散並列処理",
  "StartAt": "DistributedProcess",
  "States": {
    "DistributedProcess": {
      "Type": "Map",
      "ItemReader": {
        "Resource": "arn:aws:states:::s3:listObjectsV2",
        "Parameters": {
          "Bucket": "my-input-bucket",
          "Prefix": "data/"
        }
      },
      "ItemProcessor": {
        "ProcessorConfig": {
          "Mode": "DISTRIBUTED",
          "ExecutionType": "EXPRESS"
        },
        "StartAt": "ProcessFile",
        "States": {
          "ProcessFile": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:...:process-file",
            "End": true
          }
        }
      },
      "MaxConcurrency": 1000,
      "Label": "DistributedProcess",
      "ResultWriter": {
        "Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {
          "Bucket": "my-output-bucket",
          "Prefix": "results/"
        }
      },
      "End": true
    }
  }
}"""


def test_guide_workflows_with_upstream_services_validate(sfn):
    """The guide's Distributed Map (4.6) reads and writes S3, and its SDK
    integration example (4.7) calls DynamoDB and ECS: stratus forwards those
    to an upstream endpoint (test_stepfunctions_upstream.py runs them against
    moto), so both definitions validate and can be created."""
    definition = complete_arns(DISTRIBUTED_MAP)
    v = sfn.validate_state_machine_definition(definition=definition)
    assert v["result"] == "OK", v
    sfn.create_state_machine(name=f"dmap-{uuid.uuid4().hex[:8]}", definition=definition, roleArn=ROLE)
    sdk = json.dumps({"StartAt": "Put", "States": {
        "Put": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem",
                "Parameters": {"TableName": "Orders"}, "Next": "Run"},
        "Run": {"Type": "Task", "Resource": "arn:aws:states:::ecs:runTask.sync", "End": True}}})
    v = sfn.validate_state_machine_definition(definition=sdk)
    assert v["result"] == "OK", v
