"""Every setting svtr-label reads from the environment: its variable, default and parser, in one place.

`Settings.from_env(env)` reads them all into frozen dataclasses, once, when a face (the CLI, the
ML backend, a notebook) starts; the layers below take the part they need as an argument and never
read the environment themselves. Command-line flags are applied with `dataclasses.replace`.

    settings = Settings.from_env()                    # os.environ
    settings = Settings.from_env({"SVTR_PROFILE": "bundled"})
    models = dataclasses.replace(settings.models, profile="custom", rec_model_dir=Path("/models/rec"))

`VARIABLES` lists every variable read here; README's variable tables list exactly these (tested).
This module is longer than 450 lines because it is the one place every variable lives.
The module is longer than 450 lines for that reason: every setting lives here, and nowhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Generic, Mapping, TypeVar

from svtr_label.errors import SettingsError

T = TypeVar("T")

PROFILE_NAMES = ("svtrv2", "ppocrv6", "ppocrv6-small", "ppocrv6-tiny", "bundled", "bundled-v5", "custom")
DEFAULT_PROFILE = "svtrv2"
ENGINES = ("paddle", "onnxruntime")
DEFAULT_MAX_IMAGE_PIXELS = 60_000_000
DEFAULT_MAX_IMAGE_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_REQUEST_BYTES = 20 * 1024 * 1024


# --- parsers ---------------------------------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def parse_bool(raw: str) -> bool:
    """The one boolean parser: 1/true/yes/on and 0/false/no/off, any case."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected one of 1, true, yes, on, 0, false, no, off")


def _int_within(raw: str, low: int, high: int, expected: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"expected {expected}") from None
    if not low <= value <= high:
        raise ValueError(f"expected {expected}")
    return value


def parse_positive_int(raw: str) -> int:
    return _int_within(raw, 1, 2**63 - 1, "a whole number of at least 1")


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        return _int_within(raw, low, high, f"a whole number from {low} to {high}")

    return parse


def parse_nonnegative_float(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("expected a number of at least 0") from None
    if not value >= 0:
        raise ValueError("expected a number of at least 0")
    return value


def parse_port(raw: str) -> int:
    return _int_within(raw, 1, 65535, "a port number between 1 and 65535")


def parse_positive_float(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("expected a number above 0") from None
    if not value > 0:
        raise ValueError("expected a number above 0")
    return value


def parse_path(raw: str) -> Path:
    return Path(raw.strip()).expanduser()


def parse_text(raw: str) -> str:
    return raw.strip()


def parse_url(raw: str) -> str:
    return raw.strip().rstrip("/")


def parse_hosts(raw: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in raw.split(",") if h.strip())


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


def _off_or_path(raw: str) -> Path | None:
    """A folder, or off/0/false/no for none."""
    value = raw.strip()
    return None if value.lower() in _FALSE else Path(value).expanduser()


# --- the variables ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Var(Generic[T]):
    """One environment variable: its name, how its text is parsed, and its value when unset or empty."""

    name: str
    parse: Callable[[str], T]
    default: T

    def read(self, env: Mapping[str, str]) -> T:
        raw = env.get(self.name)
        if raw is None or raw.strip() == "":
            return self.default
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{self.name}={raw!r} is not valid: {exc}") from None


_NO_PATH: Path | None = None
_NO_TEXT: str | None = None
_NO_INT: int | None = None
_NO_BOOL: bool | None = None

# Paths
SVTR_CACHE_DIR = Var("SVTR_CACHE_DIR", parse_path, _NO_PATH)
XDG_CACHE_HOME = Var("XDG_CACHE_HOME", parse_path, _NO_PATH)
PADDLE_PDX_CACHE_HOME = Var("PADDLE_PDX_CACHE_HOME", parse_path, _NO_PATH)
# Models
SVTR_PROFILE = Var("SVTR_PROFILE", _choice(*PROFILE_NAMES), DEFAULT_PROFILE)
SVTR_DET_MODEL_DIR = Var("SVTR_DET_MODEL_DIR", parse_path, _NO_PATH)
SVTR_REC_MODEL_DIR = Var("SVTR_REC_MODEL_DIR", parse_path, _NO_PATH)
SVTR_TEXTLINE_MODEL_DIR = Var("SVTR_TEXTLINE_MODEL_DIR", parse_path, _NO_PATH)
SVTR_UNWARPING_MODEL_DIR = Var("SVTR_UNWARPING_MODEL_DIR", parse_path, _NO_PATH)
SVTR_ENGINE = Var("SVTR_ENGINE", _choice(*ENGINES), _NO_TEXT)
SVTR_USE_DOC_ORIENTATION = Var("SVTR_USE_DOC_ORIENTATION", parse_bool, _NO_BOOL)
SVTR_USE_DOC_UNWARPING = Var("SVTR_USE_DOC_UNWARPING", parse_bool, _NO_BOOL)
SVTR_USE_TEXTLINE_ORIENTATION = Var("SVTR_USE_TEXTLINE_ORIENTATION", parse_bool, _NO_BOOL)
SVTR_DET_LIMIT_SIDE_LEN = Var("SVTR_DET_LIMIT_SIDE_LEN", parse_positive_int, _NO_INT)
SVTR_DET_LIMIT_TYPE = Var("SVTR_DET_LIMIT_TYPE", _choice("min", "max"), _NO_TEXT)
SVTR_DET_MAX_SIDE = Var("SVTR_DET_MAX_SIDE", parse_positive_int, _NO_INT)
SVTR_ADAPTIVE_SIZING = Var("SVTR_ADAPTIVE_SIZING", parse_bool, _NO_BOOL)
# Engine
SVTR_DEVICE = Var("SVTR_DEVICE", parse_text, "cpu")
SVTR_WORKERS = Var("SVTR_WORKERS", parse_positive_int, _NO_INT)
SVTR_CPU_THREADS = Var("SVTR_CPU_THREADS", parse_positive_int, _NO_INT)
SVTR_REC_BATCH_SIZE = Var("SVTR_REC_BATCH_SIZE", parse_positive_int, _NO_INT)
SVTR_ENABLE_MKLDNN = Var("SVTR_ENABLE_MKLDNN", parse_bool, _NO_BOOL)
# Images
SVTR_MAX_IMAGE_PIXELS = Var("SVTR_MAX_IMAGE_PIXELS", parse_positive_int, DEFAULT_MAX_IMAGE_PIXELS)
SVTR_MAX_IMAGE_BYTES = Var("SVTR_MAX_IMAGE_BYTES", parse_positive_int, DEFAULT_MAX_IMAGE_BYTES)
# Documents (PDFs, multi-page TIFFs)
SVTR_MAX_PAGES = Var("SVTR_MAX_PAGES", parse_positive_int, 1000)
SVTR_PDF_DPI = Var("SVTR_PDF_DPI", _int_range(1, 1200), 200)
# Label Studio
LABEL_STUDIO_URL = Var("LABEL_STUDIO_URL", parse_url, _NO_TEXT)
LABEL_STUDIO_HOST = Var("LABEL_STUDIO_HOST", parse_url, _NO_TEXT)
LABEL_STUDIO_API_KEY = Var("LABEL_STUDIO_API_KEY", parse_text, _NO_TEXT)
LOCAL_FILES_DOCUMENT_ROOT = Var("LOCAL_FILES_DOCUMENT_ROOT", parse_path, _NO_PATH)
# Fetching task images
SVTR_ALLOWED_HOSTS: Var[tuple[str, ...]] = Var("SVTR_ALLOWED_HOSTS", parse_hosts, ())
SVTR_FETCH_TIMEOUT = Var("SVTR_FETCH_TIMEOUT", parse_positive_float, 30.0)
SVTR_FETCH_CACHE = Var("SVTR_FETCH_CACHE", _off_or_path, _NO_PATH)
# Pre-annotation of tasks
SVTR_PREDICTION_CACHE = Var("SVTR_PREDICTION_CACHE", parse_bool, True)
SVTR_MAX_INFLIGHT_PIXELS = Var("SVTR_MAX_INFLIGHT_PIXELS", parse_positive_int, 2 * DEFAULT_MAX_IMAGE_PIXELS)
SVTR_FETCH_THREADS = Var("SVTR_FETCH_THREADS", parse_positive_int, 4)
# The ML backend
SVTR_STORE = Var("SVTR_STORE", parse_path, _NO_PATH)
SVTR_MAX_REQUEST_BYTES = Var("SVTR_MAX_REQUEST_BYTES", parse_positive_int, DEFAULT_MAX_REQUEST_BYTES)
SVTR_PRELOAD = Var("SVTR_PRELOAD", parse_bool, True)
BASIC_AUTH_USER = Var("BASIC_AUTH_USER", parse_text, _NO_TEXT)
BASIC_AUTH_PASS = Var("BASIC_AUTH_PASS", parse_text, _NO_TEXT)
HOST = Var("HOST", parse_text, "0.0.0.0")
PORT = Var("PORT", parse_port, 9090)
LOG_LEVEL = Var("LOG_LEVEL", _choice("debug", "info", "warning", "error"), "info")
MODEL_DIR = Var("MODEL_DIR", parse_path, _NO_PATH)
SVTR_MAX_TASKS_PER_REQUEST = Var("SVTR_MAX_TASKS_PER_REQUEST", parse_positive_int, 1000)
# Scale-out on Ray (`--ray`)
SVTR_RAY_ACTORS = Var("SVTR_RAY_ACTORS", parse_positive_int, _NO_INT)
SVTR_RAY_CPUS_PER_ACTOR = Var("SVTR_RAY_CPUS_PER_ACTOR", parse_positive_float, 1.0)
SVTR_RAY_GPUS_PER_ACTOR = Var("SVTR_RAY_GPUS_PER_ACTOR", parse_nonnegative_float, 0.0)
SVTR_RAY_PIPELINES_PER_ACTOR = Var("SVTR_RAY_PIPELINES_PER_ACTOR", parse_positive_int, 1)
SVTR_RAY_BLOCK_SIZE = Var("SVTR_RAY_BLOCK_SIZE", parse_positive_int, 16)
SVTR_RAY_COMMIT_EVERY = Var("SVTR_RAY_COMMIT_EVERY", _int_range(1, 10_000), 500)
SVTR_RAY_COMMIT_SECONDS = Var("SVTR_RAY_COMMIT_SECONDS", parse_positive_float, 60.0)
SVTR_RAY_ACTOR_START_TIMEOUT = Var("SVTR_RAY_ACTOR_START_TIMEOUT", parse_positive_int, 900)
SVTR_RAY_LOCAL_NODE_IP = Var("SVTR_RAY_LOCAL_NODE_IP", parse_text, "127.0.0.2")
SVTR_RAY_LOCAL_CPUS = Var("SVTR_RAY_LOCAL_CPUS", parse_positive_int, _NO_INT)

VARIABLES: tuple[Var, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Var))


def setting(var: Var[T], *, secret: bool = False) -> T:
    """A settings field read from `var`, defaulting to its default; secrets stay out of reprs."""
    return field(default=var.default, repr=not secret, metadata={"var": var})  # type: ignore[no-any-return]


class _FromEnv:
    """`from_env` for a settings dataclass whose fields are `setting(VAR)`s."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]):  # type: ignore[no-untyped-def]
        return cls(**{f.name: f.metadata["var"].read(env) for f in fields(cls) if "var" in f.metadata})  # type: ignore[arg-type, call-arg]


# --- the settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSettings(_FromEnv):
    """Which models the pipeline runs. None keeps the profile's own choice."""

    profile: str = setting(SVTR_PROFILE)
    det_model_dir: Path | None = setting(SVTR_DET_MODEL_DIR)
    rec_model_dir: Path | None = setting(SVTR_REC_MODEL_DIR)
    textline_model_dir: Path | None = setting(SVTR_TEXTLINE_MODEL_DIR)
    unwarping_model_dir: Path | None = setting(SVTR_UNWARPING_MODEL_DIR)  # UVDoc, for SVTR_USE_DOC_UNWARPING
    engine: str | None = setting(SVTR_ENGINE)  # "paddle", "onnxruntime"; None: the profile's (PaddleOCR decides)
    use_doc_orientation: bool | None = setting(SVTR_USE_DOC_ORIENTATION)
    use_doc_unwarping: bool | None = setting(SVTR_USE_DOC_UNWARPING)
    use_textline_orientation: bool | None = setting(SVTR_USE_TEXTLINE_ORIENTATION)
    det_limit_side_len: int | None = setting(SVTR_DET_LIMIT_SIDE_LEN)
    det_limit_type: str | None = setting(SVTR_DET_LIMIT_TYPE)  # "min" or "max"
    det_max_side: int | None = setting(SVTR_DET_MAX_SIDE)
    adaptive_sizing: bool | None = setting(SVTR_ADAPTIVE_SIZING)  # tiny images padded; large text read smaller; 2nd pass for huge/small text


@dataclass(frozen=True)
class EngineSettings(_FromEnv):
    """How the pipelines run. None: chosen for the machine and inference engine (see ocr.engine)."""

    device: str = setting(SVTR_DEVICE)
    workers: int | None = setting(SVTR_WORKERS)  # pipelines kept per process
    cpu_threads: int | None = setting(SVTR_CPU_THREADS)  # inference threads per pipeline
    # Lines per recognizer call; default: 1 for ONNX Runtime on CPU, else 6 (PaddleOCR's own).
    # ONNX Runtime on CPU runs a batch slower per line, even of lines padded to the same width
    # (benchmarks/bench.py: 1 line per call reads 50 pages 1.14x faster than 6), and one line per
    # call makes each result independent of its neighbours' padding: re-recognizing a box alone
    # gives back the page's text and score. Paddle Inference is the other way round (PP-OCRv4 mobile
    # rec on 132 lines, 1 or 2 threads, with or without oneDNN: 6 lines per call ~2x faster than 1).
    rec_batch_size: int | None = setting(SVTR_REC_BATCH_SIZE)
    enable_mkldnn: bool | None = setting(SVTR_ENABLE_MKLDNN)


@dataclass(frozen=True)
class ImageLimits(_FromEnv):
    """Checked on every image before its pixels are decoded."""

    max_pixels: int = setting(SVTR_MAX_IMAGE_PIXELS)
    max_bytes: int = setting(SVTR_MAX_IMAGE_BYTES)
    max_pages: int = setting(SVTR_MAX_PAGES)  # pages of one document (a PDF, a multi-page TIFF or task)


@dataclass(frozen=True)
class DocumentSettings(_FromEnv):
    """How documents become page images (`svtr-label predict doc.pdf`)."""

    dpi: int = setting(SVTR_PDF_DPI)  # PDF pages are rendered at this resolution


@dataclass(frozen=True)
class LabelStudioSettings:
    """The Label Studio server and the folder its local files are served from."""

    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    document_root: Path | None = None  # LOCAL_FILES_DOCUMENT_ROOT: /data/local-files/?d= paths are relative to it

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "LabelStudioSettings":
        return cls(
            url=LABEL_STUDIO_URL.read(env) or LABEL_STUDIO_HOST.read(env),
            api_key=LABEL_STUDIO_API_KEY.read(env),
            document_root=LOCAL_FILES_DOCUMENT_ROOT.read(env),
        )


@dataclass(frozen=True)
class FetchSettings:
    """What the image fetcher may fetch, with which credentials, within which limits."""

    ls_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    document_root: Path | None = None
    allowed_hosts: tuple[str, ...] = ()
    cache: Path | None = None  # None: no disk cache
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    timeout: float = 30.0
    max_redirects: int = 5

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "FetchSettings":
        ls = LabelStudioSettings.from_env(env)
        cache = SVTR_FETCH_CACHE.read(env)
        off = (env.get(SVTR_FETCH_CACHE.name) or "").strip() != "" and cache is None
        return cls(
            ls_url=ls.url,
            api_key=ls.api_key,
            document_root=ls.document_root,
            allowed_hosts=SVTR_ALLOWED_HOSTS.read(env),
            cache=None if off else cache or cache_dir(env) / "images",
            max_bytes=SVTR_MAX_IMAGE_BYTES.read(env),
            timeout=SVTR_FETCH_TIMEOUT.read(env),
        )


@dataclass(frozen=True)
class PreannotateSettings(_FromEnv):
    """Pre-annotation of Label Studio tasks (the backend's /predict, `svtr-label push`)."""

    fetch_threads: int = setting(SVTR_FETCH_THREADS)  # tasks worked on at once: their downloads overlap inference
    # Decoded pixels held at once by the process (all requests): what bounds memory, whatever the images.
    max_inflight_pixels: int = setting(SVTR_MAX_INFLIGHT_PIXELS)
    prediction_cache: bool = setting(SVTR_PREDICTION_CACHE)  # the cache shared with `svtr-label predict`


@dataclass(frozen=True)
class ServerSettings(_FromEnv):
    """The ML backend's server."""

    host: str = setting(HOST)
    port: int = setting(PORT)
    log_level: str = setting(LOG_LEVEL)
    preload: bool = setting(SVTR_PRELOAD)  # load the models at start-up, not on the first request
    max_request_bytes: int = setting(SVTR_MAX_REQUEST_BYTES)
    basic_auth_user: str | None = setting(BASIC_AUTH_USER)
    basic_auth_pass: str | None = setting(BASIC_AUTH_PASS, secret=True)
    store: Path | None = setting(SVTR_STORE)  # corrections store for webhooks; None: <cache>/store.sqlite
    model_dir: Path | None = setting(MODEL_DIR)  # label-studio-ml's own folder (2.x: its cache.db); None: <cache>/ml-backend
    max_tasks_per_request: int = setting(SVTR_MAX_TASKS_PER_REQUEST)


@dataclass(frozen=True)
class RaySettings(_FromEnv):
    """Scale-out jobs on Ray (`svtr-label predict --ray`, `push --ray`)."""

    actors: int | None = setting(SVTR_RAY_ACTORS)  # OCR actors; None: as many as the cluster's CPUs (GPUs) hold
    cpus_per_actor: float = setting(SVTR_RAY_CPUS_PER_ACTOR)  # also its inference threads (split over its pipelines)
    gpus_per_actor: float = setting(SVTR_RAY_GPUS_PER_ACTOR)  # above 0: GPU actors (fractions share a GPU); CPU tasks decode
    pipelines_per_actor: int = setting(SVTR_RAY_PIPELINES_PER_ACTOR)
    block_size: int = setting(SVTR_RAY_BLOCK_SIZE)  # inputs per block: the step of progress and of work redone after a failure
    commit_every: int = setting(SVTR_RAY_COMMIT_EVERY)  # rows per committed shard (at most 10,000)
    commit_seconds: float = setting(SVTR_RAY_COMMIT_SECONDS)  # ... or whatever is pending after this long
    # Every actor loads its models before work starts, so that every node takes its share (seconds to wait).
    actor_start_timeout: int = setting(SVTR_RAY_ACTOR_START_TIMEOUT)
    local_node_ip: str = setting(SVTR_RAY_LOCAL_NODE_IP)  # --ray local: the loopback address its node listens on
    local_cpus: int | None = setting(SVTR_RAY_LOCAL_CPUS)  # --ray local: CPUs it may use; None: all
    progress_bars: bool = True  # Ray Data's own bars (--no-progress turns them off)


def quiet_third_parties() -> None:
    """Nothing calls out. PaddleX probes model hosts when it is imported, and ONNX Runtime 1.32 looks
    up its telemetry host every few seconds (seen as DNS lookups from its own threads) unless told
    not to: call before importing paddlex, paddleocr, onnxruntime or ray. A value the user set is kept."""
    os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray reports usage to its makers unless told not to


def prepare_label_studio_ml(env: Mapping[str, str] | None = None) -> None:
    """label-studio-ml 2.x opens a SQLite cache in MODEL_DIR, else the working folder, when it is
    imported: point MODEL_DIR into svtr-label's cache unless the user set it. Call before importing it."""
    env = os.environ if env is None else env
    folder = MODEL_DIR.read(env) or cache_dir(env) / "ml-backend"
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(MODEL_DIR.name, str(folder))


def cache_dir(env: Mapping[str, str]) -> Path:
    """SVTR_CACHE_DIR, else $XDG_CACHE_HOME/svtr-label, else ~/.cache/svtr-label."""
    explicit = SVTR_CACHE_DIR.read(env)
    if explicit is not None:
        return explicit
    return (XDG_CACHE_HOME.read(env) or Path("~/.cache").expanduser()) / "svtr-label"


def paddlex_cache_home(env: Mapping[str, str]) -> Path:
    """Where PaddleX keeps the weights it downloads (its own PADDLE_PDX_CACHE_HOME, else ~/.paddlex)."""
    return PADDLE_PDX_CACHE_HOME.read(env) or Path("~/.paddlex").expanduser()


@dataclass(frozen=True)
class Settings:
    """All of svtr-label's settings. Build with `from_env`; change with `dataclasses.replace`."""

    cache_dir: Path = field(default_factory=lambda: cache_dir({}))
    paddlex_cache_home: Path = field(default_factory=lambda: paddlex_cache_home({}))
    models: ModelSettings = field(default_factory=ModelSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    images: ImageLimits = field(default_factory=ImageLimits)
    documents: DocumentSettings = field(default_factory=DocumentSettings)
    label_studio: LabelStudioSettings = field(default_factory=LabelStudioSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    preannotate: PreannotateSettings = field(default_factory=PreannotateSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    ray: RaySettings = field(default_factory=RaySettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read every variable of `env` (default: the process environment); a bad value raises
        SettingsError naming the variable."""
        env = os.environ if env is None else env
        return cls(
            cache_dir=cache_dir(env),
            paddlex_cache_home=paddlex_cache_home(env),
            models=ModelSettings.from_env(env),
            engine=EngineSettings.from_env(env),
            images=ImageLimits.from_env(env),
            documents=DocumentSettings.from_env(env),
            label_studio=LabelStudioSettings.from_env(env),
            fetch=FetchSettings.from_env(env),
            preannotate=PreannotateSettings.from_env(env),
            server=ServerSettings.from_env(env),
            ray=RaySettings.from_env(env),
        )

    @property
    def store_path(self) -> Path:
        """The backend's corrections store: SVTR_STORE, else <cache>/store.sqlite."""
        return self.server.store or self.cache_dir / "store.sqlite"

    @property
    def prediction_cache_path(self) -> Path:
        return self.cache_dir / "predictions.sqlite"

    @property
    def models_dir(self) -> Path:
        """Where the bundled model folders are laid out."""
        return self.cache_dir / "models"

    @property
    def ml_backend_dir(self) -> Path:
        return self.server.model_dir or self.cache_dir / "ml-backend"
