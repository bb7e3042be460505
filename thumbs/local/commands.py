"""The local commands: ``thumbs run``, ``executions``, ``history``, ``replay`` and ``serve``.

Each one that runs the pipeline deploys the synthesized template on moto for the length of
the command (:class:`~thumbs.local.session.Session`); ``executions`` and ``history`` only
read the state folder, so they answer at once from a later process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from ..terminal import console, duration, out, parse_since, print_history
from .state import StateFolder

if TYPE_CHECKING:
    from .served import Outcome

SKIPPED_SUFFIXES = (".md", ".json", ".txt")  # documentation next to images (e.g. a corpus manifest)
# Uploads run ahead of the executions they start by at most this many: enough to keep every
# core busy, few enough that a folder of 10,000 photos does not hold 10,000 executions (and
# their interpreter threads) in memory at once. Two cores finish about 3 executions a second.
IN_FLIGHT = 48


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
    """Upload, wait, write the outputs and summarise: on a running ``thumbs serve`` when there is one."""
    if args.paths:
        files = files_under([Path(p) for p in args.paths])
    else:
        from .samples import write_samples

        files = [(p.name, p) for p in write_samples(state.samples_dir)]
        console.print(f"No PATH given: running on {len(files)} generated samples in {state.samples_dir}")
    started = time.monotonic()
    endpoint = state.serving()
    label = f"{len(files)} uploads"
    if endpoint is not None:
        if args.fault or args.concurrency:
            raise SystemExit(
                f"thumbs: a thumbs serve for {state.root} is running ({endpoint}); faults and the concurrency "
                "limit are set when a stack starts: stop it, or start it with thumbs serve --fault/--concurrency"
            )
        from .served import run_on_serve

        console.print(f"Using the running thumbs serve on {endpoint}")
        records, report, finished = run_on_serve(state, endpoint, files, Path(args.out), label)
    else:
        from .session import Session

        with Session(state, faults=_faults(args), outputs=False, concurrency=args.concurrency) as session:
            records, report, finished = run_files(
                session, files, Path(args.out), lambda: session.wait_for_uploads(label)
            )
    elapsed = time.monotonic() - started
    return _summarise(records, report, finished, elapsed, Path(args.out))


def _faults(args: argparse.Namespace) -> Any:
    """``--fault`` as the runtime's switch; the runtime is imported only by a command that starts a stack."""
    from .lambda_runtime import FaultSwitch

    return FaultSwitch.parse(args.fault)


def run_files(stack: Any, files: list[tuple[str, Path]], folder: Path, wait: Callable[[], bool]) -> Outcome:
    """Upload, ``wait``, write the thumbnails, ``records.jsonl`` and ``report.json``: (records, report, finished).

    ``stack`` is a :class:`Session`: this command's own, or a serve's when it runs a command's files.
    """
    from awsio import source_id

    before = stack.function_report()

    def upload(key_and_file: tuple[str, Path]) -> None:
        stack.wait_for_room(IN_FLIGHT)
        stack.upload(key_and_file[0], key_and_file[1].read_bytes())

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(upload, files))
    finished = wait()
    found = (stack.record(source_id(stack.upload_bucket, key)) for key in sorted({key for key, _ in files}))
    records = [r for r in found if r is not None]
    _write_outputs(stack, records, folder)
    report = _this_run(before, stack.function_report())
    (folder / "report.json").write_text(json.dumps({"functions": report}, indent=1))
    return records, report, finished


def _this_run(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Invocations and throttles of this run only (a running serve counts from its start); memory is the peak."""
    return {
        name: {**now, **{n: now.get(n, 0) - before.get(name, {}).get(n, 0) for n in ("invocations", "throttles")}}
        for name, now in after.items()
    }


def _write_outputs(stack: Any, records: list[dict[str, Any]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    for record in records:
        for thumb in record.get("thumbnails", []):
            target = folder / thumb["key"]
            if not target.resolve().is_relative_to(root):
                continue  # a key with '..' in it stays in the bucket; the record still names it
            stored = stack.thumbnail_file(thumb["key"])
            if stored is None:
                continue  # gone since (a later deletion or sizes change); the record still names it
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(stored, target)  # a copy, never a link: the blob is shared and must not change
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
        f"{name} {r['invocations']}x"
        + (f" ({r['throttles']} throttled)" if r.get("throttles") else "")
        + f", max {r['max_memory_used_mb']:.0f}/{r['memory_size_mb']} MB"
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
    for execution in state.execution_index():
        if args.status and execution["status"] != args.status:
            continue
        table.add_row(
            execution["name"],
            execution["status"],
            execution["startDate"][:19],
            duration(execution["startDate"], execution.get("stopDate")),
            str(execution.get("key") or "")[:60],
            execution.get("error") or "",
        )
    out.print(table)
    return 0


def cmd_history(args: argparse.Namespace, state: StateFolder) -> int:
    return print_history(state.find_execution(args.execution))


def cmd_replay(args: argparse.Namespace, state: StateFolder) -> int:
    """Redrive each run that is redrivable, else start a linked new run: what ``--stack`` does on AWS."""
    from .. import aws

    if args.failed:  # the pipeline's runs (an S3 object each); a Backfill is rerun with thumbs backfill
        from awsio import FAILED_STATUSES

        failed = [e for e in state.execution_index() if e["status"] in FAILED_STATUSES and e.get("key") is not None]
        if args.since:
            cutoff = datetime.now(UTC) - parse_since(args.since)
            failed = [e for e in failed if datetime.fromisoformat(e["startDate"]) >= cutoff]
        targets = [state.find_execution(e["name"]) for e in failed]
    else:
        targets = [state.find_execution(reference) for reference in args.executions]
        for target in targets:
            if not (target.get("input") or {}).get("detail"):
                raise ValueError(
                    f"{target['name']} is not a pipeline run (no S3 object in its input): "
                    "a Backfill is run again with thumbs backfill, which redoes only what is stale"
                )
    if not targets:
        out.print("Nothing to replay.")
        return 0
    from .session import Session

    with Session(state, faults=_faults(args)) as session:
        deployed = session.stack.deployed()
        sfn = deployed.client("stepfunctions")
        lookup = aws.record_lookup(deployed, deployed.client("dynamodb"))
        outcomes = [aws.replay(deployed, sfn, execution["executionArn"], lookup) for execution in targets]
        running = [o for o in outcomes if o.action in ("redriven", "restarted")]
        session.wait(len(running), f"replaying {len(running)}")
        session.stack.runtime.wait_for_async()
        records = {source: session.record(source) for source in map(_source_id, targets)}
    table = Table(title="Replayed")
    for column in ("execution", "action", "now running as", "status", "record", "why"):
        table.add_column(column, overflow="fold")
    worst = 0
    for old, outcome in zip(targets, outcomes, strict=True):
        now = state.find_execution(outcome.arn) if outcome.action != "recorded" else {"status": "-"}
        if outcome.action == "restarted":
            now["replayOf"] = old["executionArn"]
            state.save_execution(now)
        record = records.get(_source_id(old)) or {}
        status = now["status"] if outcome.action != "skipped" else "-"
        table.add_row(
            old["name"], outcome.action, outcome.arn.rsplit(":", 1)[-1], status, record.get("status", "-"),
            outcome.reason,
        )  # fmt: skip
        done = now["status"] == "SUCCEEDED" or (outcome.action == "recorded" and record.get("status") == "DELETED")
        worst = max(worst, 1 if outcome.action != "skipped" and not done else 0)
    out.print(table)
    return worst


def _source_id(execution: dict[str, Any]) -> str:
    """The record key of the object an execution's S3 event names."""
    detail = execution["input"]["detail"]
    from awsio import source_id

    return source_id(detail["bucket"]["name"], detail["object"]["key"])


def cmd_backfill(args: argparse.Namespace, state: StateFolder) -> int:
    """The Backfill on the local stack, through the same code as ``--stack`` (``thumbs/backfill.py``)."""
    from .. import backfill
    from .session import Session

    with Session(state, faults=_faults(args)) as session:
        summary = backfill.run(session.stack.deployed(), prefix=args.prefix, force=args.all)
        session.stack.runtime.wait_for_async()  # FAILED records arrive asynchronously
    return backfill.report(summary, out)


def cmd_verify(args: argparse.Namespace, state: StateFolder) -> int:
    """``thumbs verify`` on the local stack, through the same code as ``--stack`` (``thumbs/verify.py``)."""
    from .. import verify
    from .session import Session

    with Session(state) as session:
        endpoint = session.stack.endpoint
        link = lambda arn: f"{endpoint}/_console/executions/{arn.rsplit(':', 1)[-1]}"  # noqa: E731
        checks = verify.run(verify.verification_for(session.stack.deployed(), args.timeout, link))
        return verify.report(checks, out)


def _stop_on_signals() -> None:
    """SIGTERM (``kill``, systemd, a container's stop) and SIGHUP (a closed terminal) stop as Ctrl-C does.

    Python's default for both is to die at once: ``serve.json`` stayed behind, claiming a serve
    that was gone, the records were not written out, and an execution's save could be cut
    short. The first one raises KeyboardInterrupt in the main thread instead, so the same stop
    runs; a second one of the same kind kills at once, as a stop that hangs should.
    """

    def stop(number: int, _frame: object) -> None:
        signal.signal(number, signal.SIG_DFL)
        raise KeyboardInterrupt

    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, stop)


def cmd_serve(args: argparse.Namespace, state: StateFolder) -> int:
    from .session import Session

    _stop_on_signals()
    with Session(state, port=args.port, faults=_faults(args), concurrency=args.concurrency) as session:
        stack = session.stack
        aws = f"aws --endpoint-url {stack.endpoint}"
        # The port opened only now, with the stack deployed: whoever waited for it can upload.
        out.print(f"Ready: local stack on {stack.endpoint} (health: {stack.endpoint}/_thumbs/ready; Ctrl-C to stop)")
        out.print(f"Console: {stack.endpoint}/_console/")
        if getattr(args, "open_browser", False):
            import webbrowser

            webbrowser.open(f"{stack.endpoint}/_console/")
        out.print("Try:")
        out.print(f"  {aws} s3 cp photo.jpg s3://{stack.upload_bucket}/")
        out.print(f"  {aws} stepfunctions list-executions --state-machine-arn {stack.state_machine_arn}")
        out.print(f"  {aws} stepfunctions redrive-execution --execution-arn <arn of a FAILED execution>")
        out.print(f"  {aws} dynamodb scan --table-name {stack.table_name}")
        out.print(f"  {aws} s3 ls --recursive s3://{stack.thumbnail_bucket}/")
        watcher = None
        if getattr(args, "watch", False):
            from .watch import Watcher

            watcher = Watcher(session, code_dir=stack.code_dir, say=out.print).start()
            out.print(f"Watching {stack.code_dir} and the CDK app for changes")
        import secrets

        from .served import RunHandler

        token = secrets.token_urlsafe(24)
        stack.run = RunHandler(session, token)
        state.announce_serve(stack.endpoint, token)  # thumbs run on this folder now runs here
        try:
            while True:  # records.json is written out when the stack stops; the store has every record now
                time.sleep(2)
        except KeyboardInterrupt:
            out.print("Stopping.")
        finally:
            state.withdraw_serve()
            if watcher is not None:
                watcher.stop()
    return 0
