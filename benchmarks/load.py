"""Load: N uploads through the local stack, every record and thumbnail checked, wall time and peak memory.

``python benchmarks/load.py [--uploads 1000]``. The uploads are small distinct JPEGs, so the
figure is the pipeline's own capacity (events, executions, Lambda invocations, S3 and
DynamoDB traffic), not image work. tests/test_load.py runs the same check in CI.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_uploads(folder: Path, count: int) -> list[str]:
    """``count`` distinct small JPEGs in a few folders; returns their keys."""
    from PIL import Image, ImageDraw

    keys = []
    for index in range(count):
        image = Image.new("RGB", (96, 64), (index % 256, (index // 256) * 40 % 256, 120))
        ImageDraw.Draw(image).text((4, 4), str(index), fill=(255, 255, 255))
        key = f"batch-{index % 10}/photo {index:04}.jpg"
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=90)
        path.write_bytes(out.getvalue())
        keys.append(key)
    return keys


def run_load(count: int, workdir: Path) -> dict[str, object]:
    """Run ``thumbs run`` on ``count`` uploads; return what it produced and what it cost."""
    from thumbs.cli import main as thumbs
    from thumbs.local.state import StateFolder
    from thumbs.template import load_template

    keys = write_uploads(workdir / "in", count)
    load_template(StateFolder(workdir / "state").cache_dir)
    start = time.perf_counter()
    code = thumbs(["--state", str(workdir / "state"), "run", str(workdir / "in"), "--out", str(workdir / "out")])
    wall = time.perf_counter() - start
    records = [json.loads(line) for line in (workdir / "out" / "records.jsonl").read_text().splitlines()]
    files = [p for p in (workdir / "out").rglob("*.jpg") if p.is_file()]
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = json.loads((workdir / "out" / "report.json").read_text())["functions"]
    workers = max(r["max_memory_used_mb"] for r in report.values())
    return {
        "code": code,
        "keys": keys,
        "records": records,
        "thumbnail_files": len(files),
        "wall_s": wall,
        "peak_rss_runner_mb": own,
        "peak_rss_largest_worker_mb": workers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run_load(args.uploads, Path(tmp))
    records = result["records"]
    succeeded = sum(1 for r in records if r["status"] == "SUCCEEDED")
    print(
        f"{args.uploads} uploads: {len(records)} records, {succeeded} SUCCEEDED, "
        f"{result['thumbnail_files']} thumbnails in {result['wall_s']:.1f} s "
        f"({args.uploads / result['wall_s']:.1f}/s); peak RSS runner {result['peak_rss_runner_mb']:.0f} MB, "
        f"largest worker {result['peak_rss_largest_worker_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
