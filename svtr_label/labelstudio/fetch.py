"""Image fetching for the ML backend and `svtr-label push`: every URL form Label Studio puts in a task, fetched safely.

- `/data/upload/...` and other Label Studio paths: from LABEL_STUDIO_URL with the API key.
- `/data/local-files/?d=...`: read from LOCAL_FILES_DOCUMENT_ROOT when it is set (the variable
  Label Studio itself uses), never outside it; from Label Studio otherwise.
- `http(s)://`: only the Label Studio host and the hosts of SVTR_ALLOWED_HOSTS.
- `s3://`, `gs://`, `azure-blob://`: through Label Studio's presign endpoint of the task.

The backend is reachable by whoever can reach Label Studio, and task data is user input: a URL
must not make it read local files or probe the private network (SSRF). So: no `file://`,
redirects only within one server (or from Label Studio's presign endpoint to the storage it
chose), private and loopback addresses only for the Label Studio host and hosts allowed by name.
Hosts checked by address are connected to at the very address that was checked (see
PublicAddressAdapter): a second DNS lookup could answer differently (DNS rebinding).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import re
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import create_connection

from svtr_label.errors import FetchError, LabelStudioError, RefError
from svtr_label.labelstudio.client import LabelStudio, origin
from svtr_label.labelstudio.payloads import MAX_ID
from svtr_label.labelstudio.refs import CLOUD_SCHEMES, has_dot_segments, resolve_local_files
from svtr_label.settings import FetchSettings

log = logging.getLogger(__name__)

# Label Studio answers these with a redirect to the storage's presigned URL.
PRESIGN_PATH = re.compile(r"^/(tasks|projects)/\d+/(presign|resolve)/?$")
LS_PATH_PREFIXES = ("/data/", "/tasks/", "/projects/")
CHUNK = 1 << 16


class _AddressRefused(FetchError):
    """A host refused by its addresses where the URL is not known (inside a connection):
    ImageFetcher._get puts the URL in front."""


class _NoQueryStrings(logging.Filter):
    """urllib3 logs each request line, query string included, at DEBUG: a presigned URL's query is
    its signature, a capability that must stay out of logs. Keep the path, drop the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_without_query(a) if isinstance(a, str) else a for a in record.args)
        return True


def _without_query(text: str) -> str:
    return re.sub(r"\?[^\s\"']*", "?<query hidden>", text)


def hide_query_strings_in_http_logs() -> None:
    """Install the filter on urllib3's request logger, once."""
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _NoQueryStrings) for f in logger.filters):
        logger.addFilter(_NoQueryStrings())


class ImageFetcher:
    """Bytes of the image a task points at. Thread-safe; one per process is enough."""

    def __init__(self, settings: FetchSettings | None = None) -> None:
        self.settings = settings or FetchSettings()
        hide_query_strings_in_http_logs()
        s = self.settings
        self.ls = LabelStudio(s.ls_url, s.api_key, timeout=s.timeout) if s.ls_url and s.api_key else None
        # Hosts other than Label Studio get no credentials. Those checked by address (SVTR_ALLOWED_HOSTS
        # "*", storage chosen by a presign redirect) go through _plain, which connects only to the
        # address it checked; hosts trusted by name in SVTR_ALLOWED_HOSTS may be private: _named.
        self._plain = requests.Session()
        self._plain.mount("http://", PublicAddressAdapter())
        self._plain.mount("https://", PublicAddressAdapter())
        self._named = requests.Session()

    def fetch(self, url: str, task_id: int | None = None) -> bytes:
        """The bytes behind `url` (a task's image value). Raises FetchError with a clear reason."""
        if not isinstance(url, str) or not url.strip():
            raise FetchError(f"the image value {url!r} is not a URL")
        url = url.strip()
        scheme = _split(url).scheme.lower()
        local = self._local_file(url)
        if local is not None:
            return _read_limited_file(local, self.settings.max_bytes, url)
        if scheme in CLOUD_SCHEMES:
            return self._cached(url, lambda: self._presigned(url, task_id))
        if scheme == "" and url.startswith("/"):
            return self._cached(self._ls_base(url) + url, lambda: self._download(self._ls_base(url) + url))
        if scheme in ("http", "https"):
            return self._cached(url, lambda: self._download(url))
        if scheme == "file":
            raise FetchError(f"{url}: file:// URLs are refused; serve the files through Label Studio (local files storage)")
        raise FetchError(f"{url}: unsupported URL scheme {scheme or '(none)'!r}; expected /data/..., http(s)://, s3://, gs:// or azure-blob://")

    # -- local files -----------------------------------------------------------------------------

    def _local_file(self, url: str) -> Path | None:
        """The file a /data/local-files/ URL names under the document root, or None to go through Label Studio."""
        parts = urlsplit(url)
        if self.settings.document_root is None:
            return None
        if parts.scheme and not self._is_ls(url):
            return None  # another server's local-files URL: the host policy decides
        try:
            path = resolve_local_files(url, self.settings.document_root)
        except RefError as exc:
            raise FetchError(str(exc)) from None
        if path is None:
            return None
        if not path.is_file():
            raise FetchError(f"{url}: no such file under LOCAL_FILES_DOCUMENT_ROOT (404)")
        return path

    # -- Label Studio and other servers ---------------------------------------------------------

    def _ls_base(self, path: str) -> str:
        _check_label_studio_path(path)
        if not self.settings.ls_url:
            raise FetchError(f"{path}: set LABEL_STUDIO_URL (and LABEL_STUDIO_API_KEY) so the backend can fetch Label Studio's files")
        return self.settings.ls_url

    def _is_ls(self, url: str) -> bool:
        return bool(self.settings.ls_url) and origin(url) == origin(self.settings.ls_url or "")

    def _session(self, url: str) -> requests.Session:
        if self._is_ls(url):
            if self.ls is None:
                raise FetchError(f"{url}: set LABEL_STUDIO_API_KEY so the backend can read Label Studio's files")
            return self.ls.session
        return self._named if self._allowed_by_name((urlsplit(url).hostname or "").lower()) else self._plain

    def _download(self, url: str, redirected_by_ls: bool = False) -> bytes:
        """GET with the host policy checked on the URL and on every redirect hop."""
        for _ in range(self.settings.max_redirects + 1):
            self.check_url(url, redirected_by_ls)
            resp = self._get(url)
            if not resp.is_redirect:
                return self._body(resp, url)
            target = urljoin(url, resp.headers.get("Location", ""))
            resp.close()
            redirected_by_ls = self._is_ls(url) and bool(PRESIGN_PATH.match(urlsplit(url).path))
            if origin(target) != origin(url) and not redirected_by_ls:
                raise FetchError(f"{url}: redirects to another host ({urlsplit(target).hostname}); refused")
            url = target
        raise FetchError(f"{url}: more than {self.settings.max_redirects} redirects")

    def _get(self, url: str) -> requests.Response:
        try:
            return self._session(url).get(url, stream=True, allow_redirects=False, timeout=self.settings.timeout)
        except (LabelStudioError, _AddressRefused) as exc:  # API key not exchanged; address refused at connection
            raise FetchError(f"{url}: {exc}") from None
        except requests.RequestException as exc:
            raise FetchError(f"{url}: cannot download ({type(exc).__name__})") from None

    def _body(self, resp: requests.Response, url: str) -> bytes:
        with resp:
            if resp.status_code == 404:
                raise FetchError(f"{url}: not found (HTTP 404)")
            if resp.status_code in (401, 403):
                raise FetchError(f"{url}: HTTP {resp.status_code}; check LABEL_STUDIO_API_KEY and the file permissions")
            if resp.status_code >= 400:
                raise FetchError(f"{url}: HTTP {resp.status_code}")
            return _read_limited(resp, self.settings.max_bytes, url)

    def check_url(self, url: str, redirected_by_ls: bool = False) -> None:
        """Refuse hosts outside the policy: Label Studio, SVTR_ALLOWED_HOSTS, or the storage a
        presign redirect of Label Studio chose; private addresses only for hosts trusted by name."""
        parts = _split(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"{url}: only http(s) URLs can be downloaded")
        host = parts.hostname.lower()
        if self._is_ls(url):
            if has_dot_segments(parts.path):  # collapsed by the client into another path, with our key
                raise FetchError(f"{url}: a Label Studio URL with . or .. segments; refused")
            return
        by_name = self._allowed_by_name(host)
        if not (by_name or redirected_by_ls or "*" in self.settings.allowed_hosts):
            raise FetchError(f"{url}: host {host} is neither the Label Studio host nor in SVTR_ALLOWED_HOSTS; refused")
        if not by_name:
            _require_public(host, parts.port or (443 if parts.scheme == "https" else 80), url)

    def _allowed_by_name(self, host: str) -> bool:
        for entry in self.settings.allowed_hosts:
            if entry == host or (entry.startswith("*.") and host.endswith(entry[1:])):
                return True
        return False

    # -- cloud storage ---------------------------------------------------------------------------

    def _presigned(self, uri: str, task_id: int | None) -> bytes:
        if self.ls is None:
            raise FetchError(f"{uri}: cloud storage URIs are resolved by Label Studio: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY")
        if task_id is None:
            raise FetchError(f"{uri}: a cloud storage URI needs its task id to be presigned")
        if isinstance(task_id, bool) or not isinstance(task_id, int) or not 0 <= task_id <= MAX_ID:
            raise FetchError(f"{uri}: the task id {task_id!r} is not a Label Studio task id (a whole number)")
        try:
            resp = self.ls.presign(task_id, uri)
        except LabelStudioError as exc:
            raise FetchError(f"{uri}: {exc}") from None
        if resp.is_redirect:
            target = urljoin(self.ls.url, resp.headers.get("Location", ""))
            resp.close()
            # The signed URL is a capability: fetched without our key, and kept out of messages and logs.
            try:
                return self._download(target, redirected_by_ls=True)
            except FetchError as exc:
                raise FetchError(f"{uri}: the presigned URL failed: {str(exc).split(': ', 1)[-1]}") from None
        return self._body(resp, uri)  # storage in proxy mode: Label Studio streams the file

    # -- disk cache ------------------------------------------------------------------------------

    def _cached(self, key: str, download) -> bytes:  # type: ignore[no-untyped-def]
        """Downloads cached on disk by URL (storage URI for cloud files, never the signed URL)."""
        if self.settings.cache is None:
            return download()
        digest = hashlib.sha256(key.encode()).hexdigest()
        path = self.settings.cache / digest[:2] / digest
        try:
            return path.read_bytes()
        except OSError:
            pass
        data = download()
        _write_atomic(path, data)
        return data


def _split(url: str) -> SplitResult:
    """The parts of a URL, or FetchError naming it: a port out of range or a broken IPv6 literal
    is a bad task, not a failed request."""
    try:
        parts = urlsplit(url)
        parts.port  # raises for a port out of range
    except ValueError as exc:
        raise FetchError(f"{url}: not a valid URL ({exc})") from None
    return parts


def _check_label_studio_path(path: str) -> None:
    """Only Label Studio's file and presign paths get our API key, never its API."""
    if not path.startswith(LS_PATH_PREFIXES) or has_dot_segments(path):
        raise FetchError(f"{path}: not a Label Studio file URL (expected /data/upload/..., /data/local-files/?d=...)")


def _require_public(host: str, port: int, url: str) -> None:
    try:
        _public_addresses(host, port)
    except _AddressRefused as exc:
        raise FetchError(f"{url}: {exc}") from None


def _is_public(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return addr.is_global and not addr.is_multicast


def _public_addresses(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (one lookup), refused unless every one of them is public."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        raise _AddressRefused(f"cannot resolve host {host}") from None
    addresses: list[str] = []
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not _is_public(addr):
            raise _AddressRefused(
                f"{host} is a private, loopback or reserved address; refused (name it in SVTR_ALLOWED_HOSTS to allow it)"
            )
        if str(addr) not in addresses:
            addresses.append(str(addr))
    return addresses


# -- connections pinned to a checked address ------------------------------------------------------
#
# check_url resolves a host and refuses private addresses, but a connection that resolved the name
# again could be answered 127.0.0.1 by a malicious DNS server (DNS rebinding, SSRF). So connections
# to hosts checked by address resolve the name once, check every address, and open the socket to
# those addresses themselves. The connection's `host` stays the name: the Host header, TLS SNI and
# certificate verification use it as usual.


class _PinnedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        error: OSError | None = None
        for address in _public_addresses(self.host, self.port):  # _AddressRefused: not an OSError, not retried
            try:
                # An IP literal: create_connection's own getaddrinfo does no DNS lookup for it.
                sock = create_connection(
                    (address, self.port), self.timeout, source_address=self.source_address, socket_options=self.socket_options
                )
            except OSError as exc:
                error = exc
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        # The same exceptions as urllib3's own _new_conn, so that requests reports them alike.
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from error
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error


class _PinnedHTTPSConnection(_PinnedHTTPConnection, HTTPSConnection):
    """HTTPSConnection.connect wraps the pinned socket in TLS for `host` (the name)."""


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class PublicAddressAdapter(HTTPAdapter):
    """A requests adapter that connects only to public addresses, and to the very address it checked.

    Through a proxy the proxy would resolve the name itself, out of our control: refused too.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _PinnedHTTPPool, "https": _PinnedHTTPSPool}

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        url = request.url or ""
        if proxies and select_proxy(url, proxies):
            host = urlsplit(url).hostname
            raise _AddressRefused(
                f"{host} would be reached through the proxy of HTTP(S)_PROXY, which resolves the name itself, "
                f"so its address cannot be checked; refused (add {host} to NO_PROXY, "
                f"or name it in SVTR_ALLOWED_HOSTS to trust it by name)"
            )
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)


def _read_limited(resp: requests.Response, max_bytes: int, url: str) -> bytes:
    length = resp.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise FetchError(f"{url}: {length} bytes exceeds the {max_bytes}-byte limit (SVTR_MAX_IMAGE_BYTES)")
    buf = bytearray()
    try:
        for chunk in resp.iter_content(CHUNK):
            buf += chunk
            if len(buf) > max_bytes:
                raise FetchError(f"{url}: more than {max_bytes} bytes exceeds the limit (SVTR_MAX_IMAGE_BYTES)")
    except requests.RequestException as exc:
        raise FetchError(f"{url}: download interrupted ({type(exc).__name__})") from None
    return bytes(buf)


def _read_limited_file(path: Path, max_bytes: int, url: str) -> bytes:
    size = path.stat().st_size
    if size > max_bytes:
        raise FetchError(f"{url}: {size} bytes exceeds the {max_bytes}-byte limit (SVTR_MAX_IMAGE_BYTES)")
    return path.read_bytes()


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:  # a full or read-only cache slows us down; it must not fail the task
        log.warning("image cache %s not written: %s", path.parent, exc.strerror or exc)
