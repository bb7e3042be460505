"""One warm Lambda worker: imports the handler once, then serves invocations until told to stop.

Run by the local runtime as a plain script
(``python -P lambda_worker.py module.function REPLY_FD ADDRESS_SPACE_LIMIT``) with
the function's code folder as its working directory and on ``PYTHONPATH``, and only that
function's environment, as Lambda runs a handler from /var/task. Requests arrive as JSON
lines on stdin; replies go to the file descriptor REPLY_FD, so whatever the handler prints
(Powertools logs, EMF metrics) stays the function's log and never corrupts the protocol.

A worker runs at a lower CPU priority (``NICENESS``) than the process that emulates AWS. On
AWS a function never slows S3, DynamoDB or Step Functions down; here they share the cores,
and under a burst of uploads CPU-bound Resize workers could starve the emulated services
until a Record waiting on DynamoDB passed its timeout. A lower priority lets the services
answer first and costs no throughput: the workers still get every core nothing else wants.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any

NICENESS = 10  # added to the runner's: CFS then gives the runner about 9 of 10 contended time slices
# The services the pipeline's handlers call. Their first client costs a worker 0.3-0.4 s (boto3's
# import and the service models' JSON) that the handlers pay on first use, not at import.
PRIMED_SERVICES = ("s3", "dynamodb")


class Context:
    """The attributes and method of Lambda's context object that handlers and Powertools read."""

    def __init__(self, request_id: str, deadline: float) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{self.function_name}"
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(type(exc), exc, exc.__traceback__)[-8:],
    }


def _prime() -> None:
    """Make and drop one SDK client per service before saying ready, so the first invocation does not.

    A handler makes its clients on first use (``awsio.aws_client``), and on AWS a cold start pays
    that inside the first invocation. Here a worker is started ahead of need: at ``thumbs run``'s
    start, while the stack deploys, and at once when ``serve --watch`` restarts a function. Paying
    the SDK's cost then keeps it off the upload's path. The dropped client leaves its models in the
    default session's loader, which the handler's own ``boto3.client`` call then reads from memory.
    The handler sees nothing of this: its first client is still its own.
    """
    try:
        import boto3

        for service in PRIMED_SERVICES:
            boto3.client(service)
    except Exception:  # noqa: BLE001 - priming is only a head start; the handler meets any real error itself
        return


def main() -> None:
    import resource

    handler_path, reply_fd, backstop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # A backstop only: the runtime enforces MemorySize on resident memory, as Lambda does.
    resource.setrlimit(resource.RLIMIT_AS, (backstop, backstop))
    os.nice(NICENESS)
    replies = os.fdopen(reply_fd, "w", buffering=1)
    init_error: dict[str, Any] | None = None
    try:
        module_name, function_name = handler_path.rsplit(".", 1)
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:  # noqa: BLE001 - reported on every invocation, as Runtime.ImportModuleError
        init_error = _error(exc, "Runtime.ImportModuleError")
    if init_error is None:
        _prime()
    replies.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if init_error is not None:
            reply = {"ok": False, "payload": json.dumps(init_error)}
        else:
            try:
                context = Context(request["request_id"], request["deadline"])
                result = handler(json.loads(request["payload"]), context)
                reply = {"ok": True, "payload": json.dumps(result)}
            except MemoryError as exc:
                reply = {"ok": False, "payload": json.dumps(_error(exc, "Runtime.OutOfMemory")), "fatal": True}
            except Exception as exc:  # noqa: BLE001 - a handler error is the invocation's result
                reply = {"ok": False, "payload": json.dumps(_error(exc))}
        sys.stdout.flush()
        sys.stderr.flush()
        replies.write(json.dumps(reply) + "\n")
        if reply.get("fatal"):
            return


if __name__ == "__main__":
    main()
