"""What the handlers share about AWS: the S3 event, AWS error mapping, the key scheme, the status names.

This is the imperative shell around the imaging core ("functional core, imperative shell"):
the core stays free of AWS; everything here knows about S3 and DynamoDB but not about
pixels. The stack (``pipeline/``) and the ``thumbs`` tool import the same names, so an event
type, a ``_work/`` prefix or a status is spelled in one place. Exception class names are
matched by the state machine (Retry and Catch), so they are part of the deployed contract.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from imaging import REJECTION_CODES, ImageRejected

S3_MAX_KEY_BYTES = 1024
HASHED_KEY_DIR = "_hashed"
SEQUENCER_WIDTH = 64  # S3 sequencers are hex strings of varying length: left-pad before comparing


class TransientError(Exception):
    """A dependency hiccup (throttling, 5xx, a dropped connection): the state machine retries it."""


class InvalidEvent(Exception):
    """The input is not an S3 Object Created event for our bucket; retrying cannot help."""


class SourceMissing(ImageRejected):
    """The object was deleted before it could be read; nothing is left to thumbnail."""


class SourceChanged(ImageRejected):
    """The object was overwritten after this event; the newer upload's own event takes over."""


CAUGHT_REJECTIONS: tuple[str, ...] = (*REJECTION_CODES, SourceMissing.__name__, SourceChanged.__name__)

_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "LimitExceededException",
    }
)


@dataclass(frozen=True)
class SourceObject:
    """The uploaded object as the event describes it: what every stage and the record agree on."""

    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None
    sequencer: str
    event_time: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


OBJECT_CREATED = "Object Created"
OBJECT_DELETED = "Object Deleted"
STATUS_CHANGE = "Step Functions Execution Status Change"
# A run's outcomes: only a newer event replaces one. Executions that end badly are recorded FAILED.
FINISHED_STATUSES = ("SUCCEEDED", "REJECTED", "DELETED")
FAILED_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")


def parse_object_created(event: dict[str, Any], expected_bucket: str | None) -> SourceObject:
    """Read the EventBridge 'Object Created' event, refusing anything else with a clear reason."""
    return parse_s3_event(event, expected_bucket, (OBJECT_CREATED,))


def parse_s3_event(event: dict[str, Any], expected_bucket: str | None, detail_types: tuple[str, ...]) -> SourceObject:
    """Read an EventBridge S3 event of one of ``detail_types``, refusing anything else with a clear reason.

    EventBridge delivers the key as stored, not URL-encoded (unlike S3's direct Lambda
    notifications), so it is used verbatim: unquoting would corrupt keys holding '+' or '%'.
    A deletion carries no etag or size; those are then empty.
    """
    from aws_lambda_powertools.utilities.parser import ValidationError, parse
    from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel

    if not isinstance(event, dict):
        raise InvalidEvent(f"expected an EventBridge event object, got {type(event).__name__}")
    if event.get("source") != "aws.s3" or event.get("detail-type") not in detail_types:
        raise InvalidEvent(
            f"expected source aws.s3 and detail-type {' or '.join(repr(t) for t in detail_types)}, got "
            f"{event.get('source')!r} / {event.get('detail-type')!r}"
        )
    try:
        model = parse(event=event, model=S3EventNotificationEventBridgeModel)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        raise InvalidEvent(f"the S3 event is missing or has malformed field(s): {', '.join(fields)}") from None
    detail = model.detail
    if expected_bucket is not None and detail.bucket.name != expected_bucket:
        raise InvalidEvent(f"the event is for bucket {detail.bucket.name!r}; this pipeline reads {expected_bucket!r}")
    if not detail.object.sequencer:
        raise InvalidEvent("the S3 event has no sequencer, so it cannot be ordered against other events")
    return SourceObject(
        bucket=detail.bucket.name,
        key=detail.object.key,
        size=int(detail.object.size or 0),
        etag=detail.object.etag.strip('"'),
        version_id=detail.object.version_id,
        sequencer=detail.object.sequencer,
        event_time=model.time.isoformat(),
    )


def sequencer_order(sequencer: str) -> str:
    """A string that sorts like the event order: S3's rule is to left-pad with zeros, then compare."""
    return sequencer.upper().rjust(SEQUENCER_WIDTH, "0")


WORK_PREFIX = "_work/"  # work in progress in the thumbnails bucket, never a thumbnail key
# The decoded upload validate leaves for the Map: one pipeline run's worth, expired after a day.
INTERMEDIATE_PREFIX = f"{WORK_PREFIX}intermediate/"
# Thumbnails before Record publishes them. Kept past Step Functions' 14-day redrive window,
# because a redrive reruns only the failed Map iterations and publishes the others' from here.
STAGED_PREFIX = f"{WORK_PREFIX}staged/"
STAGED_DAYS = 15
# The Backfill's Map Run results (ResultWriter): what ran, what was skipped and why.
BACKFILL_RESULTS_PREFIX = f"{WORK_PREFIX}backfill/"
BACKFILL_RESULTS_DAYS = 30


def _version_identity(source: SourceObject) -> str:
    identity = f"{source.bucket}\n{source.key}\n{source.etag}\n{source.version_id or ''}"
    return hashlib.sha256(identity.encode()).hexdigest()


def intermediate_key(source: SourceObject) -> str:
    """Where validate leaves the decoded upload for the Map: one per object version, never a thumbnail key."""
    return f"{INTERMEDIATE_PREFIX}{_version_identity(source)}.tiff"


def staged_key(source: SourceObject, size: int, extension: str) -> str:
    """Where resize writes a thumbnail until the run succeeds: one per object version, event and size.

    The event's sequencer is part of it. A backfill run and an upload's run can make the same
    version's thumbnails at once (the upload came after the listing); each staged object
    carries its run's ``source-sequencer``, which Record copies onto the published thumbnail,
    so sharing one key let the last Resize's run stamp the other's thumbnails. A redrive or a
    duplicate delivery is the same event: it finds its own staged thumbnails again.
    """
    identity = hashlib.sha256(f"{_version_identity(source)}\n{source.sequencer}".encode()).hexdigest()
    return f"{STAGED_PREFIX}{identity}/{size}.{extension}"


def source_id(bucket: str, key: str) -> str:
    """The records table's partition key: one item per object, spread over partitions by key."""
    return f"s3://{bucket}/{key}"


def thumbnail_key(source_key: str, size: int, extension: str) -> str:
    """``{size}/{source key}.{ext}``; a key too long for S3 becomes ``{size}/_hashed/{sha256}.{ext}``.

    Keeping the source key readable lets people find a thumbnail by eye; the hashed form
    only exists because S3 keys stop at 1,024 bytes and a maximal source key plus the size
    prefix would not fit.
    """
    readable = f"{size}/{source_key}.{extension}"
    if len(readable.encode()) <= S3_MAX_KEY_BYTES:
        return readable
    digest = hashlib.sha256(source_key.encode()).hexdigest()
    return f"{size}/{HASHED_KEY_DIR}/{digest}.{extension}"


def is_transient(exc: BaseException) -> bool:
    """True for failures that a retry may cure: throttling, 5xx, timeouts, dropped connections."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in _TRANSIENT_CODES or status >= 500 or status == 429
    return isinstance(exc, (ConnectionError, HTTPClientError))


@contextmanager
def timed_stage(metrics: Any) -> Iterator[None]:
    """The stage's own work as EMF ``StageDuration`` (ms), failures included.

    Lambda's ``Duration`` also counts init and the runtime's overhead; this one is the part our
    code can make faster, per stage, so the two side by side show where time goes.
    """
    from aws_lambda_powertools.metrics import MetricUnit

    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = round((time.perf_counter() - start) * 1000, 1)
        metrics.add_metric(name="StageDuration", unit=MetricUnit.Milliseconds, value=elapsed)


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    """Turn a transient AWS failure into :class:`TransientError` so the state machine retries it."""
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            raise TransientError(f"{what}: {type(exc).__name__}: {exc}") from exc
        raise


_MISSING = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchVersion"})
_CHANGED = frozenset({"PreconditionFailed", "412"})
_CLIENTS: dict[str, Any] = {}


def aws_client(service: str) -> Any:
    """One boto3 client per service per process, made on first use (not at import) to keep cold starts short."""
    if service not in _CLIENTS:
        import boto3

        _CLIENTS[service] = boto3.client(service)
    return _CLIENTS[service]


def aws_table(name: str) -> Any:
    """A DynamoDB table handle, made on first use and kept, like :func:`aws_client`'s clients."""
    key = f"dynamodb-table:{name}"
    if key not in _CLIENTS:
        import boto3

        _CLIENTS[key] = boto3.resource("dynamodb").Table(name)
    return _CLIENTS[key]


def read_source(s3: Any, source: SourceObject, check_size: Callable[[int], None] | None = None) -> bytes:
    """Read exactly the object the event announced: by version when there is one, else by etag.

    ``check_size`` sees the object's byte count from the GET's headers, before a byte of its
    body is read: Validate refuses an oversize object there, and the body is closed unread.
    One GET instead of a HEAD and a GET: a request less per upload.
    """
    try:
        with aws_call("GetObject"):
            response = s3.get_object(**_object_ref(source))
    except Exception as exc:
        _raise_if_gone(exc, source)
        raise
    body = response["Body"]
    try:
        if response.get("ETag", "").strip('"') != source.etag:
            raise SourceChanged(f"the object was overwritten after this event (etag {source.etag} is gone)")
        if check_size is not None:
            check_size(int(response["ContentLength"]))
        with aws_call("GetObject"):
            return body.read()
    finally:
        body.close()


def _object_ref(source: SourceObject) -> dict[str, str]:
    ref = {"Bucket": source.bucket, "Key": source.key}
    if source.version_id:
        ref["VersionId"] = source.version_id
    else:
        ref["IfMatch"] = f'"{source.etag}"'
    return ref


def is_missing(exc: BaseException) -> bool:
    """True when S3 said the object (or version) is not there: 404 on HEAD, NoSuchKey on GET."""
    return error_code(exc) in _MISSING


def _raise_if_gone(exc: Exception, source: SourceObject) -> None:
    code = error_code(exc)
    if code in _MISSING:
        raise SourceMissing(f"s3://{source.bucket}/{source.key} no longer exists") from exc
    if code in _CHANGED:
        raise SourceChanged(f"the object was overwritten after this event (etag {source.etag} is gone)") from exc


def error_code(exc: BaseException) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


# A backfill item has no S3 event, so no sequencer. One that remakes a recorded upload reuses
# that record's sequencer; one for an object never recorded takes the lowest there is, so any
# real upload of the key, before or during the backfill, orders after it and wins.
BACKFILL_SEQUENCER = "0"
# The error of a Backfill batch in which an image failed (its tally is the cause); thumbs reads it.
BACKFILL_IMAGES_FAILED = "Backfill.ImagesFailed"


def backfill_event(
    *,
    bucket: str,
    key: str,
    etag: str,
    size: int,
    sequencer: str,
    event_time: str,
    account: str,
    region: str,
    backfill: str,
) -> dict[str, Any]:
    """The pipeline's input for one listed object: an "Object Created" event as EventBridge sends it.

    The pipeline then does for a backfilled object exactly what it does for an upload. The
    ``backfill`` key (the Backfill execution's ARN) marks the run; the record keeps it.
    """
    return {
        "version": "0",
        "id": hashlib.sha256(f"{bucket}\n{key}\n{etag}\n{backfill}".encode()).hexdigest()[:36],
        "detail-type": OBJECT_CREATED,
        "source": "aws.s3",
        "account": account,
        "time": event_time,
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": size, "etag": etag, "sequencer": sequencer},
            "request-id": "BACKFILL",
            "requester": account,
            "source-ip-address": "0.0.0.0",
            "reason": "Backfill",
        },
        "backfill": backfill,
    }
