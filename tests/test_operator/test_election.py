"""Leader election is the default, and an operator that may not take the Lease says so.

Election on by default means an operator without the right to the Lease would stand by
for ever; it logs once, naming the permission and the setting that turns election off."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest

from stageflow.kube import KubeClient, KubeError
from stageflow.operator.config import OperatorSettings
from stageflow.operator.leader import LeaseElector


def test_election_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STAGEFLOW_LEADER_ELECTION", raising=False)
    assert OperatorSettings().leader_election is True
    monkeypatch.setenv("STAGEFLOW_LEADER_ELECTION", "false")
    assert OperatorSettings().leader_election is False


class Forbidden:
    """A Kubernetes client whose every Lease call is refused by RBAC."""

    calls = 0

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls += 1
        raise KubeError(f'leases.coordination.k8s.io "{name}" is forbidden', 403)


async def test_a_forbidden_lease_is_said_once_naming_the_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = Forbidden()
    elector = LeaseElector(
        cast(KubeClient, kube),
        namespace="flows",
        name="stageflow-operator",
        identity="op-0",
        duration=15,
        renew_deadline=10,
        retry=2,
    )
    with caplog.at_level(logging.DEBUG, logger="stageflow.operator.leader"):
        for _ in range(3):
            assert await elector._try() is False
    assert kube.calls == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "cannot take lease flows/stageflow-operator" in warnings[0]
    assert "STAGEFLOW_LEADER_ELECTION=false" in warnings[0]
