"""``thumbs run`` on a running ``thumbs serve``: the serve does the run, the command shows it.

A serve keeps moto, the interpreter, warm workers and its SDK clients up. The command sends it
the files' paths and the output folder (``POST /_thumbs/run``); the serve applies the edits a
``--watch`` has not polled yet (as ``POST /_thumbs/sync`` does), uploads through its clients,
waits, writes the thumbnails, ``records.jsonl`` and ``report.json``, and streams back
progress and then the records and the report, which the command summarises as a run on its
own stack does. The command imports neither boto3 nor the stack: a client of its own cost
0.7 s of imports, SDK clients and requests, most of a one-image run on a warm serve.

The serve reads and writes files for whoever calls, so the call carries the token that
``serve.json`` holds, a file only its owner can read (``StateFolder.announce_serve``). The
S3 and DynamoDB APIs on the same port stay as open as the endpoint is: loopback only.
"""

from __future__ import annotations

import hmac
import json
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..terminal import progress

if TYPE_CHECKING:
    from .session import Session
    from .state import StateFolder

RUN_PATH = "/_thumbs/run"
TOKEN_HEADER = "X-Thumbs-Token"
Outcome = tuple[list[dict[str, Any]], dict[str, dict[str, Any]], bool]  # records, report, finished


def run_on_serve(state: StateFolder, endpoint: str, files: list[tuple[str, Path]], folder: Path, label: str) -> Outcome:
    """The command's side: ask the serve to run ``files`` into ``folder``, show its progress, return its outcome."""
    body = json.dumps({"files": [[key, str(path.resolve())] for key, path in files], "out": str(folder.resolve())})
    request = urllib.request.Request(
        endpoint + RUN_PATH, data=body.encode(), headers={TOKEN_HEADER: state.serve_token() or ""}
    )
    try:
        answer = urllib.request.urlopen(request, timeout=None)  # the serve may run for minutes
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"thumbs: the running thumbs serve refused the run: {exc.read().decode()}") from None
    with answer, progress(label) as bar:
        task = bar.add_task(label, total=len(files), completed=0)
        for line in answer:
            message = json.loads(line)
            if "ended" in message:
                bar.update(task, completed=message["ended"], total=message["total"])
            elif "error" in message:
                raise SystemExit(f"thumbs: the run on the thumbs serve failed: {message['error']}")
            else:
                return message["records"], message["report"], message["finished"]
    raise SystemExit("thumbs: the thumbs serve stopped before the run ended")


class RunHandler:
    """The serve's side: ``POST /_thumbs/run`` for the stack of ``session``."""

    def __init__(self, session: Session, token: str) -> None:
        self.session = session
        self.token = token

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, "405 Method Not Allowed", {"error": f"POST {RUN_PATH}"})
        if not hmac.compare_digest(environ.get("HTTP_X_THUMBS_TOKEN", ""), self.token):
            return _answer(start_response, "403 Forbidden", {"error": "no token, or not this serve's (serve.json)"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            request = json.loads(environ["wsgi.input"].read(length))
            files = [(str(key), Path(path)) for key, path in request["files"]]
            folder = Path(request["out"])
        except (ValueError, KeyError, TypeError) as exc:
            return _answer(start_response, "400 Bad Request", {"error": f"expected files and out: {exc}"})
        start_response("200 OK", [("Content-Type", "application/x-ndjson")])
        return self._run(files, folder)

    def _run(self, files: list[tuple[str, Path]], folder: Path) -> Iterator[bytes]:
        """Run in a thread and stream its lines: a client that goes away does not stop what was uploaded."""
        from .commands import run_files

        lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        stack = self.session.stack

        def wait() -> bool:
            target, first = stack.started_executions, len(stack.ended)

            def ended(count: int) -> None:
                lines.put({"ended": count - first, "total": target - first})

            return stack.wait_for_executions(target, progress=ended)

        def run() -> None:
            try:
                if stack.sync is not None:
                    stack.sync()
                records, report, finished = run_files(self.session, files, folder, wait)
                lines.put({"records": records, "report": report, "finished": finished})
            except Exception as exc:  # noqa: BLE001 - the command prints it; the serve keeps serving
                lines.put({"error": f"{type(exc).__name__}: {exc}"})
            finally:
                lines.put(None)

        threading.Thread(target=run, name="thumbs-run", daemon=True).start()
        while (line := lines.get()) is not None:
            yield json.dumps(line, default=str).encode() + b"\n"


def _answer(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> Iterator[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return iter([data])
