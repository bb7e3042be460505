"""Start time and peak memory of the local stack: an empty state folder beside one with N earlier uploads.

``python benchmarks/state_start.py [--uploads 10000]``. The history is written straight into
the state folder's store, as ``thumbs run`` would have left it: per upload one object, three
thumbnails, a record and a saved execution. Each start runs in a fresh process (deploy, then
stop) three times; the table gives the median wall time and the peak RSS of each, side by side.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import sys, time
started = time.perf_counter()
from pathlib import Path
from thumbs.local.session import Session
from thumbs.local.state import StateFolder
with Session(StateFolder(Path(sys.argv[1]))) as session:
    ready = time.perf_counter() - started
    assert session.store.writes == 0
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(ready, peak / 1024)
"""


def write_history(home: Path, uploads: int) -> None:
    """``uploads`` earlier uploads, with their thumbnails, records and executions, in the store."""
    from PIL import Image

    from thumbs.local.session import Session
    from thumbs.local.state import StateFolder
    from thumbs.local.store import Store

    state = StateFolder(home)
    with Session(state) as session:  # deploys once: the template's bucket and table names
        upload_bucket, thumbnail_bucket = session.stack.upload_bucket, session.stack.thumbnail_bucket
        table, machine = session.stack.table_name, session.stack.state_machine_arn
    store = Store(home)
    modified = "2026-11-01T00:00:00"
    meta = {"metadata": {"Content-Type": "image/jpeg"}}
    for index in range(uploads):
        out = io.BytesIO()
        Image.new("RGB", (64, 48), (index % 256, index // 256 % 256, 90)).save(out, "JPEG")
        data = out.getvalue()
        key = f"photos/{index:05d}.jpg"
        blob = store.put_blob(data)
        store.put_object(upload_bucket, key, blob, f'"{index:032x}"', len(data), modified, meta)
        for size in (128, 256, 1024):
            store.put_object(thumbnail_bucket, f"{size}/{key}.jpg", blob, '"0"', len(data), modified, meta)
        source = f"s3://{upload_bucket}/{key}"
        item = {"source_id": {"S": source}, "status": {"S": "SUCCEEDED"}, "key": {"S": key}}
        store.put_item(table, json.dumps({"S": source}, sort_keys=True), item)
        name = f"{index:08d}-0000-0000-0000-000000000000"
        arn = machine.replace(":stateMachine:", ":execution:") + f":{name}"
        events = [{"id": 1, "previousEventId": 0, "type": "ExecutionStarted", "timestamp": modified}]
        state.save_execution(
            {"executionArn": arn, "name": name, "status": "SUCCEEDED", "startDate": modified, "stopDate": modified,
             "input": {"detail": {"bucket": {"name": upload_bucket}, "object": {"key": key}}}, "events": events}
        )  # fmt: skip
    store.close()


def measure(home: Path, runs: int) -> tuple[float, float]:
    """Median seconds to a ready stack, and the largest peak RSS (MB), over ``runs`` fresh processes."""
    times, peaks = [], []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", _CHILD, str(home)], capture_output=True, text=True, check=True)
        ready, peak = map(float, done.stdout.split())
        times.append(ready)
        peaks.append(peak)
    return statistics.median(times), max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        empty, full = Path(tmp) / "empty", Path(tmp) / "full"
        from thumbs.local.state import StateFolder
        from thumbs.template import load_template

        load_template(StateFolder(empty).cache_dir)  # the synth is not what is measured
        load_template(StateFolder(full).cache_dir)
        started = time.perf_counter()
        write_history(full, args.uploads)
        print(f"history of {args.uploads} uploads written in {time.perf_counter() - started:.0f} s")
        rows = [("empty folder", *measure(empty, args.runs)), (f"{args.uploads} uploads", *measure(full, args.runs))]
    print(f"{'state folder':<16}{'start s':>9}{'peak RSS MB':>13}")
    for name, seconds, peak in rows:
        print(f"{name:<16}{seconds:>9.2f}{peak:>13.0f}")
    (_, base_s, base_mb), (_, full_s, full_mb) = rows
    print(f"difference: {full_s - base_s:+.2f} s ({full_s / base_s:.2f}x), {full_mb - base_mb:+.0f} MB")


if __name__ == "__main__":
    main()
