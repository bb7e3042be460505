"""``thumbs run`` on a running ``thumbs serve``: the same steps, through the served stack's endpoint.

A serve keeps moto, the interpreter and warm workers up, so a run against it skips the whole
start (imports, deploy, cold workers) and costs what the uploads cost. Everything goes
through the public APIs a user's own scripts would use (S3, DynamoDB) plus
``/_thumbs/status``, which answers once the executions started so far have ended, and
``/_thumbs/sync``, which has a ``serve --watch`` apply saved edits before the run starts.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from ..aws import DeployedStack, record_lookup
from ..terminal import progress

WAIT_SECONDS = 600.0  # as long as a run's own stack waits for a small batch
SYNC_SECONDS = 600.0  # a changed CDK app is synthesized again before the run: that can take minutes


class Served:
    """A running ``thumbs serve``, with the interface ``cmd_run`` uses of a :class:`Session`."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        # A serve --watch applies edits saved since its last poll before this run uploads anything.
        self._call("/_thumbs/sync", data=b"", timeout=SYNC_SECONDS)
        described = self._get("/_thumbs/ready")
        # found by its outputs, as thumbs --stack finds a deployed stack (serve registers them)
        self.deployed = DeployedStack.local(described["stack"], endpoint, described["region"])
        self.upload_bucket = self.deployed.outputs["UploadBucketName"]
        self.thumbnail_bucket = self.deployed.outputs["ThumbnailBucketName"]
        self._clients: dict[str, Any] = {}
        self.record = record_lookup(self.deployed, self.client("dynamodb"))

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _get(self, path: str, timeout: float = 15) -> dict[str, Any]:
        return self._call(path, timeout=timeout)

    def _call(self, path: str, data: bytes | None = None, timeout: float = 15) -> dict[str, Any]:
        with urllib.request.urlopen(self.endpoint + path, data=data, timeout=timeout) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.deployed.client(service)
        return self._clients[service]

    def upload(self, key: str, data: bytes) -> None:
        self.client("s3").put_object(Bucket=self.upload_bucket, Key=key, Body=data)

    def function_report(self) -> dict[str, dict[str, Any]]:
        return self._get("/_thumbs/status")["functions"]  # type: ignore[no-any-return]

    def wait_for_room(self, in_flight: int) -> None:
        """Block while ``in_flight`` executions or more are running on the served stack."""
        deadline = time.monotonic() + WAIT_SECONDS
        status = self._get("/_thumbs/status")
        while status["started"] - status["ended"] >= in_flight and time.monotonic() < deadline:
            status = self._get(f"/_thumbs/status?ended={status['started'] - in_flight + 1}&wait=2&settle=0")

    def wait_for_uploads(self, label: str) -> bool:
        """Wait until every execution started so far has ended (ours, and any that came before them)."""
        status = self._get("/_thumbs/status")
        target, first = int(status["started"]), int(status["ended"])
        deadline = time.monotonic() + WAIT_SECONDS
        with progress(label) as bar:
            task = bar.add_task(label, total=target - first, completed=0)
            while status["ended"] < target and time.monotonic() < deadline:
                status = self._get(f"/_thumbs/status?ended={target}&wait=2")
                bar.update(task, completed=min(status["ended"], target) - first)
        return bool(status["ended"] >= target)
