"""The local engine as a place to work: redrive as on AWS, no upload lost at start, AWS-shaped errors."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from tests.images import encode, photo
from tests.serving import start_serve
from thumbs.cli import main
from thumbs.local.lambda_runtime import FaultSwitch
from thumbs.local.session import Session
from thumbs.local.state import StateFolder

ROOT = Path(__file__).resolve().parent.parent


def client(service: str, endpoint: str):
    return boto3.client(
        service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def entered(events: list[dict], name: str) -> int:
    states = [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]
    return states.count(name)


def after_redrive(events: list[dict]) -> list[dict]:
    (at,) = [i for i, e in enumerate(events) if e["type"] == "ExecutionRedriven"]
    return events[at + 1 :]


def thumbs_run(tmp_path: Path, files: dict[str, bytes], *options: str) -> tuple[int, Path]:
    """``thumbs run`` on ``files`` with a state folder in ``tmp_path``: its exit code and that folder."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    home = tmp_path / "state"
    return main(["--state", str(home), "run", str(folder), "--out", str(tmp_path / "out"), *options]), home


def test_a_map_that_failed_halfway_is_redriven_under_the_same_arn_rerunning_only_what_failed(tmp_path):
    state = StateFolder(tmp_path / "state")
    with Session(state, faults=FaultSwitch.parse(["resize=transient:10@1"])) as session:
        session.upload("halfway.jpg", encode(photo(400, 300), "JPEG"))
        assert session.wait(1, "a Map that fails halfway")
        sfn = client("stepfunctions", session.stack.endpoint)
        (run,) = sfn.list_executions(stateMachineArn=session.stack.state_machine_arn)["executions"]
        arn = run["executionArn"]
        failed = sfn.describe_execution(executionArn=arn)
        assert failed["status"] == "FAILED" and failed["redriveStatus"] == "REDRIVABLE"
        assert "redriveCount" not in failed

        redriven = sfn.redrive_execution(executionArn=arn)
        assert isinstance(redriven["redriveDate"], datetime)
        assert session.wait(2, "the redrive")
        done = sfn.describe_execution(executionArn=arn)
        events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        (listed,) = sfn.list_executions(stateMachineArn=session.stack.state_machine_arn)["executions"]
        (record,) = session.save_records()
        # The redrive resumed at the Map on a copy of the parsed program: a new run starts at the top.
        session.upload("after.jpg", encode(photo(400, 300), "JPEG"))
        assert session.wait(3, "a run after the redrive")
        later = next(
            e["executionArn"]
            for e in sfn.list_executions(stateMachineArn=session.stack.state_machine_arn)["executions"]
            if e["executionArn"] != arn
        )
        later_events = sfn.get_execution_history(executionArn=later, maxResults=1000)["events"]

    first_entered = next(e for e in later_events if e["type"].endswith("StateEntered"))
    assert first_entered["stateEnteredEventDetails"]["name"] == "Validate"
    assert done["status"] == "SUCCEEDED" and done["executionArn"] == arn
    assert done["redriveCount"] == 1 and done["redriveDate"] == redriven["redriveDate"]
    assert done["redriveStatus"] == "NOT_REDRIVABLE" and "SUCCEEDED" in done["redriveStatusReason"]
    assert listed["executionArn"] == arn and listed["redriveCount"] == 1
    # The history keeps the failed run and adds the redrive; ids continue.
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events].count("ExecutionFailed") == 1 and events[-1]["type"] == "ExecutionSucceeded"
    assert entered(events, "Validate") == 1  # succeeded states do not run again
    resumed = after_redrive(events)
    assert resumed[0]["type"] == "MapStateEntered"  # the failed state restarts...
    map_input = next(e for e in events if e["type"] == "MapStateEntered")["stateEnteredEventDetails"]["input"]
    assert resumed[0]["stateEnteredEventDetails"]["input"] == map_input  # ...with the input it had
    assert sum(1 for e in resumed if e["type"] == "MapIterationStarted") == 2  # only the two that failed
    assert record["status"] == "SUCCEEDED" and sorted(t["size"] for t in record["thumbnails"]) == [128, 256, 1024]
    assert record["execution_arn"] == arn


def test_a_succeeded_or_running_execution_is_not_redrivable(tmp_path):
    state = StateFolder(tmp_path / "state")
    with Session(state, faults=FaultSwitch.parse(["validate=timeout:1"])) as session:
        sfn = client("stepfunctions", session.stack.endpoint)
        session.upload("slow.jpg", encode(photo(), "JPEG"))  # a timeout retries after 2 s: RUNNING meanwhile
        deadline = time.monotonic() + 30
        while not (runs := sfn.list_executions(stateMachineArn=session.stack.state_machine_arn)["executions"]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(ClientError) as running:
            sfn.redrive_execution(executionArn=runs[0]["executionArn"])
        assert session.wait(1, "the run")
        with pytest.raises(ClientError) as succeeded:
            sfn.redrive_execution(executionArn=runs[0]["executionArn"])
        with pytest.raises(ClientError) as missing:
            sfn.redrive_execution(executionArn=runs[0]["executionArn"] + "-nope")
    assert running.value.response["Error"]["Code"] == "ExecutionNotRedrivable"
    assert "RUNNING" in running.value.response["Error"]["Message"]
    assert succeeded.value.response["Error"]["Code"] == "ExecutionNotRedrivable"
    assert "SUCCEEDED" in succeeded.value.response["Error"]["Message"]
    assert missing.value.response["Error"]["Code"] == "ExecutionDoesNotExist"


def test_replay_in_a_later_process_redrives_and_restarts_what_is_past_the_redrive_window(tmp_path):
    uploads = {"a.jpg": encode(photo(400, 300), "JPEG"), "b.jpg": encode(photo(300, 400), "JPEG")}
    code, home = thumbs_run(tmp_path, uploads, "--fault", "validate=transient:10")
    assert code == 1
    state = StateFolder(home)
    first, second = sorted(state.executions("FAILED"), key=lambda e: e["input"]["detail"]["object"]["key"])
    old = json.loads((state.executions_dir / f"{second['name']}.json").read_text())
    old["stopDate"] = (datetime.now(UTC) - timedelta(days=15)).isoformat()  # stopped past AWS's 14 days
    (state.executions_dir / f"{second['name']}.json").write_text(json.dumps(old))

    assert main(["--state", str(home), "replay", "--failed"]) == 0

    redriven = state.find_execution(first["name"])
    assert redriven["status"] == "SUCCEEDED" and redriven["redriveCount"] == 1
    assert entered(redriven["events"], "Validate") == 2  # the failed state ran again; nothing before it did
    assert [e["type"] for e in redriven["events"]].count("ExecutionStarted") == 1
    assert state.find_execution(second["name"])["status"] == "FAILED"  # left as it was...
    (restarted,) = [e for e in state.executions("SUCCEEDED") if e.get("replayOf") == second["executionArn"]]
    assert restarted["name"].startswith(second["name"][:20])  # ...and linked to its new run
    records = state.records()
    assert {r["key"]: r["status"] for r in records.values()} == {"a.jpg": "SUCCEEDED", "b.jpg": "SUCCEEDED"}


def test_earlier_executions_are_listed_described_and_their_history_read_from_a_later_process(tmp_path):
    code, home = thumbs_run(tmp_path, {"a.jpg": encode(photo(), "JPEG")})
    assert code == 0
    (saved,) = StateFolder(home).executions()
    with Session(StateFolder(home)) as session:  # a later process: nothing was loaded at start
        sfn = client("stepfunctions", session.stack.endpoint)
        listed = sfn.list_executions(stateMachineArn=session.stack.state_machine_arn)["executions"]
        described = sfn.describe_execution(executionArn=saved["executionArn"])
        history = sfn.get_execution_history(executionArn=saved["executionArn"], maxResults=1000)["events"]
    assert [e["executionArn"] for e in listed] == [saved["executionArn"]]
    assert described["status"] == "SUCCEEDED" and json.loads(described["input"]) == saved["input"]
    assert [e["type"] for e in history] == [e["type"] for e in saved["events"]]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 120) -> float:
    """Poll until the port accepts a connection, as a health check does; the time it took."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError("the port never opened")


def upload_a_photo(port: int, key: str) -> tuple[str, str]:
    """Upload a photo to the serve on ``port`` as a user would: (its endpoint, the upload bucket)."""
    endpoint = f"http://127.0.0.1:{port}"
    s3 = client("s3", endpoint)
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if "uploads" in b["Name"])
    s3.put_object(Bucket=bucket, Key=key, Body=encode(photo(), "JPEG"))
    return endpoint, bucket


def test_an_upload_sent_the_moment_the_port_accepts_connections_ends_with_a_record(tmp_path):
    server, port = start_serve(tmp_path / "state")
    try:
        wait_for_port(port, server)
        endpoint, bucket = upload_a_photo(port, "first-moment.jpg")
        ready = requests.get(f"{endpoint}/_thumbs/ready", timeout=10)
        assert ready.status_code == 200 and ready.json()["ready"] is True
        assert ready.json()["uploadBucket"] == bucket
        dynamodb = client("dynamodb", endpoint)
        key = {"source_id": {"S": f"s3://{bucket}/first-moment.jpg"}}
        deadline = time.monotonic() + 120
        item = None
        while item is None or item["status"]["S"] not in ("SUCCEEDED", "REJECTED", "FAILED"):
            assert time.monotonic() < deadline, "the upload never got a record"
            time.sleep(0.2)
            item = dynamodb.get_item(TableName=ready.json()["recordsTable"], Key=key).get("Item")
        assert item["status"]["S"] == "SUCCEEDED"
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=180)  # a bound on waiting, not a timing
    assert server.returncode == 0
    assert "Ready" in output and f"127.0.0.1:{port}" in output


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (the stack's zygote, its Lambda workers), read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["kill", "hangup"])
def test_a_serve_stopped_by_kill_or_a_closed_terminal_stops_as_cleanly_as_on_ctrl_c(tmp_path, stop):
    """systemd, a container's stop and ``kill`` send SIGTERM; a closed terminal sends SIGHUP."""
    state = tmp_path / "state"
    server, port = start_serve(state)
    try:
        wait_for_port(port, server)
        endpoint, _ = upload_a_photo(port, "stopped.jpg")
        deadline = time.monotonic() + 120
        while requests.get(f"{endpoint}/_thumbs/status?ended=1&wait=10", timeout=30).json()["ended"] < 1:
            assert time.monotonic() < deadline, "the upload's execution never ended"
        assert (state / "serve.json").exists()
        workers = descendants(server.pid)
        assert workers, "the serve runs its Lambda workers as child processes"
    finally:
        server.send_signal(stop)
        output, _ = server.communicate(timeout=180)  # a bound on waiting, not a timing
    assert server.returncode == 0, output
    assert "Stopping." in output
    assert not (state / "serve.json").exists(), "a later thumbs run would look for this serve"
    records = json.loads((state / "records.json").read_text())
    assert [r["status"] for r in records.values()] == ["SUCCEEDED"]
    assert not {pid for pid in workers if Path(f"/proc/{pid}").exists()}


# Two 128-byte blocks with one MD5: the published example of Wang and Yu's collision (2004).
MD5_TWINS = (
    bytes.fromhex(
        "d131dd02c5e6eec4693d9a0698aff95c2fcab58712467eab4004583eb8fb7f8955ad340609f4b30283e488832571415a"
        "085125e8f7cdc99fd91dbdf280373c5bd8823e3156348f5bae6dacd436c919c6dd53e2b487da03fd02396306d248cda0"
        "e99f33420f577ee8ce54b67080a80d1ec69821bcb6a8839396f9652b6ff72a70"
    ),
    bytes.fromhex(
        "d131dd02c5e6eec4693d9a0698aff95c2fcab50712467eab4004583eb8fb7f8955ad340609f4b30283e4888325f1415a"
        "085125e8f7cdc99fd91dbd7280373c5bd8823e3156348f5bae6dacd436c919c6dd53e23487da03fd02396306d248cda0"
        "e99f33420f577ee8ce54b67080280d1ec69821bcb6a8839396f965ab6ff72a70"
    ),
)


def test_objects_with_one_md5_keep_their_own_bytes_and_equal_ones_share_a_file(tmp_path):
    """The store names a blob by the object's ETag, an MD5, and must never take an MD5 for proof of content."""
    first, second = MD5_TWINS
    assert first != second and hashlib.md5(first).digest() == hashlib.md5(second).digest()
    state = StateFolder(tmp_path / "state")
    keys = {"twin-1": first, "twin-2": second, "twin-1-again": first}
    with Session(state) as session:
        s3 = client("s3", session.stack.endpoint)
        bucket = session.stack.thumbnail_bucket
        etags = {s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"] for key, body in keys.items()}
        assert etags == {f'"{hashlib.md5(first).hexdigest()}"'}  # as S3 answers: the MD5 of each body
        assert {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys} == keys
    with Session(state) as session:  # a later command reads them from the store
        s3 = client("s3", session.stack.endpoint)
        assert {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys} == keys
    held = [blob.read_bytes() for blob in (state.root / "blobs").iterdir()]
    assert held.count(first) == 1 and held.count(second) == 1  # the same bytes twice: one file


def test_operations_the_local_stack_lacks_answer_an_aws_error_not_an_html_page(tmp_path):
    state = StateFolder(tmp_path / "state")
    with Session(state) as session:
        endpoint = session.stack.endpoint
        with pytest.raises(ClientError) as json_service:
            client("stepfunctions", endpoint).list_state_machine_versions(
                stateMachineArn=session.stack.state_machine_arn
            )
        with pytest.raises(ClientError) as query_service:
            client("iam", endpoint).change_password(OldPassword="a", NewPassword="b")
        s3 = client("s3", endpoint)
        empty = session.stack.thumbnail_bucket
        with pytest.raises(ClientError) as s3_subresource:  # moto alone would run DeleteBucket here
            s3.delete_bucket_analytics_configuration(Bucket=empty, Id="x")
        still_there = s3.head_bucket(Bucket=empty)["ResponseMetadata"]["HTTPStatusCode"]
        raw = requests.post(
            endpoint,
            headers={"X-Amz-Target": "AWSStepFunctions.ValidateStateMachineDefinition",
                     "Content-Type": "application/x-amz-json-1.0",
                     "Authorization": "AWS4-HMAC-SHA256 Credential=x/20261129/us-east-1/states/aws4_request"},
            data="{}", timeout=30,
        )  # fmt: skip
    assert still_there == 200
    for failure, operation in (
        (json_service, "ListStateMachineVersions"),
        (query_service, "ChangePassword"),
        (s3_subresource, "DeleteBucketAnalyticsConfiguration"),
    ):
        error = failure.value.response["Error"]
        assert error["Code"] == "NotImplemented" and operation in error["Message"], error
        assert failure.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert raw.status_code == 501 and "<html" not in raw.text.lower()
    assert raw.json()["__type"] == "NotImplemented"


def test_the_operations_page_lists_what_the_local_stack_answers():
    from thumbs.local.moto_internals import LOCAL_SERVICES, operations_page

    page = (ROOT / "docs" / "local-api.md").read_text()
    assert page == operations_page(), "docs/local-api.md is stale: python -m thumbs.local.moto_internals > it"
    assert "RedriveExecution" in page and "PutObject" in page and "StartExecution" in page
    for service in LOCAL_SERVICES:
        assert f"## {service}" in page


def test_a_restart_loads_nothing_yet_serves_earlier_thumbnails_objects_and_records(tmp_path):
    kept = encode(photo(), "JPEG")
    code, home = thumbs_run(tmp_path, {"kept.jpg": kept})
    assert code == 0
    earlier = (tmp_path / "out" / "256" / "kept.jpg.jpg").read_bytes()
    with Session(StateFolder(home)) as session:  # a later process
        assert session.store.writes == 0  # nothing was put back at start
        s3 = client("s3", session.stack.endpoint)
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket=session.stack.thumbnail_bucket)["Contents"]]
        served = s3.get_object(Bucket=session.stack.thumbnail_bucket, Key="256/kept.jpg.jpg")
        upload = s3.head_object(Bucket=session.stack.upload_bucket, Key="kept.jpg")
        source = f"s3://{session.stack.upload_bucket}/kept.jpg"
        item = client("dynamodb", session.stack.endpoint).get_item(
            TableName=session.stack.table_name, Key={"source_id": {"S": source}}
        )["Item"]
    assert {"128/kept.jpg.jpg", "256/kept.jpg.jpg", "1024/kept.jpg.jpg"} <= set(listed)
    assert served["Body"].read() == earlier and served["ContentType"] == "image/jpeg"
    assert served["CacheControl"] == "public, max-age=86400"  # metadata set by CopyObject survives too
    assert upload["ContentLength"] == len(kept)
    assert item["status"]["S"] == "SUCCEEDED" and item["etag"]["S"] == upload["ETag"].strip('"')
    records = json.loads((home / "records.json").read_text())
    assert list(records) == [source] and records[source]["status"] == "SUCCEEDED"


def test_a_state_folder_of_the_earlier_format_moves_into_the_store_once(tmp_path):
    import hashlib

    home = tmp_path / "state"
    data = encode(photo(), "JPEG")
    digest = hashlib.sha256(data).hexdigest()
    (home / "uploads" / "objects").mkdir(parents=True)
    (home / "uploads" / "objects" / digest).write_bytes(data)
    (home / "uploads" / "index.json").write_text(json.dumps({"old/photo.jpg": digest}))
    state = StateFolder(home)
    with Session(state) as session:
        source = f"s3://{session.stack.upload_bucket}/old/photo.jpg"
        (home / "records.json").write_text(json.dumps({source: {"source_id": source, "status": "FAILED", "n": 1.5}}))
    with Session(state) as session:  # the next process finds the earlier format and moves it
        body = client("s3", session.stack.endpoint).get_object(Bucket=session.stack.upload_bucket, Key="old/photo.jpg")
        assert body["Body"].read() == data
        assert session.record(source) == {"source_id": source, "status": "FAILED", "n": 1.5}
    assert not (home / "uploads" / "index.json").exists()


def test_an_aborted_execution_is_redriven_from_the_state_it_was_in(tmp_path):
    state = StateFolder(tmp_path / "state")
    with Session(state, faults=FaultSwitch.parse(["validate=timeout:1"])) as session:
        sfn = client("stepfunctions", session.stack.endpoint)
        session.upload("stopped.jpg", encode(photo(), "JPEG"))  # Validate waits 2 s to retry its timeout
        deadline = time.monotonic() + 30
        while not (runs := sfn.list_executions(stateMachineArn=session.stack.state_machine_arn)["executions"]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        arn = runs[0]["executionArn"]

        def waiting_to_retry():
            events = sfn.get_execution_history(executionArn=arn)["events"]
            return any(e["type"] == "LambdaFunctionFailed" for e in events)

        while not waiting_to_retry():  # stopped between two attempts, as an operator would
            assert time.monotonic() < deadline
            time.sleep(0.05)
        sfn.stop_execution(executionArn=arn, error="Operator", cause="stopped by the test")
        assert session.wait(1, "the stop")
        aborted = sfn.describe_execution(executionArn=arn)
        sfn.redrive_execution(executionArn=arn)
        assert session.wait(2, "the redrive")
        done = sfn.describe_execution(executionArn=arn)
        events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        record = session.record(f"s3://{session.stack.upload_bucket}/stopped.jpg")
    assert aborted["status"] == "ABORTED" and aborted["redriveStatus"] == "REDRIVABLE"
    assert done["status"] == "SUCCEEDED" and done["redriveCount"] == 1
    resumed = after_redrive(events)
    assert resumed[0]["type"] == "TaskStateEntered" and resumed[0]["stateEnteredEventDetails"]["name"] == "Validate"
    assert entered(events, "Validate") == 2  # the first run's and the redrive's, in one history
    assert record["status"] == "SUCCEEDED" and record["execution_arn"] == arn


def test_listings_read_one_index_line_per_execution_and_rebuild_it_when_missing(tmp_path):
    state = StateFolder(tmp_path / "state")
    arn = "arn:aws:states:us-east-1:123456789012:execution:PipelineC660917D:run-1"
    execution = {
        "executionArn": arn, "name": "run-1", "status": "FAILED", "startDate": "2026-11-29T10:00:00+00:00",
        "input": {"detail": {"object": {"key": "a.jpg"}}}, "events": [{"id": 1, "type": "ExecutionStarted"}],
    }  # fmt: skip
    state.save_execution(execution)
    state.save_execution({**execution, "status": "SUCCEEDED", "redriveCount": 1})  # redriven: a second line
    (summary,) = state.execution_index()
    assert (summary["status"], summary["redriveCount"], summary["key"]) == ("SUCCEEDED", 1, "a.jpg")
    assert "events" not in summary and "input" not in summary
    assert state.execution_summaries("arn:aws:states:us-east-1:123456789012:stateMachine:PipelineC660917D") == [summary]
    assert state.execution_summaries("arn:aws:states:us-east-1:123456789012:stateMachine:Other") == []
    (state.executions_dir / "index.jsonl").unlink()  # a folder saved before the index
    assert StateFolder(tmp_path / "state").execution_index() == [summary]
    assert state.find_execution("run")["events"] == execution["events"]
