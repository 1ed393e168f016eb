"""How long to wait before the next try: one policy object for every backoff in stageflow.

Modelled on Temporal's `RetryPolicy`: an initial interval, a coefficient each failure
multiplies it by, a cap, and a number of attempts. A task's retries
(`retries`, `retryBackoffSeconds`) and the operator's status writes use it, so the
delay after the n-th failure is computed in one place and documented once
(docs/request.md, "Semantics"). Fixed-interval loops (the mirror's retry tick, the
Lease's renewals) are not backoffs and keep their own interval.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RetryPolicy(BaseModel):
    """Exponential backoff: `initial_interval * backoff_coefficient ** (failures - 1)`, at
    most `maximum_interval`; `maximum_attempts` counts the first try (0: no limit)."""

    model_config = ConfigDict(frozen=True)

    initial_interval: float = Field(ge=0, description="Seconds to wait after the first failure.")
    backoff_coefficient: float = Field(default=2.0, ge=1, description="Growth per failure.")
    maximum_interval: float | None = Field(default=None, ge=0, description="Longest wait.")
    maximum_attempts: int = Field(default=0, ge=0, description="Tries in all; 0: unlimited.")

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` failures in a row (1, 2, ...)."""
        if failures < 1:
            return 0.0
        # Capped before the power can overflow: 2.0 ** 1100 is an OverflowError.
        wait = self.initial_interval
        for _ in range(failures - 1):
            if self.maximum_interval is not None and wait >= self.maximum_interval:
                break
            wait *= self.backoff_coefficient
        if self.maximum_interval is not None:
            wait = min(wait, self.maximum_interval)
        return float(wait)

    def may_retry(self, attempts: int) -> bool:
        """Whether another try may follow `attempts` tries."""
        return self.maximum_attempts == 0 or attempts < self.maximum_attempts
