"""``thumbs run`` on a running ``thumbs serve``: the same steps, through the served stack's endpoint.

A serve keeps moto, the interpreter and warm workers up, so a run against it skips the whole
start (imports, deploy, cold workers) and costs what the uploads cost. Everything goes
through the public APIs a user's own scripts would use (S3, DynamoDB) plus
``/_thumbs/status``, which answers once the executions started so far have ended.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..plain import from_dynamodb
from ..terminal import console

REGION = "us-east-1"
WAIT_SECONDS = 600.0  # as long as a run's own stack waits for a small batch


class Served:
    """A running ``thumbs serve``, with the interface ``cmd_run`` uses of a :class:`Session`."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        described = self._get("/_thumbs/ready")
        self.upload_bucket = str(described["uploadBucket"])
        self.thumbnail_bucket = str(described["thumbnailBucket"])
        self.table_name = str(described["recordsTable"])
        self._clients: dict[str, Any] = {}
        import boto3

        self._session = boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION
        )

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _get(self, path: str, timeout: float = 15) -> dict[str, Any]:
        with urllib.request.urlopen(self.endpoint + path, timeout=timeout) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service, endpoint_url=self.endpoint)
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
        with Progress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False
        ) as progress:
            task = progress.add_task(label, total=target - first, completed=0)
            while status["ended"] < target and time.monotonic() < deadline:
                status = self._get(f"/_thumbs/status?ended={target}&wait=2")
                progress.update(task, completed=min(status["ended"], target) - first)
        return bool(status["ended"] >= target)

    def record(self, source_id: str) -> dict[str, Any] | None:
        item = self.client("dynamodb").get_item(
            TableName=self.table_name, Key={"source_id": {"S": source_id}}, ConsistentRead=True
        )
        return from_dynamodb(item["Item"]) if "Item" in item else None
