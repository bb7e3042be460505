"""``thumbs``: run the synthesized pipeline on this machine, inspect its executions, replay failures.

    thumbs run [PATH ...] [--out DIR] [--fault FUNCTION=KIND[:N]]
    thumbs executions [--status S]
    thumbs history EXECUTION
    thumbs replay EXECUTION ... | --failed [--since 24h]
    thumbs serve [--port P]
    thumbs cost --images N [--avg-mp M]

Every command that runs the pipeline deploys the same CloudFormation template ``cdk deploy``
would, on moto, with the handler code run by the local Lambda runtime. State (executions,
records, uploads) lives in the local state folder, see ``pipeline/local_state.py``.

With ``--stack NAME`` (and ``--profile``/``--region`` or the usual AWS environment),
``executions``, ``history``, ``replay`` and ``drain-dlq`` work on a deployed stack instead;
see ``pipeline/aws_ops.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from shell import FAILED_STATUSES

from . import aws_ops
from .lambda_runtime import FaultSwitch
from .local_stack import LocalStack, load_template
from .local_state import StateFolder, state_root, to_json

SKIPPED_SUFFIXES = (".md", ".json", ".txt")  # documentation next to images (e.g. a corpus manifest)

console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 160)


# --- the pipeline, for one command ---------------------------------------------------------------


class Session:
    """A deployed local stack bound to the state folder: restores uploads and records, saves executions."""

    def __init__(self, state: StateFolder, *, port: int | None = None, faults: FaultSwitch | None = None) -> None:
        self.state = state
        template = load_template(state.cache_dir)
        self.stack = LocalStack(template, state.root, port=port, faults=faults, on_execution_end=self._ended)
        self._saving: list[threading.Thread] = []
        self._records_saved_after = -1

    def __enter__(self) -> Session:
        self.stack.start()
        self.stack.deploy(before_events=self._restore)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for thread in self._saving:
                thread.join()
            if self._records_saved_after != len(self.stack.ended):  # a scan of a big table is not free
                self.save_records()
        finally:
            self.stack.stop()

    def _restore(self, stack: LocalStack) -> None:
        """Earlier uploads and records, put back before S3 notifications are on: nothing re-runs."""
        s3 = stack.client("s3")
        for key, data in self.state.uploads().items():
            s3.put_object(Bucket=stack.upload_bucket, Key=key, Body=data)
        table = _table(stack)
        for item in self.state.records().values():
            table.put_item(Item=_to_dynamo(item))

    def _ended(self, detail: dict[str, Any]) -> None:
        thread = threading.Thread(target=self._save_execution, args=(detail,), daemon=True)
        self._saving.append(thread)
        thread.start()

    def _save_execution(self, detail: dict[str, Any]) -> None:
        sfn = self.stack.client("stepfunctions")
        events, token = [], None
        while True:
            page = sfn.get_execution_history(
                executionArn=detail["executionArn"], maxResults=1000, **({"nextToken": token} if token else {})
            )
            events += page["events"]
            token = page.get("nextToken")
            if not token:
                break
        described = sfn.describe_execution(executionArn=detail["executionArn"])
        self.state.save_execution(
            {
                "executionArn": described["executionArn"],
                "name": described["name"],
                "status": described["status"],
                "startDate": described["startDate"],
                "stopDate": described.get("stopDate"),
                "input": json.loads(described.get("input") or "null"),
                "output": json.loads(described["output"]) if described.get("output") else None,
                "error": described.get("error"),
                "cause": described.get("cause"),
                "replayOf": None,
                "events": events,
            }
        )

    def upload(self, key: str, data: bytes) -> None:
        self.state.save_upload(key, data)
        self.stack.client("s3").put_object(Bucket=self.stack.upload_bucket, Key=key, Body=data)

    def wait(self, expected: int, label: str) -> bool:
        with Progress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False
        ) as progress:
            task = progress.add_task(label, total=expected)
            done = self.stack.wait_for_executions(expected, progress=lambda n: progress.update(task, completed=n))
        for thread in self._saving:
            thread.join()
        return done

    def function_report(self) -> dict[str, dict[str, Any]]:
        """Per function, what Lambda's REPORT lines say: invocations and max memory used against MemorySize."""
        runtime = self.stack.runtime
        assert runtime is not None
        return {
            spec.handler.split(".")[0]: {
                "function": name,
                "invocations": runtime.invocations[name],
                "max_memory_used_mb": round(runtime.peak_memory_mb[name], 1),
                "memory_size_mb": spec.memory_mb,
            }
            for name, spec in runtime.functions.items()
        }

    def save_records(self) -> list[dict[str, Any]]:
        if self.stack.runtime is not None:
            self.stack.runtime.wait_for_async()  # FAILED records arrive asynchronously
        self._records_saved_after = len(self.stack.ended)
        items = _scan(_table(self.stack))
        self.state.save_records(items)
        return items


def _table(stack: LocalStack) -> Any:
    import boto3

    return boto3.resource(
        "dynamodb",
        endpoint_url=stack.endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ).Table(stack.table_name)


def _scan(table: Any) -> list[dict[str, Any]]:
    items, start = [], None
    while True:
        page = table.scan(**({"ExclusiveStartKey": start} if start else {}))
        items += [to_json(item) for item in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def _to_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    from decimal import Decimal

    return json.loads(json.dumps(item), parse_float=Decimal)


# --- commands --------------------------------------------------------------------------------------


def files_under(paths: list[Path]) -> list[tuple[str, Path]]:
    """(key, file) for every file under ``paths``; keys are paths relative to each argument."""
    found = []
    for path in paths:
        if path.is_file():
            found.append((path.name, path))
            continue
        if not path.is_dir():
            raise SystemExit(f"thumbs: {path} is neither a file nor a folder")
        for file in sorted(path.rglob("*")):
            relative = file.relative_to(path)
            if (
                file.is_file()
                and not any(p.startswith(".") for p in relative.parts)
                and file.suffix not in SKIPPED_SUFFIXES
            ):
                found.append((relative.as_posix(), file))
    return found


def cmd_run(args: argparse.Namespace, state: StateFolder) -> int:
    if args.paths:
        files = files_under([Path(p) for p in args.paths])
    else:
        from .samples import write_samples

        files = [(p.name, p) for p in write_samples(state.samples_dir)]
        console.print(f"No PATH given: running on {len(files)} generated samples in {state.samples_dir}")
    started = time.monotonic()
    with Session(state, faults=FaultSwitch.parse(args.fault)) as session:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda kf: session.upload(kf[0], kf[1].read_bytes()), files))
        expected = session.stack.started_executions
        finished = session.wait(expected, f"{len(files)} uploads")
        records = session.save_records()
        ours = {key for key, _ in files}
        records = [r for r in records if r["key"] in ours and r["bucket"] == session.stack.upload_bucket]
        _write_outputs(session.stack, records, Path(args.out))
        report = session.function_report()
        (Path(args.out) / "report.json").write_text(json.dumps({"functions": report}, indent=1))
    elapsed = time.monotonic() - started
    return _summarise(records, report, finished, elapsed, Path(args.out))


def _write_outputs(stack: LocalStack, records: list[dict[str, Any]], folder: Path) -> None:
    s3 = stack.client("s3")
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()

    def download(key: str) -> None:
        target = folder / key
        if not target.resolve().is_relative_to(root):
            return  # a key with '..' in it stays in the bucket; the record still names it
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket=stack.thumbnail_bucket, Key=key)["Body"].read())

    keys = [thumb["key"] for record in records for thumb in record.get("thumbnails", [])]
    with ThreadPoolExecutor(max_workers=8) as pool:  # the loopback server answers in parallel
        list(pool.map(download, keys))
    with (folder / "records.jsonl").open("w") as handle:
        for record in sorted(records, key=lambda r: r["key"]):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _summarise(
    records: list[dict[str, Any]], report: dict[str, dict[str, Any]], finished: bool, elapsed: float, folder: Path
) -> int:
    counts = Counter(r["status"] for r in records)
    table = Table(title=f"{len(records)} objects in {elapsed:.1f} s")
    for column in ("succeeded", "rejected", "failed"):
        table.add_column(column, justify="right")
    table.add_row(str(counts["SUCCEEDED"]), str(counts["REJECTED"]), str(counts["FAILED"]))
    out.print(table)
    problems = [r for r in records if r["status"] != "SUCCEEDED"]
    if problems:
        reasons = Table(title="Not thumbnailed")
        for column in ("key", "status", "code", "message"):
            reasons.add_column(column, overflow="fold")
        for record in sorted(problems, key=lambda r: r["key"]):
            error = record.get("error") or {}
            reasons.add_row(record["key"][:80], record["status"], error.get("code", ""), error.get("message", "")[:120])
        out.print(reasons)
    usage = ", ".join(
        f"{name} {r['invocations']}x, max {r['max_memory_used_mb']:.0f}/{r['memory_size_mb']} MB"
        for name, r in report.items()
    )
    out.print(f"Lambda: {usage}")
    out.print(f"Thumbnails: {folder}/   Records: {folder / 'records.jsonl'}   Report: {folder / 'report.json'}")
    if not finished:
        console.print("[red]Some executions did not finish in time.[/red]")
        return 2
    return 1 if counts["FAILED"] else 0


def cmd_executions(args: argparse.Namespace, state: StateFolder) -> int:
    table = Table()
    for column in ("name", "status", "started", "duration", "key", "error"):
        table.add_column(column, overflow="fold")
    for execution in state.executions(args.status):
        detail = ((execution.get("input") or {}).get("detail") or {}).get("object", {})
        table.add_row(
            execution["name"],
            execution["status"],
            execution["startDate"][:19],
            _duration(execution["startDate"], execution.get("stopDate")),
            str(detail.get("key", ""))[:60],
            execution.get("error") or "",
        )
    out.print(table)
    return 0


def _duration(start: str, stop: str | None) -> str:
    if not stop:
        return ""
    return f"{(datetime.fromisoformat(stop) - datetime.fromisoformat(start)).total_seconds():.2f} s"


def history_rows(execution: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(elapsed, event type, state, duration in state, error) for every event, in order."""
    events = execution["events"]
    start = datetime.fromisoformat(events[0]["timestamp"]) if events else None
    entered: dict[str, datetime] = {}
    rows = []
    state = ""
    for event in events:
        when = datetime.fromisoformat(event["timestamp"])
        kind = event["type"]
        details = next((v for k, v in event.items() if k.endswith("EventDetails")), {}) or {}
        duration = ""
        if kind.endswith("StateEntered"):
            state = details.get("name", state)
            entered[state] = when
        elif kind.endswith("StateExited"):
            state = details.get("name", state)
            if state in entered:
                duration = f"{(when - entered[state]).total_seconds() * 1000:.0f} ms"
        error = details.get("error", "")
        rows.append((f"+{(when - start).total_seconds() * 1000:.0f} ms", kind, state, duration, error))
    return rows


def cmd_history(args: argparse.Namespace, state: StateFolder) -> int:
    return _print_history(state.find_execution(args.execution))


def _print_history(execution: dict[str, Any]) -> int:
    table = Table(title=f"{execution['name']}  {execution['status']}")
    for column in ("at", "event", "state", "duration", "error"):
        table.add_column(column)
    rows = history_rows(execution)
    for row in rows:
        table.add_row(*row)
    out.print(table)
    failures = Counter(r[2] for r in rows if r[1] in ("LambdaFunctionFailed", "LambdaFunctionTimedOut"))
    for name, count in sorted(failures.items()):
        out.print(f"{name}: {count} failed attempt(s) before its outcome")
    if execution.get("error"):
        out.print(f"Execution failed: {execution['error']}: {execution.get('cause') or ''}"[:400])
    return 0


def cmd_replay(args: argparse.Namespace, state: StateFolder) -> int:
    if args.failed:
        targets = state.executions("FAILED")
        if args.since:
            cutoff = datetime.now(UTC) - aws_ops.parse_since(args.since)
            targets = [t for t in targets if datetime.fromisoformat(t["startDate"]) >= cutoff]
    else:
        targets = [state.find_execution(reference) for reference in args.executions]
    if not targets:
        out.print("Nothing to replay.")
        return 0
    with Session(state, faults=FaultSwitch.parse(args.fault)) as session:
        sfn = session.stack.client("stepfunctions")
        started = []
        for execution in targets:
            name = str(uuid.uuid4())
            sfn.start_execution(
                stateMachineArn=session.stack.state_machine_arn, name=name, input=json.dumps(execution["input"])
            )
            started.append((execution, name))
        session.wait(len(started), f"replaying {len(started)}")
        records = {r["source_id"]: r for r in session.save_records()}
    table = Table(title="Replayed")
    for column in ("replay of", "new execution", "status", "record"):
        table.add_column(column, overflow="fold")
    worst = 0
    for old, name in started:
        new = state.find_execution(name)
        new["replayOf"] = old["executionArn"]
        state.save_execution(new)
        detail = old["input"]["detail"]
        record = records.get(f"s3://{detail['bucket']['name']}/{detail['object']['key']}", {})
        table.add_row(old["name"], name, new["status"], record.get("status", "-"))
        worst = max(worst, 1 if new["status"] != "SUCCEEDED" else 0)
    out.print(table)
    return worst


def cmd_serve(args: argparse.Namespace, state: StateFolder) -> int:
    with Session(state, port=args.port, faults=FaultSwitch.parse(args.fault)) as session:
        stack = session.stack
        aws = f"aws --endpoint-url {stack.endpoint}"
        out.print(f"Local stack on {stack.endpoint} (Ctrl-C to stop). Try:")
        out.print(f"  {aws} s3 cp photo.jpg s3://{stack.upload_bucket}/")
        out.print(f"  {aws} stepfunctions list-executions --state-machine-arn {stack.state_machine_arn}")
        out.print(f"  {aws} dynamodb scan --table-name {stack.table_name}")
        out.print(f"  {aws} s3 ls --recursive s3://{stack.thumbnail_bucket}/")
        try:
            while True:
                time.sleep(2)
                session.save_records()
        except KeyboardInterrupt:
            out.print("Stopping.")
    return 0


# --- the same commands against a deployed stack ----------------------------------------------------


def _deployed(args: argparse.Namespace) -> aws_ops.DeployedStack:
    import boto3

    return aws_ops.DeployedStack.find(args.stack, boto3.Session(profile_name=args.profile, region_name=args.region))


def _express_history(stack: aws_ops.DeployedStack) -> int:
    group = stack.outputs.get("PipelineLogGroupName", "the state machine's log group")
    out.print(
        f"{stack.name} runs EXPRESS executions: Step Functions keeps no history to list or describe. "
        f"Their history is CloudWatch Logs group {group} (e.g. aws logs tail {group} --since 1h); "
        "failures are FAILED records, and `replay --failed` replays them."
    )
    return 2


def cmd_aws_executions(args: argparse.Namespace) -> int:
    stack = _deployed(args)
    if stack.express:
        return _express_history(stack)
    sfn = stack.client("stepfunctions")
    since = aws_ops.parse_since(args.since) if args.since else None
    found = aws_ops.list_executions(stack, sfn, (args.status,) if args.status else None, since)
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


def cmd_aws_history(args: argparse.Namespace) -> int:
    stack = _deployed(args)
    if stack.express:
        return _express_history(stack)
    arn = stack.execution_arn(args.execution)
    code = _print_history(aws_ops.execution_with_history(stack.client("stepfunctions"), arn))
    region = stack.session.region_name
    out.print(
        f"Console: https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{arn}"
    )
    return code


def cmd_aws_replay(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    stack = _deployed(args)
    sfn = stack.client("stepfunctions")
    targets: list[Any]
    if stack.express:
        if not args.failed:
            return _express_history(stack)
        since = aws_ops.parse_since(args.since or "14d")
        targets = aws_ops.failed_records(stack, stack.client("dynamodb"), since)
    elif args.failed:
        since = aws_ops.parse_since(args.since or "14d")  # redrive reaches back 14 days at most
        targets = [e["executionArn"] for e in aws_ops.list_executions(stack, sfn, FAILED_STATUSES, since)]
    else:
        targets = [stack.execution_arn(reference) for reference in args.executions]
    lookup = aws_ops.record_lookup(stack, stack.client("dynamodb"))
    outcomes: list[aws_ops.Replayed] = []
    errors: list[str] = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task(f"replaying at {args.rate:g}/s", total=len(targets))
        for target in aws_ops.paced(targets, args.rate):
            try:
                if isinstance(target, dict):  # an EXPRESS workflow's FAILED record
                    outcomes.append(aws_ops.replay_record(stack, sfn, target))
                else:
                    outcomes.append(aws_ops.replay(stack, sfn, target, lookup))
            except (ClientError, BotoCoreError) as exc:  # one refusal must not stop a bulk replay
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
    out.print(aws_ops.replay_summary(outcomes, errors))
    return 1 if errors else 0


def cmd_drain_dlq(args: argparse.Namespace) -> int:
    stack = _deployed(args)
    result, problems = aws_ops.drain_dead_letters(
        stack, stack.client("sqs"), stack.client("stepfunctions"), stack.client("lambda"),
        limit=args.limit, dry_run=args.dry_run,
    )  # fmt: skip
    for problem in problems:
        out.print(f"[yellow]kept[/yellow] {problem}")
    out.print(("Dry run: " if args.dry_run else "") + result.summary())
    return 1 if result.left and not args.dry_run else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thumbs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", help="local state folder (default: $THUMBS_STATE or .thumbs)")
    parser.add_argument("--stack", help="work on this deployed CloudFormation stack instead of the local one")
    parser.add_argument("--profile", help="AWS profile for --stack (default: the environment's credentials)")
    parser.add_argument("--region", help="AWS region for --stack (default: the profile's or AWS_REGION)")
    commands = parser.add_subparsers(dest="command", required=True)
    fault_help = (
        "inject a fault: FUNCTION=KIND[:COUNT][@SKIP], KIND one of transient, throttle, timeout, oom; "
        "SKIP invocations pass first (repeatable)"
    )

    run = commands.add_parser("run", help="upload images and run the pipeline on them")
    run.add_argument("paths", nargs="*", help="files or folders (default: generated samples)")
    run.add_argument("--out", default="thumbs-out", help="where thumbnails and records.jsonl go (default: thumbs-out)")
    run.add_argument("--fault", action="append", default=[], help=fault_help)
    run.set_defaults(handler=cmd_run)

    executions = commands.add_parser("executions", help="list executions, newest last")
    executions.add_argument("--status", choices=["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"])
    executions.add_argument("--since", help="with --stack: only executions started within, e.g. 24h")
    executions.add_argument("--limit", type=int, default=50, help="with --stack: rows to show (default 50)")
    executions.set_defaults(handler=cmd_executions)

    history = commands.add_parser("history", help="one execution's events, with durations, retries and errors")
    history.add_argument("execution", help="execution ARN, name, or a unique prefix of the name")
    history.set_defaults(handler=cmd_history)

    replay = commands.add_parser("replay", help="run executions' input again through the pipeline")
    replay.add_argument("executions", nargs="*")
    replay.add_argument("--failed", action="store_true", help="replay every FAILED (TIMED_OUT, ABORTED) execution")
    replay.add_argument("--since", help="with --failed: only executions started within, e.g. 24h")
    replay.add_argument("--rate", type=float, default=5.0, help="with --stack: replays per second (default 5)")
    replay.add_argument("--fault", action="append", default=[], help=fault_help)
    replay.set_defaults(handler=cmd_replay)

    serve = commands.add_parser("serve", help="keep the local stack up for the AWS CLI and boto3")
    serve.add_argument("--port", type=int, default=4566)
    serve.add_argument("--fault", action="append", default=[], help=fault_help)
    serve.set_defaults(handler=cmd_serve)

    drain = commands.add_parser("drain-dlq", help="with --stack: start what dead-lettered events should have started")
    drain.add_argument("--limit", type=int, help="at most this many messages")
    drain.add_argument("--dry-run", action="store_true", help="only read the queue and say what would happen")
    drain.set_defaults(handler=None)

    cost = commands.add_parser("cost", help="monthly cost per component, Standard and Express side by side")
    cost.add_argument("--images", type=int, required=True, help="images uploaded per month")
    cost.add_argument("--avg-mp", type=float, default=12.0, help="average megapixels per image (default 12)")
    cost.add_argument("--retries", type=float, default=0.0, help="average retried tasks per image (default 0)")
    cost.add_argument("--prices", help="a JSON file overriding prices (see pipeline/prices.json)")
    cost.set_defaults(handler=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    args = build_parser().parse_args(argv)
    if args.command == "replay" and not (args.failed or args.executions):
        build_parser().error("replay needs EXECUTION names or --failed")
    try:
        fault_check = getattr(args, "fault", [])
        FaultSwitch.parse(fault_check)
    except ValueError as exc:
        build_parser().error(str(exc))
    try:
        if args.command == "cost":
            from .cost import cmd_cost

            return cmd_cost(args, out, StateFolder(state_root(args.state)).cache_dir)
        if args.stack or args.command == "drain-dlq":
            if not args.stack:
                build_parser().error("drain-dlq needs --stack: the local stack delivers events without a queue")
            aws_handlers = {
                "executions": cmd_aws_executions,
                "history": cmd_aws_history,
                "replay": cmd_aws_replay,
                "drain-dlq": cmd_drain_dlq,
            }
            if args.command not in aws_handlers:
                build_parser().error(f"{args.command} runs locally; --stack works with {', '.join(aws_handlers)}")
            return aws_handlers[args.command](args)
        state = StateFolder(state_root(args.state))
        return int(args.handler(args, state))
    except ValueError as exc:
        console.print(f"thumbs: {exc}")
        return 2
    except (BotoCoreError, ClientError) as exc:  # no credentials, access denied: say so, no traceback
        console.print(f"thumbs: AWS said: {exc}")
        return 2
    except LookupError as exc:
        console.print(f"thumbs: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
