"""Sample images for ``thumbs run`` with no path: made here in code, so no licence question arises.

They show the range the pipeline handles: a large photo-like JPEG, an EXIF-rotated photo, a
transparent PNG, an animated GIF, a truncated JPEG and a text file pretending to be a JPEG
(the last two are rejected, with their reasons in the records).
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter


def _scene(width: int, height: int) -> Image.Image:
    """Sky, sun, hills and texture: enough structure to judge a thumbnail by eye."""
    sky = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    sky = Image.merge(
        "RGB", [c.point(lambda v, k=k: int(60 + v * k)) for c, k in zip(sky.split(), (0.3, 0.5, 0.75), strict=True)]
    )
    draw = ImageDraw.Draw(sky)
    draw.ellipse((width * 0.7, height * 0.1, width * 0.85, height * 0.1 + width * 0.15), fill=(255, 220, 120))
    for i, colour in enumerate(((40, 110, 50), (30, 90, 40), (20, 70, 30))):
        top = height * (0.55 + 0.12 * i)
        points = [
            (x, top + (height * 0.06) * ((x * (i + 3) // max(1, width // 7)) % 3))
            for x in range(0, width + 1, max(1, width // 14))
        ]
        draw.polygon([(0, height), *points, (width, height)], fill=colour)
    noise = Image.effect_noise((width, height), 24).convert("RGB")
    return Image.blend(sky, noise, 0.08).filter(ImageFilter.SMOOTH)


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def sample_images(photo_size: tuple[int, int] = (6000, 4000)) -> dict[str, bytes]:
    """The samples by name; ``thumbs verify`` takes a smaller photo, so it runs in seconds."""
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; only a viewer that applies EXIF shows it upright
    exif[0x010F] = "thumbs sample camera"  # Make: something the thumbnails must not carry
    logo = Image.new("RGBA", (800, 800), (0, 0, 0, 0))
    ImageDraw.Draw(logo).ellipse((100, 100, 700, 700), fill=(220, 40, 90, 200), outline=(255, 255, 255, 255), width=30)
    frames = [_scene(480, 320).rotate(angle, fillcolor=(0, 0, 0)) for angle in (0, 10, 20, 30)]
    return {
        "large-photo.jpg": _encode(_scene(*photo_size), "JPEG", quality=90),
        "rotated-exif.jpg": _encode(_scene(1600, 1200).transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif),
        "transparent-logo.png": _encode(logo, "PNG"),
        "animated.gif": _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=120, loop=0),
        "broken.jpg": _encode(_scene(800, 600), "JPEG")[:4000],
        "notes-not-an-image.jpg": b"This is a text file with a .jpg name; the pipeline decides from the bytes.\n",
    }


def write_samples(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for name, data in sample_images().items():
        path = folder / name
        path.write_bytes(data)
        made.append(path)
    return made
