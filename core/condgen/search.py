"""Inference-time search and recurrence: guidance that runs above the sampler.

Each object here has ``runs_above_sampler = True`` and
``run(sampler_fn, model, shape, cond, *, steps, rng, callback, **options) -> SampleResult``.
Budgets are in NFE per sample. All randomness comes from ``rng.branch(k)``: fresh
streams that depend on (seed, k, sample index) only, so results do not depend on the
batch size.

- ``BestOfN``: N independent runs of any sampler, keep the highest-reward sample.
- ``TreeSearch``: a tree over the denoising chain in the spirit of Diffusion Tree
  Sampling (Jain et al. 2025): every rollout adds its states as nodes, leaf rewards
  are backed up as soft values V = (1/lambda) log mean exp(lambda r), and new rollouts
  start from nodes chosen by Boltzmann selection on V, so earlier rollouts are reused.
- ``run_recurrence``: TFG's recurrence (Ye et al. 2024) — each step is taken, re-noised
  back to its starting level and taken again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from condgen.errors import UsageError
from condgen.guidance_options import check_options, format_value, guidance_model, option_number
from condgen.samplers import SampleResult


def _slice_cond(cond: dict, index: int) -> dict:
    return {k: v[index : index + 1] for k, v in cond.items()}


# -- best-of-N ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BestOfN:
    """Run the sampler ``n`` times (or as often as ``budget`` NFE allows) per sample and
    keep the sample with the highest ``reward(x, cond) -> [B]``."""

    n: int | None = None
    budget: int | None = None
    reward: Callable | None = None
    reward_name: str = "reward"

    name = "best-of-n"
    kinds = ("denoiser", "bayesian-flow", "energy", "autoregressive", "masked-tokens", "one-step")
    runs_above_sampler = True
    needs_grad = False

    @classmethod
    def parse(cls, value, options):
        check_options("best-of-n", options, ("budget", "reward"))
        n = option_number("best-of-n", "n", value, int) if value else None
        budget = option_number("best-of-n", "budget", options["budget"], int) if "budget" in options else None
        if (n is None) == (budget is None):
            raise UsageError("best-of-n needs either N or budget=NFE, e.g. --guidance best-of-n=8,reward=NAME")
        return cls(n=n, budget=budget, reward_name=options.get("reward", "reward"))

    def spec(self) -> str:
        head = f"best-of-n={self.n}" if self.n is not None else f"best-of-n,budget={self.budget}"
        return f"{head},reward={self.reward_name}"

    def bind(self, generator):
        return replace(self, reward=self.reward or guidance_model(generator, self.reward_name, "best-of-n"))

    def run(self, sampler_fn, model, shape, cond, *, steps, rng, callback=None, **options):
        if self.reward is None:
            raise UsageError("best-of-n needs a reward (reward=NAME)")
        best_x, best_reward, nfe, particle = None, None, 0, 0
        while True:
            result = sampler_fn(model, shape, cond, steps=steps, rng=rng.branch(particle), callback=None, **options)
            nfe += result.nfe
            particle += 1
            reward = self.reward(result.x, cond).detach().reshape(-1)
            if best_x is None:
                best_x, best_reward = result.x.clone(), reward
            else:
                better = reward > best_reward
                best_x = torch.where(better.reshape(-1, *([1] * (best_x.dim() - 1))), result.x, best_x)
                best_reward = torch.where(better, reward, best_reward)
            target = self.n if self.n is not None else max(1, self.budget // max(1, result.nfe))
            if callback is not None:
                callback(particle, target)
            if particle >= target:
                return SampleResult(x=best_x, nfe=nfe)


# -- tree search over the denoising chain --------------------------------------------------


@dataclass
class _Node:
    x: torch.Tensor
    depth: int
    children: list = field(default_factory=list)
    visits: int = 0
    log_sum_exp: float = -math.inf  # log sum exp(lambda * reward) over leaves below

    def value(self, inverse_temperature: float) -> float:
        return (self.log_sum_exp - math.log(self.visits)) / inverse_temperature


@dataclass(frozen=True)
class TreeSearch:
    """Tree search over the ancestral (DDIM eta) chain of a denoiser, with a budget in NFE.

    ``branch``: children per node before selection descends instead of expanding;
    ``lam``: inverse temperature of the soft values and of Boltzmann selection;
    ``mode="max"`` returns the best leaf found (DTS*), ``"sample"`` descends the final
    tree by Boltzmann selection (DTS, a draw from p(x) exp(lambda r) as budget grows).
    """

    budget: int
    reward: Callable | None = None
    reward_name: str = "reward"
    branch: int = 2
    lam: float = 1.0
    eta: float = 1.0
    mode: str = "max"

    name = "tree"
    kinds = ("denoiser",)
    #: Said when a model of another kind asks for it (a Bayesian flow has no noisy x_t to branch).
    elsewhere = "it branches a denoiser's noisy chain x_t, which other kinds do not have; search with best-of-n=N,reward=NAME instead"
    runs_above_sampler = True
    needs_grad = False

    @classmethod
    def parse(cls, value, options):
        check_options("tree", options, ("reward", "branch", "lam", "eta", "mode"))
        if not value:
            raise UsageError("tree needs a budget in NFE per sample, e.g. --guidance tree=200,reward=NAME")
        mode = options.get("mode", "max")
        if mode not in ("max", "sample"):
            raise UsageError("tree: mode must be max or sample")
        return cls(
            budget=option_number("tree", "budget", value, int),
            reward_name=options.get("reward", "reward"),
            branch=option_number("tree", "branch", options.get("branch", "2"), int),
            lam=option_number("tree", "lam", options.get("lam", "1")),
            eta=option_number("tree", "eta", options.get("eta", "1")),
            mode=mode,
        )

    def spec(self) -> str:
        return f"tree={self.budget},reward={self.reward_name},branch={self.branch},lam={format_value(self.lam)},eta={format_value(self.eta)},mode={self.mode}"

    def bind(self, generator):
        return replace(self, reward=self.reward or guidance_model(generator, self.reward_name, "tree"))

    def run(self, sampler_fn, model, shape, cond, *, steps, rng, callback=None, dtype=torch.float32, discretisation="uniform", **options):
        if self.reward is None:
            raise UsageError("tree search needs a reward (reward=NAME)")
        if self.budget < steps:
            raise UsageError(f"tree search budget {self.budget} NFE is below one rollout of {steps} steps")
        schedule = model.path.schedule(steps, discretisation)
        samples, used = [], 0
        for b in range(shape[0]):
            x, nfe = self._search_one(model, schedule, _slice_cond(cond, b), rng.branch(0, [rng.indices[b]]), tuple(shape[1:]), dtype)
            samples.append(x)
            used = max(used, nfe)
            if callback is not None:
                callback(b + 1, shape[0])
        return SampleResult(x=torch.cat(samples), nfe=used)

    def _search_one(self, model, schedule, cond, rng, sample_shape, dtype):
        from condgen.samplers.denoising import CountingDenoiser, ancestral_split

        ratio = [float(r) for r in schedule.ratio]
        steps = len(ratio) - 1
        denoise = CountingDenoiser(model, schedule, cond, 1, rng.device, dtype)
        root = _Node(rng.randn(sample_shape, dtype=dtype) * ratio[0], 0)
        leaves: list[tuple[float, torch.Tensor]] = []
        rollout = selections = 0
        while True:
            path, node = [root], root
            chooser = rng.branch(10_000_000 + selections)
            selections += 1
            while node.depth < steps and len(node.children) >= self.branch:
                node = self._select(node, chooser)
                path.append(node)
            if node.depth == steps:  # every node on this path is full: select again
                if selections > 100 * (rollout + 1):
                    break
                continue
            if leaves and denoise.nfe + steps - node.depth > self.budget:
                break
            noise = rng.branch(rollout)
            x = node.x
            for i in range(node.depth, steps):
                x0 = denoise(x, i)
                r_down, r_up = ancestral_split(ratio[i], ratio[i + 1], self.eta)
                x = x0 + (x - x0) * (r_down / ratio[i])
                if r_up > 0:
                    x = x + noise.randn_like(x) * r_up
                child = _Node(x, i + 1)
                node.children.append(child)
                path.append(child)
                node = child
            reward = float(self.reward(x, cond).reshape(-1)[0])
            leaves.append((reward, x))
            for visited in path:
                visited.visits += 1
                visited.log_sum_exp = float(np.logaddexp(visited.log_sum_exp, self.lam * reward))
            rollout += 1
        if self.mode == "max":
            return max(leaves, key=lambda item: item[0])[1], denoise.nfe
        node, chooser = root, rng.branch(20_000_000)
        while node.children:
            node = self._select(node, chooser)
        return node.x, denoise.nfe

    def _select(self, node: _Node, chooser) -> _Node:
        values = torch.tensor([child.value(self.lam) * self.lam for child in node.children], dtype=torch.float64)
        probs = torch.softmax(values, 0)
        return node.children[int(chooser.categorical(probs[None])[0])]


# -- TFG recurrence --------------------------------------------------------------------------


def run_recurrence(tfg, model, shape, cond, *, steps, rng, callback=None, dtype=torch.float32, discretisation="uniform", **options):
    """Ancestral DDIM (eta = tfg.eta) where every step is redone ``tfg.recur`` times: after
    a step from level r_i to r_{i+1}, noise sqrt(r_i^2 - r_{i+1}^2) takes it back to r_i.
    ``model`` is already wrapped by the TFG guidance."""
    from condgen.samplers.denoising import CountingDenoiser, ancestral_split

    schedule = model.path.schedule(steps, discretisation)
    ratio = [float(r) for r in schedule.ratio]
    denoise = CountingDenoiser(model, schedule, cond, shape[0], rng.device, dtype)
    x = rng.randn(shape[1:], dtype=dtype) * ratio[0]
    for i in range(steps):
        for k in range(tfg.recur):
            x0 = denoise(x, i)
            r_down, r_up = ancestral_split(ratio[i], ratio[i + 1], tfg.eta)
            x_next = x0 + (x - x0) * (r_down / ratio[i])
            if r_up > 0:
                x_next = x_next + rng.randn_like(x) * r_up
            if k + 1 < tfg.recur and ratio[i + 1] > 0:
                x = x_next + rng.randn_like(x) * math.sqrt(ratio[i] ** 2 - ratio[i + 1] ** 2)
            else:
                x = x_next
                break
        if callback is not None:
            callback(i + 1, steps)
    return SampleResult(x=x, nfe=denoise.nfe)
