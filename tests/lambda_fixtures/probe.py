"""Handlers for testing the local Lambda runtime itself: they report what a worker sees."""

import contextlib
import os
import sys
import time

IMPORTED_AT = time.time()  # a warm worker imports this once
LOADED_BEFORE = set(sys.modules)  # what the worker held before it imported its handler


def echo(event, context):
    started = time.time()
    time.sleep(event.get("sleep", 0))
    return {
        "pid": os.getpid(),
        "parent": os.getppid(),
        "niceness": os.nice(0),
        "imported_at": IMPORTED_AT,
        "env": {name: os.environ.get(name) for name in event.get("env", [])},
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function_name": context.function_name,
        "started": started,
        "ended": time.time(),
    }


def allocate(event, context):
    block = bytearray(event["mb"] * 1024 * 1024)
    for offset in range(0, len(block), 4096):  # touch every page: resident, not just reserved
        block[offset] = 1
    return {"allocated_mb": event["mb"]}


def fail(event, context):
    raise ValueError("boom")


def touch(event, context):
    from pathlib import Path

    with Path(event["path"]).open("a") as out:
        out.write(f"{time.time()}\n")
    return {"touched": event["path"]}


def sdk(event, context):
    """What the SDK holds before the handler made any client: the worker's priming, or nothing."""
    import sys

    boto3 = sys.modules.get("boto3")
    session = boto3.DEFAULT_SESSION if boto3 is not None else None
    cached = session._loader._cache if session is not None else {}  # botocore's loader: models read so far
    return {"services": sorted({key[1] for key in cached if key[0] == "load_service_model"})}


def loaded(event, context):
    """Which of the named modules the worker held before importing this handler (the zygote's preload)."""
    return {"loaded": sorted(name for name in event["modules"] if name in LOADED_BEFORE)}


class _Unsent(Exception):
    pass


def sdk_settings(event, context):
    """How a handler's S3 client signs a PUT and which S3 settings it took, without sending anything."""
    import boto3

    s3 = boto3.client("s3")
    seen = {}

    def stop(request, **kwargs):
        seen["content_sha256"] = request.headers["x-amz-content-sha256"].decode()
        seen["url"] = request.url
        raise _Unsent

    s3.meta.events.register("before-send.s3", stop)
    with contextlib.suppress(_Unsent):
        s3.put_object(Bucket="bucket", Key="key", Body=b"x" * 1000)
    return {**seen, "s3": s3.meta.config.s3 or {}}
