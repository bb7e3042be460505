"""A still WebP is read and decoded by libwebp (``imaging.webp``), not by Pillow's opener.

The path must give what Pillow's full decode gives, the same facts from the header and the
same verdicts, without ever holding the full-size frame.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from imaging import CorruptImage, ImagingSettings, make_thumbnail, prepare, probe
from imaging.decode import still_webp
from imaging.facts import has_alpha, read_orientation
from imaging.thumbnail import fit_within
from imaging.webp import decode_scaled, libwebp, read_still
from PIL import Image, ImageCms

from tests.images import encode, photo
from tests.test_imaging import mean_difference

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ImagingSettings(sizes=(64, 256))


def pillow_facts(data: bytes) -> dict[str, object]:
    """What probe said before this path: Pillow's opener on the same bytes."""
    with Image.open(io.BytesIO(data)) as image:
        return {
            "format": image.format,
            "width": image.width,
            "height": image.height,
            "mode": image.mode,
            "frames": getattr(image, "n_frames", 1),
            "orientation": read_orientation(image, header_only=True),
            "has_alpha": has_alpha(image),
        }


def pillow_thumbnail(data: bytes, target: tuple[int, int]) -> Image.Image:
    """Every pixel decoded by Pillow, then one Lanczos pass: the reference."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.resize(target, Image.Resampling.LANCZOS)


def webp_variants() -> dict[str, bytes]:
    exif = Image.Exif()
    exif[0x0112] = 6
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="3"/></rdf:RDF></x:xmpmeta>'
    )
    return {
        "lossy RGB": encode(photo(), "WEBP", quality=90),
        "lossy RGBA": encode(photo(mode="RGBA"), "WEBP", quality=90),
        "lossless RGBA": encode(photo(mode="RGBA"), "WEBP", lossless=True),
        "EXIF orientation 6": encode(photo(), "WEBP", exif=exif.tobytes()),
        "ICC profile": encode(photo(), "WEBP", icc_profile=srgb),
        "XMP orientation 3": encode(photo(), "WEBP", xmp=xmp),
    }


VARIANTS = webp_variants()


def test_libwebp_is_reached_through_pillows_own_link():
    """If this fails, every WebP silently falls back to Pillow's full-size decode."""
    assert libwebp() is not None
    assert still_webp(VARIANTS["lossy RGB"]) is not None


@pytest.mark.parametrize("name", VARIANTS)
def test_probe_of_a_still_webp_says_what_pillows_opener_says(name):
    data = VARIANTS[name]
    assert read_still(data) is not None
    assert probe(data, SETTINGS).to_dict() == pillow_facts(data)


@pytest.mark.parametrize("name", VARIANTS)
def test_the_header_carries_the_metadata_pillow_reads(name):
    data = VARIANTS[name]
    still = read_still(data)
    with Image.open(io.BytesIO(data)) as image:
        expected = {key: image.info[key] for key in ("icc_profile", "exif", "xmp") if image.info.get(key)}
    assert still is not None and still.info == expected


@pytest.mark.parametrize("name", ["lossy RGB", "lossy RGBA", "lossless RGBA"])
@pytest.mark.parametrize("size", [64, 160, 320])
def test_a_scaled_decode_gives_what_a_full_decode_and_lanczos_give(name, size):
    data = VARIANTS[name]
    still = read_still(data)
    assert still is not None
    target = fit_within(still.width, still.height, size)
    ours = decode_scaled(data, still, target)
    assert ours.size == target and ours.mode == still.mode
    # libwebp's scaler averages areas where Lanczos weighs a wider window: close, not equal.
    assert mean_difference(ours, pillow_thumbnail(data, target)) < 4


def test_alpha_is_averaged_premultiplied():
    """Colour under transparent pixels must not bleed into the visible edge when shrinking."""
    image = Image.new("RGBA", (400, 400), (255, 0, 0, 0))  # invisible red
    image.paste((0, 0, 255, 255), (0, 0, 201, 400))  # opaque blue, its edge mid-way through a block
    data = encode(image, "WEBP", lossless=True, exact=True)  # exact: the invisible red is kept
    still = read_still(data)
    assert still is not None
    shrunk = decode_scaled(data, still, (50, 50))
    over_black = Image.alpha_composite(Image.new("RGBA", shrunk.size, (0, 0, 0, 255)), shrunk)
    red, _, blue = (band.getextrema() for band in over_black.convert("RGB").split())
    assert red[1] <= 2, "red from transparent pixels showed through"
    assert blue[1] >= 250


def test_exif_orientation_turns_the_pixels_upright():
    upright = photo(320, 200)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what orientation 6 turns back
    out = prepare(encode(stored, "WEBP", quality=95, exif=exif.tobytes()), 160, SETTINGS)
    assert out.size == (160, 100)
    assert mean_difference(out, upright) < 8
    assert mean_difference(out.transpose(Image.Transpose.ROTATE_180), upright) > 30


def test_an_animation_is_left_to_pillow():
    frames = [photo(), photo().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)
    assert read_still(data) is None
    assert probe(data, SETTINGS).frames == 2
    assert make_thumbnail(data, 64, SETTINGS, "jpeg").width == 64


@pytest.mark.parametrize("cut", [0.4, 0.9])
def test_a_truncated_webp_is_corrupt(cut):
    """The header still reads, so libwebp's decode is what fails, and says so."""
    data = VARIANTS["lossy RGB"][: int(len(VARIANTS["lossy RGB"]) * cut)]
    assert read_still(data) is not None
    with pytest.raises(CorruptImage, match="decoding: libwebp: not enough data"):
        prepare(data, 64, SETTINGS)


FRAME_PROBE = """
import json, sys
from pathlib import Path

def high_water():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

data = Path(sys.argv[1]).read_bytes()
from imaging import ImagingSettings, prepare
from PIL import Image
import PIL.WebPImagePlugin, imaging.webp, io
base = high_water()
if sys.argv[2] == "ours":
    prepare(data, 256, ImagingSettings())
else:
    image = Image.open(io.BytesIO(data))
    image.load()
print(json.dumps(high_water() - base))
"""


def test_the_full_size_frame_never_exists(tmp_path):
    """A 4K WebP's RGB frame is 24.9 MB; the scaled decode's peak stays well below it, Pillow's does not."""
    path = tmp_path / "4k.webp"
    path.write_bytes(encode(photo(3840, 2160), "WEBP", quality=80))
    frame = 3840 * 2160 * 3

    def peak(method: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", FRAME_PROBE, str(path), method],
            env={**os.environ, "PYTHONPATH": str(ROOT / "functions")},
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)

    assert peak("pillow") > frame  # the measure sees a frame when there is one
    assert peak("ours") < frame / 2
