"""deploy/: the Ray image, the KubeRay RayJobs, the `ray up` configs and their README, checked without a
cluster (none is reachable from here): every file parses; the manifests say what the project needs (the Ray
it pins, token auth, persistent output, enough memory per OCR actor, GPUs only in the GPU variant); no secret
is written in them; and every `svtr-label ...` line they or the README show parses with the project's own CLI
parser, so a renamed or removed flag fails here rather than on a cluster. Fast: Ray is never imported (its
`ray start` options and cluster-config schema are read from its installed files)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from svtr_label.cli import scaleout
from svtr_label.cli.main import build_parser
from svtr_label.cli.options import with_profile_options
from svtr_label.errors import SettingsError, UsageError
from svtr_label.settings import VARIABLES, Settings

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
RAYJOBS = {"cpu": DEPLOY / "kuberay-rayjob-cpu.yaml", "gpu": DEPLOY / "kuberay-rayjob-gpu.yaml"}
RAY_UP = {"cpu": DEPLOY / "ray-cluster-cpu.yaml", "gpu": DEPLOY / "ray-cluster-gpu.yaml"}
README = DEPLOY / "README.md"
DOCKERFILES = sorted(DEPLOY.glob("Dockerfile*"))
YAML_FILES = sorted([*DEPLOY.glob("*.yaml"), *DEPLOY.glob("*.yml")])

GiB = 1024**3
MIN_ACTOR_MEMORY = 1.5 * GiB  # an OCR actor (PP-OCRv5 server det + SVTRv2 rec, one pipeline) holds ~1.5-2 GiB
RAY_OBJECT_STORE_SHARE = 0.3  # Ray's default object store: 30% of the node's memory
SECRET_ENV = {"RAY_AUTH_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
SECRET_LIKE = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY|ACCESS_KEY")
# A comment line in a YAML file is a command example when its first word (after VAR=value prefixes) is one of these.
PROGRAMS = {"svtr-label", "ray", "kubectl", "docker", "pip", "python", "python3"}


# --- reading the files --------------------------------------------------------------------------------


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def rayjob(path: Path) -> dict[str, Any]:
    jobs = [d for d in documents(path) if d.get("kind") == "RayJob"]
    assert len(jobs) == 1, f"{path.name}: expected one RayJob document, found {len(jobs)}"
    return jobs[0]


def pods(job: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(group name, rayStartParams, pod spec) of the head group and every worker group."""
    cluster = job["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    yield "head", head.get("rayStartParams") or {}, head["template"]["spec"]
    for group in cluster["workerGroupSpecs"]:
        yield group["groupName"], group.get("rayStartParams") or {}, group["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env") or []}


def literal_env(container: dict[str, Any]) -> dict[str, str]:
    return {name: str(e["value"]) for name, e in env_of(container).items() if "value" in e}


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def mappings(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from mappings(value)
    elif isinstance(node, list):
        for value in node:
            yield from mappings(value)


@cache
def pyproject_ray_pin() -> SpecifierSet:
    extra = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]["ray"]
    pins = [Requirement(r).specifier for r in extra if Requirement(r).name == "ray"]
    assert len(pins) == 1, f"pyproject.toml's `ray` extra should name ray once: {extra}"
    return pins[0]


@cache
def makefile_opencv() -> str:
    match = re.search(r"^OPENCV\s*:=\s*(\S+)\s*$", (REPO / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert match, "the Makefile has no `OPENCV := opencv-contrib-python==...` line"
    return match[1]


def quantity(value: Any) -> float:
    """A Kubernetes quantity ("16Gi", "500m", 8) as a number (bytes, CPUs, GPUs)."""
    units = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match and match[2] in units, f"not a Kubernetes quantity this test reads: {value!r}"
    return float(match[1]) * units[match[2]]


# --- command lines ------------------------------------------------------------------------------------


def tokens(line: str) -> list[str]:
    """Shell words of one line, operators (; && | ...) as words of their own, `# comments` dropped."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    return list(lex)


def is_operator(word: str) -> bool:
    return bool(word) and set(word) <= set("();<>|&")


def simple_commands(words: list[str]) -> Iterator[list[str]]:
    """The commands of a shell line split at its operators, without leading VAR=value assignments."""
    current: list[str] = []
    for word in [*words, ";"]:
        if is_operator(word):
            while current and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", current[0]):
                current.pop(0)
            if current:
                yield current
            current = []
        else:
            current.append(word)


def cli_calls(words: list[str]) -> list[list[str]]:
    """The arguments of every `svtr-label ...` in a line's words (also inside a quoted command: ray exec '...')."""
    calls, i = [], 0
    while i < len(words):
        word = words[i]
        if word == "svtr-label" or word.endswith("/svtr-label"):
            args = []
            for arg in words[i + 1:]:
                if is_operator(arg):
                    break
                args.append(arg)
            if args:  # a bare "svtr-label" is a name (a label value), not a call
                calls.append(args)
            i += len(args)
        elif "svtr-label" in word and re.search(r"\s", word):
            calls += cli_calls(tokens(word))
        i += 1
    return calls


def logical_lines(text: str) -> Iterator[str]:
    """Lines with backslash continuations joined."""
    pending = ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield pending + line
        pending = ""


def yaml_cli_calls(path: Path) -> list[list[str]]:
    """`svtr-label` calls in a YAML file: in every string value, and in comment lines that show a command."""
    calls = []
    for doc in documents(path):
        for value in strings(doc):
            for line in logical_lines(value):
                calls += cli_calls(tokens(line))
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.lstrip()
        if not text.startswith("#"):
            continue
        text = text.lstrip("#")
        words = [w for w in text.split() if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", w)]
        if words and words[0] in PROGRAMS:  # prose comments are not tokenized (their apostrophes are no quotes)
            for command in simple_commands(tokens(text)):
                if command[0] in PROGRAMS:
                    calls += cli_calls(command)
    return calls


def readme_cli_calls() -> list[list[str]]:
    """`svtr-label` calls in the fenced code blocks of deploy/README.md."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", README.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    return [call for block in blocks for line in logical_lines(block) for call in cli_calls(tokens(line))]


@cache
def cli_parser() -> Any:
    return build_parser()


def parse_cli(args: list[str], where: str) -> Any:
    """svtr-label's own parser on `args`; fails the test with argparse's message when it would exit."""
    shown = "svtr-label " + shlex.join(args)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            ns = cli_parser().parse_args(args)
    except SystemExit as exc:
        if exc.code == 0 and {"-h", "--help"} & set(args):
            return None  # asks for the usage: argparse prints it and exits 0
        pytest.fail(f"{where}: `{shown}` does not parse with svtr-label's CLI: {err.getvalue().strip()}")
    assert ns.command, f"{where}: `{shown}` names no svtr-label command"
    return ns


def settings_from(env: dict[str, str], where: str) -> Settings:
    """svtr-label's settings from the literal values of a container's env; a value it rejects fails the test."""
    try:
        return Settings.from_env(env)
    except SettingsError as exc:
        pytest.fail(f"{where}: {exc}")


def ray_settings(ns: Any, env: dict[str, str], where: str) -> Settings:
    """The settings `svtr-label predict --ray` would run with: `env`, then the command line, validated as the CLI does."""
    settings = with_profile_options(settings_from(env, where), ns)
    try:
        return scaleout.with_ray_args(settings, ns)
    except UsageError as exc:  # e.g. GPU actors with the onnxruntime engine
        pytest.fail(f"{where}: svtr-label would refuse this job: {exc}")


# --- the facts the files must agree on -----------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), comment lines dropped and continued lines joined (as Docker reads them)."""
    from test_dockerfile import instructions

    return instructions(path.read_text(encoding="utf-8"))


def dockerfile_args(path: Path) -> dict[str, str]:
    args = {}
    for keyword, text in dockerfile_instructions(path):
        if keyword == "ARG":
            for item in shlex.split(text):
                name, _, value = item.partition("=")
                args[name] = value
    return args


def ray_up_configs() -> dict[str, dict[str, Any]]:
    return {name: yaml.safe_load(path.read_text(encoding="utf-8")) for name, path in RAY_UP.items()}


def pip_installs(commands: list[str]) -> list[str]:
    """Each `pip install ...` of a list of shell commands, in order, as one string."""
    found = []
    for command in commands:
        for simple in simple_commands(tokens(command)):
            pip = len(simple) > 1 and simple[0].split("/")[-1] in ("pip", "pip3") and simple[1] == "install"
            if pip or simple[:4] in (["python", "-m", "pip", "install"], ["python3", "-m", "pip", "install"]):
                found.append(" ".join(simple))
    return found


def ray_start_flags(commands: list[str]) -> list[list[str]]:
    """The --flags (names only) of every `ray start` in a list of shell commands."""
    found = []
    for command in commands:
        for simple in simple_commands(tokens(command)):
            if simple[0].split("/")[-1] == "ray" and simple[1:2] == ["start"]:
                found.append([w[2:].split("=")[0] for w in simple[2:] if w.startswith("--")])
    return found


@cache
def ray_installed_dir() -> Path | None:
    spec = importlib.util.find_spec("ray")  # finds the package without importing it (Ray takes seconds to import)
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def ray_start_options() -> set[str]:
    """The options of the installed Ray's `ray start`, read from its click decorators in ray/scripts/scripts.py."""
    ray_dir = ray_installed_dir()
    if ray_dir is None:
        pytest.skip("Ray is not installed (pip install -e '.[ray]')")
    source = (ray_dir / "scripts" / "scripts.py").read_text(encoding="utf-8")
    end = source.find("\ndef start(")
    begin = source.rfind("\n@cli.command(", 0, end)
    assert end > 0 and begin > 0, "ray/scripts/scripts.py has no `@cli.command() ... def start(`: update ray_start_options()"
    return set(re.findall(r'"--([a-z0-9-]+)"', source[begin:end]))


# --- tests: every file -----------------------------------------------------------------------------------


def test_deploy_holds_the_files_and_the_readme_names_each():
    for path in [*RAYJOBS.values(), *RAY_UP.values(), README, DEPLOY / "Dockerfile.ray"]:
        assert path.is_file(), f"missing: {path.relative_to(REPO)}"
    text = README.read_text(encoding="utf-8")
    for path in DEPLOY.iterdir():
        if path.name != "README.md":
            assert path.name in text, f"deploy/README.md does not say what {path.name} is for"


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.name)
def test_every_yaml_file_parses(path):
    docs = documents(path)  # raises on a YAML error
    assert docs, f"{path.name} holds no YAML document"
    assert all(isinstance(d, dict) for d in docs), f"{path.name}: every document should be a mapping"


def test_one_ray_version_everywhere():
    """The manifests' rayVersion, the image's Ray and the `ray up` nodes' Ray: one release, inside pyproject's pin."""
    pin = pyproject_ray_pin()
    versions = {f"{p.name} rayVersion": str(rayjob(p)["spec"]["rayClusterSpec"]["rayVersion"]) for p in RAYJOBS.values()}
    for path in DOCKERFILES:
        versions[f"{path.name} ARG RAY_VERSION"] = dockerfile_args(path).get("RAY_VERSION", "(missing)")
    for path in RAY_UP.values():
        found = re.findall(r"ray\[[a-z,]+\]==([0-9][0-9.]*)", path.read_text(encoding="utf-8"))
        assert found, f"{path.name}: the nodes should install an exact Ray (\"ray[default]==X.Y.Z\")"
        versions.update({f"{path.name} ray[...]=={v}": v for v in found})
    outside = {where: v for where, v in versions.items() if not pin.contains(v)}
    assert not outside, f"outside pyproject's `ray` extra (ray{pin}): {outside}"
    assert len(set(versions.values())) == 1, f"one Ray release everywhere (every node and the driver run the same): {versions}"


# --- tests: the KubeRay RayJobs ----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(RAYJOBS))
def test_rayjob_structure(variant):
    path = RAYJOBS[variant]
    job = rayjob(path)
    assert job["apiVersion"] == "ray.io/v1", f"{path.name}: apiVersion should be ray.io/v1, not {job['apiVersion']!r}"
    spec = job["spec"]
    assert isinstance(spec.get("entrypoint"), str), f"{path.name}: spec.entrypoint should be the svtr-label command"
    assert spec.get("shutdownAfterJobFinishes") is True, f"{path.name}: the cluster should go when the job ends"
    cluster = spec["rayClusterSpec"]
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"], f"{path.name}: the head group has no container"
    groups = cluster.get("workerGroupSpecs") or []
    assert groups, f"{path.name}: no worker group"
    for group in groups:
        assert group.get("groupName"), f"{path.name}: a worker group without groupName"
        assert group["template"]["spec"]["containers"], f"{path.name}: worker group {group['groupName']} has no container"
        n = group.get("replicas", 0)
        low, high = group.get("minReplicas", 0), group.get("maxReplicas", n)
        assert 0 < n and low <= n <= high, f"{path.name}: worker group {group['groupName']}: need 0 < minReplicas <= replicas <= maxReplicas"
    gpus = [quantity(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))
            for _, _, pod in pods(job) for c in pod["containers"]]
    if variant == "gpu":
        assert any(g >= 1 for g in gpus), f"{path.name}: no container has an nvidia.com/gpu limit"
    else:
        assert not any(gpus), f"{path.name}: the CPU variant asks for nvidia.com/gpu"


@pytest.mark.parametrize("variant", sorted(RAYJOBS))
def test_rayjob_entrypoint_is_a_resumable_svtr_label_job(variant):
    """The entrypoint parses, joins the job's own cluster, writes a folder on the head's PersistentVolumeClaim,
    asks for GPUs only in the GPU variant, and leaves each actor at least ~1.5 GiB of its pod's memory."""
    path = RAYJOBS[variant]
    docs = documents(path)
    job = rayjob(path)
    calls = cli_calls(tokens(job["spec"]["entrypoint"]))
    assert len(calls) == 1, f"{path.name}: the entrypoint should be one svtr-label call, found {calls}"
    ns = parse_cli(calls[0], f"{path.name} entrypoint")
    assert ns.command == "predict" and ns.ray == "auto", f"{path.name}: the entrypoint should be `svtr-label predict ... --ray auto`"
    assert ns.output != "tasks.json", f"{path.name}: with --ray, -o names the output folder"

    _, _, head = next(pods(job))
    container = head["containers"][0]
    volumes = {v["name"]: v for v in head.get("volumes") or []}
    out = PurePosixPath(ns.output)
    claims = [volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName")
              for m in container.get("volumeMounts") or []
              if (PurePosixPath(m["mountPath"]) == out or PurePosixPath(m["mountPath"]) in out.parents) and m["name"] in volumes]
    assert claims and claims[0], f"{path.name}: -o {ns.output} is not on a PersistentVolumeClaim mounted in the head: a rerun could not resume"
    defined = {d["metadata"]["name"] for d in docs if d.get("kind") == "PersistentVolumeClaim"}
    assert claims[0] in defined, f"{path.name}: claim {claims[0]} is not defined in the file (found {sorted(defined)})"

    settings = ray_settings(ns, literal_env(container), f"{path.name} entrypoint")
    gpu = settings.ray.gpus_per_actor > 0
    assert gpu == (variant == "gpu"), f"{path.name}: --gpus-per-actor should be set exactly in the GPU variant"
    if gpu:
        assert settings.models.profile != "bundled" and settings.models.engine != "onnxruntime", \
            f"{path.name}: GPU actors need the Paddle engine (svtrv2 or a custom Paddle profile), not ONNX Runtime"
    for name, params, pod in list(pods(job))[1:]:
        limits = pod["containers"][0].get("resources", {}).get("limits", {})
        memory = quantity(limits["memory"])
        store = float(params.get("object-store-memory", RAY_OBJECT_STORE_SHARE * memory))
        if gpu:
            actors = math.floor(quantity(limits.get("nvidia.com/gpu", 0)) / settings.ray.gpus_per_actor + 1e-9)
        else:
            actors = math.floor(quantity(limits["cpu"]) / settings.ray.cpus_per_actor + 1e-9)
        assert actors >= 1, f"{path.name}: a {name} pod holds no actor at these per-actor resources"
        per_actor = (memory - store) / actors
        assert per_actor >= MIN_ACTOR_MEMORY, (
            f"{path.name}: a {name} pod leaves {per_actor / GiB:.2f} GiB to each of its {actors} actors "
            f"(memory {memory / GiB:.1f} GiB - object store {store / GiB:.1f} GiB); an OCR actor needs ~1.5-2 GiB")


@pytest.mark.parametrize("variant", sorted(RAYJOBS))
def test_rayjob_containers_authenticate_and_read_valid_settings(variant):
    path = RAYJOBS[variant]
    job = rayjob(path)
    auth = job["spec"]["rayClusterSpec"].get("authOptions") or {}
    assert auth.get("mode") == "token", f"{path.name}: rayClusterSpec.authOptions.mode should be token"
    known = {v.name for v in VARIABLES}
    for group, params, pod in pods(job):
        where = f"{path.name} {group}"
        assert pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{where}: the pod should run as non-root"
        assert params.get("disable-usage-stats") == "true", f"{where}: rayStartParams should have disable-usage-stats: \"true\""
        container = pod["containers"][0]
        env = env_of(container)
        assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", f"{where}: RAY_AUTH_MODE should be token"
        token_ref = env.get("RAY_AUTH_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef") or {}
        assert token_ref.get("name") == auth.get("secretName") and token_ref.get("key") == "auth_token", \
            f"{where}: RAY_AUTH_TOKEN should come from authOptions.secretName's key auth_token, not {token_ref}"
        assert env.get("RAY_USAGE_STATS_ENABLED", {}).get("value") == "0", f"{where}: RAY_USAGE_STATS_ENABLED should be \"0\""
        unknown = sorted(n for n in env if n.startswith("SVTR_") and n not in known)
        assert not unknown, f"{where}: svtr-label reads no variable named {unknown}"
        settings_from(literal_env(container), where)  # a bad SVTR_* value fails, naming it


def test_rayjob_ray_start_params_are_ray_start_options():
    options = ray_start_options()
    for path in RAYJOBS.values():
        for group, params, _ in pods(rayjob(path)):
            unknown = sorted(set(params) - options)
            assert not unknown, f"{path.name} {group}: rayStartParams {unknown} are not options of Ray's `ray start`"


# --- tests: no secret in deploy/ --------------------------------------------------------------------------


def test_no_secret_is_inlined():
    for path in YAML_FILES:
        for doc in documents(path):
            assert not (doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData"))), \
                f"{path.name}: a Secret with its values; create Secrets with kubectl, outside these files"
            for entry in mappings(doc):
                name = entry.get("name")
                if not isinstance(name, str) or not ("value" in entry or "valueFrom" in entry):
                    continue
                if name in SECRET_ENV or SECRET_LIKE.search(name):
                    assert "value" not in entry, f"{path.name}: {name} has an inline value; take it from a Secret"
                    assert entry.get("valueFrom", {}).get("secretKeyRef"), f"{path.name}: {name} should come from a secretKeyRef"
    literal = re.compile(r"\b(RAY_AUTH_TOKEN|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|auth_token)=[\"']?([^\s\"'$.][^\s\"',]*)")
    for path in sorted(p for p in DEPLOY.iterdir() if p.is_file()):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", text), f"{path.name}: holds what looks like an AWS access key id"
        found = literal.findall(text)
        assert not found, f"{path.name}: a literal secret value: {found}"


# --- tests: the `ray up` configs ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(RAY_UP))
def test_ray_up_config_has_only_keys_ray_knows(variant):
    """The keys Ray 2.60's cluster-config schema (ray/autoscaler/ray-schema.json) allows, the types it wants."""
    ray_dir = ray_installed_dir()
    if ray_dir is None:
        pytest.skip("Ray is not installed (pip install -e '.[ray]')")
    schema = json.loads((ray_dir / "autoscaler" / "ray-schema.json").read_text(encoding="utf-8"))
    path, config = RAY_UP[variant], ray_up_configs()[variant]
    assert not set(schema["required"]) - set(config), f"{path.name}: missing {set(schema['required']) - set(config)}"
    unknown = sorted(set(config) - set(schema["properties"]))
    assert not unknown, f"{path.name}: top-level keys Ray's cluster config does not have: {unknown}"
    assert config["provider"]["type"] == "aws" and config["provider"].get("region"), f"{path.name}: provider should be aws with a region"
    node_schema = schema["properties"]["available_node_types"]["patternProperties"][".*"]
    types = config["available_node_types"]
    assert config["head_node_type"] in types, f"{path.name}: head_node_type {config['head_node_type']} is not a node type"
    for name, node in types.items():
        unknown = sorted(set(node) - set(node_schema["properties"]))
        assert not unknown, f"{path.name}: node type {name} has keys Ray does not know: {unknown}"
        assert {"resources", "node_config"} <= set(node), f"{path.name}: node type {name} needs resources and node_config"
        bad = {k: v for k, v in node["resources"].items() if not (isinstance(v, int) and v >= 0)}
        assert not bad, f"{path.name}: node type {name}: resources must be whole numbers >= 0: {bad}"
        assert node.get("min_workers", 0) <= node.get("max_workers", config["max_workers"]), f"{path.name}: {name}: min_workers > max_workers"


@pytest.mark.parametrize("variant", sorted(RAY_UP))
def test_ray_up_config_installs_and_starts_ray_as_the_project_needs(variant):
    path, config = RAY_UP[variant], ray_up_configs()[variant]
    setup = pip_installs(config.get("setup_commands") or [])
    assert any("[ray]" in s for s in setup), f"{path.name}: setup_commands should pip install the project with [ray]"
    opencv = makefile_opencv()
    for step in ("setup_commands", "worker_setup_commands"):
        installs = pip_installs(config.get(step) or [])
        if installs:
            assert "--no-deps" in installs[-1] and opencv in installs[-1], \
                f"{path.name}: the last pip install of {step} should reinstall {opencv} with --no-deps, not: {installs[-1]}"
    pins = re.findall(r"opencv-contrib-python==[0-9.]+", path.read_text(encoding="utf-8"))
    assert set(pins) == {opencv}, f"{path.name}: opencv-contrib-python pins {sorted(set(pins))} differ from the Makefile's {opencv}"

    mounts = config.get("file_mounts") or {}
    assert any(remote.endswith("/.ray/auth_token") for remote in mounts), \
        f"{path.name}: file_mounts should copy the token file to ~/.ray/auth_token on the nodes"
    options = ray_start_options()
    for step in ("head_start_ray_commands", "worker_start_ray_commands"):
        commands = config.get(step) or []
        starts = ray_start_flags(commands)
        assert len(starts) == 1, f"{path.name}: {step} should run one `ray start`, found {len(starts)}"
        assert "disable-usage-stats" in starts[0], f"{path.name}: {step}: ray start without --disable-usage-stats"
        assert "RAY_AUTH_MODE=token" in " ".join(commands), f"{path.name}: {step} should export RAY_AUTH_MODE=token"
        unknown = sorted(set(starts[0]) - options)
        assert not unknown, f"{path.name}: {step}: {unknown} are not options of Ray's `ray start`"

    workers = [n for name, n in config["available_node_types"].items() if name != config["head_node_type"]]
    has_gpu = any(n["resources"].get("GPU", 0) >= 1 for n in workers)
    installs_gpu_paddle = any("paddlepaddle-gpu" in s for s in pip_installs(config.get("worker_setup_commands") or []))
    assert has_gpu == installs_gpu_paddle == (variant == "gpu"), \
        f"{path.name}: GPU worker resources and a paddlepaddle-gpu install belong to the GPU variant only"


# --- tests: every svtr-label line ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*RAYJOBS.values(), *RAY_UP.values()], ids=lambda p: p.name)
def test_svtr_label_lines_in_yaml_files_parse(path):
    calls = yaml_cli_calls(path)
    assert calls, f"{path.name} shows no svtr-label command"
    for args in calls:
        ns = parse_cli(args, path.name)
        if ns is not None and ns.command == "predict":
            assert ns.ray, f"{path.name}: `svtr-label {shlex.join(args)}` should run on Ray (--ray)"
            gpu = bool(ns.gpus_per_actor)
            assert gpu == ("gpu" in path.name), f"{path.name}: `svtr-label {shlex.join(args)}`: --gpus-per-actor belongs to the GPU files only"


def test_svtr_label_lines_in_the_readme_parse():
    calls = readme_cli_calls()
    assert len(calls) >= 2, f"deploy/README.md's code blocks should show the job's svtr-label lines, found {calls}"
    for args in calls:
        parse_cli(args, "deploy/README.md")


# --- tests: the Dockerfile ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_installs_the_project_with_ray_and_contribs_opencv_last(path):
    steps = dockerfile_instructions(path)
    runs = [text for keyword, text in steps if keyword == "RUN"]
    installs = pip_installs(runs)
    assert any(re.search(r"(^|\s)[\"']?\.\[ray\][\"']?(\s|$)", s) for s in installs), f"{path.name}: no `pip install .[ray]`"
    assert any("ray[default]" in s for s in installs), \
        f"{path.name}: install ray[default] too: KubeRay submits jobs through the dashboard and probes its agent"
    opencv = makefile_opencv()
    assert "--no-deps" in installs[-1] and opencv in installs[-1], \
        f"{path.name}: the last pip install should reinstall {opencv} with --no-deps, not: {installs[-1]}"
    pins = re.findall(r"opencv-contrib-python==[0-9.]+", " ".join(runs))
    assert set(pins) == {opencv}, f"{path.name}: opencv-contrib-python pins {sorted(set(pins))} differ from the Makefile's {opencv}"

    users = [text for keyword, text in steps if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), f"{path.name}: the image should end as a non-root USER"
    env = {}
    for keyword, text in steps:
        if keyword == "ENV":
            env.update(item.partition("=")[::2] for item in shlex.split(text))
    assert env.get("RAY_USAGE_STATS_ENABLED") == "0", f"{path.name}: ENV RAY_USAGE_STATS_ENABLED=0 missing"
    assert env.get("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK") == "True", f"{path.name}: ENV PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK=True missing"
    for keyword, text in steps:
        if keyword in ("CMD", "ENTRYPOINT") and text.startswith("["):
            argv = json.loads(text)
            if argv and argv[0] == "svtr-label":
                parse_cli(argv[1:], f"{path.name} {keyword}")
