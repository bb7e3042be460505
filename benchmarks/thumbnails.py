"""Thumbnail speed, memory and quality: ours against naive Pillow, a full decode, and libvips.

``make bench`` runs this. Time is decode + resize + encode, as a Lambda does it: every method
runs in one process, in turn, for several rounds (after one to warm up), and each ratio is the
median of the ratios within a round, so that it compares runs seconds apart on a machine whose
speed drifts. Peak RSS is measured apart, for ours and libvips, each in a fresh process: VmHWM
after one thumbnail (one invocation's) above the RSS after the imports (a handler's for ours,
pyvips for libvips) and reading the file.

Methods:
* ours: ``imaging.make_thumbnail`` (JPEG DCT-scaled decode, WebP decoded at the target by
  libwebp's scaler, reduce, Lanczos, orientation and colour at the small size);
* naive: ``Image.open`` + ``thumbnail((s, s), LANCZOS)`` with Pillow's defaults + save (q85);
* full: ``Image.open`` + ``load()`` + ``resize(LANCZOS)`` of every pixel + save (q85);
* vips: libvips ``thumbnail_buffer`` (shrink-on-load) + save (Q85), through pyvips;
* floor: the decode alone, at the scale ours picks (``draft`` for JPEG, libwebp's scaled decode
  for a still WebP, else the full image). No thumbnail can be made faster in Pillow; ``/floor``
  is ours against it.
* alt: the decode swapped for a format-specific library (issue 17's candidates), then Pillow
  as ours does it (Lanczos, orientation, JPEG q85 or WebP q82 with alpha). JPEG: libjpeg-turbo's
  own scaled decode through simplejpeg, with every M/8 scale (3/8, 5/8, ...) where Pillow's
  ``draft`` has only 1/2, 1/4 and 1/8. PNG: libspng through pyspng. Other inputs: nan. It skips
  ours' colour management, so it bounds what the swap could gain. Its import (the library and
  numpy, which both need) is not in the time: see "Candidate decoders" in docs/performance.md.

libvips runs with one thread (VIPS_CONCURRENCY=1), as Pillow does: a Lambda below 1,769 MB
has less than one vCPU, so the single-core time is what an invocation pays for.

Quality is SSIM of each output's luminance against a reference: the full image decoded,
oriented and resized with Lanczos in one step (no shortcuts), both at the output's size.

Under the table, every row that this run measured above libvips (time or peak RSS) is listed with
by how much and why: from the floor column, whether the gap is in the decode or after it, and for
each format what Pillow cannot do there.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

SIZES = (128, 256, 1024)
METHODS = ("ours", "naive", "full", "vips", "floor", "alt")
# Why ours can be behind libvips on a row, printed under the table for any row this run measures
# above it (time or peak RSS). The floor column says which part: if Pillow's decode alone takes
# longer than libvips' whole thumbnail the gap is in the decode, else in what follows it. Keyed by
# the format Pillow reads in the input file.
DECODE_BEHIND = {
    "JPEG": "both decode with libjpeg-turbo at the same DCT scale, so this is not Pillow's: compare another run",
    "PNG": (
        "PNG has no scaled decode: Pillow inflates every row with the system's zlib (about half its "
        "decode) and unfilters without SIMD, where libvips reads with libspng. pyspng (the alt column) "
        "needs numpy in the bundle: 73 MB and 128-195 ms of import"
    ),
    "WEBP": "both decode with libwebp's scaler at the target size, so this is not Pillow's: compare another run",
    "TIFF": "both read every pixel, so this is not Pillow's: compare another run",
}
WHOLE_FRAME = (
    "Pillow's decoders write the whole frame before anything can shrink it, where libvips streams the "
    "image through its pipeline a strip at a time (the conversions after the decode, alpha premultiplied "
    "and 16 bits to 8, are done a band at a time, so the frame is the one full-size copy)"
)
MEMORY_BEHIND = {
    "WEBP": (
        "both decode with libwebp's scaler at the target size; where the difference goes (libwebp's own "
        "buffers, the output buffer, the encode) is not broken down here"
    ),
}
# Bytes a pixel in Pillow's memory, by mode: it keeps RGB in 4 (RGBX), where libvips keeps 3.
PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}
ENCODE_BEHIND = "no resample is left after the decode, so the gap is in the encode"
# Measured 2026-12-01 on this bench's inputs, Pillow and libvips alike (optimize_coding).
HUFFMAN = (
    ". Ours also optimizes the JPEG's Huffman tables, which libvips' default does not: about 5 ms at "
    "1024 px for 0.8-0.9 % fewer bytes (0.1 ms for 7-9 % at 128 px)"
)
RESAMPLE_BEHIND = "Pillow's Lanczos has no SIMD code (Pillow-SIMD, a fork, has), libvips' reduce has"


def jpeg_scales_note(source: tuple[int, int], output: tuple[int, int], decoded: str) -> str:
    """Whether a libjpeg-turbo M/8 scale would start the Lanczos pass nearer the target than ours does."""
    if (source[0] > source[1]) != (output[0] > output[1]):  # the output is upright, the source as stored
        output = (output[1], output[0])
    for eighths in range(1, 9):
        scaled = (-(-source[0] * eighths // 8), -(-source[1] * eighths // 8))
        if scaled[0] >= output[0] and scaled[1] >= output[1]:
            break
    if f"{scaled[0]}x{scaled[1]}" == decoded:
        return f". The decode is already at the nearest of libjpeg-turbo's M/8 scales ({eighths}/8)"
    return (
        f". libjpeg-turbo's {eighths}/8 scale ({scaled[0]}x{scaled[1]}) would start the pass nearer the "
        "target, but Pillow asks for 1/2, 1/4 or 1/8 only, and the odd scales alias fine patterns: a "
        "2 px stripe pattern came out striped at 3/8 where 1/2 and a Lanczos reference are flat grey "
        "(simplejpeg, the alt column, has every M/8 and needs numpy in the bundle: 73 MB, 128-195 ms of import)"
    )


def why_behind_vips(name: str, kind: str, source: tuple[int, int], size: int, row: dict[str, dict]) -> str | None:
    """A line saying by how much and why ours is behind libvips on this row, or None if it is not.

    The time ratios are the medians of ratios taken within a round (``ratio``, ``vs_vips``).
    """
    ours, vips, floor = row["ours"], row["vips"], row["floor"]
    slower = round(vips["ratio"], 2) > 1  # as the table shows it
    behind = []
    if slower:
        behind.append(f"{vips['ratio']:.2f}x its time")
    if ours["peak_mb"] > vips["peak_mb"]:
        behind.append(f"{ours['peak_mb']:.1f} MB against its {vips['peak_mb']:.1f} MB")
    if not behind:
        return None
    why = []
    decoded, _, mode = floor.get("decoded", "0x0 ?").partition(" ")
    if slower and floor["vs_vips"] >= 1:
        reason = DECODE_BEHIND.get(kind, "compare another run")
        why.append(f"the decode alone takes {floor['vs_vips']:.2f}x libvips' whole thumbnail: {reason}")
    elif slower:
        output = ours["image"].size if ours.get("image") else None
        pass_from = "" if decoded == f"{output[0]}x{output[1]}" else f"a Lanczos pass from {decoded}, "
        why.append(
            f"the {max(0, floor.get('after_ms', 0)):.0f} ms after the decode, {pass_from}the orientation and the "
            f"encode: {RESAMPLE_BEHIND if pass_from else ENCODE_BEHIND}"
            f"{jpeg_scales_note(source, output, decoded) if kind == 'JPEG' and output and pass_from else ''}"
            f"{HUFFMAN if ours.get('image') and ours['image'].format == 'JPEG' else ''}"
        )
    if ours["peak_mb"] > vips["peak_mb"]:
        width, height = (int(side) for side in decoded.split("x"))
        frame_mb = width * height * PIXEL_BYTES.get(mode, 4) / 2**20
        why.append(
            f"in memory, the decoded frame is {frame_mb:.0f} MB ({decoded}, {mode}): "
            f"{MEMORY_BEHIND.get(kind, WHOLE_FRAME)}"
        )
    return f"{name} at {size} px: {' and '.join(behind)}; {'; '.join(why)}."


def high_water_kb() -> int:
    return _status_kb("VmHWM:")


def memory_base_kb() -> int:
    """Where this process's peak RSS is measured from: its RSS now, with the high-water mark reset to it.

    The imports can leave a high-water mark above the RSS they settle at; measured from that
    mark, a run's own memory would be hidden under it. Linux resets the mark on writing 5 to
    ``clear_refs``; where that is refused, the mark is the base, as before.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return high_water_kb()
    return _status_kb("VmRSS:")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def _run_method(method: str, data: bytes, size: int) -> bytes:
    if method == "ours":
        from imaging import ImagingSettings, choose_format, make_thumbnail, probe

        settings = ImagingSettings()
        return make_thumbnail(data, size, settings, choose_format(probe(data, settings), settings)).data
    if method == "vips":
        import pyvips

        image = pyvips.Image.thumbnail_buffer(data, size)
        return image.write_to_buffer(".webp[Q=82]" if image.hasalpha() else ".jpg[Q=85]")
    from PIL import Image, ImageOps

    if method == "alt":
        return _alt(data, size)
    if method == "floor":
        from imaging.decode import still_webp
        from imaging.thumbnail import DRAFT_GAP, fit_within

        still = still_webp(data)
        if still is not None:  # libwebp's decode, scaled to the target as ours does it
            from imaging.webp import decode_scaled

            pixels = decode_scaled(data, still, fit_within(still.width, still.height, size))
            return f"{pixels.width}x{pixels.height} {pixels.mode}".encode()
        image = Image.open(io.BytesIO(data))
        if image.format in ("JPEG", "MPO"):
            target = fit_within(image.width, image.height, size)
            mode = image.mode if image.mode in ("RGB", "L") else None
            image.draft(mode, (int(target[0] * DRAFT_GAP), int(target[1] * DRAFT_GAP)))
        image.load()
        return f"{image.width}x{image.height} {image.mode}".encode()  # what the resample starts from

    image = Image.open(io.BytesIO(data))
    out = io.BytesIO()
    if method == "naive":
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
    else:
        image.load()
        scale = size / max(image.size)
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS
        )
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA"):
        image.convert("RGBA").save(out, "WEBP", quality=82)
    else:
        if image.mode not in ("RGB", "L"):
            if image.mode.startswith("I"):
                image = image.convert("I").point(lambda v: v / 257).convert("L")
            else:
                image = image.convert("RGB")
        image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _alt(data: bytes, size: int) -> bytes:
    """Decoded by a format-specific library (simplejpeg, pyspng), then Pillow as ours: Lanczos, orientation, save."""
    from imaging.thumbnail import DRAFT_GAP, fit_within
    from PIL import Image, ImageOps

    header = Image.open(io.BytesIO(data))  # the header only: size, mode, EXIF
    if header.format == "JPEG" and header.mode in ("RGB", "L"):
        import simplejpeg

        target = fit_within(header.width, header.height, size)
        pixels = simplejpeg.decode_jpeg(
            data,
            colorspace="RGB" if header.mode == "RGB" else "GRAY",
            min_width=int(target[0] * DRAFT_GAP),
            min_height=int(target[1] * DRAFT_GAP),
        )
        image = Image.fromarray(pixels if header.mode == "RGB" else pixels[:, :, 0])
    elif header.format == "PNG" and header.mode in ("RGB", "RGBA", "L"):
        import pyspng

        image = Image.fromarray(pyspng.load(data))
    else:
        raise ValueError("alt: 8-bit RGB or grey JPEG, and 8-bit PNG, only")
    image.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=2.0)
    image.info["exif"] = header.info.get("exif", b"")
    image = ImageOps.exif_transpose(image)
    out = io.BytesIO()
    if image.mode == "RGBA":
        image.save(out, "WEBP", quality=82)
    else:
        image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _import_for(method: str) -> None:
    """What the method's process would have loaded before its first thumbnail (import cost is not the work)."""
    if method == "vips":
        import pyvips

        # libvips' operation cache keeps earlier operations, which one invocation never has. It
        # served no repeat here (the times are the same without it), but it holds memory.
        pyvips.cache_set_max(0)
    elif method == "alt":
        import pyspng  # noqa: F401
        import simplejpeg  # noqa: F401
    else:
        from PIL import Image  # noqa: F401
    if method in ("ours", "floor"):
        import imaging.thumbnail  # noqa: F401 - what a handler imports at its init


def time_child(path: str, size: int, rounds: int, outdir: str) -> None:
    """Every method in one process, in turn, round after round: each ratio is taken within a round.

    On a shared machine the speed drifts by tens of percent over seconds; methods timed one
    after another in their own processes compared different moments. Here a round runs every
    method once (in alternating order), so a ratio pairs two runs seconds apart.
    """
    data = Path(path).read_bytes()
    for method in METHODS:
        _import_for(method)
    times: dict[str, list[float] | None] = {m: [] for m in METHODS}
    results: dict[str, bytes] = {}
    for turn in range(rounds + 1):  # round 0 warms up (plugins, libvips' operations) and is not kept
        for method in METHODS if turn % 2 else reversed(METHODS):
            kept = times[method]
            if kept is None:
                continue
            start = time.perf_counter()
            try:
                results[method] = _run_method(method, data, size)
            except Exception:  # noqa: BLE001 - e.g. naive Pillow cannot thumbnail() a 16-bit image
                times[method] = None
                continue
            if turn:
                kept.append((time.perf_counter() - start) * 1000)
    for method, result in results.items():
        if times[method] is not None:
            (Path(outdir) / method).write_bytes(result)
    print(json.dumps(times))


def memory_child(method: str, path: str, size: int, warm_up: str) -> None:
    """One invocation's peak RSS, in a process of its own: VmHWM above the RSS after the imports.

    A tiny image of the same format goes first, so that neither library's one-time setup
    (Pillow's plugins and libwebp's binding, libvips' operation classes) counts as the work.
    """
    data = Path(path).read_bytes()
    _import_for(method)
    _run_method(method, Path(warm_up).read_bytes(), size)
    base = memory_base_kb()
    _run_method(method, data, size)
    # One invocation's peak, the first: libvips' high-water mark kept growing over repeats
    # (24 MP JPEG at 128 px: 9 MB after one, 16 MB after five with its cache off, 34 MB with
    # it on), which made it look larger than one thumbnail costs it. Ours did not grow.
    print(json.dumps((high_water_kb() - base) / 1024))


def reference(path: Path, size: int) -> Image.Image:
    """The yardstick: every pixel decoded, oriented, one Lanczos pass, in 8-bit luminance."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(Image.open(path))
    if image.mode.startswith("I"):
        image = image.convert("I").point(lambda v: v / 257).convert("L")
    scale = min(1.0, size / max(image.size))
    target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.convert("RGBA").resize(target, Image.Resampling.LANCZOS)


def ssim(a: Image.Image, b: Image.Image) -> float:
    """Mean SSIM (Wang et al. 2004) of two luminance images, 7x7 uniform windows."""
    import numpy as np
    from PIL import Image

    if a.size != b.size:
        b = b.resize(a.size, Image.Resampling.LANCZOS)
    x = np.asarray(a.convert("L"), dtype=np.float64)
    y = np.asarray(b.convert("L"), dtype=np.float64)
    window = 7

    def mean_filter(z: np.ndarray) -> np.ndarray:
        padded = np.pad(z, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        return (
            padded[window:, window:]
            - padded[:-window, window:]
            - padded[window:, :-window]
            + padded[:-window, :-window]
        ) / window**2

    if min(x.shape) < window:
        return 1.0 if np.array_equal(x, y) else 0.0
    mx, my = mean_filter(x), mean_filter(y)
    vx = mean_filter(x * x) - mx * mx
    vy = mean_filter(y * y) - my * my
    cxy = mean_filter(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    score = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(score.mean())


def on_background(image: Image.Image) -> Image.Image:
    """Flatten alpha onto white so outputs with and without alpha compare pixel for pixel."""
    from PIL import Image

    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    canvas.alpha_composite(rgba)
    return canvas


def _median_ratio(times: dict[str, list[float] | None], a: str, b: str) -> float:
    """The median over rounds of a's time over b's in the same round; nan if either failed."""
    if not times[a] or not times[b]:
        return float("nan")
    return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))


def _child(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, __file__, *arguments]
    env = {**os.environ, "VIPS_CONCURRENCY": "1"}
    return subprocess.run(command, capture_output=True, text=True, check=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-child", nargs=4, metavar=("PATH", "SIZE", "ROUNDS", "OUTDIR"))
    parser.add_argument("--memory-child", nargs=4, metavar=("METHOD", "PATH", "SIZE", "WARM_UP"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--inputs", nargs="*", help="subset of input names")
    parser.add_argument("--cache", default=str(ROOT / "benchmarks" / ".inputs"))
    args = parser.parse_args()
    if args.time_child:
        path, size, rounds, outdir = args.time_child
        time_child(path, int(size), int(rounds), outdir)
        return
    if args.memory_child:
        method, path, size, warm_up = args.memory_child
        memory_child(method, path, int(size), warm_up)
        return

    import tempfile

    import inputs
    from PIL import Image

    names = args.inputs or list(inputs.INPUTS)
    behind: list[str] = []
    header = (
        f"{'input':<24}{'size':>5} {'ours':>8}{'naive':>8}{'full':>8}{'vips':>8}{'floor':>8}{'alt':>8}"
        f" {'/naive':>7}{'/vips':>7}{'/floor':>7}{'a/vips':>7}"
        f" {'RSS MB':>7}{'vipsRSS':>8} {'SSIM':>6}{'vSSIM':>6}{'aSSIM':>6}"
    )
    print(header)
    print("-" * len(header))
    for name in names:
        path = inputs.load(name, Path(args.cache))
        with Image.open(path) as opened:
            kind, source = opened.format or "", opened.size
            warm_up = Path(args.cache) / f"{path.stem}.warm-up"
            opened.resize((64, 48)).save(warm_up, kind)
        for size in SIZES:
            row: dict[str, dict] = {m: {"ms": float("nan"), "image": None} for m in METHODS}
            with tempfile.TemporaryDirectory() as tmp:
                times = json.loads(_child("--time-child", str(path), str(size), str(args.rounds), tmp).stdout)
                for method in METHODS:
                    if times[method] is None:
                        continue
                    row[method]["ms"] = statistics.median(times[method])
                    if method == "floor":
                        row[method]["decoded"] = (Path(tmp) / method).read_text()
                    else:
                        row[method]["image"] = Image.open(Path(tmp) / method)
                        row[method]["image"].load()
                ref = on_background(reference(path, size))
                quality = {
                    m: ssim(ref, on_background(row[m]["image"])) if row[m]["image"] else float("nan")
                    for m in ("ours", "vips", "alt")
                }
            for method in ("ours", "vips"):
                peak = _child("--memory-child", method, str(path), str(size), str(warm_up)).stdout
                row[method]["peak_mb"] = json.loads(peak)
            ratio = {m: _median_ratio(times, "ours", m) for m in ("naive", "vips", "floor")}
            row["vips"]["ratio"] = ratio["vips"]
            row["floor"]["vs_vips"] = _median_ratio(times, "floor", "vips")
            if times["ours"] and times["floor"]:
                pairs = zip(times["ours"], times["floor"], strict=True)
                row["floor"]["after_ms"] = statistics.median(ours - floor for ours, floor in pairs)
            print(
                f"{name:<24}{size:>5} "
                + "".join(f"{row[m]['ms']:>8.1f}" for m in METHODS)
                + f" {ratio['naive']:>7.2f}{ratio['vips']:>7.2f}{ratio['floor']:>7.2f}"
                f"{_median_ratio(times, 'alt', 'vips'):>7.2f}"
                f" {row['ours']['peak_mb']:>7.0f}{row['vips']['peak_mb']:>8.0f}"
                f" {quality['ours']:>6.3f}{quality['vips']:>6.3f}{quality['alt']:>6.3f}",
                flush=True,
            )
            if (line := why_behind_vips(name, kind, source, size, row)) is not None:
                behind.append(line)
    print(
        "nan: the method failed on or does not take that input (naive Pillow cannot thumbnail() a 16-bit "
        "image; alt takes 8-bit JPEG and PNG only)."
    )
    print("\nBehind libvips in this run (goal: at or below its time and peak RSS on every row):")
    print("\n".join(f"- {line}" for line in behind) or "- none")
    if behind:
        print("A row near 1.00x can change side from one run to the next on a busy machine: compare two runs.")


if __name__ == "__main__":
    main()
