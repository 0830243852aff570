"""Small pieces that every plugin's training loop needs: a wall-clock budget, the EMA and
data-parallel training over torch.distributed ranks, and the optimiser's state as flat
tensors for a resumable safetensors file (nothing pickled).

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

Under torchrun (or any launcher that sets RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT)
``DataParallel`` wraps the model in DistributedDataParallel, so gradients are averaged
across ranks at each step and every rank holds the same weights; without those variables
it is a world of one and changes nothing::

    parallel = DataParallel(device)
    model = parallel.wrap(model)
    for step in ...:
        batch = data[parallel.shard(batch_indices)]   # this rank's part of the global batch
        loss = ...; loss.backward(); optimiser.step()
        progress(step, total, loss=parallel.mean(loss))
    if parallel.main:
        save_checkpoint(...)
    parallel.close()

Nothing here imports torch at module level.
"""

from __future__ import annotations

import time
from typing import Callable

from condgen.distributed import Ranks


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


def optimizer_tensors(optimizer, prefix: str = "opt") -> dict:
    """An optimiser's per-parameter state as flat tensors for a safetensors file:
    ``{prefix}.{parameter index}.{field}`` (Adam: ``step``, ``exp_avg``, ``exp_avg_sq``).
    The hyper-parameters are not kept: the training recipe sets them again on resume."""
    import torch

    return {f"{prefix}.{index}.{field}": value if torch.is_tensor(value) else torch.tensor(value)
            for index, state in optimizer.state_dict()["state"].items() for field, value in state.items()}


def load_optimizer_tensors(optimizer, tensors: dict, prefix: str = "opt") -> None:
    """Put back into ``optimizer`` the state ``optimizer_tensors`` wrote under ``prefix``
    (other keys in ``tensors`` are left alone), so the next step is the one an
    uninterrupted run would have taken."""
    state = optimizer.state_dict()
    state["state"] = {}
    for key, value in tensors.items():
        index, dot, field = key.removeprefix(f"{prefix}.").partition(".")
        if key.startswith(f"{prefix}.") and dot and index.isdigit():
            state["state"].setdefault(int(index), {})[field] = value
    optimizer.load_state_dict(state)


class DataParallel:
    """Data-parallel training on the ranks torchrun started: DDP over gloo on the CPU and
    NCCL on GPUs, the data sharded by rank, only rank 0 writing files. A plain process is
    a world of one, for which every method is the identity."""

    def __init__(self, device: str = "cpu", environ=None):
        self.ranks = Ranks(environ)
        self.device = self.ranks.device(device)
        backend = "nccl" if self.device.startswith("cuda") else "gloo"
        self.ranks.start(backend)

    @property
    def main(self) -> bool:
        return self.ranks.main

    @property
    def size(self) -> int:
        return self.ranks.size

    def wrap(self, model):
        """The model as DistributedDataParallel on several ranks (its parameters are made
        equal to rank 0's), else the model itself; ``unwrap`` gives the module back."""
        if not self.ranks.sharded:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [int(self.device.split(":")[1])] if self.device.startswith("cuda:") else None
        return DistributedDataParallel(model, device_ids=device_ids)

    @staticmethod
    def unwrap(model):
        return getattr(model, "module", model)

    def shard(self, items):
        """This rank's part of a global batch (every size-th item from its rank on)."""
        return items[self.ranks.rank :: self.ranks.size]

    @staticmethod
    def take(rows, *tensors) -> tuple:
        """Each tensor (or dict of tensors) cut to ``rows`` (a rank's share, from ``shard``);
        unchanged when ``rows`` is None. A loss draws its noise for the whole batch and then
        takes its rows, so the random stream does not depend on the number of ranks."""
        if rows is None:
            return tensors
        return tuple({k: v[rows.to(v.device)] for k, v in t.items()} if isinstance(t, dict) else t[rows.to(t.device)] for t in tensors)

    def broadcast(self, value):
        """Rank 0's ``value`` on every rank (a decision all ranks must share: a budget's step count)."""
        return self.ranks.broadcast(value)

    def mean(self, value) -> float:
        """The mean over ranks of a scalar (a loss, for the progress bar and the logs)."""
        value = float(value)
        if not self.ranks.sharded:
            return value
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor) / self.ranks.size

    def close(self) -> None:
        self.ranks.close()
