"""A small Label Studio API client on `requests`: token handling, task lists, prediction import,
annotations and storage presign.

`TokenAuth` is the one place that knows Label Studio's two kinds of API key; the ML backend's
image fetcher uses it too. Keys never appear in logs, reprs or error messages.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import urlsplit

import requests

from svtr_label.errors import LabelStudioError, UsageError
from svtr_label.labelstudio.payloads import Annotation, Prediction, Result, Task

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
# Renew an access token this many seconds before it expires, so a request never races expiry.
EXPIRY_MARGIN = 30.0


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with default ports filled: what 'the same server' means."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The unverified payload of a JWT, or None when the token is not one (a legacy key)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


class TokenAuth(requests.auth.AuthBase):
    """Authorization for Label Studio's API and its /data/ files.

    A personal access token is a JWT refresh token: it is exchanged at /api/token/refresh/
    for a short-lived access token, sent as `Bearer`, renewed before it expires and once
    more when Label Studio answers 401. Any other key is a legacy token, sent as `Token`.
    The header goes only to the Label Studio server the key belongs to.
    """

    def __init__(self, base_url: str, token: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token.strip()
        claims = jwt_claims(self._token)
        self.personal = claims is not None and claims.get("token_type", "refresh") == "refresh"
        self._timeout = timeout
        self._access: str | None = None
        self._access_expiry = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        kind = "personal access token" if self.personal else "legacy token"
        return f"TokenAuth({self.base_url}, {kind})"

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if origin(r.url or "") != origin(self.base_url):
            return r  # never hand the key to another server
        r.headers["Authorization"] = self.header()
        if self.personal:
            r.register_hook("response", self._retry_on_401)
        return r

    def header(self, force_refresh: bool = False) -> str:
        if not self.personal:
            return f"Token {self._token}"
        return f"Bearer {self._access_token(force_refresh)}"

    def _access_token(self, force: bool) -> str:
        with self._lock:
            if force or self._access is None or time.time() > self._access_expiry - EXPIRY_MARGIN:
                self._access, self._access_expiry = self._refresh()
            return self._access

    def _refresh(self) -> tuple[str, float]:
        url = f"{self.base_url}/api/token/refresh/"
        try:
            resp = requests.post(url, json={"refresh": self._token}, timeout=self._timeout)
        except requests.RequestException as exc:
            raise LabelStudioError(f"cannot reach Label Studio at {self.base_url} to refresh the API key: {exc}") from None
        if resp.status_code != 200:
            raise LabelStudioError(
                f"Label Studio refused the personal access token (HTTP {resp.status_code} from /api/token/refresh/):"
                " create a new one under Account & Settings > Personal Access Token",
                resp.status_code,
            )
        access = str(resp.json().get("access", ""))
        claims = jwt_claims(access) or {}
        # Without an exp claim, assume Label Studio's default access lifetime of 5 minutes.
        return access, float(claims.get("exp") or time.time() + 300)

    def _retry_on_401(self, r: requests.Response, **kwargs: Any) -> requests.Response:
        """The access token expired early (server clock, revocation): renew once and resend."""
        if r.status_code != 401 or getattr(r.request, "_svtr_retried", False):
            return r
        r.content  # release the connection before reusing it
        retry = r.request.copy()
        retry.headers["Authorization"] = self.header(force_refresh=True)
        retry._svtr_retried = True  # type: ignore[attr-defined]
        new = r.connection.send(retry, **kwargs)
        new.history.append(r)
        new.request = retry
        return new


def _raise_for(resp: requests.Response, what: str) -> None:
    if resp.status_code < 400:
        return
    try:
        body: Any = resp.json()
        detail = (body.get("validation_errors") or body.get("detail") or body) if isinstance(body, dict) else body
    except ValueError:
        detail = resp.text[:300]
    raise LabelStudioError(f"{what}: HTTP {resp.status_code} from Label Studio: {detail}", resp.status_code)


class LabelStudio:
    """The few Label Studio API calls svtr-label needs."""

    def __init__(self, url: str, api_key: str, timeout: float = DEFAULT_TIMEOUT, session: requests.Session | None = None) -> None:
        if not url or not api_key:
            raise UsageError("Label Studio needs both a URL and an API key (LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY)")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.auth = TokenAuth(self.url, api_key, timeout)

    def __repr__(self) -> str:
        return f"LabelStudio({self.url})"

    def request(self, method: str, path: str, what: str | None = None, **kwargs: Any) -> requests.Response:
        """One API call; raises LabelStudioError naming `what` when it fails."""
        kwargs.setdefault("timeout", self.timeout)
        what = what or f"{method} {path}"
        try:
            resp = self.session.request(method, self.url + path, **kwargs)
        except requests.RequestException as exc:
            raise LabelStudioError(f"{what}: cannot reach Label Studio at {self.url}: {exc}") from None
        _raise_for(resp, what)
        return resp

    def project(self, project: int) -> dict[str, Any]:
        return self.request("GET", f"/api/projects/{project}", f"reading project {project}").json()

    def tasks(
        self, project: int, view: int | None = None, ids: Sequence[int] | None = None, page_size: int = 100
    ) -> Iterator[Task]:
        """Tasks with their predictions and annotations: all of a project, a view's, or the ids given (in that order)."""
        if ids:
            for task_id in ids:
                yield self.request("GET", f"/api/tasks/{task_id}", f"reading task {task_id}").json()
            return
        params: dict[str, Any] = {"project": project, "fields": "all", "page_size": page_size}
        if view is not None:
            params["view"] = view
        page = 1
        while True:
            resp = self.session.get(self.url + "/api/tasks", params={**params, "page": page}, timeout=self.timeout)
            if resp.status_code == 404 and page > 1:
                return  # Django's paginator answers 404 past the last page
            _raise_for(resp, f"listing tasks of project {project}")
            body = resp.json()
            batch = body.get("tasks", []) if isinstance(body, dict) else body
            yield from batch
            if len(batch) < page_size:
                return
            page += 1

    def user_email(self, user_id: int) -> str | None:
        """The e-mail of a Label Studio user (webhooks name annotators by id only); None if unknown."""
        try:
            body = self.request("GET", f"/api/users/{int(user_id)}/", f"reading user {user_id}").json()
        except LabelStudioError:
            return None
        email = body.get("email") if isinstance(body, dict) else None
        return str(email) if email else None

    def import_predictions(self, project: int, predictions: Iterable[Prediction]) -> int:
        """POST predictions ({task, result, score, model_version}); returns how many Label Studio created."""
        items = list(predictions)
        if not items:
            return 0
        resp = self.request("POST", f"/api/projects/{project}/import/predictions", f"importing predictions into project {project}", json=items)
        return int(resp.json().get("created", len(items)))

    def create_annotation(self, task: int, result: list[Result], **fields: Any) -> Annotation:
        return self.request("POST", f"/api/tasks/{task}/annotations/", f"annotating task {task}", json={"result": result, **fields}).json()

    def presign(self, task: int, uri: str) -> requests.Response:
        """Label Studio's answer for a cloud-storage URI of a task: a redirect to a presigned URL
        (read its Location) or, for storages in proxy mode, the file itself. Redirects are not followed."""
        fileuri = base64.urlsafe_b64encode(uri.encode()).decode()
        return self.request(
            "GET", f"/tasks/{task}/presign/", f"resolving {uri} of task {task}", params={"fileuri": fileuri}, allow_redirects=False, stream=True
        )
