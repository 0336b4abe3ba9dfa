"""How good a model is on the team's own corrected pages (`svtr-label eval`).

Lines are matched one-to-one by outline (IoU > 0.5, best pairs first). Then:
- detection precision / recall / hmean over the matches ('###' truth regions are don't-care:
  they do not count, and predictions on them are not counted either);
- line accuracy, the seed card's metric: a truth line is right only when its matched
  prediction has exactly its text (an unmatched truth line is wrong); also with spaces ignored,
  which is what PaddleOCR's RecMetric reports by default;
- normalized edit distance score, 1 - mean(Levenshtein / max length) over truth lines
  (an unmatched line scores 0);
- accuracy of the matched lines whose score is at least t, for thresholds t: the table to
  pick an auto-accept threshold from. High scores are not proof: review a sample too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from svtr_label.core.geometry import quad_iou
from svtr_label.core.page import Page, Region
from svtr_label.errors import DatasetError
from svtr_label.store import Store

IOU_THRESHOLD = 0.5
THRESHOLDS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995)


# --- matching and per-line outcomes -----------------------------------------------------------


@dataclass(frozen=True)
class LineOutcome:
    image: str
    truth: str
    pred: str | None  # None: no prediction matched this truth line
    score: float | None
    iou: float

    @property
    def correct(self) -> bool:
        return self.pred == self.truth

    @property
    def correct_nospace(self) -> bool:
        return self.pred is not None and self.pred.replace(" ", "") == self.truth.replace(" ", "")


@dataclass(frozen=True)
class PageOutcome:
    image: str
    model_version: str
    lines: tuple[LineOutcome, ...]
    n_pred: int  # predictions that count (those on '###' regions left out)


def match(truth: Sequence[Region], pred: Sequence[Region], threshold: float = IOU_THRESHOLD) -> list[tuple[int, int, float]]:
    """One-to-one (truth index, pred index, IoU) pairs with IoU > threshold, highest IoU first."""
    candidates = []
    for ti, t in enumerate(truth):
        for pi, p in enumerate(pred):
            iou = quad_iou(t.points, p.points)
            if iou > threshold:
                candidates.append((iou, ti, pi))
    pairs, used_t, used_p = [], set(), set()
    for iou, ti, pi in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        if ti not in used_t and pi not in used_p:
            used_t.add(ti)
            used_p.add(pi)
            pairs.append((ti, pi, iou))
    return pairs


def compare_page(image: str, truth: Page, pred: Page) -> PageOutcome:
    pairs = match(truth.regions, pred.regions)
    on_ignored = {pi for ti, pi, _ in pairs if truth.regions[ti].illegible}
    by_truth = {ti: (pi, iou) for ti, pi, iou in pairs}
    lines = []
    for ti, t in enumerate(truth.regions):
        if t.illegible:
            continue
        pi, iou = by_truth.get(ti, (None, 0.0))
        p = pred.regions[pi] if pi is not None else None
        lines.append(LineOutcome(image, t.text, p.text if p else None, p.score if p else None, iou))
    return PageOutcome(image, pred.model_version, tuple(lines), len(pred.regions) - len(on_ignored))


# --- metrics ---------------------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _ratio(num: float, den: float) -> float:
    return float(num) / den if den else 0.0


@dataclass(frozen=True)
class Metrics:
    """Scores of a set of pages (one image, or all of a model_version's)."""

    images: int
    truth_lines: int
    pred_lines: int  # predictions that count ('###' truth regions are don't-care)
    matched: int  # truth lines with a prediction of IoU > 0.5
    correct: int  # truth lines whose matched prediction has exactly their text
    line_acc: float  # correct / truth_lines: the seed card's metric
    line_acc_nospace: float  # the same with spaces ignored (PaddleOCR's RecMetric default)
    rec_acc_matched: float  # correct / matched: the recognizer alone
    norm_edit_dis: float  # 1 - mean normalized Levenshtein distance (unmatched lines count 1)
    det_precision: float
    det_recall: float
    det_hmean: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ConfidenceRow:
    """Matched lines scoring at least `threshold`: how many, their share, their accuracy, their errors."""

    threshold: float
    lines: int
    coverage: float
    accuracy: float
    errors: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WrongLine:
    image: str
    truth: str
    pred: str | None
    score: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VersionEvaluation:
    """One model_version against the truth."""

    overall: Metrics
    images: dict[str, Metrics]  # by image name, sorted
    confidence: tuple[ConfidenceRow, ...]
    errors: tuple[WrongLine, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_dict(),
            "images": {name: m.to_dict() for name, m in self.images.items()},
            "confidence": [row.to_dict() for row in self.confidence],
            "errors": [e.to_dict() for e in self.errors],
        }


@dataclass(frozen=True)
class Evaluation:
    """The whole evaluation: each model_version's scores, and how many predicted images had no truth."""

    model_versions: dict[str, VersionEvaluation]
    pred_images_without_truth: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as `svtr-label eval --json` writes it."""
        return {
            "pred_images_without_truth": self.pred_images_without_truth,
            "model_versions": {v: e.to_dict() for v, e in self.model_versions.items()},
        }


def metrics(pages: Sequence[PageOutcome]) -> Metrics:
    lines = [l for p in pages for l in p.lines]
    matched = [l for l in lines if l.pred is not None]
    n_pred = sum(p.n_pred for p in pages)
    precision, recall = _ratio(len(matched), n_pred), _ratio(len(matched), len(lines))
    dist = [levenshtein(l.truth, l.pred) / max(len(l.truth), len(l.pred), 1) if l.pred is not None else 1.0 for l in lines]
    return Metrics(
        images=len(pages),
        truth_lines=len(lines),
        pred_lines=n_pred,
        matched=len(matched),
        correct=sum(l.correct for l in lines),
        line_acc=_ratio(sum(l.correct for l in lines), len(lines)),
        line_acc_nospace=_ratio(sum(l.correct_nospace for l in lines), len(lines)),
        rec_acc_matched=_ratio(sum(l.correct for l in matched), len(matched)),
        norm_edit_dis=1.0 - _ratio(sum(dist), len(dist)) if dist else 0.0,
        det_precision=precision,
        det_recall=recall,
        det_hmean=_ratio(2 * precision * recall, precision + recall),
    )


def confidence_table(pages: Sequence[PageOutcome], thresholds: Sequence[float] = THRESHOLDS) -> tuple[ConfidenceRow, ...]:
    """For each threshold: matched lines scoring at least it, their share and their accuracy."""
    matched = [l for p in pages for l in p.lines if l.pred is not None and l.score is not None]
    rows = []
    for t in thresholds:
        kept = [l for l in matched if l.score >= t]  # type: ignore[operator]
        rows.append(ConfidenceRow(threshold=t, lines=len(kept), coverage=_ratio(len(kept), len(matched)),
                                  accuracy=_ratio(sum(l.correct for l in kept), len(kept)), errors=sum(not l.correct for l in kept)))
    return tuple(rows)


# --- inputs ----------------------------------------------------------------------------------


def truth_pages(store: Store) -> dict[str, tuple[str, Page]]:
    """Corrected pages, keyed by every name they can be matched by (sha256, ref, file name)."""
    out: dict[str, tuple[str, Page]] = {}
    for image_id in store.image_ids():
        if store.is_corrected(image_id):
            info = store.get_image(image_id)
            name = info.ref or info.sha256 or str(image_id)
            for key in _keys(info.sha256, info.ref):
                out.setdefault(key, (name, store.current_page(image_id)))
    return out


def _keys(sha256: str | None, ref: str | None) -> list[str]:
    keys = [k for k in (sha256, ref) if k]
    if ref:
        keys.append("name:" + ref.replace("\\", "/").rsplit("/", 1)[-1].rsplit("=", 1)[-1])
    return keys


def pair_pages(truth: Store, pred: Store) -> tuple[list[PageOutcome], int]:
    """Compare every prediction of `pred` with its image's truth. Returns the outcomes and the
    number of predicted images that have no truth."""
    by_key = truth_pages(truth)
    outcomes, unmatched = [], 0
    for image_id in pred.image_ids():
        info = pred.get_image(image_id)
        found = next((by_key[k] for k in _keys(info.sha256, info.ref) if k in by_key), None)
        if found is None:
            unmatched += 1
            continue
        name, truth_page = found
        for page in pred.predictions(image_id).values():
            outcomes.append(compare_page(name, truth_page, page))
    return outcomes, unmatched


def evaluate(truth: Store, pred: Store) -> Evaluation:
    """Every prediction of `pred` against its image's corrected truth, per model_version."""
    outcomes, unmatched = pair_pages(truth, pred)
    if not outcomes:
        corrected = sum(truth.is_corrected(i) for i in truth.image_ids())
        raise DatasetError(f"none of the {unmatched} predicted images is one of the truth's {corrected} corrected images "
                           "(matched by sha256, ref, or file name): predict the corrected images, or pass the store "
                           "that holds their predictions")
    versions = {}
    for version in sorted({o.model_version for o in outcomes}):
        pages = [o for o in outcomes if o.model_version == version]
        versions[version] = VersionEvaluation(
            overall=metrics(pages),
            images={p.image: metrics([p]) for p in sorted(pages, key=lambda p: p.image)},
            confidence=confidence_table(pages),
            errors=tuple(WrongLine(l.image, l.truth, l.pred, l.score) for p in pages for l in p.lines if not l.correct),
        )
    return Evaluation(model_versions=versions, pred_images_without_truth=unmatched)


# --- output ----------------------------------------------------------------------------------

_COLUMNS = (("line_acc", "acc"), ("line_acc_nospace", "acc_nospace"), ("norm_edit_dis", "ned"),
            ("det_precision", "det_P"), ("det_recall", "det_R"), ("det_hmean", "det_H"), ("truth_lines", "lines"))


def format_table(result: Evaluation) -> str:
    out = []
    for version, data in result.model_versions.items():
        out.append(f"model_version {version or '(none)'}")
        header = f"{'image':<40}" + "".join(f"{short:>12}" for _, short in _COLUMNS)
        out.append(header)
        for name, m in list(data.images.items()) + [("ALL", data.overall)]:
            out.append(f"{name[-40:]:<40}" + "".join(_cell(getattr(m, key)) for key, _ in _COLUMNS))
        out.append(f"\n{'score >=':>10}{'lines':>8}{'coverage':>10}{'accuracy':>10}{'errors':>8}")
        for row in data.confidence:
            out.append(f"{row.threshold:>10.3f}{row.lines:>8}{row.coverage:>10.3f}{row.accuracy:>10.4f}{row.errors:>8}")
        out.append("")
    return "\n".join(out)


def _cell(v: Any) -> str:
    return f"{v:>12.4f}" if isinstance(v, float) else f"{v:>12}"


def plot(result: Evaluation, path: Path) -> None:
    """Accuracy and coverage against the score threshold, one line pair per model_version."""
    plot_confidence([(version, data.confidence) for version, data in result.model_versions.items()], path)


def plot_confidence(curves: Sequence[tuple[str, Sequence[ConfidenceRow]]], path: Path) -> None:
    """One PNG: for each (label, confidence table), accuracy (solid) and coverage (dashed) against
    the score threshold, in the same colour, so several models can be read off one picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, (label, rows) in enumerate(curves):
        t, colour = [r.threshold for r in rows], colours[n % len(colours)]
        # No line at a threshold: no accuracy to draw (not 0).
        ax.plot(t, [r.accuracy if r.lines else float("nan") for r in rows], marker="o", color=colour, label=label or "(none)")
        ax.plot(t, [r.coverage for r in rows], linestyle="--", color=colour)
    styles = [Line2D([], [], color="black", marker="o", label="accuracy of the lines kept"),
              Line2D([], [], color="black", linestyle="--", label="coverage: share of lines kept")]
    ax.set_xlabel("minimum line score (auto-accept threshold)")
    ax.set_ylabel("share of matched lines")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    # Below the axes: labels (file name and model_version) are long and would hide the curves.
    ax.legend(handles=[*ax.get_legend_handles_labels()[0], *styles], fontsize=7, loc="upper center",
              bbox_to_anchor=(0.5, -0.14), ncol=1)
    ax.set_title("Line accuracy and coverage vs confidence")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
