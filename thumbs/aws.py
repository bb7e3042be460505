"""``thumbs ... --stack NAME``: inspect, replay and drain a deployed pipeline.

Plain boto3 against the account (a profile and region, or the environment's credentials).
The stack is found by its CloudFormation outputs, never by guessing names, so the same code
works on any deployment, and on the local stack, which registers the same outputs.

Replay follows what Step Functions allows:

* a Standard execution that is still redrivable (failed within 14 days, not redriven 1,000
  times, definition unchanged) is **redriven**: it resumes at the failed state, keeps its
  ARN, and the Record at its end overwrites the FAILED record;
* anything else gets a **new execution** with the original input plus ``replay_of`` (the
  old ARN), which the record keeps, so the two runs stay linked.

An EXPRESS workflow keeps no execution history that the API can list or describe (its
history is its CloudWatch Logs). There, ``replay --failed`` works from the FAILED records:
each record holds the object exactly as its event described it, which rebuilds the event.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from awsio import (
    FAILED_STATUSES,
    FINISHED_STATUSES,
    OBJECT_CREATED,
    OBJECT_DELETED,
    STATUS_CHANGE,
    sequencer_order,
    source_id,
)
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .plain import from_dynamodb
from .terminal import console, out, parse_since, print_history

REQUIRED_OUTPUTS = ("StateMachineArn", "RecordsTableName", "DeadLetterQueueUrl", "RecordFunctionName")


@dataclass
class DeployedStack:
    """A deployed stack's outputs and the clients to reach it."""

    name: str
    outputs: dict[str, str]
    session: Any
    endpoint_url: str | None = None  # the local stack's endpoint; None: AWS's own endpoints

    @classmethod
    def find(cls, name: str, session: Any, endpoint_url: str | None = None) -> DeployedStack:
        from botocore.exceptions import ClientError

        try:
            cloudformation = session.client("cloudformation", endpoint_url=endpoint_url)
            (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            raise LookupError(f"no CloudFormation stack {name!r} in {session.region_name}: {exc}") from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        missing = [key for key in REQUIRED_OUTPUTS if key not in outputs]
        if missing:
            raise LookupError(f"stack {name!r} has no output {', '.join(missing)}: is it this pipeline's stack?")
        return cls(name, outputs, session, endpoint_url)

    @classmethod
    def local(cls, name: str, endpoint_url: str, region: str) -> DeployedStack:
        """The local stack served at ``endpoint_url`` (any credentials do), found as a deployed one is."""
        import boto3

        session = boto3.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=region)
        return cls.find(name, session, endpoint_url=endpoint_url)

    @property
    def state_machine_arn(self) -> str:
        return self.outputs["StateMachineArn"]

    @property
    def express(self) -> bool:
        return self.outputs.get("WorkflowType") == "EXPRESS"

    def client(self, service: str) -> Any:
        from botocore.config import Config

        # Adaptive retries back off on throttling (bulk replay, drain) instead of failing.
        return self.session.client(
            service, endpoint_url=self.endpoint_url, config=Config(retries={"mode": "adaptive", "max_attempts": 10})
        )

    def execution_arn(self, reference: str) -> str:
        if reference.startswith("arn:"):
            return reference
        return f"{self.state_machine_arn.replace(':stateMachine:', ':execution:')}:{reference}"


def console_link(region: str, execution_arn: str) -> str:
    """The execution's page in the Step Functions console."""
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"


def list_executions(
    stack: DeployedStack, sfn: Any, statuses: tuple[str, ...] | None = None, since: timedelta | None = None
) -> list[dict[str, Any]]:
    """Executions newest first, optionally only those with a status and started within ``since``."""
    cutoff = datetime.now(UTC) - since if since else None
    found: list[dict[str, Any]] = []
    for status in statuses or (None,):
        kwargs = {"stateMachineArn": stack.state_machine_arn, **({"statusFilter": status} if status else {})}
        for page in sfn.get_paginator("list_executions").paginate(**kwargs):
            fresh = [e for e in page["executions"] if cutoff is None or _aware(e["startDate"]) >= cutoff]
            found += fresh
            if len(fresh) < len(page["executions"]):
                break  # newest first: the rest are older still
    return sorted(found, key=lambda e: e["startDate"], reverse=True)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def execution_with_history(sfn: Any, arn: str) -> dict[str, Any]:
    """The execution and its events, in the shape the local state folder keeps (for one renderer)."""
    described = sfn.describe_execution(executionArn=arn)
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        events += page["events"]
    return {
        "executionArn": arn,
        "name": described["name"],
        "status": described["status"],
        "startDate": _aware(described["startDate"]).isoformat(),
        "stopDate": _aware(described["stopDate"]).isoformat() if described.get("stopDate") else None,
        "input": json.loads(described.get("input") or "{}"),
        "error": described.get("error"),
        "cause": described.get("cause"),
        "redriveStatus": described.get("redriveStatus"),
        "redriveCount": described.get("redriveCount", 0),
        "events": [{**e, "timestamp": _aware(e["timestamp"]).isoformat()} for e in events],
    }


@dataclass(frozen=True)
class Replayed:
    """One replay: ``redriven`` (same ARN), ``restarted`` (a new ARN), ``recorded`` or ``skipped``, and why.

    ``recorded``: a deletion, sent to the Record function as its own rule sends one (no new
    execution, so ``arn`` stays the old one).
    """

    old_arn: str
    action: str
    arn: str
    reason: str


RecordLookup = Callable[[str], "dict[str, Any] | None"]


def record_lookup(stack: DeployedStack, dynamodb: Any) -> RecordLookup:
    """The record for a ``source_id``, as plain values (None if there is none)."""

    def lookup(source_id: str) -> dict[str, Any] | None:
        item = dynamodb.get_item(
            TableName=stack.outputs["RecordsTableName"], Key={"source_id": {"S": source_id}}, ConsistentRead=True
        ).get("Item")
        return from_dynamodb(item) if item else None

    return lookup


def _handled_since(execution_input: dict[str, Any], lookup: RecordLookup | None) -> dict[str, Any] | None:
    """The record, if it already holds a finished outcome for this event or a newer one."""
    detail = execution_input.get("detail") or {}
    bucket, obj = (detail.get("bucket") or {}).get("name"), detail.get("object") or {}
    if lookup is None or not bucket or "key" not in obj or not obj.get("sequencer"):
        return None
    record = lookup(source_id(bucket, obj["key"]))
    if (
        record
        and record.get("status") in FINISHED_STATUSES
        and record.get("sequencer_order", "") >= sequencer_order(obj["sequencer"])
    ):
        return record
    return None


def send_to_record(stack: DeployedStack, lambda_: Any, event: dict[str, Any]) -> None:
    """Give an event to the Record function as its rule does; RuntimeError with Record's error if it fails.

    Failure notices and deletions go to Record, not to the state machine, which takes only
    uploads: a dead letter of either, a deletion's run from before deletions had their own
    rule, and an EXPRESS FAILED record of a deletion all come back through here.
    """
    answer = lambda_.invoke(FunctionName=stack.outputs["RecordFunctionName"], Payload=json.dumps(event).encode())
    if answer.get("FunctionError"):
        raise RuntimeError(answer["Payload"].read().decode()[:300])


def replay(stack: DeployedStack, sfn: Any, arn: str, lookup: RecordLookup | None = None) -> Replayed:
    """Redrive, or restart as a new linked execution; skipped when the record shows it handled.

    The record check makes a second bulk replay harmless: a run replayed as a new execution
    stays FAILED in Step Functions, but its record is SUCCEEDED by then.
    """
    described = sfn.describe_execution(executionArn=arn)
    if described["status"] in ("RUNNING", "PENDING_REDRIVE"):
        return Replayed(arn, "skipped", arn, f"it is {described['status']}")
    if described["status"] == "SUCCEEDED":
        return Replayed(arn, "skipped", arn, "it succeeded")
    execution_input = json.loads(described.get("input") or "{}")
    handled = _handled_since(execution_input, lookup)
    if handled is not None:
        by = str(handled.get("execution_arn") or "").rsplit(":", 1)[-1]
        return Replayed(arn, "skipped", arn, f"the record is already {handled['status']} (by {by})")
    if described.get("redriveStatus") == "REDRIVABLE":
        sfn.redrive_execution(executionArn=arn, clientToken=str(uuid.uuid4()))
        return Replayed(arn, "redriven", arn, "resumes at the failed state")
    execution_input["replay_of"] = arn
    if execution_input.get("detail-type") == OBJECT_DELETED:
        send_to_record(stack, stack.client("lambda"), execution_input)
        return Replayed(arn, "recorded", arn, "a deletion goes to Record, not to a new execution")
    name = f"{described['name'][:62]}-replay-{uuid.uuid4().hex[:12]}"  # names are at most 80 characters
    started = sfn.start_execution(stateMachineArn=stack.state_machine_arn, name=name, input=json.dumps(execution_input))
    why = described.get("redriveStatusReason") or "not redrivable"
    return Replayed(arn, "restarted", started["executionArn"], why)


def failed_records(stack: DeployedStack, dynamodb: Any, since: timedelta) -> list[dict[str, Any]]:
    """FAILED records written within ``since``: an EXPRESS workflow's list of failures."""
    cutoff = (datetime.now(UTC) - since).isoformat(timespec="milliseconds")
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": stack.outputs["RecordsTableName"],
        "FilterExpression": "#s = :failed AND recorded_at >= :cutoff",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":failed": {"S": "FAILED"}, ":cutoff": {"S": cutoff}},
    }
    for page in dynamodb.get_paginator("scan").paginate(**kwargs):
        found += [from_dynamodb(item) for item in page["Items"]]
    return sorted(found, key=lambda r: r["recorded_at"])


def event_from_record(record: dict[str, Any], region: str) -> dict[str, Any]:
    """The S3 event a record was written for, rebuilt from what the record kept of it.

    A deletion's event has no etag, so a record without one replays as "Object Deleted".
    """
    created = bool(record.get("etag"))
    obj: dict[str, Any] = {"key": record["key"], "sequencer": record["sequencer"]}
    if created:
        obj.update(size=int(record.get("size") or 0), etag=record["etag"])
    if record.get("version_id"):
        obj["version-id"] = record["version_id"]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": OBJECT_CREATED if created else OBJECT_DELETED,
        "source": "aws.s3",
        "account": "",
        "time": record["event_time"],
        "region": region,
        "resources": [f"arn:aws:s3:::{record['bucket']}"],
        "detail": {
            "version": "0",
            "bucket": {"name": record["bucket"]},
            "object": obj,
            "request-id": "",
            "requester": "",
            "reason": "PutObject" if created else "DeleteObject",
        },
        "replay_of": record.get("execution_arn") or "",
    }


def replay_record(stack: DeployedStack, sfn: Any, record: dict[str, Any]) -> Replayed:
    """Start a new execution for a FAILED record (EXPRESS: there is no execution to redrive)."""
    event = event_from_record(record, stack.session.region_name or "")
    old = record.get("execution_arn") or record["source_id"]
    if event["detail-type"] == OBJECT_DELETED:
        send_to_record(stack, stack.client("lambda"), event)
        return Replayed(old, "recorded", old, "EXPRESS: the deletion, rebuilt from the FAILED record, sent to Record")
    started = sfn.start_execution(
        stateMachineArn=stack.state_machine_arn, name=f"replay-{uuid.uuid4().hex}", input=json.dumps(event)
    )
    return Replayed(old, "restarted", started["executionArn"], "EXPRESS: rebuilt from the FAILED record")


def paced(
    items: list[Any],
    per_second: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Any]:
    """Yield ``items`` at most ``per_second`` a second: bulk replays stay under the API quotas."""
    if per_second <= 0:
        raise ValueError(f"--rate {per_second!r}: must be above 0")
    interval = 1.0 / per_second
    next_at = clock()
    for item in items:
        wait = next_at - clock()
        if wait > 0:
            sleep(wait)
        next_at = max(next_at, clock()) + interval
        yield item


@dataclass
class DrainResult:
    started: int = 0
    already_started: int = 0
    failures_recorded: int = 0
    deletions_recorded: int = 0
    left: int = 0

    def summary(self) -> str:
        return (
            f"{self.started} execution(s) started, {self.already_started} already started before, "
            f"{self.failures_recorded} failure notice(s) recorded, {self.deletions_recorded} deletion(s) recorded, "
            f"{self.left} message(s) left in the queue"
        )


def drain_dead_letters(
    stack: DeployedStack, sqs: Any, sfn: Any, lambda_: Any, *, limit: int | None = None, dry_run: bool = False
) -> tuple[DrainResult, list[str]]:
    """Do what each dead-lettered event should have done, then delete it; keep what is not ours.

    An upload event starts the execution EventBridge failed to start, named after the event's
    id, so draining twice never runs an upload twice. A failure notice is handed to Record.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    result, problems = DrainResult(), []
    url = stack.outputs["DeadLetterQueueUrl"]
    seen: set[str] = set()
    kept: list[str] = []  # receipt handles: made visible again at the end, for the next drain
    while limit is None or len(seen) < limit:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=120,
            MessageAttributeNames=["All"],
        ).get("Messages", [])  # fmt: skip
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh:
            seen.add(message["MessageId"])
            try:
                event = json.loads(message["Body"])
                kind = event.get("detail-type") if isinstance(event, dict) else None
            except ValueError:
                event, kind = None, None
            if kind not in (OBJECT_CREATED, OBJECT_DELETED, STATUS_CHANGE):
                result.left += 1
                kept.append(message["ReceiptHandle"])
                problems.append(f"{message['MessageId']}: not an upload or failure event; left in the queue")
                continue
            if dry_run:
                result.left += 1
                kept.append(message["ReceiptHandle"])
                continue
            try:
                if kind in (STATUS_CHANGE, OBJECT_DELETED):  # both go to Record, as their rules send them
                    send_to_record(stack, lambda_, event)
                    if kind == STATUS_CHANGE:
                        result.failures_recorded += 1
                    else:
                        result.deletions_recorded += 1
                else:
                    try:
                        sfn.start_execution(
                            stateMachineArn=stack.state_machine_arn,
                            name=f"dlq-{event.get('id') or message['MessageId']}"[:80],
                            input=json.dumps(event),
                        )
                        result.started += 1
                    except ClientError as exc:
                        if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
                            raise
                        result.already_started += 1
            except (ClientError, BotoCoreError, RuntimeError) as exc:  # one bad message must not stop the drain
                result.left += 1
                kept.append(message["ReceiptHandle"])
                problems.append(f"{message['MessageId']}: {exc}")
                continue
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    for handle in kept:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    return result, problems


def replay_summary(outcomes: list[Replayed], errors: list[str]) -> str:
    counts = Counter(o.action for o in outcomes)
    return (
        f"{counts['redriven']} redriven, {counts['restarted']} restarted as new executions, "
        f"{counts['recorded']} deletion(s) sent to Record, {counts['skipped']} skipped, {len(errors)} error(s)"
    )


# --- the commands: thumbs --stack NAME executions | history | replay | backfill | drain-dlq ---------


def _deployed(args: argparse.Namespace) -> DeployedStack:
    import boto3

    return DeployedStack.find(args.stack, boto3.Session(profile_name=args.profile, region_name=args.region))


def _express_history(stack: DeployedStack) -> int:
    group = stack.outputs.get("PipelineLogGroupName", "the state machine's log group")
    out.print(
        f"{stack.name} runs EXPRESS executions: Step Functions keeps no history to list or describe. "
        f"Their history is CloudWatch Logs group {group} (e.g. aws logs tail {group} --since 1h); "
        "failures are FAILED records, and `replay --failed` replays them."
    )
    return 2


def cmd_executions(args: argparse.Namespace) -> int:
    stack = _deployed(args)
    if stack.express:
        return _express_history(stack)
    sfn = stack.client("stepfunctions")
    since = parse_since(args.since) if args.since else None
    found = list_executions(stack, sfn, (args.status,) if args.status else None, since)
    shown = f" (showing {args.limit})" if len(found) > args.limit else ""
    table = Table(title=f"{stack.name}: {len(found)} execution(s){shown}")
    for column in ("name", "status", "started", "duration", "key", "error"):
        table.add_column(column, overflow="fold")
    for summary in reversed(found[: args.limit]):  # the newest LIMIT, newest last as locally
        described = sfn.describe_execution(executionArn=summary["executionArn"])
        detail = (json.loads(described.get("input") or "{}").get("detail") or {}).get("object", {})
        stop = summary.get("stopDate")
        table.add_row(
            summary["name"],
            summary["status"] + (f" (redriven {described['redriveCount']}x)" if described.get("redriveCount") else ""),
            summary["startDate"].isoformat()[:19],
            f"{(stop - summary['startDate']).total_seconds():.2f} s" if stop else "",
            str(detail.get("key", ""))[:60],
            described.get("error") or "",
        )
    out.print(table)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    stack = _deployed(args)
    if stack.express:
        return _express_history(stack)
    arn = stack.execution_arn(args.execution)
    code = print_history(execution_with_history(stack.client("stepfunctions"), arn))
    out.print(f"Console: {console_link(stack.session.region_name, arn)}")
    return code


def cmd_replay(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    stack = _deployed(args)
    sfn = stack.client("stepfunctions")
    targets: list[Any]
    if stack.express:
        if not args.failed:
            return _express_history(stack)
        since = parse_since(args.since or "14d")
        targets = failed_records(stack, stack.client("dynamodb"), since)
    elif args.failed:
        since = parse_since(args.since or "14d")  # redrive reaches back 14 days at most
        targets = [e["executionArn"] for e in list_executions(stack, sfn, FAILED_STATUSES, since)]
    else:
        targets = [stack.execution_arn(reference) for reference in args.executions]
    lookup = record_lookup(stack, stack.client("dynamodb"))
    outcomes: list[Replayed] = []
    errors: list[str] = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task(f"replaying at {args.rate:g}/s", total=len(targets))
        for target in paced(targets, args.rate):
            try:
                if isinstance(target, dict):  # an EXPRESS workflow's FAILED record
                    outcomes.append(replay_record(stack, sfn, target))
                else:
                    outcomes.append(replay(stack, sfn, target, lookup))
            except (ClientError, BotoCoreError, RuntimeError) as exc:  # one refusal must not stop a bulk replay
                label = target["source_id"] if isinstance(target, dict) else target.rsplit(":", 1)[-1]
                errors.append(f"{label}: {exc}")
            progress.advance(task)
    table = Table(title="Replayed")
    for column in ("execution", "action", "now running as", "why"):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        table.add_row(
            outcome.old_arn.rsplit(":", 1)[-1], outcome.action, outcome.arn.rsplit(":", 1)[-1], outcome.reason
        )
    out.print(table)
    for error in errors:
        out.print(f"[red]error[/red] {error}")
    out.print(replay_summary(outcomes, errors))
    return 1 if errors else 0


def cmd_drain_dlq(args: argparse.Namespace) -> int:
    stack = _deployed(args)
    result, problems = drain_dead_letters(
        stack, stack.client("sqs"), stack.client("stepfunctions"), stack.client("lambda"),
        limit=args.limit, dry_run=args.dry_run,
    )  # fmt: skip
    for problem in problems:
        out.print(f"[yellow]kept[/yellow] {problem}")
    out.print(("Dry run: " if args.dry_run else "") + result.summary())
    return 1 if result.left and not args.dry_run else 0


def cmd_backfill(args: argparse.Namespace) -> int:
    """Start the deployed stack's Backfill, follow its Map Run, and sum up (``thumbs/backfill.py``)."""
    from . import backfill

    summary = backfill.run(_deployed(args), prefix=args.prefix, force=args.all)
    return backfill.report(summary, out)
