"""The imaging core: bytes and settings in, facts and thumbnail bytes out. No AWS, no I/O.

Every function here is bundled with all three Lambdas and used directly by the tests and
the local runtime; keeping it free of boto3 is what lets it be tested without moto.

The settings and the rejections import no Pillow. Everything that decodes lives in ``facts``
and ``thumbnail``, which load on the first use of one of their names (PEP 562): Record and
Plan use only the settings and the errors, so their cold start does not pay Pillow's import
(about a third of it), while ``from imaging import probe`` works as before.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .errors import (
    REJECTION_CODES,
    CorruptImage,
    EmptyObject,
    ImageRejected,
    TooLarge,
    TooManyPixels,
    UnsupportedFormat,
)
from .settings import ConfigError, ImagingSettings

if TYPE_CHECKING:
    from .facts import ImageFacts, check_byte_size, probe
    from .thumbnail import (
        Thumbnail,
        choose_format,
        fit_within,
        intermediate_bytes,
        make_thumbnail,
        prepare,
        read_intermediate,
        thumbnail_from,
        upright_size,
    )

# The names that need Pillow, by the module that defines them
_DECODING = {
    "facts": ("ImageFacts", "check_byte_size", "probe"),
    "thumbnail": (
        "Thumbnail",
        "choose_format",
        "fit_within",
        "intermediate_bytes",
        "make_thumbnail",
        "prepare",
        "read_intermediate",
        "thumbnail_from",
        "upright_size",
    ),
}
_MODULE_OF = {name: module for module, names in _DECODING.items() for name in names}


def __getattr__(name: str) -> object:
    """Import the module that defines ``name`` on its first use, and keep the name here."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "REJECTION_CODES",
    "ConfigError",
    "CorruptImage",
    "EmptyObject",
    "ImageFacts",
    "ImageRejected",
    "ImagingSettings",
    "Thumbnail",
    "TooLarge",
    "TooManyPixels",
    "UnsupportedFormat",
    "check_byte_size",
    "choose_format",
    "fit_within",
    "intermediate_bytes",
    "make_thumbnail",
    "prepare",
    "probe",
    "read_intermediate",
    "thumbnail_from",
    "upright_size",
]
