"""The local state folder (``.thumbs/`` by default, ``THUMBS_STATE`` or ``--state`` to move it).

What a later ``thumbs`` process needs from an earlier one lives here:

    .thumbs/
      state.db, blobs/         the buckets' objects and the table's items (thumbs/local/store.py)
      records.json             the records table written out, by source_id, after each command
      executions/<name>.json   one per execution: input, status, output, error, redrives, full history
      executions/index.jsonl   a summary line per save: what listings read
      definitions/<hash>.json  the state machine definitions executions ran on (a redrive reuses it)
      logs/<function>.log      what each local Lambda printed (JSON logs, EMF metrics)
      cache/                   synthesized templates, by source hash
      samples/                 the generated sample images
      serve.json               while a thumbs serve runs on this folder: its endpoint and process

Nothing here is loaded at start: objects, items and executions are read when a request
names them, so a folder with 10,000 earlier uploads starts like an empty one.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..plain import from_dynamodb, to_dynamo, to_json
from .store import Store

DEFAULT_STATE = ".thumbs"


def state_root(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get("THUMBS_STATE") or DEFAULT_STATE)


class StateFolder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.executions_dir = root / "executions"
        self.logs_dir = root / "logs"
        self.cache_dir = root / "cache"
        self.samples_dir = root / "samples"
        self.definitions_dir = root / "definitions"
        self._index_path = self.executions_dir / "index.jsonl"
        self._index_lock = threading.Lock()
        self._index_cache: tuple[tuple[int, int], list[dict[str, Any]]] | None = None
        self._summaries_cache: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        for folder in (self.executions_dir, self.logs_dir, self.cache_dir, self.definitions_dir):
            folder.mkdir(parents=True, exist_ok=True)

    # a running thumbs serve
    def announce_serve(self, endpoint: str, token: str) -> None:
        """Say that this process serves the folder: ``thumbs run`` then runs there.

        The file is the owner's alone (0600): its ``token`` lets a caller have the serve read
        and write files (``POST /_thumbs/run``), which no other user of the machine may.
        """
        path = self.root / "serve.json"
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as announced:
            announced.write(json.dumps({"endpoint": endpoint, "pid": os.getpid(), "token": token}))

    def serve_token(self) -> str | None:
        """The running serve's token, for ``POST /_thumbs/run`` (None if no serve announced itself)."""
        try:
            return str(json.loads((self.root / "serve.json").read_text())["token"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def withdraw_serve(self) -> None:
        path = self.root / "serve.json"
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (FileNotFoundError, ValueError):
            pass

    def serving(self) -> str | None:
        """The endpoint of a live ``thumbs serve`` on this folder, or None.

        Live means its process exists and its endpoint answers ready: a serve that was killed
        leaves its file behind, and a reused port may answer for another stack.
        """
        import urllib.request

        try:
            announced = json.loads((self.root / "serve.json").read_text())
            os.kill(int(announced["pid"]), 0)
            with urllib.request.urlopen(announced["endpoint"] + "/_thumbs/ready", timeout=2) as answer:
                ready = json.loads(answer.read())
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return str(announced["endpoint"]) if ready.get("ready") and ready.get("pid") == announced["pid"] else None

    # executions
    def save_execution(self, execution: dict[str, Any]) -> None:
        """The execution's file, and its line in the index that listings read instead of every file."""
        plain = to_json(execution)
        path = self.executions_dir / f"{execution['name']}.json"
        path.write_text(json.dumps(plain, indent=1))
        with self._index_lock, self._index_path.open("a") as index:
            index.write(json.dumps(_summary(plain), ensure_ascii=False) + "\n")

    def execution_index(self) -> list[dict[str, Any]]:
        """A summary of every saved execution (the newest line per ARN), oldest first; built once if missing."""
        if not self._index_path.exists():
            with self._index_lock:
                lines = [json.dumps(_summary(json.loads(p.read_text()))) for p in self.executions_dir.glob("*.json")]
                self._index_path.write_text("".join(line + "\n" for line in lines))
        stat = self._index_path.stat()
        if self._index_cache is not None and self._index_cache[0] == (stat.st_size, stat.st_mtime_ns):
            return self._index_cache[1]  # unchanged since the last read: a console page reads it often
        latest: dict[str, dict[str, Any]] = {}
        with self._index_path.open() as index:
            for line in index:
                if line.strip():
                    summary = json.loads(line)
                    latest[summary["executionArn"]] = summary
        found = sorted(latest.values(), key=lambda e: e.get("startDate") or "")
        self._index_cache = ((stat.st_size, stat.st_mtime_ns), found)
        return found

    def load_execution(self, arn: str) -> dict[str, Any] | None:
        """One saved execution with its history and the definition it ran on; None if there is none."""
        path = self.executions_dir / f"{arn.rsplit(':', 1)[-1]}.json"
        if not path.exists():
            return None
        execution = json.loads(path.read_text())
        if execution.get("executionArn") != arn:
            return None
        digest = execution.get("definitionHash")
        if digest and (self.definitions_dir / f"{digest}.json").exists():
            execution["definition"] = (self.definitions_dir / f"{digest}.json").read_text()
        return execution

    def execution_summaries(self, state_machine_arn: str) -> list[dict[str, Any]]:
        """What ListExecutions shows of each saved execution of one state machine."""
        machine = state_machine_arn.split(":")[6]
        index = self.execution_index()
        cached = self._summaries_cache.get(machine)
        if cached is not None and cached[0] is index:  # the same index: the same list, so callers may cache by it
            return cached[1]
        found = [e for e in index if e["executionArn"].split(":")[6:7] == [machine]]
        self._summaries_cache[machine] = (index, found)
        return found

    def save_definition(self, definition: str) -> str:
        """Keep a state machine definition by its hash (executions name the one they ran on)."""
        digest = hashlib.sha256(definition.encode()).hexdigest()[:16]
        path = self.definitions_dir / f"{digest}.json"
        if not path.exists():
            path.write_text(definition)
        return digest

    def executions(self, status: str | None = None) -> list[dict[str, Any]]:
        found = [json.loads(p.read_text()) for p in self.executions_dir.glob("*.json")]
        if status:
            found = [e for e in found if e["status"] == status.upper()]
        return sorted(found, key=lambda e: e.get("startDate") or "")

    def find_execution(self, reference: str) -> dict[str, Any]:
        """By ARN, by name, or by a unique prefix of the name."""
        name = reference.rsplit(":", 1)[-1]
        if (self.executions_dir / f"{name}.json").exists():  # an exact name wins over longer names it begins
            return json.loads((self.executions_dir / f"{name}.json").read_text())
        matches = [e for e in self.execution_index() if e["name"].startswith(name)]
        if len(matches) != 1:
            reason = "no execution" if not matches else f"{len(matches)} executions"
            raise LookupError(f"{reason} in {self.executions_dir} match {reference!r}")
        return json.loads((self.executions_dir / f"{matches[0]['name']}.json").read_text())

    # the store: objects and table items (thumbs/local/store.py), and records.json
    def store(self) -> Store:
        return Store(self.root)

    def iter_records(self, store: Store, table: str) -> Iterator[dict[str, Any]]:
        """Every record in the store, as plain values, one at a time."""
        for item in store.items(table):
            yield from_dynamodb(item)

    def export_records(self, store: Store, table: str) -> int:
        """Write ``records.json`` (one item per source_id) from the store, streaming; how many it holds."""
        path = self.root / "records.json"
        partial = path.with_suffix(".partial")
        count = 0
        with partial.open("w") as out:
            out.write("{")
            for item in self.iter_records(store, table):
                out.write(("," if count else "") + "\n " + json.dumps(item["source_id"], ensure_ascii=False) + ": ")
                out.write(json.dumps(item, ensure_ascii=False))
                count += 1
            out.write("\n}\n")
        partial.replace(path)  # never half a file
        return count

    def record(self, store: Store, table: str, source_id: str) -> dict[str, Any] | None:
        item = store.get_item(table, json.dumps({"S": source_id}, sort_keys=True))
        return from_dynamodb(item) if item else None

    def record_page(
        self, store: Store, table: str, status: str | None, offset: int, limit: int
    ) -> list[dict[str, Any]]:
        """A page of records, as plain values, optionally of one status."""
        return [from_dynamodb(item) for item in store.item_page(table, status, offset, limit)]

    def records(self) -> dict[str, dict[str, Any]]:
        """``records.json``: what the last command wrote out."""
        path = self.root / "records.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def import_earlier_format(self, store: Store, upload_bucket: str, table: str) -> None:
        """A state folder from before the store: its uploads and records move into it, once."""
        from boto3.dynamodb.types import TypeSerializer

        index = self.root / "uploads" / "index.json"
        if index.exists():
            for key, digest in json.loads(index.read_text()).items():
                data = (self.root / "uploads" / "objects" / digest).read_bytes()
                etag = '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'
                modified = datetime.now(UTC).replace(tzinfo=None).isoformat()
                meta = {"metadata": {"Content-Type": "binary/octet-stream"}}
                store.put_object(upload_bucket, key, store.put_blob(data, etag), etag, len(data), modified, meta)
            index.rename(index.with_suffix(".imported"))
        if self.records() and store.count_items(table) == 0:
            serializer = TypeSerializer()
            for item in self.records().values():
                low_level = serializer.serialize(to_dynamo(item))["M"]
                store.put_item(table, json.dumps({"S": item["source_id"]}, sort_keys=True), low_level)


def _summary(execution: dict[str, Any]) -> dict[str, Any]:
    """What a listing shows of an execution: no input, output or history, but the object's key."""
    detail = ((execution.get("input") or {}).get("detail") or {}).get("object") or {}
    kept = ("executionArn", "name", "status", "startDate", "stopDate", "redriveCount", "redriveDate", "error")
    return {**{k: execution.get(k) for k in kept}, "key": detail.get("key"), "replayOf": execution.get("replayOf")}
