"""The Map design, measured: the pipeline's imaging work per image against one decode for all sizes.

* pipeline (now): Validate decodes once at the largest size and writes the intermediate;
  each Resize reads it and cuts its own size.
* per-size decode (before): Validate decoded at the smallest size to check the pixels and
  each Resize decoded the original again at the DCT scale its size needs.
* one decode: a single process decoding once and deriving every size, the lower bound.

Also printed: Lambda GB-seconds per image at the configured MemorySize, for
the imaging work alone (cold starts, S3 and DynamoDB calls come on top).
"""

from __future__ import annotations

import io
import statistics
import time
from pathlib import Path

import inputs
from handler_imaging import resize_part, validate_part
from imaging import ImagingSettings, choose_format, make_thumbnail, probe
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

# Lambda gives a function CPU in proportion to memory, one full vCPU at 1,769 MB. For
# single-threaded work below that, duration x memory is constant: a second of one core costs
# 1,769 MB-seconds whatever MemorySize is chosen. I/O waits and cold starts come on top.
GB_SECONDS_PER_CORE_SECOND = 1769 / 1024
REPEATS = 3


def pipeline_work(data: bytes, settings: ImagingSettings) -> tuple[float, float]:
    """(validate ms, sum of per-size resize ms) as the state machine runs them now."""
    start = time.perf_counter()
    stored, upright, fmt = validate_part(data, settings)
    validate = time.perf_counter() - start
    start = time.perf_counter()
    for size in settings.sizes:
        resize_part(stored, upright, size, settings, fmt)
    return validate * 1000, (time.perf_counter() - start) * 1000


def per_size_decode(data: bytes, settings: ImagingSettings) -> float:
    """The design before: a check decode in validate, then every size from the original."""
    start = time.perf_counter()
    fmt = choose_format(probe(data, settings), settings)
    make_thumbnail(data, min(settings.sizes), settings, fmt)
    for size in settings.sizes:
        make_thumbnail(data, size, settings, fmt)
    return (time.perf_counter() - start) * 1000


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
    print(f"sizes {list(settings.sizes)}, median of {REPEATS}, ms on one core; GB-s = core-seconds x 1.769 GB")
    print(
        f"{'input':<24}{'validate':>9}{'resizes':>9}{'pipeline':>9}{'before':>8}{'one decode':>11}"
        f"{'ratio':>7}{'GB-s now':>9}{'before':>8}"
    )
    for name in inputs.INPUTS:
        data = inputs.load(name, cache).read_bytes()
        runs = [pipeline_work(data, settings) for _ in range(REPEATS)]
        validate = statistics.median(r[0] for r in runs)
        resizes = statistics.median(r[1] for r in runs)
        before = statistics.median(per_size_decode(data, settings) for _ in range(REPEATS))
        floor = statistics.median(single_decode(data, settings) for _ in range(REPEATS))
        total = validate + resizes
        print(
            f"{name:<24}{validate:>9.0f}{resizes:>9.0f}{total:>9.0f}{before:>8.0f}{floor:>11.0f}"
            f"{total / floor:>7.2f}{total / 1000 * GB_SECONDS_PER_CORE_SECOND:>9.3f}"
            f"{before / 1000 * GB_SECONDS_PER_CORE_SECOND:>8.3f}"
        )


if __name__ == "__main__":
    main()
