"""Every touch of moto's private internals, in one small module, each with a contract test.

moto gives the embedded default its in-process AWS (S3, DynamoDB, EventBridge, SQS and Step
Functions with LocalStack's state-machine interpreter). What it does not do the way AWS
does, or does slowly, is supplied here:

1. Lambda ``Invoke`` would need Docker: it is routed to the local Lambda runtime.
2. EventBridge cannot deliver to Step Functions or Lambda targets: those targets are
   delivered here (StartExecution over the public API; Lambda as an async invocation).
3. S3's EventBridge event has a fixed sequencer, a numeric ``time`` and ``eTag`` spelled
   unlike AWS: the event is built here as AWS sends it, with an increasing sequencer.
4. Executions do not emit "Step Functions Execution Status Change" events: they are put
   on the default bus here when an execution ends.
5. The server finds the backend for every request by listing moto's package folder and
   trying hundreds of URL patterns, under one lock: the answer per host is cached here.
6. The interpreter builds a new JSONPath parser (PLY tables and all) for every path it
   evaluates: parsed paths are cached here (they are immutable; ``find`` does not change them).
7. Every execution re-parses the definition with ANTLR (about 80 ms under load): the parse
   tree is cached per definition and only the cheap build of fresh components runs each time.
8. Every Task builds a new boto3 client (service model from JSON, about 35 ms): clients are
   reused per region, service and server port; boto3 clients are thread-safe.

moto is pinned (``MOTO_VERSION``); ``tests/test_moto_internals.py`` fails loudly on an
upgrade that moves any of these seams.
"""

from __future__ import annotations

import datetime
import itertools
import json
import threading
from collections.abc import Callable
from typing import Any

import moto

MOTO_VERSION = "5.2.5"

# (payload, function_error) -> what Lambda's Invoke returns: FunctionError "Unhandled" on failure.
LambdaInvoker = Callable[[str, bytes], tuple[bytes, str | None]]
AsyncLambdaInvoker = Callable[[str, bytes], None]
StartExecution = Callable[[str, str], None]
ExecutionEnded = Callable[[str, str, dict[str, Any]], None]

_installed: dict[str, Any] = {}
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
) -> None:
    """Patch the seams. Idempotent: a second call replaces the callbacks."""
    check_version()
    _installed.update(
        invoke=invoke, invoke_async=invoke_async, start_execution=start_execution, execution_ended=execution_ended
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
    _installed["patched"] = True


# 1. Lambda Invoke -> local runtime -------------------------------------------------------------
def _patch_lambda_invoke() -> None:
    from moto.awslambda.models import LambdaBackend

    def invoke(
        self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        fn = self.get_function(function_name, qualifier)
        payload = body if isinstance(body, bytes) else (body or "{}").encode()
        result, function_error = _installed["invoke"](fn.function_name, payload)
        if function_error:
            response_headers["x-amz-function-error"] = function_error
        response_headers["Content-Length"] = str(len(result))
        return result

    LambdaBackend.invoke = invoke


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
        status = execution.exec_status.value if execution.exec_status else "FAILED"
        detail = {
            "executionArn": execution.exec_arn,
            "stateMachineArn": execution.state_machine_arn,
            "name": execution.name,
            "status": status,
            "startDate": int(execution.start_date.timestamp() * 1000),
            "stopDate": int(execution.stop_date.timestamp() * 1000) if execution.stop_date else None,
            "input": json.dumps(execution.input_data),
            "output": json.dumps(execution.output) if execution.output is not None else None,
            "error": getattr(execution, "error", None),
            "cause": getattr(execution, "cause", None),
        }
        _installed["execution_ended"](execution.account_id, execution.region_name, detail)

    BaseExecutionWorkerCommunication.terminated = terminated


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
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    if "definition_trees" in _installed:
        return
    original = asl_parser.AmazonStateLanguageParser.parse
    trees: dict[str, Any] = {}
    _installed["definition_trees"] = trees

    def parse(definition: str) -> tuple[Any, Any]:
        # The tree is ANTLR's read-only parse result; components (which hold evaluation
        # state) are built fresh from it for every execution, as the original does.
        tree = trees.get(definition)
        if tree is None:
            program, tree = original(definition)  # raises on a bad definition: nothing cached
            trees[definition] = tree
            return program, tree
        return Preprocessor().visit(tree), tree

    asl_parser.AmazonStateLanguageParser.parse = staticmethod(parse)


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
                clients[key] = boto3.client(
                    service,
                    region_name=region,
                    endpoint_url=model.meta.endpoint_url,
                    aws_access_key_id="local",
                    aws_secret_access_key="local",
                    config=model.meta.config.merge(Config(max_pool_connections=64)),
                )
            return clients[key]

    lambda_eval_utils.boto_client_for = boto_client_for
