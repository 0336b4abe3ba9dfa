"""Inputs that read blank or wrong with PaddleOCR's one fixed sizing and a white background, made
here so each case is reproducible: white text on transparency, gray+alpha, glyphs ~290 px tall, a
line image 22 px high, small text on a small page (samples from the issue that reported them)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from svtr_label.core.images import decode_image, read_image
from svtr_label.core.synth import find_font
from svtr_label.ocr import sizing


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(find_font(), size)


def _save(img: Image.Image, path):
    img.save(path)
    return path


def white_text_on_transparency(path):
    img = Image.new("RGBA", (900, 200), (0, 0, 0, 0))
    ImageDraw.Draw(img).text((40, 60), "White Text Here 2026", font=_font(56), fill=(255, 255, 255, 255))
    return _save(img, path)


def light_gray_alpha(path):
    img = Image.new("LA", (700, 160), (255, 0))
    ImageDraw.Draw(img).text((30, 40), "Light Gray Alpha 88", font=_font(48), fill=(240, 255))
    return _save(img, path)


def huge_glyphs_1bit(path):
    """A 1-bit scan whose capitals are ~290 px tall."""
    img = Image.new("L", (2000, 700), 255)
    ImageDraw.Draw(img).text((80, 60), "TEST", font=_font(400), fill=0)
    return _save(img.convert("1"), path)


def line_22px(path):
    img = Image.new("RGB", (420, 22), "white")
    ImageDraw.Draw(img).text((4, 1), "Invoice total due now 4520", font=_font(17), fill=(0, 0, 0))
    return _save(img, path)


def texts(page):
    return [r.text for r in page.regions]


# --- decoding: the background transparency is composited on ---------------------------------


def test_light_text_on_transparency_gets_a_dark_background(tmp_path):
    for make in (white_text_on_transparency, light_gray_alpha):
        img = decode_image(make(tmp_path / f"{make.__name__}.png").read_bytes())
        assert img.bgr[0, 0].tolist() == [0, 0, 0], make.__name__
        assert img.bgr.max() >= 230  # the text itself is still light


def test_dark_text_on_transparency_keeps_white(tmp_path, real_images):
    img = read_image(real_images / "black_font_color_transparent.png")
    assert img.bgr[0, 0].tolist() == [255, 255, 255]
    empty = Image.new("RGBA", (40, 40), (255, 255, 255, 0))
    assert decode_image(_save(empty, tmp_path / "empty.png").read_bytes()).bgr[0, 0].tolist() == [255, 255, 255]


# --- sizing, without models ---------------------------------------------------------------


def test_tiny_images_are_padded_not_blown_up_and_points_map_back():
    line = np.full((27, 420, 3), 250, dtype=np.uint8)
    fitted = sizing.fit_small_image(line)
    assert fitted.bgr.shape[:2] == (64, 420) and fitted.scale == 1.0 and fitted.top == 18
    assert fitted.bgr[0, 0].tolist() == [250, 250, 250]  # padded with the image's own paper
    assert fitted.to_original([(10, 18), (30, 45), (500, 70)], 420, 27) == [(10.0, 0.0), (30.0, 27.0), (420.0, 27.0)]

    tiny = sizing.fit_small_image(np.full((11, 65, 3), 255, dtype=np.uint8))
    assert tiny.scale == pytest.approx(24 / 11) and tiny.bgr.shape[0] == 64
    page = np.zeros((900, 700, 3), dtype=np.uint8)
    assert sizing.fit_small_image(page).bgr is page


def _reading(*lines: tuple[str, float, float]) -> sizing.Reading:
    """Lines of (text, score, height) as the pipeline returns them."""
    polys = tuple(np.array([[0, 0], [200, 0], [200, h], [0, h]], dtype=np.float32) for _, _, h in lines)
    return sizing.Reading(polys, tuple(t for t, _, _ in lines), tuple(s for _, s, _ in lines))


def test_second_pass_only_for_nothing_fragments_or_small_text():
    assert sizing.second_pass(_reading(), 2000, 700) == {"text_det_limit_side_len": 640, "text_det_limit_type": "max"}
    assert sizing.second_pass(_reading(("-", 0.6, 80), ("C", 0.9, 60)), 2000, 700)["text_det_limit_type"] == "max"
    assert sizing.second_pass(_reading(), 500, 300) is None  # already small: nothing to shrink
    assert sizing.second_pass(_reading(("Invoice 12", 0.99, 40), ("Total", 0.98, 36)), 900, 1200) is None
    small = sizing.second_pass(_reading(("tiny words here", 0.9, 16), ("more", 0.9, 18)), 709, 132)
    assert small == {"text_det_limit_side_len": round(132 * 32 / 17), "text_det_limit_type": "min"}
    capped = sizing.second_pass(_reading(("tiny words here", 0.9, 12),), 3900, 3000)
    assert capped is None  # 4000 px is PaddleOCR's cap: no room to enlarge


def test_the_reading_with_more_sure_text_wins():
    fragments = _reading(("-", 0.6, 80), ("C", 0.9, 60))
    word = _reading(("TEST", 0.99, 90))
    assert sizing.better(fragments, word) is word
    assert sizing.better(word, fragments) is word
    assert sizing.better(word, _reading(("TEST", 0.99, 90))) is word  # a tie keeps the first


# --- the real pipeline ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixed_engine(services):
    """The bundled profile with PaddleOCR's single fixed sizing: what the inputs read like before."""
    models = replace(services.settings.models, profile="bundled", adaptive_sizing=False)
    return services.engine(models).load()


@pytest.mark.pipeline
def test_inputs_that_read_blank_or_wrong_now_read_right(engine, fixed_engine, tmp_path, real_images):
    huge = huge_glyphs_1bit(tmp_path / "huge.png")
    assert texts(fixed_engine.predict_one(huge)) == []  # the case this fixes
    assert texts(engine.predict_one(huge)) == ["TEST"]
    page = engine.predict_one(huge)
    (region,) = page.regions
    ys = [y for _, y in region.points]
    assert max(ys) - min(ys) > 200  # the box is on the original page, around the letters

    en = real_images / "en.jpg"  # 709x132: its bold title is lost at PaddleOCR's sizing
    assert not any("MovieShots Dataset" in t for t in texts(fixed_engine.predict_one(en)))
    assert any("MovieShots Dataset" in t for t in texts(engine.predict_one(en)))

    assert texts(engine.predict_one(white_text_on_transparency(tmp_path / "w.png"))) == ["White Text Here 2026"]
    assert texts(engine.predict_one(light_gray_alpha(tmp_path / "la.png"))) == ["Light Gray Alpha 88"]


@pytest.mark.pipeline
def test_a_small_line_image_stays_one_box(services, tmp_path):
    """PP-OCRv5 mobile split a 22 px high line into one box per word when it was upscaled to 64 px."""
    line = line_22px(tmp_path / "line.png")
    v5 = replace(services.settings.models, profile="bundled-v5")
    assert len(services.engine(replace(v5, adaptive_sizing=False)).predict_one(line).regions) > 1
    for profile in ("bundled", "bundled-v5"):
        page = services.engine(replace(services.settings.models, profile=profile)).predict_one(line)
        assert texts(page) == ["Invoice total due now 4520"], profile
        (region,) = page.regions
        assert all(0 <= x <= 420 and 0 <= y <= 22 for x, y in region.points)


@pytest.mark.pipeline
def test_ordinary_pages_take_one_pass(engine, synth_set, monkeypatch):
    """No second pass on pages of ordinary text: adaptive sizing costs them nothing."""
    folder, pages = synth_set
    passes = []
    real_second_pass = sizing.second_pass
    monkeypatch.setattr(sizing, "second_pass", lambda *a: passes.append(real_second_pass(*a)) or passes[-1])
    for p in pages:
        engine.predict_one(folder / p.name)
    assert len(passes) == len(pages) and not any(passes)
