"""Guidance: wrappers that take a model and return a model of the same kind.

``guided(model, CFG(3.0))`` is what samplers receive; they never know guidance exists.
Each method also has a spec string (``cfg=3``) used by ``--guidance`` and manifests.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from condgen.conditions import concat_conditions, drop_conditions
from condgen.errors import UsageError
from condgen.registry import GuidanceMethod

#: Attributes a wrapper copies so that it is a model of the same kind.
_MODEL_ATTRS = ("kind", "prediction", "path", "sample_shape", "vocab_size", "mask_id", "latent_shape")


class GuidedModel:
    """Base of guidance wrappers: forwards the kind attributes of the wrapped model."""

    def __init__(self, model):
        self.inner = model
        for attr in _MODEL_ATTRS:
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))


@dataclass(frozen=True)
class CFG:
    """Classifier-free guidance (Ho & Salimans 2022): u + scale (c - u).

    The conditional and unconditional branches run as one batch. ``keys`` limits which
    conditions the unconditional branch drops (default: all). The combination is
    affine, so it is exact in any denoiser parameterisation and on logits alike.
    """

    scale: float
    keys: tuple[str, ...] | None = None

    name = "cfg"
    kinds = ("denoiser", "masked-tokens")

    @classmethod
    def parse(cls, value: str | None, options: dict[str, str]) -> "CFG":
        if value is None:
            raise UsageError("cfg needs a scale, e.g. --guidance cfg=3")
        unknown = set(options) - {"keys"}
        if unknown:
            raise UsageError(f"cfg: unknown option {sorted(unknown)[0]!r}; accepted: keys")
        try:
            scale = float(value)
        except ValueError:
            raise UsageError(f"cfg: scale {value!r} is not a number, e.g. --guidance cfg=3") from None
        keys = tuple(options["keys"].split("+")) if "keys" in options else None
        return cls(scale, keys)

    def spec(self) -> str:
        keys = f",keys={'+'.join(self.keys)}" if self.keys else ""
        return f"cfg={self.scale:g}{keys}"

    def wrap(self, model):
        if model.kind == "denoiser":
            return _CFGDenoiser(model, self)
        if model.kind == "masked-tokens":
            return _CFGMasked(model, self)
        raise UsageError(f"guidance 'cfg' does not apply to model kind {model.kind!r} (applies to {', '.join(self.kinds)})")

    def combine(self, both: torch.Tensor) -> torch.Tensor:
        cond, uncond = both.chunk(2)
        return uncond + self.scale * (cond - uncond)


class _CFGDenoiser(GuidedModel):
    def __init__(self, model, cfg: CFG):
        super().__init__(model)
        self.cfg = cfg

    def __call__(self, x, t, cond):
        both = concat_conditions(cond, drop_conditions(cond, self.cfg.keys))
        return self.cfg.combine(self.inner(torch.cat([x, x]), torch.cat([t, t]), both))


class _CFGMasked(GuidedModel):
    def __init__(self, model, cfg: CFG):
        super().__init__(model)
        self.cfg = cfg

    def __call__(self, tokens, cond):
        both = concat_conditions(cond, drop_conditions(cond, self.cfg.keys))
        return self.cfg.combine(self.inner(torch.cat([tokens, tokens]), both))


def guided(model, *guidance):
    """Wrap ``model`` by each guidance in turn; with none, the model itself."""
    for method in guidance:
        model = method.wrap(model)
    return model


def parse_guidance(spec: str, methods: dict[str, GuidanceMethod]):
    """``"cfg=3"`` or ``"cfg=3,keys=digit"`` -> a guidance object, using registered methods."""
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

