"""The imaging the handlers do for one upload, with no AWS: the baseline the local engine is held to.

Validate probes the upload, chooses the output format and decodes it once, at the largest
size, into the intermediate; each Resize reads the intermediate and cuts its own size
(docs/performance.md, "The Map design"). ``local_engine.py`` and ``pipeline_overhead.py`` time
this over every core, and ``map_design.py`` times its two halves.

Until 2026-12-02 those two benchmarks called ``make_thumbnail`` once per size instead: a decode
of the original each, which is what the handlers did before the intermediate. That baseline
took 1.5-1.9x as long as this one on the 24 MP batch, so it flattered the pipeline's ratio by
as much; ``per_size`` keeps it, for comparison with the figures measured against it.
"""

from __future__ import annotations

from pathlib import Path

from imaging import (
    ImagingSettings,
    choose_format,
    fit_within,
    intermediate_bytes,
    make_thumbnail,
    prepare,
    probe,
    read_intermediate,
    thumbnail_from,
    upright_size,
)


def validate_part(data: bytes, settings: ImagingSettings) -> tuple[bytes, tuple[int, int], str]:
    """What Validate computes: (the intermediate's bytes, the upright size, the output format)."""
    facts = probe(data, settings)
    stored = intermediate_bytes(prepare(data, max(settings.sizes), settings))
    return stored, upright_size(facts.width, facts.height, facts.orientation), choose_format(facts, settings)


def resize_part(stored: bytes, upright: tuple[int, int], size: int, settings: ImagingSettings, fmt: str) -> int:
    """What one Resize computes from the intermediate: its thumbnail's byte count."""
    return len(thumbnail_from(read_intermediate(stored), *fit_within(*upright, size), settings, fmt).data)


def handlers(path: str) -> int:
    """The handlers' imaging for the upload at ``path``: Validate's, then every size's Resize."""
    settings = ImagingSettings()
    stored, upright, fmt = validate_part(Path(path).read_bytes(), settings)
    return sum(resize_part(stored, upright, size, settings, fmt) for size in settings.sizes)


def per_size(path: str) -> int:
    """The earlier baseline: ``make_thumbnail`` from the original for each size, a decode each."""
    data = Path(path).read_bytes()
    settings = ImagingSettings()
    fmt = choose_format(probe(data, settings), settings)
    return sum(len(make_thumbnail(data, size, settings, fmt).data) for size in settings.sizes)
