"""What the local stack adds on top of the image work: ``thumbs run`` against bare imaging, same batch.

The batch is N photographic 12 MP JPEGs (``--images``). The pipeline side is exactly ``thumbs
run``: put_object into moto, EventBridge, the Step Functions interpreter, the local Lambda
workers, S3 and DynamoDB over loopback. The bare side is the handlers' own imaging for the
same bytes (``handler_imaging.py``) in a pool of one process per core, with no AWS at all.
Both use every core; the ratio of wall times is the overhead. CPU seconds (user + system, all
processes) are printed beside them.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from handler_imaging import handlers

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def make_batch(folder: Path, count: int) -> list[Path]:
    import inputs
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    base = Image.open(inputs.load("24 MP JPEG", ROOT / "benchmarks" / ".inputs"))
    base.draft("RGB", (4000, 3000))
    base = base.convert("RGB").resize((4000, 3000))
    paths = []
    for index in range(count):  # different crops and offsets: no two files decode the same
        shifted = base.rotate(index * 3.7, resample=Image.Resampling.BILINEAR, fillcolor=(index, 80, 160))
        path = folder / f"photo-{index:03}.jpg"
        shifted.save(path, "JPEG", quality=88)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args()
    cores = os.cpu_count() or 2
    with tempfile.TemporaryDirectory() as tmp:
        batch = make_batch(Path(tmp) / "batch", args.images)
        size_mb = sum(p.stat().st_size for p in batch) / 2**20
        print(f"{args.images} x 12 MP JPEG ({size_mb:.0f} MB), sizes 128/256/1024, {cores} cores")

        cpu, start = cpu_seconds(), time.perf_counter()
        with ProcessPoolExecutor(max_workers=cores) as pool:
            list(pool.map(handlers, [str(p) for p in batch]))
        bare_wall, bare_cpu = time.perf_counter() - start, cpu_seconds() - cpu

        from thumbs.cli import main as thumbs
        from thumbs.local.state import StateFolder
        from thumbs.template import load_template

        load_template(StateFolder(Path(tmp) / "state").cache_dir)  # a one-off synth, cached for every later run
        cpu, start = cpu_seconds(), time.perf_counter()
        code = thumbs(
            ["--state", str(Path(tmp) / "state"), "run", str(Path(tmp) / "batch"), "--out", str(Path(tmp) / "out")]
        )
        pipe_wall, pipe_cpu = time.perf_counter() - start, cpu_seconds() - cpu
        shutil.rmtree(Path(tmp) / "out", ignore_errors=True)
    print(f"{'':<22}{'wall s':>8}{'images/s':>10}{'CPU s':>8}{'CPU use':>9}")
    for name, wall, used in (("bare imaging", bare_wall, bare_cpu), ("thumbs run", pipe_wall, pipe_cpu)):
        print(f"{name:<22}{wall:>8.1f}{args.images / wall:>10.2f}{used:>8.1f}{used / wall / cores:>9.0%}")
    print(f"pipeline / bare: {pipe_wall / bare_wall:.2f}x wall, {pipe_cpu / bare_cpu:.2f}x CPU (exit code {code})")


if __name__ == "__main__":
    main()
