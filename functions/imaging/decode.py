"""Opening untrusted bytes with Pillow, and turning Pillow's many failure modes into rejections.

Pillow reports hostile input through a zoo of exception types (OSError, SyntaxError,
ValueError, struct.error, EOFError, TypeError, ...). Every Pillow call on user bytes runs
inside :func:`pillow_errors`, which maps them to the documented rejections, so callers see
either a result or an :class:`~imaging.errors.ImageRejected`. MemoryError is never
swallowed: it is the Lambda's problem, not the image's verdict.
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING

from PIL import Image

from .errors import CorruptImage, ImageRejected, TooManyPixels, UnsupportedFormat

if TYPE_CHECKING:
    from .webp import StillWebP

# HEIC/HEIF is accepted only where the optional plugin is installed. Importing it takes about
# 20 ms of every cold start, so it is loaded by the first upload that could be one (see _openers).
HEIF_FORMATS: tuple[str, ...] = ("HEIF",) if importlib.util.find_spec("pillow_heif") else ()

ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "AVIF", "MPO", *HEIF_FORMATS)
# Pillow has no MPO opener of its own: its JPEG opener returns an MPO image when it sees one.
_OPENERS = tuple(name for name in ACCEPTED_FORMATS if name != "MPO")
_OPENERS_BUT_HEIF = tuple(name for name in _OPENERS if name not in HEIF_FORMATS)


@lru_cache(maxsize=1)
def _register_heif() -> None:
    import pillow_heif  # type: ignore[import-not-found,unused-ignore]

    pillow_heif.register_heif_opener()


@lru_cache(maxsize=1)
def register_plugins() -> None:
    """Register the plugins of the accepted formats and of the outputs, and only those.

    ``Image.open`` and ``Image.save`` call ``Image.init()`` as soon as they meet a format that is
    not registered yet (a TIFF upload, a WebP thumbnail), and that imports all of Pillow's
    plugins: about 28 ms and 4 MB of a Lambda's first invocation, EPS's ``subprocess`` among
    them. Ours are about 5 ms. JPEG, PNG, GIF and BMP come with Pillow's ``preinit``.
    """
    from PIL import AvifImagePlugin, MpoImagePlugin, TiffImagePlugin, WebPImagePlugin  # noqa: F401


def _openers(data: bytes) -> tuple[str, ...]:
    """The decoders to try: HEIF only for an ISO-BMFF file (an ``ftyp`` box), the only kind it opens."""
    if HEIF_FORMATS and data[4:8] == b"ftyp":
        _register_heif()
        return _OPENERS
    return _OPENERS_BUT_HEIF


# Our own pixel limit (checked from the header) is the authority; Pillow's warning at 89 MP
# would only repeat it in the logs. Pillow's hard error above 179 MP still stands behind ours.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# Magic numbers of the accepted formats: bytes that start like one of these but do not decode
# are corrupt; anything else is simply not a format we take.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"II+\x00", "TIFF"),
    (0, b"MM\x00+", "TIFF"),
    (0, b"BM", "BMP"),
    (8, b"WEBP", "WEBP"),
    (4, b"ftypavif", "AVIF"),
    (4, b"ftypavis", "AVIF"),
    (4, b"ftypheic", "HEIF"),
    (4, b"ftypheix", "HEIF"),
    (4, b"ftypmif1", "HEIF"),
)


def sniff_format(data: bytes) -> str | None:
    """The accepted format ``data`` starts like, from its magic number alone."""
    for offset, magic, name in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return name
    return None


@contextmanager
def pillow_errors(stage: str) -> Iterator[None]:
    """Translate any decoder failure during ``stage`` into a rejection with Pillow's own words."""
    try:
        yield
    except (ImageRejected, MemoryError):
        raise
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(f"{stage}: {exc}") from exc
    except Exception as exc:
        raise CorruptImage(f"{stage}: {type(exc).__name__}: {exc}") from exc


def open_image(data: bytes) -> Image.Image:
    """Open lazily (header only) with the decoder allowlist, deciding from bytes, never from names."""
    register_plugins()
    try:
        with pillow_errors("open"):
            return Image.open(io.BytesIO(data), formats=_openers(data))
    except CorruptImage as exc:
        if not isinstance(exc.__cause__, Image.UnidentifiedImageError):
            raise
        claimed = sniff_format(data)
        if claimed is None or claimed not in ACCEPTED_FORMATS:
            raise UnsupportedFormat(_describe_unsupported(data)) from exc.__cause__
        raise CorruptImage(f"open: starts like {claimed} but its header cannot be read") from exc.__cause__


def still_webp(data: bytes) -> StillWebP | None:
    """The header of a still WebP, read by libwebp instead of Pillow's opener; None for anything else.

    Pillow's WebP opener allocates two full-size canvases for its animation decoder, which a
    still image never uses (see :mod:`imaging.webp`). ctypes is imported by the first WebP only.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    from .webp import read_still

    return read_still(data)


def _describe_unsupported(data: bytes) -> str:
    accepted = ", ".join(ACCEPTED_FORMATS)
    try:  # Name the format when Pillow knows it, so the record says "ICO", not "unknown".
        with Image.open(io.BytesIO(data)) as other:
            return f"format {other.format} is not accepted (accepted: {accepted})"
    except Exception:  # noqa: BLE001 - only used to word the message
        return f"not an image in an accepted format (accepted: {accepted})"
