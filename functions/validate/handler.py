"""Validate: the first state. Turns an S3 upload event into image facts and the thumbnails to make.

It refuses what can never become a thumbnail (rejections the state machine records as
REJECTED) before any thumbnail is written: the byte limit from the GET's headers, before
its body is read; the header limits from the probe; and a decode of the smallest size, which
is the only way to find truncated or corrupt pixel data.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from awsio import (
    aws_call,
    aws_client,
    intermediate_key,
    parse_object_created,
    read_source,
    thumbnail_key,
    timed_stage,
)
from awsio.tracing import traced
from imaging import (
    ImageRejected,
    ImagingSettings,
    check_byte_size,
    choose_format,
    fit_within,
    intermediate_bytes,
    prepare,
    probe,
    upright_size,
)
from imaging.thumbnail import EXTENSIONS

logger = Logger()
metrics = Metrics()


def validate(
    event: dict[str, Any], s3: Any, settings: ImagingSettings, source_bucket: str | None, thumbnail_bucket: str
) -> dict[str, Any]:
    """Facts about the upload and the list of thumbnails to make, or an ImageRejected subclass.

    The one full decode of the upload happens here, at the largest size: it proves the pixels
    decode before any thumbnail is written, and it is stored as the intermediate that every
    Map iteration resizes from, instead of each decoding the original again.
    """
    source = parse_object_created(event, source_bucket)
    logger.append_keys(object_key=source.key, bucket=source.bucket)
    data = read_source(s3, source, lambda size: check_byte_size(size, settings))  # oversize: refused unread
    size = len(data)
    facts = probe(data, settings)
    output_format = choose_format(facts, settings)
    base = prepare(data, max(settings.sizes), settings)
    work_key = intermediate_key(source)
    with aws_call("PutObject"):
        s3.put_object(Bucket=thumbnail_bucket, Key=work_key, Body=intermediate_bytes(base), ContentType="image/tiff")
    metrics.add_metric(name="BytesIn", unit=MetricUnit.Bytes, value=size)
    upright = upright_size(facts.width, facts.height, facts.orientation)
    targets = []
    for s in sorted(settings.sizes):
        width, height = fit_within(*upright, s)
        key = thumbnail_key(source.key, s, EXTENSIONS[output_format])
        targets.append({"size": s, "format": output_format, "key": key, "width": width, "height": height})
    return {
        **source.to_dict(),
        "size": size,
        **facts.to_dict(),
        "output_format": output_format,
        "fingerprint": settings.fingerprint(),
        "work_key": work_key,
        "targets": targets,
    }


SETTINGS = ImagingSettings.from_env()


@logger.inject_lambda_context(clear_state=True)
@traced
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(execution_arn=event.get("execution_arn"))
    try:
        with timed_stage(metrics):
            result = validate(
                event.get("event", {}),
                aws_client("s3"),
                SETTINGS,
                os.environ.get("SOURCE_BUCKET"),
                os.environ["THUMBNAIL_BUCKET"],
            )
    except ImageRejected as exc:
        metrics.add_dimension(name="reason", value=exc.code)
        metrics.add_metric(name="ImagesRejected", unit=MetricUnit.Count, value=1)
        logger.warning("rejected", extra={"reason": exc.code, "detail": exc.message})
        raise
    metrics.add_metric(name="ImagesAccepted", unit=MetricUnit.Count, value=1)
    logger.info("validated", extra={"format": result["format"], "width": result["width"], "height": result["height"]})
    return result
