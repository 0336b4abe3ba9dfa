"""Every kind of image a user may bring decodes to upright BGR with dark text on white."""

import io

import numpy as np
import pytest
from PIL import Image

from svtr_label.core.images import decode_image, find_images, read_image
from svtr_label.errors import ImageError
from svtr_label.settings import ImageLimits

from conftest import CORRUPT_EXIF_TAGS, jpeg_with_exif


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def marked_image() -> Image.Image:
    """60x40, white, with a black square in the top-left corner: tells orientation apart."""
    img = Image.new("RGB", (60, 40), "white")
    img.paste((0, 0, 0), (0, 0, 10, 10))
    return img


# EXIF orientation n: how the stored pixels must be transformed to display upright.
STORE_AS = {
    1: lambda im: im,
    2: lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    3: lambda im: im.transpose(Image.Transpose.ROTATE_180),
    4: lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    5: lambda im: im.transpose(Image.Transpose.TRANSPOSE),
    6: lambda im: im.transpose(Image.Transpose.ROTATE_90),
    7: lambda im: im.transpose(Image.Transpose.TRANSVERSE),
    8: lambda im: im.transpose(Image.Transpose.ROTATE_270),
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    stored = STORE_AS[orientation](marked_image())
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode_image(encode(stored, "JPEG", exif=exif, quality=95), "o.jpg")
    assert (decoded.width, decoded.height) == (60, 40)
    assert decoded.bgr[:8, :8].mean() < 40  # the mark is back in the top-left corner
    assert decoded.bgr[-8:, -8:].mean() > 215


def test_real_exif_rotated_photo(real_images):
    img = read_image(real_images / "img_exif_orientation.jpg")
    raw = Image.open(real_images / "img_exif_orientation.jpg")
    assert raw.getexif().get(0x0112) == 3
    assert (img.width, img.height) == raw.size  # 180 degrees keeps the size


def test_transparent_background_becomes_white(real_images):
    img = read_image(real_images / "black_font_color_transparent.png")
    assert img.bgr.dtype == np.uint8 and img.bgr.shape[2] == 3
    assert np.median(img.bgr) == 255  # background white, not black
    assert img.bgr.min() == 0  # the black text survives


@pytest.mark.parametrize(
    "make",
    [
        lambda im: im.convert("L"),
        lambda im: im.convert("1"),
        lambda im: im.convert("P"),
        lambda im: im.convert("CMYK"),
        lambda im: im.convert("LA"),
        lambda im: Image.fromarray(np.asarray(im.convert("L"), dtype=np.uint16) * 257).convert("I;16"),
    ],
    ids=["gray", "1bit", "palette", "cmyk", "gray+alpha", "16bit"],
)
def test_modes_decode_to_dark_mark_on_white(make):
    converted = make(marked_image())
    fmt = "JPEG" if converted.mode == "CMYK" else ("TIFF" if converted.mode == "I;16" else "PNG")
    decoded = decode_image(encode(converted, fmt), f"x.{fmt.lower()}")
    assert decoded.bgr.shape == (40, 60, 3)
    assert decoded.bgr[:8, :8].mean() < 40
    assert decoded.bgr[-8:, -8:].mean() > 215


def test_palette_with_transparency_is_composited_on_white():
    img = Image.new("P", (20, 20), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 0
    decoded = decode_image(encode(img), "p.png")
    assert decoded.bgr.mean() == 255


def test_same_bytes_same_hash_other_bytes_other_hash():
    a = encode(marked_image())
    b = encode(marked_image().convert("L"))
    assert decode_image(a).sha256 == decode_image(a).sha256 != decode_image(b).sha256


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"hello, this is text", "not an image"),
        (encode(marked_image(), "JPEG")[:200], "damaged or truncated"),
    ],
)
def test_bad_bytes_raise_a_clear_error_naming_the_input(data, message):
    with pytest.raises(ImageError, match=message) as err:
        decode_image(data, "upload/scan-17.jpg")
    assert "upload/scan-17.jpg" in str(err.value)


def test_decompression_bomb_is_refused_before_decoding():
    # A 20000x20000 PNG compresses to a few hundred KB; decoding it would take 1.2 GB.
    big = encode(Image.new("L", (20000, 20000), 255))
    with pytest.raises(ImageError, match="pixel limit"):
        decode_image(big, "bomb.png", limits=ImageLimits(max_pixels=50_000_000))


def test_byte_limit():
    with pytest.raises(ImageError, match="byte limit"):
        decode_image(encode(marked_image()), "big.png", limits=ImageLimits(max_bytes=10))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path)


def test_find_images_expands_folders_and_keeps_named_files(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.JPG", "sub/c.webp", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    named = tmp_path / "notes.txt"
    found = find_images([tmp_path, named])
    assert found == [tmp_path / "a.JPG", tmp_path / "b.png", tmp_path / "sub" / "c.webp", named]


@pytest.mark.parametrize("kind", sorted(CORRUPT_EXIF_TAGS))
def test_a_slightly_corrupt_exif_block_still_decodes_upright(kind):
    """Pillow's exif_transpose raises on these (it re-writes the EXIF block); the pixels are fine."""
    data = jpeg_with_exif(CORRUPT_EXIF_TAGS[kind])
    image = decode_image(data, "corrupt-exif.jpg")
    assert (image.width, image.height) == (32, 64)
