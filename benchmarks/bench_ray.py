"""Ray scale-out vs the single-machine pool on this machine: speed, start-up, memory, break-even.

    unshare -n sh -c 'ip link set lo up && .venv/bin/python benchmarks/bench_ray.py'            # 48 pages; 6-8 min on 2 cores
    unshare -n sh -c 'ip link set lo up && .venv/bin/python benchmarks/bench_ray.py --quick'    # 8 pages: does it work? (4-5 min)
    ... benchmarks/bench_ray.py --pages 96 --small 24 --block-size 4 --repeat 2                # steadier figures, ~2x longer

Every setup runs the real `svtr-label predict` command on the same generated pages (tests/conftest.py's
synth_set pages, 8 lines each), bundled profile, prediction cache off (SVTR_PREDICTION_CACHE=off):

    single machine   svtr-label predict pages/ -o tasks.json              (the engine's pipelines, threads)
    1 node x k       --ray ADDRESS --actors k, one node of 2 CPUs         (k = 1, 2; 1 CPU per actor)
    2 nodes x 1      --ray ADDRESS --actors 2, two nodes of 1 CPU each    (one actor per node)

The clusters are tests/conftest_ray.py's: `ray start --block` per node, each on its own loopback
address and in its own session, stopped by PID (never `ray stop`). Ray 2.60 listens on every
interface unless a node's address is exactly 127.0.0.1, so this script refuses to run outside a
network namespace whose only interface is loopback (`unshare -n`, as root).

Each setup runs a small and a big job (--small, --pages). Ray runs commit a shard per block: the
shards' times give the time to the first committed shard and the steady rate (rows/s from the first
to the last shard); the rest of a run's wall time is its start-up. For the single machine, whose
start-up is fixed (loading the models), the steady rate is the slope of wall time over job size.
While a run goes, a thread samples every process of the nodes and of the driver: VmRSS of each
OCR actor (cmdline holds "MapWorker"), the sum over the nodes' processes, the driver's, and the CPU
that processes not ours used (another job on the machine disturbs the figures: rerun when it is not ~0).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

NODE_IPS = ("127.0.0.2", "127.0.0.3")
TICK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024
NOISE = 1.15  # steady rates closer than this ratio are not told apart on a busy 2-core machine
RUN_HOW = "unshare -n sh -c 'ip link set lo up && .venv/bin/python benchmarks/bench_ray.py'"


# --- where we run ----------------------------------------------------------------------------------


def loopback_only() -> tuple[bool, str]:
    """True when the only network interface is loopback, up, with its addresses: Ray's servers are
    then reachable from this machine's namespace only."""
    try:
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=10, check=False).stdout.splitlines()
        addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, timeout=10, check=False).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"cannot run `ip` ({exc})"
    names = [line.split(":")[1].strip().split("@")[0] for line in links if line.count(":") >= 2]
    addresses = [line.split()[3] for line in addrs if len(line.split()) > 3]
    if names != ["lo"] or not all(a.startswith(("127.", "::1/")) for a in addresses):
        return False, f"interfaces {names}, addresses {addresses}"
    lo_up = any("UP" in line.split("<", 1)[-1].split(">", 1)[0].split(",") for line in links)
    if not lo_up or not any(a.startswith("127.0.0.1/") for a in addresses):
        return False, "loopback is down (ip link set lo up)"
    return True, "loopback only"


def machine() -> dict[str, Any]:
    info = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.processor() or "?")
    mem = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:")), 0)
    gpu = shutil.which("nvidia-smi") is not None
    return {"cores": os.cpu_count(), "cpu": model, "mem_gib": mem / 1024 / 1024, "gpu": gpu,
            "python": platform.python_version(), "kernel": platform.release()}


def ray_version() -> str:
    out = subprocess.run([sys.executable, "-c", "import ray; print(ray.__version__)"], capture_output=True, text=True,
                         timeout=120, check=False)
    return out.stdout.strip() or "?"


# --- sampling processes -------------------------------------------------------------------------


def read_stat(pid: str) -> tuple[int, int, int] | None:
    """(process group, session, utime+stime ticks) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[2]), int(fields[3]), int(fields[11]) + int(fields[12])


def vm_rss(pid: int) -> int:
    """VmRSS in bytes (0 when the process is gone or a kernel thread)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def busy_ticks() -> int:
    """CPU time the whole machine spent busy (every core), in clock ticks."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal


@dataclass
class Usage:
    """What a sampler saw during one run (bytes; CPU in core-seconds)."""

    actor_rss: dict[int, int] = field(default_factory=dict)  # max VmRSS per actor process
    cluster_rss: int = 0  # max over time of the sum of VmRSS of every process of the nodes
    cluster_procs: int = 0  # max over time of the number of processes of the nodes
    cluster_pss: int = 0  # the same with PSS (shared pages counted once)
    driver_rss: int = 0  # max over time of the sum over the driver's process group
    samples: int = 0
    ours_cpu: float = 0.0
    machine_cpu: float = 0.0
    seconds: float = 0.0

    @property
    def other_cores(self) -> float:
        """Average cores used by processes not ours during the run (disturbance)."""
        return max(0.0, self.machine_cpu - self.ours_cpu) / self.seconds if self.seconds else 0.0


class Sampler:
    """Samples, every `interval` s until stopped (at most `max_seconds`), the processes of the nodes
    and of the driver: their memory and the CPU they use.

    A node is its `ray start` process group, but Ray puts each worker (the actors among them) in a
    process group of its own, within the session `ray start` leads (it is started with a session of
    its own): a node's processes are those of its session. The driver, started the same way, is its
    session too."""

    def __init__(self, node_sessions: list[int], driver_session: int, interval: float = 0.5, max_seconds: float = 1800) -> None:
        self.node_sessions, self.driver_session = set(node_sessions), driver_session
        self.interval, self.max_seconds = interval, max_seconds
        self.usage = Usage()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cpu_first: dict[int, int] = {}
        self._cpu_last: dict[int, int] = {}

    def __enter__(self) -> Sampler:
        self._started = time.monotonic()
        self._busy0 = busy_ticks()
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        u = self.usage
        u.seconds = time.monotonic() - self._started
        u.machine_cpu = (busy_ticks() - self._busy0) / TICK
        u.ours_cpu = sum(self._cpu_last[p] - self._cpu_first.get(p, 0) for p in self._cpu_last) / TICK

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        ticks = 0
        while not self._stop.wait(self.interval) and time.monotonic() < deadline:
            ticks += 1
            self._sample(with_pss=ticks % 4 == 0)

    def _sample(self, first: bool = False, with_pss: bool = False) -> None:
        me = os.getpid()
        nodes: list[int] = []
        driver: list[int] = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            stat = read_stat(entry.name)
            if stat is None:
                continue
            pid, (pgrp, session, cpu) = int(entry.name), stat
            if session in self.node_sessions or pgrp in self.node_sessions:
                nodes.append(pid)
            elif session == self.driver_session or pgrp == self.driver_session:
                driver.append(pid)
            elif pid != me:
                continue
            if first:
                self._cpu_first[pid] = cpu  # already running: count only what it uses from now on
            self._cpu_last[pid] = cpu
        u = self.usage
        u.samples += 1
        u.cluster_procs = max(u.cluster_procs, len(nodes))
        rss = {pid: vm_rss(pid) for pid in nodes}
        u.cluster_rss = max(u.cluster_rss, sum(rss.values()))
        for pid, value in rss.items():
            if "MapWorker" in cmdline(pid):
                u.actor_rss[pid] = max(u.actor_rss.get(pid, 0), value)
        if with_pss and nodes:
            u.cluster_pss = max(u.cluster_pss, sum(pss(pid) for pid in nodes))
        u.driver_rss = max(u.driver_rss, sum(vm_rss(pid) for pid in driver))


# --- one run of the CLI ------------------------------------------------------------------------


@dataclass
class Run:
    setup: str
    pages: int
    wall: float
    usage: Usage
    shards: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, rows) per shard
    nodes: str = ""
    log: Path | None = None

    @property
    def first_shard(self) -> float | None:
        return self.shards[0][0] if self.shards else None

    @property
    def shard_rate(self) -> float | None:
        """Rows per second between the first and the last committed shard."""
        if len(self.shards) < 3 or self.shards[-1][0] - self.shards[0][0] < 1.0:
            return None
        return sum(rows for _, rows in self.shards[1:]) / (self.shards[-1][0] - self.shards[0][0])


class BudgetExceeded(Exception):
    pass


class Bench:
    def __init__(self, work: Path, budget: float, cli_timeout: float) -> None:
        self.work = work
        self.deadline = time.monotonic() + budget
        self.cli_timeout = cli_timeout
        self.count = 0

    def cli(self, setup: str, args: list[str], env: dict[str, str], pages: int, node_sessions: list[int],
            check: Callable[[str], str]) -> Run:
        """Run `svtr-label ARGS` in a process group of its own, sampled; its group is killed (by its
        PID) if it outlives the time limit. `check(stdout)` raises on a wrong result, returns the node split."""
        left = self.deadline - time.monotonic()
        if left < 10:
            raise BudgetExceeded(f"the time budget is spent (before {setup}, {pages} pages)")
        self.count += 1
        log = self.work / f"run-{self.count:02d}-{setup.replace(' ', '')}-{pages}.log"
        started_at = time.time()
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "svtr_label.cli", *args], cwd=REPO, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        t0 = time.monotonic()
        try:
            with Sampler(node_sessions, proc.pid) as sampler:
                proc.wait(timeout=min(self.cli_timeout, left))
            wall = time.monotonic() - t0
        except subprocess.TimeoutExpired:
            kill_group(proc)
            if left < self.cli_timeout:
                raise BudgetExceeded(f"the time budget ran out during {setup}, {pages} pages (stopped)") from None
            raise RuntimeError(f"{setup}, {pages} pages: no result after {self.cli_timeout:.0f} s (stopped); log {log}") from None
        except BaseException:
            kill_group(proc)
            raise
        text = log.read_text(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{setup}, {pages} pages: exit {proc.returncode}; log {log}:\n{text[-3000:]}")
        nodes = check(text)
        run = Run(setup, pages, wall, sampler.usage, nodes=nodes, log=log)
        if "--ray" in args:
            run.shards = shard_times(Path(args[args.index("-o") + 1]), started_at)
        print(f"  {setup:>14}, {pages:3d} pages: {wall:6.1f} s  ({pages / wall:.2f} img/s"
              + (f"; first shard {run.first_shard:.1f} s" if run.first_shard is not None else "")
              + (f"; {nodes}" if nodes else "") + f"; other load {sampler.usage.other_cores:.2f} cores)", flush=True)
        return run


def kill_group(proc: subprocess.Popen) -> None:
    """Stop the process group we started for `proc` (its PID), TERM then KILL, bounded in time."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(10)
            return
        except subprocess.TimeoutExpired:
            continue


def shard_times(out: Path, started_at: float) -> list[tuple[float, int]]:
    import pyarrow.parquet as pq

    shards = sorted((out / "rows").glob("part-*.parquet"))
    return sorted((p.stat().st_mtime - started_at, pq.read_metadata(p).num_rows) for p in shards)


def single_check(pages: int, out: Path) -> Callable[[str], str]:
    def check(text: str) -> str:
        import json

        tasks = json.loads(out.read_text(encoding="utf-8"))
        if len(tasks) != pages:
            raise RuntimeError(f"single machine: {len(tasks)} tasks for {pages} pages:\n{text[-2000:]}")
        return ""

    return check


def ray_check(pages: int) -> Callable[[str], str]:
    def check(text: str) -> str:
        import re

        m = re.search(r"(\d+) inputs: (\d+) already done for \S+, (\d+) written \((\d+) failed\)[^;\n]*(?:; by node: (.*))?", text)
        if not m or int(m.group(3)) != pages or int(m.group(4)) != 0:
            raise RuntimeError(f"Ray: not {pages} rows written without failures:\n{text[-3000:]}")
        return (m.group(5) or "").strip()

    return check


def start_cluster(ray_cluster: Callable[..., Any], ips: tuple[str, ...], cpus: int, env: dict[str, str],
                  attempts: int = 2) -> tuple[Any, float]:
    """tests/conftest_ray.py's ray_cluster, entered; (an ExitStack that stops it, with .cluster; the start time).
    A node that fails to start (e.g. two of its randomly chosen ports collide) gets another attempt."""
    for attempt in range(1, attempts + 1):
        stack = contextlib.ExitStack()
        t0 = time.monotonic()
        try:
            stack.cluster = stack.enter_context(ray_cluster(ips, cpus=cpus, env=env))  # type: ignore[attr-defined]
            return stack, t0
        except RuntimeError as exc:  # `ray start` exited: already stopped by ray_cluster
            stack.close()
            if attempt == attempts:
                raise
            print(f"  the cluster did not start ({exc}); once more", flush=True)
    raise AssertionError("unreachable")


# --- pages ---------------------------------------------------------------------------------------


def make_roots(work: Path, sizes: list[int], seed: int) -> dict[int, Path]:
    """A document root per job size, pages/ holding the first N of the same generated pages."""
    from svtr_label.core.synth import write_dataset

    biggest = max(sizes)
    source = work / "generated"
    pages = write_dataset(source, biggest, seed=seed)  # as tests/conftest.py's synth_set (8 lines per page)
    roots = {}
    for n in sorted(set(sizes)):
        root = work / f"root-{n}"
        (root / "pages").mkdir(parents=True)
        for page in pages[:n]:
            shutil.copy(source / page.name, root / "pages" / page.name)
        roots[n] = root
    return roots


# --- the measures ----------------------------------------------------------------------------------


@dataclass
class Setup:
    name: str
    nodes: int
    actors: int  # OCR actors, or the engine's pipelines for the single machine
    cluster: str = ""  # the cluster it ran on
    runs: dict[int, Run] = field(default_factory=dict)  # pages -> the fastest run of that size
    every_run: list[Run] = field(default_factory=list)  # for memory and disturbance: every run

    def keep(self, run: Run) -> None:
        self.every_run.append(run)
        best = self.runs.get(run.pages)
        if best is None or run.wall < best.wall:
            self.runs[run.pages] = run

    def steady(self, small: int, big: int) -> float | None:
        """Images/s once running: for Ray, between the first and the last committed shard of the big
        job (its start-up grows with the job, so a line through two sizes would mix it in); for the
        single machine, whose start-up is fixed (loading the models), the slope of that line."""
        run = self.runs.get(big)
        if run is not None and run.shard_rate is not None:
            return run.shard_rate
        return self.fit(small, big)[0]

    def startup(self, n: int, rate: float | None) -> float | None:
        """Seconds of a whole run of `n` pages that were not steady processing."""
        return self.runs[n].wall - n / rate if rate and n in self.runs else None

    def fit(self, small: int, big: int) -> tuple[float | None, float | None]:
        """(steady images/s, fixed seconds of a run): the line through the wall times at two job sizes."""
        if small not in self.runs or big not in self.runs:
            return None, None
        dt = self.runs[big].wall - self.runs[small].wall
        if dt <= 0:
            return None, None
        rate = (big - small) / dt
        return rate, self.runs[big].wall - big / rate


@dataclass
class Cluster:
    name: str
    start: float  # seconds until every node was alive
    cold: Run | None = None  # the first job on it


def mib(value: float) -> str:
    return f"{value / MIB:.0f}" if value else "–"


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def crossing(fixed_ray: float, rate_ray: float, fixed_single: float, rate_single: float) -> str:
    """Where Ray's line of wall time over job size falls below the single machine's."""
    if rate_ray <= rate_single:
        return "never"
    if fixed_ray <= fixed_single:
        return "from the first page"
    n = (fixed_ray - fixed_single) / (1 / rate_single - 1 / rate_ray)
    return f"from N* ≈ {n:,.0f} pages ({n / rate_single / 60:,.1f} min on the single machine)"


def report(setups: list[Setup], clusters: dict[str, Cluster], small: int, big: int, info: dict[str, Any],
           args: argparse.Namespace, elapsed: float) -> None:
    single = setups[0]
    s_rate = single.steady(small, big)
    one_actor = next((s for s in setups[1:] if s.actors == 1), None)
    a_rate = one_actor.steady(small, big) if one_actor else None

    print("\n## Ray scale-out on this machine\n")
    print(f"Machine: {info['cores']} cores ({info['cpu']}), {info['mem_gib']:.0f} GiB, {'a GPU' if info['gpu'] else 'no GPU'}; "
          f"Python {info['python']}, Ray {info['ray']}. Bundled profile ({info['engine']}), prediction cache off; "
          f"{big} generated pages of 8 lines (and the first {small} of them); Ray blocks of {args.block_size} inputs, a "
          f"shard per block, 1 CPU per actor; the fastest of {args.repeat} run(s) per size (the single machine's: and one "
          f"more at the end). Machine speed drifts (other jobs, shared hosts, clock boost): compare the figures of one run "
          f"with each other, and rerun when 'other load' is not ~0.\n")
    header = ["setup", "actors", f"wall, {big} pages (s)", "img/s, whole run", "img/s, steady", "vs single", "vs 1 actor",
              "efficiency", f"start-up, {small} / {big} pages (s)", "1st shard (s)", "node processes (max)", "RSS/actor (MiB)",
              "cluster RSS / PSS (MiB)", "driver RSS (MiB)", "other load (cores)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for s in setups:
        run = s.runs.get(big)
        if run is None:
            print("| " + " | ".join([s.name, str(s.actors), "not run"] + [""] * (len(header) - 3)) + " |")
            continue
        rate = s.steady(small, big)
        vs_single = rate / s_rate if rate and s_rate else None
        vs_actor = rate / a_rate if rate and a_rate and s is not single else None
        usages = [r.usage for r in s.every_run]
        actors = [v for u in usages for v in u.actor_rss.values()]
        cluster, cluster_pss = max(u.cluster_rss for u in usages), max(u.cluster_pss for u in usages)
        procs = max(u.cluster_procs for u in usages)
        cells = [s.name, f"{s.actors} pipelines" if s is single else str(s.actors), f"{run.wall:.1f}", f"{big / run.wall:.2f}",
                 fmt(rate), fmt(vs_single), fmt(vs_actor), fmt(vs_actor / s.actors if vs_actor else None),
                 f"{fmt(s.startup(small, rate), 1)} / {fmt(s.startup(big, rate), 1)}", fmt(run.first_shard, 1),
                 str(procs) if procs else "1", f"{max(actors) / MIB:.0f}" if actors else "–",
                 f"{mib(cluster)} / {mib(cluster_pss)}" if cluster else "–", mib(max(u.driver_rss for u in usages)),
                 f"{max(r.usage.other_cores for r in s.runs.values()):.2f}"]
        print("| " + " | ".join(cells) + " |")

    print("\n- img/s, steady: for Ray, rows per second between the first and the last committed shard of the big job "
          "(once its actors run); for the single machine, the slope of the line through its wall times at both sizes "
          "(its start-up is fixed: loading the models). Start-up: a whole run's wall time minus its pages at the steady "
          "rate. 1st shard: from the command's start to its first committed shard. Efficiency: speed-up over 1 actor "
          "/ actors.")
    print("- Memory: maxima over the runs (VmRSS sampled every 0.5 s, PSS every 2 s). A cluster's RSS sums every process "
          "of its nodes (raylet, GCS, agents, Ray Data's helper actors, the OCR actors, and one worker process per read "
          "task in flight), counting shared pages once per process; PSS shares them out. The single machine is one "
          "process. Other load: CPU used by processes not ours during a run, averaged over it (max over the runs "
          "the figures come from).")
    for c in clusters.values():
        cold = f"; its first job ({c.cold.pages} pages) took {c.cold.wall:.1f} s" if c.cold else ""
        print(f"- cluster of {c.name}: started in {c.start:.1f} s (`ray start --block` per node until every node is alive){cold}")
    for s in setups[1:]:
        fitted, _ = s.fit(small, big)
        run = s.runs.get(big)
        if run is not None:
            alone = ""
            if s.nodes > 1 and run.nodes.count(":") == 1:
                alone = " (one node did all the work: the other's actor was not ready before the inputs ran out)"
            print(f"- {s.name}: {big} pages by node: {run.nodes or '?'}{alone}; a line through the wall times at {small} and "
                  f"{big} pages would say {fmt(fitted)} img/s, as the start-up grows with the job (node processes: Ray "
                  f"starts a worker process per read task in flight)")
    if s_rate is None:
        print("- the single machine's rate could not be measured (the big job was not slower than the small one): rerun")
        return
    s_fixed = single.startup(big, s_rate) or 0.0
    print(f"- single machine: {s_rate:.2f} img/s steady, {s_fixed:.1f} s start-up per run")
    for s in setups[1:]:
        rate = s.steady(small, big)
        fixed = s.startup(big, rate)
        if rate is None or fixed is None:
            print(f"- {s.name}: no steady rate (not run, or too few shards)")
            continue
        start = clusters[s.cluster].start if s.cluster in clusters else 0.0
        if rate <= s_rate:
            print(f"- {s.name}: Ray never pays off on this machine: its steady rate ({rate:.2f} img/s) is not above "
                  f"the single machine's ({s_rate:.2f})")
        else:
            close = (f" The steady rates differ by {100 * (rate / s_rate - 1):.0f} % only, within this machine's noise: "
                     f"read it as 'does not pay off here'.") if rate < NOISE * s_rate else ""
            print(f"- {s.name}: Ray pays off {crossing(fixed, rate, s_fixed, s_rate)} on a running cluster (start-up "
                  f"as at {big} pages); counting the cluster's start too ({start:.0f} s): "
                  f"{crossing(fixed + start, rate, s_fixed, s_rate)}.{close}")
    print(f"\nWhole benchmark: {elapsed / 60:.1f} min." + (" --quick: too few pages for these figures to mean much." if args.quick else ""))


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog=f"Run inside a loopback-only network namespace (root): {RUN_HOW}")
    ap.add_argument("--pages", type=int, help="pages of the big job (default 48; --quick: 8)")
    ap.add_argument("--small", type=int, help="pages of the small job, for the fit (default pages/4; --quick: 4)")
    ap.add_argument("--block-size", type=int, help="inputs per Ray block and committed shard (default 4; --quick: 2)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per setup and size, the fastest kept (default 1)")
    ap.add_argument("--quick", action="store_true", help="a few pages: checks that everything works, figures mean little")
    ap.add_argument("--budget", type=float, default=840,
                    help="seconds for the whole benchmark; runs that would start later are skipped (default 840)")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--keep", action="store_true", help="keep the work folder (pages, outputs, logs)")
    args = ap.parse_args()
    args.pages = args.pages or (8 if args.quick else 48)
    args.small = args.small or (4 if args.quick else max(1, args.pages // 4))
    args.block_size = args.block_size or (2 if args.quick else 4)
    args.repeat = max(1, min(args.repeat, 5))
    if not 0 < args.small < args.pages:
        ap.error("--small must be between 0 and --pages")

    ok, why = loopback_only()
    if not ok:
        print(f"bench_ray: refusing to run: Ray 2.60 listens on every interface, so the clusters this starts must be in a "
              f"network namespace whose only interface is loopback ({why}). Run it as root like this:\n\n    {RUN_HOW}\n",
              file=sys.stderr)
        return 2

    from conftest_ray import (  # sets SVTR_CACHE_DIR to a fresh folder, on purpose
        quiet_env,
        ray_cluster,
    )

    started = time.monotonic()
    info = machine()
    info["ray"] = ray_version()
    from svtr_label.services import Services

    engine = Services.from_env().engine("bundled").describe()  # lays the bundled weights out in the cache, once
    info["engine"] = f"{engine['engine']}, {engine['workers']} pipelines x {engine['threads_per_worker']} thread(s)"
    print(f"{info['cores']} cores ({info['cpu']}), {info['mem_gib']:.0f} GiB; load average {Path('/proc/loadavg').read_text().split()[:3]}")

    work = Path(tempfile.mkdtemp(prefix="svtr-bench-ray-"))
    bench = Bench(work, args.budget, cli_timeout=120 + 20 * args.pages)
    small, big = args.small, args.pages
    roots = make_roots(work, [small, big, args.block_size], args.seed)
    print(f"{big} generated pages in {work}; each setup at {small} and {big} pages\n", flush=True)

    no_cache = {"SVTR_PREDICTION_CACHE": "off"}
    setups = [Setup("single machine", 1, engine["workers"]), Setup("1 node x 1", 1, 1, "1 node x 2 CPUs"),
              Setup("1 node x 2", 1, 2, "1 node x 2 CPUs"), Setup("2 nodes x 1", 2, 2, "2 nodes x 1 CPU")]
    clusters: dict[str, Cluster] = {}
    sizes = [small, big] * args.repeat

    def single_run(n: int, tag: str) -> Run:
        out = work / f"single-{tag}-{n}.json"
        cmd = ["predict", str(roots[n] / "pages"), "--profile", "bundled", "--root", str(roots[n]), "-o", str(out), "--no-progress"]
        return bench.cli("single machine", cmd, quiet_env(no_cache), n, [], single_check(n, out))

    def ray_run(cluster: Any, setup: Setup, n: int, tag: str) -> Run:
        out = work / f"ray-{setup.name.replace(' ', '')}-{tag}-{n}"
        cmd = ["predict", str(roots[n] / "pages"), "--profile", "bundled", "--root", str(roots[n]), "--ray", cluster.address,
               "-o", str(out), "--no-progress", "--block-size", str(args.block_size), "--actors", str(setup.actors)]
        env = {**cluster.env, **no_cache, "SVTR_RAY_COMMIT_EVERY": str(args.block_size)}
        return bench.cli(setup.name, cmd, env, n, [node.proc.pid for node in cluster.nodes], ray_check(n))

    try:
        print("single machine (a warm-up run first, not counted):", flush=True)
        single_run(args.block_size, "warmup")
        for i, n in enumerate(sizes):
            setups[0].keep(single_run(n, str(i)))

        for ips, cpus, members in ((NODE_IPS[:1], 2, setups[1:3]), (NODE_IPS, 1, setups[3:])):
            name = members[0].cluster
            print(f"\ncluster of {name}:", flush=True)
            stack, t0 = start_cluster(ray_cluster, ips, cpus, no_cache)
            with stack:
                cluster = stack.cluster
                c = clusters[name] = Cluster(name, time.monotonic() - t0)
                print(f"  started in {c.start:.1f} s; its first job (not counted):", flush=True)
                c.cold = ray_run(cluster, members[0], args.block_size, "cold")
                for i, n in enumerate(sizes):  # the setups of a cluster take turns: drift spreads over them
                    for setup in members:
                        setup.keep(ray_run(cluster, setup, n, str(i)))
            print(f"  stopped (by PID); {time.monotonic() - t0:.0f} s with this cluster", flush=True)
            if not args.keep:  # the nodes' temp folders and logs (made by ray_cluster for these nodes)
                for node in cluster.nodes:
                    shutil.rmtree(node.temp_dir, ignore_errors=True)
                    node.log.unlink(missing_ok=True)
        print("\nsingle machine again (the fastest run of each size counts: drift over the benchmark):", flush=True)
        for n in (small, big):
            setups[0].keep(single_run(n, "after"))
    except BudgetExceeded as exc:
        print(f"\n{exc}: the table shows what ran (raise --budget, or lower --pages)")
    except BaseException as exc:  # pytest's fail() (conftest's wait_until) is a BaseException
        if isinstance(exc, KeyboardInterrupt):
            raise
        print(f"\nbench_ray: stopped: {type(exc).__name__}: {exc}\nlogs: {work}", file=sys.stderr)
        return 1

    report(setups, clusters, small, big, info, args, time.monotonic() - started)
    if args.keep:
        print(f"\nwork folder (pages, outputs, logs): {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def drop_test_cache() -> None:
    """Remove the fresh cache folder tests/conftest.py made for this process (the laid-out weights)."""
    cache = Path(os.environ.get("SVTR_CACHE_DIR", ""))
    if "conftest" in sys.modules and not os.environ.get("SVTR_TEST_CACHE_DIR") and cache.name.startswith("svtr-test-cache-"):
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    try:
        code = main()
    finally:
        drop_test_cache()
    sys.exit(code)
