"""Where exports and widgets read images from: local files under the root, and clear errors for
refs only Label Studio can serve when it is not configured. Reading through a real Label Studio
is tested in test_labelstudio_e2e.py."""

from __future__ import annotations

import pytest

from svtr_label.errors import SourceError
from svtr_label.labelstudio.sources import ImageSource
from svtr_label.services import Services
from svtr_label.settings import FetchSettings

NO_LS = FetchSettings(cache=None)  # whatever this shell's LABEL_STUDIO_URL says


def source(root, **kw) -> ImageSource:
    return ImageSource(root, fetch_settings=kw.pop("settings", NO_LS), **kw)


def test_paths_file_urls_and_local_files_refs_read_from_the_root(tmp_path):
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "a b%.png").write_bytes(b"A")
    src = source(tmp_path)
    for ref in ("/data/local-files/?d=scans/a%20b%25.png", "scans/a b%.png", str(tmp_path / "scans" / "a b%.png"),
                (tmp_path / "scans" / "a b%.png").as_uri()):
        found = src.read(ref)
        assert (found.data, found.name) == (b"A", str(tmp_path / "scans" / "a b%.png"))


def test_a_local_files_ref_cannot_leave_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.png").write_bytes(b"S")
    with pytest.raises(SourceError) as err:
        source(root).read("/data/local-files/?d=../secret.png")
    assert "../secret.png" in str(err.value)


def test_a_moved_local_file_names_the_root_and_both_fixes(tmp_path):
    with pytest.raises(SourceError) as err:
        source(tmp_path).read("/data/local-files/?d=moved/page.png")
    msg = str(err.value)
    assert "moved/page.png" in msg and str(tmp_path) in msg
    assert "--root" in msg and "LABEL_STUDIO_URL" in msg


@pytest.mark.parametrize("ref", ["/data/upload/3/ab12-page.png", "s3://bucket/page.png", "https://images.example.com/p.png"])
def test_refs_only_a_server_answers_say_what_to_set(tmp_path, ref):
    with pytest.raises(SourceError) as err:
        source(tmp_path).read(ref)
    assert ref in str(err.value) and "LABEL_STUDIO_URL" in str(err.value) and "--api-key" in str(err.value)


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    (tmp_path / "big.png").write_bytes(b"x" * 2048)
    with pytest.raises(SourceError, match="exceeds the 1024-byte limit"):
        source(tmp_path, settings=FetchSettings(cache=None, max_bytes=1024)).read("big.png")


def test_settings_come_from_the_environment(tmp_path):
    env = {"LOCAL_FILES_DOCUMENT_ROOT": str(tmp_path), "LABEL_STUDIO_URL": "http://ls.local:8080/", "LABEL_STUDIO_API_KEY": "k"}
    src = Services.from_env(env).image_source()
    assert src.root == tmp_path
    assert src._settings.ls_url == "http://ls.local:8080" and src._settings.api_key == "k"
