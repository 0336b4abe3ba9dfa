"""svtr_backend/Dockerfile's build and start steps, emulated in a fresh virtual environment (this machine
has no Docker engine): a tiny interpreter runs its ARG/ENV/WORKDIR/COPY, its `pip install` steps and its
CMD, then the test checks what a user would: /health is UP on the bundled profile and /predict reads a
real page. A broken pip step, a missing dependency or an image that starts but cannot read text fails
here, as `docker build` + `docker run` would. Unknown instructions and RUN commands fail too: the
emulation never skips a step it was not told about."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from svtr_label.labelstudio.format import recommended_config

from conftest import REPO, free_port, wait_for_http

DOCKERFILE = REPO / "svtr_backend" / "Dockerfile"
WHEELS = REPO.parent / "shared" / "wheels"
VENV_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "svtr-label-test"

# RUN commands a venv cannot run: they need root and Debian's package manager. The host already has the
# shared libraries the apt step installs (the project's own venv runs OpenCV and Paddle on them) and git
# is only needed for the git+https default of LABEL_STUDIO_ML, which the test replaces by the wheel. The
# test runs as one user, so useradd/chown have nothing to do, and /data is a temp folder it creates.
PRIVILEGED = ("apt-get ", "rm -rf /var/lib/apt/lists/", "useradd ", "mkdir -p /data", "chown ")
STEP_TIMEOUT = 1200  # a cold pip install downloads Paddle, PaddleX and their dependencies (~1 GB)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, comment lines dropped and backslash-continued lines joined."""
    found, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not (current or line.strip()):
            continue  # Docker drops comment lines, inside a continued instruction too
        current += line.strip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        keyword, _, args = current.partition(" ")
        found.append((keyword.upper(), args.strip()))
        current = ""
    return found


def expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m[1] or m[2], ""), text)


def assignments(args: str, variables: dict[str, str], bare: bool = False) -> dict[str, str]:
    """NAME=value pairs of ARG/ENV (quotes removed, $VARs expanded); with `bare`, a NAME alone (an ARG
    without default) is ""."""
    pairs = {}
    for item in shlex.split(args):
        name, eq, value = item.partition("=")
        if not (eq or bare):
            pytest.fail(f"the emulation reads only the NAME=value form, not: {args}")
        pairs[name] = expand(value, {**variables, **pairs})
    return pairs


def run_bounded(argv: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run `argv` in its own process group, killed as a whole if it outlives `timeout`."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, **kwargs)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(argv)} took more than {timeout:.0f} s:\n{out[-4000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out)


def run_step(command: str, venv: Path, cwd: Path, variables: dict[str, str]) -> None:
    """A RUN instruction: its `pip install`s with the venv's pip, ARG and ENV values in the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}  # the host's certificates and pip index
    env.update(variables, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}")
    # The image sets it to keep its layer small; here the host's pip cache makes a fresh venv cheaper
    # and installs the same versions.
    env.pop("PIP_NO_CACHE_DIR", None)
    for part in re.split(r"\s*&&\s*", command.strip()):
        if part.startswith(PRIVILEGED):
            print(f"skipped (needs root): RUN {part}")
            continue
        if not part.startswith("pip install "):
            pytest.fail(f"the emulation does not know this RUN command: {part!r}; teach it or mark it PRIVILEGED")
        started = time.monotonic()
        done = run_bounded(["sh", "-c", part], STEP_TIMEOUT, cwd=cwd, env=env)
        if done.returncode:
            pytest.fail(f"RUN {part} failed with {done.returncode} (LABEL_STUDIO_ML={variables.get('LABEL_STUDIO_ML')}):\n{done.stdout[-4000:]}")
        print(f"RUN {part}: {time.monotonic() - started:.0f} s")


def build(fs: Path, venv: Path, build_args: dict[str, str]) -> tuple[dict[str, str], Path, str]:
    """Emulate `docker build --build-arg ...` into `fs` (the image's /) and `venv`: (ENV values, WORKDIR, CMD)."""
    args: dict[str, str] = {}
    env: dict[str, str] = {}
    workdir, cmd = fs, ""
    for keyword, rest in instructions(DOCKERFILE.read_text(encoding="utf-8")):
        variables = {**args, **env}
        if keyword == "FROM":  # the venv's interpreter stands in for the base image's Python: same minor version
            image_python = re.fullmatch(r"python:(\d+\.\d+)[-\w.]*", rest)
            if not image_python or image_python[1] != "{}.{}".format(*sys.version_info[:2]):
                pytest.fail(f"FROM {rest}: run this test with that image's Python version, not {sys.version.split()[0]}")
        elif keyword == "ARG":
            args.update({k: build_args.get(k, v) for k, v in assignments(rest, variables, bare=True).items()})
        elif keyword == "ENV":
            env.update(assignments(rest, variables))
        elif keyword == "WORKDIR":
            workdir = fs / expand(rest, variables).lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, dest = shlex.split(expand(rest, variables))
            if any(s.startswith("--") for s in sources):
                pytest.fail(f"the emulation does not know COPY's flags: {rest}")
            target = fs / dest.lstrip("/") if dest.startswith("/") else workdir / dest
            for source in (REPO / s for s in sources):
                if source.is_dir():
                    shutil.copytree(source, target, dirs_exist_ok=True)
                else:
                    into = target / source.name if dest.endswith("/") else target
                    into.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, into)
        elif keyword == "RUN":
            run_step(rest, venv, workdir, variables)
        elif keyword == "CMD":
            if rest.startswith("["):
                pytest.fail("the emulation runs the shell form of CMD only")
            cmd = rest
        elif keyword not in ("USER", "VOLUME", "EXPOSE"):  # one user here, /data is a temp folder, the test picks the port
            pytest.fail(f"the emulation does not know the {keyword} instruction: teach it")
    return env, workdir, cmd


def lsml2_wheel() -> Path:
    wheels = sorted(WHEELS.glob("label_studio_ml-2*.whl"))
    if not wheels:
        pytest.fail(f"no label-studio-ml 2.x wheel in {WHEELS} (GitHub is not reachable here): build one with "
                    "`pip wheel --no-deps 'git+https://github.com/HumanSignal/label-studio-ml-backend.git'` "
                    f"where GitHub is reachable and put it there (see {WHEELS / 'README.md'})")
    return wheels[-1]


def docker_venv(wheel: Path) -> Path:
    """The venv the image's pip steps install into, kept between runs while the Dockerfile, pyproject.toml,
    the wheel and the Python are the same (a cold install takes minutes; the steps still run every time)."""
    inputs = DOCKERFILE.read_bytes() + (REPO / "pyproject.toml").read_bytes() + f"{wheel.name} {sys._base_executable}".encode()
    venv = VENV_CACHE / f"docker-venv-{hashlib.sha256(inputs).hexdigest()[:16]}"
    for old in VENV_CACHE.glob("docker-venv-*"):  # ~2 GB each; a day's grace for another checkout's run
        used = old / ".installed" if (old / ".installed").exists() else old
        if old != venv and time.time() - used.stat().st_mtime > 86400:
            shutil.rmtree(old, ignore_errors=True)
    if not (venv / ".installed").exists():  # new inputs, or an interrupted build: start from scratch
        shutil.rmtree(venv, ignore_errors=True)
        done = run_bounded([sys._base_executable, "-m", "venv", str(venv)], 300)
        assert done.returncode == 0, done.stdout
    return venv


def stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


@pytest.mark.slow
@pytest.mark.server
def test_the_dockerfile_builds_an_image_that_reads_text(tmp_path):
    wheel = lsml2_wheel()
    venv = docker_venv(wheel)
    fs = tmp_path / "image"  # the image's /
    started = time.monotonic()
    env, workdir, cmd = build(fs, venv, {"LABEL_STUDIO_ML": str(wheel)})
    (venv / ".installed").touch()  # also marks it used today
    print(f"build: {time.monotonic() - started:.0f} s in {venv}")

    # `docker run -p ... -e SVTR_PROFILE=bundled -v <docroot>:...`: the offline models, a page to read,
    # /data in the temp folder, a free port.
    docroot = tmp_path / "docroot"
    docroot.mkdir()
    shutil.copy(REPO / "samples" / "en.jpg", docroot)
    data = fs / "data"
    port = free_port()
    run_env = {k: str(data) + v[len("/data"):] if re.match(r"/data(/|$)", v) else v for k, v in env.items()}
    run_env.update(PORT=str(port), SVTR_PROFILE="bundled", LOCAL_FILES_DOCUMENT_ROOT=str(docroot))
    home = fs / "home" / "svtr"  # useradd --create-home's; gunicorn puts its control socket there, not in ours
    for folder in (data, home):
        folder.mkdir(parents=True)
    # gunicorn's command line outranks GUNICORN_CMD_ARGS, so no variable can move the bind: the CMD's
    # ":$PORT" (every interface) becomes "127.0.0.1:$PORT".
    assert '--bind ":$PORT"' in cmd, f"the CMD's --bind changed; make it loopback here too: {cmd}"
    cmd = cmd.replace('--bind ":$PORT"', '--bind "127.0.0.1:$PORT"')
    container_env = {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **run_env}

    log = tmp_path / "server.log"
    with open(log, "wb") as out:  # Docker runs the shell form of CMD as `/bin/sh -c`
        proc = subprocess.Popen(["sh", "-c", cmd], cwd=workdir, env=container_env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def log_tail() -> str:
        return log.read_text(errors="replace")[-6000:]

    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/health", proc, "the image's server", log_tail, timeout=120)
        health = requests.get(url + "/health", timeout=5).json()
        assert health["status"] == "UP" and health["profile"] == "bundled", health
        assert f"Listening at: {url}" in log.read_text(errors="replace")
        wait_for_http(url + "/health", proc, "the image's models", log_tail, timeout=180,
                      ready=lambda r: r.json().get("models_loaded") or r.json().get("status") != "UP")
        health = requests.get(url + "/health", timeout=5).json()
        assert health["status"] == "UP" and health["models_loaded"], health

        task = {"id": 1, "data": {"image": "/data/local-files/?d=en.jpg"}}
        r = requests.post(url + "/predict", json={"tasks": [task], "label_config": recommended_config()}, timeout=300)
        assert r.status_code == 200, r.text[:2000]
        (prediction,) = r.json()["results"]
        lines = [t for result in prediction["result"] if result["type"] == "textarea" for t in result["value"]["text"]]
        assert any("MovieShots Dataset" in line for line in lines), (prediction, log_tail())
        print(f"/predict read {len(lines)} lines of en.jpg; the image's server log: {log}")
    except BaseException:
        print(f"--- the image's server log ({log}), last lines:\n{log_tail()}")
        raise
    finally:
        stop(proc)
