"""condgen.training: the wall-clock budget plan and the EMA update."""

import pytest
import torch

from condgen.training import BudgetPlan, ema_update


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def run(plan, clock, seconds_per_step, total, start=0):
    """A training loop as plugins write it; returns (steps done, plans made)."""
    step, plans = start, []
    while step < total:
        clock.now += seconds_per_step(step)
        step += 1
        planned = plan.after(step)
        if planned:
            total = planned
            plans.append((step, planned))
        if plan.spent():
            total = step
    return step, plans


def test_the_plan_fills_the_budget_at_the_measured_speed_keeping_the_margin():
    clock = FakeClock()
    plan = BudgetPlan(100.0, 10**9, clock=clock)
    steps, plans = run(plan, clock, lambda s: 0.1, 10**9)
    # timed over steps 20..120 at 0.1 s: 88 s left at step 120, 98% of it at 10 steps per second
    assert plans[0] == (120, 120 + int(0.98 * 88.0 / 0.1))
    # re-planned every 500 steps, each time with 2% of what is left in hand
    assert steps == plans[-1][1] and plan.seconds_per_step == pytest.approx(0.1)
    assert 0.98 * 100.0 <= plan.elapsed < 100.0 and not plan.spent()  # the schedule ended the run, not the clock


def test_a_device_that_slows_down_is_replanned_and_the_clock_stops_the_run_in_any_case():
    clock = FakeClock()
    plan = BudgetPlan(100.0, 10**9, clock=clock)
    steps, plans = run(plan, clock, lambda s: 0.1 if s < 300 else 0.15, 10**9)
    assert len(plans) >= 2 and plans[1][1] < plans[0][1]  # slower: fewer steps planned
    assert plan.elapsed <= 100.0 + 0.15  # never past the budget by more than a step
    # without re-planning the first plan is kept until the clock runs out
    clock = FakeClock()
    once = BudgetPlan(100.0, 10**9, clock=clock, replan_every=None)
    steps_once, plans_once = run(once, clock, lambda s: 0.1 if s < 300 else 0.15, 10**9)
    assert len(plans_once) == 1 and once.spent() and steps_once < plans_once[0][1]


def test_the_plan_counts_from_a_resumed_step_and_respects_the_upper_bound():
    clock = FakeClock()
    plan = BudgetPlan(1000.0, 5000, start=4000, clock=clock)
    steps, plans = run(plan, clock, lambda s: 0.1, 5000, start=4000)
    assert plans == [(4120, 5000)] and steps == 5000  # 9,880 steps afforded, 5,000 asked for
    with pytest.raises(ValueError, match="positive"):
        BudgetPlan(0, 10)


def test_ema_update_moves_each_tensor_by_one_minus_decay():
    ema, params = [torch.zeros(3), torch.ones(2)], [torch.ones(3), torch.full((2,), 3.0)]
    ema_update(ema, params, 0.9)
    assert torch.allclose(ema[0], torch.full((3,), 0.1)) and torch.allclose(ema[1], torch.full((2,), 1.2))


def test_optimizer_state_survives_a_safetensors_file_and_resumes_the_same_steps(tmp_path):
    from condgen import load_checkpoint, load_optimizer_tensors, optimizer_tensors, save_checkpoint

    def setup():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
        return model, torch.optim.Adam(model.parameters(), lr=1e-2)

    def steps(model, optimizer, count):
        for i in range(count):
            x = torch.linspace(-1, 1, 24).view(8, 3) * (i + 1)
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()

    model, optimizer = setup()
    steps(model, optimizer, 3)
    path = tmp_path / "state.safetensors"
    save_checkpoint(path, {**{f"model.{k}": v for k, v in model.state_dict().items()}, **optimizer_tensors(optimizer, "adam")}, {}, generator="g:train-state")
    steps(model, optimizer, 2)  # the uninterrupted run

    tensors = load_checkpoint(path, generator="g:train-state").tensors
    assert {k for k in tensors if k.startswith("adam.")} == {f"adam.{i}.{f}" for i in range(4) for f in ("step", "exp_avg", "exp_avg_sq")}
    resumed, resumed_optimizer = setup()
    resumed.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    load_optimizer_tensors(resumed_optimizer, tensors, "adam")
    steps(resumed, resumed_optimizer, 2)
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    fresh, fresh_optimizer = setup()  # without the moments, the same two steps land elsewhere
    fresh.load_state_dict(resumed.state_dict() | {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    steps(fresh, fresh_optimizer, 2)
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters()))
