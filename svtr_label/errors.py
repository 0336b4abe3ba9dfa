"""Every error svtr-label raises on purpose, in one hierarchy, and how each face reports it.

Catch `SvtrLabelError` for "svtr-label said no, with a message meant for a person"; anything
else escaping is a bug and keeps its traceback. Messages name the input at fault and what to do.

    SvtrLabelError
    ├── UsageError          options that do not go together, a missing argument
    ├── SettingsError       an environment variable that does not parse
    ├── ConfigError         a labeling config svtr-label cannot write OCR results for
    ├── ModelError          models that cannot be loaded (missing folder, package, download)
    ├── ImageError          an input that is not a usable image
    │   ├── FetchError      an image URL that cannot or may not be fetched
    │   └── SourceError     a stored image ref that cannot be read here
    ├── RefError            an image ref that leaves the document root or is malformed
    ├── LabelStudioError    a Label Studio API call that failed
    ├── StoreError          a store operation that cannot be done
    │   └── StaleEdit       an edit, undo or redo over someone else's newer change (reload the line)
    ├── DatasetError        an evaluation that cannot be done
    │   ├── ExportError     an export that cannot be written
    │   └── TrainConfigError  a training config that cannot tell the limits
    ├── ScaleError          a Ray job that cannot start (Ray missing, no cluster) or an output folder it cannot use
    ├── FontMissing         no font for generated pages (tests, samples, benchmarks)
    └── RequestError        a backend request that cannot be answered (malformed body)

`EXIT_CODES` and `HTTP_STATUS` are the only places that turn these into exit codes and HTTP
statuses; the CLI and the backend look them up with `exit_code_for` and `http_status_for`.
"""

from __future__ import annotations


class SvtrLabelError(Exception):
    """Base class of svtr-label's own errors; the message is written for the user."""


class UsageError(SvtrLabelError):
    """A request that cannot be done as asked: options that do not go together, a missing
    argument, an editor action with nothing to act on."""


class SettingsError(SvtrLabelError):
    """An environment variable whose value does not parse; the message names it."""


class ConfigError(SvtrLabelError):
    """A labeling config svtr-label cannot write OCR results for; the message says what is missing."""


class ModelError(SvtrLabelError):
    """A model that cannot be loaded; the message says what is missing and how to get it."""


class ImageError(SvtrLabelError):
    """An input that cannot be used as an image; the message names it and says why."""


class FetchError(ImageError):
    """An image URL that cannot or may not be fetched; the message says which and why."""


class SourceError(ImageError):
    """An image ref that cannot be read here; the message names the ref and what to set."""


class RefError(SvtrLabelError):
    """An image ref that is malformed or leaves the document root; refused."""


class LabelStudioError(SvtrLabelError):
    """A Label Studio API call that failed; the message names the call and Label Studio's answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class StoreError(SvtrLabelError):
    """A store operation that cannot be done; the message names the image or region."""


class StaleEdit(StoreError):
    """An edit, undo or redo refused because another reviewer changed the region since the caller
    loaded it (or, for undo and redo, since the edit was made); the store is left unchanged.

    `current` is the region now (a `svtr_label.core.page.Region`, typed loosely because errors sit
    below core; None when deleted), `version` its version, `by` and `at` who changed it last and
    when. The message names them and says what to do: reload the line."""

    def __init__(self, message: str, *, image_id: int, region_id: str | None, current: object | None,
                 by: str, at: str, version: int) -> None:
        super().__init__(message)
        self.image_id = image_id
        self.region_id = region_id
        self.current = current
        self.by = by
        self.at = at
        self.version = version

    def __reduce__(self) -> tuple:
        # Keyword-only fields: the default (type, args) pickling would drop them, and a StaleEdit
        # raised in a worker process must arrive whole.
        return (_stale_edit, (str(self), self.image_id, self.region_id, self.current, self.by, self.at, self.version))


def _stale_edit(message: str, image_id: int, region_id: str | None, current: object | None, by: str, at: str, version: int) -> StaleEdit:
    return StaleEdit(message, image_id=image_id, region_id=region_id, current=current, by=by, at=at, version=version)


class DatasetError(SvtrLabelError):
    """An export or evaluation that cannot be done; the message names the image or option at fault."""


class ExportError(DatasetError):
    """An export that cannot be written; the message names the image or option at fault."""


class TrainConfigError(DatasetError):
    """A training config that cannot tell the limits; the message names the file and the key."""


class ScaleError(SvtrLabelError):
    """A scale-out job that cannot start (Ray not installed, no cluster at the address) or an output
    folder it cannot use."""


class FontMissing(SvtrLabelError):
    """No font with the glyphs generated test pages need (Debian: fonts-noto-cjk)."""


class RequestError(SvtrLabelError):
    """A request the ML backend cannot answer (its body is not what Label Studio sends)."""


# Exit codes of `svtr-label`: 1 is kept for "the work found invalid data" (export --on-invalid
# fail, nothing processed), 2 for "svtr-label refused to start the work".
EXIT_CODES: dict[type[SvtrLabelError], int] = {
    SvtrLabelError: 2,
}

# HTTP statuses of the ML backend; the most specific class listed wins.
HTTP_STATUS: dict[type[SvtrLabelError], int] = {
    SvtrLabelError: 400,
    RequestError: 400,
    ConfigError: 400,
    UsageError: 400,
    ImageError: 422,
    RefError: 422,
    StoreError: 422,
    LabelStudioError: 502,
    ModelError: 503,
}


def _lookup(table: dict[type[SvtrLabelError], int], exc: SvtrLabelError) -> int:
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]  # type: ignore[index]
    return table[SvtrLabelError]


def exit_code_for(exc: SvtrLabelError) -> int:
    """The `svtr-label` exit code for one of our errors."""
    return _lookup(EXIT_CODES, exc)


def http_status_for(exc: SvtrLabelError) -> int:
    """The HTTP status the ML backend answers one of our errors with."""
    return _lookup(HTTP_STATUS, exc)


__all__ = [
    "SvtrLabelError", "UsageError", "SettingsError", "ConfigError", "ModelError", "ImageError", "FetchError",
    "SourceError", "RefError", "LabelStudioError", "StoreError", "StaleEdit", "DatasetError", "ExportError", "TrainConfigError",
    "ScaleError", "FontMissing", "RequestError", "EXIT_CODES", "HTTP_STATUS", "exit_code_for", "http_status_for",
]
