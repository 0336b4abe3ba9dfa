"""The process-wide objects of one running svtr-label: built once from the settings, shared after.

A face (the CLI, the ML backend, a notebook) builds one `Services` and asks it for what it needs;
nothing below keeps a global. Tests build their own, with their own settings.

    services = Services.from_env()
    engine = services.engine()                      # the profile of SVTR_PROFILE, loaded on first use
    page = engine.predict_one("scan.png")

Each object is built on first use and kept: models load once per process (per profile and
engine settings), one image fetcher, one prediction cache, one store per file.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from svtr_label.core.budget import PixelBudget
from svtr_label.errors import SvtrLabelError
from svtr_label.labelstudio.client import LabelStudio
from svtr_label.labelstudio.fetch import ImageFetcher
from svtr_label.labelstudio.sources import ImageSource
from svtr_label.ocr.cache import PredictionCache
from svtr_label.ocr.engine import OcrEngine
from svtr_label.ocr.profiles import Profile, resolve_profile
from svtr_label.settings import EngineSettings, ModelSettings, Settings
from svtr_label.store import Store

T = TypeVar("T")


@dataclass
class Services:
    settings: Settings = field(default_factory=Settings)
    _built: dict[Any, Any] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Services":
        return cls(Settings.from_env(env))

    def with_settings(self, settings: Settings) -> "Services":
        """Services for other settings that keep the engines already loaded: an engine is kept
        only under the exact profile and engine settings it was built for, so none is reused wrongly."""
        other = Services(settings)
        with self._lock:
            other._built.update({k: v for k, v in self._built.items() if isinstance(k, tuple) and k[0] == "engine"})
        return other

    def _once(self, key: Any, build: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._built:
                self._built[key] = build()
            return self._built[key]

    def built_engine(self) -> OcrEngine | None:
        """The engine of the settings' profile if it was built, else None (/health must not build it)."""
        try:
            key = self._engine_key(self.profile(), self.settings.engine)
        except SvtrLabelError:
            return None
        return self._built.get(key)

    @staticmethod
    def _engine_key(profile: Profile, engine: EngineSettings) -> tuple[str, str, EngineSettings]:
        return ("engine", repr(profile), engine)

    # -- OCR ---------------------------------------------------------------------------------------

    def profile(self, models: ModelSettings | str | None = None) -> Profile:
        """The model profile of `models` (a profile name, or model settings; default: the settings')."""
        if isinstance(models, str):
            models = replace(self.settings.models, profile=models)
        return resolve_profile(models or self.settings.models, self.settings.models_dir)

    def engine(self, models: ModelSettings | str | None = None, engine: EngineSettings | None = None) -> OcrEngine:
        """The engine for a profile, built once per process and per (profile, engine settings)."""
        profile = self.profile(models)
        settings = engine or self.settings.engine
        return self._once(self._engine_key(profile, settings),
                          lambda: OcrEngine(profile, settings, self.settings.paddlex_cache_home))

    def pixel_budget(self) -> PixelBudget:
        """Decoded pixels held at once by this process's pre-annotation, all requests together."""
        return self._once("pixel_budget", lambda: PixelBudget(self.settings.preannotate.max_inflight_pixels))

    def prediction_cache(self) -> PredictionCache | None:
        """The cache `svtr-label predict`, `push` and the backend share; None when SVTR_PREDICTION_CACHE is off."""
        if not self.settings.preannotate.prediction_cache:
            return None
        return self._once("prediction_cache", lambda: PredictionCache(self.settings.prediction_cache_path))

    # -- images ------------------------------------------------------------------------------------

    def fetcher(self) -> ImageFetcher:
        """Task images by URL, under the fetch policy (the backend, push)."""
        return self._once("fetcher", lambda: ImageFetcher(self.settings.fetch))

    def image_source(self, root: Path | None = None) -> ImageSource:
        """Stored image refs, read from disk under `root` (default LOCAL_FILES_DOCUMENT_ROOT) or from Label Studio."""
        folder = root or self.settings.label_studio.document_root
        return self._once(("image_source", folder), lambda: ImageSource(folder, fetch_settings=self.settings.fetch))

    def label_studio(self) -> LabelStudio | None:
        """The Label Studio API client of LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY; None without them."""
        ls = self.settings.label_studio
        if not (ls.url and ls.api_key):
            return None
        return self._once("label_studio", lambda: LabelStudio(ls.url or "", ls.api_key or "", timeout=self.settings.fetch.timeout))

    def user_email(self, user_id: int) -> str | None:
        """A Label Studio user's e-mail, asked once per process; None without Label Studio, or when it
        could not say (asked again next time: a failed lookup must not stick for the process's life)."""
        ls = self.label_studio()
        if ls is None:
            return None
        with self._lock:
            emails: dict[int, str] = self._built.setdefault("user_emails", {})
            if user_id in emails:
                return emails[user_id]
        email = ls.user_email(user_id)
        if email is not None:
            with self._lock:
                emails[user_id] = email
        return email

    # -- the store ---------------------------------------------------------------------------------

    def store(self, path: Path | str | None = None) -> Store:
        """A corrections store (default: SVTR_STORE), its local-files refs under LOCAL_FILES_DOCUMENT_ROOT."""
        target = Path(path) if path else self.settings.store_path
        return self._once(("store", target), lambda: Store(target, root=self.settings.label_studio.document_root, limits=self.settings.images))
