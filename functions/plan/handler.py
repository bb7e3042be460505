"""Plan: one batch of the Backfill's Distributed Map. Which listed objects need the pipeline?

The Map reads the uploads bucket with ListObjectsV2 and hands this function a batch of the
listing (``ItemBatcher``). It reads the batch's records in one BatchGetItem per 100 keys and
sorts each object into one of four kinds:

* **stale**: no record, a FAILED one, or a finished one made under other imaging settings
  (its fingerprint differs) or, with ``force``, any record of this version. The batch
  starts a pipeline execution for each, with the event an upload would have sent;
* **up to date**: SUCCEEDED or REJECTED for this etag under the current fingerprint;
* **held**: the record is for another version of the object. Either the newer upload's own
  event is still on its way (it will make the thumbnails), or the object changed after the
  listing. A backfill item never outranks a real upload, so it leaves these alone and says so;
* **not matched**: the upload rule's key filter (``key_prefix``, ``key_suffixes``) would not
  send an upload of this key to the pipeline, so neither does the backfill.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from awsio import BACKFILL_SEQUENCER, aws_call, aws_client, backfill_event, source_id
from awsio.tracing import traced
from imaging import ImagingSettings

logger = Logger()
metrics = Metrics()

BATCH_GET_LIMIT = 100  # DynamoDB's BatchGetItem takes at most 100 keys per call
_RETRY_ROUNDS = 8


def matches_rule(key: str, prefix: str, suffixes: tuple[str, ...]) -> bool:
    """What the upload rule's EventBridge key filter lets through (see ``pipeline.stack.key_filter``)."""
    return key.startswith(prefix) and (not suffixes or any(key.endswith(s) for s in suffixes))


def listed_time(value: Any) -> str:
    """An ISO-8601 UTC time from a listed LastModified: epoch seconds or ms, ISO-8601 or an HTTP date."""
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 1e11 else value
        moment = datetime.fromtimestamp(seconds, UTC)
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = parsedate_to_datetime(value)
    else:
        moment = datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_records(dynamodb: Any, table: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The records of ``ids`` (only the fields the plan needs), by source_id; unprocessed keys are retried."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), BATCH_GET_LIMIT):
        request: dict[str, Any] = {
            table: {
                "Keys": [{"source_id": {"S": i}} for i in ids[start : start + BATCH_GET_LIMIT]],
                "ProjectionExpression": "source_id, #status, etag, #sequencer, fingerprint",
                "ExpressionAttributeNames": {"#status": "status", "#sequencer": "sequencer"},
                "ConsistentRead": True,
            }
        }
        for _ in range(_RETRY_ROUNDS):
            with aws_call("BatchGetItem"):
                response = dynamodb.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table, []):
                plain = {name: next(iter(value.values())) for name, value in item.items()}
                found[plain["source_id"]] = plain
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            from awsio import TransientError

            raise TransientError(f"BatchGetItem left keys unprocessed after {_RETRY_ROUNDS} rounds")
    return found


def plan(
    batch: dict[str, Any],
    *,
    dynamodb: Any,
    table: str,
    bucket: str,
    settings: ImagingSettings,
    key_prefix: str,
    key_suffixes: tuple[str, ...],
    account: str,
    region: str,
) -> dict[str, Any]:
    """The batch's pipeline inputs (``stale``) and the count or list of what it leaves alone."""
    options = batch.get("BatchInput") or {}
    force = bool(options.get("force"))
    backfill = str(options.get("backfill") or "")
    items = [i for i in batch.get("Items") or [] if isinstance(i, dict) and i.get("Key")]
    matched = [i for i in items if matches_rule(str(i["Key"]), key_prefix, key_suffixes)]
    records = read_records(dynamodb, table, [source_id(bucket, str(i["Key"])) for i in matched])
    current = {"SUCCEEDED": settings.fingerprint(), "REJECTED": settings.fingerprint(limits=True)}
    stale: list[dict[str, Any]] = []
    held: list[dict[str, str]] = []
    up_to_date = 0
    for item in matched:
        key = str(item["Key"])
        etag = str(item.get("Etag") or item.get("ETag") or "").strip('"')
        record = records.get(source_id(bucket, key))
        if record is not None and record.get("etag") != etag:
            held.append(
                {
                    "key": key,
                    "reason": f"the record is for another version (etag {record.get('etag') or 'none'}, "
                    f"{record.get('status')}); that upload's own event decides",
                }
            )
            continue
        status = str(record.get("status")) if record else ""
        if not force and status in current and record and record.get("fingerprint") == current[status]:
            up_to_date += 1  # FAILED, DELETED or no record: never up to date
            continue
        stale.append(
            backfill_event(
                bucket=bucket,
                key=key,
                etag=etag,
                size=int(item.get("Size") or 0),
                sequencer=str(record["sequencer"]) if record else BACKFILL_SEQUENCER,
                event_time=listed_time(item.get("LastModified")),
                account=account,
                region=region,
                backfill=backfill,
            )
        )
    return {"stale": stale, "up_to_date": up_to_date, "held": held, "not_matched": len(items) - len(matched)}


SETTINGS = ImagingSettings.from_env()


@logger.inject_lambda_context(clear_state=True)
@traced
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(backfill=(event.get("BatchInput") or {}).get("backfill"))
    result = plan(
        event,
        dynamodb=aws_client("dynamodb"),
        table=os.environ["TABLE_NAME"],
        bucket=os.environ["SOURCE_BUCKET"],
        settings=SETTINGS,
        key_prefix=os.environ.get("KEY_PREFIX", ""),
        key_suffixes=tuple(json.loads(os.environ.get("KEY_SUFFIXES") or "[]")),
        account=context.invoked_function_arn.split(":")[4],
        region=os.environ.get("AWS_REGION", "us-east-1"),
    )
    metrics.add_metric(name="BackfillStale", unit=MetricUnit.Count, value=len(result["stale"]))
    metrics.add_metric(name="BackfillUpToDate", unit=MetricUnit.Count, value=result["up_to_date"])
    logger.info(
        "planned",
        extra={"stale": len(result["stale"]), "up_to_date": result["up_to_date"], "held": len(result["held"])},
    )
    return result
