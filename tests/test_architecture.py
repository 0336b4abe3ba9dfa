"""The tree is the architecture: layers import only the layers below them, no import cycles, the
store never touches the HTTP client, only the settings module reads the environment, and
README's variable tables list exactly the variables it reads. Pure source checks (AST): fast."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from svtr_label.settings import VARIABLES

REPO = Path(__file__).resolve().parents[1]

# Lowest first; a module may import its own layer and the layers before it.
LAYERS = [
    ("svtr_label.errors",),
    ("svtr_label.settings",),
    ("svtr_label.core",),
    ("svtr_label.ocr",),
    ("svtr_label.labelstudio",),
    ("svtr_label.store",),
    ("svtr_label.dataset",),
    ("svtr_label.services",),
    ("svtr_label.scale",),  # Ray jobs: their actors build what they need through Services
    ("svtr_label.cli",),
    ("svtr_backend", "svtr_label_widgets"),  # the faces: they never import each other or the CLI
]
# The parts of the labelstudio layer that speak HTTP; the store must not depend on a server.
HTTP_MODULES = ("svtr_label.labelstudio.client", "svtr_label.labelstudio.fetch", "svtr_label.labelstudio.sources",
                "svtr_label.labelstudio.preannotate", "svtr_label.labelstudio.push", "requests", "urllib3")


def _modules() -> dict[str, Path]:
    found = {}
    for root, name in ((REPO / "svtr_label", "svtr_label"), (REPO / "svtr_backend", "svtr_backend"), (REPO / "widgets", "svtr_label_widgets")):
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([name, *parts])] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    """Every module `module` imports, at the top or inside a function (absolute names)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES}
            out.update(submodules)
            if len(submodules) < len(node.names):  # names from the module itself, not only its submodules
                out.add(base)
    return out


IMPORTS = {m: _imports(m, p) for m, p in MODULES.items()}


def layer_of(module: str) -> int | None:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None  # the package's own __init__ (the public API) and third-party modules


def test_every_module_belongs_to_a_layer():
    unplaced = [m for m in MODULES if layer_of(m) is None and m != "svtr_label"]
    assert not unplaced, f"modules outside every layer: {unplaced}; add them to LAYERS or move them"


def test_lower_layers_never_import_upper_ones():
    wrong = []
    for module, imported in IMPORTS.items():
        own = layer_of(module)
        for target in imported:
            if target == "svtr_label" and module != "svtr_label":
                wrong.append(f"{module} imports the public API package svtr_label (import from its layer instead)")
            rank = layer_of(target)
            if own is None or rank is None:
                continue
            if rank > own or (rank == own == len(LAYERS) - 1 and target.split(".")[0] != module.split(".")[0]):
                wrong.append(f"{module} (layer {own}) imports {target} (layer {rank})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = {m: {t for t in IMPORTS[m] if t in MODULES and t != m} for m in MODULES if m != "svtr_label"}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_storage_never_imports_the_http_client():
    store = {m: i for m, i in IMPORTS.items() if m.startswith("svtr_label.store")}
    wrong = [f"{m} imports {t}" for m, imported in store.items() for t in imported if t.startswith(HTTP_MODULES)]
    assert store and not wrong, wrong


def test_faces_never_import_the_command_line():
    wrong = [f"{m} imports {t}" for m, imported in IMPORTS.items() if not m.startswith("svtr_label")
             for t in imported if t.startswith("svtr_label.cli")]
    assert not wrong, wrong


def _environment_reads(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb") and \
                isinstance(node.value, ast.Name) and node.value.id == "os":
            lines.append(node.lineno)
    return lines


def test_only_the_settings_module_reads_the_environment():
    readers = {m: _environment_reads(p) for m, p in MODULES.items() if m != "svtr_label.settings"}
    assert {m: lines for m, lines in readers.items() if lines} == {}


def test_modules_stay_small_or_say_why():
    """~450 lines at most, unless the module's docstring says why it is longer."""
    long = []
    for module, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > 450 and "longer than" not in doc:
            long.append(f"{module}: {text.count(chr(10))} lines")
    assert not long, long


def _readme_variables(path: Path) -> set[str]:
    """Variables named in the first column of the README's tables (`NAME` or `NAME=value`)."""
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        first = line.split("|")[1]
        names.update(re.findall(r"`([A-Z][A-Z0-9_]+)(?:=[^`]*)?`", first))
    return names


def test_readme_variable_tables_list_exactly_what_the_settings_read():
    documented = _readme_variables(REPO / "README.md")
    read = {v.name for v in VARIABLES}
    assert documented - read == set(), "README lists variables svtr-label does not read"
    assert read - documented == set(), "variables svtr-label reads but README's tables do not list"


@pytest.mark.parametrize("variable", sorted(v.name for v in VARIABLES))
def test_each_variable_is_read_by_from_env(variable):
    """Every registered variable changes Settings.from_env: none is declared and forgotten."""
    from svtr_label.settings import Settings

    var = next(v for v in VARIABLES if v.name == variable)
    samples = {bool: "true", int: "7", float: "2.5", tuple: "a.example.com"}
    candidates = ["1", "7", "true", "false", "debug", "/tmp/svtr-x", "min", "bundled", "paddle", "http://ls.example:8080", "a.example.com"]
    base = Settings.from_env({})
    for raw in ([samples[type(var.default)]] if type(var.default) in samples else []) + candidates:
        try:
            parsed = var.parse(raw)
        except ValueError:
            continue
        if parsed != var.default and Settings.from_env({variable: raw}) != base:
            return
    pytest.fail(f"setting {variable} to a valid value changed nothing in Settings.from_env")
