"""The settings module: every variable parsed once, bad values named, command-line flags applied
without touching the environment, and the error tables of the CLI and the backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from svtr_label.cli.main import build_parser
from svtr_label.cli.options import with_label_studio_options, with_profile_options
from svtr_label.errors import (
    ConfigError,
    FetchError,
    ImageError,
    LabelStudioError,
    ModelError,
    SettingsError,
    StoreError,
    SvtrLabelError,
    UsageError,
    exit_code_for,
    http_status_for,
)
from svtr_label.settings import Settings, parse_bool


@pytest.mark.parametrize("raw, value", [("1", True), ("TRUE", True), (" yes ", True), ("on", True),
                                        ("0", False), ("false", False), ("No", False), ("off", False)])
def test_one_boolean_parser(raw, value):
    assert parse_bool(raw) is value


@pytest.mark.parametrize("env, message", [
    ({"SVTR_USE_DOC_ORIENTATION": "maybe"}, "SVTR_USE_DOC_ORIENTATION='maybe' is not valid: expected one of 1, true"),
    ({"SVTR_WORKERS": "0"}, "SVTR_WORKERS='0' is not valid: expected a whole number of at least 1"),
    ({"SVTR_FETCH_THREADS": "four"}, "SVTR_FETCH_THREADS='four' is not valid"),
    ({"PORT": "99999"}, "PORT='99999' is not valid: expected a port number"),
    ({"SVTR_ENGINE": "tensorrt"}, "SVTR_ENGINE='tensorrt' is not valid: expected one of paddle, onnxruntime"),
])
def test_a_bad_value_names_the_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_empty_values_mean_the_default():
    assert Settings.from_env({"SVTR_WORKERS": "", "SVTR_PROFILE": " "}) == Settings.from_env({})


def test_paths_follow_the_cache_folder():
    s = Settings.from_env({"SVTR_CACHE_DIR": "/tmp/svtr-c"})
    assert (s.cache_dir, s.models_dir, s.store_path, s.fetch.cache) == (
        Path("/tmp/svtr-c"), Path("/tmp/svtr-c/models"), Path("/tmp/svtr-c/store.sqlite"), Path("/tmp/svtr-c/images"))
    assert Settings.from_env({"XDG_CACHE_HOME": "/tmp/xdg"}).cache_dir == Path("/tmp/xdg/svtr-label")
    assert Settings.from_env({"SVTR_FETCH_CACHE": "off"}).fetch.cache is None
    assert Settings.from_env({"SVTR_STORE": "/tmp/s.sqlite"}).store_path == Path("/tmp/s.sqlite")


def test_label_studio_url_from_either_variable_and_secrets_stay_out_of_reprs():
    s = Settings.from_env({"LABEL_STUDIO_HOST": "http://ls:8080/", "LABEL_STUDIO_API_KEY": "secret-key-1",
                           "BASIC_AUTH_PASS": "secret-pass-2"})
    assert s.label_studio.url == s.fetch.ls_url == "http://ls:8080"
    assert s.fetch.api_key == "secret-key-1"
    assert "secret-key-1" not in repr(s) and "secret-pass-2" not in repr(s)


def test_command_line_flags_are_applied_without_touching_the_environment(monkeypatch):
    monkeypatch.setenv("SVTR_PROFILE", "svtrv2")
    before = dict(os.environ)
    args = build_parser().parse_args(["push", "--project", "1", "--profile", "bundled", "--rec-model-dir", "/m/rec",
                                      "--cpu-threads", "2", "--url", "http://ls:8080", "--api-key", "k"])
    env_settings = Settings.from_env()
    settings = with_label_studio_options(with_profile_options(env_settings, args), args)
    assert (settings.models.profile, settings.models.rec_model_dir, settings.engine.cpu_threads) == ("bundled", Path("/m/rec"), 2)
    assert (settings.fetch.ls_url, settings.fetch.api_key) == ("http://ls:8080", "k")
    assert env_settings.models.profile == "svtrv2"  # frozen: the flags made a new object
    assert dict(os.environ) == before


@pytest.mark.parametrize("error, exit_code, status", [
    (UsageError("x"), 2, 400),
    (ConfigError("x"), 2, 400),
    (ImageError("x"), 2, 422),
    (FetchError("x"), 2, 422),
    (StoreError("x"), 2, 422),
    (LabelStudioError("x"), 2, 502),
    (ModelError("x"), 2, 503),
    (SvtrLabelError("x"), 2, 400),
])
def test_one_table_each_for_exit_codes_and_http_statuses(error, exit_code, status):
    assert (exit_code_for(error), http_status_for(error)) == (exit_code, status)


def test_the_cli_reports_a_bad_setting_in_one_line(capsys, monkeypatch):
    from svtr_label.cli import main

    monkeypatch.setenv("SVTR_WORKERS", "none")
    assert main(["models"]) == 2
    assert capsys.readouterr().err.strip() == "svtr-label models: error: SVTR_WORKERS='none' is not valid: expected a whole number of at least 1"
