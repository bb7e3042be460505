"""The warm engine: a ``thumbs run`` forked from a process that imported moto once.

These tests start ``python -m thumbs`` as a user does, with the engine on, in a copy of the
project's ``thumbs`` package (the rest linked), so that a test can edit the tool's code the
way a developer edits theirs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.images import encode, photo
from thumbs.local import engine

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The project with a copy of ``thumbs/`` to edit; the CDK app and the handlers are linked."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(ROOT / "thumbs", root / "thumbs", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("app.py", "cdk.json", "pipeline", "functions"):
        (root / name).symlink_to(ROOT / name)
    return root


@pytest.fixture
def engines(tmp_path: Path) -> Any:
    """A private engine folder; every engine started in it is stopped at the end."""
    folder = tmp_path / "engines"
    folder.mkdir(mode=0o700)
    yield folder
    for lock in folder.glob("*.lock"):
        try:
            pid = int(lock.read_text())
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            continue
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def thumbs(project: Path, engines: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """``python -m thumbs ARGS`` in ``project``, with the engine on and kept in ``engines``."""
    environment = {**os.environ, "THUMBS_ENGINE": "1", "THUMBS_ENGINE_DIR": str(engines), "THUMBS_ENGINE_IDLE": "120"}
    return subprocess.Popen(
        [sys.executable, "-m", "thumbs", *args],
        cwd=project, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen,
    )  # fmt: skip


def finished(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def seeded_state(tmp_path: Path, project: Path, template: dict[str, Any]) -> Path:
    """A state folder whose cache already holds the template (as after the first ``thumbs run``)."""
    digest = subprocess.run(
        [sys.executable, "-c", "from thumbs.template import sources_hash; print(sources_hash())"],
        cwd=project, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    state = tmp_path / "state"
    (state / "cache").mkdir(parents=True)
    (state / "cache" / f"template-{digest}.json").write_text(json.dumps(template))
    return state


def forks(engines: Path) -> list[str]:
    return [line for log in engines.glob("*.log") for line in log.read_text().splitlines() if " forked " in line]


def engine_pids(engines: Path) -> set[int]:
    return {int(lock.read_text()) for lock in engines.glob("*.lock") if lock.read_text()}


def test_a_run_forks_from_one_engine_and_imports_the_tool_as_it_is_on_disk(tmp_path, project, engines, template):
    state = seeded_state(tmp_path, project, template)
    image = tmp_path / "in" / "photo.jpg"
    image.parent.mkdir()
    image.write_bytes(encode(photo(900, 600), "JPEG"))

    status, output = finished(thumbs(project, engines, "--state", str(state), "run", str(image.parent), "--out", "o1"))
    assert status == 0, output
    assert "1 objects in" in output and "Thumbnails: o1/" in output  # the summary, printed by the fork
    assert sorted(p.name for p in (project / "o1").rglob("*.jpg"))  # the thumbnails, written by the fork
    assert json.loads((project / "o1" / "records.jsonl").read_text().splitlines()[0])["status"] == "SUCCEEDED"
    (first,) = engine_pids(engines)
    assert len(forks(engines)) == 1

    # An edit to the tool reaches the next command: the engine holds none of the project's modules.
    commands = project / "thumbs" / "local" / "commands.py"
    source = commands.read_text()
    marker = "def cmd_run(args: argparse.Namespace, state: StateFolder) -> int:\n"
    assert marker in source
    commands.write_text(source.replace(marker, marker + '    print("edited cmd_run", flush=True)  # noqa\n'))
    status, output = finished(thumbs(project, engines, "--state", str(state), "run", str(image.parent), "--out", "o2"))
    assert status == 0, output
    assert "edited cmd_run" in output
    assert engine_pids(engines) == {first}  # the same engine, a second fork
    assert len(forks(engines)) == 2

    # The command's exit status and message come back from the fork.
    status, output = finished(thumbs(project, engines, "--state", str(state), "run", str(tmp_path / "missing")))
    assert status == 1
    assert "is neither a file nor a folder" in output
    assert engine_pids(engines) == {first}


def long_run(
    tmp_path: Path, project: Path, engines: Path, template: dict[str, Any], images: int
) -> tuple[subprocess.Popen[str], int]:
    """A ``thumbs run`` of ``images`` 2 MP photos at a concurrency of 1, once it has forked: (command, fork's pid)."""
    state = seeded_state(tmp_path, project, template)
    folder = tmp_path / "in"
    folder.mkdir()
    jpeg = encode(photo(1600, 1200), "JPEG")
    for n in range(images):
        (folder / f"p{n}.jpg").write_bytes(jpeg)
    process = thumbs(project, engines, "--state", str(state), "run", str(folder), "--concurrency", "1")
    deadline = time.monotonic() + 120
    while not forks(engines) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert forks(engines), "the command never reached the engine"
    return process, int(forks(engines)[0].split(" forked ")[1].split(":")[0])


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_a_command_stopped_or_killed_takes_its_fork_with_it(tmp_path, project, engines, template, stop):
    """Ctrl-C is passed to the fork, which stops as the command would; a killed command's fork is hung up on."""
    process, fork = long_run(tmp_path, project, engines, template, 30)
    time.sleep(3)  # into the run: the stack is up and uploads are going
    process.send_signal(stop)
    status, output = finished(process, timeout=120)
    assert status != 0, output
    deadline = time.monotonic() + 30
    while _alive(fork) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(fork), f"the fork {fork} outlived its command"
    (pid,) = engine_pids(engines)
    assert _alive(pid)  # the engine itself serves on


def test_engine_lists_and_stops_this_users_engines(tmp_path, project, engines, template):
    state = seeded_state(tmp_path, project, template)
    status, output = finished(thumbs(project, engines, "--state", str(state), "run", str(tmp_path / "missing")))
    assert status == 1 and "is neither a file nor a folder" in output
    (pid,) = engine_pids(engines)

    status, output = finished(thumbs(project, engines, "engine"))
    assert status == 0 and f"engine {pid}:" in output and "this Python and install" in output
    status, output = finished(thumbs(project, engines, "engine", "--stop"))
    assert status == 0 and "Stopped 1 engine(s)" in output
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)
    assert not list(engines.glob("*.sock"))
    status, output = finished(thumbs(project, engines, "engine"))
    assert "No warm engine runs" in output


def test_the_engine_preloads_libraries_only_and_starts_no_thread():
    probe = (
        "import sys, threading\n"
        "from thumbs.local import engine\n"
        "engine.preload()\n"
        "own = sorted(m for m in sys.modules if m.split('.')[0] in engine.OWN_PACKAGES)\n"
        "from moto.s3.models import s3_backends\n"
        "from moto.stepfunctions.models import stepfunctions_backends\n"
        "print(own, threading.active_count(), 'moto.stepfunctions.parser.asl.parse.asl_parser' in sys.modules,\n"
        "      len(list(s3_backends.keys())) + len(list(stepfunctions_backends.keys())))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.split() == ["[]", "1", "True", "0"], result.stdout + result.stderr


def test_the_key_follows_what_the_imports_depend_on(monkeypatch, tmp_path):
    before = engine.engine_key()
    monkeypatch.chdir(tmp_path)  # where the command runs does not matter
    assert engine.engine_key() == before
    monkeypatch.setenv("MOTO_ALLOW_NONEXISTENT_REGION", "true")  # read by moto when it imports
    assert engine.engine_key() != before


def test_the_engine_folder_must_be_the_users_alone(monkeypatch, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    monkeypatch.setenv("THUMBS_ENGINE_DIR", str(shared))
    with pytest.raises(PermissionError, match="must belong to this user alone"):
        engine.engine_dir()


def test_a_command_outliving_a_killed_engine_does_not_keep_a_new_one_from_starting(
    tmp_path, project, engines, template
):
    """A fork holds none of the engine's own files: killed, the engine frees its lock and name at once."""
    running, _ = long_run(tmp_path, project, engines, template, 20)
    (first,) = engine_pids(engines)
    os.kill(first, signal.SIGKILL)
    try:
        other = tmp_path / "other"
        status, output = finished(thumbs(project, engines, "--state", str(other), "run", str(tmp_path / "missing")))
        assert status == 1 and "is neither a file nor a folder" in output
        assert "running here" not in output and "without the warm engine" not in output
        (second,) = engine_pids(engines)
        assert second != first
    finally:
        running.send_signal(signal.SIGINT)
        finished(running, timeout=120)
