"""Functions for the asynchronous invocation tests.

Every handler prints one line the tests find with `stratus logs`:
  RUN <request id> <event json>       (handler `run`, which may fail on purpose)
  RECORD <event json>                 (handler `record`, used as a destination)
"""

import json


class OrderError(Exception):
    pass


def run(event, context):
    print("RUN " + context.aws_request_id + " " + json.dumps(event, sort_keys=True))
    if isinstance(event, dict) and event.get("fail"):
        raise OrderError(event.get("message", "order failed"))
    amount = event.get("amount", 0) if isinstance(event, dict) else 0
    return {"processedAmount": amount, "requestId": context.aws_request_id}


def record(event, context):
    print("RECORD " + json.dumps(event, sort_keys=True))
    return {"recorded": True}
