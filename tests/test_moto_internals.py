"""Contract tests for every seam in thumbs/local/moto_internals.py: a moto upgrade that moves one fails here."""

from __future__ import annotations

import inspect
import io
import json
import time
import uuid
from typing import Any

import moto
import pytest

from tests.images import encode, photo
from thumbs.local import moto_internals
from thumbs.local.stack import LocalStack
from thumbs.local.state import StateFolder
from thumbs.template import load_template


def test_moto_is_the_pinned_version():
    assert moto.__version__ == moto_internals.MOTO_VERSION
    moto_internals.check_version()


def test_the_private_seams_still_exist_with_the_shapes_we_patch():
    from moto.awslambda.models import LambdaBackend
    from moto.events.models import Rule
    from moto.s3 import notifications
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution

    assert list(inspect.signature(LambdaBackend.invoke).parameters) == [
        "self", "function_name", "qualifier", "body", "headers", "response_headers"
    ]  # fmt: skip
    assert list(inspect.signature(Rule.send_to_targets).parameters) == ["self", "original_event", "transform_input"]
    assert list(inspect.signature(notifications._send_event_bridge_message).parameters) == [
        "account_id", "bucket", "event_name", "key"
    ]  # fmt: skip
    assert notifications._detail_type("s3:ObjectCreated:Put") == "Object Created"
    assert "terminated" in vars(BaseExecutionWorkerCommunication)
    init = inspect.getsource(Execution.__init__)
    for attribute in ("exec_arn", "state_machine_arn", "input_data", "start_date", "account_id", "region_name"):
        assert f"self.{attribute}" in init, attribute
    from moto.core.config import default_user_config

    assert "execute_state_machine" in default_user_config["stepfunctions"]
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    assert list(inspect.signature(DomainDispatcherApplication.get_backend_for_host).parameters) == ["self", "host"]


def test_parsed_json_paths_are_cached_and_still_evaluate(stack):
    from moto.stepfunctions.parser.asl.utils import json_path

    assert hasattr(json_path.parse, "cache_info")  # the seam: the module-level parse extract_json calls
    data = {"image": {"targets": [{"size": 1}, {"size": 2}]}}
    assert json_path.extract_json("$.image.targets", data) == [{"size": 1}, {"size": 2}]
    assert json_path.extract_json("$.image.targets", {"image": {"targets": []}}) == []
    assert json_path.parse("$.a") is json_path.parse("$.a")


def test_the_cached_backend_lookup_answers_as_moto_does(stack):
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    dispatcher = DomainDispatcherApplication(create_app=lambda backend: None)
    for host in ("s3.us-east-1.amazonaws.com", "states.us-east-1.amazonaws.com", "lambda.us-east-1.amazonaws.com"):
        first = dispatcher.get_backend_for_host(host)
        assert first is not None and dispatcher.get_backend_for_host(host) == first


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    state = StateFolder(tmp_path_factory.mktemp("state"))
    with LocalStack(load_template(state.cache_dir), state.root) as local:
        local.deploy()
        yield local


def wait_for(condition, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (value := condition()) is not None:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the local stack")


def test_lambda_invoke_runs_the_handler_in_the_local_runtime(stack):
    response = stack.client("lambda").invoke(
        FunctionName=stack.runtime and next(n for n in stack.runtime.functions if "Record" in n),
        Payload=json.dumps({"status": "MAYBE"}).encode(),
    )
    assert response["FunctionError"] == "Unhandled"
    body = json.loads(response["Payload"].read())
    assert body["errorType"] == "InvalidEvent" and "got 'MAYBE'" in body["errorMessage"]


def test_s3_events_reach_the_state_machine_shaped_as_aws_sends_them(stack):
    s3 = stack.client("s3")
    before = len(stack.ended)
    for key in ("first.jpg", "second.jpg"):
        s3.put_object(Bucket=stack.upload_bucket, Key=key, Body=encode(photo(32, 32), "JPEG"))
    assert stack.wait_for_executions(before + 2, timeout=60)
    inputs = [json.loads(detail["input"]) for detail in stack.ended[before:]]
    by_key = {event["detail"]["object"]["key"]: event for event in inputs}
    first, second = by_key["first.jpg"], by_key["second.jpg"]
    assert first["detail-type"] == "Object Created" and first["source"] == "aws.s3"
    assert first["detail"]["bucket"]["name"] == stack.upload_bucket
    assert set(first["detail"]["object"]) >= {"key", "size", "etag", "sequencer"}
    assert "eTag" not in first["detail"]["object"]
    assert isinstance(first["time"], str) and first["time"].endswith("Z")
    assert int(second["detail"]["object"]["sequencer"], 16) > int(first["detail"]["object"]["sequencer"], 16)


def test_rules_deliver_to_step_functions_targets(stack):
    events = stack.client("events")
    events.put_rule(Name="contract", EventPattern=json.dumps({"source": ["contract.test"]}))
    events.put_targets(Rule="contract", Targets=[{"Id": "sm", "Arn": stack.state_machine_arn}])
    before, ended = stack.started_executions, len(stack.ended)
    events.put_events(Entries=[{"Source": "contract.test", "DetailType": "x", "Detail": json.dumps({"n": 1})}])
    assert stack.started_executions == before + 1
    events.remove_targets(Rule="contract", Ids=["sm"])
    assert stack.wait_for_executions(ended + 1, timeout=60)
    detail = stack.ended[ended]
    assert json.loads(detail["input"])["source"] == "contract.test"
    assert detail["status"] == "FAILED" and detail["error"] == "InvalidEvent"  # validate refuses non-S3 events


def test_a_failed_execution_emits_a_status_change_event_that_records_failed(stack):
    sfn = stack.client("stepfunctions")
    event = {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created", "source": "aws.s3",
        "account": "123456789012", "time": "2026-11-29T00:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {
            "version": "0", "bucket": {"name": stack.upload_bucket},
            "object": {"key": "gone.jpg", "size": 1, "etag": "abc", "sequencer": "00AA"},
            "request-id": "x", "requester": "x", "reason": "PutObject",
        },
    }  # fmt: skip
    stack.faults.pending["validate"] = ["transient"] * 5
    before, name = len(stack.ended), str(uuid.uuid4())
    sfn.start_execution(stateMachineArn=stack.state_machine_arn, name=name, input=json.dumps(event))
    assert stack.wait_for_executions(before + 1, timeout=90)
    (detail,) = [d for d in stack.ended if d["name"] == name]
    assert detail["status"] == "FAILED" and detail["error"] == "TransientError"
    assert json.loads(detail["input"]) == event and detail["stopDate"] >= detail["startDate"]
    table = stack.client("dynamodb")
    item = wait_for(
        lambda: table.get_item(TableName=stack.table_name, Key={"source_id": {"S": f"s3://{stack.upload_bucket}/gone.jpg"}}).get("Item")
    )  # fmt: skip
    assert item["status"]["S"] == "FAILED" and item["error"]["M"]["code"]["S"] == "TransientError"


def test_definitions_are_parsed_once_into_one_shared_program(stack):
    import inspect

    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    assert "AmazonStateLanguageParser.parse(" in inspect.getsource(ExecutionWorker._get_evaluation_entrypoint)
    definition = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}})
    first, tree = AmazonStateLanguageParser.parse(definition)
    second, same_tree = AmazonStateLanguageParser.parse(definition)
    assert same_tree is tree and second is first
    with pytest.raises(ASLParserException):
        AmazonStateLanguageParser.parse('{"StartAt": "A", "States": {}}x')


# Classes whose instances moto makes while it evaluates (per execution, Map run or branch),
# never as part of a parsed program: they may hold state.
_RUNTIME_CLASSES = {"Counter", "MapRunRecord", "IterationWorker", "JobPool", "BranchWorker", "BranchWorkerPool"}


def test_parsed_components_hold_no_evaluation_state():
    """Seam 7 shares one program between executions: no component method may write to the component.

    The one exception is EvalComponent.heap_key, assigned on first use; seam 7 assigns it when
    the program is built, so that two executions cannot race to set it.
    """
    import ast
    from pathlib import Path

    import moto.stepfunctions.parser.asl.component as components

    writes = []
    for path in sorted(Path(components.__file__).parent.rglob("*.py")):
        for cls in (n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)):
            if cls.name in _RUNTIME_CLASSES:
                continue
            for method in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
                if method.name in ("__init__", "from_state_props"):
                    continue
                for node in ast.walk(method):
                    targets = node.targets if isinstance(node, ast.Assign) else []
                    targets += [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                        targets += [node.func.value] if node.func.attr in _MUTATORS else []
                    for target in targets:
                        if isinstance(target, ast.Attribute) and getattr(target.value, "id", None) == "self":
                            writes.append(f"{cls.name}.{method.name}: self.{target.attr}")
    assert writes == ["EvalComponent.heap_key: self.__heap_key"]


_MUTATORS = {"append", "add", "update", "pop", "clear", "extend", "setdefault", "remove", "insert"}


def test_every_component_of_a_parsed_program_has_its_heap_key(stack):
    from moto.stepfunctions.parser.asl.component.common.retry.max_attempts_decl import MaxAttemptsDecl
    from moto.stepfunctions.parser.asl.component.component import Component
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    definition = json.dumps({
        "StartAt": "M",
        "States": {"M": {
            "Type": "Map", "End": True,
            "ItemProcessor": {"StartAt": "T", "States": {"T": {
                "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "End": True,
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}],
            }}},
        }},
    })  # fmt: skip
    program, _ = AmazonStateLanguageParser.parse(definition)
    found: list[object] = []

    def walk(value: object, seen: set[int]) -> None:
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, MaxAttemptsDecl):
            found.append(value)
        if isinstance(value, dict):
            children = list(value.values())
        elif isinstance(value, (list, tuple)):
            children = list(value)
        elif isinstance(value, Component):
            children = list(vars(value).values())
        else:
            return
        for child in children:
            walk(child, seen)

    walk(program, set())
    assert found, "the Map's Retry was not reached"
    assert all(vars(decl).get("_EvalComponent__heap_key") for decl in found)


def test_interpreter_clients_are_reused_and_reach_the_local_endpoint(stack):
    import ast
    import inspect

    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.utils import boto_client

    # The shared client is only equivalent because moto's ignores the credentials it is given.
    function = ast.parse(inspect.getsource(boto_client.boto_client_for)).body[0]
    used = {node.id for statement in function.body for node in ast.walk(statement) if isinstance(node, ast.Name)}
    assert "state_credentials" not in used and "boto3" in used
    first = lambda_eval_utils.boto_client_for(region="us-east-1", service="lambda", state_credentials=object())
    assert lambda_eval_utils.boto_client_for(region="us-east-1", service="lambda") is first
    assert first.meta.endpoint_url == f"http://localhost:{stack.port}"
    assert first.meta.config.max_pool_connections >= 64
    # A Lambda task waits for a free worker before it sends Invoke (not as an open connection).
    assert "invocation_response = lambda_client.invoke(**parameters)" in inspect.getsource(lambda_eval_utils)
    assert isinstance(first, moto_internals._AdmittedLambda)
    assert moto_internals._installed["admitted"] == stack.runtime.admitted
    with pytest.MonkeyPatch.context() as env:  # a later stack in the same process gets its own
        env.setenv("MOTO_PORT", "1")
        other = lambda_eval_utils.boto_client_for(region="us-east-1", service="lambda")
        assert other is not first and other.meta.endpoint_url == "http://localhost:1"


def test_a_direct_invoke_answers_as_the_invoke_api_does(stack):
    """Seam 8's direct path: the same fields and payload as Invoke through moto's Lambda API."""
    record = next(n for n in stack.runtime.functions if "Record" in n)
    client = stack.client("lambda")
    for payload in (json.dumps({"status": "MAYBE"}), json.dumps({"status": "MAYBE"}).encode()):
        direct = moto_internals._AdmittedLambda(client).invoke(FunctionName=record, Payload=payload)
        api = client.invoke(FunctionName=record, Payload=payload)
        fields = {k: v for k, v in api.items() if k in ("StatusCode", "FunctionError")}
        # and ExecutedVersion, which AWS's Invoke returns (moto's leaves it out)
        assert {k: v for k, v in direct.items() if k != "Payload"} == {**fields, "ExecutedVersion": "$LATEST"}
        direct_body, api_body = json.loads(direct["Payload"].read()), json.loads(api["Payload"].read())
        assert direct_body["errorType"] == api_body["errorType"] == "InvalidEvent"
        assert direct_body["errorMessage"] == api_body["errorMessage"]
    # a function the runtime does not run still goes to moto's Lambda, and fails as AWS fails it
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        moto_internals._AdmittedLambda(client).invoke(FunctionName="NotInTheStack", Payload=b"{}")


def test_a_throttled_invoke_answers_as_lambda_does_on_each_path(stack):
    """Seams 1 and 8 at a concurrency limit: the API answers 429 TooManyRequestsException with its
    reason; the interpreter's direct path fails the task with the error Step Functions names it by."""
    import dataclasses

    from botocore.exceptions import ClientError

    record = next(n for n in stack.runtime.functions if "Record" in n)
    spec = stack.runtime.functions[record]
    client = stack.client("lambda")
    stack.runtime.functions[record] = dataclasses.replace(spec, reserved_concurrency=0)  # Lambda: throttle all
    try:
        with pytest.raises(ClientError) as raised:
            client.invoke(FunctionName=record, Payload=b"{}")
        error = raised.value.response
        assert error["Error"]["Code"] == "TooManyRequestsException"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert error["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        direct = moto_internals._AdmittedLambda(client).invoke(FunctionName=record, Payload=b"{}")
        assert direct["FunctionError"] == "Unhandled"
        body = json.loads(direct["Payload"].read())
        assert body["errorType"] == "Lambda.TooManyRequestsException" and "Rate Exceeded" in body["errorMessage"]
    finally:
        stack.runtime.functions[record] = spec


def test_an_ended_execution_read_from_the_interpreter_matches_the_api(stack):
    """Seam 18: what a saved execution holds is what DescribeExecution and GetExecutionHistory return."""
    from thumbs.local.stack import ACCOUNT, REGION
    from thumbs.plain import to_json

    s3, sfn = stack.client("s3"), stack.client("stepfunctions")
    before = len(stack.ended)
    s3.put_object(Bucket=stack.upload_bucket, Key="seam18.jpg", Body=encode(photo(64, 48), "JPEG"))
    s3.put_object(Bucket=stack.upload_bucket, Key="seam18.txt.jpg", Body=b"not an image")
    assert stack.wait_for_executions(before + 2, timeout=60)
    for detail in stack.ended[before:]:
        arn = detail["executionArn"]
        api = sfn.describe_execution(executionArn=arn)
        api["events"] = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        ours = moto_internals.ended_execution(ACCOUNT, REGION, arn)
        assert len(ours["events"]) > 5
        expected, got = to_json(api), to_json(ours)
        for field in ours:
            if field == "redriveCount":
                assert got[field] == expected.get(field, 0)
            else:
                assert got[field] == expected.get(field), field
    # EventBridge's StartExecution goes to the backend as the API handler does
    from moto.stepfunctions.responses import StepFunctionResponse

    assert "self.stepfunction_backend.start_execution(" in inspect.getsource(StepFunctionResponse.start_execution)


def test_a_saved_execution_dropped_from_memory_answers_as_before(stack):
    """Seam 19: once dropped, DescribeExecution, the history and ListExecutions come from the saved file."""
    from thumbs.local.stack import ACCOUNT, REGION

    saved: dict[str, dict] = {}
    previous = moto_internals._installed["load_execution"], moto_internals._installed["stored_executions"]
    moto_internals._installed["load_execution"] = saved.get
    moto_internals._installed["stored_executions"] = lambda arn: [
        {k: v for k, v in e.items() if k != "events"} for e in saved.values() if e["stateMachineArn"] == arn
    ]
    sfn = stack.client("stepfunctions")
    try:
        before = len(stack.ended)
        stack.client("s3").put_object(Bucket=stack.upload_bucket, Key="seam19.jpg", Body=encode(photo(48, 32), "JPEG"))
        assert stack.wait_for_executions(before + 1, timeout=60)
        arn = stack.ended[before]["executionArn"]
        described = sfn.describe_execution(executionArn=arn)
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        ended = moto_internals.ended_execution(ACCOUNT, REGION, arn)
        saved[arn] = {
            **ended,
            "input": json.loads(ended["input"]),
            "output": json.loads(ended["output"]),
            "definition": sfn.describe_state_machine(stateMachineArn=stack.state_machine_arn)["definition"],
        }
        assert moto_internals.forget_execution(ACCOUNT, REGION, arn) is True
        assert moto_internals.forget_execution(ACCOUNT, REGION, arn) is False  # gone already
        listed = sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
        again = sfn.describe_execution(executionArn=arn)  # restored from "the file"
        history_again = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    finally:
        moto_internals._installed["load_execution"], moto_internals._installed["stored_executions"] = previous
    assert [e["executionArn"] for e in listed].count(arn) == 1
    for field in ("status", "input", "output", "startDate", "stopDate", "name"):
        assert again[field] == described[field], field
    assert [e["type"] for e in history_again] == [e["type"] for e in history]


def test_models_and_interpreter_threads_are_not_kept_for_the_life_of_the_process(stack):
    """Seam 20: moto's instance lists hold weakly; finished interpreter threads are let go."""
    import gc

    from moto.core.common_models import BaseModel
    from moto.core.model_instances import model_data
    from moto.s3.models import FakeKey
    from moto.stepfunctions.parser.utils import TMP_THREADS

    assert "instances_tracked.append(instance)" in inspect.getsource(BaseModel.__new__)
    assert "self._value_buffer.close()" in inspect.getsource(FakeKey.dispose)
    assert isinstance(FakeKey.instances_tracked, moto_internals._WeakInstances)
    assert all(isinstance(m.instances_tracked, moto_internals._WeakInstances) for m in model_data["s3"].values())
    gc.collect()
    alive = len(FakeKey.instances_tracked)
    made = [FakeKey.__new__(FakeKey) for _ in range(200)]  # as moto makes one per request
    for key in made:
        key.disposed, key._value_buffer, key.multipart = False, io.BytesIO(b"x"), None
    assert len(FakeKey.instances_tracked) == alive + 200 and made[0] in list(FakeKey.instances_tracked)
    del made, key
    gc.collect()
    assert len(FakeKey.instances_tracked) == alive  # moto let go of them, so the list does too
    before = len(stack.ended)
    for index in range(3):
        stack.client("s3").put_object(
            Bucket=stack.upload_bucket, Key=f"seam20-{index}.jpg", Body=encode(photo(40, 30), "JPEG")
        )
    assert stack.wait_for_executions(before + 3, timeout=60)
    finished = [thread for thread in TMP_THREADS if not thread.is_alive()]
    assert len(finished) < 30  # at most those of executions still ending, never every one since the start


def test_moto_s_ec2_regions_are_those_boto3_lists():
    """Seam 17: the region list imported through one session is the one three sessions give."""
    import boto3
    from moto.ec2.models import availability_zones_and_regions as regions

    assert "Session().get_available_regions(" in inspect.getsource(regions)
    session = boto3.Session()
    expected = {
        *session.get_available_regions("ec2"),
        *session.get_available_regions("ec2", partition_name="aws-us-gov"),
        *session.get_available_regions("ec2", partition_name="aws-cn"),
    }
    assert expected <= {region.name for region in regions.RegionsAndZonesBackend.regions}
    assert boto3.Session.get_available_regions.__module__ == "boto3.session"  # put back after the import


def test_the_engine_s_preload_warms_what_moto_keeps_for_the_process():
    """Seam 22: the caches the warm engine fills are moto's process-wide ones, and still exist."""
    from functools import _lru_cache_wrapper

    from moto.core.base_backend import AccountSpecificBackend
    from moto.core.routing import ServiceOperationRouter, get_service_router
    from moto.core.utils import get_service_model
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    # cached per process, so what the engine builds its forks inherit
    assert isinstance(get_service_router, _lru_cache_wrapper) and isinstance(get_service_model, _lru_cache_wrapper)
    assert isinstance(inspect.getattr_static(AccountSpecificBackend, "get_session").__func__, _lru_cache_wrapper)
    assert "def _get_router(self, protocol" in inspect.getsource(ServiceOperationRouter)
    for service in moto_internals.PRELOADED_SERVICES:
        for part in ("models", "responses", "urls"):
            assert __import__(f"moto.{service}.{part}")
    moto_internals.preload()
    router = get_service_router("lambda")
    assert router._routers  # the protocol routers were built, and kept on the cached router
    # the warm-up definition is one moto's grammar accepts, with the kinds of state the stack uses
    program, _ = AmazonStateLanguageParser.parse(json.dumps(moto_internals.WARM_DEFINITION))
    assert set(program.states.states) == set(moto_internals.WARM_DEFINITION["States"])


def test_the_server_seams_build_moto_s_app_with_aws_errors_for_what_it_lacks():
    from moto.moto_server import werkzeug_app

    assert list(inspect.signature(werkzeug_app.create_backend_app).parameters) == ["service"]
    assert moto_internals.request_handler() is werkzeug_app.MotoRequestHandler
    app = moto_internals._create_backend_app("stepfunctions")
    assert NotImplementedError in app.error_handler_spec[None][None]
    body, status, headers = moto_internals.not_implemented_response("s3", "X is not supported <here>")
    assert status == 501 and "<Code>NotImplemented</Code>" in body and "&lt;here&gt;" in body
    body, status, headers = moto_internals.not_implemented_response("stepfunctions", "Y")
    assert json.loads(body) == {"__type": "NotImplemented", "message": "Y"} and headers["x-amzn-ErrorType"]
    assert "PutObject" in moto_internals.supported_operations("s3")
    assert "StartExecution" in moto_internals.supported_operations("stepfunctions")
    assert "ListStateMachineVersions" not in moto_internals.supported_operations("stepfunctions")


def test_the_redrive_seams_still_have_the_shapes_we_use():
    from moto.stepfunctions import models, responses
    from moto.stepfunctions.parser.asl.component.common.flow.start_at import StartAt
    from moto.stepfunctions.parser.asl.component.program.program import Program
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.iteration_worker import (
        IterationWorker,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventIdGenerator, EventManager
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
    from moto.stepfunctions.utils import PAGINATION_MODEL

    assert "def redrive_execution" not in inspect.getsource(responses)  # moto still has none of its own
    # Read the modules' files: once the seams are installed, the classes hold our replacements.
    iterations = inspect.getsource(inspect.getmodule(IterationWorker))
    assert "self._work_name = work_name" in iterations
    assert "def _eval_job(self, env: Environment, job: Job)" in iterations
    assert "job.job_output = job_output" in iterations
    manager = inspect.getsource(EventManager.__init__)
    assert "self._history_event_list = []" in manager and "self._event_id_gen = EventIdGenerator()" in manager
    assert "self._next_id" in inspect.getsource(EventIdGenerator)
    assert "env.next_state_name = self.start_at.start_at_name" in inspect.getsource(Program.eval)
    assert StartAt(start_at_name="Record").start_at_name == "Record"
    worker = inspect.getsource(ExecutionWorker)
    for used in ("self._execution_communication = exec_comm", "def _get_evaluation_environment(self)",
                 "def _get_evaluation_entrypoint(self)", "self._execution_communication.terminated()"):  # fmt: skip
        assert used in worker, used
    assert PAGINATION_MODEL["list_executions"]["unique_attribute"] == ["start_date", "execution_arn"]
    source = inspect.getsource(models.StepFunctionBackend)
    assert "def describe_execution(self, execution_arn: str) -> Execution:" in source
    assert "def _get_state_machine_for_execution(self, execution_arn: str)" in source


def test_the_redrive_point_is_the_last_state_entered_with_its_input_and_the_map_s_finished_iterations():
    definition = json.dumps(
        {"StartAt": "V", "States": {"V": {"Type": "Task", "Next": "M"}, "M": {"Type": "Map", "End": True}}}
    )

    def event(i, prev, kind, **details):
        return {"id": i, "previousEventId": prev, "type": kind, "timestamp": "2026-11-29T10:00:00.000Z", **details}

    def iteration(index):
        return {"mapIterationStartedEventDetails": {"name": "M", "index": index}}

    events = [
        event(1, 0, "ExecutionStarted"),
        event(2, 1, "TaskStateEntered", stateEnteredEventDetails={"name": "V", "input": "{}"}),
        event(3, 2, "TaskStateExited", stateExitedEventDetails={"name": "V", "output": '{"v": 1}'}),
        event(4, 3, "MapStateEntered", stateEnteredEventDetails={"name": "M", "input": '{"v": 1}'}),
        event(5, 4, "MapIterationStarted", **iteration(0)),
        event(6, 4, "MapIterationStarted", **iteration(1)),
        event(7, 5, "TaskStateEntered", stateEnteredEventDetails={"name": "R", "input": "0"}),
        event(8, 7, "TaskStateExited", stateExitedEventDetails={"name": "R", "output": '"zero"'}),
        event(9, 8, "MapIterationSucceeded", mapIterationSucceededEventDetails={"name": "M", "index": 0}),
        event(10, 6, "MapIterationFailed", mapIterationFailedEventDetails={"name": "M", "index": 1}),
        event(11, 10, "ExecutionFailed"),
        event(12, 6, "MapIterationSucceeded", mapIterationSucceededEventDetails={"name": "M", "index": 1}),
    ]
    state, state_input, plan = moto_internals.redrive_point(definition, events)
    assert (state, state_input) == ("M", {"v": 1})
    assert plan == {"M": {0: "zero"}}  # index 1 finished only after the run had failed: it runs again


def test_the_store_seams_still_have_the_shapes_we_replace():
    from moto.dynamodb.models import table as dynamodb_table
    from moto.s3 import models as s3_models
    from moto.s3 import utils as s3_utils

    store = inspect.getsource(s3_utils._VersionedKeyStore)
    assert "return self.__sgetitem__(key)[-1]" in store and "def _self_iterable(self)" in store
    assert "items = iteritems = _iteritems" in store and "values = itervalues = _itervalues" in store
    assert "self.keys = _VersionedKeyStore()" in inspect.getsource(s3_models.FakeBucket.__init__)
    parameters = inspect.signature(s3_models.FakeKey.__init__).parameters
    for name in ("name", "value", "account_id", "region_name", "storage", "etag", "bucket_name", "checksum_value"):
        assert name in parameters, name
    key = inspect.getsource(s3_models.FakeKey)
    for used in ("self._etag = etag", "self.contentsize = len(new_value)", "self._metadata = LowercaseDict()"):
        assert used in key, used
    # CopyObject sets the new key's metadata after putting it in place: why rows are written per request.
    assert "new_key.set_metadata(" in inspect.getsource(s3_models.S3Backend.copy_object)
    table = inspect.getsource(dynamodb_table.Table)
    for used in ("self.items[hash_value] = item", "elif hash_key in self.items:", "item = self.items.pop(hash_key)"):
        assert used in table, used


def test_the_s3_guard_knows_what_moto_dispatches_and_refuses_the_rest():
    known = moto_internals._s3_subresources()["known"]
    assert {"tagging", "uploads", "delete", "list-type", "notification", "lifecycle"} <= known
    assert moto_internals.s3_unsupported("DELETE", {"analytics": [""], "id": ["x"]}) == (
        "DeleteBucketAnalyticsConfiguration"
    )
    assert moto_internals.s3_unsupported("PUT", {"tagging": [""]}) is None
    assert moto_internals.s3_unsupported("GET", {"list-type": ["2"], "prefix": ["a"]}) is None


def test_the_distributed_map_seams_still_have_the_shapes_we_replace():
    from moto.stepfunctions.parser.asl.antlr.runtime import ASLLexer
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import resource_eval_s3
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        distributed_iteration_component as distributed,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker as worker,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.job import JobPool
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
        resource_eval_s3 as writer,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap

    # Still missing in moto (each line here is a piece of seam 15 to delete when moto grows it):
    assert not hasattr(ASLLexer.ASLLexer, "ITEMBATCHER")
    from moto.stepfunctions.parser.asl.parse import preprocessor

    assert "ToleratedFailurePercentage declarations currently have no effect" in inspect.getsource(preprocessor)
    assert 'contents = response["Contents"]' in inspect.getsource(resource_eval_s3)  # one page, none if empty
    assert "TODO: generate result files" in inspect.getsource(writer)
    # The shapes the replacements rely on (read from the module files: the classes hold ours).
    component = inspect.getsource(distributed)
    for used in ("def _map_run(", "input_items: list[json] = env.stack.pop()", "self._launch_worker(",
                 "env.stack.append(outputs)", "DEFAULT_MAX_CONCURRENCY_VALUE"):  # fmt: skip
        assert used in component, used
    processor = inspect.getsource(worker)
    for used in ("self._map_run_record = map_run_record", "def _eval_job(self, env: Environment, job: Job)",
                 "self._eval_input(env_frame=env)", "job.job_output = job_output"):  # fmt: skip
        assert used in processor, used
    assert list(inspect.signature(JobPool.__init__).parameters) == ["self", "job_program", "job_inputs"]
    assert "self.iteration_component.eval(env)" in inspect.getsource(inspect.getmodule(StateMap))
    assert "self.result_writer.eval(env)" in inspect.getsource(inspect.getmodule(StateMap))


def test_map_extras_are_taken_out_for_moto_and_batches_follow_aws_rules():
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"x.$": "$.x"}},
                "ToleratedFailurePercentage": 5,
                "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "b"}},
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                "End": True,
            }
        },
    }
    parsable, extras = moto_internals.split_map_extras(json.dumps(definition))
    map_state = json.loads(parsable)["States"]["M"]
    assert "ItemBatcher" not in map_state and "ToleratedFailurePercentage" not in map_state
    assert "ResultWriter" in map_state  # moto runs it; the extras keep a copy for a failed Map Run
    assert extras["M"]["ItemBatcher"]["MaxItemsPerBatch"] == 2 and extras["M"]["ToleratedFailurePercentage"] == 5
    plain = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}})
    assert moto_internals.split_map_extras(plain) == (plain, {})
    definition["States"]["M"]["ItemSelector"] = {"k.$": "$$.Map.Item.Value"}
    with pytest.raises(ValueError, match="ItemSelector with ItemBatcher"):
        moto_internals.split_map_extras(json.dumps(definition))

    items = [{"Key": str(i)} for i in range(5)]
    cut = moto_internals.batches(items, {"MaxItemsPerBatch": 2}, {"force": True})
    assert [len(b["Items"]) for b in cut] == [2, 2, 1] and all(b["BatchInput"] == {"force": True} for b in cut)
    by_bytes = moto_internals.batches(items, {"MaxInputBytesPerBatch": 30}, None)
    assert [len(b["Items"]) for b in by_bytes] == [2, 2, 1] and "BatchInput" not in by_bytes[0]
    exceeded = moto_internals._threshold_exceeded
    assert exceeded({}, 1, 100) and not exceeded({}, 0, 100)  # no tolerance set: any failure fails
    assert not exceeded({"ToleratedFailurePercentage": 5}, 5, 100) and exceeded(
        {"ToleratedFailurePercentage": 5}, 6, 100
    )
    assert exceeded({"ToleratedFailurePercentage": 50, "ToleratedFailureCount": 1}, 2, 100)  # either threshold


def _run_machine(stack, definition: dict, execution_input: dict) -> dict:
    sfn = stack.client("stepfunctions")
    arn = sfn.create_state_machine(
        name=f"contract-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{'1' * 12}:role/x",
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(execution_input))["executionArn"]
    return wait_for(
        lambda: ((d := sfn.describe_execution(executionArn=execution))["status"] != "RUNNING" and d) or None
    )


@pytest.mark.parametrize("tolerated", [50, 10])
def test_a_distributed_map_batches_lists_every_page_applies_tolerance_and_writes_results(stack, tolerated):
    s3, sfn = stack.client("s3"), stack.client("stepfunctions")
    source = f"contract-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=source)
    for i in range(1005):  # more than one ListObjectsV2 page
        s3.put_object(Bucket=source, Key=f"in/{i:04d}", Body=b"x")
    # A full batch (100 items) passes; the last, short batch fails: 5 of 1,005 items, 0.5%, is tolerated
    # at 50% (and at 10%). To fail past a tolerance, every batch but the first fails at 10%.
    full = "$.Items[99]" if tolerated == 50 else "$.Items[999]"
    child = {
        "StartAt": "Full",
        "States": {
            "Full": {"Type": "Choice", "Choices": [{"Variable": full, "IsPresent": True, "Next": "Done"}],
                     "Default": "Short"},
            "Short": {"Type": "Fail", "Error": "Short", "Cause": "not a full batch"},
            "Done": {"Type": "Pass", "Parameters": {"n.$": "States.ArrayLength($.Items)", "in.$": "$.BatchInput.p"},
                     "End": True},
        },
    }  # fmt: skip
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2",
                               "Parameters": {"Bucket": source, "Prefix.$": "$.prefix"}},
                "ItemBatcher": {"MaxItemsPerBatch": 100, "BatchInput": {"p.$": "$.prefix"}},
                "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, **child},
                "MaxConcurrency": 4,
                "ToleratedFailurePercentage": tolerated,
                "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                                 "Parameters": {"Bucket": source, "Prefix": "results"}},
                "End": True,
            }
        },
    }  # fmt: skip
    described = _run_machine(stack, definition, {"prefix": "in/"})
    (run,) = sfn.list_map_runs(executionArn=described["executionArn"])["mapRuns"]
    counts = sfn.describe_map_run(mapRunArn=run["mapRunArn"])
    assert counts["itemCounts"]["total"] == 1005 and counts["executionCounts"]["total"] == 11
    manifest_key = f"results/{run['mapRunArn'].rsplit(':', 1)[-1]}/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=source, Key=manifest_key)["Body"].read())
    results = {
        kind: [c for f in files for c in json.loads(s3.get_object(Bucket=source, Key=f["Key"])["Body"].read())]
        for kind, files in manifest["ResultFiles"].items()
    }
    if tolerated == 50:
        assert described["status"] == "SUCCEEDED"
        assert json.loads(described["output"])["ResultWriterDetails"]["Key"] == manifest_key
        assert counts["itemCounts"]["failed"] == 5 and counts["executionCounts"]["succeeded"] == 10
        assert json.loads(results["SUCCEEDED"][0]["Output"]) == {"n": 100, "in": "in/"}
        (short,) = results["FAILED"]
        assert short["Error"] == "Short" and len(json.loads(short["Input"])["Items"]) == 5
    else:
        assert described["status"] == "FAILED" and described["error"] == "States.ExceedToleratedFailureThreshold"
        assert counts["itemCounts"]["failed"] == 1005 and len(results["FAILED"]) == 11  # written all the same
    first = json.loads(results["FAILED"][0]["Input"])["Items"][0]
    assert set(first) == {"Etag", "Key", "LastModified", "Size", "StorageClass"} and first["Etag"].startswith('"')


def test_the_start_execution_seams_still_have_the_shapes_we_replace():
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
        state_task_service_callback,
        state_task_service_sfn,
    )

    base = inspect.getsource(state_task_service)
    # moto's port has no request/response shaping (LocalStack's does): what seam 16 supplies.
    assert "    def _normalise_parameters(\n        self,\n        parameters: dict," in base
    assert "def _to_boto_request(" in base and "def _from_boto_response(" in base
    sfn_source = inspect.getsource(state_task_service_sfn)
    assert 'execution_arn: str = submission_output["ExecutionArn"]' in sfn_source
    assert "def _build_sync2_resolver(" in sfn_source
    assert "time.sleep(_DELAY_SECONDS_SYNC_CONDITION_CHECK)" in inspect.getsource(state_task_service_callback)


def test_a_start_execution_sync_task_answers_as_aws_does(stack):
    child = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"got.$": "$.k"}, "End": True}}}
    sfn = stack.client("stepfunctions")
    child_arn = sfn.create_state_machine(
        name=f"child-{uuid.uuid4().hex[:8]}", definition=json.dumps(child), roleArn=f"arn:aws:iam::{'1' * 12}:role/x"
    )["stateMachineArn"]
    task = {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
            "Parameters": {"Input.$": "$", "StateMachineArn": child_arn}, "End": True}  # fmt: skip
    described = _run_machine(stack, {"StartAt": "T", "States": {"T": task}}, {"k": "v"})
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["Status"] == "SUCCEEDED" and output["Input"] == {"k": "v"} and output["Output"] == {"got": "v"}
    name = output["ExecutionArn"].rsplit(":", 1)[-1]
    assert name != "None" and uuid.UUID(name)  # an unnamed execution gets a UUID, as on AWS
    assert not moto_internals._awaited_ends  # nothing left waiting


def test_a_copy_is_refused_when_its_destination_condition_does_not_hold(stack):
    """Seam 21: If-Match and If-None-Match on CopyObject, checked against the destination as AWS does."""
    from moto.s3.models import S3Backend
    from moto.s3.responses import S3Response

    assert list(inspect.signature(S3Response.copy_object).parameters) == ["self"]
    assert "self.copy_object()" in inspect.getsource(S3Response._key_response_put)
    copy = inspect.getsource(S3Backend.copy_object)  # why reads wait: the key is in place before its metadata
    assert copy.index("self.put_object(") < copy.index(".set_metadata(")
    s3, bucket = stack.client("s3"), stack.thumbnail_bucket
    s3.put_object(Bucket=bucket, Key="cond/staged-a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="cond/staged-b", Body=b"b")

    def copy(source: str, **condition):
        return s3.copy_object(Bucket=bucket, Key="cond/dest", CopySource={"Bucket": bucket, "Key": source}, **condition)

    def refused(code: str, source: str, **condition) -> None:
        with pytest.raises(s3.exceptions.ClientError) as caught:
            copy(source, **condition)
        assert caught.value.response["Error"]["Code"] == code

    refused("NoSuchKey", "cond/staged-a", IfMatch='"0123"')  # nothing there to match
    first = copy("cond/staged-a", IfNoneMatch="*")["CopyObjectResult"]["ETag"]
    refused("PreconditionFailed", "cond/staged-b", IfNoneMatch="*")  # something is there now
    refused("PreconditionFailed", "cond/staged-b", IfMatch='"0123"')
    copy("cond/staged-b", IfMatch=first)  # it is what we looked at: replaced
    assert s3.get_object(Bucket=bucket, Key="cond/dest")["Body"].read() == b"b"
    copy("cond/staged-a")  # unconditional copies are moto's own


def stage_old_and_new(s3: Any, bucket: str, prefix: str) -> None:
    """``{prefix}/staged-old`` and ``-new``: an older and a newer upload's staged thumbnail, by sequencer."""
    for name, sequencer in (("old", "00000000000000000000000A"), ("new", "00000000000000000000000B")):
        s3.put_object(
            Bucket=bucket, Key=f"{prefix}/staged-{name}", Body=name.encode(), Metadata={"source-sequencer": sequencer}
        )


def test_record_does_not_publish_over_a_newer_thumbnail_written_after_its_look(stack):
    """Two runs publishing one key: the newer one writes between the older one's HEAD and its copy."""
    from record.handler import publish_thumbnails

    s3, bucket = stack.client("s3"), stack.thumbnail_bucket
    stage_old_and_new(s3, bucket, "race")
    s3.copy_object(Bucket=bucket, Key="race/thumb.jpg", CopySource={"Bucket": bucket, "Key": "race/staged-old"})
    looks = []

    def newer_run_publishes(**_):  # another client, at S3: the newer upload's Record, mid-way through ours
        looks.append(1)
        if len(looks) == 1:
            stack.client("s3").copy_object(
                Bucket=bucket, Key="race/thumb.jpg", CopySource={"Bucket": bucket, "Key": "race/staged-new"}
            )

    s3.meta.events.register("after-call.s3.HeadObject", newer_run_publishes)
    thumbnails = [{"key": "race/thumb.jpg", "staged_key": "race/staged-old"}]
    assert publish_thumbnails(s3, bucket, thumbnails, "00000000000000000000000A") == 0
    assert len(looks) == 2  # its copy was refused, it looked again and found the newer one
    assert s3.get_object(Bucket=bucket, Key="race/thumb.jpg")["Body"].read() == b"new"


def test_record_copies_a_key_no_record_lists_without_a_look_but_never_over_a_newer_thumbnail(stack):
    """A key no record lists is copied If-None-Match first; a HEAD follows only when that is refused."""
    from record.handler import publish_thumbnails

    s3, bucket = stack.client("s3"), stack.thumbnail_bucket
    stage_old_and_new(s3, bucket, "unlisted")
    # a newer run has published here and not yet written its record, so no record lists the key
    s3.copy_object(Bucket=bucket, Key="unlisted/thumb.jpg", CopySource={"Bucket": bucket, "Key": "unlisted/staged-new"})
    looks: list[int] = []
    s3.meta.events.register("before-call.s3.HeadObject", lambda **_: looks.append(1))
    for key, published, looked in (("unlisted/thumb.jpg", 0, 1), ("unlisted/fresh.jpg", 1, 0)):
        looks.clear()
        thumbnails = [{"key": key, "staged_key": "unlisted/staged-old"}]
        assert publish_thumbnails(s3, bucket, thumbnails, "00000000000000000000000A", unlisted={key}) == published
        assert len(looks) == looked, key
    assert s3.get_object(Bucket=bucket, Key="unlisted/thumb.jpg")["Body"].read() == b"new"
    assert s3.get_object(Bucket=bucket, Key="unlisted/fresh.jpg")["Body"].read() == b"old"
