"""Guidance: wrappers that take a model and return a model of the same kind.

``guided(model, CFG(3.0))`` is what samplers receive; they never know guidance exists.
Each method has a spec string (``cfg=3,interval=0.3:5``) used by ``--guidance`` and
written to manifests, and a ``parse`` classmethod that reads it back.

Conventions
- Noise levels are r = sigma / alpha of the model's path at the t the sampler asks for;
  intervals and schedules are given on r (or, for CADS, on normalised time t / t_max,
  as in its paper), never on step fractions.
- Guidance that needs the sampler's randomness (CADS) gets the batch's ``SampleRNG``
  through ``bind_rng`` before each batch, so it stays independent of batch size.
- Methods that need a classifier, reward or class-conditional LM name it; the
  generator supplies it (``Generator.guidance_models()``) when ``bind`` is called.
- Search methods (best-of-N, tree search) and TFG's recurrence sit above the sampler:
  they have ``runs_above_sampler = True`` and a ``run`` method (see ``condgen.search``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch

from condgen.conditions import concat_conditions, drop_conditions
from condgen.errors import UsageError
from condgen.guidance_options import check_options, format_value, guidance_model, option_number, option_range, primary_value
from condgen.models import convert_prediction

#: Attributes a wrapper copies so that it is a model of the same kind.
_MODEL_ATTRS = (
    "kind", "prediction", "path", "sample_shape", "vocab_size", "mask_id", "latent_shape", "num_classes",
    "bos_id", "eos_id", "beta1", "sigma1", "accuracy_schedule", "sigma_range",
)
#: Optional model hooks a wrapper lets through to the model it wraps. Anything else
#: (e.g. a masked-token model's ``cached``) must be guided explicitly, never bypassed.
_FORWARDED_HOOKS = ("embed_condition",)
LOGIT_KINDS = ("bayesian-flow", "autoregressive", "masked-tokens")


class GuidedModel:
    """Base of guidance wrappers: forwards the kind attributes of the wrapped model."""

    def __init__(self, model, method):
        self.inner = model
        self.method = method
        for attr in _MODEL_ATTRS:
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))

    def bind_rng(self, rng) -> None:
        bind_rng(self.inner, rng)

    def __getattr__(self, name):
        if name in _FORWARDED_HOOKS and "inner" in self.__dict__:
            return getattr(self.inner, name)
        raise AttributeError(name)


def bind_rng(model, rng) -> None:
    """Give every wrapper in a guided stack the batch's random streams."""
    if hasattr(model, "bind_rng") and isinstance(model, GuidedModel):
        model.bind_rng(rng)


def guided(model, *guidance):
    """Wrap ``model`` by each guidance in turn (the last one outermost)."""
    for method in guidance:
        if not hasattr(method, "wrap"):
            continue  # searches run above the sampler (condgen.search), not as wrappers
        if model.kind not in method.kinds:
            raise UsageError(f"guidance {method.name!r} does not apply to model kind {model.kind!r} (applies to {', '.join(method.kinds)})")
        model = method.wrap(model)
    return model


# -- helpers over the path ---------------------------------------------------------------


def outputs_logits(model) -> bool:
    """Whether the model returns logits (AR, masked tokens, discrete BFN) rather than a
    prediction in data space (denoisers, continuous BFN)."""
    if model.kind in ("autoregressive", "masked-tokens"):
        return True
    return model.kind == "bayesian-flow" and getattr(model, "num_classes", None) is not None


def _shaped(value, x):
    return value.reshape(value.shape[0], *([1] * (x.dim() - 1))).to(x.dtype)


def path_coefficients(model, t: torch.Tensor, x: torch.Tensor) -> dict:
    """alpha, sigma (and derivatives for velocity models) at t, broadcastable against x."""
    path = model.path
    coeffs = {"alpha": _shaped(path.alpha(t.double()), x), "sigma": _shaped(path.sigma(t.double()), x)}
    if model.prediction == "velocity":
        coeffs.update(dalpha=_shaped(path.dalpha(t.double()), x), dsigma=_shaped(path.dsigma(t.double()), x))
    return coeffs


def noise_level(model, t: torch.Tensor) -> torch.Tensor:
    """r = sigma / alpha at t, shape [B]."""
    t = t.double()
    return model.path.sigma(t) / model.path.alpha(t)


def _convert(model, pred, x, t, src, dst):
    return convert_prediction(pred, x, src=src, dst=dst, **path_coefficients(model, t, x))


def _per_sample_dot(a, b):
    return (a * b).flatten(1).sum(1)


def _first_class_key(generator) -> str | None:
    from condgen.conditions import ClassLabel

    if generator is None:
        return None
    return next((k for k, c in generator.conditions.items() if isinstance(c, ClassLabel)), None)


# -- classifier-free guidance and its refinements ----------------------------------------


@dataclass(frozen=True)
class CFG:
    """Classifier-free guidance (Ho & Salimans 2022): u + scale (c - u), in one batch.

    ``interval=(lo, hi)``: guide only where lo < r <= hi, else use the conditional
    branch (Kynkäänniemi et al. 2024). ``rescale=phi``: match the guided x0's per-sample
    std to the conditional one's and mix by phi (Lin et al. 2024). ``keys``: which
    conditions the unconditional branch drops (default: all). On logits (BFN, AR,
    masked tokens) the combination is made on log-probabilities.
    """

    scale: float
    interval: tuple[float, float] | None = None
    rescale: float = 0.0
    keys: tuple[str, ...] | None = None

    name = "cfg"
    kinds = ("denoiser",) + LOGIT_KINDS
    needs_grad = False

    @classmethod
    def parse(cls, value, options):
        check_options("cfg", options, ("interval", "rescale", "keys"))
        return cls(
            primary_value("cfg", value, "cfg=3"),
            interval=option_range("cfg", options["interval"]) if "interval" in options else None,
            rescale=option_number("cfg", "rescale", options.get("rescale", "0")),
            keys=tuple(options["keys"].split("+")) if "keys" in options else None,
        )

    def spec(self) -> str:
        parts = [f"cfg={format_value(self.scale)}"]
        if self.interval:
            parts.append(f"interval={format_value(self.interval[0])}:{format_value(self.interval[1])}")
        if self.rescale:
            parts.append(f"rescale={format_value(self.rescale)}")
        if self.keys:
            parts.append(f"keys={'+'.join(self.keys)}")
        return ",".join(parts)

    def wrap(self, model):
        return _BranchGuided(model, self)

    def combine(self, model, cond_out, uncond_out, x, t):
        """The guided output from the two branches (in the model's own output space)."""
        if outputs_logits(model):
            c, u = torch.log_softmax(cond_out.float(), -1), torch.log_softmax(uncond_out.float(), -1)
            return (u + self.scale * (c - u)).to(cond_out.dtype)
        guided = uncond_out + self.scale * (cond_out - uncond_out)
        if self.rescale:
            x0_c = _convert(model, cond_out, x, t, model.prediction, "x0")
            x0_g = _convert(model, guided, x, t, model.prediction, "x0")
            std_c = x0_c.flatten(1).std(1).clamp_min(1e-12)
            std_g = x0_g.flatten(1).std(1).clamp_min(1e-12)
            rescaled = x0_g * _shaped(std_c / std_g, x0_g)
            x0 = self.rescale * rescaled + (1 - self.rescale) * x0_g
            guided = _convert(model, x0, x, t, "x0", model.prediction)
        return guided


@dataclass(frozen=True)
class APG:
    """Adaptive projected guidance (Sadat et al. 2024), in x0 space.

    The guidance update d = D_c - D_u (plus ``momentum`` times its running average) is
    clipped to norm ``norm`` and split into parts parallel and orthogonal to D_c; the
    parallel part, which oversaturates, is weighted by ``eta``:
    D = D_c + (scale - 1) (d_orth + eta d_par). eta = 1, no momentum, no clipping is CFG.
    """

    scale: float
    eta: float = 0.0
    momentum: float = 0.0
    norm: float = math.inf
    interval: tuple[float, float] | None = None
    keys: tuple[str, ...] | None = None

    name = "apg"
    kinds = ("denoiser",)
    needs_grad = False

    @classmethod
    def parse(cls, value, options):
        check_options("apg", options, ("eta", "momentum", "norm", "interval", "keys"))
        return cls(
            primary_value("apg", value, "apg=7,eta=0"),
            eta=option_number("apg", "eta", options.get("eta", "0")),
            momentum=option_number("apg", "momentum", options.get("momentum", "0")),
            norm=option_number("apg", "norm", options.get("norm", "inf"), allow_inf=True),
            interval=option_range("apg", options["interval"]) if "interval" in options else None,
            keys=tuple(options["keys"].split("+")) if "keys" in options else None,
        )

    def spec(self) -> str:
        parts = [f"apg={format_value(self.scale)}", f"eta={format_value(self.eta)}"]
        if self.momentum:
            parts.append(f"momentum={format_value(self.momentum)}")
        if math.isfinite(self.norm):
            parts.append(f"norm={format_value(self.norm)}")
        if self.interval:
            parts.append(f"interval={format_value(self.interval[0])}:{format_value(self.interval[1])}")
        return ",".join(parts)

    def wrap(self, model):
        return _BranchGuided(model, self)

    def combine(self, model, cond_out, uncond_out, x, t, state):
        x0_c = _convert(model, cond_out, x, t, model.prediction, "x0")
        x0_u = _convert(model, uncond_out, x, t, model.prediction, "x0")
        diff = x0_c - x0_u
        if self.momentum:
            # The running average restarts when a new trajectory begins (noise level rises).
            level = noise_level(model, t)
            average = state.get("average")
            if average is None or average.shape != diff.shape:
                average = torch.zeros_like(diff)
            else:  # per sample and on the device, so that no step waits to read the level
                average = torch.where(_shaped(level > state["level"], diff).bool(), torch.zeros_like(diff), average)
            diff = diff + self.momentum * average
            state.update(average=diff, level=level)
        if math.isfinite(self.norm):
            norms = diff.flatten(1).norm(dim=1).clamp_min(1e-12)
            diff = diff * _shaped(torch.clamp(self.norm / norms, max=1.0), diff)
        parallel = _shaped(_per_sample_dot(diff, x0_c) / _per_sample_dot(x0_c, x0_c).clamp_min(1e-12), diff) * x0_c
        x0 = x0_c + (self.scale - 1) * ((diff - parallel) + self.eta * parallel)
        return _convert(model, x0, x, t, "x0", model.prediction)


class _BranchGuided(GuidedModel):
    """Runs conditional and unconditional branches as one batch and combines them."""

    def __init__(self, model, method):
        if getattr(method, "interval", None) is not None and model.kind != "denoiser":
            # intervals are on r = sigma / alpha, which only denoisers' paths define
            raise UsageError(f"guidance {method.name!r}: interval=LOW:HIGH is on noise levels sigma/alpha, which {model.kind!r} models do not have; leave it out")
        super().__init__(model, method)
        self.state: dict = {}
        if self.kind == "masked-tokens" and hasattr(model, "cached"):
            self.cached = self._cached  # context-feature reuse (ReCAP) keeps working under CFG

    def _cached(self, tokens, cond, cache=None, fresh=None):
        both = concat_conditions(cond, drop_conditions(cond, self.method.keys))
        logits, cache = self.inner.cached(torch.cat([tokens, tokens]), both, cache, None if fresh is None else torch.cat([fresh, fresh]))
        c, u = logits.chunk(2)
        return self.method.combine(self, c, u, tokens, None), cache

    def _combine(self, cond_out, uncond_out, x, t):
        if isinstance(self.method, APG):
            return self.method.combine(self, cond_out, uncond_out, x, t, self.state)
        return self.method.combine(self, cond_out, uncond_out, x, t)

    def __call__(self, x, *args, **kwargs):
        keys = self.method.keys
        if self.kind == "autoregressive":
            tokens, cond, cache = x, args[0], (args[1] if len(args) > 1 else kwargs.get("cache"))
            both = concat_conditions(cond, drop_conditions(cond, keys))
            logits, cache = self.inner(torch.cat([tokens, tokens]), both, cache)
            c, u = logits.chunk(2)
            return self.method.combine(self, c, u, tokens, None), cache
        if self.kind == "masked-tokens":
            cond = args[0]
            both = concat_conditions(cond, drop_conditions(cond, keys))
            c, u = self.inner(torch.cat([x, x]), both, **kwargs).chunk(2)
            return self.method.combine(self, c, u, x, None)
        t, cond = args
        both = concat_conditions(cond, drop_conditions(cond, keys))
        c, u = self.inner(torch.cat([x, x]), torch.cat([t, t]), both).chunk(2)
        out = self._combine(c, u, x, t)
        interval = getattr(self.method, "interval", None)
        if interval is not None:  # only denoisers get this far with one (__init__)
            level = noise_level(self, t)
            inside = ((level > interval[0]) & (level <= interval[1])).to(x.device)
            out = torch.where(_shaped(inside, out).bool(), out, c)
        return out


# -- classifier guidance --------------------------------------------------------------


@dataclass(frozen=True)
class _ClassifierBased:
    """Shared fields and spec handling of the methods driven by a classifier of the class
    held in condition ``key``: the classifier is named (``model=``) and resolved by
    ``bind``; ``base`` says whether the model's conditional or unconditional branch is
    combined with it."""

    scale: float
    classifier: Callable | None = None
    model: str = "classifier"
    key: str | None = None
    base: str = "uncond"

    needs_grad = True

    @classmethod
    def parse(cls, value, options):
        check_options(cls.name, options, ("model", "key", "base"))
        base = options.get("base", cls.base)
        if base not in ("uncond", "cond"):
            raise UsageError(f"{cls.name}: base must be uncond or cond")
        scale = primary_value(cls.name, value, f"{cls.name}=2,model=NAME")
        return cls(scale, model=options.get("model", "classifier"), key=options.get("key"), base=base)

    def spec(self) -> str:
        key = f",key={self.key}" if self.key else ""
        return f"{self.name}={format_value(self.scale)},model={self.model}{key},base={self.base}"

    def bind(self, generator):
        classifier = self.classifier or guidance_model(generator, self.model, self.name)
        return replace(self, classifier=classifier, key=self.key or _first_class_key(generator))

    def _require(self):
        if self.classifier is None or self.key is None:
            raise UsageError(f"{self.name} guidance needs a classifier (model=NAME) and the condition key of its class")


@dataclass(frozen=True)
class ClassifierGuidance(_ClassifierBased):
    """Classifier guidance (Dhariwal & Nichol 2021): score + scale grad log p(c | x_t, t).

    ``classifier(x_t, t) -> logits [B, C]`` is any differentiable noise-aware classifier.
    By default the model's unconditional branch is guided (p(x) p(c|x)^scale, which at
    scale 1 is exactly p(x | c)); ``base="cond"`` guides the conditional branch instead.
    """

    name = "classifier"
    kinds = ("denoiser",)

    def wrap(self, model):
        self._require()
        return _ClassifierGuided(model, self)


class _ClassifierGuided(GuidedModel):
    def __call__(self, x, t, cond):
        method = self.method
        label = cond[method.key].to(x.device)
        base = drop_conditions(cond, (method.key,)) if method.base == "uncond" else cond
        out = self.inner(x, t, base)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            log_probs = torch.log_softmax(method.classifier(xg, t).float(), dim=-1)
            chosen = log_probs.gather(1, label.clamp(min=0)[:, None]).sum()
            (grad,) = torch.autograd.grad(chosen, xg)
        grad = grad * _shaped((label >= 0).to(grad.dtype), grad)
        score = _convert(self, out, x, t, self.prediction, "score") + method.scale * grad.to(out.dtype)
        return _convert(self, score, x, t, "score", self.prediction)


# -- training-free guidance --------------------------------------------------------------


@dataclass(frozen=True)
class TFG:
    """Training-free guidance with a differentiable reward on the predicted clean sample.

    ``reward(x0, cond) -> [B]`` is a log-likelihood or reward to raise (e.g.
    log p(y | x0) for a measurement y). Following TFG (Ye et al. 2024):
    - variance guidance ``rho``: score += rho grad_{x_t} reward(x0_hat(x_t)), the gradient
      taken through the denoiser — with rho = 1 and a log-likelihood this is DPS's
      approximation of the likelihood score (Chung et al. 2023);
    - mean guidance ``mu``: x0_hat += mu grad_{x0} reward, ``iters`` times;
    - recurrence ``recur``: each step is redone ``recur`` times after re-noising back to
      its starting level (runs above the sampler, see ``condgen.search``).
    """

    rho: float = 1.0
    mu: float = 0.0
    iters: int = 1
    recur: int = 1
    eta: float = 1.0
    reward: Callable | None = None
    reward_name: str = "reward"
    method_name: str = "tfg"

    kinds = ("denoiser",)
    needs_grad = True

    @property
    def name(self):
        return self.method_name

    @classmethod
    def parse(cls, value, options):
        check_options("tfg", options, ("rho", "mu", "iters", "recur", "eta", "reward"))
        return cls(
            rho=option_number("tfg", "rho", options.get("rho", value if value not in (None, "") else "1")),
            mu=option_number("tfg", "mu", options.get("mu", "0")),
            iters=option_number("tfg", "iters", options.get("iters", "1"), int),
            recur=option_number("tfg", "recur", options.get("recur", "1"), int),
            eta=option_number("tfg", "eta", options.get("eta", "1")),
            reward_name=options.get("reward", "reward"),
        )

    def spec(self) -> str:
        if self.method_name == "dps":
            return f"dps={format_value(self.rho)},reward={self.reward_name}"
        return f"tfg,rho={format_value(self.rho)},mu={format_value(self.mu)},iters={self.iters},recur={self.recur},reward={self.reward_name}"

    def bind(self, generator):
        return replace(self, reward=self.reward or guidance_model(generator, self.reward_name, self.name))

    def wrap(self, model):
        if self.reward is None:
            raise UsageError(f"{self.name} needs a reward (reward=NAME)")
        return _TFGGuided(model, self)

    @property
    def runs_above_sampler(self) -> bool:
        """With recurrence, TFG also drives the steps (``condgen.search.run_recurrence``)."""
        return self.recur > 1

    def run(self, sampler_fn, model, shape, cond, **kwargs):
        from condgen.search import run_recurrence

        return run_recurrence(self, model, shape, cond, **kwargs)


@dataclass(frozen=True)
class DPS(TFG):
    """Diffusion posterior sampling (Chung et al. 2023): TFG's variance guidance alone,
    ``DPS(scale, reward=log_likelihood)``."""

    method_name: str = "dps"

    @classmethod
    def parse(cls, value, options):
        check_options("dps", options, ("reward",))
        return cls(primary_value("dps", value, "dps=1,reward=NAME"), reward_name=options.get("reward", "reward"))


class _TFGGuided(GuidedModel):
    def __call__(self, x, t, cond):
        method = self.method
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            out = self.inner(xg, t, cond)
            x0 = _convert(self, out, xg, t, self.prediction, "x0")
            if method.rho:
                (grad_xt,) = torch.autograd.grad(method.reward(x0, cond).sum(), xg)
            x0 = x0.detach()
            for _ in range(method.iters if method.mu else 0):
                x0g = x0.requires_grad_(True)
                (grad_x0,) = torch.autograd.grad(method.reward(x0g, cond).sum(), x0g)
                x0 = (x0g + method.mu * grad_x0).detach()
        out = _convert(self, x0, x, t, "x0", self.prediction)
        if not method.rho:
            return out
        score = _convert(self, out, x, t, self.prediction, "score") + method.rho * grad_xt.to(out.dtype)
        return _convert(self, score, x, t, "score", self.prediction)


# -- condition-annealed sampling ---------------------------------------------------------


@dataclass(frozen=True)
class CADS:
    """Condition-annealed sampling (Sadat et al. 2024): noise on the condition embedding.

    y_hat = sqrt(gamma) y + noise sqrt(1 - gamma) n, with gamma = 1 for normalised time
    t / t_max <= tau1, 0 above tau2 and linear between; then y_hat is rescaled to y's
    mean and std and mixed with the unrescaled one by ``psi``. Needs a model with
    ``embed_condition(cond) -> (embedding [B, D], present [B])`` that accepts
    ``cond["embedding"]``; rows whose condition is absent are left alone. Put it before
    CFG: ``guided(model, CADS(...), CFG(7))``.
    """

    noise: float = 0.25
    tau1: float = 0.6
    tau2: float = 0.9
    psi: float = 1.0

    name = "cads"
    kinds = ("denoiser",)
    needs_grad = False

    @classmethod
    def parse(cls, value, options):
        check_options("cads", options, ("tau1", "tau2", "psi"))
        method = cls(
            noise=primary_value("cads", value, "cads=0.25,tau1=0.6,tau2=0.9"),
            tau1=option_number("cads", "tau1", options.get("tau1", "0.6")),
            tau2=option_number("cads", "tau2", options.get("tau2", "0.9")),
            psi=option_number("cads", "psi", options.get("psi", "1")),
        )
        if not 0 <= method.tau1 < method.tau2 <= 1:
            raise UsageError("cads: needs 0 <= tau1 < tau2 <= 1")
        return method

    def spec(self) -> str:
        return f"cads={format_value(self.noise)},tau1={format_value(self.tau1)},tau2={format_value(self.tau2)},psi={format_value(self.psi)}"

    def gamma(self, time: torch.Tensor) -> torch.Tensor:
        return ((self.tau2 - time) / (self.tau2 - self.tau1)).clamp(0.0, 1.0)

    def wrap(self, model):
        if not hasattr(model, "embed_condition"):
            raise UsageError("cads needs a model with embed_condition(cond); this one has none")
        return _CADSGuided(model, self)


class _CADSGuided(GuidedModel):
    rng = None

    def bind_rng(self, rng):
        self.rng = rng
        super().bind_rng(rng)

    def __call__(self, x, t, cond):
        if self.rng is None:
            raise UsageError("cads needs the sampler's random streams (bind_rng); run it through Generator.generate")
        method = self.method
        embedding, present = self.inner.embed_condition(cond)
        repeats = x.shape[0] // len(self.rng)
        noise = self.rng.randn(embedding.shape[1:], dtype=embedding.dtype).to(embedding.device).repeat(repeats, *([1] * (embedding.dim() - 1)))
        gamma = _shaped(method.gamma(t.double() / self.path.t_max), embedding)
        noisy = gamma.sqrt() * embedding + method.noise * (1 - gamma).sqrt() * noise
        dims = tuple(range(1, embedding.dim()))
        mean, std = embedding.mean(dims, keepdim=True), embedding.std(dims, keepdim=True)
        rescaled = (noisy - noisy.mean(dims, keepdim=True)) / noisy.std(dims, keepdim=True).clamp_min(1e-12) * std + mean
        noisy = method.psi * rescaled + (1 - method.psi) * noisy
        embedding = torch.where(_shaped(present, embedding).bool(), noisy, embedding)
        return self.inner(x, t, {**cond, "embedding": embedding})


# -- GeDi ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeDi:
    """GeDi (Krause et al. 2021): a class-conditional LM reweights the base LM.

    For each candidate next token v, Bayes' rule over the class codes gives
    P(c | x_<t, v) = softmax_c[(log P(x_<t | c) + log P(v | x_<t, c)) / n] with n the
    generated length (the paper's length normalisation, alpha = 1; a uniform class
    prior), and decoding uses log P_LM(v | x_<t) + omega log P(c | x_<t, v), where the
    base LM is called with the class condition dropped (it is the unconditional LM). ``rho``
    keeps the smallest set of tokens holding that much guided mass (plus any token
    whose class posterior exceeds ``tau``). ``contrast`` is the anti-class code; by
    default every other class of the class-conditional LM. The prefix log-likelihoods
    travel in the sampler's cache, so there is no hidden state.
    """

    omega: float
    cclm: Any = None
    model: str = "gedi"
    key: str | None = None
    rho: float | None = None
    tau: float | None = None
    contrast: int | None = None
    codes: int | None = None  # number of class codes (default: the condition's labels, else cclm.num_classes)

    name = "gedi"
    kinds = ("autoregressive",)
    needs_grad = False

    @classmethod
    def parse(cls, value, options):
        check_options("gedi", options, ("model", "key", "rho", "tau", "contrast"))
        return cls(
            primary_value("gedi", value, "gedi=15,rho=0.8"),
            model=options.get("model", "gedi"),
            key=options.get("key"),
            rho=option_number("gedi", "rho", options["rho"]) if "rho" in options else None,
            tau=option_number("gedi", "tau", options["tau"]) if "tau" in options else None,
            contrast=option_number("gedi", "contrast", options["contrast"], int) if "contrast" in options else None,
        )

    def spec(self) -> str:
        parts = [f"gedi={format_value(self.omega)}", f"model={self.model}"]
        parts += [f"{k}={format_value(getattr(self, k))}" for k in ("rho", "tau", "contrast") if getattr(self, k) is not None]
        return ",".join(parts)

    def bind(self, generator):
        key = self.key or _first_class_key(generator)
        codes = self.codes or (len(generator.conditions[key].names) if generator is not None and key in generator.conditions else None)
        return replace(self, cclm=self.cclm or guidance_model(generator, self.model, "gedi"), key=key, codes=codes)

    def wrap(self, model):
        if self.cclm is None or self.key is None:
            raise UsageError("gedi needs a class-conditional LM (model=NAME) and the condition key of its class")
        return _GeDiGuided(model, self)

    def class_log_posterior(self, prefix_logp, cc_logp, length):
        """log P(c | x_<t, v) for every class code c and candidate v: [K, B, V]."""
        joint = (prefix_logp[:, :, None] + cc_logp) / length
        return joint - torch.logsumexp(joint, dim=0, keepdim=True)


class _GeDiGuided(GuidedModel):
    def __call__(self, tokens, cond, cache=None):
        """With ``cache`` the sampler passes only the new tokens (the AR protocol); the
        cache keeps the whole sequence for inner models that keep no cache of their own."""
        method = self.method
        if cache is None:
            history, base_cache, cc_cache, prefix_logp, last_cc_logp, length = tokens, None, None, None, None, 0
        else:
            history, base_cache, cc_cache, prefix_logp, last_cc_logp, length = cache
            history = torch.cat([history, tokens], 1)
        # The base LM gives the unconditional next-token distribution: the class is dropped.
        base_logits, base_cache = self.inner(tokens if base_cache is not None else history, drop_conditions(cond, (method.key,)), base_cache)
        batch = tokens.shape[0]
        label = cond[method.key].to(tokens.device)
        classes = method.codes or method.cclm.num_classes
        # Every class code for every sample, class-major: [K * B].
        code_batch = {**_tile(cond, classes), method.key: torch.arange(classes, device=tokens.device).repeat_interleave(batch)}
        cc_logits, cc_cache = method.cclm(_tile_tensor(tokens if cc_cache is not None else history, classes), code_batch, cc_cache)
        cc_logp = torch.log_softmax(cc_logits.float(), -1).reshape(classes, batch, -1)
        if prefix_logp is None:
            prefix_logp = torch.zeros(classes, batch, dtype=cc_logp.dtype, device=cc_logp.device)
        else:  # add the log-likelihood of the token chosen at the previous step
            chosen = tokens[:, -1].reshape(1, batch, 1).expand(classes, batch, 1)
            prefix_logp = prefix_logp + last_cc_logp.gather(2, chosen).squeeze(2)
        length += 1
        if method.contrast is not None:
            keep = torch.stack([label, torch.full_like(label, method.contrast)])  # [2, B]: class, anti-class
            index = keep[:, :, None]
            log_post = method.class_log_posterior(prefix_logp.gather(0, keep), cc_logp.gather(0, index.expand(2, batch, cc_logp.shape[-1])), length)[0]
        else:
            log_post = method.class_log_posterior(prefix_logp, cc_logp, length)
            log_post = log_post.gather(0, label.clamp(min=0).reshape(1, batch, 1).expand(1, batch, log_post.shape[-1]))[0]
        guided = torch.log_softmax(base_logits.float(), -1) + method.omega * log_post
        guided = torch.where((label >= 0)[:, None], guided, torch.log_softmax(base_logits.float(), -1))
        if method.rho is not None or method.tau is not None:
            guided = _gedi_filter(guided, log_post, method.rho, method.tau)
        return guided.to(base_logits.dtype), (history, base_cache, cc_cache, prefix_logp, cc_logp, length)


def _tile_tensor(value: torch.Tensor, times: int) -> torch.Tensor:
    return value.repeat(times, *([1] * (value.dim() - 1)))


def _tile(cond: dict, times: int) -> dict:
    """An encoded condition batch repeated ``times`` along the batch dimension."""
    return {k: _tile_tensor(v, times) if torch.is_tensor(v) else list(v) * times for k, v in cond.items()}


def _gedi_filter(logits, log_post, rho, tau):
    """Keep the top tokens holding mass rho of the guided distribution, and any token
    whose class posterior exceeds tau; the rest get -inf."""
    keep = torch.zeros_like(logits, dtype=torch.bool)
    if rho is not None:
        probs = torch.softmax(logits, -1)
        sorted_probs, order = probs.sort(-1, descending=True)
        before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the tokens ranked above
        keep.scatter_(-1, order, before < rho)
    if tau is not None:
        keep |= log_post.exp() > tau
    return logits.masked_fill(~keep, -math.inf)


# -- energy composition ------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierEnergy(_ClassifierBased):
    """Energy composition: E(x, c) + scale * (-log p(c | x)) for energy models.

    Sums the model's class energy with a classifier's energy (product of experts, Du et
    al. 2020); with ``base="uncond"`` the model's unconditional energy is used, which at
    scale 1 gives -log p(x | c) up to a constant. ``classifier(x) -> logits``.
    """

    base: str = "cond"

    name = "energy"
    kinds = ("energy",)

    def wrap(self, model):
        self._require()
        return _EnergyComposed(model, self)


class _EnergyComposed(GuidedModel):
    def __call__(self, x, cond, **kwargs):
        method = self.method
        label = cond[method.key].to(x.device)
        base = drop_conditions(cond, (method.key,)) if method.base == "uncond" else cond
        log_probs = torch.log_softmax(method.classifier(x).float(), -1).gather(1, label.clamp(min=0)[:, None]).squeeze(1)
        return self.inner(x, base, **kwargs) - method.scale * log_probs.to(x.dtype) * (label >= 0).to(x.dtype)


class EnergySum:
    """Sum of energy models, sum_i w_i E_i(x, c): a model of kind ``energy``."""

    kind = "energy"

    def __init__(self, *models, weights=None):
        self.models = models
        self.weights = tuple(weights) if weights is not None else (1.0,) * len(models)
        self.sample_shape = models[0].sample_shape

    def __call__(self, x, cond, **kwargs):
        return sum(w * m(x, cond, **kwargs) for w, m in zip(self.weights, self.models))


# -- the spec parser -------------------------------------------------------------------------


def parse_guidance(spec: str, methods: dict):
    """``"cfg=3,interval=0.3:5"`` -> a guidance object, using registered methods."""
    head, *rest = [part.strip() for part in spec.split(",")]
    name, sep, value = head.partition("=")
    name = name.strip()
    if name not in methods:
        raise UsageError(f"unknown guidance {name!r}; known: {', '.join(sorted(methods)) or 'none'} (see `core guidance`)")
    options = {}
    for part in rest:
        key, sep2, val = part.partition("=")
        if not sep2:
            raise UsageError(f"guidance {spec!r}: option {part!r} is not key=value")
        options[key.strip()] = val.strip()
    return methods[name].load().parse(value.strip() if sep else None, options)
