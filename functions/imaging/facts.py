"""Facts about an upload from its header, before any pixel is decoded.

The probe is what stands between a decompression bomb and a full decode: it reads the
header, refuses what is too big or not an image, and reports what the thumbnailer and the
record need. It never decodes pixel data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image

from .decode import open_image, pillow_errors, still_webp
from .errors import CorruptImage, EmptyObject, TooLarge, TooManyPixels
from .settings import ImagingSettings

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageFacts:
    """What the header says; ``orientation`` is the EXIF value (1 = upright)."""

    format: str
    width: int
    height: int
    mode: str
    frames: int
    orientation: int
    has_alpha: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_byte_size(size: int, settings: ImagingSettings) -> None:
    """The byte limit on its own, so a handler can refuse an object from a GET's headers, unread."""
    if size == 0:
        raise EmptyObject("the object is empty (0 bytes)")
    if size > settings.max_bytes:
        raise TooLarge(f"the object has {size} bytes; the limit is {settings.max_bytes}")


def check_pixels(width: int, height: int, settings: ImagingSettings) -> None:
    if width <= 0 or height <= 0:
        raise CorruptImage(f"the header declares an empty canvas ({width}x{height})")
    if width * height > settings.max_pixels:
        raise TooManyPixels(
            f"the header declares {width}x{height} = {width * height} pixels; the limit is {settings.max_pixels}"
        )


def read_orientation(image: Image.Image, *, header_only: bool = False) -> int:
    """EXIF (or XMP) orientation; a broken EXIF block means 'upright', it is no reason to reject.

    ``header_only`` reads what the header already holds: PNG's own ``getexif`` would decode
    every pixel to look for an eXIf chunk placed after the image data.
    """
    try:
        exif = Image.Image.getexif(image) if header_only else image.getexif()
        value = exif.get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - metadata is advisory; the pixels decide
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def orientation_in(info: dict[str, bytes]) -> int:
    """The orientation that ``info``'s EXIF or XMP gives, read by Pillow's own rules, as for an opened image."""
    carrier = Image.new("1", (1, 1))
    carrier.info.update(info)
    return read_orientation(carrier, header_only=True)


def has_alpha(image: Image.Image) -> bool:
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def probe(data: bytes, settings: ImagingSettings) -> ImageFacts:
    """Refuse or describe ``data`` from its header alone."""
    check_byte_size(len(data), settings)
    still = still_webp(data)
    if still is not None:
        check_pixels(still.width, still.height, settings)
        return ImageFacts(
            format="WEBP",
            width=still.width,
            height=still.height,
            mode=still.mode,
            frames=1,
            orientation=orientation_in(still.info),
            has_alpha=still.mode == "RGBA",
        )
    with open_image(data) as image:
        check_pixels(image.width, image.height, settings)
        with pillow_errors("counting frames"):
            frames = getattr(image, "n_frames", 1)
        return ImageFacts(
            format=image.format or "UNKNOWN",
            width=image.width,
            height=image.height,
            mode=image.mode,
            frames=frames,
            orientation=read_orientation(image, header_only=True),
            has_alpha=has_alpha(image),
        )
