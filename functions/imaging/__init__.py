"""The imaging core: bytes and settings in, facts and thumbnail bytes out. No AWS, no I/O.

Every function here is bundled with all three Lambdas and used directly by the tests and
the local runtime; keeping it free of boto3 is what lets it be tested without moto.
"""

from .errors import (
    REJECTION_CODES,
    CorruptImage,
    EmptyObject,
    ImageRejected,
    TooLarge,
    TooManyPixels,
    UnsupportedFormat,
)
from .probe import ImageFacts, check_byte_size, probe
from .settings import ConfigError, ImagingSettings
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
