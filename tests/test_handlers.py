"""The three handlers against moto's S3 and DynamoDB (the edge of the world), with real images."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from awsio import InvalidEvent, SourceChanged, SourceMissing, SourceObject, TransientError, staged_key, thumbnail_key
from botocore.exceptions import ClientError
from imaging import CorruptImage, ImagingSettings, TooLarge, UnsupportedFormat
from moto import mock_aws
from PIL import Image
from record.handler import build_record, publish_thumbnails, record, source_id
from resize.handler import resize
from validate.handler import validate

from tests.images import encode, jpeg_with_orientation, photo

SOURCE, THUMBS, TABLE = "uploads", "thumbs", "records"
SETTINGS = ImagingSettings(sizes=(64, 256))
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:Pipeline:abc"


@dataclass
class FakeContext:
    """The Lambda context object: supplied by the Lambda service, so it is the edge of the world here."""

    function_name: str = "test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id: str = "req-1"


@pytest.fixture
def aws(monkeypatch):
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=SOURCE)
        s3.create_bucket(Bucket=THUMBS)
        dynamodb = boto3.resource("dynamodb")
        table = dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "source_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "source_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for name, value in {
            "SOURCE_BUCKET": SOURCE,
            "THUMBNAIL_BUCKET": THUMBS,
            "TABLE_NAME": TABLE,
            "THUMBNAIL_SETTINGS": SETTINGS.to_json(),
        }.items():
            monkeypatch.setenv(name, value)
        yield s3, table


def upload(s3, key: str, data: bytes, sequencer: str = "0062E99A88DC407460") -> dict[str, Any]:
    """Put an object and return the EventBridge event S3 would send for it (key not URL-encoded)."""
    etag = s3.put_object(Bucket=SOURCE, Key=key, Body=data)["ETag"].strip('"')
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-29T10:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{SOURCE}"],
        "detail": {
            "version": "0",
            "bucket": {"name": SOURCE},
            "object": {"key": key, "size": len(data), "etag": etag, "sequencer": sequencer},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "source-ip-address": "1.2.3.4",
            "reason": "PutObject",
        },
    }


def count_calls(s3, operation: str) -> list[str]:
    calls: list[str] = []
    s3.meta.events.register(f"before-call.s3.{operation}", lambda **kwargs: calls.append(operation))
    return calls


# --- validate -------------------------------------------------------------------------------


def test_validate_returns_facts_and_the_thumbnails_to_make(aws):
    s3, _ = aws
    data = jpeg_with_orientation(photo(320, 200), 6)
    facts = validate(upload(s3, "photos/cat.jpg", data), s3, SETTINGS, SOURCE, THUMBS)
    assert facts["bucket"] == SOURCE and facts["key"] == "photos/cat.jpg"
    assert facts["size"] == len(data) and facts["etag"] and facts["sequencer"] == "0062E99A88DC407460"
    assert (facts["format"], facts["width"], facts["height"], facts["orientation"]) == ("JPEG", 200, 320, 6)
    assert facts["targets"] == [  # sizes as shown: EXIF 6 turns 200x320 on its side
        {"size": 64, "format": "jpeg", "key": "64/photos/cat.jpg.jpg", "width": 64, "height": 40},
        {"size": 256, "format": "jpeg", "key": "256/photos/cat.jpg.jpg", "width": 256, "height": 160},
    ]
    json.dumps(facts)  # Step Functions passes it on as JSON
    # the intermediate: decoded once, upright, at the largest size, in the thumbnails bucket only
    intermediate = Image.open(io.BytesIO(s3.get_object(Bucket=THUMBS, Key=facts["work_key"])["Body"].read()))
    assert facts["work_key"].startswith("_work/") and intermediate.format == "TIFF"
    assert intermediate.size == (256, 160) and not intermediate.info.get("exif")


def test_validate_refuses_oversize_objects_without_reading_them(aws):
    s3, _ = aws
    gets, reads = count_calls(s3, "GetObject"), []

    def watch_reads(parsed: dict[str, Any], **kwargs: Any) -> None:
        body, read = parsed["Body"], parsed["Body"].read
        body.read = lambda *args: reads.append(read(*args))

    s3.meta.events.register("after-call.s3.GetObject", watch_reads)
    event = upload(s3, "big.png", encode(photo(), "PNG"))
    with pytest.raises(TooLarge, match="limit is 1000"):
        validate(event, s3, ImagingSettings(max_bytes=1000), SOURCE, THUMBS)
    assert gets == ["GetObject"] and reads == []  # refused from the GET's headers: no byte of the body read


def test_validate_reads_the_upload_in_one_request(aws):
    """One GET, no HEAD first: the byte limit is checked on the GET's headers."""
    s3, _ = aws
    heads, gets = count_calls(s3, "HeadObject"), count_calls(s3, "GetObject")
    validate(upload(s3, "a.jpg", encode(photo(), "JPEG")), s3, SETTINGS, SOURCE, THUMBS)
    assert (heads, gets) == ([], ["GetObject"])


@pytest.mark.parametrize(
    "key",
    ["with space.jpg", "a+b.jpg", "100%.jpg", "ünïcødé/照片.jpg", "x" * 1000 + ".jpg", "../up/../escape.jpg"],
    ids=["space", "plus", "percent", "unicode", "1000-bytes", "dot-dot"],
)
def test_keys_are_used_verbatim(aws, key):
    s3, _ = aws
    facts = validate(upload(s3, key, encode(photo(), "JPEG")), s3, SETTINGS, SOURCE, THUMBS)
    assert facts["key"] == key
    for target in facts["targets"]:
        assert len(target["key"].encode()) <= 1024


def test_two_runs_of_one_version_stage_apart_and_a_rerun_finds_its_own():
    """A backfill's run and an upload's of the same bytes: each staged thumbnail keeps its own run's sequencer."""
    upload = SourceObject("b", "k.jpg", 10, "e" * 32, None, "00066187859AE7C200000001", "2026-12-01T00:00:00Z")
    backfill_run = SourceObject(**{**upload.to_dict(), "sequencer": "0"})
    assert staged_key(upload, 256, "jpg") != staged_key(backfill_run, 256, "jpg")
    assert staged_key(upload, 256, "jpg") == staged_key(SourceObject(**upload.to_dict()), 256, "jpg")  # a redrive
    assert staged_key(upload, 256, "jpg").endswith("/256.jpg") and staged_key(upload, 256, "jpg").startswith("_work/")


def test_a_maximal_key_gets_a_hashed_thumbnail_key():
    key = "k" * 1024
    assert thumbnail_key(key, 256, "jpg").startswith("256/_hashed/")
    assert thumbnail_key(key, 256, "jpg") != thumbnail_key("j" * 1024, 256, "jpg")


def test_validate_decides_from_bytes_and_rejects_non_images(aws):
    s3, _ = aws
    with pytest.raises(UnsupportedFormat):
        validate(upload(s3, "notes.jpg", b"just some text"), s3, SETTINGS, SOURCE, THUMBS)
    with pytest.raises(CorruptImage):
        validate(upload(s3, "cut.jpg", encode(photo(), "JPEG")[:500]), s3, SETTINGS, SOURCE, THUMBS)


def test_validate_refuses_events_for_another_bucket_or_with_missing_fields(aws):
    s3, _ = aws
    event = upload(s3, "a.jpg", encode(photo(), "JPEG"))
    with pytest.raises(InvalidEvent, match="bucket"):
        validate(event, s3, SETTINGS, "some-other-bucket", THUMBS)
    del event["detail"]["object"]["key"]
    with pytest.raises(InvalidEvent, match=r"object\.key"):
        validate(event, s3, SETTINGS, SOURCE, THUMBS)
    with pytest.raises(InvalidEvent, match="Object Created"):
        validate({**event, "detail-type": "Object Deleted"}, s3, SETTINGS, SOURCE, THUMBS)


def test_validate_notices_an_overwritten_or_deleted_object(aws):
    s3, _ = aws
    event = upload(s3, "a.jpg", encode(photo(), "JPEG"))
    s3.put_object(Bucket=SOURCE, Key="a.jpg", Body=encode(photo(100, 100), "PNG"))
    with pytest.raises(SourceChanged):
        validate(event, s3, SETTINGS, SOURCE, THUMBS)
    s3.delete_object(Bucket=SOURCE, Key="a.jpg")
    with pytest.raises(SourceMissing):
        validate(event, s3, SETTINGS, SOURCE, THUMBS)


def test_s3_throttling_is_a_retryable_error(aws):
    s3, _ = aws
    event = upload(s3, "a.jpg", encode(photo(), "JPEG"))

    def slow_down(**kwargs):
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "GetObject")

    s3.meta.events.register("before-call.s3.GetObject", slow_down)
    with pytest.raises(TransientError, match="SlowDown"):
        validate(event, s3, SETTINGS, SOURCE, THUMBS)


def dependency_fault(kind: str, service: str) -> Exception:
    """What S3 or DynamoDB answers when it throttles, fails inside, times out or drops the connection."""
    from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

    codes = {"s3": ("SlowDown", 503, "InternalError"), "dynamodb": ("ProvisionedThroughputExceededException", 400,
                                                                     "InternalServerError")}  # fmt: skip
    throttle, throttle_status, internal = codes[service]
    if kind == "throttle":
        return ClientError({"Error": {"Code": throttle}, "ResponseMetadata": {"HTTPStatusCode": throttle_status}}, "x")
    if kind == "5xx":
        return ClientError({"Error": {"Code": internal}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "x")
    if kind == "timeout":
        return ReadTimeoutError(endpoint_url=f"https://{service}.us-east-1.amazonaws.com")
    return EndpointConnectionError(endpoint_url=f"https://{service}.us-east-1.amazonaws.com")


@pytest.mark.parametrize("kind", ["throttle", "5xx", "timeout", "dropped"])
@pytest.mark.parametrize("service", ["s3", "dynamodb"])
def test_s3_and_dynamodb_faults_in_record_are_retryable_transient_errors(aws, service, kind):
    """Each becomes TransientError, which the task's retrier retries (the fault matrix in docs/faults.md)."""
    s3, table = aws
    event = upload(s3, "a.jpg", encode(photo(), "JPEG"))
    facts = validate(event, s3, SETTINGS, SOURCE, THUMBS)
    thumbs = [resize(resize_item(facts, i), s3, SETTINGS, THUMBS, "max-age=1") for i in range(2)]
    request = {"status": "SUCCEEDED", "event": event, "image": facts, "thumbnails": thumbs, "execution_arn": EXECUTION}
    client = s3 if service == "s3" else table.meta.client

    def fail(**kwargs):
        raise dependency_fault(kind, service)

    client.meta.events.register(f"before-call.{service}", fail)
    try:
        with pytest.raises(TransientError):
            record(request, table, SOURCE, s3, THUMBS)
    finally:
        client.meta.events.unregister(f"before-call.{service}", fail)
    assert record(request, table, SOURCE, s3, THUMBS)["written"]  # the retry, once the fault has passed


# --- resize ---------------------------------------------------------------------------------


def resize_item(facts: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """What the Map's ItemSelector hands one Resize iteration."""
    fields = ("bucket", "key", "size", "etag", "version_id", "sequencer", "event_time", "work_key")
    return {**{f: facts[f] for f in fields}, "target": facts["targets"][index]}


def test_resize_writes_the_thumbnail_with_headers_and_is_idempotent(aws):
    s3, _ = aws
    upright = photo(320, 200)
    facts = validate(upload(s3, "p/x.jpg", jpeg_with_orientation(upright, 8, gps=True)), s3, SETTINGS, SOURCE, THUMBS)
    item = resize_item(facts, 1)
    first = resize(item, s3, SETTINGS, THUMBS, "public, max-age=60")
    assert first["staged_key"].startswith("_work/staged/") and first["staged_key"].endswith("/256.jpg")
    assert "256/p/x.jpg.jpg" not in thumbnail_keys(s3)  # staged only: Record publishes the whole set
    stored = s3.get_object(Bucket=THUMBS, Key=first["staged_key"])
    assert first == {
        "size": 256,
        "key": "256/p/x.jpg.jpg",
        "staged_key": first["staged_key"],
        "width": 256,
        "height": 160,
        "format": "jpeg",
        "bytes": stored["ContentLength"],
    }
    assert stored["ContentType"] == "image/jpeg" and stored["CacheControl"] == "public, max-age=60"
    image = Image.open(io.BytesIO(stored["Body"].read()))
    assert image.size == (256, 160) and not image.getexif()
    second = resize(item, s3, SETTINGS, THUMBS, "public, max-age=60")
    assert second == first
    assert s3.head_object(Bucket=THUMBS, Key=first["staged_key"])["ETag"] == stored["ETag"]


def test_resize_cuts_from_the_intermediate_and_falls_back_to_the_original(aws):
    s3, _ = aws
    facts = validate(upload(s3, "fall.jpg", encode(photo(320, 200), "JPEG")), s3, SETTINGS, SOURCE, THUMBS)
    gets = count_calls(s3, "GetObject")
    from_intermediate = resize(resize_item(facts, 0), s3, SETTINGS, THUMBS, "max-age=1")
    assert len(gets) == 1  # the intermediate only: the original is not read again
    s3.delete_object(Bucket=THUMBS, Key=facts["work_key"])  # expired, say, before a late redrive
    from_original = resize(resize_item(facts, 0), s3, SETTINGS, THUMBS, "max-age=1")
    assert (from_original["width"], from_original["height"]) == (
        from_intermediate["width"],
        from_intermediate["height"],
    )


def test_resize_never_writes_to_the_upload_bucket(aws):
    s3, _ = aws
    facts = validate(upload(s3, "a.png", encode(photo(), "PNG")), s3, SETTINGS, SOURCE, THUMBS)
    resize(resize_item(facts), s3, SETTINGS, THUMBS, "max-age=1")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=SOURCE)["Contents"]] == ["a.png"]


# --- record ---------------------------------------------------------------------------------


def test_record_writes_a_succeeded_item(aws):
    s3, table = aws
    event = upload(s3, "a b+c.png", encode(photo(), "PNG"))
    facts = validate(event, s3, SETTINGS, SOURCE, THUMBS)
    thumbs = [resize(resize_item(facts, i), s3, SETTINGS, THUMBS, "max-age=1") for i in range(2)]
    request = {"status": "SUCCEEDED", "event": event, "image": facts, "thumbnails": thumbs, "execution_arn": EXECUTION}
    result = record(request, table, SOURCE, s3, THUMBS)
    assert result["written"] and result["thumbnails_published"] == 2
    assert thumbnail_keys(s3) == sorted(t["key"] for t in thumbs)
    published = s3.head_object(Bucket=THUMBS, Key=thumbs[0]["key"])
    assert published["ContentType"].startswith("image/") and published["CacheControl"] == "max-age=1"
    assert published["Metadata"]["source-etag"] == event["detail"]["object"]["etag"]
    item = table.get_item(Key={"source_id": source_id(SOURCE, "a b+c.png")})["Item"]
    assert item["status"] == "SUCCEEDED" and item["key"] == "a b+c.png" and item["bucket"] == SOURCE
    assert item["execution_arn"] == EXECUTION and item["format"] == "PNG" and item["width"] == 320
    assert [t["size"] for t in item["thumbnails"]] == [64, 256]
    assert set(item["thumbnails"][0]) == {"size", "key", "width", "height", "format", "bytes"}
    assert item["recorded_at"] and item["event_time"] and "error" not in item


def test_record_writes_a_rejected_item_with_the_reason(aws):
    s3, table = aws
    event = upload(s3, "bad.jpg", b"not an image")
    cause = json.dumps({"errorMessage": "not an image in an accepted format", "errorType": "UnsupportedFormat"})
    request = {"status": "REJECTED", "event": event, "execution_arn": EXECUTION}
    record({**request, "error": {"Error": "UnsupportedFormat", "Cause": cause}}, table, SOURCE)
    item = table.get_item(Key={"source_id": source_id(SOURCE, "bad.jpg")})["Item"]
    assert item["status"] == "REJECTED" and item["thumbnails"] == []
    assert item["error"] == {"code": "UnsupportedFormat", "message": "not an image in an accepted format"}


def status_change(event: dict[str, Any], status: str = "FAILED") -> dict[str, Any]:
    """The EventBridge event Step Functions emits when an execution ends badly."""
    return {
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "detail": {
            "executionArn": EXECUTION,
            "status": status,
            "input": json.dumps(event),
            "error": "TransientError",
            "cause": json.dumps({"errorMessage": "HeadObject: SlowDown", "errorType": "TransientError"}),
        },
    }


def test_a_failed_execution_is_recorded_from_its_status_change_event(aws):
    s3, table = aws
    event = upload(s3, "a.jpg", encode(photo(), "JPEG"))
    record(status_change(event), table, SOURCE)
    item = table.get_item(Key={"source_id": source_id(SOURCE, "a.jpg")})["Item"]
    assert item["status"] == "FAILED" and item["execution_arn"] == EXECUTION
    assert item["error"] == {"code": "TransientError", "message": "HeadObject: SlowDown"}


def test_an_express_run_records_its_own_failure_and_a_finished_replay_overwrites_it(aws):
    s3, table = aws
    event = upload(s3, "a.jpg", encode(photo(), "JPEG"))
    caught = {"Error": "States.Timeout", "Cause": "Task timed out"}
    assert record({"status": "FAILED", "event": event, "error": caught, "execution_arn": EXECUTION}, table, SOURCE)[
        "written"
    ]
    item = table.get_item(Key={"source_id": source_id(SOURCE, "a.jpg")})["Item"]
    assert item["status"] == "FAILED" and item["execution_status"] == "FAILED"
    assert item["error"] == {"code": "States.Timeout", "message": "Task timed out"}
    replay = {**event, "replay_of": EXECUTION}  # what `thumbs replay` starts when redrive is not possible
    done = {"status": "SUCCEEDED", "event": replay, "thumbnails": [], "execution_arn": EXECUTION + "-replay"}
    assert record(done, table, SOURCE)["written"]
    item = table.get_item(Key={"source_id": source_id(SOURCE, "a.jpg")})["Item"]
    assert item["status"] == "SUCCEEDED" and item["replay_of"] == EXECUTION


def test_a_failed_replay_keeps_the_link_to_the_run_it_replays(aws):
    s3, table = aws
    event = upload(s3, "a.jpg", encode(photo(), "JPEG"))
    record(status_change({**event, "replay_of": "arn:old"}), table, SOURCE)
    item = table.get_item(Key={"source_id": source_id(SOURCE, "a.jpg")})["Item"]
    assert item["status"] == "FAILED" and item["replay_of"] == "arn:old"


def test_an_older_event_never_overwrites_a_newer_record(aws):
    s3, table = aws
    old = upload(s3, "a.jpg", encode(photo(), "JPEG"), sequencer="0062E99A88DC407460")
    new = upload(s3, "a.jpg", encode(photo(100, 50), "JPEG"), sequencer="0062E99A88DC4074A0")
    reject = {"Error": "CorruptImage", "Cause": "{}"}
    assert record({"status": "SUCCEEDED", "event": new, "image": {}, "thumbnails": []}, table, SOURCE)["written"]
    assert not record({"status": "REJECTED", "event": old, "error": reject}, table, SOURCE)["written"]
    assert not record(status_change(old), table, SOURCE)["written"]
    item = table.get_item(Key={"source_id": source_id(SOURCE, "a.jpg")})["Item"]
    assert item["status"] == "SUCCEEDED" and item["sequencer"] == "0062E99A88DC4074A0"


def test_sequencers_of_different_lengths_compare_by_value(aws):
    s3, table = aws
    short = upload(s3, "a.jpg", b"x", sequencer="FF")
    longer = upload(s3, "a.jpg", b"x", sequencer="0100")  # 0x100 > 0xFF despite sorting lower as text
    record({"status": "SUCCEEDED", "event": short, "thumbnails": []}, table, SOURCE)
    assert record({"status": "SUCCEEDED", "event": longer, "thumbnails": []}, table, SOURCE)["written"]


def test_same_event_duplicates_keep_one_item_and_failure_never_hides_success(aws):
    s3, table = aws
    event = upload(s3, "a.jpg", encode(photo(), "JPEG"))
    record(status_change(event), table, SOURCE)  # first run failed ...
    done = {"status": "SUCCEEDED", "event": event, "thumbnails": [], "execution_arn": EXECUTION}
    assert record(done, table, SOURCE)["written"]  # ... its redrive finished: the record says so
    assert record(done, table, SOURCE)["written"]  # a duplicate delivery rewrites the same outcome
    assert not record(status_change(event), table, SOURCE)["written"]  # a late failure changes nothing
    items = table.scan()["Items"]
    assert len(items) == 1 and items[0]["status"] == "SUCCEEDED"


def test_record_refuses_requests_it_cannot_place():
    with pytest.raises(InvalidEvent):
        build_record({"status": "MAYBE"}, SOURCE, datetime.now(UTC))
    with pytest.raises(InvalidEvent):
        build_record(
            {"detail-type": "Step Functions Execution Status Change", "detail": {"status": "RUNNING"}},
            SOURCE,
            datetime.now(UTC),
        )


# --- the Lambda entry points, as Lambda calls them -------------------------------------------


@pytest.fixture
def stdout_lines(capsys):
    """What the handlers print: their JSON log lines (as Powertools formats them) and EMF metrics."""
    import logging

    import validate.handler

    logs = io.StringIO()
    tap = logging.StreamHandler(logs)
    tap.setFormatter(validate.handler.logger.registered_formatter)
    service = logging.getLogger(validate.handler.logger.service)
    service.addHandler(tap)
    yield lambda: [
        json.loads(line) for line in (logs.getvalue() + capsys.readouterr().out).splitlines() if line.startswith("{")
    ]
    service.removeHandler(tap)


def test_lambda_handlers_end_to_end(aws, stdout_lines):
    import record.handler
    import resize.handler
    import validate.handler

    s3, table = aws
    for module in (validate.handler, resize.handler):
        module.SETTINGS = SETTINGS
    event = upload(s3, "e2e.gif", encode(photo(), "GIF"))
    facts = validate.handler.lambda_handler({"event": event, "execution_arn": EXECUTION}, FakeContext())
    thumbs = [resize.handler.lambda_handler(resize_item(facts, i), FakeContext()) for i in range(2)]
    request = {"status": "SUCCEEDED", "event": event, "image": facts, "thumbnails": thumbs, "execution_arn": EXECUTION}
    assert record.handler.lambda_handler(request, FakeContext())["written"]
    assert table.get_item(Key={"source_id": source_id(SOURCE, "e2e.gif")})["Item"]["status"] == "SUCCEEDED"
    logs = stdout_lines()
    validated = next(line for line in logs if line.get("message") == "validated")
    assert validated["object_key"] == "e2e.gif" and validated["execution_arn"] == EXECUTION
    assert any("_aws" in line and "BytesOut" in line for line in logs)  # EMF metrics were emitted


def test_a_rejection_is_logged_with_key_and_reason(aws, stdout_lines):
    import validate.handler

    s3, _ = aws
    event = upload(s3, "bad.png", b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(CorruptImage):
        validate.handler.lambda_handler({"event": event, "execution_arn": EXECUTION}, FakeContext())
    logs = stdout_lines()
    rejected = next(line for line in logs if line.get("message") == "rejected")
    assert rejected["object_key"] == "bad.png" and rejected["reason"] == "CorruptImage"
    emf = next(line for line in logs if "ImagesRejected" in line)
    assert emf["reason"] == "CorruptImage" and emf["StageDuration"]  # failures are timed too


def test_metrics_count_outcomes_rejections_by_reason_and_time_each_stage(aws, stdout_lines):
    import record.handler

    s3, _ = aws
    event = upload(s3, "bad.jpg", b"not an image")
    cause = json.dumps({"errorMessage": "not an image", "errorType": "UnsupportedFormat"})
    request = {"status": "REJECTED", "event": event, "execution_arn": EXECUTION}
    record.handler.lambda_handler({**request, "error": {"Error": "UnsupportedFormat", "Cause": cause}}, FakeContext())
    blobs = [line for line in stdout_lines() if "_aws" in line]
    (outcome,) = [b for b in blobs if "Records" in b]
    assert outcome["status"] == "REJECTED" and outcome["service"]
    assert outcome["StageDuration"][0] > 0
    (by_reason,) = [b for b in blobs if "Rejections" in b]
    assert by_reason["reason"] == "UnsupportedFormat" and by_reason["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["reason", "service"]
    ]


def deleted(event: dict[str, Any], sequencer: str) -> dict[str, Any]:
    """The 'Object Deleted' event S3 sends for the object of ``event``: no etag, no size."""
    detail = {**event["detail"], "object": {"key": event["detail"]["object"]["key"], "sequencer": sequencer}}
    detail.update({"reason": "DeleteObject", "deletion-type": "Permanently Deleted"})
    return {**event, "detail-type": "Object Deleted", "detail": detail}


def processed(s3, table, key: str, sequencer: str) -> tuple[dict[str, Any], list[str]]:
    """Upload ``key`` and run it through validate, resize and record; (the event, thumbnail keys)."""
    event = upload(s3, key, encode(photo(), "JPEG"), sequencer=sequencer)
    facts = validate(event, s3, SETTINGS, SOURCE, THUMBS)
    thumbs = [resize(resize_item(facts, i), s3, SETTINGS, THUMBS, "max-age=1") for i in range(2)]
    record({"status": "SUCCEEDED", "event": event, "image": facts, "thumbnails": thumbs}, table, SOURCE, s3, THUMBS)
    return event, [t["key"] for t in thumbs]


def thumbnail_keys(s3) -> list[str]:
    listed = s3.list_objects_v2(Bucket=THUMBS).get("Contents", [])
    return sorted(o["Key"] for o in listed if not o["Key"].startswith("_work/"))


def test_a_deletion_marks_the_record_deleted_and_removes_its_thumbnails(aws):
    s3, table = aws
    event, keys = processed(s3, table, "gone.jpg", "0062E99A88DC407460")
    assert thumbnail_keys(s3) == sorted(keys)
    # the OnDelete rule gives Record the S3 event itself: no execution, so no execution_arn
    result = record(deleted(event, "0062E99A88DC4074B0"), table, SOURCE, s3, THUMBS)
    assert result["written"] and result["thumbnails_removed"] == 2
    item = table.get_item(Key={"source_id": source_id(SOURCE, "gone.jpg")})["Item"]
    assert item["status"] == "DELETED" and item["thumbnails"] == [] and item["sequencer"] == "0062E99A88DC4074B0"
    assert item.get("execution_arn") is None
    assert thumbnail_keys(s3) == []


def test_an_older_run_finishing_late_never_publishes_over_a_newer_upload(aws):
    s3, table = aws
    old = upload(s3, "race.jpg", encode(photo(320, 200), "JPEG"), sequencer="0062E99A88DC407460")
    old_facts = validate(old, s3, SETTINGS, SOURCE, THUMBS)
    old_thumbs = [resize(resize_item(old_facts, i), s3, SETTINGS, THUMBS, "max-age=1") for i in range(2)]
    _, keys = processed(s3, table, "race.jpg", "0062E99A88DC4074C0")  # overtakes the old run
    newest = {k: s3.head_object(Bucket=THUMBS, Key=k)["ETag"] for k in keys}
    late = record({"status": "SUCCEEDED", "event": old, "thumbnails": old_thumbs}, table, SOURCE, s3, THUMBS)
    assert not late["written"] and late["thumbnails_published"] == 0
    assert {k: s3.head_object(Bucket=THUMBS, Key=k)["ETag"] for k in keys} == newest


def test_a_first_upload_publishes_each_size_in_one_request_and_a_rerun_looks_first(aws):
    s3, table = aws
    heads, copies = count_calls(s3, "HeadObject"), count_calls(s3, "CopyObject")
    event, keys = processed(s3, table, "fresh.jpg", "0062E99A88DC407460")
    assert (len(heads), len(copies)) == (0, 2)  # no record lists the keys: If-None-Match copies, no HEAD
    assert thumbnail_keys(s3) == sorted(keys)
    facts = validate(event, s3, SETTINGS, SOURCE, THUMBS)  # the same upload again (a replay)
    thumbs = [resize(resize_item(facts, i), s3, SETTINGS, THUMBS, "max-age=1") for i in range(2)]
    heads.clear()
    copies.clear()
    again = record({"status": "SUCCEEDED", "event": event, "image": facts, "thumbnails": thumbs}, table, SOURCE, s3,
                   THUMBS)  # fmt: skip
    assert again["written"] and again["thumbnails_published"] == 2
    assert (len(heads), len(copies)) == (2, 2)  # listed keys: looked at, then copied If-Match


def test_a_late_deletion_never_touches_a_newer_upload(aws):
    s3, table = aws
    old, _ = processed(s3, table, "again.jpg", "0062E99A88DC407460")
    _, keys = processed(s3, table, "again.jpg", "0062E99A88DC4074C0")  # re-uploaded after the deletion
    late = record(deleted(old, "0062E99A88DC407480"), table, SOURCE, s3, THUMBS)
    assert not late["written"]
    assert table.get_item(Key={"source_id": source_id(SOURCE, "again.jpg")})["Item"]["status"] == "SUCCEEDED"
    assert thumbnail_keys(s3) == sorted(keys)


def test_a_deletion_keeps_thumbnails_a_newer_upload_already_wrote(aws):
    s3, table = aws
    event, keys = processed(s3, table, "race.jpg", "0062E99A88DC407460")
    newer = upload(s3, "race.jpg", encode(photo(64, 64), "PNG"), sequencer="0062E99A88DC4074F0")
    facts = validate(newer, s3, ImagingSettings(sizes=(64, 256), output_format="jpeg"), SOURCE, THUMBS)
    staged = resize(resize_item(facts, 0), s3, SETTINGS, THUMBS, "max-age=1")
    # its Record is midway: thumbnails published, the record not yet written
    assert publish_thumbnails(s3, THUMBS, [staged], newer["detail"]["object"]["sequencer"]) == 1
    result = record({"status": "DELETED", "event": deleted(event, "0062E99A88DC4074A0")}, table, SOURCE, s3, THUMBS)
    assert result["written"] and result["thumbnails_removed"] == 1  # the 256 px of the old upload
    assert thumbnail_keys(s3) == [keys[0]]  # the 64 px the newer upload rewrote survives


def test_logs_carry_keys_and_reasons_never_image_bytes(aws, stdout_lines):
    import base64

    import validate.handler

    s3, _ = aws
    validate.handler.SETTINGS = SETTINGS
    good = jpeg_with_orientation(photo(), 6, gps=True)
    bad = b"\x89PNG\r\n\x1a\n" + good[:3000]
    validate.handler.lambda_handler({"event": upload(s3, "good.jpg", good), "execution_arn": EXECUTION}, FakeContext())
    with pytest.raises(CorruptImage):
        validate.handler.lambda_handler(
            {"event": upload(s3, "bad.png", bad), "execution_arn": EXECUTION}, FakeContext()
        )
    lines = stdout_lines()
    text = json.dumps(lines)
    for data in (good, bad):
        for encoded in (base64.b64encode(data[100:148]).decode(), data[100:148].hex()):
            assert encoded not in text
    assert max(len(json.dumps(line)) for line in lines) < 2000
    rejected = [line for line in lines if line.get("message") == "rejected"]
    assert [(r["object_key"], r["reason"]) for r in rejected] == [("bad.png", "CorruptImage")]


# --- the backfill: fingerprints, removed sizes, ordering against uploads, the plan ----------------


def test_the_fingerprint_follows_what_thumbnails_depend_on():
    base = ImagingSettings()
    assert base.fingerprint() == ImagingSettings(sizes=(1024, 256, 128)).fingerprint()  # sizes are a set
    for changed in ({"sizes": (128, 512)}, {"output_format": "avif"}, {"jpeg_quality": 90}, {"background": "#000000"}):
        assert ImagingSettings(**changed).fingerprint() != base.fingerprint(), changed
    # the limits decide rejections, not thumbnails: only a rejection's fingerprint follows them
    raised = ImagingSettings(max_pixels=base.max_pixels // 2)
    assert raised.fingerprint() == base.fingerprint()
    assert raised.fingerprint(limits=True) != base.fingerprint(limits=True)


def test_a_new_run_removes_the_sizes_the_previous_record_listed_and_no_longer_makes(aws):
    s3, table = aws
    event, _keys = processed(s3, table, "resized.jpg", "0062E99A88DC407460")  # 64 and 256 px
    narrower = ImagingSettings(sizes=(64, 128))
    facts = validate(event, s3, narrower, SOURCE, THUMBS)
    thumbs = [resize(resize_item(facts, i), s3, narrower, THUMBS, "max-age=1") for i in range(2)]
    result = record(
        {"status": "SUCCEEDED", "event": event, "image": facts, "thumbnails": thumbs}, table, SOURCE, s3, THUMBS
    )
    assert result["written"] and result["thumbnails_removed"] == 1  # the 256 px
    assert thumbnail_keys(s3) == sorted(t["key"] for t in thumbs)
    item = table.get_item(Key={"source_id": source_id(SOURCE, "resized.jpg")})["Item"]
    assert [int(t["size"]) for t in item["thumbnails"]] == [64, 128] and item["fingerprint"] == narrower.fingerprint()


def test_a_backfill_run_never_replaces_a_newer_upload_s_record_or_thumbnails(aws):
    from awsio import BACKFILL_SEQUENCER

    s3, table = aws
    old = upload(s3, "both.jpg", encode(photo(320, 200), "JPEG"))
    listed = {
        **old,
        "detail": {**old["detail"], "object": {**old["detail"]["object"], "sequencer": BACKFILL_SEQUENCER}},
    }
    facts = validate(listed, s3, SETTINGS, SOURCE, THUMBS)  # the backfill read the object as listed
    thumbs = [resize(resize_item(facts, i), s3, SETTINGS, THUMBS, "max-age=1") for i in range(2)]
    _, keys = processed(s3, table, "both.jpg", "0062E99A88DC407460")  # meanwhile, an upload's run finished
    newest = {k: s3.head_object(Bucket=THUMBS, Key=k)["ETag"] for k in keys}
    late = record(
        {"status": "SUCCEEDED", "event": listed, "image": facts, "thumbnails": thumbs}, table, SOURCE, s3, THUMBS
    )
    assert not late["written"] and late["thumbnails_published"] == 0
    assert {k: s3.head_object(Bucket=THUMBS, Key=k)["ETag"] for k in keys} == newest
    item = table.get_item(Key={"source_id": source_id(SOURCE, "both.jpg")})["Item"]
    assert item["sequencer"] == "0062E99A88DC407460"


def test_at_an_equal_sequencer_only_the_same_etag_replaces_a_record(aws):
    s3, table = aws
    first = upload(s3, "same.jpg", encode(photo(320, 200), "JPEG"))
    record({"status": "REJECTED", "event": first, "error": {"Error": "X"}}, table, SOURCE)
    other = upload(s3, "same.jpg", encode(photo(64, 64), "JPEG"))  # same sequencer, another version
    assert not record({"status": "REJECTED", "event": other, "error": {"Error": "Y"}}, table, SOURCE)["written"]
    assert record({"status": "REJECTED", "event": first, "error": {"Error": "Z"}}, table, SOURCE)["written"]


def listed(key: str, etag: str) -> dict[str, Any]:
    """An object as the Backfill's ItemReader hands it over (AWS keeps the etag's quotes)."""
    return {"Etag": f'"{etag}"', "Key": key, "LastModified": 1796031638.0, "Size": 10, "StorageClass": "STANDARD"}


def plan_batch(table, items: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    from plan.handler import plan

    return plan(
        {"Items": items, "BatchInput": {"force": options.pop("force", False), "backfill": "arn:backfill"}},
        dynamodb=boto3.client("dynamodb"),
        table=TABLE,
        bucket=SOURCE,
        settings=options.pop("settings", SETTINGS),
        key_prefix=options.pop("key_prefix", ""),
        key_suffixes=options.pop("key_suffixes", ()),
        account="123456789012",
        region="us-east-1",
    )


def test_plan_runs_what_is_stale_and_says_why_it_leaves_the_rest(aws):
    s3, table = aws
    done, _ = processed(s3, table, "done.jpg", "0062E99A88DC407460")
    moved, _ = processed(s3, table, "moved.jpg", "0062E99A88DC407470")
    failed = upload(s3, "failed.jpg", encode(photo(), "JPEG"), sequencer="0062E99A88DC407480")
    table.put_item(Item={**build_record(status_change(failed), SOURCE, datetime.now(UTC))})
    etag = lambda event: event["detail"]["object"]["etag"]  # noqa: E731
    items = [
        listed("done.jpg", etag(done)),
        listed("moved.jpg", "another-version"),  # overwritten after its record: that upload's event decides
        listed("failed.jpg", etag(failed)),
        listed("new.jpg", "abc"),  # never recorded
    ]
    result = plan_batch(table, items)
    stale = {e["detail"]["object"]["key"]: e for e in result["stale"]}
    assert set(stale) == {"failed.jpg", "new.jpg"} and result["up_to_date"] == 1 and result["not_matched"] == 0
    assert [h["key"] for h in result["held"]] == ["moved.jpg"] and etag(moved) in result["held"][0]["reason"]
    # an event as the pipeline takes it: the record's own sequencer, or the lowest when there is none
    assert stale["failed.jpg"]["detail"]["object"]["sequencer"] == "0062E99A88DC407480"
    assert stale["new.jpg"]["detail"]["object"] == {"key": "new.jpg", "size": 10, "etag": "abc", "sequencer": "0"}
    assert stale["new.jpg"]["backfill"] == "arn:backfill" and stale["new.jpg"]["time"] == "2026-11-30T09:40:38Z"
    from awsio import parse_object_created

    assert parse_object_created(stale["new.jpg"], SOURCE).key == "new.jpg"  # validate accepts it

    other = ImagingSettings(sizes=(64, 512))
    assert [e["detail"]["object"]["key"] for e in plan_batch(table, items[:1], settings=other)["stale"]] == ["done.jpg"]
    assert len(plan_batch(table, items[:1], force=True)["stale"]) == 1  # --all
    filtered = plan_batch(table, items, key_prefix="n", key_suffixes=(".jpg",))
    assert filtered["not_matched"] == 3 and [e["detail"]["object"]["key"] for e in filtered["stale"]] == ["new.jpg"]


def test_plan_reads_a_large_batch_in_pages_of_100(aws):
    _s3, table = aws
    result = plan_batch(table, [listed(f"k{i}.jpg", "e") for i in range(250)])
    assert len(result["stale"]) == 250
