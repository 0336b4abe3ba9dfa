"""Image fetching policy of the ML backend, against a real HTTP server on 127.0.0.1.

The stand-ins: Label Studio's presign answer for cloud storage (s3://, gs://, azure-blob://):
no bucket is reachable here, so `LabelStudio.presign` is replaced by a 303 redirect to the local
server, as Label Studio sends for a presigned URL; and, for DNS rebinding, `socket.getaddrinfo`
for made-up names under .test: that function is where a malicious DNS server's answers arrive.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from PIL import Image

from svtr_label.labelstudio import fetch as fetch_module
from svtr_label.errors import FetchError
from svtr_label.labelstudio.fetch import ImageFetcher, PublicAddressAdapter
from svtr_label.settings import FetchSettings
from svtr_label.labelstudio.client import LabelStudio, TokenAuth


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(buf, "PNG")
    return buf.getvalue()


PNG = _png()


class Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        Handler.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        port = self.server.server_address[1]
        routes = {
            "/img.png": lambda: self._send(200, PNG),
            "/data/upload/1/img.png": lambda: self._send(200, PNG),
            "/same-host-redirect": lambda: self._redirect("/img.png"),
            "/other-host-redirect": lambda: self._redirect(f"http://localhost:{port}/img.png"),
            "/loop": lambda: self._redirect("/loop"),
            "/big-declared": lambda: self._send(200, b"x" * 10, length=10_000_000),
            "/big-undeclared": self._stream_big,
        }
        routes.get(self.path.split("?")[0], lambda: self._send(404, b"nope"))()

    def _send(self, status, body, length=None):
        self.send_response(status)
        self.send_header("Content-Length", str(length if length is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _stream_big(self):
        # No Content-Length: the client only learns the size by reading.
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for _ in range(64):
                self.wfile.write(b"y" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading at its limit: what the test wants


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def make(tmp_path: Path, **kw) -> ImageFetcher:
    kw.setdefault("cache", None)
    return ImageFetcher(FetchSettings(**kw))


# --- schemes and local files -------------------------------------------------------------------


def test_file_urls_and_unknown_schemes_are_refused(tmp_path):
    f = make(tmp_path)
    with pytest.raises(FetchError, match="file:// URLs are refused"):
        f.fetch("file:///etc/passwd")
    with pytest.raises(FetchError, match="unsupported URL scheme 'ftp'"):
        f.fetch("ftp://example.com/a.png")
    with pytest.raises(FetchError, match="not a URL"):
        f.fetch("")


def test_bare_filesystem_paths_are_not_label_studio_urls(tmp_path):
    f = make(tmp_path, ls_url="http://127.0.0.1:1", api_key="k")
    with pytest.raises(FetchError, match="not a Label Studio file URL"):
        f.fetch("/etc/passwd")


def test_local_files_read_from_the_document_root(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a b.png").write_bytes(PNG)
    f = make(tmp_path, document_root=tmp_path)
    assert f.fetch("/data/local-files/?d=sub/a%20b.png") == PNG


@pytest.mark.parametrize("ref", ["../outside.png", "sub/../../outside.png", "/etc/passwd", "%2E%2E/outside.png"])
def test_local_files_cannot_escape_the_document_root(tmp_path, ref):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "outside.png").write_bytes(PNG)
    f = make(tmp_path, document_root=root)
    with pytest.raises(FetchError, match="escapes LOCAL_FILES_DOCUMENT_ROOT"):
        f.fetch("/data/local-files/?d=" + ref)


def test_symlink_out_of_the_document_root_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.png").write_bytes(PNG)
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(FetchError, match="escapes"):
        make(tmp_path, document_root=root).fetch("/data/local-files/?d=link.png")


def test_missing_local_file_says_so(tmp_path):
    with pytest.raises(FetchError, match="no such file"):
        make(tmp_path, document_root=tmp_path).fetch("/data/local-files/?d=nothing.png")


def test_label_studio_paths_need_label_studio_url(tmp_path):
    with pytest.raises(FetchError, match="set LABEL_STUDIO_URL"):
        make(tmp_path).fetch("/data/upload/1/a.png")


# --- hosts, addresses, redirects ---------------------------------------------------------------


def test_host_outside_the_allow_list_is_refused_before_any_connection(tmp_path):
    f = make(tmp_path, ls_url="http://127.0.0.1:1", api_key="k")
    with pytest.raises(FetchError, match="neither the Label Studio host nor in SVTR_ALLOWED_HOSTS"):
        f.fetch("http://images.example.com/a.png")


def test_loopback_is_refused_even_with_a_wildcard_allow_list(tmp_path, server):
    f = make(tmp_path, allowed_hosts=("*",))
    with pytest.raises(FetchError, match="private, loopback or reserved"):
        f.fetch(server.replace("127.0.0.1", "localhost") + "/img.png")


def test_host_allowed_by_name_is_fetched(tmp_path, server):
    assert make(tmp_path, allowed_hosts=("127.0.0.1",)).fetch(server + "/img.png") == PNG


# --- DNS rebinding: the connection goes to the address that was checked ---------------------------

PUBLIC_IP = "93.184.215.14"  # a global address; never connected to by these tests
_real_getaddrinfo = socket.getaddrinfo


def _dns(monkeypatch, name: str, *answers: str) -> list[str]:
    """The attacker's DNS server: answers `name` with `answers` in turn (the last one repeats).
    Other names and IP literals resolve for real. Returns the lookups of `name`, as they happen."""
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host != name:
            return _real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)
        ip = answers[min(len(lookups), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def _port(server: str) -> int:
    return int(server.rsplit(":", 1)[1])


def test_dns_rebinding_to_loopback_never_reaches_the_local_server(tmp_path, server, monkeypatch):
    """The name is public when checked and 127.0.0.1 when connected: the connection is refused.
    Without pinning, requests would resolve again and GET the loopback server."""
    lookups = _dns(monkeypatch, "images.example.test", PUBLIC_IP, "127.0.0.1")
    url = f"http://images.example.test:{_port(server)}/img.png"
    Handler.seen.clear()
    with pytest.raises(FetchError, match=r"images\.example\.test is a private, loopback or reserved address") as err:
        make(tmp_path, allowed_hosts=("*",), timeout=5).fetch(url)
    assert str(err.value).startswith(url + ": ")
    assert Handler.seen == []  # the local server was never contacted
    assert len(lookups) == 2  # checked public, then the connection's own lookup answered loopback


def test_dns_rebinding_of_a_presigned_url_is_refused_without_the_signature(tmp_path, server, monkeypatch):
    _dns(monkeypatch, "bucket.example.test", PUBLIC_IP, "127.0.0.1")
    signed = f"http://bucket.example.test:{_port(server)}/img.png?X-Amz-Signature=very-secret"
    monkeypatch.setattr(LabelStudio, "presign", lambda self, task, u: _Redirect(signed))
    f = make(tmp_path, ls_url="http://ls.invalid", api_key="k" * 40, timeout=5)
    Handler.seen.clear()
    with pytest.raises(FetchError, match="private, loopback or reserved") as err:
        f.fetch("s3://bucket/a.png", task_id=1)
    assert str(err.value).startswith("s3://bucket/a.png: ") and "very-secret" not in str(err.value)
    assert Handler.seen == []


def _allow_loopback_as_public(monkeypatch) -> None:
    """Test-only allowance: 127.0.0.1 (and only it) passes the public-address rule, so a local
    server can stand in for a public one."""
    monkeypatch.setattr(fetch_module, "_is_public", lambda addr: addr == ipaddress.ip_address("127.0.0.1"))


def test_pinned_connection_goes_to_the_checked_address_and_keeps_the_name(tmp_path, server, monkeypatch):
    """The name resolves once, to 127.0.0.1; any later lookup would answer 127.0.0.2, where
    nothing listens. The fetcher's session for hosts checked by address connects to the address
    it checked, and sends the name in the Host header."""
    _allow_loopback_as_public(monkeypatch)
    lookups = _dns(monkeypatch, "images.example.test", "127.0.0.1", "127.0.0.2")
    session = make(tmp_path, allowed_hosts=("*",))._plain
    assert isinstance(session.get_adapter("https://images.example.test/"), PublicAddressAdapter)
    Handler.seen.clear()
    resp = session.get(f"http://images.example.test:{_port(server)}/img.png", timeout=5)
    assert resp.status_code == 200 and resp.content == PNG
    assert Handler.seen[-1]["host"] == f"images.example.test:{_port(server)}"
    assert lookups == ["images.example.test"]  # one lookup: the one that was checked


def test_hosts_allowed_by_name_are_not_pinned(tmp_path, server, monkeypatch):
    """A host named in SVTR_ALLOWED_HOSTS is trusted with its DNS, private addresses included."""
    _dns(monkeypatch, "minio.example.test", "127.0.0.1")
    f = make(tmp_path, allowed_hosts=("minio.example.test",))
    assert f.fetch(f"http://minio.example.test:{_port(server)}/img.png") == PNG


def _tls_files(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` and its key, as PEM files."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_pinned_https_verifies_the_certificate_and_sni_of_the_name(tmp_path, monkeypatch):
    """Over TLS the socket goes to the checked address while SNI and certificate verification
    use the name: a certificate for the name verifies, one for another name does not."""
    cert_file, key_file = _tls_files(tmp_path, "images.example.test")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    sni: list[str | None] = []
    ctx.sni_callback = lambda sock, name, context: sni.append(name)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        _allow_loopback_as_public(monkeypatch)
        _dns(monkeypatch, "images.example.test", "127.0.0.1", "127.0.0.2")
        session = make(tmp_path, allowed_hosts=("*",))._plain
        port = httpd.server_address[1]
        resp = session.get(f"https://images.example.test:{port}/img.png", verify=str(cert_file), timeout=5)
        assert resp.status_code == 200 and resp.content == PNG
        assert sni == ["images.example.test"]
        _dns(monkeypatch, "other.example.test", "127.0.0.1")
        with pytest.raises(requests.exceptions.SSLError):
            session.get(f"https://other.example.test:{port}/img.png", verify=str(cert_file), timeout=5)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_hosts_checked_by_address_are_not_fetched_through_a_proxy(tmp_path, server, monkeypatch):
    """A proxy would resolve the name itself, so the checked address could not be pinned."""
    for var in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server)
    _dns(monkeypatch, "images.example.test", PUBLIC_IP)
    url = f"http://images.example.test:{_port(server)}/img.png"
    Handler.seen.clear()
    with pytest.raises(FetchError, match="through the proxy of HTTP\\(S\\)_PROXY.*NO_PROXY"):
        make(tmp_path, allowed_hosts=("*",), timeout=5).fetch(url)
    assert Handler.seen == []


def test_redirect_on_the_same_host_is_followed(tmp_path, server):
    assert make(tmp_path, allowed_hosts=("127.0.0.1",)).fetch(server + "/same-host-redirect") == PNG


def test_redirect_to_another_host_is_refused(tmp_path, server):
    f = make(tmp_path, allowed_hosts=("127.0.0.1", "localhost"))
    with pytest.raises(FetchError, match="redirects to another host"):
        f.fetch(server + "/other-host-redirect")


def test_redirect_loop_stops(tmp_path, server):
    with pytest.raises(FetchError, match="more than 5 redirects"):
        make(tmp_path, allowed_hosts=("127.0.0.1",)).fetch(server + "/loop")


def test_http_404_is_named(tmp_path, server):
    with pytest.raises(FetchError, match=r"not found \(HTTP 404\)"):
        make(tmp_path, allowed_hosts=("127.0.0.1",)).fetch(server + "/missing.png")


# --- size limits and cache ---------------------------------------------------------------------


def test_declared_size_over_the_limit_is_refused(tmp_path, server):
    f = make(tmp_path, allowed_hosts=("127.0.0.1",), max_bytes=1_000_000)
    with pytest.raises(FetchError, match="exceeds the 1000000-byte limit"):
        f.fetch(server + "/big-declared")


def test_undeclared_size_is_cut_off_while_reading(tmp_path, server):
    f = make(tmp_path, allowed_hosts=("127.0.0.1",), max_bytes=1_000_000)
    with pytest.raises(FetchError, match="exceeds the limit"):
        f.fetch(server + "/big-undeclared")


def test_downloads_are_cached_on_disk_by_url(tmp_path, server):
    f = make(tmp_path, allowed_hosts=("127.0.0.1",), cache=tmp_path / "cache")
    url = server + "/img.png?cache-test"
    Handler.seen.clear()
    assert f.fetch(url) == PNG
    assert f.fetch(url) == PNG
    assert [s["path"] for s in Handler.seen] == ["/img.png?cache-test"]  # the second came from disk


# --- Label Studio host and credentials ---------------------------------------------------------


def test_label_studio_host_gets_the_key_and_no_one_else_does(tmp_path, server, caplog):
    token = "0123456789abcdef0123456789abcdef01234567"
    f = make(tmp_path, ls_url=server, api_key=token, allowed_hosts=("localhost",))
    Handler.seen.clear()
    caplog.set_level(logging.DEBUG)
    # LS host: relative and absolute URLs both carry the key
    assert f.fetch("/data/upload/1/img.png") == PNG
    assert Handler.seen[-1]["authorization"] == f"Token {token}"
    assert f.fetch(server + "/img.png") == PNG
    assert Handler.seen[-1]["authorization"] == f"Token {token}"
    # another allowed host never sees it
    assert f.fetch(server.replace("127.0.0.1", "localhost") + "/img.png") == PNG
    assert "authorization" not in Handler.seen[-1]
    assert token not in caplog.text
    assert token not in repr(f.ls) + repr(f.ls.session.auth)


@pytest.mark.parametrize("ref", [
    "/data/../api/projects", "/data/%2e%2e/api/projects", "/data/upload/../../api/projects", "{server}/data/../api/projects",
])
def test_paths_that_collapse_into_the_api_never_get_the_key(tmp_path, server, ref):
    f = make(tmp_path, ls_url=server, api_key="k" * 40)
    Handler.seen.clear()
    with pytest.raises(FetchError, match="refused|not a Label Studio file URL"):
        f.fetch(ref.format(server=server))
    assert Handler.seen == []


def test_encoded_local_files_paths_are_local_files(tmp_path, server):
    """Label Studio serves /data/local%2Dfiles/ as /data/local-files/: it is read under the
    document root with its checks, never sent to Label Studio with the key."""
    (tmp_path / "a.png").write_bytes(PNG)
    f = make(tmp_path, ls_url=server, api_key="k" * 40, document_root=tmp_path)
    Handler.seen.clear()
    assert f.fetch("/data/local%2Dfiles/?d=a.png") == PNG
    with pytest.raises(FetchError, match="escapes"):
        f.fetch("/data/local%2Dfiles/?d=../outside.png")
    assert Handler.seen == []


def test_a_ref_naming_two_files_is_refused(tmp_path):
    """Label Studio shows the last d=; reading the first would label the image nobody saw."""
    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "b.png").write_bytes(PNG)
    with pytest.raises(FetchError, match="names 2 files"):
        make(tmp_path, document_root=tmp_path).fetch("/data/local-files/?d=a.png&d=b.png")


@pytest.mark.parametrize("url, task_id, message", [
    ("http://localhost:99999/x.png", 1, "not a valid URL"),
    ("http://[::1/x.png", 1, "not a valid URL"),
    ("s3://bucket/x.png", "abc", "not a Label Studio task id"),
    ("s3://bucket/x.png", 2**70, "not a Label Studio task id"),
])
def test_invalid_urls_and_ids_are_fetch_errors(tmp_path, server, url, task_id, message):
    f = make(tmp_path, ls_url=server, api_key="k" * 40, allowed_hosts=("localhost",))
    with pytest.raises(FetchError, match=message):
        f.fetch(url, task_id)


def test_label_studio_404_names_the_url(tmp_path, server):
    f = make(tmp_path, ls_url=server, api_key="k" * 40)
    with pytest.raises(FetchError, match=r"/data/upload/1/missing.png: not found \(HTTP 404\)"):
        f.fetch("/data/upload/1/missing.png")


def test_token_kinds_are_told_apart():
    legacy = TokenAuth("http://ls", "0123456789abcdef0123456789abcdef01234567")
    assert not legacy.personal and legacy.header() == "Token 0123456789abcdef0123456789abcdef01234567"
    # header.payload.signature with token_type refresh: a personal access token
    pat = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCIsImV4cCI6OTk5OTk5OTk5OX0.c2ln"
    assert TokenAuth("http://ls", pat).personal
    assert "eyJ" not in repr(TokenAuth("http://ls", pat))


# --- cloud storage through Label Studio's presign endpoint (mocked: no bucket reachable) ---------


class _Redirect:
    """What LabelStudio.presign returns for a presigned storage: a 303 to the signed URL."""

    is_redirect = True

    def __init__(self, location):
        self.headers = {"Location": location}

    def close(self):
        pass


@pytest.mark.parametrize("uri", ["s3://bucket/a.png", "gs://bucket/a.png", "azure-blob://container/a.png"])
def test_cloud_uri_is_presigned_by_label_studio_then_fetched_without_the_key(tmp_path, server, monkeypatch, caplog, uri):
    caplog.set_level(logging.DEBUG)  # urllib3 logs every request line at DEBUG: the signature must not be in it
    asked = []

    def presign(self, task, u):  # mock of Label Studio's presign answer (cloud storage only)
        asked.append((task, u))
        return _Redirect(server.replace("127.0.0.1", "localhost") + "/img.png?X-Amz-Signature=secret")

    monkeypatch.setattr(LabelStudio, "presign", presign)
    f = make(tmp_path, ls_url="http://ls.invalid", api_key="k" * 40, allowed_hosts=("localhost",), cache=tmp_path / "c")
    Handler.seen.clear()
    assert f.fetch(uri, task_id=7) == PNG
    assert asked == [(7, uri)]
    assert "authorization" not in Handler.seen[-1]
    assert f.fetch(uri, task_id=7) == PNG and len(asked) == 1  # cached by storage URI, not by signed URL
    assert "/img.png" in caplog.text and "secret" not in caplog.text


def test_presigned_url_to_a_private_address_is_refused(tmp_path, server, monkeypatch):
    monkeypatch.setattr(LabelStudio, "presign", lambda self, task, u: _Redirect(server.replace("127.0.0.1", "localhost") + "/img.png"))
    f = make(tmp_path, ls_url="http://ls.invalid", api_key="k" * 40)
    with pytest.raises(FetchError, match="private, loopback or reserved"):
        f.fetch("s3://bucket/a.png", task_id=1)


def test_failed_presigned_url_is_not_repeated_in_the_error(tmp_path, server, monkeypatch):
    signed = server + "/missing.png?X-Amz-Signature=very-secret"
    monkeypatch.setattr(LabelStudio, "presign", lambda self, task, u: _Redirect(signed))
    f = make(tmp_path, ls_url="http://ls.invalid", api_key="k" * 40, allowed_hosts=("127.0.0.1",))
    with pytest.raises(FetchError) as err:
        f.fetch("s3://bucket/missing.png", task_id=1)
    assert "s3://bucket/missing.png" in str(err.value) and "HTTP 404" in str(err.value)
    assert "very-secret" not in str(err.value)


def test_cloud_uri_needs_label_studio_and_a_task(tmp_path):
    with pytest.raises(FetchError, match="resolved by Label Studio"):
        make(tmp_path).fetch("s3://bucket/a.png", task_id=1)
    with pytest.raises(FetchError, match="needs its task id"):
        make(tmp_path, ls_url="http://ls.invalid", api_key="k").fetch("gs://bucket/a.png")


def test_requests_follow_no_redirect_on_their_own(tmp_path, server):
    """Sanity check of the harness: the redirect route really redirects."""
    r = requests.get(server + "/other-host-redirect", allow_redirects=False, timeout=5)
    assert r.status_code == 302
