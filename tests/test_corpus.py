"""The imaging core over every file of ../shared/corpus, as its manifest.json says."""

from __future__ import annotations

import io

import pytest
from imaging import REJECTION_CODES, ImageRejected, ImagingSettings, choose_format, make_thumbnail, probe
from PIL import Image

from tests.conftest import corpus_entries
from tests.test_imaging import mean_difference

SETTINGS = ImagingSettings()
ENTRIES = corpus_entries()
_SAME_SIZE_WRONG_ORIENTATIONS = (
    Image.Transpose.FLIP_LEFT_RIGHT,
    Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.ROTATE_180,
)


def thumbnail_of(path, size: int = 256) -> Image.Image:
    data = path.read_bytes()
    result = make_thumbnail(data, size, SETTINGS, choose_format(probe(data, SETTINGS), SETTINGS))
    image = Image.open(io.BytesIO(result.data))
    image.load()
    return image


def by_expectation(expect: str) -> list[dict]:
    return [e for e in ENTRIES if e["expect"] == expect] or [pytest.param(None, marks=pytest.mark.skip("no corpus"))]


@pytest.mark.corpus
@pytest.mark.parametrize("entry", by_expectation("thumbnail"), ids=lambda e: e and e["path"])
def test_thumbnail_entries_get_the_expected_size(corpus, entry):
    image = thumbnail_of(corpus / entry["path"])
    assert list(image.size) == entry["size_256"]
    for size in SETTINGS.sizes:  # every configured size works, none upscaled
        other = thumbnail_of(corpus / entry["path"], size)
        assert max(other.size) <= size and max(other.size) <= max(image.size) * max(1, size / 256)


@pytest.mark.corpus
@pytest.mark.parametrize(
    "entry",
    [e for e in ENTRIES if e.get("same_as") and e["same_as"] != e["path"]] or [None],
    ids=lambda e: e and e["path"],
)
def test_rotated_variants_match_their_upright_original(corpus, entry):
    if entry is None:
        pytest.skip("no corpus")
    ours = thumbnail_of(corpus / entry["path"])
    upright = thumbnail_of(corpus / entry["same_as"])
    right = mean_difference(ours, upright)
    wrong = min(mean_difference(ours.transpose(t), upright) for t in _SAME_SIZE_WRONG_ORIENTATIONS)
    assert right < 6, f"{entry['path']} differs from {entry['same_as']} by {right:.1f}"
    assert right < wrong / 4, f"a wrong orientation ({wrong:.1f}) is not far from ours ({right:.1f})"


@pytest.mark.corpus
@pytest.mark.parametrize("entry", by_expectation("reject"), ids=lambda e: e and e["path"])
def test_reject_entries_raise_a_documented_rejection(corpus, entry):
    data = (corpus / entry["path"]).read_bytes()
    with pytest.raises(ImageRejected) as caught:
        facts = probe(data, SETTINGS)
        make_thumbnail(data, min(SETTINGS.sizes), SETTINGS, choose_format(facts, SETTINGS))
    assert caught.value.code in REJECTION_CODES
    assert caught.value.message


@pytest.mark.corpus
@pytest.mark.parametrize("entry", by_expectation("either"), ids=lambda e: e and e["path"])
def test_either_entries_never_crash(corpus, entry):
    data = (corpus / entry["path"]).read_bytes()
    try:
        facts = probe(data, SETTINGS)
        for size in SETTINGS.sizes:
            result = make_thumbnail(data, size, SETTINGS, choose_format(facts, SETTINGS))
            assert max(result.width, result.height) <= size
    except ImageRejected as exc:
        assert exc.code in REJECTION_CODES


@pytest.mark.corpus
@pytest.mark.parametrize("entry", by_expectation("thumbnail"), ids=lambda e: e and e["path"])
def test_sizes_cut_from_the_intermediate_match_a_direct_decode(corpus, entry):
    """The Map resizes from validate's intermediate; it must give what a direct decode gives."""
    from imaging import fit_within, intermediate_bytes, prepare, read_intermediate, thumbnail_from, upright_size

    data = (corpus / entry["path"]).read_bytes()
    facts = probe(data, SETTINGS)
    fmt = choose_format(facts, SETTINGS)
    base = read_intermediate(intermediate_bytes(prepare(data, max(SETTINGS.sizes), SETTINGS)))
    for size in SETTINGS.sizes:
        width, height = fit_within(*upright_size(facts.width, facts.height, facts.orientation), size)
        cut = Image.open(io.BytesIO(thumbnail_from(base, width, height, SETTINGS, fmt).data))
        direct = Image.open(io.BytesIO(make_thumbnail(data, size, SETTINGS, fmt).data))
        assert cut.size == direct.size, (entry["path"], size)
        # DCT-scaled decoding and Lanczos differ a little on fine detail; a wrong image is far above 10
        assert mean_difference(cut, direct) < 10, (entry["path"], size)


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["orientation/Landscape_6.jpg", "orientation/Portrait_3.jpg", "exif-72dpi-int.jpg"])
def test_real_photos_with_gps_lose_every_tag(corpus, name):
    """A camera photo's own EXIF, plus a GPS position written into it: none of it may reach a thumbnail."""
    original = Image.open(corpus / name)
    exif = original.getexif()
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 12.0), 3: "E", 4: (4.0, 53.0, 30.0)}
    tagged = io.BytesIO()
    original.save(tagged, "JPEG", quality=95, exif=exif.tobytes())
    assert Image.open(tagged).getexif().get_ifd(0x8825)  # the input really carries GPS
    data = tagged.getvalue()
    fmt = choose_format(probe(data, SETTINGS), SETTINGS)
    for size in SETTINGS.sizes:
        out = Image.open(io.BytesIO(make_thumbnail(data, size, SETTINGS, fmt).data))
        assert not out.getexif() and not out.info.get("exif") and not out.info.get("xmp")
        assert b"Exif" not in make_thumbnail(data, size, SETTINGS, fmt).data[:4096]
