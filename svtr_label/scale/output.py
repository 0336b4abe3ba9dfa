"""A scale-out job's output folder: committed shards of rows, and Label Studio task files made from them.

    OUT/rows/part-000001.parquet   one row per input (or .jsonl): uri, sha256, model_version, page, error, node
    OUT/tasks/tasks-000001.json    Label Studio tasks, at most 10,000 per file, importable as they are
    OUT/tasks/index.json           which task file covers each shard

Only the driver writes here, and every file appears by rename, so a shard is committed whole or
not at all: a killed driver loses the rows it had not committed yet, never half a shard. A rerun
reads the committed (uri, model_version) pairs and leaves those inputs out before anything is
downloaded, so each input gets one row per model_version. A failed input's row (its error set)
counts as done too: rerunning it gives the same error (to retry, list it in a manifest and write
to another folder).

Task files are named after the first shard they cover: a task file written by a run killed before
it recorded the file in the index is rewritten under the same name by the next run, never doubled.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypedDict

from svtr_label.core.page import Page
from svtr_label.errors import ScaleError
from svtr_label.labelstudio.payloads import Task

FORMATS = ("parquet", "jsonl")
MAX_TASKS_PER_FILE = 10_000  # Label Studio's import takes files of this size comfortably
COLUMNS = ("uri", "sha256", "model_version", "page", "error", "node")


class RowRecord(TypedDict):
    """One row as stored (the page as JSON text, so that Parquet and JSONL hold the same)."""

    uri: str
    sha256: str | None
    model_version: str
    page: str | None
    error: str | None
    node: str | None


@dataclass(frozen=True)
class Row:
    """One input's result: its page, or the reason it has none."""

    uri: str
    model_version: str
    sha256: str | None = None
    page: Page | None = None
    error: str | None = None
    node: str | None = None  # the Ray node that read it (its IP address)

    def to_record(self) -> RowRecord:
        page = json.dumps(self.page.to_dict(), ensure_ascii=False) if self.page is not None else None
        return RowRecord(uri=self.uri, sha256=self.sha256, model_version=self.model_version, page=page,
                         error=self.error, node=self.node)

    @classmethod
    def from_record(cls, record: RowRecord) -> "Row":
        page = Page.from_dict(json.loads(record["page"])) if record.get("page") else None
        return cls(record["uri"], record["model_version"], record.get("sha256"), page, record.get("error"), record.get("node"))


class JobOutput:
    """The output folder of one job (and of its reruns)."""

    def __init__(self, folder: Path, fmt: str = "parquet") -> None:
        if fmt not in FORMATS:
            raise ScaleError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
        self.folder = Path(folder)
        self.rows_dir = self.folder / "rows"
        self.tasks_dir = self.folder / "tasks"
        self.format = fmt
        other = {p.suffix.lstrip(".") for p in self.shards()} - {fmt}
        if other:
            raise ScaleError(f"{self.folder} already holds {', '.join(sorted(other))} shards: rerun with --format "
                             f"{sorted(other)[0]}, or write to another folder")
        if fmt == "parquet":
            _pyarrow()

    # -- shards -------------------------------------------------------------------------------------

    def shards(self) -> list[Path]:
        """The committed shards, oldest first."""
        if not self.rows_dir.is_dir():
            return []
        return sorted(p for p in self.rows_dir.iterdir() if p.name.startswith("part-") and p.suffix in (".parquet", ".jsonl"))

    def done(self, model_version: str) -> set[str]:
        """The inputs with a committed row of this model_version."""
        return {r["uri"] for r in self._records(self.shards(), ("uri", "model_version")) if r["model_version"] == model_version}

    def rows(self, shards: Iterable[Path] | None = None) -> Iterator[Row]:
        for record in self._records(self.shards() if shards is None else shards):
            yield Row.from_record(record)

    def commit(self, rows: Sequence[Row]) -> Path:
        """Write rows as the next shard, whole or not at all."""
        existing = self.shards()
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
        target = self.rows_dir / f"part-{number:06d}.{self.format}"
        records = [r.to_record() for r in rows]
        if self.format == "parquet":
            _atomic_write(target, lambda path: _write_parquet(path, records))
        else:
            _atomic_write(target, lambda path: path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"))
        return target

    def _records(self, shards: Iterable[Path], columns: Sequence[str] = COLUMNS) -> Iterator[RowRecord]:
        for shard in shards:
            if shard.suffix == ".parquet":
                yield from _pyarrow().parquet.read_table(shard, columns=list(columns)).to_pylist()
            else:
                with shard.open(encoding="utf-8") as fh:
                    yield from (json.loads(line) for line in fh if line.strip())

    # -- task files ---------------------------------------------------------------------------------

    def write_task_files(self, to_task: Callable[[Row], Task | None], max_tasks: int = MAX_TASKS_PER_FILE) -> list[Path]:
        """Task files for the shards no task file covers yet; returns the files written."""
        index_path = self.tasks_dir / "index.json"
        covered: dict[str, str | None] = json.loads(index_path.read_text(encoding="utf-8")) if index_path.exists() else {}
        pending = [s for s in self.shards() if s.name not in covered]
        written: list[Path] = []
        group: list[Path] = []
        tasks: list[Task] = []
        for shard in pending:
            shard_tasks = [t for t in (to_task(r) for r in self.rows([shard])) if t is not None]
            if group and len(tasks) + len(shard_tasks) > max_tasks:
                written += self._write_group(group, tasks, covered)
                group, tasks = [], []
            group.append(shard)
            tasks += shard_tasks
        if group:
            written += self._write_group(group, tasks, covered)
        if pending:
            _atomic_write(index_path, lambda path: path.write_text(json.dumps(covered, indent=1) + "\n", encoding="utf-8"))
        return written

    def _write_group(self, group: list[Path], tasks: list[Task], covered: dict[str, str | None]) -> list[Path]:
        if not tasks:  # every input of these shards failed: nothing to import
            covered.update({s.name: None for s in group})
            return []
        target = self.tasks_dir / f"tasks-{group[0].stem.split('-')[1]}.json"
        _atomic_write(target, lambda path: path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"))
        covered.update({s.name: target.name for s in group})
        return [target]


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ScaleError("Parquet output needs pyarrow: pip install 'svtr-label[ray]', or pass --format jsonl") from None
    return pyarrow


def _write_parquet(path: Path, records: list[RowRecord]) -> None:
    pa = _pyarrow()
    schema = pa.schema([(name, pa.string()) for name in COLUMNS])
    pa.parquet.write_table(pa.Table.from_pylist(list(records), schema=schema), path)


def _atomic_write(target: Path, write: Callable[[Path], Any]) -> None:
    """Write through a temporary file in the same folder, then rename: readers see all or nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + target.name + ".", dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
