"""`core plugin new NAME`: render the plugin template into a distribution condgen-NAME.

The template (``templates/plugin``, files ending ``.tmpl``) is a complete plugin: a
tiny class-conditional MLP denoiser on 2-D data, trained with the DDPM loss, plus tests
that include condgen's conformance kit, a README and a CI workflow. ``{{token}}`` in
file names and contents is replaced; a leading ``dot_`` in a name becomes ``.``. Unless
``train=False``, the model is trained right away (seconds on a CPU) so that the package
ships weights and passes its own tests as generated.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from condgen.errors import CondgenError, UsageError

TEMPLATE = Path(__file__).parent / "plugin"
NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
TOKEN = re.compile(r"\{\{(\w+)\}\}")
RESERVED = {"condgen", "core", "plugin", "plugins", "test", "tests"}


def condgen_requirement(version: str) -> str:
    """The condgen range a new plugin depends on: this release line (0.x moves by minor)."""
    major, minor = (int(part) for part in version.split(".")[:2])
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"condgen>={major}.{minor},<{upper}"


def template_values(name: str, description: str | None = None) -> dict[str, str]:
    """The tokens for plugin ``name``; a one-line error if the name or description won't do."""
    import condgen

    if not NAME.fullmatch(name) or len(name) > 40:
        raise UsageError(f"plugin name {name!r}: use lowercase letters and digits, words joined by '-' (e.g. points, tiny-seq)")
    if name in RESERVED:
        raise UsageError(f"plugin name {name!r} is reserved; choose another")
    description = (description or f"condgen plugin {name}: a tiny class-conditional diffusion model").strip()
    if not description or any(c in description for c in '"\\\n\r'):
        raise UsageError("--description: one line without double quotes or backslashes")
    return {
        "name": name,
        "dist": f"condgen-{name}",
        "module": f"condgen_{name.replace('-', '_')}",
        "class_name": "".join(part.capitalize() for part in name.split("-")) + "Generator",
        "description": description,
        "api": condgen.PLUGIN_API,
        "condgen_requirement": condgen_requirement(condgen.__version__),
    }


def fill(text: str, values: dict[str, str]) -> str:
    return TOKEN.sub(lambda match: values[match.group(1)], text)


def render(values: dict[str, str], target: Path) -> list[Path]:
    """Write every template file under ``target``; returns the files written."""
    written = []
    for source in sorted(TEMPLATE.rglob("*.tmpl")):
        parts = [fill(part, values) for part in source.relative_to(TEMPLATE).with_suffix("").parts]
        parts = ["." + part[len("dot_"):] if part.startswith("dot_") else part for part in parts]
        destination = target.joinpath(*parts)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(fill(source.read_text(encoding="utf-8"), values), encoding="utf-8")
        written.append(destination)
    return written


def taken(name: str) -> str | None:
    """Who already uses plugin ``name``: an installed plugin or a registry entry."""
    from condgen import index
    from condgen.plugins import entry_points

    installed = entry_points().get(name)
    if installed is not None:
        return f"installed plugin from {installed.dist.name if installed.dist else 'unknown'}"
    try:
        for entry in index.entries():
            if entry.get("name") == name:
                return f"registry entry {entry.get('distribution')}"
    except CondgenError:
        pass  # no readable registry: nothing known to clash with
    return None


def create_plugin(name: str, out: str | os.PathLike, description: str | None = None, train: bool = True) -> Path:
    """Render condgen-NAME under ``out`` and (``train``) ship freshly trained weights."""
    values = template_values(name, description)
    target = Path(out) / values["dist"]
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} exists and is not empty; choose another --out or remove it")
    try:
        render(values, target)
    except OSError as exc:
        raise CondgenError(f"cannot write {target}: {exc.strerror or exc}; choose another --out") from None
    if train:
        train_shipped_weights(target, values)
    return target


def train_shipped_weights(target: Path, values: dict[str, str]) -> dict:
    """Run ``python -m <module>.train`` on the new sources; log the run in the model card."""
    import condgen

    module = values["module"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(target.resolve() / "src"), os.environ.get("PYTHONPATH", "")] if p)}
    result = subprocess.run([sys.executable, "-m", f"{module}.train"], cwd=target, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise CondgenError(f"training the new model failed ({last}); the files are in {target}: fix them and run `python -m {module}.train`")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    card = target / "src" / module / "weights" / "README.md"
    with open(card, "a", encoding="utf-8") as handle:
        handle.write(
            f"\n- `python -m {module}.train` (condgen {condgen.__version__}, seed {summary['seed']}): "
            f"{summary['steps']} steps of batch {summary['batch']}, loss {summary['loss_first']:.3f} → {summary['loss_last']:.3f} "
            f"(first and last tenth), sha256 {summary['sha256'][:16]}..., {summary['seconds']:.0f} s on one CPU thread.\n"
        )
    return summary
