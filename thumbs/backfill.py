"""``thumbs backfill``: start the Backfill state machine, follow its Map Run, and sum up what it did.

One code path for both engines: it talks to a :class:`~thumbs.aws.DeployedStack`, which is
a stack on AWS (``--stack NAME``) or the local one registered under the same outputs.

* **Progress** comes from the Map Run's own counts (DescribeMapRun: items succeeded, failed,
  pending), as the Step Functions console shows them.
* **The summary** comes from the Map Run's result files (the ResultWriter's manifest under
  ``_work/backfill/`` in the thumbnails bucket): each batch's tally of processed, up-to-date,
  held and unmatched objects, and for a batch that failed, the images that failed and why.
  A failed image's reason is its record's (the pipeline recorded it FAILED), so the line
  says what went wrong in the pipeline, not only that a child execution failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from awsio import BACKFILL_IMAGES_FAILED, BACKFILL_RESULTS_PREFIX, source_id
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .terminal import console

POLL_SECONDS = 1.0
SHOWN_FAILURES = 20
RECORD_WAIT_SECONDS = 15.0


@dataclass
class Summary:
    """What one backfill did, summed over its batches."""

    execution_arn: str
    status: str = "RUNNING"
    error: str | None = None
    cause: str | None = None
    seconds: float = 0.0
    processed: int = 0
    up_to_date: int = 0
    not_matched: int = 0
    held: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    item_counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "SUCCEEDED" and not self.failed


def start(stack: Any, sfn: Any, *, prefix: str = "", force: bool = False) -> str:
    """Start a Backfill execution; its name says when, so the executions list reads as a log."""
    arn = stack.outputs.get("BackfillStateMachineArn")
    if not arn:
        raise LookupError(f"stack {stack.name!r} has no Backfill state machine: deploy this version (cdk deploy)")
    name = f"backfill-{datetime.now(UTC):%Y%m%dT%H%M%S}-{time.monotonic_ns() % 10**6:06d}"
    return str(
        sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps({"prefix": prefix, "force": force}))[
            "executionArn"
        ]
    )


def follow(
    sfn: Any, execution_arn: str, on_counts: Callable[[dict[str, int]], None] | None = None
) -> tuple[dict[str, Any], str | None]:
    """Poll until the execution ends, reporting the Map Run's item counts; DescribeExecution and the Map Run."""
    map_run: str | None = None
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if map_run is None:
            runs = sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
            map_run = runs[0]["mapRunArn"] if runs else None
        if map_run is not None and on_counts is not None:
            on_counts(sfn.describe_map_run(mapRunArn=map_run)["itemCounts"])
        if described["status"] != "RUNNING":
            return dict(described), map_run
        time.sleep(POLL_SECONDS)


def summarize(stack: Any, described: dict[str, Any], map_run: str | None = None) -> Summary:
    """Read the ResultWriter's files, and the records of failed images for their reasons.

    A Map Run that failed (past its tolerated failures) still wrote its results, but the
    execution has no output to point at them: the manifest is then found by the Map Run's id.
    """
    summary = Summary(
        execution_arn=described["executionArn"],
        status=described["status"],
        error=described.get("error"),
        cause=described.get("cause"),
    )
    stop = described.get("stopDate") or datetime.now(UTC)
    summary.seconds = (stop - described["startDate"]).total_seconds()
    output = json.loads(described.get("output") or "null") or {}
    details = output.get("ResultWriterDetails") if isinstance(output, dict) else None
    if not details and map_run:
        key = f"{BACKFILL_RESULTS_PREFIX}{map_run.rsplit(':', 1)[-1]}/manifest.json"
        details = {"Bucket": stack.outputs["ThumbnailBucketName"], "Key": key}
    if not details:
        return summary
    s3 = stack.client("s3")
    try:
        manifest = json.loads(s3.get_object(Bucket=details["Bucket"], Key=details["Key"])["Body"].read())
    except s3.exceptions.NoSuchKey:
        return summary  # the Map Run failed before it ran a child (the listing, say): the error says why
    for kind, files in manifest.get("ResultFiles", {}).items():
        for entry in files:
            for child in json.loads(s3.get_object(Bucket=details["Bucket"], Key=entry["Key"])["Body"].read()):
                _add_child(summary, kind, child)
    _add_reasons(stack, summary)
    return summary


def _add_child(summary: Summary, kind: str, child: dict[str, Any]) -> None:
    if kind == "SUCCEEDED":
        _add_tally(summary, json.loads(child.get("Output") or "{}"))
        return
    if child.get("Error") == BACKFILL_IMAGES_FAILED:  # the batch ran; its tally is the cause
        _add_tally(summary, json.loads(child.get("Cause") or "{}"))
        return
    # The batch itself failed (Plan, say): each of its objects is failed with the batch's error.
    items = (json.loads(child.get("Input") or "{}") or {}).get("Items", [])
    for item in items:
        reason = child.get("Cause") or ""
        summary.failed.append({"key": item.get("Key", "?"), "error": child.get("Error") or kind, "reason": reason})


def _add_tally(summary: Summary, tally: dict[str, Any]) -> None:
    images = tally.get("images", [])
    summary.processed += sum(1 for image in images if image.get("outcome") == "PROCESSED")
    summary.failed += [
        {"key": image["key"], "error": image.get("error", "")} for image in images if image.get("outcome") == "FAILED"
    ]
    summary.up_to_date += int(tally.get("up_to_date", 0))
    summary.not_matched += int(tally.get("not_matched", 0))
    summary.held += list(tally.get("held", []))


def _add_reasons(stack: Any, summary: Summary, wait_seconds: float = RECORD_WAIT_SECONDS) -> None:
    """A failed pipeline execution is recorded FAILED with its error: that is the reason to show.

    The FAILED record comes from the execution's status-change event, a moment after the
    execution ends, so each shown failure waits a little for it.
    """
    from .aws import record_lookup

    lookup = record_lookup(stack, stack.client("dynamodb"))
    bucket = stack.outputs["UploadBucketName"]
    deadline = time.monotonic() + wait_seconds
    for failure in summary.failed[:SHOWN_FAILURES]:
        while not failure.get("reason"):
            record = lookup(source_id(bucket, failure["key"])) or {}
            error = record.get("error") or {}
            if record.get("status") == "FAILED" and error:
                failure["reason"] = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
            elif time.monotonic() >= deadline:
                break
            else:
                time.sleep(POLL_SECONDS / 2)


def run(stack: Any, *, prefix: str = "", force: bool = False, show_progress: bool = True) -> Summary:
    """Start a backfill, show the Map Run's progress, and return its summary."""
    sfn = stack.client("stepfunctions")
    arn = start(stack, sfn, prefix=prefix, force=force)
    console.print(f"Backfill started: {arn.rsplit(':', 1)[-1]}")
    counts: dict[str, int] = {}
    with Progress(
        TextColumn("backfill"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
        TimeElapsedColumn(), console=console, transient=False, disable=not show_progress,
    ) as progress:  # fmt: skip
        task = progress.add_task("", total=None)

        def on_counts(item_counts: dict[str, int]) -> None:
            counts.update(item_counts)
            done = sum(item_counts.get(k, 0) for k in ("succeeded", "failed", "timedOut", "aborted"))
            progress.update(
                task,
                total=item_counts.get("total") or None,
                completed=done,
                description=f"failed {item_counts.get('failed', 0)}, pending {item_counts.get('pending', 0)}",
            )

        described, map_run = follow(sfn, arn, on_counts)
    summary = summarize(stack, described, map_run)
    summary.item_counts = counts
    return summary


def report(summary: Summary, out: Any) -> int:
    """The summary as a user reads it; 1 when anything failed (an image, a batch, or the backfill)."""
    from rich.table import Table

    name = summary.execution_arn.rsplit(":", 1)[-1]
    out.print(
        f"Backfill {name}: {summary.status} in {summary.seconds:.1f} s: {summary.processed} processed, "
        f"{summary.up_to_date} up to date, {len(summary.held)} held, {summary.not_matched} not matched, "
        f"{len(summary.failed)} failed"
    )
    table = Table(show_header=False)
    table.add_column("outcome")
    table.add_column("objects", justify="right")
    table.add_column("meaning")
    table.add_row("processed", str(summary.processed), "ran through the pipeline; each has its execution and record")
    table.add_row("up to date", str(summary.up_to_date), "recorded for this etag under the current imaging settings")
    table.add_row("held", str(len(summary.held)), "recorded for another version: that upload's own event decides")
    table.add_row("not matched", str(summary.not_matched), "outside the upload rule's key_prefix / key_suffixes")
    table.add_row("failed", str(len(summary.failed)), "see below; thumbs replay --failed runs them again")
    out.print(table)
    for failure in summary.failed[:SHOWN_FAILURES]:
        out.print(f"  failed: {failure['key']}: {failure.get('reason') or failure.get('error')}")
    if len(summary.failed) > SHOWN_FAILURES:
        out.print(f"  ... and {len(summary.failed) - SHOWN_FAILURES} more")
    for held in summary.held[:SHOWN_FAILURES]:
        out.print(f"  held: {held['key']}: {held['reason']}")
    if summary.status != "SUCCEEDED":
        out.print(f"The backfill ended {summary.status}: {summary.error or ''} {summary.cause or ''}".rstrip())
    return 0 if summary.ok else 1
