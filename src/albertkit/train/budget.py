"""A run's time budget: how much is spent (over resumes too), and the step at which the schedule should end to
finish with the budget, from the measured time per step."""

from __future__ import annotations

import time
from collections.abc import Callable

# Steps measured before the first plan, beyond the first one (which pays for allocation and compilation).
MIN_MEASURED_STEPS = 5


class TimeBudget:
    """`minutes` of training on `clock`, of which `spent_seconds` went to earlier processes of the run (`planned`:
    they already planned the schedule).

    The pace is measured from the end of this process's first step on, so evaluations and checkpoints count in
    it once they have happened: a plan made after an evaluation includes its share of the time."""

    def __init__(self, minutes: float | None, spent_seconds: float = 0.0, planned: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        self.seconds = None if minutes is None else minutes * 60
        self.clock = clock
        self.started = clock() - spent_seconds
        self._mark: tuple[int, float] | None = None  # (step, time) where the measurement starts
        self.planned = planned  # True once the first plan is made (a resumed run keeps its plan till it evaluates)
        self._planned_at: int | None = None  # the step of this process's last plan

    @property
    def limited(self) -> bool:
        return self.seconds is not None

    def spent(self) -> float:
        """Seconds of training so far, earlier processes of the run included."""
        return self.clock() - self.started

    def exhausted(self) -> bool:
        return self.seconds is not None and self.spent() >= self.seconds

    def observe(self, step: int) -> None:
        """Note that `step` is done (the first one observed starts the measurement)."""
        if self._mark is None:
            self._mark = (step, self.clock())

    def plan_due(self, step: int, warmup_steps: int, evaluated: bool, end: int) -> bool:
        """Whether to plan now: once enough steps are measured (early in warmup, so that a warmup given as a
        share of the steps can follow the plan), again whenever the measured steps have doubled since the last
        plan (a slow start, a busy machine, must not fix the end for good), at the end of warmup and after each
        evaluation, until the schedule's `end`. The same on every process (it depends on steps only): all of
        them join the broadcast."""
        if self.seconds is None or self._mark is None or step - self._mark[0] < MIN_MEASURED_STEPS or step >= end:
            return False
        doubled = self._planned_at is not None and step - self._mark[0] >= 2 * (self._planned_at - self._mark[0])
        return not self.planned or evaluated or step == warmup_steps or doubled

    def plan(self, step: int) -> tuple[int, float]:
        """(the step at which the budget runs out at the pace measured so far, seconds per step)."""
        assert self.seconds is not None and self._mark is not None
        self.planned, self._planned_at = True, step
        seconds_per_step = (self.clock() - self._mark[1]) / (step - self._mark[0])
        left = max(0.0, self.seconds - self.spent())
        return step + max(1, int(left / max(seconds_per_step, 1e-9))), seconds_per_step
