"""Pictures for the media tests, good and hostile, made in code (no binary files in git).

Each hostile file is one that has crashed or stalled real thumbnailers: a decompression bomb,
a strip of 1 x 60000 pixels, hundreds of frames, a truncated file, an SVG with a script, a
file that is no picture at all, one too large to accept.
"""

import io
import struct
import zlib
from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageDraw


def jpeg(size=(1600, 1200), *, exif=None, **save_options):
    """A smooth JPEG (small file, like a product shot on a plain background)."""
    image = gradient(size)
    out = io.BytesIO()
    if exif is not None:
        save_options["exif"] = exif
    image.save(out, format="JPEG", quality=85, **save_options)
    return out.getvalue()


def gradient(size, mode="RGB"):
    """A picture with structure in both directions, so resizing and turning it shows."""
    width, height = size
    image = Image.new("RGB", size, (230, 230, 230))
    horizontal = Image.linear_gradient("L").resize(size)
    image.paste((40, 90, 200), mask=horizontal)
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, width * 3 // 4, height * 3 // 4), fill=(200, 60, 40))
    return image.convert(mode)


def noisy_jpeg(size=(4000, 3000), quality=90):
    """A photo-like JPEG: noise does not compress, like the detail of a real photo."""
    image = Image.effect_noise(size, 60).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def png(image):
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# --- hostile files ----------------------------------------------------------------------------


def not_an_image():
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def svg_with_script():
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
        b"<script>alert(document.cookie)</script><rect width='100' height='100'/></svg>"
    )


@cache
def truncated_jpeg():
    """A real JPEG cut off half-way: the header is fine, the pixels stop."""
    data = noisy_jpeg((800, 600), quality=80)
    return data[: len(data) // 2]


@cache
def png_bomb(width, height):
    """A real 1-bit PNG of width x height black pixels: a few KB on disk, width*height in memory.

    Pillow decodes 1-bit pictures at a byte per pixel: 20000 x 20000 is 400 MB decoded from
    about 50 KB. Written chunk by chunk, so making it costs no memory either.
    """
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then the bits of the row
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND")


def _chunk(kind, data=b""):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def long_strip():
    """1 x 60000 pixels: tiny in memory, but 'resize to 160 wide' makes it 9.6 million tall."""
    return png(Image.new("L", (1, 60000), 128))


@cache
def many_frames_gif(frames=300):
    # Greyscale frames of different shades: Pillow merges frames that are the same.
    first, *rest = [Image.new("L", (16, 16), i % 256) for i in range(frames)]
    out = io.BytesIO()
    first.save(out, format="GIF", save_all=True, append_images=rest, duration=40, loop=0)
    return out.getvalue()


def padded_jpeg(size_bytes):
    """A valid JPEG padded with trailing bytes to `size_bytes`: too large, cheap to make."""
    data = jpeg((64, 64))
    return data + b"\x00" * (size_bytes - len(data))


@dataclass(frozen=True)
class Hostile:
    name: str
    filename: str
    data: bytes
    reason: str  # a word the refusal must contain
    caught_at_upload: bool  # False: only decoding shows it, the worker's job fails


def corpus(max_upload_bytes):
    """Every hostile file, for a site whose upload limit is `max_upload_bytes`."""
    return [
        Hostile("not an image", "report.jpg", not_an_image(), "not a picture", True),
        Hostile("truncated JPEG", "cut.jpg", truncated_jpeg(), "truncated", False),
        Hostile("SVG with a script", "logo.svg", svg_with_script(), "SVG", True),
        # Past Pillow's own guard (2 x Image.MAX_IMAGE_PIXELS): Image.open refuses it.
        Hostile("decompression bomb", "bomb.png", png_bomb(20000, 20000), "pixels", True),
        # Under Pillow's guard, over ours (MEDIA_MAX_PIXELS, 50 MP by default).
        Hostile("64 megapixels", "big.png", png_bomb(8000, 8000), "megapixels", True),
        Hostile("1 x 60000 strip", "strip.png", long_strip(), "ratio", True),
        Hostile("300-frame GIF", "anim.gif", many_frames_gif(), "300 frames", True),
        Hostile("oversized file", "huge.jpg", padded_jpeg(max_upload_bytes + 2**20), "MB", True),
    ]
