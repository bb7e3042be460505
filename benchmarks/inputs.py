"""Benchmark inputs, made reproducibly: photographic content at real sizes, never flat colour.

Each input is a photograph (the corpus' 1800x1200 landscape when ../shared is there, else a
generated scene) scaled up with Lanczos and given sensor-like grain from a fixed seed, so
entropy, file size and decode cost are those of a camera file. Files are cached by name.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

CORPUS_PHOTO = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "orientation" / "Landscape_1.jpg"


def _photo(width: int, height: int) -> Image.Image:
    if CORPUS_PHOTO.exists():
        base = Image.open(CORPUS_PHOTO).convert("RGB")
    else:
        from thumbs.local.samples import _scene

        base = _scene(1800, 1200)
    image = base.resize((width, height), Image.Resampling.LANCZOS)
    rng = random.Random(width * 7919 + height)
    grain = Image.effect_noise((width, height), 18).convert("RGB")
    image = Image.blend(image, grain, 0.06)
    draw = ImageDraw.Draw(image)
    for _ in range(60):  # fine detail: edges the resampler has to get right
        x, y = rng.randrange(width), rng.randrange(height)
        draw.line(
            (x, y, x + rng.randrange(-300, 300), y + rng.randrange(-300, 300)), fill=(rng.randrange(256),) * 3, width=2
        )
    return image.filter(ImageFilter.SHARPEN)


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def jpeg_24mp() -> bytes:
    return _encode(_photo(6000, 4000), "JPEG", quality=90)


def jpeg_24mp_progressive() -> bytes:
    return _encode(_photo(6000, 4000), "JPEG", quality=90, progressive=True)


def jpeg_12mp_exif6() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(_photo(4000, 3000).transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90, exif=exif)


def png_12mp_alpha() -> bytes:
    image = _photo(4000, 3000).convert("RGBA")
    alpha = Image.radial_gradient("L").resize((4000, 3000)).point(lambda v: 255 - v)
    image.putalpha(alpha)
    return _encode(image, "PNG", compress_level=6)


def webp_4k() -> bytes:
    return _encode(_photo(3840, 2160), "WEBP", quality=85)


def tiff_16bit() -> bytes:
    grey = _photo(4000, 3000).convert("L")
    sixteen = grey.point(lambda v: v * 257, "I").convert("I;16")
    return _encode(sixteen, "TIFF", compression="tiff_lzw")


INPUTS: dict[str, Callable[[], bytes]] = {
    "24 MP JPEG": jpeg_24mp,
    "24 MP progressive JPEG": jpeg_24mp_progressive,
    "12 MP JPEG, EXIF 6": jpeg_12mp_exif6,
    "12 MP PNG + alpha": png_12mp_alpha,
    "4K WebP": webp_4k,
    "12 MP 16-bit TIFF": tiff_16bit,
}


def load(name: str, cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / (name.replace(" ", "_").replace(",", "").replace("+", "plus") + ".img")
    if not path.exists():
        path.write_bytes(INPUTS[name]())
    return path
