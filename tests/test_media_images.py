"""media_jobs/images.py: plain Pillow functions, tested without a database or a broker."""

import io

import pytest
from PIL import ExifTags, Image, ImageCms, JpegImagePlugin

from media_jobs import images
from tests import hostile_files

LIMITS = images.Limits(
    max_bytes=2 * 1024 * 1024, max_pixels=50_000_000, max_aspect_ratio=10, max_frames=100
)
WIDTHS = [160, 480, 1200]


def renditions_of(data, widths=WIDTHS, limits=LIMITS):
    return images.make_renditions(io.BytesIO(data), widths, limits)


def opened(rendition):
    image = Image.open(io.BytesIO(rendition.data))
    image.load()
    return image


def jpegs(rendered):
    return [opened(r) for r in rendered if r.format == "jpeg"]


def exif_with(**tags):
    exif = Image.Exif()
    for name, value in tags.items():
        exif[ExifTags.Base[name]] = value
    return exif


def close(color, expected, tolerance=12):
    return all(abs(a - b) <= tolerance for a, b in zip(color, expected, strict=True))


# --- what comes out -------------------------------------------------------------------------------


def test_a_jpeg_gets_a_webp_and_a_jpeg_per_width():
    rendered = renditions_of(hostile_files.jpeg((1600, 1200)))

    assert [(r.width, r.height, r.format) for r in rendered] == [
        (160, 120, "webp"),
        (160, 120, "jpeg"),
        (480, 360, "webp"),
        (480, 360, "jpeg"),
        (1200, 900, "webp"),
        (1200, 900, "jpeg"),
    ]
    for rendition in rendered:
        image = opened(rendition)
        assert image.format == rendition.format.upper()
        assert image.size == (rendition.width, rendition.height)


@pytest.mark.parametrize(
    "source_width, expected",
    [(2000, [160, 480, 1200]), (800, [160, 480, 800]), (300, [160, 300]), (100, [100])],
)
def test_renditions_are_never_wider_than_the_picture(source_width, expected):
    rendered = renditions_of(hostile_files.jpeg((source_width, source_width // 2)))

    assert sorted({r.width for r in rendered}) == expected
    assert all(opened(r).width <= source_width for r in rendered)


def test_exif_orientation_is_applied():
    # Stored sideways, as a phone held upright writes it: 800 x 400 with the left half red,
    # and EXIF orientation 6 ("turn 90 degrees clockwise to view").
    stored = Image.new("RGB", (800, 400), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 400, 400))
    out = io.BytesIO()
    stored.save(out, format="JPEG", quality=95, exif=exif_with(Orientation=6))

    rendered = renditions_of(out.getvalue())

    for image in jpegs(rendered):
        assert image.height == 2 * image.width  # upright: portrait
        # Turned clockwise, the stored left edge is the top.
        assert close(image.getpixel((image.width // 2, 2)), (255, 0, 0), 40)
        assert close(image.getpixel((image.width // 2, image.height - 3)), (0, 0, 255), 40)
        assert "exif" not in image.info  # and the orientation tag is not there to apply twice


@pytest.mark.parametrize("with_profile", [False, True], ids=["no ICC profile", "ICC profile"])
def test_no_metadata_reaches_a_rendition(with_profile):
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = hostile_files.jpeg(
        (640, 480),
        exif=exif_with(Make="SpyCam", Model="GPS 3000", Software="secret"),
        comment=b"shot at 51.5007 N, 0.1246 W",
        **({"icc_profile": profile} if with_profile else {}),
    )
    with Image.open(io.BytesIO(source)) as image:  # the source does carry them
        assert image.getexif() and image.info["comment"]
        assert bool(image.info.get("icc_profile")) == with_profile

    for rendition in renditions_of(source):
        image = opened(rendition)
        assert not image.getexif()
        for key in ("exif", "icc_profile", "comment", "xmp", "XML:com.adobe.xmp"):
            assert key not in image.info, (rendition.format, key)
        assert b"SpyCam" not in rendition.data and b"51.5007" not in rendition.data


def transparent_png(mode):
    """A picture with a fully transparent left half, in `mode`."""
    image = Image.new("RGBA", (400, 300), (30, 120, 30, 255))
    image.paste((0, 0, 0, 0), (0, 0, 200, 300))
    if mode == "LA":
        return hostile_files.png(image.convert("LA"))
    if mode == "P":
        # A palette picture with one transparent colour, as GIFs and many PNGs are.
        image = image.convert("RGB").quantize(4)
        transparent_index = image.getpixel((0, 0))
        out = io.BytesIO()
        image.save(out, format="PNG", transparency=transparent_index)
        return out.getvalue()
    return hostile_files.png(image)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_becomes_white_in_jpeg_and_stays_in_webp(mode):
    source = transparent_png(mode)
    with Image.open(io.BytesIO(source)) as image:
        assert image.mode == mode

    rendered = renditions_of(source)

    for image in jpegs(rendered):
        assert image.mode == "RGB"
        assert close(image.getpixel((5, image.height // 2)), (255, 255, 255))
    for rendition in rendered:
        if rendition.format == "webp":
            image = opened(rendition)
            assert image.mode == "RGBA"
            assert image.getpixel((5, image.height // 2))[3] == 0


def cmyk_jpeg():
    out = io.BytesIO()
    Image.new("CMYK", (400, 300), (0, 255, 255, 0)).save(out, format="JPEG")  # pure red ink
    return out.getvalue()


def sixteen_bit_png():
    # Mid grey in 16 bits (32768 of 65535): a naive conversion clips it to white.
    return hostile_files.png(Image.new("I;16", (400, 300), 32768))


@pytest.mark.parametrize(
    "make_source, expected_color",
    [
        (cmyk_jpeg, (255, 0, 0)),
        (sixteen_bit_png, (128, 128, 128)),
        (lambda: hostile_files.png(Image.new("1", (400, 300), 1)), (255, 255, 255)),
        (lambda: hostile_files.png(Image.new("L", (400, 300), 60)), (60, 60, 60)),
    ],
    ids=["CMYK", "I;16", "1-bit", "L"],
)
def test_every_colour_mode_gives_an_rgb_jpeg(make_source, expected_color):
    rendered = renditions_of(make_source())

    for image in jpegs(rendered):
        assert image.mode == "RGB"
        assert close(image.getpixel((10, 10)), expected_color, 20)


def test_an_animation_is_shown_by_its_first_frame():
    frames = [Image.new("RGB", (320, 240), color) for color in ((255, 0, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])

    [image, *_] = jpegs(renditions_of(out.getvalue()))

    assert close(image.getpixel((10, 10)), (255, 0, 0), 30)


# --- speed: draft() and reduce() ------------------------------------------------------------------


def test_a_large_jpeg_is_decoded_at_a_fraction_of_its_size():
    image = Image.open(io.BytesIO(hostile_files.noisy_jpeg((4000, 3000))))

    images.decode_for_width(image, 1200)

    # The decoder scaled by 1/2 while decoding (DCT scaling): a quarter of the pixels.
    assert image.size == (2000, 1500)


def test_draft_is_asked_for_the_largest_rendition_turned_like_the_stored_picture(monkeypatch):
    asked = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        asked.append(size)
        return real_draft(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    out = io.BytesIO()
    # 4000 x 3000 stored, shown upright as 3000 x 4000 (orientation 6).
    Image.new("RGB", (4000, 3000), (90, 90, 90)).save(
        out, format="JPEG", exif=exif_with(Orientation=6)
    )

    rendered = renditions_of(out.getvalue())

    assert asked == [(1600, 1200)]  # 1200 wide upright is 1600 wide as stored
    assert max(r.width for r in rendered) == 1200
    assert all(r.height == r.width * 4 // 3 for r in rendered)


def test_a_png_is_not_drafted_but_still_made():
    rendered = renditions_of(hostile_files.png(hostile_files.gradient((2400, 1800))))
    assert max(r.width for r in rendered) == 1200


# --- hostile files --------------------------------------------------------------------------------


HOSTILE = hostile_files.corpus(LIMITS.max_bytes)


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda h: h.name)
def test_hostile_files_are_refused_with_a_reason(hostile):
    with pytest.raises(images.ImageRejected, match=hostile.reason):
        renditions_of(hostile.data)


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda h: h.name)
def test_the_header_check_catches_what_the_header_shows(hostile):
    if hostile.caught_at_upload:
        with pytest.raises(images.ImageRejected, match=hostile.reason):
            images.inspect(io.BytesIO(hostile.data), LIMITS)
    else:
        assert images.inspect(io.BytesIO(hostile.data), LIMITS).format == "JPEG"


def test_the_refusal_is_a_permanent_error_so_the_job_is_not_retried():
    from jobs.errors import PermanentError

    assert issubclass(images.ImageRejected, PermanentError)


def test_formats_pillow_knows_but_we_do_not_take_are_refused():
    for image_format in ("BMP", "TIFF", "ICO"):
        out = io.BytesIO()
        Image.new("RGB", (64, 64)).save(out, format=image_format)
        with pytest.raises(images.ImageRejected, match="not a picture we can read"):
            images.inspect(io.BytesIO(out.getvalue()), LIMITS)


def test_inspect_gives_the_size_as_shown():
    out = io.BytesIO()
    Image.new("RGB", (800, 400)).save(out, format="JPEG", exif=exif_with(Orientation=6))

    info = images.inspect(io.BytesIO(out.getvalue()), LIMITS)

    assert (info.width, info.height) == (400, 800)


def test_inspect_reads_the_header_only():
    info = images.inspect(io.BytesIO(hostile_files.truncated_jpeg()), LIMITS)
    assert (info.format, info.width, info.height, info.frames) == ("JPEG", 800, 600, 1)
    assert info.extension == "jpg"


def test_pillows_guards_stay_on():
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert Image.MAX_IMAGE_PIXELS is not None
    assert LIMITS.max_pixels < Image.MAX_IMAGE_PIXELS  # ours is the stricter, checked first
