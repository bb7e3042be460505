"""The local engine against a naive script: throughput, one image's latency, the inner loop and memory.

``python benchmarks/local_engine.py [--images 40] [--rounds 3] [--memory-uploads 1000]``. Every figure is a
wall time measured in this run, side by side with its baseline:

- **throughput**: ``thumbs run`` on N x 24 MP JPEGs (sizes 128/256/1024), with its own stack
  and on a running ``thumbs serve``, against a naive one-process Pillow loop (open,
  ``thumbnail(LANCZOS)``, save q85, per size) and the bare imaging: the imaging calls the
  handlers make (``handler_imaging.py``), spread over every core with no AWS at all. The
  earlier baseline, a decode of the original per size, is printed beside it. One bare run moves
  with the machine by a quarter, so the run on the serve is also paired with the bare imaging,
  round by round: the ratio of each round, and their median;
- **latency**: one 12 MP image, template cached, fresh state folder, from command to summary:
  in a process of its own (``THUMBS_ENGINE=0``), as the command that starts the warm engine,
  and forked from the warm engine (what every later command is); the same on a running serve;
  and a fresh Python that imports boto3 and Pillow and makes the three thumbnails (the floor);
- **inner loop**: with ``thumbs serve --watch`` up, a handler file is saved (its time touched,
  its bytes unchanged) and one image is run: from the save to the summary;
- **memory**: the peak RSS of ``thumbs run`` (its largest process, in a process of its own) at a
  tenth of the uploads and at all of them: flat means it does not grow with the batch.

Every ``thumbs run`` here runs in its own process (``THUMBS_ENGINE=0``) unless its row says the
warm engine, which the benchmark keeps in a folder of its own and stops at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import handler_imaging

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ROOT / "benchmarks" / ".inputs"
SIZES = (128, 256, 1024)
THUMBS = [sys.executable, "-m", "thumbs"]


def batch(count: int) -> list[Path]:
    """``count`` distinct 24 MP camera-like JPEGs, made once and cached (rotations of one photo)."""
    import inputs
    from PIL import Image

    folder = INPUTS / "engine-24mp"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo-{index:03}.jpg" for index in range(count)]
    missing = [p for p in paths if not p.exists()]
    if missing:
        base = Image.open(inputs.load("24 MP JPEG", INPUTS)).convert("RGB")
        for path in missing:
            index = int(path.stem.split("-")[1])
            turned = base.rotate(index * 3.7, resample=Image.Resampling.BILINEAR, fillcolor=(index % 256, 80, 160))
            turned.save(path, "JPEG", quality=88)
    return paths


def timed_bare(paths: list[Path], cores: int, imaging: Callable[[str], int] = handler_imaging.handlers) -> float:
    """Wall seconds of ``imaging`` of ``paths`` over ``cores`` processes, their start included."""
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=cores) as pool:
        list(pool.map(imaging, [str(p) for p in paths]))
    return time.perf_counter() - start


def naive(paths: list[Path], out: Path) -> None:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        for size in SIZES:
            with Image.open(path) as image:
                image.thumbnail((size, size), Image.Resampling.LANCZOS)
                image.convert("RGB").save(out / f"{path.stem}-{size}.jpg", "JPEG", quality=85)


def timed(command: list[str], **kwargs: object) -> tuple[float, int]:
    """(wall seconds, peak RSS in MB of the command's largest process) for a command that must succeed."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors, **kwargs)  # type: ignore[call-overload]
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(command)} failed: {errors.read().decode()[-2000:]}")
    return wall, int(usage.ru_maxrss / 1024)


def cached_state(folder: Path, cache: Path) -> Path:
    """A fresh state folder holding only the synthesized template (what 'template cached' means)."""
    (folder / "cache").mkdir(parents=True)
    for file in cache.glob("template-*.json"):
        shutil.copy(file, folder / "cache" / file.name)
    return folder


class Serve:
    """``thumbs serve [--watch]`` on a state folder, until the block ends."""

    def __init__(self, state: Path, *options: str) -> None:
        from thumbs.local.stack import free_port

        self.port = free_port()
        self.process = subprocess.Popen(
            [*THUMBS, "--state", str(state), "serve", "--port", str(self.port), *options],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.state = state

    def __enter__(self) -> Serve:
        from thumbs.local.state import StateFolder

        deadline = time.monotonic() + 180
        while StateFolder(self.state).serving() is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("thumbs serve did not start")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=120)


def run(state: Path, folder: Path, out: Path, engines: Path | None = None) -> tuple[float, int]:
    """``thumbs run`` in its own process; with ``engines``, forked from the warm engine kept there.

    Only the first kind has a peak RSS to report: a forked command's memory is the engine's child's.
    """
    shutil.rmtree(out, ignore_errors=True)
    environment = {**os.environ, "THUMBS_ENGINE": "0"}
    if engines is not None:
        environment.update(THUMBS_ENGINE="1", THUMBS_ENGINE_DIR=str(engines))
    return timed([*THUMBS, "--state", str(state), "run", str(folder), "--out", str(out)], env=environment)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds of bare imaging and a run on the serve")
    parser.add_argument("--memory-uploads", type=int, default=1000)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    cores = os.cpu_count() or 2
    from load import write_uploads

    from thumbs.local.state import StateFolder
    from thumbs.template import load_template

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cache = StateFolder(tmp / "template").cache_dir
        load_template(cache)  # a one-off synth; every state folder below starts with it cached
        paths = batch(args.images)
        folder = tmp / "batch"
        folder.mkdir()
        for path in paths:
            (folder / path.name).symlink_to(path)
        one = tmp / "one"
        one.mkdir()
        from PIL import Image

        with Image.open(paths[0]) as image:
            image.resize((4000, 3000)).save(one / "photo.jpg", "JPEG", quality=88)

        print(f"{args.images} x 24 MP JPEG, sizes {'/'.join(map(str, SIZES))}, {cores} cores")
        start = time.perf_counter()
        naive(paths, tmp / "naive")
        naive_s = time.perf_counter() - start
        bare_s = timed_bare(paths, cores)
        per_size_s = timed_bare(paths, cores, handler_imaging.per_size)
        own_s, _ = run(cached_state(tmp / "s-own", cache), folder, tmp / "out")
        engines = tmp / "engines"
        engines.mkdir(mode=0o700)
        first_s, _ = run(cached_state(tmp / "s-first", cache), one, tmp / "out", engines)  # starts the engine
        forked_s, _ = run(cached_state(tmp / "s-forked", cache), folder, tmp / "out", engines)
        with Serve(cached_state(tmp / "s-serve", cache)) as serve:
            run(serve.state, one, tmp / "out")  # the serve's first upload warms its workers
            served_s, _ = run(serve.state, folder, tmp / "out")
            pairs = [(timed_bare(paths, cores), run(serve.state, folder, tmp / "out")[0]) for _ in range(args.rounds)]

        print("\nThroughput")
        print(f"{'':<34}{'wall s':>8}{'vs naive':>10}{'vs bare':>9}")
        for name, wall in (
            ("naive Pillow loop, 1 process", naive_s),
            (f"bare imaging, {cores} processes", bare_s),
            ("  earlier: a decode per size", per_size_s),
            ("thumbs run (its own stack)", own_s),
            ("thumbs run (own stack, warm engine)", forked_s),
            ("thumbs run (on thumbs serve)", served_s),
        ):
            print(f"{name:<34}{wall:>8.1f}{wall / naive_s:>9.2f}x{wall / bare_s:>8.2f}x")
        print("goals: thumbs run at most 0.60x naive and 1.50x bare")
        print(f"\nPaired: bare imaging, then thumbs run on the serve, {len(pairs)} rounds")
        print(f"{'round':>5}{'bare s':>9}{'serve s':>9}{'ratio':>8}")
        for number, (bare_wall, served_wall) in enumerate(pairs, 1):
            print(f"{number:>5}{bare_wall:>9.1f}{served_wall:>9.1f}{served_wall / bare_wall:>7.2f}x")
        if pairs:
            print(f"median ratio {statistics.median(s / b for b, s in pairs):.2f}x (goal 1.50x)")

        floor = (
            "import boto3, sys; from PIL import Image\n"
            f"for s in {SIZES}:\n"
            "    i = Image.open(sys.argv[1]); i.thumbnail((s, s), Image.Resampling.LANCZOS)\n"
            "    i.convert('RGB').save(f'/dev/null', 'JPEG', quality=85)\n"
        )
        floor_s, _ = timed([sys.executable, "-c", floor, str(one / "photo.jpg")])
        cold_s, _ = run(cached_state(tmp / "s-cold", cache), one, tmp / "out")
        warm_engine_s, _ = run(cached_state(tmp / "s-engine", cache), one, tmp / "out", engines)
        with Serve(cached_state(tmp / "s-watch", cache), "--watch") as serve:
            run(serve.state, one, tmp / "out")
            warm_s, _ = run(serve.state, one, tmp / "out")
            handler = ROOT / "functions" / "resize" / "handler.py"
            loops = []
            for through in (None, engines):  # the command in its own process, then forked from the engine
                saved = time.perf_counter()
                os.utime(handler)  # saved again, unchanged: the watcher restarts Resize's workers
                # started at once: the run asks the watcher to apply the save first (POST /_thumbs/sync)
                run(serve.state, one, tmp / "out", through)
                loops.append(time.perf_counter() - saved)
        stop = [*THUMBS, "engine", "--stop"]
        subprocess.run(
            stop, env={**os.environ, "THUMBS_ENGINE_DIR": str(engines)}, stdout=subprocess.DEVNULL, check=True
        )
        print("\nOne 12 MP image, template cached, from command to summary")
        print(f"{'':<44}{'wall s':>8}{'vs floor':>10}")
        for name, wall in (
            ("fresh python: boto3 + Pillow, 3 sizes", floor_s),
            ("thumbs run, fresh state folder", cold_s),
            ("  the same, starting the warm engine", first_s),
            ("  the same, forked from the warm engine", warm_engine_s),
            ("thumbs run on a running thumbs serve", warm_s),
            ("serve --watch: handler saved -> summary", loops[0]),
            ("  the same, forked from the warm engine", loops[1]),
        ):
            print(f"{name:<44}{wall:>8.2f}{wall / floor_s:>9.1f}x")
        print("goals: fresh at most 3 s; edit to result under 1 s")

        small = max(1, args.memory_uploads // 10)
        rows = []
        for count in (small, args.memory_uploads):
            uploads = tmp / f"uploads-{count}"
            write_uploads(uploads, count)
            wall, rss = run(cached_state(tmp / f"s-mem-{count}", cache), uploads, tmp / "out")
            rows.append((count, wall, rss))
        print("\nMemory: thumbs run's peak RSS (its largest process)")
        print(f"{'uploads':>8}{'wall s':>9}{'per s':>8}{'peak RSS MB':>13}")
        for count, wall, rss in rows:
            print(f"{count:>8}{wall:>9.1f}{count / wall:>8.1f}{rss:>13}")
        print(f"peak RSS at {rows[1][0]} / at {rows[0][0]}: {rows[1][2] / rows[0][2]:.2f}x (flat: about 1.0x)")


if __name__ == "__main__":
    main()
