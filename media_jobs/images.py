"""Product pictures as plain Pillow functions: check an upload, make its renditions.

Nothing here knows about Django models or Celery; the functions take a file object and
settings-like values and return bytes, so they are tested without a database or a broker.

Every file we are handed may be hostile. The rules:
- `inspect()` reads the header only (cheap: no pixel is decoded) and refuses what it can see
  there: a format we do not take, too many pixels (a decompression bomb), a strip of 1 x 60000,
  hundreds of frames, too many bytes. The upload form calls it, and so does the worker,
  because a file can reach the worker without going through the form.
- `make_renditions()` decodes, and refuses what only decoding reveals: a truncated or damaged
  file. Pillow's own guards stay on: Image.MAX_IMAGE_PIXELS raises DecompressionBombError,
  and ImageFile.LOAD_TRUNCATED_IMAGES stays False, so a truncated file is an error, not a grey
  half picture.
- Every refusal is an `ImageRejected` (a PermanentError) whose text is a sentence for staff;
  no Pillow exception leaves this module unexplained.
"""

import io
import struct
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from jobs.errors import PermanentError

# Pillow names the formats by their plugins. MPO is the JPEG variant many cameras and phones
# write (a JPEG with extra pictures appended); it is a JPEG for our purposes.
ACCEPTED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF")
ACCEPTED_LABEL = "JPEG, PNG, WebP or GIF"
# Only these plugins may even try to identify a file. Without the list, Image.open tries
# every format Pillow knows, EPS (which runs Ghostscript) and PSD included.
OPEN_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")

# WebP's method 6 took 3.5x as long as 4 on a detailed 1200 px picture, for the same size.
WEBP_OPTIONS = {"quality": 80, "method": 4}
JPEG_OPTIONS = {"quality": 82, "optimize": True, "progressive": True}

# Renditions carry no colour profile; browsers take such pictures as sRGB.
SRGB_PROFILE = ImageCms.createProfile("sRGB")

# What a broken file makes Pillow raise, besides UnidentifiedImageError (an OSError): the
# plugins use OSError, SyntaxError, ValueError, EOFError and struct.error for bad data.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


class ImageRejected(PermanentError):
    """A file we make no renditions of. `str(exc)` says why, in words for staff."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_pixels: int
    max_aspect_ratio: float
    max_frames: int


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's name: "JPEG", "PNG", ...
    width: int  # as shown: with its EXIF orientation applied
    height: int
    frames: int
    size_bytes: int

    @property
    def extension(self):
        return {"JPEG": "jpg", "MPO": "jpg"}.get(self.format, self.format.lower())


@dataclass(frozen=True)
class RenderedImage:
    width: int
    height: int
    format: str  # "webp" or "jpeg"
    data: bytes


def inspect(fileobj, limits):
    """Check `fileobj` from its header alone; return its ImageInfo or raise ImageRejected."""
    with open_checked(fileobj, limits) as (_image, info):
        return info


def make_renditions(fileobj, widths, limits):
    """The renditions of the picture in `fileobj`: a WebP and a JPEG for each width.

    Widths larger than the picture are left out (we never upscale); a picture narrower than
    the largest width gets one at its own width instead, so it is always shown as sharp as it
    is. Returns a list of RenderedImage, smallest first. Raises ImageRejected.
    """
    rendered = []
    with open_checked(fileobj, limits) as (image, _info):
        targets = target_widths(upright_size(image)[0], widths)
        # The largest rendition decides how much detail we need: decode no more than that
        # (draft, for JPEG) and shrink the rest at once (reduce): every step after works on a
        # picture about 2x the largest rendition, not on all 48 megapixels of a PNG.
        picture = decode_for_width(image, max(targets))
        _explained(ImageOps.exif_transpose, picture, doing="turning the picture", in_place=True)
        picture = reduce_for_width(picture, max(targets))
        picture = to_rgb_or_rgba(picture)
        for width in targets:
            height = max(1, round(picture.height * width / picture.width))
            # reducing_gap: resize() too reduces by a whole factor first, then finishes with
            # Lanczos from at most 2x the target size. Pillow premultiplies alpha while
            # resizing RGBA, so the edges of a transparent area do not go dark.
            resized = picture.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=2.0)
            # No metadata travels on: EXIF (GPS position, camera serial), XMP, comments, the
            # ICC profile (already applied). JPEG's encoder would copy a comment otherwise.
            resized.info = {}
            rendered.append(RenderedImage(width, height, "webp", encode_webp(resized)))
            rendered.append(RenderedImage(width, height, "jpeg", encode_jpeg(resized)))
    return rendered


@contextmanager
def open_checked(fileobj, limits):
    """Open `fileobj` (header only) and yield (image, ImageInfo) if it passes every check."""
    size_bytes = _size_of(fileobj)
    if size_bytes > limits.max_bytes:
        size, limit = _megabytes(size_bytes), _megabytes(limits.max_bytes)
        raise ImageRejected(f"the file is {size}, over the limit of {limit}")
    with _open(fileobj) as image:
        yield image, _check(image, size_bytes, limits)


def target_widths(source_width, widths):
    """The widths to make for a picture `source_width` pixels wide: never wider than it."""
    fitting = sorted({w for w in widths if w <= source_width})
    if not fitting or fitting[-1] < max(widths):
        fitting.append(source_width)  # the picture itself is the sharpest rendition there is
    return sorted(set(fitting))


def upright_size(image):
    """(width, height) as the picture is meant to be seen, once its EXIF orientation applies."""
    if _orientation(image) in (5, 6, 7, 8):  # turned by 90 degrees
        return image.height, image.width
    return image.size


def decode_for_width(image, width):
    """Decode `image` at no less than `width` pixels wide (upright), and as little more as can be.

    For a JPEG, draft() makes the decoder itself scale by 1/2, 1/4 or 1/8 while decoding
    (libjpeg's DCT scaling): a 12 MP photo needed 1200 px wide is decoded at 2000 x 1500, in
    a quarter of the memory. Other formats decode whole (see reduce_for_width). Returns the
    loaded image; raises ImageRejected for a truncated or damaged file.
    """
    upright_width, upright_height = upright_size(image)
    height = max(1, round(upright_height * width / upright_width))
    if image.format in ("JPEG", "MPO"):
        wanted = (width, height)
        if _orientation(image) in (5, 6, 7, 8):
            wanted = (height, width)  # the decoder works on the stored, sideways picture
        image.draft(image.mode, wanted)
    _explained(image.load, doing="decoding the picture")
    return image


# reduce() averages pixel values: right for these, wrong for palette indices (P, PA); 1-bit
# and 16-bit greyscale are converted first, at full size (they are rarely large).
REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA", "CMYK")


def reduce_for_width(image, width):
    """Shrink by a whole factor with reduce() (fast box averaging), staying 2x `width` or wider.

    What draft() does for JPEG while decoding, for the other formats just after.
    """
    factor = image.width // (2 * width)
    if factor < 2 or image.mode not in REDUCIBLE_MODES:
        return image
    return _explained(image.reduce, factor, doing="shrinking the picture")


def to_rgb_or_rgba(image):
    """The picture in sRGB, as RGB, or as RGBA if it has transparency.

    Covers what uploads bring: palette (P) with or without a transparent colour, greyscale
    with alpha (LA), 1-bit, 16-bit greyscale (I;16), CMYK, and pictures with an ICC colour
    profile (phones shoot in Display P3): those are converted to sRGB, because the profile
    is stripped from the renditions and browsers assume sRGB without one.
    """
    if image.mode == "P":
        has_transparency = "transparency" in image.info or image.palette.mode == "RGBA"
        image = image.convert("RGBA" if has_transparency else "RGB")
    elif image.mode.startswith("I") or image.mode == "F":
        image = sixteen_bit_to_8_bit(image)
    elif image.mode in ("1", "LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA" if "A" in image.mode or "a" in image.mode else "L")

    target = "RGBA" if image.mode == "RGBA" else "RGB"
    profile = image.info.get("icc_profile")
    if profile and image.mode in ("RGB", "RGBA", "CMYK", "L"):
        try:
            return ImageCms.profileToProfile(
                image, io.BytesIO(profile), SRGB_PROFILE, outputMode=target
            )
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a broken or unusual profile: the plain conversion below is close enough
    if image.mode != target:
        image = _explained(image.convert, target, doing=f"converting {image.mode} to {target}")
    return image


def sixteen_bit_to_8_bit(image):
    """Greyscale with more than 8 bits per pixel (I;16 PNGs, scans) as 8-bit L.

    A plain convert("L") clips every value above 255 to white; scale the range down instead.
    """
    image = image.convert("I") if image.mode != "F" else image
    return image.point(lambda value: value / 257).convert("L")  # 65535 / 257 = 255


def flatten_on_white(image):
    """An RGB picture: a transparent one laid on a white background (JPEG has no alpha)."""
    if image.mode != "RGBA":
        return image
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image.getchannel("A"))
    return background


def encode_webp(image):
    if image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255):
        image = image.convert("RGB")  # alpha that is opaque everywhere only costs bytes
    out = io.BytesIO()
    image.save(out, format="WEBP", **WEBP_OPTIONS)
    return out.getvalue()


def encode_jpeg(image):
    out = io.BytesIO()
    flatten_on_white(image).save(out, format="JPEG", **JPEG_OPTIONS)
    return out.getvalue()


# --- the checks -------------------------------------------------------------------------------


def _open(fileobj):
    """Image.open limited to our formats, with every failure put in words. Header only."""
    fileobj.seek(0)
    try:
        return Image.open(fileobj, formats=OPEN_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"the picture has too many pixels to open safely ({exc})") from exc
    except UnidentifiedImageError:
        fileobj.seek(0)
        if _looks_like_svg(fileobj.read(1024)):
            raise ImageRejected(
                f"SVG pictures are not accepted (they can carry scripts): upload {ACCEPTED_LABEL}"
            ) from None
        raise ImageRejected(
            f"this file is not a picture we can read: upload {ACCEPTED_LABEL}"
        ) from None
    except DECODE_ERRORS as exc:
        raise ImageRejected(f"the picture's header is damaged ({_exc_text(exc)})") from exc


def _check(image, size_bytes, limits):
    if image.format not in ACCEPTED_FORMATS:
        raise ImageRejected(f"{image.format} pictures are not accepted: upload {ACCEPTED_LABEL}")
    width, height = upright_size(image)
    if width < 1 or height < 1:
        raise ImageRejected(f"the picture is {width} x {height} pixels: it is empty")
    if width * height > limits.max_pixels:
        raise ImageRejected(
            f"the picture is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels);"
            f" the limit is {limits.max_pixels / 1e6:.0f} megapixels"
        )
    ratio = max(width, height) / min(width, height)
    if ratio > limits.max_aspect_ratio:
        raise ImageRejected(
            f"the picture is {width} x {height} pixels: sides in a ratio over "
            f"{limits.max_aspect_ratio:g} to 1 make no product picture"
        )
    # Counting frames reads the frame headers, not their pixels (and the file is at most
    # max_bytes long): cheap enough for a check at upload.
    frames = _explained(lambda: getattr(image, "n_frames", 1), doing="counting frames")
    if frames > limits.max_frames:
        raise ImageRejected(
            f"the picture is an animation of {frames} frames; the limit is {limits.max_frames}"
        )
    return ImageInfo(image.format, width, height, frames, size_bytes)


def _orientation(image):
    try:
        return image.getexif().get(ExifTags.Base.Orientation, 1)
    except DECODE_ERRORS:
        return 1  # unreadable EXIF: show the picture as it is stored


def _explained(function, *args, doing, **kwargs):
    """Call `function(*args, **kwargs)`, turning Pillow's errors on bad data into ImageRejected."""
    try:
        return function(*args, **kwargs)
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"the picture has too many pixels to open safely ({exc})") from exc
    except DECODE_ERRORS as exc:
        raise ImageRejected(
            f"the file is truncated or damaged ({doing} failed: {_exc_text(exc)})"
        ) from exc


def _looks_like_svg(head):
    return b"<svg" in head.lower()


def _size_of(fileobj):
    size = getattr(fileobj, "size", None)
    if size is None:
        fileobj.seek(0, io.SEEK_END)
        size = fileobj.tell()
    fileobj.seek(0)
    return size


def _megabytes(size):
    return f"{size / 1024 / 1024:.1f} MB"


def _exc_text(exc):
    return str(exc) or type(exc).__name__
