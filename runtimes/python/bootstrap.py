"""stratus runtime bootstrap for the python3.x Lambda runtimes.

stratus starts this file as the runtime process of an execution environment:

    <python> -u bootstrap.py

with the working directory set to LAMBDA_TASK_ROOT and the environment of a
Lambda execution environment (AWS_LAMBDA_RUNTIME_API, _HANDLER, ...). It loads
the handler named by _HANDLER, then serves invocations from the Lambda Runtime
API (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) until the
process is stopped. Behaviour (error payloads, log lines, the context object)
follows AWS's managed Python runtime.

This file is self-contained and uses only the standard library: stratus embeds
it and may write it anywhere.
"""

import os
import sys

# The function's code directory is read-only on AWS; never write __pycache__ into it.
sys.dont_write_bytecode = True

# Drop the directory of this script from the module search path before anything
# else: user code must not see (or be shadowed by) wherever stratus wrote us.
_THIS_FILE = os.path.abspath(__file__)
if sys.path and sys.path[0] and os.path.abspath(sys.path[0]) == os.path.dirname(_THIS_FILE):
    del sys.path[0]

import decimal  # noqa: E402
import http.client  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

_API_PREFIX = "/2018-06-01/runtime"
_LOG_INDENT = "\u00a0"  # AWS writes traceback indentation in error logs as NO-BREAK SPACE
_RECORD_SEP = "\r"  # newline inside one log record (stdout carries one record per line)

_UNHANDLED_EXCEPTION_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code. "
    "However, in rare cases, a Lambda runtime update can cause unexpected function behavior. "
    "For functions using managed runtimes, runtime updates can be triggered by a function change, "
    "or can be applied automatically. To determine if the runtime has been updated, check the "
    "runtime version in the INIT_START log entry. If this error correlates with a change in the "
    "runtime version, you may be able to mitigate this error by temporarily rolling back to the "
    "previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html"
)

# Request id and tenant id of the invocation in progress, read by the log filter.
_current_request_id = None
_current_tenant_id = None


# --------------------------------------------------------------------------
# Errors reported by the runtime itself (AWS's "Runtime.*" error types)
# --------------------------------------------------------------------------


class RuntimeFault(Exception):
    """A failure the runtime reports with one of AWS's Runtime.* error types."""

    MARSHAL_ERROR = "Runtime.MarshalError"
    UNMARSHAL_ERROR = "Runtime.UnmarshalError"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

    def __init__(self, error_type, message, trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace


def error_payload(message, error_type, stack_trace, request_id=None):
    """The error document AWS's Python runtime posts: four fields, never null."""
    return {
        "errorMessage": message if message else "",
        "errorType": error_type if error_type else "",
        "requestId": request_id if request_id is not None else "",
        "stackTrace": stack_trace if stack_trace else [],
    }


def _is_bootstrap_frame(filename):
    return filename == __file__ or os.path.abspath(filename) == _THIS_FILE


def payload_from_exception(exc_info, request_id=None):
    """Error document for an exception raised by user code.

    Leading frames that belong to this bootstrap are dropped, so the trace
    starts at the first frame outside the runtime, as on AWS."""
    etype, value, tb = exc_info
    frames = traceback.extract_tb(tb)
    start = 0
    while start < len(frames) and _is_bootstrap_frame(frames[start].filename):
        start += 1
    if start < len(frames):
        frames = frames[start:]
    try:
        message = str(value)
    except Exception:
        message = "<unprintable {} object>".format(etype.__name__)
    return error_payload(message, etype.__name__, traceback.format_list(frames), request_id)


# --------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------


def _ensure_ascii():
    # AWS's encoder keeps non-ASCII characters as they are on python3.12 and later
    # managed runtimes, and escapes them (json's default) otherwise.
    m = re.match(r"AWS_Lambda_python3\.(\d+)$", os.environ.get("AWS_EXECUTION_ENV", ""))
    return not (m and int(m.group(1)) >= 12)


class _Encoder(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, decimal.Decimal):
            if o.is_nan():
                return math.nan
            if o.is_infinite():
                return math.inf if o > 0 else -math.inf
            if o == o.to_integral_value():
                return int(o)
            return float(o)
        return super().default(o)


_encoder = _Encoder(ensure_ascii=_ensure_ascii())


def to_json(obj):
    return _encoder.encode(obj)


def unmarshal_event(body, content_type):
    # As AWS: a JSON event is decoded; any other content type is handed over as bytes.
    if content_type and content_type.split(";")[0].strip().lower() != "application/json":
        return body
    try:
        return json.loads(body)
    except Exception as e:
        raise RuntimeFault(RuntimeFault.UNMARSHAL_ERROR, "Unable to unmarshal input: {}".format(e))


def marshal_result(result):
    if isinstance(result, bytes):
        return result, "application/unknown"
    try:
        return to_json(result).encode("utf-8"), "application/json"
    except Exception as e:
        raise RuntimeFault(RuntimeFault.MARSHAL_ERROR, "Unable to marshal response: {}".format(e))


# --------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------


def _write_record(text):
    """Write one log record as exactly one stdout line."""
    if text.endswith("\n"):
        text = text[:-1]
    sys.stdout.write(text.replace("\r\n", _RECORD_SEP).replace("\n", _RECORD_SEP) + "\n")
    sys.stdout.flush()


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _current_request_id or ""
        record.tenant_id = _current_tenant_id
        return True


class _LambdaLogHandler(logging.Handler):
    def emit(self, record):
        try:
            _write_record(self.format(record))
        except Exception:
            self.handleError(record)


_JSON_RESERVED = {
    "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module",
    "exc_info", "exc_text", "stack_info", "lineno", "funcName", "created", "msecs",
    "relativeCreated", "thread", "threadName", "processName", "process", "taskName",
    "aws_request_id", "tenant_id", "_frame_type",
}


class _JsonLogFormatter(logging.Formatter):
    """AWS's JSON log format for the Python runtime (AWS_LAMBDA_LOG_FORMAT=JSON)."""

    def format(self, record):
        level = min(50, max(0, record.levelno)) // 10 * 10
        record.levelno = level
        record.levelname = logging.getLevelName(level)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc = {
            "timestamp": "%s.%03dZ" % (stamp, int(record.msecs)),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        if record.exc_info:
            doc["stackTrace"] = traceback.format_tb(record.exc_info[2])
            doc["errorType"] = record.exc_info[0].__name__
            doc["errorMessage"] = str(record.exc_info[1])
        doc["requestId"] = getattr(record, "aws_request_id", None)
        if record.exc_info:
            doc["location"] = "%s:%s:%s" % (record.pathname, record.funcName, record.lineno)
        if getattr(record, "tenant_id", None) is not None:
            doc["tenantId"] = record.tenant_id
        for key, value in record.__dict__.items():
            if key not in _JSON_RESERVED and key not in doc:
                doc[key] = value
        doc = {k: v for k, v in doc.items() if v is not None}
        return json.dumps(doc, ensure_ascii=False, default=str)


def _json_log_format():
    return (os.environ.get("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON"


def setup_logging():
    logging.Formatter.converter = time.gmtime
    handler = _LambdaLogHandler()
    if _json_log_format():
        handler.setFormatter(_JsonLogFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
                "%Y-%m-%dT%H:%M:%S",
            )
        )
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    if level:
        level = {"TRACE": "DEBUG"}.get(level.upper(), level.upper())
        if level in logging._nameToLevel:  # noqa: SLF001 (the public mapping is 3.11+ only)
            root.setLevel(level)
    root.addHandler(handler)


def log_error(payload):
    """Log an error document the way AWS's runtime does, as one record."""
    if _json_log_format():
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        _write_record(to_json({"timestamp": stamp, "level": "ERROR", **payload}))
        return
    head = "[ERROR]"
    if payload.get("errorType"):
        head += " " + payload["errorType"]
    if payload.get("errorMessage"):
        if payload.get("errorType"):
            head += ":"
        head += " " + payload["errorMessage"]
    lines = [head]
    trace = payload.get("stackTrace")
    if trace is not None:
        lines.append("Traceback (most recent call last):")
        for element in trace:
            if element == "":
                lines.append("")
                continue
            for line in element.splitlines():
                stripped = line.lstrip(" ")
                lines.append(_LOG_INDENT * (len(line) - len(stripped)) + stripped)
    _write_record(_RECORD_SEP.join(lines))


def _runtime_notice(message):
    """A message from the runtime itself (not user code), one line on stderr."""
    sys.stderr.write(message.replace("\n", _RECORD_SEP) + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------
# Context object
# --------------------------------------------------------------------------


class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id={},cognito_identity_pool_id={}])".format(
            self.cognito_identity_id, self.cognito_identity_pool_id
        )


class Client(object):
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]

    def __repr__(self):
        return "Client([{}])".format(",".join("{}={}".format(k, getattr(self, k)) for k in self.__slots__))


class ClientContext(object):
    __slots__ = ["custom", "env", "client"]

    def __repr__(self):
        return "ClientContext([custom={},env={},client={}])".format(self.custom, self.env, self.client)


def _object_from_dict(cls, values):
    if values is None:
        return None
    obj = cls()
    for field in cls.__slots__:
        setattr(obj, field, values.get(field) if isinstance(values, dict) else None)
    return obj


class LambdaContext(object):
    """The context object passed to a Python handler, as AWS's runtime builds it."""

    def __init__(self, request_id, client_context, cognito_identity, deadline_ms, invoked_function_arn, tenant_id=None):
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        # AWS's runtime hands this over exactly as the environment variable: a string.
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id

        self.client_context = _object_from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _object_from_dict(Client, self.client_context.client)

        self.identity = _object_from_dict(CognitoIdentity, {})
        if cognito_identity is not None:
            self.identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            self.identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")

        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        remaining = self._deadline_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))
        sys.stdout.flush()

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id={},log_group_name={},log_stream_name={},function_name={},"
            "memory_limit_in_mb={},function_version={},invoked_function_arn={},client_context={},"
            "identity={},tenant_id={}])"
        ).format(
            self.aws_request_id, self.log_group_name, self.log_stream_name, self.function_name,
            self.memory_limit_in_mb, self.function_version, self.invoked_function_arn,
            self.client_context, self.identity, self.tenant_id,
        )


def _parse_json_header(value, name):
    try:
        return json.loads(value)
    except Exception as e:
        raise RuntimeFault(RuntimeFault.CONTEXT_UNMARSHAL_ERROR, "Unable to parse {} JSON: {}".format(name, e))


# --------------------------------------------------------------------------
# Runtime API client
# --------------------------------------------------------------------------


class RuntimeApiError(Exception):
    pass


class RuntimeApiClient(object):
    """A small keep-alive HTTP/1.1 client for the Runtime API (no timeouts)."""

    def __init__(self, address):
        self.address = address
        self._conn = None

    def _request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        for attempt in (0, 1):
            fresh = self._conn is None
            if fresh:
                self._conn = http.client.HTTPConnection(self.address)
            conn = self._conn
            try:
                conn.request(method, _API_PREFIX + path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.HTTPException, OSError) as e:
                conn.close()
                self._conn = None
                # A kept-alive connection may have been closed by the server while
                # idle; the request never reached it, so one retry is safe.
                if fresh or attempt == 1:
                    raise RuntimeApiError("{} {} failed: {}".format(method, path, e))
                continue
            if resp.will_close:
                conn.close()
                self._conn = None
            return resp.status, resp.headers, data
        raise RuntimeApiError("unreachable")

    def next_invocation(self):
        status, headers, body = self._request("GET", "/invocation/next")
        if status != 200:
            raise RuntimeApiError("GET /invocation/next returned HTTP {}: {!r}".format(status, body[:500]))
        return headers, body

    def _post(self, path, body, headers):
        status, _headers, data = self._request("POST", path, body=body, headers=headers)
        if not 200 <= status < 300:
            message = data.decode("utf-8", "replace")
            try:
                doc = json.loads(data)
                message = "{}: {}".format(doc.get("errorType", ""), doc.get("errorMessage", ""))
            except Exception:
                pass
            _runtime_notice("[ERROR] Runtime API rejected POST {} (HTTP {}): {}".format(path, status, message))
        return status

    def post_response(self, request_id, body, content_type):
        return self._post("/invocation/{}/response".format(request_id), body, {"Content-Type": content_type})

    def post_error(self, request_id, payload):
        body = to_json(payload).encode("utf-8")
        return self._post("/invocation/{}/error".format(request_id), body, _error_headers(payload))

    def post_init_error(self, payload):
        return self._post("/init/error", to_json(payload).encode("utf-8"), _error_headers(payload))


def _error_headers(payload):
    # Header values must be printable ASCII; an exception class may have any name.
    error_type = re.sub(r"[^\t\x20-\x7e]", "?", payload.get("errorType") or "")
    return {"Content-Type": "application/json", "Lambda-Runtime-Function-Error-Type": error_type}


# --------------------------------------------------------------------------
# Module search path and handler loading
# --------------------------------------------------------------------------


def setup_sys_path(task_root):
    """Search order as on AWS: the function code, then layers, then the runtime's
    own packages; the SDK stratus provides (STRATUS_SDK_PATH) comes last."""
    opt = os.environ.get("STRATUS_OPT_DIR") or "/opt"
    version = "python{}.{}".format(sys.version_info.major, sys.version_info.minor)
    front = [task_root, os.path.join(opt, "python", "lib", version, "site-packages"), os.path.join(opt, "python")]
    front = [p for p in front if p]
    rest = [p for p in sys.path if p not in front]
    sys.path[:] = front + rest
    sdk = os.environ.get("STRATUS_SDK_PATH")
    if sdk and os.path.isdir(sdk) and sdk not in sys.path:
        sys.path.append(sdk)
    importlib.invalidate_caches()


def load_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise RuntimeFault(RuntimeFault.MALFORMED_HANDLER_NAME, "Bad handler '{}': {}".format(handler, e))

    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise RuntimeFault(
                RuntimeFault.BUILT_IN_MODULE_CONFLICT,
                "Cannot use built-in module {} as a handler module".format(modname),
            )
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise RuntimeFault(
            RuntimeFault.IMPORT_MODULE_ERROR, "Unable to import module '{}': {}".format(modname, e)
        )
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise RuntimeFault(
            RuntimeFault.USER_CODE_SYNTAX_ERROR, "Syntax error in module '{}': {}".format(modname, e), trace
        )

    try:
        return getattr(module, fname)
    except AttributeError:
        raise RuntimeFault(
            RuntimeFault.HANDLER_NOT_FOUND, "Handler '{}' missing on module '{}'".format(fname, modname)
        )


# --------------------------------------------------------------------------
# The invoke loop
# --------------------------------------------------------------------------


def _flush_std_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _set_trace_id(trace_id):
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)


def handle_invocation(client, handler, headers, body):
    global _current_request_id, _current_tenant_id
    request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
    _current_request_id = request_id
    _current_tenant_id = headers.get("Lambda-Runtime-Aws-Tenant-Id")
    _set_trace_id(headers.get("Lambda-Runtime-Trace-Id"))

    payload = None
    try:
        try:
            deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        except ValueError:
            deadline_ms = 0
        client_context = headers.get("Lambda-Runtime-Client-Context")
        client_context = _parse_json_header(client_context, "Client Context") if client_context else None
        cognito = headers.get("Lambda-Runtime-Cognito-Identity")
        cognito = _parse_json_header(cognito, "Cognito Identity") if cognito else None
        context = LambdaContext(
            request_id,
            client_context,
            cognito,
            deadline_ms,
            headers.get("Lambda-Runtime-Invoked-Function-Arn"),
            _current_tenant_id,
        )
        event = unmarshal_event(body, headers.get("Content-Type"))
        result = handler(event, context)
        response, content_type = marshal_result(result)
    except RuntimeFault as fault:
        payload = error_payload(fault.message, fault.error_type, fault.trace, request_id)
    except Exception:
        payload = payload_from_exception(sys.exc_info(), request_id)

    _flush_std_streams()
    if payload is not None:
        log_error(payload)
        client.post_error(request_id, payload)
    else:
        client.post_response(request_id, response, content_type)


def main():
    # One stdout line per record: user print() output is written a whole line at a
    # time, and anything left without a newline is flushed at the end of each invoke.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True, write_through=False)
        except Exception:
            pass

    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        _runtime_notice("AWS_LAMBDA_RUNTIME_API is not set")
        return 2
    client = RuntimeApiClient(address)
    handler_name = os.environ.get("_HANDLER", "")
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()

    setup_logging()
    setup_sys_path(task_root)

    try:
        handler = load_handler(handler_name)
    except Exception as e:
        if isinstance(e, RuntimeFault):
            payload = error_payload(e.message, e.error_type, e.trace)
        else:
            payload = payload_from_exception(sys.exc_info())
        logging.warning(_UNHANDLED_EXCEPTION_WARNING)
        _flush_std_streams()
        log_error(payload)
        try:
            client.post_init_error(payload)
        except RuntimeApiError as err:
            _runtime_notice(str(err))
        _flush_std_streams()
        return 1

    while True:
        try:
            headers, body = client.next_invocation()
        except RuntimeApiError as err:
            _runtime_notice(str(err))
            _flush_std_streams()
            return 1
        try:
            handle_invocation(client, handler, headers, body)
        except RuntimeApiError as err:
            _runtime_notice(str(err))
            _flush_std_streams()
            return 1


if __name__ == "__main__":
    sys.exit(main())
