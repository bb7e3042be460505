"""Peak memory and time of one Validate and one Resize (1024 px) run, each in a fresh process.

The functions' MemorySize and the default pixel limit come from these figures (docs/performance.md,
"Memory"). Run: ``.venv/bin/python benchmarks/memory.py``. Prints one row per input and stage:
peak RSS above the interpreter with the core imported and the object read, and wall time.
Linux only (it reads VmHWM from /proc).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INPUTS = [
    ("jpeg", 12), ("jpeg", 24), ("jpeg", 50), ("jpeg", 100), ("png", 50), ("png", 100), ("rgba-png", 100),
    ("webp", 100), ("rgba-webp", 100),
]  # fmt: skip
_SAVE = {
    "jpeg": ("JPEG", {"quality": 90}),
    "png": ("PNG", {"compress_level": 1}),
    "rgba-png": ("PNG", {"compress_level": 1}),
    "webp": ("WEBP", {"quality": 80, "method": 0}),  # method 0: the fastest encoder, for the bench's own set-up
    "rgba-webp": ("WEBP", {"quality": 80, "method": 0}),
}

_CHILD = r"""
import sys, time, json
def high_water_kb():  # VmHWM: peak RSS of this process image (ru_maxrss would inherit the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
from imaging import (ImagingSettings, choose_format, fit_within, intermediate_bytes, prepare, probe,
                     read_intermediate, thumbnail_from, upright_size)
data = open(sys.argv[1], "rb").read()
settings = ImagingSettings()
facts = probe(data, settings)
fmt = choose_format(facts, settings)
stored = intermediate_bytes(prepare(data, max(settings.sizes), settings)) if sys.argv[2] != "validate" else None
base = high_water_kb()
start = time.perf_counter()
if sys.argv[2] == "validate":  # the one full decode, and the intermediate it leaves
    intermediate_bytes(prepare(data, max(settings.sizes), settings))
else:  # one Map iteration: its size cut from the intermediate
    size = fit_within(*upright_size(facts.width, facts.height, facts.orientation), int(sys.argv[2]))
    thumbnail_from(read_intermediate(stored), *size, settings, fmt)
elapsed = time.perf_counter() - start
peak = high_water_kb()
print(json.dumps({"peak_mb": (peak - base) / 1024, "ms": elapsed * 1000, "input_mb": len(data) / 2**20}))
"""


def make_input(fmt: str, megapixels: int, folder: Path) -> Path:
    from PIL import Image

    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(megapixels * 1e6 / width)
    gradient = Image.radial_gradient("L").resize((width, height))
    image = gradient.convert("RGBA" if fmt.startswith("rgba") else "RGB")
    if fmt == "rgba-webp":
        image.putalpha(gradient)  # WebP drops an alpha plane that is opaque everywhere
    path = folder / f"{megapixels}mp.{fmt}.img"
    out = io.BytesIO()
    kind, options = _SAVE[fmt]
    image.save(out, kind, **options)
    path.write_bytes(out.getvalue())
    return path


def main() -> None:
    print(f"{'input':<14}{'MB':>7}  {'stage':<9}{'peak RSS MB':>12}{'ms':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, megapixels in INPUTS:
            path = make_input(fmt, megapixels, Path(tmp))
            for stage in ("validate", "1024"):
                result = subprocess.run(
                    [sys.executable, "-c", _CHILD, str(path), stage],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                row = json.loads(result.stdout)
                name = "validate" if stage == "validate" else f"resize {stage}"
                print(f"{fmt + ' ' + str(megapixels) + ' MP':<14}{row['input_mb']:>7.1f}  {name:<9}"
                      f"{row['peak_mb']:>12.0f}{row['ms']:>9.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
