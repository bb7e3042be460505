"""One command's local stack: the template deployed on moto, bound to the state folder.

The buckets and the table read and write the state folder's store as requests need them, so
nothing is loaded at start and nothing runs again. Each execution is saved with its full
history as it ends, and the records table is written out as ``records.json`` when it changed.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from ..template import load_template
from ..terminal import progress
from . import moto_internals
from .lambda_runtime import FaultSwitch
from .stack import ACCOUNT, REGION, LocalStack
from .state import StateFolder

SLOW_EXECUTION_SECONDS = 600.0  # past this, an upload goes ahead anyway: a stuck execution must not stop a run


class Session:
    """A deployed local stack bound to the state folder: its store, its executions and records.json."""

    def __init__(
        self,
        state: StateFolder,
        *,
        port: int | None = None,
        faults: FaultSwitch | None = None,
        template: dict[str, Any] | None = None,
        outputs: bool = True,
        code_dir: Path | None = None,
        concurrency: int | None = None,
    ) -> None:
        """``template`` replaces the project's (tests deploy a changed cdk.json this way); default: load it.

        ``outputs=False`` skips the CloudFormation stack that lets ``thumbs --stack`` code find
        this one (about 1 s of moto imports): ``thumbs run`` reaches its own stack directly.
        ``concurrency`` is the account's Lambda concurrency limit (``--concurrency``).
        """
        self.state = state
        self.outputs = outputs
        template = template or load_template(state.cache_dir)
        self.store = state.store()
        self.stack = LocalStack(
            template,
            state.root,
            port=port,
            faults=faults,
            concurrency=concurrency,
            on_execution_end=self._ended,
            load_execution=state.load_execution,
            stored_executions=state.execution_summaries,
            store=self.store,
            **({"code_dir": code_dir} if code_dir is not None else {}),
        )
        state.import_earlier_format(self.store, self.stack.upload_bucket, self.stack.table_name)
        from ..console.app import Console

        self.stack.console = Console(
            self.stack,
            state,
            self.record,
            lambda status, offset, limit: state.record_page(self.store, self.stack.table_name, status, offset, limit),
        )
        self._saving: list[threading.Thread] = []  # saves still running (finished ones are dropped)
        self._saving_lock = threading.Lock()
        self._records_exported_at = self.store.item_writes
        self._definitions: dict[str, str] = {}  # state machine ARN -> definition hash, saved once

    def __enter__(self) -> Session:
        self.stack.start()
        self.stack.deploy(register_outputs=self.outputs)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._join_saving()
            if self.stack.runtime is not None:
                self.stack.runtime.wait_for_async()  # FAILED records arrive asynchronously
            if self.store.item_writes != self._records_exported_at:
                self._records_exported_at = self.store.item_writes
                self.state.export_records(self.store, self.stack.table_name)
        finally:
            self.stack.stop()
            self.store.close()

    def forget_definitions(self) -> None:
        """The state machines were updated: the next execution of each saves its definition again."""
        self._definitions.clear()

    def _ended(self, detail: dict[str, Any]) -> None:
        thread = threading.Thread(target=self._save_execution, args=(detail,), daemon=True)
        with self._saving_lock:  # started under the lock: a waiter never sees it unstarted
            thread.start()
            self._saving = [t for t in self._saving if t.is_alive()] + [thread]

    def _join_saving(self) -> None:
        with self._saving_lock:
            pending = list(self._saving)
        for thread in pending:
            thread.join()

    def _save_execution(self, detail: dict[str, Any]) -> None:
        # Straight from the interpreter (seam in moto_internals): through the API, moto's
        # serializer would spend more of the server's time on each history than the images did.
        ended = moto_internals.ended_execution(ACCOUNT, REGION, detail["executionArn"])
        machine = ended["stateMachineArn"]
        if machine not in self._definitions:  # what a later process redrives this execution with
            definition = self.stack.client("stepfunctions").describe_state_machine(stateMachineArn=machine)
            self._definitions[machine] = self.state.save_definition(definition["definition"])
        earlier = self.state.load_execution(ended["executionArn"]) or {}
        self.state.save_execution(
            {
                **ended,
                "input": json.loads(ended["input"] or "null"),
                "output": json.loads(ended["output"]) if ended["output"] else None,
                "replayOf": earlier.get("replayOf"),
                "definitionHash": self._definitions[machine],
            }
        )
        # Saved: moto need not hold it any more (a request that names it restores it from the file).
        moto_internals.forget_execution(ACCOUNT, REGION, ended["executionArn"])

    def upload(self, key: str, data: bytes) -> None:
        self.stack.client("s3").put_object(Bucket=self.stack.upload_bucket, Key=key, Body=data)

    @property
    def upload_bucket(self) -> str:
        return self.stack.upload_bucket

    @property
    def thumbnail_bucket(self) -> str:
        return self.stack.thumbnail_bucket

    def client(self, service: str) -> Any:
        return self.stack.client(service)

    def wait_for_room(self, in_flight: int) -> None:
        """Block while ``in_flight`` executions or more are running."""
        room = self.stack.started_executions - in_flight + 1
        self.stack.wait_for_executions(room, timeout=SLOW_EXECUTION_SECONDS, settle=False)

    def wait_for_uploads(self, label: str) -> bool:
        """Wait for every execution started so far, and the FAILED records they send asynchronously."""
        done = self.wait(self.stack.started_executions, label)
        if self.stack.runtime is not None:
            self.stack.runtime.wait_for_async()
        return done

    def wait(self, expected: int, label: str) -> bool:
        with progress(label) as bar:
            task = bar.add_task(label, total=expected)
            done = self.stack.wait_for_executions(expected, progress=lambda n: bar.update(task, completed=n))
        self._join_saving()
        return done

    def function_report(self) -> dict[str, dict[str, Any]]:
        """Per function, what Lambda's REPORT lines say: invocations and max memory used against MemorySize."""
        return self.stack.function_report()

    def save_records(self) -> list[dict[str, Any]]:
        """Every record, as plain values, written out as ``records.json`` (one item per source_id)."""
        if self.stack.runtime is not None:
            self.stack.runtime.wait_for_async()  # FAILED records arrive asynchronously
        self._records_exported_at = self.store.item_writes
        self.state.export_records(self.store, self.stack.table_name)
        return list(self.state.iter_records(self.store, self.stack.table_name))

    def record(self, source_id: str) -> dict[str, Any] | None:
        """One record, as plain values, straight from the store."""
        return self.state.record(self.store, self.stack.table_name, source_id)

    def thumbnail_file(self, key: str) -> Path | None:
        """The file that holds a thumbnail's bytes (the store's blob), or None if the bucket has no such key.

        ``thumbs run --out`` copies from here rather than GETting each thumbnail from the local S3:
        through the SDK and moto, 120 small GETs cost the process that serves the stack about
        0.5 s of its one GIL after the last execution ended. Every request's changes reach the
        store before its answer is sent, so an ended execution's thumbnails are here.
        """
        row = self.store.get_object(self.stack.thumbnail_bucket, key)
        return None if row is None else self.store.blob_path(row["blob"])
