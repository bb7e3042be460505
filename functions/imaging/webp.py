"""A still WebP read and decoded straight to the thumbnail's size, by libwebp's own scaler.

Pillow decodes a WebP at full size, and its opener alone allocates two full-size canvases for
its animation decoder (66 MB for 4K, resident as soon as glibc serves them from the heap).
libwebp can scale while it decodes (``WebPDecoderOptions``' ``use_scaling``): rows pass
through its area-averaging rescaler as they are decoded, so the full-size frame never exists.
libvips' ``thumbnail`` takes the same path, to the same pixels. The header comes from
libwebp's ``WebPGetFeatures`` and a walk of the RIFF chunks for the ICC profile, EXIF and XMP.

No new dependency: Pillow's ``_webp`` extension links libwebp dynamically, from its wheel's
``pillow.libs`` or the system's, and ``dlsym`` on that extension's handle finds libwebp's
functions among its dependencies. The structures below mirror ``webp/decode.h``, which libwebp
keeps stable within a major ABI version (the padding fields are there for that). libwebp
checks the version we pass and refuses an incompatible one; then, as when the library or its
symbols are not found, or for an animation, :func:`read_still` returns None and the caller
opens the file with Pillow as before.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from functools import lru_cache

from PIL import Image

from .errors import CorruptImage

# The decode.h this mirrors: ABI major 2 (libwebp 0.5 to 1.6 at least). libwebp accepts any
# minor version of the same major, and refuses another major.
DECODER_ABI_VERSION = 0x0209

# VP8X flags that make libwebp's demuxer keep a metadata chunk, and the names Pillow gives them.
_METADATA_CHUNKS = {b"ICCP": (0x20, "icc_profile"), b"EXIF": (0x08, "exif"), b"XMP ": (0x04, "xmp")}

_MODE_RGB = 0
_MODE_RGBA = 1
_COLORSPACES = {"RGB": _MODE_RGB, "RGBA": _MODE_RGBA}

_OUT_OF_MEMORY = 1
_STATUS = {
    _OUT_OF_MEMORY: "out of memory",
    2: "invalid parameter",
    3: "bitstream error",
    4: "unsupported feature",
    5: "suspended",
    6: "user abort",
    7: "not enough data (truncated)",
}


class _Features(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("has_alpha", ctypes.c_int),
        ("has_animation", ctypes.c_int),
        ("format", ctypes.c_int),
        ("pad", ctypes.c_uint32 * 5),
    ]


class _RGBABuffer(ctypes.Structure):
    _fields_ = [("rgba", ctypes.c_void_p), ("stride", ctypes.c_int), ("size", ctypes.c_size_t)]


class _YUVABuffer(ctypes.Structure):
    _fields_ = [
        *((plane, ctypes.c_void_p) for plane in ("y", "u", "v", "a")),
        *((f"{plane}_stride", ctypes.c_int) for plane in ("y", "u", "v", "a")),
        *((f"{plane}_size", ctypes.c_size_t) for plane in ("y", "u", "v", "a")),
    ]


class _Planes(ctypes.Union):
    _fields_ = [("RGBA", _RGBABuffer), ("YUVA", _YUVABuffer)]


class _DecBuffer(ctypes.Structure):
    _fields_ = [
        ("colorspace", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("is_external_memory", ctypes.c_int),
        ("u", _Planes),
        ("pad", ctypes.c_uint32 * 4),
        ("private_memory", ctypes.c_void_p),
    ]


class _Options(ctypes.Structure):
    _fields_ = [
        *(
            (name, ctypes.c_int)
            for name in (
                "bypass_filtering",
                "no_fancy_upsampling",
                "use_cropping",
                "crop_left",
                "crop_top",
                "crop_width",
                "crop_height",
                "use_scaling",
                "scaled_width",
                "scaled_height",
                "use_threads",
                "dithering_strength",
                "flip",
                "alpha_dithering_strength",
            )
        ),
        ("pad", ctypes.c_uint32 * 5),
    ]


class _Config(ctypes.Structure):
    _fields_ = [("input", _Features), ("output", _DecBuffer), ("options", _Options)]


@lru_cache(maxsize=1)
def libwebp() -> ctypes.CDLL | None:
    """libwebp as Pillow loaded it, with the three entry points typed; None where it cannot be reached."""
    try:
        from PIL import _webp  # type: ignore[attr-defined]

        lib = ctypes.CDLL(_webp.__file__)
        lib.WebPInitDecoderConfigInternal.argtypes = [ctypes.POINTER(_Config), ctypes.c_int]
        lib.WebPInitDecoderConfigInternal.restype = ctypes.c_int
        features = ctypes.POINTER(_Features)
        lib.WebPGetFeaturesInternal.argtypes = [ctypes.c_char_p, ctypes.c_size_t, features, ctypes.c_int]
        lib.WebPGetFeaturesInternal.restype = ctypes.c_int
        lib.WebPDecode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_Config)]
        lib.WebPDecode.restype = ctypes.c_int
    except (ImportError, OSError, AttributeError):
        return None
    return lib


@dataclass(frozen=True)
class StillWebP:
    """What a still WebP's header says, in Pillow's terms: ``mode`` RGB or RGBA, ``info`` its metadata."""

    width: int
    height: int
    mode: str
    info: dict[str, bytes] = field(default_factory=dict)


def read_still(data: bytes) -> StillWebP | None:
    """The header of the still WebP in ``data``; None for an animation, or where Pillow should decide.

    A header libwebp cannot parse is left to Pillow, so a broken file is rejected in Pillow's
    words, as before this path existed.
    """
    lib = libwebp()
    if lib is None:
        return None
    features = _Features()
    if lib.WebPGetFeaturesInternal(data, len(data), ctypes.byref(features), DECODER_ABI_VERSION) != 0:
        return None
    if features.has_animation or features.width <= 0 or features.height <= 0:
        return None
    mode = "RGBA" if features.has_alpha else "RGB"
    return StillWebP(features.width, features.height, mode, _metadata(data))


def _metadata(data: bytes) -> dict[str, bytes]:
    """ICCP, EXIF and XMP chunks, kept as libwebp's demuxer (and so Pillow) keeps them: when VP8X flags them."""
    if data[12:16] != b"VP8X" or len(data) < 21:
        return {}
    flags = data[20]
    end = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    info: dict[str, bytes] = {}
    offset = 12
    while offset + 8 <= end:
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        if offset + 8 + size > end:
            break
        flag, name = _METADATA_CHUNKS.get(data[offset : offset + 4], (0, ""))
        if flags & flag and name not in info:
            info[name] = data[offset + 8 : offset + 8 + size]
        offset += 8 + size + (size & 1)
    return info


def decode_scaled(data: bytes, still: StillWebP, target: tuple[int, int]) -> Image.Image:
    """The pixels of ``still`` (read from ``data``) at ``target``, scaled by libwebp as they are decoded.

    A bitstream libwebp cannot decode is a :class:`CorruptImage`, as Pillow's decode of it
    would be.
    """
    lib = libwebp()
    assert lib is not None, "read_still found libwebp"
    config = _Config()
    if not lib.WebPInitDecoderConfigInternal(ctypes.byref(config), DECODER_ABI_VERSION):
        raise CorruptImage("decoding: libwebp refused its decoder configuration")
    mode, width, height = still.mode, *target
    channels = len(mode)
    pixels = ctypes.create_string_buffer(width * height * channels)
    if target != (still.width, still.height):
        config.options.use_scaling = 1
        config.options.scaled_width, config.options.scaled_height = width, height
    config.output.colorspace = _COLORSPACES[mode]
    config.output.is_external_memory = 1
    config.output.u.RGBA.rgba = ctypes.cast(pixels, ctypes.c_void_p)
    config.output.u.RGBA.stride = width * channels
    config.output.u.RGBA.size = len(pixels)
    status = lib.WebPDecode(data, len(data), ctypes.byref(config))
    if status == _OUT_OF_MEMORY:  # the Lambda's limit, not the image's verdict (as in imaging.decode)
        raise MemoryError("libwebp: out of memory while decoding")
    if status != 0:
        raise CorruptImage(f"decoding: libwebp: {_STATUS.get(status, f'status {status}')}")
    return Image.frombuffer(mode, target, pixels, "raw", mode, 0, 1)
