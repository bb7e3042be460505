"""Resize: one Map iteration, one thumbnail size.

Cuts its size from the intermediate validate left (the upload decoded once, at the largest
size), or, if that is gone, from exactly the object validate saw (by version or etag); makes
it in the format validate chose and **stages** it under ``_work/staged/``. Record publishes the
whole set to the announced keys only when every size succeeded, so a run that fails halfway
leaves no thumbnail behind. The output bytes are deterministic, so a retried or replayed
iteration rewrites the same object: idempotent.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from awsio import SourceObject, aws_call, aws_client, is_missing, read_source, staged_key, timed_stage
from awsio.tracing import traced
from imaging import ImagingSettings, make_thumbnail, read_intermediate, thumbnail_from

logger = Logger()
metrics = Metrics()

DEFAULT_CACHE_CONTROL = "public, max-age=86400"


def resize(
    item: dict[str, Any], s3: Any, settings: ImagingSettings, thumbnail_bucket: str, cache_control: str
) -> dict[str, Any]:
    """Make and store one thumbnail; returns what the record lists for it."""
    source = SourceObject(**{f: item[f] for f in SourceObject.__dataclass_fields__})
    target = item["target"]
    base = _intermediate(s3, thumbnail_bucket, item.get("work_key"))
    if base is not None:
        thumb = thumbnail_from(base, int(target["width"]), int(target["height"]), settings, target["format"])
    else:  # expired or never written (a redrive days later): decode the original again
        thumb = make_thumbnail(read_source(s3, source), int(target["size"]), settings, target["format"])
    staged = staged_key(source, int(target["size"]), thumb.extension)
    with aws_call("PutObject"):
        s3.put_object(
            Bucket=thumbnail_bucket,
            Key=staged,
            Body=thumb.data,
            ContentType=thumb.content_type,
            CacheControl=cache_control,
            Metadata={"source-etag": source.etag, "source-sequencer": source.sequencer},
        )
    metrics.add_metric(name="BytesOut", unit=MetricUnit.Bytes, value=len(thumb.data))
    return {
        "size": int(target["size"]),
        "key": target["key"],
        "staged_key": staged,
        "width": thumb.width,
        "height": thumb.height,
        "format": thumb.format,
        "bytes": len(thumb.data),
    }


def _intermediate(s3: Any, bucket: str, key: str | None) -> Any:
    if not key:
        return None
    try:
        with aws_call("GetObject"):
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        if is_missing(exc):
            return None
        raise
    return read_intermediate(data)


SETTINGS = ImagingSettings.from_env()


@logger.inject_lambda_context(clear_state=True)
@traced
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(object_key=event.get("key"), execution_arn=event.get("execution_arn"))
    with timed_stage(metrics):
        result = resize(
            event,
            aws_client("s3"),
            SETTINGS,
            os.environ["THUMBNAIL_BUCKET"],
            os.environ.get("CACHE_CONTROL", DEFAULT_CACHE_CONTROL),
        )
    metrics.add_metric(name="ThumbnailsWritten", unit=MetricUnit.Count, value=1)
    logger.info("thumbnail written", extra={"size": result["size"], "bytes": result["bytes"]})
    return result
