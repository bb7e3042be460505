"""The embedded default: the synthesized template, deployed on moto, with a local Lambda runtime.

Nothing here describes the pipeline. Buckets, table, rules, functions and the state machine
are all read from the CloudFormation template that ``cdk synth`` writes; this module only
turns each resource into the matching moto API calls, resolving ``Ref`` and ``Fn::GetAtt``
to local names and ARNs. moto runs as a server on loopback, so the handlers (in worker
processes) and the AWS CLI reach it through ``AWS_ENDPOINT_URL`` with boto3 unchanged.
"""

from __future__ import annotations

import functools
import gc
import io
import json
import os
import socket
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import FUNCTIONS_DIR
from ..template import STACK_NAME, definition_of, resources_of_type
from . import moto_internals
from .lambda_runtime import FaultSwitch, FunctionSpec, LocalLambdaRuntime
from .store import Store

ACCOUNT = "123456789012"
REGION = "us-east-1"


# --- names for the template's resources ------------------------------------------------------


@dataclass
class Names:
    """Local physical names and ARNs for the template's logical IDs (what Ref and GetAtt return)."""

    refs: dict[str, str] = field(default_factory=dict)
    arns: dict[str, str] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"Ref"}:
                return self.refs.get(value["Ref"], value["Ref"])
            if set(value) == {"Fn::GetAtt"}:
                logical, attribute = value["Fn::GetAtt"]
                return self.arns[logical] if attribute == "Arn" else self.refs[logical]
            if set(value) == {"Fn::Join"}:
                separator, parts = value["Fn::Join"]
                return separator.join(str(self.resolve(p)) for p in parts)
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value


def physical_names(template: dict[str, Any], stack_name: str) -> Names:
    names = Names()
    names.refs.update(
        {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::StackName": stack_name, "AWS::Partition": "aws"}
    )
    prefix = stack_name.lower()
    for logical, resource in template["Resources"].items():
        kind = resource["Type"]
        if kind == "AWS::S3::Bucket":
            bucket = f"{prefix}-{logical.lower()}"[:63]
            names.refs[logical], names.arns[logical] = bucket, f"arn:aws:s3:::{bucket}"
        elif kind == "AWS::DynamoDB::Table":
            names.refs[logical] = logical
            names.arns[logical] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{logical}"
        elif kind == "AWS::Lambda::Function":
            names.refs[logical] = logical
            names.arns[logical] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical}"
        elif kind == "AWS::StepFunctions::StateMachine":
            arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{logical}"
            names.refs[logical], names.arns[logical] = arn, arn
        elif kind == "AWS::IAM::Role":
            names.refs[logical] = logical
            names.arns[logical] = f"arn:aws:iam::{ACCOUNT}:role/{logical}"
        elif kind == "AWS::SQS::Queue":
            names.refs[logical] = f"http://localhost/{ACCOUNT}/{logical}"
            names.arns[logical] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{logical}"
    return names


def output_of(template: dict[str, Any], names: Names, output: str) -> str:
    return str(names.resolve(template["Outputs"][output]["Value"]))


# --- moto on loopback --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


LISTEN_BACKLOG = 4096
SHUTDOWN_POLL_SECONDS = 0.02


class _Server:
    """A WSGI app on a loopback port, served by threads; ``stop`` closes the port."""

    def __init__(self, app: Any, port: int) -> None:
        from werkzeug.serving import make_server

        self._server = make_server(
            "127.0.0.1", port, app, threaded=True, request_handler=moto_internals.request_handler()
        )
        # werkzeug listens with a backlog of 128. A backfill's batches start up to 400 pipeline
        # executions at once, each a StartExecution over loopback with no retry in moto's
        # interpreter client: past the backlog a connection is refused and the task fails with
        # States.Runtime. Listening again on the bound socket raises the backlog (Linux caps it
        # at net.core.somaxconn).
        self._server.socket.listen(LISTEN_BACKLOG)
        self.port = int(self._server.server_port)
        # serve_forever looks for a shutdown request between polls: at the default 0.5 s, each
        # stop waited up to that long, and a command stops two servers (the private one at deploy).
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), name=f"server-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


# Lambda's SDK reaches S3 over HTTPS, where botocore leaves a request's body out of its
# signature: the CRC32 header it sends already covers the bytes. Over the local endpoint's
# plain HTTP, botocore hashes every body into the signature instead, a SHA-256 that Lambda
# never computes: 4.3 ms of client CPU for a 4 MB upload, 2.0 ms for a 2 MB intermediate.
# The stack's clients and the workers' are set as they would be over HTTPS.
AS_OVER_HTTPS = {"payload_signing_enabled": False}
WORKER_SDK_CONFIG = "[default]\ns3 =\n" + "".join(f"    {k} = {str(v).lower()}\n" for k, v in AS_OVER_HTTPS.items())


def worker_environment(endpoint: str, state_dir: Path) -> dict[str, str]:
    """What every local Lambda worker starts with, before its function's own variables.

    ``AWS_CONFIG_FILE`` names a config file of the stack's own. It sets the SDK as over HTTPS
    (``AS_OVER_HTTPS``), and it keeps the user's ``~/.aws/config`` out of the workers, as no
    such file reaches a Lambda function: a profile's ``s3.addressing_style`` or
    ``max_attempts`` there would otherwise change what a handler's client does.
    """
    config = state_dir / "cache" / "worker-aws-config"
    if not config.is_file() or config.read_text() != WORKER_SDK_CONFIG:
        config.parent.mkdir(parents=True, exist_ok=True)
        partial = config.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(WORKER_SDK_CONFIG)
        partial.replace(config)  # a worker of another command never reads half of it
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(config),
        "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon on a laptop
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@functools.cache
def _freeze_once() -> None:
    """Take what the process holds once its first stack is deployed out of the cyclic GC.

    About 350,000 objects live from then on: modules, the SDK's models, moto's backends and
    apps. Each full collection walked them all, 0.2 s with the GIL held, about once per 100
    uploads; frozen, they are never walked again, and what requests and executions leave
    behind is still collected. No collection first: that would be the same walk in every
    command's start. Once per process: a later stack (the tests start many in one process)
    would freeze an earlier one's garbage with it, for good.
    """
    gc.freeze()


def _sdk_session() -> Any:
    """A boto3 session of the stack's own that reads service models through the default session's loader.

    The loader caches each model it reads (0.03-0.1 s of JSON a service). The interpreter's
    clients already read theirs through the default session, and the warm engine has read
    every model a stack needs into it before it forks (``engine.preload``): a command forked
    from it makes its seven clients without reading a model. Only the loader is shared;
    credentials, region and endpoint stay this session's own.
    """
    import boto3
    import botocore.session

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    core = botocore.session.get_session()
    core.register_component("data_loader", boto3.DEFAULT_SESSION._session.get_component("data_loader"))
    return boto3.session.Session(botocore_session=core)


class LocalStack:
    """moto server + the template's resources + the local Lambda runtime, wired as on AWS.

    The port given (``endpoint``) opens only when the stack is deployed: until then moto is
    served on a private port that only the deployment uses. A client that waits for the
    port, as health checks and scripts do, so never reaches a bucket whose events are not
    on yet. ``GET /_thumbs/ready`` answers 200 with the stack's names once it is.
    """

    def __init__(
        self,
        template: dict[str, Any],
        state_dir: Path,
        *,
        port: int | None = None,
        faults: FaultSwitch | None = None,
        concurrency: int | None = None,
        stack_name: str = STACK_NAME,
        on_execution_end: Callable[[dict[str, Any]], None] | None = None,
        load_execution: moto_internals.LoadExecution | None = None,
        stored_executions: moto_internals.StoredExecutions | None = None,
        store: Store | None = None,
        code_dir: Path = FUNCTIONS_DIR,
    ) -> None:
        self.template = template
        self.code_dir = code_dir  # the functions' code, as /var/task on Lambda
        self.state_dir = state_dir
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.names = physical_names(template, stack_name)
        self.stack_name = stack_name
        self.faults = faults or FaultSwitch()
        self.concurrency = concurrency  # the account's Lambda concurrency limit; None: the machine's
        self.on_execution_end = on_execution_end
        self.load_execution = load_execution
        self.stored_executions = stored_executions
        self.store = store  # buckets and table on disk; None: in moto's memory, gone at stop
        self.console: Callable[..., Any] | None = None  # the web console, mounted at /_console/ when set
        self.sync: Callable[[], int] | None = None  # a watcher's poll, for POST /_thumbs/sync (serve --watch)
        self.run: Callable[..., Any] | None = None  # POST /_thumbs/run: a serve runs a thumbs run's files (served.py)
        self._private: _Server | None = None
        self._public: _Server | None = None
        self.ready = threading.Event()
        self.runtime: LocalLambdaRuntime | None = None
        self._ended = threading.Condition()
        self._clients: dict[tuple[str, str], Any] = {}
        self._clients_lock = threading.Lock()
        self._session: Any = None
        self.started_executions = 0
        self.ended: list[dict[str, Any]] = []

    # outputs, as the stack outputs them
    @property
    def upload_bucket(self) -> str:
        return output_of(self.template, self.names, "UploadBucketName")

    @property
    def thumbnail_bucket(self) -> str:
        return output_of(self.template, self.names, "ThumbnailBucketName")

    @property
    def table_name(self) -> str:
        return output_of(self.template, self.names, "RecordsTableName")

    @property
    def state_machine_arn(self) -> str:
        return output_of(self.template, self.names, "StateMachineArn")

    @property
    def backfill_arn(self) -> str:
        return output_of(self.template, self.names, "BackfillStateMachineArn")

    @property
    def api_endpoint(self) -> str:
        """Where this process reaches moto: the private port while deploying, then ``endpoint``."""
        if self.ready.is_set() or self._private is None:
            return self.endpoint
        return f"http://127.0.0.1:{self._private.port}"

    def client(self, service: str) -> Any:
        """One client per service and endpoint, made under a lock: creating boto3 clients is not thread-safe.

        Every client comes from one boto3 session, whose loader reads endpoints.json and each
        service model once; a session per client read them again each time (about 0.1 s a client).
        """
        endpoint = self.api_endpoint
        with self._clients_lock:
            if self._session is None:
                self._session = _sdk_session()
            if (service, endpoint) not in self._clients:
                from botocore.config import Config

                self._clients[service, endpoint] = self._session.client(
                    service,
                    endpoint_url=endpoint,
                    region_name=REGION,
                    aws_access_key_id="local",
                    aws_secret_access_key="local",
                    config=Config(s3=AS_OVER_HTTPS),
                )
            return self._clients[service, endpoint]

    def start(self) -> LocalStack:
        import logging

        debug = bool(os.environ.get("THUMBS_DEBUG"))
        logging.getLogger("werkzeug").setLevel(logging.INFO if debug else logging.WARNING)  # a line per request
        # The interpreter logs every state failure with its whole parsed definition (pages of
        # text per retry); the same failure is in the execution's history, which thumbs shows.
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.DEBUG if debug else logging.CRITICAL)
        with socket.socket() as probe:  # fail now, not after the deploy, if the port is taken
            probe.bind(("127.0.0.1", self.port))

        os.environ["MOTO_PORT"] = str(self.port)  # moto's interpreter calls Lambda on this port
        self.runtime = LocalLambdaRuntime(
            self._function_specs(),
            self.code_dir,
            worker_environment(self.endpoint, self.state_dir),
            self.state_dir / "logs",
            faults=self.faults,
            account_concurrency=self.concurrency,
            dead_letter=self._dead_letter,
        )
        self.runtime.warm_up()  # the workers import their handlers while moto imports and deploys
        moto_internals.enable_execution()
        moto_internals.install(
            invoke=self.runtime.invoke,
            invoke_async=self.runtime.invoke_async,
            start_execution=self._start_execution,
            execution_ended=self._execution_ended,
            load_execution=self.load_execution,
            stored_executions=self.stored_executions,
            admitted=self.runtime.admitted,
            local_function=self.runtime.functions.__contains__,
        )
        self._app = moto_internals.server_app()
        self._private = _Server(self._wsgi, 0)
        # moto's backends live for the process: start every stack from an empty account.
        import requests

        requests.post(f"{self.api_endpoint}/moto-api/reset", timeout=30).raise_for_status()
        return self

    def _open(self) -> None:
        """The stack is deployed: open the public port, then close the private one."""
        moto_internals.track_models_weakly()  # every model class the stack uses is imported by now
        self._public = _Server(self._wsgi, self.port)
        self.ready.set()
        if self._private is not None:
            self._private.stop()
            self._private = None
        _freeze_once()

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """moto, and under ``/_thumbs/`` the stack's own answers (no S3 bucket name can start with ``_``)."""
        path = environ.get("PATH_INFO", "")
        if path in ("/_thumbs/ready", "/_thumbs/status", "/_thumbs/sync"):
            if path == "/_thumbs/sync":
                answer, status = self._sync(environ.get("REQUEST_METHOD", "GET"))
            elif path == "/_thumbs/status":
                answer, status = self._status(environ.get("QUERY_STRING", "")), "200 OK"
            elif self.ready.is_set():
                answer, status = self.describe(), "200 OK"
            else:
                answer, status = {"ready": False}, "503 Service Unavailable"
            body = json.dumps(answer).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/_thumbs/run" and self.run is not None:
            return self.run(environ, start_response)  # type: ignore[no-any-return]
        if (path == "/_console" or path.startswith("/_console/")) and self.console is not None:
            return self.console(environ, start_response)  # type: ignore[no-any-return]
        refused = self._refused(environ)
        if refused is not None:
            text, code, headers = refused
            start_response(f"{code} Not Implemented", [*headers.items(), ("Content-Length", str(len(text.encode())))])
            return [text.encode()]
        try:
            return self._app(environ, start_response)
        finally:
            moto_internals.flush_request()  # what this request changed, into the store

    @staticmethod
    def _refused(environ: dict[str, Any]) -> tuple[str, int, dict[str, str]] | None:
        """An S3 call moto would answer as another operation: refused by name, as AWS refuses."""
        from urllib.parse import parse_qs

        signed_for = environ.get("HTTP_AUTHORIZATION", "") + environ.get("QUERY_STRING", "")
        if "/s3/aws4_request" not in signed_for and "%2Fs3%2Faws4_request" not in signed_for:
            return None
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        operation = moto_internals.s3_unsupported(environ.get("REQUEST_METHOD", "GET"), query)
        if operation is None:
            return None
        message = f"{operation} is not supported by the local stack; docs/local-api.md lists the operations it supports"
        return moto_internals.not_implemented_response("s3", message)

    def _sync(self, method: str) -> tuple[dict[str, Any], str]:
        """``POST /_thumbs/sync``: a watching serve applies saved edits now, before a run's uploads."""
        if method != "POST":
            return {"error": "POST /_thumbs/sync"}, "405 Method Not Allowed"
        sync = self.sync
        if sync is None:
            return {"watching": False}, "200 OK"
        return {"watching": True, "reloads": sync()}, "200 OK"

    def _status(self, query: str) -> dict[str, Any]:
        """``/_thumbs/status[?ended=N&wait=S&settle=0]``: executions started and ended, each function's report.

        With ``ended=N`` it answers once N executions have ended since the stack started (and
        the asynchronous invocations they caused are done), or after ``wait`` seconds (at most
        10): a script waits on this, not on a poll of ListExecutions.
        """
        from urllib.parse import parse_qs

        params = {k: v[-1] for k, v in parse_qs(query).items()}
        if "ended" in params:
            wait = min(float(params.get("wait", 5)), 10.0)
            self.wait_for_executions(int(params["ended"]), timeout=wait, settle=params.get("settle") != "0")
        with self._ended:
            ended = len(self.ended)
        return {"started": self.started_executions, "ended": ended, "functions": self.function_report()}

    def function_report(self) -> dict[str, dict[str, Any]]:
        """Per function, what Lambda's REPORT lines and metrics say: invocations, throttles, max memory used."""
        runtime = self.runtime
        if runtime is None:
            return {}
        return {
            spec.handler.split(".")[0]: {
                "function": name,
                "invocations": runtime.invocations[name],
                "throttles": runtime.throttles[name],
                "max_memory_used_mb": round(runtime.peak_memory_mb[name], 1),
                "memory_size_mb": spec.memory_mb,
            }
            for name, spec in runtime.functions.items()
        }

    def deployed(self) -> Any:
        """This stack as ``thumbs --stack`` sees a deployed one: found by its outputs, through the endpoint."""
        from ..aws import DeployedStack

        return DeployedStack.local(self.stack_name, self.endpoint, REGION)

    def describe(self) -> dict[str, Any]:
        """What a client needs to use the stack: its endpoint and the names of its outputs."""
        return {
            "ready": self.ready.is_set(),
            "pid": os.getpid(),
            "endpoint": self.endpoint,
            "region": REGION,
            "stack": self.stack_name,
            "uploadBucket": self.upload_bucket,
            "thumbnailBucket": self.thumbnail_bucket,
            "recordsTable": self.table_name,
            "stateMachineArn": self.state_machine_arn,
        }

    def stop(self) -> None:
        if self.runtime is not None:
            self.runtime.wait_for_async()
            self.runtime.close()
        for server in (self._public, self._private):
            if server is not None:
                server.stop()
        self._public = self._private = None
        self.ready.clear()
        if self.store is not None:
            moto_internals.release_stores()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _function_specs(self, template: dict[str, Any] | None = None) -> dict[str, FunctionSpec]:
        """Each Python function of ``template`` (the deployed one by default) as the runtime runs it."""
        specs = {}
        for logical, resource in resources_of_type(template or self.template, "AWS::Lambda::Function").items():
            props = resource["Properties"]
            if not str(props.get("Runtime", "")).startswith("python"):
                continue  # CDK's deploy-time custom-resource provider: nothing runs it locally
            environment = self.names.resolve(props.get("Environment", {}).get("Variables", {}))
            specs[self.names.refs[logical]] = FunctionSpec(
                name=self.names.refs[logical],
                handler=props["Handler"],
                environment={k: str(v) for k, v in environment.items()},
                timeout_seconds=int(props.get("Timeout", 3)),
                memory_mb=int(props.get("MemorySize", 128)),
                reserved_concurrency=(
                    int(props["ReservedConcurrentExecutions"]) if "ReservedConcurrentExecutions" in props else None
                ),
                dead_letter_arn=self.names.resolve(props.get("DeadLetterConfig", {})).get("TargetArn"),
            )
        return specs

    # --- deploy: one moto call per template resource -----------------------------------------
    def deploy(
        self, before_events: Callable[[LocalStack], None] | None = None, *, register_outputs: bool = True
    ) -> None:
        """Create every resource; ``before_events`` runs after the buckets exist, before S3 notifies.

        ``register_outputs=False`` leaves out the CloudFormation stack of outputs (see
        ``_register_outputs``), for a caller that never looks the stack up by name.
        """
        s3, dynamodb, events, sfn, sqs, lam, iam = (self.client(s) for s in moto_internals.STACK_APIS)
        role = iam.create_role(RoleName="local", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        buckets = resources_of_type(self.template, "AWS::S3::Bucket")
        for logical in buckets:
            s3.create_bucket(Bucket=self.names.refs[logical])
        for logical, resource in resources_of_type(self.template, "AWS::DynamoDB::Table").items():
            props = resource["Properties"]
            dynamodb.create_table(
                TableName=self.names.refs[logical],
                KeySchema=props["KeySchema"],
                AttributeDefinitions=props["AttributeDefinitions"],
                BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
            )
        for logical in resources_of_type(self.template, "AWS::SQS::Queue"):
            sqs.create_queue(QueueName=logical)
        for logical, spec in self._function_specs().items():
            lam.create_function(
                FunctionName=logical,
                Runtime="python3.12",
                Role=role,
                Handler=spec.handler,
                Code={"ZipFile": _empty_zip()},
                Timeout=spec.timeout_seconds,
                MemorySize=spec.memory_mb,
                Environment={"Variables": spec.environment},
            )
        for logical in resources_of_type(self.template, "AWS::StepFunctions::StateMachine"):
            definition = definition_of(self.template, logical, self.names.resolve)
            sfn.create_state_machine(name=logical, definition=json.dumps(definition), roleArn=role)
        for logical, resource in resources_of_type(self.template, "AWS::Events::Rule").items():
            props = self.names.resolve(resource["Properties"])
            events.put_rule(Name=logical, EventPattern=json.dumps(props["EventPattern"]), State="ENABLED")
            events.put_targets(Rule=logical, Targets=[{"Id": t["Id"], "Arn": t["Arn"]} for t in props["Targets"]])
        if register_outputs:
            self._register_outputs()
        if self.store is not None:  # earlier objects and items are read from disk as needed: nothing to load
            for logical in buckets:
                moto_internals.store_objects(ACCOUNT, self.names.refs[logical], self.store)
            for logical in resources_of_type(self.template, "AWS::DynamoDB::Table"):
                moto_internals.store_items(ACCOUNT, REGION, self.names.refs[logical], self.store)
        if before_events is not None:
            before_events(self)
        for logical, resource in buckets.items():
            config = resource["Properties"].get("NotificationConfiguration", {})
            if config.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
                s3.put_bucket_notification_configuration(
                    Bucket=self.names.refs[logical], NotificationConfiguration={"EventBridgeConfiguration": {}}
                )
        self._open()

    def update(self, template: dict[str, Any]) -> list[str]:
        """Take a new synth of the same stack: what a deploy would change in place, changed here.

        State machines get their new definitions; functions their new environment, timeout and
        memory (with new workers). A resource added or removed is refused with the names: the
        running stack cannot create or delete resources halfway, so a restart deploys it. As a
        CloudFormation update rolls back, a change that fails halfway (a definition moto refuses)
        puts back what it had changed and raises; the stack keeps the old template.
        """
        old, new = set(self.template["Resources"]), set(template["Resources"])
        if old != new:
            added, removed = sorted(new - old), sorted(old - new)
            raise ValueError(
                f"resources added {added or '[]'} and removed {removed or '[]'}: restart thumbs serve to deploy them"
            )
        before, after = self._function_specs(), self._function_specs(template)
        sfn = self.client("stepfunctions")
        updated: list[str] = []
        undo: list[Callable[[], object]] = []
        try:
            for logical in resources_of_type(template, "AWS::StepFunctions::StateMachine"):
                definition = json.dumps(definition_of(template, logical, self.names.resolve))
                arn = self.names.arns[logical]
                current = sfn.describe_state_machine(stateMachineArn=arn)["definition"]
                if current != definition:
                    sfn.update_state_machine(stateMachineArn=arn, definition=definition)
                    undo.append(functools.partial(sfn.update_state_machine, stateMachineArn=arn, definition=current))
                    updated.append(logical)
            for name, spec in after.items():
                if before[name] != spec:
                    self._reconfigure(spec)
                    undo.append(functools.partial(self._reconfigure, before[name]))
                    updated.append(name)
        except Exception:
            for step in reversed(undo):
                step()
            raise
        self.template = template
        return updated

    def _reconfigure(self, spec: FunctionSpec) -> None:
        """A function's new configuration, in moto and in the runtime (new workers)."""
        assert self.runtime is not None
        self.client("lambda").update_function_configuration(
            FunctionName=spec.name,
            Timeout=spec.timeout_seconds,
            MemorySize=spec.memory_mb,
            Environment={"Variables": spec.environment},
        )
        self.runtime.restart(spec.name, spec)

    def _register_outputs(self) -> None:
        """A CloudFormation stack holding only the template's Outputs, resolved to local names.

        ``thumbs --stack NAME`` finds a deployed stack by its outputs; registering them here
        lets the very same code path run against this local stack (``thumbs serve``, tests).
        """
        outputs = {
            name: {"Value": output_of(self.template, self.names, name), "Description": out.get("Description", "")}
            for name, out in self.template.get("Outputs", {}).items()
        }
        body = {"Resources": {}, "Outputs": outputs}
        self.client("cloudformation").create_stack(StackName=self.stack_name, TemplateBody=json.dumps(body))

    # --- what moto_internals calls back ---------------------------------------------------------
    def _dead_letter(self, queue_arn: str, payload: bytes, error: str) -> None:
        """An asynchronous event whose attempts all failed: into the function's DLQ, as Lambda puts it."""
        sqs = self.client("sqs")
        url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
        sqs.send_message(
            QueueUrl=url,
            MessageBody=payload.decode(),
            MessageAttributes={
                "RequestID": {"DataType": "String", "StringValue": str(uuid.uuid4())},
                "ErrorCode": {"DataType": "Number", "StringValue": "200"},  # the Invoke itself answered
                "ErrorMessage": {"DataType": "String", "StringValue": error},
            },
        )

    def _start_execution(self, state_machine_arn: str, event_json: str) -> None:
        with self._clients_lock:
            self.started_executions += 1
        # EventBridge names its executions with a UUID; moto would otherwise name every one "None".
        moto_internals.start_execution(ACCOUNT, REGION, state_machine_arn, str(uuid.uuid4()), event_json)

    def _execution_ended(self, account: str, region: str, detail: dict[str, Any]) -> None:
        if detail["status"] != "SUCCEEDED":
            self.client("events").put_events(
                Entries=[
                    {
                        "Source": "aws.states",
                        "DetailType": "Step Functions Execution Status Change",
                        "Detail": json.dumps(detail),
                        "Resources": [detail["executionArn"]],
                    }
                ]
            )
        # The callback first: whoever wakes on the count must find its work (saving the
        # execution) already registered.
        if self.on_execution_end is not None:
            self.on_execution_end(detail)
        with self._ended:
            self.ended.append(detail)
            self._ended.notify_all()

    def wait_for_executions(
        self,
        count: int,
        timeout: float | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        settle: bool = True,
    ) -> bool:
        """Block until ``count`` executions have ended (since start); False on timeout.

        The default timeout grows with the batch: 10 minutes, or 2 s per execution if longer.
        ``settle`` waits for the asynchronous invocations they caused (FAILED records) too.
        """
        deadline = time.monotonic() + (timeout if timeout is not None else max(600.0, 2.0 * count))
        with self._ended:
            while len(self.ended) < count:
                if progress:
                    progress(len(self.ended))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._ended.wait(timeout=min(0.5, remaining))
        if progress:
            progress(len(self.ended))
        if settle and self.runtime is not None:
            self.runtime.wait_for_async()
        return True


def _empty_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "code runs from functions/ through the local runtime")
    return buffer.getvalue()
