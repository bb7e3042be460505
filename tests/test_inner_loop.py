"""The developer's inner loop: ``serve --watch`` applies edits, and ``thumbs run`` uses a running serve."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.images import encode, photo
from tests.serving import start_serve
from thumbs import FUNCTIONS_DIR
from thumbs.cli import main
from thumbs.local.session import Session
from thumbs.local.state import StateFolder
from thumbs.local.watch import Watcher, functions_running

HANDLERS = {
    "Validate": "validate.handler.lambda_handler",
    "Resize": "resize.handler.lambda_handler",
    "Record": "record.handler.lambda_handler",
    "Plan": "plan.handler.lambda_handler",
}


@pytest.fixture
def code(tmp_path: Path) -> Path:
    """A copy of functions/ to edit, as a developer edits theirs."""
    target = tmp_path / "functions"
    shutil.copytree(FUNCTIONS_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_a_changed_file_restarts_exactly_the_functions_whose_code_includes_it(code):
    assert functions_running(code, HANDLERS, [code / "resize" / "handler.py"]) == {"Resize"}
    assert functions_running(code, HANDLERS, [code / "validate" / "handler.py"]) == {"Validate"}
    # imaging is shared: every handler that imports it, directly or through awsio, runs it
    uses_imaging = functions_running(code, HANDLERS, [code / "imaging" / "thumbnail.py"])
    assert {"Validate", "Resize"} <= uses_imaging
    assert functions_running(code, HANDLERS, [code / "README.md"]) == set()


def thumbnail_digest(session: Session, key: str, size: int) -> tuple[str, str]:
    record = session.record(f"s3://{session.upload_bucket}/{key}")
    assert record is not None
    (thumb,) = [t for t in record["thumbnails"] if t["size"] == size]
    body = session.client("s3").get_object(Bucket=session.thumbnail_bucket, Key=thumb["key"])["Body"].read()
    return record["status"], hashlib.sha256(body).hexdigest()


def upload_and_wait(session: Session, key: str, data: bytes) -> None:
    session.upload(key, data)
    assert session.stack.wait_for_executions(session.stack.started_executions, timeout=120)


def test_watch_reloads_a_changed_imaging_file_and_the_next_upload_uses_it(tmp_path, code, template):
    image = encode(photo(1200, 800), "JPEG")
    said: list[str] = []
    with Session(StateFolder(tmp_path / "state"), template=template, code_dir=code, outputs=False) as session:
        watcher = Watcher(session, code_dir=code, say=said.append, template=lambda: template).start()
        try:
            upload_and_wait(session, "before.jpg", image)
            before = thumbnail_digest(session, "before.jpg", 256)
            thumbnail = code / "imaging" / "thumbnail.py"
            source = thumbnail.read_text()
            assert "Image.Resampling.LANCZOS" in source
            thumbnail.write_text(source.replace("Image.Resampling.LANCZOS", "Image.Resampling.NEAREST"))
            deadline = time.monotonic() + 10
            while watcher.reloads == 0:
                assert time.monotonic() < deadline, "the watcher never saw the edit"
                time.sleep(0.05)
            upload_and_wait(session, "after.jpg", image)
            after = thumbnail_digest(session, "after.jpg", 256)
        finally:
            watcher.stop()
    assert before[0] == after[0] == "SUCCEEDED"
    assert before[1] != after[1], "the same bytes: the workers still ran the old imaging code"
    assert any("imaging/thumbnail.py changed" in line and "Resize" in line for line in said), said


def test_a_changed_definition_and_function_setting_update_the_running_stack(tmp_path, template):
    changed = copy.deepcopy(template)
    machine = next(k for k, r in changed["Resources"].items() if r["Type"] == "AWS::StepFunctions::StateMachine")
    resize = next(
        k for k, r in changed["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("Handler", "").startswith("resize.")
    )  # fmt: skip
    changed["Resources"][resize]["Properties"]["Environment"]["Variables"]["CACHE_CONTROL"] = "max-age=60"
    definition = changed["Resources"][machine]["Properties"]["DefinitionString"]
    parts = definition["Fn::Join"][1]
    parts[0] = parts[0].replace('"StartAt":', '"Comment":"edited while serving","StartAt":', 1)
    with Session(StateFolder(tmp_path / "state"), template=template, outputs=False) as session:
        updated = session.stack.update(changed)
        sfn = session.client("stepfunctions")
        described = sfn.describe_state_machine(stateMachineArn=session.stack.state_machine_arn)
        function = session.client("lambda").get_function_configuration(FunctionName=resize)
        runtime = session.stack.runtime
        assert runtime is not None
        with pytest.raises(ValueError, match="restart thumbs serve"):
            grown = copy.deepcopy(changed)
            grown["Resources"]["ExtraQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
            session.stack.update(grown)
        # Halfway: the pipeline's new definition is applied, then the Backfill's is refused. The
        # pipeline gets its definition back and the stack keeps the template it had.
        broken = copy.deepcopy(changed)
        machines = [k for k, r in broken["Resources"].items() if r["Type"] == "AWS::StepFunctions::StateMachine"]
        assert machines[0] == machine and len(machines) == 2
        first = broken["Resources"][machine]["Properties"]["DefinitionString"]["Fn::Join"][1]
        first[0] = first[0].replace("edited while serving", "edited again", 1)
        second = broken["Resources"][machines[1]]["Properties"]["DefinitionString"]
        second["Fn::Join"][1][0] = second["Fn::Join"][1][0].replace(
            '"StartAt":', '"StartAt":{"not":"a name"},"Was":', 1
        )
        with pytest.raises(ClientError, match="UpdateStateMachine operation: ASLParserException"):
            session.stack.update(broken)
        after_failure = sfn.describe_state_machine(stateMachineArn=session.stack.state_machine_arn)["definition"]
        kept_template = session.stack.template
    assert machine in updated and resize in updated
    assert json.loads(described["definition"])["Comment"] == "edited while serving"
    assert json.loads(after_failure)["Comment"] == "edited while serving"
    assert kept_template is changed
    assert function["Environment"]["Variables"]["CACHE_CONTROL"] == "max-age=60"
    assert runtime.functions[resize].environment["CACHE_CONTROL"] == "max-age=60"


def wait_for_port(port: int, server, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stdout.read()
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("thumbs serve never opened its port")


def test_thumbs_run_uses_a_running_serve_for_the_same_state_folder(tmp_path, capsys):
    state = tmp_path / "state"
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(encode(photo(800, 600), "JPEG"))
    (folder / "not-an-image.jpg").write_bytes(b"plain text, named .jpg")
    server, port = start_serve(state)
    try:
        wait_for_port(port, server)
        deadline = time.monotonic() + 120  # a bound on waiting, not a timing: a loaded machine is slow
        while StateFolder(state).serving() is None:
            assert time.monotonic() < deadline, "serve never announced itself in the state folder"
            time.sleep(0.1)
        code = main(["--state", str(state), "run", str(folder), "--out", str(tmp_path / "out")])
        printed = capsys.readouterr()
        for setting in (["--fault", "resize=oom"], ["--concurrency", "2"]):
            with pytest.raises(SystemExit, match="faults and the concurrency limit are set when a stack starts"):
                main(["--state", str(state), "run", str(folder), "--out", str(tmp_path / "out"), *setting])
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=180)  # a bound: on a loaded machine the stop can be slow
    assert f"Using the running thumbs serve on http://127.0.0.1:{port}" in printed.out + printed.err
    assert code == 0
    records = [json.loads(line) for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert sorted((r["key"], r["status"]) for r in records) == [
        ("not-an-image.jpg", "REJECTED"),
        ("photo.jpg", "SUCCEEDED"),
    ]
    (succeeded,) = [r for r in records if r["status"] == "SUCCEEDED"]
    for thumb in succeeded["thumbnails"]:
        assert (tmp_path / "out" / thumb["key"]).stat().st_size > 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())["functions"]
    assert report["validate"]["invocations"] == 2 and report["record"]["invocations"] == 2
    # the serve process ran them: its executions are in the folder, and it withdrew its announcement on exit
    assert len(StateFolder(state).execution_index()) == 2
    assert StateFolder(state).serving() is None and not (state / "serve.json").exists()


def test_a_run_on_a_watching_serve_applies_an_edit_saved_a_moment_before(tmp_path, code, template):
    """The serve applies saved edits before it uploads a run's files: a run never races the next poll."""
    from thumbs.local.served import RunHandler, run_on_serve

    image = tmp_path / "photo.jpg"
    image.write_bytes(encode(photo(1200, 800), "JPEG"))
    state = StateFolder(tmp_path / "state")
    with Session(state, template=template, code_dir=code) as session:
        endpoint = session.stack.endpoint
        unwatched = urllib.request.urlopen(endpoint + "/_thumbs/sync", data=b"").read()
        # a watcher that would not look again for an hour: only the run's own sync can apply the edit
        watcher = Watcher(session, code_dir=code, say=lambda _: None, template=lambda: template, poll_seconds=3600)
        watcher.start()
        session.stack.run = RunHandler(session, "the-token")
        state.announce_serve(endpoint, "the-token")
        try:
            before, _, finished = run_on_serve(state, endpoint, [("before.jpg", image)], tmp_path / "a", "before")
            thumbnail = code / "imaging" / "thumbnail.py"
            thumbnail.write_text(thumbnail.read_text().replace("Image.Resampling.LANCZOS", "Image.Resampling.NEAREST"))
            after, report, _ = run_on_serve(state, endpoint, [("after.jpg", image)], tmp_path / "b", "after")
            reloads = watcher.reloads
            (state.root / "serve.json").write_text(json.dumps({"endpoint": endpoint, "token": "a guess"}))
            with pytest.raises(SystemExit, match=r"refused the run.*not this serve.s"):
                run_on_serve(state, endpoint, [("guessed.jpg", image)], tmp_path / "c", "guessed")
        finally:
            watcher.stop()
    assert json.loads(unwatched) == {"watching": False}
    assert finished and reloads == 1
    assert [r["status"] for r in before + after] == ["SUCCEEDED", "SUCCEEDED"]
    assert report["resize"]["invocations"] == 3  # this run's own, not the serve's total

    def digest(folder: Path, record: dict) -> str:
        (thumb,) = [t for t in record["thumbnails"] if t["size"] == 256]
        return hashlib.sha256((folder / thumb["key"]).read_bytes()).hexdigest()

    assert digest(tmp_path / "a", before[0]) != digest(tmp_path / "b", after[0]), "the run used the old code"
    assert not (tmp_path / "c").exists()
