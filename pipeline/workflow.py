"""The state machine: Validate, a Map of Resize (one iteration per size), Record.

    Validate ──► Thumbnails (Map: Resize per size) ──► Record
       │ rejection            │ rejection
       └──────────────► RecordRejected ──► Rejected (Succeed)

Only uploads start it. A deletion goes by a rule of its own straight to Record, which marks
the record DELETED and removes the thumbnails (``stack.py``): so an upload does not pay a
Choice's transition to tell the two apart, and a deletion pays no transition at all.

Error model:
* Lambda service errors and our ``TransientError`` are retried with capped, fully jittered
  exponential backoff; timeouts and out-of-memory get one more try. Rejections never retry.
* Lambda throttles have a retrier of their own, long enough to outlast a burst (``THROTTLE_RETRY``).
* Rejections (a bad image) are caught and recorded as REJECTED; the execution SUCCEEDS,
  because a bad upload is a handled outcome, not an outage.
* Anything else is deliberately NOT caught: the execution fails at the state that failed,
  so RedriveExecution resumes there. The FAILED record comes from the execution's status
  change event (see ``stack.py``), not from a Catch: a Catch into a Fail state would make
  redrive restart at that Fail state and never finish the job.
* EXPRESS workflows (``workflow_type``) emit no status-change events and cannot be redriven,
  so for them only, every task also catches ``States.ALL`` into RecordFailed and a Fail state.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from awsio import CAUGHT_REJECTIONS, TransientError
from constructs import Construct

LAMBDA_SERVICE_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
)
TRANSIENT_ERRORS = (*LAMBDA_SERVICE_ERRORS, TransientError.__name__)
# A throttle is Lambda saying "not now", not "broken": a burst of uploads past the account's (or a
# function's reserved) concurrency throttles for as long as the backlog takes to drain, minutes
# for tens of thousands of uploads. Its own retrier waits that out: attempts spread by full
# jitter over about 27 minutes on average (55 at most), where the transient policy gives up
# within 15 s. Unused, the budget costs nothing; `thumbs burst` simulates a burst against it,
# and docs/bursts.md has the figures that sized it.
THROTTLE = "Lambda.TooManyRequestsException"
THROTTLE_RETRY = {"interval_seconds": 1, "backoff_rate": 2.0, "max_delay_seconds": 60, "max_attempts": 60}
# A function timeout or an out-of-memory kill may be a passing slowness; a second try is cheap.
RUNTIME_ERRORS = ("Sandbox.Timedout", "States.Timeout", "Runtime.OutOfMemory")


def invoke(
    scope: Construct, name: str, function: lambda_.IFunction, payload: dict[str, object], **kwargs: object
) -> tasks.LambdaInvoke:
    """A Lambda task with the pipeline's retry policy (see the module docstring); the Backfill's Plan uses it too."""
    task = tasks.LambdaInvoke(
        scope,
        name,
        lambda_function=function,
        payload=sfn.TaskInput.from_object(payload),
        payload_response_only=True,
        retry_on_service_exceptions=False,
        **kwargs,
    )
    task.add_retry(
        errors=[THROTTLE],
        interval=Duration.seconds(THROTTLE_RETRY["interval_seconds"]),
        backoff_rate=THROTTLE_RETRY["backoff_rate"],
        max_attempts=THROTTLE_RETRY["max_attempts"],
        max_delay=Duration.seconds(THROTTLE_RETRY["max_delay_seconds"]),
        jitter_strategy=sfn.JitterType.FULL,
    )
    task.add_retry(
        errors=list(TRANSIENT_ERRORS),
        interval=Duration.seconds(1),
        backoff_rate=2.0,
        max_attempts=4,
        max_delay=Duration.seconds(20),
        jitter_strategy=sfn.JitterType.FULL,
    )
    task.add_retry(
        errors=list(RUNTIME_ERRORS),
        interval=Duration.seconds(2),
        backoff_rate=2.0,
        max_attempts=1,
        jitter_strategy=sfn.JitterType.FULL,
    )
    return task


def build_definition(
    scope: Construct,
    *,
    validate: lambda_.IFunction,
    resize: lambda_.IFunction,
    record: lambda_.IFunction,
    max_concurrency: int,
    catch_all: bool = False,
) -> sfn.IChainable:
    """The chain of states; the stack wraps it in a StateMachine with logging and tracing.

    ``catch_all`` is for EXPRESS only (see the module docstring): it trades redrive, which
    Express does not have anyway, for a FAILED record written by the run itself.
    """
    execution = sfn.JsonPath.execution_id
    original_event = sfn.JsonPath.object_at("$$.Execution.Input")

    validate_task = invoke(
        scope,
        "Validate",
        validate,
        {"event": sfn.JsonPath.object_at("$"), "execution_arn": execution},
        result_path="$.image",
    )
    resize_task = invoke(
        scope,
        "Resize",
        resize,
        {
            "bucket": sfn.JsonPath.string_at("$.bucket"),
            "key": sfn.JsonPath.string_at("$.key"),
            "size": sfn.JsonPath.number_at("$.size"),
            "etag": sfn.JsonPath.string_at("$.etag"),
            "version_id": sfn.JsonPath.string_at("$.version_id"),
            "sequencer": sfn.JsonPath.string_at("$.sequencer"),
            "event_time": sfn.JsonPath.string_at("$.event_time"),
            "work_key": sfn.JsonPath.string_at("$.work_key"),
            "target": sfn.JsonPath.object_at("$.target"),
            "execution_arn": execution,
        },
    )
    thumbnails = sfn.Map(
        scope,
        "Thumbnails",
        items_path="$.image.targets",
        item_selector={
            "bucket": sfn.JsonPath.string_at("$.image.bucket"),
            "key": sfn.JsonPath.string_at("$.image.key"),
            "size": sfn.JsonPath.number_at("$.image.size"),
            "etag": sfn.JsonPath.string_at("$.image.etag"),
            "version_id": sfn.JsonPath.string_at("$.image.version_id"),
            "sequencer": sfn.JsonPath.string_at("$.image.sequencer"),
            "event_time": sfn.JsonPath.string_at("$.image.event_time"),
            "work_key": sfn.JsonPath.string_at("$.image.work_key"),
            "target": sfn.JsonPath.object_at("$$.Map.Item.Value"),
        },
        max_concurrency=max_concurrency,
        result_path="$.thumbnails",
    ).item_processor(resize_task)

    record_task = invoke(
        scope,
        "Record",
        record,
        {
            "status": "SUCCEEDED",
            "event": original_event,
            "image": sfn.JsonPath.object_at("$.image"),
            "thumbnails": sfn.JsonPath.object_at("$.thumbnails"),
            "execution_arn": execution,
        },
        result_path=sfn.JsonPath.DISCARD,
    )
    record_rejected_task = invoke(
        scope,
        "RecordRejected",
        record,
        {
            "status": "REJECTED",
            "event": original_event,
            "error": sfn.JsonPath.object_at("$.error"),
            "execution_arn": execution,
        },
        result_path=sfn.JsonPath.DISCARD,
    )
    record_rejected = record_rejected_task.next(
        sfn.Succeed(scope, "Rejected", comment="A bad upload is a handled outcome: recorded, not failed.")
    )

    validate_task.add_catch(record_rejected, errors=list(CAUGHT_REJECTIONS), result_path="$.error")
    thumbnails.add_catch(record_rejected, errors=list(CAUGHT_REJECTIONS), result_path="$.error")
    if catch_all:
        record_failed = invoke(
            scope,
            "RecordFailed",
            record,
            {
                "status": "FAILED",
                "event": original_event,
                "error": sfn.JsonPath.object_at("$.error"),
                "execution_arn": execution,
            },
            result_path=sfn.JsonPath.DISCARD,
        ).next(
            sfn.Fail(
                scope,
                "Failed",
                comment="Recorded FAILED; replay with thumbs replay",
                error_path="$.error.Error",
                cause_path="$.error.Cause",
            )
        )
        for task in (validate_task, thumbnails, record_task, record_rejected_task):
            task.add_catch(record_failed, errors=["States.ALL"], result_path="$.error")  # after the rejections
    return validate_task.next(thumbnails).next(record_task)
