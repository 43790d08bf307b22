"""Python test function for stratus's end-to-end tests.

Handler entry points (set the function's Handler to ``app.<name>``):

* ``app.handler``  -- dispatches on ``event["action"]`` (see ACTIONS below);
  the default action is ``echo``.
* ``app.raise_error`` -- always raises (Unhandled error payload).
* ``app.counter`` -- warm-reuse probe (count + environment id).

Used through the stratus python bootstrap (runtime ``python3.x``) and through
awslambdaric (``tests/functions/python_ric``), so it must not depend on either.
"""

import logging
import os
import socket
import sys
import time
import uuid

logger = logging.getLogger()
logger.setLevel(logging.INFO)

# Module-level state: survives between invocations in one execution
# environment, reset in a fresh one.
_INIT_PID = os.getpid()
_INIT_TIME = time.time()
_COUNT = 0
# Identifies this execution environment (its runtime process), whatever PID
# namespace it runs in.
_ENV_ID = uuid.uuid4().hex
_HELD = []

ENV_VARS = [
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "TZ",
    "_HANDLER",
]


class CustomError(Exception):
    """A user-defined exception type, to check errorType naming."""


def _context_fields(context):
    client_context = None
    cc = getattr(context, "client_context", None)
    if cc is not None:
        client_context = {
            "custom": getattr(cc, "custom", None),
            "env": getattr(cc, "env", None),
        }
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_time_in_millis": context.get_remaining_time_in_millis(),
        "client_context": client_context,
    }


def _echo(event, context):
    return {"event": event, "context": _context_fields(context)}


def _env(event, context):
    names = ENV_VARS + list(event.get("names", []))
    result = {name: os.environ.get(name) for name in names}
    task_root = os.environ.get("LAMBDA_TASK_ROOT")
    result["task_root_files"] = sorted(os.listdir(task_root)) if task_root else None
    result["cwd"] = os.getcwd()
    return result


def _sdk(event, context):
    # As on AWS, boto3 is importable without packaging it, and the SDK reaches
    # the platform through AWS_ENDPOINT_URL + the credentials variables.
    import boto3

    client = boto3.client("lambda")
    conf = client.get_function_configuration(FunctionName=context.function_name)
    return {"boto3": boto3.__version__, "FunctionArn": conf["FunctionArn"]}


def _read(event, context):
    # Read a file of the package (relative to the task root).
    path = os.path.join(os.environ.get("LAMBDA_TASK_ROOT", "."), event["path"])
    with open(path) as f:
        return {"content": f.read()}


def _raise(event, context):
    raise CustomError(event.get("message", "something went wrong"))


def _sleep(event, context):
    time.sleep(float(event.get("seconds", 5)))
    return {"slept": event.get("seconds", 5), "env_id": _ENV_ID, "pid": _INIT_PID,
            "log_stream_name": context.log_stream_name}


def _exit(event, context):
    sys.stdout.flush()
    os._exit(int(event.get("code", 1)))


def _log(event, context):
    for line in event.get("lines", ["hello from print"]):
        print(line)
    logger.info(event.get("info", "hello from logging"))
    return {"logged": True, "aws_request_id": context.aws_request_id}


def _counter(event, context):
    global _COUNT
    _COUNT += 1
    return {"count": _COUNT, "env_id": _ENV_ID, "pid": _INIT_PID, "init_time": _INIT_TIME,
            "aws_request_id": context.aws_request_id, "log_stream_name": context.log_stream_name}


def _hold(event, context):
    # Open a TCP connection to the test and keep it for the life of this
    # environment: the test sees it close when the runtime process ends.
    conn = socket.create_connection((event["host"], int(event["port"])), timeout=10)
    conn.sendall((_ENV_ID + "\n").encode())
    _HELD.append(conn)
    return _counter(event, context)


def _big(event, context):
    # A JSON string of exactly `bytes` bytes once serialised (2 quote chars).
    n = int(event.get("bytes", 1024))
    return "x" * max(0, n - 2)


ACTIONS = {
    "echo": _echo,
    "env": _env,
    "raise": _raise,
    "sleep": _sleep,
    "exit": _exit,
    "log": _log,
    "counter": _counter,
    "hold": _hold,
    "big": _big,
    "sdk": _sdk,
    "read": _read,
}


def handler(event, context):
    action = event.get("action", "echo") if isinstance(event, dict) else "echo"
    return ACTIONS[action](event, context)


def raise_error(event, context):
    return _raise(event if isinstance(event, dict) else {}, context)


def counter(event, context):
    return _counter(event, context)
