"""RetryPolicy: the one backoff computation (task retries, the operator's status writes)."""

from __future__ import annotations

import pytest

from stageflow.models import TaskSpec
from stageflow.models.retry import RetryPolicy


def test_the_delay_doubles_from_the_initial_interval_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_interval=0.2, maximum_interval=5.0)
    assert [policy.delay(n) for n in range(1, 8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert policy.delay(0) == 0.0


def test_a_huge_failure_count_stays_at_the_cap() -> None:
    """2 ** 1100 overflows a float: the cap is applied before the power grows that far."""
    assert RetryPolicy(initial_interval=1, maximum_interval=60).delay(5_000) == 60.0


def test_a_coefficient_of_one_is_a_fixed_interval() -> None:
    policy = RetryPolicy(initial_interval=2, backoff_coefficient=1)
    assert {policy.delay(n) for n in range(1, 10)} == {2.0}


@pytest.mark.parametrize(("attempts", "allowed"), [(1, True), (2, True), (3, False)])
def test_maximum_attempts_counts_the_first_try(attempts: int, allowed: bool) -> None:
    assert RetryPolicy(initial_interval=1, maximum_attempts=3).may_retry(attempts) is allowed
    assert RetryPolicy(initial_interval=1).may_retry(10_000)


def test_a_task_s_retries_are_its_policy() -> None:
    spec = TaskSpec.model_validate(
        {"name": "t", "task": "noop", "retries": 2, "retryBackoffSeconds": 1.5}
    )
    policy = spec.retry_policy()
    assert (policy.maximum_attempts, policy.delay(1), policy.delay(2)) == (3, 1.5, 3.0)
    assert TaskSpec(
        name="t", task="noop", retries=20, retry_backoff_seconds=3600
    ).retry_policy().delay(20) == (3600.0)
