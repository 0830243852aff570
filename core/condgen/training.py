"""Small pieces that every plugin's training loop needs: a wall-clock budget and the EMA.

A run given "S seconds" (a lent GPU, a CI slot) should end its learning-rate schedule
when the time does, not be cut off halfway down the cosine. ``BudgetPlan`` times a
window of steps, sets the schedule's length from that speed, re-plans as it goes (a
shared device slows down), and says when the budget is spent so that the loop stops on
time anyway::

    plan = BudgetPlan(seconds=600, steps=10**9, start=step)
    while step < total:
        ...one optimisation step...
        step += 1
        total = plan.after(step) or total
        if plan.spent():
            total = step  # save and stop

Nothing here imports torch at module level except ``ema_update``'s fused kernel.
"""

from __future__ import annotations

import time
from typing import Callable


class BudgetPlan:
    """The number of steps that ``seconds`` of wall clock afford, measured as training runs.

    Steps ``start + calibrate[0]`` to ``start + calibrate[1]`` are timed (the first few of a
    run pay for allocation and autotuning); at the end of that window, and every
    ``replan_every`` steps after it, the plan becomes ``step + (1 - margin) * remaining /
    seconds_per_step`` from the mean speed since the window opened, capped at ``steps``.
    ``margin`` keeps time in hand so that the schedule, not the clock, ends the run.
    ``after(step)`` returns the new plan when it moves by more than 1%, else None.
    """

    def __init__(self, seconds: float, steps: int, *, start: int = 0, calibrate: tuple[int, int] = (20, 120),
                 replan_every: int | None = 500, margin: float = 0.02, clock: Callable[[], float] = time.perf_counter):
        if seconds <= 0:
            raise ValueError("a wall-clock budget must be positive")
        if not 0 <= calibrate[0] < calibrate[1]:
            raise ValueError("the calibration window is (first, last) steps with first < last")
        self.seconds, self.cap, self.start, self.calibrate = float(seconds), int(steps), int(start), calibrate
        self.replan_every, self.margin, self.clock = replan_every, float(margin), clock
        self.started = clock()
        self.planned: int | None = None
        self.seconds_per_step: float | None = None
        self._window: tuple[float, int] | None = None

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def spent(self) -> bool:
        """True once the budget's seconds have passed (slower than planned: stop anyway)."""
        return self.elapsed >= self.seconds

    def after(self, step: int) -> int | None:
        """Call once after each completed step (``step`` counts steps done, resumed ones included)."""
        done = step - self.start
        if done == self.calibrate[0]:
            self._window = (self.clock(), step)
            return None
        due = done == self.calibrate[1] or (self.replan_every and done > self.calibrate[1]
                                            and (done - self.calibrate[1]) % self.replan_every == 0)
        if not due or self._window is None:
            return None
        now = self.clock()
        self.seconds_per_step = (now - self._window[0]) / (step - self._window[1])
        remaining = self.seconds - (now - self.started)
        plan = min(self.cap, max(step + 1, step + int((1.0 - self.margin) * remaining / self.seconds_per_step)))
        if self.planned is not None and abs(plan - self.planned) <= 0.01 * plan:
            return None
        self.planned = plan
        return plan


def ema_update(ema_parameters: list, parameters: list, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * parameter, for every tensor in one fused call."""
    import torch

    with torch.no_grad():
        torch._foreach_lerp_(ema_parameters, parameters, 1.0 - decay)
