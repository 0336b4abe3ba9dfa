"""Export the reviewed labels for retraining from a notebook: the same exporter, checks and
defaults as `svtr-label export` (invalid lines fail the export; no dictionary check unless one is
named, with the CLI's warning), its options as controls, the invalid lines as a table of their
crops and texts, and a listing of where the files went."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ipywidgets as w

from svtr_label.dataset.formats import (
    FORMATS,
    ON_INVALID,
    ExportOptions,
    ExportResult,
    run_export,
)
from svtr_label.dataset.target import rec_target
from svtr_label.dataset.validate import DEFAULT_MAX_TEXT_LENGTH, Issue
from svtr_label.errors import SvtrLabelError
from svtr_label.services import Services
from svtr_label.settings import PROFILE_NAMES
from svtr_label.store import Store

from . import render
from .data import ImageCache

Progress = Callable[[int, str], None]  # percent done, what is happening


@dataclass(frozen=True)
class ExportChoice:
    """What the panel's controls say; `dictionary` is a profile name, a dict.txt path, a PaddleOCR rec
    training config (.yml: its dictionary and limit), or '' (characters not checked, as the CLI
    without --dict/--profile/--train-config). `max_text_length` None: the config's, else 23.
    The defaults are `svtr-label export`'s (tests/test_widgets.py compares them with its parser)."""

    format: str = "paddleocr"
    out: Path = Path("export")
    val_fraction: float = 0.1
    seed: int = 0
    dictionary: str = ""
    max_text_length: int | None = None
    on_invalid: str = "fail"
    include_predictions: bool = False

    def warning(self) -> str:
        """The CLI's warning when no dictionary is named ('' when one is, or the format has no text)."""
        if self.dictionary.strip() or self.format not in ("paddleocr", "paddlex-rec"):
            return ""
        return "no dictionary named: characters are not checked against one (name a profile, dict.txt or training config)"


def export_options(choice: ExportChoice, root: Path | None = None, progress: Callable[[int, int], None] | None = None) -> ExportOptions:
    """The exporter's options; the dictionary is resolved exactly as the command line does."""
    source = choice.dictionary
    is_profile = source in PROFILE_NAMES
    is_config = Path(source).suffix.lower() in (".yml", ".yaml")
    services = Services.from_env()
    target = rec_target(
        dict_file=Path(source) if source and not (is_profile or is_config) else None,
        profile=services.profile(source) if is_profile else None,
        train_config=Path(source) if is_config else None,
    )
    return ExportOptions(
        format=choice.format,
        out=Path(choice.out),
        val_fraction=choice.val_fraction,
        seed=choice.seed,
        rules=target.rules(choice.max_text_length),
        dict_bytes=target.dict_bytes,
        dict_source=target.source,
        on_invalid=choice.on_invalid,
        include_predictions=choice.include_predictions,
        root=root,
        images=services.image_source(root),
        progress=progress,
    )


def run(store: Store, choice: ExportChoice, progress: Progress | None = None) -> ExportResult:
    """Validate and write one export, saying how far it got (5 %: dictionary, 10-95 %: images)."""
    say = progress or (lambda _p, _m: None)
    say(5, "reading the dictionary")

    def per_image(done: int, total: int) -> None:
        say(10 + 85 * done // max(total, 1), f"writing {choice.format}: image {done} of {total}")

    opts = export_options(choice, store.root, per_image)
    say(10, f"validating and writing {choice.format} to {opts.out}")
    result = run_export(store, opts)
    say(100, "done" if result.path else "nothing written")
    return result


def issue_rows(issues: list[Issue]) -> list[tuple[str, str, str, str, str]]:
    return [(Path(i.image).name, i.region_id, i.target, i.kind, i.message) for i in issues]


@dataclass(frozen=True)
class InvalidLine:
    """An invalid line as the panel lists it: where, its text and crop (PNG, the export's own cut)."""

    image: str
    image_id: int | None
    region_id: str
    text: str
    crop: bytes | None
    kind: str
    target: str
    message: str


def invalid_lines(store: Store, issues: list[Issue], images: ImageCache | None = None, limit: int = 200) -> list[InvalidLine]:
    """The issues with each line's text and crop, read from the store (the first `limit`)."""
    images = images or ImageCache(store, size=4)
    by_ref = {info.ref: info.id for info in store.images() if info.ref}
    pages: dict[int, dict] = {}
    out = []
    for issue in issues[:limit]:
        image_id = by_ref.get(issue.image)
        region = None
        if image_id is not None:
            if image_id not in pages:
                pages[image_id] = {r.id: r for r in store.current_page(image_id).regions}
            region = pages[image_id].get(issue.region_id)
        crop = None
        if region is not None and issue.kind not in ("degenerate", "self_intersecting"):
            try:
                [rgb] = render.export_crops(images.get(image_id).bgr, [region])  # type: ignore[arg-type]
                crop = render.crop_png(rgb, max_height=48)
            except SvtrLabelError:
                crop = None
        out.append(InvalidLine(Path(issue.image).name, image_id, issue.region_id, region.text if region else "",
                               crop, issue.kind, issue.target, issue.message))
    return out


def invalid_html(lines: list[InvalidLine], total: int) -> str:
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{h}</th>" for h in ("image", "crop", "text", "for", "problem"))
    rows = []
    for line in lines:
        crop = (f"<img src='{render.data_uri(line.crop, 'PNG')}' style='height:32px;max-width:320px;object-fit:contain;"
                "object-position:left'>") if line.crop else ""
        where = f"#{line.image_id} {line.image}" if line.image_id is not None else line.image
        rows.append(
            "<tr>" + "".join(f"<td style='padding:2px 8px;vertical-align:middle'>{c}</td>" for c in (
                html.escape(where), crop, f"<code>{html.escape(line.text)}</code>", html.escape(line.target),
                f"<b>{html.escape(line.kind.replace('_', ' '))}</b>: {html.escape(line.message)}",
            )) + "</tr>"
        )
    more = f"<div>… and {total - len(lines)} more (all of them are in the manifest with drop or report)</div>" if total > len(lines) else ""
    return f"<table class='svtr-invalid' style='font-size:12px;border-collapse:collapse'><tr>{head}</tr>{''.join(rows)}</table>{more}"


def written_files(folder: Path, limit: int = 12) -> list[tuple[str, int]]:
    """Top-level entries of an export (files with their size, folders with their file count)."""
    out = []
    for entry in sorted(folder.iterdir()):
        size = sum(1 for p in entry.rglob("*") if p.is_file()) if entry.is_dir() else entry.stat().st_size
        out.append((entry.name + ("/" if entry.is_dir() else ""), size))
    return out[:limit]


def table_html(header: tuple[str, ...], rows: list[tuple]) -> str:
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:2px 8px'>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table style='font-size:12px;border-collapse:collapse'><tr>{head}</tr>{body}</table>"


class ExportPanel(w.VBox):
    """Options, an Export button, a progress bar, the validation table and the written files."""

    def __init__(self, store: Store, out: str | Path = "export", choice: ExportChoice | None = None) -> None:
        self.store = store
        c = choice or ExportChoice(out=Path(out))
        self.format = w.Dropdown(options=FORMATS, value=c.format, description="format")
        self.out = w.Text(value=str(c.out), description="folder", layout=w.Layout(width="480px"))
        self.val_fraction = w.FloatSlider(value=c.val_fraction, min=0.0, max=0.5, step=0.05, description="val share")
        self.seed = w.IntText(value=c.seed, description="split seed", layout=w.Layout(width="180px"))
        self.dictionary = w.Combobox(
            value=c.dictionary, options=list(PROFILE_NAMES), description="dictionary",
            placeholder="profile, dict.txt or training config .yml ('' skips the check)", layout=w.Layout(width="480px"),
        )
        self.max_len = w.IntText(value=c.max_text_length or 0, description="max length", layout=w.Layout(width="180px"),
                                 tooltip=f"0: the training config's, else {DEFAULT_MAX_TEXT_LENGTH}")
        self.on_invalid = w.Dropdown(options=ON_INVALID, value=c.on_invalid, description="invalid lines")
        self.include = w.Checkbox(value=c.include_predictions, description="also export images nobody corrected")
        self.button = w.Button(description="Export", button_style="primary", icon="download")
        self.progress = w.IntProgress(value=0, min=0, max=100, description="")
        self.step = w.HTML()
        self.warning = w.HTML()
        self.result = w.HTML()
        self.issues = w.HTML()
        self.last: ExportResult | None = None
        self.button.on_click(lambda _b: self.export())
        super().__init__([
            w.HBox([self.format, self.on_invalid]), self.out, w.HBox([self.val_fraction, self.seed]),
            w.HBox([self.dictionary, self.max_len]), self.include,
            w.HBox([self.button, self.progress, self.step]), self.warning, self.result, self.issues,
        ])
        for control in (self.dictionary, self.format):
            control.observe(lambda _c: self._warn(), names="value")
        self._warn()

    def _warn(self) -> None:
        text = self.choice().warning()
        self.warning.value = f"<div style='color:#8a3b00'>⚠ {html.escape(text)}</div>" if text else ""

    def choice(self) -> ExportChoice:
        return ExportChoice(
            format=self.format.value, out=Path(self.out.value).expanduser(), val_fraction=self.val_fraction.value,
            seed=self.seed.value, dictionary=self.dictionary.value.strip(), max_text_length=self.max_len.value or None,
            on_invalid=self.on_invalid.value, include_predictions=self.include.value,
        )

    def _progress(self, percent: int, message: str) -> None:
        self.progress.value = percent
        self.step.value = html.escape(message)

    def export(self) -> ExportResult | None:
        self.button.disabled = True
        self.result.value = self.issues.value = ""
        try:
            self.last = run(self.store, self.choice(), self._progress)
        except (SvtrLabelError, OSError) as exc:
            self.progress.bar_style = "danger"
            self.result.value = f"<b>export failed:</b> {html.escape(str(exc))}"
            return None
        finally:
            self.button.disabled = False
        self._show(self.last)
        return self.last

    def _show(self, result: ExportResult) -> None:
        self.progress.bar_style = "success" if result.path else "danger"
        if result.path:
            counts = ", ".join(f"{k} {v}" for k, v in result.manifest.get("counts", {}).items())
            files = table_html(("in the folder", "size / files"), written_files(result.path))
            self.result.value = f"<div><b>written to</b> <code>{html.escape(str(result.path))}</code><br>{html.escape(counts)}</div>{files}"
        else:
            self.result.value = "<b>nothing written:</b> fix the lines below (in the editor), or choose 'drop' to export the valid ones"
        if not result.report.ok:
            issues = result.report.issues
            lines = invalid_lines(self.store, issues)
            self.issues.value = f"<b>{len(issues)} invalid lines</b>" + invalid_html(lines, len(issues))
        else:
            self.issues.value = "<b>validation:</b> no issues"
