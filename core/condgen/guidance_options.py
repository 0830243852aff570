"""Reading the options of a ``--guidance NAME=VALUE,KEY=VALUE`` spec, shared by the guidance
methods (``condgen.guidance``) and the searches above the sampler (``condgen.search``).

Every refusal is a one-line ``UsageError`` that names the method, the option and what
would be accepted.
"""

from __future__ import annotations

import math

from condgen.errors import UsageError


def option_number(method: str, key: str, value: str, cast=float, allow_inf: bool = False):
    """A number; NaN never, infinity only where it means "no limit" (``allow_inf``)."""
    try:
        number = cast(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{method}: {key} {value!r} is not a number; give a number (see `core guidance`)") from None
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise UsageError(f"{method}: {key} {value!r} is not a finite number; give a finite {key}, e.g. --guidance {method}=2")
    return number


def option_range(method: str, value: str) -> tuple[float, float]:
    lo, sep, hi = value.partition(":")
    if not sep:
        raise UsageError(f"{method}: interval {value!r} is not LOW:HIGH (noise levels sigma/alpha), e.g. interval=0.3:5")
    low, high = option_number(method, "interval", lo or "0"), option_number(method, "interval", hi or "inf", allow_inf=True)
    if not 0 <= low < high:
        raise UsageError(f"{method}: interval {value!r} needs 0 <= LOW < HIGH, e.g. interval=0.3:5")
    return low, high


def check_options(method: str, options: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UsageError(f"{method}: unknown option {unknown[0]!r}; accepted: {', '.join(allowed) or 'none'}")


def primary_value(method: str, value: str | None, example: str, cast=float):
    if value is None or value == "":
        raise UsageError(f"{method} needs a value, e.g. --guidance {example}")
    return option_number(method, "value", value, cast)


def format_value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def guidance_model(generator, name: str, method: str):
    resources = generator.guidance_models() if generator is not None else {}
    if name not in resources:
        known = ", ".join(sorted(resources)) or "none"
        owner = f"generator {generator.name!r}" if generator is not None else "this model"
        raise UsageError(f"{method}: {owner} offers no guidance model {name!r}; available: {known}")
    return resources[name]
