"""A burst: N uploads at once against a Lambda concurrency limit; how long the backlog takes to drain.

``python benchmarks/burst.py [--uploads 500] [--concurrency 2]``. Every upload is put at once
(eight threads, no pacing), so the executions start together and their Invokes meet the
account's concurrency limit as on AWS: past it Lambda throttles, and the tasks' throttle
retrier (pipeline/workflow.py) waits the backlog out. It prints the drain with the limit
beside the same burst without one, and the ratio. tests/test_bursts.py runs the limited one
and checks that nothing failed. ``thumbs burst`` simulates the same on AWS at full scale.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import write_uploads


def run_burst(count: int, workdir: Path, concurrency: int | None) -> dict[str, Any]:
    """Put ``count`` uploads at once on a fresh local stack; wait until every execution ended."""
    from thumbs.local.session import Session
    from thumbs.local.state import StateFolder
    from thumbs.template import load_template

    keys = write_uploads(workdir / "in", count)
    bodies = {key: (workdir / "in" / key).read_bytes() for key in keys}
    state = StateFolder(workdir / "state")
    load_template(state.cache_dir)
    with Session(state, outputs=False, concurrency=concurrency) as session:
        s3 = session.client("s3")
        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: s3.put_object(Bucket=session.upload_bucket, Key=key, Body=bodies[key]), keys))
        uploaded = time.perf_counter() - start
        finished = session.stack.wait_for_executions(count, timeout=3600)
        drained = time.perf_counter() - start
        runtime = session.stack.runtime
        assert runtime is not None
        records = session.save_records()
        return {
            "finished": finished,
            "keys": keys,
            "records": records,
            "executions": state.executions(),
            "upload_s": uploaded,
            "drain_s": drained,
            "throttles": sum(runtime.throttles.values()),
            "invocations": sum(runtime.invocations.values()),
            "peak_concurrency": runtime.peak_concurrency,
        }


def summary(result: dict[str, Any]) -> str:
    statuses: dict[str, int] = {}
    for execution in result["executions"]:
        statuses[execution["status"]] = statuses.get(execution["status"], 0) + 1
    return (
        f"drained in {result['drain_s']:.1f} s (uploads put in {result['upload_s']:.1f} s); "
        f"executions {dict(sorted(statuses.items()))}; {result['invocations']} invocations, "
        f"{result['throttles']} throttled; at most {result['peak_concurrency']} at once"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    results = {}
    for label, limit in ((f"--concurrency {args.concurrency}", args.concurrency), ("no limit", None)):
        with tempfile.TemporaryDirectory() as tmp:
            results[label] = run_burst(args.uploads, Path(tmp), limit)
        print(f"{args.uploads} uploads at once, {label}: {summary(results[label])}", flush=True)
    limited, free = (r["drain_s"] for r in results.values())
    print(f"drain with the limit / without: {limited / free:.2f}x")


if __name__ == "__main__":
    main()
