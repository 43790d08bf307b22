"""Python functions for the Step Functions end-to-end tests: the order
workflow (validate-input, process-order, notify-success, handle-error,
notify-failure), the notification fan-out (send-email, send-sms, update-db),
the Map workflow (fetch-items, process-item) and aggregate-results.

Each function is created with its own Handler (``app.<name>``). Errors are
raised as exception classes, so Lambda reports them by ``errorType`` (the
class name) and Step Functions' Retry / Catch match them by that name.
"""

import os
import time

# Module-level state survives between invocations in one execution
# environment: process-order / process-item fail the first attempts of an
# order or item that asks for it, then succeed.
_ATTEMPTS = {}


class ValidationError(Exception):
    """An order that cannot be processed."""


class TransientError(Exception):
    """A failure that goes away when retried."""


class PaymentDeclined(Exception):
    """A failure that retrying does not fix."""


def validate_input(event, context):
    order_id = event.get("orderId")
    amount = event.get("amount")
    if not order_id:
        raise ValidationError("orderId is required")
    if not isinstance(amount, (int, float)) or amount <= 0:
        raise ValidationError(f"amount must be a positive number, got {amount!r}")
    return {**event, "validated": True}


def process_order(event, context):
    order_id = event["orderId"]
    n = _ATTEMPTS.get(("order", order_id), 0) + 1
    _ATTEMPTS[("order", order_id)] = n
    if event.get("declined"):
        raise PaymentDeclined(f"payment for {order_id} declined (attempt {n})")
    if n <= int(event.get("failTimes", 0)):
        raise TransientError(f"transient failure on attempt {n}")
    return {"orderId": order_id, "processedAmount": event["amount"], "status": "COMPLETED",
            "attempts": n}


def notify_success(event, context):
    return {"notified": "success", "orderId": event.get("orderId"), "order": event}


def handle_error(event, context):
    # Catch without ResultPath: the state input is the error output
    # {"Error": ..., "Cause": ...}.
    return {"handled": True, "error": event.get("Error"), "cause": event.get("Cause")}


def notify_failure(event, context):
    return {"notified": "failure", "error": event.get("error")}


def send_email(event, context):
    return {"channel": "email", "to": event.get("email")}


def send_sms(event, context):
    return {"channel": "sms", "to": event.get("phone")}


def update_db(event, context):
    return {"channel": "db", "orderId": event.get("orderId")}


def fetch_items(event, context):
    count = int(event.get("count", 5))
    flaky = set(event.get("flaky", []))
    run = event.get("run")
    return {"items": [{"id": i, "value": i * 10, "flaky": i in flaky, "run": run}
                      for i in range(count)]}


def process_item(event, context):
    key = ("item", event.get("run"), event["id"])
    n = _ATTEMPTS.get(key, 0) + 1
    _ATTEMPTS[key] = n
    if event.get("flaky") and n == 1:
        raise TransientError(f"item {event['id']} failed on its first attempt")
    return {"id": event["id"], "doubled": event["value"] * 2, "attempt": n}


def aggregate_results(event, context):
    results = event if isinstance(event, list) else event.get("results", [])
    return {"count": len(results), "results": results}


def slow(event, context):
    time.sleep(float(event.get("seconds", 1)))
    return {"slept": event.get("seconds", 1), "pid": os.getpid()}


def echo(event, context):
    return event
