"""End to end through the local stack: the same path as ``thumbs run`` (S3 -> EventBridge -> Step Functions)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from PIL import Image

from tests.images import encode, photo
from thumbs.cli import main
from thumbs.local.session import Session
from thumbs.local.state import StateFolder

ROOT = Path(__file__).resolve().parent.parent
SIZES = (128, 256, 1024)


def thumbs(state: Path, *args: str) -> int:
    return main(["--state", str(state), *args])


def records(out: Path) -> dict[str, dict]:
    return {r["key"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """``thumbs run`` with no path: the generated samples."""
    base = tmp_path_factory.mktemp("samples")
    code = thumbs(base / "state", "run", "--out", str(base / "out"))
    return code, base / "state", base / "out"


def test_samples_run_gives_thumbnails_and_records(sample_run):
    code, _, out = sample_run
    assert code == 0
    found = records(out)
    assert {k: r["status"] for k, r in found.items()} == {
        "large-photo.jpg": "SUCCEEDED",
        "rotated-exif.jpg": "SUCCEEDED",
        "transparent-logo.png": "SUCCEEDED",
        "animated.gif": "SUCCEEDED",
        "broken.jpg": "REJECTED",
        "notes-not-an-image.jpg": "REJECTED",
    }
    assert found["broken.jpg"]["error"]["code"] == "CorruptImage"
    assert found["notes-not-an-image.jpg"]["error"]["code"] == "UnsupportedFormat"
    for record in found.values():
        assert set(record) >= {"status", "bucket", "key", "etag", "sequencer", "thumbnails", "execution_arn"}
        for thumb in record["thumbnails"]:
            written = (out / thumb["key"]).stat()
            # copied from the store's blob: every byte Resize wrote, in a file of its own (never a link to the blob)
            assert written.st_size == thumb["bytes"] and written.st_nlink == 1
            image = Image.open(out / thumb["key"])
            assert image.size == (thumb["width"], thumb["height"]) and max(image.size) <= thumb["size"]
    upright = Image.open(out / "256/rotated-exif.jpg.jpg")
    assert upright.size == (256, 192)  # stored sideways with EXIF 6; the thumbnail stands upright
    assert Image.open(out / "256/transparent-logo.png.webp").mode == "RGBA"


def test_executions_and_history_work_from_a_later_process(sample_run):
    _, state, _ = sample_run
    env = {**os.environ, "COLUMNS": "200"}
    listed = subprocess.run(
        [sys.executable, "-m", "thumbs", "--state", str(state), "executions"],
        capture_output=True, text=True, cwd=ROOT, env=env, check=True,
    ).stdout  # fmt: skip
    names = [e["name"] for e in StateFolder(state).executions()]
    assert len(names) == 6 and all(name[:8] in listed for name in names)
    assert "SUCCEEDED" in listed and "large-photo.jpg" in listed
    history = subprocess.run(
        [sys.executable, "-m", "thumbs", "--state", str(state), "history", names[0]],
        capture_output=True, text=True, cwd=ROOT, env=env, check=True,
    ).stdout  # fmt: skip
    for expected in ("ExecutionStarted", "TaskStateEntered", "Validate", "ms"):
        assert expected in history


def run_one(tmp_path, *faults: str, name: str = "photo.jpg") -> tuple[int, dict, StateFolder]:
    files = tmp_path / "in"
    write(files, name, encode(photo(400, 300), "JPEG"))
    args = ["run", str(files), "--out", str(tmp_path / "out")]
    for fault in faults:
        args += ["--fault", fault]
    code = thumbs(tmp_path / "state", *args)
    return code, records(tmp_path / "out")[name], StateFolder(tmp_path / "state")


def failed_attempts(execution: dict, error: str) -> int:
    """How many Lambda attempts of this execution failed with ``error`` (each retry is one more)."""
    failures = [e for e in execution["events"] if e["type"] == "LambdaFunctionFailed"]
    return sum(1 for e in failures if e.get("lambdaFunctionFailedEventDetails", {}).get("error") == error)


def test_transient_faults_within_the_retry_budget_succeed_with_retries_in_history(tmp_path):
    code, record, state = run_one(tmp_path, "resize=transient:2", "record=throttle:1")
    assert code == 0 and record["status"] == "SUCCEEDED" and len(record["thumbnails"]) == 3
    (execution,) = state.executions()
    assert failed_attempts(execution, "TransientError") == 2
    assert failed_attempts(execution, "Lambda.TooManyRequestsException") == 1


def test_faults_past_the_budget_fail_are_recorded_and_replay_finishes_the_job(tmp_path):
    code, record, state = run_one(tmp_path, "validate=transient:5")
    summary = [(e["name"], e["status"], e.get("error")) for e in state.executions()]
    assert code == 1, (record, summary)
    assert record["status"] == "FAILED" and record["error"]["code"] == "TransientError", (record, summary)
    assert record["thumbnails"] == []
    (failed,) = state.executions("FAILED")
    assert failed_attempts(failed, "TransientError") == 5, [e["type"] for e in failed["events"]]

    replay_code = thumbs(tmp_path / "state", "replay", "--failed")
    summary = [(e["name"], e["status"], e.get("error"), e.get("redriveCount")) for e in state.executions()]
    assert replay_code == 0, summary
    replayed = StateFolder(tmp_path / "state").records()[record["source_id"]]
    assert replayed["status"] == "SUCCEEDED" and len(replayed["thumbnails"]) == 3
    (redriven,) = state.executions()  # redriven, as on AWS: the same execution, now SUCCEEDED
    assert redriven["executionArn"] == failed["executionArn"] and redriven["status"] == "SUCCEEDED"
    assert redriven["redriveCount"] == 1 and replayed["execution_arn"] == failed["executionArn"]


@pytest.mark.parametrize(("kind", "error"), [("timeout", "Sandbox.Timedout"), ("oom", "Runtime.OutOfMemory")])
def test_timeout_and_memory_overrun_surface_as_lambdas_errors(tmp_path, kind, error):
    code, record, state = run_one(tmp_path, f"validate={kind}:2")
    assert code == 1 and record["status"] == "FAILED" and record["error"]["code"] == error
    (execution,) = state.executions("FAILED")
    assert execution["error"] == error and failed_attempts(execution, error) == 2  # retried once, as configured


def test_a_failure_notice_record_cannot_take_goes_to_its_dead_letter_queue(tmp_path):
    """Record's asynchronous events (from the failed-execution rule): after Lambda's two retries,
    the event goes to the function's DLQ with the error, as on AWS, not nowhere."""
    state = StateFolder(tmp_path / "state")
    with Session(state) as session:
        runtime = session.stack.runtime
        record = next(name for name, spec in runtime.functions.items() if spec.dead_letter_arn)
        assert runtime.functions[record].handler.startswith("record.")  # the only one invoked asynchronously
        before = runtime.invocations[record]
        notice = json.dumps({"status": "MAYBE"}).encode()  # Record refuses it: InvalidEvent, every attempt
        runtime.invoke_async(record, notice)
        runtime.wait_for_async(timeout=60)
        sqs = session.client("sqs")
        url = sqs.get_queue_url(QueueName=runtime.functions[record].dead_letter_arn.rsplit(":", 1)[-1])["QueueUrl"]
        (message,) = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
    assert runtime.invocations[record] - before == 3  # the attempt and Lambda's two retries
    assert message["Body"] == notice.decode()
    assert message["MessageAttributes"]["ErrorMessage"]["StringValue"] == "InvalidEvent"


def test_the_same_event_delivered_three_times_gives_one_record(tmp_path):
    state = StateFolder(tmp_path / "state")
    with Session(state) as session:
        session.upload("twice.jpg", encode(photo(), "JPEG"))
        assert session.wait(1, "first delivery")
        (first,) = session.stack.ended
        sfn = session.stack.client("stepfunctions")
        for _ in range(2):  # EventBridge delivers at least once: the same event again, twice
            sfn.start_execution(stateMachineArn=first["stateMachineArn"], name=str(uuid.uuid4()), input=first["input"])
        assert session.wait(3, "repeated deliveries")
        items = session.save_records()
        listed = session.stack.client("s3").list_objects_v2(Bucket=session.stack.thumbnail_bucket)["Contents"]
    assert [i["status"] for i in items] == ["SUCCEEDED"]
    thumbnails = [o["Key"] for o in listed if not o["Key"].startswith("_work/")]
    assert len(thumbnails) == 3 and len(state.executions("SUCCEEDED")) == 3
    # one intermediate and one staged set: every delivery named them after the same object version
    assert len([o for o in listed if o["Key"].startswith("_work/intermediate/")]) == 1
    assert len([o for o in listed if o["Key"].startswith("_work/staged/")]) == 3


def test_awkward_keys_work_end_to_end(tmp_path):
    files = tmp_path / "in"
    long_dir = "/".join(["d" * 200] * 4)  # file names stop at 255 bytes; a key does not
    names = ["with space.jpg", "a+b.jpg", "100%.jpg", "ünïcødé 照片.jpg", f"{long_dir}/{'n' * 216}.jpg"]
    for name in names:
        write(files, name, encode(photo(64, 48), "JPEG"))
    assert len(names[-1].encode()) == 1024  # S3's longest key
    assert thumbs(tmp_path / "state", "run", str(files), "--out", str(tmp_path / "out")) == 0
    found = records(tmp_path / "out")
    assert set(found) == set(names)
    assert all(r["status"] == "SUCCEEDED" and len(r["thumbnails"]) == 3 for r in found.values())
    assert (tmp_path / "out" / "256" / "100%.jpg.jpg").exists()
    longest = found[names[-1]]["thumbnails"]
    assert all(t["key"].startswith(f"{t['size']}/_hashed/") for t in longest)  # no room for the readable form


@pytest.mark.corpus
def test_the_whole_corpus_as_the_manifest_says(corpus, tmp_path):
    out = tmp_path / "out"
    code = thumbs(tmp_path / "state", "run", str(corpus), "--out", str(out))
    # Every validate and resize of the corpus stayed inside its function's MemorySize, measured.
    report = json.loads((out / "report.json").read_text())["functions"]
    for function in ("validate", "resize"):
        used = report[function]
        assert used["invocations"] > 0 and 0 < used["max_memory_used_mb"] < used["memory_size_mb"], (function, used)
    manifest = {e["path"]: e for e in json.loads((corpus / "manifest.json").read_text())["images"]}
    found = records(out)
    assert set(found) == set(manifest)
    assert code == 0  # nothing FAILED
    for path, entry in manifest.items():
        record = found[path]
        if entry["expect"] == "thumbnail":
            assert record["status"] == "SUCCEEDED", (path, record.get("error"))
            assert sorted(t["size"] for t in record["thumbnails"]) == list(SIZES)
            for thumb in record["thumbnails"]:
                image = Image.open(io.BytesIO((out / thumb["key"]).read_bytes()))
                assert max(image.size) <= thumb["size"]
                if thumb["size"] == 256:
                    assert list(image.size) == entry["size_256"], path
        elif entry["expect"] == "reject":
            assert record["status"] == "REJECTED" and record["error"]["code"] and record["error"]["message"], path
            assert record["thumbnails"] == []
        else:
            assert record["status"] in ("SUCCEEDED", "REJECTED"), path


def test_serve_keeps_the_stack_up_for_boto3_clients(tmp_path):
    import signal

    import boto3

    from tests.serving import start_serve

    server, port = start_serve(tmp_path / "state")
    try:
        banner = ""
        while "Ctrl-C" not in banner:
            line = server.stdout.readline()
            assert line, f"serve exited early: {banner}"
            banner += line
        endpoint = f"http://127.0.0.1:{port}"
        clients = {
            name: boto3.client(name, endpoint_url=endpoint, region_name="us-east-1",
                               aws_access_key_id="x", aws_secret_access_key="x")
            for name in ("s3", "stepfunctions", "dynamodb")
        }  # fmt: skip
        bucket = next(b["Name"] for b in clients["s3"].list_buckets()["Buckets"] if "uploads" in b["Name"])
        clients["s3"].put_object(Bucket=bucket, Key="via-cli.jpg", Body=encode(photo(), "JPEG"))
        machine = clients["stepfunctions"].list_state_machines()["stateMachines"][0]["stateMachineArn"]

        def finished():
            runs = clients["stepfunctions"].list_executions(stateMachineArn=machine)["executions"]
            return runs if runs and all(r["status"] != "RUNNING" for r in runs) else None

        import time

        deadline = time.monotonic() + 60
        while not finished() and time.monotonic() < deadline:
            time.sleep(0.2)
        (run,) = finished()
        assert run["status"] == "SUCCEEDED"
        history = clients["stepfunctions"].get_execution_history(executionArn=run["executionArn"])["events"]
        assert history[-1]["type"] == "ExecutionSucceeded"
        table = clients["dynamodb"].list_tables()["TableNames"][0]
        (item,) = clients["dynamodb"].scan(TableName=table)["Items"]
        assert item["key"]["S"] == "via-cli.jpg" and item["status"]["S"] == "SUCCEEDED"
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=180)  # drains its output while it stops; a bound, not a timing
    assert server.returncode == 0
    assert StateFolder(tmp_path / "state").records()  # what it served persists for the next process


def test_the_stacks_own_upload_is_signed_as_over_https_and_still_carries_its_checksum(tmp_path):
    """``thumbs run`` uploads through the stack's client: no SHA-256 of the body, as botocore over HTTPS."""
    sent: list[dict[str, str]] = []

    def look(request, **kwargs):
        headers = request.headers.items()
        sent.append({name.lower(): value if isinstance(value, str) else value.decode() for name, value in headers})

    with Session(StateFolder(tmp_path / "state")) as session:
        s3 = session.stack.client("s3")
        s3.meta.events.register("before-send.s3.PutObject", look)
        session.upload("signed.jpg", encode(photo(), "JPEG"))
        assert session.wait(1, "upload")
        s3.meta.events.unregister("before-send.s3.PutObject", look)
        (record,) = session.save_records()
    assert sent[0]["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert "x-amz-checksum-crc32" in sent[0]  # S3's integrity check of the bytes is still sent
    assert record["status"] == "SUCCEEDED" and len(record["thumbnails"]) == 3


def test_deleting_the_original_deletes_its_thumbnails_through_its_own_rule_with_no_execution(tmp_path):
    state = StateFolder(tmp_path / "state")
    with Session(state) as session:
        session.upload("short-lived.jpg", encode(photo(), "JPEG"))
        assert session.wait(1, "upload")
        s3 = session.stack.client("s3")
        s3.delete_object(Bucket=session.stack.upload_bucket, Key="short-lived.jpg")
        (item,) = session.save_records()  # waits for the rule's asynchronous Record invocation
        listed = s3.list_objects_v2(Bucket=session.stack.thumbnail_bucket).get("Contents", [])
        executions = session.stack.client("stepfunctions").list_executions(
            stateMachineArn=session.stack.state_machine_arn
        )["executions"]
    assert item["status"] == "DELETED" and item["thumbnails"] == [] and not item.get("execution_arn")
    assert [o["Key"] for o in listed if not o["Key"].startswith("_work/")] == []
    assert len(executions) == 1  # the upload's: a deletion costs no execution and no transition


@pytest.mark.parametrize("function", ["validate", "resize", "record"])
@pytest.mark.parametrize("kind", ["transient", "throttle", "timeout"])
def test_faults_within_the_retry_budget_of_each_function_end_succeeded(tmp_path, function, kind):
    # timeouts get one retry, the others four: stay inside each budget
    count = 1 if kind == "timeout" else 2
    code, record, state = run_one(tmp_path, f"{function}={kind}:{count}")
    assert code == 0 and record["status"] == "SUCCEEDED" and len(record["thumbnails"]) == 3, record
    error = {
        "transient": "TransientError",
        "throttle": "Lambda.TooManyRequestsException",
        "timeout": "Sandbox.Timedout",
    }
    (execution,) = state.executions()
    assert failed_attempts(execution, error[kind]) == count


@pytest.mark.parametrize(
    ("fault", "error"), [("resize=transient:10@1", "TransientError"), ("record=transient:5", "TransientError")]
)
def test_faults_past_the_budget_of_resize_or_record_fail_then_replay_succeeds(tmp_path, fault, error):
    from thumbs.local.lambda_runtime import FaultSwitch

    state = StateFolder(tmp_path / "state")
    with Session(state, faults=FaultSwitch.parse([fault])) as session:
        session.upload("photo.jpg", encode(photo(400, 300), "JPEG"))
        assert session.wait(1, "a run past its retry budget")
        (record,) = session.save_records()
        listed = session.stack.client("s3").list_objects_v2(Bucket=session.stack.thumbnail_bucket).get("Contents", [])
    assert record["status"] == "FAILED" and record["error"]["code"] == error, record
    # Nothing half-written: sizes whose iteration succeeded stay staged under _work/, unpublished.
    assert [o["Key"] for o in listed if not o["Key"].startswith("_work/")] == []
    staged = [o["Key"] for o in listed if o["Key"].startswith("_work/staged/")]
    assert len(staged) == (
        1 if fault.startswith("resize") else 3
    )  # one iteration succeeded; or all, then Record failed
    assert thumbs(tmp_path / "state", "replay", "--failed") == 0
    replayed = StateFolder(tmp_path / "state").records()[record["source_id"]]
    assert replayed["status"] == "SUCCEEDED" and len(replayed["thumbnails"]) == 3


def test_overwriting_an_object_updates_its_thumbnails_and_record(tmp_path):
    state = StateFolder(tmp_path / "state")
    with Session(state) as session:
        session.upload("same-key.jpg", encode(photo(400, 300), "JPEG"))
        assert session.wait(1, "first version")
        session.upload("same-key.jpg", encode(photo(300, 400), "JPEG"))  # now portrait
        assert session.wait(2, "second version")
        (item,) = session.save_records()
        s3 = session.stack.client("s3")
        thumb = s3.get_object(Bucket=session.stack.thumbnail_bucket, Key="256/same-key.jpg.jpg")["Body"].read()
        current = s3.head_object(Bucket=session.stack.upload_bucket, Key="same-key.jpg")["ETag"].strip('"')
    assert item["status"] == "SUCCEEDED" and item["etag"] == current
    assert (item["width"], item["height"]) == (300, 400)
    assert Image.open(io.BytesIO(thumb)).size == (192, 256)


def test_hostile_uploads_end_rejected_with_their_reason_and_no_thumbnails(tmp_path):
    from PIL import PngImagePlugin

    from tests.images import png_claiming

    text_bomb = PngImagePlugin.PngInfo()
    text_bomb.add_text("comment", "A" * (64 * 1024 * 1024), zip=True)
    files = tmp_path / "in"
    cases = {
        "empty.jpg": (b"", "EmptyObject"),
        "claims-100000x100000.png": (png_claiming(100_000, 100_000), "TooManyPixels"),
        "text-bomb.png": (encode(photo(32, 32), "PNG", pnginfo=text_bomb), "CorruptImage"),
        "really-a-pdf.jpg": (b"%PDF-1.7\n1 0 obj << >> endobj\n", "UnsupportedFormat"),
        "cut-short.jpg": (encode(photo(), "JPEG")[:700], "CorruptImage"),
    }
    for name, (data, _) in cases.items():
        write(files, name, data)
    assert thumbs(tmp_path / "state", "run", str(files), "--out", str(tmp_path / "out")) == 0
    found = records(tmp_path / "out")
    for name, (_, code) in cases.items():
        assert found[name]["status"] == "REJECTED" and found[name]["error"]["code"] == code, found[name]
        assert found[name]["thumbnails"] == [] and found[name]["error"]["message"]
    assert not [
        p for p in (tmp_path / "out").rglob("*") if p.is_file() and p.suffix != ".jsonl" and p.name != "report.json"
    ]
