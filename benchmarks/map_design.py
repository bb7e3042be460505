"""The Map design, measured: one decode per size (what the pipeline does) against one decode for all.

Per image the pipeline runs Validate (probe + a decode at the smallest size, to reject
corrupt pixels before anything is written) and one Resize per size, each decoding the
source again at the DCT scale its own size needs. The alternative, one process decoding
once for the largest size and deriving the smaller ones from it, is the lower bound on
imaging work. Also printed: Lambda GB-seconds per image at the configured MemorySize, for
the imaging work alone (cold starts, S3 and DynamoDB calls come on top).
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions"), str(Path(__file__).resolve().parent)]

import inputs  # noqa: E402
from imaging import ImagingSettings, choose_format, make_thumbnail, probe  # noqa: E402
from PIL import Image  # noqa: E402

MEMORY_GB = 1536 / 1024
REPEATS = 3


def pipeline_work(data: bytes, settings: ImagingSettings) -> tuple[float, float]:
    """(validate ms, sum of per-size resize ms) as the state machine runs them."""
    start = time.perf_counter()
    fmt = choose_format(probe(data, settings), settings)
    make_thumbnail(data, min(settings.sizes), settings, fmt)
    validate = time.perf_counter() - start
    start = time.perf_counter()
    for size in settings.sizes:
        make_thumbnail(data, size, settings, fmt)
    return validate * 1000, (time.perf_counter() - start) * 1000


def single_decode(data: bytes, settings: ImagingSettings) -> float:
    """The floor: decode once for the largest size, derive every smaller one from that."""
    start = time.perf_counter()
    fmt = choose_format(probe(data, settings), settings)
    largest = make_thumbnail(data, max(settings.sizes), settings, fmt)
    base = Image.open(io.BytesIO(largest.data))
    base.load()
    for size in sorted(settings.sizes)[:-1]:
        copy = base.copy()
        copy.thumbnail((size, size), Image.Resampling.LANCZOS)
        copy.save(io.BytesIO(), "JPEG" if fmt == "jpeg" else fmt.upper(), quality=85)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    settings = ImagingSettings()
    cache = ROOT / "benchmarks" / ".inputs"
    print(f"sizes {list(settings.sizes)}, MemorySize {MEMORY_GB * 1024:.0f} MB, median of {REPEATS}")
    print(f"{'input':<24}{'validate':>9}{'resizes':>9}{'pipeline':>9}{'one decode':>11}{'ratio':>7}{'GB-s/image':>11}")
    for name in inputs.INPUTS:
        data = inputs.load(name, cache).read_bytes()
        runs = [pipeline_work(data, settings) for _ in range(REPEATS)]
        validate = statistics.median(r[0] for r in runs)
        resizes = statistics.median(r[1] for r in runs)
        floor = statistics.median(single_decode(data, settings) for _ in range(REPEATS))
        total = validate + resizes
        print(
            f"{name:<24}{validate:>9.0f}{resizes:>9.0f}{total:>9.0f}{floor:>11.0f}{total / floor:>7.2f}"
            f"{total / 1000 * MEMORY_GB:>11.3f}"
        )


if __name__ == "__main__":
    main()
