"""PDFs and multi-page TIFFs: pages rendered beside the output, one task per page or one
multi-page task (`data.pages`, `item_index` on every result), the backend on multi-page tasks,
and the store, export and evaluation keeping pages apart. Documents are made here: PDFs with
real text objects in synth.py's font (PDFium writes them), a genuinely encrypted PDF (the
standard security handler, RC4), multi-frame TIFFs of generated pages."""

from __future__ import annotations

import ctypes
import hashlib
import json
import struct
from pathlib import Path

import pytest
from PIL import Image

from conftest import backend_services_for
from svtr_label.core.documents import find_inputs, is_document, render_document
from svtr_label.core.page import Page, Region
from svtr_label.core.synth import find_font, make_page
from svtr_label.core.images import decode_image, image_size
from svtr_label.errors import ImageError
from svtr_label.labelstudio.format import (
    LabelConfig,
    make_document_task,
    make_task,
    recommended_config,
)
from svtr_label.settings import ImageLimits

# Three pages of known lines (x, baseline y in points from the top, size, text), US Letter.
PAGES = (
    ("Invoice total 12345", "Payment due balance", "发票号码"),
    ("Shipping address street", "Order number 4711", "正品促销"),
    ("Customer account total", "Bank reference code", "服务热线"),
)
LETTER = (612.0, 792.0)


# --- documents made for the tests ------------------------------------------------------------


def write_text_pdf(path: Path, pages=PAGES, size: float = 28.0) -> Path:
    """A PDF whose pages hold real text objects (not images) in synth.py's CJK font."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    pdf = pdfium.PdfDocument.new()
    font_bytes = Path(find_font()).read_bytes()
    buffer = (ctypes.c_uint8 * len(font_bytes)).from_buffer_copy(font_bytes)
    font = raw.FPDFText_LoadFont(pdf, buffer, len(font_bytes), raw.FPDF_FONT_TRUETYPE, True)
    assert font, "PDFium could not load the font"
    for lines in pages:
        page = pdf.new_page(*LETTER)
        for i, text in enumerate(lines):
            obj = raw.FPDFPageObj_CreateTextObj(pdf, font, size)
            encoded = (text + "\0").encode("utf-16-le")
            raw.FPDFText_SetText(obj, (ctypes.c_ushort * (len(encoded) // 2)).from_buffer_copy(encoded))
            raw.FPDFPageObj_Transform(obj, 1, 0, 0, 1, 72, LETTER[1] - 120 - 90 * i)
            raw.FPDFPage_InsertObject(page, obj)
        assert raw.FPDFPage_GenerateContent(page)
        page.close()
    pdf.save(str(path))
    pdf.close()
    return path


_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    s, j = list(range(256)), 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out, i, j = bytearray(), 0, 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def encrypted_pdf(password: str, owner: str = "owner") -> bytes:
    """A one-page PDF encrypted with a user password (standard security handler, RC4 40-bit, R2):
    its content stream is encrypted, and opens only with the password."""
    def pad(p: str) -> bytes:
        return (p.encode("latin-1") + _PAD)[:32]

    o = _rc4(hashlib.md5(pad(owner)).digest()[:5], pad(password))
    perms, file_id = -44, hashlib.md5(b"svtr-label test").digest()
    key = hashlib.md5(pad(password) + o + struct.pack("<i", perms) + file_id).digest()[:5]
    u = _rc4(key, _PAD)
    content = _rc4(hashlib.md5(key + struct.pack("<i", 4)[:3] + b"\0\0").digest()[:10], b"0 0 1 rg 20 20 160 60 re f")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>" % (o.hex().encode(), u.hex().encode(), perms),
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 5 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, file_id.hex().encode(), file_id.hex().encode(), xref)
    return bytes(out)


def write_tiff(path: Path, seeds=(11, 12, 13)) -> list:
    """A multi-frame TIFF of generated pages (synth.py); returns the pages (their lines are the truth)."""
    pages = [make_page(seed, n_lines=3) for seed in seeds]
    frames = [p.image.copy() for p in pages]
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="tiff_deflate")
    return pages


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs")
    write_text_pdf(folder / "report.pdf")
    (folder / "broken.pdf").write_bytes((folder / "report.pdf").read_bytes()[:3000])
    (folder / "locked.pdf").write_bytes(encrypted_pdf("secret"))
    tiff_pages = write_tiff(folder / "scan.tif")
    return folder, tiff_pages


def dark_rows(path: Path) -> list[int]:
    """Rows of the image holding dark pixels (text)."""
    img = Image.open(path).convert("L")
    w, h = img.size
    px = img.load()
    return [y for y in range(h) if any(px[x, y] < 100 for x in range(0, w, 2))]


# --- rendering -------------------------------------------------------------------------------


def test_pdf_pages_are_rendered_at_the_dpi_and_reused_by_a_rerun(docs, tmp_path):
    folder, _ = docs
    doc = render_document(folder / "report.pdf", tmp_path / "pages", dpi=100)
    assert len(doc.pages) == 3
    assert [p.name for p in doc.pages] == ["report-p0001.png", "report-p0002.png", "report-p0003.png"]
    assert doc.pages[0].parent.name == f"report-{doc.sha256[:8]}-100dpi"
    for page in doc.pages:
        assert Image.open(page).size == (850, 1100)  # 8.5 x 11 inches at 100 dpi
    # The first line's glyphs sit about 120 points (167 px) from the top; nothing above 90 px.
    rows = dark_rows(doc.pages[0])
    assert rows and 110 < rows[0] < 170, rows[:3]
    stamps = [p.stat().st_mtime_ns for p in doc.pages]
    again = render_document(folder / "report.pdf", tmp_path / "pages", dpi=100)
    assert again == doc and [p.stat().st_mtime_ns for p in again.pages] == stamps  # found, not rendered again
    sharper = render_document(folder / "report.pdf", tmp_path / "pages", dpi=200)
    assert sharper.pages[0].parent != doc.pages[0].parent and Image.open(sharper.pages[0]).size == (1700, 2200)


def test_tiff_frames_become_pages_pixel_for_pixel(docs, tmp_path):
    folder, tiff_pages = docs
    assert is_document(folder / "scan.tif")
    doc = render_document(folder / "scan.tif", tmp_path / "pages")
    assert len(doc.pages) == 3 and doc.pages[0].parent.name == f"scan-{doc.sha256[:8]}"
    for path, page in zip(doc.pages, tiff_pages):
        assert Image.open(path).convert("RGB").tobytes() == page.image.convert("RGB").tobytes()


def test_one_frame_tiffs_stay_images_and_folders_list_pdfs(docs, tmp_path):
    folder, _ = docs
    make_page(1, n_lines=1).image.save(tmp_path / "one.tif")
    assert not is_document(tmp_path / "one.tif")
    found = [p.name for p in find_inputs([folder])]
    assert {"report.pdf", "broken.pdf", "locked.pdf", "scan.tif"} <= set(found)


def test_a_document_where_an_image_is_expected_fails_by_name_and_says_what_to_do(docs, tmp_path):
    """Where one image is read (a task's image, a Ray input, a store sync), a PDF is refused as a
    document, and so is a TIFF of several pages: decoding it would keep its first page and drop the
    others without a word. One-page TIFFs and animated GIFs (first frame) stay images."""
    folder, _ = docs
    for name, words in (("report.pdf", ["report.pdf", "a PDF document"]), ("scan.tif", ["scan.tif", "a TIFF of 3 pages"])):
        data = (folder / name).read_bytes()
        for read in (decode_image, image_size):
            with pytest.raises(ImageError) as err:
                read(data, name)
            assert all(w in str(err.value) for w in words + ["svtr-label predict"]), str(err.value)
    make_page(1, n_lines=1).image.save(tmp_path / "one.tif")
    assert decode_image((tmp_path / "one.tif").read_bytes(), "one.tif").bgr.shape[2] == 3
    frames = [Image.new("RGB", (80, 40), color) for color in ("white", "black")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert decode_image((tmp_path / "anim.gif").read_bytes(), "anim.gif").bgr.min() == 255  # the first, white frame


@pytest.mark.parametrize("name, words", [
    ("broken.pdf", ["broken.pdf", "not a readable PDF", "damaged or truncated", "qpdf"]),
    ("locked.pdf", ["locked.pdf", "password-protected", "--decrypt"]),
    ("missing.pdf", ["missing.pdf", "no such file"]),
])
def test_unreadable_pdfs_raise_an_image_error_naming_the_file(docs, tmp_path, name, words):
    folder, _ = docs
    with pytest.raises(ImageError) as err:
        render_document(folder / name, tmp_path / "pages")
    assert all(w in str(err.value) for w in words), str(err.value)
    assert not any((tmp_path / "pages").rglob("*.png"))  # nothing half-written


def test_the_encrypted_pdf_is_really_encrypted(docs):
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument((docs[0] / "locked.pdf").read_bytes(), password="secret")
    image = pdf[0].render(scale=1).to_pil()
    assert image.getpixel((100, 50)) == (0, 0, 255)  # its content stream decrypts to a blue box


def test_limits_hold_per_page_and_per_document(docs, tmp_path):
    folder, _ = docs
    with pytest.raises(ImageError, match=r"page 1 is 1700x2200 pixels at 200 dpi.*SVTR_MAX_IMAGE_PIXELS.*lower --dpi"):
        render_document(folder / "report.pdf", tmp_path / "a", dpi=200, limits=ImageLimits(max_pixels=3_000_000))
    assert len(render_document(folder / "report.pdf", tmp_path / "b", dpi=100, limits=ImageLimits(max_pixels=1_000_000)).pages) == 3
    with pytest.raises(ImageError, match=r"scan.tif: 3 pages, over the 2-page limit \(SVTR_MAX_PAGES\)"):
        render_document(folder / "scan.tif", tmp_path / "c", limits=ImageLimits(max_pages=2))


# --- task JSON -------------------------------------------------------------------------------


def _page(sha: str, texts: list[str], w: int = 1000, h: int = 800) -> Page:
    regions = tuple(Region(id=f"{sha[:4]}{i}", points=((10, 10 + 50 * i), (300, 10 + 50 * i), (300, 50 + 50 * i), (10, 50 + 50 * i)),
                           text=t, score=0.9) for i, t in enumerate(texts))
    return Page(width=w, height=h, sha256=sha, regions=regions, model_version="m@1")


def test_the_multipage_config_reads_a_list_of_pages():
    config = LabelConfig.parse(recommended_config(multipage=True))
    assert config.multipage and config.data_key == "pages" and config.image == "image"
    single = LabelConfig.parse(recommended_config())
    assert not single.multipage and single.data_key == "image"
    assert LabelConfig.parse('<View><Image name="doc" valuelist="$scans"/><Polygon name="p" toName="doc"/>'
                             '<TextArea name="t" toName="doc" perRegion="true"/></View>').data_key == "scans"


def test_a_document_task_lists_its_pages_and_every_result_names_its_page():
    config = LabelConfig.parse(recommended_config(multipage=True))
    same = _page("a" * 64, ["first", "second"])
    pages = [same, _page("b" * 64, ["other"], 500, 400), same]  # two identical pages
    task = make_document_task(pages, ["/p/1.png", "/p/2.png", "/p/3.png"], config)
    assert task["data"] == {"pages": ["/p/1.png", "/p/2.png", "/p/3.png"]}
    (prediction,) = task["predictions"]
    result = prediction["result"]
    assert {r["item_index"] for r in result} == {0, 1, 2}
    by_id: dict[str, set[int]] = {}
    for r in result:
        by_id.setdefault(r["id"], set()).add(r["item_index"])
    assert all(len(indexes) == 1 for indexes in by_id.values())  # a region id is on one page only
    assert len(by_id) == 5
    assert {(r["original_width"], r["original_height"]) for r in result if r["item_index"] == 1} == {(500, 400)}
    assert prediction["score"] == pytest.approx(0.9)
    # A single image under the multi-page config is a task of one page.
    one = make_task(pages[1], "/p/2.png", config)
    assert one["data"] == {"pages": ["/p/2.png"]} and {r["item_index"] for r in one["predictions"][0]["result"]} == {0}


# --- predict ---------------------------------------------------------------------------------


def page_texts(result: list, index: int) -> str:
    return " ".join(t for r in result if r["type"] == "textarea" and r.get("item_index", 0) == index for t in r["value"]["text"])


def english_words(lines) -> list[str]:
    return [w for line in lines for w in line.split() if w.isascii() and len(w) >= 4]


def assert_reads(text: str, lines) -> None:
    """Loosely: most of the page's English words are read (the bundled model may change)."""
    words = english_words(lines)
    found = [w for w in words if w in text]
    assert len(found) >= 0.7 * len(words), f"read {text!r}, expected most of {words}"


@pytest.fixture(scope="module")
def inputs(docs, real_images, tmp_path_factory):
    """A document root holding the documents (good, broken, encrypted) and one image."""
    import shutil

    folder, tiff_pages = docs
    root = tmp_path_factory.mktemp("root")
    (root / "in").mkdir()
    for name in ("report.pdf", "broken.pdf", "locked.pdf", "scan.tif"):
        shutil.copy(folder / name, root / "in" / name)
    shutil.copy(real_images / "text_rec.jpg", root / "in" / "line.jpg")
    return root, tiff_pages


def predict(root: Path, out: str, *extra: str) -> int:
    from svtr_label.cli import main

    return main(["predict", str(root / "in"), "--profile", "bundled", "--root", str(root), "-o", str(root / out),
                 "--dpi", "150", "--no-progress", *extra])


@pytest.mark.pipeline
def test_predict_writes_one_multipage_task_per_document_and_bad_pdfs_fail_alone(inputs, engine, capsys):
    from label_studio_sdk.label_interface import LabelInterface

    root, tiff_pages = inputs
    assert predict(root, "out/tasks.json", "--document-tasks", "per-document") == 0
    captured = capsys.readouterr()
    assert "broken.pdf: not a readable PDF" in captured.err and "locked.pdf: the PDF is password-protected" in captured.err
    assert "3 tasks (7 pages, 2 documents)" in captured.out and "2 skipped" in captured.out
    tasks = json.loads((root / "out" / "tasks.json").read_text(encoding="utf-8"))
    by_name = {Path(t["data"]["pages"][0].split("?d=")[1]).name: t for t in tasks}
    assert set(by_name) == {"report-p0001.png", "scan-p0001.png", "line.jpg"}
    report = by_name["report-p0001.png"]
    assert [Path(r.split("?d=")[1]).name for r in report["data"]["pages"]] == ["report-p0001.png", "report-p0002.png", "report-p0003.png"]
    for ref in report["data"]["pages"]:
        rel = ref.split("?d=")[1]
        width, height = Image.open(root / rel).size  # 8.5 x 11 inches at 150 dpi (PDFium may round up a pixel)
        assert rel.startswith("out/pages/report-") and "-150dpi/" in rel and (width, height) in {(1275, 1650), (1275, 1651)}
    config_xml = recommended_config(multipage=True)
    for task in tasks:
        (prediction,) = task["predictions"]
        assert all("item_index" in r for r in prediction["result"])
        assert LabelInterface(config_xml).validate_prediction(prediction, return_errors=True) == []
    for i, lines in enumerate(PAGES):
        assert_reads(page_texts(report["predictions"][0]["result"], i), lines)
    scan = by_name["scan-p0001.png"]["predictions"][0]["result"]
    assert {r["item_index"] for r in scan} == {0, 1, 2}
    for i, page in enumerate(tiff_pages):
        assert_reads(page_texts(scan, i), [line.text for line in page.lines])
    assert page_texts(by_name["line.jpg"]["predictions"][0]["result"], 0)  # an image: a task of one page


@pytest.mark.pipeline
def test_per_page_tasks_reuse_the_rendered_pages_and_the_cache(inputs, engine, capsys):
    root, _ = inputs
    assert predict(root, "out/tasks.json", "--document-tasks", "per-document") == 0  # pages and cache filled
    pages = sorted((root / "out" / "pages").rglob("*.png"))
    stamps = [p.stat().st_mtime_ns for p in pages]
    capsys.readouterr()
    assert predict(root, "out/per-page.json") == 0  # the default with the default config: a task per page
    assert "7 tasks (7 pages, 2 documents)" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in sorted((root / "out" / "pages").rglob("*.png"))] == stamps
    tasks = json.loads((root / "out" / "per-page.json").read_text(encoding="utf-8"))
    assert all(isinstance(t["data"]["image"], str) and "item_index" not in r for t in tasks for r in t["predictions"][0]["result"])
    report = {t["data"]["image"].rsplit("/", 1)[1]: t for t in tasks}
    assert_reads(page_texts(report["report-p0002.png"]["predictions"][0]["result"], 0), PAGES[1])


def test_per_document_tasks_refuse_a_single_image_config(inputs, tmp_path, capsys):
    from svtr_label.cli import main

    root, _ = inputs
    config = tmp_path / "single.xml"
    config.write_text(recommended_config(), encoding="utf-8")
    assert main(["predict", str(root / "in"), "--label-config", str(config), "--document-tasks", "per-document",
                 "-o", str(tmp_path / "t.json"), "--root", str(root)]) == 2
    assert "valueList" in capsys.readouterr().err


def test_pages_outside_the_document_root_are_refused_before_rendering(inputs, tmp_path, capsys):
    from svtr_label.cli import main

    root, _ = inputs
    assert main(["predict", str(root / "in" / "report.pdf"), "--root", str(root), "-o", str(tmp_path / "t.json")]) == 2
    assert "not under the document root" in capsys.readouterr().err
    assert not (tmp_path / "pages").exists()


# --- the backend -----------------------------------------------------------------------------


@pytest.fixture()
def backend(inputs, services, tmp_path):
    """A test client of the backend serving the document root, on the bundled models, no caches."""
    from svtr_backend.app import create_app

    root, _ = inputs
    return create_app(backend_services_for(services, root, tmp_path / "store.sqlite"), preload_models=False).test_client()


def rendered_refs(root: Path) -> list[str]:
    doc = render_document(root / "in" / "report.pdf", root / "out" / "pages", dpi=150)
    return [f"/data/local-files/?d={p.relative_to(root).as_posix()}" for p in doc.pages]


def post_predict(client, tasks, config=None, context=None) -> list[dict]:
    body = {"tasks": tasks, "label_config": config or recommended_config(multipage=True), "params": {"context": context}}
    r = client.post("/predict", json=body)
    assert r.status_code == 200, r.json
    return r.json["results"]


@pytest.mark.pipeline
def test_backend_preannotates_multipage_tasks_and_a_broken_page_fails_its_task_only(backend, inputs, engine):
    root, _ = inputs
    refs = rendered_refs(root)
    tasks = [
        {"id": 1, "data": {"pages": refs}},
        {"id": 2, "data": {"pages": [refs[0], "/data/local-files/?d=in/missing.png", refs[2]]}},
        {"id": 3, "data": {"pages": ["/data/local-files/?d=in/line.jpg"]}},
        {"id": 4, "data": {"pages": "/data/local-files/?d=in/line.jpg"}},
    ]
    first, broken, single, not_a_list = post_predict(backend, tasks)
    assert {r["item_index"] for r in first["result"]} == {0, 1, 2}
    for i, lines in enumerate(PAGES):
        assert_reads(page_texts(first["result"], i), lines)
    assert broken["result"] == [] and "page 2 of 3" in broken["error"] and "missing.png" in broken["error"]
    assert page_texts(single["result"], 0) and {r["item_index"] for r in single["result"]} == {0}
    assert not_a_list["result"] == [] and "list of image URLs" in not_a_list["error"]
    (listed,) = post_predict(backend, [{"id": 5, "data": {"image": refs}}], config=recommended_config())
    assert listed["result"] == [] and 'valueList="$image"' in listed["error"]
    pdf, tiff, image = post_predict(backend, [{"id": 6 + i, "data": {"image": f"/data/local-files/?d=in/{name}"}}
                                              for i, name in enumerate(("report.pdf", "scan.tif", "line.jpg"))],
                                    config=recommended_config())
    assert pdf["result"] == [] and "a PDF document" in pdf["error"] and "svtr-label predict" in pdf["error"]
    assert tiff["result"] == [] and "a TIFF of 3 pages" in tiff["error"]
    assert image["result"] and "error" not in image


@pytest.mark.pipeline
def test_backend_rereads_a_box_drawn_on_the_page_it_was_drawn_on(backend, inputs, engine):
    root, _ = inputs
    refs = rendered_refs(root)
    page = root / refs[1].split("?d=")[1]
    rows = dark_rows(page)
    top = rows[0]
    bottom = next(y for y, nxt in zip(rows, rows[1:] + [10**9]) if nxt - y > 20)  # the end of the first line
    W, H = Image.open(page).size
    drawn = {"id": "d1", "type": "rectangle", "from_name": "bbox", "to_name": "image", "item_index": 1,
             "original_width": W, "original_height": H, "image_rotation": 0,
             "value": {"x": 100 * 100 / W, "y": 100 * (top - 8) / H, "width": 100 * 1000 / W, "height": 100 * (bottom - top + 16) / H, "rotation": 0}}
    (answer,) = post_predict(backend, [{"id": 1, "data": {"pages": refs}}], context={"result": [drawn]})
    assert {r["id"] for r in answer["result"]} == {"d1"} and {r["item_index"] for r in answer["result"]} == {1}
    assert "Shipping" in page_texts(answer["result"], 1)  # page 2's first line, not page 1's


# --- store, export, evaluation ---------------------------------------------------------------


def line_boxes(path: Path) -> list[tuple]:
    """Each text line's box on a rendered page, from its dark pixels: the truth of where lines are."""
    import numpy as np

    gray = np.asarray(Image.open(path).convert("L"))
    dark = gray < 128
    rows = np.flatnonzero(dark.any(axis=1))
    bands, start = [], rows[0]
    for a, b in zip(rows, list(rows[1:]) + [10**9]):
        if b - a > 10:
            bands.append((start, a))
            start = b
    boxes = []
    for y0, y1 in bands:
        cols = np.flatnonzero(dark[y0:y1 + 1].any(axis=0))
        x0, x1 = float(cols[0] - 3), float(cols[-1] + 3)
        boxes.append(((x0, y0 - 3.0), (x1, y0 - 3.0), (x1, y1 + 3.0), (x0, y1 + 3.0)))
    return boxes


def truth_pages(doc) -> list[Page]:
    from svtr_label.core.images import read_image

    pages = []
    for i, path in enumerate(doc.pages):
        img = read_image(path)
        boxes = line_boxes(path)
        assert len(boxes) == len(PAGES[i])
        regions = tuple(Region(f"p{i}l{j}", box, text, score=0.99) for j, (box, text) in enumerate(zip(boxes, PAGES[i])))
        pages.append(Page(img.width, img.height, img.sha256, regions, model_version="m@1"))
    return pages


@pytest.fixture()
def annotated(docs, tmp_path):
    """A rendered 3-page document under a root: its multi-page task with a prediction (one line
    misread on page 2) and an annotation holding the true lines."""
    from svtr_label.labelstudio.format import document_results

    folder, _ = docs
    doc = render_document(folder / "report.pdf", tmp_path / "pages", dpi=100)
    refs = [f"/data/local-files/?d=pages/{p.parent.name}/{p.name}" for p in doc.pages]
    config = LabelConfig.parse(recommended_config(multipage=True))
    truth = truth_pages(doc)
    misread = list(truth)
    misread[1] = truth[1].with_(regions=(truth[1].regions[0].with_(text="Shipping adress street"), *truth[1].regions[1:]))
    predicted = make_document_task(misread, refs, config)
    annotation = {"id": 70, "updated_at": "2026-01-01T00:00:00Z", "completed_by": {"email": "ann@example.com"},
                  "result": document_results(truth, config)}
    task = {"id": 7, "data": {"pages": refs}, "predictions": predicted["predictions"], "annotations": [annotation]}
    return tmp_path, doc, refs, task, predicted


def test_a_multipage_annotation_is_one_store_image_per_page(annotated):
    from svtr_label.store import Store

    root, doc, refs, task, _ = annotated
    with Store(root / "store.sqlite", root=root) as store:
        ids = store.import_label_studio_tasks([task])
        assert len(ids) == 3
        for i, image_id in enumerate(ids):
            info = store.get_image(image_id)
            assert (info.ref, info.ls_task_id, info.state) == (refs[i], 7, "reviewed")
            assert (info.width, info.height) == Image.open(doc.pages[i]).size
            assert [r.text for r in store.current_page(image_id).regions] == list(PAGES[i])
        (prediction,) = store.predictions(ids[1]).values()
        assert [r.text for r in prediction.regions][0] == "Shipping adress street"
        exported = store.to_label_studio_tasks()
        assert [t["data"]["image"] for t in exported] == refs and all("id" not in t for t in exported)
        assert store.import_label_studio_tasks([task]) == ids  # importing the export again changes nothing


def test_multipage_webhooks_update_every_page_and_deletions_restore_them(annotated):
    from svtr_label.store import Store

    root, _, refs, task, _ = annotated
    created = task["annotations"][0]
    changed = json.loads(json.dumps(created))
    next(r for r in changed["result"] if r["type"] == "textarea" and r["item_index"] == 2)["value"]["text"] = ["checked"]
    changed.update(id=71, updated_at="2026-01-02T00:00:00Z")
    event = {"task": {"id": 7, "data": {"pages": refs}}, "project": {"id": 1}}
    with Store(root / "store.sqlite", root=root) as store:
        assert store.apply_webhook({**event, "action": "ANNOTATION_CREATED", "annotation": created})
        ids = [store.find_image(ref=r) for r in refs]
        assert store.apply_webhook({**event, "action": "ANNOTATION_CREATED", "annotation": changed})  # a newer one wins
        assert [r.text for r in store.current_page(ids[2]).regions] == ["checked", *PAGES[2][1:]]
        assert not store.apply_webhook({**event, "action": "ANNOTATION_CREATED", "annotation": changed})  # a repeat
        assert store.apply_webhook({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 71}]})
        assert [r.text for r in store.current_page(ids[2]).regions] == list(PAGES[2])  # the older one again
        assert store.apply_webhook({**event, "action": "ANNOTATION_DELETED", "annotation": {"id": 70}})
        for image_id in ids:
            assert store.current_page(image_id).regions == () and store.get_image(image_id).state == "in_progress"


def test_export_and_eval_keep_the_pages_apart(annotated, capsys):
    from svtr_label.cli import main

    root, doc, refs, task, predicted = annotated
    (root / "truth.json").write_text(json.dumps([task]), encoding="utf-8")
    out = root / "export"
    assert main(["export", str(root / "truth.json"), "--format", "paddleocr", "--out", str(out), "--root", str(root),
                 "--val-fraction", "0", "--no-progress"]) == 0
    rows = [line.split("\t") for line in (out / "Label.txt").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3
    pngs = {p.read_bytes() for p in doc.pages}
    for rel, label in rows:
        assert (out / rel).read_bytes() in pngs  # the page image itself
    assert sorted(json.loads(label)[0]["transcription"] for _, label in rows) == sorted(p[0] for p in PAGES)
    rec = [line.split("\t")[1] for line in (out / "rec_gt.txt").read_text(encoding="utf-8").splitlines()]
    assert sorted(rec) == sorted(t for p in PAGES for t in p)

    (root / "pred.json").write_text(json.dumps([predicted]), encoding="utf-8")
    assert main(["eval", "--truth", str(root / "truth.json"), "--pred", str(root / "pred.json"), "--root", str(root),
                 "--json", str(root / "eval.json")]) == 0
    (version,) = json.loads((root / "eval.json").read_text(encoding="utf-8"))["model_versions"].values()
    assert sorted(version["images"]) == sorted(refs)  # one row per page
    accuracy = {ref: m["line_acc"] for ref, m in version["images"].items()}
    assert accuracy[refs[0]] == accuracy[refs[2]] == 1.0 and accuracy[refs[1]] == pytest.approx(2 / 3)
