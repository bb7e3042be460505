"""Each handler's cold import, with the X-Ray SDK loaded at import (as before) and without (now).

``python benchmarks/cold_start.py [--runs 7] [--bundles]``. Each figure is the median of
``--runs`` fresh interpreters that import the handler from ``functions/``, as Lambda imports it
from ``/var/task``; the two columns differ only in ``TRACE_AWS_CALLS``. ``--bundles`` also
builds each function's bundle for Lambda (pip, manylinux arm64) and gives its size.

This machine's Python is not Lambda's 3.14 on arm64, so the figures are for comparing, not for
predicting Lambda's Init Duration.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = ("validate", "resize", "record", "plan")
_CHILD = "import time; t = time.perf_counter(); import {0}.handler; print(time.perf_counter() - t)"


def import_ms(handler: str, trace_aws_calls: bool) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "functions"),
        "TRACE_AWS_CALLS": "true" if trace_aws_calls else "false",
        "POWERTOOLS_SERVICE_NAME": f"thumbnails-{handler}",
    }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(handler)], env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip()) * 1000


def bundle_mb(handler: str) -> float:
    from pipeline.bundling import build_bundle

    with tempfile.TemporaryDirectory() as folder:
        build_bundle(handler, Path(folder), "arm64")
        size = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
    return size / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--bundles", action="store_true")
    args = parser.parse_args()
    print(f"Cold import per handler, median of {args.runs} fresh processes (Python {sys.version.split()[0]})")
    print(
        f"{'handler':<10}{'SDK at import':>15}{'without':>10}{'ratio':>8}"
        + (f"{'bundle MB':>12}" if args.bundles else "")
    )
    for handler in HANDLERS:
        # Interleaved, so a noisy moment hits both columns alike.
        pairs = [(import_ms(handler, True), import_ms(handler, False)) for _ in range(args.runs)]
        before = statistics.median(p[0] for p in pairs)
        after = statistics.median(p[1] for p in pairs)
        row = f"{handler:<10}{before:>13.0f}ms{after:>8.0f}ms{after / before:>7.2f}x"
        print(row + (f"{bundle_mb(handler):>12.1f}" if args.bundles else ""))
    print("goal: at most 100 ms per handler")


if __name__ == "__main__":
    main()
