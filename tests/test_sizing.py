"""Inputs that read blank or wrong with PaddleOCR's one fixed sizing and a white background, made
here so each case is reproducible: white text on transparency, gray+alpha, glyphs ~290 px tall, a
line image 22 px high, small text on a small page (samples from the issue that reported them).
And large text read from a smaller detector input, checked against the full-size reading."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from svtr_label.core.geometry import quad_iou
from svtr_label.core.images import decode_image, read_image
from svtr_label.core.synth import find_font, make_page, scaled_page
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


# --- large text: a smaller detector input -------------------------------------------------------


def _bgr(page) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(page.image.convert("RGB"))[:, :, ::-1])


def _line_heights(page) -> list[float]:
    return sorted(q[2][1] - q[0][1] for q in (ln.quad for ln in page.lines))


@pytest.mark.parametrize("factor", [0.5, 1.0, 2.0, 3.0])
def test_character_height_estimate_errs_low_and_follows_the_scale(factor):
    page = scaled_page(make_page(7000, n_lines=22), factor)
    chars = sizing.char_height(_bgr(page))
    one = sizing.char_height(_bgr(make_page(7000, n_lines=22)))
    assert chars is not None and one is not None
    assert 0.4 * _line_heights(page)[2] <= chars <= _line_heights(page)[2]  # below the 10th-percentile line
    assert chars == pytest.approx(one * factor, rel=0.15)


def test_noise_reads_as_small_text_and_shapes_give_no_estimate(real_images):
    from svtr_label.core.images import read_image

    # A black JPEG: its compression noise makes specks, which pull the estimate low, the safe side.
    dark = cv2.resize(read_image(real_images / "empty_black.jpg").bgr, (2268, 1344))
    assert (sizing.char_height(dark) or 0) < 8
    assert sizing.large_text_sizing(dark, 2000) is None
    blank = np.full((2000, 1500, 3), 255, dtype=np.uint8)
    assert sizing.char_height(blank) is None
    blank[100:400, 100:700] = 0  # one picture: no text size to tell
    assert sizing.char_height(blank) is None
    assert sizing.large_text_sizing(blank, 2000) is None


def test_large_text_gets_a_smaller_detector_input_and_small_text_does_not():
    big = sizing.large_text_sizing(_bgr(scaled_page(make_page(7001, n_lines=22), 2.0)), 2000)
    assert big is not None
    assert sizing.MIN_REDUCED_SIDE <= big.long_side <= 0.8 * 2000
    assert big.kwargs == {"text_det_limit_side_len": big.long_side, "text_det_limit_type": "max"}
    for factor in (0.5, 0.75):  # lines 13 to 28 px: the normal sizing
        assert sizing.large_text_sizing(_bgr(scaled_page(make_page(7001, n_lines=22), factor)), 2000) is None
    # A 300-dpi A4 scan (capped at 2000 px): 8 pt text keeps the normal sizing, 10 pt is read ~12 % smaller.
    for points, reduced in ((8, False), (10, True)):
        a4 = Image.new("RGB", (2480, 3508), "white")
        draw = ImageDraw.Draw(a4)
        for row in range(60):
            draw.text((200, 150 + row * 52), "Invoice total amount due 2026 balance", font=_font(points * 300 // 72), fill=(0, 0, 0))
        sized = sizing.large_text_sizing(np.asarray(a4)[:, :, ::-1], 2000)
        assert (sized is not None) == reduced, points
        assert sized is None or sized.long_side >= 0.8 * 2000


def test_a_reduced_reading_holds_only_with_real_text_seen_tall_enough():
    reduced = sizing.ReducedSizing(scale=0.5, long_side=1000)
    assert reduced.holds(_reading(("Invoice 12", 0.99, 40), ("Total", 0.98, 36)))  # 18 px as seen
    assert not reduced.holds(_reading(("Invoice 12", 0.99, 40), ("Total", 0.98, 20)))  # 10 px as seen
    assert not reduced.holds(_reading())
    assert not reduced.holds(_reading(("-", 0.6, 80), ("C", 0.9, 60)))


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


@pytest.mark.pipeline
def test_large_text_reads_the_same_from_a_smaller_detector_input(engine, fixed_engine, monkeypatch):
    """Pages at twice their size: the reduced pass is the reading kept, and it reads what the
    full-size pass reads (exact lines, boxes on the original page)."""
    pages = [scaled_page(make_page(7100 + i, n_lines=22), 2.0) for i in range(3)]
    used = []
    real = sizing.large_text_sizing
    monkeypatch.setattr(sizing, "large_text_sizing", lambda *a: used.append(real(*a)) or used[-1])
    for page in pages:
        got = engine.predict_one(_encoded(page))
        full = fixed_engine.predict_one(_encoded(page))
        assert sorted(texts(got)) == sorted(texts(full)) == sorted(ln.text for ln in page.lines)
        for region in got.regions:  # on the original page, where the full-size pass puts it, around its line
            # (a text may stand on a page twice: each box is compared with the nearest of its text)
            assert max(quad_iou(region.points, r.points) for r in full.regions if r.text == region.text) > 0.75
            assert max(quad_iou(region.points, ln.quad) for ln in page.lines if ln.text == region.text) > 0.5
    assert len(used) == 3 and all(r is not None and r.long_side < 1400 for r in used)


@pytest.mark.pipeline
def test_small_print_under_large_shapes_falls_back_to_the_normal_sizing(engine, monkeypatch):
    """Shapes fool the size estimate (most ink components are 60 px squares); the small print is
    not seen at the reduced size, so the reading does not hold and the normal sizing reads it."""
    img = Image.new("RGB", (1800, 2400), "white")
    draw = ImageDraw.Draw(img)
    for i in range(180):
        x, y = 60 + (i % 18) * 95, 60 + (i // 18) * 140
        draw.rectangle((x, y, x + 60, y + 60), fill=(0, 0, 0))
    for row, line in enumerate(("Invoice total due 4520", "Payment reference 7781")):
        draw.text((80, 1700 + row * 60), line, font=_font(22), fill=(0, 0, 0))
    tried = []
    real = sizing.large_text_sizing
    monkeypatch.setattr(sizing, "large_text_sizing", lambda *a: tried.append(real(*a)) or tried[-1])
    page = engine.predict_one(_encoded_image(img))
    assert tried and tried[0] is not None  # the estimate was fooled
    found = " ".join(texts(page))
    assert "Invoice total due 4520" in found and "Payment reference 7781" in found


def _encoded(page) -> bytes:
    return _encoded_image(page.image)


def _encoded_image(img: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
