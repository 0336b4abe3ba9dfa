"""Generated document pages with known text and boxes: the ground truth for tests, the demo
samples and the benchmarks. Needs a CJK font (Debian: fonts-noto-cjk) for Chinese lines."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from svtr_label.core.geometry import Quad
from svtr_label.errors import FontMissing

FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
)

EN_WORDS = (
    "invoice total amount date order number customer address street city phone email payment "
    "due balance tax receipt item quantity price discount shipping account bank reference code "
    "label model version report page section table figure summary result status approved"
).split()
ZH_PHRASES = (
    "发票号码", "开票日期", "购买方名称", "金额合计", "税率", "销售方地址", "电话号码", "备注信息",
    "商品名称", "规格型号", "单位数量", "单价金额", "收款人", "复核人", "开户银行", "统一社会信用代码",
    "正品促销", "大桶装更划算", "中国人民银行", "北京市朝阳区", "上海市浦东新区", "服务热线",
)


def find_font() -> str:
    for path in FONT_CANDIDATES:
        if Path(path).is_file():
            return path
    raise FontMissing("no CJK font found: install Debian's fonts-noto-cjk (apt-get install fonts-noto-cjk)")


@dataclass(frozen=True)
class SynthLine:
    text: str
    quad: Quad


@dataclass(frozen=True)
class SynthPage:
    name: str
    image: Image.Image
    lines: tuple[SynthLine, ...]


def random_text(rng: random.Random) -> str:
    """A line of at most 20 characters: English words, digits, or Chinese phrases."""
    kind = rng.random()
    if kind < 0.4:
        text = rng.choice(EN_WORDS).capitalize()
        for _ in range(rng.randint(0, 2)):
            word = rng.choice(EN_WORDS)
            if len(text) + 1 + len(word) <= 20:
                text += " " + word
    elif kind < 0.55:
        text = f"{rng.choice(EN_WORDS).capitalize()} {rng.randint(10, 99999)}"
    else:
        text = rng.choice(ZH_PHRASES) + (rng.choice(ZH_PHRASES) if rng.random() < 0.3 else "")
    return text[:20].strip()


def make_page(seed: int, n_lines: int = 8, width: int = 900, font_path: str | None = None) -> SynthPage:
    """A white page with `n_lines` black text lines, each line's tight box recorded."""
    rng = random.Random(seed)
    font_path = font_path or find_font()
    line_gap = 14
    sizes = [rng.randint(26, 38) for _ in range(n_lines)]
    canvas_height = 60 + sum(2 * s + line_gap + 10 for s in sizes)
    img = Image.new("RGB", (width, canvas_height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    lines = []
    y = 30
    for size in sizes:
        font = ImageFont.truetype(font_path, size)
        text = random_text(rng)
        x = rng.randint(20, 200)
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        if right > width - 10:  # keep the whole line on the page
            x -= right - (width - 10)
            left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        shade = rng.randint(0, 60)
        draw.text((x, y), text, font=font, fill=(shade, shade, shade))
        quad = ((float(left), float(top)), (float(right), float(top)), (float(right), float(bottom)), (float(left), float(bottom)))
        lines.append(SynthLine(text, quad))
        y = bottom + line_gap + rng.randint(0, 10)
    img = img.crop((0, 0, width, y + 30))
    return SynthPage(name=f"page_{seed:04d}.png", image=img, lines=tuple(lines))


def scaled_page(page: SynthPage, factor: float) -> SynthPage:
    """The page photographed larger or smaller: image and boxes scaled by `factor`."""
    w, h = page.image.size
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    image = page.image.resize(size, Image.Resampling.BICUBIC if factor > 1 else Image.Resampling.LANCZOS)
    lines = tuple(SynthLine(ln.text, tuple((x * factor, y * factor) for x, y in ln.quad)) for ln in page.lines)  # type: ignore[misc]
    return SynthPage(page.name, image, lines)


def write_dataset(out_dir: str | Path, n_pages: int, seed: int = 0, n_lines: int = 8) -> list[SynthPage]:
    """Write PNG pages and `truth.json` ({file: [{text, quad}]}) into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pages = [make_page(seed + i, n_lines=n_lines) for i in range(n_pages)]
    truth = {}
    for page in pages:
        page.image.save(out / page.name)
        truth[page.name] = [{"text": l.text, "quad": [list(p) for p in l.quad]} for l in page.lines]
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1), encoding="utf-8")
    return pages
