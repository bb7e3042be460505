"""The imaging settings: one validated value shared by the CDK app, the handlers and the local run.

The CDK app builds it from ``cdk.json`` context and hands it to every function as one JSON
environment variable, so the deployed pipeline and the local one cannot disagree about
sizes, formats or limits.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

OUTPUT_FORMATS = ("auto", "jpeg", "png", "webp", "avif")
ALPHA_FORMATS = ("webp", "png")
ENV_VAR = "THUMBNAIL_SETTINGS"
# What a thumbnail's bytes depend on. A record keeps their fingerprint, so a backfill after a
# change in cdk.json remakes exactly the thumbnails made under other settings.
OUTPUT_SETTINGS = (
    "sizes",
    "output_format",
    "alpha_format",
    "jpeg_quality",
    "webp_quality",
    "avif_quality",
    "background",
)
# Bump when the imaging code makes different bytes from the same settings (a new resampling
# step, an encoder option): every record's fingerprint goes stale and a backfill remakes it.
IMAGING_REVISION = 1

# Pillow refuses anything above 2 * Image.MAX_IMAGE_PIXELS as a decompression bomb before our
# own check could run; a limit above it would be a promise we cannot keep.
PILLOW_HARD_PIXEL_LIMIT = 178_956_970
S3_MAX_OBJECT_BYTES = 5 * 1024**4


class ConfigError(ValueError):
    """A configuration value is out of range; raised at synth time so nothing bad deploys."""


@dataclass(frozen=True)
class ImagingSettings:
    """What to make from each upload and what to refuse."""

    sizes: tuple[int, ...] = (128, 256, 1024)
    output_format: str = "auto"
    alpha_format: str = "webp"
    jpeg_quality: int = 85
    webp_quality: int = 82
    avif_quality: int = 60
    background: str = "#ffffff"
    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 100_000_000

    def __post_init__(self) -> None:
        sizes = tuple(self.sizes)
        object.__setattr__(self, "sizes", sizes)
        if not sizes:
            raise ConfigError("sizes: give at least one thumbnail size")
        for size in sizes:
            if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 8192:
                raise ConfigError(f"sizes: {size!r} is not a whole number of pixels from 1 to 8192")
        if len(set(sizes)) != len(sizes):
            raise ConfigError(f"sizes: {list(sizes)} lists a size twice")
        if self.output_format not in OUTPUT_FORMATS:
            raise ConfigError(f"output_format: {self.output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}")
        if self.alpha_format not in ALPHA_FORMATS:
            raise ConfigError(f"alpha_format: {self.alpha_format!r} is not one of {', '.join(ALPHA_FORMATS)}")
        for name in ("jpeg_quality", "webp_quality", "avif_quality"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
                raise ConfigError(f"{name}: {value!r} is not a whole number from 1 to 100")
        if not isinstance(self.background, str) or not re.fullmatch(r"#[0-9a-fA-F]{6}", self.background):
            raise ConfigError(f"background: {self.background!r} is not a colour like #ffffff")
        if not isinstance(self.max_bytes, int) or not 1 <= self.max_bytes <= S3_MAX_OBJECT_BYTES:
            raise ConfigError(f"max_bytes: {self.max_bytes!r} is not a byte count from 1 to 5 TiB")
        if not isinstance(self.max_pixels, int) or not 1 <= self.max_pixels <= PILLOW_HARD_PIXEL_LIMIT:
            raise ConfigError(
                f"max_pixels: {self.max_pixels!r} is not from 1 to {PILLOW_HARD_PIXEL_LIMIT} "
                "(Pillow's own decompression-bomb ceiling)"
            )

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        value = self.background.lstrip("#")
        return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> ImagingSettings:
        """Build from untrusted key/values (cdk.json context), refusing unknown keys so typos fail loudly."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown imaging setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(values)
        if "sizes" in values:
            if not isinstance(values["sizes"], (list, tuple)):
                raise ConfigError(f"sizes: {values['sizes']!r} is not a list of sizes")
            values["sizes"] = tuple(values["sizes"])
        return cls(**values)

    def fingerprint(self, *, limits: bool = False) -> str:
        """A short hash of what the thumbnails depend on; with ``limits``, of what a rejection depends on too.

        Sizes are a set (their order in cdk.json changes nothing), so they are sorted first.
        A rejection is kept as up to date only under the same limits: raising ``max_pixels``
        makes earlier TooManyPixels rejections stale, while a success stays up to date.
        """
        names = [f.name for f in fields(self)] if limits else list(OUTPUT_SETTINGS)
        values: dict[str, Any] = {name: getattr(self, name) for name in names}
        values["sizes"] = sorted(self.sizes)
        values["revision"] = IMAGING_REVISION
        text = json.dumps(values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ImagingSettings:
        """Read what the stack put in the function's environment; defaults when run by hand."""
        raw = (environ if environ is not None else os.environ).get(ENV_VAR)
        return cls.from_mapping(json.loads(raw)) if raw else cls()
