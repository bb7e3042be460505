"""One command's local stack: the template deployed on moto, bound to the state folder.

It puts earlier uploads and records back before S3 notifications are on (so nothing runs
again), saves each execution with its full history as it ends, and saves the records table
when the command is done.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..plain import to_dynamo, to_json
from ..template import load_template
from ..terminal import console
from .lambda_runtime import FaultSwitch
from .stack import LocalStack
from .state import StateFolder


class Session:
    """A deployed local stack bound to the state folder: restores uploads and records, saves executions."""

    def __init__(self, state: StateFolder, *, port: int | None = None, faults: FaultSwitch | None = None) -> None:
        self.state = state
        template = load_template(state.cache_dir)
        self.stack = LocalStack(template, state.root, port=port, faults=faults, on_execution_end=self._ended)
        self._saving: list[threading.Thread] = []
        self._records_saved_after = -1

    def __enter__(self) -> Session:
        self.stack.start()
        self.stack.deploy(before_events=self._restore)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for thread in self._saving:
                thread.join()
            if self._records_saved_after != len(self.stack.ended):  # a scan of a big table is not free
                self.save_records()
        finally:
            self.stack.stop()

    def _restore(self, stack: LocalStack) -> None:
        """Earlier uploads and records, put back before S3 notifications are on: nothing re-runs."""
        s3 = stack.client("s3")
        for key, data in self.state.uploads().items():
            s3.put_object(Bucket=stack.upload_bucket, Key=key, Body=data)
        table = _table(stack)
        for item in self.state.records().values():
            table.put_item(Item=to_dynamo(item))

    def _ended(self, detail: dict[str, Any]) -> None:
        thread = threading.Thread(target=self._save_execution, args=(detail,), daemon=True)
        self._saving.append(thread)
        thread.start()

    def _save_execution(self, detail: dict[str, Any]) -> None:
        sfn = self.stack.client("stepfunctions")
        events, token = [], None
        while True:
            page = sfn.get_execution_history(
                executionArn=detail["executionArn"], maxResults=1000, **({"nextToken": token} if token else {})
            )
            events += page["events"]
            token = page.get("nextToken")
            if not token:
                break
        described = sfn.describe_execution(executionArn=detail["executionArn"])
        self.state.save_execution(
            {
                "executionArn": described["executionArn"],
                "name": described["name"],
                "status": described["status"],
                "startDate": described["startDate"],
                "stopDate": described.get("stopDate"),
                "input": json.loads(described.get("input") or "null"),
                "output": json.loads(described["output"]) if described.get("output") else None,
                "error": described.get("error"),
                "cause": described.get("cause"),
                "replayOf": None,
                "events": events,
            }
        )

    def upload(self, key: str, data: bytes) -> None:
        self.state.save_upload(key, data)
        self.stack.client("s3").put_object(Bucket=self.stack.upload_bucket, Key=key, Body=data)

    def wait(self, expected: int, label: str) -> bool:
        with Progress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False
        ) as progress:
            task = progress.add_task(label, total=expected)
            done = self.stack.wait_for_executions(expected, progress=lambda n: progress.update(task, completed=n))
        for thread in self._saving:
            thread.join()
        return done

    def function_report(self) -> dict[str, dict[str, Any]]:
        """Per function, what Lambda's REPORT lines say: invocations and max memory used against MemorySize."""
        runtime = self.stack.runtime
        assert runtime is not None
        return {
            spec.handler.split(".")[0]: {
                "function": name,
                "invocations": runtime.invocations[name],
                "max_memory_used_mb": round(runtime.peak_memory_mb[name], 1),
                "memory_size_mb": spec.memory_mb,
            }
            for name, spec in runtime.functions.items()
        }

    def save_records(self) -> list[dict[str, Any]]:
        if self.stack.runtime is not None:
            self.stack.runtime.wait_for_async()  # FAILED records arrive asynchronously
        self._records_saved_after = len(self.stack.ended)
        items = _scan(_table(self.stack))
        self.state.save_records(items)
        return items


def _table(stack: LocalStack) -> Any:
    import boto3

    return boto3.resource(
        "dynamodb",
        endpoint_url=stack.endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ).Table(stack.table_name)


def _scan(table: Any) -> list[dict[str, Any]]:
    items, start = [], None
    while True:
        page = table.scan(**({"ExclusiveStartKey": start} if start else {}))
        items += [to_json(item) for item in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items
