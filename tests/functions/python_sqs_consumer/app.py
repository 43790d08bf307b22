"""SQS consumer for stratus's event source mapping tests.

``app.handler`` receives the SQS event Lambda sends (``Records[]``) and
forwards each record, as JSON, to the queue named by the environment
variable ``SINK_QUEUE_URL`` (a json-protocol ``SendMessage`` posted with
urllib to ``AWS_ENDPOINT_URL``, so the function needs no SDK) with the
number of records of the invoke in the message attribute ``batch-size``.
Then, by ``MODE``:

* ``ok`` (default) -- succeeds;
* ``report`` -- answers ``batchItemFailures`` naming every record whose
  body starts with ``fail`` (for ``ReportBatchItemFailures``);
* ``raise`` -- raises when any body starts with ``fail``.
"""

import json
import os
import urllib.request


def _forward(record, batch_size):
    url = os.environ["SINK_QUEUE_URL"]
    # The endpoint stratus gives functions, else the queue URL's own.
    base = os.environ.get("AWS_ENDPOINT_URL") or "/".join(url.split("/", 3)[:3])
    req = urllib.request.Request(
        base + "/",
        data=json.dumps({
            "QueueUrl": url,
            "MessageBody": json.dumps(record),
            "MessageAttributes": {"batch-size": {"DataType": "Number", "StringValue": str(batch_size)}},
        }).encode(),
        method="POST",
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "AmazonSQS.SendMessage",
        },
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()


def handler(event, context):
    records = event.get("Records", [])
    for r in records:
        _forward(r, len(records))
    mode = os.environ.get("MODE", "ok")
    failing = [r for r in records if r.get("body", "").startswith("fail")]
    if mode == "report":
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in failing]}
    if mode == "raise" and failing:
        raise RuntimeError(f"{len(failing)} record(s) failed")
    return {"processed": len(records)}
