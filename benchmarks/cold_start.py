"""Each handler's cold import, with the X-Ray SDK loaded at import (as before) and without (now),
and what its first invocation adds: the SDK's import and its first clients.

``python benchmarks/cold_start.py [--runs 7] [--bundles]``. Each figure is the median of
``--runs`` fresh interpreters that import the handler from ``functions/``, as Lambda imports it
from ``/var/task``; the two columns differ only in ``TRACE_AWS_CALLS``. The handlers make their
boto3 clients on first use, so a cold start pays that inside the first invocation: the
``first clients`` column times those calls (``awsio.aws_client``/``aws_table``, no request
made) right after the import, in the same fresh process. ``--bundles`` also
builds each function's bundle for Lambda (pip, manylinux arm64, 3.14 bytecode) and gives its
size.

The second table is the import as Lambda does it: from a bundle it cannot write ``__pycache__``
into. Each function's packages are installed with ``pip --target`` for this machine's Python,
then imported in fresh ``python -I -B`` processes (the standard library and boto3 keep their
bytecode, as in Lambda's runtime): first with no bytecode in the bundle (every module compiled
at import, as Lambda did until the bundles carried 3.14's), then with the unchecked-hash
bytecode ``compileall`` writes (what ``pipeline/bytecode.py`` writes for 3.14), and last with that
bytecode after ``awslambdaric.bootstrap`` is imported. awslambdaric is the runtime interface
client of Lambda's Python runtimes: on Lambda it has loaded (``logging``, ``json``,
``traceback``, ``decimal``, ...) before it imports the handler, so a module that both import
costs the handler nothing there. That last column is the one the 100 ms goal is read from.

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
# What each handler's first invocation makes (the calls in its handler.py)
CLIENTS = {
    "validate": "aws_client('s3')",
    "resize": "aws_client('s3')",
    "record": "aws_table('records'); aws_client('s3')",
    "plan": "aws_client('dynamodb')",
}
_FIRST = (
    "import time; import {0}.handler; from awsio import aws_client, aws_table; t = time.perf_counter(); {1}; "
    "print(time.perf_counter() - t)"
)


def import_ms(handler: str, trace_aws_calls: bool, child: str = _CHILD) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "functions"),
        "TRACE_AWS_CALLS": "true" if trace_aws_calls else "false",
        "POWERTOOLS_SERVICE_NAME": f"thumbnails-{handler}",
        "AWS_REGION": "us-east-1",  # as on Lambda (both set): a client is made without a request
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run(
        [sys.executable, "-c", child.format(handler, CLIENTS[handler])],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(done.stdout.strip()) * 1000


def bundle_mb(handler: str) -> float:
    from pipeline.bundling import build_bundle

    with tempfile.TemporaryDirectory() as folder:
        build_bundle(handler, Path(folder), "arm64")
        size = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
    return size / 2**20


_BUNDLE_CHILD = (
    "import sys; sys.path.insert(0, {0!r}); sys.path.append({1!r}); {3}; import time; t = time.perf_counter(); "
    "import {2}.handler; print(time.perf_counter() - t)"
)
_RUNTIME = "import awslambdaric.bootstrap"  # what Lambda's runtime has imported before the handler


def bundle_import_ms(handler: str, bundle: Path, before: str = "pass") -> float:
    """One import of ``handler`` from ``bundle`` in a fresh ``python -I -B`` (boto3 from this venv),
    after the statement ``before``."""
    import sysconfig

    child = _BUNDLE_CHILD.format(str(bundle), sysconfig.get_paths()["purelib"], handler, before)
    env = {**os.environ, "TRACE_AWS_CALLS": "false", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
    command = [sys.executable, "-I", "-B", "-c", child]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip()) * 1000


def bytecode_rows(runs: int) -> None:
    """The handlers imported from a bundle without bytecode, with it, and with it after the runtime."""
    import compileall
    import py_compile
    import shutil

    from pipeline.bundling import FUNCTIONS_DIR, SHARED_PACKAGES

    print(f"\nImport from a bundle, median of {runs} fresh 'python -I -B' processes")
    print(f"{'handler':<10}{'no bytecode':>13}{'bytecode':>10}{'ratio':>8}{'after runtime':>15}")
    for handler in HANDLERS:
        with tempfile.TemporaryDirectory() as folder:
            bundle = Path(folder)
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                 "--no-compile", "--target", str(bundle), "-r", str(FUNCTIONS_DIR / handler / "requirements.txt")],
                check=True, capture_output=True,
            )  # fmt: skip
            for package in (*SHARED_PACKAGES, handler):
                shutil.copytree(FUNCTIONS_DIR / package, bundle / package, ignore=shutil.ignore_patterns("__pycache__"))
            without = statistics.median(bundle_import_ms(handler, bundle) for _ in range(runs))
            compileall.compile_dir(
                bundle, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH, workers=1
            )
            # Interleaved, so a noisy moment hits both columns alike.
            pairs = [
                (bundle_import_ms(handler, bundle), bundle_import_ms(handler, bundle, _RUNTIME)) for _ in range(runs)
            ]
            with_, runtime = (statistics.median(p[i] for p in pairs) for i in (0, 1))
        print(f"{handler:<10}{without:>11.0f}ms{with_:>8.0f}ms{with_ / without:>7.2f}x{runtime:>13.0f}ms")
    print("goal: at most 100 ms per handler, read from 'after runtime' (the import Lambda's Init Duration holds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--bundles", action="store_true")
    args = parser.parse_args()
    print(f"Cold import per handler, median of {args.runs} fresh processes (Python {sys.version.split()[0]})")
    print(
        f"{'handler':<10}{'SDK at import':>15}{'without':>10}{'ratio':>8}{'first clients':>15}"
        + (f"{'bundle MB':>12}" if args.bundles else "")
    )
    for handler in HANDLERS:
        # Interleaved, so a noisy moment hits every column alike.
        runs = [
            (import_ms(handler, True), import_ms(handler, False), import_ms(handler, False, _FIRST))
            for _ in range(args.runs)
        ]
        before, after, first = (statistics.median(r[i] for r in runs) for i in range(3))
        row = f"{handler:<10}{before:>13.0f}ms{after:>8.0f}ms{after / before:>7.2f}x{first:>13.0f}ms"
        print(row + (f"{bundle_mb(handler):>12.1f}" if args.bundles else ""))
    print("the first clients are paid by the first invocation; the 100 ms goal is read from the table below")
    bytecode_rows(args.runs)


if __name__ == "__main__":
    main()
