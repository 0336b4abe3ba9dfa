"""A real multi-node Ray cluster on loopback, and a real S3-compatible server, for the scale-out tests.

Every node has its own loopback address (127.0.0.2, 127.0.0.3, ...: given 127.0.0.1, Ray switches
to the machine's own address), temp folder and ports. Ray 2.60 binds its gRPC servers to every
interface unless the node's address is exactly 127.0.0.1, so these tests run in a network namespace
whose only interface is loopback (`make test-ray`: `unshare -n`): nothing they open is reachable from
outside, and anything they try to reach outside fails at once. Each node is one
`ray start --block` in its own process group, stopped by that group's PID, never by `ray stop`
(which would stop every Ray process of the machine).
"""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from conftest import free_port, wait_until

RAY = str(Path(sys.executable).parent / "ray")
_WORKER_PORT_BLOCKS = itertools.count()


def quiet_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of cluster processes and their drivers: token authentication with a token of
    this cluster's own, no usage reports, PaddleX and ONNX Runtime silent."""
    return {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0",
            "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True", "ORT_DISABLE_TELEMETRY": "1", **(extra or {})}


def interface_addresses() -> list[str]:
    """Every address of every network interface this process sees."""
    out = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, timeout=10).stdout
    return [line.split()[3] for line in out.splitlines()]


def in_loopback_only_namespace() -> bool:
    return all(a.startswith(("127.", "::1/")) for a in interface_addresses())


@dataclass
class RayNode:
    ip: str
    proc: subprocess.Popen
    temp_dir: Path
    log: Path

    def group_pids(self) -> list[int]:
        """The processes of this node (its `ray start` process group)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == self.proc.pid:
                        found.append(int(entry.name))
                except (ProcessLookupError, PermissionError):
                    pass
        return found

    def pid_of(self, name: str) -> int | None:
        for pid in self.group_pids():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if Path(cmd).name == name:
                return pid
        return None

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.group_pids():
                time.sleep(0.2)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


@dataclass
class RayCluster:
    address: str
    env: dict[str, str]
    nodes: list[RayNode] = field(default_factory=list)

    def add_node(self, ip: str, cpus: int = 1) -> RayNode:
        node = _start_node(ip, cpus, self.env, head_address=self.address)
        self.nodes.append(node)
        return node

    def pids(self) -> list[int]:
        return [pid for node in self.nodes for pid in node.group_pids()]

    def alive_nodes(self) -> int:
        code = ("import ray; ray.init(address=%r, log_to_driver=False); "
                "print(sum(1 for n in ray.nodes() if n['Alive']))" % self.address)
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=120)
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


def _start_node(ip: str, cpus: int, env: dict[str, str], head_address: str | None = None, head_port: int | None = None) -> RayNode:
    """One node: the head (head_port given) or a node joining head_address."""
    temp_dir = Path(tempfile.mkdtemp(prefix=f"ray-{ip.replace('.', '-')}-", dir="/tmp"))
    ports = [free_port() for _ in range(6)]
    # Worker ports: a range of its own per node, below Linux's ephemeral range (32768-60999) where
    # free_port() finds the others, so that no fixed port ever falls inside it.
    low = 20000 + 100 * next(_WORKER_PORT_BLOCKS)
    cmd = [RAY, "start", "--block", f"--node-ip-address={ip}", f"--num-cpus={cpus}", "--num-gpus=0",
           f"--temp-dir={temp_dir}", "--disable-usage-stats", f"--node-manager-port={ports[0]}",
           f"--object-manager-port={ports[1]}", f"--dashboard-agent-listen-port={ports[2]}",
           f"--dashboard-agent-grpc-port={ports[3]}", f"--runtime-env-agent-port={ports[4]}",
           f"--metrics-export-port={ports[5]}", f"--min-worker-port={low}", f"--max-worker-port={low + 60}",
           "--object-store-memory=300000000"]
    if head_port is not None:
        cmd += ["--head", f"--port={head_port}", "--include-dashboard=false"]
    else:
        cmd += [f"--address={head_address}"]
    log = temp_dir.with_suffix(".log")
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    node = RayNode(ip, proc, temp_dir, log)

    def started() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"`ray start` on {ip} exited with {proc.returncode}")
        return node.pid_of("raylet") is not None

    try:
        wait_until(started, timeout=90, what=f"the Ray node on {ip}")
    except BaseException:
        print(log.read_text(errors="replace")[-3000:])
        node.stop()
        raise
    return node


@contextmanager
def ray_cluster(ips: tuple[str, ...] = ("127.0.0.2", "127.0.0.3"), cpus: int = 1, env: dict[str, str] | None = None) -> Iterator[RayCluster]:
    """A cluster of one node per address, `cpus` CPUs each; stopped (by PID) on exit."""
    port = free_port()
    cluster = RayCluster(f"{ips[0]}:{port}", quiet_env(env))
    try:
        cluster.nodes.append(_start_node(ips[0], cpus, cluster.env, head_port=port))
        for ip in ips[1:]:
            cluster.add_node(ip, cpus)
        wait_until(lambda: cluster.alive_nodes() == len(ips), timeout=120, what=f"{len(ips)} Ray nodes alive")
        yield cluster
    finally:
        cluster.stop()


@contextmanager
def s3_server(ip: str = "127.0.0.1") -> Iterator[str]:
    """moto's S3-compatible server on loopback (a real HTTP server, not a mock of the client); yields its URL."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", ip, "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{ip}:{port}"
    try:
        probe = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=2)"
        wait_until(lambda: subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=20).returncode == 0,
                   timeout=60, what="the S3 server")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
