"""Small generated images for the tests: the project's own fixtures, made in code, licence-free."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageDraw


def photo(width: int = 320, height: int = 200, mode: str = "RGB") -> Image.Image:
    """An asymmetric test card: a wrong rotation or flip shows as a large pixel difference."""
    image = Image.new("RGB", (width, height), (30, 60, 90))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width // 3, height // 2), fill=(230, 40, 40))
    draw.ellipse((width // 2, height // 2, width - 10, height - 10), fill=(40, 200, 80))
    draw.line((0, height - 1, width - 1, 0), fill=(250, 250, 0), width=5)
    return image.convert(mode) if mode != "RGB" else image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def jpeg_with_orientation(image: Image.Image, orientation: int, gps: bool = False) -> bytes:
    """Store ``image`` so that a viewer honouring EXIF ``orientation`` shows it upright."""
    inverse = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }
    stored = image.transpose(inverse[orientation]) if orientation in inverse else image
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCamera"
    if gps:
        exif[0x8825] = {1: "N", 2: (52.0, 22.0, 12.0), 3: "E", 4: (4.0, 53.0, 30.0)}
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height``: a decompression bomb in 60 bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")
