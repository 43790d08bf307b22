"""A small in-process mock of the Lambda Runtime API, for testing the bootstraps.

It serves a queue of events on GET /2018-06-01/runtime/invocation/next (long
polling: the request waits until an event is queued) and records what the
runtime posts to .../response, .../error and /init/error.

    api = MockRuntimeApi()
    api.start()                       # listens on 127.0.0.1:<free port>
    rid = api.push({"key": "value"})  # queue an event; returns its request id
    res = api.wait_result(rid)        # Result(kind="response"|"error", body, headers)
    api.stop()

Standard library only.
"""

import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


class Result(object):
    def __init__(self, kind, body, headers):
        self.kind = kind  # "response" | "error" | "init_error"
        self.body = body  # raw bytes
        self.headers = headers  # dict with lower-case names

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "Result({}, {!r}, {!r})".format(self.kind, self.body[:300], self.headers)


class MockRuntimeApi(object):
    def __init__(self, max_response_bytes=None, deadline_ms=3000):
        self.max_response_bytes = max_response_bytes
        self.deadline_ms = deadline_ms
        self._cond = threading.Condition()
        self._queue = []  # pending (request_id, body bytes, headers dict)
        self._results = {}  # request_id -> Result
        self.init_error = None  # Result of POST /init/error
        self.next_calls = 0
        self.rejected = []  # request ids whose response was answered 413
        self._stopping = False
        self._server = None
        self._thread = None

    # -- control ---------------------------------------------------------

    @property
    def address(self):
        host, port = self._server.server_address[:2]
        return "{}:{}".format(host, port)

    def start(self):
        api = self

        class Handler(_Handler):
            mock = api

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self):
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def push(self, event, request_id=None, headers=None, raw=None, deadline_ms=None):
        """Queue an event (JSON-serialised unless raw bytes are given)."""
        request_id = request_id or str(uuid.uuid4())
        body = raw if raw is not None else json.dumps(event).encode("utf-8")
        deadline = int(time.time() * 1000) + (self.deadline_ms if deadline_ms is None else deadline_ms)
        h = {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:fixture",
            "Lambda-Runtime-Trace-Id": "Root=1-5e1b4151-43a0913a12345678901234567;Parent=365fb4b15f5bba36;Sampled=1",
            "Content-Type": "application/json",
        }
        for k, v in (headers or {}).items():
            if v is None:
                h.pop(k, None)
            else:
                h[k] = v
        with self._cond:
            self._queue.append((request_id, body, h))
            self._cond.notify_all()
        return request_id

    def wait_result(self, request_id, timeout=10.0):
        end = time.time() + timeout
        with self._cond:
            while request_id not in self._results:
                left = end - time.time()
                if left <= 0:
                    raise TimeoutError("no result for {} within {}s".format(request_id, timeout))
                self._cond.wait(left)
            return self._results[request_id]

    def wait_init_error(self, timeout=10.0):
        end = time.time() + timeout
        with self._cond:
            while self.init_error is None:
                left = end - time.time()
                if left <= 0:
                    raise TimeoutError("no init error within {}s".format(timeout))
                self._cond.wait(left)
            return self.init_error

    def wait_next_calls(self, n, timeout=10.0):
        end = time.time() + timeout
        with self._cond:
            while self.next_calls < n:
                left = end - time.time()
                if left <= 0:
                    raise TimeoutError("runtime made {} /next calls, expected {}".format(self.next_calls, n))
                self._cond.wait(left)

    # -- called by the handler -----------------------------------------

    def _take(self):
        with self._cond:
            self.next_calls += 1
            self._cond.notify_all()
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            return self._queue.pop(0)

    def _record(self, request_id, result):
        with self._cond:
            self._results[request_id] = result
            self._cond.notify_all()

    def _record_init_error(self, result):
        with self._cond:
            self.init_error = result
            self._cond.notify_all()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A runtime killed by a test drops its connections; that is not an error.
        if isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mock = None  # set by MockRuntimeApi.start

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _read_body(self):
        """The request body; trailers of a chunked body are stored in self.trailers."""
        self.trailers = {}
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        line = self.rfile.readline()
                        if line in (b"\r\n", b"\n", b""):
                            return data
                        name, _, value = line.decode("latin-1").partition(":")
                        self.trailers[name.strip().lower()] = value.strip()
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path != PREFIX + "/invocation/next":
            return self._send(404, b'{"errorType":"NotFound"}', {"Content-Type": "application/json"})
        item = self.mock._take()
        if item is None:
            return self._send(410, b'{"errorType":"EnvironmentShutdown"}', {"Content-Type": "application/json"})
        _rid, body, headers = item
        self._send(200, body, headers)

    def do_POST(self):
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        headers.update(self.trailers)
        accepted = (202, b'{"status":"OK"}', {"Content-Type": "application/json"})
        if self.path == PREFIX + "/init/error":
            self.mock._record_init_error(Result("init_error", body, headers))
            return self._send(*accepted)
        parts = self.path[len(PREFIX):].split("/")  # ['', 'invocation', id, kind]
        if len(parts) == 4 and parts[1] == "invocation" and parts[3] in ("response", "error"):
            rid, kind = parts[2], parts[3]
            limit = self.mock.max_response_bytes
            if kind == "response" and limit is not None and len(body) > limit:
                self.mock.rejected.append(rid)
                msg = "Response payload size ({} bytes) exceeded maximum allowed payload size ({} bytes).".format(
                    len(body), limit
                )
                doc = json.dumps({"errorMessage": msg, "errorType": "RequestEntityTooLarge"}).encode()
                self.mock._record(rid, Result("rejected", body, headers))
                return self._send(413, doc, {"Content-Type": "application/json"})
            self.mock._record(rid, Result(kind, body, headers))
            return self._send(*accepted)
        self._send(404, b'{"errorType":"NotFound"}', {"Content-Type": "application/json"})
