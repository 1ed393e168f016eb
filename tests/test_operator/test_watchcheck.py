"""The watch check tells a stuck watch from an idle one (a fake clock; no sleeps)."""

from __future__ import annotations

import asyncio

import pytest

from stageflow.kube import KubeUnavailableError, ObjectKey
from stageflow.operator.watchcheck import WatchCheck, WatchStuckError

A = ObjectKey("default", "a")
B = ObjectKey("default", "b")


class Apiserver:
    """What a list answers, and a clock the test moves."""

    def __init__(self) -> None:
        self.objects: dict[ObjectKey, str] = {}
        self.now = 0.0
        self.lists = 0
        self.during_list: list[tuple[ObjectKey, str | None, bool]] = []
        self.check: WatchCheck | None = None

    async def list(self) -> dict[ObjectKey, str]:
        self.lists += 1
        listed = dict(self.objects)
        assert self.check is not None
        for key, version, deleted in self.during_list:  # events that race the list
            self.check.seen(key, version, deleted=deleted)
        self.during_list = []
        return listed


@pytest.fixture
def apiserver() -> Apiserver:
    server = Apiserver()
    server.check = WatchCheck(
        "WorkflowRun", server.list, stale_seconds=60, every_seconds=15, clock=lambda: server.now
    )
    return server


async def advance(apiserver: Apiserver, seconds: float) -> None:
    """Let time pass, probed every 10 s as the kubelet does."""
    assert apiserver.check is not None
    end = apiserver.now + seconds
    while apiserver.now < end:
        apiserver.now = min(end, apiserver.now + 10)
        await apiserver.check.check()


async def test_an_idle_watch_is_healthy(apiserver: Apiserver) -> None:
    await advance(apiserver, 600)
    assert apiserver.lists == 30  # at most every 15 s: every other probe, when probed per 10 s


async def test_a_watch_that_delivers_every_change_is_healthy(apiserver: Apiserver) -> None:
    assert apiserver.check is not None
    for version in range(1, 30):
        apiserver.objects[A] = str(version)
        apiserver.check.seen(A, str(version), deleted=False)
        await advance(apiserver, 30)


async def test_a_change_never_delivered_is_stuck_after_the_bound(apiserver: Apiserver) -> None:
    assert apiserver.check is not None
    apiserver.objects[A] = "1"
    apiserver.check.seen(A, "1", deleted=False)
    apiserver.objects[B] = "2"  # created; the watch never says so
    await advance(apiserver, 60)  # noted at the first list (10 s): 60 s later, not yet
    with pytest.raises(WatchStuckError, match=r"default/b changed on the apiserver 6\ds ago"):
        await advance(apiserver, 20)


async def test_any_event_for_the_object_resets_its_clock(apiserver: Apiserver) -> None:
    assert apiserver.check is not None
    apiserver.objects[A] = "3"
    apiserver.check.seen(A, "1", deleted=False)  # the watch is behind, but moving
    await advance(apiserver, 50)
    apiserver.check.seen(A, "2", deleted=False)
    await advance(apiserver, 50)
    apiserver.check.seen(A, "3", deleted=False)
    await advance(apiserver, 300)


async def test_events_racing_the_list_are_not_taken_for_a_stuck_watch(
    apiserver: Apiserver,
) -> None:
    assert apiserver.check is not None
    # The list reads version 1; before its answer is read, the watch delivers 1 and 2
    # (or the deletion): the listed version then differs from the last delivered one.
    apiserver.objects[A] = "1"
    apiserver.objects[B] = "5"
    apiserver.check.seen(B, "5", deleted=False)
    apiserver.during_list = [(A, "1", False), (A, "2", False), (B, None, True)]
    await advance(apiserver, 10)
    apiserver.objects = {A: "2"}  # what the apiserver holds now
    await advance(apiserver, 300)


async def test_a_noted_object_deleted_on_the_apiserver_is_forgotten(apiserver: Apiserver) -> None:
    apiserver.objects[A] = "1"  # never delivered
    await advance(apiserver, 30)
    del apiserver.objects[A]  # and gone again (a missed deletion blocks no run)
    await advance(apiserver, 300)


async def test_the_background_check_survives_errors_and_keeps_its_verdict() -> None:
    """A list that fails (apiserver away: KubeError) keeps the last verdict; any other
    error is logged and checking goes on, so the verdict is never frozen by a bug."""
    answers: list[object] = [
        {A: "1"},  # noted: never delivered
        {A: "1"},  # still not, 100 s later: stuck
        KubeUnavailableError("apiserver unreachable"),
        ValueError("not JSON"),
        {},  # A deleted: nothing behind
    ]
    now = [0.0]

    async def listed() -> dict[ObjectKey, str]:
        answer = answers.pop(0) if answers else {}
        now[0] += 100  # every list is long after the last: A is stale at the second check
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, dict)
        return answer

    check = WatchCheck("Job", listed, stale_seconds=60, every_seconds=0, clock=lambda: now[0])
    verdicts: list[str | None] = [None]  # each change of the verdict, in order
    running = asyncio.create_task(check.run_forever())
    try:
        async with asyncio.timeout(5):
            while answers or verdicts[-1] is not None:
                if check.stuck != verdicts[-1]:
                    verdicts.append(check.stuck)
                await asyncio.sleep(0)
    finally:
        running.cancel()
    assert len(verdicts) == 3  # healthy, stuck (through both failed lists), healthy again
    assert verdicts[1] is not None
    assert "the Job watch is stuck: default/a" in verdicts[1]
