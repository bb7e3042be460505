"""The imaging core on the project's own generated images: every promise of the thumbnail contract."""

from __future__ import annotations

import io

import pytest
from imaging import (
    REJECTION_CODES,
    ConfigError,
    CorruptImage,
    EmptyObject,
    ImagingSettings,
    TooLarge,
    TooManyPixels,
    UnsupportedFormat,
    choose_format,
    fit_within,
    make_thumbnail,
    prepare,
    probe,
)
from PIL import Image, ImageChops, ImageCms, ImageStat

from tests.images import encode, jpeg_with_orientation, photo, png_claiming

SETTINGS = ImagingSettings()


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    """Mean per-channel difference of what a viewer sees: both images over black.

    The colour under a transparent pixel is invisible, and a lossy WebP encoder is free to change it.
    """
    a, b = _over_black(a), _over_black(b).resize(a.size)
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def _over_black(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("RGB")


def thumb(data: bytes, size: int = 64, settings: ImagingSettings = SETTINGS):
    return make_thumbnail(data, size, settings, choose_format(probe(data, settings), settings))


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(
    ("width", "height", "size", "expected"),
    [
        (4000, 3000, 256, (256, 192)),
        (1800, 1200, 256, (256, 171)),
        (3000, 4000, 256, (192, 256)),
        (100, 50, 256, (100, 50)),  # never upscaled
        (1, 20000, 256, (1, 256)),  # a strip keeps at least 1 px
        (20000, 1, 256, (256, 1)),
        (1, 1, 128, (1, 1)),
    ],
)
def test_fit_within_caps_the_longest_side(width, height, size, expected):
    assert fit_within(width, height, size) == expected


def test_probe_reports_header_facts_without_decoding():
    data = jpeg_with_orientation(photo(320, 200), 6)
    facts = probe(data, SETTINGS)
    assert (facts.format, facts.width, facts.height, facts.mode) == ("JPEG", 200, 320, "RGB")
    assert (facts.frames, facts.orientation, facts.has_alpha) == (1, 6, False)


def test_probe_counts_frames_and_sees_alpha():
    frames = [Image.new("RGBA", (40, 30), (60 * i, 0, 0, 100)) for i in range(3)]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    facts = probe(data, SETTINGS)
    assert facts.frames == 3
    assert facts.has_alpha


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    upright = photo(320, 200)
    result = thumb(jpeg_with_orientation(upright, orientation), 160)
    assert (result.width, result.height) == (160, 100)
    out = opened(result.data)
    assert mean_difference(out, upright) < 8
    # A wrong orientation would be far off: the card is asymmetric.
    assert mean_difference(out.transpose(Image.Transpose.ROTATE_180), upright) > 30


def test_metadata_is_stripped_including_gps():
    data = jpeg_with_orientation(photo(), 3, gps=True)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)  # the input really has GPS
    out = opened(thumb(data).data)
    assert not out.getexif()
    assert "exif" not in out.info and "icc_profile" not in out.info and "xmp" not in out.info


def test_alpha_is_kept_as_webp_by_default_and_png_on_request():
    rgba = photo(200, 100).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((200, 100)))
    data = encode(rgba, "PNG")
    webp = thumb(data)
    assert webp.format == "webp" and opened(webp.data).mode == "RGBA"
    png = thumb(data, settings=ImagingSettings(alpha_format="png"))
    out = opened(png.data)
    assert png.format == "png" and out.mode == "RGBA"
    assert out.getchannel("A").getextrema()[0] < 40  # transparency survived the resize


def test_alpha_is_composited_on_the_background_for_jpeg():
    clear = Image.new("RGBA", (100, 100), (255, 0, 0, 0))
    settings = ImagingSettings(output_format="jpeg", background="#00ff00")
    out = opened(thumb(encode(clear, "PNG"), settings=settings).data)
    assert out.mode == "RGB"
    r, g, b = out.getpixel((10, 10))
    assert g > 240 and r < 20 and b < 20


def test_opaque_images_become_jpeg_in_auto_mode():
    assert thumb(encode(photo(), "PNG")).format == "jpeg"


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif"])
def test_output_is_deterministic_and_in_the_chosen_format(fmt):
    data = encode(photo(640, 480), "PNG")
    settings = ImagingSettings(output_format=fmt)
    first, second = thumb(data, 128, settings), thumb(data, 128, settings)
    assert first.data == second.data
    assert opened(first.data).format == {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}[fmt]
    assert first.content_type == f"image/{fmt}"


def test_png_output_carries_an_srgb_marker_and_nothing_else():
    out = thumb(encode(photo(), "PNG"), settings=ImagingSettings(output_format="png"))
    chunks = []
    body = out.data[8:]
    while body:
        length = int.from_bytes(body[:4], "big")
        chunks.append(body[4:8])
        body = body[12 + length :]
    assert chunks == [b"IHDR", b"sRGB", b"IDAT", b"IEND"]


def test_cmyk_with_adobe_inversion_becomes_correct_rgb():
    red = Image.new("RGB", (64, 64), (220, 30, 30))
    data = encode(red.convert("CMYK"), "JPEG", quality=95)  # Pillow writes Adobe (inverted) CMYK
    out = opened(thumb(data, 32).data)
    r, g, b = out.getpixel((16, 16))
    assert r > 180 and g < 80 and b < 80


def test_embedded_icc_profile_is_converted_to_srgb():
    # A Lab-profiled image: the pixels only mean the right colour through the profile.
    lab = ImageCms.createProfile("LAB")
    to_lab = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), lab, "RGB", "LAB")
    lab_pixels = ImageCms.applyTransform(Image.new("RGB", (32, 32), (20, 120, 220)), to_lab)
    out = opened(thumb(encode(lab_pixels, "TIFF"), 16).data)
    r, g, b = out.getpixel((8, 8))
    assert abs(r - 20) < 12 and abs(g - 120) < 12 and abs(b - 220) < 12


def test_sixteen_bit_grey_is_scaled_not_clipped():
    grey = Image.new("I;16", (32, 32), 32768)  # mid grey in 16 bits
    out = opened(thumb(encode(grey, "PNG"), 16).data)
    assert 120 <= out.convert("L").getpixel((4, 4)) <= 135


def test_animation_gives_its_first_frame():
    frames = [Image.new("RGB", (50, 50), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out = opened(thumb(data, 32).data)
    r, _, b = out.convert("RGB").getpixel((10, 10))
    assert r > 200 and b < 50


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", EmptyObject),
        (b"hello, I am a text file named photo.jpg", UnsupportedFormat),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", UnsupportedFormat),
        (encode(photo(), "JPEG")[:400], CorruptImage),
        (png_claiming(100_000, 100_000), TooManyPixels),
    ],
    ids=["empty", "text", "svg", "truncated-jpeg", "bomb-header"],
)
def test_bad_input_is_rejected_with_a_specific_code(data, error):
    with pytest.raises(error) as caught:
        thumb(data)
    assert caught.value.code in REJECTION_CODES
    assert caught.value.message


def test_an_unaccepted_format_is_named():
    with pytest.raises(UnsupportedFormat, match="ICO"):
        probe(encode(photo(32, 32), "ICO"), SETTINGS)


def test_byte_and_pixel_limits_come_from_settings():
    data = encode(photo(320, 200), "PNG")
    with pytest.raises(TooLarge):
        probe(data, ImagingSettings(max_bytes=len(data) - 1))
    with pytest.raises(TooManyPixels):
        probe(data, ImagingSettings(max_pixels=320 * 200 - 1))
    assert probe(data, ImagingSettings(max_pixels=320 * 200)).width == 320


def test_the_name_never_decides_the_format():
    png_bytes = encode(photo(), "PNG")  # whatever a key says, these bytes are a PNG
    assert probe(png_bytes, SETTINGS).format == "PNG"


@pytest.mark.parametrize(
    "values",
    [
        {"sizes": []},
        {"sizes": [0]},
        {"sizes": [128, 128]},
        {"sizes": "256"},
        {"output_format": "gif"},
        {"jpeg_quality": 101},
        {"background": "white"},
        {"max_pixels": 10**12},
        {"max_bytes": 0},
        {"colour": "red"},
    ],
)
def test_bad_settings_fail_with_the_key_named(values):
    with pytest.raises(ConfigError) as caught:
        ImagingSettings.from_mapping(values)
    assert next(iter(values)) in str(caught.value)


def test_settings_round_trip_through_the_environment():
    settings = ImagingSettings(sizes=(64, 512), output_format="webp", webp_quality=70)
    assert ImagingSettings.from_env({"THUMBNAIL_SETTINGS": settings.to_json()}) == settings


@pytest.mark.parametrize(("width", "height"), [(1, 1), (1, 20000), (20000, 1)])
def test_tiny_and_strip_images_keep_at_least_one_pixel_a_side(width, height):
    data = encode(Image.new("RGB", (width, height), (200, 10, 10)), "PNG")
    for size in (128, 1024):
        result = thumb(data, size)
        assert result.width >= 1 and result.height >= 1 and max(result.width, result.height) <= size
        assert opened(result.data).size == (result.width, result.height)


def test_a_png_with_a_huge_compressed_text_chunk_is_rejected_not_inflated():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "A" * (64 * 1024 * 1024), zip=True)  # 64 MiB of text, a few KB on disk
    data = encode(photo(32, 32), "PNG", pnginfo=info)
    assert len(data) < 200_000
    with pytest.raises(CorruptImage, match="too large"):
        probe(data, SETTINGS)


def test_a_png_with_a_huge_icc_profile_is_rejected_or_ignored_never_inflated():
    profile = b"\x00" * (64 * 1024 * 1024)  # a 64 MiB "profile", a few KB compressed in iCCP
    data = encode(photo(32, 32), "PNG", icc_profile=profile)
    assert len(data) < 200_000
    try:
        result = thumb(data, 16)
    except CorruptImage as exc:
        assert "too large" in exc.message
    else:
        assert "icc_profile" not in opened(result.data).info


def test_an_exif_block_that_lies_about_its_offsets_does_not_matter():
    data = bytearray(jpeg_with_orientation(photo(), 6))
    start = data.index(b"Exif\x00\x00") + 6
    data[start + 4 : start + 8] = (0x7FFFFFF0).to_bytes(4, "little" if data[start] == 0x49 else "big")  # IFD0 offset
    result = thumb(bytes(data), 64)  # orientation unreadable: treated as upright, still a thumbnail
    assert max(result.width, result.height) == 64


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_the_intermediate_is_uncompressed_tiff_holding_every_pixel_exactly(mode):
    from imaging import intermediate_bytes, read_intermediate

    image = photo(320, 200).convert(mode)  # every mode prepare() gives
    data = intermediate_bytes(image)
    assert data[:4] in (b"II*\x00", b"MM\x00*")
    back = read_intermediate(data)
    assert (back.format, back.info.get("compression")) == ("TIFF", "raw")
    assert (back.mode, back.size, back.tobytes()) == (mode, image.size, image.tobytes())


def test_an_intermediate_written_as_png_before_tiff_is_still_read():
    """An execution that Validate ran before the change is redriven after it: its Resize reads the PNG."""
    from imaging import read_intermediate

    image = photo(320, 200).convert("RGBA")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=0)  # what Validate wrote before
    back = read_intermediate(buffer.getvalue())
    assert (back.format, back.mode, back.tobytes()) == ("PNG", "RGBA", image.tobytes())


def _noisy(mode: str, width: int, height: int) -> Image.Image:
    """Pixels that differ everywhere, so that any band seam or misplaced block changes the result."""
    card = photo(width, height)
    noise = Image.effect_noise((width, height), 90).convert("RGB")
    mixed = Image.blend(card, noise, 0.5)
    if mode == "RGBA":
        mixed = mixed.convert("RGBA")
        mixed.putalpha(Image.linear_gradient("L").resize((width, height)))
    elif mode == "LA":
        mixed = mixed.convert("LA")
        mixed.putalpha(Image.radial_gradient("L").resize((width, height)))
    elif mode == "P":
        mixed = mixed.quantize(64)
        mixed.info["transparency"] = 3
    elif mode == "I;16":
        mixed = mixed.convert("L").point(lambda v: v * 257, "I").convert("I;16")
    return mixed


def _pillow_resize(image: Image.Image, size: int) -> Image.Image:
    """What Pillow's own resize gives after the whole image is converted to a resamplable mode."""
    if image.mode == "I;16":
        image = image.point(lambda v: v / 257).convert("L")
    elif image.mode == "P":
        image = image.convert("RGBA")
    target = fit_within(image.width, image.height, size)
    return image.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "I;16"])
@pytest.mark.parametrize(("width", "height", "size"), [(1001, 757, 128), (1001, 757, 600), (301, 3001, 256)])
def test_converted_images_are_shrunk_band_by_band_to_the_pixels_pillow_gives_whole(mode, width, height, size):
    # The conversion (premultiplied alpha, palette to RGBA, 16 to 8 bits) is done a band of rows
    # at a time so that no second full-size copy exists; these sizes span several bands, with a
    # partial reduction block at the bottom and one case (600 px) with nothing to box-reduce.
    image = _noisy(mode, width, height)
    ours = prepare(encode(image, "PNG"), size, SETTINGS)
    expected = _pillow_resize(image, size)
    assert ours.mode == expected.mode and ours.size == expected.size
    assert ImageChops.difference(ours, expected).getbbox() is None


def test_fine_patterns_do_not_alias_in_a_dct_scaled_jpeg():
    # 2 px stripes, as in fabric or text, must come out flat grey as a Lanczos pass over every
    # pixel gives them. libjpeg's 1/2, 1/4 and 1/8 scales do; its 3/8 scale (reachable through
    # Pillow's draft internals, and 0.82-0.85x the time at 1024 px from 12 MP) gave visible
    # stripes, a mean difference of 10. This keeps any faster decode honest.
    from PIL import ImageDraw

    pattern = Image.new("L", (500, 500), 0)
    draw = ImageDraw.Draw(pattern)
    for y in range(0, 500, 2):
        draw.line((0, y, 499, y), fill=255)
    for x in range(0, 500, 7):
        draw.line((x, 0, x, 249), fill=128)
    data = encode(pattern, "JPEG", quality=90)
    for size in (128, 200, 256):
        ours = opened(thumb(data, size).data)
        reference = opened(data).resize(ours.size, Image.Resampling.LANCZOS)
        assert mean_difference(ours, reference) < 2, size
