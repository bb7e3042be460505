"""Every touch of moto's private internals, in one small module, each with a contract test.

moto gives the embedded default its in-process AWS (S3, DynamoDB, EventBridge, SQS and Step
Functions with LocalStack's state-machine interpreter). What it does not do the way AWS
does, or does slowly, is supplied here:

1. Lambda ``Invoke`` would need Docker: it is routed to the local Lambda runtime.
2. EventBridge cannot deliver to Step Functions or Lambda targets: those targets are
   delivered here (StartExecution as its API handler runs it, 18; Lambda as an async invocation).
3. S3's EventBridge event has a fixed sequencer, a numeric ``time`` and ``eTag`` spelled
   unlike AWS: the event is built here as AWS sends it, with an increasing sequencer.
4. Executions do not emit "Step Functions Execution Status Change" events: they are put
   on the default bus here when an execution ends.
5. The server finds the backend for every request by listing moto's package folder and
   trying hundreds of URL patterns, under one lock: the answer per host is cached here.
6. The interpreter builds a new JSONPath parser (PLY tables and all) for every path it
   evaluates: parsed paths are cached here (they are immutable; ``find`` does not change them).
7. Every execution re-parses the definition with ANTLR (about 80 ms under load) and builds its
   components from the tree (about a tenth of the serve's time): the program is built once per
   definition and shared. Its components hold no evaluation state (each execution's is in its
   Environment; moto already shares one Map's iteration program between iterations); their
   lazy ``heap_key`` is assigned up front, and redrive changes StartAt on a copy.
8. Every Task builds a new boto3 client (service model from JSON, about 35 ms): clients are
   reused per region, service and server port; boto3 clients are thread-safe. A Lambda task
   waits for a free worker of its function (``admitted``) before it sends its Invoke, so
   queued invocations wait in the interpreter, not as open connections to the server. A
   synchronous Invoke of the stack's own function goes to the local runtime directly,
   answered as boto3 answers it, instead of as a loopback request through moto's Lambda.
9. An operation moto does not implement raises NotImplementedError, which the server turns
   into an HTML "500 Internal Server Error" page: it is answered here as AWS answers, an
   error with a code and a message in the service's own protocol (HTTP 501, not retried).
   moto's S3 answers a subresource it does not know as the plain bucket or object call (a
   ``DELETE ?analytics`` would delete the bucket): those are refused by name first.
10. moto has no RedriveExecution: it is added here with AWS's semantics. The execution
    resumes at the state that failed, with the input that state had, under the same ARN;
    the history keeps its events and adds ``ExecutionRedriven``; a Map that failed reruns
    only the iterations that did not succeed (11); DescribeExecution and ListExecutions
    report ``redriveCount``, ``redriveDate`` and ``redriveStatus``.
11. A Map's iterations run through one worker method: during a redrive, an iteration that
    succeeded before is answered from its recorded output instead of running again.
12. Executions live only in moto's memory: one that moto does not know (an earlier
    process's) is restored on first reference from what ``load_execution`` returns, and
    ListExecutions includes what ``stored_executions`` lists, so nothing is loaded at start.
13. moto keeps every object in memory: a bucket's key store is replaced by one over
    ``thumbs/local/store.py`` (SQLite rows and blobs). Keys are read from it when a request
    needs them; what a request changed is written when it ends (``flush_request``), because
    moto edits a key after putting it in place (CopyObject sets the metadata then).
14. The same for a table's items (``Table.items``, hash-key tables): an UpdateItem edits the
    item it read, so items a request touched are written back when it ends.

15. moto's Distributed Map runs its items, but its grammar has no ``ItemBatcher`` and reads
    no whole-number ``ToleratedFailurePercentage`` (CDK writes ``5``), it never applies the
    tolerated failures, its ListObjectsV2 reader reads one page and fails on an empty one,
    and its ResultWriter writes an empty manifest. Here: those fields are taken out of the
    definition before moto parses it and kept on the Map's component (7 parses); the Map
    Run batches its items, counts items and child executions as AWS does, fails with
    ``States.ExceedToleratedFailureThreshold`` past the tolerance; the reader lists every
    page, each item shaped as AWS sends it; the ResultWriter writes the manifest and the
    ``SUCCEEDED_n.json``/``FAILED_n.json`` files with each child's input, output or error.
16. moto's port dropped the request and response shaping of service integrations, so a
    ``states:startExecution`` task sends ``Input`` where boto3 wants ``input`` and reads
    ``ExecutionArn`` from a response that has ``executionArn``: every StartExecution task,
    ``.sync:2`` included, fails. Both are shaped here from the Step Functions API model,
    as AWS shapes them (parameters in, PascalCase fields out), and an unnamed execution
    gets a UUID as on AWS (moto names every one "None"). A ``.sync`` task waits for the
    child's end (4 signals it) instead of describing it every half second: a backfill's
    hundreds of waiting tasks would otherwise keep the server busy answering them.
17. Importing the interpreter imports moto's EC2, whose region list asks three new boto3
    sessions for regions, each parsing endpoints.json again (about 1 s of every start): one
    session answers them while that module imports.
18. Saving an ended execution read it through DescribeExecution and GetExecutionHistory,
    and moto's generic serializer spent more of the server's one GIL on a history than the
    pipeline's images took: the execution and its events are read from the interpreter's
    objects, shaped as the API returns them. EventBridge's StartExecution (2) calls the
    backend as the API handler does, without a loopback request.
19. moto keeps every execution in memory for the life of the process: once saved, an ended
    one is dropped, and restored from its file when a request names it (12). One that ran a
    Distributed Map stays: its Map Runs (DescribeMapRun, ListMapRuns) exist only in memory.
20. moto also keeps every model instance it ever made (``instances_tracked``: each S3 key
    read or written with its buffer, each item, each execution's copy of its state machine)
    and every interpreter thread: a run of 1,000 uploads held them all. Model classes track
    their instances weakly (an S3 key closes its buffer when collected, without moto's
    warning for keys a reset missed), and finished interpreter threads are let go.

21. moto checks a write's conditions (``If-Match``, ``If-None-Match: *``) on PutObject only,
    and its CopyObject puts the new key in place before it sets the key's metadata: a HEAD in
    between could see a thumbnail without its ``source-sequencer``, which Record would take for
    nobody's. Here CopyObject checks the destination's conditions, and
    a copy (check, write, metadata) and every HeadObject and GetObject run under one lock: a
    copy is whole when anyone sees it, as on AWS, and of two runs publishing the same
    thumbnail only one can replace what it looked at (Record).

22. The warm engine (``thumbs/local/engine.py``) imports moto once per user and forks a command
    from it: what a stack's start imports is imported here, without a backend made or a
    thread started, and the first ANTLR parse (which builds the grammar's lookahead tables,
    shared by later parses) runs here on a definition with the stack's kinds of state.

moto is pinned (``MOTO_VERSION``); ``tests/test_moto_internals.py`` fails loudly on an
upgrade that moves any of these seams.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

import moto

from .lambda_runtime import THROTTLE_ERROR, Throttled, lambda_error

MOTO_VERSION = "5.2.5"

# (payload, function_error) -> what Lambda's Invoke returns: FunctionError "Unhandled" on failure.
LambdaInvoker = Callable[[str, bytes], tuple[bytes, str | None]]
Admission = Callable[[str], Any]  # function name -> a context manager held while the task invokes it
AsyncLambdaInvoker = Callable[[str, bytes], None]
StartExecution = Callable[[str, str], None]
ExecutionEnded = Callable[[str, str, dict[str, Any]], None]
# An execution saved by an earlier process (describe_execution's fields, ``events`` and
# ``definition``), or None; and the summaries of every saved execution of a state machine.
LoadExecution = Callable[[str], "dict[str, Any] | None"]
StoredExecutions = Callable[[str], "list[dict[str, Any]]"]

REDRIVE_WINDOW = datetime.timedelta(days=14)  # AWS: a failed execution can be redriven for 14 days
MAX_REDRIVES = 1000
REDRIVABLE_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")

_installed: dict[str, Any] = {}
_awaited_ends: dict[str, threading.Event] = {}  # execution ARN -> set when it ends (16 waits, 4 sets)
MAX_RESPONSE_BYTES = 6_291_556  # Lambda's synchronous response payload limit
SYNC_WAIT_SECONDS = 60.0  # a .sync task re-checks this often even unsignalled (the signal comes at the end)
_sequence = itertools.count(1)
_sequence_lock = threading.Lock()


def check_version() -> None:
    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(
            f"the local stack is built against moto {MOTO_VERSION}, found {moto.__version__}; "
            "update thumbs/local/moto_internals.py and its contract tests before moving the pin"
        )


def enable_execution() -> None:
    """Turn on moto's Step Functions interpreter (``execute_state_machine``) for this process."""
    from moto.core.config import default_user_config

    default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True
    _import_ec2_regions()


# 22. What the warm engine imports before it forks ---------------------------------------------
# The services a local stack calls (moto package names), and a definition with every kind of
# state and field the stack's state machines use, for ANTLR's lookahead tables.
PRELOADED_SERVICES = ("s3", "dynamodb", "stepfunctions", "events", "sqs", "iam", "logs", "awslambda", "sts")
# The AWS APIs a local stack calls (the deploy's clients, in its order): moto routes and answers them.
STACK_APIS = ("s3", "dynamodb", "events", "stepfunctions", "sqs", "lambda", "iam")
WARM_DEFINITION = {
    "StartAt": "Choose",
    "States": {
        "Choose": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.detail.object.key", "StringMatches": "*.jpg", "Next": "Work"}],
            "Default": "Done",
        },
        "Work": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "f", "Payload.$": "$", "Name.$": "States.Format('{}', $.id)"},
            "ResultSelector": {"out.$": "$.Payload"},
            "ResultPath": "$.work",
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 2}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
            "Next": "Each",
        },
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.sizes",
            "MaxConcurrency": 4,
            "ItemSelector": {"size.$": "$$.Map.Item.Value"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "One",
                "States": {"One": {"Type": "Pass", "End": True}},
            },
            "ResultPath": "$.each",
            "Next": "Done",
        },
        "Failed": {"Type": "Fail", "Error": "Failed", "Cause": "failed"},
        "Done": {"Type": "Succeed"},
    },
}


def preload() -> None:
    """Import what a local stack's start imports, and parse one definition, changing nothing.

    No backend is created and no thread started: the engine forks after this, and a fork
    copies only the forking thread. Nothing is patched either (``install`` runs in each fork).
    """
    import importlib

    _import_ec2_regions()
    from moto.core.base_backend import AccountSpecificBackend
    from moto.core.routing import get_service_router
    from moto.core.utils import get_service_model
    from moto.moto_server import werkzeug_app  # noqa: F401
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    for service in PRELOADED_SERVICES:
        importlib.import_module(f"moto.{service}.models")
        importlib.import_module(f"moto.{service}.responses")
        importlib.import_module(f"moto.{service}.urls")
    # moto reads each API's model to route and answer, and builds a router per protocol: both
    # are kept for the process. A backend lists its regions through one SDK session, also kept.
    regions = AccountSpecificBackend.get_session()
    for partition in regions.get_available_partitions():
        regions.get_available_regions("s3", partition_name=partition)
    for api in STACK_APIS:
        model = get_service_model(api)
        for protocol in model.metadata.get("protocols") or [model.protocol]:
            try:
                get_service_router(api)._get_router(protocol)
            except Exception:  # noqa: BLE001 - a protocol moto routes no other way (NotFound): nothing to build
                continue
    AmazonStateLanguageParser.parse(json.dumps(WARM_DEFINITION))


# 17. moto's EC2 regions, read once at import ------------------------------------------------------
def _import_ec2_regions() -> None:
    """Import moto's EC2 region list with one boto3 session instead of three.

    The interpreter imports moto's Batch integration, which imports EC2, whose region class
    body asks a new boto3 ``Session()`` for the regions of three partitions: each one parses
    endpoints.json again (about 1 s of a start). While that module imports, the question
    goes to one session; the answers are the same lists (a contract test compares them).
    """
    import sys

    if "moto.ec2.models.availability_zones_and_regions" in sys.modules:
        return
    import boto3

    original = boto3.Session.get_available_regions
    shared = boto3.Session()
    answers: dict[tuple[Any, ...], list[str]] = {}

    def get_available_regions(self: Any, *args: Any, **kwargs: Any) -> list[str]:
        key = (args, tuple(sorted(kwargs.items())))
        if key not in answers:
            answers[key] = original(shared, *args, **kwargs)
        return answers[key]

    boto3.Session.get_available_regions = get_available_regions
    try:
        import moto.ec2.models.availability_zones_and_regions  # noqa: F401
    finally:
        boto3.Session.get_available_regions = original


def next_sequencer() -> str:
    """An S3-style sequencer that grows with every event of this process (hex, as S3 sends it)."""
    with _sequence_lock:
        value = next(_sequence)
    now = int(datetime.datetime.now(datetime.UTC).timestamp() * 1_000_000)
    return f"{now:016X}{value:08X}"


def install(
    *,
    invoke: LambdaInvoker,
    invoke_async: AsyncLambdaInvoker,
    start_execution: StartExecution,
    execution_ended: ExecutionEnded,
    load_execution: LoadExecution | None = None,
    stored_executions: StoredExecutions | None = None,
    admitted: Admission | None = None,
    local_function: Callable[[str], bool] | None = None,
) -> None:
    """Patch the seams. Idempotent: a second call replaces the callbacks.

    ``local_function(name)`` says whether ``invoke`` runs that function: the interpreter then
    invokes it directly (8) instead of through moto's Lambda API.
    """
    import contextlib

    check_version()
    _installed.update(
        admitted=admitted or (lambda name: contextlib.nullcontext()),
        local_function=local_function or (lambda name: False),
        invoke=invoke,
        invoke_async=invoke_async,
        start_execution=start_execution,
        execution_ended=execution_ended,
        load_execution=load_execution or (lambda arn: None),
        stored_executions=stored_executions or (lambda state_machine_arn: []),
    )
    if _installed.get("patched"):
        return
    _patch_lambda_invoke()
    _patch_rule_targets()
    _patch_s3_eventbridge()
    _patch_execution_end()
    _patch_backend_lookup()
    _patch_json_path_parsing()
    _patch_definition_parsing()
    _patch_interpreter_clients()
    _patch_redrive()
    _patch_map_iterations()
    _patch_stored_executions()
    _patch_distributed_map()
    _patch_start_execution_task()
    _patch_conditional_copy()
    _installed["patched"] = True


# 1. Lambda Invoke -> local runtime -------------------------------------------------------------
def _patch_lambda_invoke() -> None:
    from moto.awslambda.models import LambdaBackend

    def invoke(
        self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        fn = self.get_function(function_name, qualifier)
        payload = body if isinstance(body, bytes) else (body or "{}").encode()
        try:
            result, function_error = _installed["invoke"](fn.function_name, payload)
        except Throttled as exc:  # Lambda's 429, which boto3 raises as TooManyRequestsException
            raise _too_many_requests(str(exc), exc.reason) from None
        if function_error:
            response_headers["x-amz-function-error"] = function_error
        response_headers["Content-Length"] = str(len(result))
        return result

    LambdaBackend.invoke = invoke


def _too_many_requests(message: str, reason: str) -> Exception:
    """Lambda's throttle answer: HTTP 429 TooManyRequestsException, with the reason in the body as Lambda sends it."""
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError("TooManyRequestsException", message)
    error.code = 429
    error.description = json.dumps({"Type": "User", "message": message, "Reason": reason})
    return error


# 2. EventBridge targets: Step Functions and Lambda -------------------------------------------
def _patch_rule_targets() -> None:
    from moto.events.models import Rule

    original = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        if not self.event_pattern.matches_event(original_event):
            return
        ours = [t for t in self.targets if t["Arn"].split(":")[2] in ("states", "lambda")]
        others = [t for t in self.targets if t not in ours]
        event = _as_delivered(original_event)
        for target in ours:
            body = json.dumps(event)
            if target["Arn"].split(":")[2] == "states":
                _installed["start_execution"](target["Arn"], body)
            else:
                _installed["invoke_async"](target["Arn"].split(":")[6], body.encode())
        if others:
            saved = self.targets
            self.targets = others
            try:
                original(self, original_event, transform_input)
            finally:
                self.targets = saved

    Rule.send_to_targets = send_to_targets


def _as_delivered(event: dict[str, Any]) -> dict[str, Any]:
    """The event as EventBridge hands it to a target: ISO time, no moto-only fields."""
    delivered = {k: v for k, v in event.items() if k != "ingestion-time"}
    if isinstance(delivered.get("time"), (int, float)):
        moment = datetime.datetime.fromtimestamp(delivered["time"], datetime.UTC)
        delivered["time"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return delivered


# 3. S3 -> EventBridge, shaped as AWS sends it --------------------------------------------------
def _patch_s3_eventbridge() -> None:
    from moto.s3 import notifications

    def send(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        from moto.events.models import events_backends

        detail_type = notifications._detail_type(event_name)
        obj: dict[str, Any] = {"key": key.name, "sequencer": next_sequencer()}
        if detail_type == "Object Created":
            obj.update(size=key.size, etag=key.etag.replace('"', ""))
        detail: dict[str, Any] = {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": obj,
            "request-id": "LOCAL",
            "requester": account_id,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject" if detail_type == "Object Created" else "DeleteObject",
        }
        if detail_type == "Object Deleted":
            detail["deletion-type"] = "Permanently Deleted"
        if key.version_id and key.version_id != "null":
            detail["object"]["version-id"] = key.version_id
        backend = events_backends[account_id][bucket.region_name]
        backend.put_events(
            [
                {
                    "Source": "aws.s3",
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "Resources": [bucket.arn],
                }
            ]
        )

    notifications._send_event_bridge_message = send


# 4. Execution Status Change events -------------------------------------------------------------
def _patch_execution_end() -> None:
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    original = BaseExecutionWorkerCommunication.terminated

    def terminated(self: Any) -> None:
        original(self)
        execution = self.execution
        _redrive_plans.pop(execution.exec_arn, None)
        if (awaited := _awaited_ends.get(execution.exec_arn)) is not None:
            awaited.set()  # a .sync task waiting on this execution (16) resumes now
        detail = _described(execution)  # as the status-change event carries it: dates in epoch milliseconds
        for field in ("startDate", "stopDate"):
            moment = detail[field]
            detail[field] = int(moment.timestamp()) * 1000 + moment.microsecond // 1000 if moment else None
        _installed["execution_ended"](execution.account_id, execution.region_name, detail)
        _prune_interpreter_threads()  # 20: moto never lets go of a finished one

    BaseExecutionWorkerCommunication.terminated = terminated


def start_execution(account: str, region: str, state_machine_arn: str, name: str, execution_input: str) -> str:
    """StartExecution as the API handler runs it, without the loopback request: returns the ARN.

    EventBridge's delivery (2) starts one per upload; over HTTP that was a request for the
    server to parse and serialize and one for this process to sign and read.
    """
    from moto.stepfunctions.responses import get_backend

    execution = get_backend(account, region).start_execution(state_machine_arn, name, execution_input)
    return str(execution.execution_arn)


def ended_execution(account: str, region: str, arn: str) -> dict[str, Any]:
    """An execution that ended in this process, as DescribeExecution and GetExecutionHistory return it.

    Read from the interpreter's own objects: moto's generic serializer takes about 0.1 s of
    the server's one GIL for a pipeline's history, more than all of the image work it records.
    Dates are timezone-aware and whole milliseconds, as boto3 parses the API's; fields AWS
    leaves out when empty are left out (``tests/test_moto_internals.py`` compares this with
    the API's answer, field by field).
    """
    from moto.stepfunctions.responses import get_backend

    execution = get_backend(account, region).describe_execution(arn)
    events = execution.to_history_output()["events"]
    return {
        **_described(execution),
        "redriveCount": getattr(execution, "redrive_count", 0),
        "redriveDate": _api_date(getattr(execution, "redrive_date", None)),
        "events": [_as_api({**event, "timestamp": _api_date(event["timestamp"])}) for event in events],
    }


def _described(execution: Any) -> dict[str, Any]:
    """What DescribeExecution says of an execution that ended (4's event and 18's save share it)."""
    return {
        "executionArn": execution.exec_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "status": execution.exec_status.value if execution.exec_status else "FAILED",
        "startDate": _api_date(execution.start_date),
        "stopDate": _api_date(execution.stop_date),
        "input": json.dumps(execution.input_data),
        "output": json.dumps(execution.output) if execution.output is not None else None,
        "error": getattr(execution, "error", None),
        "cause": getattr(execution, "cause", None),
    }


def forget_execution(account: str, region: str, arn: str) -> bool:
    """Drop an ended execution from moto's memory, once it is saved; True if it was there.

    moto keeps every execution with its history, environment and a copy of its state
    machine for the life of the process: a ``thumbs run`` of 1,000 uploads grew from 389 MB
    to 680 MB. A saved execution is restored from its file when a request names it (12),
    and ListExecutions lists it from the index, so dropping it changes no answer.
    """
    from moto.stepfunctions.responses import get_backend

    backend = get_backend(account, region)
    with _restore_lock:
        machine = backend._get_state_machine_for_execution(arn)
        for execution in list(machine.executions):
            if execution.execution_arn == arn:
                if execution.status not in ("SUCCEEDED", *REDRIVABLE_STATUSES):
                    return False  # running (or redriven since it was saved): kept
                environment = getattr(execution.exec_worker, "env", None)
                if environment is not None and environment.map_run_record_pool_manager.get_all():
                    return False  # a Distributed Map's Map Runs live only here: DescribeMapRun reads them
                machine.executions.remove(execution)
                return True
    return False


class _WeakInstances:
    """A model class's ``instances_tracked``, holding its instances weakly (20).

    moto appends every model it creates to its class's list, for its dashboard and to close
    S3 buffers on reset; nothing removes them, so every S3 key read or written (with its
    buffer), every DynamoDB item read and every execution's state machine copy stays for the
    life of the process. Here they go when moto lets go of them; iterating still gives every
    live one, which is all reset and the dashboard do.
    """

    def __init__(self, existing: Any = ()) -> None:
        self._refs: list[Any] = []  # weak references (models need not be hashable: no WeakSet)
        self._lock = threading.Lock()
        self._prune_at = 64
        for instance in existing:
            self.append(instance)

    def append(self, instance: Any) -> None:
        import weakref

        try:
            ref: Any = weakref.ref(instance)
        except TypeError:  # a model without weak reference support stays, as in moto
            ref = lambda: instance  # noqa: E731
        with self._lock:
            self._refs.append(ref)
            if len(self._refs) >= self._prune_at:
                self._refs = [r for r in self._refs if r() is not None]
                self._prune_at = max(64, 2 * len(self._refs))

    def __iter__(self) -> Any:
        with self._lock:
            live = [r() for r in self._refs]
        return iter([instance for instance in live if instance is not None])

    def __len__(self) -> int:
        return sum(1 for _ in self)


def track_models_weakly() -> None:
    """Seam 20: every model class known so far tracks its instances weakly; the interpreter's
    thread list keeps only running threads (pruned as each execution ends, in 4)."""
    from moto.core.model_instances import model_data
    from moto.s3.models import FakeKey

    # A key moto let go of is collected now, not at reset: it closes its buffer as it goes,
    # without the "not disposed of in time" warning meant for keys a reset missed.
    FakeKey.__del__ = lambda self: self.dispose()
    for models in model_data.values():
        for model in models.values():
            if not isinstance(getattr(model, "instances_tracked", None), _WeakInstances):
                model.instances_tracked = _WeakInstances(getattr(model, "instances_tracked", ()))  # type: ignore[attr-defined]


def _prune_interpreter_threads() -> None:
    from moto.stepfunctions.parser.utils import TMP_THREADS

    TMP_THREADS[:] = [thread for thread in TMP_THREADS if thread.is_alive()]


def _api_date(value: Any) -> datetime.datetime | None:
    """A date as boto3 returns it: aware, whole milliseconds (the API sends epoch milliseconds)."""
    if value is None:
        return None
    moment = _parse_date(value)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _as_api(value: Any) -> Any:
    """Enums as their values and empty fields left out, as the API's JSON carries them."""
    import enum

    if isinstance(value, dict):
        return {k: _as_api(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_as_api(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


# 5. One backend lookup per host, not per request ---------------------------------------------
def _patch_backend_lookup() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.get_backend_for_host
    cache: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in cache:
            cache[host] = original(self, host)
        return cache[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host


# 6. Parse each JSONPath once ------------------------------------------------------------------
def _patch_json_path_parsing() -> None:
    import functools

    from moto.stepfunctions.parser.asl.utils import json_path

    json_path.parse = functools.lru_cache(maxsize=4096)(json_path.parse)


# 7. Parse each definition once ----------------------------------------------------------------
def _patch_definition_parsing() -> None:
    from moto.stepfunctions.parser.asl.parse import asl_parser

    if "definition_programs" in _installed:
        return
    original = asl_parser.AmazonStateLanguageParser.parse
    programs: dict[str, tuple[Any, Any]] = {}
    _installed["definition_programs"] = programs

    def parse(definition: str) -> tuple[Any, Any]:
        # The components the preprocessor builds hold no evaluation state: every execution
        # keeps its own in its Environment, and moto itself shares one Map's iteration program
        # between all its iterations at once (the contract test checks both). So one program
        # per definition serves every execution; building it was about a tenth of the
        # serve's time. Redrive, which changes StartAt, takes a copy (seam 11).
        cached = programs.get(definition)
        if cached is None:
            parsable, extras = split_map_extras(definition)  # 15: what moto's grammar cannot read
            program, tree = original(parsable)  # raises on a bad definition: nothing cached
            _attach_map_extras(program.states, extras)
            _assign_heap_keys(program, set())
            cached = programs.setdefault(definition, (program, tree))
        return cached

    asl_parser.AmazonStateLanguageParser.parse = staticmethod(parse)


def _assign_heap_keys(value: Any, seen: set[int]) -> None:
    """Give every component its ``heap_key`` now: moto assigns it on first use, which two executions could race."""
    from moto.stepfunctions.parser.asl.component.component import Component
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, (list, tuple, set)):
        children: Any = value
    elif isinstance(value, dict):
        children = value.values()
    elif isinstance(value, Component):
        if isinstance(value, EvalComponent):
            _ = value.heap_key
        children = vars(value).values()
    else:
        return
    for child in children:
        _assign_heap_keys(child, seen)


# 8. One interpreter client per region and service ---------------------------------------------
def _patch_interpreter_clients() -> None:
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for
    clients: dict[tuple[str, str, str], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # moto's own client ignores the credentials (fixed keys, one local endpoint), so a
        # client per region, service and server port answers exactly as a new one would.
        key = (region, service, moto_server_port())
        with lock:
            if key not in clients:
                import boto3
                from botocore.config import Config

                # moto's settings (endpoint, timeouts, no retries), with a pool as large as the
                # Map's concurrency across many executions: a shared client must not churn sockets.
                model = original(region=region, service=service)
                client = boto3.client(
                    service,
                    region_name=region,
                    endpoint_url=model.meta.endpoint_url,
                    aws_access_key_id="local",
                    aws_secret_access_key="local",
                    config=model.meta.config.merge(Config(max_pool_connections=64)),
                )
                clients[key] = _AdmittedLambda(client) if service == "lambda" else client
            return clients[key]

    lambda_eval_utils.boto_client_for = boto_client_for


class _AdmittedLambda:
    """The interpreter's Lambda client: Invoke waits for a free worker of the function first.

    A synchronous Invoke of one of the stack's functions goes straight to the local runtime
    and comes back shaped as boto3 returns it (StatusCode, FunctionError, a readable
    Payload): over loopback HTTP the same call cost the server a request to parse and
    answer and this client one to sign and read, five times per upload, for nothing moto's
    Lambda adds (1 routes its Invoke to the same runtime). Anything else goes over HTTP.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def invoke(self, **parameters: Any) -> Any:
        name = str(parameters.get("FunctionName", "")).rsplit(":", 1)[-1]
        with _installed["admitted"](name):
            direct = parameters.get("InvocationType", "RequestResponse") == "RequestResponse"
            if direct and not parameters.get("Qualifier") and _installed["local_function"](name):
                return _invoke_directly(name, parameters.get("Payload"))
            return self._client.invoke(**parameters)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._client, attribute)


def _invoke_directly(name: str, payload: Any) -> dict[str, Any]:
    import io

    from botocore.response import StreamingBody

    if payload is None:
        payload = b"{}"
    elif isinstance(payload, str):
        payload = payload.encode()
    elif not isinstance(payload, bytes):
        payload = payload.read()
    try:
        result, function_error = _installed["invoke"](name, payload)
    except Throttled as exc:  # the task fails with the error Step Functions names a throttled Invoke by
        result, function_error = lambda_error(THROTTLE_ERROR, str(exc)), "Unhandled"
    if len(result) > MAX_RESPONSE_BYTES:  # as Lambda (and moto's Invoke) answers an oversized response
        function_error = "Unhandled"
        result = json.dumps(
            {
                "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
                "errorType": "Function.ResponseSizeTooLarge",
            }
        ).encode()
    response: dict[str, Any] = {
        "StatusCode": 200,
        "ExecutedVersion": "$LATEST",
        "Payload": StreamingBody(io.BytesIO(result), len(result)),
    }
    if function_error:
        response["FunctionError"] = function_error
    return response


# 9. Operations moto does not implement: an AWS error, not an HTML page ------------------------------
def server_app() -> Any:
    """moto's WSGI application, as its own server builds it, with seam 9 on every service's app."""
    from moto.moto_server import werkzeug_app

    return werkzeug_app.DomainDispatcherApplication(_create_backend_app)


def request_handler() -> Any:
    """The request handler class moto's own server uses (it handles ``Expect: 100-continue``)."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    return MotoRequestHandler


def _create_backend_app(service: str) -> Any:
    from moto.moto_server import werkzeug_app

    app = werkzeug_app.create_backend_app(service)

    def not_implemented(exc: NotImplementedError) -> Any:
        from flask import request

        operation = _operation_name(request, str(exc))
        message = (
            f"{operation} is not supported by the local stack (moto {MOTO_VERSION}); "
            "docs/local-api.md lists the operations it supports"
        )
        return not_implemented_response(service, message)

    app.register_error_handler(NotImplementedError, not_implemented)
    return app


def _operation_name(request: Any, message: str) -> str:
    target = request.headers.get("X-Amz-Target")
    if target:
        return str(target.split(".")[-1])
    action = request.values.get("Action")
    if action:
        return str(action)
    if message.startswith("The ") and message.endswith(" action has not been implemented"):
        words = message[len("The ") : -len(" action has not been implemented")]
        return "".join(part.capitalize() for part in words.split("_"))
    return f"{request.method} {request.path}"


def not_implemented_response(service: str, message: str) -> tuple[str, int, dict[str, str]]:
    """``NotImplemented`` in the service's protocol: JSON for JSON services, XML for S3 and query ones."""
    from xml.sax.saxutils import escape

    protocol = _protocol(service)
    if protocol in ("json", "rest-json"):
        body = json.dumps({"__type": "NotImplemented", "message": message})
        return body, 501, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": "NotImplemented"}
    if protocol == "rest-xml":
        body = (
            "<?xml version='1.0' encoding='UTF-8'?>\n"
            f"<Error><Code>NotImplemented</Code><Message>{escape(message)}</Message></Error>"
        )
    else:
        body = (
            "<?xml version='1.0' encoding='UTF-8'?>\n<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>NotImplemented</Code><Message>{escape(message)}</Message></Error></ErrorResponse>"
        )
    return body, 501, {"Content-Type": "text/xml"}


def _protocol(service: str) -> str:
    import botocore.session

    try:
        model = botocore.session.get_session().get_service_model(_BOTOCORE_NAMES.get(service, service))
    except Exception:  # noqa: BLE001 - a moto-only service: answer in JSON
        return "json"
    return str(model.metadata.get("protocol", "json"))


_BOTOCORE_NAMES = {"awslambda": "lambda", "states": "stepfunctions"}
# The services the local stack deploys to (or that a client of it may use), with moto's module name.
LOCAL_SERVICES = {
    "s3": "s3",
    "dynamodb": "dynamodb",
    "stepfunctions": "stepfunctions",
    "events": "events",
    "sqs": "sqs",
    "lambda": "awslambda",
    "iam": "iam",
    "cloudformation": "cloudformation",
    "sts": "sts",
}
ADDED_OPERATIONS = {"stepfunctions": ("RedriveExecution",)}  # implemented here, not by moto


def supported_operations(service: str) -> list[str]:
    """The operations of ``service`` (botocore's name) that the local stack answers, in botocore's spelling.

    moto answers an operation when its response class has a method of that name in snake
    case; the seams above add the rest.
    """
    import importlib

    import botocore.session
    from moto.core.responses import BaseResponse
    from moto.core.utils import camelcase_to_underscores

    module = importlib.import_module(f"moto.{LOCAL_SERVICES[service]}.responses")
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseResponse) and value.__module__ == module.__name__
    ]
    model = botocore.session.get_session().get_service_model(service)
    found = {
        name for name in model.operation_names if any(hasattr(cls, camelcase_to_underscores(name)) for cls in classes)
    }
    if service == "s3":
        found |= _s3_dispatched(model, module)
    return sorted(found | set(ADDED_OPERATIONS.get(service, ())))


def _s3_dispatched(model: Any, module: Any) -> set[str]:
    """S3 operations moto answers through its verb handlers, chosen by the URL's subresource.

    An operation counts when every subresource in its request URI is one moto's S3 handlers
    test for (``"tagging" in querystring``), or when it has none (a plain bucket or object verb).
    """
    import inspect
    import re

    known = _moto_s3_subresources(inspect.getsource(module), re)
    found = set()
    for name in model.operation_names:
        query = model.operation_model(name).http["requestUri"].partition("?")[2]
        subresources = {part.split("=")[0] for part in query.split("&") if part} - {"x-id"}
        if subresources <= known:
            found.add(name)
    return found


def operations_page() -> str:
    """docs/local-api.md: per service, the operations the local stack answers (the rest: NotImplemented)."""
    import botocore.session

    lines = [
        "# Operations the local stack answers",
        "",
        "Generated from moto's handlers and this project's seams (`python -m thumbs.local.moto_internals`;",
        "`tests/test_local_engine.py` fails when it is stale). Any other operation of these services answers",
        "`NotImplemented` (HTTP 501) with the operation's name, in the service's own protocol.",
        "",
    ]
    for service in LOCAL_SERVICES:
        supported = supported_operations(service)
        total = len(botocore.session.get_session().get_service_model(service).operation_names)
        added = set(ADDED_OPERATIONS.get(service, ()))
        lines += [f"## {service}", "", f"{len(supported)} of {total} operations.", ""]
        lines += [", ".join(f"`{op}`" + (" (added here)" if op in added else "") for op in supported), ""]
    return "\n".join(lines)


# 10. RedriveExecution ------------------------------------------------------------------------------
_redrive_plans: dict[str, dict[str, dict[int, Any]]] = {}  # execution ARN -> Map name -> index -> output
_restore_lock = threading.RLock()


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def redrive_status(execution: Any) -> tuple[str, str | None]:
    """(``REDRIVABLE`` or ``NOT_REDRIVABLE``, why not), by AWS's rules."""
    status = execution.exec_status.value if execution.exec_status else "RUNNING"
    if str(getattr(execution, "sm_type", "STANDARD")) not in ("STANDARD", "StateMachineType.STANDARD"):
        return "NOT_REDRIVABLE", "Express executions cannot be redriven"
    if status not in REDRIVABLE_STATUSES:
        return "NOT_REDRIVABLE", f"Execution is {status} and cannot be redriven"
    if getattr(execution, "redrive_count", 0) >= MAX_REDRIVES:
        return "NOT_REDRIVABLE", f"Execution has been redriven {MAX_REDRIVES} times"
    stopped = execution.stop_date or _utcnow()
    if stopped.tzinfo is None:
        stopped = stopped.replace(tzinfo=datetime.UTC)
    if _utcnow() - stopped > REDRIVE_WINDOW:
        return "NOT_REDRIVABLE", "Execution stopped more than 14 days ago and cannot be redriven"
    return "REDRIVABLE", None


def _patch_redrive() -> None:
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def redrive_execution(self: Any) -> Any:
        arn = self._get_param("executionArn")
        execution = self.stepfunction_backend.describe_execution(arn)
        return ActionResult({"redriveDate": redrive(execution)})

    StepFunctionResponse.redrive_execution = redrive_execution

    describe = StepFunctionResponse.describe_execution

    def describe_execution(self: Any) -> Any:
        result = describe(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        response = result.result
        status, reason = redrive_status(execution)
        response["redriveStatus"] = status
        if reason:
            response["redriveStatusReason"] = reason
        if getattr(execution, "redrive_count", 0):
            response["redriveCount"] = execution.redrive_count
            response["redriveDate"] = execution.redrive_date
        if execution.stop_date is not None:
            response["stopDate"] = execution.stop_date  # moto leaves it out for TIMED_OUT
        return result

    StepFunctionResponse.describe_execution = describe_execution

    listing = StepFunctionResponse.list_executions

    def list_executions(self: Any) -> Any:
        result = listing(self)
        backend = self.stepfunction_backend
        for item in result.result["executions"]:
            known = _known_execution(backend, item["executionArn"])
            if known is not None and getattr(known, "redrive_count", 0):
                item["redriveCount"] = known.redrive_count
                item["redriveDate"] = known.redrive_date
        return result

    StepFunctionResponse.list_executions = list_executions


def _known_execution(backend: Any, arn: str) -> Any:
    for machine in backend.state_machines:
        for execution in machine.executions:
            if execution.execution_arn == arn:
                return execution
    return None


def redrive(execution: Any) -> datetime.datetime:
    """Resume ``execution`` at the state that failed, with that state's input; refuse as AWS refuses."""
    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser.api import ExecutionStatus

    with _restore_lock:
        status, reason = redrive_status(execution)
        if status != "REDRIVABLE":
            raise AWSError(reason or "Execution cannot be redriven", "ExecutionNotRedrivable", 400)
        definition = execution.state_machine.definition
        events = execution.exec_worker.env.event_manager.get_event_history()
        state, state_input, plan = redrive_point(definition, events)
        execution.redrive_count = getattr(execution, "redrive_count", 0) + 1
        execution.redrive_date = _utcnow()
        execution.exec_status = ExecutionStatus.RUNNING
        execution.stop_date = execution.output = execution.error = execution.cause = None
        _redrive_plans[execution.exec_arn] = plan
        worker = _redrive_worker(execution, events, state, state_input)
        execution.exec_worker = worker
        worker.start()
        return execution.redrive_date


def redrive_point(definition: str, events: list[dict[str, Any]]) -> tuple[str, Any, dict[str, dict[int, Any]]]:
    """The top-level state that failed, the input it had, and (if it is a Map) its succeeded iterations.

    The failed state is the last top-level state entered: an execution fails, times out or
    is aborted in the state it is in. Iteration outputs come from the history, so a redrive
    works from an execution saved by an earlier process too.
    """
    states = json.loads(definition)["States"]
    entered = [
        e for e in events if e["type"].endswith("StateEntered") and e["stateEnteredEventDetails"]["name"] in states
    ]
    if not entered:
        raise ValueError("the execution's history enters no state of its definition")
    last = entered[-1]["stateEnteredEventDetails"]
    state, state_input = last["name"], json.loads(last.get("input") or "null")
    plan: dict[str, dict[int, Any]] = {}
    if states[state].get("Type") == "Map":
        plan[state] = _succeeded_iterations(state, events)
    return state, state_input, plan


def _succeeded_iterations(map_state: str, events: list[dict[str, Any]]) -> dict[int, Any]:
    """Index -> output of each iteration of ``map_state`` that succeeded while its run was live.

    An iteration's output is the last state output on its own event chain (``previousEventId``
    links it back to its ``MapIterationStarted``). Events after a run ended (an iteration
    still finishing when the Map had already failed) do not count: that run's outcome was
    already decided without them.
    """
    by_id = {e["id"]: e for e in events}
    done: dict[int, Any] = {}
    live = False
    for event in events:
        kind = event["type"]
        if kind in ("ExecutionStarted", "ExecutionRedriven"):
            live = True
        elif kind in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted", "ExecutionSucceeded"):
            live = False
        details = event.get("mapIterationSucceededEventDetails")
        if not live or kind != "MapIterationSucceeded" or not details or details.get("name") != map_state:
            continue
        source = by_id.get(event["previousEventId"])
        while source is not None and not source["type"].endswith("StateExited"):
            if source["type"] == "MapIterationStarted":
                source = None  # the chain reached its own start without an output: run it again
                break
            source = by_id.get(source["previousEventId"])
        if source is not None:
            done[int(details["index"])] = json.loads(source["stateExitedEventDetails"].get("output") or "null")
    return done


def _redrive_worker(execution: Any, events: list[dict[str, Any]], state: str, state_input: Any) -> Any:
    from moto.stepfunctions.parser.api import ExecutionRedrivenEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.flow.start_at import StartAt
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    worker = execution._get_start_execution_worker()
    env = worker._get_evaluation_environment()
    _seed_history(env, events)
    env.states.context_object.context_object_data["Execution"]["RedriveCount"] = execution.redrive_count
    env.event_manager.add_event(
        context=env.event_history_context,
        event_type=HistoryEventType.ExecutionRedriven,
        event_details=EventDetails(
            executionRedrivenEventDetails=ExecutionRedrivenEventDetails(redriveCount=execution.redrive_count)
        ),
    )
    env.states.reset(input_value=state_input)
    worker.env = env
    program = copy.copy(worker._get_evaluation_entrypoint())  # the parsed program is shared (seam 7)
    program.start_at = StartAt(start_at_name=state)

    def resume() -> None:
        program.eval(env)
        worker._execution_communication.terminated()

    def start() -> None:
        from moto.stepfunctions.parser.utils import TMP_THREADS

        thread = threading.Thread(target=resume, daemon=True)
        TMP_THREADS.append(thread)
        thread.start()

    worker.start = start
    return worker


def _seed_history(env: Any, events: list[dict[str, Any]]) -> None:
    """Put an earlier history into a fresh environment: ids and the event chain continue from it."""
    from moto.core.utils import iso_8601_datetime_with_milliseconds

    manager = env.event_manager
    for event in events:
        stamp = event["timestamp"]
        if isinstance(stamp, datetime.datetime):
            stamp = iso_8601_datetime_with_milliseconds(stamp.astimezone(datetime.UTC).replace(tzinfo=None))
        manager._history_event_list.append({**event, "timestamp": stamp})
    last = max((int(e["id"]) for e in events), default=0)
    manager._event_id_gen._next_id = last + 1
    env.event_history_context.source_event_id = last
    env.event_history_context.last_published_event_id = last


# 11. Map iterations that succeeded before a redrive are not run again -------------------------------
def _patch_map_iterations() -> None:
    import copy

    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.iteration_worker import (
        IterationWorker,
    )

    original = IterationWorker._eval_job

    def _eval_job(self: Any, env: Any, job: Any) -> None:
        arn = env.states.context_object.context_object_data["Execution"]["Id"]
        done = _redrive_plans.get(arn, {}).get(self._work_name, {})
        if job.job_index in done:
            job.job_output = copy.deepcopy(done[job.job_index])
            return
        original(self, env, job)

    IterationWorker._eval_job = _eval_job


# 12. Executions of earlier processes: restored on first reference, listed from the store ------------
def _patch_stored_executions() -> None:
    from moto.stepfunctions.exceptions import ExecutionDoesNotExist
    from moto.stepfunctions.models import StepFunctionBackend
    from moto.stepfunctions.utils import PAGINATION_MODEL
    from moto.utilities.paginator import paginate

    describe = StepFunctionBackend.describe_execution

    def describe_execution(self: Any, execution_arn: str) -> Any:
        try:
            return describe(self, execution_arn)
        except ExecutionDoesNotExist:
            with _restore_lock:
                try:
                    return describe(self, execution_arn)  # restored by another thread meanwhile
                except ExecutionDoesNotExist:
                    restored = _restore_execution(self, execution_arn)
                    if restored is None:
                        raise
                    return restored

    StepFunctionBackend.describe_execution = describe_execution

    listed: dict[str, Any] = {}  # the saved summaries last seen, and their listing objects

    @paginate(pagination_model=PAGINATION_MODEL)
    def list_executions(self: Any, state_machine_arn: str, status_filter: str | None = None) -> list[Any]:
        executions = list(self.describe_state_machine(state_machine_arn).executions)
        known = {e.execution_arn for e in executions}
        saved = _installed["stored_executions"](state_machine_arn)
        if listed.get("source") is not saved:  # the store hands back the same list until it changes
            listed.update(source=saved, items=[_Listed(summary) for summary in saved])
        executions += [item for item in listed["items"] if item.execution_arn not in known]
        if status_filter:
            executions = [e for e in executions if e.status == status_filter]
        return sorted(executions, key=lambda e: e.start_date, reverse=True)

    StepFunctionBackend.list_executions = list_executions


class _Listed:
    """A saved execution as ListExecutions shows it, without loading its history."""

    def __init__(self, saved: dict[str, Any]) -> None:
        self.execution_arn = saved["executionArn"]
        self.name = saved["name"]
        self.status = saved["status"]
        self.start_date = _parse_date(saved["startDate"])
        self.stop_date = _parse_date(saved["stopDate"]) if saved.get("stopDate") else None
        self.redrive_count = int(saved.get("redriveCount") or 0)
        self.redrive_date = _parse_date(saved["redriveDate"]) if saved.get("redriveDate") else None


def _parse_date(value: Any) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, (int, float)):
        moment = datetime.datetime.fromtimestamp(value / 1000, datetime.UTC)
    else:
        moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _restore_execution(backend: Any, arn: str) -> Any:
    """An earlier process's execution, rebuilt as moto's own, with its history: describable and redrivable."""
    import copy

    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.backend.execution import Execution

    saved = _installed["load_execution"](arn)
    if saved is None:
        return None
    machine = backend._get_state_machine_for_execution(arn)
    clone = copy.deepcopy(machine, {id(machine.executions): [], id(machine.backend): machine.backend})
    if saved.get("definition"):
        clone.definition = saved["definition"]  # it ran (and redrives) on the definition it started with
    execution = Execution(
        name=saved["name"],
        sm_type=clone.sm_type,
        role_arn=clone.roleArn,
        exec_arn=arn,
        account_id=backend.account_id,
        region_name=backend.region_name,
        state_machine=clone,
        start_date=_parse_date(saved["startDate"]),
        cloud_watch_logging_session=None,
        activity_store={},
        input_data=json.dumps(saved.get("input")),
    )
    execution.exec_status = ExecutionStatus(saved["status"])
    execution.stop_date = _parse_date(saved["stopDate"]) if saved.get("stopDate") else None
    execution.output = saved.get("output")
    execution.error = saved.get("error")
    execution.cause = saved.get("cause")
    execution.redrive_count = int(saved.get("redriveCount") or 0)
    execution.redrive_date = _parse_date(saved["redriveDate"]) if saved.get("redriveDate") else None
    worker = execution._get_start_execution_worker()
    worker.env = worker._get_evaluation_environment()
    _seed_history(worker.env, saved.get("events") or [])
    execution.exec_worker = worker
    machine.executions.append(execution)
    return execution


# 13. Objects on disk: a bucket's keys are read from the store, and written to it per request -------
_pending = threading.local()  # what the current request changed: flushed when it ends


def _touched() -> dict[int, Any]:
    """The stores the current request changed, by identity (a key store is a dict: not hashable)."""
    if not hasattr(_pending, "stores"):
        _pending.stores = {}
    return _pending.stores  # type: ignore[no-any-return]


def flush_request() -> None:
    """Write what the request on this thread changed; called by the server when the request ends.

    moto changes a key or an item after putting it in place (CopyObject sets the metadata, an
    UpdateItem edits the item), so rows are written when the request is done, not on the put.
    """
    stores = _touched()
    while stores:
        stores.popitem()[1].flush_thread()


def store_objects(account: str, bucket_name: str, store: Any) -> None:
    """Back an unversioned bucket by ``store``: its keys are read from there, nothing is loaded now."""
    from moto.s3.models import s3_backends

    bucket = s3_backends[account]["aws"].buckets[bucket_name]
    if bucket.is_versioned:
        raise ValueError(f"bucket {bucket_name}: only unversioned buckets are stored on disk")
    bucket.keys = _StoredKeys(bucket, store)
    _attached.append((bucket, "keys"))


def _stored_key_class() -> type:
    from moto.s3.models import FakeKey

    class StoredKey(FakeKey):  # type: ignore[misc, valid-type]
        """A key whose bytes stay in the store's blob until something reads them."""

        _blob_path: Any = None

        @property
        def value(self) -> bytes:
            if self._blob_path is None:
                return FakeKey.value.fget(self)  # type: ignore[attr-defined, no-any-return]
            return bytes(self._blob_path.read_bytes())

        @value.setter
        def value(self, new_value: bytes) -> None:
            self._blob_path = None
            FakeKey.value.fset(self, new_value)  # type: ignore[attr-defined]

    StoredKey.instances_tracked = _WeakInstances()  # type: ignore[attr-defined]  # 20: made per read
    return StoredKey


_STORED_KEY: list[type] = []


def _stored_key(bucket: Any, name: str, row: dict[str, Any], store: Any) -> Any:
    from moto.utilities.utils import LowercaseDict

    if not _STORED_KEY:
        _STORED_KEY.append(_stored_key_class())
    meta = row["meta"]
    key = _STORED_KEY[0](
        name=name,
        value=b"",
        account_id=bucket.account_id,
        region_name=bucket.region_name,
        storage=meta.get("storage_class") or "STANDARD",
        etag=row["etag"].strip('"'),
        bucket_name=bucket.name,
        checksum_value=meta.get("checksum_value"),
    )
    key._blob_path = store.blob_path(row["blob"])
    key.contentsize = row["size"]
    key.last_modified = datetime.datetime.fromisoformat(row["modified"])
    key._metadata = LowercaseDict(meta.get("metadata") or {})
    key.checksum_algorithm = meta.get("checksum_algorithm")
    key.website_redirect_location = meta.get("website_redirect_location")
    return key


def _key_row(key: Any, store: Any) -> dict[str, Any]:
    blob = key._blob_path.name if getattr(key, "_blob_path", None) is not None else store.put_blob(key.value, key.etag)
    return {
        "blob": blob,
        "etag": key.etag,
        "size": key.size,
        "modified": key.last_modified.isoformat(),
        "meta": {
            "metadata": dict(key.metadata),
            "storage_class": key.storage_class,
            "checksum_algorithm": key.checksum_algorithm,
            "checksum_value": key.checksum_value,
            "website_redirect_location": key.website_redirect_location,
        },
    }


def _key_store_base() -> type:
    from moto.s3.utils import _VersionedKeyStore

    return _VersionedKeyStore  # type: ignore[no-any-return]


class _Pending:
    """What the requests still running changed in one store-backed collection, until each ends.

    ``live`` holds the values a running request put, or read to edit; ``gone`` the names it
    deleted. When a request ends, ``flush`` writes that thread's changes through ``write``
    and ``erase``, then lets go of whatever no other running request still uses. The key
    store (seam 13) and the item dict (seam 14) share it.
    """

    def __init__(self, write: Callable[[str, Any], None], erase: Callable[[str], None]) -> None:
        self.live: dict[str, Any] = {}
        self.gone: set[str] = set()
        self._write, self._erase = write, erase
        self._by_thread: dict[int, set[str]] = {}
        self.lock = threading.RLock()

    def find(self, name: str, *, to_edit: bool = False) -> tuple[bool, Any]:
        """(known here, value): the value is None when a running request deleted it.

        ``to_edit``: the caller may change the value in place (an UpdateItem edits the item it
        got), so it is written back when this request ends too.
        """
        with self.lock:
            if name in self.live:
                if to_edit:
                    self._mark(name)
                return True, self.live[name]
            return name in self.gone, None

    def keep(self, name: str, value: Any) -> Any:
        """Hold a value read from the store for this request; the one already held wins."""
        with self.lock:
            self._mark(name)
            return self.live.setdefault(name, value)

    def put(self, name: str, value: Any) -> None:
        with self.lock:
            self.live[name] = value
            self.gone.discard(name)
            self._mark(name)

    def drop(self, name: str) -> None:
        with self.lock:
            self.live.pop(name, None)
            self.gone.add(name)
            self._mark(name)

    def names(self, stored: list[str]) -> list[str]:
        with self.lock:
            return sorted((set(stored) | set(self.live)) - self.gone)

    def _mark(self, name: str) -> None:
        self._by_thread.setdefault(threading.get_ident(), set()).add(name)
        _touched()[id(self)] = self

    def flush_thread(self) -> None:
        with self.lock:
            names = self._by_thread.pop(threading.get_ident(), set())
            changes = [(name, self.live.get(name), name in self.gone) for name in names]
        for name, value, gone in changes:
            if gone:
                self._erase(name)
            elif value is not None:
                self._write(name, value)
            with self.lock:  # the store has it now; a later request reads it from there
                still_used = any(name in others for others in self._by_thread.values())
                if not still_used and value is not None and self.live.get(name) is value:
                    del self.live[name]
                if gone and not still_used:
                    self.gone.discard(name)


class _StoredKeys(_key_store_base()):  # type: ignore[misc]
    """moto's key store for one bucket, over the store: live keys in memory until their request ends."""

    def __init__(self, bucket: Any, store: Any) -> None:
        super().__init__()
        self._bucket = bucket
        self._store = store
        self._pending = _Pending(self._write, lambda name: store.delete_object(bucket.name, name))

    def _write(self, name: str, versions: list[Any]) -> None:
        from moto.s3.models import FakeDeleteMarker

        if not versions or isinstance(versions[-1], FakeDeleteMarker):
            self._store.delete_object(self._bucket.name, name)
        else:
            self._store.put_object(self._bucket.name, name, **_key_row(versions[-1], self._store))

    # what moto calls
    def __sgetitem__(self, key: str) -> list[Any]:
        known, versions = self._pending.find(key)
        if known:
            if versions is None:
                raise KeyError(key)
            return versions  # type: ignore[no-any-return]
        row = self._store.get_object(self._bucket.name, key)
        if row is None:
            raise KeyError(key)
        return [_stored_key(self._bucket, key, row, self._store)]

    def __setitem__(self, key: str, value: Any) -> None:
        self.setlist(key, [value])

    def setlist(self, key: Any, list_: Any) -> None:
        if not isinstance(list_, list):
            list_ = list(list_) if isinstance(list_, tuple) else [list_]
        self._pending.put(key, list_)

    def pop(self, key: str, *default: Any) -> None:  # type: ignore[override]
        self._pending.drop(key)

    def __delitem__(self, key: str) -> None:
        self.pop(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        known, versions = self._pending.find(key)
        return versions is not None if known else self._store.has_object(self._bucket.name, key)

    def _names(self) -> list[str]:
        return self._pending.names(self._store.object_keys(self._bucket.name))

    def _self_iterable(self) -> dict[str, Any]:
        return dict.fromkeys(self._names())

    def keys(self) -> Any:  # type: ignore[override]
        return self._names()

    def __iter__(self) -> Any:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __bool__(self) -> bool:
        with self._pending.lock:
            if self._pending.live:
                return True
            gone = len(self._pending.gone)
        return self._store.count_objects(self._bucket.name) > gone

    def item_size(self) -> int:
        return len(self)


# 14. Table items on disk: read from the store, written when the request that changed them ends ------
def store_items(account: str, region: str, table_name: str, store: Any) -> None:
    """Back a hash-key-only table by ``store``: its items are read from there, nothing is loaded now."""
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends[account][region].tables[table_name]
    if table.range_key_attr is not None:
        raise ValueError(f"table {table.name}: only hash-key tables are stored on disk")
    table.items = _StoredItems(table, store)
    _attached.append((table, "items"))


_attached: list[tuple[Any, str]] = []


def release_stores() -> None:
    """Give moto back in-memory (empty) key stores and item dicts: the store is closing.

    moto's reset, when the next stack of this process starts, walks every bucket's keys; it
    must not reach a closed store.
    """
    from collections import defaultdict

    from moto.s3.utils import _VersionedKeyStore

    while _attached:
        owner, attribute = _attached.pop()
        setattr(owner, attribute, _VersionedKeyStore() if attribute == "keys" else defaultdict(dict))


def _hash_id(hash_key: Any) -> str:
    return json.dumps(hash_key.to_json(), sort_keys=True)


class _StoredItems(dict):  # type: ignore[type-arg]
    """moto's ``Table.items`` (hash key -> Item) over the store; items a request touched stay live until it ends."""

    def __init__(self, table: Any, store: Any) -> None:
        super().__init__()
        self._table = table
        self._store = store
        self._pending = _Pending(
            lambda hid, item: store.put_item(table.name, hid, item.to_json()["Attributes"]),
            lambda hid: store.delete_item(table.name, hid),
        )

    def _load(self, hash_key: Any) -> Any:
        from moto.dynamodb.models.dynamo_type import Item

        hid = _hash_id(hash_key)
        known, item = self._pending.find(hid, to_edit=True)
        if known:
            return item
        attrs = self._store.get_item(self._table.name, hid)
        if attrs is None:
            return None
        return self._pending.keep(hid, Item(hash_key, None, attrs))  # an UpdateItem edits what it got

    def __getitem__(self, hash_key: Any) -> Any:
        item = self._load(hash_key)
        if item is None:
            raise KeyError(hash_key)
        return item

    def get(self, hash_key: Any, default: Any = None) -> Any:
        item = self._load(hash_key)
        return default if item is None else item

    def __contains__(self, hash_key: object) -> bool:
        return self._load(hash_key) is not None

    def __setitem__(self, hash_key: Any, item: Any) -> None:
        self._pending.put(_hash_id(hash_key), item)

    def pop(self, hash_key: Any, *default: Any) -> Any:  # type: ignore[override]
        item = self._load(hash_key)
        if item is None:
            if default:
                return default[0]
            raise KeyError(hash_key)
        self._pending.drop(_hash_id(hash_key))
        return item

    def __delitem__(self, hash_key: Any) -> None:
        self.pop(hash_key)

    def _all(self) -> list[Any]:
        from moto.dynamodb.models.dynamo_type import DynamoType

        ids = self._pending.names(self._store.item_keys(self._table.name))
        return [DynamoType(json.loads(hid)) for hid in ids]

    def keys(self) -> Any:  # type: ignore[override]
        return self._all()

    def __iter__(self) -> Any:
        return iter(self._all())

    def values(self) -> Any:  # type: ignore[override]
        return [item for item in (self._load(k) for k in self._all()) if item is not None]

    def items(self) -> Any:  # type: ignore[override]
        return [(k, item) for k in self._all() if (item := self._load(k)) is not None]

    def __len__(self) -> int:
        return len(self._all())

    def __bool__(self) -> bool:
        return len(self) > 0


def s3_unsupported(method: str, query: dict[str, Any]) -> str | None:
    """The S3 operation a request asks for, when moto would not answer it as that operation.

    moto's S3 picks a handler by the URL's subresource (``?tagging``) and answers a
    subresource it does not know as the plain bucket or object operation: a
    ``DELETE /bucket?analytics`` would run DeleteBucket. So a subresource of S3's API that
    moto's handlers never test for is refused here, by name, before moto sees it.
    """
    subresources = _s3_subresources()
    for key in query:
        operations = subresources["unknown"].get(key)
        if operations:
            return next((name for verb, name in operations if verb == method), operations[0][1])
    return None


_S3_SUBRESOURCES: dict[str, Any] = {}


def _s3_subresources() -> dict[str, Any]:
    if not _S3_SUBRESOURCES:
        import importlib
        import inspect
        import re

        import botocore.session

        model = botocore.session.get_session().get_service_model("s3")
        by_key: dict[str, list[tuple[str, str]]] = {}
        for name in model.operation_names:
            http = model.operation_model(name).http
            for part in http["requestUri"].partition("?")[2].split("&"):
                if part and part.split("=")[0] != "x-id":
                    by_key.setdefault(part.split("=")[0], []).append((http["method"], name))
        known = _moto_s3_subresources(inspect.getsource(importlib.import_module("moto.s3.responses")), re)
        _S3_SUBRESOURCES["unknown"] = {key: ops for key, ops in by_key.items() if key not in known}
        _S3_SUBRESOURCES["known"] = known
    return _S3_SUBRESOURCES


def _moto_s3_subresources(source: str, re: Any) -> set[str]:
    """The subresources moto's S3 handlers test for: ``"tagging" in querystring`` and the like."""
    found = set(re.findall(r'"([\w-]+)" in (?:self\.)?(?:querystring|query|qs)\b', source))
    return found | set(re.findall(r'(?:querystring|query)\.get\("([\w-]+)"', source))


if __name__ == "__main__":
    print(operations_page(), end="")


# 15. Distributed Map as AWS runs it: batches, tolerated failures, every page, real result files ----
# Fields of a Map state that moto's grammar refuses (or misreads); kept per state, applied below.
_MAP_EXTRAS = ("ItemBatcher", "ToleratedFailurePercentage", "ToleratedFailureCount")
_BATCHER_FIELDS = {"MaxItemsPerBatch", "MaxInputBytesPerBatch", "BatchInput"}
MAX_BATCH_BYTES = 256 * 1024  # AWS: a batch is at most 256 KiB
RESULTS_PER_FILE = 5000  # result entries per SUCCEEDED_n.json / FAILED_n.json file


def split_map_extras(definition: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """The definition without what moto cannot parse, and those fields per Map state name.

    Refuses, with AWS's kind of message, what this seam does not carry out, rather than
    running a definition differently from AWS.
    """
    try:
        document = json.loads(definition)
    except ValueError:
        return definition, {}  # moto's parser reports the error
    extras: dict[str, dict[str, Any]] = {}

    def visit(states: Any) -> None:
        for name, state in (states or {}).items():
            if not isinstance(state, dict):
                continue
            if state.get("Type") == "Map":
                taken = {field: state.pop(field) for field in _MAP_EXTRAS if field in state}
                batcher = taken.get("ItemBatcher")
                if batcher is not None:
                    unknown = set(batcher) - _BATCHER_FIELDS
                    if unknown or not isinstance(batcher.get("MaxItemsPerBatch", 1), int):
                        raise ValueError(f"ItemBatcher of {name}: the local stack supports {sorted(_BATCHER_FIELDS)}")
                    if "ItemSelector" in state or "Parameters" in state:
                        raise ValueError(f"{name}: ItemSelector with ItemBatcher is not supported by the local stack")
                if taken:
                    if "ResultWriter" in state:  # read, not removed: a failed Map Run writes its results too
                        taken["ResultWriter"] = state["ResultWriter"]
                    extras[name] = taken
                processor = state.get("ItemProcessor") or state.get("Iterator") or {}
                visit(processor.get("States"))
            for branch in state.get("Branches") or []:
                visit(branch.get("States"))

    visit(document.get("States"))
    return (json.dumps(document), extras) if extras else (definition, {})


def _attach_map_extras(states: Any, extras: dict[str, dict[str, Any]]) -> None:
    """Put each Map's extras on its iteration component, where the Map Run (below) reads them."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap

    if not extras:
        return
    for name, state in states.states.items():
        if isinstance(state, StateMap):
            state.iteration_component._thumbs_extras = extras.get(name, {})
            _attach_map_extras(state.iteration_component._states, extras)


def batches(items: list[Any], batcher: dict[str, Any], batch_input: Any) -> list[dict[str, Any]]:
    """``{"Items": [...], "BatchInput": ...}`` per child execution, as AWS's ItemBatcher cuts them."""
    most = int(batcher.get("MaxItemsPerBatch") or len(items) or 1)
    most_bytes = min(int(batcher.get("MaxInputBytesPerBatch") or MAX_BATCH_BYTES), MAX_BATCH_BYTES)
    out: list[dict[str, Any]] = []
    current: list[Any] = []
    size = 0
    for item in items:
        item_bytes = len(json.dumps(item, separators=(",", ":")).encode())
        if current and (len(current) >= most or size + item_bytes > most_bytes):
            out.append(current)
            current, size = [], 0
        current.append(item)
        size += item_bytes
    if current:
        out.append(current)
    return [{"Items": chunk, **({"BatchInput": batch_input} if batch_input is not None else {})} for chunk in out]


def _evaluate_paths(value: Any, state_input: Any, context: Any) -> Any:
    """A payload template (``"key.$": "$.path"``) evaluated as Step Functions does, without intrinsics."""
    from moto.stepfunctions.parser.asl.utils.json_path import extract_json

    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key.endswith(".$") and isinstance(item, str):
                source, path = (context, item[1:]) if item.startswith("$$") else (state_input, item)
                out[key[:-2]] = extract_json(path, source)
            else:
                out[key] = _evaluate_paths(item, state_input, context)
        return out
    if isinstance(value, list):
        return [_evaluate_paths(v, state_input, context) for v in value]
    return value


def _threshold_exceeded(extras: dict[str, Any], failed: int, total: int) -> bool:
    """AWS: with neither tolerance set any failure fails the Map Run; else exceeding either does."""
    percentage, count = extras.get("ToleratedFailurePercentage"), extras.get("ToleratedFailureCount")
    if failed == 0:
        return False
    if percentage is None and count is None:
        return True
    return (percentage is not None and failed * 100 > float(percentage) * total) or (
        count is not None and failed > int(count)
    )


def _results(map_run_record: Any) -> dict[int, dict[str, Any]]:
    if not hasattr(map_run_record, "_thumbs_results"):
        map_run_record._thumbs_results = {}
    return map_run_record._thumbs_results  # type: ignore[no-any-return]


def _write_result_files(env: Any, parameters: dict[str, Any], record: Any) -> str:
    """AWS's result files: ``{Prefix}/{map run id}/SUCCEEDED_n.json``, ``FAILED_n.json`` and the manifest."""
    from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

    s3 = boto_client_for(region=env.aws_execution_details.region, service="s3")
    prefix = parameters.get("Prefix") or ""
    folder = (f"{prefix.rstrip('/')}/" if prefix else "") + record.map_run_arn.split(":")[-1]
    files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    results = [r for _, r in sorted(_results(record).items())]
    for status in ("SUCCEEDED", "FAILED"):  # AWS puts FAILED, TIMED_OUT and ABORTED children in FAILED files
        chosen = [
            {k: v for k, v in r.items() if k != "items"}
            for r in results
            if (r["Status"] == "SUCCEEDED") == (status == "SUCCEEDED")
        ]
        for number, start in enumerate(range(0, len(chosen), RESULTS_PER_FILE)):
            body = json.dumps(chosen[start : start + RESULTS_PER_FILE]).encode()
            key = f"{folder}/{status}_{number}.json"
            s3.put_object(Bucket=parameters["Bucket"], Key=key, Body=body)
            files[status].append({"Key": key, "Size": len(body)})
    manifest = {"DestinationBucket": parameters["Bucket"], "MapRunArn": record.map_run_arn, "ResultFiles": files}
    key = f"{folder}/manifest.json"
    s3.put_object(Bucket=parameters["Bucket"], Key=key, Body=json.dumps(manifest, indent=2).encode())
    return key


def _patch_distributed_map() -> None:
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import (
        resource_eval_s3 as reader_s3,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        distributed_iteration_component as distributed,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker as worker_module,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.job import JobPool
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
        resource_eval_s3 as writer_s3,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    def _map_run(self: Any, env: Any, eval_input: Any) -> None:
        items: list[Any] = env.stack.pop()
        record = eval_input.map_run_record
        extras = getattr(self, "_thumbs_extras", {})
        batcher = extras.get("ItemBatcher")
        inputs: list[Any] = items
        if batcher is not None:
            context = env.states.context_object.context_object_data
            batch_input = _evaluate_paths(batcher.get("BatchInput"), env.states.get_input(), context)
            inputs = batches(items, batcher, batch_input)
        _results(record).clear()
        pool = JobPool(job_program=self._get_iteration_program(), job_inputs=inputs)
        pool._thumbs_batched = batcher is not None  # the workers count a batch's items, as AWS does
        most = record.max_concurrency
        workers = len(inputs) if most == distributed.DEFAULT_MAX_CONCURRENCY_VALUE else min(most, len(inputs))
        for _ in range(workers):
            self._launch_worker(env=env, eval_input=eval_input, job_pool=pool)
        pool.await_jobs()
        if (worker_exception := pool.get_worker_exception()) is not None:
            raise worker_exception
        outputs = [closed.job_output for closed in pool.get_closed_jobs()]
        failed = sum(r["items"] for r in _results(record).values() if r["Status"] != "SUCCEEDED")
        if _threshold_exceeded(extras, failed, len(items)):
            writer = extras.get("ResultWriter")
            if writer is not None:  # AWS writes the results of a failed Map Run too
                context = env.states.context_object.context_object_data
                parameters = _evaluate_paths(writer.get("Parameters") or {}, env.states.get_input(), context)
                _write_result_files(env, parameters, record)
            cause = "The specified tolerated failure threshold was exceeded"
            raise FailureEventException(
                failure_event=FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(
                        taskFailedEventDetails=TaskFailedEventDetails(
                            error="States.ExceedToleratedFailureThreshold", cause=cause
                        )
                    ),
                )
            )
        env.stack.append(outputs)

    def _eval_job(self: Any, env: Any, job: Any) -> None:
        from moto.stepfunctions.parser.asl.eval.program_state import ProgramError, ProgramStopped
        from moto.stepfunctions.parser.asl.eval.states import ItemData, MapData

        record = self._map_run_record
        size = len(job.job_input["Items"]) if getattr(self._job_pool, "_thumbs_batched", False) else 1
        record.item_counter.total.count(size)
        record.item_counter.running.count(size)
        record.execution_counter.total.count()
        record.execution_counter.running.count()
        started = _utcnow()
        status, output, error, cause = "FAILED", None, None, None
        try:
            env.states.context_object.context_object_data["Map"] = MapData(
                Item=ItemData(Index=job.job_index, Value=job.job_input)
            )
            env.states.reset(job.job_input)
            env.stack.append(env.states.get_input())
            self._eval_input(env_frame=env)
            job.job_program.eval(env)
            end = env.program_state()
            if isinstance(end, ProgramError):
                error, cause = (end.error or {}).get("error"), (end.error or {}).get("cause")
            elif isinstance(end, ProgramStopped):
                status = "ABORTED"
            else:
                status, output = "SUCCEEDED", env.states.get_input()
        except FailureEventException as exc:
            error, cause = exc.extract_error_cause_pair() or (None, None)
        except Exception as exc:  # noqa: BLE001 - the child's own failure, counted as moto's worker counts it
            status = "TIMED_OUT" if type(exc).__name__ == "EvalTimeoutError" else "FAILED"
            error, cause = type(exc).__name__, str(exc)
        finally:
            counter = {"SUCCEEDED": "succeeded", "FAILED": "failed", "ABORTED": "aborted", "TIMED_OUT": "timed_out"}
            getattr(record.item_counter, counter[status]).count(size)
            getattr(record.execution_counter, counter[status]).count()
            record.item_counter.results_written.count(size)
            record.execution_counter.results_written.count()
            record.item_counter.running.offset(-size)
            record.execution_counter.running.offset(-1)
            job.job_output = output
            _results(record)[job.job_index] = {
                "items": size,
                "ExecutionArn": f"{record.map_state_machine_arn.replace(':stateMachine:', ':execution:')}:"
                f"{job.job_index:08d}",
                "Input": json.dumps(job.job_input),
                "StartDate": started.isoformat(),
                "StopDate": _utcnow().isoformat(),
                "Status": status,
                **({"Output": json.dumps(output)} if status == "SUCCEEDED" else {"Error": error, "Cause": cause}),
            }

    def _handle_list_objects_v2(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        s3 = reader_s3.ResourceEvalS3._get_s3_client(
            resource_runtime_part=resource_runtime_part, state_credentials=state_credentials
        )
        parameters = env.stack.pop()
        items: list[dict[str, Any]] = []
        for page in s3.get_paginator("list_objects_v2").paginate(**parameters):
            for obj in page.get("Contents", []):
                items.append(
                    {  # as AWS hands each object to the Map: Etag keeps its quotes, LastModified in epoch seconds
                        "Etag": obj["ETag"],
                        "Key": obj["Key"],
                        "LastModified": obj["LastModified"].timestamp(),
                        "Size": obj["Size"],
                        "StorageClass": obj.get("StorageClass", "STANDARD"),
                    }
                )
        env.stack.append(items)

    def _handle_put_object(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        parameters = env.stack.pop()
        env.stack.pop()
        record = env.map_run_record_pool_manager.get_all().pop()
        key = _write_result_files(env, parameters, record)
        env.stack.append(
            {"MapRunArn": record.map_run_arn, "ResultWriterDetails": {"Bucket": parameters["Bucket"], "Key": key}}
        )

    distributed.DistributedIterationComponent._map_run = _map_run
    worker_module.DistributedItemProcessorWorker._eval_job = _eval_job
    reader_s3.ResourceEvalS3._handle_list_objects_v2 = staticmethod(_handle_list_objects_v2)
    writer_s3.ResourceEvalS3._handle_put_object = staticmethod(_handle_put_object)


# 16. StartExecution tasks: parameters and responses shaped by the API model -------------------------
def _patch_start_execution_task() -> None:
    import functools

    import botocore.session
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    model = botocore.session.get_session().get_service_model("stepfunctions")

    @functools.cache
    def operation(action: str) -> Any:  # "start_execution" -> the StartExecution operation model
        return model.operation_model("".join(part.capitalize() for part in action.split("_")))

    original = StateTaskServiceSfn._normalise_parameters

    def _normalise_parameters(
        self: Any, parameters: dict[str, Any], boto_service_name: Any = None, service_action_name: Any = None
    ) -> None:
        original(self, parameters, boto_service_name, service_action_name)  # Input as a JSON string
        action = self._get_boto_service_action(service_action_name)
        self._to_boto_request(parameters, operation(action).input_shape)
        if action == "start_execution":  # AWS names an unnamed execution with a UUID; moto would say "None"
            parameters.setdefault("name", str(uuid.uuid4()))

    def _normalise_response(
        self: Any, response: Any, boto_service_name: Any = None, service_action_name: Any = None
    ) -> None:
        shape = operation(self._get_boto_service_action(service_action_name)).output_shape
        self._from_boto_response(response, shape)
        if isinstance(response, dict):  # dates as AWS writes them into the state's output
            for key, value in list(response.items()):
                if isinstance(value, datetime.datetime):
                    response[key] = value.timestamp() * 1000

    original_sync2 = StateTaskServiceSfn._build_sync2_resolver

    def _build_sync2_resolver(
        self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: Any, state_credentials: Any
    ) -> Any:
        arn = env.stack[-1]["ExecutionArn"]  # the StartExecution response the original reads
        ended = _awaited_ends.setdefault(arn, threading.Event())
        resolve = original_sync2(self, env, resource_runtime_part, normalised_parameters, state_credentials)

        def wait_then_resolve() -> Any:
            try:
                result = resolve()  # it may have ended before anyone waited
                if result is None and ended.wait(SYNC_WAIT_SECONDS):
                    result = resolve()
            except BaseException:  # the child failed: the task fails with it
                _awaited_ends.pop(arn, None)
                raise
            if result is not None:
                _awaited_ends.pop(arn, None)
            return result

        return wait_then_resolve

    StateTaskServiceSfn._normalise_parameters = _normalise_parameters
    StateTaskServiceSfn._normalise_response = _normalise_response
    StateTaskServiceSfn._build_sync2_resolver = _build_sync2_resolver


# 21. CopyObject: atomic for readers, and honouring the destination's If-Match and If-None-Match ----
_whole_objects = threading.RLock()  # a copy, and each read of an object, hold it


def _patch_conditional_copy() -> None:
    from moto.s3.exceptions import MissingKey, PreconditionFailed
    from moto.s3.responses import S3Response

    original_copy, original_head, original_get = S3Response.copy_object, S3Response.head_object, S3Response.get_object

    def copy_object(self: Any) -> Any:
        if_match, if_none_match = self.headers.get("If-Match"), self.headers.get("If-None-Match")
        with _whole_objects:
            if if_match or if_none_match:
                current = self.backend.get_object(self.bucket_name, self.parse_key_name())
                if if_match:
                    if current is None:
                        raise MissingKey(key=self.parse_key_name())  # AWS: 404 NoSuchKey
                    if if_match.strip('"') != current.etag.strip('"'):
                        raise PreconditionFailed("If-Match")
                if if_none_match == "*" and current is not None:
                    raise PreconditionFailed("If-None-Match")
            return original_copy(self)

    def head_object(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _whole_objects:
            return original_head(self, *args, **kwargs)

    def get_object(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _whole_objects:
            return original_get(self, *args, **kwargs)

    S3Response.copy_object, S3Response.head_object, S3Response.get_object = copy_object, head_object, get_object
