"""Property: whatever is done to a valid image, the core thumbnails it or rejects it with a documented code.

Hypothesis truncates, flips bits in, and rewrites the header of real images (the corpus when
it is there, else the project's generated fixtures). Any other exception, an invalid output
or a case slower than its deadline fails the test. Runs are derandomized so CI is
repeatable; run ``pytest tests/test_fuzz.py --hypothesis-seed=N`` to explore further.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imaging import REJECTION_CODES, ImageRejected, ImagingSettings, choose_format, make_thumbnail, probe
from PIL import Image

from tests.conftest import CORPUS
from tests.images import encode, jpeg_with_orientation, photo

SETTINGS = ImagingSettings(sizes=(64, 256))
CORPUS_SEEDS = (
    "hopper.jpg", "hopper.png", "hopper.gif", "hopper.webp", "hopper.tif", "transparent.png",
    "pil_sample_cmyk.jpg", "icc_profile.png", "iss634.gif", "avif/hopper.avif", "bmp/q/rgba32.bmp",
)  # fmt: skip


def seeds() -> list[bytes]:
    found = [(CORPUS / name).read_bytes() for name in CORPUS_SEEDS if (CORPUS / name).exists()]
    return found or [
        jpeg_with_orientation(photo(96, 64), 6),
        encode(photo(96, 64).convert("RGBA"), "PNG"),
        encode(photo(96, 64), "GIF"),
        encode(photo(96, 64), "WEBP"),
        encode(photo(96, 64), "TIFF"),
    ]


SEEDS = seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "header"]))
        if kind == "truncate" and len(data) > 1:
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif kind == "flip" and data:
            position = draw(st.integers(0, len(data) - 1))
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "header" and data:
            position = draw(st.integers(0, min(64, len(data) - 1)))
            data[position] = draw(st.integers(0, 255))
    return bytes(data)


@settings(
    max_examples=1000,
    deadline=timedelta(seconds=5),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(mutated())
def test_mutated_images_are_thumbnailed_or_cleanly_rejected(data):
    try:
        facts = probe(data, SETTINGS)
        fmt = choose_format(facts, SETTINGS)
        for size in SETTINGS.sizes:
            result = make_thumbnail(data, size, SETTINGS, fmt)
            image = Image.open(io.BytesIO(result.data))
            image.load()
            assert image.size == (result.width, result.height) and 1 <= max(image.size) <= size
    except ImageRejected as exc:
        assert exc.code in REJECTION_CODES and exc.message


@pytest.mark.parametrize("cut", [1, 8, 64, 300])
def test_every_seed_cut_short_is_rejected_not_crashed(cut):
    for seed in SEEDS:
        with pytest.raises(ImageRejected):
            data = seed[:cut]
            make_thumbnail(data, 64, SETTINGS, choose_format(probe(data, SETTINGS), SETTINGS))
