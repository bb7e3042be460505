"""The Backfill on the local stack: existing objects get records, a sizes change is remade, uploads win.

Each test runs its own local stack (one at a time: moto's backends belong to the process).
The objects are put while the bucket's EventBridge notifications are off, as in a bucket that
held images before the pipeline was deployed: they have no records until a backfill runs.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

from awsio import source_id
from PIL import Image

from thumbs import backfill
from thumbs.local.session import Session
from thumbs.local.state import StateFolder

# 1,000 in CI (the figure); a tenth on a laptop, to keep make test near five minutes.
OBJECTS = 1000 if os.environ.get("CI") == "true" or os.environ.get("THUMBS_LOAD") else 100


def jpeg(width: int, height: int, colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def put_without_events(session: Session, objects: dict[str, bytes]) -> None:
    """Objects that were in the bucket before the pipeline: no event, so no record."""
    s3 = session.stack.client("s3")
    bucket = session.stack.upload_bucket
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        for key, body in objects.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body)
    finally:
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )


def record_of(session: Session, key: str) -> dict[str, Any] | None:
    return session.record(source_id(session.stack.upload_bucket, key))


def thumbnail_keys(session: Session) -> set[str]:
    s3 = session.stack.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=session.stack.thumbnail_bucket)
    return {o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].startswith("_work/")}


def run_backfill(session: Session, **options: Any) -> backfill.Summary:
    summary = backfill.run(session.stack.deployed(), show_progress=False, **options)
    session.stack.runtime.wait_for_async()
    return summary


def test_existing_objects_get_records_and_rejections_are_recorded(tmp_path: Path) -> None:
    objects = {f"photos/{i:05d}.jpg": jpeg(64 + i % 7, 48) for i in range(OBJECTS)}
    broken = {"photos/truncated.jpg": jpeg(640, 480)[:300], "photos/notes.jpg": b"a text file named .jpg"}
    with Session(StateFolder(tmp_path / "state")) as session:
        put_without_events(session, {**objects, **broken})
        assert record_of(session, "photos/00000.jpg") is None  # nothing ran: no event was sent
        started = time.monotonic()
        summary = run_backfill(session)
        seconds = time.monotonic() - started
        records = {key: record_of(session, key) for key in [*objects, *broken]}
        thumbnails = thumbnail_keys(session)
    print(f"backfill of {OBJECTS + 2} existing objects: {seconds:.1f} s ({(OBJECTS + 2) / seconds:.1f} objects/s)")
    assert summary.status == "SUCCEEDED" and summary.ok, (summary.error, summary.failed[:3])
    assert summary.processed == OBJECTS + 2 and summary.up_to_date == 0 and not summary.failed
    assert summary.item_counts.get("total") == OBJECTS + 2  # the progress bar's own source agrees
    for key in objects:
        record = records[key]
        assert record is not None and record["status"] == "SUCCEEDED", (key, record)
        assert sorted(t["size"] for t in record["thumbnails"]) == [128, 256, 1024]
        assert record["backfill"] == summary.execution_arn and record["fingerprint"]
        assert {t["key"] for t in record["thumbnails"]} <= thumbnails
    assert records["photos/truncated.jpg"]["status"] == "REJECTED"
    assert records["photos/truncated.jpg"]["error"]["code"] == "CorruptImage"
    assert records["photos/notes.jpg"]["status"] == "REJECTED"
    assert records["photos/notes.jpg"]["error"]["code"] == "UnsupportedFormat"
    assert len(thumbnails) == 3 * OBJECTS


def _template_with(**imaging: Any) -> dict[str, Any]:
    """The stack as ``cdk deploy`` would build it after a change in cdk.json's imaging settings."""
    from aws_cdk.assertions import Template

    from pipeline.app import build_app, project_context

    context = project_context()["thumbnails"]
    changed = {**context, "imaging": {**context["imaging"], **imaging}}
    _, stack = build_app(outdir=None, context={"aws:cdk:bundling-stacks": [], "thumbnails": changed})
    return Template.from_stack(stack).to_json()


def test_a_sizes_change_remakes_every_record_and_removes_the_old_sizes(tmp_path: Path) -> None:
    state = StateFolder(tmp_path / "state")
    keys = [f"album/{i}.jpg" for i in range(6)]
    with Session(state) as session:
        put_without_events(session, {key: jpeg(800, 600) for key in keys})
        first = run_backfill(session)
        assert first.processed == len(keys) and first.ok
        before = {key: record_of(session, key) for key in keys}
    assert all(sorted(t["size"] for t in r["thumbnails"]) == [128, 256, 1024] for r in before.values())

    with Session(state, template=_template_with(sizes=[128, 512])) as session:  # the deploy after the change
        remade = run_backfill(session)
        after = {key: record_of(session, key) for key in keys}
        thumbnails = thumbnail_keys(session)
        again = run_backfill(session)
    assert remade.processed == len(keys) and remade.up_to_date == 0 and remade.ok
    for key, record in after.items():
        assert sorted(t["size"] for t in record["thumbnails"]) == [128, 512], record
        assert record["fingerprint"] != before[key]["fingerprint"]
        assert {(t["width"], t["height"]) for t in record["thumbnails"]} == {(128, 96), (512, 384)}
    assert thumbnails == {f"{size}/{key}.jpg" for key in keys for size in (128, 512)}  # 256 and 1024 are gone
    assert again.processed == 0 and again.up_to_date == len(keys) and again.ok


def test_an_upload_during_a_backfill_keeps_its_own_thumbnails_and_record(tmp_path: Path) -> None:
    keys = [f"race/{i:03d}.jpg" for i in range(40)]
    contested = keys[-1]
    with Session(StateFolder(tmp_path / "state")) as session:
        put_without_events(session, {key: jpeg(400, 300) for key in keys})
        deployed = session.stack.deployed()
        sfn = deployed.client("stepfunctions")
        arn = backfill.start(deployed, sfn)
        # The listing is taken; now a user uploads a new version of one of the listed keys.
        newer = jpeg(300, 400, (20, 200, 20))
        session.upload(contested, newer)
        described, map_run = backfill.follow(sfn, arn)
        summary = backfill.summarize(deployed, described, map_run)
        session.stack.wait_for_executions(len(keys) + 2)  # the backfill's, the upload's and the Backfill itself
        session.stack.runtime.wait_for_async()
        record = record_of(session, contested)
        s3 = session.stack.client("s3")
        heads = {
            t["key"]: s3.head_object(Bucket=session.stack.thumbnail_bucket, Key=t["key"]) for t in record["thumbnails"]
        }
    assert summary.status == "SUCCEEDED", summary.error
    assert record["status"] == "SUCCEEDED" and "backfill" not in record  # the upload's run wrote it
    assert (
        record["sequencer"] != "0"
        and record["etag"] == heads[record["thumbnails"][0]["key"]]["Metadata"]["source-etag"]
    )
    assert {(t["width"], t["height"]) for t in record["thumbnails"]} == {(96, 128), (192, 256), (300, 400)}
    for head in heads.values():  # every published thumbnail is the newer upload's
        assert head["Metadata"]["source-sequencer"] == record["sequencer"]


def test_all_remakes_up_to_date_images_and_the_default_does_not(tmp_path: Path) -> None:
    with Session(StateFolder(tmp_path / "state")) as session:
        put_without_events(session, {"a.jpg": jpeg(200, 100), "b.jpg": jpeg(100, 200)})
        assert run_backfill(session).processed == 2
        again = run_backfill(session)
        forced = run_backfill(session, force=True)
    assert (again.processed, again.up_to_date) == (0, 2)
    assert (forced.processed, forced.up_to_date) == (2, 0)


def test_a_failing_backfill_names_each_failure_with_its_reason_and_exits_1(tmp_path: Path, capsys) -> None:
    from thumbs.cli import main

    state = tmp_path / "state"
    with Session(StateFolder(state)) as session:
        put_without_events(session, {"fails.jpg": jpeg(120, 90)})
    # validate fails past its four retries: the pipeline run ends FAILED, and so does the Map Run (100% > 5%)
    code = main(["--state", str(state), "backfill", "--fault", "validate=transient:10"])
    printed = capsys.readouterr().out
    assert code == 1, printed
    assert "0 processed, 0 up to date, 0 held, 0 not matched, 1 failed" in printed
    assert "failed: fails.jpg: TransientError" in printed  # the reason from the FAILED record
    assert "States.ExceedToleratedFailureThreshold" in printed
    code = main(["--state", str(state), "backfill"])  # the fault is gone: the FAILED record is stale
    assert code == 0 and "1 processed" in capsys.readouterr().out

    # replay is for the pipeline's runs; a Backfill is run again with thumbs backfill
    backfills = [e["name"] for e in StateFolder(state).execution_index() if e["name"].startswith("backfill-")]
    assert main(["--state", str(state), "replay", backfills[0]]) == 2
    assert "not a pipeline run" in capsys.readouterr().err
    assert main(["--state", str(state), "replay", "--failed"]) == 0  # the pipeline's failed run, not the Backfill
    assert "backfill-" not in capsys.readouterr().out
