"""The local state folder (``.thumbs/`` by default, ``THUMBS_STATE`` or ``--state`` to move it).

What a later ``thumbs`` process needs from an earlier one lives here, as plain JSON files:

    .thumbs/
      executions/<name>.json   one per execution: input, status, output, error, full history
      records.json             the records table, by source_id
      uploads/index.json       uploaded keys -> content files, so replay finds its source again
      uploads/objects/<sha256> uploaded bytes
      logs/<function>.log      what each local Lambda printed (JSON logs, EMF metrics)
      cache/                   synthesized templates, by source hash
      samples/                 the generated sample images
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from ..plain import to_json

DEFAULT_STATE = ".thumbs"


def state_root(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get("THUMBS_STATE") or DEFAULT_STATE)


class StateFolder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.executions_dir = root / "executions"
        self.uploads_dir = root / "uploads" / "objects"
        self.logs_dir = root / "logs"
        self.cache_dir = root / "cache"
        self.samples_dir = root / "samples"
        self._lock = threading.Lock()
        for folder in (self.executions_dir, self.uploads_dir, self.logs_dir, self.cache_dir):
            folder.mkdir(parents=True, exist_ok=True)

    # executions
    def save_execution(self, execution: dict[str, Any]) -> None:
        path = self.executions_dir / f"{execution['name']}.json"
        path.write_text(json.dumps(to_json(execution), indent=1))

    def executions(self, status: str | None = None) -> list[dict[str, Any]]:
        found = [json.loads(p.read_text()) for p in self.executions_dir.glob("*.json")]
        if status:
            found = [e for e in found if e["status"] == status.upper()]
        return sorted(found, key=lambda e: e.get("startDate") or "")

    def find_execution(self, reference: str) -> dict[str, Any]:
        """By ARN, by name, or by a unique prefix of the name."""
        name = reference.rsplit(":", 1)[-1]
        matches = [e for e in self.executions() if e["name"] == name or e["name"].startswith(name)]
        if len(matches) != 1:
            reason = "no execution" if not matches else f"{len(matches)} executions"
            raise LookupError(f"{reason} in {self.executions_dir} match {reference!r}")
        return matches[0]

    # records
    def records(self) -> dict[str, dict[str, Any]]:
        path = self.root / "records.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def save_records(self, items: list[dict[str, Any]]) -> None:
        with self._lock:
            merged = self.records()
            merged.update({item["source_id"]: to_json(item) for item in items})
            (self.root / "records.json").write_text(json.dumps(merged, indent=1, ensure_ascii=False))

    # uploads
    def _index(self) -> dict[str, str]:
        path = self.root / "uploads" / "index.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def save_upload(self, key: str, data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        (self.uploads_dir / digest).write_bytes(data)
        with self._lock:
            index = self._index()
            index[key] = digest
            (self.root / "uploads" / "index.json").write_text(json.dumps(index, ensure_ascii=False))

    def uploads(self) -> dict[str, bytes]:
        return {key: (self.uploads_dir / digest).read_bytes() for key, digest in self._index().items()}
