"""One thumbnail from one upload: the size you ask for, upright, in sRGB, with no metadata.

The order matters for speed and quality: JPEG is decoded at the smallest DCT scale that
still covers the target (``draft``), colour work happens on those fewer pixels, the
resample reduces by whole factors before a Lanczos pass (``reducing_gap``), and orientation
is applied last, on the small image, where a transpose costs nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING

from PIL import Image, PngImagePlugin

if TYPE_CHECKING:
    from PIL import ImageCms

from .decode import open_image, pillow_errors, register_plugins, still_webp
from .facts import ImageFacts, check_pixels, has_alpha, orientation_in, read_orientation
from .settings import ImagingSettings

# JPEG: decode at the smallest DCT scale that still covers the target (libjpeg's scaled IDCT
# averages each block, a good first shrink), as libvips' shrink-on-load does. Then
# reducing_gap: whole-factor box reduction while at least this many times the target remains,
# and one Lanczos pass for the rest. Both were chosen by SSIM in benchmarks/thumbnails.py.
DRAFT_GAP = 1.0
REDUCING_GAP = 2.0
# Pixels converted at a time by _shrink. A box reduction costs the same in bands of any height,
# so its bands are small (256 KB of RGBA); Lanczos' horizontal pass sets up its weights on every
# call, so its bands are taller (2 MB): on 12 MP, 64K-pixel bands made that pass 1.5-2.4x slower.
REDUCE_BAND_PIXELS = 1 << 16
RESAMPLE_BAND_PIXELS = 1 << 19

CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "avif": "image/avif"}
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp", "avif": "avif"}
_FORMATS_WITH_ALPHA = frozenset({"png", "webp", "avif"})

# Pillow resamples these premultiplied by alpha, so that transparent pixels' colour does not bleed.
_PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}

# EXIF orientation -> the transpose that makes the pixels upright (EXIF 2.3, section 4.6.4).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    width: int
    height: int
    format: str

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def choose_format(facts: ImageFacts, settings: ImagingSettings) -> str:
    """``auto``: JPEG for opaque images (smallest, universal), ``alpha_format`` for transparent ones.

    WebP is the default for transparency: every current browser shows it, and a lossy WebP
    with alpha is typically several times smaller than the PNG of the same thumbnail.
    Decided from the header, in validate, so every size of one upload shares a format and
    its keys are known before any thumbnail is written.
    """
    if settings.output_format != "auto":
        return settings.output_format
    return settings.alpha_format if facts.has_alpha else "jpeg"


def fit_within(width: int, height: int, size: int) -> tuple[int, int]:
    """Longest side at most ``size``, never upscaled, never below 1 px, aspect kept as Pillow keeps it."""
    if max(width, height) <= size:
        return width, height
    if width >= height:
        return size, max(1, round(height * size / width))
    return max(1, round(width * size / height)), size


def make_thumbnail(data: bytes, size: int, settings: ImagingSettings, output_format: str) -> Thumbnail:
    """Decode, shrink, orient and encode ``data``; raises only :class:`~imaging.errors.ImageRejected`.

    ``output_format`` is a concrete format (see :func:`choose_format`), so that every size of
    one upload is written in the format validate announced.
    """
    _check_format(output_format)
    return _encode(prepare(data, size, settings), output_format, settings)


def thumbnail_from(
    base: Image.Image, width: int, height: int, settings: ImagingSettings, output_format: str
) -> Thumbnail:
    """A thumbnail of exactly ``width`` x ``height`` from a prepared image (see :func:`prepare`).

    The dimensions come from the original image (``fit_within`` of its upright size), so a
    size derived from the intermediate is pixel-for-pixel the size a direct decode gives.
    """
    _check_format(output_format)
    with pillow_errors("resizing"):
        pixels = (
            base
            if base.size == (width, height)
            else base.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
        )
    return _encode(pixels, output_format, settings)


def _check_format(output_format: str) -> None:
    if output_format not in CONTENT_TYPES:
        raise ValueError(f"output_format must be one of {', '.join(CONTENT_TYPES)}, not {output_format!r}")


def upright_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """The size as shown: EXIF orientations 5-8 turn the image by 90 degrees."""
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def intermediate_bytes(image: Image.Image) -> bytes:
    """A prepared image as uncompressed TIFF, which the Map's iterations resize from.

    Uncompressed TIFF is the pixels with a header: about 1-2 ms to write and under 1 ms to read
    for 1024 px RGB, where a PNG, even stored without deflate, took 34 ms to write and 18 ms
    to read in each of the three Resizes, because it still filters and checksums every row.
    The object is about the same size either way. TIFF holds L, LA, RGB and RGBA (the modes
    :func:`prepare` gives) exactly, and any image tool can open it.
    """
    out = io.BytesIO()
    register_plugins()
    _without_metadata(image).save(out, "TIFF", compression="raw")
    return out.getvalue()


def read_intermediate(data: bytes) -> Image.Image:
    """The intermediate Validate wrote: TIFF, or the PNG of an execution started before TIFF."""
    register_plugins()
    with pillow_errors("reading the intermediate"):
        image = Image.open(io.BytesIO(data), formats=["TIFF", "PNG"])
        image.load()
    return image


def prepare(data: bytes, size: int, settings: ImagingSettings) -> Image.Image:
    """Decode ``data`` and bring it within ``size``: sRGB, 8-bit, upright, not yet encoded.

    This is the one full decode of an upload; every thumbnail size can be cut from it. A still
    WebP is decoded by libwebp at the target size (see :mod:`imaging.webp`); the rest by Pillow.
    """
    still = still_webp(data)
    if still is not None:
        check_pixels(still.width, still.height, settings)
        target = fit_within(still.width, still.height, size)
        from .webp import decode_scaled

        with pillow_errors("decoding"):
            decoded = decode_scaled(data, still, target)
        return _finish(decoded, still.info.get("icc_profile"), orientation_in(still.info), target)
    with open_image(data) as image:
        check_pixels(image.width, image.height, settings)
        target = fit_within(image.width, image.height, size)
        with pillow_errors("decoding"):
            if image.format in ("JPEG", "MPO"):
                mode = image.mode if image.mode in ("RGB", "L") else None  # libjpeg converts YCbCr itself
                image.draft(mode, (int(target[0] * DRAFT_GAP), int(target[1] * DRAFT_GAP)))
            image.load()  # before any metadata read: a failed load must reject, not hide
        return _finish(image, image.info.get("icc_profile"), read_orientation(image), target)


def _finish(image: Image.Image, icc: bytes | None, orientation: int, target: tuple[int, int]) -> Image.Image:
    """The decoded ``image`` at ``target``: resampled in its own colour space, then sRGB and upright."""
    with pillow_errors("resizing"):
        convert, icc = _resizable(image, icc)
        pixels = _shrink(image, convert, target)
    with pillow_errors("converting colour"):
        pixels = _to_srgb(pixels, icc)  # on the small image: a fraction of the work
        if orientation in _UPRIGHT:
            pixels = pixels.transpose(_UPRIGHT[orientation])
    return pixels


def _cms() -> ModuleType:
    """Pillow's LittleCMS binding, imported by the first image that needs a colour transform.

    Most uploads carry no profile or an sRGB one; the import is a few ms of every cold start.
    """
    from PIL import ImageCms

    return ImageCms


@lru_cache(maxsize=1)
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    cms = _cms()
    return cms.ImageCmsProfile(cms.createProfile("sRGB"))


@dataclass(frozen=True)
class Conversion:
    """A per-pixel change of mode, which gives the same pixels applied to the whole or band by band."""

    mode: str
    apply: Callable[[Image.Image], Image.Image] | None = None  # None: Pillow's convert to ``mode``

    def __call__(self, pixels: Image.Image) -> Image.Image:
        if self.apply is not None:
            return self.apply(pixels)
        return pixels if pixels.mode == self.mode else pixels.convert(self.mode)


def _resizable(image: Image.Image, icc: bytes | None) -> tuple[Conversion, bytes | None]:
    """How to bring the decoded pixels to a mode Pillow resamples correctly, and their colour profile then.

    Colour stays in the source space (CMYK, 16/32-bit grey, ICC-tagged RGB) until after the
    resize; palettes and transparency keys become real channels so they average correctly.
    The answer is a conversion, not converted pixels, so that :func:`_shrink` can apply it a
    band of rows at a time instead of holding a second full-size copy.
    """
    mode = image.mode
    if mode.startswith("I;16"):  # to 8 bits first: two fast passes, then an 8-bit resample (measured fastest)
        levels = _eight_bit_scale(image)  # from the whole image, for every band alike
        return Conversion("L", lambda band: _sixteen_to_eight(band, levels)), None
    if mode in ("I", "F", "L", "LA", "RGB", "RGBA", "CMYK") and "transparency" not in image.info:
        return Conversion(mode), icc
    if mode == "LAB":  # a/b are signed: convert before any averaging
        cms = _cms()
        to_rgb = cms.buildTransform(cms.createProfile("LAB"), _srgb_profile(), "LAB", "RGB")
        return Conversion("RGB", lambda band: cms.applyTransform(band, to_rgb)), None
    if mode in ("La", "RGBa"):
        return Conversion(mode.upper()), icc
    if mode == "L":
        return Conversion("LA"), icc
    target_mode = "RGBA" if has_alpha(image) else "RGB"
    if mode in ("1", "P", "PA"):  # a palette's profile does not apply
        return Conversion(target_mode), None
    return Conversion(target_mode), icc


def _shrink(image: Image.Image, convert: Conversion, target: tuple[int, int]) -> Image.Image:
    """``image`` converted, then resized to ``target`` exactly as Pillow's ``resize(LANCZOS, reducing_gap=2)``.

    Pillow premultiplies RGBA and LA into a second full-size copy before it resamples, and a
    mode conversion is a full-size copy too (for 16-bit grey, a 32-bit one: 48 MB for 12 MP).
    Here both are done a band of rows at a time, and each band is shrunk in width at once, so
    the full-size pixels exist once: the decoded frame.

    Where ``reducing_gap`` box-reduces, each band is reduced; bands start on multiples of the
    factor, and a box never crosses a block. Where it does not, each band gets Lanczos'
    horizontal pass and the whole its vertical pass, which is the order and the rounding of
    Pillow's own two passes. Either way the pixels are Pillow's (a test compares them).
    """
    mode = convert.mode
    if image.size == target:
        return convert(image)
    if mode == image.mode and mode not in _PREMULTIPLIED:  # no full-size copy to save
        return image.resize(target, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    width, height = image.size
    factor_x = int(width / target[0] / REDUCING_GAP) or 1
    factor_y = int(height / target[1] / REDUCING_GAP) or 1
    reducing = factor_x * factor_y > 1
    rows = max(1, (REDUCE_BAND_PIXELS if reducing else RESAMPLE_BAND_PIXELS) // (width * factor_y)) * factor_y
    narrow = (-(-width // factor_x), -(-height // factor_y)) if reducing else (target[0], height)
    working = _PREMULTIPLIED.get(mode, mode)
    narrowed = Image.new(working, narrow)
    for top in range(0, height, rows):
        band = convert(image.crop((0, top, width, min(height, top + rows))))
        band = band.convert(working) if working != mode else band
        if reducing:
            narrowed.paste(band.reduce((factor_x, factor_y)), (0, top // factor_y))
        else:
            narrowed.paste(band.resize((target[0], band.height), Image.Resampling.LANCZOS), (0, top))
    box = (0.0, 0.0, width / factor_x, height / factor_y) if reducing else None
    pixels = narrowed.resize(target, Image.Resampling.LANCZOS, box=box)
    return pixels.convert(mode) if working != mode else pixels


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """The resized pixels as 8-bit L, LA, RGB or RGBA in sRGB, through the embedded ICC profile if any."""
    if image.mode in ("I", "F"):
        return _sixteen_to_eight(image)
    if icc:
        converted = _apply_icc(image, icc)
        if converted is not None:
            return converted
    if image.mode == "CMYK":
        return image.convert("RGB")
    return image


def _apply_icc(image: Image.Image, icc: bytes) -> Image.Image | None:
    """Convert through the embedded profile; a profile LittleCMS cannot use is ignored, not fatal."""
    cms = _cms()
    try:
        source = cms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, cms.PyCMSError):
        return None
    colour, alpha = image, None
    if image.mode in ("RGBA", "LA"):
        alpha = image.getchannel("A")
        colour = image.convert(image.mode[:-1])
    out_mode = "L" if colour.mode == "L" and _is_gray_profile(source) else "RGB"
    try:
        converted = cms.profileToProfile(
            colour, source, _srgb_profile(), outputMode=out_mode, renderingIntent=cms.Intent.PERCEPTUAL
        )
    except (OSError, cms.PyCMSError):
        return None
    if converted is None:
        return None
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


def _is_gray_profile(profile: ImageCms.ImageCmsProfile) -> bool:
    return profile.profile.xcolor_space.strip() == "GRAY"


def _sixteen_to_eight(image: Image.Image, levels: tuple[float, float] | None = None) -> Image.Image:
    """Scale high-bit-depth grey to 8 bits instead of letting Pillow clip everything above 255.

    ``levels`` is the scale and offset, when ``image`` is a band and they come from the whole.
    """
    scale, offset = levels or _eight_bit_scale(image)
    return image.point(lambda v: v * scale + offset).convert("L")


def _eight_bit_scale(image: Image.Image) -> tuple[float, float]:
    """The scale and offset that bring this high-bit-depth grey image's values into 0-255.

    Images whose values never pass 255 (8-bit data in a 16-bit container) keep their levels.
    """
    low, high = image.getextrema()
    if low >= 0 and high <= 65535:
        return (1 / 257, 0.0) if high > 255 else (1.0, 0.0)
    span = (high - low) or 1
    return 255 / span, -low * 255 / span


def _without_metadata(image: Image.Image) -> Image.Image:
    """A fresh image with the same pixels: nothing of the source's info (EXIF, ICC, XMP) can leak."""
    clean = Image.new(image.mode, image.size)
    clean.frombytes(image.tobytes())
    return clean


def _encode(pixels: Image.Image, fmt: str, settings: ImagingSettings) -> Thumbnail:
    """Write ``pixels`` with no metadata at all: no EXIF, no GPS, no XMP, no foreign ICC profile."""
    has_a = pixels.mode in ("RGBA", "LA")
    if has_a and fmt not in _FORMATS_WITH_ALPHA:
        pixels = _flatten(pixels, settings.background_rgb)
    elif fmt in ("webp", "avif") and pixels.mode in ("L", "LA"):
        pixels = pixels.convert("RGBA" if has_a else "RGB")
    clean = _without_metadata(pixels)
    out = io.BytesIO()
    register_plugins()
    if fmt == "jpeg":
        clean.save(out, "JPEG", quality=settings.jpeg_quality, optimize=True)
    elif fmt == "png":
        srgb = PngImagePlugin.PngInfo()
        srgb.add(b"sRGB", b"\x00")  # the pixels are sRGB; say so, as PNG readers expect
        clean.save(out, "PNG", pnginfo=srgb, compress_level=9)
    elif fmt == "webp":
        clean.save(out, "WEBP", quality=settings.webp_quality, method=4)
    elif fmt == "avif":
        clean.save(out, "AVIF", quality=settings.avif_quality, speed=6, max_threads=1)
    else:  # pragma: no cover - settings validation keeps this unreachable
        raise ValueError(f"unknown output format {fmt!r}")
    return Thumbnail(out.getvalue(), clean.width, clean.height, fmt)


def _flatten(pixels: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    rgba = pixels.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (*background, 255))
    canvas.alpha_composite(rgba)
    return canvas.convert("RGB")
