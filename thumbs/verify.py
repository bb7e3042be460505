"""``thumbs verify``: after a deploy, one command that shows the stack works in that account.

It puts a small generated set under a prefix of its own, and checks what the pipeline made
of each upload through the same AWS APIs a user would call:

* a photo, a photo stored sideways with EXIF orientation 6, and a transparent PNG must end
  SUCCEEDED, with every configured size, in the configured format, at the right dimensions,
  upright, and with no EXIF;
* a truncated JPEG and a text file named ``.jpg`` must end REJECTED with their reasons;
* each execution's history must have entered the states its outcome goes through.

Then it deletes the uploads and checks that each record turns DELETED and each thumbnail
goes. It removes those records last, so nothing of it stays. Each check is one row, with the
execution's console link; any failure gives exit status 1 and one line that says why.

With ``--stack`` it works on a deployed stack; without it, on the local one. Both go through
``DeployedStack`` and the same code.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .aws import DeployedStack, console_link, execution_with_history, record_lookup

# name -> the status it must end in, and the rejection code
CASES: dict[str, tuple[str, str | None]] = {
    "large-photo.jpg": ("SUCCEEDED", None),
    "rotated-exif.jpg": ("SUCCEEDED", None),
    "transparent-logo.png": ("SUCCEEDED", None),
    "broken.jpg": ("REJECTED", "CorruptImage"),
    "notes-not-an-image.jpg": ("REJECTED", "UnsupportedFormat"),
}
# The states each outcome must have entered (a subset: a retry enters a state again).
STATES = {"SUCCEEDED": ("Validate", "Thumbnails", "Resize", "Record"), "REJECTED": ("Validate", "RecordRejected")}
FINISHED = ("SUCCEEDED", "REJECTED", "FAILED")
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Check:
    subject: str
    check: str
    ok: bool
    detail: str
    link: str = ""


@dataclass(frozen=True)
class Verification:
    """Where the checks run and what they expect: the stack, its sizes and formats, and the prefix."""

    stack: DeployedStack
    sizes: tuple[int, ...]
    output_format: str  # "auto": JPEG for opaque images, alpha_format for images with alpha
    alpha_format: str
    prefix: str = ""
    timeout_seconds: float = 600.0
    link: Callable[[str], str] = lambda arn: arn


def run(verification: Verification) -> list[Check]:
    """Upload the set, check every outcome, delete it, check the deletions; the checks in order."""
    from .local.samples import sample_images

    stack = verification.stack
    s3, sfn = stack.client("s3"), stack.client("stepfunctions")
    lookup = record_lookup(stack, stack.client("dynamodb"))
    bucket = stack.outputs["UploadBucketName"]
    folder = f"{verification.prefix}thumbs-verify/{uuid.uuid4().hex[:12]}/"
    samples = sample_images(photo_size=(2400, 1600))
    source_ids = {name: f"s3://{bucket}/{folder}{name}" for name in CASES}
    etags = {}
    for name in CASES:
        etags[name] = s3.put_object(Bucket=bucket, Key=folder + name, Body=samples[name])["ETag"].strip('"')
    checks: list[Check] = []
    try:
        records = _wait(
            lookup, source_ids, lambda n, r: r.get("etag") == etags[n] and r["status"] in FINISHED, verification
        )
        for name, (expected, code) in CASES.items():
            record = records.get(name)
            link = verification.link(record["execution_arn"]) if record and record.get("execution_arn") else ""
            checks.append(_outcome(name, record, expected, code, link))
            if record is None or record["status"] != expected:
                continue
            if expected == "SUCCEEDED":
                checks.append(_thumbnails(name, record, s3, stack, verification, link))
            checks.append(_history(name, record, sfn, expected, link))
    finally:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": folder + name} for name in CASES]})
    deleted = _wait(lookup, source_ids, lambda n, r: r["status"] == "DELETED", verification)
    thumbnails = stack.outputs["ThumbnailBucketName"]
    for name in CASES:
        record = deleted.get(name)
        if record is None:
            checks.append(Check(name, "deletion", False, "the record did not turn DELETED after the upload's deletion"))
            continue
        left = [key for key in _thumbnail_keys(records.get(name)) if _exists(s3, thumbnails, key)]
        detail = f"thumbnails still there: {', '.join(left)}" if left else "record DELETED, thumbnails gone"
        checks.append(Check(name, "deletion", not left, detail))
    dynamodb = stack.client("dynamodb")
    for source_id in source_ids.values():  # the verification leaves nothing behind
        dynamodb.delete_item(TableName=stack.outputs["RecordsTableName"], Key={"source_id": {"S": source_id}})
    return checks


def _wait(
    lookup: Callable[[str], dict[str, Any] | None],
    source_ids: dict[str, str],
    done: Callable[[str, dict[str, Any]], bool],
    verification: Verification,
) -> dict[str, dict[str, Any]]:
    """Each record once ``done`` says so, or as it is at the deadline."""
    deadline = time.monotonic() + verification.timeout_seconds
    found: dict[str, dict[str, Any]] = {}
    while True:
        for name, source_id in source_ids.items():
            if name not in found and (record := lookup(source_id)) is not None and done(name, record):
                found[name] = record
        if len(found) == len(source_ids) or time.monotonic() > deadline:
            return found
        time.sleep(POLL_SECONDS)


def _outcome(name: str, record: dict[str, Any] | None, expected: str, code: str | None, link: str) -> Check:
    if record is None:
        return Check(name, "outcome", False, f"no record of this upload within the timeout (expected {expected})")
    error = record.get("error") or {}
    if record["status"] != expected:
        reason = f": {error.get('code')}: {error.get('message', '')[:120]}" if error else ""
        return Check(name, "outcome", False, f"{record['status']}, expected {expected}{reason}", link)
    if code is not None and error.get("code") != code:
        return Check(name, "outcome", False, f"REJECTED as {error.get('code')!r}, expected {code!r}", link)
    reason = f" ({code}: {error.get('message', '')[:60]})" if code else ""
    return Check(name, "outcome", True, expected + reason, link)


def _thumbnails(
    name: str, record: dict[str, Any], s3: Any, stack: DeployedStack, verification: Verification, link: str
) -> Check:
    from PIL import Image

    made = {int(t["size"]): t for t in record.get("thumbnails", [])}
    problems = []
    if sorted(made) != sorted(verification.sizes):
        problems.append(f"sizes {sorted(made)}, expected {sorted(verification.sizes)}")
    bucket = stack.outputs["ThumbnailBucketName"]
    for size, entry in sorted(made.items()):
        body = s3.get_object(Bucket=bucket, Key=entry["key"])["Body"].read()
        image = Image.open(io.BytesIO(body))
        expected_format = (
            verification.output_format
            if verification.output_format != "auto"
            else verification.alpha_format
            if name.endswith(".png")
            else "jpeg"
        ).upper()
        if image.format != expected_format:
            problems.append(f"{size}: {image.format}, expected {expected_format}")
        if image.size != (int(entry["width"]), int(entry["height"])) or max(image.size) > size:
            problems.append(f"{size}: {image.size[0]}x{image.size[1]}, record says {entry['width']}x{entry['height']}")
        if "rotated" in name and image.width < image.height:  # stored portrait; orientation 6 shows it landscape
            problems.append(f"{size}: portrait, so EXIF orientation 6 was not applied")
        if image.getexif() or "exif" in image.info:
            problems.append(f"{size}: carries EXIF")
    detail = "; ".join(problems) or f"{len(made)} sizes, right format and dimensions, upright, no EXIF"
    return Check(name, "thumbnails", not problems, detail, link)


def _history(name: str, record: dict[str, Any], sfn: Any, expected: str, link: str) -> Check:
    arn = record.get("execution_arn")
    if not arn:
        return Check(name, "history", False, "the record names no execution")
    events = execution_with_history(sfn, arn)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    missing = [state for state in STATES[expected] if state not in entered]
    # each task state entered schedules its function once; every further schedule is a retry
    retries = sum(e["type"] == "LambdaFunctionScheduled" for e in events) - sum(
        e["type"] == "TaskStateEntered" for e in events
    )
    if missing:
        return Check(name, "history", False, f"never entered {', '.join(missing)} (entered {', '.join(entered)})", link)
    return Check(name, "history", True, f"entered {' > '.join(dict.fromkeys(entered))}; {retries} retries", link)


def _thumbnail_keys(record: dict[str, Any] | None) -> list[str]:
    return [t["key"] for t in (record or {}).get("thumbnails", [])]


def _exists(s3: Any, bucket: str, key: str) -> bool:
    from awsio import is_missing

    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except Exception as exc:
        if is_missing(exc):
            return False
        raise


def report(checks: list[Check], out: Any) -> int:
    """The table, then one line per failed check; 0 when every check passed, else 1."""
    from rich.table import Table

    table = Table(title="thumbs verify")
    for column in ("upload", "check", "result", "detail", "execution"):
        table.add_column(column, overflow="fold")
    for check in checks:
        result = "[green]pass[/green]" if check.ok else "[red]FAIL[/red]"
        table.add_row(check.subject, check.check, result, check.detail, check.link)
    out.print(table)
    failed = [c for c in checks if not c.ok]
    for check in failed:
        out.print(f"FAIL {check.subject} {check.check}: {check.detail}", markup=False, highlight=False)
    out.print(f"{len(checks) - len(failed)} of {len(checks)} checks passed.")
    return 1 if failed else 0


def cmd_verify(args: Any, out: Any) -> int:
    """``thumbs verify --stack NAME`` on AWS; the local stack comes through ``local.commands.cmd_verify``."""
    from .aws import _deployed

    stack = _deployed(args)
    region = stack.session.region_name
    return report(run(verification_for(stack, args.timeout, lambda arn: console_link(region, arn))), out)


def verification_for(stack: DeployedStack, timeout: float, link: Callable[[str], str]) -> Verification:
    """What to expect of ``stack``: the sizes, formats and key filter of this project's ``cdk.json``.

    ValueError when the upload rule's key filter would let none of the set through.
    """
    from pipeline.app import project_config

    config = project_config()
    if config.key_suffixes and not all(name.endswith(tuple(config.key_suffixes)) for name in CASES):
        raise ValueError(
            f"the stack only starts on keys ending {', '.join(config.key_suffixes)}; thumbs verify uploads "
            f"{', '.join(CASES)}: add .jpg and .png to key_suffixes, or verify by hand"
        )
    return Verification(
        stack=stack,
        sizes=tuple(config.imaging.sizes),
        output_format=config.imaging.output_format,
        alpha_format=config.imaging.alpha_format,
        prefix=config.key_prefix,
        timeout_seconds=timeout,
        link=link,
    )
