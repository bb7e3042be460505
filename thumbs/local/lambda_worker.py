"""Lambda workers: a zygote that holds the libraries, and the warm workers forked from it.

The local runtime starts one zygote (``python -P lambda_worker.py --zygote SOCKET_FD``). It
imports the third-party libraries every handler imports (``PRELOADED``: the SDK, Pillow,
Powertools) and reads the SDK's models once, then waits. For each worker the runtime sends it
the function's handler, environment and code folder with three file descriptors (the
worker's stdin, its reply pipe and its log), and the zygote forks. The child takes only that
function's environment, its code folder as working directory and first on ``sys.path`` (as
Lambda runs a handler from /var/task), imports the handler once and serves invocations until
its stdin closes. A fork starts a worker in tens of milliseconds where a fresh interpreter
took 0.5-1 s of CPU: that is what ``serve --watch`` pays when it restarts a function, and
what a burst pays for each new worker. The handler's own modules (``functions/``) are never
in the zygote, so a restarted worker always imports the code as it is on disk.

Requests arrive as JSON lines on stdin; replies go to the reply pipe, so whatever the handler
prints (Powertools logs, EMF metrics) stays the function's log and never corrupts the protocol.

Workers run at a lower CPU priority (``NICENESS``) than the process that emulates AWS. On
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
from collections.abc import Iterator
from typing import IO, Any

NICENESS = 10  # added to the runner's: CFS then gives the runner about 9 of 10 contended time slices
# The services the pipeline's handlers call. Their first client costs a worker 0.3-0.4 s (boto3's
# import and the service models' JSON) that the handlers pay on first use, not at import.
PRIMED_SERVICES = ("s3", "dynamodb")
# What every handler imports (or its first invocation does): loaded once in the zygote, shared by its forks.
PRELOADED = (
    "boto3",
    "PIL.Image",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.utilities.typing",
    # Validate's and Record's first event: the parser's EventBridge model, and with it pydantic,
    # about 100 ms that every new worker of theirs paid on its first invocation.
    "aws_lambda_powertools.utilities.parser",
    "aws_lambda_powertools.utilities.parser.models",
    # Pillow's readers that the first Image.open loads (preinit), and the intermediate's TIFF
    "PIL.BmpImagePlugin",
    "PIL.GifImagePlugin",
    "PIL.JpegImagePlugin",
    "PIL.PngImagePlugin",
    "PIL.PpmImagePlugin",
    "PIL.TiffImagePlugin",
    "PIL.WebPImagePlugin",
)


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


def serve(handler_path: str, replies: IO[str], backstop: int) -> None:
    """Import the handler, say ready, and answer invocations from stdin until it closes."""
    import resource

    # A backstop only: the runtime enforces MemorySize on resident memory, as Lambda does.
    resource.setrlimit(resource.RLIMIT_AS, (backstop, backstop))
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


def _become(request: dict[str, Any], stdin_fd: int, log_fd: int) -> None:
    """In a fresh fork: only this function's stdin, log, environment and code folder."""
    import signal

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # not the zygote's reaper: a handler waits for its own children
    os.dup2(stdin_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(stdin_fd)
    os.close(log_fd)
    os.chdir(request["code_dir"])
    os.environ.clear()
    os.environ.update(request["environment"])
    sys.path.insert(0, request["code_dir"])


def exited_children() -> Iterator[tuple[int, int]]:
    """Reap every child that has exited, as (pid, wait status): one SIGCHLD can stand for several.

    The zygote reaps its workers with it, and the warm engine its commands' forks.
    """
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def _reap(signum: int, frame: object) -> None:
    for _ in exited_children():
        pass


def zygote(channel_fd: int) -> None:
    """Load ``PRELOADED``, then fork one worker per request until the runtime closes the channel.

    Each request is one SOCK_SEQPACKET message (JSON) with the worker's stdin, reply and log
    descriptors attached; the answer is the child's pid. The zygote reaps each child as it
    exits (on SIGCHLD), so the runtime watches a worker by its pid and its pipes, and the
    workers' CPU time reaches the runtime's own accounting (``RUSAGE_CHILDREN``) through the
    zygote, as it did when the runtime started each worker itself. Ignoring SIGCHLD would
    reap them too, but the kernel then drops their CPU time.
    """
    import signal
    import socket

    os.nice(NICENESS)  # inherited by every fork
    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a head start only: a worker meets a real import error itself
            continue
    _prime()
    signal.signal(signal.SIGCHLD, _reap)
    channel = socket.socket(fileno=channel_fd)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(channel, 1 << 20, 3)
        except OSError:
            return
        if not message:
            return  # the runtime closed its end
        request = json.loads(message)
        stdin_fd, reply_fd, log_fd = fds
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                channel.close()
                _become(request, stdin_fd, log_fd)
                serve(request["handler"], os.fdopen(reply_fd, "w", buffering=1), request["backstop"])
            except BaseException:  # noqa: BLE001 - a child must never return into the zygote's loop
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        for fd in fds:
            os.close(fd)
        channel.send(json.dumps({"pid": pid}).encode())


if __name__ == "__main__":
    if sys.argv[1:2] != ["--zygote"]:
        sys.exit("usage: python -P lambda_worker.py --zygote CHANNEL_FD (started by the local Lambda runtime)")
    zygote(int(sys.argv[2]))
