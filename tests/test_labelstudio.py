"""Label Studio JSON both ways, checked against Label Studio's own validator."""

import math

import pytest
from label_studio_sdk.label_interface import LabelInterface

from svtr_label.core.geometry import quad_iou, rotated_rect_corners
from svtr_label.errors import ConfigError, RefError
from svtr_label.labelstudio.refs import ImageRef, resolve_local_files
from svtr_label.labelstudio.format import (
    LabelConfig,
    make_task,
    page_to_results,
    recommended_config,
    results_to_regions,
)
from svtr_label.core.page import Page, Region

POLYGON_LABELS = """<View><Image name="img" value="$ocr"/>
<PolygonLabels name="lines" toName="img"><Label value="Printed"/><Label value="Handwritten"/></PolygonLabels>
<TextArea name="txt" toName="img" perRegion="true"/></View>"""
RECTANGLE_LABELS = """<View><Image name="img" value="$ocr"/>
<RectangleLabels name="boxes" toName="img"><Label value="Text"/></RectangleLabels>
<TextArea name="txt" toName="img" perRegion="true"/></View>"""
RECTANGLE_ONLY = """<View><Image name="img" value="$ocr"/><Rectangle name="box" toName="img"/>
<TextArea name="txt" toName="img" perRegion="true"/></View>"""
CONFIGS = {"recommended": recommended_config(), "polygonlabels": POLYGON_LABELS, "rectanglelabels": RECTANGLE_LABELS, "rectangle": RECTANGLE_ONLY}


def sample_page() -> Page:
    rotated = rotated_rect_corners(300.0, 200.0, 240.0, 40.0, 17.0)
    return Page(
        width=800,
        height=600,
        sha256="ab" * 32,
        model_version="det+rec@1234",
        regions=(
            Region("r1", ((10.5, 20.25), (210.0, 22.0), (209.0, 60.0), (9.0, 58.0)), "Invoice 2024", 0.97),
            Region("r2", rotated, "发票号码", 0.51, shape="rectangle"),
            Region("r3", ((700, 500), (820, 500), (820, 640), (700, 640)), "off the edge", 0.9),
        ),
    )


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("shape", [None, "polygon", "rectangle"])
def test_predictions_pass_label_studio_validation(name, shape):
    config = LabelConfig.parse(CONFIGS[name])
    task = make_task(sample_page(), "/data/local-files/?d=a.png", config, shape)
    errors = LabelInterface(CONFIGS[name]).validate_prediction(task["predictions"][0], return_errors=True)
    assert errors == []
    assert task["data"] == {config.data_key: "/data/local-files/?d=a.png"}


def test_one_line_is_results_sharing_one_id_with_text_label_and_score():
    config = LabelConfig.parse(recommended_config())
    results = page_to_results(sample_page(), config)
    first = [r for r in results if r["id"] == "r1"]
    assert sorted(r["type"] for r in first) == ["labels", "polygon", "textarea"]
    textarea = next(r for r in first if r["type"] == "textarea")
    assert textarea["value"]["text"] == ["Invoice 2024"]
    assert next(r for r in first if r["type"] == "labels")["value"]["labels"] == ["Text"]
    assert all(r["score"] == 0.97 and r["original_width"] == 800 and r["original_height"] == 600 for r in first)


def test_coordinates_are_clamped_to_the_image():
    config = LabelConfig.parse(recommended_config())
    for r in page_to_results(sample_page(), config):
        v = r["value"]
        for x, y in v.get("points", []):
            assert 0 <= x <= 100 and 0 <= y <= 100


@pytest.mark.parametrize("name", CONFIGS)
def test_round_trip_keeps_quads_within_a_pixel_and_texts_identical(name):
    page = sample_page()
    config = LabelConfig.parse(CONFIGS[name])
    back = {r.id: r for r in results_to_regions(page_to_results(page, config))}
    # r3 is clamped on purpose; a rectangle-only config can hold r1 (not a rectangle) only approximately.
    exact = page.regions[:2] if config.polygon is not None else page.regions[1:2]
    if config.polygon is None:
        assert quad_iou(back["r1"].points, page.regions[0].points) > 0.85
    for region in exact:
        got = back[region.id]
        assert got.text == region.text
        assert got.score == pytest.approx(region.score)
        for p, q in zip(got.points, region.points):
            assert math.dist(p, q) < 1.0, (name, region.id, got.points, region.points)


def test_rotated_rectangles_round_trip_as_rectangles():
    page = sample_page()
    config = LabelConfig.parse(RECTANGLE_LABELS)
    results = page_to_results(page, config)
    rect = next(r for r in results if r["id"] == "r2" and r["type"] == "rectanglelabels")
    assert rect["value"]["rotation"] == pytest.approx(17.0)
    assert rect["value"]["rectanglelabels"] == ["Text"]
    region = next(r for r in results_to_regions(results) if r.id == "r2")
    assert region.shape == "rectangle" and region.label == "Text"


def test_annotation_results_without_scores_or_labels_parse():
    # What a person draws in Label Studio: a rectangle and its text, no score.
    results = [
        {"id": "u1", "from_name": "bbox", "to_name": "image", "type": "rectangle", "original_width": 1000, "original_height": 500,
         "value": {"x": 10, "y": 20, "width": 30, "height": 10, "rotation": 0}},
        {"id": "u1", "from_name": "transcription", "to_name": "image", "type": "textarea", "original_width": 1000, "original_height": 500,
         "value": {"x": 10, "y": 20, "width": 30, "height": 10, "rotation": 0, "text": ["hello"]}},
        {"id": "c", "from_name": "x", "to_name": "image", "type": "choices", "value": {"choices": ["a"]}},
    ]
    (region,) = results_to_regions(results)
    assert region.text == "hello" and region.score is None
    assert region.points == ((100.0, 100.0), (400.0, 100.0), (400.0, 150.0), (100.0, 150.0))


@pytest.mark.parametrize(
    "xml, message",
    [
        ("<View><Text name='t' value='$t'/></View>", "no <Image"),
        ("<View><Image name='i' value='$i'/><Polygon name='p' toName='i'/></View>", 'perRegion="true"'),
        ("<View><Image name='i' value='$i'/><TextArea name='t' toName='i' perRegion='true'/></View>", "shape"),
        ("<View><Image", "not valid XML"),
    ],
)
def test_unusable_configs_say_what_is_missing(xml, message):
    with pytest.raises(ConfigError, match=message):
        LabelConfig.parse(xml)


def test_image_refs(tmp_path):
    f = tmp_path / "scans" / "a b.png"
    f.parent.mkdir()
    f.write_bytes(b"x")
    assert ImageRef("local-files", tmp_path)(f) == "/data/local-files/?d=scans/a%20b.png"
    assert ImageRef("prefix", tmp_path, "https://files.example.com/ocr/")(f) == "https://files.example.com/ocr/scans/a%20b.png"
    assert ImageRef("path")(f) == str(f.resolve())
    with pytest.raises(RefError, match="not under the document root"):
        ImageRef("local-files", tmp_path / "scans")(tmp_path / "other.png")


def test_local_files_refs_resolve_back_to_their_file_and_never_outside_the_root(tmp_path):
    f = tmp_path / "scans" / "50% off a b.png"
    f.parent.mkdir()
    f.write_bytes(b"x")
    ref = ImageRef("local-files", tmp_path)(f)
    assert resolve_local_files(ref, tmp_path) == f.resolve()
    assert resolve_local_files("/data/upload/1/x.png", tmp_path) is None
    for bad in ("/data/local-files/?d=../etc/passwd", "/data/local-files/?d=/etc/passwd", "/data/local-files/"):
        with pytest.raises(RefError):
            resolve_local_files(bad, tmp_path)
