"""Record: one DynamoDB item per source object, the outcome users and operators query.

Two callers, one item shape:

* the state machine, for SUCCEEDED and REJECTED outcomes (the last state of every run);
* an EventBridge rule on the execution's "Status Change" to FAILED, TIMED_OUT or ABORTED.
  Recording failures from that event, rather than from a Catch, is what lets Step Functions
  RedriveExecution resume a failed run at the step that failed: a Catch into a Fail state
  would make redrive restart at that Fail state and do nothing. Express workflows emit no
  status-change events and cannot be redriven, so there (only) a catch-all sends FAILED here.

A replay that had to start a new execution (``thumbs replay``) puts ``replay_of`` (the old
execution's ARN) in the new execution's input; the record keeps it, linking the two runs.

S3 delivers events at least once and out of order, so the write is conditional on the
event's S3 sequencer: an older event can never overwrite a newer record, and at the same
sequencer a FAILED run never overwrites a finished outcome.

A finished run's thumbnails are staged under ``_work/staged/``; Record publishes them (copies
them to their keys) before it writes SUCCEEDED, and never over a thumbnail a newer upload
wrote. A run that fails therefore leaves no thumbnail in place, and its redrive, which reruns
only the failed Map iterations, still finds the others staged.

A SUCCEEDED run also removes the thumbnails the previous record listed that this run did not
make (a size taken out of ``cdk.json``, a format that changed), so after a backfill the bucket
holds exactly what the record lists. A record keeps the fingerprint of the imaging settings it
was made with; the backfill's Plan compares it with the current one.

A backfill run (its input names the Backfill execution) carries the sequencer of the record
it remakes, or the lowest one when there is none, and a record is replaced at an equal
sequencer only for the same etag: so a backfill never overwrites a newer upload's record or
thumbnails, and an upload during a backfill wins.

A deletion (S3 "Object Deleted", delivered here by its own EventBridge rule, with no
execution: the record's ``execution_arn`` is empty) marks the record DELETED
and removes the thumbnails the record listed, but only if it is the newest event for the
key, and only thumbnails written for an older upload: a re-upload that overtook a late
delete event keeps its thumbnails.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from awsio import (
    FAILED_STATUSES,
    FINISHED_STATUSES,
    OBJECT_CREATED,
    OBJECT_DELETED,
    STATUS_CHANGE,
    InvalidEvent,
    SourceObject,
    TransientError,
    aws_call,
    aws_client,
    aws_table,
    error_code,
    is_missing,
    parse_s3_event,
    sequencer_order,
    source_id,
    timed_stage,
)
from awsio.tracing import traced
from imaging import ImagingSettings

logger = Logger()
metrics = Metrics()

_IMAGE_FIELDS = ("format", "width", "height", "mode", "frames", "orientation", "has_alpha", "output_format")


def build_record(
    request: dict[str, Any], source_bucket: str | None, now: datetime, settings: ImagingSettings | None = None
) -> dict[str, Any]:
    """The item for a state-machine request, an execution status-change event or a deletion event.

    ``settings`` are this deployment's imaging settings: a rejection is stamped with their
    fingerprint (limits included); a success keeps the one validate reported, the settings
    its thumbnails were actually made with.
    """
    settings = settings or ImagingSettings()
    if request.get("detail-type") == OBJECT_DELETED:  # the OnDelete rule delivers the S3 event itself
        request = {"status": "DELETED", "event": request}
    if request.get("detail-type") == STATUS_CHANGE:
        return _failed_record(request["detail"], source_bucket, now)
    status = request.get("status")
    if status not in (*FINISHED_STATUSES, "FAILED"):
        raise InvalidEvent(
            f"record expects status SUCCEEDED, REJECTED, DELETED or FAILED from the state machine, got {status!r}"
        )
    kinds = (OBJECT_DELETED,) if status == "DELETED" else (OBJECT_CREATED,)
    if status == "FAILED":  # an Express workflow's catch-all: the run may have been either kind
        kinds = (OBJECT_CREATED, OBJECT_DELETED)
    event = request.get("event", {})
    source = parse_s3_event(event, source_bucket, kinds)
    item = _base_item(source, status, request.get("execution_arn"), now, event)
    image = request.get("image") or {}
    item.update({name: image[name] for name in _IMAGE_FIELDS if name in image})
    if "size" in image:
        item["size"] = image["size"]
    if status == "SUCCEEDED":
        item["fingerprint"] = image.get("fingerprint") or settings.fingerprint()
        item["thumbnails"] = sorted(
            ({k: v for k, v in t.items() if k != "staged_key"} for t in request.get("thumbnails") or []),
            key=lambda t: t["size"],
        )
    elif status == "DELETED":
        item["thumbnails"] = []
    else:
        item["thumbnails"] = []
        item["error"] = state_error(request.get("error") or {})
        if status == "REJECTED":
            item["fingerprint"] = settings.fingerprint(limits=True)
    if status == "FAILED":
        item["execution_status"] = "FAILED"
    return item


def _failed_record(detail: dict[str, Any], source_bucket: str | None, now: datetime) -> dict[str, Any]:
    status = detail.get("status")
    if status not in FAILED_STATUSES:
        raise InvalidEvent(f"status change {status!r} is not a failure; only {FAILED_STATUSES} are recorded here")
    execution_input = json.loads(detail.get("input") or "{}")
    source = parse_s3_event(execution_input, source_bucket, (OBJECT_CREATED, OBJECT_DELETED))
    item = _base_item(source, "FAILED", detail.get("executionArn"), now, execution_input)
    item["thumbnails"] = []
    item["error"] = {
        "code": detail.get("error") or status,
        "message": _cause_message(detail.get("cause")) or f"the execution ended {status}",
    }
    item["execution_status"] = status
    return item


def _base_item(
    source: SourceObject, status: str, execution_arn: str | None, now: datetime, execution_input: dict[str, Any]
) -> dict[str, Any]:
    item = {
        "source_id": source_id(source.bucket, source.key),
        "status": status,
        **source.to_dict(),
        "sequencer_order": sequencer_order(source.sequencer),
        "execution_arn": execution_arn,
        "recorded_at": now.isoformat(timespec="milliseconds"),
    }
    if isinstance(replay_of := execution_input.get("replay_of"), str):
        item["replay_of"] = replay_of
    if isinstance(backfill := execution_input.get("backfill"), str):
        item["backfill"] = backfill
    return item


def state_error(error: dict[str, Any]) -> dict[str, str]:
    """Step Functions' caught ``{Error, Cause}`` as ``{code, message}``; Cause is Lambda's JSON."""
    return {"code": str(error.get("Error", "Unknown")), "message": _cause_message(error.get("Cause")) or ""}


def _cause_message(cause: str | None) -> str:
    if not cause:
        return ""
    try:
        parsed = json.loads(cause)
    except ValueError:
        return cause
    return str(parsed.get("errorMessage", cause)) if isinstance(parsed, dict) else cause


def write_record(table: Any, item: dict[str, Any]) -> dict[str, Any] | None:
    """Put ``item`` unless a newer event (or a finished run of the same event) is recorded already.

    Returns the item it replaced ({} if none), or None when the write was refused as stale.
    At an equal sequencer (a retry, a replay, a backfill of the same upload) the etag must
    match too: a backfill carries the sequencer of the record it remakes, and must not replace
    a record that a newer upload wrote meanwhile.
    """
    condition = "attribute_not_exists(source_id) OR sequencer_order < :seq"
    values: dict[str, Any] = {":seq": item["sequencer_order"], ":etag": item["etag"]}
    if item["status"] in FINISHED_STATUSES:
        condition += " OR (sequencer_order = :seq AND etag = :etag)"
    else:  # a failure never hides the outcome of a run that finished the same upload
        condition += " OR (sequencer_order = :seq AND etag = :etag AND #status = :failed)"
        values[":failed"] = "FAILED"
    try:
        with aws_call("PutItem"):
            response = table.put_item(
                Item=_without_none(item),
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                # Only a deletion needs the replaced item (its thumbnail keys); skip the bytes otherwise.
                ReturnValues="ALL_OLD" if item["status"] == "DELETED" else "NONE",
                **({"ExpressionAttributeNames": {"#status": "status"}} if ":failed" in values else {}),
            )
    except Exception as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return None
        raise
    return response.get("Attributes") or {}


PUBLISH_ATTEMPTS = 5  # a thumbnail that changes under every look is a contention to retry, not to win


def _current(s3: Any, bucket: str, key: str) -> tuple[str, str] | None:
    """(ETag, the sequencer of the upload it was made from) of the thumbnail at ``key``, or None."""
    try:
        with aws_call("HeadObject"):
            head = s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if is_missing(exc):
            return None
        raise
    return head["ETag"], head.get("Metadata", {}).get("source-sequencer", "")


def publish_thumbnails(
    s3: Any, bucket: str, thumbnails: list[dict[str, Any]], sequencer: str, unlisted: Collection[str] = ()
) -> int:
    """Copy each staged thumbnail to its key, unless a newer upload's thumbnail is there already.

    The copy is conditional on the thumbnail it looked at (``If-Match`` its ETag, or
    ``If-None-Match: *`` when there was none): two runs publishing the same key at once (an
    upload during a backfill) cannot both pass the look and then overwrite each other out of
    order. A copy refused because the key changed looks again. Copies keep the staged
    object's headers and metadata (content type, cache control, source etag and sequencer).
    A retry or duplicate copies the same bytes again: idempotent.

    A key in ``unlisted`` (no record names it) is most likely absent: its first copy is made
    with ``If-None-Match: *`` without a look, which is what the look would have led to, and
    only a refusal sends a HEAD. A new upload's sizes publish in one request each, not two.
    """
    published = 0
    for thumbnail in thumbnails:
        for attempt in range(PUBLISH_ATTEMPTS):
            unlooked = attempt == 0 and thumbnail["key"] in unlisted
            current = None if unlooked else _current(s3, bucket, thumbnail["key"])
            if current and current[1] and sequencer_order(current[1]) > sequencer_order(sequencer):
                break  # a newer upload's thumbnail: an older run never overwrites it
            condition = {"IfMatch": current[0]} if current else {"IfNoneMatch": "*"}
            try:
                with aws_call("CopyObject"):
                    s3.copy_object(
                        Bucket=bucket,
                        Key=thumbnail["key"],
                        CopySource={"Bucket": bucket, "Key": thumbnail["staged_key"]},
                        MetadataDirective="COPY",
                        **condition,
                    )
            except Exception as exc:
                # written or removed since the look (NoSuchKey: If-Match on a key now gone)
                if error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict") or (
                    current and error_code(exc) == "NoSuchKey"
                ):
                    continue
                raise
            published += 1
            break
        else:
            raise TransientError(f"{thumbnail['key']} changed under each of {PUBLISH_ATTEMPTS} publish attempts")
    return published


def previous_thumbnails(table: Any, source: str) -> tuple[str, list[dict[str, Any]]]:
    """The sequencer order and the thumbnails of the record there now ("" and [] when none)."""
    with aws_call("GetItem"):
        item = table.get_item(
            Key={"source_id": source},
            ConsistentRead=True,
            ProjectionExpression="sequencer_order, thumbnails",
        ).get("Item")
    if not item:
        return "", []
    return str(item.get("sequencer_order", "")), list(item.get("thumbnails") or [])


def delete_thumbnails(s3: Any, bucket: str, replaced: dict[str, Any], deleted_sequencer: str) -> int:
    """Remove the thumbnails the replaced record listed that belong to an upload older than the deletion."""
    removed = 0
    for thumbnail in replaced.get("thumbnails") or []:
        current = _current(s3, bucket, thumbnail["key"])
        if current is None:
            continue
        written_for = current[1]
        if written_for and sequencer_order(written_for) > sequencer_order(deleted_sequencer):
            continue  # a newer upload wrote this thumbnail after the deletion
        with aws_call("DeleteObject"):
            s3.delete_object(Bucket=bucket, Key=thumbnail["key"])
        removed += 1
    return removed


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def record(
    request: dict[str, Any],
    table: Any,
    source_bucket: str | None,
    s3: Any = None,
    thumbnail_bucket: str | None = None,
    settings: ImagingSettings | None = None,
) -> dict[str, Any]:
    item = build_record(request, source_bucket, datetime.now(UTC), settings)
    published = removed = None
    if item["status"] == "SUCCEEDED" and request.get("thumbnails"):
        if s3 is None or thumbnail_bucket is None:
            raise InvalidEvent("a SUCCEEDED record needs the thumbnails bucket to publish the thumbnails to")
        # Read before anything changes, so a retry after a partial run still knows the old set.
        previous_order, previous = previous_thumbnails(table, item["source_id"])
        # Before the record: a SUCCEEDED record never names a thumbnail that is not in place.
        listed = {t.get("key") for t in previous}
        unlisted = {t["key"] for t in request["thumbnails"]} - listed
        published = publish_thumbnails(s3, thumbnail_bucket, request["thumbnails"], item["sequencer"], unlisted)
        if previous and previous_order <= item["sequencer_order"]:
            kept = {t["key"] for t in item["thumbnails"]}
            dropped = {"thumbnails": [t for t in previous if t.get("key") not in kept]}
            removed = delete_thumbnails(s3, thumbnail_bucket, dropped, item["sequencer"])
    replaced = write_record(table, item)
    result = {"source_id": item["source_id"], "status": item["status"], "written": replaced is not None}
    if item["status"] == "REJECTED":
        result["reason"] = item["error"]["code"]
    if published is not None:
        result["thumbnails_published"] = published
    if removed:
        result["thumbnails_removed"] = removed
    if item["status"] == "DELETED" and replaced:
        if s3 is None or thumbnail_bucket is None:
            raise InvalidEvent("a DELETED record needs the thumbnails bucket to remove the thumbnails from")
        result["thumbnails_removed"] = delete_thumbnails(s3, thumbnail_bucket, replaced, item["sequencer"])
    return result


SETTINGS = ImagingSettings.from_env()


@logger.inject_lambda_context(clear_state=True)
@traced
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    arn = event.get("execution_arn") or (event.get("detail") or {}).get("executionArn")
    logger.append_keys(execution_arn=arn)
    with timed_stage(metrics):
        result = record(
            event,
            aws_table(os.environ["TABLE_NAME"]),
            os.environ.get("SOURCE_BUCKET"),
            aws_client("s3"),
            os.environ.get("THUMBNAIL_BUCKET"),
            SETTINGS,
        )
    logger.append_keys(object_key=result["source_id"])
    if result["written"]:
        metrics.add_dimension(name="status", value=result["status"])
        metrics.add_metric(name="Records", unit=MetricUnit.Count, value=1)
        if reason := result.get("reason"):  # its own metric: a reason dimension would split "Records"
            with single_metric(name="Rejections", unit=MetricUnit.Count, value=1) as metric:
                metric.add_dimension(name="reason", value=reason)
        logger.info("recorded", extra={"status": result["status"]})
    else:
        metrics.add_metric(name="StaleEventsIgnored", unit=MetricUnit.Count, value=1)
        logger.info("a newer record exists; this outcome is not written", extra={"status": result["status"]})
    return result
