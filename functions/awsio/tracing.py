"""Tracing: Lambda's own active tracing always; the X-Ray SDK's per-call subsegments only on request.

With ``Tracing: Active`` Lambda records every invocation itself: its segment, with the
Initialization (a cold start), Invocation and Overhead subsegments, joined to the Step Functions
execution's trace. That needs nothing in the function. The X-Ray SDK adds a subsegment per AWS
call (each S3 GET and PUT, each DynamoDB write, with its latency and error), a ``ColdStart``
annotation, and the handler's exception as metadata. But loading it (Powertools' Tracer, which
patches botocore) takes 250-550 ms of every cold import (benchmarks/cold_start.py); each handler makes two
to six AWS calls, whose latency the function's own metrics (``StageMillis``) already report.
So it loads only when ``TRACE_AWS_CALLS`` is ``true`` (``trace_aws_calls`` in ``cdk.json``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

Handler = TypeVar("Handler", bound=Callable[..., Any])


def aws_call_tracing_enabled() -> bool:
    return os.environ.get("TRACE_AWS_CALLS", "false").lower() == "true"


def traced(handler: Handler) -> Handler:
    """``handler`` as is, or wrapped by Powertools' Tracer when AWS-call subsegments are asked for.

    Decided once, at import: the cold start pays for the SDK only when it is used.
    """
    if not aws_call_tracing_enabled():
        return handler
    from aws_lambda_powertools import Tracer  # imports aws_xray_sdk and patches botocore

    return Tracer().capture_lambda_handler(handler)
